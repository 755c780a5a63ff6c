//! A template version whose opt-outs spike is paused at once, and stays
//! paused until a person resumes it.
//!
//! After the drain counts a batch with opt-outs it reads the day's rollups
//! ([`crate::count::opt_out_counts`]): a version with at least
//! [`PausePolicy::min_sends`] texts today whose opt-outs within 7 days of
//! its texts reach [`PausePolicy::per_1000`] per 1,000 is paused in one
//! commit: the pause with its history, an audit record on the template's
//! own chain (`template/<id>`), a review item (`template_paused`) for the
//! compliance queue and the announcement (`optline.template.paused`).
//! Dispatch reads the pauses at most every 30 seconds and defers a paused
//! version's steps (`template.paused`) rather than send them. A person in
//! the compliance group resumes it (`POST /templates/{id}/versions/{v}/resume`),
//! with a reason, recorded the same way; a version resumed less than a day
//! ago is not paused again on the same day's figures.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use optline_ports::{
    AuditHead, ChainRead, Commit, Committed, ContactId, NewAuditRecord, OutboxEvent, PauseEvent,
    PortError, ReviewItem, Step, Store, TemplatePause, Write,
};

/// The detail-type of pause changes.
pub const PAUSE_DETAIL_TYPE: &str = "optline.template.paused";

/// How long dispatch waits before looking at a paused version's step again.
pub const PAUSED_RETRY: Duration = Duration::minutes(15);

/// When a version's opt-outs are a spike.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PausePolicy {
    /// Opt-outs within 7 days of a text, per 1,000 texts today.
    pub per_1000: f64,
    /// Texts of the version today before its rate counts.
    pub min_sends: u64,
}

impl Default for PausePolicy {
    /// 25 per 1,000 (2.5% of a day's texts followed by an opt-out; a
    /// healthy reminder program runs well under 5 per 1,000), over at least
    /// 200 texts.
    fn default() -> Self {
        Self {
            per_1000: 25.0,
            min_sends: 200,
        }
    }
}

fn template_subject(reference: &str) -> Result<ContactId, PortError> {
    let id = reference.split('@').next().unwrap_or(reference);
    ContactId::template_trail(id)
}

async fn commit_change(
    store: &dyn Store,
    pause: &TemplatePause,
    event: &PauseEvent,
    review: Option<ReviewItem>,
) -> Result<bool, PortError> {
    let subject = template_subject(&pause.template)?;
    let heads = store.chain_heads(std::slice::from_ref(&subject)).await?;
    let mut commit = Commit::default();
    commit.push(Write::Pause(pause.clone()));
    commit.push(Write::Audit {
        chain: ChainRead {
            contact: subject.clone(),
            head: heads
                .get(&subject)
                .cloned()
                .unwrap_or_else(AuditHead::genesis),
        },
        records: vec![NewAuditRecord {
            evidence: Default::default(),
            contact_id: subject,
            at: event.at,
            kind: "template".to_owned(),
            action: event.action.clone(),
            step_id: None,
            rules: Vec::new(),
            reasons: vec!["template.opt_out_spike".to_owned()],
            legal_basis: None,
            consent_event_id: None,
            template: Some(pause.template.clone()),
            carrier_message_id: None,
            arm: None,
            detail: Some(format!(
                "{} by {}: {}",
                event.action, event.by, event.detail
            )),
        }],
    });
    commit.push(Write::Outbox(OutboxEvent {
        id: format!("pause:{}:{}", pause.template, pause.revision),
        detail_type: PAUSE_DETAIL_TYPE.to_owned(),
        at: event.at,
        detail: serde_json::json!({
            "template": pause.template,
            "paused": pause.paused,
            "action": event.action,
            "by": event.by,
            "detail": event.detail,
            "at": event.at,
        }),
    }));
    if let Some(item) = review {
        commit.push(Write::Review(item));
    }
    Ok(matches!(store.commit(commit).await?, Committed::Done(_)))
}

