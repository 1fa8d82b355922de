//! Keys issued at runtime through the admin API (`crate::server::admin::keys`): created,
//! listed, updated, disabled and deleted without editing the config, kept in the `[state]`
//! backend, and looked up beside the config's `[[keys]]` by [`crate::policy::auth`].
//!
//! - **Records** ([`RuntimeKey`]): `id` (given or minted, the config's key-id rule; unique
//!   among config and runtime keys), `team` (a `[[teams]]` name), the limits a `[[keys]]`
//!   stanza takes (checked by the config's own rules, `crate::config::validate::rules`),
//!   `expires_at`, `disabled`, `metadata` (a JSON object of at most [`MAX_METADATA_BYTES`]),
//!   `created_at`, `updated_at`, and the secret's SHA-256. The secret (`sk-sy-…`, 32 random
//!   bytes) is made by the gateway and returned once, by the create; it is never stored, and
//!   its hash is shown as an 8-hex-digit prefix at most.
//! - **Stores**: `memory` → a JSON file (`[state] keys_file`, written to a temporary file
//!   and renamed, mode 0600; [`memory`]); `redis` → a hash per key, a set of ids and a
//!   generation counter, single-key commands only ([`redis`]). Both survive a restart.
//! - **Lookup**: an in-memory index (an `ArcSwap`, rebuilt from the store after every change
//!   and whenever the store's generation moves), so a request never waits on the store. A
//!   key whose team left the config is refused (403) until the team is back.
//! - **Revocation everywhere**: a change publishes on [`redis::CHANNEL`], to which every
//!   instance subscribes and reloads at once; as a backstop each instance also polls the
//!   generation counter every [`POLL_EVERY`] and reloads when it moved (the poll alone keeps
//!   the bound). A DELETE or a PATCH `{"disabled": true}` is refused by every instance within a
//!   second.

pub(crate) mod memory;
pub(crate) mod redis;

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::snapshot::Snapshot;
use crate::config::validate::rules;
use crate::config::{Config, Key, Limits, State};
use crate::error::GatewayError;
use crate::policy::auth::Principal;

/// How often each instance asks the Redis store whether the keys changed.
pub const POLL_EVERY: Duration = Duration::from_millis(200);
/// The largest `metadata` object, serialized.
pub const MAX_METADATA_BYTES: usize = 4096;

/// One key issued at runtime, as stored (never its secret).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeKey {
    pub id: String,
    pub team: String,
    /// SHA-256 of the secret, 64 hex digits.
    pub sha256: String,
    #[serde(default)]
    pub limits: KeyLimits,
    /// RFC 3339, as given (checked).
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub metadata: Map<String, Value>,
    pub created_at: String,
    pub updated_at: String,
}

/// The limits of a `[[keys]]` stanza, by the same names; `None`: no limit of the key's own.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpm: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_day: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd_per_month: Option<f64>,
}

impl From<&KeyLimits> for Limits {
    fn from(l: &KeyLimits) -> Limits {
        Limits {
            rpm: l.rpm,
            tpm: l.tpm,
            max_concurrent: l.max_concurrent,
            tokens_per_day: l.tokens_per_day,
            usd_per_month: l.usd_per_month,
        }
    }
}

impl RuntimeKey {
    /// What list and read show: everything but the hash, of which only 8 hex digits.
    pub fn public(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "team": self.team,
            "limits": self.limits,
            "expires_at": self.expires_at,
            "disabled": self.disabled,
            "metadata": self.metadata,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "sha256_prefix": self.sha256.get(..8).unwrap_or(""),
        })
    }
}

/// A refusal of the admin key API: its status, `type` and message (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub kind: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn invalid(field: &str, reason: impl std::fmt::Display) -> ApiError {
        ApiError {
            status: 400,
            kind: "invalid_request_error",
            message: format!("{field}: {reason}"),
        }
    }
    pub fn not_found(id: &str) -> ApiError {
        ApiError {
            status: 404,
            kind: "not_found_error",
            message: format!("no runtime key with id {id:?}"),
        }
    }
    pub fn conflict(message: String) -> ApiError {
        ApiError {
            status: 409,
            kind: "conflict_error",
            message,
        }
    }
    pub fn unavailable(reason: impl std::fmt::Display) -> ApiError {
        ApiError {
            status: 503,
            kind: "unavailable_error",
            message: format!("the key store cannot be reached: {reason}"),
        }
    }
    /// `{"error":{"type","message"}}`.
    pub fn body(&self) -> Vec<u8> {
        serde_json::json!({"error": {"type": self.kind, "message": self.message}})
            .to_string()
            .into_bytes()
    }
}

