//! Consent changes pushed out: every consent event is committed with its
//! outbox announcement, the outbox drain publishes it on the bus and POSTs
//! it to each subscriber's webhook, signed as Standard Webhooks specifies;
//! a local receiver checks the signature independently.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "integration tests: a failed step should stop the test loudly"
)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chrono::{TimeZone, Utc};
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use lambda_http::http::StatusCode;
use optline_tests::{twilio_inbound_request, Harness};
use serde_json::json;
use sha2::Sha256;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// What the receiver got: (verified, headers' id, body).
type Received = Arc<Mutex<Vec<(bool, String, serde_json::Value)>>>;

/// A subscriber's endpoint on loopback. It verifies each delivery as the
/// Standard Webhooks spec tells a receiver to: HMAC-SHA256 with the
/// secret's base64 key over `id.timestamp.body`, constant-time compare,
/// and a timestamp within five minutes. `fail_first` answers 503 to the
/// first deliveries.
async fn receiver(received: Received, fail_first: usize) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://127.0.0.1:{}/hooks/optline",
        listener.local_addr().unwrap().port()
    );
    let failures = Arc::new(Mutex::new(fail_first));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (received, failures) = (received.clone(), failures.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let (received, failures) = (received.clone(), failures.clone());
                        async move {
                            let header = |n: &str| {
                                request
                                    .headers()
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned()
                            };
                            let (id, ts, sig) = (
                                header("webhook-id"),
                                header("webhook-timestamp"),
                                header("webhook-signature"),
                            );
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            let body = String::from_utf8(body.to_vec()).unwrap();
                            let key = STANDARD
                                .decode(SECRET.trim_start_matches("whsec_"))
                                .unwrap();
                            let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
                            mac.update(format!("{id}.{ts}.{body}").as_bytes());
                            let expected = STANDARD
                                .decode(sig.trim_start_matches("v1,"))
                                .unwrap_or_default();
                            let fresh = ts
                                .parse::<i64>()
                                .is_ok_and(|t| (Utc::now().timestamp() - t).abs() <= 300);
                            let verified = mac.verify_slice(&expected).is_ok() && fresh;
                            let status = {
                                let mut left = failures.lock().unwrap();
                                if *left > 0 {
                                    *left -= 1;
                                    503
                                } else {
                                    received.lock().unwrap().push((
                                        verified,
                                        id,
                                        serde_json::from_str(&body).unwrap(),
                                    ));
                                    if verified {
                                        204
                                    } else {
                                        401
                                    }
                                }
                            };
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    url
}

/// Validates `data` against `docs/schemas/<detail_type>.schema.json` with
/// the Python jsonschema package (Draft 2020-12, formats checked).
fn schema_valid(detail_type: &str, data: &serde_json::Value) {
    let root = optline_tests::repo_root();
    let schema = root.join(format!("docs/schemas/{detail_type}.schema.json"));
    let script = "import json,sys,jsonschema\nschema=json.load(open(sys.argv[1]))\njsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER).validate(json.loads(sys.argv[2]))";
    let out = std::process::Command::new(root.join(".venv/bin/python"))
        .args(["-c", script])
        .arg(schema)
        .arg(data.to_string())
        .output()
        .expect("the project's venv runs");
    assert!(
        out.status.success(),
        "{detail_type} does not match its schema: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn an_opt_out_is_announced_on_the_bus_and_delivered_as_a_signed_webhook() {
    let h = Harness::new("change-events").await;
    let t0 = Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap();
    let api = h.consent_api();
    let created = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts",
            Some(json!({"id": "ce-1", "phone": "+14155550123"})),
        ),
        &api,
        t0,
    )
    .await;
    assert!(created.status().is_success());
    let granted = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts/ce-1/consent",
            Some(json!({"action": "grant", "categories": ["appointments"], "channel": "web_form",
                        "disclosure_text": "Appointment texts from Riverside Clinic. Reply STOP to opt out."})),
        ),
        &api,
        t0,
    )
    .await;
    assert_eq!(granted.status(), StatusCode::CREATED);
    optline_inbound::handle(
        twilio_inbound_request("SM000000000000000000000000000ce001", "+14155550123", "STOP"),
        &h.inbound(),
        t0 + chrono::Duration::minutes(1),
    )
    .await;

    let received: Received = Arc::default();
    let url = receiver(received.clone(), 1).await;
    let webhooks = optline_aws::WebhookPublisher::new(BTreeMap::from([(
        "ehr-sync".to_owned(),
        serde_json::from_value(
            json!({"url": url, "secret": SECRET, "types": ["optline.consent.changed"]}),
        )
        .unwrap(),
    )]))
    .unwrap();
    let publisher = optline_aws::Fanout(vec![Arc::new(h.outbox_publisher()), Arc::new(webhooks)]);
    let drained = optline_outbox_drain::handle(
        h.stream_event().await,
        &publisher,
        h.outbox_rollups().as_ref(),
        Default::default(),
    )
    .await;
    assert!(
        drained.batch_item_failures.is_empty(),
        "one 503, then delivered on the retry"
    );

    let got = received.lock().unwrap().clone();
    let changes: Vec<&serde_json::Value> = got.iter().map(|(_, _, b)| b).collect();
    assert!(
        got.iter().all(|(verified, _, _)| *verified),
        "every delivery verifies"
    );
    assert_eq!(changes.len(), 2, "the grant and the opt-out: {changes:?}");
    assert!(changes
        .iter()
        .all(|b| b["type"] == "optline.consent.changed"));
    let grant = &changes[0]["data"];
    assert_eq!(grant["action"], "grant");
    assert_eq!(grant["contact_id"], "ce-1");
    let stop = &changes[1]["data"];
    assert_eq!(stop["action"], "revoke");
    assert_eq!(stop["scope"], "phone");
    assert_eq!(
        stop["phone"], "+1******0123",
        "the number masked, never whole"
    );
    assert!(
        got[1].1.starts_with("consent:sms-optout-"),
        "webhook-id is the event's stable id"
    );
    // Each event's data validates against its published JSON Schema
    // (docs/schemas), checked by the jsonschema package.
    for change in &changes {
        schema_valid("optline.consent.changed", &change["data"]);
    }

    // A subscriber that keeps failing: the batch is retried from that event.
    let down: Received = Arc::default();
    let url = receiver(down.clone(), 100).await;
    let webhooks = optline_aws::WebhookPublisher::new(BTreeMap::from([(
        "down".to_owned(),
        serde_json::from_value(json!({"url": url, "secret": SECRET})).unwrap(),
    )]))
    .unwrap();
    optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts/ce-1/revocations",
            Some(json!({"channel": "staff"})),
        ),
        &api,
        t0 + chrono::Duration::minutes(2),
    )
    .await;
    let publisher = optline_aws::Fanout(vec![Arc::new(h.outbox_publisher()), Arc::new(webhooks)]);
    let drained = optline_outbox_drain::handle(
        h.stream_event().await,
        &publisher,
        h.outbox_rollups().as_ref(),
        Default::default(),
    )
    .await;
    assert_eq!(
        drained.batch_item_failures.len(),
        1,
        "retried from the undelivered event"
    );
}

