//! Template lint: what a compliance officer checks before approving a
//! version, run when it is written and again on every rendered text.
//!
//! Each finding has a rule id (listed in `docs/templates.md`), a severity
//! and a sentence written for the reviewer. An `error` blocks submission for
//! review and blocks a send; a `warning` raises the version's risk tier.
//!
//! Sources: compliance-rules §7 (healthcare exemption: one segment, provider
//! named, STOP), §8 (templates: sender named, opt-out language, no PHI, link
//! to the portal, reserved words, 1,600 characters) and the CTIA Messaging
//! Principles and Best Practices (HELP, opt-in and opt-out confirmations;
//! public URL shorteners). The configurable lists are in
//! `data/template_lint.json`.

use std::borrow::Cow;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use super::{pieces, DataClass, Piece, TemplateVersion, VariableKind};
use crate::classify::normalize;
use crate::segments::{self, Encoding};
use crate::{MessageClass, PolicyError};

/// The version of the lint rules and of `data/template_lint.json`.
pub const LINT_VERSION: &str = "2026-11-25";

static CONFIG_JSON: &str = include_str!("../../data/template_lint.json");

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Raises the risk tier; does not block.
    Warning,
    /// Blocks review and sending.
    Error,
}

/// One lint finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable rule id, e.g. `template.opt_out_language`.
    pub rule: Cow<'static, str>,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, for a compliance officer. Never contains a value
    /// rendered into a text (which could be PHI).
    pub message: String,
}

impl Finding {
    fn error(rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            rule: Cow::Borrowed(rule),
            severity: Severity::Error,
            message: message.into(),
        }
    }

    fn warning(rule: &'static str, message: impl Into<String>) -> Self {
        Self {
            rule: Cow::Borrowed(rule),
            severity: Severity::Warning,
            message: message.into(),
        }
    }
}

/// Whether any finding is an error.
pub fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// The configurable lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LintConfig {
    /// Longest text, in characters (Twilio's and AWS's limit is 1,600).
    pub max_characters: usize,
    /// Words and phrases that reveal health detail (matched as whole words,
    /// case-insensitively).
    pub prohibited_terms: Vec<String>,
    /// Hosts of public URL shorteners.
    pub url_shorteners: Vec<String>,
}

#[derive(Deserialize)]
struct RawConfig {
    version: String,
    #[serde(flatten)]
    config: LintConfig,
}

