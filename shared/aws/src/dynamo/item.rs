//! The item encoding, written once: keys, attribute helpers, records
//! stored whole as JSON in `data`, and the attributes that keys,
//! conditions and the index need beside it.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, SecondsFormat, Utc};
use optline_policy::phone::E164;
use optline_ports::{
    chain_hash, AuditRecord, ContactId, NewAuditRecord, Partition, PortError, Step, StepId,
    StepStatus, StoredTemplate,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// The due index's shard counts in this process: `DUE_SHARDS` and
/// `DUE_SHARDS_PREVIOUS` ([`optline_config::due_shards_from_env`]), read
/// once. A function's start (`Config::from_env`) refuses a bad count, so
/// the default here only serves processes without that check.
pub fn due_shards() -> optline_config::DueShards {
    static SHARDS: std::sync::OnceLock<optline_config::DueShards> = std::sync::OnceLock::new();
    *SHARDS.get_or_init(|| optline_config::due_shards_from_env().unwrap_or_default())
}

/// The sort key of the state item kept in a contact's partition and in a
/// phone number's: the digest a decision reads (see `docs/data-model.md`).
pub(crate) const STATE_SK: &str = "STATE";

/// Most consent facts a state item's digest holds; past this it is marked
/// `overflow` and readers fold the partition's events instead (an item may
/// hold 400 KB; a fact takes about 250 bytes).
pub(crate) const MAX_DIGEST_FACTS: usize = 400;

/// The partition listing every template id.
pub(crate) const TEMPLATE_CATALOG_PK: &str = "TEMPLATES";

pub(crate) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(crate) fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(crate) fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn ttl_at(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(at.timestamp().to_string())
}

pub(crate) fn unavailable<E, R>(what: &str, err: SdkError<E, R>) -> PortError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    PortError::Unavailable(format!("{what}: {}", DisplayErrorContext(err)))
}

pub(crate) fn is_conditional<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| {
            c == "ConditionalCheckFailedException" || c == "TransactionCanceledException"
        })
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> Result<String, PortError> {
    serde_json::to_string(value).map_err(|e| PortError::Corrupt(e.to_string()))
}

/// The record stored whole in an item's `data`.
pub(crate) fn from_item<T: DeserializeOwned>(item: &Item) -> Result<T, PortError> {
    match item.get("data") {
        Some(AttributeValue::S(json)) => {
            serde_json::from_str(json).map_err(|e| PortError::Corrupt(e.to_string()))
        }
        _ => Err(PortError::Corrupt("item has no data attribute".to_owned())),
    }
}

/// A string attribute.
pub(crate) fn attr<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.as_str()),
        _ => None,
    }
}

/// A list attribute of JSON strings, decoded; absent is empty.
pub(crate) fn json_list<T: DeserializeOwned>(
    value: Option<&AttributeValue>,
) -> Result<Vec<T>, PortError> {
    match value {
        None => Ok(Vec::new()),
        Some(AttributeValue::L(items)) => items
            .iter()
            .map(|v| match v {
                AttributeValue::S(json) => {
                    serde_json::from_str(json).map_err(|e| PortError::Corrupt(e.to_string()))
                }
                _ => Err(PortError::Corrupt("list entry is not a string".to_owned())),
            })
            .collect(),
        Some(_) => Err(PortError::Corrupt("attribute is not a list".to_owned())),
    }
}

/// An item with its key, kind and the record as `data`.
pub(crate) fn record_item<T: Serialize>(
    pk: impl Into<String>,
    sk: impl Into<String>,
    kind: &str,
    record: &T,
) -> Result<Item, PortError> {
    Ok(HashMap::from([
        ("pk".to_owned(), s(pk)),
        ("sk".to_owned(), s(sk)),
        ("kind".to_owned(), s(kind)),
        ("data".to_owned(), s(to_json(record)?)),
    ]))
}

/// Keys: a kind's prefix ending in `#`, then an id. Ids never hold `#`, so
/// keys of different kinds never meet.
pub(crate) mod key {
    use super::*;

    pub(crate) fn contact(id: &ContactId) -> String {
        format!("CONTACT#{id}")
    }

    pub(crate) fn phone(phone: &E164) -> String {
        format!("PHONE#{}", phone.as_str())
    }

    /// An identifier's index entry: a hash, so a system or value holding
    /// `#` (or PHI, as an MRN may be) never forms a key.
    pub(crate) fn identifier(identifier: &optline_ports::PersonIdentifier) -> String {
        use sha2::{Digest, Sha256};
        let digest =
            Sha256::digest(format!("{}\u{1f}{}", identifier.system, identifier.value).as_bytes());
        format!("IDENT#{}", hex::encode(digest))
    }

