//! Staff accounts: roles, the identity of the staff member acting, passwords (argon2id),
//! sign-in with lockout, and sessions.
//!
//! Permissions are enforced here and in the ticket module, never only in a UI: every operation
//! takes the [`Actor`] (or `None` for the machine's administrator using the CLI over SSH, who
//! already holds the keys to the database) and refuses what the role does not allow. Every
//! change writes one `audit_logs` row in its own transaction.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
// AssertSqlSafe: the only text spliced into SQL here is constant column lists, never input.
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use uuid::Uuid;

use crate::audit::{self, AuditEntry};
use crate::db::violated_constraint;
use crate::events::{self, ChangeKind, ChangeNotice};
use crate::sessions::{self, ClientInfo, SessionProblem};

/// A staff member's saved console preferences.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffPreferences {
    /// The saved theme name; `None` until one is saved (the stored default `system`).
    pub theme: Option<String>,
    /// The language for lookup labels: the saved preference, else the account's locale.
    pub lang: crate::lang::Lang,
}

/// Reads a staff member's preferences.
pub async fn preferences(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<StaffPreferences, StaffError> {
    let row: Option<(Option<String>, String)> = sqlx::query_as(
        "SELECT nullif(p.theme, 'system'), coalesce(p.language_preference, u.locale)::text \
           FROM users u LEFT JOIN user_preferences p ON p.user_id = u.id WHERE u.id = $1",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await?;
    let (theme, locale) = row.ok_or_else(|| StaffError::NotStaff(user_id.to_string()))?;
    Ok(StaffPreferences {
        theme,
        lang: locale.parse().unwrap_or(crate::lang::Lang::Ar),
    })
}

/// Saves the staff member's console theme (audited as `staff.preferences`).
pub async fn save_theme(
    conn: &mut PgConnection,
    actor: &Actor,
    theme: &str,
) -> Result<(), StaffError> {
    let valid = (1..=20).contains(&theme.chars().count())
        && theme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        return Err(StaffError::InvalidTheme(theme.to_string()));
    }
    let mut tx = conn.begin().await?;
    sqlx::query(
        "INSERT INTO user_preferences (user_id, theme) VALUES ($1, $2) \
         ON CONFLICT (user_id) DO UPDATE SET theme = EXCLUDED.theme, updated_at = now()",
    )
    .bind(actor.id)
    .bind(theme)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: Some(actor.id),
            action: "staff.preferences",
            resource_type: "user",
            resource_id: Some(actor.id),
            details: json!({ "theme": theme }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A staff member's role; end users have none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StaffRole {
    /// Works unassigned tickets and their own.
    Agent,
    /// Also assigns, reassigns and escalates anyone's tickets.
    Supervisor,
    /// Also manages staff and knowledge.
    Admin,
}

impl StaffRole {
    /// The value stored in `users.staff_role`.
    pub fn as_str(self) -> &'static str {
        match self {
            StaffRole::Agent => "agent",
            StaffRole::Supervisor => "supervisor",
            StaffRole::Admin => "admin",
        }
    }
}

impl fmt::Display for StaffRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for StaffRole {
    type Err = StaffError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "agent" => Ok(StaffRole::Agent),
            "supervisor" => Ok(StaffRole::Supervisor),
            "admin" => Ok(StaffRole::Admin),
            other => Err(StaffError::UnknownRole(other.to_string())),
        }
    }
}

/// The staff member on whose behalf an action runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    /// `users.id`.
    pub id: Uuid,
    /// Their e-mail address.
    pub email: String,
    /// Their display name.
    pub name: String,
    /// Their role.
    pub role: StaffRole,
}

impl Actor {
    /// True when the role is at least `role` (agent < supervisor < admin).
    pub fn is_at_least(&self, role: StaffRole) -> bool {
        self.role >= role
    }
}

