//! `optline-ops`: operator commands against a deployment (or the local
//! stack). Reads the same environment as the functions (`TABLE_NAME`,
//! `QUEUE_URL`, `DLQ_URL`, and `AWS_ENDPOINT_URL` locally).
//!
//! ```sh
//! optline-ops audit-verify pat-1001        # the chain (keyed) and the latest anchor; exit 1 if broken
//! optline-ops audit-export pat-1001 > chain.jsonl
//! optline-ops audit-anchor                  # anchor every chain head now (the schedule does it hourly)
//! optline-ops proof-export pat-1001 > proof.json [--format html > proof.html]
//! optline-ops public-key > audit-key.pem    # the signing key's public half
//! optline-ops proof-verify proof.json --public-key audit-key.pem   # offline; no AWS
//! optline-ops redrive [--max 10000]        # DLQ -> dispatch queue, undecodable ones stay
//! optline-ops sweep-dry-run [--at 2026-12-07T17:00:00Z]   # who would get what, and why not
//! optline-ops template seed                 # load the seed template library
//! optline-ops template list | show ID [V] | create FILE | submit ID V
//! optline-ops template approve ID V --role compliance | publish ID V | retire ID V --reason ...
//! optline-ops programs show | check FILE | put FILE [--expect-version N]
//! optline-ops report --from 2026-11-01 --to 2026-11-30 [--program clinic] [--format table|json|csv|html] [--coverage]
//! ```

#![allow(
    clippy::print_stdout,
    reason = "a command-line tool writes its answers to stdout"
)]

mod programs;
mod template;

use clap::{Parser, Subcommand};
use optline_aws::{audit_key_from_env, redrive, DynamoStore, KmsSigner, S3Anchors};
use optline_config::{AwsClients, ConfigError};
use optline_ports::{AnchorStore, AuditTrail, ContactId, Signer};

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
    /// Verify a contact's audit chain (its keyed links) and check it
    /// against the latest signed anchor (truncation, rewrite); JSON.
    AuditVerify {
        /// Contact id.
        contact: String,
    },
    /// Anchor every chain's head now: a signed Merkle root, kept write-once.
    AuditAnchor,
    /// A contact's proof of consent as a signed bundle (JSON), or a
    /// printable page of it (`--format html`).
    ProofExport {
        /// Contact id.
        contact: String,
        /// `json` (the signed bundle) or `html`.
        #[arg(long, default_value = "json")]
        format: String,
    },
    /// The signing key's public key (PEM), for anyone verifying bundles.
    PublicKey,
    /// Verify a proof bundle offline with the public key (PEM file).
    ProofVerify {
        /// The bundle (JSON).
        bundle: std::path::PathBuf,
        /// The public key (PEM).
        #[arg(long)]
        public_key: std::path::PathBuf,
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
    /// The programs document: show, check, put (`docs/programs.md`).
    #[command(subcommand)]
    Programs(programs::ProgramsCommand),
    /// The KPIs from the rollups (`docs/outcomes.md`): overall, per
    /// program, per template version and arm, and by day.
    Report {
        /// First day (UTC), inclusive.
        #[arg(long)]
        from: chrono::NaiveDate,
        /// Last day (UTC), inclusive.
        #[arg(long)]
        to: chrono::NaiveDate,
        /// One program.
        #[arg(long)]
        program: Option<String>,
        /// `table`, `json`, `csv` or `html` (a printable page with charts).
        #[arg(long, default_value = "table")]
        format: optline_outcomes::Format,
        /// USD per SMS segment, for the cost line.
        #[arg(long, default_value_t = optline_outcomes::DEFAULT_PRICE_PER_SEGMENT)]
        price_per_segment: f64,
        /// Also take the consent coverage census (reads every contact).
        #[arg(long)]
        coverage: bool,
    },
}

fn env(name: &'static str) -> Result<String, ConfigError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(ConfigError::Missing(name))
}

