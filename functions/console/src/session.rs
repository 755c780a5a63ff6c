//! Signing in and the session: the ID token Cognito issued, kept in a
//! cookie and verified on every request; the CSRF token bound to it.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use lambda_http::http::{HeaderValue, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use optline_identity::Person;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::html::{self, esc};
use crate::{html_response as page_html, refusal, see_other, Deps};

/// The session cookie: the person's ID token.
pub const SESSION_COOKIE: &str = "optline_session";
/// The sign-in form's own CSRF cookie (before there is a session).
const SIGN_IN_COOKIE: &str = "optline_signin";
/// The hosted UI round trip: `state.verifier` (PKCE).
const OAUTH_COOKIE: &str = "optline_oauth";

/// How people sign in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// Cognito's hosted UI: the authorization code flow with PKCE.
    HostedUi {
        /// `https://<prefix>.auth.<region>.amazoncognito.com`.
        domain: String,
        /// The app client.
        client_id: String,
        /// The console's public base URL (`https://api.example.org`); the
        /// callback is `<base>/console/callback`.
        base_url: String,
    },
    /// A password form against a pool that allows `USER_PASSWORD_AUTH`:
    /// the local emulator only (deployed app clients allow SRP, not this).
    Password {
        /// The Cognito endpoint (the emulator's URL).
        endpoint: String,
        /// The app client.
        client_id: String,
    },
}

impl SignIn {
    /// From `COGNITO_DOMAIN` and `CONSOLE_BASE_URL` (the hosted UI), else,
    /// with `AWS_ENDPOINT_URL` set (the local emulator), the password form.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let client_id = var("USER_POOL_CLIENT_ID")
            .and_then(|c| c.split(',').next().map(str::to_owned))
            .ok_or("USER_POOL_CLIENT_ID is not set")?;
        match (
            var("COGNITO_DOMAIN"),
            var("CONSOLE_BASE_URL"),
            var("AWS_ENDPOINT_URL"),
        ) {
            (Some(domain), Some(base_url), _) => Ok(Self::HostedUi {
                domain: domain.trim_end_matches('/').to_owned(),
                client_id,
                base_url: base_url.trim_end_matches('/').to_owned(),
            }),
            (_, _, Some(endpoint)) => Ok(Self::Password {
                endpoint,
                client_id,
            }),
            _ => Err("set COGNITO_DOMAIN and CONSOLE_BASE_URL for the hosted sign-in".to_owned()),
        }
    }
}

/// A verified session.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// Who.
    pub person: Person,
    /// The CSRF token every form of this session carries.
    pub csrf: String,
}

