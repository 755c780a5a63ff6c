//! `optline template`: lint, preview and diff template files offline, and
//! print the seed library to start from. Review transitions (submit,
//! approve, publish, retire) happen in a deployment, through the templates
//! API or `optline-ops template`, where the actor's identity is proven.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::{Args as ClapArgs, Subcommand};
use optline_library::{assess, diff, preview, Assessment, Change, Draft, Preview};
use optline_policy::template::lint::{LintConfig, Severity};
use optline_policy::template::{seed_library, TemplateVersion};

use crate::error::CliError;

/// Lint, preview and diff template versions (JSON files) offline.
#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    pub command: TemplateCommand,
}

/// The template subcommands.
#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Lint a version: findings, risk tier, required approvers, worst case.
    Lint {
        /// A version or draft as JSON (`-` for stdin).
        file: PathBuf,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Render a version with values (or worst-case samples): encoding,
    /// segments, parts and the lint of the rendered text.
    Preview {
        /// A version or draft as JSON (`-` for stdin).
        file: PathBuf,
        /// A value, `name=value`; repeat for each variable.
        #[arg(long = "value", value_name = "NAME=VALUE")]
        values: Vec<String>,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// What changed between two versions.
    Diff {
        /// The older version.
        from: PathBuf,
        /// The newer version.
        to: PathBuf,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the seed library (JSON lines), a starting point for authors.
    Seeds,
}

/// Reads a version, or a draft (numbered 0, author unknown).
pub fn read_version(file: &Path) -> Result<TemplateVersion, CliError> {
    let text = crate::evaluate::read_input(file)?;
    let value: serde_json::Value = serde_json::from_str(&text)?;
    if value.get("version").is_some() {
        Ok(serde_json::from_value(value)?)
    } else {
        let draft: Draft = serde_json::from_value(value)?;
        Ok(draft.into_version(0, "", chrono::Utc::now()))
    }
}

fn lint_config() -> Result<&'static LintConfig, CliError> {
    Ok(LintConfig::embedded()?)
}

/// `optline template lint`.
pub fn lint_answer(file: &Path) -> Result<Assessment, CliError> {
    Ok(assess(&read_version(file)?, lint_config()?))
}

/// `optline template preview`.
pub fn preview_answer(file: &Path, values: &[String]) -> Result<Preview, CliError> {
    let version = read_version(file)?;
    let given: Option<BTreeMap<String, String>> = if values.is_empty() {
        None
    } else {
        let mut map = BTreeMap::new();
        for pair in values {
            let (k, v) = pair
                .split_once('=')
                .ok_or(CliError::Shape("--value name=value"))?;
            map.insert(k.to_owned(), v.to_owned());
        }
        Some(map)
    };
    preview(&version, given.as_ref(), lint_config()?).map_err(|e| CliError::Template(e.to_string()))
}

/// `optline template diff`.
pub fn diff_answer(from: &Path, to: &Path) -> Result<Vec<Change>, CliError> {
    Ok(diff(&read_version(from)?, &read_version(to)?))
}

/// The seed library as JSON lines.
pub fn seeds() -> Vec<String> {
    seed_library()
        .iter()
        .filter_map(|t| serde_json::to_string(t).ok())
        .collect()
}

/// Human form of a lint.
pub fn lint_human(a: &Assessment) -> String {
    let mut out = String::new();
    if a.findings.is_empty() {
        out.push_str("lint: clean\n");
    }
    for f in &a.findings {
        let level = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!("{level:<8} {:<42} {}\n", f.rule, f.message));
    }
    let roles: Vec<&str> = a.required_roles.iter().map(|r| r.as_str()).collect();
    out.push_str(&format!(
        "tier:    {}{}\n",
        format!("{:?}", a.tier).to_lowercase(),
        if a.tier_reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", a.tier_reasons.join("; "))
        }
    ));
    out.push_str(&format!("approve: {}\n", roles.join(" + ")));
    if let Some(w) = &a.worst_case {
        out.push_str(&format!(
            "worst:   {}, {} characters, {} units, {} segment(s)\n",
            encoding(w.encoding),
            w.characters,
            w.units,
            w.segments
        ));
    }
    out
}

/// Human form of a preview.
pub fn preview_human(p: &Preview) -> String {
    let mut out = format!(
        "{}\n\n{}, {} characters, {} units, {} segment(s); worst case {} segment(s)\n",
        p.body,
        encoding(p.encoding),
        p.characters,
        p.units,
        p.segments,
        p.worst_case_segments
    );
    if p.parts.len() > 1 {
        for (i, part) in p.parts.iter().enumerate() {
            out.push_str(&format!("part {}: {part}\n", i + 1));
        }
    }
    for f in &p.findings {
        out.push_str(&format!("{:?}: {} {}\n", f.severity, f.rule, f.message).to_lowercase());
    }
    out
}

/// Human form of a diff.
pub fn diff_human(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "no changes\n".to_owned();
    }
    let mut out = String::new();
    for c in changes {
        out.push_str(&format!("{}:\n  - {}\n  + {}\n", c.field, c.from, c.to));
    }
    out
}

fn encoding(e: optline_policy::segments::Encoding) -> &'static str {
    match e {
        optline_policy::segments::Encoding::Gsm7 => "GSM-7",
        optline_policy::segments::Encoding::Ucs2 => "UCS-2",
    }
}
