//! The walking skeleton's story, end to end, on the local emulator:
//! consent recorded → appointment event accepted → the sweep enqueues the
//! reminder → dispatch sends it through SNS → the patient replies "Stop
//! please" through a signed Twilio webhook → the opt-out is recorded and
//! confirmed once → the next reminder is suppressed with its reasons → the
//! contact's audit trail verifies.
//!
//! The clock is fixed (a Monday morning in Los Angeles) so the story reads the
//! same every run; every handler takes `now` as an argument.

use chrono::{DateTime, Duration, TimeZone, Utc};
use lambda_http::http::StatusCode;
use optline_dispatch::Outcome;
use optline_ports::{verify_chain, AuditTrail, ContactId, StepStore};
use serde_json::json;

use crate::{body_json, body_text, signed_ehr_request, twilio_inbound_request, Harness};

/// What the story showed, for a test to assert and a person to read.
#[derive(Debug, Default)]
pub struct ScenarioReport {
    /// The narrative, one line per event.
    pub lines: Vec<String>,
    /// Texts SNS delivered to the patient, in order.
    pub texts_sent: Vec<String>,
    /// The TwiML answer to the "C" reply.
    pub confirm_answer: String,
    /// The TwiML answer to the STOP reply.
    pub stop_answer: String,
    /// The TwiML answer to the replayed STOP webhook.
    pub replay_answer: String,
    /// Dispatch outcome of the first reminder.
    pub first_outcome: Option<Outcome>,
    /// Why the second reminder was suppressed (rule ids), by the sweep's
    /// audience rules or by dispatch; empty if it was not.
    pub second_suppressed: Vec<String>,
    /// The details of the rules that failed for it.
    pub second_details: Vec<String>,
    /// Audit records (kind/action) in order.
    pub audit_actions: Vec<String>,
    /// Whether the chain verified.
    pub chain_verified: bool,
    /// Whether the chain checked against the signed anchor and the signed
    /// proof bundle verified offline with the public key alone.
    pub proof_verified: bool,
    /// The story's KPIs from the rollups.
    pub kpis: Option<optline_outcomes::Kpis>,
}

impl ScenarioReport {
    fn say(&mut self, line: impl Into<String>) {
        self.lines.push(line.into());
    }
}

/// The patient in the story.
pub const PATIENT_ID: &str = "pat-1001";
/// Their phone as a front desk might type it.
pub const PATIENT_PHONE_WRITTEN: &str = "(415) 555-2671";
/// The same in E.164.
pub const PATIENT_PHONE: &str = "+14155552671";

/// Monday 2026-12-07 10:00 in Los Angeles.
pub fn story_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 18, 0, 0)
        .single()
        .unwrap_or_default()
}

/// The validated FHIR R4 Appointment fixture for the demo's patient.
fn appointment(id: &str, start: &str, status: &str) -> serde_json::Value {
    crate::fixtures::appointment(
        id,
        status,
        start,
        None,
        Some(&format!("Patient/{PATIENT_ID}")),
    )
}

