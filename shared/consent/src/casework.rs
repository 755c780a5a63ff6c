//! Work queues people resolve: doubtful revocations and ambiguous replies
//! (confirm the opt-out, restore with a reason, or no action), and staff
//! callbacks (assign, close). Each answer is one commit: the item as the
//! person left it (only while it is still unresolved, so two people cannot
//! both resolve it), the consent event a restore records, and a record on
//! the audit chain of every contact the item concerns, naming the person
//! from their verified token.

use chrono::{DateTime, Utc};
use optline_policy::consent::{ConsentAction, ConsentKind, ConsentScope};
use optline_ports::{
    CaptureChannel, ChainRead, Commit, Committed, ConsentEvent, ContactId, EventId, Evidence,
    NewAuditRecord, Partition, ReviewItem, ReviewResolution, Write, COMMIT_ATTEMPTS,
};
use serde::Deserialize;

use crate::contacts::contact;
use crate::{Consent, ConsentError};

/// Longest reason or note kept.
pub const MAX_REASON_CHARS: usize = 500;

/// What a person does with a review item.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReviewAction {
    /// A doubtful revocation was meant: it stands (the texts stay stopped).
    ConfirmOptOut {
        /// Optional note.
        #[serde(default)]
        reason: Option<String>,
    },
    /// A doubtful revocation was not meant ("stop the bleeding?"): the
    /// number's consent is restored to what held before, with the reason.
    Restore {
        /// Why the reviewer reads it as no revocation (required).
        reason: String,
    },
    /// Nothing to do (an ambiguous reply needing no answer).
    NoAction {
        /// Optional note.
        #[serde(default)]
        reason: Option<String>,
    },
    /// Take a callback: assign it to the person acting.
    Assign,
    /// A callback or fallback task done.
    Close {
        /// What was done (required).
        reason: String,
    },
}

impl ReviewAction {
    /// The outcome recorded, or `None` for an assignment.
    fn outcome(&self) -> Option<&'static str> {
        match self {
            Self::ConfirmOptOut { .. } => Some("opt_out_confirmed"),
            Self::Restore { .. } => Some("restored"),
            Self::NoAction { .. } => Some("no_action"),
            Self::Close { .. } => Some("closed"),
            Self::Assign => None,
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            Self::ConfirmOptOut { reason } | Self::NoAction { reason } => reason.as_deref(),
            Self::Restore { reason } | Self::Close { reason } => Some(reason),
            Self::Assign => None,
        }
    }

    /// The action's name, for errors and audit records.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ConfirmOptOut { .. } => "confirm_opt_out",
            Self::Restore { .. } => "restore",
            Self::NoAction { .. } => "no_action",
            Self::Assign => "assign",
            Self::Close { .. } => "close",
        }
    }

    /// Whether the action applies to an item of `kind`.
    pub fn fits(&self, kind: &str) -> bool {
        match self {
            Self::ConfirmOptOut { .. } | Self::Restore { .. } => kind == "doubtful_revocation",
            Self::NoAction { .. } => matches!(kind, "doubtful_revocation" | "ambiguous_reply"),
            Self::Assign | Self::Close { .. } => !matches!(kind, "doubtful_revocation"),
        }
    }
}

/// Review items: `open` (unresolved, oldest first) or `all`.
pub async fn review_items(
    consent: Consent<'_>,
    open_only: bool,
) -> Result<Vec<ReviewItem>, ConsentError> {
    let mut items = consent.store.reviews().await?;
    if open_only {
        items.retain(|i| i.resolution.is_none());
    }
    Ok(items)
}

/// One review item by id.
pub async fn review_item(consent: Consent<'_>, id: &str) -> Result<ReviewItem, ConsentError> {
    if id.is_empty() || id.len() > 128 {
        return Err(ConsentError::Invalid(
            "a review id is 1 to 128 characters".to_owned(),
        ));
    }
    consent
        .store
        .reviews()
        .await?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or(ConsentError::NotFound("no such review item"))
}

/// The SMS revocation a doubtful-revocation item was opened for:
/// `review-<sid>` stands for the event `sms-optout-<sid>`.
fn revocation_of(item: &ReviewItem) -> Result<EventId, ConsentError> {
    let sid = item
        .id
        .strip_prefix("review-")
        .ok_or_else(|| ConsentError::Unprocessable("this item records no revocation".to_owned()))?;
    EventId::parse(&format!("sms-optout-{sid}")).map_err(|e| ConsentError::Invalid(e.to_string()))
}

