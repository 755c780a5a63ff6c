//! # optline-api
//!
//! The few things every HTTP function does the same way: check the caller,
//! answer in JSON, and turn a port error into a status without leaking data.

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
use optline_ports::PortError;
use serde::Serialize;
use subtle::ConstantTimeEq;

/// Largest request body accepted by the JSON APIs and webhooks.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How callers prove who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiAuth {
    /// API Gateway's IAM authorizer has already checked the caller (cloud).
    Iam,
    /// A bearer token (local use and simple deployments).
    Token(String),
    /// Nothing configured: every call is refused (fail closed).
    Refuse,
}

impl ApiAuth {
    /// From `API_AUTH` (`iam` or `token`) and `API_TOKEN`.
    pub fn from_env(token: Option<&str>) -> Self {
        let mode = std::env::var("API_AUTH").unwrap_or_default();
        match (mode.as_str(), token) {
            ("iam", _) => Self::Iam,
            (_, Some(t)) if !t.is_empty() => Self::Token(t.to_owned()),
            _ => Self::Refuse,
        }
    }

    /// Checks a request; `Err` is the 401 answer to return.
    #[allow(clippy::result_large_err, reason = "the error is the response to send")]
    pub fn check(&self, request: &Request) -> Result<(), Response<Body>> {
        match self {
            Self::Iam => Ok(()),
            Self::Refuse => Err(error(
                StatusCode::UNAUTHORIZED,
                "authentication is not configured",
            )),
            Self::Token(expected) => {
                let presented = request
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .unwrap_or_default();
                if bool::from(presented.as_bytes().ct_eq(expected.as_bytes())) {
                    Ok(())
                } else {
                    Err(error(
                        StatusCode::UNAUTHORIZED,
                        "missing or invalid bearer token",
                    ))
                }
            }
        }
    }
}

/// A JSON answer.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_owned());
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    response
}

/// A JSON error: `{"error": reason}`. Reasons never contain PHI.
pub fn error(status: StatusCode, reason: &str) -> Response<Body> {
    json(status, &serde_json::json!({ "error": reason }))
}

/// Maps a port error onto an answer.
pub fn port_error(err: &PortError) -> Response<Body> {
    match err {
        PortError::Conflict(reason) => error(StatusCode::CONFLICT, reason),
        PortError::Invalid(reason) => error(StatusCode::UNPROCESSABLE_ENTITY, reason),
        PortError::Corrupt(_) | PortError::Unavailable(_) => {
            tracing::error!(error = %err, "storage failure");
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage unavailable; try again",
            )
        }
    }
}

/// The request body as bytes, refusing oversize ones.
#[allow(clippy::result_large_err, reason = "the error is the response to send")]
pub fn body_bytes(request: &Request) -> Result<&[u8], Response<Body>> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(error(StatusCode::PAYLOAD_TOO_LARGE, "body exceeds 64 KiB"));
    }
    Ok(bytes)
}

/// Parses a JSON body into `T`, answering 400 with serde's reason.
#[allow(clippy::result_large_err, reason = "the error is the response to send")]
pub fn json_body<T: serde::de::DeserializeOwned>(request: &Request) -> Result<T, Response<Body>> {
    let bytes = body_bytes(request)?;
    serde_json::from_slice(bytes).map_err(|e| error(StatusCode::BAD_REQUEST, &json_reason(&e)))
}

pub use optline_ports::json_reason;
