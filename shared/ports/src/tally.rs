//! Facts counted into the rollups, each exactly once.
//!
//! A use case that commits a countable fact (a text sent, a step
//! suppressed or deferred, a delivery report, a reply, an episode outcome,
//! an opt-out, an owed confirmation sent or skipped, an off-SMS revocation
//! completed) adds a [`Tally`] to the same commit. The store writes it as a
//! tally item in the same transaction as the fact, so a tally exists
//! exactly when its fact does; the table's stream hands each new tally item
//! to the rollup counter (in `outbox-drain`), which adds it to its rollup
//! and marks it counted in one transaction keyed by the tally's id. A
//! redelivered stream record finds the mark and adds nothing.
//!
//! The rollup key is program × template version × experiment arm × day
//! (UTC). Counts are named by [`metric`] names, documented in
//! `docs/outcomes.md`; times are histograms over [`BUCKETS`].

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{ConsentEvent, DeliveryUpdate, EpisodeOutcome, SendHistoryEntry, Step, StepOutcome};
use crate::{LaneStatus, LaneText, RevocationRequest, StepStatus};

/// The key part that is not known (no template, no arm).
pub const NONE: &str = "-";

/// What a tally is counted under.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RollupKey {
    /// The program.
    pub program: String,
    /// The template version (`id@version`), or [`NONE`].
    pub template: String,
    /// The experiment arm (`experiment/arm`), or [`NONE`].
    pub arm: String,
    /// The day (UTC) the fact happened.
    pub day: NaiveDate,
}

/// One fact's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// The fact's stable id (`sent:<step>`, `reply:<carrier>:<message>`,
    /// ...): a fact is counted once however often it is delivered.
    pub id: String,
    /// Where it is counted.
    pub key: RollupKey,
    /// Metric name -> amount.
    pub counts: BTreeMap<String, u64>,
    /// When the fact's trigger arrived, for a fact whose time from arrival
    /// to commit is measured (an opt-out): the counter observes the commit
    /// time the stream reports minus this, as `opt_out_commit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<DateTime<Utc>>,
}

/// Metric names (the rest are built: `suppressed.<reason>`,
/// `replies.<intent>`, `outcome.<kind>`, `<histogram>.b<bucket>`).
pub mod metric {
    /// Texts the carrier accepted.
    pub const SENT: &str = "sent";
    /// Message parts billed for them.
    pub const SEGMENTS: &str = "segments";
    /// Episodes texted: a send that is its episode's first.
    pub const EPISODES: &str = "episodes";
    /// Steps suppressed (each reason is counted under `suppressed.<reason>` too).
    pub const SUPPRESSED: &str = "suppressed";
    /// Steps deferred (quiet hours, caps, an unknown window).
    pub const DEFERRED: &str = "deferred";
    /// Texts the carrier refused when asked to send them (`failed.<code>` too).
    pub const FAILED: &str = "failed";
    /// Texts whose outcome could not be known (never sent again).
    pub const UNKNOWN: &str = "unknown";
    /// Delivery reports: delivered.
    pub const DELIVERED: &str = "delivered";
    /// Delivery reports: failed or undelivered (`undelivered.<code>` too).
    pub const UNDELIVERED: &str = "undelivered";
    /// Replies (each is also `replies.<intent>`).
    pub const REPLIES: &str = "replies";
    /// Texts answered: the first reply after a text counts it once.
    pub const RESPONDED: &str = "responded";
    /// Opt-outs (revocations recorded, any channel).
    pub const OPT_OUTS: &str = "opt_outs";
    /// Opt-outs within 24 hours of a text of this version and arm.
    pub const OPT_OUTS_24H: &str = "opt_outs_24h";
    /// Opt-outs within 7 days of a text of this version and arm.
    pub const OPT_OUTS_7D: &str = "opt_outs_7d";
    /// Owed confirmations and HELP answers sent through the lane.
    pub const LANE_SENT: &str = "lane_sent";
    /// Owed texts skipped past their deadline.
    pub const LANE_SKIPPED: &str = "lane_skipped";
    /// Off-SMS revocation requests completed.
    pub const REVOCATIONS_COMPLETED: &str = "revocations_completed";
    /// ... of which by their deadline (10 business days).
    pub const REVOCATIONS_ON_TIME: &str = "revocations_on_time";
    /// Histogram: first text -> confirmation.
    pub const TIME_TO_CONFIRM: &str = "time_to_confirm";
    /// Histogram: first text -> completion.
    pub const TIME_TO_COMPLETE: &str = "time_to_complete";
    /// Histogram: opt-out received -> suppression committed.
    pub const OPT_OUT_COMMIT: &str = "opt_out_commit";
    /// Histogram: opt-out received -> confirmation sent.
    pub const OPT_OUT_CONFIRMATION: &str = "opt_out_confirmation";
}

/// Upper bounds (seconds) of the histogram buckets: about 19% apart
/// (2^(1/4)) from 1 second to about 68 days, so a quantile read from the buckets
/// is within one bucket's width of the exact one. The last bucket is open.
pub const BUCKETS: usize = 92;

