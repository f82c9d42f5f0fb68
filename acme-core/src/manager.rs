//! [`CertManager`]: issues, stores, renews and serves certificates.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::Duration,
};

use async_trait::async_trait;
use cert_store::{
    CertBundle, CertListener, CertSource, CertStore, ChangeCursor, Leases, Prefix, Provenance, Provision,
    ProvisionError, Storage, StorageError,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::task::JoinHandle;

use crate::{
    CertRequest, Clock, ErrorClass, Event, EventKind, EventSink, IssueError, Issuer, KeyAlgorithm,
    RenewalAction, RenewalPolicy, RetryDecision, RetryPolicy, SystemClock,
};

/// The state of a certificate name as the manager sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CertStatus {
    /// Nothing known yet.
    Pending,
    /// An order is running.
    Issuing,
    /// A valid certificate is stored.
    Valid,
    /// The last attempt failed; retried per the [`RetryPolicy`].
    Failed {
        /// Why.
        class: ErrorClass,
    },
    /// The stored certificate has expired.
    Expired,
    /// The DNS records are not in place (from the DNS-01 pre-flight).
    Dns {
        /// What is wrong with them.
        san: dns_verify::SanStatus,
    },
}

/// Settings of a [`CertManager`].
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// When to renew and warn.
    pub renewal: RenewalPolicy,
    /// What to do after failures.
    pub retry: RetryPolicy,
    /// How often the background task looks for due renewals, retries and
    /// unfinished orders (default 10 min).
    pub check_interval: Duration,
    /// Ttl of the per-name issuance lease shared by processes (default 2 min,
    /// renewed while the order runs).
    pub lease_ttl: Duration,
    /// How many retries and renewals one maintenance round runs at once
    /// (default 8).
    pub concurrency: usize,
    /// How often the background task reads the store's change feed to serve
    /// what other processes sharing the store issued, renewed or deleted
    /// (default 1 s; see [`CertStore::changes_since`]).
    pub follow_interval: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            renewal: RenewalPolicy::default(),
            retry: RetryPolicy::default(),
            check_interval: Duration::from_secs(600),
            lease_ttl: Duration::from_secs(120),
            concurrency: 8,
            follow_interval: Duration::from_secs(1),
        }
    }
}

/// A failure remembered for retrying (`retry/<name>`): what
/// [`CertManager::retry_state`] reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryState {
    /// The request to issue again.
    pub request: CertRequest,
    /// Failed attempts since the last success.
    pub attempts: usize,
    /// When the first of them failed.
    #[serde(with = "time::serde::rfc3339")]
    pub first_failure: OffsetDateTime,
    /// When the background task tries again; `None`: given up, a person must act.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_at: Option<OffsetDateTime>,
    /// The class of the last failure.
    pub class: ErrorClass,
}

struct Inner<S: Storage + ?Sized> {
    store: Arc<CertStore<S>>,
    issuer: Arc<dyn Issuer>,
    sinks: RwLock<Vec<Arc<dyn EventSink>>>,
    listeners: RwLock<Vec<Arc<dyn CertListener>>>,
    clock: Arc<dyn Clock>,
    config: ManagerConfig,
    inflight: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    cache: RwLock<HashMap<String, Arc<CertBundle>>>,
    statuses: RwLock<HashMap<String, CertStatus>>,
}

/// Orchestrates a [`CertStore`], an [`Issuer`] and [`EventSink`]s.
///
/// - [`ensure`](Self::ensure): one issuance per name at a time — in process
///   (a per-name lock) and across processes (a storage lease, after which
///   the store is checked again).
/// - [`get`](Self::get): the handshake path, from memory after the first load.
/// - A background task, started by [`start_background`](Self::start_background)
///   once the challenge listeners are bound (never at construction), renews
///   what is due, retries failures per the [`RetryPolicy`], warns about
///   self-managed certificates nearing expiry, and finishes orders a crashed
///   process left (see [`keys`](crate::keys)).
/// - Every state change is an [`Event`] for the [`EventSink`]s (added with
///   [`with_sink`](Self::with_sink) or the [`builder`](Self::builder)); an
///   [`EventLog`](crate::EventLog) keeps them in memory.
/// - It is a [`CertSource`] (with updates pushed to subscribed
///   [`CertListener`]s such as sni-proxy's resolver) and a [`Provision`]
///   hook for on-demand TLS: `sni_proxy::TlsConfig::from_source(manager, upstream)`
///   connects it to the proxy.
///
/// Construction needs no Tokio runtime; [`start_background`](Self::start_background) does.
pub struct CertManager<S: Storage + ?Sized> {
    inner: Arc<Inner<S>>,
    timer: Mutex<Option<JoinHandle<()>>>,
}

