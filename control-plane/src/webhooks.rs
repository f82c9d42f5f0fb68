//! Webhook delivery: every event is stored in an outbox before it is sent,
//! signed with HMAC-SHA256, retried with backoff until a 2xx, so none is
//! lost across restarts. One storage lease per entry keeps a fleet of edges
//! from sending it twice at once.

use std::{sync::Arc, time::Duration};

use acme_core::{Event, EventKind, EventSink};
use async_trait::async_trait;
use cert_store::{Key, Leases, Storage, StorageError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::keys;

/// Sends one signed webhook request. The control plane has no HTTP client
/// of its own: the embedding application brings one (the edge uses hyper
/// with rustls).
#[async_trait]
pub trait WebhookTransport: Send + Sync {
    /// POSTs `body` (JSON) with `headers` to `url`; `Ok` only when the
    /// receiver answered 2xx.
    ///
    /// # Errors
    /// [`DeliveryError`]: the entry is retried with backoff.
    async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
    ) -> Result<(), DeliveryError>;
}

/// Why a webhook delivery failed (it is retried).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// No answer in time.
    #[error("timed out")]
    Timeout,
    /// The receiver answered with a status other than 2xx.
    #[error("receiver answered {0}")]
    Status(u16),
    /// The request could not be made or sent.
    #[error("{0}")]
    Transport(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// One event as webhook receivers get it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// Unique id (receivers deduplicate on it: delivery is at least once).
    pub id: String,
    /// `domain.verified`, `domain.live`, `domain.drift`, `certificate.issued` …
    #[serde(rename = "type")]
    pub event_type: String,
    /// The hostname concerned.
    pub hostname: String,
    /// The connection, when known.
    pub connection_id: Option<String>,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Event-specific details.
    pub data: serde_json::Value,
}

/// An outbox entry: one event for one URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    url: String,
    event: WebhookEvent,
    attempts: u32,
    #[serde(with = "time::serde::rfc3339")]
    next_at: OffsetDateTime,
}

/// `sha256=<hex>` of `timestamp.body` under `secret`: the value of the
/// `X-Edge-Signature` header (`X-Edge-Timestamp` carries the timestamp).
#[must_use]
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    format!("sha256={}", hex::encode(ctx.sign().as_ref()))
}

/// Checks a signature in constant time (what a receiver does).
#[must_use]
pub fn verify_signature(secret: &[u8], timestamp: i64, body: &[u8], header: &str) -> bool {
    let Some(hex_tag) = header.strip_prefix("sha256=") else { return false };
    let Ok(tag) = hex::decode(hex_tag) else { return false };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let mut message = timestamp.to_string().into_bytes();
    message.push(b'.');
    message.extend_from_slice(body);
    ring::hmac::verify(&key, &message, &tag).is_ok()
}

/// The outbox and its sender.
#[derive(Clone)]
pub struct Outbox {
    storage: Arc<dyn Storage>,
    urls: Vec<String>,
    secret: Vec<u8>,
    transport: Option<Arc<dyn WebhookTransport>>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("urls", &self.urls).finish_non_exhaustive()
    }
}

/// Delay before attempt `n + 1`: 1 s doubling, at most 1 h.
fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.min(12)).min(Duration::from_secs(3600))
}

impl Outbox {
    /// An outbox in `storage` sending to `urls` through `transport`,
    /// signing with `secret`.
    #[must_use]
    pub fn new(
        storage: Arc<dyn Storage>,
        urls: Vec<String>,
        secret: &str,
        transport: Arc<dyn WebhookTransport>,
    ) -> Self {
        Self { storage, urls, secret: secret.as_bytes().to_vec(), transport: Some(transport) }
    }

    /// An outbox that stores nothing and sends nothing (no webhook URLs).
    #[must_use]
    pub fn disabled(storage: Arc<dyn Storage>) -> Self {
        Self { storage, urls: Vec::new(), secret: Vec::new(), transport: None }
    }

    /// Stores the event for every URL (before any sending).
    ///
    /// # Errors
    /// When the storage fails: the event is then not recorded.
    pub async fn enqueue(
        &self,
        event_type: &str,
        hostname: &str,
        connection_id: Option<&str>,
        data: serde_json::Value,
    ) -> Result<(), StorageError> {
        let now = OffsetDateTime::now_utc();
        let id = hex::encode(rand::random::<[u8; 12]>());
        let event = WebhookEvent {
            id: id.clone(),
            event_type: event_type.to_owned(),
            hostname: hostname.to_owned(),
            connection_id: connection_id.map(str::to_owned),
            at: now,
            data,
        };
        tracing::info!(event = event_type, %hostname, "event");
        for (i, url) in self.urls.iter().enumerate() {
            let pending = Pending { url: url.clone(), event: event.clone(), attempts: 0, next_at: now };
            let bytes = serde_json::to_vec(&pending).map_err(|e| StorageError::Backend(e.into()))?;
            let name = format!("{:020}-{id}-{i}", now.unix_timestamp_nanos());
            self.storage.put(&keys::outbox_entry(&name)?, &bytes).await?;
        }
        Ok(())
    }

