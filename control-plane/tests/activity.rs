//! The team activity log under concurrency and storage faults: two edges
//! sharing one real PostgreSQL append at once and lose nothing; a storage
//! whose reads fail during appends loses nothing already written.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use async_trait::async_trait;
use cert_store::{Key, KeyInfo, MemoryStorage, PostgresStorage, Prefix, Storage, StorageError};
use control_plane::{Activity, ActivityEntry, ActivityFilter, ActivityLog};
use time::OffsetDateTime;

async fn read_all(log: &ActivityLog, tenant: &str) -> Vec<ActivityEntry> {
    let mut all = Vec::new();
    let mut filter = ActivityFilter::default();
    loop {
        let page = log.read(tenant, &filter, 200).await.unwrap();
        all.extend(page.items);
        match page.next {
            Some(next) => filter.before = Some(next),
            None => return all,
        }
    }
}

async fn append_many(log: ActivityLog, edge: &'static str, n: u32) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let log = log.clone();
        tasks.spawn(async move {
            let activity = Activity::Issued { serial: format!("{edge}-{i}"), names: vec![], not_after: None };
            log.append("t1", Some("0a0b0c"), Some("shop.example.com"), activity, OffsetDateTime::now_utc())
                .await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_edges_on_one_postgres_append_2000_events_at_once_and_lose_none() {
    let pg = testkit::PostgresServer::start().unwrap();
    // Two edges: two connection pools to the same database.
    let first = ActivityLog::new(Arc::new(PostgresStorage::connect(&pg.connection_string()).await.unwrap()));
    let second = ActivityLog::new(Arc::new(PostgresStorage::connect(&pg.connection_string()).await.unwrap()));
    tokio::join!(append_many(first.clone(), "a", 1000), append_many(second.clone(), "b", 1000));
    for log in [&first, &second] {
        let all = read_all(log, "t1").await;
        assert_eq!(all.len(), 2000, "no append lost, none read twice");
        assert!(all.windows(2).all(|w| w[0].id > w[1].id && w[0].at >= w[1].at), "newest first");
        let mut serials: Vec<String> = all
            .iter()
            .map(|e| match &e.activity {
                Activity::Issued { serial, .. } => serial.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        serials.sort();
        serials.dedup();
        assert_eq!(serials.len(), 2000, "every event of both edges, once");
    }
}

/// A [`MemoryStorage`] whose reads fail while `failing` is set (writes
/// still work): a storage fault injected around a real backend.
#[derive(Default)]
struct FlakyReads {
    inner: MemoryStorage,
    failing: AtomicBool,
}

impl FlakyReads {
    fn check(&self) -> Result<(), StorageError> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StorageError::backend(std::io::Error::other("injected read failure")));
        }
        Ok(())
    }
}

#[async_trait]
impl Storage for FlakyReads {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StorageError> {
        self.check()?;
        self.inner.get(key).await
    }
    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StorageError> {
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &Prefix) -> Result<Vec<Key>, StorageError> {
        self.check()?;
        self.inner.list(prefix).await
    }
    async fn stat(&self, key: &Key) -> Result<Option<KeyInfo>, StorageError> {
        self.check()?;
        self.inner.stat(key).await
    }
    async fn try_acquire_lease(
        &self,
        name: &Key,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StorageError> {
        self.inner.try_acquire_lease(name, holder, ttl).await
    }
    async fn renew_lease(
        &self,
        name: &Key,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<bool, StorageError> {
        self.inner.renew_lease(name, holder, ttl).await
    }
    async fn release_lease(&self, name: &Key, holder: &str) -> Result<(), StorageError> {
        self.inner.release_lease(name, holder).await
    }
}

#[tokio::test]
async fn a_storage_read_error_during_appends_loses_nothing_already_written() {
    let storage = Arc::new(FlakyReads::default());
    let log = ActivityLog::new(Arc::clone(&storage) as Arc<dyn Storage>);
    append_many(log.clone(), "before", 100).await;
    storage.failing.store(true, Ordering::SeqCst);
    // Appends read nothing, so they go on; a read reports the fault
    // instead of an empty log.
    append_many(log.clone(), "during", 100).await;
    assert!(log.read("t1", &ActivityFilter::default(), 10).await.is_err());
    storage.failing.store(false, Ordering::SeqCst);
    assert_eq!(read_all(&log, "t1").await.len(), 200);
}
