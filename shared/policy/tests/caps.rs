//! Specifications for `optline_policy::caps`. Cases live in
//! `corpus/caps.json`; properties simulate senders that send whenever the
//! caps allow and check every rolling window afterwards.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly on broken fixtures"
)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use optline_policy::caps::{
    check, rule_ids, table_version, validate_table, CapRequest, PriorSend, CAPS_VERSION,
};
use optline_policy::{PolicyError, UsState, Verdict};
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Corpus {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    now: DateTime<Utc>,
    request: Request,
    history: Vec<PriorSend>,
    allowed: bool,
    next_allowed: Option<DateTime<Utc>>,
    outcomes: Vec<ExpectedOutcome>,
}

#[derive(Debug, Deserialize)]
struct Request {
    subject: String,
    provider: String,
    healthcare_exempt: bool,
    states: Vec<UsState>,
    workflow: Option<String>,
    workflow_limit: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct ExpectedOutcome {
    id: String,
    verdict: Verdict,
}

#[test]
fn every_corpus_case_gives_its_verdict_retry_time_and_outcomes() {
    let corpus: Corpus =
        serde_json::from_str(include_str!("corpus/caps.json")).expect("corpus parses");
    assert!(corpus.cases.len() >= 15);
    for case in &corpus.cases {
        let r = &case.request;
        let req = CapRequest {
            subject: &r.subject,
            provider: &r.provider,
            healthcare_exempt: r.healthcare_exempt,
            states: &r.states,
            workflow: r.workflow.as_deref(),
            workflow_limit: r.workflow_limit,
        };
        let got = check(&req, &case.history, case.now);
        assert_eq!(got.allowed, case.allowed, "{}: {got:#?}", case.name);
        assert_eq!(
            got.next_allowed, case.next_allowed,
            "{}: {got:#?}",
            case.name
        );
        let got_pairs: Vec<(&str, Verdict)> = got
            .outcomes
            .iter()
            .map(|o| (o.id.as_ref(), o.verdict))
            .collect();
        let want: Vec<(&str, Verdict)> = case
            .outcomes
            .iter()
            .map(|o| (o.id.as_ref(), o.verdict))
            .collect();
        assert_eq!(got_pairs, want, "{}", case.name);
        assert!(got.outcomes.iter().all(|o| o.version == CAPS_VERSION));
        if let Some(next) = got.next_allowed {
            assert!(check(&req, &case.history, next).allowed, "{}", case.name);
            let before = next - Duration::seconds(1);
            assert!(!check(&req, &case.history, before).allowed, "{}", case.name);
        }
    }
}

#[test]
fn the_version_constant_matches_the_embedded_table() {
    assert_eq!(table_version().unwrap(), CAPS_VERSION);
}

#[test]
fn the_table_has_every_required_rule() {
    assert_eq!(
        rule_ids().unwrap(),
        [
            "caps.state.FL",
            "caps.state.OK",
            "caps.state.MD",
            "caps.state.OR",
            "caps.fcc_healthcare_exempt",
            "caps.workflow_cadence"
        ]
    );
}

#[test]
fn an_invalid_table_is_rejected_with_a_reason() {
    let zero = r#"{"table":"caps","version":"x","rules":[{"id":"a","kind":"subject",
        "states":["FL"],"limits":[{"max":0,"window_hours":24}],
        "effective_from":"2020-01-01","source":"s"}]}"#;
    assert!(matches!(
        validate_table(zero),
        Err(PolicyError::RuleTable { table: "caps", .. })
    ));
    assert!(validate_table(&zero.replace("\"max\":0", "\"max\":3")).is_ok());
    assert!(validate_table(&zero.replace("\"source\":\"s\"", "\"source\":\" \"")).is_err());
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap()
}

fn max_in_any_window(times: &[DateTime<Utc>], window: Duration) -> usize {
    // The fullest window (t - W, t] ends at some send.
    times
        .iter()
        .map(|end| {
            times
                .iter()
                .filter(|t| **t <= *end && **t > *end - window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_sender_obeying_the_state_cap_never_exceeds_three_in_any_24_hours(
        gaps in prop::collection::vec(0i64..(12 * 3600), 1..60),
    ) {
        let states = [UsState::parse("FL").unwrap()];
        let req = CapRequest {
            subject: "appt-1",
            provider: "clinic-a",
            healthcare_exempt: false,
            states: &states,
            workflow: None,
            workflow_limit: None,
        };
        let mut history: Vec<PriorSend> = Vec::new();
        let mut now = t0();
        for gap in gaps {
            now += Duration::seconds(gap);
            let got = check(&req, &history, now);
            if got.allowed {
                history.push(PriorSend {
                    at: now,
                    subject: "appt-1".to_owned(),
                    provider: "clinic-a".to_owned(),
                    healthcare_exempt: false,
                    workflow: None,
                });
            } else {
                let next = got.next_allowed.unwrap();
                prop_assert!(next > now);
                prop_assert!(check(&req, &history, next).allowed);
            }
        }
        let times: Vec<DateTime<Utc>> = history.iter().map(|p| p.at).collect();
        prop_assert!(max_in_any_window(&times, Duration::hours(24)) <= 3);
    }

    #[test]
    fn a_sender_obeying_the_exemption_cap_sends_at_most_one_a_day_and_three_a_week(
        gaps in prop::collection::vec(0i64..(36 * 3600), 1..60),
    ) {
        let req = CapRequest {
            subject: "appt-1",
            provider: "clinic-a",
            healthcare_exempt: true,
            states: &[],
            workflow: None,
            workflow_limit: None,
        };
        let mut history: Vec<PriorSend> = Vec::new();
        let mut now = t0();
        for gap in gaps {
            now += Duration::seconds(gap);
            if check(&req, &history, now).allowed {
                history.push(PriorSend {
                    at: now,
                    subject: "appt-1".to_owned(),
                    provider: "clinic-a".to_owned(),
                    healthcare_exempt: true,
                    workflow: None,
                });
            }
        }
        let times: Vec<DateTime<Utc>> = history.iter().map(|p| p.at).collect();
        prop_assert!(max_in_any_window(&times, Duration::hours(24)) <= 1);
        prop_assert!(max_in_any_window(&times, Duration::days(7)) <= 3);
    }

    #[test]
    fn next_allowed_is_exactly_when_the_cap_lifts(
        offsets in prop::collection::vec(0i64..(48 * 3600), 0..8),
    ) {
        let states = [UsState::parse("MD").unwrap()];
        let req = CapRequest {
            subject: "s",
            provider: "p",
            healthcare_exempt: false,
            states: &states,
            workflow: None,
            workflow_limit: None,
        };
        let now = t0() + Duration::hours(48);
        let history: Vec<PriorSend> = offsets
            .iter()
            .map(|o| PriorSend {
                at: t0() + Duration::seconds(*o),
                subject: "s".to_owned(),
                provider: "p".to_owned(),
                healthcare_exempt: false,
                workflow: None,
            })
            .collect();
        let got = check(&req, &history, now);
        match got.next_allowed {
            None => prop_assert!(got.allowed),
            Some(next) => {
                prop_assert!(!got.allowed);
                prop_assert!(check(&req, &history, next).allowed);
                prop_assert!(!check(&req, &history, next - Duration::seconds(1)).allowed);
            }
        }
    }
}
