//! Specifications for `optline_policy::decision::evaluate`. Cases live in
//! `corpus/decision.json` (each request is a JSON merge patch over the
//! corpus's base request); properties check that a revocation, the federal
//! quiet hours and the defer-until contract hold for generated inputs, and
//! that the engine never panics.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly on broken fixtures"
)]

use chrono::{DateTime, Duration, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use optline_policy::caps::PriorSend;
use optline_policy::consent::{ConsentAction, ConsentFact, ConsentKind, ConsentScope, LegalBasis};
use optline_policy::decision::{evaluate, Decision, PolicyState, Recipient, SendRequest, Urgency};
use optline_policy::phone::{area_code_zones, state_zones, E164};
use optline_policy::{MessageClass, UsState, Verdict};
use proptest::prelude::*;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

// ---------------------------------------------------------------------------
// The corpus

#[derive(Debug, Deserialize)]
struct Corpus {
    base_request: Value,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    now: DateTime<Utc>,
    request: Value,
    state: PolicyState,
    expect: Expect,
}

#[derive(Debug, Deserialize)]
struct Expect {
    decision: String,
    #[serde(default)]
    reasons: Option<Vec<String>>,
    /// Outer `None`: not given; `Some(None)`: given as null.
    #[serde(default, deserialize_with = "present")]
    until: Option<Option<DateTime<Utc>>>,
    #[serde(default)]
    legal_basis: Option<LegalBasis>,
    #[serde(default, deserialize_with = "present")]
    consent_event_id: Option<Option<String>>,
    #[serde(default)]
    rules_include: Vec<ExpectedRule>,
}

#[derive(Debug, Deserialize)]
struct ExpectedRule {
    id: String,
    verdict: Verdict,
}

/// Distinguishes a field given as `null` from a field left out.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// RFC 7396 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    let Value::Object(target) = target else {
        unreachable!()
    };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

fn corpus() -> Corpus {
    serde_json::from_str(include_str!("corpus/decision.json")).expect("decision corpus parses")
}

fn request_of(corpus: &Corpus, case: &Case) -> SendRequest {
    let mut request = corpus.base_request.clone();
    merge_patch(&mut request, &case.request);
    serde_json::from_value(request)
        .unwrap_or_else(|e| panic!("{}: request does not parse: {e}", case.name))
}

/// What every decision must satisfy, whatever its inputs.
fn check_invariants(decision: &Decision, request: &SendRequest) -> Result<(), String> {
    let rules = decision.rules();
    for r in rules {
        if r.id.is_empty() || r.version.is_empty() || r.detail.is_empty() {
            return Err(format!("rule outcome without id, version or detail: {r:?}"));
        }
        if r.detail.contains(request.recipient.phone.as_str()) {
            return Err(format!("rule {} shows the phone number", r.id));
        }
    }
    let any = |v: Verdict| rules.iter().any(|r| r.verdict == v);
    match decision {
        Decision::Send { .. } => {
            if any(Verdict::Fail) || any(Verdict::Defer) {
                return Err("a send with a failing or deferring rule".to_owned());
            }
        }
        Decision::Defer { until, .. } => {
            if any(Verdict::Fail) {
                return Err("a deferral with a failing rule".to_owned());
            }
            if !any(Verdict::Defer) {
                return Err("a deferral without a deferring rule".to_owned());
            }
            if let (Some(until), Some(expires)) = (until, request.expires_at) {
                if *until >= expires {
                    return Err("a deferral past the message's expiry".to_owned());
                }
            }
        }
        Decision::Suppress { reasons, .. } => {
            if reasons.is_empty() {
                return Err("a suppression without a reason".to_owned());
            }
            for reason in reasons {
                if !rules
                    .iter()
                    .any(|r| &r.id == reason && r.verdict == Verdict::Fail)
                {
                    return Err(format!("reason {reason} is not a failing rule"));
                }
            }
        }
    }
    let json = serde_json::to_string(decision).map_err(|e| e.to_string())?;
    let back: Decision = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    if &back != decision {
        return Err("the decision does not round-trip through JSON".to_owned());
    }
    Ok(())
}

