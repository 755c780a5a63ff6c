//! Twilio webhooks signed every way Twilio signs them: the Auth Token's
//! HMAC-SHA1, a Webhooks SharedKey's HMAC-SHA256 (named by
//! `X-Twilio-Webhooks-Signature-Settings`), and JSON bodies signed through
//! `bodySHA256`; with the credentials read from the stack's Secrets Manager
//! secret under the inbound function's own role.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use lambda_http::Body;
use optline_policy::consent::ConsentStanding;
use optline_policy::phone::E164;
use optline_ports::{consent_facts, ConsentLedger};
use optline_tests::{
    body_text, twilio_params, twilio_sign, twilio_sign_sha256, Harness, PUBLIC_BASE_URL,
};
use sha2::Digest;

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap()
}

/// The local values `infra/local-stack.py` puts in the Twilio secret.
const LOCAL_AUTH_TOKEN: &str = "local-twilio-auth-token";
const LOCAL_KEY_ID: &str = "webhooks_sharedkey_local";
const LOCAL_KEY: &str = "local-twilio-shared-key";

/// The inbound function as deployed: its Twilio credentials come from the
/// secret, read with its own role.
async fn inbound_from_secret(h: &Harness) -> optline_inbound::Deps {
    let mut base = (*h.config).clone();
    base.twilio = None;
    let config = optline_aws::apply_twilio_secret(
        &h.clients_as("InboundFunction").secrets,
        &h.resources.twilio_secret,
        Some("AC00000000000000000000000000000000".to_owned()),
        base,
    )
    .await
    .expect("the inbound role reads the Twilio secret");
    let mut deps = h.inbound();
    deps.config = Arc::new(config);
    deps
}

fn form(
    params: &[(String, String)],
    signature: &str,
    settings: Option<&str>,
) -> lambda_http::Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/twilio/inbound")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature);
    if let Some(settings) = settings {
        builder = builder.header("x-twilio-webhooks-signature-settings", settings);
    }
    builder
        .body(Body::from(serde_urlencoded::to_string(params).unwrap()))
        .unwrap()
}

fn json_request(
    body: &str,
    digest: &str,
    signature: &str,
    settings: Option<&str>,
) -> lambda_http::Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("POST")
        .uri(format!("/twilio/inbound?bodySHA256={digest}"))
        .header("content-type", "application/json")
        .header("x-twilio-signature", signature);
    if let Some(settings) = settings {
        builder = builder.header("x-twilio-webhooks-signature-settings", settings);
    }
    builder.body(Body::from(body.to_owned())).unwrap()
}

