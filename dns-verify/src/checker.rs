//! The [`Checker`]: asks every authoritative server, follows CNAMEs, judges.

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, ResponseCode},
    rr::{Name, RData, RecordType},
};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use crate::{
    Expectation, Hostname, ProxyRanges, RecordReport, Requirements, SanReport, ServerAnswer,
    evaluate::{AnswerEnd, Observation, aggregate, judge},
    query::{LookupError, Querier},
};

/// The longest CNAME chain followed.
pub const MAX_CNAME_CHAIN: usize = 8;

/// Where the authoritative servers of a name are.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Authorities {
    /// Always these servers (tests, or a platform that knows its customers' DNS hosts).
    Fixed(Vec<SocketAddr>),
    /// Found per zone: SOA/NS walk through a recursive `resolver`, then the
    /// NS hosts' addresses, on `port` (53 in production).
    Discover {
        /// A recursive resolver used only to find the authorities.
        resolver: SocketAddr,
        /// The port of the authoritative servers.
        port: u16,
    },
}

impl Authorities {
    /// [`Authorities::Fixed`] from anything that yields addresses.
    pub fn fixed(servers: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self::Fixed(servers.into_iter().collect())
    }
}

/// How long a discovered zone → servers mapping is reused.
const AUTHORITY_CACHE_TTL: Duration = Duration::from_secs(300);

/// Checks DNS records against the authoritative servers. Cheap to clone and
/// share: clones share sockets, the authority cache and the concurrency bound.
///
/// ```no_run
/// # async fn demo() {
/// use std::time::Duration;
/// use dns_verify::{Authorities, Checker, Hostname, Requirements};
/// let checker = Checker::builder()
///     .authorities(Authorities::Discover { resolver: "127.0.0.53:53".parse().unwrap(), port: 53 })
///     .timeout(Duration::from_secs(2))
///     .build();
/// let req = Requirements::delegating_to("acme.edge.example.net").routing_cname("edge.example.net");
/// let host = Hostname::parse("shop.customer.com").unwrap();
/// for san in checker.check_hosts(&req, &[(host, Some("token".into()))]).await {
///     for r in san.records { println!("{} {} {:?} — {}", r.name, r.record_type, r.status, r.fix); }
/// }
/// # }
/// ```
#[derive(Clone)]
pub struct Checker {
    querier: Querier,
    authorities: Authorities,
    proxies: Arc<ProxyRanges>,
    permits: Arc<Semaphore>,
    zone_cache: Arc<Mutex<ZoneCache>>,
}

/// Zone → (when found, its authoritative servers).
type ZoneCache = HashMap<Name, (Instant, Vec<SocketAddr>)>;

impl std::fmt::Debug for Checker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checker").field("authorities", &self.authorities).finish_non_exhaustive()
    }
}

/// Builder for a [`Checker`].
#[derive(Debug)]
pub struct CheckerBuilder {
    authorities: Authorities,
    timeout: Duration,
    proxies: ProxyRanges,
    max_concurrency: usize,
}

impl CheckerBuilder {
    /// Where the authoritative servers are (default: discover through 127.0.0.1:53).
    #[must_use]
    pub fn authorities(mut self, authorities: Authorities) -> Self {
        self.authorities = authorities;
        self
    }

    /// Per-query timeout (default 2 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// CDN proxy ranges that make an answer `Proxied` (default: Cloudflare's).
    #[must_use]
    pub fn proxies(mut self, proxies: ProxyRanges) -> Self {
        self.proxies = proxies;
        self
    }

    /// Queries in flight at once across all checks (default 256).
    #[must_use]
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// The checker.
    #[must_use]
    pub fn build(self) -> Checker {
        Checker {
            querier: Querier::new(self.timeout),
            authorities: self.authorities,
            proxies: Arc::new(self.proxies),
            permits: Arc::new(Semaphore::new(self.max_concurrency)),
            zone_cache: Arc::default(),
        }
    }
}

/// `name` as an absolute name (answers carry absolute owner names).
fn absolute(name: &str) -> Result<Name, hickory_proto::ProtoError> {
    let mut n = Name::from_ascii(name)?;
    n.set_fqdn(true);
    Ok(n)
}

