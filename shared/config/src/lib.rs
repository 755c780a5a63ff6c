//! # optline-config
//!
//! Reads the functions' configuration from the environment (the SAM template
//! sets the same variables in the cloud as the local stack does on a laptop)
//! and builds the AWS clients in one place. Production code never asks
//! whether it is local: the SDK honours `AWS_ENDPOINT_URL` on its own.

use std::collections::BTreeMap;
use std::env;

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
use optline_policy::audience::AudienceRules;
use serde::{Deserialize, Serialize};
use thiserror::Error;

mod due_shards;
pub mod limits;
mod programs;
pub use due_shards::{
    due_shards_from, due_shards_from_env, DueShards, DEFAULT_DUE_SHARDS, MAX_DUE_SHARDS,
};
pub use programs::{
    parse_programs, validate_programs, ProgramsError, MAX_PROGRAMS, MAX_PROGRAMS_DOCUMENT,
};

/// Configuration errors. Messages name the variable, never its value.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A required variable is not set.
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    /// The programs (from `PROGRAMS_JSON`, the single-program variables or
    /// the table's programs document) do not pass [`validate_programs`].
    #[error(transparent)]
    Programs(#[from] ProgramsError),
    /// A variable is set to something unusable.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why.
        reason: String,
    },
}

/// Which carrier sends a program's texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SenderKind {
    /// Amazon SNS `Publish` to a phone number.
    #[default]
    Sns,
    /// Twilio's Messages API.
    Twilio,
}

/// A program (brand): what the texts say about who sends them, how fast
/// and when. Deployers write these as JSON (`docs/programs.md`); unknown
/// fields are refused and [`validate_programs`] checks the values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProgramConfig {
    /// Program id used in consent and templates.
    pub id: String,
    /// Brand name shown in every text.
    pub name: String,
    /// Support contact (phone or URL) for HELP and exempt texts.
    pub support_contact: String,
    /// Message frequency statement for HELP (CTIA).
    #[serde(default = "default_frequency")]
    pub frequency: String,
    /// Carrier.
    #[serde(default)]
    pub sender: SenderKind,
    /// SNS origination number (E.164) or sender id, when set.
    #[serde(default)]
    pub origination_number: Option<String>,
    /// Twilio Messaging Service SID.
    #[serde(default)]
    pub messaging_service_sid: Option<String>,
    /// Twilio `From` number when no Messaging Service is used.
    #[serde(default)]
    pub from_number: Option<String>,
    /// Most message parts (segments) per second from this program's sender,
    /// across every concurrent dispatch invocation; a tenth is held for the
    /// compliance lane ([`ProgramConfig::lane_reserve`]). Use the number's
    /// carrier throughput:
    /// a 10DLC campaign's tier (often 1 to 75), a toll-free number's 3, a
    /// short code's 100, or the account's SNS SMS rate.
    #[serde(default = "default_messages_per_second")]
    pub messages_per_second: u32,
    /// Appointment cadence: the reminder (with the confirm / reschedule
    /// prompt) this many hours before the start.
    #[serde(default = "default_reminder_lead_hours")]
    pub reminder_lead_hours: u32,
    /// The follow-up for people who have not answered, this many hours
    /// before the start; 0 plans none.
    #[serde(default = "default_follow_up_lead_hours")]
    pub follow_up_lead_hours: u32,
    /// Who the program texts: purposes, regions, minors and the urgency
    /// band's grace, applied by the sweep before a step is queued.
    #[serde(default)]
    pub audience: AudienceRules,
    /// The facility's IANA time zone (`America/Chicago`): HL7 times without
    /// an offset are the sending facility's local times and are read in it,
    /// and appointment times are shown in it when the contact has no zone
    /// of their own. Quiet hours never use it: they follow the recipient.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Most message parts a day from this program's sender: the carrier's
    /// daily cap where one applies (T-Mobile caps each 10DLC brand's daily
    /// messages by its trust score, from 2,000 up). Counted per carrier day
    /// (midnight to midnight Pacific); a scheduled text over it waits for
    /// the next day. None: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_cap: Option<u32>,
    /// The program's no-show rate before it texted, in whole percent: the
    /// baseline the report compares the no-show rate with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_show_baseline_percent: Option<u8>,
    /// A pool of sending numbers, each with its type and rate. A contact
    /// always hears from the same number of the pool (its replies thread,
    /// and it answers STOP to the number that texted it); each number is
    /// paced at its own rate, and `daily_cap` counts across the pool.
    /// Empty: the program sends from its one sender at
    /// `messages_per_second`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub numbers: Vec<PoolNumber>,
}

