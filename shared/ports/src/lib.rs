//! # optline-ports
//!
//! The records optline keeps and the ports (traits) its functions use to keep
//! them: the contact directory, the consent ledger, the step store, the audit
//! trail, the dispatch queue and the SMS senders. Adapters live in
//! `optline-aws`; handlers only see these traits.

mod audit;
mod commit;
mod error;
mod experiment;
mod pause;
mod records;
mod snapshots;
mod tally;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optline_policy::consent::ConsentFact;
use optline_policy::phone::E164;
use optline_policy::template::review::Lifecycle;

pub use audit::{
    chain_hash, content_sha256, sha256_hex, verify_chain, AuditKey, AuditRecord, ChainBreak,
    NewAuditRecord, GENESIS_HASH,
};
pub use commit::*;
pub use error::PortError;
pub use experiment::*;
pub use pause::*;
pub use records::*;
pub use snapshots::*;
pub use tally::{
    bucket_bound, bucket_metric, bucket_of, metric, RollupKey, Tally, BUCKETS, NONE as NO_KEY,
};

/// Contacts and the phone index.
#[async_trait]
pub trait ContactDirectory: Send + Sync {
    /// Creates a contact; fails with [`PortError::Conflict`] if the id exists.
    async fn create_contact(&self, contact: &Contact) -> Result<(), PortError>;
    /// Reads a contact.
    async fn contact(&self, id: &ContactId) -> Result<Option<Contact>, PortError>;
    /// Every contact sharing a phone number.
    async fn contacts_by_phone(&self, phone: &E164) -> Result<Vec<ContactId>, PortError>;
    /// The contact an identifier names, if any.
    async fn contact_by_identifier(
        &self,
        identifier: &PersonIdentifier,
    ) -> Result<Option<ContactId>, PortError>;
    /// One page of every contact's id, in no particular order, and where
    /// the next page starts (`None`: the last). A pass over the whole
    /// directory: for censuses (consent coverage), not for decisions.
    async fn contact_ids_page(
        &self,
        after: Option<String>,
    ) -> Result<(Vec<ContactId>, Option<String>), PortError> {
        let _ = after;
        Err(PortError::Invalid(
            "this directory cannot list its contacts".to_owned(),
        ))
    }
}

/// The append-only consent ledger (reads; events are appended by a
/// [`Commit`]).
#[async_trait]
pub trait ConsentLedger: Send + Sync {
    /// Appends one consent event on its own (seeding, tools): the event
    /// and its disclosure in one commit. Returns `false` when an event
    /// with the same id is already recorded.
    async fn append_consent(
        &self,
        event: &ConsentEvent,
        disclosure_text: Option<&str>,
    ) -> Result<bool, PortError>;
    /// Every consent event that can affect a contact: its own and its phone's.
    async fn consent_events(
        &self,
        contact: &ContactId,
        phone: &E164,
    ) -> Result<Vec<ConsentEvent>, PortError>;
    /// The phone-scoped events of a number (opt-outs sent from the handset).
    async fn phone_consent_events(&self, phone: &E164) -> Result<Vec<ConsentEvent>, PortError>;
    /// One ledger's facts and where it stands (its state item; the events
    /// themselves when the digest overflowed).
    async fn ledger(&self, partition: &Partition) -> Result<Ledger, PortError>;
    /// One event of a ledger by id.
    async fn consent_event(
        &self,
        partition: &Partition,
        id: &EventId,
    ) -> Result<Option<ConsentEvent>, PortError>;
    /// A stored disclosure text by its SHA-256 (hex).
    async fn disclosure(&self, sha256: &str) -> Result<Option<String>, PortError>;
}

