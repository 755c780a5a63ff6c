//! A decision's [`Commit`] as one `TransactWriteItems`: each write becomes
//! its items, every change to a state item is merged into one update, and
//! a cancelled transaction is told apart as a duplicate trigger (its
//! marker exists) or a conflict (a fact moved).

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::TransactWriteItem;
use optline_ports::{
    AuditRecord, Commit, Committed, Committer, LaneStatus, Partition, PortError, StepExpect, Write,
};

use super::io::Tx;
use super::item::{attr, chain_next, key, record_item, s, step_item, to_json, ts, ttl_at, Item};
use super::update::{ItemUpdate, StateChange};
use super::DynamoStore;

/// Most items DynamoDB takes in one transaction.
const MAX_TRANSACTION_ITEMS: usize = 100;

/// How long a trigger's marker is kept: carriers and EHRs retry a message
/// for hours, never for weeks.
pub const MARKER_DAYS: i64 = 30;

/// How long an outbox item is kept after its event was committed (the
/// stream holds it for 24 hours; the item is evidence for a week more).
pub(crate) const OUTBOX_DAYS: i64 = 8;

/// A transaction being built.
#[derive(Default)]
struct TxBuilder {
    items: Vec<TransactWriteItem>,
    /// What each item is, for the reason of a cancellation.
    labels: Vec<String>,
    states: BTreeMap<String, StateChange>,
    records: Vec<AuditRecord>,
    /// Content-addressed items already in the transaction (one disclosure
    /// shown for several events is stored once).
    stored: std::collections::BTreeSet<String>,
    /// Tally ids already in the transaction.
    tallies: std::collections::BTreeSet<String>,
    /// Watched partitions this commit writes into: each counts one change.
    changed: std::collections::BTreeSet<&'static str>,
}

impl TxBuilder {
    fn push(&mut self, item: TransactWriteItem, label: impl Into<String>) {
        self.items.push(item);
        self.labels.push(label.into());
    }

    fn state(&mut self, pk: String) -> &mut StateChange {
        self.states.entry(pk).or_default()
    }
}

