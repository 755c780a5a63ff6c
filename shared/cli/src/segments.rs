//! `optline segments`: how a body goes on the air.

use clap::Args as ClapArgs;
use optline_policy::segments::{count, gsm7_septets, split, Encoding, SegmentCount};
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::table::Fields;

/// Count a body's encoding (gsm7 or ucs2), units, characters and segments,
/// and show the exact parts it is split into.
#[derive(Debug, ClapArgs)]
#[command(after_help = "Without TEXT, reads JSON lines from stdin: {\"body\": \"...\"}")]
pub struct Args {
    /// The message body. Without it, read JSON lines from stdin.
    pub text: Option<String>,
    /// Print the JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One stdin line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The message body.
    pub body: String,
}

/// The answer: the policy crate's [`SegmentCount`], the characters that
/// force UCS-2, and the parts.
#[derive(Debug, Serialize)]
pub struct Output {
    #[serde(flatten)]
    count: SegmentCount,
    /// Each distinct character outside GSM-7 (and its extension table), in
    /// order of first use: these make the whole message UCS-2.
    non_gsm7: Vec<String>,
    /// The exact text of each part, in order.
    parts: Vec<String>,
}

/// Counts and splits one body.
pub fn answer(input: &Input) -> Output {
    let mut non_gsm7: Vec<String> = Vec::new();
    for c in input.body.chars() {
        let text = c.to_string();
        if gsm7_septets(c).is_none() && !non_gsm7.contains(&text) {
            non_gsm7.push(text);
        }
    }
    Output {
        count: count(&input.body),
        non_gsm7,
        parts: split(&input.body),
    }
}

/// One JSON line to an answer.
pub fn answer_line(line: &str) -> Result<Output, CliError> {
    let input: Input = serde_json::from_str(line)?;
    Ok(answer(&input))
}

/// Units one part takes in the message's encoding.
fn units_in(part: &str, encoding: Encoding) -> usize {
    match encoding {
        Encoding::Gsm7 => part.chars().filter_map(gsm7_septets).sum(),
        Encoding::Ucs2 => part.encode_utf16().count(),
    }
}

/// The human-readable form.
pub fn human(out: &Output) -> String {
    let c = &out.count;
    let (encoding, unit) = match c.encoding {
        Encoding::Gsm7 => ("gsm7", "septets"),
        Encoding::Ucs2 => ("ucs2", "utf-16 code units"),
    };
    let mut fields = Fields::new();
    fields
        .add("encoding", encoding)
        .add("units", format!("{} {unit}", c.units))
        .add("characters", c.characters.to_string())
        .add(
            "segments",
            format!("{} (up to {} units each)", c.segments, c.per_segment),
        );
    if !out.non_gsm7.is_empty() {
        let listed: Vec<String> = out
            .non_gsm7
            .iter()
            .map(|s| {
                let code = s.chars().next().map_or(0, u32::from);
                format!("{s:?} U+{code:04X}")
            })
            .collect();
        fields.add("non-gsm7", listed.join(", "));
    }
    for (i, part) in out.parts.iter().enumerate() {
        fields.add(
            &format!("part {}", i + 1),
            format!("{} units  {part:?}", units_in(part, c.encoding)),
        );
    }
    fields.render()
}
