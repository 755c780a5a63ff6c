//! Patients' demographics from the EHR: a FHIR R4 `Patient`, or an HL7 v2
//! PID segment, read into [`EhrDemographics`].
//!
//! **Which number.** Of the numbers the EHR lists, one that can take a
//! text: FHIR `telecom` with `system` `sms` first, then `phone` whose `use`
//! is `mobile`, then other phones; never `use` `old`, nor one whose period
//! has ended; lower `rank` first (1 is the most preferred), then the order
//! given. In HL7, PID-13 (home) then PID-14 (business): cellular equipment
//! (`CP`) first, then telephones (`PH`) at a residence (`PRN`, `ORN`), then
//! others; never network addresses (`NET`), faxes, pagers or modems.

use chrono::{DateTime, NaiveDate, Utc};
use optline_consent::ehr::EhrDemographics;
use optline_ports::PersonIdentifier;

use super::hl7::Message;
use crate::EpisodeError;

/// Longest value kept from an identifier, a number or a language code.
const MAX_FIELD: usize = 128;

fn bounded(value: &str) -> Option<String> {
    let v = value.trim();
    (!v.is_empty() && v.len() <= MAX_FIELD && !v.chars().any(char::is_control))
        .then(|| v.to_owned())
}

/// A FHIR id: 1 to 64 of `A-Za-z0-9-.`.
fn fhir_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// A FHIR `date` (`YYYY`, `YYYY-MM` or `YYYY-MM-DD`): a full date is kept,
/// a partial one is not a birth date optline can count age from.
fn full_date(raw: &str) -> Result<Option<NaiveDate>, EpisodeError> {
    match raw.len() {
        4 | 7 if raw.bytes().all(|b| b.is_ascii_digit() || b == b'-') => Ok(None),
        10 => NaiveDate::parse_from_str(raw, "%Y-%m-%d")
            .map(Some)
            .map_err(|_| EpisodeError::Invalid("Patient.birthDate must be a FHIR date".to_owned())),
        _ => Err(EpisodeError::Invalid(
            "Patient.birthDate must be a FHIR date".to_owned(),
        )),
    }
}

/// The elements FHIR R4 defines for `Patient` (FHIR's JSON rules refuse
/// others; `_name` carries a primitive's extensions).
const PATIENT_ELEMENTS: &[&str] = &[
    "resourceType",
    "id",
    "meta",
    "implicitRules",
    "_implicitRules",
    "language",
    "_language",
    "text",
    "contained",
    "extension",
    "modifierExtension",
    "identifier",
    "active",
    "_active",
    "name",
    "telecom",
    "gender",
    "_gender",
    "birthDate",
    "_birthDate",
    "deceasedBoolean",
    "_deceasedBoolean",
    "deceasedDateTime",
    "_deceasedDateTime",
    "address",
    "maritalStatus",
    "multipleBirthBoolean",
    "_multipleBirthBoolean",
    "multipleBirthInteger",
    "_multipleBirthInteger",
    "photo",
    "contact",
    "communication",
    "generalPractitioner",
    "managingOrganization",
    "link",
];

