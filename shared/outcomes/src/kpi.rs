//! The KPIs, each defined on the rollups' counts (`docs/outcomes.md`).
//!
//! A rate is `None` when its denominator is zero: no number is shown
//! rather than a made-up one.

use std::collections::BTreeMap;

use optline_ports::{bucket_bound, metric, BUCKETS};
use serde::Serialize;

/// A time's median and 90th percentile, read from its histogram: each is
/// the upper bound of the bucket holding it (at most 19% above the exact
/// value; buckets are 2^(1/4) apart).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Quantiles {
    /// Observations.
    pub count: u64,
    /// Median, seconds.
    pub median_seconds: Option<f64>,
    /// 90th percentile, seconds.
    pub p90_seconds: Option<f64>,
}

/// The KPIs of one group of rollups (a program, a version, an arm, all).
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Kpis {
    /// Texts the carrier accepted.
    pub sent: u64,
    /// Message parts billed.
    pub segments: u64,
    /// Episodes texted (the first text of each).
    pub episodes: u64,
    /// Delivery reports: delivered.
    pub delivered: u64,
    /// Delivery reports: failed or undelivered.
    pub undelivered: u64,
    /// delivered / (delivered + undelivered).
    pub delivery_rate: Option<f64>,
    /// Undelivered or failed by carrier code.
    pub undelivered_by_code: BTreeMap<String, u64>,
    /// Refused by the carrier when sent, by code.
    pub failed_by_code: BTreeMap<String, u64>,
    /// Steps suppressed.
    pub suppressed: u64,
    /// ... by reason (a suppression with two reasons counts under both).
    pub suppressed_by_reason: BTreeMap<String, u64>,
    /// Deferrals.
    pub deferred: u64,
    /// Replies.
    pub replies: u64,
    /// ... by intent.
    pub replies_by_intent: BTreeMap<String, u64>,
    /// Texts answered (the first reply after each).
    pub responded: u64,
    /// texts answered / texts sent.
    pub response_rate: Option<f64>,
    /// Confirmations.
    pub confirmed: u64,
    /// Reschedule requests.
    pub reschedule_requested: u64,
    /// Completions (completed or fulfilled).
    pub completed: u64,
    /// No-shows.
    pub no_shows: u64,
    /// confirmed / episodes.
    pub confirmation_rate: Option<f64>,
    /// completed / episodes.
    pub completion_rate: Option<f64>,
    /// no-shows / (completed + no-shows).
    pub no_show_rate: Option<f64>,
    /// The program's no-show rate before texting, when configured.
    pub no_show_baseline: Option<f64>,
    /// First text -> confirmation.
    pub time_to_confirm: Quantiles,
    /// First text -> completion.
    pub time_to_complete: Quantiles,
    /// Opt-outs (every revocation recorded).
    pub opt_outs: u64,
    /// Opt-outs within 24 hours of a text of the group.
    pub opt_outs_24h: u64,
    /// Opt-outs within 7 days of a text of the group.
    pub opt_outs_7d: u64,
    /// opt-outs within 7 days per 1,000 texts sent.
    pub opt_out_rate_per_1000: Option<f64>,
    /// Opt-out received -> suppression committed.
    pub opt_out_commit: Quantiles,
    /// Opt-out received -> confirmation sent.
    pub opt_out_confirmation: Quantiles,
    /// Owed texts (confirmations, HELP) sent through the lane.
    pub lane_sent: u64,
    /// Owed texts skipped past their deadline.
    pub lane_skipped: u64,
    /// Off-SMS revocation requests completed.
    pub revocations_completed: u64,
    /// ... by their deadline.
    pub revocations_on_time: u64,
    /// segments × price per segment (USD).
    pub cost_usd: f64,
}

fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// The metrics under `prefix.` (the prefix taken off).
fn under(totals: &BTreeMap<String, u64>, prefix: &str) -> BTreeMap<String, u64> {
    let dotted = format!("{prefix}.");
    totals
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&dotted)?.to_owned(), *v)))
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

/// The `q` quantile (0..=1) of a histogram: the upper bound of the bucket
/// holding the observation of rank ceil(q × n) (the open last bucket gives
/// its lower bound).
pub fn quantile(totals: &BTreeMap<String, u64>, histogram: &str, q: f64) -> Option<f64> {
    let counts: Vec<u64> = (0..BUCKETS)
        .map(|i| {
            totals
                .get(&format!("{histogram}.b{i:02}"))
                .copied()
                .unwrap_or(0)
        })
        .collect();
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return None;
    }
    let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
    let mut seen = 0;
    for (i, c) in counts.iter().enumerate() {
        seen += c;
        if seen >= rank {
            return bucket_bound(i).or_else(|| i.checked_sub(1).and_then(bucket_bound));
        }
    }
    None
}

fn quantiles(totals: &BTreeMap<String, u64>, histogram: &str) -> Quantiles {
    Quantiles {
        count: under(totals, histogram).values().sum(),
        median_seconds: quantile(totals, histogram, 0.5),
        p90_seconds: quantile(totals, histogram, 0.9),
    }
}

