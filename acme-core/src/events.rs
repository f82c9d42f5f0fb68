//! Events and the per-hostname activity log.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, PoisonError},
};

use async_trait::async_trait;
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

/// Events kept per hostname by an [`EventLog`] (older ones are dropped).
pub const EVENT_LOG_PER_NAME: usize = 1000;

/// An [`EventSink`] that keeps events in memory, newest first, per
/// hostname: for tests and for looking at a manager from a debugger or an
/// admin page. A durable, fleet-wide log is the embedder's (control-plane's
/// `ActivityLog` is one).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use acme_core::{Event, EventKind, EventLog, EventSink};
/// let log = EventLog::default();
/// log.publish(&Event::now("shop.example.com", EventKind::IssuanceStarted)).await;
/// log.publish(&Event::now("shop.example.com", EventKind::Issued { serial: "01".into() })).await;
/// assert_eq!(log.events("shop.example.com")[0].kind, EventKind::Issued { serial: "01".into() });
/// # });
/// ```
#[derive(Debug, Default)]
pub struct EventLog {
    by_name: Mutex<HashMap<String, VecDeque<Event>>>,
}

impl EventLog {
    /// `hostname`'s events, newest first.
    #[must_use]
    pub fn events(&self, hostname: &str) -> Vec<Event> {
        let by_name = self.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        by_name.get(&hostname.to_ascii_lowercase()).map(|q| q.iter().cloned().collect()).unwrap_or_default()
    }
}

#[async_trait]
impl EventSink for EventLog {
    async fn publish(&self, event: &Event) {
        let mut by_name = self.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        let events = by_name.entry(event.hostname.to_ascii_lowercase()).or_default();
        events.push_front(event.clone());
        events.truncate(EVENT_LOG_PER_NAME);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn log_is_newest_first_bounded_and_per_name() {
        let log = EventLog::default();
        for i in 0..(EVENT_LOG_PER_NAME + 5) {
            log.publish(&Event::now("Shop.example.com", EventKind::Issued { serial: i.to_string() })).await;
        }
        let events = log.events("shop.example.com");
        assert_eq!(events.len(), EVENT_LOG_PER_NAME);
        assert_eq!(events[0].kind, EventKind::Issued { serial: (EVENT_LOG_PER_NAME + 4).to_string() });
        assert!(log.events("other.example.com").is_empty());
    }
}
