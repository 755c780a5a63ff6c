//! The inbound Lambda: carrier webhooks behind API Gateway (HTTP API).

use std::sync::Arc;

use lambda_http::{service_fn, Error, Request};
use optline_config::{AwsClients, Config};
use optline_inbound::{handle, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    optline_config::init_logging();
    let clients = AwsClients::load().await;
    let config = optline_aws::with_twilio_secret(&clients.secrets, Config::from_env()?).await?;
    let deps = Deps {
        store: Arc::new(optline_aws::table_store(&clients, &config).await?),
        lint: Arc::new(optline_library::lint_config(
            config.template_lint.as_deref(),
        )?),
        config: Arc::new(config),
        sender: None,
    };
    let deps = &deps;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(handle(request, deps, chrono::Utc::now()).await)
    }))
    .await
}
