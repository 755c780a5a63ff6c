//! The per-contact, hash-chained audit trail.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use optline_ports::{
    AuditHead, AuditRecord, AuditTrail, ChainHeadsScan, ChainRead, Commit, Committed, Committer,
    ContactId, NewAuditRecord, PortError, Write, COMMIT_ATTEMPTS,
};

use super::item::{attr, from_item, key, s, unavailable, Item, STATE_SK};
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

    fn chain_key(&self) -> Option<&optline_ports::AuditKey> {
        self.audit_key.as_ref()
    }
}

#[async_trait]
impl ChainHeadsScan for DynamoStore {
    async fn all_chain_heads(&self) -> Result<Vec<(ContactId, AuditHead)>, PortError> {
        // Every state item with a head: a scan, paged, for the anchor job
        // (hourly; read units grow with the number of contacts).
        let mut heads = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :state AND attribute_exists(#seq)")
                .expression_attribute_names("#seq", "seq")
                .expression_attribute_values(":state", s(STATE_SK))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("scan chain heads", e))?;
            for item in out.items() {
                let Some(subject) = attr(item, "pk").and_then(|pk| pk.strip_prefix("CONTACT#"))
                else {
                    continue;
                };
                if let (Some(AttributeValue::N(seq)), Some(hash)) =
                    (item.get("seq"), attr(item, "hash"))
                {
                    let seq = seq
                        .parse()
                        .map_err(|_| PortError::Corrupt("chain head seq".to_owned()))?;
                    heads.push((
                        ContactId::subject(subject)?,
                        AuditHead {
                            seq,
                            hash: hash.to_owned(),
                        },
                    ));
                }
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(heads)
    }
}
