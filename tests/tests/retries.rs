//! A retry of any trigger ends where one clean run ends.
//!
//! For each trigger, the same input is run once cleanly; then, for every AWS
//! call that run made and for both ways a call can fail (never sent, or
//! applied with its answer lost), the state before the trigger is put back,
//! the trigger is run with that call failed, and run again as its source
//! would retry it. The table must end exactly as after the clean run (every
//! state item, audit record, review item, outcome, outbox event and
//! marker), every audit chain must verify, and the texts and confirmations
//! must be one each.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;

use aws_lambda_events::event::sns::{SnsEvent, SnsMessage, SnsRecord};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{DateTime, Duration, TimeZone, Utc};
use optline_policy::phone::E164;
use optline_ports::{
    verify_chain, AuditRecord, AuditTrail, ConsentLedger, ContactId, StepId, StepStatus, StepStore,
};
use optline_tests::faults::{Fault, FaultPlan};
use optline_tests::state::{difference, normalized, Item};
use optline_tests::twilio_standin::{Scripted, TwilioStandIn};
use optline_tests::{
    body_text, fixtures, signed_ehr_request, signed_form_request, twilio_inbound_request,
    twilio_sign, Harness, PUBLIC_BASE_URL, TWILIO_AUTH_TOKEN,
};
use serde_json::json;

/// A harness in an emulator of its own.
async fn own_harness(name: &str, emulator: &optline_tests::PrivateEmulator) -> Harness {
    Harness::new_with(
        name,
        Some(&emulator.endpoint),
        std::time::Duration::from_secs(5),
    )
    .await
}

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap()
}

type Run = Pin<Box<dyn Future<Output = String> + Send>>;

/// What one run of a trigger is, given the harness whose functions carry
/// the faults. It answers a short text the test can check (the webhook's
/// answer, the texts sent).
type Trigger = Box<dyn Fn(Harness) -> Run + Send + Sync>;

/// Every audit chain in `items` verifies.
fn chains_verify(items: &[Item], key: Option<&optline_ports::AuditKey>) {
    let mut chains: BTreeMap<String, Vec<AuditRecord>> = BTreeMap::new();
    for item in items {
        let pk = match item.get("pk") {
            Some(aws_sdk_dynamodb::types::AttributeValue::S(pk)) => pk.clone(),
            _ => continue,
        };
        if !pk.starts_with("AUDIT#") {
            continue;
        }
        if let Some(aws_sdk_dynamodb::types::AttributeValue::S(data)) = item.get("data") {
            chains
                .entry(pk)
                .or_default()
                .push(serde_json::from_str(data).unwrap());
        }
    }
    for (subject, mut records) in chains {
        records.sort_by_key(|r| r.seq);
        assert!(
            verify_chain(&records, key).is_ok(),
            "{subject} does not verify"
        );
    }
}

/// What a faulted run may end in besides the clean state: the calls whose
/// loss cannot be undone by anyone (a carrier that took a text and lost its
/// answer, with no way to ask it), with the check that applies instead.
type Exception = Box<dyn Fn(&str, Fault) -> bool + Send + Sync>;

/// Texts SNS delivered, per phone in `phones`.
async fn text_counts(h: &Harness, phones: &[&str]) -> Vec<usize> {
    if phones.is_empty() {
        return Vec::new();
    }
    let all = h.sns_sms().await;
    phones
        .iter()
        .map(|p| all.iter().filter(|s| s.phone_number == *p).count())
        .collect()
}