// --- the index the request path reads -------------------------------------------------------

/// One indexed key: the principal's key and the name of its team.
struct Entry {
    key: Arc<Key>,
    team: String,
}

/// SHA-256 of a secret → its key.
#[derive(Default)]
struct Index {
    by_hash: HashMap<[u8; 32], Entry>,
}

static INDEX: LazyLock<ArcSwap<Index>> = LazyLock::new(|| ArcSwap::from_pointee(Index::default()));

/// The runtime key of `digest` (a presented secret's SHA-256), if one is indexed: its
/// principal, or why it is refused (disabled, expired, its team gone). `None`: no such key.
pub fn authenticate(
    config: &Config,
    digest: &[u8; 32],
    now: SystemTime,
) -> Option<Result<Principal, GatewayError>> {
    let index = INDEX.load();
    let entry = index
        .by_hash
        .get(digest)
        .filter(|e| bool::from(e.key.sha256.ct_eq(digest)))?;
    Some(principal(config, entry, now))
}

fn principal(config: &Config, entry: &Entry, now: SystemTime) -> Result<Principal, GatewayError> {
    let key = &entry.key;
    if key.disabled {
        return Err(GatewayError::Authentication("this API key is disabled"));
    }
    if key.expires_at.is_some_and(|at| now >= at) {
        return Err(GatewayError::Authentication("this API key has expired"));
    }
    let team = config
        .teams
        .get(key.team)
        .filter(|t| t.name == entry.team)
        .or_else(|| config.teams.iter().find(|t| t.name == entry.team))
        .ok_or_else(|| {
            GatewayError::Permission(format!(
                "this API key's team {:?} is not in the gateway's config",
                entry.team
            ))
        })?;
    Ok(Principal {
        key: Arc::clone(key),
        team: Arc::clone(team),
        user: None,
        user_limits: None,
    })
}

/// Indexes `records` against `config` (team indices) and returns the keys for the limiter.
fn publish(config: &Config, records: &[RuntimeKey]) -> Vec<Arc<Key>> {
    let mut by_hash = HashMap::with_capacity(records.len());
    let mut keys = Vec::with_capacity(records.len());
    for r in records {
        let Some(key) = key_of(config, r) else {
            tracing::warn!(key_id = %r.id, "a stored runtime key is malformed: skipped");
            continue;
        };
        let key = Arc::new(key);
        keys.push(Arc::clone(&key));
        by_hash.insert(
            key.sha256,
            Entry {
                key,
                team: r.team.clone(),
            },
        );
    }
    INDEX.store(Arc::new(Index { by_hash }));
    keys
}

/// The config-shaped key of a record (`team` indexes `config.teams`, or is past its end when
/// the team is gone); `None` for a malformed record.
fn key_of(config: &Config, r: &RuntimeKey) -> Option<Key> {
    let mut sha256 = [0u8; 32];
    hex::decode_to_slice(&r.sha256, &mut sha256).ok()?;
    let expires_at = match &r.expires_at {
        None => None,
        Some(t) => Some(rules::rfc3339(t).ok()?),
    };
    let team = config
        .teams
        .iter()
        .position(|t| t.name == r.team)
        .unwrap_or(usize::MAX);
    Some(Key {
        id: r.id.clone(),
        team,
        sha256,
        limits: Limits::from(&r.limits),
        expires_at,
        disabled: r.disabled,
    })
}

// --- the store --------------------------------------------------------------------------------

/// The `[state]` backend's store of runtime keys.
pub enum Store {
    File(memory::FileStore),
    Redis(Box<redis::RedisStore>),
}

/// Called with the runtime keys after each reload of the index (the limiter's sync).
pub type OnChange = Box<dyn Fn(&Config, Vec<Arc<Key>>) + Send + Sync>;

/// The runtime keys of this process: the store, and what to tell when they change.
pub struct RuntimeKeys {
    store: Store,
    /// The config in force (teams, the config's key ids).
    snapshot: Arc<Snapshot>,
    on_change: OnChange,
}

