//! The console Lambda behind API Gateway (HTTP API): `GET /console` and
//! `ANY /console/{proxy+}`, no gateway authorizer (the sign-in pages are
//! public); every other page verifies the session itself.
//!
//! Environment, besides the common settings: `USER_POOL_ID`,
//! `USER_POOL_CLIENT_ID`; in the cloud `COGNITO_DOMAIN` and
//! `CONSOLE_BASE_URL` (the hosted sign-in).

use lambda_http::{service_fn, Error, Request};
use optline_config::AwsClients;

#[tokio::main]
async fn main() -> Result<(), Error> {
    optline_config::init_logging();
    let clients = AwsClients::load().await;
    let deps = optline_console::deps_from_env(&clients).await?;
    let deps = &deps;
    lambda_http::run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(optline_console::handle(request, deps, chrono::Utc::now()).await)
    }))
    .await
}
