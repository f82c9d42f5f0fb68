//! What this crate records through the [`metrics`] facade: storage latency
//! and errors ([`MeteredStorage`]), and the certificate inventory of the
//! expiry index ([`Inventory`]).
//!
//! Nothing is exported unless the program installs a recorder (the edge
//! installs a Prometheus exporter); without one every call is the facade's
//! no-op. Label values are bounded: never a hostname or a key.

use std::{collections::HashMap, sync::Arc, time::Duration, time::Instant};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::{CertError, CertStore, ExpiryIndex, Key, KeyInfo, Prefix, Provenance, Storage, StorageError};

/// Histogram: seconds one storage operation took, by `backend` and `operation`.
pub const STORAGE_OPERATION_DURATION: &str = "cert_store_operation_duration_seconds";
/// Counter: storage operations that returned an error, by `backend` and `operation`.
pub const STORAGE_OPERATION_ERRORS: &str = "cert_store_operation_errors_total";
/// Gauge: certificates in the expiry index (every stored certificate).
pub const CERTIFICATES_STORED: &str = "tls_certificates_stored";
/// Gauge: the earliest `not_after` of the stored certificates, as a Unix
/// timestamp in seconds (0 when none is stored).
pub const EARLIEST_EXPIRY_TIMESTAMP: &str = "tls_certificate_earliest_expiry_timestamp_seconds";
/// Gauge: seconds from now until the earliest `not_after` (negative once it
/// passed; 0 when none is stored).
pub const EARLIEST_EXPIRY: &str = "tls_certificate_earliest_expiry_seconds";
/// Gauge: stored certificates with at most `within_days` days left (cumulative, an
/// expired one counts in every bucket): the distribution of days left, as a
/// snapshot recomputed at each scrape.
pub const EXPIRING: &str = "tls_certificates_expiring";

/// The `within_days` buckets of [`EXPIRING`].
pub const DAYS_LEFT_BUCKETS: [u32; 6] = [1, 7, 14, 30, 60, 90];

/// The `operation` label values of [`MeteredStorage`].
pub mod operation {
    /// [`Storage::get`](crate::Storage::get).
    pub const GET: &str = "get";
    /// [`Storage::put`](crate::Storage::put).
    pub const PUT: &str = "put";
    /// [`Storage::delete`](crate::Storage::delete).
    pub const DELETE: &str = "delete";
    /// [`Storage::list`](crate::Storage::list).
    pub const LIST: &str = "list";
    /// [`Storage::stat`](crate::Storage::stat).
    pub const STAT: &str = "stat";
    /// Lease acquire, renew and release.
    pub const LEASE: &str = "lease";
}

/// Gauge: stored certificates by `source` (`acme`, `local_ca`,
/// `self_managed`) and `state` (`valid`; `renewal_due`: past the time it
/// needs attention — renewal, or a warning for a self-managed one;
/// `expired`).
pub const CERTIFICATES: &str = "tls_certificates";

/// The `source` label values of [`CERTIFICATES`].
pub const SOURCES: [&str; 3] = ["acme", "local_ca", "self_managed"];
/// The `state` label values of [`CERTIFICATES`].
pub const STATES: [&str; 3] = ["valid", "renewal_due", "expired"];

/// The `source` label of a provenance.
fn source_label(provenance: &Provenance) -> &'static str {
    match provenance {
        Provenance::Acme { .. } => SOURCES[0],
        Provenance::LocalCa => SOURCES[1],
        Provenance::SelfManaged => SOURCES[2],
    }
}

