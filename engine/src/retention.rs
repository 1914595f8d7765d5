//! Retention: how long what people confided is kept, set by an admin (audited), and the run
//! that removes what is due.
//!
//! Three periods, defaults from the platform documents:
//! - `closed_conversation_messages` (2 years): the text of messages in closed or archived
//!   conversations inactive that long is replaced ([`conversations::redact_closed_messages`]);
//!   rows stay, so statistics are intact;
//! - `audit_logs` (7 years): audit rows are deleted ([`audit::delete_before`]);
//! - `statistics` (10 years): closed conversations themselves are deleted, with their
//!   messages and decisions ([`conversations::delete_closed_before`]); what statistics counted
//!   goes with them.
//!
//! A conversation with an open ticket is never touched. Each batch is one short statement
//! (row locks held for one batch, rows others hold skipped), and each run of a kind is recorded
//! in `retention_runs`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::{Connection, PgConnection, PgPool};

use crate::audit::{self, AuditEntry};
use crate::conversations;
use crate::staff::{Actor, StaffError, StaffRole};

/// Rows one batch touches at most.
pub const BATCH_ROWS: i64 = 1_000;

/// What a retention period applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionKind {
    /// The text of messages in closed conversations.
    ClosedConversationMessages,
    /// The audit trail.
    AuditLogs,
    /// Closed conversations themselves, which statistics count.
    Statistics,
}

impl RetentionKind {
    /// Every kind, in the order they run.
    pub const ALL: [RetentionKind; 3] = [
        RetentionKind::ClosedConversationMessages,
        RetentionKind::AuditLogs,
        RetentionKind::Statistics,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            RetentionKind::ClosedConversationMessages => "closed_conversation_messages",
            RetentionKind::AuditLogs => "audit_logs",
            RetentionKind::Statistics => "statistics",
        }
    }
}

impl fmt::Display for RetentionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RetentionKind {
    type Err = RetentionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RetentionKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim())
            .ok_or_else(|| RetentionError::UnknownKind(s.to_string()))
    }
}

/// Why a retention operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    /// Not one of the three kinds.
    #[error(
        "unknown retention kind `{0}` (expected closed_conversation_messages, audit_logs or statistics)"
    )]
    UnknownKind(String),
    /// The period is out of bounds.
    #[error("a retention period must be between 30 and 36500 days (got {0})")]
    BadPeriod(i32),
    /// The actor may not change retention.
    #[error(transparent)]
    Staff(#[from] StaffError),
    /// A database error.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
}

/// One retention period as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// What it applies to.
    pub kind: String,
    /// Days kept.
    pub keep_days: i32,
    /// When it was last set.
    pub updated_at: DateTime<Utc>,
    /// Who set it (`None`: the default, or the machine's administrator).
    pub updated_by: Option<String>,
    /// The last run of this kind: when it finished and what it removed.
    pub last_run: Option<(DateTime<Utc>, i64)>,
}

/// kind, keep_days, updated_at, updated_by's e-mail, last run's end and rows.
type PolicyRow = (
    String,
    i32,
    DateTime<Utc>,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<i64>,
);

/// The configured periods with their last runs.
pub async fn policies(conn: &mut PgConnection) -> Result<Vec<Policy>, RetentionError> {
    let rows: Vec<PolicyRow> = sqlx::query_as(
            "SELECT p.kind::text, p.keep_days, p.updated_at, u.email::text, r.finished_at, \
                    r.rows_affected \
               FROM retention_policies p LEFT JOIN users u ON u.id = p.updated_by \
               LEFT JOIN LATERAL (SELECT finished_at, rows_affected FROM retention_runs \
                                   WHERE kind = p.kind ORDER BY finished_at DESC LIMIT 1) r ON true \
              ORDER BY p.kind",
        )
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(
            |(kind, keep_days, updated_at, updated_by, finished, rows)| Policy {
                kind,
                keep_days,
                updated_at,
                updated_by,
                last_run: finished.zip(rows),
            },
        )
        .collect())
}

