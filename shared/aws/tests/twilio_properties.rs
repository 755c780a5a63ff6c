//! Property tests for the Twilio webhook parsers: the signature-settings
//! header and the signature never panic on arbitrary input, a signature
//! verifies exactly for what it signed, and any change to a parameter or
//! the URL breaks it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use optline_aws::twilio_signature::{compute, is_valid_with, settings, Algorithm};
use proptest::prelude::*;

fn params() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("[A-Za-z]{1,12}", ".{0,40}"), 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_settings_header_never_panics(header in ".{0,80}") {
        let _ = settings(Some(&header));
    }

    #[test]
    fn a_signature_verifies_exactly_what_it_signed(
        secret in "[A-Za-z0-9]{8,40}",
        path in "[a-z/]{0,20}",
        params in params(),
        sha256 in any::<bool>(),
        tamper in ".{1,8}",
    ) {
        let algorithm = if sha256 { Algorithm::HmacSha256 } else { Algorithm::HmacSha1 };
        let url = format!("https://optline.example.test/{path}");
        let signature = compute(algorithm, &secret, &url, &params);
        prop_assert!(is_valid_with(algorithm, &secret, &url, &params, &signature));
        // Another URL, another secret, or a changed value: refused.
        let other_url = format!("{url}x");
        let other_secret = format!("{secret}x");
        prop_assert!(!is_valid_with(algorithm, &secret, &other_url, &params, &signature));
        prop_assert!(!is_valid_with(algorithm, &other_secret, &url, &params, &signature));
        if let Some((name, value)) = params.first() {
            let mut changed = params.clone();
            changed[0] = (name.clone(), format!("{value}{tamper}"));
            prop_assert!(!is_valid_with(algorithm, &secret, &url, &changed, &signature));
        }
    }

    #[test]
    fn any_signature_text_is_checked_without_panicking(
        signature in ".{0,80}",
        params in params(),
    ) {
        let _ = is_valid_with(Algorithm::HmacSha1, "token", "https://x.test/t", &params, &signature);
        let _ = is_valid_with(Algorithm::HmacSha256, "token", "https://x.test/t", &params, &signature);
    }
}