/// Why a staff operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum StaffError {
    /// The role name is not one of agent, supervisor, admin.
    #[error("unknown staff role `{0}` (expected agent, supervisor or admin)")]
    UnknownRole(String),
    /// No active staff account has this e-mail address.
    #[error("no active staff account with e-mail {0}")]
    NotStaff(String),
    /// The actor's role does not allow the action.
    #[error("{actor} is {role}; {action} needs {needed} or above")]
    Forbidden {
        /// The actor's e-mail.
        actor: String,
        /// The actor's role.
        role: StaffRole,
        /// What was attempted.
        action: &'static str,
        /// The least role allowed.
        needed: StaffRole,
    },
    /// The password does not meet the rules.
    #[error("password refused: {0}")]
    WeakPassword(String),
    /// The e-mail address is malformed.
    #[error("invalid e-mail address `{0}`")]
    InvalidEmail(String),
    /// The display name is empty, too long or contains control characters.
    #[error("invalid name: {0}")]
    InvalidName(String),
    /// A staff account with this e-mail already exists.
    #[error("a staff account with e-mail {0} already exists")]
    AlreadyExists(String),
    /// An end user's account uses this e-mail; staff and end users are kept apart.
    #[error("{0} belongs to an end user's account; use another address for staff")]
    EndUserEmail(String),
    /// Wrong e-mail or password (deliberately not saying which).
    #[error("wrong e-mail or password")]
    InvalidCredentials,
    /// Too many failed sign-ins: the account is locked until the given time.
    #[error("account locked after {LOCKOUT_THRESHOLD} failed sign-ins; try again after {until}")]
    Locked {
        /// End of the lock.
        until: DateTime<Utc>,
    },
    /// The session token is unknown, expired or revoked.
    #[error("session {0}; sign in again")]
    Session(SessionProblem),
    /// The change would leave no active admin.
    #[error("{0} is the last active admin; add another admin first")]
    LastAdmin(String),
    /// A theme name that is not a plain name (letters, digits, `-`, `_`; 1 to 20 characters).
    #[error("invalid theme name `{0}` (letters, digits, - and _; 1 to 20 characters)")]
    InvalidTheme(String),
    /// Hashing failed (out of memory or a corrupt stored hash).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// A database error.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Looks up an active, not deleted staff account by e-mail (case-insensitive).
pub async fn actor_by_email(conn: &mut PgConnection, email: &str) -> Result<Actor, StaffError> {
    let row: Option<(Uuid, String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, email::text, name, staff_role FROM users \
         WHERE lower(email) = lower($1) AND deleted_at IS NULL AND is_active AND staff_role IS NOT NULL",
    )
    .bind(email.trim())
    .fetch_optional(conn)
    .await?;
    let (id, email_found, name, role) =
        row.ok_or_else(|| StaffError::NotStaff(email.trim().to_string()))?;
    Ok(Actor {
        id,
        email: email_found,
        name,
        role: role.as_deref().unwrap_or_default().parse()?,
    })
}

/// Looks up a staff account by id, active or not (the presence sweeper records a disabled
/// member going offline too).
pub async fn actor_by_id(conn: &mut PgConnection, id: Uuid) -> Result<Actor, StaffError> {
    let row: Option<(Uuid, String, String, Option<String>)> = sqlx::query_as(
        "SELECT id, email::text, name, staff_role FROM users WHERE id = $1 AND staff_role IS NOT NULL",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    let (id, email, name, role) = row.ok_or_else(|| StaffError::NotStaff(id.to_string()))?;
    Ok(Actor {
        id,
        email,
        name,
        role: role.as_deref().unwrap_or_default().parse()?,
    })
}

/// Refuses unless `actor` has at least `needed`.
pub fn require(actor: &Actor, needed: StaffRole, action: &'static str) -> Result<(), StaffError> {
    if actor.is_at_least(needed) {
        Ok(())
    } else {
        Err(StaffError::Forbidden {
            actor: actor.email.clone(),
            role: actor.role,
            action,
            needed,
        })
    }
}

/// Consecutive failed sign-ins that lock an account.
pub const LOCKOUT_THRESHOLD: i32 = 5;
/// How long a locked account stays locked.
pub const LOCKOUT_MINUTES: i64 = 15;
/// Lifetime of a session from sign-in.
pub const SESSION_TTL_HOURS: i64 = 12;
/// Shortest password accepted, in characters.
pub const PASSWORD_MIN_CHARS: usize = 10;
/// Longest password accepted, in characters: argon2 takes any length, but a megabyte-long
/// "password" is a denial-of-service attempt, not a secret.
pub const PASSWORD_MAX_CHARS: usize = 1024;
/// The demo accounts' password, printed by `amal-engine seed --demo` (never for production).
pub const DEMO_PASSWORD: &str = "amal-demo-2026";

/// A password that meets the rules. Its `Debug` output hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Checks the rules: 10 to 1,024 characters, not only spaces, no control characters.
    pub fn new(raw: impl Into<String>) -> Result<Self, StaffError> {
        let raw = raw.into();
        let chars = raw.chars().count();
        if chars < PASSWORD_MIN_CHARS {
            return Err(StaffError::WeakPassword(format!(
                "it has {chars} characters; at least {PASSWORD_MIN_CHARS} are required"
            )));
        }
        if chars > PASSWORD_MAX_CHARS {
            return Err(StaffError::WeakPassword(format!(
                "at most {PASSWORD_MAX_CHARS} characters"
            )));
        }
        if raw.trim().is_empty() {
            return Err(StaffError::WeakPassword("it is only spaces".into()));
        }
        if raw.chars().any(char::is_control) {
            return Err(StaffError::WeakPassword(
                "it contains control characters".into(),
            ));
        }
        Ok(Password(raw))
    }

    /// The password itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A staff display name: 1 to 255 characters, trimmed, no control characters.
fn valid_name(name: &str) -> Result<String, StaffError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 255 {
        return Err(StaffError::InvalidName("1 to 255 characters".into()));
    }
    if name.chars().any(char::is_control) {
        return Err(StaffError::InvalidName("control characters".into()));
    }
    Ok(name.to_string())
}

