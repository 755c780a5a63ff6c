//! The texts a reply is answered with, from the approved template library.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use optline_library::Library;
use optline_policy::template::lint::{has_errors, lint_rendered};
use optline_policy::template::review::ReviewPolicy;
use optline_ports::PortError;

use crate::Replies;

/// The newest sendable version of `template_id`, rendered with `values`
/// and linted again; `None` when there is none or it does not render
/// cleanly.
pub(crate) async fn rendered(
    replies: Replies<'_>,
    template_id: &str,
    values: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> Result<Option<String>, PortError> {
    let library = Library::new(
        replies.store,
        ReviewPolicy {
            approval_valid_days: replies.config.approval_valid_days,
        },
        replies.lint,
    );
    let Some(stored) = library.latest_sendable(template_id, now).await? else {
        return Ok(None);
    };
    Ok(match stored.version.render(values) {
        Ok(text) if !has_errors(&lint_rendered(&stored.version, &text, replies.lint)) => Some(text),
        _ => None,
    })
}

/// The program's own text (HELP, STOP or opt-in confirmation) from the
/// library. These answers are owed to the person whatever the library's
/// state, so when no version is published, or it cannot be rendered
/// cleanly, the built-in CTIA text is sent instead.
pub(crate) async fn program_text(
    replies: Replies<'_>,
    template_id: &str,
    values: &BTreeMap<String, String>,
    now: DateTime<Utc>,
    fallback: String,
) -> Result<String, PortError> {
    Ok(rendered(replies, template_id, values, now)
        .await?
        .unwrap_or(fallback))
}