/// Runs the scenario (see the module docs): `answers` checks the answers
/// of a run and its retry together; each phone of `texts` gets exactly one
/// text from a run and its retry together; `exception` names the faults
/// after which the state may differ (and only the texts are checked).
/// Returns the calls of a clean run.
async fn converges(
    h: &Harness,
    trigger: Trigger,
    answers: impl Fn(&[String]),
    texts: &[&str],
    exception: Exception,
) -> Vec<String> {
    let plan = FaultPlan::default();
    let faulty = h.with_faults(&plan);
    let before = h.table_items().await;

    let sent_before = text_counts(h, texts).await;
    plan.arm(None);
    let clean_answer = trigger(faulty.clone()).await;
    let calls = plan.calls();
    plan.disarm();
    let clean = normalized(&h.table_items().await);
    // A retry of a clean run changes nothing.
    let retry_answer = trigger(faulty.clone()).await;
    let after_retry = normalized(&h.table_items().await);
    assert_eq!(clean, after_retry, "{}", difference(&clean, &after_retry));
    answers(&[clean_answer, retry_answer]);
    let sent = text_counts(h, texts).await;
    for ((b, a), phone) in sent_before.iter().zip(&sent).zip(texts) {
        assert_eq!(a - b, 1, "one text to {phone} in a clean run and its retry");
    }
    assert!(!calls.is_empty());

    for n in 1..=calls.len() {
        for fault in [Fault::Before, Fault::After] {
            h.restore_table(&before).await;
            let sent_before = text_counts(h, texts).await;
            plan.arm(Some((n, fault)));
            let first = trigger(faulty.clone()).await;
            let injected = plan.injected().unwrap_or_default();
            plan.disarm();
            let retried = trigger(faulty.clone()).await;
            let sent = text_counts(h, texts).await;
            for ((b, a), phone) in sent_before.iter().zip(&sent).zip(texts) {
                assert_eq!(a - b, 1, "call {n} ({injected}): one text to {phone}");
            }
            let items = h.table_items().await;
            chains_verify(&items, h.store.audit_key());
            // The call the fault hit: concurrent work (a batch's steps) may
            // order calls differently from the clean run.
            let call = injected
                .rsplit_once(" (")
                .map_or(calls[n - 1].as_str(), |(name, _)| name);
            if exception(call, fault) {
                continue;
            }
            let state = normalized(&items);
            assert_eq!(
                clean,
                state,
                "call {n} ({injected}) failed: {}",
                difference(&clean, &state)
            );
            answers(&[first, retried]);
        }
    }
    calls
}

fn no_exception() -> Exception {
    Box::new(|_, _| false)
}

fn messages(answers: &[String]) -> usize {
    answers.iter().map(|a| a.matches("<Message>").count()).sum()
}

#[tokio::test]
async fn a_stop_retried_after_any_failed_call_records_one_revocation_and_answers_one_confirmation()
{
    let h = Harness::new("retry-stop").await;
    // Two patients share the number.
    h.seed_step("rs-1", "+12125550801", "rs-step-1", noon())
        .await;
    h.seed_step("rs-2", "+12125550801", "rs-step-2", noon())
        .await;
    let trigger: Trigger = Box::new(|h: Harness| {
        Box::pin(async move {
            let response = optline_inbound::handle(
                twilio_inbound_request(
                    "SM000000000000000000000000000retry1",
                    "+12125550801",
                    "STOP",
                ),
                &h.inbound(),
                noon(),
            )
            .await;
            body_text(&response)
        })
    });
    let calls = converges(
        &h,
        trigger,
        |answers| assert_eq!(messages(answers), 1, "one confirmation: {answers:?}"),
        &[],
        no_exception(),
    )
    .await;
    assert!(calls.len() >= 4, "{calls:?}");
}

