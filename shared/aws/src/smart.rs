//! Reads FHIR resources from an EHR source's FHIR server, authorized with
//! SMART Backend Services (HL7 SMART App Launch v2, "Backend Services").
//!
//! For each read the reader holds an access token for the source, got with
//! the OAuth 2.0 client credentials grant and a signed JWT client assertion
//! (RFC 7523, `private_key_jwt`):
//!
//! - `POST token_url`, form encoded: `grant_type=client_credentials`,
//!   `scope`, `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`
//!   and `client_assertion`, a JWT signed RS384 with the key registered at
//!   the EHR (header `{"alg":"RS384","typ":"JWT","kid"}`, claims `iss` =
//!   `sub` = the client id, `aud` = the token URL, `exp` five minutes ahead
//!   (the specification's maximum), `iat`, and a random `jti`);
//! - the answer `{"access_token", "token_type": "bearer", "expires_in",
//!   "scope"}`; the token is kept until a minute before it expires, and
//!   dropped when the FHIR server refuses it (`401`, then one retry with a
//!   new token).
//!
//! Then `GET {fhir_base_url}/{type}/{id}` with `Accept:
//! application/fhir+json`. Timeouts, `429` and `5xx` are retried (three
//! attempts in all, 200 ms then 400 ms apart, longer when `Retry-After`
//! says so, up to 2 s); answers are bounded to 1 MiB. Errors name the
//! source and the resource asked for, never a resource's body, a token or
//! a key.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use optline_ports::{FhirReader, PortError};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA384};
use serde::Deserialize;

/// The scope asked for when a source's configuration names none.
pub const DEFAULT_SCOPE: &str = "system/Appointment.read system/Patient.read";

/// The `client_assertion_type` of a JWT client assertion (RFC 7523).
const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid: the specification's maximum.
const ASSERTION_LIFETIME_SECS: i64 = 300;

/// A token is renewed this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// Each request's timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The pauses between attempts: three attempts in all.
const BACKOFF: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(400)];

/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(2);

/// The largest resource read.
const MAX_RESOURCE_BYTES: usize = 1024 * 1024;

/// The largest token answer read.
const MAX_TOKEN_BYTES: usize = 64 * 1024;

/// The longest FHIR type name or id accepted.
const MAX_NAME: usize = 64;

fn default_scope() -> String {
    DEFAULT_SCOPE.to_owned()
}

/// One EHR source's FHIR server and its SMART Backend Services client, as
/// the EHR sources secret holds it.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmartConfig {
    /// The FHIR base URL (`https://…/fhir`; `http://127.0.0.1…` or
    /// `http://localhost…` for local runs only).
    pub fhir_base_url: String,
    /// The authorization server's token endpoint (same rule).
    pub token_url: String,
    /// The client id the EHR registered.
    pub client_id: String,
    /// The scopes asked for (SMART v2 system scopes, space separated).
    #[serde(default = "default_scope")]
    pub scope: String,
    /// The `kid` of the public key (JWK) registered with the EHR.
    pub key_id: String,
    /// The RSA private key, PKCS#8 DER, base64 (standard alphabet).
    pub private_key_pkcs8_base64: String,
}

impl std::fmt::Debug for SmartConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartConfig")
            .field("fhir_base_url", &self.fhir_base_url)
            .field("token_url", &self.token_url)
            .field("client_id", &self.client_id)
            .field("scope", &self.scope)
            .field("key_id", &self.key_id)
            .field("private_key_pkcs8_base64", &"<redacted>")
            .finish()
    }
}

/// A token and the instant it stops being used.
struct CachedToken {
    value: String,
    renew_at: Instant,
}

/// One source, its key parsed.
struct Source {
    fhir_base_url: String,
    token_url: String,
    client_id: String,
    scope: String,
    key_id: String,
    key: RsaKeyPair,
    /// Held while a token is fetched, so concurrent reads ask for one.
    token: tokio::sync::Mutex<Option<CachedToken>>,
}

/// Reads resources from each configured source's FHIR server with SMART
/// Backend Services authorization ([`FhirReader`]).
pub struct SmartFhirReader {
    http: reqwest::Client,
    rng: SystemRandom,
    sources: BTreeMap<String, Source>,
}

