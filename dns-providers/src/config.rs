//! [`ProviderConfig`]: a provider and its credential as JSON (what a
//! customer submits, what an edge stores encrypted), built into a
//! [`DnsProvider`].

use std::{net::SocketAddr, sync::Arc};

use base64::Engine as _;
use dns_verify::{DnsProvider, Rfc2136Provider};
use serde::{Deserialize, Serialize};

use crate::{ClientError, Cloudflare, GoDaddy, Namecheap, PowerDns, Route53};

/// A DNS provider and its credential, tagged by `provider`.
///
/// ```
/// let config: dns_providers::ProviderConfig = serde_json::from_str(
///     r#"{"provider":"cloudflare","api_token":"tok-123","zone":"example.com"}"#,
/// ).unwrap();
/// assert_eq!(config.kind(), "cloudflare");
/// assert_eq!(config.zone(), "example.com");
/// assert!(!format!("{config:?}").contains("tok-123"));
/// assert_eq!(config.secrets(), vec!["tok-123"]);
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum ProviderConfig {
    /// RFC 2136 dynamic updates signed with a TSIG key (hmac-sha256).
    Rfc2136 {
        /// The primary server, `ip:port`.
        server: SocketAddr,
        /// The zone.
        zone: String,
        /// The TSIG key's name.
        key_name: String,
        /// The TSIG secret, base64.
        key_secret: String,
    },
    /// PowerDNS Authoritative's HTTP API.
    Powerdns {
        /// The API's base URL, e.g. `https://pdns.example.net:8081`.
        api_url: String,
        /// The `X-API-Key`.
        api_key: String,
        /// The zone.
        zone: String,
        /// The server id (default `localhost`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server_id: Option<String>,
    },
    /// Cloudflare, with an API token holding `Zone.DNS:Edit` on the zone.
    Cloudflare {
        /// The API token.
        api_token: String,
        /// The zone.
        zone: String,
        /// Another API base URL (tests).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_url: Option<String>,
    },
    /// GoDaddy, with a production API key and secret.
    Godaddy {
        /// The API key.
        api_key: String,
        /// The API secret.
        api_secret: String,
        /// The domain.
        domain: String,
        /// Another API base URL (GoDaddy's OTE, tests).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_url: Option<String>,
    },
    /// Namecheap, with API access enabled and the edge's IP allow-listed.
    Namecheap {
        /// The API user (also the user name).
        api_user: String,
        /// The API key.
        api_key: String,
        /// The domain.
        domain: String,
        /// The client IP sent with every call (default: the edge's egress IP).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_ip: Option<String>,
        /// Another API URL (Namecheap's sandbox, tests).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        api_url: Option<String>,
    },
    /// Amazon Route 53, with an IAM access key allowed
    /// `route53:ListHostedZonesByName`, `ListResourceRecordSets` and
    /// `ChangeResourceRecordSets` on the zone.
    Route53 {
        /// The access key id.
        access_key_id: String,
        /// The secret access key.
        secret_access_key: String,
        /// The hosted zone's name.
        zone: String,
        /// The hosted zone id, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hosted_zone_id: Option<String>,
        /// Another endpoint (an emulator, tests).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
    },
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credential.
        f.debug_struct("ProviderConfig")
            .field("provider", &self.kind())
            .field("zone", &self.zone())
            .finish_non_exhaustive()
    }
}

