//! The ports' error type. Messages never contain a phone number or a body.

use thiserror::Error;

/// What a store, queue or sender adapter can fail with.
#[derive(Debug, Error)]
pub enum PortError {
    /// A conditional write lost (the item exists or changed).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A stored item could not be read back into a record.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The backing service failed; the operation may be retried.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The input is not acceptable.
    #[error("invalid input: {0}")]
    Invalid(String),
}
