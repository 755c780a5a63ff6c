//! Specifications for `optline_policy::quiet_hours`. Cases live in
//! `corpus/quiet_hours.json`; properties check the search for the next
//! allowed instant against brute force.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly on broken fixtures"
)]

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use optline_policy::phone::E164;
use optline_policy::quiet_hours::{
    check, federal_holiday_on, federal_holidays, rule_ids, table_version, validate_table,
    QuietHoursRequest, QUIET_HOURS_VERSION,
};
use optline_policy::{MessageClass, PolicyError, UsState, Verdict};
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Corpus {
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    now: DateTime<Utc>,
    class: MessageClass,
    stated_zone: Option<String>,
    address_state: Option<UsState>,
    phone: Option<String>,
    #[serde(default)]
    prior_express_consent: bool,
    allowed_now: bool,
    next_allowed: Option<DateTime<Utc>>,
    #[serde(default)]
    outcomes: Option<Vec<ExpectedOutcome>>,
    #[serde(default)]
    zones: Option<Vec<String>>,
    #[serde(default)]
    detail_contains: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ExpectedOutcome {
    id: String,
    verdict: Verdict,
}

#[test]
fn every_corpus_case_gives_its_verdict_next_allowed_time_and_outcomes() {
    let corpus: Corpus =
        serde_json::from_str(include_str!("corpus/quiet_hours.json")).expect("corpus parses");
    assert!(corpus.cases.len() >= 30);
    for case in &corpus.cases {
        let zone: Option<Tz> = case.stated_zone.as_deref().map(|z| z.parse().unwrap());
        let phone = case.phone.as_deref().map(|p| E164::parse(p).unwrap());
        let req = QuietHoursRequest {
            class: case.class,
            stated_zone: zone,
            address_state: case.address_state.as_ref(),
            phone: phone.as_ref(),
            prior_express_consent: case.prior_express_consent,
        };
        let got = check(&req, case.now);
        assert_eq!(got.allowed_now, case.allowed_now, "{}: {got:#?}", case.name);
        assert_eq!(
            got.next_allowed, case.next_allowed,
            "{}: {got:#?}",
            case.name
        );
        if let Some(expected) = &case.outcomes {
            let got_pairs: Vec<(&str, Verdict)> = got
                .outcomes
                .iter()
                .map(|o| (o.id.as_ref(), o.verdict))
                .collect();
            let want: Vec<(&str, Verdict)> = expected
                .iter()
                .map(|o| (o.id.as_ref(), o.verdict))
                .collect();
            assert_eq!(got_pairs, want, "{}", case.name);
        }
        if let Some(zones) = &case.zones {
            let names: Vec<&str> = got.zones.iter().map(|z| z.name()).collect();
            assert_eq!(&names, zones, "{}", case.name);
        }
        if let Some(needle) = &case.detail_contains {
            assert!(
                got.outcomes
                    .iter()
                    .any(|o| o.detail.contains(needle.as_str())),
                "{}: no detail contains {needle:?}: {:#?}",
                case.name,
                got.outcomes
            );
        }
        for o in &got.outcomes {
            assert_eq!(o.version, QUIET_HOURS_VERSION, "{}", case.name);
            if let Some(p) = &phone {
                assert!(!o.detail.contains(p.as_str()), "{}", case.name);
            }
        }
        // When a time is given, it must itself be allowed.
        if let Some(next) = got.next_allowed {
            assert!(check(&req, next).allowed_now, "{}", case.name);
            assert!(
                !check(&req, next - Duration::seconds(1)).allowed_now,
                "{}",
                case.name
            );
        }
    }
}

#[test]
fn the_version_constant_matches_the_embedded_table() {
    assert_eq!(table_version().unwrap(), QUIET_HOURS_VERSION);
}

#[test]
fn the_table_has_the_federal_rule_and_every_required_state() {
    let ids = rule_ids().unwrap();
    assert_eq!(ids.first(), Some(&"quiet_hours.federal"));
    for state in [
        "FL", "OK", "MD", "NJ", "MA", "CT", "WA", "TX", "AL", "LA", "MS", "KY", "MI", "MN", "NM",
        "NV",
    ] {
        let id = format!("quiet_hours.state.{state}");
        assert!(ids.contains(&id.as_str()), "{id}");
    }
}

#[test]
fn an_invalid_table_is_rejected_with_a_reason() {
    let bad = r#"{"table":"quiet_hours","version":"x","rules":[{"id":"a","state":null,
        "windows":{"default":{"start":"21:00","end":"08:00"}},"effective_from":"2020-01-01",
        "source":"s"}]}"#;
    assert!(matches!(
        validate_table(bad),
        Err(PolicyError::RuleTable {
            table: "quiet_hours",
            ..
        })
    ));
    let bad_time = bad.replace("21:00", "25:00");
    assert!(validate_table(&bad_time).is_err());
    assert!(validate_table("{}").is_err());
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

#[test]
fn federal_holidays_of_2026_fall_on_their_observed_dates() {
    let got: Vec<(String, NaiveDate)> = federal_holidays(2026)
        .into_iter()
        .map(|h| (h.name.to_owned(), h.observed))
        .collect();
    let want = [
        ("New Year's Day", date(2026, 1, 1)),
        ("Birthday of Martin Luther King, Jr.", date(2026, 1, 19)),
        ("Washington's Birthday", date(2026, 2, 16)),
        ("Memorial Day", date(2026, 5, 25)),
        ("Juneteenth National Independence Day", date(2026, 6, 19)),
        ("Independence Day", date(2026, 7, 3)),
        ("Labor Day", date(2026, 9, 7)),
        ("Columbus Day", date(2026, 10, 12)),
        ("Veterans Day", date(2026, 11, 11)),
        ("Thanksgiving Day", date(2026, 11, 26)),
        ("Christmas Day", date(2026, 12, 25)),
    ];
    let want: Vec<(String, NaiveDate)> = want.iter().map(|(n, d)| ((*n).to_owned(), *d)).collect();
    assert_eq!(got, want);
}