/// Applies `action` to review item `id` as `actor` (`Name <cognito:sub>`).
/// A second resolution of the same item is refused (409), whoever tries.
pub async fn resolve_review(
    consent: Consent<'_>,
    id: &str,
    action: ReviewAction,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<ReviewItem, ConsentError> {
    if actor.trim().is_empty() {
        return Err(ConsentError::Invalid(
            "the person acting is unknown".to_owned(),
        ));
    }
    if let Some(reason) = action.reason() {
        if reason.trim().is_empty() {
            return Err(ConsentError::Invalid(format!(
                "{} needs a reason",
                action.name()
            )));
        }
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(ConsentError::Invalid(format!(
                "a reason is at most {MAX_REASON_CHARS} characters"
            )));
        }
    }
    for _ in 0..COMMIT_ATTEMPTS {
        let item = review_item(consent, id).await?;
        if item.resolution.is_some() {
            return Err(ConsentError::Conflict(
                "this item is already resolved".to_owned(),
            ));
        }
        if !action.fits(&item.kind) {
            return Err(ConsentError::Unprocessable(format!(
                "{} does not apply to a {} item",
                action.name(),
                item.kind
            )));
        }
        let mut updated = item.clone();
        match action.outcome() {
            Some(outcome) => {
                updated.resolution = Some(ReviewResolution {
                    outcome: outcome.to_owned(),
                    reason: action.reason().map(|r| r.trim().to_owned()),
                    by: actor.to_owned(),
                    at: now,
                });
            }
            None => updated.assigned_to = Some(actor.to_owned()),
        }
        let mut commit = Commit::default();
        commit.push(Write::UpdateReview(updated.clone()));
        let mut restored: Option<ConsentEvent> = None;
        if let ReviewAction::Restore { .. } = &action {
            let revocation = revocation_of(&item)?;
            let first = item.contact_ids.first().ok_or_else(|| {
                ConsentError::Unprocessable("the item names no contact".to_owned())
            })?;
            let contact = contact(consent, first.as_str()).await?;
            let partition = Partition::Phone(contact.phone.clone());
            if consent
                .store
                .consent_event(&partition, &revocation)
                .await?
                .is_none()
            {
                return Err(ConsentError::Unprocessable(
                    "the revocation this item was opened for is not in the number's ledger"
                        .to_owned(),
                ));
            }
            let ledger = consent.store.ledger(&partition).await?;
            let event = ConsentEvent {
                id: EventId::parse(&format!("restore-{}", item.id))
                    .map_err(|e| ConsentError::Invalid(e.to_string()))?,
                contact_id: None,
                phone: contact.phone.clone(),
                action: ConsentAction::Grant,
                scope: ConsentScope::Phone,
                program: Some(contact.program.clone()),
                categories: Vec::new(),
                kind: ConsentKind::Express,
                at: now,
                recorded_at: now,
                channel: CaptureChannel::Staff,
                actor: actor.to_owned(),
                source_system: Some("optline-review".to_owned()),
                source_record_id: Some(item.id.clone()),
                disclosure_sha256: None,
                disclosure_version: None,
                // The reviewer's reason is on the item and in the audit record.
                evidence: Evidence::default(),
                reverses: Some(revocation),
                guardian: false,
                expires_at: None,
            };
            commit.push(Write::Consent {
                event: event.clone(),
                disclosure: None,
                ledger: ledger.read,
            });
            restored = Some(event);
        }
        let heads = consent.store.chain_heads(&item.contact_ids).await?;
        for contact_id in &item.contact_ids {
            if let Some(head) = heads.get(contact_id) {
                commit.push(Write::Audit {
                    chain: ChainRead {
                        contact: contact_id.clone(),
                        head: head.clone(),
                    },
                    records: vec![audit_record(
                        contact_id,
                        &item,
                        &action,
                        actor,
                        restored.as_ref(),
                        now,
                    )],
                });
            }
        }
        match consent.store.commit(commit).await? {
            Committed::Done(_) => return Ok(updated),
            Committed::Duplicate(_) => {
                return Err(ConsentError::Conflict(
                    "this item is already resolved".to_owned(),
                ))
            }
            Committed::Conflict(_) => continue,
        }
    }
    Err(ConsentError::Busy)
}

fn audit_record(
    contact_id: &ContactId,
    item: &ReviewItem,
    action: &ReviewAction,
    actor: &str,
    restored: Option<&ConsentEvent>,
    now: DateTime<Utc>,
) -> NewAuditRecord {
    let mut detail = format!(
        "{} item {} (classifier rule {}) by {actor}",
        item.kind, item.id, item.rule
    );
    if let Some(reason) = action.reason() {
        detail.push_str("; reason: ");
        detail.push_str(reason.trim());
    }
    NewAuditRecord {
        evidence: Default::default(),
        contact_id: contact_id.clone(),
        at: now,
        kind: "review".to_owned(),
        action: action.outcome().unwrap_or("assigned").to_owned(),
        step_id: None,
        rules: Vec::new(),
        reasons: Vec::new(),
        legal_basis: None,
        consent_event_id: restored.map(|e| e.id.as_str().to_owned()),
        template: None,
        carrier_message_id: None,
        arm: None,
        detail: Some(detail),
    }
}
