//! The outbox-drain Lambda, invoked by the table's DynamoDB stream.
//!
//! `OUTCOME_BUS_NAME`: the EventBridge bus; `WEBHOOK_SUBSCRIBERS_SECRET_ARN`:
//! the secret naming the subscribers' webhooks (`{}`: none).

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
    let bus = std::sync::Arc::new(EventBridgePublisher::new(clients.events().clone(), bus));
    // Subscribers' webhooks, from their secret (the environment holds only
    // its ARN): every event goes to the bus, then to each subscriber.
    let webhooks = match std::env::var("WEBHOOK_SUBSCRIBERS_SECRET_ARN") {
        Ok(arn) if !arn.is_empty() => {
            let json = optline_aws::read_secret_string(
                clients.secrets(),
                &arn,
                "the webhook subscribers secret",
            )
            .await?;
            Some(optline_aws::WebhookPublisher::parse(&json)?)
        }
        _ => None,
    };
    let publisher = match webhooks.filter(|w| !w.is_empty()) {
        Some(w) => optline_aws::Fanout(vec![bus, std::sync::Arc::new(w)]),
        None => optline_aws::Fanout(vec![bus]),
    };
    let publisher = &publisher;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        Ok::<_, std::convert::Infallible>(
            optline_outbox_drain::handle(event.payload, publisher).await,
        )
    }))
    .await
}
