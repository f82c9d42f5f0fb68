//! What a hostname's DNS must contain.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::Hostname;

/// Label of the ACME challenge record.
pub const ACME_CHALLENGE_LABEL: &str = "_acme-challenge";
/// Label of the ownership TXT record.
pub const OWNERSHIP_LABEL: &str = "_customdomain-challenge";

/// One record a hostname needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Expectation {
    /// `_acme-challenge.<host>` must be a CNAME to `target` (DNS-01 delegation).
    AcmeDelegation {
        /// The SAN this record serves.
        host: Hostname,
        /// The delegation target, e.g. `3f2a….acme.edge.example.net`.
        target: String,
    },
    /// `_customdomain-challenge.<host>` must hold a TXT record equal to `token`.
    OwnershipTxt {
        /// The SAN this record serves.
        host: Hostname,
        /// The exact value.
        token: String,
    },
    /// `<host>` must route to the edge: a CNAME to `cname` (anywhere in its
    /// chain) or, for a flattened apex, addresses within `addresses`.
    Routing {
        /// The SAN this record serves.
        host: Hostname,
        /// The CNAME target of the edge, e.g. `edge.example.net`.
        cname: Option<String>,
        /// The edge's own addresses (accepted as A/AAAA answers).
        addresses: Vec<IpAddr>,
    },
}

impl Expectation {
    /// The SAN this expectation belongs to.
    #[must_use]
    pub fn host(&self) -> &Hostname {
        match self {
            Self::AcmeDelegation { host, .. }
            | Self::OwnershipTxt { host, .. }
            | Self::Routing { host, .. } => host,
        }
    }

    /// The DNS name that is queried.
    #[must_use]
    pub fn record_name(&self) -> String {
        match self {
            Self::AcmeDelegation { host, .. } => format!("{ACME_CHALLENGE_LABEL}.{}", host.base()),
            Self::OwnershipTxt { host, .. } => format!("{OWNERSHIP_LABEL}.{}", host.base()),
            Self::Routing { host, .. } => host.as_str().to_owned(),
        }
    }

    /// The record type a person creates: `CNAME`, `TXT`, or `CNAME`/`A` for routing.
    #[must_use]
    pub fn record_type(&self) -> &'static str {
        match self {
            Self::AcmeDelegation { .. } => "CNAME",
            Self::OwnershipTxt { .. } => "TXT",
            Self::Routing { cname: Some(_), .. } => "CNAME",
            Self::Routing { .. } => "A",
        }
    }

    /// The expected value as shown to a person.
    #[must_use]
    pub fn expected_value(&self) -> String {
        match self {
            Self::AcmeDelegation { target, .. } => target.clone(),
            Self::OwnershipTxt { token, .. } => token.clone(),
            Self::Routing { cname: Some(c), .. } => c.clone(),
            Self::Routing { addresses, .. } => {
                addresses.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            }
        }
    }

    /// A short machine name of the kind: `acme_delegation`, `ownership_txt`, `routing`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AcmeDelegation { .. } => "acme_delegation",
            Self::OwnershipTxt { .. } => "ownership_txt",
            Self::Routing { .. } => "routing",
        }
    }
}

/// Which name `_acme-challenge.<san>` delegates to (by CNAME), inside the
/// delegation zone. Read from configuration as `per-hostname` or
/// `per-tenant` (e.g. `EDGE_DELEGATION_TARGET`).
///
/// ```
/// use dns_verify::{DelegationTarget, Hostname, Requirements};
/// let req = Requirements::delegating_to("acme.edge.example.net")
///     .delegation("per-tenant".parse::<DelegationTarget>().unwrap());
/// let host = Hostname::parse("*.shop.customer.com").unwrap();
/// assert_eq!(
///     req.delegation_target_for(&host, "Your-Org").unwrap(),
///     "your-org.acme.edge.example.net"
/// );
/// assert!("per-planet".parse::<DelegationTarget>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DelegationTarget {
    /// One target per SAN: a label derived from the hostname
    /// ([`Requirements::delegation_target`]). The default.
    #[default]
    PerHostname,
    /// One target per tenant, shared by every SAN of that tenant:
    /// `<tenant-label>.<delegation zone>` ([`Requirements::tenant_target`]).
    /// One record for the customer to remember; the DNS-01 TXT values of
    /// concurrent orders then sit side by side at that name, so whoever
    /// writes them must add its own value and delete only its own value
    /// (what [`DnsProvider::create`](crate::DnsProvider::create) and
    /// [`delete`](crate::DnsProvider::delete) do).
    PerTenant,
}

impl DelegationTarget {
    /// The configuration spelling: `per-hostname` or `per-tenant`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerHostname => "per-hostname",
            Self::PerTenant => "per-tenant",
        }
    }
}

