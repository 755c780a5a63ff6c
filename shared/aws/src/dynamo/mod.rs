//! The DynamoDB adapter: one table, keyed by `pk` / `sk`, with a sparse
//! global secondary index `due` (`due_pk`, `due_sk`) holding only the
//! steps a sweep must look at. One module per port; the item encoding is
//! written once ([`item`]), and every decision's writes go through one
//! transaction ([`commit`]). The item layout is documented in
//! `docs/data-model.md`.

mod audit;
mod casework;
mod changes;
mod commit;
mod consent;
mod contacts;
mod experiments;
mod io;
mod item;
mod lane;
mod pacing;
mod pauses;
mod reads;
mod rollups;
mod state;
mod steps;
mod templates;
mod update;

use aws_sdk_dynamodb::Client;
use optline_ports::{PortError, StepId};

pub use commit::MARKER_DAYS;
pub use item::due_shards;
pub use steps::{QUEUE_LEASE, SENDING_LEASE};

/// The due-index partition of a step: a stable hash of its id.
pub fn due_shard(id: &StepId) -> u32 {
    item::key::due_shard(id)
}

/// The shortest retention a deployment may configure for send records:
/// six years, the HIPAA documentation retention (45 CFR 164.316(b)(2)),
/// which also covers the TCPA's four-year limitation period (28 U.S.C. 1658).
pub const MIN_RETENTION_DAYS: u32 = 2190;

/// The table adapter.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// How long ended steps, send records and carrier-id mappings are kept
    /// (DynamoDB TTL); `None` keeps them. Consent events, disclosure texts,
    /// templates and audit records never get a TTL.
    retention: Option<chrono::Duration>,
    /// The key the audit chain's links are made with (Secrets Manager);
    /// `None` makes plain SHA-256 links.
    audit_key: Option<optline_ports::AuditKey>,
}

impl DynamoStore {
    /// An adapter over `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retention: None,
            audit_key: None,
        }
    }

    /// Makes the audit chain's links with `key` (HMAC-SHA256).
    pub fn with_audit_key(mut self, key: Option<optline_ports::AuditKey>) -> Self {
        self.audit_key = key;
        self
    }

    /// The audit key in use, if any.
    pub fn audit_key(&self) -> Option<&optline_ports::AuditKey> {
        self.audit_key.as_ref()
    }

    /// Expires ended steps, send records and carrier-id mappings `days`
    /// after they end. Refused below [`MIN_RETENTION_DAYS`].
    pub fn with_retention(mut self, days: Option<u32>) -> Result<Self, PortError> {
        if let Some(days) = days {
            if days < MIN_RETENTION_DAYS {
                return Err(PortError::Invalid(format!(
                    "retention must be at least {MIN_RETENTION_DAYS} days (six years)"
                )));
            }
            self.retention = Some(chrono::Duration::days(i64::from(days)));
        }
        Ok(self)
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }
}