    /// Sends what is due; returns how many deliveries succeeded.
    pub async fn deliver_due(&self) -> usize {
        if self.urls.is_empty() {
            return 0;
        }
        let Ok(prefix) = keys::outbox() else { return 0 };
        let keys = match self.storage.list(&prefix).await {
            Ok(keys) => keys,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the webhook outbox");
                return 0;
            }
        };
        crate::metrics::queue_depth(keys.len());
        let mut delivered = 0;
        for key in keys {
            match self.deliver_one(&key).await {
                Ok(true) => delivered += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(%key, error = %e, "webhook outbox entry"),
            }
        }
        delivered
    }

    async fn deliver_one(&self, key: &Key) -> Result<bool, StorageError> {
        let lease = keys::outbox_lease(key)?;
        let Some(_guard) = self.storage.try_lock(&lease, Duration::from_secs(60)).await? else {
            return Ok(false);
        };
        // Read again under the lease: another edge may have sent it.
        let Some(bytes) = self.storage.get(key).await? else { return Ok(false) };
        let mut pending: Pending = match serde_json::from_slice(&bytes) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(%key, error = %e, "dropping an unreadable outbox entry");
                self.storage.delete(key).await?;
                return Ok(false);
            }
        };
        let now = OffsetDateTime::now_utc();
        if pending.next_at > now {
            return Ok(false);
        }
        let sent = self.send(&pending).await;
        crate::metrics::delivery(sent.as_ref().err());
        match sent {
            Ok(()) => {
                self.storage.delete(key).await?;
                Ok(true)
            }
            Err(reason) => {
                pending.attempts += 1;
                pending.next_at = now + backoff(pending.attempts);
                tracing::debug!(url = %pending.url, attempts = pending.attempts, %reason, "webhook delivery failed; will retry");
                let bytes = serde_json::to_vec(&pending).map_err(|e| StorageError::Backend(e.into()))?;
                self.storage.put(key, &bytes).await?;
                Ok(false)
            }
        }
    }

    async fn send(&self, pending: &Pending) -> Result<(), DeliveryError> {
        let Some(transport) = &self.transport else { return Err(DeliveryError::Status(0)) };
        let body = serde_json::to_vec(&pending.event).map_err(|e| DeliveryError::Transport(e.into()))?;
        let timestamp = OffsetDateTime::now_utc().unix_timestamp();
        let headers = [
            ("content-type", "application/json".to_owned()),
            ("x-edge-event", pending.event.event_type.clone()),
            ("x-edge-timestamp", timestamp.to_string()),
            ("x-edge-signature", signature(&self.secret, timestamp, &body)),
        ];
        tokio::time::timeout(Duration::from_secs(10), transport.post(&pending.url, &headers, body))
            .await
            .map_err(|_| DeliveryError::Timeout)?
    }
}

/// Turns `CertManager` events into certificate webhooks (issued, renewed,
/// failed, expiring).
#[derive(Debug)]
pub struct CertificateEvents {
    /// Where events go.
    pub outbox: Outbox,
}

#[async_trait]
impl EventSink for CertificateEvents {
    async fn publish(&self, event: &Event) {
        let (kind, data) = match &event.kind {
            EventKind::Issued { serial } => ("certificate.issued", serde_json::json!({ "serial": serial })),
            EventKind::Renewed { serial } => ("certificate.renewed", serde_json::json!({ "serial": serial })),
            EventKind::Failed { class, detail } => {
                ("certificate.failed", serde_json::json!({ "class": class, "detail": detail }))
            }
            EventKind::Expiring { days_left } => {
                ("certificate.expiring", serde_json::json!({ "days_left": days_left }))
            }
            EventKind::RateLimited => ("certificate.rate_limited", serde_json::json!({})),
            _ => return,
        };
        if let Err(e) = self.outbox.enqueue(kind, &event.hostname, None, data).await {
            tracing::error!(error = %e, event = kind, "could not store a webhook event");
        }
    }
}
