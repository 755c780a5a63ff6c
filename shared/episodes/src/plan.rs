//! Applying an EHR event: read the steps, the contact and the episode's
//! outcomes; decide what the plan becomes; commit it once.
//!
//! Step ids derive from the subject ([`crate::subject_of`]: the verified
//! source, the patient and the source's id), so a replayed event plans nothing new. The
//! source's version orders changes: a newer booking reschedules a pending
//! step, an older one arriving late is stale, and a cancellation that
//! arrives before its booking leaves a cancelled step in its place so the
//! late booking plans nothing. Anything already on its way or done stays as
//! it is.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, Utc};
use optline_library::Library;
use optline_policy::decision::Urgency;
use optline_policy::template::review::ReviewPolicy;
use optline_ports::{
    Audience, Commit, Committed, Contact, ContactId, EpisodeOutcome, Marker, OutboxEvent, Step,
    StepExpect, StepId, StepStatus, Tally, Write, COMMIT_ATTEMPTS,
};

use crate::intake::hl7;
use crate::intake::normalized::Effect;
use crate::{
    subject_of, Applied, AppointmentEvent, AppointmentStatus, EpisodeError, Episodes, Start,
    TaskEvent,
};

/// How long before the appointment the reminder is due, unless the
/// program says otherwise (`reminder_lead_hours`).
pub const REMINDER_LEAD: Duration = Duration::hours(72);

/// How long before the appointment the non-responder follow-up is due,
/// unless the program says otherwise (`follow_up_lead_hours`).
pub const FOLLOW_UP_LEAD: Duration = Duration::hours(24);

/// How far back an episode's first text is looked for (time to outcome).
const FIRST_TEXT_HORIZON_DAYS: i64 = 90;

/// A program's appointment cadence: (reminder lead, follow-up lead; `None`
/// plans no follow-up).
fn cadence(episodes: Episodes<'_>, program: &str) -> (Duration, Option<Duration>) {
    match episodes.config.program(Some(program)) {
        Some(p) => (
            Duration::hours(i64::from(p.reminder_lead_hours)),
            (p.follow_up_lead_hours > 0)
                .then(|| Duration::hours(i64::from(p.follow_up_lead_hours))),
        ),
        None => (REMINDER_LEAD, Some(FOLLOW_UP_LEAD)),
    }
}

/// Whether `incoming` is known to be older than or the same as `stored`.
fn stale(incoming: Option<&str>, stored: Option<&str>) -> bool {
    matches!((incoming, stored), (Some(i), Some(s)) if i <= s)
}

/// Whether `incoming` is known to be newer than `stored`.
fn newer(incoming: Option<&str>, stored: Option<&str>) -> bool {
    matches!((incoming, stored), (Some(i), Some(s)) if i > s)
}

/// A step to plan, before its template version is pinned.
#[derive(Clone)]
struct Planned {
    step_id: StepId,
    template: &'static str,
    variables: BTreeMap<String, String>,
    subject: String,
    due_at: DateTime<Utc>,
    expires_at: Option<DateTime<Utc>>,
    source_event: String,
    source_version: Option<String>,
    audience: Audience,
}

/// The writes and the answer of one decision.
struct Decision {
    writes: Vec<Write>,
    applied: Applied,
}

