//! # audit-anchor
//!
//! Scheduled: an adapter over [`optline_audit::anchor`], which signs a
//! Merkle root over every audit chain's head with the KMS key and writes
//! it, with the heads, to the anchor bucket (Object Lock, compliance mode).

use chrono::{DateTime, Duration, Utc};
use optline_audit::{anchor, AnchorReport, AuditError};
use optline_aws::{DynamoStore, KmsSigner, S3Anchors};

/// What the function needs.
#[derive(Debug, Clone)]
pub struct Deps {
    /// The table (the chain heads).
    pub store: DynamoStore,
    /// The signing key.
    pub signer: KmsSigner,
    /// The anchor bucket.
    pub anchors: S3Anchors,
    /// How long an anchor stays locked.
    pub retention: Duration,
}

/// A run that could not anchor, as Lambda records it (`errorType`
/// `AnchorFailed`); the next scheduled run tries again.
#[derive(Debug, thiserror::Error)]
#[error("anchor failed: {0}")]
pub struct AnchorFailed(#[from] pub AuditError);

impl From<AnchorFailed> for lambda_runtime::Diagnostic {
    fn from(failed: AnchorFailed) -> Self {
        Self {
            error_type: "AnchorFailed".to_owned(),
            error_message: failed.to_string(),
        }
    }
}

/// One scheduled run at `now`.
pub async fn handle(deps: &Deps, now: DateTime<Utc>) -> Result<AnchorReport, AnchorFailed> {
    Ok(anchor(
        &deps.store,
        &deps.signer,
        &deps.anchors,
        now,
        now + deps.retention,
    )
    .await?)
}
