//! The DynamoDB adapter: one table, keyed by `pk` / `sk`, with a sparse
//! global secondary index `due` (`due_pk`, `due_sk`) holding only pending
//! steps. The item layout is documented in `docs/data-model.md`.
//!
//! Records are stored whole as JSON in `data`; the attributes that keys,
//! conditions and the index need are stored beside it.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use optline_policy::consent::ConsentFact;
use optline_policy::phone::E164;
use optline_policy::template::review::Lifecycle;
use optline_ports::{
    chain_hash, AuditHead, AuditRecord, AuditTrail, Casework, CheckedClaim, Claim, ConsentEvent,
    ConsentLedger, Contact, ContactDirectory, ContactFacts, ContactId, ContactRecord,
    DecisionReads, DeliveryUpdate, EpisodeOutcome, EventId, FactsRevision, FinishBase,
    NewAuditRecord, Pace, PortError, ReviewItem, RevocationRequest, SendHistoryEntry, SendPacer,
    Step, StepId, StepOutcome, StepSnapshot, StepStatus, StepStore, StepVersion, StoredTemplate,
    TemplateStore, Unclaimed, GENESIS_HASH, OUTCOME_KINDS, RECENT_SENDS_DAYS,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Number of shards of the due index. Each sweep queries every shard.
pub const DUE_SHARDS: u32 = 4;

/// How long a queued step waits for its dispatcher before a sweep
/// enqueues it again (SQS dead-letters a message after 5 receives 180 s
/// apart: 15 minutes; a lease twice as long leaves room for a backlog).
pub const QUEUE_LEASE: chrono::Duration = chrono::Duration::minutes(30);

/// How long a claimed step waits for its invocation to finish before a
/// sweep enqueues it again: longer than dispatch's 5-minute claim lease, so
/// that the message finds the claim stale and completes or ends the send
/// (never a second text), and longer than SQS's own redeliveries.
pub const SENDING_LEASE: chrono::Duration = chrono::Duration::minutes(30);

type Item = HashMap<String, AttributeValue>;

/// The table adapter.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// How long ended steps, send records and carrier-id mappings are kept
    /// (DynamoDB TTL); `None` keeps them. Consent events, disclosure texts,
    /// templates and audit records never get a TTL.
    retention: Option<chrono::Duration>,
}

/// How long a carrier-message dedup marker is kept: carriers retry a
/// webhook for hours, never for weeks.
pub const DEDUP_MARKER_DAYS: i64 = 30;

/// The shortest retention a deployment may configure for send records:
/// six years, the HIPAA documentation retention (45 CFR 164.316(b)(2)),
/// which also covers the TCPA's four-year limitation period (28 U.S.C. 1658).
pub const MIN_RETENTION_DAYS: u32 = 2190;

fn ttl_at(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(at.timestamp().to_string())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn unavailable<E, R>(what: &str, err: SdkError<E, R>) -> PortError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    PortError::Unavailable(format!("{what}: {}", DisplayErrorContext(err)))
}

fn is_conditional<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> bool {
    err.as_service_error()
        .and_then(|e| e.code())
        .is_some_and(|c| {
            c == "ConditionalCheckFailedException" || c == "TransactionCanceledException"
        })
}

fn to_json<T: Serialize>(value: &T) -> Result<String, PortError> {
    serde_json::to_string(value).map_err(|e| PortError::Corrupt(e.to_string()))
}

fn from_item<T: DeserializeOwned>(item: &Item) -> Result<T, PortError> {
    match item.get("data") {
        Some(AttributeValue::S(json)) => {
            serde_json::from_str(json).map_err(|e| PortError::Corrupt(e.to_string()))
        }
        _ => Err(PortError::Corrupt("item has no data attribute".to_owned())),
    }
}

fn contact_pk(id: &ContactId) -> String {
    format!("CONTACT#{id}")
}

fn phone_pk(phone: &E164) -> String {
    format!("PHONE#{}", phone.as_str())
}

fn step_pk(id: &StepId) -> String {
    format!("STEP#{id}")
}

fn template_pk(id: &str) -> String {
    format!("TEMPLATE#{id}")
}

fn template_sk(version: u32) -> String {
    format!("V#{version:010}")
}

/// The partition listing every template id.
const TEMPLATE_CATALOG_PK: &str = "TEMPLATES";

fn audit_pk(id: &ContactId) -> String {
    format!("AUDIT#{id}")
}

/// The due-index partition of a step: a stable hash of its id.
pub fn due_shard(id: &StepId) -> u32 {
    let digest = Sha256::digest(id.as_str().as_bytes());
    let first = digest.first().copied().unwrap_or(0);
    u32::from(first) % DUE_SHARDS
}

fn due_sk(step: &StepId, due: DateTime<Utc>) -> String {
    format!("{}#{}", ts(due), step)
}