/// Applies an appointment change (see the module docs).
pub async fn apply_appointment(
    episodes: Episodes<'_>,
    event: &AppointmentEvent,
    now: DateTime<Utc>,
) -> Result<Applied, EpisodeError> {
    if !crate::source_id_ok(&event.appointment_id) {
        return Err(EpisodeError::Invalid(
            "the appointment id is not 1 to 64 characters of A-Za-z0-9._:-".to_owned(),
        ));
    }
    let subject = subject_of(
        "appt",
        episodes.origin,
        &event.patient,
        &event.appointment_id,
    );
    let reminder = step_id(&format!("{subject}-reminder"))?;
    let follow_up = step_id(&format!("{subject}-followup"))?;
    let binding = format!("appt#{}#{}", episodes.origin, event.appointment_id);
    for _ in 0..COMMIT_ATTEMPTS {
        let mut writes = Vec::new();
        // The appointment's final status is the episode's outcome.
        let kind = match event.status {
            AppointmentStatus::Fulfilled => Some("fulfilled"),
            AppointmentStatus::NoShow => Some("noshow"),
            _ => None,
        };
        if let Some(kind) = kind {
            writes.extend(
                conclude(
                    episodes,
                    &subject,
                    kind,
                    &event.patient,
                    &reminder,
                    &event.source,
                    now,
                )
                .await?,
            );
        }
        let decision = match &event.status {
            AppointmentStatus::Booked(start) => {
                book(episodes, event, start, &subject, &reminder, &follow_up, now).await?
            }
            AppointmentStatus::Cancelled | AppointmentStatus::NoShow => {
                cancel(
                    episodes,
                    &[follow_up.clone(), reminder.clone()],
                    &event.patient,
                    event.version.as_deref(),
                    now,
                )
                .await?
            }
            AppointmentStatus::Fulfilled | AppointmentStatus::NothingToPlan => Decision {
                writes: Vec::new(),
                applied: Applied::NothingToPlan,
            },
        };
        writes.extend(decision.writes);
        // The appointment belongs to the patient its source first named
        // (checked after the decision, so a malformed or unknown-patient
        // event is refused for that first).
        match episodes.store.binding(&binding).await? {
            Some(patient) if patient != event.patient.as_str() => {
                return Err(EpisodeError::Conflict(
                    "this appointment belongs to another patient at its source; \
                     a change of patient is a new appointment"
                        .to_owned(),
                ))
            }
            Some(_) => {}
            // Bound with the decision (conditional: of two events naming
            // different patients at once, one reads again and is refused).
            None if writes.is_empty() => {}
            None => writes.push(Write::Binding {
                key: binding.clone(),
                value: event.patient.as_str().to_owned(),
            }),
        }
        if commit(episodes, &event.marker, writes, now).await? {
            return Ok(decision.applied);
        }
    }
    Err(EpisodeError::Busy)
}

/// Applies a normalized task event: plans its reminder, or cancels it
/// (a completion is the episode's outcome too).
pub async fn apply_task(
    episodes: Episodes<'_>,
    event: &TaskEvent,
    now: DateTime<Utc>,
) -> Result<Applied, EpisodeError> {
    let prefix = match event.effect {
        Effect::Plan { prefix, .. } | Effect::Cancel { prefix } => prefix,
    };
    let subject = subject_of(prefix, episodes.origin, &event.patient, &event.subject);
    let step = step_id(&format!("{subject}-reminder"))?;
    for _ in 0..COMMIT_ATTEMPTS {
        let decision = match event.effect {
            Effect::Cancel { .. } => {
                let mut writes = Vec::new();
                // A completion is the episode's outcome; a cancellation is not.
                if !event.kind.ends_with(".cancelled") {
                    writes.extend(
                        conclude(
                            episodes,
                            &subject,
                            "completed",
                            &event.patient,
                            &step,
                            &event.source,
                            now,
                        )
                        .await?,
                    );
                }
                let mut decision = cancel(
                    episodes,
                    std::slice::from_ref(&step),
                    &event.patient,
                    event.version.as_deref(),
                    now,
                )
                .await?;
                writes.append(&mut decision.writes);
                Decision {
                    writes,
                    applied: decision.applied,
                }
            }
            Effect::Plan {
                template, lifetime, ..
            } => {
                let contact = known_contact(episodes, &event.patient).await?;
                let link = event.link.clone().unwrap_or_default();
                let due = event.due_at.unwrap_or(now).max(now);
                let expires_at = Some(event.expires_at.unwrap_or(due + lifetime));
                if expires_at.is_some_and(|e| e <= due) {
                    return Err(EpisodeError::Unprocessable(
                        "the event has already expired".to_owned(),
                    ));
                }
                let planned = Planned {
                    step_id: step.clone(),
                    template,
                    variables: BTreeMap::from([("link".to_owned(), link)]),
                    subject: subject.clone(),
                    due_at: due,
                    expires_at,
                    source_event: event.source.clone(),
                    source_version: event.version.clone(),
                    audience: Audience::Everyone,
                };
                let step = pin(episodes, planned, &contact, now).await?;
                let current = episodes.store.step(&step.id).await?;
                plan_step(step, current)
            }
        };
        if commit(episodes, &event.marker, decision.writes, now).await? {
            return Ok(decision.applied);
        }
    }
    Err(EpisodeError::Busy)
}

