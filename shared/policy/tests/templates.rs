//! Specifications for `optline_policy::template`: lint (table-driven from
//! `corpus/template_lint.json`), rendering, risk tiers and the review state
//! machine (property-tested: no path reaches `published` without the tier's
//! quorum, and the author never counts).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly on broken fixtures"
)]

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use optline_policy::template::lint::{lint, lint_rendered, LintConfig, Severity};
use optline_policy::template::review::{
    apply, missing_roles, required_roles, risk_tier, sendable, Action, Actor, Lifecycle,
    ReviewError, ReviewPolicy, RiskTier, Role, VersionState,
};
use optline_policy::template::{find_seed, seed_library, TemplateVersion};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
struct Corpus {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    patch: serde_json::Map<String, Value>,
    errors: Vec<String>,
    warnings: Vec<String>,
}

fn patched(patch: &serde_json::Map<String, Value>) -> TemplateVersion {
    let mut base = serde_json::to_value(find_seed("appointment_reminder", 1).unwrap()).unwrap();
    let object = base.as_object_mut().unwrap();
    for (k, v) in patch {
        object.insert(k.clone(), v.clone());
    }
    serde_json::from_value(base).unwrap()
}

fn rules_of(
    findings: &[optline_policy::template::lint::Finding],
    severity: Severity,
) -> Vec<String> {
    let mut ids: Vec<String> = findings
        .iter()
        .filter(|f| f.severity == severity)
        .map(|f| f.rule.to_string())
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

#[test]
fn every_lint_case_reports_exactly_its_rules() {
    let corpus: Corpus = serde_json::from_str(include_str!("corpus/template_lint.json")).unwrap();
    let config = LintConfig::embedded().unwrap();
    assert!(corpus.cases.len() >= 30);
    for case in &corpus.cases {
        let findings = lint(&patched(&case.patch), config);
        let mut want_errors = case.errors.clone();
        want_errors.sort();
        let mut want_warnings = case.warnings.clone();
        want_warnings.sort();
        assert_eq!(
            rules_of(&findings, Severity::Error),
            want_errors,
            "{}: {findings:#?}",
            case.name
        );
        assert_eq!(
            rules_of(&findings, Severity::Warning),
            want_warnings,
            "{}: {findings:#?}",
            case.name
        );
        for f in &findings {
            assert!(!f.message.is_empty(), "{}: empty message", case.name);
        }
    }
}

#[test]
fn every_seed_template_is_lint_clean_and_renders_within_budget() {
    let config = LintConfig::embedded().unwrap();
    let seeds = seed_library();
    for purpose in [
        "appointment_reminder",
        "intake_form",
        "referral_document",
        "results_ready",
        "billing",
        "help",
        "stop_confirmation",
        "opt_in_confirmation",
    ] {
        assert!(
            seeds.iter().any(|t| t.purpose == purpose),
            "no seed for {purpose}"
        );
    }
    for t in &seeds {
        let findings = lint(t, config);
        assert!(findings.is_empty(), "{}: {findings:#?}", t.id);
        let body = t.render(&t.sample_values()).unwrap();
        let rendered = lint_rendered(t, &body, config);
        assert!(rendered.is_empty(), "{}: {rendered:#?}", t.id);
    }
}

#[test]
fn a_rendered_value_that_adds_health_detail_is_caught_after_rendering() {
    let config = LintConfig::embedded().unwrap();
    let t = find_seed("appointment_reminder", 1).unwrap();
    let values = BTreeMap::from([
        ("program".to_owned(), "Oncology Center".to_owned()),
        ("date".to_owned(), "Mon Mar 2".to_owned()),
        ("time".to_owned(), "9:30 AM".to_owned()),
    ]);
    let body = t.render(&values).unwrap();
    let findings = lint_rendered(&t, &body, config);
    assert_eq!(
        rules_of(&findings, Severity::Error),
        vec!["template.rendered.prohibited_content".to_owned()]
    );
}

#[test]
fn a_value_outside_its_declared_charset_is_refused() {
    let t = find_seed("appointment_reminder", 1).unwrap();
    let values = BTreeMap::from([
        ("program".to_owned(), "Clínica 🌟".to_owned()),
        ("date".to_owned(), "Mon Mar 2".to_owned()),
        ("time".to_owned(), "9:30 AM".to_owned()),
    ]);
    assert!(t.render(&values).is_err());
}

#[test]
fn tiers_follow_class_purpose_and_data() {
    let config = LintConfig::embedded().unwrap();
    let tier = |id: &str| {
        let t = find_seed(id, 1).unwrap();
        risk_tier(&t, &lint(&t, config)).0
    };
    assert_eq!(tier("appointment_reminder"), RiskTier::Low);
    assert_eq!(tier("program_help"), RiskTier::Low);
    assert_eq!(tier("intake_form"), RiskTier::Medium);
    assert_eq!(tier("billing_reminder"), RiskTier::Medium);
    assert_eq!(tier("results_ready"), RiskTier::High);
    assert_eq!(tier("referral_follow_up"), RiskTier::High);
    assert_eq!(
        required_roles(RiskTier::High),
        &[Role::Compliance, Role::Legal, Role::Clinical]
    );
}

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, day, 12, 0, 0).unwrap()
}

