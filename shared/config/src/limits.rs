//! The provider's published limits for the numbers a program sends from.
//!
//! AWS End User Messaging SMS publishes, for each origination identity, its
//! `MessagingLimits`: `RateLimits` (message parts a second per capability:
//! `SMS`, `MMS`, `VOICE`, `RCS`) and, for 10DLC numbers, advisory
//! `DailyMessageCaps` per provider (`T-MOBILE`). `DescribePhoneNumbers`
//! returns them with each number's `NumberType`. This module reads that
//! answer (`aws pinpoint-sms-voice-v2 describe-phone-numbers` prints it)
//! and checks a programs document against it:
//!
//! - a number configured to send faster than published is an error (the
//!   carrier would throttle or filter what goes over);
//! - a number whose published type differs from its configured one is an
//!   error (its default rate would be wrong);
//! - a number slower than published, one the provider does not list, and a
//!   published daily cap with no `daily_cap` in the program are advice.
//!
//! [`apply_published`] lowers (never raises past the publication) each
//! number's rate to what is published, so a deployer can store the result.
//! `optline-ops programs limits` runs both.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{NumberType, ProgramConfig};

/// Most numbers read from one answer.
pub const MAX_PUBLISHED_NUMBERS: usize = 10_000;

/// Largest answer read, in bytes.
pub const MAX_PUBLISHED_BYTES: usize = 16 * 1024 * 1024;

/// What the provider publishes for one number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublishedLimits {
    /// The number (E.164, or a short code's digits).
    pub number: String,
    /// The provider's type (`TEN_DLC`, `TOLL_FREE`, `SHORT_CODE`,
    /// `LONG_CODE`, `SIMULATOR`).
    pub number_type: Option<String>,
    /// SMS message parts a second.
    pub sms_parts_per_second: Option<u32>,
    /// Advisory daily caps by provider (`T-MOBILE`).
    pub daily_caps: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    phone_numbers: Vec<PhoneNumberInformation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PhoneNumberInformation {
    phone_number: String,
    #[serde(default)]
    number_type: Option<String>,
    #[serde(default)]
    messaging_limits: Option<MessagingLimits>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MessagingLimits {
    #[serde(default)]
    rate_limits: BTreeMap<String, u64>,
    #[serde(default)]
    daily_message_caps: BTreeMap<String, u64>,
}

/// Reads a `DescribePhoneNumbers` answer (one page, or the pages the CLI
/// joins into one `PhoneNumbers` list). Fields it does not use are
/// ignored: the answer carries many.
pub fn parse_describe_phone_numbers(json: &str) -> Result<Vec<PublishedLimits>, String> {
    if json.len() > MAX_PUBLISHED_BYTES {
        return Err(format!(
            "the answer is over {MAX_PUBLISHED_BYTES} bytes; describe fewer numbers"
        ));
    }
    let answer: Answer = serde_json::from_str(json)
        .map_err(|e| format!("not a DescribePhoneNumbers answer: {e}"))?;
    if answer.phone_numbers.len() > MAX_PUBLISHED_NUMBERS {
        return Err(format!("more than {MAX_PUBLISHED_NUMBERS} numbers"));
    }
    Ok(answer
        .phone_numbers
        .into_iter()
        .map(|n| {
            let limits = n.messaging_limits;
            PublishedLimits {
                number: n.phone_number,
                number_type: n.number_type,
                sms_parts_per_second: limits
                    .as_ref()
                    .and_then(|l| l.rate_limits.get("SMS"))
                    .map(|r| u32::try_from(*r).unwrap_or(u32::MAX)),
                daily_caps: limits.map(|l| l.daily_message_caps).unwrap_or_default(),
            }
        })
        .collect())
}

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The document contradicts the provider: fix it before storing it.
    Error,
    /// Worth a look.
    Advice,
}

/// One finding about one program's number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitFinding {
    /// Program id.
    pub program: String,
    /// The number, masked to its last four digits.
    pub number: String,
    /// How much it matters.
    pub severity: Severity,
    /// What is wrong and what to do.
    pub message: String,
}

/// The provider's type name for a configured type.
fn provider_type(kind: NumberType) -> &'static str {
    match kind {
        NumberType::TenDlc => "TEN_DLC",
        NumberType::TollFree => "TOLL_FREE",
        NumberType::ShortCode => "SHORT_CODE",
    }
}

