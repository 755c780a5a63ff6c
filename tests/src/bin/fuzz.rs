//! `fuzz`: a coverage-blind mutational fuzzer on stable Rust for every
//! parser that reads outside input, for runs longer than CI's property
//! tests (`docs/fuzzing.md`).
//!
//! ```sh
//! cargo run --profile bench -p optline-tests --bin fuzz -- all --minutes 60
//! cargo run --profile bench -p optline-tests --bin fuzz -- hl7 --iterations 5000000 --seed 7
//! cargo run --profile bench -p optline-tests --bin fuzz -- hl7 --replay fuzz-crashes/hl7-1a2b3c.bin
//! ```
//!
//! Each iteration takes a seed input (the project's real fixtures), applies
//! one to eight mutations (bit flips, byte and token inserts, deletions,
//! duplications, splices with another seed, boundary numbers) and runs the
//! target under `catch_unwind`. A panic is a finding: its input is written
//! to `fuzz-crashes/<target>-<hash>.bin` and the run ends with status 1.
//! Targets also check invariants where the parser has one (a rendered
//! template keeps no placeholder; a signature verifies what it signed).

#![allow(
    clippy::print_stdout,
    clippy::indexing_slicing,
    reason = "a command-line tool; indices are bounded by the RNG's modulo"
)]

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use optline_aws::twilio_signature::{compute, is_valid_with, settings, Algorithm};
use optline_episodes::intake::{fhir, hl7, normalized};
use optline_policy::classify::{classify, ReplyContext};
use optline_policy::template::TemplateVersion;
use optline_tests::fixtures;

type Target = fn(&[u8]) -> Result<(), String>;

const TARGETS: &[(&str, Target)] = &[
    ("hl7", hl7_target),
    ("fhir", fhir_target),
    ("normalized", normalized_target),
    ("two-way-sns", two_way_target),
    ("twilio-form", twilio_form_target),
    ("template", template_target),
    ("classify", classify_target),
    ("programs", programs_target),
];

fn hl7_target(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    if let Ok(message) = hl7::Message::parse(&text) {
        let _ = optline_episodes::intake::patient::from_pid(&message, "hl7:fuzz");
        if let Ok(event) = hl7::read(&message) {
            if event.appointment_id.is_empty() {
                return Err("an accepted HL7 event has no appointment id".to_owned());
            }
        }
    }
    let _ = hl7::parse_dtm(&text, Some(chrono_tz::America::Chicago));
    let _ = hl7::dtm_syntax_ok(&text);
    Ok(())
}

fn fhir_target(data: &[u8]) -> Result<(), String> {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = fhir::read_document(value.clone());
        let _ = optline_episodes::intake::patient::from_fhir_patient(&value, chrono::Utc::now());
        let _ = fhir::patient_identifier(&value);
        let _ = fhir::appointment(value);
    }
    Ok(())
}

fn normalized_target(data: &[u8]) -> Result<(), String> {
    let _ = normalized::read(data);
    Ok(())
}

fn two_way_target(data: &[u8]) -> Result<(), String> {
    let _ = optline_inbound::parse_two_way(&String::from_utf8_lossy(data));
    Ok(())
}

fn twilio_form_target(data: &[u8]) -> Result<(), String> {
    let Ok(params) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(data) else {
        return Ok(());
    };
    let header = params
        .iter()
        .find(|(k, _)| k == "SignatureSettings")
        .map(|(_, v)| v.as_str());
    let _ = settings(header);
    let url = "https://api.example/twilio/inbound";
    for algorithm in [Algorithm::HmacSha1, Algorithm::HmacSha256] {
        let signature = compute(algorithm, "secret", url, &params);
        if !is_valid_with(algorithm, "secret", url, &params, &signature) {
            return Err("a signature does not verify what it signed".to_owned());
        }
        if let Some((_, v)) = params.first() {
            let _ = is_valid_with(algorithm, "secret", url, &params, v);
        }
    }
    Ok(())
}

fn template_target(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    let (body, value) = text.split_once('\u{1}').unwrap_or((&text, "Tue Dec 8"));
    let Some(mut version) = optline_policy::template::seed_library()
        .into_iter()
        .find(|t| t.id == "appointment_reminder")
    else {
        return Err("the seed library lost appointment_reminder".to_owned());
    };
    version.body = body.to_owned();
    let values: BTreeMap<String, String> = version
        .variables
        .iter()
        .map(|v| (v.name.clone(), value.to_owned()))
        .collect();
    if let Ok(rendered) = version.render(&values) {
        if rendered.contains("{{") && !value.contains("{{") {
            return Err("a rendering kept a placeholder".to_owned());
        }
    }
    let _ = version.worst_case();
    if let Ok(config) = optline_policy::template::lint::LintConfig::embedded() {
        let _ = optline_policy::template::lint::lint(&version, config);
    }
    let _ = serde_json::from_slice::<TemplateVersion>(data);
    Ok(())
}

