//! The AWS two-way SMS payload parser on arbitrary input: it never panics,
//! and a well-formed payload round-trips.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use optline_inbound::parse_two_way;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_text_parses_or_is_refused_without_panicking(body in ".{0,300}") {
        let _ = parse_two_way(&body);
    }

    #[test]
    fn any_field_values_parse_or_are_refused(
        from in ".{0,20}",
        to in ".{0,20}",
        text in ".{0,200}",
        id in ".{0,60}",
        envelope in any::<bool>(),
    ) {
        let payload = serde_json::json!({
            "originationNumber": from,
            "destinationNumber": to,
            "messageBody": text,
            "inboundMessageId": id,
        })
        .to_string();
        let body = if envelope {
            serde_json::json!({"Type": "Notification", "Message": payload}).to_string()
        } else {
            payload
        };
        // Well-formed JSON of the right shape always parses, envelope or
        // not, and round-trips its fields (the number and id are checked
        // when the message is handled).
        let message = parse_two_way(&body).unwrap();
        prop_assert_eq!(message.origination_number, from);
        prop_assert_eq!(message.message_body, text);
        prop_assert_eq!(message.inbound_message_id, id);
    }
}
