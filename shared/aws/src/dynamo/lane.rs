//! Texts owed through the compliance lane: claimed once, sent once.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optline_ports::{ComplianceLane, LaneStatus, LaneText, PortError};

use super::item::{attr, from_item, key, s, ts};
use super::update::ItemUpdate;
use super::DynamoStore;

#[async_trait]
impl ComplianceLane for DynamoStore {
    async fn lane_text(&self, lane_key: &str) -> Result<Option<(LaneText, LaneStatus)>, PortError> {
        let Some(item) = self.get(key::lane(lane_key), "TEXT").await? else {
            return Ok(None);
        };
        let text: LaneText = from_item(&item)?;
        let status = match attr(&item, "status") {
            Some(raw) => serde_json::from_value(serde_json::Value::String(raw.to_owned()))
                .map_err(|e| PortError::Corrupt(e.to_string()))?,
            None => return Err(PortError::Corrupt("lane text without status".to_owned())),
        };
        Ok(Some((text, status)))
    }

    async fn lane_claim(&self, lane_key: &str, at: DateTime<Utc>) -> Result<bool, PortError> {
        // Names this claim, so a claim whose answer was lost is known.
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let claimed = ItemUpdate::new(key::lane(lane_key), "TEXT")
            .set("#status = :sending")
            .set("claimed_at = :at")
            .set("claim_id = :claim_id")
            .when("#status = :pending")
            .name("#status", "status")
            .value(":sending", s(LaneStatus::Sending.as_str()))
            .value(":pending", s(LaneStatus::Pending.as_str()))
            .value(":at", s(ts(at)))
            .value(":claim_id", s(nonce.clone()))
            .send(&self.client, &self.table, "claim lane text")
            .await;
        match claimed {
            Err(e) => match self.get(key::lane(lane_key), "TEXT").await {
                Ok(Some(item))
                    if attr(&item, "status") == Some(LaneStatus::Sending.as_str())
                        && attr(&item, "claim_id") == Some(nonce.as_str()) =>
                {
                    Ok(true)
                }
                _ => Err(e),
            },
            done => done,
        }
    }

    async fn lane_release(&self, lane_key: &str) -> Result<(), PortError> {
        ItemUpdate::new(key::lane(lane_key), "TEXT")
            .set("#status = :pending")
            .remove("claimed_at")
            .remove("claim_id")
            .when("#status = :sending")
            .name("#status", "status")
            .value(":sending", s(LaneStatus::Sending.as_str()))
            .value(":pending", s(LaneStatus::Pending.as_str()))
            .send(&self.client, &self.table, "release lane text")
            .await
            .map(|_| ())
    }
}
