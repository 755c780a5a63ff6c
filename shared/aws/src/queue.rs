//! The SQS adapter for the dispatch queue.

use async_trait::async_trait;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use optline_ports::{DeadLetters, PortError, StepId, StepQueue};
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
        use futures_util::StreamExt;
        // The batches go out concurrently: a page of a thousand steps is a
        // hundred calls, which one after the other would cost a second at
        // SQS's latency. A batch whose call fails comes back whole as
        // failed (its steps go back to pending); the others stand.
        // Owned chunks: a stream of borrowed ones is not `Send` for every
        // lifetime, which the trait's boxed future needs.
        let chunks: Vec<Vec<StepId>> = steps.chunks(SQS_BATCH).map(<[StepId]>::to_vec).collect();
        let results: Vec<Vec<StepId>> = futures_util::stream::iter(chunks)
            .map(|chunk| self.send_or_fail(chunk))
            .buffer_unordered(ENQUEUE_CONCURRENCY)
            .collect()
            .await;
        Ok(results.into_iter().flatten().collect())
    }
}

/// Batches of ten sent to the queue at once by one enqueue.
pub const ENQUEUE_CONCURRENCY: usize = 10;

impl SqsStepQueue {
    /// One batch: the steps not enqueued (all of them when the call failed).
    async fn send_or_fail(&self, chunk: Vec<StepId>) -> Vec<StepId> {
        match self.send_chunk(&chunk).await {
            Ok(refused) => refused,
            Err(e) => {
                tracing::warn!(error = %e, "a dispatch batch was not enqueued");
                chunk
            }
        }
    }

    /// One `SendMessageBatch`: the chunk's steps SQS refused.
    async fn send_chunk(&self, chunk: &[StepId]) -> Result<Vec<StepId>, PortError> {
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
                PortError::Unavailable(format!("send message batch: {}", DisplayErrorContext(e)))
            })?;
        Ok(out
            .failed()
            .iter()
            .filter_map(|entry| entry.id().parse::<usize>().ok().and_then(|i| chunk.get(i)))
            .cloned()
            .collect())
    }
}

/// The dispatch dead-letter queue: undecodable messages go here at once with
/// the reason as a message attribute (`optline_reason`), instead of burning
/// their receive count.
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetters {
    /// An adapter over the DLQ at `queue_url`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), PortError> {
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(reason)
            .build()
            .map_err(|e| PortError::Invalid(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .message_attributes("optline_reason", attribute)
            .send()
            .await
            .map_err(|e| {
                PortError::Unavailable(format!("dead-letter: {}", DisplayErrorContext(e)))
            })?;
        Ok(())
    }
}

/// What a redrive did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedriveReport {
    /// Messages moved back to the dispatch queue.
    pub moved: usize,
    /// Messages left in the DLQ because they can never be processed.
    pub kept: usize,
}

/// Moves decodable messages from the DLQ back to the dispatch queue. Safe to
/// run at any time: dispatch claims each step once, so a replayed message for
/// a step already sent does nothing. Undecodable ones stay, with their reason.
pub async fn redrive(
    client: &Client,
    dlq_url: &str,
    queue_url: &str,
    max_messages: usize,
) -> Result<RedriveReport, PortError> {
    let mut report = RedriveReport::default();
    let mut seen = 0;
    while seen < max_messages {
        let out = client
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .wait_time_seconds(0)
            .visibility_timeout(60)
            .send()
            .await
            .map_err(|e| {
                PortError::Unavailable(format!("receive from dlq: {}", DisplayErrorContext(e)))
            })?;
        let messages = out.messages();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            seen += 1;
            let body = message.body().unwrap_or_default();
            if serde_json::from_str::<DispatchMessage>(body).is_err() {
                report.kept += 1;
                continue;
            }
            client
                .send_message()
                .queue_url(queue_url)
                .message_body(body)
                .send()
                .await
                .map_err(|e| {
                    PortError::Unavailable(format!("redrive send: {}", DisplayErrorContext(e)))
                })?;
            if let Some(handle) = message.receipt_handle() {
                client
                    .delete_message()
                    .queue_url(dlq_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .map_err(|e| {
                        PortError::Unavailable(format!(
                            "redrive delete: {}",
                            DisplayErrorContext(e)
                        ))
                    })?;
            }
            report.moved += 1;
        }
    }
    Ok(report)
}
