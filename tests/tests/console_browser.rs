//! The console in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`), driven over WebDriver from Rust (fantoccini), against
//! the console function served on loopback over the local emulator. People
//! sign in as themselves to the stack's own Cognito pool. Screenshots of
//! each step are kept in `.local/artifacts/console/`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "integration tests: a failed step should stop the test loudly"
)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use fantoccini::{Client, ClientBuilder, Locator};
use optline_ports::{AuditTrail, Casework};
use optline_tests::{body_json, twilio_inbound_request, Harness};
use serde_json::json;

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn driver() -> Driver {
    let binary = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("chromedriver is installed (Debian's chromium-driver; infra/test.sh installs it)");
    let port = free_port();
    let child = Command::new(binary)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver { child, port };
    for _ in 0..100 {
        if reqwest::get(format!("http://127.0.0.1:{port}/status"))
            .await
            .is_ok()
        {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not answer");
}

async fn browser(driver: &Driver) -> Client {
    let profile = std::env::temp_dir().join(format!("optline-chromium-{}", std::process::id()));
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".to_owned(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1280,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    // chromedriver is on loopback: plain HTTP, no TLS stack needed.
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

fn artifacts() -> PathBuf {
    let dir = optline_tests::repo_root().join(".local/artifacts/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(artifacts().join(format!("{name}.png")), png).unwrap();
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Clicks `button` and waits until the browser has left the page it was on
/// (form posts answer with a new page, sometimes at the same address).
async fn click_through(c: &Client, button: fantoccini::elements::Element) {
    let old = c.find(Locator::Css("html")).await.unwrap();
    button.click().await.unwrap();
    for _ in 0..200 {
        if old.tag_name().await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    c.wait()
        .for_element(Locator::Css("body"))
        .await
        .expect("the next page loads");
}

async fn sign_in(c: &Client, base: &str, user: &str) {
    c.goto(&format!("{base}/console")).await.unwrap();
    // Not signed in: the console answers 401 with its sign-in form.
    c.find(Locator::Css("form#signin"))
        .await
        .expect("the sign-in form");
    c.find(Locator::Css("input[name=username]"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    c.find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(&optline_tests::local_users().password)
        .await
        .unwrap();
    click_through(c, c.find(Locator::Css("#signin button")).await.unwrap()).await;
    let path = c.current_url().await.unwrap().path().to_owned();
    assert_eq!(path, "/console", "{user}: {}", text(c, "main").await);
}

async fn sign_out(c: &Client) {
    click_through(
        c,
        c.find(Locator::Css("form[action='/console/signout'] button"))
            .await
            .unwrap(),
    )
    .await;
    assert!(c
        .current_url()
        .await
        .unwrap()
        .path()
        .ends_with("/console/signin"));
}

/// Clicks the button of the form whose `data-action` is `action`, after
/// filling its reason when given.
async fn act(c: &Client, scope: &str, action: &str, reason: Option<&str>) {
    let form = c
        .find(Locator::Css(&format!(
            "{scope} form[data-action='{action}']"
        )))
        .await
        .unwrap_or_else(|_| panic!("no {action} form in {scope}"));
    if let Some(reason) = reason {
        form.find(Locator::Css("input[name=reason]"))
            .await
            .unwrap()
            .send_keys(reason)
            .await
            .unwrap();
    }
    click_through(c, form.find(Locator::Css("button")).await.unwrap()).await;
}

#[tokio::test]
async fn people_sign_in_as_themselves_resolve_reviews_approve_in_their_roles_and_export_a_proof() {
    let h = Harness::new("console").await;
    let now = Utc::now();
    // A contact who texts something that may or may not be an opt-out.
    let created = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts",
            Some(json!({"id": "cb1", "phone": "+14155550177", "time_zone": "America/New_York"})),
        ),
        &h.consent_api(),
        now,
    )
    .await;
    assert!(created.status().is_success(), "{}", body_json(&created));
    optline_inbound::handle(
        twilio_inbound_request(
            "SM0000000000000000000000000000c001",
            "+14155550177",
            "I want to cancel my appointment",
        ),
        &h.inbound(),
        now,
    )
    .await;
    // The drain counts the day's facts (the doubtful revocation is an
    // opt-out) into the rollups the overview reads.
    h.drain_outbox().await;
    // Bo (compliance) writes a new version of a high-risk template.
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
    for (method, path, body) in [
        ("POST", "/templates", Some(draft)),
        ("POST", "/templates/results_ready/versions/2/submit", None),
    ] {
        let r = optline_templates::handle(
            h.request_as("bo.compliance", method, path, body),
            &h.templates(),
            now,
        )
        .await;
        assert!(r.status().is_success(), "{}", body_json(&r));
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let _server = optline_tests::console_server::serve(h.console(), listener);
    let driver = driver().await;
    let c = browser(&driver).await;

    // Sam (staff) signs in and confirms the doubtful opt-out.
    sign_in(&c, &base, "sam.staff").await;
    assert_eq!(text(&c, "#who").await, "Sam Diaz");
    assert_eq!(text(&c, "#open-reviews .n").await, "1");
    shot(&c, "01-overview").await;
    let kpis = text(&c, "#kpis").await;
    assert!(kpis.contains("opt-outs"), "{kpis}");
    assert!(
        kpis.contains("1 (0 within 24 h"),
        "the doubtful revocation counts: {kpis}"
    );
    c.goto(&format!("{base}/console/report")).await.unwrap();
    let charts = c.find_all(Locator::Css("figure svg")).await.unwrap();
    assert!(
        charts.len() >= 2,
        "the report draws its charts on the server"
    );
    assert!(text(&c, "#versions").await.contains("opt-outs"));
    shot(&c, "01b-report").await;
    click_through(&c, c.find(Locator::Css("#take-census")).await.unwrap()).await;
    let coverage = text(&c, "#coverage").await;
    assert!(coverage.contains("appointments"), "{coverage}");
    c.goto(&format!("{base}/console/experiments"))
        .await
        .unwrap();
    assert!(text(&c, "main").await.contains("No experiments yet"));
    c.goto(&format!("{base}/console/reviews")).await.unwrap();
    let row = text(&c, "#reviews tbody").await;
    assert!(row.contains("+1******0177"), "{row}");
    assert!(!row.contains("4155550177"), "numbers are masked: {row}");
    shot(&c, "02-reviews").await;
    act(
        &c,
        "#reviews",
        "confirm_opt_out",
        Some("asked to stop all texts on the phone"),
    )
    .await;
    assert!(text(&c, ".notice").await.contains("confirm opt out"));
    assert!(text(&c, "#reviews tbody").await.contains("Nothing here."));
    shot(&c, "03-review-resolved").await;
    sign_out(&c).await;
    let items = h.store.reviews().await.unwrap();
    let resolution = items[0].resolution.as_ref().unwrap();
    assert_eq!(resolution.outcome, "opt_out_confirmed");
    assert!(
        resolution.by.starts_with("Sam Diaz <cognito:"),
        "{}",
        resolution.by
    );

    // Bo wrote version 2: the console refuses Bo's own approval.
    let page = format!("{base}/console/templates/results_ready/2");
    sign_in(&c, &base, "bo.compliance").await;
    c.goto(&page).await.unwrap();
    act(&c, "#actions", "approve-compliance", None).await;
    let refused = text(&c, "main").await;
    assert!(refused.contains("author"), "{refused}");
    shot(&c, "04-author-refused").await;
    sign_out(&c).await;

    // Ana approves as compliance and Lee as legal: two people, two roles.
    for (user, role) in [("ana.compliance", "compliance"), ("lee.legal", "legal")] {
        sign_in(&c, &base, user).await;
        c.goto(&page).await.unwrap();
        act(&c, "#actions", &format!("approve-{role}"), None).await;
        assert!(text(&c, ".notice").await.contains("Done: approve"));
        sign_out(&c).await;
    }
    sign_in(&c, &base, "kim.clinical").await;
    c.goto(&page).await.unwrap();
    let approvals = text(&c, "#approvals").await;
    assert!(
        approvals.contains("Ana Ruiz") && approvals.contains("Lee Okafor"),
        "{approvals}"
    );
    assert!(text(&c, "#missing").await.contains("clinical"));
    shot(&c, "05-two-approvals").await;
    sign_out(&c).await;

    // Ana opens the contact's proof, reveals the number and exports it.
    sign_in(&c, &base, "ana.compliance").await;
    c.goto(&format!("{base}/console/contacts")).await.unwrap();
    c.find(Locator::Css("#find input[name=id]"))
        .await
        .unwrap()
        .send_keys("cb1")
        .await
        .unwrap();
    click_through(&c, c.find(Locator::Css("#find button")).await.unwrap()).await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        "/console/contacts/cb1"
    );
    assert_eq!(text(&c, "#phone").await, "+1******0177");
    assert!(text(&c, "#chain").await.contains("verifies"));
    act(&c, "main", "reveal", None).await;
    assert_eq!(text(&c, "#phone").await, "+14155550177");
    assert!(
        !c.current_url()
            .await
            .unwrap()
            .as_str()
            .contains("4155550177"),
        "no number in a URL"
    );
    shot(&c, "06-proof").await;
    let href = c
        .find(Locator::Css("#export-json"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    // The export, fetched with the browser's own session cookie.
    let cookies = c.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|k| k.name() == "optline_session")
        .expect("the session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(session.secure(), Some(true));
    let export = reqwest::Client::new()
        .get(format!("{base}{href}"))
        .header("cookie", format!("optline_session={}", session.value()))
        .send()
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    let proof: serde_json::Value = serde_json::from_str(&export.text().await.unwrap()).unwrap();
    assert_eq!(proof["audit_chain"]["verified"], true);
    assert!(proof["exported_by"]
        .as_str()
        .unwrap()
        .starts_with("Ana Ruiz <cognito:"));
    c.close().await.unwrap();

    // The reveal and the export are on the contact's chain, with the person.
    let chain = h
        .store
        .audit_chain(&optline_ports::ContactId::parse("cb1").unwrap())
        .await
        .unwrap();
    for action in [
        "review_opt_out_confirmed",
        "phone_revealed",
        "proof_exported",
    ] {
        let record = chain
            .iter()
            .find(|r| {
                format!("{}_{}", r.content.kind, r.content.action) == action
                    || r.content.action == action
            })
            .unwrap_or_else(|| panic!("no {action} record"));
        assert!(
            record
                .content
                .detail
                .as_deref()
                .unwrap_or_default()
                .contains("cognito:"),
            "{action} names the person"
        );
    }
}
