//! An in-process backend.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, SystemTime},
};

use async_trait::async_trait;
use tokio::time::Instant;

use crate::{Key, KeyInfo, Prefix, Storage, StorageError};

/// A [`Storage`] kept in memory: for tests, single-process embedding, and as
/// the reference backend of the conformance suite. Cheap to clone; clones
/// share the same data.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use cert_store::{Key, MemoryStorage, Storage};
/// let store = MemoryStorage::new();
/// let key = Key::new("a/b").unwrap();
/// store.put(&key, b"v").await.unwrap();
/// assert_eq!(store.get(&key).await.unwrap(), Some(b"v".to_vec()));
/// # });
/// ```
#[derive(Clone, Default)]
pub struct MemoryStorage {
    values: Arc<RwLock<BTreeMap<Key, Entry>>>,
    leases: Arc<Mutex<HashMap<Key, Lease>>>,
}

impl std::fmt::Debug for MemoryStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStorage").finish_non_exhaustive()
    }
}

struct Entry {
    value: Arc<[u8]>,
    modified: SystemTime,
}

struct Lease {
    holder: String,
    expires: Instant,
}

impl MemoryStorage {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn leases(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Lease>> {
        self.leases.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl Storage for MemoryStorage {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StorageError> {
        let values = self.values.read().unwrap_or_else(PoisonError::into_inner);
        Ok(values.get(key).map(|e| e.value.to_vec()))
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StorageError> {
        let entry = Entry { value: Arc::from(value), modified: SystemTime::now() };
        self.values.write().unwrap_or_else(PoisonError::into_inner).insert(key.clone(), entry);
        Ok(())
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        self.values.write().unwrap_or_else(PoisonError::into_inner).remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &Prefix) -> Result<Vec<Key>, StorageError> {
        let values = self.values.read().unwrap_or_else(PoisonError::into_inner);
        let start = prefix.as_str();
        Ok(values
            .range::<str, _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
            .map(|(k, _)| k)
            .take_while(|k| k.as_str().starts_with(start))
            .filter(|k| k.is_under(prefix))
            .cloned()
            .collect())
    }

    async fn stat(&self, key: &Key) -> Result<Option<KeyInfo>, StorageError> {
        let values = self.values.read().unwrap_or_else(PoisonError::into_inner);
        Ok(values.get(key).map(|e| KeyInfo { size: e.value.len() as u64, modified: e.modified }))
    }

    async fn try_acquire_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        let now = Instant::now();
        let mut leases = self.leases();
        match leases.get_mut(name) {
            Some(lease) if lease.holder != holder && lease.expires > now => Ok(false),
            Some(lease) => {
                lease.holder = holder.to_owned();
                lease.expires = now + ttl;
                Ok(true)
            }
            None => {
                leases.insert(name.clone(), Lease { holder: holder.to_owned(), expires: now + ttl });
                Ok(true)
            }
        }
    }

    async fn renew_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        let mut leases = self.leases();
        match leases.get_mut(name) {
            Some(lease) if lease.holder == holder => {
                lease.expires = Instant::now() + ttl;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release_lease(&self, name: &Key, holder: &str) -> Result<(), StorageError> {
        let mut leases = self.leases();
        if leases.get(name).is_some_and(|l| l.holder == holder) {
            leases.remove(name);
        }
        Ok(())
    }
}
