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
    /// Check a document's numbers against the provider's published limits:
    /// the answer of `aws pinpoint-sms-voice-v2 describe-phone-numbers`
    /// (AWS End User Messaging SMS `MessagingLimits`). Prints the findings
    /// and the document with each rate set to the published one; fails
    /// when a number is paced faster than published or has another type.
    Limits {
        /// The document (a JSON array of programs).
        file: std::path::PathBuf,
        /// The `DescribePhoneNumbers` answer (JSON).
        #[arg(long)]
        published: std::path::PathBuf,
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
        ProgramsCommand::Limits { file, published } => {
            use optline_config::limits;
            let mut programs = optline_config::parse_programs(&read(&file)?)?;
            let published = limits::parse_describe_phone_numbers(&read_at_most(
                &published,
                limits::MAX_PUBLISHED_BYTES,
            )?)?;
            let findings = limits::check_published(&programs, &published);
            let changed = limits::apply_published(&mut programs, &published);
            let errors = findings
                .iter()
                .filter(|f| f.severity == limits::Severity::Error)
                .count();
            let answer = serde_json::json!({
                "findings": findings,
                "errors": errors,
                "rates_changed": changed,
                "document_with_published_rates": programs,
            });
            if errors > 0 {
                // The findings first, so the reasons are on screen.
                println!("{}", serde_json::to_string_pretty(&answer)?);
                return Err(format!(
                    "{errors} number(s) contradict the provider's published limits"
                )
                .into());
            }
            Ok(answer)
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
    read_at_most(file, optline_config::MAX_PROGRAMS_DOCUMENT)
}

fn read_at_most(file: &std::path::Path, max: usize) -> Result<String, PortError> {
    let meta = std::fs::metadata(file)
        .map_err(|e| PortError::Invalid(format!("{}: {e}", file.display())))?;
    if meta.len() > max as u64 {
        return Err(PortError::Invalid(format!(
            "{} is larger than {max} bytes",
            file.display()
        )));
    }
    std::fs::read_to_string(file)
        .map_err(|e| PortError::Invalid(format!("{}: {e}", file.display())))
}