impl std::fmt::Debug for SmartFhirReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartFhirReader")
            .field("sources", &self.sources.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Accepts `https://…`, or `http://` to a loopback host (local runs).
fn check_url(source: &str, field: &str, value: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(value)
        .map_err(|e| format!("source `{source}`: {field} is not a URL ({e})"))?;
    let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => {
            return Err(format!(
                "source `{source}`: {field} must be https (http only to a loopback host)"
            ))
        }
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "source `{source}`: {field} must have no query or fragment"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "source `{source}`: {field} must not carry credentials"
        ));
    }
    Ok(())
}

impl SmartFhirReader {
    /// A reader for these sources (by source name).
    ///
    /// # Errors
    ///
    /// When a source's URLs are not https (or http to loopback), a field is
    /// empty, or its key is not base64 of an RSA PKCS#8 private key ring
    /// accepts (2048 to 8192 bits). The message names the source and the
    /// field, never the key.
    pub fn new(configs: BTreeMap<String, SmartConfig>) -> Result<Self, String> {
        let mut sources = BTreeMap::new();
        for (name, config) in configs {
            check_url(&name, "fhir_base_url", &config.fhir_base_url)?;
            check_url(&name, "token_url", &config.token_url)?;
            let fhir_base_url = config.fhir_base_url.trim_end_matches('/').to_owned();
            // The assertion's `aud` is the token URL exactly as configured.
            let token_url = config.token_url.clone();
            for (field, value) in [
                ("client_id", &config.client_id),
                ("key_id", &config.key_id),
                ("scope", &config.scope),
            ] {
                if value.trim().is_empty() {
                    return Err(format!("source `{name}`: {field} is empty"));
                }
            }
            let der = STANDARD
                .decode(config.private_key_pkcs8_base64.trim())
                .map_err(|_| format!("source `{name}`: private_key_pkcs8_base64 is not base64"))?;
            let key = RsaKeyPair::from_pkcs8(&der).map_err(|e| {
                format!(
                    "source `{name}`: private_key_pkcs8_base64 is not an RSA PKCS#8 private key ({e})"
                )
            })?;
            sources.insert(
                name,
                Source {
                    fhir_base_url,
                    token_url,
                    client_id: config.client_id,
                    scope: config.scope,
                    key_id: config.key_id,
                    key,
                    token: tokio::sync::Mutex::new(None),
                },
            );
        }
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(REQUEST_TIMEOUT)
            // A bearer token is never sent on to another address.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            http,
            rng: SystemRandom::new(),
            sources,
        })
    }

    /// The names of the configured sources.
    pub fn sources(&self) -> impl Iterator<Item = &str> {
        self.sources.keys().map(String::as_str)
    }

    /// The source's token: the cached one, or a new one.
    async fn token(&self, name: &str, source: &Source) -> Result<String, PortError> {
        let mut cached = source.token.lock().await;
        if let Some(token) = cached.as_ref() {
            if Instant::now() < token.renew_at {
                return Ok(token.value.clone());
            }
        }
        *cached = None;
        let (value, lifetime) = self.request_token(name, source).await?;
        let now = Instant::now();
        // A token that lives no longer than the margin is used once.
        if let Some(kept) = lifetime.checked_sub(TOKEN_MARGIN) {
            if !kept.is_zero() {
                *cached = Some(CachedToken {
                    value: value.clone(),
                    renew_at: now + kept,
                });
            }
        }
        Ok(value)
    }

    /// Forgets `token` if it is still the one cached.
    async fn drop_token(source: &Source, token: &str) {
        let mut cached = source.token.lock().await;
        if cached.as_ref().is_some_and(|c| c.value == token) {
            *cached = None;
        }
    }

    /// The client credentials grant with a fresh assertion per attempt; the
    /// token and its lifetime.
    async fn request_token(
        &self,
        name: &str,
        source: &Source,
    ) -> Result<(String, Duration), PortError> {
        let what = format!("the token endpoint of source `{name}`");
        let (status, body) = self
            .exchange(&what, MAX_TOKEN_BYTES, || {
                let assertion =
                    client_assertion(source, &self.rng, chrono::Utc::now().timestamp())?;
                let form = serde_urlencoded::to_string([
                    ("grant_type", "client_credentials"),
                    ("scope", source.scope.as_str()),
                    ("client_assertion_type", ASSERTION_TYPE),
                    ("client_assertion", assertion.as_str()),
                ])
                .map_err(|e| PortError::Invalid(format!("{what}: form encoding: {e}")))?;
                Ok(self
                    .http
                    .post(&source.token_url)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .header(reqwest::header::ACCEPT, "application/json")
                    .body(form))
            })
            .await?;
        if !status.is_success() {
            // An OAuth error code is a short ASCII word (RFC 6749 §5.2);
            // nothing else of the answer is repeated.
            let code = serde_json::from_slice::<OAuthError>(&body)
                .ok()
                .map(|e| e.error)
                .filter(|c| {
                    c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                .unwrap_or_default();
            return Err(PortError::Unavailable(format!(
                "{what} refused the client assertion (HTTP {}{}{code})",
                status.as_u16(),
                if code.is_empty() { "" } else { " " }
            )));
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|_| {
            PortError::Unavailable(format!(
                "{what} answered without {{\"access_token\", \"token_type\", \"expires_in\"}}"
            ))
        })?;
        if !answer.token_type.eq_ignore_ascii_case("bearer") {
            return Err(PortError::Unavailable(format!(
                "{what} answered a token that is not a bearer token"
            )));
        }
        // Visible ASCII only: it goes in a header as it is.
        if answer.access_token.is_empty()
            || !answer.access_token.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(PortError::Unavailable(format!(
                "{what} answered an empty or malformed access token"
            )));
        }
        let lifetime = answer
            .expires_in
            .and_then(Lifetime::seconds)
            .map_or(Duration::ZERO, Duration::from_secs);
        Ok((answer.access_token, lifetime))
    }

    /// Sends what `build` makes, again after a timeout, a `429` or a `5xx`
    /// (three attempts in all); the status and the body (at most `limit`
    /// bytes) of the first other answer.
    async fn exchange<F>(
        &self,
        what: &str,
        limit: usize,
        build: F,
    ) -> Result<(reqwest::StatusCode, Vec<u8>), PortError>
    where
        F: Fn() -> Result<reqwest::RequestBuilder, PortError>,
    {
        let mut pauses = BACKOFF.iter();
        loop {
            let (reason, after) = match build()?.send().await {
                Err(e) => (describe(&e), None),
                Ok(response) => {
                    let status = response.status();
                    if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
                    {
                        (format!("HTTP {}", status.as_u16()), retry_after(&response))
                    } else {
                        match bounded_body(response, limit).await {
                            Ok(body) => return Ok((status, body)),
                            Err(BodyError::TooLarge) => {
                                return Err(PortError::Invalid(format!(
                                    "{what} answered more than {limit} bytes"
                                )))
                            }
                            Err(BodyError::Transport(e)) => (describe(&e), None),
                        }
                    }
                }
            };
            let Some(pause) = pauses.next() else {
                return Err(PortError::Unavailable(format!(
                    "{what}: {reason} ({} attempts)",
                    BACKOFF.len() + 1
                )));
            };
            let pause = after.map_or(*pause, |a| a.min(MAX_RETRY_AFTER).max(*pause));
            tokio::time::sleep(pause).await;
        }
    }
}