fn refs(params: &[(String, String)]) -> Vec<(&str, &str)> {
    params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

async fn revoked(h: &Harness, phone: &str) -> bool {
    let events = h
        .store
        .phone_consent_events(&E164::parse(phone).unwrap())
        .await
        .unwrap();
    matches!(
        optline_policy::consent::standing(
            &consent_facts(&events),
            "clinic",
            "appointments",
            noon() + chrono::Duration::seconds(1)
        ),
        ConsentStanding::Revoked { .. }
    )
}

#[tokio::test]
async fn webhooks_signed_with_the_auth_token_a_shared_key_or_a_json_body_hash_are_accepted() {
    let h = Harness::new("twilio-sigs").await;
    for (contact, phone) in [
        ("tw-s1", "+12125550611"),
        ("tw-s2", "+12125550612"),
        ("tw-s3", "+12125550613"),
    ] {
        h.seed_step(contact, phone, &format!("{contact}-step"), noon())
            .await;
    }
    let deps = inbound_from_secret(&h).await;
    let url = format!("{PUBLIC_BASE_URL}/twilio/inbound");

    // The Auth Token, HMAC-SHA1 (no settings header).
    let params = twilio_params("SM000000000000000000000000000sig1", "+12125550611", "STOP");
    let response = optline_inbound::handle(
        form(
            &params,
            &twilio_sign(LOCAL_AUTH_TOKEN, &url, &refs(&params)),
            None,
        ),
        &deps,
        noon(),
    )
    .await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    assert!(revoked(&h, "+12125550611").await);

    // A SharedKey, HMAC-SHA256.
    let settings = format!("key={LOCAL_KEY_ID},algorithm=HMAC_SHA256");
    let params = twilio_params("SM000000000000000000000000000sig2", "+12125550612", "Stop");
    let sha256 = twilio_sign_sha256(LOCAL_KEY, &url, &refs(&params));
    let response =
        optline_inbound::handle(form(&params, &sha256, Some(&settings)), &deps, noon()).await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    assert!(revoked(&h, "+12125550612").await);

    // A JSON body: the URL carries its SHA-256, the signature covers the URL.
    let body = serde_json::json!({
        "MessageSid": "SM000000000000000000000000000sig3",
        "AccountSid": "AC00000000000000000000000000000000",
        "From": "+12125550613",
        "To": "+15005550006",
        "Body": "ARRÊT",
        "NumSegments": 1
    })
    .to_string();
    let digest = hex::encode(sha2::Sha256::digest(body.as_bytes()));
    let signed_url = format!("{url}?bodySHA256={digest}");
    let response = optline_inbound::handle(
        json_request(
            &body,
            &digest,
            &twilio_sign_sha256(LOCAL_KEY, &signed_url, &[]),
            Some(&settings),
        ),
        &deps,
        noon(),
    )
    .await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    assert!(revoked(&h, "+12125550613").await);
}

#[tokio::test]
async fn a_webhook_signed_any_other_way_is_refused_and_nothing_is_stored() {
    let h = Harness::new("twilio-sigs-bad").await;
    h.seed_step("tw-b1", "+12125550621", "tw-b1-step", noon())
        .await;
    let deps = inbound_from_secret(&h).await;
    let url = format!("{PUBLIC_BASE_URL}/twilio/inbound");
    let params = twilio_params("SM000000000000000000000000000bad1", "+12125550621", "STOP");
    let sha1 = twilio_sign(LOCAL_AUTH_TOKEN, &url, &refs(&params));
    let sha256 = twilio_sign_sha256(LOCAL_KEY, &url, &refs(&params));
    let cases: Vec<(&str, lambda_http::Request)> = vec![
        // The SHA-1 signature presented as a SharedKey's SHA-256.
        (
            "sha1 under a sha256 header",
            form(
                &params,
                &sha1,
                Some(&format!("key={LOCAL_KEY_ID},algorithm=HMAC_SHA256")),
            ),
        ),
        // A key this deployment does not hold.
        (
            "unknown key",
            form(
                &params,
                &sha256,
                Some("key=webhooks_sharedkey_other,algorithm=HMAC_SHA256"),
            ),
        ),
        // An algorithm optline does not know.
        (
            "unknown algorithm",
            form(
                &params,
                &sha256,
                Some(&format!("key={LOCAL_KEY_ID},algorithm=HMAC_SHA512")),
            ),
        ),
        // The SharedKey's signature without the header: the Auth Token's turn.
        ("sha256 without its header", form(&params, &sha256, None)),
    ];
    for (what, request) in cases {
        let response = optline_inbound::handle(request, &deps, noon()).await;
        assert_eq!(response.status(), 403, "{what}: {}", body_text(&response));
    }
    // A JSON body changed after signing: its hash no longer matches.
    let body = r#"{"MessageSid":"SM000000000000000000000000000bad2","From":"+12125550621","Body":"START"}"#;
    let digest = hex::encode(sha2::Sha256::digest(body.as_bytes()));
    let signed_url = format!("{url}?bodySHA256={digest}");
    let signature = twilio_sign(LOCAL_AUTH_TOKEN, &signed_url, &[]);
    let tampered = body.replace("START", "STOP!");
    let response = optline_inbound::handle(
        json_request(&tampered, &digest, &signature, None),
        &deps,
        noon(),
    )
    .await;
    assert_eq!(response.status(), 403, "{}", body_text(&response));
    // A JSON body without bodySHA256 in its URL.
    let request = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/twilio/inbound")
        .header("content-type", "application/json")
        .header(
            "x-twilio-signature",
            twilio_sign(LOCAL_AUTH_TOKEN, &url, &[]),
        )
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = optline_inbound::handle(request, &deps, noon()).await;
    assert_eq!(response.status(), 403, "{}", body_text(&response));
    assert!(
        h.store
            .phone_consent_events(&E164::parse("+12125550621").unwrap())
            .await
            .unwrap()
            .is_empty(),
        "nothing stored"
    );
}

/// Rotation: the deployer puts a new Auth Token in the secret; the first
/// webhook Twilio signs with it fails against the cached token, the function
/// re-reads the secret (under its own role) and accepts it. A forged
/// signature still gets 403, and a flood of them re-reads the secret at most
/// once per interval.
#[tokio::test]
async fn a_rotated_auth_token_takes_effect_on_the_first_webhook_it_signs() {
    let h = Harness::new("twilio-rotate").await;
    h.seed_step("tw-r1", "+12125550621", "tw-r1-step", noon())
        .await;
    h.seed_step("tw-r2", "+12125550622", "tw-r2-step", noon())
        .await;
    let rotating = optline_inbound::rotation::Rotating::new(inbound_from_secret(&h).await);
    let secrets = h.clients_as("InboundFunction").secrets;
    let reads = std::sync::atomic::AtomicUsize::new(0);
    let reload = || {
        reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut base = (*h.config).clone();
        base.twilio = None;
        optline_aws::apply_twilio_secret(
            &secrets,
            &h.resources.twilio_secret,
            Some("AC00000000000000000000000000000000".to_owned()),
            base,
        )
    };
    let url = format!("{PUBLIC_BASE_URL}/twilio/inbound");

    // The token rotates in Secrets Manager (as the deployer would).
    let rotated = "rotated-twilio-auth-token";
    h.secrets
        .put_secret_value()
        .secret_id(&h.resources.twilio_secret)
        .secret_string(serde_json::json!({"auth_token": rotated, "webhook_keys": {}}).to_string())
        .send()
        .await
        .unwrap();

    let params = twilio_params("SM0000000000000000000000000rot01", "+12125550621", "STOP");
    let signed = twilio_sign(rotated, &url, &refs(&params));
    let response = rotating
        .handle(form(&params, &signed, None), noon(), reload)
        .await;
    assert_eq!(response.status(), 200, "{}", body_text(&response));
    assert!(revoked(&h, "+12125550621").await);
    assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1);

    // The new token is now the cached one: no re-read for the next webhook.
    let params = twilio_params("SM0000000000000000000000000rot02", "+12125550622", "STOP");
    let signed = twilio_sign(rotated, &url, &refs(&params));
    let response = rotating
        .handle(form(&params, &signed, None), noon(), reload)
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1);

    // Forged webhooks: 403, one re-read per interval, nothing stored.
    let params = twilio_params("SM0000000000000000000000000rot03", "+12125550699", "STOP");
    let forged = twilio_sign("not-the-token", &url, &refs(&params));
    for second in 0..5 {
        let at = noon() + chrono::Duration::seconds(60 + second);
        let response = rotating
            .handle(form(&params, &forged, None), at, reload)
            .await;
        assert_eq!(response.status(), 403);
    }
    assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 2);
    assert!(!revoked(&h, "+12125550699").await);
}
