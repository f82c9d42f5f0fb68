//! On-demand TLS: certificates issued during the first handshake for a name,
//! only for names an [`AskPolicy`] allows.
//!
//! The path of an unknown name (one the resolver does not hold): the
//! [`RefusedNames`] cache first (a name refused within the last minute costs
//! nothing more), then the [`CertSource`] (the store), then
//! [`plausible_public_name`], the [`AskLimits`], the [`AskPolicy`], and
//! [`Provision`] under the issuance permits. Concurrent handshakes for one
//! name share one pass through all of it, and the whole pass — the wait for
//! an issuance permit included — is bounded by [`OnDemand::timeout`].

use std::{
    collections::{HashMap, VecDeque},
    net::IpAddr,
    num::NonZeroU32,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;

use async_trait::async_trait;
use cert_store::{AskPolicy, CertBundle, CertSource, Provision};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{StatusCode, body::Bytes};
use hyper_rustls::HttpsConnector;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use rustls::pki_types::{CertificateDer, pem::PemObject};
use tokio::sync::{OnceCell, Semaphore};

/// Names refused before any policy is asked: IP addresses, `localhost`,
/// single labels, internal suffixes, anything that is not a hostname.
#[must_use]
pub fn plausible_public_name(name: &str) -> bool {
    let Ok(name) = cert_store::hostname::canonical_hostname(name) else { return false };
    if name.starts_with("*.") || !name.contains('.') {
        return false;
    }
    const INTERNAL: [&str; 6] = [".localhost", ".local", ".internal", ".lan", ".home.arpa", ".invalid"];
    name != "localhost" && !INTERNAL.iter().any(|s| name.ends_with(s))
}

/// Why an ask URL was refused by [`HttpAskPolicy::new`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AskUrlError {
    /// Not a URL at all.
    #[error("ask URL {url:?} is not a valid URL")]
    Invalid {
        /// The URL given.
        url: String,
        /// The parser's error.
        #[source]
        source: hyper::http::uri::InvalidUri,
    },
    /// A scheme other than `http` or `https` (or none).
    #[error("ask URL {url:?} must start with http:// or https://")]
    Scheme {
        /// The URL given.
        url: String,
    },
    /// No host to connect to.
    #[error("ask URL {url:?} names no host")]
    NoHost {
        /// The URL given.
        url: String,
    },
}

/// Why an extra root given to [`HttpAskPolicy::with_extra_root`] is unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AskRootError {
    /// The PEM file could not be read or parsed.
    #[error("cannot read root certificates from {}", path.display())]
    Read {
        /// The file given.
        path: PathBuf,
        /// The reader's or parser's error.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// The PEM file holds no certificate.
    #[error("{} holds no certificate", path.display())]
    Empty {
        /// The file given.
        path: PathBuf,
    },
    /// rustls would not take the certificate as a trust anchor.
    #[error("the root certificate is unusable as a trust anchor")]
    Rejected {
        /// rustls's (webpki's) error.
        #[source]
        source: rustls::Error,
    },
}

/// An extra root certificate for HTTPS ask endpoints: a PEM file (every
/// certificate in it is trusted) or one DER certificate.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ExtraRoot {
    /// A PEM file of one or more certificates.
    PemFile(PathBuf),
    /// One certificate, DER.
    Der(CertificateDer<'static>),
}

impl From<PathBuf> for ExtraRoot {
    fn from(path: PathBuf) -> Self {
        Self::PemFile(path)
    }
}

impl From<&Path> for ExtraRoot {
    fn from(path: &Path) -> Self {
        Self::PemFile(path.to_owned())
    }
}

impl From<CertificateDer<'static>> for ExtraRoot {
    fn from(der: CertificateDer<'static>) -> Self {
        Self::Der(der)
    }
}

