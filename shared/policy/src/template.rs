//! Approved, versioned templates with typed variables, and their rendering.
//!
//! The body language is deliberately tiny: literal text and `{{name}}`
//! placeholders, nothing else (no logic), so what a reviewer approves is what
//! is sent. Each variable has a kind, a maximum length and a data class; a
//! `phi` variable is refused outright (compliance-rules §8: PHI only ever
//! travels as an opaque portal link token).
//!
//! - [`lint`]: the findings a compliance officer reads, at authoring time and
//!   again on every rendered text.
//! - [`review`]: risk tiers, required approver roles and the version state
//!   machine (draft, in review, approved, published, retired).

pub mod lint;
pub mod review;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::classify::ReplyGrammar;
use crate::segments::{self, SegmentCount, VariableBound, VariableCharset};
use crate::{MessageClass, PolicyError};

/// What a variable holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VariableKind {
    /// Free text.
    Text,
    /// A date, already formatted for the recipient.
    Date,
    /// A time, already formatted for the recipient.
    Time,
    /// An https link.
    Link,
    /// One of a fixed set of values.
    Enum,
}

/// The sensitivity of a variable (compliance-rules §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataClass {
    /// Names and identifiers of the sender.
    Identifier,
    /// Dates, times, places of a visit.
    Scheduling,
    /// Free text (reviewed).
    FreeText,
    /// Protected health information: never rendered into a body.
    Phi,
    /// An opaque link into the secure portal.
    PortalLink,
}

/// The longest a variable may be declared: 1,600 characters, the most any
/// carrier API takes in one message body (Twilio's limit). No text optline
/// sends comes near it (templates budget two segments), and the bound keeps
/// lint, preview and rendering cheap whatever a request says.
pub const MAX_VARIABLE_LEN: usize = 1600;

fn bounded_max_len<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let value = u64::deserialize(d)?;
    usize::try_from(value)
        .ok()
        .filter(|v| *v <= MAX_VARIABLE_LEN)
        .ok_or_else(|| {
            serde::de::Error::custom(format!(
                "max_len must be at most {MAX_VARIABLE_LEN} characters"
            ))
        })
}

/// A typed variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    /// Placeholder name.
    pub name: String,
    /// Kind.
    pub kind: VariableKind,
    /// Maximum length in characters, 1 to [`MAX_VARIABLE_LEN`] (a larger
    /// value is refused when the template is read).
    #[serde(deserialize_with = "bounded_max_len")]
    pub max_len: usize,
    /// Data class.
    pub data_class: DataClass,
    /// Allowed values for an enum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Characters a value may use; bounds the worst-case segment count, and
    /// a value outside it is refused at render time. Defaults by kind: see
    /// [`Variable::charset`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charset: Option<VariableCharset>,
}

impl Variable {
    /// The declared charset, or the kind's default: dates, times and links
    /// are plain GSM-7; an enum is what its values need; text may use the
    /// GSM-7 extension table (declare `unicode` for names in other scripts).
    pub fn charset(&self) -> VariableCharset {
        if let Some(c) = self.charset {
            return c;
        }
        match self.kind {
            VariableKind::Date | VariableKind::Time | VariableKind::Link => {
                VariableCharset::Gsm7Basic
            }
            VariableKind::Text => VariableCharset::Gsm7Extended,
            VariableKind::Enum => {
                let all = self.values.concat();
                if all.chars().all(segments::is_gsm7_basic) {
                    VariableCharset::Gsm7Basic
                } else if all.chars().all(|c| segments::gsm7_septets(c).is_some()) {
                    VariableCharset::Gsm7Extended
                } else {
                    VariableCharset::Unicode
                }
            }
        }
    }