impl RuntimeKeys {
    /// Opens the store of `config`'s `[state]` (memory: reads the file; Redis: makes the
    /// client) and indexes what it holds. Redis: the first load and the poller run on a
    /// thread of their own; this waits up to 3 s for the first load.
    pub fn open(snapshot: &Arc<Snapshot>, on_change: OnChange) -> Result<Arc<RuntimeKeys>, String> {
        let config = snapshot.load();
        let store = match &config.state {
            State::Memory { .. } => {
                Store::File(memory::FileStore::open(&config.runtime_keys.keys_file)?)
            }
            State::Redis(state) => Store::Redis(Box::new(redis::RedisStore::new(state)?)),
        };
        let keys = Arc::new(RuntimeKeys {
            store,
            snapshot: Arc::clone(snapshot),
            on_change,
        });
        match &keys.store {
            Store::File(file) => keys.publish(&config, &file.all()),
            Store::Redis(_) => redis::start_poller(&keys)?,
        }
        Ok(keys)
    }

    /// Indexes `records` and hands them to the limiter.
    pub(crate) fn publish(&self, config: &Config, records: &[RuntimeKey]) {
        let keys = publish(config, records);
        (self.on_change)(config, keys);
    }

    /// Every record, by id.
    pub async fn list(&self) -> Result<Vec<RuntimeKey>, ApiError> {
        let mut all = match &self.store {
            Store::File(f) => f.all(),
            Store::Redis(r) => r.all().await?,
        };
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    pub async fn get(&self, id: &str) -> Result<RuntimeKey, ApiError> {
        let found = match &self.store {
            Store::File(f) => f.get(id),
            Store::Redis(r) => r.get(id).await?,
        };
        found.ok_or_else(|| ApiError::not_found(id))
    }

    /// Creates a key from `body` (a JSON object, see [`parse_create`]); the record and its
    /// secret (to show once).
    pub async fn create(&self, body: &[u8]) -> Result<(RuntimeKey, String), ApiError> {
        let config = self.snapshot.load();
        let new = parse_create(&config, body)?;
        if config.keys.iter().any(|k| k.id == new.id) {
            return Err(ApiError::conflict(format!(
                "id {:?} is the id of a key of the config",
                new.id
            )));
        }
        let (secret, sha256) = crate::policy::auth::new_secret();
        let now = now_rfc3339();
        let record = RuntimeKey {
            id: new.id,
            team: new.team,
            sha256,
            limits: new.limits,
            expires_at: new.expires_at,
            disabled: false,
            metadata: new.metadata,
            created_at: now.clone(),
            updated_at: now,
        };
        match &self.store {
            Store::File(f) => f.insert(&record)?,
            Store::Redis(r) => r.insert(&record).await?,
        }
        self.reload().await;
        Ok((record, secret))
    }

    /// Applies `body` (see [`apply_patch`]) to the key `id`.
    pub async fn update(&self, id: &str, body: &[u8]) -> Result<RuntimeKey, ApiError> {
        let patch = parse_object(body)?;
        let mut record = self.get(id).await?;
        apply_patch(&mut record, &patch)?;
        record.updated_at = now_rfc3339();
        match &self.store {
            Store::File(f) => f.replace(&record)?,
            Store::Redis(r) => r.replace(&record).await?,
        }
        self.reload().await;
        Ok(record)
    }

    /// Deletes the key `id`; the deleted record.
    pub async fn delete(&self, id: &str) -> Result<RuntimeKey, ApiError> {
        let record = self.get(id).await?;
        let gone = match &self.store {
            Store::File(f) => f.remove(id)?,
            Store::Redis(r) => r.remove(id).await?,
        };
        if !gone {
            return Err(ApiError::not_found(id));
        }
        self.reload().await;
        Ok(record)
    }

    /// Rebuilds the index from the store (after a change, and after a config reload).
    pub async fn reload(&self) {
        let config = self.snapshot.load();
        match &self.store {
            Store::File(f) => self.publish(&config, &f.all()),
            Store::Redis(r) => match r.all().await {
                Ok(all) => self.publish(&config, &all),
                Err(e) => tracing::warn!(error = %e.message, "cannot reload the runtime keys"),
            },
        }
    }

    /// After a config reload: the team indices and the limiter's keys follow the new config.
    pub fn resync(&self, config: &Config) {
        let records = match &self.store {
            Store::File(f) => f.all(),
            Store::Redis(r) => r.last_loaded(),
        };
        self.publish(config, &records);
    }

    /// The Redis store, for its poller.
    fn redis(&self) -> Option<&redis::RedisStore> {
        match &self.store {
            Store::Redis(r) => Some(r),
            Store::File(_) => None,
        }
    }
}

/// `now` as RFC 3339 (UTC, seconds).
fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    jiff::Timestamp::from_second(now.as_second())
        .unwrap_or(now)
        .to_string()
}

