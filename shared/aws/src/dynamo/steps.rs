//! Steps, the sparse `due` index (`due_pk`, `due_sk`) and send claims.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use optline_ports::{
    AuditHead, AuditRecord, Claim, ConsentEvent, ContactId, ContactRecord, FinishBase,
    NewAuditRecord, PortError, SendHistoryEntry, Step, StepId, StepOutcome, StepStatus, StepStore,
    Tally, Unclaimed, RECENT_SENDS_DAYS,
};

use super::io::Tx;
use super::item::{
    attr, chain_next, from_item, is_conditional, key, record_item, s, step_from_item, step_item,
    to_json, ts, ttl_at, unavailable, Item, STATE_SK,
};
use super::update::{expect, ItemUpdate, SendsChange, StateChange};
use super::DynamoStore;

/// How long a queued step waits for its dispatcher before a sweep
/// enqueues it again (SQS dead-letters a message after 5 receives 180 s
/// apart: 15 minutes; a lease twice as long leaves room for a backlog).
pub const QUEUE_LEASE: chrono::Duration = chrono::Duration::minutes(30);

/// How long a claimed step waits for its invocation to finish before a
/// sweep enqueues it again: longer than dispatch's 5-minute claim lease, so
/// that the message finds the claim stale and ends the send (never a
/// second text), and longer than SQS's own redeliveries.
pub const SENDING_LEASE: chrono::Duration = chrono::Duration::minutes(30);

/// How often a step's ending is tried again after the chain (or the
/// contact's facts) moved under it.
const END_ATTEMPTS: usize = 8;

/// What ending a step writes besides its audit record.
struct Ending<'a> {
    /// The step's update.
    update: ItemUpdate,
    /// How it is held (its update's condition).
    held: Held<'a>,
    /// Items written with it (a send's records).
    extra: Vec<Item>,
    /// The contact's recent sends.
    sends: Option<SendsChange>,
}

/// How a step ends: its update's condition.
#[derive(Debug, Clone, Copy)]
enum Held<'a> {
    /// This invocation claimed it (status `sending`).
    Claimed,
    /// As read, unclaimed.
    Unclaimed(Unclaimed<'a>),
}

/// The tally item of a step's end, when it is a dispatch fact.
fn tally_of_end(step: &Step, outcome: &StepOutcome) -> Result<Vec<Item>, PortError> {
    Tally::step_end(step, outcome)
        .map(|tally| super::rollups::tally_item(&tally))
        .into_iter()
        .collect()
}

impl DynamoStore {
    /// The update that gives a step its final state and takes it out of
    /// the due index (with its expiry, when the deployment sets retention).
    pub(crate) fn end_update(
        &self,
        id: &StepId,
        outcome: &StepOutcome,
    ) -> Result<ItemUpdate, PortError> {
        let mut update = ItemUpdate::new(key::step(id), "STEP")
            .set("#status = :status")
            .set("outcome = :outcome")
            .remove("due_pk")
            .remove("due_sk")
            .name("#status", "status")
            .value(":status", s(outcome.status.as_str()))
            .value(":outcome", s(to_json(outcome)?));
        if let Some(keep) = self.retention {
            update = update
                .set("#ttl = :ttl")
                .name("#ttl", "ttl")
                .value(":ttl", ttl_at(outcome.at + keep));
        }
        Ok(update)
    }

    /// A suppressed step's fallback task and its announcement, when the
    /// patient's need outlives the text ([`optline_ports::fallback_task`]).
    fn fallback_items(&self, step: &Step, outcome: &StepOutcome) -> Result<Vec<Item>, PortError> {
        if outcome.status != StepStatus::Suppressed {
            return Ok(Vec::new());
        }
        let Some((task, event)) = optline_ports::fallback_task(step, &outcome.reasons, outcome.at)
        else {
            return Ok(Vec::new());
        };
        let review = record_item(
            key::REVIEWS,
            format!("REV#{}#{}", ts(task.at), task.id),
            "review",
            &task,
        )?;
        let mut announce = record_item(key::outbox(&event.id), "EVENT", "outbox", &event)?;
        announce.insert("detail_type".to_owned(), s(event.detail_type.clone()));
        announce.insert(
            "ttl".to_owned(),
            ttl_at(event.at + chrono::Duration::days(super::commit::OUTBOX_DAYS)),
        );
        Ok(vec![review, announce])
    }

