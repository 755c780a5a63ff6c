//! # optline-library
//!
//! The template library as a service over the ports: what the templates API,
//! the operator CLI, dispatch and the seeding of a new deployment share.
//!
//! - Versions are immutable: a change of wording is a new version.
//! - Lint runs when a version is written, when it is submitted and on every
//!   rendered text ([`optline_policy::template::lint`]).
//! - Transitions follow [`optline_policy::template::review`] and are written
//!   with optimistic concurrency (a lost race answers 409, never a silent
//!   overwrite), then appended to the template's audit chain, whose subject
//!   is `template/<id>` (verify it with `optline-ops audit-verify`).
//! - [`Library::sendable`] is the only way dispatch gets a version to send:
//!   published, approvals valid, or a reason to suppress.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use optline_policy::segments::SegmentCount;
use optline_policy::segments::{self, Encoding};
use optline_policy::template::lint::{has_errors, lint, lint_rendered, Finding, LintConfig};
use optline_policy::template::review::{
    apply, missing_roles, required_roles, risk_tier, sendable, Action, Actor, Lifecycle,
    ReviewError, ReviewPolicy, RiskTier, Role, Transition, VersionState,
};
use optline_policy::template::{seed_library, TemplateVersion, Variable};
use optline_policy::MessageClass;
use optline_ports::{ContactId, NewAuditRecord, PortError, Store, StoredTemplate};
use serde::{Deserialize, Serialize};

use thiserror::Error;

/// What can go wrong. Messages never contain a rendered value.
#[derive(Debug, Error)]
pub enum LibraryError {
    /// No such template or version.
    #[error("no template {0}")]
    NotFound(String),
    /// The request is malformed.
    #[error("invalid template: {0}")]
    Invalid(String),
    /// The review rules refuse the transition.
    #[error(transparent)]
    Review(#[from] ReviewError),
    /// Someone changed the version first; read it again.
    #[error("the version changed meanwhile; read it again and retry")]
    Conflict,
    /// The store failed.
    #[error(transparent)]
    Port(#[from] PortError),
}

/// A new version as an author writes it: everything but the number, the
/// author and the time, which the library sets.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Draft {
    /// Template id: lower case letters, digits and underscores.
    pub id: String,
    /// Program (brand), or `*` for every program.
    pub program: String,
    /// Purpose, e.g. `appointment_reminder`.
    pub purpose: String,
    /// Consent category.
    pub category: String,
    /// Message class.
    pub class: MessageClass,
    /// Locale, e.g. `en-US`.
    pub locale: String,
    /// Body with `{{name}}` placeholders.
    pub body: String,
    /// Typed variables.
    pub variables: Vec<Variable>,
    /// Confirm codes.
    #[serde(default)]
    pub confirm_codes: Vec<String>,
    /// Reschedule codes.
    #[serde(default)]
    pub reschedule_codes: Vec<String>,
    /// Relies on the healthcare exemption.
    #[serde(default)]
    pub healthcare_exempt: bool,
    /// Part of a recurring program.
    #[serde(default = "default_true")]
    pub recurring: bool,
    /// Most segments allowed.
    #[serde(default = "default_budget")]
    pub segment_budget: usize,
    /// Why this version exists.
    pub change_reason: String,
}

fn default_true() -> bool {
    true
}

fn default_budget() -> usize {
    2
}

/// A version with what a reviewer needs to see.
#[derive(Debug, Clone, Serialize)]
pub struct VersionView {
    /// Content and lifecycle.
    #[serde(flatten)]
    pub stored: StoredTemplate,
    /// Current lint findings.
    pub findings: Vec<Finding>,
    /// Required roles still missing a valid approval.
    pub missing_approvals: Vec<Role>,
    /// Whether dispatch may send it now.
    pub sendable: bool,
}

/// A rendering with its size on the air.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    /// The rendered text.
    pub body: String,
    /// `gsm7` or `ucs2`.
    pub encoding: Encoding,
    /// Characters.
    pub characters: usize,
    /// Septets or UTF-16 units.
    pub units: usize,
    /// Segments.
    pub segments: usize,
    /// The parts as a handset receives them.
    pub parts: Vec<String>,
    /// The worst case over every filling within the variables' bounds.
    pub worst_case_segments: usize,
    /// Lint of the rendered text.
    pub findings: Vec<Finding>,
}

