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
    println!(
        "| dispatch: texts per second (one invocation at a time) | {:.0} |",
        sent as f64 / dispatch_time.as_secs_f64()
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
