//! Quiet hours: federal and state calling windows, in the recipient's local
//! time, in every zone the recipient may be in (compliance-rules §6).
//!
//! The rules are data: `shared/policy/data/quiet_hours.json`, compiled into
//! the crate with `include_str!` and parsed once. Each rule has a stable id
//! (`quiet_hours.federal`, `quiet_hours.state.TX`), a citation and an
//! effective date; the federal rule is 47 CFR 64.1200(c)(1) and the state
//! rules cite the statutes named in the table (most marked "secondary
//! source": their text has not been checked by a lawyer).
//!
//! Semantics:
//! - Candidate zones are the stated zone, every zone of the address state
//!   ([`crate::phone::state_zones`]) and every zone of the number's area code
//!   ([`crate::phone::area_code_zones`]).
//! - Applicable rules are the federal rule and the rule of every candidate
//!   state: the address state and the area code's state.
//! - A send is allowed only when every applicable rule's window is open in
//!   every candidate zone. A window is half-open, `start <= local < end`: at
//!   21:00:00 the federal window is closed.
//! - No known zone fails closed: the send is deferred with no time to retry.
//! - Otherwise [`QuietHoursResult::next_allowed`] is the earliest instant at
//!   or after `now` when everything is open, found by jumping between window
//!   starts (DST-correct through chrono-tz), within [`SEARCH_HORIZON_DAYS`].

use std::fmt::Write as _;
use std::sync::OnceLock;

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone,
    Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::Deserialize;
use smallvec::SmallVec;

use crate::phone::{area_code_state_code, area_code_zone_slice, state_zone_slice, E164};
use crate::{MessageClass, PolicyError, RuleOutcome, UsState, Verdict};

mod catalog;

pub use catalog::catalog;

/// The version of `data/quiet_hours.json` this build embeds. A test checks
/// that it equals the table's own `version`.
pub const QUIET_HOURS_VERSION: &str = "2026-12-06";

/// How far ahead [`check`] looks for the next allowed instant. Windows open
/// every few days at worst (no Sundays plus a Monday holiday), so a longer
/// gap means the data closes every window and the answer is "unknown".
pub const SEARCH_HORIZON_DAYS: i64 = 8;

/// Rule id of the fail-closed outcome when no time zone is known.
pub const NO_ZONE_RULE_ID: &str = "quiet_hours.zone_unknown";

/// Rule id of the fail-closed outcome when the embedded table is invalid.
pub const TABLE_RULE_ID: &str = "quiet_hours.table";

static TABLE_JSON: &str = include_str!("../data/quiet_hours.json");

/// What [`check`] needs to know about a message and its recipient.
#[derive(Debug, Clone, Copy)]
pub struct QuietHoursRequest<'a> {
    /// The message's class; a rule may apply to some classes only.
    pub class: MessageClass,
    /// The time zone the contact told us, if any.
    pub stated_zone: Option<Tz>,
    /// The state of the contact's postal address, if known.
    pub address_state: Option<&'a UsState>,
    /// The number the message goes to (its area code hints at zone and state).
    pub phone: Option<&'a E164>,
    /// The send relies on the recipient's own recorded consent (prior
    /// express or express written consent in the ledger). Rows marked
    /// `waived_by_prior_consent` (Virginia) then do not apply. False when
    /// unknown: an unstated fact never relaxes a window.
    pub prior_express_consent: bool,
}

/// The verdict of the quiet-hours rules at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuietHoursResult {
    /// Whether every applicable window is open in every candidate zone now.
    pub allowed_now: bool,
    /// When not allowed: the earliest instant at which it will be. `None`
    /// when allowed now, when no zone is known, or when nothing opens within
    /// [`SEARCH_HORIZON_DAYS`].
    pub next_allowed: Option<DateTime<Utc>>,
    /// The candidate zones considered, in the order found, without repeats.
    pub zones: Zones,
    /// One outcome per rule consulted. Never contains a phone number.
    pub outcomes: Vec<RuleOutcome>,
}