impl DynamoStore {
    /// An adapter over `table`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            retention: None,
        }
    }

    /// Expires ended steps, send records and carrier-id mappings `days`
    /// after they end. Refused below [`MIN_RETENTION_DAYS`].
    pub fn with_retention(mut self, days: Option<u32>) -> Result<Self, PortError> {
        if let Some(days) = days {
            if days < MIN_RETENTION_DAYS {
                return Err(PortError::Invalid(format!(
                    "retention must be at least {MIN_RETENTION_DAYS} days (six years)"
                )));
            }
            self.retention = Some(chrono::Duration::days(i64::from(days)));
        }
        Ok(self)
    }

    /// Puts items without conditions in one `BatchWriteItem`, retrying the
    /// unprocessed ones.
    async fn batch_put(&self, items: Vec<Item>) -> Result<(), PortError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let mut requests = Vec::with_capacity(items.len());
        for item in items {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| PortError::Invalid(e.to_string()))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        for attempt in 0..8u32 {
            if requests.is_empty() {
                return Ok(());
            }
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
            }
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(|e| unavailable("batch write", e))?;
            requests = out
                .unprocessed_items()
                .and_then(|m| m.get(&self.table))
                .cloned()
                .unwrap_or_default();
        }
        Err(PortError::Unavailable(
            "batch write left items unprocessed".to_owned(),
        ))
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn query_prefix(&self, pk: &str, prefix: &str) -> Result<Vec<Item>, PortError> {
        self.query_partition(pk, Some(prefix)).await
    }

    /// Every item of partition `pk` (whose sort key starts with `prefix`,
    /// when given), following pagination; consistent reads.
    async fn query_partition(
        &self,
        pk: &str,
        prefix: Option<&str>,
    ) -> Result<Vec<Item>, PortError> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(pk));
            query = match prefix {
                Some(prefix) => query
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix)),
                None => query.key_condition_expression("pk = :pk"),
            };
            let out = query
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| unavailable("query", e))?;
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        Ok(items)
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, PortError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| unavailable("get item", e))?;
        Ok(out.item().cloned())
    }

    fn put(&self, item: Item, condition: Option<&str>) -> Result<TransactWriteItem, PortError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(|e| PortError::Invalid(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A step's final-state writes: the send records (for a send: history
    /// and carrier-id mapping) and the step's update.
    fn finish_parts(
        &self,
        step: &Step,
        outcome: &StepOutcome,
    ) -> Result<(Vec<Item>, ItemUpdate), PortError> {
        let id = &step.id;
        let expires = self.retention.map(|keep| ttl_at(outcome.at + keep));
        let mut items = Vec::new();
        if outcome.status == StepStatus::Sent {
            let entry = SendHistoryEntry::for_step(step, outcome.at);
            // Keyed by step id: a retried finish rewrites the same items.
            let mut history: Item = HashMap::from([
                ("pk".to_owned(), s(contact_pk(&step.contact_id))),
                ("sk".to_owned(), s(format!("SENT#{id}"))),
                ("kind".to_owned(), s("send")),
                ("step_id".to_owned(), s(id.as_str())),
                ("data".to_owned(), s(to_json(&entry)?)),
            ]);
            if let Some(expires) = &expires {
                history.insert("ttl".to_owned(), expires.clone());
            }
            items.push(history);
            if let Some(carrier_id) = &outcome.carrier_message_id {
                // Delivery reports name the carrier's id; this finds the step.
                let mut mapping: Item = HashMap::from([
                    ("pk".to_owned(), s(format!("CARRIER#{carrier_id}"))),
                    ("sk".to_owned(), s("STEP")),
                    ("kind".to_owned(), s("carrier_mapping")),
                    ("step_id".to_owned(), s(id.as_str())),
                    ("contact_id".to_owned(), s(step.contact_id.as_str())),
                ]);
                if let Some(expires) = &expires {
                    mapping.insert("ttl".to_owned(), expires.clone());
                }
                items.push(mapping);
            }
        }
        Ok((items, self.end_update(id, outcome)?))
    }

    /// The update that gives a step its final state and takes it out of
    /// the due index (with its expiry, when the deployment sets retention).
    fn end_update(&self, id: &StepId, outcome: &StepOutcome) -> Result<ItemUpdate, PortError> {
        let mut update = ItemUpdate::new(step_pk(id), "STEP")
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

    /// The transaction items of one audit append: the record, only if its
    /// sequence number is free, and the head on the contact's state item
    /// (with the contact's recent sends, when the record is about a send).
    fn audit_items(
        &self,
        full: &AuditRecord,
        sends: Option<&SendsChange>,
    ) -> Result<Vec<TransactWriteItem>, PortError> {
        let subject = &full.content.contact_id;
        let record: Item = HashMap::from([
            ("pk".to_owned(), s(audit_pk(subject))),
            ("sk".to_owned(), s(format!("REC#{:012}", full.seq))),
            ("kind".to_owned(), s("audit")),
            ("data".to_owned(), s(to_json(full)?)),
        ]);
        let mut state = state_update(contact_pk(subject))
            .set("#seq = :seq")
            .set("#hash = :hash")
            .name("#seq", "seq")
            .name("#hash", "hash")
            .value(":seq", AttributeValue::N(full.seq.to_string()))
            .value(":hash", s(full.hash.clone()));
        if let Some(change) = sends {
            state = change.apply(state)?;
        }
        Ok(vec![
            self.put(record, Some("attribute_not_exists(pk)"))?,
            state.transact(&self.table)?,
        ])
    }

    /// Runs a transaction; a cancelled one gives each item's reason code
    /// (`None` for the items that were fine, `ConditionalCheckFailed`,
    /// `TransactionConflict`, ...), in the order of `items`.
    async fn transact_codes(
        &self,
        what: &str,
        items: Vec<TransactWriteItem>,
    ) -> Result<Tx, PortError> {
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Tx::Committed),
            Err(e) => {
                if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
                    e.as_service_error()
                {
                    return Ok(Tx::Cancelled(
                        cancelled
                            .cancellation_reasons()
                            .iter()
                            .map(|r| r.code().unwrap_or("None").to_owned())
                            .collect(),
                    ));
                }
                if is_conditional(&e) {
                    return Ok(Tx::Cancelled(Vec::new()));
                }
                Err(unavailable(what, e))
            }
        }
    }

    /// Reads items by key with consistent reads, 100 keys a call, retrying
    /// unprocessed keys. Keys may repeat; items that do not exist are absent.
    async fn batch_get(
        &self,
        keys: &[(String, String)],
    ) -> Result<HashMap<(String, String), Item>, PortError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut unique: Vec<&(String, String)> = keys.iter().collect();
        unique.sort();
        unique.dedup();
        let mut found = HashMap::with_capacity(unique.len());
        for chunk in unique.chunks(100) {
            let mut pending: Vec<Item> = chunk
                .iter()
                .map(|(pk, sk)| {
                    HashMap::from([
                        ("pk".to_owned(), s(pk.clone())),
                        ("sk".to_owned(), s(sk.clone())),
                    ])
                })
                .collect();
            for attempt in 0..8u32 {
                if pending.is_empty() {
                    break;
                }
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                }
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| PortError::Invalid(e.to_string()))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(|e| unavailable("batch get", e))?;
                for item in out
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    if let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) =
                        (item.get("pk"), item.get("sk"))
                    {
                        found.insert((pk.clone(), sk.clone()), item.clone());
                    }
                }
                pending = out
                    .unprocessed_keys()
                    .and_then(|m| m.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
            }
            if !pending.is_empty() {
                return Err(PortError::Unavailable(
                    "batch get left keys unprocessed".to_owned(),
                ));
            }
        }
        Ok(found)
    }

    /// A state item's digest: consent facts (read from the events when the
    /// digest overflowed), recent sends since `since` (each step once),
    /// audit head and revision.
    async fn digest(
        &self,
        pk: &str,
        item: Option<&Item>,
        since: DateTime<Utc>,
    ) -> Result<StateDigest, PortError> {
        let Some(item) = item else {
            return Ok(StateDigest::default());
        };
        let revision = match item.get("rev") {
            Some(AttributeValue::N(n)) => Some(
                n.parse::<u64>()
                    .map_err(|e| PortError::Corrupt(format!("state revision: {e}")))?,
            ),
            _ => None,
        };
        let facts = if matches!(item.get("overflow"), Some(AttributeValue::Bool(true))) {
            let events = self.query_prefix(pk, "CONSENT#").await?;
            events
                .iter()
                .map(|item| from_item::<ConsentEvent>(item).map(|e| e.fact()))
                .collect::<Result<Vec<_>, _>>()?
        } else {
            json_list::<ConsentFact>(item.get("facts"))?
        };
        let mut sends: Vec<SendHistoryEntry> = json_list::<SendHistoryEntry>(item.get("sends"))?
            .into_iter()
            .filter(|e| e.at >= since)
            .collect();
        sends.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.step_id.cmp(&b.step_id)));
        // An entry appended twice (a finish retried the long way) counts once.
        let mut seen = std::collections::HashSet::new();
        sends.retain(|e| e.step_id.as_ref().is_none_or(|id| seen.insert(id.clone())));
        let head = match (item.get("seq"), item.get("hash")) {
            (Some(AttributeValue::N(seq)), Some(AttributeValue::S(hash))) => {
                seq.parse().ok().map(|seq| AuditHead {
                    seq,
                    hash: hash.clone(),
                })
            }
            _ => None,
        };
        Ok(StateDigest {
            revision,
            facts,
            sends,
            head,
        })
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
            .key("pk", s(step_pk(id)))
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

    /// A transaction item that holds only if the state item in partition
    /// `pk` is still at `revision`.
    fn revision_check(
        &self,
        pk: String,
        revision: Option<u64>,
    ) -> Result<TransactWriteItem, PortError> {
        let held = revision_condition(ItemUpdate::new(pk, STATE_SK), revision);
        let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(held.pk))
            .key("sk", s(held.sk))
            .set_condition_expression(held.condition)
            .set_expression_attribute_names(Some(held.names))
            .set_expression_attribute_values((!held.values.is_empty()).then_some(held.values))
            .build()
            .map_err(|e| PortError::Invalid(e.to_string()))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    async fn transact(&self, what: &str, items: Vec<TransactWriteItem>) -> Result<(), PortError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_conditional(&e) => {
                Err(PortError::Conflict(format!("{what}: condition failed")))
            }
            Err(e) => Err(unavailable(what, e)),
        }
    }
}

