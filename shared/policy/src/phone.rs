//! Phone numbers: the [`E164`] newtype built at the edge, and what a North
//! American number says about where its owner may be.
//!
//! - Parsing and validation use the `phonenumber` crate, a port of Google's
//!   libphonenumber carrying its metadata 9.0.33; the default region is US.
//! - [`area_code_zones`] and [`area_code_state`] come from libphonenumber's
//!   published prefix data (`resources/timezones/map_data.txt`, every
//!   country, and `resources/geocoding/en/1.txt`, release 9.0.43), extracted
//!   to `shared/policy/data/` and compiled into `phone/area_code_zones.rs` by
//!   `shared/policy/tools/gen_area_codes.py`. See [`PHONE_DATA_VERSION`].
//! - Validity: the crate's metadata is 9.0.33; a test checks every example
//!   number of every region in libphonenumber 9.0.43 (fixed line, mobile and
//!   the invalid example) against [`E164::parse`].
//! - [`state_zones`] is a hand-kept table cited from the IANA tz database
//!   (`zone1970.tab` comments for the US) and the US DOT time zone boundaries
//!   (49 CFR Part 71).
//!
//! An area code is only a hint of where a person is (numbers are portable and
//! phones travel), which is why quiet hours take the union of every
//! candidate zone and allow only the intersection of their windows.

mod area_code_zones;

use std::fmt;

use chrono_tz::Tz;
use phonenumber::{Mode, ParseError};
use serde::{Deserialize, Serialize};

use crate::{PolicyError, UsState};

/// Provenance of the area-code tables: the libphonenumber release and files
/// they were generated from.
pub const PHONE_DATA_VERSION: &str = concat!(
    "libphonenumber 9.0.43: resources/timezones/map_data.txt (every prefix) and ",
    "resources/geocoding/en/1.txt (NANP extract)"
);

/// A valid phone number in E.164 form (`+` then up to 15 digits).
///
/// Built only by [`E164::parse`] (or by deserializing, which parses), so a
/// value of this type is always a number libphonenumber calls valid.
/// [`fmt::Display`] and [`fmt::Debug`] show the masked form so that a number
/// never reaches a log by accident; [`E164::as_str`] gives the full number
/// for the places that need it (sending, storage keys).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164 {
    number: String,
    country_code_len: usize,
    region: Option<[u8; 2]>,
}

impl E164 {
    /// Parses a number written in any common way, with US as the default
    /// region: `(415) 555-2671`, `415.555.2671`, `+1 415 555 2671`,
    /// `1-415-555-2671`, `+44 20 7946 0958`, `tel:+1-415-555-2671`.
    ///
    /// # Errors
    ///
    /// [`PolicyError::InvalidPhone`] with one of the reasons `not a number`,
    /// `too short`, `too long`, `invalid country code`, `not a valid number
    /// for its region` or `has an extension` (an extension cannot receive a
    /// text message). The reason never echoes the input.
    pub fn parse(input: &str) -> Result<Self, PolicyError> {
        let input = input.trim();
        // A number written with its country code is parsed without a default
        // region: with US as the default, the `phonenumber` crate strips a
        // leading 1 as if it were the US national prefix from numbers of
        // other countries ("+49 1512 …", "+33 1 …").
        let international = input
            .trim_start_matches(|c: char| c == '(' || c.is_whitespace())
            .starts_with('+')
            || input.starts_with("tel:+");
        let default = (!international).then_some(phonenumber::country::US);
        let parsed = phonenumber::parse(default, input)
            .map_err(|e| PolicyError::InvalidPhone(parse_reason(&e).to_owned()))?;
        let number = parsed.format().mode(Mode::E164).to_string();
        let country_code_len = parsed.code().value().to_string().len();
        let national_len = number.len().saturating_sub(1 + country_code_len);
        if !parsed.is_valid() {
            let lengths = possible_lengths(&parsed);
            let min = lengths.iter().copied().min().map_or(0, usize::from);
            let max = lengths
                .iter()
                .copied()
                .max()
                .map_or(usize::MAX, usize::from);
            let reason = if national_len < min {
                "too short"
            } else if national_len > max {
                "too long"
            } else {
                "not a valid number for its region"
            };
            return Err(PolicyError::InvalidPhone(reason.to_owned()));
        }
        if parsed.extension().is_some() {
            return Err(PolicyError::InvalidPhone("has an extension".to_owned()));
        }
        if number.len() > 16 {
            return Err(PolicyError::InvalidPhone("too long".to_owned()));
        }
        let region = parsed
            .country()
            .id()
            .and_then(|id| region_bytes(id.as_ref()));
        Ok(Self {
            number,
            country_code_len,
            region,
        })
    }