/// What kind of number sends: it sets the number's default throughput.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberType {
    /// A registered 10DLC long code. Its throughput is its campaign's,
    /// set by The Campaign Registry's vetting (AT&T's tiers run from 75 to
    /// 4,500 message parts a minute); the default is 1 a second, under the
    /// lowest standard tier, until the deployer states the campaign's.
    TenDlc,
    /// A verified toll-free number: 3 message parts a second by default.
    TollFree,
    /// A short code: 100 message parts a second.
    ShortCode,
}

impl NumberType {
    /// Message parts a second a number of this type sends when its own rate
    /// is not stated (the carriers' and AWS End User Messaging's defaults
    /// for US numbers).
    pub fn default_parts_per_second(self) -> u32 {
        match self {
            Self::TenDlc => 1,
            Self::TollFree => 3,
            Self::ShortCode => 100,
        }
    }

    /// The type as the programs document writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TenDlc => "ten_dlc",
            Self::TollFree => "toll_free",
            Self::ShortCode => "short_code",
        }
    }
}

/// One number of a program's sending pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolNumber {
    /// E.164 for 10DLC and toll-free numbers; 5 or 6 digits for a short code.
    pub number: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: NumberType,
    /// Its throughput in message parts a second, when it differs from its
    /// type's default (a 10DLC campaign's tier, a raised toll-free limit,
    /// or what the provider publishes for it: `optline-ops limits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts_per_second: Option<u32>,
}

impl PoolNumber {
    /// The number's rate: its own, else its type's default.
    pub fn rate(&self) -> u32 {
        self.parts_per_second
            .unwrap_or_else(|| self.kind.default_parts_per_second())
    }
}

/// Where one text goes out from and how fast that sender may send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendingIdentity<'a> {
    /// What its rate is counted under: the number, Messaging Service or
    /// program.
    pub key: &'a str,
    /// The number it is sent from, when a pool chose one (else the
    /// carrier's configured sender).
    pub from: Option<&'a str>,
    /// Message parts a second.
    pub rate: u32,
}

impl SendingIdentity<'_> {
    /// Parts a second held back from scheduled texts for the compliance
    /// lane: a tenth of the rate, at least one when the rate is 2 or more.
    pub fn lane_reserve(&self) -> u32 {
        lane_reserve_of(self.rate)
    }

    /// The rate scheduled texts pace at: the rate less the lane's reserve.
    pub fn scheduled_rate(&self) -> u32 {
        self.rate.saturating_sub(self.lane_reserve()).max(1)
    }
}

fn lane_reserve_of(rate: u32) -> u32 {
    if rate >= 2 {
        (rate / 10).max(1)
    } else {
        0
    }
}

/// A stable 64-bit hash (FNV-1a, then mixed) for choosing a contact's pool number:
/// the same in every process and release.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    // SplitMix64's finalizer: FNV alone spreads near-identical numbers
    // unevenly over the pool.
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

fn default_reminder_lead_hours() -> u32 {
    72
}

fn default_follow_up_lead_hours() -> u32 {
    24
}

fn default_messages_per_second() -> u32 {
    3
}

fn default_frequency() -> String {
    "Msg frequency varies".to_owned()
}

impl ProgramConfig {
    /// What the program's send rate belongs to: the Messaging Service or
    /// number it sends from (programs may share one), else the program.
    pub fn sender_key(&self) -> &str {
        self.messaging_service_sid
            .as_deref()
            .or(self.from_number.as_deref())
            .or(self.origination_number.as_deref())
            .unwrap_or(&self.id)
    }

