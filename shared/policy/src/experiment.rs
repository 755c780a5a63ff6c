//! A/B(/n) experiments on SMS templates: who gets which wording, how each
//! wording is doing, and when one must stop because it drives opt-outs up.
//!
//! Pure like the rest of this crate: the same counts always give the same
//! answer, so a report can be recomputed and audited later.
//!
//! - [`assign`](mod@assign): deterministic assignment of a contact to a holdout, an arm
//!   (one template wording), or no arm. A hash of the experiment and contact
//!   ids, so no state and no randomness: a contact keeps their arm across
//!   sends, deployments and machines.
//! - [`beta`]: the Beta distribution's special functions (log-gamma, the
//!   regularized incomplete beta and its inverse) the results rest on.
//! - [`results`]: the primary metric (for example, the share of reminders
//!   confirmed) per arm: the observed rate, a credible interval, the
//!   probability that the arm is the best one, and a call (not enough data,
//!   leading, winner).
//! - [`guardrail`](mod@guardrail): the opt-out guardrail, an always-valid sequential test
//!   (mSPRT) that may be checked after every batch of sends and stops an arm
//!   whose opt-out rate is credibly higher than the others'.
//!
//! The results are Bayesian (a uniform prior on each arm's rate), so they read
//! as plain probabilities: "a 97% chance that wording B confirms more
//! appointments than A". The guardrail is frequentist on purpose: it bounds
//! how often an arm that is no worse gets stopped by mistake, whatever the
//! number of looks.

pub mod assign;
pub mod beta;
pub mod guardrail;
pub mod results;

pub use assign::{assign, Assignment};
pub use guardrail::{guardrail, msprt, Guardrail, GuardrailVerdict};
pub use results::{arm_results, call, credible_interval, probability_best, ArmResult, Call};
