//! Frequency caps over rolling windows (compliance-rules §7).
//!
//! The rules are data: `shared/policy/data/caps.json`, embedded with
//! `include_str!` and parsed once. Rule ids:
//!
//! - `caps.state.FL`, `caps.state.OK`, `caps.state.MD`: at most 3 messages
//!   on the same subject per rolling 24 hours when the recipient may be in
//!   that state (Fla. Stat. 501.059(8)(a); Okla. Stat. tit. 15, 775C.4;
//!   Md. Code, Com. Law 14-4503; secondary sources).
//! - `caps.fcc_healthcare_exempt`: a message relying on the FCC's 2015
//!   healthcare exemption (FCC 15-72) is limited to 1 per rolling 24 hours
//!   and 3 per rolling 7 days per provider, counting only exempt sends.
//! - `caps.workflow_cadence`: at most `workflow_limit` sends in one workflow
//!   instance, ever (the seed's reminder, confirmation prompt, follow-up).
//!
//! Window boundary: a window of length `W` ending at `now` is
//! `(now - W, now]`. A send exactly `W` ago no longer counts, so a message
//! capped by it may go at exactly `oldest + W`. Sends dated after `now`
//! (clock skew in the history) are ignored.

use std::fmt::Write as _;
use std::sync::OnceLock;

use smallvec::SmallVec;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::{CatalogRow, PolicyError, RuleOutcome, UsState, Verdict};

/// The version of `data/caps.json` this build embeds. A test checks that it
/// equals the table's own `version`.
pub const CAPS_VERSION: &str = "2026-12-06";

/// Rule id of the fail-closed outcome when the embedded table is invalid.
pub const TABLE_RULE_ID: &str = "caps.table";

static TABLE_JSON: &str = include_str!("../data/caps.json");

/// One message already sent to the recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriorSend {
    /// When it was sent.
    pub at: DateTime<Utc>,
    /// What it was about (an episode or topic id), for same-subject caps.
    pub subject: String,
    /// The program or provider that sent it.
    pub provider: String,
    /// Whether it relied on the FCC healthcare exemption.
    #[serde(default)]
    pub healthcare_exempt: bool,
    /// The workflow instance it belonged to, if any.
    #[serde(default)]
    pub workflow: Option<String>,
}

/// The message about to be sent.
#[derive(Debug, Clone, Copy)]
pub struct CapRequest<'a> {
    /// What it is about (an episode or topic id).
    pub subject: &'a str,
    /// The program or provider sending it.
    pub provider: &'a str,
    /// Whether it relies on the FCC healthcare exemption.
    pub healthcare_exempt: bool,
    /// Every state the recipient may be in.
    pub states: &'a [UsState],
    /// The workflow instance it belongs to, if any.
    pub workflow: Option<&'a str>,
    /// The workflow's cadence: at most this many sends per instance.
    pub workflow_limit: Option<u32>,
}

/// The caps' verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapResult {
    /// Whether every cap allows one more send now.
    pub allowed: bool,
    /// When not allowed by a rolling cap: the instant the last blocking send
    /// leaves its window. `None` when allowed, or when a cap that never
    /// resets (workflow cadence) blocks.
    pub next_allowed: Option<DateTime<Utc>>,
    /// One outcome per rule in the table.
    pub outcomes: Vec<RuleOutcome>,
}

/// Checks every cap for one send at `now`, given the recipient's history.
///
/// Pure and deterministic; the history may be in any order.
pub fn check(req: &CapRequest<'_>, history: &[PriorSend], now: DateTime<Utc>) -> CapResult {
    check_with(req, history, now, Vec::new())
}

