//! The templates Lambda behind API Gateway (HTTP API).
//!
//! Environment, besides the common settings:
//! - `USER_POOL_ID`, `USER_POOL_CLIENT_ID`: the Cognito pool people sign in to.
//! - `APPROVAL_VALID_DAYS`: how long an approval counts (default 365).
//! - `TEMPLATE_LINT_CONFIG`: optional JSON replacing the embedded lint lists.

use std::sync::Arc;

use lambda_http::{service_fn, Error, Request};
use optline_config::AwsClients;
use optline_policy::template::review::ReviewPolicy;
use optline_templates::{handle, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    optline_config::init_logging();
    let clients = AwsClients::load().await;
    let config = optline_aws::load_config(&clients).await?;
    let people = Arc::new(optline_api::Verifier::from_env().await?);
    let policy = ReviewPolicy {
        approval_valid_days: config.approval_valid_days,
    };
    let lint = optline_library::lint_config(config.template_lint.as_deref())?;
    let deps = Deps {
        store: Arc::new(optline_aws::table_store(&clients, &config).await?),
        people,
        policy,
        lint,
    };
    let deps = &deps;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(handle(request, deps, chrono::Utc::now()).await)
    }))
    .await
}
