//! HL7 v2.5 scheduling messages (SIU) in ER7 form, answered with an ACK.
//!
//! `POST /ehr/hl7` (`application/hl7-v2`, `x-application/hl7-v2+er7` or
//! `text/plain`), one message per request, segments separated by carriage
//! returns (`\r`; `\n` and `\r\n` are accepted too):
//!
//! | trigger | meaning | effect |
//! |---|---|---|
//! | S12 | new appointment booking | plan the reminder |
//! | S13 | rescheduling | move the reminder |
//! | S14 | modification | re-plan (time, details) |
//! | S15 | cancellation | cancel the reminder |
//! | S26 | patient did not show | cancel what is still planned |
//!
//! Fields read (HL7 v2.5, chapter 10): MSH-3/4 sending application and
//! facility, MSH-7 message time (orders changes, like FHIR's
//! `meta.lastUpdated`), MSH-9 type, MSH-10 control id, MSH-12 version; SCH-1
//! placer or SCH-2 filler appointment id; the start from AIS-4, else SCH-11
//! component 4; PID-3 first identifier (the contact id). A time without a
//! UTC offset is read in the patient's own time zone; with neither, the
//! message is refused rather than guessed.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};
use optline_ports::ContactId;

use crate::{AppointmentEvent, AppointmentStatus, Start};

/// A parsed ER7 message: segments of fields of components (repetitions kept
/// in the field text; only the first is read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    segments: Vec<Vec<String>>,
    component: char,
    repetition: char,
}

/// Why a message cannot be used; the text goes back in the ACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hl7Error(pub String);

/// Largest message accepted (an SIU is a few hundred bytes).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Most segments accepted.
pub const MAX_SEGMENTS: usize = 200;

fn fail<T>(text: &str) -> Result<T, Hl7Error> {
    Err(Hl7Error(text.to_owned()))
}

impl Message {
    /// Parses ER7 text.
    pub fn parse(text: &str) -> Result<Self, Hl7Error> {
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.len() > MAX_MESSAGE_BYTES {
            return fail("the message is larger than 64 KiB");
        }
        if text
            .split(['\r', '\n'])
            .filter(|s| !s.trim().is_empty())
            .count()
            > MAX_SEGMENTS
        {
            return fail("the message has more than 200 segments");
        }
        if !text.starts_with("MSH") {
            return fail("the message must start with an MSH segment");
        }
        let mut chars = text.chars().skip(3);
        let Some(field) = chars.next() else {
            return fail("MSH has no field separator");
        };
        let encoding: Vec<char> = chars.take_while(|c| *c != field).collect();
        let (Some(component), Some(repetition)) = (encoding.first(), encoding.get(1)) else {
            return fail("MSH-2 must give the encoding characters");
        };
        let segments = text
            .split(['\r', '\n'])
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                let mut fields: Vec<String> = s.split(field).map(str::to_owned).collect();
                // MSH-1 is the field separator itself: shift MSH so that
                // index n is MSH-n as the standard numbers them.
                if fields.first().map(String::as_str) == Some("MSH") {
                    fields.insert(1, field.to_string());
                }
                fields
            })
            .collect();
        Ok(Self {
            segments,
            component: *component,
            repetition: *repetition,
        })
    }

    /// Field `n` of the first `name` segment (HL7 numbering).
    pub fn field(&self, name: &str, n: usize) -> Option<&str> {
        self.segments
            .iter()
            .find(|s| s.first().map(String::as_str) == Some(name))
            .and_then(|s| s.get(n))
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Component `c` (from 1) of the first repetition of a field.
    pub fn component(&self, name: &str, n: usize, c: usize) -> Option<&str> {
        let field = self.field(name, n)?;
        let first = field.split(self.repetition).next()?;
        first
            .split(self.component)
            .nth(c.checked_sub(1)?)
            .filter(|v| !v.is_empty())
    }

    /// MSH-9.2, the trigger event (`S12`…).
    pub fn trigger(&self) -> Option<&str> {
        self.component("MSH", 9, 2)
    }
}