    pub(crate) fn partition(partition: &Partition) -> String {
        match partition {
            Partition::Contact(id) => contact(id),
            Partition::Phone(number) => phone(number),
        }
    }

    pub(crate) fn step(id: &StepId) -> String {
        format!("STEP#{id}")
    }

    pub(crate) fn template(id: &str) -> String {
        format!("TEMPLATE#{id}")
    }

    pub(crate) fn template_version(version: u32) -> String {
        format!("V#{version:010}")
    }

    pub(crate) fn audit(id: &ContactId) -> String {
        format!("AUDIT#{id}")
    }

    pub(crate) fn audit_record(seq: u64) -> String {
        format!("REC#{seq:012}")
    }

    pub(crate) fn episode(subject: &str) -> String {
        format!("EPISODE#{subject}")
    }

    pub(crate) fn consent(id: &optline_ports::EventId) -> String {
        format!("CONSENT#{id}")
    }

    pub(crate) fn revocation_request(id: &optline_ports::EventId) -> String {
        format!("REQ#{id}")
    }

    pub(crate) const REVOCATION_REQUESTS: &str = "REVOCATION_REQUESTS";
    pub(crate) const REVIEWS: &str = "REVIEWS";

    pub(crate) fn marker(key: &str) -> String {
        format!("TRIGGER#{key}")
    }

    pub(crate) fn tally(id: &str) -> String {
        format!("TALLY#{id}")
    }

    pub(crate) fn outbox(id: &str) -> String {
        format!("OUTBOX#{id}")
    }

    pub(crate) fn lane(key: &str) -> String {
        format!("LANE#{key}")
    }

    pub(crate) fn carrier(carrier_message_id: &str) -> String {
        format!("CARRIER#{carrier_message_id}")
    }

    pub(crate) fn attempt(attempt: &str) -> String {
        format!("ATTEMPT#{attempt}")
    }

    /// A source identifier's binding.
    pub(crate) fn binding(key: &str) -> String {
        format!("BINDING#{key}")
    }

    /// The due-index partition of a step: a stable hash of its id.
    pub(crate) fn due_shard(id: &StepId) -> u32 {
        let digest = Sha256::digest(id.as_str().as_bytes());
        let first = digest.first().copied().unwrap_or(0);
        u32::from(first) % due_shards().write.max(1)
    }

    pub(crate) fn due_pk(id: &StepId) -> String {
        format!("DUE#{}", due_shard(id))
    }

    pub(crate) fn due_sk(id: &StepId, due: DateTime<Utc>) -> String {
        format!("{}#{}", ts(due), id)
    }
}

/// A step's item: the plan as JSON, the status beside it, and the due-index
/// attributes while it is pending.
pub(crate) fn step_item(step: &Step) -> Result<Item, PortError> {
    let mut item = record_item(key::step(&step.id), "STEP", "step", step)?;
    item.insert("status".to_owned(), s(step.status.as_str()));
    item.insert("contact_id".to_owned(), s(step.contact_id.as_str()));
    if step.status == StepStatus::Pending {
        item.insert("due_pk".to_owned(), s(key::due_pk(&step.id)));
        item.insert("due_sk".to_owned(), s(key::due_sk(&step.id, step.due_at)));
    }
    Ok(item)
}

/// A step from its item: `status` is the authoritative attribute; `data`
/// keeps the plan.
pub(crate) fn step_from_item(item: &Item) -> Result<Step, PortError> {
    let mut step: Step = from_item(item)?;
    if let Some(status) = attr(item, "status") {
        step.status = serde_json::from_value(serde_json::Value::String(status.to_owned()))
            .map_err(|e| PortError::Corrupt(e.to_string()))?;
    }
    Ok(step)
}

pub(crate) fn stored_template(item: &Item) -> Result<StoredTemplate, PortError> {
    let content = match attr(item, "content") {
        Some(json) => serde_json::from_str(json).map_err(|e| PortError::Corrupt(e.to_string()))?,
        None => {
            return Err(PortError::Corrupt(
                "template item has no content".to_owned(),
            ))
        }
    };
    Ok(StoredTemplate {
        version: content,
        lifecycle: from_item(item)?,
    })
}

/// The record that follows `seq` / `prev_hash` in a chain.
pub(crate) fn chain_next(
    seq: u64,
    prev_hash: String,
    content: NewAuditRecord,
    key: Option<&optline_ports::AuditKey>,
) -> AuditRecord {
    let hash = chain_hash(&prev_hash, &content, key);
    AuditRecord {
        seq: seq + 1,
        prev_hash,
        hash,
        key_id: key.map(|k| k.id.clone()),
        content,
    }
}
