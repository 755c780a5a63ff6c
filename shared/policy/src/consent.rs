//! Consent evaluation: which consent, if any, covers a message right now.
//!
//! Sources (see `docs/rules.md`):
//! - compliance-rules §1: marketing needs prior express *written* consent;
//!   billing, collections and marketing are never healthcare-exempt.
//! - compliance-rules §2: consent events are append-only; a later revocation
//!   always wins over an earlier grant; never auto-opt-in on re-import.
//! - compliance-rules §3: START/UNSTOP/YES re-opt-in restores only what was
//!   revoked and is itself a recorded consent event.
//! - 47 CFR 64.1200(a)(10): a revocation by any reasonable means is honored.
//!
//! The ledger keeps events; this module folds them. The fold is per query
//! (program, category), so the rules stay simple enough to read:
//! 1. events are ordered by time; at the same instant a revocation sorts after
//!    a grant, so the revocation wins;
//! 2. an event is relevant when it names the program (or every program) and
//!    the category (or every category);
//! 3. a grant sets the state to "granted by this event"; a revocation clears
//!    it; a re-opt-in that reverses a revocation restores the state that held
//!    just before that revocation, and nothing more.

use std::collections::HashMap;
use std::sync::OnceLock;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use crate::{MessageClass, RuleOutcome, Verdict};

/// Version of the consent rules in this module.
pub const CONSENT_VERSION: &str = "2026-11-25";

/// Grant or revoke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentAction {
    /// Consent given.
    Grant,
    /// Consent withdrawn.
    Revoke,
}

/// Who an event speaks for: one contact, or every contact sharing a phone.
///
/// An opt-out sent from a handset is about the number, not the record: it
/// covers every contact sharing that number for that program.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConsentScope {
    /// This contact only.
    #[default]
    Contact,
    /// Every contact that shares the phone number.
    Phone,
}

/// The strength of a grant (compliance-rules §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConsentKind {
    /// Prior express consent (enough for transactional and informational).
    #[default]
    Express,
    /// Prior express written consent (needed for marketing).
    ExpressWritten,
}

/// The legal basis a send relies on (compliance-rules §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasis {
    /// HIPAA treatment communication to a number the patient gave.
    HipaaTreatment,
    /// The FCC 2015 healthcare exemption (47 CFR 64.1200, FCC 15-72 ¶146).
    FccHealthcareExempt,
    /// Prior express consent.
    PriorExpressConsent,
    /// Prior express written consent.
    PriorExpressWrittenConsent,
}

impl LegalBasis {
    /// The snake_case name used in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HipaaTreatment => "hipaa_treatment",
            Self::FccHealthcareExempt => "fcc_healthcare_exempt",
            Self::PriorExpressConsent => "prior_express_consent",
            Self::PriorExpressWrittenConsent => "prior_express_written_consent",
        }
    }
}

/// The part of a consent event the engine needs. The ledger stores more
/// (channel, actor, evidence, the disclosure text's hash); none of it changes
/// the decision, all of it is shown in the proof of consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentFact {
    /// The ledger's event id.
    pub id: String,
    /// Grant or revoke.
    pub action: ConsentAction,
    /// Contact or phone scope.
    #[serde(default)]
    pub scope: ConsentScope,
    /// Program (brand) the event is about; `None` means every program.
    #[serde(default)]
    pub program: Option<String>,
    /// Categories named; empty means every category of the program.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Strength of a grant.
    #[serde(default)]
    pub kind: ConsentKind,
    /// When the event took effect (UTC).
    pub at: DateTime<Utc>,
    /// For a re-opt-in: the revocation it reverses.
    #[serde(default)]
    pub reverses: Option<String>,
    /// A grant recorded from a parent or guardian (needed for minors).
    #[serde(default)]
    pub guardian: bool,
    /// A grant that lapses at this instant (inactive afterwards).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

impl ConsentFact {
    fn covers(&self, program: &str, category: &str) -> bool {
        let category_ok =
            self.categories.is_empty() || self.categories.iter().any(|c| c == category);
        self.covers_program(program) && category_ok
    }

    fn covers_program(&self, program: &str) -> bool {
        self.program.as_deref().is_none_or(|p| p == program)
    }

