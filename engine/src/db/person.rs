//! The second wall between people: end-user requests run their statements as the database role
//! [`END_USER_ROLE`], whose row-level security policies admit only the rows of the person named
//! by the transaction's `amal.user_id` setting (migration `20261208500001`). A query that
//! forgets its `WHERE user_id = ...` then still returns nothing of anyone else's.
//!
//! Both the role and the setting are transaction-local, so a pooled connection goes back to
//! the pool as the engine's own. Staff, the console, the CLI and the workers never enter it.
//! The role switch guards against mistakes in queries, not against injected SQL: the login
//! role may always switch back (`RESET ROLE`), which is why every statement stays bound.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// The NOLOGIN role end-user requests run as.
pub const END_USER_ROLE: &str = "amal_end_user";

/// Makes the rest of the current transaction act for `user_id` only: role [`END_USER_ROLE`]
/// and setting `amal.user_id`, both until the transaction ends. Outside a transaction they
/// would end with this very statement: callers enter only in a transaction.
pub async fn enter(conn: &mut PgConnection, user_id: Uuid) -> sqlx::Result<()> {
    sqlx::query("SELECT set_config('amal.user_id', $1, true), set_config('role', $2, true)")
        .bind(user_id.to_string())
        .bind(END_USER_ROLE)
        .execute(conn)
        .await?;
    Ok(())
}

/// Returns the rest of the current transaction to the engine's own role, for the writes the
/// engine makes on the person's behalf (a turn's decision, reply and ticket). The person's id
/// stays set; only the end-user policies read it.
pub async fn leave(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query("SET LOCAL ROLE NONE").execute(conn).await?;
    Ok(())
}

/// Who the statements of a request act for: the engine itself, or one person behind the wall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The engine's own role (staff tools, workers, the CLI, the simulator).
    Engine,
    /// An end user's request: their own rows only.
    Person(Uuid),
}

impl Scope {
    /// Enters this scope in the current transaction (nothing to do for the engine).
    pub async fn enter(self, conn: &mut PgConnection) -> sqlx::Result<()> {
        match self {
            Scope::Engine => Ok(()),
            Scope::Person(id) => enter(conn, id).await,
        }
    }

    /// Returns the rest of the current transaction to the engine's role (see [`leave`]).
    pub async fn leave(self, conn: &mut PgConnection) -> sqlx::Result<()> {
        match self {
            Scope::Engine => Ok(()),
            Scope::Person(_) => leave(conn).await,
        }
    }

    /// Starts a transaction in this scope.
    pub async fn begin(self, pool: &PgPool) -> sqlx::Result<Transaction<'static, Postgres>> {
        let mut tx = pool.begin().await?;
        self.enter(&mut tx).await?;
        Ok(tx)
    }
}
