//! The template library against the local emulator: the templates API's
//! authoring and approval flow, and dispatch sending only published,
//! approved versions whose rendered text passes lint.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "integration tests: a failed step should stop the test loudly"
)]

use std::collections::HashMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use lambda_http::http::StatusCode;
use lambda_http::RequestExt;
use optline_dispatch::Outcome;
use optline_library::audit_subject;
use optline_ports::{verify_chain, AuditTrail, StepStore};
use optline_tests::{body_json, Harness};
use serde_json::{json, Value};

/// Monday 2026-12-07 12:00 in New York: inside every window.
fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap()
}

/// A call by `user` (a local user; anything else is sent as a raw bearer
/// token, which no pool issued).
async fn call(
    h: &Harness,
    user: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let request = if optline_tests::local_users()
        .users
        .iter()
        .any(|u| u.username == user)
    {
        h.request_as(user, method, path, body)
    } else {
        optline_tests::bearer_request(user, method, path, body)
    };
    let response = optline_templates::handle(request, &h.templates(), noon()).await;
    let status = response.status();
    (status, body_json(&response))
}

fn results_ready_v2() -> Value {
    json!({
        "id": "results_ready",
        "program": "*",
        "purpose": "results_ready",
        "category": "results",
        "class": "transactional",
        "locale": "en-US",
        "body": "{{program}}: a new document is waiting for you in your secure patient portal: {{link}} Reply STOP to opt out.",
        "variables": [
            {"name": "program", "kind": "text", "max_len": 30, "data_class": "identifier"},
            {"name": "link", "kind": "link", "max_len": 60, "data_class": "portal_link"}
        ],
        "change_reason": "say 'document' so patients know to look for a file"
    })
}

