//! The console's cloud sign-in: Cognito's hosted UI with the authorization
//! code flow and PKCE (RFC 7636). The emulator has no hosted UI, so a local
//! stand-in plays the token endpoint as Cognito documents it
//! (`POST /oauth2/token`, form-encoded `grant_type=authorization_code`,
//! `client_id`, `code`, `redirect_uri`, `code_verifier`) and checks the
//! verifier against the challenge the console sent; the ID token it hands
//! back is a real one from the stack's pool.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "integration tests: a failed step should stop the test loudly"
)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use lambda_http::http::StatusCode;
use lambda_http::{Body, RequestExt};
use optline_tests::Harness;
use sha2::{Digest, Sha256};

/// What the stand-in was asked, and what it expects.
#[derive(Default)]
struct TokenEndpoint {
    /// code -> (challenge, ID token to hand out).
    codes: HashMap<String, (String, String)>,
    /// The forms it received.
    seen: Vec<HashMap<String, String>>,
}

async fn stand_in(state: Arc<Mutex<TokenEndpoint>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let state = state.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move {
                            let ok_path = request.method() == hyper::Method::POST
                                && request.uri().path() == "/oauth2/token"
                                && request.headers().get("content-type").is_some_and(|v| {
                                    v.as_bytes()
                                        .starts_with(b"application/x-www-form-urlencoded")
                                });
                            let body = request.into_body().collect().await.unwrap().to_bytes();
                            let form: HashMap<String, String> =
                                serde_urlencoded::from_bytes(&body).unwrap_or_default();
                            let mut state = state.lock().unwrap();
                            state.seen.push(form.clone());
                            let answer = match (
                                ok_path,
                                form.get("grant_type").map(String::as_str),
                                form.get("code"),
                            ) {
                                (true, Some("authorization_code"), Some(code)) => match state
                                    .codes
                                    .remove(code)
                                {
                                    Some((challenge, token)) => {
                                        let verifier =
                                            form.get("code_verifier").cloned().unwrap_or_default();
                                        let computed = URL_SAFE_NO_PAD
                                            .encode(Sha256::digest(verifier.as_bytes()));
                                        if computed == challenge {
                                            (
                                                200,
                                                serde_json::json!({"id_token": token, "access_token": "a", "token_type": "Bearer", "expires_in": 3600}),
                                            )
                                        } else {
                                            (400, serde_json::json!({"error": "invalid_grant"}))
                                        }
                                    }
                                    None => (400, serde_json::json!({"error": "invalid_grant"})),
                                },
                                _ => (400, serde_json::json!({"error": "invalid_request"})),
                            };
                            Ok::<_, Infallible>(
                                hyper::Response::builder()
                                    .status(answer.0)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(answer.1.to_string())))
                                    .unwrap(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    base
}

fn get(path: &str, cookie: Option<&str>) -> lambda_http::Request {
    let mut builder = lambda_http::http::Request::builder()
        .method("GET")
        .uri(path);
    if let Some(c) = cookie {
        builder = builder.header("cookie", c);
    }
    let request = builder.body(Body::Empty).unwrap();
    let query: HashMap<String, Vec<String>> = path
        .split_once('?')
        .map(|(_, q)| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(q)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (k, vec![v]))
                .collect()
        })
        .unwrap_or_default();
    request.with_query_string_parameters(query)
}

/// The `name=value` part of a `Set-Cookie` named `name`.
fn set_cookie(response: &lambda_http::Response<Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

#[tokio::test]
async fn the_hosted_ui_round_trip_uses_pkce_and_a_state_bound_to_the_browser() {
    let h = Harness::new("console-hosted").await;
    let state = Arc::new(Mutex::new(TokenEndpoint::default()));
    let domain = stand_in(state.clone()).await;
    let mut deps = h.console();
    deps.sign_in = optline_console::SignIn::HostedUi {
        domain: domain.clone(),
        client_id: h.resources.user_pool_client_id.clone(),
        base_url: "https://sms-api.example.org".to_owned(),
    };
    let now = chrono::Utc::now();

    // A page without a session: 401, moving on to sign in.
    let page = optline_console::handle(get("/console/reviews", None), &deps, now).await;
    assert_eq!(page.status(), StatusCode::UNAUTHORIZED);

    // Sign-in: to the hosted UI with a state and an S256 challenge.
    let start = optline_console::handle(get("/console/signin", None), &deps, now).await;
    assert_eq!(start.status(), StatusCode::SEE_OTHER);
    let location = start.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("{domain}/oauth2/authorize?")),
        "{location}"
    );
    let query: HashMap<String, String> =
        serde_urlencoded::from_str(location.split_once('?').unwrap().1).unwrap();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], h.resources.user_pool_client_id);
    assert_eq!(
        query["redirect_uri"],
        "https://sms-api.example.org/console/callback"
    );
    assert_eq!(query["code_challenge_method"], "S256");
    assert_eq!(query["scope"], "openid email profile");
    let oauth = set_cookie(&start, "optline_oauth").expect("the round trip's cookie");
    let raw_cookie = start
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("optline_oauth="))
        .unwrap();
    assert!(
        raw_cookie.contains("HttpOnly")
            && raw_cookie.contains("Secure")
            && raw_cookie.contains("SameSite=Lax")
    );

    // Cognito would now sign Ana in and send the browser back with a code.
    let token = h.token("ana.compliance").to_owned();
    state.lock().unwrap().codes.insert(
        "code-1".to_owned(),
        (query["code_challenge"].clone(), token.clone()),
    );

    // A callback whose state is not this browser's is refused.
    let forged = optline_console::handle(
        get(
            "/console/callback?code=code-1&state=someone-elses",
            Some(&oauth),
        ),
        &deps,
        now,
    )
    .await;
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    // Without the round trip's cookie (another browser) too.
    let other_browser = optline_console::handle(
        get(
            &format!("/console/callback?code=code-1&state={}", query["state"]),
            None,
        ),
        &deps,
        now,
    )
    .await;
    assert_eq!(other_browser.status(), StatusCode::BAD_REQUEST);
    assert!(
        state.lock().unwrap().seen.is_empty(),
        "nothing reached the token endpoint"
    );

    // The real callback: the code and the verifier exchanged, the session set.
    let done = optline_console::handle(
        get(
            &format!("/console/callback?code=code-1&state={}", query["state"]),
            Some(&oauth),
        ),
        &deps,
        now,
    )
    .await;
    assert_eq!(done.status(), StatusCode::OK);
    let seen = state.lock().unwrap().seen.clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["grant_type"], "authorization_code");
    assert_eq!(
        seen[0]["redirect_uri"],
        "https://sms-api.example.org/console/callback"
    );
    assert_eq!(seen[0]["client_id"], h.resources.user_pool_client_id);
    let session = set_cookie(&done, "optline_session").expect("a session");
    assert_eq!(session, format!("optline_session={token}"));
    let page = optline_console::handle(get("/console", Some(&session)), &deps, now).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(optline_tests::body_text(&page).contains("Ana Ruiz"));

    // A code used twice is refused by the endpoint, and no session is made.
    let again = optline_console::handle(
        get(
            &format!("/console/callback?code=code-1&state={}", query["state"]),
            Some(&oauth),
        ),
        &deps,
        now,
    )
    .await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&again, "optline_session").is_none());
}