/// One US federal holiday in one year (5 U.S.C. 6103(a)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holiday {
    /// Its name, e.g. `Independence Day`.
    pub name: &'static str,
    /// The legal date.
    pub date: NaiveDate,
    /// The date it is observed: a Saturday holiday moves to the Friday
    /// before, a Sunday holiday to the Monday after (5 U.S.C. 6103(b),
    /// Executive Order 11582).
    pub observed: NaiveDate,
}

/// The US federal holidays of a year (5 U.S.C. 6103(a)): New Year's Day,
/// Martin Luther King Jr. Day (from 1986), Washington's Birthday, Memorial
/// Day, Juneteenth (from 2021), Independence Day, Labor Day, Columbus Day,
/// Veterans Day, Thanksgiving Day and Christmas Day, with observed dates.
/// Earlier years use today's dates for the other holidays.
pub fn federal_holidays(year: i32) -> Vec<Holiday> {
    let mut out = Vec::with_capacity(11);
    let mut fixed = |name: &'static str, month: u32, day: u32| {
        if let Some(date) = NaiveDate::from_ymd_opt(year, month, day) {
            let observed = match date.weekday() {
                Weekday::Sat => date.pred_opt().unwrap_or(date),
                Weekday::Sun => date.succ_opt().unwrap_or(date),
                _ => date,
            };
            out.push(Holiday {
                name,
                date,
                observed,
            });
        }
    };
    fixed("New Year's Day", 1, 1);
    if year >= 2021 {
        fixed("Juneteenth National Independence Day", 6, 19);
    }
    fixed("Independence Day", 7, 4);
    fixed("Veterans Day", 11, 11);
    fixed("Christmas Day", 12, 25);
    let mut floating = |name: &'static str, date: Option<NaiveDate>| {
        if let Some(date) = date {
            out.push(Holiday {
                name,
                date,
                observed: date,
            });
        }
    };
    if year >= 1986 {
        floating(
            "Birthday of Martin Luther King, Jr.",
            NaiveDate::from_weekday_of_month_opt(year, 1, Weekday::Mon, 3),
        );
    }
    floating(
        "Washington's Birthday",
        NaiveDate::from_weekday_of_month_opt(year, 2, Weekday::Mon, 3),
    );
    floating("Memorial Day", last_monday_of_may(year));
    floating(
        "Labor Day",
        NaiveDate::from_weekday_of_month_opt(year, 9, Weekday::Mon, 1),
    );
    floating(
        "Columbus Day",
        NaiveDate::from_weekday_of_month_opt(year, 10, Weekday::Mon, 2),
    );
    floating(
        "Thanksgiving Day",
        NaiveDate::from_weekday_of_month_opt(year, 11, Weekday::Thu, 4),
    );
    out.sort_by_key(|h| h.date);
    out
}

fn last_monday_of_may(year: i32) -> Option<NaiveDate> {
    let last = NaiveDate::from_ymd_opt(year, 5, 31)?;
    let back = last.weekday().num_days_from_monday();
    last.checked_sub_signed(Duration::days(i64::from(back)))
}

/// The federal holiday falling on `date`, on its legal or its observed date
/// (both count, so that a rule closed on holidays is closed on both). A New
/// Year's Day on a Saturday is observed on December 31 of the year before.
pub fn federal_holiday_on(date: NaiveDate) -> Option<&'static str> {
    // Only January 1 can be observed in the previous year.
    let years: &[i32] = if date.month() == 12 && date.day() == 31 {
        &[date.year(), date.year() + 1]
    } else {
        &[date.year()]
    };
    years.iter().find_map(|y| {
        federal_holidays(*y)
            .into_iter()
            .find(|h| h.date == date || h.observed == date)
            .map(|h| h.name)
    })
}

