//! `optline-dispatch-bench`: the sweep and dispatch against the local
//! emulator, counting every AWS call the functions make (an SDK interceptor
//! on each client) and the carrier calls, and timing both. Prints a table.
//!
//! ```sh
//! python3 infra/local-stack.py start
//! OPTLINE_METRICS=off cargo run --release -p optline-tests --bin optline-dispatch-bench -- 300
//! ```
//!
//! (`OPTLINE_METRICS=off` keeps dispatch's metric lines out of the table.)
//!
//! Then, in the same run: the emulator's raw rate for the same call mix
//! (the sweep's `UpdateItem` per step, 16 at once; dispatch's two
//! `TransactWriteItems` and one `Publish` per text, 10 at once) with no
//! logic around it, and a STOP storm (signed Twilio webhooks, 20 at once)
//! timed from request to the answer, which comes after the opt-out is
//! committed.
//!
//! The queue receive and delete calls are Lambda's event source mapping's,
//! not the function's: they are made here between the counted spans and
//! reported apart. The emulator (moto, one Python process) is far slower
//! than DynamoDB, so throughput figures are a floor; the call counts are
//! what AWS would see.

#![allow(
    clippy::print_stdout,
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a benchmark binary prints its table and stops loudly on a broken setup"
)]

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use optline_tests::calls::{since, total};
use optline_tests::Harness;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    // Monday 2026-12-07 12:00 in New York: inside every window.
    let now = Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap();
    let h = Harness::new("bench").await;
    for i in 0..steps {
        // One contact per step, so frequency caps never hold a send back.
        h.seed_step_in(
            &format!("b{i}"),
            // A range no test uses: the emulator keeps every SMS it "sent".
            &format!("+1332555{:04}", i % 10_000),
            &format!("bench-{i}"),
            now - chrono::Duration::minutes(5),
            optline_ports::StepStatus::Pending,
        )
        .await;
    }

    // The sweep: due index → queued → SQS, in batches of 10.
    let sweep_deps = h.sweep();
    let before = h.calls.snapshot();
    let started = Instant::now();
    let mut enqueued = 0;
    loop {
        let report = optline_sweep::sweep(&sweep_deps, now).await.expect("sweep");
        enqueued += report.enqueued;
        if report.found == 0 {
            break;
        }
    }
    let sweep_time = started.elapsed();
    let sweep_calls = since(&before, &h.calls.snapshot());

    // Dispatch: what Lambda's event source mapping would hand the function.
    let deps = h.dispatch();
    let mut function_calls: BTreeMap<String, u64> = BTreeMap::new();
    let mut dispatch_time = std::time::Duration::ZERO;
    let mut handled = 0;
    let mut empty_polls = 0;
    while handled < enqueued && empty_polls < 3 {
        let batch = h.receive_dispatch_batch(10).await;
        if batch.records.is_empty() {
            empty_polls += 1;
            continue;
        }
        let size = batch.records.len();
        let before = h.calls.snapshot();
        let started = Instant::now();
        let response = optline_dispatch::handle_batch(batch.clone(), &deps, now).await;
        dispatch_time += started.elapsed();
        for (k, v) in since(&before, &h.calls.snapshot()) {
            *function_calls.entry(k).or_insert(0) += v;
        }
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        h.delete_messages(&batch, &failed).await;
        handled += size - failed.len();
    }
    let sent = total(&function_calls, "SNS.Publish");
    let raw_sweep = raw_sweep_rate(&h, enqueued.max(100)).await;
    let raw_dispatch = raw_dispatch_rate(&h, sent.max(100) as usize).await;
    let storm = stop_storm(&h, 400).await;

    println!("# optline dispatch benchmark: {steps} steps, local emulator\n");
    println!("| measure | value |");
    println!("|---|---:|");
    println!("| steps found and enqueued by the sweep | {enqueued} |");
    println!(
        "| sweep: AWS calls per enqueued step | {:.2} |",
        total(&sweep_calls, "") as f64 / enqueued.max(1) as f64
    );
    println!(
        "| sweep: steps enqueued per second | {:.0} |",
        enqueued as f64 / sweep_time.as_secs_f64()
    );
    println!("| messages dispatched | {handled} |");
    println!("| texts sent (carrier calls) | {sent} |");
    println!(
        "| dispatch: AWS calls per sent text, carrier excluded | {:.2} |",
        (total(&function_calls, "") - sent) as f64 / sent.max(1) as f64
    );
    let sweep_rate = enqueued as f64 / sweep_time.as_secs_f64();
    let dispatch_rate = sent as f64 / dispatch_time.as_secs_f64();
    println!("| dispatch: texts per second (one invocation at a time) | {dispatch_rate:.0} |");
    println!("| emulator raw rate, the sweep's calls (steps per second) | {raw_sweep:.0} |");
    println!(
        "| sweep as a share of that | {:.2} |",
        sweep_rate / raw_sweep.max(f64::MIN_POSITIVE)
    );
    println!("| emulator raw rate, dispatch's calls (texts per second) | {raw_dispatch:.0} |");
    println!(
        "| dispatch as a share of that | {:.2} |",
        dispatch_rate / raw_dispatch.max(f64::MIN_POSITIVE)
    );
    println!(
        "| STOP storm: {} replies, 20 at once: received to committed, p50 / p99 (ms) | {:.0} / {:.0} |",
        storm.len(),
        percentile(&storm, 0.50),
        percentile(&storm, 0.99)
    );
    println!("\n| call | sweep, per step | dispatch, per sent text |");
    println!("|---|---:|---:|");
    let mut names: Vec<&String> = sweep_calls.keys().chain(function_calls.keys()).collect();
    names.sort();
    names.dedup();
    for name in names {
        println!(
            "| `{name}` | {:.2} | {:.2} |",
            sweep_calls.get(name).copied().unwrap_or(0) as f64 / enqueued.max(1) as f64,
            function_calls.get(name).copied().unwrap_or(0) as f64 / sent.max(1) as f64,
        );
    }
}