/// One difference between two versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The field, e.g. `body`, `variables.date.max_len`.
    pub field: String,
    /// Before.
    pub from: serde_json::Value,
    /// After.
    pub to: serde_json::Value,
}

/// Sendable template versions kept in memory by a warm function.
#[derive(Debug, Default)]
pub struct TemplateCache(
    std::sync::Mutex<
        std::collections::HashMap<(String, u32), (std::time::Instant, StoredTemplate)>,
    >,
);

impl TemplateCache {
    /// How long an entry is trusted.
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(30);

    fn get(&self, id: &str, version: u32) -> Option<StoredTemplate> {
        let map = self.0.lock().ok()?;
        map.get(&(id.to_owned(), version))
            .filter(|(at, _)| at.elapsed() < Self::TTL)
            .map(|(_, t)| t.clone())
    }

    fn put(&self, stored: StoredTemplate) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(
                (stored.version.id.clone(), stored.version.version),
                (std::time::Instant::now(), stored),
            );
        }
    }
}

/// The newest sendable version of each template, as planning pins it,
/// kept [`TemplateCache::TTL`] per template id: a bulk import planning
/// thousands of steps reads each template's versions once per interval
/// rather than once per step. A version retired within the interval may
/// still be pinned; dispatch checks it again before any send.
#[derive(Debug, Default)]
pub struct LatestTemplates(
    std::sync::Mutex<std::collections::HashMap<String, (std::time::Instant, StoredTemplate)>>,
);

impl LatestTemplates {
    fn get(&self, id: &str) -> Option<StoredTemplate> {
        let map = self.0.lock().ok()?;
        map.get(id)
            .filter(|(at, _)| at.elapsed() < TemplateCache::TTL)
            .map(|(_, t)| t.clone())
    }

    fn put(&self, stored: StoredTemplate) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(
                stored.version.id.clone(),
                (std::time::Instant::now(), stored),
            );
        }
    }
}

/// The library over a store.
#[derive(Clone, Copy)]
pub struct Library<'a> {
    store: &'a dyn Store,
    policy: ReviewPolicy,
    lint: &'a LintConfig,
}

impl std::fmt::Debug for Library<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A person as records show them: `Name <cognito:sub>`, or the id alone.
fn who(name: &str, id: &str) -> String {
    if name.is_empty() {
        id.to_owned()
    } else {
        format!("{name} <{id}>")
    }
}

/// A version the seed loaded, and what it waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeededVersion {
    /// `id@version`.
    pub reference: String,
    /// `published` or `in_review`.
    pub state: String,
    /// Roles whose approval it still needs.
    pub missing_roles: Vec<String>,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The lint lists: `raw` JSON when the deployment sets one, else the
/// embedded defaults.
pub fn lint_config(raw: Option<&str>) -> Result<LintConfig, String> {
    match raw {
        Some(json) => serde_json::from_str(json)
            .map_err(|e| format!("TEMPLATE_LINT_CONFIG is not valid: {e}")),
        None => LintConfig::embedded().cloned().map_err(|e| e.to_string()),
    }
}

/// The audit subject of a template's chain (`template/<id>`, which no
/// contact id can spell).
pub fn audit_subject(id: &str) -> Result<ContactId, PortError> {
    ContactId::template_trail(id)
}

impl<'a> Library<'a> {
    /// A library with the review policy and lint lists to apply.
    pub fn new(store: &'a dyn Store, policy: ReviewPolicy, lint: &'a LintConfig) -> Self {
        Self {
            store,
            policy,
            lint,
        }
    }

