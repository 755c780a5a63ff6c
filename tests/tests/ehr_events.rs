//! The EHR events function against the local emulator: only verified
//! events are accepted (HMAC-signed by a configured source, or the API's own
//! authentication), and a refused request writes nothing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "integration tests: a failed step should stop the test loudly"
)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use lambda_http::http::StatusCode;
use lambda_http::Body;
use optline_ports::{Casework, StepId, StepStore};
use optline_tests::{
    body_json, ehr_step, ehr_subject, fixtures, signed_ehr_request, Harness, EHR_SOURCE,
};
use serde_json::json;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 15, 0, 0).unwrap()
}

fn booked(id: &str) -> String {
    fixtures::appointment(
        id,
        "booked",
        "2026-12-10T10:00:00-05:00",
        None,
        Some("Patient/pat-ehr-1"),
    )
    .to_string()
}

async fn contact(h: &Harness) {
    let created = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts",
            Some(json!({"id": "pat-ehr-1", "phone": "+1 212 555 0188", "time_zone": "America/New_York"})),
        ),
        &h.consent_api(),
        now(),
    )
    .await;
    assert_eq!(created.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn a_signed_event_is_accepted_and_a_forged_stale_or_unknown_one_is_refused() {
    let h = Harness::new("ehr-hmac").await;
    contact(&h).await;
    let deps = h.ehr_events();
    let t = now().timestamp();

    // Signed by the configured source: planned.
    let ok = optline_ehr_events::handle(
        signed_ehr_request(
            "/ehr/fhir/Appointment",
            "application/fhir+json",
            &booked("a-1"),
            t,
        ),
        &deps,
        now(),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::CREATED, "{}", body_json(&ok));

    // The same signature over a changed body.
    let mut forged = signed_ehr_request(
        "/ehr/fhir/Appointment",
        "application/fhir+json",
        &booked("a-2"),
        t,
    );
    *forged.body_mut() = Body::from(booked("a-3"));
    let refused = optline_ehr_events::handle(forged, &deps, now()).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        body_json(&refused)["error"],
        "the signature does not match the body"
    );

    // A correct signature replayed ten minutes later.
    let stale = optline_ehr_events::handle(
        signed_ehr_request(
            "/ehr/fhir/Appointment",
            "application/fhir+json",
            &booked("a-4"),
            t,
        ),
        &deps,
        now() + Duration::minutes(10),
    )
    .await;
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);

    // An unknown source.
    let mut unknown = signed_ehr_request(
        "/ehr/fhir/Appointment",
        "application/fhir+json",
        &booked("a-5"),
        t,
    );
    unknown
        .headers_mut()
        .insert("x-optline-source", "someone-else".parse().unwrap());
    let refused = optline_ehr_events::handle(unknown, &deps, now()).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // No source and no API token.
    let mut bare = signed_ehr_request(
        "/ehr/fhir/Appointment",
        "application/fhir+json",
        &booked("a-6"),
        t,
    );
    bare.headers_mut().remove("x-optline-source");
    let refused = optline_ehr_events::handle(bare, &deps, now()).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    // Only the verified event planned anything.
    for (id, planned) in [
        ("a-1", true),
        ("a-2", false),
        ("a-3", false),
        ("a-4", false),
        ("a-5", false),
        ("a-6", false),
    ] {
        let step = ehr_step("appt", "pat-ehr-1", id, "reminder");
        assert_eq!(
            h.store.step(&step).await.unwrap().is_some(),
            planned,
            "{id}"
        );
    }
    assert_eq!(EHR_SOURCE, "test-ehr");
}

fn appointment(id: &str, status: &str, start: &str, last_updated: &str) -> String {
    fixtures::appointment(
        id,
        status,
        start,
        Some(last_updated),
        Some("https://ehr.example/fhir/Patient/pat-ehr-1/_history/3"),
    )
    .to_string()
}

async fn send(h: &Harness, body: &str) -> serde_json::Value {
    let response = optline_ehr_events::handle(
        signed_ehr_request(
            "/ehr/fhir/Appointment",
            "application/fhir+json",
            body,
            now().timestamp(),
        ),
        &h.ehr_events(),
        now(),
    )
    .await;
    assert!(response.status().is_success(), "{}", body_json(&response));
    body_json(&response)
}