fn masked(number: &str) -> String {
    let digits: Vec<char> = number.chars().collect();
    let keep = digits.len().saturating_sub(4);
    digits
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if i < keep && c.is_ascii_digit() {
                '•'
            } else {
                *c
            }
        })
        .collect()
}

/// Each program's numbers (its pool, or its one configured number with
/// its `messages_per_second`) against what the provider publishes.
pub fn check_published(
    programs: &[ProgramConfig],
    published: &[PublishedLimits],
) -> Vec<LimitFinding> {
    let by_number: BTreeMap<&str, &PublishedLimits> =
        published.iter().map(|p| (p.number.as_str(), p)).collect();
    let mut findings = Vec::new();
    for program in programs {
        let mut push = |number: &str, severity: Severity, message: String| {
            findings.push(LimitFinding {
                program: program.id.clone(),
                number: masked(number),
                severity,
                message,
            });
        };
        // (number, configured type, rate in effect)
        let mut numbers: Vec<(&str, Option<NumberType>, u32)> = program
            .numbers
            .iter()
            .map(|n| (n.number.as_str(), Some(n.kind), n.rate()))
            .collect();
        if numbers.is_empty() {
            if let Some(single) = program
                .origination_number
                .as_deref()
                .or(program.from_number.as_deref())
            {
                numbers.push((single, None, program.messages_per_second));
            }
        }
        let mut caps: BTreeMap<&str, u64> = BTreeMap::new();
        for (number, kind, rate) in numbers {
            let Some(limits) = by_number.get(number) else {
                push(
                    number,
                    Severity::Advice,
                    "the provider's answer does not list this number: its limits are not checked"
                        .to_owned(),
                );
                continue;
            };
            if let (Some(kind), Some(theirs)) = (kind, limits.number_type.as_deref()) {
                if provider_type(kind) != theirs {
                    push(
                        number,
                        Severity::Error,
                        format!(
                            "configured as {} but the provider has it as {theirs}: its default rate would be wrong",
                            kind.as_str()
                        ),
                    );
                }
            }
            match limits.sms_parts_per_second {
                Some(published) if rate > published => push(
                    number,
                    Severity::Error,
                    format!(
                        "paced at {rate} message parts a second, over the {published} the provider publishes: set parts_per_second to {published}"
                    ),
                ),
                Some(published) if rate < published => push(
                    number,
                    Severity::Advice,
                    format!(
                        "paced at {rate} message parts a second; the provider publishes {published}"
                    ),
                ),
                _ => {}
            }
            for (provider, cap) in &limits.daily_caps {
                let entry = caps.entry(provider.as_str()).or_insert(*cap);
                *entry = (*entry).min(*cap);
            }
        }
        for (provider, cap) in caps {
            let advice = match program.daily_cap {
                None => Some(format!(
                    "{provider} caps this brand at {cap} messages a day; the program has no daily_cap (only texts to {provider}'s subscribers count against it, so {cap} is a safe bound)"
                )),
                Some(ours) if u64::from(ours) > cap => Some(format!(
                    "daily_cap {ours} is above {provider}'s advisory cap of {cap} a day for texts to its subscribers"
                )),
                Some(_) => None,
            };
            if let Some(message) = advice {
                findings.push(LimitFinding {
                    program: program.id.clone(),
                    number: String::new(),
                    severity: Severity::Advice,
                    message,
                });
            }
        }
    }
    findings
}

