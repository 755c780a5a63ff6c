//! Experiments over HTTP: starting and stopping need a person in the
//! compliance group; the template groups may read the results.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/experiments` | every experiment |
//! | POST | `/experiments` | start one (compliance) |
//! | GET | `/experiments/{id}` | its results: each arm's rate, interval, P(best), guardrail |
//! | POST | `/experiments/{id}/stop` | `{"reason": "..."}` (compliance) |

use chrono::{DateTime, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use optline_api::{error, json, json_body, port_error, require, Group, Person};
use optline_library::Library;
use optline_outcomes::experiments::{self, ExperimentError, ExperimentSpec};
use serde::Deserialize;

use crate::Deps;

/// The body of `stop`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StopBody {
    reason: String,
}

fn refused(e: &ExperimentError) -> Response<Body> {
    match e {
        ExperimentError::Invalid(_) => error(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string()),
        ExperimentError::NotFound => error(StatusCode::NOT_FOUND, &e.to_string()),
        ExperimentError::Conflict(_) => error(StatusCode::CONFLICT, &e.to_string()),
        ExperimentError::Port(p) => port_error(p),
    }
}

/// Routes `/experiments…`.
pub(crate) async fn route(
    request: &Request,
    segments: &[&str],
    person: &Person,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Response<Body> {
    let store = deps.store.as_ref();
    match (request.method().clone(), segments) {
        (Method::GET, ["experiments"]) => match store.experiments().await {
            Ok(all) => json(StatusCode::OK, &serde_json::json!({ "experiments": all })),
            Err(e) => port_error(&e),
        },
        (Method::POST, ["experiments"]) => {
            if let Err(denied) = require(person, &[Group::Compliance]) {
                return denied;
            }
            let spec = match json_body::<ExperimentSpec>(request) {
                Ok(spec) => spec,
                Err(r) => return r,
            };
            let library = Library::new(store, deps.policy, &deps.lint);
            match experiments::start(&library, store, spec, &person.label(), now).await {
                Ok(started) => json(StatusCode::CREATED, &started),
                Err(e) => refused(&e),
            }
        }
        (Method::GET, ["experiments", id]) => match store.experiment(id).await {
            Ok(Some(found)) => match experiments::results(store, &found, now).await {
                Ok(results) => json(StatusCode::OK, &results),
                Err(e) => port_error(&e),
            },
            Ok(None) => error(StatusCode::NOT_FOUND, "no such experiment"),
            Err(e) => port_error(&e),
        },
        (Method::POST, ["experiments", id, "stop"]) => {
            if let Err(denied) = require(person, &[Group::Compliance]) {
                return denied;
            }
            let body = match json_body::<StopBody>(request) {
                Ok(b) => b,
                Err(r) => return r,
            };
            match experiments::stop(store, id, &person.label(), &body.reason, now).await {
                Ok(stopped) => json(StatusCode::OK, &stopped),
                Err(e) => refused(&e),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "no such route"),
    }
}