fn classify_target(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    for opted_out in [false, true] {
        let _ = classify(
            &text,
            &ReplyContext {
                grammar: None,
                opted_out,
            },
        );
    }
    let _ = optline_policy::segments::count(&text);
    Ok(())
}

fn programs_target(data: &[u8]) -> Result<(), String> {
    let _ = optline_config::parse_programs(&String::from_utf8_lossy(data));
    Ok(())
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let texts: Vec<String> = match target {
        "hl7" => vec![
            fixtures::SIU_S12.to_owned(),
            fixtures::SIU_S13.to_owned(),
            fixtures::SIU_S14.to_owned(),
            fixtures::SIU_S15.to_owned(),
            fixtures::SIU_S26.to_owned(),
            "20261210100000-0500".to_owned(),
        ],
        "fhir" | "normalized" => vec![
            fixtures::FHIR_APPOINTMENT.to_owned(),
            fixtures::FHIR_NOTIFICATION_R5.to_owned(),
            fixtures::FHIR_NOTIFICATION_BACKPORT.to_owned(),
            fixtures::FHIR_HANDSHAKE_BACKPORT.to_owned(),
            r#"{"source":"epic","event_id":"e-1","kind":"booked","patient":"pat-1","appointment_id":"a-1","start":"2026-12-10T10:00:00-05:00","version":"3"}"#.to_owned(),
        ],
        "two-way-sns" => vec![
            r#"{"originationNumber":"+15555550111","destinationNumber":"+15555550100","messageKeyword":"KEYWORD_123","messageBody":"STOP","inboundMessageId":"f3c1","previousPublishedMessageId":"9a2b"}"#.to_owned(),
            r#"{"originationNumber":"+15555550111","destinationNumber":"+15555550100","messageBody":"Yes please confirm","inboundMessageId":"f3c2"}"#.to_owned(),
        ],
        "twilio-form" => vec![
            "ToCountry=US&ToState=CA&SmsMessageSid=SM1&NumMedia=0&ToCity=&FromZip=&SmsSid=SM1&FromState=CA&SmsStatus=received&FromCity=&Body=STOP&FromCountry=US&To=%2B15555550100&MessagingServiceSid=MG1&ToZip=&NumSegments=1&MessageSid=SM1&AccountSid=AC1&From=%2B15555550111&ApiVersion=2010-04-01".to_owned(),
            "MessageStatus=undelivered&ErrorCode=30007&MessageSid=SM2&AccountSid=AC1&SignatureSettings=k1%3Bhmac-sha256".to_owned(),
        ],
        "template" => vec![
            "Riverside Clinic: your visit is {{date}} at {{time}}. Reply C to confirm, R to reschedule. STOP to opt out.\u{1}Tue Dec 8".to_owned(),
            "{{date}}{{time}}{{}}{{unknown}}{{date\u{1}{{time}}".to_owned(),
        ],
        "classify" => vec![
            "Stop texting me please".to_owned(),
            "ＳＴＯＰ".to_owned(),
            "s t o p".to_owned(),
            "请退订".to_owned(),
            "No más mensajes por favor".to_owned(),
            "yes 👍".to_owned(),
        ],
        "programs" => vec![r#"[{"id":"clinic","name":"Riverside Clinic","support_contact":"555-0100","time_zone":"America/Chicago","messages_per_second":20,"audience":{"regions":["US-TX"]}}]"#.to_owned()],
        _ => Vec::new(),
    };
    texts.into_iter().map(String::into_bytes).collect()
}

/// Bytes that mean something to the parsers: separators, escapes,
/// boundaries, look-alikes.
const TOKENS: &[&str] = &[
    "|",
    "^",
    "~",
    "\\",
    "&",
    "\r",
    "\n",
    "MSH|^~\\&|",
    "SCH|",
    "PID|",
    "AIS|",
    "{",
    "}",
    "[",
    "]",
    "\"",
    ":",
    ",",
    "null",
    "true",
    "-1",
    "0",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1e309",
    "99991231235959",
    "+9999",
    "-0000",
    "{{",
    "}}",
    "%",
    "%00",
    "%F0%9F",
    "+",
    "=",
    "&Body=",
    "\u{200b}",
    "\u{feff}",
    "\u{0301}",
    "ſ",
    "İ",
    "ⓢ",
    "🛑",
    "\u{0}",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*: fast, reproducible from --seed.
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            usize::try_from(self.next() % n as u64).unwrap_or(0)
        }
    }
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..=rng.below(8) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] ^= 1 << rng.below(8);
            }
            1 => {
                let at = rng.below(len + 1);
                let byte = u8::try_from(rng.below(256)).unwrap_or(0);
                input.insert(at, byte);
            }
            2 => {
                let at = rng.below(len + 1);
                let token = TOKENS[rng.below(TOKENS.len())].as_bytes();
                input.splice(at..at, token.iter().copied());
            }
            3 if len > 0 => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(16)).min(len);
                input.drain(from..to);
            }
            4 if len > 0 && len < 64 * 1024 => {
                let from = rng.below(len);
                let to = (from + 1 + rng.below(64)).min(len);
                let piece: Vec<u8> = input[from..to].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, piece);
            }
            5 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                if !other.is_empty() {
                    let from = rng.below(other.len());
                    let to = (from + 1 + rng.below(128)).min(other.len());
                    let at = rng.below(len + 1);
                    input.splice(at..at, other[from..to].iter().copied());
                }
            }
            _ if len > 0 => {
                // A run of digits turned into a boundary number.
                let at = rng.below(len);
                if input[at].is_ascii_digit() {
                    let end = input[at..]
                        .iter()
                        .position(|b| !b.is_ascii_digit())
                        .map_or(len, |p| at + p);
                    let boundary = ["0", "-1", "4294967296", "99999999999999999999"];
                    input.splice(at..end, boundary[rng.below(boundary.len())].bytes());
                }
            }
            _ => {}
        }
    }
    input.truncate(256 * 1024);
}