    /// Writes a new draft version (number = latest + 1) by `author`.
    pub async fn create(
        &self,
        draft: Draft,
        author: &Actor,
        now: DateTime<Utc>,
    ) -> Result<VersionView, LibraryError> {
        if !valid_id(&draft.id) {
            return Err(LibraryError::Invalid(
                "id must be 1 to 64 lower-case letters, digits or underscores".to_owned(),
            ));
        }
        if draft.change_reason.trim().is_empty() {
            return Err(LibraryError::Invalid(
                "change_reason is required: say what changed and why".to_owned(),
            ));
        }
        let existing = self.store.template_versions(&draft.id).await?;
        if let Some(first) = existing.first() {
            let same = first.version.program == draft.program
                && first.version.purpose == draft.purpose
                && first.version.class == draft.class;
            if !same {
                return Err(LibraryError::Invalid(
                    "a new version keeps its template's program, purpose and class; create a new template instead".to_owned(),
                ));
            }
        }
        let number = existing
            .iter()
            .map(|t| t.version.version)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        let version = draft.into_version(number, &author.id, now);
        let stored = StoredTemplate {
            version,
            lifecycle: Lifecycle::draft(),
        };
        if !self.store.create_template_version(&stored).await? {
            return Err(LibraryError::Conflict);
        }
        self.audit(&stored, "create", &who(&author.name, &author.id), now, None)
            .await?;
        Ok(self.view(stored, now))
    }

    /// One version with its findings.
    pub async fn get(
        &self,
        id: &str,
        version: u32,
        now: DateTime<Utc>,
    ) -> Result<VersionView, LibraryError> {
        let stored = self.load(id, version).await?;
        Ok(self.view(stored, now))
    }

