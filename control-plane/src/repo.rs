//! Connections and hostname claims in the shared [`Storage`].
//!
//! Layout in [`keys`](crate::keys): `edge/connections/<id>` (JSON),
//! `edge/claims/<hostname>` (the id of the connection holding the hostname),
//! the [`DueIndex`] entry of each connection and each tenant's
//! [`TenantIndex`]: reading a connection, a claim or a page costs O(1) or
//! O(page) reads, never a scan of all connections.
//! Claims change only under the storage lease `edge/leases/claim/<hostname>`,
//! so edges sharing one PostgreSQL never both hand out a hostname.

use std::{sync::Arc, time::Duration};

use cert_store::{Key, LeaseGuard, Leases, Storage, StorageError};

use crate::{Connection, DomainState, DueIndex, TenantIndex, keys};

/// Connection records over a [`Storage`], with the [`DueIndex`] of when
/// each is next due (moved by every write through this `Repo`) and each
/// tenant's [`TenantIndex`].
#[derive(Clone)]
pub struct Repo {
    storage: Arc<dyn Storage>,
    due: DueIndex,
    tenants: TenantIndex,
}

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo").finish_non_exhaustive()
    }
}

/// Ttl of the work leases: renewed every third of it while held, so a
/// crashed edge's work is taken over by another (or by itself, restarted)
/// within this long.
pub const WORK_LEASE_TTL: Duration = Duration::from_secs(20);

/// When the worker next has something to do with `c`: never once archived.
#[must_use]
pub fn due_at(c: &Connection) -> Option<time::OffsetDateTime> {
    (c.state != DomainState::Archived).then_some(c.next_check_at)
}

fn corrupt(key: &Key, e: &serde_json::Error) -> StorageError {
    StorageError::Corrupt { key: key.to_string(), reason: e.to_string() }
}

