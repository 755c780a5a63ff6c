//! Dispatch decides a whole SQS batch on one read of its steps, their
//! contacts' facts and their episodes' answers. These tests show that the
//! shared read never weakens a guarantee: a revocation committed after the
//! read stops the send, sends earlier in the batch count for caps, and the
//! digest the read uses folds to exactly what the consent ledger holds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "integration tests: a failed step should stop the test loudly"
)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{DateTime, Duration, TimeZone, Utc};
use optline_policy::consent::{ConsentAction, ConsentKind, ConsentScope};
use optline_policy::phone::E164;
use optline_ports::{
    consent_facts, AuditTrail, CaptureChannel, CarrierReceipt, CheckedClaim, ConsentEvent,
    ConsentLedger, ContactId, DecisionReads, EventId, Evidence, OutboundSms, SendFailure,
    SmsSender, StepId, StepStatus, StepStore,
};
use optline_tests::Harness;

/// Monday 2026-12-07 12:00 in New York: inside every window.
fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap()
}

fn batch(steps: &[StepId]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("m{i}"));
            m.body = Some(format!("{{\"step_id\":\"{step}\"}}"));
            m
        })
        .collect();
    event
}

fn event(id: &str, phone: &str, contact: Option<&str>, action: ConsentAction) -> ConsentEvent {
    ConsentEvent {
        id: EventId::parse(id).unwrap(),
        contact_id: contact.map(|c| ContactId::parse(c).unwrap()),
        phone: E164::parse(phone).unwrap(),
        action,
        scope: if contact.is_some() {
            ConsentScope::Contact
        } else {
            ConsentScope::Phone
        },
        program: Some("clinic".to_owned()),
        categories: vec!["appointments".to_owned()],
        kind: ConsentKind::Express,
        at: noon() - Duration::hours(1),
        recorded_at: noon() - Duration::hours(1),
        channel: CaptureChannel::SmsKeyword,
        actor: "patient".to_owned(),
        source_system: None,
        source_record_id: None,
        disclosure_sha256: None,
        disclosure_version: None,
        evidence: Evidence::default(),
        reverses: None,
        guardian: false,
        expires_at: None,
    }
}

/// The real SNS sender, and once, right after its first text, a STOP
/// texted from another number through the real inbound handler: a
/// revocation committed after dispatch read the batch.
struct StopDuringFirstSend {
    inner: Arc<dyn SmsSender>,
    inbound: optline_inbound::Deps,
    stop_from: Mutex<Option<String>>,
}

#[async_trait]
impl SmsSender for StopDuringFirstSend {
    async fn send(&self, sms: &OutboundSms) -> Result<CarrierReceipt, SendFailure> {
        let receipt = self.inner.send(sms).await;
        let stop_from = self.stop_from.lock().unwrap().take();
        if let Some(phone) = stop_from {
            let response = optline_inbound::handle(
                optline_tests::twilio_inbound_request(
                    "SM0000000000000000000000000000b001",
                    &phone,
                    "STOP",
                ),
                &self.inbound,
                noon(),
            )
            .await;
            assert_eq!(response.status(), 200, "the STOP is committed");
        }
        receipt
    }
}

