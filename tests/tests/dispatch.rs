//! Dispatch against the local emulator and the local Twilio stand-in:
//! redelivery, carrier errors, dead letters, redrive, and the audit chain.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "integration tests: a failed step should stop the test loudly"
)]

use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{DateTime, Duration, TimeZone, Utc};
use lambda_http::RequestExt;
use optline_dispatch::Outcome;
use optline_policy::consent::{standing, ConsentStanding};
use optline_policy::phone::E164;
use optline_ports::{
    consent_facts, verify_chain, AuditTrail, ConsentLedger, ContactId, DecisionReads, StepId,
    StepStatus, StepStore,
};
use optline_tests::twilio_standin::{Scripted, TwilioStandIn};
use optline_tests::{
    signed_form_request, twilio_sign, Harness, PUBLIC_BASE_URL, TWILIO_AUTH_TOKEN,
};

/// Monday 2026-12-07 12:00 in New York: inside every window.
fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap()
}

fn message(id: &str, step: &StepId) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(id.to_owned());
    m.body = Some(format!("{{\"step_id\":\"{step}\"}}"));
    m
}

mod futures_util_shim {
    //! Runs futures at most `width` at a time, with tokio only.
    pub async fn join_all_chunked<F, T>(futures: Vec<F>, width: usize) -> Vec<T>
    where
        F: std::future::Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        let mut out = Vec::with_capacity(futures.len());
        let mut iter = futures.into_iter();
        loop {
            let batch: Vec<_> = iter.by_ref().take(width).map(tokio::spawn).collect();
            if batch.is_empty() {
                break;
            }
            for handle in batch {
                out.push(handle.await.expect("task"));
            }
        }
        out
    }
}

