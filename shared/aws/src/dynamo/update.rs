//! Item updates, usable alone or in a transaction, and the one change of a
//! state item a transaction may make (a transaction may name an item once,
//! so everything one commit does to a state item is merged here).

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use optline_ports::{PortError, SendHistoryEntry, StepStatus, Unclaimed};

use super::item::{is_conditional, n, s, to_json, unavailable, MAX_DIGEST_FACTS, STATE_SK};

/// One item's update: key, `SET` / `ADD` / `REMOVE` clauses, condition and
/// attributes.
#[derive(Debug, Clone)]
pub(crate) struct ItemUpdate {
    pub(crate) pk: String,
    pub(crate) sk: String,
    sets: Vec<String>,
    adds: Vec<String>,
    removes: Vec<String>,
    pub(crate) condition: Option<String>,
    pub(crate) names: HashMap<String, String>,
    pub(crate) values: HashMap<String, AttributeValue>,
}

impl ItemUpdate {
    pub(crate) fn new(pk: impl Into<String>, sk: impl Into<String>) -> Self {
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

    pub(crate) fn set(mut self, clause: &str) -> Self {
        self.sets.push(clause.to_owned());
        self
    }

    pub(crate) fn add(mut self, clause: &str) -> Self {
        self.adds.push(clause.to_owned());
        self
    }

    pub(crate) fn remove(mut self, path: &str) -> Self {
        self.removes.push(path.to_owned());
        self
    }

    /// Adds a condition, joined to any earlier one with `AND`.
    pub(crate) fn when(mut self, condition: &str) -> Self {
        self.condition = Some(match self.condition.take() {
            Some(earlier) => format!("({earlier}) AND ({condition})"),
            None => condition.to_owned(),
        });
        self
    }

    pub(crate) fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.names
            .insert(placeholder.to_owned(), attribute.to_owned());
        self
    }

    pub(crate) fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
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

