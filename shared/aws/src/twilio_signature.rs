//! Twilio's webhook signatures (`X-Twilio-Signature`), as Twilio's
//! security documentation and its helper libraries define them.
//!
//! - **The signed string** is the full public URL Twilio requested (scheme,
//!   host, port if any, path and query) followed, for a form-encoded body,
//!   by every POST parameter as `name + value`, sorted by name and then by
//!   value, each distinct pair once.
//! - **The algorithm** is HMAC-SHA1 keyed with the account's Auth Token,
//!   unless the request carries `X-Twilio-Webhooks-Signature-Settings:
//!   key=<shared key id>,algorithm=HMAC_SHA256` (a Webhooks Rule matched the
//!   URL): then the key is that SharedKey's secret and the hash is the one
//!   named (`HMAC_SHA256`, or `HMAC_SHA1`). An algorithm optline does not
//!   know is refused, never guessed.
//! - **The signature** is the digest in standard base64.
//! - **JSON bodies** (`application/json`) are not parameters: Twilio adds
//!   `bodySHA256=<hex SHA-256 of the raw body>` to the URL's query and signs
//!   the URL alone; the body must hash to that value.
//!
//! **Port policy.** Proxies and load balancers differ on whether the URL
//! Twilio signed carried the scheme's default port, and Twilio's own
//! libraries accept both; so does optline: `https://h/p` and
//! `https://h:443/p` (`:80` for `http`) are the same URL. Any other port is
//! part of the URL and must match exactly (Twilio's Python library also
//! drops non-default ports; optline does not, so a signature for one port
//! never passes for another). Comparison is in constant time.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The header naming a SharedKey and its algorithm.
pub const SETTINGS_HEADER: &str = "x-twilio-webhooks-signature-settings";

/// A webhook signature's hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1: the Auth Token's signature, and a SharedKey's that names it.
    HmacSha1,
    /// HMAC-SHA256: a SharedKey's.
    HmacSha256,
}

/// Which secret signed a webhook, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The SharedKey's id; `None` is the account's Auth Token.
    pub key: Option<String>,
    /// The hash.
    pub algorithm: Algorithm,
}

/// Reads `X-Twilio-Webhooks-Signature-Settings` (absent: the Auth Token
/// with HMAC-SHA1). `Err` is the reason to refuse the request: a header
/// without a key, or an algorithm optline does not know.
pub fn settings(header: Option<&str>) -> Result<Settings, &'static str> {
    let Some(header) = header.map(str::trim).filter(|h| !h.is_empty()) else {
        return Ok(Settings {
            key: None,
            algorithm: Algorithm::HmacSha1,
        });
    };
    let mut key = None;
    let mut algorithm = None;
    for part in header.split(',') {
        let Some((name, value)) = part.split_once('=') else {
            continue;
        };
        match name.trim() {
            "key" => key = Some(value.trim().to_owned()).filter(|k| !k.is_empty()),
            "algorithm" => algorithm = Some(value.trim().to_ascii_uppercase()),
            _ => {}
        }
    }
    let algorithm = match algorithm.as_deref() {
        Some("HMAC_SHA256") => Algorithm::HmacSha256,
        // The header names a key; without an algorithm Twilio's libraries
        // read the legacy hash.
        Some("HMAC_SHA1") | None => Algorithm::HmacSha1,
        Some(_) => return Err("unsupported webhook signature algorithm"),
    };
    let Some(key) = key else {
        return Err("the signature settings name no key");
    };
    Ok(Settings {
        key: Some(key),
        algorithm,
    })
}

/// The signature Twilio would send for `url` and `params` with `secret`.
pub fn compute(
    algorithm: Algorithm,
    secret: &str,
    url: &str,
    params: &[(String, String)],
) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut signed = Vec::with_capacity(url.len() + 64 * sorted.len());
    signed.extend_from_slice(url.as_bytes());
    for (name, value) in sorted {
        signed.extend_from_slice(name.as_bytes());
        signed.extend_from_slice(value.as_bytes());
    }
    let digest = match algorithm {
        Algorithm::HmacSha1 => Hmac::<Sha1>::new_from_slice(secret.as_bytes())
            .map(|mut mac| {
                mac.update(&signed);
                mac.finalize().into_bytes().to_vec()
            })
            .unwrap_or_default(),
        Algorithm::HmacSha256 => Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .map(|mut mac| {
                mac.update(&signed);
                mac.finalize().into_bytes().to_vec()
            })
            .unwrap_or_default(),
    };
    STANDARD.encode(digest)
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

