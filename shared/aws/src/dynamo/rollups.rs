//! The rollups: tally items (`TALLY#<fact id>`, written with their fact)
//! counted once into rollup items (`ROLLUP#<yyyy-mm>` /
//! `<day>#<program>#<template>#<arm>`, one number attribute per metric).
//!
//! Counting a tally is one transaction with its rollup: the tally item is
//! marked `counted_at` on the condition that it was not marked yet, and the
//! rollup's numbers are added to. A redelivered tally fails its condition
//! and the transaction is run again without it, so nothing is counted
//! twice. A month's rollups are one partition, read with one query.

use std::collections::{BTreeMap, HashSet};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use optline_ports::{Counted, PortError, Rollup, RollupKey, RollupStore, Tally};

use super::io::Tx;
use super::item::{key, n, record_item, s, ts, ttl_at, Item};
use super::update::ItemUpdate;
use super::DynamoStore;

/// How long a tally item (the "counted once" mark) is kept: far longer
/// than a stream keeps a record (24 hours), so a redelivery always finds it.
pub(crate) const TALLY_DAYS: i64 = 35;

/// Tallies per transaction (each with at most one rollup update: at most
/// 90 of DynamoDB's 100 items).
const CHUNK: usize = 45;

/// How often a transaction that met a concurrent one is run again.
const ATTEMPTS: usize = 8;

/// The prefix of a rollup's number attributes.
const METRIC_PREFIX: &str = "n:";

/// The tally item written with its fact.
pub(crate) fn tally_item(tally: &Tally) -> Result<Item, PortError> {
    let mut item = record_item(key::tally(&tally.id), "TALLY", "tally", tally)?;
    let day = tally.key.day.and_time(chrono::NaiveTime::MIN).and_utc();
    item.insert(
        "ttl".to_owned(),
        ttl_at(day + chrono::Duration::days(TALLY_DAYS)),
    );
    Ok(item)
}

fn month_pk(day: NaiveDate) -> String {
    format!("ROLLUP#{:04}-{:02}", day.year(), day.month())
}

fn rollup_sk(key: &RollupKey) -> String {
    format!("{}#{}#{}#{}", key.day, key.program, key.template, key.arm)
}

/// The update adding `counts` to `key`'s rollup.
fn rollup_update(key: &RollupKey, counts: &BTreeMap<String, u64>) -> ItemUpdate {
    let mut update = ItemUpdate::new(month_pk(key.day), rollup_sk(key))
        .set("program = :program, template = :template, arm = :arm, #day = :day")
        .name("#day", "day")
        .value(":program", s(key.program.clone()))
        .value(":template", s(key.template.clone()))
        .value(":arm", s(key.arm.clone()))
        .value(":day", s(key.day.to_string()));
    for (i, (metric, amount)) in counts.iter().enumerate() {
        update = update
            .add(&format!("#m{i} :m{i}"))
            .name(&format!("#m{i}"), &format!("{METRIC_PREFIX}{metric}"))
            .value(&format!(":m{i}"), n(*amount));
    }
    update
}

/// The update marking a tally counted, only once.
fn mark(tally: &Tally, at: DateTime<Utc>) -> ItemUpdate {
    ItemUpdate::new(key::tally(&tally.id), "TALLY")
        .set("counted_at = :at")
        .when("attribute_exists(pk) AND attribute_not_exists(counted_at)")
        .value(":at", s(ts(at)))
}