/// Steps (one planned text each) and their send claims.
#[async_trait]
pub trait StepStore: Send + Sync {
    /// Creates a step; a step with the same id is left as it is (idempotent).
    async fn put_step(&self, step: &Step) -> Result<bool, PortError>;
    /// Replaces a step whose status is one of `when` (a rescheduled or
    /// re-booked plan); `false` when it is in any other state.
    async fn replace_step(&self, step: &Step, when: &[StepStatus]) -> Result<bool, PortError>;
    /// Reads a step.
    async fn step(&self, id: &StepId) -> Result<Option<Step>, PortError>;
    /// Reads steps by id; ids without a step are absent.
    async fn steps(
        &self,
        ids: &[StepId],
    ) -> Result<std::collections::HashMap<StepId, Step>, PortError>;
    /// Steps due at or before `now`, through the due index: pending steps
    /// due, and queued steps whose queue lease has lapsed; the oldest
    /// `limit` of them across every shard, oldest first.
    async fn due_steps(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Step>, PortError>;
    /// Moves a step from pending to queued; `false` if another sweep won.
    /// A queued step is due again when its queue lease lapses, until a
    /// dispatcher claims it.
    async fn mark_queued(&self, id: &StepId, at: DateTime<Utc>) -> Result<bool, PortError>;
    /// Renews the lease of a queued step whose message never reached a
    /// dispatcher, or of a claimed step whose invocation died and whose
    /// message was lost, once the lease has lapsed; `false` if it has moved
    /// on, or another sweep renewed it first.
    async fn requeue_lapsed(&self, id: &StepId, at: DateTime<Utc>) -> Result<bool, PortError>;
    /// Ends a step that will not be sent without claiming it (a pending
    /// step outside its audience, a queued step that dispatch suppresses)
    /// and appends its audit record, in one transaction: after `head`
    /// when given and still current, else after the chain's head as read
    /// again. `None` when the step was no longer as `expected` (nothing is
    /// recorded then).
    async fn exclude_audited(
        &self,
        step: &Step,
        expected: Unclaimed<'_>,
        outcome: &StepOutcome,
        record: NewAuditRecord,
        head: Option<&AuditHead>,
    ) -> Result<Option<AuditRecord>, PortError>;
    /// Claims the right to send a step exactly once.
    async fn claim_send(&self, id: &StepId, at: DateTime<Utc>) -> Result<Claim, PortError>;
    /// Takes over a claim older than `cutoff` (its invocation died); `false`
    /// if the claim moved on meanwhile.
    async fn reclaim_stale(
        &self,
        id: &StepId,
        cutoff: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<bool, PortError>;
    /// Gives a claim back after a carrier refusal that proves nothing was
    /// sent (sending -> queued), so the redelivered message can claim it
    /// again.
    async fn release_claim(&self, id: &StepId, at: DateTime<Utc>) -> Result<(), PortError>;
    /// Records a claimed step's final state (its status, its send records,
    /// the contact's recent sends) and appends its audit record, in one
    /// transaction. When `base` names the chain's current head (and, for a
    /// send, the facts read), that is one write; when the chain or the
    /// facts moved, the head is read again and the transaction retried.
    async fn finish_audited(
        &self,
        step: &Step,
        outcome: &StepOutcome,
        record: NewAuditRecord,
        base: Option<FinishBase<'_>>,
    ) -> Result<AuditRecord, PortError>;
    /// Puts a claimed step back in the due index at `until` (pending), with
    /// its audit record, in one transaction.
    async fn defer_audited(
        &self,
        step: &Step,
        until: DateTime<Utc>,
        record: NewAuditRecord,
        head: Option<&AuditHead>,
    ) -> Result<AuditRecord, PortError>;
    /// Puts a queued step whose message could not be enqueued back to
    /// pending, due at `at`.
    async fn unqueue(&self, id: &StepId, at: DateTime<Utc>) -> Result<(), PortError>;
    /// Earlier sends to a contact (for caps), newest first.
    async fn send_history(
        &self,
        contact: &ContactId,
        since: DateTime<Utc>,
    ) -> Result<Vec<SendHistoryEntry>, PortError>;

    /// The contact, its contact-scoped consent events and its sends since
    /// `since` (newest first), in one query.
    async fn contact_record(
        &self,
        contact: &ContactId,
        since: DateTime<Utc>,
    ) -> Result<Option<ContactRecord>, PortError>;
}

/// Reads for deciding on many steps at once (a sweep page, an SQS batch):
/// a few calls for the whole batch instead of a few per step, with the
/// versions read so that the claim can prove nothing changed meanwhile.
#[async_trait]
pub trait DecisionReads: Send + Sync {
    /// Steps by id, each with the version read; ids without a step are
    /// absent from the answer.
    async fn step_snapshots(
        &self,
        ids: &[StepId],
    ) -> Result<std::collections::HashMap<StepId, StepSnapshot>, PortError>;
    /// The decision facts of each contact (profile, the consent facts of
    /// the contact and of its number, recent sends, audit head, revisions)
    /// as of `now`; contacts that do not exist are absent from the answer.
    async fn contact_facts(
        &self,
        contacts: &[ContactId],
        now: DateTime<Utc>,
    ) -> Result<std::collections::HashMap<ContactId, ContactFacts>, PortError>;
    /// The answer recorded first for each episode (an outcome kind, in the
    /// order of [`OUTCOME_KINDS`]); episodes without one are absent.
    async fn episode_answers(
        &self,
        subjects: &[String],
    ) -> Result<std::collections::HashMap<String, String>, PortError>;
    /// Every outcome recorded for each episode, by kind.
    async fn episode_outcomes(
        &self,
        subjects: &[String],
    ) -> Result<std::collections::HashMap<String, Vec<EpisodeOutcome>>, PortError>;
    /// Where each subject's audit chain ends (the genesis when empty).
    async fn chain_heads(
        &self,
        subjects: &[ContactId],
    ) -> Result<std::collections::HashMap<ContactId, AuditHead>, PortError>;
    /// Claims a queued step as it was read, on the condition that the
    /// contact's and the number's facts are still as read in `facts`.
    async fn claim_checked(
        &self,
        snapshot: &StepSnapshot,
        facts: &ContactFacts,
        at: DateTime<Utc>,
    ) -> Result<CheckedClaim, PortError>;
}

/// The per-contact, hash-chained audit trail.
#[async_trait]
pub trait AuditTrail: Send + Sync {
    /// Appends a record at the head of the contact's chain, on its own
    /// (the template library's trail); decisions append theirs in their
    /// [`Commit`].
    async fn append_audit(&self, record: NewAuditRecord) -> Result<AuditRecord, PortError>;
    /// The contact's chain, oldest first.
    async fn audit_chain(&self, contact: &ContactId) -> Result<Vec<AuditRecord>, PortError>;
    /// The key the chain's links are made with, to verify them.
    fn chain_key(&self) -> Option<&AuditKey> {
        None
    }
}

/// A rollup: what was counted under one key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rollup {
    /// Program × template version × arm × day.
    pub key: Option<RollupKey>,
    /// Metric name -> total.
    pub counts: std::collections::BTreeMap<String, u64>,
}

/// What counting a batch of tallies did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counted {
    /// Tallies added to their rollups now.
    pub counted: usize,
    /// Tallies counted before (a redelivery): nothing was added.
    pub repeats: usize,
}