#[tokio::test]
async fn a_confirmation_retried_after_any_failed_call_records_one_outcome_one_event_and_one_acknowledgement(
) {
    let h = Harness::new("retry-confirm").await;
    let reminder = h
        .seed_step(
            "rc-1",
            "+12125550802",
            "rc-step",
            noon() - Duration::hours(1),
        )
        .await;
    // The follow-up for non-responders, still pending.
    h.seed_step_in(
        "rc-1",
        "+12125550802",
        "subject-rc-step-followup",
        noon() + Duration::days(1),
        optline_ports::StepStatus::Pending,
    )
    .await;
    let sent = optline_dispatch::dispatch_step(&reminder, &h.dispatch(), noon())
        .await
        .unwrap();
    assert!(matches!(sent, optline_dispatch::Outcome::Sent(_)));
    let trigger: Trigger = Box::new(|h: Harness| {
        Box::pin(async move {
            body_text(
                &optline_inbound::handle(
                    twilio_inbound_request(
                        "SM000000000000000000000000000retry2",
                        "+12125550802",
                        "C",
                    ),
                    &h.inbound(),
                    noon() + Duration::minutes(5),
                )
                .await,
            )
        })
    });
    converges(
        &h,
        trigger,
        |answers| assert_eq!(messages(answers), 1, "one acknowledgement: {answers:?}"),
        &[],
        no_exception(),
    )
    .await;
    let follow_up = StepId::parse("subject-rc-step-followup").unwrap();
    assert_eq!(
        optline_ports::StepStore::step(h.store.as_ref(), &follow_up)
            .await
            .unwrap()
            .unwrap()
            .status,
        optline_ports::StepStatus::Cancelled
    );
    let outbox: Vec<_> = h
        .table_items()
        .await
        .into_iter()
        .filter(|i| {
            matches!(i.get("pk"), Some(aws_sdk_dynamodb::types::AttributeValue::S(pk)) if pk.starts_with("OUTBOX#"))
                && matches!(i.get("detail_type"), Some(aws_sdk_dynamodb::types::AttributeValue::S(t)) if t == optline_ports::OUTCOME_DETAIL_TYPE)
        })
        .collect();
    assert_eq!(
        outbox.len(),
        1,
        "one outcome event (the consent grant has its own)"
    );
}

fn status_request(sid: &str, status: &str, error: Option<&str>) -> lambda_http::Request {
    let mut params: Vec<(String, String)> = vec![
        ("MessageSid".to_owned(), sid.to_owned()),
        ("MessageStatus".to_owned(), status.to_owned()),
        (
            "AccountSid".to_owned(),
            "AC00000000000000000000000000000000".to_owned(),
        ),
    ];
    if let Some(code) = error {
        params.push(("ErrorCode".to_owned(), code.to_owned()));
    }
    let refs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let signature = twilio_sign(
        TWILIO_AUTH_TOKEN,
        &format!("{PUBLIC_BASE_URL}/twilio/status"),
        &refs,
    );
    signed_form_request("/twilio/status", &params, &signature)
}

#[tokio::test]
async fn a_carrier_opt_out_callback_retried_after_any_failed_call_is_recorded_once() {
    let base = Harness::new("retry-status").await;
    let standin =
        TwilioStandIn::start("AC00000000000000000000000000000000", TWILIO_AUTH_TOKEN).await;
    standin.clock(noon());
    let h = base.with_twilio(&standin.base_url);
    let step = h.seed_step("rt-1", "+12125550803", "rt-step", noon()).await;
    h.seed_step(
        "rt-2",
        "+12125550803",
        "rt-step-2",
        noon() + Duration::days(1),
    )
    .await;
    let sent = optline_dispatch::dispatch_step(&step, &h.dispatch(), noon())
        .await
        .unwrap();
    let optline_dispatch::Outcome::Sent(carrier_id) = sent else {
        panic!("sent: {sent:?}");
    };
    let sid = carrier_id.trim_start_matches("twilio:").to_owned();
    let trigger: Trigger = Box::new(move |h: Harness| {
        let sid = sid.clone();
        Box::pin(async move {
            let response = optline_inbound::handle(
                status_request(&sid, "undelivered", Some("21610")),
                &h.inbound(),
                noon() + Duration::minutes(1),
            )
            .await;
            response.status().as_str().to_owned()
        })
    });
    converges(
        &h,
        trigger,
        |answers| assert!(answers.last().is_some_and(|a| a == "204"), "{answers:?}"),
        &[],
        no_exception(),
    )
    .await;
}

fn two_way_message(id: &str, from: &str, body: &str) -> String {
    json!({
        "originationNumber": from,
        "destinationNumber": "+15005550006",
        "messageKeyword": "KEYWORD_123456789012",
        "messageBody": body,
        "inboundMessageId": id,
        "previousPublishedMessageId": "prev-1",
    })
    .to_string()
}

