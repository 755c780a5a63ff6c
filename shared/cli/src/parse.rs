//! Parsing of the values operators type as flags or JSON fields, shared by
//! the flag parser (clap) and the JSON-lines readers so both accept the same
//! spellings.

use chrono::{DateTime, SubsecRound, Utc};
use chrono_tz::Tz;
use optline_policy::phone::state_zones;
use optline_policy::{MessageClass, UsState};

use crate::error::CliError;

/// An RFC 3339 instant with any offset, as UTC.
pub fn time(text: &str) -> Result<DateTime<Utc>, CliError> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| CliError::InvalidTime(text.to_owned()))
}

/// The current time to the second: the CLI may read the clock, the policy
/// crate never does.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

/// An IANA zone name such as `America/Chicago`.
pub fn zone(name: &str) -> Result<Tz, CliError> {
    name.trim()
        .parse::<Tz>()
        .map_err(|_| CliError::UnknownZone(name.to_owned()))
}

/// A US state, DC or territory code, case-insensitively. Stricter than
/// [`UsState::parse`], which takes any two letters: a typo such as `TE`
/// would otherwise silently drop the state's rules and zones.
pub fn state(code: &str) -> Result<UsState, CliError> {
    UsState::parse(code)
        .ok()
        .filter(|s| !state_zones(s).is_empty())
        .ok_or_else(|| CliError::UnknownState(code.to_owned()))
}

/// `transactional`, `informational` or `marketing`, case-insensitively.
pub fn class(name: &str) -> Result<MessageClass, CliError> {
    match name.trim().to_ascii_lowercase().as_str() {
        "transactional" => Ok(MessageClass::Transactional),
        "informational" => Ok(MessageClass::Informational),
        "marketing" => Ok(MessageClass::Marketing),
        _ => Err(CliError::UnknownClass(name.to_owned())),
    }
}

/// Adapts a parser to clap's `value_parser`.
pub fn for_clap<T>(
    parse: fn(&str) -> Result<T, CliError>,
) -> impl Fn(&str) -> Result<T, String> + Clone {
    move |text| parse(text).map_err(|e| e.to_string())
}
