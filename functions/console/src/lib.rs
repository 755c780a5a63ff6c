//! # console
//!
//! Where the people who answer for a texting program work it: server-rendered
//! pages over the same use cases as the JSON APIs ([`optline_consent`],
//! [`optline_library`]), at `/console` on the same HTTP API.
//!
//! | page | who | what |
//! |---|---|---|
//! | `/console` | everyone | queue sizes, deadlines, templates waiting for review |
//! | `/console/reviews` | staff, compliance | doubtful revocations and ambiguous replies (confirm, restore with a reason, no action); callbacks (assign, close) |
//! | `/console/revocations` | staff, compliance | revocations taken off SMS and their 10-business-day deadline |
//! | `/console/templates` | template groups | versions, lint, preview, diff; submit, approve or reject in your role, publish, retire |
//! | `/console/contacts/{id}` | staff, compliance, legal, operations, admin | a contact's proof: disclosures, consent events, decisions and sends, the audit chain's verification; reveal the number, export as JSON or print |
//!
//! **Sign-in.** In the cloud, Cognito's hosted UI (authorization code with
//! PKCE); locally, a password form against the emulator's user pool. Either
//! way the session is the ID token Cognito issued, kept in a `Secure`,
//! `HttpOnly`, `SameSite=Strict` cookie and verified on every request like
//! the APIs verify it; what a person may do comes from their groups.
//!
//! **Safety.** Every form carries a CSRF token bound to the session; every
//! answer carries a strict Content-Security-Policy (no script at all: the
//! pages work without JavaScript), `no-store` caching and no referrer. Phone
//! numbers are masked; revealing one, and exporting a proof, is written to
//! the contact's audit chain with the person. URLs carry ids, never PHI.

pub mod html;
mod pages;
pub mod session;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use lambda_http::http::{HeaderValue, Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use optline_identity::{Group, Person, Verifier};
use optline_policy::template::lint::LintConfig;
use optline_policy::template::review::ReviewPolicy;
use optline_ports::Store;

pub use session::SignIn;

/// What the console needs.
#[derive(Clone)]
pub struct Deps {
    /// The table.
    pub store: Arc<dyn Store>,
    /// Verifies sessions against the deployment's Cognito pool.
    pub people: Arc<Verifier>,
    /// How people sign in.
    pub sign_in: SignIn,
    /// Approval validity.
    pub policy: ReviewPolicy,
    /// Lint lists.
    pub lint: LintConfig,
    /// The program a contact joins when none is named.
    pub default_program: String,
    /// Each program's no-show rate before texting, for the report.
    pub no_show_baselines: std::collections::BTreeMap<String, f64>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps").finish_non_exhaustive()
    }
}