#[derive(Deserialize)]
struct OAuthError {
    error: String,
}

/// `expires_in`: a number, or a number in a string as some servers send.
#[derive(Deserialize)]
#[serde(untagged)]
enum Lifetime {
    Number(u64),
    Text(String),
}

impl Lifetime {
    fn seconds(self) -> Option<u64> {
        match self {
            Self::Number(n) => Some(n),
            Self::Text(t) => t.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    token_type: String,
    #[serde(default)]
    expires_in: Option<Lifetime>,
}

enum BodyError {
    TooLarge,
    Transport(reqwest::Error),
}

/// The body, refused past `limit` bytes before it is all read.
async fn bounded_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
    {
        return Err(BodyError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len().saturating_add(chunk.len()) > limit {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `Retry-After` in seconds (an HTTP date is ignored).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

/// A transport failure, without the URL.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "the request failed".to_owned()
    }
}

/// The RS384-signed JWT client assertion, as of `now` (unix seconds).
fn client_assertion(source: &Source, rng: &SystemRandom, now: i64) -> Result<String, PortError> {
    let mut jti = [0u8; 16];
    rng.fill(&mut jti)
        .map_err(|_| PortError::Unavailable("no random bytes for a jti".to_owned()))?;
    let header = serde_json::json!({
        "alg": "RS384",
        "typ": "JWT",
        "kid": source.key_id,
    });
    let claims = serde_json::json!({
        "iss": source.client_id,
        "sub": source.client_id,
        "aud": source.token_url,
        "exp": now + ASSERTION_LIFETIME_SECS,
        "iat": now,
        "jti": hex::encode(jti),
    });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0u8; source.key.public().modulus_len()];
    source
        .key
        .sign(
            &RSA_PKCS1_SHA384,
            rng,
            signing_input.as_bytes(),
            &mut signature,
        )
        .map_err(|_| PortError::Unavailable("signing the client assertion failed".to_owned()))?;
    Ok(format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    ))
}

/// A FHIR resource type name: ASCII letters.
fn is_type_name(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_NAME && value.bytes().all(|b| b.is_ascii_alphabetic())
}

/// A FHIR id (`[A-Za-z0-9\-\.]{1,64}`), and not `.` or `..`, which would
/// name another path.
fn is_fhir_id(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_NAME
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !value.bytes().all(|b| b == b'.')
}

/// What one read came back with.
enum Read {
    Resource(serde_json::Value),
    Unauthorized,
}

impl SmartFhirReader {
    async fn read_once(
        &self,
        name: &str,
        source: &Source,
        resource_type: &str,
        id: &str,
        token: &str,
    ) -> Result<Read, PortError> {
        let what = format!("the FHIR server of source `{name}` ({resource_type}/{id})");
        let url = format!("{}/{resource_type}/{id}", source.fhir_base_url);
        let (status, body) = self
            .exchange(&what, MAX_RESOURCE_BYTES, || {
                Ok(self
                    .http
                    .get(&url)
                    .bearer_auth(token)
                    .header(reqwest::header::ACCEPT, "application/fhir+json"))
            })
            .await?;
        match status.as_u16() {
            200 => {}
            401 => return Ok(Read::Unauthorized),
            403 => {
                return Err(PortError::Unavailable(format!(
                    "{what} refused access (HTTP 403): does the client have the scope?"
                )))
            }
            404 | 410 => {
                return Err(PortError::Invalid(format!(
                    "{resource_type}/{id} not found on the source's FHIR server (source `{name}`, HTTP {})",
                    status.as_u16()
                )))
            }
            other => {
                return Err(PortError::Invalid(format!(
                    "{what} answered HTTP {other} to the read"
                )))
            }
        }
        let resource: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            PortError::Invalid(format!("{what} answered something other than JSON"))
        })?;
        let matches = resource.get("resourceType").and_then(|t| t.as_str()) == Some(resource_type)
            && resource.get("id").and_then(|i| i.as_str()) == Some(id);
        if !matches {
            return Err(PortError::Invalid(format!(
                "{what} answered a resource other than the one asked for"
            )));
        }
        Ok(Read::Resource(resource))
    }
}

