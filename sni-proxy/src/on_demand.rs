//! On-demand TLS: certificates issued during the first handshake for a name,
//! only for names an [`AskPolicy`] allows.

use std::{
    collections::HashMap,
    net::IpAddr,
    num::NonZeroU32,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;

use async_trait::async_trait;
use cert_store::{AskPolicy, CertBundle, Provision};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use tokio::sync::Semaphore;

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

/// `GET <url>?domain=<name>` with the client's address in `X-Client-IP`: 200
/// allows; anything else, a redirect, or no answer within the timeout
/// refuses (fail closed). Answers are cached per `Cache-Control: max-age`.
pub struct HttpAskPolicy {
    url: String,
    timeout: Duration,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    cache: Mutex<HashMap<String, (bool, Instant)>>,
}

impl std::fmt::Debug for HttpAskPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpAskPolicy").field("url", &self.url).finish_non_exhaustive()
    }
}

impl HttpAskPolicy {
    /// Asks `url` (an `http://` endpoint) with a 2 s timeout.
    #[must_use]
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            timeout: Duration::from_secs(2),
            client: Client::builder(TokioExecutor::new()).build_http(),
            cache: Mutex::default(),
        }
    }

    /// Sets the timeout (a slower answer refuses).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn cached(&self, name: &str) -> Option<bool> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.get(name).filter(|(_, until)| *until > Instant::now()).map(|(allow, _)| *allow)
    }
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
        let separator = if self.url.contains('?') { '&' } else { '?' };
        let uri = format!("{}{separator}domain={name}", self.url);
        let Ok(request) =
            hyper::Request::get(uri).header("X-Client-IP", client.to_string()).body(Empty::new())
        else {
            return false;
        };
        let response = match tokio::time::timeout(self.timeout, self.client.request(request)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(%name, error = %e, "ask endpoint unreachable: refusing");
                return false;
            }
            Err(_) => {
                tracing::warn!(%name, "ask endpoint timed out: refusing");
                return false;
            }
        };
        let allow = response.status() == hyper::StatusCode::OK;
        if let Some(age) = max_age(response.headers()) {
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

/// On-demand issuance for the TLS listener: plausibility check, then the
/// policy, then a bounded number of issuances at once (each name once,
/// however many handshakes wait for it: the manager is single-flight).
#[derive(Clone)]
pub struct OnDemand {
    /// Who decides.
    pub policy: Arc<dyn AskPolicy>,
    /// Who issues.
    pub provision: Arc<dyn Provision>,
    /// Issuances pending at once.
    pub pending: Arc<Semaphore>,
    /// How long a handshake may wait for its certificate.
    pub timeout: Duration,
    /// Rate limits on asking about unknown names (none by default).
    pub limits: Option<Arc<AskLimits>>,
}

impl std::fmt::Debug for OnDemand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnDemand").field("timeout", &self.timeout).finish_non_exhaustive()
    }
}

impl OnDemand {
    /// Up to 64 pending issuances, 60 s per handshake.
    #[must_use]
    pub fn new(policy: Arc<dyn AskPolicy>, provision: Arc<dyn Provision>) -> Self {
        Self {
            policy,
            provision,
            pending: Arc::new(Semaphore::new(64)),
            timeout: Duration::from_secs(60),
            limits: None,
        }
    }

    /// The certificate for `name`, if allowed and issued in time.
    pub async fn obtain(&self, name: &str, client: IpAddr) -> Option<Arc<CertBundle>> {
        if !plausible_public_name(name) {
            tracing::info!(%name, %client, "on-demand refused: not a public hostname");
            return None;
        }
        if let Some(limits) = &self.limits
            && !limits.allow(client)
        {
            tracing::info!(%name, %client, "on-demand refused: ask rate limit");
            return None;
        }
        if !self.policy.allow(name, client).await {
            tracing::info!(%name, %client, "on-demand refused by the ask policy");
            return None;
        }
        let _permit = self.pending.acquire().await.ok()?;
        match tokio::time::timeout(self.timeout, self.provision.provision(name)).await {
            Ok(Ok(bundle)) => Some(bundle),
            Ok(Err(e)) => {
                let error = &e as &(dyn std::error::Error + 'static);
                tracing::warn!(%name, error, temporary = e.is_temporary(), "on-demand issuance failed");
                None
            }
            Err(_) => {
                tracing::info!(%name, timeout = ?self.timeout, "on-demand issuance did not finish in time");
                None
            }
        }
    }
}
