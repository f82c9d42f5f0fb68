//! The team activity log: every lifecycle event of a tenant's connections
//! (and of its keys) as an independent record.
//!
//! An append writes one new key,
//! `edge/activity/<tenant>/<time>-<random>.<kind>.<connection>`, and never
//! reads or rewrites what is there: two edges appending at once lose
//! nothing, and a failed read never wipes the log. The name alone gives the
//! time, the kind and the connection, so reading newest first with a cursor
//! and filtering by kind or connection reads only the records returned.
//! Records older than the retention (90 days by default) are skipped and
//! removed by [`ActivityLog::sweep`]: by age only, so what matters is never
//! pushed out by a burst of routine events.

use std::{sync::Arc, time::Duration};

use acme_core::{Event, EventKind, EventSink};
use async_trait::async_trait;
use cert_store::{CertStore, Storage, StorageError};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{Connection, DEFAULT_TENANT, DomainState, Problem, ProblemCode, keys};

/// Records are kept this long unless told otherwise.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Activity {
    /// The connection was created.
    Created,
    /// The records the customer must create changed (e.g. a SAN added).
    RecordsChanged,
    /// A DNS check of a connection not yet verified.
    DnsChecked {
        /// Whether every required record was right.
        valid: bool,
    },
    /// Every required record is right; the hostname is claimed.
    Verified,
    /// Issuance started.
    Issuing,
    /// A certificate was issued.
    Issued {
        /// Its serial (hex).
        serial: String,
        /// The names it covers.
        names: Vec<String>,
        /// Its expiry.
        #[serde(default, with = "time::serde::rfc3339::option")]
        not_after: Option<OffsetDateTime>,
    },
    /// A certificate was renewed.
    Renewed {
        /// Its serial (hex).
        serial: String,
        /// The names it covers.
        names: Vec<String>,
        /// Its expiry.
        #[serde(default, with = "time::serde::rfc3339::option")]
        not_after: Option<OffsetDateTime>,
    },
    /// Issuance or renewal failed.
    Failed(Problem),
    /// The CA's rate limit was hit.
    RateLimited,
    /// A live hostname's records went wrong.
    Drifted(Problem),
    /// A drifted hostname's records are right again.
    Recovered,
    /// The customer uploaded a certificate.
    CertificateUploaded {
        /// Its serial (hex).
        serial: String,
        /// Its expiry.
        #[serde(with = "time::serde::rfc3339")]
        not_after: OffsetDateTime,
    },
    /// The certificate expires soon.
    Expiring {
        /// Whole days left.
        days_left: i64,
    },
    /// A name was added to the connection's certificate.
    SanAdded {
        /// The name.
        san: String,
    },
    /// A name was removed from the connection's certificate.
    SanRemoved {
        /// The name.
        san: String,
    },
    /// The connection was archived.
    Archived,
    /// A tenant API key was made.
    KeyCreated {
        /// The key's id.
        key_id: String,
    },
    /// A tenant API key was revoked.
    KeyRevoked {
        /// The key's id.
        key_id: String,
    },
    /// The edge wrote records through the customer's DNS provider.
    RecordsApplied {
        /// `TYPE name` of each record written.
        records: Vec<String>,
        /// They had been written before and went missing (drift repaired).
        repaired: bool,
    },
    /// The customer's DNS provider refused or failed a write.
    ProviderFailed {
        /// The error's code, e.g. `provider_account_tier`.
        code: String,
        /// What the provider said.
        message: String,
        /// What the customer should do.
        fix: String,
    },
}

impl Activity {
    /// The kind as stored and filtered on, e.g. `issued`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::RecordsChanged => "records_changed",
            Self::DnsChecked { .. } => "dns_checked",
            Self::Verified => "verified",
            Self::Issuing => "issuing",
            Self::Issued { .. } => "issued",
            Self::Renewed { .. } => "renewed",
            Self::Failed(_) => "failed",
            Self::RateLimited => "rate_limited",
            Self::Drifted(_) => "drifted",
            Self::Recovered => "recovered",
            Self::CertificateUploaded { .. } => "certificate_uploaded",
            Self::Expiring { .. } => "expiring",
            Self::SanAdded { .. } => "san_added",
            Self::SanRemoved { .. } => "san_removed",
            Self::Archived => "archived",
            Self::KeyCreated { .. } => "key_created",
            Self::KeyRevoked { .. } => "key_revoked",
            Self::RecordsApplied { .. } => "records_applied",
            Self::ProviderFailed { .. } => "provider_failed",
        }
    }
}

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityEntry {
    /// The record's id: pass it as `before` to read on from here.
    pub id: String,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: OffsetDateTime,
    /// The tenant.
    pub tenant: String,
    /// The connection, if the event is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// The hostname, if the event is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// What happened (`kind` and its details).
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub activity: Activity,
}

