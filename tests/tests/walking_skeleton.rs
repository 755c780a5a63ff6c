//! The walking skeleton end to end on the local emulator.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "integration tests: a failed step should stop the test loudly"
)]

use optline_dispatch::Outcome;
use optline_tests::{scenario, Harness};

#[tokio::test]
async fn the_whole_loop_sends_once_then_honours_stop_please_and_audits_everything() {
    let harness = Harness::new("skeleton").await;
    let report = scenario::run(&harness).await;
    let story = report.lines.join("\n");

    assert!(
        matches!(report.first_outcome, Some(Outcome::Sent(_))),
        "first reminder should be sent:\n{story}"
    );
    assert_eq!(
        report.texts_sent.len(),
        1,
        "exactly one text reached SNS:\n{story}"
    );
    let text = &report.texts_sent[0];
    assert!(
        text.starts_with(
            "Riverside Clinic: reminder of your appointment on Thu Dec 10 at 10:00 AM."
        ),
        "{text}"
    );
    assert!(text.contains("Reply STOP to opt out"));

    assert!(
        report.confirm_answer.contains(
            "Riverside Clinic: thank you, your appointment on Thu Dec 10 at 10:00 AM is confirmed."
        ),
        "{story}"
    );
    assert!(
        story.contains(&format!(
            "{}) is now cancelled",
            optline_tests::ehr_step("appt", "pat-1001", "appt-5001", "followup")
        )),
        "{story}"
    );
    assert!(
        report
            .stop_answer
            .contains("<Message>Riverside Clinic: You are unsubscribed"),
        "{story}"
    );
    assert_eq!(
        report.replay_answer, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
        "a retried webhook gets no second confirmation"
    );
    // The story's figures, counted once from the rollups.
    let kpis = report.kpis.as_ref().expect("the story's KPIs");
    assert_eq!(kpis.sent, 1, "{story}");
    assert_eq!(kpis.episodes, 1, "{story}");
    assert_eq!(kpis.confirmed, 1, "{story}");
    assert_eq!(kpis.opt_outs, 1, "{story}");
    assert_eq!(
        kpis.replies, 2,
        "C and STOP; the retried STOP is not a reply: {story}"
    );
    assert_eq!(kpis.replies_by_intent.get("opt_out"), Some(&1), "{story}");
    assert_eq!(kpis.responded, 1, "one text, answered (twice): {story}");
    assert_eq!(kpis.response_rate, Some(1.0), "{story}");
    assert!(kpis.suppressed >= 1, "{story}");
    assert!(story.contains("texts sent: 1 (1 segment)"), "{story}");

    // The dry run says so before the sweep does it.
    assert!(
        story.contains(&format!(
            "sweep dry run at 2026-12-08 18:01Z: appointment_reminder@1 to pat-1001 ({}): suppress because segment.consent_scope",
            optline_tests::api_step("appt", "pat-1001", "appt-5002", "reminder")
        )),
        "{story}"
    );
    // The sweep's audience rules end the second reminder before it is
    // queued: no consent scope, because of the STOP.
    assert_eq!(
        report.second_suppressed,
        ["segment.consent_scope"],
        "{story}"
    );
    assert!(
        report.second_details[0].contains("consent.revocation"),
        "{story}"
    );

    assert!(report.chain_verified, "{story}");
    assert!(report.proof_verified, "{story}");
    assert_eq!(
        report.audit_actions,
        vec![
            "consent/grant",
            "decision/send",
            "reply/confirm",
            "consent/revoke",
            "reply/opt_out_confirmation",
            "decision/suppress"
        ],
        "{story}"
    );
}
