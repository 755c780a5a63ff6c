//! `redrive`: moves decodable messages from the dispatch DLQ back to the
//! dispatch queue (undecodable ones stay, with their reason). Safe to run at
//! any time: dispatch claims each step once.
//!
//! ```sh
//! QUEUE_URL=… DLQ_URL=… cargo run -p optline-dispatch --bin redrive [MAX]
//! ```

#![allow(clippy::print_stdout, reason = "a command-line report")]

use optline_aws::redrive;
use optline_config::AwsClients;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let queue = std::env::var("QUEUE_URL").map_err(|_| "QUEUE_URL is not set")?;
    let dlq = std::env::var("DLQ_URL").map_err(|_| "DLQ_URL is not set")?;
    let max: usize = std::env::args()
        .nth(1)
        .map(|m| m.parse())
        .transpose()?
        .unwrap_or(10_000);
    let clients = AwsClients::load().await;
    let report = redrive(&clients.sqs, &dlq, &queue, max).await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
