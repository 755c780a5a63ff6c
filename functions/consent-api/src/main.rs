//! The consent-api Lambda behind API Gateway (HTTP API).
//!
//! People sign in to the Cognito pool named by `USER_POOL_ID` and
//! `USER_POOL_CLIENT_ID`; its keys are fetched at cold start.

use std::sync::Arc;

use lambda_http::{service_fn, Error, Request};
use optline_config::AwsClients;
use optline_consent_api::{handle, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    optline_config::init_logging();
    let clients = AwsClients::load().await;
    let config = optline_aws::load_config(&clients).await?;
    let deps = Deps {
        store: Arc::new(optline_aws::table_store(&clients, &config).await?),
        people: Arc::new(optline_api::Verifier::from_env().await?),
        default_program: config.default_program.clone(),
    };
    let deps = &deps;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(handle(request, deps, chrono::Utc::now()).await)
    }))
    .await
}
