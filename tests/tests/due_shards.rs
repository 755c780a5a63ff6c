//! The due index's shard count is a deployment parameter (`DueShards`,
//! `DUE_SHARDS`). This binary runs one test, which sets the counts before
//! anything reads them: the process reads them once.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Duration, TimeZone, Utc};
use optline_config::DueShards;
use optline_ports::{StepStatus, StepStore};
use optline_tests::Harness;

fn monday() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap()
}

#[tokio::test]
async fn a_lowered_shard_count_still_sweeps_the_steps_written_under_the_old_one() {
    // Lowered from 8 shards to 2: new steps go to shards 0 and 1, and the
    // sweep keeps reading all eight until the old ones have come due.
    std::env::set_var("DUE_SHARDS", "2");
    std::env::set_var("DUE_SHARDS_PREVIOUS", "8");
    assert_eq!(optline_aws::due_shards(), DueShards { write: 2, read: 8 });

    let h = Harness::new("dueshards").await;
    let mut ids = Vec::new();
    for i in 0..8 {
        let id = h
            .seed_step_in(
                &format!("ds{i}"),
                &format!("+1212555{:04}", 1300 + i),
                &format!("due-shards-{i}"),
                monday() - Duration::minutes(30 - i64::from(i)),
                StepStatus::Pending,
            )
            .await;
        assert!(
            optline_aws::due_shard(&id) < 2,
            "written under the new count"
        );
        ids.push(id);
    }
    // Two of them as written before the change, into shards 5 and 7.
    for (id, shard) in ids.iter().take(2).zip([5, 7]) {
        h.dynamodb
            .update_item()
            .table_name(&h.resources.table_name)
            .key("pk", AttributeValue::S(format!("STEP#{id}")))
            .key("sk", AttributeValue::S("STEP".to_owned()))
            .update_expression("SET due_pk = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("DUE#{shard}")))
            .send()
            .await
            .expect("moved to an old shard");
    }

    // The due index gives all eight, oldest first, the old shards included.
    let due = h.store.due_steps(monday(), 100).await.unwrap();
    let mine: Vec<_> = due
        .iter()
        .map(|s| s.id.clone())
        .filter(|id| ids.contains(id))
        .collect();
    assert_eq!(mine, ids);

    // And the sweep queues them all.
    let report = optline_sweep::sweep(&h.sweep(), monday()).await.unwrap();
    assert!(report.enqueued >= 8, "{report:?}");
    for id in &ids {
        let step = h.store.step(id).await.unwrap().expect("step");
        assert_eq!(step.status, StepStatus::Queued, "{id}");
    }
}
