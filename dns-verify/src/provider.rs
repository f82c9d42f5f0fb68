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
        Name, RData, Record, TSigner,
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
/// credentials, the zone, the name; retry later), a detail for people, and
/// the provider's own error as the source when there is one.
///
/// A provider of your own builds these with the constructors and attaches its
/// error with [`with_source`](ProviderError::with_source):
///
/// ```
/// use std::error::Error as _;
/// use dns_verify::ProviderError;
/// let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out");
/// let err = ProviderError::unreachable("api.dns.example did not answer").with_source(io);
/// assert!(err.is_temporary());
/// assert_eq!(err.source().unwrap().to_string(), "connect timed out");
/// assert!(matches!(err, ProviderError::Unreachable { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// The credentials (TSIG key, API token) were refused.
    #[error("update not authorised: {detail}")]
    Unauthorized {
        /// What the server said.
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
    /// Timeout or network failure: temporary.
    #[error("DNS server unreachable: {detail}")]
    Unreachable {
        /// What failed.
        detail: String,
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

impl ProviderError {
    /// [`ProviderError::Unauthorized`] without a source.
    ///
    /// ```
    /// let err = dns_verify::ProviderError::unauthorized("BADSIG");
    /// assert_eq!(err.to_string(), "update not authorised: BADSIG");
    /// ```
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::Unauthorized { detail: detail.into(), source: None }
    }

    /// [`ProviderError::Refused`] without a source.
    ///
    /// ```
    /// let err = dns_verify::ProviderError::refused("REFUSED");
    /// assert!(!err.is_temporary());
    /// ```
    pub fn refused(detail: impl Into<String>) -> Self {
        Self::Refused { detail: detail.into(), source: None }
    }

    /// [`ProviderError::InvalidName`] without a source.
    ///
    /// ```
    /// let err = dns_verify::ProviderError::invalid_name("a..b");
    /// assert_eq!(err.to_string(), "invalid record name \"a..b\"");
    /// ```
    pub fn invalid_name(name: impl Into<String>) -> Self {
        Self::InvalidName { name: name.into(), source: None }
    }

    /// [`ProviderError::Unreachable`] without a source.
    ///
    /// ```
    /// assert!(dns_verify::ProviderError::unreachable("timed out").is_temporary());
    /// ```
    pub fn unreachable(detail: impl Into<String>) -> Self {
        Self::Unreachable { detail: detail.into(), source: None }
    }

    /// [`ProviderError::Server`] without a source.
    ///
    /// ```
    /// let err = dns_verify::ProviderError::server("SERVFAIL");
    /// assert_eq!(err.to_string(), "update failed: SERVFAIL");
    /// ```
    pub fn server(detail: impl Into<String>) -> Self {
        Self::Server { detail: detail.into(), source: None }
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
            Self::Unauthorized { source, .. }
            | Self::Refused { source, .. }
            | Self::InvalidName { source, .. }
            | Self::Unreachable { source, .. }
            | Self::Server { source, .. } => source,
        };
        *slot = Some(source.into());
        self
    }

    /// Whether trying again later may succeed (only
    /// [`Unreachable`](ProviderError::Unreachable)); the other classes need a
    /// person to fix credentials, zone or name.
    ///
    /// ```
    /// use dns_verify::ProviderError;
    /// assert!(ProviderError::unreachable("timeout").is_temporary());
    /// assert!(!ProviderError::unauthorized("BADKEY").is_temporary());
    /// ```
    #[must_use]
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}

/// Creates and deletes records in a zone the platform controls.
#[async_trait]
pub trait DnsProvider: Send + Sync {
    /// Adds `record` (beside existing records of the same name and type).
    async fn create(&self, record: &DnsRecord) -> Result<(), ProviderError>;
    /// Deletes exactly `record`; deleting a missing record succeeds.
    async fn delete(&self, record: &DnsRecord) -> Result<(), ProviderError>;
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
            RecordData::Txt(v) => RData::TXT(TXT::new(vec![v.clone()])),
            RecordData::Cname(t) => RData::CNAME(CNAME(fqdn(t)?)),
            RecordData::A(ip) => RData::A(A(*ip)),
            RecordData::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        };
        Ok(Record::from_rdata(name, record.ttl, data))
    }

    async fn send(
        &self,
        update: impl Future<Output = Result<hickory_proto::op::DnsResponse, hickory_net::NetError>>,
    ) -> Result<(), ProviderError> {
        let response = tokio::time::timeout(self.timeout + Duration::from_millis(200), update)
            .await
            .map_err(|_| {
                ProviderError::unreachable(format!("no answer from {} in {:?}", self.server, self.timeout))
            })?
            .map_err(classify_net_error)?;
        match response.metadata.response_code {
            ResponseCode::NoError => Ok(()),
            code @ (ResponseCode::NotAuth
            | ResponseCode::BADSIG
            | ResponseCode::BADKEY
            | ResponseCode::BADTIME) => Err(ProviderError::unauthorized(code.to_string())),
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
                ProviderError::unauthorized(text)
            }
            ResponseCode::Refused => ProviderError::refused(text),
            _ => ProviderError::server(text),
        }
    } else if matches!(e, hickory_net::NetError::Timeout) {
        ProviderError::unreachable(text)
    } else if lower.contains("tsig")
        || lower.contains("notauth")
        || lower.contains("badsig")
        || lower.contains("badkey")
    {
        // A response whose TSIG does not verify reaches us as a protocol
        // error with no code of its own: the key is wrong.
        ProviderError::unauthorized(text)
    } else {
        ProviderError::unreachable(text)
    };
    class.with_source(e)
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
        let mut client = self.client();
        self.send(client.append(rr, self.zone.clone(), false)).await
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
