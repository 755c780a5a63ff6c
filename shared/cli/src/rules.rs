//! `optline rules`: which rules apply to a number (or a state) and a message
//! class on a date, each with its effective dates and its citation, from the
//! same tables the engine decides with.

use chrono::{DateTime, NaiveDate, Utc};
use clap::Args as ClapArgs;
use optline_policy::phone::{area_code_state, E164};
use optline_policy::{caps, consent, quiet_hours, CatalogRow, MessageClass, UsState};
use serde::Serialize;

use crate::error::CliError;
use crate::parse;
use crate::table::Fields;

/// List the rules (quiet hours, caps, consent switches) that apply to a
/// recipient and a message class on a date, with their effective dates and
/// sources. Without --phone or --state, lists every row of every table.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The recipient's number: its area code gives a state.
    #[arg(long)]
    pub phone: Option<String>,
    /// The state of the recipient's postal address, e.g. OR.
    #[arg(long, value_parser = parse::for_clap(parse::state))]
    pub state: Option<UsState>,
    /// The message class [default: transactional].
    #[arg(long, value_parser = parse::for_clap(parse::class))]
    pub class: Option<MessageClass>,
    /// The date, YYYY-MM-DD or an RFC 3339 instant [default: today, UTC].
    #[arg(long, value_parser = parse::for_clap(date))]
    pub at: Option<NaiveDate>,
    /// Print the JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
}

/// A date as `YYYY-MM-DD`, or the UTC date of an RFC 3339 instant.
fn date(text: &str) -> Result<NaiveDate, CliError> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .or_else(|_| parse::time(text).map(|t: DateTime<Utc>| t.date_naive()))
        .map_err(|_| CliError::InvalidTime(text.to_owned()))
}

/// One row and what it means for the request.
#[derive(Debug, Serialize)]
pub struct Row {
    /// The table's row.
    #[serde(flatten)]
    row: CatalogRow,
    /// In force on the date.
    in_force: bool,
    /// In force, for this class, for one of the recipient's states (or for
    /// everyone).
    applies: bool,
    /// Why it does not apply, when it does not.
    #[serde(skip_serializing_if = "Option::is_none")]
    why_not: Option<String>,
}

/// The answer.
#[derive(Debug, Serialize)]
pub struct Output {
    /// The date asked about.
    at: NaiveDate,
    /// The class asked about.
    class: MessageClass,
    /// The states the recipient may be in (address and area code); empty
    /// when no recipient was given, and then every row is listed.
    states: Vec<String>,
    /// The rows, table by table, in table order.
    rules: Vec<Row>,
}

/// Answers the flags.
pub fn answer(args: &Args) -> Result<Output, CliError> {
    let phone = args.phone.as_deref().map(E164::parse).transpose()?;
    let mut states: Vec<String> = Vec::new();
    if let Some(state) = &args.state {
        states.push(state.code().to_owned());
    }
    if let Some(state) = phone.as_ref().and_then(area_code_state) {
        if !states.iter().any(|s| s == state.code()) {
            states.push(state.code().to_owned());
        }
    }
    let recipient_given = phone.is_some() || args.state.is_some();
    let at = args.at.unwrap_or_else(|| parse::now().date_naive());
    let class = args.class.unwrap_or(MessageClass::Transactional);

    let mut rows = quiet_hours::catalog()?;
    rows.extend(caps::catalog()?);
    rows.extend(consent::catalog());
    let rules = rows
        .into_iter()
        .filter(|row| {
            !recipient_given
                || row.states.is_empty()
                || row.states.iter().any(|s| states.contains(s))
        })
        .map(|row| {
            let in_force = row.in_force_on(at);
            let class_ok = row.classes.as_ref().is_none_or(|c| c.contains(&class));
            let why_not = if !in_force {
                Some(if at < row.effective_from {
                    format!("not in force before {}", row.effective_from)
                } else {
                    let until = row
                        .effective_until
                        .map_or_else(String::new, |u| u.to_string());
                    format!("not in force from {until}")
                })
            } else if !class_ok {
                Some(format!("does not apply to {} messages", class.as_str()))
            } else {
                None
            };
            Row {
                applies: why_not.is_none(),
                in_force,
                why_not,
                row,
            }
        })
        .collect();
    Ok(Output {
        at,
        class,
        states,
        rules,
    })
}

/// The human-readable form: a header, then one block per rule.
pub fn human(out: &Output) -> String {
    let mut fields = Fields::new();
    fields
        .add("date", out.at.to_string())
        .add("class", out.class.as_str())
        .add(
            "states",
            if out.states.is_empty() {
                "every state (no recipient given)".to_owned()
            } else {
                out.states.join(", ")
            },
        )
        .add(
            "applies",
            format!(
                "{} of {} rules listed",
                out.rules.iter().filter(|r| r.applies).count(),
                out.rules.len()
            ),
        );
    let mut text = fields.render();
    for rule in &out.rules {
        let row = &rule.row;
        let dates = match row.effective_until {
            Some(until) => format!("{} to {until}", row.effective_from),
            None => format!("from {}", row.effective_from),
        };
        let status = match &rule.why_not {
            None => "APPLIES".to_owned(),
            Some(why) => format!("does not apply: {why}"),
        };
        text.push_str(&format!(
            "\n{}  [{}]  {}  ({}, {})\n  {}\n  {}\n  source ({}): {}\n",
            row.id,
            row.table,
            status,
            dates,
            row.effective_from_basis,
            row.jurisdiction,
            row.summary,
            row.source_quality,
            row.source,
        ));
        if let Some(note) = &row.note {
            text.push_str(&format!("  note: {note}\n"));
        }
    }
    text
}
