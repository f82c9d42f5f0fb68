//! The typed `CertStore` layer over the memory and file backends.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::{os::unix::fs::PermissionsExt, sync::Arc};

use cert_store::{CertBundle, CertError, CertStore, FileStorage, MemoryStorage, Provenance, Storage};
use common::*;
use time::{Duration, OffsetDateTime};

fn bundle(names: &[&str]) -> CertBundle {
    let (c, k) = self_signed(names);
    CertBundle::from_pem(&c, &k, Provenance::LocalCa).unwrap()
}

fn bundle_expiring_in(name: &str, days: i64) -> CertBundle {
    let (c, k) = with_params(|p| {
        p.subject_alt_names = vec![raw_dns_san(name)];
        p.not_before = OffsetDateTime::now_utc() - Duration::days(100);
        p.not_after = OffsetDateTime::now_utc() + Duration::days(days);
    });
    CertBundle::from_pem(&c, &k, Provenance::LocalCa).unwrap()
}

#[tokio::test]
async fn save_load_delete_round_trip() {
    let store = CertStore::new(Arc::new(MemoryStorage::new()));
    let b = bundle(&["shop.example.com", "www.shop.example.com"]);
    store.save(&b).await.unwrap();
    assert_eq!(store.load("SHOP.example.com.").await.unwrap().as_ref(), Some(&b));
    assert_eq!(store.load("other.example.com").await.unwrap(), None);
    assert_eq!(store.names().await.unwrap(), ["shop.example.com"]);
    store.delete("shop.example.com").await.unwrap();
    assert_eq!(store.load("shop.example.com").await.unwrap(), None);
    assert!(store.index().await.unwrap().is_empty());
}

#[tokio::test]
async fn invalid_names_are_refused_before_storage() {
    let store = CertStore::new(Arc::new(MemoryStorage::new()));
    for bad in ["../etc", "a..b", "", "bad_name.example.com"] {
        assert!(matches!(store.load(bad).await, Err(CertError::InvalidName { .. })), "{bad:?}");
    }
}

#[tokio::test]
async fn corrupt_record_is_a_typed_error() {
    let storage = Arc::new(MemoryStorage::new());
    let store = CertStore::new(Arc::clone(&storage));
    storage.put(&"tls/certs/x.example.com".try_into().unwrap(), b"{not json").await.unwrap();
    assert!(matches!(
        store.load("x.example.com").await,
        Err(CertError::Storage(cert_store::StorageError::Corrupt { .. }))
    ));
    // In the layout before `tls/` too.
    storage.put(&"certs/y.example.com".try_into().unwrap(), b"{not json").await.unwrap();
    assert!(matches!(
        store.load("y.example.com").await,
        Err(CertError::Storage(cert_store::StorageError::Corrupt { .. }))
    ));
}

#[tokio::test]
async fn due_before_uses_the_index() {
    let storage = Arc::new(MemoryStorage::new());
    let store = CertStore::new(Arc::clone(&storage));
    store.save(&bundle_expiring_in("soon.example.com", 10)).await.unwrap();
    store.save(&bundle_expiring_in("later.example.com", 80)).await.unwrap();
    store.save(&bundle_expiring_in("far.example.com", 300)).await.unwrap();
    let now = OffsetDateTime::now_utc();
    let due: Vec<String> = store.due_before(now).await.unwrap().into_iter().map(|d| d.0).collect();
    assert_eq!(due, ["soon.example.com"]);
    let due: Vec<String> =
        store.due_before(now + Duration::days(60)).await.unwrap().into_iter().map(|d| d.0).collect();
    assert_eq!(due, ["soon.example.com", "later.example.com"]);

    // The query reads the index, not the certificates: remove a certificate
    // behind the store's back and it is still reported until rebuild_index.
    storage.delete(&cert_store::keys::certificate("soon.example.com").unwrap()).await.unwrap();
    assert_eq!(store.due_before(now).await.unwrap().len(), 1);
    store.rebuild_index().await.unwrap();
    assert!(store.due_before(now).await.unwrap().is_empty());
    assert_eq!(store.index().await.unwrap().len(), 2);
}

