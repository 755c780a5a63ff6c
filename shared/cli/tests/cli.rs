//! Specifications for the `optline` binary: each subcommand's human form,
//! its `--json` form and its JSON-lines form (including a bad line), run as
//! a real process.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly on broken fixtures"
)]

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

/// What one run of the binary produced.
struct Run {
    stdout: String,
    stderr: String,
    code: i32,
}

impl Run {
    /// The stdout as one JSON object.
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one json object ({e}): {}", self.stdout))
    }

    /// The stdout as JSON lines.
    fn json_lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
            .collect()
    }
}

fn optline(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_optline"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.as_bytes())
        .expect("stdin accepts the input");
    let out = child.wait_with_output().expect("the binary finishes");
    Run {
        stdout: String::from_utf8(out.stdout).expect("stdout is utf-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is utf-8"),
        code: out.status.code().expect("the binary exits normally"),
    }
}

/// The crate's directory when the test runs (a build reused from a clone
/// at another path must not read that clone's files).
fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
}

fn example(name: &str) -> String {
    format!("{}/examples/{name}", manifest_dir())
}

/// The value of a `label  value` line of the human form.
fn field<'a>(run: &'a Run, label: &str) -> &'a str {
    run.stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix(label)
                .filter(|rest| rest.starts_with("  "))
                .map(str::trim)
        })
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{}", run.stdout))
}

// ---------------------------------------------------------------------------
// classify

#[test]
fn classify_explains_a_polite_stop_as_a_clear_opt_out() {
    let run = optline(&["classify", "STOP please"], "");

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(field(&run, "intent"), "opt_out");
    assert_eq!(field(&run, "tier"), "clear");
    assert_eq!(field(&run, "rule"), "keyword.fcc.stop");
    assert_eq!(field(&run, "matched"), "stop");
}

#[test]
fn classify_with_json_prints_the_classification_object() {
    let run = optline(&["classify", "--json", "STOP please"], "");

    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = run.json();
    assert_eq!(v["intent"], "opt_out");
    assert_eq!(v["tier"], "clear");
    assert_eq!(v["rule"], "keyword.fcc.stop");
    assert_eq!(v["matched"], "stop");
}

#[test]
fn classify_uses_the_grammar_flag_for_reply_codes() {
    let run = optline(&["classify", "--json", "--grammar", "C,1:R,2", "r"], "");

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["intent"], "reschedule");
    assert_eq!(run.json()["tier"], "exact");
}

#[test]
fn classify_reads_yes_as_opt_in_only_when_opted_out() {
    let opted_out = optline(&["classify", "--json", "--opted-out", "YES"], "");
    let not_opted_out = optline(&["classify", "--json", "YES"], "");

    assert_eq!(opted_out.json()["intent"], "opt_in");
    assert_eq!(not_opted_out.json()["intent"], "other");
}

#[test]
fn classify_refuses_a_grammar_that_uses_a_reserved_keyword() {
    let run = optline(&["classify", "--grammar", "STOP:R", "stop"], "");

    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("reserved keyword"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
}

#[test]
fn classify_answers_json_lines_and_reports_a_bad_line_in_place() {
    let input = concat!(
        r#"{"body": "STOP please"}"#,
        "\n",
        r#"{"body": 42}"#,
        "\n",
        r#"{"body": "1", "grammar": {"confirm": ["C", "1"], "reschedule": ["R", "2"]}}"#,
        "\n",
        r#"{"body": "yes", "opted_out": true}"#,
        "\n",
    );

    let run = optline(&["classify"], input);

    assert_eq!(run.code, 1, "a failed line makes the exit code non-zero");
    let lines = run.json_lines();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["intent"], "opt_out");
    assert!(lines[1]["error"].as_str().unwrap().contains("invalid json"));
    assert_eq!(lines[1]["line"], 2);
    assert_eq!(lines[2]["intent"], "confirm");
    assert_eq!(lines[2]["rule"], "grammar.confirm");
    assert_eq!(lines[3]["intent"], "opt_in");
}