/// Reads a FHIR R4 Patient.
pub fn from_fhir_patient(
    value: &serde_json::Value,
    now: DateTime<Utc>,
) -> Result<EhrDemographics, EpisodeError> {
    let invalid = |reason: &str| Err(EpisodeError::Invalid(reason.to_owned()));
    let Some(object) = value.as_object() else {
        return invalid("a Patient is a JSON object");
    };
    if object.get("resourceType").and_then(|t| t.as_str()) != Some("Patient") {
        return invalid("resourceType must be Patient");
    }
    if object
        .keys()
        .any(|k| !PATIENT_ELEMENTS.contains(&k.as_str()))
    {
        return invalid("Patient has an element FHIR R4 does not define");
    }
    if object
        .get("modifierExtension")
        .and_then(|m| m.as_array())
        .is_some_and(|m| !m.is_empty())
    {
        return invalid("Patient carries a modifierExtension optline does not understand");
    }
    let Some(id) = object
        .get("id")
        .and_then(|i| i.as_str())
        .filter(|i| fhir_id_ok(i))
    else {
        return invalid("Patient.id is required: 1 to 64 of A-Za-z0-9-.");
    };
    let mut identifiers = Vec::new();
    for identifier in object
        .get("identifier")
        .and_then(|i| i.as_array())
        .into_iter()
        .flatten()
    {
        let system = identifier
            .get("system")
            .and_then(|s| s.as_str())
            .and_then(bounded);
        let value = identifier
            .get("value")
            .and_then(|s| s.as_str())
            .and_then(bounded);
        if identifier.get("use").and_then(|u| u.as_str()) == Some("old") {
            continue;
        }
        if let (Some(system), Some(value)) = (system, value) {
            identifiers.push(PersonIdentifier { system, value });
        }
    }
    // The numbers, best first.
    let mut phones: Vec<(u8, u64, usize, String, String)> = Vec::new();
    for (order, telecom) in object
        .get("telecom")
        .and_then(|t| t.as_array())
        .into_iter()
        .flatten()
        .enumerate()
    {
        let system = telecom
            .get("system")
            .and_then(|s| s.as_str())
            .unwrap_or_default();
        let usage = telecom
            .get("use")
            .and_then(|s| s.as_str())
            .unwrap_or_default();
        let Some(value) = telecom
            .get("value")
            .and_then(|v| v.as_str())
            .and_then(bounded)
        else {
            continue;
        };
        if usage == "old" {
            continue;
        }
        let ended = telecom
            .get("period")
            .and_then(|p| p.get("end"))
            .and_then(|e| e.as_str())
            .and_then(|e| {
                DateTime::parse_from_rfc3339(e)
                    .ok()
                    .map(|d| d.with_timezone(&Utc))
                    .or_else(|| {
                        NaiveDate::parse_from_str(e, "%Y-%m-%d")
                            .ok()
                            .and_then(|d| d.and_hms_opt(0, 0, 0))
                            .map(|d| d.and_utc())
                    })
            })
            .is_some_and(|end| end <= now);
        if ended {
            continue;
        }
        let class = match (system, usage) {
            ("sms", _) => 0,
            ("phone", "mobile") => 1,
            ("phone", "home" | "temp" | "") => 2,
            ("phone", _) => 3,
            _ => continue,
        };
        let rank = telecom
            .get("rank")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(u64::MAX);
        let label = if usage.is_empty() {
            system.to_owned()
        } else {
            format!("{system}/{usage}")
        };
        phones.push((class, rank, order, value, label));
    }
    phones.sort();
    let best = phones.into_iter().next();
    let language = object
        .get("communication")
        .and_then(|c| c.as_array())
        .and_then(|list| {
            list.iter()
                .find(|c| c.get("preferred").and_then(serde_json::Value::as_bool) == Some(true))
                .or_else(|| list.first())
        })
        .and_then(|c| c.get("language"))
        .and_then(|l| {
            l.get("coding")
                .and_then(|c| c.as_array())
                .and_then(|codings| {
                    codings
                        .iter()
                        .find_map(|c| c.get("code").and_then(|x| x.as_str()))
                })
        })
        .and_then(bounded);
    let birth_date = match object.get("birthDate") {
        None => None,
        Some(serde_json::Value::String(raw)) => full_date(raw)?,
        Some(_) => return invalid("Patient.birthDate must be a FHIR date"),
    };
    Ok(EhrDemographics {
        patient_id: id.to_owned(),
        phone: best.as_ref().map(|b| b.3.clone()),
        phone_use: best.map(|b| b.4),
        language,
        birth_date,
        identifiers,
        reference: format!("fhir:Patient/{id}"),
    })
}

/// One XTN repetition as optline reads it: (preference class, number,
/// label), or `None` for what cannot take a text.
fn xtn(rep: &str) -> Option<(u8, String, String)> {
    let c: Vec<&str> = rep.split('^').collect();
    let part = |i: usize| c.get(i).copied().unwrap_or_default().trim();
    let (usage, equipment) = (part(1), part(2));
    if usage == "NET" || matches!(equipment, "Internet" | "X.400" | "FX" | "BP" | "MD") {
        return None;
    }
    let number = if !part(11).is_empty() {
        part(11).to_owned()
    } else if !part(6).is_empty() {
        format!("{}{}{}", part(4), part(5), part(6))
    } else {
        part(0).to_owned()
    };
    let number = bounded(&number)?;
    let class = match (usage, equipment) {
        (_, "CP") => 0,
        ("PRN" | "ORN" | "", "PH" | "") => 1,
        _ => 2,
    };
    Some((class, number, format!("{usage}/{equipment}")))
}

/// An ISO 639-2 code as HL7 tables often carry it, as its BCP 47 tag
/// (`spa` → `es`); other codes pass through.
fn bcp47(code: &str) -> String {
    match code {
        "eng" => "en",
        "spa" => "es",
        "vie" => "vi",
        "zho" | "chi" => "zh",
        "kor" => "ko",
        "rus" => "ru",
        "ara" => "ar",
        "fra" | "fre" => "fr",
        "por" => "pt",
        "tgl" => "tl",
        "hin" => "hi",
        "hat" => "ht",
        "pol" => "pl",
        "deu" | "ger" => "de",
        "ita" => "it",
        "jpn" => "ja",
        other => other,
    }
    .to_owned()
}

