//! # optline-audit
//!
//! Proof that holds in a dispute.
//!
//! - Each contact's audit chain is keyed (HMAC-SHA256 with a key held in
//!   Secrets Manager; see `optline_ports::verify_chain`): an edit, or a
//!   chain recomputed after one, does not verify without the key.
//! - [`anchor`]: a scheduled job signs a Merkle root over every chain's
//!   head with a KMS key and writes it, with the heads, to an S3 bucket with
//!   Object Lock in compliance mode. A chain that later ends before its
//!   anchored head was truncated; one whose record at the anchored head
//!   has another hash was rewritten ([`verify_against_anchor`]).
//! - [`proof`]: a contact's proof of consent as one signed bundle (every
//!   consent event with its exact text, every decision, the chain, the
//!   anchor and the chain's inclusion proof), which anyone with the public
//!   key verifies offline.

pub mod merkle;
pub mod proof;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, SecondsFormat, Utc};
use merkle::{Leaf, ProofStep};
use optline_ports::{
    verify_chain, AnchorStore, AuditKey, AuditRecord, ChainBreak, ChainHeadsScan, PortError, Signer,
};
use p256::ecdsa::signature::Verifier;
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};

/// The format tag of an anchor statement.
pub const ANCHOR_FORMAT: &str = "optline-anchor/1";

/// What an anchor's signature covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorStatement {
    /// [`ANCHOR_FORMAT`].
    pub format: String,
    /// When the heads were read.
    pub at: DateTime<Utc>,
    /// How many chains.
    pub count: usize,
    /// The Merkle root over their heads ([`merkle`]).
    pub root: String,
    /// The signing key's id.
    pub key_id: String,
}

/// An anchor as stored: the statement, its signature (base64 DER ECDSA
/// P-256 / SHA-256 over the statement's JSON as written here), and the
/// heads it covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// The statement, as the exact JSON text that was signed.
    pub statement: String,
    /// The signature.
    pub signature: String,
    /// Every chain's head, sorted by subject.
    pub leaves: Vec<Leaf>,
}

impl Anchor {
    /// The statement, parsed.
    pub fn parsed(&self) -> Result<AnchorStatement, AuditError> {
        serde_json::from_str(&self.statement)
            .map_err(|e| AuditError::Malformed(format!("anchor statement: {e}")))
    }
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A document does not parse.
    #[error("malformed: {0}")]
    Malformed(String),
    /// A signature does not verify.
    #[error("the signature does not verify: {0}")]
    BadSignature(String),
    /// The contact's records could not be read.
    #[error(transparent)]
    Consent(#[from] optline_consent::ConsentError),
    /// Storage or a service failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Verifies a DER ECDSA P-256 / SHA-256 `signature` over `message` with a
/// DER SubjectPublicKeyInfo public key.
pub fn verify_signature(
    public_key_der: &[u8],
    message: &[u8],
    signature_der: &[u8],
) -> Result<(), AuditError> {
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(public_key_der)
        .map_err(|e| AuditError::Malformed(format!("public key: {e}")))?;
    let signature = p256::ecdsa::Signature::from_der(signature_der)
        .map_err(|e| AuditError::Malformed(format!("signature: {e}")))?;
    key.verify(message, &signature)
        .map_err(|e| AuditError::BadSignature(e.to_string()))
}

/// A public key as PEM, for people and other tools.
pub fn public_key_pem(public_key_der: &[u8]) -> Result<String, AuditError> {
    use p256::pkcs8::EncodePublicKey;
    let key = p256::ecdsa::VerifyingKey::from_public_key_der(public_key_der)
        .map_err(|e| AuditError::Malformed(format!("public key: {e}")))?;
    key.to_public_key_pem(p256::pkcs8::LineEnding::LF)
        .map_err(|e| AuditError::Malformed(format!("public key: {e}")))
}

/// A PEM public key as DER.
pub fn public_key_der(pem: &str) -> Result<Vec<u8>, AuditError> {
    use p256::pkcs8::EncodePublicKey;
    let key = p256::ecdsa::VerifyingKey::from_public_key_pem(pem)
        .map_err(|e| AuditError::Malformed(format!("public key: {e}")))?;
    key.to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .map_err(|e| AuditError::Malformed(format!("public key: {e}")))
}

/// What one anchor run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnchorReport {
    /// The object's name.
    pub name: String,
    /// Chains covered.
    pub count: usize,
    /// The signed root.
    pub root: String,
}

/// Reads every chain's head, signs the Merkle root over them, and stores
/// the anchor write-once until `retain_until`.
pub async fn anchor(
    heads: &dyn ChainHeadsScan,
    signer: &dyn Signer,
    store: &dyn AnchorStore,
    now: DateTime<Utc>,
    retain_until: DateTime<Utc>,
) -> Result<AnchorReport, AuditError> {
    let mut leaves: Vec<Leaf> = heads
        .all_chain_heads()
        .await?
        .into_iter()
        .map(|(subject, head)| Leaf {
            subject: subject.as_str().to_owned(),
            seq: head.seq,
            hash: head.hash,
        })
        .collect();
    leaves.sort();
    let statement = AnchorStatement {
        format: ANCHOR_FORMAT.to_owned(),
        at: now,
        count: leaves.len(),
        root: merkle::root(&leaves),
        key_id: signer.key_id().to_owned(),
    };
    let text =
        serde_json::to_string(&statement).map_err(|e| AuditError::Malformed(e.to_string()))?;
    let signature = signer.sign(text.as_bytes()).await?;
    let document = Anchor {
        statement: text,
        signature: STANDARD.encode(signature),
        leaves,
    };
    let body = serde_json::to_vec(&document).map_err(|e| AuditError::Malformed(e.to_string()))?;
    let name = format!("{}.json", now.to_rfc3339_opts(SecondsFormat::Micros, true));
    store.put_anchor(&name, &body, retain_until).await?;
    tracing::info!(count = statement.count, "audit heads anchored");
    Ok(AnchorReport {
        name,
        count: statement.count,
        root: statement.root,
    })
}

/// Where a chain stands against the latest anchor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "anchor", rename_all = "snake_case")]
pub enum AnchorCheck {
    /// No anchor exists yet.
    NoAnchor,
    /// The chain began after the anchor was taken.
    NotYetAnchored,
    /// The chain holds the anchored head: nothing before it was cut or
    /// rewritten.
    Holds {
        /// When the anchor was taken.
        at: DateTime<Utc>,
        /// The anchored head's sequence number.
        seq: u64,
    },
    /// The chain ends before the anchored head: records were deleted.
    Truncated {
        /// The anchored head's sequence number.
        anchored: u64,
        /// The chain's last sequence number.
        found: u64,
    },
    /// The chain's record at the anchored head has another hash: the
    /// chain was rewritten.
    Rewritten {
        /// The anchored head's sequence number.
        seq: u64,
    },
    /// The anchor's own signature does not verify.
    BadAnchor {
        /// Why.
        reason: String,
    },
}

/// A chain's verification: its own links and its anchor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainVerdict {
    /// Records in the chain.
    pub records: usize,
    /// Where its links break, if they do.
    pub broken: Option<ChainBreak>,
    /// Where it stands against the latest anchor.
    pub anchor: AnchorCheck,
}