/// One run of one target: `Err` with the crash file on a finding.
fn run(
    name: &str,
    target: Target,
    budget: Duration,
    iterations: u64,
    seed: u64,
) -> Result<(u64, Duration), PathBuf> {
    let corpus = seeds(name);
    let mut rng = Rng(seed.max(1));
    let started = Instant::now();
    let mut done = 0u64;
    while done < iterations && started.elapsed() < budget {
        let mut input = corpus[rng.below(corpus.len())].clone();
        mutate(&mut rng, &mut input, &corpus);
        let outcome = catch_unwind(AssertUnwindSafe(|| target(&input)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(broken)) => return Err(save(name, &input, &broken)),
            Err(_) => return Err(save(name, &input, "panic")),
        }
        done += 1;
    }
    Ok((done, started.elapsed()))
}

fn save(name: &str, input: &[u8], why: &str) -> PathBuf {
    use sha2::Digest;
    let hash = hex::encode(sha2::Sha256::digest(input));
    let dir = Path::new("fuzz-crashes");
    let path = dir.join(format!("{name}-{}.bin", hash.get(..12).unwrap_or(&hash)));
    let _ = std::fs::create_dir_all(dir);
    let _ = std::fs::write(&path, input);
    println!("{name}: {why}: input saved to {}", path.display());
    path
}

fn usage() -> std::process::ExitCode {
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    println!(
        "usage: fuzz <all|{}> [--minutes M] [--iterations N] [--seed S] [--replay FILE]",
        names.join("|")
    );
    std::process::ExitCode::from(2)
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(which) = args.first() else {
        return usage();
    };
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let minutes: f64 = flag("--minutes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    let iterations: u64 = flag("--iterations")
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let seed: u64 = flag("--seed").and_then(|v| v.parse().ok()).unwrap_or(1);
    let chosen: Vec<(&str, Target)> = TARGETS
        .iter()
        .filter(|(n, _)| which == "all" || which == n)
        .copied()
        .collect();
    if chosen.is_empty() {
        return usage();
    }
    if let Some(file) = flag("--replay") {
        let Ok(input) = std::fs::read(file) else {
            println!("cannot read {file}");
            return std::process::ExitCode::from(2);
        };
        for (name, target) in &chosen {
            // Let the panic print its message and location.
            match target(&input) {
                Ok(()) => println!("{name}: no finding"),
                Err(broken) => println!("{name}: {broken}"),
            }
        }
        return std::process::ExitCode::SUCCESS;
    }
    // Panics are findings, reported with their input; keep stderr quiet.
    std::panic::set_hook(Box::new(|_| {}));
    let per_target = Duration::from_secs_f64(minutes * 60.0 / chosen.len() as f64);
    println!("| target | iterations | seconds | per second | findings |");
    println!("|---|---:|---:|---:|---:|");
    let mut found = false;
    for (name, target) in chosen {
        match run(name, target, per_target, iterations, seed) {
            Ok((done, took)) => println!(
                "| {name} | {done} | {:.1} | {:.0} | 0 |",
                took.as_secs_f64(),
                done as f64 / took.as_secs_f64().max(1e-9)
            ),
            Err(_) => {
                found = true;
                println!("| {name} | | | | 1 |");
            }
        }
    }
    if found {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}
