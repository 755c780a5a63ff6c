//! The consent-api Lambda behind API Gateway (HTTP API).

use std::sync::Arc;

use lambda_http::{service_fn, Error, Request};
use optline_api::ApiAuth;
use optline_config::AwsClients;
use optline_consent_api::{handle, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    optline_config::init_logging();
    let clients = AwsClients::load().await;
    let config = optline_aws::load_config(&clients).await?;
    let deps = Deps {
        store: Arc::new(optline_aws::table_store(&clients, &config).await?),
        auth: ApiAuth::from_env(config.api_token.as_deref()),
        default_program: config.default_program.clone(),
    };
    let deps = &deps;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(handle(request, deps, chrono::Utc::now()).await)
    }))
    .await
}
