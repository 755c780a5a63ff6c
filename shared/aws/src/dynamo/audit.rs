//! The per-contact, hash-chained audit trail.

use async_trait::async_trait;
use optline_ports::{
    AuditRecord, AuditTrail, ChainRead, Commit, Committed, Committer, ContactId, NewAuditRecord,
    PortError, Write, COMMIT_ATTEMPTS,
};

use super::item::{from_item, key};
use super::DynamoStore;

#[async_trait]
impl AuditTrail for DynamoStore {
    async fn append_audit(&self, record: NewAuditRecord) -> Result<AuditRecord, PortError> {
        // The head is read from the subject's state item; the append is
        // conditional on it, so concurrent writers never fork the chain.
        for _ in 0..COMMIT_ATTEMPTS {
            let head = self.chain_head(&record.contact_id).await?;
            let mut commit = Commit::default();
            commit.push(Write::Audit {
                chain: ChainRead {
                    contact: record.contact_id.clone(),
                    head,
                },
                records: vec![record.clone()],
            });
            if let Committed::Done(mut written) = self.commit(commit).await? {
                if let Some(full) = written.pop() {
                    return Ok(full);
                }
            }
        }
        Err(PortError::Conflict(
            "append audit: the chain head kept moving".to_owned(),
        ))
    }

    async fn audit_chain(&self, contact: &ContactId) -> Result<Vec<AuditRecord>, PortError> {
        let items = self.query_prefix(&key::audit(contact), "REC#").await?;
        items.iter().map(from_item).collect()
    }
}
