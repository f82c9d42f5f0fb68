//! [`CertStore`]: certificates, ACME accounts and the expiry index on any [`Storage`].

use std::{sync::Arc, time::Duration};

use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::{
    CertBundle, CertError, ChangeCursor, ExpiryIndex, IndexGeneration, Key, Leases, Storage, StorageError,
    changes,
    keys::{self, legacy},
};

/// The typed layer over a [`Storage`]: validated certificate bundles, ACME
/// account credentials per directory URL, and the expiry index.
///
/// Layout (stable, so several processes and versions share one store; see
/// [`keys`](crate::keys)): `tls/certs/<primary name>` (one JSON record per
/// bundle: chain, key and meta, written in one atomic `put`, so chain and key
/// can never disagree), `tls/accounts/<directory>`, `tls/index/expiry` and
/// `tls/index/expiry-generation`. Records of the layout before `tls/` are
/// still read.
///
/// # The cached expiry index
/// Each `CertStore` keeps the last index it read or wrote in memory. Whether
/// it is still current is decided by the [`IndexGeneration`]: every update
/// (under the lease `tls/leases/expiry-index`) writes the next generation to
/// the small record `tls/index/expiry-generation` *first*, then the index
/// with that generation in its first line. A reader gets the small record
/// and re-reads the index only when it differs from the cached index's
/// generation. As the small record is written before the index, it never
/// names an older write than the index holds: a cached index whose generation
/// still matches is the latest, whatever the storage's clock or timestamp
/// resolution (`stat` is not used). If a writer dies between the two writes,
/// readers see a mismatch and read the index (one extra read per call) until
/// the next update.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use cert_store::{CertBundle, CertStore, MemoryStorage, Provenance};
///
/// let key = rcgen::KeyPair::generate().unwrap();
/// let cert = rcgen::CertificateParams::new(vec!["shop.example.com".into()])
///     .unwrap().self_signed(&key).unwrap();
/// let bundle = CertBundle::from_pem(&cert.pem(), &key.serialize_pem(), Provenance::LocalCa).unwrap();
///
/// let store = CertStore::new(Arc::new(MemoryStorage::new()));
/// store.save(&bundle).await.unwrap();
/// let loaded = store.load("shop.example.com").await.unwrap().unwrap();
/// assert_eq!(loaded.meta().names, ["shop.example.com"]);
/// # });
/// ```
pub struct CertStore<S: Storage + ?Sized> {
    storage: Arc<S>,
    index_lease_ttl: Duration,
    /// The last index read or written, when it had a generation.
    index_cache: Mutex<Option<Arc<ExpiryIndex>>>,
}

impl<S: Storage + ?Sized> std::fmt::Debug for CertStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore").finish_non_exhaustive()
    }
}

impl<S: Storage + ?Sized> CertStore<S> {
    /// A typed store over `storage`.
    pub fn new(storage: Arc<S>) -> Self {
        Self { storage, index_lease_ttl: Duration::from_secs(10), index_cache: Mutex::new(None) }
    }

    /// Sets the ttl of the lease that serialises index updates across
    /// processes (default 10 s): how long a crashed writer blocks others.
    #[must_use]
    pub fn with_index_lease_ttl(mut self, ttl: Duration) -> Self {
        self.index_lease_ttl = ttl;
        self
    }

    /// The storage below.
    pub fn storage(&self) -> &Arc<S> {
        &self.storage
    }

    fn cert_key(name: &str) -> Result<Key, CertError> {
        keys::certificate(name)
    }

    /// The value at `key`, else at `legacy` (the layout before `tls/`),
    /// with the key it was read from.
    async fn get_or_legacy(&self, key: Key, legacy: Key) -> Result<Option<(Key, Vec<u8>)>, StorageError> {
        if let Some(bytes) = self.storage.get(&key).await? {
            return Ok(Some((key, bytes)));
        }
        Ok(self.storage.get(&legacy).await?.map(|bytes| (legacy, bytes)))
    }

    /// Saves a bundle under its primary name (replacing any previous one) and
    /// updates the expiry index.
    ///
    /// The index entry is written first, then the bundle in one atomic
    /// `put`: the index lists every stored certificate, so a lookup of a name
    /// it does not list needs no read ([`is_indexed`](Self::is_indexed)). If
    /// the process dies in between, the index names a certificate that is not
    /// stored: lookups find nothing, and the next issuance stores it.
    ///
    /// # Errors
    /// [`CertError::Storage`] when the storage fails.
    pub async fn save(&self, bundle: &CertBundle) -> Result<(), CertError> {
        let key = Self::cert_key(bundle.meta().primary_name())?;
        let bytes = serde_json::to_vec(bundle).map_err(StorageError::backend)?;
        let meta = bundle.meta();
        self.update_index(|index| {
            index.upsert(meta.primary_name(), meta.attention_at(), meta.not_after);
        })
        .await?;
        self.storage.put(&key, &bytes).await?;
        changes::record(self.storage.as_ref(), meta.primary_name()).await?;
        Ok(())
    }

