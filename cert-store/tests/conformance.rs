//! The storage conformance suite against all three backends; PostgreSQL is a
//! real server started by testkit.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::Arc;

use cert_store::{FileStorage, MemoryStorage, PostgresStorage};

cert_store::storage_conformance_tests!(mod memory, || async { Arc::new(MemoryStorage::new()) });

cert_store::storage_conformance_tests!(mod file, || async {
    // Every check works in its own random namespace, so all could share one
    // directory; each gets its own, removed when the check ends.
    let dir = tempfile::tempdir().unwrap();
    (Arc::new(FileStorage::new(dir.path()).unwrap()), dir)
});

// The form without a module name still works (module `storage_conformance`).
mod file_shared_directory {
    use super::*;
    cert_store::storage_conformance_tests!(|| async {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance-file");
        Arc::new(FileStorage::new(dir).unwrap())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_passes_the_conformance_suite() {
    let pg = testkit::PostgresServer::start().unwrap();
    let storage = Arc::new(PostgresStorage::connect(&pg.connection_string()).await.unwrap());
    cert_store::conformance::run_all(Arc::clone(&storage)).await.unwrap();
    // A second connect on the same database finds the schema and the data.
    let again = PostgresStorage::connect(&pg.url()).await.unwrap();
    // With a keep-alive value: the server handle lives until the suite ends.
    cert_store::conformance::run_all((Arc::new(again), pg)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn file_backend_processes_share_leases_through_the_directory() {
    // Two FileStorage values on one directory behave like two processes:
    // nothing is shared in memory, only the files.
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(FileStorage::new(dir.path()).unwrap());
    let b = Arc::new(FileStorage::new(dir.path()).unwrap());
    use cert_store::{Key, Leases};
    let name = Key::new("issue/shop.example.com").unwrap();
    let guard = a.lock(&name, std::time::Duration::from_secs(30)).await.unwrap();
    assert!(b.try_lock(&name, std::time::Duration::from_secs(30)).await.unwrap().is_none());
    guard.release().await;
    assert!(b.try_lock(&name, std::time::Duration::from_secs(30)).await.unwrap().is_some());
}

/// PostgreSQL that accepts TLS connections only (`ssl=on`, `hostssl`), with a
/// server certificate from a test CA: the suite passes over TLS when the CA
/// is trusted as an extra root, and the session really is encrypted.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_over_tls_passes_the_conformance_suite() {
    use cert_store::{PgTls, PostgresOptions};
    use std::time::Duration;
    let pg = testkit::PostgresServer::builder().with_tls().start().unwrap();
    let ca = pg.tls_ca_pem().unwrap().as_bytes().to_vec();
    let options = PostgresOptions::default()
        .max_size(8)
        .wait_timeout(Duration::from_secs(20))
        .tls(PgTls::require().with_root_pem(&ca).unwrap());
    let storage = PostgresStorage::connect_with(&pg.connection_string(), options.clone()).await.unwrap();
    let client = storage.pool().get().await.unwrap();
    let row = client
        .query_one("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the session is not encrypted");
    eprintln!("TLS session: {}", row.get::<_, String>(1));
    drop(client);
    cert_store::conformance::run_all(Arc::new(storage)).await.unwrap();

    // The URL form with sslmode=require and the same CA.
    let url = format!("{}?sslmode=require", pg.url());
    let tls = PgTls::FromConfig.with_root_pem(&ca).unwrap();
    PostgresStorage::connect_with(&url, PostgresOptions::default().tls(tls)).await.unwrap();

    // Without the test CA the server certificate is not trusted, and plain
    // TCP is refused by this server: both fail, neither hangs.
    let quick = || {
        PostgresOptions::default()
            .wait_timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_secs(5))
    };
    let untrusted = PostgresStorage::connect_with(&url, quick()).await.unwrap_err();
    let chain = error_chain(&untrusted);
    assert!(chain.contains("certificate"), "untrusted CA: {chain}");
    let plain = PostgresStorage::connect_with(&pg.connection_string(), quick().tls(PgTls::Disable))
        .await
        .unwrap_err();
    assert!(
        error_chain(&plain).contains("no encryption") || error_chain(&plain).contains("pg_hba"),
        "{}",
        error_chain(&plain)
    );
    let bad_pem = PgTls::require().with_root_pem(b"not a certificate").unwrap_err();
    assert!(error_chain(&bad_pem).contains("PEM"), "{}", error_chain(&bad_pem));
}

/// A small pool and a wait timeout: with the only connection held, the next
/// operation fails after the timeout instead of waiting for ever; `from_pool`
/// takes a pool built by the caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_pool_size_and_wait_timeout() {
    use cert_store::{Key, PostgresOptions, Storage};
    use std::time::{Duration, Instant};
    let pg = testkit::PostgresServer::start().unwrap();
    let options = PostgresOptions::default().max_size(1).wait_timeout(Duration::from_millis(300));
    let storage = PostgresStorage::connect_with(&pg.connection_string(), options).await.unwrap();
    let held = storage.pool().get().await.unwrap();
    let started = Instant::now();
    let err = storage.get(&Key::new("k").unwrap()).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5), "waited {:?}", started.elapsed());
    assert!(error_chain(&err).to_lowercase().contains("timeout"), "{}", error_chain(&err));
    drop(held);
    storage.put(&Key::new("k").unwrap(), b"v").await.unwrap();

    let pool = storage.pool().clone();
    let again = PostgresStorage::from_pool(pool).await.unwrap();
    assert_eq!(again.get(&Key::new("k").unwrap()).await.unwrap().as_deref(), Some(&b"v"[..]));
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