/// The upper bound (seconds) of bucket `i` (`None` for the open last one).
pub fn bucket_bound(i: usize) -> Option<f64> {
    (i + 1 < BUCKETS).then(|| 2f64.powf(i as f64 / 4.0))
}

/// The bucket holding `seconds` (negative counts as 0).
pub fn bucket_of(seconds: i64) -> usize {
    let s = seconds.max(0) as f64;
    (0..BUCKETS)
        .find(|&i| bucket_bound(i).is_none_or(|b| s <= b))
        .unwrap_or(BUCKETS - 1)
}

/// The metric name of a histogram bucket.
pub fn bucket_metric(histogram: &str, seconds: i64) -> String {
    format!("{histogram}.b{:02}", bucket_of(seconds))
}

fn template_of(step: &Step) -> String {
    format!("{}@{}", step.template_id, step.template_version)
}

impl Tally {
    fn new(id: String, key: RollupKey) -> Self {
        Self {
            id,
            key,
            counts: BTreeMap::new(),
            received_at: None,
        }
    }

    /// Adds `n` to `metric`.
    pub fn add(&mut self, metric: &str, n: u64) -> &mut Self {
        *self.counts.entry(metric.to_owned()).or_default() += n;
        self
    }

    /// Observes `seconds` in `histogram`.
    pub fn observe(&mut self, histogram: &str, seconds: i64) -> &mut Self {
        self.add(&bucket_metric(histogram, seconds), 1)
    }

    fn key_of_step(step: &Step, at: DateTime<Utc>) -> RollupKey {
        RollupKey {
            program: step.program.clone(),
            template: template_of(step),
            arm: step.arm.clone().unwrap_or_else(|| NONE.to_owned()),
            day: at.date_naive(),
        }
    }

    fn key_of_send(sent: Option<&SendHistoryEntry>, program: &str, at: DateTime<Utc>) -> RollupKey {
        RollupKey {
            program: sent.map_or(program, |s| s.program.as_str()).to_owned(),
            template: sent
                .and_then(|s| s.template.clone())
                .unwrap_or_else(|| NONE.to_owned()),
            arm: sent
                .and_then(|s| s.arm.clone())
                .unwrap_or_else(|| NONE.to_owned()),
            day: at.date_naive(),
        }
    }

    /// A step's end: sent (with its segments), suppressed or failed by
    /// reason, or of unknown outcome. `None` for an end that is not a
    /// dispatch fact (cancelled by its source, still pending).
    pub fn step_end(step: &Step, outcome: &StepOutcome) -> Option<Self> {
        let key = Self::key_of_step(step, outcome.at);
        let mut tally = Self::new(format!("end:{}", step.id.as_str()), key);
        match outcome.status {
            StepStatus::Sent => {
                tally
                    .add(metric::SENT, 1)
                    .add(metric::SEGMENTS, u64::from(step.segments.unwrap_or(1)));
            }
            StepStatus::Suppressed => {
                tally.add(metric::SUPPRESSED, 1);
                for reason in &outcome.reasons {
                    tally.add(&format!("{}.{reason}", metric::SUPPRESSED), 1);
                }
            }
            StepStatus::Failed if outcome.reasons.iter().any(|r| r.contains("unknown")) => {
                tally.add(metric::UNKNOWN, 1);
            }
            StepStatus::Failed => {
                tally.add(metric::FAILED, 1);
                for reason in &outcome.reasons {
                    let code = reason.strip_prefix("carrier.").unwrap_or(reason);
                    tally.add(&format!("{}.{code}", metric::FAILED), 1);
                }
            }
            _ => return None,
        }
        Some(tally)
    }

    /// A step deferred at `at` (each deferral is a fact of its own).
    pub fn deferral(step: &Step, at: DateTime<Utc>) -> Self {
        let mut tally = Self::new(
            format!("defer:{}:{}", step.id.as_str(), at.timestamp_micros()),
            Self::key_of_step(step, at),
        );
        tally.add(metric::DEFERRED, 1);
        tally
    }

    /// A message's final delivery report (one per message: a later,
    /// different final report of the same message is not counted again).
    pub fn delivery(step: &Step, update: &DeliveryUpdate) -> Option<Self> {
        let mut tally = Self::new(
            format!("delivery:{}", update.carrier_message_id),
            Self::key_of_step(step, update.at),
        );
        match update.status.as_str() {
            "delivered" => {
                tally.add(metric::DELIVERED, 1);
            }
            "failed" | "undelivered" => {
                let code = update.error_code.as_deref().unwrap_or("none");
                tally
                    .add(metric::UNDELIVERED, 1)
                    .add(&format!("{}.{code}", metric::UNDELIVERED), 1);
            }
            _ => return None,
        }
        Some(tally)
    }