    /// A sent step's records: its send history entry and the carrier-id
    /// mapping that delivery reports find it by.
    fn send_records(&self, step: &Step, outcome: &StepOutcome) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::new();
        if outcome.status != StepStatus::Sent {
            return Ok(items);
        }
        let expires = self.retention.map(|keep| ttl_at(outcome.at + keep));
        let entry = SendHistoryEntry::for_step(step, outcome.at);
        let mut history = record_item(
            key::contact(&step.contact_id),
            format!("SENT#{}", step.id),
            "send",
            &entry,
        )?;
        history.insert("step_id".to_owned(), s(step.id.as_str()));
        if let Some(expires) = &expires {
            history.insert("ttl".to_owned(), expires.clone());
        }
        items.push(history);
        if let Some(carrier_id) = &outcome.carrier_message_id {
            let mut mapping: Item = HashMap::from([
                ("pk".to_owned(), s(key::carrier(carrier_id))),
                ("sk".to_owned(), s("STEP")),
                ("kind".to_owned(), s("carrier_mapping")),
                ("step_id".to_owned(), s(step.id.as_str())),
                ("contact_id".to_owned(), s(step.contact_id.as_str())),
            ]);
            if let Some(expires) = &expires {
                mapping.insert("ttl".to_owned(), expires.clone());
            }
            items.push(mapping);
        }
        Ok(items)
    }

    /// The head of a contact's chain as its state item holds it.
    pub(crate) async fn chain_head(&self, contact: &ContactId) -> Result<AuditHead, PortError> {
        let item = self.get(key::contact(contact), STATE_SK).await?;
        Ok(item
            .as_ref()
            .and_then(|item| match (item.get("seq"), item.get("hash")) {
                (Some(AttributeValue::N(seq)), Some(AttributeValue::S(hash))) => {
                    seq.parse().ok().map(|seq| AuditHead {
                        seq,
                        hash: hash.clone(),
                    })
                }
                _ => None,
            })
            .unwrap_or_else(AuditHead::genesis))
    }

    /// Ends (or defers) a step with its audit record in one transaction:
    /// the step's update under its condition, its send records, the
    /// record and the contact's state item (head, recent sends). When the
    /// chain or the facts moved, reads the head again and retries; `None`
    /// when the step itself was no longer as held.
    async fn end_with_record(
        &self,
        step: &Step,
        ending: Ending<'_>,
        record: NewAuditRecord,
        head: Option<&AuditHead>,
    ) -> Result<Option<AuditRecord>, PortError> {
        let Ending {
            update,
            held,
            extra,
            sends,
        } = ending;
        let mut head = match head {
            Some(head) => head.clone(),
            None => self.chain_head(&step.contact_id).await?,
        };
        let mut sends = sends;
        for _ in 0..END_ATTEMPTS {
            let full = chain_next(
                head.seq,
                head.hash.clone(),
                record.clone(),
                self.audit_key.as_ref(),
            );
            let update = match held {
                Held::Claimed => update
                    .clone()
                    .when("#status = :held")
                    .value(":held", s(StepStatus::Sending.as_str())),
                Held::Unclaimed(expected) => expect(update.clone(), expected),
            };
            let mut items = Vec::with_capacity(extra.len() + 3);
            items.push(update.transact(&self.table)?);
            for item in &extra {
                items.push(self.put(item.clone(), None)?);
            }
            let audit = record_item(
                key::audit(&step.contact_id),
                key::audit_record(full.seq),
                "audit",
                &full,
            )?;
            items.push(self.put(audit, Some("attribute_not_exists(pk)"))?);
            let mut state = StateChange::default();
            state.set_head(head.seq, full.seq, full.hash.clone())?;
            if let Some(change) = &sends {
                state.sends(change.clone())?;
            }
            items.push(
                state
                    .render(key::contact(&step.contact_id))?
                    .transact(&self.table)?,
            );
            match self.transact_codes("end step", items).await? {
                Tx::Committed => return Ok(Some(full)),
                Tx::Cancelled(codes) if Tx::failed(&codes, 0) => return Ok(None),
                Tx::Cancelled(_) => {
                    // The chain or the contact's facts moved: append after
                    // the head as it is now, adding this send to the recent
                    // sends as they are now.
                    head = self.chain_head(&step.contact_id).await?;
                    if let Some(SendsChange::Replace { fresh, .. }) = &sends {
                        sends = fresh.first().cloned().map(SendsChange::Append);
                    }
                }
            }
        }
        Err(PortError::Conflict(
            "end step: the audit chain kept moving".to_owned(),
        ))
    }

    /// Whether the step is claimed by the claim named `nonce` (a claim
    /// whose answer was lost may have been written).
    pub(crate) async fn claimed_by(&self, id: &StepId, nonce: &str) -> bool {
        matches!(
            self.get(key::step(id), "STEP").await,
            Ok(Some(item)) if attr(&item, "status") == Some("sending")
                && attr(&item, "claim_id") == Some(nonce)
        )
    }

    /// A conditional update of a step item; `false` when its condition fails.
    async fn update_step_if(
        &self,
        id: &StepId,
        what: &str,
        update: &str,
        condition: &str,
        values: &[(&str, String)],
    ) -> Result<bool, PortError> {
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key::step(id)))
            .key("sk", s("STEP"))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#status", "status");
        for (name, value) in values {
            request = request.expression_attribute_values(*name, s(value.clone()));
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable(what, e)),
        }
    }
}