impl std::fmt::Display for DelegationTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DelegationTarget {
    type Err = DelegationTargetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "per-hostname" => Ok(Self::PerHostname),
            "per-tenant" => Ok(Self::PerTenant),
            _ => Err(DelegationTargetError::UnknownPolicy { value: s.to_owned() }),
        }
    }
}

/// A delegation target that cannot be built.
///
/// ```
/// use dns_verify::{DelegationTargetError, Requirements};
/// let req = Requirements::delegating_to("acme.edge.example.net");
/// let err = req.tenant_target("acme_corp").unwrap_err();
/// assert!(matches!(err, DelegationTargetError::InvalidTenantLabel { .. }));
/// assert!(err.to_string().contains("acme_corp"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DelegationTargetError {
    /// Not `per-hostname` nor `per-tenant`.
    #[error("unknown delegation target {value:?}: expected per-hostname or per-tenant")]
    UnknownPolicy {
        /// The value as given.
        value: String,
    },
    /// The tenant label cannot be one DNS label.
    #[error("tenant label {label:?} is not a DNS label: {reason}")]
    InvalidTenantLabel {
        /// The label as given.
        label: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// `label` as one lowercase DNS label (letters, digits, inner hyphens, at
/// most 63 characters), the way it appears in a per-tenant target.
///
/// ```
/// assert_eq!(dns_verify::tenant_label("Acme-Corp").unwrap(), "acme-corp");
/// assert!(dns_verify::tenant_label("-acme").is_err());
/// ```
///
/// # Errors
/// [`DelegationTargetError::InvalidTenantLabel`] saying why.
pub fn tenant_label(label: &str) -> Result<String, DelegationTargetError> {
    let invalid = |reason| DelegationTargetError::InvalidTenantLabel { label: label.to_owned(), reason };
    if label.is_empty() {
        return Err(invalid("it is empty"));
    }
    if label.len() > 63 {
        return Err(invalid("it is longer than 63 characters"));
    }
    if !label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(invalid("only letters, digits and hyphens are allowed"));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(invalid("it starts or ends with a hyphen"));
    }
    Ok(label.to_ascii_lowercase())
}

/// How a platform wants its customers' hostnames set up; turns a hostname
/// into its [`Expectation`]s.
///
/// ```
/// use dns_verify::{Hostname, Requirements};
/// let req = Requirements::delegating_to("acme.edge.example.net").routing_cname("edge.example.net");
/// let host = Hostname::parse("shop.customer.com").unwrap();
/// let expectations = req.for_host(&host, Some("token-123"));
/// assert_eq!(expectations.len(), 3);
/// assert_eq!(expectations[0].record_name(), "_acme-challenge.shop.customer.com");
/// ```
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Requirements {
    /// The zone that `_acme-challenge` CNAMEs delegate into.
    pub delegation_zone: String,
    /// The routing CNAME target, if routing is checked by CNAME.
    pub routing_cname: Option<String>,
    /// The edge's addresses, accepted for A/AAAA routing (flattened apex).
    pub routing_addresses: Vec<IpAddr>,
    /// Which name `_acme-challenge` CNAMEs point at (default per hostname).
    #[serde(default)]
    pub delegation: DelegationTarget,
}

impl Requirements {
    /// Requirements with `_acme-challenge` delegated into `zone`, no routing check.
    #[must_use]
    pub fn delegating_to(zone: &str) -> Self {
        Self { delegation_zone: zone.trim_end_matches('.').to_ascii_lowercase(), ..Self::default() }
    }

    /// Checks routing by CNAME to `target`.
    #[must_use]
    pub fn routing_cname(mut self, target: &str) -> Self {
        self.routing_cname = Some(target.trim_end_matches('.').to_ascii_lowercase());
        self
    }

    /// Accepts these edge addresses for routing (A/AAAA, flattened apex).
    #[must_use]
    pub fn routing_addresses(mut self, addresses: Vec<IpAddr>) -> Self {
        self.routing_addresses = addresses;
        self
    }

    /// Delegates `_acme-challenge` names per hostname (default) or per tenant.
    #[must_use]
    pub fn delegation(mut self, target: DelegationTarget) -> Self {
        self.delegation = target;
        self
    }

    /// The target shared by every SAN of a tenant: `<label>.<delegation zone>`
    /// (`label` lowercased; whatever [`Requirements::delegation`] says).
    ///
    /// # Errors
    /// [`DelegationTargetError::InvalidTenantLabel`] when `label` is not one DNS label.
    pub fn tenant_target(&self, label: &str) -> Result<String, DelegationTargetError> {
        Ok(format!("{}.{}", tenant_label(label)?, self.delegation_zone))
    }

