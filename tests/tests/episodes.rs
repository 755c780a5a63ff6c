//! Episodes end to end against the local emulator: overlapping sweeps, a
//! queued step whose message was lost, a claim whose invocation died,
//! a cancellation between the sweep and dispatch, a step past its expiry,
//! the program's cadence, and the sweep's audience (segment) rules.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "integration tests: a failed step should stop the test loudly"
)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use optline_dispatch::Outcome;
use optline_ports::{StepId, StepStatus, StepStore};
use optline_tests::{signed_ehr_request, Harness};
use serde_json::json;

/// Monday 2026-12-07 12:00 in New York.
fn monday() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap()
}

#[tokio::test]
async fn two_overlapping_sweeps_enqueue_each_due_step_exactly_once() {
    let h = Harness::new("overlap").await;
    for i in 0..40 {
        h.seed_step_in(
            &format!("ov{i}"),
            &format!("+1212555{:04}", 1000 + i),
            &format!("overlap-{i}"),
            monday() - Duration::minutes(1),
            StepStatus::Pending,
        )
        .await;
    }
    let (one, two) = (h.sweep(), h.sweep());
    let (a, b) = tokio::join!(
        optline_sweep::sweep(&one, monday()),
        optline_sweep::sweep(&two, monday())
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.enqueued + b.enqueued, 40, "{a:?} {b:?}");
    assert_eq!(
        a.enqueued + a.lost_race + b.enqueued + b.lost_race,
        a.found + b.found
    );
    let mut ids = Vec::new();
    loop {
        let batch = h.receive_dispatch_batch(10).await;
        if batch.records.is_empty() {
            break;
        }
        for record in &batch.records {
            let body: serde_json::Value =
                serde_json::from_str(record.body.as_deref().unwrap()).unwrap();
            ids.push(body["step_id"].as_str().unwrap().to_owned());
        }
        h.delete_messages(&batch, &[]).await;
    }
    ids.sort();
    let queued = ids.len();
    ids.dedup();
    assert_eq!((queued, ids.len()), (40, 40), "one message per due step");
}