#[test]
fn every_corpus_case_gives_its_decision_reasons_and_time() {
    let corpus = corpus();
    assert!(corpus.cases.len() >= 30, "at least 30 cases");
    let mut names = std::collections::HashSet::new();
    let mut failures = Vec::new();
    for case in &corpus.cases {
        assert!(names.insert(case.name.as_str()), "duplicate {}", case.name);
        let request = request_of(&corpus, case);
        let got = evaluate(&request, &case.state, case.now);
        let want = &case.expect;
        let mut wrong = Vec::new();
        if got.kind() != want.decision {
            wrong.push(format!("decision {} (want {})", got.kind(), want.decision));
        }
        match &got {
            Decision::Send {
                legal_basis,
                consent_event_id,
                ..
            } => {
                if let Some(basis) = want.legal_basis {
                    if *legal_basis != basis {
                        wrong.push(format!("legal basis {legal_basis:?} (want {basis:?})"));
                    }
                }
                if let Some(id) = &want.consent_event_id {
                    if consent_event_id != id {
                        wrong.push(format!("consent event {consent_event_id:?} (want {id:?})"));
                    }
                }
            }
            Decision::Defer { until, .. } => match &want.until {
                None => wrong.push("a defer case must give until (null when unknown)".into()),
                Some(u) if u != until => wrong.push(format!("until {until:?} (want {u:?})")),
                Some(_) => {}
            },
            Decision::Suppress { reasons, .. } => match &want.reasons {
                None => wrong.push("a suppress case must list its reasons".into()),
                Some(r) if r != reasons => wrong.push(format!("reasons {reasons:?} (want {r:?})")),
                Some(_) => {}
            },
        }
        for rule in &want.rules_include {
            if !got
                .rules()
                .iter()
                .any(|r| r.id == rule.id && r.verdict == rule.verdict)
            {
                wrong.push(format!(
                    "no rule {} with verdict {:?}",
                    rule.id, rule.verdict
                ));
            }
        }
        if let Err(e) = check_invariants(&got, &request) {
            wrong.push(e);
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{}: {}\n  rules: {:?}",
                case.name,
                wrong.join("; "),
                got.rules()
                    .iter()
                    .map(|r| (r.id.as_ref(), r.verdict))
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        corpus.cases.len(),
        failures.join("\n")
    );
}

#[test]
fn the_corpus_covers_every_kind_of_decision() {
    let corpus = corpus();
    for kind in ["send", "defer", "suppress"] {
        assert!(
            corpus
                .cases
                .iter()
                .filter(|c| c.expect.decision == kind)
                .count()
                >= 5,
            "{kind}"
        );
    }
}

#[test]
fn a_corpus_deferral_lifts_at_its_until_when_nothing_else_changes() {
    let corpus = corpus();
    let mut checked = 0;
    for case in &corpus.cases {
        let request = request_of(&corpus, case);
        let first = evaluate(&request, &case.state, case.now);
        let Decision::Defer {
            until: Some(until), ..
        } = &first
        else {
            continue;
        };
        checked += 1;
        let again = evaluate(&request, &case.state, *until);
        let deferring = |d: &Decision, prefix: &str| {
            d.rules()
                .iter()
                .any(|r| r.id.starts_with(prefix) && r.verdict == Verdict::Defer)
        };
        if deferring(&first, "caps.") {
            // A cap names the instant it lifts; quiet hours may then still
            // be closed, but the cap is not.
            assert!(!deferring(&again, "caps."), "{}: {again:#?}", case.name);
        } else {
            // Quiet hours name the instant every window opens.
            assert_eq!(again.kind(), "send", "{}: {again:#?}", case.name);
        }
    }
    assert!(checked >= 10, "only {checked} deferrals with a time");
}

#[test]
fn a_suppression_names_only_rules_that_failed_and_a_send_records_every_rule_consulted() {
    let corpus = corpus();
    let case = corpus
        .cases
        .iter()
        .find(|c| c.expect.decision == "send")
        .unwrap();
    let request = request_of(&corpus, case);
    let got = evaluate(&request, &case.state, case.now);
    let ids: Vec<&str> = got.rules().iter().map(|r| r.id.as_ref()).collect();
    for id in [
        "consent.revocation",
        "consent.legal_basis",
        "caps.state.FL",
        "caps.state.OK",
        "caps.state.MD",
        "caps.fcc_healthcare_exempt",
        "caps.workflow_cadence",
        "quiet_hours.federal",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
}

// ---------------------------------------------------------------------------
// Properties

const ZONES: [Tz; 9] = [
    chrono_tz::America::New_York,
    chrono_tz::America::Chicago,
    chrono_tz::America::Denver,
    chrono_tz::America::Phoenix,
    chrono_tz::America::Los_Angeles,
    chrono_tz::America::Anchorage,
    chrono_tz::Pacific::Honolulu,
    chrono_tz::America::Puerto_Rico,
    chrono_tz::Europe::London,
];

const STATES: [&str; 16] = [
    "FL", "TX", "AL", "LA", "MS", "KY", "NV", "WA", "CT", "IN", "CA", "AK", "AZ", "NY", "OK", "MD",
];

const PHONES: [&str; 12] = [
    "+12125552671",
    "+14155552671",
    "+13055552671",
    "+18502221234",
    "+19155551234",
    "+12145552671",
    "+12055552671",
    "+15045552671",
    "+19075551234",
    "+18085551234",
    "+18005551234",
    "+442079460958",
];

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
}

/// 2026-01-01 .. 2027-12-31 to the minute, DST changes included.
fn now_strategy() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..(730 * 24 * 60)).prop_map(|m| base() + Duration::minutes(m))
}

