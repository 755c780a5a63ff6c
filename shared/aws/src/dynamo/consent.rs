//! The consent ledger's reads; events are appended by a commit.

use async_trait::async_trait;
use optline_policy::phone::E164;
use optline_ports::{
    Commit, Committed, Committer, ConsentEvent, ConsentLedger, ContactId, EventId, Ledger,
    Partition, PortError, Write, COMMIT_ATTEMPTS,
};

use super::item::{attr, from_item, key, STATE_SK};
use super::DynamoStore;

impl DynamoStore {
    async fn partition_events(&self, pk: &str) -> Result<Vec<ConsentEvent>, PortError> {
        self.query_prefix(pk, "CONSENT#")
            .await?
            .iter()
            .map(from_item::<ConsentEvent>)
            .collect()
    }
}

fn by_time(events: &mut [ConsentEvent]) {
    events.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
}

#[async_trait]
impl ConsentLedger for DynamoStore {
    async fn append_consent(
        &self,
        event: &ConsentEvent,
        disclosure_text: Option<&str>,
    ) -> Result<bool, PortError> {
        let partition = Partition::of(event)?;
        for _ in 0..COMMIT_ATTEMPTS {
            if self.consent_event(&partition, &event.id).await?.is_some() {
                return Ok(false);
            }
            let ledger = self.ledger(&partition).await?;
            let mut commit = Commit::default();
            commit.push(Write::Consent {
                event: event.clone(),
                disclosure: disclosure_text.map(str::to_owned),
                ledger: ledger.read,
            });
            match self.commit(commit).await? {
                Committed::Done(_) => return Ok(true),
                // Another event moved the ledger, or this one exists: read again.
                Committed::Duplicate(_) | Committed::Conflict(_) => {}
            }
        }
        Err(PortError::Unavailable(
            "append consent: the ledger stayed busy".to_owned(),
        ))
    }

    async fn consent_events(
        &self,
        contact: &ContactId,
        phone: &E164,
    ) -> Result<Vec<ConsentEvent>, PortError> {
        let mut events = self.partition_events(&key::contact(contact)).await?;
        events.extend(self.partition_events(&key::phone(phone)).await?);
        by_time(&mut events);
        Ok(events)
    }

    async fn phone_consent_events(&self, phone: &E164) -> Result<Vec<ConsentEvent>, PortError> {
        let mut events = self.partition_events(&key::phone(phone)).await?;
        by_time(&mut events);
        Ok(events)
    }

    async fn ledger(&self, partition: &Partition) -> Result<Ledger, PortError> {
        let pk = key::partition(partition);
        let state = self.get(pk.clone(), STATE_SK).await?;
        let digest = self
            .digest(
                &pk,
                state.as_ref(),
                chrono::DateTime::<chrono::Utc>::MAX_UTC,
            )
            .await?;
        let mut facts = digest.facts;
        facts.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
        Ok(Ledger {
            facts,
            read: digest.ledger,
        })
    }

    async fn consent_event(
        &self,
        partition: &Partition,
        id: &EventId,
    ) -> Result<Option<ConsentEvent>, PortError> {
        match self
            .get(key::partition(partition), &key::consent(id))
            .await?
        {
            Some(item) => Ok(Some(from_item(&item)?)),
            None => Ok(None),
        }
    }

    async fn disclosure(&self, sha256: &str) -> Result<Option<String>, PortError> {
        Ok(self
            .get(format!("DISCLOSURE#{sha256}"), "TEXT")
            .await?
            .and_then(|item| attr(&item, "text").map(str::to_owned)))
    }
}