/// Sets each pool number's rate to the provider's published one, and the
/// single sender's `messages_per_second` likewise; returns how many
/// changed.
pub fn apply_published(programs: &mut [ProgramConfig], published: &[PublishedLimits]) -> usize {
    let by_number: BTreeMap<&str, u32> = published
        .iter()
        .filter_map(|p| p.sms_parts_per_second.map(|r| (p.number.as_str(), r)))
        .collect();
    let mut changed = 0;
    for program in programs.iter_mut() {
        for number in &mut program.numbers {
            if let Some(rate) = by_number.get(number.number.as_str()) {
                if number.rate() != *rate {
                    number.parts_per_second = Some(*rate);
                    changed += 1;
                }
            }
        }
        if program.numbers.is_empty() {
            let single = program
                .origination_number
                .as_deref()
                .or(program.from_number.as_deref());
            if let Some(rate) = single.and_then(|n| by_number.get(n)) {
                if program.messages_per_second != *rate {
                    program.messages_per_second = *rate;
                    changed += 1;
                }
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    /// The shape `DescribePhoneNumbers` answers with (field names from the
    /// API reference; values made up).
    const ANSWER: &str = r#"{
      "PhoneNumbers": [
        {"PhoneNumberArn": "arn:aws:sms-voice:us-east-1:111122223333:phone-number/phone-a",
         "PhoneNumberId": "phone-a", "PhoneNumber": "+18885550100", "Status": "ACTIVE",
         "IsoCountryCode": "US", "MessageType": "TRANSACTIONAL",
         "NumberCapabilities": ["SMS"], "NumberType": "TOLL_FREE",
         "MonthlyLeasingPrice": "2.00", "TwoWayEnabled": true,
         "SelfManagedOptOutsEnabled": false, "OptOutListName": "Default",
         "DeletionProtectionEnabled": false, "CreatedTimestamp": 1764000000,
         "MessagingLimits": {"RateLimits": {"SMS": 3}}},
        {"PhoneNumber": "+12125550102", "NumberType": "TEN_DLC",
         "MessagingLimits": {"RateLimits": {"SMS": 12, "MMS": 12},
                             "DailyMessageCaps": {"T-MOBILE": 10000}}},
        {"PhoneNumber": "+12125550103", "NumberType": "TEN_DLC"}
      ],
      "NextToken": "abc"
    }"#;

    /// One program's pool, read without validation: its third number is
    /// configured with the wrong type on purpose.
    fn programs() -> Vec<ProgramConfig> {
        serde_json::from_str(
            r#"[{"id": "clinic", "name": "Clinic", "support_contact": "555-0100",
              "numbers": [
                {"number": "+18885550100", "type": "toll_free", "parts_per_second": 10},
                {"number": "+12125550102", "type": "ten_dlc"},
                {"number": "+12125550103", "type": "toll_free"},
                {"number": "+12125550104", "type": "ten_dlc"}
              ]}]"#,
        )
        .unwrap()
    }

    #[test]
    fn the_published_answer_is_read_with_rates_and_daily_caps() {
        let published = parse_describe_phone_numbers(ANSWER).unwrap();
        assert_eq!(published.len(), 3);
        assert_eq!(published[0].sms_parts_per_second, Some(3));
        assert_eq!(published[1].daily_caps.get("T-MOBILE"), Some(&10_000));
        assert_eq!(published[2].sms_parts_per_second, None);
        assert!(parse_describe_phone_numbers("[]").is_err());
    }

    #[test]
    fn a_number_faster_than_published_or_of_another_type_is_an_error() {
        let published = parse_describe_phone_numbers(ANSWER).unwrap();
        let findings = check_published(&programs(), &published);
        let summary: Vec<(Severity, &str, &str)> = findings
            .iter()
            .map(|f| {
                (
                    f.severity,
                    f.number.as_str(),
                    f.message.split(':').next().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    Severity::Error,
                    "+•••••••0100",
                    "paced at 10 message parts a second, over the 3 the provider publishes"
                ),
                (
                    Severity::Advice,
                    "+•••••••0102",
                    "paced at 1 message parts a second; the provider publishes 12"
                ),
                (
                    Severity::Error,
                    "+•••••••0103",
                    "configured as toll_free but the provider has it as TEN_DLC"
                ),
                (
                    Severity::Advice,
                    "+•••••••0104",
                    "the provider's answer does not list this number"
                ),
                (
                    Severity::Advice,
                    "",
                    "T-MOBILE caps this brand at 10000 messages a day; the program has no daily_cap (only texts to T-MOBILE's subscribers count against it, so 10000 is a safe bound)"
                ),
            ]
        );
        // No full number in any finding.
        let text = serde_json::to_string(&findings).unwrap();
        assert!(
            !text.contains("5550100") && !text.contains("5550102"),
            "{text}"
        );
    }

    #[test]
    fn applying_the_publication_sets_each_rate_to_the_published_one() {
        let published = parse_describe_phone_numbers(ANSWER).unwrap();
        let mut programs = programs();
        assert_eq!(apply_published(&mut programs, &published), 2);
        let rates: Vec<u32> = programs[0].numbers.iter().map(|n| n.rate()).collect();
        assert_eq!(rates, [3, 12, 3, 1]);
        assert!(check_published(&programs, &published)
            .iter()
            .all(|f| !f.message.starts_with("paced")));
    }
}
