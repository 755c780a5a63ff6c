//! The sweep's metrics in CloudWatch embedded metric format (EMF), as
//! dispatch writes its own (`optline_delivery::metrics`): one JSON document
//! per run on stdout, which CloudWatch Logs turns into metrics in the
//! `optline` namespace without an API call. Counts and one age: no ids, no
//! numbers. The dashboard and the stale-due-steps alarm read them
//! (docs/dashboard-and-alarms.md).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use optline_ports::{PortError, Store};
use serde_json::{json, Value};

use crate::SweepReport;

/// The `Function` dimension of every document.
const FUNCTION: &str = "sweep";

/// What one run reports.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepMetrics {
    /// Due steps found in the index.
    pub found: u64,
    /// Steps moved to queued and handed to the dispatch queue.
    pub enqueued: u64,
    /// Steps outside their program's audience, ended as suppressed.
    pub suppressed_by_reason: BTreeMap<String, u64>,
    /// Steps ended as suppressed (a step may fail more than one rule).
    pub suppressed: u64,
    /// Steps left pending because their program's share of the queue was full.
    pub held: u64,
    /// Queued steps whose lease lapsed, enqueued again.
    pub lapsed: u64,
    /// Steps whose enqueue failed and that went back to pending.
    pub requeued: u64,
    /// Steps another sweep (or a cancellation) took first.
    pub lost_race: u64,
    /// Steps left as they were because their facts could not be read.
    pub unreadable: u64,
    /// How long the oldest step still due after the run has been due, in
    /// seconds (0 when none is); `None` when it could not be read, so the
    /// metric is missing rather than a reassuring 0.
    pub oldest_due_step_age_seconds: Option<u64>,
}

impl SweepMetrics {
    /// The metrics of a run that ended with `report`, and the age of the
    /// oldest step it left due.
    pub fn new(report: &SweepReport, oldest_due_step_age_seconds: Option<u64>) -> Self {
        let n = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        Self {
            found: n(report.found),
            enqueued: n(report.enqueued),
            suppressed_by_reason: report
                .excluded_by
                .iter()
                .map(|(rule, count)| (rule.clone(), n(*count)))
                .collect(),
            suppressed: n(report.excluded),
            held: n(report.held),
            lapsed: n(report.lapsed),
            requeued: n(report.requeued),
            lost_race: n(report.lost_race),
            unreadable: n(report.unreadable),
            oldest_due_step_age_seconds,
        }
    }

