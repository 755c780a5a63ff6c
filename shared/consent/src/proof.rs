//! Proof of consent and the audit chain, as a compliance officer asks for
//! them: every consent event with the exact text shown, every decision
//! made under them, and whether the chain verifies.

use optline_ports::{verify_chain, AuditRecord, ChainBreak, ConsentEvent, Contact};
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