/// Reads one server's answer to `current`/`rtype`, following CNAMEs inside
/// it: the observation when the answer settles it, `None` when the chain
/// leaves this answer (then `current` is the name to ask about next).
/// Pure: no I/O, so it is fuzzed on arbitrary messages.
fn walk_answer(
    message: &Message,
    current: &mut Name,
    rtype: RecordType,
    chain: &mut Vec<String>,
    seen: &mut HashSet<Name>,
    stop_at: Option<&str>,
) -> Option<Observation> {
    let start = current.clone();
    loop {
        let values: Vec<String> = message
            .answers
            .iter()
            .filter(|r| r.name == *current && r.record_type() == rtype)
            .filter_map(|r| value_of(&r.data))
            .collect();
        if !values.is_empty() {
            return Some(Observation::Answer { chain: chain.clone(), values, end: AnswerEnd::Records });
        }
        let next = message.answers.iter().find_map(|r| match &r.data {
            RData::CNAME(c) if r.name == *current => Some(c.0.clone()),
            _ => None,
        });
        let Some(target) = next else { break };
        chain.push(display(&target));
        if stop_at.is_some_and(|s| s.trim_end_matches('.').eq_ignore_ascii_case(&display(&target))) {
            return Some(Observation::Answer {
                chain: chain.clone(),
                values: Vec::new(),
                end: AnswerEnd::Records,
            });
        }
        if !seen.insert(target.clone()) {
            return Some(Observation::Answer {
                chain: chain.clone(),
                values: Vec::new(),
                end: AnswerEnd::CnameLoop,
            });
        }
        if chain.len() > MAX_CNAME_CHAIN {
            return Some(Observation::Answer {
                chain: chain.clone(),
                values: Vec::new(),
                end: AnswerEnd::ChainTooLong,
            });
        }
        *current = target;
    }
    let definitive = *current == start
        || message.metadata.response_code == ResponseCode::NXDomain
        || message.authorities.iter().any(|r| r.record_type() == RecordType::SOA);
    if definitive {
        let end = if message.metadata.response_code == ResponseCode::NXDomain {
            AnswerEnd::NxDomain
        } else {
            AnswerEnd::NoData
        };
        return Some(Observation::Answer { chain: chain.clone(), values: Vec::new(), end });
    }
    None
}

/// How dns-verify reads a raw DNS response (wire format) to a question for
/// `name`/`rtype` (`"TXT"`, `"CNAME"`, `"A"` …): the observation, `Ok(None)`
/// when a CNAME chain leaves the answer (another server would be asked), an
/// error for bytes that are not a DNS message or an unknown name/type.
/// Used by the fuzz targets; the checker reads its answers the same way.
///
/// # Errors
/// A description of what could not be decoded.
pub fn interpret_response(bytes: &[u8], name: &str, rtype: &str) -> Result<Option<Observation>, String> {
    let message = Message::from_vec(bytes).map_err(|e| e.to_string())?;
    let mut current = Name::from_utf8(name).map_err(|e| e.to_string())?;
    let rtype: RecordType = rtype.parse().map_err(|e| format!("{e:?}"))?;
    let (mut chain, mut seen) = (Vec::new(), HashSet::from([current.clone()]));
    Ok(walk_answer(&message, &mut current, rtype, &mut chain, &mut seen, None))
}

fn display(name: &Name) -> String {
    name.to_ascii().trim_end_matches('.').to_ascii_lowercase()
}

fn value_of(data: &RData) -> Option<String> {
    match data {
        RData::TXT(txt) => {
            Some(txt.txt_data.iter().map(|s| String::from_utf8_lossy(s).into_owned()).collect())
        }
        RData::A(a) => Some(a.0.to_string()),
        RData::AAAA(a) => Some(a.0.to_string()),
        RData::CNAME(c) => Some(display(&c.0)),
        _ => None,
    }
}

impl Checker {
    /// A builder with the defaults.
    #[must_use]
    pub fn builder() -> CheckerBuilder {
        CheckerBuilder {
            authorities: Authorities::Discover { resolver: SocketAddr::from(([127, 0, 0, 1], 53)), port: 53 },
            timeout: Duration::from_secs(2),
            proxies: ProxyRanges::cloudflare(),
            max_concurrency: 256,
        }
    }

