//! The embedded cluster: created on first use, reused, survives stop and start, shared safely
//! between processes.

use amal_engine::db::{self, embedded::EmbeddedCluster};

fn fresh_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("amal-cluster-")
        .tempdir()
        .expect("tempdir")
}

#[tokio::test]
async fn starts_survives_stop_and_start_and_is_reused() {
    let dir = fresh_dir();
    let cluster = EmbeddedCluster::new(dir.path(), None).expect("binaries found");
    assert!(!cluster.status().unwrap().initialized);

    let url = cluster.start().expect("first start creates the cluster");
    let status = cluster.status().unwrap();
    assert!(status.initialized && status.running, "{status:?}");
    let first_pid = status.pid.expect("running cluster has a pid");

    let pool = db::connect_url(&url, 2).await.unwrap();
    sqlx::query("CREATE TABLE survival (note text)")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO survival VALUES ('still here')")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    // A second handle on the same directory reuses the running server instead of creating one.
    let again = EmbeddedCluster::new(dir.path(), None).unwrap();
    assert_eq!(again.start().unwrap(), url);
    assert_eq!(again.status().unwrap().pid, Some(first_pid));

    assert!(cluster.stop().unwrap(), "was running");
    assert!(!cluster.status().unwrap().running);
    assert!(!cluster.stop().unwrap(), "second stop is a no-op");

    let restarted = cluster.start().expect("restart");
    assert_eq!(restarted, url, "same credentials and port after a restart");
    let pool = db::connect_url(&restarted, 2).await.unwrap();
    let note: String = sqlx::query_scalar("SELECT note FROM survival")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(note, "still here");
    pool.close().await;

    cluster.destroy().unwrap();
    assert!(!cluster.status().unwrap().initialized);
}

#[test]
fn concurrent_first_starts_create_one_cluster() {
    let dir = fresh_dir();
    let urls: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    EmbeddedCluster::new(dir.path(), None)
                        .and_then(|c| c.start())
                        .expect("start")
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(urls.windows(2).all(|w| w[0] == w[1]), "{urls:?}");
    EmbeddedCluster::new(dir.path(), None)
        .unwrap()
        .destroy()
        .unwrap();
}

#[test]
fn moves_to_a_free_port_when_its_port_was_taken() {
    let dir = fresh_dir();
    let cluster = EmbeddedCluster::new(dir.path(), None).unwrap();
    let url = cluster.start().unwrap();
    let port = cluster.status().unwrap().port.unwrap();
    cluster.stop().unwrap();

    let squatter =
        std::net::TcpListener::bind(("127.0.0.1", port)).expect("port is free after stop");
    let moved = cluster.start().expect("starts on another port");
    let new_port = cluster.status().unwrap().port.unwrap();
    assert_ne!(new_port, port);
    assert_ne!(moved, url);
    drop(squatter);
    cluster.destroy().unwrap();
}

#[test]
fn missing_binaries_are_named() {
    let err = EmbeddedCluster::new(
        fresh_dir().path(),
        Some(std::path::Path::new("/nonexistent/pg/bin")),
    )
    .expect_err("no binaries there");
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent/pg/bin") && msg.contains("AMAL_PG_BIN"),
        "{msg}"
    );
}