#[async_trait]
impl ContactDirectory for DynamoStore {
    async fn create_contact(&self, contact: &Contact) -> Result<(), PortError> {
        let data = to_json(contact)?;
        let profile: Item = HashMap::from([
            ("pk".to_owned(), s(contact_pk(&contact.id))),
            ("sk".to_owned(), s("PROFILE")),
            ("kind".to_owned(), s("contact")),
            ("data".to_owned(), s(data)),
        ]);
        let index: Item = HashMap::from([
            ("pk".to_owned(), s(phone_pk(&contact.phone))),
            ("sk".to_owned(), s(contact_pk(&contact.id))),
            ("kind".to_owned(), s("phone_index")),
            ("contact_id".to_owned(), s(contact.id.as_str())),
        ]);
        self.transact(
            "create contact",
            vec![
                self.put(profile, Some("attribute_not_exists(pk)"))?,
                self.put(index, None)?,
            ],
        )
        .await
    }

    async fn contact(&self, id: &ContactId) -> Result<Option<Contact>, PortError> {
        match self.get(contact_pk(id), "PROFILE").await? {
            Some(item) => Ok(Some(from_item(&item)?)),
            None => Ok(None),
        }
    }

    async fn contacts_by_phone(&self, phone: &E164) -> Result<Vec<ContactId>, PortError> {
        let items = self.query_prefix(&phone_pk(phone), "CONTACT#").await?;
        items
            .iter()
            .map(|item| match item.get("contact_id") {
                Some(AttributeValue::S(id)) => ContactId::parse(id),
                _ => Err(PortError::Corrupt(
                    "phone index without contact id".to_owned(),
                )),
            })
            .collect()
    }
}

#[async_trait]
impl ConsentLedger for DynamoStore {
    async fn append_consent(
        &self,
        event: &ConsentEvent,
        disclosure_text: Option<&str>,
    ) -> Result<bool, PortError> {
        let pk = match (&event.scope, &event.contact_id) {
            (optline_policy::consent::ConsentScope::Contact, Some(contact)) => contact_pk(contact),
            (optline_policy::consent::ConsentScope::Contact, None) => {
                return Err(PortError::Invalid(
                    "a contact-scoped consent event needs a contact id".to_owned(),
                ))
            }
            (optline_policy::consent::ConsentScope::Phone, _) => phone_pk(&event.phone),
        };
        // The sort key is the event id alone: an event with a deterministic id
        // (e.g. derived from the carrier's message id) is written once however
        // often its webhook is retried.
        let sk = format!("CONSENT#{}", event.id);
        let item: Item = HashMap::from([
            ("pk".to_owned(), s(pk.clone())),
            ("sk".to_owned(), s(sk)),
            ("kind".to_owned(), s("consent")),
            ("event_id".to_owned(), s(event.id.as_str())),
            ("data".to_owned(), s(to_json(event)?)),
        ]);
        let fact = s(to_json(&event.fact())?);
        let mut overflowed = false;
        for attempt in 0..AUDIT_APPEND_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(10 << attempt.min(6))).await;
            }
            let mut writes = vec![self.put(item.clone(), Some("attribute_not_exists(pk)"))?];
            // The partition's state item moves in the same transaction: its
            // revision (which fails any claim made on the facts before it),
            // and its digest of facts, which dispatch reads instead of the
            // events.
            let state = state_update(pk.clone())
                .add("#rev :one")
                .name("#rev", "rev")
                .value(":one", AttributeValue::N("1".to_owned()));
            let state = if overflowed {
                state
                    .set("#overflow = :overflow")
                    .name("#overflow", "overflow")
                    .value(":overflow", AttributeValue::Bool(true))
            } else {
                state
                    .set("#facts = list_append(if_not_exists(#facts, :no_facts), :fact)")
                    .when("attribute_not_exists(#facts) OR size(#facts) < :max_facts")
                    .name("#facts", "facts")
                    .value(":no_facts", AttributeValue::L(Vec::new()))
                    .value(":fact", AttributeValue::L(vec![fact.clone()]))
                    .value(
                        ":max_facts",
                        AttributeValue::N(MAX_DIGEST_FACTS.to_string()),
                    )
            };
            writes.push(state.transact(&self.table)?);
            if let (Some(text), Some(sha)) = (disclosure_text, event.disclosure_sha256.as_deref()) {
                // Content-addressed: writing the same text twice is harmless, and
                // a different text can never sit under the same hash.
                let disclosure: Item = HashMap::from([
                    ("pk".to_owned(), s(format!("DISCLOSURE#{sha}"))),
                    ("sk".to_owned(), s("TEXT")),
                    ("kind".to_owned(), s("disclosure")),
                    ("text".to_owned(), s(text)),
                ]);
                writes.push(self.put(disclosure, None)?);
            }
            match self.transact_codes("append consent", writes).await? {
                Tx::Committed => return Ok(true),
                // The event is already recorded (a retried webhook).
                Tx::Cancelled(codes) if Tx::failed(&codes, 0) => return Ok(false),
                // The digest is full: record the event and mark the digest.
                Tx::Cancelled(codes) if Tx::failed(&codes, 1) => overflowed = true,
                // A conflict with a concurrent write of the state item (an
                // audit append, another event): try again. A revocation is
                // never dropped; after the last attempt the caller sees an
                // error and the carrier retries.
                Tx::Cancelled(_) => {}
            }
        }
        Err(PortError::Unavailable(
            "append consent: the state item stayed busy".to_owned(),
        ))
    }

    async fn consent_events(
        &self,
        contact: &ContactId,
        phone: &E164,
    ) -> Result<Vec<ConsentEvent>, PortError> {
        let mut events = Vec::new();
        for pk in [contact_pk(contact), phone_pk(phone)] {
            for item in self.query_prefix(&pk, "CONSENT#").await? {
                events.push(from_item::<ConsentEvent>(&item)?);
            }
        }
        events.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
        Ok(events)
    }

    async fn phone_consent_events(&self, phone: &E164) -> Result<Vec<ConsentEvent>, PortError> {
        let mut events = Vec::new();
        for item in self.query_prefix(&phone_pk(phone), "CONSENT#").await? {
            events.push(from_item::<ConsentEvent>(&item)?);
        }
        events.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
        Ok(events)
    }

    async fn disclosure(&self, sha256: &str) -> Result<Option<String>, PortError> {
        Ok(self
            .get(format!("DISCLOSURE#{sha256}"), "TEXT")
            .await?
            .and_then(|item| match item.get("text") {
                Some(AttributeValue::S(text)) => Some(text.clone()),
                _ => None,
            }))
    }

    async fn first_sighting(&self, carrier_message_id: &str) -> Result<bool, PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("CARRIER_MSG#{carrier_message_id}")))
            .item("sk", s("SEEN"))
            .item("kind", s("carrier_message"))
            .item(
                "ttl",
                ttl_at(Utc::now() + chrono::Duration::days(DEDUP_MARKER_DAYS)),
            )
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable("record carrier message", e)),
        }
    }
}

