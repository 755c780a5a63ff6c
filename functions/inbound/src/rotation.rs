//! Credentials that rotate without a cold start: when a Twilio webhook's
//! signature fails, the function re-reads its secret once (at most every
//! [`RELOAD_AT_MOST_EVERY`]) and, if the credentials changed, checks the same
//! request again with them. A rotated Auth Token or SharedKey therefore
//! takes effect on the next webhook, and a forged one still gets 403.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use optline_api::reload::Reloadable;
pub use optline_api::reload::RELOAD_AT_MOST_EVERY;
use optline_config::Config;
use optline_ports::PortError;
use tracing::{info, warn};

use crate::{handle, Deps};

/// The function's dependencies, replaced whole when the secret changes.
#[derive(Debug)]
pub struct Rotating(Reloadable<Deps>);

impl Rotating {
    /// Starts with the dependencies built at cold start.
    pub fn new(deps: Deps) -> Self {
        Self(Reloadable::new(deps))
    }

    /// The dependencies in use.
    pub fn current(&self) -> Arc<Deps> {
        self.0.current()
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
        let rebuild = |deps: Arc<Deps>| async move {
            let config = match reload().await {
                Ok(config) => config,
                Err(e) => {
                    warn!(error = %e, "could not re-read the twilio secret after a signature failure");
                    return None;
                }
            };
            if config.twilio == deps.config.twilio {
                return None;
            }
            info!("twilio credentials changed: re-read after a signature failure");
            Some(Deps {
                config: Arc::new(config),
                ..(*deps).clone()
            })
        };
        self.0
            .handle(
                request,
                now,
                StatusCode::FORBIDDEN,
                |request, deps: Arc<Deps>| async move { handle(request, &deps, now).await },
                rebuild,
            )
            .await
    }
}
