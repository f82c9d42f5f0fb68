//! What the control plane does with connections: create, check, verify,
//! issue, watch for drift, archive. An API and the worker both call into
//! [`ControlPlane`].

use std::{sync::Arc, time::Duration};

use acme_core::{CertManager, CertRequest, Clock, SystemClock};
use cert_store::{CertBundle, CertStore, LeaseGuard, Provenance, Storage};
use dns_verify::{
    Checker, DnsProvider, DnsRecord, Expectation, Hostname, RecordReport, RecordStatus, Requirements,
    SanStatus,
};
use serde::Serialize;
use time::OffsetDateTime;

use crate::{
    Activity, ActivityFilter, ActivityLog, ActivityPage, CertificateInfo, CertificateRejected, ClaimHolder,
    Connection, DEFAULT_TENANT, DesiredRecord, DnsCredentials, DomainState, Error, Outbox, Problem,
    ProblemCode, ProviderState, Repo, SanSet, Settings, Tenants, WidgetKey,
    error::UPLOAD_NEW_CERTIFICATE,
    ssl::{SanDnsStatus, SslCertificate, SslStatus, san_checks},
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
    credentials: Option<Arc<DnsCredentials>>,
    tenants: Tenants,
    clock: Arc<dyn Clock>,
    /// When this edge last dropped activity records past their retention.
    swept: std::sync::Mutex<Option<std::time::Instant>>,
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
    credentials: Option<Arc<DnsCredentials>>,
    clock: Arc<dyn Clock>,
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

    /// The clock quota periods are read from (default: the system's).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Customers' own DNS provider credentials: with one, a connection's
    /// records are written by the edge ([`DnsCredentials::apply_all`]),
    /// `records:check` says which, and the credential is deleted with the
    /// connection.
    #[must_use]
    pub fn dns_credentials(mut self, credentials: Arc<DnsCredentials>) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The control plane.
    #[must_use]
    pub fn build(self) -> ControlPlane {
        let storage = Arc::clone(self.store.storage());
        ControlPlane {
            repo: Repo::new(Arc::clone(&storage)),
            outbox: self.outbox.unwrap_or_else(|| Outbox::disabled(Arc::clone(&storage))),
            activity: self.activity.unwrap_or_else(|| {
                ActivityLog::new(Arc::clone(&storage)).with_retention(self.settings.activity_retention)
            }),
            tenants: Tenants::new(storage),
            clock: self.clock,
            swept: std::sync::Mutex::new(None),
            widget: self.widget.unwrap_or_else(WidgetKey::random),
            settings: self.settings,
            requirements: self.requirements,
            checker: self.checker,
            manager: self.manager,
            store: self.store,
            record_writer: self.record_writer,
            credentials: self.credentials,
        }
    }
}

/// A tenant's use of its plan in the current quota period.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QuotaUsage {
    /// The plan.
    pub plan: String,
    /// Its limit per period (absent for a plan no longer configured).
    pub limit: Option<usize>,
    /// Connections created in this period.
    pub used: u64,
    /// The period, e.g. `2026-12`.
    pub period: String,
    /// When it ends.
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub period_end: OffsetDateTime,
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
    /// Written by the edge through the customer's DNS provider credential.
    pub applied_by_edge: bool,
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
    /// With a DNS provider credential: what the edge wrote and the
    /// provider's last error with its fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_provider: Option<ProviderState>,
}

/// What the required records say.
enum Verdict {
    Valid,
    /// A person must act: code and fix text.
    NotYet(ProblemCode, String),
    /// A lookup failed: nothing can be concluded now.
    Unknown(String),
}

/// Who holds a claim, as `tenant` may be told.
fn held_by(holder: &Connection, tenant: &str) -> ClaimHolder {
    if holder.tenant == tenant {
        ClaimHolder::SameTenant { connection: holder.id.clone() }
    } else {
        ClaimHolder::OtherTenant
    }
}