    /// Checks every SAN of `hosts` (each with its ownership token, if any)
    /// against `requirements`, grouped per SAN.
    pub async fn check_hosts(
        &self,
        requirements: &Requirements,
        hosts: &[(Hostname, Option<String>)],
    ) -> Vec<SanReport> {
        let expectations: Vec<Expectation> =
            hosts.iter().flat_map(|(h, token)| requirements.for_host(h, token.as_deref())).collect();
        SanReport::group(self.check(&expectations).await)
    }

    /// Checks each expectation on every authoritative server, concurrently
    /// (bounded by the builder's `max_concurrency`), in input order.
    pub async fn check(&self, expectations: &[Expectation]) -> Vec<RecordReport> {
        /// Expectations per task: large batches are spread over the runtime's
        /// worker threads, small ones stay on the caller's task.
        const BATCH: usize = 512;
        if expectations.len() <= BATCH {
            let reports =
                futures_util::future::join_all(expectations.iter().map(|e| self.check_one(e))).await;
            return crate::metrics::counted(reports);
        }
        let tasks: Vec<_> = expectations
            .chunks(BATCH)
            .map(|chunk| {
                let (checker, chunk) = (self.clone(), chunk.to_vec());
                tokio::spawn(async move {
                    futures_util::future::join_all(chunk.iter().map(|e| checker.check_one(e))).await
                })
            })
            .collect();
        let mut out = Vec::with_capacity(expectations.len());
        for (task, chunk) in tasks.into_iter().zip(expectations.chunks(BATCH)) {
            match task.await {
                Ok(reports) => out.extend(reports),
                Err(join) => out.extend(chunk.iter().map(|e| {
                    aggregate(e, Vec::new(), OffsetDateTime::now_utc()).with_detail(&join.to_string())
                })),
            }
        }
        crate::metrics::counted(out)
    }

    /// Checks one expectation.
    pub async fn check_one(&self, expectation: &Expectation) -> RecordReport {
        let checked_at = OffsetDateTime::now_utc();
        let name = match absolute(&expectation.record_name()) {
            Ok(n) => n,
            Err(e) => {
                return aggregate(expectation, Vec::new(), checked_at)
                    .with_detail(&format!("invalid name: {e}"));
            }
        };
        let servers = match self.servers_for(&name).await {
            Ok(s) => s,
            Err(e) => {
                let failed = ServerAnswer {
                    server: SocketAddr::from(([0, 0, 0, 0], 0)),
                    status: crate::RecordStatus::LookupFailed,
                    observed: Vec::new(),
                    detail: Some(e.to_string()),
                };
                return aggregate(expectation, vec![failed], checked_at);
            }
        };
        let rtype = match expectation {
            Expectation::Routing { .. } => RecordType::A,
            _ => RecordType::TXT,
        };
        // Reaching the expected CNAME target is enough: the delegation target's
        // own records (the challenge TXT) exist only while a challenge runs.
        let stop_at = match expectation {
            Expectation::AcmeDelegation { target, .. } => Some(target.as_str()),
            Expectation::Routing { cname, .. } => cname.as_deref(),
            Expectation::OwnershipTxt { .. } => None,
        };
        let answers = futures_util::future::join_all(servers.iter().map(|server| {
            let name = name.clone();
            async move {
                let mut observation = self.observe(*server, &name, rtype, stop_at).await;
                // Routing: no A record at the end of the chain → try AAAA.
                if rtype == RecordType::A
                    && let Observation::Answer { chain, end: AnswerEnd::NoData, .. } = &observation
                {
                    let last = chain.last().and_then(|c| absolute(c).ok()).unwrap_or_else(|| name.clone());
                    if let Observation::Answer { values, end: AnswerEnd::Records, .. } =
                        self.observe(*server, &last, RecordType::AAAA, stop_at).await
                    {
                        observation =
                            Observation::Answer { chain: chain.clone(), values, end: AnswerEnd::Records };
                    }
                }
                // `_acme-challenge` with neither TXT nor CNAME: addresses there
                // are a proxied, flattened CNAME when they are a CDN's.
                if matches!(expectation, Expectation::AcmeDelegation { .. })
                    && matches!(&observation, Observation::Answer { chain, end: AnswerEnd::NoData, .. } if chain.is_empty())
                    && let Some(addresses) = self.addresses_at(*server, &name).await
                {
                    observation =
                        Observation::Answer { chain: Vec::new(), values: addresses, end: AnswerEnd::Addresses };
                }
                let (status, observed, detail) = judge(expectation, &observation, &self.proxies);
                ServerAnswer { server: *server, status, observed, detail }
            }
        }))
        .await;
        aggregate(expectation, answers, checked_at)
    }

