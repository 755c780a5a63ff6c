//! Two-way replies against the local emulator: C/1 confirms and R/2 asks to
//! reschedule (the reply grammar of the version sent), each recorded once as
//! the episode's outcome, answered with the approved acknowledgement, and
//! ending the follow-up meant for non-responders.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "integration tests: a failed step should stop the test loudly"
)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use optline_dispatch::Outcome;
use optline_ports::{Casework, StepStatus, StepStore};
use optline_tests::{body_text, signed_ehr_request, twilio_inbound_request, Harness};
use serde_json::json;

/// Monday 2026-12-07 12:00 in New York.
fn monday() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap()
}

async fn patient(h: &Harness, id: &str, phone: &str) {
    let created = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts",
            Some(json!({"id": id, "phone": phone, "time_zone": "America/New_York"})),
        ),
        &h.consent_api(),
        monday() - Duration::days(10),
    )
    .await;
    assert!(created.status().is_success());
    let granted = optline_consent_api::handle(
        h.api_request(
            "POST",
            &format!("/contacts/{id}/preferences"),
            Some(json!({"categories": {"appointments": true}, "channel": "web_form", "disclosure_text": "Riverside Clinic may text you about appointments. Reply STOP to opt out.",
                        "disclosure_version": "2026-11"})),
        ),
        &h.consent_api(),
        monday() - Duration::days(10),
    )
    .await;
    assert!(granted.status().is_success());
}

async fn book(h: &Harness, appt: &str, patient: &str, start: &str) {
    let body = optline_tests::fixtures::appointment(
        appt,
        "booked",
        start,
        None,
        Some(&format!("Patient/{patient}")),
    )
    .to_string();
    let at = monday() - Duration::days(5);
    let response = optline_ehr_events::handle(
        signed_ehr_request(
            "/ehr/fhir/Appointment",
            "application/fhir+json",
            &body,
            at.timestamp(),
        ),
        &h.ehr_events(),
        at,
    )
    .await;
    assert!(response.status().is_success(), "{}", body_text(&response));
}

/// Sweeps at `at` and dispatches what the sweep queued.
async fn sweep_and_dispatch(h: &Harness, at: DateTime<Utc>) -> Vec<Outcome> {
    optline_sweep::sweep(&h.sweep(), at).await.unwrap();
    let mut outcomes = Vec::new();
    loop {
        let batch = h.receive_dispatch_batch(10).await;
        if batch.records.is_empty() {
            break;
        }
        for record in &batch.records {
            outcomes.push(
                optline_dispatch::handle_message(record, &h.dispatch(), at)
                    .await
                    .unwrap(),
            );
        }
        h.delete_messages(&batch, &[]).await;
    }
    outcomes
}

