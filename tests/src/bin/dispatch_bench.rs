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
//! Then, in the same run: the emulator's raw rate for the same operations
//! (the same calls per step and per text, in the same order and with the
//! same concurrency, on items of the same sizes, in a table of the same
//! size) with no logic around them, and a STOP storm (signed Twilio webhooks, 20 at once)
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
    clippy::panic,
    reason = "a benchmark binary prints its table and stops loudly on a broken setup"
)]

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use optline_tests::calls::{since, total};
use optline_tests::Harness;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        // The functions' warnings, when asked for, on stderr.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let steps: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    // Monday 2026-12-07 12:00 in New York: inside every window.
    let now = Utc.with_ymd_and_hms(2026, 12, 7, 17, 0, 0).unwrap();
    let mut h = Harness::new("bench").await;
    // A sender fast enough that its rate never holds the bench back (the
    // raw calls have no rate to keep): pacing still takes its slots, one
    // counter update per ten texts, as at any rate.
    let mut config = (*h.config).clone();
    for program in config.programs.values_mut() {
        program.messages_per_second = 1000;
    }
    h.config = std::sync::Arc::new(config);
    // The STOP storm first, on a table holding only the stack's own items:
    // the emulator's queries walk the whole table, so the seeds below would
    // time its queries out rather than measure the inbound path.
    let (storm, retried) = stop_storm(&h, 400).await;
    // The raw runs' items first, so both runs meet a table of one size.
    seed_raw(&h, "RAWS", steps, true).await;
    seed_raw(&h, "RAWD", steps, false).await;
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
    // Twins of the table and the queue as the sweep will find them, for
    // the replay of the sweep's own requests.
    eprintln!("bench: twins for the sweep");
    let sweep_twin = twin_table(&h, "sweep-twin").await;
    let queue_twin = h
        .sqs
        .create_queue()
        .queue_name(format!("{}-twin", h.resources.table_name))
        .send()
        .await
        .expect("twin queue")
        .queue_url()
        .expect("twin queue url")
        .to_owned();
    let sweep_deps = h.sweep();
    let before = h.calls.snapshot();
    h.calls.record();
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
    let sweep_recorded = h.calls.take_recorded();
    h.calls.stop_recording();
    let sweep_calls = since(&before, &h.calls.snapshot());

    // A twin of the table as dispatch will find it, for the replay of
    // dispatch's own requests.
    eprintln!("bench: twin table");
    let twin = twin_table(&h, "twin").await;

    // Dispatch: what Lambda's event source mapping would hand the function.
    let deps = h.dispatch();
    let mut recorded: Vec<Vec<optline_tests::calls::Recorded>> = Vec::new();
    h.calls.record();
    eprintln!("bench: dispatch");
    let mut dispatch_cpu = 0.0;
    let mut function_calls: BTreeMap<String, u64> = BTreeMap::new();
    let mut function_time: BTreeMap<String, std::time::Duration> = BTreeMap::new();
    let mut dispatch_time = std::time::Duration::ZERO;
    // The emulator's CPU inside the invocations only (the event source
    // mapping's receives and deletes happen between them).
    let mut emulator_in_dispatch = 0.0;
    // The batches the event source mapping hands the function, read off
    // the queue first: moto's ReceiveMessage walks the whole queue (and
    // allocates for every message in it), work that belongs to the mapping
    // and not to the function, so none of it runs between or during the
    // invocations. The handled messages are deleted after the last one.
    let mut batches = Vec::new();
    let mut received = 0;
    let mut empty_polls = 0;
    while received < enqueued && empty_polls < 3 {
        let batch = h.receive_dispatch_batch(10).await;
        if batch.records.is_empty() {
            empty_polls += 1;
            continue;
        }
        received += batch.records.len();
        batches.push(batch);
    }
    let mut handled = 0;
    let mut answered = Vec::new();
    eprintln!("bench: invocations");
    for batch in batches {
        let size = batch.records.len();
        let before = h.calls.snapshot();
        let time_before = h.calls.time_snapshot();
        let emulator_started = emulator_cpu_seconds();
        let cpu_started = cpu_seconds();
        // Only the invocation's requests are kept.
        let _ = h.calls.take_recorded();
        let started = Instant::now();
        let response = optline_dispatch::handle_batch(batch.clone(), &deps, now).await;
        dispatch_time += started.elapsed();
        recorded.push(h.calls.take_recorded());
        emulator_in_dispatch += emulator_cpu_seconds() - emulator_started;
        dispatch_cpu += cpu_seconds() - cpu_started;
        for (k, v) in since(&before, &h.calls.snapshot()) {
            *function_calls.entry(k).or_insert(0) += v;
        }
        for (k, v) in h.calls.time_snapshot() {
            let spent = v.saturating_sub(time_before.get(&k).copied().unwrap_or_default());
            *function_time.entry(k).or_default() += spent;
        }
        let failed: Vec<String> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        handled += size - failed.len();
        answered.push((batch, failed));
    }
    h.calls.stop_recording();
    eprintln!("bench: invocations done");
    for (batch, failed) in &answered {
        h.delete_messages(batch, failed).await;
    }
    let sent = total(&function_calls, "SNS.Publish");
    let raw_sweep = raw_sweep_rate(&h, "RAWS").await;
    eprintln!("bench: the sweep's requests replayed");
    let mut renames = table_renames(&h.resources.table_name, &sweep_twin);
    renames.push((
        format!("\"{}\"", h.resources.queue_url),
        format!("\"{queue_twin}\""),
    ));
    let (sweep_replayed, sweep_refused) = replay_sweep(&sweep_recorded, &renames, enqueued).await;
    eprintln!("bench: dispatch's requests replayed");
    let emulator_before = emulator_cpu_seconds();
    let (replayed, replay_refused) = replay(&recorded, &h.resources.table_name, &twin).await;
    let replay_emulator_cpu = emulator_cpu_seconds() - emulator_before;
    eprintln!("bench: replay done");
    eprintln!("bench: raw dispatch");
    let emulator_before = emulator_cpu_seconds();
    let raw_calls_before = h.calls.snapshot();
    let raw_time_before = h.calls.time_snapshot();
    let raw_dispatch = raw_dispatch_rate(&h, "RAWD", steps).await;
    let raw_calls = since(&raw_calls_before, &h.calls.snapshot());
    let raw_time: BTreeMap<String, std::time::Duration> = h
        .calls
        .time_snapshot()
        .into_iter()
        .map(|(k, v)| {
            let spent = v.saturating_sub(raw_time_before.get(&k).copied().unwrap_or_default());
            (k, spent)
        })
        .collect();
    let raw_dispatch_emulator_cpu = emulator_cpu_seconds() - emulator_before;

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
    println!(
        "| dispatch: this process's CPU per text, ms (the function's work and its SDK calls) | {:.2} |",
        dispatch_cpu * 1000.0 / sent.max(1) as f64
    );
    println!(
        "| the emulator's CPU per text, ms: inside dispatch's invocations / its requests replayed / the hand-built calls | {:.2} / {:.2} / {:.2} |",
        emulator_in_dispatch * 1000.0 / sent.max(1) as f64,
        replay_emulator_cpu * 1000.0 / sent.max(1) as f64,
        raw_dispatch_emulator_cpu * 1000.0 / steps.max(1) as f64
    );
    println!(
        "| emulator raw rate, the sweep's own requests replayed byte for byte on twins (steps per second) | {sweep_replayed:.0} |"
    );
    println!(
        "| sweep as a share of that | {:.2} |",
        sweep_rate / sweep_replayed.max(f64::MIN_POSITIVE)
    );
    println!("| the sweep's replay: answers other than 200 | {sweep_refused} |");
    println!(
        "| emulator raw rate, the sweep's calls rebuilt by hand (steps per second) | {raw_sweep:.0} |"
    );
    println!(
        "| sweep as a share of that | {:.2} |",
        sweep_rate / raw_sweep.max(f64::MIN_POSITIVE)
    );
    println!(
        "| emulator raw rate, dispatch's own requests replayed byte for byte on a twin table (texts per second) | {replayed:.0} |"
    );
    println!(
        "| dispatch as a share of that | {:.2} |",
        dispatch_rate / replayed.max(f64::MIN_POSITIVE)
    );
    println!("| the replay: answers other than 200 | {replay_refused} |");
    println!(
        "| emulator raw rate, dispatch's calls rebuilt by hand with short expressions (texts per second) | {raw_dispatch:.0} |"
    );
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
    println!("| STOP storm: answers of 503 (retried, as Twilio's retry would) | {retried} |");
    println!("\n| call | dispatch: mean ms a call | raw dispatch: mean ms a call |");
    println!("|---|---:|---:|");
    for (name, calls) in &function_calls {
        let mean = |time: &BTreeMap<String, std::time::Duration>, count: u64| {
            time.get(name)
                .map_or(0.0, |t| t.as_secs_f64() * 1000.0 / count.max(1) as f64)
        };
        println!(
            "| `{name}` | {:.1} | {:.1} |",
            mean(&function_time, *calls),
            mean(&raw_time, raw_calls.get(name).copied().unwrap_or(0)),
        );
    }
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

