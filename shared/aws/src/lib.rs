//! # optline-aws
//!
//! Adapters behind optline's ports: DynamoDB (contacts, consent ledger,
//! steps, audit trail, one transaction per decision), SQS (the dispatch
//! queue), Amazon SNS and Twilio (senders), EventBridge (outbox events), and
//! the Twilio webhook signature.

mod dynamo;
mod events;
mod queue;
mod senders;
mod sns;
mod twilio;
pub mod twilio_signature;

pub use dynamo::{
    due_shard, DynamoStore, DUE_SHARDS, MARKER_DAYS, MIN_RETENTION_DAYS, QUEUE_LEASE, SENDING_LEASE,
};
pub use events::{event_detail, EventBridgePublisher, EVENT_SOURCE};
pub use queue::{redrive, DispatchMessage, RedriveReport, SqsDeadLetters, SqsStepQueue, SQS_BATCH};
pub use senders::ProgramSenders;
pub use sns::{sms_type, SnsOptOutList, SnsSender};
pub use twilio::{classify_error, TwilioSender, TWILIO_MAX_BODY};
