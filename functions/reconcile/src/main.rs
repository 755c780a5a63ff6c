//! The reconcile Lambda, invoked daily by EventBridge Scheduler.

use std::sync::Arc;

use lambda_runtime::{service_fn, Error, LambdaEvent};
use optline_aws::SnsOptOutList;
use optline_config::AwsClients;
use optline_reconcile::{handle, Deps};

#[tokio::main]
async fn main() -> Result<(), Error> {
    optline_config::init_logging();
    let clients = AwsClients::load().await;
    let config = optline_aws::load_config(&clients).await?;
    let deps = Deps {
        store: Arc::new(optline_aws::table_store(&clients, &config).await?),
        carrier: Arc::new(SnsOptOutList::new(clients.sns().clone())),
        programs: config.programs.keys().cloned().collect(),
    };
    let deps = &deps;
    lambda_runtime::run(service_fn(
        move |_event: LambdaEvent<serde_json::Value>| async move {
            handle(deps, chrono::Utc::now()).await
        },
    ))
    .await
}
