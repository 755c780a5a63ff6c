//! A contact's proof of consent as one signed bundle.
//!
//! The bundle's `content` is a JSON text (so the signed bytes are exactly
//! what a verifier reads): the contact (number masked), every consent event
//! with the exact disclosure text shown, every decision with its rules, the
//! whole audit chain, the latest anchor's statement and signature, and the
//! chain's inclusion proof in it. It is signed with the deployment's KMS
//! key; [`verify`] needs only the public key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use optline_ports::{AuditRecord, Signer};
use serde::{Deserialize, Serialize};

use crate::merkle::{verify_inclusion, Leaf, ProofStep};
use crate::{verify_signature, Anchor, AnchorStatement, AuditError};

/// The format tag of a bundle's content.
pub const PROOF_FORMAT: &str = "optline-proof/1";

/// The anchor part of a bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorProof {
    /// The anchor's statement, as signed.
    pub statement: String,
    /// Its signature (base64 DER).
    pub signature: String,
    /// The contact's anchored head.
    pub leaf: Leaf,
    /// Its path to the anchor's root.
    pub path: Vec<ProofStep>,
}

/// What a bundle proves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProofContent {
    /// [`PROOF_FORMAT`].
    pub format: String,
    /// When it was exported.
    pub exported_at: DateTime<Utc>,
    /// The contact, as shown to people (number masked).
    pub contact: serde_json::Value,
    /// Every consent event with the exact disclosure text shown.
    pub consent_events: Vec<serde_json::Value>,
    /// Every decision to send or not, with its rules.
    pub decisions: Vec<AuditRecord>,
    /// The whole audit chain.
    pub chain: Vec<AuditRecord>,
    /// The latest anchor covering the chain, if any.
    pub anchor: Option<AnchorProof>,
}

/// A signed bundle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedProof {
    /// The content's JSON text, exactly as signed.
    pub content: String,
    /// The signing key's id.
    pub key_id: String,
    /// `ECDSA_SHA_256`.
    pub algorithm: String,
    /// The signature over `content` (base64 DER).
    pub signature: String,
}

/// The anchor part of a bundle for `subject`, from the latest anchor.
pub fn anchor_proof(anchor: &Anchor, subject: &str) -> Option<AnchorProof> {
    let (leaf, path) = crate::inclusion(anchor, subject)?;
    Some(AnchorProof {
        statement: anchor.statement.clone(),
        signature: anchor.signature.clone(),
        leaf,
        path,
    })
}

/// Signs a bundle.
pub async fn sign(content: &ProofContent, signer: &dyn Signer) -> Result<SignedProof, AuditError> {
    let text = serde_json::to_string(content).map_err(|e| AuditError::Malformed(e.to_string()))?;
    let signature = signer.sign(text.as_bytes()).await?;
    Ok(SignedProof {
        content: text,
        key_id: signer.key_id().to_owned(),
        algorithm: "ECDSA_SHA_256".to_owned(),
        signature: STANDARD.encode(signature),
    })
}

/// What verifying a bundle found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProofVerdict {
    /// The bundle's signature verifies.
    pub signature: bool,
    /// The chain's links are continuous (each record follows the last).
    pub chain_linked: bool,
    /// The anchor's signature verifies and the chain's head at the anchor
    /// is in its root (`None`: the bundle has no anchor).
    pub anchored: Option<bool>,
    /// Every decision in the bundle is a record of its chain.
    pub decisions_in_chain: bool,
    /// The content, when the signature verifies.
    #[serde(skip)]
    pub content: Option<ProofContent>,
}

impl ProofVerdict {
    /// Whether everything verifies.
    pub fn holds(&self) -> bool {
        self.signature
            && self.chain_linked
            && self.anchored != Some(false)
            && self.decisions_in_chain
    }
}

/// Verifies a bundle with the public key alone (DER SubjectPublicKeyInfo).
pub fn verify(bundle: &[u8], public_key_der: &[u8]) -> Result<ProofVerdict, AuditError> {
    let signed: SignedProof = serde_json::from_slice(bundle)
        .map_err(|e| AuditError::Malformed(format!("bundle: {e}")))?;
    let signature = STANDARD
        .decode(&signed.signature)
        .map_err(|e| AuditError::Malformed(format!("bundle signature: {e}")))?;
    if verify_signature(public_key_der, signed.content.as_bytes(), &signature).is_err() {
        return Ok(ProofVerdict {
            signature: false,
            chain_linked: false,
            anchored: None,
            decisions_in_chain: false,
            content: None,
        });
    }
    let content: ProofContent = serde_json::from_str(&signed.content)
        .map_err(|e| AuditError::Malformed(format!("bundle content: {e}")))?;
    let chain_linked = content
        .chain
        .iter()
        .zip(content.chain.iter().skip(1))
        .all(|(a, b)| b.seq == a.seq + 1 && b.prev_hash == a.hash)
        && content
            .chain
            .first()
            .is_none_or(|r| r.seq == 1 && r.prev_hash == optline_ports::GENESIS_HASH);
    let anchored = content.anchor.as_ref().map(|anchor| {
        let signed_ok = STANDARD.decode(&anchor.signature).ok().is_some_and(|sig| {
            verify_signature(public_key_der, anchor.statement.as_bytes(), &sig).is_ok()
        });
        let statement: Option<AnchorStatement> = serde_json::from_str(&anchor.statement).ok();
        let included = statement
            .as_ref()
            .is_some_and(|s| verify_inclusion(&anchor.leaf, &anchor.path, &s.root));
        let in_chain = content
            .chain
            .iter()
            .any(|r| r.seq == anchor.leaf.seq && r.hash == anchor.leaf.hash);
        signed_ok && included && in_chain
    });
    let decisions_in_chain = content
        .decisions
        .iter()
        .all(|d| content.chain.iter().any(|r| r == d));
    Ok(ProofVerdict {
        signature: true,
        chain_linked,
        anchored,
        decisions_in_chain,
        content: Some(content),
    })
}

