//! Twilio's webhook signature (`X-Twilio-Signature`).
//!
//! Twilio's security documentation: the signature is
//! `base64(HMAC-SHA1(auth_token, url + name1 + value1 + name2 + value2 …))`
//! where `url` is the full public URL Twilio requested (scheme, host, port if
//! any, path and query) and the POST parameters are sorted by name (and, for a
//! repeated name, by value). Twilio's own helper libraries also accept the URL
//! with the default port added or removed, since proxies differ on it; so does
//! this one. Comparison is in constant time.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// The signature Twilio would send for `url` and `params`.
pub fn compute(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) else {
        // HMAC accepts keys of any length; this branch cannot be taken.
        return String::new();
    };
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The URL with its default port toggled (`https://h/p` <-> `https://h:443/p`).
fn with_port_toggled(url: &str) -> Option<String> {
    let (scheme, rest, port) = if let Some(rest) = url.strip_prefix("https://") {
        ("https://", rest, "443")
    } else if let Some(rest) = url.strip_prefix("http://") {
        ("http://", rest, "80")
    } else {
        return None;
    };
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(split);
    let suffix = format!(":{port}");
    if let Some(host) = authority.strip_suffix(&suffix) {
        Some(format!("{scheme}{host}{tail}"))
    } else if authority.contains(':') {
        None
    } else {
        Some(format!("{scheme}{authority}{suffix}{tail}"))
    }
}

/// Whether `signature` is Twilio's signature of this request.
pub fn is_valid(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    let matches = |candidate: &str| {
        let expected = compute(auth_token, candidate, params);
        bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
    };
    if matches(url) {
        return true;
    }
    with_port_toggled(url).is_some_and(|alt| matches(&alt))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example from Twilio's security documentation.
    const TOKEN: &str = "12345";
    const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn params() -> Vec<(String, String)> {
        [
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    }

    #[test]
    fn the_documented_example_signs_as_twilio_says() {
        assert_eq!(
            compute(TOKEN, URL, &params()),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn a_tampered_parameter_or_url_is_rejected() {
        let sig = compute(TOKEN, URL, &params());
        let mut tampered = params();
        tampered.push(("Body".to_owned(), "x".to_owned()));
        assert!(!is_valid(TOKEN, URL, &tampered, &sig));
        assert!(!is_valid(
            TOKEN,
            "https://mycompany.com/other",
            &params(),
            &sig
        ));
        assert!(is_valid(TOKEN, URL, &params(), &sig));
    }

    #[test]
    fn the_default_port_may_be_present_or_absent() {
        let sig = compute(TOKEN, URL, &params());
        assert!(is_valid(
            TOKEN,
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &params(),
            &sig
        ));
        assert!(!is_valid(
            TOKEN,
            "https://mycompany.com:8443/myapp.php?foo=1&bar=2",
            &params(),
            &sig
        ));
    }
}
