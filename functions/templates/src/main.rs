//! The templates Lambda behind API Gateway (HTTP API).
//!
//! Environment, besides the common settings:
//! - `TEMPLATE_REVIEWERS`: JSON, actor id → `{"roles": [...], "token_sha256": "..."}`.
//! - `APPROVAL_VALID_DAYS`: how long an approval counts (default 365).
//! - `TEMPLATE_LINT_CONFIG`: optional JSON replacing the embedded lint lists.

use std::sync::Arc;

use lambda_http::{service_fn, Error, Request};
use optline_config::AwsClients;
use optline_library::Reviewers;
use optline_policy::template::review::ReviewPolicy;
use optline_templates::{handle, Deps, Identity};

#[tokio::main]
async fn main() -> Result<(), Error> {
    optline_config::init_logging();
    let clients = AwsClients::load().await;
    let config = optline_aws::load_config(&clients).await?;
    let reviewers = match std::env::var("TEMPLATE_REVIEWERS") {
        Ok(json) if !json.trim().is_empty() => Reviewers::parse(&json)?,
        _ => Reviewers::default(),
    };
    let policy = ReviewPolicy {
        approval_valid_days: config.approval_valid_days,
    };
    let lint = optline_library::lint_config(config.template_lint.as_deref())?;
    let identity = if std::env::var("API_AUTH").as_deref() == Ok("iam") {
        Identity::Iam
    } else {
        Identity::Tokens
    };
    let deps = Deps {
        store: Arc::new(optline_aws::table_store(&clients, &config).await?),
        identity,
        reviewers,
        policy,
        lint,
    };
    let deps = &deps;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(handle(request, deps, chrono::Utc::now()).await)
    }))
    .await
}
