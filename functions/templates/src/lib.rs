//! # templates
//!
//! The approved template library over HTTP. Every call carries a person's
//! token from the deployment's Cognito user pool, verified here
//! ([`optline_identity`]); the roles a person holds come from the pool's
//! groups (operations, compliance, legal, clinical), never from the request,
//! and four-eyes compares the token's subject.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/templates` | every template and the state of each version |
//! | POST | `/templates` | a new draft version (number = latest + 1) |
//! | POST | `/templates/lint` | lint an unsaved draft: findings, risk tier, worst case |
//! | POST | `/templates/seed` | load the seed library (operations) |
//! | GET | `/templates/{id}` | every version of a template |
//! | GET | `/templates/{id}/versions/{v}` | one version, its findings and missing approvals |
//! | POST | `/templates/{id}/versions/{v}/preview` | render with sample or given values: encoding, segments, parts |
//! | POST | `/templates/{id}/versions/{v}/submit` | draft → in review |
//! | POST | `/templates/{id}/versions/{v}/approve` | `{"role": "compliance"}` |
//! | POST | `/templates/{id}/versions/{v}/reject` | `{"reason": "..."}` → draft |
//! | POST | `/templates/{id}/versions/{v}/publish` | approved → published |
//! | POST | `/templates/{id}/versions/{v}/retire` | `{"reason": "..."}` → retired |
//! | POST | `/templates/{id}/versions/{v}/resume` | `{"reason": "..."}`: lift the pause an opt-out spike put on it (compliance) |
//! | GET | `/templates/{id}/diff?from=1&to=2` | what changed between two versions |
//! | GET, POST | `/experiments…` | experiments among published versions ([`experiments`]) |
//!
//! Refusals say why: 400 for malformed input, 401 for a missing, expired or
//! foreign token, 403
//! for a missing role or the four-eyes rule, 404, 409 for a state that does
//! not allow the action or a concurrent change, 422 for lint errors.

mod experiments;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use optline_api::{error, json, json_body, person, port_error, require, Group, Person, Verifier};
use optline_library::{assess, diff, Draft, Library, LibraryError};
use optline_policy::template::lint::LintConfig;
use optline_policy::template::review::{Action, Actor, ReviewError, ReviewPolicy, Role};
use optline_ports::Store;
use serde::Deserialize;

/// What the templates API needs.
#[derive(Clone)]
pub struct Deps {
    /// The table.
    pub store: Arc<dyn Store>,
    /// Verifies the people calling (the deployment's Cognito user pool).
    pub people: Arc<Verifier>,
    /// Approval validity.
    pub policy: ReviewPolicy,
    /// Lint lists.
    pub lint: LintConfig,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps").finish_non_exhaustive()
    }
}

/// The groups that work on templates: any of them may read, lint and
/// author; each approves only in its own role.
const TEMPLATE_GROUPS: [Group; 4] = [
    Group::Operations,
    Group::Compliance,
    Group::Legal,
    Group::Clinical,
];

/// The review actor a verified person is: their subject, name and the
/// roles their groups grant.
pub fn actor_of(person: &Person) -> Actor {
    person.review_actor()
}

fn library_error(e: &LibraryError) -> Response<Body> {
    match e {
        LibraryError::NotFound(_) => error(StatusCode::NOT_FOUND, &e.to_string()),
        LibraryError::Invalid(_) => error(StatusCode::BAD_REQUEST, &e.to_string()),
        LibraryError::Conflict => error(StatusCode::CONFLICT, &e.to_string()),
        LibraryError::Port(p) => port_error(p),
        LibraryError::Review(r) => {
            let status = match r {
                ReviewError::AuthorApproves
                | ReviewError::MissingRole { .. }
                | ReviewError::SameApprover(_) => StatusCode::FORBIDDEN,
                ReviewError::LintErrors(_) => StatusCode::UNPROCESSABLE_ENTITY,
                ReviewError::ReasonRequired | ReviewError::RoleNotRequired { .. } => {
                    StatusCode::BAD_REQUEST
                }
                ReviewError::WrongState { .. } | ReviewError::QuorumMissing(_) => {
                    StatusCode::CONFLICT
                }
            };
            error(status, &r.to_string())
        }
    }
}

/// The body of `approve`, `reject` and `retire`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    #[serde(default)]
    role: Option<Role>,
    #[serde(default)]
    reason: Option<String>,
}

/// The body of `preview`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewBody {
    #[serde(default)]
    values: Option<BTreeMap<String, String>>,
}

