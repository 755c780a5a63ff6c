//! The two ways every subcommand talks: one answer for one input (human text,
//! or one JSON object with `--json`), or JSON lines in and JSON lines out.
//!
//! Stdout is written through one locked, buffered handle that is flushed
//! after every answer, so a script can use the CLI as a co-process. A closed
//! pipe (`optline ... | head -1`) ends the run quietly.

use std::io::{self, BufRead, IsTerminal, Write};
use std::process::ExitCode;

use serde::Serialize;

use crate::error::CliError;

/// How a single answer is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// Aligned text for a person.
    Human,
    /// One JSON object on one line.
    Json,
}

impl Form {
    /// `Json` when `--json` was given.
    pub fn from_flag(json: bool) -> Self {
        if json {
            Self::Json
        } else {
            Self::Human
        }
    }
}

/// The object written in place of an answer for an input that failed.
#[derive(Debug, Serialize)]
struct ErrorLine<'a> {
    error: &'a str,
    /// 1-based input line, in JSON-lines mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
}

/// Writes one answer (or its error) and gives the exit code: 0, or 1 when
/// the input failed.
pub fn single<O: Serialize>(
    form: Form,
    result: Result<O, CliError>,
    human: impl FnOnce(&O) -> String,
) -> ExitCode {
    let mut stdout = io::stdout().lock();
    let (text, failed) = match (&result, form) {
        (Ok(answer), Form::Human) => (human(answer), false),
        (Ok(answer), Form::Json) => match serde_json::to_string(answer) {
            Ok(json) => (json + "\n", false),
            Err(e) => (error_json(&e.to_string(), None) + "\n", true),
        },
        (Err(e), Form::Human) => {
            eprintln!("optline: error: {e}");
            return ExitCode::FAILURE;
        }
        (Err(e), Form::Json) => (error_json(&e.to_string(), None) + "\n", true),
    };
    match write_flush(&mut stdout, &text) {
        Ok(()) | Err(WriteEnd::Closed) => {}
        Err(WriteEnd::Failed(e)) => {
            eprintln!("optline: error: cannot write to stdout: {e}");
            return ExitCode::FAILURE;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Answers every line of stdin with one line of JSON: the answer, or
/// `{"error": "...", "line": n}`. Blank lines are skipped. The exit code is
/// 1 when any line failed, 0 otherwise.
pub fn lines<O: Serialize>(mut answer: impl FnMut(&str) -> Result<O, CliError>) -> ExitCode {
    let stdin = io::stdin();
    if stdin.is_terminal() {
        eprintln!("optline: reading one JSON object per line from stdin (Ctrl-D to end; --help for usage)");
    }
    let mut input = stdin.lock();
    let mut stdout = io::stdout().lock();
    let mut buf = Vec::new();
    let mut number = 0usize;
    let mut answered = 0usize;
    let mut failures = 0usize;
    loop {
        buf.clear();
        match input.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!(
                    "optline: error: {}",
                    CliError::Read {
                        what: "stdin".to_owned(),
                        source: e,
                    }
                );
                return ExitCode::FAILURE;
            }
        }
        number += 1;
        let line = std::str::from_utf8(&buf);
        if line.is_ok_and(|l| l.trim().is_empty()) {
            continue;
        }
        answered += 1;
        let result = match line {
            Ok(line) => {
                answer(line).and_then(|o| serde_json::to_string(&o).map_err(CliError::from))
            }
            Err(_) => Err(CliError::NotUtf8),
        };
        let text = match result {
            Ok(json) => json,
            Err(e) => {
                failures += 1;
                error_json(&e.to_string(), Some(number))
            }
        };
        match write_flush(&mut stdout, &(text + "\n")) {
            Ok(()) => {}
            Err(WriteEnd::Closed) => return ExitCode::SUCCESS,
            Err(WriteEnd::Failed(e)) => {
                eprintln!("optline: error: cannot write to stdout: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if failures > 0 {
        eprintln!("optline: {failures} of {answered} lines failed");
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `{"error": "..."}`, built so that it cannot fail.
fn error_json(message: &str, line: Option<usize>) -> String {
    serde_json::to_string(&ErrorLine {
        error: message,
        line,
    })
    .unwrap_or_else(|_| String::from(r#"{"error":"unprintable error"}"#))
}

/// Why a write stopped.
enum WriteEnd {
    /// The reader went away: not an error for a filter.
    Closed,
    /// Anything else.
    Failed(io::Error),
}

fn write_flush(out: &mut impl Write, text: &str) -> Result<(), WriteEnd> {
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| {
            if e.kind() == io::ErrorKind::BrokenPipe {
                WriteEnd::Closed
            } else {
                WriteEnd::Failed(e)
            }
        })
}
