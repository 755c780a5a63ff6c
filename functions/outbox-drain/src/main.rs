//! The outbox-drain Lambda, invoked by the table's DynamoDB stream.
//!
//! `OUTCOME_BUS_NAME`: the EventBridge bus; `TABLE_NAME`: the table whose
//! rollups the tallies are counted into; `WEBHOOK_SUBSCRIBERS_SECRET_ARN`:
//! the secret naming the subscribers' webhooks (`{}`: none);
//! `CONSENT_WRITEBACK_SOURCE` (optional): the EHR source whose FHIR server
//! receives consent changes as FHIR `Consent` resources.

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
    let mut publishers: Vec<std::sync::Arc<dyn optline_ports::EventPublisher>> = vec![bus];
    if let Some(w) = webhooks.filter(|w| !w.is_empty()) {
        publishers.push(std::sync::Arc::new(w));
    }
    // Consent changes written to the EHR as FHIR Consent resources, when a
    // source is named and the EHR sources secret gives its FHIR server.
    if let Ok(source) = std::env::var("CONSENT_WRITEBACK_SOURCE") {
        if !source.trim().is_empty() {
            let json = optline_aws::ehr_sources_json(clients.secrets())
                .await?
                .ok_or("CONSENT_WRITEBACK_SOURCE is set but no EHR sources secret is configured")?;
            let raw: std::collections::BTreeMap<String, serde_json::Value> =
                serde_json::from_str(&json)?;
            let config: optline_aws::SmartConfig = raw
                .get(source.trim())
                .and_then(|s| s.get("fhir"))
                .cloned()
                .map(serde_json::from_value)
                .transpose()?
                .ok_or("CONSENT_WRITEBACK_SOURCE names a source without fhir settings")?;
            let fhir = optline_aws::SmartFhirReader::new(std::collections::BTreeMap::from([(
                source.trim().to_owned(),
                config,
            )]))?;
            publishers.push(std::sync::Arc::new(optline_aws::FhirConsentWriter {
                fhir: std::sync::Arc::new(fhir),
                source: source.trim().to_owned(),
            }));
        }
    }
    let publisher = optline_aws::Fanout(publishers);
    let publisher = &publisher;
    let table = std::env::var("TABLE_NAME")
        .ok()
        .filter(|t| !t.is_empty())
        .ok_or(ConfigError::Missing("TABLE_NAME"))?;
    let rollups = optline_aws::DynamoStore::new(clients.dynamodb().clone(), table);
    let rollups = &rollups;
    // When a template version's opt-outs are a spike (template parameters
    // TemplatePauseOptOutsPer1000 and TemplatePauseMinSends).
    let mut pause = optline_outcomes::pauses::PausePolicy::default();
    if let Some(v) = std::env::var("TEMPLATE_PAUSE_OPT_OUTS_PER_1000")
        .ok()
        .filter(|v| !v.is_empty())
    {
        pause.per_1000 = v
            .parse()
            .map_err(|_| "TEMPLATE_PAUSE_OPT_OUTS_PER_1000 is a number")?;
    }
    if let Some(v) = std::env::var("TEMPLATE_PAUSE_MIN_SENDS")
        .ok()
        .filter(|v| !v.is_empty())
    {
        pause.min_sends = v
            .parse()
            .map_err(|_| "TEMPLATE_PAUSE_MIN_SENDS is a whole number")?;
    }
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| async move {
        Ok::<_, std::convert::Infallible>(
            optline_outbox_drain::handle(event.payload, publisher, rollups, pause).await,
        )
    }))
    .await
}
