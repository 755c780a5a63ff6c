//! Throughput of the pure core on one core: the send decision, reply
//! classification and segment counting. Results and the command that
//! produced them are in `docs/benchmarks.md`.
//!
//! ```text
//! cargo bench -p optline-policy --bench policy -- --warm-up-time 1 --measurement-time 3
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    missing_debug_implementations,
    reason = "benchmark setup"
)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use optline_policy::classify::{classify, ReplyContext, ReplyGrammar};
use optline_policy::decision::{evaluate, Decision};
use optline_policy::segments;
use serde::Deserialize;

mod common;
use common::{inside, outside, realistic};

fn bench_evaluate(c: &mut Criterion) {
    let (request, state) = realistic();
    let (inside, outside) = (inside(), outside());
    assert!(matches!(
        evaluate(&request, &state, inside),
        Decision::Send { .. }
    ));
    assert!(matches!(
        evaluate(&request, &state, outside),
        Decision::Defer { until: Some(_), .. }
    ));

    let mut group = c.benchmark_group("evaluate");
    group.throughput(Throughput::Elements(1));
    group.bench_function("send_inside_hours", |b| {
        b.iter(|| evaluate(black_box(&request), black_box(&state), black_box(inside)));
    });
    group.bench_function("defer_quiet_hours", |b| {
        b.iter(|| evaluate(black_box(&request), black_box(&state), black_box(outside)));
    });
    group.finish();
}

#[derive(Deserialize)]
struct ClassifyCorpus {
    cases: Vec<ClassifyCase>,
}

#[derive(Deserialize)]
struct ClassifyCase {
    body: String,
    #[serde(default)]
    opted_out: bool,
    grammar: Option<ReplyGrammar>,
}

/// Fifty replies spread evenly over the classifier's corpus: keywords,
/// polite and free-text revocations, doubtful ones, HELP, START, codes and
/// ordinary chatter, in English and Spanish.
fn replies() -> Vec<(String, ReplyContext)> {
    let corpus: ClassifyCorpus =
        serde_json::from_str(include_str!("../tests/corpus/classify.json")).unwrap();
    let step = (corpus.cases.len() / 50).max(1);
    corpus
        .cases
        .into_iter()
        .step_by(step)
        .take(50)
        .map(|c| {
            (
                c.body,
                ReplyContext {
                    grammar: c.grammar,
                    opted_out: c.opted_out,
                },
            )
        })
        .collect()
}

fn bench_classify(c: &mut Criterion) {
    let replies = replies();
    let mut group = c.benchmark_group("classify");
    group.throughput(Throughput::Elements(replies.len() as u64));
    group.bench_function(format!("{}_replies", replies.len()), |b| {
        b.iter(|| {
            for (body, ctx) in &replies {
                black_box(classify(black_box(body), black_box(ctx)));
            }
        });
    });
    group.finish();
}

fn bench_segments(c: &mut Criterion) {
    let body: String = "Bayview Clinic: your visit with Dr. Alvarez is Fri Jun 12 at 9:30 AM at \
        1200 Harbor Blvd, Suite 4 [East entrance]. Please arrive 15 minutes early and bring \
        your insurance card and a photo ID. Reply C to confirm or R to reschedule. Questions? \
        Call 213-555-0199. Msg & data rates may apply. Reply STOP to opt out, HELP for help."
        .chars()
        .cycle()
        .take(300)
        .collect();
    assert_eq!(body.chars().count(), 300);
    let mut group = c.benchmark_group("segments");
    group.throughput(Throughput::Elements(1));
    group.bench_function("count_300_chars", |b| {
        b.iter(|| segments::count(black_box(&body)));
    });
    group.finish();
}

criterion_group!(benches, bench_evaluate, bench_classify, bench_segments);
criterion_main!(benches);
