//! The audit-anchor Lambda, invoked by its EventBridge schedule.

use lambda_runtime::{service_fn, Error, LambdaEvent};
use optline_audit_anchor::{handle, Deps};
use optline_aws::{DynamoStore, KmsSigner, S3Anchors};
use optline_config::{AwsClients, ConfigError};

fn required(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(name))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    optline_config::init_logging();
    let clients = AwsClients::load().await;
    let days: i64 = match std::env::var("ANCHOR_RETENTION_DAYS") {
        Ok(v) if !v.is_empty() => v.parse().map_err(|_| ConfigError::Invalid {
            name: "ANCHOR_RETENTION_DAYS",
            reason: "a whole number of days".to_owned(),
        })?,
        _ => 2557,
    };
    let deps = Deps {
        store: DynamoStore::new(clients.dynamodb().clone(), required("TABLE_NAME")?),
        signer: KmsSigner::new(clients.kms().clone(), required("AUDIT_SIGNING_KEY_ID")?),
        anchors: S3Anchors::new(clients.s3().clone(), required("ANCHOR_BUCKET")?),
        retention: chrono::Duration::days(days),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |_event: LambdaEvent<serde_json::Value>| async move {
            handle(deps, chrono::Utc::now()).await
        },
    ))
    .await
}