/// E-mail addresses are stored lower-cased (the schema's uniqueness is on the stored value).
fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Hashes with argon2id (the crate's defaults: 19 MiB, 2 passes, 1 lane, random 16-byte salt),
/// as a PHC string that carries its parameters, so they can be raised later without breaking
/// stored hashes. Runs on the blocking pool: a hash takes tens of milliseconds of CPU.
pub async fn hash_password(password: &Password) -> Result<String, StaffError> {
    let secret = password.0.clone();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(secret.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| StaffError::Hash(e.to_string()))
    })
    .await
    .map_err(|e| StaffError::Hash(e.to_string()))?
}

/// True when `candidate` matches the stored PHC hash. Unusable hashes (`'!'`) never match.
pub async fn verify_password(stored_hash: &str, candidate: &str) -> bool {
    let (stored, candidate) = (stored_hash.to_string(), candidate.to_string());
    tokio::task::spawn_blocking(move || match PasswordHash::new(&stored) {
        Ok(parsed) => Argon2::default()
            .verify_password(candidate.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random secret, verified against when the e-mail is unknown so that a wrong
/// address takes as long as a wrong password (no account enumeration by timing).
async fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    if let Some(h) = DECOY.get() {
        return h;
    }
    let mut secret = [0u8; 16];
    let _ = getrandom::fill(&mut secret);
    let password = Password(hex::encode(secret));
    let hash = hash_password(&password).await.unwrap_or_default();
    DECOY.get_or_init(|| hash)
}

/// A staff account as listed by `staff list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct StaffAccount {
    /// `users.id`.
    pub id: Uuid,
    /// E-mail address (lower case).
    pub email: String,
    /// Display name.
    pub name: String,
    /// `agent`, `supervisor` or `admin`.
    pub role: String,
    /// False once disabled.
    pub is_active: bool,
    /// Consecutive failed sign-ins since the last success or lock.
    pub failed_login_attempts: i32,
    /// Set while the account is locked.
    pub locked_until: Option<DateTime<Utc>>,
    /// Last successful sign-in.
    pub last_login_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

const ACCOUNT_COLUMNS: &str = "id, email::text AS email, name, staff_role AS role, is_active, \
     failed_login_attempts, locked_until, last_login_at, created_at";

/// Refuses unless `by` is an admin; `None` is the machine's administrator (CLI over SSH).
fn require_admin(by: Option<&Actor>, action: &'static str) -> Result<(), StaffError> {
    match by {
        Some(actor) => require(actor, StaffRole::Admin, action),
        None => Ok(()),
    }
}

/// A staff account by e-mail, active or not, locked for update.
async fn account_for_update(
    conn: &mut PgConnection,
    email: &str,
) -> Result<StaffAccount, StaffError> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {ACCOUNT_COLUMNS} FROM users \
         WHERE lower(email) = lower($1) AND deleted_at IS NULL AND staff_role IS NOT NULL FOR UPDATE"
    )))
    .bind(email.trim())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| StaffError::NotStaff(email.trim().to_string()))
}

async fn active_admins_other_than(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM users WHERE staff_role = 'admin' AND is_active \
         AND deleted_at IS NULL AND id <> $1",
    )
    .bind(id)
    .fetch_one(conn)
    .await
}