    /// Whether the event counts for (program, category) at `now`: a
    /// revocation covers every category of its program once the revoke-all
    /// rule is in force.
    fn counts_for(&self, program: &str, category: &str, now: DateTime<Utc>) -> bool {
        self.covers(program, category)
            || (self.action == ConsentAction::Revoke
                && self.covers_program(program)
                && revoke_all_in_force(now))
    }
}

/// Rule id of the revoke-all switch in `data/consent_rules.json`.
pub const REVOKE_ALL_RULE_ID: &str = "consent.revoke_all";

static CONSENT_RULES_JSON: &str = include_str!("../data/consent_rules.json");

/// A dated switch of the consent rules (`data/consent_rules.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentSwitch {
    /// Stable id, e.g. `consent.revoke_all`.
    pub id: String,
    /// In force from this date (UTC).
    pub effective_from: NaiveDate,
    /// What changes when it is in force.
    pub summary: String,
    /// The citation.
    pub source: String,
    /// `primary` or `secondary source`.
    pub source_quality: String,
}

#[derive(Debug, Deserialize)]
struct ConsentRulesTable {
    table: String,
    version: String,
    rules: Vec<ConsentSwitch>,
}

/// The consent rules' dated switches and the table's version, or `None`
/// when the embedded table does not parse (then every switch is in force:
/// fail closed).
pub fn consent_switches() -> Option<(&'static str, &'static [ConsentSwitch])> {
    static TABLE: OnceLock<Option<ConsentRulesTable>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            serde_json::from_str::<ConsentRulesTable>(CONSENT_RULES_JSON)
                .ok()
                .filter(|t| t.table == "consent_rules")
        })
        .as_ref()
        .map(|t| (t.version.as_str(), t.rules.as_slice()))
}

/// The consent switches as [`crate::CatalogRow`]s, for `optline rules`;
/// empty when the table does not parse.
pub fn catalog() -> Vec<crate::CatalogRow> {
    let Some((version, rules)) = consent_switches() else {
        return Vec::new();
    };
    rules
        .iter()
        .map(|r| crate::CatalogRow {
            table: "consent_rules",
            version: version.to_owned(),
            id: r.id.clone(),
            jurisdiction: "United States".to_owned(),
            states: Vec::new(),
            classes: None,
            summary: r.summary.clone(),
            effective_from: r.effective_from,
            effective_from_basis: "order".to_owned(),
            effective_until: None,
            source: r.source.clone(),
            source_quality: r.source_quality.clone(),
            note: None,
        })
        .collect()
}

/// Whether the revoke-all rule of 47 CFR 64.1200(a)(10) is in force at
/// `now` (from 2027-01-31 by the table; always when the table is broken or
/// lacks the row).
pub fn revoke_all_in_force(now: DateTime<Utc>) -> bool {
    consent_switches()
        .and_then(|(_, rules)| rules.iter().find(|r| r.id == REVOKE_ALL_RULE_ID))
        .is_none_or(|r| now.date_naive() >= r.effective_from)
}

/// What a contact is covered by for one (program, category) right now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsentStanding {
    /// A live grant covers it.
    Granted {
        /// The grant's event id.
        event_id: String,
        /// Its strength.
        kind: ConsentKind,
        /// Recorded from a guardian.
        guardian: bool,
    },
    /// The latest relevant event is a revocation.
    Revoked {
        /// The revocation's event id.
        event_id: String,
    },
    /// A grant existed but has expired.
    Lapsed {
        /// The grant's event id.
        event_id: String,
    },
    /// No relevant event at all.
    None,
}

