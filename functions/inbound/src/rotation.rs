//! Credentials that rotate without a cold start: when a Twilio webhook's
//! signature fails, the function re-reads its secret once (at most every
//! [`RELOAD_AT_MOST_EVERY`]) and, if the credentials changed, checks the same
//! request again with them. A rotated Auth Token or SharedKey therefore
//! takes effect on the next webhook, and a forged one still gets 403.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chrono::{DateTime, Duration, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};
use optline_config::Config;
use optline_ports::PortError;
use tracing::{info, warn};

use crate::{handle, Deps};

/// The shortest time between two re-reads of the secret (a flood of forged
/// webhooks costs at most one read per interval).
pub const RELOAD_AT_MOST_EVERY: Duration = Duration::seconds(30);

/// The function's dependencies, replaced whole when the secret changes.
#[derive(Debug)]
pub struct Rotating {
    deps: RwLock<Arc<Deps>>,
    last_reload: Mutex<Option<DateTime<Utc>>>,
}

impl Rotating {
    /// Starts with the dependencies built at cold start.
    pub fn new(deps: Deps) -> Self {
        Self {
            deps: RwLock::new(Arc::new(deps)),
            last_reload: Mutex::new(None),
        }
    }

    /// The dependencies in use.
    pub fn current(&self) -> Arc<Deps> {
        self.deps
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether a re-read is due, recording it when it is.
    fn may_reload(&self, now: DateTime<Utc>) -> bool {
        let mut last = self
            .last_reload
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| now - at < RELOAD_AT_MOST_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Handles a request; on a 403 (a signature that does not verify) reads
    /// the configuration again with `reload` and, when the Twilio
    /// credentials changed, handles the same request once more with them.
    pub async fn handle<F, Fut>(
        &self,
        request: Request,
        now: DateTime<Utc>,
        reload: F,
    ) -> Response<Body>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Config, PortError>>,
    {
        let deps = self.current();
        let again = copy(&request);
        let response = handle(request, &deps, now).await;
        if response.status() != StatusCode::FORBIDDEN || !self.may_reload(now) {
            return response;
        }
        let config = match reload().await {
            Ok(config) => config,
            Err(e) => {
                warn!(error = %e, "could not re-read the twilio secret after a signature failure");
                return response;
            }
        };
        if config.twilio == deps.config.twilio {
            return response;
        }
        let fresh = Arc::new(Deps {
            config: Arc::new(config),
            ..(*deps).clone()
        });
        *self.deps.write().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
        info!("twilio credentials changed: re-read after a signature failure");
        handle(again, &fresh, now).await
    }
}

/// The parts of a request the handler reads: method, URI, headers, body and
/// the gateway's request context.
fn copy(request: &Request) -> Request {
    let mut builder = lambda_http::http::Request::builder()
        .method(request.method().clone())
        .uri(request.uri().clone())
        .version(request.version());
    for (name, value) in request.headers() {
        builder = builder.header(name, value);
    }
    let copy = builder.body(request.body().clone()).unwrap_or_default();
    match request.request_context_ref() {
        Some(context) => copy.with_request_context(context.clone()),
        None => copy,
    }
}
