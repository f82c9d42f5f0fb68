//! Each tenant's connections in creation order, and how many it made this
//! quota period, kept so that a page of connections and a quota check cost
//! O(page) and O(1) storage reads on every backend, whatever the number of
//! connections.
//!
//! Layout ([`keys`](crate::keys)): a head record
//! `edge/tenant-index/<tenant>/head` (`count`, the current period and how
//! many connections were created in it) and pages
//! `edge/tenant-index/<tenant>/pages/<n>` of [`PAGE_SIZE`] ids, oldest first.
//! Both change only under the tenant's lease (`edge/leases/tenant/<tenant>`),
//! which [`TenantIndex::lock`] takes.

use std::{sync::Arc, time::Duration};

use cert_store::{LeaseGuard, Leases, Storage, StorageError};
use serde::{Deserialize, Serialize};

use crate::keys;

/// Ids per index page.
pub const PAGE_SIZE: u64 = 100;

/// The head record of a tenant's index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexHead {
    /// Connections the tenant ever created (archived ones included).
    pub count: u64,
    /// The quota period `created_in_period` counts (e.g. `2026-12`).
    pub period: String,
    /// Connections created in `period`.
    pub created_in_period: u64,
}

impl IndexHead {
    /// Connections created in `period` (0 once a new period has begun).
    #[must_use]
    pub fn used_in(&self, period: &str) -> u64 {
        if self.period == period { self.created_in_period } else { 0 }
    }
}

/// A tenant's connection index in the shared [`Storage`].
#[derive(Clone)]
pub struct TenantIndex {
    storage: Arc<dyn Storage>,
}

impl std::fmt::Debug for TenantIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantIndex").finish_non_exhaustive()
    }
}

fn corrupt(key: &cert_store::Key, e: &serde_json::Error) -> StorageError {
    StorageError::Corrupt { key: key.to_string(), reason: e.to_string() }
}

