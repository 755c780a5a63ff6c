//! The outbox-drain Lambda, invoked by the table's DynamoDB stream.

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use optline_aws::EventBridgePublisher;
use optline_config::{AwsClients, ConfigError};

#[tokio::main]
async fn main() -> Result<(), Error> {
    optline_config::init_logging();
    let clients = AwsClients::load().await;
    let bus = std::env::var("OUTCOME_BUS_NAME")
        .ok()
        .filter(|b| !b.is_empty())
        .ok_or(ConfigError::Missing("OUTCOME_BUS_NAME"))?;
    let publisher = EventBridgePublisher::new(clients.events().clone(), bus);
    let publisher = &publisher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        Ok::<_, std::convert::Infallible>(
            optline_outbox_drain::handle(event.payload, publisher).await,
        )
    }))
    .await
}
