//! The operations dashboard and the alarms (`docs/dashboard-and-alarms.md`):
//! every stack made from the template has them, each alarm notifying the
//! operators' topic when it fires and when it clears; and the metrics only
//! optline can compute are reported by the functions that own them: the
//! sweep's oldest due step, reconcile's open and late revocations, each
//! read through its function's role.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "integration tests: a failed step should stop the test loudly"
)]

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_cloudwatch::types::MetricAlarm;
use chrono::{DateTime, Duration, TimeZone, Utc};
use lambda_http::http::StatusCode;
use optline_ports::StepStatus;
use optline_reconcile::RevocationCounts;
use optline_tests::{body_json, body_text, Harness};
use serde_json::{json, Value};

/// The name of the harness's stack: the template names the outcome bus
/// `${AWS::StackName}-outcomes`.
fn stack_name(h: &Harness) -> String {
    h.resources
        .outcome_bus
        .strip_suffix("-outcomes")
        .expect("the outcome bus is named after the stack")
        .to_owned()
}

async fn cloudwatch(h: &Harness) -> aws_sdk_cloudwatch::Client {
    aws_sdk_cloudwatch::Client::new(&optline_tests::sdk_config(&h.endpoint).await)
}

/// The stack's alarms by name, without the stack's prefix.
async fn alarms(h: &Harness) -> BTreeMap<String, MetricAlarm> {
    let stack = stack_name(h);
    let out = cloudwatch(h)
        .await
        .describe_alarms()
        .alarm_name_prefix(format!("{stack}-"))
        .send()
        .await
        .unwrap();
    out.metric_alarms()
        .iter()
        .map(|a| {
            let name = a.alarm_name().unwrap_or_default();
            (name[stack.len() + 1..].to_owned(), a.clone())
        })
        .collect()
}

/// The operators' topic of the harness's stack.
async fn operators_topic(h: &Harness) -> String {
    let stack = stack_name(h);
    let topics = h.sns.list_topics().send().await.unwrap();
    let ours: Vec<String> = topics
        .topics()
        .iter()
        .filter_map(|t| t.topic_arn())
        .filter(|arn| arn.contains(&format!(":{stack}-OperatorsTopic-")))
        .map(str::to_owned)
        .collect();
    assert_eq!(ours.len(), 1, "one operators' topic: {ours:?}");
    ours[0].clone()
}

fn dimension(alarm: &MetricAlarm, name: &str) -> Option<String> {
    alarm
        .dimensions()
        .iter()
        .find(|d| d.name() == Some(name))
        .and_then(|d| d.value())
        .map(str::to_owned)
}

fn queue_name(url: &str) -> &str {
    url.rsplit('/').next().unwrap_or_default()
}