async fn sweep_and_dispatch(
    h: &Harness,
    now: DateTime<Utc>,
    report: &mut ScenarioReport,
) -> Option<Outcome> {
    // First the question an operator can ask at any time: what would a
    // sweep do now, and why? (Nothing is written.)
    match optline_delivery::dry_run(&h.dry_run(), now, 100).await {
        Ok(dry) => {
            let steps: Vec<String> = dry
                .steps
                .iter()
                .map(|s| {
                    format!(
                        "{} to {} ({}): {}{}",
                        s.template,
                        s.contact_id,
                        s.step_id,
                        s.decision,
                        if s.reasons.is_empty() {
                            String::new()
                        } else {
                            format!(" because {}", s.reasons.join(", "))
                        }
                    )
                })
                .collect();
            report.say(format!(
                "sweep dry run at {}: {}; per decision {:?}, per reason {:?}",
                now.format("%Y-%m-%d %H:%MZ"),
                if steps.is_empty() {
                    "nothing due".to_owned()
                } else {
                    steps.join("; ")
                },
                dry.decisions,
                dry.reasons
            ));
        }
        Err(e) => report.say(format!("sweep dry run failed: {e}")),
    }
    let swept = optline_sweep::sweep(&h.sweep(), now).await;
    match &swept {
        Ok(r) => report.say(format!(
            "sweep at {}: {} due step(s) found through the due index, {} enqueued to SQS{}",
            now.format("%Y-%m-%d %H:%MZ"),
            r.found,
            r.enqueued,
            if r.excluded == 0 {
                String::new()
            } else {
                format!(
                    ", {} outside the program's audience ({})",
                    r.excluded,
                    r.excluded_by.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            }
        )),
        Err(e) => report.say(format!("sweep failed: {e}")),
    }
    let event = h.receive_dispatch_batch(10).await;
    let mut last = None;
    // As Lambda hands it over: one batch, read once.
    for handled in optline_dispatch::dispatch_batch(&event, &h.dispatch(), now).await {
        match &handled.result {
            Ok(o) => report.say(format!("dispatch: {}", describe(o))),
            Err(e) => report.say(format!("dispatch error (will retry): {e}")),
        }
        last = handled.result.ok();
    }
    h.delete_messages(&event, &[]).await;
    last
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Sent(id) => format!("SENT through SNS (message id {id})"),
        Outcome::Suppressed(reasons) => format!("SUPPRESSED; reasons: {}", reasons.join(", ")),
        Outcome::Deferred(until) => format!("DEFERRED until {until}"),
        Outcome::Skipped(why) => format!("skipped: {why}"),
        Outcome::Failed(code) => format!("FAILED at the carrier: {code}"),
    }
}

