//! Two processes saving into one filesystem store keep one complete expiry
//! index: nothing one process writes is lost by the other's next update.
//!
//! The test binary runs itself twice as child processes (an ignored test
//! selected by name, with the store directory in an environment variable),
//! so the two writers share nothing but the directory.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::{
    collections::BTreeMap,
    process::{Command, Stdio},
    sync::Arc,
    time::Instant,
};

use async_trait::async_trait;
use cert_store::{
    CertBundle, CertStore, FileStorage, Key, KeyInfo, Prefix, Provenance, Storage, StorageError,
};
use time::{Duration, OffsetDateTime};

const CHILD_DIR: &str = "INDEX_PROCESSES_CHILD_DIR";
const CHILD_ID: &str = "INDEX_PROCESSES_CHILD_ID";
const CHILD_MODE: &str = "INDEX_PROCESSES_CHILD_MODE";
const CHILD_COARSE: &str = "INDEX_PROCESSES_CHILD_COARSE";

/// Saves per process.
const SAVES: usize = 1000;
/// Names per process in the rewrite workload: each is added, then saved once
/// more with a new expiry, so every update of the second half is the last one
/// of its name and a lost one shows in the final index.
const REWRITE_NAMES: usize = SAVES / 2;

/// A fixed start of validity, so every stored time has 10 digits and a
/// rewritten index line keeps its length.
fn base() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap()
}

/// The `not_after` of the `i`-th save (hours after `base() + 90 days`).
fn not_after(i: usize) -> OffsetDateTime {
    base() + Duration::days(90) + Duration::hours(i64::try_from(i).unwrap())
}

/// The name and validity of save `i` of process `id` in `mode`.
fn plan(mode: &str, id: usize, i: usize) -> (String, OffsetDateTime) {
    match mode {
        // Every save adds a name.
        "add" => (format!("n{i:04}.p{id}.example.test"), not_after(0)),
        // Names added, then each saved again with a new expiry: during the
        // second half the index keeps its size from one write to the next.
        _ => (format!("r{:03}.p{id}.example.test", i % REWRITE_NAMES), not_after(i)),
    }
}

/// A [`FileStorage`] on a filesystem with whole-second timestamps (ext3,
/// HFS+, FAT has two; many NFS setups): `stat().modified` truncated to the
/// second. Linux 6.13+ hands out fine-grained mtimes once one was looked at,
/// which hides the difference on this machine's ext4.
struct CoarseStat(FileStorage);

#[async_trait]
impl Storage for CoarseStat {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StorageError> {
        self.0.get(key).await
    }
    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StorageError> {
        self.0.put(key, value).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        self.0.delete(key).await
    }
    async fn list(&self, prefix: &Prefix) -> Result<Vec<Key>, StorageError> {
        self.0.list(prefix).await
    }
    async fn stat(&self, key: &Key) -> Result<Option<KeyInfo>, StorageError> {
        Ok(self.0.stat(key).await?.map(|info| {
            let since = info.modified.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            KeyInfo {
                size: info.size,
                modified: std::time::UNIX_EPOCH + std::time::Duration::from_secs(since.as_secs()),
            }
        }))
    }
    async fn try_acquire_lease(
        &self,
        name: &Key,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StorageError> {
        self.0.try_acquire_lease(name, holder, ttl).await
    }
    async fn renew_lease(
        &self,
        name: &Key,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StorageError> {
        self.0.renew_lease(name, holder, ttl).await
    }
    async fn release_lease(&self, name: &Key, holder: &str) -> Result<(), StorageError> {
        self.0.release_lease(name, holder).await
    }
}

fn bundle(key: &rcgen::KeyPair, name: &str, not_after: OffsetDateTime) -> CertBundle {
    let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
    params.not_before = base();
    params.not_after = not_after;
    let cert = params.self_signed(key).unwrap();
    CertBundle::from_pem(&cert.pem(), &key.serialize_pem(), Provenance::LocalCa).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run as a child process by the tests below"]
async fn index_writer_child() {
    let Ok(dir) = std::env::var(CHILD_DIR) else { return };
    let id: usize = std::env::var(CHILD_ID).unwrap().parse().unwrap();
    let mode = std::env::var(CHILD_MODE).unwrap();
    let files = FileStorage::new(dir).unwrap();
    let store: CertStore<dyn Storage> = if std::env::var(CHILD_COARSE).is_ok_and(|v| v == "1") {
        CertStore::new(Arc::new(CoarseStat(files)))
    } else {
        CertStore::new(Arc::new(files))
    };
    let key = rcgen::KeyPair::generate().unwrap();
    for i in 0..SAVES {
        let (name, not_after) = plan(&mode, id, i);
        store.save(&bundle(&key, &name, not_after)).await.unwrap();
        // A reader between writes, as the renewal loop is: it refreshes the
        // cache from the other process's writes.
        if i % 7 == 0 {
            store.index().await.unwrap();
        }
    }
    println!("CHILD-DONE");
}

/// Runs two writer processes in `mode` on one fresh directory; returns the
/// directory.
fn run_two_writers(mode: &str, coarse: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let children: Vec<_> = (0..2)
        .map(|id| {
            Command::new(std::env::current_exe().unwrap())
                .args(["index_writer_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
                .env(CHILD_DIR, dir.path())
                .env(CHILD_ID, id.to_string())
                .env(CHILD_MODE, mode)
                .env(CHILD_COARSE, if coarse { "1" } else { "" })
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && stdout.contains("CHILD-DONE"), "child failed: {stdout}");
    }
    eprintln!("{mode} (coarse timestamps: {coarse}): 2 × {SAVES} saves in {:?}", started.elapsed());
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_saving_1000_names_each_leave_all_2000_in_the_index() {
    let dir = run_two_writers("add", false);
    let store = CertStore::new(Arc::new(FileStorage::new(dir.path()).unwrap()));
    let index = store.index().await.unwrap();
    let names = store.names().await.unwrap();
    assert_eq!(names.len(), 2 * SAVES, "certificates stored");
    let missing: Vec<_> = names.iter().filter(|n| index.get(n).is_none()).collect();
    assert!(
        missing.is_empty(),
        "{} of {} names missing from the index: {missing:?}",
        missing.len(),
        names.len()
    );
    assert_eq!(index.len(), 2 * SAVES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_rewriting_same_size_entries_lose_no_update() {
    assert_no_update_lost(&run_two_writers("rewrite", false)).await;
}

/// What `stat` size + mtime could not tell apart: same-size index rewrites
/// within one timestamp tick (before the generation record, updates were
/// lost here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_size_rewrites_lose_no_update_with_whole_second_timestamps() {
    assert_no_update_lost(&run_two_writers("rewrite", true)).await;
}

async fn assert_no_update_lost(dir: &tempfile::TempDir) {
    let store = CertStore::new(Arc::new(FileStorage::new(dir.path()).unwrap()));
    let index = store.index().await.unwrap();
    // The last save of each name decides its expiry.
    let mut expected = BTreeMap::new();
    for id in 0..2 {
        for i in 0..SAVES {
            let (name, not_after) = plan("rewrite", id, i);
            expected.insert(name, not_after);
        }
    }
    assert_eq!(index.len(), expected.len());
    let stale: Vec<_> = expected
        .iter()
        .filter(|(name, not_after)| index.get(name).map(|e| e.not_after) != Some(**not_after))
        .map(|(name, _)| name)
        .collect();
    assert!(stale.is_empty(), "{} index entries lost their last update: {stale:?}", stale.len());
}