/// Checks the quiet-hours rules for one message at `now`.
///
/// Pure and deterministic. See the module docs for the semantics; the result
/// always says which rules were consulted and why each passed or deferred.
pub fn check(req: &QuietHoursRequest<'_>, now: DateTime<Utc>) -> QuietHoursResult {
    check_with(req, now, Vec::new())
}

/// Candidate zones, held inline for the usual few.
pub type Zones = SmallVec<[Tz; 4]>;

/// [`check`], appending its outcomes to `outcomes` (returned in the result),
/// so that a caller collecting every rule's outcome allocates one list.
pub fn check_with(
    req: &QuietHoursRequest<'_>,
    now: DateTime<Utc>,
    mut outcomes: Vec<RuleOutcome>,
) -> QuietHoursResult {
    let table = match table() {
        Ok(t) => t,
        Err(e) => {
            outcomes.push(RuleOutcome::new(
                TABLE_RULE_ID,
                QUIET_HOURS_VERSION,
                Verdict::Fail,
                format!("{e}; fail closed"),
            ));
            return QuietHoursResult {
                allowed_now: false,
                next_allowed: None,
                zones: Zones::new(),
                outcomes,
            };
        }
    };

    // The states the recipient may be in, as two-letter codes compared
    // without allocating: this runs on every decision.
    let states: [Option<[u8; 2]>; 2] = [
        req.address_state.and_then(|s| state_code(s.code())),
        req.phone
            .and_then(area_code_state_code)
            .and_then(state_code),
    ];

    let mut zones = Zones::new();
    let mut add = |z: Tz| {
        if !zones.contains(&z) {
            zones.push(z);
        }
    };
    if let Some(z) = req.stated_zone {
        add(z);
    }
    if let Some(s) = req.address_state {
        state_zone_slice(s.code())
            .iter()
            .copied()
            .for_each(&mut add);
    }
    if let Some(p) = req.phone {
        area_code_zone_slice(p).iter().copied().for_each(&mut add);
    }

    let today = now.date_naive();
    // The rules that apply to the recipient, in table order; an inactive
    // one (other class, not yet in force) gets a not-applicable outcome, and
    // an active one a slot in `outcomes`, filled below, to keep table order.
    let mut active: SmallVec<[&Rule; 4]> = SmallVec::new();
    let mut slots: SmallVec<[usize; 4]> = SmallVec::new();
    for rule in &table.rules {
        let applies_to_recipient = match rule.state {
            None => true,
            Some(code) => states.contains(&Some(code)),
        };
        if !applies_to_recipient {
            continue;
        }
        let skip = if !rule.classes.contains(req.class) {
            Some(format!("does not apply to {} messages", req.class.as_str()))
        } else if today < rule.effective_from {
            Some(format!("not in force before {}", rule.effective_from))
        } else if let Some(until) = rule.effective_until.filter(|until| today >= *until) {
            Some(format!("not in force from {until}"))
        } else if rule.waived_by_prior_consent && req.prior_express_consent {
            Some("does not apply: the recipient's prior express consent is recorded".to_owned())
        } else {
            None
        };
        match skip {
            Some(detail) => outcomes.push(RuleOutcome::new(
                rule.id.as_str(),
                table.version.as_str(),
                Verdict::NotApplicable,
                detail,
            )),
            None => {
                active.push(rule);
                slots.push(outcomes.len());
                outcomes.push(RuleOutcome::new(
                    rule.id.as_str(),
                    table.version.as_str(),
                    Verdict::Pass,
                    "",
                ));
            }
        }
    }
    if zones.is_empty() {
        for slot in slots.iter().rev() {
            outcomes.remove(*slot);
        }
        outcomes.push(RuleOutcome::new(
            NO_ZONE_RULE_ID,
            table.version.as_str(),
            Verdict::Defer,
            "no time zone known; fail closed",
        ));
        return QuietHoursResult {
            allowed_now: false,
            next_allowed: None,
            zones,
            outcomes,
        };
    }

    let locals: SmallVec<[DateTime<Tz>; 4]> = zones.iter().map(|z| now.with_timezone(z)).collect();
    let mut allowed_now = true;
    for (rule, slot) in active.iter().zip(&slots) {
        let mut closed = String::new();
        for (local, zone) in locals.iter().zip(&zones) {
            if let Err(why) = rule.open_at(local) {
                if !closed.is_empty() {
                    closed.push_str("; ");
                }
                why.describe(&mut closed, local, zone, rule);
            }
        }
        let outcome = if closed.is_empty() {
            RuleOutcome::new(
                rule.id.as_str(),
                table.version.as_str(),
                Verdict::Pass,
                open_in(&zones),
            )
        } else {
            allowed_now = false;
            RuleOutcome::new(
                rule.id.as_str(),
                table.version.as_str(),
                Verdict::Defer,
                closed,
            )
        };
        if let Some(place) = outcomes.get_mut(*slot) {
            *place = outcome;
        }
    }

    // Only a closed window needs the search.
    let next_allowed = if allowed_now {
        None
    } else {
        next_allowed(&active, &zones, now)
    };
    QuietHoursResult {
        allowed_now,
        next_allowed,
        zones,
        outcomes,
    }
}