/// Why [`HttpAskPolicy::check`] refused a name. Every refusal fails closed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AskRefusal {
    /// The endpoint answered 2xx with a JSON body lacking `"allow": true`.
    #[error("the ask endpoint answered {status} without \"allow\": true")]
    Denied {
        /// The status of the answer.
        status: StatusCode,
    },
    /// The endpoint answered with a status other than 2xx (redirects are not followed).
    #[error("the ask endpoint answered {status}")]
    Status {
        /// The status of the answer.
        status: StatusCode,
    },
    /// A 2xx with no body, and bodiless answers are not taken as allowed
    /// (see [`HttpAskPolicy::allow_bodiless_2xx`]).
    #[error(
        "the ask endpoint answered {status} with no body (not an answer unless allow_bodiless_2xx is set)"
    )]
    Bodiless {
        /// The status of the answer.
        status: StatusCode,
    },
    /// The body is not JSON.
    #[error("the ask endpoint's answer ({status}) is not JSON")]
    BadJson {
        /// The status of the answer.
        status: StatusCode,
        /// The JSON parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The body could not be read (or was longer than 64 KiB).
    #[error("cannot read the ask endpoint's answer")]
    Body {
        /// The reader's error.
        #[source]
        source: cert_store::BoxError,
    },
    /// No connection, or the TLS handshake with the endpoint failed (its
    /// certificate is not trusted, has expired, names another host …).
    #[error("the ask endpoint is unreachable")]
    Unreachable {
        /// The client's error; its sources name the cause.
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    /// No complete answer in time.
    #[error("the ask endpoint did not answer within {timeout:?}")]
    Timeout {
        /// The timeout that passed.
        timeout: Duration,
    },
    /// No TLS client could be built (rustls refused the provider).
    #[error("no TLS client for the ask endpoint")]
    Tls {
        /// rustls's error.
        #[source]
        source: rustls::Error,
    },
    /// The name cannot be put in a request URL.
    #[error("cannot build the ask request")]
    Request {
        /// The request builder's error.
        #[source]
        source: hyper::http::Error,
    },
}

/// `e` and each of its sources, joined with `: ` — the whole cause in one log field.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.ends_with(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}

/// The longest ask answer read.
const MAX_ASK_BODY: usize = 64 * 1024;

/// `GET <url>?domain=<name>` with the client's address in `X-Client-IP`.
///
/// Allowed only for a 2xx whose JSON body has `"allow": true`; a 2xx with
/// no body counts as allowed only with
/// [`allow_bodiless_2xx(true)`](Self::allow_bodiless_2xx) (Caddy-style
/// endpoints). Anything else — another status, a redirect, `"allow":
/// false`, a body that is not JSON, no answer within the timeout, an
/// endpoint whose certificate is not trusted — refuses (fail closed), and
/// the cause is logged. Answers are cached per `Cache-Control: max-age`.
///
/// `https://` endpoints are verified against the webpki roots (Mozilla's)
/// plus any [`with_extra_root`](Self::with_extra_root) (a private control
/// plane's CA), with rustls on ring.
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::{path::Path, sync::Arc};
/// use sni_proxy::{HttpAskPolicy, OnDemand, Provision};
///
/// let policy = HttpAskPolicy::new("https://cp.internal.example/internal/ask")?
///     .with_extra_root(Path::new("/etc/edge/control-plane-ca.pem"))?;
/// # let provision: Arc<dyn Provision> = unimplemented!();
/// let on_demand = OnDemand::new(Arc::new(policy), provision);
/// # Ok(()) }
/// ```
pub struct HttpAskPolicy {
    url: String,
    timeout: Duration,
    bodiless: bool,
    roots: rustls::RootCertStore,
    /// An error only if rustls refused the ring provider: then every ask refuses.
    client: Result<AskClient, rustls::Error>,
    cache: Mutex<HashMap<String, (bool, Instant)>>,
}

impl std::fmt::Debug for HttpAskPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAskPolicy")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .field("bodiless_2xx_allows", &self.bodiless)
            .finish_non_exhaustive()
    }
}

/// The client that asks.
type AskClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// An HTTP and HTTPS client trusting `roots`, with rustls on ring.
fn https_client(roots: rustls::RootCertStore) -> Result<AskClient, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

