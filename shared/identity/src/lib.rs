//! # optline-identity
//!
//! People are verified identities, never a field of a request. A person
//! signs in to the deployment's Amazon Cognito user pool and presents the
//! token Cognito issued; every function checks that token itself, whatever
//! the gateway in front of it did:
//!
//! - the signature (RS256) against the pool's published keys (JWKS), the key
//!   chosen by the token's `kid`;
//! - the issuer: `https://cognito-idp.<region>.amazonaws.com/<pool id>`;
//! - the app client: `aud` of an ID token, `client_id` of an access token;
//! - `token_use` (`id` or `access`), expiry and issue time.
//!
//! What a record then carries is the token's subject (`sub`, stable for the
//! life of the user) and display name, and what a person may do comes from
//! the pool's groups (`cognito:groups`), one per [`Group`]. Four-eyes rules
//! compare subjects.
//!
//! The keys are fetched once at cold start and again (at most once a
//! minute) when a token names a key not yet seen, as when Cognito rotates.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use optline_policy::template::review::{Actor, Role};
use serde::{Deserialize, Serialize};

/// The longest token accepted (Cognito's are 1-2 KiB; a large group list
/// stays well under this).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// How far in the future a token's `iat` may be (clock skew).
const ISSUED_SKEW_SECONDS: i64 = 300;

/// Unknown key ids trigger a JWKS refetch at most this often.
const REFETCH_EVERY: Duration = Duration::from_secs(60);

/// The user pool groups optline knows, one per role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// Compliance officers: approve templates in the compliance role,
    /// resolve review items, confirm or restore doubtful opt-outs.
    Compliance,
    /// Counsel: approve templates in the legal role.
    Legal,
    /// Clinicians: approve templates in the clinical role.
    Clinical,
    /// Operations: author, seed, publish and retire templates.
    Operations,
    /// Front-desk staff: contacts, consent and revocations taken by phone or
    /// in person, callbacks, ambiguous replies.
    Staff,
    /// Administrators: number reveals and proof exports for any contact.
    Admin,
}

impl Group {
    /// Every group, in display order.
    pub const ALL: [Self; 6] = [
        Self::Compliance,
        Self::Legal,
        Self::Clinical,
        Self::Operations,
        Self::Staff,
        Self::Admin,
    ];

    /// The group's name in the user pool.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Compliance => "compliance",
            Self::Legal => "legal",
            Self::Clinical => "clinical",
            Self::Operations => "operations",
            Self::Staff => "staff",
            Self::Admin => "admin",
        }
    }

    /// The group named `name`, if optline knows it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == name)
    }

    /// The template review role this group grants, if any.
    pub fn review_role(self) -> Option<Role> {
        match self {
            Self::Compliance => Some(Role::Compliance),
            Self::Legal => Some(Role::Legal),
            Self::Clinical => Some(Role::Clinical),
            Self::Operations => Some(Role::Operations),
            Self::Staff | Self::Admin => None,
        }
    }
}

/// A signed-in person, as their verified token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// The token's `sub`: the user's stable, never-reassigned id.
    pub subject: String,
    /// Display name (`name`, else the username).
    pub name: String,
    /// The groups optline knows that the person belongs to.
    pub groups: Vec<Group>,
}

impl Person {
    /// The identity a record stores and four-eyes compares:
    /// `cognito:<sub>`.
    pub fn actor_id(&self) -> String {
        format!("cognito:{}", self.subject)
    }

    /// The subject with the display name, for records read by people:
    /// `Ana Ruiz <cognito:…>`.
    pub fn label(&self) -> String {
        format!("{} <{}>", self.name, self.actor_id())
    }

    /// Whether the person is in `group`.
    pub fn is(&self, group: Group) -> bool {
        self.groups.contains(&group)
    }

    /// Whether the person is in any of `groups`.
    pub fn any(&self, groups: &[Group]) -> bool {
        groups.iter().any(|g| self.is(*g))
    }

    /// The person as the template review rules see them: their subject
    /// (which four-eyes compares), name and the roles their groups grant.
    pub fn review_actor(&self) -> Actor {
        Actor {
            id: self.actor_id(),
            name: self.name.clone(),
            roles: self.review_roles(),
        }
    }

    /// The template review roles the person's groups grant.
    pub fn review_roles(&self) -> Vec<Role> {
        let mut roles: Vec<Role> = self.groups.iter().filter_map(|g| g.review_role()).collect();
        roles.sort();
        roles.dedup();
        roles
    }
}

