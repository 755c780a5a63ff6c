//! Specifications for `optline_policy::consent`: the fold of the consent
//! ledger (`standing`) and the legal basis it gives a message (`check`).
//! Cases live in `corpus/consent.json`; properties check that the fold does
//! not depend on the order events were recorded in, that the latest
//! revocation wins, and that a re-opt-in restores exactly what was revoked.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly on broken fixtures"
)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use optline_policy::consent::{
    check, standing, ConsentAction, ConsentFact, ConsentKind, ConsentQuery, ConsentScope,
    ConsentStanding, LegalBasis, CONSENT_VERSION,
};
use optline_policy::{MessageClass, Verdict};
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
    program: String,
    category: String,
    events: Vec<ConsentFact>,
    standing: ConsentStanding,
    #[serde(default)]
    check: Option<CheckCase>,
}

#[derive(Debug, Deserialize)]
struct CheckCase {
    query: Query,
    basis: Option<LegalBasis>,
    event_id: Option<String>,
    outcomes: Vec<ExpectedOutcome>,
    #[serde(default)]
    detail_contains: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Query {
    class: MessageClass,
    healthcare_exempt: bool,
    treatment: bool,
    billing: bool,
    phone_given_by_patient: bool,
    minor: bool,
}

#[derive(Debug, Deserialize)]
struct ExpectedOutcome {
    id: String,
    verdict: Verdict,
}

fn corpus() -> Corpus {
    serde_json::from_str(include_str!("corpus/consent.json")).expect("consent corpus parses")
}

#[test]
fn every_corpus_case_folds_to_its_standing_and_basis() {
    let corpus = corpus();
    assert!(corpus.cases.len() >= 15, "at least 15 cases");
    assert!(
        corpus.cases.iter().filter(|c| c.check.is_some()).count() >= 10,
        "at least 10 cases of check()"
    );
    let mut failures = Vec::new();
    for case in &corpus.cases {
        let got = standing(&case.events, &case.program, &case.category, case.now);
        if got != case.standing {
            failures.push(format!(
                "{}: standing {got:?} (want {:?})",
                case.name, case.standing
            ));
        }
        let Some(want) = &case.check else { continue };
        let query = ConsentQuery {
            program: &case.program,
            category: &case.category,
            class: want.query.class,
            healthcare_exempt: want.query.healthcare_exempt,
            treatment: want.query.treatment,
            billing: want.query.billing,
            phone_given_by_patient: want.query.phone_given_by_patient,
            minor: want.query.minor,
        };
        let verdict = check(&query, &case.events, case.now);
        if verdict.basis != want.basis {
            failures.push(format!(
                "{}: basis {:?} (want {:?})",
                case.name, verdict.basis, want.basis
            ));
        }
        if verdict.event_id != want.event_id {
            failures.push(format!(
                "{}: event {:?} (want {:?})",
                case.name, verdict.event_id, want.event_id
            ));
        }
        let got_pairs: Vec<(&str, Verdict)> = verdict
            .outcomes
            .iter()
            .map(|o| (o.id.as_ref(), o.verdict))
            .collect();
        let want_pairs: Vec<(&str, Verdict)> = want
            .outcomes
            .iter()
            .map(|o| (o.id.as_ref(), o.verdict))
            .collect();
        if got_pairs != want_pairs {
            failures.push(format!(
                "{}: outcomes {got_pairs:?} (want {want_pairs:?})",
                case.name
            ));
        }
        if let Some(needle) = &want.detail_contains {
            if !verdict.outcomes.iter().any(|o| o.detail.contains(needle)) {
                failures.push(format!("{}: no detail contains {needle:?}", case.name));
            }
        }
        for o in &verdict.outcomes {
            assert_eq!(o.version, CONSENT_VERSION, "{}", case.name);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_corpus_exercises_every_standing() {
    let corpus = corpus();
    let has = |f: fn(&ConsentStanding) -> bool| corpus.cases.iter().any(|c| f(&c.standing));
    assert!(has(|s| matches!(s, ConsentStanding::Granted { .. })));
    assert!(has(|s| matches!(s, ConsentStanding::Revoked { .. })));
    assert!(has(|s| matches!(s, ConsentStanding::Lapsed { .. })));
    assert!(has(|s| matches!(s, ConsentStanding::None)));
}

// ---------------------------------------------------------------------------
// Properties

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 10, 18, 0, 0).unwrap()
}

/// Events from a small vocabulary (so that they often cover the query and
/// tie in time), with ids unique within one list when `unique` is set.
fn events_strategy(max: usize) -> impl Strategy<Value = Vec<ConsentFact>> {
    prop::collection::vec(
        (
            any::<bool>(),
            prop::sample::select(vec![None, Some("clinic"), Some("pharmacy")]),
            prop::sample::select(vec![vec![], vec!["appointments"], vec!["offers"]]),
            any::<bool>(),
            -300i64..300,
            prop::option::of(0usize..8),
            any::<bool>(),
            prop::option::of(-300i64..300),
        ),
        0..max,
    )
    .prop_map(|raw| {
        raw.into_iter()
            .enumerate()
            .map(
                |(i, (grant, program, cats, written, at, reverses, guardian, exp))| ConsentFact {
                    id: format!("{}{i}", if grant { "g" } else { "r" }),
                    action: if grant {
                        ConsentAction::Grant
                    } else {
                        ConsentAction::Revoke
                    },
                    scope: ConsentScope::Contact,
                    program: program.map(str::to_owned),
                    categories: cats.into_iter().map(str::to_owned).collect(),
                    kind: if written {
                        ConsentKind::ExpressWritten
                    } else {
                        ConsentKind::Express
                    },
                    at: now() + Duration::hours(at),
                    reverses: if grant {
                        reverses.map(|r| format!("r{r}"))
                    } else {
                        None
                    },
                    guardian,
                    expires_at: exp.map(|h| now() + Duration::hours(h)),
                },
            )
            .collect()
    })
}

fn covers(e: &ConsentFact, category: &str) -> bool {
    e.program.as_deref().is_none_or(|p| p == "clinic")
        && (e.categories.is_empty() || e.categories.iter().any(|c| c == category))
}

fn query(class: MessageClass, exempt: bool, billing: bool, minor: bool) -> ConsentQuery<'static> {
    ConsentQuery {
        program: "clinic",
        category: "appointments",
        class,
        healthcare_exempt: exempt,
        treatment: !billing && class == MessageClass::Transactional,
        billing,
        phone_given_by_patient: true,
        minor,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_standing_does_not_depend_on_the_order_events_were_recorded_in(
        events in events_strategy(8),
        seed in any::<u64>(),
        category in prop::sample::select(vec!["appointments", "offers"]),
    ) {
        // A deterministic shuffle, except among revocations at one instant
        // (their order is the ledger's, and only the id reported differs).
        let mut shuffled = events.clone();
        let mut s = seed;
        for i in (1..shuffled.len()).rev() {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let j = usize::try_from(s >> 33).unwrap() % (i + 1);
            shuffled.swap(i, j);
        }
        let same_instant_ties = events.iter().enumerate().any(|(i, a)| {
            events.iter().skip(i + 1).any(|b| a.at == b.at && a.action == b.action)
        });
        prop_assume!(!same_instant_ties);
        prop_assert_eq!(
            standing(&events, "clinic", category, now()),
            standing(&shuffled, "clinic", category, now())
        );
    }

    #[test]
    fn a_covering_revocation_at_least_as_late_as_every_grant_is_in_force(
        events in events_strategy(8),
        category in prop::sample::select(vec!["appointments", "offers"]),
    ) {
        let latest_grant = events
            .iter()
            .filter(|e| e.action == ConsentAction::Grant && covers(e, category))
            .map(|e| e.at)
            .max();
        let revoked = events.iter().any(|e| {
            e.action == ConsentAction::Revoke
                && covers(e, category)
                && latest_grant.is_none_or(|g| g <= e.at)
        });
        let got = standing(&events, "clinic", category, now());
        if revoked {
            prop_assert!(matches!(got, ConsentStanding::Revoked { .. }), "{:?}", got);
        }
    }

    #[test]
    fn a_re_opt_in_right_after_a_revocation_restores_exactly_what_held_before_it(
        events in events_strategy(6),
        category in prop::sample::select(vec!["appointments", "offers"]),
        revocation_at in -200i64..-100,
        program in prop::sample::select(vec![None, Some("clinic")]),
    ) {
        // Everything else strictly before the revocation, which is strictly
        // before the re-opt-in, all in the past.
        let mut before: Vec<ConsentFact> = events
            .into_iter()
            .filter(|e| e.at < now() + Duration::hours(revocation_at))
            .collect();
        let revocation = ConsentFact {
            id: "r-stop".to_owned(),
            action: ConsentAction::Revoke,
            scope: ConsentScope::Phone,
            program: program.map(str::to_owned),
            categories: Vec::new(),
            kind: ConsentKind::Express,
            at: now() + Duration::hours(revocation_at),
            reverses: None,
            guardian: false,
            expires_at: None,
        };
        let start = ConsentFact {
            id: "s-start".to_owned(),
            action: ConsentAction::Grant,
            reverses: Some("r-stop".to_owned()),
            at: now() - Duration::hours(1),
            ..revocation.clone()
        };
        let held = standing(&before, "clinic", category, now());
        before.push(revocation);
        let revoked = standing(&before, "clinic", category, now());
        prop_assert!(matches!(revoked, ConsentStanding::Revoked { .. }), "{:?}", revoked);
        before.push(start);
        prop_assert_eq!(standing(&before, "clinic", category, now()), held);
    }

    #[test]
    fn no_basis_while_revoked_and_only_written_consent_for_marketing(
        events in events_strategy(8),
        class in prop::sample::select(vec![
            MessageClass::Transactional,
            MessageClass::Informational,
            MessageClass::Marketing,
        ]),
        exempt in any::<bool>(),
        billing in any::<bool>(),
        minor in any::<bool>(),
    ) {
        let q = query(class, exempt, billing, minor);
        let verdict = check(&q, &events, now());
        let s = standing(&events, "clinic", "appointments", now());
        if matches!(s, ConsentStanding::Revoked { .. }) {
            prop_assert_eq!(verdict.basis, None);
        }
        if class == MessageClass::Marketing {
            let written = matches!(
                verdict.basis,
                None | Some(LegalBasis::PriorExpressWrittenConsent)
            );
            prop_assert!(written, "{:?}", verdict.basis);
        }
        if billing || class == MessageClass::Marketing {
            let exempt_basis = matches!(
                verdict.basis,
                Some(LegalBasis::FccHealthcareExempt | LegalBasis::HipaaTreatment)
            );
            prop_assert!(!exempt_basis, "{:?}", verdict.basis);
        }
        if minor {
            let guardian = matches!(s, ConsentStanding::Granted { guardian: true, .. });
            prop_assert!(guardian || verdict.basis.is_none());
        }
        // Exactly one failing outcome when there is no basis, none otherwise.
        let failing = verdict.outcomes.iter().filter(|o| o.verdict == Verdict::Fail).count();
        prop_assert_eq!(failing, usize::from(verdict.basis.is_none()));
    }
}

// ---------------------------------------------------------------------------
// The revoke-all switch (47 CFR 64.1200(a)(10), from 2027-01-31)

#[test]
fn a_revocation_of_one_category_covers_every_category_of_its_program_from_the_revoke_all_date() {
    use optline_policy::consent::{consent_switches, revoke_all_in_force, REVOKE_ALL_RULE_ID};
    let (_, switches) = consent_switches().expect("the consent rules table parses");
    let switch = switches
        .iter()
        .find(|s| s.id == REVOKE_ALL_RULE_ID)
        .expect("the revoke-all row");
    assert_eq!(switch.effective_from.to_string(), "2027-01-31");
    assert!(switch.source.contains("DA 26-12"));

    let at = |y, m, d| Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap();
    let grant = ConsentFact {
        id: "g-all".to_owned(),
        action: ConsentAction::Grant,
        scope: ConsentScope::Contact,
        program: Some("clinic".to_owned()),
        categories: vec![],
        kind: ConsentKind::ExpressWritten,
        at: at(2026, 1, 5),
        reverses: None,
        guardian: false,
        expires_at: None,
    };
    let billing_only = ConsentFact {
        id: "r-billing".to_owned(),
        action: ConsentAction::Revoke,
        categories: vec!["billing".to_owned()],
        at: at(2026, 12, 1),
        ..grant.clone()
    };
    let other_program = ConsentFact {
        id: "r-pharmacy".to_owned(),
        program: Some("pharmacy".to_owned()),
        ..billing_only.clone()
    };
    let events = vec![grant, billing_only, other_program];

    // The day before: the billing revocation covers billing only.
    let before = at(2027, 1, 30);
    assert!(!revoke_all_in_force(before));
    assert!(matches!(
        standing(&events, "clinic", "appointments", before),
        ConsentStanding::Granted { .. }
    ));
    assert!(matches!(
        standing(&events, "clinic", "billing", before),
        ConsentStanding::Revoked { .. }
    ));

    // From 2027-01-31 it covers appointments too, and says why; another
    // program's revocation still does not reach this program.
    let after = at(2027, 1, 31);
    assert!(revoke_all_in_force(after));
    assert_eq!(
        standing(&events, "clinic", "appointments", after),
        ConsentStanding::Revoked {
            event_id: "r-billing".to_owned()
        }
    );
    let verdict = check(
        &query(MessageClass::Transactional, false, false, false),
        &events,
        after,
    );
    assert!(verdict.basis.is_none());
    let revocation = verdict
        .outcomes
        .iter()
        .find(|o| o.id == "consent.revocation")
        .unwrap();
    assert!(revocation.detail.contains("revoke-all"), "{revocation:?}");
}
