//! The dispatch Lambda: setup once, then a thin handler per SQS batch.

use std::sync::Arc;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use optline_aws::{ProgramSenders, SqsDeadLetters};
use optline_config::AwsClients;
use optline_dispatch::{handle_batch, Delivery, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    optline_config::init_logging();
    let clients = AwsClients::load().await;
    let config = optline_aws::with_twilio_secret(
        clients.secrets(),
        optline_aws::load_config(&clients).await?,
    )
    .await?;
    let store = Arc::new(optline_aws::table_store(&clients, &config).await?);
    let deps = Deps {
        dead_letters: std::env::var("DLQ_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .map(|url| Arc::new(SqsDeadLetters::new(clients.sqs().clone(), url)) as _),
        delivery: Delivery {
            store: store.clone(),
            pacer: store,
            warm: Arc::default(),
            sender: Arc::new(ProgramSenders::from_config(&config, clients.sns().clone())?),
            lint: Arc::new(optline_library::lint_config(
                config.template_lint.as_deref(),
            )?),
            config: Arc::new(config),
        },
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, std::convert::Infallible>(
            handle_batch(event.payload, deps, chrono::Utc::now()).await,
        )
    }))
    .await
}
