//! The legal basis comes from recorded facts: consent events, and where a
//! contact's number came from. An unstated fact never widens it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use optline_dispatch::Outcome;
use optline_policy::decision::Urgency;
use optline_policy::template::review::{Action, ReviewPolicy};
use optline_ports::{
    AuditTrail, ContactDirectory, ContactId, NumberSource, PhoneProvenance, Step, StepId,
    StepStatus, StepStore,
};
use optline_tests::{body_json, signed_ehr_request, Harness};
use serde_json::json;

/// Monday 2026-12-07, 10:00 in New York.
fn monday() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 15, 0, 0).unwrap()
}

async fn contact(h: &Harness, id: &str, phone: &str, provenance: Option<serde_json::Value>) {
    let mut body = json!({"id": id, "phone": phone, "time_zone": "America/New_York"});
    if let Some(p) = provenance {
        body["phone_provenance"] = p;
    }
    let created = optline_consent_api::handle(
        h.api_request("POST", "/contacts", Some(body)),
        &h.consent_api(),
        monday() - Duration::days(10),
    )
    .await;
    assert_eq!(created.status(), 201, "{}", body_json(&created));
}

async fn book(h: &Harness, appointment: &str, patient: &str) {
    let body = optline_tests::fixtures::appointment(
        appointment,
        "booked",
        "2026-12-10T10:00:00-05:00",
        Some("2026-12-01T12:00:00Z"),
        Some(&format!("Patient/{patient}")),
    )
    .to_string();
    let at = monday() - Duration::days(3);
    let booked = optline_ehr_events::handle(
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
    assert_eq!(booked.status(), 201, "{}", body_json(&booked));
}

#[tokio::test]
async fn a_contact_with_no_consent_and_no_qualifying_provenance_receives_nothing_with_the_reason() {
    let h = Harness::new("basis-none").await;
    // No consent, and a number the EHR's demographics hold (not the
    // patient's own word); and one with nothing recorded about its number.
    contact(
        &h,
        "lb-ehr",
        "+12125550701",
        Some(json!({"source": "ehr_demographics", "evidence": "PID-13", "at": "2026-11-01T00:00:00Z"})),
    )
    .await;
    contact(&h, "lb-none", "+12125550702", None).await;
    // Given by the patient at intake: the treatment basis applies.
    contact(
        &h,
        "lb-intake",
        "+12125550703",
        Some(json!({"source": "patient_intake", "evidence": "registration form v3", "at": "2026-11-01T00:00:00Z"})),
    )
    .await;
    for (appointment, patient) in [
        ("lb-a1", "lb-ehr"),
        ("lb-a2", "lb-none"),
        ("lb-a3", "lb-intake"),
    ] {
        book(&h, appointment, patient).await;
    }
    let report = optline_sweep::sweep(&h.sweep(), monday()).await.unwrap();
    assert_eq!((report.enqueued, report.excluded), (1, 2), "{report:?}");
    for (appointment, patient) in [("lb-a1", "lb-ehr"), ("lb-a2", "lb-none")] {
        let step = h
            .store
            .step(&optline_tests::ehr_step(
                "appt",
                patient,
                appointment,
                "reminder",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(step.status, StepStatus::Suppressed, "{patient}");
        let chain = h
            .store
            .audit_chain(&ContactId::parse(patient).unwrap())
            .await
            .unwrap();
        let decision = chain.iter().find(|r| r.content.kind == "decision").unwrap();
        assert_eq!(decision.content.action, "suppress");
        assert!(
            decision
                .content
                .reasons
                .contains(&"segment.consent_scope".to_owned()),
            "{patient}: {:?}",
            decision.content.reasons
        );
        let why = decision
            .content
            .rules
            .iter()
            .map(|r| r.detail.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        assert!(why.contains("no consent recorded"), "{patient}: {why}");
    }
    // The one whose number the patient gave is sent on the treatment basis.
    let batch = h.receive_dispatch_batch(10).await;
    assert_eq!(batch.records.len(), 1);
    let response = optline_dispatch::handle_batch(batch.clone(), &h.dispatch(), monday()).await;
    assert!(response.batch_item_failures.is_empty());
    let chain = h
        .store
        .audit_chain(&ContactId::parse("lb-intake").unwrap())
        .await
        .unwrap();
    let sent = chain.iter().find(|r| r.content.action == "send").unwrap();
    assert_eq!(sent.content.legal_basis.as_deref(), Some("hipaa_treatment"));
    // Nothing went to the other two numbers.
    let texts = h.sns_sms().await;
    assert!(!texts
        .iter()
        .any(|t| t.phone_number == "+12125550701" || t.phone_number == "+12125550702"));
}

#[tokio::test]
async fn a_billing_reminder_is_routine_and_survives_a_late_sweep_while_a_reminder_is_time_sensitive(
) {
    let h = Harness::new("basis-urgency").await;
    contact(&h, "lb-bill", "+12125550711", None).await;
    let granted = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts/lb-bill/preferences",
            Some(json!({"categories": {"billing": true, "appointments": true}, "channel": "web_form",
                        "disclosure_text": "Riverside Clinic may text you about bills and appointments. Reply STOP to opt out."})),
        ),
        &h.consent_api(),
        monday() - Duration::days(5),
    )
    .await;
    assert_eq!(granted.status(), 201);
    let at = monday() - Duration::days(1);
    let event = json!({"id": "evt-bill-1", "type": "billing.due", "patient": "lb-bill", "subject": "stmt-1",
                       "link": "https://portal.riverside.example/b/1", "due_at": at.to_rfc3339()});
    let planned = optline_ehr_events::handle(
        signed_ehr_request(
            "/ehr/events",
            "application/json",
            &event.to_string(),
            at.timestamp(),
        ),
        &h.ehr_events(),
        at,
    )
    .await;
    assert_eq!(planned.status(), 201, "{}", body_json(&planned));
    book(&h, "lb-a9", "lb-bill").await;
    let bill = h
        .store
        .step(&optline_tests::ehr_step(
            "bill", "lb-bill", "stmt-1", "reminder",
        ))
        .await
        .unwrap()
        .unwrap();
    let reminder = h
        .store
        .step(&optline_tests::ehr_step(
            "appt", "lb-bill", "lb-a9", "reminder",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bill.urgency, Urgency::Routine);
    assert_eq!(reminder.urgency, Urgency::TimeSensitive);
    // A sweep that runs a day late still sends the statement reminder.
    let report = optline_sweep::sweep(&h.sweep(), monday()).await.unwrap();
    assert!(report.enqueued >= 1, "{report:?}");
    let bill = h.store.step(&bill.id).await.unwrap().unwrap();
    assert_eq!(bill.status, StepStatus::Queued);
}

/// Publishes `draft` through the library, with a reviewer for every role
/// its tier needs.
async fn publish(h: &Harness, draft: serde_json::Value, now: DateTime<Utc>) -> u32 {
    let lint = optline_policy::template::lint::LintConfig::embedded().unwrap();
    let library = optline_library::Library::new(h.store.as_ref(), ReviewPolicy::default(), lint);
    let author = h.actor("bo.compliance").await;
    let draft: optline_library::Draft = serde_json::from_value(draft).unwrap();
    let id = draft.id.clone();
    let view = library.create(draft, &author, now).await.unwrap();
    let version = view.stored.version.version;
    let submitted = library
        .act(&id, version, &Action::Submit, &author, now)
        .await
        .unwrap();
    for role in submitted.missing_approvals.clone() {
        let reviewer = h.actor(optline_tests::reviewer_for(role)).await;
        library
            .act(&id, version, &Action::Approve { role }, &reviewer, now)
            .await
            .unwrap();
    }
    let operator = h.actor("olu.ops").await;
    library
        .act(&id, version, &Action::Publish, &operator, now)
        .await
        .unwrap();
    version
}

#[tokio::test]
async fn a_healthcare_exempt_step_is_capped_at_one_a_day_and_three_a_week() {
    let h = Harness::new("basis-exempt").await;
    let version = publish(
        &h,
        json!({
            "id": "exempt_lab_ready", "program": "*", "purpose": "lab_results_ready",
            "category": "lab_results", "class": "transactional", "locale": "en-US",
            "body": "{{program}}: you have a new message in your patient portal. Questions: {{help_contact}}. Reply STOP to opt out.",
            "variables": [
                {"name": "program", "kind": "text", "max_len": 20, "data_class": "identifier", "charset": "gsm7_basic"},
                {"name": "help_contact", "kind": "text", "max_len": 12, "data_class": "identifier", "charset": "gsm7_basic"}
            ],
            "healthcare_exempt": true, "segment_budget": 1,
            "change_reason": "lab notices under the FCC healthcare exemption"
        }),
        monday() - Duration::days(30),
    )
    .await;
    // No consent recorded; the patient gave the number at intake.
    let patient = optline_ports::Contact {
        id: ContactId::parse("lb-exempt").unwrap(),
        phone: optline_policy::phone::E164::parse("+12125550721").unwrap(),
        program: "clinic".to_owned(),
        time_zone: Some("America/New_York".to_owned()),
        address_state: None,
        minor: false,
        date_of_birth: None,
        phone_provenance: Some(PhoneProvenance {
            source: NumberSource::PatientIntake,
            given_by_patient: true,
            evidence: Some("registration form v3".to_owned()),
            at: monday() - Duration::days(60),
        }),
        language: None,
        identifiers: Vec::new(),
        created_at: monday() - Duration::days(60),
    };
    h.store.create_contact(&patient).await.unwrap();
    let step = |n: u32, due: DateTime<Utc>| Step {
        id: StepId::parse(&format!("lab-{n}")).unwrap(),
        contact_id: patient.id.clone(),
        program: "clinic".to_owned(),
        category: "lab_results".to_owned(),
        class: optline_policy::MessageClass::Transactional,
        purpose: "lab_results_ready".to_owned(),
        template_id: "exempt_lab_ready".to_owned(),
        template_version: version,
        variables: Default::default(),
        subject: format!("lab-order-{n}"),
        due_at: due,
        expires_at: Some(due + Duration::days(14)),
        urgency: Urgency::Routine,
        healthcare_exempt: true,
        status: StepStatus::Queued,
        source_event: None,
        source_version: None,
        arm: None,
        segments: None,
        audience: optline_ports::Audience::Everyone,
    };
    let dispatch = |n: u32, at: DateTime<Utc>| {
        let h = h.clone();
        async move {
            let s = step(n, at);
            assert!(h.store.put_step(&s).await.unwrap());
            optline_dispatch::dispatch_step(&s.id, &h.dispatch(), at)
                .await
                .unwrap()
        }
    };
    // Monday: the first goes out on the exemption; a second the same day
    // waits for the next day.
    let first = dispatch(1, monday()).await;
    assert!(matches!(first, Outcome::Sent(_)), "{first:?}");
    let second = dispatch(2, monday() + Duration::hours(2)).await;
    assert!(matches!(second, Outcome::Deferred(_)), "{second:?}");
    // Tuesday and Wednesday: one each. Thursday: the week's three are used.
    let third = dispatch(3, monday() + Duration::days(1)).await;
    assert!(matches!(third, Outcome::Sent(_)), "{third:?}");
    let fourth = dispatch(4, monday() + Duration::days(2)).await;
    assert!(matches!(fourth, Outcome::Sent(_)), "{fourth:?}");
    let fifth = dispatch(5, monday() + Duration::days(3)).await;
    assert!(matches!(fifth, Outcome::Deferred(_)), "{fifth:?}");
    let chain = h.store.audit_chain(&patient.id).await.unwrap();
    let sends: Vec<_> = chain
        .iter()
        .filter(|r| r.content.action == "send")
        .collect();
    assert_eq!(sends.len(), 3);
    assert!(sends
        .iter()
        .all(|r| r.content.legal_basis.as_deref() == Some("fcc_healthcare_exempt")));
    let deferred = chain
        .iter()
        .filter(|r| r.content.action == "defer")
        .flat_map(|r| r.content.rules.iter())
        .filter(|r| r.id == "caps.fcc_healthcare_exempt")
        .count();
    assert_eq!(deferred, 2, "both deferrals name the exemption's cap");
}
