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

/// One row of a rules table as `optline rules` lists it: what it says,
/// where it applies, from when, and its citation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogRow {
    /// The table: `quiet_hours`, `caps` or `consent_rules`.
    pub table: &'static str,
    /// The table's version.
    pub version: String,
    /// The rule id, as in decisions' outcomes.
    pub id: String,
    /// Who made the rule (`United States`, `Oregon`).
    pub jurisdiction: String,
    /// Two-letter states it applies to; empty for every recipient.
    pub states: Vec<String>,
    /// The message classes it applies to; `None` for every class.
    pub classes: Option<Vec<MessageClass>>,
    /// What it requires, in a line.
    pub summary: String,
    /// In force from this date.
    pub effective_from: chrono::NaiveDate,
    /// Where that date comes from: `statute`, `session law`, `order`,
    /// `product requirement`, or `adopted by optline` (the law is older and
    /// its own date is not verified; the date is when the row entered the
    /// table).
    pub effective_from_basis: String,
    /// No longer in force from this date, when replaced.
    pub effective_until: Option<chrono::NaiveDate>,
    /// The citation.
    pub source: String,
    /// `primary`, `secondary source` or `product requirement`.
    pub source_quality: String,
    /// Anything else a reader should know.
    pub note: Option<String>,
}

impl CatalogRow {
    /// Whether the row is in force on `date`.
    pub fn in_force_on(&self, date: chrono::NaiveDate) -> bool {
        date >= self.effective_from && self.effective_until.is_none_or(|until| date < until)
    }
}
