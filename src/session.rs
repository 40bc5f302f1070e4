//! Who is executing a statement: [`Session`] carries the effective user, role and default
//! namespace of one request. `EXECUTE AS USER` swaps the user and role for one statement.
//!
//! May import: `config` and `error` only (ground-floor modules); never `auth/`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::config::Limits;
use crate::error::{Error, Result};

/// The bootstrap superuser's id (SPEC section 6): created on first start with role `system`.
pub const ROOT_USER: &str = "root";

/// A role of SPEC section 6, ordered by privilege (`User < Service < Dba < System`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Own partition of USER/STREAM tables, read SHARED tables.
    User,
    /// `User` plus writing SHARED tables and `EXECUTE AS USER`.
    Service,
    /// `Service` plus DDL, FLUSH and management of non-system users.
    Dba,
    /// Everything; the bootstrap user `root` has it.
    System,
}

impl Role {
    /// Parses `user|service|dba|system` (case-insensitive).
    ///
    /// # Errors
    /// [`Error::InvalidParameter`] for any other word.
    pub fn parse(s: &str) -> Result<Role> {
        match s.to_ascii_lowercase().as_str() {
            "user" => Ok(Role::User),
            "service" => Ok(Role::Service),
            "dba" => Ok(Role::Dba),
            "system" => Ok(Role::System),
            other => Err(Error::InvalidParameter(format!(
                "unknown role '{other}': expected user, service, dba or system"
            ))),
        }
    }

    /// The lowercase name used in SQL and `system.users`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Service => "service",
            Role::Dba => "dba",
            Role::System => "system",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity and defaults one request runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The effective user id: what `CURRENT_USER()` returns and what USER/STREAM partitions are keyed by.
    pub user_id: String,
    /// The effective role.
    pub role: Role,
    /// Default namespace for unqualified table names (`USE ns` or the request's `namespace` field).
    pub namespace: Option<String>,
    /// Limits lowered by `SET` earlier in the request (None: the server's). The engine applies
    /// the smaller of these and its configuration, so a session can never raise a limit.
    pub limits: Option<Limits>,
}

impl Session {
    /// A session for `user_id` with `role` and no default namespace.
    pub fn new(user_id: impl Into<String>, role: Role) -> Session {
        Session {
            user_id: user_id.into(),
            role,
            namespace: None,
            limits: None,
        }
    }

    /// The bootstrap superuser `root` (role `system`).
    pub fn root() -> Session {
        Session::new(ROOT_USER, Role::System)
    }

    /// The limits in force for this session: `configured`, lowered by the session's `SET`s.
    pub fn limits_within(&self, configured: Limits) -> Limits {
        match &self.limits {
            Some(s) => configured.narrowed_by(s),
            None => configured,
        }
    }

    /// The namespace of `table` (`ns.t`), or the session's default (`USE ns`) for a bare `t`.
    ///
    /// # Errors
    /// [`Error::InvalidSql`] for an unqualified name without a default namespace.
    pub fn namespace_of(&self, namespace: Option<&str>, table: &str) -> Result<String> {
        namespace
            .or(self.namespace.as_deref())
            .map(str::to_string)
            .ok_or_else(|| {
                Error::InvalidSql(format!(
                    "table '{table}' has no namespace: write ns.{table} or USE ns first"
                ))
            })
    }

    /// Fails with `PERMISSION_DENIED` unless the role is at least `min`.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] naming `action`.
    pub fn require(&self, min: Role, action: &str) -> Result<()> {
        if self.role >= min {
            Ok(())
        } else {
            Err(Error::PermissionDenied(format!(
                "{action} requires role {min} or higher; user '{}' has role {}",
                self.user_id, self.role
            )))
        }
    }
}