impl HttpAskPolicy {
    /// Asks `url` (`http://` or `https://`, with a host) with a 2 s timeout.
    ///
    /// # Errors
    /// [`AskUrlError`] when `url` is not a URL, has another scheme, or no host.
    pub fn new(url: &str) -> Result<Self, AskUrlError> {
        let uri: hyper::Uri =
            url.parse().map_err(|source| AskUrlError::Invalid { url: url.to_owned(), source })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err(AskUrlError::Scheme { url: url.to_owned() });
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(AskUrlError::NoHost { url: url.to_owned() });
        }
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        Ok(Self {
            url: url.to_owned(),
            timeout: Duration::from_secs(2),
            bodiless: false,
            client: https_client(roots.clone()),
            roots,
            cache: Mutex::default(),
        })
    }

    /// Sets the timeout (a slower answer refuses).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Whether a 2xx with no body allows (default `false`: only
    /// `{"allow": true}` does). Set it for endpoints that answer like
    /// Caddy's `ask`, by status alone.
    #[must_use]
    pub fn allow_bodiless_2xx(mut self, allow: bool) -> Self {
        self.bodiless = allow;
        self
    }

    /// Also trusts `root` for `https://` endpoints (a private control plane's
    /// CA), besides the webpki roots: a PEM file (`PathBuf` or `&Path`, every
    /// certificate in it) or one DER certificate.
    ///
    /// # Errors
    /// [`AskRootError`] when the file cannot be read, holds no certificate,
    /// or a certificate is unusable as a trust anchor.
    pub fn with_extra_root(mut self, root: impl Into<ExtraRoot>) -> Result<Self, AskRootError> {
        let certificates = match root.into() {
            ExtraRoot::Der(der) => vec![der],
            ExtraRoot::PemFile(path) => {
                let read = CertificateDer::pem_file_iter(&path)
                    .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                    .map_err(|source| AskRootError::Read { path: path.clone(), source })?;
                if read.is_empty() {
                    return Err(AskRootError::Empty { path });
                }
                read
            }
        };
        for certificate in certificates {
            self.roots.add(certificate).map_err(|source| AskRootError::Rejected { source })?;
        }
        self.client = https_client(self.roots.clone());
        Ok(self)
    }

    /// The URL asked.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    fn cached(&self, name: &str) -> Option<bool> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.get(name).filter(|(_, until)| *until > Instant::now()).map(|(allow, _)| *allow)
    }

    /// Asks the endpoint now (no cache) whether `name`, asked for by
    /// `client`, may get a certificate: `Ok` only for an allowing answer.
    /// [`AskPolicy::allow`] is this with the `max-age` cache and the
    /// refusal's cause logged.
    ///
    /// # Errors
    /// [`AskRefusal`]: why the answer is "no".
    pub async fn check(&self, name: &str, client: IpAddr) -> Result<(), AskRefusal> {
        self.ask(name, client).await.0
    }

    /// The answer, and for how long it may be cached.
    async fn ask(&self, name: &str, client: IpAddr) -> (Result<(), AskRefusal>, Option<Duration>) {
        let http = match &self.client {
            Ok(http) => http,
            Err(e) => return (Err(AskRefusal::Tls { source: e.clone() }), None),
        };
        let separator = if self.url.contains('?') { '&' } else { '?' };
        let uri = format!("{}{separator}domain={}", self.url, query_value(name));
        let request = match hyper::Request::get(uri)
            .header("X-Client-IP", client.to_string())
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::new())
        {
            Ok(request) => request,
            Err(source) => return (Err(AskRefusal::Request { source }), None),
        };
        let exchange = async {
            let response =
                http.request(request).await.map_err(|source| AskRefusal::Unreachable { source })?;
            let status = response.status();
            let age = max_age(response.headers());
            let body = Limited::new(response.into_body(), MAX_ASK_BODY)
                .collect()
                .await
                .map_err(|source| AskRefusal::Body { source })?
                .to_bytes();
            Ok::<_, AskRefusal>((status, age, body))
        };
        let (status, age, body) = match tokio::time::timeout(self.timeout, exchange).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(refusal)) => return (Err(refusal), None),
            Err(_) => return (Err(AskRefusal::Timeout { timeout: self.timeout }), None),
        };
        (self.judge(status, &body), age)
    }

    /// The decision an answer carries.
    fn judge(&self, status: StatusCode, body: &[u8]) -> Result<(), AskRefusal> {
        if !status.is_success() {
            return Err(AskRefusal::Status { status });
        }
        if body.trim_ascii().is_empty() {
            return if self.bodiless { Ok(()) } else { Err(AskRefusal::Bodiless { status }) };
        }
        let answer: serde_json::Value =
            serde_json::from_slice(body).map_err(|source| AskRefusal::BadJson { status, source })?;
        if answer.get("allow") == Some(&serde_json::Value::Bool(true)) {
            Ok(())
        } else {
            Err(AskRefusal::Denied { status })
        }
    }
}

