//! `optline evaluate`: the full send decision for a request, with every rule
//! consulted.

use std::io::Read;
use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args as ClapArgs;
use optline_policy::decision::{evaluate, Decision, PolicyState, SendRequest};
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::parse;
use crate::table::{rule_table, Fields};

/// Explain the decision (send, defer or suppress) for a request, its consent
/// and send history at an instant, rule by rule.
#[derive(Debug, ClapArgs)]
#[command(after_help = "The input is one JSON object: \
{\"request\": <SendRequest>, \"state\": <PolicyState>, \"now\": \"2026-11-24T15:00:00Z\"} \
(state and now optional). FILE may be pretty-printed JSON; \"-\" reads one object from stdin. \
Without FILE, reads JSON lines from stdin. See docs/cli.md and shared/cli/examples/.")]
pub struct Args {
    /// A JSON file with one request, or `-` for stdin. Without it, read
    /// JSON lines from stdin.
    pub file: Option<PathBuf>,
    /// Print the JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One request to decide.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The message.
    request: SendRequest,
    /// Consent events and send history; empty when left out.
    #[serde(default)]
    state: PolicyState,
    /// The instant to decide at; the clock when left out.
    #[serde(default)]
    now: Option<String>,
    /// A free-text note for people reading the file; ignored.
    #[serde(default)]
    #[allow(dead_code, reason = "read by people, not by the CLI")]
    note: Option<String>,
}

/// The answer: the policy crate's [`Decision`] and the instant decided at.
#[derive(Debug, Serialize)]
pub struct Output {
    #[serde(flatten)]
    decision: Decision,
    now: DateTime<Utc>,
}

/// Decides one input.
pub fn answer(input: Input) -> Result<Output, CliError> {
    let now = match input.now.as_deref() {
        Some(text) => parse::time(text)?,
        None => parse::now(),
    };
    Ok(Output {
        decision: evaluate(&input.request, &input.state, now),
        now,
    })
}

/// One JSON line (or a whole file) to an answer.
pub fn answer_line(text: &str) -> Result<Output, CliError> {
    answer(serde_json::from_str(text)?)
}

/// Reads the one JSON object in `file` (`-` for stdin).
pub fn read_input(file: &std::path::Path) -> Result<String, CliError> {
    if file.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|source| CliError::Read {
                what: "stdin".to_owned(),
                source,
            })?;
        Ok(text)
    } else {
        std::fs::read_to_string(file).map_err(|source| CliError::Read {
            what: file.display().to_string(),
            source,
        })
    }
}

/// The human-readable form.
pub fn human(out: &Output) -> String {
    let mut fields = Fields::new();
    fields.add("decision", out.decision.kind());
    match &out.decision {
        Decision::Send {
            legal_basis,
            consent_event_id,
            ..
        } => {
            fields
                .add("legal basis", legal_basis.as_str())
                .add("consent event", consent_event_id.as_deref().unwrap_or("-"));
        }
        Decision::Defer { until, .. } => {
            fields.add(
                "until",
                until.map_or_else(
                    || "unknown (no time to retry is known)".to_owned(),
                    |t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                ),
            );
        }
        Decision::Suppress { reasons, .. } => {
            fields.add("reasons", reasons.join(", "));
        }
    }
    fields.add("now", out.now.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    format!("{}\n{}", fields.render(), rule_table(out.decision.rules()))
}