#[tokio::test]
async fn two_stores_on_one_storage_share_the_index() {
    let storage = Arc::new(MemoryStorage::new());
    let a = CertStore::new(Arc::clone(&storage));
    let b = CertStore::new(Arc::clone(&storage));
    a.save(&bundle_expiring_in("one.example.com", 5)).await.unwrap();
    assert_eq!(b.index().await.unwrap().len(), 1);
    b.save(&bundle_expiring_in("two.example.com", 5)).await.unwrap();
    assert_eq!(a.index().await.unwrap().len(), 2);
}

#[tokio::test]
async fn accounts_are_kept_per_directory() {
    let store = CertStore::new(Arc::new(MemoryStorage::new()));
    let le = "https://acme-v02.api.letsencrypt.org/directory";
    let staging = "https://acme-staging-v02.api.letsencrypt.org/directory";
    assert_eq!(store.load_account(le).await.unwrap(), None);
    store.save_account(le, b"{\"id\":1}").await.unwrap();
    store.save_account(staging, b"{\"id\":2}").await.unwrap();
    assert_eq!(store.load_account(le).await.unwrap().as_deref(), Some(&b"{\"id\":1}"[..]));
    assert_eq!(store.load_account(staging).await.unwrap().as_deref(), Some(&b"{\"id\":2}"[..]));
    // Odd URLs still map to valid, distinct keys.
    store.save_account("https://127.0.0.1:14000/dir?x=../../y", b"3").await.unwrap();
    store.save_account("https://127.0.0.1:14000/dir?x=__/__/y", b"4").await.unwrap();
    assert_eq!(
        store.load_account("https://127.0.0.1:14000/dir?x=../../y").await.unwrap().as_deref(),
        Some(&b"3"[..])
    );
}

