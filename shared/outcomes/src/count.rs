//! Counting tallies into rollups, once each.
//!
//! The table's stream hands the drain each new tally item (an `INSERT` of
//! `TALLY#<fact id>`); [`count`] adds them to their rollups. The store
//! marks each tally counted in the same transaction as the addition, so a
//! redelivered record adds nothing ([`optline_ports::RollupStore::count`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use optline_ports::{metric, Counted, PortError, RollupStore, Tally};
use serde_json::{json, Value};

/// The partition key prefix of tally items.
pub const TALLY_PREFIX: &str = "TALLY#";

/// The longest time from an opt-out's arrival to its commit that is
/// observed; a longer one means the clock of the trigger was not the
/// wall clock (a replayed or back-dated event) and is left out.
const COMMIT_OBSERVED_UP_TO_SECONDS: i64 = 86_400;

/// A tally as its stream record delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrived {
    /// The tally.
    pub tally: Tally,
    /// When its fact was committed (the stream record's creation time).
    pub committed_at: Option<DateTime<Utc>>,
}

/// The tally a tally item's `data` holds.
pub fn tally_from_data(data: &str) -> Result<Tally, PortError> {
    serde_json::from_str(data).map_err(|e| PortError::Corrupt(format!("tally item: {e}")))
}

/// Counts a batch: an opt-out's time from arrival to commit is observed
/// first (the same for every delivery of the record, so a repeat changes
/// nothing), then every tally is added to its rollup once.
pub async fn count(
    store: &dyn RollupStore,
    arrived: Vec<Arrived>,
    now: DateTime<Utc>,
) -> Result<Counted, PortError> {
    let tallies: Vec<Tally> = arrived
        .into_iter()
        .map(|a| {
            let mut tally = a.tally;
            if let (Some(received), Some(committed)) = (tally.received_at, a.committed_at) {
                let seconds = (committed - received).num_seconds();
                if (0..=COMMIT_OBSERVED_UP_TO_SECONDS).contains(&seconds) {
                    tally.observe(metric::OPT_OUT_COMMIT, seconds);
                }
            }
            tally
        })
        .collect();
    store.count(&tallies, now).await
}

/// What a batch held, for the operators' dashboard (EMF, no PHI).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchMetrics {
    /// Tallies counted now.
    pub counted: usize,
    /// Tallies found counted before (redeliveries).
    pub repeats: usize,
    /// Delivery reports: delivered.
    pub delivered: u64,
    /// Delivery reports: failed or undelivered.
    pub undelivered: u64,
    /// Opt-outs.
    pub opt_outs: u64,
    /// Opt-outs per 1,000 sends today, per template version with at least
    /// [`BatchMetrics::RATE_MIN_SENDS`] sends today.
    pub opt_out_rates: BTreeMap<String, f64>,
}

impl BatchMetrics {
    /// Fewest sends a version needs today before its opt-out rate is shown.
    pub const RATE_MIN_SENDS: u64 = 200;

    /// The batch's counts by metric.
    pub fn of(tallies: &[&Tally], counted: Counted) -> Self {
        let sum = |name: &str| -> u64 { tallies.iter().filter_map(|t| t.counts.get(name)).sum() };
        Self {
            counted: counted.counted,
            repeats: counted.repeats,
            delivered: sum(metric::DELIVERED),
            undelivered: sum(metric::UNDELIVERED),
            opt_outs: sum(metric::OPT_OUTS),
            opt_out_rates: BTreeMap::new(),
        }
    }

    /// The EMF documents (namespace `optline`, dimension `Function`).
    pub fn documents(&self, now: DateTime<Utc>) -> Vec<Value> {
        let emf = |dimensions: Vec<&str>, metrics: Vec<(&str, &str)>| {
            json!({
                "Timestamp": now.timestamp_millis(),
                "CloudWatchMetrics": [{
                    "Namespace": "optline",
                    "Dimensions": [dimensions],
                    "Metrics": metrics.iter().map(|(n, u)| json!({"Name": n, "Unit": u})).collect::<Vec<_>>(),
                }]
            })
        };
        let mut docs = vec![json!({
            "_aws": emf(vec!["Function"], vec![
                ("Counted", "Count"), ("Repeats", "Count"), ("Delivered", "Count"),
                ("Undelivered", "Count"), ("OptOuts", "Count"),
            ]),
            "Function": "outbox-drain",
            "Counted": self.counted,
            "Repeats": self.repeats,
            "Delivered": self.delivered,
            "Undelivered": self.undelivered,
            "OptOuts": self.opt_outs,
        })];
        if let Some(highest) = self.opt_out_rates.values().copied().reduce(f64::max) {
            docs.push(json!({
                "_aws": emf(vec!["Function"], vec![("TemplateOptOutRatePer1000", "None")]),
                "Function": "outbox-drain",
                "TemplateOptOutRatePer1000": highest,
            }));
        }
        for (template, rate) in &self.opt_out_rates {
            docs.push(json!({
                "_aws": emf(vec!["Function", "TemplateVersion"], vec![("TemplateOptOutRatePer1000", "None")]),
                "Function": "outbox-drain",
                "TemplateVersion": template,
                "TemplateOptOutRatePer1000": rate,
            }));
        }
        docs
    }

    /// Writes the documents to stdout (Lambda ships them to CloudWatch);
    /// `OPTLINE_METRICS=off` silences them.
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

/// A day's texts and opt-outs within 7 days of them, per template version
/// (all programs and arms together).
pub async fn opt_out_counts(
    store: &dyn RollupStore,
    today: chrono::NaiveDate,
) -> Result<BTreeMap<String, (u64, u64)>, PortError> {
    let mut by_version: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for rollup in store.rollups(today, today).await? {
        let Some(key) = rollup.key else { continue };
        if key.template == optline_ports::NO_KEY {
            continue;
        }
        let entry = by_version.entry(key.template).or_default();
        entry.0 += rollup.counts.get(metric::SENT).copied().unwrap_or(0);
        entry.1 += rollup.counts.get(metric::OPT_OUTS_7D).copied().unwrap_or(0);
    }
    Ok(by_version)
}

/// The opt-out rate per 1,000 texts of each version with at least
/// [`BatchMetrics::RATE_MIN_SENDS`] texts (the alarm's input).
pub fn opt_out_rates(counts: &BTreeMap<String, (u64, u64)>) -> BTreeMap<String, f64> {
    counts
        .iter()
        .filter(|(_, (sent, _))| *sent >= BatchMetrics::RATE_MIN_SENDS)
        .map(|(t, (sent, out))| (t.clone(), *out as f64 * 1000.0 / *sent as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]
    use super::*;

    #[test]
    fn the_documents_carry_the_batch_and_the_highest_rate() {
        let metrics = BatchMetrics {
            counted: 5,
            repeats: 1,
            delivered: 3,
            undelivered: 1,
            opt_outs: 1,
            opt_out_rates: BTreeMap::from([("a@1".to_owned(), 4.0), ("b@2".to_owned(), 12.5)]),
        };
        let docs = metrics.documents(Utc::now());
        assert_eq!(docs.len(), 4);
        assert_eq!(docs[0]["Counted"], 5);
        assert_eq!(docs[0]["Undelivered"], 1);
        assert_eq!(docs[1]["TemplateOptOutRatePer1000"], 12.5);
        assert_eq!(docs[3]["TemplateVersion"], "b@2");
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "optline"
        );
    }
}
