//! The inbound-two-way Lambda: AWS End User Messaging two-way SMS, delivered
//! by an SNS subscription or through an SQS queue subscribed to the topic.

use std::sync::Arc;

use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use optline_aws::{DynamoStore, ProgramSenders};
use optline_config::{AwsClients, Config};
use optline_inbound::{handle_two_way_sns, handle_two_way_sqs, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    optline_config::init_logging();
    let config = Config::from_env()?;
    let clients = AwsClients::load().await;
    let outcomes = optline_aws::EventBridgeOutcomes::from_env(&clients.events);
    let deps = Deps {
        outcomes,
        store: Arc::new(
            DynamoStore::new(clients.dynamodb.clone(), config.table_name.clone())
                .with_retention(config.retention_days)?,
        ),
        sender: Some(Arc::new(ProgramSenders::from_config(
            &config,
            clients.sns.clone(),
        )?)),
        config: Arc::new(config),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let now = chrono::Utc::now();
            let from_sqs = event
                .payload
                .pointer("/Records/0/eventSource")
                .and_then(|s| s.as_str())
                == Some("aws:sqs");
            if from_sqs {
                let batch: SqsEvent = serde_json::from_value(event.payload)?;
                Ok::<serde_json::Value, Error>(serde_json::to_value(
                    handle_two_way_sqs(batch, deps, now).await,
                )?)
            } else {
                let sns: SnsEvent = serde_json::from_value(event.payload)?;
                handle_two_way_sns(sns, deps, now).await?;
                Ok(serde_json::Value::Null)
            }
        },
    ))
    .await
}
