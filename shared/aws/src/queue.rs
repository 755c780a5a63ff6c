//! The SQS adapter for the dispatch queue.

use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use optline_ports::{PortError, StepId, StepQueue};
use serde::{Deserialize, Serialize};

/// SQS's limit on entries in one `SendMessageBatch`.
pub const SQS_BATCH: usize = 10;

/// The body of a dispatch message: only the step id, never PHI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchMessage {
    /// The step to dispatch.
    pub step_id: StepId,
}

/// The dispatch queue.
#[derive(Debug, Clone)]
pub struct SqsStepQueue {
    client: Client,
    queue_url: String,
}

impl SqsStepQueue {
    /// An adapter over the queue at `queue_url`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl StepQueue for SqsStepQueue {
    async fn enqueue(&self, steps: &[StepId]) -> Result<Vec<StepId>, PortError> {
        let mut failed = Vec::new();
        for chunk in steps.chunks(SQS_BATCH) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, step) in chunk.iter().enumerate() {
                let body = serde_json::to_string(&DispatchMessage {
                    step_id: step.clone(),
                })
                .map_err(|e| PortError::Invalid(e.to_string()))?;
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(|e| PortError::Invalid(e.to_string()))?,
                );
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| {
                    PortError::Unavailable(format!(
                        "send message batch: {}",
                        DisplayErrorContext(e)
                    ))
                })?;
            for entry in out.failed() {
                if let Some(step) = entry.id().parse::<usize>().ok().and_then(|i| chunk.get(i)) {
                    failed.push(step.clone());
                }
            }
        }
        Ok(failed)
    }
}