/// Runs the story on a fresh stack.
pub async fn run(h: &Harness) -> ScenarioReport {
    let mut report = ScenarioReport::default();
    let t0 = story_start();

    // 1. Contact and consent.
    let created = optline_consent_api::handle(
        h.api_request(
            "POST",
            "/contacts",
            Some(json!({
                "id": PATIENT_ID,
                "phone": PATIENT_PHONE_WRITTEN,
                "time_zone": "America/Los_Angeles",
                "address_state": "CA"
            })),
        ),
        &h.consent_api(),
        t0 - Duration::days(30),
    )
    .await;
    report.say(format!(
        "consent-api POST /contacts -> {} (phone {PATIENT_PHONE_WRITTEN} normalized and stored as E.164, shown masked: {})",
        created.status(),
        body_json(&created)["phone"].as_str().unwrap_or("?")
    ));
    let disclosure = "By checking this box you agree to receive appointment reminders and care follow-up texts from Riverside Clinic at the number provided. Up to 3 msgs per appointment. Msg & data rates may apply. Reply STOP to opt out, HELP for help. Consent is not a condition of care.";
    let granted = optline_consent_api::handle(
        h.api_request(
            "POST",
            &format!("/contacts/{PATIENT_ID}/consent"),
            Some(json!({
                "action": "grant",
                "categories": ["appointments"],
                "kind": "express",
                "channel": "web_form",
                "source_system": "portal",
                "source_record_id": "form-submission-88",
                "disclosure_text": disclosure,
                "disclosure_version": "2026-10",
                "evidence": { "ip": "203.0.113.7", "user_agent": "Mozilla/5.0", "form_id": "intake-v3" }
            })),
        ),
        &h.consent_api(),
        t0 - Duration::days(30),
    )
    .await;
    let grant = body_json(&granted);
    report.say(format!(
        "consent-api POST /contacts/{PATIENT_ID}/consent -> {} (grant {} with the exact disclosure text, sha256 {}…)",
        granted.status(),
        grant["event_id"].as_str().unwrap_or("?"),
        grant["disclosure_sha256"].as_str().unwrap_or("?").get(..12).unwrap_or("?")
    ));

    // 2. The EHR books an appointment, signed with its HMAC secret.
    let booked = optline_ehr_events::handle(
        signed_ehr_request(
            "/ehr/fhir/Appointment",
            "application/fhir+json",
            &appointment("appt-5001", "2026-12-10T10:00:00-08:00", "booked").to_string(),
            (t0 - Duration::days(1)).timestamp(),
        ),
        &h.ehr_events(),
        t0 - Duration::days(1),
    )
    .await;
    let plan = body_json(&booked);
    report.say(format!(
        "ehr-events POST /ehr/fhir/Appointment (booked, Thu Dec 10 10:00 PST; HMAC-signed by its source) -> {}; reminder planned for {}",
        booked.status(),
        plan["planned"][0]["due_at"].as_str().unwrap_or("?")
    ));

    // 3. Sweep and dispatch at the due time.
    report.first_outcome = sweep_and_dispatch(h, t0 + Duration::minutes(1), &mut report).await;
    let sent_ids: Vec<String> = match &report.first_outcome {
        Some(Outcome::Sent(id)) => vec![id.clone()],
        _ => Vec::new(),
    };
    report.texts_sent = h
        .sns_texts(&sent_ids)
        .await
        .into_iter()
        .filter(|s| s.phone_number == PATIENT_PHONE)
        .map(|s| s.message)
        .collect();
    if let Some(text) = report.texts_sent.last() {
        report.say(format!(
            "the emulator's SNS delivered to +1******2671: \"{text}\""
        ));
    }

    // 3b. The patient confirms with "C", the reply code the reminder offered.
    let confirm = optline_inbound::handle(
        twilio_inbound_request("SM0000000000000000000000000000conf", PATIENT_PHONE, "C"),
        &h.inbound(),
        t0 + Duration::minutes(3),
    )
    .await;
    report.confirm_answer = body_text(&confirm);
    // The outcome's event was committed with it in the outbox; the drain
    // publishes it from the table's stream.
    let stream = h.stream_event().await;
    let outbox = stream
        .records
        .iter()
        .filter(|r| r.event_name == "INSERT")
        .filter(|r| {
            serde_json::to_value(&r.change.keys)
                .ok()
                .and_then(|k| k["pk"]["S"].as_str().map(|pk| pk.starts_with("OUTBOX#")))
                .unwrap_or(false)
        })
        .count();
    let drained = optline_outbox_drain::handle(
        stream,
        &h.outbox_publisher(),
        h.outbox_rollups().as_ref(),
        Default::default(),
    )
    .await;
    report.say(format!(
        "inbound POST /twilio/inbound \"C\" -> {}; outcome \"confirmed\" recorded with its outbox event in one commit, published on the outcome bus by the outbox drain ({} event{}, {} to retry); answer: {}",
        confirm.status(),
        outbox,
        if outbox == 1 { "" } else { "s" },
        drained.batch_item_failures.len(),
        report.confirm_answer
    ));
    if let Ok(Some(step)) = h
        .store
        .step(&crate::ehr_step(
            "appt",
            PATIENT_ID,
            "appt-5001",
            "followup",
        ))
        .await
    {
        report.say(format!(
            "the T-24 h follow-up for non-responders ({}) is now {}",
            step.id,
            step.status.as_str()
        ));
    }

    // 4. The patient replies "Stop please".
    let stop = optline_inbound::handle(
        twilio_inbound_request(
            "SM0000000000000000000000000000stop",
            PATIENT_PHONE,
            "Stop please",
        ),
        &h.inbound(),
        t0 + Duration::minutes(5),
    )
    .await;
    report.stop_answer = body_text(&stop);
    report.say(format!(
        "inbound POST /twilio/inbound \"Stop please\" (signed X-Twilio-Signature) -> {}; opt-out recorded first, then the one confirmation: {}",
        stop.status(),
        report.stop_answer
    ));
    let replay = optline_inbound::handle(
        twilio_inbound_request(
            "SM0000000000000000000000000000stop",
            PATIENT_PHONE,
            "Stop please",
        ),
        &h.inbound(),
        t0 + Duration::minutes(6),
    )
    .await;
    report.replay_answer = body_text(&replay);
    report.say(format!(
        "the same webhook retried by Twilio -> {}; answer {} (no second confirmation)",
        replay.status(),
        report.replay_answer
    ));

    // 5. A second appointment: its reminder is suppressed.
    let booked2 = optline_ehr_events::handle(
        h.fhir_request(
            "/ehr/fhir/Appointment",
            &appointment("appt-5002", "2026-12-11T10:00:00-08:00", "booked"),
        ),
        &h.ehr_events(),
        t0 + Duration::hours(1),
    )
    .await;
    report.say(format!(
        "ehr-events POST /ehr/fhir/Appointment (booked, Fri Dec 11 10:00 PST) -> {}",
        booked2.status()
    ));
    sweep_and_dispatch(
        h,
        t0 + Duration::days(1) + Duration::minutes(1),
        &mut report,
    )
    .await;
    let contact = ContactId::parse(PATIENT_ID).unwrap_or_else(|_| ContactId::generate("x"));
    let second = crate::api_step("appt", PATIENT_ID, "appt-5002", "reminder");
    if let Some(record) = h
        .store
        .audit_chain(&contact)
        .await
        .unwrap_or_default()
        .iter()
        .rev()
        .find(|r| r.content.step_id.as_deref() == Some(second.as_str()))
    {
        if record.content.action == "suppress" {
            report.second_suppressed = record.content.reasons.clone();
            report.second_details = record
                .content
                .rules
                .iter()
                .filter(|r| r.verdict == optline_policy::Verdict::Fail)
                .map(|r| format!("{}: {}", r.id, r.detail))
                .collect();
            for detail in report.second_details.clone() {
                report.say(format!("  why: {detail}"));
            }
        }
    }
    if let Ok(Some(step)) = h.store.step(&second).await {
        report.say(format!("step {second} is now {}", step.status.as_str()));
    }

    // 6. The audit trail.
    let chain = h.store.audit_chain(&contact).await.unwrap_or_default();
    report.chain_verified = verify_chain(&chain, h.store.chain_key()).is_ok();
    report.say(format!(
        "audit trail of {PATIENT_ID}: {} records, hash chain {}",
        chain.len(),
        if report.chain_verified {
            "verified"
        } else {
            "BROKEN"
        }
    ));
    for record in &chain {
        let c = &record.content;
        report
            .audit_actions
            .push(format!("{}/{}", c.kind, c.action));
        let rules: Vec<String> = c
            .rules
            .iter()
            .map(|r| format!("{}={:?}", r.id, r.verdict).to_lowercase())
            .collect();
        report.say(format!(
            "  #{} {} {}/{}{}{}{}",
            record.seq,
            c.at.format("%Y-%m-%d %H:%MZ"),
            c.kind,
            c.action,
            c.legal_basis
                .as_deref()
                .map_or_else(String::new, |b| format!(" basis={b}")),
            if c.reasons.is_empty() {
                String::new()
            } else {
                format!(" reasons=[{}]", c.reasons.join(", "))
            },
            if rules.is_empty() {
                String::new()
            } else {
                format!(" rules=[{}]", rules.join(" "))
            },
        ));
    }
    proof(
        h,
        &contact,
        t0 + Duration::days(1) + Duration::hours(1),
        &mut report,
    )
    .await;
    kpi_lines(h, t0, &mut report).await;
    if created.status() != StatusCode::CREATED {
        report.say("WARNING: contact creation did not return 201");
    }
    report
}