fn zone_strategy() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop::sample::select(ZONES.to_vec()).prop_map(|z| z.name().to_owned()))
}

fn state_strategy() -> impl Strategy<Value = Option<UsState>> {
    prop::option::of(prop::sample::select(STATES.to_vec()).prop_map(|s| UsState::parse(s).unwrap()))
}

fn phone_strategy() -> impl Strategy<Value = E164> {
    prop::sample::select(PHONES.to_vec()).prop_map(|p| E164::parse(p).unwrap())
}

fn class_strategy() -> impl Strategy<Value = MessageClass> {
    prop::sample::select(vec![
        MessageClass::Transactional,
        MessageClass::Informational,
        MessageClass::Marketing,
    ])
}

fn request(
    class: MessageClass,
    category: &str,
    phone: E164,
    time_zone: Option<String>,
    address_state: Option<UsState>,
) -> SendRequest {
    SendRequest {
        program: "clinic".to_owned(),
        category: category.to_owned(),
        class,
        purpose: "appointment_reminder".to_owned(),
        healthcare_exempt: false,
        subject: "episode-1".to_owned(),
        workflow: None,
        workflow_limit: None,
        body: None,
        provider_name: None,
        provider_contact: None,
        recipient: Recipient {
            phone,
            time_zone,
            address_state,
            minor: false,
            phone_given_by_patient: true,
        },
        expires_at: None,
        urgency: Urgency::Routine,
    }
}

fn written_grant(at: DateTime<Utc>) -> ConsentFact {
    ConsentFact {
        id: "g-all".to_owned(),
        action: ConsentAction::Grant,
        scope: ConsentScope::Contact,
        program: None,
        categories: Vec::new(),
        kind: ConsentKind::ExpressWritten,
        at,
        reverses: None,
        guardian: true,
        expires_at: None,
    }
}