#[tokio::test]
async fn a_redelivery_storm_makes_exactly_one_carrier_call_per_step() {
    let base = Harness::new("storm").await;
    let standin =
        TwilioStandIn::start("AC00000000000000000000000000000000", TWILIO_AUTH_TOKEN).await;
    let h = base.with_twilio(&standin.base_url);
    // 2,000 in CI (about two minutes: moto serves one call at a time); set
    // OPTLINE_STORM_STEPS for another size (docs/benchmarks.md).
    let steps_wanted: usize = std::env::var("OPTLINE_STORM_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let contacts = (steps_wanted / 3).max(1);
    let mut steps = Vec::with_capacity(steps_wanted);
    for i in 0..steps_wanted {
        let contact = format!("c{}", i % contacts);
        let phone = format!("+1415555{:04}", i % contacts);
        steps.push(
            h.seed_step(&contact, &phone, &format!("storm-{i}"), noon())
                .await,
        );
    }
    // Every message delivered 1 to 3 times, in a shuffled order.
    let mut deliveries: Vec<(String, StepId)> = Vec::new();
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for step in &steps {
        let copies = 1 + next() % 3;
        for c in 0..copies {
            deliveries.push((format!("{step}-{c}"), step.clone()));
        }
    }
    for i in (1..deliveries.len()).rev() {
        let j = usize::try_from(next() % (i as u64 + 1)).unwrap();
        deliveries.swap(i, j);
    }
    let total = deliveries.len();
    let deps = h.dispatch();
    let futures: Vec<_> = deliveries
        .into_iter()
        .map(|(id, step)| {
            let deps = deps.clone();
            async move {
                let mut event = SqsEvent::default();
                event.records = vec![message(&id, &step)];
                optline_dispatch::handle_batch(event, &deps, noon()).await
            }
        })
        .collect();
    let responses = futures_util_shim::join_all_chunked(futures, 8).await;
    // A copy that arrived while its twin was sending is handed back to SQS;
    // deliver those again, as SQS would after the visibility timeout.
    let retried: usize = responses.iter().map(|r| r.batch_item_failures.len()).sum();
    for step in &steps {
        let status = h.store.step(step).await.unwrap().unwrap().status;
        if status == StepStatus::Queued || status == StepStatus::Sending {
            let mut event = SqsEvent::default();
            event.records = vec![message("again", step)];
            optline_dispatch::handle_batch(event, &deps, noon()).await;
        }
    }

    // The stand-in deduplicates nothing: every request it received was a
    // text. One request per step, each with its own step's token.
    assert_eq!(
        standin.requests(),
        steps_wanted,
        "exactly one carrier request per step ({total} deliveries, {retried} handed back)"
    );
    let sends = standin.sends();
    let mut tokens: Vec<_> = sends
        .iter()
        .filter_map(|s| s.idempotency_token.clone())
        .collect();
    tokens.sort();
    tokens.dedup();
    assert_eq!(tokens.len(), steps_wanted, "one request per step");
    assert!(standin.rejected().is_empty(), "{:?}", standin.rejected());
    let statuses = h
        .store
        .steps(&steps)
        .await
        .unwrap()
        .into_values()
        .map(|s| s.status)
        .collect::<Vec<_>>();
    assert_eq!(statuses.len(), steps_wanted);
    assert!(
        statuses.iter().all(|s| *s == StepStatus::Sent),
        "every step ends sent"
    );
}

#[tokio::test]
async fn carrier_errors_of_every_class_map_to_the_right_outcome() {
    let base = Harness::new("carriererrors").await;
    let standin =
        TwilioStandIn::start("AC00000000000000000000000000000000", TWILIO_AUTH_TOKEN).await;
    let h = base.with_twilio(&standin.base_url);
    let cases = [
        ("+14155550201", Some(Scripted::Error(20429, 429)), "retry"),
        ("+14155550202", Some(Scripted::Status(503)), "retry"),
        (
            "+14155550203",
            Some(Scripted::Error(21610, 400)),
            "failed:21610",
        ),
        (
            "+14155550204",
            Some(Scripted::Error(21211, 400)),
            "failed:21211",
        ),
        (
            "+14155550205",
            Some(Scripted::Error(30007, 400)),
            "failed:30007",
        ),
        ("+14155550206", None, "sent"),
    ];
    for (i, (phone, script, expected)) in cases.iter().enumerate() {
        if let Some(answer) = script {
            standin.script(phone, *answer);
        }
        let step = h
            .seed_step(&format!("e{i}"), phone, &format!("err-{i}"), noon())
            .await;
        let mut event = SqsEvent::default();
        event.records = vec![message(&format!("m{i}"), &step)];
        let response = optline_dispatch::handle_batch(event, &h.dispatch(), noon()).await;
        let stored = h.store.step(&step).await.unwrap().unwrap();
        match *expected {
            "retry" => {
                assert_eq!(response.batch_item_failures.len(), 1, "{phone}");
                assert_eq!(
                    stored.status,
                    StepStatus::Queued,
                    "{phone}: claim released for the retry"
                );
            }
            "sent" => {
                assert!(response.batch_item_failures.is_empty());
                assert_eq!(stored.status, StepStatus::Sent);
            }
            failed => {
                assert!(
                    response.batch_item_failures.is_empty(),
                    "{phone}: permanent, not retried"
                );
                assert_eq!(stored.status, StepStatus::Failed, "{phone}");
                let code = failed.trim_start_matches("failed:");
                let chain = h
                    .store
                    .audit_chain(&ContactId::parse(&format!("e{i}")).unwrap())
                    .await
                    .unwrap();
                assert!(
                    chain
                        .iter()
                        .any(|r| r.content.reasons.contains(&format!("carrier.{code}"))),
                    "{phone}"
                );
            }
        }
    }
    // 21610 taught the ledger an opt-out (source: carrier).
    let events = h
        .store
        .phone_consent_events(&E164::parse("+14155550203").unwrap())
        .await
        .unwrap();
    assert!(matches!(
        standing(
            &consent_facts(&events),
            "clinic",
            "appointments",
            noon() + Duration::seconds(1)
        ),
        ConsentStanding::Revoked { .. }
    ));
}

#[tokio::test]
async fn an_undecodable_message_is_dead_lettered_with_its_reason_and_redrive_replays_only_good_ones(
) {
    let h = Harness::new("deadletter").await;
    let step = h.seed_step("d1", "+14155550301", "dl-1", noon()).await;
    let mut bad = SqsMessage::default();
    bad.message_id = Some("bad".to_owned());
    bad.body = Some("{\"step\": 42}".to_owned());
    let mut event = SqsEvent::default();
    event.records = vec![bad];
    let response = optline_dispatch::handle_batch(event, &h.dispatch(), noon()).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "dead-lettered, not retried"
    );

    let received = h
        .sqs
        .receive_message()
        .queue_url(&h.resources.dlq_url)
        .message_attribute_names("All")
        .max_number_of_messages(10)
        .visibility_timeout(0)
        .send()
        .await
        .unwrap();
    let messages = received.messages();
    assert_eq!(messages.len(), 1);
    let reason = messages[0]
        .message_attributes()
        .and_then(|a| a.get("optline_reason"))
        .and_then(|v| v.string_value())
        .unwrap_or_default()
        .to_owned();
    assert!(reason.contains("line 1"), "{reason}");

    // A good message that landed in the DLQ (say, after five throttled tries).
    h.sqs
        .send_message()
        .queue_url(&h.resources.dlq_url)
        .message_body(format!("{{\"step_id\":\"{step}\"}}"))
        .send()
        .await
        .unwrap();
    let report = optline_aws::redrive(&h.sqs, &h.resources.dlq_url, &h.resources.queue_url, 100)
        .await
        .unwrap();
    assert_eq!(report.moved, 1);
    assert_eq!(report.kept, 1);
    let batch = h.receive_dispatch_batch(10).await;
    assert_eq!(batch.records.len(), 1);
    let outcome = optline_dispatch::handle_message(&batch.records[0], &h.dispatch(), noon())
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Sent(_)), "{outcome:?}");
    // Replaying it again is harmless.
    let again = optline_dispatch::handle_message(&batch.records[0], &h.dispatch(), noon())
        .await
        .unwrap();
    assert_eq!(again, Outcome::Skipped("already handled"));
}