/// `open in A, B`, written without intermediate allocations.
fn open_in(zones: &[Tz]) -> String {
    let mut out = String::with_capacity(8 + 24 * zones.len());
    out.push_str("open in ");
    for (i, z) in zones.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(z.name());
    }
    out
}

/// The earliest instant `>= now` at which every rule is open in every zone.
///
/// Each step moves `t` to the latest of the next openings of the rules that
/// are closed at `t`. No instant skipped over can be allowed (some rule was
/// closed throughout), so the first `t` where all are open is the earliest.
fn next_allowed(rules: &[&Rule], zones: &[Tz], now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let horizon = now + Duration::days(SEARCH_HORIZON_DAYS);
    let mut t = now;
    // Every step opens at least one (rule, zone) pair at a window start; the
    // bound only guards against malformed data.
    for _ in 0..512 {
        let mut all_open = true;
        let mut next = t;
        for zone in zones {
            let local = t.with_timezone(zone);
            for rule in rules {
                if rule.open_at(&local).is_err() {
                    all_open = false;
                    let opens = rule.next_open(zone, t)?;
                    if opens > next {
                        next = opens;
                    }
                }
            }
        }
        if all_open {
            return Some(t);
        }
        if next <= t {
            // A data quirk (a window that opens and closes at once): move on.
            next = t + Duration::minutes(1);
        }
        if next > horizon {
            return None;
        }
        t = next;
    }
    None
}