/// Why a token was refused. The text is safe to return in a 401: it names
/// the check, never the token's contents.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    /// No token was presented.
    #[error("sign in first: no bearer token")]
    Missing,
    /// Not a compact JWS of three parts, bad base64 or JSON, or too long.
    #[error("the token is malformed")]
    Malformed,
    /// An algorithm other than RS256.
    #[error("the token's algorithm is not RS256")]
    Algorithm,
    /// The `kid` is not among the pool's keys.
    #[error("the token was not signed by this user pool's keys")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the token's signature does not verify")]
    Signature,
    /// Issued by another pool or provider.
    #[error("the token was issued by another user pool")]
    Issuer,
    /// Issued to another app client.
    #[error("the token was issued to another app client")]
    Client,
    /// `token_use` is neither `id` nor `access`.
    #[error("the token is neither an ID nor an access token")]
    TokenUse,
    /// Past its `exp`.
    #[error("the token has expired: sign in again")]
    Expired,
    /// Issued in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// No subject.
    #[error("the token names no subject")]
    NoSubject,
}

/// A failure to set up verification (configuration or the key fetch).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A required setting is missing or empty.
    #[error("{0} is not set: the functions verify people against a Cognito user pool")]
    Missing(&'static str),
    /// The JWKS could not be fetched.
    #[error("the user pool's keys could not be fetched: {0}")]
    Fetch(String),
    /// The JWKS is not a usable key set.
    #[error("the user pool's keys are not a usable JWKS: {0}")]
    Keys(String),
}

/// Which pool and clients tokens must come from, and where its keys are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConfig {
    /// The pool's issuer URL.
    pub issuer: String,
    /// App clients whose tokens are accepted.
    pub client_ids: Vec<String>,
    /// Where the pool publishes its keys.
    pub jwks_url: String,
}

impl PoolConfig {
    /// For pool `pool_id` in `region`, accepting `client_ids`; keys from
    /// Cognito, or from `endpoint` (the local emulator serves a pool's JWKS
    /// at `<endpoint>/<pool id>/.well-known/jwks.json`, and issues tokens
    /// with the same issuer as Cognito).
    pub fn new(
        region: &str,
        pool_id: &str,
        client_ids: Vec<String>,
        endpoint: Option<&str>,
    ) -> Self {
        let issuer = format!("https://cognito-idp.{region}.amazonaws.com/{pool_id}");
        let jwks_url = match endpoint {
            Some(e) if !e.is_empty() => {
                format!(
                    "{}/{pool_id}/.well-known/jwks.json",
                    e.trim_end_matches('/')
                )
            }
            _ => format!("{issuer}/.well-known/jwks.json"),
        };
        Self {
            issuer,
            client_ids,
            jwks_url,
        }
    }

    /// From `USER_POOL_ID`, `USER_POOL_CLIENT_ID` (comma-separated for more
    /// than one client), `AWS_REGION` and, locally, `AWS_ENDPOINT_URL`.
    pub fn from_env() -> Result<Self, SetupError> {
        let var = |name: &'static str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.trim().is_empty())
                .ok_or(SetupError::Missing(name))
        };
        let pool = var("USER_POOL_ID")?;
        let clients: Vec<String> = var("USER_POOL_CLIENT_ID")?
            .split(',')
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect();
        let region = std::env::var("AWS_REGION")
            .ok()
            .or_else(|| pool.split_once('_').map(|(r, _)| r.to_owned()))
            .ok_or(SetupError::Missing("AWS_REGION"))?;
        let endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
        Ok(Self::new(&region, &pool, clients, endpoint.as_deref()))
    }
}

/// One RSA public key.
#[derive(Debug, Clone)]
struct RsaKey {
    n: Vec<u8>,
    e: Vec<u8>,
}

#[derive(Debug)]
struct Keys {
    by_kid: HashMap<String, RsaKey>,
    fetched: Instant,
}