/// Which records to read.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    /// Only this connection's.
    pub connection: Option<String>,
    /// Only this hostname's.
    pub hostname: Option<String>,
    /// Only this kind (e.g. `issued`).
    pub kind: Option<String>,
    /// Only records older than this id (the previous page's last).
    pub before: Option<String>,
}

/// A page of the log, newest first.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityPage {
    /// The records.
    pub items: Vec<ActivityEntry>,
    /// Pass as `before` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The activity log over a [`Storage`].
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

fn is_name_part(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `(time-random, kind, connection)` of a record's name.
fn parse_name(name: &str) -> Option<(&str, &str, Option<&str>)> {
    let mut parts = name.splitn(3, '.');
    let (timed, kind, connection) = (parts.next()?, parts.next()?, parts.next()?);
    Some((timed, kind, (connection != "_").then_some(connection)))
}

impl ActivityLog {
    /// A log kept in `storage` for [`DEFAULT_RETENTION`].
    #[must_use]
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage, retention: DEFAULT_RETENTION }
    }

    /// Keeps records for `retention` instead.
    #[must_use]
    pub fn with_retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// Appends one record for `tenant` (one write, nothing read).
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn append(
        &self,
        tenant: &str,
        connection: Option<&str>,
        hostname: Option<&str>,
        activity: Activity,
        at: OffsetDateTime,
    ) -> Result<ActivityEntry, StorageError> {
        let connection_id = connection.filter(|id| is_name_part(id));
        let id = format!(
            "{}.{}.{}",
            cert_store::keys::timed_record(at),
            activity.kind(),
            connection_id.unwrap_or("_")
        );
        let entry = ActivityEntry {
            id,
            at,
            tenant: tenant.to_owned(),
            connection: connection_id.map(str::to_owned),
            hostname: hostname.map(str::to_owned),
            activity,
        };
        let bytes = serde_json::to_vec(&entry).map_err(StorageError::backend)?;
        self.storage.put(&keys::activity_entry(tenant, &entry.id)?, &bytes).await?;
        Ok(entry)
    }

    /// [`append`](Self::append) for the connection `c` now; a failure is
    /// logged (the event itself has happened either way).
    pub async fn record(&self, c: &Connection, activity: Activity) {
        let at = OffsetDateTime::now_utc();
        if let Err(e) = self.append(&c.tenant, Some(&c.id), Some(&c.hostname), activity, at).await {
            tracing::warn!(hostname = %c.hostname, error = %e, "activity log write failed");
        }
    }

    /// Up to `limit` of `tenant`'s records matching `filter`, newest first,
    /// with the cursor of the next page. Kind and connection filters are
    /// read from the records' names; only returned records (and, with a
    /// hostname filter, candidates) are read.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn read(
        &self,
        tenant: &str,
        filter: &ActivityFilter,
        limit: usize,
    ) -> Result<ActivityPage, StorageError> {
        let mut names = self.storage.list(&keys::activity(tenant)?).await?;
        names.sort_by(|a, b| b.as_str().cmp(a.as_str()));
        let oldest_kept = OffsetDateTime::now_utc() - self.retention;
        let mut items = Vec::new();
        let mut next = None;
        for key in names {
            let name = key.as_str().rsplit('/').next().unwrap_or_default();
            if filter.before.as_deref().is_some_and(|before| name >= before) {
                continue;
            }
            let Some((timed, kind, connection)) = parse_name(name) else { continue };
            if cert_store::keys::record_time(timed).is_some_and(|at| at < oldest_kept) {
                break; // everything further is older still
            }
            if filter.kind.as_deref().is_some_and(|k| k != kind)
                || filter.connection.as_deref().is_some_and(|c| Some(c) != connection)
            {
                continue;
            }
            if items.len() == limit {
                next = items.last().map(|e: &ActivityEntry| e.id.clone());
                break;
            }
            let Some(bytes) = self.storage.get(&key).await? else { continue };
            match serde_json::from_slice::<ActivityEntry>(&bytes) {
                Ok(entry)
                    if filter.hostname.as_deref().is_none_or(|h| entry.hostname.as_deref() == Some(h)) =>
                {
                    items.push(entry);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(%key, error = %e, "skipping an unreadable activity record"),
            }
        }
        Ok(ActivityPage { items, next })
    }

    /// Deletes `tenant`'s records older than the retention; returns how
    /// many.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn sweep(&self, tenant: &str) -> Result<usize, StorageError> {
        let oldest_kept = OffsetDateTime::now_utc() - self.retention;
        let mut removed = 0;
        for key in self.storage.list(&keys::activity(tenant)?).await? {
            let name = key.as_str().rsplit('/').next().unwrap_or_default();
            let old = parse_name(name)
                .and_then(|(timed, ..)| cert_store::keys::record_time(timed))
                .is_some_and(|at| at < oldest_kept);
            if !old {
                break; // sorted oldest first
            }
            self.storage.delete(&key).await?;
            removed += 1;
        }
        Ok(removed)
    }

    /// The connection holding `hostname`'s claim, if any: whose activity a
    /// certificate manager's event is.
    async fn holder(&self, hostname: &str) -> Option<Connection> {
        let id = self.storage.get(&keys::claim(hostname).ok()?).await.ok()??;
        let key = keys::connection(std::str::from_utf8(&id).ok()?).ok()?;
        let bytes = self.storage.get(&key).await.ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    async fn certificate(&self, hostname: &str) -> (Vec<String>, Option<OffsetDateTime>) {
        match CertStore::new(Arc::clone(&self.storage)).load(hostname).await {
            Ok(Some(bundle)) => (bundle.meta().names.clone(), Some(bundle.meta().not_after)),
            _ => (Vec::new(), None),
        }
    }
}

