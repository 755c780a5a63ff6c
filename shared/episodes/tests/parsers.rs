//! Property tests with arbitrary input for the EHR parsers: HL7 v2 ER7, FHIR
//! R4 documents and normalized JSON events never panic, refuse with a
//! reason, and what they accept is well formed. Bounded in time by the
//! number of cases (run in CI with the rest of the suite); for long runs
//! raise `PROPTEST_CASES`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use optline_episodes::intake::{fhir, hl7, normalized};
use proptest::prelude::*;

const SIU: &str = "MSH|^~\\&|EPIC|RIVERSIDE|OPTLINE|OPTLINE|20261130120000-0500||SIU^S12^SIU_S12|MSG00001|P|2.5\rSCH|APT-7001^EPIC|APT-7001^EPIC||||BOOKED^Appointment booked|ROUTINE^Routine|OFFICE^Office visit|30|MIN|^^30^20261210100000-0500\rPID|1||pat-ehr-1^^^RIVERSIDE^MR||Doe^Jane||19800101|F\rAIS|1|A|OFFICE^Office visit|20261210100000-0500|0|MIN|30|MIN";

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

/// An ER7 message with some characters replaced, inserted or removed.
fn mutated_siu() -> impl Strategy<Value = String> {
    prop::collection::vec((0usize..SIU.len(), any::<char>(), 0u8..3), 0..12).prop_map(|edits| {
        let mut chars: Vec<char> = SIU.chars().collect();
        for (at, c, how) in edits {
            let at = at.min(chars.len().saturating_sub(1));
            match how {
                0 => chars[at] = c,
                1 => chars.insert(at, c),
                _ => {
                    if !chars.is_empty() {
                        chars.remove(at);
                    }
                }
            }
        }
        chars.into_iter().collect()
    })
}

/// Arbitrary JSON, a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        ".{0,24}".prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "Appointment",
            "booked",
            "cancelled",
            "Patient/p-1",
            "2026-12-10T10:00:00-05:00",
            "Bundle",
            "subscription-notification",
            "SubscriptionStatus",
            "event-notification",
            "-1",
        ])
        .prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "resourceType",
                    "id",
                    "status",
                    "start",
                    "meta",
                    "versionId",
                    "lastUpdated",
                    "participant",
                    "actor",
                    "reference",
                    "entry",
                    "resource",
                    "type",
                    "contained",
                    "event",
                    "patient_id",
                    "appointment_id",
                ]),
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn hl7_never_panics_on_any_text(text in ".{0,400}") {
        if let Ok(message) = hl7::Message::parse(&text) {
            let _ = hl7::read(&message);
            let _ = optline_episodes::intake::patient::from_pid(&message, "hl7:property");
        }
    }

    #[test]
    fn hl7_never_panics_on_a_mutated_siu_and_what_it_reads_has_ids(text in mutated_siu()) {
        if let Ok(message) = hl7::Message::parse(&text) {
            if let Ok(event) = hl7::read(&message) {
                prop_assert!(!event.appointment_id.is_empty());
                prop_assert!(!event.marker.is_empty());
            }
        }
    }

    #[test]
    fn hl7_times_never_panic(text in "[0-9+\\-.]{0,24}") {
        let _ = hl7::dtm_syntax_ok(&text);
        let _ = hl7::parse_dtm(&text, None);
        let _ = hl7::parse_dtm(&text, Some(chrono_tz::America::Chicago));
    }

    #[test]
    fn fhir_never_panics_on_any_json(value in json_value()) {
        let _ = fhir::read_document(value.clone());
        let _ = optline_episodes::intake::patient::from_fhir_patient(&value, chrono::Utc::now());
        let _ = fhir::appointment(value);
    }

    #[test]
    fn normalized_events_never_panic_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = normalized::read(&bytes);
    }

    #[test]
    fn normalized_events_never_panic_on_any_json(value in json_value()) {
        let _ = normalized::read(value.to_string().as_bytes());
    }
}

#[test]
fn the_unmutated_siu_reads() {
    let message = hl7::Message::parse(SIU).unwrap();
    let event = hl7::read(&message).unwrap();
    assert_eq!(event.appointment_id, "APT-7001");
}