impl SmartFhirReader {
    /// Creates `resource` on the source's FHIR server (`POST
    /// <base>/<type>`), as a conditional create: `if_none_exist` (e.g.
    /// `identifier=urn:optline:consent-event|<id>`) makes a repeat create
    /// nothing (FHIR answers 200 instead of 201). The status, 200 or 201.
    pub async fn create(
        &self,
        source: &str,
        resource: &serde_json::Value,
        if_none_exist: &str,
    ) -> Result<u16, PortError> {
        let resource_type = resource
            .get("resourceType")
            .and_then(|t| t.as_str())
            .filter(|t| is_type_name(t))
            .ok_or_else(|| PortError::Invalid("the resource has no FHIR type".to_owned()))?;
        let entry = self.sources.get(source).ok_or_else(|| {
            PortError::Invalid(format!("no FHIR server configured for source `{source}`"))
        })?;
        let url = format!("{}/{resource_type}", entry.fhir_base_url);
        let what = format!("the FHIR server of source `{source}` (create {resource_type})");
        let body = resource.to_string();
        let mut renewed = false;
        loop {
            let token = self.token(source, entry).await?;
            let (status, _) = self
                .exchange(&what, MAX_RESOURCE_BYTES, || {
                    Ok(self
                        .http
                        .post(&url)
                        .bearer_auth(&token)
                        .header(reqwest::header::CONTENT_TYPE, "application/fhir+json")
                        .header(reqwest::header::ACCEPT, "application/fhir+json")
                        .header("If-None-Exist", if_none_exist)
                        .body(body.clone()))
                })
                .await?;
            match status.as_u16() {
                code @ (200 | 201) => return Ok(code),
                401 if !renewed => {
                    Self::drop_token(entry, &token).await;
                    renewed = true;
                }
                other => {
                    return Err(PortError::Unavailable(format!(
                        "{what} answered HTTP {other}"
                    )))
                }
            }
        }
    }
}

