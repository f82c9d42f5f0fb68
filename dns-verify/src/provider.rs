//! Writing records: the [`DnsProvider`] trait, an in-memory provider, and
//! RFC 2136 dynamic updates signed with TSIG.

use std::{
    collections::BTreeMap,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{Mutex, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use hickory_net::{
    client::{Client, ClientHandle},
    runtime::TokioRuntimeProvider,
    udp::UdpClientStream,
};
use hickory_proto::{
    op::ResponseCode,
    rr::{
        DNSClass, Name, RData, Record, RecordType, TSigner,
        rdata::tsig::TsigAlgorithm,
        rdata::{A, AAAA, CNAME, TXT},
    },
};
use serde::{Deserialize, Serialize};

use crate::{Checker, query::LookupError};

/// The data of a record a provider writes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", content = "value")]
#[non_exhaustive]
pub enum RecordData {
    /// A TXT record with one string.
    Txt(String),
    /// A CNAME to the given name.
    Cname(String),
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
}

/// A record to create or delete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// Fully qualified owner name (no trailing dot needed).
    pub name: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// The data.
    pub data: RecordData,
}

impl DnsRecord {
    /// A TXT record with a 60 s TTL.
    #[must_use]
    pub fn txt(name: &str, value: &str) -> Self {
        Self { name: name.to_owned(), ttl: 60, data: RecordData::Txt(value.to_owned()) }
    }

    /// A CNAME record with a 60 s TTL.
    #[must_use]
    pub fn cname(name: &str, target: &str) -> Self {
        Self { name: name.to_owned(), ttl: 60, data: RecordData::Cname(target.to_owned()) }
    }

    /// An A record with a 60 s TTL.
    #[must_use]
    pub fn a(name: &str, ip: Ipv4Addr) -> Self {
        Self { name: name.to_owned(), ttl: 60, data: RecordData::A(ip) }
    }
}

/// A provider's own error (HTTP client, SDK, transport), kept as the
/// [`source`](std::error::Error::source) of a [`ProviderError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a provider could not write: a class that decides what to do (fix the
/// credential, the account, the zone, the name; retry later), a detail for
/// people, the provider's own error as the source when there is one, and a
/// sentence for the customer ([`resolution`](ProviderError::resolution)).
///
/// A provider of your own builds these with the constructors and attaches its
/// error with [`with_source`](ProviderError::with_source):
///
/// ```
/// use std::error::Error as _;
/// use dns_verify::ProviderError;
/// let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
/// let err = ProviderError::unavailable("api.dns.example did not answer").with_source(io);
/// assert!(err.is_temporary());
/// assert_eq!(err.source().unwrap().to_string(), "connect timed out");
/// assert!(matches!(err, ProviderError::Unavailable { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The credential (TSIG key, API token, key + secret) was refused.
    #[error("credential refused: {detail}")]
    InvalidCredential {
        /// What the provider said.
        detail: String,
        /// The provider's own error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The credential is valid but may not change this zone's records
    /// (e.g. a Cloudflare token without `Zone.DNS:Edit` on the zone).
    #[error("permission denied: {detail}")]
    PermissionDenied {
        /// What the provider said.
        detail: String,
        /// The provider's own error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The provider refuses API access for this account's tier (GoDaddy:
    /// `403 ACCESS_DENIED` for accounts with fewer than 10 domains and no
    /// Discount Domain Club plan).
    #[error("the account's tier has no API access: {detail}")]
    AccountTierGate {
        /// What the provider said.
        detail: String,
        /// The provider's own error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The provider only accepts calls from allow-listed client IPs and
    /// `ip` is not one of them (Namecheap error 1011150).
    #[error("calls from {ip} are not allowed: {detail}")]
    IpNotAllowed {
        /// The IP address to allow-list (the caller's egress address).
        ip: String,
        /// What the provider said.
        detail: String,
        /// The provider's own error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The zone is not on the account (or not served by the provider).
    #[error("zone {zone} not found at the provider")]
    ZoneNotFound {
        /// The zone.
        zone: String,
        /// The provider's own error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The provider asked us to slow down: temporary.
    #[error("rate limited by the provider{}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        /// When to try again, if the provider said.
        retry_after: Option<Duration>,
        /// The provider's own error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// Timeout, network failure or a server error of the provider: temporary.
    #[error("DNS provider unavailable: {detail}")]
    Unavailable {
        /// What failed.
        detail: String,
        /// The provider's own error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The record cannot coexist with what is at its name (a CNAME beside
    /// other records, or other records beside a CNAME).
    #[error("{name}: {detail}")]
    Conflict {
        /// The record name.
        name: String,
        /// What is in the way.
        detail: String,
        /// The provider's own error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The server refused the update (zone not updatable, policy).
    #[error("update refused: {detail}")]
    Refused {
        /// What the server said.
        detail: String,
        /// The provider's own error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The name is not inside the provider's zone, or not a valid name.
    #[error("invalid record name {name:?}")]
    InvalidName {
        /// The name, or a sentence about it.
        name: String,
        /// The provider's own error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other failure of the server or the provider.
    #[error("update failed: {detail}")]
    Server {
        /// What failed.
        detail: String,
        /// The provider's own error, if any.
        #[source]
        source: Option<BoxError>,
    },
}

/// `pub fn` constructors of [`ProviderError`] variants without a source,
/// each argument given to the field of its name: `name(field, …) -> Variant;`
/// after the constructor's doc.
macro_rules! without_source {
    ($($(#[$doc:meta])* $name:ident($($field:ident),+) -> $variant:ident;)+) => {
        $(
            $(#[$doc])*
            pub fn $name($($field: impl Into<String>),+) -> Self {
                Self::$variant { $($field: $field.into(),)+ source: None }
            }
        )+
    };
}

impl ProviderError {
    without_source! {
        /// [`ProviderError::InvalidCredential`] without a source.
        ///
        /// ```
        /// let err = dns_verify::ProviderError::invalid_credential("BADSIG");
        /// assert_eq!(err.to_string(), "credential refused: BADSIG");
        /// ```
        invalid_credential(detail) -> InvalidCredential;

        /// [`ProviderError::PermissionDenied`] without a source.
        ///
        /// ```
        /// assert!(!dns_verify::ProviderError::permission_denied("no Zone.DNS:Edit").is_temporary());
        /// ```
        permission_denied(detail) -> PermissionDenied;

        /// [`ProviderError::AccountTierGate`] without a source.
        ///
        /// ```
        /// let err = dns_verify::ProviderError::account_tier_gate("ACCESS_DENIED");
        /// assert_eq!(err.code(), "provider_account_tier");
        /// ```
        account_tier_gate(detail) -> AccountTierGate;

        /// [`ProviderError::IpNotAllowed`] without a source.
        ///
        /// ```
        /// let err = dns_verify::ProviderError::ip_not_allowed("203.0.113.7", "Invalid request IP");
        /// assert!(err.resolution().contains("203.0.113.7"));
        /// ```
        ip_not_allowed(ip, detail) -> IpNotAllowed;

        /// [`ProviderError::ZoneNotFound`] without a source.
        ///
        /// ```
        /// let err = dns_verify::ProviderError::zone_not_found("example.com");
        /// assert_eq!(err.to_string(), "zone example.com not found at the provider");
        /// ```
        zone_not_found(zone) -> ZoneNotFound;
    }

    /// [`ProviderError::RateLimited`] without a source.
    ///
    /// ```
    /// use std::time::Duration;
    /// let err = dns_verify::ProviderError::rate_limited(Some(Duration::from_secs(30)));
    /// assert!(err.is_temporary());
    /// assert_eq!(err.to_string(), "rate limited by the provider, retry after 30s");
    /// ```
    #[must_use]
    pub fn rate_limited(retry_after: Option<Duration>) -> Self {
        Self::RateLimited { retry_after, source: None }
    }

    without_source! {
        /// [`ProviderError::Unavailable`] without a source.
        ///
        /// ```
        /// assert!(dns_verify::ProviderError::unavailable("timed out").is_temporary());
        /// ```
        unavailable(detail) -> Unavailable;

        /// [`ProviderError::Conflict`] without a source.
        ///
        /// ```
        /// let err = dns_verify::ProviderError::conflict("x.example.com", "a TXT record is there");
        /// assert_eq!(err.code(), "provider_record_conflict");
        /// ```
        conflict(name, detail) -> Conflict;

        /// [`ProviderError::Refused`] without a source.
        ///
        /// ```
        /// let err = dns_verify::ProviderError::refused("REFUSED");
        /// assert!(!err.is_temporary());
        /// ```
        refused(detail) -> Refused;

        /// [`ProviderError::InvalidName`] without a source.
        ///
        /// ```
        /// let err = dns_verify::ProviderError::invalid_name("a..b");
        /// assert_eq!(err.to_string(), "invalid record name \"a..b\"");
        /// ```
        invalid_name(name) -> InvalidName;

        /// [`ProviderError::Server`] without a source.
        ///
        /// ```
        /// let err = dns_verify::ProviderError::server("SERVFAIL");
        /// assert_eq!(err.to_string(), "update failed: SERVFAIL");
        /// ```
        server(detail) -> Server;
    }

    /// The same error with `source` (the provider's own error) attached,
    /// replacing any source it had.
    ///
    /// ```
    /// use std::error::Error as _;
    /// let err = dns_verify::ProviderError::server("HTTP 500")
    ///     .with_source(std::io::Error::other("upstream reset"));
    /// assert!(err.source().is_some());
    /// ```
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        let slot = match &mut self {
            Self::InvalidCredential { source, .. }
            | Self::PermissionDenied { source, .. }
            | Self::AccountTierGate { source, .. }
            | Self::IpNotAllowed { source, .. }
            | Self::ZoneNotFound { source, .. }
            | Self::RateLimited { source, .. }
            | Self::Unavailable { source, .. }
            | Self::Conflict { source, .. }
            | Self::Refused { source, .. }
            | Self::InvalidName { source, .. }
            | Self::Server { source, .. } => source,
        };
        *slot = Some(source.into());
        self
    }

    /// Whether trying again later may succeed without anyone changing
    /// anything ([`Unavailable`](ProviderError::Unavailable),
    /// [`RateLimited`](ProviderError::RateLimited)); the other classes need a
    /// person to fix the credential, the account, the zone or the name.
    ///
    /// ```
    /// use dns_verify::ProviderError;
    /// assert!(ProviderError::unavailable("timeout").is_temporary());
    /// assert!(!ProviderError::invalid_credential("BADKEY").is_temporary());
    /// ```
    #[must_use]
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::RateLimited { .. })
    }

    /// A stable machine-readable code for the class, as an API returns it.
    ///
    /// ```
    /// assert_eq!(dns_verify::ProviderError::zone_not_found("a.example").code(), "provider_zone_not_found");
    /// ```
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidCredential { .. } => "provider_invalid_credential",
            Self::PermissionDenied { .. } => "provider_permission_denied",
            Self::AccountTierGate { .. } => "provider_account_tier",
            Self::IpNotAllowed { .. } => "provider_ip_not_allowed",
            Self::ZoneNotFound { .. } => "provider_zone_not_found",
            Self::RateLimited { .. } => "provider_rate_limited",
            Self::Unavailable { .. } => "provider_unavailable",
            Self::Conflict { .. } => "provider_record_conflict",
            Self::Refused { .. } => "provider_refused",
            Self::InvalidName { .. } => "provider_invalid_name",
            Self::Server { .. } => "provider_error",
        }
    }

    /// What the customer (the owner of the DNS account) should do, in one
    /// sentence.
    ///
    /// ```
    /// let err = dns_verify::ProviderError::account_tier_gate("ACCESS_DENIED");
    /// assert!(err.resolution().contains("10 domains"));
    /// ```
    #[must_use]
    pub fn resolution(&self) -> String {
        match self {
            Self::InvalidCredential { .. } => {
                "The DNS provider refused the credential: check that the API key (and secret) are \
                 copied in full and not revoked or expired, then save the credential again."
                    .to_owned()
            }
            Self::PermissionDenied { .. } => {
                "The credential may not edit this zone's DNS records: give it DNS edit permission on \
                 the zone (for a Cloudflare token: Zone → DNS → Edit, with the zone included in its \
                 resources), then save it again."
                    .to_owned()
            }
            Self::AccountTierGate { .. } => {
                "Your DNS provider does not give this account API access (GoDaddy allows its DNS API \
                 only to accounts with 10 domains or more, or a Discount Domain Club plan): upgrade \
                 the account, move the zone's DNS to another provider, or create the records by hand."
                    .to_owned()
            }
            Self::IpNotAllowed { ip, .. } => format!(
                "Your DNS provider only accepts API calls from allow-listed IP addresses: add {ip} to \
                 the API allow-list (Namecheap: Profile → Tools → API Access → Whitelisted IPs), then \
                 save the credential again."
            ),
            Self::ZoneNotFound { zone, .. } => format!(
                "The zone {zone} is not on this DNS provider account: check the zone name and that the \
                 credential belongs to the account that hosts it."
            ),
            Self::RateLimited { retry_after, .. } => match retry_after {
                Some(d) => format!(
                    "The DNS provider is rate-limiting requests; the records will be written again in \
                     {} s, nothing to do.",
                    d.as_secs()
                ),
                None => "The DNS provider is rate-limiting requests; the records will be written again \
                         later, nothing to do."
                    .to_owned(),
            },
            Self::Unavailable { .. } => {
                "The DNS provider could not be reached; the records will be written again shortly, \
                 nothing to do."
                    .to_owned()
            }
            Self::Conflict { name, .. } => format!(
                "{name} has other records that a CNAME cannot coexist with: delete them at your DNS \
                 provider, then try again."
            ),
            Self::Refused { .. } => {
                "The DNS server refused the update: allow updates of the zone for this key.".to_owned()
            }
            Self::InvalidName { .. } => {
                "The record name is not inside the zone the credential manages: check the zone name."
                    .to_owned()
            }
            Self::Server { .. } => {
                "The DNS provider failed to write the record; it will be tried again. If this persists, \
                 create the records by hand."
                    .to_owned()
            }
        }
    }
}

/// Creates, replaces, deletes and lists records in a zone: the platform's
/// own, or a customer's through a credential they gave.
///
/// Every method is idempotent. A CNAME cannot share its name with other
/// records (RFC 1034 §3.6.2): creating one beside a TXT, or a TXT beside a
/// CNAME, fails with [`ProviderError::Conflict`] rather than being dropped
/// silently the way an RFC 2136 server does.
#[async_trait]
pub trait DnsProvider: Send + Sync {
    /// Adds `record` (beside existing records of the same name and type);
    /// creating a record that is there already changes nothing.
    async fn create(&self, record: &DnsRecord) -> Result<(), ProviderError>;
    /// Deletes exactly `record`; deleting a missing record succeeds.
    async fn delete(&self, record: &DnsRecord) -> Result<(), ProviderError>;

    /// The records at `name` (TXT, CNAME, A and AAAA; a TXT split into
    /// several strings comes back as one value). Also the harmless call that
    /// proves a credential works.
    ///
    /// The default says listing is not supported.
    async fn list(&self, name: &str) -> Result<Vec<DnsRecord>, ProviderError> {
        Err(ProviderError::server(format!("this provider cannot list the records at {name}")))
    }

    /// Makes `record` the only record of its type at its name: the others of
    /// that type are deleted, `record` created (with its TTL).
    ///
    /// The default lists, creates `record`, then deletes the rest.
    async fn replace(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        let existing = self.list(&record.name).await?;
        self.create(record).await?;
        for old in existing.iter().filter(|r| same_type(&r.data, &record.data) && r.data != record.data) {
            self.delete(old).await?;
        }
        Ok(())
    }
}

/// Whether two record data are of the same type.
#[must_use]
pub fn same_type(a: &RecordData, b: &RecordData) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// The [`ProviderError::Conflict`] for creating `record` where `existing`
/// (the records at its name) are, if a CNAME would share a name with other
/// data; `None` when it can be written.
///
/// ```
/// use dns_verify::{DnsRecord, cname_conflict};
/// let txt = DnsRecord::txt("x.example.com", "v");
/// let cname = DnsRecord::cname("x.example.com", "t.example.net");
/// assert!(cname_conflict(&cname, &[txt.clone()]).is_some());
/// assert!(cname_conflict(&cname, &[cname.clone()]).is_none());
/// assert!(cname_conflict(&txt, &[]).is_none());
/// ```
#[must_use]
pub fn cname_conflict(record: &DnsRecord, existing: &[DnsRecord]) -> Option<ProviderError> {
    let is_cname = |d: &RecordData| matches!(d, RecordData::Cname(_));
    let clash = existing
        .iter()
        .find(|r| if is_cname(&record.data) { !is_cname(&r.data) } else { is_cname(&r.data) })?;
    Some(ProviderError::conflict(
        record.name.clone(),
        format!(
            "cannot create {} beside the existing {} record ({:?}): a CNAME cannot share its name with other records",
            record.data.type_name(),
            clash.data.type_name(),
            clash.data
        ),
    ))
}

impl RecordData {
    /// The record type's name: `TXT`, `CNAME`, `A` or `AAAA`.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Txt(_) => "TXT",
            Self::Cname(_) => "CNAME",
            Self::A(_) => "A",
            Self::Aaaa(_) => "AAAA",
        }
    }

    /// The value as text (a CNAME target without its trailing dot).
    #[must_use]
    pub fn value(&self) -> String {
        match self {
            Self::Txt(v) => v.clone(),
            Self::Cname(t) => t.trim_end_matches('.').to_ascii_lowercase(),
            Self::A(ip) => ip.to_string(),
            Self::Aaaa(ip) => ip.to_string(),
        }
    }
}

/// A TXT value as the character-strings of one record: at most 255 bytes
/// each (RFC 1035 §3.3.14), split on character boundaries.
///
/// ```
/// let long = "a".repeat(300);
/// let parts = dns_verify::txt_strings(&long);
/// assert_eq!(parts.iter().map(String::len).collect::<Vec<_>>(), vec![255, 45]);
/// assert_eq!(parts.concat(), long);
/// assert_eq!(dns_verify::txt_strings(""), vec![String::new()]);
/// ```
#[must_use]
pub fn txt_strings(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for ch in value.chars() {
        if current.len() + ch.len_utf8() > 255 {
            out.push(std::mem::take(&mut current));
        }
        current.push(ch);
    }
    out.push(current);
    out
}

/// A provider that keeps records in memory (unit tests, dry runs).
#[derive(Debug, Default)]
pub struct MemoryProvider {
    records: Mutex<BTreeMap<String, Vec<RecordData>>>,
}

impl MemoryProvider {
    /// An empty provider.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The records at `name`.
    #[must_use]
    pub fn records(&self, name: &str) -> Vec<RecordData> {
        let key = name.trim_end_matches('.').to_ascii_lowercase();
        self.records.lock().unwrap_or_else(PoisonError::into_inner).get(&key).cloned().unwrap_or_default()
    }
}

#[async_trait]
impl DnsProvider for MemoryProvider {
    async fn create(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        let key = record.name.trim_end_matches('.').to_ascii_lowercase();
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let at = records.entry(key).or_default();
        let existing: Vec<DnsRecord> = at
            .iter()
            .map(|d| DnsRecord { name: record.name.clone(), ttl: record.ttl, data: d.clone() })
            .collect();
        if let Some(conflict) = cname_conflict(record, &existing) {
            return Err(conflict);
        }
        if !at.contains(&record.data) {
            at.push(record.data.clone());
        }
        Ok(())
    }

    async fn delete(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        let key = record.name.trim_end_matches('.').to_ascii_lowercase();
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = records.get_mut(&key) {
            at.retain(|d| d != &record.data);
        }
        Ok(())
    }

    async fn list(&self, name: &str) -> Result<Vec<DnsRecord>, ProviderError> {
        let key = name.trim_end_matches('.').to_ascii_lowercase();
        Ok(self
            .records(&key)
            .into_iter()
            .map(|data| DnsRecord { name: key.clone(), ttl: 60, data })
            .collect())
    }
}

/// RFC 2136 dynamic updates to a primary server, signed with TSIG
/// (hmac-sha256), through hickory's client.
///
/// ```no_run
/// # async fn demo() -> Result<(), dns_verify::ProviderError> {
/// use dns_verify::{DnsProvider, DnsRecord, Rfc2136Provider};
/// let provider = Rfc2136Provider::new("127.0.0.1:53".parse().unwrap(), "acme.edge.example.net", "key-name", b"secret-bytes".to_vec())?;
/// provider.create(&DnsRecord::txt("x.acme.edge.example.net", "token")).await?;
/// # Ok(()) }
/// ```
pub struct Rfc2136Provider {
    server: SocketAddr,
    zone: Name,
    signer: TSigner,
    timeout: Duration,
}

impl std::fmt::Debug for Rfc2136Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key never appears in logs.
        f.debug_struct("Rfc2136Provider")
            .field("server", &self.server)
            .field("zone", &self.zone)
            .finish_non_exhaustive()
    }
}

impl Rfc2136Provider {
    /// A provider for `zone` on the primary `server`, signing with the TSIG
    /// key `key_name` / `secret` (the raw key bytes, not base64).
    ///
    /// # Errors
    /// [`ProviderError::InvalidName`] for a bad zone or key name.
    pub fn new(
        server: SocketAddr,
        zone: &str,
        key_name: &str,
        secret: Vec<u8>,
    ) -> Result<Self, ProviderError> {
        let zone = fqdn(zone)?;
        let key = fqdn(key_name)?;
        let signer = TSigner::new(secret, TsigAlgorithm::HmacSha256, key, 300)
            .map_err(|e| ProviderError::server(format!("TSIG signer: {e}")).with_source(e))?;
        Ok(Self { server, zone, signer, timeout: Duration::from_secs(5) })
    }

    /// Sets the per-update timeout (default 5 s).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn client(&self) -> Client<TokioRuntimeProvider> {
        let stream = UdpClientStream::builder(self.server, TokioRuntimeProvider::default())
            .with_timeout(Some(self.timeout))
            .with_signer(Some(self.signer.clone()))
            .build();
        let (client, background) = Client::<TokioRuntimeProvider>::from_sender(stream);
        tokio::spawn(background);
        client
    }

    fn record(&self, record: &DnsRecord) -> Result<Record, ProviderError> {
        let name = fqdn(&record.name)?;
        if !self.zone.zone_of(&name) {
            return Err(ProviderError::invalid_name(format!(
                "{} is outside zone {}",
                record.name, self.zone
            )));
        }
        let data = match &record.data {
            RecordData::Txt(v) => RData::TXT(TXT::new(txt_strings(v))),
            RecordData::Cname(t) => RData::CNAME(CNAME(fqdn(t)?)),
            RecordData::A(ip) => RData::A(A(*ip)),
            RecordData::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        };
        Ok(Record::from_rdata(name, record.ttl, data))
    }

    /// The server's response to `exchange` (an update or a query), within
    /// the deadline; no answer in time is [`ProviderError::Unavailable`].
    async fn exchange(
        &self,
        exchange: impl Future<Output = Result<hickory_proto::op::DnsResponse, hickory_net::NetError>>,
    ) -> Result<hickory_proto::op::DnsResponse, ProviderError> {
        tokio::time::timeout(self.timeout + Duration::from_millis(200), exchange)
            .await
            .map_err(|_| {
                ProviderError::unavailable(format!("no answer from {} in {:?}", self.server, self.timeout))
            })?
            .map_err(classify_net_error)
    }

    async fn send(
        &self,
        update: impl Future<Output = Result<hickory_proto::op::DnsResponse, hickory_net::NetError>>,
    ) -> Result<(), ProviderError> {
        let response = self.exchange(update).await?;
        match response.metadata.response_code {
            ResponseCode::NoError => Ok(()),
            code @ (ResponseCode::NotAuth
            | ResponseCode::BADSIG
            | ResponseCode::BADKEY
            | ResponseCode::BADTIME) => Err(ProviderError::invalid_credential(code.to_string())),
            code @ ResponseCode::Refused => Err(ProviderError::refused(code.to_string())),
            code => Err(ProviderError::server(code.to_string())),
        }
    }
}

/// Classes a transport error; the error itself is kept as the source.
fn classify_net_error(e: hickory_net::NetError) -> ProviderError {
    let text = e.to_string();
    let lower = text.to_ascii_lowercase();
    let class = if let hickory_net::NetError::Dns(hickory_net::DnsError::ResponseCode(code)) = &e {
        match code {
            ResponseCode::NotAuth | ResponseCode::BADSIG | ResponseCode::BADKEY | ResponseCode::BADTIME => {
                ProviderError::invalid_credential(text)
            }
            ResponseCode::Refused => ProviderError::refused(text),
            _ => ProviderError::server(text),
        }
    } else if matches!(e, hickory_net::NetError::Timeout) {
        ProviderError::unavailable(text)
    } else if lower.contains("tsig")
        || lower.contains("notauth")
        || lower.contains("badsig")
        || lower.contains("badkey")
    {
        // A response whose TSIG does not verify reaches us as a protocol
        // error with no code of its own: the key is wrong.
        ProviderError::invalid_credential(text)
    } else {
        ProviderError::unavailable(text)
    };
    class.with_source(e)
}

/// A hickory record as ours (TXT strings joined); `None` for other types.
pub(crate) fn record_of(name: &str, r: &Record) -> Option<DnsRecord> {
    let data = match &r.data {
        RData::TXT(txt) => {
            RecordData::Txt(txt.txt_data.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect())
        }
        RData::CNAME(c) => RecordData::Cname(c.0.to_ascii().trim_end_matches('.').to_ascii_lowercase()),
        RData::A(a) => RecordData::A(a.0),
        RData::AAAA(a) => RecordData::Aaaa(a.0),
        _ => return None,
    };
    Some(DnsRecord { name: name.trim_end_matches('.').to_ascii_lowercase(), ttl: r.ttl, data })
}

fn fqdn(name: &str) -> Result<Name, ProviderError> {
    let mut n = Name::from_ascii(name).map_err(|e| ProviderError::invalid_name(name).with_source(e))?;
    n.set_fqdn(true);
    Ok(n)
}

#[async_trait]
impl DnsProvider for Rfc2136Provider {
    async fn create(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        let rr = self.record(record)?;
        // An RFC 2136 server ignores a CNAME added beside other data (and
        // other data beside a CNAME) and still answers NOERROR: look first.
        if let Some(conflict) = cname_conflict(record, &self.list(&record.name).await?) {
            return Err(conflict);
        }
        let mut client = self.client();
        self.send(client.append(rr, self.zone.clone(), false)).await
    }

    async fn list(&self, name: &str) -> Result<Vec<DnsRecord>, ProviderError> {
        let owner = fqdn(name)?;
        if !self.zone.zone_of(&owner) {
            return Err(ProviderError::invalid_name(format!("{name} is outside zone {}", self.zone)));
        }
        let mut client = self.client();
        let mut out = Vec::new();
        for rtype in [RecordType::CNAME, RecordType::TXT, RecordType::A, RecordType::AAAA] {
            let response = self.exchange(client.query(owner.clone(), DNSClass::IN, rtype)).await?;
            match response.metadata.response_code {
                ResponseCode::NoError | ResponseCode::NXDomain => {}
                code => return Err(ProviderError::server(format!("query {name} {rtype}: {code}"))),
            }
            out.extend(
                response
                    .answers
                    .iter()
                    .filter(|r| r.name == owner && r.record_type() == rtype)
                    .filter_map(|r| record_of(name, r)),
            );
        }
        Ok(out)
    }

    async fn delete(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        let rr = self.record(record)?;
        let mut client = self.client();
        self.send(client.delete_by_rdata(rr, self.zone.clone())).await
    }
}

/// Why [`wait_for_propagation`] gave up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PropagationError {
    /// Not visible on every authoritative server within the timeout.
    #[error("{name} not visible on every authoritative server after {waited:?} (last: {last})")]
    Timeout {
        /// The record name.
        name: String,
        /// How long we waited.
        waited: Duration,
        /// The last check's outcome.
        last: String,
    },
    /// Only TXT records can be awaited so far.
    #[error("only TXT records can be awaited")]
    Unsupported,
}

/// Polls until every authoritative server returns the TXT `record`
/// (CNAMEs followed), or `timeout` passes.
///
/// # Errors
/// [`PropagationError::Timeout`] with the last outcome.
pub async fn wait_for_propagation(
    checker: &Checker,
    record: &DnsRecord,
    timeout: Duration,
) -> Result<(), PropagationError> {
    let RecordData::Txt(value) = &record.data else { return Err(PropagationError::Unsupported) };
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        let last = match checker.txt_visible_everywhere(&record.name, value).await {
            Ok(true) => return Ok(()),
            Ok(false) => "not yet visible everywhere".to_owned(),
            Err(e @ LookupError::Timeout(_)) | Err(e) => e.to_string(),
        };
        if start.elapsed() + pause > timeout {
            return Err(PropagationError::Timeout {
                name: record.name.clone(),
                waited: start.elapsed(),
                last,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}
