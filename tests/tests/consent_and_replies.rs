//! The consent ledger and inbound replies, against the local emulator with
//! real signed Twilio requests and real SNS events.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "integration tests: a failed step should stop the test loudly"
)]

use std::sync::Arc;

use aws_lambda_events::event::sns::{SnsEvent, SnsMessage, SnsRecord};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use chrono::{DateTime, Duration, TimeZone, Utc};
use lambda_http::http::StatusCode;
use lambda_http::Body;
use optline_policy::consent::{standing, ConsentStanding};
use optline_policy::phone::E164;
use optline_ports::{
    consent_facts, AuditTrail, Casework, ConsentLedger, ContactDirectory, ContactId,
};
use optline_tests::{
    body_json, body_text, signed_form_request, twilio_inbound_request, twilio_params, twilio_sign,
    Harness, PUBLIC_BASE_URL, TWILIO_AUTH_TOKEN,
};
use serde_json::json;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 18, 0, 0).unwrap()
}

async fn contact(h: &Harness, id: &str, phone: &str) {
    let response = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts",
            Some(json!({"id": id, "phone": phone, "time_zone": "America/New_York", "address_state": "NY"})),
        ),
        &h.consent_api(),
        t0() - Duration::days(10),
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::CREATED,
        "{}",
        body_text(&response)
    );
}

async fn grant(h: &Harness, id: &str, categories: &[&str], at: DateTime<Utc>) -> StatusCode {
    optline_consent_api::handle(
        h.api_request(
            "POST",
            &format!("/contacts/{id}/consent"),
            Some(json!({
                "action": "grant", "categories": categories, "channel": "web_form", "disclosure_text": "I agree to receive texts from Riverside Clinic. Reply STOP to opt out.",
                "at": at
            })),
        ),
        &h.consent_api(),
        at,
    )
    .await
    .status()
}

async fn phone_standing(h: &Harness, phone: &str, now: DateTime<Utc>) -> ConsentStanding {
    let phone = E164::parse(phone).unwrap();
    let events = h.store.phone_consent_events(&phone).await.unwrap();
    standing(&consent_facts(&events), "clinic", "appointments", now)
}

async fn contact_standing(
    h: &Harness,
    id: &str,
    category: &str,
    now: DateTime<Utc>,
) -> ConsentStanding {
    let contact = h
        .store
        .contact(&ContactId::parse(id).unwrap())
        .await
        .unwrap()
        .unwrap();
    let events = h
        .store
        .consent_events(&contact.id, &contact.phone)
        .await
        .unwrap();
    standing(&consent_facts(&events), "clinic", category, now)
}