    /// A reply, by the intent it was read as, counted against the text
    /// last sent to the number (or the contact's program when none).
    pub fn reply(
        message: &str,
        intent: &str,
        sent: Option<&SendHistoryEntry>,
        program: &str,
        at: DateTime<Utc>,
    ) -> Self {
        let mut tally = Self::new(
            format!("reply:{message}"),
            Self::key_of_send(sent, program, at),
        );
        tally
            .add(metric::REPLIES, 1)
            .add(&format!("{}.{intent}", metric::REPLIES), 1);
        tally
    }

    /// A text answered: the first reply after it counts it (a second
    /// reply to the same text is the same fact, by its id).
    pub fn responded(sent: &SendHistoryEntry, at: DateTime<Utc>) -> Option<Self> {
        let step = sent.step_id.as_ref()?;
        let mut tally = Self::new(
            format!("responded:{}", step.as_str()),
            Self::key_of_send(Some(sent), &sent.program, at),
        );
        tally.add(metric::RESPONDED, 1);
        Some(tally)
    }

    /// An episode outcome, counted against the episode's first text (its
    /// version and arm); its time since that text goes in the histogram
    /// of confirmations or completions.
    pub fn outcome(
        outcome: &EpisodeOutcome,
        first: Option<&SendHistoryEntry>,
        program: &str,
    ) -> Self {
        let mut tally = Self::new(
            format!("outcome:{}:{}", outcome.subject, outcome.kind),
            Self::key_of_send(first, program, outcome.at),
        );
        tally.add(&format!("outcome.{}", outcome.kind), 1);
        if let Some(seconds) = outcome.after_first_text_seconds {
            match outcome.kind.as_str() {
                "confirmed" => {
                    tally.observe(metric::TIME_TO_CONFIRM, seconds);
                }
                "completed" | "fulfilled" => {
                    tally.observe(metric::TIME_TO_COMPLETE, seconds);
                }
                _ => {}
            }
        }
        tally
    }

    /// An opt-out (a revocation event), counted against the last text sent
    /// before it, and as within 24 hours / 7 days of it.
    pub fn opt_out(
        event: &ConsentEvent,
        last_send: Option<&SendHistoryEntry>,
        program: &str,
    ) -> Self {
        let within = last_send.map(|s| event.at - s.at);
        let recent =
            within.filter(|d| *d <= chrono::Duration::days(7) && *d >= chrono::Duration::zero());
        let attributed = recent.and(last_send);
        let mut tally = Self::new(
            format!("optout:{}", event.id.as_str()),
            Self::key_of_send(attributed, program, event.recorded_at),
        );
        tally.add(metric::OPT_OUTS, 1).add(
            &format!("{}.{}", metric::OPT_OUTS, event.channel.as_str()),
            1,
        );
        if let Some(d) = recent {
            tally.add(metric::OPT_OUTS_7D, 1);
            if d <= chrono::Duration::hours(24) {
                tally.add(metric::OPT_OUTS_24H, 1);
            }
        }
        tally
    }

    /// An owed lane text ended: sent (an opt-out confirmation's time since
    /// the opt-out observed), skipped past its deadline, refused or of
    /// unknown outcome.
    pub fn lane(text: &LaneText, status: LaneStatus, at: DateTime<Utc>) -> Self {
        let mut tally = Self::new(
            format!("lane:{}", text.key),
            RollupKey {
                program: text.program.clone(),
                template: NONE.to_owned(),
                arm: NONE.to_owned(),
                day: at.date_naive(),
            },
        );
        tally.add(&format!("lane.{}.{}", text.purpose, status.as_str()), 1);
        match status {
            LaneStatus::Sent => {
                tally.add(metric::LANE_SENT, 1);
                if text.purpose == "opt_out_confirmation" {
                    tally.observe(metric::OPT_OUT_CONFIRMATION, (at - text.at).num_seconds());
                }
            }
            LaneStatus::Skipped => {
                tally.add(metric::LANE_SKIPPED, 1);
            }
            _ => {}
        }
        tally
    }

    /// An off-SMS revocation request completed, on time or late.
    pub fn revocation_completed(request: &RevocationRequest, program: &str) -> Option<Self> {
        let at = request.completed_at?;
        let mut tally = Self::new(
            format!("revocation:{}", request.id.as_str()),
            RollupKey {
                program: program.to_owned(),
                template: NONE.to_owned(),
                arm: NONE.to_owned(),
                day: at.date_naive(),
            },
        );
        tally.add(metric::REVOCATIONS_COMPLETED, 1);
        if at <= request.deadline {
            tally.add(metric::REVOCATIONS_ON_TIME, 1);
        }
        Some(tally)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_ordered_and_cover_two_months() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 4);
        let hour = bucket_of(3600);
        assert!(bucket_bound(hour).is_some_and(|b| (3600.0..3600.0 * 1.2).contains(&b)));
        assert_eq!(bucket_of(60 * 86_400), BUCKETS - 2);
        assert_eq!(bucket_of(i64::MAX), BUCKETS - 1);
        assert_eq!(bucket_metric("t", 2), "t.b04");
    }
}
