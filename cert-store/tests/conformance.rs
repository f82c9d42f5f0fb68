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