/// Creates a staff account. `by` must be an admin (or `None`: the CLI's operator).
pub async fn add(
    conn: &mut PgConnection,
    by: Option<&Actor>,
    email: &str,
    name: &str,
    role: StaffRole,
    password: &Password,
) -> Result<StaffAccount, StaffError> {
    require_admin(by, "adding staff")?;
    let email = normalize_email(email);
    let name = valid_name(name)?;
    let hash = hash_password(password).await?;
    let mut tx = conn.begin().await?;
    let existing: Option<Option<String>> =
        sqlx::query_scalar("SELECT staff_role FROM users WHERE lower(email) = lower($1)")
            .bind(&email)
            .fetch_optional(&mut *tx)
            .await?;
    match existing {
        Some(Some(_)) => return Err(StaffError::AlreadyExists(email)),
        Some(None) => return Err(StaffError::EndUserEmail(email)),
        None => {}
    }
    let account: StaffAccount = sqlx::query_as(AssertSqlSafe(format!(
        "INSERT INTO users (email, password_hash, name, staff_role, is_verified, locale) \
         VALUES ($1, $2, $3, $4, true, 'fr-FR') RETURNING {ACCOUNT_COLUMNS}"
    )))
    .bind(&email)
    .bind(&hash)
    .bind(&name)
    .bind(role.as_str())
    .fetch_one(&mut *tx)
    .await
    .map_err(|e| match violated_constraint(&e) {
        Some("chk_email_address_format") => StaffError::InvalidEmail(email.clone()),
        Some("users_email_key") => StaffError::AlreadyExists(email.clone()),
        _ => StaffError::Sql(e),
    })?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: by.map(|a| a.id),
            action: "staff.add",
            resource_type: "user",
            resource_id: Some(account.id),
            details: json!({ "email": account.email, "role": role.as_str(), "name": account.name }),
        },
    )
    .await?;
    events::notify(&mut tx, &ChangeNotice::new(ChangeKind::Staff)).await?;
    tx.commit().await?;
    Ok(account)
}

/// The least role that may read the audit trail: it shows who read whose conversations.
pub const AUDIT_READER_ROLE: StaffRole = StaffRole::Supervisor;

/// The audit trail as `viewer` may read it: supervisors and admins only (agents are refused).
pub async fn audit_trail(
    conn: &mut PgConnection,
    viewer: &Actor,
    filter: &audit::AuditFilter,
) -> Result<Vec<audit::AuditRecord>, StaffError> {
    if !viewer.is_at_least(AUDIT_READER_ROLE) {
        return Err(StaffError::Forbidden {
            actor: viewer.email.clone(),
            role: viewer.role,
            action: "reading the audit trail",
            needed: AUDIT_READER_ROLE,
        });
    }
    Ok(audit::list(conn, filter).await?)
}

/// Every staff account (disabled ones too), admins first, then by e-mail.
pub async fn list(conn: &mut PgConnection) -> Result<Vec<StaffAccount>, StaffError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {ACCOUNT_COLUMNS} FROM users WHERE staff_role IS NOT NULL AND deleted_at IS NULL \
         ORDER BY CASE staff_role WHEN 'admin' THEN 0 WHEN 'supervisor' THEN 1 ELSE 2 END, email"
    )))
    .fetch_all(conn)
    .await?)
}

/// Deactivates an account inside the caller's transaction: it can no longer sign in and its
/// sessions are revoked. Returns the account as it was and how many sessions were revoked
/// (`None` when it was already disabled, and nothing changed). [`crate::roster::disable`] composes this with handing
/// the account's tickets back and the audit record.
pub async fn deactivate(
    tx: &mut PgConnection,
    by: Option<&Actor>,
    email: &str,
    now: DateTime<Utc>,
) -> Result<(StaffAccount, Option<u64>), StaffError> {
    require_admin(by, "disabling staff")?;
    let account = account_for_update(tx, email).await?;
    if !account.is_active {
        return Ok((account, None));
    }
    if account.role == "admin" && active_admins_other_than(tx, account.id).await? == 0 {
        return Err(StaffError::LastAdmin(account.email));
    }
    sqlx::query("UPDATE users SET is_active = false WHERE id = $1")
        .bind(account.id)
        .execute(&mut *tx)
        .await?;
    let revoked = sessions::revoke_all(tx, account.id, now).await?;
    Ok((account, Some(revoked)))
}

