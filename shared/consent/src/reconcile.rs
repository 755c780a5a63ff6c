//! Reconciliation, scheduled daily: compares the consent ledger with the carrier's own
//! opt-out list (Amazon SNS `ListPhoneNumbersOptedOut`) and fixes drift in the
//! safe direction only: a number the carrier holds as opted out but the
//! ledger still treats as textable gets a phone-scoped revocation with source
//! `carrier`, covering every program. The reverse drift (revoked in the
//! ledger, not at the carrier) is already safe and is only counted.
//!
//! The revocation's id derives from the number, so a number is fixed once;
//! if the person later re-opts in with START, the reconciler does not undo it.

use chrono::{DateTime, Utc};
use optline_policy::consent::{standing, ConsentStanding};
use optline_policy::phone::E164;
use optline_ports::{
    CarrierOptOutList, ChainRead, Commit, Committed, ConsentEvent, EventId, NewAuditRecord,
    Partition, PortError, Store, Write, COMMIT_ATTEMPTS,
};
use serde::Serialize;
use tracing::{info, warn};

/// What one run found and did. Numbers are masked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReconcileReport {
    /// Numbers on the carrier's list.
    pub carrier_opted_out: usize,
    /// Of those, already revoked in the ledger for every program.
    pub already_revoked: usize,
    /// Drift fixed: revocations written (masked numbers).
    pub fixed: Vec<String>,
    /// Entries the carrier lists that are not valid numbers.
    pub unreadable: usize,
}

/// One reconciliation at `now`: the numbers the carrier holds as opted
/// out, checked against the ledger for each of `programs`.
pub async fn reconcile(
    store: &dyn Store,
    carrier: &dyn CarrierOptOutList,
    programs: &[String],
    now: DateTime<Utc>,
) -> Result<ReconcileReport, PortError> {
    let numbers = carrier.opted_out_numbers().await?;
    let mut report = ReconcileReport {
        carrier_opted_out: numbers.len(),
        ..ReconcileReport::default()
    };
    for raw in numbers {
        let Ok(phone) = E164::parse(&raw) else {
            report.unreadable += 1;
            continue;
        };
        if fix(store, &phone, programs, now).await? {
            warn!(phone = %phone.masked(), "drift fixed: carrier opt-out recorded in the ledger");
            report.fixed.push(phone.masked());
        } else {
            report.already_revoked += 1;
        }
    }
    info!(
        carrier_opted_out = report.carrier_opted_out,
        already_revoked = report.already_revoked,
        fixed = report.fixed.len(),
        unreadable = report.unreadable,
        "reconcile finished"
    );
    Ok(report)
}

/// Records the carrier's opt-out of `phone` in its ledger, with a record on
/// every chain of the contacts sharing it, in one commit; `false` when the
/// ledger already revokes it for every program.
async fn fix(
    store: &dyn Store,
    phone: &E164,
    programs: &[String],
    now: DateTime<Utc>,
) -> Result<bool, PortError> {
    let partition = Partition::Phone(phone.clone());
    let digits: String = phone
        .as_str()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let event = ConsentEvent::carrier_revocation(
        EventId::parse(&format!("sns-optout-{digits}"))?,
        phone.clone(),
        None,
        None,
        "sns",
        "ListPhoneNumbersOptedOut",
        None,
        now,
    );
    for _ in 0..COMMIT_ATTEMPTS {
        let ledger = store.ledger(&partition).await?;
        let textable_somewhere = programs.iter().any(|program| {
            !matches!(
                standing(&ledger.facts, program, "*", now),
                ConsentStanding::Revoked { .. }
            )
        });
        if !textable_somewhere || store.consent_event(&partition, &event.id).await?.is_some() {
            return Ok(false);
        }
        let mut contacts = store.contacts_by_phone(phone).await?;
        contacts.sort();
        let heads = store.chain_heads(&contacts).await?;
        let mut commit = Commit::default();
        commit.push(Write::Consent {
            event: event.clone(),
            disclosure: None,
            ledger: ledger.read,
        });
        commit.announce_contacts(&event.id, &contacts);
        for contact in contacts {
            let Some(head) = heads.get(&contact) else {
                continue;
            };
            commit.push(Write::Audit {
                chain: ChainRead {
                    contact: contact.clone(),
                    head: head.clone(),
                },
                records: vec![NewAuditRecord {
                    evidence: event.evidence(),
                    contact_id: contact,
                    at: now,
                    kind: "consent".to_owned(),
                    action: "revoke".to_owned(),
                    step_id: None,
                    rules: Vec::new(),
                    reasons: vec!["reconcile.carrier_opt_out".to_owned()],
                    legal_basis: None,
                    consent_event_id: Some(event.id.as_str().to_owned()),
                    template: None,
                    carrier_message_id: None,
                    arm: None,
                    detail: Some(
                        "the carrier's opt-out list holds this number; the ledger now agrees"
                            .to_owned(),
                    ),
                }],
            });
        }
        if let Committed::Done(_) = store.commit(commit).await? {
            return Ok(true);
        }
    }
    Err(PortError::Conflict(
        "reconcile: the number's ledger kept moving".to_owned(),
    ))
}