/// Whether `signature` is the signature of this request (see the port
/// policy in the module docs).
pub fn is_valid_with(
    algorithm: Algorithm,
    secret: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    if signature.is_empty() || secret.is_empty() {
        return false;
    }
    let matches = |candidate: &str| {
        let expected = compute(algorithm, secret, candidate, params);
        bool::from(expected.as_bytes().ct_eq(signature.trim().as_bytes()))
    };
    matches(url) || with_port_toggled(url).is_some_and(|alt| matches(&alt))
}

/// [`is_valid_with`] for the Auth Token's HMAC-SHA1 signature.
pub fn is_valid(auth_token: &str, url: &str, params: &[(String, String)], signature: &str) -> bool {
    is_valid_with(Algorithm::HmacSha1, auth_token, url, params, signature)
}

/// The `bodySHA256` of a JSON webhook's URL, if it has one.
pub fn body_sha256_param(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or_default();
    form_urlencoded_pairs(query)
        .into_iter()
        .find(|(name, _)| name == "bodySHA256")
        .map(|(_, value)| value)
}

/// Whether a JSON webhook's raw body hashes to the URL's `bodySHA256`
/// (in constant time); `false` when the URL has none.
pub fn body_matches(url: &str, body: &[u8]) -> bool {
    let Some(expected) = body_sha256_param(url) else {
        return false;
    };
    let actual = hex::encode(Sha256::digest(body));
    bool::from(
        actual
            .as_bytes()
            .ct_eq(expected.to_ascii_lowercase().as_bytes()),
    )
}

fn form_urlencoded_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default()
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
            compute(Algorithm::HmacSha1, TOKEN, URL, &params()),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
    }

    #[test]
    fn a_tampered_parameter_or_url_is_rejected() {
        let sig = compute(Algorithm::HmacSha1, TOKEN, URL, &params());
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
        // The same key and string under the other hash is another signature.
        assert!(!is_valid_with(
            Algorithm::HmacSha256,
            TOKEN,
            URL,
            &params(),
            &sig
        ));
    }

    #[test]
    fn the_default_port_may_be_present_or_absent_and_no_other_port_passes() {
        let sig = compute(Algorithm::HmacSha1, TOKEN, URL, &params());
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
        let on_8443 = compute(
            Algorithm::HmacSha1,
            TOKEN,
            "https://mycompany.com:8443/myapp.php",
            &params(),
        );
        assert!(!is_valid(
            TOKEN,
            "https://mycompany.com/myapp.php",
            &params(),
            &on_8443
        ));
    }

    #[test]
    fn the_settings_header_names_the_key_and_the_hash() {
        assert_eq!(
            settings(None),
            Ok(Settings {
                key: None,
                algorithm: Algorithm::HmacSha1
            })
        );
        assert_eq!(
            settings(Some("key=webhooks_sharedkey_1, algorithm=HMAC_SHA256")),
            Ok(Settings {
                key: Some("webhooks_sharedkey_1".to_owned()),
                algorithm: Algorithm::HmacSha256
            })
        );
        assert_eq!(
            settings(Some("algorithm=HMAC_SHA1,key=k2")).map(|s| s.algorithm),
            Ok(Algorithm::HmacSha1)
        );
        assert!(settings(Some("key=k,algorithm=HMAC_SHA512")).is_err());
        assert!(settings(Some("algorithm=HMAC_SHA256")).is_err());
    }

    #[test]
    fn a_json_body_must_hash_to_the_urls_body_sha256() {
        let body = br#"{"MessageSid":"SM1","Body":"STOP"}"#;
        let digest = hex::encode(Sha256::digest(body));
        let url = format!("https://h.example/twilio/inbound?bodySHA256={digest}");
        assert!(body_matches(&url, body));
        assert!(!body_matches(
            &url,
            br#"{"MessageSid":"SM1","Body":"START"}"#
        ));
        assert!(!body_matches("https://h.example/twilio/inbound", body));
    }
}
