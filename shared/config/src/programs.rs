//! The programs a deployment runs, as a deployer writes them: one JSON
//! document (an array of [`ProgramConfig`]) checked whole before anything
//! uses it. The same check runs when `optline-ops programs put` stores the
//! document in the table and when a function loads it at cold start, so a
//! document that fails it is never used: the function refuses to start and
//! says which field is wrong (never its value).

use std::collections::BTreeSet;

use crate::{NumberType, ProgramConfig, SenderKind};

/// The largest programs document, in bytes (a DynamoDB item holds 400 KB).
pub const MAX_PROGRAMS_DOCUMENT: usize = 64 * 1024;

/// The most programs one deployment runs.
pub const MAX_PROGRAMS: usize = 50;

/// The highest sending rate a program may state, per second (a short code's
/// 100 with room for a pool of them; a higher figure is a typo).
pub const MAX_MESSAGES_PER_SECOND: u32 = 1_000;

/// The longest lead time for a reminder or follow-up, in hours (30 days).
pub const MAX_LEAD_HOURS: u32 = 720;

/// Why a programs document cannot be used: every problem found, each naming
/// its field (`programs[1].time_zone`), never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramsError(pub Vec<String>);

impl std::fmt::Display for ProgramsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the programs document is invalid: {}", self.0.join("; "))
    }
}

impl std::error::Error for ProgramsError {}

/// Parses and checks a programs document (a JSON array of programs).
///
/// # Errors
///
/// Every problem found: size, JSON shape (unknown fields are refused, so a
/// misspelt field is not silently ignored), and each program's values.
pub fn parse_programs(json: &str) -> Result<Vec<ProgramConfig>, ProgramsError> {
    if json.len() > MAX_PROGRAMS_DOCUMENT {
        return Err(ProgramsError(vec![format!(
            "the document is {} bytes; at most {MAX_PROGRAMS_DOCUMENT}",
            json.len()
        )]));
    }
    let programs: Vec<ProgramConfig> = serde_json::from_str(json).map_err(|e| {
        // serde's message names the field or the expected type; it never
        // quotes a value for these types except an unknown field's name.
        ProgramsError(vec![format!(
            "not a JSON array of programs (line {}, column {}): {}",
            e.line(),
            e.column(),
            e
        )])
    })?;
    validate_programs(&programs)?;
    Ok(programs)
}

/// Checks programs as a whole and one by one.
///
/// # Errors
///
/// Every problem found.
pub fn validate_programs(programs: &[ProgramConfig]) -> Result<(), ProgramsError> {
    let mut problems = Vec::new();
    if programs.is_empty() {
        problems.push("no program: at least one is needed".to_owned());
    }
    if programs.len() > MAX_PROGRAMS {
        problems.push(format!(
            "{} programs; at most {MAX_PROGRAMS}",
            programs.len()
        ));
    }
    let mut ids = BTreeSet::new();
    for (i, program) in programs.iter().enumerate() {
        let at = |field: &str| format!("programs[{i}].{field}");
        if !ids.insert(program.id.as_str()) {
            problems.push(format!("{}: the same id as an earlier program", at("id")));
        }
        check_program(program, &at, &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ProgramsError(problems))
    }
}