    /// The A (else AAAA) records `server` holds at `name` itself, if any.
    async fn addresses_at(&self, server: SocketAddr, name: &Name) -> Option<Vec<String>> {
        for rtype in [RecordType::A, RecordType::AAAA] {
            let Ok(message) = self.query(server, name, rtype, false).await else { continue };
            let values: Vec<String> = message
                .answers
                .iter()
                .filter(|r| r.name == *name && r.record_type() == rtype)
                .filter_map(|r| value_of(&r.data))
                .collect();
            if !values.is_empty() {
                return Some(values);
            }
        }
        None
    }

    /// Whether every authoritative server of `name` returns a TXT record
    /// with exactly `value` (CNAMEs followed).
    pub async fn txt_visible_everywhere(&self, name: &str, value: &str) -> Result<bool, LookupError> {
        let per_server = self.txt_values(name).await?;
        Ok(per_server.iter().all(|(_, values)| values.iter().any(|v| v == value)))
    }

    /// The TXT values each authoritative server returns for `name` (CNAMEs
    /// followed), per server.
    ///
    /// # Errors
    /// When the authorities cannot be found or a server fails to answer.
    pub async fn txt_values(&self, name: &str) -> Result<Vec<(SocketAddr, Vec<String>)>, LookupError> {
        let name = absolute(name).map_err(|e| LookupError::no_authority(e.to_string()).with_source(e))?;
        let mut out = Vec::new();
        for server in self.servers_for(&name).await? {
            match self.observe(server, &name, RecordType::TXT, None).await {
                Observation::Answer { values, .. } => out.push((server, values)),
                Observation::Failed(reason) => return Err(LookupError::network(reason)),
            }
        }
        Ok(out)
    }

    async fn query(
        &self,
        server: SocketAddr,
        name: &Name,
        rtype: RecordType,
        rd: bool,
    ) -> Result<Message, LookupError> {
        let _permit =
            self.permits.acquire().await.map_err(|e| LookupError::network(e.to_string()).with_source(e))?;
        self.querier.query(server, name, rtype, rd).await
    }

    /// Follows `name`/`rtype` through CNAMEs, starting at `server`; stops
    /// early when the chain reaches `stop_at`.
    async fn observe(
        &self,
        server: SocketAddr,
        name: &Name,
        rtype: RecordType,
        stop_at: Option<&str>,
    ) -> Observation {
        let mut chain: Vec<String> = Vec::new();
        let mut seen: HashSet<Name> = HashSet::from([name.clone()]);
        let mut current = name.clone();
        let mut server = server;
        // A failure once the chain has left the first name keeps the hops
        // seen so far: a first hop that is not the expected one is wrong,
        // whatever the servers further down do.
        let failed = |chain: &[String], reason: String| {
            if chain.is_empty() {
                Observation::Failed(reason)
            } else {
                Observation::Answer {
                    chain: chain.to_vec(),
                    values: Vec::new(),
                    end: AnswerEnd::Unresolved(reason),
                }
            }
        };
        loop {
            let message = match self.query(server, &current, rtype, false).await {
                Ok(m) => m,
                Err(e) => return failed(&chain, e.to_string()),
            };
            if let Some(done) = walk_answer(&message, &mut current, rtype, &mut chain, &mut seen, stop_at) {
                return done;
            }
            // The chain left this server's answer: ask the target's authorities,
            // staying on the same server when it is one of them.
            match self.servers_for(&current).await {
                Ok(servers) if servers.contains(&server) => {}
                Ok(servers) if !servers.is_empty() => server = servers[0],
                Ok(_) => return failed(&chain, format!("no authoritative server for {current}")),
                Err(e) => return failed(&chain, e.to_string()),
            }
        }
    }

