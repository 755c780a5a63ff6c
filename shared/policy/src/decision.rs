//! The send decision: `evaluate(request, state, now) -> Decision`.
//!
//! One function decides every send, at sweep time and again at dispatch time.
//! It consults, in order: the request's own validity, the step's expiry,
//! consent and legal basis, the content rules for the healthcare exemption,
//! frequency caps and quiet hours. Every rule consulted is returned with its
//! id, version, verdict and a detail sentence; the first failing rule
//! suppresses, a deferring rule defers, and any error suppresses (fail
//! closed, as cedar denies when it cannot evaluate).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::caps::{self, CapRequest, PriorSend};
use crate::consent::{self, ConsentFact, ConsentQuery, LegalBasis};
use crate::phone::E164;
use crate::quiet_hours::{self, QuietHoursRequest};
use crate::segments::{self, Encoding};
use crate::{MessageClass, RuleOutcome, UsState, Verdict};

/// Version of the decision procedure (the order and combination of rules).
pub const DECISION_VERSION: &str = "2026-11-25";

/// How a late message is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// May wait for the next allowed window, up to the step's expiry.
    #[default]
    Routine,
    /// Worthless once late: dropped instead of deferred past `expires_at`.
    TimeSensitive,
}

/// The urgency a purpose carries: a reminder of something at a set time is
/// worthless once that time is near (dropped when late), while a form, a
/// result, a statement or a referral is still worth sending late (deferred
/// to the next window, up to its expiry).
pub fn urgency_for_purpose(purpose: &str) -> Urgency {
    match purpose {
        "appointment_reminder" | "appointment_follow_up" | "pre_procedure_instructions" => {
            Urgency::TimeSensitive
        }
        _ => Urgency::Routine,
    }
}

/// The recipient as the engine sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Number in E.164.
    pub phone: E164,
    /// The contact's stated IANA time zone, if any.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// The contact's address state, if any.
    #[serde(default)]
    pub address_state: Option<UsState>,
    /// The contact is a minor.
    #[serde(default)]
    pub minor: bool,
    /// The number was given by the patient themself.
    /// Defaults to `false`: an unstated fact never widens a legal basis.
    #[serde(default)]
    pub phone_given_by_patient: bool,
}

/// A message the system would like to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRequest {
    /// Program (brand) sending it.
    pub program: String,
    /// Consent category, e.g. `appointments`.
    pub category: String,
    /// Class of the template version.
    pub class: MessageClass,
    /// Purpose, e.g. `appointment_reminder`, `billing`.
    pub purpose: String,
    /// The message relies on the FCC healthcare exemption.
    #[serde(default)]
    pub healthcare_exempt: bool,
    /// Subject for frequency caps (e.g. the episode id).
    pub subject: String,
    /// Workflow instance and its cadence limit.
    #[serde(default)]
    pub workflow: Option<String>,
    /// Maximum sends in the workflow instance.
    #[serde(default)]
    pub workflow_limit: Option<u32>,
    /// The rendered body, when known (checked for the exemption's content rules).
    #[serde(default)]
    pub body: Option<String>,
    /// The provider's name, required in an exempt body.
    #[serde(default)]
    pub provider_name: Option<String>,
    /// The provider's contact (phone or URL), required in an exempt body.
    #[serde(default)]
    pub provider_contact: Option<String>,
    /// The recipient.
    pub recipient: Recipient,
    /// Instant after which the message is worthless (e.g. the appointment).
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Defer or drop when late.
    #[serde(default)]
    pub urgency: Urgency,
}

/// What the engine knows about the recipient's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PolicyState {
    /// Consent events of the contact and of its phone number.
    #[serde(default)]
    pub consent: Vec<ConsentFact>,
    /// Earlier sends to the recipient.
    #[serde(default)]
    pub history: Vec<PriorSend>,
}

/// The decision, always with the rules consulted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Send now.
    Send {
        /// The legal basis relied on.
        legal_basis: LegalBasis,
        /// The consent event relied on, if any.
        consent_event_id: Option<String>,
        /// Every rule consulted.
        rules: Vec<RuleOutcome>,
    },
    /// Try again at `until`.
    Defer {
        /// The earliest instant the send may be allowed.
        until: Option<DateTime<Utc>>,
        /// Every rule consulted.
        rules: Vec<RuleOutcome>,
    },
    /// Do not send.
    Suppress {
        /// Rule ids that failed (or the error), for counting and reports.
        reasons: Vec<String>,
        /// Every rule consulted.
        rules: Vec<RuleOutcome>,
    },
}

