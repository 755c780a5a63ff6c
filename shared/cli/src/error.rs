//! The CLI's one error type. Messages are lower case. They may quote what the
//! operator typed (a zone or state name, a time) because they go back to that
//! operator only; they are never logged.

use thiserror::Error;

/// Everything that can make one input fail.
#[derive(Debug, Error)]
pub enum CliError {
    /// A line or file that is not the JSON the subcommand expects.
    #[error("invalid json: {0}")]
    Json(#[from] serde_json::Error),
    /// A JSON value of the wrong kind, e.g. an array where an object belongs.
    #[error("expected {0}")]
    Shape(&'static str),
    /// A line that is not UTF-8.
    #[error("input is not utf-8")]
    NotUtf8,
    /// Input that the policy engine rejected.
    #[error("{0}")]
    Policy(#[from] optline_policy::PolicyError),
    /// A time zone name that is not in the IANA database.
    #[error("unknown time zone {0:?}")]
    UnknownZone(String),
    /// A state code that is not a US state, DC or territory.
    #[error("unknown us state code {0:?}")]
    UnknownState(String),
    /// A message class other than transactional, informational, marketing.
    #[error("unknown message class {0:?}: expected transactional, informational or marketing")]
    UnknownClass(String),
    /// A time that is not RFC 3339.
    #[error("invalid time {0:?}: expected rfc 3339, e.g. 2026-11-29T15:00:00Z")]
    InvalidTime(String),
    /// A template that cannot be rendered or read.
    #[error("template: {0}")]
    Template(String),
    /// A file or stdin that could not be read.
    #[error("cannot read {what}: {source}")]
    Read {
        /// What was being read (a path or `stdin`).
        what: String,
        /// Why.
        source: std::io::Error,
    },
}
