//! The review queue and off-SMS revocations.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use optline_consent::{casework, record};
use optline_identity::Person;

use crate::html::{self, esc, form, hidden, seg, table, text_input};
use crate::{refusal, Deps};

use super::{allowed, consent, consent_refusal, ok, when, Page, CASEWORK};

/// `GET /console/reviews`.
pub async fn review_page(
    deps: &Deps,
    who: &Person,
    csrf: &str,
    all: bool,
    notice: Option<&str>,
) -> Page {
    if let Err(p) = allowed(who, csrf, CASEWORK) {
        return p;
    }
    let items = match casework::review_items(consent(deps), !all).await {
        Ok(i) => i,
        Err(e) => return consent_refusal(who, csrf, &e),
    };
    let mut body = notice.map(|n| html::notice("ok", n)).unwrap_or_default();
    body.push_str(if all {
        r#"<p>Every item, resolved ones too. <a href="/console/reviews">Only open items</a></p>"#
    } else {
        r#"<p>Items waiting for a person, oldest first. <a href="/console/reviews?status=all">Show resolved items too</a></p>"#
    });
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|item| {
            let action = format!("/console/reviews/{}", seg(&item.id));
            let reason = text_input("reason", "Reason", false);
            let required = text_input("reason", "Reason", true);
            let forms = match (&item.resolution, item.kind.as_str()) {
                (Some(r), _) => format!(
                    "{} by {} at {}{}",
                    esc(&r.outcome.replace('_', " ")),
                    esc(&r.by),
                    esc(&when(r.at)),
                    r.reason
                        .as_deref()
                        .map(|x| format!(": {}", esc(x)))
                        .unwrap_or_default()
                ),
                (None, "doubtful_revocation") => [
                    form(
                        &action,
                        csrf,
                        &(hidden("action", "confirm_opt_out") + &reason),
                        "Confirm opt-out",
                        "confirm_opt_out",
                    ),
                    form(
                        &action,
                        csrf,
                        &(hidden("action", "restore") + &required),
                        "Restore consent",
                        "restore",
                    ),
                    form(
                        &action,
                        csrf,
                        &(hidden("action", "no_action") + &reason),
                        "No action",
                        "no_action",
                    ),
                ]
                .concat(),
                (None, "ambiguous_reply") => form(
                    &action,
                    csrf,
                    &(hidden("action", "no_action") + &reason),
                    "No action needed",
                    "no_action",
                ),
                (None, _) => [
                    form(
                        &action,
                        csrf,
                        &hidden("action", "assign"),
                        "Assign to me",
                        "assign",
                    ),
                    form(
                        &action,
                        csrf,
                        &(hidden("action", "close") + &required),
                        "Close",
                        "close",
                    ),
                ]
                .concat(),
            };
            vec![
                esc(&item.kind.replace('_', " ")),
                esc(&when(item.at)),
                esc(&item.phone_masked),
                item.contact_ids
                    .iter()
                    .map(|c| {
                        format!(
                            r#"<a href="/console/contacts/{}">{}</a>"#,
                            seg(c.as_str()),
                            esc(c.as_str())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
                format!(r#"<div class="body">{}</div>"#, esc(&item.body)),
                esc(&item.action_taken),
                item.assigned_to.as_deref().map(esc).unwrap_or_default(),
                forms,
            ]
        })
        .collect();
    body.push_str(&table(
        "reviews",
        &[
            "kind",
            "received",
            "number",
            "contacts",
            "reply",
            "what optline did",
            "assigned",
            "decide",
        ],
        &rows,
    ));
    ok(who, csrf, "Reviews", &body)
}

/// `POST /console/reviews/{id}`.
pub async fn resolve(
    deps: &Deps,
    who: &Person,
    csrf: &str,
    id: &str,
    fields: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Page {
    if let Err(p) = allowed(who, csrf, CASEWORK) {
        return p;
    }
    let reason = fields
        .get("reason")
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    let action = match fields.get("action").map(String::as_str) {
        Some("confirm_opt_out") => casework::ReviewAction::ConfirmOptOut { reason },
        Some("restore") => casework::ReviewAction::Restore {
            reason: reason.unwrap_or_default(),
        },
        Some("no_action") => casework::ReviewAction::NoAction { reason },
        Some("assign") => casework::ReviewAction::Assign,
        Some("close") => casework::ReviewAction::Close {
            reason: reason.unwrap_or_default(),
        },
        _ => return refusal(StatusCode::BAD_REQUEST, Some(who), csrf, "Unknown action."),
    };
    let name = action.name();
    match casework::resolve_review(consent(deps), id, action, &who.label(), now).await {
        Ok(_) => {
            review_page(
                deps,
                who,
                csrf,
                false,
                Some(&format!("Done: {} recorded.", name.replace('_', " "))),
            )
            .await
        }
        Err(e) => consent_refusal(who, csrf, &e),
    }
}

/// `GET /console/revocations?status=pending|breached|all`.
pub async fn revocations(
    deps: &Deps,
    who: &Person,
    csrf: &str,
    status: &str,
    notice: Option<&str>,
    now: DateTime<Utc>,
) -> Page {
    if let Err(p) = allowed(who, csrf, CASEWORK) {
        return p;
    }
    let requests = match record::revocation_requests(consent(deps), status, now).await {
        Ok(r) => r,
        Err(e) => return consent_refusal(who, csrf, &e),
    };
    let mut body = notice.map(|n| html::notice("ok", n)).unwrap_or_default();
    body.push_str(r#"<p>Revocations received by phone, portal or staff, applied at once and tracked until every downstream system has honoured them (10 business days). Show <a href="/console/revocations?status=pending">pending</a> · <a href="/console/revocations?status=breached">breached</a> · <a href="/console/revocations?status=all">all</a></p>"#);
    let rows: Vec<Vec<String>> = requests
        .iter()
        .map(|r| {
            let state = match (r.completed_at, r.breached(now)) {
                (Some(at), false) => {
                    format!(r#"<span class="ok">complete</span> {}"#, esc(&when(at)))
                }
                (Some(at), true) => format!(
                    r#"<span class="bad">completed late</span> {}"#,
                    esc(&when(at))
                ),
                (None, true) => r#"<span class="bad">breached</span>"#.to_owned(),
                (None, false) => "pending".to_owned(),
            };
            let act = if r.completed_at.is_none() {
                form(
                    &format!("/console/revocations/{}/complete", seg(r.id.as_str())),
                    csrf,
                    "",
                    "Every system honoured it",
                    "complete",
                )
            } else {
                esc(r.completed_by.as_deref().unwrap_or_default())
            };
            vec![
                format!(
                    r#"<a href="/console/contacts/{}">{}</a>"#,
                    seg(r.contact_id.as_str()),
                    esc(r.contact_id.as_str())
                ),
                esc(&format!("{:?}", r.channel).to_lowercase()),
                esc(&r.actor),
                esc(&when(r.received_at)),
                esc(&when(r.deadline)),
                state,
                act,
            ]
        })
        .collect();
    body.push_str(&table(
        "revocations",
        &[
            "contact",
            "channel",
            "taken by",
            "received",
            "deadline",
            "state",
            "completion",
        ],
        &rows,
    ));
    ok(who, csrf, "Revocations off SMS", &body)
}

/// `POST /console/revocations/{id}/complete`.
pub async fn complete_revocation(
    deps: &Deps,
    who: &Person,
    csrf: &str,
    id: &str,
    now: DateTime<Utc>,
) -> Page {
    if let Err(p) = allowed(who, csrf, CASEWORK) {
        return p;
    }
    match record::complete_revocation(consent(deps), id, &who.label(), now).await {
        Ok(_) => {
            revocations(
                deps,
                who,
                csrf,
                "pending",
                Some("Recorded as honoured everywhere."),
                now,
            )
            .await
        }
        Err(e) => consent_refusal(who, csrf, &e),
    }
}
