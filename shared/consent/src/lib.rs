//! # optline-consent
//!
//! Consent: who may be texted, about what, on what evidence.
//!
//! - [`contacts`]: contacts, their numbers normalized to E.164 at the edge.
//! - [`record`]: grants and revocations with their evidence and the exact
//!   disclosure text, per-category preferences, revocations received off
//!   SMS (phone, portal, staff) with their 10-business-day deadline. Each
//!   call reads the contact's ledger, decides, and commits the events, their
//!   audit records and any revocation request in one transaction; a call
//!   retried with its idempotency key (an event id, or the
//!   `Idempotency-Key` of the request) ends where the first one did, and a
//!   conflicting reuse of a key is refused.
//! - [`casework`]: the review queue and callbacks people resolve, each
//!   answer audited with the person's verified identity.
//! - [`ehr`]: contacts kept in step with the EHR's demographics; a
//!   changed number is a new number.
//! - [`proof`]: proof of consent and the audit chain.
//! - [`reconcile`]: drift between the ledger and a carrier's opt-out list,
//!   fixed toward suppression.

pub mod casework;
pub mod contacts;
pub mod ehr;
pub mod proof;
pub mod reconcile;
pub mod record;

use optline_ports::{PortError, Store};

/// What the consent context needs.
#[derive(Clone, Copy)]
pub struct Consent<'a> {
    /// The table.
    pub store: &'a dyn Store,
    /// The program a contact joins when its request names none.
    pub default_program: &'a str,
}

impl std::fmt::Debug for Consent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consent")
            .field("default_program", &self.default_program)
            .finish_non_exhaustive()
    }
}

/// Why a consent call was refused. Nothing was written. Messages never
/// hold a number or a name.
#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    /// Malformed input.
    #[error("{0}")]
    Invalid(String),
    /// Well formed, but not acceptable.
    #[error("{0}")]
    Unprocessable(String),
    /// No such contact or request.
    #[error("{0}")]
    NotFound(&'static str),
    /// An id or idempotency key already stands for something else.
    #[error("{0}")]
    Conflict(String),
    /// The records kept changing under the call; retry.
    #[error("the contact's records kept changing; retry")]
    Busy,
    /// Storage failed.
    #[error(transparent)]
    Port(#[from] PortError),
}