/// Sets the certificate gauges ([`CERTIFICATES`], [`CERTIFICATES_STORED`],
/// [`EARLIEST_EXPIRY_TIMESTAMP`], [`EARLIEST_EXPIRY`],
/// [`EXPIRING`]) from a store's expiry index.
///
/// Each certificate's source is read from its bundle once per certificate
/// version (the index's `not_after` tells a new version) and remembered, so
/// after the first pass a [`record`](Self::record) costs the index read —
/// one small storage read while the index is unchanged — and a pass over it
/// in memory. Call it when metrics are scraped.
#[derive(Debug, Default)]
pub struct Inventory {
    /// Name → (`not_after` of the version read, its source label).
    sources: tokio::sync::Mutex<HashMap<String, (OffsetDateTime, &'static str)>>,
}

impl Inventory {
    /// An inventory that has read no certificate yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `store`'s index (and the bundles of certificate versions not
    /// seen before) and sets the gauges as of `now`. A bundle that cannot be
    /// read counts with the source `acme` until it can.
    ///
    /// # Errors
    /// When the index cannot be read; the gauges are then left as they were.
    pub async fn record<S: Storage + ?Sized>(
        &self,
        store: &CertStore<S>,
        now: OffsetDateTime,
    ) -> Result<(), CertError> {
        let index = store.index().await?;
        let mut sources = self.sources.lock().await;
        sources.retain(|name, _| index.get(name).is_some());
        let mut counts = [[0u64; STATES.len()]; SOURCES.len()];
        for (name, attention_at, not_after) in index.iter() {
            let source = match sources.get(name) {
                Some((seen, source)) if *seen == not_after => *source,
                _ => match store.load(name).await {
                    Ok(Some(bundle)) => {
                        let source = source_label(&bundle.meta().provenance);
                        sources.insert(name.to_owned(), (not_after, source));
                        source
                    }
                    Ok(None) | Err(_) => SOURCES[0],
                },
            };
            let state = if not_after <= now {
                2
            } else if attention_at <= now {
                1
            } else {
                0
            };
            let row = SOURCES.iter().position(|s| *s == source).unwrap_or(0);
            counts[row][state] += 1;
        }
        drop(sources);
        #[allow(clippy::cast_precision_loss)] // counts far below 2^52
        for (row, source) in counts.iter().zip(SOURCES) {
            for (count, state) in row.iter().zip(STATES) {
                metrics::gauge!(CERTIFICATES, "source" => source, "state" => state).set(*count as f64);
            }
        }
        record_expiries(&index, now);
        Ok(())
    }
}

/// Sets [`CERTIFICATES_STORED`], [`EARLIEST_EXPIRY_TIMESTAMP`],
/// [`EARLIEST_EXPIRY`] and [`EXPIRING`] from `index` as of
/// `now` (no storage access; [`Inventory::record`] calls it).
pub fn record_expiries(index: &ExpiryIndex, now: OffsetDateTime) {
    let mut within = [0u64; DAYS_LEFT_BUCKETS.len()];
    let mut earliest: Option<OffsetDateTime> = None;
    for (_, _, not_after) in index.iter() {
        earliest = Some(earliest.map_or(not_after, |e| e.min(not_after)));
        let left = not_after - now;
        for (count, days) in within.iter_mut().zip(DAYS_LEFT_BUCKETS) {
            if left <= time::Duration::days(days.into()) {
                *count += 1;
            }
        }
    }
    #[allow(clippy::cast_precision_loss)] // counts and Unix seconds are far below 2^52
    {
        metrics::gauge!(CERTIFICATES_STORED).set(index.len() as f64);
        let (at, left) = earliest.map_or((0.0, 0.0), |e| {
            (e.unix_timestamp() as f64, (e - now).whole_milliseconds() as f64 / 1000.0)
        });
        metrics::gauge!(EARLIEST_EXPIRY_TIMESTAMP).set(at);
        metrics::gauge!(EARLIEST_EXPIRY).set(left);
        for (count, days) in within.iter().zip(DAYS_LEFT_BUCKETS) {
            metrics::gauge!(EXPIRING, "within_days" => days.to_string()).set(*count as f64);
        }
    }
}

/// A [`Storage`] that records each operation's latency
/// ([`STORAGE_OPERATION_DURATION`]) and errors ([`STORAGE_OPERATION_ERRORS`])
/// under a `backend` label, then does what the wrapped storage does.
///
/// ```
/// use std::sync::Arc;
/// use cert_store::{MemoryStorage, MeteredStorage, Storage};
/// let storage: Arc<dyn Storage> = Arc::new(MeteredStorage::new(Arc::new(MemoryStorage::new()), "memory"));
/// ```
#[derive(Debug)]
pub struct MeteredStorage<S: Storage + ?Sized> {
    inner: Arc<S>,
    backend: &'static str,
}

impl<S: Storage + ?Sized> MeteredStorage<S> {
    /// Wraps `inner`, labelled `backend` (a fixed name such as `file` or `postgres`).
    #[must_use]
    pub fn new(inner: Arc<S>, backend: &'static str) -> Self {
        Self { inner, backend }
    }

