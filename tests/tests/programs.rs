//! The programs document a deployer keeps in the table: checked before it
//! is stored, versioned with who put it, and what every function runs once
//! it starts, read through each function's own role.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use aws_sdk_dynamodb::types::AttributeValue;
use optline_config::SenderKind;
use optline_ports::PortError;
use optline_tests::Harness;

const OPERATOR: &str = "arn:aws:sts::123456789012:assumed-role/optline-operators/dana";

const TWO_PROGRAMS: &str = r#"[
  {"id": "clinic", "name": "Riverside Clinic", "support_contact": "555-0100",
   "time_zone": "America/Chicago", "origination_number": "+15555550100",
   "messages_per_second": 20, "reminder_lead_hours": 48, "follow_up_lead_hours": 4},
  {"id": "lab", "name": "Riverside Lab", "support_contact": "https://lab.example/help",
   "sender": "twilio", "messaging_service_sid": "MG0123456789abcdef0123456789abcdef",
   "audience": {"regions": ["US-TX"], "minors": false}}
]"#;

/// Every function of the template that reads its configuration at start.
const FUNCTIONS: &[&str] = &[
    "InboundFunction",
    "InboundTwoWayFunction",
    "ReconcileFunction",
    "EhrEventsFunction",
    "ConsentApiFunction",
    "TemplatesFunction",
    "SweepDryRunFunction",
    "SweepFunction",
    "DispatchFunction",
];

async fn kept_versions(h: &Harness) -> Vec<String> {
    let out = h
        .dynamodb
        .query()
        .table_name(&h.resources.table_name)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", AttributeValue::S("CONFIG#programs".to_owned()))
        .send()
        .await
        .unwrap();
    out.items()
        .iter()
        .filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()).cloned())
        .collect()
}

#[tokio::test]
async fn a_checked_document_is_versioned_with_its_author_and_every_function_runs_it() {
    let h = Harness::new("programs").await;
    let table = h.resources.table_name.clone();
    let now = chrono::Utc::now();

    // Nothing put yet: the functions run the environment's program.
    for function in FUNCTIONS {
        let dynamodb = h.clients_as(function).dynamodb;
        let config = optline_aws::with_stored_programs(&dynamodb, (*h.config).clone())
            .await
            .unwrap();
        assert_eq!(config.programs.len(), 1, "{function}");
    }

    // A document with a misspelt field and a bad zone: refused, every
    // problem named, nothing written.
    let bad = TWO_PROGRAMS
        .replace("\"time_zone\"", "\"timezone\"")
        .replace("US-TX", "Texas");
    let err = optline_aws::put_programs(&h.dynamodb, &table, &bad, None, OPERATOR, now)
        .await
        .unwrap_err();
    let PortError::Invalid(reason) = err else {
        panic!("expected Invalid, got {err:?}")
    };
    assert!(reason.contains("timezone"), "{reason}");
    assert!(kept_versions(&h).await.is_empty());

    let first = optline_aws::put_programs(&h.dynamodb, &table, TWO_PROGRAMS, None, OPERATOR, now)
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    assert_eq!(first.changed_by, OPERATOR);

    for function in FUNCTIONS {
        let dynamodb = h.clients_as(function).dynamodb;
        let config = optline_aws::with_stored_programs(&dynamodb, (*h.config).clone())
            .await
            .unwrap_or_else(|e| panic!("{function}: {e}"));
        assert_eq!(config.default_program, "clinic", "{function}");
        let clinic = config.program(None).unwrap();
        assert_eq!(clinic.messages_per_second, 20);
        assert_eq!(clinic.reminder_lead_hours, 48);
        assert_eq!(clinic.time_zone.as_deref(), Some("America/Chicago"));
        let lab = config.program(Some("lab")).unwrap();
        assert_eq!(lab.sender, SenderKind::Twilio);
        assert!(!lab.audience.minors);
    }

    // Two operators from version 1: the second is told, not overwritten.
    let faster = TWO_PROGRAMS.replace("\"messages_per_second\": 20", "\"messages_per_second\": 40");
    let second = optline_aws::put_programs(&h.dynamodb, &table, &faster, Some(1), OPERATOR, now)
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    let late = optline_aws::put_programs(&h.dynamodb, &table, TWO_PROGRAMS, Some(1), OPERATOR, now)
        .await
        .unwrap_err();
    assert!(matches!(late, PortError::Conflict(_)), "{late:?}");
    let fresh = optline_aws::put_programs(&h.dynamodb, &table, TWO_PROGRAMS, None, OPERATOR, now)
        .await
        .unwrap_err();
    assert!(matches!(fresh, PortError::Conflict(_)), "{fresh:?}");

    let current = optline_aws::read_programs(&h.dynamodb, &table)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.version, 2);
    assert_eq!(current.document, faster);
    let mut kept = kept_versions(&h).await;
    kept.sort();
    assert_eq!(kept, ["CURRENT", "V#00000001", "V#00000002"]);
}

#[tokio::test]
async fn a_stored_document_edited_by_hand_stops_the_function_naming_the_field() {
    let h = Harness::new("programs-hand").await;
    let table = h.resources.table_name.clone();
    optline_aws::put_programs(
        &h.dynamodb,
        &table,
        TWO_PROGRAMS,
        None,
        OPERATOR,
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    // Someone edits the item in the console, past the check.
    h.dynamodb
        .update_item()
        .table_name(&table)
        .key("pk", AttributeValue::S("CONFIG#programs".to_owned()))
        .key("sk", AttributeValue::S("CURRENT".to_owned()))
        .update_expression("SET document = :d")
        .expression_attribute_values(
            ":d",
            AttributeValue::S(
                TWO_PROGRAMS.replace("\"messages_per_second\": 20", "\"messages_per_second\": 0"),
            ),
        )
        .send()
        .await
        .unwrap();
    let err = optline_aws::with_stored_programs(
        &h.clients_as("DispatchFunction").dynamodb,
        (*h.config).clone(),
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("programs[0].messages_per_second"), "{text}");
    assert!(text.contains("version 1"), "{text}");
}
