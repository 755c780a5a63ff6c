//! # Audience (segment) rules
//!
//! What the sweep applies to every due step before it is queued: is this
//! person in the program's audience for this message at all? These rules do
//! not depend on the hour (quiet hours and caps are for the send itself, in
//! [`crate::decision::evaluate`]); a step that fails one is ended as
//! suppressed, with its rules, and never reaches the queue.
//!
//! | rule | fails when |
//! |---|---|
//! | `segment.purpose` | the program does not send this purpose (its `purposes` list) |
//! | `segment.consent_scope` | no consent or lawful basis covers the program, category and class now |
//! | `segment.responders` | a follow-up for non-responders, and the person already answered the episode |
//! | `segment.band` | the moment has passed (expiry), or a time-sensitive step is later than its band's grace |
//! | `segment.minor` | the recipient is a minor and the program does not text minors |
//! | `segment.region` | the recipient is outside the program's regions, or their region is unknown |
//!
//! Sources: consent scope is 47 CFR 64.1200 and the consent rules of
//! [`crate::consent`]; purpose and region restrictions are the program's own
//! configuration (for example a 10DLC campaign registered for one use case,
//! or a practice licensed in some states); the band follows the product
//! rule that a text is never sent after its moment has passed.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::consent::{self, ConsentFact};
use crate::decision::{consent_query, SendRequest, Urgency};
use crate::phone::area_code_state;
use crate::{RuleOutcome, Verdict};

/// Version of the audience rules.
pub const AUDIENCE_VERSION: &str = "2026-11-25";

/// A program's audience, from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AudienceRules {
    /// Purposes the program sends (e.g. `appointment_reminder`); empty: any.
    pub purposes: Vec<String>,
    /// Where the program's recipients may be: ISO 3166-1 countries (`US`,
    /// `CA`) or US states and territories as ISO 3166-2 (`US-FL`, `US-PR`);
    /// empty: anywhere.
    pub regions: Vec<String>,
    /// Whether the program texts minors at all (always with a guardian's
    /// consent, which the consent rules require).
    pub minors: bool,
    /// How late after its due time a time-sensitive step may still be
    /// queued, in minutes. Routine steps may go until they expire.
    pub time_sensitive_grace_minutes: u32,
}

impl Default for AudienceRules {
    fn default() -> Self {
        Self {
            purposes: Vec::new(),
            regions: Vec::new(),
            minors: true,
            time_sensitive_grace_minutes: 120,
        }
    }
}

/// One due step as the audience rules see it.
#[derive(Debug, Clone)]
pub struct Candidate<'a> {
    /// The message (program, category, class, purpose, recipient, expiry,
    /// urgency).
    pub request: &'a SendRequest,
    /// When the step became due.
    pub due_at: DateTime<Utc>,
    /// Only for people who have not answered the episode.
    pub non_responders_only: bool,
    /// The answer already recorded for the episode (`confirmed`,
    /// `reschedule_requested`…), if any.
    pub answered: Option<&'a str>,
    /// Where the rules run.
    pub stage: Stage<'a>,
}

/// Where the audience rules run, which decides the rules applied.
#[derive(Debug, Clone, Copy)]
pub enum Stage<'a> {
    /// In the sweep, before a step is queued: every rule, with the consent
    /// events of the contact and its number.
    Sweep {
        /// The contact's and its number's consent events.
        consent: &'a [ConsentFact],
    },
    /// In dispatch, right before the send: purpose, responders, minors and
    /// region again with the latest data. Consent, expiry and lateness are
    /// the send decision's own rules there (`consent.*`, `decision.expiry`,
    /// `decision.urgency`).
    Send,
}

/// Whether a step is in its audience, with every rule consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Every rule passed.
    pub included: bool,
    /// The ids of the rules that failed.
    pub reasons: Vec<String>,
    /// Every rule consulted.
    pub rules: Vec<RuleOutcome>,
}

fn rule(id: &'static str, verdict: Verdict, detail: impl Into<String>) -> RuleOutcome {
    RuleOutcome::new(id, AUDIENCE_VERSION, verdict, detail.into())
}