/// A string field of a JSON object, or empty.
fn field<'a>(value: &'a serde_json::Value, name: &str) -> &'a str {
    value.get(name).and_then(|v| v.as_str()).unwrap_or_default()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A printable page of a bundle's content, for a compliance officer.
pub fn render_html(content: &ProofContent, signed: &SignedProof) -> String {
    let mut page = String::from(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Proof of consent</title>\
         <style>body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:60em}\
         table{border-collapse:collapse;width:100%}td,th{border:1px solid #999;padding:4px;text-align:left;vertical-align:top}\
         .mono{font-family:monospace;word-break:break-all}@media print{a{color:inherit}}</style></head><body>",
    );
    page.push_str(&format!(
        "<h1>Proof of consent</h1><p>Contact <b>{}</b>, number {}. Exported {}.</p>",
        escape(field(&content.contact, "id")),
        escape(field(&content.contact, "phone")),
        content.exported_at.to_rfc3339()
    ));
    page.push_str("<h2>Consent events</h2><table><tr><th>When</th><th>Action</th><th>Categories</th><th>Channel</th><th>Exact text shown</th></tr>");
    for event in &content.consent_events {
        page.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(field(event, "at")),
            escape(field(event, "action")),
            escape(
                &event
                    .get("categories")
                    .map(|c| c.to_string())
                    .unwrap_or_default()
            ),
            escape(field(event, "channel")),
            escape(
                event
                    .get("disclosure_text")
                    .and_then(|v| v.as_str())
                    .unwrap_or("(none)")
            ),
        ));
    }
    page.push_str("</table><h2>Decisions</h2><table><tr><th>#</th><th>When</th><th>Decision</th><th>Basis</th><th>Template</th><th>Rules</th></tr>");
    for record in &content.decisions {
        let rules: Vec<String> = record
            .content
            .rules
            .iter()
            .map(|r| format!("{} {:?}: {}", r.id, r.verdict, r.detail))
            .collect();
        page.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            record.seq,
            record.content.at.to_rfc3339(),
            escape(&record.content.action),
            escape(record.content.legal_basis.as_deref().unwrap_or("")),
            escape(record.content.template.as_deref().unwrap_or("")),
            escape(&rules.join("; ")),
        ));
    }
    page.push_str(&format!(
        "</table><h2>Audit chain</h2><p>{} records; head <span class=\"mono\">{}</span>.</p>",
        content.chain.len(),
        escape(
            content
                .chain
                .last()
                .map(|r| r.hash.as_str())
                .unwrap_or("(empty)")
        )
    ));
    match &content.anchor {
        Some(anchor) => page.push_str(&format!(
            "<p>Anchored: head {} is in the signed root of <span class=\"mono\">{}</span>.</p>",
            anchor.leaf.seq,
            escape(&anchor.statement)
        )),
        None => page.push_str("<p>Not anchored yet.</p>"),
    }
    page.push_str(&format!(
        "<h2>Signature</h2><p>Signed with {} ({}). Verify the JSON bundle with <code>optline-ops proof-verify</code> and the public key.</p><p class=\"mono\">{}</p></body></html>",
        escape(&signed.key_id),
        escape(&signed.algorithm),
        escape(&signed.signature)
    ));
    page
}

/// Exports `contact_id`'s proof of consent as a signed bundle: its consent
/// events with their exact texts, its decisions, its whole chain, and the
/// latest anchor with the chain's inclusion proof.
pub async fn export(
    consent: optline_consent::Consent<'_>,
    anchors: &dyn optline_ports::AnchorStore,
    signer: &dyn Signer,
    contact_id: &str,
    now: DateTime<Utc>,
) -> Result<(SignedProof, ProofContent), AuditError> {
    let proof = optline_consent::proof::proof(consent, contact_id).await?;
    let chain = consent.store.audit_chain(&proof.contact.id).await?;
    let anchor = match anchors.latest_anchor().await? {
        Some(bytes) => {
            let anchor = crate::parse_anchor(&bytes)?;
            anchor_proof(&anchor, proof.contact.id.as_str())
        }
        None => None,
    };
    let content = ProofContent {
        format: PROOF_FORMAT.to_owned(),
        exported_at: now,
        contact: optline_consent::contacts::view(&proof.contact),
        consent_events: proof
            .events
            .iter()
            .map(|e| serde_json::to_value(e).unwrap_or_default())
            .collect(),
        decisions: proof.decisions,
        chain,
        anchor,
    };
    let signed = sign(&content, signer).await?;
    Ok((signed, content))
}
