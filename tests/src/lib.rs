//! # optline-tests
//!
//! Drives the real handlers with the real AWS SDK clients against the local
//! emulator started by `infra/local-stack.py`. Each [`Harness`] gets its own
//! CloudFormation stack in the emulator (a fresh table, queue and DLQ built
//! from `infra/template.yaml`), so tests run in parallel without sharing
//! state.
//!
//! The library also holds the end-to-end [`scenario`] that the README's main
//! command (`optline-demo`) prints and that a test asserts.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "test support: a failed setup should stop the test loudly"
)]

pub mod calls;
pub mod console_server;
pub mod faults;
pub mod fhir_standin;
pub mod fixtures;
pub mod iam;
pub mod scenario;
pub mod simulate;
pub mod state;
pub mod twilio_standin;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use optline_policy::template::review::{ReviewPolicy, Role};

use aws_config::{BehaviorVersion, Region};
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use lambda_http::{Body, Request};
use optline_aws::{DynamoStore, ProgramSenders, SqsStepQueue};
use optline_config::{Config, ProgramConfig, SenderKind, TwilioConfig};
use serde::Deserialize;
use sha1::Sha1;

/// The embedded lint lists, as the functions load them.
pub fn lint() -> Arc<optline_policy::template::lint::LintConfig> {
    Arc::new(
        optline_policy::template::lint::LintConfig::embedded()
            .expect("lint table")
            .clone(),
    )
}

/// The Twilio auth token the harness configures (webhook signatures).
pub const TWILIO_AUTH_TOKEN: &str = "local-twilio-auth-token";
/// The id of the test deployment's Twilio Webhooks SharedKey.
pub const TWILIO_SHARED_KEY_ID: &str = "webhooks_sharedkey_test";
/// Its secret.
pub const TWILIO_SHARED_KEY: &str = "local-twilio-shared-key-secret";
/// The public base URL the inbound function believes it is served at.
pub const PUBLIC_BASE_URL: &str = "https://optline.example.test";

/// The repository root. Read when the test runs (cargo sets
/// `CARGO_MANIFEST_DIR` for it), not when it was compiled: a build reused
/// from a clone at another path must not point back there.
pub fn repo_root() -> PathBuf {
    let manifest = std::env::var("CARGO_MANIFEST_DIR")
        .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    Path::new(&manifest)
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

#[derive(Debug, Deserialize)]
struct ServerState {
    endpoint: String,
}

/// Starts the local stack if it is not running, and returns its endpoint.
pub fn local_endpoint() -> String {
    let root = repo_root();
    let status = Command::new("python3")
        .arg(root.join("infra/local-stack.py"))
        .arg("start")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("python3 runs infra/local-stack.py");
    assert!(status.success(), "infra/local-stack.py start failed");
    let state = std::fs::read_to_string(root.join(".local/server.json"))
        .expect(".local/server.json exists after start");
    let state: ServerState = serde_json::from_str(&state).expect("server.json parses");
    state.endpoint
}

/// The physical resources of one stack.
#[derive(Debug, Clone, Deserialize)]
pub struct StackResources {
    /// The table.
    #[serde(rename = "TABLE_NAME")]
    pub table_name: String,
    /// The dispatch queue.
    #[serde(rename = "QUEUE_URL")]
    pub queue_url: String,
    /// Its dead-letter queue.
    #[serde(rename = "DLQ_URL")]
    pub dlq_url: String,
    /// The outcome event bus.
    #[serde(rename = "OUTCOME_BUS_NAME")]
    pub outcome_bus: String,
    /// The table's stream (the outbox drain's trigger).
    #[serde(rename = "TABLE_STREAM_ARN")]
    pub table_stream: String,
    /// The audit chain key's secret.
    #[serde(rename = "AUDIT_KEY_SECRET_ARN")]
    pub audit_key_secret: String,
    /// Twilio's credentials' secret.
    #[serde(rename = "TWILIO_SECRET_ARN")]
    pub twilio_secret: String,
    /// The EHR sources' secret.
    #[serde(rename = "EHR_SOURCES_SECRET_ARN")]
    pub ehr_sources_secret: String,
    /// The KMS key that signs anchors and proof bundles.
    #[serde(rename = "AUDIT_SIGNING_KEY_ID")]
    pub signing_key: String,
    /// The anchor bucket (Object Lock).
    #[serde(rename = "ANCHOR_BUCKET")]
    pub anchor_bucket: String,
    /// The Cognito user pool people sign in to.
    #[serde(rename = "USER_POOL_ID")]
    pub user_pool_id: String,
    /// Its app client.
    #[serde(rename = "USER_POOL_CLIENT_ID")]
    pub user_pool_client_id: String,
}

/// Creates an isolated stack named `name` (made unique) from the template.
pub fn fresh_stack(name: &str) -> StackResources {
    fresh_stack_in(name, None)
}

/// [`fresh_stack`] in the emulator at `endpoint` (the shared one if `None`).
pub fn fresh_stack_in(name: &str, endpoint: Option<&str>) -> StackResources {
    let unique = format!(
        "{}-{}",
        name.replace('_', "-"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let mut command = Command::new("python3");
    command
        .arg(repo_root().join("infra/local-stack.py"))
        .arg("stack")
        .arg(&unique);
    if let Some(endpoint) = endpoint {
        command.env("OPTLINE_EMULATOR_ENDPOINT", endpoint);
    }
    let out = command
        .output()
        .expect("python3 runs infra/local-stack.py stack");
    assert!(
        out.status.success(),
        "stack creation failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stack outputs parse")
}

/// SDK configuration pointing at the emulator with dummy credentials, and
/// short timeouts so that an emulator outage fails calls instead of hanging
/// them (as Lambda's own timeout would end them in the cloud).
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    sdk_config_with(endpoint, std::time::Duration::from_secs(5)).await
}

/// [`sdk_config`] with each attempt limited to `attempt` (and the whole
/// operation, retries included, to three times that).
pub async fn sdk_config_with(
    endpoint: &str,
    attempt: std::time::Duration,
) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        // The SDK's standard retries, with short pauses: a call failed on
        // purpose is retried as in production, without seconds of waiting.
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_initial_backoff(std::time::Duration::from_millis(20)),
        )
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(attempt)
                .operation_attempt_timeout(attempt)
                .operation_timeout(attempt * 3)
                .build(),
        )
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .http_client(optline_config::http_client())
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "local",
            "local",
            None,
            None,
            "optline-tests",
        ))
        .load()
        .await
}