#[tokio::test]
async fn an_aws_two_way_stop_retried_after_any_failed_call_sends_one_confirmation_through_the_lane()
{
    // Its own emulator: texts are counted from everything SNS holds.
    let emulator = optline_tests::PrivateEmulator::start();
    let h = own_harness("retry-twoway-sns", &emulator).await;
    let phone = "+12125550804";
    h.seed_step("rw-1", phone, "rw-step", noon()).await;
    let trigger: Trigger = Box::new(move |h: Harness| {
        Box::pin(async move {
            let mut record = SnsRecord::default();
            let mut message = SnsMessage::default();
            message.message = two_way_message("twoway-retry-stop-1", phone, "STOP");
            record.sns = message;
            let mut event = SnsEvent::default();
            event.records = vec![record];
            let result = optline_inbound::handle_two_way_sns(
                event,
                &h.inbound_as("InboundTwoWayFunction"),
                noon(),
            )
            .await;
            format!("{}", result.is_ok())
        })
    });
    // SNS took the text and lost its answer: nothing can ask SNS, so the
    // lane records an unknown outcome and never sends it again (one text
    // all the same).
    let exception: Exception =
        Box::new(|call, fault| call == "SNS.Publish" && fault == Fault::After);
    converges(&h, trigger, |_| {}, &[phone], exception).await;
}

#[tokio::test]
async fn an_opt_out_confirmation_that_cannot_go_out_within_five_minutes_is_recorded_as_not_sent() {
    // Its own emulator: texts are counted from everything SNS holds.
    let emulator = optline_tests::PrivateEmulator::start();
    let h = own_harness("late-lane", &emulator).await;
    let phone = "+12125550805";
    h.seed_step("ll-1", phone, "ll-step", noon()).await;
    let stop = |at: DateTime<Utc>, h: Harness| async move {
        let mut record = SnsRecord::default();
        let mut message = SnsMessage::default();
        message.message = two_way_message("twoway-late-stop-1", phone, "STOP");
        record.sns = message;
        let mut event = SnsEvent::default();
        event.records = vec![record];
        optline_inbound::handle_two_way_sns(event, &h.inbound_as("InboundTwoWayFunction"), at)
            .await
            .is_ok()
    };
    let plan = FaultPlan::default();
    let faulty = h.with_faults(&plan);
    let before = h.table_items().await;
    // A clean run, to learn which call publishes the confirmation.
    plan.arm(None);
    assert!(stop(noon(), faulty.clone()).await);
    let calls = plan.calls();
    plan.disarm();
    let publish = calls
        .iter()
        .position(|c| c == "SNS.Publish")
        .expect("the confirmation is published")
        + 1;
    h.restore_table(&before).await;
    let texts_before = text_counts(&h, &[phone]).await[0];

    // SNS refuses the confirmation (the request never left): the reply and
    // its revocation are committed, the message comes back...
    plan.arm(Some((publish, Fault::Before)));
    assert!(
        !stop(noon(), faulty.clone()).await,
        "handed back for a retry"
    );
    plan.disarm();
    // ...ten minutes later, past the five minutes the confirmation had.
    assert!(stop(noon() + Duration::minutes(10), faulty.clone()).await);
    assert_eq!(
        text_counts(&h, &[phone]).await[0],
        texts_before,
        "no late confirmation"
    );
    let chain = h
        .store
        .audit_chain(&ContactId::parse("ll-1").unwrap())
        .await
        .unwrap();
    assert_eq!(
        chain
            .iter()
            .filter(|r| r.content.action == "revoke")
            .count(),
        1,
        "the opt-out itself holds"
    );
    let skipped: Vec<_> = chain
        .iter()
        .filter(|r| r.content.reasons.iter().any(|x| x == "lane.deadline"))
        .collect();
    assert_eq!(skipped.len(), 1, "why no confirmation went out is recorded");
    assert!(skipped[0]
        .content
        .detail
        .as_deref()
        .is_some_and(|d| d.contains("deadline")));
    // Another redelivery changes nothing.
    let settled = normalized(&h.table_items().await);
    assert!(stop(noon() + Duration::minutes(11), faulty.clone()).await);
    assert_eq!(settled, normalized(&h.table_items().await));
}

