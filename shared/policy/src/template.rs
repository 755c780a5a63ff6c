//! Approved, versioned templates with typed variables, and their rendering.
//!
//! The body language is deliberately tiny: literal text and `{{name}}`
//! placeholders, nothing else (no logic), so what a reviewer approves is what
//! is sent. Each variable has a kind, a maximum length and a data class; a
//! `phi` variable is refused outright (compliance-rules §8: PHI only ever
//! travels as an opaque portal link token).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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

/// A typed variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variable {
    /// Placeholder name.
    pub name: String,
    /// Kind.
    pub kind: VariableKind,
    /// Maximum length in characters.
    pub max_len: usize,
    /// Data class.
    pub data_class: DataClass,
    /// Allowed values for an enum.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
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
    }
}

/// The seed library: approved versions for the product brief's use cases.
/// `{{program}}` is filled from the program's configuration.
pub fn seed_library() -> Vec<TemplateVersion> {
    let base = |id: &str,
                purpose: &str,
                category: &str,
                class: MessageClass,
                body: &str,
                variables: Vec<Variable>| TemplateVersion {
        id: id.to_owned(),
        version: 1,
        program: "*".to_owned(),
        purpose: purpose.to_owned(),
        category: category.to_owned(),
        class,
        locale: "en-US".to_owned(),
        body: body.to_owned(),
        variables,
        confirm_codes: Vec::new(),
        reschedule_codes: Vec::new(),
    };
    let program = || var("program", VariableKind::Text, 30, DataClass::Identifier);
    let mut reminder = base(
        "appointment_reminder",
        "appointment_reminder",
        "appointments",
        MessageClass::Transactional,
        "{{program}}: reminder of your appointment on {{date}} at {{time}}. Reply C to confirm or R to reschedule. Reply STOP to opt out.",
        vec![
            program(),
            var("date", VariableKind::Date, 12, DataClass::Scheduling),
            var("time", VariableKind::Time, 8, DataClass::Scheduling),
        ],
    );
    reminder.confirm_codes = vec!["C".to_owned(), "1".to_owned()];
    reminder.reschedule_codes = vec!["R".to_owned(), "2".to_owned()];
    vec![
        reminder,
        base(
            "intake_form",
            "intake_form",
            "forms",
            MessageClass::Transactional,
            "{{program}}: please complete your intake form before your visit: {{link}} Reply STOP to opt out.",
            vec![program(), var("link", VariableKind::Link, 60, DataClass::PortalLink)],
        ),
        base(
            "results_ready",
            "results_ready",
            "results",
            MessageClass::Transactional,
            "{{program}}: you have a new message in your patient portal: {{link}} Reply STOP to opt out.",
            vec![program(), var("link", VariableKind::Link, 60, DataClass::PortalLink)],
        ),
        base(
            "billing_reminder",
            "billing",
            "billing",
            MessageClass::Transactional,
            "{{program}}: a statement is ready in your portal: {{link}} Reply STOP to opt out.",
            vec![program(), var("link", VariableKind::Link, 60, DataClass::PortalLink)],
        ),
    ]
}

/// Finds an approved version in the seed library.
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