#[tokio::test]
async fn reordered_and_replayed_events_are_resolved_by_the_sources_version() {
    let h = Harness::new("ehr-order").await;
    contact(&h).await;
    let step = |id: &str| ehr_step("appt", "pat-ehr-1", id, "reminder");

    // A cancellation that arrives before its booking wins.
    let cancelled = send(
        &h,
        &appointment(
            "o-1",
            "cancelled",
            "2026-12-10T10:00:00-05:00",
            "2026-11-30T12:00:00Z",
        ),
    )
    .await;
    assert_eq!(cancelled["before_booking"], true);
    let late_booking = send(
        &h,
        &appointment(
            "o-1",
            "booked",
            "2026-12-10T10:00:00-05:00",
            "2026-11-30T11:00:00Z",
        ),
    )
    .await;
    assert_eq!(late_booking["result"], "cancelled");
    let stored = h.store.step(&step("o-1")).await.unwrap().unwrap();
    assert_eq!(stored.status, optline_ports::StepStatus::Cancelled);

    // A newer booking with another time reschedules; replaying the older
    // booking changes nothing.
    let booked = send(
        &h,
        &appointment(
            "o-2",
            "booked",
            "2026-12-10T10:00:00-05:00",
            "2026-11-30T09:00:00Z",
        ),
    )
    .await;
    assert_eq!(booked["result"], "created");
    let moved = send(
        &h,
        &appointment(
            "o-2",
            "booked",
            "2026-12-12T15:30:00-05:00",
            "2026-11-30T10:00:00Z",
        ),
    )
    .await;
    assert_eq!(moved["result"], "rescheduled");
    let replayed = send(
        &h,
        &appointment(
            "o-2",
            "booked",
            "2026-12-10T10:00:00-05:00",
            "2026-11-30T09:00:00Z",
        ),
    )
    .await;
    assert_eq!(replayed["result"], "stale");
    let stored = h.store.step(&step("o-2")).await.unwrap().unwrap();
    assert_eq!(
        stored.expires_at,
        Some(Utc.with_ymd_and_hms(2026, 12, 12, 20, 30, 0).unwrap())
    );
    assert_eq!(
        stored.due_at,
        Utc.with_ymd_and_hms(2026, 12, 9, 20, 30, 0).unwrap()
    );
    assert_eq!(stored.variables["time"], "3:30 PM");

    // Cancelled, then booked again by a newer version: planned again.
    send(
        &h,
        &appointment(
            "o-2",
            "cancelled",
            "2026-12-12T15:30:00-05:00",
            "2026-11-30T11:00:00Z",
        ),
    )
    .await;
    assert_eq!(
        h.store.step(&step("o-2")).await.unwrap().unwrap().status,
        optline_ports::StepStatus::Cancelled
    );
    // A booking older than that cancellation, arriving late, stays cancelled.
    let older = send(
        &h,
        &appointment(
            "o-2",
            "booked",
            "2026-12-13T09:00:00-05:00",
            "2026-11-30T10:30:00Z",
        ),
    )
    .await;
    assert_eq!(older["result"], "cancelled");
    let rebooked = send(
        &h,
        &appointment(
            "o-2",
            "booked",
            "2026-12-14T09:00:00-05:00",
            "2026-11-30T12:00:00Z",
        ),
    )
    .await;
    assert_eq!(rebooked["result"], "rebooked");
    assert_eq!(
        h.store.step(&step("o-2")).await.unwrap().unwrap().status,
        optline_ports::StepStatus::Pending
    );
}

async fn event(h: &Harness, body: serde_json::Value) -> (StatusCode, serde_json::Value) {
    let response = optline_ehr_events::handle(
        signed_ehr_request(
            "/ehr/events",
            "application/json",
            &body.to_string(),
            now().timestamp(),
        ),
        &h.ehr_events(),
        now(),
    )
    .await;
    (response.status(), body_json(&response))
}