#[async_trait]
impl StepStore for DynamoStore {
    async fn put_step(&self, step: &Step) -> Result<bool, PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(step_item(step)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable("put step", e)),
        }
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
        match self.get(step_pk(id), "STEP").await? {
            Some(item) => Ok(Some(step_from_item(&item)?)),
            None => Ok(None),
        }
    }

    async fn due_steps(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Step>, PortError> {
        // Each shard is read oldest first, up to `limit`; the oldest `limit`
        // of all shards are among those, so a backlog in one shard never
        // holds back older steps in another.
        let upper = format!("{}#~", ts(now));
        let mut steps: Vec<Step> = Vec::new();
        for shard in 0..DUE_SHARDS {
            let mut start: Option<Item> = None;
            let mut from_shard = 0usize;
            loop {
                let remaining = limit.saturating_sub(from_shard);
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
                    .expression_attribute_values(":upper", s(upper.clone()))
                    .limit(i32::try_from(remaining.min(100)).unwrap_or(100))
                    .set_exclusive_start_key(start.take())
                    .send()
                    .await
                    .map_err(|e| unavailable("query due index", e))?;
                for item in out.items() {
                    steps.push(step_from_item(item)?);
                    from_shard += 1;
                }
                match out.last_evaluated_key() {
                    Some(key) if !key.is_empty() => start = Some(key.clone()),
                    _ => break,
                }
            }
        }
        steps.sort_by(|a, b| a.due_at.cmp(&b.due_at).then_with(|| a.id.cmp(&b.id)));
        steps.truncate(limit);
        Ok(steps)
    }

    async fn mark_queued(&self, id: &StepId, at: DateTime<Utc>) -> Result<bool, PortError> {
        // Queued steps stay in the due index until a dispatcher claims
        // them, due again when their queue lease lapses: a step whose
        // message never reached the queue (the sweep died in between, the
        // message was dead-lettered) is enqueued again, never lost.
        self.update_step_if(
            id,
            "mark step queued",
            "SET #status = :queued, queued_at = :at, due_sk = :lease",
            "#status = :pending",
            &[
                (":queued", StepStatus::Queued.as_str().to_owned()),
                (":pending", StepStatus::Pending.as_str().to_owned()),
                (":at", ts(at)),
                (":lease", due_sk(id, at + QUEUE_LEASE)),
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
                (":lease", due_sk(id, at + QUEUE_LEASE)),
                (":upper", format!("{}#~", ts(at))),
            ],
        )
        .await
    }

    async fn exclude_step(
        &self,
        id: &StepId,
        expected: Unclaimed<'_>,
        outcome: &StepOutcome,
    ) -> Result<bool, PortError> {
        expect(self.end_update(id, outcome)?, expected)
            .send(&self.client, &self.table, "exclude step")
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
        if let Some(head) = head {
            // One transaction: the step ends (only if it is still as
            // expected) with its audit record and the head.
            let full = chain_next(head.seq, head.hash.clone(), record.clone());
            let mut items =
                vec![expect(self.end_update(&step.id, outcome)?, expected).transact(&self.table)?];
            items.extend(self.audit_items(&full, None)?);
            match self
                .transact_codes("exclude step with its audit record", items)
                .await?
            {
                Tx::Committed => return Ok(Some(full)),
                // The step moved on: nothing to record.
                Tx::Cancelled(codes) if Tx::failed(&codes, 0) => return Ok(None),
                // The chain moved (or a conflict): the long way below.
                Tx::Cancelled(_) => {}
            }
        }
        if !self.exclude_step(&step.id, expected, outcome).await? {
            return Ok(None);
        }
        self.append_audit(record).await.map(Some)
    }

    async fn claim_send(&self, id: &StepId, at: DateTime<Utc>) -> Result<Claim, PortError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(step_pk(id)))
            .key("sk", s("STEP"))
            .update_expression(
                "SET #status = :sending, claimed_at = :at, due_pk = :due_pk, due_sk = :lease",
            )
            .condition_expression("#status = :queued")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":sending", s(StepStatus::Sending.as_str()))
            .expression_attribute_values(":queued", s(StepStatus::Queued.as_str()))
            .expression_attribute_values(":at", s(ts(at)))
            // Due again only if its invocation dies and its message is lost.
            .expression_attribute_values(":due_pk", s(format!("DUE#{}", due_shard(id))))
            .expression_attribute_values(":lease", s(due_sk(id, at + SENDING_LEASE)))
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
                let Some(item) = self.get(step_pk(id), "STEP").await? else {
                    return Ok(Claim::Missing);
                };
                let attr = |name: &str| match item.get(name) {
                    Some(AttributeValue::S(v)) => Some(v.clone()),
                    _ => None,
                };
                Ok(match attr("status").as_deref() {
                    Some("sending") => Claim::InFlight {
                        since: attr("claimed_at")
                            .and_then(|c| DateTime::parse_from_rfc3339(&c).ok())
                            .map(|c| c.with_timezone(&Utc)),
                        step: Box::new(step_from_item(&item)?),
                    },
                    _ => Claim::AlreadyDone,
                })
            }
            Err(e) => Err(unavailable("claim step", e)),
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
                (":lease", due_sk(id, at + SENDING_LEASE)),
            ],
        )
        .await
    }

    async fn release_claim(&self, id: &StepId, at: DateTime<Utc>) -> Result<(), PortError> {
        // A claim already released (or finished) is fine: nothing to give back.
        self.update_step_if(
            id,
            "release claim",
            "SET #status = :queued, due_pk = :due_pk, due_sk = :lease REMOVE claimed_at",
            "#status = :sending",
            &[
                (":sending", StepStatus::Sending.as_str().to_owned()),
                (":queued", StepStatus::Queued.as_str().to_owned()),
                // SQS brings the message back; should it be dead-lettered
                // instead, the lease brings the step back to a sweep.
                (":due_pk", format!("DUE#{}", due_shard(id))),
                (":lease", due_sk(id, at + QUEUE_LEASE)),
            ],
        )
        .await
        .map(|_| ())
    }

    async fn finish_step(&self, step: &Step, outcome: &StepOutcome) -> Result<(), PortError> {
        let (records, update) = self.finish_parts(step, outcome)?;
        if !records.is_empty() {
            // Written before the status: see the trait's contract.
            self.batch_put(records).await?;
        }
        if outcome.status == StepStatus::Sent {
            // The contact's recent sends (read for caps) learn of it too,
            // before the status; a repeat counts once.
            let entry = SendHistoryEntry::for_step(step, outcome.at);
            SendsChange::Append(entry)
                .apply(state_update(contact_pk(&step.contact_id)))?
                .send(&self.client, &self.table, "record recent send")
                .await?;
        }
        update
            .send(&self.client, &self.table, "finish step")
            .await?;
        Ok(())
    }

    async fn finish_audited(
        &self,
        step: &Step,
        outcome: &StepOutcome,
        record: NewAuditRecord,
        base: Option<FinishBase<'_>>,
    ) -> Result<AuditRecord, PortError> {
        if let Some(base) = base {
            // One transaction: the send records, the step's status, the
            // audit record (only if it is still the next one) and the
            // contact's state item (head, and recent sends for a send).
            let full = chain_next(base.head.seq, base.head.hash.clone(), record.clone());
            let (records, update) = self.finish_parts(step, outcome)?;
            let sends = (outcome.status == StepStatus::Sent).then(|| {
                let entry = SendHistoryEntry::for_step(step, outcome.at);
                match base.facts {
                    // The list as read, without what has aged out, plus
                    // this send; only if nothing changed since the read.
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
                            read_at: facts.revision.contact,
                        }
                    }
                    None => SendsChange::Append(entry),
                }
            });
            let mut items = Vec::with_capacity(records.len() + 3);
            for item in records {
                items.push(self.put(item, None)?);
            }
            items.push(update.transact(&self.table)?);
            items.extend(self.audit_items(&full, sends.as_ref())?);
            match self
                .transact_codes("finish step with its audit record", items)
                .await?
            {
                Tx::Committed => return Ok(full),
                // The chain or the contact's facts moved (or the
                // transaction met another): nothing was written; go the
                // long way below.
                Tx::Cancelled(_) => {}
            }
        }
        self.finish_step(step, outcome).await?;
        self.append_audit(record).await
    }

    async fn was_sent(&self, step: &Step) -> Result<bool, PortError> {
        Ok(self
            .get(contact_pk(&step.contact_id), &format!("SENT#{}", step.id))
            .await?
            .is_some())
    }

    async fn defer_step(&self, id: &StepId, until: DateTime<Utc>) -> Result<(), PortError> {
        let step = self
            .step(id)
            .await?
            .ok_or_else(|| PortError::Invalid("no such step".to_owned()))?;
        let mut planned = step.clone();
        planned.due_at = until;
        planned.status = StepStatus::Pending;
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(step_pk(id)))
            .key("sk", s("STEP"))
            .update_expression(
                "SET #status = :pending, due_pk = :due_pk, due_sk = :due_sk, #data = :data",
            )
            .condition_expression("#status IN (:queued, :sending)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#data", "data")
            .expression_attribute_values(":pending", s(StepStatus::Pending.as_str()))
            .expression_attribute_values(":queued", s(StepStatus::Queued.as_str()))
            .expression_attribute_values(":sending", s(StepStatus::Sending.as_str()))
            .expression_attribute_values(":due_pk", s(format!("DUE#{}", due_shard(id))))
            .expression_attribute_values(":due_sk", s(due_sk(id, until)))
            .expression_attribute_values(":data", s(to_json(&planned)?))
            .send()
            .await
            .map_err(|e| {
                if is_conditional(&e) {
                    PortError::Conflict("defer step: not queued".to_owned())
                } else {
                    unavailable("defer step", e)
                }
            })?;
        Ok(())
    }

    async fn send_history(
        &self,
        contact: &ContactId,
        since: DateTime<Utc>,
    ) -> Result<Vec<SendHistoryEntry>, PortError> {
        let items = self.query_prefix(&contact_pk(contact), "SENT#").await?;
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
        let items = self.query_partition(&contact_pk(contact), None).await?;
        let mut profile = None;
        let mut consent = Vec::new();
        let mut sends = Vec::new();
        let mut audit_head = None;
        for item in &items {
            match item.get("sk") {
                Some(AttributeValue::S(sk)) if sk == "PROFILE" => {
                    profile = Some(from_item::<Contact>(item)?);
                }
                Some(AttributeValue::S(sk)) if sk.starts_with("CONSENT#") => {
                    consent.push(from_item::<ConsentEvent>(item)?);
                }
                Some(AttributeValue::S(sk)) if sk.starts_with("SENT#") => {
                    let entry: SendHistoryEntry = from_item(item)?;
                    if entry.at >= since {
                        sends.push(entry);
                    }
                }
                Some(AttributeValue::S(sk)) if sk == STATE_SK => {
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
            // No head beside the contact: its chain is empty, or predates
            // heads. Either way the genesis is a safe hint: a write built on
            // it is conditional on record 1 not existing.
            audit_head: Some(audit_head.unwrap_or_else(|| AuditHead {
                seq: 0,
                hash: GENESIS_HASH.to_owned(),
            })),
        }))
    }
}

