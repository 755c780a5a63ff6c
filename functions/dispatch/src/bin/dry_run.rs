//! The sweep's dry run over HTTP (API Gateway): `GET /sweep/dry-run`.

use std::sync::Arc;

use lambda_http::{service_fn, Error, Request};
use optline_aws::ProgramSenders;
use optline_config::AwsClients;
use optline_dispatch::{dry_run_http, Delivery};

#[tokio::main]
async fn main() -> Result<(), Error> {
    optline_config::init_logging();
    let clients = AwsClients::load().await;
    let config = optline_aws::load_config(&clients).await?;
    let store = Arc::new(optline_aws::table_store(&clients, &config).await?);
    let people = optline_api::Verifier::from_env().await?;
    let deps = Delivery {
        store: store.clone(),
        pacer: store,
        // Never called: a dry run sends nothing.
        sender: Arc::new(ProgramSenders::from_config(&config, clients.sns().clone())?),
        lint: Arc::new(optline_library::lint_config(
            config.template_lint.as_deref(),
        )?),
        warm: Arc::default(),
        config: Arc::new(config),
    };
    let (deps, people) = (&deps, &people);
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(dry_run_http(request, deps, people, chrono::Utc::now()).await)
    }))
    .await
}
