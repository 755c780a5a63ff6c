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
use optline_ports::{StepId, StepStore};
use optline_tests::{api_request, body_json, signed_ehr_request, Harness, EHR_SOURCE};
use serde_json::json;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 15, 0, 0).unwrap()
}

fn booked(id: &str) -> String {
    json!({
        "resourceType": "Appointment",
        "id": id,
        "status": "booked",
        "start": "2026-12-10T10:00:00-05:00",
        "participant": [{"actor": {"reference": "Patient/pat-ehr-1"}}]
    })
    .to_string()
}

async fn contact(h: &Harness) {
    let created = optline_consent_api::handle(
        api_request(
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
        let step = StepId::parse(&format!("appt-{id}-reminder")).unwrap();
        assert_eq!(
            h.store.step(&step).await.unwrap().is_some(),
            planned,
            "{id}"
        );
    }
    assert_eq!(EHR_SOURCE, "test-ehr");
}

fn appointment(id: &str, status: &str, start: &str, last_updated: &str) -> String {
    json!({
        "resourceType": "Appointment",
        "id": id,
        "meta": {"versionId": "1", "lastUpdated": last_updated},
        "status": status,
        "start": start,
        "participant": [
            {"actor": {"reference": "https://ehr.example/fhir/Patient/pat-ehr-1/_history/3"}},
            {"actor": {"reference": "Practitioner/dr-9"}}
        ]
    })
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
    let step = |id: &str| StepId::parse(&format!("appt-{id}-reminder")).unwrap();

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
