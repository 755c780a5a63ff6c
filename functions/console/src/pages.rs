//! The pages: each reads through a use case, renders, and for a form,
//! acts through the same use case the JSON APIs call, as the signed-in
//! person.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Response};
use optline_consent::{casework, proof, record, Consent, ConsentError};
use optline_identity::{Group, Person};
use optline_library::{diff, Library, LibraryError};
use optline_policy::template::review::{Action, ReviewError, Role, VersionState};

use crate::html::{self, esc, form, hidden, seg, table, text_input};
use crate::{html_response, refusal, see_other, Deps, PROOF_READERS};

type Page = Response<Body>;

const CASEWORK: &[Group] = &[Group::Staff, Group::Compliance];
const TEMPLATE_GROUPS: &[Group] = &[
    Group::Operations,
    Group::Compliance,
    Group::Legal,
    Group::Clinical,
];

fn consent(deps: &Deps) -> Consent<'_> {
    Consent {
        store: deps.store.as_ref(),
        default_program: &deps.default_program,
    }
}

fn library(deps: &Deps) -> Library<'_> {
    Library::new(deps.store.as_ref(), deps.policy, &deps.lint)
}

fn when(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn ok(who: &Person, csrf: &str, title: &str, body: &str) -> Page {
    html_response(StatusCode::OK, html::page(title, Some(who), csrf, body))
}

/// `Err` is the 403 page when `who` is in none of `groups`.
#[allow(clippy::result_large_err, reason = "the error is the page to send")]
fn allowed(who: &Person, csrf: &str, groups: &[Group]) -> Result<(), Page> {
    if who.any(groups) {
        return Ok(());
    }
    let names: Vec<&str> = groups.iter().map(|g| g.as_str()).collect();
    Err(refusal(
        StatusCode::FORBIDDEN,
        Some(who),
        csrf,
        &format!("This page needs one of the groups: {}.", names.join(", ")),
    ))
}

fn consent_refusal(who: &Person, csrf: &str, e: &ConsentError) -> Page {
    let status = match e {
        ConsentError::Invalid(_) => StatusCode::BAD_REQUEST,
        ConsentError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
        ConsentError::NotFound(_) => StatusCode::NOT_FOUND,
        ConsentError::Conflict(_) => StatusCode::CONFLICT,
        ConsentError::Busy | ConsentError::Port(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    if matches!(e, ConsentError::Port(_)) {
        tracing::error!(error = %e, "console storage failure");
        return refusal(
            status,
            Some(who),
            csrf,
            "Storage is unavailable; try again.",
        );
    }
    refusal(status, Some(who), csrf, &e.to_string())
}

fn library_refusal(who: &Person, csrf: &str, e: &LibraryError) -> Page {
    let status = match e {
        LibraryError::NotFound(_) => StatusCode::NOT_FOUND,
        LibraryError::Invalid(_) => StatusCode::BAD_REQUEST,
        LibraryError::Conflict => StatusCode::CONFLICT,
        LibraryError::Port(_) => StatusCode::SERVICE_UNAVAILABLE,
        LibraryError::Review(r) => match r {
            ReviewError::AuthorApproves
            | ReviewError::MissingRole { .. }
            | ReviewError::SameApprover(_) => StatusCode::FORBIDDEN,
            ReviewError::LintErrors(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ReviewError::ReasonRequired | ReviewError::RoleNotRequired { .. } => {
                StatusCode::BAD_REQUEST
            }
            ReviewError::WrongState { .. } | ReviewError::QuorumMissing(_) => StatusCode::CONFLICT,
        },
    };
    if matches!(e, LibraryError::Port(_)) {
        tracing::error!(error = %e, "console storage failure");
        return refusal(
            status,
            Some(who),
            csrf,
            "Storage is unavailable; try again.",
        );
    }
    refusal(status, Some(who), csrf, &e.to_string())
}

/// `GET /console`.
pub async fn overview(deps: &Deps, who: &Person, csrf: &str, now: DateTime<Utc>) -> Page {
    let c = consent(deps);
    let items = match casework::review_items(c, true).await {
        Ok(i) => i,
        Err(e) => return consent_refusal(who, csrf, &e),
    };
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for item in &items {
        *by_kind.entry(item.kind.as_str()).or_default() += 1;
    }
    let pending = record::revocation_requests(c, "pending", now)
        .await
        .map(|r| r.len());
    let breached = record::revocation_requests(c, "breached", now)
        .await
        .map(|r| r.len());
    let (Ok(pending), Ok(breached)) = (pending, breached) else {
        return refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(who),
            csrf,
            "Storage is unavailable; try again.",
        );
    };
    let lib = library(deps);
    let mut states: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut waiting = Vec::new();
    match lib.ids().await {
        Ok(ids) => {
            for id in ids {
                if let Ok(versions) = lib.versions(&id, now).await {
                    for v in versions {
                        *states.entry(v.stored.lifecycle.state.as_str()).or_default() += 1;
                        if v.stored.lifecycle.state == VersionState::InReview {
                            waiting.push(v);
                        }
                    }
                }
            }
        }
        Err(e) => return library_refusal(who, csrf, &e),
    }
    let card = |id: &str, n: usize, label: &str, href: &str| {
        format!(
            r#"<a class="card" id="{}" href="{}"><div class="n">{n}</div>{}</a>"#,
            esc(id),
            esc(href),
            esc(label)
        )
    };
    let mut body = String::from(r#"<div class="cards">"#);
    body.push_str(&card(
        "open-reviews",
        items.len(),
        "review items waiting",
        "/console/reviews",
    ));
    for (kind, n) in &by_kind {
        body.push_str(&card(
            &format!("open-{kind}"),
            *n,
            &kind.replace('_', " "),
            "/console/reviews",
        ));
    }
    body.push_str(&card(
        "revocations-pending",
        pending,
        "off-SMS revocations pending (10 business days)",
        "/console/revocations",
    ));
    body.push_str(&card(
        "revocations-breached",
        breached,
        "past their deadline",
        "/console/revocations?status=breached",
    ));
    body.push_str(&card(
        "templates-in-review",
        waiting.len(),
        "template versions waiting for approval",
        "/console/templates",
    ));
    body.push_str("</div><h2>Templates by state</h2>");
    let rows: Vec<Vec<String>> = states
        .iter()
        .map(|(s, n)| vec![esc(s), n.to_string()])
        .collect();
    body.push_str(&table("template-states", &["state", "versions"], &rows));
    body.push_str("<h2>Waiting for approval</h2>");
    let rows: Vec<Vec<String>> = waiting
        .iter()
        .map(|v| {
            let r = v.stored.version.reference();
            let missing: Vec<&str> = v.missing_approvals.iter().map(|r| r.as_str()).collect();
            vec![
                format!(
                    r#"<a href="/console/templates/{}/{}">{}</a>"#,
                    seg(&v.stored.version.id),
                    v.stored.version.version,
                    esc(&r)
                ),
                esc(&format!("{:?}", v.stored.lifecycle.tier).to_lowercase()),
                esc(&missing.join(", ")),
            ]
        })
        .collect();
    body.push_str(&table("waiting", &["version", "tier", "needs"], &rows));
    ok(who, csrf, "Overview", &body)
}

/// `GET /console/reviews`.
pub async fn reviews(
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
            reviews(
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
