//! Dispatch metrics in CloudWatch embedded metric format (EMF): one JSON
//! document per batch on stdout, which CloudWatch Logs turns into metrics
//! without an API call. Counts only: no numbers, no bodies.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::Outcome;

/// Counts for one batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DispatchMetrics {
    /// Texts accepted by a carrier.
    pub sent: u64,
    /// Suppressions by failing rule id.
    pub suppressed_by_reason: BTreeMap<String, u64>,
    /// Deferrals.
    pub deferred: u64,
    /// Permanent carrier failures by code.
    pub failed_by_code: BTreeMap<String, u64>,
    /// Messages handed back to SQS for a retry.
    pub retried: u64,
    /// Messages with nothing to do (redeliveries).
    pub skipped: u64,
    /// Messages sent to the DLQ.
    pub dead_lettered: u64,
    /// Per-message handling time.
    pub latency_ms: Vec<f64>,
}

impl DispatchMetrics {
    /// Counts one outcome.
    pub fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Sent(_) => self.sent += 1,
            Outcome::Suppressed(reasons) => {
                for reason in reasons {
                    *self.suppressed_by_reason.entry(reason.clone()).or_default() += 1;
                }
            }
            Outcome::Deferred(_) => self.deferred += 1,
            Outcome::Skipped(_) => self.skipped += 1,
            Outcome::Failed(code) => *self.failed_by_code.entry(code.clone()).or_default() += 1,
        }
    }

    /// The EMF documents for this batch: one for the totals, one per
    /// suppression reason and one per carrier failure code.
    pub fn documents(&self, now: DateTime<Utc>) -> Vec<Value> {
        let timestamp = now.timestamp_millis();
        let emf = |dimensions: Vec<&str>, metrics: Vec<(&str, &str)>| {
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": "optline",
                    "Dimensions": [dimensions],
                    "Metrics": metrics.iter().map(|(n, u)| json!({"Name": n, "Unit": u})).collect::<Vec<_>>(),
                }]
            })
        };
        let suppressed: u64 = self.suppressed_by_reason.values().sum();
        let failed: u64 = self.failed_by_code.values().sum();
        let mut docs = vec![json!({
            "_aws": emf(vec!["Function"], vec![
                ("Sent", "Count"), ("Suppressed", "Count"), ("Deferred", "Count"),
                ("Failed", "Count"), ("Retried", "Count"), ("Skipped", "Count"),
                ("DeadLettered", "Count"), ("Latency", "Milliseconds"),
            ]),
            "Function": "dispatch",
            "Sent": self.sent,
            "Suppressed": suppressed,
            "Deferred": self.deferred,
            "Failed": failed,
            "Retried": self.retried,
            "Skipped": self.skipped,
            "DeadLettered": self.dead_lettered,
            "Latency": self.latency_ms,
        })];
        for (reason, n) in &self.suppressed_by_reason {
            docs.push(json!({
                "_aws": emf(vec!["Function", "Reason"], vec![("SuppressedByReason", "Count")]),
                "Function": "dispatch",
                "Reason": reason,
                "SuppressedByReason": n,
            }));
        }
        for (code, n) in &self.failed_by_code {
            docs.push(json!({
                "_aws": emf(vec!["Function", "CarrierCode"], vec![("FailedByCarrierCode", "Count")]),
                "Function": "dispatch",
                "CarrierCode": code,
                "FailedByCarrierCode": n,
            }));
        }
        docs
    }

    /// Writes the documents to stdout, where Lambda ships them to CloudWatch.
    /// `OPTLINE_METRICS=off` silences them (benchmarks that print a table).
    #[allow(
        clippy::print_stdout,
        reason = "EMF documents must be top-level JSON lines on stdout"
    )]
    pub fn emit(&self, now: DateTime<Utc>) {
        if std::env::var("OPTLINE_METRICS").as_deref() == Ok("off") {
            return;
        }
        for doc in self.documents(now) {
            println!("{doc}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppressions_are_counted_by_reason_and_never_carry_a_number() {
        let mut m = DispatchMetrics::default();
        m.count(&Outcome::Suppressed(vec!["consent.revocation".to_owned()]));
        m.count(&Outcome::Sent("sns:1".to_owned()));
        let docs = m.documents(Utc::now());
        assert_eq!(docs[0]["Sent"], 1);
        assert_eq!(docs[0]["Suppressed"], 1);
        assert_eq!(docs[1]["Reason"], "consent.revocation");
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "optline"
        );
        assert!(!docs.iter().any(|d| d.to_string().contains("+1")));
    }
}