#[tokio::test]
async fn an_aws_two_way_help_through_sqs_retried_after_any_failed_call_is_answered_once() {
    let emulator = optline_tests::PrivateEmulator::start();
    let h = own_harness("retry-twoway-sqs", &emulator).await;
    let phone = "+12125550805";
    h.seed_step("rq-1", phone, "rq-step", noon()).await;
    let trigger: Trigger = Box::new(move |h: Harness| {
        Box::pin(async move {
            let mut message = SqsMessage::default();
            message.message_id = Some("sqs-help-1".to_owned());
            message.body = Some(two_way_message("twoway-retry-help-1", phone, "HELP"));
            let mut event = SqsEvent::default();
            event.records = vec![message];
            let response = optline_inbound::handle_two_way_sqs(
                event,
                &h.inbound_as("InboundTwoWayFunction"),
                noon(),
            )
            .await;
            response.batch_item_failures.len().to_string()
        })
    });
    let exception: Exception =
        Box::new(|call, fault| call == "SNS.Publish" && fault == Fault::After);
    converges(
        &h,
        trigger,
        |answers| {
            assert_eq!(
                answers.last().map(String::as_str),
                Some("0"),
                "the retry succeeds"
            )
        },
        &[phone],
        exception,
    )
    .await;
}

async fn create_contact(h: &Harness, id: &str, phone: &str) {
    let created = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts",
            Some(json!({"id": id, "phone": phone, "time_zone": "America/New_York"})),
        ),
        &h.consent_api(),
        noon() - Duration::days(1),
    )
    .await;
    assert_eq!(created.status(), 201);
}

fn with_key(mut request: lambda_http::Request, key: &str) -> lambda_http::Request {
    request
        .headers_mut()
        .insert("idempotency-key", key.parse().unwrap());
    request
}

#[tokio::test]
async fn consent_api_writes_retried_after_any_failed_call_end_as_one_clean_call() {
    let h = Harness::new("retry-consent").await;
    create_contact(&h, "rk-1", "+12125550806").await;
    // A grant with its evidence, idempotent by its event id.
    let grant: Trigger = Box::new(|h: Harness| {
        Box::pin(async move {
            let response = optline_consent_api::handle(
                h.api_request(
                    "POST",
                    "/contacts/rk-1/consent",
                    Some(json!({
                        "action": "grant", "categories": ["appointments"], "channel": "web_form",
                        "event_id": "grant-rk-1",
                        "disclosure_text": "Riverside Clinic may text you about appointments. Reply STOP to opt out.",
                    })),
                ),
                &h.consent_api(),
                noon(),
            )
            .await;
            response.status().as_str().to_owned()
        })
    });
    converges(
        &h,
        grant,
        |answers| assert!(answers.last().is_some_and(|a| a == "201" || a == "200")),
        &[],
        no_exception(),
    )
    .await;
    // Preferences, idempotent by the request's key.
    let preferences: Trigger = Box::new(|h: Harness| {
        Box::pin(async move {
            let response = optline_consent_api::handle(
                with_key(
                    h.api_request(
                        "POST",
                        "/contacts/rk-1/preferences",
                        Some(json!({
                            "categories": {"billing": false, "forms": true},
                            "channel": "portal", "disclosure_text": "Riverside Clinic may text you about forms. Reply STOP to opt out.",
                        })),
                    ),
                    "prefs-rk-1-a",
                ),
                &h.consent_api(),
                noon(),
            )
            .await;
            body_text(&response)
        })
    });
    converges(
        &h,
        preferences,
        |answers| {
            let last = answers.last().unwrap();
            assert!(last.contains("\"recorded\""), "{last}");
        },
        &[],
        no_exception(),
    )
    .await;
    // A revocation taken by staff with its deadline, idempotent by key.
    let revocation: Trigger = Box::new(|h: Harness| {
        Box::pin(async move {
            let response = optline_consent_api::handle(
                with_key(
                    h.api_request(
                        "POST",
                        "/contacts/rk-1/revocations",
                        Some(json!({"channel": "staff"})),
                    ),
                    "revoke-rk-1-a",
                ),
                &h.consent_api(),
                noon(),
            )
            .await;
            response.status().as_str().to_owned()
        })
    });
    converges(
        &h,
        revocation,
        |answers| assert_eq!(answers.last().map(String::as_str), Some("201")),
        &[],
        no_exception(),
    )
    .await;
}