    /// Whether `value` stays within the charset.
    fn fits_charset(&self, value: &str) -> bool {
        match self.charset() {
            VariableCharset::Gsm7Basic => value.chars().all(segments::is_gsm7_basic),
            VariableCharset::Gsm7Extended => {
                value.chars().all(|c| segments::gsm7_septets(c).is_some())
            }
            VariableCharset::Unicode => true,
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_budget() -> usize {
    2
}

/// An approved template version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateVersion {
    /// Template id.
    pub id: String,
    /// Version number (immutable once approved).
    pub version: u32,
    /// Program (brand).
    pub program: String,
    /// Purpose, e.g. `appointment_reminder`.
    pub purpose: String,
    /// Consent category the template needs.
    pub category: String,
    /// Message class.
    pub class: MessageClass,
    /// Locale, e.g. `en-US`.
    pub locale: String,
    /// Body with `{{name}}` placeholders.
    pub body: String,
    /// Variables.
    pub variables: Vec<Variable>,
    /// Reply codes for confirm.
    #[serde(default)]
    pub confirm_codes: Vec<String>,
    /// Reply codes for reschedule.
    #[serde(default)]
    pub reschedule_codes: Vec<String>,
    /// The text relies on the FCC healthcare exemption (one GSM-7 segment).
    #[serde(default)]
    pub healthcare_exempt: bool,
    /// Part of a recurring program, so it must say how to opt out. Only the
    /// one-time program texts (STOP confirmation) are not.
    #[serde(default = "default_true")]
    pub recurring: bool,
    /// The most segments a rendering may take.
    #[serde(default = "default_budget")]
    pub segment_budget: usize,
    /// Who wrote this version (never counts as its approver).
    #[serde(default)]
    pub author: String,
    /// When the version was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
    /// Why this version exists (what changed and why).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change_reason: Option<String>,
}

enum Piece<'a> {
    Literal(&'a str),
    Placeholder(&'a str),
}

fn pieces(body: &str) -> Result<Vec<Piece<'_>>, PolicyError> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(open) = rest.find("{{") {
        let (literal, after) = rest.split_at(open);
        if !literal.is_empty() {
            out.push(Piece::Literal(literal));
        }
        let inner = after.get(2..).unwrap_or_default();
        let close = inner
            .find("}}")
            .ok_or_else(|| PolicyError::InvalidRequest("unclosed placeholder".to_owned()))?;
        let (name, tail) = inner.split_at(close);
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(PolicyError::InvalidRequest(
                "placeholders are {{name}} with letters, digits and underscores".to_owned(),
            ));
        }
        out.push(Piece::Placeholder(name));
        rest = tail.get(2..).unwrap_or_default();
    }
    if !rest.is_empty() {
        out.push(Piece::Literal(rest));
    }
    Ok(out)
}

impl TemplateVersion {
    /// `id@version`, as steps and audit records pin it.
    pub fn reference(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }

    /// The reply grammar of this version, if it has reply codes.
    pub fn grammar(&self) -> Option<ReplyGrammar> {
        if self.confirm_codes.is_empty() && self.reschedule_codes.is_empty() {
            None
        } else {
            Some(ReplyGrammar {
                confirm: self.confirm_codes.clone(),
                reschedule: self.reschedule_codes.clone(),
            })
        }
    }

    /// The placeholders of the body, in order (repeats included).
    pub fn placeholders(&self) -> Result<Vec<&str>, PolicyError> {
        Ok(pieces(&self.body)?
            .into_iter()
            .filter_map(|p| match p {
                Piece::Placeholder(name) => Some(name),
                Piece::Literal(_) => None,
            })
            .collect())
    }

    /// The largest rendering: every variable at its maximum length in its
    /// costliest characters ([`segments::worst_case`]).
    pub fn worst_case(&self) -> Result<SegmentCount, PolicyError> {
        let mut literal = Vec::new();
        let mut bounds = Vec::new();
        for piece in pieces(&self.body)? {
            match piece {
                Piece::Literal(text) => literal.push(text),
                Piece::Placeholder(name) => {
                    let v = self
                        .variables
                        .iter()
                        .find(|v| v.name == name)
                        .ok_or_else(|| {
                            PolicyError::InvalidRequest(format!(
                                "placeholder {name} is not declared"
                            ))
                        })?;
                    bounds.push(VariableBound {
                        max_len: v.max_len.min(MAX_VARIABLE_LEN),
                        charset: v.charset(),
                    });
                }
            }
        }
        Ok(segments::worst_case(&literal, &bounds))
    }

    /// Renders with sample values: each variable's maximum length in `x`
    /// (links as an https portal link), for previews and lint.
    pub fn sample_values(&self) -> BTreeMap<String, String> {
        self.variables
            .iter()
            .map(|v| {
                let value = match v.kind {
                    VariableKind::Enum => v.values.first().cloned().unwrap_or_default(),
                    VariableKind::Link => {
                        let mut link = "https://portal.example/t/".to_owned();
                        let max = v.max_len.min(MAX_VARIABLE_LEN);
                        link.push_str(&"x".repeat(max.saturating_sub(link.len())));
                        link
                    }
                    _ => "x".repeat(v.max_len.min(MAX_VARIABLE_LEN)),
                };
                (v.name.clone(), value)
            })
            .collect()
    }

