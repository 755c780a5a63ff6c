//! Batched reads for deciding on many steps (or replies) at once, and the
//! claim that proves the facts read are still current.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use optline_ports::{
    AuditHead, CheckedClaim, Contact, ContactFacts, ContactId, DecisionReads, EpisodeOutcome,
    FactsLedgers, PortError, StepId, StepSnapshot, StepStatus, StepVersion, Unclaimed,
    OUTCOME_KINDS, RECENT_SENDS_DAYS,
};

use super::io::Tx;
use super::item::{attr, from_item, key, s, step_from_item, ts, STATE_SK};
use super::steps::SENDING_LEASE;
use super::update::{expect, revision_check, ItemUpdate};
use super::DynamoStore;

#[async_trait]
impl DecisionReads for DynamoStore {
    async fn step_snapshots(
        &self,
        ids: &[StepId],
    ) -> Result<HashMap<StepId, StepSnapshot>, PortError> {
        let keys: Vec<(String, String)> = ids
            .iter()
            .map(|id| (key::step(id), "STEP".to_owned()))
            .collect();
        let items = self.batch_get(&keys).await?;
        let mut snapshots = HashMap::with_capacity(items.len());
        for item in items.values() {
            let step = step_from_item(item)?;
            let version = match attr(item, "data") {
                Some(data) => StepVersion(data.to_owned()),
                None => return Err(PortError::Corrupt("step without data".to_owned())),
            };
            let claimed_at = attr(item, "claimed_at")
                .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
                .map(|at| at.with_timezone(&Utc));
            snapshots.insert(
                step.id.clone(),
                StepSnapshot {
                    step,
                    claimed_at,
                    version,
                },
            );
        }
        Ok(snapshots)
    }

