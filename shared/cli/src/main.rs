//! # optline
//!
//! The operator CLI: the policy engine (`optline_policy`) for people and
//! scripts. Each subcommand answers one input given as arguments in a
//! human-readable form (`--json` for the JSON), or, without arguments, reads
//! one JSON object per line on stdin and writes one JSON object per line on
//! stdout. The shapes are documented in `docs/cli.md`.
//!
//! The CLI reads the clock (a missing `at` / `now` means now); the policy
//! crate never does. Nothing is logged: output goes to the operator only.

#![allow(
    clippy::print_stdout,
    reason = "printing answers to stdout is this binary's job"
)]

mod classify;
mod error;
mod evaluate;
mod output;
mod parse;
mod phone;
mod quiet_hours;
mod rules;
mod segments;
mod table;
mod template;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::{lines, single, Form};

/// optline's compliance engine on the command line.
///
/// With an argument (or flags), each subcommand prints a human-readable
/// answer, or one JSON object with --json. Without one, it reads one JSON
/// object per line on stdin and writes one JSON object per line on stdout;
/// a bad line gives {"error": "...", "line": N} and a non-zero exit at the end.
#[derive(Debug, Parser)]
#[command(name = "optline", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Classify(classify::Args),
    Segments(segments::Args),
    Phone(phone::Args),
    QuietHours(quiet_hours::Args),
    Rules(rules::Args),
    Evaluate(evaluate::Args),
    Template(template::Args),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Classify(args) => match &args.text {
            Some(text) => single(
                Form::from_flag(args.json),
                classify::answer(classify::input_from_args(&args, text)),
                classify::human,
            ),
            None => lines(classify::answer_line),
        },
        Command::Segments(args) => match &args.text {
            Some(text) => single(
                Form::from_flag(args.json),
                Ok(segments::answer(&segments::Input { body: text.clone() })),
                segments::human,
            ),
            None => lines(segments::answer_line),
        },
        Command::Phone(args) => match &args.number {
            Some(number) => single(
                Form::from_flag(args.json),
                Ok(phone::answer(number)),
                phone::human,
            ),
            None => lines(phone::answer_line),
        },
        Command::QuietHours(args) => {
            if args.has_recipient() {
                single(
                    Form::from_flag(args.json),
                    quiet_hours::request_from_args(&args).map(|r| quiet_hours::answer(&r)),
                    quiet_hours::human,
                )
            } else {
                lines(|line| quiet_hours::answer_line(line, &args))
            }
        }
        Command::Rules(args) => single(
            Form::from_flag(args.json),
            rules::answer(&args),
            rules::human,
        ),
        Command::Evaluate(args) => match &args.file {
            Some(file) => single(
                Form::from_flag(args.json),
                evaluate::read_input(file).and_then(|text| evaluate::answer_line(&text)),
                evaluate::human,
            ),
            None => lines(evaluate::answer_line),
        },
        Command::Template(args) => match args.command {
            template::TemplateCommand::Lint { file, json } => single(
                Form::from_flag(json),
                template::lint_answer(&file),
                template::lint_human,
            ),
            template::TemplateCommand::Preview { file, values, json } => single(
                Form::from_flag(json),
                template::preview_answer(&file, &values),
                template::preview_human,
            ),
            template::TemplateCommand::Diff { from, to, json } => single(
                Form::from_flag(json),
                template::diff_answer(&from, &to),
                |c: &Vec<_>| template::diff_human(c),
            ),
            template::TemplateCommand::Seeds => {
                for line in template::seeds() {
                    println!("{line}");
                }
                ExitCode::SUCCESS
            }
        },
    }
}