/// What an SIU message asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Siu {
    /// `S12`, `S13`, `S14`, `S15` or `S26`.
    pub trigger: String,
    /// MSH-10.
    pub control_id: String,
    /// The appointment id (SCH-1.1, else SCH-2.1).
    pub appointment_id: String,
    /// The patient id (PID-3.1).
    pub patient_id: String,
    /// The start as written (HL7 DTM), if any.
    pub start: Option<String>,
    /// MSH-7 as a sortable version key.
    pub version: Option<String>,
}

/// Reads the fields optline needs from an SIU message.
pub fn siu(message: &Message) -> Result<Siu, Hl7Error> {
    if message.component("MSH", 9, 1) != Some("SIU") {
        return fail("MSH-9 must be an SIU message");
    }
    let Some(trigger) = message.trigger() else {
        return fail("MSH-9.2 must name the trigger event");
    };
    if !matches!(trigger, "S12" | "S13" | "S14" | "S15" | "S26") {
        return fail("only SIU S12, S13, S14, S15 and S26 are accepted");
    }
    let Some(control_id) = message.field("MSH", 10) else {
        return fail("MSH-10 (message control id) is required");
    };
    // MSH-7 is required (HL7 v2.5 2.14.9.7) and orders the changes.
    let Some(sent) = message.component("MSH", 7, 1) else {
        return fail("MSH-7 (date/time of message) is required");
    };
    if !dtm_syntax_ok(sent) {
        return fail("MSH-7 must be an HL7 date/time: YYYY[MM[DD[HH[MM[SS[.S...]]]]]][+/-ZZZZ]");
    }
    let Some(appointment_id) = message
        .component("SCH", 1, 1)
        .or_else(|| message.component("SCH", 2, 1))
    else {
        return fail("SCH-1 or SCH-2 must identify the appointment");
    };
    let Some(patient_id) = message.component("PID", 3, 1) else {
        return fail("PID-3 must identify the patient");
    };
    let start = message
        .component("AIS", 4, 1)
        .or_else(|| message.component("SCH", 11, 4))
        .map(str::to_owned);
    let version = message
        .component("MSH", 7, 1)
        .and_then(|t| parse_dtm(t, None).ok())
        .map(|at| {
            format!(
                "t{}",
                at.with_timezone(&Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
            )
        });
    Ok(Siu {
        trigger: trigger.to_owned(),
        control_id: control_id.to_owned(),
        appointment_id: appointment_id.to_owned(),
        patient_id: patient_id.to_owned(),
        start,
        version,
    })
}

/// The episodes' event an SIU message carries.
pub fn read(message: &Message) -> Result<AppointmentEvent, Hl7Error> {
    let siu = siu(message)?;
    let (Ok(patient), true) = (
        ContactId::parse(&siu.patient_id),
        crate::source_id_ok(&siu.appointment_id),
    ) else {
        return fail(
            "PID-3 or the appointment id is not 1 to 64 characters of A-Za-z0-9._:- \
             (at most 128 for PID-3)",
        );
    };
    let status = match siu.trigger.as_str() {
        "S15" => AppointmentStatus::Cancelled,
        "S26" => AppointmentStatus::NoShow,
        _ => match &siu.start {
            Some(start) => AppointmentStatus::Booked(Start::Hl7(start.clone())),
            None => return fail("AIS-4 or SCH-11.4 must give the start"),
        },
    };
    let sender = [
        message.field("MSH", 3).unwrap_or_default(),
        message.field("MSH", 4).unwrap_or_default(),
    ]
    .join(":");
    Ok(AppointmentEvent {
        appointment_id: siu.appointment_id.clone(),
        patient,
        status,
        source: format!("hl7:SIU^{}/{}", siu.trigger, siu.control_id),
        version: siu.version.clone(),
        marker: format!("hl7:{sender}:{}", siu.control_id),
    })
}

/// Whether `text` is an HL7 v2.5 DTM: `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]]`
/// then an optional `+ZZZZ`/`-ZZZZ`, with each part in its range.
pub fn dtm_syntax_ok(text: &str) -> bool {
    let (body, offset) = match text.find(['+', '-']) {
        Some(i) => (text.get(..i).unwrap_or_default(), text.get(i + 1..)),
        None => (text, None),
    };
    let (whole, fraction) = match body.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (body, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !matches!(whole.len(), 4 | 6 | 8 | 10 | 12 | 14) {
        return false;
    }
    if fraction.is_some_and(|f| !digits(f) || f.len() > 4 || whole.len() != 14) {
        return false;
    }
    let part = |from: usize, to: usize| whole.get(from..to).and_then(|p| p.parse::<u32>().ok());
    let in_range = |from, to, lo, hi| part(from, to).is_none_or(|v| (lo..=hi).contains(&v));
    if !(in_range(4, 6, 1, 12)
        && in_range(6, 8, 1, 31)
        && in_range(8, 10, 0, 23)
        && in_range(10, 12, 0, 59)
        && in_range(12, 14, 0, 59))
    {
        return false;
    }
    offset.is_none_or(|o| {
        o.len() == 4
            && digits(o)
            && o.get(..2)
                .and_then(|h| h.parse::<u32>().ok())
                .is_some_and(|h| h <= 14)
            && o.get(2..)
                .and_then(|m| m.parse::<u32>().ok())
                .is_some_and(|m| m <= 59)
    })
}

/// An HL7 DTM (`YYYYMMDDHHMM[SS[.S…]][+/-ZZZZ]`) as an instant; without an
/// offset, read in `zone` (or refused when there is none).
pub fn parse_dtm(
    text: &str,
    zone: Option<chrono_tz::Tz>,
) -> Result<DateTime<FixedOffset>, Hl7Error> {
    let (digits, offset) = match text.find(['+', '-']) {
        Some(i) => (text.get(..i).unwrap_or_default(), text.get(i..)),
        None => (text, None),
    };
    let whole = digits.split('.').next().unwrap_or_default();
    let padded = match whole.len() {
        12 => format!("{whole}00"),
        14 => whole.to_owned(),
        _ => return fail("times must be YYYYMMDDHHMM[SS] with an optional +/-ZZZZ offset"),
    };
    let Ok(naive) = NaiveDateTime::parse_from_str(&padded, "%Y%m%d%H%M%S") else {
        return fail("times must be YYYYMMDDHHMM[SS] with an optional +/-ZZZZ offset");
    };
    if let Some(offset) = offset {
        let sign = if offset.starts_with('-') { -1 } else { 1 };
        let hhmm = offset.get(1..5).and_then(|v| v.parse::<i32>().ok());
        let Some(hhmm) = hhmm.filter(|_| offset.len() == 5) else {
            return fail("a time offset must be +HHMM or -HHMM");
        };
        let seconds = sign * ((hhmm / 100) * 3600 + (hhmm % 100) * 60);
        let Some(tz) = FixedOffset::east_opt(seconds) else {
            return fail("a time offset must be +HHMM or -HHMM");
        };
        return tz
            .from_local_datetime(&naive)
            .single()
            .ok_or_else(|| Hl7Error("the time does not exist at that offset".to_owned()));
    }
    match zone {
        Some(zone) => zone
            .from_local_datetime(&naive)
            .earliest()
            .map(|at| at.fixed_offset())
            .ok_or_else(|| {
                Hl7Error("the local time does not exist in the patient's zone".to_owned())
            }),
        None => fail("the start time has no UTC offset and the patient has no time zone"),
    }
}

/// The HL7 table 0357 condition (ERR-3) for a refusal's reason.
fn condition(code: &str, reason: &str) -> &'static str {
    let has = |words: &[&str]| words.iter().any(|w| reason.contains(w));
    if has(&[
        "must start with an MSH",
        "no field separator",
        "encoding characters",
    ]) {
        "100^Segment sequence error"
    } else if has(&["must be an SIU message"]) {
        "200^Unsupported message type"
    } else if has(&["trigger event", "only SIU"]) {
        "201^Unsupported event code"
    } else if has(&["is required", "must identify", "must give"]) {
        "101^Required field missing"
    } else if has(&["larger than 64 KiB", "more than 200 segments"]) {
        "207^Application internal error"
    } else if has(&[
        "times must be",
        "must be an HL7 date/time",
        "offset must",
        "does not exist",
        "no UTC offset",
        "characters outside",
        "not UTF-8",
    ]) {
        "102^Data type error"
    } else if has(&["not a known contact"]) {
        "204^Unknown key identifier"
    } else if code == "AR" {
        "100^Segment sequence error"
    } else {
        "207^Application internal error"
    }
}

/// The ACK for `message`: `AA` (accepted), `AE` (error) or `AR` (rejected),
/// with the reason in MSA-3 and ERR-8 when not accepted.
pub fn ack(
    message: Option<&Message>,
    code: &str,
    text: Option<&str>,
    now: DateTime<Utc>,
) -> String {
    let get = |n: usize| {
        message
            .and_then(|m| m.field("MSH", n))
            .unwrap_or_default()
            .to_owned()
    };
    let trigger = message.and_then(Message::trigger).unwrap_or_default();
    let control = get(10);
    let clean = |t: &str| t.replace(['|', '^', '~', '\\', '&', '\r', '\n'], " ");
    let mut out = format!(
        "MSH|^~\\&|OPTLINE|OPTLINE|{}|{}|{}||ACK^{}^ACK|ACK{}|P|2.5\r",
        get(3),
        get(4),
        now.format("%Y%m%d%H%M%S+0000"),
        trigger,
        if control.is_empty() {
            now.timestamp_millis().to_string()
        } else {
            control.clone()
        },
    );
    match text {
        Some(reason) => {
            let reason = clean(reason);
            out.push_str(&format!("MSA|{code}|{control}|{reason}\r"));
            let error = condition(code, &reason);
            out.push_str(&format!("ERR|||{error}^HL70357|E||||{reason}\r"));
        }
        None => out.push_str(&format!("MSA|{code}|{control}\r")),
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]
    use super::*;
    use chrono::TimeZone;

    // Validated by tests/fixtures/validate.py (hl7apy, HL7 v2.5 strict).
    const S12: &str = include_str!("../../../../tests/fixtures/hl7/siu-s12-new.hl7");
    const ACK_AA: &str = include_str!("../../../../tests/fixtures/hl7/ack-aa.hl7");
    const ACK_AR: &str = include_str!("../../../../tests/fixtures/hl7/ack-ar.hl7");
    const ACK_AE: &str = include_str!("../../../../tests/fixtures/hl7/ack-ae.hl7");

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 30, 17, 0, 5).unwrap()
    }

    #[test]
    fn acks_are_the_validated_messages() {
        let message = Message::parse(S12).unwrap();
        assert!(siu(&message).is_ok());
        assert_eq!(ack(Some(&message), "AA", None, at()), ACK_AA);

        let pid = "PID|1||pat-ehr-1^^^RIVERSIDE^MR||Doe^Jane||19800101|F";
        let no_patient = S12.replace("MSG00001", "MSG00005").replace(pid, "PID|1");
        let message = Message::parse(&no_patient).unwrap();
        let refused = siu(&message).unwrap_err();
        assert_eq!(ack(Some(&message), "AR", Some(&refused.0), at()), ACK_AR);

        let message = Message::parse(&S12.replace("MSG00001", "MSG00006")).unwrap();
        assert_eq!(
            ack(
                Some(&message),
                "AE",
                Some("the patient is not a known contact"),
                at()
            ),
            ACK_AE
        );
    }

    #[test]
    fn refusals_name_their_table_0357_condition() {
        for (reason, expected) in [
            ("the message must start with an MSH segment", "100"),
            ("MSH-9 must be an SIU message", "200"),
            ("only SIU S12, S13, S14, S15 and S26 are accepted", "201"),
            ("MSH-10 (message control id) is required", "101"),
            ("a time offset must be +HHMM or -HHMM", "102"),
            ("the patient is not a known contact", "204"),
        ] {
            assert!(condition("AR", reason).starts_with(expected), "{reason}");
        }
        assert!(condition("AE", "the store is unavailable").starts_with("207"));
    }
}