impl Decision {
    /// The rules consulted.
    pub fn rules(&self) -> &[RuleOutcome] {
        match self {
            Self::Send { rules, .. } | Self::Defer { rules, .. } | Self::Suppress { rules, .. } => {
                rules
            }
        }
    }

    /// `send`, `defer` or `suppress`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Send { .. } => "send",
            Self::Defer { .. } => "defer",
            Self::Suppress { .. } => "suppress",
        }
    }

    fn suppress(mut rules: Vec<RuleOutcome>, failing: RuleOutcome) -> Self {
        let reasons = vec![failing.id.to_string()];
        rules.push(failing);
        Self::Suppress { reasons, rules }
    }
}

fn rule(
    id: &'static str,
    verdict: Verdict,
    detail: impl Into<std::borrow::Cow<'static, str>>,
) -> RuleOutcome {
    RuleOutcome::new(id, DECISION_VERSION, verdict, detail)
}

/// Decides one send. Pure: `now` and all state are arguments.
pub fn evaluate(request: &SendRequest, state: &PolicyState, now: DateTime<Utc>) -> Decision {
    let mut rules: Vec<RuleOutcome> = Vec::with_capacity(12);

    // 1. Expiry: never a reminder after the moment has passed.
    if let Some(expires) = request.expires_at {
        if now >= expires {
            return Decision::suppress(
                rules,
                rule(
                    "decision.expiry",
                    Verdict::Fail,
                    "the message expired before it could be sent",
                ),
            );
        }
        rules.push(rule("decision.expiry", Verdict::Pass, "not expired"));
    }

    // 2. Time zone named by the contact must be real; an unknown one is an
    //    error, and errors fail closed.
    let stated_zone = match request.recipient.time_zone.as_deref() {
        None => None,
        Some(name) => match name.parse::<chrono_tz::Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                return Decision::suppress(
                    rules,
                    rule(
                        "decision.time_zone",
                        Verdict::Fail,
                        "the contact's stated time zone is not an IANA zone",
                    ),
                )
            }
        },
    };

    // 3. Consent and legal basis.
    let query = consent_query(request);
    let consent = consent::check_with(&query, &state.consent, now, rules);
    let mut rules = consent.outcomes;
    let consent_event_id = consent.event_id;
    let Some(legal_basis) = consent.basis else {
        let reasons = failing_ids(&rules);
        return Decision::Suppress { reasons, rules };
    };

    // 4. Content rules of the healthcare exemption.
    if legal_basis == LegalBasis::FccHealthcareExempt {
        let failures = exempt_content(request);
        let failed = !failures.is_empty();
        if failed {
            for detail in failures {
                rules.push(RuleOutcome::new(
                    "content.healthcare_exempt",
                    DECISION_VERSION,
                    Verdict::Fail,
                    detail,
                ));
            }
            let reasons = failing_ids(&rules);
            return Decision::Suppress { reasons, rules };
        }
        rules.push(RuleOutcome::new(
            "content.healthcare_exempt",
            DECISION_VERSION,
            Verdict::Pass,
            "one GSM-7 segment of at most 160 characters naming the provider and a contact, with STOP language",
        ));
    }

    let qh_request = QuietHoursRequest {
        class: request.class,
        stated_zone,
        address_state: request.recipient.address_state.as_ref(),
        phone: Some(&request.recipient.phone),
        // Only the recipient's own recorded consent waives a window that
        // allows it (Virginia); a treatment basis inferred from a number
        // given does not.
        prior_express_consent: consent_event_id.is_some()
            && matches!(
                legal_basis,
                LegalBasis::PriorExpressConsent | LegalBasis::PriorExpressWrittenConsent
            ),
    };

    // 5. Frequency caps over rolling windows.
    // Every state the recipient may be in: the address state and the area
    // code's. Borrowed when there is one (the common case), to spare the
    // allocations on every decision.
    let address_state = request.recipient.address_state.as_ref();
    let area_state = crate::phone::area_code_state_code(&request.recipient.phone);
    let both: Vec<UsState>;
    let states: &[UsState] = match (address_state, area_state) {
        (None, None) => &[],
        (Some(s), None) => std::slice::from_ref(s),
        (Some(s), Some(area)) if s.code() == area => std::slice::from_ref(s),
        (address, Some(area)) => {
            both = address
                .cloned()
                .into_iter()
                .chain(UsState::parse(area).ok())
                .collect();
            &both
        }
    };
    let cap_request = CapRequest {
        subject: &request.subject,
        provider: &request.program,
        healthcare_exempt: legal_basis == LegalBasis::FccHealthcareExempt,
        states,
        workflow: request.workflow.as_deref(),
        workflow_limit: request.workflow_limit,
    };
    let caps = caps::check_with(&cap_request, &state.history, now, rules);
    let rules = caps.outcomes;
    if !caps.allowed {
        // When the cap lifts at night, wake at the next window instead.
        let until = caps.next_allowed.map(|lift| {
            let at_lift = quiet_hours::check(&qh_request, lift);
            if at_lift.allowed_now {
                lift
            } else {
                at_lift.next_allowed.unwrap_or(lift)
            }
        });
        return late(request, rules, until);
    }

    // 6. Quiet hours in every candidate zone.
    let qh = quiet_hours::check_with(&qh_request, now, rules);
    let rules = qh.outcomes;
    if !qh.allowed_now {
        return late(request, rules, qh.next_allowed);
    }

    Decision::Send {
        legal_basis,
        consent_event_id,
        rules,
    }
}

