//! Work for people (review items, revocation requests), episode outcomes
//! and what carriers report.

use async_trait::async_trait;
use optline_ports::{
    Casework, EpisodeOutcome, EventId, PortError, ReviewItem, RevocationRequest, StepId,
};

use super::item::{attr, from_item, key};
use super::DynamoStore;

#[async_trait]
impl Casework for DynamoStore {
    async fn outcomes(&self, subject: &str) -> Result<Vec<EpisodeOutcome>, PortError> {
        let items = self
            .query_prefix(&key::episode(subject), "OUTCOME#")
            .await?;
        items.iter().map(from_item).collect()
    }

    async fn reviews(&self) -> Result<Vec<ReviewItem>, PortError> {
        let items = self.query_prefix(key::REVIEWS, "REV#").await?;
        items.iter().map(from_item).collect()
    }

    async fn revocation_requests(&self) -> Result<Vec<RevocationRequest>, PortError> {
        let items = self.query_prefix(key::REVOCATION_REQUESTS, "REQ#").await?;
        let mut requests: Vec<RevocationRequest> =
            items.iter().map(from_item).collect::<Result<_, _>>()?;
        requests.sort_by_key(|r| r.received_at);
        Ok(requests)
    }

    async fn revocation_request(
        &self,
        id: &EventId,
    ) -> Result<Option<RevocationRequest>, PortError> {
        match self
            .get(
                key::REVOCATION_REQUESTS.to_owned(),
                &key::revocation_request(id),
            )
            .await?
        {
            Some(item) => Ok(Some(from_item(&item)?)),
            None => Ok(None),
        }
    }

    async fn step_for_carrier_message(
        &self,
        carrier_message_id: &str,
    ) -> Result<Option<StepId>, PortError> {
        match self.get(key::carrier(carrier_message_id), "STEP").await? {
            Some(item) => match attr(&item, "step_id") {
                Some(id) => Ok(Some(StepId::parse(id)?)),
                None => Err(PortError::Corrupt(
                    "carrier mapping without step".to_owned(),
                )),
            },
            None => Ok(None),
        }
    }

    async fn delivery_status(&self, step: &StepId) -> Result<Option<String>, PortError> {
        Ok(self
            .get(key::step(step), "STEP")
            .await?
            .and_then(|item| attr(&item, "delivery_status").map(str::to_owned)))
    }

    async fn carrier_attempt(&self, attempt: &str) -> Result<Option<String>, PortError> {
        Ok(self
            .get(key::attempt(attempt), "CARRIER")
            .await?
            .and_then(|item| attr(&item, "carrier_message_id").map(str::to_owned)))
    }

    async fn binding(&self, key: &str) -> Result<Option<String>, PortError> {
        Ok(self
            .get(key::binding(key), "BINDING")
            .await?
            .and_then(|item| attr(&item, "value").map(str::to_owned)))
    }
}
