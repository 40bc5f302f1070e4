//! Users, password hashing (argon2id) and authentication (SPEC sections 2 "Users", 6, 7).
//!
//! Users live in the `meta` column family under `user/<id>`. The quoted name in
//! `CREATE USER 'alice'` is the user id. `root` (role `system`) is created on first start without
//! a password; while it has none, root may connect from a loopback address without one.
//!
//! A verified Basic credential is cached for [`CREDENTIAL_CACHE_SECS`] under the user id and a
//! keyed hash of the presented password (never the password), so a client sending Basic auth
//! on every request pays for one argon2 verification, not one per request. The entry holds the
//! user's credential version and is dropped by every change of the user record; a wrong password
//! is never cached and is verified the slow way every time. Login tokens are in [`token`].
//!
//! May import: the ground floor and `storage/`. Never `catalog/`, the shared state or anything above.

pub mod token;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use blake2::Blake2bMac;
use blake2::digest::Mac;
use blake2::digest::consts::U32;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::session::{Role, Session};
use crate::storage::{CF_META, Store};

pub use crate::session::ROOT_USER;

/// A caller the server authenticated: its session and, for a token, when the token expires
/// (seconds since the Unix epoch).
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Who it is.
    pub session: Session,
    /// When its token expires (None for a password).
    pub expires_at: Option<u64>,
}

/// One user record. `password_hash` never leaves this module's callers unfiltered:
/// `system.users` does not have the column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    /// The id (the quoted name of CREATE USER).
    pub user_id: String,
    /// Display name (same as the id).
    pub username: String,
    /// argon2id PHC string; None = no password set.
    pub password_hash: Option<String>,
    /// Role.
    pub role: Role,
    /// Optional e-mail.
    pub email: Option<String>,
    /// ms since the Unix epoch.
    pub created_at: i64,
    /// ms since the Unix epoch.
    pub updated_at: i64,
    /// Set by DROP USER (soft delete); login is refused afterwards.
    pub deleted_at: Option<i64>,
    /// The credential version: raised by [`Users::put`] whenever the password or role changes
    /// or the user is dropped. Tokens and cached credentials of an older version stop working.
    #[serde(default)]
    pub auth_version: u64,
}

/// How long a verified Basic credential is cached, in seconds.
pub const CREDENTIAL_CACHE_SECS: u64 = 60;

/// Most cached credentials at once; when full, expired entries go first, then everything.
const CREDENTIAL_CACHE_ENTRIES: usize = 10_000;

/// A verified credential: the keyed hash of the password, the credential version it was
/// verified against, and when the entry expires.
#[derive(Debug, Clone)]
struct Cached {
    digest: [u8; 32],
    version: u64,
    expires: Instant,
}

/// The verified-credential cache (see the module docs).
struct CredentialCache {
    /// Random per process: a digest is useless outside it.
    key: [u8; 32],
    entries: Mutex<HashMap<String, Cached>>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CredentialCache")
    }
}

impl CredentialCache {
    fn new() -> CredentialCache {
        use argon2::password_hash::rand_core::RngCore;
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        CredentialCache {
            key,
            entries: Mutex::default(),
        }
    }

