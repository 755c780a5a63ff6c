//! # optline-api
//!
//! The few things every HTTP function does the same way: check the caller,
//! answer in JSON, and turn a port error into a status without leaking data.

pub mod reload;

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
            // The gateway's IAM authorizer checked the signature; the
            // function still insists on the identity it left in the request
            // context, so a request that reached it another way (no
            // authorizer, a misrouted stage) is refused, not trusted.
            Self::Iam => match iam_caller(request) {
                Some(_) => Ok(()),
                None => Err(error(
                    StatusCode::UNAUTHORIZED,
                    "no IAM identity in the request context",
                )),
            },
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

/// The IAM caller (its ARN) API Gateway's IAM authorizer put in an HTTP
/// API request's context, if any.
pub fn iam_caller(request: &Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;
    match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(context)) => context
            .authorizer
            .as_ref()
            .and_then(|auth| auth.iam.as_ref())
            .and_then(|iam| iam.user_arn.clone())
            .filter(|arn| arn.starts_with("arn:")),
        _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use lambda_http::request::RequestContext;
    use lambda_http::RequestExt;

    fn request(context: Option<serde_json::Value>) -> Request {
        let request = lambda_http::http::Request::builder()
            .method("GET")
            .uri("/templates")
            .body(Body::Empty)
            .unwrap_or_default();
        match context {
            Some(value) => request.with_request_context(RequestContext::ApiGatewayV2(
                serde_json::from_value(value).unwrap_or_default(),
            )),
            None => request,
        }
    }

    #[test]
    fn iam_mode_refuses_a_request_without_an_iam_identity_in_its_context() {
        let auth = ApiAuth::Iam;
        assert!(auth.check(&request(None)).is_err());
        assert!(auth
            .check(&request(Some(
                serde_json::json!({"routeKey": "GET /templates"})
            )))
            .is_err());
        let signed = serde_json::json!({
            "routeKey": "GET /templates",
            "timeEpoch": 1_764_000_000_000_i64,
            "http": {"method": "GET", "path": "/templates", "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "test"},
            "authorizer": {"iam": {
                "accessKey": "AKIAEXAMPLE",
                "accountId": "123456789012",
                "userArn": "arn:aws:sts::123456789012:assumed-role/ops/session",
            }}
        });
        assert!(auth.check(&request(Some(signed))).is_ok());
        assert_eq!(
            iam_caller(&request(Some(
                serde_json::json!({"authorizer": {"iam": {"userArn": "nobody"}}})
            ))),
            None
        );
    }
}