#[tokio::test]
async fn a_claim_left_by_a_dead_invocation_is_never_sent_twice_through_sns() {
    let h = Harness::new("deadclaim").await;
    let step = h.seed_step("k1", "+14155550401", "claim-1", noon()).await;
    // An invocation claimed the step and died before recording the outcome.
    assert!(matches!(
        h.store.claim_send(&step, noon()).await.unwrap(),
        optline_ports::Claim::Won(_)
    ));
    // Redelivered while the claim is fresh: handed back to SQS, nothing sent.
    let soon = optline_dispatch::handle_message(
        &message("m", &step),
        &h.dispatch(),
        noon() + Duration::seconds(30),
    )
    .await;
    assert!(soon.is_err());
    // After the lease: SNS keeps no list to ask, so the step ends, with its
    // reason, and SNS publishes nothing to the number.
    let before = h.sns_sms().await.len();
    let late = optline_dispatch::handle_message(
        &message("m", &step),
        &h.dispatch(),
        noon() + Duration::minutes(10),
    )
    .await
    .unwrap();
    assert_eq!(late, Outcome::Failed("dispatch.unknown_outcome".to_owned()));
    assert_eq!(
        h.store.step(&step).await.unwrap().unwrap().status,
        StepStatus::Failed
    );
    let published = h
        .sns_sms()
        .await
        .into_iter()
        .skip(before)
        .filter(|s| s.phone_number == "+14155550401")
        .count();
    assert_eq!(published, 0, "SNS published nothing for the stale claim");
}

