//! What the edge does with connections: create, check, verify, issue, watch
//! for drift, archive. The API and the worker both call into [`Edge`].

use std::{sync::Arc, time::Duration};

use acme_core::{ActivityLog, CertManager, CertRequest, DomainState, Event, EventKind, EventSink};
use cert_store::{CertBundle, CertStore, LeaseGuard, Provenance, Storage};
use dns_verify::{Checker, Expectation, Hostname, RecordReport, RecordStatus, Requirements, SanStatus};
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::{
    config::Config,
    model::{ApiError, CertificateInfo, Connection, DesiredRecord, ErrorBody},
    repo::Repo,
    webhooks::Outbox,
};

/// Everything a request or a worker step needs.
pub struct Edge {
    /// Settings.
    pub config: Config,
    /// Connection records.
    pub repo: Repo,
    /// What customers' DNS must contain.
    pub requirements: Requirements,
    /// Asks the authoritative servers.
    pub checker: Checker,
    /// Issues and renews.
    pub manager: Arc<CertManager<dyn Storage>>,
    /// Certificates.
    pub store: Arc<CertStore<dyn Storage>>,
    /// The proxy's certificate table.
    pub resolver: Arc<sni_proxy::SniResolver>,
    /// Webhooks.
    pub outbox: Outbox,
    /// Per-hostname activity (shared with the manager's events).
    pub activity: ActivityLog<dyn Storage>,
    /// Signs widget tokens.
    pub widget_key: ring::hmac::Key,
}

impl std::fmt::Debug for Edge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Edge").finish_non_exhaustive()
    }
}

/// One desired record with what DNS says about it now.
#[derive(Debug, Clone, Serialize, ToSchema)]
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
    #[schema(value_type = String)]
    pub status: RecordStatus,
    /// What the authoritative servers answer.
    pub observed_value: Vec<String>,
    /// Needed for verification.
    pub required: bool,
    /// What to do, in one line.
    pub fix: String,
}

/// `records:check`: every record and the hostname's overall DNS status.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecordsCheck {
    /// The hostname.
    pub hostname: String,
    /// The connection's state.
    #[schema(value_type = String)]
    pub state: DomainState,
    /// `pending`, `dns_missing`, `dns_wrong`, `dns_duplicate` or `valid` (required records).
    #[schema(value_type = String)]
    pub san_status: SanStatus,
    /// Each record.
    pub records: Vec<RecordCheck>,
}