impl LintConfig {
    /// The embedded defaults.
    pub fn embedded() -> Result<&'static LintConfig, PolicyError> {
        static PARSED: OnceLock<Result<LintConfig, PolicyError>> = OnceLock::new();
        PARSED
            .get_or_init(|| {
                let raw: RawConfig =
                    serde_json::from_str(CONFIG_JSON).map_err(|e| PolicyError::RuleTable {
                        table: "template_lint",
                        reason: e.to_string(),
                    })?;
                if raw.version != LINT_VERSION {
                    return Err(PolicyError::RuleTable {
                        table: "template_lint",
                        reason: "version differs from LINT_VERSION".to_owned(),
                    });
                }
                Ok(raw.config)
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Purposes that are the program's own texts, with CTIA content rules.
const PROGRAM_TEXT_PURPOSES: [&str; 3] = ["help", "stop_confirmation", "opt_in_confirmation"];

/// Lints a version as written. Findings are in rule order.
pub fn lint(version: &TemplateVersion, config: &LintConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let parsed = match pieces(&version.body) {
        Ok(p) => p,
        Err(e) => {
            out.push(Finding::error(
                "template.body.syntax",
                format!("the body's placeholders are malformed: {e}"),
            ));
            return out;
        }
    };
    let literal: String = parsed
        .iter()
        .filter_map(|p| match p {
            Piece::Literal(t) => Some(*t),
            Piece::Placeholder(_) => None,
        })
        .collect();
    let used: Vec<&str> = parsed
        .iter()
        .filter_map(|p| match p {
            Piece::Placeholder(n) => Some(*n),
            Piece::Literal(_) => None,
        })
        .collect();

    // Placeholders and variables.
    for name in &used {
        if !version.variables.iter().any(|v| v.name == *name) {
            out.push(Finding::error(
                "template.body.syntax",
                format!("placeholder {{{{{name}}}}} has no declared variable"),
            ));
        }
    }
    for (i, v) in version.variables.iter().enumerate() {
        if version
            .variables
            .iter()
            .skip(i + 1)
            .any(|w| w.name == v.name)
        {
            out.push(Finding::error(
                "template.variables.declared",
                format!("variable {} is declared twice", v.name),
            ));
        }
        if v.max_len == 0 {
            out.push(Finding::error(
                "template.variables.declared",
                format!("variable {} needs a maximum length", v.name),
            ));
        }
        if v.max_len > super::MAX_VARIABLE_LEN {
            out.push(Finding::error(
                "template.variables.declared",
                format!(
                    "variable {} may be at most {} characters",
                    v.name,
                    super::MAX_VARIABLE_LEN
                ),
            ));
        }
        if !used.contains(&v.name.as_str()) && v.data_class != DataClass::Phi {
            out.push(Finding::warning(
                "template.variables.unused",
                format!("variable {} is declared but not used in the body", v.name),
            ));
        }
        if v.kind == VariableKind::Enum && v.values.is_empty() {
            out.push(Finding::error(
                "template.variables.declared",
                format!("enum variable {} lists no allowed values", v.name),
            ));
        }
        if v.data_class == DataClass::PortalLink && v.kind != VariableKind::Link {
            out.push(Finding::error(
                "template.variables.portal_link",
                format!("portal link variable {} must be of kind link", v.name),
            ));
        }
        if v.data_class == DataClass::Phi {
            out.push(Finding::error(
                "template.phi",
                format!(
                    "variable {} is protected health information; a text may carry only an opaque portal link to it",
                    v.name
                ),
            ));
        }
        if v.data_class == DataClass::FreeText {
            out.push(Finding::warning(
                "template.variables.free_text",
                format!(
                    "variable {} is free text: what is sent is not fully known at approval",
                    v.name
                ),
            ));
        }
    }

    // Sender named (compliance-rules §8; CTIA: every message names the program).
    if !used.contains(&"program") && !names_program_literally(version, &literal) {
        out.push(Finding::error(
            "template.sender_named",
            "the text must name the sender: start with {{program}} or the program's name",
        ));
    }

    // Opt-out language in every text of a recurring program.
    if version.recurring && !has_opt_out_language(&literal) {
        out.push(Finding::error(
            "template.opt_out_language",
            "a recurring program's text must say how to opt out, e.g. \"Reply STOP to opt out\"",
        ));
    }

    // Reply codes never reserved words, never repeated.
    if let Some(grammar) = version.grammar() {
        if let Err(e) = grammar.validate() {
            out.push(Finding::error(
                "template.reply_codes",
                format!("reply codes are not usable: {e}"),
            ));
        }
    }

    // Class and exemption.
    let billing = matches!(
        version.purpose.as_str(),
        "billing" | "billing_reminder" | "collections" | "payment" | "payment_reminder"
    );
    if version.healthcare_exempt && (billing || version.class == MessageClass::Marketing) {
        out.push(Finding::error(
            "template.healthcare_exempt.scope",
            "billing, collections and marketing texts can never rely on the healthcare exemption",
        ));
    }
    if version.class == MessageClass::Marketing && version.purpose != "marketing" {
        out.push(Finding::warning(
            "template.class",
            "a marketing text under a care purpose: check the class",
        ));
    }

    // Size: worst case over every filling within the variables' bounds.
    match version.worst_case() {
        Ok(worst) => {
            if worst.characters > config.max_characters {
                out.push(Finding::error(
                    "template.length.max",
                    format!(
                        "the longest rendering has {} characters; the limit is {}",
                        worst.characters, config.max_characters
                    ),
                ));
            }
            if worst.segments > version.segment_budget {
                out.push(Finding::error(
                    "template.segments.budget",
                    format!(
                        "the longest rendering takes {} segments ({}); the budget is {}",
                        worst.segments,
                        encoding_name(worst.encoding),
                        version.segment_budget
                    ),
                ));
            }
            if version.healthcare_exempt
                && (worst.encoding != Encoding::Gsm7 || worst.units > 160 || worst.segments > 1)
            {
                out.push(Finding::error(
                    "template.healthcare_exempt.single_segment",
                    format!(
                        "an exempt text must be one GSM-7 segment of at most 160 characters; the longest rendering is {} {} units in {} segments",
                        encoding_name(worst.encoding),
                        worst.units,
                        worst.segments
                    ),
                ));
            }
        }
        Err(e) => out.push(Finding::error(
            "template.body.syntax",
            format!("the body cannot be sized: {e}"),
        )),
    }
    if version.healthcare_exempt && !has_contact(version, &used, &literal) {
        out.push(Finding::error(
            "template.healthcare_exempt.contact",
            "an exempt text must give the provider's contact: a {{help_contact}} placeholder, a phone number or a web address",
        ));
    }

    content_findings(&literal, config, "template", &mut out);
    program_text_findings(version, &used, &literal, &mut out);
    out
}

/// Lints a rendered text of `version`: size, exemption and content again,
/// since values can add words, links and characters.
pub fn lint_rendered(version: &TemplateVersion, body: &str, config: &LintConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let count = segments::count(body);
    if count.characters > config.max_characters {
        out.push(Finding::error(
            "template.rendered.length",
            format!(
                "the rendered text has {} characters; the limit is {}",
                count.characters, config.max_characters
            ),
        ));
    }
    if count.segments > version.segment_budget {
        out.push(Finding::error(
            "template.rendered.segments",
            format!(
                "the rendered text takes {} segments; the budget is {}",
                count.segments, version.segment_budget
            ),
        ));
    }
    if version.healthcare_exempt
        && (count.encoding != Encoding::Gsm7 || count.units > 160 || count.segments > 1)
    {
        out.push(Finding::error(
            "template.rendered.healthcare_exempt",
            "an exempt text must be one GSM-7 segment of at most 160 characters",
        ));
    }
    if version.recurring && !has_opt_out_language(body) {
        out.push(Finding::error(
            "template.rendered.opt_out_language",
            "the rendered text does not say how to opt out",
        ));
    }
    content_findings(body, config, "template.rendered", &mut out);
    out
}

/// Prohibited terms, public shorteners and plain-http links in `text`.
fn content_findings(text: &str, config: &LintConfig, prefix: &str, out: &mut Vec<Finding>) {
    let words = words_of(text);
    let mut found: Vec<&str> = config
        .prohibited_terms
        .iter()
        .filter(|term| contains_phrase(&words, term))
        .map(String::as_str)
        .collect();
    found.dedup();
    if !found.is_empty() {
        let rule = if prefix == "template" {
            "template.prohibited_content"
        } else {
            "template.rendered.prohibited_content"
        };
        out.push(Finding::error(
            rule,
            format!(
                "health detail does not belong in a text; link to the portal instead (found: {})",
                found.join(", ")
            ),
        ));
    }
    for host in link_hosts(text) {
        if config
            .url_shorteners
            .iter()
            .any(|s| host == *s || host.ends_with(&format!(".{s}")))
        {
            let rule = if prefix == "template" {
                "template.url_shortener"
            } else {
                "template.rendered.url_shortener"
            };
            out.push(Finding::error(
                rule,
                format!("public URL shortener {host}: carriers filter these; use the program's own domain"),
            ));
        }
    }
    if text.to_ascii_lowercase().contains("http://") {
        let rule = if prefix == "template" {
            "template.links.https"
        } else {
            "template.rendered.links.https"
        };
        out.push(Finding::error(rule, "links must use https"));
    }
}

/// CTIA content of the program's own texts.
fn program_text_findings(
    version: &TemplateVersion,
    used: &[&str],
    literal: &str,
    out: &mut Vec<Finding>,
) {
    if !PROGRAM_TEXT_PURPOSES.contains(&version.purpose.as_str()) {
        return;
    }
    let lower = literal.to_lowercase();
    let rates = lower.contains("msg & data rates")
        || lower.contains("msg&data rates")
        || lower.contains("message and data rates");
    let frequency = lower.contains("frequency")
        || lower.contains("msgs/")
        || lower.contains("msgs per")
        || used.contains(&"frequency");
    match version.purpose.as_str() {
        "help" => {
            if !has_contact(version, used, literal) {
                out.push(Finding::error(
                    "template.ctia.help",
                    "a HELP reply must give a support contact (phone, email or web address)",
                ));
            }
            if !rates {
                out.push(Finding::error(
                    "template.ctia.help",
                    "a HELP reply must say \"Msg & data rates may apply\"",
                ));
            }
        }
        "stop_confirmation" => {
            if !(lower.contains("unsubscribed")
                || lower.contains("no more messages")
                || lower.contains("no further messages"))
            {
                out.push(Finding::error(
                    "template.ctia.stop_confirmation",
                    "a STOP confirmation must say that no further messages will be sent",
                ));
            }
            if lower.contains("http") || version.class == MessageClass::Marketing {
                out.push(Finding::error(
                    "template.ctia.stop_confirmation",
                    "a STOP confirmation carries no links and no marketing",
                ));
            }
        }
        _ => {
            // opt_in_confirmation
            if !rates || !frequency {
                out.push(Finding::error(
                    "template.ctia.opt_in_confirmation",
                    "an opt-in confirmation must state the message frequency and \"Msg & data rates may apply\"",
                ));
            }
            if !lower.contains("help") {
                out.push(Finding::error(
                    "template.ctia.opt_in_confirmation",
                    "an opt-in confirmation must say how to get help (Reply HELP)",
                ));
            }
        }
    }
}

fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Gsm7 => "GSM-7",
        Encoding::Ucs2 => "UCS-2",
    }
}

/// A program-specific template naming its program in plain words.
fn names_program_literally(version: &TemplateVersion, literal: &str) -> bool {
    version.program != "*"
        && !version.program.is_empty()
        && literal
            .to_lowercase()
            .contains(&version.program.to_lowercase())
}

/// "Reply STOP", "Text STOP", "STOP to opt out/end/cancel/unsubscribe/quit".
pub fn has_opt_out_language(text: &str) -> bool {
    let words = words_of(text);
    words.windows(2).any(|w| match w {
        [a, b] => {
            (matches!(a.as_str(), "reply" | "text" | "send") && b == "stop")
                || (a == "stop"
                    && matches!(
                        b.as_str(),
                        "to" | "opt" | "end" | "cancel" | "unsubscribe" | "quit"
                    ))
        }
        _ => false,
    })
}

/// A contact placeholder, a phone number or a web address.
fn has_contact(version: &TemplateVersion, used: &[&str], literal: &str) -> bool {
    let placeholder = used.iter().any(|name| {
        matches!(*name, "help_contact" | "provider_contact" | "contact")
            && version
                .variables
                .iter()
                .any(|v| v.name == *name && v.data_class == DataClass::Identifier)
    });
    let digits = literal.chars().filter(char::is_ascii_digit).count() >= 10;
    let web = !link_hosts(literal).is_empty() || literal.contains('@');
    placeholder || digits || web
}

/// Lower-case words (letters and digits) after NFKC folding.
fn words_of(text: &str) -> Vec<String> {
    normalize(text)
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

fn contains_phrase(words: &[String], phrase: &str) -> bool {
    let needle = words_of(phrase);
    !needle.is_empty() && words.windows(needle.len()).any(|w| w == needle.as_slice())
}

/// Hosts of the links in `text`: `https://host/...`, `http://host` or a bare
/// `host.tld/path`.
fn link_hosts(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter_map(|token| {
            let lower = token.to_ascii_lowercase();
            let rest = lower
                .strip_prefix("https://")
                .or_else(|| lower.strip_prefix("http://"))
                .map(str::to_owned)
                .or_else(|| {
                    // A bare domain with a path, e.g. bit.ly/abc.
                    let host = lower.split('/').next().unwrap_or_default();
                    (lower.contains('/') && host.contains('.')).then(|| lower.clone())
                })?;
            let host: String = rest
                .split(['/', '?', '#'])
                .next()
                .unwrap_or_default()
                .trim_end_matches(['.', ',', ';', ')'])
                .to_owned();
            (!host.is_empty() && host.contains('.')).then_some(host)
        })
        .collect()
}
