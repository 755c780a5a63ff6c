#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "integration tests: a failed step should stop the test loudly"
)]
//! Reading FHIR resources with SMART Backend Services authorization, against
//! the local stand-in for an EHR's FHIR server and token endpoint (no AWS
//! emulator needed).

use std::collections::BTreeMap;

use optline_aws::{SmartConfig, SmartFhirReader};
use optline_ports::{FhirReader, PortError};
use optline_tests::fhir_standin::FhirStandIn;

const SOURCE: &str = "epic-test";
const CLIENT_ID: &str = "optline-backend";
const KEY_ID: &str = "optline-key-1";

fn read_key(name: &str) -> Vec<u8> {
    std::fs::read(
        optline_tests::repo_root()
            .join("shared/aws/tests/fixtures")
            .join(name),
    )
    .expect("the test key")
}

fn reader(standin: &FhirStandIn, key: &[u8]) -> SmartFhirReader {
    let config: SmartConfig = serde_json::from_value(standin.smart_config(key)).unwrap();
    SmartFhirReader::new(BTreeMap::from([(SOURCE.to_owned(), config)])).unwrap()
}

fn appointment(id: &str) -> serde_json::Value {
    serde_json::json!({
        "resourceType": "Appointment",
        "id": id,
        "status": "booked",
        "start": "2025-07-01T15:00:00Z",
        "participant": [{ "actor": { "reference": "Patient/p1" }, "status": "accepted" }],
    })
}