/// `name` as a query value: hostname characters as they are, anything else
/// percent-encoded (a name handed to the policy directly cannot add
/// parameters of its own).
fn query_value(name: &str) -> String {
    use std::fmt::Write;
    let mut value = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_' | b'*') {
            value.push(char::from(byte));
        } else {
            let _ = write!(value, "%{byte:02X}");
        }
    }
    value
}

fn max_age(headers: &hyper::HeaderMap) -> Option<Duration> {
    let value = headers.get(hyper::header::CACHE_CONTROL)?.to_str().ok()?;
    value
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|s| s.parse::<u64>().ok())
        .map(Duration::from_secs)
}

#[async_trait]
impl AskPolicy for HttpAskPolicy {
    async fn allow(&self, name: &str, client: IpAddr) -> bool {
        if let Some(answer) = self.cached(name) {
            return answer;
        }
        let (answer, age) = self.ask(name, client).await;
        if let Err(refusal) = &answer {
            let cause = chain(refusal);
            match refusal {
                AskRefusal::Denied { .. } | AskRefusal::Status { .. } => {
                    tracing::info!(%name, %client, %cause, "ask endpoint refused");
                }
                _ => {
                    tracing::warn!(%name, %client, url = %self.url, %cause, "no usable ask answer: refusing")
                }
            }
        }
        let allow = answer.is_ok();
        if let Some(age) = age {
            self.cache
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(name.to_owned(), (allow, Instant::now() + age));
        }
        allow
    }
}

/// A token bucket: `burst` at once, refilled at `per_minute`.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Tokens available at once.
    pub burst: u32,
    /// Tokens added per minute (0: never refilled).
    pub per_minute: u32,
}

/// The longest a bucket may take to refill entirely: governor counts time
/// in `u64` nanoseconds (584 years).
const LONGEST_REFILL: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

impl Rate {
    /// This rate as a governor quota (GCRA, equivalent to a token bucket).
    fn quota(self) -> Quota {
        let burst = NonZeroU32::new(self.burst).unwrap_or(NonZeroU32::MIN);
        let longest = LONGEST_REFILL / burst.get();
        let per_token = match self.per_minute {
            0 => longest,
            n => (Duration::from_secs(60) / n).min(longest),
        };
        Quota::with_period(per_token).unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX)).allow_burst(burst)
    }
}

/// Limits on how often unknown names may be asked about: globally and per
/// client address (an abuser's random names cost the policy nothing).
/// Token buckets from the `governor` crate.
pub struct AskLimits {
    per_client: Quota,
    global: DefaultDirectRateLimiter,
    clients: ArcSwap<DefaultKeyedRateLimiter<IpAddr>>,
}

impl std::fmt::Debug for AskLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AskLimits").field("per_client", &self.per_client).finish_non_exhaustive()
    }
}

/// Client addresses remembered by [`AskLimits`] before the table is pruned
/// (and, if every one of them is still limited, reset).
const MAX_TRACKED_CLIENTS: usize = 100_000;