impl<S: Storage + ?Sized> Drop for CertManager<S> {
    fn drop(&mut self) {
        if let Some(timer) = self.timer.get_mut().unwrap_or_else(PoisonError::into_inner).take() {
            timer.abort();
        }
    }
}

fn storage_error(e: impl Into<crate::error::BoxError>) -> IssueError {
    IssueError::storage("certificate manager records", e)
}

/// Builds a [`CertManager`] with a clock and event sinks of your choice.
///
/// ```
/// use std::sync::Arc;
/// use acme_core::{CertManager, LocalCaIssuer, ManagerConfig, ManualClock};
/// use cert_store::{CertStore, MemoryStorage};
///
/// let store = Arc::new(CertStore::new(Arc::new(MemoryStorage::new())));
/// let issuer = Arc::new(LocalCaIssuer::new(Arc::clone(&store)));
/// let manager = CertManager::builder(store, issuer)
///     .config(ManagerConfig::default())
///     .clock(Arc::new(ManualClock::starting_now()))
///     .build(); // no runtime needed, nothing started
/// ```
pub struct CertManagerBuilder<S: Storage + ?Sized> {
    store: Arc<CertStore<S>>,
    issuer: Arc<dyn Issuer>,
    config: ManagerConfig,
    clock: Arc<dyn Clock>,
    sinks: Vec<Arc<dyn EventSink>>,
}

impl<S: Storage + ?Sized> std::fmt::Debug for CertManagerBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertManagerBuilder").field("config", &self.config).finish_non_exhaustive()
    }
}

impl<S: Storage + ?Sized> CertManagerBuilder<S> {
    /// The settings (default: [`ManagerConfig::default`]).
    #[must_use]
    pub fn config(mut self, config: ManagerConfig) -> Self {
        self.config = config;
        self
    }

    /// The clock (default: [`SystemClock`]).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Adds an event sink.
    #[must_use]
    pub fn sink(mut self, sink: Arc<dyn EventSink>) -> Self {
        self.sinks.push(sink);
        self
    }

    /// The manager; nothing runs until [`CertManager::start_background`].
    #[must_use]
    pub fn build(self) -> CertManager<S> {
        let inner = Arc::new(Inner {
            store: self.store,
            issuer: self.issuer,
            sinks: RwLock::new(self.sinks),
            listeners: RwLock::default(),
            clock: self.clock,
            config: self.config,
            inflight: Mutex::default(),
            cache: RwLock::default(),
            statuses: RwLock::default(),
        });
        CertManager { inner, timer: Mutex::new(None) }
    }
}

impl<S: Storage + ?Sized> CertManager<S> {
    /// A manager with the system clock and no event sinks. Nothing runs in
    /// the background until [`start_background`](Self::start_background)
    /// (call it once the challenge listeners are bound); no Tokio runtime
    /// is needed to construct it.
    #[must_use]
    pub fn new(store: Arc<CertStore<S>>, issuer: Arc<dyn Issuer>, config: ManagerConfig) -> Self {
        Self::builder(store, issuer).config(config).build()
    }

    /// A builder: settings, clock and event sinks.
    #[must_use]
    pub fn builder(store: Arc<CertStore<S>>, issuer: Arc<dyn Issuer>) -> CertManagerBuilder<S> {
        CertManagerBuilder {
            store,
            issuer,
            config: ManagerConfig::default(),
            clock: Arc::new(SystemClock),
            sinks: Vec::new(),
        }
    }