/// Pauses every version whose opt-outs today (`counts`: version ->
/// (texts, opt-outs within 7 days)) spike under `policy`; gives the
/// versions paused now.
pub async fn pause_spikes(
    store: &dyn Store,
    counts: &BTreeMap<String, (u64, u64)>,
    policy: PausePolicy,
    now: DateTime<Utc>,
) -> Result<Vec<String>, PortError> {
    let spiking: Vec<(&String, u64, u64, f64)> = counts
        .iter()
        .filter(|(_, (sent, _))| *sent >= policy.min_sends && *sent > 0)
        .map(|(t, (sent, outs))| (t, *sent, *outs, *outs as f64 * 1000.0 / *sent as f64))
        .filter(|(_, _, _, rate)| *rate >= policy.per_1000)
        .collect();
    if spiking.is_empty() {
        return Ok(Vec::new());
    }
    let known: BTreeMap<String, TemplatePause> = store
        .pauses()
        .await?
        .into_iter()
        .map(|p| (p.template.clone(), p))
        .collect();
    let mut paused = Vec::new();
    for (template, sent, outs, rate) in spiking {
        let previous = known.get(template);
        if previous.is_some_and(|p| p.paused) {
            continue;
        }
        // A person looked at it and resumed it: today's figures are the
        // ones they saw.
        if previous
            .and_then(TemplatePause::resumed_at)
            .is_some_and(|at| now - at < Duration::hours(24))
        {
            continue;
        }
        let event = PauseEvent {
            at: now,
            by: "opt-out guard".to_owned(),
            action: "paused".to_owned(),
            detail: format!(
                "{outs} opt-outs within 7 days of its {sent} texts today: {rate:.1} per 1,000, at or above {:.1}",
                policy.per_1000
            ),
        };
        let mut next = previous.cloned().unwrap_or(TemplatePause {
            template: template.clone(),
            paused: false,
            history: Vec::new(),
            revision: 0,
        });
        if previous.is_some() {
            next.revision += 1;
        }
        next.paused = true;
        next.history.push(event.clone());
        let review = ReviewItem {
            id: format!("paused-{}-{}", template.replace('@', "-v"), next.revision),
            kind: "template_paused".to_owned(),
            at: now,
            phone_masked: String::new(),
            contact_ids: Vec::new(),
            body: format!("{template} paused: its opt-outs spiked"),
            rule: "template.opt_out_spike".to_owned(),
            action_taken: format!(
                "{}; its texts are held until a person in compliance resumes it",
                event.detail
            ),
            assigned_to: None,
            resolution: None,
        };
        if commit_change(store, &next, &event, Some(review)).await? {
            paused.push(template.clone());
        }
    }
    Ok(paused)
}

/// Why a pause could not be lifted.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The request is not valid.
    #[error("{0}")]
    Invalid(String),
    /// The version is not paused.
    #[error("the version is not paused")]
    NotPaused,
    /// It changed meanwhile.
    #[error("the pause changed meanwhile; read it again")]
    Conflict,
    /// The store failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Resumes a paused version, by a person, with a reason.
pub async fn resume(
    store: &dyn Store,
    template: &str,
    by: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<TemplatePause, ResumeError> {
    if reason.trim().is_empty() || reason.len() > 500 {
        return Err(ResumeError::Invalid(
            "reason: why it may send again (1 to 500 characters)".to_owned(),
        ));
    }
    let Some(mut pause) = store
        .pauses()
        .await?
        .into_iter()
        .find(|p| p.template == template && p.paused)
    else {
        return Err(ResumeError::NotPaused);
    };
    let event = PauseEvent {
        at: now,
        by: by.to_owned(),
        action: "resumed".to_owned(),
        detail: reason.trim().to_owned(),
    };
    pause.paused = false;
    pause.revision += 1;
    pause.history.push(event.clone());
    if commit_change(store, &pause, &event, None).await? {
        Ok(pause)
    } else {
        Err(ResumeError::Conflict)
    }
}

/// The paused versions as a warm dispatcher keeps them, checked as
/// [`ExperimentCache`](crate::experiments::ExperimentCache) checks its
/// list: the pauses' change count once per interval, the pauses again only
/// when one changed.
#[derive(Debug, Default)]
pub struct PauseCache(crate::warm::WarmList<String>);

impl PauseCache {
    /// Whether `step`'s version (as it will be sent) is paused.
    pub async fn paused(&self, store: &dyn Store, step: &Step) -> Result<bool, PortError> {
        let reference = format!("{}@{}", step.template_id, step.template_version);
        self.0
            .get(
                || store.pauses_changed(),
                || async {
                    Ok(store
                        .pauses()
                        .await?
                        .into_iter()
                        .filter(|p| p.paused)
                        .map(|p| p.template)
                        .collect())
                },
                |list| list.contains(&reference),
            )
            .await
    }
}
