//! `optline phone`: a number in any common written form, normalized to
//! E.164, or the reason it is not a number that can receive a text.
//!
//! The full E.164 number is printed: it is the operator's own input, shown
//! back on the operator's terminal. Nothing here logs it.

use clap::Args as ClapArgs;
use optline_policy::phone::{area_code_state, area_code_zones, E164};
use optline_policy::PolicyError;
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::table::Fields;

/// Normalize a phone number to E.164 (or say why it is invalid) and list
/// its region, area code, the area code's state and candidate time zones.
#[derive(Debug, ClapArgs)]
#[command(after_help = "Without NUMBER, reads JSON lines from stdin: \
{\"phone\": \"(415) 555-2671\"} or a bare JSON string \"(415) 555-2671\"")]
pub struct Args {
    /// The number, e.g. "(415) 555-2671" or "+44 20 7946 0958". Without it,
    /// read JSON lines from stdin.
    pub number: Option<String>,
    /// Print the JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One stdin line in object form.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    phone: String,
}

/// The answer for a valid number.
#[derive(Debug, Serialize)]
pub struct Valid {
    input: String,
    valid: bool,
    e164: String,
    masked: String,
    region: Option<String>,
    area_code: Option<String>,
    area_code_state: Option<String>,
    zones: Vec<String>,
}

/// The answer for an invalid number.
#[derive(Debug, Serialize)]
pub struct Invalid {
    input: String,
    valid: bool,
    reason: String,
}

/// Either answer; `valid` tells them apart in JSON.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Output {
    /// A number that can be texted.
    Valid(Valid),
    /// Not one, and why.
    Invalid(Invalid),
}

/// Parses one number. An invalid number is an answer, not an error.
pub fn answer(input: &str) -> Output {
    match E164::parse(input) {
        Ok(number) => Output::Valid(Valid {
            input: input.to_owned(),
            valid: true,
            e164: number.as_str().to_owned(),
            masked: number.masked(),
            region: number.region(),
            area_code: number.area_code().map(str::to_owned),
            area_code_state: area_code_state(&number).map(|s| s.code().to_owned()),
            zones: area_code_zones(&number)
                .iter()
                .map(|z| z.name().to_owned())
                .collect(),
        }),
        Err(e) => Output::Invalid(Invalid {
            input: input.to_owned(),
            valid: false,
            reason: match e {
                PolicyError::InvalidPhone(reason) => reason,
                other => other.to_string(),
            },
        }),
    }
}

/// One JSON line (`{"phone": "..."}` or a bare string) to an answer.
pub fn answer_line(line: &str) -> Result<Output, CliError> {
    let value: serde_json::Value = serde_json::from_str(line)?;
    let phone = match value {
        serde_json::Value::String(phone) => phone,
        object @ serde_json::Value::Object(_) => serde_json::from_value::<Input>(object)?.phone,
        _ => {
            return Err(CliError::Shape(
                "a json string or an object with a \"phone\" field",
            ))
        }
    };
    Ok(answer(&phone))
}

/// The human-readable form.
pub fn human(out: &Output) -> String {
    let mut fields = Fields::new();
    match out {
        Output::Valid(v) => {
            let area = match (&v.area_code, &v.area_code_state) {
                (Some(code), Some(state)) => format!("{code} ({state})"),
                (Some(code), None) => code.clone(),
                (None, _) => "- (outside the NANP)".to_owned(),
            };
            let zones = if v.zones.is_empty() {
                "- (unknown: quiet hours fail closed without another zone)".to_owned()
            } else {
                v.zones.join(", ")
            };
            fields
                .add("input", v.input.as_str())
                .add("valid", "yes")
                .add("e164", v.e164.as_str())
                .add("masked", v.masked.as_str())
                .add("region", v.region.as_deref().unwrap_or("-"))
                .add("area code", area)
                .add("time zones", zones);
        }
        Output::Invalid(i) => {
            fields
                .add("input", i.input.as_str())
                .add("valid", "no")
                .add("reason", i.reason.as_str());
        }
    }
    fields.render()
}
