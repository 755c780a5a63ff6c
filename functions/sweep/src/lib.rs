//! # sweep
//!
//! The scheduled sweep: an adapter over [`optline_episodes::sweep`], which
//! finds due steps through the due index, applies each program's audience
//! rules and hands the winners to the dispatch queue. Each run reports its
//! counts, and how long the oldest step it left due has waited, as
//! CloudWatch metrics ([`metrics`]).

pub mod metrics;

pub use metrics::{oldest_due_step_age, SweepMetrics};
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

/// One scheduled run at `now`, then its metrics. A run that failed reports
/// none: the stale-due-steps alarm counts a missing report as stale.
pub async fn handle(
    deps: &Deps,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<SweepReport, SweepFailed> {
    let report = sweep(deps, now).await?;
    // The run's work is done whatever this read answers: an age that
    // cannot be read is left out (missing, never a reassuring 0).
    let oldest = match oldest_due_step_age(deps.store.as_ref(), now).await {
        Ok(age) => Some(age),
        Err(e) => {
            lambda_runtime::tracing::warn!(error = %e, "oldest due step not read; its age is not reported");
            None
        }
    };
    SweepMetrics::new(&report, oldest).emit(now);
    Ok(report)
}