/// Sets a new password: clears any lock and revokes every session of the account.
pub async fn set_password(
    conn: &mut PgConnection,
    by: Option<&Actor>,
    email: &str,
    password: &Password,
    now: DateTime<Utc>,
) -> Result<StaffAccount, StaffError> {
    // Staff may change their own password; anyone else's needs an admin.
    let own = by.is_some_and(|a| a.email.eq_ignore_ascii_case(email.trim()));
    if !own {
        require_admin(by, "changing another account's password")?;
    }
    let hash = hash_password(password).await?;
    let mut tx = conn.begin().await?;
    let account = account_for_update(&mut tx, email).await?;
    sqlx::query(
        "UPDATE users SET password_hash = $2, failed_login_attempts = 0, locked_until = NULL \
         WHERE id = $1",
    )
    .bind(account.id)
    .bind(&hash)
    .execute(&mut *tx)
    .await?;
    let revoked = sessions::revoke_all(&mut tx, account.id, now).await?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: by.map(|a| a.id),
            action: "staff.passwd",
            resource_type: "user",
            resource_id: Some(account.id),
            details: json!({ "email": account.email, "sessions_revoked": revoked }),
        },
    )
    .await?;
    events::notify(&mut tx, &ChangeNotice::new(ChangeKind::Staff)).await?;
    tx.commit().await?;
    Ok(StaffAccount {
        failed_login_attempts: 0,
        locked_until: None,
        ..account
    })
}

/// Clears a sign-in lock (admin; audited `staff.unlock`): the failed attempts start again
/// from zero. Returns `None` when the account was not locked (nothing changed, no audit row).
pub async fn unlock(
    conn: &mut PgConnection,
    by: Option<&Actor>,
    email: &str,
    now: DateTime<Utc>,
) -> Result<Option<StaffAccount>, StaffError> {
    require_admin(by, "unlocking staff accounts")?;
    let mut tx = conn.begin().await?;
    let account = account_for_update(&mut tx, email).await?;
    let locked = account.locked_until.is_some_and(|t| t > now);
    if !locked && account.failed_login_attempts == 0 {
        return Ok(None);
    }
    sqlx::query("UPDATE users SET failed_login_attempts = 0, locked_until = NULL WHERE id = $1")
        .bind(account.id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: by.map(|a| a.id),
            action: "staff.unlock",
            resource_type: "user",
            resource_id: Some(account.id),
            details: json!({
                "email": account.email,
                "locked_until": account.locked_until.filter(|t| *t > now),
                "failed_attempts": account.failed_login_attempts,
            }),
        },
    )
    .await?;
    events::notify(&mut tx, &ChangeNotice::new(ChangeKind::Staff)).await?;
    tx.commit().await?;
    Ok(Some(StaffAccount {
        failed_login_attempts: 0,
        locked_until: None,
        ..account
    }))
}

/// Enables a disabled account again (admin; audited `staff.enable`): it may sign in with its
/// password. Returns `None` when it was already active.
pub async fn enable(
    conn: &mut PgConnection,
    by: Option<&Actor>,
    email: &str,
) -> Result<Option<StaffAccount>, StaffError> {
    require_admin(by, "enabling staff accounts")?;
    let mut tx = conn.begin().await?;
    let account = account_for_update(&mut tx, email).await?;
    if account.is_active {
        return Ok(None);
    }
    sqlx::query(
        "UPDATE users SET is_active = true, failed_login_attempts = 0, locked_until = NULL \
         WHERE id = $1",
    )
    .bind(account.id)
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: by.map(|a| a.id),
            action: "staff.enable",
            resource_type: "user",
            resource_id: Some(account.id),
            details: json!({ "email": account.email }),
        },
    )
    .await?;
    events::notify(&mut tx, &ChangeNotice::new(ChangeKind::Staff)).await?;
    tx.commit().await?;
    Ok(Some(StaffAccount {
        is_active: true,
        failed_login_attempts: 0,
        locked_until: None,
        ..account
    }))
}