fn actor(id: &str, roles: &[Role]) -> Actor {
    Actor {
        id: id.to_owned(),
        name: id.to_owned(),
        roles: roles.to_vec(),
    }
}

#[test]
fn a_high_risk_version_is_published_only_after_compliance_legal_and_clinical_approve() {
    let policy = ReviewPolicy::default();
    let config = LintConfig::embedded().unwrap();
    let mut t = find_seed("results_ready", 1).unwrap();
    t.author = "ann".to_owned();
    let findings = lint(&t, config);
    let author = actor("ann", &[Role::Compliance, Role::Operations]);
    let lc = apply(
        &t,
        &Lifecycle::draft(),
        &Action::Submit,
        &author,
        &findings,
        at(1),
        &policy,
    )
    .unwrap();
    assert_eq!(
        (lc.state, lc.tier),
        (VersionState::InReview, RiskTier::High)
    );

    // The author cannot approve, even holding the role.
    let err = apply(
        &t,
        &lc,
        &Action::Approve {
            role: Role::Compliance,
        },
        &author,
        &findings,
        at(1),
        &policy,
    )
    .unwrap_err();
    assert_eq!(err, ReviewError::AuthorApproves);
    // Operations is not asked for at this tier.
    let ops = actor("olu", &[Role::Operations]);
    assert!(matches!(
        apply(
            &t,
            &lc,
            &Action::Approve {
                role: Role::Operations
            },
            &ops,
            &findings,
            at(1),
            &policy
        ),
        Err(ReviewError::RoleNotRequired { .. })
    ));
    // Publishing early is refused.
    assert!(apply(&t, &lc, &Action::Publish, &ops, &findings, at(1), &policy).is_err());

    let lc = apply(
        &t,
        &lc,
        &Action::Approve {
            role: Role::Compliance,
        },
        &actor("cy", &[Role::Compliance]),
        &findings,
        at(2),
        &policy,
    )
    .unwrap();
    let lc = apply(
        &t,
        &lc,
        &Action::Approve { role: Role::Legal },
        &actor("lee", &[Role::Legal]),
        &findings,
        at(2),
        &policy,
    )
    .unwrap();
    assert_eq!(lc.state, VersionState::InReview);
    // One person fills one role of a quorum.
    let both = actor("lee", &[Role::Legal, Role::Clinical]);
    assert_eq!(
        apply(
            &t,
            &lc,
            &Action::Approve {
                role: Role::Clinical
            },
            &both,
            &findings,
            at(2),
            &policy
        ),
        Err(ReviewError::SameApprover("lee".to_owned()))
    );
    let lc = apply(
        &t,
        &lc,
        &Action::Approve {
            role: Role::Clinical,
        },
        &actor("kim", &[Role::Clinical]),
        &findings,
        at(3),
        &policy,
    )
    .unwrap();
    assert_eq!(lc.state, VersionState::Approved);
    let lc = apply(&t, &lc, &Action::Publish, &ops, &findings, at(3), &policy).unwrap();
    assert_eq!(lc.state, VersionState::Published);
    assert_eq!(sendable(&lc, at(4), &policy), Ok(()));
    assert_eq!(lc.history.len(), 5);
    assert_eq!(lc.revision, 5);
}

