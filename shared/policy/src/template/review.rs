//! Risk tiers, approver roles and the version state machine.
//!
//! A version moves draft → in review → approved → published → retired. The
//! risk tier, computed from the class, purpose, data classes and lint
//! findings when the version is submitted, decides which roles must approve:
//!
//! | tier | approvers |
//! |---|---|
//! | low | operations |
//! | medium | operations and compliance |
//! | high | compliance, legal and clinical |
//!
//! Four eyes: the author never approves their own version, and one person
//! fills at most one role of a quorum. Approvals expire after
//! [`ReviewPolicy::approval_valid_days`]; an approved version whose quorum
//! has expired needs re-review before it can be published, and a published
//! one stops being sendable until it is approved again. Every transition is
//! kept in the version's history with actor and time (and the caller writes
//! it to the audit trail).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::lint::{has_errors, Finding, Severity};
use super::{DataClass, TemplateVersion};
use crate::MessageClass;

/// The version of the tiering and approval rules.
pub const REVIEW_VERSION: &str = "2026-11-25";

/// Where a version is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionState {
    /// Written, not yet submitted (or sent back by a reviewer).
    Draft,
    /// Waiting for the tier's approvals.
    InReview,
    /// Every required role approved; not yet live.
    Approved,
    /// Live: steps may pin it and dispatch may send it.
    Published,
    /// Withdrawn for good; never sent again.
    Retired,
}

impl VersionState {
    /// `draft`, `in_review`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::InReview => "in_review",
            Self::Approved => "approved",
            Self::Published => "published",
            Self::Retired => "retired",
        }
    }
}

/// How much review a version needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskTier {
    /// Operations approves.
    Low,
    /// Operations and compliance approve.
    Medium,
    /// Compliance, legal and clinical approve.
    High,
}

/// A reviewer's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs the messaging program.
    Operations,
    /// Compliance officer.
    Compliance,
    /// Counsel.
    Legal,
    /// A clinician.
    Clinical,
}

impl Role {
    /// `operations`, `compliance`, `legal`, `clinical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operations => "operations",
            Self::Compliance => "compliance",
            Self::Legal => "legal",
            Self::Clinical => "clinical",
        }
    }
}

/// The roles that must approve a version of `tier`.
pub fn required_roles(tier: RiskTier) -> &'static [Role] {
    match tier {
        RiskTier::Low => &[Role::Operations],
        RiskTier::Medium => &[Role::Operations, Role::Compliance],
        RiskTier::High => &[Role::Compliance, Role::Legal, Role::Clinical],
    }
}

/// The tier of a version and the reasons for it.
pub fn risk_tier(version: &TemplateVersion, findings: &[Finding]) -> (RiskTier, Vec<String>) {
    let mut tier = RiskTier::Low;
    let mut reasons = Vec::new();
    let mut raise = |to: RiskTier, why: String| {
        tier = tier.max(to);
        reasons.push(why);
    };
    if version.class == MessageClass::Marketing {
        raise(RiskTier::High, "marketing class".to_owned());
    }
    if matches!(
        version.purpose.as_str(),
        "results_ready" | "referral_document" | "care_follow_up"
    ) {
        raise(
            RiskTier::High,
            format!("clinical purpose {}", version.purpose),
        );
    }
    for v in &version.variables {
        match v.data_class {
            DataClass::Phi | DataClass::FreeText => raise(
                RiskTier::High,
                format!("variable {} is {:?}", v.name, v.data_class).to_lowercase(),
            ),
            DataClass::PortalLink => raise(
                RiskTier::Medium,
                format!("variable {} links to the portal", v.name),
            ),
            DataClass::Identifier | DataClass::Scheduling => {}
        }
    }
    if version.healthcare_exempt {
        raise(
            RiskTier::Medium,
            "relies on the FCC healthcare exemption".to_owned(),
        );
    }
    if matches!(
        version.purpose.as_str(),
        "billing" | "billing_reminder" | "collections" | "payment" | "payment_reminder"
    ) {
        raise(RiskTier::Medium, "billing purpose".to_owned());
    }
    if version.class == MessageClass::Informational {
        raise(RiskTier::Medium, "informational class".to_owned());
    }
    for f in findings.iter().filter(|f| f.severity == Severity::Warning) {
        raise(RiskTier::Medium, format!("lint warning {}", f.rule));
    }
    if has_errors(findings) {
        raise(RiskTier::High, "lint errors".to_owned());
    }
    (tier, reasons)
}