/// Everything a test needs: clients, resources and each function's deps.
#[derive(Clone)]
pub struct Harness {
    /// Emulator endpoint.
    pub endpoint: String,
    /// The stack's resources.
    pub resources: StackResources,
    /// Configuration as the functions see it.
    pub config: Arc<Config>,
    /// DynamoDB client.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SQS client.
    pub sqs: aws_sdk_sqs::Client,
    /// SNS client.
    pub sns: aws_sdk_sns::Client,
    /// EventBridge.
    pub events: aws_sdk_eventbridge::Client,
    /// KMS.
    pub kms: aws_sdk_kms::Client,
    /// S3 (path-style).
    pub s3: aws_sdk_s3::Client,
    /// Secrets Manager.
    pub secrets: aws_sdk_secretsmanager::Client,
    /// The table adapter.
    pub store: Arc<DynamoStore>,
    /// AWS calls made through this harness's clients, by operation.
    pub calls: calls::CallCounter,
    /// The emulator's SDK configuration, for the clients of each role.
    shared: aws_config::SdkConfig,
    /// How far each shard of the table's stream has been read.
    stream_read: Arc<std::sync::Mutex<std::collections::HashMap<String, String>>>,
    /// Faults injected into the functions' calls, when a test arms them.
    faults: Option<faults::FaultPlan>,
    /// The audit chain key, read from the stack's secret.
    pub audit_key: Option<optline_ports::AuditKey>,
    /// Verifies people against the stack's user pool, as the functions do.
    pub people: Arc<optline_api::Verifier>,
    /// Each local user's ID token, signed in once per harness.
    tokens: Arc<std::collections::HashMap<String, String>>,
    /// What seeding the template library did, and who approved what.
    pub seeding: Arc<Vec<String>>,
}

/// The clients of one function: each call is counted and checked against
/// the function's role in the template ([`iam::Role`]).
#[derive(Debug, Clone)]
pub struct RoleClients {
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// SNS.
    pub sns: aws_sdk_sns::Client,
    /// EventBridge.
    pub events: aws_sdk_eventbridge::Client,
    /// KMS.
    pub kms: aws_sdk_kms::Client,
    /// S3.
    pub s3: aws_sdk_s3::Client,
    /// Secrets Manager.
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl std::fmt::Debug for Harness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Harness")
            .field("resources", &self.resources)
            .finish()
    }
}

/// The program the harness configures.
pub fn test_program() -> ProgramConfig {
    ProgramConfig {
        id: "clinic".to_owned(),
        name: "Riverside Clinic".to_owned(),
        support_contact: "555-0100".to_owned(),
        frequency: "Up to 3 msgs per appointment".to_owned(),
        sender: SenderKind::Sns,
        origination_number: None,
        messaging_service_sid: None,
        from_number: Some("+15005550006".to_owned()),
        messages_per_second: 50,
        reminder_lead_hours: 72,
        follow_up_lead_hours: 24,
        audience: optline_policy::audience::AudienceRules::default(),
        time_zone: None,
        no_show_baseline_percent: Some(18),
        daily_cap: None,
        numbers: Vec::new(),
    }
}

/// An emulator of a test's own, which the test may pause (SIGSTOP: every
/// call to it hangs, then times out) and resume (SIGCONT: it answers again
/// with its data intact), to stage an outage in the middle of a batch
/// without disturbing the tests that share the main emulator.
#[derive(Debug)]
pub struct PrivateEmulator {
    child: std::process::Child,
    /// Its endpoint.
    pub endpoint: String,
}

