//! Dependencies that can be rebuilt while a function runs: when a request
//! fails its signature check, the function may re-read its secret (at most
//! once per interval) and, if it changed, check the same request again. A
//! rotated secret then takes effect on the first request it signs, and a
//! flood of forged requests costs at most one read per interval.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use chrono::{DateTime, Duration, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, RequestExt, Response};

/// The shortest time between two re-reads.
pub const RELOAD_AT_MOST_EVERY: Duration = Duration::seconds(30);

/// A function's dependencies, replaced whole when its secret changes.
#[derive(Debug)]
pub struct Reloadable<D> {
    current: RwLock<Arc<D>>,
    last_reload: Mutex<Option<DateTime<Utc>>>,
}

impl<D> Reloadable<D> {
    /// Starts with the dependencies built at cold start.
    pub fn new(deps: D) -> Self {
        Self {
            current: RwLock::new(Arc::new(deps)),
            last_reload: Mutex::new(None),
        }
    }

    /// The dependencies in use.
    pub fn current(&self) -> Arc<D> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether a re-read is due at `now` (at most one per
    /// [`RELOAD_AT_MOST_EVERY`]), recording it when it is.
    pub fn may_reload(&self, now: DateTime<Utc>) -> bool {
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

    /// Handles `request` with the current dependencies; when the answer is
    /// `refused` and a re-read is due, asks `rebuild` for new dependencies
    /// (it answers `None` when nothing changed) and handles the same request
    /// once more with them.
    pub async fn handle<H, HF, R, RF>(
        &self,
        request: Request,
        now: DateTime<Utc>,
        refused: StatusCode,
        handle: H,
        rebuild: R,
    ) -> Response<Body>
    where
        H: Fn(Request, Arc<D>) -> HF,
        HF: Future<Output = Response<Body>>,
        R: FnOnce(Arc<D>) -> RF,
        RF: Future<Output = Option<D>>,
    {
        let current = self.current();
        let again = copy_request(&request);
        let response = handle(request, current.clone()).await;
        if response.status() != refused || !self.may_reload(now) {
            return response;
        }
        match rebuild(current).await {
            Some(deps) => handle(again, self.replace(deps)).await,
            None => response,
        }
    }

    /// Puts new dependencies in use and gives them back.
    pub fn replace(&self, deps: D) -> Arc<D> {
        let fresh = Arc::new(deps);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
        fresh
    }
}

/// The parts of a request a handler reads (method, URI, headers, body and
/// the gateway's request context), so that it can be handled twice.
pub fn copy_request(request: &Request) -> Request {
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