#[tokio::test]
async fn confirm_and_reschedule_replies_record_the_outcome_acknowledge_and_end_the_follow_up() {
    let h = Harness::new("twoway").await;
    patient(&h, "tw-1", "+12125550161").await;
    patient(&h, "tw-2", "+12125550162").await;
    patient(&h, "tw-3", "+12125550163").await;
    // Appointments on Thursday 2026-12-10 at 10:00 New York time.
    for (appt, who) in [("tw-a1", "tw-1"), ("tw-a2", "tw-2"), ("tw-a3", "tw-3")] {
        book(&h, appt, who, "2026-12-10T10:00:00-05:00").await;
    }
    for appt in ["tw-a1", "tw-a2", "tw-a3"] {
        let follow_up = h
            .store
            .step(&optline_tests::ehr_step(
                "appt",
                &appt.replace("-a", "-"),
                appt,
                "followup",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(follow_up.template_id, "appointment_follow_up");
        assert_eq!(
            follow_up.due_at,
            Utc.with_ymd_and_hms(2026, 12, 9, 15, 0, 0).unwrap()
        );
    }

    // An EHR integration listens on the outcome bus through a queue.
    let listener = h
        .sqs
        .create_queue()
        .queue_name(format!("outcomes-{}", uuid::Uuid::new_v4().simple()))
        .send()
        .await
        .unwrap();
    let listener_url = listener.queue_url().unwrap().to_owned();
    let listener_arn = h
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
        .name("optline-outcomes")
        .event_bus_name(&h.resources.outcome_bus)
        .event_pattern(r#"{"source": ["optline"], "detail-type": ["optline.episode.outcome"]}"#)
        .send()
        .await
        .unwrap();
    h.events
        .put_targets()
        .rule("optline-outcomes")
        .event_bus_name(&h.resources.outcome_bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("integration")
                .arn(listener_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // T-72 h: the three reminders go out.
    let reminders = sweep_and_dispatch(&h, monday() - Duration::hours(1)).await;
    assert_eq!(
        reminders
            .iter()
            .filter(|o| matches!(o, Outcome::Sent(_)))
            .count(),
        3
    );

    // Patient 1 confirms with "C", patient 2 asks to reschedule with "2".
    let reply = |sid: &str, from: &str, text: &str| {
        let (sid, from, text) = (sid.to_owned(), from.to_owned(), text.to_owned());
        let h = h.clone();
        async move {
            body_text(
                &optline_inbound::handle(
                    twilio_inbound_request(&sid, &from, &text),
                    &h.inbound(),
                    monday(),
                )
                .await,
            )
        }
    };
    let confirmed = reply("SM00000000000000000000000000000c01", "+12125550161", "C").await;
    assert!(
        confirmed.contains(
            "Riverside Clinic: thank you, your appointment on Thu Dec 10 at 10:00 AM is confirmed."
        ),
        "{confirmed}"
    );
    // A retried webhook answers nothing new.
    let again = reply("SM00000000000000000000000000000c01", "+12125550161", "C").await;
    assert!(!again.contains("<Message>"), "{again}");
    let rescheduled = reply("SM00000000000000000000000000000c02", "+12125550162", "2").await;
    assert!(
        rescheduled.contains("our staff will call you"),
        "{rescheduled}"
    );

    let outcomes = h
        .store
        .outcomes(&optline_tests::ehr_subject("appt", "tw-1", "tw-a1"))
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].kind, "confirmed");
    // Time to confirmation: the reminder went out an hour before the reply.
    assert_eq!(outcomes[0].after_first_text_seconds, Some(3600));
    assert_eq!(
        h.store
            .outcomes(&optline_tests::ehr_subject("appt", "tw-2", "tw-a2"))
            .await
            .unwrap()[0]
            .kind,
        "reschedule_requested"
    );
    let callbacks: Vec<_> = h
        .store
        .reviews()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "callback")
        .collect();
    assert_eq!(callbacks.len(), 1);
    assert_eq!(callbacks[0].contact_ids[0].as_str(), "tw-2");

    // Each outcome was announced once on the bus, without phone or text:
    // the outbox drain publishes what the replies committed.
    let drained = h.drain_outbox().await;
    assert!(drained.batch_item_failures.is_empty());
    let received = h
        .sqs
        .receive_message()
        .queue_url(&listener_url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let mut kinds: Vec<String> = received
        .messages()
        .iter()
        .map(|m| {
            let event: serde_json::Value = serde_json::from_str(m.body().unwrap()).unwrap();
            assert_eq!(event["detail-type"], "optline.episode.outcome");
            assert!(
                !m.body().unwrap().contains("555016"),
                "no phone number in events"
            );
            format!(
                "{} {}",
                event["detail"]["subject"].as_str().unwrap(),
                event["detail"]["kind"].as_str().unwrap()
            )
        })
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            format!(
                "{} confirmed",
                optline_tests::ehr_subject("appt", "tw-1", "tw-a1")
            ),
            format!(
                "{} reschedule_requested",
                optline_tests::ehr_subject("appt", "tw-2", "tw-a2")
            )
        ]
    );

    // The follow-ups of those who answered are cancelled; the non-responder's
    // goes out at T-24 h.
    for (appt, status) in [
        ("tw-a1", StepStatus::Cancelled),
        ("tw-a2", StepStatus::Cancelled),
        ("tw-a3", StepStatus::Pending),
    ] {
        let step = optline_tests::ehr_step("appt", &appt.replace("-a", "-"), appt, "followup");
        assert_eq!(
            h.store.step(&step).await.unwrap().unwrap().status,
            status,
            "{appt}"
        );
    }
    let follow_ups =
        sweep_and_dispatch(&h, Utc.with_ymd_and_hms(2026, 12, 9, 15, 5, 0).unwrap()).await;
    assert_eq!(follow_ups.len(), 1);
    assert!(matches!(follow_ups[0], Outcome::Sent(_)), "{follow_ups:?}");
}
