//! Counts the AWS calls the functions make, by operation, with an SDK
//! interceptor on every client the harness builds. Each attempt counts, so a
//! retried call counts twice: that is what AWS bills and throttles.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// Calls by `Service.Operation`, shared by every client of a harness, and
/// the time they took (from the request's transmission to its answer).
#[derive(Debug, Clone, Default)]
pub struct CallCounter(
    Arc<Mutex<BTreeMap<String, u64>>>,
    Arc<Mutex<BTreeMap<String, std::time::Duration>>>,
    Arc<Mutex<Option<Vec<Recorded>>>>,
);

/// One request exactly as it went out (each attempt), kept while
/// recording: `Service.Operation`, URI, headers and body.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub name: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// When a call's request went out.
#[derive(Debug, Clone)]
struct Sent(std::time::Instant, String);

impl aws_smithy_types::config_bag::Storable for Sent {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl CallCounter {
    /// The time spent in calls by operation, so far.
    pub fn time_snapshot(&self) -> BTreeMap<String, std::time::Duration> {
        self.1.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// A snapshot of the counts.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Keeps every request from now on, until [`Self::stop_recording`].
    pub fn record(&self) {
        if let Ok(mut r) = self.2.lock() {
            *r = Some(Vec::new());
        }
    }

    /// The requests kept since the last take (recording goes on).
    pub fn take_recorded(&self) -> Vec<Recorded> {
        self.2
            .lock()
            .ok()
            .and_then(|mut r| r.as_mut().map(std::mem::take))
            .unwrap_or_default()
    }

    /// Stops keeping requests, and forgets those kept.
    pub fn stop_recording(&self) {
        if let Ok(mut r) = self.2.lock() {
            *r = None;
        }
    }

    /// Forgets every count.
    pub fn reset(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let name = cfg
            .load::<Metadata>()
            .map(|m| format!("{}.{}", m.service(), m.name()))
            .unwrap_or_else(|| "unknown".to_owned());
        if let Ok(mut recording) = self.2.lock() {
            if let Some(kept) = recording.as_mut() {
                let request = context.request();
                kept.push(Recorded {
                    name: name.clone(),
                    uri: request.uri().to_owned(),
                    headers: request
                        .headers()
                        .iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                    body: request.body().bytes().unwrap_or_default().to_vec(),
                });
            }
        }
        if let Ok(mut m) = self.0.lock() {
            *m.entry(name.clone()).or_insert(0) += 1;
        }
        cfg.interceptor_state()
            .store_put(Sent(std::time::Instant::now(), name));
        Ok(())
    }

    fn read_after_transmit(
        &self,
        _context: &aws_sdk_dynamodb::config::interceptors::BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Sent(at, name)) = cfg.load::<Sent>() {
            if let Ok(mut m) = self.1.lock() {
                *m.entry(name.clone()).or_default() += at.elapsed();
            }
        }
        Ok(())
    }
}

/// Sums counts whose key starts with `prefix` (e.g. `DynamoDB.`).
pub fn total(counts: &BTreeMap<String, u64>, prefix: &str) -> u64 {
    counts
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| *v)
        .sum()
}

/// Counts made between two snapshots.
pub fn since(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}