fn check_program(program: &ProgramConfig, at: &dyn Fn(&str) -> String, out: &mut Vec<String>) {
    let id_ok = (1..=64).contains(&program.id.len())
        && program
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !id_ok {
        out.push(format!(
            "{}: 1 to 64 of a-z, 0-9, '-' and '_' (ids are keys in consent records)",
            at("id")
        ));
    }
    // CTIA: every text names the brand; keep it short enough to leave room.
    if !(1..=40).contains(&program.name.trim().chars().count()) {
        out.push(format!(
            "{}: a brand name of 1 to 40 characters",
            at("name")
        ));
    }
    if !(3..=100).contains(&program.support_contact.trim().chars().count()) {
        out.push(format!(
            "{}: a phone number or URL of 3 to 100 characters (HELP replies carry it)",
            at("support_contact")
        ));
    }
    if program.frequency.trim().is_empty() || program.frequency.chars().count() > 60 {
        out.push(format!(
            "{}: a frequency statement of 1 to 60 characters (CTIA HELP)",
            at("frequency")
        ));
    }
    if !(1..=MAX_MESSAGES_PER_SECOND).contains(&program.messages_per_second) {
        out.push(format!(
            "{}: a whole number from 1 to {MAX_MESSAGES_PER_SECOND}",
            at("messages_per_second")
        ));
    }
    if program.daily_cap == Some(0) {
        out.push(format!(
            "{}: at least 1 message part a day (leave it out for no cap)",
            at("daily_cap")
        ));
    }
    if program.no_show_baseline_percent.is_some_and(|p| p > 100) {
        out.push(format!(
            "{}: a percentage from 0 to 100",
            at("no_show_baseline_percent")
        ));
    }
    if !(1..=MAX_LEAD_HOURS).contains(&program.reminder_lead_hours) {
        out.push(format!(
            "{}: 1 to {MAX_LEAD_HOURS} hours",
            at("reminder_lead_hours")
        ));
    }
    if program.follow_up_lead_hours >= program.reminder_lead_hours
        && program.follow_up_lead_hours != 0
    {
        out.push(format!(
            "{}: 0 (none) or fewer hours than reminder_lead_hours, so the follow-up comes after the reminder",
            at("follow_up_lead_hours")
        ));
    }
    if let Some(zone) = &program.time_zone {
        if zone.parse::<chrono_tz::Tz>().is_err() {
            out.push(format!(
                "{}: an IANA time zone such as America/Chicago",
                at("time_zone")
            ));
        }
    }
    if let Some(number) = &program.origination_number {
        if !(is_e164(number) || is_sender_id(number)) {
            out.push(format!(
                "{}: an E.164 number (+15555550100) or an alphanumeric sender id of 1 to 11 characters",
                at("origination_number")
            ));
        }
    }
    if let Some(sid) = &program.messaging_service_sid {
        let ok = sid.len() == 34
            && sid.starts_with("MG")
            && sid.bytes().skip(2).all(|b| b.is_ascii_hexdigit());
        if !ok {
            out.push(format!(
                "{}: MG followed by 32 hexadecimal digits",
                at("messaging_service_sid")
            ));
        }
    }
    if let Some(from) = &program.from_number {
        let short_code = (5..=6).contains(&from.len()) && from.bytes().all(|b| b.is_ascii_digit());
        if !(is_e164(from) || short_code) {
            out.push(format!(
                "{}: an E.164 number or a short code",
                at("from_number")
            ));
        }
    }
    check_pool(program, at, out);
    if program.sender == SenderKind::Twilio
        && program.messaging_service_sid.is_none()
        && program.from_number.is_none()
        && program.numbers.is_empty()
    {
        out.push(format!(
            "{}: a Twilio program needs messaging_service_sid, from_number or numbers",
            at("sender")
        ));
    }
    for (j, region) in program.audience.regions.iter().enumerate() {
        let bytes = region.as_bytes();
        let country = bytes.len() == 2 && bytes.iter().all(u8::is_ascii_uppercase);
        let subdivision = bytes.len() >= 4
            && bytes.len() <= 6
            && bytes.get(2) == Some(&b'-')
            && bytes.iter().take(2).all(u8::is_ascii_uppercase)
            && bytes
                .iter()
                .skip(3)
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !(country || subdivision) {
            out.push(format!(
                "{}: ISO 3166-1 (US) or ISO 3166-2 (US-FL)",
                at(&format!("audience.regions[{j}]"))
            ));
        }
    }
    if program.audience.time_sensitive_grace_minutes > 24 * 60 {
        out.push(format!(
            "{}: at most 1440 minutes",
            at("audience.time_sensitive_grace_minutes")
        ));
    }
}

/// Most numbers in one program's pool.
pub const MAX_POOL_NUMBERS: usize = 400;

/// US toll-free area codes (NANP 8XX).
const TOLL_FREE_AREA_CODES: [&str; 7] = ["800", "833", "844", "855", "866", "877", "888"];