impl PrivateEmulator {
    /// Starts moto on a free loopback port (the venv the local stack made).
    pub fn start() -> Self {
        local_endpoint(); // makes sure the venv exists
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(repo_root().join(".venv/bin/python"))
            .arg(repo_root().join("infra/moto_serve.py"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Self { child, endpoint }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Freezes the emulator: calls hang until they time out.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets it answer again.
    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for PrivateEmulator {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test deployment's one signed EHR source and its secret.
pub const EHR_SOURCE: &str = "test-ehr";
/// Its HMAC secret.
pub const EHR_SECRET: &str = "test-ehr-hmac-secret";

/// The subject of an episode the test EHR source names: `prefix` `appt`,
/// `doc`, `results`, `bill` or `referral`, the patient and the source's id.
pub fn ehr_subject(prefix: &str, patient: &str, id: &str) -> String {
    optline_episodes::subject_of(
        prefix,
        EHR_SOURCE,
        &optline_ports::ContactId::parse(patient).expect("patient id"),
        id,
    )
}

/// A step the test EHR source's events plan: `which` is `reminder` or
/// `followup`.
pub fn ehr_step(prefix: &str, patient: &str, id: &str, which: &str) -> optline_ports::StepId {
    optline_ports::StepId::parse(&format!("{}-{which}", ehr_subject(prefix, patient, id)))
        .expect("step id")
}

/// A step events sent with the API's authentication (no configured
/// source) plan.
pub fn api_step(prefix: &str, patient: &str, id: &str, which: &str) -> optline_ports::StepId {
    let subject = optline_episodes::subject_of(
        prefix,
        optline_episodes::API_ORIGIN,
        &optline_ports::ContactId::parse(patient).expect("patient id"),
        id,
    );
    optline_ports::StepId::parse(&format!("{subject}-{which}")).expect("step id")
}

/// When the harness loads the seed template library.
pub const SEEDED_AT: &str = "2026-01-01T00:00:00Z";

/// Loads the seed library as `olu.ops` (operations) would, then has the
/// people each tier names approve what waits for them (`ana.compliance`,
/// `lee.legal`, `kim.clinical`, `olu.ops`) and `olu.ops` publish it: each
/// actor from their own verified token.
pub async fn seed_and_review(
    store: &dyn optline_ports::Store,
    people: &optline_api::Verifier,
    tokens: &std::collections::HashMap<String, String>,
    at: chrono::DateTime<chrono::Utc>,
) -> Vec<String> {
    use optline_policy::template::review::{Action, VersionState};
    let mut story = Vec::new();
    let actor = |user: &str| {
        let token = tokens.get(user).expect("a local user").clone();
        async move {
            let person = people.verify(&token).await.expect("local token verifies");
            optline_templates::actor_of(&person)
        }
    };
    let lint = optline_policy::template::lint::LintConfig::embedded().expect("lint table");
    let library = optline_library::Library::new(store, ReviewPolicy::default(), lint);
    let ops = actor("olu.ops").await;
    let loaded = library
        .seed(&ops, at)
        .await
        .expect("seed the template library");
    for seeded in &loaded {
        story.push(if seeded.state == "published" {
            format!(
                "{}: low risk, approved (operations) and published by {}",
                seeded.reference, ops.name
            )
        } else {
            format!(
                "{}: in review, waiting for {}",
                seeded.reference,
                seeded.missing_roles.join(", ")
            )
        });
    }
    for seeded in loaded.iter().filter(|v| v.state == "in_review") {
        let mut by = Vec::new();
        let (id, version) = seeded.reference.split_once('@').expect("id@version");
        let version: u32 = version.parse().expect("a version number");
        for role in &seeded.missing_roles {
            let role: Role =
                serde_json::from_value(serde_json::Value::from(role.as_str())).expect("a role");
            let reviewer = actor(reviewer_for(role)).await;
            library
                .act(id, version, &Action::Approve { role }, &reviewer, at)
                .await
                .expect("a named reviewer approves");
            by.push(format!("{} ({})", reviewer.name, role.as_str()));
        }
        let view = library
            .act(id, version, &Action::Publish, &ops, at)
            .await
            .expect("operations publishes");
        assert_eq!(view.stored.lifecycle.state, VersionState::Published);
        story.push(format!(
            "{}: approved by {}; published by {}",
            seeded.reference,
            by.join(", "),
            ops.name
        ));
    }
    story
}

/// The local person who approves in `role` in tests and the demo.
pub fn reviewer_for(role: Role) -> &'static str {
    match role {
        Role::Compliance => "ana.compliance",
        Role::Legal => "lee.legal",
        Role::Clinical => "kim.clinical",
        Role::Operations => "olu.ops",
    }
}

/// The person the harness's plain requests come from: `rae.desk`, a
/// front-desk lead in the staff and operations groups.
pub const DEFAULT_USER: &str = "rae.desk";

/// One person of `infra/local-users.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct LocalUser {
    /// Sign-in name.
    pub username: String,
    /// Display name.
    pub name: String,
    /// Their groups.
    pub groups: Vec<String>,
}

/// The local people and their (local-only) password.
#[derive(Debug, Clone, Deserialize)]
pub struct LocalUsers {
    /// The password every local user has.
    pub password: String,
    /// Who.
    pub users: Vec<LocalUser>,
}

/// Reads `infra/local-users.json`, the people the local stack creates.
pub fn local_users() -> LocalUsers {
    let path = repo_root().join("infra/local-users.json");
    let text = std::fs::read_to_string(&path).expect("infra/local-users.json");
    serde_json::from_str(&text).expect("local users parse")
}

/// Signs `username` in to the emulator's user pool with a password
/// (Cognito's `InitiateAuth`, `USER_PASSWORD_AUTH`, which the local app
/// client allows) and returns the ID token Cognito issued.
pub async fn sign_in(
    endpoint: &str,
    client_id: &str,
    username: &str,
    password: &str,
) -> Result<String, String> {
    let response = reqwest::Client::new()
        .post(endpoint)
        .header(
            "x-amz-target",
            "AWSCognitoIdentityProviderService.InitiateAuth",
        )
        .header("content-type", "application/x-amz-json-1.1")
        .body(
            serde_json::json!({
                "AuthFlow": "USER_PASSWORD_AUTH",
                "ClientId": client_id,
                "AuthParameters": {"USERNAME": username, "PASSWORD": password},
            })
            .to_string(),
        )
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let text = response.text().await.map_err(|e| e.to_string())?;
    let body: serde_json::Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    body["AuthenticationResult"]["IdToken"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("sign-in refused ({status}): {}", body["message"]))
}

impl Harness {
    /// A harness on a fresh stack.
    pub async fn new(name: &str) -> Self {
        Self::new_in(name, None).await
    }

    /// A harness on a fresh stack in the emulator at `endpoint` (a private
    /// one, see [`PrivateEmulator`]), or the shared one.
    pub async fn new_in(name: &str, endpoint: Option<&str>) -> Self {
        // A private emulator is one a test will pause: fail its calls fast.
        let attempt = std::time::Duration::from_millis(if endpoint.is_some() { 700 } else { 5000 });
        Self::new_with(name, endpoint, attempt).await
    }

    /// A harness on a fresh stack in the emulator at `endpoint` (the shared
    /// one if `None`), each call attempt limited to `attempt`.
    pub async fn new_with(
        name: &str,
        endpoint: Option<&str>,
        attempt: std::time::Duration,
    ) -> Self {
        let endpoint = match endpoint {
            Some(e) => e.to_owned(),
            None => local_endpoint(),
        };
        let resources = fresh_stack_in(name, Some(&endpoint));
        let shared = sdk_config_with(&endpoint, attempt).await;
        let calls = calls::CallCounter::default();
        let dynamodb = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&shared)
                .interceptor(calls.clone())
                .build(),
        );
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(&shared)
                .interceptor(calls.clone())
                .build(),
        );
        let sns = aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(&shared)
                .interceptor(calls.clone())
                .build(),
        );
        let events = aws_sdk_eventbridge::Client::from_conf(
            aws_sdk_eventbridge::config::Builder::from(&shared)
                .interceptor(calls.clone())
                .build(),
        );
        let program = test_program();
        let config = Config {
            table_name: resources.table_name.clone(),
            queue_url: Some(resources.queue_url.clone()),
            programs: [(program.id.clone(), program)].into_iter().collect(),
            default_program: "clinic".to_owned(),
            twilio: Some(TwilioConfig {
                account_sid: "AC00000000000000000000000000000000".to_owned(),
                auth_token: TWILIO_AUTH_TOKEN.to_owned(),
                api_base: "http://127.0.0.1:9".to_owned(),
                status_callback: None,
                webhook_keys: std::collections::BTreeMap::from([(
                    TWILIO_SHARED_KEY_ID.to_owned(),
                    TWILIO_SHARED_KEY.to_owned(),
                )]),
            }),
            public_base_url: Some(PUBLIC_BASE_URL.to_owned()),
            approval_valid_days: 365,
            template_lint: None,
            retention_days: None,
        };
        // The audit key, read from its secret as the functions read it.
        let secrets = aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(&shared)
                .interceptor(calls.clone())
                .build(),
        );
        let audit_key = optline_aws::load_audit_key(&secrets, &resources.audit_key_secret)
            .await
            .expect("the stack's audit key");
        let store = Arc::new(
            DynamoStore::new(dynamodb.clone(), resources.table_name.clone())
                .with_audit_key(Some(audit_key.clone())),
        );
        // People: every local user signs in to the stack's own pool.
        let people = Arc::new(
            optline_api::Verifier::fetch(optline_identity::PoolConfig::new(
                "us-east-1",
                &resources.user_pool_id,
                vec![resources.user_pool_client_id.clone()],
                Some(&endpoint),
            ))
            .await
            .expect("the pool's keys"),
        );
        let users = local_users();
        let mut tokens = std::collections::HashMap::new();
        for user in &users.users {
            let token = sign_in(
                &endpoint,
                &resources.user_pool_client_id,
                &user.username,
                &users.password,
            )
            .await
            .expect("local user signs in");
            tokens.insert(user.username.clone(), token);
        }
        // Every deployment starts from the seed library. Tests run at fixed
        // instants in 2026, so it is seeded at the year's start (approvals
        // count for 365 days from then), by named people: an operations
        // person loads it, and the reviewers each tier names approve.
        let seeding = seed_and_review(
            store.as_ref(),
            &people,
            &tokens,
            SEEDED_AT.parse().expect("seed instant"),
        )
        .await;
        Self {
            endpoint,
            resources,
            config: Arc::new(config),
            dynamodb,
            sqs,
            sns,
            events,
            kms: aws_sdk_kms::Client::from_conf(
                aws_sdk_kms::config::Builder::from(&shared)
                    .interceptor(calls.clone())
                    .build(),
            ),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&shared)
                    .force_path_style(true)
                    .interceptor(calls.clone())
                    .build(),
            ),
            secrets,
            store,
            calls,
            shared,
            people,
            tokens: Arc::new(tokens),
            seeding: Arc::new(seeding),
            stream_read: Arc::default(),
            faults: None,
            audit_key: Some(audit_key),
        }
    }

    /// The same stack, with `plan` intercepting every call the functions
    /// make through their clients ([`faults`]).
    pub fn with_faults(&self, plan: &faults::FaultPlan) -> Self {
        let mut clone = self.clone();
        clone.faults = Some(plan.clone());
        clone
    }

    /// The clients of `function` (its logical id in `infra/template.yaml`):
    /// a call its role does not allow fails the test.
    pub fn clients_as(&self, function: &'static str) -> RoleClients {
        let role = iam::Role::of(function);
        let faults = self.faults.clone();
        macro_rules! client {
            ($sdk:ident) => {{
                let mut builder = $sdk::config::Builder::from(&self.shared)
                    .interceptor(self.calls.clone())
                    .interceptor(role.clone());
                if let Some(plan) = &faults {
                    builder = builder.interceptor(plan.clone());
                }
                $sdk::Client::from_conf(builder.build())
            }};
        }
        let s3 = {
            let mut builder = aws_sdk_s3::config::Builder::from(&self.shared)
                .force_path_style(true)
                .interceptor(self.calls.clone())
                .interceptor(role.clone());
            if let Some(plan) = &faults {
                builder = builder.interceptor(plan.clone());
            }
            aws_sdk_s3::Client::from_conf(builder.build())
        };
        RoleClients {
            dynamodb: client!(aws_sdk_dynamodb),
            sqs: client!(aws_sdk_sqs),
            sns: client!(aws_sdk_sns),
            events: client!(aws_sdk_eventbridge),
            kms: client!(aws_sdk_kms),
            s3,
            secrets: client!(aws_sdk_secretsmanager),
        }
    }

    /// The table as `function` sees it: through its role, with the
    /// configured retention (as the functions' `main` builds it).
    pub fn store_as(&self, function: &'static str) -> Arc<DynamoStore> {
        Arc::new(
            DynamoStore::new(
                self.clients_as(function).dynamodb,
                self.resources.table_name.clone(),
            )
            .with_retention(self.config.retention_days)
            .expect("the configured retention is allowed")
            .with_audit_key(self.audit_key.clone()),
        )
    }

    /// The same stack, with the program sending through Twilio's API at
    /// `api_base` (the local stand-in) instead of SNS.
    pub fn with_twilio(&self, api_base: &str) -> Self {
        let mut config = (*self.config).clone();
        if let Some(twilio) = config.twilio.as_mut() {
            twilio.api_base = api_base.to_owned();
            twilio.status_callback = Some(format!("{PUBLIC_BASE_URL}/twilio/status"));
        }
        for program in config.programs.values_mut() {
            program.sender = SenderKind::Twilio;
            program.messaging_service_sid = Some("MG00000000000000000000000000000000".to_owned());
        }
        let mut clone = self.clone();
        clone.config = Arc::new(config);
        clone
    }

    /// Seeds a contact with an `appointments` grant and one step due at
    /// `due`, already queued (as the sweep leaves it), straight through the
    /// store (fast setup for dispatch tests).
    pub async fn seed_step(
        &self,
        contact: &str,
        phone: &str,
        step: &str,
        due: chrono::DateTime<chrono::Utc>,
    ) -> optline_ports::StepId {
        self.seed_step_in(contact, phone, step, due, optline_ports::StepStatus::Queued)
            .await
    }

    /// [`Harness::seed_step`] with the step in `status` (pending puts it in
    /// the sweep's due index).
    pub async fn seed_step_in(
        &self,
        contact: &str,
        phone: &str,
        step: &str,
        due: chrono::DateTime<chrono::Utc>,
        status: optline_ports::StepStatus,
    ) -> optline_ports::StepId {
        use optline_policy::consent::{ConsentAction, ConsentKind, ConsentScope};
        use optline_ports::{ConsentLedger, ContactDirectory, StepStore};
        let contact_id = optline_ports::ContactId::parse(contact).expect("contact id");
        let phone = optline_policy::phone::E164::parse(phone).expect("phone");
        let record = optline_ports::Contact {
            id: contact_id.clone(),
            phone: phone.clone(),
            program: "clinic".to_owned(),
            time_zone: Some("America/New_York".to_owned()),
            address_state: None,
            minor: false,
            date_of_birth: None,
            phone_provenance: None,
            language: None,
            identifiers: Vec::new(),
            created_at: due - chrono::Duration::days(30),
        };
        match self.store.create_contact(&record).await {
            Ok(()) => {
                let event = optline_ports::ConsentEvent {
                    id: optline_ports::EventId::parse(&format!("grant-{contact}")).expect("id"),
                    contact_id: Some(contact_id.clone()),
                    phone,
                    action: ConsentAction::Grant,
                    scope: ConsentScope::Contact,
                    program: Some("clinic".to_owned()),
                    categories: vec!["appointments".to_owned()],
                    kind: ConsentKind::Express,
                    at: due - chrono::Duration::days(30),
                    recorded_at: due - chrono::Duration::days(30),
                    channel: optline_ports::CaptureChannel::WebForm,
                    actor: "seed".to_owned(),
                    source_system: None,
                    source_record_id: None,
                    disclosure_sha256: None,
                    disclosure_version: None,
                    evidence: optline_ports::Evidence::default(),
                    reverses: None,
                    guardian: false,
                    expires_at: None,
                };
                self.store
                    .append_consent(&event, None)
                    .await
                    .expect("grant");
            }
            Err(optline_ports::PortError::Conflict(_)) => {}
            Err(e) => panic!("seed contact: {e}"),
        }
        let id = optline_ports::StepId::parse(step).expect("step id");
        let planned = optline_ports::Step {
            id: id.clone(),
            contact_id,
            program: "clinic".to_owned(),
            category: "appointments".to_owned(),
            class: optline_policy::MessageClass::Transactional,
            purpose: "appointment_reminder".to_owned(),
            template_id: "appointment_reminder".to_owned(),
            template_version: 1,
            variables: [
                ("date".to_owned(), "Thu Dec 10".to_owned()),
                ("time".to_owned(), "10:00 AM".to_owned()),
            ]
            .into_iter()
            .collect(),
            subject: format!("subject-{step}"),
            due_at: due,
            expires_at: Some(due + chrono::Duration::days(3)),
            urgency: optline_policy::decision::Urgency::TimeSensitive,
            healthcare_exempt: false,
            status,
            source_event: None,
            source_version: None,
            arm: None,
            segments: None,
            audience: optline_ports::Audience::Everyone,
        };
        self.store.put_step(&planned).await.expect("put step");
        id
    }

    /// Records an episode outcome straight through the store, as a reply
    /// or an EHR event would (test setup).
    pub async fn record_outcome(&self, outcome: optline_ports::EpisodeOutcome) {
        use optline_ports::Committer;
        let mut commit = optline_ports::Commit::default();
        commit.push(optline_ports::Write::Outcome(outcome));
        let done = self.store.commit(commit).await.expect("record outcome");
        assert!(
            matches!(done, optline_ports::Committed::Done(_)),
            "{done:?}"
        );
    }

    /// The ID token `user` (of `infra/local-users.json`) signed in with.
    pub fn token(&self, user: &str) -> &str {
        self.tokens
            .get(user)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{user} is not a local user"))
    }

    /// The review actor `user` is, from their verified token.
    pub async fn actor(&self, user: &str) -> optline_policy::template::review::Actor {
        let person = self
            .people
            .verify(self.token(user))
            .await
            .expect("a local user's token verifies");
        optline_templates::actor_of(&person)
    }

    /// A JSON API request from [`DEFAULT_USER`].
    pub fn api_request(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Request {
        self.request_as(DEFAULT_USER, method, path, body)
    }

    /// A JSON API request from `user`, with their ID token.
    pub fn request_as(
        &self,
        user: &str,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Request {
        bearer_request(self.token(user), method, path, body)
    }

    /// A FHIR resource posted by [`DEFAULT_USER`] (no EHR source named).
    pub fn fhir_request(&self, path: &str, resource: &serde_json::Value) -> Request {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri(path)
            .header(
                "authorization",
                format!("Bearer {}", self.token(DEFAULT_USER)),
            )
            .header("content-type", "application/fhir+json")
            .body(Body::from(resource.to_string()))
            .expect("request builds")
    }

    /// The console's deps: the password sign-in against the stack's pool.
    pub fn console(&self) -> optline_console::Deps {
        optline_console::Deps {
            store: self.store_as("ConsoleFunction"),
            people: self.people.clone(),
            sign_in: optline_console::SignIn::Password {
                endpoint: self.endpoint.clone(),
                client_id: self.resources.user_pool_client_id.clone(),
            },
            policy: ReviewPolicy::default(),
            lint: optline_policy::template::lint::LintConfig::embedded()
                .expect("lint table")
                .clone(),
            default_program: self.config.default_program.clone(),
            no_show_baselines: self
                .config
                .programs
                .values()
                .filter_map(|p| {
                    Some((p.id.clone(), f64::from(p.no_show_baseline_percent?) / 100.0))
                })
                .collect(),
        }
    }

    /// The consent API's deps.
    pub fn consent_api(&self) -> optline_consent_api::Deps {
        optline_consent_api::Deps {
            store: self.store_as("ConsentApiFunction"),
            people: self.people.clone(),
            default_program: self.config.default_program.clone(),
        }
    }

    /// The EHR events function's deps.
    pub fn ehr_events(&self) -> optline_ehr_events::Deps {
        let role = "EhrEventsFunction";
        optline_ehr_events::Deps {
            store: self.store_as(role),
            people: self.people.clone(),
            sources: optline_ehr_events::verify::EhrSources::hmac(EHR_SOURCE, EHR_SECRET, 300),
            config: self.config.clone(),
            lint: lint(),
            templates: Arc::default(),
            fhir: None,
        }
    }

    /// The send slots taken on `sender`'s shared counter, one entry per
    /// wall-clock second it was used (message parts).
    pub async fn pace_used(&self, sender: &str) -> Vec<u64> {
        let pace = self
            .dynamodb
            .query()
            .table_name(&self.resources.table_name)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(
                ":pk",
                aws_sdk_dynamodb::types::AttributeValue::S(format!("PACE#{sender}")),
            )
            .send()
            .await
            .expect("query the pace counters");
        pace.items()
            .iter()
            .filter_map(|i| i.get("used").and_then(|v| v.as_n().ok()))
            .map(|n| n.parse().expect("a count"))
            .collect()
    }

    /// The outbox drain's publisher, on this stack's bus, through its role.
    pub fn outbox_publisher(&self) -> optline_aws::EventBridgePublisher {
        optline_aws::EventBridgePublisher::new(
            self.clients_as("OutboxDrainFunction").events,
            self.resources.outcome_bus.clone(),
        )
    }

    /// The inbound function's deps.
    pub fn inbound(&self) -> optline_inbound::Deps {
        self.inbound_as("InboundFunction")
    }

    /// The inbound function's deps under `function`'s role (the Twilio
    /// webhook's `InboundFunction`, or `InboundTwoWayFunction`).
    pub fn inbound_as(&self, function: &'static str) -> optline_inbound::Deps {
        let clients = self.clients_as(function);
        optline_inbound::Deps {
            store: self.store_as(function),
            config: self.config.clone(),
            sender: Some(Arc::new(
                ProgramSenders::from_config(&self.config, clients.sns).expect("senders build"),
            )),
            lint: lint(),
        }
    }

    /// The sweep's deps.
    pub fn sweep(&self) -> optline_sweep::Deps {
        let role = "SweepFunction";
        optline_sweep::Deps {
            store: self.store_as(role),
            queue: Arc::new(SqsStepQueue::new(
                self.clients_as(role).sqs,
                self.resources.queue_url.clone(),
            )),
            config: self.config.clone(),
        }
    }

    /// Dispatch's deps, sending through SNS in the emulator.
    pub fn dispatch(&self) -> optline_dispatch::Deps {
        let role = "DispatchFunction";
        optline_dispatch::Deps {
            delivery: self.delivery_as(role),
            dead_letters: Some(Arc::new(optline_aws::SqsDeadLetters::new(
                self.clients_as(role).sqs,
                self.resources.dlq_url.clone(),
            ))),
        }
    }

    /// The deps of the sweep's dry run (`GET /sweep/dry-run`), which runs
    /// dispatch's assessment under its own, read-only role.
    pub fn dry_run(&self) -> optline_delivery::Deps {
        self.delivery_as("SweepDryRunFunction")
    }

    /// The delivery context under `role`.
    fn delivery_as(&self, role: &'static str) -> optline_delivery::Deps {
        let clients = self.clients_as(role);
        let store = self.store_as(role);
        optline_delivery::Deps {
            store: store.clone(),
            sender: Arc::new(
                ProgramSenders::from_config(&self.config, clients.sns).expect("senders build"),
            ),
            config: self.config.clone(),
            lint: lint(),
            pacer: store,
            warm: Arc::default(),
        }
    }

    /// The templates API's deps: people verified against the stack's pool.
    pub fn templates(&self) -> optline_templates::Deps {
        optline_templates::Deps {
            store: self.store_as("TemplatesFunction"),
            people: self.people.clone(),
            policy: ReviewPolicy::default(),
            lint: optline_policy::template::lint::LintConfig::embedded()
                .expect("lint table")
                .clone(),
        }
    }

    /// One DynamoDB Streams call to the emulator, as Lambda's event source
    /// mapping makes it (the stream's JSON protocol).
    async fn streams_call(&self, target: &str, body: serde_json::Value) -> serde_json::Value {
        let response = reqwest::Client::new()
            .post(&self.endpoint)
            .header("x-amz-target", format!("DynamoDBStreams_20120810.{target}"))
            .header("content-type", "application/x-amz-json-1.0")
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=local/20261203/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(body.to_string())
            .send()
            .await
            .expect("streams call");
        let status = response.status();
        let text = response.text().await.expect("streams answer");
        assert!(status.is_success(), "{target}: {status} {text}");
        serde_json::from_str(&text).expect("streams answer is JSON")
    }

    /// The table's stream records written since the last call, as the
    /// event Lambda hands the outbox drain (real stream records).
    pub async fn stream_event(&self) -> aws_lambda_events::event::dynamodb::Event {
        let arn = &self.resources.table_stream;
        let described = self
            .streams_call("DescribeStream", serde_json::json!({ "StreamArn": arn }))
            .await;
        let shards: Vec<String> = described["StreamDescription"]["Shards"]
            .as_array()
            .map(|shards| {
                shards
                    .iter()
                    .filter_map(|s| s["ShardId"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut records = Vec::new();
        for shard in shards {
            let after = self.stream_read.lock().expect("lock").get(&shard).cloned();
            let mut request = serde_json::json!({
                "StreamArn": arn,
                "ShardId": shard,
                "ShardIteratorType": "TRIM_HORIZON",
            });
            if let Some(sequence) = &after {
                request["ShardIteratorType"] = "AFTER_SEQUENCE_NUMBER".into();
                request["SequenceNumber"] = sequence.clone().into();
            }
            let iterator = self.streams_call("GetShardIterator", request).await;
            let mut iterator = iterator["ShardIterator"].as_str().map(str::to_owned);
            while let Some(current) = iterator.take() {
                let page = self
                    .streams_call(
                        "GetRecords",
                        serde_json::json!({ "ShardIterator": current, "Limit": 1000 }),
                    )
                    .await;
                let batch = page["Records"].as_array().cloned().unwrap_or_default();
                if batch.is_empty() {
                    break;
                }
                for mut record in batch {
                    if let Some(sequence) = record["dynamodb"]["SequenceNumber"].as_str() {
                        self.stream_read
                            .lock()
                            .expect("lock")
                            .insert(shard.clone(), sequence.to_owned());
                    }
                    record["eventSourceARN"] = arn.clone().into();
                    records.push(record);
                }
                iterator = page["NextShardIterator"].as_str().map(str::to_owned);
            }
        }
        serde_json::from_value(serde_json::json!({ "Records": records }))
            .expect("stream records decode as Lambda's event")
    }

    /// Runs the outbox drain over the stream records written since the
    /// last drain, as the event source mapping would.
    pub async fn drain_outbox(&self) -> aws_lambda_events::event::streams::DynamoDbEventResponse {
        let event = self.stream_event().await;
        optline_outbox_drain::handle(
            event,
            &self.outbox_publisher(),
            self.outbox_rollups().as_ref(),
            Default::default(),
        )
        .await
    }

    /// The outbox drain's rollup counter, through its role.
    pub fn outbox_rollups(&self) -> Arc<DynamoStore> {
        self.store_as("OutboxDrainFunction")
    }

    /// Receives up to `max` messages from the dispatch queue as an SQS event,
    /// the way Lambda's event source mapping would deliver them.
    pub async fn receive_dispatch_batch(&self, max: i32) -> SqsEvent {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.resources.queue_url)
            .max_number_of_messages(max.clamp(1, 10))
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive message");
        let records = out
            .messages()
            .iter()
            .map(|m| {
                let mut record = SqsMessage::default();
                record.message_id = m.message_id().map(str::to_owned);
                record.receipt_handle = m.receipt_handle().map(str::to_owned);
                record.body = m.body().map(str::to_owned);
                record
            })
            .collect();
        let mut event = SqsEvent::default();
        event.records = records;
        event
    }

    /// Deletes handled messages (Lambda does this for non-failed items).
    pub async fn delete_messages(&self, event: &SqsEvent, failed: &[String]) {
        for record in &event.records {
            let id = record.message_id.clone().unwrap_or_default();
            if failed.contains(&id) {
                continue;
            }
            if let Some(handle) = &record.receipt_handle {
                self.sqs
                    .delete_message()
                    .queue_url(&self.resources.queue_url)
                    .receipt_handle(handle)
                    .send()
                    .await
                    .expect("delete message");
            }
        }
    }

    /// Every SMS SNS "sent" in the emulator (moto keeps them, account-wide,
    /// under `sns.SMS`). Filter by message id: other tests share the emulator.
    pub async fn sns_sms(&self) -> Vec<SentSms> {
        let url = format!("{}/moto-api/data.json", self.endpoint);
        // moto serializes every backend for this page; a write from another
        // test in the middle of it can spoil one answer: ask again.
        let mut data = serde_json::Value::Null;
        for attempt in 0..5 {
            let answer = match reqwest::get(&url).await {
                Ok(response) => response.text().await.ok(),
                Err(_) => None,
            };
            if let Some(parsed) = answer.and_then(|t| serde_json::from_str(&t).ok()) {
                data = parsed;
                break;
            }
            assert!(attempt < 4, "moto's data.json did not answer with JSON");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        data.get("sns")
            .and_then(|s| s.get("SMS"))
            .and_then(|s| s.as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| serde_json::from_value(i.clone()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The texts SNS delivered with these carrier message ids (`sns:<id>` or `<id>`).
    pub async fn sns_texts(&self, carrier_ids: &[String]) -> Vec<SentSms> {
        let ids: Vec<&str> = carrier_ids
            .iter()
            .map(|id| id.strip_prefix("sns:").unwrap_or(id))
            .collect();
        self.sns_sms()
            .await
            .into_iter()
            .filter(|s| ids.contains(&s.message_id.as_str()))
            .collect()
    }
}

/// One SMS as moto recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SentSms {
    /// SNS message id.
    pub message_id: String,
    /// Destination.
    pub phone_number: String,
    /// Body.
    pub message: String,
}

/// A JSON API request carrying `token` as its bearer.
pub fn bearer_request(
    token: &str,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Request {
    let builder = lambda_http::http::Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    let body = body.map_or(Body::Empty, |b| Body::from(b.to_string()));
    builder.body(body).expect("request builds")
}

/// A request signed as the test EHR source signs it (HMAC-SHA256 over
/// `"<timestamp>.<body>"`), at `timestamp` (unix seconds).
pub fn signed_ehr_request(path: &str, content_type: &str, body: &str, timestamp: i64) -> Request {
    signed_ehr_request_as(EHR_SOURCE, EHR_SECRET, path, content_type, body, timestamp)
}

/// [`signed_ehr_request`] from another source, with its secret.
pub fn signed_ehr_request_as(
    source: &str,
    secret: &str,
    path: &str,
    content_type: &str,
    body: &str,
    timestamp: i64,
) -> Request {
    let signature = hex::encode(optline_ehr_events::verify::signature(
        secret,
        timestamp,
        body.as_bytes(),
    ));
    lambda_http::http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", content_type)
        .header("x-optline-source", source)
        .header("x-optline-timestamp", timestamp.to_string())
        .header("x-optline-signature", format!("v1={signature}"))
        .body(Body::from(body.to_owned()))
        .expect("request builds")
}

/// The data Twilio signs: the URL, then each name and value, sorted.
fn twilio_signed_data(url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<(&str, &str)> = params.to_vec();
    sorted.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(b.1)));
    let mut data = url.to_owned();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    data
}

/// Twilio's signature, computed here independently of the adapter:
/// base64(HMAC-SHA1(token, url + sorted name/value pairs)).
pub fn twilio_sign(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("hmac key");
    mac.update(twilio_signed_data(url, params).as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Twilio's HMAC-SHA256 webhook signature (a Webhooks SharedKey's), written
/// here from Twilio's description, apart from the code under test.
pub fn twilio_sign_sha256(secret: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(twilio_signed_data(url, params).as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// An inbound SMS webhook as Twilio posts it, signed for `PUBLIC_BASE_URL`.
pub fn twilio_inbound_request(message_sid: &str, from: &str, body: &str) -> Request {
    let params = twilio_params(message_sid, from, body);
    let refs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let url = format!("{PUBLIC_BASE_URL}/twilio/inbound");
    let signature = twilio_sign(TWILIO_AUTH_TOKEN, &url, &refs);
    signed_form_request("/twilio/inbound", &params, &signature)
}

/// The parameters Twilio sends with an inbound SMS.
pub fn twilio_params(message_sid: &str, from: &str, body: &str) -> Vec<(String, String)> {
    [
        ("ToCountry", "US"),
        ("ToState", "CA"),
        ("SmsMessageSid", message_sid),
        ("NumMedia", "0"),
        ("ToCity", "SAN FRANCISCO"),
        ("FromZip", "94105"),
        ("SmsSid", message_sid),
        ("FromState", "CA"),
        ("SmsStatus", "received"),
        ("FromCity", "SAN FRANCISCO"),
        ("Body", body),
        ("FromCountry", "US"),
        ("To", "+15005550006"),
        ("ToZip", "94105"),
        ("NumSegments", "1"),
        ("MessageSid", message_sid),
        ("AccountSid", "AC00000000000000000000000000000000"),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// A form POST with a given signature.
pub fn signed_form_request(path: &str, params: &[(String, String)], signature: &str) -> Request {
    let body = serde_urlencoded::to_string(params).expect("form encodes");
    lambda_http::http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .header(
            "i-twilio-idempotency-token",
            uuid::Uuid::new_v4().to_string(),
        )
        .body(Body::from(body))
        .expect("request builds")
}

/// The body of a response as text.
pub fn body_text(response: &lambda_http::Response<Body>) -> String {
    match response.body() {
        Body::Text(t) => t.clone(),
        Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
        _ => String::new(),
    }
}

/// The body of a response as JSON.
pub fn body_json(response: &lambda_http::Response<Body>) -> serde_json::Value {
    serde_json::from_str(&body_text(response)).unwrap_or(serde_json::Value::Null)
}
