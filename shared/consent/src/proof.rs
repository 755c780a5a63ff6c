//! Proof of consent and the audit chain, as a compliance officer asks for
//! them: every consent event with the exact text shown, every decision
//! made under them, and whether the chain verifies.

use chrono::{DateTime, Utc};
use optline_ports::{
    verify_chain, AuditRecord, ChainBreak, ChainRead, Commit, Committed, ConsentEvent, Contact,
    NewAuditRecord, Write, COMMIT_ATTEMPTS,
};
use serde::Serialize;

use crate::contacts::contact;
use crate::{Consent, ConsentError};

/// One consent event with its exact disclosure text.
#[derive(Debug, Serialize)]
pub struct ProvenEvent {
    /// The event.
    #[serde(flatten)]
    pub event: ConsentEvent,
    /// The exact text shown, fetched by its SHA-256.
    pub disclosure_text: Option<String>,
}

/// A contact's proof of consent.
#[derive(Debug)]
pub struct Proof {
    /// The contact.
    pub contact: Contact,
    /// Every consent event that affects it, oldest first.
    pub events: Vec<ProvenEvent>,
    /// Every decision to send or not, from its chain.
    pub decisions: Vec<AuditRecord>,
}

/// Reads a contact's proof of consent.
pub async fn proof(consent: Consent<'_>, contact_id: &str) -> Result<Proof, ConsentError> {
    let contact = contact(consent, contact_id).await?;
    let events = consent
        .store
        .consent_events(&contact.id, &contact.phone)
        .await?;
    let mut proven = Vec::with_capacity(events.len());
    for event in events {
        let text = match &event.disclosure_sha256 {
            Some(sha) => consent.store.disclosure(sha).await?,
            None => None,
        };
        proven.push(ProvenEvent {
            event,
            disclosure_text: text,
        });
    }
    let decisions = consent
        .store
        .audit_chain(&contact.id)
        .await?
        .into_iter()
        .filter(|r| r.content.kind == "decision")
        .collect();
    Ok(Proof {
        contact,
        events: proven,
        decisions,
    })
}

/// A contact's audit chain and whether it verifies.
#[derive(Debug)]
pub struct Chain {
    /// The contact.
    pub contact: Contact,
    /// Its records, oldest first.
    pub records: Vec<AuditRecord>,
    /// Where it breaks, if it does.
    pub broken: Option<ChainBreak>,
}

/// Reads and verifies a contact's audit chain.
pub async fn audit_chain(consent: Consent<'_>, contact_id: &str) -> Result<Chain, ConsentError> {
    let contact = contact(consent, contact_id).await?;
    let records = consent.store.audit_chain(&contact.id).await?;
    let broken = verify_chain(&records, consent.store.chain_key()).err();
    Ok(Chain {
        contact,
        records,
        broken,
    })
}

/// A person's look at what a contact's records hold, which is itself
/// recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The unmasked phone number was shown.
    PhoneRevealed,
    /// The proof was exported (JSON or a printable page).
    ProofExported,
}

impl Access {
    /// The audit action.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PhoneRevealed => "phone_revealed",
            Self::ProofExported => "proof_exported",
        }
    }
}

/// Writes `access` by `actor` (`Name <cognito:sub>`) to the contact's
/// audit chain before the data is shown, so no reveal or export goes
/// unrecorded.
pub async fn record_access(
    consent: Consent<'_>,
    contact_id: &str,
    access: Access,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), ConsentError> {
    if actor.trim().is_empty() {
        return Err(ConsentError::Invalid(
            "the person acting is unknown".to_owned(),
        ));
    }
    let contact = contact(consent, contact_id).await?;
    for _ in 0..COMMIT_ATTEMPTS {
        let heads = consent
            .store
            .chain_heads(std::slice::from_ref(&contact.id))
            .await?;
        let Some(head) = heads.get(&contact.id) else {
            return Err(ConsentError::Unprocessable(
                "the contact has no audit chain to record the access in".to_owned(),
            ));
        };
        let mut commit = Commit::default();
        commit.push(Write::Audit {
            chain: ChainRead {
                contact: contact.id.clone(),
                head: head.clone(),
            },
            records: vec![NewAuditRecord {
                evidence: Default::default(),
                contact_id: contact.id.clone(),
                at: now,
                kind: "access".to_owned(),
                action: access.as_str().to_owned(),
                step_id: None,
                rules: Vec::new(),
                reasons: Vec::new(),
                legal_basis: None,
                consent_event_id: None,
                template: None,
                carrier_message_id: None,
                arm: None,
                detail: Some(format!("by {actor}")),
            }],
        });
        if let Committed::Done(_) = consent.store.commit(commit).await? {
            return Ok(());
        }
    }
    Err(ConsentError::Busy)
}