#[tokio::test]
async fn ehr_events_retried_after_any_failed_call_plan_and_conclude_once() {
    let h = Harness::new("retry-ehr").await;
    let created = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts",
            Some(json!({"id": "pat-ehr-1", "phone": "+1 212 555 0807", "time_zone": "America/New_York"})),
        ),
        &h.consent_api(),
        noon(),
    )
    .await;
    assert_eq!(created.status(), 201);
    // A FHIR booking plans the reminder and the follow-up.
    let body = fixtures::appointment(
        "APT-7001",
        "booked",
        "2026-12-10T10:00:00-05:00",
        Some("2026-11-30T09:00:00Z"),
        Some("Patient/pat-ehr-1"),
    )
    .to_string();
    let booking: Trigger = Box::new(move |h: Harness| {
        let body = body.clone();
        Box::pin(async move {
            let response = optline_ehr_events::handle(
                signed_ehr_request(
                    "/ehr/fhir/Appointment",
                    "application/fhir+json",
                    &body,
                    noon().timestamp(),
                ),
                &h.ehr_events(),
                noon(),
            )
            .await;
            response.status().as_str().to_owned()
        })
    });
    converges(
        &h,
        booking,
        |answers| {
            let last = answers.last().unwrap();
            assert!(last == "201" || last == "200", "{answers:?}");
        },
        &[],
        no_exception(),
    )
    .await;
    // An HL7 no-show concludes the episode (its outcome and outbox event)
    // and cancels what is still planned.
    let noshow = fixtures::siu(
        "S26",
        "MSG-RETRY-26",
        "20261207120000-0500",
        "20261210100000-0500",
        fixtures::PID,
    );
    let hl7: Trigger = Box::new(move |h: Harness| {
        let body = noshow.clone();
        Box::pin(async move {
            let response = optline_ehr_events::handle(
                signed_ehr_request("/ehr/hl7", "application/hl7-v2", &body, noon().timestamp()),
                &h.ehr_events(),
                noon(),
            )
            .await;
            body_text(&response)
        })
    });
    converges(
        &h,
        hl7,
        |answers| {
            let last = answers.last().unwrap();
            assert!(last.contains("MSA|AA"), "{last}");
        },
        &[],
        no_exception(),
    )
    .await;
}

#[tokio::test]
async fn a_sweep_retried_after_any_failed_call_queues_and_excludes_each_step_once() {
    let h = Harness::new("retry-sweep").await;
    let pending = optline_ports::StepStatus::Pending;
    h.seed_step_in("rp-1", "+12125550808", "rp-in", noon(), pending)
        .await;
    // Outside the audience: the number opted out.
    h.seed_step_in("rp-2", "+12125550809", "rp-out", noon(), pending)
        .await;
    let stop = optline_inbound::handle(
        twilio_inbound_request(
            "SM000000000000000000000000000retry9",
            "+12125550809",
            "STOP",
        ),
        &h.inbound(),
        noon() - Duration::hours(1),
    )
    .await;
    assert_eq!(stop.status(), 200);
    let queue = h.resources.queue_url.clone();
    let trigger: Trigger = Box::new(move |h: Harness| {
        let queue = queue.clone();
        Box::pin(async move {
            let report = optline_sweep::sweep(&h.sweep(), noon()).await;
            let answer = format!("{:?}", report.map(|r| (r.enqueued, r.excluded)));
            let _ = queue;
            answer
        })
    });
    converges(&h, trigger, |_| {}, &[], no_exception()).await;
    // The queue holds the included step (more than once where an enqueue's
    // answer was lost: dispatch claims a step once however often it is named).
    let batch = h.receive_dispatch_batch(10).await;
    assert!(batch
        .records
        .iter()
        .all(|r| r.body.as_deref().is_some_and(|b| b.contains("rp-in"))));
    h.purge(&h.resources.queue_url).await;
}

fn dispatch_event(steps: &[&StepId]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("d-{i}"));
            m.body = Some(format!("{{\"step_id\":\"{step}\"}}"));
            m
        })
        .collect();
    event
}