/// The recipient's region as ISO 3166: `US-XX` from the address state or
/// the area code, else the number's country; `None` when unknown.
pub fn recipient_region(request: &SendRequest) -> Option<String> {
    let recipient = &request.recipient;
    if let Some(state) = &recipient.address_state {
        return Some(format!("US-{}", state.code()));
    }
    if let Some(state) = area_code_state(&recipient.phone) {
        return Some(format!("US-{}", state.code()));
    }
    recipient.phone.region()
}

/// Whether `region` (`US-FL`, `CA`) is within `allowed` (`US`, `US-FL`, `CA`).
fn region_allowed(allowed: &[String], region: &str) -> bool {
    let country = region.split('-').next().unwrap_or(region);
    allowed.iter().any(|a| {
        let a = a.trim();
        a.eq_ignore_ascii_case(region) || a.eq_ignore_ascii_case(country)
    })
}

/// The urgency band: never after the moment has passed, and a
/// time-sensitive step no later than its grace.
fn band(
    rules: &AudienceRules,
    candidate: &Candidate<'_>,
    now: DateTime<Utc>,
    outcomes: &mut Vec<RuleOutcome>,
) {
    let request = candidate.request;
    let grace = Duration::minutes(i64::from(rules.time_sensitive_grace_minutes));
    let late = now - candidate.due_at;
    match (request.expires_at, request.urgency) {
        (Some(expires), _) if now >= expires => outcomes.push(rule(
            "segment.band",
            Verdict::Fail,
            format!("the moment has passed (expired {})", expires.to_rfc3339()),
        )),
        (_, Urgency::TimeSensitive) if late > grace => outcomes.push(rule(
            "segment.band",
            Verdict::Fail,
            format!(
                "time-sensitive and {} minutes late (the band allows {})",
                late.num_minutes(),
                rules.time_sensitive_grace_minutes
            ),
        )),
        (_, Urgency::TimeSensitive) => outcomes.push(rule(
            "segment.band",
            Verdict::Pass,
            format!(
                "time-sensitive, within {} minutes of due",
                rules.time_sensitive_grace_minutes
            ),
        )),
        (_, Urgency::Routine) => outcomes.push(rule(
            "segment.band",
            Verdict::Pass,
            "routine, may go until it expires",
        )),
    }
}

