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
    bucket_metric, metric, ExperimentStore, Rollup, RollupKey, RollupStore, StepOutcome, StepStore,
    Tally,
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
            Default::default(),
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
                Default::default(),
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
            days: 6,
            episodes_per_day: 40,
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
    assert!(k.sent > 250, "a month's worth of texts: {}", k.sent);
    assert_eq!(k.sent, sent_by_version.values().sum::<u64>(), "texts sent");
    assert_eq!(k.segments, segments, "segments billed");
    assert_eq!(k.episodes, episodes.len() as u64, "episodes texted");
    assert_eq!(k.suppressed, suppressed, "steps suppressed");
    assert_eq!(k.delivered, delivered, "delivered");
    assert_eq!(k.undelivered, undelivered, "undelivered");
    assert_eq!(k.replies, replies, "replies");
    assert!(
        k.responded <= k.sent && k.responded > 0,
        "texts answered: {}",
        k.responded
    );
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

#[tokio::test]
async fn only_compliance_starts_an_experiment_and_only_on_published_approved_versions() {
    let h = Harness::new("outcomes-experiments").await;
    let now = Utc.with_ymd_and_hms(2026, 11, 2, 13, 0, 0).unwrap();
    let deps = h.templates();
    let start = |user: &'static str, arms: serde_json::Value| {
        let request = h.request_as(
            user,
            "POST",
            "/experiments",
            Some(serde_json::json!({
                "id": "wording",
                "template_id": "appointment_reminder",
                "arms": arms,
                "primary_metric": "confirmation"
            })),
        );
        let deps = deps.clone();
        async move { optline_templates::handle(request, &deps, now).await }
    };
    // A draft version 2 of the reminder, written but never approved.
    let v1 =
        optline_ports::TemplateStore::template_version(h.store.as_ref(), "appointment_reminder", 1)
            .await
            .unwrap()
            .unwrap();
    let draft = optline_templates::handle(
        h.request_as(
            "rae.desk",
            "POST",
            "/templates",
            Some(serde_json::json!({
                "id": "appointment_reminder",
                "program": "*",
                "purpose": "appointment_reminder",
                "category": "appointments",
                "class": "transactional",
                "locale": "en-US",
                "body": "{{program}}: appointment {{date}} at {{time}}. Reply C to confirm or R to reschedule. Reply STOP to opt out.",
                "variables": v1.version.variables,
                "confirm_codes": v1.version.confirm_codes,
                "reschedule_codes": v1.version.reschedule_codes,
                "change_reason": "shorter"
            })),
        ),
        &deps,
        now,
    )
    .await;
    assert_eq!(draft.status(), 201, "{}", optline_tests::body_text(&draft));
    let two_arms = serde_json::json!([{"name": "a", "version": 1}, {"name": "b", "version": 2}]);

    let staff = start("rae.desk", two_arms.clone()).await;
    assert_eq!(staff.status(), 403, "operations cannot start one");
    let drafted = start("ana.compliance", two_arms.clone()).await;
    assert_eq!(drafted.status(), 422, "a draft is never an arm");
    assert!(optline_tests::body_text(&drafted).contains("arm b"));
    let missing = start(
        "ana.compliance",
        serde_json::json!([{"name": "a", "version": 1}, {"name": "b", "version": 9}]),
    )
    .await;
    assert_eq!(missing.status(), 422);

    // Once the reminder's second version is approved and published, it
    // may be an arm.
    let lint = optline_policy::template::lint::LintConfig::embedded().unwrap();
    let library = optline_library::Library::new(
        h.store.as_ref(),
        optline_policy::template::review::ReviewPolicy::default(),
        lint,
    );
    let author = h.actor("rae.desk").await;
    let submitted = library
        .act(
            "appointment_reminder",
            2,
            &optline_policy::template::review::Action::Submit,
            &author,
            now,
        )
        .await
        .unwrap();
    for role in submitted.missing_approvals.clone() {
        let reviewer = h.actor(optline_tests::reviewer_for(role)).await;
        library
            .act(
                "appointment_reminder",
                2,
                &optline_policy::template::review::Action::Approve { role },
                &reviewer,
                now,
            )
            .await
            .unwrap();
    }
    library
        .act(
            "appointment_reminder",
            2,
            &optline_policy::template::review::Action::Publish,
            &h.actor("olu.ops").await,
            now,
        )
        .await
        .unwrap();

    let started = start("ana.compliance", two_arms.clone()).await;
    assert_eq!(
        started.status(),
        201,
        "{}",
        optline_tests::body_text(&started)
    );
    let again = start("bo.compliance", two_arms).await;
    assert_eq!(again.status(), 409, "one experiment per family at a time");
    let experiment = h.store.experiment("wording").await.unwrap().unwrap();
    assert!(experiment.running);
    assert!(
        experiment.history[0].by.starts_with("Ana"),
        "{:?}",
        experiment.history
    );

    // A queued reminder carries its contact's arm: the audit record, the
    // send record and the step as sent all name it.
    let step = h
        .seed_step(
            "exp-1",
            "+13325559001",
            "exp-1-reminder",
            now - Duration::minutes(1),
        )
        .await;
    let outcome = optline_dispatch::dispatch_step(&step, &h.dispatch(), now)
        .await
        .unwrap();
    assert!(
        matches!(outcome, optline_delivery::Outcome::Sent(_)),
        "{outcome:?}"
    );
    let sent = h.store.step(&step).await.unwrap().unwrap();
    let arm = sent.arm.clone().expect("the step as sent names its arm");
    let expected = match optline_outcomes::experiments::arm_for(
        std::slice::from_ref(&experiment),
        &optline_ports::Step {
            arm: None,
            template_version: 1,
            ..sent.clone()
        },
    ) {
        optline_outcomes::experiments::ArmChoice::Arm { arm, version } => {
            assert_eq!(sent.template_version, version);
            arm
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(
        arm, expected,
        "the hash of contact and experiment picks the arm"
    );
    let chain = optline_ports::AuditTrail::audit_chain(
        h.store.as_ref(),
        &optline_ports::ContactId::parse("exp-1").unwrap(),
    )
    .await
    .unwrap();
    let record = chain
        .iter()
        .rev()
        .find(|r| r.content.action == "send")
        .unwrap();
    assert_eq!(record.content.arm.as_deref(), Some(arm.as_str()));
    assert_eq!(
        record.content.template.as_deref(),
        Some(format!("appointment_reminder@{}", sent.template_version).as_str())
    );

    let results = optline_templates::handle(
        h.request_as("lee.legal", "GET", "/experiments/wording", None),
        &deps,
        now,
    )
    .await;
    assert_eq!(results.status(), 200);
    assert_eq!(
        optline_tests::body_json(&results)["call"]["not_enough_data"]["min_sample"],
        200
    );
    let stop = optline_templates::handle(
        h.request_as(
            "lee.legal",
            "POST",
            "/experiments/wording/stop",
            Some(serde_json::json!({"reason": "done"})),
        ),
        &deps,
        now,
    )
    .await;
    assert_eq!(stop.status(), 403, "legal cannot stop one");
    let stop = optline_templates::handle(
        h.request_as(
            "bo.compliance",
            "POST",
            "/experiments/wording/stop",
            Some(serde_json::json!({"reason": "b adopted"})),
        ),
        &deps,
        now,
    )
    .await;
    assert_eq!(stop.status(), 200, "{}", optline_tests::body_text(&stop));
    let experiment = h.store.experiment("wording").await.unwrap().unwrap();
    assert!(!experiment.running);
    assert_eq!(experiment.revision, 1);
    // The start and the stop, each counted once for warm dispatchers.
    assert_eq!(
        optline_ports::ExperimentStore::experiments_changed(h.store.as_ref())
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn a_template_whose_opt_outs_spike_is_paused_until_a_person_in_compliance_resumes_it() {
    use optline_outcomes::pauses::PausePolicy;
    use optline_ports::PauseStore;
    let h = Harness::new("outcomes-pause").await;
    // Monday 2026-12-07, noon in New York.
    let now = Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap();
    // The pauses' change count, which warm dispatchers check before
    // reading the pauses again, counts each commit that writes a pause.
    assert_eq!(h.store.pauses_changed().await.unwrap(), 0);
    h.stream_event().await;
    let send = |n: u32| {
        let h = h.clone();
        async move {
            let id = h
                .seed_step(
                    &format!("spike-{n}"),
                    &format!("+1332555{:04}", 7100 + n),
                    &format!("spike-{n}"),
                    now - Duration::minutes(5),
                )
                .await;
            optline_dispatch::dispatch_step(&id, &h.dispatch(), now)
                .await
                .unwrap()
        }
    };
    for n in 0..6 {
        assert!(matches!(send(n).await, optline_delivery::Outcome::Sent(_)));
    }
    // Half of them reply STOP.
    for n in 0..3 {
        let stop = optline_inbound::handle(
            optline_tests::twilio_inbound_request(
                &format!("SM000000000000000000000000000spik{n}"),
                &format!("+1332555{:04}", 7100 + n),
                "STOP",
            ),
            &h.inbound(),
            now + Duration::minutes(5),
        )
        .await;
        assert_eq!(stop.status(), 200);
    }
    let policy = PausePolicy {
        per_1000: 100.0,
        min_sends: 5,
    };
    let drained = optline_outbox_drain::handle(
        h.stream_event().await,
        &h.outbox_publisher(),
        h.outbox_rollups().as_ref(),
        policy,
    )
    .await;
    assert!(drained.batch_item_failures.is_empty());
    let pauses = h.store.pauses().await.unwrap();
    assert_eq!(pauses.len(), 1, "{pauses:?}");
    assert_eq!(pauses[0].template, "appointment_reminder@1");
    assert!(pauses[0].paused);
    assert!(pauses[0].history[0]
        .detail
        .starts_with("3 opt-outs within 7 days of its 6 texts"));
    assert_eq!(h.store.pauses_changed().await.unwrap(), 1);
    assert_eq!(
        optline_ports::ExperimentStore::experiments_changed(h.store.as_ref())
            .await
            .unwrap(),
        0,
        "a pause is no change to the experiments"
    );
    let reviews = optline_ports::Casework::reviews(h.store.as_ref())
        .await
        .unwrap();
    assert!(reviews.iter().any(|r| r.kind == "template_paused"));
    let trail = optline_ports::AuditTrail::audit_chain(
        h.store.as_ref(),
        &optline_ports::ContactId::template_trail("appointment_reminder").unwrap(),
    )
    .await
    .unwrap();
    assert!(trail.iter().any(|r| r.content.action == "paused"));

    // Its next step waits, and says why.
    let held = send(10).await;
    assert!(
        matches!(held, optline_delivery::Outcome::Deferred(_)),
        "{held:?}"
    );
    let chain = optline_ports::AuditTrail::audit_chain(
        h.store.as_ref(),
        &optline_ports::ContactId::parse("spike-10").unwrap(),
    )
    .await
    .unwrap();
    let deferral = chain.last().unwrap();
    assert_eq!(deferral.content.action, "defer");
    assert_eq!(deferral.content.reasons, ["template.paused"]);

    // Only a person in compliance resumes it, with a reason.
    let resume = |user: &'static str, body: serde_json::Value| {
        let request = h.request_as(
            user,
            "POST",
            "/templates/appointment_reminder/versions/1/resume",
            Some(body),
        );
        let deps = h.templates();
        async move { optline_templates::handle(request, &deps, now + Duration::hours(1)).await }
    };
    assert_eq!(
        resume("rae.desk", serde_json::json!({"reason": "fine"}))
            .await
            .status(),
        403
    );
    assert_eq!(
        resume("ana.compliance", serde_json::json!({}))
            .await
            .status(),
        400
    );
    let resumed = resume(
        "ana.compliance",
        serde_json::json!({"reason": "the STOPs came from one family's shared phone test"}),
    )
    .await;
    assert_eq!(
        resumed.status(),
        200,
        "{}",
        optline_tests::body_text(&resumed)
    );
    assert_eq!(
        resume("ana.compliance", serde_json::json!({"reason": "again"}))
            .await
            .status(),
        409,
        "not paused any more"
    );
    assert!(matches!(send(11).await, optline_delivery::Outcome::Sent(_)));
    // The same day's figures do not pause it again right after a person
    // resumed it.
    optline_inbound::handle(
        optline_tests::twilio_inbound_request(
            "SM000000000000000000000000000spik5",
            &format!("+1332555{:04}", 7100 + 5),
            "STOP",
        ),
        &h.inbound(),
        now + Duration::hours(2),
    )
    .await;
    optline_outbox_drain::handle(
        h.stream_event().await,
        &h.outbox_publisher(),
        h.outbox_rollups().as_ref(),
        policy,
    )
    .await;
    let pauses = h.store.pauses().await.unwrap();
    assert!(!pauses[0].paused, "{pauses:?}");
    assert_eq!(pauses[0].history.len(), 2);
    assert!(pauses[0].history[1].by.starts_with("Ana"));
    assert_eq!(
        h.store.pauses_changed().await.unwrap(),
        2,
        "the pause and the resume; not the refused resume"
    );
}