impl DynamoStore {
    fn add_write(&self, tx: &mut TxBuilder, write: Write) -> Result<(), PortError> {
        const NEW: &str = "attribute_not_exists(pk)";
        match write {
            Write::CreateContact(contact) => {
                let profile =
                    record_item(key::contact(&contact.id), "PROFILE", "contact", &contact)?;
                let index: Item = HashMap::from([
                    ("pk".to_owned(), s(key::phone(&contact.phone))),
                    ("sk".to_owned(), s(key::contact(&contact.id))),
                    ("kind".to_owned(), s("phone_index")),
                    ("contact_id".to_owned(), s(contact.id.as_str())),
                ]);
                tx.push(self.put(profile, Some(NEW))?, "contact exists");
                tx.push(self.put(index, None)?, "phone index");
            }
            Write::UpdateContact { contact, previous } => {
                if contact.id != previous.id {
                    return Err(PortError::Invalid(
                        "update contact: the id cannot change".to_owned(),
                    ));
                }
                let profile =
                    record_item(key::contact(&contact.id), "PROFILE", "contact", &contact)?;
                tx.push(
                    self.put_when(
                        profile,
                        "#data = :previous",
                        HashMap::from([("#data".to_owned(), "data".to_owned())]),
                        HashMap::from([(":previous".to_owned(), s(to_json(&previous)?))]),
                    )?,
                    "contact changed meanwhile",
                );
                if contact.phone != previous.phone {
                    tx.push(
                        self.delete(key::phone(&previous.phone), key::contact(&contact.id))?,
                        "old phone index",
                    );
                    let index: Item = HashMap::from([
                        ("pk".to_owned(), s(key::phone(&contact.phone))),
                        ("sk".to_owned(), s(key::contact(&contact.id))),
                        ("kind".to_owned(), s("phone_index")),
                        ("contact_id".to_owned(), s(contact.id.as_str())),
                    ]);
                    tx.push(self.put(index, None)?, "phone index");
                }
            }
            Write::ContactIdentifier {
                identifier,
                contact,
            } => {
                let item: Item = HashMap::from([
                    ("pk".to_owned(), s(key::identifier(&identifier))),
                    ("sk".to_owned(), s("CONTACT")),
                    ("kind".to_owned(), s("identifier_index")),
                    ("contact_id".to_owned(), s(contact.as_str())),
                ]);
                tx.push(
                    self.put_when(
                        item,
                        "attribute_not_exists(pk) OR contact_id = :contact",
                        HashMap::new(),
                        HashMap::from([(":contact".to_owned(), s(contact.as_str()))]),
                    )?,
                    "identifier names another contact",
                );
            }
            Write::Consent {
                event,
                disclosure,
                ledger,
            } => {
                let pk = key::partition(&Partition::of(&event)?);
                // The sort key is the event id alone: an event with a
                // deterministic id is written once however often its
                // trigger is retried.
                let mut item = record_item(pk.clone(), key::consent(&event.id), "consent", &event)?;
                item.insert("event_id".to_owned(), s(event.id.as_str()));
                tx.push(self.put(item, Some(NEW))?, "consent event exists");
                let new_text = event
                    .disclosure_sha256
                    .as_ref()
                    .is_some_and(|sha| tx.stored.insert(format!("DISCLOSURE#{sha}")));
                if let (Some(text), Some(sha), true) =
                    (disclosure, event.disclosure_sha256.as_deref(), new_text)
                {
                    // Content-addressed: the same text twice is harmless,
                    // and a different text can never sit under its hash.
                    let stored: Item = HashMap::from([
                        ("pk".to_owned(), s(format!("DISCLOSURE#{sha}"))),
                        ("sk".to_owned(), s("TEXT")),
                        ("kind".to_owned(), s("disclosure")),
                        ("text".to_owned(), s(text)),
                    ]);
                    tx.push(self.put(stored, None)?, "disclosure");
                }
                tx.state(pk)
                    .append_fact(s(to_json(&event.ledger_fact())?), &ledger)?;
            }
            Write::Audit { chain, records } => {
                let mut seq = chain.head.seq;
                let mut hash = chain.head.hash.clone();
                for content in records {
                    if content.contact_id != chain.contact {
                        return Err(PortError::Invalid(
                            "an audit record joined another subject's chain".to_owned(),
                        ));
                    }
                    let full = chain_next(seq, hash, content, self.audit_key.as_ref());
                    seq = full.seq;
                    hash = full.hash.clone();
                    let item = record_item(
                        key::audit(&chain.contact),
                        key::audit_record(full.seq),
                        "audit",
                        &full,
                    )?;
                    tx.push(self.put(item, Some(NEW))?, "audit record exists");
                    tx.records.push(full);
                }
                if seq != chain.head.seq {
                    tx.state(key::contact(&chain.contact))
                        .set_head(chain.head.seq, seq, hash)?;
                }
            }
            Write::Review(item) => {
                let stored = record_item(
                    key::REVIEWS,
                    format!("REV#{}#{}", ts(item.at), item.id),
                    "review",
                    &item,
                )?;
                tx.push(self.put(stored, Some(NEW))?, "review item exists");
            }
            Write::Outcome(outcome) => {
                if !optline_ports::OUTCOME_KINDS.contains(&outcome.kind.as_str()) {
                    return Err(PortError::Invalid(format!(
                        "unknown episode outcome kind {:?}",
                        outcome.kind
                    )));
                }
                let stored = record_item(
                    key::episode(&outcome.subject),
                    format!("OUTCOME#{}", outcome.kind),
                    "episode_outcome",
                    &outcome,
                )?;
                tx.push(self.put(stored, Some(NEW))?, "outcome exists");
            }
            Write::Step { step, expect } => {
                let item = step_item(&step)?;
                let put = match expect {
                    StepExpect::Absent => self.put(item, Some(NEW))?,
                    StepExpect::In(states) => {
                        let mut values = HashMap::new();
                        let mut placeholders = Vec::new();
                        for (i, status) in states.iter().enumerate() {
                            let name = format!(":s{i}");
                            values.insert(name.clone(), s(status.as_str()));
                            placeholders.push(name);
                        }
                        if placeholders.is_empty() {
                            return Err(PortError::Invalid(
                                "a step write expecting no state".to_owned(),
                            ));
                        }
                        self.put_when(
                            item,
                            &format!("#status IN ({})", placeholders.join(", ")),
                            HashMap::from([("#status".to_owned(), "status".to_owned())]),
                            values,
                        )?
                    }
                };
                tx.push(put, format!("step {} moved", step.id));
            }
            Write::Binding { key: bound, value } => {
                let item = HashMap::from([
                    ("pk".to_owned(), s(key::binding(&bound))),
                    ("sk".to_owned(), s("BINDING")),
                    ("kind".to_owned(), s("binding")),
                    ("value".to_owned(), s(value.clone())),
                ]);
                let put = self.put_when(
                    item,
                    "attribute_not_exists(pk) OR #value = :value",
                    HashMap::from([("#value".to_owned(), "value".to_owned())]),
                    HashMap::from([(":value".to_owned(), s(value))]),
                )?;
                tx.push(put, format!("{bound} is bound to another"));
            }
            Write::EndClaimedStep { step, outcome } => {
                if outcome.status == optline_ports::StepStatus::Sent {
                    return Err(PortError::Invalid(
                        "a send ends through finish_audited, with its records".to_owned(),
                    ));
                }
                let update = self
                    .end_update(&step, &outcome)?
                    .when("#status = :held")
                    .value(":held", s(optline_ports::StepStatus::Sending.as_str()));
                tx.push(
                    update.transact(&self.table)?,
                    format!("step {step} no longer claimed"),
                );
            }
            Write::Delivery {
                step,
                update,
                expected,
            } => {
                let change = ItemUpdate::new(key::step(&step), "STEP")
                    .set("delivery_status = :status")
                    .set("delivery_error = :error")
                    .set("delivery_at = :at")
                    .when("attribute_exists(pk)");
                let change = match expected {
                    Some(read) => change
                        .when("delivery_status = :delivery_read")
                        .value(":delivery_read", s(read)),
                    None => change.when("attribute_not_exists(delivery_status)"),
                };
                let change = change
                    .value(":status", s(update.status.clone()))
                    .value(":error", s(update.error_code.clone().unwrap_or_default()))
                    .value(":at", s(ts(update.at)));
                tx.push(change.transact(&self.table)?, "step missing");
            }
            Write::RevocationRequest(request) => {
                let mut item = record_item(
                    key::REVOCATION_REQUESTS,
                    key::revocation_request(&request.id),
                    "revocation_request",
                    &request,
                )?;
                item.insert(
                    "open".to_owned(),
                    aws_sdk_dynamodb::types::AttributeValue::Bool(true),
                );
                tx.push(self.put(item, Some(NEW))?, "revocation request exists");
            }
            Write::UpdateReview(item) => {
                let mut stored = record_item(
                    key::REVIEWS,
                    format!("REV#{}#{}", ts(item.at), item.id),
                    "review",
                    &item,
                )?;
                if item.resolution.is_some() {
                    stored.insert(
                        "resolved".to_owned(),
                        aws_sdk_dynamodb::types::AttributeValue::Bool(true),
                    );
                }
                tx.push(
                    self.put_when(
                        stored,
                        "attribute_exists(pk) AND attribute_not_exists(#resolved)",
                        HashMap::from([("#resolved".to_owned(), "resolved".to_owned())]),
                        HashMap::new(),
                    )?,
                    "review item missing or already resolved",
                );
            }
            Write::CompleteRevocation { request } => {
                let mut item = record_item(
                    key::REVOCATION_REQUESTS,
                    key::revocation_request(&request.id),
                    "revocation_request",
                    &request,
                )?;
                item.insert(
                    "open".to_owned(),
                    aws_sdk_dynamodb::types::AttributeValue::Bool(false),
                );
                tx.push(
                    self.put_when(
                        item,
                        "#open = :open",
                        HashMap::from([("#open".to_owned(), "open".to_owned())]),
                        HashMap::from([(
                            ":open".to_owned(),
                            aws_sdk_dynamodb::types::AttributeValue::Bool(true),
                        )]),
                    )?,
                    "revocation request no longer open",
                );
            }
            Write::Outbox(event) => {
                let mut item = record_item(key::outbox(&event.id), "EVENT", "outbox", &event)?;
                item.insert("detail_type".to_owned(), s(event.detail_type.clone()));
                item.insert(
                    "ttl".to_owned(),
                    ttl_at(event.at + chrono::Duration::days(OUTBOX_DAYS)),
                );
                tx.push(self.put(item, Some(NEW))?, "outbox event exists");
            }
            Write::Lane(text) => {
                let mut item = record_item(key::lane(&text.key), "TEXT", "lane_text", &text)?;
                item.insert("status".to_owned(), s(LaneStatus::Pending.as_str()));
                item.insert(
                    "ttl".to_owned(),
                    ttl_at(text.at + chrono::Duration::days(MARKER_DAYS)),
                );
                tx.push(self.put(item, Some(NEW))?, "lane text exists");
            }
            Write::LaneEnd {
                key: lane_key,
                status,
                carrier_message_id,
                claimed,
            } => {
                let from = if claimed {
                    LaneStatus::Sending
                } else {
                    LaneStatus::Pending
                };
                let change = ItemUpdate::new(key::lane(&lane_key), "TEXT")
                    .set("#status = :status")
                    .set("carrier_message_id = :carrier")
                    .when("#status = :from")
                    .name("#status", "status")
                    .value(":status", s(status.as_str()))
                    .value(":from", s(from.as_str()))
                    .value(":carrier", s(carrier_message_id.unwrap_or_default()));
                tx.push(change.transact(&self.table)?, "lane text moved");
            }
            Write::CarrierAttempt {
                attempt,
                carrier_message_id,
                status,
            } => {
                let item: Item = HashMap::from([
                    ("pk".to_owned(), s(key::attempt(&attempt))),
                    ("sk".to_owned(), s("CARRIER")),
                    ("kind".to_owned(), s("carrier_attempt")),
                    ("carrier_message_id".to_owned(), s(carrier_message_id)),
                    ("status".to_owned(), s(status)),
                ]);
                tx.push(self.put(item, None)?, "carrier attempt");
            }
            Write::Experiment(experiment) => {
                tx.push(
                    super::experiments::write(self, &experiment)?,
                    "experiment moved",
                );
                tx.changed.insert(super::experiments::EXPERIMENTS_PK);
            }
            Write::Pause(pause) => {
                tx.push(super::pauses::write(self, &pause)?, "pause moved");
                tx.changed.insert(super::pauses::PAUSES_PK);
            }
            Write::Tally(tally) => {
                // A fact counted once: a second tally of the same id in
                // one commit is the same fact.
                if tx.tallies.insert(tally.id.clone()) {
                    let item = super::rollups::tally_item(&tally)?;
                    tx.push(self.put(item, None)?, "tally");
                }
            }
        }
        Ok(())
    }

