//! Challenge solvers: where the answers to the CA's challenges are published.

use std::{
    collections::HashMap,
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use async_trait::async_trait;
use cert_store::{ChallengeAnswers, Storage};
use dns_verify::{
    Checker, DelegationTarget, DnsProvider, DnsRecord, Expectation, Hostname, RecordStatus, Requirements,
    wait_for_propagation,
};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::IssueError;

/// Which challenge an issuer answers for non-wildcard names (wildcards
/// always use DNS-01).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ChallengeKind {
    /// HTTP-01 on port 80 (served by sni-proxy from [`ChallengeResponses`]).
    #[default]
    Http01,
    /// TLS-ALPN-01 on port 443 (served by sni-proxy from [`ChallengeResponses`]).
    TlsAlpn01,
    /// DNS-01 through the `_acme-challenge` CNAME delegation ([`Dns01Solver`]).
    Dns01,
}

/// The answers currently published for HTTP-01 (token → key authorization)
/// and TLS-ALPN-01 (hostname → challenge certificate). Cheap to clone and
/// share with the listeners that serve them: it implements
/// [`cert_store::ChallengeAnswers`], which sni-proxy takes.
///
/// With [`with_shared_store`](Self::with_shared_store) it also answers what
/// another node published in the shared store, so that every node behind a
/// hostname can answer the CA, not only the one that placed the order.
#[derive(Clone, Default)]
pub struct ChallengeResponses {
    http01: Arc<RwLock<HashMap<String, String>>>,
    tls_alpn01: Arc<RwLock<HashMap<String, Arc<CertifiedKey>>>>,
    shared: Option<Arc<dyn SharedAnswers>>,
}

/// Reads answers from a shared store (a private trait object, so that
/// `ChallengeResponses` needs no storage type parameter).
#[async_trait]
trait SharedAnswers: Send + Sync {
    async fn http01(&self, token: &str) -> Option<String>;
    async fn tls_alpn01(&self, hostname: &str) -> Option<Arc<CertifiedKey>>;
}

struct StoreAnswers<S: ?Sized>(Arc<S>);

#[async_trait]
impl<S: Storage + ?Sized + 'static> SharedAnswers for StoreAnswers<S> {
    async fn http01(&self, token: &str) -> Option<String> {
        stored_http01(self.0.as_ref(), token).await
    }

    async fn tls_alpn01(&self, hostname: &str) -> Option<Arc<CertifiedKey>> {
        stored_tls_alpn01(self.0.as_ref(), hostname).await
    }
}

#[async_trait]
impl ChallengeAnswers for ChallengeResponses {
    async fn http01(&self, token: &str) -> Option<String> {
        if let Some(answer) = Self::http01(self, token) {
            return Some(answer);
        }
        self.shared.as_ref()?.http01(token).await
    }

    async fn tls_alpn01(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        if let Some(answer) = Self::tls_alpn01(self, server_name) {
            return Some(answer);
        }
        self.shared.as_ref()?.tls_alpn01(server_name).await
    }
}

impl std::fmt::Debug for ChallengeResponses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChallengeResponses").finish_non_exhaustive()
    }
}

impl ChallengeResponses {
    /// Also answers what any node published in `storage` (the store its
    /// issuers share): HTTP-01 key authorizations and TLS-ALPN-01 digests.
    #[must_use]
    pub fn with_shared_store<S: Storage + ?Sized + 'static>(mut self, storage: Arc<S>) -> Self {
        self.shared = Some(Arc::new(StoreAnswers(storage)));
        self
    }

    /// The key authorization to serve at `/.well-known/acme-challenge/<token>`.
    #[must_use]
    pub fn http01(&self, token: &str) -> Option<String> {
        self.http01.read().unwrap_or_else(PoisonError::into_inner).get(token).cloned()
    }

    /// The challenge certificate to present for `hostname` under ALPN `acme-tls/1`.
    #[must_use]
    pub fn tls_alpn01(&self, hostname: &str) -> Option<Arc<CertifiedKey>> {
        self.tls_alpn01
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&hostname.to_ascii_lowercase())
            .cloned()
    }

    pub(crate) fn publish_http01(&self, token: &str, key_authorization: &str) {
        self.http01
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.to_owned(), key_authorization.to_owned());
    }

    pub(crate) fn remove_http01(&self, token: &str) {
        self.http01.write().unwrap_or_else(PoisonError::into_inner).remove(token);
    }

    pub(crate) fn publish_tls_alpn01(&self, hostname: &str, digest: &[u8]) -> Result<(), IssueError> {
        let cert = tls_alpn01_certificate(hostname, digest)?;
        self.tls_alpn01
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(hostname.to_ascii_lowercase(), Arc::new(cert));
        Ok(())
    }

    pub(crate) fn remove_tls_alpn01(&self, hostname: &str) {
        self.tls_alpn01
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&hostname.to_ascii_lowercase());
    }
}