    /// The same manager, also publishing to `sink`.
    #[must_use]
    pub fn with_sink(self, sink: Arc<dyn EventSink>) -> Self {
        self.add_sink(sink);
        self
    }

    /// Publishes every later event to `sink` too.
    pub fn add_sink(&self, sink: Arc<dyn EventSink>) {
        self.inner.sinks.write().unwrap_or_else(PoisonError::into_inner).push(sink);
    }

    /// Starts the background task (renewals, retries, unfinished orders;
    /// following the store's change feed, so that a certificate another
    /// process renewed, replaced or deleted is served or dropped here within
    /// [`ManagerConfig::follow_interval`]) unless it runs already. Call it once the challenge listeners are bound
    /// (sni-proxy's `BoundProxy::serve_then` runs its argument after binding).
    /// Outside a Tokio runtime it logs an error and starts nothing.
    pub fn start_background(&self) {
        let mut timer = self.timer.lock().unwrap_or_else(PoisonError::into_inner);
        if timer.is_some() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("CertManager::start_background called outside a Tokio runtime: nothing started");
            return;
        };
        let background = Arc::clone(&self.inner);
        let follower = Arc::clone(&self.inner);
        *timer = Some(runtime.spawn(async move {
            let following = async move {
                let mut cursor = ChangeCursor::default();
                loop {
                    follower.follow(&mut cursor).await;
                    tokio::time::sleep(follower.config.follow_interval.max(Duration::from_millis(10))).await;
                }
            };
            let maintaining = async move {
                loop {
                    background.maintain().await;
                    tokio::time::sleep(background.config.check_interval).await;
                }
            };
            tokio::join!(following, maintaining);
        }));
    }

    /// Makes sure a valid certificate for `request` exists (issuing or
    /// renewing it if needed) and returns it.
    ///
    /// # Errors
    /// The issuance error; it is also recorded for retrying.
    pub async fn ensure(&self, request: &CertRequest) -> Result<Arc<CertBundle>, IssueError> {
        self.inner.ensure(request).await
    }

    /// Like [`ensure`](Self::ensure), but the stored certificate with serial
    /// `replace` is replaced even though it covers `request` (it carries a
    /// name that was removed from it).
    ///
    /// # Errors
    /// As [`ensure`](Self::ensure).
    pub async fn ensure_replacing(
        &self,
        request: &CertRequest,
        replace: &str,
    ) -> Result<Arc<CertBundle>, IssueError> {
        self.inner.ensure_replacing(request, Some(replace)).await
    }

    /// The certificate for a TLS server name: the exact name, else the
    /// single-level wildcard. From memory after the first load.
    pub async fn get(&self, server_name: &str) -> Option<Arc<CertBundle>> {
        self.inner.get(server_name).await
    }

    /// Stores a user's own certificate. It is served and warned about before
    /// expiry, never renewed.
    ///
    /// # Errors
    /// [`IssueError::ValidationFailed`] for an invalid bundle (with the
    /// reason), [`IssueError::Storage`] when saving fails.
    pub async fn import_self_managed(
        &self,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<Arc<CertBundle>, IssueError> {
        let bundle = CertBundle::from_pem(chain_pem, key_pem, Provenance::SelfManaged)
            .map_err(|e| IssueError::ValidationFailed { detail: e.to_string() })?;
        self.inner.store.save(&bundle).await.map_err(storage_error)?;
        let primary = bundle.meta().primary_name().to_owned();
        let bundle = Arc::new(bundle);
        self.inner.remember(&primary, Arc::clone(&bundle));
        self.inner.tell_listeners(&bundle);
        let status = if bundle.meta().is_expired_at(self.inner.clock.now()) {
            CertStatus::Expired
        } else {
            CertStatus::Valid
        };
        self.inner.set_status(&primary, status);
        Ok(bundle)
    }

    /// Drops `name` (a hostname or `*.parent`) from every cache: this
    /// manager's certificates and statuses, and every subscribed
    /// [`CertListener`] (the proxy stops serving it). The stored certificate
    /// is left alone: delete it from the [`CertStore`] first, or the next
    /// handshake for the name loads it again.
    pub fn forget(&self, name: &str) {
        self.inner.forget(name);
    }

    /// The status of a name.
    #[must_use]
    pub fn status(&self, name: &str) -> CertStatus {
        self.inner
            .statuses
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .copied()
            .unwrap_or(CertStatus::Pending)
    }

    /// The retry state of a name whose last attempt failed; `None` once it
    /// succeeded (or never failed).
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn retry_state(&self, name: &str) -> Result<Option<RetryState>, StorageError> {
        self.inner.retry_state(name).await
    }

    /// Runs one round of background maintenance now (renewals, retries,
    /// warnings, unfinished orders). The background task does this every
    /// `check_interval`.
    pub async fn maintain(&self) {
        self.inner.maintain().await;
    }
}

