//! The conformance suite must reject broken backends: each of these wraps
//! `MemoryStorage` and breaks one rule of the `Storage` contract, and the
//! suite has to fail — in the check that covers that rule.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use cert_store::{
    Key, KeyInfo, MemoryStorage, Prefix, Storage, StorageError,
    conformance::{self, ConformanceFailure},
};

/// What a wrapper changes; everything else goes to the inner `MemoryStorage`.
#[derive(Clone, Copy, Debug)]
enum Breakage {
    /// `release_lease` frees the lease whoever holds it.
    ReleaseByAnyone,
    /// `try_acquire_lease` refuses the holder that already holds the lease.
    SameHolderRefused,
    /// Leases never expire.
    NeverExpire,
    /// `stat` reports the same modification time forever.
    FrozenStat,
    /// `stat` answers from an attribute cache kept for a second (as NFS
    /// clients do): right after a put it may describe the previous value.
    /// (Only found keys are cached.)
    CachedStat,
}

struct Broken {
    inner: MemoryStorage,
    breakage: Breakage,
    /// The last holder that acquired each lease (for `ReleaseByAnyone`).
    holders: Mutex<HashMap<Key, String>>,
    /// `CachedStat`'s cache: the answer and when it was taken.
    stat_cache: Mutex<HashMap<Key, (Option<KeyInfo>, std::time::Instant)>>,
}

impl Broken {
    fn new(breakage: Breakage) -> Arc<Self> {
        Arc::new(Self {
            inner: MemoryStorage::new(),
            breakage,
            holders: Mutex::default(),
            stat_cache: Mutex::default(),
        })
    }
}

#[async_trait]
impl Storage for Broken {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key).await
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StorageError> {
        self.inner.put(key, value).await
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }

    async fn list(&self, prefix: &Prefix) -> Result<Vec<Key>, StorageError> {
        self.inner.list(prefix).await
    }

    async fn stat(&self, key: &Key) -> Result<Option<KeyInfo>, StorageError> {
        if let Breakage::CachedStat = self.breakage {
            let mut cache = self.stat_cache.lock().unwrap();
            if let Some((info, at)) = cache.get(key)
                && at.elapsed() < Duration::from_secs(1)
            {
                return Ok(*info);
            }
            let info = futures_lite_now(self.inner.stat(key))?;
            if info.is_some() {
                cache.insert(key.clone(), (info, std::time::Instant::now()));
            }
            return Ok(info);
        }
        let info = self.inner.stat(key).await?;
        Ok(match self.breakage {
            Breakage::FrozenStat => info.map(|i| KeyInfo { size: i.size, modified: SystemTime::UNIX_EPOCH }),
            _ => info,
        })
    }

    async fn try_acquire_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        let acquired = match self.breakage {
            Breakage::SameHolderRefused if self.inner.renew_lease(name, holder, ttl).await? => false,
            Breakage::NeverExpire => {
                self.inner.try_acquire_lease(name, holder, Duration::from_secs(100 * 365 * 86_400)).await?
            }
            _ => self.inner.try_acquire_lease(name, holder, ttl).await?,
        };
        if acquired {
            self.holders.lock().unwrap().insert(name.clone(), holder.to_owned());
        }
        Ok(acquired)
    }

    async fn renew_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        let ttl = match self.breakage {
            Breakage::NeverExpire => Duration::from_secs(100 * 365 * 86_400),
            _ => ttl,
        };
        self.inner.renew_lease(name, holder, ttl).await
    }

    async fn release_lease(&self, name: &Key, holder: &str) -> Result<(), StorageError> {
        let current = self.holders.lock().unwrap().get(name).cloned();
        match (self.breakage, current) {
            (Breakage::ReleaseByAnyone, Some(current)) => self.inner.release_lease(name, &current).await,
            _ => self.inner.release_lease(name, holder).await,
        }
    }
}

/// Polls a future that is ready at once (`MemoryStorage` never waits), so a
/// std mutex can stay locked around it.
fn futures_lite_now<T>(future: impl std::future::Future<Output = T>) -> T {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(value) => value,
        std::task::Poll::Pending => panic!("MemoryStorage waited"),
    }
}

/// The suite on `breakage` must fail, in `expected_check`.
async fn suite_rejects(breakage: Breakage, expected_check: &str) -> ConformanceFailure {
    let failure = conformance::run_all(Broken::new(breakage))
        .await
        .expect_err(&format!("the conformance suite passed a backend with {breakage:?}"));
    assert_eq!(failure.check, expected_check, "{breakage:?}: {failure}");
    failure
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn release_by_a_holder_that_lost_the_lease_is_caught() {
    let failure =
        suite_rejects(Breakage::ReleaseByAnyone, "lease_release_by_stale_holder_keeps_new_lease").await;
    assert!(failure.message.contains("freed the new holder's lease"), "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refused_same_holder_reacquire_is_caught() {
    let failure = suite_rejects(Breakage::SameHolderRefused, "lease_reacquire_by_same_holder").await;
    assert!(failure.message.contains("acquire it again"), "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leases_that_never_expire_are_caught() {
    let failure = suite_rejects(Breakage::NeverExpire, "lease_takeover_after_expiry").await;
    assert!(failure.message.contains("expired lease must be free"), "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stat_that_never_changes_is_caught() {
    let failure = suite_rejects(Breakage::FrozenStat, "stat_changes_on_put").await;
    assert!(failure.message.contains("modified"), "{failure}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stat_that_lags_behind_puts_is_caught() {
    let failure = suite_rejects(Breakage::CachedStat, "stat_follows_puts").await;
    assert!(failure.message.contains("new length"), "{failure}");
}

/// Each check can also be run on its own, and the healthy backend passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn single_checks_and_the_reference_backend() {
    let broken = Broken::new(Breakage::NeverExpire);
    let failure = conformance::run_check("lease_release_by_stale_holder_keeps_new_lease", async move {
        conformance::lease_release_by_stale_holder_keeps_new_lease(broken).await;
    })
    .await
    .unwrap_err();
    assert!(failure.message.contains("an expired lease must be free"), "{failure}");
    assert_eq!(conformance::CHECKS.len(), 14);
    conformance::run_all(Arc::new(MemoryStorage::new())).await.unwrap();
}
