//! The vocabulary every rule speaks: which rule, which version, what it
//! concluded and why. A [`crate::Decision`] carries one [`RuleOutcome`] per
//! rule consulted, so a compliance officer can read the decision back.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

/// What one rule concluded about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The rule allows the send.
    Pass,
    /// The rule allows the send later (for example outside quiet hours).
    Defer,
    /// The rule forbids the send.
    Fail,
    /// The rule does not apply to this message.
    NotApplicable,
}

/// One rule consulted for a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleOutcome {
    /// Stable rule id, e.g. `quiet_hours.state.TX`. Borrowed from the rule
    /// tables (no allocation per decision); owned after deserialization.
    pub id: Cow<'static, str>,
    /// Version of the rule's data (an effective date or table version).
    pub version: Cow<'static, str>,
    /// What it concluded.
    pub verdict: Verdict,
    /// A sentence for a compliance officer. Never contains PHI or a phone number.
    pub detail: Cow<'static, str>,
}

impl RuleOutcome {
    /// Builds an outcome.
    pub fn new(
        id: impl Into<Cow<'static, str>>,
        version: impl Into<Cow<'static, str>>,
        verdict: Verdict,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            id: id.into(),
            version: version.into(),
            verdict,
            detail: detail.into(),
        }
    }
}

/// The class of a message, fixed by its template version
/// (compliance-rules §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum MessageClass {
    /// Service messages: appointment reminders, account notices, verification.
    Transactional,
    /// Education and outreach.
    Informational,
    /// Promotional; needs prior express written consent.
    Marketing,
}

impl MessageClass {
    /// The snake_case name used in records and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transactional => "transactional",
            Self::Informational => "informational",
            Self::Marketing => "marketing",
        }
    }
}

/// USPS codes of the 50 states, the District of Columbia and the inhabited
/// territories. Anything else is refused: a typo must not silently mean
/// "no state rules apply".
pub const US_STATE_CODES: [&str; 56] = [
    "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
    "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY",
    "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV",
    "WI", "WY", "DC", "PR", "VI", "GU", "AS", "MP",
];

/// A US state or territory, by its two-letter USPS code (upper case).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(try_from = "String", into = "String")]
pub struct UsState(String);

impl UsState {
    /// Parses a two-letter code, case-insensitively.
    pub fn parse(code: &str) -> Result<Self, crate::PolicyError> {
        let up = code.trim().to_ascii_uppercase();
        if US_STATE_CODES.contains(&up.as_str()) {
            Ok(Self(up))
        } else {
            Err(crate::PolicyError::InvalidState)
        }
    }

    /// The upper-case two-letter code.
    pub fn code(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for UsState {
    type Error = crate::PolicyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<UsState> for String {
    fn from(value: UsState) -> Self {
        value.0
    }
}
