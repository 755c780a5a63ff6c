//! Outcomes: facts counted exactly once into the rollups, the report equal
//! to a recount of the raw records over a simulated month, and the
//! experiment there reaching a decision while its guardrail stops the arm
//! that drives people away.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::print_stdout,
    reason = "integration tests fail loudly and print the month they ran"
)]

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{Duration, TimeZone, Utc};
use optline_outcomes::{Format, ReportRequest};
use optline_ports::{
    bucket_metric, metric, ExperimentStore, Rollup, RollupKey, RollupStore, StepOutcome, Tally,
};
use optline_tests::faults::{Fault, FaultPlan};
use optline_tests::simulate::{self, Options, EXPERIMENT};
use optline_tests::Harness;

type Item = std::collections::HashMap<String, AttributeValue>;

async fn scan(h: &Harness) -> Vec<Item> {
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = h
            .dynamodb
            .scan()
            .table_name(&h.resources.table_name)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .unwrap();
        items.extend(page.items().iter().cloned());
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => break,
        }
    }
    items
}

fn s<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name)? {
        AttributeValue::S(v) => Some(v.as_str()),
        _ => None,
    }
}

/// Each rollup's counts summed per key (days, programs, versions, arms).
async fn rollups(h: &Harness) -> BTreeMap<RollupKey, BTreeMap<String, u64>> {
    let from = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
    let to = chrono::NaiveDate::from_ymd_opt(2027, 12, 31).unwrap();
    h.store
        .rollups(from, to)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|r: Rollup| Some((r.key?, r.counts)))
        .collect()
}

/// The tallies a stream event carries.
fn tallies(event: &aws_lambda_events::event::dynamodb::Event) -> Vec<Tally> {
    event
        .records
        .iter()
        .filter(|r| r.event_name == "INSERT")
        .filter_map(|r| {
            let image = serde_json::to_value(&r.change.new_image).ok()?;
            if !image["pk"]["S"].as_str()?.starts_with("TALLY#") {
                return None;
            }
            serde_json::from_str(image["data"]["S"].as_str()?).ok()
        })
        .collect()
}

#[tokio::test]
async fn a_fact_is_counted_once_however_often_the_stream_delivers_it_or_the_count_fails() {
    let h = Harness::new("outcomes-once").await;
    let now = Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap();
    h.stream_event().await;
    for (round, fault) in [None, Some(Fault::Before), Some(Fault::After)]
        .into_iter()
        .enumerate()
    {
        // Three texts sent: three tallies (sent, segments, episodes).
        for i in 0..3 {
            let id = h
                .seed_step(
                    &format!("once-{round}-{i}"),
                    &format!("+1332555{round}{i:03}"),
                    &format!("once-{round}-{i}"),
                    now - Duration::minutes(5),
                )
                .await;
            let outcome = optline_dispatch::dispatch_step(&id, &h.dispatch(), now)
                .await
                .unwrap();
            assert!(
                matches!(outcome, optline_delivery::Outcome::Sent(_)),
                "{outcome:?}"
            );
        }
        // The batch as the mapping hands it over, kept to the tallies (the
        // contacts' consent announcements are the drain's other half).
        let mut event = h.stream_event().await;
        event.records.retain(|r| {
            serde_json::to_value(&r.change.keys)
                .ok()
                .and_then(|k| k["pk"]["S"].as_str().map(|pk| pk.starts_with("TALLY#")))
                .unwrap_or(false)
        });
        let batch = tallies(&event);
        assert_eq!(batch.len(), 3, "one tally per text, written with it");
        let before = rollups(&h).await;
        let mut expected = before.clone();
        for tally in &batch {
            let into = expected.entry(tally.key.clone()).or_default();
            for (m, n) in &tally.counts {
                *into.entry(m.clone()).or_default() += n;
            }
        }

        let plan = FaultPlan::default();
        let faulty = h.with_faults(&plan);
        plan.arm(fault.map(|f| (1, f)));
        let first = optline_outbox_drain::handle(
            event.clone(),
            &faulty.outbox_publisher(),
            faulty.outbox_rollups().as_ref(),
        )
        .await;
        let calls = plan.calls();
        plan.disarm();
        assert_eq!(
            calls.first().map(String::as_str),
            Some("DynamoDB.TransactWriteItems"),
            "one transaction counts the batch"
        );
        assert_eq!(
            first.batch_item_failures.is_empty(),
            fault.is_none(),
            "{fault:?}"
        );
        // The stream delivers the batch again (after a failure, or simply
        // twice, as it may), and once more.
        for _ in 0..2 {
            let again = optline_outbox_drain::handle(
                event.clone(),
                &h.outbox_publisher(),
                h.outbox_rollups().as_ref(),
            )
            .await;
            assert!(again.batch_item_failures.is_empty());
        }
        assert_eq!(
            rollups(&h).await,
            expected,
            "round {round} ({fault:?}): counted once"
        );
    }
}

