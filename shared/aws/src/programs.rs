//! The programs document a deployer keeps in the table (`docs/programs.md`):
//! one current item and one item per version, written together by
//! `optline-ops programs put` with the caller's AWS identity, and read by
//! every function at cold start.
//!
//! - `pk = CONFIG#programs`, `sk = CURRENT`: `document` (the JSON),
//!   `version`, `sha256`, `changed_by`, `changed_at`
//! - `pk = CONFIG#programs`, `sk = V#<version, 8 digits>`: the same, kept
//!   (who changed a rate limit or a sender number, and when, is evidence)

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use chrono::{DateTime, SecondsFormat, Utc};
use optline_config::{parse_programs, Config, ProgramConfig};
use optline_ports::PortError;
use sha2::{Digest, Sha256};

use crate::audit::unavailable;

const PK: &str = "CONFIG#programs";
const CURRENT: &str = "CURRENT";

/// One stored version of the programs document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPrograms {
    /// 1 for the first document, then one more per change.
    pub version: u64,
    /// The document as it was put (JSON).
    pub document: String,
    /// SHA-256 of the document, hex.
    pub sha256: String,
    /// The AWS identity (ARN) that put it.
    pub changed_by: String,
    /// When.
    pub changed_at: String,
}

impl StoredPrograms {
    /// The programs, checked.
    ///
    /// # Errors
    ///
    /// When the stored document does not pass the checks (edited by hand).
    pub fn programs(&self) -> Result<Vec<ProgramConfig>, PortError> {
        parse_programs(&self.document).map_err(|e| {
            PortError::Invalid(format!("stored programs version {}: {e}", self.version))
        })
    }
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> Result<String, PortError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(PortError::Corrupt(format!("programs item: {name}"))),
    }
}

/// The current programs document, if one was ever put.
///
/// # Errors
///
/// When the table cannot be read or the item is malformed.
pub async fn read_programs(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Result<Option<StoredPrograms>, PortError> {
    let out = client
        .get_item()
        .table_name(table)
        .key("pk", s(PK))
        .key("sk", s(CURRENT))
        .consistent_read(true)
        .send()
        .await
        .map_err(|e| unavailable("read the programs document", e))?;
    let Some(item) = out.item() else {
        return Ok(None);
    };
    let version = match item.get("version") {
        Some(AttributeValue::N(n)) => n
            .parse()
            .map_err(|_| PortError::Corrupt("programs item: version".to_owned()))?,
        _ => return Err(PortError::Corrupt("programs item: version".to_owned())),
    };
    Ok(Some(StoredPrograms {
        version,
        document: text(item, "document")?,
        sha256: text(item, "sha256")?,
        changed_by: text(item, "changed_by")?,
        changed_at: text(item, "changed_at")?,
    }))
}

/// Stores `document` as the next version, after checking it: the current
/// item and a kept copy in one transaction, on condition that the current
/// version is still `expected` (`None`: no document yet), so two operators
/// never overwrite each other unseen.
///
/// # Errors
///
/// [`PortError::Invalid`] when the document fails the checks (nothing is
/// written), [`PortError::Conflict`] when someone else put a version first.
pub async fn put_programs(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    document: &str,
    expected: Option<u64>,
    changed_by: &str,
    now: DateTime<Utc>,
) -> Result<StoredPrograms, PortError> {
    parse_programs(document).map_err(|e| PortError::Invalid(e.to_string()))?;
    let version = expected.map_or(1, |v| v.saturating_add(1));
    let stored = StoredPrograms {
        version,
        document: document.to_owned(),
        sha256: hex::encode(Sha256::digest(document.as_bytes())),
        changed_by: changed_by.to_owned(),
        changed_at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
    };
    let item = |sk: String| {
        HashMap::from([
            ("pk".to_owned(), s(PK)),
            ("sk".to_owned(), s(sk)),
            ("version".to_owned(), AttributeValue::N(version.to_string())),
            ("document".to_owned(), s(&stored.document)),
            ("sha256".to_owned(), s(&stored.sha256)),
            ("changed_by".to_owned(), s(&stored.changed_by)),
            ("changed_at".to_owned(), s(&stored.changed_at)),
        ])
    };
    let current = match expected {
        None => Put::builder().condition_expression("attribute_not_exists(pk)"),
        Some(v) => Put::builder()
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", AttributeValue::N(v.to_string())),
    }
    .table_name(table)
    .set_item(Some(item(CURRENT.to_owned())))
    .build()
    .map_err(|e| PortError::Invalid(e.to_string()))?;
    let kept = Put::builder()
        .table_name(table)
        .set_item(Some(item(format!("V#{version:08}"))))
        .condition_expression("attribute_not_exists(pk)")
        .build()
        .map_err(|e| PortError::Invalid(e.to_string()))?;
    let result = client
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().put(current).build())
        .transact_items(TransactWriteItem::builder().put(kept).build())
        .send()
        .await;
    match result {
        Ok(_) => Ok(stored),
        Err(err) => {
            let cancelled = err
                .as_service_error()
                .is_some_and(|e| e.is_transaction_canceled_exception());
            if cancelled {
                Err(PortError::Conflict(format!(
                    "the programs document is no longer at version {}: read it again and retry",
                    expected.map_or_else(|| "none".to_owned(), |v| v.to_string())
                )))
            } else {
                Err(unavailable("put the programs document", err))
            }
        }
    }
}

/// `config` with the table's programs when a document was put; otherwise
/// as it is (the template's single-program parameters). A stored document
/// that fails the checks stops the function from starting, naming the
/// field: it never runs on a half-understood configuration.
///
/// # Errors
///
/// When the table cannot be read or the stored document is invalid.
pub async fn with_stored_programs(
    client: &aws_sdk_dynamodb::Client,
    config: Config,
) -> Result<Config, PortError> {
    let Some(stored) = read_programs(client, &config.table_name).await? else {
        return Ok(config);
    };
    let programs = stored.programs()?;
    tracing::info!(
        programs_version = stored.version,
        programs = programs.len(),
        "programs loaded from the table"
    );
    config
        .with_programs(programs)
        .map_err(|e| PortError::Invalid(e.to_string()))
}
