//! Token checks with keys made for the test: every refusal the functions
//! rely on, and the person a good token names.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{TimeZone, Utc};
use optline_identity::{bearer, Group, PoolConfig, Rejected, Verifier};
use optline_policy::template::review::Role;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use serde_json::json;

const POOL: &str = "us-east-1_TestPool1";
const CLIENT: &str = "consoleclient123";
const NOW: i64 = 1_796_000_000;

fn key(name: &str) -> RsaKeyPair {
    let path = format!("{}/tests/fixtures/{name}.der", env!("CARGO_MANIFEST_DIR"));
    RsaKeyPair::from_der(&std::fs::read(path).expect("key file")).expect("PKCS#1 RSA key")
}

fn jwks(pair: &RsaKeyPair, kid: &str) -> String {
    let public: ring::rsa::PublicKeyComponents<Vec<u8>> = pair.public().into();
    let (n, e) = (public.n, public.e);
    json!({"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(n), "e": URL_SAFE_NO_PAD.encode(e)}]})
    .to_string()
}

fn sign(pair: &RsaKeyPair, header: serde_json::Value, claims: serde_json::Value) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .expect("signs");
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature))
}

fn claims() -> serde_json::Value {
    json!({
        "iss": format!("https://cognito-idp.us-east-1.amazonaws.com/{POOL}"),
        "sub": "7d1c6a52-0000-4000-8000-00000000a001",
        "aud": CLIENT,
        "token_use": "id",
        "iat": NOW - 60,
        "auth_time": NOW - 60,
        "exp": NOW + 3600,
        "name": "Ana Ruiz",
        "cognito:username": "ana.compliance",
        "cognito:groups": ["compliance", "legal", "not-a-role"],
    })
}

fn verifier() -> Verifier {
    let config = PoolConfig::new("us-east-1", POOL, vec![CLIENT.to_owned()], None);
    Verifier::with_jwks(config, &jwks(&key("test-key"), "k1")).expect("verifier")
}

fn header() -> serde_json::Value {
    json!({"alg": "RS256", "kid": "k1"})
}

async fn check(token: &str) -> Result<optline_identity::Person, Rejected> {
    verifier()
        .verify_at(token, Utc.timestamp_opt(NOW, 0).unwrap())
        .await
}

#[tokio::test]
async fn a_good_id_token_names_its_person_and_roles() {
    let person = check(&sign(&key("test-key"), header(), claims()))
        .await
        .expect("verifies");
    assert_eq!(person.subject, "7d1c6a52-0000-4000-8000-00000000a001");
    assert_eq!(person.name, "Ana Ruiz");
    assert_eq!(person.groups, vec![Group::Compliance, Group::Legal]);
    assert_eq!(person.review_roles(), vec![Role::Compliance, Role::Legal]);
    assert_eq!(
        person.actor_id(),
        "cognito:7d1c6a52-0000-4000-8000-00000000a001"
    );
    assert_eq!(
        person.label(),
        "Ana Ruiz <cognito:7d1c6a52-0000-4000-8000-00000000a001>"
    );
}

#[tokio::test]
async fn an_access_token_is_checked_by_client_id() {
    let mut c = claims();
    c["token_use"] = json!("access");
    c.as_object_mut().unwrap().remove("aud");
    c["client_id"] = json!(CLIENT);
    c.as_object_mut().unwrap().remove("name");
    let person = check(&sign(&key("test-key"), header(), c.clone()))
        .await
        .expect("verifies");
    assert_eq!(person.name, "ana.compliance");
    c["client_id"] = json!("another-client");
    assert_eq!(
        check(&sign(&key("test-key"), header(), c)).await,
        Err(Rejected::Client)
    );
}

#[tokio::test]
async fn every_bad_token_is_refused_with_its_reason() {
    let good = sign(&key("test-key"), header(), claims());
    let with = |field: &str, value: serde_json::Value| {
        let mut c = claims();
        c[field] = value;
        sign(&key("test-key"), header(), c)
    };
    // Signed by another key under the same kid.
    assert_eq!(
        check(&sign(&key("other-key"), header(), claims())).await,
        Err(Rejected::Signature)
    );
    // A claim changed after signing.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut c = claims();
    c["cognito:groups"] = json!(["compliance", "legal", "clinical"]);
    parts[1] = URL_SAFE_NO_PAD.encode(c.to_string());
    assert_eq!(check(&parts.join(".")).await, Err(Rejected::Signature));
    // Another pool, another client, another use.
    assert_eq!(
        check(&with(
            "iss",
            json!("https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Other")
        ))
        .await,
        Err(Rejected::Issuer)
    );
    assert_eq!(
        check(&with("aud", json!("another-client"))).await,
        Err(Rejected::Client)
    );
    assert_eq!(
        check(&with("token_use", json!("refresh"))).await,
        Err(Rejected::TokenUse)
    );
    // Time.
    assert_eq!(
        check(&with("exp", json!(NOW))).await,
        Err(Rejected::Expired)
    );
    assert_eq!(
        check(&with("iat", json!(NOW + 3000))).await,
        Err(Rejected::NotYetValid)
    );
    assert_eq!(
        check(&with("sub", json!(""))).await,
        Err(Rejected::NoSubject)
    );
    // Algorithm confusion and unknown keys.
    let none = sign(
        &key("test-key"),
        json!({"alg": "none", "kid": "k1"}),
        claims(),
    );
    assert_eq!(check(&none).await, Err(Rejected::Algorithm));
    let hs = sign(
        &key("test-key"),
        json!({"alg": "HS256", "kid": "k1"}),
        claims(),
    );
    assert_eq!(check(&hs).await, Err(Rejected::Algorithm));
    // Shapes.
    assert_eq!(check("").await, Err(Rejected::Missing));
    assert_eq!(check("a.b").await, Err(Rejected::Malformed));
    assert_eq!(check("a.b.c.d").await, Err(Rejected::Malformed));
    assert_eq!(check(&"x".repeat(9000)).await, Err(Rejected::Malformed));
    let stripped: String = good.rsplit_once('.').unwrap().0.to_owned() + ".";
    assert_eq!(check(&stripped).await, Err(Rejected::Signature));
}

#[test]
fn bearer_reads_the_scheme_case_insensitively() {
    assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
    assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
    assert_eq!(bearer(Some("Basic abc")), None);
    assert_eq!(bearer(None), None);
}

#[test]
fn the_local_emulator_serves_keys_beside_the_pool_id() {
    let local = PoolConfig::new("us-east-1", POOL, vec![], Some("http://127.0.0.1:5000/"));
    assert_eq!(
        local.jwks_url,
        format!("http://127.0.0.1:5000/{POOL}/.well-known/jwks.json")
    );
    let cloud = PoolConfig::new("us-east-1", POOL, vec![], None);
    assert_eq!(
        cloud.jwks_url,
        format!("https://cognito-idp.us-east-1.amazonaws.com/{POOL}/.well-known/jwks.json")
    );
    assert_eq!(local.issuer, cloud.issuer);
}