#[test]
fn approvals_expire_and_the_version_needs_re_review() {
    let policy = ReviewPolicy {
        approval_valid_days: 30,
    };
    let config = LintConfig::embedded().unwrap();
    let mut t = find_seed("appointment_reminder", 1).unwrap();
    t.author = "ann".to_owned();
    let findings = lint(&t, config);
    let ops = actor("olu", &[Role::Operations]);
    let lc = apply(
        &t,
        &Lifecycle::draft(),
        &Action::Submit,
        &actor("ann", &[]),
        &findings,
        at(1),
        &policy,
    )
    .unwrap();
    let lc = apply(
        &t,
        &lc,
        &Action::Approve {
            role: Role::Operations,
        },
        &ops,
        &findings,
        at(1),
        &policy,
    )
    .unwrap();
    assert_eq!(lc.state, VersionState::Approved);
    let later = at(1) + Duration::days(31);
    assert!(matches!(
        apply(&t, &lc, &Action::Publish, &ops, &findings, later, &policy),
        Err(ReviewError::QuorumMissing(_))
    ));
    let lc = apply(&t, &lc, &Action::Publish, &ops, &findings, at(2), &policy).unwrap();
    assert_eq!(sendable(&lc, at(3), &policy), Ok(()));
    let (rule, _) = sendable(&lc, later, &policy).unwrap_err();
    assert_eq!(rule, "template.approval_expired");
    // A fresh approval renews it.
    let renewed = apply(
        &t,
        &lc,
        &Action::Approve {
            role: Role::Operations,
        },
        &actor("ola", &[Role::Operations]),
        &findings,
        later,
        &policy,
    )
    .unwrap();
    assert_eq!(sendable(&renewed, later, &policy), Ok(()));
    // Retired is final.
    let retired = apply(
        &t,
        &renewed,
        &Action::Retire {
            reason: "wording replaced by v2".to_owned(),
        },
        &ops,
        &findings,
        later,
        &policy,
    )
    .unwrap();
    assert_eq!(
        sendable(&retired, later, &policy).unwrap_err().0,
        "template.retired"
    );
    assert!(apply(
        &t,
        &retired,
        &Action::Publish,
        &ops,
        &findings,
        later,
        &policy
    )
    .is_err());
}

#[test]
fn a_version_with_lint_errors_cannot_be_submitted() {
    let config = LintConfig::embedded().unwrap();
    let mut t = find_seed("appointment_reminder", 1).unwrap();
    t.body = "Your test results are ready {{program}}".to_owned();
    t.variables.truncate(1);
    let findings = lint(&t, config);
    let err = apply(
        &t,
        &Lifecycle::draft(),
        &Action::Submit,
        &actor("ann", &[]),
        &findings,
        at(1),
        &ReviewPolicy::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, ReviewError::LintErrors(ref rules) if rules.contains("template.prohibited_content"))
    );
}

const PEOPLE: [(&str, &[Role]); 6] = [
    (
        "author",
        &[
            Role::Operations,
            Role::Compliance,
            Role::Legal,
            Role::Clinical,
        ],
    ),
    ("olu", &[Role::Operations]),
    ("cy", &[Role::Compliance]),
    ("lee", &[Role::Legal, Role::Clinical]),
    ("kim", &[Role::Clinical]),
    ("max", &[Role::Operations, Role::Compliance, Role::Legal]),
];