/// Verifies tokens for one pool.
#[derive(Debug)]
pub struct Verifier {
    config: PoolConfig,
    keys: RwLock<Keys>,
    /// Added to the wall clock when checking expiry (zero in a deployment;
    /// tests move it to see an expired token refused).
    clock_offset: chrono::Duration,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

/// The RSA signing keys of a JWKS document, by `kid`.
fn parse_jwks(json: &str) -> Result<HashMap<String, RsaKey>, SetupError> {
    let set: JwkSet = serde_json::from_str(json).map_err(|e| SetupError::Keys(e.to_string()))?;
    let mut keys = HashMap::new();
    for jwk in set.keys {
        let usable = jwk.kty == "RSA"
            && jwk.alg.as_deref().is_none_or(|a| a == "RS256")
            && jwk.usage.as_deref().is_none_or(|u| u == "sig");
        let (Some(kid), Some(n), Some(e)) = (jwk.kid, jwk.n, jwk.e) else {
            continue;
        };
        if !usable {
            continue;
        }
        let decode = |v: &str| {
            URL_SAFE_NO_PAD
                .decode(v)
                .map_err(|e| SetupError::Keys(format!("key {kid}: {e}")))
        };
        keys.insert(
            kid.clone(),
            RsaKey {
                n: decode(&n)?,
                e: decode(&e)?,
            },
        );
    }
    if keys.is_empty() {
        return Err(SetupError::Keys("no RS256 signing key".to_owned()));
    }
    Ok(keys)
}

async fn fetch_jwks(url: &str) -> Result<HashMap<String, RsaKey>, SetupError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| SetupError::Fetch(e.to_string()))?;
    let mut last = String::new();
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
        }
        match client.get(url).send().await {
            Ok(r) if r.status().is_success() => {
                let body = r
                    .text()
                    .await
                    .map_err(|e| SetupError::Fetch(e.to_string()))?;
                return parse_jwks(&body);
            }
            Ok(r) => last = format!("HTTP {}", r.status().as_u16()),
            Err(e) => last = e.to_string(),
        }
    }
    Err(SetupError::Fetch(last))
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// The claims optline reads. An `aud` may be a string or a list (JWT
/// allows both); Cognito's ID tokens use a string.
#[derive(Deserialize)]
struct Claims {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    token_use: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "cognito:username")]
    cognito_username: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default, rename = "cognito:groups")]
    groups: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, client: &str) -> bool {
        match self {
            Self::One(a) => a == client,
            Self::Many(list) => list.iter().any(|a| a == client),
        }
    }
}

/// A display name: printable, one line, at most 80 characters.
fn display_name(raw: &str) -> String {
    let cleaned: String = raw.chars().filter(|c| !c.is_control()).take(80).collect();
    cleaned.trim().to_owned()
}

impl Verifier {
    /// A verifier with keys given as a JWKS document.
    pub fn with_jwks(config: PoolConfig, jwks: &str) -> Result<Self, SetupError> {
        Ok(Self {
            config,
            keys: RwLock::new(Keys {
                by_kid: parse_jwks(jwks)?,
                fetched: Instant::now(),
            }),
            clock_offset: chrono::Duration::zero(),
        })
    }

    /// A verifier whose keys are fetched from the pool now.
    pub async fn fetch(config: PoolConfig) -> Result<Self, SetupError> {
        let by_kid = fetch_jwks(&config.jwks_url).await?;
        Ok(Self {
            config,
            keys: RwLock::new(Keys {
                by_kid,
                fetched: Instant::now(),
            }),
            clock_offset: chrono::Duration::zero(),
        })
    }

    /// From the environment ([`PoolConfig::from_env`]), keys fetched now.
    pub async fn from_env() -> Result<Self, SetupError> {
        Self::fetch(PoolConfig::from_env()?).await
    }

    /// The same verifier with its clock moved by `offset` (tests and drills:
    /// a token is checked as if it were presented then).
    pub fn with_clock_offset(mut self, offset: chrono::Duration) -> Self {
        self.clock_offset = offset;
        self
    }

    /// The pool this verifier accepts.
    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    fn key(&self, kid: &str) -> Option<RsaKey> {
        self.keys
            .read()
            .ok()
            .and_then(|k| k.by_kid.get(kid).cloned())
    }

    /// Refetches the keys if the last fetch is older than a minute.
    async fn refresh(&self) {
        let stale = self
            .keys
            .read()
            .map(|k| k.fetched.elapsed() >= REFETCH_EVERY)
            .unwrap_or(false);
        if !stale {
            return;
        }
        match fetch_jwks(&self.config.jwks_url).await {
            Ok(by_kid) => {
                if let Ok(mut keys) = self.keys.write() {
                    *keys = Keys {
                        by_kid,
                        fetched: Instant::now(),
                    };
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "user pool keys could not be refreshed");
                if let Ok(mut keys) = self.keys.write() {
                    keys.fetched = Instant::now();
                }
            }
        }
    }

