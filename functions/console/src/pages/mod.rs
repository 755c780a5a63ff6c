//! The pages: each reads through a use case, renders, and for a form,
//! acts through the same use case the JSON APIs call, as the signed-in
//! person.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use optline_consent::{casework, record, Consent, ConsentError};
use optline_identity::{Group, Person};
use optline_library::{Library, LibraryError};
use optline_policy::template::review::{ReviewError, VersionState};

use crate::html::{self, esc, seg, table};
use crate::{html_response, refusal, Deps};

mod casework_pages;
mod contacts;
mod outcomes;
mod templates;

pub use casework_pages::{complete_revocation, resolve, review_page as reviews, revocations};
pub use contacts::{find_contact, go_to_contact, proof_json, proof_page};
pub use outcomes::{experiments_page, report_page};
pub use templates::{template_action, template_version, templates};

pub(super) type Page = Response<Body>;

pub(super) const CASEWORK: &[Group] = &[Group::Staff, Group::Compliance];
pub(super) const TEMPLATE_GROUPS: &[Group] = &[
    Group::Operations,
    Group::Compliance,
    Group::Legal,
    Group::Clinical,
];

pub(super) fn consent(deps: &Deps) -> Consent<'_> {
    Consent {
        store: deps.store.as_ref(),
        default_program: &deps.default_program,
    }
}

pub(super) fn library(deps: &Deps) -> Library<'_> {
    Library::new(deps.store.as_ref(), deps.policy, &deps.lint)
}

pub(super) fn when(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

pub(super) fn ok(who: &Person, csrf: &str, title: &str, body: &str) -> Page {
    html_response(StatusCode::OK, html::page(title, Some(who), csrf, body))
}

/// `Err` is the 403 page when `who` is in none of `groups`.
#[allow(clippy::result_large_err, reason = "the error is the page to send")]
pub(super) fn allowed(who: &Person, csrf: &str, groups: &[Group]) -> Result<(), Page> {
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

pub(super) fn consent_refusal(who: &Person, csrf: &str, e: &ConsentError) -> Page {
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

pub(super) fn library_refusal(who: &Person, csrf: &str, e: &LibraryError) -> Page {
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
    body.push_str(&outcomes::overview_section(deps, now).await);
    ok(who, csrf, "Overview", &body)
}
