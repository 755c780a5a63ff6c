//! AWS End User Messaging two-way SMS: the JSON message published to the
//! number's SNS topic, delivered by an SNS subscription or through SQS.
//! The reply is handled as any other ([`optline_replies::handle_reply`]);
//! the text it owes goes through the compliance lane afterwards, once.

use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use optline_policy::phone::E164;
use optline_ports::{EventId, PortError};
use optline_replies::lane::LaneError;
use optline_replies::{handle_reply, send_owed, AnswerPath, InboundSms, ReplyError, ReplyOutcome};
use tracing::warn;

use crate::Deps;

/// The two-way payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TwoWaySms {
    /// The sender (the recipient of our texts).
    pub origination_number: String,
    /// Our number.
    pub destination_number: String,
    /// The keyword AWS matched, if any.
    #[serde(default)]
    pub message_keyword: Option<String>,
    /// The text.
    pub message_body: String,
    /// AWS's id for the inbound message.
    pub inbound_message_id: String,
    /// The id of our message this replies to, if AWS knows it.
    #[serde(default)]
    pub previous_published_message_id: Option<String>,
}

/// Why a two-way message could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum TwoWayError {
    /// Not the two-way JSON payload.
    #[error("not an aws two-way sms payload: {0}")]
    Undecodable(String),
    /// The reply could not be handled; retry.
    #[error(transparent)]
    Reply(#[from] ReplyError),
    /// The owed text could not be sent yet; retry.
    #[error(transparent)]
    Lane(#[from] LaneError),
    /// Storage failed; retry.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// The two-way payload from an SNS message, or from an SQS body that holds
/// either the raw payload or an SNS notification envelope.
pub fn parse_two_way(body: &str) -> Result<TwoWaySms, TwoWayError> {
    let value: serde_json::Value = serde_json::from_str(body)
        .map_err(|e| TwoWayError::Undecodable(optline_api::json_reason(&e)))?;
    let inner = match value.get("Type").and_then(|t| t.as_str()) {
        Some("Notification") => value
            .get("Message")
            .and_then(|m| m.as_str())
            .map(str::to_owned)
            .ok_or_else(|| TwoWayError::Undecodable("sns envelope without Message".to_owned()))?,
        _ => body.to_owned(),
    };
    serde_json::from_str(&inner).map_err(|e| TwoWayError::Undecodable(optline_api::json_reason(&e)))
}

/// Handles one two-way message: the reply committed once, then the text it
/// owes sent through the compliance lane, once, on time.
pub async fn handle_two_way(
    message: &TwoWaySms,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<(), TwoWayError> {
    let from = E164::parse(&message.origination_number)
        .map_err(|e| TwoWayError::Undecodable(e.to_string()))?;
    if EventId::parse(&message.inbound_message_id).is_err() {
        return Err(TwoWayError::Undecodable(
            "inboundMessageId is malformed".to_owned(),
        ));
    }
    let sms = InboundSms {
        message_sid: message.inbound_message_id.clone(),
        carrier: "aws",
        from,
        to: message.destination_number.clone(),
        body: message.message_body.clone(),
    };
    let lane = match handle_reply(deps.replies(), &sms, AnswerPath::Lane, now).await? {
        ReplyOutcome::Handled { lane, .. } | ReplyOutcome::Duplicate { lane } => lane,
    };
    if let (Some(key), Some(sender)) = (lane, &deps.sender) {
        send_owed(
            deps.store.as_ref(),
            sender.as_ref(),
            deps.config.as_ref(),
            &key,
            now,
        )
        .await?;
    }
    Ok(())
}

/// Two-way messages delivered by an SNS subscription.
pub async fn handle_two_way_sns(
    event: SnsEvent,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<(), TwoWayError> {
    let mut undecodable = None;
    for record in event.records {
        match parse_two_way(&record.sns.message) {
            Ok(message) => handle_two_way(&message, deps, now).await?,
            // A malformed payload will never parse. The good records are
            // handled first; then the invocation fails with the reason, so
            // Lambda's retries (no-ops for the good ones, whose markers are
            // written) end in the dead-letter queue with the whole event:
            // nothing is dropped.
            Err(TwoWayError::Undecodable(reason)) => {
                warn!(%reason, "undecodable two-way sms: the invocation fails to dead-letter it");
                undecodable.get_or_insert(reason);
            }
            Err(e) => return Err(e),
        }
    }
    match undecodable {
        Some(reason) => Err(TwoWayError::Undecodable(reason)),
        None => Ok(()),
    }
}

/// Two-way messages delivered through SQS, with partial batch failures.
pub async fn handle_two_way_sqs(
    event: SqsEvent,
    deps: &Deps,
    now: DateTime<Utc>,
) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or_default();
        let result = match parse_two_way(body) {
            Ok(message) => handle_two_way(&message, deps, now).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            // Undecodable ones are retried too and land in the DLQ with the
            // reason in the log: nothing is silently lost.
            warn!(message_id = %id, error = %e, "two-way sms will be retried");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}