#[tokio::test]
async fn reads_with_a_cached_token_retries_and_refuses_what_it_should() {
    let key = read_key("smart-test-key.pk8");
    let standin = FhirStandIn::start(CLIENT_ID, KEY_ID, &key).await;
    let reader = reader(&standin, &key);
    standin.put(appointment("appt-1"));

    // The first read asks for a token.
    let resource = reader.read(SOURCE, "Appointment", "appt-1").await.unwrap();
    assert_eq!(resource, appointment("appt-1"));
    assert_eq!(standin.token_requests(), 1, "{:?}", standin.refusals());
    assert_eq!(standin.refused_assertions(), 0);
    assert_eq!(standin.reads(), 1);

    // The second uses the cached one.
    reader.read(SOURCE, "Appointment", "appt-1").await.unwrap();
    assert_eq!(standin.token_requests(), 1);
    assert_eq!(standin.reads(), 2);

    // Two 503s, then the third attempt succeeds.
    standin.fail_next(2);
    let resource = reader.read(SOURCE, "Appointment", "appt-1").await.unwrap();
    assert_eq!(resource["id"], "appt-1");
    assert_eq!(standin.reads(), 5);
    assert_eq!(standin.token_requests(), 1);

    // Three 503s: unavailable after three attempts.
    standin.fail_next(3);
    match reader.read(SOURCE, "Appointment", "appt-1").await {
        Err(PortError::Unavailable(reason)) => assert!(reason.contains("503"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(standin.reads(), 8);

    // An unknown id is Invalid, and says so.
    match reader.read(SOURCE, "Appointment", "nope").await {
        Err(PortError::Invalid(reason)) => assert!(reason.contains("not found"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(standin.reads(), 9);

    // Names that are not FHIR's are refused before any request.
    for (kind, id) in [
        ("Appointment", ".."),
        ("Appointment", "a/b"),
        ("Appoint/ment", "1"),
    ] {
        assert!(matches!(
            reader.read(SOURCE, kind, id).await,
            Err(PortError::Invalid(_))
        ));
    }
    assert!(matches!(
        reader.read("another-source", "Appointment", "appt-1").await,
        Err(PortError::Invalid(_))
    ));
    assert_eq!(standin.reads(), 9);

    // A token the server no longer honours: a 401, a new token, one retry.
    standin.revoke_tokens();
    reader.read(SOURCE, "Appointment", "appt-1").await.unwrap();
    assert_eq!(standin.token_requests(), 2);
    assert_eq!(standin.reads(), 11);
    assert_eq!(standin.refused_assertions(), 0);
}

#[tokio::test]
async fn an_assertion_signed_with_another_key_is_refused() {
    let key = read_key("smart-test-key.pk8");
    let standin = FhirStandIn::start(CLIENT_ID, KEY_ID, &key).await;
    standin.put(appointment("appt-1"));
    // Same client id and kid, but not the key the EHR registered.
    let impostor = reader(&standin, &read_key("smart-other-key.pk8"));

    match impostor.read(SOURCE, "Appointment", "appt-1").await {
        Err(PortError::Unavailable(reason)) => {
            assert!(reason.contains("invalid_client"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(standin.token_requests(), 1);
    assert_eq!(standin.refused_assertions(), 1);
    assert!(
        standin.refusals()[0].contains("signature"),
        "{:?}",
        standin.refusals()
    );
    assert_eq!(standin.reads(), 0);

    // The registered key still works.
    reader(&standin, &key)
        .read(SOURCE, "Appointment", "appt-1")
        .await
        .unwrap();
    assert_eq!(standin.refused_assertions(), 1);
}

#[tokio::test]
async fn a_server_answering_another_resource_is_refused() {
    let key = read_key("smart-test-key.pk8");
    let standin = FhirStandIn::start(CLIENT_ID, KEY_ID, &key).await;
    standin.put_at("Appointment", "appt-2", appointment("appt-3"));
    standin.put_at(
        "Appointment",
        "appt-4",
        serde_json::json!({"resourceType": "Patient", "id": "appt-4"}),
    );
    let reader = reader(&standin, &key);
    for id in ["appt-2", "appt-4"] {
        match reader.read(SOURCE, "Appointment", id).await {
            Err(PortError::Invalid(reason)) => {
                assert!(reason.contains("other than the one asked for"), "{reason}");
                assert!(!reason.contains("booked"), "no body in errors: {reason}");
            }
            other => panic!("{id}: {other:?}"),
        }
    }
    assert_eq!(standin.token_requests(), 1);
}

/// An assertion made here, apart from the adapter, with these claims.
fn assertion(key: &[u8], kid: &str, claims: &serde_json::Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let pair = ring::signature::RsaKeyPair::from_pkcs8(key).unwrap();
    let header = serde_json::json!({"alg": "RS384", "typ": "JWT", "kid": kid});
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA384,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut signature,
    )
    .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

#[tokio::test]
async fn the_standin_refuses_replays_and_bad_claims() {
    let key = read_key("smart-test-key.pk8");
    let standin = FhirStandIn::start(CLIENT_ID, KEY_ID, &key).await;
    let now = chrono::Utc::now().timestamp();
    let claims = |jti: &str| {
        serde_json::json!({
            "iss": CLIENT_ID, "sub": CLIENT_ID, "aud": standin.token_url(),
            "exp": now + 240, "iat": now, "jti": jti,
        })
    };
    let post = |jwt: String| {
        let url = standin.token_url();
        async move {
            let form = serde_urlencoded::to_string([
                ("grant_type", "client_credentials"),
                ("scope", "system/Appointment.read"),
                (
                    "client_assertion_type",
                    optline_tests::fhir_standin::ASSERTION_TYPE,
                ),
                ("client_assertion", jwt.as_str()),
            ])
            .unwrap();
            let response = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value =
                serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
            (status, body)
        }
    };

    let jwt = assertion(&key, KEY_ID, &claims("once"));
    let (status, body) = post(jwt.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "system/Appointment.read");

    // The same assertion again: a replay.
    assert_eq!(
        post(jwt).await,
        (401, serde_json::json!({"error": "invalid_client"}))
    );

    // Another kid, another audience, an exp too far, an exp past.
    let mut bad = vec![assertion(&key, "another-kid", &claims("kid"))];
    for (field, value) in [
        (
            "aud",
            serde_json::json!("https://elsewhere.example.test/token"),
        ),
        ("exp", serde_json::json!(now + 3600)),
        ("exp", serde_json::json!(now - 1)),
        ("sub", serde_json::json!("someone-else")),
    ] {
        let mut c = claims(&format!("{field}-{value}"));
        c[field] = value;
        bad.push(assertion(&key, KEY_ID, &c));
    }
    for jwt in bad {
        assert_eq!(post(jwt).await.0, 401);
    }
    assert_eq!(standin.refused_assertions(), 6, "{:?}", standin.refusals());
    assert_eq!(standin.token_requests(), 7);
}