impl<S: Storage + ?Sized> Inner<S> {
    fn set_status(&self, name: &str, status: CertStatus) {
        self.statuses.write().unwrap_or_else(PoisonError::into_inner).insert(name.to_owned(), status);
    }

    /// The retry record of `name` (an unreadable one counts as none).
    async fn retry_state(&self, name: &str) -> Result<Option<RetryState>, StorageError> {
        let Ok(key) = crate::keys::retry(name) else { return Ok(None) };
        let bytes = self.store.storage().get(&key).await?;
        Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// Keeps `bundle` in memory for `name`, marks the name valid, and tells
    /// the listeners when it is not the certificate they already have.
    fn serve_valid(&self, name: &str, bundle: CertBundle) -> Arc<CertBundle> {
        let bundle = Arc::new(bundle);
        let previous = self.remember(name, Arc::clone(&bundle));
        self.set_status(name, CertStatus::Valid);
        if previous.is_none_or(|p| p.meta().serial != bundle.meta().serial) {
            self.tell_listeners(&bundle);
        }
        bundle
    }

    fn forget(&self, name: &str) {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.cache.write().unwrap_or_else(PoisonError::into_inner).remove(&name);
        self.statuses.write().unwrap_or_else(PoisonError::into_inner).remove(&name);
        for listener in self.listeners() {
            listener.removed(&name);
        }
    }

    /// One look at the store's change feed: a name this manager holds that
    /// another process (or this one) saved is reloaded, and its listeners
    /// get the stored certificate; a held one that was deleted is forgotten.
    async fn follow(&self, cursor: &mut ChangeCursor) {
        let names = match self.store.changes_since(cursor).await {
            Ok(names) => names,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the change feed; retrying");
                return;
            }
        };
        for name in names {
            // What this manager does not hold, its listeners got from nowhere
            // else: the next handshake loads the stored state; nothing to read.
            let held = self.cache.read().unwrap_or_else(PoisonError::into_inner).get(&name).cloned();
            let Some(held) = held else { continue };
            match self.store.load(&name).await {
                Ok(Some(stored)) if stored.meta().serial != held.meta().serial => {
                    let stored = Arc::new(stored);
                    self.remember(&name, Arc::clone(&stored));
                    self.tell_listeners(&stored);
                }
                Ok(Some(_)) => {}
                Ok(None) => self.forget(&name),
                Err(e) => tracing::warn!(%name, error = %e, "changed certificate not reloaded"),
            }
        }
    }