/// The KPIs of `totals` (a group's summed counts), with the price of one
/// segment (USD) and the program's no-show baseline.
pub fn kpis(totals: &BTreeMap<String, u64>, price_per_segment: f64, baseline: Option<f64>) -> Kpis {
    let n = |name: &str| totals.get(name).copied().unwrap_or(0);
    let sent = n(metric::SENT);
    let episodes = n(metric::EPISODES);
    let delivered = n(metric::DELIVERED);
    let undelivered = n(metric::UNDELIVERED);
    let replies = n(metric::REPLIES);
    let confirmed = n("outcome.confirmed");
    let completed = n("outcome.completed") + n("outcome.fulfilled");
    let no_shows = n("outcome.noshow");
    let opt_outs_7d = n(metric::OPT_OUTS_7D);
    let segments = n(metric::SEGMENTS);
    Kpis {
        sent,
        segments,
        episodes,
        delivered,
        undelivered,
        delivery_rate: ratio(delivered, delivered + undelivered),
        undelivered_by_code: under(totals, metric::UNDELIVERED),
        failed_by_code: under(totals, metric::FAILED),
        suppressed: n(metric::SUPPRESSED),
        suppressed_by_reason: under(totals, metric::SUPPRESSED),
        deferred: n(metric::DEFERRED),
        replies,
        replies_by_intent: under(totals, metric::REPLIES),
        responded: n(metric::RESPONDED),
        response_rate: ratio(n(metric::RESPONDED), sent),
        confirmed,
        reschedule_requested: n("outcome.reschedule_requested"),
        completed,
        no_shows,
        confirmation_rate: ratio(confirmed, episodes),
        completion_rate: ratio(completed, episodes),
        no_show_rate: ratio(no_shows, completed + no_shows),
        no_show_baseline: baseline,
        time_to_confirm: quantiles(totals, metric::TIME_TO_CONFIRM),
        time_to_complete: quantiles(totals, metric::TIME_TO_COMPLETE),
        opt_outs: n(metric::OPT_OUTS),
        opt_outs_24h: n(metric::OPT_OUTS_24H),
        opt_outs_7d,
        opt_out_rate_per_1000: ratio(opt_outs_7d, sent).map(|r| r * 1000.0),
        opt_out_commit: quantiles(totals, metric::OPT_OUT_COMMIT),
        opt_out_confirmation: quantiles(totals, metric::OPT_OUT_CONFIRMATION),
        lane_sent: n(metric::LANE_SENT),
        lane_skipped: n(metric::LANE_SKIPPED),
        revocations_completed: n(metric::REVOCATIONS_COMPLETED),
        revocations_on_time: n(metric::REVOCATIONS_ON_TIME),
        cost_usd: segments as f64 * price_per_segment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use optline_ports::bucket_metric;

    fn totals(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn rates_follow_their_definitions() {
        let t = totals(&[
            ("sent", 1000),
            ("segments", 1300),
            ("episodes", 800),
            ("delivered", 950),
            ("undelivered", 50),
            ("undelivered.30006", 30),
            ("undelivered.30003", 20),
            ("replies", 450),
            ("responded", 400),
            ("replies.confirm", 300),
            ("outcome.confirmed", 300),
            ("outcome.completed", 600),
            ("outcome.noshow", 60),
            ("opt_outs", 9),
            ("opt_outs_7d", 6),
            ("suppressed", 5),
            ("suppressed.consent.legal_basis", 5),
        ]);
        let k = kpis(&t, 0.0079, Some(0.18));
        assert_eq!(k.delivery_rate, Some(0.95));
        assert_eq!(k.response_rate, Some(0.4));
        assert_eq!(k.confirmation_rate, Some(0.375));
        assert_eq!(k.completion_rate, Some(0.75));
        assert_eq!(k.no_show_rate, Some(60.0 / 660.0));
        assert_eq!(k.opt_out_rate_per_1000, Some(6.0));
        assert_eq!(k.undelivered_by_code.get("30006"), Some(&30));
        assert_eq!(k.suppressed_by_reason.get("consent.legal_basis"), Some(&5));
        assert_eq!(k.replies_by_intent.len(), 1);
        assert!((k.cost_usd - 10.27).abs() < 1e-9);
        assert_eq!(kpis(&BTreeMap::new(), 0.01, None).response_rate, None);
    }

    #[test]
    fn quantiles_come_from_the_bucket_holding_the_rank() {
        let mut t = BTreeMap::new();
        for seconds in [60, 120, 600, 3600, 7200] {
            *t.entry(bucket_metric("ttc", seconds)).or_insert(0) += 1;
        }
        let median = quantile(&t, "ttc", 0.5).unwrap();
        assert!((600.0..600.0 * 1.19).contains(&median), "{median}");
        let p90 = quantile(&t, "ttc", 0.9).unwrap();
        assert!((7200.0..7200.0 * 1.19).contains(&p90), "{p90}");
        assert_eq!(quantile(&t, "other", 0.5), None);
    }
}