impl AskLimits {
    /// The global rate of [`AskLimits::default`]: 1,000 at once, 6,000 a minute.
    pub const DEFAULT_GLOBAL: Rate = Rate { burst: 1_000, per_minute: 6_000 };
    /// The per-client rate of [`AskLimits::default`]: 250 at once, 120 a minute.
    pub const DEFAULT_PER_CLIENT: Rate = Rate { burst: 250, per_minute: 120 };

    /// Limits with the given global and per-client rates.
    #[must_use]
    pub fn new(global: Rate, per_client: Rate) -> Self {
        let per_client = per_client.quota();
        Self {
            per_client,
            global: governor::RateLimiter::direct(global.quota()),
            clients: ArcSwap::from_pointee(governor::RateLimiter::keyed(per_client)),
        }
    }

    /// Takes a token for `client` (and a global one); `false` when either is empty.
    pub fn allow(&self, client: IpAddr) -> bool {
        let clients = self.clients.load();
        if clients.len() >= MAX_TRACKED_CLIENTS {
            clients.retain_recent();
            if clients.len() >= MAX_TRACKED_CLIENTS {
                self.clients.store(Arc::new(governor::RateLimiter::keyed(self.per_client)));
            }
        }
        self.clients.load().check_key(&client).is_ok() && self.global.check().is_ok()
    }
}

impl Default for AskLimits {
    /// [`DEFAULT_GLOBAL`](Self::DEFAULT_GLOBAL) and
    /// [`DEFAULT_PER_CLIENT`](Self::DEFAULT_PER_CLIENT): room for a burst
    /// of a few hundred new names at once (a customer migrating), while one
    /// address sending random names reaches the ask endpoint twice a second
    /// at most.
    fn default() -> Self {
        Self::new(Self::DEFAULT_GLOBAL, Self::DEFAULT_PER_CLIENT)
    }
}

/// A short, bounded memory of names that were neither served nor allowed:
/// a repeated unknown name costs no storage read and no ask until its entry
/// expires. Oldest entries make room for new ones.
///
/// A name refused for any reason is remembered — not plausible, over the
/// ask limits, refused or unanswered by the policy — so a name the control
/// plane allows later is served on this edge at most `ttl` later (at once
/// when it is issued here: the resolver is asked first).
pub struct RefusedNames {
    capacity: usize,
    ttl: Duration,
    inner: Mutex<RefusedInner>,
}

#[derive(Default)]
struct RefusedInner {
    /// Name → until when it is refused.
    until: HashMap<Arc<str>, Instant>,
    /// Names in the order they were refused (an entry is stale when the
    /// map's instant differs: the name was refused again since).
    order: VecDeque<(Arc<str>, Instant)>,
}

impl std::fmt::Debug for RefusedNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefusedNames")
            .field("capacity", &self.capacity)
            .field("ttl", &self.ttl)
            .field("len", &self.len())
            .finish()
    }
}

impl RefusedNames {
    /// Names kept by [`OnDemand::new`]'s cache.
    pub const DEFAULT_CAPACITY: usize = 10_000;
    /// How long [`OnDemand::new`]'s cache remembers a refusal.
    pub const DEFAULT_TTL: Duration = Duration::from_secs(60);

    /// Remembers up to `capacity` names (0: none) for `ttl` each.
    #[must_use]
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self { capacity, ttl, inner: Mutex::default() }
    }

    /// Whether `name` was refused less than `ttl` ago.
    #[must_use]
    pub fn contains(&self, name: &str) -> bool {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.until.get(name).is_some_and(|until| *until > Instant::now())
    }

    /// Remembers that `name` was refused now.
    pub fn insert(&self, name: &str) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let inner = &mut *inner;
        while let Some((_, until)) = inner.order.front() {
            if *until > now && inner.order.len() < self.capacity {
                break;
            }
            if let Some((old, until)) = inner.order.pop_front()
                && inner.until.get(&old) == Some(&until)
            {
                inner.until.remove(&old);
            }
        }
        let name: Arc<str> = Arc::from(name);
        let until = now + self.ttl;
        inner.until.insert(Arc::clone(&name), until);
        inner.order.push_back((name, until));
    }

    /// Forgets `name` (e.g. it was just allowed elsewhere).
    pub fn remove(&self, name: &str) {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).until.remove(name);
    }

    /// Names remembered (expired ones included until they make room).
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).until.len()
    }

    /// Whether no name is remembered.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for RefusedNames {
    /// [`DEFAULT_CAPACITY`](Self::DEFAULT_CAPACITY) names for
    /// [`DEFAULT_TTL`](Self::DEFAULT_TTL).
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY, Self::DEFAULT_TTL)
    }
}

