//! `optline-ops template …`: the template library in a deployment. Reading
//! needs AWS credentials for the table; every change is made by a person:
//! `OPTLINE_ID_TOKEN` holds the token they got by signing in to the
//! deployment's Cognito pool, verified exactly as the templates function
//! verifies it (`USER_POOL_ID`, `USER_POOL_CLIENT_ID`), so the CLI grants
//! nothing the API would not, and an AWS role's session name is never a
//! person.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::Utc;
use clap::Subcommand;
use optline_aws::DynamoStore;
use optline_library::{diff, Draft, Library};
use optline_policy::template::review::{Action, Actor, ReviewPolicy, Role};

/// The template subcommands.
#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Load the seed library for every template id not present: low-tier
    /// versions approved and published by you (operations), the rest left
    /// in review for the people their tier names.
    Seed,
    /// Every template and the state of its versions.
    List,
    /// Every version of a template, or one.
    Show {
        /// Template id.
        id: String,
        /// Version (all when absent).
        version: Option<u32>,
    },
    /// Write a new draft version from a JSON file (see `docs/templates.md`).
    Create {
        /// The draft.
        file: PathBuf,
    },
    /// Draft → in review.
    Submit { id: String, version: u32 },
    /// Approve in a role you hold.
    Approve {
        id: String,
        version: u32,
        #[arg(long, value_parser = parse_role)]
        role: Role,
    },
    /// Back to draft, with a reason.
    Reject {
        id: String,
        version: u32,
        #[arg(long)]
        reason: String,
    },
    /// Approved → published.
    Publish { id: String, version: u32 },
    /// Withdraw for good, with a reason.
    Retire {
        id: String,
        version: u32,
        #[arg(long)]
        reason: String,
    },
    /// What changed between two versions.
    Diff { id: String, from: u32, to: u32 },
    /// Render a version with values (`--value name=value`) or samples.
    Preview {
        id: String,
        version: u32,
        #[arg(long = "value", value_name = "NAME=VALUE")]
        values: Vec<String>,
    },
}

fn parse_role(raw: &str) -> Result<Role, String> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned()))
        .map_err(|_| "role is operations, compliance, legal or clinical".to_owned())
}

/// Runs one template command; the answer is JSON on stdout.
pub async fn run(
    command: TemplateCommand,
    store: &DynamoStore,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let config = optline_config::Config::from_env()?;
    let lint = optline_library::lint_config(config.template_lint.as_deref())?;
    let policy = ReviewPolicy {
        approval_valid_days: config.approval_valid_days,
    };
    let library = Library::new(store, policy, &lint);
    let now = Utc::now();
    let actor = || async {
        let token = std::env::var("OPTLINE_ID_TOKEN").map_err(|_| {
            "changes are made by a person: set OPTLINE_ID_TOKEN to the token you got by signing in (docs/identities.md)"
        })?;
        let people = optline_identity::Verifier::from_env().await?;
        let person = people.verify(&token).await?;
        Ok::<Actor, Box<dyn std::error::Error>>(Actor {
            id: person.actor_id(),
            name: person.name.clone(),
            roles: person.review_roles(),
        })
    };
    let act = |id: String, version: u32, action: Action| async move {
        let who = actor().await?;
        let view = library.act(&id, version, &action, &who, now).await?;
        Ok::<_, Box<dyn std::error::Error>>(serde_json::to_value(view)?)
    };
    Ok(match command {
        TemplateCommand::Seed => {
            let who = actor().await?;
            serde_json::json!({ "loaded": library.seed(&who, now).await? })
        }
        TemplateCommand::List => {
            let mut out = Vec::new();
            for id in library.ids().await? {
                let versions: Vec<serde_json::Value> = library
                    .versions(&id, now)
                    .await?
                    .iter()
                    .map(|v| {
                        serde_json::json!({
                            "version": v.stored.version.version,
                            "state": v.stored.lifecycle.state,
                            "tier": v.stored.lifecycle.tier,
                            "sendable": v.sendable,
                        })
                    })
                    .collect();
                out.push(serde_json::json!({ "id": id, "versions": versions }));
            }
            serde_json::json!({ "templates": out })
        }
        TemplateCommand::Show { id, version } => match version {
            Some(v) => serde_json::to_value(library.get(&id, v, now).await?)?,
            None => serde_json::to_value(library.versions(&id, now).await?)?,
        },
        TemplateCommand::Create { file } => {
            let draft: Draft = serde_json::from_str(&std::fs::read_to_string(file)?)?;
            let who = actor().await?;
            serde_json::to_value(library.create(draft, &who, now).await?)?
        }
        TemplateCommand::Submit { id, version } => act(id, version, Action::Submit).await?,
        TemplateCommand::Approve { id, version, role } => {
            act(id, version, Action::Approve { role }).await?
        }
        TemplateCommand::Reject {
            id,
            version,
            reason,
        } => act(id, version, Action::Reject { reason }).await?,
        TemplateCommand::Publish { id, version } => act(id, version, Action::Publish).await?,
        TemplateCommand::Retire {
            id,
            version,
            reason,
        } => act(id, version, Action::Retire { reason }).await?,
        TemplateCommand::Diff { id, from, to } => {
            let a = library.get(&id, from, now).await?;
            let b = library.get(&id, to, now).await?;
            serde_json::json!({
                "id": id, "from": from, "to": to,
                "change_reason": b.stored.version.change_reason,
                "changes": diff(&a.stored.version, &b.stored.version),
            })
        }
        TemplateCommand::Preview {
            id,
            version,
            values,
        } => {
            let view = library.get(&id, version, now).await?;
            let given: Option<BTreeMap<String, String>> = if values.is_empty() {
                None
            } else {
                Some(
                    values
                        .iter()
                        .filter_map(|p| p.split_once('='))
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                )
            };
            serde_json::to_value(library.preview(&view.stored.version, given.as_ref())?)?
        }
    })
}