/// Prints a subcommand's JSON answer, or `{"error": ...}` with exit 1.
fn answer(
    result: Result<serde_json::Value, Box<dyn std::error::Error>>,
) -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    match result {
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

#[tokio::main]
async fn main() -> Result<std::process::ExitCode, Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let clients = AwsClients::load_default_chain().await;
    match cli.command {
        Command::AuditVerify { contact } => {
            let store = DynamoStore::new(clients.dynamodb().clone(), env("TABLE_NAME")?)
                .with_audit_key(audit_key_from_env(clients.secrets()).await?);
            let chain = store.audit_chain(&ContactId::subject(&contact)?).await?;
            let anchor = match std::env::var("ANCHOR_BUCKET") {
                Ok(bucket) if !bucket.is_empty() => S3Anchors::new(clients.s3().clone(), bucket)
                    .latest_anchor()
                    .await?
                    .map(|bytes| optline_audit::parse_anchor(&bytes))
                    .transpose()?,
                _ => None,
            };
            let public_key = match (&anchor, std::env::var("AUDIT_SIGNING_KEY_ID")) {
                (Some(_), Ok(key)) => {
                    KmsSigner::new(clients.kms().clone(), key)
                        .public_key()
                        .await?
                }
                _ => Vec::new(),
            };
            let verdict = optline_audit::verify_against_anchor(
                &contact,
                &chain,
                store.audit_key(),
                anchor.as_ref(),
                &public_key,
            );
            println!(
                "{}",
                serde_json::json!({
                    "contact_id": contact,
                    "records": chain.len(),
                    "verified": verdict.holds(),
                    "break": verdict.broken,
                    "anchor": verdict.anchor,
                    "head": chain.last().map(|r| r.hash.clone()),
                })
            );
            Ok(if verdict.holds() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
        Command::AuditAnchor => {
            let store = DynamoStore::new(clients.dynamodb().clone(), env("TABLE_NAME")?);
            let signer = KmsSigner::new(clients.kms().clone(), env("AUDIT_SIGNING_KEY_ID")?);
            let anchors = S3Anchors::new(clients.s3().clone(), env("ANCHOR_BUCKET")?);
            let now = chrono::Utc::now();
            let report = optline_audit::anchor(
                &store,
                &signer,
                &anchors,
                now,
                now + chrono::Duration::days(2557),
            )
            .await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::ProofExport { contact, format } => {
            let config = optline_aws::load_config(&clients).await?;
            let store = optline_aws::table_store(&clients, &config).await?;
            let signer = KmsSigner::new(clients.kms().clone(), env("AUDIT_SIGNING_KEY_ID")?);
            let anchors = S3Anchors::new(clients.s3().clone(), env("ANCHOR_BUCKET")?);
            let consent = optline_consent::Consent {
                store: &store,
                default_program: &config.default_program,
            };
            let (signed, content) = optline_audit::proof::export(
                consent,
                &anchors,
                &signer,
                &contact,
                chrono::Utc::now(),
            )
            .await?;
            match format.as_str() {
                "html" => println!("{}", optline_audit::proof::render_html(&content, &signed)),
                _ => println!("{}", serde_json::to_string_pretty(&signed)?),
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::PublicKey => {
            let signer = KmsSigner::new(clients.kms().clone(), env("AUDIT_SIGNING_KEY_ID")?);
            print!(
                "{}",
                optline_audit::public_key_pem(&signer.public_key().await?)?
            );
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::ProofVerify { bundle, public_key } => {
            let der = optline_audit::public_key_der(&std::fs::read_to_string(public_key)?)?;
            let verdict = optline_audit::proof::verify(&std::fs::read(bundle)?, &der)?;
            println!("{}", serde_json::to_string(&verdict)?);
            Ok(if verdict.holds() {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            })
        }
        Command::AuditExport { contact } => {
            let store = DynamoStore::new(clients.dynamodb().clone(), env("TABLE_NAME")?);
            for record in store.audit_chain(&ContactId::subject(&contact)?).await? {
                println!("{}", serde_json::to_string(&record)?);
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::SweepDryRun { at, limit } => {
            let config = optline_aws::load_config(&clients).await?;
            let store = std::sync::Arc::new(
                DynamoStore::new(clients.dynamodb().clone(), config.table_name.clone())
                    .with_retention(config.retention_days)?,
            );
            let deps = optline_delivery::Deps {
                store: store.clone(),
                pacer: store,
                sender: std::sync::Arc::new(optline_aws::ProgramSenders::from_config(
                    &config,
                    clients.sns().clone(),
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
            let store = DynamoStore::new(clients.dynamodb().clone(), env("TABLE_NAME")?);
            answer(template::run(command, &store).await)
        }
        Command::Programs(command) => {
            let sts = aws_sdk_sts::Client::new(clients.shared());
            answer(programs::run(command, clients.dynamodb(), &sts).await)
        }
        Command::Report {
            from,
            to,
            program,
            format,
            price_per_segment,
            coverage,
        } => {
            if to < from || (to - from).num_days() > 366 {
                return Err("--to must be on or after --from, at most a year later".into());
            }
            let config = optline_aws::load_config(&clients).await?;
            let store = DynamoStore::new(clients.dynamodb().clone(), config.table_name.clone());
            let request = optline_outcomes::ReportRequest {
                from,
                to,
                program,
                price_per_segment,
                no_show_baselines: config
                    .programs
                    .values()
                    .filter_map(|p| {
                        Some((p.id.clone(), f64::from(p.no_show_baseline_percent?) / 100.0))
                    })
                    .collect(),
            };
            let now = chrono::Utc::now();
            let mut report = optline_outcomes::gather(&store, &request, now).await?;
            if coverage {
                let categories = optline_outcomes::coverage::categories(&store).await?;
                report.coverage = Some(
                    optline_outcomes::coverage::coverage(
                        &store,
                        &categories,
                        request.program.as_deref(),
                        now,
                    )
                    .await?,
                );
            }
            print!("{}", report.render(format));
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Redrive { max } => {
            let report = redrive(clients.sqs(), &env("DLQ_URL")?, &env("QUEUE_URL")?, max).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(std::process::ExitCode::SUCCESS)
        }
    }
}