/// The story's figures, as `optline-ops report` computes them: the drain
/// counts what the stream still holds, then the rollups of the story's
/// days give the KPIs.
async fn kpi_lines(h: &Harness, t0: DateTime<Utc>, report: &mut ScenarioReport) {
    let drained = h.drain_outbox().await;
    let request = optline_outcomes::ReportRequest {
        from: (t0 - Duration::days(30)).date_naive(),
        to: (t0 + Duration::days(3)).date_naive(),
        program: None,
        price_per_segment: optline_outcomes::DEFAULT_PRICE_PER_SEGMENT,
        no_show_baselines: std::collections::BTreeMap::new(),
    };
    match optline_outcomes::gather(h.store.as_ref(), &request, t0 + Duration::days(3)).await {
        Ok(figures) => {
            report.say(format!(
                "the drain counted the story's facts into the rollups ({} to retry); its KPIs (optline-ops report):",
                drained.batch_item_failures.len()
            ));
            for (name, value) in optline_outcomes::headline(&figures.overall)
                .into_iter()
                .filter(|(name, _)| {
                    matches!(
                        *name,
                        "texts sent"
                            | "suppressed"
                            | "response rate"
                            | "confirmation rate"
                            | "opt-outs"
                            | "opt-out to confirmation"
                            | "cost"
                    )
                })
            {
                report.say(format!("  {name}: {value}"));
            }
            report.kpis = Some(figures.overall);
        }
        Err(e) => report.say(format!("the report failed: {e}")),
    }
}