/// What `reports` say, counting those `counts` keeps: valid, a fix to
/// make (with its code), or unknown (a lookup failed).
fn verdict(reports: &[RecordReport], counts: impl Fn(&RecordReport) -> bool) -> Verdict {
    let required: Vec<&RecordReport> = reports.iter().filter(|r| counts(r)).collect();
    let status = SanStatus::from_records(required.iter().map(|r| &r.status));
    let fixes = || {
        required
            .iter()
            .filter(|r| r.status != RecordStatus::Valid)
            .map(|r| r.fix.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    let delegation = |status: RecordStatus| {
        required
            .iter()
            .any(|r| r.status == status && matches!(r.expectation, Expectation::AcmeDelegation { .. }))
    };
    match status {
        SanStatus::Valid => Verdict::Valid,
        SanStatus::Pending => Verdict::Unknown(fixes()),
        SanStatus::DnsMissing if delegation(RecordStatus::Missing) => {
            Verdict::NotYet(ProblemCode::CnameNotFound, fixes())
        }
        SanStatus::DnsMissing => Verdict::NotYet(ProblemCode::DnsMissing, fixes()),
        SanStatus::DnsDuplicate if delegation(RecordStatus::Duplicate) => {
            Verdict::NotYet(ProblemCode::TxtConflict, fixes())
        }
        SanStatus::DnsDuplicate => Verdict::NotYet(ProblemCode::DnsDuplicate, fixes()),
        _ if required.iter().any(|r| r.status == RecordStatus::Proxied) => {
            Verdict::NotYet(ProblemCode::DnsProxied, fixes())
        }
        _ => Verdict::NotYet(ProblemCode::DnsWrong, fixes()),
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
            credentials: None,
            clock: Arc::new(SystemClock),
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

    /// Customers' DNS provider credentials, when configured.
    #[must_use]
    pub fn dns_credentials(&self) -> Option<&Arc<DnsCredentials>> {
        self.credentials.as_ref()
    }

    /// The webhook outbox.
    #[must_use]
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The records a customer creates for `host` alone (no wildcard, no
    /// other SAN).
    #[must_use]
    pub fn desired_records(&self, host: &Hostname, token: &str) -> Vec<DesiredRecord> {
        match SanSet::parse(host.as_str(), Some(false), &[]) {
            Ok(set) => self.records_of(&set, token, DEFAULT_TENANT),
            Err(_) => Vec::new(),
        }
    }

    /// The records a customer of `tenant` creates for the names of `set`:
    /// each SAN's `_acme-challenge` delegation (to the tenant's shared
    /// target when the requirements delegate per tenant), the ownership TXT
    /// and routing.
    #[must_use]
    pub fn records_of(&self, set: &SanSet, token: &str, tenant: &str) -> Vec<DesiredRecord> {
        let dns01 = self.settings.uses_dns01();
        self.expectations(set, token, tenant)
            .iter()
            .map(|e| DesiredRecord {
                purpose: e.kind().to_owned(),
                name: e.record_name(),
                record_type: e.record_type().to_owned(),
                value: e.expected_value(),
                required: set.is_required(e, dns01),
            })
            .collect()
    }

    /// What DNS must hold for `set` of `tenant` (a tenant id is one DNS
    /// label, so the per-tenant target always exists; the per-hostname one
    /// is the fallback all the same).
    fn expectations(&self, set: &SanSet, token: &str, tenant: &str) -> Vec<Expectation> {
        set.expectations(&self.requirements, token, |host| {
            self.requirements
                .delegation_target_for(host, tenant)
                .unwrap_or_else(|_| self.requirements.delegation_target(host))
        })
    }

    async fn event(&self, c: &Connection, kind: &str, data: serde_json::Value) -> Result<(), Error> {
        Ok(self.outbox.enqueue(kind, &c.hostname, Some(&c.id), data).await?)
    }

    /// Creates a connection for `hostname` alone (its wildcard too if it
    /// is a registrable domain), in `pending_ownership`: see
    /// [`create_domain`](Self::create_domain).
    ///
    /// # Errors
    /// As [`create_domain`](Self::create_domain).
    pub async fn create(&self, tenant: &str, hostname: &str) -> Result<Connection, Error> {
        self.create_domain(tenant, hostname, None, &[]).await
    }

    /// Creates a connection of `tenant` in `pending_ownership` whose
    /// certificate carries `hostname`, `*.hostname` (`include_wildcard`, by
    /// default for a registrable domain) and `additional_sans`. It counts
    /// against the tenant's plan for the current quota period (archiving
    /// does not give the slot back). Nothing is stored when a name is bad or
    /// held by another connection. Storage reads: O(names), whatever the
    /// number of connections.
    ///
    /// # Errors
    /// [`Error::NotFound`] (no such tenant), [`Error::InvalidHostname`]
    /// naming the bad name, [`Error::WildcardNotOffered`],
    /// [`Error::InvalidRequest`] (more than [`MAX_SANS`](crate::MAX_SANS) names),
    /// [`Error::UnknownPlan`], [`Error::HostnameConflict`] naming the first
    /// name another connection holds, [`Error::QuotaExceeded`], [`Error::Storage`].
    pub async fn create_domain(
        &self,
        tenant: &str,
        hostname: &str,
        include_wildcard: Option<bool>,
        additional_sans: &[String],
    ) -> Result<Connection, Error> {
        let set = SanSet::parse(hostname, include_wildcard, additional_sans)?;
        let host = set.hostname().clone();
        let tenant = self.tenants.get(tenant).await?.ok_or(Error::NotFound)?;
        let plan = tenant.plan.as_str();
        let limit =
            self.settings.quotas.limit(plan).ok_or_else(|| Error::UnknownPlan { plan: plan.to_owned() })?;
        let _claims = self.lock_names(&set.names()).await?;
        for name in set.names() {
            if let Some(holder) = self.repo.claim_holder(&name).await? {
                return Err(Error::HostnameConflict {
                    held_by: held_by(&holder, &tenant.id),
                    hostname: name,
                });
            }
        }
        let now = self.clock.now();
        let (period, period_end) = self.settings.quota_period.of(now);
        let index = self.repo.tenant_index();
        let _quota = index.lock(&tenant.id).await?;
        let used = index.head(&tenant.id).await?.used_in(&period);
        if used >= limit as u64 {
            return Err(Error::QuotaExceeded {
                plan: plan.to_owned(),
                limit,
                used,
                period_end,
                upgrade_url: self.settings.upgrade_url.clone(),
            });
        }
        let now = OffsetDateTime::now_utc();
        let token = hex::encode(rand::random::<[u8; 16]>());
        let c = Connection {
            id: hex::encode(rand::random::<[u8; 12]>()),
            tenant: tenant.id.clone(),
            hostname: host.as_str().to_owned(),
            include_wildcard: set.includes_wildcard(),
            additional_sans: set.additional(),
            plan: plan.to_owned(),
            state: DomainState::PendingOwnership,
            records: self.records_of(&set, &token, &tenant.id),
            certificate: None,
            last_error: None,
            created_at: now,
            updated_at: now,
            next_check_at: now,
            failed_checks: 0,
            ownership_token: token,
            ssl: crate::Ssl::default(),
        };
        // Indexed first: a crash before the record is written leaves an
        // id naming nothing (skipped), never a connection nobody can list.
        index.append(&tenant.id, &c.id, &period).await?;
        self.repo.put(&c).await?;
        self.activity.record(&c, Activity::Created).await;
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
    /// manager's background task): a connection shows the certificate
    /// stored now, the SSL view built from it, and a renewal failure or an
    /// expiry as its `last_error`.
    async fn refresh_certificate(&self, c: &mut Connection) {
        let now = OffsetDateTime::now_utc();
        if c.state == DomainState::Archived {
            c.ssl.certificate = None;
            return;
        }
        if c.certificate.is_some() || c.state.holds_claim() {
            match self.store.load(&c.hostname).await {
                Ok(Some(bundle)) => {
                    c.certificate = Some(CertificateInfo::of(&bundle));
                    let renew_before = time::Duration::try_from(self.settings.renew_before)
                        .unwrap_or(time::Duration::days(30));
                    c.ssl.certificate = Some(SslCertificate::of(bundle.meta(), renew_before));
                }
                Ok(None) => c.ssl.certificate = None,
                Err(e) => tracing::warn!(hostname = %c.hostname, error = %e, "certificate not read"),
            }
        }
        for san in &mut c.ssl.sans {
            san.next_check_at = (c.state != DomainState::Archived).then_some(c.next_check_at);
        }
        let gave_up = matches!(c.state, DomainState::Verified | DomainState::IssuingCert)
            && c.last_error.as_ref().is_some_and(|p| p.retry_at.is_none() && !p.code.is_temporary());
        c.ssl.status = c.ssl.status_of(&c.sans(), gave_up, now);
        if c.ssl.status == SslStatus::Expired {
            c.last_error = Some(self.expired_problem(c).await);
        } else if matches!(c.state, DomainState::Live | DomainState::Drifted)
            && c.last_error.is_none()
            && let Ok(Some(retry)) = self.manager.retry_state(&c.hostname).await
        {
            // A renewal failing shows on the connection, not only in the event log.
            let mut problem = Problem::new(
                ProblemCode::of_issuance(retry.class),
                format!(
                    "renewing the certificate failed {} time(s) since {}",
                    retry.attempts,
                    retry
                        .first_failure
                        .format(&time::format_description::well_known::Rfc3339)
                        .unwrap_or_default()
                ),
            );
            problem.retry_at = retry.next_at;
            c.last_error = Some(problem);
        }
    }

    /// The problem of an expired certificate: self-managed ones are
    /// replaced by the customer; issued ones keep being renewed, and need
    /// their `_acme-challenge` records back if they are gone.
    async fn expired_problem(&self, c: &Connection) -> Problem {
        let self_managed = c
            .ssl
            .certificate
            .as_ref()
            .is_some_and(|cert| cert.source == crate::CertificateSource::SelfManaged);
        let message = format!("the certificate of {} has expired", c.hostname);
        if self_managed {
            return Problem::new(ProblemCode::CertificateExpired, message)
                .resolved_by(UPLOAD_NEW_CERTIFICATE);
        }
        let gone: Vec<&str> = c
            .ssl
            .sans
            .iter()
            .filter(|s| s.dns_status != SanDnsStatus::Valid && s.record.starts_with("_acme-challenge."))
            .map(|s| s.record.as_str())
            .collect();
        let mut problem = Problem::new(ProblemCode::CertificateExpired, message);
        if !gone.is_empty() {
            problem = problem.resolved_by(format!(
                "Add back the delegation records ({}) as shown: renewal keeps being retried and needs them.",
                gone.join(", ")
            ));
        }
        if let Ok(Some(retry)) = self.manager.retry_state(&c.hostname).await {
            problem.retry_at = retry.next_at;
        }
        problem
    }

    /// Holds the claim leases of `names`, in one order (so two edges
    /// locking overlapping sets cannot wait on each other).
    async fn lock_names(&self, names: &[String]) -> Result<Vec<LeaseGuard>, Error> {
        let mut sorted: Vec<&String> = names.iter().collect();
        sorted.sort();
        sorted.dedup();
        let mut guards = Vec::with_capacity(sorted.len());
        for name in sorted {
            guards.push(self.repo.lock_hostname(name).await?);
        }
        Ok(guards)
    }

    /// Checks the connection's records now.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Storage`].
    pub async fn check_records(&self, id: &str) -> Result<RecordsCheck, Error> {
        let c = self.get(id).await?;
        let reports = self.lookup(&c).await?;
        let dns01 = self.settings.uses_dns01();
        let set = SanSet::of(&c)?;
        let is_required = |e: &Expectation, dns01: bool| set.is_required(e, dns01);
        let required = reports.iter().filter(|r| is_required(&r.expectation, dns01)).map(|r| &r.status);
        let provider = match &self.credentials {
            Some(credentials) => credentials.state(&c.id).await.unwrap_or_else(|e| {
                tracing::warn!(connection = %c.id, error = %e, "DNS provider state unreadable");
                None
            }),
            None => None,
        };
        Ok(RecordsCheck {
            hostname: c.hostname.clone(),
            state: c.state,
            san_status: SanStatus::from_records(required),
            records: reports
                .into_iter()
                .map(|r| RecordCheck {
                    applied_by_edge: provider.as_ref().is_some_and(|p| {
                        p.applied
                            .iter()
                            .any(|a| a.eq_ignore_ascii_case(&format!("{} {}", r.record_type, r.name)))
                    }),
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
            dns_provider: provider,
        })
    }

    /// The connection's records as DNS has them now.
    async fn lookup(&self, c: &Connection) -> Result<Vec<RecordReport>, Error> {
        let set = SanSet::of(c)?;
        let expectations = self.expectations(&set, &c.ownership_token, &c.tenant);
        Ok(self.checker.check(&expectations).await)
    }

    /// [`lookup`](Self::lookup), recorded in the activity log.
    /// Also keeps each SAN's status in the connection's SSL view.
    async fn check(&self, c: &mut Connection) -> Result<(Vec<RecordReport>, SanSet), Error> {
        let reports = self.lookup(c).await?;
        let set = SanSet::of(c)?;
        let dns01 = self.settings.uses_dns01();
        let valid = reports
            .iter()
            .filter(|r| set.is_required(&r.expectation, dns01))
            .all(|r| r.status == RecordStatus::Valid);
        c.ssl.sans = san_checks(&set, &reports, |h, e| set.needs(h, e, dns01), c.next_check_at);
        // Routine drift checks of a live hostname are not logged (drift
        // and recovery are); checks on the way to verification are.
        if !matches!(c.state, DomainState::Live | DomainState::Drifted) {
            self.activity.record(c, Activity::DnsChecked { valid }).await;
        }
        Ok((reports, set))
    }

    /// Whether `r` counts for the names `names` (required, and concerning one of them).
    fn counts_for(&self, set: &SanSet, names: &[Hostname], r: &RecordReport) -> bool {
        names.iter().any(|h| set.needs(h, &r.expectation, self.settings.uses_dns01()))
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
        let sans = c.sans();
        let _claims = self.lock_names(&sans).await?;
        let held = self.repo.claim_holder(&c.hostname).await?.is_some_and(|h| h.id == c.id);
        go(&mut c, DomainState::Archived)?;
        self.repo.put(&c).await?;
        for san in &sans {
            self.repo.release_claim(san, &c.id).await?;
        }
        if held {
            if let Err(e) = self.store.delete(&c.hostname).await {
                tracing::warn!(hostname = %c.hostname, error = %e, "certificate not deleted");
            }
            // Out of every cache, and no longer served by whatever the
            // manager feeds (the proxy): at once, not at the next handshake.
            for san in &sans {
                self.manager.forget(san);
            }
        }
        self.write_records(&c, false).await;
        if let Some(credentials) = &self.credentials
            && let Err(e) = credentials.remove(&c).await
        {
            tracing::warn!(connection = %c.id, error = %e, "DNS provider credential not deleted");
        }
        self.activity.record(&c, Activity::Archived).await;
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
        let uploaded = Activity::CertificateUploaded {
            serial: stored.meta().serial.clone(),
            not_after: stored.meta().not_after,
        };
        self.activity.record(&c, uploaded).await;
        Ok(c)
    }

    /// Whether on-demand TLS may issue for `hostname`: its connection is
    /// verified or later.
    ///
    /// # Errors
    /// When the storage fails.
    ///
    /// Only a connection of that one name: a domain with more SANs is
    /// issued as one certificate by the worker, never name by name.
    pub async fn ask(&self, hostname: &str) -> Result<bool, Error> {
        let Ok(host) = Hostname::parse(hostname) else { return Ok(false) };
        let holder = self.repo.claim_holder(host.as_str()).await?;
        Ok(holder.is_some_and(|c| c.sans() == [host.as_str()]))
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
        let (reports, set) = self.check(c).await?;
        let now = OffsetDateTime::now_utc();
        let all = set.hosts();
        match verdict(&reports, |r| self.counts_for(&set, &all, r)) {
            Verdict::Valid => {
                let sans = c.sans();
                let _claims = self.lock_names(&sans).await?;
                for san in &sans {
                    if self.repo.claim_holder(san).await?.is_some_and(|h| h.id != c.id) {
                        c.failed_checks += 1;
                        c.last_error = Some(Problem::new(
                            ProblemCode::HostnameConflict,
                            format!("{san} is already claimed by another connection"),
                        ));
                        c.next_check_at = now + dns_backoff(c.failed_checks);
                        self.repo.put(c).await?;
                        return Ok(());
                    }
                }
                go(c, DomainState::Verifying)?;
                go(c, DomainState::Verified)?;
                c.failed_checks = 0;
                c.last_error = None;
                c.next_check_at = now;
                self.repo.put(c).await?;
                for san in &sans {
                    self.repo.set_claim(san, &c.id).await?;
                }
                self.activity.record(c, Activity::Verified).await;
                self.event(c, "domain.verified", serde_json::json!({})).await
            }
            Verdict::NotYet(code, fix) => {
                c.failed_checks += 1;
                c.next_check_at = now + dns_backoff(c.failed_checks);
                self.set_problem(c, Problem::new(code, fix).retry_at(c.next_check_at)).await
            }
            Verdict::Unknown(detail) => self.lookup_failed(c, &detail, now).await,
        }
    }

    /// Stores `problem` as the connection's `last_error`, and in the
    /// activity log when its code changed (not at every recheck).
    async fn set_problem(&self, c: &mut Connection, problem: Problem) -> Result<(), Error> {
        let changed = c.last_error.as_ref().is_none_or(|p| p.code != problem.code);
        c.last_error = Some(problem.clone());
        self.repo.put(c).await?;
        if changed {
            self.activity.record(c, Activity::Failed(problem)).await;
        }
        Ok(())
    }

    /// A lookup failed: nothing is concluded, the state stays, checked again soon.
    async fn lookup_failed(
        &self,
        c: &mut Connection,
        detail: &str,
        now: OffsetDateTime,
    ) -> Result<(), Error> {
        c.next_check_at = now + Duration::from_secs(30);
        let problem = Problem::new(ProblemCode::DnsFetch, format!("DNS lookup failed, will retry: {detail}"))
            .retry_at(c.next_check_at);
        self.set_problem(c, problem).await
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
            None => self.issue_names(c).await,
        };
        match result {
            Ok(bundle) => {
                // Names removed from the connection stop being served.
                let dropped = c.ssl.certificate.as_ref().map_or_else(Vec::new, |old| {
                    old.names.iter().filter(|n| !bundle.meta().names.contains(n)).cloned().collect()
                });
                for name in dropped {
                    self.manager.forget(&name);
                }
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
                c.last_error = Some(problem.clone());
                self.repo.put(c).await?;
                self.activity.record(c, Activity::Failed(problem)).await;
                Ok(())
            }
        }
    }

    /// Issues the certificate of every SAN: a stored one carrying a name
    /// no longer wanted is replaced (it keeps being served until then).
    async fn issue_names(&self, c: &Connection) -> Result<Arc<CertBundle>, acme_core::IssueError> {
        let request = CertRequest::new(c.sans());
        let stored = self.store.load(&c.hostname).await.ok().flatten();
        match stored {
            Some(b) if b.meta().names.iter().any(|n| !request.names.contains(n)) => {
                self.manager.ensure_replacing(&request, &b.meta().serial).await
            }
            _ => self.manager.ensure(&request).await,
        }
    }

    /// Adds `name` to the connection's certificate: checked like every SAN
    /// (a bad name or one another connection holds is refused, nothing
    /// stored), then DNS is checked again and the certificate re-issued
    /// once every SAN is valid — the current one is served meanwhile.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::InvalidHostname`],
    /// [`Error::InvalidRequest`] (over [`MAX_SANS`](crate::MAX_SANS)),
    /// [`Error::HostnameConflict`], [`Error::Storage`].
    pub async fn add_san(&self, id: &str, name: &str) -> Result<Connection, Error> {
        let (_work, mut c) = self.locked(id, true).await?.ok_or(Error::NotFound)?;
        if c.state == DomainState::Archived {
            return Err(Error::NotFound);
        }
        let mut set = SanSet::of(&c)?;
        if !set.add(name)? {
            return Ok(c);
        }
        let Some(added) = set.names().pop() else { return Ok(c) };
        let _claim = self.repo.lock_hostname(&added).await?;
        if let Some(holder) = self.repo.claim_holder(&added).await?
            && holder.id != c.id
        {
            return Err(Error::HostnameConflict { held_by: held_by(&holder, &c.tenant), hostname: added });
        }
        if c.state.holds_claim() {
            self.repo.set_claim(&added, &c.id).await?;
        }
        self.change_sans(&mut c, &set).await?;
        self.activity.record(&c, Activity::SanAdded { san: added }).await;
        Ok(c)
    }

    /// Removes `name` (an additional SAN or `*.<hostname>`) from the
    /// connection's certificate: its claim is released and the certificate
    /// re-issued without it (the current one is served meanwhile).
    ///
    /// # Errors
    /// [`Error::NotFound`] (no such connection or SAN),
    /// [`Error::InvalidHostname`], [`Error::InvalidRequest`] (the hostname
    /// itself), [`Error::Storage`].
    pub async fn remove_san(&self, id: &str, name: &str) -> Result<Connection, Error> {
        let (_work, mut c) = self.locked(id, true).await?.ok_or(Error::NotFound)?;
        if c.state == DomainState::Archived {
            return Err(Error::NotFound);
        }
        let mut set = SanSet::of(&c)?;
        let before = set.names();
        if !set.remove(name)? {
            return Err(Error::NotFound);
        }
        let after = set.names();
        let removed: Vec<String> = before.into_iter().filter(|n| !after.contains(n)).collect();
        let _claims = self.lock_names(&removed).await?;
        for san in &removed {
            self.repo.release_claim(san, &c.id).await?;
        }
        self.change_sans(&mut c, &set).await?;
        for san in removed {
            self.activity.record(&c, Activity::SanRemoved { san }).await;
        }
        Ok(c)
    }

    /// Stores the new names and records; checked again at once. A live
    /// connection whose names were only removed is re-issued right away.
    async fn change_sans(&self, c: &mut Connection, set: &SanSet) -> Result<(), Error> {
        c.include_wildcard = set.includes_wildcard();
        c.additional_sans = set.additional();
        c.records = self.records_of(set, &c.ownership_token, &c.tenant);
        c.ssl.sans.retain(|s| set.names().contains(&s.name));
        c.failed_checks = 0;
        c.next_check_at = OffsetDateTime::now_utc();
        c.updated_at = c.next_check_at;
        let shrunk = c.ssl.certificate.as_ref().is_some_and(|cert| {
            set.names().iter().all(|n| cert.names.contains(n)) && cert.names.len() > set.len()
        });
        if shrunk && c.state == DomainState::Live {
            go(c, DomainState::IssuingCert)?;
        }
        self.repo.put(c).await?;
        self.write_records(c, true).await;
        self.activity.record(c, Activity::RecordsChanged).await;
        Ok(())
    }

    async fn watch_drift(&self, c: &mut Connection) -> Result<(), Error> {
        let (reports, set) = self.check(c).await?;
        let now = OffsetDateTime::now_utc();
        // Drift is judged on the names the certificate carries; names added
        // since are validated before they are issued (the old certificate
        // is served meanwhile).
        let served = self.store.load(&c.hostname).await.ok().flatten();
        let covered: Vec<Hostname> = set
            .hosts()
            .into_iter()
            .filter(|h| served.as_ref().is_none_or(|b| b.meta().names.iter().any(|n| n == h.as_str())))
            .collect();
        let new: Vec<Hostname> = set.hosts().into_iter().filter(|h| !covered.contains(h)).collect();
        let own = served.as_ref().is_some_and(|b| b.meta().provenance == Provenance::SelfManaged);
        let drift = verdict(&reports, |r| self.counts_for(&set, &covered, r));
        if matches!(drift, Verdict::Valid) && !new.is_empty() && !own {
            match verdict(&reports, |r| self.counts_for(&set, &new, r)) {
                Verdict::Valid => {
                    // Every name is valid: issue the certificate with the new names.
                    c.failed_checks = 0;
                    c.last_error = None;
                    c.next_check_at = now;
                    if c.state == DomainState::Live {
                        go(c, DomainState::IssuingCert)?;
                    }
                    self.repo.put(c).await?;
                    return Ok(());
                }
                Verdict::NotYet(code, fix) => {
                    c.failed_checks += 1;
                    c.next_check_at = now + dns_backoff(c.failed_checks);
                    return self.set_problem(c, Problem::new(code, fix).retry_at(c.next_check_at)).await;
                }
                Verdict::Unknown(detail) => return self.lookup_failed(c, &detail, now).await,
            }
        }
        match drift {
            Verdict::Valid => {
                c.failed_checks = 0;
                c.last_error = None;
                c.next_check_at = now + self.settings.drift_interval;
                if c.state == DomainState::Drifted {
                    go(c, DomainState::Live)?;
                    self.repo.put(c).await?;
                    self.activity.record(c, Activity::Recovered).await;
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
                    if let Some(problem) = c.last_error.clone() {
                        self.activity.record(c, Activity::Drifted(problem)).await;
                    }
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
        self.sweep_activity_hourly().await;
        let now = OffsetDateTime::now_utc();
        let due = match self.repo.due().due(now, MAX_STEPS_PER_TICK).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "worker cannot read the due index");
                Vec::new()
            }
        };
        let permits = Arc::new(tokio::sync::Semaphore::new(self.settings.worker_concurrency.max(1)));
        let mut steps = tokio::task::JoinSet::new();
        for entry in due {
            let Ok(permit) = Arc::clone(&permits).acquire_owned().await else { break };
            let edge = Arc::clone(self);
            steps.spawn(async move {
                edge.work_on(&entry).await;
                drop(permit);
            });
        }
        self.outbox.deliver_due().await;
        while steps.join_next().await.is_some() {}
        self.outbox.deliver_due().await;
    }

    /// One due entry: the connection advanced (unless another edge holds
    /// it), then the entry removed if the connection's own entry is now
    /// another (a stale entry left by a crash, or one already moved on).
    async fn work_on(&self, entry: &crate::due::DueEntry) {
        let after = match self.advance(&entry.id, false, 4).await {
            Ok(Some(c)) => Some(c),
            Ok(None) => return, // another edge is on it
            Err(Error::NotFound) => None,
            Err(e) => {
                tracing::warn!(id = %entry.id, error = %e, "worker step failed");
                return;
            }
        };
        let current =
            after.as_ref().and_then(crate::due_at).and_then(|at| crate::due::entry_key(&entry.id, at).ok());
        if current.as_ref() != Some(&entry.key)
            && let Err(e) = self.repo.due().remove(&entry.key).await
        {
            tracing::warn!(id = %entry.id, error = %e, "stale due entry not removed");
        }
    }

    /// Once an hour (per edge): every tenant's activity records past the
    /// retention are deleted. Tenants are few; their records are listed
    /// oldest first and the sweep stops at the first one kept.
    async fn sweep_activity_hourly(&self) {
        {
            let mut swept = self.swept.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if swept.is_some_and(|at| at.elapsed() < Duration::from_secs(3600)) {
                return;
            }
            *swept = Some(std::time::Instant::now());
        }
        let mut tenants = match self.tenants.list().await {
            Ok(list) => list.into_iter().map(|t| t.id).collect::<Vec<_>>(),
            Err(e) => {
                tracing::warn!(error = %e, "activity sweep: cannot list tenants");
                return;
            }
        };
        tenants.push(DEFAULT_TENANT.to_owned());
        for tenant in tenants {
            match self.activity.sweep(&tenant).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(%tenant, removed = n, "activity records past their retention removed")
                }
                Err(e) => tracing::warn!(%tenant, error = %e, "activity sweep failed"),
            }
        }
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

    /// A page of `tenant`'s activity log, newest first.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn activity_page(
        &self,
        tenant: &str,
        filter: &ActivityFilter,
        limit: usize,
    ) -> Result<ActivityPage, Error> {
        Ok(self.activity.read(tenant, filter, limit).await?)
    }

    /// The tenants (and their keys).
    #[must_use]
    pub fn tenants(&self) -> &Tenants {
        &self.tenants
    }

    /// Connection `id` if it belongs to `tenant`; another tenant's is
    /// [`Error::NotFound`], exactly as a connection that does not exist, so
    /// ids cannot be probed.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Storage`].
    pub async fn get_in(&self, tenant: &str, id: &str) -> Result<Connection, Error> {
        let c = self.get(id).await?;
        if c.tenant == tenant { Ok(c) } else { Err(Error::NotFound) }
    }

    /// A page of `tenant`'s connections, newest first: `page` from 1,
    /// `per_page` items; and how many it has. O(page) storage reads.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn list_page(
        &self,
        tenant: &str,
        page: u64,
        per_page: u64,
    ) -> Result<(Vec<Connection>, u64), Error> {
        let skip = page.saturating_sub(1).saturating_mul(per_page);
        let (mut items, total) = self.repo.page(tenant, skip, per_page).await?;
        for c in &mut items {
            self.refresh_certificate(c).await;
        }
        Ok((items, total))
    }

    /// How many connections `tenant` created in the current quota period,
    /// its limit and when the period ends. One storage read.
    ///
    /// # Errors
    /// [`Error::NotFound`] (no such tenant), [`Error::Storage`].
    pub async fn quota_of(&self, tenant: &str) -> Result<QuotaUsage, Error> {
        let tenant = self.tenants.get(tenant).await?.ok_or(Error::NotFound)?;
        let (period, period_end) = self.settings.quota_period.of(self.clock.now());
        let used = self.repo.tenant_index().head(&tenant.id).await?.used_in(&period);
        Ok(QuotaUsage {
            limit: self.settings.quotas.limit(&tenant.plan),
            used,
            plan: tenant.plan,
            period,
            period_end,
        })
    }

    /// Records a tenant-level event (a key made or revoked) in its log.
    pub async fn record_tenant_activity(&self, tenant: &str, activity: Activity) {
        if let Err(e) = self.activity.append(tenant, None, None, activity, OffsetDateTime::now_utc()).await {
            tracing::warn!(%tenant, error = %e, "activity log write failed");
        }
    }

    /// The one-time move of an edge from before tenants and indexes: every
    /// stored connection is put in its tenant's index (they all belong to
    /// the default tenant) and in the due index. Runs once per store (a
    /// marker records it), under a lease; safe to run again after a crash.
    /// This is the only full scan.
    ///
    /// # Errors
    /// [`Error::Storage`].
    pub async fn migrate(&self) -> Result<(), Error> {
        let marker = crate::keys::migration("tenant-index-v1")?;
        let storage = self.store.storage();
        if storage.get(&marker).await?.is_some() {
            return Ok(());
        }
        let _lease = self.repo.tenant_index().lock(DEFAULT_TENANT).await?;
        if storage.get(&marker).await?.is_some() {
            return Ok(());
        }
        let all = self.repo.list().await?;
        let (period, _) = self.settings.quota_period.of(self.clock.now());
        let mut by_tenant: std::collections::BTreeMap<&str, (Vec<String>, u64)> = Default::default();
        let mut earliest: Option<OffsetDateTime> = None;
        for c in &all {
            let entry = by_tenant.entry(c.tenant.as_str()).or_default();
            entry.0.push(c.id.clone());
            if self.settings.quota_period.of(c.created_at).0 == period {
                entry.1 += 1;
            }
            if let Some(at) = crate::due_at(c) {
                self.repo.due().add(&c.id, at).await?;
                earliest = Some(earliest.map_or(at, |e| e.min(at)));
            }
        }
        for (tenant, (ids, created)) in &by_tenant {
            self.repo.tenant_index().rebuild(tenant, ids, &period, *created).await?;
        }
        if let Some(at) = earliest {
            self.repo.due().lower_low_water(at.unix_timestamp().div_euclid(60)).await?;
        }
        storage.put(&marker, b"done").await?;
        tracing::info!(
            connections = all.len(),
            tenants = by_tenant.len(),
            "migrated to tenant and due indexes"
        );
        Ok(())
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