/// A consent event drawn from a small vocabulary, so that events often
/// cover the message and re-opt-ins often name a real revocation.
fn fact_strategy() -> impl Strategy<Value = ConsentFact> {
    (
        any::<bool>(),
        0usize..4,
        prop::sample::select(vec![None, Some("clinic"), Some("pharmacy")]),
        prop::sample::select(vec![
            vec![],
            vec!["appointments"],
            vec!["offers"],
            vec!["appointments", "offers"],
        ]),
        any::<bool>(),
        -400i64..400,
        prop::option::of(0usize..4),
        any::<bool>(),
        prop::option::of(-400i64..400),
        any::<bool>(),
    )
        .prop_map(
            |(grant, n, program, categories, written, at, reverses, guardian, exp, phone)| {
                let action = if grant {
                    ConsentAction::Grant
                } else {
                    ConsentAction::Revoke
                };
                let prefix = if grant { "g" } else { "r" };
                ConsentFact {
                    id: format!("{prefix}{n}"),
                    action,
                    scope: if phone {
                        ConsentScope::Phone
                    } else {
                        ConsentScope::Contact
                    },
                    program: program.map(str::to_owned),
                    categories: categories.into_iter().map(str::to_owned).collect(),
                    kind: if written {
                        ConsentKind::ExpressWritten
                    } else {
                        ConsentKind::Express
                    },
                    // Hours around the evaluation instant (2026-06-10T18:00Z),
                    // in whole hours so that ties are common.
                    at: Utc.with_ymd_and_hms(2026, 6, 10, 18, 0, 0).unwrap() + Duration::hours(at),
                    reverses: if grant {
                        reverses.map(|r| format!("r{r}"))
                    } else {
                        None
                    },
                    guardian,
                    expires_at: exp.map(|h| {
                        Utc.with_ymd_and_hms(2026, 6, 10, 18, 0, 0).unwrap() + Duration::hours(h)
                    }),
                }
            },
        )
}

fn prior_strategy(now: DateTime<Utc>) -> impl Strategy<Value = PriorSend> {
    (
        0i64..(10 * 24 * 60),
        prop::sample::select(vec!["episode-1", "episode-2"]),
        prop::sample::select(vec!["clinic", "pharmacy"]),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec!["wf-1", "wf-2"])),
    )
        .prop_map(
            move |(ago, subject, provider, exempt, workflow)| PriorSend {
                at: now - Duration::minutes(ago),
                subject: subject.to_owned(),
                provider: provider.to_owned(),
                healthcare_exempt: exempt,
                workflow: workflow.map(str::to_owned),
            },
        )
}

/// Every zone the recipient may be in, as quiet hours see it.
fn candidate_zones(request: &SendRequest) -> Vec<Tz> {
    let mut zones: Vec<Tz> = Vec::new();
    if let Some(z) = &request.recipient.time_zone {
        zones.push(z.parse().unwrap());
    }
    if let Some(s) = &request.recipient.address_state {
        zones.extend(state_zones(s));
    }
    zones.extend(area_code_zones(&request.recipient.phone));
    zones
}

/// Arbitrary strings, biased towards the shapes the engine inspects.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("Bayview Clinic: call 415-555-0199. Reply STOP to opt out.".to_owned()),
        Just("billing".to_owned()),
        Just("America/Chicago".to_owned()),
        "\\PC{0,40}",
        "[a-z_/]{0,20}",
        "[ -~€😀é\u{1b}]{0,200}",
    ]
}

fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 1971 .. 2099, to the second.
    (31_536_000i64..4_102_444_800).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

prop_compose! {
    fn any_recipient()(
        phone in phone_strategy(),
        time_zone in prop_oneof![zone_strategy(), prop::option::of(text())],
        address_state in state_strategy(),
        minor in any::<bool>(),
        phone_given_by_patient in any::<bool>(),
    ) -> Recipient {
        Recipient { phone, time_zone, address_state, minor, phone_given_by_patient }
    }
}

prop_compose! {
    fn any_content()(
        body in prop::option::of(text()),
        provider_name in prop::option::of(text()),
        provider_contact in prop::option::of(text()),
        purpose in prop_oneof![
            prop::sample::select(vec!["appointment_reminder", "billing", "collections", "payment"])
                .prop_map(str::to_owned),
            text(),
        ],
    ) -> (Option<String>, Option<String>, Option<String>, String) {
        (body, provider_name, provider_contact, purpose)
    }
}

