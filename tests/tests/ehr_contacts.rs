//! Contacts from the EHR against the local emulator: a FHIR `Patient` or an
//! HL7 PID creates and updates the contact, an Appointment may name its
//! patient by identifier only, and a changed number is a new number.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "integration tests: a failed step should stop the test loudly"
)]

use chrono::{DateTime, TimeZone, Utc};
use lambda_http::http::StatusCode;
use optline_policy::phone::E164;
use optline_ports::{
    AuditTrail, ConsentLedger, ContactDirectory, ContactId, NumberSource, StepStore,
};
use optline_tests::{body_json, body_text, fixtures, signed_ehr_request, Harness};
use serde_json::json;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 15, 0, 0).unwrap()
}

const MRN_SYSTEM: &str = "urn:oid:1.2.840.114350.1.13.0.1.7.5.737384.14";

fn patient(id: &str, mobile: &str) -> serde_json::Value {
    json!({
        "resourceType": "Patient", "id": id,
        "identifier": [{"use": "usual", "system": MRN_SYSTEM, "value": format!("MRN-{id}")}],
        "name": [{"family": "Rivera", "given": ["Ana"]}],
        "telecom": [
            {"system": "phone", "value": "(212) 555-0140", "use": "home", "rank": 1},
            {"system": "phone", "value": mobile, "use": "mobile", "rank": 2},
            {"system": "email", "value": "ana@example.org"}
        ],
        "birthDate": "1975-06-02",
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]}, "preferred": true}]
    })
}

async fn post(
    h: &Harness,
    path: &str,
    content_type: &str,
    body: &str,
) -> lambda_http::Response<lambda_http::Body> {
    optline_ehr_events::handle(
        signed_ehr_request(path, content_type, body, now().timestamp()),
        &h.ehr_events(),
        now(),
    )
    .await
}