#[async_trait]
impl DecisionReads for DynamoStore {
    async fn step_snapshots(
        &self,
        ids: &[StepId],
    ) -> Result<HashMap<StepId, StepSnapshot>, PortError> {
        let keys: Vec<(String, String)> = ids
            .iter()
            .map(|id| (step_pk(id), "STEP".to_owned()))
            .collect();
        let items = self.batch_get(&keys).await?;
        let mut snapshots = HashMap::with_capacity(items.len());
        for item in items.values() {
            let step = step_from_item(item)?;
            let version = match item.get("data") {
                Some(AttributeValue::S(data)) => StepVersion(data.clone()),
                _ => return Err(PortError::Corrupt("step without data".to_owned())),
            };
            let claimed_at = match item.get("claimed_at") {
                Some(AttributeValue::S(at)) => DateTime::parse_from_rfc3339(at)
                    .ok()
                    .map(|at| at.with_timezone(&Utc)),
                _ => None,
            };
            snapshots.insert(
                step.id.clone(),
                StepSnapshot {
                    step,
                    claimed_at,
                    version,
                },
            );
        }
        Ok(snapshots)
    }

    async fn contact_facts(
        &self,
        contacts: &[ContactId],
        now: DateTime<Utc>,
    ) -> Result<HashMap<ContactId, ContactFacts>, PortError> {
        let since = now - chrono::Duration::days(RECENT_SENDS_DAYS);
        // First the profiles and their state items, then the numbers' state
        // items (the number is on the profile): two calls for a batch.
        let mut keys = Vec::with_capacity(contacts.len() * 2);
        for id in contacts {
            keys.push((contact_pk(id), "PROFILE".to_owned()));
            keys.push((contact_pk(id), STATE_SK.to_owned()));
        }
        let first = self.batch_get(&keys).await?;
        let mut found: Vec<(Contact, String)> = Vec::with_capacity(contacts.len());
        for id in contacts {
            let pk = contact_pk(id);
            if found.iter().any(|(_, seen)| *seen == pk) {
                continue;
            }
            if let Some(profile) = first.get(&(pk.clone(), "PROFILE".to_owned())) {
                found.push((from_item::<Contact>(profile)?, pk));
            }
        }
        let phone_keys: Vec<(String, String)> = found
            .iter()
            .map(|(contact, _)| (phone_pk(&contact.phone), STATE_SK.to_owned()))
            .collect();
        let numbers = if phone_keys.is_empty() {
            HashMap::new()
        } else {
            self.batch_get(&phone_keys).await?
        };
        let mut facts = HashMap::with_capacity(found.len());
        for (contact, pk) in found {
            let own = self
                .digest(&pk, first.get(&(pk.clone(), STATE_SK.to_owned())), since)
                .await?;
            let number_pk = phone_pk(&contact.phone);
            let number = self
                .digest(
                    &number_pk,
                    numbers.get(&(number_pk.clone(), STATE_SK.to_owned())),
                    since,
                )
                .await?;
            let mut consent = own.facts;
            consent.extend(number.facts);
            consent.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
            facts.insert(
                contact.id.clone(),
                ContactFacts {
                    consent,
                    sends: own.sends,
                    // No head: the chain is empty (or older than state
                    // items). The genesis is a safe hint either way: a
                    // write built on it is conditional on record 1 not
                    // existing.
                    audit_head: Some(own.head.unwrap_or_else(|| AuditHead {
                        seq: 0,
                        hash: GENESIS_HASH.to_owned(),
                    })),
                    revision: FactsRevision {
                        contact: own.revision,
                        phone: number.revision,
                    },
                    contact,
                },
            );
        }
        Ok(facts)
    }

