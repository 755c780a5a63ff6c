//! Heap allocations per operation of the pure core, counted by dhat's
//! global allocator. Prints a table; asserts nothing.
//! Results are in `docs/benchmarks.md`.
//!
//! ```text
//! cargo bench -p optline-policy --bench allocations
//! ```

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::print_stdout,
    missing_debug_implementations,
    reason = "benchmark setup and its printed table"
)]

use std::hint::black_box;

use optline_policy::classify::{classify, ReplyContext};
use optline_policy::decision::evaluate;
use optline_policy::segments;

mod common;
use common::{inside, outside, realistic};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// Allocations and bytes per call of `f`, averaged over `n` calls after a
/// warm-up call (which fills the embedded tables' `OnceLock`s).
fn measure(n: u64, mut f: impl FnMut()) -> (f64, f64) {
    f();
    let before = dhat::HeapStats::get();
    for _ in 0..n {
        f();
    }
    let after = dhat::HeapStats::get();
    (
        (after.total_blocks - before.total_blocks) as f64 / n as f64,
        (after.total_bytes - before.total_bytes) as f64 / n as f64,
    )
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let (request, state) = realistic();
    let (inside, outside) = (inside(), outside());
    let reply = ReplyContext::default();
    let rows = [
        (
            "evaluate/send_inside_hours",
            measure(10_000, || {
                black_box(evaluate(black_box(&request), black_box(&state), inside));
            }),
        ),
        (
            "evaluate/defer_quiet_hours",
            measure(10_000, || {
                black_box(evaluate(black_box(&request), black_box(&state), outside));
            }),
        ),
        (
            "classify/\"Stop texting me please\"",
            measure(10_000, || {
                black_box(classify(black_box("Stop texting me please"), &reply));
            }),
        ),
        (
            "segments/count 160-char GSM-7 body",
            measure(10_000, || {
                black_box(segments::count(black_box(
                    request.body.as_deref().unwrap_or_default(),
                )));
            }),
        ),
    ];
    println!("| operation | allocations per op | bytes allocated per op |");
    println!("|---|---:|---:|");
    for (name, (allocs, bytes)) in rows {
        println!("| `{name}` | {allocs:.1} | {bytes:.0} |");
    }
}