/// The story's last act: the hourly anchor signs every chain head, the
/// patient's chain checks against it, and a signed proof bundle verifies
/// offline.
async fn proof(h: &Harness, contact: &ContactId, at: DateTime<Utc>, report: &mut ScenarioReport) {
    use optline_ports::{AnchorStore, Signer};
    let clients = h.clients_as("AuditAnchorFunction");
    let deps = optline_audit_anchor::Deps {
        store: optline_aws::DynamoStore::new(clients.dynamodb, h.resources.table_name.clone()),
        signer: optline_aws::KmsSigner::new(clients.kms, h.resources.signing_key.clone()),
        anchors: optline_aws::S3Anchors::new(clients.s3, h.resources.anchor_bucket.clone()),
        retention: Duration::days(1),
    };
    let anchored = match optline_audit_anchor::handle(&deps, at).await {
        Ok(report) => report,
        Err(e) => {
            report.say(format!("audit anchor failed: {e}"));
            return;
        }
    };
    report.say(format!(
        "audit-anchor: Merkle root {}… over {} chain heads, signed with the KMS key and written to the Object Lock bucket",
        anchored.root.get(..12).unwrap_or("?"),
        anchored.count
    ));
    let anchors = optline_aws::S3Anchors::new(h.s3.clone(), h.resources.anchor_bucket.clone());
    let signer = optline_aws::KmsSigner::new(h.kms.clone(), h.resources.signing_key.clone());
    let (Ok(Some(bytes)), Ok(public_key)) =
        (anchors.latest_anchor().await, signer.public_key().await)
    else {
        report.say("the anchor or the public key could not be read");
        return;
    };
    let Ok(anchor) = optline_audit::parse_anchor(&bytes) else {
        report.say("the anchor does not parse");
        return;
    };
    let chain = h.store.audit_chain(contact).await.unwrap_or_default();
    let check = optline_audit::verify_against_anchor(
        contact.as_str(),
        &chain,
        h.store.audit_key(),
        Some(&anchor),
        &public_key,
    );
    let consent = optline_consent::Consent {
        store: h.store.as_ref(),
        default_program: "clinic",
    };
    let exported =
        optline_audit::proof::export(consent, &anchors, &signer, contact.as_str(), at).await;
    let verified = match (&exported, optline_audit::public_key_pem(&public_key)) {
        (Ok((signed, _)), Ok(pem)) => optline_audit::public_key_der(&pem).ok().and_then(|der| {
            let bytes = serde_json::to_vec(signed).ok()?;
            optline_audit::proof::verify(&bytes, &der).ok()
        }),
        _ => None,
    };
    let bundle_holds = verified
        .as_ref()
        .is_some_and(optline_audit::proof::ProofVerdict::holds);
    report.proof_verified = check.holds() && bundle_holds;
    report.say(format!(
        "the chain of {} against the signed anchor: {}; proof bundle ({} consent events, {} decisions, KMS-signed) verified offline with the public key: {}",
        contact,
        if check.holds() { "holds" } else { "BROKEN" },
        exported.as_ref().map_or(0, |(_, c)| c.consent_events.len()),
        exported.as_ref().map_or(0, |(_, c)| c.decisions.len()),
        bundle_holds
    ));
}