    /// Verifies `token` now (the wall clock, not a handler's business time:
    /// expiry is a fact about the token) and returns the person it names.
    pub async fn verify(&self, token: &str) -> Result<Person, Rejected> {
        self.verify_at(token, Utc::now() + self.clock_offset).await
    }

    /// Verifies `token` as of `now`.
    pub async fn verify_at(&self, token: &str, now: DateTime<Utc>) -> Result<Person, Rejected> {
        let parsed = Parsed::split(token)?;
        if parsed.header.alg != "RS256" {
            return Err(Rejected::Algorithm);
        }
        let kid = parsed.header.kid.as_deref().ok_or(Rejected::UnknownKey)?;
        let key = match self.key(kid) {
            Some(k) => k,
            None => {
                self.refresh().await;
                self.key(kid).ok_or(Rejected::UnknownKey)?
            }
        };
        self.check(&parsed, &key, now)
    }

    /// The checks after the key is known: signature first, then claims.
    fn check(
        &self,
        parsed: &Parsed<'_>,
        key: &RsaKey,
        now: DateTime<Utc>,
    ) -> Result<Person, Rejected> {
        ring::signature::RsaPublicKeyComponents {
            n: &key.n,
            e: &key.e,
        }
        .verify(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            parsed.signed.as_bytes(),
            &parsed.signature,
        )
        .map_err(|_| Rejected::Signature)?;
        let claims = &parsed.claims;
        if claims.iss.as_deref() != Some(self.config.issuer.as_str()) {
            return Err(Rejected::Issuer);
        }
        let client_ok = |presented: bool| {
            if presented {
                Ok(())
            } else {
                Err(Rejected::Client)
            }
        };
        match claims.token_use.as_deref() {
            Some("id") => client_ok(
                claims
                    .aud
                    .as_ref()
                    .is_some_and(|a| self.config.client_ids.iter().any(|c| a.contains(c))),
            )?,
            Some("access") => client_ok(
                claims
                    .client_id
                    .as_deref()
                    .is_some_and(|c| self.config.client_ids.iter().any(|k| k == c)),
            )?,
            _ => return Err(Rejected::TokenUse),
        }
        let now = now.timestamp();
        match claims.exp {
            Some(exp) if exp > now => {}
            _ => return Err(Rejected::Expired),
        }
        if claims
            .iat
            .is_some_and(|iat| iat > now.saturating_add(ISSUED_SKEW_SECONDS))
        {
            return Err(Rejected::NotYetValid);
        }
        let subject = claims
            .sub
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_graphic()))
            .ok_or(Rejected::NoSubject)?
            .to_owned();
        let name = [
            claims.name.as_deref(),
            claims.cognito_username.as_deref(),
            claims.username.as_deref(),
        ]
        .into_iter()
        .flatten()
        .map(display_name)
        .find(|n| !n.is_empty())
        .unwrap_or_else(|| subject.clone());
        let mut groups: Vec<Group> = claims
            .groups
            .iter()
            .filter_map(|g| Group::parse(g))
            .collect();
        groups.sort();
        groups.dedup();
        Ok(Person {
            subject,
            name,
            groups,
        })
    }
}

/// A compact JWS split into its parts.
struct Parsed<'a> {
    header: Header,
    claims: Claims,
    /// `header.payload`, the signed bytes.
    signed: &'a str,
    signature: Vec<u8>,
}

impl<'a> Parsed<'a> {
    fn split(token: &'a str) -> Result<Self, Rejected> {
        let token = token.trim();
        if token.is_empty() {
            return Err(Rejected::Missing);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejected::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Rejected::Malformed);
        };
        let decode = |part: &str| {
            URL_SAFE_NO_PAD
                .decode(part)
                .map_err(|_| Rejected::Malformed)
        };
        let header: Header =
            serde_json::from_slice(&decode(h)?).map_err(|_| Rejected::Malformed)?;
        let claims: Claims =
            serde_json::from_slice(&decode(p)?).map_err(|_| Rejected::Malformed)?;
        let signed = token
            .get(..h.len() + 1 + p.len())
            .ok_or(Rejected::Malformed)?;
        Ok(Self {
            header,
            claims,
            signed,
            signature: decode(s)?,
        })
    }
}

/// The bearer token of an `Authorization` header value, if it is one.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let value = header?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
