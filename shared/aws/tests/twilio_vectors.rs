//! Twilio webhook signatures against vectors computed with Twilio's own
//! helper library (`twilio` for Python, its `RequestValidator`; see
//! `tools/twilio_vectors.py`): form bodies and JSON bodies, HMAC-SHA1 with
//! the Auth Token and HMAC-SHA256 with a SharedKey.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "tests fail loudly"
)]

use optline_aws::twilio_signature::{body_matches, compute, is_valid_with, Algorithm};

fn vectors() -> Vec<serde_json::Value> {
    serde_json::from_str(include_str!("data/twilio_signature_vectors.json")).unwrap()
}

fn algorithm(v: &serde_json::Value) -> Algorithm {
    match v["algorithm"].as_str().unwrap() {
        "HMAC_SHA1" => Algorithm::HmacSha1,
        "HMAC_SHA256" => Algorithm::HmacSha256,
        other => panic!("{other}"),
    }
}

fn params(v: &serde_json::Value) -> Vec<(String, String)> {
    v["params"]
        .as_array()
        .map(|pairs| {
            pairs
                .iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap().to_owned(),
                        p[1].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_vector_signs_and_verifies_as_twilios_library_computes_it() {
    let all = vectors();
    assert_eq!(all.len(), 6);
    for v in &all {
        let (secret, url) = (v["secret"].as_str().unwrap(), v["url"].as_str().unwrap());
        let signature = v["signature"].as_str().unwrap();
        let params = params(v);
        assert_eq!(
            compute(algorithm(v), secret, url, &params),
            signature,
            "{v}"
        );
        assert!(is_valid_with(algorithm(v), secret, url, &params, signature));
        // The other hash, or the other secret, never passes.
        let other = match algorithm(v) {
            Algorithm::HmacSha1 => Algorithm::HmacSha256,
            Algorithm::HmacSha256 => Algorithm::HmacSha1,
        };
        assert!(!is_valid_with(other, secret, url, &params, signature));
        assert!(!is_valid_with(
            algorithm(v),
            "not-the-secret",
            url,
            &params,
            signature
        ));
        if v["kind"] == "json" {
            let body = v["body"].as_str().unwrap();
            assert!(body_matches(url, body.as_bytes()));
            assert!(!body_matches(url, body.replace("ARR", "ARX").as_bytes()));
        }
    }
}

#[test]
fn a_repeated_parameter_counts_once_per_distinct_value_as_twilio_sorts_it() {
    let v = &vectors()[0];
    let mut repeated = params(v);
    repeated.push(repeated[0].clone());
    repeated.reverse();
    assert!(is_valid_with(
        algorithm(v),
        v["secret"].as_str().unwrap(),
        v["url"].as_str().unwrap(),
        &repeated,
        v["signature"].as_str().unwrap()
    ));
}
