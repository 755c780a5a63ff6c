//! A simulated month on the local stack: thousands of episodes with
//! synthetic responses, through the real handlers (consent-api, ehr-events,
//! sweep, dispatch, inbound webhooks, delivery reports, the outbox drain).
//!
//! Each booking day, new patients give consent on a web form and the EHR
//! books their appointment three days out; the reminder goes out at 10:00
//! local time, the follow-up for non-responders a day before. Patients
//! answer by the arm of the experiment their text carried (confirm,
//! reschedule, STOP, something else), carriers report delivery, and the
//! EHR reports each appointment fulfilled or missed. Every night the drain
//! counts the day's facts and checks the experiment's guardrail.
//!
//! The experiment splits `appointment_reminder` three ways: `a` the
//! standard wording (v1), `b` a clearer one (v2, more confirmations) and
//! `c` a pushy one (v3: almost a third of its readers reply STOP), with a 10% holdout who keep
//! the standard wording. The guardrail stops `c`; `b` wins on
//! confirmations.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures_util::StreamExt;
use optline_delivery::Outcome;
use optline_policy::template::review::Action;
use optline_ports::{DeliveryUpdate, StepId, StepStore};
use serde_json::json;

use crate::{fixtures, reviewer_for, signed_ehr_request, twilio_inbound_request, Harness};

/// How big a month.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Booking days.
    pub days: u32,
    /// New episodes each booking day.
    pub episodes_per_day: u32,
    /// The random seed (the same seed, the same month).
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            days: 30,
            episodes_per_day: 100,
            seed: 7,
        }
    }
}

/// The experiment the simulation runs.
pub const EXPERIMENT: &str = "reminder-wording";

/// The first booking day: Monday 2026-11-02, 08:00 in New York.
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 13, 0, 0)
        .single()
        .unwrap_or_default()
}

/// What the month did, as the simulation saw it.
#[derive(Debug, Default, Clone)]
pub struct Month {
    /// Lines for people.
    pub lines: Vec<String>,
    /// Texts sent, by step.
    pub sent: BTreeMap<String, String>,
    /// Replies sent, by kind.
    pub replies: BTreeMap<String, u64>,
    /// Appointments concluded, by status.
    pub concluded: BTreeMap<String, u64>,
    /// The last day anything happened.
    pub end: DateTime<Utc>,
}

/// SplitMix64: a small, seeded generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A fictional US number (555-01xx) per patient.
fn phone(n: u32) -> String {
    const AREAS: [u32; 12] = [201, 202, 203, 205, 206, 207, 208, 209, 210, 212, 213, 214];
    let area = AREAS[(n / 100) as usize % AREAS.len()];
    let repeat = n / (100 * AREAS.len() as u32);
    format!("+1{area}{}01{:02}", 555 - repeat.min(300), n % 100)
}

/// How people answer a text of an arm: (confirm, reschedule, stop, other).
fn answers(arm: Option<&str>, follow_up: bool) -> [f64; 4] {
    let base = match arm.and_then(|a| a.rsplit('/').next()) {
        Some("b") => [0.66, 0.05, 0.01, 0.04],
        Some("c") => [0.42, 0.05, 0.30, 0.05],
        _ => [0.40, 0.05, 0.01, 0.04],
    };
    if follow_up {
        base.map(|p| p * 0.5)
    } else {
        base
    }
}

/// Publishes a new version of `appointment_reminder` with `body`, approved
/// by the people its tier names; gives its number.
async fn publish_variant(h: &Harness, body: &str, reason: &str, at: DateTime<Utc>) -> u32 {
    let lint = optline_policy::template::lint::LintConfig::embedded().expect("lint table");
    let library = optline_library::Library::new(
        h.store.as_ref(),
        optline_policy::template::review::ReviewPolicy::default(),
        lint,
    );
    let v1 = library
        .get("appointment_reminder", 1, at)
        .await
        .expect("the seeded reminder");
    let t = &v1.stored.version;
    let draft = optline_library::Draft {
        id: t.id.clone(),
        program: t.program.clone(),
        purpose: t.purpose.clone(),
        category: t.category.clone(),
        class: t.class,
        locale: t.locale.clone(),
        body: body.to_owned(),
        variables: t.variables.clone(),
        confirm_codes: t.confirm_codes.clone(),
        reschedule_codes: t.reschedule_codes.clone(),
        healthcare_exempt: t.healthcare_exempt,
        recurring: t.recurring,
        segment_budget: t.segment_budget,
        change_reason: reason.to_owned(),
    };
    // Rae writes it; the people its tier names approve; Olu publishes.
    let author = h.actor("rae.desk").await;
    let ops = h.actor("olu.ops").await;
    let created = library.create(draft, &author, at).await.expect("a draft");
    let version = created.stored.version.version;
    let submitted = library
        .act(&t.id, version, &Action::Submit, &author, at)
        .await
        .expect("submitted");
    for role in submitted.missing_approvals.clone() {
        let reviewer = h.actor(reviewer_for(role)).await;
        library
            .act(&t.id, version, &Action::Approve { role }, &reviewer, at)
            .await
            .expect("approved");
    }
    library
        .act(&t.id, version, &Action::Publish, &ops, at)
        .await
        .expect("published");
    version
}