// --- request bodies ---------------------------------------------------------------------------

/// A checked create request.
struct NewKey {
    id: String,
    team: String,
    limits: KeyLimits,
    expires_at: Option<String>,
    metadata: Map<String, Value>,
}

/// The fields a create takes; anything else is refused by name.
const CREATE_FIELDS: &[&str] = &["id", "team", "limits", "expires_at", "metadata"];
/// The fields an update takes.
const PATCH_FIELDS: &[&str] = &["limits", "disabled", "expires_at", "metadata"];

/// A body that must be one JSON object.
fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::invalid("body", "must be a JSON object")),
        Err(e) => Err(ApiError::invalid("body", format!("not valid JSON: {e}"))),
    }
}

/// Refuses a field not in `allowed`, naming it.
fn known_fields(body: &Map<String, Value>, allowed: &[&str]) -> Result<(), ApiError> {
    match body.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::invalid(
            k,
            format!("unknown field (expected one of {})", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// `{"team", "id"?, "limits"?, "expires_at"?, "metadata"?}`: `team` names a `[[teams]]`
/// entry; `id` follows the config's key-id rule (absent: `rk-` and 16 random hex digits).
fn parse_create(config: &Config, body: &[u8]) -> Result<NewKey, ApiError> {
    let body = parse_object(body)?;
    known_fields(&body, CREATE_FIELDS)?;
    let team = match body.get("team") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err(ApiError::invalid("team", "must be a string")),
        None => return Err(ApiError::invalid("team", "is required")),
    };
    team_exists(config, &team)?;
    let id = match body.get("id") {
        None | Some(Value::Null) => minted_id(),
        Some(Value::String(id)) => {
            rules::key_id(id).map_err(|r| ApiError::invalid("id", r))?;
            id.clone()
        }
        Some(_) => return Err(ApiError::invalid("id", "must be a string")),
    };
    Ok(NewKey {
        id,
        team,
        limits: limits(body.get("limits"))?,
        expires_at: expires_at(body.get("expires_at"))?,
        metadata: metadata(body.get("metadata"))?,
    })
}

fn team_exists(config: &Config, team: &str) -> Result<(), ApiError> {
    if config.teams.iter().any(|t| t.name == team) {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "team",
            format!("no team named {team:?} in the config"),
        ))
    }
}

/// `rk-` and 16 random hex digits.
fn minted_id() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("rk-{}", hex::encode(bytes))
}

/// Applies an update: `limits` replaces the key's limits, `disabled`, `expires_at` (null:
/// none), `metadata` (replaced).
fn apply_patch(record: &mut RuntimeKey, patch: &Map<String, Value>) -> Result<(), ApiError> {
    known_fields(patch, PATCH_FIELDS)?;
    if let Some(l) = patch.get("limits") {
        record.limits = limits(Some(l))?;
    }
    match patch.get("disabled") {
        None => {}
        Some(Value::Bool(b)) => record.disabled = *b,
        Some(_) => return Err(ApiError::invalid("disabled", "must be true or false")),
    }
    if patch.contains_key("expires_at") {
        record.expires_at = expires_at(patch.get("expires_at"))?;
    }
    if let Some(m) = patch.get("metadata") {
        record.metadata = metadata(Some(m))?;
    }
    Ok(())
}