/// This process's CPU time so far (user and system), in seconds, from
/// `/proc/self/stat` (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    cpu_seconds_of("self")
}

/// The emulator's CPU time so far (its pid from `.local/server.json`).
fn emulator_cpu_seconds() -> f64 {
    let pid = std::fs::read_to_string(".local/server.json")
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("pid").and_then(serde_json::Value::as_u64));
    pid.map_or(0.0, |pid| cpu_seconds_of(&pid.to_string()))
}

fn cpu_seconds_of(process: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{process}/stat")) else {
        return 0.0;
    };
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th fields of the whole line, in clock ticks (100/s).
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The `p` quantile of `values` (milliseconds), nearest rank.
fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p * sorted.len() as f64).ceil() as usize).saturating_sub(1);
    sorted.get(rank).copied().unwrap_or(0.0)
}

/// Raw items for the emulator's raw rate, seeded before anything is timed
/// so the real run and the raw one meet a table of the same size: per step
/// a 2 KB step item (in the sweep's raw due shards when `due`), its
/// contact's profile and state items and its number's state item.
async fn seed_raw(h: &Harness, prefix: &str, n: usize, due: bool) {
    use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
    let item = |pk: String, sk: &str, bytes: usize| {
        let mut item = std::collections::HashMap::from([
            ("pk".to_owned(), AttributeValue::S(pk)),
            ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
            ("padding".to_owned(), AttributeValue::S("x".repeat(bytes))),
        ]);
        item.insert("status".to_owned(), AttributeValue::S("pending".to_owned()));
        item
    };
    let mut requests = Vec::new();
    // Sizes as the real run writes them (a scan of its table after a run:
    // step 1.0 KB, profile 0.3 KB, state 0.75 KB, a number's state 0.45 KB).
    for i in 0..n {
        let mut step = item(format!("{prefix}S#{i}"), "STEP", 1000);
        if due {
            step.insert(
                "due_pk".to_owned(),
                AttributeValue::S(format!("{prefix}DUE#{}", i % 4)),
            );
            step.insert(
                "due_sk".to_owned(),
                AttributeValue::S(format!("2026-12-07T16:55:00.000Z#{i:06}")),
            );
        }
        for it in [
            step,
            item(format!("{prefix}C#{i}"), "PROFILE", 280),
            item(format!("{prefix}C#{i}"), "STATE", 750),
            item(format!("{prefix}N#{i}"), "STATE", 450),
        ] {
            requests.push(
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(it)).build().unwrap())
                    .build(),
            );
        }
    }
    for chunk in requests.chunks(25) {
        h.dynamodb
            .batch_write_item()
            .request_items(&h.resources.table_name, chunk.to_vec())
            .send()
            .await
            .expect("seed raw items");
    }
}