fn action_of(kind: u8, role: u8) -> Action {
    let role = [
        Role::Operations,
        Role::Compliance,
        Role::Legal,
        Role::Clinical,
    ][usize::from(role % 4)];
    match kind % 5 {
        0 => Action::Submit,
        1 => Action::Approve { role },
        2 => Action::Reject {
            reason: "wording".to_owned(),
        },
        3 => Action::Publish,
        _ => Action::Retire {
            reason: "replaced".to_owned(),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the sequence of actions, actors and days, a version is
    /// published only with every role of its tier approved, by people other
    /// than the author, one person per role, within the validity period.
    #[test]
    fn no_path_to_published_without_the_tiers_quorum(
        seed in 0usize..11,
        steps in prop::collection::vec((any::<u8>(), any::<u8>(), 0usize..6, 0i64..60), 1..40),
    ) {
        let policy = ReviewPolicy { approval_valid_days: 30 };
        let config = LintConfig::embedded().unwrap();
        let mut t = seed_library().into_iter().nth(seed).unwrap();
        t.author = "author".to_owned();
        let findings = lint(&t, config);
        let mut lc = Lifecycle::draft();
        let mut now = at(1);
        for (kind, role, who, days) in steps {
            now += Duration::days(days % 20);
            let (id, roles) = PEOPLE[who];
            let before = lc.state;
            if let Ok(next) = apply(&t, &lc, &action_of(kind, role), &actor(id, roles), &findings, now, &policy) {
                lc = next;
            }
            prop_assert!(lc.approvals.iter().all(|a| a.actor != "author"));
            if lc.state == VersionState::Published && before != VersionState::Published {
                prop_assert!(missing_roles(&lc, now, &policy).is_empty());
                let mut approvers: Vec<&str> = lc.approvals.iter().map(|a| a.actor.as_str()).collect();
                approvers.sort_unstable();
                let before_dedup = approvers.len();
                approvers.dedup();
                prop_assert_eq!(before_dedup, approvers.len());
                prop_assert!(required_roles(lc.tier).iter().all(|r| lc.approvals.iter().any(|a| a.role == *r)));
                prop_assert_eq!(before, VersionState::Approved);
            }
            if lc.state == VersionState::Published {
                let ok = sendable(&lc, now, &policy).is_ok();
                prop_assert_eq!(ok, missing_roles(&lc, now, &policy).is_empty());
            }
        }
    }
}

#[test]
fn a_variable_longer_than_the_ceiling_is_refused_when_read_and_never_rendered() {
    use optline_policy::template::{Variable, MAX_VARIABLE_LEN};
    for n in [u64::MAX, 1_000_000_000, (MAX_VARIABLE_LEN as u64) + 1] {
        let json =
            format!(r#"{{"name":"date","kind":"date","max_len":{n},"data_class":"scheduling"}}"#);
        let err = serde_json::from_str::<Variable>(&json)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("max_len must be at most {MAX_VARIABLE_LEN}")),
            "{err}"
        );
    }
    let json = format!(
        r#"{{"name":"date","kind":"date","max_len":{MAX_VARIABLE_LEN},"data_class":"scheduling"}}"#
    );
    let v: Variable = serde_json::from_str(&json).unwrap();
    assert_eq!(v.max_len, MAX_VARIABLE_LEN);
}

mod template_text_properties {
    use std::collections::BTreeMap;

    use optline_policy::template::TemplateVersion;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any body text, with or without well-formed placeholders, and any
        /// values: rendering and worst-case segmenting answer without
        /// panicking, and a rendering never keeps a placeholder.
        #[test]
        fn any_body_and_values_render_or_refuse_without_panicking(
            body in "(.{0,20}(\\{\\{[a-z_]{0,8}\\}?\\}?)?){0,6}",
            value in ".{0,60}",
        ) {
            let mut version: TemplateVersion = optline_policy::template::seed_library()
                .into_iter()
                .find(|t| t.id == "appointment_reminder")
                .unwrap();
            version.body = body;
            let values: BTreeMap<String, String> = version
                .variables
                .iter()
                .map(|v| (v.name.clone(), value.clone()))
                .collect();
            if let Ok(text) = version.render(&values) {
                prop_assert!(!text.contains("{{"), "{text}");
            }
            let _ = version.worst_case();
            let config = optline_policy::template::lint::LintConfig::embedded().unwrap();
            let _ = optline_policy::template::lint::lint(&version, config);
        }
    }
}