/// Folds the events for one (program, category) as of `now`.
///
/// Grants dated after `now` are ignored (a future-dated grant never counts).
/// A revocation dated after `now` still counts: it can only come from the
/// clock of the function that recorded it running ahead of the one deciding,
/// and a revocation must never be missed for that (fail closed).
pub fn standing(
    events: &[ConsentFact],
    program: &str,
    category: &str,
    now: DateTime<Utc>,
) -> ConsentStanding {
    // Inline for the usual handful of events: this runs on every decision.
    let mut ordered: SmallVec<[&ConsentFact; 16]> = events
        .iter()
        .filter(|e| {
            (e.at <= now || e.action == ConsentAction::Revoke)
                && e.counts_for(program, category, now)
        })
        .collect();
    // Same instant: grants first, so the revocation is applied last and wins.
    ordered.sort_by(|a, b| {
        a.at.cmp(&b.at).then_with(|| {
            let rank = |e: &ConsentFact| match (e.action, e.reverses.is_some()) {
                (ConsentAction::Grant, false) => 0,
                (ConsentAction::Grant, true) => 1,
                (ConsentAction::Revoke, _) => 2,
            };
            rank(a).cmp(&rank(b))
        })
    });

    let mut state = ConsentStanding::None;
    let mut before_revocation: HashMap<&str, ConsentStanding> = HashMap::new();
    for event in ordered {
        match event.action {
            ConsentAction::Revoke => {
                before_revocation.insert(event.id.as_str(), state.clone());
                state = ConsentStanding::Revoked {
                    event_id: event.id.clone(),
                };
            }
            ConsentAction::Grant => match &event.reverses {
                Some(revocation) => {
                    // Re-opt-in restores only what that revocation took away,
                    // and only while that revocation is still the one in force.
                    let in_force = matches!(&state, ConsentStanding::Revoked { event_id } if event_id == revocation);
                    if in_force {
                        if let Some(prior) = before_revocation.get(revocation.as_str()) {
                            state = prior.clone();
                        }
                    }
                }
                None => {
                    state = ConsentStanding::Granted {
                        event_id: event.id.clone(),
                        kind: event.kind,
                        guardian: event.guardian,
                    };
                }
            },
        }
    }
    // A restored grant may have lapsed meanwhile: check expiry last.
    if let ConsentStanding::Granted { event_id, .. } = &state {
        let lapsed = events
            .iter()
            .find(|e| &e.id == event_id)
            .and_then(|e| e.expires_at)
            .is_some_and(|exp| exp <= now);
        if lapsed {
            state = ConsentStanding::Lapsed {
                event_id: event_id.clone(),
            };
        }
    }
    state
}

/// What the consent rules need to know about the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentQuery<'a> {
    /// Program (brand).
    pub program: &'a str,
    /// Category, e.g. `appointments`.
    pub category: &'a str,
    /// Message class.
    pub class: MessageClass,
    /// The message relies on the FCC healthcare exemption.
    pub healthcare_exempt: bool,
    /// The purpose is treatment (a HIPAA treatment communication).
    pub treatment: bool,
    /// The purpose is billing or collections (never exempt).
    pub billing: bool,
    /// The number was given by the patient (needed for the exemption).
    pub phone_given_by_patient: bool,
    /// The recipient is a minor.
    pub minor: bool,
}

/// The consent part of a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentVerdict {
    /// The basis the send may rely on; `None` means no basis: suppress.
    pub basis: Option<LegalBasis>,
    /// The consent event relied on, when there is one.
    pub event_id: Option<String>,
    /// Rules consulted.
    pub outcomes: Vec<RuleOutcome>,
}

/// Decides whether consent (or a lawful exemption) covers the message.
pub fn check(
    query: &ConsentQuery<'_>,
    events: &[ConsentFact],
    now: DateTime<Utc>,
) -> ConsentVerdict {
    check_with(query, events, now, Vec::with_capacity(3))
}