    /// The full number in E.164 form, e.g. `+14155552671`. Never log it.
    pub fn as_str(&self) -> &str {
        &self.number
    }

    /// The number with all but its country code and last four digits
    /// replaced by `*`, e.g. `+1******2671`: safe for logs and reasons.
    pub fn masked(&self) -> String {
        let digits = self.number.get(1..).unwrap_or_default();
        let national_len = digits.len().saturating_sub(self.country_code_len);
        let keep = national_len.min(4);
        let mut out = String::with_capacity(self.number.len());
        out.push('+');
        out.push_str(digits.get(..self.country_code_len).unwrap_or_default());
        out.extend(std::iter::repeat_n('*', national_len - keep));
        out.push_str(digits.get(digits.len() - keep..).unwrap_or_default());
        out
    }

    /// Whether the number belongs to the North American Numbering Plan
    /// (country code 1: US, Canada, most of the Caribbean, US territories).
    pub fn is_nanp(&self) -> bool {
        self.country_code_len == 1 && self.number.starts_with("+1")
    }

    /// The three-digit NANP area code (NPA), or `None` outside the NANP.
    pub fn area_code(&self) -> Option<&str> {
        if self.is_nanp() {
            self.number.get(2..5)
        } else {
            None
        }
    }

    /// The ISO 3166-1 region libphonenumber assigns the number to, e.g. `US`,
    /// `CA`, `PR`, `GB`; `None` for non-geographic numbers.
    pub fn region(&self) -> Option<String> {
        self.region
            .map(|r| r.iter().map(|b| char::from(*b)).collect())
    }

    /// The national significant number of a NANP number (10 digits).
    fn nanp_national(&self) -> Option<&str> {
        if self.is_nanp() {
            self.number.get(2..)
        } else {
            None
        }
    }
}

/// A two-letter region code as bytes, so that [`E164`] stays cheap to
/// clone and compare.
fn region_bytes(code: &str) -> Option<[u8; 2]> {
    match code.as_bytes() {
        [a, b] => Some([*a, *b]),
        _ => None,
    }
}

/// Every national number length valid in the main region of the number's
/// country code (US for +1, GB for +44). libphonenumber keeps them on the
/// per-type descriptors; the general one is empty in the crate's data.
fn possible_lengths(parsed: &phonenumber::PhoneNumber) -> Vec<u16> {
    let db = &phonenumber::metadata::DATABASE;
    let regions = db.by_code(&parsed.code().value()).unwrap_or_default();
    let main: Vec<_> = regions
        .iter()
        .copied()
        .filter(|m| m.is_main_country_for_code())
        .collect();
    let chosen = if main.is_empty() { regions } else { main };
    let mut out = Vec::new();
    for m in chosen {
        let d = m.descriptors();
        let typed = [
            d.fixed_line(),
            d.mobile(),
            d.toll_free(),
            d.premium_rate(),
            d.shared_cost(),
            d.personal_number(),
            d.voip(),
            d.pager(),
            d.uan(),
            d.voicemail(),
        ];
        out.extend(d.general().possible_length().iter().copied());
        for desc in typed.into_iter().flatten() {
            out.extend(desc.possible_length().iter().copied());
        }
    }
    out
}

/// The reason for a parse failure, without the input.
fn parse_reason(err: &ParseError) -> &'static str {
    match err {
        ParseError::NoNumber | ParseError::MalformedInteger(_) => "not a number",
        ParseError::InvalidCountryCode => "invalid country code",
        ParseError::TooShortAfterIdd | ParseError::TooShortNsn => "too short",
        ParseError::TooLong => "too long",
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("E164").field(&self.masked()).finish()
    }
}