// ---------------------------------------------------------------------------
// segments

#[test]
fn segments_splits_a_161_character_gsm_body_into_two_parts() {
    let body = "a".repeat(161);

    let run = optline(&["segments", &body], "");

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(field(&run, "encoding"), "gsm7");
    assert_eq!(field(&run, "units"), "161 septets");
    assert_eq!(field(&run, "segments"), "2 (up to 153 units each)");
    assert!(field(&run, "part 1").starts_with("153 units"));
    assert!(field(&run, "part 2").starts_with("8 units"));
}

#[test]
fn segments_with_json_gives_the_count_and_the_exact_parts() {
    let body = "a".repeat(161);

    let v = optline(&["segments", "--json", &body], "").json();

    assert_eq!(v["encoding"], "gsm7");
    assert_eq!(v["units"], 161);
    assert_eq!(v["characters"], 161);
    assert_eq!(v["segments"], 2);
    assert_eq!(v["per_segment"], 153);
    assert_eq!(v["parts"][0], "a".repeat(153));
    assert_eq!(v["parts"][1], "a".repeat(8));
    assert_eq!(v["non_gsm7"], serde_json::json!([]));
}

#[test]
fn segments_names_the_characters_that_force_ucs2() {
    let v = optline(&["segments", "--json", "Don’t forget 😀"], "").json();

    assert_eq!(v["encoding"], "ucs2");
    assert_eq!(v["non_gsm7"], serde_json::json!(["’", "😀"]));
    assert_eq!(v["units"], 15, "the emoji is a surrogate pair");
    assert_eq!(v["segments"], 1);
}

#[test]
fn segments_answers_json_lines_and_reports_a_bad_line_in_place() {
    let long = "b".repeat(161);
    let input =
        format!("{{\"body\": \"hello\"}}\n{{\"text\": \"hello\"}}\n{{\"body\": \"{long}\"}}\n");

    let run = optline(&["segments"], &input);

    assert_eq!(run.code, 1);
    let lines = run.json_lines();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["segments"], 1);
    assert!(lines[1]["error"]
        .as_str()
        .unwrap()
        .contains("unknown field"));
    assert_eq!(lines[2]["segments"], 2);
}

// ---------------------------------------------------------------------------
// phone

#[test]
fn phone_normalizes_a_written_us_number_and_lists_its_zone() {
    let run = optline(&["phone", "(415) 555-2671"], "");

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(field(&run, "valid"), "yes");
    assert_eq!(field(&run, "e164"), "+14155552671");
    assert_eq!(field(&run, "masked"), "+1******2671");
    assert_eq!(field(&run, "area code"), "415 (CA)");
    assert_eq!(field(&run, "time zones"), "America/Los_Angeles");
}

#[test]
fn phone_with_json_gives_every_field() {
    let v = optline(&["phone", "--json", "(415) 555-2671"], "").json();

    assert_eq!(
        v,
        serde_json::json!({
            "input": "(415) 555-2671",
            "valid": true,
            "e164": "+14155552671",
            "masked": "+1******2671",
            "region": "US",
            "area_code": "415",
            "area_code_state": "CA",
            "zones": ["America/Los_Angeles"],
        })
    );
}

#[test]
fn phone_says_why_a_number_is_invalid() {
    let run = optline(&["phone", "--json", "555-1234"], "");

    assert_eq!(run.code, 0, "an invalid number is an answer, not a failure");
    assert_eq!(
        run.json(),
        serde_json::json!({"input": "555-1234", "valid": false, "reason": "too short"})
    );
}