/// The `p` quantile of `values` (milliseconds), nearest rank.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p * sorted.len() as f64).ceil() as usize).saturating_sub(1);
    sorted.get(rank).copied().unwrap_or(0.0)
}

/// The emulator's rate for the sweep's call per step, with nothing around
/// it: `n` conditional `UpdateItem`s of 2 KB items, 16 at once.
async fn raw_sweep_rate(h: &Harness, n: usize) -> f64 {
    use aws_sdk_dynamodb::types::AttributeValue;
    use futures_util::StreamExt;
    let table = h.resources.table_name.clone();
    let padding = "x".repeat(2000);
    let started = Instant::now();
    futures_util::stream::iter(0..n)
        .map(|i| {
            let client = h.dynamodb.clone();
            let table = table.clone();
            let padding = padding.clone();
            async move {
                client
                    .update_item()
                    .table_name(table)
                    .key("pk", AttributeValue::S(format!("RAW#{i}")))
                    .key("sk", AttributeValue::S("STEP".to_owned()))
                    .update_expression("SET #s = :queued, padding = :p")
                    .condition_expression("attribute_not_exists(#s) OR #s = :pending")
                    .expression_attribute_names("#s", "status")
                    .expression_attribute_values(":queued", AttributeValue::S("queued".to_owned()))
                    .expression_attribute_values(
                        ":pending",
                        AttributeValue::S("pending".to_owned()),
                    )
                    .expression_attribute_values(":p", AttributeValue::S(padding))
                    .send()
                    .await
                    .expect("raw update");
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    n as f64 / started.elapsed().as_secs_f64()
}

/// The emulator's rate for dispatch's calls per text, with nothing around
/// them: two `TransactWriteItems` (a conditional update and a check; then
/// three puts) and one SNS `Publish`, 10 texts at once.
async fn raw_dispatch_rate(h: &Harness, n: usize) -> f64 {
    use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
    use futures_util::StreamExt;
    let table = h.resources.table_name.clone();
    let padding = "x".repeat(1500);
    let started = Instant::now();
    futures_util::stream::iter(0..n)
        .map(|i| {
            let client = h.dynamodb.clone();
            let sns = h.sns.clone();
            let table = table.clone();
            let padding = padding.clone();
            async move {
                let key = |pk: String, sk: &str| {
                    std::collections::HashMap::from([
                        ("pk".to_owned(), AttributeValue::S(pk)),
                        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
                    ])
                };
                let claim = Update::builder()
                    .table_name(&table)
                    .set_key(Some(key(format!("RAWD#{i}"), "STEP")))
                    .update_expression("SET #s = :sending, padding = :p")
                    .expression_attribute_names("#s", "status")
                    .expression_attribute_values(
                        ":sending",
                        AttributeValue::S("sending".to_owned()),
                    )
                    .expression_attribute_values(":p", AttributeValue::S(padding.clone()))
                    .build()
                    .expect("update");
                let check = ConditionCheck::builder()
                    .table_name(&table)
                    .set_key(Some(key(format!("RAWC#{i}"), "STATE")))
                    .condition_expression("attribute_not_exists(rev)")
                    .build()
                    .expect("check");
                client
                    .transact_write_items()
                    .transact_items(TransactWriteItem::builder().update(claim).build())
                    .transact_items(TransactWriteItem::builder().condition_check(check).build())
                    .send()
                    .await
                    .expect("raw claim");
                sns.publish()
                    .phone_number(format!("+1332556{:04}", i % 10_000))
                    .message("raw rate")
                    .send()
                    .await
                    .expect("raw publish");
                let mut finish = client.transact_write_items();
                for sk in ["SEND", "AUDIT", "STATE"] {
                    let mut item = key(format!("RAWD#{i}"), sk);
                    item.insert("padding".to_owned(), AttributeValue::S(padding.clone()));
                    let put = Put::builder()
                        .table_name(&table)
                        .set_item(Some(item))
                        .build()
                        .expect("put");
                    finish = finish.transact_items(TransactWriteItem::builder().put(put).build());
                }
                finish.send().await.expect("raw finish");
            }
        })
        .buffer_unordered(10)
        .collect::<Vec<()>>()
        .await;
    n as f64 / started.elapsed().as_secs_f64()
}

/// `n` STOP replies from distinct numbers through the signed Twilio
/// webhook, 20 at once; each one's time from request to answer (the answer
/// comes after the opt-out is committed), in milliseconds.
async fn stop_storm(h: &Harness, n: usize) -> Vec<f64> {
    use futures_util::StreamExt;
    let deps = h.inbound();
    let now = Utc.with_ymd_and_hms(2026, 12, 7, 17, 5, 0).unwrap();
    futures_util::stream::iter(0..n)
        .map(|i| {
            let deps = deps.clone();
            async move {
                let request = optline_tests::twilio_inbound_request(
                    &format!("SM{:032x}", 0x5709_0000_u64 + i as u64),
                    &format!("+1332557{:04}", i % 10_000),
                    "STOP",
                );
                let started = Instant::now();
                let response = optline_inbound::handle(request, &deps, now).await;
                assert_eq!(response.status(), 200, "a STOP is taken");
                started.elapsed().as_secs_f64() * 1000.0
            }
        })
        .buffer_unordered(20)
        .collect()
        .await
}