#[tokio::test]
async fn a_step_queued_by_a_sweep_that_died_before_enqueueing_it_is_enqueued_again_and_sent_once() {
    let h = Harness::new("lapsed").await;
    let id = h
        .seed_step_in(
            "lp1",
            "+12125551101",
            "lapsed-1",
            monday() - Duration::minutes(1),
            StepStatus::Pending,
        )
        .await;
    // A sweep moved it to queued, then died before SendMessageBatch.
    assert!(h.store.mark_queued(&id, monday()).await.unwrap());
    assert!(h.receive_dispatch_batch(10).await.records.is_empty());

    // Within its queue lease no sweep touches it: its message may still be
    // on the way.
    let early = optline_sweep::sweep(&h.sweep(), monday() + Duration::minutes(10))
        .await
        .unwrap();
    assert_eq!((early.found, early.enqueued), (0, 0), "{early:?}");

    // Once the lease lapses, two overlapping sweeps enqueue it once.
    let later = monday() + Duration::minutes(31);
    let (one, two) = (h.sweep(), h.sweep());
    let (a, b) = tokio::join!(
        optline_sweep::sweep(&one, later),
        optline_sweep::sweep(&two, later)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        (a.lapsed + b.lapsed, a.enqueued + b.enqueued),
        (1, 1),
        "{a:?} {b:?}"
    );
    let batch = h.receive_dispatch_batch(10).await;
    assert_eq!(batch.records.len(), 1);
    let response = optline_dispatch::handle_batch(batch.clone(), &h.dispatch(), later).await;
    assert!(response.batch_item_failures.is_empty());
    h.delete_messages(&batch, &[]).await;
    assert_eq!(
        h.store.step(&id).await.unwrap().unwrap().status,
        StepStatus::Sent
    );

    // Claimed and sent, it has left the due index for good.
    let after = optline_sweep::sweep(&h.sweep(), later + Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(after.found, 0, "{after:?}");
}

#[tokio::test]
async fn a_step_whose_invocation_died_mid_send_and_whose_message_was_lost_is_ended_without_a_second_text(
) {
    let h = Harness::new("lostclaim").await;
    let id = h
        .seed_step("lc1", "+12125551102", "lost-claim-1", monday())
        .await;
    // A dispatcher claimed it, then died; its message was dead-lettered.
    assert!(matches!(
        h.store.claim_send(&id, monday()).await.unwrap(),
        optline_ports::Claim::Won(_)
    ));
    let before = h.sns_sms().await.len();
    let early = optline_sweep::sweep(&h.sweep(), monday() + Duration::minutes(20))
        .await
        .unwrap();
    assert_eq!(early.found, 0, "within its lease: {early:?}");

    // Past the lease, a sweep enqueues it again; dispatch finds the claim
    // stale and, since SNS cannot drop a repeat, ends the step with its
    // reason instead of risking a second text.
    let later = monday() + Duration::minutes(31);
    let report = optline_sweep::sweep(&h.sweep(), later).await.unwrap();
    assert_eq!((report.lapsed, report.enqueued), (1, 1), "{report:?}");
    let batch = h.receive_dispatch_batch(10).await;
    let handled = optline_dispatch::dispatch_batch(&batch, &h.dispatch(), later).await;
    h.delete_messages(&batch, &[]).await;
    assert!(matches!(
        handled[0].result,
        Ok(Outcome::Failed(ref code)) if code == "dispatch.unknown_outcome"
    ));
    let stored = h.store.step(&id).await.unwrap().unwrap();
    assert_eq!(stored.status, StepStatus::Failed);
    let texts: Vec<_> = h
        .sns_sms()
        .await
        .into_iter()
        .skip(before)
        .filter(|t| t.phone_number == "+12125551102")
        .collect();
    assert!(texts.is_empty(), "no second text: {texts:?}");
    let after = optline_sweep::sweep(&h.sweep(), later + Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(
        after.found, 0,
        "ended, it has left the due index: {after:?}"
    );
}

#[tokio::test]
async fn a_cancellation_between_the_sweep_and_dispatch_sends_nothing() {
    let h = Harness::new("cancelinflight").await;
    let created = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts",
            // No consent recorded: the reminder relies on the treatment
            // basis, which rests on the patient having given the number.
            Some(json!({"id": "ep-1", "phone": "+12125550171", "time_zone": "America/New_York",
                        "phone_provenance": {"source": "patient_intake", "evidence": "registration form",
                                             "at": "2026-11-20T15:00:00Z"}})),
        ),
        &h.consent_api(),
        monday() - Duration::days(10),
    )
    .await;
    assert!(created.status().is_success());
    let appointment = |status: &str, updated: &str| {
        optline_tests::fixtures::appointment(
            "ep-a1",
            status,
            "2026-12-10T10:00:00-05:00",
            Some(updated),
            Some("Patient/ep-1"),
        )
        .to_string()
    };
    let booked_at = monday() - Duration::days(2);
    let booked = optline_ehr_events::handle(
        signed_ehr_request(
            "/ehr/fhir/Appointment",
            "application/fhir+json",
            &appointment("booked", "2026-12-05T12:00:00Z"),
            booked_at.timestamp(),
        ),
        &h.ehr_events(),
        booked_at,
    )
    .await;
    assert!(booked.status().is_success());
    // The sweep queues the reminder...
    let swept = optline_sweep::sweep(&h.sweep(), monday()).await.unwrap();
    assert_eq!(swept.enqueued, 1);
    // ...then the EHR cancels the appointment before dispatch runs.
    let cancelled = optline_ehr_events::handle(
        signed_ehr_request(
            "/ehr/fhir/Appointment",
            "application/fhir+json",
            &appointment("cancelled", "2026-12-07T16:59:00Z"),
            monday().timestamp(),
        ),
        &h.ehr_events(),
        monday(),
    )
    .await;
    assert!(cancelled.status().is_success());
    let batch = h.receive_dispatch_batch(10).await;
    assert_eq!(batch.records.len(), 1);
    let outcome = optline_dispatch::handle_message(&batch.records[0], &h.dispatch(), monday())
        .await
        .unwrap();
    assert_eq!(outcome, Outcome::Skipped("already handled"));
    let step = optline_tests::ehr_step("appt", "ep-1", "ep-a1", "reminder");
    assert_eq!(
        h.store.step(&step).await.unwrap().unwrap().status,
        StepStatus::Cancelled
    );
    assert!(!h
        .sns_sms()
        .await
        .iter()
        .any(|m| m.phone_number == "+12125550171"));
}

#[tokio::test]
async fn a_step_past_its_expiry_is_dropped_with_its_reason() {
    let h = Harness::new("expired").await;
    let step = h
        .seed_step(
            "ex-1",
            "+12125550181",
            "expired-1",
            monday() - Duration::days(4),
        )
        .await;
    // The seeded step expires three days after it was due: yesterday.
    let outcome = optline_dispatch::dispatch_step(&step, &h.dispatch(), monday())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Suppressed(vec!["decision.expiry".to_owned()])
    );
    assert_eq!(
        h.store.step(&step).await.unwrap().unwrap().status,
        StepStatus::Suppressed
    );
}

