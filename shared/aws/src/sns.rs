//! The Amazon SNS sender: `Publish` to a phone number.
//!
//! `AWS.SNS.SMS.SMSType` is `Transactional` for transactional and
//! informational classes and `Promotional` for marketing (SNS developer guide,
//! "Publishing to a mobile phone"). The origination number, when configured
//! for the program, goes in `AWS.MM.SMS.OriginationNumber`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_sns::error::ProvideErrorMetadata;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;
use optline_policy::MessageClass;
use optline_ports::{
    CarrierOptOutList, CarrierReceipt, FailureKind, OutboundSms, PortError, SendFailure, SmsSender,
};

/// The SNS sender.
#[derive(Debug, Clone)]
pub struct SnsSender {
    client: Client,
    origination: BTreeMap<String, String>,
}

/// SNS's SMSType for a message class.
pub fn sms_type(class: MessageClass) -> &'static str {
    match class {
        MessageClass::Marketing => "Promotional",
        MessageClass::Transactional | MessageClass::Informational => "Transactional",
    }
}

fn attribute(value: &str) -> Result<MessageAttributeValue, SendFailure> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| SendFailure {
            code: "InvalidAttribute".to_owned(),
            reason: e.to_string(),
            kind: FailureKind::Refused,
            recipient_opted_out: false,
        })
}

impl SnsSender {
    /// A sender; `origination` maps program ids to origination numbers.
    pub fn new(client: Client, origination: BTreeMap<String, String>) -> Self {
        Self {
            client,
            origination,
        }
    }
}

#[async_trait]
impl SmsSender for SnsSender {
    async fn send(&self, sms: &OutboundSms) -> Result<CarrierReceipt, SendFailure> {
        let mut request = self
            .client
            .publish()
            .phone_number(sms.to.as_str())
            .message(&sms.body)
            .message_attributes("AWS.SNS.SMS.SMSType", attribute(sms_type(sms.class))?);
        if let Some(number) = sms
            .from
            .as_ref()
            .or_else(|| self.origination.get(&sms.program))
        {
            request =
                request.message_attributes("AWS.MM.SMS.OriginationNumber", attribute(number)?);
        }
        match request.send().await {
            Ok(out) => Ok(CarrierReceipt {
                carrier: "sns".to_owned(),
                message_id: out.message_id().unwrap_or_default().to_owned(),
            }),
            Err(err) => {
                let code = err.code().unwrap_or("Unknown").to_owned();
                let kind = publish_failure_kind(&err, &code);
                let opted_out = code == "OptedOutException";
                tracing::warn!(code = %code, ?kind, "sns publish failed");
                Err(SendFailure {
                    // SNS's messages can echo the number: keep only the code.
                    reason: format!("sns publish failed with {code}"),
                    code,
                    kind,
                    recipient_opted_out: opted_out,
                })
            }
        }
    }
}

/// What a failed `Publish` says about the text. A request never sent
/// (built but not dispatched) and throttling are safe to retry; a server
/// error, a timeout or a lost answer may have published it; anything else
/// is a refusal.
fn publish_failure_kind<E, R>(err: &aws_sdk_sns::error::SdkError<E, R>, code: &str) -> FailureKind {
    use aws_sdk_sns::error::SdkError;
    match err {
        SdkError::ConstructionFailure(_) => FailureKind::NotSent,
        SdkError::ServiceError(_) => match code {
            "Throttling" | "ThrottledException" | "KMSThrottlingException" => FailureKind::NotSent,
            "InternalError" | "InternalErrorException" | "ServiceUnavailable" => {
                FailureKind::Unknown
            }
            _ => FailureKind::Refused,
        },
        _ => FailureKind::Unknown,
    }
}

/// The account's SNS opt-out list (`ListPhoneNumbersOptedOut`, paginated).
#[derive(Debug, Clone)]
pub struct SnsOptOutList {
    client: Client,
}

impl SnsOptOutList {
    /// An adapter over the account's list.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl CarrierOptOutList for SnsOptOutList {
    async fn opted_out_numbers(&self) -> Result<Vec<String>, PortError> {
        let mut numbers = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_phone_numbers_opted_out()
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    PortError::Unavailable(format!(
                        "list opted-out numbers: {}",
                        e.code().unwrap_or("error")
                    ))
                })?;
            numbers.extend(out.phone_numbers().iter().cloned());
            match out.next_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_owned()),
                _ => break,
            }
        }
        Ok(numbers)
    }
}
