//! Template versions: read, preview, diff, and act in your role.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use optline_identity::Person;
use optline_library::diff;
use optline_policy::template::review::{Action, Role, VersionState};

use crate::html::{self, esc, form, hidden, seg, table, text_input};
use crate::{refusal, Deps};

use super::{allowed, library, library_refusal, ok, when, Page, TEMPLATE_GROUPS};

/// `GET /console/templates`.
pub async fn templates(deps: &Deps, who: &Person, csrf: &str, now: DateTime<Utc>) -> Page {
    if let Err(p) = allowed(who, csrf, TEMPLATE_GROUPS) {
        return p;
    }
    let lib = library(deps);
    let ids = match lib.ids().await {
        Ok(i) => i,
        Err(e) => return library_refusal(who, csrf, &e),
    };
    let mut rows = Vec::new();
    for id in ids {
        let versions = match lib.versions(&id, now).await {
            Ok(v) => v,
            Err(e) => return library_refusal(who, csrf, &e),
        };
        for v in versions {
            let missing: Vec<&str> = v.missing_approvals.iter().map(|r| r.as_str()).collect();
            rows.push(vec![
                format!(
                    r#"<a href="/console/templates/{}/{}">{}</a>"#,
                    seg(&v.stored.version.id),
                    v.stored.version.version,
                    esc(&v.stored.version.reference())
                ),
                esc(&v.stored.version.purpose),
                esc(v.stored.lifecycle.state.as_str()),
                esc(&format!("{:?}", v.stored.lifecycle.tier).to_lowercase()),
                esc(&missing.join(", ")),
                if v.sendable {
                    "yes".to_owned()
                } else {
                    "no".to_owned()
                },
            ]);
        }
    }
    let body = table(
        "templates",
        &[
            "version",
            "purpose",
            "state",
            "risk tier",
            "needs",
            "sendable",
        ],
        &rows,
    );
    ok(who, csrf, "Templates", &body)
}

fn parse_version(raw: &str) -> Option<u32> {
    raw.parse().ok().filter(|v| *v > 0)
}