/// Changes an account's role (never leaving the service without an active admin).
pub async fn set_role(
    conn: &mut PgConnection,
    by: Option<&Actor>,
    email: &str,
    role: StaffRole,
) -> Result<StaffAccount, StaffError> {
    require_admin(by, "changing staff roles")?;
    let mut tx = conn.begin().await?;
    let account = account_for_update(&mut tx, email).await?;
    if account.role == role.as_str() {
        return Ok(account);
    }
    if account.role == "admin"
        && account.is_active
        && active_admins_other_than(&mut tx, account.id).await? == 0
    {
        return Err(StaffError::LastAdmin(account.email));
    }
    sqlx::query("UPDATE users SET staff_role = $2 WHERE id = $1")
        .bind(account.id)
        .bind(role.as_str())
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: by.map(|a| a.id),
            action: "staff.role",
            resource_type: "user",
            resource_id: Some(account.id),
            details: json!({ "email": account.email, "from": account.role, "to": role.as_str() }),
        },
    )
    .await?;
    events::notify(&mut tx, &ChangeNotice::new(ChangeKind::Staff)).await?;
    tx.commit().await?;
    Ok(StaffAccount {
        role: role.as_str().to_string(),
        ..account
    })
}

/// id, e-mail, name, role, password hash, active, failed attempts, locked until.
type SignInRow = (
    Uuid,
    String,
    String,
    Option<String>,
    String,
    bool,
    i32,
    Option<DateTime<Utc>>,
);

/// A signed-in session. The token is shown to the client once and stored only as a hash.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The bearer token (64 hex characters from 32 random bytes).
    pub token: String,
    /// `user_sessions.id`.
    pub session_id: Uuid,
    /// End of the session's lifetime.
    pub expires_at: DateTime<Utc>,
    /// Who signed in.
    pub actor: Actor,
}