impl Repo {
    /// A repository in `storage`.
    #[must_use]
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            due: DueIndex::new(Arc::clone(&storage)),
            tenants: TenantIndex::new(Arc::clone(&storage)),
            storage,
        }
    }

    /// When each connection is next due.
    #[must_use]
    pub fn due(&self) -> &DueIndex {
        &self.due
    }

    /// Each tenant's connections in creation order and quota count.
    #[must_use]
    pub fn tenant_index(&self) -> &TenantIndex {
        &self.tenants
    }

    /// Whether `id` has the shape of our ids (hex): anything else names no
    /// connection and is never used in a storage key.
    #[must_use]
    pub fn is_id(id: &str) -> bool {
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
    }

    /// One connection.
    ///
    /// # Errors
    /// When the storage fails or the record is unreadable.
    pub async fn get(&self, id: &str) -> Result<Option<Connection>, StorageError> {
        if !Self::is_id(id) {
            return Ok(None);
        }
        let key = keys::connection(id)?;
        match self.storage.get(&key).await? {
            Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| corrupt(&key, &e)),
            None => Ok(None),
        }
    }

    /// Saves a connection (atomically replacing the previous version) and
    /// moves its due entry: the new entry is written before the record and
    /// the old one deleted after it, so a crash never leaves it with none.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn put(&self, connection: &Connection) -> Result<(), StorageError> {
        let old = self.get(&connection.id).await?.as_ref().and_then(due_at);
        let new = due_at(connection);
        if let Some(at) = new
            && old != new
        {
            self.due.add(&connection.id, at).await?;
        }
        let bytes = serde_json::to_vec(connection).map_err(|e| StorageError::Backend(e.into()))?;
        self.storage.put(&keys::connection(&connection.id)?, &bytes).await?;
        // Entries are named to the second: a time moved within the same
        // second names the entry just written, which must stay.
        let new_key = new.map(|at| crate::due::entry_key(&connection.id, at)).transpose()?;
        if let Some(at) = old
            && old != new
        {
            let old_key = crate::due::entry_key(&connection.id, at)?;
            if Some(&old_key) != new_key.as_ref() {
                self.due.remove(&old_key).await?;
            }
        }
        Ok(())
    }

    /// A page of `tenant`'s connections, newest first (`skip` from the
    /// newest), and how many it has: O(page) reads.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn page(
        &self,
        tenant: &str,
        skip: u64,
        limit: u64,
    ) -> Result<(Vec<Connection>, u64), StorageError> {
        let (ids, total) = self.tenants.newest(tenant, skip, limit).await?;
        // The page's records are read at once (one round trip's latency on
        // a database, not one per connection).
        let mut reads = tokio::task::JoinSet::new();
        for (position, id) in ids.into_iter().enumerate() {
            let repo = self.clone();
            reads.spawn(async move { (position, repo.get(&id).await) });
        }
        let mut found = Vec::with_capacity(reads.len());
        while let Some(read) = reads.join_next().await {
            let (position, c) = read.map_err(StorageError::backend)?;
            // An id indexed just before a crash that kept its record from
            // being written names nothing: skipped.
            if let Some(c) = c? {
                found.push((position, c));
            }
        }
        found.sort_by_key(|(position, _)| *position);
        Ok((found.into_iter().map(|(_, c)| c).collect(), total))
    }

    /// Every connection, oldest first: a full scan, used only by the
    /// one-time migration to the indexes (and by tests).
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn list(&self) -> Result<Vec<Connection>, StorageError> {
        let found = self.storage.list(&keys::connections()?).await?;
        let mut out = Vec::with_capacity(found.len());
        for key in found {
            if let Some(bytes) = self.storage.get(&key).await? {
                out.push(serde_json::from_slice::<Connection>(&bytes).map_err(|e| corrupt(&key, &e))?);
            }
        }
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Holds the hostname's claim lease (waits up to 30 s for another edge).
    ///
    /// # Errors
    /// When the storage fails or the lease stays taken.
    pub async fn lock_hostname(&self, hostname: &str) -> Result<LeaseGuard, StorageError> {
        self.lock(&keys::claim_lease(hostname)?, Duration::from_secs(30)).await
    }

    async fn lock(&self, name: &Key, wait: Duration) -> Result<LeaseGuard, StorageError> {
        self.storage.lock_timeout(name, WORK_LEASE_TTL, wait).await
    }

    /// Holds the connection's work lease, if no other edge holds it.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn try_lock_connection(&self, id: &str) -> Result<Option<LeaseGuard>, StorageError> {
        self.storage.try_lock(&keys::work_lease(id)?, WORK_LEASE_TTL).await
    }

    /// Waits (up to 60 s) for the connection's work lease.
    ///
    /// # Errors
    /// When the storage fails or the lease stays taken.
    pub async fn lock_connection(&self, id: &str) -> Result<LeaseGuard, StorageError> {
        self.lock(&keys::work_lease(id)?, Duration::from_secs(60)).await
    }

    /// The connection holding `hostname`'s claim, if it still does.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn claim_holder(&self, hostname: &str) -> Result<Option<Connection>, StorageError> {
        let Some(id) = self.storage.get(&keys::claim(hostname)?).await? else { return Ok(None) };
        let id = String::from_utf8_lossy(&id).into_owned();
        Ok(self.get(&id).await?.filter(|c| c.sans().iter().any(|n| n == hostname) && c.state.holds_claim()))
    }

    /// Records `id` as the claim holder (call under [`lock_hostname`](Self::lock_hostname)).
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn set_claim(&self, hostname: &str, id: &str) -> Result<(), StorageError> {
        self.storage.put(&keys::claim(hostname)?, id.as_bytes()).await
    }

    /// Drops the claim if `id` holds it (call under [`lock_hostname`](Self::lock_hostname)).
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn release_claim(&self, hostname: &str, id: &str) -> Result<(), StorageError> {
        let key = keys::claim(hostname)?;
        if self.storage.get(&key).await?.is_some_and(|holder| holder == id.as_bytes()) {
            self.storage.delete(&key).await?;
        }
        Ok(())
    }
}
