//! A stack's table as a whole: read every item, put a saved state back,
//! and compare two states as a compliance officer would (every record,
//! every marker, every outbox event), with what differs between two runs
//! by nature masked: a carrier's random message ids, the hashes that cover
//! them, a commit's nonce, and the per-second pacing counters.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};

use crate::Harness;

/// One item.
pub type Item = HashMap<String, AttributeValue>;

impl Harness {
    /// Every item of the stack's table.
    pub async fn table_items(&self) -> Vec<Item> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .dynamodb
                .scan()
                .table_name(&self.resources.table_name)
                .set_exclusive_start_key(start.take())
                .consistent_read(true)
                .send()
                .await
                .expect("scan the table");
            items.extend(out.items().iter().cloned());
            match out.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => break,
            }
        }
        items
    }

    /// Puts the table back to `saved`: every other item deleted, every
    /// saved item written as it was.
    pub async fn restore_table(&self, saved: &[Item]) {
        let key = |item: &Item| {
            HashMap::from([
                ("pk".to_owned(), item["pk"].clone()),
                ("sk".to_owned(), item["sk"].clone()),
            ])
        };
        let mut requests: Vec<WriteRequest> = self
            .table_items()
            .await
            .iter()
            .map(|item| {
                WriteRequest::builder()
                    .delete_request(
                        DeleteRequest::builder()
                            .set_key(Some(key(item)))
                            .build()
                            .expect("delete request"),
                    )
                    .build()
            })
            .collect();
        self.batch_write(&mut requests).await;
        let table = self.resources.table_name.clone();
        self.put_items_into(&table, saved).await;
    }

    /// Writes `items` into `table` as they are (another table of the
    /// emulator, such as a twin of the stack's).
    pub async fn put_items_into(&self, table: &str, items: &[Item]) {
        let mut requests: Vec<WriteRequest> = items
            .iter()
            .map(|item| {
                WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item.clone()))
                            .build()
                            .expect("put request"),
                    )
                    .build()
            })
            .collect();
        self.batch_write_into(table, &mut requests).await;
    }

    async fn batch_write(&self, requests: &mut Vec<WriteRequest>) {
        let table = self.resources.table_name.clone();
        self.batch_write_into(&table, requests).await;
    }

    async fn batch_write_into(&self, table: &str, requests: &mut Vec<WriteRequest>) {
        while !requests.is_empty() {
            let chunk: Vec<WriteRequest> = requests.drain(..requests.len().min(25)).collect();
            let out = self
                .dynamodb
                .batch_write_item()
                .request_items(table, chunk)
                .send()
                .await
                .expect("batch write");
            if let Some(left) = out.unprocessed_items().and_then(|m| m.get(table)) {
                requests.extend(left.iter().cloned());
            }
        }
    }

    /// Empties a queue of the stack.
    pub async fn purge(&self, queue_url: &str) {
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .send()
                .await
                .expect("receive");
            if out.messages().is_empty() {
                break;
            }
            for m in out.messages() {
                if let Some(handle) = m.receipt_handle() {
                    let _ = self
                        .sqs
                        .delete_message()
                        .queue_url(queue_url)
                        .receipt_handle(handle)
                        .send()
                        .await;
                }
            }
        }
    }
}

fn json(value: &AttributeValue) -> serde_json::Value {
    match value {
        AttributeValue::S(s) => serde_json::Value::String(s.clone()),
        AttributeValue::N(n) => serde_json::json!({ "N": n }),
        AttributeValue::Bool(b) => serde_json::Value::Bool(*b),
        AttributeValue::Null(_) => serde_json::Value::Null,
        AttributeValue::L(list) => serde_json::Value::Array(list.iter().map(json).collect()),
        AttributeValue::M(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), json(v)))
                .collect::<BTreeMap<_, _>>()
                .into_iter()
                .collect(),
        ),
        other => serde_json::Value::String(format!("{other:?}")),
    }
}

/// Masks what differs between two runs by nature: hex runs of 32 or more
/// characters (hashes, nonces, carrier ids), UUIDs and `sns:` ids.
fn mask(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let run = chars
            .get(i..)
            .unwrap_or_default()
            .iter()
            .take_while(|c| c.is_ascii_hexdigit() || **c == '-')
            .count();
        let segment: String = chars.get(i..i + run).unwrap_or_default().iter().collect();
        let hex = segment.chars().filter(char::is_ascii_hexdigit).count();
        let uuid = segment.len() == 36 && segment.matches('-').count() == 4;
        if run > 0 && (uuid || (hex >= 32 && !segment.contains('-'))) {
            out.push_str("<id>");
            i += run;
        } else if let Some(c) = chars.get(i) {
            out.push(*c);
            i += 1;
        }
    }
    out
}

/// A table's state as comparable lines, one per item, masked.
pub fn normalized(items: &[Item]) -> BTreeSet<String> {
    items
        .iter()
        .filter(|item| {
            !matches!(item.get("pk"), Some(AttributeValue::S(pk)) if pk.starts_with("PACE#"))
        })
        .map(|item| {
            let map: BTreeMap<&String, serde_json::Value> = item
                .iter()
                .filter(|(k, _)| k.as_str() != "nonce")
                .map(|(k, v)| (k, json(v)))
                .collect();
            mask(&serde_json::to_string(&map).unwrap_or_default())
        })
        .collect()
}

/// What two states differ in, for a failure message.
pub fn difference(expected: &BTreeSet<String>, found: &BTreeSet<String>) -> String {
    let missing: Vec<&String> = expected.difference(found).collect();
    let extra: Vec<&String> = found.difference(expected).collect();
    format!("missing {missing:#?}\nextra {extra:#?}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::mask;

    #[test]
    fn run_specific_ids_are_masked_and_the_rest_is_kept() {
        assert_eq!(
            mask("sns:bee10ae2-348d-49d1-a1c5-dd53cae2023a at 2026-12-07"),
            "sns:<id> at 2026-12-07"
        );
        assert_eq!(mask(&"ab".repeat(32)), "<id>");
        assert_eq!(mask("step-ab12"), "step-ab12");
    }
}