    /// Every version of a template.
    pub async fn versions(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<VersionView>, LibraryError> {
        let all = self.store.template_versions(id).await?;
        if all.is_empty() {
            return Err(LibraryError::NotFound(id.to_owned()));
        }
        Ok(all.into_iter().map(|t| self.view(t, now)).collect())
    }

    /// Every template id.
    pub async fn ids(&self) -> Result<Vec<String>, LibraryError> {
        Ok(self.store.template_ids().await?)
    }

    /// Applies a review action and audits it.
    pub async fn act(
        &self,
        id: &str,
        version: u32,
        action: &Action,
        actor: &Actor,
        now: DateTime<Utc>,
    ) -> Result<VersionView, LibraryError> {
        let stored = self.load(id, version).await?;
        let findings = lint(&stored.version, self.lint);
        let next = apply(
            &stored.version,
            &stored.lifecycle,
            action,
            actor,
            &findings,
            now,
            &self.policy,
        )?;
        if !self
            .store
            .update_template_lifecycle(id, version, stored.lifecycle.revision, &next)
            .await?
        {
            return Err(LibraryError::Conflict);
        }
        let updated = StoredTemplate {
            version: stored.version,
            lifecycle: next,
        };
        let note = updated.lifecycle.history.last().map(describe_transition);
        self.audit(
            &updated,
            action.name(),
            &who(&actor.name, &actor.id),
            now,
            note,
        )
        .await?;
        Ok(self.view(updated, now))
    }

    /// The version dispatch may send, or the rule id and reason it may not.
    pub async fn sendable(
        &self,
        id: &str,
        version: u32,
        now: DateTime<Utc>,
    ) -> Result<Result<StoredTemplate, (&'static str, String)>, PortError> {
        let Some(stored) = self.store.template_version(id, version).await? else {
            return Ok(Err((
                "template.missing",
                "the pinned template version does not exist".to_owned(),
            )));
        };
        if let Err(why) = sendable(&stored.lifecycle, now, &self.policy) {
            return Ok(Err(why));
        }
        if has_errors(&lint(&stored.version, self.lint)) {
            return Ok(Err((
                "template.lint",
                "the pinned template version fails the current lint rules".to_owned(),
            )));
        }
        Ok(Ok(stored))
    }

    /// [`Library::sendable`] through `cache`: a version found sendable is
    /// kept for [`TemplateCache::TTL`] (its lifecycle is still checked at
    /// `now` on every use, so expiring approvals are seen at once; a retire
    /// reaches a warm dispatcher within the TTL). Refusals are not cached.
    pub async fn sendable_cached(
        &self,
        cache: &TemplateCache,
        id: &str,
        version: u32,
        now: DateTime<Utc>,
    ) -> Result<Result<StoredTemplate, (&'static str, String)>, PortError> {
        if let Some(stored) = cache.get(id, version) {
            if let Err(why) = sendable(&stored.lifecycle, now, &self.policy) {
                return Ok(Err(why));
            }
            return Ok(Ok(stored));
        }
        let found = self.sendable(id, version, now).await?;
        if let Ok(stored) = &found {
            cache.put(stored.clone());
        }
        Ok(found)
    }

    /// The newest sendable version of a template (what new steps pin).
    pub async fn latest_sendable(
        &self,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<StoredTemplate>, PortError> {
        let mut all = self.store.template_versions(id).await?;
        all.sort_by_key(|t| std::cmp::Reverse(t.version.version));
        Ok(all
            .into_iter()
            .find(|t| sendable(&t.lifecycle, now, &self.policy).is_ok()))
    }

    /// [`Library::latest_sendable`] through `cache`: what is found is kept
    /// for [`TemplateCache::TTL`]; "none sendable" is not kept, so a
    /// template published meanwhile is found on the next step.
    pub async fn latest_sendable_cached(
        &self,
        id: &str,
        now: DateTime<Utc>,
        cache: &LatestTemplates,
    ) -> Result<Option<StoredTemplate>, PortError> {
        if let Some(stored) = cache.get(id) {
            if sendable(&stored.lifecycle, now, &self.policy).is_ok() {
                return Ok(Some(stored));
            }
        }
        let found = self.latest_sendable(id, now).await?;
        if let Some(stored) = &found {
            cache.put(stored.clone());
        }
        Ok(found)
    }

    /// Renders a preview with `values` (or each variable's worst-case sample).
    pub fn preview(
        &self,
        version: &TemplateVersion,
        values: Option<&BTreeMap<String, String>>,
    ) -> Result<Preview, LibraryError> {
        preview(version, values, self.lint)
    }

    /// Loads the seed library, once per template id (an id that exists is
    /// left alone), on behalf of `seeder`, a verified person. Every version
    /// is submitted for review as written by the seed library. A low-tier
    /// version is approved in the operations role and published by the
    /// seeder when they hold that role (their own approval, recorded with
    /// their identity); a version of a higher tier stays in review until the
    /// people its tier names approve it. No approval is ever recorded for
    /// anyone who did not give it.
    pub async fn seed(
        &self,
        seeder: &Actor,
        now: DateTime<Utc>,
    ) -> Result<Vec<SeededVersion>, LibraryError> {
        let mut loaded = Vec::new();
        for version in seed_library() {
            if !self.store.template_versions(&version.id).await?.is_empty() {
                continue;
            }
            let findings = lint(&version, self.lint);
            let author = Actor {
                id: version.author.clone(),
                name: "optline seed library".to_owned(),
                roles: Vec::new(),
            };
            let mut lc = apply(
                &version,
                &Lifecycle::draft(),
                &Action::Submit,
                &author,
                &findings,
                now,
                &self.policy,
            )?;
            if lc.tier == RiskTier::Low && seeder.roles.contains(&Role::Operations) {
                lc = apply(
                    &version,
                    &lc,
                    &Action::Approve {
                        role: Role::Operations,
                    },
                    seeder,
                    &findings,
                    now,
                    &self.policy,
                )?;
                lc = apply(
                    &version,
                    &lc,
                    &Action::Publish,
                    seeder,
                    &findings,
                    now,
                    &self.policy,
                )?;
            }
            let stored = StoredTemplate {
                version,
                lifecycle: lc,
            };
            if self.store.create_template_version(&stored).await? {
                self.audit(
                    &stored,
                    "seed",
                    &who(&seeder.name, &seeder.id),
                    now,
                    Some(format!(
                        "loaded from the seed library shipped with optline by {}; {}",
                        seeder.name,
                        stored.lifecycle.state.as_str()
                    )),
                )
                .await?;
                loaded.push(SeededVersion {
                    reference: stored.version.reference(),
                    state: stored.lifecycle.state.as_str().to_owned(),
                    missing_roles: missing_roles(&stored.lifecycle, now, &self.policy)
                        .iter()
                        .map(|r| r.as_str().to_owned())
                        .collect(),
                });
            }
        }
        Ok(loaded)
    }

    async fn load(&self, id: &str, version: u32) -> Result<StoredTemplate, LibraryError> {
        self.store
            .template_version(id, version)
            .await?
            .ok_or_else(|| LibraryError::NotFound(format!("{id}@{version}")))
    }

    fn view(&self, stored: StoredTemplate, now: DateTime<Utc>) -> VersionView {
        let findings = lint(&stored.version, self.lint);
        let missing = if stored.lifecycle.state == VersionState::Draft {
            Vec::new()
        } else {
            missing_roles(&stored.lifecycle, now, &self.policy)
        };
        let ok = sendable(&stored.lifecycle, now, &self.policy).is_ok() && !has_errors(&findings);
        VersionView {
            stored,
            findings,
            missing_approvals: missing,
            sendable: ok,
        }
    }

    async fn audit(
        &self,
        stored: &StoredTemplate,
        action: &str,
        actor: &str,
        now: DateTime<Utc>,
        note: Option<String>,
    ) -> Result<(), PortError> {
        let approvals: Vec<String> = stored
            .lifecycle
            .approvals
            .iter()
            .map(|a| {
                format!(
                    "{} by {} at {}",
                    a.role.as_str(),
                    who(&a.actor_name, &a.actor),
                    a.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
            })
            .collect();
        let detail = format!(
            "by {actor}; state {}; tier {}; approvals [{}]{}",
            stored.lifecycle.state.as_str(),
            format!("{:?}", stored.lifecycle.tier).to_lowercase(),
            approvals.join(", "),
            note.map(|n| format!("; {n}")).unwrap_or_default()
        );
        self.store
            .append_audit(NewAuditRecord {
                // The version's exact content, by hash, inside the chain.
                evidence: BTreeMap::from([(
                    "template".to_owned(),
                    optline_ports::content_sha256(&stored.version),
                )]),
                contact_id: audit_subject(&stored.version.id)?,
                at: now,
                kind: "template".to_owned(),
                action: action.to_owned(),
                step_id: None,
                rules: Vec::new(),
                reasons: Vec::new(),
                legal_basis: None,
                consent_event_id: None,
                template: Some(stored.version.reference()),
                carrier_message_id: None,
                arm: None,
                detail: Some(detail),
            })
            .await?;
        Ok(())
    }
}

fn describe_transition(t: &Transition) -> String {
    let mut out = format!("{} -> {}", t.from.as_str(), t.to.as_str());
    if let Some(role) = t.role {
        out.push_str(&format!(" as {}", role.as_str()));
    }
    if let Some(note) = &t.note {
        out.push_str(&format!(": {note}"));
    }
    out
}

/// Renders `version` with `values` (or each variable's worst-case sample):
/// the text, its encoding, segments and parts, the worst case over every
/// filling, and the lint of the rendered text.
pub fn preview(
    version: &TemplateVersion,
    values: Option<&BTreeMap<String, String>>,
    lint: &LintConfig,
) -> Result<Preview, LibraryError> {
    let samples;
    let values = match values {
        Some(v) => v,
        None => {
            samples = version.sample_values();
            &samples
        }
    };
    let body = version
        .render(values)
        .map_err(|e| LibraryError::Invalid(e.to_string()))?;
    let count = segments::count(&body);
    let worst = version
        .worst_case()
        .map_err(|e| LibraryError::Invalid(e.to_string()))?;
    Ok(Preview {
        findings: lint_rendered(version, &body, lint),
        parts: segments::split(&body),
        encoding: count.encoding,
        characters: count.characters,
        units: count.units,
        segments: count.segments,
        worst_case_segments: worst.segments,
        body,
    })
}

/// Lints a version as written: findings, the risk tier it would get and the
/// roles that must approve it, and its worst-case size.
pub fn assess(version: &TemplateVersion, lint_config: &LintConfig) -> Assessment {
    let findings = lint(version, lint_config);
    let (tier, tier_reasons) = risk_tier(version, &findings);
    Assessment {
        worst_case: version.worst_case().ok(),
        required_roles: required_roles(tier).to_vec(),
        tier,
        tier_reasons,
        findings,
    }
}

/// What [`assess`] finds.
#[derive(Debug, Clone, Serialize)]
pub struct Assessment {
    /// Lint findings.
    pub findings: Vec<Finding>,
    /// The risk tier.
    pub tier: RiskTier,
    /// Why.
    pub tier_reasons: Vec<String>,
    /// Roles that must approve.
    pub required_roles: Vec<Role>,
    /// The largest rendering.
    pub worst_case: Option<SegmentCount>,
}

impl Draft {
    /// The version this draft would become, numbered `version`, by `author`.
    pub fn into_version(self, version: u32, author: &str, now: DateTime<Utc>) -> TemplateVersion {
        TemplateVersion {
            id: self.id,
            version,
            program: self.program,
            purpose: self.purpose,
            category: self.category,
            class: self.class,
            locale: self.locale,
            body: self.body,
            variables: self.variables,
            confirm_codes: self.confirm_codes,
            reschedule_codes: self.reschedule_codes,
            healthcare_exempt: self.healthcare_exempt,
            recurring: self.recurring,
            segment_budget: self.segment_budget,
            author: author.to_owned(),
            created_at: Some(now),
            change_reason: Some(self.change_reason),
        }
    }
}

/// The fields that differ between two versions; the body as whole text.
pub fn diff(from: &TemplateVersion, to: &TemplateVersion) -> Vec<Change> {
    let a = serde_json::to_value(from).unwrap_or_default();
    let b = serde_json::to_value(to).unwrap_or_default();
    let mut out = Vec::new();
    let skip = ["version", "author", "created_at", "change_reason"];
    if let (Some(a), Some(b)) = (a.as_object(), b.as_object()) {
        let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            if skip.contains(&key.as_str()) {
                continue;
            }
            let (x, y) = (
                a.get(key).cloned().unwrap_or_default(),
                b.get(key).cloned().unwrap_or_default(),
            );
            if key == "variables" {
                variable_changes(&from.variables, &to.variables, &mut out);
            } else if x != y {
                out.push(Change {
                    field: key.clone(),
                    from: x,
                    to: y,
                });
            }
        }
    }
    out
}

fn variable_changes(from: &[Variable], to: &[Variable], out: &mut Vec<Change>) {
    let as_value = |v: Option<&Variable>| {
        v.and_then(|v| serde_json::to_value(v).ok())
            .unwrap_or_default()
    };
    let mut names: Vec<&str> = from
        .iter()
        .chain(to.iter())
        .map(|v| v.name.as_str())
        .collect();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let x = from.iter().find(|v| v.name == name);
        let y = to.iter().find(|v| v.name == name);
        if x != y {
            out.push(Change {
                field: format!("variables.{name}"),
                from: as_value(x),
                to: as_value(y),
            });
        }
    }
}