#[test]
fn a_saturday_new_years_day_is_observed_on_the_friday_before_in_the_old_year() {
    assert_eq!(
        federal_holiday_on(date(2027, 12, 31)),
        Some("New Year's Day")
    );
    assert_eq!(federal_holiday_on(date(2028, 1, 1)), Some("New Year's Day"));
    assert_eq!(federal_holiday_on(date(2028, 1, 3)), None);
}

#[test]
fn a_sunday_holiday_is_observed_on_the_monday_after() {
    // July 4, 2027 is a Sunday.
    assert_eq!(
        federal_holiday_on(date(2027, 7, 5)),
        Some("Independence Day")
    );
    assert_eq!(
        federal_holiday_on(date(2027, 7, 4)),
        Some("Independence Day")
    );
    assert_eq!(federal_holiday_on(date(2027, 7, 6)), None);
}

#[test]
fn juneteenth_is_a_holiday_only_from_2021() {
    assert_eq!(federal_holiday_on(date(2020, 6, 19)), None);
    assert!(federal_holiday_on(date(2021, 6, 18)).is_some());
}

#[test]
fn the_search_crosses_a_midnight_dst_change() {
    // Cuba springs forward at local midnight (00:00 -> 01:00) on the second
    // Sunday of March: 2026-03-08. At 22:00 CST the evening before, the next
    // opening is 08:00 CDT, i.e. 12:00 UTC rather than 13:00.
    let req = QuietHoursRequest {
        class: MessageClass::Transactional,
        stated_zone: Some(chrono_tz::America::Havana),
        address_state: None,
        phone: None,
        prior_express_consent: false,
    };
    let now = Utc.with_ymd_and_hms(2026, 3, 8, 3, 0, 0).unwrap();
    let got = check(&req, now);
    assert!(!got.allowed_now);
    assert_eq!(
        got.next_allowed,
        Some(Utc.with_ymd_and_hms(2026, 3, 8, 12, 0, 0).unwrap())
    );
}

fn zone_strategy() -> impl Strategy<Value = Tz> {
    prop::sample::select(vec![
        chrono_tz::America::New_York,
        chrono_tz::America::Chicago,
        chrono_tz::America::Denver,
        chrono_tz::America::Phoenix,
        chrono_tz::America::Los_Angeles,
        chrono_tz::America::Anchorage,
        chrono_tz::Pacific::Honolulu,
        chrono_tz::America::Puerto_Rico,
    ])
}

fn state_strategy() -> impl Strategy<Value = Option<UsState>> {
    prop::option::of(
        prop::sample::select(vec![
            "FL", "TX", "AL", "LA", "MS", "KY", "NV", "WA", "CT", "IN", "CA", "AK", "AZ", "NY",
        ])
        .prop_map(|s| UsState::parse(s).unwrap()),
    )
}

fn phone_strategy() -> impl Strategy<Value = Option<E164>> {
    prop::option::of(
        prop::sample::select(vec![
            "+1 212 555 0100",
            "+1 310 555 0100",
            "+1 850 222 1234",
            "+1 907 555 0123",
            "+1 915 555 0123",
            "+1 214 555 0123",
            "+1 205 555 0123",
        ])
        .prop_map(|p| E164::parse(p).unwrap()),
    )
}

fn now_strategy() -> impl Strategy<Value = DateTime<Utc>> {
    // 2026-01-01 .. 2027-12-31, to the minute (DST days included).
    (0i64..(730 * 24 * 60))
        .prop_map(|m| Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(m))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn never_allowed_when_any_candidate_zone_is_outside_the_federal_window(
        stated in prop::option::of(zone_strategy()),
        state in state_strategy(),
        phone in phone_strategy(),
        now in now_strategy(),
    ) {
        let req = QuietHoursRequest {
            class: MessageClass::Marketing,
            stated_zone: stated,
            address_state: state.as_ref(),
            phone: phone.as_ref(),
            prior_express_consent: false,
        };
        let got = check(&req, now);
        let outside = got.zones.iter().any(|z| {
            let h = now.with_timezone(z).hour();
            !(8..21).contains(&h)
        });
        if outside || got.zones.is_empty() {
            prop_assert!(!got.allowed_now);
        }
    }

    #[test]
    fn next_allowed_is_allowed_and_no_earlier_minute_is(
        stated in prop::option::of(zone_strategy()),
        state in state_strategy(),
        phone in phone_strategy(),
        now in now_strategy(),
    ) {
        let req = QuietHoursRequest {
            class: MessageClass::Informational,
            stated_zone: stated,
            address_state: state.as_ref(),
            phone: phone.as_ref(),
            prior_express_consent: false,
        };
        let got = check(&req, now);
        if got.allowed_now {
            prop_assert!(got.next_allowed.is_none());
        }
        if let Some(next) = got.next_allowed {
            prop_assert!(next > now);
            prop_assert!(check(&req, next).allowed_now);
            // Every minute boundary strictly between now and next is closed
            // (checked every minute for the first 3 hours, then every 7).
            let mut t = now + Duration::minutes(1);
            let mut i = 0;
            while t < next {
                prop_assert!(!check(&req, t).allowed_now, "allowed at {t} before {next}");
                i += 1;
                t += Duration::minutes(if i < 180 { 1 } else { 7 });
            }
        } else if !got.zones.is_empty() && !got.allowed_now {
            prop_assert!(false, "a zone is known but no next time was found: {got:#?}");
        }
    }
}