    /// The authoritative servers for `name`.
    async fn servers_for(&self, name: &Name) -> Result<Vec<SocketAddr>, LookupError> {
        match &self.authorities {
            Authorities::Fixed(servers) => Ok(servers.clone()),
            Authorities::Discover { resolver, port } => self.discover(*resolver, *port, name).await,
        }
    }

    async fn discover(
        &self,
        resolver: SocketAddr,
        port: u16,
        name: &Name,
    ) -> Result<Vec<SocketAddr>, LookupError> {
        let zone = self.zone_of(resolver, name).await?;
        if let Some((at, servers)) = self.zone_cache.lock().unwrap_or_else(PoisonError::into_inner).get(&zone)
            && at.elapsed() < AUTHORITY_CACHE_TTL
        {
            return Ok(servers.clone());
        }
        let ns = self.query(resolver, &zone, RecordType::NS, true).await?;
        let hosts: Vec<Name> = ns
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::NS(n) => Some(n.0.clone()),
                _ => None,
            })
            .collect();
        let mut servers = Vec::new();
        for host in hosts {
            for rtype in [RecordType::A, RecordType::AAAA] {
                if let Ok(m) = self.query(resolver, &host, rtype, true).await {
                    servers.extend(m.answers.iter().filter_map(|r| match &r.data {
                        RData::A(a) => Some(SocketAddr::new(IpAddr::V4(a.0), port)),
                        RData::AAAA(a) => Some(SocketAddr::new(IpAddr::V6(a.0), port)),
                        _ => None,
                    }));
                }
            }
        }
        servers.sort();
        servers.dedup();
        if servers.is_empty() {
            return Err(LookupError::no_authority(format!("no NS addresses for {zone}")));
        }
        self.zone_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(zone, (Instant::now(), servers.clone()));
        Ok(servers)
    }

    /// The zone that holds `name`: the owner of the SOA the resolver returns
    /// (in the answer for an apex, in the authority section otherwise).
    async fn zone_of(&self, resolver: SocketAddr, name: &Name) -> Result<Name, LookupError> {
        let mut candidate = name.clone();
        loop {
            // A resolver chases a CNAME at `candidate`: the SOA it then
            // returns (or the SERVFAIL when the target's servers fail) is the
            // target's. Only an SOA at or above `candidate` names its zone;
            // an alias (a CNAME never sits at a zone apex) is looked up above.
            let m = match self.query(resolver, &candidate, RecordType::SOA, true).await {
                Ok(m) => m,
                Err(e) if self.is_alias(resolver, &candidate).await => {
                    tracing::debug!(name = %candidate, error = %e, "alias whose target fails: zone looked up above");
                    candidate = candidate.base_name();
                    continue;
                }
                Err(e) => return Err(e),
            };
            let soa_owner = m
                .answers
                .iter()
                .chain(m.authorities.iter())
                .filter(|r| r.record_type() == RecordType::SOA)
                .map(|r| r.name.clone())
                .find(|owner| owner.zone_of(&candidate));
            if let Some(zone) = soa_owner {
                return Ok(zone);
            }
            if candidate.is_root() {
                return Err(LookupError::no_authority(format!("no SOA above {name}")));
            }
            candidate = candidate.base_name();
        }
    }
}

impl Checker {
    /// Whether `name` is a CNAME, asked for the CNAME itself (not chased).
    async fn is_alias(&self, resolver: SocketAddr, name: &Name) -> bool {
        self.query(resolver, name, RecordType::CNAME, true)
            .await
            .is_ok_and(|m| m.answers.iter().any(|r| r.name == *name && r.record_type() == RecordType::CNAME))
    }
}

impl RecordReport {
    fn with_detail(mut self, detail: &str) -> Self {
        self.fix = format!("{} ({detail})", self.fix);
        self
    }
}