/// What the required records say.
enum Verdict {
    Valid,
    /// A person must act: code and fix text.
    NotYet(String, String),
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
        SanStatus::DnsMissing => Verdict::NotYet("DnsMissing".into(), fixes()),
        SanStatus::DnsWrong => Verdict::NotYet("DnsWrong".into(), fixes()),
        SanStatus::DnsDuplicate => Verdict::NotYet("DnsDuplicate".into(), fixes()),
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

fn error_body(code: &str, message: impl Into<String>) -> ErrorBody {
    ErrorBody { code: code.to_owned(), message: message.into(), limit: None, plan: None, upgrade_url: None }
}

fn certificate_info(bundle: &CertBundle) -> CertificateInfo {
    let meta = bundle.meta();
    let source = match meta.provenance {
        Provenance::Acme { .. } => "acme",
        Provenance::LocalCa => "local_ca",
        Provenance::SelfManaged => "self_managed",
        _ => "other",
    };
    CertificateInfo { serial: meta.serial.clone(), source: source.to_owned(), not_after: meta.not_after }
}

/// Moves `c` to `to` if the lifecycle table allows it.
fn go(c: &mut Connection, to: DomainState) -> Result<(), ApiError> {
    c.state = c.state.go_to(to).map_err(ApiError::internal)?;
    c.updated_at = OffsetDateTime::now_utc();
    Ok(())
}

impl Edge {
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
                required: is_required(e, self.config.uses_dns01()),
            })
            .collect()
    }

    async fn event(&self, c: &Connection, kind: &str, data: serde_json::Value) -> Result<(), ApiError> {
        self.outbox.enqueue(kind, &c.hostname, Some(&c.id), data).await.map_err(ApiError::internal)
    }

    /// Creates a connection in `pending_ownership`.
    ///
    /// # Errors
    /// `InvalidHostname`, `InvalidRequest` (unknown plan), `HostnameConflict`
    /// (another connection holds it), `QuotaExceeded`.
    pub async fn create(&self, hostname: &str, plan: Option<&str>) -> Result<Connection, ApiError> {
        let host = Hostname::parse(hostname).map_err(ApiError::invalid_hostname)?;
        if host.is_wildcard() {
            return Err(ApiError::invalid_hostname("wildcard hostnames are not offered"));
        }
        let plan = plan.unwrap_or("free");
        let limit = self
            .config
            .quota(plan)
            .ok_or_else(|| ApiError::invalid_request(format!("unknown plan {plan}")))?;
        let _claim = self.repo.lock_hostname(host.as_str()).await?;
        if self.repo.claim_holder(host.as_str()).await?.is_some() {
            return Err(ApiError::hostname_conflict(host.as_str()));
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
            return Err(ApiError::quota_exceeded(plan, limit, &self.config.upgrade_url));
        }
        let now = OffsetDateTime::now_utc();
        let token = hex::encode(rand::random::<[u8; 16]>());
        let c = Connection {
            id: hex::encode(rand::random::<[u8; 12]>()),
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
        Ok(c)
    }

    /// One connection.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn get(&self, id: &str) -> Result<Connection, ApiError> {
        let mut c = self.repo.get(id).await?.ok_or_else(ApiError::not_found)?;
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
            c.certificate = Some(certificate_info(&bundle));
        }
    }

    /// Checks the connection's records now.
    ///
    /// # Errors
    /// `NotFound`.
    pub async fn check_records(&self, id: &str) -> Result<RecordsCheck, ApiError> {
        let c = self.get(id).await?;
        let reports = self.lookup(&c).await?;
        let dns01 = self.config.uses_dns01();
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
    async fn lookup(&self, c: &Connection) -> Result<Vec<RecordReport>, ApiError> {
        let host = Hostname::parse(&c.hostname).map_err(ApiError::internal)?;
        let expectations = self.requirements.for_host(&host, Some(&c.ownership_token));
        Ok(self.checker.check(&expectations).await)
    }

    /// [`lookup`](Self::lookup), recorded in the activity log.
    async fn check(&self, c: &Connection) -> Result<Vec<RecordReport>, ApiError> {
        let reports = self.lookup(c).await?;
        let dns01 = self.config.uses_dns01();
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
    /// `NotFound`.
    pub async fn archive(&self, id: &str) -> Result<Connection, ApiError> {
        let (_work, mut c) = self.locked(id, true).await?.ok_or_else(ApiError::not_found)?;
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
            self.resolver.remove(&c.hostname);
        }
        self.event(&c, "domain.archived", serde_json::json!({})).await?;
        Ok(c)
    }

    /// Stores a customer's own certificate for the connection (validated:
    /// key matches, covers the hostname, not expired); served, warned about,
    /// never renewed.
    ///
    /// # Errors
    /// `NotFound`, `InvalidCertificate`.
    pub async fn upload_certificate(
        &self,
        id: &str,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<Connection, ApiError> {
        let (_work, mut c) = self.locked(id, true).await?.ok_or_else(ApiError::not_found)?;
        if c.state == DomainState::Archived {
            return Err(ApiError::not_found());
        }
        let bundle = CertBundle::from_pem(chain_pem, key_pem, Provenance::SelfManaged)
            .map_err(ApiError::invalid_certificate)?;
        let covers = bundle.meta().names.iter().any(|n| {
            n == &c.hostname
                || n.strip_prefix("*.")
                    .is_some_and(|base| c.hostname.split_once('.').is_some_and(|(_, p)| p == base))
        });
        if !covers {
            return Err(ApiError::invalid_certificate(format!(
                "the certificate covers {:?}, not {}",
                bundle.meta().names,
                c.hostname
            )));
        }
        if bundle.meta().is_expired_at(OffsetDateTime::now_utc()) {
            return Err(ApiError::invalid_certificate("the certificate has expired"));
        }
        let bundle = bundle.with_primary_name(&c.hostname);
        let stored = self
            .manager
            .import_self_managed(bundle.chain_pem(), bundle.key_pem())
            .await
            .map_err(ApiError::invalid_certificate)?;
        c.certificate = Some(certificate_info(&stored));
        c.next_check_at = OffsetDateTime::now_utc();
        c.updated_at = c.next_check_at;
        self.repo.put(&c).await?;
        self.resolver.remove(&c.hostname);
        Ok(c)
    }

    /// Whether on-demand TLS may issue for `hostname`: its connection is
    /// verified or later.
    ///
    /// # Errors
    /// When the storage fails.
    pub async fn ask(&self, hostname: &str) -> Result<bool, ApiError> {
        let Ok(host) = Hostname::parse(hostname) else { return Ok(false) };
        Ok(self.repo.claim_holder(host.as_str()).await?.is_some())
    }

    /// The connection's work lease and the connection, read under it.
    /// `wait`: wait for another worker holding it, else `None` when held.
    /// Ids that cannot be ours are `NotFound` before any storage key is made.
    async fn locked(&self, id: &str, wait: bool) -> Result<Option<(LeaseGuard, Connection)>, ApiError> {
        if !Repo::is_id(id) {
            return Err(ApiError::not_found());
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
    /// `NotFound`; storage failures.
    pub async fn advance(&self, id: &str, wait: bool, steps: usize) -> Result<Option<Connection>, ApiError> {
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

    async fn verify_ownership(&self, c: &mut Connection) -> Result<(), ApiError> {
        let reports = self.check(c).await?;
        let now = OffsetDateTime::now_utc();
        match verdict(&reports, self.config.uses_dns01()) {
            Verdict::Valid => {
                let _claim = self.repo.lock_hostname(&c.hostname).await?;
                if self.repo.claim_holder(&c.hostname).await?.is_some_and(|h| h.id != c.id) {
                    c.failed_checks += 1;
                    c.last_error = Some(ApiError::hostname_conflict(&c.hostname).body);
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
                c.last_error = Some(error_body(&code, fix));
                c.next_check_at = now + dns_backoff(c.failed_checks);
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
    ) -> Result<(), ApiError> {
        c.last_error = Some(error_body("LookupFailed", format!("DNS lookup failed, will retry: {detail}")));
        c.next_check_at = now + Duration::from_secs(30);
        self.repo.put(c).await.map_err(Into::into)
    }

    async fn issue(&self, c: &mut Connection) -> Result<(), ApiError> {
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
                c.certificate = Some(certificate_info(&bundle));
                go(c, DomainState::Live)?;
                c.last_error = None;
                c.failed_checks = 0;
                c.next_check_at = now + self.config.drift_interval();
                self.repo.put(c).await?;
                self.resolver.remove(&c.hostname);
                self.event(c, "domain.live", serde_json::json!({ "serial": bundle.meta().serial })).await
            }
            Err(e) => {
                go(c, DomainState::Verified)?;
                c.failed_checks += 1;
                c.last_error = Some(error_body(&format!("{:?}", e.class()), e.to_string()));
                let delay = match acme_core::RetryPolicy::default().decide(
                    &e,
                    c.failed_checks as usize,
                    Duration::ZERO,
                ) {
                    acme_core::RetryDecision::RetryAfter(d) | acme_core::RetryDecision::WaitForDns(d) => d,
                    acme_core::RetryDecision::GiveUp => Duration::from_secs(24 * 3600),
                };
                c.next_check_at = now + delay;
                self.repo.put(c).await.map_err(Into::into)
            }
        }
    }

    async fn watch_drift(&self, c: &mut Connection) -> Result<(), ApiError> {
        let reports = self.check(c).await?;
        let now = OffsetDateTime::now_utc();
        match verdict(&reports, self.config.uses_dns01()) {
            Verdict::Valid => {
                c.failed_checks = 0;
                c.last_error = None;
                c.next_check_at = now + self.config.drift_interval();
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
                c.last_error = Some(error_body(&code, fix.clone()));
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

    /// One worker round: every due connection advanced (eight at a time, so
    /// one slow issuance does not hold up the rest), webhooks sent.
    pub async fn work_once(self: &Arc<Self>) {
        if self.repo.schedule().needs_scan(self.config.rescan_interval())
            && let Err(e) = self.repo.scan().await
        {
            tracing::warn!(error = %e, "worker cannot list connections");
        }
        let now = OffsetDateTime::now_utc();
        let permits = Arc::new(tokio::sync::Semaphore::new(8));
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
        sign_widget(&self.widget_key, id, now)
    }

    /// The connection a widget token grants, if its signature holds
    /// (checked in constant time) and it has not expired.
    #[must_use]
    pub fn widget_connection(&self, token: &str, now: OffsetDateTime) -> Option<String> {
        check_widget(&self.widget_key, token, now)
    }
}

/// `<id>.<expiry unix>.<hex HMAC-SHA256 of "<id>.<expiry>">`, valid 60 minutes.
fn sign_widget(key: &ring::hmac::Key, id: &str, now: OffsetDateTime) -> (String, OffsetDateTime) {
    let expires = now + time::Duration::minutes(60);
    let payload = format!("{id}.{}", expires.unix_timestamp());
    let tag = ring::hmac::sign(key, payload.as_bytes());
    (format!("{payload}.{}", hex::encode(tag.as_ref())), expires)
}

fn check_widget(key: &ring::hmac::Key, token: &str, now: OffsetDateTime) -> Option<String> {
    let (payload, tag) = token.rsplit_once('.')?;
    let tag = hex::decode(tag).ok()?;
    ring::hmac::verify(key, payload.as_bytes(), &tag).ok()?;
    let (id, expires) = payload.split_once('.')?;
    let expires: i64 = expires.parse().ok()?;
    (now.unix_timestamp() < expires).then(|| id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widget_tokens_expire_after_an_hour_and_refuse_tampering() {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret");
        let now = OffsetDateTime::now_utc();
        let (token, expires) = sign_widget(&key, "abc123", now);
        assert_eq!(expires - now, time::Duration::minutes(60));
        assert_eq!(check_widget(&key, &token, now).as_deref(), Some("abc123"));
        assert_eq!(check_widget(&key, &token, now + time::Duration::minutes(59)).as_deref(), Some("abc123"));
        assert_eq!(check_widget(&key, &token, now + time::Duration::minutes(61)), None);
        let other = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"other");
        assert_eq!(check_widget(&other, &token, now), None);
        // Another id or a later expiry with the same signature.
        let (_, rest) = token.split_once('.').unwrap();
        assert_eq!(check_widget(&key, &format!("abc124.{rest}"), now), None);
        let (payload, tag) = token.rsplit_once('.').unwrap();
        let later = payload
            .replace(&expires.unix_timestamp().to_string(), &(expires.unix_timestamp() + 9999).to_string());
        assert_eq!(check_widget(&key, &format!("{later}.{tag}"), now), None);
        for junk in ["", ".", "a.b.c", "abc123.1.zz"] {
            assert_eq!(check_widget(&key, junk, now), None);
        }
    }

    #[test]
    fn dns_backoff_grows_to_hourly() {
        assert_eq!(dns_backoff(0), Duration::from_secs(5));
        assert_eq!(dns_backoff(1), Duration::from_secs(5));
        assert_eq!(dns_backoff(4), Duration::from_secs(60));
        assert_eq!(dns_backoff(50), Duration::from_secs(3600));
    }
}
