//! What dispatch would do with a step before any write: the audience
//! again, the pinned template rendered and linted, and the policy's
//! decision with the contact's facts.

use chrono::{DateTime, Utc};
use optline_episodes::StepFacts;
use optline_library::Library;
use optline_policy::caps::PriorSend;
use optline_policy::decision::{evaluate, Decision, PolicyState, SendRequest};
use optline_policy::template::lint::{has_errors, lint_rendered, Severity, LINT_VERSION};
use optline_policy::template::review::{ReviewPolicy, REVIEW_VERSION};
use optline_policy::template::TemplateVersion;
use optline_policy::{RuleOutcome, Verdict};
use optline_ports::{Audience, Contact, ContactFacts, Step};

use crate::dispatch::{Deps, DispatchError};

/// What dispatch would do with a step, before any write: refused for a
/// reason of its own (unknown contact, template, rendering, audience), or
/// the policy's decision with the rendered text.
#[derive(Debug)]
pub enum Assessment {
    /// Suppressed before the policy ran.
    Refused {
        /// Rule ids.
        reasons: Vec<String>,
        /// Rules consulted.
        rules: Vec<RuleOutcome>,
    },
    /// The policy's decision.
    Decided {
        /// The rendered text.
        body: String,
        /// SHA-256 of the template version's content.
        template_sha256: String,
        /// The decision.
        decision: Decision,
    },
}

