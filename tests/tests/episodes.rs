//! Episodes end to end against the local emulator: overlapping sweeps,
//! a cancellation between the sweep and dispatch, and a step past its expiry.

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
use optline_tests::{api_request, signed_ehr_request, Harness};
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
async fn a_cancellation_between_the_sweep_and_dispatch_sends_nothing() {
    let h = Harness::new("cancelinflight").await;
    let created = optline_consent_api::handle(
        api_request(
            "POST",
            "/contacts",
            Some(json!({"id": "ep-1", "phone": "+12125550171", "time_zone": "America/New_York"})),
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
    let step = StepId::parse("appt-ep-a1-reminder").unwrap();
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
        api_request(
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
        .step(&StepId::parse("appt-cd-a1-reminder").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        reminder.due_at,
        Utc.with_ymd_and_hms(2026, 12, 8, 15, 0, 0).unwrap()
    );
    assert!(h
        .store
        .step(&StepId::parse("appt-cd-a1-followup").unwrap())
        .await
        .unwrap()
        .is_none());
}