/// Why a rule's window is closed at a local instant.
enum Closed {
    Sunday,
    Holiday(&'static str),
    NoWindow,
    Before(u32),
    After(u32),
}

impl Closed {
    /// Appends why the rule is closed at `local` in `zone` to `out`.
    fn describe(&self, out: &mut String, local: &DateTime<Tz>, zone: &Tz, rule: &Rule) {
        let zone = zone.name();
        // Writing to a String cannot fail.
        let _ = match self {
            Closed::Sunday => write!(out, "Sunday in {zone}: no sends on Sundays"),
            Closed::Holiday(name) => write!(
                out,
                "{} in {zone} is a federal holiday ({name}): no sends on holidays",
                local.date_naive()
            ),
            Closed::NoWindow => write!(out, "{} in {zone}: no window on that day", local.weekday()),
            Closed::Before(start) => write!(
                out,
                "{:02}:{:02} local in {zone} is before {:02}:{:02}",
                local.hour(),
                local.minute(),
                start / 60,
                start % 60
            ),
            Closed::After(end) => write!(
                out,
                "{:02}:{:02} local in {zone} is after {:02}:{:02}",
                local.hour(),
                local.minute(),
                end / 60,
                end % 60
            ),
        };
        if matches!(self, Closed::Before(_) | Closed::After(_)) && !rule.uniform {
            let _ = write!(out, " ({} window)", local.weekday());
        }
    }
}

/// A two-letter state code as bytes.
fn state_code(code: &str) -> Option<[u8; 2]> {
    match code.as_bytes() {
        [a, b] => Some([*a, *b]),
        _ => None,
    }
}

/// A validated rule, ready to evaluate.
#[derive(Debug)]
struct Rule {
    id: String,
    /// Two-letter code, upper case, as bytes (compared on every decision).
    state: Option<[u8; 2]>,
    /// Window per weekday, Monday first, in minutes after local midnight,
    /// half-open; `None` is a closed day.
    days: [Option<(u32, u32)>; 7],
    /// Whether every open day has the same window (for shorter details).
    uniform: bool,
    no_sunday: bool,
    no_holidays: bool,
    classes: ClassSet,
    effective_from: NaiveDate,
    /// No longer in force from this date (a row replaced by a later one).
    effective_until: Option<NaiveDate>,
    /// The row does not apply when the recipient's prior consent is recorded.
    waived_by_prior_consent: bool,
    /// The row as written, for [`catalog`].
    raw: RawRule,
}

#[derive(Debug, Clone, Copy)]
struct ClassSet(u8);

impl ClassSet {
    fn bit(class: MessageClass) -> u8 {
        match class {
            MessageClass::Transactional => 1,
            MessageClass::Informational => 2,
            MessageClass::Marketing => 4,
        }
    }
    fn contains(self, class: MessageClass) -> bool {
        self.0 & Self::bit(class) != 0
    }
}

impl Rule {
    fn window_on(&self, date: NaiveDate) -> Result<(u32, u32), Closed> {
        let wd = date.weekday();
        if self.no_sunday && wd == Weekday::Sun {
            return Err(Closed::Sunday);
        }
        if self.no_holidays {
            if let Some(name) = federal_holiday_on(date) {
                return Err(Closed::Holiday(name));
            }
        }
        let idx = usize::try_from(wd.num_days_from_monday()).unwrap_or(0);
        self.days
            .get(idx)
            .copied()
            .flatten()
            .ok_or(Closed::NoWindow)
    }

    fn open_at(&self, local: &DateTime<Tz>) -> Result<(), Closed> {
        let (start, end) = self.window_on(local.date_naive())?;
        let secs = local.num_seconds_from_midnight();
        if secs < start * 60 {
            Err(Closed::Before(start))
        } else if secs >= end * 60 {
            Err(Closed::After(end))
        } else {
            Ok(())
        }
    }

    /// The first window start strictly after `t` (when closed at `t`) in
    /// `zone`: `None` when no window opens within the horizon.
    fn next_open(&self, zone: &Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let local = t.with_timezone(zone);
        let today = local.date_naive();
        for offset in 0..=SEARCH_HORIZON_DAYS + 1 {
            let date = today.checked_add_signed(Duration::days(offset))?;
            let Ok((start, _end)) = self.window_on(date) else {
                continue;
            };
            let time = NaiveTime::from_num_seconds_from_midnight_opt(start * 60, 0)?;
            if let Some(at) = first_instant_at_or_after(zone, date.and_time(time), t) {
                if at > t {
                    return Some(at);
                }
            }
        }
        None
    }
}

/// The first instant whose local time in `zone` is `local`, not before
/// `not_before`. A local time skipped by a DST change resolves to the first
/// valid instant after it (the transition); a repeated one to its earliest
/// occurrence that is not before `not_before`.
fn first_instant_at_or_after(
    zone: &Tz,
    local: NaiveDateTime,
    not_before: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(at) => Some(at.with_timezone(&Utc)),
        LocalResult::Ambiguous(first, second) => {
            let first = first.with_timezone(&Utc);
            if first >= not_before {
                Some(first)
            } else {
                Some(second.with_timezone(&Utc))
            }
        }
        LocalResult::None => {
            // Gaps are at most a few hours and start on a whole minute.
            (1..=24 * 60).find_map(|m| {
                let later = local + Duration::minutes(m);
                zone.from_local_datetime(&later)
                    .earliest()
                    .map(|at| at.with_timezone(&Utc))
            })
        }
    }
}