/// Reads the PID segment of an HL7 v2 message (ADT or SIU): PID-3
/// identifiers (the first one's id is the patient id), PID-7 birth date,
/// PID-13 and PID-14 numbers with their use codes, PID-15 language.
/// `Ok(None)` when the message has no PID.
pub fn from_pid(
    message: &Message,
    reference: &str,
) -> Result<Option<EhrDemographics>, EpisodeError> {
    let Some(pid3) = message.field("PID", 3) else {
        return Ok(None);
    };
    let invalid = |reason: &str| EpisodeError::Invalid(reason.to_owned());
    let mut identifiers = Vec::new();
    let mut patient_id = None;
    for rep in pid3.split('~') {
        let c: Vec<&str> = rep.split('^').collect();
        let Some(id) = c.first().and_then(|v| bounded(v)) else {
            continue;
        };
        if patient_id.is_none() {
            patient_id = Some(id.clone());
        }
        let authority = c
            .get(3)
            .map(|a| a.split('&').next().unwrap_or_default())
            .unwrap_or_default();
        let kind = c.get(4).copied().unwrap_or_default();
        let system = match (authority.trim(), kind.trim()) {
            ("", "") => continue,
            (a, "") => a.to_owned(),
            ("", k) => k.to_owned(),
            (a, k) => format!("{a}|{k}"),
        };
        identifiers.push(PersonIdentifier { system, value: id });
    }
    let Some(patient_id) = patient_id else {
        return Err(invalid("PID-3 must identify the patient"));
    };
    let mut numbers: Vec<(u8, usize, String, String)> = Vec::new();
    for (field, offset) in [(13, 0usize), (14, 100)] {
        for (i, rep) in message
            .field("PID", field)
            .unwrap_or_default()
            .split('~')
            .enumerate()
        {
            if let Some((class, number, label)) = xtn(rep) {
                let class = if field == 14 { class.max(2) } else { class };
                numbers.push((class, offset + i, number, label));
            }
        }
    }
    numbers.sort();
    let best = numbers.into_iter().next();
    let birth_date = match message.component("PID", 7, 1) {
        Some(raw) if raw.len() >= 8 => Some(
            NaiveDate::parse_from_str(raw.get(..8).unwrap_or_default(), "%Y%m%d")
                .map_err(|_| invalid("PID-7 must be a date of birth (YYYYMMDD)"))?,
        ),
        Some(raw) if !raw.is_empty() => None,
        _ => None,
    };
    let language = message
        .component("PID", 15, 1)
        .and_then(bounded)
        .map(|l| bcp47(&l.to_lowercase()));
    Ok(Some(EhrDemographics {
        patient_id,
        phone: best.as_ref().map(|b| b.2.clone()),
        phone_use: best.map(|b| b.3),
        language,
        birth_date,
        identifiers,
        reference: reference.to_owned(),
    }))
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::panic, reason = "tests")]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn a_fhir_patient_gives_its_textable_number_language_birth_date_and_identifiers() {
        let patient = serde_json::json!({
            "resourceType": "Patient", "id": "pat-77",
            "identifier": [
                {"use": "usual", "system": "urn:oid:1.2.36.146.595.217.0.1", "value": "MRN-12345"},
                {"use": "old", "system": "urn:oid:1.2.36.146.595.217.0.1", "value": "OLD-1"}
            ],
            "telecom": [
                {"system": "phone", "value": "(415) 555-0100", "use": "home", "rank": 1},
                {"system": "email", "value": "x@example.org"},
                {"system": "phone", "value": "415-555-0199", "use": "mobile", "rank": 2},
                {"system": "phone", "value": "415-555-0111", "use": "mobile", "period": {"end": "2020-01-01"}},
                {"system": "phone", "value": "415-555-0122", "use": "old"}
            ],
            "birthDate": "1980-03-14",
            "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]}, "preferred": true}]
        });
        let d = from_fhir_patient(&patient, now()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.patient_id, "pat-77");
        assert_eq!(d.phone.as_deref(), Some("415-555-0199"));
        assert_eq!(d.phone_use.as_deref(), Some("phone/mobile"));
        assert_eq!(d.language.as_deref(), Some("es"));
        assert_eq!(d.birth_date, NaiveDate::from_ymd_opt(1980, 3, 14));
        assert_eq!(d.identifiers.len(), 1);
        let mut bad = patient.clone();
        bad["ssnRaw"] = serde_json::json!("1");
        assert!(from_fhir_patient(&bad, now()).is_err());
    }

    #[test]
    fn pid_13_and_14_are_read_with_their_use_codes() {
        let text = "MSH|^~\\&|EHR|RIVERSIDE|OPTLINE|OPTLINE|20261201120000||ADT^A08^ADT_A01|MSG1|P|2.5\rPID|1||pat-9^^^RIVERSIDE^MR~99887^^^SSA^SS||Doe^Jane||19800314|F|||||^PRN^PH^^1^415^5550100~^NET^Internet^jane@example.org~^ORN^CP^^1^415^5550199|^WPN^PH^^1^415^5550188|SPA";
        let message = Message::parse(text).unwrap_or_else(|e| panic!("{e:?}"));
        let d = from_pid(&message, "hl7:ADT^A08:MSG1")
            .unwrap_or_default()
            .unwrap_or_else(|| panic!("a PID"));
        assert_eq!(d.patient_id, "pat-9");
        assert_eq!(d.phone.as_deref(), Some("14155550199"));
        assert_eq!(d.phone_use.as_deref(), Some("ORN/CP"));
        assert_eq!(d.birth_date, NaiveDate::from_ymd_opt(1980, 3, 14));
        assert_eq!(d.language.as_deref(), Some("es"));
        assert_eq!(d.identifiers[0].system, "RIVERSIDE|MR");
        assert_eq!(d.identifiers[1].system, "SSA|SS");
    }
}
