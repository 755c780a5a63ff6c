//! Change counts: one small item per watched partition (pk `CHANGES`, sk
//! the partition's name), raised by every commit that writes into that
//! partition. A warm reader (dispatch's lists of running experiments and
//! paused versions) reads the count, one `GetItem`, and reads the whole
//! partition again only when the count moved.

use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use optline_ports::PortError;

use super::item::n;
use super::update::ItemUpdate;
use super::DynamoStore;

const CHANGES_PK: &str = "CHANGES";

impl DynamoStore {
    /// The transaction item that counts one more change to `partition`
    /// (no condition: concurrent changes each count).
    pub(crate) fn count_change(&self, partition: &str) -> Result<TransactWriteItem, PortError> {
        ItemUpdate::new(CHANGES_PK, partition)
            .add("#count :one")
            .name("#count", "count")
            .value(":one", n(1))
            .transact(&self.table)
    }

    /// How many changes `partition` has seen (0 before the first).
    pub(crate) async fn changes(&self, partition: &str) -> Result<u64, PortError> {
        let Some(item) = self.get(CHANGES_PK.to_owned(), partition).await? else {
            return Ok(0);
        };
        match item.get("count") {
            Some(AttributeValue::N(count)) => count.parse().map_err(|_| {
                PortError::Corrupt(format!("the change count of {partition} is not a count"))
            }),
            _ => Err(PortError::Corrupt(format!(
                "the change count of {partition} has no count"
            ))),
        }
    }
}