    pub(crate) fn transact(self, table: &str) -> Result<TransactWriteItem, PortError> {
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

    /// A transaction item that writes nothing and holds only if this
    /// update's condition holds.
    pub(crate) fn check(self, table: &str) -> Result<TransactWriteItem, PortError> {
        let check = aws_sdk_dynamodb::types::ConditionCheck::builder()
            .table_name(table)
            .key("pk", s(self.pk))
            .key("sk", s(self.sk))
            .set_condition_expression(self.condition)
            .set_expression_attribute_names((!self.names.is_empty()).then_some(self.names))
            .set_expression_attribute_values((!self.values.is_empty()).then_some(self.values))
            .build()
            .map_err(|e| PortError::Invalid(e.to_string()))?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// Applies the update alone; `false` when its condition failed.
    pub(crate) async fn send(
        self,
        client: &Client,
        table: &str,
        what: &str,
    ) -> Result<bool, PortError> {
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

/// The condition that a step is still as `expected`.
pub(crate) fn expect(update: ItemUpdate, expected: Unclaimed<'_>) -> ItemUpdate {
    let update = update.name("#status", "status");
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
pub(crate) enum SendsChange {
    /// Appends one entry; readers count each step once.
    Append(SendHistoryEntry),
    /// Replaces the list (old entries dropped); the state item's revision
    /// must still be the one the list was read at.
    Replace {
        fresh: Vec<SendHistoryEntry>,
        read_at: Option<u64>,
    },
}

/// Everything one transaction does to one state item (a contact's or a
/// number's): consent facts appended, the revision moved, the audit head
/// set, the recent sends changed, each with its condition.
#[derive(Debug, Clone, Default)]
pub(crate) struct StateChange {
    /// The revision it must still have (`Some(None)`: none yet).
    expect_revision: Option<Option<u64>>,
    /// Move the revision (anything a decision reads changed).
    bump: bool,
    /// Consent facts to append to the digest (JSON).
    facts: Vec<AttributeValue>,
    /// Facts the digest held when read.
    facts_read: usize,
    /// The digest is, or will be, past its size: mark it instead.
    overflow: bool,
    /// The audit head: (as read, new seq, new hash).
    head: Option<(u64, u64, String)>,
    /// The recent sends.
    sends: Option<SendsChange>,
}

impl StateChange {
    /// Requires the revision read; a second, different requirement is a
    /// bug in the caller.
    pub(crate) fn expect_revision(&mut self, revision: Option<u64>) -> Result<(), PortError> {
        match self.expect_revision {
            Some(earlier) if earlier != revision => Err(PortError::Invalid(
                "one commit read a state item at two revisions".to_owned(),
            )),
            _ => {
                self.expect_revision = Some(revision);
                Ok(())
            }
        }
    }

    /// Appends a consent fact, read at `read` (facts held, overflow).
    pub(crate) fn append_fact(
        &mut self,
        fact: AttributeValue,
        read: &optline_ports::LedgerRead,
    ) -> Result<(), PortError> {
        self.expect_revision(read.revision)?;
        self.bump = true;
        self.facts_read = read.facts;
        self.overflow |= read.overflow;
        self.facts.push(fact);
        Ok(())
    }

    /// Moves the audit head from `from` to (`seq`, `hash`).
    pub(crate) fn set_head(&mut self, from: u64, seq: u64, hash: String) -> Result<(), PortError> {
        match &self.head {
            Some((earlier, _, _)) if *earlier != from => Err(PortError::Invalid(
                "one commit appended to a chain from two heads".to_owned(),
            )),
            Some(_) => {
                self.head = self.head.take().map(|(f, _, _)| (f, seq, hash));
                Ok(())
            }
            None => {
                self.head = Some((from, seq, hash));
                Ok(())
            }
        }
    }

    /// Changes the recent sends (and moves the revision).
    pub(crate) fn sends(&mut self, change: SendsChange) -> Result<(), PortError> {
        if let SendsChange::Replace { read_at, .. } = &change {
            self.expect_revision(*read_at)?;
        }
        self.bump = true;
        self.sends = Some(change);
        Ok(())
    }

    /// The one update of the state item in partition `pk`.
    pub(crate) fn render(self, pk: String) -> Result<ItemUpdate, PortError> {
        let mut update = ItemUpdate::new(pk, STATE_SK)
            .set("#kind = :state_kind")
            .name("#kind", "kind")
            .value(":state_kind", s("state"));
        if self.bump {
            update = update
                .add("#rev :one")
                .name("#rev", "rev")
                .value(":one", n(1));
        }
        if let Some(revision) = self.expect_revision {
            update = update.name("#rev", "rev");
            update = match revision {
                Some(rev) => update.when("#rev = :rev_read").value(":rev_read", n(rev)),
                None => update.when("attribute_not_exists(#rev)"),
            };
        }
        if !self.facts.is_empty() {
            let after = self.facts_read + self.facts.len();
            if self.overflow || after > MAX_DIGEST_FACTS {
                update = update
                    .set("#overflow = :overflow")
                    .name("#overflow", "overflow")
                    .value(":overflow", AttributeValue::Bool(true));
            } else {
                update = update
                    .set("#facts = list_append(if_not_exists(#facts, :no_facts), :facts)")
                    .name("#facts", "facts")
                    .value(":no_facts", AttributeValue::L(Vec::new()))
                    .value(":facts", AttributeValue::L(self.facts));
            }
        }
        if let Some((from, seq, hash)) = self.head {
            update = update
                .set("#seq = :seq")
                .set("#hash = :hash")
                .name("#seq", "seq")
                .name("#hash", "hash")
                .value(":seq", n(seq))
                .value(":hash", s(hash));
            update = if from == 0 {
                update.when("attribute_not_exists(#seq)")
            } else {
                update.when("#seq = :seq_read").value(":seq_read", n(from))
            };
        }
        if let Some(change) = self.sends {
            update = update.name("#sends", "sends");
            update = match change {
                SendsChange::Append(entry) => update
                    .set("#sends = list_append(if_not_exists(#sends, :no_sends), :sends)")
                    .value(":no_sends", AttributeValue::L(Vec::new()))
                    .value(":sends", AttributeValue::L(vec![s(to_json(&entry)?)])),
                SendsChange::Replace { fresh, .. } => {
                    let list = fresh
                        .iter()
                        .map(|e| to_json(e).map(s))
                        .collect::<Result<Vec<_>, _>>()?;
                    update
                        .set("#sends = :sends")
                        .value(":sends", AttributeValue::L(list))
                }
            };
        }
        Ok(update)
    }
}

/// A condition-only check that the state item in `pk` is at `revision`.
pub(crate) fn revision_check(pk: String, revision: Option<u64>) -> ItemUpdate {
    let update = ItemUpdate::new(pk, STATE_SK).name("#rev", "rev");
    match revision {
        Some(rev) => update.when("#rev = :rev_read").value(":rev_read", n(rev)),
        None => update.when("attribute_not_exists(#rev)"),
    }
}
