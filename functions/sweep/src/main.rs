//! The sweep Lambda, invoked by the EventBridge schedule.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use optline_aws::SqsStepQueue;
use optline_config::{AwsClients, ConfigError};
use optline_sweep::{handle, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    optline_config::init_logging();
    let clients = AwsClients::load().await;
    let config = optline_aws::load_config(&clients).await?;
    let queue_url = config
        .queue_url
        .clone()
        .ok_or(ConfigError::Missing("QUEUE_URL"))?;
    let deps = Deps {
        store: Arc::new(optline_aws::table_store(&clients, &config).await?),
        queue: Arc::new(SqsStepQueue::new(clients.sqs().clone(), queue_url)),
        config: Arc::new(config),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |_event: LambdaEvent<serde_json::Value>| async move {
            handle(deps, chrono::Utc::now()).await
        },
    ))
    .await
}
