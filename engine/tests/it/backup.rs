//! `db backup` and `db restore`: real round trips through the `amal-engine` binary, on an
//! embedded cluster and on a DATABASE_URL database.

use std::path::{Path, PathBuf};

use amal_engine::db;
use amal_engine::db::backup::{self, Manifest};
use sqlx::PgPool;

use crate::fixtures::{TestResult, engine_command, engine_output, run_engine};

/// The path `db backup` printed as its last line.
fn backup_path(stdout: &str) -> PathBuf {
    PathBuf::from(stdout.lines().last().expect("a last line"))
}

async fn counts(pool: &PgPool) -> (i64, i64) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM users WHERE email LIKE '%@backup.test'), \
                (SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id \
                   JOIN users u ON u.id = c.user_id WHERE u.email LIKE '%@backup.test')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// `people` people with a conversation of two messages each.
async fn write_people(pool: &PgPool, from: usize, people: usize) {
    for i in from..from + people {
        let user: uuid::Uuid = sqlx::query_scalar(
            "INSERT INTO users (email, password_hash, name) VALUES ($1, '!', 'P') RETURNING id",
        )
        .bind(format!("p{i}@backup.test"))
        .fetch_one(pool)
        .await
        .unwrap();
        let conv: uuid::Uuid = sqlx::query_scalar(
            "INSERT INTO conversations (user_id, title) VALUES ($1, 't') RETURNING id",
        )
        .bind(user)
        .fetch_one(pool)
        .await
        .unwrap();
        for text in ["je n'arrive plus à dormir", "ما قدرتش نرقد"] {
            sqlx::query(
                "INSERT INTO messages (conversation_id, role, content) VALUES ($1, 'user', $2)",
            )
            .bind(conv)
            .bind(text)
            .execute(pool)
            .await
            .unwrap();
        }
    }
}

fn read_manifest(path: &Path) -> Manifest {
    serde_json::from_str(&std::fs::read_to_string(backup::manifest_path(path)).unwrap()).unwrap()
}

