//! Specifications for `optline_policy::phone`: parsing, masking and the
//! area-code and state time zone tables. Cases live in `corpus/phone.json`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly on broken fixtures"
)]

use chrono_tz::Tz;
use optline_policy::phone::{
    area_code_state, area_code_zones, state_zones, E164, PHONE_DATA_VERSION,
};
use optline_policy::{PolicyError, UsState};
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Corpus {
    valid: Vec<ValidCase>,
    invalid: Vec<InvalidCase>,
}

#[derive(Debug, Deserialize)]
struct ValidCase {
    name: String,
    input: String,
    e164: String,
    masked: String,
    region: Option<String>,
    area_code: Option<String>,
    zones: Vec<String>,
    state: Option<String>,
}

#[derive(Debug, Deserialize)]
struct InvalidCase {
    name: String,
    input: String,
    reason: String,
}

fn corpus() -> Corpus {
    serde_json::from_str(include_str!("corpus/phone.json")).expect("phone corpus parses")
}

fn names(zones: &[Tz]) -> Vec<String> {
    zones.iter().map(|z| z.name().to_owned()).collect()
}

#[test]
fn every_valid_corpus_case_parses_masks_and_locates_as_written() {
    let corpus = corpus();
    assert!(corpus.valid.len() + corpus.invalid.len() >= 30);
    for case in &corpus.valid {
        let n = E164::parse(&case.input)
            .unwrap_or_else(|e| panic!("{}: unexpected error {e}", case.name));
        assert_eq!(n.as_str(), case.e164, "{}", case.name);
        assert_eq!(n.masked(), case.masked, "{}", case.name);
        assert_eq!(n.region(), case.region, "{}", case.name);
        assert_eq!(n.area_code(), case.area_code.as_deref(), "{}", case.name);
        assert_eq!(n.is_nanp(), case.e164.starts_with("+1"), "{}", case.name);
        assert_eq!(names(&area_code_zones(&n)), case.zones, "{}", case.name);
        assert_eq!(
            area_code_state(&n).map(|s| s.code().to_owned()),
            case.state,
            "{}",
            case.name
        );
    }
}

#[test]
fn every_invalid_corpus_case_is_rejected_with_its_reason_and_without_the_number() {
    for case in corpus().invalid {
        match E164::parse(&case.input) {
            Err(PolicyError::InvalidPhone(reason)) => {
                assert_eq!(reason, case.reason, "{}", case.name);
                let digits: String = case.input.chars().filter(char::is_ascii_digit).collect();
                if digits.len() >= 4 {
                    assert!(!reason.contains(&digits), "{}", case.name);
                }
            }
            other => panic!("{}: expected InvalidPhone, got {other:?}", case.name),
        }
    }
}

#[test]
fn display_and_debug_show_only_the_masked_number() {
    let n = E164::parse("+1 415 555 2671").unwrap();
    assert_eq!(n.to_string(), "+1******2671");
    let debug = format!("{n:?}");
    assert!(debug.contains("+1******2671"));
    assert!(!debug.contains("4155552671"));
}

#[test]
fn serde_round_trips_the_full_number_and_validates_on_the_way_in() {
    let n = E164::parse("(415) 555-2671").unwrap();
    let json = serde_json::to_string(&n).unwrap();
    assert_eq!(json, "\"+14155552671\"");
    let back: E164 = serde_json::from_str(&json).unwrap();
    assert_eq!(back, n);
    assert!(serde_json::from_str::<E164>("\"12345\"").is_err());
    assert!(serde_json::from_str::<E164>("\"not a phone\"").is_err());
}

#[test]
fn the_data_version_names_libphonenumber_and_the_source_files() {
    assert!(PHONE_DATA_VERSION.contains("libphonenumber 9.0.43"));
    assert!(PHONE_DATA_VERSION.contains("map_data.txt"));
    assert!(optline_policy::phone::area_code_source().contains("9.0.43"));
}

fn zones_of(code: &str) -> Vec<String> {
    names(&state_zones(&UsState::parse(code).unwrap()))
}

#[test]
fn state_zones_cover_the_split_states() {
    assert_eq!(zones_of("FL"), ["America/New_York", "America/Chicago"]);
    assert_eq!(zones_of("TX"), ["America/Chicago", "America/Denver"]);
    assert_eq!(zones_of("AZ"), ["America/Phoenix", "America/Denver"]);
    assert_eq!(zones_of("HI"), ["Pacific/Honolulu"]);
    assert_eq!(zones_of("NY"), ["America/New_York"]);
    assert_eq!(zones_of("PR"), ["America/Puerto_Rico"]);
    let indiana = zones_of("IN");
    assert!(indiana.contains(&"America/Indiana/Indianapolis".to_owned()));
    assert!(indiana.contains(&"America/Indiana/Tell_City".to_owned()));
    assert!(indiana.contains(&"America/Chicago".to_owned()));
    assert_eq!(zones_of("AK").len(), 7);
}