/// The CSRF token of a session: a hash of its token, which a page on
/// another site can neither read (the cookie is `HttpOnly`) nor derive.
pub fn csrf_for(token: &str) -> String {
    let digest = Sha256::digest([b"optline-console-csrf\0".as_slice(), token.as_bytes()].concat());
    hex::encode(digest).chars().take(32).collect()
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request
        .headers()
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn random_token(bytes: usize) -> Option<String> {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new().fill(&mut buf).ok()?;
    Some(URL_SAFE_NO_PAD.encode(buf))
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A `Set-Cookie` value.
fn set_cookie(name: &str, value: &str, max_age: i64, same_site: &str) -> String {
    format!(
        "{name}={value}; Path=/console; Max-Age={max_age}; HttpOnly; Secure; SameSite={same_site}"
    )
}

fn with_cookie(mut response: Response<Body>, cookie: &str) -> Response<Body> {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().append("set-cookie", value);
    }
    response
}

/// The signed-in person, if the session cookie holds a token that verifies.
pub async fn current(request: &Request, deps: &Deps) -> Option<SignedIn> {
    let token = cookie(request, SESSION_COOKIE)?;
    let person = deps.people.verify(token).await.ok()?;
    Some(SignedIn {
        person,
        csrf: csrf_for(token),
    })
}

/// A form posted in a session: parsed, bounded, and refused (403) unless
/// it carries the session's CSRF token.
#[allow(clippy::result_large_err, reason = "the error is the response to send")]
pub fn form(
    request: &Request,
    signed_in: &SignedIn,
) -> Result<HashMap<String, String>, Response<Body>> {
    let bytes = optline_api::body_bytes(request)?;
    let fields: HashMap<String, String> = serde_urlencoded::from_bytes(bytes).map_err(|_| {
        refusal(
            StatusCode::BAD_REQUEST,
            Some(&signed_in.person),
            &signed_in.csrf,
            "The form could not be read.",
        )
    })?;
    match fields.get("csrf") {
        Some(token) if same(token, &signed_in.csrf) => Ok(fields),
        _ => Err(refusal(
            StatusCode::FORBIDDEN,
            Some(&signed_in.person),
            &signed_in.csrf,
            "This form is stale or came from another site (CSRF check failed). Reload the page and try again.",
        )),
    }
}

/// `GET /console/signin`: the password form (local) or a redirect to
/// Cognito's hosted UI (cloud).
pub fn sign_in_page(_request: &Request, deps: &Deps, failed: Option<&str>) -> Response<Body> {
    match &deps.sign_in {
        SignIn::HostedUi {
            domain,
            client_id,
            base_url,
        } => {
            let (Some(state), Some(verifier)) = (random_token(16), random_token(32)) else {
                return refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    "",
                    "No randomness; try again.",
                );
            };
            let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
            let query = serde_urlencoded::to_string([
                ("response_type", "code"),
                ("client_id", client_id.as_str()),
                ("redirect_uri", &format!("{base_url}/console/callback")),
                ("scope", "openid email profile"),
                ("state", state.as_str()),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ])
            .unwrap_or_default();
            let mut response = Response::new(Body::Empty);
            *response.status_mut() = StatusCode::SEE_OTHER;
            if let Ok(v) = HeaderValue::from_str(&format!("{domain}/oauth2/authorize?{query}")) {
                response.headers_mut().insert("location", v);
            }
            // Lax: the hosted UI sends the browser back with a cross-site
            // top-level GET, which must carry this cookie.
            with_cookie(
                response,
                &set_cookie(OAUTH_COOKIE, &format!("{state}.{verifier}"), 600, "Lax"),
            )
        }
        SignIn::Password { .. } => {
            let Some(token) = random_token(16) else {
                return refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    "",
                    "No randomness; try again.",
                );
            };
            let warning = failed.map(|w| html::notice("error", w)).unwrap_or_default();
            let body = format!(
                r#"{warning}<p>Sign in with your user from the local emulator's user pool (<code>infra/local-users.json</code>). In a deployment, this page sends you to Cognito's sign-in, with MFA.</p>
<form method="post" action="/console/signin" id="signin"><input type="hidden" name="csrf" value="{}">
<label>Username <input type="text" name="username" autocomplete="username" required maxlength="128"></label>
<label>Password <input type="password" name="password" autocomplete="current-password" required maxlength="256"></label>
<button type="submit">Sign in</button></form>"#,
                esc(&token)
            );
            let status = if failed.is_some() {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            };
            with_cookie(
                page_html(status, html::page("Sign in", None, "", &body)),
                &set_cookie(SIGN_IN_COOKIE, &token, 600, "Strict"),
            )
        }
    }
}

/// The answer to a page asked for without a valid session: 401 with the
/// sign-in form (local), or a page that moves on to the hosted sign-in.
pub fn sign_in_required(request: &Request, deps: &Deps) -> Response<Body> {
    let mut response = match &deps.sign_in {
        SignIn::Password { .. } => sign_in_page(request, deps, None),
        SignIn::HostedUi { .. } => page_html(
            StatusCode::UNAUTHORIZED,
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/console/signin"><title>Sign in</title></head><body><p>Sign in first. <a href="/console/signin">Sign in</a></p></body></html>"#.to_owned(),
        ),
    };
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    // A stale session cookie is cleared.
    if cookie(request, SESSION_COOKIE).is_some() {
        response = with_cookie(response, &set_cookie(SESSION_COOKIE, "", 0, "Strict"));
    }
    response
}

/// A response that starts the session with `token` and goes on to the
/// overview. After the hosted UI the redirect chain began on another site,
/// where a `SameSite=Strict` cookie is not sent yet; a page that moves on
/// by itself (a same-site navigation) carries it.
fn start_session(token: &str, exp_in: i64, through_page: bool) -> Response<Body> {
    let response = if through_page {
        page_html(
            StatusCode::OK,
            r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/console"><title>Signed in</title></head><body><p>Signed in. <a href="/console">Continue</a></p></body></html>"#.to_owned(),
        )
    } else {
        see_other("/console")
    };
    let response = with_cookie(
        response,
        &set_cookie(SESSION_COOKIE, token, exp_in.max(0), "Strict"),
    );
    let response = with_cookie(response, &set_cookie(SIGN_IN_COOKIE, "", 0, "Strict"));
    with_cookie(response, &set_cookie(OAUTH_COOKIE, "", 0, "Lax"))
}