/// The whole table, parsed.
#[derive(Debug)]
struct Table {
    version: String,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize)]
struct RawTable {
    table: String,
    version: String,
    rules: Vec<RawRule>,
}

#[derive(Debug, Clone, Deserialize)]
struct RawRule {
    id: String,
    #[serde(default)]
    jurisdiction: String,
    state: Option<String>,
    windows: std::collections::BTreeMap<String, Option<RawWindow>>,
    #[serde(default)]
    no_sunday: bool,
    #[serde(default)]
    no_holidays: bool,
    #[serde(default)]
    classes: Option<Vec<MessageClass>>,
    effective_from: NaiveDate,
    #[serde(default)]
    effective_until: Option<NaiveDate>,
    #[serde(default)]
    waived_by_prior_consent: bool,
    #[serde(default)]
    effective_from_basis: String,
    source: String,
    #[serde(default)]
    source_quality: String,
    #[serde(default)]
    note: Option<String>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
struct RawWindow {
    start: HhMm,
    end: HhMm,
}

/// A local time of day written `HH:MM`; `24:00` is the end of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct HhMm(u32);

impl<'de> Deserialize<'de> for HhMm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_hhmm(&s)
            .map(HhMm)
            .ok_or_else(|| serde::de::Error::custom("time of day must be HH:MM, 00:00 to 24:00"))
    }
}

fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let h: u32 = h.parse().ok()?;
    let m: u32 = m.parse().ok()?;
    let total = h * 60 + m;
    (m < 60 && total <= 24 * 60).then_some(total)
}

fn table() -> Result<&'static Table, PolicyError> {
    static TABLE: OnceLock<Result<Table, PolicyError>> = OnceLock::new();
    TABLE
        .get_or_init(|| parse_table(TABLE_JSON))
        .as_ref()
        .map_err(Clone::clone)
}

fn table_error(reason: impl Into<String>) -> PolicyError {
    PolicyError::RuleTable {
        table: "quiet_hours",
        reason: reason.into(),
    }
}

const DAY_KEYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_table(json: &str) -> Result<Table, PolicyError> {
    let raw: RawTable = serde_json::from_str(json).map_err(|e| table_error(e.to_string()))?;
    if raw.table != "quiet_hours" {
        return Err(table_error("the table field is not quiet_hours"));
    }
    let mut rules = Vec::with_capacity(raw.rules.len());
    for r in raw.rules {
        if r.source.trim().is_empty() {
            return Err(table_error(format!("rule {} has no source", r.id)));
        }
        if rules.iter().any(|x: &Rule| x.id == r.id) {
            return Err(table_error(format!("rule {} appears twice", r.id)));
        }
        if let Some(key) = r
            .windows
            .keys()
            .find(|k| *k != "default" && !DAY_KEYS.contains(&k.as_str()))
        {
            return Err(table_error(format!(
                "rule {} has an unknown window key {key}",
                r.id
            )));
        }
        let default = r.windows.get("default").copied().flatten();
        let mut days = [None; 7];
        for (slot, key) in days.iter_mut().zip(DAY_KEYS) {
            let w = match r.windows.get(key) {
                Some(explicit) => *explicit,
                None => default,
            };
            if let Some(w) = w {
                if w.start.0 >= w.end.0 {
                    return Err(table_error(format!(
                        "rule {} has a window that ends before it starts",
                        r.id
                    )));
                }
                *slot = Some((w.start.0, w.end.0));
            }
        }
        let first = days.iter().flatten().next().copied();
        let uniform = days.iter().flatten().all(|w| Some(*w) == first);
        let classes = match &r.classes {
            None => ClassSet(7),
            Some(list) => ClassSet(list.iter().fold(0, |acc, c| acc | ClassSet::bit(*c))),
        };
        let state = match &r.state {
            Some(s) => Some(
                UsState::parse(s)
                    .ok()
                    .and_then(|st| state_code(st.code()))
                    .ok_or_else(|| table_error(format!("rule {} has an invalid state", r.id)))?,
            ),
            None => None,
        };
        if r.effective_until
            .is_some_and(|until| until <= r.effective_from)
        {
            return Err(table_error(format!("rule {} ends before it starts", r.id)));
        }
        rules.push(Rule {
            id: r.id.clone(),
            state,
            days,
            uniform,
            no_sunday: r.no_sunday,
            no_holidays: r.no_holidays,
            classes,
            effective_from: r.effective_from,
            effective_until: r.effective_until,
            waived_by_prior_consent: r.waived_by_prior_consent,
            raw: r,
        });
    }
    Ok(Table {
        version: raw.version,
        rules,
    })
}