#[tokio::test]
async fn a_claim_left_by_a_dead_invocation_is_sent_through_twilio_only_when_twilio_holds_no_such_text(
) {
    let base = Harness::new("deadclaimtw").await;
    let standin =
        TwilioStandIn::start("AC00000000000000000000000000000000", TWILIO_AUTH_TOKEN).await;
    standin.clock(noon());
    let h = base.with_twilio(&standin.base_url);

    // An invocation claimed the step and died before calling Twilio: the
    // message list holds no such text, so it is sent now, once.
    let step = h.seed_step("k2", "+14155550402", "claim-2", noon()).await;
    assert!(matches!(
        h.store.claim_send(&step, noon()).await.unwrap(),
        optline_ports::Claim::Won(_)
    ));
    let late = optline_dispatch::handle_message(
        &message("m", &step),
        &h.dispatch(),
        noon() + Duration::minutes(10),
    )
    .await
    .unwrap();
    assert!(matches!(late, Outcome::Sent(_)), "{late:?}");
    assert_eq!((standin.requests(), standin.lookups()), (1, 1));

    // An invocation whose request reached Twilio and whose answer was lost:
    // the lookup finds the text by recipient, time and body; it is recorded
    // as sent with Twilio's id, and not sent again.
    let lost = h.seed_step("k3", "+14155550403", "claim-3", noon()).await;
    standin.script("+14155550403", Scripted::LoseAnswer);
    let outcome = optline_dispatch::handle_message(&message("m3", &lost), &h.dispatch(), noon())
        .await
        .unwrap();
    let created = standin
        .sends()
        .into_iter()
        .find(|s| s.to == "+14155550403")
        .unwrap();
    assert_eq!(outcome, Outcome::Sent(format!("twilio:{}", created.sid)));
    assert_eq!((standin.requests(), standin.lookups()), (2, 2));
    let again = optline_dispatch::handle_message(&message("m3", &lost), &h.dispatch(), noon())
        .await
        .unwrap();
    assert_eq!(again, Outcome::Skipped("already handled"));
    assert_eq!(standin.requests(), 2, "never a second request for a step");

    // A claim left behind whose status callback named its attempt: the
    // callback proves the text went out, without a lookup.
    let called = h.seed_step("k4", "+14155550404", "claim-4", noon()).await;
    assert!(matches!(
        h.store.claim_send(&called, noon()).await.unwrap(),
        optline_ports::Claim::Won(_)
    ));
    let attempt = optline_ports::attempt_key(called.as_str());
    let params: Vec<(String, String)> = [
        ("MessageSid", "SM0000000000000000000000000000abcd"),
        ("MessageStatus", "delivered"),
        ("AccountSid", "AC00000000000000000000000000000000"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let path = format!("/twilio/status?attempt={attempt}");
    let refs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let signature = twilio_sign(
        TWILIO_AUTH_TOKEN,
        &format!("{PUBLIC_BASE_URL}{path}"),
        &refs,
    );
    let callback = optline_inbound::handle(
        signed_form_request(&path, &params, &signature),
        &h.inbound(),
        noon(),
    )
    .await;
    assert_eq!(callback.status(), 204);
    let recovered = optline_dispatch::handle_message(
        &message("m4", &called),
        &h.dispatch(),
        noon() + Duration::minutes(10),
    )
    .await
    .unwrap();
    assert_eq!(
        recovered,
        Outcome::Sent("twilio:SM0000000000000000000000000000abcd".to_owned())
    );
    assert_eq!((standin.requests(), standin.lookups()), (2, 2));
}

#[tokio::test]
async fn the_audit_chain_detects_an_edited_or_deleted_record() {
    let h = Harness::new("tamper").await;
    for i in 0..3 {
        let step = h
            .seed_step("t1", "+14155550501", &format!("tamper-{i}"), noon())
            .await;
        optline_dispatch::handle_message(
            &message("m", &step),
            &h.dispatch(),
            noon() + Duration::hours(i),
        )
        .await
        .unwrap();
    }
    let contact = ContactId::parse("t1").unwrap();
    let chain = h.store.audit_chain(&contact).await.unwrap();
    assert!(chain.len() >= 3);
    assert!(verify_chain(&chain, h.store.chain_key()).is_ok());

    // Edit record 2 in the table: change what it says was decided.
    let mut edited = chain[1].clone();
    edited.content.action = "suppress".to_owned();
    let table = &h.resources.table_name;
    h.dynamodb
        .put_item()
        .table_name(table)
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("AUDIT#t1".to_owned()),
        )
        .item(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("REC#{:012}", 2)),
        )
        .item(
            "kind",
            aws_sdk_dynamodb::types::AttributeValue::S("audit".to_owned()),
        )
        .item(
            "data",
            aws_sdk_dynamodb::types::AttributeValue::S(serde_json::to_string(&edited).unwrap()),
        )
        .send()
        .await
        .unwrap();
    let broken = verify_chain(
        &h.store.audit_chain(&contact).await.unwrap(),
        h.store.chain_key(),
    )
    .unwrap_err();
    assert_eq!(broken.seq, 2);

    // Put it back, then delete record 2 outright.
    h.dynamodb
        .put_item()
        .table_name(table)
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("AUDIT#t1".to_owned()),
        )
        .item(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("REC#{:012}", 2)),
        )
        .item(
            "kind",
            aws_sdk_dynamodb::types::AttributeValue::S("audit".to_owned()),
        )
        .item(
            "data",
            aws_sdk_dynamodb::types::AttributeValue::S(serde_json::to_string(&chain[1]).unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert!(verify_chain(
        &h.store.audit_chain(&contact).await.unwrap(),
        h.store.chain_key()
    )
    .is_ok());
    h.dynamodb
        .delete_item()
        .table_name(table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("AUDIT#t1".to_owned()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S(format!("REC#{:012}", 2)),
        )
        .send()
        .await
        .unwrap();
    let broken = verify_chain(
        &h.store.audit_chain(&contact).await.unwrap(),
        h.store.chain_key(),
    )
    .unwrap_err();
    assert_eq!(broken.seq, 2);
}

#[tokio::test]
async fn a_stop_committed_while_the_step_is_in_flight_means_zero_sends_after_it() {
    let h = Harness::new("stopinflight").await;
    // Ten steps for ten people, due now: the sweep queues them all.
    let mut steps = Vec::new();
    for i in 0..10 {
        steps.push(
            h.seed_step_in(
                &format!("f{i}"),
                &format!("+1212555{:04}", 300 + i),
                &format!("inflight-{i}"),
                noon() - Duration::minutes(1),
                StepStatus::Pending,
            )
            .await,
        );
    }
    let report = optline_sweep::sweep(&h.sweep(), noon()).await.unwrap();
    assert_eq!(report.enqueued, 10);

    // While they sit in the queue, half the people text STOP; each
    // revocation is committed when the webhook answers.
    let mut revoked = std::collections::HashSet::new();
    for i in (0..10).step_by(2) {
        let phone = format!("+1212555{:04}", 300 + i);
        let response = optline_inbound::handle(
            optline_tests::twilio_inbound_request(&format!("SM{:032}", 700 + i), &phone, "STOP"),
            &h.inbound(),
            noon(),
        )
        .await;
        assert_eq!(response.status(), 200);
        revoked.insert(phone);
    }

    // Dispatch drains the queue as Lambda would.
    let before = h.sns_sms().await.len();
    loop {
        let batch = h.receive_dispatch_batch(10).await;
        if batch.records.is_empty() {
            break;
        }
        let response = optline_dispatch::handle_batch(batch.clone(), &h.dispatch(), noon()).await;
        assert!(response.batch_item_failures.is_empty());
        h.delete_messages(&batch, &[]).await;
    }
    // Other tests share the emulator: only this test's ten numbers count.
    let ours: Vec<String> = (0..10).map(|i| format!("+1212555{:04}", 300 + i)).collect();
    let sent: Vec<_> = h
        .sns_sms()
        .await
        .into_iter()
        .skip(before)
        .filter(|s| ours.contains(&s.phone_number))
        .collect();
    assert_eq!(sent.len(), 5, "only the five who did not opt out");
    for sms in &sent {
        assert!(
            !revoked.contains(&sms.phone_number),
            "a text went to a number after its STOP was committed"
        );
    }
    for (i, step) in steps.iter().enumerate() {
        let stored = h.store.step(step).await.unwrap().unwrap();
        let want = if i % 2 == 0 {
            StepStatus::Suppressed
        } else {
            StepStatus::Sent
        };
        assert_eq!(stored.status, want, "step {i}");
    }
    // The suppression names the revocation it honoured.
    let chain = h
        .store
        .audit_chain(&ContactId::parse("f0").unwrap())
        .await
        .unwrap();
    let last = chain.last().unwrap();
    assert_eq!(last.content.action, "suppress");
    assert!(last
        .content
        .reasons
        .contains(&"consent.revocation".to_owned()));
}

#[tokio::test]
async fn retention_expires_send_records_but_never_consent_or_the_audit_trail() {
    let h = Harness::new("retention").await;
    assert!(
        optline_aws::DynamoStore::new(h.dynamodb.clone(), h.resources.table_name.clone())
            .with_retention(Some(30))
            .is_err(),
        "less than six years is refused"
    );
    // Six years, as a deployment sets RETENTION_DAYS.
    let mut h = h.clone();
    let mut config = (*h.config).clone();
    config.retention_days = Some(2190);
    h.config = std::sync::Arc::new(config);
    let step = h
        .seed_step("keep1", "+12125550777", "keep-step", noon())
        .await;
    let outcome = optline_dispatch::dispatch_step(&step, &h.dispatch(), noon())
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Sent(_)));

    let items = h
        .dynamodb
        .scan()
        .table_name(&h.resources.table_name)
        .send()
        .await
        .unwrap();
    let six_years = noon() + Duration::days(2190);
    for item in items.items() {
        let pk = item["pk"].as_s().unwrap();
        let ttl = item
            .get("ttl")
            .map(|v| v.as_n().unwrap().parse::<i64>().unwrap());
        if pk == "STEP#keep-step"
            || pk.starts_with("CARRIER#")
            || item["sk"].as_s().unwrap().starts_with("SENT#")
        {
            assert_eq!(
                ttl,
                Some(six_years.timestamp()),
                "{pk} expires after six years"
            );
        } else if pk.starts_with("AUDIT#")
            || item["sk"].as_s().unwrap().starts_with("CONSENT#")
            || pk.starts_with("TEMPLATE#")
        {
            assert_eq!(ttl, None, "{pk} is never expired");
        }
    }
    let ttl = h
        .dynamodb
        .describe_time_to_live()
        .table_name(&h.resources.table_name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        ttl.time_to_live_description()
            .and_then(|d| d.attribute_name()),
        Some("ttl")
    );
}