#[tokio::test]
async fn a_dispatch_batch_retried_after_any_failed_call_sends_each_text_once() {
    let emulator = optline_tests::PrivateEmulator::start();
    let h = own_harness("retry-dispatch", &emulator).await;
    let one = h
        .seed_step("rd-1", "+12125550810", "rd-step-1", noon())
        .await;
    let two = h
        .seed_step("rd-2", "+12125550811", "rd-step-2", noon())
        .await;
    let (one_c, two_c) = (one.clone(), two.clone());
    let trigger: Trigger = Box::new(move |h: Harness| {
        let steps = [one_c.clone(), two_c.clone()];
        Box::pin(async move {
            let response = optline_dispatch::handle_batch(
                dispatch_event(&[&steps[0], &steps[1]]),
                &h.dispatch(),
                noon(),
            )
            .await;
            let failed: Vec<String> = response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.clone())
                .collect();
            // SQS redelivers what failed; a claim left behind is seen
            // again only after its lease.
            let mut left = failed.len();
            for at in [
                noon(),
                noon() + optline_dispatch::CLAIM_LEASE + Duration::minutes(1),
            ] {
                if left == 0 {
                    break;
                }
                left = optline_dispatch::handle_batch(
                    dispatch_event(&[&steps[0], &steps[1]]),
                    &h.dispatch(),
                    at,
                )
                .await
                .batch_item_failures
                .len();
            }
            format!("{failed:?}")
        })
    });
    // SNS took a text and lost its answer: SNS cannot be asked, so that
    // step ends as an unknown outcome, never sent twice (one text all the
    // same).
    let exception: Exception =
        Box::new(|call, fault| call == "SNS.Publish" && fault == Fault::After);
    converges(
        &h,
        trigger,
        |_| {},
        &["+12125550810", "+12125550811"],
        exception,
    )
    .await;
    let _ = (one, two);
}

#[tokio::test]
async fn a_send_the_carrier_refuses_for_an_opt_out_retried_after_any_failed_call_ends_once() {
    // Twilio 21610: the number replied STOP at the carrier. The step's end,
    // the number's carrier revocation and the records of every contact
    // sharing it are one commit: a retry after any failed call ends in the
    // state of one clean run.
    let base = Harness::new("retry-21610-send").await;
    let standin =
        TwilioStandIn::start("AC00000000000000000000000000000000", TWILIO_AUTH_TOKEN).await;
    standin.clock(noon());
    let h = base.with_twilio(&standin.base_url);
    let step = h.seed_step("rr-1", "+12125550804", "rr-step", noon()).await;
    h.seed_step(
        "rr-2",
        "+12125550804",
        "rr-step-2",
        noon() + Duration::days(1),
    )
    .await;
    standin.script("+12125550804", Scripted::Error(21610, 400));
    let step_c = step.clone();
    let trigger: Trigger = Box::new(move |h: Harness| {
        let step = step_c.clone();
        Box::pin(async move {
            let mut failed = 0;
            for _ in 0..3 {
                failed =
                    optline_dispatch::handle_batch(dispatch_event(&[&step]), &h.dispatch(), noon())
                        .await
                        .batch_item_failures
                        .len();
                if failed == 0 {
                    break;
                }
            }
            format!("{failed}")
        })
    });
    converges(
        &h,
        trigger,
        |answers| assert!(answers.iter().all(|a| a == "0"), "{answers:?}"),
        &[],
        no_exception(),
    )
    .await;
    assert!(standin.sends().is_empty(), "the carrier took no text");
    let stored = h.store.step(&step).await.unwrap().unwrap();
    assert_eq!(stored.status, StepStatus::Failed);
    let events = h
        .store
        .phone_consent_events(&E164::parse("+12125550804").unwrap())
        .await
        .unwrap();
    assert_eq!(events.len(), 1, "one carrier revocation");
    for contact in ["rr-1", "rr-2"] {
        let chain = h
            .store
            .audit_chain(&ContactId::parse(contact).unwrap())
            .await
            .unwrap();
        let revokes = chain
            .iter()
            .filter(|r| r.content.action == "revoke" && r.content.reasons == ["carrier.21610"])
            .count();
        assert_eq!(revokes, 1, "{contact}");
    }
}

