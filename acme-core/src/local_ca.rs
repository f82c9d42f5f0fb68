//! The embedded local CA: issues certificates with no ACME server at all.

use std::{sync::Arc, time::Duration};

use async_trait::async_trait;
use cert_store::{CertBundle, CertStore, Leases, Provenance, Storage};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer as RcgenIssuer, KeyPair, KeyUsagePurpose,
};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::OnceCell;

use crate::{CertRequest, IssueError, Issuer};

#[derive(Serialize, Deserialize)]
struct StoredCa {
    cert_pem: String,
    key_pem: String,
}

/// A CA kept in the store (created on first use, shared by every process on
/// the same store) that signs 90-day leaf certificates. The default issuer
/// when no ACME directory is configured; clients must trust
/// [`root_pem`](Self::root_pem).
pub struct LocalCaIssuer<S: Storage + ?Sized> {
    store: Arc<CertStore<S>>,
    ca: OnceCell<StoredCa>,
    lifetime: Duration,
}

impl<S: Storage + ?Sized> LocalCaIssuer<S> {
    /// A local CA kept in `store` (the same argument as
    /// [`AcmeIssuer::new`](crate::AcmeIssuer::new) and
    /// [`CertManager::new`](crate::CertManager::new) take).
    pub fn new(store: Arc<CertStore<S>>) -> Self {
        Self { store, ca: OnceCell::new(), lifetime: Duration::from_secs(90 * 24 * 3600) }
    }

    /// Sets the lifetime of issued certificates (default 90 days).
    #[must_use]
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    async fn ca(&self) -> Result<&StoredCa, IssueError> {
        self.ca.get_or_try_init(|| self.load_or_create()).await
    }

    async fn load_or_create(&self) -> Result<StoredCa, IssueError> {
        let storage_err = |e: cert_store::StorageError| IssueError::storage("the local CA", e);
        let key = crate::keys::local_ca().map_err(storage_err)?;
        if let Some(ca) = self.read(&key).await? {
            return Ok(ca);
        }
        // One creator across processes; re-check after taking the lease.
        let storage = self.store.storage();
        let lease_name = crate::keys::local_ca_lease().map_err(storage_err)?;
        let lease = storage.lock(&lease_name, Duration::from_secs(30)).await.map_err(storage_err)?;
        let legacy = crate::keys::legacy_local_ca().map_err(storage_err)?;
        let ca = match self.read(&key).await? {
            Some(ca) => ca,
            None => {
                // A store from before the `tls/` layout keeps its CA (clients trust its root).
                let ca = match self.read(&legacy).await? {
                    Some(ca) => ca,
                    None => generate_ca()?,
                };
                let bytes =
                    serde_json::to_vec(&ca).map_err(|e| IssueError::storage("encoding the local CA", e))?;
                storage.put(&key, &bytes).await.map_err(storage_err)?;
                ca
            }
        };
        lease.release().await;
        Ok(ca)
    }

    async fn read(&self, key: &cert_store::Key) -> Result<Option<StoredCa>, IssueError> {
        match self
            .store
            .storage()
            .get(key)
            .await
            .map_err(|e| IssueError::storage("reading the local CA", e))?
        {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| IssueError::storage("decoding the local CA record", e)),
        }
    }

    /// The CA certificate (PEM) that clients must trust.
    ///
    /// # Errors
    /// When the CA cannot be loaded or created.
    pub async fn root_pem(&self) -> Result<String, IssueError> {
        Ok(self.ca().await?.cert_pem.clone())
    }
}

fn rcgen_err(e: rcgen::Error) -> IssueError {
    IssueError::internal("signing with the local CA", e)
}

fn generate_ca() -> Result<StoredCa, IssueError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(rcgen_err)?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "custom-domain TLS local CA");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params.not_before = OffsetDateTime::now_utc() - time::Duration::hours(1);
    params.not_after = OffsetDateTime::now_utc() + time::Duration::days(3650);
    let cert = params.self_signed(&key).map_err(rcgen_err)?;
    Ok(StoredCa { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

#[async_trait]
impl<S: Storage + ?Sized> Issuer for LocalCaIssuer<S> {
    async fn issue(&self, request: &CertRequest) -> Result<CertBundle, IssueError> {
        request.validate()?;
        let ca = self.ca().await?;
        let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(rcgen_err)?;
        let issuer = RcgenIssuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(rcgen_err)?;
        let key = request.key.generate()?;
        let mut params = CertificateParams::new(request.names.clone()).map_err(rcgen_err)?;
        params.distinguished_name = DistinguishedName::new();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + self.lifetime;
        let leaf = params.signed_by(&key, &issuer).map_err(rcgen_err)?;
        let chain = format!("{}{}", leaf.pem(), ca.cert_pem);
        CertBundle::from_pem(&chain, &key.serialize_pem(), Provenance::LocalCa)
            .map_err(|e| IssueError::internal("the local CA produced an unusable certificate", e))
    }

    fn name(&self) -> String {
        "local-ca".to_owned()
    }
}