fn check_pool(program: &ProgramConfig, at: &dyn Fn(&str) -> String, out: &mut Vec<String>) {
    if program.numbers.is_empty() {
        return;
    }
    if program.numbers.len() > MAX_POOL_NUMBERS {
        out.push(format!(
            "{}: at most {MAX_POOL_NUMBERS} numbers",
            at("numbers")
        ));
    }
    // A pool is the program's sender: a second, single sender beside it
    // would be paced apart and break the contact's one number.
    for (field, set) in [
        (
            "messaging_service_sid",
            program.messaging_service_sid.is_some(),
        ),
        ("from_number", program.from_number.is_some()),
        ("origination_number", program.origination_number.is_some()),
    ] {
        if set {
            out.push(format!(
                "{}: leave it out when the program has numbers (a Twilio Messaging Service is a pool of its own)",
                at(field)
            ));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (j, number) in program.numbers.iter().enumerate() {
        let here = format!("numbers[{j}]");
        if !seen.insert(number.number.as_str()) {
            out.push(format!("{}: listed twice", at(&here)));
        }
        let toll_free_code = number
            .number
            .strip_prefix("+1")
            .and_then(|d| d.get(..3))
            .is_some_and(|area| TOLL_FREE_AREA_CODES.contains(&area));
        let fits = match number.kind {
            NumberType::ShortCode => {
                (5..=6).contains(&number.number.len())
                    && number.number.bytes().all(|b| b.is_ascii_digit())
            }
            NumberType::TollFree => is_e164(&number.number) && toll_free_code,
            NumberType::TenDlc => {
                is_e164(&number.number) && number.number.starts_with("+1") && !toll_free_code
            }
        };
        if !fits {
            let want = match number.kind {
                NumberType::ShortCode => "5 or 6 digits",
                NumberType::TollFree => {
                    "an E.164 toll-free number (+1 800, 833, 844, 855, 866, 877 or 888)"
                }
                NumberType::TenDlc => "an E.164 US number outside the toll-free codes",
            };
            out.push(format!(
                "{}: a {} number is {want}",
                at(&format!("{here}.number")),
                number.kind.as_str()
            ));
        }
        if number
            .parts_per_second
            .is_some_and(|r| !(1..=MAX_MESSAGES_PER_SECOND).contains(&r))
        {
            out.push(format!(
                "{}: a whole number from 1 to {MAX_MESSAGES_PER_SECOND}",
                at(&format!("{here}.parts_per_second"))
            ));
        }
    }
}

fn is_e164(number: &str) -> bool {
    number
        .strip_prefix('+')
        .is_some_and(|d| (8..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
        && !number.starts_with("+0")
}

fn is_sender_id(id: &str) -> bool {
    (1..=11).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
        && id.bytes().any(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;
    use crate::PoolNumber;

    const GOOD: &str = r#"[
      {"id": "clinic", "name": "Riverside Clinic", "support_contact": "555-0100",
       "time_zone": "America/Chicago", "origination_number": "+15555550100",
       "messages_per_second": 20, "reminder_lead_hours": 48, "follow_up_lead_hours": 4,
       "audience": {"regions": ["US", "US-PR"]}},
      {"id": "lab", "name": "Riverside Lab", "support_contact": "https://lab.example/help",
       "sender": "twilio", "messaging_service_sid": "MG0123456789abcdef0123456789abcdef"}
    ]"#;

    #[test]
    fn a_good_document_loads_with_its_defaults() {
        let programs = parse_programs(GOOD).unwrap();
        assert_eq!(programs.len(), 2);
        assert_eq!(programs[0].time_zone.as_deref(), Some("America/Chicago"));
        assert_eq!(programs[0].messages_per_second, 20);
        assert_eq!(programs[1].messages_per_second, 3);
        assert_eq!(programs[1].reminder_lead_hours, 72);
        assert_eq!(programs[1].sender, SenderKind::Twilio);
    }

    #[test]
    fn every_problem_is_named_by_its_field_and_no_value_is_quoted() {
        let bad = r#"[
          {"id": "Clinic One", "name": "", "support_contact": "5",
           "time_zone": "Mars/Olympus", "origination_number": "+0123",
           "messages_per_second": 0, "reminder_lead_hours": 24, "follow_up_lead_hours": 24,
           "audience": {"regions": ["usa"]}},
          {"id": "lab", "name": "Lab", "support_contact": "555-0100", "sender": "twilio"},
          {"id": "lab", "name": "Lab two", "support_contact": "555-0100"}
        ]"#;
        let err = parse_programs(bad).unwrap_err();
        let fields: Vec<&str> = err.0.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "programs[0].id",
                "programs[0].name",
                "programs[0].support_contact",
                "programs[0].messages_per_second",
                "programs[0].follow_up_lead_hours",
                "programs[0].time_zone",
                "programs[0].origination_number",
                "programs[0].audience.regions[0]",
                "programs[1].sender",
                "programs[2].id",
            ]
        );
        let text = err.to_string();
        for value in ["Clinic One", "Mars", "+0123", "usa"] {
            assert!(!text.contains(value), "{value} quoted in {text}");
        }
    }

    #[test]
    fn a_misspelt_field_is_refused_not_ignored() {
        let err = parse_programs(
            r#"[{"id": "clinic", "name": "Clinic", "support_contact": "555-0100", "mesages_per_second": 50}]"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("mesages_per_second"), "{err}");
    }

    #[test]
    fn empty_oversized_and_non_array_documents_are_refused() {
        assert!(parse_programs("[]").is_err());
        assert!(parse_programs("{}").is_err());
        let huge = format!("[{}]", " ".repeat(MAX_PROGRAMS_DOCUMENT));
        assert!(parse_programs(&huge).unwrap_err().0[0].contains("bytes"));
        let one = r#"{"id": "p", "name": "P", "support_contact": "555-0100"}"#;
        let many = vec![one; MAX_PROGRAMS + 1].join(",");
        let err = parse_programs(&format!("[{many}]")).unwrap_err();
        assert!(err.0.iter().any(|p| p.contains("at most 50")), "{err}");
    }

    #[test]
    fn a_pool_paces_each_number_at_its_type_and_keeps_a_contact_on_one_number() {
        let doc = r#"[{"id": "clinic", "name": "Clinic", "support_contact": "555-0100",
          "daily_cap": 6000,
          "numbers": [
            {"number": "+18885550100", "type": "toll_free"},
            {"number": "+18335550101", "type": "toll_free", "parts_per_second": 25},
            {"number": "+12125550102", "type": "ten_dlc"},
            {"number": "+12125550103", "type": "ten_dlc", "parts_per_second": 40},
            {"number": "55501", "type": "short_code"}
          ]}]"#;
        let programs = parse_programs(doc).unwrap();
        let p = &programs[0];
        let rates: Vec<u32> = p.numbers.iter().map(PoolNumber::rate).collect();
        assert_eq!(rates, [3, 25, 1, 40, 100]);
        // Scheduled texts leave a tenth of each number to the lane:
        // 3-1, 25-2, 1-0, 40-4, 100-10.
        assert_eq!(p.scheduled_rate(), 2 + 23 + 1 + 36 + 90);
        // The same contact always gets the same number; contacts spread
        // over every number of the pool.
        let mut used = std::collections::BTreeMap::new();
        for i in 0..2000 {
            let to = format!("+1415555{i:04}");
            let sender = p.sender_for(&to);
            assert_eq!(sender, p.sender_for(&to));
            assert_eq!(Some(sender.key), sender.from);
            *used.entry(sender.key.to_owned()).or_insert(0) += 1;
        }
        assert_eq!(used.len(), 5, "{used:?}");
        assert!(used.values().all(|n| *n > 300), "{used:?}");
        // Dropping a number moves only that number's contacts.
        let mut fewer = p.clone();
        fewer.numbers.remove(4);
        for i in 0..2000 {
            let to = format!("+1415555{i:04}");
            let before = p.sender_for(&to);
            if before.key != "55501" {
                assert_eq!(fewer.sender_for(&to).key, before.key);
            }
        }
        assert!(p.sends_from("+18335550101") && !p.sends_from("+18335550199"));
        // Without a pool: the program's one sender at its rate.
        let single = &parse_programs(GOOD).unwrap()[0];
        let sender = single.sender_for("+14155550100");
        assert_eq!(
            (sender.key, sender.from, sender.rate),
            ("+15555550100", None, 20)
        );
    }

    #[test]
    fn a_pool_number_must_match_its_type_and_stand_alone() {
        let doc = r#"[{"id": "clinic", "name": "Clinic", "support_contact": "555-0100",
          "origination_number": "+15555550100",
          "numbers": [
            {"number": "+12125550102", "type": "toll_free"},
            {"number": "+18885550100", "type": "ten_dlc"},
            {"number": "+1212", "type": "short_code"},
            {"number": "+12125550103", "type": "ten_dlc", "parts_per_second": 0},
            {"number": "+12125550103", "type": "ten_dlc"}
          ]}]"#;
        let err = parse_programs(doc).unwrap_err();
        let fields: Vec<&str> = err.0.iter().map(|p| p.split(':').next().unwrap()).collect();
        assert_eq!(
            fields,
            [
                "programs[0].origination_number",
                "programs[0].numbers[0].number",
                "programs[0].numbers[1].number",
                "programs[0].numbers[2].number",
                "programs[0].numbers[3].parts_per_second",
                "programs[0].numbers[4]",
            ]
        );
        assert!(!err.to_string().contains("5550102"), "{err}");
        let unknown = r#"[{"id": "c", "name": "C", "support_contact": "555-0100",
          "numbers": [{"number": "+12125550102", "type": "long_code"}]}]"#;
        assert!(parse_programs(unknown).is_err());
    }
}
