//! What a use case reads before it decides, and the conditions its one
//! write rests on: a step as read at a version, a contact's facts with the
//! ledgers they were read at, and what a claim or a finish must find.

use chrono::{DateTime, Utc};
use optline_policy::consent::{ConsentFact, ConsentScope};
use optline_policy::phone::E164;

use crate::{AuditHead, ConsentEvent, Contact, ContactId, PortError, SendHistoryEntry, Step};

/// A step as read, with the version it was read at, so that a later write
/// can be made conditional on nobody having changed it meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepSnapshot {
    /// The step (its `status` as stored).
    pub step: Step,
    /// When a dispatcher claimed it, for a step that is `sending`.
    pub claimed_at: Option<DateTime<Utc>>,
    /// The store's token for this version of the step.
    pub version: StepVersion,
}

/// A store's token for one version of a step (opaque to callers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepVersion(pub String);

/// The ledgers of a contact's decision facts as read: each consent event
/// and each send moves one of their revisions, so a write conditioned on
/// them fails when anything a decision relied on changed after it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FactsLedgers {
    /// The contact's own ledger (its state item).
    pub contact: crate::LedgerRead,
    /// The phone number's ledger.
    pub phone: crate::LedgerRead,
}

/// Everything a send decision reads about a contact, as one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactFacts {
    /// The contact.
    pub contact: Contact,
    /// The consent facts of the contact and of its phone number, oldest
    /// first (the policy folds them).
    pub consent: Vec<ConsentFact>,
    /// Its sends of the last [`RECENT_SENDS_DAYS`] days, newest first.
    pub sends: Vec<SendHistoryEntry>,
    /// Where its audit chain ended when this was read.
    pub audit_head: Option<AuditHead>,
    /// The ledgers this snapshot was read at.
    pub ledgers: FactsLedgers,
    /// The evidence of each consent event, by id (the hashes of its body
    /// and its disclosure text), for the records of decisions relying on it.
    pub evidence: std::collections::HashMap<String, std::collections::BTreeMap<String, String>>,
}

impl ContactFacts {
    /// Brings the snapshot up to date after this invocation sent a text to
    /// the contact (one more send, the contact's revision moved by one) and
    /// appended `head` to its chain.
    pub fn after_send(&mut self, entry: SendHistoryEntry, head: AuditHead) {
        self.sends.insert(0, entry);
        self.ledgers.contact.revision = Some(self.ledgers.contact.revision.unwrap_or(0) + 1);
        self.audit_head = Some(head);
    }

    /// The contact's chain as read (the genesis when nothing is recorded).
    pub fn chain(&self) -> crate::ChainRead {
        crate::ChainRead {
            contact: self.contact.id.clone(),
            head: self.audit_head.clone().unwrap_or_else(AuditHead::genesis),
        }
    }
}

/// Where consent events are kept: a contact's own ledger or a phone
/// number's (events sent from the handset cover everyone sharing it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Partition {
    /// A contact's ledger.
    Contact(ContactId),
    /// A phone number's ledger.
    Phone(E164),
}

impl Partition {
    /// The ledger a consent event belongs to.
    pub fn of(event: &ConsentEvent) -> Result<Self, PortError> {
        match (&event.scope, &event.contact_id) {
            (ConsentScope::Contact, Some(contact)) => Ok(Self::Contact(contact.clone())),
            (ConsentScope::Contact, None) => Err(PortError::Invalid(
                "a contact-scoped consent event needs a contact id".to_owned(),
            )),
            (ConsentScope::Phone, _) => Ok(Self::Phone(event.phone.clone())),
        }
    }
}

/// One ledger's facts as read, with where it stood.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ledger {
    /// Its facts, oldest first.
    pub facts: Vec<ConsentFact>,
    /// Where it stood.
    pub read: crate::LedgerRead,
}

/// What a step had to be, for a write that ends it without a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unclaimed<'a> {
    /// Still pending (the sweep ends it).
    Pending,
    /// Still queued at exactly this version (dispatch ends it before any
    /// claim, because it will not be sent).
    Queued(&'a StepVersion),
}

/// What a claim conditioned on the facts found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckedClaim {
    /// This invocation owns the send, and the facts were still current.
    Won,
    /// The step was no longer queued at the version read.
    StepMoved,
    /// The step was as read, but a consent event or a send changed the
    /// contact's or the number's facts: read them again and decide again.
    FactsMoved,
}

/// How a finishing write may bring the contact's recent sends up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FinishBase<'a> {
    /// The audit head the record follows.
    pub head: &'a AuditHead,
    /// The facts the send was decided on, when they are current: the write
    /// then replaces the recent sends (dropping old ones) on the condition
    /// that the contact's revision has not moved.
    pub facts: Option<&'a ContactFacts>,
}