#[tokio::test]
async fn the_senders_rate_holds_across_concurrent_invocations() {
    let base = Harness::new("pacing").await;
    let standin =
        TwilioStandIn::start("AC00000000000000000000000000000000", TWILIO_AUTH_TOKEN).await;
    let mut h = base.with_twilio(&standin.base_url);
    let mut config = (*h.config).clone();
    for program in config.programs.values_mut() {
        program.messages_per_second = 4;
    }
    h.config = std::sync::Arc::new(config);
    let mut steps = Vec::new();
    for i in 0..16 {
        steps.push(
            h.seed_step(
                &format!("p{i}"),
                &format!("+1212555{:04}", 500 + i),
                &format!("paced-{i}"),
                noon(),
            )
            .await,
        );
    }
    // Four invocations at once, as Lambda runs up to MaximumConcurrency.
    let handles: Vec<_> = steps
        .chunks(4)
        .enumerate()
        .map(|(n, chunk)| {
            let deps = h.dispatch();
            let records: Vec<SqsMessage> = chunk
                .iter()
                .enumerate()
                .map(|(i, s)| message(&format!("m{n}-{i}"), s))
                .collect();
            tokio::spawn(async move {
                let mut event = SqsEvent::default();
                event.records = records;
                optline_dispatch::handle_batch(event, &deps, noon()).await
            })
        })
        .collect();
    for handle in handles {
        assert!(handle.await.unwrap().batch_item_failures.is_empty());
    }
    let sends = standin.sends();
    assert_eq!(sends.len(), 16);
    // The shared counters: no second gave out more than four slots (an
    // invocation takes several at once and may leave some unused).
    let used = h.pace_used("MG00000000000000000000000000000000").await;
    assert!(used.iter().all(|n| *n <= 4), "slots per second: {used:?}");
    assert!(used.iter().sum::<u64>() >= 16, "{used:?}");
    assert!(
        used.len() >= 4,
        "16 sends at 4/s take at least 4 seconds: {used:?}"
    );
    // What the carrier saw, by the second it received each request (a
    // request can land just after its slot's second ends, hence the 5).
    let mut per_second: std::collections::BTreeMap<u64, usize> = std::collections::BTreeMap::new();
    for send in &sends {
        let second = send
            .received_at
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        *per_second.entry(second).or_insert(0) += 1;
    }
    assert!(
        per_second.values().all(|n| *n <= 5),
        "sends per second: {per_second:?}"
    );
}

