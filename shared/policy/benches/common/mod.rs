//! The realistic decision the benchmarks share.

use chrono::{DateTime, Duration, TimeZone, Utc};
use optline_policy::caps::PriorSend;
use optline_policy::consent::{ConsentAction, ConsentFact, ConsentKind, ConsentScope};
use optline_policy::decision::{PolicyState, Recipient, SendRequest, Urgency};
use optline_policy::phone::E164;
use optline_policy::{MessageClass, UsState};

/// A reminder to a Los Angeles patient with a recorded grant, three earlier
/// sends in the last week and the rendered body.
pub fn realistic() -> (SendRequest, PolicyState) {
    let at = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 6, d, h, 0, 0).unwrap();
    let request = SendRequest {
        program: "bayview".to_owned(),
        category: "appointments".to_owned(),
        class: MessageClass::Transactional,
        purpose: "appointment_reminder".to_owned(),
        healthcare_exempt: false,
        subject: "episode-4711".to_owned(),
        workflow: Some("wf-4711".to_owned()),
        workflow_limit: Some(3),
        body: Some(
            "Bayview Clinic: reminder of your visit Fri Jun 12 at 9:30 AM. Reply C to confirm, \
             R to reschedule. Help: 213-555-0199. Reply STOP to opt out."
                .to_owned(),
        ),
        provider_name: Some("Bayview Clinic".to_owned()),
        provider_contact: Some("213-555-0199".to_owned()),
        recipient: Recipient {
            phone: E164::parse("+1 213 555 2671").unwrap(),
            time_zone: Some("America/Los_Angeles".to_owned()),
            address_state: Some(UsState::parse("CA").unwrap()),
            minor: false,
            phone_given_by_patient: true,
        },
        expires_at: Some(at(12, 16)),
        urgency: Urgency::TimeSensitive,
    };
    let grant = ConsentFact {
        id: "evt-0001".to_owned(),
        action: ConsentAction::Grant,
        scope: ConsentScope::Contact,
        program: Some("bayview".to_owned()),
        categories: vec!["appointments".to_owned()],
        kind: ConsentKind::Express,
        at: at(1, 15),
        reverses: None,
        guardian: false,
        expires_at: None,
    };
    let sent = |d: u32, subject: &str, workflow: Option<&str>| PriorSend {
        at: at(d, 17),
        subject: subject.to_owned(),
        provider: "bayview".to_owned(),
        healthcare_exempt: false,
        workflow: workflow.map(str::to_owned),
    };
    let state = PolicyState {
        consent: vec![grant],
        history: vec![
            sent(3, "episode-4700", None),
            sent(6, "episode-4711", Some("wf-4711")),
            sent(9, "episode-4711", Some("wf-4711")),
        ],
    };
    (request, state)
}

/// Wednesday 2026-06-10, 11:00 PDT: inside every window.
pub fn inside() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 10, 18, 0, 0).unwrap()
}

/// 22:00 PDT the same day: quiet hours defer to 08:00 PDT.
pub fn outside() -> DateTime<Utc> {
    inside() + Duration::hours(11)
}
