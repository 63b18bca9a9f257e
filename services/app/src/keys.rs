//! API keys: making them, checking them, revoking them.
//!
//! A key reads `ick_{key_id}_{secret}`. The key id is public (it names the key in lists
//! and logs); the secret is 32 random bytes, shown once and stored only as its SHA-256
//! hash. A slow password hash buys nothing for 256-bit random secrets, and checking a key
//! must be cheap enough for every request.
//!
//! Checked keys are cached for a few seconds, so a busy gateway does not read the
//! database on every request. A key revoked through this process stops working at once;
//! one revoked through another replica stops within [`KEY_CACHE_TTL`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iotcane_model::Tenant;
use iotcane_store::{KeyRecord, KnowledgeStore, StoreError};
use sha2::{Digest, Sha256};

/// How long a checked key is trusted without asking the database again.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

const PREFIX: &str = "ick_";

/// What a key may do. Each role includes the ones before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read resources, query, subscribe to events.
    Read,
    /// Also create, change and delete resources.
    Write,
    /// Also SPARQL updates and key management.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role `{other}`; expected read, write or admin"
            )),
        }
    }
}

/// A caller whose key checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub key_name: String,
    pub tenant: Tenant,
    pub role: Role,
}

impl Principal {
    pub fn may(&self, needed: Role) -> bool {
        self.role >= needed
    }
}

/// A key as listed: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyInfo {
    pub key_id: String,
    pub tenant: String,
    pub role: String,
    pub name: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

impl From<KeyRecord> for KeyInfo {
    fn from(r: KeyRecord) -> Self {
        Self {
            key_id: r.key_id,
            tenant: r.tenant,
            role: r.role,
            name: r.name,
            created_ms: r.created_ms,
            revoked_ms: r.revoked_ms,
        }
    }
}

/// A freshly made key: the only time its secret is known.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub info: KeyInfo,
    /// The whole key, `ick_{key_id}_{secret}`.
    pub token: String,
}