/// Signs a staff member in. Five consecutive failures lock the account for 15 minutes (the
/// failure count and the lock are committed even though the sign-in fails); while locked,
/// even the right password is refused. Success resets the count and opens a session.
pub async fn sign_in(
    conn: &mut PgConnection,
    email: &str,
    password: &str,
    now: DateTime<Utc>,
    client: &ClientInfo,
) -> Result<SignedIn, StaffError> {
    let mut tx = conn.begin().await?;
    let row: Option<SignInRow> = sqlx::query_as(
        "SELECT id, email::text, name, staff_role, password_hash, is_active, \
                    failed_login_attempts, locked_until \
               FROM users WHERE lower(email) = lower($1) AND deleted_at IS NULL \
                AND staff_role IS NOT NULL FOR UPDATE",
    )
    .bind(email.trim())
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, email_found, name, role, hash, active, failures, locked_until)) = row else {
        verify_password(decoy_hash().await, password).await;
        return Err(StaffError::InvalidCredentials);
    };
    if let Some(until) = locked_until.filter(|until| *until > now) {
        audit::record(
            &mut tx,
            &AuditEntry {
                actor: Some(id),
                action: "staff.sign_in_refused",
                resource_type: "user",
                resource_id: Some(id),
                details: json!({ "reason": "locked", "locked_until": until }),
            },
        )
        .await?;
        tx.commit().await?;
        return Err(StaffError::Locked { until });
    }
    if !verify_password(&hash, password).await || !active {
        let failures = failures + 1;
        let lock =
            (failures >= LOCKOUT_THRESHOLD).then(|| now + Duration::minutes(LOCKOUT_MINUTES));
        // Locking starts a fresh count: after the lock, the account gets five more tries.
        sqlx::query("UPDATE users SET failed_login_attempts = $2, locked_until = $3 WHERE id = $1")
            .bind(id)
            .bind(if lock.is_some() { 0 } else { failures })
            .bind(lock.or(locked_until))
            .execute(&mut *tx)
            .await?;
        audit::record(
            &mut tx,
            &AuditEntry {
                actor: Some(id),
                action: "staff.sign_in_failed",
                resource_type: "user",
                resource_id: Some(id),
                details: json!({ "failed_attempts": failures, "locked_until": lock, "disabled": !active }),
            },
        )
        .await?;
        tx.commit().await?;
        return Err(match lock {
            Some(until) => StaffError::Locked { until },
            None => StaffError::InvalidCredentials,
        });
    }
    let actor = Actor {
        id,
        email: email_found,
        name,
        role: role.as_deref().unwrap_or_default().parse()?,
    };
    let sessions::Opened {
        token,
        id: session_id,
        expires_at,
    } = sessions::open(&mut tx, id, Duration::hours(SESSION_TTL_HOURS), now, client).await?;
    sqlx::query(
        "UPDATE users SET failed_login_attempts = 0, locked_until = NULL, last_login_at = $2, \
                          last_login_ip = $3::inet WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .bind(client.ip.map(|ip| ip.to_string()))
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: Some(id),
            action: "staff.sign_in",
            resource_type: "user_session",
            resource_id: Some(session_id),
            details: json!({ "expires_at": expires_at }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(SignedIn {
        token,
        session_id,
        expires_at,
        actor,
    })
}

/// The staff member a session token belongs to, if the session is live and the account still
/// active. Records the activity time.
pub async fn authenticate(
    conn: &mut PgConnection,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Actor, StaffError> {
    let session = sessions::find(conn, token)
        .await?
        .ok_or(StaffError::Session(SessionProblem::Unknown))?;
    session.check(now).map_err(StaffError::Session)?;
    let user_id = session.user_id;
    let actor: Option<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT email::text, name, staff_role FROM users \
         WHERE id = $1 AND is_active AND deleted_at IS NULL AND staff_role IS NOT NULL",
    )
    .bind(user_id)
    .fetch_optional(&mut *conn)
    .await?;
    let (email, name, role) = actor.ok_or(StaffError::Session(SessionProblem::Revoked))?;
    sessions::touch(conn, session.id, now).await?;
    Ok(Actor {
        id: user_id,
        email,
        name,
        role: role.as_deref().unwrap_or_default().parse()?,
    })
}

/// Ends a session (sign-out). An unknown or already revoked token is not an error.
pub async fn sign_out(
    conn: &mut PgConnection,
    token: &str,
    now: DateTime<Utc>,
) -> Result<bool, StaffError> {
    let mut tx = conn.begin().await?;
    let revoked = sessions::revoke_token(&mut tx, token, now).await?;
    if let Some((session_id, user_id)) = revoked {
        audit::record(
            &mut tx,
            &AuditEntry {
                actor: Some(user_id),
                action: "staff.sign_out",
                resource_type: "user_session",
                resource_id: Some(session_id),
                details: json!({}),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(revoked.is_some())
}

/// A demo staff account and its password, as printed by `amal-engine seed --demo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DemoAccount {
    /// E-mail address.
    pub email: String,
    /// Role.
    pub role: String,
    /// The demo password ([`DEMO_PASSWORD`]).
    pub password: String,
}

/// Gives the demo staff accounts (`*.demo@amal.example`, created by `seeds/demo.sql` without a
/// password) the documented demo password. Accounts that already have a real password keep it,
/// so re-seeding never undoes a password someone changed.
pub async fn set_demo_passwords(conn: &mut PgConnection) -> Result<Vec<DemoAccount>, StaffError> {
    let password = Password::new(DEMO_PASSWORD)?;
    let hash = hash_password(&password).await?;
    let mut tx = conn.begin().await?;
    let updated: Vec<Uuid> = sqlx::query_scalar(
        "UPDATE users SET password_hash = $1 \
          WHERE email::text LIKE '%.demo@amal.example' AND staff_role IS NOT NULL \
            AND password_hash = '!' RETURNING id",
    )
    .bind(&hash)
    .fetch_all(&mut *tx)
    .await?;
    for id in &updated {
        audit::record(
            &mut tx,
            &AuditEntry {
                actor: None,
                action: "staff.passwd",
                resource_type: "user",
                resource_id: Some(*id),
                details: json!({ "source": "demo seed" }),
            },
        )
        .await?;
    }
    let accounts: Vec<(String, String)> = sqlx::query_as(
        "SELECT email::text, staff_role FROM users \
          WHERE email::text LIKE '%.demo@amal.example' AND staff_role IS NOT NULL \
          ORDER BY CASE staff_role WHEN 'agent' THEN 0 WHEN 'supervisor' THEN 1 ELSE 2 END",
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(accounts
        .into_iter()
        .map(|(email, role)| DemoAccount {
            email,
            role,
            password: DEMO_PASSWORD.to_string(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_rules() {
        assert!(matches!(
            Password::new("short"),
            Err(StaffError::WeakPassword(_))
        ));
        assert!(Password::new("          ").is_err());
        assert!(Password::new("with\u{7}bell-char").is_err());
        let ok = Password::new("correct horse battery").unwrap();
        assert_eq!(format!("{ok:?}"), "Password(***)");
    }

    #[tokio::test]
    async fn argon2id_round_trip() {
        let p = Password::new("amal-demo-2026").unwrap();
        let h = hash_password(&p).await.unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "amal-demo-2026").await);
        assert!(!verify_password(&h, "amal-demo-2027").await);
        assert!(!verify_password("!", "anything").await);
    }
}