/// Sweeps and dispatches until the queue is empty at `now`; gives each
/// text sent (step id, carrier message id).
async fn send_due(h: &Harness, now: DateTime<Utc>) -> Vec<(StepId, String)> {
    let _ = optline_sweep::sweep(&h.sweep(), now).await;
    let mut sent = Vec::new();
    loop {
        let event = h.receive_dispatch_batch(10).await;
        if event.records.is_empty() {
            break;
        }
        let steps: HashMap<String, StepId> = event
            .records
            .iter()
            .filter_map(|r| {
                let body: serde_json::Value = serde_json::from_str(r.body.as_deref()?).ok()?;
                let id = StepId::parse(body["step_id"].as_str()?).ok()?;
                Some((r.message_id.clone()?, id))
            })
            .collect();
        let handled = optline_dispatch::dispatch_batch(&event, &h.dispatch(), now).await;
        let mut failed = Vec::new();
        for one in handled {
            match one.result {
                Ok(Outcome::Sent(carrier)) => {
                    if let Some(step) = steps.get(&one.message_id) {
                        sent.push((step.clone(), carrier));
                    }
                }
                Ok(_) => {}
                Err(_) => failed.push(one.message_id),
            }
        }
        h.delete_messages(&event, &failed).await;
        if !failed.is_empty() {
            break;
        }
    }
    // In a stable order, so the same seed gives the same month however
    // the concurrent sends finished.
    sent.sort();
    sent
}

/// One episode's patient and appointment.
#[derive(Debug, Clone)]
struct Episode {
    patient: String,
    phone: String,
    appointment: String,
    start: DateTime<Utc>,
    confirmed: bool,
    rescheduled: bool,
}

/// Requests in flight at once: the emulator answers a few at a time.
const CONCURRENCY: usize = 6;

/// One patient: a contact, a consent from the web form, a booking three
/// days out.
async fn book(h: &Harness, n: u32, morning: DateTime<Utc>) -> Option<Episode> {
    let patient = format!("sim-{n:05}");
    let phone = phone(n);
    let created = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts",
            Some(json!({"id": patient, "phone": phone, "time_zone": "America/New_York", "address_state": "NY"})),
        ),
        &h.consent_api(),
        morning - Duration::hours(2),
    )
    .await;
    if !created.status().is_success() {
        return None;
    }
    optline_consent_api::handle(
        h.api_request(
            "POST",
            &format!("/contacts/{patient}/consent"),
            Some(json!({
                "action": "grant",
                "categories": ["appointments"],
                "kind": "express",
                "channel": "web_form",
                "source_system": "portal",
                "source_record_id": format!("form-{n}"),
                "disclosure_text": "I agree to receive appointment reminders by text from Riverside Clinic. Up to 3 msgs per appointment. Msg & data rates may apply. Reply STOP to opt out, HELP for help.",
                "disclosure_version": "2026-10",
                "evidence": {"form_id": "intake-v3"}
            })),
        ),
        &h.consent_api(),
        morning - Duration::hours(2),
    )
    .await;
    let appointment = format!("sim-appt-{n:05}");
    let start = morning + Duration::days(3) + Duration::hours(2);
    let booked = optline_ehr_events::handle(
        signed_ehr_request(
            "/ehr/fhir/Appointment",
            "application/fhir+json",
            &fixtures::appointment(
                &appointment,
                "booked",
                &start.to_rfc3339(),
                None,
                Some(&format!("Patient/{patient}")),
            )
            .to_string(),
            morning.timestamp(),
        ),
        &h.ehr_events(),
        morning,
    )
    .await;
    booked.status().is_success().then_some(Episode {
        patient,
        phone,
        appointment,
        start,
        confirmed: false,
        rescheduled: false,
    })
}