#[tokio::test]
async fn unauthenticated_and_malformed_api_calls_get_a_4xx_and_store_nothing() {
    let h = Harness::new("badinput").await;
    let api = h.consent_api();
    let no_token = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/contacts")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"id": "p1", "phone": "+14155550100"}).to_string(),
        ))
        .unwrap();
    assert_eq!(
        optline_consent_api::handle(no_token, &api, t0())
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );

    let cases = [
        (Body::from("{not json"), StatusCode::BAD_REQUEST),
        (
            Body::from(json!({"id": "p1", "phone": "+14155550100", "shoe_size": 9}).to_string()),
            StatusCode::BAD_REQUEST,
        ),
        (
            Body::from(json!({"id": "p1", "phone": "12345"}).to_string()),
            StatusCode::BAD_REQUEST,
        ),
        (
            Body::from(
                json!({"id": "p1", "phone": "+14155550100", "address_state": "ZZ"}).to_string(),
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            Body::from(
                json!({"id": "p1", "phone": "+14155550100", "time_zone": "Mars/Olympus"})
                    .to_string(),
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            Body::from("x".repeat(70_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (body, expected) in cases {
        let request = lambda_http::http::Request::builder()
            .method("POST")
            .uri("/contacts")
            .header(
                "authorization",
                format!("Bearer {}", h.token(optline_tests::DEFAULT_USER)),
            )
            .header("content-type", "application/json")
            .body(body)
            .unwrap();
        let response = optline_consent_api::handle(request, &api, t0()).await;
        assert_eq!(response.status(), expected, "{}", body_text(&response));
        assert!(body_json(&response)["error"].is_string());
        assert!(
            !body_text(&response).contains("12345"),
            "errors never echo the input"
        );
    }
    let get =
        optline_consent_api::handle(h.api_request("GET", "/contacts/p1", None), &api, t0()).await;
    assert_eq!(get.status(), StatusCode::NOT_FOUND, "nothing was stored");

    // A grant without the disclosure text is refused: entering a number is not consent.
    contact(&h, "p2", "+14155550101").await;
    let response = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts/p2/consent",
            Some(json!({"action": "grant", "channel": "staff"})),
        ),
        &api,
        t0(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        contact_standing(&h, "p2", "appointments", t0()).await,
        ConsentStanding::None
    );
}

#[tokio::test]
async fn twilio_webhooks_with_a_bad_signature_wrong_url_or_tampered_body_get_403_and_store_nothing()
{
    let h = Harness::new("signatures").await;
    contact(&h, "p1", "+14155550111").await;
    let params = twilio_params("SM00000000000000000000000000000001", "+14155550111", "STOP");
    let refs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let good_url = format!("{PUBLIC_BASE_URL}/twilio/inbound");

    let wrong_url = twilio_sign(
        TWILIO_AUTH_TOKEN,
        "https://attacker.example/twilio/inbound",
        &refs,
    );
    let wrong_port = twilio_sign(
        TWILIO_AUTH_TOKEN,
        "https://optline.example.test:8443/twilio/inbound",
        &refs,
    );
    let wrong_token = twilio_sign("not-the-token", &good_url, &refs);
    let good = twilio_sign(TWILIO_AUTH_TOKEN, &good_url, &refs);
    let mut tampered = params.clone();
    for (k, v) in &mut tampered {
        if k == "From" {
            *v = "+14155550199".to_owned();
        }
    }
    for (form, signature) in [
        (params.clone(), wrong_url),
        (params.clone(), wrong_port),
        (params.clone(), wrong_token),
        (params.clone(), String::new()),
        (tampered, good.clone()),
    ] {
        let response = optline_inbound::handle(
            signed_form_request("/twilio/inbound", &form, &signature),
            &h.inbound(),
            t0(),
        )
        .await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
    }
    assert_eq!(
        phone_standing(&h, "+14155550111", t0()).await,
        ConsentStanding::None,
        "nothing stored"
    );

    // The explicit default port is the same URL to Twilio's helper libraries.
    let with_port = twilio_sign(
        TWILIO_AUTH_TOKEN,
        "https://optline.example.test:443/twilio/inbound",
        &refs,
    );
    let response = optline_inbound::handle(
        signed_form_request("/twilio/inbound", &params, &with_port),
        &h.inbound(),
        t0(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(matches!(
        phone_standing(&h, "+14155550111", t0() + Duration::seconds(1)).await,
        ConsentStanding::Revoked { .. }
    ));

    // A content type that is neither a form nor JSON is 415 (JSON
    // webhooks are covered in twilio_webhooks.rs).
    let request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/twilio/inbound")
        .header("content-type", "text/plain")
        .header("x-twilio-signature", good)
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(
        optline_inbound::handle(request, &h.inbound(), t0())
            .await
            .status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
}

#[tokio::test]
async fn a_stop_from_a_phone_shared_by_two_patients_suppresses_both_and_confirms_once() {
    let h = Harness::new("sharedphone").await;
    contact(&h, "mother", "+14155550122").await;
    contact(&h, "child", "(415) 555-0122").await;
    assert_eq!(
        grant(&h, "mother", &["appointments"], t0() - Duration::days(2)).await,
        StatusCode::CREATED
    );
    assert_eq!(
        grant(&h, "child", &["appointments"], t0() - Duration::days(2)).await,
        StatusCode::CREATED
    );

    let sid = "SM00000000000000000000000000000002";
    let first = optline_inbound::handle(
        twilio_inbound_request(sid, "+14155550122", "STOP"),
        &h.inbound(),
        t0(),
    )
    .await;
    assert!(body_text(&first).contains("<Message>Riverside Clinic: You are unsubscribed"));
    for retry in 1..=3 {
        let again = optline_inbound::handle(
            twilio_inbound_request(sid, "+14155550122", "STOP"),
            &h.inbound(),
            t0() + Duration::seconds(retry),
        )
        .await;
        assert_eq!(
            body_text(&again),
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>"
        );
    }
    let later = t0() + Duration::minutes(1);
    for id in ["mother", "child"] {
        assert!(
            matches!(
                contact_standing(&h, id, "appointments", later).await,
                ConsentStanding::Revoked { .. }
            ),
            "{id}"
        );
        let chain = h
            .store
            .audit_chain(&ContactId::parse(id).unwrap())
            .await
            .unwrap();
        let actions: Vec<String> = chain
            .iter()
            .map(|r| format!("{}/{}", r.content.kind, r.content.action))
            .collect();
        assert_eq!(
            actions
                .iter()
                .filter(|a| *a == "reply/opt_out_confirmation")
                .count(),
            1,
            "{id}: {actions:?}"
        );
        assert_eq!(
            actions.iter().filter(|a| *a == "consent/revoke").count(),
            1,
            "{id}: {actions:?}"
        );
    }
    let events = h
        .store
        .phone_consent_events(&E164::parse("+14155550122").unwrap())
        .await
        .unwrap();
    assert_eq!(
        events.len(),
        1,
        "one revocation however often the webhook is retried"
    );
}

#[tokio::test]
async fn start_after_stop_restores_only_what_was_revoked() {
    let h = Harness::new("reoptin").await;
    contact(&h, "p1", "+14155550133").await;
    assert_eq!(
        grant(&h, "p1", &["appointments"], t0() - Duration::days(2)).await,
        StatusCode::CREATED
    );
    optline_inbound::handle(
        twilio_inbound_request(
            "SM00000000000000000000000000000003",
            "+14155550133",
            "Stop texting me",
        ),
        &h.inbound(),
        t0(),
    )
    .await;
    assert!(matches!(
        contact_standing(&h, "p1", "appointments", t0() + Duration::seconds(1)).await,
        ConsentStanding::Revoked { .. }
    ));

    let start = optline_inbound::handle(
        twilio_inbound_request(
            "SM00000000000000000000000000000004",
            "+14155550133",
            "START",
        ),
        &h.inbound(),
        t0() + Duration::minutes(10),
    )
    .await;
    assert!(
        body_text(&start).contains("You are subscribed"),
        "{}",
        body_text(&start)
    );
    let after = t0() + Duration::minutes(11);
    assert!(matches!(
        contact_standing(&h, "p1", "appointments", after).await,
        ConsentStanding::Granted { .. }
    ));
    assert_eq!(
        contact_standing(&h, "p1", "marketing", after).await,
        ConsentStanding::None,
        "never granted, never restored"
    );
}

#[tokio::test]
async fn help_answers_with_every_ctia_element_and_sends_nothing_twice() {
    let h = Harness::new("help").await;
    let sid = "SM00000000000000000000000000000005";
    let help = body_text(
        &optline_inbound::handle(
            twilio_inbound_request(sid, "+14155550144", "help"),
            &h.inbound(),
            t0(),
        )
        .await,
    )
    .replace("&amp;", "&");
    for element in [
        "Riverside Clinic",
        "555-0100",
        "Up to 3 msgs per appointment",
        "Msg & data rates may apply",
        "Reply STOP to opt out",
    ] {
        assert!(help.contains(element), "HELP lacks {element}: {help}");
    }
    let again = body_text(
        &optline_inbound::handle(
            twilio_inbound_request(sid, "+14155550144", "help"),
            &h.inbound(),
            t0(),
        )
        .await,
    );
    assert!(!again.contains("<Message>"));
    assert_eq!(
        phone_standing(&h, "+14155550144", t0()).await,
        ConsentStanding::None,
        "HELP is not an opt-out"
    );
}

#[tokio::test]
async fn a_doubtful_revocation_suppresses_and_goes_to_human_review() {
    let h = Harness::new("doubtful").await;
    contact(&h, "p1", "+14155550155").await;
    // No template with reply codes was sent: the review is queued anyway.
    let answer = optline_inbound::handle(
        twilio_inbound_request(
            "SM00000000000000000000000000000006",
            "+14155550155",
            "I want to cancel my appointment",
        ),
        &h.inbound(),
        t0(),
    )
    .await;
    // The one confirmation confirms the opt-out and asks about its scope.
    let twiml = body_text(&answer);
    assert!(twiml.contains("You are unsubscribed"), "{twiml}");
    assert!(
        twiml.contains("If you only meant to cancel or change an appointment, reply START"),
        "{twiml}"
    );
    assert!(matches!(
        phone_standing(&h, "+14155550155", t0() + Duration::seconds(1)).await,
        ConsentStanding::Revoked { .. }
    ));
    let reviews = h.store.reviews().await.unwrap();
    assert_eq!(reviews.len(), 1);
    assert_eq!(reviews[0].kind, "doubtful_revocation");
    assert_eq!(reviews[0].phone_masked, "+1******0155");
    let listed = optline_consent_api::handle(
        h.api_request("GET", "/reviews", None),
        &h.consent_api(),
        t0(),
    )
    .await;
    assert_eq!(
        body_json(&listed)["reviews"].as_array().map(Vec::len),
        Some(1)
    );

    // A person reads it: the patient meant the appointment, not the texts.
    // Restoring needs a reason and a casework group; the restore reverses
    // the revocation and names the person from their token; a second
    // answer to the same item is refused, whoever gives it.
    let item = reviews[0].id.clone();
    let resolve = |user: &str, body: serde_json::Value| {
        h.request_as(
            user,
            "POST",
            &format!("/reviews/{item}/resolve"),
            Some(body),
        )
    };
    let at = t0() + Duration::minutes(5);
    let api = h.consent_api();
    let no_reason = optline_consent_api::handle(
        resolve(
            "ana.compliance",
            json!({"action": "restore", "reason": " "}),
        ),
        &api,
        at,
    )
    .await;
    assert_eq!(no_reason.status(), StatusCode::BAD_REQUEST);
    let clinician = optline_consent_api::handle(
        resolve(
            "kim.clinical",
            json!({"action": "restore", "reason": "meant the appointment"}),
        ),
        &api,
        at,
    )
    .await;
    assert_eq!(clinician.status(), StatusCode::FORBIDDEN);
    let wrong = optline_consent_api::handle(
        resolve(
            "ana.compliance",
            json!({"action": "close", "reason": "done"}),
        ),
        &api,
        at,
    )
    .await;
    assert_eq!(
        wrong.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        body_json(&wrong)
    );
    let restored = optline_consent_api::handle(
        resolve("ana.compliance", json!({"action": "restore", "reason": "called back: they meant only Tuesday's appointment"})),
        &api,
        at,
    )
    .await;
    assert_eq!(
        restored.status(),
        StatusCode::OK,
        "{}",
        body_json(&restored)
    );
    let resolved = body_json(&restored);
    assert_eq!(resolved["resolution"]["outcome"], "restored");
    assert!(resolved["resolution"]["by"]
        .as_str()
        .unwrap()
        .starts_with("Ana Ruiz <cognito:"));
    assert!(!matches!(
        phone_standing(&h, "+14155550155", at + Duration::seconds(1)).await,
        ConsentStanding::Revoked { .. }
    ));
    let again = optline_consent_api::handle(
        resolve("sam.staff", json!({"action": "confirm_opt_out"})),
        &api,
        at,
    )
    .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    let open = optline_consent_api::handle(h.api_request("GET", "/reviews", None), &api, at).await;
    assert_eq!(body_json(&open)["reviews"], json!([]));
    let chain = h
        .store
        .audit_chain(&optline_ports::ContactId::parse("p1").unwrap())
        .await
        .unwrap();
    let record = chain.iter().find(|r| r.content.kind == "review").unwrap();
    assert_eq!(record.content.action, "restored");
    assert!(record
        .content
        .detail
        .as_deref()
        .unwrap()
        .contains("Ana Ruiz <cognito:"));
    assert!(record.content.consent_event_id.is_some());

    // "Stop by at 3pm?" is not a revocation at all.
    optline_inbound::handle(
        twilio_inbound_request(
            "SM00000000000000000000000000000007",
            "+14155550166",
            "Stop by at 3pm?",
        ),
        &h.inbound(),
        t0(),
    )
    .await;
    assert_eq!(
        phone_standing(&h, "+14155550166", t0() + Duration::seconds(1)).await,
        ConsentStanding::None
    );
}

#[tokio::test]
async fn a_stop_racing_a_grant_never_resurrects_consent() {
    let h = Harness::new("race").await;
    contact(&h, "p1", "+14155550177").await;
    // The grant's evidence (the form) predates the STOP; both are written at
    // the same moment, in either order: the revocation must win.
    for round in 0..5 {
        let sid = format!("SM0000000000000000000000000000010{round}");
        let stop_at = t0() + Duration::minutes(round);
        let inbound = h.inbound();
        let (g, _) = tokio::join!(
            grant(&h, "p1", &["appointments"], stop_at - Duration::seconds(30)),
            optline_inbound::handle(
                twilio_inbound_request(&sid, "+14155550177", "STOP"),
                &inbound,
                stop_at
            ),
        );
        assert_eq!(g, StatusCode::CREATED);
        assert!(
            matches!(
                contact_standing(&h, "p1", "appointments", stop_at + Duration::seconds(1)).await,
                ConsentStanding::Revoked { .. }
            ),
            "round {round}"
        );
    }
}

#[tokio::test]
async fn aws_two_way_sms_by_sns_and_by_sqs_records_stop_and_answers_help_through_the_compliance_lane(
) {
    let h = Harness::new("twoway").await;
    contact(&h, "p1", "+14155550188").await;
    let payload = |id: &str, body: &str| {
        json!({
            "originationNumber": "+14155550188",
            "destinationNumber": "+15005550006",
            "messageKeyword": "KEYWORD_123456789012",
            "messageBody": body,
            "inboundMessageId": id,
            "previousPublishedMessageId": "wJalrXUtnFEMI"
        })
        .to_string()
    };
    // HELP through an SNS event.
    let mut sns = SnsEvent::default();
    let mut record = SnsRecord::default();
    let mut message = SnsMessage::default();
    message.message = payload("cae173d2-66b9-564c-8309-21f858e9fb84", "HELP");
    record.sns = message;
    sns.records = vec![record.clone(), record];
    let before = h.sns_sms().await.len();
    optline_inbound::handle_two_way_sns(sns, &h.inbound_as("InboundTwoWayFunction"), t0())
        .await
        .unwrap();
    let sent: Vec<_> = h
        .sns_sms()
        .await
        .into_iter()
        .skip(before)
        .filter(|s| s.phone_number == "+14155550188")
        .collect();
    assert_eq!(
        sent.len(),
        1,
        "one HELP answer for a delivered-twice message: {sent:?}"
    );
    assert!(sent[0].message.contains("Msg & data rates may apply"));

    // An SNS delivery with an undecodable record: the good one is handled,
    // the invocation fails (so Lambda's retries end in the dead-letter
    // queue with the event), and a retry sends nothing twice.
    let mut mixed = SnsEvent::default();
    let mut good = SnsRecord::default();
    good.sns.message = payload("cae173d2-66b9-564c-8309-21f858e9fb85", "INFO");
    let mut bad = SnsRecord::default();
    bad.sns.message = "{\"hello\": 1}".to_owned();
    mixed.records = vec![good, bad];
    let before = h.sns_sms().await.len();
    for _ in 0..2 {
        let result = optline_inbound::handle_two_way_sns(
            mixed.clone(),
            &h.inbound_as("InboundTwoWayFunction"),
            t0(),
        )
        .await;
        assert!(
            matches!(
                result,
                Err(optline_inbound::two_way::TwoWayError::Undecodable(_))
            ),
            "{result:?}"
        );
    }
    assert_eq!(
        h.sns_sms().await.len() - before,
        1,
        "the good record answered once"
    );

    // STOP through SQS, wrapped in the SNS envelope, plus one undecodable message.
    let envelope = json!({"Type": "Notification", "MessageId": "m1", "Message": payload("d3c4b5a6-0000-4000-8000-000000000001", "Stop")}).to_string();
    let mut good = SqsMessage::default();
    good.message_id = Some("good".to_owned());
    good.body = Some(envelope);
    let mut bad = SqsMessage::default();
    bad.message_id = Some("bad".to_owned());
    bad.body = Some("{\"hello\": 1}".to_owned());
    let mut batch = SqsEvent::default();
    batch.records = vec![good, bad];
    let response =
        optline_inbound::handle_two_way_sqs(batch, &h.inbound_as("InboundTwoWayFunction"), t0())
            .await;
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, vec!["bad".to_owned()]);
    assert!(matches!(
        phone_standing(&h, "+14155550188", t0() + Duration::seconds(1)).await,
        ConsentStanding::Revoked { .. }
    ));
}

#[tokio::test]
async fn a_revocation_taken_by_staff_is_applied_at_once_and_tracked_against_its_deadline() {
    let h = Harness::new("staffrevoke").await;
    contact(&h, "p1", "+14155550199").await;
    grant(&h, "p1", &["appointments"], t0() - Duration::days(3)).await;
    let received = Utc.with_ymd_and_hms(2026, 11, 18, 15, 0, 0).unwrap();
    let created = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts/p1/revocations",
            Some(json!({"channel": "staff", "received_at": received})),
        ),
        &h.consent_api(),
        received + Duration::hours(1),
    )
    .await;
    assert_eq!(
        created.status(),
        StatusCode::CREATED,
        "{}",
        body_text(&created)
    );
    let created = body_json(&created);
    assert_eq!(
        created["deadline"], "2026-12-03T23:59:59Z",
        "ten business days, Thanksgiving skipped"
    );
    assert!(matches!(
        contact_standing(&h, "p1", "appointments", received + Duration::hours(2)).await,
        ConsentStanding::Revoked { .. }
    ));

    let pending = optline_consent_api::handle(
        h.api_request("GET", "/revocations?status=pending", None),
        &h.consent_api(),
        received + Duration::days(1),
    )
    .await;
    assert_eq!(
        body_json(&pending)["revocations"].as_array().map(Vec::len),
        Some(1)
    );
    let breached = optline_consent_api::handle(
        h.api_request("GET", "/revocations?status=breached", None),
        &h.consent_api(),
        Utc.with_ymd_and_hms(2026, 12, 4, 9, 0, 0).unwrap(),
    )
    .await;
    assert_eq!(body_json(&breached)["revocations"][0]["breached"], true);

    let id = created["id"].as_str().unwrap();
    let done = optline_consent_api::handle(
        h.request_as(
            "ana.compliance",
            "POST",
            &format!("/revocations/{id}/complete"),
            None,
        ),
        &h.consent_api(),
        received + Duration::days(2),
    )
    .await;
    assert_eq!(done.status(), StatusCode::OK);
    let pending = optline_consent_api::handle(
        h.api_request("GET", "/revocations", None),
        &h.consent_api(),
        received + Duration::days(3),
    )
    .await;
    assert_eq!(
        body_json(&pending)["revocations"].as_array().map(Vec::len),
        Some(0)
    );
}

#[tokio::test]
async fn proof_of_consent_shows_the_exact_disclosure_text_and_every_decision() {
    let h = Harness::new("proof").await;
    contact(&h, "p1", "+14155550100").await;
    grant(&h, "p1", &["appointments"], t0() - Duration::days(3)).await;
    let proof = optline_consent_api::handle(
        h.api_request("GET", "/contacts/p1/consent", None),
        &h.consent_api(),
        t0(),
    )
    .await;
    let proof = body_json(&proof);
    let event = &proof["consent_events"][0];
    assert_eq!(
        event["disclosure_text"],
        "I agree to receive texts from Riverside Clinic. Reply STOP to opt out."
    );
    assert_eq!(event["channel"], "web_form");
    assert_eq!(
        proof["contact"]["phone"], "+1******0100",
        "the API masks the number"
    );
    let audit = optline_consent_api::handle(
        h.api_request("GET", "/contacts/p1/audit", None),
        &h.consent_api(),
        t0(),
    )
    .await;
    assert_eq!(body_json(&audit)["verified"], true);
}

#[tokio::test]
async fn reconcile_records_the_carriers_opt_out_list_in_the_ledger_once() {
    let h = Harness::new("reconcile").await;
    // moto's SNS holds a fixed opt-out list of UK numbers; +447420500600 is one
    // (others on it are Ofcom drama numbers, which are not valid and are counted
    // as unreadable).
    contact(&h, "uk1", "+447420500600").await;
    let deps = optline_reconcile::Deps {
        store: h.store_as("ReconcileFunction"),
        carrier: Arc::new(optline_aws::SnsOptOutList::new(
            h.clients_as("ReconcileFunction").sns,
        )),
        programs: vec!["clinic".to_owned()],
    };
    let first = optline_reconcile::reconcile(&deps, t0()).await.unwrap();
    assert!(first.carrier_opted_out >= 1);
    assert!(
        first.fixed.contains(&"+44******0600".to_owned()),
        "{first:?}"
    );
    assert!(matches!(
        contact_standing(&h, "uk1", "appointments", t0() + Duration::seconds(1)).await,
        ConsentStanding::Revoked { .. }
    ));
    let second = optline_reconcile::reconcile(&deps, t0() + Duration::days(1))
        .await
        .unwrap();
    assert!(second.fixed.is_empty(), "drift is fixed once: {second:?}");
}

/// The one opt-out confirmation goes out within four minutes or not at all:
/// a retry that comes later sends nothing and records why, on the contact's
/// chain, and any later retry finds it ended.
#[tokio::test]
async fn an_opt_out_confirmation_that_misses_its_deadline_is_skipped_and_recorded() {
    use optline_ports::{ComplianceLane, LaneStatus};
    use optline_replies::{AnswerPath, InboundSms, LaneOutcome, ReplyOutcome};

    let h = Harness::new("lane-late").await;
    contact(&h, "p9", "+14155550199").await;
    let deps = h.inbound_as("InboundTwoWayFunction");
    let sms = InboundSms {
        message_sid: "d3c4b5a6-0000-4000-8000-0000000000a9".to_owned(),
        carrier: "aws",
        from: E164::parse("+14155550199").unwrap(),
        to: "+15005550006".to_owned(),
        body: "STOP".to_owned(),
    };
    // The opt-out is committed with the confirmation it owes; the
    // invocation then dies before sending it.
    let lane = match optline_replies::handle_reply(deps.replies(), &sms, AnswerPath::Lane, t0())
        .await
        .unwrap()
    {
        ReplyOutcome::Handled { lane, .. } => lane.expect("a confirmation is owed"),
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        contact_standing(&h, "p9", "appointments", t0()).await,
        ConsentStanding::Revoked { .. }
    ));
    // Its retry comes four minutes and a second after the opt-out. (Other
    // tests share the emulator: count this number's texts only.)
    let texts_to_p9 = || async {
        h.sns_sms()
            .await
            .into_iter()
            .filter(|t| t.phone_number == "+14155550199")
            .count()
    };
    let before = texts_to_p9().await;
    let sender = deps.sender.clone().unwrap();
    let late = t0() + Duration::minutes(4) + Duration::seconds(1);
    let outcome = optline_replies::send_owed(
        deps.store.as_ref(),
        sender.as_ref(),
        deps.config.as_ref(),
        &lane,
        late,
    )
    .await
    .unwrap();
    assert_eq!(outcome, LaneOutcome::Skipped);
    assert_eq!(texts_to_p9().await, before, "nothing was sent");
    let (_, status) = h.store.lane_text(&lane).await.unwrap().unwrap();
    assert_eq!(status, LaneStatus::Skipped);
    let chain = h
        .store
        .audit_chain(&ContactId::parse("p9").unwrap())
        .await
        .unwrap();
    let last = &chain.last().unwrap().content;
    assert_eq!(last.action, "opt_out_confirmation_skipped");
    assert_eq!(last.reasons, ["lane.deadline"]);
    // A later retry finds it ended and sends nothing.
    let again = optline_replies::send_owed(
        deps.store.as_ref(),
        sender.as_ref(),
        deps.config.as_ref(),
        &lane,
        late + Duration::minutes(1),
    )
    .await
    .unwrap();
    assert_eq!(again, LaneOutcome::AlreadyEnded(LaneStatus::Skipped));
    assert_eq!(texts_to_p9().await, before);
}

/// Carriers meter a number's throughput in message parts: a HELP answer
/// that takes two parts takes two of the second's slots on the number, and
/// the compliance lane may take them from the reserve scheduled texts
/// leave free.
#[tokio::test]
async fn a_two_part_help_answer_takes_two_pacing_slots_on_the_number() {
    let mut h = Harness::new("lane-parts").await;
    let mut config = (*h.config).clone();
    for program in config.programs.values_mut() {
        // Four parts a second: three for scheduled texts, one held back.
        program.messages_per_second = 4;
        program.name = "Riverside Community Health Ctr".to_owned();
        program.support_contact = "555-0100, Mon to Fri 8am to 6pm, Sat 9-1".to_owned();
        program.frequency = "Up to 4 msgs per visit and reminders too".to_owned();
    }
    h.config = Arc::new(config);
    contact(&h, "p10", "+14155550110").await;
    let deps = h.inbound_as("InboundTwoWayFunction");
    let payload = json!({
        "originationNumber": "+14155550110",
        "destinationNumber": "+15005550006",
        "messageKeyword": "KEYWORD_123456789012",
        "messageBody": "HELP",
        "inboundMessageId": "cae173d2-66b9-564c-8309-21f858e9fb99",
        "previousPublishedMessageId": "wJalrXUtnFEMI"
    })
    .to_string();
    let mut sns = SnsEvent::default();
    let mut record = SnsRecord::default();
    record.sns.message = payload;
    sns.records = vec![record];
    // The emulator keeps every text of every run: look past what it held.
    let before = h.sns_sms().await.len();
    optline_inbound::handle_two_way_sns(sns, &deps, t0())
        .await
        .unwrap();
    let sent: Vec<_> = h
        .sns_sms()
        .await
        .into_iter()
        .skip(before)
        .filter(|s| s.phone_number == "+14155550110")
        .collect();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        optline_policy::segments::count(&sent[0].message).segments,
        2,
        "{}",
        sent[0].message
    );
    // The number's counter for the second it went out: two parts.
    let used = h.pace_used("+15005550006").await;
    assert_eq!(used, [2], "parts taken per second");
}