/// Seconds until the token's `exp`, read after it verified.
fn seconds_left(token: &str) -> i64 {
    let exp = token
        .split('.')
        .nth(1)
        .and_then(|p| URL_SAFE_NO_PAD.decode(p).ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.get("exp").and_then(serde_json::Value::as_i64))
        .unwrap_or(0);
    (exp - chrono::Utc::now().timestamp()).clamp(0, 12 * 3600)
}

/// `POST /console/signin` (local): the password checked by the pool.
pub async fn sign_in(request: &Request, deps: &Deps) -> Response<Body> {
    let SignIn::Password {
        endpoint,
        client_id,
    } = &deps.sign_in
    else {
        return see_other("/console/signin");
    };
    let bytes = match optline_api::body_bytes(request) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let fields: HashMap<String, String> = serde_urlencoded::from_bytes(bytes).unwrap_or_default();
    let expected = cookie(request, SIGN_IN_COOKIE).unwrap_or_default();
    let presented = fields.get("csrf").map(String::as_str).unwrap_or_default();
    if expected.is_empty() || !same(expected, presented) {
        return sign_in_page(request, deps, Some("The sign-in form expired; try again."));
    }
    let (Some(username), Some(password)) = (fields.get("username"), fields.get("password")) else {
        return sign_in_page(request, deps, Some("Enter a username and a password."));
    };
    let answer = reqwest::Client::new()
        .post(endpoint)
        .timeout(std::time::Duration::from_secs(5))
        .header(
            "x-amz-target",
            "AWSCognitoIdentityProviderService.InitiateAuth",
        )
        .header("content-type", "application/x-amz-json-1.1")
        .body(
            serde_json::json!({
                "AuthFlow": "USER_PASSWORD_AUTH",
                "ClientId": client_id,
                "AuthParameters": {"USERNAME": username, "PASSWORD": password},
            })
            .to_string(),
        )
        .send()
        .await;
    let token = match answer {
        Ok(r) => r
            .text()
            .await
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| {
                v.pointer("/AuthenticationResult/IdToken")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            }),
        Err(_) => None,
    };
    match token {
        Some(token) if deps.people.verify(&token).await.is_ok() => {
            tracing::info!("console sign-in");
            start_session(&token, seconds_left(&token), false)
        }
        _ => sign_in_page(
            request,
            deps,
            Some("Sign-in failed: check the username and password."),
        ),
    }
}

/// `GET /console/callback?code&state` (cloud): the code exchanged at the
/// hosted UI's token endpoint with the PKCE verifier.
pub async fn callback(request: &Request, deps: &Deps) -> Response<Body> {
    let SignIn::HostedUi {
        domain,
        client_id,
        base_url,
    } = &deps.sign_in
    else {
        return see_other("/console/signin");
    };
    let query = request.query_string_parameters();
    let (Some(code), Some(state)) = (query.first("code"), query.first("state")) else {
        return refusal(
            StatusCode::BAD_REQUEST,
            None,
            "",
            "The sign-in answer is incomplete; sign in again.",
        );
    };
    let Some((expected, verifier)) = cookie(request, OAUTH_COOKIE).and_then(|c| c.split_once('.'))
    else {
        return refusal(
            StatusCode::BAD_REQUEST,
            None,
            "",
            "The sign-in expired; sign in again.",
        );
    };
    if !same(expected, state) {
        return refusal(
            StatusCode::BAD_REQUEST,
            None,
            "",
            "The sign-in answer does not match; sign in again.",
        );
    }
    let exchange = reqwest::Client::new()
        .post(format!("{domain}/oauth2/token"))
        .timeout(std::time::Duration::from_secs(5))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            serde_urlencoded::to_string([
                ("grant_type", "authorization_code"),
                ("client_id", client_id.as_str()),
                ("code", code),
                ("redirect_uri", &format!("{base_url}/console/callback")),
                ("code_verifier", verifier),
            ])
            .unwrap_or_default(),
        )
        .send()
        .await;
    let token = match exchange {
        Ok(r) if r.status().is_success() => r
            .text()
            .await
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| {
                v.get("id_token")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_owned)
            }),
        _ => None,
    };
    match token {
        Some(token) if deps.people.verify(&token).await.is_ok() => {
            start_session(&token, seconds_left(&token), true)
        }
        _ => refusal(
            StatusCode::UNAUTHORIZED,
            None,
            "",
            "Sign-in failed; sign in again.",
        ),
    }
}

/// `POST /console/signout`: the session cookie cleared.
pub fn sign_out() -> Response<Body> {
    with_cookie(
        see_other("/console/signin"),
        &set_cookie(SESSION_COOKIE, "", 0, "Strict"),
    )
}