#[test]
fn phone_answers_json_lines_of_objects_and_bare_strings() {
    let input = concat!(
        "\"415.555.2671\"\n",
        "{\"phone\": \"+44 20 7946 0958\"}\n",
        "[\"not\", \"an\", \"object\"]\n",
        "{\"phone\": \"tel:+1-212-555-0100\"}\n",
    );

    let run = optline(&["phone"], input);

    assert_eq!(run.code, 1);
    let lines = run.json_lines();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["e164"], "+14155552671");
    assert_eq!(lines[1]["e164"], "+442079460958");
    assert_eq!(lines[1]["region"], "GB");
    assert_eq!(lines[1]["zones"], serde_json::json!(["Europe/London"]));
    assert_eq!(lines[2]["line"], 3);
    assert!(lines[2]["error"].as_str().unwrap().contains("phone"));
    assert_eq!(lines[3]["e164"], "+12125550100");
    assert_eq!(lines[3]["zones"], serde_json::json!(["America/New_York"]));
}

// ---------------------------------------------------------------------------
// quiet-hours

/// Sunday 29 November 2026, 10:00 in Austin (CST, UTC-6).
const SUNDAY_10_CENTRAL: &str = "2026-11-29T16:00:00Z";

#[test]
fn quiet_hours_holds_a_texas_number_on_sunday_morning_until_noon_local() {
    let run = optline(
        &[
            "quiet-hours",
            "--phone",
            "(512) 555-0100",
            "--at",
            SUNDAY_10_CENTRAL,
        ],
        "",
    );

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(field(&run, "allowed now"), "no");
    assert_eq!(field(&run, "next allowed"), "2026-11-29T18:00:00Z");
    assert!(
        run.stdout.contains("allowed from Sun 2026-11-29 12:00 CST"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("quiet_hours.state.TX"));
}

#[test]
fn quiet_hours_with_json_gives_the_next_allowed_time_in_each_zone() {
    let v = optline(
        &[
            "quiet-hours",
            "--json",
            "--phone",
            "+15125550100",
            "--at",
            SUNDAY_10_CENTRAL,
        ],
        "",
    )
    .json();

    assert_eq!(v["allowed_now"], false);
    assert_eq!(v["next_allowed"], "2026-11-29T18:00:00Z");
    assert_eq!(v["zones"], serde_json::json!(["America/Chicago"]));
    assert_eq!(v["local"][0]["at"], "2026-11-29T10:00:00-06:00");
    assert_eq!(v["local"][0]["next_allowed"], "2026-11-29T12:00:00-06:00");
    let tx = v["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "quiet_hours.state.TX")
        .unwrap();
    assert_eq!(tx["verdict"], "defer");
}

#[test]
fn quiet_hours_allows_a_weekday_afternoon() {
    let v = optline(
        &[
            "quiet-hours",
            "--json",
            "--zone",
            "America/Chicago",
            "--at",
            "2026-11-24T21:00:00Z",
        ],
        "",
    )
    .json();

    assert_eq!(v["allowed_now"], true);
    assert_eq!(v["next_allowed"], Value::Null);
}

#[test]
fn quiet_hours_rejects_a_state_code_that_is_not_a_state() {
    let run = optline(&["quiet-hours", "--state", "TE"], "");

    assert_eq!(run.code, 2, "a bad flag is a usage error");
    assert!(
        run.stderr.contains("unknown us state code"),
        "{}",
        run.stderr
    );
}

#[test]
fn quiet_hours_answers_json_lines_with_the_at_flag_as_default() {
    let input = concat!(
        "{\"phone\": \"+15125550100\"}\n",
        "{\"zone\": \"America/Chicgo\"}\n",
        "{}\n",
        "{\"state\": \"FL\", \"at\": \"2026-11-24T13:30:00Z\", \"class\": \"marketing\"}\n",
    );

    let run = optline(&["quiet-hours", "--at", SUNDAY_10_CENTRAL], input);

    assert_eq!(run.code, 1);
    let lines = run.json_lines();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["at"], SUNDAY_10_CENTRAL);
    assert_eq!(lines[0]["next_allowed"], "2026-11-29T18:00:00Z");
    assert!(lines[1]["error"]
        .as_str()
        .unwrap()
        .contains("unknown time zone"));
    assert_eq!(lines[2]["allowed_now"], false, "no zone known fails closed");
    assert_eq!(lines[2]["rules"][0]["id"], "quiet_hours.zone_unknown");
    assert_eq!(lines[3]["class"], "marketing");
    assert_eq!(
        lines[3]["zones"],
        serde_json::json!(["America/New_York", "America/Chicago"])
    );
    assert_eq!(lines[3]["next_allowed"], "2026-11-24T14:00:00Z");
}

// ---------------------------------------------------------------------------
// evaluate

#[test]
fn evaluate_suppresses_after_a_revocation_and_names_the_rule() {
    let run = optline(&["evaluate", &example("evaluate-revoked.json")], "");

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(field(&run, "decision"), "suppress");
    assert_eq!(field(&run, "reasons"), "consent.revocation");
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("consent.revocation"))
        .unwrap();
    assert!(
        row.contains("2026-11-25"),
        "the rule's version is shown: {row}"
    );
    assert!(row.contains("fail"));
    assert!(row.contains("evt-stop-2"));
}