    async fn contact_facts(
        &self,
        contacts: &[ContactId],
        now: DateTime<Utc>,
    ) -> Result<HashMap<ContactId, ContactFacts>, PortError> {
        let since = now - chrono::Duration::days(RECENT_SENDS_DAYS);
        // First the profiles and their state items, then the numbers' state
        // items (the number is on the profile): two calls for a batch.
        let mut keys = Vec::with_capacity(contacts.len() * 2);
        for id in contacts {
            keys.push((key::contact(id), "PROFILE".to_owned()));
            keys.push((key::contact(id), STATE_SK.to_owned()));
        }
        let first = self.batch_get(&keys).await?;
        let mut found: Vec<(Contact, String)> = Vec::with_capacity(contacts.len());
        for id in contacts {
            let pk = key::contact(id);
            if found.iter().any(|(_, seen)| *seen == pk) {
                continue;
            }
            if let Some(profile) = first.get(&(pk.clone(), "PROFILE".to_owned())) {
                found.push((from_item::<Contact>(profile)?, pk));
            }
        }
        let phone_keys: Vec<(String, String)> = found
            .iter()
            .map(|(contact, _)| (key::phone(&contact.phone), STATE_SK.to_owned()))
            .collect();
        let numbers = if phone_keys.is_empty() {
            HashMap::new()
        } else {
            self.batch_get(&phone_keys).await?
        };
        let mut facts = HashMap::with_capacity(found.len());
        for (contact, pk) in found {
            let own = self
                .digest(&pk, first.get(&(pk.clone(), STATE_SK.to_owned())), since)
                .await?;
            let number_pk = key::phone(&contact.phone);
            let number = self
                .digest(
                    &number_pk,
                    numbers.get(&(number_pk.clone(), STATE_SK.to_owned())),
                    since,
                )
                .await?;
            let mut consent = own.facts;
            consent.extend(number.facts);
            let mut evidence = own.evidence;
            evidence.extend(number.evidence);
            consent.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.id.cmp(&b.id)));
            facts.insert(
                contact.id.clone(),
                ContactFacts {
                    consent,
                    sends: own.sends,
                    // No head: the chain is empty. A write built on the
                    // genesis is conditional on the chain still being so.
                    audit_head: Some(own.head.unwrap_or_else(AuditHead::genesis)),
                    ledgers: FactsLedgers {
                        contact: own.ledger,
                        phone: number.ledger,
                    },
                    evidence,
                    contact,
                },
            );
        }
        Ok(facts)
    }

    async fn episode_answers(
        &self,
        subjects: &[String],
    ) -> Result<HashMap<String, String>, PortError> {
        Ok(self
            .episode_outcomes(subjects)
            .await?
            .into_iter()
            .filter_map(|(subject, outcomes)| {
                OUTCOME_KINDS
                    .iter()
                    .find(|kind| outcomes.iter().any(|o| o.kind == **kind))
                    .map(|kind| (subject, (*kind).to_owned()))
            })
            .collect())
    }

    async fn episode_outcomes(
        &self,
        subjects: &[String],
    ) -> Result<HashMap<String, Vec<EpisodeOutcome>>, PortError> {
        let mut keys = Vec::with_capacity(subjects.len() * OUTCOME_KINDS.len());
        for subject in subjects {
            for kind in OUTCOME_KINDS {
                keys.push((key::episode(subject), format!("OUTCOME#{kind}")));
            }
        }
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let items = self.batch_get(&keys).await?;
        let mut outcomes: HashMap<String, Vec<EpisodeOutcome>> = HashMap::new();
        for subject in subjects {
            let pk = key::episode(subject);
            for kind in OUTCOME_KINDS {
                if let Some(item) = items.get(&(pk.clone(), format!("OUTCOME#{kind}"))) {
                    outcomes
                        .entry(subject.clone())
                        .or_default()
                        .push(from_item(item)?);
                }
            }
        }
        Ok(outcomes)
    }

    async fn chain_heads(
        &self,
        subjects: &[ContactId],
    ) -> Result<HashMap<ContactId, AuditHead>, PortError> {
        let keys: Vec<(String, String)> = subjects
            .iter()
            .map(|id| (key::contact(id), STATE_SK.to_owned()))
            .collect();
        let items = if keys.is_empty() {
            HashMap::new()
        } else {
            self.batch_get(&keys).await?
        };
        Ok(subjects
            .iter()
            .map(|id| {
                let head = items
                    .get(&(key::contact(id), STATE_SK.to_owned()))
                    .and_then(|item| match (item.get("seq"), item.get("hash")) {
                        (Some(AttributeValue::N(seq)), Some(AttributeValue::S(hash))) => {
                            seq.parse().ok().map(|seq| AuditHead {
                                seq,
                                hash: hash.clone(),
                            })
                        }
                        _ => None,
                    })
                    .unwrap_or_else(AuditHead::genesis);
                (id.clone(), head)
            })
            .collect())
    }

    async fn claim_checked(
        &self,
        snapshot: &StepSnapshot,
        facts: &ContactFacts,
        at: DateTime<Utc>,
    ) -> Result<CheckedClaim, PortError> {
        let id = &snapshot.step.id;
        // Names this claim, so a claim whose answer was lost is known.
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let claim = expect(
            ItemUpdate::new(key::step(id), "STEP")
                .set("#status = :sending")
                .set("claimed_at = :at")
                .set("claim_id = :claim_id")
                .value(":claim_id", s(nonce.clone()))
                .set("due_pk = :due_pk")
                .set("due_sk = :lease")
                .value(":sending", s(StepStatus::Sending.as_str()))
                .value(":at", s(ts(at)))
                .value(":due_pk", s(key::due_pk(id)))
                .value(":lease", s(key::due_sk(id, at + SENDING_LEASE))),
            Unclaimed::Queued(&snapshot.version),
        );
        let items = vec![
            claim.transact(&self.table)?,
            revision_check(
                key::contact(&facts.contact.id),
                facts.ledgers.contact.revision,
            )
            .check(&self.table)?,
            revision_check(
                key::phone(&facts.contact.phone),
                facts.ledgers.phone.revision,
            )
            .check(&self.table)?,
        ];
        let result = match self.transact_codes("claim step", items).await {
            Ok(result) => result,
            Err(e) => {
                return if self.claimed_by(id, &nonce).await {
                    Ok(CheckedClaim::Won)
                } else {
                    Err(e)
                };
            }
        };
        Ok(match result {
            Tx::Committed => CheckedClaim::Won,
            Tx::Cancelled(codes)
                if codes.is_empty()
                    || codes.first().is_some_and(|c| {
                        c == "ConditionalCheckFailed" || c == "TransactionConflict"
                    }) =>
            {
                CheckedClaim::StepMoved
            }
            Tx::Cancelled(_) => CheckedClaim::FactsMoved,
        })
    }
}