#[tokio::test]
async fn the_programs_cadence_sets_the_reminder_and_follow_up_offsets() {
    let mut h = Harness::new("cadence").await;
    let mut config = (*h.config).clone();
    for program in config.programs.values_mut() {
        program.reminder_lead_hours = 48;
        program.follow_up_lead_hours = 0;
    }
    h.config = std::sync::Arc::new(config);
    let created = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts",
            Some(json!({"id": "cd-1", "phone": "+12125550191", "time_zone": "America/New_York"})),
        ),
        &h.consent_api(),
        monday(),
    )
    .await;
    assert!(created.status().is_success());
    let body = optline_tests::fixtures::appointment(
        "cd-a1",
        "booked",
        "2026-12-10T10:00:00-05:00",
        None,
        Some("Patient/cd-1"),
    )
    .to_string();
    let booked = optline_ehr_events::handle(
        signed_ehr_request(
            "/ehr/fhir/Appointment",
            "application/fhir+json",
            &body,
            monday().timestamp(),
        ),
        &h.ehr_events(),
        monday(),
    )
    .await;
    assert!(booked.status().is_success());
    let reminder = h
        .store
        .step(&optline_tests::ehr_step(
            "appt", "cd-1", "cd-a1", "reminder",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        reminder.due_at,
        Utc.with_ymd_and_hms(2026, 12, 8, 15, 0, 0).unwrap()
    );
    assert!(h
        .store
        .step(&optline_tests::ehr_step(
            "appt", "cd-1", "cd-a1", "followup"
        ))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn the_sweep_applies_the_programs_audience_rules_and_records_every_exclusion() {
    use optline_ports::{AuditTrail, ContactDirectory, ContactId, EpisodeOutcome};
    let mut h = Harness::new("audience").await;
    let mut config = (*h.config).clone();
    for program in config.programs.values_mut() {
        program.audience = optline_policy::audience::AudienceRules {
            purposes: vec!["appointment_reminder".to_owned()],
            regions: vec!["US-NY".to_owned(), "US-NJ".to_owned()],
            minors: false,
            time_sensitive_grace_minutes: 120,
        };
    }
    h.config = std::sync::Arc::new(config);
    let due = monday() - Duration::minutes(1);
    let pending = StepStatus::Pending;

    // In the audience: a New York number, consented, on time.
    let inside = h
        .seed_step_in("au-in", "+12125550301", "au-in", due, pending)
        .await;
    // A Miami number: outside the program's regions.
    let florida = h
        .seed_step_in("au-fl", "+13055550302", "au-fl", due, pending)
        .await;
    // A purpose the program does not send.
    let billing = h
        .seed_step_in("au-bill", "+12125550303", "au-bill", due, pending)
        .await;
    let mut step = h.store.step(&billing).await.unwrap().unwrap();
    step.purpose = "billing_reminder".to_owned();
    assert!(h.store.replace_step(&step, &[pending]).await.unwrap());
    // Time-sensitive and three hours late: past its band.
    let late = h
        .seed_step_in(
            "au-late",
            "+12125550304",
            "au-late",
            monday() - Duration::hours(3),
            pending,
        )
        .await;
    // A minor, and the program does not text minors.
    let minor = optline_ports::Contact {
        id: ContactId::parse("au-minor").unwrap(),
        phone: optline_policy::phone::E164::parse("+12125550305").unwrap(),
        program: "clinic".to_owned(),
        time_zone: Some("America/New_York".to_owned()),
        address_state: None,
        minor: true,
        date_of_birth: None,
        phone_provenance: None,
        language: None,
        identifiers: Vec::new(),
        created_at: monday() - Duration::days(30),
    };
    h.store.create_contact(&minor).await.unwrap();
    let young = h
        .seed_step_in("au-minor", "+12125550305", "au-minor", due, pending)
        .await;
    // A STOP from the handset: no consent scope any more.
    let stopped = h
        .seed_step_in("au-stop", "+12125550306", "au-stop", due, pending)
        .await;
    let stop = optline_inbound::handle(
        optline_tests::twilio_inbound_request(
            "SM000000000000000000000000000au306",
            "+12125550306",
            "STOP",
        ),
        &h.inbound(),
        monday() - Duration::hours(1),
    )
    .await;
    assert_eq!(stop.status(), 200);
    // A non-responder follow-up for someone who already confirmed.
    let answered = h
        .seed_step_in("au-resp", "+12125550307", "au-resp", due, pending)
        .await;
    let mut step = h.store.step(&answered).await.unwrap().unwrap();
    step.audience = optline_ports::Audience::NonResponders;
    assert!(h.store.replace_step(&step, &[pending]).await.unwrap());
    h.record_outcome(EpisodeOutcome {
        subject: step.subject.clone(),
        kind: "confirmed".to_owned(),
        at: monday() - Duration::hours(2),
        contact_id: step.contact_id.clone(),
        step_id: None,
        source: "test".to_owned(),
        after_first_text_seconds: None,
    })
    .await;

    let before = h.calls.snapshot();
    let report = optline_sweep::sweep(&h.sweep(), monday()).await.unwrap();
    assert_eq!((report.found, report.enqueued, report.excluded), (7, 1, 6));
    // Each exclusion is one write: the step leaves pending together with
    // its audit record (and the chain's head).
    let spent = optline_tests::calls::since(&before, &h.calls.snapshot());
    assert_eq!(
        spent.get("DynamoDB.TransactWriteItems"),
        Some(&6),
        "{spent:?}"
    );
    assert_eq!(spent.get("DynamoDB.PutItem"), None, "{spent:?}");
    for (reason, count) in [
        ("segment.region", 1),
        ("segment.purpose", 1),
        ("segment.band", 1),
        ("segment.minor", 1),
        ("segment.consent_scope", 2), // the STOP, and the minor without a guardian's consent
        ("segment.responders", 1),
    ] {
        assert_eq!(
            report.excluded_by.get(reason),
            Some(&count),
            "{reason}: {:?}",
            report.excluded_by
        );
    }

    // Only the one inside was queued.
    let batch = h.receive_dispatch_batch(10).await;
    assert_eq!(batch.records.len(), 1);
    assert!(batch.records[0]
        .body
        .as_deref()
        .unwrap()
        .contains(inside.as_str()));
    assert_eq!(
        h.store.step(&inside).await.unwrap().unwrap().status,
        StepStatus::Queued
    );
    // Every other one ended, each with an audit record of its rules.
    for (id, rule) in [
        (&florida, "segment.region"),
        (&billing, "segment.purpose"),
        (&late, "segment.band"),
        (&young, "segment.minor"),
        (&stopped, "segment.consent_scope"),
        (&answered, "segment.responders"),
    ] {
        let step = h.store.step(id).await.unwrap().unwrap();
        assert_eq!(step.status, StepStatus::Suppressed, "{id}");
        let chain = h.store.audit_chain(&step.contact_id).await.unwrap();
        let record = chain
            .iter()
            .rev()
            .find(|r| r.content.step_id.as_deref() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("no audit record for {id}"));
        assert_eq!(record.content.action, "suppress");
        assert!(record.content.reasons.contains(&rule.to_owned()), "{id}");
        assert!(
            record
                .content
                .rules
                .iter()
                .any(|r| r.id == rule && r.verdict == optline_policy::Verdict::Fail),
            "{id}"
        );
    }
    // A second sweep finds nothing left.
    let again = optline_sweep::sweep(&h.sweep(), monday()).await.unwrap();
    assert_eq!(again.found, 0);
}

#[tokio::test]
async fn the_due_index_gives_the_oldest_steps_of_every_shard_first() {
    let h = Harness::new("dueorder").await;
    // Twelve pending steps, a minute apart, spread over the four shards.
    let mut ids = Vec::new();
    for i in 0..12 {
        let id = h
            .seed_step_in(
                &format!("do{i}"),
                &format!("+1212555{:04}", 1200 + i),
                &format!("due-order-{i}"),
                monday() - Duration::minutes(60 - i64::from(i)),
                StepStatus::Pending,
            )
            .await;
        ids.push(id);
    }
    let shards: std::collections::BTreeSet<u32> = ids.iter().map(optline_aws::due_shard).collect();
    assert!(shards.len() > 1, "the steps should span shards");
    // Asked for five, the sweep gets the five oldest, whatever their shard.
    let due = h.store.due_steps(monday(), 5).await.unwrap();
    let got: Vec<&StepId> = due.iter().map(|s| &s.id).collect();
    assert_eq!(got, ids.iter().take(5).collect::<Vec<_>>());
}