/// Storage key of a published HTTP-01 answer.
pub(crate) fn http01_key(token: &str) -> Option<cert_store::Key> {
    crate::keys::http01(token).ok()
}

/// Storage key of a published TLS-ALPN-01 digest.
pub(crate) fn tls_alpn01_key(hostname: &str) -> Option<cert_store::Key> {
    crate::keys::tls_alpn01(hostname).ok()
}

/// The HTTP-01 answer for `token` that any node published in the shared
/// store: lets every node behind a hostname answer the CA, not only the one
/// that placed the order.
pub async fn stored_http01<S: Storage + ?Sized>(storage: &S, token: &str) -> Option<String> {
    let bytes = storage.get(&http01_key(token)?).await.ok()??;
    String::from_utf8(bytes).ok()
}

/// The TLS-ALPN-01 challenge certificate for `hostname`, rebuilt from the
/// digest any node published in the shared store.
pub async fn stored_tls_alpn01<S: Storage + ?Sized>(
    storage: &S,
    hostname: &str,
) -> Option<Arc<CertifiedKey>> {
    let bytes = storage.get(&tls_alpn01_key(hostname)?).await.ok()??;
    let digest = hex::decode(bytes).ok()?;
    tls_alpn01_certificate(hostname, &digest).ok().map(Arc::new)
}

/// A self-signed certificate for `hostname` carrying the critical
/// acmeIdentifier extension (RFC 8737). Built with `CertifiedKey::new`:
/// `from_der` would reject it.
fn tls_alpn01_certificate(hostname: &str, digest: &[u8]) -> Result<CertifiedKey, IssueError> {
    let detail = || format!("TLS-ALPN-01 challenge certificate for {hostname}");
    let fail = |e: rcgen::Error| IssueError::internal(detail(), e);
    let key = rcgen::KeyPair::generate().map_err(fail)?;
    let mut params = rcgen::CertificateParams::new(vec![hostname.to_owned()]).map_err(fail)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let cert = params.self_signed(&key).map_err(fail)?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing_key = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| IssueError::internal(detail(), e))?;
    Ok(CertifiedKey::new(vec![CertificateDer::from(cert.der().to_vec())], signing_key))
}

/// Tells a [`Dns01Solver`] with per-tenant delegation
/// ([`DelegationTarget::PerTenant`]) the tenant of a SAN: its label in the
/// shared target `<tenant-label>.<delegation zone>`.
///
/// A closure `Fn(&Hostname) -> Option<String>` is one:
///
/// ```
/// use std::sync::Arc;
/// use acme_core::TenantOf;
/// use dns_verify::Hostname;
/// let tenants: Arc<dyn TenantOf> = Arc::new(|san: &Hostname| {
///     san.base().ends_with("shop.example").then(|| "acme-org".to_owned())
/// });
/// ```
#[async_trait]
pub trait TenantOf: Send + Sync {
    /// The tenant label of `san` (a wildcard comes as `*.<base>`), or `None`
    /// when the SAN has no tenant: it then delegates to its per-hostname target.
    async fn tenant_of(&self, san: &Hostname) -> Option<String>;
}

#[async_trait]
impl<F> TenantOf for F
where
    F: Fn(&Hostname) -> Option<String> + Send + Sync,
{
    async fn tenant_of(&self, san: &Hostname) -> Option<String> {
        self(san)
    }
}

/// DNS-01 through CNAME delegation: `_acme-challenge.<host>` is a CNAME
/// (created once by the customer) into a zone the platform controls, where
/// this solver writes the TXT value through a [`DnsProvider`], waits until
/// every authoritative server serves it, and removes it afterwards.
///
/// The TXT name is the delegation target: one per hostname, or — with
/// [`DelegationTarget::PerTenant`] in the requirements and
/// [`with_tenants`](Self::with_tenants) — one shared by every SAN of a
/// tenant. Values are added beside the others at that name and each is
/// deleted alone (by its data, never the record set), so concurrent orders
/// (and a wildcard with its apex, two values at one name) do not remove each
/// other's answers.
#[derive(Clone)]
pub struct Dns01Solver {
    provider: Arc<dyn DnsProvider>,
    checker: Checker,
    requirements: Requirements,
    propagation_timeout: Duration,
    tenants: Option<Arc<dyn TenantOf>>,
    /// (SAN, value) → the TXT name it was written at, so that cleanup
    /// removes it there even when the SAN's tenant changed meanwhile.
    written: Arc<std::sync::Mutex<HashMap<(String, String), String>>>,
}

impl std::fmt::Debug for Dns01Solver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns01Solver")
            .field("delegation_zone", &self.requirements.delegation_zone)
            .finish_non_exhaustive()
    }
}

