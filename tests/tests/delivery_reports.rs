//! Twilio's status callbacks (`POST /twilio/status`), as Twilio posts them:
//! signed, form encoded, in any order, any number of times.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use optline_policy::consent::{standing, ConsentStanding};
use optline_policy::phone::E164;
use optline_ports::{
    consent_facts, AuditTrail, Casework, ConsentLedger, ContactId, StepId, StepStore,
};
use optline_tests::twilio_standin::TwilioStandIn;
use optline_tests::{
    signed_form_request, twilio_sign, Harness, PUBLIC_BASE_URL, TWILIO_AUTH_TOKEN,
};

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap()
}

fn callback(sid: &str, status: &str, error: Option<&str>) -> lambda_http::Request {
    let mut params: Vec<(String, String)> = vec![
        ("SmsSid".to_owned(), sid.to_owned()),
        ("SmsStatus".to_owned(), status.to_owned()),
        ("MessageStatus".to_owned(), status.to_owned()),
        ("To".to_owned(), "+12125550901".to_owned()),
        ("MessageSid".to_owned(), sid.to_owned()),
        (
            "AccountSid".to_owned(),
            "AC00000000000000000000000000000000".to_owned(),
        ),
        (
            "MessagingServiceSid".to_owned(),
            "MG00000000000000000000000000000000".to_owned(),
        ),
        ("ApiVersion".to_owned(), "2010-04-01".to_owned()),
    ];
    if let Some(code) = error {
        params.push(("ErrorCode".to_owned(), code.to_owned()));
    }
    let refs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let signature = twilio_sign(
        TWILIO_AUTH_TOKEN,
        &format!("{PUBLIC_BASE_URL}/twilio/status"),
        &refs,
    );
    signed_form_request("/twilio/status", &params, &signature)
}

async fn sent_through_twilio(
    h: &Harness,
    contact: &str,
    phone: &str,
    step: &str,
) -> (StepId, String) {
    let id = h.seed_step(contact, phone, step, noon()).await;
    let outcome = optline_dispatch::dispatch_step(&id, &h.dispatch(), noon())
        .await
        .unwrap();
    let optline_dispatch::Outcome::Sent(carrier_id) = outcome else {
        panic!("sent: {outcome:?}");
    };
    (id, carrier_id.trim_start_matches("twilio:").to_owned())
}

#[tokio::test]
async fn delivery_states_move_forward_once_each_in_any_order_and_an_unknown_message_is_ignored() {
    let base = Harness::new("status-callbacks").await;
    let standin =
        TwilioStandIn::start("AC00000000000000000000000000000000", TWILIO_AUTH_TOKEN).await;
    standin.clock(noon());
    let h = base.with_twilio(&standin.base_url);
    let (step, sid) = sent_through_twilio(&h, "sc-1", "+12125550901", "sc-step").await;
    let contact = ContactId::parse("sc-1").unwrap();
    let deliveries = |h: Harness| async move {
        h.store
            .audit_chain(&ContactId::parse("sc-1").unwrap())
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.content.kind == "delivery")
            .map(|r| (r.content.action, r.content.detail))
            .collect::<Vec<_>>()
    };
    let status =
        |h: Harness, step: StepId| async move { h.store.delivery_status(&step).await.unwrap() };

    // queued, sent, delivered: the state moves forward.
    for (i, state) in ["queued", "sent", "delivered"].iter().enumerate() {
        let response = optline_inbound::handle(
            callback(&sid, state, None),
            &h.inbound(),
            noon() + Duration::seconds(i as i64 + 1),
        )
        .await;
        assert_eq!(response.status(), 204, "{state}");
    }
    assert_eq!(
        status(h.clone(), step.clone()).await.as_deref(),
        Some("delivered")
    );

    // Twilio retries a callback: answered again, recorded once.
    let again = optline_inbound::handle(
        callback(&sid, "delivered", None),
        &h.inbound(),
        noon() + Duration::seconds(10),
    )
    .await;
    assert_eq!(again.status(), 204);
    // A late "sent" after "delivered": recorded, the state stays delivered.
    let late = optline_inbound::handle(
        callback(&sid, "sent", None),
        &h.inbound(),
        noon() + Duration::seconds(11),
    )
    .await;
    assert_eq!(late.status(), 204);
    assert_eq!(
        status(h.clone(), step.clone()).await.as_deref(),
        Some("delivered")
    );
    let recorded = deliveries(h.clone()).await;
    let actions: Vec<&str> = recorded.iter().map(|(a, _)| a.as_str()).collect();
    // The late "sent" is a second report of that state (its marker is the
    // same as the first "sent"): recorded once.
    assert_eq!(actions, ["queued", "sent", "delivered"]);

    // A late "sending" (a state never reported before) is recorded and
    // leaves the state as it is, saying so.
    let sending = optline_inbound::handle(
        callback(&sid, "sending", None),
        &h.inbound(),
        noon() + Duration::seconds(12),
    )
    .await;
    assert_eq!(sending.status(), 204);
    let recorded = deliveries(h.clone()).await;
    let last = recorded.last().unwrap();
    assert_eq!(last.0, "sending");
    assert!(
        last.1
            .as_deref()
            .unwrap_or_default()
            .contains("reported after delivered"),
        "{last:?}"
    );
    assert_eq!(
        status(h.clone(), step.clone()).await.as_deref(),
        Some("delivered")
    );
    assert!(optline_ports::verify_chain(
        &h.store.audit_chain(&contact).await.unwrap(),
        h.store.chain_key()
    )
    .is_ok());

    // A message optline never sent: 204, nothing written.
    let before = h.table_items().await.len();
    let unknown = optline_inbound::handle(
        callback("SM0000000000000000000000000000ffff", "delivered", None),
        &h.inbound(),
        noon(),
    )
    .await;
    assert_eq!(unknown.status(), 204);
    assert_eq!(h.table_items().await.len(), before);

    // Not a Twilio state, or a malformed id: 400 with the reason, nothing written.
    let bad = optline_inbound::handle(callback(&sid, "exploded", None), &h.inbound(), noon()).await;
    assert_eq!(bad.status(), 400);
    let bad =
        optline_inbound::handle(callback("SM/../x", "sent", None), &h.inbound(), noon()).await;
    assert_eq!(bad.status(), 400);
    assert_eq!(h.table_items().await.len(), before);
}

