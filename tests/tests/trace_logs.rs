//! Logs safe at any level: the whole scenario (EHR events, sweeps,
//! dispatch, replies, the audit chain and its proof) runs with
//! `RUST_LOG=trace` through the production subscriber, plus an HL7 booking
//! that names the patient and the doctor and a free-text reply, and the
//! captured logs hold no phone number in any written form, no message body
//! and no name. The AWS SDK, HTTP and Lambda runtime targets are capped at
//! `info` (`optline_config::CAPPED_LOG_TARGETS`): at `trace` they print
//! request bodies.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use optline_tests::fixtures::{siu, PID};
use optline_tests::scenario::{self, PATIENT_PHONE};
use optline_tests::{signed_ehr_request, twilio_inbound_request, Harness};

/// Every log line, kept in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'w> tracing_subscriber::fmt::MakeWriter<'w> for Captured {
    type Writer = Captured;
    fn make_writer(&'w self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn the_whole_scenario_at_trace_logs_no_number_no_body_and_no_name() {
    let captured = Captured::default();
    optline_config::init_logging_with("trace", captured.clone()).unwrap();

    let h = Harness::new("trace-logs").await;
    let report = scenario::run(&h).await;
    assert!(
        report.chain_verified,
        "the scenario ran: {:#?}",
        report.lines
    );
    assert!(!report.texts_sent.is_empty());

    // An HL7 booking that names the patient (Jane Doe) and the doctor
    // (Maria Alvarez), and a reply that says more than a keyword.
    let now = Utc.with_ymd_and_hms(2026, 11, 30, 17, 0, 0).unwrap();
    let message = siu(
        "S12",
        "MSGTRACE1",
        "20261130120000-0500",
        "20261210100000-0500",
        PID,
    );
    optline_ehr_events::handle(
        signed_ehr_request("/ehr/hl7", "application/hl7-v2", &message, now.timestamp()),
        &h.ehr_events(),
        now,
    )
    .await;
    let reply = "Please move my colonoscopy prep appointment to Friday";
    optline_inbound::handle(
        twilio_inbound_request("SM0000000000000000000000000trace01", PATIENT_PHONE, reply),
        &h.inbound(),
        now,
    )
    .await;

    // The filter itself: a trace event of ours passes, a trace event on an
    // SDK target does not, an info one does.
    tracing::trace!(target: "optline_trace_probe", "our trace events pass");
    tracing::trace!(target: "aws_smithy_runtime::probe", "capped");
    tracing::debug!(target: "lambda_runtime::probe", "capped");
    tracing::info!(target: "aws_smithy_runtime::probe", "sdk info passes");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("our trace events pass"), "{logs}");
    assert!(logs.contains("sdk info passes"), "{logs}");
    assert!(!logs.contains("\"capped\""), "{logs}");
    assert!(
        !logs.contains("\"level\":\"TRACE\",\"fields\":{\"message\":\"capped")
            && !logs
                .lines()
                .any(|l| l.contains("\"target\":\"aws_")
                    && (l.contains("TRACE") || l.contains("DEBUG"))),
        "SDK targets are capped at info"
    );

    let national = &PATIENT_PHONE[2..];
    let mut needles: Vec<String> = vec![
        PATIENT_PHONE.to_owned(),
        national.to_owned(),
        format!(
            "({}) {}-{}",
            &national[..3],
            &national[3..6],
            &national[6..]
        ),
        format!("{}-{}", &national[3..6], &national[6..]),
        "Jane".to_owned(),
        "Doe^".to_owned(),
        "Alvarez".to_owned(),
        "colonoscopy".to_owned(),
        reply.to_owned(),
    ];
    // Every text sent, by a distinctive slice of it.
    for text in &report.texts_sent {
        let slice: String = text.chars().take(40).collect();
        needles.push(slice);
    }
    let found: Vec<&String> = needles
        .iter()
        .filter(|n| logs.contains(n.as_str()))
        .collect();
    assert!(
        found.is_empty(),
        "personal data in the trace logs: {found:?}\n{}",
        logs.lines()
            .filter(|l| found.iter().any(|n| l.contains(n.as_str())))
            .take(5)
            .collect::<Vec<_>>()
            .join("\n")
    );
}