/// The rollups: each tally counted once, read back for reports.
#[async_trait]
pub trait RollupStore: Send + Sync {
    /// Adds each tally to its rollup and marks it counted, in one
    /// transaction per group; a tally already marked adds nothing.
    async fn count(&self, tallies: &[Tally], at: DateTime<Utc>) -> Result<Counted, PortError>;
    /// The rollups of the days `from..=to`.
    async fn rollups(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<Rollup>, PortError>;
}

/// Experiments among approved template versions (reads; an experiment is
/// written by a [`Commit`]'s [`Write::Experiment`]).
#[async_trait]
pub trait ExperimentStore: Send + Sync {
    /// Every experiment, running or not.
    async fn experiments(&self) -> Result<Vec<Experiment>, PortError>;
    /// One experiment.
    async fn experiment(&self, id: &str) -> Result<Option<Experiment>, PortError>;
    /// How many commits have written an experiment so far (0 before the
    /// first): a warm reader whose count is unchanged holds the list as it
    /// stands, without reading it again.
    async fn experiments_changed(&self) -> Result<u64, PortError>;
}

/// Template versions paused by an opt-out spike (reads; a pause is
/// written by a [`Commit`]'s [`Write::Pause`]).
#[async_trait]
pub trait PauseStore: Send + Sync {
    /// Every pause, lifted or not.
    async fn pauses(&self) -> Result<Vec<TemplatePause>, PortError>;
    /// How many commits have written a pause so far (0 before the first),
    /// as [`ExperimentStore::experiments_changed`].
    async fn pauses_changed(&self) -> Result<u64, PortError>;
}

/// Work for people, and what carriers report (reads; the writes are a
/// [`Commit`]'s).
#[async_trait]
pub trait Casework: Send + Sync {
    /// An episode's outcomes.
    async fn outcomes(&self, subject: &str) -> Result<Vec<EpisodeOutcome>, PortError>;
    /// Review items, oldest first.
    async fn reviews(&self) -> Result<Vec<ReviewItem>, PortError>;
    /// Every revocation request, oldest first.
    async fn revocation_requests(&self) -> Result<Vec<RevocationRequest>, PortError>;
    /// One revocation request.
    async fn revocation_request(
        &self,
        id: &EventId,
    ) -> Result<Option<RevocationRequest>, PortError>;
    /// The step a carrier message id belongs to.
    async fn step_for_carrier_message(
        &self,
        carrier_message_id: &str,
    ) -> Result<Option<StepId>, PortError>;
    /// The delivery state a step's carrier last reported, if any.
    async fn delivery_status(&self, step: &StepId) -> Result<Option<String>, PortError>;
    /// What a carrier reported about a send attempt optline had not
    /// recorded (a status callback naming the attempt): its message id.
    async fn carrier_attempt(&self, attempt: &str) -> Result<Option<String>, PortError>;
    /// What a [`Write::Binding`] bound `key` to, if anything.
    async fn binding(&self, key: &str) -> Result<Option<String>, PortError>;
}

/// Writes a decision's [`Commit`] in one transaction.
#[async_trait]
pub trait Committer: Send + Sync {
    /// Writes everything or nothing; see [`Committed`].
    async fn commit(&self, commit: Commit) -> Result<Committed, PortError>;
}

/// Texts owed through the compliance lane: claimed once, sent once.
#[async_trait]
pub trait ComplianceLane: Send + Sync {
    /// Reads one owed text and where it stands.
    async fn lane_text(&self, key: &str) -> Result<Option<(LaneText, LaneStatus)>, PortError>;
    /// Claims an owed text for sending (pending -> sending); `false` when
    /// another invocation has it, or it is done.
    async fn lane_claim(&self, key: &str, at: DateTime<Utc>) -> Result<bool, PortError>;
    /// Gives a claim back after a refusal that proves nothing was sent.
    async fn lane_release(&self, key: &str) -> Result<(), PortError>;
}

/// Everything the functions keep in the table.
pub trait Store:
    ContactDirectory
    + ConsentLedger
    + StepStore
    + DecisionReads
    + AuditTrail
    + Casework
    + TemplateStore
    + Committer
    + ComplianceLane
    + SendPacer
    + RollupStore
    + ExperimentStore
    + PauseStore
{
}
impl<
        T: ContactDirectory
            + ConsentLedger
            + StepStore
            + DecisionReads
            + AuditTrail
            + Casework
            + TemplateStore
            + Committer
            + ComplianceLane
            + SendPacer
            + RollupStore
            + ExperimentStore
            + PauseStore,
    > Store for T
{
}

/// The template library: immutable versions and their review lifecycle.
#[async_trait]
pub trait TemplateStore: Send + Sync {
    /// Stores a new version; `false` when that id and version exist.
    async fn create_template_version(&self, template: &StoredTemplate) -> Result<bool, PortError>;
    /// One version.
    async fn template_version(
        &self,
        id: &str,
        version: u32,
    ) -> Result<Option<StoredTemplate>, PortError>;
    /// Every version of a template, oldest first.
    async fn template_versions(&self, id: &str) -> Result<Vec<StoredTemplate>, PortError>;
    /// Every template id, sorted.
    async fn template_ids(&self) -> Result<Vec<String>, PortError>;
    /// Replaces a version's lifecycle if its revision is still
    /// `expected_revision`; `false` when someone changed it first.
    async fn update_template_lifecycle(
        &self,
        id: &str,
        version: u32,
        expected_revision: u32,
        lifecycle: &Lifecycle,
    ) -> Result<bool, PortError>;
}

/// Every audit chain's head, for an anchor.
#[async_trait]
pub trait ChainHeadsScan: Send + Sync {
    /// Each chain's subject and head, in no particular order.
    async fn all_chain_heads(&self) -> Result<Vec<(ContactId, AuditHead)>, PortError>;
}

/// An asymmetric signing key whose private half never leaves its service
/// (AWS KMS): what anchors and proof bundles are signed with.
#[async_trait]
pub trait Signer: Send + Sync {
    /// The key's id.
    fn key_id(&self) -> &str;
    /// An ECDSA P-256 / SHA-256 signature (DER) over `message`.
    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PortError>;
    /// The public key (DER SubjectPublicKeyInfo) anyone can verify with.
    async fn public_key(&self) -> Result<Vec<u8>, PortError>;
}

/// Write-once storage of signed anchors (S3 with Object Lock in
/// compliance mode: not even the account's root can delete or overwrite
/// one before its retention ends).
#[async_trait]
pub trait AnchorStore: Send + Sync {
    /// Stores an anchor under `name`, locked until `retain_until`.
    async fn put_anchor(
        &self,
        name: &str,
        body: &[u8],
        retain_until: DateTime<Utc>,
    ) -> Result<(), PortError>;
    /// The newest anchor, if any.
    async fn latest_anchor(&self) -> Result<Option<Vec<u8>>, PortError>;
}

/// Where outbox events are published for other systems (EventBridge).
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes events; returns the ids of those that were not accepted
    /// (to be retried).
    async fn publish(&self, events: &[OutboxEvent]) -> Result<Vec<String>, PortError>;
}