#[tokio::test]
async fn an_emulator_outage_in_the_middle_of_a_batch_loses_nothing_and_sends_nothing_twice() {
    let emulator = optline_tests::PrivateEmulator::start();
    let base = Harness::new_in("outage", Some(&emulator.endpoint)).await;
    let standin =
        TwilioStandIn::start("AC00000000000000000000000000000000", TWILIO_AUTH_TOKEN).await;
    standin.clock(noon());
    let h = base.with_twilio(&standin.base_url);
    let mut steps = Vec::new();
    for i in 0..10 {
        steps.push(
            h.seed_step(
                &format!("o{i}"),
                &format!("+1212555{:04}", 600 + i),
                &format!("outage-{i}"),
                noon(),
            )
            .await,
        );
    }
    let mut event = SqsEvent::default();
    event.records = steps
        .iter()
        .enumerate()
        .map(|(i, s)| message(&format!("o-{i}"), s))
        .collect();
    let deps = h.dispatch();
    let batch =
        tokio::spawn(async move { optline_dispatch::handle_batch(event, &deps, noon()).await });

    // Freeze the emulator once a few texts are out, mid-batch.
    let waited = std::time::Instant::now();
    while standin.sends().len() < 3 && waited.elapsed() < std::time::Duration::from_secs(30) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    emulator.pause();
    let response = batch.await.unwrap();
    emulator.resume();
    let mut failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert!(!failed.is_empty(), "the outage failed part of the batch");

    // SQS redelivers what failed; after the claim lease a claim left by the
    // outage is resolved by asking Twilio: a text it holds is recorded, one
    // it does not is sent.
    let deps = h.dispatch();
    let later = noon() + optline_dispatch::CLAIM_LEASE + Duration::minutes(1);
    for round in 0..3 {
        if failed.is_empty() {
            break;
        }
        let mut again = SqsEvent::default();
        again.records = failed
            .iter()
            .map(|id| {
                let i: usize = id.trim_start_matches("o-").parse().unwrap();
                message(id, &steps[i])
            })
            .collect();
        let response =
            optline_dispatch::handle_batch(again, &deps, later + Duration::minutes(round)).await;
        failed = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
    }
    assert!(
        failed.is_empty(),
        "still failing after the outage: {failed:?}"
    );
    for step in &steps {
        assert_eq!(
            h.store.step(step).await.unwrap().unwrap().status,
            StepStatus::Sent,
            "{step} ends sent"
        );
    }
    let sends = standin.sends();
    assert_eq!(sends.len(), 10, "exactly one text per step");
    let mut to: Vec<_> = sends.iter().map(|s| s.to.clone()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 10);
}

#[tokio::test]
async fn a_dry_run_says_who_would_get_what_and_why_not_and_changes_nothing() {
    let mut h = Harness::new("dryrun").await;
    // The night-time question below is about quiet hours: give the
    // time-sensitive steps a band wide enough to still be due at 23:00.
    let mut config = (*h.config).clone();
    for program in config.programs.values_mut() {
        program.audience.time_sensitive_grace_minutes = 24 * 60;
    }
    h.config = std::sync::Arc::new(config);
    for (i, phone) in ["+12125550901", "+12125550902", "+12125550903"]
        .iter()
        .enumerate()
    {
        h.seed_step_in(
            &format!("d{i}"),
            phone,
            &format!("dry-{i}"),
            noon() - Duration::minutes(1),
            StepStatus::Pending,
        )
        .await;
    }
    // The third person texted STOP.
    let stop = optline_inbound::handle(
        optline_tests::twilio_inbound_request(
            "SM00000000000000000000000000000d03",
            "+12125550903",
            "STOP",
        ),
        &h.inbound(),
        noon() - Duration::hours(1),
    )
    .await;
    assert_eq!(stop.status(), 200);

    let report = optline_dispatch::dry_run(&h.dry_run(), noon(), 100)
        .await
        .unwrap();
    assert_eq!(report.decisions.get("send"), Some(&2));
    assert_eq!(report.decisions.get("suppress"), Some(&1));
    // The STOP puts d2 outside the program's audience: the sweep would end
    // the step before it is queued.
    assert_eq!(report.reasons.get("segment.consent_scope"), Some(&1));
    let excluded: Vec<_> = report
        .steps
        .iter()
        .filter(|s| s.decision == "suppress")
        .collect();
    assert_eq!(excluded[0].contact_id, "d2");

    // The same report over HTTP, as operators and dashboards read it.
    let request = h
        .api_request("GET", "/sweep/dry-run", None)
        .with_query_string_parameters(std::collections::HashMap::from([(
            "at".to_owned(),
            noon().to_rfc3339(),
        )]));
    let response = optline_dispatch::dry_run_http(request, &h.dry_run(), &h.people, noon()).await;
    assert_eq!(response.status(), 200);
    let body = optline_tests::body_json(&response);
    assert_eq!(body["decisions"]["send"], 2);
    assert_eq!(body["reasons"]["segment.consent_scope"], 1);

    // At 23:00 in New York everyone left would wait for the morning.
    let night = optline_dispatch::dry_run(&h.dry_run(), noon() + Duration::hours(11), 100)
        .await
        .unwrap();
    assert_eq!(night.decisions.get("defer"), Some(&2));
    assert_eq!(night.reasons.get("quiet_hours.federal"), Some(&2));
    // With the default 120-minute band all three would be too late to send.
    let mut strict = h.clone();
    let mut config = (*h.config).clone();
    for program in config.programs.values_mut() {
        program.audience.time_sensitive_grace_minutes = 120;
    }
    strict.config = std::sync::Arc::new(config);
    let late = optline_dispatch::dry_run(&strict.dry_run(), noon() + Duration::hours(11), 100)
        .await
        .unwrap();
    assert_eq!(late.reasons.get("segment.band"), Some(&3));

    // Nothing was queued, claimed or sent.
    for i in 0..3 {
        let step = StepId::parse(&format!("dry-{i}")).unwrap();
        assert_eq!(
            h.store.step(&step).await.unwrap().unwrap().status,
            StepStatus::Pending
        );
    }
    assert!(h.receive_dispatch_batch(10).await.records.is_empty());
    assert!(!h
        .sns_sms()
        .await
        .iter()
        .any(|m| m.phone_number.starts_with("+1212555090")));
}