#[tokio::test]
async fn a_high_risk_version_goes_from_draft_to_published_only_with_compliance_legal_and_clinical()
{
    let h = Harness::new("tpl-flow").await;

    // The seed library is there, published and sendable.
    let (status, list) = call(&h, "olu.ops", "GET", "/templates", None).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["templates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    for id in [
        "appointment_reminder",
        "program_help",
        "program_stop_confirmation",
        "program_opt_in_confirmation",
        "referral_follow_up",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }

    // An unknown caller is refused and nothing is written.
    let (status, _) = call(
        &h,
        "not-a-token",
        "POST",
        "/templates",
        Some(results_ready_v2()),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Ana writes version 2.
    let (status, created) = call(
        &h,
        "bo.compliance",
        "POST",
        "/templates",
        Some(results_ready_v2()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["version"]["version"], 2);
    assert_eq!(
        created["version"]["author"],
        h.actor("bo.compliance").await.id.as_str()
    );
    assert_eq!(created["lifecycle"]["state"], "draft");
    assert_eq!(created["findings"], json!([]));

    let base = "/templates/results_ready/versions/2";
    let (status, submitted) =
        call(&h, "bo.compliance", "POST", &format!("{base}/submit"), None).await;
    assert_eq!(status, StatusCode::OK, "{submitted}");
    assert_eq!(submitted["lifecycle"]["tier"], "high");
    assert_eq!(
        submitted["missing_approvals"],
        json!(["compliance", "legal", "clinical"])
    );

    // Four eyes and roles.
    let (status, refused) = call(
        &h,
        "bo.compliance",
        "POST",
        &format!("{base}/approve"),
        Some(json!({"role": "compliance"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (status, refused) = call(
        &h,
        "olu.ops",
        "POST",
        &format!("{base}/approve"),
        Some(json!({"role": "legal"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    let (status, refused) = call(&h, "olu.ops", "POST", &format!("{base}/publish"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");

    for (user, role) in [
        ("ana.compliance", "compliance"),
        ("lee.legal", "legal"),
        ("kim.clinical", "clinical"),
    ] {
        let (status, view) = call(
            &h,
            user,
            "POST",
            &format!("{base}/approve"),
            Some(json!({"role": role})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{view}");
    }
    let (status, published) = call(&h, "olu.ops", "POST", &format!("{base}/publish"), None).await;
    assert_eq!(status, StatusCode::OK, "{published}");
    assert_eq!(published["lifecycle"]["state"], "published");
    assert_eq!(published["sendable"], true);
    assert_eq!(
        published["lifecycle"]["history"].as_array().unwrap().len(),
        5
    );

    // The diff names what changed and why.
    let request = h
        .request_as("olu.ops", "GET", "/templates/results_ready/diff", None)
        .with_query_string_parameters(HashMap::from([
            ("from".to_owned(), "1".to_owned()),
            ("to".to_owned(), "2".to_owned()),
        ]));
    let response = optline_templates::handle(request, &h.templates(), noon()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let diff = body_json(&response);
    let fields: Vec<&str> = diff["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, vec!["body"]);

    // A preview shows encoding and segments.
    let (status, preview) = call(&h, "olu.ops", "POST", &format!("{base}/preview"), Some(json!({"values": {"program": "Bayview Clinic", "link": "https://portal.bayview.example/t/8f2k"}}))).await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    assert_eq!(preview["encoding"], "gsm7");
    assert_eq!(preview["segments"], 1);
    assert_eq!(preview["findings"], json!([]));

    // Every transition is in the template's own audit chain, which verifies.
    let chain = h
        .store
        .audit_chain(&audit_subject("results_ready").unwrap())
        .await
        .unwrap();
    let actions: Vec<&str> = chain.iter().map(|r| r.content.action.as_str()).collect();
    // Version 1 came from the seed library in review, and named people
    // approved it (no approval is fabricated); version 2 was written here.
    assert_eq!(
        actions,
        vec![
            "seed", "approve", "approve", "approve", "publish", "create", "submit", "approve",
            "approve", "approve", "publish"
        ]
    );
    let details: Vec<&str> = chain
        .iter()
        .filter_map(|r| r.content.detail.as_deref())
        .collect();
    assert!(
        details[1].starts_with("by Ana Ruiz <cognito:"),
        "{}",
        details[1]
    );
    assert!(verify_chain(&chain, h.store.chain_key()).is_ok());
    assert!(chain.iter().all(|r| r.content.kind == "template"));
}

#[tokio::test]
async fn lint_errors_block_review_with_reasons_a_compliance_officer_can_read() {
    let h = Harness::new("tpl-lint").await;
    let mut draft = results_ready_v2();
    draft["body"] = json!("Your test results are ready: https://bit.ly/x9");
    draft["variables"] = json!([]);
    let (status, linted) = call(
        &h,
        "bo.compliance",
        "POST",
        "/templates/lint",
        Some(draft.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let rules: Vec<&str> = linted["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    for rule in [
        "template.sender_named",
        "template.opt_out_language",
        "template.prohibited_content",
        "template.url_shortener",
    ] {
        assert!(rules.contains(&rule), "{rule} not in {rules:?}");
    }
    let (status, created) = call(&h, "bo.compliance", "POST", "/templates", Some(draft)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, refused) = call(
        &h,
        "bo.compliance",
        "POST",
        "/templates/results_ready/versions/2/submit",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        refused["error"]
            .as_str()
            .unwrap_or_default()
            .contains("template.prohibited_content"),
        "{refused}"
    );

    // Malformed input is a 400 with a reason.
    let (status, bad) = call(
        &h,
        "bo.compliance",
        "POST",
        "/templates",
        Some(json!({"id": "x"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
}

#[tokio::test]
async fn dispatch_sends_only_a_published_version_and_lints_the_rendered_text() {
    let h = Harness::new("tpl-dispatch").await;
    let deps = h.dispatch();

    // A retired version is never sent.
    let retired = h
        .seed_step(
            "pat-retired",
            "+12125550101",
            "step-retired",
            noon() - Duration::minutes(1),
        )
        .await;
    let (status, view) = call(
        &h,
        "olu.ops",
        "POST",
        "/templates/appointment_reminder/versions/1/retire",
        Some(json!({"reason": "replaced"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let outcome = optline_dispatch::dispatch_step(&retired, &deps, noon())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Suppressed(vec!["template.retired".to_owned()])
    );

    // A draft is never sent: pin a step to a fresh draft version.
    let mut draft = results_ready_v2();
    draft["id"] = json!("appointment_reminder");
    draft["purpose"] = json!("appointment_reminder");
    draft["category"] = json!("appointments");
    draft["body"] = json!("{{program}}: see you {{date}} at {{time}}. Reply C to confirm or R to reschedule. Reply STOP to opt out.");
    draft["variables"] = json!([
        {"name": "program", "kind": "text", "max_len": 30, "data_class": "identifier"},
        {"name": "date", "kind": "date", "max_len": 12, "data_class": "scheduling"},
        {"name": "time", "kind": "time", "max_len": 8, "data_class": "scheduling"}
    ]);
    draft["confirm_codes"] = json!(["C", "1"]);
    draft["reschedule_codes"] = json!(["R", "2"]);
    let (status, created) = call(&h, "bo.compliance", "POST", "/templates", Some(draft)).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let pinned = h
        .seed_step(
            "pat-draft",
            "+12125550102",
            "step-draft",
            noon() - Duration::minutes(1),
        )
        .await;
    let mut step = h.store.step(&pinned).await.unwrap().unwrap();
    step.template_version = 2;
    step.id = optline_ports::StepId::parse("step-draft-v2").unwrap();
    assert!(h.store.put_step(&step).await.unwrap());
    let outcome = optline_dispatch::dispatch_step(&step.id, &deps, noon())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Suppressed(vec!["template.not_published".to_owned()])
    );

    // Publish version 2 (low risk: operations alone, not the author).
    let base = "/templates/appointment_reminder/versions/2";
    for (token, path, body) in [
        ("bo.compliance", format!("{base}/submit"), None),
        (
            "olu.ops",
            format!("{base}/approve"),
            Some(json!({"role": "operations"})),
        ),
        ("olu.ops", format!("{base}/publish"), None),
    ] {
        let (status, view) = call(&h, token, "POST", &path, body).await;
        assert_eq!(status, StatusCode::OK, "{path}: {view}");
    }
    // The suppressed step stays suppressed; a new step pinned to the now
    // published version sends.
    let fresh = h
        .seed_step(
            "pat-fresh",
            "+12125550104",
            "step-fresh",
            noon() - Duration::minutes(1),
        )
        .await;
    let mut step = h.store.step(&fresh).await.unwrap().unwrap();
    step.template_version = 2;
    step.id = optline_ports::StepId::parse("step-fresh-v2").unwrap();
    assert!(h.store.put_step(&step).await.unwrap());
    let outcome = optline_dispatch::dispatch_step(&step.id, &deps, noon())
        .await
        .unwrap();
    assert!(matches!(outcome, Outcome::Sent(_)), "{outcome:?}");

    // A value that brings health detail into the text is caught after
    // rendering, and nothing is sent.
    let leaky = h
        .seed_step(
            "pat-leaky",
            "+12125550103",
            "step-leaky",
            noon() - Duration::minutes(1),
        )
        .await;
    let mut step = h.store.step(&leaky).await.unwrap().unwrap();
    step.template_version = 2;
    step.id = optline_ports::StepId::parse("step-leaky-v2").unwrap();
    step.variables
        .insert("date".to_owned(), "HIV clinic".to_owned());
    assert!(h.store.put_step(&step).await.unwrap());
    let to_leaky = |texts: Vec<optline_tests::SentSms>| {
        texts
            .into_iter()
            .filter(|t| t.phone_number == "+12125550103")
            .count()
    };
    let sent_before = to_leaky(h.sns_sms().await);
    let outcome = optline_dispatch::dispatch_step(&step.id, &deps, noon())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        Outcome::Suppressed(vec!["template.rendered.prohibited_content".to_owned()])
    );
    assert_eq!(to_leaky(h.sns_sms().await), sent_before);
}