#[test]
fn evaluate_with_json_gives_the_full_decision() {
    let v = optline(
        &["evaluate", "--json", &example("evaluate-revoked.json")],
        "",
    )
    .json();

    assert_eq!(v["decision"], "suppress");
    assert_eq!(v["reasons"], serde_json::json!(["consent.revocation"]));
    assert_eq!(v["rules"][0]["id"], "consent.revocation");
    assert_eq!(v["rules"][0]["verdict"], "fail");
    assert_eq!(v["now"], "2026-11-24T18:00:00Z");
}

#[test]
fn evaluate_sends_with_a_grant_inside_the_window() {
    let v = optline(&["evaluate", "--json", &example("evaluate-send.json")], "").json();

    assert_eq!(v["decision"], "send");
    assert_eq!(v["legal_basis"], "prior_express_consent");
    assert_eq!(v["consent_event_id"], "evt-grant-1");
}

#[test]
fn evaluate_defers_a_texas_sunday_morning_send_to_noon_local() {
    let run = optline(&["evaluate", &example("evaluate-quiet-hours.json")], "");

    assert_eq!(field(&run, "decision"), "defer");
    assert_eq!(field(&run, "until"), "2026-11-29T18:00:00Z");
}

#[test]
fn evaluate_reads_one_pretty_printed_object_from_stdin_with_a_dash() {
    let file = std::fs::read_to_string(example("evaluate-revoked.json")).unwrap();

    let run = optline(&["evaluate", "-"], &file);

    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(field(&run, "decision"), "suppress");
}

#[test]
fn evaluate_fails_on_a_missing_file() {
    let run = optline(&["evaluate", "no-such-file.json"], "");

    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("cannot read no-such-file.json"),
        "{}",
        run.stderr
    );
}

#[test]
fn evaluate_answers_json_lines_and_reports_a_bad_line_in_place() {
    let compact = |name: &str| {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(example(name)).unwrap()).unwrap();
        v.to_string()
    };
    let mut bad_phone: Value =
        serde_json::from_str(&std::fs::read_to_string(example("evaluate-send.json")).unwrap())
            .unwrap();
    bad_phone["request"]["recipient"]["phone"] = "12".into();
    let input = format!(
        "{}\n{}\n{}\n{}\n",
        compact("evaluate-send.json"),
        bad_phone,
        compact("evaluate-revoked.json"),
        compact("evaluate-quiet-hours.json"),
    );

    let run = optline(&["evaluate"], &input);

    assert_eq!(run.code, 1);
    let lines = run.json_lines();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["decision"], "send");
    assert!(lines[1]["error"]
        .as_str()
        .unwrap()
        .contains("invalid phone number"));
    assert_eq!(lines[2]["decision"], "suppress");
    assert_eq!(lines[3]["decision"], "defer");
    assert_eq!(lines[3]["until"], "2026-11-29T18:00:00Z");
}