    fn listeners(&self) -> Vec<Arc<dyn CertListener>> {
        self.listeners.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn tell_listeners(&self, bundle: &CertBundle) {
        for listener in self.listeners() {
            listener.updated(bundle);
        }
    }

    /// Keeps `bundle` for `name`; returns the one it replaces.
    fn remember(&self, name: &str, bundle: Arc<CertBundle>) -> Option<Arc<CertBundle>> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner).insert(name.to_owned(), bundle)
    }

    async fn publish(&self, hostname: &str, kind: EventKind) {
        let event = Event { hostname: hostname.to_owned(), at: self.clock.now(), kind };
        let sinks = self.sinks.read().unwrap_or_else(PoisonError::into_inner).clone();
        for sink in &sinks {
            sink.publish(&event).await;
        }
    }

    /// From memory, else from the store — but only the names the expiry
    /// index lists (it lists every stored certificate): a name nobody has a
    /// certificate for costs one small read, not one per candidate.
    async fn get(&self, server_name: &str) -> Option<Arc<CertBundle>> {
        let candidates: Vec<String> = cert_store::hostname::candidates(server_name).collect();
        for candidate in &candidates {
            if let Some(b) = self.cache.read().unwrap_or_else(PoisonError::into_inner).get(candidate) {
                return Some(Arc::clone(b));
            }
        }
        // Without a readable index, every candidate is read.
        let index = self.store.index().await.ok();
        for candidate in candidates {
            if index.as_ref().is_some_and(|index| index.get(&candidate).is_none()) {
                continue;
            }
            if let Ok(Some(bundle)) = self.store.load(&candidate).await {
                let bundle = Arc::new(bundle);
                self.remember(&candidate, Arc::clone(&bundle));
                return Some(bundle);
            }
        }
        None
    }

    /// The stored bundle for `request` if it covers every name, is not due,
    /// and is not the one being `replace`d (by serial).
    async fn current(
        &self,
        request: &CertRequest,
        replace: Option<&str>,
    ) -> Result<Option<CertBundle>, IssueError> {
        let Some(primary) = request.primary() else { return Err(IssueError::NoSan) };
        let Some(bundle) = self.store.load(primary).await.map_err(storage_error)? else { return Ok(None) };
        let covers = request.names.iter().all(|n| bundle.meta().names.contains(n));
        let fresh = matches!(
            self.config.renewal.action(bundle.meta(), self.clock.now(), None),
            RenewalAction::Wait { .. }
        ) || bundle.meta().provenance == Provenance::SelfManaged;
        // A renewal asked to replace serial X is done once X is no longer stored.
        let usable = match replace {
            Some(serial) => bundle.meta().serial != serial,
            None => fresh,
        };
        Ok((covers && usable).then_some(bundle))
    }

    fn name_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut inflight = self.inflight.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(inflight.entry(name.to_owned()).or_default())
    }

    async fn ensure(&self, request: &CertRequest) -> Result<Arc<CertBundle>, IssueError> {
        self.ensure_replacing(request, None).await
    }

    /// Like `ensure`, but a stored certificate with serial `replace` counts
    /// as due (the CA's renewal window says so).
    async fn ensure_replacing(
        &self,
        request: &CertRequest,
        replace: Option<&str>,
    ) -> Result<Arc<CertBundle>, IssueError> {
        request.validate()?;
        let primary = request.primary().unwrap_or_default().to_owned();
        if let Some(bundle) = self.current(request, replace).await? {
            return Ok(self.serve_valid(&primary, bundle));
        }
        self.issue_exclusively(request, &primary, replace).await
    }

    /// `issue_locked` holding the name: one issuance per name in this
    /// process (a mutex) and across processes (a storage lease).
    async fn issue_exclusively(
        &self,
        request: &CertRequest,
        primary: &str,
        replace: Option<&str>,
    ) -> Result<Arc<CertBundle>, IssueError> {
        let lock = self.name_lock(primary);
        let _in_process = lock.lock().await;
        let lease_name = crate::keys::issue_lease(primary).map_err(storage_error)?;
        let lease =
            self.store.storage().lock(&lease_name, self.config.lease_ttl).await.map_err(storage_error)?;
        let result = self.issue_locked(request, primary, replace).await;
        lease.release().await;
        result
    }

    async fn issue_locked(
        &self,
        request: &CertRequest,
        primary: &str,
        replace: Option<&str>,
    ) -> Result<Arc<CertBundle>, IssueError> {
        // Look again under the lease: another holder may have issued.
        let pending_key = crate::keys::pending(primary).map_err(storage_error)?;
        if let Some(bundle) = self.current(request, replace).await? {
            // A crashed order whose certificate exists after all is finished.
            let _ = self.store.storage().delete(&pending_key).await;
            return Ok(self.serve_valid(primary, bundle));
        }
        let renewing = self.store.load(primary).await.ok().flatten().is_some();
        let request_bytes = serde_json::to_vec(request).map_err(storage_error)?;
        self.store.storage().put(&pending_key, &request_bytes).await.map_err(storage_error)?;
        self.set_status(primary, CertStatus::Issuing);
        self.publish(primary, EventKind::IssuanceStarted).await;

        let issued = self.issuer.issue(request).await;
        crate::metrics::issuance(renewing, issued.as_ref().err().map(IssueError::class));
        match issued {
            Ok(bundle) => {
                self.store.save(&bundle).await.map_err(storage_error)?;
                let _ = self.store.storage().delete(&pending_key).await;
                let _ =
                    self.store.storage().delete(&crate::keys::retry(primary).map_err(storage_error)?).await;
                let serial = bundle.meta().serial.clone();
                let bundle = self.serve_valid(primary, bundle);
                let kind =
                    if renewing { EventKind::Renewed { serial } } else { EventKind::Issued { serial } };
                self.publish(primary, kind).await;
                Ok(bundle)
            }
            Err(error) => {
                let _ = self.store.storage().delete(&pending_key).await;
                self.record_failure(request, primary, &error).await;
                Err(error)
            }
        }
    }

    async fn record_failure(&self, request: &CertRequest, primary: &str, error: &IssueError) {
        let now = self.clock.now();
        let Ok(key) = crate::keys::retry(primary) else { return };
        let previous = self.retry_state(primary).await.ok().flatten();
        let (attempts, first_failure) = previous.map_or((0, now), |p| (p.attempts, p.first_failure));
        let failing_for = (now - first_failure).try_into().unwrap_or_default();
        let next_at = match self.config.retry.decide(error, attempts, failing_for) {
            RetryDecision::RetryAfter(d) | RetryDecision::WaitForDns(d) => {
                Some(now + time::Duration::try_from(d).unwrap_or(time::Duration::HOUR))
            }
            RetryDecision::GiveUp => None,
        };
        let record = RetryState {
            request: request.clone(),
            attempts: attempts + 1,
            first_failure,
            next_at,
            class: error.class(),
        };
        if let Ok(bytes) = serde_json::to_vec(&record) {
            let _ = self.store.storage().put(&key, &bytes).await;
        }
        let status = match error.class() {
            ErrorClass::CnameNotFound => CertStatus::Dns { san: dns_verify::SanStatus::DnsMissing },
            ErrorClass::TxtConflict => CertStatus::Dns { san: dns_verify::SanStatus::DnsDuplicate },
            class => CertStatus::Failed { class },
        };
        self.set_status(primary, status);
        if error.class() == ErrorClass::RateLimited {
            self.publish(primary, EventKind::RateLimited).await;
        }
        self.publish(primary, EventKind::Failed { class: error.class(), detail: error.report() }).await;
    }

    /// One round: unfinished orders, due retries, due renewals, warnings.
    async fn maintain(&self) {
        let now = self.clock.now();
        // Orders a crashed process left behind (not the ones this process
        // is working on right now: their own `ensure` is running).
        // They take the locked path at once, which also clears a record
        // whose certificate was stored before the crash.
        let unfinished =
            self.records::<CertRequest>(crate::keys::pending_prefix()).await.into_iter().filter(|request| {
                request.primary().is_some_and(|name| self.name_lock(name).try_lock().is_ok())
            });
        self.concurrently(unfinished, |request| async move {
            let primary = request.primary().unwrap_or_default().to_owned();
            let _ = self.issue_exclusively(&request, &primary, None).await;
        })
        .await;
        // Failures whose retry time has come.
        let due = self
            .records::<RetryState>(crate::keys::retry_prefix())
            .await
            .into_iter()
            .filter_map(|record| record.next_at.is_some_and(|t| t <= now).then_some(record.request));
        self.concurrently(due, |request| async move {
            let _ = self.ensure(&request).await;
        })
        .await;
        // Renewals and warnings, from the expiry index.
        // Certificates within 30 days of their default renewal time are also
        // asked about the CA's renewal window (ARI), which may be earlier.
        let horizon = now
            + (self.config.renewal.before_expiry - time::Duration::days(30)).max(time::Duration::ZERO)
            + time::Duration::days(30);
        let Ok(due) = self.store.due_before(horizon + time::Duration::seconds(1)).await else { return };
        self.concurrently(due, |(name, _)| async move { self.attend(&name, now).await }).await;
    }

    /// Renews, warns about or marks expired the certificate stored as
    /// `name`, as the renewal policy (and the CA's window) says.
    async fn attend(&self, name: &str, now: OffsetDateTime) {
        let Ok(Some(bundle)) = self.store.load(name).await else { return };
        let ari = if bundle.meta().provenance == Provenance::SelfManaged {
            None
        } else {
            self.issuer.renewal_window(&bundle).await
        };
        match self.config.renewal.action(bundle.meta(), now, ari) {
            RenewalAction::Renew => {
                let meta = bundle.meta();
                let request =
                    CertRequest { names: meta.names.clone(), key: KeyAlgorithm::renewing(&meta.key_type) };
                let _ = self.ensure_replacing(&request, Some(&meta.serial)).await;
            }
            RenewalAction::Warn { days_left } => self.warn_once(name, days_left).await,
            RenewalAction::Expired => {
                self.set_status(name, CertStatus::Expired);
                self.warn_once(name, 0).await;
            }
            RenewalAction::Wait { .. } => {}
        }
    }

    /// Runs `work` on every item, `config.concurrency` at a time (outcomes
    /// are recorded by the work itself: status, events, retry records).
    async fn concurrently<T, F, Fut>(&self, items: impl IntoIterator<Item = T>, work: F)
    where
        F: FnMut(T) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        use futures_util::StreamExt;
        futures_util::stream::iter(items).for_each_concurrent(self.config.concurrency.max(1), work).await;
    }

    /// Publishes `Expiring` once per threshold (30, 14, 7, 1 days, expired).
    async fn warn_once(&self, name: &str, days_left: i64) {
        let threshold = if days_left <= 0 {
            0
        } else {
            self.config.renewal.warning_threshold(days_left).unwrap_or(days_left)
        };
        let Ok(key) = crate::keys::warned(name) else { return };
        let last: Option<i64> =
            self.store.storage().get(&key).await.ok().flatten().and_then(|b| serde_json::from_slice(&b).ok());
        if last.is_some_and(|l| l <= threshold) {
            return;
        }
        let _ = self.store.storage().put(&key, threshold.to_string().as_bytes()).await;
        self.publish(name, EventKind::Expiring { days_left }).await;
    }

    async fn records<T: serde::de::DeserializeOwned>(&self, prefix: Result<Prefix, StorageError>) -> Vec<T> {
        let Ok(prefix) = prefix else { return Vec::new() };
        let Ok(keys) = self.store.storage().list(&prefix).await else { return Vec::new() };
        let mut out = Vec::new();
        for key in keys {
            if let Ok(Some(bytes)) = self.store.storage().get(&key).await
                && let Ok(record) = serde_json::from_slice(&bytes)
            {
                out.push(record);
            }
        }
        out
    }
}