#[tokio::test]
async fn consent_changes_are_written_back_to_the_ehr_as_fhir_consent_once() {
    let h = Harness::new("consent-writeback").await;
    let t0 = Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap();
    let api = h.consent_api();
    optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts",
            Some(json!({"id": "cw-1", "phone": "+14155550124"})),
        ),
        &api,
        t0,
    )
    .await;
    optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts/cw-1/consent",
            Some(json!({"action": "grant", "categories": ["appointments"], "channel": "web_form",
                        "disclosure_text": "Appointment texts from Riverside Clinic. Reply STOP to opt out."})),
        ),
        &api,
        t0,
    )
    .await;
    optline_inbound::handle(
        twilio_inbound_request(
            "SM000000000000000000000000000cw001",
            "+14155550124",
            "stop texting me",
        ),
        &h.inbound(),
        t0 + chrono::Duration::minutes(1),
    )
    .await;
    let key = std::fs::read(
        optline_tests::repo_root().join("shared/aws/tests/fixtures/smart-test-key.pk8"),
    )
    .unwrap();
    let ehr =
        optline_tests::fhir_standin::FhirStandIn::start("optline-client", "optline-key-1", &key)
            .await;
    let config: optline_aws::SmartConfig = serde_json::from_value(ehr.smart_config(&key)).unwrap();
    let writer = optline_aws::FhirConsentWriter {
        fhir: Arc::new(
            optline_aws::SmartFhirReader::new(BTreeMap::from([("epic".to_owned(), config)]))
                .unwrap(),
        ),
        source: "epic".to_owned(),
    };
    let publisher = optline_aws::Fanout(vec![Arc::new(h.outbox_publisher()), Arc::new(writer)]);
    let stream = h.stream_event().await;
    let drained = optline_outbox_drain::handle(
        stream.clone(),
        &publisher,
        h.outbox_rollups().as_ref(),
        Default::default(),
    )
    .await;
    assert!(drained.batch_item_failures.is_empty());
    let created = ehr.created();
    assert_eq!(
        created.len(),
        2,
        "the grant and the SMS opt-out, for the patient: {created:?}"
    );
    assert_eq!(created[0]["policyRule"]["coding"][0]["code"], "OPTIN");
    assert_eq!(created[0]["provision"]["type"], "permit");
    assert_eq!(created[1]["policyRule"]["coding"][0]["code"], "OPTOUT");
    assert_eq!(created[1]["provision"]["type"], "deny");
    assert!(created
        .iter()
        .all(|c| c["patient"]["reference"] == "Patient/cw-1"));
    // The stream delivering the batch again writes nothing new.
    optline_outbox_drain::handle(
        stream,
        &publisher,
        h.outbox_rollups().as_ref(),
        Default::default(),
    )
    .await;
    assert_eq!(
        ehr.created().len(),
        2,
        "conditional create: a repeat is the same resource"
    );
}
