//! The edge's settings: flags, each also readable from the environment.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};
use control_plane::{Challenge, Quotas, Settings};

/// Where certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerChoice {
    /// The embedded local CA.
    Local,
    /// An ACME CA, by its directory URL (`https://…`).
    Acme(String),
}

/// An `EDGE_ISSUER` that is neither `local` nor an `https://` URL.
#[derive(Debug, Clone, thiserror::Error)]
#[error("expected `local` or an https:// ACME directory URL, not `{0}`")]
pub struct InvalidIssuer(String);

impl std::str::FromStr for IssuerChoice {
    type Err = InvalidIssuer;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "local" => Ok(Self::Local),
            url if url.starts_with("https://") && url.len() > "https://".len() => {
                Ok(Self::Acme(url.to_owned()))
            }
            other => Err(InvalidIssuer(other.to_owned())),
        }
    }
}

/// The ACME challenge, as the flag spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChallengeFlag {
    /// HTTP-01 on this edge's HTTP listener.
    #[value(name = "http-01")]
    Http01,
    /// TLS-ALPN-01 on this edge's TLS listener.
    #[value(name = "tls-alpn-01")]
    TlsAlpn01,
    /// DNS-01 through the customer's `_acme-challenge` CNAME (needs `--rfc2136-*`).
    #[value(name = "dns-01")]
    Dns01,
}

impl From<ChallengeFlag> for Challenge {
    fn from(flag: ChallengeFlag) -> Self {
        match flag {
            ChallengeFlag::Http01 => Challenge::Http01,
            ChallengeFlag::TlsAlpn01 => Challenge::TlsAlpn01,
            ChallengeFlag::Dns01 => Challenge::Dns01,
        }
    }
}

/// The custom-domain edge: control plane API, worker and TLS proxy in one
/// process. Runs with no configuration on a local CA and a store in `./data`.
#[derive(Debug, Clone, Parser)]
#[command(name = "edge", version)]
pub struct Config {
    /// `local` (embedded CA, the default) or an ACME directory URL.
    #[arg(long, env = "EDGE_ISSUER", default_value = "local")]
    pub issuer: IssuerChoice,
    /// PEM root to trust for the ACME directory's HTTPS (private or test CAs).
    #[arg(long, env = "EDGE_CA_ROOT")]
    pub ca_root: Option<PathBuf>,
    /// ACME challenge: `http-01`, `tls-alpn-01` (both answered by this
    /// edge's listeners) or `dns-01` (a TXT written through RFC 2136 at the
    /// target of the customer's `_acme-challenge` CNAME; needs `--rfc2136-*`).
    #[arg(long, env = "EDGE_CHALLENGE", value_enum, default_value = "http-01")]
    pub challenge: ChallengeFlag,
    /// Longest wait for the CA to validate and issue, in seconds (the whole
    /// order is bounded by this plus a minute, then retried).
    #[arg(long, env = "EDGE_ACME_TIMEOUT_SECS", default_value = "60")]
    pub acme_timeout_secs: u64,
    /// Contact e-mail for the ACME account.
    #[arg(long, env = "EDGE_ACME_EMAIL")]
    pub acme_email: Option<String>,
    /// Renew this many days before expiry at the latest (earlier when a
    /// third of the lifetime is left, or when the CA's renewal window says so).
    #[arg(long, env = "EDGE_RENEW_BEFORE_DAYS", default_value = "30")]
    pub renew_before_days: u32,
    /// How often renewals, retries and unfinished orders are looked for, in seconds.
    #[arg(long, env = "EDGE_MAINTENANCE_INTERVAL_SECS", default_value = "600")]
    pub maintenance_interval_secs: u64,