    /// Message parts per second held back from scheduled texts for the
    /// compliance lane (opt-out confirmations, HELP answers) on the
    /// program's one sender: a tenth of the rate, at least one when the
    /// rate is 2 or more. Scheduled texts pace at the rest; the lane may
    /// use the whole rate, so a busy number always has room for a
    /// confirmation. A pool holds the reserve on each number
    /// ([`SendingIdentity::lane_reserve`]).
    pub fn lane_reserve(&self) -> u32 {
        lane_reserve_of(self.messages_per_second)
    }

    /// The rate scheduled texts pace at: the rate less the lane's reserve;
    /// for a pool, the sum over its numbers.
    pub fn scheduled_rate(&self) -> u32 {
        if self.numbers.is_empty() {
            self.messages_per_second
                .saturating_sub(self.lane_reserve())
                .max(1)
        } else {
            self.numbers
                .iter()
                .map(|n| {
                    SendingIdentity {
                        key: &n.number,
                        from: Some(&n.number),
                        rate: n.rate(),
                    }
                    .scheduled_rate()
                })
                .fold(0u32, u32::saturating_add)
        }
    }

    /// The sender of a text to `recipient`: with a pool, the contact's own
    /// number of it (rendezvous hashing, so adding or removing a number
    /// moves only the contacts of that number), paced at that number's
    /// rate; without one, the program's sender.
    pub fn sender_for(&self, recipient: &str) -> SendingIdentity<'_> {
        let chosen = self
            .numbers
            .iter()
            .max_by_key(|n| fnv1a(&[recipient.as_bytes(), n.number.as_bytes()]));
        match chosen {
            Some(number) => SendingIdentity {
                key: &number.number,
                from: Some(&number.number),
                rate: number.rate(),
            },
            None => SendingIdentity {
                key: self.sender_key(),
                from: None,
                rate: self.messages_per_second,
            },
        }
    }

    /// Whether `number` is one this program sends from (a reply to it is a
    /// reply to this program).
    pub fn sends_from(&self, number: &str) -> bool {
        self.from_number.as_deref() == Some(number)
            || self.origination_number.as_deref() == Some(number)
            || self.numbers.iter().any(|n| n.number == number)
    }

    /// The CTIA HELP reply: brand, support contact, frequency, rates, STOP.
    pub fn help_text(&self) -> String {
        format!(
            "{}: Help at {}. {}. Msg & data rates may apply. Reply STOP to opt out.",
            self.name, self.support_contact, self.frequency
        )
    }

    /// The one opt-out confirmation (47 CFR 64.1200(a)(12)): no marketing.
    pub fn stop_confirmation_text(&self) -> String {
        format!(
            "{}: You are unsubscribed and will receive no further messages. Reply START to resubscribe.",
            self.name
        )
    }

    /// The one confirmation after a doubtful revocation: it confirms the
    /// opt-out and asks about its scope (47 CFR 64.1200(a)(12) allows the
    /// one text to clarify scope), no marketing.
    pub fn scope_confirmation_text(&self) -> String {
        format!(
            "{}: You are unsubscribed from all our texts. If you only meant to cancel or change an appointment, reply START and call {}.",
            self.name, self.support_contact
        )
    }

    /// The re-opt-in confirmation.
    pub fn opt_in_confirmation_text(&self) -> String {
        format!(
            "{}: You are resubscribed to messages. {}. Msg & data rates may apply. Reply HELP for help, STOP to opt out.",
            self.name, self.frequency
        )
    }
}

/// Twilio credentials and endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioConfig {
    /// Account SID (`AC…`).
    pub account_sid: String,
    /// Auth token: signs webhooks and authenticates API calls.
    pub auth_token: String,
    /// API base URL (`https://api.twilio.com`; a local stand-in in tests).
    pub api_base: String,
    /// Status callback URL passed with each message.
    pub status_callback: Option<String>,
    /// Webhooks SharedKey secrets by key id: a webhook whose
    /// `X-Twilio-Webhooks-Signature-Settings` names a key is checked with
    /// its secret (HMAC-SHA256 or HMAC-SHA1, as the header says).
    pub webhook_keys: BTreeMap<String, String>,
}

