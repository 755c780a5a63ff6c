//! # optline-aws
//!
//! Adapters behind optline's ports: DynamoDB (contacts, consent ledger,
//! steps, audit trail, one transaction per decision), SQS (the dispatch
//! queue), Amazon SNS and Twilio (senders), EventBridge (outbox events),
//! the Twilio webhook signature, and FHIR reads authorized with SMART
//! Backend Services ([`smart`]).

mod audit;
mod dynamo;
mod events;
pub mod fhir_consent;
mod programs;
mod queue;
mod secrets;
mod senders;
pub mod smart;
mod sns;
mod twilio;
pub mod twilio_signature;
pub mod webhooks;

pub use audit::{audit_key_from_env, load_audit_key, KmsSigner, S3Anchors};
pub use dynamo::{
    due_shard, due_shards, DynamoStore, MARKER_DAYS, MIN_RETENTION_DAYS, QUEUE_LEASE, SENDING_LEASE,
};
pub use events::{event_detail, EventBridgePublisher, EVENT_SOURCE};
pub use fhir_consent::{consent_resource, FhirConsentWriter};
pub use programs::{put_programs, read_programs, with_stored_programs, StoredPrograms};
pub use queue::{
    redrive, DispatchMessage, RedriveReport, SqsDeadLetters, SqsStepQueue, ENQUEUE_CONCURRENCY,
    SQS_BATCH,
};
pub use secrets::{apply_twilio_secret, ehr_sources_json, read_secret_string, with_twilio_secret};
pub use senders::ProgramSenders;
pub use smart::{SmartConfig, SmartFhirReader};
pub use sns::{sms_type, SnsOptOutList, SnsSender};
pub use twilio::{classify_error, TwilioSender, TWILIO_MAX_BODY};
pub use webhooks::{Fanout, WebhookPublisher, WebhookSubscriber};

/// The table as a function's `main` builds it: `TABLE_NAME`, the configured
/// retention, and the audit key named by `AUDIT_KEY_SECRET_ARN` (read once,
/// at cold start).
pub async fn table_store(
    clients: &optline_config::AwsClients,
    config: &optline_config::Config,
) -> Result<DynamoStore, optline_ports::PortError> {
    Ok(
        DynamoStore::new(clients.dynamodb().clone(), config.table_name.clone())
            .with_retention(config.retention_days)?
            .with_audit_key(audit_key_from_env(clients.secrets()).await?),
    )
}

/// A function's configuration at cold start: the environment, then the
/// programs document in the table when a deployer has put one
/// ([`with_stored_programs`]).
///
/// # Errors
///
/// When a variable is missing or invalid, the table cannot be read, or the
/// stored programs fail their checks.
pub async fn load_config(
    clients: &optline_config::AwsClients,
) -> Result<optline_config::Config, optline_ports::PortError> {
    let config = optline_config::Config::from_env()
        .map_err(|e| optline_ports::PortError::Invalid(e.to_string()))?;
    with_stored_programs(clients.dynamodb(), config).await
}