/// [`check`], appending its outcomes to `outcomes` (returned in the result),
/// so that a caller collecting every rule's outcome allocates one list.
pub fn check_with(
    req: &CapRequest<'_>,
    history: &[PriorSend],
    now: DateTime<Utc>,
    mut outcomes: Vec<RuleOutcome>,
) -> CapResult {
    let table = match table() {
        Ok(t) => t,
        Err(e) => {
            outcomes.push(RuleOutcome::new(
                TABLE_RULE_ID,
                CAPS_VERSION,
                Verdict::Fail,
                format!("{e}; fail closed"),
            ));
            return CapResult {
                allowed: false,
                next_allowed: None,
                outcomes,
            };
        }
    };
    let version = table.version.as_str();
    let today = now.date_naive();
    let mut allowed = true;
    let mut never = false;
    let mut next: Option<DateTime<Utc>> = None;
    outcomes.reserve(table.rules.len());

    for rule in &table.rules {
        if today < rule.effective_from {
            outcomes.push(RuleOutcome::new(
                rule.id.as_str(),
                version,
                Verdict::NotApplicable,
                format!("not in force before {}", rule.effective_from),
            ));
            continue;
        }
        if let Some(until) = rule.effective_until.filter(|until| today >= *until) {
            outcomes.push(RuleOutcome::new(
                rule.id.as_str(),
                version,
                Verdict::NotApplicable,
                format!("not in force from {until}"),
            ));
            continue;
        }
        let outcome = match rule.kind {
            Kind::Subject => {
                let in_state = rule
                    .states
                    .iter()
                    .any(|s| req.states.iter().any(|r| r.code() == s.as_str()));
                if in_state {
                    let times = counted(history, now, |p| p.subject == req.subject);
                    rolling(rule, &times, now, "on this subject")
                } else {
                    Verdict::NotApplicable.with("the recipient is not in this state")
                }
            }
            Kind::ProviderExempt => {
                if req.healthcare_exempt {
                    let times = counted(history, now, |p| {
                        p.healthcare_exempt && p.provider == req.provider
                    });
                    rolling(rule, &times, now, "exempt sends from this provider")
                } else {
                    Verdict::NotApplicable.with("the message does not rely on the exemption")
                }
            }
            Kind::Workflow => match (req.workflow, req.workflow_limit) {
                (Some(w), Some(limit)) => {
                    let sent = history
                        .iter()
                        .filter(|p| p.at <= now && p.workflow.as_deref() == Some(w))
                        .count();
                    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                    if sent < limit {
                        Verdict::Pass.with(format!("{sent} of {limit} sends in this workflow"))
                    } else {
                        Verdict::Fail
                            .with(format!(
                                "{sent} sends in this workflow reach its limit of {limit}"
                            ))
                            .never()
                    }
                }
                _ => Verdict::NotApplicable.with("no workflow cadence given"),
            },
        };
        match outcome.verdict {
            Verdict::Defer | Verdict::Fail => allowed = false,
            Verdict::Pass | Verdict::NotApplicable => {}
        }
        if outcome.never {
            never = true;
        }
        if let Some(at) = outcome.until {
            next = Some(next.map_or(at, |n| n.max(at)));
        }
        outcomes.push(RuleOutcome::new(
            rule.id.as_str(),
            version,
            outcome.verdict,
            outcome.detail,
        ));
    }
    CapResult {
        allowed,
        next_allowed: if allowed || never { None } else { next },
        outcomes,
    }
}

/// The times of the prior sends that match, not after `now`, oldest first.
fn counted(
    history: &[PriorSend],
    now: DateTime<Utc>,
    matches: impl Fn(&PriorSend) -> bool,
) -> SmallVec<[DateTime<Utc>; 16]> {
    let mut times: SmallVec<[DateTime<Utc>; 16]> = history
        .iter()
        .filter(|p| p.at <= now && matches(p))
        .map(|p| p.at)
        .collect();
    times.sort_unstable();
    times
}

/// Applies every limit of a rolling rule to sorted send times.
fn rolling(rule: &CapRule, times: &[DateTime<Utc>], now: DateTime<Utc>, what: &str) -> Outcome {
    let mut until: Option<DateTime<Utc>> = None;
    let mut detail = String::with_capacity(48 * rule.limits.len());
    for limit in &rule.limits {
        if !detail.is_empty() {
            detail.push_str("; ");
        }
        let window = Duration::hours(i64::from(limit.window_hours));
        let start = now - window;
        // Sorted, so the sends inside (now - W, now] are a suffix.
        let first_inside = times.partition_point(|t| *t <= start);
        let inside = times.get(first_inside..).unwrap_or_default();
        let max = usize::try_from(limit.max).unwrap_or(usize::MAX);
        let hours = limit.window_hours;
        if inside.len() < max {
            let _ = write!(
                detail,
                "{} of {max} {what} in the last {hours} h",
                inside.len()
            );
        } else {
            // One more send is allowed once only max - 1 remain inside:
            // when the send at index len - max leaves the window.
            let blocking = inside.get(inside.len() - max).copied();
            let at = blocking.map(|b| b + window);
            if let Some(at) = at {
                until = Some(until.map_or(at, |u| u.max(at)));
            }
            let _ = write!(
                detail,
                "{} {what} in the last {hours} h reach the limit of {max}",
                inside.len()
            );
        }
    }
    match until {
        None => Verdict::Pass.with(detail),
        Some(at) => Outcome {
            verdict: Verdict::Defer,
            detail: detail.into(),
            until: Some(at),
            never: false,
        },
    }
}

/// One rule's conclusion before it becomes a [`RuleOutcome`].
struct Outcome {
    verdict: Verdict,
    detail: std::borrow::Cow<'static, str>,
    until: Option<DateTime<Utc>>,
    never: bool,
}

impl Outcome {
    fn never(mut self) -> Self {
        self.never = true;
        self
    }
}

