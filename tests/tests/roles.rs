//! Each function's clients carry its role from `infra/template.yaml`: every
//! other test runs its handlers under those roles, so a call the template
//! does not allow fails there. These tests show the check itself works.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "integration tests: a failed step should stop the test loudly"
)]

use optline_tests::Harness;

/// Runs `call` in its own task and gives the panic message, if it panicked.
async fn denial<F>(call: F) -> Option<String>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    match tokio::spawn(call).await {
        Ok(()) => None,
        Err(e) if e.is_panic() => {
            let payload = e.into_panic();
            Some(
                payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default(),
            )
        }
        Err(e) => panic!("task failed: {e}"),
    }
}

#[tokio::test]
async fn a_call_outside_a_functions_role_fails_as_access_denied_would() {
    let h = Harness::new("roles").await;

    // The templates API has no business with the dispatch queue.
    let sqs = h.clients_as("TemplatesFunction").sqs;
    let queue = h.resources.queue_url.clone();
    let denied = denial(async move {
        let _ = sqs
            .send_message()
            .queue_url(queue)
            .message_body("{}")
            .send()
            .await;
    })
    .await;
    let message = denied.expect("the call is denied");
    assert!(
        message.contains("AccessDenied: TemplatesFunction may not call sqs:SendMessage"),
        "{message}"
    );

    // The sweep may query the due index; the consent API may not.
    for (function, allowed) in [("SweepFunction", true), ("ConsentApiFunction", false)] {
        let dynamodb = h.clients_as(function).dynamodb;
        let table = h.resources.table_name.clone();
        let denied = denial(async move {
            dynamodb
                .query()
                .table_name(table)
                .index_name("due")
                .key_condition_expression("due_pk = :shard")
                .expression_attribute_values(
                    ":shard",
                    aws_sdk_dynamodb::types::AttributeValue::S("DUE#0".to_owned()),
                )
                .send()
                .await
                .expect("the emulator answers");
        })
        .await;
        assert_eq!(denied.is_none(), allowed, "{function}: {denied:?}");
    }

    // A transaction needs each of its items' actions: the dry run's
    // read-only role may not write one.
    let dynamodb = h.clients_as("SweepDryRunFunction").dynamodb;
    let table = h.resources.table_name.clone();
    let denied = denial(async move {
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(table)
            .item(
                "pk",
                aws_sdk_dynamodb::types::AttributeValue::S("ROLE#test".to_owned()),
            )
            .item(
                "sk",
                aws_sdk_dynamodb::types::AttributeValue::S("X".to_owned()),
            )
            .build()
            .unwrap();
        let _ = dynamodb
            .transact_write_items()
            .transact_items(
                aws_sdk_dynamodb::types::TransactWriteItem::builder()
                    .put(put)
                    .build(),
            )
            .send()
            .await;
    })
    .await;
    assert!(
        denied
            .as_deref()
            .is_some_and(|m| m.contains("SweepDryRunFunction may not call dynamodb:PutItem")),
        "{denied:?}"
    );
}