#[tokio::test]
async fn embedded_round_trip_checksum_newer_schema_and_rotation() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let url = run_engine(&data, &["db", "url"])
        .lines()
        .last()
        .unwrap()
        .to_string();
    run_engine(&data, &["seed"]);
    let pool = db::connect_url(&url, 2).await?;
    write_people(&pool, 0, 3).await;
    assert_eq!(counts(&pool).await, (3, 6));

    // Backup into the default directory: the last line is the file, the manifest is beside it.
    let path = backup_path(&run_engine(&data, &["db", "backup"]));
    assert!(path.starts_with(data.join("backups")), "{}", path.display());
    let manifest = read_manifest(&path);
    assert_eq!(manifest.schema_version, backup::latest_known_migration());
    assert_eq!(manifest.size_bytes, std::fs::metadata(&path)?.len());
    assert_eq!(manifest.sha256.len(), 64);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path)?.permissions().mode() & 0o777,
        0o600
    );

    // Damage: more people written after the backup, and the messages table dropped.
    write_people(&pool, 3, 2).await;
    sqlx::query("DROP TABLE messages CASCADE")
        .execute(&pool)
        .await?;
    sqlx::query("DELETE FROM users WHERE email = 'p0@backup.test'")
        .execute(&pool)
        .await?;
    pool.close().await;

    // Without --yes: refused, nothing touched.
    let out = engine_output(&data, &["db", "restore", path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));

    let restored = run_engine(&data, &["db", "restore", path.to_str().unwrap(), "--yes"]);
    assert!(restored.contains("restored"), "{restored}");
    let pool = db::connect_url(&url, 2).await?;
    assert_eq!(
        counts(&pool).await,
        (3, 6),
        "exactly what the backup held: the dropped table back, the later people gone"
    );

    // A damaged copy fails its checksum and the database is left as it was.
    let damaged = dir.path().join("damaged.dump");
    let mut bytes = std::fs::read(&path)?;
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&damaged, bytes)?;
    std::fs::copy(
        backup::manifest_path(&path),
        backup::manifest_path(&damaged),
    )?;
    write_people(&pool, 10, 1).await;
    let out = engine_output(
        &data,
        &["db", "restore", damaged.to_str().unwrap(), "--yes"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not match its manifest"), "{err}");
    assert_eq!(counts(&pool).await, (4, 8), "nothing restored");

    // A dump from a newer schema is refused, clearly.
    let newer = dir.path().join("newer.dump");
    std::fs::copy(&path, &newer)?;
    let mut manifest = read_manifest(&path);
    manifest.schema_version = backup::latest_known_migration() + 1;
    std::fs::write(
        backup::manifest_path(&newer),
        serde_json::to_string(&manifest)?,
    )?;
    let out = engine_output(&data, &["db", "restore", newer.to_str().unwrap(), "--yes"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("newer than this engine's latest migration"),
        "{err}"
    );
    assert_eq!(counts(&pool).await, (4, 8), "nothing restored");
    pool.close().await;

    // Rotation: --keep 2 leaves the two newest in the chosen directory.
    let elsewhere = dir.path().join("elsewhere");
    let to = elsewhere.to_str().unwrap();
    let first = backup_path(&run_engine(
        &data,
        &["db", "backup", "--to", to, "--keep", "2"],
    ));
    let second = backup_path(&run_engine(
        &data,
        &["db", "backup", "--to", to, "--keep", "2"],
    ));
    let third = backup_path(&run_engine(
        &data,
        &["db", "backup", "--to", to, "--keep", "2"],
    ));
    assert!(!first.exists() && !backup::manifest_path(&first).exists());
    assert!(second.exists() && third.exists());
    let kept: Vec<_> = backup::list(&elsewhere)?
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(kept, vec![third, second]);

    run_engine(&data, &["db", "stop"]);
    Ok(())
}

#[sqlx::test(
    migrations = "../migrations",
    fixtures(path = "../../../seeds", scripts("reference"))
)]
async fn round_trip_on_a_database_url(pool: PgPool) -> TestResult {
    let url = crate::fixtures::own_database_url(&pool);
    let dir = tempfile::tempdir()?;
    let run = |args: &[&str]| {
        let out = engine_command(dir.path(), args)
            .env("DATABASE_URL", &url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    write_people(&pool, 0, 2).await;
    let backups = dir.path().join("b");
    let path = backup_path(&run(&["db", "backup", "--to", backups.to_str().unwrap()]));
    assert!(read_manifest(&path).source.contains("***") || !url.contains(':'));
    sqlx::query("TRUNCATE users CASCADE").execute(&pool).await?;
    assert_eq!(counts(&pool).await, (0, 0));
    let out = run(&["db", "restore", path.to_str().unwrap(), "--yes"]);
    assert!(out.contains("healthy") || out.contains("restored"), "{out}");
    assert_eq!(counts(&pool).await, (2, 4));
    Ok(())
}

/// A restore to a moment between two writes keeps the first and not the second.
#[tokio::test]
async fn point_in_time_restore_between_two_writes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data");
    let url = run_engine(&data, &["db", "url"])
        .lines()
        .last()
        .unwrap()
        .to_string();
    run_engine(&data, &["seed"]);
    let pool = db::connect_url(&url, 2).await?;
    let archive_mode: String = sqlx::query_scalar("SHOW archive_mode")
        .fetch_one(&pool)
        .await?;
    assert_eq!(
        archive_mode, "on",
        "a new embedded cluster archives its WAL"
    );
    write_people(&pool, 0, 1).await;

    // The base backup comes with the dump.
    let out = run_engine(&data, &["db", "backup"]);
    assert!(out.contains("base backup"), "{out}");
    write_people(&pool, 1, 1).await; // the first write after the base backup
    let between: chrono::DateTime<chrono::Utc> = sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&pool)
        .await?;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    write_people(&pool, 2, 1).await; // the second write
    assert_eq!(counts(&pool).await, (3, 6));
    pool.close().await;

    let at = between.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let out = engine_output(&data, &["db", "restore", "--at", &at]);
    assert!(!out.status.success(), "refused without --yes");
    let started = std::time::Instant::now();
    let restored = run_engine(&data, &["db", "restore", "--at", &at, "--yes"]);
    eprintln!("point-in-time restore took {:?}", started.elapsed());
    assert!(restored.contains("restored to"), "{restored}");

    let pool = db::connect_url(&url, 2).await?;
    let emails: Vec<String> = sqlx::query_scalar(
        "SELECT email::text FROM users WHERE email LIKE '%@backup.test' ORDER BY email",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(emails, ["p0@backup.test", "p1@backup.test"]);
    assert_eq!(counts(&pool).await, (2, 4));
    // The restored cluster is writable and archives on its new timeline.
    write_people(&pool, 3, 1).await;
    pool.close().await;

    // A moment before the oldest base backup cannot be reached.
    let out = engine_output(
        &data,
        &["db", "restore", "--at", "2020-01-01 00:00:00", "--yes"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no base backup finished before"), "{err}");
    run_engine(&data, &["db", "stop"]);
    Ok(())
}
