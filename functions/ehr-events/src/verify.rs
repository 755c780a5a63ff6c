//! Verifying who sent an EHR event (architecture: "verified events only").
//!
//! Each source system is configured in `EHR_SOURCES` (JSON) with one of:
//!
//! - `{"hmac_sha256_secret": "...", "window_seconds": 300}`: the source sends
//!   `X-Optline-Source: <name>`, `X-Optline-Timestamp: <unix seconds>` and
//!   `X-Optline-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
//!   The timestamp must be within the window of now (a captured request
//!   cannot be replayed later), and the signature covers the exact body
//!   bytes (nothing can be changed in transit).
//! - `{"bearer_sha256": "<hex SHA-256 of the token>"}`: the source sends
//!   `X-Optline-Source: <name>` and `Authorization: Bearer <token>`.
//!
//! Either may add `"fhir": {…}`: the source's FHIR server and its SMART
//! Backend Services client ([`fhir_servers`]), from which id-only
//! notifications are fetched.
//!
//! A request without `X-Optline-Source` must carry the token of a person
//! in the operations or admin group (a manual event).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use lambda_http::http::HeaderMap;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How one source proves itself.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
pub enum SourceAuth {
    /// A signature over timestamp and body.
    Hmac {
        /// The shared secret.
        hmac_sha256_secret: String,
        /// Accepted clock difference either way, in seconds.
        #[serde(default = "default_window")]
        window_seconds: i64,
    },
    /// A bearer token, stored as its SHA-256.
    Bearer {
        /// Hex SHA-256 of the token.
        bearer_sha256: String,
    },
}

fn default_window() -> i64 {
    300
}

/// The configured sources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EhrSources(BTreeMap<String, SourceAuth>);

impl EhrSources {
    /// Parses `EHR_SOURCES`. A source's optional `fhir` settings (its FHIR
    /// server, for id-only notifications) are read by [`fhir_servers`].
    pub fn parse(json: &str) -> Result<Self, String> {
        let raw: BTreeMap<String, serde_json::Value> =
            serde_json::from_str(json).map_err(|e| format!("EHR_SOURCES is not valid: {e}"))?;
        let mut sources = BTreeMap::new();
        for (name, mut value) in raw {
            if let Some(object) = value.as_object_mut() {
                object.remove("fhir");
            }
            let auth: SourceAuth = serde_json::from_value(value)
                .map_err(|e| format!("EHR_SOURCES is not valid for {name}: {e}"))?;
            sources.insert(name, auth);
        }
        for name in sources.keys() {
            // A source's name is part of its subjects, step ids and markers.
            let ok = !name.is_empty()
                && name.len() <= 32
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !ok || name == optline_episodes::API_ORIGIN {
                return Err(format!(
                    "EHR_SOURCES: a source's name is 1 to 32 characters of A-Za-z0-9._- \
                     and not `{}`",
                    optline_episodes::API_ORIGIN
                ));
            }
        }
        Ok(Self(sources))
    }

    /// A single HMAC source (tests and simple deployments).
    pub fn hmac(name: &str, secret: &str, window_seconds: i64) -> Self {
        Self(BTreeMap::from([(
            name.to_owned(),
            SourceAuth::Hmac {
                hmac_sha256_secret: secret.to_owned(),
                window_seconds,
            },
        )]))
    }
}

/// The sources' FHIR servers: each source's `fhir` object (SMART Backend
/// Services: `fhir_base_url`, `token_url`, `client_id`, `key_id`,
/// `private_key_pkcs8_base64`, optional `scope`), for id-only notifications.
pub fn fhir_servers(json: &str) -> Result<BTreeMap<String, optline_aws::SmartConfig>, String> {
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_str(json).map_err(|e| format!("EHR_SOURCES is not valid: {e}"))?;
    let mut out = BTreeMap::new();
    for (name, value) in raw {
        if let Some(fhir) = value.get("fhir") {
            let config: optline_aws::SmartConfig =
                serde_json::from_value(fhir.clone()).map_err(|e| {
                    format!("EHR_SOURCES: the fhir settings of {name} are not valid: {e}")
                })?;
            out.insert(name, config);
        }
    }
    Ok(out)
}

/// The outcome of checking a request's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    /// A configured source proved itself.
    Source(String),
    /// The request names no source: the API authentication decides.
    NoSource,
}

/// Checks the source headers against the body. `Err` is the reason for a 401
/// (never echoing a secret or the body).
pub fn verify(
    sources: &EhrSources,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Verified, &'static str> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(name) = header("x-optline-source") else {
        return Ok(Verified::NoSource);
    };
    let Some(auth) = sources.0.get(name) else {
        return Err("unknown event source");
    };
    match auth {
        SourceAuth::Hmac {
            hmac_sha256_secret,
            window_seconds,
        } => {
            let timestamp: i64 = header("x-optline-timestamp")
                .and_then(|t| t.parse().ok())
                .ok_or("missing or malformed X-Optline-Timestamp")?;
            // abs_diff: a timestamp of i64::MIN is outside, not an overflow.
            let window = u64::try_from(*window_seconds).unwrap_or(0);
            if now.timestamp().abs_diff(timestamp) > window {
                return Err("the signature's timestamp is outside the replay window");
            }
            let given = header("x-optline-signature")
                .and_then(|s| s.strip_prefix("v1="))
                .and_then(|hex_sig| hex::decode(hex_sig).ok())
                .ok_or("missing or malformed X-Optline-Signature")?;
            let expected = signature(hmac_sha256_secret, timestamp, body);
            if bool::from(expected.as_slice().ct_eq(given.as_slice())) {
                Ok(Verified::Source(name.to_owned()))
            } else {
                Err("the signature does not match the body")
            }
        }
        SourceAuth::Bearer { bearer_sha256 } => {
            let token = header("authorization")
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or("missing bearer token")?;
            let digest = hex::encode(Sha256::digest(token.as_bytes()));
            if bool::from(digest.as_bytes().ct_eq(bearer_sha256.as_bytes())) {
                Ok(Verified::Source(name.to_owned()))
            } else {
                Err("invalid bearer token for this source")
            }
        }
    }
}

/// HMAC-SHA256 over `"<timestamp>.<body>"`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return Vec::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}
