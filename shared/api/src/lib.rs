//! # optline-api
//!
//! The few things every HTTP function does the same way: verify the person,
//! answer in JSON, and turn a port error into a status without leaking data.

pub mod reload;

use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, Response};
pub use optline_identity::{bearer, Group, Person, Rejected, Verifier};
use optline_ports::PortError;
use serde::Serialize;

/// Largest request body accepted by the JSON APIs and webhooks.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The person making a request: the `Authorization: Bearer <token>` a
/// Cognito user pool issued, verified here whatever the gateway checked.
/// `Err` is the 401 to return, with the failed check as its reason and a
/// `WWW-Authenticate` challenge (RFC 6750).
pub async fn person(verifier: &Verifier, request: &Request) -> Result<Person, Response<Body>> {
    let header = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let token = bearer(header).ok_or(Rejected::Missing);
    match token {
        Ok(token) => verifier.verify(token).await,
        Err(e) => Err(e),
    }
    .map_err(|rejected| unauthorized(&rejected))
}

/// The 401 for a refused token.
pub fn unauthorized(rejected: &Rejected) -> Response<Body> {
    let mut response = error(StatusCode::UNAUTHORIZED, &rejected.to_string());
    let challenge = match rejected {
        Rejected::Missing => "Bearer",
        _ => "Bearer error=\"invalid_token\"",
    };
    response
        .headers_mut()
        .insert("www-authenticate", HeaderValue::from_static(challenge));
    response
}

/// `Ok` when `person` is in one of `groups`, else the 403 naming them.
#[allow(clippy::result_large_err, reason = "the error is the response to send")]
pub fn require(person: &Person, groups: &[Group]) -> Result<(), Response<Body>> {
    if person.any(groups) {
        Ok(())
    } else {
        let names: Vec<&str> = groups.iter().map(|g| g.as_str()).collect();
        Err(error(
            StatusCode::FORBIDDEN,
            &format!("this needs one of the groups: {}", names.join(", ")),
        ))
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
