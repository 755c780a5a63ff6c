//! `optline quiet-hours`: whether the calling windows are open for a
//! recipient at an instant, in every zone they may be in, and when they open.

use chrono::{DateTime, SecondsFormat, Utc};
use chrono_tz::Tz;
use clap::Args as ClapArgs;
use optline_policy::phone::E164;
use optline_policy::quiet_hours::{check, QuietHoursRequest};
use optline_policy::{MessageClass, RuleOutcome, UsState};
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::parse;
use crate::table::{rule_table, yes_no, Fields};

/// Check federal and state quiet hours for a recipient at an instant (now by
/// default), in every candidate time zone, and find the next allowed time.
#[derive(Debug, ClapArgs)]
#[command(
    after_help = "Without --phone, --zone or --state, reads JSON lines from stdin: \
{\"phone\": \"+15125550100\", \"zone\": \"America/Chicago\", \"state\": \"TX\", \
\"class\": \"transactional\", \"at\": \"2026-11-29T16:00:00Z\"} (every field optional); \
--class and --at then give the defaults for lines without them."
)]
pub struct Args {
    /// The recipient's number: its area code gives zones and a state.
    #[arg(long)]
    pub phone: Option<String>,
    /// The recipient's stated IANA time zone, e.g. America/Chicago.
    #[arg(long, value_parser = parse::for_clap(parse::zone))]
    pub zone: Option<Tz>,
    /// The state of the recipient's postal address, e.g. TX.
    #[arg(long, value_parser = parse::for_clap(parse::state))]
    pub state: Option<UsState>,
    /// The message class [default: transactional].
    #[arg(long, value_parser = parse::for_clap(parse::class))]
    pub class: Option<MessageClass>,
    /// The instant to check, RFC 3339 [default: now].
    #[arg(long, value_parser = parse::for_clap(parse::time))]
    pub at: Option<DateTime<Utc>>,
    /// Print the JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
}

impl Args {
    /// Whether the recipient was given as flags (else: JSON lines on stdin).
    pub fn has_recipient(&self) -> bool {
        self.phone.is_some() || self.zone.is_some() || self.state.is_some()
    }
}

/// One stdin line.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    class: Option<String>,
    #[serde(default)]
    at: Option<String>,
}

/// A parsed request.
#[derive(Debug)]
pub struct Request {
    phone: Option<E164>,
    zone: Option<Tz>,
    state: Option<UsState>,
    class: MessageClass,
    at: DateTime<Utc>,
}

/// One candidate zone's local view.
#[derive(Debug, Serialize)]
pub struct Local {
    /// The IANA zone.
    zone: String,
    /// `at` in that zone, RFC 3339 with the zone's offset.
    at: String,
    /// `next_allowed` in that zone, when there is one.
    next_allowed: Option<String>,
}

/// The answer.
#[derive(Debug, Serialize)]
pub struct Output {
    /// The instant checked.
    at: DateTime<Utc>,
    /// The message class checked.
    class: MessageClass,
    /// Every applicable window is open in every candidate zone at `at`.
    allowed_now: bool,
    /// When not allowed: the earliest instant it will be (`null` when no
    /// zone is known or nothing opens within the search horizon).
    next_allowed: Option<DateTime<Utc>>,
    /// The candidate zones.
    zones: Vec<String>,
    /// `at` and `next_allowed` in each candidate zone.
    local: Vec<Local>,
    /// Every rule consulted.
    rules: Vec<RuleOutcome>,
}

/// The request given as flags.
pub fn request_from_args(args: &Args) -> Result<Request, CliError> {
    Ok(Request {
        phone: args.phone.as_deref().map(E164::parse).transpose()?,
        zone: args.zone,
        state: args.state.clone(),
        class: args.class.unwrap_or(MessageClass::Transactional),
        at: args.at.unwrap_or_else(parse::now),
    })
}

/// One JSON line to an answer; `--class` and `--at` fill in what the line
/// leaves out.
pub fn answer_line(line: &str, args: &Args) -> Result<Output, CliError> {
    let input: Input = serde_json::from_str(line)?;
    let request = Request {
        phone: input.phone.as_deref().map(E164::parse).transpose()?,
        zone: input.zone.as_deref().map(parse::zone).transpose()?,
        state: input.state.as_deref().map(parse::state).transpose()?,
        class: match input.class.as_deref() {
            Some(name) => parse::class(name)?,
            None => args.class.unwrap_or(MessageClass::Transactional),
        },
        at: match input.at.as_deref() {
            Some(text) => parse::time(text)?,
            None => args.at.unwrap_or_else(parse::now),
        },
    };
    Ok(answer(&request))
}

/// Checks one request.
pub fn answer(request: &Request) -> Output {
    let result = check(
        &QuietHoursRequest {
            class: request.class,
            stated_zone: request.zone,
            address_state: request.state.as_ref(),
            phone: request.phone.as_ref(),
            prior_express_consent: false,
        },
        request.at,
    );
    let local = result
        .zones
        .iter()
        .map(|zone| Local {
            zone: zone.name().to_owned(),
            at: request
                .at
                .with_timezone(zone)
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
            next_allowed: result.next_allowed.map(|t| {
                t.with_timezone(zone)
                    .to_rfc3339_opts(SecondsFormat::AutoSi, true)
            }),
        })
        .collect();
    Output {
        at: request.at,
        class: request.class,
        allowed_now: result.allowed_now,
        next_allowed: result.next_allowed,
        zones: result.zones.iter().map(|z| z.name().to_owned()).collect(),
        local,
        rules: result.outcomes,
    }
}

/// The human-readable form.
pub fn human(out: &Output) -> String {
    let mut fields = Fields::new();
    fields
        .add("at", rfc3339(out.at))
        .add("class", out.class.as_str())
        .add("allowed now", yes_no(out.allowed_now));
    if !out.allowed_now {
        fields.add(
            "next allowed",
            out.next_allowed.map_or_else(
                || "unknown (no zone known, or nothing opens within the search horizon)".to_owned(),
                rfc3339,
            ),
        );
    }
    if out.zones.is_empty() {
        fields.add("zones", "none known (fail closed)");
    }
    for zone_name in &out.zones {
        let Ok(zone) = zone_name.parse::<Tz>() else {
            continue;
        };
        let mut line = format!("{zone_name}: {}", local_time(out.at, zone));
        if let Some(next) = out.next_allowed {
            line.push_str(&format!(", allowed from {}", local_time(next, zone)));
        }
        fields.add("zone", line);
    }
    format!("{}\n{}", fields.render(), rule_table(&out.rules))
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn local_time(t: DateTime<Utc>, zone: Tz) -> String {
    t.with_timezone(&zone)
        .format("%a %Y-%m-%d %H:%M %Z")
        .to_string()
}
