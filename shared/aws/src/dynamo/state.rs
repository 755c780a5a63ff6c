//! Reading a state item: the digest a decision reads instead of a
//! partition's events and sends.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use optline_policy::consent::ConsentFact;
use std::collections::{BTreeMap, HashMap};

use optline_ports::{AuditHead, ConsentEvent, LedgerFact, LedgerRead, PortError, SendHistoryEntry};

use super::item::{from_item, json_list, Item};
use super::DynamoStore;

/// A state item as read.
#[derive(Debug, Default)]
pub(crate) struct StateDigest {
    pub(crate) ledger: LedgerRead,
    pub(crate) facts: Vec<ConsentFact>,
    pub(crate) evidence: HashMap<String, BTreeMap<String, String>>,
    pub(crate) sends: Vec<SendHistoryEntry>,
    pub(crate) head: Option<AuditHead>,
}

impl DynamoStore {
    /// A state item's digest: consent facts (read from the events when the
    /// digest overflowed), recent sends since `since` (each step once),
    /// audit head and revision.
    pub(crate) async fn digest(
        &self,
        pk: &str,
        item: Option<&Item>,
        since: DateTime<Utc>,
    ) -> Result<StateDigest, PortError> {
        let Some(item) = item else {
            return Ok(StateDigest::default());
        };
        let revision = match item.get("rev") {
            Some(AttributeValue::N(n)) => Some(
                n.parse::<u64>()
                    .map_err(|e| PortError::Corrupt(format!("state revision: {e}")))?,
            ),
            _ => None,
        };
        let overflow = matches!(item.get("overflow"), Some(AttributeValue::Bool(true)));
        let ledger: Vec<LedgerFact> = if overflow {
            let events = self.query_prefix(pk, "CONSENT#").await?;
            events
                .iter()
                .map(|item| from_item::<ConsentEvent>(item).map(|e| e.ledger_fact()))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            json_list::<LedgerFact>(item.get("facts"))?
        };
        let mut evidence = HashMap::new();
        let mut facts = Vec::with_capacity(ledger.len());
        for entry in ledger {
            let mut hashes = BTreeMap::new();
            if let Some(sha) = entry.body_sha256 {
                hashes.insert("consent_event".to_owned(), sha);
            }
            if let Some(sha) = entry.disclosure_sha256 {
                hashes.insert("disclosure".to_owned(), sha);
            }
            evidence.insert(entry.fact.id.clone(), hashes);
            facts.push(entry.fact);
        }
        let mut sends: Vec<SendHistoryEntry> = json_list::<SendHistoryEntry>(item.get("sends"))?
            .into_iter()
            .filter(|e| e.at >= since)
            .collect();
        sends.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.step_id.cmp(&b.step_id)));
        // An entry appended twice counts once.
        let mut seen = std::collections::HashSet::new();
        sends.retain(|e| e.step_id.as_ref().is_none_or(|id| seen.insert(id.clone())));
        let head = match (item.get("seq"), item.get("hash")) {
            (Some(AttributeValue::N(seq)), Some(AttributeValue::S(hash))) => {
                seq.parse().ok().map(|seq| AuditHead {
                    seq,
                    hash: hash.clone(),
                })
            }
            _ => None,
        };
        Ok(StateDigest {
            ledger: LedgerRead {
                revision,
                facts: facts.len(),
                overflow,
            },
            facts,
            evidence,
            sends,
            head,
        })
    }
}