    async fn episode_answers(
        &self,
        subjects: &[String],
    ) -> Result<HashMap<String, String>, PortError> {
        let mut keys = Vec::with_capacity(subjects.len() * OUTCOME_KINDS.len());
        for subject in subjects {
            for kind in OUTCOME_KINDS {
                keys.push((format!("EPISODE#{subject}"), format!("OUTCOME#{kind}")));
            }
        }
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let items = self.batch_get(&keys).await?;
        let mut answers = HashMap::new();
        for subject in subjects {
            let pk = format!("EPISODE#{subject}");
            if let Some(kind) = OUTCOME_KINDS
                .iter()
                .find(|kind| items.contains_key(&(pk.clone(), format!("OUTCOME#{kind}"))))
            {
                answers.insert(subject.clone(), (*kind).to_owned());
            }
        }
        Ok(answers)
    }

    async fn claim_checked(
        &self,
        snapshot: &StepSnapshot,
        facts: &ContactFacts,
        at: DateTime<Utc>,
    ) -> Result<CheckedClaim, PortError> {
        let claim = expect(
            ItemUpdate::new(step_pk(&snapshot.step.id), "STEP")
                .set("#status = :sending")
                .set("claimed_at = :at")
                .set("due_pk = :due_pk")
                .set("due_sk = :lease")
                .name("#status", "status")
                .value(":sending", s(StepStatus::Sending.as_str()))
                .value(":at", s(ts(at)))
                .value(
                    ":due_pk",
                    s(format!("DUE#{}", due_shard(&snapshot.step.id))),
                )
                .value(":lease", s(due_sk(&snapshot.step.id, at + SENDING_LEASE))),
            Unclaimed::Queued(&snapshot.version),
        );
        let items = vec![
            claim.transact(&self.table)?,
            self.revision_check(contact_pk(&facts.contact.id), facts.revision.contact)?,
            self.revision_check(phone_pk(&facts.contact.phone), facts.revision.phone)?,
        ];
        Ok(match self.transact_codes("claim step", items).await? {
            Tx::Committed => CheckedClaim::Won,
            Tx::Cancelled(codes)
                if codes.is_empty()
                    || codes.first().is_some_and(|c| {
                        c == "ConditionalCheckFailed" || c == "TransactionConflict"
                    }) =>
            {
                CheckedClaim::StepMoved
            }
            Tx::Cancelled(_) => CheckedClaim::FactsMoved,
        })
    }
}

/// The sort key of the state item kept in a contact's partition and in a
/// phone number's: the digest a send decision reads (see
/// `docs/data-model.md`).
const STATE_SK: &str = "STATE";

/// Most consent facts a state item's digest holds; past this it is marked
/// `overflow` and readers fold the partition's events instead (an item may
/// hold 400 KB; a fact takes about 250 bytes).
const MAX_DIGEST_FACTS: usize = 400;

/// The record that follows `seq` / `prev_hash` in a chain.
fn chain_next(seq: u64, prev_hash: String, content: NewAuditRecord) -> AuditRecord {
    let hash = chain_hash(&prev_hash, &content);
    AuditRecord {
        seq: seq + 1,
        prev_hash,
        hash,
        content,
    }
}

/// One item's update: key, `SET` / `ADD` / `REMOVE` clauses, condition and
/// attributes, usable alone or in a transaction.
#[derive(Debug, Clone)]
struct ItemUpdate {
    pk: String,
    sk: String,
    sets: Vec<String>,
    adds: Vec<String>,
    removes: Vec<String>,
    condition: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl ItemUpdate {
    fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
        Self {
            pk: pk.into(),
            sk: sk.into(),
            sets: Vec::new(),
            adds: Vec::new(),
            removes: Vec::new(),
            condition: None,
            names: HashMap::new(),
            values: HashMap::new(),
        }
    }

    fn set(mut self, clause: &str) -> Self {
        self.sets.push(clause.to_owned());
        self
    }

    fn add(mut self, clause: &str) -> Self {
        self.adds.push(clause.to_owned());
        self
    }

    fn remove(mut self, path: &str) -> Self {
        self.removes.push(path.to_owned());
        self
    }

    /// Adds a condition, joined to any earlier one with `AND`.
    fn when(mut self, condition: &str) -> Self {
        self.condition = Some(match self.condition.take() {
            Some(earlier) => format!("({earlier}) AND ({condition})"),
            None => condition.to_owned(),
        });
        self
    }

    fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.names
            .insert(placeholder.to_owned(), attribute.to_owned());
        self
    }

    fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    fn expression(&self) -> String {
        let mut parts = Vec::new();
        if !self.sets.is_empty() {
            parts.push(format!("SET {}", self.sets.join(", ")));
        }
        if !self.adds.is_empty() {
            parts.push(format!("ADD {}", self.adds.join(", ")));
        }
        if !self.removes.is_empty() {
            parts.push(format!("REMOVE {}", self.removes.join(", ")));
        }
        parts.join(" ")
    }

    fn transact(self, table: &str) -> Result<TransactWriteItem, PortError> {
        let update = aws_sdk_dynamodb::types::Update::builder()
            .table_name(table)
            .key("pk", s(self.pk.clone()))
            .key("sk", s(self.sk.clone()))
            .update_expression(self.expression())
            .set_condition_expression(self.condition)
            .set_expression_attribute_names((!self.names.is_empty()).then_some(self.names))
            .set_expression_attribute_values((!self.values.is_empty()).then_some(self.values))
            .build()
            .map_err(|e| PortError::Invalid(e.to_string()))?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Applies the update alone; `false` when its condition failed.
    async fn send(self, client: &Client, table: &str, what: &str) -> Result<bool, PortError> {
        let expression = self.expression();
        let result = client
            .update_item()
            .table_name(table)
            .key("pk", s(self.pk))
            .key("sk", s(self.sk))
            .update_expression(expression)
            .set_condition_expression(self.condition)
            .set_expression_attribute_names((!self.names.is_empty()).then_some(self.names))
            .set_expression_attribute_values((!self.values.is_empty()).then_some(self.values))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable(what, e)),
        }
    }
}

/// An update of the state item in partition `pk`.
fn state_update(pk: String) -> ItemUpdate {
    ItemUpdate::new(pk, STATE_SK)
        .set("#kind = :state_kind")
        .name("#kind", "kind")
        .value(":state_kind", s("state"))
}

/// The condition that a state item's revision is still `revision`.
fn revision_condition(update: ItemUpdate, revision: Option<u64>) -> ItemUpdate {
    let update = update.name("#rev", "rev");
    match revision {
        Some(rev) => update
            .when("#rev = :rev_read")
            .value(":rev_read", AttributeValue::N(rev.to_string())),
        None => update.when("attribute_not_exists(#rev)"),
    }
}

/// The condition that a step is still as `expected`.
fn expect(update: ItemUpdate, expected: Unclaimed<'_>) -> ItemUpdate {
    match expected {
        Unclaimed::Pending => update
            .when("#status = :expected_status")
            .value(":expected_status", s(StepStatus::Pending.as_str())),
        Unclaimed::Queued(version) => update
            .when("#status = :expected_status AND #data = :expected_data")
            .name("#data", "data")
            .value(":expected_status", s(StepStatus::Queued.as_str()))
            .value(":expected_data", s(version.0.clone())),
    }
}