/// Reads resources from an EHR source's FHIR server, for notifications
/// that name a resource without carrying it (id-only content).
#[async_trait]
pub trait FhirReader: Send + Sync {
    /// `GET <the source's FHIR base>/<resource_type>/<id>`, authorized as
    /// the source's configuration says (SMART Backend Services); the
    /// resource's JSON. `PortError::Invalid` when the source has no FHIR
    /// server configured or the server answers that the resource does not
    /// exist; `Unavailable` when it could not be reached after retries.
    async fn read(
        &self,
        source: &str,
        resource_type: &str,
        id: &str,
    ) -> Result<serde_json::Value, PortError>;
}

/// A send rate shared by every concurrent dispatch invocation.
#[async_trait]
pub trait SendPacer: Send + Sync {
    /// Takes `want` send slots for `sender` in the current wall-clock
    /// second, or failing that `need` (at most `want`), never more than
    /// `per_second` in all; or says how long until the next second when not
    /// even `need` is left. A slot is one message part (segment): carriers
    /// meter throughput in parts, so a two-part text needs two.
    async fn acquire(
        &self,
        sender: &str,
        per_second: u32,
        want: u32,
        need: u32,
    ) -> Result<Pace, PortError>;
    /// Takes `parts` of the sender's daily cap for `day` (the carrier's
    /// day, e.g. `2026-12-07`): `false` when fewer than `parts` are left.
    async fn acquire_daily(
        &self,
        sender: &str,
        day: &str,
        cap: u32,
        parts: u32,
    ) -> Result<bool, PortError>;
}

