//! Staff accounts: argon2id passwords, management with audit rows, lockout, sessions.

use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use amal_engine::sessions::{self, ClientInfo, SessionProblem};
use amal_engine::staff::{self, LOCKOUT_MINUTES, Password, StaffError, StaffRole};

use crate::fixtures::{TestResult, end_user, now_us, staff_account, ticket_at};

fn pw(s: &str) -> Password {
    Password::new(s).unwrap()
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn accounts_are_managed_and_audited(pool: PgPool) -> TestResult {
    let mut conn = pool.acquire().await?;
    let admin = staff::add(
        &mut conn,
        None,
        "Admin@Amal.Example",
        "Leila",
        StaffRole::Admin,
        &pw("admin-password-1"),
    )
    .await?;
    assert_eq!(
        (admin.email.as_str(), admin.role.as_str()),
        ("admin@amal.example", "admin")
    );
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
        .bind(admin.id)
        .fetch_one(&pool)
        .await?;
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let leila = staff::actor_by_email(&mut conn, "admin@amal.example").await?;

    let nadia = staff::add(
        &mut conn,
        Some(&leila),
        "nadia@amal.example",
        "Nadia",
        StaffRole::Agent,
        &pw("nadia-password-1"),
    )
    .await?;
    assert!(matches!(
        staff::add(
            &mut conn,
            None,
            "nadia@amal.example",
            "N",
            StaffRole::Agent,
            &pw("xxxxxxxxxxxx")
        )
        .await,
        Err(StaffError::AlreadyExists(_))
    ));
    end_user(&pool, "user@example.dz").await;
    assert!(matches!(
        staff::add(
            &mut conn,
            None,
            "user@example.dz",
            "U",
            StaffRole::Agent,
            &pw("xxxxxxxxxxxx")
        )
        .await,
        Err(StaffError::EndUserEmail(_))
    ));
    assert!(matches!(
        staff::add(
            &mut conn,
            None,
            "not-an-email",
            "U",
            StaffRole::Agent,
            &pw("xxxxxxxxxxxx")
        )
        .await,
        Err(StaffError::InvalidEmail(_))
    ));
    assert!(matches!(
        Password::new("123456789"),
        Err(StaffError::WeakPassword(_))
    ));
    let agent = staff::actor_by_email(&mut conn, "nadia@amal.example").await?;
    assert!(matches!(
        staff::set_role(
            &mut conn,
            Some(&agent),
            "nadia@amal.example",
            StaffRole::Admin
        )
        .await,
        Err(StaffError::Forbidden { .. })
    ));

    let promoted = staff::set_role(
        &mut conn,
        Some(&leila),
        "nadia@amal.example",
        StaffRole::Supervisor,
    )
    .await?;
    assert_eq!(promoted.role, "supervisor");
    // The last active admin cannot be demoted or disabled.
    assert!(matches!(
        staff::set_role(&mut conn, None, "admin@amal.example", StaffRole::Agent).await,
        Err(StaffError::LastAdmin(_))
    ));
    assert!(matches!(
        amal_engine::roster::disable(
            &mut conn,
            None,
            "admin@amal.example",
            &Default::default(),
            now_us()
        )
        .await,
        Err(StaffError::LastAdmin(_))
    ));
    // Disabling releases the tickets the account held.
    let (user, conv) = end_user(&pool, "u2@example.dz").await;
    let t = ticket_at(&mut conn, user, Some(conv), "high", now_us()).await;
    let nadia_actor = staff::actor_by_email(&mut conn, "nadia@amal.example").await?;
    amal_engine::tickets::take(&mut conn, &nadia_actor, &t.ticket_number, now_us()).await?;
    let disabled = amal_engine::roster::disable(
        &mut conn,
        Some(&leila),
        "nadia@amal.example",
        &Default::default(),
        now_us(),
    )
    .await?;
    assert!(!disabled.is_active);
    let (status, holder): (String, Option<Uuid>) =
        sqlx::query_as("SELECT status, assigned_to FROM support_tickets WHERE id = $1")
            .bind(t.id)
            .fetch_one(&pool)
            .await?;
    assert_eq!((status.as_str(), holder), ("open", None));
    assert!(matches!(
        staff::actor_by_email(&mut conn, "nadia@amal.example").await,
        Err(StaffError::NotStaff(_))
    ));
    staff::set_password(
        &mut conn,
        Some(&leila),
        "nadia@amal.example",
        &pw("new-password-22"),
        now_us(),
    )
    .await?;

    let listed: Vec<String> = staff::list(&mut conn)
        .await?
        .into_iter()
        .map(|a| a.email)
        .collect();
    assert_eq!(listed, ["admin@amal.example", "nadia@amal.example"]);

    let audit: Vec<(String, Option<Uuid>)> = sqlx::query_as(
        "SELECT action, user_id FROM audit_logs WHERE resource_id = $1 ORDER BY created_at, id",
    )
    .bind(nadia.id)
    .fetch_all(&pool)
    .await?;
    assert_eq!(
        audit,
        [
            ("staff.add".to_string(), Some(leila.id)),
            ("staff.role".to_string(), Some(leila.id)),
            ("staff.disable".to_string(), Some(leila.id)),
            ("staff.passwd".to_string(), Some(leila.id)),
        ]
    );
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn five_failures_lock_the_account_for_fifteen_minutes(pool: PgPool) -> TestResult {
    let mut conn = pool.acquire().await?;
    staff::add(
        &mut conn,
        None,
        "agent@amal.example",
        "Nadia",
        StaffRole::Agent,
        &pw("right-password-1"),
    )
    .await?;
    let client = ClientInfo {
        ip: Some("127.0.0.1".parse()?),
        user_agent: Some("test".into()),
    };
    let t0: DateTime<Utc> = "2026-03-10T09:00:00Z".parse()?;
    for i in 1..=4 {
        let err = staff::sign_in(
            &mut conn,
            "agent@amal.example",
            "wrong-password",
            t0,
            &client,
        )
        .await
        .unwrap_err();
        assert!(
            matches!(err, StaffError::InvalidCredentials),
            "attempt {i}: {err}"
        );
        let failures: i32 = sqlx::query_scalar(
            "SELECT failed_login_attempts FROM users WHERE email = 'agent@amal.example'",
        )
        .fetch_one(&pool)
        .await?;
        assert_eq!(
            failures, i,
            "failures are committed although the sign-in fails"
        );
    }
    let err = staff::sign_in(
        &mut conn,
        "agent@amal.example",
        "wrong-password",
        t0,
        &client,
    )
    .await
    .unwrap_err();
    let until = t0 + Duration::minutes(LOCKOUT_MINUTES);
    assert!(
        matches!(err, StaffError::Locked { until: u } if u == until),
        "{err}"
    );
    // While locked, even the right password is refused.
    let err = staff::sign_in(
        &mut conn,
        "agent@amal.example",
        "right-password-1",
        t0 + Duration::minutes(14),
        &client,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StaffError::Locked { .. }), "{err}");
    // After 15 minutes it works, and the count starts again.
    let session = staff::sign_in(
        &mut conn,
        "agent@amal.example",
        "right-password-1",
        until,
        &client,
    )
    .await?;
    assert_eq!(session.actor.email, "agent@amal.example");
    let (failures, locked, last_login): (i32, Option<DateTime<Utc>>, Option<DateTime<Utc>>) =
        sqlx::query_as(
            "SELECT failed_login_attempts, locked_until, last_login_at FROM users WHERE email = 'agent@amal.example'",
        )
        .fetch_one(&pool)
        .await?;
    assert_eq!((failures, locked, last_login), (0, None, Some(until)));
    // Unknown e-mail: the same answer as a wrong password.
    assert!(matches!(
        staff::sign_in(
            &mut conn,
            "nobody@amal.example",
            "whatever-pass",
            t0,
            &client
        )
        .await,
        Err(StaffError::InvalidCredentials)
    ));
    let audit: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit_logs WHERE action LIKE 'staff.sign_in%' ORDER BY created_at, id",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(
        audit,
        [
            "staff.sign_in_failed",
            "staff.sign_in_failed",
            "staff.sign_in_failed",
            "staff.sign_in_failed",
            "staff.sign_in_failed",
            "staff.sign_in_refused",
            "staff.sign_in",
        ]
    );
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn sessions_store_a_hash_expire_and_revoke(pool: PgPool) -> TestResult {
    let mut conn = pool.acquire().await?;
    staff::add(
        &mut conn,
        None,
        "sup@amal.example",
        "Samir",
        StaffRole::Supervisor,
        &pw("sup-password-12"),
    )
    .await?;
    staff::add(
        &mut conn,
        None,
        "admin@amal.example",
        "Leila",
        StaffRole::Admin,
        &pw("adm-password-12"),
    )
    .await?;
    let t0: DateTime<Utc> = "2026-03-10T09:00:00Z".parse()?;
    let s = staff::sign_in(
        &mut conn,
        "sup@amal.example",
        "sup-password-12",
        t0,
        &ClientInfo::default(),
    )
    .await?;
    assert_eq!(s.token.len(), 64);
    let stored: String =
        sqlx::query_scalar("SELECT refresh_token_hash FROM user_sessions WHERE id = $1")
            .bind(s.session_id)
            .fetch_one(&pool)
            .await?;
    assert_eq!(stored, sessions::token_hash(&s.token));
    assert_ne!(stored, s.token, "the token itself is never stored");
    assert_eq!(s.expires_at, t0 + Duration::hours(staff::SESSION_TTL_HOURS));
    let who = staff::authenticate(&mut conn, &s.token, t0 + Duration::hours(1)).await?;
    assert_eq!(
        (who.email.as_str(), who.role),
        ("sup@amal.example", StaffRole::Supervisor)
    );
    assert!(matches!(
        staff::authenticate(&mut conn, &s.token, s.expires_at).await,
        Err(StaffError::Session(SessionProblem::Expired))
    ));
    assert!(matches!(
        staff::authenticate(&mut conn, "0000", t0).await,
        Err(StaffError::Session(SessionProblem::Unknown))
    ));
    assert!(staff::sign_out(&mut conn, &s.token, t0 + Duration::hours(2)).await?);
    assert!(matches!(
        staff::authenticate(&mut conn, &s.token, t0 + Duration::hours(2)).await,
        Err(StaffError::Session(SessionProblem::Revoked))
    ));
    // A new password revokes every session.
    let s2 = staff::sign_in(
        &mut conn,
        "sup@amal.example",
        "sup-password-12",
        t0,
        &ClientInfo::default(),
    )
    .await?;
    staff::set_password(
        &mut conn,
        None,
        "sup@amal.example",
        &pw("sup-password-13"),
        t0,
    )
    .await?;
    assert!(matches!(
        staff::authenticate(&mut conn, &s2.token, t0).await,
        Err(StaffError::Session(SessionProblem::Revoked))
    ));
    // So does disabling the account.
    let s3 = staff::sign_in(
        &mut conn,
        "sup@amal.example",
        "sup-password-13",
        t0,
        &ClientInfo::default(),
    )
    .await?;
    amal_engine::roster::disable(&mut conn, None, "sup@amal.example", &Default::default(), t0)
        .await?;
    assert!(staff::authenticate(&mut conn, &s3.token, t0).await.is_err());
    assert!(
        staff::sign_in(
            &mut conn,
            "sup@amal.example",
            "sup-password-13",
            t0,
            &ClientInfo::default()
        )
        .await
        .is_err()
    );
    Ok(())
}

#[sqlx::test(migrations = "../migrations")]
async fn demo_seed_gives_demo_staff_a_password(pool: PgPool) -> TestResult {
    let accounts = amal_engine::seed::demo(&pool).await?;
    assert_eq!(accounts.len(), 3);
    assert!(accounts.iter().all(|a| a.password == staff::DEMO_PASSWORD));
    let mut conn = pool.acquire().await?;
    let s = staff::sign_in(
        &mut conn,
        "agent.demo@amal.example",
        staff::DEMO_PASSWORD,
        now_us(),
        &ClientInfo::default(),
    )
    .await?;
    assert_eq!(s.actor.role, StaffRole::Agent);
    // Re-seeding keeps a password someone changed.
    staff::set_password(
        &mut conn,
        None,
        "agent.demo@amal.example",
        &pw("changed-password"),
        now_us(),
    )
    .await?;
    amal_engine::seed::demo(&pool).await?;
    assert!(
        staff::sign_in(
            &mut conn,
            "agent.demo@amal.example",
            "changed-password",
            now_us(),
            &ClientInfo::default()
        )
        .await
        .is_ok()
    );
    Ok(())
}

/// A live stream re-checks its session with `users::session_is_live`, by the same rules as
/// sign-in: signed out, expired, disabled, deleted and staff accounts are not live.
#[sqlx::test(migrations = "../migrations")]
async fn a_session_stays_live_only_while_sign_in_would_accept_it(pool: PgPool) -> TestResult {
    use amal_engine::users;
    let mut conn = pool.acquire().await?;
    let now = Utc::now();
    let open = || async {
        let mut conn = pool.acquire().await.unwrap();
        users::anonymous_session(&mut conn, true, 24, now, &ClientInfo::default())
            .await
            .unwrap()
    };
    let live = |s: Uuid, at: DateTime<Utc>| {
        let pool = pool.clone();
        async move {
            let mut conn = pool.acquire().await.unwrap();
            users::session_is_live(&mut conn, s, at).await.unwrap()
        }
    };
    let session = open().await;
    assert!(live(session.session_id, now).await);
    assert!(
        !live(session.session_id, session.expires_at).await,
        "expired"
    );
    assert!(!live(Uuid::new_v4(), now).await, "unknown");

    let cases = [
        "UPDATE user_sessions SET revoked_at = now() WHERE id = $1",
        "UPDATE users SET is_active = false WHERE id = (SELECT user_id FROM user_sessions WHERE id = $1)",
        "UPDATE users SET deleted_at = now() WHERE id = (SELECT user_id FROM user_sessions WHERE id = $1)",
        "UPDATE users SET staff_role = 'agent' WHERE id = (SELECT user_id FROM user_sessions WHERE id = $1)",
    ];
    for change in cases {
        let session = open().await;
        assert!(live(session.session_id, now).await);
        sqlx::query(change)
            .bind(session.session_id)
            .execute(&mut *conn)
            .await?;
        assert!(!live(session.session_id, now).await, "{change}");
    }
    Ok(())
}

/// An action from the CLI over SSH keeps the machine's user and the SSH client in its audit row.
#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn cli_actions_keep_the_machine_user_and_the_ssh_client(pool: PgPool) -> TestResult {
    let url = crate::fixtures::own_database_url(&pool);
    let dir = tempfile::tempdir()?;
    let mut child = crate::fixtures::engine_command(
        dir.path(),
        &[
            "staff",
            "add",
            "rim@amal.example",
            "--name",
            "Rim",
            "--role",
            "agent",
        ],
    )
    .env("DATABASE_URL", &url)
    .env("SSH_CLIENT", "203.0.113.9 52144 22")
    .stdin(std::process::Stdio::piped())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"a long enough password\n")?;
    }
    let out = child.wait_with_output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (channel, os_user, ssh, ip): (
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
    ) = sqlx::query_as(
        "SELECT channel::text, os_user, ssh_client, host(ip_address) FROM audit_logs \
              WHERE action = 'staff.add'",
    )
    .fetch_one(&pool)
    .await?;
    assert_eq!(channel.as_deref(), Some("cli"));
    assert!(os_user.is_some_and(|u| !u.is_empty()));
    assert_eq!(ssh.as_deref(), Some("203.0.113.9 52144 22"));
    assert_eq!(ip.as_deref(), Some("203.0.113.9"));
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn admins_unlock_and_enable_accounts_audited(pool: PgPool) -> TestResult {
    let mut conn = pool.acquire().await?;
    let admin = staff_account(&pool, "admin@amal.example", "admin").await;
    let agent = staff_account(&pool, "agent@amal.example", "agent").await;
    let now = now_us();
    sqlx::query("UPDATE users SET failed_login_attempts = 5, locked_until = $2 WHERE id = $1")
        .bind(agent.id)
        .bind(now + Duration::minutes(LOCKOUT_MINUTES))
        .execute(&pool)
        .await?;
    // Only admins unlock, and nobody unlocks themselves into a role they lack.
    let refused = staff::unlock(&mut conn, Some(&agent), "agent@amal.example", now).await;
    assert!(
        matches!(refused, Err(StaffError::Forbidden { .. })),
        "{refused:?}"
    );
    let unlocked = staff::unlock(&mut conn, Some(&admin), "Agent@Amal.Example", now)
        .await?
        .expect("it was locked");
    assert_eq!(
        (unlocked.failed_login_attempts, unlocked.locked_until),
        (0, None)
    );
    let (attempts, until): (i32, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT failed_login_attempts, locked_until FROM users WHERE id = $1")
            .bind(agent.id)
            .fetch_one(&pool)
            .await?;
    assert_eq!((attempts, until), (0, None));
    // Unlocking an unlocked account changes nothing and writes nothing.
    assert!(
        staff::unlock(&mut conn, Some(&admin), "agent@amal.example", now)
            .await?
            .is_none()
    );
    assert!(matches!(
        staff::unlock(&mut conn, Some(&admin), "nobody@amal.example", now).await,
        Err(StaffError::NotStaff(_))
    ));

    // Disabled, then enabled again; agents may not enable.
    amal_engine::roster::disable(
        &mut conn,
        Some(&admin),
        "agent@amal.example",
        &Default::default(),
        now,
    )
    .await?;
    assert!(matches!(
        staff::enable(&mut conn, Some(&agent), "agent@amal.example").await,
        Err(StaffError::Forbidden { .. })
    ));
    let enabled = staff::enable(&mut conn, Some(&admin), "agent@amal.example")
        .await?
        .expect("it was disabled");
    assert!(enabled.is_active);
    assert!(
        staff::enable(&mut conn, Some(&admin), "agent@amal.example")
            .await?
            .is_none()
    );
    let actions: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "SELECT action, details FROM audit_logs WHERE user_id = $1 AND resource_id = $2 \
         ORDER BY created_at",
    )
    .bind(admin.id)
    .bind(agent.id)
    .fetch_all(&pool)
    .await?;
    let names: Vec<&str> = actions.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(names, vec!["staff.unlock", "staff.disable", "staff.enable"]);
    assert_eq!(actions[0].1["failed_attempts"], 5);

    // The admin screen's view: admins only, everything in one read.
    let refused = amal_engine::admin::view(&mut conn, &agent).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("the admin screen needs admin")),
        "{refused:?}"
    );
    let view = amal_engine::admin::view(&mut conn, &admin).await?;
    assert_eq!(view.staff.len(), 2);
    assert_eq!(view.staff[0].account.email, "admin@amal.example");
    assert_eq!(
        view.staff[1].profile.capacity, 5,
        "defaults for a member never set"
    );
    assert_eq!(view.targets.len(), 4);
    assert_eq!(view.retention.len(), 3);
    Ok(())
}