    /// Saves many bundles and updates the expiry index once (a bulk import,
    /// e.g. migrating from another tool: one index rewrite instead of one
    /// per bundle). Each bundle is one atomic `put`, as with [`save`](Self::save).
    ///
    /// # Errors
    /// [`CertError::Storage`] when the storage fails; bundles written before
    /// the failure stay, and [`rebuild_index`](Self::rebuild_index) indexes them.
    pub async fn save_many(&self, bundles: &[CertBundle]) -> Result<(), CertError> {
        self.update_index(|index| {
            for bundle in bundles {
                let meta = bundle.meta();
                index.upsert(meta.primary_name(), meta.attention_at(), meta.not_after);
            }
        })
        .await?;
        for bundle in bundles {
            let key = Self::cert_key(bundle.meta().primary_name())?;
            let bytes = serde_json::to_vec(bundle).map_err(StorageError::backend)?;
            self.storage.put(&key, &bytes).await?;
        }
        for bundle in bundles {
            changes::record(self.storage.as_ref(), bundle.meta().primary_name()).await?;
        }
        Ok(())
    }

    /// Loads the bundle stored under `name` (its primary name).
    ///
    /// # Errors
    /// [`CertError::InvalidName`] for a name that is not a hostname;
    /// [`CertError::Storage`] (`Corrupt`) for an unreadable record.
    pub async fn load(&self, name: &str) -> Result<Option<CertBundle>, CertError> {
        let found = self.get_or_legacy(Self::cert_key(name)?, legacy::certificate(name)?).await?;
        let Some((key, bytes)) = found else { return Ok(None) };
        let bundle = serde_json::from_slice(&bytes)
            .map_err(|e| StorageError::Corrupt { key: key.to_string(), reason: e.to_string() })?;
        Ok(Some(bundle))
    }

    /// Deletes the bundle stored under `name` and its index entry.
    ///
    /// # Errors
    /// As for [`load`](Self::load).
    pub async fn delete(&self, name: &str) -> Result<(), CertError> {
        let key = Self::cert_key(name)?;
        self.storage.delete(&key).await?;
        self.storage.delete(&legacy::certificate(name)?).await?;
        let name = keys::certificate_name(&key).unwrap_or_default().to_owned();
        self.update_index(|index| {
            index.remove(&name);
        })
        .await?;
        changes::record(self.storage.as_ref(), &name).await?;
        Ok(())
    }

    /// The names whose certificates were saved or deleted (by any process
    /// sharing the storage) since `cursor` last looked; the first call only
    /// primes the cursor. One `list` of the change feed per call: poll it
    /// about every second to serve what other processes issued, renewed or
    /// deleted (see [`changes`](crate::changes)).
    ///
    /// # Errors
    /// [`CertError::Storage`] when the storage fails (the cursor is unchanged).
    pub async fn changes_since(&self, cursor: &mut ChangeCursor) -> Result<Vec<String>, CertError> {
        Ok(changes::since(self.storage.as_ref(), cursor).await?)
    }