/// Assesses a step at `now` without claiming, writing or sending: what
/// dispatch would decide (and the sweep's dry run reports). Reads the
/// contact's facts and the episode's answer.
pub async fn assess(
    step: &Step,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<Assessment, DispatchError> {
    let read = StepFacts::read(deps.store.as_ref(), &[step], now).await?;
    assess_with(
        step,
        read.contacts.get(&step.contact_id),
        read.answer(step),
        deps,
        now,
    )
    .await
}

/// [`assess`] on facts already read (`None`: the contact does not exist)
/// and the episode's answer, if any.
pub async fn assess_with(
    step: &Step,
    facts: Option<&ContactFacts>,
    answered: Option<&str>,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<Assessment, DispatchError> {
    let Some(facts) = facts else {
        return Ok(Assessment::Refused {
            reasons: vec!["dispatch.unknown_contact".to_owned()],
            rules: vec![RuleOutcome::new(
                "dispatch.unknown_contact",
                "1",
                Verdict::Fail,
                "the step's contact does not exist",
            )],
        });
    };
    let contact = &facts.contact;

    // The program's audience again, with the latest answers (a follow-up
    // for non-responders goes only to people who have not answered),
    // minors and region. Consent, expiry and lateness are the decision's.
    let program = deps.config.program(Some(&step.program));
    let audience_rules = program.map(|p| p.audience.clone()).unwrap_or_default();
    let request = optline_episodes::request_for(step, contact, program, now);
    let selection = optline_policy::audience::select(
        &audience_rules,
        &optline_policy::audience::Candidate {
            request: &request,
            due_at: step.due_at,
            non_responders_only: step.audience == Audience::NonResponders,
            answered,
            stage: optline_policy::audience::Stage::Send,
        },
        now,
    );
    if !selection.included {
        return Ok(Assessment::Refused {
            reasons: selection.reasons,
            rules: selection.rules,
        });
    }

    let (template, body) = match render(step, deps, now).await? {
        Ok(rendered) => rendered,
        Err((reasons, rules)) => return Ok(Assessment::Refused { reasons, rules }),
    };

    let history = facts
        .sends
        .iter()
        .map(|h| PriorSend {
            at: h.at,
            subject: h.subject.clone(),
            provider: h.program.clone(),
            healthcare_exempt: h.healthcare_exempt,
            // Each episode (subject) is one workflow instance.
            workflow: Some(h.subject.clone()),
        })
        .collect();
    let request = send_request(step, contact, Some(&template), &body, deps, now);
    let state = PolicyState {
        consent: facts.consent.clone(),
        history,
    };
    let decision = evaluate(&request, &state, now);
    Ok(Assessment::Decided {
        template_sha256: optline_ports::content_sha256(&template),
        body,
        decision,
    })
}

/// Why a step's text cannot be rendered: the rule ids and the rules.
type RenderRefusal = (Vec<String>, Vec<RuleOutcome>);

/// Fills the warm caches a batch's texts read (their template versions,
/// the running experiments, the paused versions) once, before its contacts
/// are handled at once: concurrent misses would each read the same item.
/// A failed read is left to the text that needs it, which reads again.
pub(crate) async fn warm_caches<'s>(
    deps: &Deps,
    steps: impl Iterator<Item = &'s Step>,
    now: DateTime<Utc>,
) {
    let library = Library::new(
        deps.store.as_ref(),
        ReviewPolicy {
            approval_valid_days: deps.config.approval_valid_days,
        },
        &deps.lint,
    );
    let mut seen = std::collections::BTreeSet::new();
    let mut first = None;
    for step in steps {
        first.get_or_insert(step);
        if seen.insert((step.template_id.as_str(), step.template_version)) {
            let _ = library
                .sendable_cached(
                    &deps.warm.templates,
                    &step.template_id,
                    step.template_version,
                    now,
                )
                .await;
        }
    }
    if let Some(step) = first {
        let store = deps.store.as_ref();
        let _ = deps.warm.experiments.running(store).await;
        let _ = deps.warm.pauses.paused(store, step).await;
    }
}

/// The text a step sends: only the published, approved version it pins,
/// rendered with its variables and the program's, then linted again
/// (values can add words, links and length).
pub(crate) async fn render(
    step: &Step,
    deps: &Deps,
    now: DateTime<Utc>,
) -> Result<Result<(TemplateVersion, String), RenderRefusal>, DispatchError> {
    let library = Library::new(
        deps.store.as_ref(),
        ReviewPolicy {
            approval_valid_days: deps.config.approval_valid_days,
        },
        &deps.lint,
    );
    let template = match library
        .sendable_cached(
            &deps.warm.templates,
            &step.template_id,
            step.template_version,
            now,
        )
        .await?
    {
        Ok(stored) => stored.version,
        Err((rule_id, reason)) => {
            return Ok(Err((
                vec![rule_id.to_owned()],
                vec![RuleOutcome::new(
                    rule_id,
                    REVIEW_VERSION,
                    Verdict::Fail,
                    reason,
                )],
            )));
        }
    };
    let rendered = match deps.config.program(Some(&step.program)) {
        Some(p) => {
            let mut values = step.variables.clone();
            values.insert("program".to_owned(), p.name.clone());
            values.insert("help_contact".to_owned(), p.support_contact.clone());
            values.insert("frequency".to_owned(), p.frequency.clone());
            template.render(&values).map_err(|e| e.to_string())
        }
        None => Err("the step's program is not configured".to_owned()),
    };
    let body = match rendered {
        Ok(b) => b,
        Err(reason) => {
            return Ok(Err((
                vec!["template.render".to_owned()],
                vec![RuleOutcome::new(
                    "template.render",
                    LINT_VERSION,
                    Verdict::Fail,
                    reason,
                )],
            )));
        }
    };
    let findings = lint_rendered(&template, &body, &deps.lint);
    if has_errors(&findings) {
        let rules: Vec<RuleOutcome> = findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .map(|f| {
                RuleOutcome::new(
                    f.rule.clone(),
                    LINT_VERSION,
                    Verdict::Fail,
                    f.message.clone(),
                )
            })
            .collect();
        let mut reasons: Vec<String> = rules.iter().map(|r| r.id.to_string()).collect();
        reasons.dedup();
        return Ok(Err((reasons, rules)));
    }
    Ok(Ok((template, body)))
}

pub(crate) fn send_request(
    step: &Step,
    contact: &Contact,
    template: Option<&TemplateVersion>,
    body: &str,
    deps: &Deps,
    now: DateTime<Utc>,
) -> SendRequest {
    let mut request =
        optline_episodes::request_for(step, contact, deps.config.program(Some(&step.program)), now);
    if let Some(t) = template {
        request.category = t.category.clone();
        request.class = t.class;
    }
    request.body = Some(body.to_owned());
    request
}