/// One role's approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// The role approved in.
    pub role: Role,
    /// Who approved (a verified identity, `cognito:<sub>`).
    pub actor: String,
    /// Their display name when they approved.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub actor_name: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// One transition, as kept in the version's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// `submit`, `approve`, `reject`, `publish`, `retire`.
    pub action: String,
    /// Who did it (a verified identity, `cognito:<sub>`).
    pub actor: String,
    /// Their display name when they did it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub actor_name: String,
    /// When.
    pub at: DateTime<Utc>,
    /// State before.
    pub from: VersionState,
    /// State after.
    pub to: VersionState,
    /// The role approved in, for an approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The reason given (reject, retire).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A version's review state: everything about it that changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    /// Current state.
    pub state: VersionState,
    /// Tier computed at the last submission.
    pub tier: RiskTier,
    /// Why that tier.
    #[serde(default)]
    pub tier_reasons: Vec<String>,
    /// Approvals since the last submission (one per role, the latest).
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// Every transition, oldest first.
    #[serde(default)]
    pub history: Vec<Transition>,
    /// Bumped by every transition (optimistic concurrency in the store).
    pub revision: u32,
}

impl Lifecycle {
    /// A new draft.
    pub fn draft() -> Self {
        Self {
            state: VersionState::Draft,
            tier: RiskTier::Low,
            tier_reasons: Vec::new(),
            approvals: Vec::new(),
            history: Vec::new(),
            revision: 0,
        }
    }
}

/// Configurable review rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewPolicy {
    /// Days an approval counts.
    pub approval_valid_days: u32,
}

impl Default for ReviewPolicy {
    fn default() -> Self {
        Self {
            approval_valid_days: 365,
        }
    }
}

/// Who is acting, with the roles the deployment grants them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Stable identity: a verified token's subject (`cognito:<sub>`), which
    /// four-eyes compares; never a name a caller chooses.
    pub id: String,
    /// Display name, for the records people read.
    #[serde(default)]
    pub name: String,
    /// Roles granted by the identity provider's groups, never by the caller.
    pub roles: Vec<Role>,
}

/// What an actor asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Send a draft for review.
    Submit,
    /// Approve in a role.
    Approve {
        /// The role approved in.
        role: Role,
    },
    /// Send back to draft.
    Reject {
        /// Why.
        reason: String,
    },
    /// Make an approved version live.
    Publish,
    /// Withdraw for good.
    Retire {
        /// Why.
        reason: String,
    },
}

impl Action {
    /// `submit`, `approve`, …
    pub fn name(&self) -> &'static str {
        match self {
            Self::Submit => "submit",
            Self::Approve { .. } => "approve",
            Self::Reject { .. } => "reject",
            Self::Publish => "publish",
            Self::Retire { .. } => "retire",
        }
    }
}

/// Why a transition is refused. Messages are for the person who asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReviewError {
    /// The action does not apply in the current state.
    #[error("cannot {action} a version that is {state}")]
    WrongState {
        /// The action.
        action: &'static str,
        /// The state.
        state: &'static str,
    },
    /// Lint errors block submission.
    #[error("the version has lint errors: {0}")]
    LintErrors(String),
    /// Four eyes.
    #[error("the author of a version cannot approve it")]
    AuthorApproves,
    /// The actor lacks the role.
    #[error("{actor} does not hold the {role} role")]
    MissingRole {
        /// Who.
        actor: String,
        /// Which role.
        role: &'static str,
    },
    /// The tier does not ask for that role.
    #[error("a {tier} risk version needs no {role} approval")]
    RoleNotRequired {
        /// The tier.
        tier: &'static str,
        /// The role.
        role: &'static str,
    },
    /// One person, one role.
    #[error("{0} already approved this version in another role")]
    SameApprover(String),
    /// A reason is required.
    #[error("a reason is required")]
    ReasonRequired,
    /// The quorum is incomplete or has expired.
    #[error("approvals missing or expired for: {0}")]
    QuorumMissing(String),
}

fn tier_name(t: RiskTier) -> &'static str {
    match t {
        RiskTier::Low => "low",
        RiskTier::Medium => "medium",
        RiskTier::High => "high",
    }
}

/// The required roles without a valid approval at `now`.
pub fn missing_roles(lc: &Lifecycle, now: DateTime<Utc>, policy: &ReviewPolicy) -> Vec<Role> {
    let valid_for = Duration::days(i64::from(policy.approval_valid_days));
    required_roles(lc.tier)
        .iter()
        .copied()
        .filter(|role| {
            !lc.approvals
                .iter()
                .any(|a| a.role == *role && a.at + valid_for > now && a.at <= now)
        })
        .collect()
}