    /// The primary names of every stored bundle, sorted.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn names(&self) -> Result<Vec<String>, CertError> {
        let mut found = self.storage.list(&keys::certificates()).await?;
        found.extend(self.storage.list(&legacy::certificates()).await?);
        let mut names: Vec<String> =
            found.iter().filter_map(|k| keys::certificate_name(k).map(str::to_owned)).collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Stores ACME account credentials (opaque bytes, typically JSON) for a
    /// CA directory URL.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn save_account(&self, directory_url: &str, credentials: &[u8]) -> Result<(), CertError> {
        Ok(self.storage.put(&keys::account(directory_url)?, credentials).await?)
    }

    /// The credentials stored for `directory_url`, if any.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn load_account(&self, directory_url: &str) -> Result<Option<Vec<u8>>, CertError> {
        let found =
            self.get_or_legacy(keys::account(directory_url)?, legacy::account(directory_url)?).await?;
        Ok(found.map(|(_, bytes)| bytes))
    }

    /// Primary names whose attention time ([`CertMeta::attention_at`](crate::CertMeta::attention_at))
    /// is before `t`, earliest first.
    ///
    /// Reads the index record only when it changed since the last call (one
    /// read of the few-byte generation record otherwise), never the
    /// certificates.
    ///
    /// # Errors
    /// When the storage fails or the index record is corrupt.
    pub async fn due_before(&self, t: OffsetDateTime) -> Result<Vec<(String, OffsetDateTime)>, CertError> {
        let index = self.index().await?;
        Ok(index.due_before(t).map(|(n, at)| (n.to_owned(), at)).collect())
    }

    /// Whether a certificate may be stored under `name` (its primary name):
    /// `false` means it is not (the index lists every stored certificate,
    /// see [`save`](Self::save)). Costs one small read of the index
    /// generation, plus the index itself when another process changed it —
    /// what keeps a flood of handshakes for unknown names from reading the
    /// store for each.
    ///
    /// # Errors
    /// [`CertError::Storage`] when the storage fails.
    pub async fn is_indexed(&self, name: &str) -> Result<bool, CertError> {
        Ok(self.index().await?.get(&name.to_ascii_lowercase()).is_some())
    }

    /// The current expiry index (cached while its generation is unchanged).
    ///
    /// # Errors
    /// When the storage fails or the index record is corrupt.
    pub async fn index(&self) -> Result<Arc<ExpiryIndex>, CertError> {
        let mut cache = self.index_cache.lock().await;
        Ok(self.fresh_index(&mut cache).await?.0)
    }

    /// The generation record as stored now; `None` when missing, or
    /// unreadable (then the index is read every time until the next update
    /// rewrites it).
    async fn stored_generation(&self) -> Result<Option<IndexGeneration>, StorageError> {
        let key = keys::expiry_generation();
        let Some(bytes) = self.storage.get(&key).await? else { return Ok(None) };
        let generation = std::str::from_utf8(&bytes).ok().and_then(IndexGeneration::parse);
        if generation.is_none() {
            tracing::warn!(%key, "unreadable index generation record; reading the index every time until the next update");
        }
        Ok(generation)
    }

    /// The index as stored now, and the generation record read to decide it:
    /// the cached copy when its generation is the one recorded, else the
    /// record read and decoded (and cached when it has a generation).
    async fn fresh_index(
        &self,
        cache: &mut Option<Arc<ExpiryIndex>>,
    ) -> Result<(Arc<ExpiryIndex>, Option<IndexGeneration>), StorageError> {
        let recorded = self.stored_generation().await?;
        if let (Some(recorded), Some(index)) = (recorded, cache.as_ref())
            && index.generation() == Some(recorded)
        {
            return Ok((Arc::clone(index), Some(recorded)));
        }
        // A store with no index yet (nothing saved): still none while no
        // generation is recorded (a save records one before its index).
        if recorded.is_none()
            && let Some(index) = cache.as_ref()
            && index.generation().is_none()
            && index.is_empty()
        {
            return Ok((Arc::clone(index), None));
        }
        let mut found = None;
        // A store written before the `tls/` layout: its index, until the
        // next update writes the new one.
        for key in [keys::expiry_index(), legacy::expiry_index()] {
            if let Some(bytes) = self.storage.get(&key).await? {
                found = Some((key, bytes));
                break;
            }
        }
        let Some((key, bytes)) = found else {
            let empty = Arc::new(ExpiryIndex::default());
            *cache = recorded.is_none().then(|| Arc::clone(&empty));
            return Ok((empty, recorded));
        };
        let index = Arc::new(
            ExpiryIndex::decode(&bytes)
                .map_err(|e| StorageError::Corrupt { key: key.to_string(), reason: e.to_string() })?,
        );
        *cache = index.generation().is_some().then(|| Arc::clone(&index));
        Ok((index, recorded))
    }

    /// Rebuilds the expiry index from every stored bundle (after a crash
    /// between a bundle write and its index update, or an import done
    /// directly on the storage). Unreadable bundles are skipped and returned.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn rebuild_index(&self) -> Result<Vec<String>, CertError> {
        let mut fresh = ExpiryIndex::default();
        let mut unreadable = Vec::new();
        for name in self.names().await? {
            match self.load(&name).await {
                Ok(Some(bundle)) => {
                    let m = bundle.meta();
                    fresh.upsert(m.primary_name(), m.attention_at(), m.not_after);
                }
                Ok(None) => {}
                Err(_) => unreadable.push(name),
            }
        }
        self.update_index(move |index| *index = fresh).await?;
        Ok(unreadable)
    }

    /// Read–modify–write of the index record under a lease, so that
    /// concurrent writers (tasks or processes) never lose each other's entries.
    /// Starts from the cached copy when its generation is the recorded one;
    /// writes the next generation to the generation record, then the index.
    async fn update_index(&self, change: impl FnOnce(&mut ExpiryIndex)) -> Result<(), StorageError> {
        let guard = self.storage.lock(&keys::expiry_index_lease(), self.index_lease_ttl).await?;
        let mut cache = self.index_cache.lock().await;
        let result = async {
            let (current, recorded) = match self.fresh_index(&mut cache).await {
                Ok(found) => found,
                Err(StorageError::Corrupt { reason, .. }) => {
                    tracing::warn!(%reason, "expiry index corrupt; starting a new one (run rebuild_index)");
                    (Arc::new(ExpiryIndex::default()), self.stored_generation().await?)
                }
                Err(e) => return Err(e),
            };
            *cache = None; // drop the cache's reference so the index is not copied
            let mut index = Arc::unwrap_or_clone(current);
            // After both the record and the index: after a writer that died
            // between its two writes, the number still moves forward.
            let previous =
                [recorded, index.generation()].into_iter().flatten().max_by_key(IndexGeneration::number);
            let next = IndexGeneration::after(previous);
            change(&mut index);
            index.set_generation(Some(next));
            self.storage.put(&keys::expiry_generation(), next.to_string().as_bytes()).await?;
            self.storage.put(&keys::expiry_index(), &index.encode()).await?;
            *cache = Some(Arc::new(index));
            Ok(())
        }
        .await;
        drop(cache);
        guard.release().await;
        result
    }
}
