//! `optline classify`: what an inbound reply asks for.

use clap::Args as ClapArgs;
use optline_policy::classify::{
    classify, Classification, Intent, ReplyContext, ReplyGrammar, Tier, CLASSIFIER_VERSION,
};
use serde::{Deserialize, Serialize};

use crate::error::CliError;
use crate::table::Fields;

/// Classify an inbound reply: opt_out, help, opt_in, confirm, reschedule or
/// other, with its tier (exact, clear, doubtful) and the deciding rule.
#[derive(Debug, ClapArgs)]
#[command(after_help = "Without TEXT, reads JSON lines from stdin: \
{\"body\": \"STOP please\", \"grammar\": {\"confirm\": [\"C\"], \"reschedule\": [\"R\"]}, \"opted_out\": false}")]
pub struct Args {
    /// The reply's text. Without it, read JSON lines from stdin.
    pub text: Option<String>,
    /// Reply codes of the last template sent: confirm codes, a colon, then
    /// reschedule codes, e.g. `C,1:R,2`.
    #[arg(long, value_name = "CONFIRM:RESCHEDULE")]
    pub grammar: Option<String>,
    /// The number is currently opted out (so YES means opt in).
    #[arg(long)]
    pub opted_out: bool,
    /// Print the JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One stdin line.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The reply's text.
    pub body: String,
    /// Reply codes of the last template sent.
    #[serde(default)]
    pub grammar: Option<ReplyGrammar>,
    /// The number is currently opted out.
    #[serde(default)]
    pub opted_out: bool,
}

/// The answer: the policy crate's [`Classification`] and the classifier's
/// version.
#[derive(Debug, Serialize)]
pub struct Output {
    #[serde(flatten)]
    classification: Classification,
    /// The classifier's rule version.
    version: &'static str,
}

/// Parses `C,1:R,2` into a grammar (either side may be empty).
pub fn grammar_flag(text: &str) -> ReplyGrammar {
    let (confirm, reschedule) = text.split_once(':').unwrap_or((text, ""));
    let codes = |side: &str| -> Vec<String> {
        side.split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    ReplyGrammar {
        confirm: codes(confirm),
        reschedule: codes(reschedule),
    }
}

/// Classifies one input. A grammar with a reserved or repeated code is an
/// error, as it would be when a template is published.
pub fn answer(input: Input) -> Result<Output, CliError> {
    if let Some(grammar) = &input.grammar {
        grammar.validate()?;
    }
    let ctx = ReplyContext {
        grammar: input.grammar,
        opted_out: input.opted_out,
    };
    Ok(Output {
        classification: classify(&input.body, &ctx),
        version: CLASSIFIER_VERSION,
    })
}

/// The input given as arguments.
pub fn input_from_args(args: &Args, text: &str) -> Input {
    Input {
        body: text.to_owned(),
        grammar: args.grammar.as_deref().map(grammar_flag),
        opted_out: args.opted_out,
    }
}

/// One JSON line to an answer.
pub fn answer_line(line: &str) -> Result<Output, CliError> {
    answer(serde_json::from_str(line)?)
}

/// The human-readable form.
pub fn human(out: &Output) -> String {
    let c = &out.classification;
    let mut fields = Fields::new();
    fields
        .add("intent", intent_name(c.intent))
        .add("tier", tier_name(c.tier))
        .add("rule", c.rule.as_str())
        .add("matched", c.matched.as_deref().unwrap_or("-"))
        .add("means", meaning(c.intent, c.tier))
        .add("version", out.version);
    fields.render()
}

fn intent_name(intent: Intent) -> &'static str {
    match intent {
        Intent::OptOut => "opt_out",
        Intent::Help => "help",
        Intent::OptIn => "opt_in",
        Intent::Confirm => "confirm",
        Intent::Reschedule => "reschedule",
        Intent::Other => "other",
    }
}

fn tier_name(tier: Tier) -> &'static str {
    match tier {
        Tier::Exact => "exact",
        Tier::Clear => "clear",
        Tier::Doubtful => "doubtful",
    }
}

/// What the product does with a reply of this class (compliance-rules §3).
fn meaning(intent: Intent, tier: Tier) -> &'static str {
    match (intent, tier) {
        (Intent::OptOut, Tier::Doubtful) => "revocation: suppress at once and queue a human review",
        (Intent::OptOut, _) => "revocation: suppress at once and send the one confirmation text",
        (Intent::Help, _) => "send the HELP text",
        (Intent::OptIn, _) => "re-opt-in: record a consent event restoring what was revoked",
        (Intent::Confirm, _) => "confirms the appointment the last text asked about",
        (Intent::Reschedule, _) => "asks to reschedule the appointment the last text asked about",
        (Intent::Other, _) => "no action: not a keyword, code or recognised phrase",
    }
}