    /// Development mode: serve an authoritative DNS zone in this process
    /// (at `--dev-dns-addr`), write every new connection's records into it
    /// and check against it, so a hostname goes live with no public DNS.
    #[arg(long, env = "EDGE_DEV", value_parser = parse_flag, num_args = 0..=1, default_missing_value = "1", default_value = "0", action = clap::ArgAction::Set)]
    pub dev: bool,
    /// Where the development zone answers (UDP and TCP), with `--dev`.
    #[arg(long, env = "EDGE_DEV_DNS_ADDR", default_value = "127.0.0.1:8053")]
    pub dev_dns_addr: SocketAddr,

    /// A directory (filesystem store) or a `postgres://` URL shared by a fleet of edges.
    #[arg(long, env = "EDGE_STORE", default_value = "./data")]
    pub store: String,

    /// Address of the control plane API.
    #[arg(long, env = "EDGE_API_ADDR", default_value = "127.0.0.1:8080")]
    pub api_addr: SocketAddr,
    /// Address of the TLS listener.
    #[arg(long, env = "EDGE_HTTPS_ADDR", default_value = "127.0.0.1:8443")]
    pub https_addr: SocketAddr,
    /// Address of the plain-HTTP listener (HTTP-01, redirects).
    #[arg(long, env = "EDGE_HTTP_ADDR", default_value = "127.0.0.1:8880")]
    pub http_addr: SocketAddr,
    /// Address of the metrics and health listener (`/metrics` in the
    /// Prometheus text format, `/healthz`, `/readyz`), or `off`.
    #[arg(long, env = "EDGE_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: super::metrics::MetricsAddr,
    /// Where terminated connections are forwarded (the platform's application).
    #[arg(long, env = "EDGE_UPSTREAM", default_value = "127.0.0.1:3000")]
    pub upstream: SocketAddr,
    /// Where the proxy's on-demand ask goes (defaults to this edge's own API).
    #[arg(long, env = "CONTROLPLANE_URL")]
    pub controlplane_url: Option<String>,
    /// Treat a 2xx without a body from the ask endpoint as "allow" (endpoints
    /// written for Caddy's `ask`); otherwise only `{"allow": true}` allows.
    #[arg(long, env = "EDGE_ASK_ALLOW_BODILESS", default_value = "0", value_parser = parse_flag, action = clap::ArgAction::Set)]
    pub ask_allow_bodiless: bool,
    /// A PEM file of extra CA certificates trusted (besides the public web
    /// roots) for `https://` control planes and webhook receivers.
    #[arg(long, env = "EDGE_EXTRA_ROOT")]
    pub extra_root: Option<PathBuf>,
    /// New ACME orders in flight at once against the CA; on-demand
    /// handshakes beyond it wait in line within their deadline.
    #[arg(long, env = "EDGE_ACME_MAX_INFLIGHT", default_value = "20")]
    pub acme_max_inflight: usize,
    /// Run the worker (DNS checks, state changes, issuance, drift, webhooks).
    #[arg(long, env = "WORKER_ENABLED", default_value = "1", value_parser = parse_flag, action = clap::ArgAction::Set)]
    pub worker_enabled: bool,