/// Defer to `until`, or drop when `until` is unknown-and-time-sensitive or
/// falls at or after the step's expiry.
fn late(
    request: &SendRequest,
    mut rules: Vec<RuleOutcome>,
    until: Option<DateTime<Utc>>,
) -> Decision {
    let too_late = match (until, request.expires_at) {
        (Some(u), Some(exp)) => u >= exp,
        (None, Some(_)) => request.urgency == Urgency::TimeSensitive,
        _ => false,
    };
    if too_late {
        let failing = rule(
            "decision.urgency",
            Verdict::Fail,
            "the next allowed time is at or after the message's expiry; dropped rather than sent late",
        );
        rules.push(failing);
        let reasons = failing_ids(&rules);
        return Decision::Suppress { reasons, rules };
    }
    if until.is_none() {
        // A cap with no end (workflow cadence) is a suppression, not a deferral.
        let never = rules.iter().any(|r| r.verdict == Verdict::Fail);
        if never {
            let reasons = failing_ids(&rules);
            return Decision::Suppress { reasons, rules };
        }
    }
    Decision::Defer { until, rules }
}

fn failing_ids(rules: &[RuleOutcome]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for r in rules.iter().filter(|r| r.verdict == Verdict::Fail) {
        if !ids.iter().any(|id| *id == r.id) {
            ids.push(r.id.to_string());
        }
    }
    ids
}

/// Purposes that are treatment communications under HIPAA (45 CFR 164.501,
/// "treatment"): care coordination with the patient, not payment or
/// operations. Only these may rely on `hipaa_treatment` without a grant.
pub const TREATMENT_PURPOSES: [&str; 6] = [
    "appointment_reminder",
    "appointment_confirmation",
    "intake_form",
    "referral_document",
    "results_ready",
    "care_follow_up",
];

/// What the consent rules are asked about a request: its program, category
/// and class, and whether it is a treatment or billing message.
pub fn consent_query(request: &SendRequest) -> ConsentQuery<'_> {
    let billing = is_billing(&request.purpose);
    ConsentQuery {
        program: &request.program,
        category: &request.category,
        class: request.class,
        healthcare_exempt: request.healthcare_exempt,
        treatment: !billing
            && request.class == MessageClass::Transactional
            && TREATMENT_PURPOSES.contains(&request.purpose.as_str()),
        billing,
        phone_given_by_patient: request.recipient.phone_given_by_patient,
        minor: request.recipient.minor,
    }
}

fn is_billing(purpose: &str) -> bool {
    matches!(
        purpose,
        "billing" | "billing_reminder" | "collections" | "payment" | "payment_reminder"
    )
}

/// FCC 15-72 ¶147 conditions for exempt healthcare texts, as restated in
/// compliance-rules §7: at most 160 characters (so one GSM-7 segment), the
/// provider's name and a contact, and a way to opt out by replying STOP.
fn exempt_content(request: &SendRequest) -> Vec<String> {
    let mut failures = Vec::new();
    let Some(body) = request.body.as_deref() else {
        failures.push("the exemption needs the rendered body to check its content".to_owned());
        return failures;
    };
    let count = segments::count(body);
    if count.encoding != Encoding::Gsm7 || count.units > 160 || count.segments > 1 {
        failures
            .push("an exempt text must be one GSM-7 segment of at most 160 characters".to_owned());
    }
    let lower = body.to_lowercase();
    match request.provider_name.as_deref() {
        Some(name) if !name.is_empty() && lower.contains(&name.to_lowercase()) => {}
        _ => failures.push("an exempt text must name the provider".to_owned()),
    }
    match request.provider_contact.as_deref() {
        Some(contact) if !contact.is_empty() && lower.contains(&contact.to_lowercase()) => {}
        _ => failures.push("an exempt text must give the provider's contact".to_owned()),
    }
    if !lower.contains("stop") {
        failures.push("an exempt text must say the recipient can reply STOP".to_owned());
    }
    failures
}