#[test]
fn every_state_and_dc_has_at_least_one_zone_and_unknown_codes_have_none() {
    let codes = [
        "AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "DC", "FL", "GA", "HI", "ID", "IL", "IN",
        "IA", "KS", "KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH",
        "NJ", "NM", "NY", "NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT",
        "VT", "VA", "WA", "WV", "WI", "WY", "PR", "VI", "GU", "MP", "AS",
    ];
    for code in codes {
        assert!(!zones_of(code).is_empty(), "{code}");
    }
    assert!(
        UsState::parse("ZZ").is_err(),
        "an unknown code is refused, not silently ruleless"
    );
}

#[test]
fn every_us_area_code_with_a_state_has_that_states_zones_or_a_neighbour() {
    // A sanity check of the generated tables against each other: the area
    // code's zones should mostly be among its state's zones.
    let mut mismatches = Vec::new();
    for npa in 200..1000 {
        let Ok(n) = E164::parse(&format!("+1{npa}2345678")) else {
            continue;
        };
        let Some(state) = area_code_state(&n) else {
            continue;
        };
        let allowed = state_zones(&state);
        for z in area_code_zones(&n) {
            // Zones with identical rules count as the same zone.
            let same = allowed.iter().any(|a| {
                *a == z
                    || (a.name().starts_with("America/Indiana") && z == Tz::America__New_York)
                    || (*a == Tz::America__Detroit && z == Tz::America__New_York)
                    || (*a == Tz::America__Menominee && z == Tz::America__Chicago)
                    || (*a == Tz::America__Boise && z == Tz::America__Denver)
                    || (*a == Tz::America__Denver && z == Tz::America__Boise)
            });
            if !same {
                mismatches.push(format!("{npa} {} {}", state.code(), z.name()));
            }
        }
    }
    // libphonenumber lists Honolulu for one Alaskan exchange (Aleutian
    // numbers on Hawaii-Aleutian time); anything else is a table error.
    assert_eq!(mismatches, ["907 AK Pacific/Honolulu"]);
}

proptest! {
    #[test]
    fn parsing_never_panics_and_errors_never_echo_digits(input in "\\PC{0,30}") {
        match E164::parse(&input) {
            Ok(n) => {
                prop_assert!(n.as_str().starts_with('+'));
                prop_assert!(n.as_str().len() <= 16);
                prop_assert!(n.masked().ends_with(n.as_str().get(n.as_str().len() - 4..).unwrap()));
            }
            Err(PolicyError::InvalidPhone(reason)) => {
                prop_assert!(!reason.chars().any(|c| c.is_ascii_digit()));
            }
            Err(other) => prop_assert!(false, "unexpected error {other:?}"),
        }
    }

    #[test]
    fn any_valid_us_number_round_trips_through_its_e164_form(npa in 201u32..990, rest in 2_000_000u32..9_999_999) {
        if let Ok(n) = E164::parse(&format!("({npa}) {}-{}", rest / 10_000, rest % 10_000)) {
            let again = E164::parse(n.as_str()).unwrap();
            prop_assert_eq!(again, n);
        }
    }
}

/// Invalid example numbers of libphonenumber 9.0.43 that the crate's
/// 9.0.33 metadata still calls valid (China, the Philippines, Zimbabwe
/// updated their ranges since).
const KNOWN_METADATA_LAG: &[&str] = &["+86101234567", "+6323234567", "+26320201234"];

#[test]
fn every_libphonenumber_example_number_is_judged_as_libphonenumber_judges_it() {
    let data: serde_json::Value =
        serde_json::from_str(include_str!("data/libphonenumber_examples.json")).unwrap();
    let numbers = data["numbers"].as_array().unwrap();
    assert!(numbers.len() > 600);
    let mut failures = Vec::new();
    for n in numbers {
        let e164 = n["e164"].as_str().unwrap();
        let valid = n["valid"].as_bool().unwrap();
        for written in [e164, n["international"].as_str().unwrap()] {
            match (E164::parse(written), valid) {
                (Ok(parsed), true) if parsed.as_str() == e164 => {}
                (Err(_), false) => {}
                // Numbers libphonenumber's metadata narrowed after 9.0.33,
                // the release the `phonenumber` crate carries: accepted
                // here, refused there. Listed so that any other
                // difference fails.
                (Ok(_), false) if KNOWN_METADATA_LAG.contains(&e164) => {}
                (Ok(parsed), _) => failures.push(format!(
                    "{} {} {written}: parsed as {} (libphonenumber: valid {valid})",
                    n["region"],
                    n["type"],
                    parsed.as_str()
                )),
                (Err(e), true) => {
                    failures.push(format!("{} {} {written}: {e}", n["region"], n["type"]))
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {}:\n{}",
        failures.len(),
        numbers.len() * 2,
        failures.join("\n")
    );
}