/// [`check`], appending its outcomes to `outcomes` (returned in the
/// verdict), so that a caller collecting every rule's outcome allocates
/// one list, not one per rule family.
pub fn check_with(
    query: &ConsentQuery<'_>,
    events: &[ConsentFact],
    now: DateTime<Utc>,
    mut outcomes: Vec<RuleOutcome>,
) -> ConsentVerdict {
    let standing = standing(events, query.program, query.category, now);

    // A revocation beats every basis, the exemption included.
    if let ConsentStanding::Revoked { event_id } = &standing {
        outcomes.push(RuleOutcome::new(
            "consent.revocation",
            CONSENT_VERSION,
            Verdict::Fail,
            {
                let by_revoke_all = events
                    .iter()
                    .find(|e| &e.id == event_id)
                    .is_some_and(|e| !e.covers(query.program, query.category));
                if by_revoke_all {
                    format!(
                        "revoked by consent event {event_id} for program {} category {} (the revoke-all rule of 47 CFR 64.1200(a)(10) extends it to every category)",
                        query.program, query.category
                    )
                } else {
                    format!(
                        "revoked by consent event {event_id} for program {} category {}",
                        query.program, query.category
                    )
                }
            },
        ));
        return ConsentVerdict {
            basis: None,
            event_id: Some(event_id.clone()),
            outcomes,
        };
    }
    outcomes.push(RuleOutcome::new(
        "consent.revocation",
        CONSENT_VERSION,
        Verdict::Pass,
        "no revocation in force",
    ));

    let (grant, lapsed) = match standing {
        ConsentStanding::Granted {
            event_id,
            kind,
            guardian,
        } => (Some((event_id, kind, guardian)), None),
        ConsentStanding::Lapsed { event_id } => (None, Some(event_id)),
        ConsentStanding::Revoked { .. } | ConsentStanding::None => (None, None),
    };

    if query.minor && !grant.as_ref().is_some_and(|(_, _, guardian)| *guardian) {
        outcomes.push(RuleOutcome::new(
            "consent.minor",
            CONSENT_VERSION,
            Verdict::Fail,
            "recipient is a minor and no guardian consent is recorded",
        ));
        return ConsentVerdict {
            basis: None,
            event_id: grant.map(|g| g.0),
            outcomes,
        };
    }

    let exempt_allowed = query.healthcare_exempt
        && !query.billing
        && query.class != MessageClass::Marketing
        && query.phone_given_by_patient;

    let (basis, event_id, verdict, detail): (_, _, _, std::borrow::Cow<'static, str>) =
        match (query.class, grant) {
        (MessageClass::Marketing, Some((id, ConsentKind::ExpressWritten, _))) => (
            Some(LegalBasis::PriorExpressWrittenConsent),
            Some(id),
            Verdict::Pass,
            "marketing covered by prior express written consent".into(),
        ),
        (MessageClass::Marketing, Some((id, ConsentKind::Express, _))) => (
            None,
            Some(id),
            Verdict::Fail,
            "marketing needs prior express written consent; only express consent is recorded"
                .into(),
        ),
        (_, Some((id, kind, _))) => (
            Some(match kind {
                ConsentKind::Express => LegalBasis::PriorExpressConsent,
                ConsentKind::ExpressWritten => LegalBasis::PriorExpressWrittenConsent,
            }),
            Some(id),
            Verdict::Pass,
            match query.class {
                MessageClass::Transactional => "transactional message covered by a recorded grant",
                MessageClass::Informational => "informational message covered by a recorded grant",
                MessageClass::Marketing => "marketing message covered by a recorded grant",
            }
            .into(),
        ),
        (_, None) if exempt_allowed => (
            Some(LegalBasis::FccHealthcareExempt),
            None,
            Verdict::Pass,
            "no grant recorded; relies on the FCC healthcare exemption for a number the patient gave"
                .into(),
        ),
        // A lapsed grant is not "no grant": the person's consent ran out, and
        // treatment is no back door around it.
        (MessageClass::Transactional, None)
            if query.treatment
                && query.phone_given_by_patient
                && !query.billing
                && lapsed.is_none() =>
        (
            Some(LegalBasis::HipaaTreatment),
            None,
            Verdict::Pass,
            "no grant recorded; treatment communication to a number the patient gave".into(),
        ),
        (_, None) => (
            None,
            None,
            Verdict::Fail,
            match lapsed {
                Some(event_id) => format!("consent event {event_id} has lapsed").into(),
                None => "no consent recorded for this program and category".into(),
            },
        ),
    };
    outcomes.push(RuleOutcome::new(
        "consent.legal_basis",
        CONSENT_VERSION,
        verdict,
        detail,
    ));
    if query.healthcare_exempt && !exempt_allowed {
        outcomes.push(RuleOutcome::new(
            "consent.healthcare_exempt_scope",
            CONSENT_VERSION,
            Verdict::NotApplicable,
            "billing, collections and marketing are never healthcare-exempt; the exemption also needs a number the patient gave",
        ));
    }
    ConsentVerdict {
        basis,
        event_id,
        outcomes,
    }
}

/// Business days allowed to honour a revocation received by means other than
/// a reply (FCC 24-24, 47 CFR 64.1200(a)(10); compliance-rules §5).
pub const REVOCATION_BUSINESS_DAYS: u32 = 10;

/// The deadline for honouring a revocation received at `received`: the end
/// (23:59:59 UTC) of the tenth business day after the day it was received,
/// where business days are Monday to Friday except US federal holidays
/// (observed dates). Counting starts the day after receipt.
pub fn revocation_deadline(received: DateTime<Utc>) -> DateTime<Utc> {
    let mut day = received.date_naive();
    let mut counted = 0;
    while counted < REVOCATION_BUSINESS_DAYS {
        let Some(next) = day.succ_opt() else { break };
        day = next;
        let weekend = matches!(
            chrono::Datelike::weekday(&day),
            chrono::Weekday::Sat | chrono::Weekday::Sun
        );
        if !weekend && crate::quiet_hours::federal_holiday_on(day).is_none() {
            counted += 1;
        }
    }
    day.and_hms_opt(23, 59, 59)
        .map_or(received, |end| end.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, h, 0, 0).unwrap()
    }

    fn fact(id: &str, action: ConsentAction, h: u32, cats: &[&str]) -> ConsentFact {
        ConsentFact {
            id: id.into(),
            action,
            scope: ConsentScope::Contact,
            program: Some("clinic".into()),
            categories: cats.iter().map(|c| (*c).to_owned()).collect(),
            kind: ConsentKind::Express,
            at: at(h),
            reverses: None,
            guardian: false,
            expires_at: None,
        }
    }

    #[test]
    fn a_revocation_at_the_same_instant_as_a_grant_wins() {
        let events = vec![
            fact("r", ConsentAction::Revoke, 5, &[]),
            fact("g", ConsentAction::Grant, 5, &["appointments"]),
        ];
        let s = standing(&events, "clinic", "appointments", at(6));
        assert_eq!(
            s,
            ConsentStanding::Revoked {
                event_id: "r".into()
            }
        );
    }

    #[test]
    fn re_opt_in_restores_only_what_was_revoked() {
        let mut start = fact("s", ConsentAction::Grant, 7, &[]);
        start.reverses = Some("r".into());
        let events = vec![
            fact("g", ConsentAction::Grant, 5, &["appointments"]),
            fact("r", ConsentAction::Revoke, 6, &[]),
            start,
        ];
        assert!(matches!(
            standing(&events, "clinic", "appointments", at(8)),
            ConsentStanding::Granted { .. }
        ));
        assert_eq!(
            standing(&events, "clinic", "marketing", at(8)),
            ConsentStanding::None
        );
    }

    #[test]
    fn a_later_grant_after_a_revocation_is_honored_but_an_earlier_one_is_not() {
        let events = vec![
            fact("g1", ConsentAction::Grant, 5, &[]),
            fact("r", ConsentAction::Revoke, 6, &[]),
        ];
        assert!(matches!(
            standing(&events, "clinic", "x", at(7)),
            ConsentStanding::Revoked { .. }
        ));
        let mut later = events.clone();
        later.push(fact("g2", ConsentAction::Grant, 8, &[]));
        assert!(matches!(
            standing(&later, "clinic", "x", at(9)),
            ConsentStanding::Granted { .. }
        ));
    }

    #[test]
    fn the_revocation_deadline_skips_weekends_and_federal_holidays() {
        // Received Wed 2026-11-18: Thanksgiving (Thu 11-26) is skipped, so
        // ten business days end on Thu 2026-12-03.
        let received = Utc.with_ymd_and_hms(2026, 11, 18, 15, 0, 0).unwrap();
        assert_eq!(
            revocation_deadline(received),
            Utc.with_ymd_and_hms(2026, 12, 3, 23, 59, 59).unwrap()
        );
    }

    #[test]
    fn marketing_needs_written_consent() {
        let events = vec![fact("g", ConsentAction::Grant, 5, &[])];
        let q = ConsentQuery {
            program: "clinic",
            category: "offers",
            class: MessageClass::Marketing,
            healthcare_exempt: false,
            treatment: false,
            billing: false,
            phone_given_by_patient: true,
            minor: false,
        };
        assert_eq!(check(&q, &events, at(6)).basis, None);
    }
}