    /// API keys of the `default` tenant, accepted as `Authorization: Bearer
    /// <key>` (comma-separated): an edge from before tenants keeps working.
    /// Without one (and without operator keys), a random key is made at
    /// start and printed.
    #[arg(long, env = "EDGE_API_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub api_keys: Vec<String>,
    /// Operator keys (comma-separated): manage tenants, their plans and
    /// their API keys (`/v1/tenants`); they see no connection themselves.
    #[arg(long, env = "EDGE_ADMIN_KEYS", value_delimiter = ',', hide_env_values = true)]
    pub admin_keys: Vec<String>,
    /// The period a plan's connect limit counts in: `month` (calendar, UTC),
    /// `week` (ISO) or `day`.
    #[arg(long, env = "EDGE_QUOTA_PERIOD", default_value = "month")]
    pub quota_period: control_plane::QuotaPeriod,
    /// Days the activity log keeps each record.
    #[arg(long, env = "EDGE_ACTIVITY_RETENTION_DAYS", default_value = "90")]
    pub activity_retention_days: u32,
    /// Seconds added to the clock quota periods are read from (tests of a
    /// period change; 0 in production).
    #[arg(
        long,
        env = "EDGE_CLOCK_OFFSET_SECS",
        default_value = "0",
        hide = true,
        allow_hyphen_values = true
    )]
    pub clock_offset_secs: i64,
    /// Secret signing widget tokens (shared by a fleet; random per start when unset).
    #[arg(long, env = "EDGE_WIDGET_SECRET", hide_env_values = true)]
    pub widget_secret: Option<String>,
    /// Who may embed the DNS setup widget (`/widget`) in a frame: the
    /// `frame-ancestors` of its Content-Security-Policy, e.g.
    /// `https://dashboard.example.com` (space-separated); `'none'` by default.
    #[arg(long, env = "EDGE_WIDGET_FRAME_ANCESTORS", default_value = "'none'")]
    pub widget_frame_ancestors: super::widget::FrameAncestors,
    /// How often an open widget re-checks the records by itself, in seconds.
    #[arg(long, env = "EDGE_WIDGET_REFRESH_SECS", default_value = "30")]
    pub widget_refresh_secs: u64,
    /// Connections allowed per plan, as `plan=limit` (comma-separated).
    #[arg(long, env = "EDGE_QUOTAS", default_value = "free=5,pro=1000")]
    pub quotas: Quotas,
    /// Where a customer over quota is sent.
    #[arg(long, env = "EDGE_UPGRADE_URL", default_value = "https://example.com/upgrade")]
    pub upgrade_url: String,

    /// Zone that `_acme-challenge` CNAMEs delegate into.
    #[arg(long, env = "EDGE_DELEGATION_ZONE", default_value = "acme.edge.example")]
    pub delegation_zone: String,
    /// Where each SAN's `_acme-challenge` CNAME points inside the delegation
    /// zone: `per-hostname` (a label per name) or `per-tenant`
    /// (`<tenant>.<zone>`, one record for a tenant's every name).
    #[arg(long, env = "EDGE_DELEGATION_TARGET", default_value = "per-hostname")]
    pub delegation_target: dns_verify::DelegationTarget,
    /// The CNAME target customers point their hostnames at.
    #[arg(long, env = "EDGE_ROUTING_CNAME", default_value = "edge.example")]
    pub routing_cname: String,
    /// Edge addresses also accepted as routing (A/AAAA, flattened apex).
    #[arg(long, env = "EDGE_ROUTING_ADDRESSES", value_delimiter = ',')]
    pub routing_addresses: Vec<std::net::IpAddr>,
    /// Ask these authoritative servers (IP:PORT, comma-separated) instead of
    /// discovering them through the recursive resolver.
    #[arg(long, env = "EDGE_DNS_AUTHORITIES", value_delimiter = ',')]
    pub dns_authorities: Vec<SocketAddr>,
    /// Recursive resolver used to discover each zone's authoritative servers.
    #[arg(long, env = "EDGE_DNS_RESOLVER", default_value = "1.1.1.1:53")]
    pub dns_resolver: SocketAddr,

    /// RFC 2136 server (IP:PORT) of the delegation zone, for DNS-01.
    #[arg(long, env = "EDGE_RFC2136_SERVER")]
    pub rfc2136_server: Option<SocketAddr>,
    /// Zone updated through RFC 2136 (default: the delegation zone).
    #[arg(long, env = "EDGE_RFC2136_ZONE")]
    pub rfc2136_zone: Option<String>,
    /// TSIG key name for RFC 2136 (hmac-sha256).
    #[arg(long, env = "EDGE_TSIG_KEY_NAME")]
    pub tsig_key_name: Option<String>,
    /// TSIG secret, base64.
    #[arg(long, env = "EDGE_TSIG_SECRET", hide_env_values = true)]
    pub tsig_secret: Option<String>,

    /// Webhook URLs receiving events (comma-separated).
    #[arg(long, env = "EDGE_WEBHOOK_URLS", value_delimiter = ',')]
    pub webhook_urls: Vec<String>,
    /// Secret of the `X-Edge-Signature` HMAC-SHA256 header.
    #[arg(long, env = "EDGE_WEBHOOK_SECRET", default_value = "", hide_env_values = true)]
    pub webhook_secret: String,

    /// How often the worker looks for due work, in milliseconds.
    #[arg(long, env = "EDGE_TICK_MS", default_value = "1000")]
    pub tick_ms: u64,
    /// Customers' DNS provider credentials.
    #[command(flatten)]
    pub dns_credentials: super::dns_credentials::CredentialArgs,
    /// How often live hostnames are re-checked for drift, in seconds.
    #[arg(long, env = "EDGE_DRIFT_INTERVAL_SECS", default_value = "300")]
    pub drift_interval_secs: u64,
}

