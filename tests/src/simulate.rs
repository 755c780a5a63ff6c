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
//! `c` a pushy one (v3, many more opt-outs), with a 10% holdout who keep
//! the standard wording. The guardrail stops `c`; `b` wins on
//! confirmations.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, TimeZone, Utc};
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
        Some("b") => [0.58, 0.05, 0.01, 0.04],
        Some("c") => [0.42, 0.05, 0.15, 0.05],
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
    let ops = h.actor("olu.ops").await;
    let created = library.create(draft, &ops, at).await.expect("a draft");
    let version = created.stored.version.version;
    let submitted = library
        .act(&t.id, version, &Action::Submit, &ops, at)
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
                "min_sample_per_arm": 80,
                "guardrail": {"alpha": 0.05, "tau": 0.05, "min_sends": 100}
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
    let total_days = options.days + 4;
    for day in 0..total_days {
        let morning = t0 + Duration::days(i64::from(day));
        // New patients and bookings.
        if day < options.days {
            for _ in 0..options.episodes_per_day {
                n += 1;
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
                    month
                        .lines
                        .push(format!("contact {patient}: {}", created.status()));
                    continue;
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
                if booked.status().is_success() {
                    episodes.push(Episode {
                        patient,
                        phone,
                        appointment,
                        start,
                        confirmed: false,
                        rescheduled: false,
                    });
                }
            }
        }

        // 10:00 in New York: reminders and follow-ups go out.
        let ten = morning + Duration::hours(2) + Duration::minutes(1);
        let sent = send_due(h, ten).await;
        let ids: Vec<StepId> = sent.iter().map(|(s, _)| s.clone()).collect();
        let steps = h.store.steps(&ids).await.unwrap_or_default();
        for (i, (step_id, carrier)) in sent.iter().enumerate() {
            month
                .sent
                .insert(step_id.as_str().to_owned(), carrier.clone());
            let at = ten + Duration::minutes(2);
            // The carrier's report: most delivered, some not.
            let roll = rng.next();
            let (status, code) = if roll < 0.96 {
                ("delivered", None)
            } else if roll < 0.98 {
                ("undelivered", Some("30006"))
            } else {
                ("undelivered", Some("30003"))
            };
            let _ = optline_delivery::reports::record_delivery(
                h.store.as_ref(),
                &DeliveryUpdate {
                    carrier_message_id: carrier.clone(),
                    status: status.to_owned(),
                    error_code: code.map(str::to_owned),
                    at,
                },
                None,
                at,
            )
            .await;
            if code.is_some() {
                continue;
            }
            // The patient answers.
            let Some(step) = steps.get(step_id) else {
                continue;
            };
            let Some(episode) = episodes
                .iter_mut()
                .find(|e| e.patient == step.contact_id.as_str())
            else {
                continue;
            };
            let follow_up = step_id.as_str().ends_with("-followup");
            let p = answers(step.arm.as_deref(), follow_up);
            let roll = rng.next();
            let reply = if roll < p[0] {
                Some(("confirm", "C"))
            } else if roll < p[0] + p[1] {
                Some(("reschedule", "R"))
            } else if roll < p[0] + p[1] + p[2] {
                Some(("stop", "STOP"))
            } else if roll < p[0] + p[1] + p[2] + p[3] {
                Some(("other", "who is this?"))
            } else {
                None
            };
            let Some((kind, body)) = reply else { continue };
            let answered = optline_inbound::handle(
                twilio_inbound_request(
                    &format!("SM{:032x}", (u128::from(day) << 64) | i as u128),
                    &episode.phone,
                    body,
                ),
                &h.inbound(),
                at + Duration::minutes(8),
            )
            .await;
            if answered.status().is_success() {
                *month.replies.entry(kind.to_owned()).or_default() += 1;
                episode.confirmed |= kind == "confirm";
                episode.rescheduled |= kind == "reschedule";
            }
        }

        // Appointments that started today conclude an hour later.
        let concluded: Vec<Episode> = episodes
            .iter()
            .filter(|e| e.start.date_naive() == morning.date_naive() && !e.rescheduled)
            .cloned()
            .collect();
        for episode in concluded {
            let p_show = if episode.confirmed { 0.95 } else { 0.78 };
            let status = if rng.next() < p_show {
                "fulfilled"
            } else {
                "noshow"
            };
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
            if done.status().is_success() {
                *month.concluded.entry(status.to_owned()).or_default() += 1;
            }
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
