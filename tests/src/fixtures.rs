//! The EHR payloads the tests send, built from the files in
//! `tests/fixtures/`. Those files pass independent validators
//! (`tests/fixtures/validate.py`: the `fhir.resources` models and `hl7apy`,
//! run by `infra/test.sh`); the builders here change only field values (ids,
//! statuses, times, control ids), never the shape.

use chrono::{DateTime, Duration};
use serde_json::Value;

/// A booked FHIR R4 `Appointment` (patient `pat-ehr-1`, with `end`,
/// `minutesDuration`, service and appointment types).
pub const FHIR_APPOINTMENT: &str = include_str!("../fixtures/fhir/appointment-booked.r4.json");
/// An R4B/R5 subscription-notification Bundle (`SubscriptionStatus` first)
/// carrying Appointment `b-1` with a contained Patient.
pub const FHIR_NOTIFICATION_R5: &str =
    include_str!("../fixtures/fhir/subscription-notification.r5.json");
/// An R4 Subscriptions Backport notification (a `history` Bundle,
/// `Parameters` first) carrying Appointment `b-2`.
pub const FHIR_NOTIFICATION_BACKPORT: &str =
    include_str!("../fixtures/fhir/subscription-notification-backport.r4.json");
/// An R4 backport handshake (no focus resources).
pub const FHIR_HANDSHAKE_BACKPORT: &str =
    include_str!("../fixtures/fhir/subscription-handshake-backport.r4.json");

/// HL7 v2.5 SIU^S12 (new booking) for appointment `APT-7001`.
pub const SIU_S12: &str = include_str!("../fixtures/hl7/siu-s12-new.hl7");
/// SIU^S13 (reschedule).
pub const SIU_S13: &str = include_str!("../fixtures/hl7/siu-s13-reschedule.hl7");
/// SIU^S14 (modification; the start has no UTC offset).
pub const SIU_S14: &str = include_str!("../fixtures/hl7/siu-s14-modification.hl7");
/// SIU^S15 (cancellation).
pub const SIU_S15: &str = include_str!("../fixtures/hl7/siu-s15-cancellation.hl7");
/// SIU^S26 (the patient did not show up).
pub const SIU_S26: &str = include_str!("../fixtures/hl7/siu-s26-noshow.hl7");
/// The ACK accepting [`SIU_S12`] (as sent at 2026-11-30T17:00:05Z).
pub const ACK_AA: &str = include_str!("../fixtures/hl7/ack-aa.hl7");
/// An application reject: a required field is missing.
pub const ACK_AR: &str = include_str!("../fixtures/hl7/ack-ar.hl7");
/// An application error: the patient is not known.
pub const ACK_AE: &str = include_str!("../fixtures/hl7/ack-ae.hl7");

/// The fixture's appointment with `id`, `status`, `start` (RFC 3339; `end`
/// follows 30 minutes later) and, when given, `meta.lastUpdated` and a
/// patient reference.
pub fn appointment(
    id: &str,
    status: &str,
    start: &str,
    last_updated: Option<&str>,
    patient: Option<&str>,
) -> Value {
    let mut resource: Value = serde_json::from_str(FHIR_APPOINTMENT).expect("fixture is JSON");
    resource["id"] = Value::from(id);
    resource["status"] = Value::from(status);
    resource["start"] = Value::from(start);
    let end =
        DateTime::parse_from_rfc3339(start).expect("start is RFC 3339") + Duration::minutes(30);
    resource["end"] = Value::from(end.to_rfc3339());
    match last_updated {
        Some(at) => resource["meta"]["lastUpdated"] = Value::from(at),
        None => {
            if let Some(meta) = resource.as_object_mut() {
                meta.remove("meta");
            }
        }
    }
    if let Some(reference) = patient {
        resource["participant"][0]["actor"]["reference"] = Value::from(reference);
    }
    resource
}

/// A fixture as JSON.
pub fn json(fixture: &str) -> Value {
    serde_json::from_str(fixture).expect("fixture is JSON")
}

/// The SIU fixture for `trigger` (S12, S13, S14, S15 or S26) with its
/// control id (MSH-10), message time (MSH-7), start (SCH-11.4 and AIS-4) and
/// PID segment replaced.
pub fn siu(trigger: &str, control: &str, sent: &str, start: &str, pid: &str) -> String {
    let base = match trigger {
        "S12" => SIU_S12,
        "S13" => SIU_S13,
        "S14" => SIU_S14,
        "S15" => SIU_S15,
        "S26" => SIU_S26,
        other => panic!("no SIU fixture for {other}"),
    };
    let mut out = String::with_capacity(base.len() + 32);
    for segment in base.split('\r').filter(|s| !s.is_empty()) {
        let mut fields: Vec<String> = segment.split('|').map(str::to_owned).collect();
        match fields[0].as_str() {
            // MSH-1 is the separator itself: index n is MSH-(n+1).
            "MSH" => {
                fields[6] = sent.to_owned();
                fields[9] = control.to_owned();
            }
            "SCH" => {
                let mut timing: Vec<&str> = fields[11].split('^').collect();
                timing[3] = start;
                fields[11] = timing.join("^");
            }
            "AIS" => fields[4] = start.to_owned(),
            "PID" => fields = vec![pid.to_owned()],
            _ => {}
        }
        out.push_str(&fields.join("|"));
        out.push('\r');
    }
    out
}

/// The fixtures' PID segment (patient `pat-ehr-1`).
pub const PID: &str = "PID|1||pat-ehr-1^^^RIVERSIDE^MR||Doe^Jane||19800101|F";

/// Replaces MSH-7 (the message time) of an ACK, to compare one made at
/// another instant with a fixture.
pub fn without_message_time(ack: &str) -> String {
    ack.split('\r')
        .map(|segment| {
            if segment.starts_with("MSH|") {
                let mut fields: Vec<&str> = segment.split('|').collect();
                if fields.len() > 6 {
                    fields[6] = "";
                }
                fields.join("|")
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\r")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builders_reproduce_the_validated_files() {
        assert_eq!(
            siu(
                "S12",
                "MSG00001",
                "20261130120000-0500",
                "20261210100000-0500",
                PID
            ),
            SIU_S12
        );
        assert_eq!(
            siu(
                "S14",
                "MSG00003",
                "20261130140000-0500",
                "20261212090000",
                PID
            ),
            SIU_S14
        );
        let fixture = json(FHIR_APPOINTMENT);
        let built = appointment(
            "apt-1001",
            "booked",
            "2026-12-10T10:00:00-05:00",
            Some("2026-11-30T12:00:00Z"),
            None,
        );
        assert_eq!(built, fixture);
    }
}
