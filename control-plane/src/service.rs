//! What the control plane does with connections: create, check, verify,
//! issue, watch for drift, archive. An API and the worker both call into
//! [`ControlPlane`].

use std::{sync::Arc, time::Duration};

use acme_core::{CertManager, CertRequest, Event, EventKind, EventSink};
use cert_store::{CertBundle, CertStore, LeaseGuard, Provenance, Storage};
use dns_verify::{
    Checker, DnsProvider, DnsRecord, Expectation, Hostname, RecordReport, RecordStatus, Requirements,
    SanStatus,
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    ActivityLog, CertificateInfo, CertificateRejected, Connection, DEFAULT_TENANT, DesiredRecord,
    DomainState, Error, Outbox, Problem, ProblemCode, Repo, Settings, WidgetKey,
};

/// The custom-domain control plane over one shared store.
///
/// Made with [`ControlPlane::builder`]; every method is safe to call from
/// several edges sharing the store (claims, quotas and work are taken
/// under storage leases).
pub struct ControlPlane {
    settings: Settings,
    repo: Repo,
    requirements: Requirements,
    checker: Checker,
    manager: Arc<CertManager<dyn Storage>>,
    store: Arc<CertStore<dyn Storage>>,
    outbox: Outbox,
    activity: ActivityLog,
    widget: WidgetKey,
    record_writer: Option<Arc<dyn DnsProvider>>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane").field("settings", &self.settings).finish_non_exhaustive()
    }
}

/// Builds a [`ControlPlane`].
pub struct ControlPlaneBuilder {
    store: Arc<CertStore<dyn Storage>>,
    manager: Arc<CertManager<dyn Storage>>,
    checker: Checker,
    requirements: Requirements,
    settings: Settings,
    outbox: Option<Outbox>,
    activity: Option<ActivityLog>,
    widget: Option<WidgetKey>,
    record_writer: Option<Arc<dyn DnsProvider>>,
}

impl std::fmt::Debug for ControlPlaneBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlaneBuilder").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl ControlPlaneBuilder {
    /// Settings (default: [`Settings::default`]).
    #[must_use]
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Where webhook events go (default: nowhere).
    #[must_use]
    pub fn outbox(mut self, outbox: Outbox) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// The activity log (default: one over the store, 90 days).
    #[must_use]
    pub fn activity(mut self, activity: ActivityLog) -> Self {
        self.activity = Some(activity);
        self
    }

    /// The key signing widget tokens (default: random per process).
    #[must_use]
    pub fn widget_key(mut self, key: WidgetKey) -> Self {
        self.widget = Some(key);
        self
    }

    /// Writes each new connection's records through `provider` itself (a
    /// zone the platform controls for the customer, or a local development
    /// zone), and removes them when the connection is archived. Without
    /// one, the customer creates them.
    #[must_use]
    pub fn apply_records_with(mut self, provider: Arc<dyn DnsProvider>) -> Self {
        self.record_writer = Some(provider);
        self
    }

    /// The control plane.
    #[must_use]
    pub fn build(self) -> ControlPlane {
        let storage = Arc::clone(self.store.storage());
        ControlPlane {
            repo: Repo::new(Arc::clone(&storage)),
            outbox: self.outbox.unwrap_or_else(|| Outbox::disabled(Arc::clone(&storage))),
            activity: self.activity.unwrap_or_else(|| ActivityLog::new(storage)),
            widget: self.widget.unwrap_or_else(WidgetKey::random),
            settings: self.settings,
            requirements: self.requirements,
            checker: self.checker,
            manager: self.manager,
            store: self.store,
            record_writer: self.record_writer,
        }
    }
}

/// One desired record with what DNS says about it now.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordCheck {
    /// `ownership_txt`, `acme_delegation` or `routing`.
    pub purpose: String,
    /// Record name.
    pub name: String,
    /// Record type.
    #[serde(rename = "type")]
    pub record_type: String,
    /// The value it must have.
    pub expected_value: String,
    /// `valid`, `missing`, `wrong`, `duplicate`, `proxied`, `lookup_failed`.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub status: RecordStatus,
    /// What the authoritative servers answer.
    pub observed_value: Vec<String>,
    /// Needed for verification.
    pub required: bool,
    /// What to do, in one line.
    pub fix: String,
}