/// The outcome of one pass for a name, shared by every handshake that
/// waited for it.
type Outcome = Option<Arc<CertBundle>>;

/// Passes in progress, one per name: concurrent handshakes for a name share
/// one storage read, one ask, one issuance.
#[derive(Default)]
struct Flights(Mutex<HashMap<Arc<str>, Arc<OnceCell<Outcome>>>>);

/// A handshake's place in a name's pass; leaving removes the pass once it
/// is done or nobody else waits for it.
struct Seat<'a> {
    flights: &'a Flights,
    name: Arc<str>,
    cell: Arc<OnceCell<Outcome>>,
}

impl Flights {
    fn join(&self, name: &str) -> Seat<'_> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((name, cell)) = map.get_key_value(name) {
            return Seat { flights: self, name: Arc::clone(name), cell: Arc::clone(cell) };
        }
        let (name, cell): (Arc<str>, _) = (Arc::from(name), Arc::new(OnceCell::new()));
        map.insert(Arc::clone(&name), Arc::clone(&cell));
        Seat { flights: self, name, cell }
    }
}

impl Drop for Seat<'_> {
    fn drop(&mut self) {
        let mut map = self.flights.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Seats are only handed out under this lock, so the count cannot grow
        // meanwhile: 2 is the map's and this seat's.
        if map.get(&self.name).is_some_and(|cell| Arc::ptr_eq(cell, &self.cell))
            && (self.cell.initialized() || Arc::strong_count(&self.cell) <= 2)
        {
            map.remove(&self.name);
        }
    }
}

/// On-demand issuance for the TLS listener: the refused-names cache, the
/// certificate source, plausibility, the ask limits, the policy, then a
/// bounded number of issuances at once — each name once, however many
/// handshakes wait for it, all within [`timeout`](Self::timeout).
#[derive(Clone)]
pub struct OnDemand {
    /// Who decides.
    pub policy: Arc<dyn AskPolicy>,
    /// Who issues.
    pub provision: Arc<dyn Provision>,
    /// Issuances pending at once.
    pub pending: Arc<Semaphore>,
    /// How long a handshake may wait for its certificate: the storage read,
    /// the ask, the wait for an issuance permit and the issuance together.
    pub timeout: Duration,
    /// Rate limits on asking about unknown names ([`AskLimits::default`]
    /// with [`OnDemand::new`]; `None`: unlimited).
    pub limits: Option<Arc<AskLimits>>,
    /// Names recently neither served nor allowed ([`RefusedNames::default`]
    /// with [`OnDemand::new`]: 10,000 names for 60 s).
    pub refused: Arc<RefusedNames>,
    flights: Arc<Flights>,
}

impl std::fmt::Debug for OnDemand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnDemand")
            .field("timeout", &self.timeout)
            .field("limits", &self.limits)
            .field("refused", &self.refused)
            .finish_non_exhaustive()
    }
}

impl OnDemand {
    /// Up to 64 pending issuances, 60 s per handshake, [`AskLimits::default`],
    /// [`RefusedNames::default`].
    #[must_use]
    pub fn new(policy: Arc<dyn AskPolicy>, provision: Arc<dyn Provision>) -> Self {
        Self {
            policy,
            provision,
            pending: Arc::new(Semaphore::new(64)),
            timeout: Duration::from_secs(60),
            limits: Some(Arc::new(AskLimits::default())),
            refused: Arc::new(RefusedNames::default()),
            flights: Arc::default(),
        }
    }

