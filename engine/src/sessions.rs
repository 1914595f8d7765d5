//! Sessions of end users and staff (`user_sessions`): bearer tokens, their hashes, opening,
//! activity, revocation and expiry.
//!
//! A token is a 256-bit random value shown to the client once and stored only as its SHA-256
//! ([`token_hash`]). Both kinds of account live in `users` and share this table; what makes a
//! session authenticate an end user or a staff member is decided by [`crate::users`] and
//! [`crate::staff`], which read it. This module is the table's only writer.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

/// Where a sign-in or request comes from, for the session row and the audit trail.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client's IP address, if known.
    pub ip: Option<std::net::IpAddr>,
    /// The client program, e.g. `amal-console/0.1`.
    pub user_agent: Option<String>,
}

/// Why a session token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionProblem {
    /// No session has this token.
    Unknown,
    /// The session's lifetime is over.
    Expired,
    /// The session was signed out or revoked.
    Revoked,
}

impl fmt::Display for SessionProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SessionProblem::Unknown => "unknown",
            SessionProblem::Expired => "expired",
            SessionProblem::Revoked => "revoked",
        })
    }
}

/// SHA-256 of a token, hex: what `user_sessions.refresh_token_hash` and `magic_links.token`
/// store. A token has 256 bits of entropy, so a fast hash is enough (a slow one would only slow
/// every request).
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token: 64 hex characters from 32 bytes of the kernel's generator.
pub fn random_token() -> sqlx::Result<String> {
    let mut raw = [0u8; 32];
    // The kernel's generator does not fail once the system is up; if it ever did, no token
    // may be made from whatever the buffer holds.
    getrandom::fill(&mut raw)
        .map_err(|e| sqlx::Error::Protocol(format!("no randomness for a token: {e}")))?;
    Ok(hex::encode(raw))
}

/// A session just opened: the bearer token (shown once), the row's id and its expiry.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The bearer token.
    pub token: String,
    /// `user_sessions.id`.
    pub id: Uuid,
    /// End of the session's lifetime.
    pub expires_at: DateTime<Utc>,
}

/// Opens a session row for `user_id` (end user or staff). The token is stored only as
/// [`token_hash`].
pub async fn open(
    conn: &mut PgConnection,
    user_id: Uuid,
    ttl: Duration,
    now: DateTime<Utc>,
    client: &ClientInfo,
) -> sqlx::Result<Opened> {
    let token = random_token()?;
    let expires_at = now + ttl;
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO user_sessions (user_id, refresh_token_hash, ip_address, user_agent, \
                                    created_at, last_activity_at, expires_at) \
         VALUES ($1, $2, $3::inet, $4, $5, $5, $6) RETURNING id",
    )
    .bind(user_id)
    .bind(token_hash(&token))
    .bind(client.ip.map(|ip| ip.to_string()))
    .bind(client.user_agent.as_deref())
    .bind(now)
    .bind(expires_at)
    .fetch_one(conn)
    .await?;
    Ok(Opened {
        token,
        id,
        expires_at,
    })
}

/// A session row as found by its token.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
pub struct Found {
    /// `user_sessions.id`.
    pub id: Uuid,
    /// End of its lifetime.
    pub expires_at: DateTime<Utc>,
    /// When it was signed out or revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Its account.
    pub user_id: Uuid,
}

impl Found {
    /// Refuses a revoked or expired session.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), SessionProblem> {
        check(self.revoked_at, self.expires_at, now)
    }
}

/// The rule every authentication applies: a revoked session is refused first, then one whose
/// lifetime is over.
pub fn check(
    revoked_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), SessionProblem> {
    if revoked_at.is_some() {
        Err(SessionProblem::Revoked)
    } else if expires_at <= now {
        Err(SessionProblem::Expired)
    } else {
        Ok(())
    }
}

/// The session of a token, live or not.
pub async fn find(conn: &mut PgConnection, token: &str) -> sqlx::Result<Option<Found>> {
    sqlx::query_as(
        "SELECT id, expires_at, revoked_at, user_id FROM user_sessions WHERE refresh_token_hash = $1",
    )
    .bind(token_hash(token))
    .fetch_optional(conn)
    .await
}

/// Records activity on a session.
pub async fn touch(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query("UPDATE user_sessions SET last_activity_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// How long a live stream's session counts as connected after it was last marked (the
/// instance marks the sessions of its open streams every 10 s): a staff reply committed before
/// then was seen live, so no e-mail notice.
pub const LIVE_WINDOW_SECONDS: i64 = 25;

/// Marks the sessions as connected (a live stream of each is open) until
/// [`LIVE_WINDOW_SECONDS`] after `now`, in one statement.
pub async fn mark_live(
    conn: &mut PgConnection,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE user_sessions SET live_until = $2 WHERE id = ANY($1)")
        .bind(ids)
        .bind(now + chrono::Duration::seconds(LIVE_WINDOW_SECONDS))
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends one session; an already ended one stays as it was.
pub async fn revoke(conn: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> sqlx::Result<()> {
    sqlx::query("UPDATE user_sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Ends the live session of a token; returns its id and account, or `None` when the token is
/// unknown or already ended.
pub async fn revoke_token(
    conn: &mut PgConnection,
    token: &str,
    now: DateTime<Utc>,
) -> sqlx::Result<Option<(Uuid, Uuid)>> {
    sqlx::query_as(
        "UPDATE user_sessions SET revoked_at = $2 \
          WHERE refresh_token_hash = $1 AND revoked_at IS NULL RETURNING id, user_id",
    )
    .bind(token_hash(token))
    .bind(now)
    .fetch_optional(conn)
    .await
}

/// Ends every live session of an account; returns how many.
pub async fn revoke_all(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(
        "UPDATE user_sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
    )
    .bind(user_id)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected())
}

/// Deletes every session of an account (forgetting a person); returns how many.
pub async fn delete_all(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<u64> {
    Ok(sqlx::query("DELETE FROM user_sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Deletes sessions (end users' and staff's) that expired or were revoked more than
/// `retention_days` ago.
pub async fn expire(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    retention_days: i64,
) -> sqlx::Result<u64> {
    let cutoff = now - Duration::days(retention_days);
    Ok(
        sqlx::query("DELETE FROM user_sessions WHERE expires_at < $1 OR revoked_at < $1")
            .bind(cutoff)
            .execute(conn)
            .await?
            .rows_affected(),
    )
}

/// An account's sessions as the person's data export shows them, oldest first.
pub async fn export(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> sqlx::Result<Vec<serde_json::Value>> {
    sqlx::query_scalar(
        "SELECT jsonb_build_object('id', id, 'created_at', created_at, 'last_activity_at', last_activity_at, \
                'expires_at', expires_at, 'revoked_at', revoked_at, 'ip_address', host(ip_address), \
                'user_agent', user_agent) \
           FROM user_sessions WHERE user_id = $1 ORDER BY created_at",
    )
    .bind(user_id)
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_sha256_hex() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