#[test]
fn every_example_request_is_accepted() {
    let dir = format!("{}/examples", manifest_dir());
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let run = optline(&["evaluate", "--json", path.to_str().unwrap()], "");
        assert_eq!(run.code, 0, "{}: {}", path.display(), run.stdout);
    }
}

// ---------------------------------------------------------------------------
// rules

#[test]
fn rules_for_an_oregon_number_show_hb_3865_with_its_dates_and_source() {
    let run = optline(
        &["rules", "--phone", "+15035550100", "--at", "2026-12-06"],
        "",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("states   OR"), "{}", run.stdout);
    for id in [
        "quiet_hours.federal",
        "quiet_hours.state.OR",
        "caps.state.OR",
    ] {
        let block = run
            .stdout
            .split("\n\n")
            .find(|b| b.starts_with(id))
            .unwrap_or_else(|| panic!("{id} listed: {}", run.stdout));
        assert!(block.contains("APPLIES"), "{block}");
    }
    assert!(run.stdout.contains("from 2026-01-01, session law"));
    assert!(run.stdout.contains("HB 3865"));
    assert!(run.stdout.contains("08:00-20:00"));
    // Other states' rows are left out; the revoke-all switch is shown with
    // its date, not yet in force.
    assert!(!run.stdout.contains("quiet_hours.state.TX"));
    assert!(run.stdout.contains(
        "consent.revoke_all  [consent_rules]  does not apply: not in force before 2027-01-31"
    ));
}

#[test]
fn rules_show_virginia_and_texas_only_from_their_dates() {
    let rows = |state: &str, at: &str| {
        let run = optline(&["rules", "--state", state, "--at", at, "--json"], "");
        assert_eq!(run.code, 0, "{}", run.stderr);
        run.json()["rules"].as_array().unwrap().clone()
    };
    let find = |rows: &[Value], id: &str| rows.iter().find(|r| r["id"] == id).cloned().unwrap();

    let va = find(&rows("VA", "2025-12-31"), "quiet_hours.state.VA");
    assert_eq!(va["applies"], false);
    assert_eq!(va["why_not"], "not in force before 2026-01-01");
    let va = find(&rows("VA", "2026-01-01"), "quiet_hours.state.VA");
    assert_eq!(va["applies"], true);
    assert_eq!(va["effective_from"], "2026-01-01");
    assert!(va["source"].as_str().unwrap().contains("SB 1339"));
    assert!(va["summary"].as_str().unwrap().contains("prior consent"));

    let tx = find(&rows("TX", "2025-08-31"), "quiet_hours.state.TX");
    assert_eq!(tx["applies"], false);
    let tx = find(&rows("TX", "2025-09-01"), "quiet_hours.state.TX");
    assert_eq!(tx["applies"], true);
    assert!(tx["source"].as_str().unwrap().contains("SB 140"));
    assert_eq!(
        tx["summary"], "Mon-Sat 09:00-21:00, Sun 12:00-21:00",
        "{tx}"
    );

    let all = rows("OR", "2027-02-01");
    assert_eq!(find(&all, "consent.revoke_all")["applies"], true);
}

#[test]
fn every_rule_row_has_a_real_date_and_a_source() {
    let run = optline(&["rules", "--json", "--at", "2026-12-06"], "");
    assert_eq!(run.code, 0, "{}", run.stderr);
    let rules = run.json()["rules"].as_array().unwrap().clone();
    assert!(rules.len() >= 25, "every row of every table");
    for rule in &rules {
        let from = rule["effective_from"].as_str().unwrap();
        assert!(from > "1991-01-01", "{rule}");
        assert!(!rule["source"].as_str().unwrap().is_empty(), "{rule}");
        assert!(
            !rule["effective_from_basis"].as_str().unwrap().is_empty(),
            "{rule}"
        );
    }
}