    fn digest(&self, user_id: &str, password: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        if let Ok(mut mac) = <Blake2bMac<U32> as Mac>::new_from_slice(&self.key) {
            mac.update(user_id.as_bytes());
            mac.update(&[0]);
            mac.update(password.as_bytes());
            out.copy_from_slice(&mac.finalize().into_bytes());
        }
        out
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True if `digest` was verified for `user` at credential version `version` and has not expired.
    fn hit(&self, user: &str, digest: &[u8; 32], version: u64) -> bool {
        self.entries().get(user).is_some_and(|c| {
            c.version == version && c.expires > Instant::now() && &c.digest == digest
        })
    }

    fn insert(&self, user: &str, digest: [u8; 32], version: u64) {
        let now = Instant::now();
        let mut entries = self.entries();
        if entries.len() >= CREDENTIAL_CACHE_ENTRIES {
            entries.retain(|_, c| c.expires > now);
            if entries.len() >= CREDENTIAL_CACHE_ENTRIES {
                entries.clear();
            }
        }
        let expires = now
            .checked_add(Duration::from_secs(CREDENTIAL_CACHE_SECS))
            .unwrap_or(now);
        entries.insert(
            user.to_string(),
            Cached {
                digest,
                version,
                expires,
            },
        );
    }

    fn forget(&self, user: &str) {
        self.entries().remove(user);
    }
}

/// Checks a user id: `^[a-z][a-z0-9_-]*$`, at most 64 characters.
///
/// # Errors
/// [`Error::InvalidSql`] explaining the rule.
pub fn validate_user_id(id: &str) -> Result<()> {
    let mut chars = id.chars();
    let ok = id.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSql(format!(
            "invalid user id '{id}': must match ^[a-z][a-z0-9_-]*$ and be at most 64 characters"
        )))
    }
}

/// Hashes a password with argon2id and a random salt.
///
/// # Errors
/// [`Error::InvalidParameter`] for an empty password.
pub fn hash_password(password: &str) -> Result<String> {
    if password.is_empty() {
        return Err(Error::InvalidParameter("password must not be empty".into()));
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
}

/// A hash checked against when the user does not exist (see `Users::check_credentials`).
static NO_SUCH_USER_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password("no such user").unwrap_or_default());

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

fn user_key(id: &str) -> Vec<u8> {
    format!("user/{id}").into_bytes()
}

/// The user directory.
#[derive(Debug, Clone)]
pub struct Users {
    store: Arc<Store>,
    cache: Arc<CredentialCache>,
}

/// True when `new` changes what authenticates `old`: the password, the role, or being dropped.
fn credentials_differ(old: &UserRecord, new: &UserRecord) -> bool {
    old.password_hash != new.password_hash
        || old.role != new.role
        || old.deleted_at.is_some() != new.deleted_at.is_some()
}

impl Users {
    /// Opens the directory, creating `root` if missing and applying `root_password` if given.
    ///
    /// # Errors
    /// Storage failures and unreadable records.
    pub fn open(store: Arc<Store>, root_password: Option<&str>) -> Result<Users> {
        let users = Users {
            store,
            cache: Arc::new(CredentialCache::new()),
        };
        let now = crate::ids::now_millis();
        let mut root = match users.get(ROOT_USER)? {
            Some(r) => r,
            None => UserRecord {
                user_id: ROOT_USER.into(),
                username: ROOT_USER.into(),
                password_hash: None,
                role: Role::System,
                email: None,
                created_at: now,
                updated_at: now,
                deleted_at: None,
                auth_version: 0,
            },
        };
        if let Some(p) = root_password
            && !root
                .password_hash
                .as_deref()
                .is_some_and(|h| verify_password(p, h))
        {
            root.password_hash = Some(hash_password(p)?);
            root.updated_at = now;
        }
        users.put(&root)?;
        Ok(users)
    }