fn decision_record(step: &optline_ports::Step, action: &str) -> optline_ports::NewAuditRecord {
    optline_ports::NewAuditRecord {
        evidence: Default::default(),
        contact_id: step.contact_id.clone(),
        at: noon(),
        kind: "decision".to_owned(),
        action: action.to_owned(),
        step_id: Some(step.id.as_str().to_owned()),
        rules: Vec::new(),
        reasons: Vec::new(),
        legal_basis: None,
        consent_event_id: None,
        template: None,
        carrier_message_id: None,
        arm: None,
        detail: None,
    }
}

#[tokio::test]
async fn a_step_ends_in_one_transaction_with_its_audit_record_even_when_the_chain_moved() {
    use optline_ports::{Casework, FinishBase, StepOutcome};
    let h = Harness::new("finish-tx").await;
    let one = h
        .seed_step("ft-1", "+12125550971", "ft-step-1", noon())
        .await;
    let two = h
        .seed_step("ft-1", "+12125550971", "ft-step-2", noon())
        .await;
    let contact = ContactId::parse("ft-1").unwrap();

    // The head, as dispatch reads it with the contact: an empty chain.
    let read = h.store.contact_record(&contact, noon()).await.unwrap();
    let genesis = read.unwrap().audit_head.unwrap();
    assert_eq!(genesis.seq, 0);

    // A send: records, status, audit record and head in one call.
    let optline_ports::Claim::Won(step) = h.store.claim_send(&one, noon()).await.unwrap() else {
        panic!("the queued step is claimed");
    };
    let step = *step;
    let sent = StepOutcome {
        status: StepStatus::Sent,
        at: noon(),
        carrier_message_id: Some("sns:ft-msg-1".to_owned()),
        reasons: Vec::new(),
    };
    // With the facts the decision read (a send from a recovery, without
    // them, first reads the contact's recent sends to count its episode).
    let facts = h
        .store
        .contact_facts(std::slice::from_ref(&contact), noon())
        .await
        .unwrap();
    let before = h.calls.snapshot();
    let first = h
        .store
        .finish_audited(
            &step,
            &sent,
            decision_record(&step, "send"),
            Some(FinishBase {
                head: &genesis,
                facts: facts.get(&contact),
            }),
        )
        .await
        .unwrap();
    let spent = optline_tests::calls::since(&before, &h.calls.snapshot());
    assert_eq!(
        spent.into_iter().collect::<Vec<_>>(),
        [("DynamoDB.TransactWriteItems".to_owned(), 1)]
    );
    assert_eq!(first.seq, 1);
    assert_eq!(
        h.store
            .send_history(&contact, noon() - Duration::days(1))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        h.store
            .step_for_carrier_message("sns:ft-msg-1")
            .await
            .unwrap(),
        Some(one.clone())
    );
    assert_eq!(
        h.store.step(&one).await.unwrap().unwrap().status,
        StepStatus::Sent
    );
    let head = h
        .store
        .contact_record(&contact, noon())
        .await
        .unwrap()
        .unwrap()
        .audit_head
        .unwrap();
    assert_eq!((head.seq, head.hash.as_str()), (1, first.hash.as_str()));

    // A stale head (the chain moved since it was read): the transaction
    // writes nothing, and is made again after the real head, still one
    // transaction. The chain stays whole.
    let optline_ports::Claim::Won(step) = h.store.claim_send(&two, noon()).await.unwrap() else {
        panic!("the queued step is claimed");
    };
    let step = *step;
    let suppressed = StepOutcome::ended(
        StepStatus::Suppressed,
        noon(),
        vec!["consent.revocation".to_owned()],
    );
    let second = h
        .store
        .finish_audited(
            &step,
            &suppressed,
            decision_record(&step, "suppress"),
            Some(FinishBase {
                head: &genesis,
                facts: None,
            }),
        )
        .await
        .unwrap();
    assert_eq!(second.seq, 2);
    assert_eq!(
        h.store.step(&two).await.unwrap().unwrap().status,
        StepStatus::Suppressed
    );
    let chain = h.store.audit_chain(&contact).await.unwrap();
    assert_eq!(chain.len(), 2);
    assert!(verify_chain(&chain, h.store.chain_key()).is_ok());
    assert_eq!(chain[1].content.action, "suppress");
}

