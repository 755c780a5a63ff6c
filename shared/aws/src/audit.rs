//! The audit trail's keys and anchors: the chain key from Secrets Manager,
//! the signing key in KMS, and anchors in an S3 bucket with Object Lock.

use async_trait::async_trait;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use chrono::{DateTime, Utc};
use optline_ports::{AnchorStore, AuditKey, PortError, Signer};

pub(crate) fn unavailable<E: std::error::Error + 'static, R: std::fmt::Debug>(
    what: &str,
    err: aws_smithy_runtime_api::client::result::SdkError<E, R>,
) -> PortError {
    PortError::Unavailable(format!(
        "{what}: {}",
        aws_sdk_kms::error::DisplayErrorContext(err)
    ))
}

/// Reads the audit chain's key from the secret `arn` (its value, at least
/// 32 characters, is the HMAC key; its version id is the key's id).
pub async fn load_audit_key(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
) -> Result<AuditKey, PortError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| unavailable("read the audit key", e))?;
    let secret = out
        .secret_string()
        .ok_or_else(|| PortError::Invalid("the audit key secret has no string value".to_owned()))?;
    let id = out.version_id().unwrap_or("unversioned").to_owned();
    AuditKey::new(format!("audit-key:{id}"), secret.as_bytes())
}

/// The audit key named by `AUDIT_KEY_SECRET_ARN`, when the deployment sets
/// one.
pub async fn audit_key_from_env(
    client: &aws_sdk_secretsmanager::Client,
) -> Result<Option<AuditKey>, PortError> {
    match std::env::var("AUDIT_KEY_SECRET_ARN") {
        Ok(arn) if !arn.is_empty() => Ok(Some(load_audit_key(client, &arn).await?)),
        _ => Ok(None),
    }
}

/// An ECC_NIST_P256 signing key in AWS KMS.
#[derive(Debug, Clone)]
pub struct KmsSigner {
    client: aws_sdk_kms::Client,
    key_id: String,
}

impl KmsSigner {
    /// The key `key_id` (an id, ARN or alias).
    pub fn new(client: aws_sdk_kms::Client, key_id: impl Into<String>) -> Self {
        Self {
            client,
            key_id: key_id.into(),
        }
    }
}

#[async_trait]
impl Signer for KmsSigner {
    fn key_id(&self) -> &str {
        &self.key_id
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, PortError> {
        let out = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(message))
            .message_type(MessageType::Raw)
            .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
            .send()
            .await
            .map_err(|e| unavailable("kms sign", e))?;
        out.signature()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| PortError::Unavailable("kms returned no signature".to_owned()))
    }

    async fn public_key(&self) -> Result<Vec<u8>, PortError> {
        let out = self
            .client
            .get_public_key()
            .key_id(&self.key_id)
            .send()
            .await
            .map_err(|e| unavailable("kms get public key", e))?;
        out.public_key()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| PortError::Unavailable("kms returned no public key".to_owned()))
    }
}

/// Anchors in an S3 bucket with Object Lock, under `anchors/`.
#[derive(Debug, Clone)]
pub struct S3Anchors {
    client: aws_sdk_s3::Client,
    bucket: String,
}

/// The prefix anchors are written under; names sort by time.
const ANCHOR_PREFIX: &str = "anchors/";

impl S3Anchors {
    /// Anchors in `bucket`.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }
}

#[async_trait]
impl AnchorStore for S3Anchors {
    async fn put_anchor(
        &self,
        name: &str,
        body: &[u8],
        retain_until: DateTime<Utc>,
    ) -> Result<(), PortError> {
        use aws_sdk_s3::types::ObjectLockMode;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(format!("{ANCHOR_PREFIX}{name}"))
            .body(aws_sdk_s3::primitives::ByteStream::from(body.to_vec()))
            .content_type("application/json")
            .object_lock_mode(ObjectLockMode::Compliance)
            .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(
                retain_until.timestamp(),
            ))
            .send()
            .await
            .map_err(|e| {
                PortError::Unavailable(format!(
                    "put anchor: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                ))
            })?;
        Ok(())
    }

    async fn latest_anchor(&self) -> Result<Option<Vec<u8>>, PortError> {
        let mut latest: Option<String> = None;
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(ANCHOR_PREFIX)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    PortError::Unavailable(format!(
                        "list anchors: {}",
                        aws_sdk_s3::error::DisplayErrorContext(e)
                    ))
                })?;
            for object in out.contents() {
                if let Some(key) = object.key() {
                    if latest.as_deref().is_none_or(|l| key > l) {
                        latest = Some(key.to_owned());
                    }
                }
            }
            match out.next_continuation_token() {
                Some(next) if out.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => break,
            }
        }
        let Some(key) = latest else {
            return Ok(None);
        };
        let object = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| {
                PortError::Unavailable(format!(
                    "get anchor: {}",
                    aws_sdk_s3::error::DisplayErrorContext(e)
                ))
            })?;
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|_| PortError::Unavailable("read anchor".to_owned()))?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }
}