#[tokio::test]
async fn normalized_events_plan_each_use_case_and_completion_cancels() {
    let h = Harness::new("ehr-json").await;
    contact(&h).await;
    // The patient agreed to forms and results texts.
    let granted = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts/pat-ehr-1/preferences",
            Some(json!({
                "categories": {"forms": true, "results": true, "billing": true, "referrals": true},
                "channel": "web_form", "disclosure_text": "Riverside Clinic may text you about forms, results, bills and referrals. Reply STOP to opt out.",
                "disclosure_version": "2026-11"
            })),
        ),
        &h.consent_api(),
        now() - Duration::days(1),
    )
    .await;
    assert!(granted.status().is_success(), "{}", body_json(&granted));

    for (kind, subject, template) in [
        ("document.outstanding", "form-778", "intake_form"),
        ("results.ready", "res-31", "results_ready"),
        ("billing.due", "stmt-12", "billing_reminder"),
        ("referral.pending", "ref-5", "referral_follow_up"),
    ] {
        let (status, body) = event(
            &h,
            json!({"id": format!("evt-{subject}"), "type": kind, "patient": "pat-ehr-1",
                   "subject": subject, "link": "https://portal.riverside.example/t/8f2k"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{kind}: {body}");
        let id = body["planned"][0]["step_id"].as_str().unwrap().to_owned();
        let step = h
            .store
            .step(&StepId::parse(&id).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(step.template_id, template, "{kind}");
        assert_eq!(
            step.variables["link"],
            "https://portal.riverside.example/t/8f2k"
        );
    }

    // A replay plans nothing new.
    let (status, body) = event(
        &h,
        json!({"id": "evt-form-778", "type": "document.outstanding", "patient": "pat-ehr-1",
               "subject": "form-778", "link": "https://portal.riverside.example/t/8f2k"}),
    )
    .await;
    assert_eq!(
        (status, body["result"].as_str()),
        (StatusCode::OK, Some("unchanged"))
    );

    // The form is completed before the reminder goes out: cancelled.
    let (status, body) = event(
        &h,
        json!({"id": "evt-form-778-done", "type": "document.completed", "patient": "pat-ehr-1", "subject": "form-778"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["cancelled"][0],
        ehr_step("doc", "pat-ehr-1", "form-778", "reminder").as_str()
    );
    let done = h
        .store
        .outcomes(&ehr_subject("doc", "pat-ehr-1", "form-778"))
        .await
        .unwrap();
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].kind, "completed");

    // The results alert goes out, with the portal link and no result in it.
    let results = ehr_step("results", "pat-ehr-1", "res-31", "reminder");
    let mut queued = h.store.step(&results).await.unwrap().unwrap();
    queued.status = optline_ports::StepStatus::Queued;
    queued.id = StepId::parse("results-res-31-now").unwrap();
    assert!(h.store.put_step(&queued).await.unwrap());
    // Tuesday 10:00 in New York.
    let at = Utc.with_ymd_and_hms(2026, 12, 1, 15, 0, 0).unwrap();
    let outcome = optline_dispatch::dispatch_step(&queued.id, &h.dispatch(), at)
        .await
        .unwrap();
    assert!(
        matches!(outcome, optline_dispatch::Outcome::Sent(_)),
        "{outcome:?}"
    );
    // Other tests share the emulator: the text to this test's number.
    let text = h
        .sns_sms()
        .await
        .into_iter()
        .rfind(|s| s.phone_number == "+12125550188")
        .unwrap()
        .message;
    assert_eq!(
        text,
        "Riverside Clinic: you have a new message in your patient portal: https://portal.riverside.example/t/8f2k Reply STOP to opt out."
    );

    // Bad input is refused with a reason, and plans nothing.
    for (body, reason) in [
        (
            json!({"id": "e1", "type": "lab.result", "patient": "pat-ehr-1", "subject": "x"}),
            "unknown event type",
        ),
        (
            json!({"id": "e2", "type": "results.ready", "patient": "pat-ehr-1", "subject": "x", "link": "http://portal.example/t/1"}),
            "link must be an https URL",
        ),
        (
            json!({"id": "e3", "type": "results.ready", "patient": "pat-ehr-1", "subject": "x"}),
            "this event type needs a portal link",
        ),
        (
            json!({"id": "e4", "type": "results.ready", "patient": "pat-ehr-1", "subject": "x", "link": "https://p.example/t", "version": "yesterday"}),
            "version must be a non-negative integer or an RFC 3339 instant",
        ),
    ] {
        let (status, answer) = event(&h, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["error"], reason);
    }
}

use optline_tests::fixtures::{siu, PID};

async fn hl7(h: &Harness, message: &str) -> (StatusCode, String) {
    let response = optline_ehr_events::handle(
        signed_ehr_request("/ehr/hl7", "application/hl7-v2", message, now().timestamp()),
        &h.ehr_events(),
        now(),
    )
    .await;
    let status = response.status();
    let body = String::from_utf8(response.body().to_vec()).unwrap();
    (status, body)
}

#[tokio::test]
async fn hl7_siu_books_reschedules_and_cancels_and_every_message_gets_an_ack() {
    let h = Harness::new("ehr-hl7").await;
    contact(&h).await;
    let step = ehr_step("appt", "pat-ehr-1", "APT-7001", "reminder");

    let (status, ack) = hl7(
        &h,
        &siu(
            "S12",
            "MSG00001",
            "20261130120000-0500",
            "20261210100000-0500",
            PID,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    // The ACK is the validated fixture, but for its message time.
    assert_eq!(
        fixtures::without_message_time(&ack),
        fixtures::without_message_time(fixtures::ACK_AA)
    );
    let planned = h.store.step(&step).await.unwrap().unwrap();
    assert_eq!(
        planned.expires_at,
        Some(Utc.with_ymd_and_hms(2026, 12, 10, 15, 0, 0).unwrap())
    );
    assert_eq!(planned.variables["time"], "10:00 AM");

    // S13 moves it; a replay of the older S12 changes nothing.
    let (status, ack) = hl7(
        &h,
        &siu(
            "S13",
            "MSG00002",
            "20261130130000-0500",
            "202612111430-0500",
            PID,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    hl7(
        &h,
        &siu(
            "S12",
            "MSG00001",
            "20261130120000-0500",
            "20261210100000-0500",
            PID,
        ),
    )
    .await;
    let moved = h.store.step(&step).await.unwrap().unwrap();
    assert_eq!(moved.variables["date"], "Fri Dec 11");
    assert_eq!(moved.variables["time"], "2:30 PM");

    // A start without an offset is read in the patient's zone.
    let (status, _) = hl7(
        &h,
        &siu(
            "S14",
            "MSG00003",
            "20261130140000-0500",
            "20261212090000",
            PID,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        h.store.step(&step).await.unwrap().unwrap().expires_at,
        Some(Utc.with_ymd_and_hms(2026, 12, 12, 14, 0, 0).unwrap())
    );

    // S15 cancels.
    let (status, ack) = hl7(
        &h,
        &siu(
            "S15",
            "MSG00004",
            "20261130150000-0500",
            "20261212090000-0500",
            PID,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert!(ack.contains("MSA|AA|MSG00004"));
    assert_eq!(
        h.store.step(&step).await.unwrap().unwrap().status,
        optline_ports::StepStatus::Cancelled
    );

    // S26: the patient did not show up. The episode's final status is kept.
    let (status, ack) = hl7(&h, fixtures::SIU_S26).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    assert!(ack.contains("MSA|AA|MSG00007"), "{ack}");
    let outcomes = h
        .store
        .outcomes(&ehr_subject("appt", "pat-ehr-1", "APT-7001"))
        .await
        .unwrap();
    assert!(
        outcomes
            .iter()
            .any(|o| o.kind == "noshow" && o.source == "hl7:SIU^S26/MSG00007"),
        "{outcomes:?}"
    );

    // Rejected with a reason the sender can read, and nothing planned.
    let (status, ack) = hl7(
        &h,
        &siu(
            "S12",
            "MSG00005",
            "20261130160000-0500",
            "20261210100000-0500",
            "PID|1",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        fixtures::without_message_time(&ack),
        fixtures::without_message_time(fixtures::ACK_AR)
    );
    let (status, ack) = hl7(&h, "EVN|A01|20261130").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        ack.contains("MSA|AR||the message must start with an MSH segment"),
        "{ack}"
    );
    let unknown = siu(
        "S12",
        "MSG00006",
        "20261130160000-0500",
        "20261210100000-0500",
        "PID|1||pat-nobody^^^RIVERSIDE^MR",
    );
    let (status, ack) = hl7(&h, &unknown).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        fixtures::without_message_time(&ack),
        fixtures::without_message_time(fixtures::ACK_AE)
    );
}

async fn fhir(h: &Harness, body: &serde_json::Value) -> (StatusCode, serde_json::Value) {
    let response = optline_ehr_events::handle(
        signed_ehr_request(
            "/ehr/fhir",
            "application/fhir+json",
            &body.to_string(),
            now().timestamp(),
        ),
        &h.ehr_events(),
        now(),
    )
    .await;
    (response.status(), body_json(&response))
}

#[tokio::test]
async fn subscription_notification_bundles_in_r5_and_r4_backport_shapes_plan_their_appointments() {
    let h = Harness::new("ehr-bundle").await;
    contact(&h).await;
    // R4B / R5: SubscriptionStatus first (validated against R5).
    let r5 = fixtures::json(fixtures::FHIR_NOTIFICATION_R5);
    let (status, body) = fhir(&h, &r5).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["answer"]["result"], "created");

    // The R4 backport: Parameters first, Bundle.type history.
    let backport = fixtures::json(fixtures::FHIR_NOTIFICATION_BACKPORT);
    let (status, body) = fhir(&h, &backport).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for id in ["b-1", "b-2"] {
        let step = ehr_step("appt", "pat-ehr-1", id, "reminder");
        assert_eq!(
            h.store
                .step(&step)
                .await
                .unwrap()
                .unwrap()
                .contact_id
                .as_str(),
            "pat-ehr-1"
        );
    }

    // A handshake plans nothing; an id-only notification, without a FHIR
    // server configured for the source, is refused per entry with what to
    // do (tests/tests/ehr_contacts.rs fetches one).
    let handshake = fixtures::json(fixtures::FHIR_HANDSHAKE_BACKPORT);
    let (status, body) = fhir(&h, &handshake).await;
    assert_eq!(
        (status, body["notification"].as_str()),
        (StatusCode::OK, Some("handshake"))
    );
    let mut id_only = r5.clone();
    id_only["entry"][1]
        .as_object_mut()
        .unwrap()
        .remove("resource");
    let (status, body) = fhir(&h, &id_only).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body["results"][0]["status"], 422, "{body}");
    assert!(body["results"][0]["answer"]["error"]
        .as_str()
        .unwrap()
        .contains("FHIR server configured"));
}

#[tokio::test]
async fn step_ids_carry_the_source_and_the_patient_and_an_appointment_never_changes_patient() {
    let h = Harness::new("ehr-ids").await;
    contact(&h).await;
    let other = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts",
            Some(json!({"id": "pat-ehr-2", "phone": "+1 212 555 0189", "time_zone": "America/New_York"})),
        ),
        &h.consent_api(),
        now(),
    )
    .await;
    assert_eq!(other.status(), StatusCode::CREATED);
    let deps = h.ehr_events();
    let for_patient = |patient: &str| {
        fixtures::appointment(
            "same-1",
            "booked",
            "2026-12-10T10:00:00-05:00",
            Some("2026-11-30T12:00:00Z"),
            Some(&format!("Patient/{patient}")),
        )
    };
    // The configured source books appointment same-1 for pat-ehr-1.
    let signed = optline_ehr_events::handle(
        signed_ehr_request(
            "/ehr/fhir/Appointment",
            "application/fhir+json",
            &for_patient("pat-ehr-1").to_string(),
            now().timestamp(),
        ),
        &deps,
        now(),
    )
    .await;
    assert_eq!(signed.status(), StatusCode::CREATED);
    // Another source (here the API's own callers) uses the same id for
    // another patient: its own appointment, its own steps.
    let api = optline_ehr_events::handle(
        h.fhir_request("/ehr/fhir/Appointment", &for_patient("pat-ehr-2")),
        &deps,
        now(),
    )
    .await;
    assert_eq!(api.status(), StatusCode::CREATED, "{}", body_json(&api));
    let ours = ehr_step("appt", "pat-ehr-1", "same-1", "reminder");
    let theirs = optline_tests::api_step("appt", "pat-ehr-2", "same-1", "reminder");
    assert_ne!(ours, theirs);
    for (step, patient) in [(&ours, "pat-ehr-1"), (&theirs, "pat-ehr-2")] {
        let stored = h.store.step(step).await.unwrap().unwrap();
        assert_eq!(stored.contact_id.as_str(), patient);
        assert_eq!(stored.status, optline_ports::StepStatus::Pending);
    }

    // The configured source now names pat-ehr-2 for its same-1: refused
    // with the reason, and nothing moves (a cancellation too).
    let before = h.table_items().await.len();
    for status in ["booked", "cancelled"] {
        let mut moved = for_patient("pat-ehr-2");
        moved["status"] = json!(status);
        moved["meta"]["lastUpdated"] = json!("2026-11-30T13:00:00Z");
        let refused = optline_ehr_events::handle(
            signed_ehr_request(
                "/ehr/fhir/Appointment",
                "application/fhir+json",
                &moved.to_string(),
                now().timestamp(),
            ),
            &deps,
            now(),
        )
        .await;
        assert_eq!(refused.status(), StatusCode::CONFLICT, "{status}");
        let reason = body_json(&refused);
        assert!(
            reason["error"]
                .as_str()
                .is_some_and(|e| e.contains("another patient")),
            "{reason}"
        );
    }
    assert_eq!(h.table_items().await.len(), before, "nothing written");
    let kept = h.store.step(&ours).await.unwrap().unwrap();
    assert_eq!(kept.contact_id.as_str(), "pat-ehr-1");
    assert_eq!(kept.status, optline_ports::StepStatus::Pending);
    assert!(h
        .store
        .step(&ehr_step("appt", "pat-ehr-2", "same-1", "reminder"))
        .await
        .unwrap()
        .is_none());

    // HL7 answers the same refusal with an AE ACK, and plans nothing.
    let booked_hl7 = siu(
        "S12",
        "MSG-IDS-1",
        "20261130120000-0500",
        "20261210100000-0500",
        PID,
    );
    let (status, ack) = hl7(&h, &booked_hl7).await;
    assert_eq!(status, StatusCode::OK, "{ack}");
    let (status, ack) = hl7(
        &h,
        &siu(
            "S12",
            "MSG-IDS-2",
            "20261130130000-0500",
            "20261210100000-0500",
            &PID.replace("pat-ehr-1", "pat-ehr-2"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{ack}");
    assert!(ack.contains("MSA|AE|MSG-IDS-2"), "{ack}");
    assert!(h
        .store
        .step(&ehr_step("appt", "pat-ehr-2", "APT-7001", "reminder"))
        .await
        .unwrap()
        .is_none());
}

/// Bounds: every refusal is a 4xx (or an HL7 `AR`) with a reason, and
/// nothing is written.
#[tokio::test]
async fn out_of_bounds_ehr_input_is_refused_with_a_reason_and_writes_nothing() {
    let h = Harness::new("ehr-bounds").await;
    contact(&h).await;
    let before = h.table_items().await.len();

    // A timestamp at the end of i64's range is outside the replay window,
    // not an overflow.
    for timestamp in [i64::MIN, i64::MAX] {
        let body = appointment(
            "bound-1",
            "booked",
            "2026-12-10T10:00:00-05:00",
            "2026-11-30T12:00:00Z",
        );
        let response = optline_ehr_events::handle(
            signed_ehr_request(
                "/ehr/fhir/Appointment",
                "application/fhir+json",
                &body,
                timestamp,
            ),
            &h.ehr_events(),
            now(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{timestamp}");
    }

    // A notification carrying 87 appointments: refused whole.
    let mut bulk = fixtures::json(fixtures::FHIR_NOTIFICATION_R5);
    let template = bulk["entry"][1].clone();
    let entries = bulk["entry"].as_array_mut().unwrap();
    entries.truncate(1);
    for n in 0..87 {
        let mut entry = template.clone();
        entry["resource"]["id"] = json!(format!("bulk-{n}"));
        entries.push(entry);
    }
    let (status, body) = fhir(&h, &bulk).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("at most 20"),
        "{body}"
    );

    // meta.versionId that cannot order, and a lastUpdated that is no instant.
    let mut resource = fixtures::appointment(
        "bound-2",
        "booked",
        "2026-12-10T10:00:00-05:00",
        None,
        Some("Patient/pat-ehr-1"),
    );
    for (meta, field) in [
        (json!({"versionId": "-1"}), "versionId"),
        (json!({"lastUpdated": "yesterday"}), "lastUpdated"),
    ] {
        resource["meta"] = meta;
        let response = optline_ehr_events::handle(
            signed_ehr_request(
                "/ehr/fhir/Appointment",
                "application/fhir+json",
                &resource.to_string(),
                now().timestamp(),
            ),
            &h.ehr_events(),
            now(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let answer = body_json(&response);
        assert!(
            answer["error"].as_str().unwrap().contains(field),
            "{answer}"
        );
    }

    // HL7: a garbage or missing MSH-7, and a message of 300 segments.
    for sent in ["NOT-A-DATE", "20261399120000", ""] {
        let message = siu("S12", "MSGBOUND1", sent, "20261210100000-0500", PID);
        let (status, ack) = hl7(&h, &message).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{ack}");
        assert!(ack.contains("MSA|AR|"), "{sent:?}: {ack}");
        assert!(ack.contains("MSH-7"), "{sent:?}: {ack}");
        let condition = if sent.is_empty() {
            "101^Required field missing"
        } else {
            "102^Data type error"
        };
        assert!(ack.contains(condition), "{sent:?}: {ack}");
    }
    let mut huge = siu(
        "S12",
        "MSGBOUND2",
        "20261130120000-0500",
        "20261210100000-0500",
        PID,
    );
    for _ in 0..300 {
        huge.push_str("\rNTE|1||note");
    }
    let (status, ack) = hl7(&h, &huge).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{ack}");
    assert!(ack.contains("more than 200 segments"), "{ack}");

    assert_eq!(h.table_items().await.len(), before, "nothing was written");
}

/// A source added (or a secret rotated) in Secrets Manager works on its
/// first request: the refusal makes ehr-events re-read the sources, under
/// its own role, and handle the request again. A forged source is still
/// refused, and forged requests re-read at most once per interval.
#[tokio::test]
async fn a_source_added_to_the_secret_works_on_its_first_request() {
    let h = Harness::new("ehr-rotate").await;
    contact(&h).await;
    let deps = optline_api::reload::Reloadable::new(h.ehr_events());
    let secrets = h.clients_as("EhrEventsFunction").secrets;
    let reads = std::sync::atomic::AtomicUsize::new(0);
    let reload = || async {
        reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let json = optline_aws::read_secret_string(
            &secrets,
            &h.resources.ehr_sources_secret,
            "the EHR sources secret",
        )
        .await
        .map_err(|e| e.to_string())?;
        optline_ehr_events::verify::EhrSources::parse(&json)
    };

    // The deployer names a new source in the secret.
    let secret = "rotated-ehr-hmac-secret";
    h.secrets
        .put_secret_value()
        .secret_id(&h.resources.ehr_sources_secret)
        .secret_string(json!({"epic-new": {"hmac_sha256_secret": secret}}).to_string())
        .send()
        .await
        .unwrap();
    let signed = |source: &str, key: &str, body: &str| {
        optline_tests::signed_ehr_request_as(
            source,
            key,
            "/ehr/fhir/Appointment",
            "application/fhir+json",
            body,
            now().timestamp(),
        )
    };
    let body = appointment(
        "rot-1",
        "booked",
        "2026-12-10T10:00:00-05:00",
        "2026-11-30T12:00:00Z",
    );
    let response = optline_ehr_events::handle_reloading(
        &deps,
        signed("epic-new", secret, &body),
        now(),
        reload,
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        body_json(&response)
    );
    assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Forged: 401, at most one re-read per interval.
    for second in 0..4 {
        let response = optline_ehr_events::handle_reloading(
            &deps,
            signed("epic-new", "not-the-secret", &body),
            now() + Duration::seconds(60 + second),
            reload,
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 2);
}
