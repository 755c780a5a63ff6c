//! `optline-ops`: operator commands against a deployment (or the local
//! stack). Reads the same environment as the functions (`TABLE_NAME`,
//! `QUEUE_URL`, `DLQ_URL`, and `AWS_ENDPOINT_URL` locally).
//!
//! ```sh
//! optline-ops audit-verify pat-1001        # exit 0 if the chain verifies, 1 if broken
//! optline-ops audit-export pat-1001 > chain.jsonl
//! optline-ops redrive [--max 10000]        # DLQ -> dispatch queue, undecodable ones stay
//! optline-ops sweep-dry-run [--at 2026-12-07T17:00:00Z]   # who would get what, and why not
//! optline-ops template seed                 # load the seed template library
//! optline-ops template list | show ID [V] | create FILE | submit ID V
//! optline-ops template approve ID V --role compliance | publish ID V | retire ID V --reason ...
//! ```

#![allow(
    clippy::print_stdout,
    reason = "a command-line tool writes its answers to stdout"
)]

mod template;

use clap::{Parser, Subcommand};
use optline_aws::{redrive, DynamoStore};
use optline_config::{AwsClients, ConfigError};
use optline_ports::{verify_chain, AuditTrail, ContactId};

#[derive(Debug, Parser)]
#[command(
    name = "optline-ops",
    about = "Operator commands against an optline deployment"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify a contact's audit hash chain; prints the result as JSON.
    AuditVerify {
        /// Contact id.
        contact: String,
    },
    /// Export a contact's audit chain as JSON lines (oldest first).
    AuditExport {
        /// Contact id.
        contact: String,
    },
    /// Move decodable messages from the dispatch DLQ back to the queue.
    Redrive {
        /// Most messages to look at.
        #[arg(long, default_value_t = 10_000)]
        max: usize,
    },
    /// What a sweep would send, defer or suppress now (or `--at`), and why,
    /// with counts per reason. Reads only: nothing is queued or sent.
    SweepDryRun {
        /// The instant to assess (RFC 3339); now when absent.
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        /// Most due steps to assess.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// The template library: seed, list, show, create, review, diff, preview.
    #[command(subcommand)]
    Template(template::TemplateCommand),
}

fn env(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(name))
}

#[tokio::main]
async fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let clients = AwsClients::load().await;
    match cli.command {
        Command::AuditVerify { contact } => {
            let store = DynamoStore::new(clients.dynamodb, env("TABLE_NAME")?);
            let chain = store.audit_chain(&ContactId::parse(&contact)?).await?;
            let result = verify_chain(&chain);
            println!(
                "{}",
                serde_json::json!({
                    "contact_id": contact,
                    "records": chain.len(),
                    "verified": result.is_ok(),
                    "break": result.as_ref().err(),
                    "head": chain.last().map(|r| r.hash.clone()),
                })
            );
            Ok(if result.is_ok() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
        Command::AuditExport { contact } => {
            let store = DynamoStore::new(clients.dynamodb, env("TABLE_NAME")?);
            for record in store.audit_chain(&ContactId::parse(&contact)?).await? {
                println!("{}", serde_json::to_string(&record)?);
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::SweepDryRun { at, limit } => {
            let config = optline_config::Config::from_env()?;
            let store = std::sync::Arc::new(
                DynamoStore::new(clients.dynamodb.clone(), config.table_name.clone())
                    .with_retention(config.retention_days)?,
            );
            let deps = optline_delivery::Deps {
                store: store.clone(),
                pacer: store,
                sender: std::sync::Arc::new(optline_aws::ProgramSenders::from_config(
                    &config,
                    clients.sns.clone(),
                )?),
                lint: std::sync::Arc::new(optline_library::lint_config(
                    config.template_lint.as_deref(),
                )?),
                warm: std::sync::Arc::default(),
                config: std::sync::Arc::new(config),
            };
            let report =
                optline_delivery::dry_run(&deps, at.unwrap_or_else(chrono::Utc::now), limit)
                    .await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Template(command) => {
            let store = DynamoStore::new(clients.dynamodb, env("TABLE_NAME")?);
            let sts = aws_sdk_sts::Client::new(&optline_config::aws_sdk_config().await);
            match template::run(command, &store, &sts).await {
                Ok(answer) => {
                    println!("{}", serde_json::to_string_pretty(&answer)?);
                    Ok(std::process::ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("{}", serde_json::json!({ "error": e.to_string() }));
                    Ok(std::process::ExitCode::FAILURE)
                }
            }
        }
        Command::Redrive { max } => {
            let report = redrive(&clients.sqs, &env("DLQ_URL")?, &env("QUEUE_URL")?, max).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}