#[tokio::test]
async fn a_simulated_month_reports_what_the_raw_records_hold_and_its_experiment_decides() {
    let h = Harness::new("outcomes-month").await;
    h.stream_event().await;
    let month = simulate::run(
        &h,
        Options {
            days: 7,
            episodes_per_day: 48,
            seed: 11,
        },
    )
    .await;
    for line in &month.lines {
        println!("{line}");
    }
    let request = ReportRequest {
        from: simulate::start().date_naive() - Duration::days(1),
        to: month.end.date_naive(),
        program: None,
        price_per_segment: 0.01,
        no_show_baselines: BTreeMap::new(),
    };
    let report = optline_outcomes::gather(h.store.as_ref(), &request, month.end)
        .await
        .unwrap();
    println!("{}", report.render(Format::Table));

    // The raw records, recounted.
    let items = scan(&h).await;
    let mut sent_by_version: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut suppressed = 0u64;
    let mut episodes = std::collections::BTreeSet::new();
    let mut delivered = 0u64;
    let mut undelivered = 0u64;
    let mut segments = 0u64;
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    let mut completion_times: BTreeMap<String, u64> = BTreeMap::new();
    let mut revocations = 0u64;
    let mut replies = 0u64;
    for item in &items {
        let pk = s(item, "pk").unwrap_or_default();
        let sk = s(item, "sk").unwrap_or_default();
        if sk == "STEP" && pk.starts_with("STEP#") {
            let step: optline_ports::Step = serde_json::from_str(s(item, "data").unwrap()).unwrap();
            match s(item, "status") {
                Some("sent") => {
                    *sent_by_version
                        .entry((
                            format!("{}@{}", step.template_id, step.template_version),
                            step.arm.clone().unwrap_or_else(|| "-".to_owned()),
                        ))
                        .or_default() += 1;
                    segments += u64::from(step.segments.unwrap_or(1));
                    episodes.insert(step.subject.clone());
                    match s(item, "delivery_status") {
                        Some("delivered") => delivered += 1,
                        Some("undelivered" | "failed") => undelivered += 1,
                        _ => {}
                    }
                }
                Some("suppressed") => {
                    let outcome: StepOutcome =
                        serde_json::from_str(s(item, "outcome").unwrap()).unwrap();
                    assert!(!outcome.reasons.is_empty());
                    suppressed += 1;
                }
                _ => {}
            }
        }
        if sk.starts_with("OUTCOME#") {
            let outcome: optline_ports::EpisodeOutcome =
                serde_json::from_str(s(item, "data").unwrap()).unwrap();
            *outcomes.entry(outcome.kind.clone()).or_default() += 1;
            if matches!(outcome.kind.as_str(), "completed" | "fulfilled") {
                if let Some(seconds) = outcome.after_first_text_seconds {
                    *completion_times
                        .entry(bucket_metric(metric::TIME_TO_COMPLETE, seconds))
                        .or_default() += 1;
                }
            }
        }
        if s(item, "kind") == Some("consent") {
            let event: optline_ports::ConsentEvent =
                serde_json::from_str(s(item, "data").unwrap()).unwrap();
            if event.action == optline_policy::consent::ConsentAction::Revoke {
                revocations += 1;
            }
        }
        if pk.starts_with("TRIGGER#sms:") {
            replies += 1;
        }
    }
    let k = &report.overall;
    assert!(k.sent > 300, "a month's worth of texts: {}", k.sent);
    assert_eq!(k.sent, sent_by_version.values().sum::<u64>(), "texts sent");
    assert_eq!(k.segments, segments, "segments billed");
    assert_eq!(k.episodes, episodes.len() as u64, "episodes texted");
    assert_eq!(k.suppressed, suppressed, "steps suppressed");
    assert_eq!(k.delivered, delivered, "delivered");
    assert_eq!(k.undelivered, undelivered, "undelivered");
    assert_eq!(k.replies, replies, "replies");
    assert_eq!(k.opt_outs, revocations, "opt-outs");
    assert_eq!(k.confirmed, outcomes.get("confirmed").copied().unwrap_or(0));
    assert_eq!(k.no_shows, outcomes.get("noshow").copied().unwrap_or(0));
    assert_eq!(
        k.completed,
        outcomes.get("completed").copied().unwrap_or(0)
            + outcomes.get("fulfilled").copied().unwrap_or(0)
    );
    assert_eq!(
        k.time_to_complete.median_seconds,
        optline_outcomes::quantile(&completion_times, metric::TIME_TO_COMPLETE, 0.5)
    );
    assert_eq!(
        k.time_to_complete.p90_seconds,
        optline_outcomes::quantile(&completion_times, metric::TIME_TO_COMPLETE, 0.9)
    );
    for group in &report.versions {
        assert_eq!(
            group.kpis.sent,
            sent_by_version
                .get(&(group.template.clone(), group.arm.clone()))
                .copied()
                .unwrap_or(0),
            "texts of {} {}",
            group.template,
            group.arm
        );
    }
    assert_eq!(
        month.replies.values().sum::<u64>(),
        replies,
        "every reply the patients sent was recorded once"
    );

    // The experiment: the pushy wording stopped by its opt-outs, with a
    // record of why, a work item for compliance and its announcement; the
    // clearer wording the winner on confirmations.
    let experiment = h.store.experiment(EXPERIMENT).await.unwrap().unwrap();
    let c = experiment.arms.iter().find(|a| a.name == "c").unwrap();
    let stop = c
        .stopped
        .as_ref()
        .expect("the guardrail stopped the pushy arm");
    assert_eq!(stop.by, "guardrail");
    assert!(
        experiment
            .arms
            .iter()
            .filter(|a| a.stopped.is_some())
            .count()
            == 1
    );
    assert!(experiment.history.iter().any(|e| e.action == "arm_stopped"));
    let reviews = optline_ports::Casework::reviews(h.store.as_ref())
        .await
        .unwrap();
    assert!(reviews.iter().any(|r| r.kind == "experiment_guardrail"));
    let results = optline_outcomes::experiments::results(h.store.as_ref(), &experiment, month.end)
        .await
        .unwrap();
    for arm in &results.arms {
        println!(
            "{}: {}/{} episodes confirmed, P(best) {:?}; {} opt-outs in {} sends",
            arm.name, arm.successes, arm.episodes, arm.probability_best, arm.opt_outs, arm.sends
        );
    }
    match results.call {
        optline_policy::experiment::Call::Winner { arm, probability } => {
            assert_eq!(experiment.arms[arm].name, "b", "the clearer wording wins");
            assert!(probability >= 0.95);
        }
        other => panic!("the experiment should have reached a decision: {other:?}"),
    }
    // Sends carried arms; the holdout kept the standard version.
    assert!(sent_by_version
        .keys()
        .any(|(t, arm)| t == "appointment_reminder@1" && arm.ends_with("/holdout")));
    assert!(sent_by_version
        .keys()
        .all(|(t, arm)| !arm.ends_with("/c") || t != "appointment_reminder@1"));
}