#[tokio::test]
async fn a_stop_committed_after_the_batch_was_read_stops_the_later_step_of_that_batch() {
    // Two steps for one person in one batch: dispatch handles one
    // contact's steps in order (contacts run concurrently), so the STOP
    // that arrives while the first is being sent is committed before the
    // second is claimed, and the claim's check on the facts it read fails.
    let h = Harness::new("batchstop").await;
    let first = h
        .seed_step("bs-2", "+12125550402", "batch-stop-1", noon())
        .await;
    let second = h
        .seed_step("bs-2", "+12125550402", "batch-stop-2", noon())
        .await;
    let mut deps = h.dispatch();
    deps.delivery.sender = Arc::new(StopDuringFirstSend {
        inner: deps.delivery.sender.clone(),
        inbound: h.inbound(),
        stop_from: Mutex::new(Some("+12125550402".to_owned())),
    });

    let before = h.sns_sms().await.len();
    let response =
        optline_dispatch::handle_batch(batch(&[first.clone(), second.clone()]), &deps, noon())
            .await;

    assert!(response.batch_item_failures.is_empty());
    // Other tests share the emulator: look only at this test's numbers.
    let texts: Vec<String> = h
        .sns_sms()
        .await
        .into_iter()
        .skip(before)
        .map(|t| t.phone_number)
        .filter(|to| to == "+12125550401" || to == "+12125550402")
        .collect();
    // The first text, sent before the STOP; nothing after it (the
    // confirmation is the webhook's answer).
    assert_eq!(texts, ["+12125550402"]);
    assert_eq!(
        h.store.step(&first).await.unwrap().unwrap().status,
        StepStatus::Sent
    );
    let stored = h.store.step(&second).await.unwrap().unwrap();
    assert_eq!(stored.status, StepStatus::Suppressed);
    let chain = h
        .store
        .audit_chain(&ContactId::parse("bs-2").unwrap())
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
async fn a_claim_on_facts_that_moved_after_the_read_fails_and_nothing_is_claimed() {
    let h = Harness::new("claimcheck").await;
    let id = h
        .seed_step("cc-1", "+12125550411", "claim-check-1", noon())
        .await;
    let contact = ContactId::parse("cc-1").unwrap();
    let read = |h: &Harness| {
        let store = h.store.clone();
        let id = id.clone();
        let contact = contact.clone();
        async move {
            let snapshot = store
                .step_snapshots(std::slice::from_ref(&id))
                .await
                .unwrap()[&id]
                .clone();
            let facts = store
                .contact_facts(std::slice::from_ref(&contact), noon())
                .await
                .unwrap()[&contact]
                .clone();
            (snapshot, facts)
        }
    };

    // A STOP from the handset after the read: the number's facts moved.
    let (snapshot, facts) = read(&h).await;
    h.store
        .append_consent(
            &event("cc-stop", "+12125550411", None, ConsentAction::Revoke),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        h.store
            .claim_checked(&snapshot, &facts, noon())
            .await
            .unwrap(),
        CheckedClaim::FactsMoved
    );
    assert_eq!(
        h.store.step(&id).await.unwrap().unwrap().status,
        StepStatus::Queued,
        "a failed claim claims nothing"
    );

    // A consent event of the contact's own after the read.
    let (snapshot, facts) = read(&h).await;
    h.store
        .append_consent(
            &event(
                "cc-grant",
                "+12125550411",
                Some("cc-1"),
                ConsentAction::Grant,
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        h.store
            .claim_checked(&snapshot, &facts, noon())
            .await
            .unwrap(),
        CheckedClaim::FactsMoved
    );

    // The step itself replaced (a reschedule) after the read.
    let (snapshot, facts) = read(&h).await;
    let mut moved = snapshot.step.clone();
    moved.due_at = noon() + Duration::hours(2);
    assert!(h
        .store
        .replace_step(&moved, &[StepStatus::Queued])
        .await
        .unwrap());
    assert_eq!(
        h.store
            .claim_checked(&snapshot, &facts, noon())
            .await
            .unwrap(),
        CheckedClaim::StepMoved
    );

    // Nothing moved: the claim is won, once.
    let (snapshot, facts) = read(&h).await;
    assert_eq!(
        h.store
            .claim_checked(&snapshot, &facts, noon())
            .await
            .unwrap(),
        CheckedClaim::Won
    );
    assert_eq!(
        h.store.step(&id).await.unwrap().unwrap().status,
        StepStatus::Sending
    );
    assert_eq!(
        h.store
            .claim_checked(&snapshot, &facts, noon())
            .await
            .unwrap(),
        CheckedClaim::StepMoved
    );
}

#[tokio::test]
async fn sends_earlier_in_a_batch_count_toward_the_caps_of_the_later_ones() {
    let h = Harness::new("batchcaps").await;
    // Four texts about one episode to one person, in one batch: the
    // workflow allows three.
    let mut steps = Vec::new();
    for i in 0..4 {
        let id = h
            .seed_step("caps-1", "+12125550421", &format!("batch-caps-{i}"), noon())
            .await;
        let mut step = h.store.step(&id).await.unwrap().unwrap();
        step.subject = "appt-caps-1".to_owned();
        assert!(h
            .store
            .replace_step(&step, &[StepStatus::Queued])
            .await
            .unwrap());
        steps.push(id);
    }
    let response = optline_dispatch::handle_batch(batch(&steps), &h.dispatch(), noon()).await;
    assert!(response.batch_item_failures.is_empty());
    let mut statuses = Vec::new();
    for id in &steps {
        statuses.push(h.store.step(id).await.unwrap().unwrap().status);
    }
    assert_eq!(
        statuses,
        [
            StepStatus::Sent,
            StepStatus::Sent,
            StepStatus::Sent,
            StepStatus::Suppressed
        ]
    );
    // The digest holds the three sends, each once.
    let contact = ContactId::parse("caps-1").unwrap();
    let facts = h
        .store
        .contact_facts(std::slice::from_ref(&contact), noon())
        .await
        .unwrap()[&contact]
        .clone();
    assert_eq!(facts.sends.len(), 3);
}

#[tokio::test]
async fn the_digest_folds_to_exactly_what_the_consent_ledger_holds_even_past_its_size() {
    let h = Harness::new("digest").await;
    h.seed_step("dg-1", "+12125550431", "digest-1", noon())
        .await;
    let contact = ContactId::parse("dg-1").unwrap();
    let phone = E164::parse("+12125550431").unwrap();
    let ledger = |h: &Harness| {
        let store = h.store.clone();
        let (contact, phone) = (contact.clone(), phone.clone());
        async move {
            let mut facts = consent_facts(&store.consent_events(&contact, &phone).await.unwrap());
            facts.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
            facts
        }
    };

    // Contact and phone events, a retried webhook (same id) among them.
    for (i, (contact_scoped, action)) in [
        (false, ConsentAction::Revoke),
        (false, ConsentAction::Grant),
        (true, ConsentAction::Revoke),
        (true, ConsentAction::Grant),
        (false, ConsentAction::Revoke),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = event(
            &format!("dg-{i}"),
            "+12125550431",
            contact_scoped.then_some("dg-1"),
            action,
        );
        e.at = noon() - Duration::minutes(60 - i as i64);
        assert!(h.store.append_consent(&e, None).await.unwrap());
        assert!(
            !h.store.append_consent(&e, None).await.unwrap(),
            "a retry is recorded once"
        );
    }
    let read = h
        .store
        .contact_facts(std::slice::from_ref(&contact), noon())
        .await
        .unwrap()[&contact]
        .clone();
    assert_eq!(read.consent, ledger(&h).await);

    // Far more handset events than the digest holds: the state item is
    // marked and the number's events are read instead; the fold is the same.
    for i in 0..410 {
        let mut e = event(
            &format!("dg-many-{i:04}"),
            "+12125550431",
            None,
            if i % 2 == 0 {
                ConsentAction::Revoke
            } else {
                ConsentAction::Grant
            },
        );
        e.at = noon() - Duration::minutes(30) + Duration::seconds(i);
        assert!(h.store.append_consent(&e, None).await.unwrap());
    }
    let read = h
        .store
        .contact_facts(std::slice::from_ref(&contact), noon())
        .await
        .unwrap()[&contact]
        .clone();
    let folded = ledger(&h).await;
    assert_eq!(folded.len(), 5 + 410 + 1, "the seeded grant too");
    assert_eq!(read.consent, folded);
}