#[tokio::test]
async fn the_outbox_drain_retried_after_any_failed_call_delivers_each_event_by_its_stable_id() {
    let h = Harness::new("retry-outbox").await;
    // A listener on the bus, through a queue.
    let listener = h
        .sqs
        .create_queue()
        .queue_name(format!("outbox-{}", uuid::Uuid::new_v4().simple()))
        .send()
        .await
        .unwrap();
    let listener_url = listener.queue_url().unwrap().to_owned();
    let arn = h
        .sqs
        .get_queue_attributes()
        .queue_url(&listener_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    h.events
        .put_rule()
        .name("outbox-retry")
        .event_bus_name(&h.resources.outcome_bus)
        .event_pattern(r#"{"source": ["optline"]}"#)
        .send()
        .await
        .unwrap();
    h.events
        .put_targets()
        .rule("outbox-retry")
        .event_bus_name(&h.resources.outcome_bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("listener")
                .arn(arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // Two outcomes committed with their outbox events.
    h.stream_event().await;
    for (subject, kind) in [("appt-ob-1", "confirmed"), ("appt-ob-2", "noshow")] {
        let outcome = optline_ports::EpisodeOutcome {
            subject: subject.to_owned(),
            kind: kind.to_owned(),
            at: noon(),
            contact_id: optline_ports::ContactId::parse("ob-1").unwrap(),
            step_id: None,
            source: "test".to_owned(),
            after_first_text_seconds: None,
        };
        let mut commit = optline_ports::Commit::default();
        commit.push(optline_ports::Write::Outbox(
            optline_ports::OutboxEvent::outcome(&outcome),
        ));
        commit.push(optline_ports::Write::Outcome(outcome));
        optline_ports::Committer::commit(h.store.as_ref(), commit)
            .await
            .unwrap();
    }
    let records = h.stream_event().await;
    assert_eq!(
        records.records.len(),
        4,
        "two outcomes and their outbox items"
    );
    let expected: BTreeSet<String> = [
        "outcome:appt-ob-1:confirmed".to_owned(),
        "outcome:appt-ob-2:noshow".to_owned(),
    ]
    .into();

    let drain = |h: Harness, fault: Option<Fault>| {
        let records = records.clone();
        async move {
            let plan = FaultPlan::default();
            let faulty = h.with_faults(&plan);
            plan.arm(fault.map(|f| (1, f)));
            let first = optline_outbox_drain::handle(
                records.clone(),
                &faulty.outbox_publisher(),
                faulty.outbox_rollups().as_ref(),
                Default::default(),
            )
            .await;
            plan.disarm();
            // The stream delivers again from the first failed record.
            if !first.batch_item_failures.is_empty() {
                let again = optline_outbox_drain::handle(
                    records,
                    &faulty.outbox_publisher(),
                    faulty.outbox_rollups().as_ref(),
                    Default::default(),
                )
                .await;
                assert!(again.batch_item_failures.is_empty());
            }
            plan.calls()
        }
    };
    for fault in [None, Some(Fault::Before), Some(Fault::After)] {
        h.purge(&listener_url).await;
        let calls = drain(h.clone(), fault).await;
        assert_eq!(calls, ["EventBridge.PutEvents"], "one call per batch");
        let mut ids = Vec::new();
        for _ in 0..5 {
            let out = h
                .sqs
                .receive_message()
                .queue_url(&listener_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await
                .unwrap();
            if out.messages().is_empty() {
                break;
            }
            for m in out.messages() {
                let event: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
                ids.push(event["detail"]["event_id"].as_str().unwrap().to_owned());
                h.sqs
                    .delete_message()
                    .queue_url(&listener_url)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        let distinct: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(distinct, expected, "{fault:?}: {ids:?}");
        // A lost answer means the batch is published again; a consumer
        // drops the repeat by its id.
        let most = if fault == Some(Fault::After) { 4 } else { 2 };
        assert!(ids.len() <= most, "{fault:?}: {ids:?}");
    }
}