    /// The wrapped storage.
    #[must_use]
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    fn record<T>(&self, operation: &'static str, started: Instant, result: &Result<T, StorageError>) {
        observe(self.backend, operation, started.elapsed(), result.is_err());
    }
}

/// Records one storage operation of `backend`.
fn observe(backend: &'static str, operation: &'static str, took: Duration, failed: bool) {
    metrics::histogram!(STORAGE_OPERATION_DURATION, "backend" => backend, "operation" => operation)
        .record(took.as_secs_f64());
    if failed {
        metrics::counter!(STORAGE_OPERATION_ERRORS, "backend" => backend, "operation" => operation)
            .increment(1);
    }
}

#[async_trait]
impl<S: Storage + ?Sized> Storage for MeteredStorage<S> {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StorageError> {
        let started = Instant::now();
        let result = self.inner.get(key).await;
        self.record(operation::GET, started, &result);
        result
    }

    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StorageError> {
        let started = Instant::now();
        let result = self.inner.put(key, value).await;
        self.record(operation::PUT, started, &result);
        result
    }

    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        let started = Instant::now();
        let result = self.inner.delete(key).await;
        self.record(operation::DELETE, started, &result);
        result
    }

    async fn list(&self, prefix: &Prefix) -> Result<Vec<Key>, StorageError> {
        let started = Instant::now();
        let result = self.inner.list(prefix).await;
        self.record(operation::LIST, started, &result);
        result
    }

    async fn stat(&self, key: &Key) -> Result<Option<KeyInfo>, StorageError> {
        let started = Instant::now();
        let result = self.inner.stat(key).await;
        self.record(operation::STAT, started, &result);
        result
    }

    async fn try_acquire_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        let started = Instant::now();
        let result = self.inner.try_acquire_lease(name, holder, ttl).await;
        self.record(operation::LEASE, started, &result);
        result
    }

    async fn renew_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        let started = Instant::now();
        let result = self.inner.renew_lease(name, holder, ttl).await;
        self.record(operation::LEASE, started, &result);
        result
    }

    async fn release_lease(&self, name: &Key, holder: &str) -> Result<(), StorageError> {
        let started = Instant::now();
        let result = self.inner.release_lease(name, holder).await;
        self.record(operation::LEASE, started, &result);
        result
    }
}