    /// The EMF documents of the run: one for the totals (and the age), one
    /// per suppression reason (as dispatch's `SuppressedByReason`, told
    /// apart by `Function`).
    pub fn documents(&self, now: DateTime<Utc>) -> Vec<Value> {
        let timestamp = now.timestamp_millis();
        let mut metrics = vec![
            ("Found", "Count", self.found),
            ("Enqueued", "Count", self.enqueued),
            ("Suppressed", "Count", self.suppressed),
            ("Held", "Count", self.held),
            ("Lapsed", "Count", self.lapsed),
            ("Requeued", "Count", self.requeued),
            ("LostRace", "Count", self.lost_race),
            ("Unreadable", "Count", self.unreadable),
        ];
        if let Some(age) = self.oldest_due_step_age_seconds {
            metrics.push(("OldestDueStepAgeSeconds", "Seconds", age));
        }
        let mut totals = json!({
            "_aws": emf(timestamp, &["Function"], &metrics),
            "Function": FUNCTION,
        });
        if let Some(doc) = totals.as_object_mut() {
            for (name, _, value) in &metrics {
                doc.insert((*name).to_owned(), json!(value));
            }
        }
        let mut docs = vec![totals];
        for (reason, n) in &self.suppressed_by_reason {
            docs.push(json!({
                "_aws": emf(timestamp, &["Function", "Reason"], &[("SuppressedByReason", "Count", *n)]),
                "Function": FUNCTION,
                "Reason": reason,
                "SuppressedByReason": n,
            }));
        }
        docs
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

/// The `_aws` metadata of one document: its metrics' names and units.
fn emf(timestamp: i64, dimensions: &[&str], metrics: &[(&str, &str, u64)]) -> Value {
    json!({
        "Timestamp": timestamp,
        "CloudWatchMetrics": [{
            "Namespace": "optline",
            "Dimensions": [dimensions],
            "Metrics": metrics
                .iter()
                .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
                .collect::<Vec<_>>(),
        }]
    })
}

/// How long the oldest step still due at `now` has been due, in whole
/// seconds; 0 when the due index holds none. Read after a run, it is what
/// the run left behind: pending steps held back by pacing, unreadable or
/// beyond the run's budget, and queued steps whose lease lapsed and were
/// not enqueued again. A healthy sweep keeps it under a minute or so.
pub async fn oldest_due_step_age(store: &dyn Store, now: DateTime<Utc>) -> Result<u64, PortError> {
    let oldest = store.due_steps(now, 1).await?;
    Ok(age_seconds(oldest.first().map(|step| step.due_at), now))
}

/// Seconds from `due` to `now`, never negative; 0 without a due time.
pub fn age_seconds(due: Option<DateTime<Utc>>, now: DateTime<Utc>) -> u64 {
    due.map_or(0, |due| {
        u64::try_from((now - due).num_seconds()).unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 18, 1, 0).unwrap()
    }

    fn report() -> SweepReport {
        SweepReport {
            found: 12,
            pages: 1,
            enqueued: 7,
            excluded: 2,
            excluded_by: [
                ("segment.consent_scope".to_owned(), 1),
                ("segment.region".to_owned(), 1),
            ]
            .into_iter()
            .collect(),
            held: 3,
            lost_race: 0,
            requeued: 0,
            lapsed: 1,
            unreadable: 0,
        }
    }

    #[test]
    fn a_run_reports_its_counts_and_the_age_of_the_oldest_step_it_left_due() {
        let docs = SweepMetrics::new(&report(), Some(1260)).documents(at());

        let totals = &docs[0];
        assert_eq!(totals["Function"], "sweep");
        assert_eq!(totals["Found"], 12);
        assert_eq!(totals["Enqueued"], 7);
        assert_eq!(totals["Suppressed"], 2);
        assert_eq!(totals["Held"], 3);
        assert_eq!(totals["Lapsed"], 1);
        assert_eq!(totals["OldestDueStepAgeSeconds"], 1260);
        let meta = &totals["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(meta["Namespace"], "optline");
        assert_eq!(meta["Dimensions"], json!([["Function"]]));
        let names: Vec<&str> = meta["Metrics"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["Name"].as_str()).collect())
            .unwrap_or_default();
        // Every metric declared is in the document, and every one is.
        for name in &names {
            assert!(totals.get(*name).is_some(), "{name} declared but absent");
        }
        assert!(names.contains(&"OldestDueStepAgeSeconds"));
        assert_eq!(
            meta["Metrics"][8],
            json!({"Name": "OldestDueStepAgeSeconds", "Unit": "Seconds"})
        );
        assert_eq!(totals["_aws"]["Timestamp"], at().timestamp_millis());
    }

    #[test]
    fn suppressions_are_reported_by_reason_as_dispatch_reports_them() {
        let docs = SweepMetrics::new(&report(), Some(0)).documents(at());

        assert_eq!(docs.len(), 3);
        assert_eq!(docs[1]["Reason"], "segment.consent_scope");
        assert_eq!(docs[1]["SuppressedByReason"], 1);
        assert_eq!(docs[1]["Function"], "sweep");
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function", "Reason"]])
        );
        assert_eq!(docs[2]["Reason"], "segment.region");
    }

    #[test]
    fn an_age_that_could_not_be_read_is_missing_rather_than_zero() {
        let docs = SweepMetrics::new(&report(), None).documents(at());

        assert!(docs[0].get("OldestDueStepAgeSeconds").is_none());
        assert!(!docs[0]["_aws"]
            .to_string()
            .contains("OldestDueStepAgeSeconds"));
        assert_eq!(docs[0]["Enqueued"], 7);
    }

    #[test]
    fn the_age_is_whole_seconds_since_due_and_zero_when_nothing_is_due() {
        assert_eq!(age_seconds(None, at()), 0);
        assert_eq!(
            age_seconds(Some(at() - chrono::Duration::minutes(21)), at()),
            1260
        );
        assert_eq!(
            age_seconds(Some(at() + chrono::Duration::seconds(5)), at()),
            0
        );
    }
}
