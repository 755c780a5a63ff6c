//! `optline-demo`: the README's main job. Starts the local stack if needed,
//! creates a fresh set of resources from `infra/template.yaml`, and runs the
//! whole follow-up loop through the real handlers, printing the story.

#![allow(clippy::print_stdout, reason = "a command-line story for people")]

use optline_tests::{scenario, Harness};

#[tokio::main]
async fn main() {
    println!("optline walking skeleton: the whole follow-up loop on the local AWS emulator\n");
    let harness = Harness::new("demo").await;
    println!(
        "local stack at {} (table {}, queue {})\n",
        harness.endpoint,
        harness.resources.table_name,
        harness
            .resources
            .queue_url
            .rsplit('/')
            .next()
            .unwrap_or_default()
    );
    let report = scenario::run(&harness).await;
    let mut n = 0;
    for line in &report.lines {
        if line.starts_with("  ") {
            println!("{line}");
        } else {
            n += 1;
            println!("{n:>2}. {line}");
        }
    }
    let ok = matches!(
        report.first_outcome,
        Some(optline_dispatch::Outcome::Sent(_))
    ) && !report.second_suppressed.is_empty()
        && report.chain_verified
        && report.proof_verified;
    println!(
        "\n{}",
        if ok {
            "story complete: sent, opted out, suppressed, audited, anchored and proven."
        } else {
            "story INCOMPLETE: see above."
        }
    );
    if !ok {
        std::process::exit(1);
    }
}