/// What a [`SendPacer`] grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// `slots` slots (at least one) in wall-clock `second` (epoch seconds).
    Granted {
        /// The second they belong to.
        second: i64,
        /// How many.
        slots: u32,
    },
    /// The second is full; try again after `wait`.
    Full {
        /// Until the next second.
        wait: std::time::Duration,
    },
}

/// The dispatch queue.
#[async_trait]
pub trait StepQueue: Send + Sync {
    /// Enqueues steps in batches; returns the ids that could not be enqueued.
    async fn enqueue(&self, steps: &[StepId]) -> Result<Vec<StepId>, PortError>;
}

/// A carrier's own list of opted-out numbers (Amazon SNS keeps one per account).
#[async_trait]
pub trait CarrierOptOutList: Send + Sync {
    /// Every number the carrier holds as opted out, as the carrier writes it.
    async fn opted_out_numbers(&self) -> Result<Vec<String>, PortError>;
}

/// An SMS sender (Amazon SNS, Twilio).
#[async_trait]
pub trait SmsSender: Send + Sync {
    /// Sends one text. The idempotency key is passed to the carrier where it
    /// supports one.
    async fn send(&self, sms: &OutboundSms) -> Result<CarrierReceipt, SendFailure>;

    /// Whether the carrier holds a message like `sms` created at or after
    /// `since` (an attempt whose answer was lost): its receipt when found.
    /// [`SentLookup::Unsupported`] when the carrier offers no such lookup.
    async fn lookup(
        &self,
        _sms: &OutboundSms,
        _since: DateTime<Utc>,
    ) -> Result<SentLookup, PortError> {
        Ok(SentLookup::Unsupported)
    }
}

/// What a carrier's message lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SentLookup {
    /// The carrier holds the message: it went out.
    Found(CarrierReceipt),
    /// The carrier holds no such message.
    NotFound,
    /// The carrier cannot be asked.
    Unsupported,
}

/// Where messages that can never be processed go, with the reason.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    /// Moves a message body to the dead-letter queue with a reason.
    async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), PortError>;
}

/// Re-exported so adapters and handlers agree on the fold's input.
pub fn consent_facts(events: &[ConsentEvent]) -> Vec<ConsentFact> {
    events.iter().map(ConsentEvent::fact).collect()
}

/// The key that names one send attempt in a carrier's status callback URL:
/// a hash of its idempotency key (a step id), so the URL carries no PHI.
pub fn attempt_key(idempotency_key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("optline-attempt:{idempotency_key}").as_bytes());
    hex::encode(digest).chars().take(32).collect()
}

/// serde_json's message without any echoed value: "invalid type" and
/// "invalid value" messages quote the offending input, which may be PHI.
pub fn json_reason(e: &serde_json::Error) -> String {
    let message = e.to_string();
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        format!(
            "invalid json: a field has the wrong type or value at line {} column {}",
            e.line(),
            e.column()
        )
    } else {
        format!("invalid json: {message}")
    }
}
