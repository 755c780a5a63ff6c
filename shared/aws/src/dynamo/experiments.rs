//! Experiments: one partition (`EXPERIMENTS`), one item per experiment
//! (`sk` its id), replaced whole under its revision.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use optline_ports::{Experiment, ExperimentStore, PortError};

use super::item::{from_item, record_item};
use super::DynamoStore;

pub(crate) const EXPERIMENTS_PK: &str = "EXPERIMENTS";

/// An experiment's item and the condition it is written under.
pub(crate) fn write(
    store: &DynamoStore,
    experiment: &Experiment,
) -> Result<aws_sdk_dynamodb::types::TransactWriteItem, PortError> {
    let item = item(experiment)?;
    match experiment.revision.checked_sub(1) {
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

fn item(experiment: &Experiment) -> Result<super::item::Item, PortError> {
    let mut item = record_item(
        EXPERIMENTS_PK,
        experiment.id.clone(),
        "experiment",
        experiment,
    )?;
    item.insert(
        "revision".to_owned(),
        AttributeValue::N(experiment.revision.to_string()),
    );
    Ok(item)
}

#[async_trait]
impl ExperimentStore for DynamoStore {
    async fn experiments(&self) -> Result<Vec<Experiment>, PortError> {
        self.query_partition(EXPERIMENTS_PK, None)
            .await?
            .iter()
            .map(from_item)
            .collect()
    }

    async fn experiment(&self, id: &str) -> Result<Option<Experiment>, PortError> {
        self.get(EXPERIMENTS_PK.to_owned(), id)
            .await?
            .as_ref()
            .map(from_item)
            .transpose()
    }

    async fn experiments_changed(&self) -> Result<u64, PortError> {
        self.changes(EXPERIMENTS_PK).await
    }
}