fn raw_key(
    pk: String,
    sk: &str,
) -> std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue> {
    use aws_sdk_dynamodb::types::AttributeValue;
    std::collections::HashMap::from([
        ("pk".to_owned(), AttributeValue::S(pk)),
        ("sk".to_owned(), AttributeValue::S(sk.to_owned())),
    ])
}

/// `BatchGetItem`s of `keys`, 100 to a call, the calls at once (as the
/// store reads).
async fn raw_batch_get(
    h: &Harness,
    keys: Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>>,
) {
    use aws_sdk_dynamodb::types::KeysAndAttributes;
    let table = h.resources.table_name.clone();
    futures_util::future::join_all(keys.chunks(100).map(|chunk| {
        let client = h.dynamodb.clone();
        let table = table.clone();
        let request = KeysAndAttributes::builder()
            .set_keys(Some(chunk.to_vec()))
            .consistent_read(true)
            .build()
            .unwrap();
        async move {
            client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .expect("raw batch get");
        }
    }))
    .await;
}

/// The emulator's rate for the sweep's calls, with no logic around them:
/// page by page, the four due shards queried at once (100 items a call),
/// the page's contacts and numbers read (`BatchGetItem`, 100 keys a call),
/// each step moved with a conditional `UpdateItem` (16 at once) and the
/// page enqueued (`SendMessageBatch` of ten, ten at once), until a page
/// comes back empty. Steps a second.
async fn raw_sweep_rate(h: &Harness, prefix: &str) -> f64 {
    use aws_sdk_dynamodb::types::AttributeValue;
    use futures_util::StreamExt;
    let table = h.resources.table_name.clone();
    let queue = h
        .sqs
        .create_queue()
        .queue_name(format!("{}-raw", h.resources.table_name))
        .send()
        .await
        .expect("raw queue")
        .queue_url
        .unwrap_or_default();
    let started = Instant::now();
    let mut moved = 0usize;
    loop {
        // The due index, four shards at once.
        let shards = futures_util::future::join_all((0..4).map(|shard| {
            let client = h.dynamodb.clone();
            let table = table.clone();
            async move {
                let mut ids: Vec<String> = Vec::new();
                let mut start = None;
                loop {
                    let out = client
                        .query()
                        .table_name(&table)
                        .index_name("due")
                        .key_condition_expression("due_pk = :shard AND due_sk <= :upper")
                        .expression_attribute_values(
                            ":shard",
                            AttributeValue::S(format!("{prefix}DUE#{shard}")),
                        )
                        .expression_attribute_values(
                            ":upper",
                            AttributeValue::S("2026-12-07T17:00:00.000Z#~".to_owned()),
                        )
                        .limit(100)
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .expect("raw due query");
                    for item in out.items() {
                        if let Some(AttributeValue::S(pk)) = item.get("pk") {
                            ids.push(pk.trim_start_matches(&format!("{prefix}S#")).to_owned());
                        }
                    }
                    match out.last_evaluated_key() {
                        Some(key) if !key.is_empty() && ids.len() < 1000 => {
                            start = Some(key.clone());
                        }
                        _ => break,
                    }
                }
                ids
            }
        }))
        .await;
        let mut page: Vec<String> = shards.into_iter().flatten().collect();
        page.truncate(1000);
        if page.is_empty() {
            break;
        }
        // The page's contacts, then their numbers.
        raw_batch_get(
            h,
            page.iter()
                .flat_map(|i| {
                    [
                        raw_key(format!("{prefix}C#{i}"), "PROFILE"),
                        raw_key(format!("{prefix}C#{i}"), "STATE"),
                    ]
                })
                .collect(),
        )
        .await;
        raw_batch_get(
            h,
            page.iter()
                .map(|i| raw_key(format!("{prefix}N#{i}"), "STATE"))
                .collect(),
        )
        .await;
        // Pending → queued, out of the due range.
        futures_util::stream::iter(page.iter())
            .map(|i| {
                let client = h.dynamodb.clone();
                let table = table.clone();
                async move {
                    client
                        .update_item()
                        .table_name(table)
                        .key("pk", AttributeValue::S(format!("{prefix}S#{i}")))
                        .key("sk", AttributeValue::S("STEP".to_owned()))
                        .update_expression("SET #s = :queued, queued_at = :at, due_sk = :lease")
                        .condition_expression("#s = :pending")
                        .expression_attribute_names("#s", "status")
                        .expression_attribute_values(
                            ":queued",
                            AttributeValue::S("queued".to_owned()),
                        )
                        .expression_attribute_values(
                            ":pending",
                            AttributeValue::S("pending".to_owned()),
                        )
                        .expression_attribute_values(
                            ":at",
                            AttributeValue::S("2026-12-07T17:00:00.000Z".to_owned()),
                        )
                        .expression_attribute_values(
                            ":lease",
                            AttributeValue::S(format!("2026-12-07T17:15:00.000Z#{i}")),
                        )
                        .send()
                        .await
                        .expect("raw update");
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
        // The page to the queue.
        futures_util::stream::iter(page.chunks(10))
            .map(|chunk| {
                let sqs = h.sqs.clone();
                let queue = queue.clone();
                let entries: Vec<_> = chunk
                    .iter()
                    .enumerate()
                    .map(|(j, i)| {
                        aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                            .id(j.to_string())
                            .message_body(format!("{{\"step_id\":\"raw-{i}\"}}"))
                            .build()
                            .unwrap()
                    })
                    .collect();
                async move {
                    sqs.send_message_batch()
                        .queue_url(queue)
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .expect("raw enqueue");
                }
            })
            .buffer_unordered(10)
            .collect::<Vec<()>>()
            .await;
        moved += page.len();
    }
    let rate = moved as f64 / started.elapsed().as_secs_f64();
    let _ = h.sqs.delete_queue().queue_url(queue).send().await;
    rate
}

/// A body of a reminder's length (the bench's template renders to about
/// this).
const RAW_BODY: &str = "Riverside Clinic: Reminder of your appointment on Mon Dec 7 at 9:00 AM. Reply C to confirm or R to reschedule. Reply STOP to opt out.";

/// The emulator's rate for dispatch's calls, with no logic around them, one
/// invocation at a time: per batch of ten, its steps, its contacts and its
/// numbers read (three `BatchGetItem`s, one after the other, as dispatch
/// reads them), then its ten texts at once, each a claim (a transaction:
/// the step's conditional update and a check on each state item), a send
/// slot counter update for one text in ten, the `Publish`, and the finish
/// (a transaction of seven items: send record, carrier-id mapping, audit
/// record, tally, outbox event, step outcome and state). Texts a second.
async fn raw_dispatch_rate(h: &Harness, prefix: &str, n: usize) -> f64 {
    use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem, Update};
    use futures_util::StreamExt;
    let table = h.resources.table_name.clone();
    let started = Instant::now();
    for batch in (0..n).collect::<Vec<_>>().chunks(10) {
        raw_batch_get(
            h,
            batch
                .iter()
                .map(|i| raw_key(format!("{prefix}S#{i}"), "STEP"))
                .collect(),
        )
        .await;
        raw_batch_get(
            h,
            batch
                .iter()
                .flat_map(|i| {
                    [
                        raw_key(format!("{prefix}C#{i}"), "PROFILE"),
                        raw_key(format!("{prefix}C#{i}"), "STATE"),
                    ]
                })
                .collect(),
        )
        .await;
        raw_batch_get(
            h,
            batch
                .iter()
                .map(|i| raw_key(format!("{prefix}N#{i}"), "STATE"))
                .collect(),
        )
        .await;
        futures_util::stream::iter(batch.iter().copied())
            .map(|i| {
                let client = h.dynamodb.clone();
                let sns = h.sns.clone();
                let table = table.clone();
                async move {
                    let claim = Update::builder()
                        .table_name(&table)
                        .set_key(Some(raw_key(format!("{prefix}S#{i}"), "STEP")))
                        .update_expression("SET #s = :sending, claimed_at = :at")
                        .condition_expression("#s = :pending")
                        .expression_attribute_names("#s", "status")
                        .expression_attribute_values(
                            ":sending",
                            AttributeValue::S("sending".to_owned()),
                        )
                        .expression_attribute_values(
                            ":pending",
                            AttributeValue::S("pending".to_owned()),
                        )
                        .expression_attribute_values(
                            ":at",
                            AttributeValue::S("2026-12-07T17:00:00.000Z".to_owned()),
                        )
                        .build()
                        .unwrap();
                    let mut transaction = client
                        .transact_write_items()
                        .transact_items(TransactWriteItem::builder().update(claim).build());
                    for pk in [format!("{prefix}C#{i}"), format!("{prefix}N#{i}")] {
                        let check = ConditionCheck::builder()
                            .table_name(&table)
                            .set_key(Some(raw_key(pk, "STATE")))
                            .condition_expression("attribute_exists(padding)")
                            .build()
                            .unwrap();
                        transaction = transaction.transact_items(
                            TransactWriteItem::builder().condition_check(check).build(),
                        );
                    }
                    transaction.send().await.expect("raw claim");
                    if i % 10 == 0 {
                        client
                            .update_item()
                            .table_name(&table)
                            .key("pk", AttributeValue::S(format!("{prefix}PACE")))
                            .key("sk", AttributeValue::S(format!("{i}")))
                            .update_expression("ADD used :n")
                            .condition_expression("attribute_not_exists(used) OR used <= :max")
                            .expression_attribute_values(":n", AttributeValue::N("10".to_owned()))
                            .expression_attribute_values(":max", AttributeValue::N("40".to_owned()))
                            .send()
                            .await
                            .expect("raw slot");
                    }
                    // As dispatch publishes: its SMS type attribute and a
                    // reminder's length.
                    sns.publish()
                        .phone_number(format!("+1332556{:04}", i % 10_000))
                        .message(RAW_BODY)
                        .message_attributes(
                            "AWS.SNS.SMS.SMSType",
                            aws_sdk_sns::types::MessageAttributeValue::builder()
                                .data_type("String")
                                .string_value("Transactional")
                                .build()
                                .unwrap(),
                        )
                        .send()
                        .await
                        .expect("raw publish");
                    let mut finish = client.transact_write_items();
                    // The real finish's items at their real sizes: send
                    // record, carrier-id mapping, audit record, tally and
                    // outbox event; then the step's outcome and the state.
                    for (sk, bytes) in [
                        ("SENT", 300),
                        ("CARRIER", 160),
                        ("AUDIT", 2200),
                        ("TALLY", 350),
                        ("OUTBOX", 620),
                    ] {
                        let mut item = raw_key(format!("{prefix}S#{i}"), sk);
                        item.insert("padding".to_owned(), AttributeValue::S("x".repeat(bytes)));
                        let put = Put::builder()
                            .table_name(&table)
                            .set_item(Some(item))
                            .condition_expression("attribute_not_exists(pk)")
                            .build()
                            .unwrap();
                        finish =
                            finish.transact_items(TransactWriteItem::builder().put(put).build());
                    }
                    for (pk, sk) in [
                        (format!("{prefix}S#{i}"), "STEP"),
                        (format!("{prefix}C#{i}"), "STATE"),
                    ] {
                        let update = Update::builder()
                            .table_name(&table)
                            .set_key(Some(raw_key(pk, sk)))
                            .update_expression("SET rev = :rev")
                            .expression_attribute_values(":rev", AttributeValue::N("1".to_owned()))
                            .build()
                            .unwrap();
                        finish = finish
                            .transact_items(TransactWriteItem::builder().update(update).build());
                    }
                    finish.send().await.expect("raw finish");
                }
            })
            .buffer_unordered(10)
            .collect::<Vec<()>>()
            .await;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// A copy of the harness's table, item for item, under a new name with
/// the same keys, indexes and stream: the state dispatch is about to meet.
async fn twin_table(h: &Harness, suffix: &str) -> String {
    use aws_sdk_dynamodb::types::{GlobalSecondaryIndex, Projection, StreamSpecification};
    let source = h.resources.table_name.clone();
    let twin = format!("{source}-{suffix}");
    let described = h
        .dynamodb
        .describe_table()
        .table_name(&source)
        .send()
        .await
        .expect("describe table");
    let table = described.table().expect("table");
    let mut create = h
        .dynamodb
        .create_table()
        .table_name(&twin)
        .billing_mode(aws_sdk_dynamodb::types::BillingMode::PayPerRequest)
        .set_key_schema(Some(table.key_schema().to_vec()))
        .set_attribute_definitions(Some(table.attribute_definitions().to_vec()));
    for index in table.global_secondary_indexes() {
        create = create.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.index_name().unwrap_or_default())
                .set_key_schema(Some(index.key_schema().to_vec()))
                .projection(index.projection().cloned().unwrap_or_else(|| {
                    Projection::builder()
                        .projection_type(aws_sdk_dynamodb::types::ProjectionType::All)
                        .build()
                }))
                .build()
                .expect("index"),
        );
    }
    if let Some(stream) = table.stream_specification() {
        create = create.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(stream.stream_enabled())
                .set_stream_view_type(stream.stream_view_type().cloned())
                .build()
                .expect("stream"),
        );
    }
    create.send().await.expect("create twin table");
    h.put_items_into(&twin, &h.table_items().await).await;
    twin
}

/// The bench text a request belongs to, from the step id, contact id or
/// number it names (`bench-{i}`, `b{i}`, `+1332555{i:04}`); none for the
/// batch's reads and for requests that name no text.
fn text_of(body: &str) -> Option<usize> {
    let digits_after = |marker: &str| {
        body.find(marker).and_then(|at| {
            let rest = &body[at + marker.len()..];
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            rest[..end].parse().ok()
        })
    };
    digits_after("STEP#bench-")
        .or_else(|| digits_after("%2B1332555"))
        .or_else(|| digits_after("+1332555"))
}

/// A kept request as the replay sends it: straight to the emulator over
/// HTTP, each `(from, to)` of `renames` changed in its body (a table's or
/// a queue's name to its twin's).
fn replayable(
    client: &reqwest::Client,
    recorded: &optline_tests::calls::Recorded,
    renames: &[(String, String)],
) -> (String, reqwest::Request) {
    let mut body = String::from_utf8_lossy(&recorded.body).into_owned();
    for (from, to) in renames {
        body = body.replace(from, to);
    }
    let mut request = client.post(&recorded.uri);
    for (name, value) in &recorded.headers {
        if !name.eq_ignore_ascii_case("content-length") {
            request = request.header(name, value);
        }
    }
    let request = request.body(body.clone()).build().expect("request");
    (body, request)
}

/// The renames that point a kept DynamoDB request at `twin` instead of
/// `table` (its `TableName`s, and the table's key in a batch read).
fn table_renames(table: &str, twin: &str) -> Vec<(String, String)> {
    vec![
        (
            format!("\"TableName\":\"{table}\""),
            format!("\"TableName\":\"{twin}\""),
        ),
        (format!("\"{table}\":"), format!("\"{twin}\":")),
    ]
}

/// Sends `request`, counting an answer other than 200 in `refused`.
async fn send_counted(
    client: &reqwest::Client,
    request: reqwest::Request,
    refused: &std::sync::atomic::AtomicUsize,
) {
    let answer = client.execute(request).await.expect("replayed request");
    if answer.status() != 200 {
        refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let _ = answer.bytes().await;
}

/// Dispatch's requests, byte for byte (each attempt, its own expressions,
/// items and sizes), sent again straight to the emulator with the table
/// renamed to its twin, which held the same items when dispatch began:
/// batch by batch as dispatch sent them, the batch's reads first, then
/// each text's requests in their order, the texts at once (at most ten).
/// Texts a second, and how many answers were not 200.
async fn replay(
    batches: &[Vec<optline_tests::calls::Recorded>],
    table: &str,
    twin: &str,
) -> (f64, usize) {
    use futures_util::StreamExt;
    let client = reqwest::Client::new();
    let renames = table_renames(table, twin);
    let prepared: Vec<(Vec<reqwest::Request>, Vec<Vec<reqwest::Request>>)> = batches
        .iter()
        .map(|batch| {
            let mut reads = Vec::new();
            let mut texts: BTreeMap<usize, Vec<reqwest::Request>> = BTreeMap::new();
            let mut last: Option<usize> = None;
            for recorded in batch {
                let (body, request) = replayable(&client, recorded, &renames);
                let owner = if recorded.name.ends_with("BatchGetItem") {
                    None
                } else {
                    text_of(&body).or(last)
                };
                match owner {
                    Some(text) => {
                        last = Some(text);
                        texts.entry(text).or_default().push(request);
                    }
                    None => reads.push(request),
                }
            }
            (reads, texts.into_values().collect())
        })
        .collect();
    let refused = std::sync::atomic::AtomicUsize::new(0);
    let texts: usize = prepared.iter().map(|(_, t)| t.len()).sum();
    let started = Instant::now();
    for (reads, per_text) in prepared {
        for request in reads {
            send_counted(&client, request, &refused).await;
        }
        futures_util::stream::iter(per_text)
            .map(|requests| {
                let client = &client;
                let refused = &refused;
                async move {
                    for request in requests {
                        send_counted(client, request, refused).await;
                    }
                }
            })
            .buffer_unordered(10)
            .collect::<Vec<()>>()
            .await;
    }
    let rate = texts as f64 / started.elapsed().as_secs_f64();
    (rate, refused.into_inner())
}

/// The sweep's requests, byte for byte, sent again straight to the
/// emulator against twins of the table (as it stood before the sweep) and
/// of the queue: phase by phase as the sweep made them (a phase is a run
/// of one operation), each phase with the sweep's concurrency for it (the
/// due shards' queries and the batch reads all at once, the conditional
/// updates 16 at once, the queue's batches 10 at once). Steps a second,
/// and how many answers were not 200.
async fn replay_sweep(
    recorded: &[optline_tests::calls::Recorded],
    renames: &[(String, String)],
    steps: usize,
) -> (f64, usize) {
    use futures_util::StreamExt;
    let client = reqwest::Client::new();
    let mut phases: Vec<(String, Vec<reqwest::Request>)> = Vec::new();
    for kept in recorded {
        let (_, request) = replayable(&client, kept, renames);
        match phases.last_mut() {
            Some((name, requests)) if *name == kept.name => requests.push(request),
            _ => phases.push((kept.name.clone(), vec![request])),
        }
    }
    let refused = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    for (name, requests) in phases {
        let at_once = match name.as_str() {
            "DynamoDB.Query" | "DynamoDB.BatchGetItem" => requests.len().max(1),
            "DynamoDB.UpdateItem" => optline_episodes::sweep::SWEEP_CONCURRENCY,
            "SQS.SendMessageBatch" => optline_aws::ENQUEUE_CONCURRENCY,
            _ => 1,
        };
        futures_util::stream::iter(requests)
            .map(|request| send_counted(&client, request, &refused))
            .buffer_unordered(at_once)
            .collect::<Vec<()>>()
            .await;
    }
    let rate = steps as f64 / started.elapsed().as_secs_f64();
    (rate, refused.into_inner())
}

/// `n` STOP replies from distinct numbers through the signed Twilio
/// webhook, 20 at once; each one's time from the first request to the
/// answer that took it (the answer comes after the opt-out is committed),
/// in milliseconds, and how many answers were 503 (storage busy: nothing
/// written, asked again after a pause as Twilio's retry would).
async fn stop_storm(h: &Harness, n: usize) -> (Vec<f64>, usize) {
    use futures_util::StreamExt;
    let deps = h.inbound();
    let now = Utc.with_ymd_and_hms(2026, 12, 7, 17, 5, 0).unwrap();
    let results: Vec<(f64, usize)> = futures_util::stream::iter(0..n)
        .map(|i| {
            let deps = deps.clone();
            async move {
                let started = Instant::now();
                let mut retried = 0;
                loop {
                    let request = optline_tests::twilio_inbound_request(
                        &format!("SM{:032x}", 0x5709_0000_u64 + i as u64),
                        &format!("+1332557{:04}", i % 10_000),
                        "STOP",
                    );
                    let response = optline_inbound::handle(request, &deps, now).await;
                    match response.status().as_u16() {
                        200 => break,
                        503 if retried < 10 => {
                            retried += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                        }
                        other => panic!("a STOP answered {other}"),
                    }
                }
                (started.elapsed().as_secs_f64() * 1000.0, retried)
            }
        })
        .buffer_unordered(20)
        .collect()
        .await;
    let retried = results.iter().map(|(_, r)| r).sum();
    (results.into_iter().map(|(ms, _)| ms).collect(), retried)
}
