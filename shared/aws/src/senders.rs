//! Chooses the sender of each program from configuration.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use optline_config::{Config, SenderKind};
use optline_ports::{
    CarrierReceipt, FailureKind, OutboundSms, PortError, SendFailure, SentLookup, SmsSender,
};

use crate::{SnsSender, TwilioSender};

/// Routes each text to its program's carrier.
#[derive(Clone)]
pub struct ProgramSenders {
    by_program: BTreeMap<String, Arc<dyn SmsSender>>,
}

impl std::fmt::Debug for ProgramSenders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgramSenders")
            .field("programs", &self.by_program.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl ProgramSenders {
    /// Builds one sender per configured program.
    pub fn from_config(config: &Config, sns: aws_sdk_sns::Client) -> Result<Self, SendFailure> {
        let origination: BTreeMap<String, String> = config
            .programs
            .values()
            .filter_map(|p| p.origination_number.clone().map(|n| (p.id.clone(), n)))
            .collect();
        let sns_sender: Arc<dyn SmsSender> = Arc::new(SnsSender::new(sns, origination));
        let mut by_program = BTreeMap::new();
        for program in config.programs.values() {
            let sender: Arc<dyn SmsSender> = match program.sender {
                SenderKind::Sns => Arc::clone(&sns_sender),
                SenderKind::Twilio => {
                    let twilio = config.twilio.as_ref().ok_or_else(|| SendFailure {
                        code: "Config".to_owned(),
                        reason: "program uses twilio but TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN are not set".to_owned(),
                        kind: FailureKind::Refused,
                        recipient_opted_out: false,
                    })?;
                    Arc::new(TwilioSender::new(
                        twilio.api_base.clone(),
                        twilio.account_sid.clone(),
                        twilio.auth_token.clone(),
                        program.messaging_service_sid.clone(),
                        program.from_number.clone(),
                        twilio.status_callback.clone(),
                    )?)
                }
            };
            by_program.insert(program.id.clone(), sender);
        }
        Ok(Self { by_program })
    }
}

#[async_trait]
impl SmsSender for ProgramSenders {
    async fn lookup(
        &self,
        sms: &OutboundSms,
        since: DateTime<Utc>,
    ) -> Result<SentLookup, PortError> {
        match self.by_program.get(&sms.program) {
            Some(sender) => sender.lookup(sms, since).await,
            None => Ok(SentLookup::Unsupported),
        }
    }

    async fn send(&self, sms: &OutboundSms) -> Result<CarrierReceipt, SendFailure> {
        match self.by_program.get(&sms.program) {
            Some(sender) => sender.send(sms).await,
            None => Err(SendFailure {
                code: "UnknownProgram".to_owned(),
                reason: "no sender configured for the program".to_owned(),
                kind: FailureKind::Refused,
                recipient_opted_out: false,
            }),
        }
    }
}