/// The embedded table's version, for a test that checks
/// [`QUIET_HOURS_VERSION`] matches it.
///
/// # Errors
///
/// [`PolicyError::RuleTable`] when the embedded table does not parse.
pub fn table_version() -> Result<&'static str, PolicyError> {
    table().map(|t| t.version.as_str())
}

/// The ids of every rule in the embedded table, in table order.
///
/// # Errors
///
/// [`PolicyError::RuleTable`] when the embedded table does not parse.
pub fn rule_ids() -> Result<Vec<&'static str>, PolicyError> {
    table().map(|t| t.rules.iter().map(|r| r.id.as_str()).collect())
}

/// Parses a quiet-hours table from JSON and reports what is wrong with it,
/// so that an edited table can be validated before it is embedded.
///
/// # Errors
///
/// [`PolicyError::RuleTable`] with the reason.
pub fn validate_table(json: &str) -> Result<(), PolicyError> {
    parse_table(json).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(h, min, 0))
            .unwrap()
    }

    #[test]
    fn a_skipped_local_time_resolves_to_the_transition_instant() {
        // 02:30 does not exist in New York on 2026-03-08; 03:00 EDT is 07:00 UTC.
        let zone = chrono_tz::America::New_York;
        let not_before = Utc.with_ymd_and_hms(2026, 3, 8, 0, 0, 0).unwrap();
        let got = first_instant_at_or_after(&zone, naive(2026, 3, 8, 2, 30), not_before);
        assert_eq!(
            got,
            Some(Utc.with_ymd_and_hms(2026, 3, 8, 7, 0, 0).unwrap())
        );
    }

    #[test]
    fn a_repeated_local_time_resolves_to_its_first_occurrence_not_in_the_past() {
        // 01:30 happens twice in Chicago on 2026-11-01: 06:30 and 07:30 UTC.
        let zone = chrono_tz::America::Chicago;
        let local = naive(2026, 11, 1, 1, 30);
        let early = Utc.with_ymd_and_hms(2026, 11, 1, 5, 0, 0).unwrap();
        let between = Utc.with_ymd_and_hms(2026, 11, 1, 7, 0, 0).unwrap();
        assert_eq!(
            first_instant_at_or_after(&zone, local, early),
            Some(Utc.with_ymd_and_hms(2026, 11, 1, 6, 30, 0).unwrap())
        );
        assert_eq!(
            first_instant_at_or_after(&zone, local, between),
            Some(Utc.with_ymd_and_hms(2026, 11, 1, 7, 30, 0).unwrap())
        );
    }

    #[test]
    fn times_of_day_parse_strictly() {
        assert_eq!(parse_hhmm("08:00"), Some(480));
        assert_eq!(parse_hhmm("24:00"), Some(1440));
        assert_eq!(parse_hhmm("24:01"), None);
        assert_eq!(parse_hhmm("8:00"), None);
        assert_eq!(parse_hhmm("08:60"), None);
    }
}