/// Routes one request.
pub async fn handle(request: Request, deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    let person = match person(&deps.people, &request).await {
        Ok(p) => p,
        Err(denied) => return denied,
    };
    if let Err(denied) = require(&person, &TEMPLATE_GROUPS) {
        return denied;
    }
    let actor = actor_of(&person);
    let library = Library::new(deps.store.as_ref(), deps.policy, &deps.lint);
    let path = request.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if segments.first() == Some(&"experiments") {
        return experiments::route(&request, &segments, &person, deps, now).await;
    }
    let result = match (request.method().clone(), segments.as_slice()) {
        (Method::GET, ["templates"]) => list(&library, now).await,
        (Method::POST, ["templates"]) => match json_body::<Draft>(&request) {
            Ok(draft) => library
                .create(draft, &actor, now)
                .await
                .map(|v| json(StatusCode::CREATED, &v)),
            Err(r) => return r,
        },
        (Method::POST, ["templates", "lint"]) => match json_body::<Draft>(&request) {
            Ok(draft) => Ok(lint_draft(draft, &actor, deps, now)),
            Err(r) => return r,
        },
        (Method::POST, ["templates", "seed"]) => {
            if !actor.roles.contains(&Role::Operations) {
                return error(
                    StatusCode::FORBIDDEN,
                    "loading the seed library needs the operations role",
                );
            }
            library
                .seed(&actor, now)
                .await
                .map(|loaded| json(StatusCode::OK, &serde_json::json!({ "loaded": loaded })))
        }
        (Method::GET, ["templates", id]) => library.versions(id, now).await.map(|v| {
            json(
                StatusCode::OK,
                &serde_json::json!({ "id": id, "versions": v }),
            )
        }),
        (Method::GET, ["templates", id, "diff"]) => {
            diff_versions(&request, &library, id, now).await
        }
        (Method::GET, ["templates", id, "versions", v]) => match parse_version(v) {
            Ok(v) => library
                .get(id, v, now)
                .await
                .map(|view| json(StatusCode::OK, &view)),
            Err(r) => return r,
        },
        (Method::POST, ["templates", id, "versions", v, "preview"]) => {
            let v = match parse_version(v) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let body: PreviewBody = if request.body().is_empty() {
                PreviewBody::default()
            } else {
                match json_body(&request) {
                    Ok(b) => b,
                    Err(r) => return r,
                }
            };
            match library.get(id, v, now).await {
                Ok(view) => library
                    .preview(&view.stored.version, body.values.as_ref())
                    .map(|p| json(StatusCode::OK, &p)),
                Err(e) => Err(e),
            }
        }
        (Method::POST, ["templates", id, "versions", v, "resume"]) => {
            return resume(&request, &person, deps, id, v, now).await;
        }
        (Method::POST, ["templates", id, "versions", v, verb]) => {
            let v = match parse_version(v) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let body: ActionBody = if request.body().is_empty() {
                ActionBody::default()
            } else {
                match json_body(&request) {
                    Ok(b) => b,
                    Err(r) => return r,
                }
            };
            let action = match (*verb, body) {
                ("submit", _) => Action::Submit,
                ("publish", _) => Action::Publish,
                (
                    "approve",
                    ActionBody {
                        role: Some(role), ..
                    },
                ) => Action::Approve { role },
                ("approve", _) => return error(StatusCode::BAD_REQUEST, "approve needs a role"),
                ("reject", b) => Action::Reject {
                    reason: b.reason.unwrap_or_default(),
                },
                ("retire", b) => Action::Retire {
                    reason: b.reason.unwrap_or_default(),
                },
                _ => return error(StatusCode::NOT_FOUND, "no such route"),
            };
            library
                .act(id, v, &action, &actor, now)
                .await
                .map(|view| json(StatusCode::OK, &view))
        }
        _ => return error(StatusCode::NOT_FOUND, "no such route"),
    };
    result.unwrap_or_else(|e| library_error(&e))
}

/// `POST /templates/{id}/versions/{v}/resume`: a person in compliance lifts
/// the pause an opt-out spike put on the version, with a reason.
async fn resume(
    request: &Request,
    person: &Person,
    deps: &Deps,
    id: &str,
    v: &str,
    now: DateTime<Utc>,
) -> Response<Body> {
    use optline_outcomes::pauses::ResumeError;
    if let Err(denied) = require(person, &[Group::Compliance]) {
        return denied;
    }
    let v = match parse_version(v) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let body = match json_body::<ActionBody>(request) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let reference = format!("{id}@{v}");
    match optline_outcomes::pauses::resume(
        deps.store.as_ref(),
        &reference,
        &person.label(),
        body.reason.as_deref().unwrap_or_default(),
        now,
    )
    .await
    {
        Ok(pause) => json(StatusCode::OK, &pause),
        Err(e @ ResumeError::Invalid(_)) => error(StatusCode::BAD_REQUEST, &e.to_string()),
        Err(e @ ResumeError::NotPaused) => error(StatusCode::CONFLICT, &e.to_string()),
        Err(e @ ResumeError::Conflict) => error(StatusCode::CONFLICT, &e.to_string()),
        Err(ResumeError::Port(p)) => port_error(&p),
    }
}

#[allow(clippy::result_large_err, reason = "the error is the response to send")]
fn parse_version(raw: &str) -> Result<u32, Response<Body>> {
    raw.parse().map_err(|_| {
        error(
            StatusCode::BAD_REQUEST,
            "version must be a positive integer",
        )
    })
}

async fn list(library: &Library<'_>, now: DateTime<Utc>) -> Result<Response<Body>, LibraryError> {
    let mut out = Vec::new();
    for id in library.ids().await? {
        let versions = library.versions(&id, now).await?;
        let summary: Vec<serde_json::Value> = versions
            .iter()
            .map(|v| {
                serde_json::json!({
                    "version": v.stored.version.version,
                    "state": v.stored.lifecycle.state,
                    "tier": v.stored.lifecycle.tier,
                    "sendable": v.sendable,
                })
            })
            .collect();
        out.push(serde_json::json!({ "id": id, "versions": summary }));
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "templates": out }),
    ))
}

fn lint_draft(draft: Draft, actor: &Actor, deps: &Deps, now: DateTime<Utc>) -> Response<Body> {
    let version = draft.into_version(0, &actor.id, now);
    json(StatusCode::OK, &assess(&version, &deps.lint))
}

async fn diff_versions(
    request: &Request,
    library: &Library<'_>,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Response<Body>, LibraryError> {
    let params = request.query_string_parameters();
    let number = |key: &str| -> Result<u32, LibraryError> {
        params
            .first(key)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| LibraryError::Invalid(format!("{key} must be a version number")))
    };
    let (from, to) = (number("from")?, number("to")?);
    let a = library.get(id, from, now).await?;
    let b = library.get(id, to, now).await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "id": id,
            "from": from,
            "to": to,
            "change_reason": b.stored.version.change_reason,
            "changes": diff(&a.stored.version, &b.stored.version),
        }),
    ))
}
