//! The [`Storage`] trait that every backend implements.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::{Key, Prefix, StorageError};

/// Size and modification time of a stored value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    /// Length of the value in bytes.
    pub size: u64,
    /// When the value was last written.
    pub modified: SystemTime,
}

/// An async key–value store with `/`-separated keys and named leases.
///
/// This is the one trait a backend implements; everything certificate-shaped
/// (bundles, accounts, the expiry index) is built on it by
/// [`CertStore`](crate::CertStore). Values are opaque bytes.
///
/// # Contract
/// - `put` is atomic: a concurrent or later `get` sees the old value or the
///   new one, never a mixture, even if the process dies during the write.
/// - `delete` of a missing key succeeds.
/// - `list` returns every key at or below the prefix (segment-wise), sorted.
/// - Leases: at most one holder per name at any instant while the lease is
///   fresh; a lease whose holder stopped renewing is free after its ttl.
///   Backends implement the three primitives; callers use
///   [`Leases::lock`](crate::Leases::lock), which polls, refreshes and releases.
///
/// The conformance suite in [`conformance`](crate::conformance) (feature
/// `testing`) checks all of this; run it against your own backend.
///
/// # Implementing a backend
/// ```
/// use std::{collections::BTreeMap, sync::Mutex, time::{Duration, SystemTime}};
/// use async_trait::async_trait;
/// use cert_store::{Key, KeyInfo, Prefix, Storage, StorageError};
///
/// /// A toy backend: one mutex around a map (leases never expire here,
/// /// a real backend stores an expiry time with the holder).
/// #[derive(Default)]
/// struct Toy {
///     values: Mutex<BTreeMap<String, (Vec<u8>, SystemTime)>>,
///     leases: Mutex<BTreeMap<String, String>>,
/// }
///
/// #[async_trait]
/// impl Storage for Toy {
///     async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StorageError> {
///         Ok(self.values.lock().unwrap().get(key.as_str()).map(|(v, _)| v.clone()))
///     }
///     async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StorageError> {
///         self.values.lock().unwrap().insert(key.to_string(), (value.to_vec(), SystemTime::now()));
///         Ok(())
///     }
///     async fn delete(&self, key: &Key) -> Result<(), StorageError> {
///         self.values.lock().unwrap().remove(key.as_str());
///         Ok(())
///     }
///     async fn list(&self, prefix: &Prefix) -> Result<Vec<Key>, StorageError> {
///         let values = self.values.lock().unwrap();
///         values.keys().map(|k| Key::new(k.clone())).filter(|k| match k {
///             Ok(k) => k.is_under(prefix),
///             Err(_) => true,
///         }).collect()
///     }
///     async fn stat(&self, key: &Key) -> Result<Option<KeyInfo>, StorageError> {
///         Ok(self.values.lock().unwrap().get(key.as_str())
///             .map(|(v, t)| KeyInfo { size: v.len() as u64, modified: *t }))
///     }
///     async fn try_acquire_lease(&self, name: &Key, holder: &str, _ttl: Duration) -> Result<bool, StorageError> {
///         let mut leases = self.leases.lock().unwrap();
///         let current = leases.entry(name.to_string()).or_insert_with(|| holder.to_owned());
///         Ok(current == holder)
///     }
///     async fn renew_lease(&self, name: &Key, holder: &str, _ttl: Duration) -> Result<bool, StorageError> {
///         Ok(self.leases.lock().unwrap().get(name.as_str()).is_some_and(|h| h == holder))
///     }
///     async fn release_lease(&self, name: &Key, holder: &str) -> Result<(), StorageError> {
///         let mut leases = self.leases.lock().unwrap();
///         if leases.get(name.as_str()).is_some_and(|h| h == holder) {
///             leases.remove(name.as_str());
///         }
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use cert_store::Leases;
/// let store = Arc::new(Toy::default());
/// let key = Key::new("greeting").unwrap();
/// store.put(&key, b"hello").await.unwrap();
/// assert_eq!(store.get(&key).await.unwrap().as_deref(), Some(&b"hello"[..]));
/// let guard = store.lock(&Key::new("jobs/a").unwrap(), Duration::from_secs(5)).await.unwrap();
/// guard.release().await;
/// # });
/// ```
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Reads a value; `None` when the key does not exist.
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StorageError>;

    /// Writes a value atomically, replacing any previous one.
    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StorageError>;

    /// Removes a value; succeeds when it does not exist.
    async fn delete(&self, key: &Key) -> Result<(), StorageError>;

    /// Every key at or below `prefix`, sorted.
    async fn list(&self, prefix: &Prefix) -> Result<Vec<Key>, StorageError>;

    /// Size and modification time; `None` when the key does not exist.
    async fn stat(&self, key: &Key) -> Result<Option<KeyInfo>, StorageError>;

    /// Takes the lease `name` for `holder` for `ttl` if it is free, expired, or
    /// already held by `holder`. Returns whether `holder` now holds it.
    async fn try_acquire_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError>;

    /// Extends a lease `holder` holds by `ttl` from now. Returns `false` when
    /// the lease is no longer `holder`'s (it expired and another took it).
    async fn renew_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError>;

    /// Frees a lease if `holder` holds it; otherwise does nothing.
    async fn release_lease(&self, name: &Key, holder: &str) -> Result<(), StorageError>;
}