#[async_trait]
impl StepStore for DynamoStore {
    async fn put_step(&self, step: &Step) -> Result<bool, PortError> {
        self.put_if("put step", step_item(step)?, "attribute_not_exists(pk)")
            .await
    }

    async fn replace_step(&self, step: &Step, when: &[StepStatus]) -> Result<bool, PortError> {
        let mut values: HashMap<String, AttributeValue> = HashMap::new();
        let mut names = Vec::new();
        for (i, status) in when.iter().enumerate() {
            let name = format!(":s{i}");
            values.insert(name.clone(), s(status.as_str()));
            names.push(name);
        }
        if names.is_empty() {
            return Ok(false);
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(step_item(step)?))
            .condition_expression(format!("#status IN ({})", names.join(", ")))
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable("replace step", e)),
        }
    }

    async fn step(&self, id: &StepId) -> Result<Option<Step>, PortError> {
        match self.get(key::step(id), "STEP").await? {
            Some(item) => Ok(Some(step_from_item(&item)?)),
            None => Ok(None),
        }
    }

    async fn steps(&self, ids: &[StepId]) -> Result<HashMap<StepId, Step>, PortError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let keys: Vec<(String, String)> = ids
            .iter()
            .map(|id| (key::step(id), "STEP".to_owned()))
            .collect();
        let items = self.batch_get(&keys).await?;
        let mut steps = HashMap::with_capacity(items.len());
        for item in items.values() {
            let step = step_from_item(item)?;
            steps.insert(step.id.clone(), step);
        }
        Ok(steps)
    }

    async fn due_steps(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Step>, PortError> {
        // Each shard is read oldest first, up to `limit`; the oldest `limit`
        // of all shards are among those, so a backlog in one shard never
        // holds back older steps in another. The shards are read at once.
        let upper = format!("{}#~", ts(now));
        let shards = futures_util::future::try_join_all(
            (0..super::due_shards().read).map(|shard| self.due_in_shard(shard, &upper, limit)),
        )
        .await?;
        let mut steps: Vec<Step> = shards.into_iter().flatten().collect();
        steps.sort_by(|a, b| a.due_at.cmp(&b.due_at).then_with(|| a.id.cmp(&b.id)));
        steps.truncate(limit);
        Ok(steps)
    }

    async fn mark_queued(&self, id: &StepId, at: DateTime<Utc>) -> Result<bool, PortError> {
        // Queued steps stay in the due index until a dispatcher claims
        // them, due again when their queue lease lapses: a step whose
        // message never reached the queue is enqueued again, never lost.
        self.update_step_if(
            id,
            "mark step queued",
            "SET #status = :queued, queued_at = :at, due_sk = :lease",
            "#status = :pending",
            &[
                (":queued", StepStatus::Queued.as_str().to_owned()),
                (":pending", StepStatus::Pending.as_str().to_owned()),
                (":at", ts(at)),
                (":lease", key::due_sk(id, at + QUEUE_LEASE)),
            ],
        )
        .await
    }

    async fn requeue_lapsed(&self, id: &StepId, at: DateTime<Utc>) -> Result<bool, PortError> {
        // Only while it is still queued (or claimed) and its lease has
        // lapsed: of two overlapping sweeps, one renews it.
        self.update_step_if(
            id,
            "requeue step",
            "SET queued_at = :at, due_sk = :lease",
            "#status IN (:queued, :sending) AND due_sk <= :upper",
            &[
                (":queued", StepStatus::Queued.as_str().to_owned()),
                (":sending", StepStatus::Sending.as_str().to_owned()),
                (":at", ts(at)),
                (":lease", key::due_sk(id, at + QUEUE_LEASE)),
                (":upper", format!("{}#~", ts(at))),
            ],
        )
        .await
    }

    async fn exclude_audited(
        &self,
        step: &Step,
        expected: Unclaimed<'_>,
        outcome: &StepOutcome,
        record: NewAuditRecord,
        head: Option<&AuditHead>,
    ) -> Result<Option<AuditRecord>, PortError> {
        let update = self.end_update(&step.id, outcome)?;
        let ending = Ending {
            update,
            held: Held::Unclaimed(expected),
            extra: [
                self.fallback_items(step, outcome)?,
                tally_of_end(step, outcome)?,
            ]
            .concat(),
            sends: None,
        };
        self.end_with_record(step, ending, record, head).await
    }

    async fn claim_send(&self, id: &StepId, at: DateTime<Utc>) -> Result<Claim, PortError> {
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(key::step(id)))
            .key("sk", s("STEP"))
            .update_expression(
                "SET #status = :sending, claimed_at = :at, due_pk = :due_pk, due_sk = :lease, claim_id = :claim_id",
            )
            .expression_attribute_values(":claim_id", s(nonce.clone()))
            .condition_expression("#status = :queued")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":sending", s(StepStatus::Sending.as_str()))
            .expression_attribute_values(":queued", s(StepStatus::Queued.as_str()))
            .expression_attribute_values(":at", s(ts(at)))
            // Due again only if its invocation dies and its message is lost.
            .expression_attribute_values(":due_pk", s(key::due_pk(id)))
            .expression_attribute_values(":lease", s(key::due_sk(id, at + SENDING_LEASE)))
            // The claimed step comes back with the claim: no separate read.
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => match out.attributes() {
                Some(item) => Ok(Claim::Won(Box::new(step_from_item(item)?))),
                None => Err(PortError::Corrupt("claim returned no step".to_owned())),
            },
            Err(e) if is_conditional(&e) => {
                let Some(item) = self.get(key::step(id), "STEP").await? else {
                    return Ok(Claim::Missing);
                };
                Ok(match attr(&item, "status") {
                    Some("sending") => Claim::InFlight {
                        since: attr(&item, "claimed_at")
                            .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
                            .map(|c| c.with_timezone(&Utc)),
                        step: Box::new(step_from_item(&item)?),
                    },
                    _ => Claim::AlreadyDone,
                })
            }
            Err(e) => {
                // The answer was lost: the claim may be ours.
                if self.claimed_by(id, &nonce).await {
                    if let Some(item) = self.get(key::step(id), "STEP").await? {
                        return Ok(Claim::Won(Box::new(step_from_item(&item)?)));
                    }
                }
                Err(unavailable("claim step", e))
            }
        }
    }

    async fn reclaim_stale(
        &self,
        id: &StepId,
        cutoff: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        self.update_step_if(
            id,
            "reclaim step",
            "SET claimed_at = :at, due_sk = :lease",
            "#status = :sending AND claimed_at < :cutoff",
            &[
                (":sending", StepStatus::Sending.as_str().to_owned()),
                (":cutoff", ts(cutoff)),
                (":at", ts(at)),
                (":lease", key::due_sk(id, at + SENDING_LEASE)),
            ],
        )
        .await
    }

    async fn release_claim(&self, id: &StepId, at: DateTime<Utc>) -> Result<(), PortError> {
        // A claim already released (or finished) is fine: nothing to give back.
        self.update_step_if(
            id,
            "release claim",
            "SET #status = :queued, due_pk = :due_pk, due_sk = :lease REMOVE claimed_at, claim_id",
            "#status = :sending",
            &[
                (":sending", StepStatus::Sending.as_str().to_owned()),
                (":queued", StepStatus::Queued.as_str().to_owned()),
                // SQS brings the message back; should it be dead-lettered
                // instead, the lease brings the step back to a sweep.
                (":due_pk", key::due_pk(id)),
                (":lease", key::due_sk(id, at + QUEUE_LEASE)),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn finish_audited(
        &self,
        step: &Step,
        outcome: &StepOutcome,
        record: NewAuditRecord,
        base: Option<FinishBase<'_>>,
    ) -> Result<AuditRecord, PortError> {
        let sends = (outcome.status == StepStatus::Sent).then(|| {
            let entry = SendHistoryEntry::for_step(step, outcome.at);
            match base.and_then(|b| b.facts) {
                // The list as read, without what has aged out, plus this
                // send; only if nothing changed since the read.
                Some(facts) => {
                    let horizon = outcome.at - chrono::Duration::days(RECENT_SENDS_DAYS);
                    let mut fresh: Vec<SendHistoryEntry> = facts
                        .sends
                        .iter()
                        .filter(|e| e.at >= horizon && e.step_id != entry.step_id)
                        .cloned()
                        .collect();
                    fresh.insert(0, entry);
                    SendsChange::Replace {
                        fresh,
                        read_at: facts.ledgers.contact.revision,
                    }
                }
                None => SendsChange::Append(entry),
            }
        });
        let mut update = self.end_update(&step.id, outcome)?;
        if outcome.status == StepStatus::Sent {
            // The step as sent: the version and arm it carried, its parts
            // (in the state it ends in, however it was held meanwhile).
            let sent = Step {
                status: outcome.status,
                ..step.clone()
            };
            update = update
                .set("#data = :data")
                .name("#data", "data")
                .value(":data", s(to_json(&sent)?));
        }
        let mut extra = self.send_records(step, outcome)?;
        extra.extend(self.fallback_items(step, outcome)?);
        // A send whose episode has no earlier send among the contact's
        // recent ones is the episode's first text.
        // Without the facts (a send recovered after its invocation died),
        // the contact's recent sends are read, so a retried send counts its
        // episode as a clean run does.
        let earlier = |sends: &[SendHistoryEntry]| {
            sends
                .iter()
                .any(|s| s.subject == step.subject && s.step_id.as_ref() != Some(&step.id))
        };
        let first_of_episode = outcome.status == StepStatus::Sent
            && match base.and_then(|b| b.facts) {
                Some(facts) => !earlier(&facts.sends),
                None => {
                    let since = outcome.at - chrono::Duration::days(RECENT_SENDS_DAYS);
                    !earlier(&self.send_history(&step.contact_id, since).await?)
                }
            };
        if let Some(mut tally) = Tally::step_end(step, outcome) {
            if first_of_episode {
                tally.add(optline_ports::metric::EPISODES, 1);
            }
            extra.push(super::rollups::tally_item(&tally)?);
        }
        let ending = Ending {
            update,
            held: Held::Claimed,
            extra,
            sends,
        };
        self.end_with_record(step, ending, record, base.map(|b| b.head))
            .await?
            .ok_or_else(|| {
                PortError::Conflict("finish step: the step is no longer claimed".to_owned())
            })
    }

    async fn defer_audited(
        &self,
        step: &Step,
        until: DateTime<Utc>,
        record: NewAuditRecord,
        head: Option<&AuditHead>,
    ) -> Result<AuditRecord, PortError> {
        let mut planned = step.clone();
        planned.due_at = until;
        planned.status = StepStatus::Pending;
        let update = ItemUpdate::new(key::step(&step.id), "STEP")
            .set("#status = :pending")
            .set("due_pk = :due_pk")
            .set("due_sk = :due_sk")
            .set("#data = :data")
            .remove("claimed_at")
            .name("#status", "status")
            .name("#data", "data")
            .value(":pending", s(StepStatus::Pending.as_str()))
            .value(":due_pk", s(key::due_pk(&step.id)))
            .value(":due_sk", s(key::due_sk(&step.id, until)))
            .value(":data", s(to_json(&planned)?));
        let deferral = super::rollups::tally_item(&Tally::deferral(step, record.at))?;
        let ending = Ending {
            update,
            held: Held::Claimed,
            extra: vec![deferral],
            sends: None,
        };
        self.end_with_record(step, ending, record, head)
            .await?
            .ok_or_else(|| {
                PortError::Conflict("defer step: the step is no longer claimed".to_owned())
            })
    }

    async fn unqueue(&self, id: &StepId, at: DateTime<Utc>) -> Result<(), PortError> {
        self.update_step_if(
            id,
            "unqueue step",
            "SET #status = :pending, due_pk = :due_pk, due_sk = :due_sk",
            "#status = :queued",
            &[
                (":pending", StepStatus::Pending.as_str().to_owned()),
                (":queued", StepStatus::Queued.as_str().to_owned()),
                (":due_pk", key::due_pk(id)),
                (":due_sk", key::due_sk(id, at)),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn send_history(
        &self,
        contact: &ContactId,
        since: DateTime<Utc>,
    ) -> Result<Vec<SendHistoryEntry>, PortError> {
        let items = self.query_prefix(&key::contact(contact), "SENT#").await?;
        let mut entries = Vec::new();
        for item in &items {
            let entry: SendHistoryEntry = from_item(item)?;
            if entry.at >= since {
                entries.push(entry);
            }
        }
        entries.sort_by_key(|e| std::cmp::Reverse(e.at));
        Ok(entries)
    }

    async fn contact_record(
        &self,
        contact: &ContactId,
        since: DateTime<Utc>,
    ) -> Result<Option<ContactRecord>, PortError> {
        // Profile, consent events and sends share the contact's partition:
        // one query reads them all.
        let items = self.query_partition(&key::contact(contact), None).await?;
        let mut profile = None;
        let mut consent = Vec::new();
        let mut sends = Vec::new();
        let mut audit_head = None;
        for item in &items {
            match attr(item, "sk") {
                Some("PROFILE") => profile = Some(from_item(item)?),
                Some(sk) if sk.starts_with("CONSENT#") => {
                    consent.push(from_item::<ConsentEvent>(item)?);
                }
                Some(sk) if sk.starts_with("SENT#") => {
                    let entry: SendHistoryEntry = from_item(item)?;
                    if entry.at >= since {
                        sends.push(entry);
                    }
                }
                Some(STATE_SK) => {
                    if let (Some(AttributeValue::N(seq)), Some(AttributeValue::S(hash))) =
                        (item.get("seq"), item.get("hash"))
                    {
                        audit_head = seq.parse().ok().map(|seq| AuditHead {
                            seq,
                            hash: hash.clone(),
                        });
                    }
                }
                _ => {}
            }
        }
        let Some(contact) = profile else {
            return Ok(None);
        };
        consent.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
        sends.sort_by_key(|e| std::cmp::Reverse(e.at));
        Ok(Some(ContactRecord {
            contact,
            consent,
            sends,
            audit_head: Some(audit_head.unwrap_or_else(AuditHead::genesis)),
        }))
    }
}

impl DynamoStore {
    /// One due shard's steps due by `upper`, oldest first, at most `limit`
    /// (pages of 100).
    async fn due_in_shard(
        &self,
        shard: u32,
        upper: &str,
        limit: usize,
    ) -> Result<Vec<Step>, PortError> {
        let mut steps = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let remaining = limit.saturating_sub(steps.len());
            if remaining == 0 {
                break;
            }
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("due")
                .key_condition_expression("due_pk = :shard AND due_sk <= :upper")
                .expression_attribute_values(":shard", s(format!("DUE#{shard}")))
                .expression_attribute_values(":upper", s(upper.to_owned()))
                .limit(i32::try_from(remaining.min(100)).unwrap_or(100))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("query due index", e))?;
            for item in out.items() {
                steps.push(step_from_item(item)?);
            }
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(steps)
    }
}