/// How a send changes the contact's recent sends on its state item.
#[derive(Debug, Clone)]
enum SendsChange {
    /// Appends one entry; readers count each step once.
    Append(SendHistoryEntry),
    /// Replaces the list (old entries dropped) if the contact's revision is
    /// still the one the list was read at.
    Replace {
        fresh: Vec<SendHistoryEntry>,
        read_at: Option<u64>,
    },
}

impl SendsChange {
    fn apply(&self, update: ItemUpdate) -> Result<ItemUpdate, PortError> {
        let update = update
            .add("#rev :one")
            .name("#sends", "sends")
            .name("#rev", "rev")
            .value(":one", AttributeValue::N("1".to_owned()));
        Ok(match self {
            Self::Append(entry) => update
                .set("#sends = list_append(if_not_exists(#sends, :no_sends), :sends)")
                .value(":no_sends", AttributeValue::L(Vec::new()))
                .value(":sends", AttributeValue::L(vec![s(to_json(entry)?)])),
            Self::Replace { fresh, read_at } => {
                let list = fresh
                    .iter()
                    .map(|e| to_json(e).map(s))
                    .collect::<Result<Vec<_>, _>>()?;
                revision_condition(
                    update
                        .set("#sends = :sends")
                        .value(":sends", AttributeValue::L(list)),
                    *read_at,
                )
            }
        })
    }
}

/// What a transaction did.
#[derive(Debug)]
enum Tx {
    Committed,
    /// Cancelled, with each item's reason code (may be empty when the
    /// service gave none).
    Cancelled(Vec<String>),
}

impl Tx {
    /// Whether item `index` failed its condition.
    fn failed(codes: &[String], index: usize) -> bool {
        codes
            .get(index)
            .is_some_and(|c| c == "ConditionalCheckFailed")
    }
}

/// A state item as read.
#[derive(Debug, Default)]
struct StateDigest {
    revision: Option<u64>,
    facts: Vec<ConsentFact>,
    sends: Vec<SendHistoryEntry>,
    head: Option<AuditHead>,
}

/// A list attribute of JSON strings, decoded; absent is empty.
fn json_list<T: DeserializeOwned>(value: Option<&AttributeValue>) -> Result<Vec<T>, PortError> {
    match value {
        None => Ok(Vec::new()),
        Some(AttributeValue::L(items)) => items
            .iter()
            .map(|v| match v {
                AttributeValue::S(json) => {
                    serde_json::from_str(json).map_err(|e| PortError::Corrupt(e.to_string()))
                }
                _ => Err(PortError::Corrupt("list entry is not a string".to_owned())),
            })
            .collect(),
        Some(_) => Err(PortError::Corrupt("attribute is not a list".to_owned())),
    }
}

/// How many times an audit append retries after losing a race for the head.
const AUDIT_APPEND_ATTEMPTS: usize = 8;

#[async_trait]
impl AuditTrail for DynamoStore {
    async fn append_audit(&self, record: NewAuditRecord) -> Result<AuditRecord, PortError> {
        let pk = audit_pk(&record.contact_id);
        for _ in 0..AUDIT_APPEND_ATTEMPTS {
            // The chain's head is its last record: read it, then write the
            // next sequence number only if nobody has (a conditional put, so
            // concurrent writers never fork the chain).
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(pk.clone()))
                .expression_attribute_values(":prefix", s("REC#"))
                .scan_index_forward(false)
                .limit(1)
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| unavailable("read audit head", e))?;
            let (seq, prev_hash) = match out.items().first() {
                Some(item) => {
                    let last: AuditRecord = from_item(item)?;
                    (last.seq, last.hash)
                }
                None => (0, GENESIS_HASH.to_owned()),
            };
            let full = chain_next(seq, prev_hash, record.clone());
            // The record (only if its number is free) and the head beside
            // the contact, which dispatch reads with the contact.
            match self
                .transact("append audit", self.audit_items(&full, None)?)
                .await
            {
                Ok(()) => return Ok(full),
                Err(PortError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(PortError::Conflict(
            "append audit: the chain head kept moving".to_owned(),
        ))
    }

    async fn audit_chain(&self, contact: &ContactId) -> Result<Vec<AuditRecord>, PortError> {
        let items = self.query_prefix(&audit_pk(contact), "REC#").await?;
        items.iter().map(from_item).collect()
    }
}

#[async_trait]
impl Casework for DynamoStore {
    async fn add_review(&self, item: &ReviewItem) -> Result<bool, PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("REVIEWS"))
            .item("sk", s(format!("REV#{}#{}", ts(item.at), item.id)))
            .item("kind", s("review"))
            .item("data", s(to_json(item)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable("add review", e)),
        }
    }

    async fn record_outcome(&self, outcome: &EpisodeOutcome) -> Result<bool, PortError> {
        // Only the known kinds: a batch read names each outcome item.
        if !OUTCOME_KINDS.contains(&outcome.kind.as_str()) {
            return Err(PortError::Invalid(format!(
                "unknown episode outcome kind {:?}",
                outcome.kind
            )));
        }
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("EPISODE#{}", outcome.subject)))
            .item("sk", s(format!("OUTCOME#{}", outcome.kind)))
            .item("kind", s("episode_outcome"))
            .item("data", s(to_json(outcome)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable("record outcome", e)),
        }
    }

    async fn outcomes(&self, subject: &str) -> Result<Vec<EpisodeOutcome>, PortError> {
        let items = self
            .query_prefix(&format!("EPISODE#{subject}"), "OUTCOME#")
            .await?;
        items.iter().map(from_item).collect()
    }

    async fn reviews(&self) -> Result<Vec<ReviewItem>, PortError> {
        let items = self.query_prefix("REVIEWS", "REV#").await?;
        items.iter().map(from_item).collect()
    }

    async fn put_revocation_request(&self, request: &RevocationRequest) -> Result<(), PortError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("REVOCATION_REQUESTS"))
            .item("sk", s(format!("REQ#{}", request.id)))
            .item("kind", s("revocation_request"))
            .item("data", s(to_json(request)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| {
                if is_conditional(&e) {
                    PortError::Conflict("revocation request exists".to_owned())
                } else {
                    unavailable("put revocation request", e)
                }
            })?;
        Ok(())
    }

    async fn revocation_requests(&self) -> Result<Vec<RevocationRequest>, PortError> {
        let items = self.query_prefix("REVOCATION_REQUESTS", "REQ#").await?;
        let mut requests: Vec<RevocationRequest> =
            items.iter().map(from_item).collect::<Result<_, _>>()?;
        requests.sort_by_key(|r| r.received_at);
        Ok(requests)
    }

    async fn complete_revocation_request(
        &self,
        id: &EventId,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, PortError> {
        let Some(item) = self
            .get("REVOCATION_REQUESTS".to_owned(), &format!("REQ#{id}"))
            .await?
        else {
            return Ok(false);
        };
        let mut request: RevocationRequest = from_item(&item)?;
        if request.completed_at.is_some() {
            return Ok(true);
        }
        request.completed_at = Some(at);
        request.completed_by = Some(by.to_owned());
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s("REVOCATION_REQUESTS"))
            .item("sk", s(format!("REQ#{id}")))
            .item("kind", s("revocation_request"))
            .item("data", s(to_json(&request)?))
            .send()
            .await
            .map_err(|e| unavailable("complete revocation request", e))?;
        Ok(true)
    }

    async fn step_for_carrier_message(
        &self,
        carrier_message_id: &str,
    ) -> Result<Option<StepId>, PortError> {
        match self
            .get(format!("CARRIER#{carrier_message_id}"), "STEP")
            .await?
        {
            Some(item) => match item.get("step_id") {
                Some(AttributeValue::S(id)) => Ok(Some(StepId::parse(id)?)),
                _ => Err(PortError::Corrupt(
                    "carrier mapping without step".to_owned(),
                )),
            },
            None => Ok(None),
        }
    }

    async fn record_delivery(&self, update: &DeliveryUpdate) -> Result<Option<StepId>, PortError> {
        let Some(step_id) = self
            .step_for_carrier_message(&update.carrier_message_id)
            .await?
        else {
            return Ok(None);
        };
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(step_pk(&step_id)))
            .key("sk", s("STEP"))
            .update_expression(
                "SET delivery_status = :status, delivery_error = :error, delivery_at = :at",
            )
            .expression_attribute_values(":status", s(update.status.clone()))
            .expression_attribute_values(":error", s(update.error_code.clone().unwrap_or_default()))
            .expression_attribute_values(":at", s(ts(update.at)))
            .send()
            .await
            .map_err(|e| unavailable("record delivery", e))?;
        Ok(Some(step_id))
    }
}