/// Everything the functions read from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// DynamoDB table.
    pub table_name: String,
    /// Dispatch queue URL.
    pub queue_url: Option<String>,
    /// Programs by id.
    pub programs: BTreeMap<String, ProgramConfig>,
    /// The program used when a request names none.
    pub default_program: String,
    /// Twilio, when configured.
    pub twilio: Option<TwilioConfig>,
    /// Public base URL of the HTTP API (for Twilio signatures), e.g.
    /// `https://abc.execute-api.us-east-1.amazonaws.com`.
    pub public_base_url: Option<String>,
    /// Days a template approval counts (`APPROVAL_VALID_DAYS`, default 365).
    pub approval_valid_days: u32,
    /// JSON replacing the embedded template lint lists (`TEMPLATE_LINT_CONFIG`).
    pub template_lint: Option<String>,
    /// Days ended steps and send records are kept (`RETENTION_DAYS`; unset
    /// keeps them; at least six years when set).
    pub retention_days: Option<u32>,
}

pub(crate) fn var(name: &'static str) -> Option<String> {
    env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn hours(name: &'static str, default: u32) -> Result<u32, ConfigError> {
    match var(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
            name,
            reason: "a whole number of hours".to_owned(),
        }),
    }
}

/// The default program's audience: `PROGRAM_PURPOSES` and
/// `PROGRAM_REGIONS` (comma-separated; empty means any),
/// `PROGRAM_TEXTS_MINORS` (`true`|`false`, default true) and
/// `TIME_SENSITIVE_GRACE_MINUTES` (default 120).
fn audience_from_env() -> Result<AudienceRules, ConfigError> {
    let list = |name: &'static str| -> Vec<String> {
        var(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    };
    let defaults = AudienceRules::default();
    Ok(AudienceRules {
        purposes: list("PROGRAM_PURPOSES"),
        regions: list("PROGRAM_REGIONS"),
        minors: match var("PROGRAM_TEXTS_MINORS").as_deref() {
            None => defaults.minors,
            Some("true") => true,
            Some("false") => false,
            Some(_) => {
                return Err(ConfigError::Invalid {
                    name: "PROGRAM_TEXTS_MINORS",
                    reason: "true or false".to_owned(),
                })
            }
        },
        time_sensitive_grace_minutes: match var("TIME_SENSITIVE_GRACE_MINUTES") {
            None => defaults.time_sensitive_grace_minutes,
            Some(v) => v.parse().map_err(|_| ConfigError::Invalid {
                name: "TIME_SENSITIVE_GRACE_MINUTES",
                reason: "a whole number of minutes".to_owned(),
            })?,
        },
    })
}

fn required(name: &'static str) -> Result<String, ConfigError> {
    var(name).ok_or(ConfigError::Missing(name))
}