#[async_trait]
impl<S: Storage + ?Sized> CertSource for CertManager<S> {
    async fn certificate(&self, server_name: &str) -> Option<Arc<CertBundle>> {
        self.get(server_name).await
    }

    /// `listener` hears of every certificate this manager issues, renews
    /// or imports, and of every name it [`forget`](CertManager::forget)s.
    fn subscribe(&self, listener: Arc<dyn CertListener>) {
        self.inner.listeners.write().unwrap_or_else(PoisonError::into_inner).push(listener);
    }
}

/// On-demand issuance: [`ensure`](CertManager::ensure) for the one name.
/// Failures the [`RetryPolicy`] would retry are
/// [`ProvisionError::Temporary`], the others `Permanent`; the
/// [`IssueError`] is the source.
#[async_trait]
impl<S: Storage + ?Sized> Provision for CertManager<S> {
    async fn provision(&self, name: &str) -> Result<Arc<CertBundle>, ProvisionError> {
        self.ensure(&CertRequest::new([name])).await.map_err(|error| {
            let name = name.to_owned();
            match self.inner.config.retry.decide(&error, 0, Duration::ZERO) {
                RetryDecision::GiveUp => ProvisionError::Permanent { name, source: Box::new(error) },
                _ => ProvisionError::Temporary { name, source: Box::new(error) },
            }
        })
    }
}