#[tokio::test]
async fn error_21610_records_a_carrier_opt_out_for_everyone_sharing_the_number_once() {
    let base = Harness::new("status-21610").await;
    let standin =
        TwilioStandIn::start("AC00000000000000000000000000000000", TWILIO_AUTH_TOKEN).await;
    standin.clock(noon());
    let h = base.with_twilio(&standin.base_url);
    let (step, sid) = sent_through_twilio(&h, "so-1", "+12125550902", "so-step").await;
    // A second patient shares the number.
    h.seed_step(
        "so-2",
        "+12125550902",
        "so-step-2",
        noon() + Duration::days(1),
    )
    .await;
    for _ in 0..2 {
        let response = optline_inbound::handle(
            callback(&sid, "undelivered", Some("21610")),
            &h.inbound(),
            noon() + Duration::minutes(1),
        )
        .await;
        assert_eq!(response.status(), 204);
    }
    assert_eq!(
        h.store.delivery_status(&step).await.unwrap().as_deref(),
        Some("undelivered")
    );
    let phone = E164::parse("+12125550902").unwrap();
    let events = h.store.phone_consent_events(&phone).await.unwrap();
    assert_eq!(events.len(), 1, "one carrier revocation");
    assert_eq!(events[0].channel, optline_ports::CaptureChannel::Carrier);
    assert!(matches!(
        standing(
            &consent_facts(&events),
            "clinic",
            "appointments",
            noon() + Duration::minutes(2)
        ),
        ConsentStanding::Revoked { .. }
    ));
    for contact in ["so-1", "so-2"] {
        let chain = h
            .store
            .audit_chain(&ContactId::parse(contact).unwrap())
            .await
            .unwrap();
        let revocations = chain
            .iter()
            .filter(|r| r.content.kind == "consent" && r.content.action == "revoke")
            .count();
        assert_eq!(revocations, 1, "{contact}");
    }
    // The other patient's pending step is now suppressed at send time.
    let later = optline_dispatch::dispatch_step(
        &StepId::parse("so-step-2").unwrap(),
        &h.dispatch(),
        noon() + Duration::days(1),
    )
    .await
    .unwrap();
    assert!(
        matches!(later, optline_dispatch::Outcome::Suppressed(_)),
        "{later:?}"
    );
    assert_eq!(standin.requests(), 1, "no text after the carrier opt-out");
    let _ = h.store.step(&step).await.unwrap();
}

#[tokio::test]
async fn a_text_a_landline_cannot_take_becomes_a_callback_task_once() {
    let base = Harness::new("status-30006").await;
    let standin =
        TwilioStandIn::start("AC00000000000000000000000000000000", TWILIO_AUTH_TOKEN).await;
    standin.clock(noon());
    let h = base.with_twilio(&standin.base_url);
    let (step, sid) = sent_through_twilio(&h, "ll-1", "+12125550903", "ll-step").await;
    for _ in 0..2 {
        let response = optline_inbound::handle(
            callback(&sid, "undelivered", Some("30006")),
            &h.inbound(),
            noon() + Duration::minutes(1),
        )
        .await;
        assert_eq!(response.status(), 204);
    }
    let tasks: Vec<optline_ports::ReviewItem> = h
        .store
        .reviews()
        .await
        .unwrap()
        .into_iter()
        .filter(|i| i.kind == "fallback")
        .collect();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0].id, format!("fallback-{step}"));
    assert!(
        tasks[0].action_taken.contains("carrier.30006"),
        "{}",
        tasks[0].action_taken
    );
    // The failure and the task are both announced for other systems.
    let announced = serde_json::to_string(&h.stream_event().await).unwrap();
    assert!(announced.contains("optline.delivery.failed"));
    assert!(announced.contains("optline.fallback.task"));
}