/// What the carrier and the recipient of one text do.
#[derive(Debug, Clone)]
struct Response {
    index: usize,
    carrier: String,
    patient: String,
    phone: String,
    delivery: f64,
    answers: [f64; 4],
    answer: f64,
}

/// The carrier's report, then the recipient's answer (if any).
async fn respond(
    h: &Harness,
    plan: Response,
    day: u32,
    at: DateTime<Utc>,
) -> (String, Option<&'static str>) {
    let (status, code) = if plan.delivery < 0.96 {
        ("delivered", None)
    } else if plan.delivery < 0.98 {
        ("undelivered", Some("30006"))
    } else {
        ("undelivered", Some("30003"))
    };
    let _ = optline_delivery::reports::record_delivery(
        h.store.as_ref(),
        &DeliveryUpdate {
            carrier_message_id: plan.carrier.clone(),
            status: status.to_owned(),
            error_code: code.map(str::to_owned),
            at,
        },
        None,
        at,
    )
    .await;
    if code.is_some() {
        return (plan.patient, None);
    }
    let p = plan.answers;
    let roll = plan.answer;
    let reply = if roll < p[0] {
        ("confirm", "C")
    } else if roll < p[0] + p[1] {
        ("reschedule", "R")
    } else if roll < p[0] + p[1] + p[2] {
        ("stop", "STOP")
    } else if roll < p[0] + p[1] + p[2] + p[3] {
        ("other", "who is this?")
    } else {
        return (plan.patient, None);
    };
    let answered = optline_inbound::handle(
        twilio_inbound_request(
            &format!("SM{:032x}", (u128::from(day) << 64) | plan.index as u128),
            &plan.phone,
            reply.1,
        ),
        &h.inbound(),
        at + Duration::minutes(8),
    )
    .await;
    (
        plan.patient,
        answered.status().is_success().then_some(reply.0),
    )
}

/// The EHR reports an appointment fulfilled or missed, an hour after it
/// started.
async fn conclude(h: &Harness, episode: Episode, roll: f64) -> Option<&'static str> {
    let p_show = if episode.confirmed { 0.95 } else { 0.78 };
    let status = if roll < p_show { "fulfilled" } else { "noshow" };
    let at = episode.start + Duration::hours(1);
    let done = optline_ehr_events::handle(
        signed_ehr_request(
            "/ehr/fhir/Appointment",
            "application/fhir+json",
            &fixtures::appointment(
                &episode.appointment,
                status,
                &episode.start.to_rfc3339(),
                None,
                Some(&format!("Patient/{}", episode.patient)),
            )
            .to_string(),
            at.timestamp(),
        ),
        &h.ehr_events(),
        at,
    )
    .await;
    done.status().is_success().then_some(status)
}