fn step_id(raw: &str) -> Result<StepId, EpisodeError> {
    StepId::parse(raw).map_err(|e| EpisodeError::Invalid(e.to_string()))
}

/// Commits a decision with the message's marker; `true` when done (or
/// there was nothing to write, or the message was handled before).
async fn commit(
    episodes: Episodes<'_>,
    marker: &str,
    writes: Vec<Write>,
    now: DateTime<Utc>,
) -> Result<bool, EpisodeError> {
    if writes.is_empty() {
        return Ok(true);
    }
    let mut commit = Commit::for_trigger(Marker {
        key: format!("ehr:{}:{marker}", episodes.origin),
        at: now,
        answer: None,
    });
    commit.writes = writes;
    Ok(match episodes.store.commit(commit).await? {
        Committed::Done(_) | Committed::Duplicate(_) => true,
        Committed::Conflict(reason) => {
            tracing::info!(%reason, "the episode moved under the event; reading it again");
            false
        }
    })
}

/// The contact an event names.
async fn known_contact(episodes: Episodes<'_>, id: &ContactId) -> Result<Contact, EpisodeError> {
    episodes
        .store
        .contact(id)
        .await?
        .ok_or(EpisodeError::UnknownContact)
}

/// An episode's outcome (once) and its outbox event, with the time since
/// the episode's first text.
async fn conclude(
    episodes: Episodes<'_>,
    subject: &str,
    kind: &str,
    contact: &ContactId,
    step: &StepId,
    source: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Write>, EpisodeError> {
    let recorded = episodes
        .store
        .episode_outcomes(&[subject.to_owned()])
        .await?;
    if recorded
        .get(subject)
        .is_some_and(|o| o.iter().any(|o| o.kind == kind))
    {
        return Ok(Vec::new());
    }
    let first = episodes
        .store
        .send_history(contact, now - Duration::days(FIRST_TEXT_HORIZON_DAYS))
        .await?
        .into_iter()
        .filter(|s| s.subject == subject)
        .min_by_key(|s| s.at);
    let first_text = first.as_ref().map(|s| s.at);
    // Counted against the episode's first text; an episode never texted
    // counts under its contact's program.
    let program = match &first {
        Some(sent) => sent.program.clone(),
        None => episodes
            .store
            .contact(contact)
            .await?
            .map_or_else(|| optline_ports::NO_KEY.to_owned(), |c| c.program),
    };
    let outcome = EpisodeOutcome {
        subject: subject.to_owned(),
        kind: kind.to_owned(),
        at: now,
        contact_id: contact.clone(),
        step_id: Some(step.clone()),
        source: source.to_owned(),
        after_first_text_seconds: first_text.map(|at| (now - at).num_seconds()),
    };
    Ok(vec![
        Write::Outbox(OutboxEvent::outcome(&outcome)),
        Write::Tally(Tally::outcome(&outcome, first.as_ref(), &program)),
        Write::Outcome(outcome),
    ])
}

/// A booking: the reminder (with the confirm and reschedule prompt) and,
/// for people who have not answered it, one follow-up. Both expire at the
/// appointment. The answer is the reminder's.
async fn book(
    episodes: Episodes<'_>,
    event: &AppointmentEvent,
    start: &Start,
    subject: &str,
    reminder: &StepId,
    follow_up: &StepId,
    now: DateTime<Utc>,
) -> Result<Decision, EpisodeError> {
    let contact = known_contact(episodes, &event.patient).await?;
    let facility = program_zone(episodes, &contact.program);
    let start = match start {
        Start::At(at) => *at,
        Start::Hl7(raw) => {
            // HL7 v2: a time without an offset is the sending facility's
            // local time; the contact's own zone only when the program
            // states none.
            let zone = facility.or_else(|| {
                contact
                    .time_zone
                    .as_deref()
                    .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
            });
            hl7::parse_dtm(raw, zone).map_err(|e| EpisodeError::Invalid(e.0))?
        }
    };
    let start_utc = start.with_timezone(&Utc);
    if start_utc <= now {
        return Err(EpisodeError::Unprocessable(
            "the appointment has already started".to_owned(),
        ));
    }
    let (date, time) = display_time(&contact, facility, start);
    let (reminder_lead, follow_up_lead) = cadence(episodes, &contact.program);
    let planned = Planned {
        step_id: reminder.clone(),
        template: "appointment_reminder",
        variables: BTreeMap::from([("date".to_owned(), date), ("time".to_owned(), time)]),
        subject: subject.to_owned(),
        due_at: (start_utc - reminder_lead).max(now),
        expires_at: Some(start_utc),
        source_event: event.source.clone(),
        source_version: event.version.clone(),
        audience: Audience::Everyone,
    };
    let follow_up = follow_up_lead
        .map(|lead| (start_utc - lead).max(now))
        .filter(|due| *due > planned.due_at)
        .map(|due| Planned {
            step_id: follow_up.clone(),
            template: "appointment_follow_up",
            due_at: due,
            audience: Audience::NonResponders,
            ..planned.clone()
        });
    let mut ids = vec![planned.step_id.clone()];
    ids.extend(follow_up.iter().map(|f| f.step_id.clone()));
    let current = episodes.store.steps(&ids).await?;
    let step = pin(episodes, planned, &contact, now).await?;
    let mut decision = plan_step(step, current.get(reminder).cloned());
    if let Some(follow_up) = follow_up {
        let step = pin(episodes, follow_up, &contact, now).await?;
        let id = step.id.clone();
        let more = plan_step(step, current.get(&id).cloned());
        decision.writes.extend(more.writes);
    }
    Ok(decision)
}

/// Pins the newest published version of the step's template; a deployment
/// without one cannot plan, and says so.
async fn pin(
    episodes: Episodes<'_>,
    planned: Planned,
    contact: &Contact,
    now: DateTime<Utc>,
) -> Result<Step, EpisodeError> {
    let library = Library::new(
        episodes.store,
        ReviewPolicy {
            approval_valid_days: episodes.config.approval_valid_days,
        },
        episodes.lint,
    );
    let template = library
        .latest_sendable_cached(planned.template, now, episodes.templates)
        .await?
        .ok_or_else(|| EpisodeError::NoTemplate(planned.template.to_owned()))?
        .version;
    Ok(Step {
        id: planned.step_id,
        contact_id: contact.id.clone(),
        program: contact.program.clone(),
        category: template.category.clone(),
        class: template.class,
        purpose: template.purpose.clone(),
        template_id: template.id.clone(),
        template_version: template.version,
        variables: planned.variables,
        subject: planned.subject,
        due_at: planned.due_at,
        expires_at: planned.expires_at,
        // What the template is for decides both: an appointment reminder
        // is time-sensitive, a statement is not; a version marked for the
        // FCC healthcare exemption brings its caps and content rules.
        urgency: optline_policy::decision::urgency_for_purpose(&template.purpose),
        healthcare_exempt: template.healthcare_exempt,
        status: StepStatus::Pending,
        source_event: Some(planned.source_event),
        source_version: planned.source_version,
        arm: None,
        segments: None,
        audience: planned.audience,
    })
}

/// What a planned step does to the plan already there: a booking creates
/// it; a newer booking with another time reschedules a pending one; a
/// booking after a cancellation brings it back only if the source says it
/// is newer; anything already on its way or done stays as it is.
fn plan_step(step: Step, current: Option<Step>) -> Decision {
    let planned = |result: &'static str, step: Step| Applied::Planned {
        result,
        step: Box::new(step),
    };
    let Some(current) = current else {
        return Decision {
            writes: vec![Write::Step {
                step: step.clone(),
                expect: StepExpect::Absent,
            }],
            applied: planned("created", step),
        };
    };
    let incoming = step.source_version.as_deref();
    let stored = current.source_version.as_deref();
    let changed = current.due_at != step.due_at
        || current.expires_at != step.expires_at
        || current.variables != step.variables;
    let (from, result) = match current.status {
        StepStatus::Cancelled if newer(incoming, stored) => (StepStatus::Cancelled, "rebooked"),
        StepStatus::Cancelled => {
            return Decision {
                writes: Vec::new(),
                applied: planned("cancelled", current),
            }
        }
        StepStatus::Pending if stale(incoming, stored) => {
            return Decision {
                writes: Vec::new(),
                applied: planned("stale", current),
            }
        }
        StepStatus::Pending if changed => (StepStatus::Pending, "rescheduled"),
        _ => {
            return Decision {
                writes: Vec::new(),
                applied: planned("unchanged", current),
            }
        }
    };
    Decision {
        writes: vec![Write::Step {
            step: step.clone(),
            expect: StepExpect::In(vec![from]),
        }],
        applied: planned(result, step),
    }
}