#[async_trait]
impl TemplateStore for DynamoStore {
    async fn create_template_version(&self, template: &StoredTemplate) -> Result<bool, PortError> {
        let id = template.version.id.as_str();
        // The catalog entry first: harmless if the version write then loses.
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(TEMPLATE_CATALOG_PK))
            .item("sk", s(format!("T#{id}")))
            .item("kind", s("template"))
            .send()
            .await
            .map_err(|e| unavailable("put template catalog entry", e))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(template_pk(id)))
            .item("sk", s(template_sk(template.version.version)))
            .item("kind", s("template_version"))
            .item("content", s(to_json(&template.version)?))
            .item("data", s(to_json(&template.lifecycle)?))
            .item("state", s(template.lifecycle.state.as_str()))
            .item(
                "revision",
                AttributeValue::N(template.lifecycle.revision.to_string()),
            )
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable("put template version", e)),
        }
    }

    async fn template_version(
        &self,
        id: &str,
        version: u32,
    ) -> Result<Option<StoredTemplate>, PortError> {
        match self.get(template_pk(id), &template_sk(version)).await? {
            Some(item) => Ok(Some(stored_template(&item)?)),
            None => Ok(None),
        }
    }

    async fn template_versions(&self, id: &str) -> Result<Vec<StoredTemplate>, PortError> {
        let items = self.query_prefix(&template_pk(id), "V#").await?;
        items.iter().map(stored_template).collect()
    }

    async fn template_ids(&self) -> Result<Vec<String>, PortError> {
        let items = self.query_prefix(TEMPLATE_CATALOG_PK, "T#").await?;
        Ok(items
            .iter()
            .filter_map(|item| match item.get("sk") {
                Some(AttributeValue::S(sk)) => sk.strip_prefix("T#").map(str::to_owned),
                _ => None,
            })
            .collect())
    }

    async fn update_template_lifecycle(
        &self,
        id: &str,
        version: u32,
        expected_revision: u32,
        lifecycle: &Lifecycle,
    ) -> Result<bool, PortError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(template_pk(id)))
            .key("sk", s(template_sk(version)))
            .update_expression("SET #data = :data, #state = :state, revision = :next")
            .condition_expression("attribute_exists(pk) AND revision = :expected")
            .expression_attribute_names("#data", "data")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":data", s(to_json(lifecycle)?))
            .expression_attribute_values(":state", s(lifecycle.state.as_str()))
            .expression_attribute_values(":next", AttributeValue::N(lifecycle.revision.to_string()))
            .expression_attribute_values(
                ":expected",
                AttributeValue::N(expected_revision.to_string()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable("update template lifecycle", e)),
        }
    }
}

/// A step's item: the plan as JSON, the status beside it, and the due-index
/// attributes while it is pending.
fn step_item(step: &Step) -> Result<Item, PortError> {
    let mut item: Item = HashMap::from([
        ("pk".to_owned(), s(step_pk(&step.id))),
        ("sk".to_owned(), s("STEP")),
        ("kind".to_owned(), s("step")),
        ("status".to_owned(), s(step.status.as_str())),
        ("contact_id".to_owned(), s(step.contact_id.as_str())),
        ("data".to_owned(), s(to_json(step)?)),
    ]);
    if step.status == StepStatus::Pending {
        item.insert(
            "due_pk".to_owned(),
            s(format!("DUE#{}", due_shard(&step.id))),
        );
        item.insert("due_sk".to_owned(), s(due_sk(&step.id, step.due_at)));
    }
    Ok(item)
}

/// A step from its item: `status` is the authoritative attribute; `data`
/// keeps the plan.
fn step_from_item(item: &Item) -> Result<Step, PortError> {
    let mut step: Step = from_item(item)?;
    if let Some(AttributeValue::S(status)) = item.get("status") {
        step.status = serde_json::from_value(serde_json::Value::String(status.clone()))
            .map_err(|e| PortError::Corrupt(e.to_string()))?;
    }
    Ok(step)
}

fn stored_template(item: &Item) -> Result<StoredTemplate, PortError> {
    let content = match item.get("content") {
        Some(AttributeValue::S(json)) => {
            serde_json::from_str(json).map_err(|e| PortError::Corrupt(e.to_string()))?
        }
        _ => {
            return Err(PortError::Corrupt(
                "template item has no content".to_owned(),
            ))
        }
    };
    Ok(StoredTemplate {
        version: content,
        lifecycle: from_item(item)?,
    })
}

#[async_trait]
impl SendPacer for DynamoStore {
    async fn acquire(&self, sender: &str, per_second: u32, want: u32) -> Result<Pace, PortError> {
        // One counter item per sender and wall-clock second; the condition
        // makes the count exact across every concurrent invocation. Ask for
        // `want` slots, then for one if the second is too full for that.
        let now = Utc::now();
        let second = now.timestamp();
        let want = want.clamp(1, per_second.max(1));
        let mut asks = vec![want];
        if want > 1 {
            asks.push(1);
        }
        for n in asks {
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(format!("PACE#{sender}")))
                .key("sk", s(second.to_string()))
                .update_expression("ADD used :n SET #ttl = :ttl")
                .condition_expression("attribute_not_exists(used) OR used <= :room")
                .expression_attribute_names("#ttl", "ttl")
                .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
                .expression_attribute_values(
                    ":room",
                    AttributeValue::N((i64::from(per_second) - i64::from(n)).to_string()),
                )
                .expression_attribute_values(":ttl", ttl_at(now + chrono::Duration::hours(1)))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Pace::Granted { second, slots: n }),
                Err(e) if is_conditional(&e) => continue,
                Err(e) => return Err(unavailable("pace send", e)),
            }
        }
        let into_second = u64::from(now.timestamp_subsec_millis());
        Ok(Pace::Full {
            wait: std::time::Duration::from_millis(1000_u64.saturating_sub(into_second).max(1)),
        })
    }
}