    /// Renders the body with typed values. Every placeholder needs a declared
    /// variable and a value within its bounds; `phi` variables are refused.
    pub fn render(&self, values: &BTreeMap<String, String>) -> Result<String, PolicyError> {
        let mut out = String::with_capacity(self.body.len() + 32);
        for piece in pieces(&self.body)? {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Placeholder(name) => {
                    let variable =
                        self.variables
                            .iter()
                            .find(|v| v.name == name)
                            .ok_or_else(|| {
                                PolicyError::InvalidRequest(format!(
                                    "placeholder {name} is not declared"
                                ))
                            })?;
                    if variable.data_class == DataClass::Phi {
                        return Err(PolicyError::InvalidRequest(format!(
                            "variable {name} is phi and cannot appear in a text"
                        )));
                    }
                    let value = values.get(name).ok_or_else(|| {
                        PolicyError::InvalidRequest(format!("no value for variable {name}"))
                    })?;
                    if value.chars().count() > variable.max_len {
                        return Err(PolicyError::InvalidRequest(format!(
                            "value for {name} is longer than {} characters",
                            variable.max_len
                        )));
                    }
                    if variable.kind == VariableKind::Enum && !variable.values.contains(value) {
                        return Err(PolicyError::InvalidRequest(format!(
                            "value for {name} is not one of its allowed values"
                        )));
                    }
                    if !variable.fits_charset(value) {
                        return Err(PolicyError::InvalidRequest(format!(
                            "value for {name} uses characters outside its declared charset"
                        )));
                    }
                    if variable.kind == VariableKind::Link && !value.starts_with("https://") {
                        return Err(PolicyError::InvalidRequest(format!(
                            "value for {name} is not an https link"
                        )));
                    }
                    out.push_str(value);
                }
            }
        }
        Ok(out)
    }
}

fn var(name: &str, kind: VariableKind, max_len: usize, data_class: DataClass) -> Variable {
    Variable {
        name: name.to_owned(),
        kind,
        max_len,
        data_class,
        values: Vec::new(),
        charset: None,
    }
}

