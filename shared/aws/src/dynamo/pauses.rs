//! Template pauses: one partition (`PAUSES`), one item per version (`sk`
//! its `id@version`), replaced whole under its revision.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use optline_ports::{PauseStore, PortError, TemplatePause};

use super::item::{from_item, record_item};
use super::DynamoStore;

pub(crate) const PAUSES_PK: &str = "PAUSES";

/// A pause's item and the condition it is written under.
pub(crate) fn write(
    store: &DynamoStore,
    pause: &TemplatePause,
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, PortError> {
    let mut item = record_item(PAUSES_PK, pause.template.clone(), "template_pause", pause)?;
    item.insert(
        "revision".to_owned(),
        AttributeValue::N(pause.revision.to_string()),
    );
    match pause.revision.checked_sub(1) {
        None => store.put(item, Some("attribute_not_exists(pk)")),
        Some(previous) => store.put_when(
            item,
            "#revision = :previous",
            std::collections::HashMap::from([("#revision".to_owned(), "revision".to_owned())]),
            std::collections::HashMap::from([(
                ":previous".to_owned(),
                AttributeValue::N(previous.to_string()),
            )]),
        ),
    }
}

#[async_trait]
impl PauseStore for DynamoStore {
    async fn pauses(&self) -> Result<Vec<TemplatePause>, PortError> {
        self.query_partition(PAUSES_PK, None)
            .await?
            .iter()
            .map(from_item)
            .collect()
    }

    async fn pauses_changed(&self) -> Result<u64, PortError> {
        self.changes(PAUSES_PK).await
    }
}