#[tokio::test]
async fn a_sender_over_its_daily_cap_holds_scheduled_texts_until_the_carriers_next_day() {
    let mut h = Harness::new("daily-cap").await;
    let mut config = (*h.config).clone();
    for program in config.programs.values_mut() {
        program.daily_cap = Some(3);
    }
    h.config = std::sync::Arc::new(config);
    // Monday 2026-12-07 09:00 in Los Angeles (noon in New York).
    let now = Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap();
    let mut outcomes = Vec::new();
    for n in 0..4 {
        let id = h
            .seed_step(
                &format!("cap-{n}"),
                &format!("+1332555{:04}", 8200 + n),
                &format!("cap-{n}"),
                now - Duration::minutes(1),
            )
            .await;
        outcomes.push(
            optline_dispatch::dispatch_step(&id, &h.dispatch(), now)
                .await
                .unwrap(),
        );
    }
    assert!(
        outcomes[..3].iter().all(|o| matches!(o, Outcome::Sent(_))),
        "{outcomes:?}"
    );
    // The fourth waits for midnight Pacific, when the carrier's day turns.
    let midnight = Utc.with_ymd_and_hms(2026, 12, 8, 8, 0, 0).unwrap();
    assert_eq!(outcomes[3], Outcome::Deferred(midnight));
    let chain = h
        .store
        .audit_chain(&ContactId::parse("cap-3").unwrap())
        .await
        .unwrap();
    let deferral = chain.last().unwrap();
    assert_eq!(deferral.content.action, "defer");
    assert_eq!(deferral.content.reasons, ["caps.brand_daily"]);
    assert!(deferral
        .content
        .rules
        .iter()
        .any(|r| r.id == "caps.brand_daily"));
}

/// A program with a pool of numbers: each contact hears from its own number
/// of the pool (recorded in the send's audit record), and each number is
/// paced at its type's default rate, less the lane's reserve, on its own.
#[tokio::test]
async fn a_pool_sends_each_contact_from_its_number_at_that_numbers_rate() {
    let mut h = Harness::new("pool").await;
    let mut config = (*h.config).clone();
    let pool: Vec<optline_config::PoolNumber> = serde_json::from_value(serde_json::json!([
        {"number": "+18885557001", "type": "toll_free"},
        {"number": "+18335557002", "type": "toll_free"}
    ]))
    .unwrap();
    for program in config.programs.values_mut() {
        program.from_number = None;
        program.numbers = pool.clone();
    }
    h.config = std::sync::Arc::new(config);
    let program = h.config.program(None).unwrap().clone();
    // Two parts a second for scheduled texts on each toll-free number (3,
    // one held for the compliance lane).
    assert_eq!(program.scheduled_rate(), 4);
    let now = Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap();
    let mut froms = std::collections::BTreeMap::new();
    for n in 0..10 {
        let phone = format!("+1332555{:04}", 8300 + n);
        let id = h
            .seed_step(&format!("pool-{n}"), &phone, &format!("pool-{n}"), now)
            .await;
        let outcome = optline_dispatch::dispatch_step(&id, &h.dispatch(), now)
            .await
            .unwrap();
        assert!(matches!(outcome, Outcome::Sent(_)), "{outcome:?}");
        let chain = h
            .store
            .audit_chain(&ContactId::parse(&format!("pool-{n}")).unwrap())
            .await
            .unwrap();
        let send = chain.last().unwrap();
        assert_eq!(send.content.action, "send");
        let from = send.content.evidence.get("from").cloned().unwrap();
        // The same number every time for this contact.
        assert_eq!(Some(from.as_str()), program.sender_for(&phone).from);
        *froms.entry(from).or_insert(0) += 1;
    }
    assert_eq!(froms.len(), 2, "both numbers send: {froms:?}");
    // Each number's own counters, never over its scheduled rate in a
    // second; nothing counted under the program's former single sender.
    for number in ["+18885557001", "+18335557002"] {
        let used = h.pace_used(number).await;
        assert!(!used.is_empty(), "{number} paced");
        assert!(used.iter().all(|u| *u <= 2), "{number}: {used:?}");
        assert!(
            used.iter().sum::<u64>() >= froms[number],
            "{number}: {used:?}"
        );
    }
}