#[tokio::test]
async fn files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let store = CertStore::new(Arc::new(FileStorage::new(dir.path().join("store")).unwrap()));
    store.save(&bundle(&["p.example.com"])).await.unwrap();
    let mode = |p: std::path::PathBuf| std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
    let root = dir.path().join("store");
    assert_eq!(mode(root.clone()), 0o700);
    assert_eq!(mode(root.join("tls")), 0o700);
    assert_eq!(mode(root.join("tls/certs")), 0o700);
    assert_eq!(mode(root.join("tls/certs/p.example.com")), 0o600, "bundle holds the private key");
    assert_eq!(mode(root.join("tls/index/expiry")), 0o600);
    // No temporary file is left behind by a completed write.
    let leftovers: Vec<_> = std::fs::read_dir(root.join("tls/certs"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_saves_from_two_stores_lose_no_index_entry() {
    let dir = tempfile::tempdir().unwrap();
    // Two FileStorage values on one directory: like two processes.
    let a = Arc::new(CertStore::new(Arc::new(FileStorage::new(dir.path()).unwrap())));
    let b = Arc::new(CertStore::new(Arc::new(FileStorage::new(dir.path()).unwrap())));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = if i % 2 == 0 { Arc::clone(&a) } else { Arc::clone(&b) };
        let bundle = bundle(&[&format!("c{i}.example.com")]);
        tasks.push(tokio::spawn(async move { store.save(&bundle).await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(a.index().await.unwrap().len(), 20);
    assert_eq!(b.names().await.unwrap().len(), 20);
}

#[tokio::test]
async fn save_many_writes_every_bundle_and_indexes_them_once() {
    let store = CertStore::new(Arc::new(MemoryStorage::new()));
    let bundles = vec![bundle_expiring_in("a.example.com", 5), bundle_expiring_in("b.example.com", 80)];
    store.save_many(&bundles).await.unwrap();
    assert_eq!(store.names().await.unwrap(), ["a.example.com", "b.example.com"]);
    assert_eq!(store.load("b.example.com").await.unwrap().as_ref(), Some(&bundles[1]));
    let due: Vec<String> =
        store.due_before(OffsetDateTime::now_utc()).await.unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(due, ["a.example.com"], "indexed: only the one within 30 days is due");
}

/// Every key cert-store writes is under `tls/`, so an embedder's own keys
/// elsewhere in the same store are never touched.
#[tokio::test]
async fn everything_is_written_under_tls() {
    let storage = Arc::new(MemoryStorage::new());
    let store = CertStore::new(Arc::clone(&storage));
    let mine = cert_store::Key::new("app/settings").unwrap();
    storage.put(&mine, b"embedder data").await.unwrap();
    store.save(&bundle(&["a.example.com"])).await.unwrap();
    store.save_account("https://ca.example/dir", b"{}").await.unwrap();
    store.delete("a.example.com").await.unwrap();
    store.rebuild_index().await.unwrap();
    let tls = cert_store::Prefix::new(cert_store::keys::ROOT).unwrap();
    for key in storage.list(&cert_store::Prefix::default()).await.unwrap() {
        assert!(key.is_under(&tls) || key == mine, "{key} outside tls/");
    }
    assert_eq!(storage.get(&mine).await.unwrap().as_deref(), Some(&b"embedder data"[..]));
}

/// A store written before the `tls/` layout (`certs/…`, `accounts/…`,
/// `index/expiry`) is still read; new writes go to `tls/` and keep the old
/// index's entries; delete removes both copies.
#[tokio::test]
async fn a_store_in_the_old_layout_is_still_read() {
    let storage = Arc::new(MemoryStorage::new());
    let old = bundle_expiring_in("old.example.com", 10);
    let key = |k: &str| cert_store::Key::new(k).unwrap();
    storage.put(&key("certs/old.example.com"), &serde_json::to_vec(&old).unwrap()).await.unwrap();
    let mut index = cert_store::ExpiryIndex::default();
    index.upsert("old.example.com", old.meta().attention_at(), old.meta().not_after);
    storage.put(&key("index/expiry"), &index.encode()).await.unwrap();
    // The account record as the previous version named it.
    let new_account = cert_store::keys::account("https://ca.example/dir").unwrap();
    let leaf = new_account.as_str().strip_prefix("tls/").unwrap();
    storage.put(&key(leaf), b"old account").await.unwrap();

    let store = CertStore::new(Arc::clone(&storage));
    assert_eq!(store.load("old.example.com").await.unwrap().as_ref(), Some(&old));
    assert_eq!(store.names().await.unwrap(), ["old.example.com"]);
    assert_eq!(
        store.load_account("https://ca.example/dir").await.unwrap().as_deref(),
        Some(&b"old account"[..])
    );
    let now = OffsetDateTime::now_utc();
    assert_eq!(store.due_before(now).await.unwrap().len(), 1);

    store.save(&bundle_expiring_in("new.example.com", 5)).await.unwrap();
    assert!(storage.get(&cert_store::keys::certificate("new.example.com").unwrap()).await.unwrap().is_some());
    let due: Vec<String> = store.due_before(now).await.unwrap().into_iter().map(|d| d.0).collect();
    assert_eq!(due, ["new.example.com", "old.example.com"], "the old index's entries are kept");
    assert_eq!(store.names().await.unwrap(), ["new.example.com", "old.example.com"]);

    store.delete("old.example.com").await.unwrap();
    assert_eq!(store.load("old.example.com").await.unwrap(), None);
    assert!(storage.get(&key("certs/old.example.com")).await.unwrap().is_none());
}

/// Counts reads per key on top of `MemoryStorage`.
#[derive(Default)]
struct CountingReads {
    inner: MemoryStorage,
    reads: std::sync::Mutex<std::collections::HashMap<String, usize>>,
}

impl CountingReads {
    fn reads_of(&self, key: &cert_store::Key) -> usize {
        self.reads.lock().unwrap().get(key.as_str()).copied().unwrap_or(0)
    }
}

#[cert_store::async_trait]
impl Storage for CountingReads {
    async fn get(&self, key: &cert_store::Key) -> Result<Option<Vec<u8>>, cert_store::StorageError> {
        *self.reads.lock().unwrap().entry(key.to_string()).or_default() += 1;
        self.inner.get(key).await
    }
    async fn put(&self, key: &cert_store::Key, value: &[u8]) -> Result<(), cert_store::StorageError> {
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &cert_store::Key) -> Result<(), cert_store::StorageError> {
        self.inner.delete(key).await
    }
    async fn list(
        &self,
        prefix: &cert_store::Prefix,
    ) -> Result<Vec<cert_store::Key>, cert_store::StorageError> {
        self.inner.list(prefix).await
    }
    async fn stat(
        &self,
        key: &cert_store::Key,
    ) -> Result<Option<cert_store::KeyInfo>, cert_store::StorageError> {
        panic!("CertStore must not need stat (asked for {key})")
    }
    async fn try_acquire_lease(
        &self,
        name: &cert_store::Key,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, cert_store::StorageError> {
        self.inner.try_acquire_lease(name, holder, ttl).await
    }
    async fn renew_lease(
        &self,
        name: &cert_store::Key,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, cert_store::StorageError> {
        self.inner.renew_lease(name, holder, ttl).await
    }
    async fn release_lease(
        &self,
        name: &cert_store::Key,
        holder: &str,
    ) -> Result<(), cert_store::StorageError> {
        self.inner.release_lease(name, holder).await
    }
}

/// The cached index is checked by reading the small generation record; the
/// index itself is read again only after another store wrote it, and a
/// writer that died between the generation and the index costs an extra read,
/// not a stale index.
#[tokio::test]
async fn the_index_cache_follows_the_generation_record() {
    use cert_store::keys;
    let storage = Arc::new(CountingReads::default());
    let a = CertStore::new(Arc::clone(&storage));
    let b = CertStore::new(Arc::clone(&storage));
    a.save(&bundle_expiring_in("a.example.com", 5)).await.unwrap();
    let generation = storage.get(&keys::expiry_generation()).await.unwrap().unwrap();
    let generation = cert_store::IndexGeneration::parse(std::str::from_utf8(&generation).unwrap()).unwrap();
    assert_eq!(generation.number(), 1);
    assert_eq!(a.index().await.unwrap().generation(), Some(generation));

    // The writer's own cache is current: no index read.
    let index_reads = storage.reads_of(&keys::expiry_index());
    for _ in 0..5 {
        assert_eq!(a.index().await.unwrap().len(), 1);
    }
    assert_eq!(storage.reads_of(&keys::expiry_index()), index_reads, "unchanged index read again");

    // Another store's write: read once, then cached again.
    assert_eq!(b.index().await.unwrap().len(), 1);
    b.save(&bundle_expiring_in("b.example.com", 5)).await.unwrap();
    let index_reads = storage.reads_of(&keys::expiry_index());
    assert_eq!(a.index().await.unwrap().len(), 2);
    assert_eq!(a.index().await.unwrap().len(), 2);
    assert_eq!(storage.reads_of(&keys::expiry_index()), index_reads + 1);

    // A writer that died after the generation record, before the index: the
    // record names a write the index does not hold, so readers read the index
    // (and see what is stored) until the next update, which moves on from both.
    let dead = cert_store::IndexGeneration::after(Some(cert_store::IndexGeneration::after(Some(generation))));
    storage.put(&keys::expiry_generation(), dead.to_string().as_bytes()).await.unwrap();
    let index_reads = storage.reads_of(&keys::expiry_index());
    assert_eq!(a.index().await.unwrap().len(), 2);
    assert_eq!(a.index().await.unwrap().len(), 2);
    assert_eq!(storage.reads_of(&keys::expiry_index()), index_reads + 2);
    b.save(&bundle_expiring_in("c.example.com", 5)).await.unwrap();
    let after = a.index().await.unwrap();
    assert_eq!(after.len(), 3);
    assert_eq!(after.generation().map(|g| g.number()), Some(dead.number() + 1));
}