impl TryFrom<String> for E164 {
    type Error = PolicyError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<E164> for String {
    fn from(value: E164) -> Self {
        value.number
    }
}

impl std::str::FromStr for E164 {
    type Err = PolicyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Every IANA zone libphonenumber associates with the number's prefix
/// (`resources/timezones/map_data.txt`, see [`PHONE_DATA_VERSION`]).
///
/// - NANP: the longest prefix wins: the area code and up to four exchange
///   digits when the data has them (a split area code such as Idaho's 208
///   gives only Mountain time for `208-201`), otherwise every zone the data
///   lists anywhere under the area code (a superset: fail closed).
/// - Toll-free area codes ([`is_toll_free_npa`]) and area codes the data
///   does not list (non-geographic): every NANP zone, libphonenumber's
///   country-level line, so the strictest window applies.
/// - Outside the NANP: the longest prefix of the number (country code and
///   leading national digits) in the same data (`+44` Europe/London, `+61 8`
///   Australia/Perth…).
///
/// Empty for numbers outside the NANP that the data does not cover
/// (international freephone +800, satellite +881…, where libphonenumber
/// answers `Etc/Unknown`): an unknown zone, which quiet hours treat as such
/// (fail closed).
pub fn area_code_zones(number: &E164) -> Vec<Tz> {
    area_code_zone_slice(number).to_vec()
}

/// A generated table of prefixes to zones, sorted by prefix.
type PrefixTable = &'static [(u32, &'static [Tz])];

/// The static table entry behind [`area_code_zones`], without allocating.
pub(crate) fn area_code_zone_slice(number: &E164) -> &'static [Tz] {
    let Some(national) = number.nanp_national() else {
        return international_zones(number);
    };
    if is_toll_free_npa(national.get(..3).unwrap_or_default()) {
        // A toll-free number can ring anywhere in the NANP: every zone, so
        // the strictest window applies.
        return area_code_zones::NANP_ZONES;
    }
    let tables: [(usize, PrefixTable); 3] = [
        (6, area_code_zones::PREFIX_ZONES_6),
        (5, area_code_zones::PREFIX_ZONES_5),
        (4, area_code_zones::PREFIX_ZONES_4),
    ];
    for (len, table) in tables {
        if let Some(zones) = digits_of(national, len).and_then(|p| lookup(table, p)) {
            return zones;
        }
    }
    // An area code the data does not list (non-geographic: 500, 533, 900…)
    // could be anywhere in the NANP, as libphonenumber's country-level line
    // says: every NANP zone.
    digits_of(national, 3)
        .and_then(|npa| u16::try_from(npa).ok())
        .and_then(|npa| lookup(area_code_zones::NPA_ZONES, npa))
        .unwrap_or(area_code_zones::NANP_ZONES)
}

/// NANP toll-free area codes in service (800, 833, 844, 855, 866, 877,
/// 888) and those reserved for toll-free expansion (822, 880-887, 889).
pub fn is_toll_free_npa(npa: &str) -> bool {
    matches!(
        npa,
        "800"
            | "822"
            | "833"
            | "844"
            | "855"
            | "866"
            | "877"
            | "880"
            | "881"
            | "882"
            | "883"
            | "884"
            | "885"
            | "886"
            | "887"
            | "888"
            | "889"
    )
}

/// The zones of a number outside the NANP: the longest prefix of its
/// digits (country code first) in libphonenumber's time-zone data, e.g.
/// `+44` gives Europe/London, `+55 11` America/Sao_Paulo, `+7 4` the zones
/// of Russia's western regions.
fn international_zones(number: &E164) -> &'static [Tz] {
    let digits = number.as_str().get(1..).unwrap_or_default();
    (1..=digits.len().min(12))
        .rev()
        .find_map(|len| {
            let prefix = digits.get(..len)?;
            area_code_zones::INTL_ZONES
                .binary_search_by(|(p, _)| p.cmp(&prefix))
                .ok()
                .and_then(|i| area_code_zones::INTL_ZONES.get(i))
                .map(|(_, zones)| *zones)
        })
        .unwrap_or_default()
}

/// The first `len` digits of an all-digit string as a number.
fn digits_of(digits: &str, len: usize) -> Option<u32> {
    digits.get(..len)?.parse().ok()
}

/// Binary search in a table sorted by key.
fn lookup<K: Ord + Copy, T: Copy>(table: &'static [(K, T)], key: K) -> Option<T> {
    table
        .binary_search_by(|(k, _)| k.cmp(&key))
        .ok()
        .and_then(|i| table.get(i))
        .map(|(_, v)| *v)
}

/// The US state (or DC, or territory) a NANP number's area code is assigned
/// to, when that is one place.
///
/// US territories (PR, VI, GU, MP, AS) come from libphonenumber's region for
/// the number; states from its English geocoding data
/// (`resources/geocoding/en/1.txt`): the area-code-level description
/// ("Florida"), or else the `, ST` suffix shared by every exchange-level
/// description. `None` for Canada, the Caribbean, non-geographic area codes
/// and numbers outside the NANP.
pub fn area_code_state(number: &E164) -> Option<UsState> {
    area_code_state_code(number).and_then(|st| UsState::parse(st).ok())
}