/// Runs the month on `h`'s stack.
pub async fn run(h: &Harness, options: Options) -> Month {
    let mut month = Month::default();
    let mut rng = Rng(options.seed);
    let t0 = start();
    let prepared = t0 - Duration::days(1);

    // The wordings, each approved by the people its tier names.
    let clearer = publish_variant(
        h,
        "{{program}}: your appointment is on {{date}} at {{time}}. Reply C to confirm it or R to pick another time. Reply STOP to opt out.",
        "clearer call to action",
        prepared,
    )
    .await;
    let pushy = publish_variant(
        h,
        "{{program}}: IMPORTANT! Appointment {{date}} at {{time}}. You MUST reply C now, or R to reschedule. Reply STOP to opt out.",
        "urgent wording",
        prepared,
    )
    .await;
    let started = optline_templates::handle(
        h.request_as(
            "ana.compliance",
            "POST",
            "/experiments",
            Some(json!({
                "id": EXPERIMENT,
                "template_id": "appointment_reminder",
                "arms": [
                    {"name": "a", "version": 1},
                    {"name": "b", "version": clearer},
                    {"name": "c", "version": pushy}
                ],
                "holdout_basis_points": 1000,
                "primary_metric": "confirmation",
                "min_sample_per_arm": 50,
                "guardrail": {"alpha": 0.05, "tau": 0.1, "min_sends": 50}
            })),
        ),
        &h.templates(),
        prepared,
    )
    .await;
    month.lines.push(format!(
        "experiment {EXPERIMENT} started by Ana (compliance) -> {}: arms a=v1, b=v{clearer}, c=v{pushy}, 10% holdout",
        started.status()
    ));

    let mut episodes: Vec<Episode> = Vec::new();
    let mut stopped = std::collections::BTreeSet::new();
    let mut n = 0u32;
    // The last bookings' appointments conclude three days later.
    let total_days = options.days + 3;
    for day in 0..total_days {
        let morning = t0 + Duration::days(i64::from(day));
        // New patients and bookings, a few at a time (as a front desk
        // and an EHR would: independent people).
        if day < options.days {
            let first = n + 1;
            n += options.episodes_per_day;
            let booked: Vec<Option<Episode>> = futures_util::stream::iter(first..=n)
                .map(|k| book(h, k, morning))
                .buffered(CONCURRENCY)
                .collect()
                .await;
            episodes.extend(booked.into_iter().flatten());
        }

        // 10:00 in New York: reminders and follow-ups go out.
        let ten = morning + Duration::hours(2) + Duration::minutes(1);
        let sent = send_due(h, ten).await;
        let ids: Vec<StepId> = sent.iter().map(|(s, _)| s.clone()).collect();
        let steps = h.store.steps(&ids).await.unwrap_or_default();
        // What each recipient's carrier and the recipient do, drawn in
        // order so the same seed gives the same month.
        let mut plans = Vec::new();
        for (i, (step_id, carrier)) in sent.iter().enumerate() {
            month
                .sent
                .insert(step_id.as_str().to_owned(), carrier.clone());
            let delivery = rng.next();
            let answer = rng.next();
            let Some(step) = steps.get(step_id) else {
                continue;
            };
            let Some(episode) = episodes
                .iter()
                .find(|e| e.patient == step.contact_id.as_str())
            else {
                continue;
            };
            let follow_up = step_id.as_str().ends_with("-followup");
            plans.push(Response {
                index: i,
                carrier: carrier.clone(),
                patient: episode.patient.clone(),
                phone: episode.phone.clone(),
                delivery,
                answers: answers(step.arm.as_deref(), follow_up),
                answer,
            });
        }
        let answered: Vec<(String, Option<&'static str>)> = futures_util::stream::iter(plans)
            .map(|plan| respond(h, plan, day, ten + Duration::minutes(2)))
            .buffered(CONCURRENCY)
            .collect()
            .await;
        for (patient, kind) in answered {
            let Some(kind) = kind else { continue };
            *month.replies.entry(kind.to_owned()).or_default() += 1;
            if let Some(episode) = episodes.iter_mut().find(|e| e.patient == patient) {
                episode.confirmed |= kind == "confirm";
                episode.rescheduled |= kind == "reschedule";
            }
        }

        // Appointments that started today conclude an hour later.
        let concluding: Vec<(Episode, f64)> = episodes
            .iter()
            .filter(|e| e.start.date_naive() == morning.date_naive() && !e.rescheduled)
            .map(|e| (e.clone(), rng.next()))
            .collect();
        let concluded: Vec<Option<&'static str>> = futures_util::stream::iter(concluding)
            .map(|(episode, roll)| conclude(h, episode, roll))
            .buffered(CONCURRENCY)
            .collect()
            .await;
        for status in concluded.into_iter().flatten() {
            *month.concluded.entry(status.to_owned()).or_default() += 1;
        }

        // Overnight: the drain counts the day and checks the guardrail.
        let drained = h.drain_outbox().await;
        if !drained.batch_item_failures.is_empty() {
            month
                .lines
                .push(format!("day {day}: the drain asked for a retry"));
            h.drain_outbox().await;
        }
        month.end = morning + Duration::hours(12);
        if let Ok(Some(experiment)) =
            optline_ports::ExperimentStore::experiment(h.store.as_ref(), EXPERIMENT).await
        {
            for arm in &experiment.arms {
                if let Some(stop) = &arm.stopped {
                    if stopped.insert(arm.name.clone()) {
                        month.lines.push(format!(
                            "day {} ({}): the guardrail stopped arm {} (v{}): {}",
                            day + 1,
                            morning.date_naive(),
                            arm.name,
                            arm.version,
                            stop.reason
                        ));
                    }
                }
            }
        }
    }
    month
}
