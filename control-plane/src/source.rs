//! What the TLS server serves: the certificate manager's certificates,
//! found for every SAN of a domain (they are stored under the domain's
//! hostname, their primary name).

use std::sync::Arc;

use acme_core::CertManager;
use async_trait::async_trait;
use cert_store::{CertBundle, CertListener, CertSource, Storage};

use crate::Repo;

/// A [`CertSource`] over a [`CertManager`] that also finds a domain's
/// certificate by any of its SANs: a name the manager does not hold under
/// its own name (or its wildcard) is looked up in the hostname claims, and
/// the claiming connection's certificate is served if it carries the name.
///
/// After issuance the manager tells its listeners every name of the new
/// certificate, so this lookup is needed only for a handshake after a
/// restart (or on another node) before anything was issued there; a name
/// nobody claims costs one small storage read per candidate (the name and
/// its wildcard).
pub struct DomainCerts {
    manager: Arc<CertManager<dyn Storage>>,
    repo: Repo,
}

impl std::fmt::Debug for DomainCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DomainCerts").finish_non_exhaustive()
    }
}

impl DomainCerts {
    /// Certificates of `manager`, SANs found through `repo`'s claims.
    #[must_use]
    pub fn new(manager: Arc<CertManager<dyn Storage>>, repo: Repo) -> Self {
        Self { manager, repo }
    }
}

#[async_trait]
impl CertSource for DomainCerts {
    async fn certificate(&self, server_name: &str) -> Option<Arc<CertBundle>> {
        if let Some(bundle) = self.manager.get(server_name).await {
            return Some(bundle);
        }
        for candidate in cert_store::hostname::candidates(server_name) {
            let Ok(Some(holder)) = self.repo.claim_holder(&candidate).await else { continue };
            if holder.hostname == candidate {
                continue;
            }
            if let Some(bundle) = self.manager.get(&holder.hostname).await
                && bundle.meta().names.contains(&candidate)
            {
                return Some(bundle);
            }
        }
        None
    }

    fn subscribe(&self, listener: Arc<dyn CertListener>) {
        self.manager.subscribe(listener);
    }
}
