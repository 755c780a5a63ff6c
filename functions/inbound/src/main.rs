//! The inbound Lambda: carrier webhooks behind API Gateway (HTTP API).

use std::sync::Arc;

use lambda_http::{service_fn, Error, Request};
use optline_config::AwsClients;
use optline_inbound::rotation::Rotating;
use optline_inbound::Deps;

#[tokio::main]
async fn main() -> Result<(), Error> {
    optline_config::init_logging();
    let clients = AwsClients::load().await;
    let config = optline_aws::with_twilio_secret(
        clients.secrets(),
        optline_aws::load_config(&clients).await?,
    )
    .await?;
    let deps = Deps {
        store: Arc::new(optline_aws::table_store(&clients, &config).await?),
        lint: Arc::new(optline_library::lint_config(
            config.template_lint.as_deref(),
        )?),
        config: Arc::new(config),
        sender: None,
    };
    // A rotated Twilio secret takes effect on the first webhook it signs.
    let rotating = &Rotating::new(deps);
    let clients = &clients;
    lambda_http::run(service_fn(move |request: Request| async move {
        let reload = || async move {
            let config = optline_aws::load_config(clients).await?;
            optline_aws::with_twilio_secret(clients.secrets(), config).await
        };
        Ok::<_, Error>(rotating.handle(request, chrono::Utc::now(), reload).await)
    }))
    .await
}