/// Cancels `steps` (an appointment's follow-up goes with its reminder; the
/// answer is the last step's): a step not planned yet is left cancelled in
/// its place, so the booking that arrives later plans nothing; a step
/// whose plan is newer than the cancellation stays.
async fn cancel(
    episodes: Episodes<'_>,
    steps: &[StepId],
    contact: &ContactId,
    version: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Decision, EpisodeError> {
    let current = episodes.store.steps(steps).await?;
    let mut writes = Vec::new();
    let mut applied = Applied::Cancelled {
        cancelled: Vec::new(),
        before_booking: false,
        stale: false,
    };
    for id in steps {
        let mut cancelled = Vec::new();
        let mut before_booking = false;
        let mut is_stale = false;
        match current.get(id) {
            None => {
                writes.push(Write::Step {
                    step: tombstone(id, contact, version, now),
                    expect: StepExpect::Absent,
                });
                before_booking = true;
            }
            Some(step) if stale(version, step.source_version.as_deref()) => is_stale = true,
            Some(step) if matches!(step.status, StepStatus::Pending | StepStatus::Queued) => {
                // The step keeps the cancellation's version, so an older
                // booking that arrives later cannot bring it back. A queued
                // step's message finds it no longer queued and sends nothing.
                writes.push(Write::Step {
                    step: Step {
                        status: StepStatus::Cancelled,
                        source_version: version.map(str::to_owned).or(step.source_version.clone()),
                        arm: None,
                        segments: None,
                        ..step.clone()
                    },
                    expect: StepExpect::In(vec![step.status]),
                });
                cancelled.push(id.clone());
            }
            Some(_) => {}
        }
        applied = Applied::Cancelled {
            cancelled,
            before_booking,
            stale: is_stale,
        };
    }
    Ok(Decision { writes, applied })
}

/// The cancelled step left where a booking has not arrived yet.
fn tombstone(id: &StepId, contact: &ContactId, version: Option<&str>, now: DateTime<Utc>) -> Step {
    Step {
        id: id.clone(),
        contact_id: contact.clone(),
        program: String::new(),
        category: "appointments".to_owned(),
        class: optline_policy::MessageClass::Transactional,
        purpose: "appointment_reminder".to_owned(),
        template_id: "appointment_reminder".to_owned(),
        template_version: 0,
        variables: BTreeMap::new(),
        subject: id.as_str().to_owned(),
        due_at: now,
        expires_at: Some(now),
        urgency: Urgency::TimeSensitive,
        healthcare_exempt: false,
        status: StepStatus::Cancelled,
        source_event: Some("cancelled before its booking arrived".to_owned()),
        source_version: version.map(str::to_owned),
        arm: None,
        segments: None,
        audience: Audience::Everyone,
    }
}

/// The appointment's date and time as the patient will read them: in their
/// zone, else at the source's offset.
/// The program's facility zone, when it states one.
fn program_zone(episodes: Episodes<'_>, program: &str) -> Option<chrono_tz::Tz> {
    episodes
        .config
        .program(Some(program))
        .and_then(|p| p.time_zone.as_deref())
        .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
}

/// The appointment's date and time as the patient reads them: in their own
/// zone, else the facility's, else at the offset the EHR gave.
fn display_time(
    contact: &Contact,
    facility: Option<chrono_tz::Tz>,
    start: DateTime<FixedOffset>,
) -> (String, String) {
    let local = contact
        .time_zone
        .as_deref()
        .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
        .or(facility)
        .map(|tz| start.with_timezone(&tz).fixed_offset())
        .unwrap_or(start);
    (
        local.format("%a %b %-d").to_string(),
        local.format("%-I:%M %p").to_string(),
    )
}
