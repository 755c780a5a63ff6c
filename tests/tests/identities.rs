//! People are verified identities: tokens from the stack's own Cognito
//! pool (the emulator's), checked by every function that serves people,
//! whatever a gateway did. A request without a valid token gets 401 on
//! every human route; four-eyes compares the token's subject, so one
//! person is one approver however many times they sign in; and no record
//! takes its person from a request body.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "integration tests: a failed step should stop the test loudly"
)]

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{Duration, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use optline_ports::{AuditTrail, ConsentLedger, ContactDirectory, ContactId};
use optline_tests::{bearer_request, body_json, Harness};
use serde_json::json;

/// Every route a person calls, with a body that would be accepted.
fn human_routes() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    Option<serde_json::Value>,
)> {
    vec![
        (
            "consent",
            "POST",
            "/contacts",
            Some(json!({"id": "who1", "phone": "+14155550190"})),
        ),
        ("consent", "GET", "/contacts/who1", None),
        (
            "consent",
            "POST",
            "/contacts/who1/consent",
            Some(json!({"action": "revoke", "channel": "staff"})),
        ),
        ("consent", "GET", "/contacts/who1/consent", None),
        ("consent", "GET", "/contacts/who1/audit", None),
        (
            "consent",
            "POST",
            "/contacts/who1/preferences",
            Some(json!({"categories": {"billing": false}, "channel": "staff"})),
        ),
        (
            "consent",
            "POST",
            "/contacts/who1/revocations",
            Some(json!({"channel": "staff"})),
        ),
        ("consent", "GET", "/revocations", None),
        ("consent", "POST", "/revocations/revreq-x/complete", None),
        ("consent", "GET", "/reviews", None),
        (
            "consent",
            "POST",
            "/reviews/review-x/resolve",
            Some(json!({"action": "no_action"})),
        ),
        ("templates", "GET", "/templates", None),
        ("templates", "POST", "/templates/lint", Some(json!({}))),
        ("templates", "POST", "/templates/seed", None),
        (
            "templates",
            "GET",
            "/templates/appointment_reminder/versions/1",
            None,
        ),
        (
            "templates",
            "POST",
            "/templates/appointment_reminder/versions/1/approve",
            Some(json!({"role": "compliance"})),
        ),
        (
            "templates",
            "POST",
            "/templates/appointment_reminder/versions/1/publish",
            None,
        ),
        ("ehr", "POST", "/ehr/events", Some(json!({}))),
        ("dry-run", "GET", "/sweep/dry-run", None),
    ]
}

async fn call(
    h: &Harness,
    people: Arc<optline_api::Verifier>,
    function: &str,
    request: Request,
) -> Response<Body> {
    let now = Utc::now();
    match function {
        "consent" => {
            let mut deps = h.consent_api();
            deps.people = people;
            optline_consent_api::handle(request, &deps, now).await
        }
        "templates" => {
            let mut deps = h.templates();
            deps.people = people;
            optline_templates::handle(request, &deps, now).await
        }
        "ehr" => {
            let mut deps = h.ehr_events();
            deps.people = people;
            optline_ehr_events::handle(request, &deps, now).await
        }
        _ => optline_dispatch::dry_run_http(request, &h.dry_run(), &people, now).await,
    }
}

fn tampered(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["cognito:groups"] = json!(["compliance", "legal", "clinical", "operations", "admin"]);
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    )
}