/// The seed library: the product brief's use cases and the program's own
/// texts (HELP, STOP confirmation, opt-in confirmation, with the CTIA
/// elements each needs). `{{program}}` is filled from the program's
/// configuration, `{{help_contact}}` with its support phone or URL and
/// `{{frequency}}` with its stated message frequency.
/// Loading them into a deployment records them as published; see
/// `docs/templates.md`.
pub fn seed_library() -> Vec<TemplateVersion> {
    let base = |id: &str, purpose: &str, category: &str, body: &str, variables: Vec<Variable>| {
        TemplateVersion {
            id: id.to_owned(),
            version: 1,
            program: "*".to_owned(),
            purpose: purpose.to_owned(),
            category: category.to_owned(),
            class: MessageClass::Transactional,
            locale: "en-US".to_owned(),
            body: body.to_owned(),
            variables,
            confirm_codes: Vec::new(),
            reschedule_codes: Vec::new(),
            healthcare_exempt: false,
            recurring: true,
            segment_budget: 2,
            author: "optline-seed-library".to_owned(),
            created_at: None,
            change_reason: Some("seed library shipped with optline".to_owned()),
        }
    };
    let program = || var("program", VariableKind::Text, 30, DataClass::Identifier);
    let help_contact = || {
        var(
            "help_contact",
            VariableKind::Text,
            40,
            DataClass::Identifier,
        )
    };
    let link = || var("link", VariableKind::Link, 60, DataClass::PortalLink);
    let frequency = || var("frequency", VariableKind::Text, 40, DataClass::Identifier);
    let date = || var("date", VariableKind::Date, 12, DataClass::Scheduling);
    let time = || var("time", VariableKind::Time, 8, DataClass::Scheduling);
    let with_codes = |mut t: TemplateVersion| {
        t.confirm_codes = vec!["C".to_owned(), "1".to_owned()];
        t.reschedule_codes = vec!["R".to_owned(), "2".to_owned()];
        t
    };
    vec![
        with_codes(base(
            "appointment_reminder",
            "appointment_reminder",
            "appointments",
            "{{program}}: reminder of your appointment on {{date}} at {{time}}. Reply C to confirm or R to reschedule. Reply STOP to opt out.",
            vec![program(), date(), time()],
        )),
        with_codes(base(
            "appointment_follow_up",
            "appointment_reminder",
            "appointments",
            "{{program}}: your appointment is tomorrow, {{date}} at {{time}}. Reply C to confirm or R to reschedule. Reply STOP to opt out.",
            vec![program(), date(), time()],
        )),
        base(
            "appointment_confirmed",
            "appointment_confirmation",
            "appointments",
            "{{program}}: thank you, your appointment on {{date}} at {{time}} is confirmed. Reply STOP to opt out.",
            vec![program(), date(), time()],
        ),
        base(
            "appointment_reschedule_requested",
            "appointment_confirmation",
            "appointments",
            "{{program}}: thank you, our staff will call you to find a new time. Reply STOP to opt out.",
            vec![program()],
        ),
        base(
            "intake_form",
            "intake_form",
            "forms",
            "{{program}}: please complete your intake form before your visit: {{link}} Reply STOP to opt out.",
            vec![program(), link()],
        ),
        base(
            "referral_follow_up",
            "referral_document",
            "referrals",
            "{{program}}: we need a document for your referral. Please upload it securely: {{link}} Reply STOP to opt out.",
            vec![program(), link()],
        ),
        base(
            "results_ready",
            "results_ready",
            "results",
            "{{program}}: you have a new message in your patient portal: {{link}} Reply STOP to opt out.",
            vec![program(), link()],
        ),
        base(
            "billing_reminder",
            "billing",
            "billing",
            "{{program}}: a statement is ready in your portal: {{link}} Reply STOP to opt out.",
            vec![program(), link()],
        ),
        base(
            "program_help",
            "help",
            "program",
            "{{program}}: Help at {{help_contact}}. {{frequency}}. Msg & data rates may apply. Reply STOP to opt out.",
            vec![program(), help_contact(), frequency()],
        ),
        TemplateVersion {
            recurring: false,
            ..base(
                "program_stop_confirmation",
                "stop_confirmation",
                "program",
                "{{program}}: You are unsubscribed and will receive no further messages. Reply START to resubscribe.",
                vec![program()],
            )
        },
        TemplateVersion {
            recurring: false,
            ..base(
                "program_scope_confirmation",
                "stop_confirmation",
                "program",
                "{{program}}: You are unsubscribed from all our texts. If you only meant to cancel or change an appointment, reply START and call {{help_contact}}.",
                vec![program(), help_contact()],
            )
        },
        base(
            "program_opt_in_confirmation",
            "opt_in_confirmation",
            "program",
            "{{program}}: You are subscribed to appointment and care messages. {{frequency}}. Msg & data rates may apply. Reply HELP for help, STOP to opt out.",
            vec![program(), frequency()],
        ),
    ]
}

/// Finds a version in the seed library.
pub fn find_seed(id: &str, version: u32) -> Option<TemplateVersion> {
    seed_library()
        .into_iter()
        .find(|t| t.id == id && t.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_fills_every_placeholder() {
        let t = find_seed("appointment_reminder", 1).unwrap();
        let values = BTreeMap::from([
            ("program".to_owned(), "Riverside Clinic".to_owned()),
            ("date".to_owned(), "Mon Mar 2".to_owned()),
            ("time".to_owned(), "9:30 AM".to_owned()),
        ]);
        let body = t.render(&values).unwrap();
        assert!(body.starts_with(
            "Riverside Clinic: reminder of your appointment on Mon Mar 2 at 9:30 AM."
        ));
    }

    #[test]
    fn a_phi_variable_is_never_rendered() {
        let mut t = find_seed("results_ready", 1).unwrap();
        t.body.push_str(" {{diagnosis}}");
        t.variables
            .push(var("diagnosis", VariableKind::Text, 40, DataClass::Phi));
        let values = BTreeMap::from([
            ("program".to_owned(), "X".to_owned()),
            ("link".to_owned(), "https://portal.example/t/abc".to_owned()),
            ("diagnosis".to_owned(), "anything".to_owned()),
        ]);
        assert!(t.render(&values).is_err());
    }

    #[test]
    fn a_value_over_its_maximum_length_is_refused() {
        let t = find_seed("appointment_reminder", 1).unwrap();
        let values = BTreeMap::from([
            ("program".to_owned(), "X".to_owned()),
            ("date".to_owned(), "a very long date value".to_owned()),
            ("time".to_owned(), "9:30 AM".to_owned()),
        ]);
        assert!(t.render(&values).is_err());
    }
}