/// A yes/no setting that is neither.
#[derive(Debug, Clone, thiserror::Error)]
#[error("expected 1/0, true/false, yes/no or on/off, not `{0}`")]
pub struct InvalidFlag(String);

fn parse_flag(value: &str) -> Result<bool, InvalidFlag> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        other => Err(InvalidFlag(other.to_owned())),
    }
}

impl Config {
    /// The worker's tick.
    #[must_use]
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms.max(10))
    }

    /// The drift re-check interval.
    #[must_use]
    pub fn drift_interval(&self) -> Duration {
        Duration::from_secs(self.drift_interval_secs.max(1))
    }

    /// Whether certificates are validated by DNS-01 (the `_acme-challenge`
    /// delegation is then a required record).
    #[must_use]
    pub fn uses_dns01(&self) -> bool {
        self.challenge == ChallengeFlag::Dns01
    }

    /// How the DNS setup widget is served.
    #[must_use]
    pub fn widget_settings(&self) -> super::widget::WidgetSettings {
        super::widget::WidgetSettings {
            frame_ancestors: self.widget_frame_ancestors.clone(),
            refresh: Duration::from_secs(self.widget_refresh_secs.max(1)),
        }
    }

    /// The control plane's settings.
    #[must_use]
    pub fn control_plane_settings(&self) -> Settings {
        let mut settings = Settings::default();
        settings.challenge = self.challenge.into();
        settings.quotas = self.quotas.clone();
        settings.upgrade_url = self.upgrade_url.clone();
        settings.drift_interval = self.drift_interval();
        settings.quota_period = self.quota_period;
        settings.renew_before = Duration::from_secs(u64::from(self.renew_before_days) * 24 * 3600);
        settings.activity_retention =
            Duration::from_secs(u64::from(self.activity_retention_days.max(1)) * 24 * 3600);
        settings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_with_nothing_configured() {
        let c = Config::try_parse_from(["edge"]).unwrap();
        assert_eq!(c.issuer, IssuerChoice::Local);
        assert_eq!(c.quotas.limit("free"), Some(5));
        assert_eq!(c.quotas.limit("gold"), None);
        assert!(c.worker_enabled);
        let c = Config::try_parse_from(["edge", "--worker-enabled", "0", "--quotas", "free=2"]).unwrap();
        assert!(!c.worker_enabled);
        assert_eq!(c.quotas.limit("free"), Some(2));
    }

    #[test]
    fn bad_settings_are_refused_at_start_naming_the_value() {
        for args in [
            ["edge", "--challenge", "dns-02"],
            ["edge", "--issuer", "http://ca.example/dir"],
            ["edge", "--quotas", "free=five"],
        ] {
            let e = Config::try_parse_from(args).unwrap_err().to_string();
            assert!(e.contains(args[2]), "{e}");
        }
        let c =
            Config::try_parse_from(["edge", "--issuer", "https://ca.example/dir", "--challenge", "dns-01"])
                .unwrap();
        assert_eq!(c.issuer, IssuerChoice::Acme("https://ca.example/dir".into()));
        assert!(c.uses_dns01());
        assert!(!c.dev);
        assert!(Config::try_parse_from(["edge", "--dev"]).unwrap().dev);
    }
}
