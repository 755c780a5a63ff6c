//! A local stand-in for an EHR's FHIR server and its SMART token endpoint,
//! on loopback.
//!
//! The token endpoint checks each request as HL7 SMART App Launch v2,
//! "SMART Backend Services" (<https://hl7.org/fhir/smart-app-launch/backend-services.html>),
//! and RFC 7523 require:
//!
//! - `POST /token`, `application/x-www-form-urlencoded`, no parameter
//!   repeated (RFC 6749 §3.2), `grant_type=client_credentials`, a `scope`,
//!   and `client_assertion_type` exactly
//!   `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`;
//! - the `client_assertion`: three base64url parts without padding, a
//!   header with `alg` `RS384`, `typ` `JWT` and the registered `kid` (no
//!   `jku`: the key is registered ahead of time), a signature the
//!   registered public key verifies (RSASSA-PKCS1-v1_5 with SHA-384);
//!   claims `iss` = `sub` = the client id, `aud` = this endpoint's URL, an
//!   `exp` in the future and at most five minutes away, an `iat` not in the
//!   future, and a `jti` never seen before (a replayed assertion is
//!   refused).
//!
//! A refused request is answered `400` (`invalid_request`,
//! `unsupported_grant_type`) or `401` (`invalid_client`) as RFC 6749 §5.2
//! says, and counted ([`FhirStandIn::refused_assertions`]). An accepted one
//! gets `{"access_token", "token_type": "bearer", "expires_in": 300,
//! "scope"}` with the scope asked for.
//!
//! `GET /fhir/{type}/{id}` needs `Authorization: Bearer` with a token the
//! endpoint issued and that has not expired (`401` otherwise), and answers
//! the resource [`FhirStandIn::put`] stored as `application/fhir+json`, or
//! `404` with an `OperationOutcome`. [`FhirStandIn::fail_next`] makes the
//! next reads answer `503`.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{RsaKeyPair, RsaPublicKeyComponents, RSA_PKCS1_2048_8192_SHA384};
use tokio::net::TcpListener;

/// The `client_assertion_type` SMART Backend Services requires.
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an issued token lives, in seconds.
pub const TOKEN_LIFETIME_SECS: u64 = 300;

/// The longest an assertion may live (`exp` − now), in seconds.
const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;

/// Largest request body read.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Default)]
struct State {
    resources: HashMap<(String, String), serde_json::Value>,
    tokens: HashMap<String, Instant>,
    jtis: HashSet<String>,
    fail_next: usize,
    token_requests: usize,
    refused: Vec<String>,
    reads: usize,
    created: Vec<serde_json::Value>,
}

/// The bearer token of a request, or "" when it has none.
fn bearer_of(parts: &hyper::http::request::Parts) -> &str {
    parts
        .headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .unwrap_or_default()
}

/// The running stand-in; clones share it.
#[derive(Debug, Clone)]
pub struct FhirStandIn {
    origin: String,
    client_id: String,
    key_id: String,
    n: Vec<u8>,
    e: Vec<u8>,
    state: Arc<Mutex<State>>,
}

