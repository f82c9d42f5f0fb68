//! The SQLite backend of `examples/examples/sqlite_storage` passes cert-store's
//! whole conformance suite, creates its file owner-only, and shares leases
//! between two connections to one file (two processes).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

#[path = "../examples/sqlite_storage/storage.rs"]
mod storage;

use std::{sync::Arc, time::Duration};

use cert_store::{Key, Leases, Storage};
use storage::SqliteStorage;

fn open() -> (Arc<SqliteStorage>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Arc::new(SqliteStorage::open(dir.path().join("store.db")).unwrap()), dir)
}

cert_store::storage_conformance_tests!(mod sqlite_suite, || async { open() });

#[cfg(unix)]
#[tokio::test]
async fn the_database_file_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (storage, _dir) = open();
    storage.put(&Key::new("tls/certs/a").unwrap(), b"private key material").await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", storage.path().display());
        if let Ok(meta) = std::fs::metadata(&path) {
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "{path}");
        }
    }
}

#[tokio::test]
async fn two_connections_share_values_and_leases() {
    let (a, dir) = open();
    let b = Arc::new(SqliteStorage::open(dir.path().join("store.db")).unwrap());
    let key = Key::new("shared/value").unwrap();
    a.put(&key, b"from a").await.unwrap();
    assert_eq!(b.get(&key).await.unwrap().as_deref(), Some(&b"from a"[..]));
    let lease = Key::new("shared/lease").unwrap();
    let guard = a.lock(&lease, Duration::from_secs(30)).await.unwrap();
    assert!(b.try_lock(&lease, Duration::from_secs(30)).await.unwrap().is_none(), "b must see a's lease");
    guard.release().await;
    assert!(b.try_lock(&lease, Duration::from_secs(30)).await.unwrap().is_some());
}
