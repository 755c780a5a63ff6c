//! The audit trail's records and its hash chain.
//!
//! Each contact has one chain. Record `n` stores `prev_hash` (the hash of
//! record `n-1`, or [`GENESIS_HASH`] for the first) and its own `hash` =
//! HMAC-SHA256(audit key, `prev_hash` ‖ `\n` ‖ canonical JSON of the
//! record's content), the key named by `key_id` and held in Secrets Manager
//! (a deployment without a key falls back to plain SHA-256, `key_id`
//! absent). Editing a record breaks its own hash; deleting one breaks the
//! next record's `prev_hash` or leaves a gap in `seq`; recomputing the whole
//! chain after an edit needs the key. [`verify_chain`] finds all three; a
//! truncated tail is found against a signed anchor of the chain heads.

use chrono::{DateTime, Utc};
use optline_policy::RuleOutcome;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ContactId;

/// The `prev_hash` of a chain's first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The content of an audit record, before it is placed in the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAuditRecord {
    /// The contact whose chain this joins.
    pub contact_id: ContactId,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// `decision`, `consent`, `reply`, `delivery`, `template`.
    pub kind: String,
    /// For a decision: `send`, `defer`, `suppress`; for consent: `grant`, `revoke`; etc.
    pub action: String,
    /// Step concerned, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_id: Option<String>,
    /// Rules consulted, with versions and verdicts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleOutcome>,
    /// Reasons (failing rule ids, carrier codes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// Legal basis relied on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<String>,
    /// Consent event relied on or recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_event_id: Option<String>,
    /// Template id and version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Carrier and its message id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carrier_message_id: Option<String>,
    /// The experiment arm the text carried (`experiment/arm`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<String>,
    /// Free detail for people (never PHI or a full number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// What the record rests on, by SHA-256 (hex), inside the chain: the
    /// consent event's body (`consent_event`), the exact disclosure text
    /// (`disclosure`), the template version's content (`template`), the
    /// rendered text (`rendered`). Changing any of them after the fact no
    /// longer matches the chain.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub evidence: std::collections::BTreeMap<String, String>,
}

/// SHA-256 (hex) of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 (hex) of a value's JSON: the content hash of a record optline
/// both writes and reads back (struct fields in declaration order).
pub fn content_sha256<T: Serialize>(value: &T) -> String {
    sha256_hex(&serde_json::to_vec(value).unwrap_or_default())
}

/// A record in a contact's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// Hash of the previous record.
    pub prev_hash: String,
    /// This record's hash.
    pub hash: String,
    /// The audit key its hash was made with (`None`: plain SHA-256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The content.
    #[serde(flatten)]
    pub content: NewAuditRecord,
}

/// The key that signs the chain's links, with its id.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditKey {
    /// Its id (the secret's version), recorded with each record.
    pub id: String,
    secret: Vec<u8>,
}

impl AuditKey {
    /// A key of `secret` bytes (at least 32).
    pub fn new(id: impl Into<String>, secret: &[u8]) -> Result<Self, crate::PortError> {
        if secret.len() < 32 {
            return Err(crate::PortError::Invalid(
                "the audit key must be at least 32 bytes".to_owned(),
            ));
        }
        Ok(Self {
            id: id.into(),
            secret: secret.to_vec(),
        })
    }
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The hash of a record's content placed after `prev_hash`: HMAC-SHA256
/// under `key` when given, else SHA-256.
pub fn chain_hash(prev_hash: &str, content: &NewAuditRecord, key: Option<&AuditKey>) -> String {
    use hmac::Mac;
    // serde_json writes struct fields in declaration order: canonical enough
    // for records this crate both writes and verifies.
    let json = serde_json::to_vec(content).unwrap_or_default();
    match key.and_then(|k| hmac::Hmac::<Sha256>::new_from_slice(&k.secret).ok()) {
        Some(mut mac) => {
            mac.update(prev_hash.as_bytes());
            mac.update(b"\n");
            mac.update(&json);
            hex::encode(mac.finalize().into_bytes())
        }
        None => {
            let mut hasher = Sha256::new();
            hasher.update(prev_hash.as_bytes());
            hasher.update(b"\n");
            hasher.update(&json);
            hex::encode(hasher.finalize())
        }
    }
}

/// Where a chain is broken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("audit chain broken at seq {seq}: {problem}")]
pub struct ChainBreak {
    /// The first record that does not verify.
    pub seq: u64,
    /// What is wrong.
    pub problem: String,
}

/// Verifies a contact's chain, oldest first, with the deployment's audit
/// key (a keyed record cannot be verified without it).
pub fn verify_chain(records: &[AuditRecord], key: Option<&AuditKey>) -> Result<(), ChainBreak> {
    let mut prev = GENESIS_HASH.to_owned();
    for (expected_seq, record) in (1u64..).zip(records) {
        if record.seq != expected_seq {
            return Err(ChainBreak {
                seq: expected_seq,
                problem: format!(
                    "record {expected_seq} is missing (found seq {})",
                    record.seq
                ),
            });
        }
        if record.prev_hash != prev {
            return Err(ChainBreak {
                seq: record.seq,
                problem: "prev_hash does not match the previous record".to_owned(),
            });
        }
        let record_key = match (&record.key_id, key) {
            (None, _) => None,
            (Some(id), Some(k)) if *id == k.id => Some(k),
            (Some(id), _) => {
                return Err(ChainBreak {
                    seq: record.seq,
                    problem: format!("the record is keyed with {id}, which is not at hand"),
                })
            }
        };
        let recomputed = chain_hash(&record.prev_hash, &record.content, record_key);
        if recomputed != record.hash {
            return Err(ChainBreak {
                seq: record.seq,
                problem: "content does not match its hash (edited)".to_owned(),
            });
        }
        prev = record.hash.clone();
    }
    Ok(())
}