impl Dns01Solver {
    /// A solver writing through `provider` into `requirements.delegation_zone`,
    /// checking with `checker`.
    pub fn new(provider: Arc<dyn DnsProvider>, checker: Checker, requirements: Requirements) -> Self {
        Self {
            provider,
            checker,
            requirements,
            propagation_timeout: Duration::from_secs(120),
            tenants: None,
            written: Arc::default(),
        }
    }

    /// Where to find each SAN's tenant when the requirements delegate per
    /// tenant ([`DelegationTarget::PerTenant`]); unused per hostname.
    #[must_use]
    pub fn with_tenants(mut self, tenants: Arc<dyn TenantOf>) -> Self {
        self.tenants = Some(tenants);
        self
    }

    /// How long to wait for the TXT record to reach every authoritative
    /// server (default 120 s).
    #[must_use]
    pub fn with_propagation_timeout(mut self, timeout: Duration) -> Self {
        self.propagation_timeout = timeout;
        self
    }

    /// The name the TXT is written at for `name` (a SAN, wildcard or not):
    /// the delegation target `_acme-challenge.<name>` must point at. Per
    /// tenant, the SAN's tenant comes from [`with_tenants`](Self::with_tenants);
    /// a SAN without one (or no lookup) uses its per-hostname target.
    ///
    /// # Errors
    /// [`IssueError::ValidationFailed`] for an invalid name or tenant label.
    pub async fn txt_name(&self, name: &str) -> Result<String, IssueError> {
        let host = Hostname::parse(name)
            .map_err(|e| IssueError::ValidationFailed { detail: format!("{name}: {e}") })?;
        self.target_of(&host).await
    }

    async fn target_of(&self, host: &Hostname) -> Result<String, IssueError> {
        if self.requirements.delegation == DelegationTarget::PerTenant
            && let Some(tenants) = &self.tenants
            && let Some(label) = tenants.tenant_of(host).await
        {
            return self
                .requirements
                .tenant_target(&label)
                .map_err(|e| IssueError::ValidationFailed { detail: format!("{host}: {e}") });
        }
        Ok(self.requirements.delegation_target(host))
    }

    /// Checks the delegation CNAME of every name before contacting the CA:
    /// leftover TXT records → [`IssueError::TxtConflict`], missing or wrong
    /// CNAME → [`IssueError::CnameNotFound`], lookup failure → [`IssueError::DnsFetch`].
    ///
    /// # Errors
    /// The first problem found.
    pub async fn preflight(&self, names: &[String]) -> Result<(), IssueError> {
        let mut expectations = Vec::new();
        for name in names {
            let host = Hostname::parse(name)
                .map_err(|e| IssueError::ValidationFailed { detail: format!("{name}: {e}") })?;
            let target = self.target_of(&host).await?;
            expectations.push(Expectation::AcmeDelegation { host, target });
        }
        for report in self.checker.check(&expectations).await {
            let name = report.expectation.host().to_string();
            match report.status {
                RecordStatus::Valid => {}
                RecordStatus::Duplicate => {
                    return Err(IssueError::TxtConflict { name, records: report.observed });
                }
                RecordStatus::LookupFailed => return Err(IssueError::dns_fetch(report.fix)),
                _ => return Err(IssueError::CnameNotFound { name }),
            }
        }
        Ok(())
    }

    /// Writes the TXT for `name` and waits until every authoritative server has it.
    ///
    /// # Errors
    /// [`IssueError::DnsFetch`] when the write fails or does not propagate in time.
    pub async fn present(&self, name: &str, value: &str) -> Result<(), IssueError> {
        let record = DnsRecord::txt(&self.txt_name(name).await?, value);
        self.provider.create(&record).await.map_err(|e| IssueError::DnsFetch {
            detail: format!("writing {}", record.name),
            source: Some(Box::new(e)),
        })?;
        self.written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((name.to_owned(), value.to_owned()), record.name.clone());
        wait_for_propagation(&self.checker, &record, self.propagation_timeout).await.map_err(|e| {
            IssueError::DnsFetch {
                detail: format!("waiting for {} on every authoritative server", record.name),
                source: Some(Box::new(e)),
            }
        })
    }

    /// Removes the TXT value written by [`present`](Self::present) — only
    /// that value: others at a shared name stay; failures are logged.
    pub async fn cleanup(&self, name: &str, value: &str) {
        let written = self
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(name.to_owned(), value.to_owned()));
        let txt_name = match written {
            Some(txt_name) => txt_name,
            // Written by another process (a resumed order): where it would write now.
            None => match self.txt_name(name).await {
                Ok(txt_name) => txt_name,
                Err(_) => return,
            },
        };
        if let Err(e) = self.provider.delete(&DnsRecord::txt(&txt_name, value)).await {
            tracing::warn!(record = %txt_name, error = %e, "could not remove a DNS-01 TXT record");
        }
    }
}
