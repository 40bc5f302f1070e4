//! Users, password hashing (argon2id) and authentication (SPEC sections 2 "Users", 6, 7).
//!
//! Users live in the `meta` column family under `user/<id>`. The quoted name in
//! `CREATE USER 'alice'` is the user id. `root` (role `system`) is created on first start without
//! a password; while it has none, root may connect from a loopback address without one.
//!
//! May import: the ground floor and `storage/`. Never `catalog/`, the shared state or anything above.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::session::{Role, Session};
use crate::storage::{CF_META, Store};

pub use crate::session::ROOT_USER;

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
}

impl Users {
    /// Opens the directory, creating `root` if missing and applying `root_password` if given.
    pub fn open(store: Arc<Store>, root_password: Option<&str>) -> Result<Users> {
        let users = Users { store };
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

    /// Writes a user record.
    pub fn put(&self, u: &UserRecord) -> Result<()> {
        self.store.put_meta(&user_key(&u.user_id), u)
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
        let denied = || Error::Unauthorized("invalid username or password".into());
        let user = self
            .get(username)?
            .filter(|u| u.deleted_at.is_none())
            .ok_or_else(denied)?;
        let ok = match &user.password_hash {
            Some(h) => verify_password(password, h),
            None => user.user_id == ROOT_USER && loopback,
        };
        if ok {
            Ok(Session::new(user.user_id, user.role))
        } else {
            Err(denied())
        }
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
}