/// Sets a retention period: admins only (`None`: the machine's administrator at the CLI).
/// Audited as `retention.set` with the old and new periods.
pub async fn set(
    conn: &mut PgConnection,
    actor: Option<&Actor>,
    kind: RetentionKind,
    keep_days: i32,
) -> Result<(), RetentionError> {
    if let Some(actor) = actor
        && !actor.is_at_least(StaffRole::Admin)
    {
        return Err(StaffError::Forbidden {
            actor: actor.email.clone(),
            role: actor.role,
            action: "setting a retention period",
            needed: StaffRole::Admin,
        }
        .into());
    }
    if !(30..=36_500).contains(&keep_days) {
        return Err(RetentionError::BadPeriod(keep_days));
    }
    let mut tx = conn.begin().await?;
    let old: i32 =
        sqlx::query_scalar("SELECT keep_days FROM retention_policies WHERE kind = $1 FOR UPDATE")
            .bind(kind.as_str())
            .fetch_one(&mut *tx)
            .await?;
    sqlx::query(
        "UPDATE retention_policies SET keep_days = $2, updated_at = now(), updated_by = $3 \
          WHERE kind = $1",
    )
    .bind(kind.as_str())
    .bind(keep_days)
    .bind(actor.map(|a| a.id))
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        &AuditEntry {
            actor: actor.map(|a| a.id),
            action: "retention.set",
            resource_type: "retention_policy",
            resource_id: None,
            details: json!({ "kind": kind.as_str(), "from_days": old, "to_days": keep_days }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What one run of one kind did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunReport {
    /// The kind.
    pub kind: &'static str,
    /// Rows older than this were due.
    pub cutoff: DateTime<Utc>,
    /// Rows redacted or deleted.
    pub rows: i64,
    /// Batches run.
    pub batches: i32,
}

/// Runs every kind once at `now`: batches of [`BATCH_ROWS`] until nothing is due, each run
/// recorded in `retention_runs`.
pub async fn run(pool: &PgPool, now: DateTime<Utc>) -> Result<Vec<RunReport>, RetentionError> {
    let mut conn = pool.acquire().await?;
    let periods: Vec<(String, i32)> =
        sqlx::query_as("SELECT kind::text, keep_days FROM retention_policies")
            .fetch_all(&mut *conn)
            .await?;
    let mut reports = Vec::new();
    for kind in RetentionKind::ALL {
        let Some((_, days)) = periods.iter().find(|(k, _)| k == kind.as_str()) else {
            continue;
        };
        let cutoff = now - Duration::days(i64::from(*days));
        let started = Utc::now();
        let (mut rows, mut batches) = (0i64, 0i32);
        let outcome: sqlx::Result<()> = async {
            loop {
                let done = match kind {
                    RetentionKind::ClosedConversationMessages => {
                        conversations::redact_closed_messages(&mut conn, cutoff, BATCH_ROWS).await?
                    }
                    RetentionKind::AuditLogs => {
                        audit::delete_before(&mut conn, cutoff, BATCH_ROWS).await?
                    }
                    RetentionKind::Statistics => {
                        conversations::delete_closed_before(&mut conn, cutoff, BATCH_ROWS).await?
                    }
                };
                batches += 1;
                rows += i64::try_from(done).unwrap_or(i64::MAX);
                if done < BATCH_ROWS.unsigned_abs() {
                    return Ok(());
                }
            }
        }
        .await;
        sqlx::query(
            "INSERT INTO retention_runs (kind, cutoff, started_at, finished_at, rows_affected, \
                                         batches, error) VALUES ($1, $2, $3, now(), $4, $5, $6)",
        )
        .bind(kind.as_str())
        .bind(cutoff)
        .bind(started)
        .bind(rows)
        .bind(batches)
        .bind(outcome.as_ref().err().map(|e| e.to_string()))
        .execute(&mut *conn)
        .await?;
        outcome?;
        reports.push(RunReport {
            kind: kind.as_str(),
            cutoff,
            rows,
            batches,
        });
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back() {
        for kind in RetentionKind::ALL {
            assert_eq!(kind.as_str().parse::<RetentionKind>().unwrap(), kind);
        }
        assert!("messages".parse::<RetentionKind>().is_err());
    }
}