impl Config {
    /// Reads the configuration from the environment.
    ///
    /// - `TABLE_NAME` (required), `QUEUE_URL`
    /// - `PROGRAMS_JSON`: a JSON array of [`ProgramConfig`] (local runs; a
    ///   deployment keeps its programs in the table, read by
    ///   `optline_aws::with_stored_programs`); without it, one
    ///   program from `PROGRAM_ID`, `PROGRAM_NAME`, `PROGRAM_SUPPORT`, `PROGRAM_TIME_ZONE`,
    ///   `SENDER` (`sns`|`twilio`), `SENDER_MESSAGES_PER_SECOND`, `REMINDER_LEAD_HOURS`,
    ///   `FOLLOW_UP_LEAD_HOURS`, `SNS_ORIGINATION_NUMBER`,
    ///   `TWILIO_MESSAGING_SERVICE_SID`, `TWILIO_FROM`, and its audience from
    ///   `PROGRAM_PURPOSES`, `PROGRAM_REGIONS`, `PROGRAM_TEXTS_MINORS`,
    ///   `TIME_SENSITIVE_GRACE_MINUTES`
    /// - `TWILIO_ACCOUNT_SID`, `TWILIO_API_BASE`, `TWILIO_STATUS_CALLBACK`;
    ///   the auth token and webhook keys come from the secret
    ///   `TWILIO_SECRET_ARN` names (`optline_aws::with_twilio_secret`), and
    ///   only outside a deployment from `TWILIO_AUTH_TOKEN`
    /// - `PUBLIC_BASE_URL` (EHR sources: `EHR_SOURCES`, read by ehr-events;
    ///   people: `USER_POOL_ID`, `USER_POOL_CLIENT_ID`, read by `optline_identity`)
    /// - `APPROVAL_VALID_DAYS`, `TEMPLATE_LINT_CONFIG`, `RETENTION_DAYS`
    /// - `DUE_SHARDS`, `DUE_SHARDS_PREVIOUS` ([`due_shards_from_env`])
    pub fn from_env() -> Result<Self, ConfigError> {
        // Checked here so a function with a bad count fails at start, with
        // the reason; the store reads the counts itself.
        due_shards_from_env()?;
        let programs: Vec<ProgramConfig> = match var("PROGRAMS_JSON") {
            Some(json) => parse_programs(&json)?,
            None => {
                let sender = match var("SENDER").as_deref() {
                    None | Some("sns") => SenderKind::Sns,
                    Some("twilio") => SenderKind::Twilio,
                    Some(_) => {
                        return Err(ConfigError::Invalid {
                            name: "SENDER",
                            reason: "expected sns or twilio".to_owned(),
                        })
                    }
                };
                vec![ProgramConfig {
                    id: var("PROGRAM_ID").unwrap_or_else(|| "clinic".to_owned()),
                    name: var("PROGRAM_NAME").unwrap_or_else(|| "Riverside Clinic".to_owned()),
                    support_contact: var("PROGRAM_SUPPORT")
                        .unwrap_or_else(|| "555-0100".to_owned()),
                    frequency: var("PROGRAM_FREQUENCY").unwrap_or_else(default_frequency),
                    sender,
                    origination_number: var("SNS_ORIGINATION_NUMBER"),
                    messaging_service_sid: var("TWILIO_MESSAGING_SERVICE_SID"),
                    from_number: var("TWILIO_FROM"),
                    audience: audience_from_env()?,
                    time_zone: var("PROGRAM_TIME_ZONE"),
                    no_show_baseline_percent: None,
                    daily_cap: None,
                    numbers: Vec::new(),
                    reminder_lead_hours: hours(
                        "REMINDER_LEAD_HOURS",
                        default_reminder_lead_hours(),
                    )?,
                    follow_up_lead_hours: hours(
                        "FOLLOW_UP_LEAD_HOURS",
                        default_follow_up_lead_hours(),
                    )?,
                    messages_per_second: match var("SENDER_MESSAGES_PER_SECOND") {
                        None => default_messages_per_second(),
                        Some(n) => {
                            n.parse()
                                .ok()
                                .filter(|n| *n > 0)
                                .ok_or(ConfigError::Invalid {
                                    name: "SENDER_MESSAGES_PER_SECOND",
                                    reason: "a whole number above 0".to_owned(),
                                })?
                        }
                    },
                }]
            }
        };
        validate_programs(&programs)?;
        let default_program =
            programs
                .first()
                .map(|p| p.id.clone())
                .ok_or(ConfigError::Invalid {
                    name: "PROGRAMS_JSON",
                    reason: "no program configured".to_owned(),
                })?;
        let twilio = match (var("TWILIO_ACCOUNT_SID"), var("TWILIO_AUTH_TOKEN")) {
            (Some(account_sid), Some(auth_token)) => Some(TwilioConfig {
                account_sid,
                auth_token,
                api_base: var("TWILIO_API_BASE")
                    .unwrap_or_else(|| "https://api.twilio.com".to_owned()),
                status_callback: var("TWILIO_STATUS_CALLBACK"),
                webhook_keys: BTreeMap::new(),
            }),
            _ => None,
        };
        Ok(Self {
            table_name: required("TABLE_NAME")?,
            queue_url: var("QUEUE_URL"),
            programs: programs.into_iter().map(|p| (p.id.clone(), p)).collect(),
            default_program,
            twilio,
            public_base_url: var("PUBLIC_BASE_URL"),
            approval_valid_days: match var("APPROVAL_VALID_DAYS") {
                None => 365,
                Some(days) => days.parse().map_err(|_| ConfigError::Invalid {
                    name: "APPROVAL_VALID_DAYS",
                    reason: "not a whole number of days".to_owned(),
                })?,
            },
            template_lint: var("TEMPLATE_LINT_CONFIG"),
            retention_days: match var("RETENTION_DAYS") {
                None => None,
                Some(days) => Some(days.parse().map_err(|_| ConfigError::Invalid {
                    name: "RETENTION_DAYS",
                    reason: "not a whole number of days".to_owned(),
                })?),
            },
        })
    }

