//! The [`Storage`] trait that every backend implements.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;

use crate::{Key, Prefix, StorageError};

/// Size and modification time of a stored value ([`Storage::stat`]).
///
/// ```
/// use std::time::SystemTime;
/// let info = cert_store::KeyInfo { size: 5, modified: SystemTime::now() };
/// assert_eq!(info.size, 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    /// Length of the value in bytes.
    pub size: u64,
    /// When the value was last written, at the backend's timestamp resolution.
    pub modified: SystemTime,
}

/// An async key–value store with `/`-separated keys and named leases.
///
/// This is the one trait a backend implements; everything certificate-shaped
/// (bundles, accounts, the expiry index) is built on it by
/// [`CertStore`](crate::CertStore). Values are opaque bytes.
///
/// # Values hold private keys
/// [`CertStore`](crate::CertStore) stores certificate bundles *with their
/// private keys* and ACME account keys as plain values. A backend must keep
/// them confidential: files readable by their owner only (`0600` in `0700`
/// directories, as [`FileStorage`](crate::FileStorage) does — mind the
/// default umask of a database file, which is often `0644`), a database only
/// its service can reach, or values encrypted at rest. Never log values.
///
/// # Contract
/// - `put` is atomic: a concurrent or later `get` sees the old value or the
///   new one, never a mixture, even if the process dies during the write.
/// - `delete` of a missing key succeeds.
/// - `list` returns every key at or below the prefix (segment-wise), sorted.
/// - `stat` describes the value `get` would return now: `None` exactly when
///   the key does not exist, otherwise
///   - `size`: the exact length of the current value, read-your-writes (once
///     `put` returned, `stat` reports the new length, even a microsecond
///     later — no attribute cache that lags behind the data);
///   - `modified`: the wall-clock time of the last `put`, at the backend's
///     timestamp resolution. It is within the clock skew of the real time,
///     never goes back for one key, and is later after a `put` that comes
///     more than a second after the previous one.
///
///   `stat` is **not** a change detector: two `put`s of equal length within
///   one tick of the timestamp resolution (filesystems with whole-second
///   times, coarse kernel clocks) may give equal results.
///   [`CertStore`](crate::CertStore) does not use it to know whether its
///   cached expiry index is current (it reads a generation record, see
///   [`IndexGeneration`](crate::IndexGeneration)); caches of your own should
///   do likewise.
/// - Leases: at most one holder per name at any instant while the lease is
///   fresh. A holder is an opaque string; [`Leases::lock`](crate::Leases::lock)
///   makes a new random one per guard, which polls, refreshes every ttl/3 and
///   releases. The primitives:
///   - `try_acquire_lease(name, holder, ttl)` succeeds when the lease is free,
///     expired, or already held by the same `holder` — a same-holder
///     re-acquire succeeds and extends the lease to `ttl` from now;
///   - `renew_lease` extends the lease only while `holder` still holds it
///     (also after its expiry if nobody took it), and reports `false` once
///     another holder took it;
///   - `release_lease` frees the lease only if `holder` holds it: a holder
///     whose lease expired and was taken by another must not free the new
///     holder's lease (a dropped guard that lost its lease releases too);
///   - a lease whose holder stopped renewing (crashed) is free after its ttl.
///
///   **Clock**: the ttl is measured with one clock that every holder sharing
///   the store agrees on. [`MemoryStorage`](crate::MemoryStorage) uses the
///   monotonic clock of the process (Tokio's `Instant`, so a paused test clock
///   pauses expiry too); [`FileStorage`](crate::FileStorage) stores wall-clock
///   expiry times (processes on one machine share it); `PostgresStorage` uses
///   the database server's clock (`clock_timestamp()`), so a fleet does not
///   depend on its nodes' clocks. A backend shared by several machines should
///   do the same: take the time from the shared store, not from the callers.
///
/// The conformance suite in [`conformance`](crate::conformance) (feature
/// `testing`) checks all of this; run it against your own backend, as the
/// example below does.
///
/// # Implementing a backend
/// ```
/// use std::{collections::BTreeMap, sync::Mutex, time::{Duration, Instant, SystemTime}};
/// use async_trait::async_trait;
/// use cert_store::{Key, KeyInfo, Prefix, Storage, StorageError};
///
/// /// A toy backend: one mutex around a map of values, one around the leases
/// /// (holder and expiry on this process's monotonic clock).
/// #[derive(Default)]
/// struct Toy {
///     values: Mutex<BTreeMap<String, (Vec<u8>, SystemTime)>>,
///     leases: Mutex<BTreeMap<String, (String, Instant)>>,
/// }
///
/// #[async_trait]
/// impl Storage for Toy {
///     async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StorageError> {
///         Ok(self.values.lock().unwrap().get(key.as_str()).map(|(v, _)| v.clone()))
///     }
///     async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StorageError> {
///         let mut values = self.values.lock().unwrap();
///         // `modified` moves forward on every put, even within one clock tick.
///         let previous = values.get(key.as_str()).map(|(_, t)| *t);
///         let now = SystemTime::now();
///         let modified = match previous {
///             Some(t) if t >= now => t + Duration::from_nanos(1),
///             _ => now,
///         };
///         values.insert(key.to_string(), (value.to_vec(), modified));
///         Ok(())
///     }
///     async fn delete(&self, key: &Key) -> Result<(), StorageError> {
///         self.values.lock().unwrap().remove(key.as_str());
///         Ok(())
///     }
///     async fn list(&self, prefix: &Prefix) -> Result<Vec<Key>, StorageError> {
///         let values = self.values.lock().unwrap();
///         let mut keys = Vec::new();
///         for k in values.keys() {
///             let k = Key::new(k.clone())?;
///             if k.is_under(prefix) {
///                 keys.push(k);
///             }
///         }
///         Ok(keys) // a BTreeMap iterates sorted
///     }
///     async fn stat(&self, key: &Key) -> Result<Option<KeyInfo>, StorageError> {
///         Ok(self.values.lock().unwrap().get(key.as_str())
///             .map(|(v, t)| KeyInfo { size: v.len() as u64, modified: *t }))
///     }
///     async fn try_acquire_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
///         let mut leases = self.leases.lock().unwrap();
///         let now = Instant::now();
///         match leases.get(name.as_str()) {
///             // Held by another and not expired yet.
///             Some((h, expires)) if h != holder && *expires > now => Ok(false),
///             // Free, expired, or ours already (a re-acquire extends it).
///             _ => {
///                 leases.insert(name.to_string(), (holder.to_owned(), now + ttl));
///                 Ok(true)
///             }
///         }
///     }
///     async fn renew_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
///         let mut leases = self.leases.lock().unwrap();
///         match leases.get_mut(name.as_str()) {
///             Some((h, expires)) if h == holder => {
///                 *expires = Instant::now() + ttl;
///                 Ok(true)
///             }
///             _ => Ok(false), // another holder took it
///         }
///     }
///     async fn release_lease(&self, name: &Key, holder: &str) -> Result<(), StorageError> {
///         let mut leases = self.leases.lock().unwrap();
///         // Only the holder frees it: a holder that lost the lease must not
///         // free the new holder's.
///         if leases.get(name.as_str()).is_some_and(|(h, _)| h == holder) {
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
///
/// // The whole conformance suite (feature `testing`) passes.
/// cert_store::conformance::run_all(store).await.unwrap();
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

    /// Size of the current value and time of the last `put`; `None` when the
    /// key does not exist (see the contract above for what it guarantees).
    async fn stat(&self, key: &Key) -> Result<Option<KeyInfo>, StorageError>;

    /// Takes the lease `name` for `holder` for `ttl` if it is free, expired, or
    /// already held by `holder` (then it is extended to `ttl` from now).
    /// Returns whether `holder` now holds it.
    async fn try_acquire_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError>;

    /// Extends a lease `holder` holds by `ttl` from now. Returns `false` when
    /// the lease is no longer `holder`'s (it expired and another took it).
    async fn renew_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError>;

    /// Frees a lease if `holder` holds it; otherwise does nothing (in
    /// particular it never frees a lease another holder took after `holder`'s
    /// expired).
    async fn release_lease(&self, name: &Key, holder: &str) -> Result<(), StorageError>;
}