impl TenantIndex {
    /// The index in `storage`.
    #[must_use]
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage }
    }

    /// Holds the tenant's lease (waits up to 30 s for another edge).
    ///
    /// # Errors
    /// When the storage fails or the lease stays taken.
    pub async fn lock(&self, tenant: &str) -> Result<LeaseGuard, StorageError> {
        self.storage
            .lock_timeout(&keys::tenant_lease(tenant)?, crate::WORK_LEASE_TTL, Duration::from_secs(30))
            .await
    }

    /// The tenant's head record (empty for a tenant with no connections).
    ///
    /// # Errors
    /// When the storage fails or the record is unreadable.
    pub async fn head(&self, tenant: &str) -> Result<IndexHead, StorageError> {
        let key = keys::tenant_index(tenant)?;
        match self.storage.get(&key).await? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| corrupt(&key, &e)),
            None => Ok(IndexHead::default()),
        }
    }

    async fn page_ids(&self, tenant: &str, page: u64) -> Result<Vec<String>, StorageError> {
        let key = keys::tenant_index_page(tenant, page)?;
        match self.storage.get(&key).await? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| corrupt(&key, &e)),
            None => Ok(Vec::new()),
        }
    }

    async fn put_json(&self, key: &cert_store::Key, value: &impl Serialize) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(value).map_err(StorageError::backend)?;
        self.storage.put(key, &bytes).await
    }

    /// Appends `id` as the tenant's newest connection, created in `period`
    /// (call under [`lock`](Self::lock)). Three reads and writes, whatever
    /// the tenant's size.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn append(&self, tenant: &str, id: &str, period: &str) -> Result<IndexHead, StorageError> {
        let mut head = self.head(tenant).await?;
        let page = head.count / PAGE_SIZE;
        let mut ids = self.page_ids(tenant, page).await?;
        // A page longer than the head says: an append that crashed between
        // its two writes; the head is the truth.
        ids.truncate(usize::try_from(head.count % PAGE_SIZE).unwrap_or(usize::MAX));
        ids.push(id.to_owned());
        self.put_json(&keys::tenant_index_page(tenant, page)?, &ids).await?;
        head.created_in_period = head.used_in(period) + 1;
        head.period = period.to_owned();
        head.count += 1;
        self.put_json(&keys::tenant_index(tenant)?, &head).await?;
        Ok(head)
    }

    /// The ids of the tenant's connections `skip ..skip + limit`, newest
    /// first, and how many there are: at most two page reads.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn newest(
        &self,
        tenant: &str,
        skip: u64,
        limit: u64,
    ) -> Result<(Vec<String>, u64), StorageError> {
        let head = self.head(tenant).await?;
        let end = head.count.saturating_sub(skip); // exclusive, in creation order
        let start = end.saturating_sub(limit);
        let mut out = Vec::new();
        if start < end {
            for page in (start / PAGE_SIZE..=(end - 1) / PAGE_SIZE).rev() {
                let ids = self.page_ids(tenant, page).await?;
                let base = page * PAGE_SIZE;
                for (i, id) in ids.iter().enumerate().rev() {
                    let position = base + i as u64;
                    if (start..end).contains(&position) {
                        out.push(id.clone());
                    }
                }
            }
        }
        Ok((out, head.count))
    }

    /// Rewrites the tenant's index from `ids` (oldest first) and how many of
    /// them were created in `period`: the one-time migration of an edge
    /// that had no index. Idempotent (call under [`lock`](Self::lock)).
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn rebuild(
        &self,
        tenant: &str,
        ids: &[String],
        period: &str,
        created_in_period: u64,
    ) -> Result<(), StorageError> {
        for (page, chunk) in ids.chunks(PAGE_SIZE as usize).enumerate() {
            self.put_json(&keys::tenant_index_page(tenant, page as u64)?, &chunk).await?;
        }
        let head = IndexHead { count: ids.len() as u64, period: period.to_owned(), created_in_period };
        self.put_json(&keys::tenant_index(tenant)?, &head).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cert_store::MemoryStorage;

    #[tokio::test]
    async fn pages_read_newest_first_across_page_boundaries() {
        let index = TenantIndex::new(Arc::new(MemoryStorage::new()));
        for i in 0..250u32 {
            index.append("t1", &format!("{i:04x}"), "2026-12").await.unwrap();
        }
        index.append("t2", "ffff", "2026-12").await.unwrap();
        let (ids, total) = index.newest("t1", 0, 3).await.unwrap();
        assert_eq!((ids, total), (vec!["00f9".to_owned(), "00f8".into(), "00f7".into()], 250));
        let (ids, _) = index.newest("t1", 148, 5).await.unwrap();
        assert_eq!(ids, ["0065", "0064", "0063", "0062", "0061"], "crosses from page 1 into page 0");
        let (ids, _) = index.newest("t1", 245, 20).await.unwrap();
        assert_eq!(ids, ["0004", "0003", "0002", "0001", "0000"]);
        assert!(index.newest("t1", 250, 20).await.unwrap().0.is_empty());
        assert_eq!(index.newest("t2", 0, 20).await.unwrap(), (vec!["ffff".to_owned()], 1));
    }

    #[tokio::test]
    async fn a_new_period_starts_counting_from_zero() {
        let index = TenantIndex::new(Arc::new(MemoryStorage::new()));
        index.append("t", "01", "2026-11").await.unwrap();
        index.append("t", "02", "2026-11").await.unwrap();
        let head = index.head("t").await.unwrap();
        assert_eq!((head.used_in("2026-11"), head.used_in("2026-12")), (2, 0));
        let head = index.append("t", "03", "2026-12").await.unwrap();
        assert_eq!((head.count, head.used_in("2026-12")), (3, 1));
    }

    #[tokio::test]
    async fn rebuild_is_idempotent() {
        let index = TenantIndex::new(Arc::new(MemoryStorage::new()));
        let ids: Vec<String> = (0..150u32).map(|i| format!("{i:04x}")).collect();
        index.rebuild("default", &ids, "2026-12", 7).await.unwrap();
        index.rebuild("default", &ids, "2026-12", 7).await.unwrap();
        let (page, total) = index.newest("default", 0, 2).await.unwrap();
        assert_eq!((page, total), (vec!["0095".to_owned(), "0094".into()], 150));
        assert_eq!(index.head("default").await.unwrap().used_in("2026-12"), 7);
    }
}
