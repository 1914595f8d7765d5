//! Roles and privileges: the roles, their logins and what the application role may do.

use sqlx::PgPool;

use super::user;
use crate::fixtures::TestResult;

#[sqlx::test(migrations = "../migrations")]
async fn roles_exist_without_login_and_with_the_right_privileges(pool: PgPool) -> TestResult {
    let roles: Vec<(String, bool)> = sqlx::query_as(
        "SELECT rolname::text, rolcanlogin FROM pg_roles WHERE rolname IN ('amal_app', 'amal_readonly', 'amal_admin') ORDER BY 1",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(
        roles,
        [
            ("amal_admin".to_owned(), false),
            ("amal_app".to_owned(), false),
            ("amal_readonly".to_owned(), false)
        ]
    );
    let no_passwords: bool = sqlx::query_scalar(
        "SELECT bool_and(rolpassword IS NULL) FROM pg_authid WHERE rolname IN ('amal_app', 'amal_readonly', 'amal_admin')",
    )
    .fetch_one(&pool)
    .await?;
    assert!(no_passwords);

    let table_privilege = |role: &'static str, table: &'static str, privilege: &'static str| {
        sqlx::query_scalar::<_, bool>("SELECT has_table_privilege($1, $2, $3)")
            .bind(role)
            .bind(table)
            .bind(privilege)
            .fetch_one(&pool)
    };
    let tables = [
        "users",
        "user_preferences",
        "user_sessions",
        "magic_links",
        "conversations",
        "messages",
        "decision_logs",
        "documents",
        "document_chunks",
        "embedding_settings",
        "support_tickets",
        "ticket_escalations",
        "ticket_comments",
        "ticket_comment_edits",
        "audit_logs",
        "conversation_modes",
        "conversation_statuses",
        "ticket_categories",
        "ticket_priorities",
        "ticket_statuses",
    ];
    for table in tables {
        for privilege in ["SELECT", "INSERT", "UPDATE", "DELETE"] {
            assert!(
                table_privilege("amal_app", table, privilege).await?,
                "amal_app {privilege} {table}"
            );
            assert!(
                table_privilege("amal_admin", table, privilege).await?,
                "amal_admin {privilege} {table}"
            );
        }
        assert!(
            table_privilege("amal_readonly", table, "SELECT").await?,
            "amal_readonly SELECT {table}"
        );
        for privilege in ["INSERT", "UPDATE", "DELETE", "TRUNCATE"] {
            assert!(
                !table_privilege("amal_readonly", table, privilege).await?,
                "amal_readonly {privilege} {table}"
            );
        }
        assert!(
            !table_privilege("amal_app", table, "TRUNCATE").await?,
            "amal_app TRUNCATE {table}"
        );
        assert!(
            table_privilege("amal_admin", table, "TRUNCATE").await?,
            "amal_admin TRUNCATE {table}"
        );
    }
    for view in [
        "v_active_conversations",
        "v_ticket_statistics",
        "v_open_tickets_sla",
        "v_decision_statistics",
        "mv_daily_statistics",
    ] {
        assert!(
            table_privilege("amal_readonly", view, "SELECT").await?,
            "amal_readonly SELECT {view}"
        );
        assert!(
            table_privilege("amal_app", view, "SELECT").await?,
            "amal_app SELECT {view}"
        );
    }

    let function_privilege = |role: &'static str, function: &'static str| {
        sqlx::query_scalar::<_, bool>("SELECT has_function_privilege($1, $2, 'EXECUTE')")
            .bind(role)
            .bind(function)
            .fetch_one(&pool)
    };
    for function in [
        "archive_old_conversations(integer)",
        "cleanup_expired_magic_links()",
        "get_conversation_summary(uuid)",
        "refresh_daily_statistics()",
    ] {
        assert!(
            function_privilege("amal_app", function).await?,
            "amal_app EXECUTE {function}"
        );
    }
    assert!(!function_privilege("amal_readonly", "archive_old_conversations(integer)").await?);
    assert!(!function_privilege("amal_readonly", "refresh_daily_statistics()").await?);
    assert!(!function_privilege("amal_app", "set_embedding_dimension(text, integer)").await?);

    let connect: Vec<bool> = sqlx::query_scalar(
        "SELECT has_database_privilege(r, current_database(), 'CONNECT')
           FROM unnest(ARRAY['amal_app', 'amal_readonly', 'amal_admin']) AS r",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(connect, [true, true, true]);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../../seeds", scripts("reference"))
)]
async fn amal_app_can_do_its_work_and_future_tables_are_covered(pool: PgPool) -> TestResult {
    // Tables created later by the migrating role get the grants by default.
    sqlx::query("CREATE TABLE later_feature (id int PRIMARY KEY)")
        .execute(&pool)
        .await?;
    let privileges: (bool, bool, bool, bool) = sqlx::query_as(
        "SELECT has_table_privilege('amal_app', 'later_feature', 'INSERT'),
                has_table_privilege('amal_readonly', 'later_feature', 'SELECT'),
                has_table_privilege('amal_readonly', 'later_feature', 'INSERT'),
                has_table_privilege('amal_admin', 'later_feature', 'TRUNCATE')",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(privileges, (true, true, false, true));

    // Acting as amal_app: tickets (counter upsert, SLA lookup) and the statistics refresh work.
    let u = user(&pool, "app@example.dz").await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL ROLE amal_app")
        .execute(&mut *tx)
        .await?;
    let number: String = sqlx::query_scalar(
        "INSERT INTO support_tickets (user_id, subject, category, priority, status)
         VALUES ($1, 's', 'crisis', 'urgent', 'open') RETURNING ticket_number",
    )
    .bind(u)
    .fetch_one(&mut *tx)
    .await?;
    assert!(number.starts_with("TKT-"));
    sqlx::query("SELECT refresh_daily_statistics()")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT archive_old_conversations(30)")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;

    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL ROLE amal_readonly")
        .execute(&mut *tx)
        .await?;
    let err = sqlx::query("INSERT INTO audit_logs (action) VALUES ('x')")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("42501"),
        "insufficient_privilege"
    );
    Ok(())
}
