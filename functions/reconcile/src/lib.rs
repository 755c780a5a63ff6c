//! # reconcile
//!
//! Scheduled daily. Compares the consent ledger with the carrier's own
//! opt-out list (Amazon SNS `ListPhoneNumbersOptedOut`) and fixes drift in the
//! safe direction only: a number the carrier holds as opted out but the
//! ledger still treats as textable gets a phone-scoped revocation with source
//! `carrier`, covering every program. The reverse drift (revoked in the
//! ledger, not at the carrier) is already safe and is only counted.
//!
//! The revocation's id derives from the number, so a number is fixed once;
//! if the person later re-opts in with START, the reconciler does not undo it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use optline_policy::consent::{standing, ConsentStanding};
use optline_policy::phone::E164;
use optline_ports::{
    consent_facts, CarrierOptOutList, ConsentEvent, EventId, NewAuditRecord, PortError, Store,
};
use serde::Serialize;
use tracing::{info, warn};

/// What reconcile needs.
#[derive(Clone)]
pub struct Deps {
    /// The table.
    pub store: Arc<dyn Store>,
    /// The carrier's opt-out list.
    pub carrier: Arc<dyn CarrierOptOutList>,
    /// Program ids to check.
    pub programs: Vec<String>,
}

impl std::fmt::Debug for Deps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deps")
            .field("programs", &self.programs)
            .finish_non_exhaustive()
    }
}

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

/// One reconciliation at `now`.
pub async fn reconcile(deps: &Deps, now: DateTime<Utc>) -> Result<ReconcileReport, PortError> {
    let numbers = deps.carrier.opted_out_numbers().await?;
    let mut report = ReconcileReport {
        carrier_opted_out: numbers.len(),
        ..ReconcileReport::default()
    };
    for raw in numbers {
        let Ok(phone) = E164::parse(&raw) else {
            report.unreadable += 1;
            continue;
        };
        let facts = consent_facts(&deps.store.phone_consent_events(&phone).await?);
        let textable_somewhere = deps.programs.iter().any(|program| {
            !matches!(
                standing(&facts, program, "*", now),
                ConsentStanding::Revoked { .. }
            )
        });
        if !textable_somewhere {
            report.already_revoked += 1;
            continue;
        }
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
        if deps.store.append_consent(&event, None).await? {
            for contact in deps.store.contacts_by_phone(&phone).await? {
                deps.store
                    .append_audit(NewAuditRecord {
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
                        detail: Some(
                            "the carrier's opt-out list holds this number; the ledger now agrees"
                                .to_owned(),
                        ),
                    })
                    .await?;
            }
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