/// The code behind [`area_code_state`], without allocating (quiet hours ask
/// for it on every decision).
pub(crate) fn area_code_state_code(number: &E164) -> Option<&'static str> {
    match &number.region? {
        b"PR" => Some("PR"),
        b"VI" => Some("VI"),
        b"GU" => Some("GU"),
        b"MP" => Some("MP"),
        b"AS" => Some("AS"),
        b"US" => {
            let npa = u16::try_from(digits_of(number.nanp_national()?, 3)?).ok()?;
            lookup(area_code_zones::NPA_STATES, npa)
        }
        _ => None,
    }
}

/// Every IANA zone in use somewhere in a US state, DC or territory.
///
/// Sources: the IANA tz database's `zone1970.tab` (the US rows and their
/// comments, e.g. `America/Indiana/Tell_City  Central - IN (Perry)`), and the
/// US DOT's standard time zone boundaries in 49 CFR Part 71 (for instance
/// West Wendover, Nevada, and Malheur County, Oregon, on Mountain time).
/// Zones with identical rules (New York and Detroit) are both listed when
/// the database names both for the state. Unknown codes give an empty list.
pub fn state_zones(state: &UsState) -> Vec<Tz> {
    state_zone_slice(state.code()).to_vec()
}

/// The static table behind [`state_zones`].
pub(crate) fn state_zone_slice(code: &str) -> &'static [Tz] {
    use chrono_tz::Tz as T;
    const EASTERN: &[Tz] = &[T::America__New_York];
    const CENTRAL: &[Tz] = &[T::America__Chicago];
    const MOUNTAIN: &[Tz] = &[T::America__Denver];
    const PACIFIC: &[Tz] = &[T::America__Los_Angeles];
    match code {
        "CT" | "DE" | "DC" | "GA" | "ME" | "MD" | "MA" | "NH" | "NJ" | "NY" | "NC" | "OH"
        | "PA" | "RI" | "SC" | "VT" | "VA" | "WV" => EASTERN,
        "AL" | "AR" | "IL" | "IA" | "LA" | "MN" | "MS" | "MO" | "OK" | "WI" => CENTRAL,
        "CO" | "MT" | "NM" | "UT" | "WY" => MOUNTAIN,
        "CA" | "WA" => PACIFIC,
        "AK" => &[
            T::America__Anchorage,
            T::America__Juneau,
            T::America__Sitka,
            T::America__Metlakatla,
            T::America__Yakutat,
            T::America__Nome,
            T::America__Adak,
        ],
        "AZ" => &[T::America__Phoenix, T::America__Denver],
        "FL" => &[T::America__New_York, T::America__Chicago],
        "HI" => &[T::Pacific__Honolulu],
        "ID" => &[T::America__Boise, T::America__Los_Angeles],
        "IN" => &[
            T::America__Indiana__Indianapolis,
            T::America__Indiana__Vincennes,
            T::America__Indiana__Winamac,
            T::America__Indiana__Marengo,
            T::America__Indiana__Petersburg,
            T::America__Indiana__Vevay,
            T::America__Indiana__Tell_City,
            T::America__Indiana__Knox,
            T::America__Chicago,
        ],
        "KS" => &[T::America__Chicago, T::America__Denver],
        "KY" => &[
            T::America__New_York,
            T::America__Kentucky__Louisville,
            T::America__Kentucky__Monticello,
            T::America__Chicago,
        ],
        "MI" => &[T::America__Detroit, T::America__Menominee],
        "NE" => &[T::America__Chicago, T::America__Denver],
        "NV" => &[T::America__Los_Angeles, T::America__Denver],
        "ND" => &[
            T::America__Chicago,
            T::America__North_Dakota__Center,
            T::America__North_Dakota__New_Salem,
            T::America__North_Dakota__Beulah,
            T::America__Denver,
        ],
        "OR" => &[T::America__Los_Angeles, T::America__Boise],
        "SD" => &[T::America__Chicago, T::America__Denver],
        "TN" => &[T::America__Chicago, T::America__New_York],
        "TX" => &[T::America__Chicago, T::America__Denver],
        "PR" => &[T::America__Puerto_Rico],
        "VI" => &[T::America__St_Thomas],
        "GU" => &[T::Pacific__Guam],
        "MP" => &[T::Pacific__Saipan],
        "AS" => &[T::Pacific__Pago_Pago],
        _ => &[],
    }
}

/// The provenance string of the generated tables, for diagnostics.
pub fn area_code_source() -> &'static str {
    area_code_zones::SOURCE_VERSION
}