    /// The same configuration running `programs` (already validated, e.g.
    /// by [`parse_programs`]) instead; the first is the default.
    ///
    /// # Errors
    ///
    /// When `programs` do not pass [`validate_programs`].
    pub fn with_programs(mut self, programs: Vec<ProgramConfig>) -> Result<Self, ConfigError> {
        validate_programs(&programs)?;
        if let Some(first) = programs.first() {
            self.default_program = first.id.clone();
        }
        self.programs = programs.into_iter().map(|p| (p.id.clone(), p)).collect();
        Ok(self)
    }

    /// A program by id, or the default program.
    pub fn program(&self, id: Option<&str>) -> Option<&ProgramConfig> {
        self.programs.get(id.unwrap_or(&self.default_program))
    }
}

/// Loads the shared AWS configuration: region and credentials from the usual
/// chain, `AWS_ENDPOINT_URL` when set, and an HTTPS client on rustls + ring.
pub async fn aws_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .timeout_config(call_timeouts())
        .load()
        .await
}

/// The timeouts of every AWS call: a call that hangs must fail well inside
/// the functions' 30-second limit, so the handler can hand the message back
/// to SQS itself.
fn call_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(std::time::Duration::from_secs(3))
        .operation_attempt_timeout(std::time::Duration::from_secs(5))
        .operation_timeout(std::time::Duration::from_secs(12))
        .build()
}

/// The SDK configuration inside a function, built from what Lambda sets and
/// nothing else: the region from `AWS_REGION`, credentials from the
/// execution role's `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
/// `AWS_SESSION_TOKEN`, `AWS_ENDPOINT_URL` when set (the local emulator).
/// No profile files, instance metadata, SSO or STS chain is read or linked,
/// which keeps the bootstrap small and its start fast
/// (`docs/benchmarks.md`). Command-line tools use [`aws_sdk_config`].
pub fn lambda_sdk_config() -> aws_config::SdkConfig {
    let region = var("AWS_REGION")
        .or_else(|| var("AWS_DEFAULT_REGION"))
        .map(aws_config::Region::new);
    let mut builder = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(region)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            ),
        )
        .identity_cache(aws_config::identity::IdentityCache::lazy().build())
        .http_client(http_client())
        .sleep_impl(aws_smithy_async::rt::sleep::TokioSleep::new())
        .time_source(aws_smithy_async::time::SystemTimeSource::new())
        .retry_config(aws_config::retry::RetryConfig::standard())
        .timeout_config(call_timeouts());
    if let Some(url) = var("AWS_ENDPOINT_URL") {
        builder = builder.endpoint_url(url);
    }
    builder.build()
}

/// The SDK's HTTP client: hyper on rustls with the ring provider (no aws-lc
/// C build, no legacy TLS stack).
pub fn http_client() -> aws_sdk_dynamodb::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// The AWS clients the functions use, each built on first use from one
/// shared configuration: a function links only the SDKs it calls (each
/// client's endpoint rules and interceptors add to the bootstrap's size and
/// start time; `docs/benchmarks.md`).
#[derive(Debug, Clone)]
pub struct AwsClients {
    shared: aws_config::SdkConfig,
    dynamodb: std::sync::OnceLock<aws_sdk_dynamodb::Client>,
    sqs: std::sync::OnceLock<aws_sdk_sqs::Client>,
    sns: std::sync::OnceLock<aws_sdk_sns::Client>,
    events: std::sync::OnceLock<aws_sdk_eventbridge::Client>,
    kms: std::sync::OnceLock<aws_sdk_kms::Client>,
    s3: std::sync::OnceLock<aws_sdk_s3::Client>,
    secrets: std::sync::OnceLock<aws_sdk_secretsmanager::Client>,
}

impl AwsClients {
    /// The clients of a function: [`lambda_sdk_config`].
    pub async fn load() -> Self {
        Self::on(lambda_sdk_config())
    }

