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

    /// Where `_acme-challenge.<host>` must point: a stable label derived
    /// from the hostname inside the delegation zone (32 hex characters, so
    /// any hostname fits in one label).
    #[must_use]
    pub fn delegation_target(&self, host: &Hostname) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, host.base().as_bytes());
        format!("{}.{}", hex::encode(&digest.as_ref()[..16]), self.delegation_zone)
    }

    /// The expectations of one SAN: the ACME delegation, the ownership TXT
    /// when a token is given, and routing when configured.
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