/// `GET /console/templates/{id}/{v}`.
pub async fn template_version(
    deps: &Deps,
    who: &Person,
    csrf: &str,
    id: &str,
    v: &str,
    notice: Option<(&str, &str)>,
    now: DateTime<Utc>,
) -> Page {
    if let Err(p) = allowed(who, csrf, TEMPLATE_GROUPS) {
        return p;
    }
    let Some(number) = parse_version(v) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            Some(who),
            csrf,
            "A version is a positive number.",
        );
    };
    let lib = library(deps);
    let view = match lib.get(id, number, now).await {
        Ok(v) => v,
        Err(e) => return library_refusal(who, csrf, &e),
    };
    let version = &view.stored.version;
    let lc = &view.stored.lifecycle;
    let mut body = notice.map(|(k, n)| html::notice(k, n)).unwrap_or_default();
    body.push_str(&format!(
        r#"<p id="state">State: <strong>{}</strong> · risk tier <strong>{}</strong> · sendable: {}</p><div class="body" id="template-body">{}</div>"#,
        esc(lc.state.as_str()),
        esc(&format!("{:?}", lc.tier).to_lowercase()),
        if view.sendable { "yes" } else { "no" },
        esc(&version.body)
    ));
    if let Some(reason) = &version.change_reason {
        body.push_str(&format!("<p>Why this version: {}</p>", esc(reason)));
    }
    body.push_str("<h2>Variables</h2>");
    let vars: Vec<Vec<String>> = version
        .variables
        .iter()
        .map(|v| {
            vec![
                esc(&v.name),
                esc(&format!("{:?}", v.kind).to_lowercase()),
                v.max_len.to_string(),
                esc(&format!("{:?}", v.data_class).to_lowercase()),
            ]
        })
        .collect();
    body.push_str(&table(
        "variables",
        &["name", "kind", "max length", "data class"],
        &vars,
    ));
    body.push_str("<h2>Lint findings</h2>");
    let findings: Vec<Vec<String>> = view
        .findings
        .iter()
        .map(|f| {
            vec![
                esc(&format!("{:?}", f.severity).to_lowercase()),
                esc(&f.rule),
                esc(&f.message),
            ]
        })
        .collect();
    body.push_str(&table(
        "findings",
        &["severity", "rule", "finding"],
        &findings,
    ));
    body.push_str("<h2>Preview with sample values</h2>");
    match lib.preview(version, None) {
        Ok(p) => body.push_str(&format!(
            r#"<div class="body" id="preview">{}</div><p id="segments">{} characters, {:?} encoding, {} segment(s); worst case with the longest values: {} segment(s).</p>"#,
            esc(&p.body),
            p.characters,
            p.encoding,
            p.segments,
            p.worst_case_segments
        )),
        Err(e) => body.push_str(&html::notice("error", &e.to_string())),
    }
    body.push_str("<h2>Approvals</h2>");
    let approvals: Vec<Vec<String>> = lc
        .approvals
        .iter()
        .map(|a| {
            vec![
                esc(a.role.as_str()),
                esc(if a.actor_name.is_empty() {
                    &a.actor
                } else {
                    &a.actor_name
                }),
                esc(&a.actor),
                esc(&when(a.at)),
            ]
        })
        .collect();
    body.push_str(&table(
        "approvals",
        &["role", "by", "identity", "at"],
        &approvals,
    ));
    let missing: Vec<&str> = view.missing_approvals.iter().map(|r| r.as_str()).collect();
    if !missing.is_empty() {
        body.push_str(&format!(
            r#"<p id="missing">Still needs: {}</p>"#,
            esc(&missing.join(", "))
        ));
    }
    // Actions this person could take; the use case decides.
    let action = format!("/console/templates/{}/{}", seg(id), number);
    let mut forms = String::new();
    match lc.state {
        VersionState::Draft => {
            forms.push_str(&form(
                &action,
                csrf,
                &hidden("do", "submit"),
                "Submit for review",
                "submit",
            ));
        }
        VersionState::InReview | VersionState::Approved | VersionState::Published => {
            for role in who.review_roles() {
                if optline_policy::template::review::required_roles(lc.tier).contains(&role) {
                    forms.push_str(&form(
                        &action,
                        csrf,
                        &hidden("role", role.as_str()),
                        &format!("Approve as {}", role.as_str()),
                        &format!("approve-{}", role.as_str()),
                    ));
                }
            }
            if lc.state != VersionState::Published {
                forms.push_str(&form(
                    &action,
                    csrf,
                    &text_input("reason", "Reason", true),
                    "Reject",
                    "reject",
                ));
            }
            if lc.state == VersionState::Approved {
                forms.push_str(&form(&action, csrf, "", "Publish", "publish"));
            }
        }
        VersionState::Retired => {}
    }
    if lc.state != VersionState::Retired {
        forms.push_str(&form(
            &action,
            csrf,
            &text_input("reason", "Reason", true),
            "Retire",
            "retire",
        ));
    }
    body.push_str(&format!("<h2>Act</h2><div id=\"actions\">{forms}</div>"));
    body.push_str("<h2>History</h2>");
    let history: Vec<Vec<String>> = lc
        .history
        .iter()
        .map(|t| {
            vec![
                esc(&t.action),
                esc(if t.actor_name.is_empty() {
                    &t.actor
                } else {
                    &t.actor_name
                }),
                esc(&when(t.at)),
                esc(&format!("{} → {}", t.from.as_str(), t.to.as_str())),
                esc(t.role.map(Role::as_str).unwrap_or_default()),
                esc(t.note.as_deref().unwrap_or_default()),
            ]
        })
        .collect();
    body.push_str(&table(
        "history",
        &["action", "by", "at", "state", "role", "note"],
        &history,
    ));
    if number > 1 {
        if let Ok(previous) = lib.get(id, number - 1, now).await {
            body.push_str(&format!("<h2>Changes from version {}</h2>", number - 1));
            let changes: Vec<Vec<String>> = diff(&previous.stored.version, version)
                .iter()
                .map(|c| {
                    vec![
                        esc(&c.field),
                        esc(&c.from.to_string()),
                        esc(&c.to.to_string()),
                    ]
                })
                .collect();
            body.push_str(&table("diff", &["field", "before", "after"], &changes));
        }
    }
    ok(
        who,
        csrf,
        &format!("Template {}", version.reference()),
        &body,
    )
}

/// `POST /console/templates/{id}/{v}`: `do` = submit, approve-<role>,
/// reject, publish, retire.
pub async fn template_action(
    deps: &Deps,
    who: &Person,
    csrf: &str,
    id: &str,
    v: &str,
    fields: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Page {
    if let Err(p) = allowed(who, csrf, TEMPLATE_GROUPS) {
        return p;
    }
    let Some(number) = parse_version(v) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            Some(who),
            csrf,
            "A version is a positive number.",
        );
    };
    let reason = fields.get("reason").cloned().unwrap_or_default();
    let verb = fields.get("do").map(String::as_str).unwrap_or_default();
    let action = match verb {
        "submit" => Action::Submit,
        "publish" => Action::Publish,
        "reject" => Action::Reject { reason },
        "retire" => Action::Retire { reason },
        other => match other
            .strip_prefix("approve-")
            .and_then(|r| serde_json::from_value::<Role>(serde_json::Value::from(r)).ok())
        {
            Some(role) => Action::Approve { role },
            None => return refusal(StatusCode::BAD_REQUEST, Some(who), csrf, "Unknown action."),
        },
    };
    let actor = who.review_actor();
    match library(deps).act(id, number, &action, &actor, now).await {
        Ok(_) => {
            let done = format!("Done: {} recorded as {}.", action.name(), who.name);
            template_version(deps, who, csrf, id, v, Some(("ok", &done)), now).await
        }
        Err(e) => library_refusal(who, csrf, &e),
    }
}