    /// The clients of a command-line tool: the SDK's default chains
    /// ([`aws_sdk_config`]: profiles, SSO, instance roles).
    pub async fn load_default_chain() -> Self {
        Self::on(aws_sdk_config().await)
    }

    /// Clients on a given SDK configuration.
    pub fn on(shared: aws_config::SdkConfig) -> Self {
        Self {
            shared,
            dynamodb: std::sync::OnceLock::new(),
            sqs: std::sync::OnceLock::new(),
            sns: std::sync::OnceLock::new(),
            events: std::sync::OnceLock::new(),
            kms: std::sync::OnceLock::new(),
            s3: std::sync::OnceLock::new(),
            secrets: std::sync::OnceLock::new(),
        }
    }

    /// The shared SDK configuration.
    pub fn shared(&self) -> &aws_config::SdkConfig {
        &self.shared
    }

    /// DynamoDB.
    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        self.dynamodb
            .get_or_init(|| aws_sdk_dynamodb::Client::new(&self.shared))
    }

    /// SQS.
    pub fn sqs(&self) -> &aws_sdk_sqs::Client {
        self.sqs
            .get_or_init(|| aws_sdk_sqs::Client::new(&self.shared))
    }

    /// SNS.
    pub fn sns(&self) -> &aws_sdk_sns::Client {
        self.sns
            .get_or_init(|| aws_sdk_sns::Client::new(&self.shared))
    }

    /// EventBridge.
    pub fn events(&self) -> &aws_sdk_eventbridge::Client {
        self.events
            .get_or_init(|| aws_sdk_eventbridge::Client::new(&self.shared))
    }

    /// KMS (the audit signing key).
    pub fn kms(&self) -> &aws_sdk_kms::Client {
        self.kms
            .get_or_init(|| aws_sdk_kms::Client::new(&self.shared))
    }

    /// S3 (the anchors), path-style: it works with every S3 endpoint, the
    /// local emulator's included.
    pub fn s3(&self) -> &aws_sdk_s3::Client {
        self.s3.get_or_init(|| {
            aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&self.shared)
                    .force_path_style(true)
                    .build(),
            )
        })
    }

    /// Secrets Manager (the audit key, the Twilio and EHR secrets).
    pub fn secrets(&self) -> &aws_sdk_secretsmanager::Client {
        self.secrets
            .get_or_init(|| aws_sdk_secretsmanager::Client::new(&self.shared))
    }
}

/// Log targets capped at `info` whatever `RUST_LOG` says: at `debug` and
/// `trace` the AWS SDK, the HTTP stack and the Lambda runtime print request
/// and response bodies (phone numbers, message texts, names). Matched as
/// prefixes of the event's target.
pub const CAPPED_LOG_TARGETS: &[&str] = &[
    "aws_",
    "hyper",
    "h2",
    "http",
    "rustls",
    "tower",
    "reqwest",
    "lambda_runtime",
    "lambda_http",
];

/// JSON logs for CloudWatch: level from `RUST_LOG` (default `info`), no
/// ANSI colours, no time (Lambda adds it), target kept; the targets of
/// [`CAPPED_LOG_TARGETS`] never below `info`.
pub fn init_logging() {
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    // Ignore the error: a second call (tests) keeps the first subscriber.
    let _ = init_logging_with(&directives, std::io::stdout);
}

/// [`init_logging`] with explicit `RUST_LOG`-style directives and a writer
/// (a test captures the logs of a whole scenario at `trace`).
///
/// # Errors
///
/// When a global subscriber is already set.
pub fn init_logging_with<W>(directives: &str, writer: W) -> Result<(), String>
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let env = tracing_subscriber::EnvFilter::try_new(directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let cap = Targets::new()
        .with_default(LevelFilter::TRACE)
        .with_targets(
            CAPPED_LOG_TARGETS
                .iter()
                .map(|target| (*target, LevelFilter::INFO)),
        );
    let layer = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .without_time()
        .with_ansi(false)
        .with_writer(writer)
        .with_filter(env.and(cap));
    tracing_subscriber::registry()
        .with(layer)
        .try_init()
        .map_err(|e| e.to_string())
}
