//! Secrets a function reads from AWS Secrets Manager at cold start, never
//! from its environment: the environment holds only the secret's ARN.

use std::collections::BTreeMap;

use optline_config::{Config, TwilioConfig};
use optline_ports::PortError;
use serde::Deserialize;

use crate::audit::unavailable;

/// The Twilio secret's JSON value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TwilioSecret {
    /// `AC…`; `TWILIO_ACCOUNT_SID` when absent.
    #[serde(default)]
    account_sid: Option<String>,
    /// The account's Auth Token (API calls, legacy webhook signatures).
    auth_token: String,
    /// Webhooks SharedKey secrets by key id.
    #[serde(default)]
    webhook_keys: BTreeMap<String, String>,
}

/// Fills `config.twilio` from the secret `TWILIO_SECRET_ARN` names (JSON:
/// `auth_token`, optional `account_sid` and `webhook_keys`), with the API
/// base and status callback from the environment. Without the variable the
/// configuration is returned as it is (local runs may set
/// `TWILIO_AUTH_TOKEN`; a deployment never does).
pub async fn with_twilio_secret(
    client: &aws_sdk_secretsmanager::Client,
    config: Config,
) -> Result<Config, PortError> {
    match std::env::var("TWILIO_SECRET_ARN") {
        Ok(arn) if !arn.is_empty() => {
            let account_sid = std::env::var("TWILIO_ACCOUNT_SID").ok();
            apply_twilio_secret(client, &arn, account_sid, config).await
        }
        _ => Ok(config),
    }
}

/// [`with_twilio_secret`] for a given secret.
pub async fn apply_twilio_secret(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
    account_sid: Option<String>,
    mut config: Config,
) -> Result<Config, PortError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| unavailable("read the Twilio secret", e))?;
    let raw = out
        .secret_string()
        .ok_or_else(|| PortError::Invalid("the Twilio secret has no string value".to_owned()))?;
    // The reason names the field at fault, never the value.
    let secret: TwilioSecret = serde_json::from_str(raw).map_err(|e| {
        PortError::Invalid(format!(
            "the Twilio secret is not {{\"auth_token\", \"account_sid\"?, \"webhook_keys\"?}} (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let account_sid = secret
        .account_sid
        .or(account_sid)
        .or_else(|| config.twilio.as_ref().map(|t| t.account_sid.clone()))
        .ok_or_else(|| PortError::Invalid("no Twilio account SID configured".to_owned()))?;
    let previous = config.twilio.take();
    config.twilio = Some(TwilioConfig {
        account_sid,
        auth_token: secret.auth_token,
        api_base: previous
            .as_ref()
            .map(|t| t.api_base.clone())
            .or_else(|| {
                std::env::var("TWILIO_API_BASE")
                    .ok()
                    .filter(|b| !b.is_empty())
            })
            .unwrap_or_else(|| "https://api.twilio.com".to_owned()),
        status_callback: previous
            .as_ref()
            .and_then(|t| t.status_callback.clone())
            .or_else(|| {
                std::env::var("TWILIO_STATUS_CALLBACK")
                    .ok()
                    .filter(|c| !c.is_empty())
            }),
        webhook_keys: secret.webhook_keys,
    });
    Ok(config)
}

/// The JSON of the secret `EHR_SOURCES_SECRET_ARN` names (each EHR source
/// and how it proves itself, the shape `EhrSources::parse` reads), or
/// `None` without the variable (local runs may set `EHR_SOURCES`; a
/// deployment never does).
pub async fn ehr_sources_json(
    client: &aws_sdk_secretsmanager::Client,
) -> Result<Option<String>, PortError> {
    let arn = match std::env::var("EHR_SOURCES_SECRET_ARN") {
        Ok(arn) if !arn.is_empty() => arn,
        _ => return Ok(None),
    };
    read_secret_string(client, &arn, "the EHR sources secret")
        .await
        .map(Some)
}

/// A secret's string value; the error names the secret, never its value.
pub async fn read_secret_string(
    client: &aws_sdk_secretsmanager::Client,
    arn: &str,
    what: &str,
) -> Result<String, PortError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| unavailable(&format!("read {what}"), e))?;
    out.secret_string()
        .map(str::to_owned)
        .ok_or_else(|| PortError::Invalid(format!("{what} has no string value")))
}
