//! # dispatch
//!
//! The SQS consumer of the dispatch queue: an adapter over
//! [`optline_delivery::dispatch`]. It decodes each message, dispatches the
//! batch's steps on one read of their facts, dead-letters a message that
//! will never decode (with the reason), and reports the messages to retry
//! as partial batch failures. The dry-run binary serves the sweep's dry run
//! over HTTP ([`dry_run_http`]).

use std::sync::Arc;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use chrono::{DateTime, Utc};
use optline_aws::DispatchMessage;
use optline_delivery::metrics::DispatchMetrics;
use optline_delivery::{dispatch_steps, outcome_kind, DispatchError};
use optline_ports::{DeadLetters, StepId};
use tracing::{info, warn};

pub use optline_delivery::{dry_run, Deps as Delivery, Outcome, Warm, CLAIM_LEASE};

/// What the function needs.
#[derive(Clone)]
pub struct Deps {
    /// The delivery context.
    pub delivery: Delivery,
    /// Where undecodable messages go, with their reason.
    pub dead_letters: Option<Arc<dyn DeadLetters>>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps").finish_non_exhaustive()
    }
}

/// Why a message of a batch was not handled.
#[derive(Debug, thiserror::Error)]
pub enum MessageError {
    /// The body is not a dispatch message.
    #[error("undecodable message: {0}")]
    Undecodable(String),
    /// Dispatch asks for a retry.
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
}

/// What dispatch did with one message of a batch.
#[derive(Debug)]
pub struct Handled {
    /// The SQS message id.
    pub message_id: String,
    /// Its outcome, or why it should come back.
    pub result: Result<Outcome, MessageError>,
}

fn decode(message: &SqsMessage) -> Result<StepId, MessageError> {
    let body = message.body.as_deref().unwrap_or_default();
    let parsed: DispatchMessage = serde_json::from_str(body)
        .map_err(|e| MessageError::Undecodable(optline_api::json_reason(&e)))?;
    Ok(parsed.step_id)
}

/// Dispatches every message of a batch on one read of the batch's steps,
/// facts and answers; one [`Handled`] per message, in order. Writes
/// nothing for undecodable messages ([`handle_batch`] dead-letters them).
pub async fn dispatch_batch(event: &SqsEvent, deps: &Deps, now: DateTime<Utc>) -> Vec<Handled> {
    let decoded: Vec<Result<StepId, MessageError>> = event.records.iter().map(decode).collect();
    let ids: Vec<StepId> = decoded
        .iter()
        .filter_map(|d| d.as_ref().ok())
        .cloned()
        .collect();
    let mut results = dispatch_steps(&ids, &deps.delivery, now).await.into_iter();
    event
        .records
        .iter()
        .zip(decoded)
        .map(|(message, decoded)| Handled {
            message_id: message.message_id.clone().unwrap_or_default(),
            result: match decoded {
                Ok(_) => match results.next() {
                    Some(result) => result.map_err(MessageError::from),
                    None => Err(MessageError::Undecodable("lost its place".to_owned())),
                },
                Err(e) => Err(e),
            },
        })
        .collect()
}

/// Handles one message on its own (reads what it needs after its claim).
pub async fn handle_message(
    message: &SqsMessage,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<Outcome, MessageError> {
    dispatch_step(&decode(message)?, deps, now).await
}

/// Dispatches one step on its own, the long way (claim first, then read).
pub async fn dispatch_step(
    id: &StepId,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<Outcome, MessageError> {
    Ok(optline_delivery::dispatch_step(id, &deps.delivery, now).await?)
}

/// Handles an SQS batch and reports the messages to retry.
pub async fn handle_batch(event: SqsEvent, deps: &Deps, now: DateTime<Utc>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let mut metrics = DispatchMetrics::default();
    let started = std::time::Instant::now();
    let handled = dispatch_batch(&event, deps, now).await;
    let per_message = started.elapsed().as_secs_f64() * 1000.0 / handled.len().max(1) as f64;
    for (message, handled) in event.records.iter().zip(handled) {
        let Handled {
            message_id: id,
            result,
        } = handled;
        metrics.latency_ms.push(per_message);
        let retry = match result {
            Ok(outcome) => {
                info!(message_id = %id, outcome = outcome_kind(&outcome), "message handled");
                metrics.count(&outcome);
                false
            }
            Err(MessageError::Undecodable(reason)) => {
                // It will never decode: dead-letter it now with the reason,
                // rather than let it burn its receive count.
                let body = message.body.as_deref().unwrap_or_default();
                match &deps.dead_letters {
                    Some(dlq) => match dlq.dead_letter(body, &reason).await {
                        Ok(()) => {
                            warn!(message_id = %id, %reason, "undecodable message dead-lettered");
                            metrics.dead_lettered += 1;
                            false
                        }
                        Err(e) => {
                            warn!(message_id = %id, error = %e, "dead-letter failed; will retry");
                            true
                        }
                    },
                    None => {
                        warn!(message_id = %id, %reason, "undecodable message; SQS dead-letters it after its receive count");
                        true
                    }
                }
            }
            Err(MessageError::Dispatch(err)) => {
                warn!(message_id = %id, error = %err, "message will be retried");
                if let DispatchError::Carrier(code) = &err {
                    *metrics.failed_by_code.entry(code.clone()).or_default() += 1;
                }
                metrics.retried += 1;
                true
            }
        };
        if retry {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    metrics.emit(now);
    response
}

/// `GET /sweep/dry-run?at=<RFC 3339>&limit=<n>`: the dry run report as
/// JSON, for operators and dashboards: people in the operations,
/// compliance or admin group, verified against the Cognito pool.
pub async fn dry_run_http(
    request: lambda_http::Request,
    deps: &Delivery,
    people: &optline_api::Verifier,
    now: DateTime<Utc>,
) -> lambda_http::Response<lambda_http::Body> {
    use lambda_http::http::StatusCode;
    use lambda_http::RequestExt;
    use optline_api::Group;
    let person = match optline_api::person(people, &request).await {
        Ok(p) => p,
        Err(denied) => return denied,
    };
    if let Err(denied) = optline_api::require(
        &person,
        &[Group::Operations, Group::Compliance, Group::Admin],
    ) {
        return denied;
    }
    if request.method() != lambda_http::http::Method::GET
        || request.uri().path().trim_end_matches('/') != "/sweep/dry-run"
    {
        return optline_api::error(StatusCode::NOT_FOUND, "no such route");
    }
    let params = request.query_string_parameters();
    let at = match params.first("at") {
        None => now,
        Some(raw) => match DateTime::parse_from_rfc3339(raw) {
            Ok(at) => at.with_timezone(&Utc),
            Err(_) => {
                return optline_api::error(
                    StatusCode::BAD_REQUEST,
                    "at must be an RFC 3339 instant, e.g. 2026-12-07T17:00:00Z",
                )
            }
        },
    };
    let limit = match params.first("limit").map(str::parse::<usize>) {
        None => 1000,
        Some(Ok(n)) if (1..=10_000).contains(&n) => n,
        Some(_) => {
            return optline_api::error(
                StatusCode::BAD_REQUEST,
                "limit must be a whole number from 1 to 10000",
            )
        }
    };
    match dry_run(deps, at, limit).await {
        Ok(report) => optline_api::json(StatusCode::OK, &report),
        Err(DispatchError::Port(e)) => optline_api::port_error(&e),
        Err(e) => optline_api::error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