/// The strict policy every answer carries: nothing but this origin's
/// stylesheet, forms posting only here, no framing, no script.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Adds the headers every answer carries.
fn secured(mut response: Response<Body>) -> Response<Body> {
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        ("strict-transport-security", "max-age=31536000"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// An HTML answer.
pub(crate) fn html_response(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// A 303 to `location` (a path on this console).
pub(crate) fn see_other(location: &str) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert("location", value);
    }
    response
}

/// A page explaining a refusal.
pub(crate) fn refusal(
    status: StatusCode,
    person: Option<&Person>,
    csrf: &str,
    why: &str,
) -> Response<Body> {
    html_response(
        status,
        html::page(
            status.canonical_reason().unwrap_or("Refused"),
            person,
            csrf,
            &html::notice("error", why),
        ),
    )
}

/// Routes one request.
pub async fn handle(request: Request, deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    secured(route(request, deps, now).await)
}

async fn route(request: Request, deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let Some((&"console", rest)) = segments.split_first() else {
        return refusal(StatusCode::NOT_FOUND, None, "", "No such page.");
    };
    let method = request.method().clone();
    // Public: the stylesheet and signing in.
    match (&method, rest) {
        (&Method::GET, ["style.css"]) => {
            let mut r = Response::new(Body::from(html::STYLE));
            r.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/css; charset=utf-8"),
            );
            return r;
        }
        (&Method::GET, ["signin"]) => return session::sign_in_page(&request, deps, None),
        (&Method::POST, ["signin"]) => return session::sign_in(&request, deps).await,
        (&Method::GET, ["callback"]) => return session::callback(&request, deps).await,
        _ => {}
    }
    let Some(signed_in) = session::current(&request, deps).await else {
        // No session, or one whose token no longer verifies (expired,
        // altered, another pool's): 401, with the way to sign in.
        return session::sign_in_required(&request, deps);
    };
    let form = if method == Method::POST {
        match session::form(&request, &signed_in) {
            Ok(f) => Some(f),
            Err(denied) => return denied,
        }
    } else {
        None
    };
    let who = &signed_in.person;
    let csrf = signed_in.csrf.as_str();
    let query = request.query_string_parameters();
    match (&method, rest, form) {
        (&Method::POST, ["signout"], _) => session::sign_out(),
        (&Method::GET, [], _) => pages::overview(deps, who, csrf, now).await,
        (&Method::GET, ["reviews"], _) => {
            pages::reviews(deps, who, csrf, query.first("status") == Some("all"), None).await
        }
        (&Method::POST, ["reviews", id], Some(f)) => {
            pages::resolve(deps, who, csrf, id, &f, now).await
        }
        (&Method::GET, ["revocations"], _) => {
            let status = query.first("status").unwrap_or("pending").to_owned();
            pages::revocations(deps, who, csrf, &status, None, now).await
        }
        (&Method::POST, ["revocations", id, "complete"], Some(_)) => {
            pages::complete_revocation(deps, who, csrf, id, now).await
        }
        (&Method::GET, ["templates"], _) => pages::templates(deps, who, csrf, now).await,
        (&Method::GET, ["templates", id, v], _) => {
            pages::template_version(deps, who, csrf, id, v, None, now).await
        }
        (&Method::POST, ["templates", id, v], Some(f)) => {
            pages::template_action(deps, who, csrf, id, v, &f, now).await
        }
        (&Method::GET, ["report"], _) => {
            let q = (
                query.first("from"),
                query.first("to"),
                query.first("program"),
                query.first("coverage"),
            );
            pages::report_page(deps, who, csrf, q, now).await
        }
        (&Method::GET, ["experiments"], _) => pages::experiments_page(deps, who, csrf, now).await,
        (&Method::GET, ["contacts"], _) => pages::find_contact(who, csrf, None),
        (&Method::POST, ["contacts"], Some(f)) => pages::go_to_contact(who, csrf, &f),
        (&Method::GET, ["contacts", id], _) => {
            pages::proof_page(deps, who, csrf, id, false, now).await
        }
        (&Method::POST, ["contacts", id, "reveal"], Some(_)) => {
            pages::proof_page(deps, who, csrf, id, true, now).await
        }
        (&Method::GET, ["contacts", id, "proof.json"], _) => {
            pages::proof_json(deps, who, id, now).await
        }
        _ => refusal(StatusCode::NOT_FOUND, Some(who), csrf, "No such page."),
    }
}

/// The console's deps from the environment, as the Lambda and the local
/// server build them: the table (with the audit key from its secret), the
/// programs document, the pool's keys, and how people sign in.
pub async fn deps_from_env(
    clients: &optline_config::AwsClients,
) -> Result<Deps, Box<dyn std::error::Error + Send + Sync>> {
    let config = optline_aws::load_config(clients).await?;
    let store = optline_aws::table_store(clients, &config).await?;
    Ok(Deps {
        store: Arc::new(store),
        people: Arc::new(Verifier::from_env().await?),
        sign_in: SignIn::from_env()?,
        policy: ReviewPolicy {
            approval_valid_days: config.approval_valid_days,
        },
        lint: optline_library::lint_config(config.template_lint.as_deref())?,
        default_program: config.default_program.clone(),
        no_show_baselines: config
            .programs
            .values()
            .filter_map(|p| Some((p.id.clone(), f64::from(p.no_show_baseline_percent?) / 100.0)))
            .collect(),
    })
}

/// The groups that may read contacts' proofs.
pub(crate) const PROOF_READERS: &[Group] = &[
    Group::Staff,
    Group::Compliance,
    Group::Legal,
    Group::Operations,
    Group::Admin,
];
