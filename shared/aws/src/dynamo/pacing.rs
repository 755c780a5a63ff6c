//! A send rate shared by every concurrent dispatch invocation: one counter
//! item per sender and wall-clock second.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::Utc;
use optline_ports::{Pace, PortError, SendPacer};

use super::item::{is_conditional, s, ttl_at, unavailable};
use super::DynamoStore;

#[async_trait]
impl SendPacer for DynamoStore {
    async fn acquire(
        &self,
        sender: &str,
        per_second: u32,
        want: u32,
        need: u32,
    ) -> Result<Pace, PortError> {
        // One counter item per sender and wall-clock second; the condition
        // makes the count exact across every concurrent invocation. Ask for
        // `want` slots, then for `need` if the second is too full for that.
        let now = Utc::now();
        let second = now.timestamp();
        let want = want.clamp(1, per_second.max(1));
        let need = need.clamp(1, want);
        let mut asks = vec![want];
        if want > need {
            asks.push(need);
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

    async fn acquire_daily(
        &self,
        sender: &str,
        day: &str,
        cap: u32,
        parts: u32,
    ) -> Result<bool, PortError> {
        // One counter item per sender and carrier day, kept three days.
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(format!("PACE#{sender}")))
            .key("sk", s(format!("DAY#{day}")))
            .update_expression("ADD used :n SET #ttl = :ttl")
            .condition_expression("attribute_not_exists(used) OR used <= :room")
            .expression_attribute_names("#ttl", "ttl")
            .expression_attribute_values(":n", AttributeValue::N(parts.to_string()))
            .expression_attribute_values(
                ":room",
                AttributeValue::N((i64::from(cap) - i64::from(parts)).to_string()),
            )
            .expression_attribute_values(":ttl", ttl_at(Utc::now() + chrono::Duration::days(3)))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable("daily cap", e)),
        }
    }
}
