//! The policy crate's one error type. Messages are lower case and never
//! contain a phone number, a message body or any other PHI.

use thiserror::Error;

/// Everything that can go wrong inside the engine. A decision that meets one
/// of these fails closed: the message is suppressed with the error as reason.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// A state code that is not two ASCII letters.
    #[error("invalid us state code")]
    InvalidState,
    /// A time zone name that is not in the IANA database.
    #[error("unknown time zone")]
    UnknownTimeZone,
    /// A phone number that could not be parsed or is not valid.
    #[error("invalid phone number: {0}")]
    InvalidPhone(String),
    /// A rule table that could not be loaded.
    #[error("rule table {table} is invalid: {reason}")]
    RuleTable {
        /// Which table.
        table: &'static str,
        /// Why it is invalid.
        reason: String,
    },
    /// A request that lacks something the engine needs to decide.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}