trait VerdictExt {
    fn with(self, detail: impl Into<std::borrow::Cow<'static, str>>) -> Outcome;
}

impl VerdictExt for Verdict {
    fn with(self, detail: impl Into<std::borrow::Cow<'static, str>>) -> Outcome {
        Outcome {
            verdict: self,
            detail: detail.into(),
            until: None,
            never: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Subject,
    ProviderExempt,
    Workflow,
}

#[derive(Debug, Clone, Copy, Deserialize)]
struct Limit {
    max: u32,
    window_hours: u32,
}

#[derive(Debug, Deserialize)]
struct CapRule {
    id: String,
    kind: Kind,
    #[serde(default, deserialize_with = "null_as_empty")]
    states: Vec<String>,
    limits: Vec<Limit>,
    effective_from: NaiveDate,
    #[serde(default)]
    effective_until: Option<NaiveDate>,
    #[serde(default)]
    effective_from_basis: String,
    source: String,
    #[serde(default)]
    jurisdiction: String,
    #[serde(default)]
    source_quality: String,
    #[serde(default)]
    note: Option<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Deserialize)]
struct Table {
    table: String,
    version: String,
    rules: Vec<CapRule>,
}

fn table_error(reason: impl Into<String>) -> PolicyError {
    PolicyError::RuleTable {
        table: "caps",
        reason: reason.into(),
    }
}

fn parse_table(json: &str) -> Result<Table, PolicyError> {
    let t: Table = serde_json::from_str(json).map_err(|e| table_error(e.to_string()))?;
    if t.table != "caps" {
        return Err(table_error("the table field is not caps"));
    }
    for (i, r) in t.rules.iter().enumerate() {
        if r.source.trim().is_empty() {
            return Err(table_error(format!("rule {} has no source", r.id)));
        }
        if t.rules.iter().take(i).any(|x| x.id == r.id) {
            return Err(table_error(format!("rule {} appears twice", r.id)));
        }
        if r.limits.iter().any(|l| l.max == 0 || l.window_hours == 0) {
            return Err(table_error(format!("rule {} has an empty limit", r.id)));
        }
        let needs_limits = r.kind != Kind::Workflow;
        if needs_limits == r.limits.is_empty() {
            return Err(table_error(format!(
                "rule {} must have limits exactly when it is a rolling cap",
                r.id
            )));
        }
        if r.kind == Kind::Subject && r.states.iter().any(|s| UsState::parse(s).is_err()) {
            return Err(table_error(format!("rule {} has an invalid state", r.id)));
        }
    }
    Ok(t)
}

fn table() -> Result<&'static Table, PolicyError> {
    static TABLE: OnceLock<Result<Table, PolicyError>> = OnceLock::new();
    TABLE
        .get_or_init(|| parse_table(TABLE_JSON))
        .as_ref()
        .map_err(Clone::clone)
}

/// The embedded table's version, for a test that checks [`CAPS_VERSION`]
/// matches it.
///
/// # Errors
///
/// [`PolicyError::RuleTable`] when the embedded table does not parse.
pub fn table_version() -> Result<&'static str, PolicyError> {
    table().map(|t| t.version.as_str())
}

/// The ids of every rule in the embedded table, in table order.
///
/// # Errors
///
/// [`PolicyError::RuleTable`] when the embedded table does not parse.
pub fn rule_ids() -> Result<Vec<&'static str>, PolicyError> {
    table().map(|t| t.rules.iter().map(|r| r.id.as_str()).collect())
}

/// Every row of the table as a [`CatalogRow`], in table order, for
/// `optline rules`.
///
/// # Errors
///
/// [`PolicyError::RuleTable`] when the embedded table does not parse.
pub fn catalog() -> Result<Vec<CatalogRow>, PolicyError> {
    let table = table()?;
    Ok(table
        .rules
        .iter()
        .map(|r| {
            let limits = r
                .limits
                .iter()
                .map(|l| format!("at most {} in {} hours", l.max, l.window_hours))
                .collect::<Vec<_>>()
                .join(" and ");
            let summary = match r.kind {
                Kind::Subject => format!("{limits} on the same subject (rolling)"),
                Kind::ProviderExempt => {
                    format!("{limits} per provider for messages relying on the healthcare exemption (rolling)")
                }
                Kind::Workflow => "each workflow's own limit (one reminder, one prompt, one follow-up)".to_owned(),
            };
            CatalogRow {
                table: "caps",
                version: table.version.clone(),
                id: r.id.clone(),
                jurisdiction: r.jurisdiction.clone(),
                states: r.states.clone(),
                classes: None,
                summary,
                effective_from: r.effective_from,
                effective_from_basis: r.effective_from_basis.clone(),
                effective_until: r.effective_until,
                source: r.source.clone(),
                source_quality: r.source_quality.clone(),
                note: r.note.clone(),
            }
        })
        .collect())
}

/// Parses a caps table from JSON and reports what is wrong with it.
///
/// # Errors
///
/// [`PolicyError::RuleTable`] with the reason.
pub fn validate_table(json: &str) -> Result<(), PolicyError> {
    parse_table(json).map(|_| ())
}
