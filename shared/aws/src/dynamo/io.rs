//! The few DynamoDB calls every port is built from: get, batch get, query
//! a partition, put, batch put and transactions.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use optline_ports::PortError;

use super::item::{s, unavailable, Item};
use super::DynamoStore;

/// What a transaction did.
#[derive(Debug)]
pub(crate) enum Tx {
    Committed,
    /// Cancelled, with each item's reason code (may be empty when the
    /// service gave none).
    Cancelled(Vec<String>),
}

impl Tx {
    /// Whether item `index` failed its condition.
    pub(crate) fn failed(codes: &[String], index: usize) -> bool {
        codes
            .get(index)
            .is_some_and(|c| c == "ConditionalCheckFailed")
    }
}

impl DynamoStore {
    /// Reads one item (consistent).
    pub(crate) async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, PortError> {
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

    /// Every item of partition `pk` whose sort key starts with `prefix`.
    pub(crate) async fn query_prefix(
        &self,
        pk: &str,
        prefix: &str,
    ) -> Result<Vec<Item>, PortError> {
        self.query_partition(pk, Some(prefix)).await
    }

    /// Every item of partition `pk` (whose sort key starts with `prefix`,
    /// when given), following pagination; consistent reads.
    pub(crate) async fn query_partition(
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

    /// A transaction item putting `item`, under `condition`.
    pub(crate) fn put(
        &self,
        item: Item,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, PortError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(|e| PortError::Invalid(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// A transaction item putting `item` under `condition` with its
    /// placeholders.
    /// A delete of `pk`/`sk` in a transaction.
    pub(crate) fn delete(&self, pk: String, sk: String) -> Result<TransactWriteItem, PortError> {
        let delete = aws_sdk_dynamodb::types::Delete::builder()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk))
            .build()
            .map_err(|e| PortError::Invalid(e.to_string()))?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    pub(crate) fn put_when(
        &self,
        item: Item,
        condition: &str,
        names: HashMap<String, String>,
        values: HashMap<String, AttributeValue>,
    ) -> Result<TransactWriteItem, PortError> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .set_expression_attribute_names((!names.is_empty()).then_some(names))
            .set_expression_attribute_values((!values.is_empty()).then_some(values))
            .build()
            .map_err(|e| PortError::Invalid(e.to_string()))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Runs a transaction; a cancelled one gives each item's reason code
    /// (`None` for the items that were fine, `ConditionalCheckFailed`,
    /// `TransactionConflict`, ...), in the order of `items`.
    pub(crate) async fn transact_codes(
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
                if super::item::is_conditional(&e) {
                    return Ok(Tx::Cancelled(Vec::new()));
                }
                Err(unavailable(what, e))
            }
        }
    }

    /// Reads items by key with consistent reads, 100 keys a call, retrying
    /// unprocessed keys. Keys may repeat; items that do not exist are absent.
    pub(crate) async fn batch_get(
        &self,
        keys: &[(String, String)],
    ) -> Result<HashMap<(String, String), Item>, PortError> {
        let mut unique: Vec<&(String, String)> = keys.iter().collect();
        unique.sort();
        unique.dedup();
        // The chunks of 100 keys are read at once: a sweep page's facts are
        // up to 30 of them, which one after the other would cost 30 round
        // trips.
        let chunks: Vec<Vec<Item>> = unique
            .chunks(100)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|(pk, sk)| {
                        HashMap::from([
                            ("pk".to_owned(), s(pk.clone())),
                            ("sk".to_owned(), s(sk.clone())),
                        ])
                    })
                    .collect()
            })
            .collect();
        let read = futures_util::future::try_join_all(
            chunks.into_iter().map(|keys| self.batch_get_chunk(keys)),
        )
        .await?;
        let mut found = HashMap::with_capacity(unique.len());
        for item in read.into_iter().flatten() {
            if let (Some(AttributeValue::S(pk)), Some(AttributeValue::S(sk))) =
                (item.get("pk"), item.get("sk"))
            {
                found.insert((pk.clone(), sk.clone()), item);
            }
        }
        Ok(found)
    }

    /// One `BatchGetItem` of at most 100 keys, asking again for what
    /// DynamoDB leaves unprocessed (with backoff).
    async fn batch_get_chunk(&self, keys: Vec<Item>) -> Result<Vec<Item>, PortError> {
        use aws_sdk_dynamodb::types::KeysAndAttributes;
        let mut pending = keys;
        let mut found = Vec::with_capacity(pending.len());
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
            let mut out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| unavailable("batch get", e))?;
            if let Some(items) = out.responses.as_mut().and_then(|r| r.remove(&self.table)) {
                found.extend(items);
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
        Ok(found)
    }

    /// A conditional put of one item; `false` when the condition fails.
    pub(crate) async fn put_if(
        &self,
        what: &str,
        item: Item,
        condition: &str,
    ) -> Result<bool, PortError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if super::item::is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable(what, e)),
        }
    }
}