/// Why a [`ProviderConfig`] could not be built into a provider.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Namecheap needs the IP its calls come from, and none was given or
    /// configured (`EDGE_EGRESS_IP`).
    #[error("Namecheap needs the client IP its API calls come from: set client_ip or the edge's egress IP")]
    MissingClientIp,
    /// The TSIG secret is not base64.
    #[error("the TSIG key_secret is not base64: {0}")]
    InvalidSecret(#[source] base64::DecodeError),
    /// The URL is not `http://` or `https://`.
    #[error("{0:?} is not an http:// or https:// URL")]
    InvalidUrl(String),
    /// The zone or key name is not a DNS name.
    #[error("invalid name: {0}")]
    InvalidName(#[source] dns_verify::ProviderError),
    /// The HTTPS client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
}

fn url(u: &str) -> Result<&str, ConfigError> {
    if u.starts_with("https://") || u.starts_with("http://") {
        Ok(u)
    } else {
        Err(ConfigError::InvalidUrl(u.to_owned()))
    }
}

impl ProviderConfig {
    /// The provider's name as in JSON: `rfc2136`, `powerdns`, `cloudflare`,
    /// `godaddy`, `namecheap`, `route53`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Rfc2136 { .. } => "rfc2136",
            Self::Powerdns { .. } => "powerdns",
            Self::Cloudflare { .. } => "cloudflare",
            Self::Godaddy { .. } => "godaddy",
            Self::Namecheap { .. } => "namecheap",
            Self::Route53 { .. } => "route53",
        }
    }

    /// The zone (or domain) the credential manages.
    #[must_use]
    pub fn zone(&self) -> &str {
        match self {
            Self::Rfc2136 { zone, .. }
            | Self::Powerdns { zone, .. }
            | Self::Cloudflare { zone, .. }
            | Self::Route53 { zone, .. } => zone,
            Self::Godaddy { domain, .. } | Self::Namecheap { domain, .. } => domain,
        }
    }

    /// The secret fields' values (to check they appear nowhere in plain text).
    #[must_use]
    pub fn secrets(&self) -> Vec<&str> {
        match self {
            Self::Rfc2136 { key_secret, .. } => vec![key_secret],
            Self::Powerdns { api_key, .. } | Self::Namecheap { api_key, .. } => vec![api_key],
            Self::Cloudflare { api_token, .. } => vec![api_token],
            Self::Godaddy { api_key, api_secret, .. } => vec![api_key, api_secret],
            Self::Route53 { secret_access_key, .. } => vec![secret_access_key],
        }
    }

    /// Whether it points a hosted provider (Cloudflare, GoDaddy, Namecheap,
    /// Route 53) at another API URL than the provider's own: an embedder
    /// decides whether customers may do that (an edge allows it for tests
    /// only, so a credential cannot make it call internal addresses).
    #[must_use]
    pub fn overrides_api_url(&self) -> bool {
        match self {
            Self::Cloudflare { api_url, .. }
            | Self::Godaddy { api_url, .. }
            | Self::Namecheap { api_url, .. } => api_url.is_some(),
            Self::Route53 { endpoint, .. } => endpoint.is_some(),
            Self::Rfc2136 { .. } | Self::Powerdns { .. } => false,
        }
    }

    /// The provider. `egress_ip`: the address the edge's calls come from
    /// (Namecheap's `ClientIp` when the config has none).
    ///
    /// # Errors
    /// [`ConfigError`].
    pub fn build(&self, egress_ip: Option<&str>) -> Result<Arc<dyn DnsProvider>, ConfigError> {
        Ok(match self {
            Self::Rfc2136 { server, zone, key_name, key_secret } => {
                let secret = base64::engine::general_purpose::STANDARD
                    .decode(key_secret.trim())
                    .map_err(ConfigError::InvalidSecret)?;
                Arc::new(
                    Rfc2136Provider::new(*server, zone, key_name, secret)
                        .map_err(ConfigError::InvalidName)?,
                )
            }
            Self::Powerdns { api_url, api_key, zone, server_id } => {
                let p = PowerDns::new(url(api_url)?, api_key, zone)?;
                Arc::new(match server_id {
                    Some(id) => p.with_server_id(id),
                    None => p,
                })
            }
            Self::Cloudflare { api_token, zone, api_url } => {
                let p = Cloudflare::new(api_token, zone)?;
                Arc::new(match api_url {
                    Some(u) => p.with_api_url(url(u)?),
                    None => p,
                })
            }
            Self::Godaddy { api_key, api_secret, domain, api_url } => {
                let p = GoDaddy::new(api_key, api_secret, domain)?;
                Arc::new(match api_url {
                    Some(u) => p.with_api_url(url(u)?),
                    None => p,
                })
            }
            Self::Namecheap { api_user, api_key, domain, client_ip, api_url } => {
                let ip = client_ip.as_deref().or(egress_ip).ok_or(ConfigError::MissingClientIp)?;
                let p = Namecheap::new(api_user, api_key, domain, ip)?;
                Arc::new(match api_url {
                    Some(u) => p.with_api_url(url(u)?),
                    None => p,
                })
            }
            Self::Route53 { access_key_id, secret_access_key, zone, hosted_zone_id, endpoint } => {
                let mut p = Route53::new(access_key_id, secret_access_key, zone)?;
                if let Some(e) = endpoint {
                    p = p.with_endpoint(url(e)?);
                }
                if let Some(id) = hosted_zone_id {
                    p = p.with_hosted_zone_id(id);
                }
                Arc::new(p)
            }
        })
    }
}