#[tokio::test]
async fn the_dashboard_shows_every_metric_an_operator_needs() {
    let h = Harness::new("dashboard").await;
    let stack = stack_name(&h);

    let dashboard = cloudwatch(&h)
        .await
        .get_dashboard()
        .dashboard_name(format!("{stack}-operations"))
        .send()
        .await
        .unwrap();

    let body = dashboard.dashboard_body().unwrap_or_default();
    let parsed: Value = serde_json::from_str(body).expect("the body is JSON");
    assert!(!body.contains("${"), "every substitution resolved");
    for metric in [
        // dispatch
        "Sent",
        "Suppressed",
        "Deferred",
        "Failed",
        "DeadLettered",
        // the outbox drain
        "Delivered",
        "Undelivered",
        "OptOuts",
        "TemplateOptOutRatePer1000",
        "Counted",
        // the sweep and reconcile
        "OldestDueStepAgeSeconds",
        "RevocationsPastDeadline",
        "RevocationsOpen",
        // AWS's own
        "ApproximateNumberOfMessagesVisible",
        "Errors",
        "Throttles",
    ] {
        assert!(
            body.contains(&format!("\"{metric}\"")),
            "{metric} is on the dashboard"
        );
    }
    // Suppressions by reason, carrier codes and opt-out rates by template
    // version are searched for, so a new reason, code or version shows up
    // without a change to the dashboard.
    let searches: Vec<&str> = parsed["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|w| w["properties"]["metrics"].as_array().into_iter().flatten())
        .flat_map(|row| row.as_array().into_iter().flatten())
        .filter_map(|item| item["expression"].as_str())
        .filter(|e| e.starts_with("SEARCH("))
        .collect();
    for (dimensions, metric) in [
        ("Function,Reason", "SuppressedByReason"),
        ("Function,CarrierCode", "FailedByCarrierCode"),
        ("Function,TemplateVersion", "TemplateOptOutRatePer1000"),
    ] {
        let wanted = format!("{{optline,{dimensions}}} MetricName=\"{metric}\"");
        assert!(
            searches.iter().any(|s| s.contains(&wanted)),
            "{metric} searched by {dimensions}: {searches:?}"
        );
    }
    // The dead-letter queues are this stack's, by name.
    assert!(body.contains(queue_name(&h.resources.dlq_url)));
    // The alarm widget shows every alarm of the stack.
    let shown: Vec<&str> = parsed["widgets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["type"] == "alarm")
        .flat_map(|w| w["properties"]["alarms"].as_array().unwrap().iter())
        .filter_map(Value::as_str)
        .collect();
    let alarms = alarms(&h).await;
    assert_eq!(shown.len(), alarms.len());
    for alarm in alarms.values() {
        assert!(shown.contains(&alarm.alarm_arn().unwrap_or_default()));
    }
}

#[tokio::test]
async fn every_alarm_notifies_the_operators_topic_and_says_what_to_do() {
    let h = Harness::new("alarms").await;
    let topic = operators_topic(&h).await;

    let alarms = alarms(&h).await;

    let names: Vec<&str> = alarms.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "async-failure-queue",
            "carrier-error-rate",
            "dispatch-dead-letter-queue",
            "dispatch-dead-lettered",
            "dispatch-errors",
            "outbox-dead-letter-queue",
            "revocations-past-deadline",
            "stale-due-steps",
            "template-opt-out-rate",
        ]
    );
    for (name, alarm) in &alarms {
        assert_eq!(
            alarm.alarm_actions(),
            std::slice::from_ref(&topic),
            "{name} fires to the topic"
        );
        assert_eq!(
            alarm.ok_actions(),
            std::slice::from_ref(&topic),
            "{name} clears to the topic"
        );
        assert!(
            alarm.treat_missing_data().is_some(),
            "{name} chose its missing data"
        );
        let description = alarm.alarm_description().unwrap_or_default();
        assert!(
            description.contains(&format!("docs/dashboard-and-alarms.md#{name}")),
            "{name} points at its runbook: {description}"
        );
        assert!(description.contains("Do: "), "{name} says what to do");
    }

    // Each dead-letter queue of the stack, as soon as it holds one message.
    let dispatch_dlq = &alarms["dispatch-dead-letter-queue"];
    assert_eq!(dispatch_dlq.namespace(), Some("AWS/SQS"));
    assert_eq!(
        dispatch_dlq.metric_name(),
        Some("ApproximateNumberOfMessagesVisible")
    );
    assert_eq!(
        dimension(dispatch_dlq, "QueueName").as_deref(),
        Some(queue_name(&h.resources.dlq_url))
    );
    assert_eq!(dispatch_dlq.threshold(), Some(0.0));
    for (name, queue) in [
        ("outbox-dead-letter-queue", "OutboxDeadLetterQueue"),
        ("async-failure-queue", "AsyncFailureQueue"),
    ] {
        let queue_dimension = dimension(&alarms[name], "QueueName").unwrap_or_default();
        assert!(queue_dimension.contains(queue), "{name}: {queue_dimension}");
    }

    // Revocations past their deadline: the daily report decides for a day;
    // no report at all notifies too.
    let revocations = &alarms["revocations-past-deadline"];
    assert_eq!(revocations.metric_name(), Some("RevocationsPastDeadline"));
    assert_eq!(
        dimension(revocations, "Function").as_deref(),
        Some("reconcile")
    );
    assert_eq!(revocations.period(), Some(3600));
    assert_eq!(revocations.evaluation_periods(), Some(25));
    assert_eq!(revocations.datapoints_to_alarm(), Some(1));
    assert_eq!(revocations.treat_missing_data(), Some("missing"));
    assert_eq!(
        revocations.insufficient_data_actions(),
        std::slice::from_ref(&topic)
    );

    // The template opt-out rate, at the parameter's default.
    let opt_outs = &alarms["template-opt-out-rate"];
    assert_eq!(opt_outs.metric_name(), Some("TemplateOptOutRatePer1000"));
    assert_eq!(
        dimension(opt_outs, "Function").as_deref(),
        Some("outbox-drain")
    );
    assert_eq!(opt_outs.threshold(), Some(10.0));

    // The carrier error rate: undelivered over all reports, only with
    // enough reports.
    let carrier = &alarms["carrier-error-rate"];
    assert_eq!(carrier.threshold(), Some(0.05));
    let queries: BTreeMap<&str, _> = carrier
        .metrics()
        .iter()
        .map(|q| (q.id().unwrap_or_default(), q))
        .collect();
    let rate = queries["rate"].expression().unwrap_or_default();
    assert!(rate.starts_with("IF("), "a volume guard: {rate}");
    assert!(rate.contains(">= 50"), "CarrierErrorRateMinReports: {rate}");
    for (id, metric) in [("delivered", "Delivered"), ("undelivered", "Undelivered")] {
        let stat = queries[id].metric_stat().unwrap();
        assert_eq!(stat.metric().and_then(|m| m.metric_name()), Some(metric));
        assert_eq!(queries[id].return_data(), Some(false));
    }

    // Dispatch: whole invocations failing, and messages it dead-letters.
    let errors = &alarms["dispatch-errors"];
    assert_eq!(errors.namespace(), Some("AWS/Lambda"));
    assert_eq!(errors.metric_name(), Some("Errors"));
    assert!(dimension(errors, "FunctionName")
        .unwrap_or_default()
        .contains("DispatchFunction"));
    let dead_lettered = &alarms["dispatch-dead-lettered"];
    assert_eq!(dead_lettered.metric_name(), Some("DeadLettered"));
    assert_eq!(
        dimension(dead_lettered, "Function").as_deref(),
        Some("dispatch")
    );

    // Stale due steps: too old, or no report from the sweep.
    let stale = &alarms["stale-due-steps"];
    assert_eq!(stale.metric_name(), Some("OldestDueStepAgeSeconds"));
    assert_eq!(dimension(stale, "Function").as_deref(), Some("sweep"));
    assert_eq!(stale.threshold(), Some(900.0));
    assert_eq!(stale.treat_missing_data(), Some("breaching"));
}

