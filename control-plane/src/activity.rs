//! The activity log: every event of a hostname as an independent record.
//!
//! An append writes one new key (`edge/activity/<hostname>/<time>-<random>`)
//! and never reads or rewrites what is there, so two edges appending at once
//! lose nothing and a failed read never wipes the log. Records older than the
//! retention (90 days by default) are dropped, by age only: what matters is
//! never pushed out by a burst of routine events.

use std::{sync::Arc, time::Duration};

use acme_core::{Event, EventSink};
use async_trait::async_trait;
use cert_store::{Storage, StorageError};
use time::OffsetDateTime;

use crate::keys;

/// How long records are kept by default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// The per-hostname activity log over a [`Storage`].
///
/// ```
/// # tokio_test_block_on(async {
/// use std::sync::Arc;
/// use acme_core::{Event, EventKind};
/// use cert_store::MemoryStorage;
/// use control_plane::ActivityLog;
///
/// let log = ActivityLog::new(Arc::new(MemoryStorage::new()));
/// log.append(&Event::now("shop.example.com", EventKind::Drifted)).await?;
/// log.append(&Event::now("shop.example.com", EventKind::Issued { serial: "01".into() })).await?;
/// let events = log.read("shop.example.com", 10).await?;
/// assert_eq!(events[0].kind, EventKind::Issued { serial: "01".into() }); // newest first
/// assert_eq!(events.len(), 2);
/// # Ok::<(), cert_store::StorageError>(()) });
/// # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Clone)]
pub struct ActivityLog {
    storage: Arc<dyn Storage>,
    retention: Duration,
}

impl std::fmt::Debug for ActivityLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivityLog").field("retention", &self.retention).finish_non_exhaustive()
    }
}

impl ActivityLog {
    /// A log over `storage`, keeping records [`DEFAULT_RETENTION`].
    #[must_use]
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage, retention: DEFAULT_RETENTION }
    }

    /// Keeps records `retention` long instead.
    #[must_use]
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Adds `event` as a record of its own.
    ///
    /// # Errors
    /// When the storage fails: this event is then not recorded (nothing
    /// else is touched).
    pub async fn append(&self, event: &Event) -> Result<(), StorageError> {
        let key = keys::activity_entry(&event.hostname, &cert_store::keys::timed_record(event.at))?;
        let bytes = serde_json::to_vec(event).map_err(StorageError::backend)?;
        self.storage.put(&key, &bytes).await
    }

    /// The hostname's newest `limit` events, newest first. Records past the
    /// retention are deleted on the way; an unreadable record is skipped
    /// (and logged), never the whole log.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn read(&self, hostname: &str, limit: usize) -> Result<Vec<Event>, StorageError> {
        let mut found = self.storage.list(&keys::activity(hostname)?).await?;
        found.sort_by(|a, b| b.as_str().cmp(a.as_str()));
        let oldest_kept = OffsetDateTime::now_utc() - self.retention;
        let mut events = Vec::with_capacity(limit.min(found.len()));
        for key in found {
            let name = key.as_str().rsplit('/').next().unwrap_or_default();
            if cert_store::keys::record_time(name).is_some_and(|at| at < oldest_kept) {
                self.storage.delete(&key).await?;
                continue;
            }
            if events.len() == limit {
                continue;
            }
            let Some(bytes) = self.storage.get(&key).await? else { continue };
            match serde_json::from_slice::<Event>(&bytes) {
                Ok(event) => events.push(event),
                Err(e) => tracing::warn!(%key, error = %e, "skipping an unreadable activity record"),
            }
        }
        Ok(events)
    }
}

#[async_trait]
impl EventSink for ActivityLog {
    async fn publish(&self, event: &Event) {
        if let Err(e) = self.append(event).await {
            tracing::warn!(hostname = %event.hostname, error = %e, "activity log write failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use acme_core::EventKind;
    use cert_store::MemoryStorage;

    #[tokio::test]
    async fn concurrent_appends_lose_nothing_and_read_newest_first() {
        let log = ActivityLog::new(Arc::new(MemoryStorage::new()));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200u32 {
            let log = log.clone();
            tasks.spawn(async move {
                log.append(&Event::now("shop.example.com", EventKind::Issued { serial: i.to_string() })).await
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap().unwrap();
        }
        let events = log.read("shop.example.com", 1000).await.unwrap();
        assert_eq!(events.len(), 200, "no append lost");
        assert!(events.windows(2).all(|w| w[0].at >= w[1].at), "newest first");
        assert_eq!(log.read("shop.example.com", 5).await.unwrap().len(), 5);
        assert!(log.read("other.example.com", 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn retention_is_by_age_not_count() {
        let log = ActivityLog::new(Arc::new(MemoryStorage::new())).with_retention(Duration::from_secs(3600));
        let mut old = Event::now("shop.example.com", EventKind::Drifted);
        old.at -= time::Duration::hours(2);
        log.append(&old).await.unwrap();
        for _ in 0..150 {
            log.append(&Event::now("shop.example.com", EventKind::DnsChecked { valid: true })).await.unwrap();
        }
        log.append(&Event::now("shop.example.com", EventKind::Issued { serial: "01".into() })).await.unwrap();
        let events = log.read("shop.example.com", 1000).await.unwrap();
        assert_eq!(events.len(), 151, "the old record is gone, nothing recent was evicted");
        assert!(events.iter().any(|e| e.kind == EventKind::Issued { serial: "01".into() }));
    }
}
