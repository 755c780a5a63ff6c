//! # sweep
//!
//! The scheduled sweep: an adapter over [`optline_episodes::sweep`], which
//! finds due steps through the due index, applies each program's audience
//! rules and hands the winners to the dispatch queue.

pub use optline_episodes::sweep::{sweep, Deps, SweepReport, SWEEP_LIMIT};

/// A sweep that could not run, as Lambda records it (`errorType`
/// `SweepFailed`); the next scheduled run tries again.
#[derive(Debug, thiserror::Error)]
#[error("sweep failed: {0}")]
pub struct SweepFailed(#[from] pub optline_ports::PortError);

impl From<SweepFailed> for lambda_runtime::Diagnostic {
    fn from(failed: SweepFailed) -> Self {
        Self {
            error_type: "SweepFailed".to_owned(),
            error_message: failed.to_string(),
        }
    }
}

/// One scheduled run at `now`.
pub async fn handle(
    deps: &Deps,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<SweepReport, SweepFailed> {
    Ok(sweep(deps, now).await?)
}
