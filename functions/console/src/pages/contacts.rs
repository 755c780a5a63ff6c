//! A contact's proof: read, reveal the number, export.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use optline_consent::proof;
use optline_identity::Person;

use crate::html::{self, esc, form, seg, table};
use crate::{refusal, see_other, Deps, PROOF_READERS};

use super::{allowed, consent, consent_refusal, ok, when, Page};

/// `GET /console/contacts`: find a contact by id.
pub fn find_contact(who: &Person, csrf: &str, notice: Option<&str>) -> Page {
    if let Err(p) = allowed(who, csrf, PROOF_READERS) {
        return p;
    }
    let mut body = notice.map(|n| html::notice("error", n)).unwrap_or_default();
    body.push_str(&format!(
        r#"<p>A contact's proof: what they were shown, every consent event, every decision to text them or not and why, and whether the audit chain verifies.</p>
<form method="post" action="/console/contacts" id="find"><input type="hidden" name="csrf" value="{}"><label>Contact id <input type="text" name="id" required maxlength="64"></label><button type="submit">Open</button></form>"#,
        esc(csrf)
    ));
    ok(who, csrf, "Contacts", &body)
}

/// `POST /console/contacts`: to the contact's page (the id is an optline
/// id, not PHI; a search never puts a name or number in a URL).
pub fn go_to_contact(who: &Person, csrf: &str, fields: &HashMap<String, String>) -> Page {
    match fields.get("id").map(|i| i.trim()) {
        Some(id) if optline_ports::ContactId::parse(id).is_ok() => {
            see_other(&format!("/console/contacts/{}", seg(id)))
        }
        _ => find_contact(who, csrf, Some("That is not a contact id.")),
    }
}

/// `GET /console/contacts/{id}`, and `POST …/reveal` (the same page with
/// the number shown, the reveal written to the contact's audit chain).
pub async fn proof_page(
    deps: &Deps,
    who: &Person,
    csrf: &str,
    id: &str,
    reveal: bool,
    now: DateTime<Utc>,
) -> Page {
    if let Err(p) = allowed(who, csrf, PROOF_READERS) {
        return p;
    }
    let c = consent(deps);
    if reveal {
        if let Err(e) =
            proof::record_access(c, id, proof::Access::PhoneRevealed, &who.label(), now).await
        {
            return consent_refusal(who, csrf, &e);
        }
    }
    let (proven, chain) = match (proof::proof(c, id).await, proof::audit_chain(c, id).await) {
        (Ok(p), Ok(ch)) => (p, ch),
        (Err(e), _) | (_, Err(e)) => return consent_refusal(who, csrf, &e),
    };
    let contact = &proven.contact;
    let number = if reveal {
        format!(
            r#"<span id="phone">{}</span> <small>(revealed to you; recorded)</small>"#,
            esc(contact.phone.as_str())
        )
    } else {
        format!(
            r#"<span id="phone">{}</span> {}"#,
            esc(&contact.phone.masked()),
            form(
                &format!("/console/contacts/{}/reveal", seg(id)),
                csrf,
                "",
                "Reveal number",
                "reveal"
            )
        )
    };
    let mut body = format!(
        r#"<p>Contact <strong>{}</strong> · program {} · number {} · time zone {}</p>
<p><a href="/console/contacts/{}/proof.json" id="export-json" download>Export as JSON</a> · print this page for a paper copy (the print view leaves out navigation and buttons).</p>"#,
        esc(contact.id.as_str()),
        esc(&contact.program),
        number,
        esc(contact.time_zone.as_deref().unwrap_or("unknown")),
        seg(id)
    );
    body.push_str(&match &chain.broken {
        None => format!(
            r#"<p id="chain" class="ok">The audit chain verifies: {} records, each linked to the one before.</p>"#,
            chain.records.len()
        ),
        Some(b) => format!(
            r#"<p id="chain" class="bad">The audit chain does not verify: {}</p>"#,
            esc(&format!("{b:?}"))
        ),
    });
    body.push_str("<h2>Consent events and what was shown</h2>");
    let events: Vec<Vec<String>> = proven
        .events
        .iter()
        .map(|p| {
            let e = &p.event;
            vec![
                esc(&when(e.at)),
                esc(&format!("{:?}", e.action).to_lowercase()),
                esc(&format!("{:?}", e.scope).to_lowercase()),
                esc(&if e.categories.is_empty() {
                    "all".to_owned()
                } else {
                    e.categories.join(", ")
                }),
                esc(&format!("{:?}", e.channel).to_lowercase()),
                esc(&e.actor),
                p.disclosure_text
                    .as_deref()
                    .map(|t| format!(r#"<div class="body">{}</div>"#, esc(t)))
                    .unwrap_or_default(),
                esc(&serde_json::to_string(&e.evidence).unwrap_or_default()),
            ]
        })
        .collect();
    body.push_str(&table(
        "consent-events",
        &[
            "at",
            "action",
            "scope",
            "categories",
            "channel",
            "recorded by",
            "exact text shown",
            "evidence",
        ],
        &events,
    ));
    body.push_str("<h2>Every record: decisions, sends, deliveries, reviews</h2>");
    let records: Vec<Vec<String>> = chain
        .records
        .iter()
        .map(|r| {
            let rules: Vec<String> = r
                .content
                .rules
                .iter()
                .map(|o| format!("{} {:?}: {}", o.id, o.verdict, o.detail))
                .collect();
            vec![
                r.seq.to_string(),
                esc(&when(r.content.at)),
                esc(&r.content.kind),
                esc(&r.content.action),
                esc(r.content.template.as_deref().unwrap_or_default()),
                esc(r.content.legal_basis.as_deref().unwrap_or_default()),
                esc(&rules.join("; ")),
                esc(&r.content.reasons.join("; ")),
                esc(r.content.detail.as_deref().unwrap_or_default()),
            ]
        })
        .collect();
    body.push_str(&table(
        "records",
        &[
            "#",
            "at",
            "kind",
            "action",
            "template",
            "legal basis",
            "rules",
            "reasons",
            "detail",
        ],
        &records,
    ));
    ok(who, csrf, "Proof of consent", &body)
}

/// `GET /console/contacts/{id}/proof.json`: the proof as a download, the
/// export written to the contact's audit chain.
pub async fn proof_json(deps: &Deps, who: &Person, id: &str, now: DateTime<Utc>) -> Page {
    if !who.any(PROOF_READERS) {
        return refusal(
            StatusCode::FORBIDDEN,
            Some(who),
            "",
            "Exporting a proof needs a proof reader's group.",
        );
    }
    let c = consent(deps);
    if let Err(e) =
        proof::record_access(c, id, proof::Access::ProofExported, &who.label(), now).await
    {
        return consent_refusal(who, "", &e);
    }
    let (proven, chain) = match (proof::proof(c, id).await, proof::audit_chain(c, id).await) {
        (Ok(p), Ok(ch)) => (p, ch),
        (Err(e), _) | (_, Err(e)) => return consent_refusal(who, "", &e),
    };
    let document = serde_json::json!({
        "exported_at": now,
        "exported_by": who.label(),
        "contact": optline_consent::contacts::view(&proven.contact),
        "consent_events": proven.events,
        "audit_chain": {
            "verified": chain.broken.is_none(),
            "break": chain.broken,
            "records": chain.records,
        },
    });
    let mut response = Response::new(Body::from(
        serde_json::to_string_pretty(&document).unwrap_or_default(),
    ));
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"proof-{}.json\"",
        seg(proven.contact.id.as_str())
    )) {
        headers.insert("content-disposition", v);
    }
    response
}