#[tokio::test]
async fn every_human_route_refuses_a_missing_foreign_expired_or_tampered_token_and_writes_nothing()
{
    let h = Harness::new("who-401").await;
    let other = Harness::new("who-401-other-pool").await;
    let good = h.token("ana.compliance").to_owned();
    let foreign = other.token("ana.compliance").to_owned();
    let expired_clock = Arc::new(
        optline_api::Verifier::fetch(h.people.config().clone())
            .await
            .unwrap()
            .with_clock_offset(Duration::hours(2)),
    );
    for (function, method, path, body) in human_routes() {
        let cases: Vec<(&str, Request, Arc<optline_api::Verifier>)> = vec![
            (
                "no token",
                {
                    let mut r = bearer_request("x", method, path, body.clone());
                    r.headers_mut().remove("authorization");
                    r
                },
                h.people.clone(),
            ),
            (
                "not a JWT",
                bearer_request("local-dev-token", method, path, body.clone()),
                h.people.clone(),
            ),
            (
                "another pool",
                bearer_request(&foreign, method, path, body.clone()),
                h.people.clone(),
            ),
            (
                "expired",
                bearer_request(&good, method, path, body.clone()),
                expired_clock.clone(),
            ),
            (
                "tampered",
                bearer_request(&tampered(&good), method, path, body.clone()),
                h.people.clone(),
            ),
        ];
        for (case, request, people) in cases {
            let response = call(&h, people, function, request).await;
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{case}: {method} {path} -> {}",
                body_json(&response)
            );
            assert!(
                response.headers().contains_key("www-authenticate"),
                "{case}: {path}"
            );
        }
    }
    // Nothing was written by any of them.
    assert!(h
        .store
        .contact(&ContactId::parse("who1").unwrap())
        .await
        .unwrap()
        .is_none());
    // The same token from the right pool is accepted.
    let ok = call(
        &h,
        h.people.clone(),
        "templates",
        h.request_as("ana.compliance", "GET", "/templates", None),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn every_console_page_refuses_a_missing_foreign_expired_or_tampered_session() {
    let h = Harness::new("who-console-401").await;
    let other = Harness::new("who-console-401-other-pool").await;
    let good = h.token("ana.compliance").to_owned();
    let foreign = other.token("ana.compliance").to_owned();
    let expired_clock = Arc::new(
        optline_api::Verifier::fetch(h.people.config().clone())
            .await
            .unwrap()
            .with_clock_offset(Duration::hours(2)),
    );
    let pages = [
        ("GET", "/console"),
        ("GET", "/console/reviews"),
        ("POST", "/console/reviews/review-x"),
        ("GET", "/console/revocations"),
        ("POST", "/console/revocations/revreq-x/complete"),
        ("GET", "/console/templates"),
        ("GET", "/console/templates/appointment_reminder/1"),
        ("POST", "/console/templates/appointment_reminder/1"),
        ("GET", "/console/contacts"),
        ("GET", "/console/contacts/who1"),
        ("POST", "/console/contacts/who1/reveal"),
        ("GET", "/console/contacts/who1/proof.json"),
    ];
    for (method, path) in pages {
        let cases = [
            ("no session", None, h.people.clone()),
            (
                "not a token",
                Some("local-dev-token".to_owned()),
                h.people.clone(),
            ),
            ("another pool", Some(foreign.clone()), h.people.clone()),
            ("expired", Some(good.clone()), expired_clock.clone()),
            ("tampered", Some(tampered(&good)), h.people.clone()),
        ];
        for (case, cookie, people) in cases {
            let mut builder = lambda_http::http::Request::builder()
                .method(method)
                .uri(path)
                .header("content-type", "application/x-www-form-urlencoded");
            if let Some(token) = cookie {
                builder = builder.header("cookie", format!("optline_session={token}"));
            }
            let body = if method == "POST" {
                Body::from("csrf=x&action=no_action&do=publish")
            } else {
                Body::Empty
            };
            let mut deps = h.console();
            deps.people = people;
            let response =
                optline_console::handle(builder.body(body).unwrap(), &deps, Utc::now()).await;
            assert_eq!(
                response.status(),
                StatusCode::UNAUTHORIZED,
                "{case}: {method} {path}"
            );
            let page = optline_tests::body_text(&response);
            assert!(
                page.contains("form method=\"post\" action=\"/console/signin\""),
                "{case}: {path}"
            );
            assert!(response.headers().get("content-security-policy").is_some());
        }
    }
    // A signed-in person's form without the session's CSRF token is refused.
    let response = optline_console::handle(
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("/console/contacts/who1/reveal")
            .header("cookie", format!("optline_session={good}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("csrf=not-the-token"))
            .unwrap(),
        &h.console(),
        Utc::now(),
    )
    .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn one_person_signed_in_twice_is_still_one_approver() {
    let h = Harness::new("who-four-eyes").await;
    let users = optline_tests::local_users();
    // Jo holds compliance and legal, and signs in twice: two tokens.
    let first = h.token("jo.reviewer").to_owned();
    let second = optline_tests::sign_in(
        &h.endpoint,
        &h.resources.user_pool_client_id,
        "jo.reviewer",
        &users.password,
    )
    .await
    .unwrap();
    assert_ne!(first, second, "two sign-ins, two tokens");
    let draft = json!({
        "id": "results_ready", "program": "*", "purpose": "results_ready",
        "category": "results", "class": "transactional", "locale": "en-US",
        "body": "{{program}}: a new document is waiting in your secure patient portal: {{link}} Reply STOP to opt out.",
        "variables": [
            {"name": "program", "kind": "text", "max_len": 30, "data_class": "identifier"},
            {"name": "link", "kind": "link", "max_len": 60, "data_class": "portal_link"}
        ],
        "change_reason": "plainer wording"
    });
    let now = Utc::now();
    let deps = h.templates();
    for (method, path, body) in [
        ("POST", "/templates", Some(draft)),
        ("POST", "/templates/results_ready/versions/2/submit", None),
    ] {
        let r = optline_templates::handle(h.request_as("olu.ops", method, path, body), &deps, now)
            .await;
        assert!(r.status().is_success(), "{}", body_json(&r));
    }
    let approve = |token: &str, role: &str| {
        bearer_request(
            token,
            "POST",
            "/templates/results_ready/versions/2/approve",
            Some(json!({"role": role})),
        )
    };
    let r = optline_templates::handle(approve(&first, "compliance"), &deps, now).await;
    assert_eq!(r.status(), StatusCode::OK, "{}", body_json(&r));
    let r = optline_templates::handle(approve(&second, "legal"), &deps, now).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "{}", body_json(&r));
    assert!(
        body_json(&r)["error"]
            .as_str()
            .unwrap()
            .contains("already approved"),
        "{}",
        body_json(&r)
    );
    // Another person may approve as legal.
    let r = optline_templates::handle(
        h.request_as(
            "lee.legal",
            "POST",
            "/templates/results_ready/versions/2/approve",
            Some(json!({"role": "legal"})),
        ),
        &deps,
        now,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", body_json(&r));
    let approvals = body_json(&r)["lifecycle"]["approvals"].clone();
    let names: Vec<&str> = approvals
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["actor_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["Jo Kim", "Lee Okafor"]);
    // The author cannot approve their own version, under any token.
    let r = optline_templates::handle(
        h.request_as(
            "olu.ops",
            "POST",
            "/templates/results_ready/versions/2/approve",
            Some(json!({"role": "operations"})),
        ),
        &deps,
        now,
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "{}", body_json(&r));
}

#[tokio::test]
async fn no_record_takes_its_person_from_the_request_body() {
    let h = Harness::new("who-body").await;
    let api = h.consent_api();
    let now = Utc::now();
    let r = optline_consent_api::handle(
        h.request_as(
            "sam.staff",
            "POST",
            "/contacts",
            Some(json!({"id": "who2", "phone": "+14155550191"})),
        ),
        &api,
        now,
    )
    .await;
    assert!(r.status().is_success());
    // A body naming its own actor is refused, naming the field.
    for (path, body) in [
        (
            "/contacts/who2/consent",
            json!({"action": "revoke", "channel": "staff", "actor": "dr-someone-else"}),
        ),
        (
            "/contacts/who2/revocations",
            json!({"channel": "staff", "actor": "dr-someone-else"}),
        ),
        (
            "/contacts/who2/preferences",
            json!({"categories": {"billing": false}, "channel": "staff", "actor": "x"}),
        ),
    ] {
        let r = optline_consent_api::handle(
            h.request_as("sam.staff", "POST", path, Some(body)),
            &api,
            now,
        )
        .await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        assert!(
            body_json(&r)["error"].as_str().unwrap().contains("actor"),
            "{path}"
        );
    }
    // Without it, the record names the signed-in person.
    let r = optline_consent_api::handle(
        h.request_as(
            "sam.staff",
            "POST",
            "/contacts/who2/revocations",
            Some(json!({"channel": "staff"})),
        ),
        &api,
        now,
    )
    .await;
    assert_eq!(r.status(), StatusCode::CREATED, "{}", body_json(&r));
    let sam = h.people.verify(h.token("sam.staff")).await.unwrap();
    assert_eq!(body_json(&r)["actor"], sam.label());
    let contact = ContactId::parse("who2").unwrap();
    let phone = optline_policy::phone::E164::parse("+14155550191").unwrap();
    let events = h.store.consent_events(&contact, &phone).await.unwrap();
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e.actor == sam.label()), "{events:?}");
    assert!(sam.label().starts_with("Sam Diaz <cognito:"));
    // Completing it names whoever completes it: Ana, not Sam.
    let id = body_json(&r)["id"].as_str().unwrap().to_owned();
    let done = optline_consent_api::handle(
        h.request_as(
            "ana.compliance",
            "POST",
            &format!("/revocations/{id}/complete"),
            Some(json!({"actor": "sam"})),
        ),
        &api,
        now,
    )
    .await;
    assert_eq!(
        done.status(),
        StatusCode::OK,
        "a body is ignored here: {}",
        body_json(&done)
    );
    let chain = h.store.audit_chain(&contact).await.unwrap();
    let completed = chain
        .iter()
        .find(|r| r.content.action == "revocation_completed")
        .unwrap();
    assert!(completed
        .content
        .detail
        .as_deref()
        .unwrap()
        .contains("Ana Ruiz <cognito:"));
    // A staff member outside the casework groups is refused by group.
    let r = optline_consent_api::handle(
        h.request_as(
            "kim.clinical",
            "POST",
            "/contacts",
            Some(json!({"id": "who3", "phone": "+14155550192"})),
        ),
        &api,
        now,
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}
