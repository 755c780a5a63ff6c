//! The inbound-two-way Lambda: AWS End User Messaging two-way SMS, delivered
//! by an SNS subscription or through an SQS queue subscribed to the topic.

use std::sync::Arc;

use aws_lambda_events::event::sns::SnsEvent;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{service_fn, Diagnostic, Error, LambdaEvent};
use optline_aws::ProgramSenders;
use optline_config::AwsClients;
use optline_inbound::two_way::{handle_two_way_sns, handle_two_way_sqs, TwoWayError};
use optline_inbound::Deps;

/// Why an invocation failed, as Lambda records it (`errorType`).
#[derive(Debug)]
struct TwoWayFailed(String, &'static str);

impl From<TwoWayFailed> for Diagnostic {
    fn from(failed: TwoWayFailed) -> Self {
        Diagnostic {
            error_type: failed.1.to_owned(),
            error_message: failed.0,
        }
    }
}

fn failed(e: &TwoWayError) -> TwoWayFailed {
    let kind = match e {
        TwoWayError::Undecodable(_) => "UndecodableTwoWaySms",
        TwoWayError::Reply(_) => "ReplyNotHandled",
        TwoWayError::Lane(_) => "ComplianceTextNotSent",
        TwoWayError::Port(_) => "StorageUnavailable",
    };
    TwoWayFailed(e.to_string(), kind)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    optline_config::init_logging();
    let clients = AwsClients::load().await;
    let config = optline_aws::load_config(&clients).await?;
    let deps = Deps {
        store: Arc::new(optline_aws::table_store(&clients, &config).await?),
        sender: Some(Arc::new(ProgramSenders::from_config(
            &config,
            clients.sns().clone(),
        )?)),
        lint: Arc::new(optline_library::lint_config(
            config.template_lint.as_deref(),
        )?),
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
                let batch: SqsEvent = serde_json::from_value(event.payload)
                    .map_err(|e| TwoWayFailed(e.to_string(), "UndecodableSqsEvent"))?;
                let answer = handle_two_way_sqs(batch, deps, now).await;
                serde_json::to_value(answer)
                    .map_err(|e| TwoWayFailed(e.to_string(), "UnencodableAnswer"))
            } else {
                let sns: SnsEvent = serde_json::from_value(event.payload)
                    .map_err(|e| TwoWayFailed(e.to_string(), "UndecodableSnsEvent"))?;
                handle_two_way_sns(sns, deps, now)
                    .await
                    .map_err(|e| failed(&e))?;
                Ok(serde_json::Value::Null)
            }
        },
    ))
    .await
}