impl ChainVerdict {
    /// Whether the chain holds: its links verify and the anchor holds (or
    /// there is none yet, or it began after).
    pub fn holds(&self) -> bool {
        self.broken.is_none()
            && matches!(
                self.anchor,
                AnchorCheck::Holds { .. } | AnchorCheck::NoAnchor | AnchorCheck::NotYetAnchored
            )
    }
}

/// Verifies `subject`'s chain (oldest first) with the audit key and
/// against `anchor` (its signature checked with `public_key_der`).
pub fn verify_against_anchor(
    subject: &str,
    records: &[AuditRecord],
    key: Option<&AuditKey>,
    anchor: Option<&Anchor>,
    public_key_der: &[u8],
) -> ChainVerdict {
    let broken = verify_chain(records, key).err();
    let check = match anchor {
        None => AnchorCheck::NoAnchor,
        Some(anchor) => match check_anchor(subject, records, anchor, public_key_der) {
            Ok(check) => check,
            Err(e) => AnchorCheck::BadAnchor {
                reason: e.to_string(),
            },
        },
    };
    ChainVerdict {
        records: records.len(),
        broken,
        anchor: check,
    }
}

fn check_anchor(
    subject: &str,
    records: &[AuditRecord],
    anchor: &Anchor,
    public_key_der: &[u8],
) -> Result<AnchorCheck, AuditError> {
    let signature = STANDARD
        .decode(&anchor.signature)
        .map_err(|e| AuditError::Malformed(format!("anchor signature: {e}")))?;
    verify_signature(public_key_der, anchor.statement.as_bytes(), &signature)?;
    let statement = anchor.parsed()?;
    if merkle::root(&anchor.leaves) != statement.root || anchor.leaves.len() != statement.count {
        return Err(AuditError::BadSignature(
            "the anchor's heads do not match its signed root".to_owned(),
        ));
    }
    let Some(leaf) = anchor.leaves.iter().find(|l| l.subject == subject) else {
        return Ok(AnchorCheck::NotYetAnchored);
    };
    let found = records.last().map_or(0, |r| r.seq);
    if found < leaf.seq {
        return Ok(AnchorCheck::Truncated {
            anchored: leaf.seq,
            found,
        });
    }
    match records.iter().find(|r| r.seq == leaf.seq) {
        Some(record) if record.hash == leaf.hash => Ok(AnchorCheck::Holds {
            at: statement.at,
            seq: leaf.seq,
        }),
        _ => Ok(AnchorCheck::Rewritten { seq: leaf.seq }),
    }
}

/// The inclusion of `subject`'s anchored head in `anchor`'s root.
pub fn inclusion(anchor: &Anchor, subject: &str) -> Option<(Leaf, Vec<ProofStep>)> {
    let index = anchor.leaves.iter().position(|l| l.subject == subject)?;
    let leaf = anchor.leaves.get(index)?.clone();
    Some((leaf, merkle::inclusion_proof(&anchor.leaves, index)))
}

/// Parses a stored anchor.
pub fn parse_anchor(bytes: &[u8]) -> Result<Anchor, AuditError> {
    serde_json::from_slice(bytes).map_err(|e| AuditError::Malformed(format!("anchor: {e}")))
}
