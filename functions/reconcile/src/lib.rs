//! # reconcile
//!
//! The daily reconciliation: an adapter over
//! [`optline_consent::reconcile`], which records in the ledger each number
//! the carrier's opt-out list holds (Amazon SNS `ListPhoneNumbersOptedOut`)
//! that the ledger still treats as textable. Each run also reports the open
//! revocation requests, and those past their deadline, as CloudWatch
//! metrics ([`metrics`]).

pub mod metrics;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use optline_ports::{CarrierOptOutList, PortError, Store};

pub use metrics::{ReconcileMetrics, RevocationCounts};
pub use optline_consent::reconcile::ReconcileReport;

/// What reconcile needs.
#[derive(Clone)]
pub struct Deps {
    /// The table.
    pub store: Arc<dyn Store>,
    /// The carrier's opt-out list.
    pub carrier: Arc<dyn CarrierOptOutList>,
    /// Program ids to check.
    pub programs: Vec<String>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("programs", &self.programs)
            .finish_non_exhaustive()
    }
}

/// A run that could not finish, as Lambda records it (`errorType`
/// `ReconcileFailed`); the numbers fixed so far stay fixed, and the next
/// run goes on from there.
#[derive(Debug, thiserror::Error)]
#[error("reconcile failed: {0}")]
pub struct ReconcileFailed(#[from] pub PortError);

impl From<ReconcileFailed> for lambda_runtime::Diagnostic {
    fn from(failed: ReconcileFailed) -> Self {
        Self {
            error_type: "ReconcileFailed".to_owned(),
            error_message: failed.to_string(),
        }
    }
}

/// One reconciliation at `now`.
pub async fn reconcile(
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<ReconcileReport, ReconcileFailed> {
    Ok(optline_consent::reconcile::reconcile(
        deps.store.as_ref(),
        deps.carrier.as_ref(),
        &deps.programs,
        now,
    )
    .await?)
}

/// The scheduled run at `now`: the reconciliation, and the run's metrics.
/// The revocation requests are counted apart from the carrier's list, so a
/// list that cannot be read never hides a deadline passing; either failure
/// fails the run (Lambda records it, and its retries end in the async
/// failure queue, which an alarm watches).
pub async fn handle(deps: &Deps, now: DateTime<Utc>) -> Result<ReconcileReport, ReconcileFailed> {
    let revocations = RevocationCounts::read(deps.store.as_ref(), now).await;
    let report = reconcile(deps, now).await;
    ReconcileMetrics {
        revocations: revocations.as_ref().ok().copied(),
        drift_fixed: report
            .as_ref()
            .ok()
            .map(|r| u64::try_from(r.fixed.len()).unwrap_or(u64::MAX)),
    }
    .emit(now);
    let report = report?;
    revocations?;
    Ok(report)
}