#[async_trait]
impl FhirReader for SmartFhirReader {
    async fn read(
        &self,
        source: &str,
        resource_type: &str,
        id: &str,
    ) -> Result<serde_json::Value, PortError> {
        if !is_type_name(resource_type) {
            return Err(PortError::Invalid(
                "the resource type is not a FHIR type name".to_owned(),
            ));
        }
        if !is_fhir_id(id) {
            return Err(PortError::Invalid(
                "the resource id is not a FHIR id".to_owned(),
            ));
        }
        let entry = self.sources.get(source).ok_or_else(|| {
            PortError::Invalid(format!("no FHIR server configured for source `{source}`"))
        })?;
        let mut renewed = false;
        loop {
            let token = self.token(source, entry).await?;
            match self
                .read_once(source, entry, resource_type, id, &token)
                .await?
            {
                Read::Resource(resource) => return Ok(resource),
                Read::Unauthorized => {
                    Self::drop_token(entry, &token).await;
                    if renewed {
                        return Err(PortError::Unavailable(format!(
                            "the FHIR server of source `{source}` refused a new access token (HTTP 401)"
                        )));
                    }
                    renewed = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA384};

    const TEST_KEY: &[u8] = include_bytes!("../tests/fixtures/smart-test-key.pk8");

    fn config() -> SmartConfig {
        SmartConfig {
            fhir_base_url: "https://ehr.example.test/fhir/".to_owned(),
            token_url: "https://ehr.example.test/oauth2/token".to_owned(),
            client_id: "optline-client".to_owned(),
            scope: DEFAULT_SCOPE.to_owned(),
            key_id: "key-2025".to_owned(),
            private_key_pkcs8_base64: STANDARD.encode(TEST_KEY),
        }
    }

    fn reader() -> SmartFhirReader {
        SmartFhirReader::new(BTreeMap::from([("epic".to_owned(), config())])).unwrap()
    }

    fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn the_assertion_is_an_rs384_jwt_the_public_key_verifies() {
        let reader = reader();
        let source = &reader.sources["epic"];
        let now = 1_750_000_000;
        let jwt = client_assertion(source, &reader.rng, now).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| !p.contains('=')), "no padding");

        let header = decode(parts[0]);
        assert_eq!(
            header,
            serde_json::json!({"alg": "RS384", "typ": "JWT", "kid": "key-2025"})
        );
        let claims = decode(parts[1]);
        assert_eq!(claims["iss"], "optline-client");
        assert_eq!(claims["sub"], "optline-client");
        assert_eq!(claims["aud"], "https://ehr.example.test/oauth2/token");
        assert_eq!(claims["iat"], now);
        assert_eq!(claims["exp"], now + 300);
        let jti = claims["jti"].as_str().unwrap();
        assert_eq!(jti.len(), 32);

        let public = RsaKeyPair::from_pkcs8(TEST_KEY).unwrap();
        let components = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(public.public());
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        let signed = format!("{}.{}", parts[0], parts[1]);
        RsaPublicKeyComponents {
            n: &components.n,
            e: &components.e,
        }
        .verify(&RSA_PKCS1_2048_8192_SHA384, signed.as_bytes(), &signature)
        .unwrap();

        // Tampered claims do not verify.
        let forged = format!("{}.{}", parts[0], URL_SAFE_NO_PAD.encode(b"{}"));
        assert!(RsaPublicKeyComponents {
            n: &components.n,
            e: &components.e,
        }
        .verify(&RSA_PKCS1_2048_8192_SHA384, forged.as_bytes(), &signature)
        .is_err());
    }

    #[test]
    fn each_assertion_has_its_own_jti() {
        let reader = reader();
        let source = &reader.sources["epic"];
        let a = client_assertion(source, &reader.rng, 0).unwrap();
        let b = client_assertion(source, &reader.rng, 0).unwrap();
        let jti = |jwt: &str| decode(jwt.split('.').nth(1).unwrap())["jti"].clone();
        assert_ne!(jti(&a), jti(&b));
    }

    #[test]
    fn the_base_url_loses_its_trailing_slash() {
        assert_eq!(
            reader().sources["epic"].fhir_base_url,
            "https://ehr.example.test/fhir"
        );
    }

    #[test]
    fn a_bad_key_is_refused_naming_the_source_not_the_key() {
        let mut bad = config();
        bad.private_key_pkcs8_base64 = STANDARD.encode(b"not a key at all");
        let error =
            SmartFhirReader::new(BTreeMap::from([("epic".to_owned(), bad.clone())])).unwrap_err();
        assert!(error.contains("`epic`"), "{error}");
        assert!(!error.contains(&bad.private_key_pkcs8_base64), "{error}");

        bad.private_key_pkcs8_base64 = "%%%".to_owned();
        let error = SmartFhirReader::new(BTreeMap::from([("epic".to_owned(), bad)])).unwrap_err();
        assert!(error.contains("not base64"), "{error}");
    }

    #[test]
    fn plain_http_is_for_loopback_only() {
        let mut remote = config();
        remote.fhir_base_url = "http://ehr.example.test/fhir".to_owned();
        assert!(SmartFhirReader::new(BTreeMap::from([("s".to_owned(), remote)])).is_err());
        let mut local = config();
        local.fhir_base_url = "http://127.0.0.1:8080/fhir".to_owned();
        local.token_url = "http://localhost:8080/token".to_owned();
        assert!(SmartFhirReader::new(BTreeMap::from([("s".to_owned(), local)])).is_ok());
    }

    #[test]
    fn debug_hides_the_key() {
        let config = config();
        let shown = format!("{config:?}");
        assert!(shown.contains("<redacted>"));
        assert!(!shown.contains(&config.private_key_pkcs8_base64));
        let reader = format!("{:?}", reader());
        assert!(!reader.contains(&config.private_key_pkcs8_base64));
    }

    #[test]
    fn the_config_parses_with_the_default_scope_and_refuses_unknown_fields() {
        let json = serde_json::json!({
            "fhir_base_url": "https://ehr.example.test/fhir",
            "token_url": "https://ehr.example.test/token",
            "client_id": "c",
            "key_id": "k",
            "private_key_pkcs8_base64": "AAAA",
        });
        let parsed: SmartConfig = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(parsed.scope, DEFAULT_SCOPE);
        let mut extra = json;
        extra["secret"] = "x".into();
        assert!(serde_json::from_value::<SmartConfig>(extra).is_err());
    }

    #[test]
    fn names_and_ids_are_checked() {
        assert!(is_type_name("Appointment"));
        assert!(!is_type_name(""));
        assert!(!is_type_name("Appointment/1"));
        assert!(!is_type_name(&"A".repeat(65)));
        assert!(is_fhir_id("abc-1.2"));
        assert!(is_fhir_id(&"a".repeat(64)));
        assert!(!is_fhir_id(&"a".repeat(65)));
        assert!(!is_fhir_id(""));
        assert!(!is_fhir_id(".."));
        assert!(!is_fhir_id("a/b"));
        assert!(!is_fhir_id("a_b"));
    }

    #[tokio::test]
    async fn bad_names_and_unknown_sources_are_refused_before_any_request() {
        let reader = reader();
        for (source, kind, id) in [
            ("epic", "Appointment", "../x"),
            ("epic", "Appoint ment", "1"),
            ("other", "Appointment", "1"),
        ] {
            match reader.read(source, kind, id).await {
                Err(PortError::Invalid(_)) => {}
                other => panic!("{source} {kind} {id}: {other:?}"),
            }
        }
    }
}