/// `records:check`: every record and the hostname's overall DNS status.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecordsCheck {
    /// The hostname.
    pub hostname: String,
    /// The connection's state.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub state: DomainState,
    /// `pending`, `dns_missing`, `dns_wrong`, `dns_duplicate` or `valid` (required records).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub san_status: SanStatus,
    /// Each record.
    pub records: Vec<RecordCheck>,
}

/// What the required records say.
enum Verdict {
    Valid,
    /// A person must act: code and fix text.
    NotYet(ProblemCode, String),
    /// A lookup failed: nothing can be concluded now.
    Unknown(String),
}

/// Whether `e` must be valid before verification: always, except the ACME
/// delegation, which only DNS-01 needs.
fn is_required(e: &Expectation, dns01: bool) -> bool {
    dns01 || !matches!(e, Expectation::AcmeDelegation { .. })
}

fn verdict(reports: &[RecordReport], dns01: bool) -> Verdict {
    let required: Vec<&RecordReport> =
        reports.iter().filter(|r| is_required(&r.expectation, dns01)).collect();
    let status = SanStatus::from_records(required.iter().map(|r| &r.status));
    let fixes = || {
        required
            .iter()
            .filter(|r| r.status != RecordStatus::Valid)
            .map(|r| r.fix.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    match status {
        SanStatus::Valid => Verdict::Valid,
        SanStatus::Pending => Verdict::Unknown(fixes()),
        SanStatus::DnsMissing => Verdict::NotYet(ProblemCode::DnsMissing, fixes()),
        SanStatus::DnsWrong => Verdict::NotYet(ProblemCode::DnsWrong, fixes()),
        SanStatus::DnsDuplicate => Verdict::NotYet(ProblemCode::DnsDuplicate, fixes()),
    }
}

/// Delay before the next DNS check after `failed` checks in a row:
/// 5 s, 15 s, 30 s, 1 min, 2 min, 5 min, 15 min, 30 min, then hourly.
fn dns_backoff(failed: u32) -> Duration {
    const STEPS: [u64; 9] = [5, 15, 30, 60, 120, 300, 900, 1800, 3600];
    Duration::from_secs(STEPS[(failed.max(1) as usize - 1).min(STEPS.len() - 1)])
}

/// Connections one worker tick takes on at most (the rest wait for the next tick).
const MAX_STEPS_PER_TICK: usize = 1000;

/// The record a provider writes for `desired` (`None` for a type no provider writes).
fn dns_record(desired: &DesiredRecord) -> Option<DnsRecord> {
    match desired.record_type.as_str() {
        "TXT" => Some(DnsRecord::txt(&desired.name, &desired.value)),
        "CNAME" => Some(DnsRecord::cname(&desired.name, &desired.value)),
        "A" => desired.value.parse().ok().map(|ip| DnsRecord::a(&desired.name, ip)),
        _ => None,
    }
}

/// Moves `c` to `to` if the lifecycle table allows it.
fn go(c: &mut Connection, to: DomainState) -> Result<(), Error> {
    c.state = c.state.go_to(to)?;
    c.updated_at = OffsetDateTime::now_utc();
    Ok(())
}

impl ControlPlane {
    /// A builder: certificates in `store`, issued by `manager`; DNS asked
    /// through `checker` for the records `requirements` describe.
    #[must_use]
    pub fn builder(
        store: Arc<CertStore<dyn Storage>>,
        manager: Arc<CertManager<dyn Storage>>,
        checker: Checker,
        requirements: Requirements,
    ) -> ControlPlaneBuilder {
        ControlPlaneBuilder {
            store,
            manager,
            checker,
            requirements,
            settings: Settings::default(),
            outbox: None,
            activity: None,
            widget: None,
            record_writer: None,
        }
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Connection records (listing, claims).
    #[must_use]
    pub fn repo(&self) -> &Repo {
        &self.repo
    }

    /// The activity log.
    #[must_use]
    pub fn activity(&self) -> &ActivityLog {
        &self.activity
    }

    /// The webhook outbox.
    #[must_use]
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The records a customer creates for `host`.
    #[must_use]
    pub fn desired_records(&self, host: &Hostname, token: &str) -> Vec<DesiredRecord> {
        self.requirements
            .for_host(host, Some(token))
            .iter()
            .map(|e| DesiredRecord {
                purpose: e.kind().to_owned(),
                name: e.record_name(),
                record_type: e.record_type().to_owned(),
                value: e.expected_value(),
                required: is_required(e, self.settings.uses_dns01()),
            })
            .collect()
    }

    async fn event(&self, c: &Connection, kind: &str, data: serde_json::Value) -> Result<(), Error> {
        Ok(self.outbox.enqueue(kind, &c.hostname, Some(&c.id), data).await?)
    }

    /// Creates a connection in `pending_ownership`.
    ///
    /// # Errors
    /// [`Error::InvalidHostname`], [`Error::WildcardNotOffered`],
    /// [`Error::UnknownPlan`], [`Error::HostnameConflict`] (another
    /// connection holds it), [`Error::QuotaExceeded`], [`Error::Storage`].
    pub async fn create(&self, hostname: &str, plan: Option<&str>) -> Result<Connection, Error> {
        let host = Hostname::parse(hostname)
            .map_err(|source| Error::InvalidHostname { name: hostname.to_owned(), source })?;
        if host.is_wildcard() {
            return Err(Error::WildcardNotOffered { name: host.as_str().to_owned() });
        }
        let plan = plan.unwrap_or("free");
        let limit =
            self.settings.quotas.limit(plan).ok_or_else(|| Error::UnknownPlan { plan: plan.to_owned() })?;
        let _claim = self.repo.lock_hostname(host.as_str()).await?;
        if self.repo.claim_holder(host.as_str()).await?.is_some() {
            return Err(Error::HostnameConflict { hostname: host.as_str().to_owned() });
        }
        let _quota = self.repo.lock_quota(plan).await?;
        let used = self
            .repo
            .list()
            .await?
            .iter()
            .filter(|c| c.plan == plan && c.state != DomainState::Archived)
            .count();
        if used >= limit {
            return Err(Error::QuotaExceeded {
                plan: plan.to_owned(),
                limit,
                upgrade_url: self.settings.upgrade_url.clone(),
            });
        }
        let now = OffsetDateTime::now_utc();
        let token = hex::encode(rand::random::<[u8; 16]>());
        let c = Connection {
            id: hex::encode(rand::random::<[u8; 12]>()),
            tenant: DEFAULT_TENANT.to_owned(),
            hostname: host.as_str().to_owned(),
            plan: plan.to_owned(),
            state: DomainState::PendingOwnership,
            records: self.desired_records(&host, &token),
            certificate: None,
            last_error: None,
            created_at: now,
            updated_at: now,
            next_check_at: now,
            failed_checks: 0,
            ownership_token: token,
        };
        self.repo.put(&c).await?;
        self.write_records(&c, true).await;
        Ok(c)
    }

    /// With a record writer: creates (or deletes) the connection's records.
    /// A failure is logged; the records check then shows what is missing.
    async fn write_records(&self, c: &Connection, create: bool) {
        let Some(writer) = &self.record_writer else { return };
        for record in c.records.iter().filter_map(dns_record) {
            let written = if create { writer.create(&record).await } else { writer.delete(&record).await };
            if let Err(e) = written {
                tracing::warn!(hostname = %c.hostname, record = %record.name, error = %e, "record not written");
            }
        }
    }

    /// One connection.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Storage`].
    pub async fn get(&self, id: &str) -> Result<Connection, Error> {
        let mut c = self.repo.get(id).await?.ok_or(Error::NotFound)?;
        self.refresh_certificate(&mut c).await;
        Ok(c)
    }

    /// Renewals happen outside the connection's lifecycle (the certificate
    /// manager's background task): a live connection shows the certificate
    /// stored now.
    async fn refresh_certificate(&self, c: &mut Connection) {
        if c.state != DomainState::Live || c.certificate.is_none() {
            return;
        }
        if let Ok(Some(bundle)) = self.store.load(&c.hostname).await {
            c.certificate = Some(CertificateInfo::of(&bundle));
        }
    }

    /// Checks the connection's records now.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Storage`].
    pub async fn check_records(&self, id: &str) -> Result<RecordsCheck, Error> {
        let c = self.get(id).await?;
        let reports = self.lookup(&c).await?;
        let dns01 = self.settings.uses_dns01();
        let required = reports.iter().filter(|r| is_required(&r.expectation, dns01)).map(|r| &r.status);
        Ok(RecordsCheck {
            hostname: c.hostname.clone(),
            state: c.state,
            san_status: SanStatus::from_records(required),
            records: reports
                .into_iter()
                .map(|r| RecordCheck {
                    purpose: r.expectation.kind().to_owned(),
                    required: is_required(&r.expectation, dns01),
                    name: r.name,
                    record_type: r.record_type,
                    expected_value: r.expected,
                    status: r.status,
                    observed_value: r.observed,
                    fix: r.fix,
                })
                .collect(),
        })
    }

    /// The connection's records as DNS has them now.
    async fn lookup(&self, c: &Connection) -> Result<Vec<RecordReport>, Error> {
        let host = Hostname::parse(&c.hostname)
            .map_err(|source| Error::InvalidHostname { name: c.hostname.clone(), source })?;
        let expectations = self.requirements.for_host(&host, Some(&c.ownership_token));
        Ok(self.checker.check(&expectations).await)
    }

    /// [`lookup`](Self::lookup), recorded in the activity log.
    async fn check(&self, c: &Connection) -> Result<Vec<RecordReport>, Error> {
        let reports = self.lookup(c).await?;
        let dns01 = self.settings.uses_dns01();
        let valid = reports
            .iter()
            .filter(|r| is_required(&r.expectation, dns01))
            .all(|r| r.status == RecordStatus::Valid);
        self.activity.publish(&Event::now(&c.hostname, EventKind::DnsChecked { valid })).await;
        Ok(reports)
    }

    /// Archives a connection: its claim is released, its certificate no
    /// longer served.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Storage`].
    pub async fn archive(&self, id: &str) -> Result<Connection, Error> {
        let (_work, mut c) = self.locked(id, true).await?.ok_or(Error::NotFound)?;
        if c.state == DomainState::Archived {
            return Ok(c);
        }
        let _claim = self.repo.lock_hostname(&c.hostname).await?;
        let held = self.repo.claim_holder(&c.hostname).await?.is_some_and(|h| h.id == c.id);
        go(&mut c, DomainState::Archived)?;
        self.repo.put(&c).await?;
        self.repo.release_claim(&c.hostname, &c.id).await?;
        if held {
            if let Err(e) = self.store.delete(&c.hostname).await {
                tracing::warn!(hostname = %c.hostname, error = %e, "certificate not deleted");
            }
            // Out of every cache, and no longer served by whatever the
            // manager feeds (the proxy): at once, not at the next handshake.
            self.manager.forget(&c.hostname);
        }
        self.write_records(&c, false).await;
        self.event(&c, "domain.archived", serde_json::json!({})).await?;
        Ok(c)
    }

    /// Stores a customer's own certificate for the connection (validated:
    /// key matches, covers the hostname, not expired); served, warned about,
    /// never renewed.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::InvalidCertificate`], [`Error::Storage`].
    pub async fn upload_certificate(
        &self,
        id: &str,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<Connection, Error> {
        let (_work, mut c) = self.locked(id, true).await?.ok_or(Error::NotFound)?;
        if c.state == DomainState::Archived {
            return Err(Error::NotFound);
        }
        let bundle = CertBundle::from_pem(chain_pem, key_pem, Provenance::SelfManaged)
            .map_err(CertificateRejected::Invalid)?;
        let covers = bundle.meta().names.iter().any(|n| dns_verify::name_matches(n, &c.hostname));
        if !covers {
            return Err(CertificateRejected::NotCovering {
                names: bundle.meta().names.clone(),
                hostname: c.hostname.clone(),
            }
            .into());
        }
        if bundle.meta().is_expired_at(OffsetDateTime::now_utc()) {
            return Err(CertificateRejected::Expired.into());
        }
        let bundle = bundle.with_primary_name(&c.hostname);
        let stored = self
            .manager
            .import_self_managed(bundle.chain_pem(), bundle.key_pem())
            .await
            .map_err(CertificateRejected::Import)?;
        c.certificate = Some(CertificateInfo::of(&stored));
        c.next_check_at = OffsetDateTime::now_utc();
        c.updated_at = c.next_check_at;
        self.repo.put(&c).await?;
        self.activity
            .publish(&Event::now(&c.hostname, EventKind::Issued { serial: stored.meta().serial.clone() }))
            .await;
        Ok(c)
    }

    /// Whether on-demand TLS may issue for `hostname`: its connection is
    /// verified or later.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn ask(&self, hostname: &str) -> Result<bool, Error> {
        let Ok(host) = Hostname::parse(hostname) else { return Ok(false) };
        Ok(self.repo.claim_holder(host.as_str()).await?.is_some())
    }

    /// The connection's work lease and the connection, read under it.
    /// `wait`: wait for another worker holding it, else `None` when held.
    /// Ids that cannot be ours are `NotFound` before any storage key is made.
    async fn locked(&self, id: &str, wait: bool) -> Result<Option<(LeaseGuard, Connection)>, Error> {
        if !Repo::is_id(id) {
            return Err(Error::NotFound);
        }
        let guard = if wait {
            self.repo.lock_connection(id).await?
        } else {
            match self.repo.try_lock_connection(id).await? {
                Some(guard) => guard,
                None => return Ok(None),
            }
        };
        Ok(Some((guard, self.get(id).await?)))
    }

    /// Moves a connection as far as it can go now (check, verify, issue,
    /// drift), at most `steps` state changes. `wait`: wait for another
    /// worker holding it (API), else skip it.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Storage`].
    pub async fn advance(&self, id: &str, wait: bool, steps: usize) -> Result<Option<Connection>, Error> {
        let Some((_work, mut c)) = self.locked(id, wait).await? else { return Ok(None) };
        for _ in 0..steps {
            let before = c.state;
            match c.state {
                DomainState::PendingOwnership | DomainState::Verifying => {
                    self.verify_ownership(&mut c).await?
                }
                DomainState::Verified | DomainState::IssuingCert => self.issue(&mut c).await?,
                DomainState::Live | DomainState::Drifted => self.watch_drift(&mut c).await?,
                DomainState::Archived => {}
            }
            if c.state == before {
                break;
            }
        }
        Ok(Some(c))
    }

    async fn verify_ownership(&self, c: &mut Connection) -> Result<(), Error> {
        let reports = self.check(c).await?;
        let now = OffsetDateTime::now_utc();
        match verdict(&reports, self.settings.uses_dns01()) {
            Verdict::Valid => {
                let _claim = self.repo.lock_hostname(&c.hostname).await?;
                if self.repo.claim_holder(&c.hostname).await?.is_some_and(|h| h.id != c.id) {
                    c.failed_checks += 1;
                    c.last_error = Some(Problem::new(
                        ProblemCode::HostnameConflict,
                        format!("{} is already claimed by another connection", c.hostname),
                    ));
                    c.next_check_at = now + dns_backoff(c.failed_checks);
                    self.repo.put(c).await?;
                    return Ok(());
                }
                go(c, DomainState::Verifying)?;
                go(c, DomainState::Verified)?;
                c.failed_checks = 0;
                c.last_error = None;
                c.next_check_at = now;
                self.repo.put(c).await?;
                self.repo.set_claim(&c.hostname, &c.id).await?;
                self.event(c, "domain.verified", serde_json::json!({})).await
            }
            Verdict::NotYet(code, fix) => {
                c.failed_checks += 1;
                c.next_check_at = now + dns_backoff(c.failed_checks);
                c.last_error = Some(Problem::new(code, fix).retry_at(c.next_check_at));
                self.repo.put(c).await.map_err(Into::into)
            }
            Verdict::Unknown(detail) => self.lookup_failed(c, &detail, now).await,
        }
    }

    /// A lookup failed: nothing is concluded, the state stays, checked again soon.
    async fn lookup_failed(
        &self,
        c: &mut Connection,
        detail: &str,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        c.next_check_at = now + Duration::from_secs(30);
        c.last_error = Some(
            Problem::new(ProblemCode::LookupFailed, format!("DNS lookup failed, will retry: {detail}"))
                .retry_at(c.next_check_at),
        );
        self.repo.put(c).await.map_err(Into::into)
    }

    async fn issue(&self, c: &mut Connection) -> Result<(), Error> {
        let now = OffsetDateTime::now_utc();
        let own = match self.store.load(&c.hostname).await {
            Ok(Some(b)) if b.meta().provenance == Provenance::SelfManaged && !b.meta().is_expired_at(now) => {
                Some(b)
            }
            _ => None,
        };
        if c.state == DomainState::Verified {
            go(c, DomainState::IssuingCert)?;
            self.repo.put(c).await?;
        }
        let result = match own {
            Some(bundle) => Ok(Arc::new(bundle)),
            None => self.manager.ensure(&CertRequest::new([c.hostname.clone()])).await,
        };
        match result {
            Ok(bundle) => {
                c.certificate = Some(CertificateInfo::of(&bundle));
                go(c, DomainState::Live)?;
                c.last_error = None;
                c.failed_checks = 0;
                c.next_check_at = now + self.settings.drift_interval;
                self.repo.put(c).await?;
                self.event(c, "domain.live", serde_json::json!({ "serial": bundle.meta().serial })).await
            }
            Err(e) => {
                go(c, DomainState::Verified)?;
                c.failed_checks += 1;
                // One retry schedule: the certificate manager's (it records
                // when it tries again); the worker looks again then.
                let retry_at = match self.manager.retry_state(&c.hostname).await {
                    Ok(Some(state)) => state.next_at,
                    _ => None,
                };
                c.next_check_at = retry_at.unwrap_or(now + Duration::from_secs(24 * 3600)).max(now);
                let mut problem = Problem::new(ProblemCode::of_issuance(e.class()), e.to_string());
                problem.retry_at = retry_at;
                c.last_error = Some(problem);
                self.repo.put(c).await.map_err(Into::into)
            }
        }
    }

    async fn watch_drift(&self, c: &mut Connection) -> Result<(), Error> {
        let reports = self.check(c).await?;
        let now = OffsetDateTime::now_utc();
        match verdict(&reports, self.settings.uses_dns01()) {
            Verdict::Valid => {
                c.failed_checks = 0;
                c.last_error = None;
                c.next_check_at = now + self.settings.drift_interval;
                if c.state == DomainState::Drifted {
                    go(c, DomainState::Live)?;
                    self.repo.put(c).await?;
                    return self.event(c, "domain.live", serde_json::json!({ "recovered": true })).await;
                }
                self.repo.put(c).await.map_err(Into::into)
            }
            Verdict::NotYet(code, fix) => {
                c.failed_checks += 1;
                c.next_check_at = now + dns_backoff(c.failed_checks);
                c.last_error = Some(Problem::new(code, fix.clone()).retry_at(c.next_check_at));
                if c.state == DomainState::Live {
                    go(c, DomainState::Drifted)?;
                    self.repo.put(c).await?;
                    self.activity.publish(&Event::now(&c.hostname, EventKind::Drifted)).await;
                    return self
                        .event(c, "domain.drift", serde_json::json!({ "code": code, "fix": fix }))
                        .await;
                }
                self.repo.put(c).await.map_err(Into::into)
            }
            // A failed lookup is never drift.
            Verdict::Unknown(detail) => self.lookup_failed(c, &detail, now).await,
        }
    }

    /// One worker round: every due connection advanced
    /// ([`Settings::worker_concurrency`] at a time, so one slow issuance
    /// does not hold up the rest), webhooks sent.
    pub async fn work_once(self: &Arc<Self>) {
        if self.repo.schedule().needs_scan(self.settings.rescan_interval)
            && let Err(e) = self.repo.scan().await
        {
            tracing::warn!(error = %e, "worker cannot list connections");
        }
        let now = OffsetDateTime::now_utc();
        let permits = Arc::new(tokio::sync::Semaphore::new(self.settings.worker_concurrency.max(1)));
        let mut steps = tokio::task::JoinSet::new();
        for id in self.repo.schedule().due(now, MAX_STEPS_PER_TICK) {
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { break };
            let edge = Arc::clone(self);
            steps.spawn(async move {
                if let Err(e) = edge.advance(&id, false, 4).await {
                    tracing::warn!(%id, error = %e, "worker step failed");
                }
                drop(permit);
            });
        }
        self.outbox.deliver_due().await;
        while steps.join_next().await.is_some() {}
        self.outbox.deliver_due().await;
    }

    /// A widget token for connection `id`, valid 60 minutes.
    #[must_use]
    pub fn widget_token(&self, id: &str, now: OffsetDateTime) -> (String, OffsetDateTime) {
        self.widget.sign(id, now)
    }

    /// The connection a widget token grants, if its signature holds
    /// (checked in constant time) and it has not expired.
    #[must_use]
    pub fn widget_connection(&self, token: &str, now: OffsetDateTime) -> Option<String> {
        self.widget.check(token, now)
    }

    /// The hostname's activity, newest first, at most `limit` events.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn activity_of(&self, hostname: &str, limit: usize) -> Result<Vec<Event>, Error> {
        Ok(self.activity.read(hostname, limit).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_backoff_grows_to_hourly() {
        assert_eq!(dns_backoff(0), Duration::from_secs(5));
        assert_eq!(dns_backoff(1), Duration::from_secs(5));
        assert_eq!(dns_backoff(4), Duration::from_secs(60));
        assert_eq!(dns_backoff(50), Duration::from_secs(3600));
    }
}
