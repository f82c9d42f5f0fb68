//! Events and the per-hostname activity log.

use std::sync::Arc;

use async_trait::async_trait;
use cert_store::{Key, Storage, StorageError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ErrorClass;

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// DNS records were checked.
    DnsChecked {
        /// Whether every record was valid.
        valid: bool,
    },
    /// Issuance started.
    IssuanceStarted,
    /// A certificate was issued.
    Issued {
        /// Its serial number.
        serial: String,
    },
    /// A certificate was renewed.
    Renewed {
        /// The new serial number.
        serial: String,
    },
    /// Issuance failed.
    Failed {
        /// The error class.
        class: ErrorClass,
        /// The message.
        detail: String,
    },
    /// The CA rate-limited us.
    RateLimited,
    /// A certificate is close to expiry (self-managed: never renewed).
    Expiring {
        /// Whole days left.
        days_left: i64,
    },
    /// DNS records changed after going live.
    Drifted,
}

/// One event about one hostname.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The hostname.
    pub hostname: String,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// An event happening now.
    #[must_use]
    pub fn now(hostname: &str, kind: EventKind) -> Self {
        Self { hostname: hostname.to_owned(), at: OffsetDateTime::now_utc(), kind }
    }
}

/// Receives every event (webhooks, metrics, logs).
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Called once per event; must not block for long.
    async fn publish(&self, event: &Event);
}

/// How many entries the activity log keeps per hostname.
pub const ACTIVITY_LOG_LIMIT: usize = 100;

/// The per-hostname activity log, stored at `activity/<hostname>` (newest
/// first, bounded to [`ACTIVITY_LOG_LIMIT`] entries).
pub struct ActivityLog<S: Storage + ?Sized> {
    storage: Arc<S>,
}

impl<S: Storage + ?Sized> ActivityLog<S> {
    /// A log over `storage`.
    pub fn new(storage: Arc<S>) -> Self {
        Self { storage }
    }

    fn key(hostname: &str) -> Result<Key, StorageError> {
        Key::new(format!("activity/{}", hostname.to_ascii_lowercase()))
    }

    /// The hostname's events, newest first.
    ///
    /// # Errors
    /// When the storage fails or the record is corrupt.
    pub async fn read(&self, hostname: &str) -> Result<Vec<Event>, StorageError> {
        let key = Self::key(hostname)?;
        match self.storage.get(&key).await? {
            None => Ok(Vec::new()),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| StorageError::Corrupt { key: key.to_string(), reason: e.to_string() }),
        }
    }

    /// Prepends `event` to its hostname's log.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn append(&self, event: &Event) -> Result<(), StorageError> {
        let key = Self::key(&event.hostname)?;
        let mut events = self.read(&event.hostname).await.unwrap_or_default();
        events.insert(0, event.clone());
        events.truncate(ACTIVITY_LOG_LIMIT);
        let bytes = serde_json::to_vec(&events).map_err(StorageError::backend)?;
        self.storage.put(&key, &bytes).await
    }
}

#[async_trait]
impl<S: Storage + ?Sized> EventSink for ActivityLog<S> {
    async fn publish(&self, event: &Event) {
        if let Err(e) = self.append(event).await {
            tracing::warn!(hostname = %event.hostname, error = %e, "activity log write failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cert_store::MemoryStorage;

    #[tokio::test]
    async fn log_is_newest_first_and_bounded() {
        let log = ActivityLog::new(Arc::new(MemoryStorage::new()));
        for i in 0..(ACTIVITY_LOG_LIMIT + 5) {
            log.publish(&Event::now("shop.example.com", EventKind::Issued { serial: i.to_string() })).await;
        }
        let events = log.read("shop.example.com").await.unwrap();
        assert_eq!(events.len(), ACTIVITY_LOG_LIMIT);
        assert_eq!(events[0].kind, EventKind::Issued { serial: (ACTIVITY_LOG_LIMIT + 4).to_string() });
        assert!(log.read("other.example.com").await.unwrap().is_empty());
    }
}
