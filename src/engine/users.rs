//! Users: `CREATE USER`, `ALTER USER`, `DROP USER`, and who may act as whom for
//! `EXECUTE AS USER` (SPEC sections 2 and 6, docs/decisions.md "Users and roles").
//!
//! May import: the ground floor, `auth/` and the shared state. Never `engine/mod.rs`, `query/`
//! or the front ends.

use crate::auth::{self, ROOT_USER, UserRecord};
use crate::error::{Error, Result};
use crate::result::QueryResult;
use crate::session::{Role, Session};
use crate::state::Core;

/// `CREATE USER 'id' WITH PASSWORD '...' [ROLE r] [EMAIL '...']`. A dropped user's id is never
/// reused: its partitions are kept under that id.
///
/// # Errors
/// `PERMISSION_DENIED` below dba (system for a system user); `INVALID_SQL` for a bad id;
/// `ALREADY_EXISTS` for a live or dropped id.
pub fn create(
    core: &Core,
    user_id: &str,
    password: &str,
    role: Role,
    email: Option<String>,
    session: &Session,
) -> Result<QueryResult> {
    session.require(Role::Dba, "CREATE USER")?;
    auth::validate_user_id(user_id)?;
    if role == Role::System {
        session.require(Role::System, "creating a system user")?;
    }
    let _g = core.catalog.ddl_lock();
    if let Some(u) = core.users.get(user_id)? {
        return Err(Error::AlreadyExists(match u.deleted_at {
            None => format!("user '{user_id}' already exists"),
            // Partitions are keyed by user id: a new 'carol' would inherit the dropped one's
            // rows. Ids are never reused (docs/decisions.md).
            Some(_) => format!(
                "user id '{user_id}' belonged to a dropped user whose rows are kept \
                 under that id; user ids are never reused, choose another"
            ),
        }));
    }
    let now = crate::ids::now_millis();
    core.users.put(&UserRecord {
        user_id: user_id.to_string(),
        username: user_id.to_string(),
        password_hash: Some(auth::hash_password(password)?),
        role,
        email,
        created_at: now,
        updated_at: now,
        deleted_at: None,
        auth_version: 0,
    })?;
    Ok(QueryResult::message(format!("User '{user_id}' created"), 0))
}

/// `ALTER USER 'id' SET PASSWORD | ROLE | EMAIL`: anyone may change their own password;
/// everything else needs dba, and system for system users.
///
/// # Errors
/// `PERMISSION_DENIED`; `INVALID_PARAMETER` for an unknown user.
pub fn alter(
    core: &Core,
    user_id: &str,
    password: Option<String>,
    role: Option<Role>,
    email: Option<String>,
    session: &Session,
) -> Result<QueryResult> {
    let own_password = user_id == session.user_id && role.is_none() && email.is_none();
    if !own_password {
        session.require(Role::Dba, "ALTER USER")?;
    }
    let _g = core.catalog.ddl_lock();
    let mut u = core.users.require_live(user_id)?;
    if (u.role == Role::System || role == Some(Role::System)) && !own_password {
        session.require(Role::System, "managing a system user")?;
    }
    if let Some(p) = password {
        u.password_hash = Some(auth::hash_password(&p)?);
    }
    if let Some(r) = role {
        u.role = r;
    }
    if email.is_some() {
        u.email = email;
    }
    u.updated_at = crate::ids::now_millis();
    core.users.put(&u)?;
    core.live
        .user_changed(user_id, core.users.auth_version(user_id)?);
    Ok(QueryResult::message(format!("User '{user_id}' altered"), 0))
}

/// `DROP USER [IF EXISTS] 'id'`: a soft delete (login refused, rows kept).
///
/// # Errors
/// `PERMISSION_DENIED` below dba (system for a system user, never for root);
/// `INVALID_PARAMETER` for an unknown user.
pub fn drop(core: &Core, user_id: &str, if_exists: bool, session: &Session) -> Result<QueryResult> {
    session.require(Role::Dba, "DROP USER")?;
    let _g = core.catalog.ddl_lock();
    let Ok(mut u) = core.users.require_live(user_id) else {
        if if_exists {
            return Ok(QueryResult::message(
                format!("User '{user_id}' does not exist"),
                0,
            ));
        }
        return Err(Error::InvalidParameter(format!(
            "user '{user_id}' does not exist"
        )));
    };
    if u.user_id == ROOT_USER {
        return Err(Error::PermissionDenied(
            "the root user cannot be dropped".into(),
        ));
    }
    if u.role == Role::System {
        session.require(Role::System, "dropping a system user")?;
    }
    u.deleted_at = Some(crate::ids::now_millis());
    core.users.put(&u)?;
    core.live.user_changed(user_id, None);
    Ok(QueryResult::message(format!("User '{user_id}' dropped"), 0))
}

/// The session `EXECUTE AS USER 'id'` runs its statement with: the target's id and role, the
/// caller's namespace and limits. Needs role service or higher and a target whose role does not
/// exceed the caller's (no escalation through impersonation).
///
/// # Errors
/// `PERMISSION_DENIED`; `INVALID_PARAMETER` for an unknown or dropped user.
pub fn impersonate(core: &Core, user_id: &str, session: &Session) -> Result<Session> {
    session.require(Role::Service, "EXECUTE AS USER")?;
    let target = core.users.require_live(user_id)?;
    if target.role > session.role {
        return Err(Error::PermissionDenied(format!(
            "user '{}' (role {}) cannot act as '{}' (role {})",
            session.user_id, session.role, target.user_id, target.role
        )));
    }
    Ok(Session {
        user_id: target.user_id,
        role: target.role,
        namespace: session.namespace.clone(),
        limits: session.limits,
    })
}