    /// The marker's stored answer and the nonce of the commit that wrote it.
    async fn marker(
        &self,
        marker_key: &str,
    ) -> Result<Option<(Option<String>, String)>, PortError> {
        Ok(self
            .get(key::marker(marker_key), "TRIGGER")
            .await?
            .map(|item| {
                (
                    attr(&item, "answer").map(str::to_owned),
                    attr(&item, "nonce").unwrap_or_default().to_owned(),
                )
            }))
    }
}

#[async_trait]
impl Committer for DynamoStore {
    async fn commit(&self, commit: Commit) -> Result<Committed, PortError> {
        let mut tx = TxBuilder::default();
        // Tells this commit's marker from an earlier delivery's, so that a
        // commit whose answer was lost (the SDK saw a timeout, or retried
        // it into its own marker) is known to have been written.
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        if let Some(marker) = &commit.marker {
            let mut item: Item = HashMap::from([
                ("pk".to_owned(), s(key::marker(&marker.key))),
                ("sk".to_owned(), s("TRIGGER")),
                ("kind".to_owned(), s("trigger")),
                ("nonce".to_owned(), s(nonce.clone())),
                ("at".to_owned(), s(ts(marker.at))),
                (
                    "ttl".to_owned(),
                    ttl_at(marker.at + chrono::Duration::days(MARKER_DAYS)),
                ),
            ]);
            if let Some(answer) = &marker.answer {
                item.insert("answer".to_owned(), s(answer.clone()));
            }
            tx.push(self.put(item, Some("attribute_not_exists(pk)"))?, "marker");
        }
        for write in commit.writes {
            self.add_write(&mut tx, write)?;
        }
        let states = std::mem::take(&mut tx.states);
        for (pk, change) in states {
            let label = format!("state {pk} moved");
            tx.push(change.render(pk)?.transact(&self.table)?, label);
        }
        for partition in std::mem::take(&mut tx.changed) {
            tx.push(
                self.count_change(partition)?,
                format!("{partition} change count"),
            );
        }
        if tx.items.is_empty() {
            return Ok(Committed::Done(Vec::new()));
        }
        if tx.items.len() > MAX_TRANSACTION_ITEMS {
            return Err(PortError::Invalid(format!(
                "a commit of {} items exceeds a transaction's {MAX_TRANSACTION_ITEMS}",
                tx.items.len()
            )));
        }
        let result = self.transact_codes("commit", tx.items).await;
        let ours = |found: &Option<(Option<String>, String)>| {
            found.as_ref().is_some_and(|(_, written)| *written == nonce)
        };
        match result {
            Ok(Tx::Committed) => Ok(Committed::Done(tx.records)),
            Err(e) => {
                // The answer was lost: the marker says whether it was written.
                if let Some(marker) = &commit.marker {
                    if let Ok(found) = self.marker(&marker.key).await {
                        if ours(&found) {
                            return Ok(Committed::Done(tx.records));
                        }
                    }
                }
                Err(e)
            }
            Ok(Tx::Cancelled(codes)) => {
                if let (Some(marker), true) = (&commit.marker, Tx::failed(&codes, 0)) {
                    let found = self.marker(&marker.key).await?;
                    if ours(&found) {
                        // The SDK retried this very commit into its marker.
                        return Ok(Committed::Done(tx.records));
                    }
                    return Ok(Committed::Duplicate(found.and_then(|(answer, _)| answer)));
                }
                let reasons: Vec<String> = codes
                    .iter()
                    .zip(&tx.labels)
                    .filter(|(code, _)| code.as_str() != "None")
                    .map(|(code, label)| format!("{label} ({code})"))
                    .collect();
                Ok(Committed::Conflict(if reasons.is_empty() {
                    "the transaction was cancelled".to_owned()
                } else {
                    reasons.join("; ")
                }))
            }
        }
    }
}
