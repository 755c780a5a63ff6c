//! HTML building blocks: escaping, the page frame, tables and forms. Every
//! value written into a page goes through [`esc`]; pages carry no script,
//! so the Content-Security-Policy forbids all of it.

use std::fmt::Write as _;

use optline_identity::Person;

/// Escapes text for an HTML element or a double-quoted attribute.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes one path segment (ids are plain, but never trusted).
pub fn seg(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'@' | b':') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The signed-in frame: navigation, who is signed in, the sign-out form.
pub fn page(title: &str, person: Option<&Person>, csrf: &str, body: &str) -> String {
    let nav = match person {
        Some(p) => {
            let groups: Vec<&str> = p.groups.iter().map(|g| g.as_str()).collect();
            format!(
                r#"<nav aria-label="Main"><a href="/console">Overview</a> <a href="/console/reviews">Reviews</a> <a href="/console/revocations">Revocations</a> <a href="/console/templates">Templates</a> <a href="/console/contacts">Contacts</a> <a href="/console/report">Report</a> <a href="/console/experiments">Experiments</a></nav>
<div class="who">Signed in as <strong id="who">{}</strong> <span class="groups">({})</span>
<form method="post" action="/console/signout" class="inline"><input type="hidden" name="csrf" value="{}"><button type="submit">Sign out</button></form></div>"#,
                esc(&p.name),
                esc(&groups.join(", ")),
                esc(csrf)
            )
        }
        None => String::new(),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{} · optline</title><link rel="stylesheet" href="/console/style.css"></head>
<body><header><span class="brand">optline</span>{nav}</header>
<main><h1>{}</h1>
{body}
</main></body></html>
"#,
        esc(title),
        esc(title)
    )
}

/// A table with a header row; cells are already HTML.
pub fn table(id: &str, headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!(r#"<div class="scroll"><table id="{}"><thead><tr>"#, esc(id));
    for h in headers {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        let _ = write!(
            out,
            r#"<tr><td colspan="{}" class="empty">Nothing here.</td></tr>"#,
            headers.len()
        );
    }
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
    out
}

/// A POST form with the CSRF field, `fields` (already HTML) and a button.
pub fn form(action: &str, csrf: &str, fields: &str, button: &str, name: &str) -> String {
    format!(
        r#"<form method="post" action="{}" class="action" data-action="{}"><input type="hidden" name="csrf" value="{}">{fields}<button type="submit" name="do" value="{}">{}</button></form>"#,
        esc(action),
        esc(name),
        esc(csrf),
        esc(name),
        esc(button)
    )
}

/// A hidden input.
pub fn hidden(name: &str, value: &str) -> String {
    format!(
        r#"<input type="hidden" name="{}" value="{}">"#,
        esc(name),
        esc(value)
    )
}

/// A labelled text input.
pub fn text_input(name: &str, label: &str, required: bool) -> String {
    format!(
        r#"<label>{} <input type="text" name="{}" maxlength="500"{}></label>"#,
        esc(label),
        esc(name),
        if required { " required" } else { "" }
    )
}

/// A notice at the top of a page.
pub fn notice(kind: &str, text: &str) -> String {
    format!(
        r#"<p class="notice {}" role="status">{}</p>"#,
        esc(kind),
        esc(text)
    )
}

/// The stylesheet: readable on a phone, printable.
pub const STYLE: &str = r#"
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1b1f24;background:#f7f8fa;line-height:1.45}
header{background:#123;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.8rem;align-items:center}
header a{color:#fff;margin-right:.8rem}
.brand{font-weight:700;letter-spacing:.04em}
.who{margin-left:auto;font-size:.9rem}
.groups{opacity:.8}
main{padding:1rem;max-width:72rem;margin:auto}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:1.6rem}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.92rem}
th,td{border:1px solid #d5d9de;padding:.35rem .5rem;text-align:left;vertical-align:top}
th{background:#eef1f4}
.scroll{overflow-x:auto}
.empty{color:#666;font-style:italic}
form.inline,form.action{display:inline-block;margin:.15rem .3rem .15rem 0}
form.action input[type=text]{width:12rem}
button{padding:.3rem .7rem;border:1px solid #345;background:#fff;border-radius:4px;cursor:pointer}
button:hover{background:#e7eef6}
.notice{padding:.5rem .8rem;border-radius:4px;background:#e8f4ea;border:1px solid #9c9}
.notice.error{background:#fbeaea;border-color:#d99}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{background:#fff;border:1px solid #d5d9de;border-radius:6px;padding:.7rem 1rem;min-width:10rem}
.card .n{font-size:1.6rem;font-weight:700}
pre,.body{white-space:pre-wrap;background:#fff;border:1px solid #d5d9de;padding:.5rem;font-size:.92rem}
.ok{color:#185c28;font-weight:600}.bad{color:#a11;font-weight:600}
label{display:inline-block;margin:.2rem .5rem .2rem 0}
fieldset{border:1px solid #d5d9de;background:#fff;margin:.6rem 0}
@media (max-width:40rem){header{font-size:.9rem}.who{margin-left:0}th,td{font-size:.85rem}}
@media print{header,form,nav{display:none}body{background:#fff}main{max-width:none}}
"#;