impl DynamoStore {
    /// Counts one chunk; gives the tallies counted, after dropping those
    /// found counted before.
    async fn count_chunk(
        &self,
        mut chunk: Vec<&Tally>,
        at: DateTime<Utc>,
    ) -> Result<Counted, PortError> {
        let mut repeats = 0;
        for attempt in 0..ATTEMPTS {
            if chunk.is_empty() {
                break;
            }
            let mut sums: BTreeMap<&RollupKey, BTreeMap<String, u64>> = BTreeMap::new();
            for tally in &chunk {
                let sum = sums.entry(&tally.key).or_default();
                for (metric, amount) in &tally.counts {
                    *sum.entry(metric.clone()).or_default() += amount;
                }
            }
            let mut items = Vec::with_capacity(chunk.len() + sums.len());
            for tally in &chunk {
                items.push(mark(tally, at).transact(&self.table)?);
            }
            for (key, counts) in &sums {
                items.push(rollup_update(key, counts).transact(&self.table)?);
            }
            match self.transact_codes("count tallies", items).await? {
                Tx::Committed => {
                    return Ok(Counted {
                        counted: chunk.len(),
                        repeats,
                    })
                }
                Tx::Cancelled(codes) if codes.is_empty() && chunk.len() > 1 => {
                    // No reasons given: count one by one to find the repeat.
                    let mut total = Counted {
                        counted: 0,
                        repeats,
                    };
                    for tally in chunk {
                        let one = Box::pin(self.count_chunk(vec![tally], at)).await?;
                        total.counted += one.counted;
                        total.repeats += one.repeats;
                    }
                    return Ok(total);
                }
                Tx::Cancelled(codes) if codes.is_empty() => {
                    // One tally whose mark failed its condition: counted before.
                    return Ok(Counted {
                        counted: 0,
                        repeats: repeats + 1,
                    });
                }
                Tx::Cancelled(codes) => {
                    let counted_before: HashSet<usize> = (0..chunk.len())
                        .filter(|&i| Tx::failed(&codes, i))
                        .collect();
                    if counted_before.is_empty() {
                        // A concurrent counter held a rollup: wait and retry.
                        let pause = 20u64 << attempt.min(6);
                        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
                        continue;
                    }
                    repeats += counted_before.len();
                    chunk = chunk
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| !counted_before.contains(i))
                        .map(|(_, t)| t)
                        .collect();
                }
            }
        }
        if chunk.is_empty() {
            return Ok(Counted {
                counted: 0,
                repeats,
            });
        }
        Err(PortError::Conflict(
            "count tallies: the rollups kept moving".to_owned(),
        ))
    }
}

fn number(item: &Item, name: &str) -> Option<u64> {
    match item.get(name)? {
        AttributeValue::N(v) => v.parse().ok(),
        _ => None,
    }
}

fn string(item: &Item, name: &str) -> Option<String> {
    match item.get(name)? {
        AttributeValue::S(v) => Some(v.clone()),
        _ => None,
    }
}

fn rollup_of(item: &Item) -> Result<Rollup, PortError> {
    let corrupt = || PortError::Corrupt("a rollup item without its key".to_owned());
    let day = string(item, "day")
        .and_then(|d| d.parse::<NaiveDate>().ok())
        .ok_or_else(corrupt)?;
    let key = RollupKey {
        program: string(item, "program").ok_or_else(corrupt)?,
        template: string(item, "template").ok_or_else(corrupt)?,
        arm: string(item, "arm").ok_or_else(corrupt)?,
        day,
    };
    let counts = item
        .keys()
        .filter_map(|name| {
            let metric = name.strip_prefix(METRIC_PREFIX)?;
            Some((metric.to_owned(), number(item, name)?))
        })
        .collect();
    Ok(Rollup {
        key: Some(key),
        counts,
    })
}

#[async_trait]
impl RollupStore for DynamoStore {
    async fn count(&self, tallies: &[Tally], at: DateTime<Utc>) -> Result<Counted, PortError> {
        // One id once per transaction (DynamoDB refuses an item twice).
        let mut seen = HashSet::new();
        let mut unique = Vec::new();
        let mut repeats = 0;
        for tally in tallies {
            if seen.insert(tally.id.as_str()) {
                unique.push(tally);
            } else {
                repeats += 1;
            }
        }
        let mut total = Counted {
            counted: 0,
            repeats,
        };
        for chunk in unique.chunks(CHUNK) {
            let done = self.count_chunk(chunk.to_vec(), at).await?;
            total.counted += done.counted;
            total.repeats += done.repeats;
        }
        Ok(total)
    }

    async fn rollups(&self, from: NaiveDate, to: NaiveDate) -> Result<Vec<Rollup>, PortError> {
        if to < from {
            return Ok(Vec::new());
        }
        let mut months = Vec::new();
        let mut day = from.with_day(1).unwrap_or(from);
        while day <= to {
            months.push(month_pk(day));
            day = day
                .checked_add_months(chrono::Months::new(1))
                .ok_or_else(|| PortError::Invalid("date out of range".to_owned()))?;
        }
        let mut rollups = Vec::new();
        for pk in months {
            for item in self.query_partition(&pk, None).await? {
                let rollup = rollup_of(&item)?;
                if rollup
                    .key
                    .as_ref()
                    .is_some_and(|k| k.day >= from && k.day <= to)
                {
                    rollups.push(rollup);
                }
            }
        }
        Ok(rollups)
    }
}