fn monday() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 18, 0, 0).unwrap()
}

#[tokio::test]
async fn the_sweep_reports_how_long_the_oldest_step_still_due_has_waited() {
    let h = Harness::new("oldestdue").await;
    let store = h.store_as("SweepFunction");
    let now = monday();
    assert_eq!(
        optline_sweep::oldest_due_step_age(store.as_ref(), now)
            .await
            .unwrap(),
        0,
        "nothing due"
    );
    for (step, due) in [
        ("od-late", now - Duration::minutes(21)),
        ("od-recent", now - Duration::minutes(2)),
        ("od-future", now + Duration::hours(1)),
    ] {
        h.seed_step_in("od-1", "+14155550142", step, due, StepStatus::Pending)
            .await;
    }

    let before = optline_sweep::oldest_due_step_age(store.as_ref(), now)
        .await
        .unwrap();
    let report = optline_sweep::handle(&h.sweep(), now).await.unwrap();
    let after = optline_sweep::oldest_due_step_age(store.as_ref(), now)
        .await
        .unwrap();

    assert_eq!(before, 21 * 60, "the oldest due step, in seconds");
    assert_eq!(report.found, 2);
    assert_eq!(after, 0, "the run handed on every due step: {report:?}");
}

#[tokio::test]
async fn reconcile_counts_open_revocations_and_those_past_their_deadline() {
    let h = Harness::new("revocationcounts").await;
    let received = Utc.with_ymd_and_hms(2026, 11, 18, 15, 0, 0).unwrap();
    let created = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts",
            Some(json!({"id": "rc-1", "phone": "+14155550143", "time_zone": "America/New_York"})),
        ),
        &h.consent_api(),
        received - Duration::days(10),
    )
    .await;
    assert_eq!(
        created.status(),
        StatusCode::CREATED,
        "{}",
        body_text(&created)
    );
    let revocation = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts/rc-1/revocations",
            Some(json!({"channel": "staff", "received_at": received})),
        ),
        &h.consent_api(),
        received + Duration::hours(1),
    )
    .await;
    assert_eq!(
        revocation.status(),
        StatusCode::CREATED,
        "{}",
        body_text(&revocation)
    );
    let revocation = body_json(&revocation);
    let deadline: DateTime<Utc> = revocation["deadline"].as_str().unwrap().parse().unwrap();
    let store = h.store_as("ReconcileFunction");
    let counts = |at| {
        let store = store.clone();
        async move { RevocationCounts::read(store.as_ref(), at).await.unwrap() }
    };

    let in_time = counts(deadline - Duration::days(1)).await;
    let late = counts(deadline + Duration::hours(1)).await;

    assert_eq!(
        in_time,
        RevocationCounts {
            open: 1,
            past_deadline: 0
        }
    );
    assert_eq!(
        late,
        RevocationCounts {
            open: 1,
            past_deadline: 1
        }
    );

    // The daily run reports them, reading through reconcile's own role.
    let deps = optline_reconcile::Deps {
        store: store.clone(),
        carrier: Arc::new(optline_aws::SnsOptOutList::new(
            h.clients_as("ReconcileFunction").sns,
        )),
        programs: vec!["clinic".to_owned()],
    };
    optline_reconcile::handle(&deps, deadline + Duration::hours(1))
        .await
        .unwrap();

    // Completed (late): no longer open, so no longer past its deadline.
    let id = revocation["id"].as_str().unwrap();
    let done = optline_consent_api::handle(
        h.request_as(
            "ana.compliance",
            "POST",
            &format!("/revocations/{id}/complete"),
            None,
        ),
        &h.consent_api(),
        deadline + Duration::hours(2),
    )
    .await;
    assert_eq!(done.status(), StatusCode::OK, "{}", body_text(&done));
    assert_eq!(
        counts(deadline + Duration::days(1)).await,
        RevocationCounts::default()
    );
}
