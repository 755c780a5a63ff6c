//! `optline-console-local`: the console function served on loopback for a
//! person to open in a browser, over the local emulator. It reads the same
//! environment the Lambda reads (`TABLE_NAME`, `USER_POOL_ID`,
//! `USER_POOL_CLIENT_ID`, `AUDIT_KEY_SECRET_ARN`, `AWS_ENDPOINT_URL`, ...)
//! and listens on `CONSOLE_PORT` (default 9100). The main job starts it
//! over the stack it ran the story in.

#![allow(clippy::print_stdout, reason = "it tells the person where to go")]

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    optline_config::init_logging();
    let port: u16 = std::env::var("CONSOLE_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9100);
    let clients = optline_config::AwsClients::load().await;
    let deps = optline_console::deps_from_env(&clients).await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("optline console at http://localhost:{port}/console");
    optline_tests::console_server::serve(deps, listener).await?;
    Ok(())
}
