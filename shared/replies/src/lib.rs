//! # optline-replies
//!
//! What an inbound text means and everything it does, for every carrier's
//! inbound path (Twilio's webhook, AWS End User Messaging two-way SMS).
//!
//! One shape: [`handle_reply`] reads the facts (the contacts sharing the
//! number, their decision facts, the number's ledger, the text last sent and
//! its reply grammar), classifies the reply with the policy crate, and
//! commits everything the reply means in one transaction with the message's
//! dedupe marker: the consent event, every contact's audit records, the
//! review or callback item, the episode outcome and its outbox event, the
//! follow-up's cancellation, and the text owed through the compliance lane.
//! A retried message finds its marker and changes nothing; a message whose
//! commit failed is retried whole.
//!
//! The one opt-out confirmation goes back as Twilio's TwiML answer, or
//! through the compliance lane ([`lane`]) for AWS two-way SMS: claimed once,
//! sent once, and only within five minutes of the opt-out.

pub mod lane;
mod plan;
mod read;
mod texts;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use optline_config::{Config, ProgramConfig};
use optline_policy::phone::E164;
use optline_policy::template::lint::LintConfig;
use optline_ports::{Committed, PortError, Store, COMMIT_ATTEMPTS};
use tracing::info;

pub use lane::{send_owed, LaneOutcome};

/// How long after an opt-out its one confirmation may still go out: 47 CFR
/// 64.1200(a)(12) presumes a confirmation sent within five minutes complies;
/// the lane stops at four, leaving the carrier a minute to deliver it.
pub const CONFIRMATION_WINDOW: chrono::Duration = chrono::Duration::minutes(4);

/// What the replies context needs.
#[derive(Clone, Copy)]
pub struct Replies<'a> {
    /// The table.
    pub store: &'a dyn Store,
    /// Programs and their texts.
    pub config: &'a Config,
    /// Lint lists for the texts rendered from the library.
    pub lint: &'a LintConfig,
}

impl std::fmt::Debug for Replies<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replies").finish_non_exhaustive()
    }
}

/// How the answer to a reply reaches the person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerPath {
    /// In the webhook's own answer (Twilio TwiML).
    Webhook,
    /// Through the compliance lane after the commit (AWS two-way SMS).
    Lane,
}

/// An inbound SMS from any carrier, reduced to what the reply logic needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundSms {
    /// The carrier's message id (Twilio `MessageSid`, AWS `inboundMessageId`).
    pub message_sid: String,
    /// `twilio` or `aws`.
    pub carrier: &'static str,
    /// Sender.
    pub from: E164,
    /// Our number.
    pub to: String,
    /// The text.
    pub body: String,
}

impl InboundSms {
    /// The dedupe marker of this message.
    pub fn marker_key(&self) -> String {
        format!("sms:{}:{}", self.carrier, self.message_sid)
    }

    /// The key of the text owed for it through the compliance lane.
    pub fn lane_key(&self) -> String {
        format!("{}:{}", self.carrier, self.message_sid)
    }
}

/// What handling a reply came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyOutcome {
    /// The first delivery of the message: what it was and what to answer.
    Handled {
        /// The intent, as the classifier read it (`opt_out`, `help`, ...).
        intent: String,
        /// The text to answer with in the webhook's answer, if any.
        answer: Option<String>,
        /// The key of the text owed through the compliance lane, if any.
        lane: Option<String>,
    },
    /// The message was handled before: nothing more is written, and no
    /// second answer is given in the webhook.
    Duplicate {
        /// The key of a text owed through the compliance lane for it, which
        /// may still be owed if the first delivery died before sending it.
        lane: Option<String>,
    },
}

/// Why a reply could not be handled. The carrier retries; nothing was
/// written.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    /// The message names no configured program.
    #[error("no program is configured for the number the reply was sent to")]
    NoProgram,
    /// The facts kept moving under the decision.
    #[error("the number's records kept changing; retry")]
    Busy,
    /// Storage failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// The program a reply was sent to: the one whose number it is, else the
/// default program.
pub fn program_for<'c>(config: &'c Config, to: &str) -> Option<&'c ProgramConfig> {
    config
        .programs
        .values()
        .find(|p| p.sends_from(to))
        .or_else(|| config.program(None))
}

/// Classifies a reply, commits everything it means once, and says what to
/// answer (see the crate docs).
pub async fn handle_reply(
    replies: Replies<'_>,
    sms: &InboundSms,
    path: AnswerPath,
    now: DateTime<Utc>,
) -> Result<ReplyOutcome, ReplyError> {
    let program = program_for(replies.config, &sms.to).ok_or(ReplyError::NoProgram)?;
    for _ in 0..COMMIT_ATTEMPTS {
        let facts = read::ReplyFacts::read(replies, sms, program, now).await?;
        let plan = plan::plan(replies, sms, program, &facts, path, now).await?;
        info!(
            from = %sms.from.masked(),
            intent = %plan.intent,
            rule = %facts.classification.rule,
            "reply classified"
        );
        match replies.store.commit(plan.commit).await? {
            Committed::Done(_) => {
                let mut done = true;
                for follow_up in plan.follow_ups {
                    // Chains past one transaction's size: each part is keyed
                    // by the message, so a retry completes what is missing.
                    if let Committed::Conflict(_) = replies.store.commit(follow_up).await? {
                        done = false;
                        break;
                    }
                }
                if !done {
                    continue;
                }
                return Ok(ReplyOutcome::Handled {
                    intent: plan.intent,
                    answer: plan.answer,
                    lane: plan.lane,
                });
            }
            Committed::Duplicate(_) => {
                for follow_up in plan.follow_ups {
                    if let Committed::Conflict(reason) = replies.store.commit(follow_up).await? {
                        tracing::warn!(%reason, "a part of a handled reply moved; retrying");
                        return Err(ReplyError::Busy);
                    }
                }
                return Ok(ReplyOutcome::Duplicate {
                    lane: (path == AnswerPath::Lane).then(|| sms.lane_key()),
                });
            }
            Committed::Conflict(reason) => {
                info!(%reason, "the facts moved under the reply; reading them again");
            }
        }
    }
    Err(ReplyError::Busy)
}

/// The values every program text may use.
pub(crate) fn program_values(program: &ProgramConfig) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("program".to_owned(), program.name.clone()),
        ("help_contact".to_owned(), program.support_contact.clone()),
        ("frequency".to_owned(), program.frequency.clone()),
    ])
}