prop_compose! {
    fn any_request()(
        program in prop::sample::select(vec!["clinic", "pharmacy", ""]),
        category in prop::sample::select(vec!["appointments", "offers", "billing", "*"]),
        class in class_strategy(),
        healthcare_exempt in any::<bool>(),
        workflow in prop::option::of(prop::sample::select(vec!["wf-1", "wf-2"])),
        workflow_limit in prop::option::of(prop_oneof![Just(0u32), 0u32..5, Just(u32::MAX)]),
        (body, provider_name, provider_contact, purpose) in any_content(),
        recipient in any_recipient(),
        expires_at in prop::option::of(any_instant()),
        time_sensitive in any::<bool>(),
    ) -> SendRequest {
        SendRequest {
            program: program.to_owned(),
            category: category.to_owned(),
            class,
            purpose,
            healthcare_exempt,
            subject: "episode-1".to_owned(),
            workflow: workflow.map(str::to_owned),
            workflow_limit,
            body,
            provider_name,
            provider_contact,
            recipient,
            expires_at,
            urgency: if time_sensitive { Urgency::TimeSensitive } else { Urgency::Routine },
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (a) A revocation covering the message that is at least as late as
    /// every grant that covers it wins over every basis, the healthcare
    /// exemption and HIPAA treatment included.
    #[test]
    fn never_sends_when_a_covering_revocation_is_later_than_every_grant(
        events in prop::collection::vec(fact_strategy(), 0..8),
        class in class_strategy(),
        category in prop::sample::select(vec!["appointments", "offers"]),
        exempt in any::<bool>(),
        minute in 0i64..(24 * 60),
    ) {
        // Inside the federal window in Los Angeles more often than not.
        let now = Utc.with_ymd_and_hms(2026, 6, 10, 18, 0, 0).unwrap()
            + Duration::minutes(minute - 12 * 60);
        let mut req = request(
            class,
            category,
            E164::parse("+14155552671").unwrap(),
            Some("America/Los_Angeles".to_owned()),
            None,
        );
        req.healthcare_exempt = exempt;
        req.body = Some("Bayview Clinic: call 415-555-0199. Reply STOP to opt out.".to_owned());
        req.provider_name = Some("Bayview Clinic".to_owned());
        req.provider_contact = Some("415-555-0199".to_owned());
        let covers = |e: &ConsentFact| {
            e.program.as_deref().is_none_or(|p| p == "clinic")
                && (e.categories.is_empty() || e.categories.iter().any(|c| c == category))
        };
        let latest_grant = events
            .iter()
            .filter(|e| e.action == ConsentAction::Grant && covers(e))
            .map(|e| e.at)
            .max();
        let revoked = events.iter().any(|e| {
            e.action == ConsentAction::Revoke
                && covers(e)
                && latest_grant.is_none_or(|g| g <= e.at)
        });
        let state = PolicyState { consent: events, history: Vec::new() };
        let got = evaluate(&req, &state, now);
        if revoked {
            prop_assert_ne!(got.kind(), "send", "{:#?}", got);
            prop_assert!(
                matches!(&got, Decision::Suppress { reasons, .. } if reasons == &["consent.revocation".to_owned()]),
                "{:#?}", got
            );
        }
        check_invariants(&got, &req).map_err(TestCaseError::fail)?;
    }

    /// (b) Whatever the zones, no send happens outside 08:00-21:00 local
    /// time in any zone the recipient may be in, and none when no zone is
    /// known.
    #[test]
    fn never_sends_outside_the_federal_window_in_any_candidate_zone(
        zone in zone_strategy(),
        state in state_strategy(),
        phone in phone_strategy(),
        class in class_strategy(),
        now in now_strategy(),
    ) {
        let req = request(class, "appointments", phone, zone, state);
        let consent = PolicyState { consent: vec![written_grant(base())], history: Vec::new() };
        let got = evaluate(&req, &consent, now);
        let zones = candidate_zones(&req);
        let outside = zones.iter().any(|z| !(8..21).contains(&now.with_timezone(z).hour()));
        if outside || zones.is_empty() {
            prop_assert_ne!(got.kind(), "send", "{:#?}", got);
        }
        if got.kind() == "send" {
            prop_assert!(!zones.is_empty());
        }
        check_invariants(&got, &req).map_err(TestCaseError::fail)?;
    }

    /// (c) Any combination of inputs gives a decision, never a panic, and the
    /// decision keeps its invariants.
    #[test]
    fn evaluate_never_panics_and_keeps_its_invariants(
        req in any_request(),
        events in prop::collection::vec(fact_strategy(), 0..6),
        history in now_strategy().prop_flat_map(|n| prop::collection::vec(prior_strategy(n), 0..8)),
        now in any_instant(),
    ) {
        let state = PolicyState { consent: events, history };
        let got = evaluate(&req, &state, now);
        check_invariants(&got, &req).map_err(TestCaseError::fail)?;
    }

    /// (d) Deferring makes progress: evaluated again at its `until`, with
    /// the same state, a deferred message is sent, suppressed, or deferred
    /// to a strictly later instant.
    #[test]
    fn a_deferral_re_evaluated_at_its_until_never_defers_to_the_same_or_an_earlier_time(
        zone in zone_strategy(),
        state in state_strategy(),
        phone in phone_strategy(),
        class in class_strategy(),
        exempt in any::<bool>(),
        workflow_limit in prop::option::of(1u32..5),
        now in now_strategy(),
        offsets in prop::collection::vec(
            (0i64..(9 * 24 * 60), any::<bool>(), any::<bool>(), any::<bool>()), 0..10),
        expires_in in prop::option::of(1i64..(5 * 24 * 60)),
        time_sensitive in any::<bool>(),
    ) {
        let mut req = request(class, "appointments", phone, zone, state);
        req.healthcare_exempt = exempt;
        req.body = Some("Bayview Clinic: call 415-555-0199. Reply STOP to opt out.".to_owned());
        req.provider_name = Some("Bayview Clinic".to_owned());
        req.provider_contact = Some("415-555-0199".to_owned());
        req.workflow = Some("wf-1".to_owned());
        req.workflow_limit = workflow_limit;
        req.expires_at = expires_in.map(|m| now + Duration::minutes(m));
        req.urgency = if time_sensitive { Urgency::TimeSensitive } else { Urgency::Routine };
        let history = offsets
            .into_iter()
            .map(|(ago, same_subject, exempt, in_workflow)| PriorSend {
                // Mostly in the past; a few a little ahead of `now` (clock
                // skew), which the caps ignore until they are due.
                at: now - Duration::minutes(ago) + Duration::hours(6),
                subject: if same_subject { "episode-1" } else { "episode-2" }.to_owned(),
                provider: "clinic".to_owned(),
                healthcare_exempt: exempt,
                workflow: in_workflow.then(|| "wf-1".to_owned()),
            })
            .collect();
        // No grant half of the time, so the exemption and its caps apply.
        let consent = if exempt { Vec::new() } else { vec![written_grant(base())] };
        let policy_state = PolicyState { consent, history };
        let mut at = now;
        let mut decision = evaluate(&req, &policy_state, at);
        // Follow the chain of deferrals a few steps.
        for _ in 0..6 {
            let Decision::Defer { until, .. } = &decision else { break };
            let Some(until) = *until else { break };
            prop_assert!(until > at, "deferred from {at} to {until}");
            let next = evaluate(&req, &policy_state, until);
            if let Decision::Defer { until: again, rules } = &next {
                match again {
                    Some(again) => prop_assert!(*again > until, "{until} then {again}"),
                    // No time: no zone is known, or the windows of every
                    // candidate zone never overlap (a toll-free number, every
                    // NANP zone from Guam to Pago Pago, under Kentucky's
                    // 10:00-21:00).
                    None => prop_assert!(
                        rules.iter().any(|r| r.id == "quiet_hours.zone_unknown"
                            || (r.id.starts_with("quiet_hours.") && r.verdict == Verdict::Defer)),
                        "{next:#?}"
                    ),
                }
            }
            check_invariants(&next, &req).map_err(TestCaseError::fail)?;
            at = until;
            decision = next;
        }
    }
}