/// The certificate manager's events, recorded for the tenant of the
/// connection holding the hostname (the default tenant when none does, e.g.
/// a name served on demand only).
#[async_trait]
impl EventSink for ActivityLog {
    async fn publish(&self, event: &Event) {
        let activity = match &event.kind {
            EventKind::IssuanceStarted => Activity::Issuing,
            EventKind::Issued { serial } => {
                let (names, not_after) = self.certificate(&event.hostname).await;
                Activity::Issued { serial: serial.clone(), names, not_after }
            }
            EventKind::Renewed { serial } => {
                let (names, not_after) = self.certificate(&event.hostname).await;
                Activity::Renewed { serial: serial.clone(), names, not_after }
            }
            EventKind::Failed { class, detail } => {
                Activity::Failed(Problem::new(ProblemCode::of_issuance(*class), detail.clone()))
            }
            EventKind::RateLimited => Activity::RateLimited,
            EventKind::Expiring { days_left } => Activity::Expiring { days_left: *days_left },
            // DNS checks and drift are the control plane's own records.
            _ => return,
        };
        let holder = self.holder(&event.hostname).await;
        // A failed first issuance is recorded by the control plane itself,
        // with the customer's code and when it is retried; the manager's
        // event would record it a second time. Renewals (the connection is
        // live) fail only here.
        let issuing =
            holder.as_ref().is_some_and(|c| !matches!(c.state, DomainState::Live | DomainState::Drifted));
        if issuing && matches!(activity, Activity::Failed(_)) {
            return;
        }
        let tenant = holder.as_ref().map_or(DEFAULT_TENANT, |c| c.tenant.as_str()).to_owned();
        let connection = holder.as_ref().map(|c| c.id.as_str());
        if let Err(e) = self.append(&tenant, connection, Some(&event.hostname), activity, event.at).await {
            tracing::warn!(hostname = %event.hostname, error = %e, "activity log write failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cert_store::MemoryStorage;

    fn connection(id: &str, hostname: &str) -> Connection {
        serde_json::from_value(serde_json::json!({
            "id": id, "tenant": "t1", "hostname": hostname, "plan": "free", "state": "live",
            "records": [], "certificate": null, "last_error": null,
            "created_at": "2026-12-01T00:00:00Z", "updated_at": "2026-12-01T00:00:00Z",
            "next_check_at": "2026-12-01T00:00:00Z", "failed_checks": 0, "ownership_token": "x"
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn concurrent_appends_lose_nothing_and_read_newest_first_by_pages() {
        let log = ActivityLog::new(Arc::new(MemoryStorage::new()));
        let c = connection("ab12", "shop.example.com");
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200u32 {
            let (log, c) = (log.clone(), c.clone());
            tasks.spawn(async move {
                let activity = Activity::Issued { serial: i.to_string(), names: vec![], not_after: None };
                log.append("t1", Some(&c.id), Some(&c.hostname), activity, OffsetDateTime::now_utc()).await
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap().unwrap();
        }
        let mut all = Vec::new();
        let mut filter = ActivityFilter::default();
        loop {
            let page = log.read("t1", &filter, 30).await.unwrap();
            all.extend(page.items);
            match page.next {
                Some(next) => filter.before = Some(next),
                None => break,
            }
        }
        assert_eq!(all.len(), 200, "no append lost, no record twice across pages");
        assert!(all.windows(2).all(|w| w[0].id > w[1].id && w[0].at >= w[1].at), "newest first");
        assert!(log.read("t2", &ActivityFilter::default(), 10).await.unwrap().items.is_empty());
    }

    #[tokio::test]
    async fn filters_by_connection_hostname_and_kind() {
        let log = ActivityLog::new(Arc::new(MemoryStorage::new()));
        let (a, b) = (connection("aa", "a.example.com"), connection("bb", "b.example.com"));
        let now = OffsetDateTime::now_utc();
        log.append("t1", Some(&a.id), Some(&a.hostname), Activity::Created, now).await.unwrap();
        log.append("t1", Some(&b.id), Some(&b.hostname), Activity::Created, now).await.unwrap();
        log.append("t1", Some(&a.id), Some(&a.hostname), Activity::Archived, now).await.unwrap();
        log.append("t1", None, None, Activity::KeyCreated { key_id: "k1".into() }, now).await.unwrap();
        let read = |f: ActivityFilter| {
            let log = log.clone();
            async move { log.read("t1", &f, 10).await.unwrap().items }
        };
        assert_eq!(
            read(ActivityFilter { connection: Some("aa".into()), ..Default::default() }).await.len(),
            2
        );
        let by_host =
            read(ActivityFilter { hostname: Some("b.example.com".into()), ..Default::default() }).await;
        assert_eq!(by_host.len(), 1);
        assert_eq!(by_host[0].activity, Activity::Created);
        let created = read(ActivityFilter { kind: Some("created".into()), ..Default::default() }).await;
        assert_eq!(created.len(), 2);
        assert_eq!(read(ActivityFilter::default()).await.len(), 4);
    }

    #[tokio::test]
    async fn a_failed_first_issuance_is_not_recorded_twice_a_failed_renewal_is() {
        let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
        let log = ActivityLog::new(Arc::clone(&storage));
        let failed = |host: &str| {
            Event::now(
                host,
                EventKind::Failed { class: acme_core::ErrorClass::CaUnavailable, detail: "503".into() },
            )
        };
        for (id, host, state) in [("aa", "new.example.com", "verified"), ("bb", "live.example.com", "live")] {
            let mut c = connection(id, host);
            c.state = serde_json::from_value(serde_json::json!(state)).unwrap();
            storage.put(&keys::connection(id).unwrap(), &serde_json::to_vec(&c).unwrap()).await.unwrap();
            storage.put(&keys::claim(host).unwrap(), id.as_bytes()).await.unwrap();
            log.publish(&failed(host)).await;
        }
        let items = log.read("t1", &ActivityFilter::default(), 10).await.unwrap().items;
        assert_eq!(items.len(), 1, "{items:?}");
        assert_eq!(items[0].connection.as_deref(), Some("bb"), "the renewal's failure");
    }

    #[tokio::test]
    async fn retention_is_by_age_not_count() {
        let storage = Arc::new(MemoryStorage::new());
        let log = ActivityLog::new(storage).with_retention(Duration::from_secs(3600));
        let c = connection("ab12", "shop.example.com");
        let now = OffsetDateTime::now_utc();
        log.append("t1", Some(&c.id), Some(&c.hostname), Activity::Recovered, now - time::Duration::hours(2))
            .await
            .unwrap();
        for _ in 0..150 {
            log.append("t1", Some(&c.id), Some(&c.hostname), Activity::DnsChecked { valid: true }, now)
                .await
                .unwrap();
        }
        let issued = Activity::Issued { serial: "01".into(), names: vec![], not_after: None };
        log.append("t1", Some(&c.id), Some(&c.hostname), issued.clone(), now).await.unwrap();
        let events = log.read("t1", &ActivityFilter::default(), 1000).await.unwrap().items;
        assert_eq!(events.len(), 151, "the old record is not shown, nothing recent was evicted");
        assert!(events.iter().any(|e| e.activity == issued));
        assert_eq!(log.sweep("t1").await.unwrap(), 1);
        assert_eq!(log.sweep("t1").await.unwrap(), 0);
    }
}
