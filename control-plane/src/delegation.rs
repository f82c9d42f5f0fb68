//! Which tenant a SAN belongs to, for DNS-01 through a per-tenant
//! delegation target: the tenant of the connection holding the SAN's claim.

use acme_core::TenantOf;
use async_trait::async_trait;
use dns_verify::Hostname;

use crate::Repo;

/// [`TenantOf`] from the hostname claims: a SAN (`*.apex` included, each
/// SAN is claimed by its connection once verified) belongs to its
/// connection's tenant. Give it to `Dns01Solver::with_tenants` when the
/// requirements delegate per tenant, so the solver writes each TXT value at
/// the name the customer's `_acme-challenge` CNAME points to.
#[derive(Debug, Clone)]
pub struct ClaimTenants {
    repo: Repo,
}

impl ClaimTenants {
    /// Tenants found through `repo`'s claims.
    #[must_use]
    pub fn new(repo: Repo) -> Self {
        Self { repo }
    }
}

#[async_trait]
impl TenantOf for ClaimTenants {
    async fn tenant_of(&self, san: &Hostname) -> Option<String> {
        match self.repo.claim_holder(san.as_str()).await {
            Ok(holder) => holder.map(|c| c.tenant),
            Err(e) => {
                tracing::warn!(san = %san, error = %e, "claim not read: the per-hostname target is used");
                None
            }
        }
    }
}