/// Applies every audience rule to `candidate` at `now`.
pub fn select(rules: &AudienceRules, candidate: &Candidate<'_>, now: DateTime<Utc>) -> Selection {
    let request = candidate.request;
    let mut outcomes = Vec::with_capacity(6);

    // Purpose.
    if rules.purposes.is_empty() || rules.purposes.iter().any(|p| p == &request.purpose) {
        outcomes.push(rule(
            "segment.purpose",
            Verdict::Pass,
            format!("the program sends {}", request.purpose),
        ));
    } else {
        outcomes.push(rule(
            "segment.purpose",
            Verdict::Fail,
            format!(
                "the program does not send {} (it sends {})",
                request.purpose,
                rules.purposes.join(", ")
            ),
        ));
    }

    // Consent scope, as of now.
    if let Stage::Sweep { consent: events } = candidate.stage {
        let verdict = consent::check(&consent_query(request), events, now);
        if verdict.basis.is_some() {
            outcomes.push(rule(
                "segment.consent_scope",
                Verdict::Pass,
                format!(
                    "a basis covers program {} category {}",
                    request.program, request.category
                ),
            ));
        } else {
            let why: Vec<String> = verdict
                .outcomes
                .iter()
                .filter(|o| o.verdict == Verdict::Fail)
                .map(|o| format!("{}: {}", o.id, o.detail))
                .collect();
            outcomes.push(rule(
                "segment.consent_scope",
                Verdict::Fail,
                format!(
                    "nothing covers program {} category {} now ({})",
                    request.program,
                    request.category,
                    why.join("; ")
                ),
            ));
        }
    }

    // Communication history: responders and non-responders.
    match (candidate.non_responders_only, candidate.answered) {
        (true, Some(answer)) => outcomes.push(rule(
            "segment.responders",
            Verdict::Fail,
            format!(
                "the follow-up is for non-responders and the patient already answered ({answer})"
            ),
        )),
        (true, None) => outcomes.push(rule(
            "segment.responders",
            Verdict::Pass,
            "no answer to the episode yet",
        )),
        (false, _) => {}
    }

    // Urgency band.
    if let Stage::Sweep { .. } = candidate.stage {
        band(rules, candidate, now, &mut outcomes);
    }

    // Minors.
    if request.recipient.minor {
        outcomes.push(if rules.minors {
            rule(
                "segment.minor",
                Verdict::Pass,
                "the program texts minors (with a guardian's consent)",
            )
        } else {
            rule(
                "segment.minor",
                Verdict::Fail,
                "the recipient is a minor and the program does not text minors",
            )
        });
    }

    // Region.
    if !rules.regions.is_empty() {
        outcomes.push(match recipient_region(request) {
            Some(region) if region_allowed(&rules.regions, &region) => rule(
                "segment.region",
                Verdict::Pass,
                format!("{region} is served"),
            ),
            Some(region) => rule(
                "segment.region",
                Verdict::Fail,
                format!(
                    "{region} is outside the program's regions ({})",
                    rules.regions.join(", ")
                ),
            ),
            None => rule(
                "segment.region",
                Verdict::Fail,
                "the recipient's region is unknown and the program serves only some regions",
            ),
        });
    }

    let reasons: Vec<String> = outcomes
        .iter()
        .filter(|o| o.verdict == Verdict::Fail)
        .map(|o| o.id.to_string())
        .collect();
    Selection {
        included: reasons.is_empty(),
        reasons,
        rules: outcomes,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;
    use crate::consent::{ConsentAction, ConsentKind, ConsentScope};
    use crate::decision::Recipient;
    use crate::phone::E164;
    use crate::{MessageClass, UsState};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 15, 0, 0).unwrap()
    }

    fn request(phone: &str) -> SendRequest {
        SendRequest {
            program: "clinic".to_owned(),
            category: "appointments".to_owned(),
            class: MessageClass::Transactional,
            purpose: "appointment_reminder".to_owned(),
            healthcare_exempt: false,
            subject: "appt-1".to_owned(),
            workflow: None,
            workflow_limit: None,
            body: None,
            provider_name: None,
            provider_contact: None,
            recipient: Recipient {
                phone: E164::parse(phone).unwrap(),
                time_zone: None,
                address_state: None,
                minor: false,
                phone_given_by_patient: true,
            },
            expires_at: Some(now() + Duration::days(3)),
            urgency: Urgency::Routine,
        }
    }

    fn grant() -> Vec<ConsentFact> {
        vec![ConsentFact {
            id: "g1".to_owned(),
            action: ConsentAction::Grant,
            scope: ConsentScope::Contact,
            kind: ConsentKind::ExpressWritten,
            program: Some("clinic".to_owned()),
            categories: vec!["appointments".to_owned()],
            at: now() - Duration::days(30),
            expires_at: None,
            guardian: false,
            reverses: None,
        }]
    }

    fn candidate<'a>(request: &'a SendRequest, consent: &'a [ConsentFact]) -> Candidate<'a> {
        Candidate {
            request,
            due_at: now() - Duration::minutes(5),
            non_responders_only: false,
            answered: None,
            stage: Stage::Sweep { consent },
        }
    }

    #[test]
    fn a_consented_reminder_in_region_is_included_with_every_rule_listed() {
        let r = request("+12125550188");
        let events = grant();
        let rules = AudienceRules {
            purposes: vec!["appointment_reminder".to_owned()],
            regions: vec!["US-NY".to_owned()],
            ..AudienceRules::default()
        };
        let s = select(&rules, &candidate(&r, &events), now());
        assert!(s.included, "{s:?}");
        let ids: Vec<&str> = s.rules.iter().map(|o| o.id.as_ref()).collect();
        assert_eq!(
            ids,
            [
                "segment.purpose",
                "segment.consent_scope",
                "segment.band",
                "segment.region"
            ]
        );
    }

    #[test]
    fn each_rule_excludes_with_its_own_reason() {
        let events = grant();
        let r = request("+12125550188");
        // Purpose.
        let rules = AudienceRules {
            purposes: vec!["billing".to_owned()],
            ..AudienceRules::default()
        };
        assert_eq!(
            select(&rules, &candidate(&r, &events), now()).reasons,
            ["segment.purpose"]
        );
        // Consent scope: a STOP after the grant (a treatment reminder needs
        // no grant, but a revocation ends every basis).
        let mut revoked = grant();
        revoked.push(ConsentFact {
            id: "r1".to_owned(),
            action: ConsentAction::Revoke,
            scope: ConsentScope::Phone,
            program: None,
            categories: Vec::new(),
            at: now() - Duration::days(1),
            ..revoked[0].clone()
        });
        let s = select(&AudienceRules::default(), &candidate(&r, &revoked), now());
        assert_eq!(s.reasons, ["segment.consent_scope"]);
        assert!(s.rules[1].detail.contains("consent.revocation"), "{s:?}");
        // A marketing text with no grant at all.
        let mut offer = request("+12125550188");
        offer.class = MessageClass::Marketing;
        offer.purpose = "promotion".to_owned();
        assert_eq!(
            select(&AudienceRules::default(), &candidate(&offer, &[]), now()).reasons,
            ["segment.consent_scope"]
        );
        // Responders.
        let mut c = candidate(&r, &events);
        c.non_responders_only = true;
        c.answered = Some("confirmed");
        assert_eq!(
            select(&AudienceRules::default(), &c, now()).reasons,
            ["segment.responders"]
        );
        // Band: expired, and a time-sensitive step three hours late.
        let mut expired = request("+12125550188");
        expired.expires_at = Some(now() - Duration::minutes(1));
        assert_eq!(
            select(
                &AudienceRules::default(),
                &candidate(&expired, &events),
                now()
            )
            .reasons,
            ["segment.band"]
        );
        let mut urgent = request("+12125550188");
        urgent.urgency = Urgency::TimeSensitive;
        let mut c = candidate(&urgent, &events);
        c.due_at = now() - Duration::hours(3);
        assert_eq!(
            select(&AudienceRules::default(), &c, now()).reasons,
            ["segment.band"]
        );
        c.due_at = now() - Duration::minutes(90);
        assert!(select(&AudienceRules::default(), &c, now()).included);
        // Minors, when the program does not text them.
        let mut minor = request("+12125550188");
        minor.recipient.minor = true;
        let no_minors = AudienceRules {
            minors: false,
            ..AudienceRules::default()
        };
        let s = select(&no_minors, &candidate(&minor, &events), now());
        assert!(s.reasons.contains(&"segment.minor".to_owned()), "{s:?}");
    }

    #[test]
    fn regions_come_from_the_address_then_the_area_code_then_the_country() {
        let events = grant();
        let florida_only = AudienceRules {
            regions: vec!["US-FL".to_owned()],
            ..AudienceRules::default()
        };
        // A New York area code.
        let ny = request("+12125550188");
        let s = select(&florida_only, &candidate(&ny, &events), now());
        assert_eq!(s.reasons, ["segment.region"]);
        // The address state wins over the area code.
        let mut moved = request("+12125550188");
        moved.recipient.address_state = Some(UsState::parse("FL").unwrap());
        assert!(select(&florida_only, &candidate(&moved, &events), now()).included);
        // A whole country, and a Canadian number outside it.
        let us = AudienceRules {
            regions: vec!["US".to_owned()],
            ..AudienceRules::default()
        };
        assert!(select(&us, &candidate(&ny, &events), now()).included);
        let toronto = request("+14165550188");
        assert_eq!(recipient_region(&toronto).as_deref(), Some("CA"));
        assert_eq!(
            select(&us, &candidate(&toronto, &events), now()).reasons,
            ["segment.region"]
        );
    }
}
