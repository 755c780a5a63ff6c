//! `optline-ops programs`: the deployment's programs (senders, rates,
//! cadences, zones, audiences) as a document in the table, checked before
//! it is stored and kept version by version with who put it.

use clap::Subcommand;
use optline_ports::PortError;

/// Programs commands.
#[derive(Debug, Subcommand)]
pub enum ProgramsCommand {
    /// The current document with its version, hash, author and time (or
    /// the programs the functions run from their environment when none
    /// was put).
    Show,
    /// Check a document without storing it; every problem is listed.
    Check {
        /// The document (a JSON array of programs).
        file: std::path::PathBuf,
    },
    /// Check a document and store it as the next version. Functions read
    /// it when they start (`docs/programs.md`).
    Put {
        /// The document (a JSON array of programs).
        file: std::path::PathBuf,
        /// The version this change replaces (from `show`); the put fails
        /// if someone else changed it since. Without it, the current one.
        #[arg(long)]
        expect_version: Option<u64>,
    },
}

/// Runs one programs command; the answer is JSON on stdout.
pub async fn run(
    command: ProgramsCommand,
    dynamodb: &aws_sdk_dynamodb::Client,
    sts: &aws_sdk_sts::Client,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    match command {
        ProgramsCommand::Check { file } => {
            let document = read(&file)?;
            match optline_config::parse_programs(&document) {
                Ok(programs) => Ok(serde_json::json!({
                    "valid": true,
                    "programs": programs.iter().map(|p| &p.id).collect::<Vec<_>>(),
                })),
                Err(e) => Err(e.to_string().into()),
            }
        }
        ProgramsCommand::Show => {
            let config = optline_config::Config::from_env()?;
            match optline_aws::read_programs(dynamodb, &config.table_name).await? {
                Some(stored) => Ok(serde_json::json!({
                    "source": "table",
                    "version": stored.version,
                    "sha256": stored.sha256,
                    "changed_by": stored.changed_by,
                    "changed_at": stored.changed_at,
                    "programs": serde_json::from_str::<serde_json::Value>(&stored.document)?,
                })),
                None => Ok(serde_json::json!({
                    "source": "environment",
                    "programs": config.programs.values().collect::<Vec<_>>(),
                })),
            }
        }
        ProgramsCommand::Put {
            file,
            expect_version,
        } => {
            let table = optline_config::Config::from_env()?.table_name;
            let document = read(&file)?;
            let expected = match expect_version {
                Some(v) => Some(v),
                None => optline_aws::read_programs(dynamodb, &table)
                    .await?
                    .map(|s| s.version),
            };
            let me = sts.get_caller_identity().send().await?;
            let arn = me.arn().ok_or("the caller identity has no arn")?;
            let stored = optline_aws::put_programs(
                dynamodb,
                &table,
                &document,
                expected,
                arn,
                chrono::Utc::now(),
            )
            .await?;
            Ok(serde_json::json!({
                "version": stored.version,
                "sha256": stored.sha256,
                "changed_by": stored.changed_by,
                "changed_at": stored.changed_at,
            }))
        }
    }
}

fn read(file: &std::path::Path) -> Result<String, PortError> {
    let meta = std::fs::metadata(file)
        .map_err(|e| PortError::Invalid(format!("{}: {e}", file.display())))?;
    if meta.len() > optline_config::MAX_PROGRAMS_DOCUMENT as u64 {
        return Err(PortError::Invalid(format!(
            "{} is larger than {} bytes",
            file.display(),
            optline_config::MAX_PROGRAMS_DOCUMENT
        )));
    }
    std::fs::read_to_string(file)
        .map_err(|e| PortError::Invalid(format!("{}: {e}", file.display())))
}