/// `limits`: an object of `rpm`, `tpm`, `max_concurrent`, `tokens_per_day` (positive
/// integers) and `usd_per_month` (a number >= 0), the config's rules; absent or null: none.
fn limits(value: Option<&Value>) -> Result<KeyLimits, ApiError> {
    let map = match value {
        None | Some(Value::Null) => return Ok(KeyLimits::default()),
        Some(Value::Object(m)) => m,
        Some(_) => return Err(ApiError::invalid("limits", "must be an object")),
    };
    known_fields_of(
        map,
        "limits",
        &[
            "rpm",
            "tpm",
            "max_concurrent",
            "tokens_per_day",
            "usd_per_month",
        ],
    )?;
    let int = |name: &str| -> Result<Option<i64>, ApiError> {
        match map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| ApiError::invalid(&format!("limits.{name}"), "must be an integer")),
        }
    };
    let u32_field = |name: &str| -> Result<Option<u32>, ApiError> {
        int(name)?
            .map(|v| {
                rules::positive_u32(v).map_err(|r| ApiError::invalid(&format!("limits.{name}"), r))
            })
            .transpose()
    };
    let tokens_per_day = int("tokens_per_day")?
        .map(|v| {
            rules::positive(v, u64::MAX).map_err(|r| ApiError::invalid("limits.tokens_per_day", r))
        })
        .transpose()?;
    let usd_per_month = match map.get("usd_per_month") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let usd = v
                .as_f64()
                .ok_or_else(|| ApiError::invalid("limits.usd_per_month", "must be a number"))?;
            Some(rules::money(usd).map_err(|r| ApiError::invalid("limits.usd_per_month", r))?)
        }
    };
    Ok(KeyLimits {
        rpm: u32_field("rpm")?,
        tpm: u32_field("tpm")?,
        max_concurrent: u32_field("max_concurrent")?,
        tokens_per_day,
        usd_per_month,
    })
}

fn known_fields_of(map: &Map<String, Value>, at: &str, allowed: &[&str]) -> Result<(), ApiError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ApiError::invalid(
            &format!("{at}.{k}"),
            format!("unknown field (expected one of {})", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// `expires_at`: an RFC 3339 date-time (the config's rule), or null: none.
fn expires_at(value: Option<&Value>) -> Result<Option<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => {
            rules::rfc3339(t).map_err(|r| ApiError::invalid("expires_at", r))?;
            Ok(Some(t.trim().to_string()))
        }
        Some(_) => Err(ApiError::invalid(
            "expires_at",
            "must be an RFC 3339 date-time string such as \"2027-01-01T00:00:00Z\"",
        )),
    }
}

/// `metadata`: a JSON object of at most [`MAX_METADATA_BYTES`] serialized; null: empty.
fn metadata(value: Option<&Value>) -> Result<Map<String, Value>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => {
            let size = serde_json::to_vec(m).map_or(usize::MAX, |v| v.len());
            if size > MAX_METADATA_BYTES {
                return Err(ApiError::invalid(
                    "metadata",
                    format!("is {size} bytes: at most {MAX_METADATA_BYTES}"),
                ));
            }
            Ok(m.clone())
        }
        Some(_) => Err(ApiError::invalid("metadata", "must be a JSON object")),
    }
}

/// SHA-256 of `secret`, hex (what a record stores).
pub fn sha256_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        crate::config::load_str("[[teams]]\nname = \"t\"\n", std::path::Path::new("t.toml"))
            .unwrap()
    }

    #[test]
    fn create_bodies_name_the_bad_field() {
        let c = config();
        for (body, field) in [
            (r#"{"team":"t","limits":{"rpm":0}}"#, "limits.rpm"),
            (
                r#"{"team":"t","limits":{"usd_per_month":-1}}"#,
                "limits.usd_per_month",
            ),
            (r#"{"team":"t","limits":{"rmp":1}}"#, "limits.rmp"),
            (r#"{"team":"nobody"}"#, "team"),
            (r#"{}"#, "team"),
            (r#"{"team":"t","id":"a b"}"#, "id"),
            (r#"{"team":"t","expires_at":"tomorrow"}"#, "expires_at"),
            (r#"{"team":"t","metadata":[1]}"#, "metadata"),
            (r#"{"team":"t","colour":"red"}"#, "colour"),
            (r#"[1]"#, "body"),
            (r#"{"team":"t""#, "body"),
        ] {
            let e = parse_create(&c, body.as_bytes()).err().unwrap();
            assert_eq!(e.status, 400, "{body}");
            assert!(
                e.message.starts_with(&format!("{field}: ")),
                "{body}: {}",
                e.message
            );
        }
        let big = format!(
            r#"{{"team":"t","metadata":{{"x":"{}"}}}}"#,
            "a".repeat(5000)
        );
        assert!(parse_create(&c, big.as_bytes()).is_err());
        let ok = parse_create(
            &c,
            br#"{"team":"t","limits":{"rpm":1,"usd_per_month":2.5}}"#,
        )
        .ok()
        .unwrap();
        assert!(ok.id.starts_with("rk-"));
        assert_eq!(ok.limits.rpm, Some(1));
    }
}