#[tokio::test]
async fn a_patient_known_only_through_fhir_patient_gets_a_contact_and_its_booking_plans_a_reminder()
{
    let h = Harness::new("ehr-patient").await;
    let created = post(
        &h,
        "/ehr/fhir/Patient",
        "application/fhir+json",
        &patient("pat-fp-1", "+1 (917) 555-0123").to_string(),
    )
    .await;
    assert_eq!(
        created.status(),
        StatusCode::CREATED,
        "{}",
        body_json(&created)
    );
    assert_eq!(body_json(&created)["phone"], "+1******0123");
    let contact = h
        .store
        .contact(&ContactId::parse("pat-fp-1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        contact.phone.as_str(),
        "+19175550123",
        "the mobile, not the home line ranked first"
    );
    assert_eq!(contact.language.as_deref(), Some("es"));
    assert_eq!(
        contact.date_of_birth,
        chrono::NaiveDate::from_ymd_opt(1975, 6, 2)
    );
    let provenance = contact.phone_provenance.unwrap();
    assert_eq!(provenance.source, NumberSource::EhrDemographics);
    assert!(!provenance.given_by_patient);
    // The same Patient again changes nothing.
    let again = post(
        &h,
        "/ehr/fhir/Patient",
        "application/fhir+json",
        &patient("pat-fp-1", "+1 (917) 555-0123").to_string(),
    )
    .await;
    assert_eq!(body_json(&again)["result"], "unchanged");

    // The booking plans its reminder.
    let booked = fixtures::appointment(
        "fp-a1",
        "booked",
        "2026-12-10T10:00:00-05:00",
        None,
        Some("Patient/pat-fp-1"),
    );
    let planned = post(
        &h,
        "/ehr/fhir/Appointment",
        "application/fhir+json",
        &booked.to_string(),
    )
    .await;
    assert_eq!(
        planned.status(),
        StatusCode::CREATED,
        "{}",
        body_json(&planned)
    );

    // An Appointment that names the patient only by identifier finds them.
    let mut by_identifier =
        fixtures::appointment("fp-a2", "booked", "2026-12-11T10:00:00-05:00", None, None);
    by_identifier["participant"][0]["actor"] = json!({"type": "Patient", "identifier": {"system": MRN_SYSTEM, "value": "MRN-pat-fp-1"}, "display": "Ana Rivera"});
    let planned = post(
        &h,
        "/ehr/fhir/Appointment",
        "application/fhir+json",
        &by_identifier.to_string(),
    )
    .await;
    assert_eq!(
        planned.status(),
        StatusCode::CREATED,
        "{}",
        body_json(&planned)
    );
    // An identifier nobody holds is refused with its reason, nothing written.
    by_identifier["id"] = json!("fp-a3");
    by_identifier["participant"][0]["actor"]["identifier"]["value"] = json!("MRN-nobody");
    let refused = post(
        &h,
        "/ehr/fhir/Appointment",
        "application/fhir+json",
        &by_identifier.to_string(),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body_json(&refused)["error"]
        .as_str()
        .unwrap()
        .contains("send the Patient first"));

    // A notification carrying a new Patient and an Appointment for them.
    let mut bundle = fixtures::json(fixtures::FHIR_NOTIFICATION_R5);
    let mut appointment =
        fixtures::appointment("fp-a4", "booked", "2026-12-12T10:00:00-05:00", None, None);
    appointment["participant"][0]["actor"] =
        json!({"identifier": {"system": MRN_SYSTEM, "value": "MRN-pat-fp-2"}});
    let entries = bundle["entry"].as_array_mut().unwrap();
    entries.truncate(1);
    entries.push(
        json!({"fullUrl": "https://ehr.example/fhir/Appointment/fp-a4", "resource": appointment}),
    );
    entries.push(json!({"fullUrl": "https://ehr.example/fhir/Patient/pat-fp-2", "resource": patient("pat-fp-2", "917-555-0177")}));
    let answered = post(
        &h,
        "/ehr/fhir",
        "application/fhir+json",
        &bundle.to_string(),
    )
    .await;
    assert_eq!(
        answered.status(),
        StatusCode::OK,
        "{}",
        body_json(&answered)
    );
    let results = body_json(&answered)["results"].clone();
    assert_eq!(
        results[0]["answer"]["result"], "created",
        "the Patient goes first: {results}"
    );
    assert_eq!(results[1]["status"], 201, "{results}");
}

#[tokio::test]
async fn an_hl7_booking_for_a_new_patient_creates_the_contact_from_pid_and_plans_its_reminder() {
    let h = Harness::new("ehr-pid").await;
    let pid = "PID|1||pat-pid-1^^^RIVERSIDE^MR~77001^^^RIVERSIDE^PI||Doe^Jane||19800101|F|||||^PRN^PH^^1^212^5550140~^ORN^CP^^1^917^5550166|^WPN^PH^^1^212^5550199|SPA";
    let message = fixtures::siu(
        "S12",
        "MSGP0001",
        "20261201100000-0500",
        "20261210100000-0500",
        pid,
    );
    let answer = post(&h, "/ehr/hl7", "application/hl7-v2", &message).await;
    assert_eq!(answer.status(), StatusCode::OK, "{}", body_text(&answer));
    assert!(body_text(&answer).contains("MSA|AA|MSGP0001"));
    let contact = h
        .store
        .contact(&ContactId::parse("pat-pid-1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(contact.phone.as_str(), "+19175550166", "the cell phone");
    assert_eq!(contact.language.as_deref(), Some("es"));
    assert_eq!(contact.identifiers.len(), 2);
    let reminder = optline_tests::ehr_step("appt", "pat-pid-1", "APT-7001", "reminder");
    assert!(
        h.store.step(&reminder).await.unwrap().is_some(),
        "the reminder is planned"
    );

    // An ADT^A08 with a new cell number: the contact follows, and the
    // consent given for the old number lapses (the new number needs the
    // patient's own word).
    let granted = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts/pat-pid-1/consent",
            Some(json!({"action": "grant", "categories": ["appointments"], "channel": "staff",
                        "disclosure_text": "Texts about your appointments from Riverside Clinic. Reply STOP to opt out."})),
        ),
        &h.consent_api(),
        now(),
    )
    .await;
    assert_eq!(
        granted.status(),
        StatusCode::CREATED,
        "{}",
        body_json(&granted)
    );
    let adt = format!(
        "MSH|^~\\&|EPIC|RIVERSIDE|OPTLINE|OPTLINE|20261201110000-0500||ADT^A08^ADT_A01|MSGA0001|P|2.5\rEVN|A08|20261201110000-0500\r{}\r",
        pid.replace("^ORN^CP^^1^917^5550166", "^ORN^CP^^1^646^5550100")
    );
    let answer = post(&h, "/ehr/hl7", "application/hl7-v2", &adt).await;
    assert!(
        body_text(&answer).contains("MSA|AA|MSGA0001"),
        "{}",
        body_text(&answer)
    );
    let id = ContactId::parse("pat-pid-1").unwrap();
    let contact = h.store.contact(&id).await.unwrap().unwrap();
    assert_eq!(contact.phone.as_str(), "+16465550100");
    let old = E164::parse("+19175550166").unwrap();
    assert!(
        h.store.contacts_by_phone(&old).await.unwrap().is_empty(),
        "the old number no longer leads here"
    );
    assert_eq!(
        h.store.contacts_by_phone(&contact.phone).await.unwrap(),
        vec![id.clone()]
    );
    let events = h.store.consent_events(&id, &contact.phone).await.unwrap();
    let last = events.last().unwrap();
    assert_eq!(last.action, optline_policy::consent::ConsentAction::Revoke);
    assert!(last
        .source_record_id
        .as_deref()
        .unwrap()
        .starts_with("number_changed"));
    let chain = h.store.audit_chain(&id).await.unwrap();
    assert!(chain.iter().any(|r| r.content.action == "updated_from_ehr"
        && r.content
            .detail
            .as_deref()
            .unwrap()
            .contains("needs the patient's own consent")));
}

#[tokio::test]
async fn an_id_only_notification_is_fetched_from_the_sources_fhir_server_and_processed() {
    let h = Harness::new("ehr-id-only").await;
    let key = std::fs::read(
        optline_tests::repo_root().join("shared/aws/tests/fixtures/smart-test-key.pk8"),
    )
    .unwrap();
    let ehr =
        optline_tests::fhir_standin::FhirStandIn::start("optline-client", "optline-key-1", &key)
            .await;
    ehr.put(patient("pat-id-1", "917-555-0144"));
    ehr.put(fixtures::appointment(
        "id-a1",
        "booked",
        "2026-12-10T10:00:00-05:00",
        None,
        Some("Patient/pat-id-1"),
    ));
    let config: optline_aws::SmartConfig = serde_json::from_value(ehr.smart_config(&key)).unwrap();
    let mut deps = h.ehr_events();
    deps.fhir = Some(std::sync::Arc::new(
        optline_aws::SmartFhirReader::new(std::collections::BTreeMap::from([(
            optline_tests::EHR_SOURCE.to_owned(),
            config,
        )]))
        .unwrap(),
    ));
    // An R5 notification with id-only content: the focus and the patient.
    let mut bundle = fixtures::json(fixtures::FHIR_NOTIFICATION_R5);
    let entries = bundle["entry"].as_array_mut().unwrap();
    entries.truncate(1);
    entries[0]["resource"]["notificationEvent"] = json!([{"eventNumber": "7", "focus": {"reference": "https://ehr.example/fhir/Appointment/id-a1"}}]);
    entries.push(json!({"fullUrl": "https://ehr.example/fhir/Appointment/id-a1"}));
    entries.push(json!({"fullUrl": "https://ehr.example/fhir/Patient/pat-id-1"}));
    let answered = optline_ehr_events::handle(
        signed_ehr_request(
            "/ehr/fhir",
            "application/fhir+json",
            &bundle.to_string(),
            now().timestamp(),
        ),
        &deps,
        now(),
    )
    .await;
    assert_eq!(
        answered.status(),
        StatusCode::OK,
        "{}",
        body_json(&answered)
    );
    let results = body_json(&answered)["results"].clone();
    assert_eq!(results[0]["answer"]["result"], "created", "{results}");
    assert_eq!(results[1]["status"], 201, "{results}");
    assert_eq!(ehr.token_requests(), 1, "one token, cached for both reads");
    assert_eq!(ehr.reads(), 2);
    // Without a FHIR server for the source, the refusal says what to do.
    let answered = post(
        &h,
        "/ehr/fhir",
        "application/fhir+json",
        &bundle.to_string(),
    )
    .await;
    assert_eq!(answered.status(), StatusCode::MULTI_STATUS);
    assert!(body_text(&answered).contains("needs the source's FHIR server configured"));
}

#[tokio::test]
async fn a_reminder_that_cannot_be_texted_becomes_a_fallback_task_for_staff() {
    let h = Harness::new("ehr-fallback").await;
    // Known from the EHR only: a number, but no consent to text it.
    post(
        &h,
        "/ehr/fhir/Patient",
        "application/fhir+json",
        &patient("pat-fb-1", "917-555-0155").to_string(),
    )
    .await;
    let booked = fixtures::appointment(
        "fb-a1",
        "booked",
        "2026-12-10T10:00:00-05:00",
        None,
        Some("Patient/pat-fb-1"),
    );
    let planned = post(
        &h,
        "/ehr/fhir/Appointment",
        "application/fhir+json",
        &booked.to_string(),
    )
    .await;
    assert_eq!(
        planned.status(),
        StatusCode::CREATED,
        "{}",
        body_json(&planned)
    );
    let due: DateTime<Utc> = body_json(&planned)["planned"][0]["due_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let report = optline_sweep::sweep(&h.sweep(), due + chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(report.enqueued, 0, "{report:?}");
    // The staff queue holds the task, with what to do.
    let tasks: Vec<optline_ports::ReviewItem> = optline_ports::Casework::reviews(h.store.as_ref())
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.kind == "fallback")
        .collect();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert!(
        tasks[0].body.contains("call the patient"),
        "{}",
        tasks[0].body
    );
    assert_eq!(
        tasks[0].contact_ids,
        vec![ContactId::parse("pat-fb-1").unwrap()]
    );
    // Staff take it and close it, as themselves.
    let api = h.consent_api();
    let path = format!("/reviews/{}/resolve", tasks[0].id);
    let taken = optline_consent_api::handle(
        h.request_as(
            "sam.staff",
            "POST",
            &path,
            Some(json!({"action": "assign"})),
        ),
        &api,
        now(),
    )
    .await;
    assert_eq!(taken.status(), StatusCode::OK, "{}", body_json(&taken));
    let closed = optline_consent_api::handle(
        h.request_as(
            "sam.staff",
            "POST",
            &path,
            Some(json!({"action": "close", "reason": "called; confirmed for Thursday"})),
        ),
        &api,
        now(),
    )
    .await;
    assert_eq!(closed.status(), StatusCode::OK, "{}", body_json(&closed));
    // A patient who cannot verify their identity in the portal is called.
    let failed = json!({"id": "evt-vf-1", "type": "portal.verification_failed", "patient": "pat-fb-1", "subject": "results-551"}).to_string();
    let first = post(&h, "/ehr/events", "application/json", &failed).await;
    assert_eq!(first.status(), StatusCode::CREATED, "{}", body_json(&first));
    let again = post(&h, "/ehr/events", "application/json", &failed).await;
    assert_eq!(body_json(&again)["created"], false, "the same event once");
    let callbacks: Vec<optline_ports::ReviewItem> =
        optline_ports::Casework::reviews(h.store.as_ref())
            .await
            .unwrap()
            .into_iter()
            .filter(|i| i.rule == "portal.verification_failed")
            .collect();
    assert_eq!(callbacks.len(), 1);
    assert!(callbacks[0].body.contains("call the patient"));
    // And it is announced for other systems.
    let stream = h.stream_event().await;
    let announced = serde_json::to_string(&stream).unwrap();
    assert!(
        announced.contains("optline.fallback.task"),
        "the fallback task is in the outbox"
    );
}
