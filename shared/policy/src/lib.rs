//! # optline-policy
//!
//! The pure compliance engine behind every send and every suppression in
//! optline. It has no I/O: no clock (`now` is an argument), no environment, no
//! network, no async runtime. Every rule is a named, versioned entry whose
//! source is cited in its module docs and in `docs/rules.md`.
//!
//! - [`classify`]: inbound reply classification (opt-out, help, opt-in,
//!   confirm, reschedule, other) with a tier (exact, clear, doubtful).
//! - [`segments`]: GSM-7 / UCS-2 detection, segment counts and exact splits.
//! - [`phone`]: E.164 parsing and NANP area-code time zones.
//! - [`quiet_hours`]: federal and state calling windows in every candidate zone.
//! - [`caps`]: rolling-window frequency caps.
//! - [`consent`]: the consent ledger's evaluation (latest event wins).
//! - [`decision`]: `evaluate(request, state, now) -> Decision`.
//! - [`audience`]: the sweep's segment rules (purpose, consent scope,
//!   responders, urgency band, minors, region).
//! - [`template`]: approved, versioned templates with typed variables.
//! - [`experiment`]: A/B(/n) template experiments: deterministic assignment,
//!   Beta-Binomial results and the opt-out guardrail (mSPRT).

pub mod audience;
pub mod caps;
pub mod classify;
pub mod consent;
pub mod decision;
mod error;
pub mod experiment;
pub mod phone;
pub mod quiet_hours;
mod rule;
pub mod segments;
pub mod template;

pub use error::PolicyError;
pub use rule::{CatalogRow, MessageClass, RuleOutcome, UsState, Verdict, US_STATE_CODES};