    /// One user (deleted ones included).
    pub fn get(&self, id: &str) -> Result<Option<UserRecord>> {
        match self.store.get(CF_META, &user_key(id))? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    /// One live (not dropped) user, or an error saying it does not exist.
    pub fn require_live(&self, id: &str) -> Result<UserRecord> {
        match self.get(id)? {
            Some(u) if u.deleted_at.is_none() => Ok(u),
            _ => Err(Error::InvalidParameter(format!(
                "user '{id}' does not exist"
            ))),
        }
    }

    /// Writes a user record. When it changes the password, the role or drops the user, the
    /// credential version is raised (ending the user's tokens); any change forgets the user's
    /// cached credential.
    ///
    /// # Errors
    /// Storage failures.
    pub fn put(&self, u: &UserRecord) -> Result<()> {
        let mut u = u.clone();
        if let Some(old) = self.get(&u.user_id)? {
            u.auth_version = old.auth_version;
            if credentials_differ(&old, &u) {
                u.auth_version = old.auth_version.saturating_add(1);
            }
        }
        self.store.put_meta(&user_key(&u.user_id), &u)?;
        self.cache.forget(&u.user_id);
        Ok(())
    }

    /// Every user, ordered by id.
    pub fn list(&self) -> Result<Vec<UserRecord>> {
        self.store
            .scan_prefix(CF_META, b"user/")?
            .into_iter()
            .map(|(_, v)| Ok(serde_json::from_slice(&v)?))
            .collect()
    }

    /// Authenticates a username/password pair.
    ///
    /// `root` without a password set is accepted only when `loopback` is true (any password).
    ///
    /// # Errors
    /// [`Error::Unauthorized`] for an unknown or dropped user or a wrong password (one message for
    /// all, so the response does not reveal which).
    pub fn authenticate(&self, username: &str, password: &str, loopback: bool) -> Result<Session> {
        self.verify_credentials(username, password, loopback)
            .map(|u| Session::new(u.user_id, u.role))
    }

    /// [`Users::authenticate`], returning the whole record. A password verified in the last
    /// [`CREDENTIAL_CACHE_SECS`] at the same credential version is accepted from the cache.
    ///
    /// # Errors
    /// As [`Users::authenticate`].
    pub fn verify_credentials(
        &self,
        username: &str,
        password: &str,
        loopback: bool,
    ) -> Result<UserRecord> {
        self.check_credentials(username, password, loopback, true)
            .unwrap_or_else(|| Err(Error::Internal("password check skipped".into())))
    }

    /// [`Users::authenticate`] when it needs no password hashing — an unknown or dropped user,
    /// root without a password, a password verified in the last [`CREDENTIAL_CACHE_SECS`] — so
    /// it is cheap enough for an async worker; `None` when only an argon2 verification (tens of
    /// milliseconds of CPU, 19 MiB) can tell: run [`Users::authenticate`] on a blocking thread.
    ///
    /// # Errors
    /// As [`Users::authenticate`].
    pub fn authenticate_cached(
        &self,
        username: &str,
        password: &str,
        loopback: bool,
    ) -> Option<Result<Session>> {
        self.check_credentials(username, password, loopback, false)
            .map(|r| r.map(|u| Session::new(u.user_id, u.role)))
    }

    /// The credential check; with `may_hash` false, `None` instead of an argon2 verification.
    fn check_credentials(
        &self,
        username: &str,
        password: &str,
        loopback: bool,
        may_hash: bool,
    ) -> Option<Result<UserRecord>> {
        let denied = || Error::Unauthorized("invalid username or password".into());
        let user = match self.get(username) {
            Ok(Some(u)) if u.deleted_at.is_none() => u,
            Ok(_) => {
                // As slow as a wrong password, so the answer's timing does not tell which
                // users exist.
                if !may_hash {
                    return None;
                }
                let _ = verify_password(password, &NO_SUCH_USER_HASH);
                return Some(Err(denied()));
            }
            Err(e) => return Some(Err(e)),
        };
        let ok = match &user.password_hash {
            Some(h) => {
                let digest = self.cache.digest(&user.user_id, password);
                if self.cache.hit(&user.user_id, &digest, user.auth_version) {
                    true
                } else if !may_hash {
                    return None;
                } else if verify_password(password, h) {
                    self.cache.insert(&user.user_id, digest, user.auth_version);
                    true
                } else {
                    false
                }
            }
            None => user.user_id == ROOT_USER && loopback,
        };
        Some(if ok { Ok(user) } else { Err(denied()) })
    }

    /// The session of a login token and its expiry (seconds since the Unix epoch): valid
    /// signature and expiry ([`token::Tokens::verify`]), and a user who still exists with the
    /// token's role and credential version.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] for an invalid, expired or revoked token.
    pub fn authenticate_token(&self, tokens: &token::Tokens, jwt: &str) -> Result<(Session, u64)> {
        let claims = tokens.verify(jwt)?;
        match self.get(&claims.sub)? {
            Some(u)
                if u.deleted_at.is_none()
                    && u.role == claims.role
                    && u.auth_version == claims.ver =>
            {
                Ok((Session::new(u.user_id, u.role), claims.exp))
            }
            _ => Err(Error::Unauthorized(
                "token revoked: the user was dropped or its password or role changed; log in again"
                    .into(),
            )),
        }
    }

    /// The current credential version of a live user (None when unknown or dropped).
    ///
    /// # Errors
    /// Storage failures.
    pub fn auth_version(&self, user_id: &str) -> Result<Option<u64>> {
        Ok(self
            .get(user_id)?
            .filter(|u| u.deleted_at.is_none())
            .map(|u| u.auth_version))
    }

    /// Root without credentials: allowed only from loopback while root has no password.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] otherwise.
    pub fn anonymous_root(&self, loopback: bool) -> Result<Session> {
        let root = self.get(ROOT_USER)?;
        match root {
            Some(r) if loopback && r.password_hash.is_none() && r.deleted_at.is_none() => {
                Ok(Session::root())
            }
            _ => Err(Error::Unauthorized(
                "authentication required: send Authorization: Basic or Bearer credentials".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_allow_dashes() {
        assert!(validate_user_id("user-1_a").is_ok());
        assert!(validate_user_id("-a").is_err());
        assert!(validate_user_id("Al").is_err());
    }

    #[test]
    fn passwords_verify_only_when_right() {
        let h = hash_password("secret").unwrap();
        assert!(verify_password("secret", &h));
        assert!(!verify_password("Secret", &h));
        assert!(hash_password("").is_err());
    }

    #[test]
    fn an_unknown_user_costs_a_password_check() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db"), false).unwrap());
        let users = Users::open(store, None).unwrap();
        // Not decided without hashing (so it waits its turn like a wrong password) ...
        assert!(users.authenticate_cached("nobody", "pw", true).is_none());
        // ... and refused like one.
        let err = users.authenticate("nobody", "pw", true).unwrap_err();
        assert_eq!(err.message(), "invalid username or password");
        assert!(NO_SUCH_USER_HASH.starts_with("$argon2"));
    }

    #[test]
    fn a_verified_password_is_cached_until_the_user_changes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("db"), false).unwrap());
        let users = Users::open(store, None).unwrap();
        let now = crate::ids::now_millis();
        let mut alice = UserRecord {
            user_id: "alice".into(),
            username: "alice".into(),
            password_hash: Some(hash_password("pw").unwrap()),
            role: Role::User,
            email: None,
            created_at: now,
            updated_at: now,
            deleted_at: None,
            auth_version: 0,
        };
        users.put(&alice).unwrap();
        let cached = |password: &str| {
            let version = users.auth_version("alice").unwrap().unwrap();
            users
                .cache
                .hit("alice", &users.cache.digest("alice", password), version)
        };
        assert!(!cached("pw"));
        assert!(users.verify_credentials("alice", "wrong", false).is_err());
        assert!(!cached("wrong"), "a wrong password is never cached");
        assert!(users.verify_credentials("alice", "pw", false).is_ok());
        assert!(cached("pw"));
        assert!(!cached("wrong"));
        // Any change of the record forgets it; a password change also raises the version.
        alice.email = Some("a@example.com".into());
        users.put(&alice).unwrap();
        assert!(!cached("pw"));
        assert_eq!(users.auth_version("alice").unwrap(), Some(0));
        alice.password_hash = Some(hash_password("new").unwrap());
        users.put(&alice).unwrap();
        assert_eq!(users.auth_version("alice").unwrap(), Some(1));
        assert!(users.verify_credentials("alice", "pw", false).is_err());
    }
}