/// A refusal: its status, OAuth error code and reason (kept for tests).
type Refusal = (StatusCode, &'static str, String);

impl FhirStandIn {
    /// Starts on a free loopback port, with one registered client: its id,
    /// the `kid` of its key, and the public half of `key_pkcs8` (an RSA
    /// private key, PKCS#8 DER) as the key its assertions must verify with.
    pub async fn start(client_id: &str, key_id: &str, key_pkcs8: &[u8]) -> Self {
        let pair = RsaKeyPair::from_pkcs8(key_pkcs8).expect("an RSA PKCS#8 key");
        let public = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("local addr").port();
        let standin = Self {
            origin: format!("http://127.0.0.1:{port}"),
            client_id: client_id.to_owned(),
            key_id: key_id.to_owned(),
            n: public.n,
            e: public.e,
            state: Arc::new(Mutex::new(State::default())),
        };
        let server = standin.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let server = server.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request: hyper::Request<Incoming>| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.answer(request).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        standin
    }

    /// The FHIR base URL (`http://127.0.0.1:PORT/fhir`).
    pub fn base_url(&self) -> String {
        format!("{}/fhir", self.origin)
    }

    /// The token endpoint's URL, which assertions must name as `aud`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.origin)
    }

    /// Stores `resource`, keyed by its `resourceType` and `id`.
    pub fn put(&self, resource: serde_json::Value) {
        let kind = resource["resourceType"]
            .as_str()
            .expect("resourceType")
            .to_owned();
        let id = resource["id"].as_str().expect("id").to_owned();
        self.state
            .lock()
            .expect("lock")
            .resources
            .insert((kind, id), resource);
    }

    /// Serves `body` at `{resource_type}/{id}`, whatever it says it is
    /// (to stage a server answering the wrong resource).
    pub fn put_at(&self, resource_type: &str, id: &str, body: serde_json::Value) {
        self.state
            .lock()
            .expect("lock")
            .resources
            .insert((resource_type.to_owned(), id.to_owned()), body);
    }

    /// Makes the next `n` reads answer `503`.
    pub fn fail_next(&self, n: usize) {
        self.state.lock().expect("lock").fail_next = n;
    }

    /// Forgets every token issued, as a server restarted or revoking them
    /// would: the next read with one is answered `401`.
    pub fn revoke_tokens(&self) {
        self.state.lock().expect("lock").tokens.clear();
    }

    /// Requests to the token endpoint, accepted or not.
    pub fn token_requests(&self) -> usize {
        self.state.lock().expect("lock").token_requests
    }

    /// Token requests refused (a bad form or a bad assertion).
    pub fn refused_assertions(&self) -> usize {
        self.state.lock().expect("lock").refused.len()
    }

    /// Why each refused token request was refused.
    pub fn refusals(&self) -> Vec<String> {
        self.state.lock().expect("lock").refused.clone()
    }

    /// `GET`s under `/fhir`, whatever they were answered.
    pub fn reads(&self) -> usize {
        self.state.lock().expect("lock").reads
    }

    /// The JSON of an `optline_aws::SmartConfig` for this stand-in's client,
    /// signing with `key_pkcs8` (an RSA private key, PKCS#8 DER).
    pub fn smart_config(&self, key_pkcs8: &[u8]) -> serde_json::Value {
        serde_json::json!({
            "fhir_base_url": self.base_url(),
            "token_url": self.token_url(),
            "client_id": self.client_id,
            "scope": "system/Appointment.read system/Patient.read",
            "key_id": self.key_id,
            "private_key_pkcs8_base64": STANDARD.encode(key_pkcs8),
        })
    }

    async fn answer(&self, request: hyper::Request<Incoming>) -> hyper::Response<Full<Bytes>> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        if path == "/token" {
            self.state.lock().expect("lock").token_requests += 1;
            let body = match Limited::new(body, MAX_BODY).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => Bytes::new(),
            };
            let answer = if parts.method == hyper::Method::POST {
                self.token(&parts.headers, &body)
            } else {
                Err((
                    StatusCode::METHOD_NOT_ALLOWED,
                    "invalid_request",
                    format!("{} to the token endpoint", parts.method),
                ))
            };
            return match answer {
                Ok(json) => json_response(StatusCode::OK, "application/json", &json),
                Err((status, code, reason)) => {
                    self.state.lock().expect("lock").refused.push(reason);
                    json_response(
                        status,
                        "application/json",
                        &serde_json::json!({ "error": code }),
                    )
                }
            };
        }
        if parts.method == hyper::Method::POST && path.starts_with("/fhir/") {
            let body = match Limited::new(body, MAX_BODY).collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => Bytes::new(),
            };
            return self.create(&parts, &body);
        }
        if let Some(rest) = path.strip_prefix("/fhir/") {
            self.state.lock().expect("lock").reads += 1;
            return self.read(&parts, rest);
        }
        json_response(
            StatusCode::NOT_FOUND,
            "application/fhir+json",
            &outcome("not-found", "no such endpoint"),
        )
    }

    /// The token endpoint: checks the form and the assertion.
    fn token(&self, headers: &hyper::HeaderMap, body: &[u8]) -> Result<serde_json::Value, Refusal> {
        let bad_request = |reason: &str| {
            (
                StatusCode::BAD_REQUEST,
                "invalid_request",
                reason.to_owned(),
            )
        };
        let invalid_client = |reason: String| (StatusCode::UNAUTHORIZED, "invalid_client", reason);
        let content_type = headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !content_type
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded")
        {
            return Err(bad_request("not application/x-www-form-urlencoded"));
        }
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_bytes(body).map_err(|_| bad_request("not a form"))?;
        let mut form: HashMap<String, String> = HashMap::new();
        for (name, value) in pairs {
            if form.insert(name.clone(), value).is_some() {
                return Err(bad_request(&format!("{name} repeated")));
            }
        }
        let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
        if field("grant_type") != "client_credentials" {
            return Err((
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type {:?}", field("grant_type")),
            ));
        }
        if field("client_assertion_type") != ASSERTION_TYPE {
            return Err(invalid_client(format!(
                "client_assertion_type {:?}",
                field("client_assertion_type")
            )));
        }
        let scope = field("scope").to_owned();
        if scope.trim().is_empty() {
            return Err(bad_request("no scope"));
        }
        let claims = self
            .check_assertion(field("client_assertion"))
            .map_err(invalid_client)?;
        let jti = claims["jti"].as_str().unwrap_or_default().to_owned();
        let mut token = [0u8; 32];
        SystemRandom::new()
            .fill(&mut token)
            .expect("random bytes for a token");
        let token = hex::encode(token);
        let mut state = self.state.lock().expect("lock");
        if !state.jtis.insert(jti.clone()) {
            return Err(invalid_client(format!("jti {jti} replayed")));
        }
        state.tokens.insert(
            token.clone(),
            Instant::now() + Duration::from_secs(TOKEN_LIFETIME_SECS),
        );
        Ok(serde_json::json!({
            "access_token": token,
            "token_type": "bearer",
            "expires_in": TOKEN_LIFETIME_SECS,
            "scope": scope,
        }))
    }

    /// The assertion's claims, once its header, signature and claims pass.
    fn check_assertion(&self, jwt: &str) -> Result<serde_json::Value, String> {
        let parts: Vec<&str> = jwt.split('.').collect();
        let [header, claims, signature] = parts.as_slice() else {
            return Err(format!("the assertion has {} parts, not 3", parts.len()));
        };
        let decode = |part: &str, what: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| format!("the assertion's {what} is not unpadded base64url"))
        };
        let header_json: serde_json::Value = serde_json::from_slice(&decode(header, "header")?)
            .map_err(|_| "the assertion's header is not JSON".to_owned())?;
        if header_json["alg"] != "RS384" {
            return Err(format!("alg {}", header_json["alg"]));
        }
        if header_json["typ"] != "JWT" {
            return Err(format!("typ {}", header_json["typ"]));
        }
        if header_json["kid"] != self.key_id.as_str() {
            return Err(format!("kid {}", header_json["kid"]));
        }
        if header_json.get("jku").is_some() {
            return Err("jku: only the registered key is accepted".to_owned());
        }
        let signed = format!("{header}.{claims}");
        RsaPublicKeyComponents {
            n: &self.n,
            e: &self.e,
        }
        .verify(
            &RSA_PKCS1_2048_8192_SHA384,
            signed.as_bytes(),
            &decode(signature, "signature")?,
        )
        .map_err(|_| "the signature does not verify with the registered key".to_owned())?;
        let claims: serde_json::Value = serde_json::from_slice(&decode(claims, "claims")?)
            .map_err(|_| "the assertion's claims are not JSON".to_owned())?;
        if claims["iss"] != self.client_id.as_str() {
            return Err(format!("iss {}", claims["iss"]));
        }
        if claims["sub"] != self.client_id.as_str() {
            return Err(format!("sub {}", claims["sub"]));
        }
        if claims["aud"] != self.token_url().as_str() {
            return Err(format!("aud {}", claims["aud"]));
        }
        let now = chrono::Utc::now().timestamp();
        let exp = claims["exp"]
            .as_i64()
            .ok_or_else(|| "no numeric exp".to_owned())?;
        if exp <= now {
            return Err(format!("exp {exp} is past (now {now})"));
        }
        if exp > now + MAX_ASSERTION_LIFETIME_SECS {
            return Err(format!("exp {exp} is more than 5 minutes away (now {now})"));
        }
        if let Some(iat) = claims.get("iat") {
            let iat = iat
                .as_i64()
                .ok_or_else(|| "iat is not a number".to_owned())?;
            if iat > now + 5 {
                return Err(format!("iat {iat} is in the future (now {now})"));
            }
        }
        match claims["jti"].as_str() {
            Some(jti) if !jti.is_empty() && jti.len() <= 255 => {}
            _ => return Err("no jti".to_owned()),
        }
        Ok(claims)
    }

    /// `POST /fhir/{type}`: a create, conditional on `If-None-Exist:
    /// identifier=<system>|<value>` when given (FHIR: 200 and nothing new
    /// when a resource with that identifier exists, else 201).
    fn create(
        &self,
        parts: &hyper::http::request::Parts,
        body: &[u8],
    ) -> hyper::Response<Full<Bytes>> {
        let fhir = "application/fhir+json";
        let token = bearer_of(parts);
        let mut state = self.state.lock().expect("lock");
        if state
            .tokens
            .get(token)
            .is_none_or(|expires| Instant::now() >= *expires)
        {
            return json_response(
                StatusCode::UNAUTHORIZED,
                fhir,
                &outcome("login", "no valid bearer token"),
            );
        }
        let media_ok = parts
            .headers
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/fhir+json"));
        let Ok(resource) = serde_json::from_slice::<serde_json::Value>(body) else {
            return json_response(
                StatusCode::BAD_REQUEST,
                fhir,
                &outcome("invalid", "not JSON"),
            );
        };
        let kind = parts.uri.path().trim_start_matches("/fhir/").to_owned();
        if !media_ok || resource.get("resourceType").and_then(|t| t.as_str()) != Some(kind.as_str())
        {
            return json_response(
                StatusCode::BAD_REQUEST,
                fhir,
                &outcome(
                    "invalid",
                    "the body is not that resource type as application/fhir+json",
                ),
            );
        }
        let condition = parts
            .headers
            .get("if-none-exist")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("identifier="))
            .map(str::to_owned);
        if let Some(wanted) = &condition {
            let exists = state.created.iter().any(|r| {
                r.get("identifier")
                    .and_then(|i| i.as_array())
                    .is_some_and(|ids| {
                        ids.iter().any(|i| {
                            format!(
                                "{}|{}",
                                i.get("system").and_then(|s| s.as_str()).unwrap_or_default(),
                                i.get("value").and_then(|s| s.as_str()).unwrap_or_default()
                            ) == *wanted
                        })
                    })
            });
            if exists {
                return json_response(StatusCode::OK, fhir, &resource);
            }
        }
        state.created.push(resource.clone());
        json_response(StatusCode::CREATED, fhir, &resource)
    }

    /// Resources created through `POST /fhir/{type}`.
    pub fn created(&self) -> Vec<serde_json::Value> {
        self.state.lock().expect("lock").created.clone()
    }

    /// `GET /fhir/{type}/{id}`.
    fn read(
        &self,
        parts: &hyper::http::request::Parts,
        rest: &str,
    ) -> hyper::Response<Full<Bytes>> {
        let fhir = "application/fhir+json";
        if parts.method != hyper::Method::GET {
            return json_response(
                StatusCode::METHOD_NOT_ALLOWED,
                fhir,
                &outcome("not-supported", "only reads"),
            );
        }
        let token = bearer_of(parts);
        let mut state = self.state.lock().expect("lock");
        let valid = state
            .tokens
            .get(token)
            .is_some_and(|expires| Instant::now() < *expires);
        if !valid {
            let mut response = json_response(
                StatusCode::UNAUTHORIZED,
                fhir,
                &outcome("login", "no valid bearer token"),
            );
            response.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            return response;
        }
        let accept = parts
            .headers
            .get(hyper::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("*/*");
        if !["application/fhir+json", "application/json", "*/*"]
            .iter()
            .any(|m| accept.contains(m))
        {
            return json_response(
                StatusCode::NOT_ACCEPTABLE,
                fhir,
                &outcome("not-supported", "JSON only"),
            );
        }
        if state.fail_next > 0 {
            state.fail_next -= 1;
            return json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                fhir,
                &outcome("transient", "try again"),
            );
        }
        let segments: Vec<&str> = rest.split('/').collect();
        let [kind, id] = segments.as_slice() else {
            return json_response(
                StatusCode::NOT_FOUND,
                fhir,
                &outcome("not-found", "not a read"),
            );
        };
        match state.resources.get(&((*kind).to_owned(), (*id).to_owned())) {
            Some(resource) => json_response(StatusCode::OK, fhir, resource),
            None => json_response(
                StatusCode::NOT_FOUND,
                fhir,
                &outcome("not-found", &format!("{kind}/{id} is not known")),
            ),
        }
    }
}

/// A FHIR `OperationOutcome` with one error.
fn outcome(code: &str, text: &str) -> serde_json::Value {
    serde_json::json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": code, "diagnostics": text }],
    })
}

fn json_response(
    status: StatusCode,
    content_type: &'static str,
    json: &serde_json::Value,
) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(json.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}