fn roles_list(roles: &[Role]) -> String {
    roles
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Applies `action` by `actor` at `now`; the new lifecycle, or why not.
/// `findings` are the version's current lint findings.
pub fn apply(
    version: &TemplateVersion,
    lc: &Lifecycle,
    action: &Action,
    actor: &Actor,
    findings: &[Finding],
    now: DateTime<Utc>,
    policy: &ReviewPolicy,
) -> Result<Lifecycle, ReviewError> {
    let wrong = || ReviewError::WrongState {
        action: action.name(),
        state: lc.state.as_str(),
    };
    let needs_role = |role: Role| -> Result<(), ReviewError> {
        if actor.roles.contains(&role) {
            Ok(())
        } else {
            Err(ReviewError::MissingRole {
                actor: actor.id.clone(),
                role: role.as_str(),
            })
        }
    };
    let mut next = lc.clone();
    let mut role_used = None;
    let mut note = None;
    match action {
        Action::Submit => {
            if lc.state != VersionState::Draft {
                return Err(wrong());
            }
            if has_errors(findings) {
                let rules: Vec<&str> = findings
                    .iter()
                    .filter(|f| f.severity == Severity::Error)
                    .map(|f| f.rule.as_ref())
                    .collect();
                return Err(ReviewError::LintErrors(rules.join(", ")));
            }
            let (tier, reasons) = risk_tier(version, findings);
            next.tier = tier;
            next.tier_reasons = reasons;
            next.approvals.clear();
            next.state = VersionState::InReview;
        }
        Action::Approve { role } => {
            if !matches!(
                lc.state,
                VersionState::InReview | VersionState::Approved | VersionState::Published
            ) {
                return Err(wrong());
            }
            if actor.id == version.author {
                return Err(ReviewError::AuthorApproves);
            }
            needs_role(*role)?;
            if !required_roles(lc.tier).contains(role) {
                return Err(ReviewError::RoleNotRequired {
                    tier: tier_name(lc.tier),
                    role: role.as_str(),
                });
            }
            if lc
                .approvals
                .iter()
                .any(|a| a.actor == actor.id && a.role != *role)
            {
                return Err(ReviewError::SameApprover(actor.id.clone()));
            }
            next.approvals.retain(|a| a.role != *role);
            next.approvals.push(Approval {
                role: *role,
                actor: actor.id.clone(),
                actor_name: actor.name.clone(),
                at: now,
            });
            if lc.state == VersionState::InReview && missing_roles(&next, now, policy).is_empty() {
                next.state = VersionState::Approved;
            }
            role_used = Some(*role);
        }
        Action::Reject { reason } => {
            if !matches!(lc.state, VersionState::InReview | VersionState::Approved) {
                return Err(wrong());
            }
            if reason.trim().is_empty() {
                return Err(ReviewError::ReasonRequired);
            }
            if actor.id == version.author {
                return Err(ReviewError::AuthorApproves);
            }
            if !required_roles(lc.tier)
                .iter()
                .any(|r| actor.roles.contains(r))
            {
                return Err(ReviewError::MissingRole {
                    actor: actor.id.clone(),
                    role: required_roles(lc.tier)
                        .first()
                        .map_or("reviewer", |r| r.as_str()),
                });
            }
            next.approvals.clear();
            next.state = VersionState::Draft;
            note = Some(reason.clone());
        }
        Action::Publish => {
            if lc.state != VersionState::Approved {
                return Err(wrong());
            }
            if !(actor.roles.contains(&Role::Operations) || actor.roles.contains(&Role::Compliance))
            {
                return Err(ReviewError::MissingRole {
                    actor: actor.id.clone(),
                    role: "operations",
                });
            }
            let missing = missing_roles(lc, now, policy);
            if !missing.is_empty() {
                return Err(ReviewError::QuorumMissing(roles_list(&missing)));
            }
            next.state = VersionState::Published;
        }
        Action::Retire { reason } => {
            if lc.state == VersionState::Retired {
                return Err(wrong());
            }
            if reason.trim().is_empty() {
                return Err(ReviewError::ReasonRequired);
            }
            if !(actor.roles.contains(&Role::Operations) || actor.roles.contains(&Role::Compliance))
            {
                return Err(ReviewError::MissingRole {
                    actor: actor.id.clone(),
                    role: "operations",
                });
            }
            next.state = VersionState::Retired;
            note = Some(reason.clone());
        }
    }
    next.history.push(Transition {
        action: action.name().to_owned(),
        actor: actor.id.clone(),
        actor_name: actor.name.clone(),
        at: now,
        from: lc.state,
        to: next.state,
        role: role_used,
        note,
    });
    next.revision = lc.revision.saturating_add(1);
    Ok(next)
}

/// Why a version may not be sent now, as a rule id and a sentence; `Ok` when
/// it is published and its quorum is valid.
pub fn sendable(
    lc: &Lifecycle,
    now: DateTime<Utc>,
    policy: &ReviewPolicy,
) -> Result<(), (&'static str, String)> {
    match lc.state {
        VersionState::Published => {
            let missing = missing_roles(lc, now, policy);
            if missing.is_empty() {
                Ok(())
            } else {
                Err((
                    "template.approval_expired",
                    format!(
                        "the version's approvals have expired ({}); it needs re-review",
                        roles_list(&missing)
                    ),
                ))
            }
        }
        VersionState::Retired => Err((
            "template.retired",
            "the pinned template version is retired".to_owned(),
        )),
        other => Err((
            "template.not_published",
            format!("the pinned template version is {}", other.as_str()),
        )),
    }
}
