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
    println!(
        "The seed template library, loaded by an operations person and reviewed by named people:"
    );
    for line in harness.seeding.iter() {
        println!("  {line}");
    }
    println!();
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
    open_console(&harness);
}

/// Starts the console over this story's stack, in the background, and says
/// where it is and who can sign in.
fn open_console(h: &Harness) {
    let port = std::env::var("CONSOLE_PORT").unwrap_or_else(|_| "9100".to_owned());
    let root = optline_tests::repo_root();
    let state = root.join(".local");
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("optline-console-local")));
    let Some(binary) = binary.filter(|b| b.exists()) else {
        println!(
            "
(the console binary is not built; run: cargo run -p optline-tests --bin optline-console-local)"
        );
        return;
    };
    if let Ok(old) = std::fs::read_to_string(state.join("console.pid")) {
        let _ = std::process::Command::new("kill").arg(old.trim()).status();
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let log = std::fs::File::create(state.join("console.log"));
    let mut command = std::process::Command::new(binary);
    command
        .env("AWS_ENDPOINT_URL", &h.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("TABLE_NAME", &h.resources.table_name)
        .env("AUDIT_KEY_SECRET_ARN", &h.resources.audit_key_secret)
        .env("USER_POOL_ID", &h.resources.user_pool_id)
        .env("USER_POOL_CLIENT_ID", &h.resources.user_pool_client_id)
        .env("PROGRAM_ID", "clinic")
        .env("PROGRAM_NAME", "Riverside Clinic")
        .env("CONSOLE_PORT", &port)
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null());
    if let Ok(log) = log {
        if let Ok(err) = log.try_clone() {
            command.stdout(log).stderr(err);
        }
    }
    {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    match command.spawn() {
        Ok(child) => {
            let _ = std::fs::write(state.join("console.pid"), child.id().to_string());
            let users = optline_tests::local_users();
            println!(
                "
The console, over this story's records: http://localhost:{port}/console"
            );
            println!("Sign in as any local user (password {}):", users.password);
            for u in &users.users {
                println!(
                    "  {:<16} {:<16} {}",
                    u.username,
                    u.name,
                    u.groups.join(", ")
                );
            }
        }
        Err(e) => println!(
            "
(the console did not start: {e})"
        ),
    }
}