/// Why a key was not accepted. Deliberately coarse: a caller learns nothing about which
/// part of a presented key was wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("the API key is not valid (unknown, malformed or revoked)")]
    Invalid,
    #[error("key name must be 1 to 100 printable characters")]
    BadName,
    #[error(
        "a configured key needs an id of at least 4 and a secret of at least 32 hex digits: ick_<id>_<secret>"
    )]
    Weak,
    #[error(
        "a key with id {0} exists with another secret, tenant or role; revoke it or choose another id"
    )]
    Conflicting(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Key id → when it was read and what the database said (`None`: no such key).
type KeyCache = HashMap<String, (Instant, Option<KeyRecord>)>;

/// Issues and checks keys; a cheap `Clone` handle.
#[derive(Debug, Clone)]
pub struct Keys {
    store: KnowledgeStore,
    cache: Arc<Mutex<KeyCache>>,
}

impl Keys {
    pub fn new(store: KnowledgeStore) -> Self {
        Self {
            store,
            cache: Arc::default(),
        }
    }

    /// Makes a key for `tenant` with `role`.
    pub async fn create(
        &self,
        tenant: &Tenant,
        role: Role,
        name: &str,
    ) -> Result<NewKey, KeyError> {
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(KeyError::BadName);
        }
        let key_id = hex(&random_bytes::<6>());
        let secret = hex(&random_bytes::<32>());
        let record = KeyRecord {
            key_id: key_id.clone(),
            tenant: tenant.to_string(),
            role: role.as_str().to_owned(),
            name: name.to_owned(),
            secret_hash: hash(&secret),
            created_ms: crate::now_ms(),
            revoked_ms: None,
        };
        self.store.insert_key(&record).await?;
        Ok(NewKey {
            token: format!("{PREFIX}{key_id}_{secret}"),
            info: record.into(),
        })
    }

    /// Stores a key given in configuration (its token chosen by the operator), unless a
    /// key with its id exists already.
    pub async fn ensure(
        &self,
        tenant: &Tenant,
        role: Role,
        name: &str,
        token: &str,
    ) -> Result<KeyInfo, KeyError> {
        let (key_id, secret) = split(token).ok_or(KeyError::Invalid)?;
        // A key chosen by an operator must be as hard to guess as a generated one.
        if secret.len() < 32 || key_id.len() < 4 {
            return Err(KeyError::Weak);
        }
        if let Some(existing) = self.store.key(key_id).await? {
            let same = constant_time_eq(&existing.secret_hash, &hash(secret))
                && existing.tenant == tenant.as_str()
                && existing.role == role.as_str();
            if !same {
                return Err(KeyError::Conflicting(key_id.to_owned()));
            }
            return Ok(existing.into());
        }
        let record = KeyRecord {
            key_id: key_id.to_owned(),
            tenant: tenant.to_string(),
            role: role.as_str().to_owned(),
            name: name.to_owned(),
            secret_hash: hash(secret),
            created_ms: crate::now_ms(),
            revoked_ms: None,
        };
        self.store.insert_key(&record).await?;
        Ok(record.into())
    }

    /// Who a presented key belongs to.
    pub async fn check(&self, token: &str) -> Result<Principal, KeyError> {
        let (key_id, secret) = split(token).ok_or(KeyError::Invalid)?;
        let record = self.lookup(key_id).await?.ok_or(KeyError::Invalid)?;
        if record.revoked_ms.is_some() || !constant_time_eq(&hash(secret), &record.secret_hash) {
            return Err(KeyError::Invalid);
        }
        Ok(Principal {
            key_id: record.key_id,
            key_name: record.name,
            tenant: record.tenant.parse().map_err(|_| KeyError::Invalid)?,
            role: record.role.parse().map_err(|_| KeyError::Invalid)?,
        })
    }

    async fn lookup(&self, key_id: &str) -> Result<Option<KeyRecord>, KeyError> {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, record)) = cache.get(key_id)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(record.clone());
        }
        let record = self.store.key(key_id).await?;
        if let Ok(mut cache) = self.cache.lock() {
            // Bounded: unknown ids are cached too (so guessing costs no queries), but a
            // flood of them must not grow the map without end.
            if cache.len() >= 10_000 {
                cache.retain(|_, (at, _)| at.elapsed() < KEY_CACHE_TTL);
            }
            if cache.len() < 10_000 {
                cache.insert(key_id.to_owned(), (Instant::now(), record.clone()));
            }
        }
        Ok(record)
    }

    /// One tenant's keys, or every key.
    pub async fn list(&self, tenant: Option<&Tenant>) -> Result<Vec<KeyInfo>, KeyError> {
        Ok(self
            .store
            .keys(tenant)
            .await?
            .into_iter()
            .map(KeyInfo::from)
            .collect())
    }

    /// Revokes one of a tenant's keys; false when it has no such live key.
    pub async fn revoke(&self, tenant: &Tenant, key_id: &str) -> Result<bool, KeyError> {
        let revoked = self.store.revoke_key(tenant, key_id).await?;
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(key_id);
        }
        Ok(revoked)
    }

    /// Whether no key exists at all (a new installation).
    pub async fn none_yet(&self) -> Result<bool, KeyError> {
        Ok(self.store.key_count().await? == 0)
    }
}

/// `ick_{key_id}_{secret}` → (key_id, secret).
fn split(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let (key_id, secret) = rest.split_once('_')?;
    let hexish =
        |s: &str| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hexish(key_id) && hexish(secret)).then_some((key_id, secret))
}

fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    // The operating system's generator failing is not something to recover from.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the operating system's random generator failed");
    bytes
}

/// `N` random bytes from the operating system, as lowercase hex: for secrets.
pub fn random_hex<const N: usize>() -> String {
    hex(&random_bytes::<N>())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_into_id_and_secret() {
        assert_eq!(split("ick_ab12_ffee"), Some(("ab12", "ffee")));
        assert_eq!(split("ick_ab12"), None);
        assert_eq!(split("Bearer ick_ab12_ff"), None);
        assert_eq!(split("ick_zz_ff"), None);
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin > Role::Write && Role::Write > Role::Read);
        assert_eq!("write".parse::<Role>(), Ok(Role::Write));
        assert!("root".parse::<Role>().is_err());
    }
}
