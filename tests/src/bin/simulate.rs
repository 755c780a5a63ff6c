//! `optline-simulate`: a month on the local emulator, then its report and
//! the experiment's results (`docs/outcomes.md`).
//!
//! ```sh
//! python3 infra/local-stack.py start
//! OPTLINE_METRICS=off cargo run -p optline-tests --bin optline-simulate -- --days 30 --per-day 100 [--format html > month.html]
//! ```
//!
//! Every fact goes through the real handlers and the emulator's AWS APIs,
//! so a month of 3,000 episodes takes a while (the emulator serializes
//! DynamoDB); `--days 10 --per-day 36` shows the same story in minutes.

#![allow(
    clippy::print_stdout,
    clippy::expect_used,
    reason = "a command-line tool prints its answer and stops loudly on a broken setup"
)]

use optline_outcomes::{Format, ReportRequest};
use optline_tests::simulate::{self, Options, EXPERIMENT};
use optline_tests::Harness;

fn flag(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let defaults = Options::default();
    let options = Options {
        days: flag("--days")
            .and_then(|v| v.parse().ok())
            .unwrap_or(defaults.days),
        episodes_per_day: flag("--per-day")
            .and_then(|v| v.parse().ok())
            .unwrap_or(defaults.episodes_per_day),
        seed: flag("--seed")
            .and_then(|v| v.parse().ok())
            .unwrap_or(defaults.seed),
    };
    let format: Format = flag("--format")
        .map(|f| f.parse().expect("--format table, json, csv or html"))
        .unwrap_or(Format::Table);
    let h = Harness::new("simulate").await;
    let month = simulate::run(&h, options).await;
    let request = ReportRequest {
        from: simulate::start().date_naive(),
        to: month.end.date_naive(),
        program: None,
        price_per_segment: optline_outcomes::DEFAULT_PRICE_PER_SEGMENT,
        no_show_baselines: [("clinic".to_owned(), 0.18)].into(),
    };
    let report = optline_outcomes::gather(h.store.as_ref(), &request, month.end)
        .await
        .expect("the report");
    if format != Format::Table {
        print!("{}", report.render(format));
        return;
    }
    for line in &month.lines {
        println!("{line}");
    }
    println!(
        "\n{} texts sent; replies {:?}; appointments concluded {:?}\n",
        month.sent.len(),
        month.replies,
        month.concluded
    );
    print!("{}", report.render(Format::Table));
    let experiment = optline_ports::ExperimentStore::experiment(h.store.as_ref(), EXPERIMENT)
        .await
        .expect("read")
        .expect("the experiment");
    let results = optline_outcomes::experiments::results(h.store.as_ref(), &experiment, month.end)
        .await
        .expect("results");
    println!("\nexperiment {EXPERIMENT} (primary metric: confirmations per episode texted)");
    for arm in &results.arms {
        println!(
            "  {:<8} {:>5} episodes {:>5} confirmed  rate {:>5.1}% [{:.1}%, {:.1}%]  P(best) {}  sends {:>5}  opt-outs {:>3}{}",
            arm.name,
            arm.episodes,
            arm.successes,
            arm.rate * 100.0,
            arm.interval.0 * 100.0,
            arm.interval.1 * 100.0,
            arm.probability_best.map_or_else(|| "  -  ".to_owned(), |p| format!("{p:.3}")),
            arm.sends,
            arm.opt_outs,
            arm.stopped
                .as_ref()
                .map(|s| format!("  STOPPED by {}", s.by))
                .unwrap_or_default()
        );
    }
    println!("  call: {:?}", results.call);
}