    /// Sets the ask limits (`None`: unlimited).
    #[must_use]
    pub fn with_limits(mut self, limits: Option<Arc<AskLimits>>) -> Self {
        self.limits = limits;
        self
    }

    /// Remembers up to `capacity` refused names for `ttl` each (0: none).
    #[must_use]
    pub fn with_refused_cache(mut self, capacity: usize, ttl: Duration) -> Self {
        self.refused = Arc::new(RefusedNames::new(capacity, ttl));
        self
    }

    /// Sets how long a handshake may wait for its certificate.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how many issuances may be pending at once.
    #[must_use]
    pub fn with_max_pending(mut self, pending: usize) -> Self {
        self.pending = Arc::new(Semaphore::new(pending));
        self
    }

    /// The certificate for `name`, if allowed and issued in time (no
    /// certificate source is read first; the TLS listener reads its own).
    pub async fn obtain(&self, name: &str, client: IpAddr) -> Option<Arc<CertBundle>> {
        self.resolve(name, client, None).await
    }

    /// The certificate for `name`: from `source`, else issued if allowed,
    /// within [`timeout`](Self::timeout); `None` at once for a name refused
    /// less than the refused-names TTL ago.
    pub(crate) async fn resolve(
        &self,
        name: &str,
        client: IpAddr,
        source: Option<&Arc<dyn CertSource>>,
    ) -> Option<Arc<CertBundle>> {
        if self.refused.contains(name) {
            tracing::debug!(%name, %client, "on-demand refused: refused recently");
            crate::metrics::on_demand(crate::metrics::decision::REFUSED_RECENTLY);
            return None;
        }
        let seat = self.flights.join(name);
        let pass = seat.cell.get_or_init(|| self.pass(name, client, source));
        match tokio::time::timeout(self.timeout, pass).await {
            Ok(outcome) => outcome.clone(),
            Err(_) => {
                tracing::info!(%name, timeout = ?self.timeout, "on-demand: no certificate in time");
                None
            }
        }
    }

    /// One pass for `name`: the source, then the checks, then the issuance.
    async fn pass(&self, name: &str, client: IpAddr, source: Option<&Arc<dyn CertSource>>) -> Outcome {
        if let Some(source) = source
            && let Some(bundle) = source.certificate(name).await
        {
            return Some(bundle);
        }
        if !self.allowed(name, client).await {
            self.refused.insert(name);
            return None;
        }
        let _permit = self.pending.acquire().await.ok()?;
        match self.provision.provision(name).await {
            Ok(bundle) => Some(bundle),
            Err(e) => {
                let error = &e as &(dyn std::error::Error + 'static);
                tracing::warn!(%name, error, temporary = e.is_temporary(), "on-demand issuance failed");
                None
            }
        }
    }

    /// Plausibility, limits, policy.
    async fn allowed(&self, name: &str, client: IpAddr) -> bool {
        if !plausible_public_name(name) {
            tracing::info!(%name, %client, "on-demand refused: not a public hostname");
            crate::metrics::on_demand(crate::metrics::decision::REFUSED_IMPLAUSIBLE);
            return false;
        }
        if let Some(limits) = &self.limits
            && !limits.allow(client)
        {
            tracing::info!(%name, %client, "on-demand refused: ask rate limit");
            crate::metrics::on_demand(crate::metrics::decision::REFUSED_LIMITS);
            return false;
        }
        let asked = std::time::Instant::now();
        let allowed = self.policy.allow(name, client).await;
        crate::metrics::ask(asked.elapsed(), allowed);
        if !allowed {
            tracing::info!(%name, %client, "on-demand refused by the ask policy");
            crate::metrics::on_demand(crate::metrics::decision::REFUSED_POLICY);
            return false;
        }
        crate::metrics::on_demand(crate::metrics::decision::ALLOWED);
        true
    }
}
