//! The daily run's metrics in CloudWatch embedded metric format (EMF), as
//! dispatch writes its own (`optline_delivery::metrics`): one JSON document
//! on stdout, turned into metrics in the `optline` namespace by CloudWatch
//! Logs. Counts only. The revocations-past-deadline alarm reads them
//! (docs/dashboard-and-alarms.md).

use chrono::{DateTime, Utc};
use optline_ports::{PortError, RevocationRequest, Store};
use serde_json::{json, Value};

/// The `Function` dimension of every document.
const FUNCTION: &str = "reconcile";

/// Revocations received by other means (phone, portal, staff) that staff
/// have not yet confirmed honoured everywhere.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RevocationCounts {
    /// Not completed.
    pub open: u64,
    /// Not completed and past their deadline (47 CFR 64.1200(a)(10): ten
    /// business days). One completed late is no longer open, so it is not
    /// counted here: the alarm is about work still to do.
    pub past_deadline: u64,
}

impl RevocationCounts {
    /// Counts `requests` at `now`.
    pub fn of(requests: &[RevocationRequest], now: DateTime<Utc>) -> Self {
        let open = requests.iter().filter(|r| r.completed_at.is_none());
        let (open, past_deadline) = open.fold((0u64, 0u64), |(open, late), r| {
            (open + 1, late + u64::from(now > r.deadline))
        });
        Self {
            open,
            past_deadline,
        }
    }

    /// Reads every revocation request and counts them at `now`.
    pub async fn read(store: &dyn Store, now: DateTime<Utc>) -> Result<Self, PortError> {
        Ok(Self::of(&store.revocation_requests().await?, now))
    }
}

/// What one run reports; a part that could not be read is left out
/// (missing, never a reassuring 0).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileMetrics {
    /// The open revocation requests.
    pub revocations: Option<RevocationCounts>,
    /// Carrier opt-outs this run wrote into the ledger (drift fixed).
    pub drift_fixed: Option<u64>,
}

impl ReconcileMetrics {
    /// The run's EMF documents: one, or none when nothing was read.
    pub fn documents(&self, now: DateTime<Utc>) -> Vec<Value> {
        let mut metrics: Vec<(&str, u64)> = Vec::new();
        if let Some(counts) = self.revocations {
            metrics.push(("RevocationsOpen", counts.open));
            metrics.push(("RevocationsPastDeadline", counts.past_deadline));
        }
        if let Some(fixed) = self.drift_fixed {
            metrics.push(("DriftFixed", fixed));
        }
        if metrics.is_empty() {
            return Vec::new();
        }
        let mut doc = json!({
            "_aws": {
                "Timestamp": now.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": "optline",
                    "Dimensions": [["Function"]],
                    "Metrics": metrics
                        .iter()
                        .map(|(name, _)| json!({"Name": name, "Unit": "Count"}))
                        .collect::<Vec<_>>(),
                }]
            },
            "Function": FUNCTION,
        });
        if let Some(fields) = doc.as_object_mut() {
            for (name, value) in &metrics {
                fields.insert((*name).to_owned(), json!(value));
            }
        }
        vec![doc]
    }

    /// Writes the documents to stdout, where Lambda ships them to CloudWatch.
    /// `OPTLINE_METRICS=off` silences them, as it does dispatch's.
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
    use chrono::{Duration, TimeZone};
    use optline_ports::{CaptureChannel, ContactId, EventId};

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0).unwrap()
    }

    fn request(
        id: &str,
        deadline: DateTime<Utc>,
        completed: Option<DateTime<Utc>>,
    ) -> RevocationRequest {
        RevocationRequest {
            id: EventId::parse(id).unwrap(),
            contact_id: ContactId::parse("p1").unwrap(),
            event_id: EventId::parse(&format!("ev-{id}")).unwrap(),
            channel: CaptureChannel::Staff,
            actor: "staff".to_owned(),
            received_at: deadline - Duration::days(14),
            deadline,
            completed_at: completed,
            completed_by: completed.map(|_| "ana.compliance".to_owned()),
        }
    }

    #[test]
    fn open_requests_are_counted_and_those_past_their_deadline_apart() {
        let requests = [
            // Open, deadline passed yesterday.
            request("r1", now() - Duration::days(1), None),
            // Open, still in time.
            request("r2", now() + Duration::days(3), None),
            // Completed late: no longer open, nothing left to do.
            request(
                "r3",
                now() - Duration::days(5),
                Some(now() - Duration::days(2)),
            ),
            // Completed in time.
            request(
                "r4",
                now() - Duration::days(9),
                Some(now() - Duration::days(10)),
            ),
        ];

        let counts = RevocationCounts::of(&requests, now());

        assert_eq!(
            counts,
            RevocationCounts {
                open: 2,
                past_deadline: 1
            }
        );
    }

    #[test]
    fn a_deadline_is_passed_only_once_it_is_behind_now() {
        let requests = [request("r1", now(), None)];

        assert_eq!(RevocationCounts::of(&requests, now()).past_deadline, 0);
        assert_eq!(
            RevocationCounts::of(&requests, now() + Duration::seconds(1)).past_deadline,
            1
        );
    }

    #[test]
    fn the_document_carries_both_revocation_counts_under_the_function_dimension() {
        let metrics = ReconcileMetrics {
            revocations: Some(RevocationCounts {
                open: 4,
                past_deadline: 1,
            }),
            drift_fixed: Some(2),
        };

        let docs = metrics.documents(now());

        assert_eq!(docs.len(), 1);
        let doc = &docs[0];
        assert_eq!(doc["Function"], "reconcile");
        assert_eq!(doc["RevocationsOpen"], 4);
        assert_eq!(doc["RevocationsPastDeadline"], 1);
        assert_eq!(doc["DriftFixed"], 2);
        let meta = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(meta["Namespace"], "optline");
        assert_eq!(meta["Dimensions"], json!([["Function"]]));
        assert_eq!(
            meta["Metrics"],
            json!([
                {"Name": "RevocationsOpen", "Unit": "Count"},
                {"Name": "RevocationsPastDeadline", "Unit": "Count"},
                {"Name": "DriftFixed", "Unit": "Count"},
            ])
        );
        assert_eq!(doc["_aws"]["Timestamp"], now().timestamp_millis());
        assert!(!doc.to_string().contains("p1"), "no contact ids");
    }

    #[test]
    fn a_part_not_read_is_left_out_and_nothing_read_writes_nothing() {
        let carrier_only = ReconcileMetrics {
            revocations: None,
            drift_fixed: Some(0),
        };
        let docs = carrier_only.documents(now());
        assert!(docs[0].get("RevocationsPastDeadline").is_none());
        assert!(!docs[0]["_aws"].to_string().contains("Revocations"));

        assert!(ReconcileMetrics::default().documents(now()).is_empty());
    }
}