/// Gives every metric of this crate its help text (call once after
/// installing a recorder; without one it does nothing).
pub fn describe() {
    metrics::describe_histogram!(
        STORAGE_OPERATION_DURATION,
        "Seconds one storage operation took, by backend and operation."
    );
    metrics::describe_counter!(
        STORAGE_OPERATION_ERRORS,
        "Storage operations that returned an error, by backend and operation."
    );
    metrics::describe_gauge!(
        CERTIFICATES,
        "Stored certificates by source (acme, local_ca, self_managed) and state (valid, renewal_due, expired)."
    );
    metrics::describe_gauge!(CERTIFICATES_STORED, "Certificates in the expiry index.");
    metrics::describe_gauge!(
        EARLIEST_EXPIRY_TIMESTAMP,
        "Earliest not_after of the stored certificates, Unix seconds (0: none stored)."
    );
    metrics::describe_gauge!(
        EARLIEST_EXPIRY,
        "Seconds until the earliest not_after (negative once passed; 0: none stored)."
    );
    metrics::describe_gauge!(
        EXPIRING,
        "Stored certificates with at most `within_days` days left (cumulative; expired ones included)."
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use metrics_util::{
        CompositeKey, MetricKind,
        debugging::{DebugValue, DebuggingRecorder},
    };
    use time::macros::datetime;

    use super::*;
    use crate::MemoryStorage;

    type Snapshot = Vec<(CompositeKey, Option<metrics::Unit>, Option<metrics::SharedString>, DebugValue)>;

    fn find<'a>(
        snapshot: &'a Snapshot,
        kind: MetricKind,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Option<&'a DebugValue> {
        snapshot.iter().find_map(|(key, _, _, value)| {
            let matches = key.kind() == kind
                && key.key().name() == name
                && labels.iter().all(|(k, v)| key.key().labels().any(|l| l.key() == *k && l.value() == *v));
            matches.then_some(value)
        })
    }

    #[test]
    fn metered_storage_times_operations_and_counts_errors() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let storage = MeteredStorage::new(Arc::new(MemoryStorage::new()), "memory");
                let key = Key::new("a/b").unwrap();
                storage.put(&key, b"x").await.unwrap();
                assert_eq!(storage.get(&key).await.unwrap().as_deref(), Some(&b"x"[..]));
                assert!(storage.get(&Key::new("a/missing").unwrap()).await.unwrap().is_none());
            });
        });
        let snapshot = snapshotter.snapshot().into_vec();
        let labels = [("backend", "memory"), ("operation", "get")];
        let Some(DebugValue::Histogram(gets)) =
            find(&snapshot, MetricKind::Histogram, STORAGE_OPERATION_DURATION, &labels)
        else {
            panic!("no get histogram: {snapshot:?}")
        };
        assert_eq!(gets.len(), 2);
        assert!(find(&snapshot, MetricKind::Counter, STORAGE_OPERATION_ERRORS, &labels).is_none());
    }

    #[test]
    fn inventory_gauges_follow_the_index() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let now = datetime!(2030-01-01 0:00 UTC);
        let mut index = ExpiryIndex::default();
        index.upsert("a.example.com", now, now + time::Duration::days(5));
        index.upsert("b.example.com", now, now + time::Duration::days(45));
        index.upsert("c.example.com", now, now - time::Duration::days(1));
        metrics::with_local_recorder(&recorder, || record_expiries(&index, now));
        let snapshot = snapshotter.snapshot().into_vec();
        let gauge =
            |name: &str, labels: &[(&str, &str)]| match find(&snapshot, MetricKind::Gauge, name, labels) {
                Some(DebugValue::Gauge(v)) => v.into_inner(),
                other => panic!("{name}: {other:?}"),
            };
        assert_eq!(gauge(CERTIFICATES_STORED, &[]), 3.0);
        let expired = now - time::Duration::days(1);
        #[allow(clippy::cast_precision_loss)]
        let expired_at = expired.unix_timestamp() as f64;
        assert_eq!(gauge(EARLIEST_EXPIRY_TIMESTAMP, &[]), expired_at);
        assert_eq!(gauge(EARLIEST_EXPIRY, &[]), -86_400.0);
        assert_eq!(gauge(EXPIRING, &[("within_days", "1")]), 1.0);
        assert_eq!(gauge(EXPIRING, &[("within_days", "7")]), 2.0);
        assert_eq!(gauge(EXPIRING, &[("within_days", "30")]), 2.0);
        assert_eq!(gauge(EXPIRING, &[("within_days", "60")]), 3.0);
    }

    #[test]
    fn inventory_counts_certificates_by_source_and_state() {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let bundle = |name: &str, provenance: Provenance| {
            let key = rcgen::KeyPair::generate().unwrap();
            let cert = rcgen::CertificateParams::new(vec![name.into()]).unwrap().self_signed(&key).unwrap();
            crate::CertBundle::from_pem(&cert.pem(), &key.serialize_pem(), provenance).unwrap()
        };
        let storage = Arc::new(MeteredStorage::new(Arc::new(MemoryStorage::new()), "memory"));
        let store = CertStore::new(storage);
        let inventory = Inventory::new();
        let snapshot = metrics::with_local_recorder(&recorder, || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                store.save(&bundle("a.example.com", Provenance::LocalCa)).await.unwrap();
                store.save(&bundle("b.example.com", Provenance::SelfManaged)).await.unwrap();
                store.save(&bundle("c.example.com", Provenance::SelfManaged)).await.unwrap();
                let now = OffsetDateTime::now_utc();
                inventory.record(&store, now).await.unwrap();
                let loads = snapshotter.snapshot().into_vec();
                // A second pass reads no bundle again.
                inventory.record(&store, now).await.unwrap();
                (loads, snapshotter.snapshot().into_vec())
            })
        });
        let (first, second) = snapshot;
        let gauge = |snapshot: &Snapshot, source: &str, state: &str| match find(
            snapshot,
            MetricKind::Gauge,
            CERTIFICATES,
            &[("source", source), ("state", state)],
        ) {
            Some(DebugValue::Gauge(v)) => v.into_inner(),
            other => panic!("{source}/{state}: {other:?}"),
        };
        // rcgen's default validity runs to 4096: valid.
        assert_eq!(gauge(&second, "local_ca", "valid"), 1.0);
        assert_eq!(gauge(&second, "self_managed", "valid"), 2.0);
        assert_eq!(gauge(&second, "acme", "valid"), 0.0);
        assert_eq!(gauge(&second, "self_managed", "expired"), 0.0);
        let gets = |snapshot: &Snapshot| match find(
            snapshot,
            MetricKind::Histogram,
            STORAGE_OPERATION_DURATION,
            &[("operation", "get")],
        ) {
            Some(DebugValue::Histogram(v)) => v.len(),
            _ => 0,
        };
        // The snapshot drains histograms: the second pass's reads alone.
        assert!(gets(&first) >= 3, "{}", gets(&first));
        assert!(gets(&second) <= 1, "the second pass read bundles again: {} gets", gets(&second));
    }
}