    /// Where `_acme-challenge.<host>` must point under the configured
    /// [`DelegationTarget`]: per hostname ([`delegation_target`](Self::delegation_target),
    /// `tenant_label` unused) or per tenant ([`tenant_target`](Self::tenant_target)).
    ///
    /// # Errors
    /// [`DelegationTargetError::InvalidTenantLabel`] per tenant, for a label
    /// that is not one DNS label.
    pub fn delegation_target_for(
        &self,
        host: &Hostname,
        tenant_label: &str,
    ) -> Result<String, DelegationTargetError> {
        match self.delegation {
            DelegationTarget::PerHostname => Ok(self.delegation_target(host)),
            DelegationTarget::PerTenant => self.tenant_target(tenant_label),
        }
    }

    /// [`for_host`](Self::for_host) for a SAN of the tenant `tenant_label`:
    /// the delegation points where [`delegation_target_for`](Self::delegation_target_for) says.
    ///
    /// # Errors
    /// [`DelegationTargetError::InvalidTenantLabel`] per tenant, for a label
    /// that is not one DNS label.
    pub fn for_tenant_host(
        &self,
        host: &Hostname,
        tenant_label: &str,
        ownership_token: Option<&str>,
    ) -> Result<Vec<Expectation>, DelegationTargetError> {
        let target = self.delegation_target_for(host, tenant_label)?;
        let mut out = self.for_host(host, ownership_token);
        if let Some(Expectation::AcmeDelegation { target: t, .. }) = out.first_mut() {
            *t = target;
        }
        Ok(out)
    }

    /// Where `_acme-challenge.<host>` must point: a stable label derived
    /// from the hostname inside the delegation zone (32 hex characters, so
    /// any hostname fits in one label). The per-hostname target, whatever
    /// [`Requirements::delegation`] says; a wildcard shares its base name's.
    #[must_use]
    pub fn delegation_target(&self, host: &Hostname) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, host.base().as_bytes());
        format!("{}.{}", hex::encode(&digest.as_ref()[..16]), self.delegation_zone)
    }

    /// The expectations of one SAN: the ACME delegation (to the per-hostname
    /// target; with [`DelegationTarget::PerTenant`] use
    /// [`for_tenant_host`](Self::for_tenant_host)), the ownership TXT when a
    /// token is given, and routing when configured.
    #[must_use]
    pub fn for_host(&self, host: &Hostname, ownership_token: Option<&str>) -> Vec<Expectation> {
        let mut out =
            vec![Expectation::AcmeDelegation { host: host.clone(), target: self.delegation_target(host) }];
        if let Some(token) = ownership_token {
            out.push(Expectation::OwnershipTxt { host: host.clone(), token: token.to_owned() });
        }
        if self.routing_cname.is_some() || !self.routing_addresses.is_empty() {
            out.push(Expectation::Routing {
                host: host.clone(),
                cname: self.routing_cname.clone(),
                addresses: self.routing_addresses.clone(),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_tenant_targets_are_shared_by_every_san_of_a_tenant() {
        let per_host = Requirements::delegating_to("acme.edge.test");
        let per_tenant = per_host.clone().delegation(DelegationTarget::PerTenant);
        let apex = Hostname::parse("shop.test").unwrap();
        let wildcard = Hostname::parse("*.shop.test").unwrap();
        let other = Hostname::parse("other.test").unwrap();
        assert_eq!(per_tenant.delegation_target_for(&apex, "org-1").unwrap(), "org-1.acme.edge.test");
        assert_eq!(per_tenant.delegation_target_for(&other, "ORG-1").unwrap(), "org-1.acme.edge.test");
        assert_eq!(per_tenant.delegation_target_for(&wildcard, "org-2").unwrap(), "org-2.acme.edge.test");
        // Per hostname: the tenant does not matter, a wildcard shares its base name's target.
        assert_eq!(
            per_host.delegation_target_for(&apex, "org-1").unwrap(),
            per_host.delegation_target(&apex)
        );
        assert_eq!(per_host.delegation_target(&wildcard), per_host.delegation_target(&apex));
        let e = per_tenant.for_tenant_host(&apex, "org-1", Some("tok")).unwrap();
        assert_eq!(e[0].expected_value(), "org-1.acme.edge.test");
        assert_eq!(e.len(), 2);
        for bad in ["", "a_b", "-a", "a-", "a.b", &"x".repeat(64)] {
            assert!(per_tenant.tenant_target(bad).is_err(), "{bad:?}");
        }
        assert_eq!("per-tenant".parse::<DelegationTarget>().unwrap(), DelegationTarget::PerTenant);
        assert_eq!(DelegationTarget::default().to_string(), "per-hostname");
        let json = serde_json::to_string(&per_tenant).unwrap();
        assert!(json.contains("\"delegation\":\"per-tenant\""), "{json}");
        let old: Requirements = serde_json::from_str(
            r#"{"delegation_zone":"z.test","routing_cname":null,"routing_addresses":[]}"#,
        )
        .unwrap();
        assert_eq!(old.delegation, DelegationTarget::PerHostname);
    }
}
