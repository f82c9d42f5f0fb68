//! On-demand TLS without a CA: the ask answer (`"allow": true` in a 2xx
//! JSON body, bodiless 2xx only when configured, HTTPS endpoints with an
//! extra root), the refused-names cache under a flood of unknown names, and
//! the wait for an issuance permit inside the handshake's deadline.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use common::{CertRequest, TestCa};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject};
use sni_proxy::{
    AskPolicy, AskRefusal, AskUrlError, CertBundle, CertSource, HttpAskPolicy, OnDemand, Provision,
    ProvisionError, RefusedNames, TlsConfig, async_trait, serve_tls,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// Reads one request head from `s` and answers `status` with `body`.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, status: &str, body: &str) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(response.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// A plain-HTTP ask endpoint answering every request alike; counts requests.
async fn http_endpoint(status: &'static str, body: &'static str) -> (String, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    let addr = testkit::tcp_server(move |s| {
        counter.fetch_add(1, Ordering::SeqCst);
        answer(s, status, body)
    })
    .await;
    (format!("http://{addr}/internal/ask"), asked)
}

/// An HTTPS ask endpoint (rustls, a leaf for 127.0.0.1 from `ca`) answering
/// `200 {"allow":true}`.
async fn https_endpoint(ca: &TestCa) -> SocketAddr {
    let (chain_pem, key_pem) = ca.leaf_pem(&["127.0.0.1"]);
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(chain_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    testkit::tcp_server(move |tcp| {
        let acceptor = acceptor.clone();
        async move {
            if let Ok(tls) = acceptor.accept(tcp).await {
                answer(tls, "200 OK", r#"{"allow":true}"#).await;
            }
        }
    })
    .await
}

/// Issues from a test CA and counts the calls.
struct CountingProvision {
    ca: TestCa,
    calls: AtomicUsize,
}

impl CountingProvision {
    fn new() -> Arc<Self> {
        Arc::new(Self { ca: TestCa::new(), calls: AtomicUsize::new(0) })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Provision for CountingProvision {
    async fn provision(&self, name: &str) -> Result<Arc<CertBundle>, ProvisionError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.ca
            .issue(&CertRequest::new([name]))
            .await
            .map(Arc::new)
            .map_err(|e| ProvisionError::Permanent { name: name.to_owned(), source: Box::new(e) })
    }
}

/// `policy` behind an `OnDemand` issuing through a counting provision:
/// (certificate obtained?, provision calls).
async fn obtain_with(policy: HttpAskPolicy, name: &str) -> (bool, usize) {
    let provision = CountingProvision::new();
    let on_demand = OnDemand::new(Arc::new(policy), provision.clone());
    let obtained = on_demand.obtain(name, CLIENT).await.is_some();
    (obtained, provision.calls())
}

#[tokio::test]
async fn allow_false_in_a_200_refuses_and_nothing_is_issued() {
    let (url, asked) = http_endpoint("200 OK", r#"{"allow":false}"#).await;
    let (obtained, issued) = obtain_with(HttpAskPolicy::new(&url).unwrap(), "shop.example.com").await;
    assert!(!obtained);
    assert_eq!(issued, 0, "a refused name never reaches Provision");
    assert_eq!(asked.load(Ordering::SeqCst), 1);
    let refusal = HttpAskPolicy::new(&url).unwrap().check("shop.example.com", CLIENT).await.unwrap_err();
    assert!(matches!(refusal, AskRefusal::Denied { .. }), "{refusal:?}");
}

#[tokio::test]
async fn allow_true_in_a_200_allows() {
    let (url, _) = http_endpoint("200 OK", r#"{"allow":true}"#).await;
    let (obtained, issued) = obtain_with(HttpAskPolicy::new(&url).unwrap(), "shop.example.com").await;
    assert!(obtained);
    assert_eq!(issued, 1);
}

#[tokio::test]
async fn an_empty_200_refuses_unless_bodiless_answers_are_allowed() {
    let (url, _) = http_endpoint("200 OK", "").await;
    let (obtained, issued) = obtain_with(HttpAskPolicy::new(&url).unwrap(), "shop.example.com").await;
    assert!(!obtained);
    assert_eq!(issued, 0);
    let refusal = HttpAskPolicy::new(&url).unwrap().check("shop.example.com", CLIENT).await.unwrap_err();
    assert!(matches!(refusal, AskRefusal::Bodiless { .. }), "{refusal:?}");
    let caddy_style = HttpAskPolicy::new(&url).unwrap().allow_bodiless_2xx(true);
    let (obtained, issued) = obtain_with(caddy_style, "shop.example.com").await;
    assert!(obtained);
    assert_eq!(issued, 1);
}

#[tokio::test]
async fn other_answers_refuse() {
    for (status, body) in [
        ("403 Forbidden", r#"{"allow":true}"#),
        ("500 Internal Server Error", ""),
        ("302 Found", ""),
        ("200 OK", "allow"),
        ("200 OK", r#"{"allow":"true"}"#),
        ("200 OK", "[true]"),
    ] {
        let (url, _) = http_endpoint(status, body).await;
        let policy = HttpAskPolicy::new(&url).unwrap().allow_bodiless_2xx(true);
        assert!(!policy.allow("shop.example.com", CLIENT).await, "{status} {body}");
    }
    // No answer within the timeout.
    let silent = testkit::tcp_server(|s| async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(s);
    })
    .await;
    let policy =
        HttpAskPolicy::new(&format!("http://{silent}/ask")).unwrap().with_timeout(Duration::from_millis(200));
    let refusal = policy.check("shop.example.com", CLIENT).await.unwrap_err();
    assert!(matches!(refusal, AskRefusal::Timeout { .. }), "{refusal:?}");
}

#[tokio::test]
async fn the_name_asked_about_cannot_add_query_parameters() {
    let seen = Arc::new(Mutex::new(String::new()));
    let head = Arc::clone(&seen);
    let addr = testkit::tcp_server(move |mut s| {
        let head = Arc::clone(&head);
        async move {
            let mut buf = vec![0u8; 2048];
            let n = s.read(&mut buf).await.unwrap_or(0);
            *head.lock().unwrap() =
                String::from_utf8_lossy(&buf[..n]).lines().next().unwrap_or_default().to_owned();
            let body = r#"{"allow":true}"#;
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(response.as_bytes()).await;
        }
    })
    .await;
    let policy = HttpAskPolicy::new(&format!("http://{addr}/ask?token=t")).unwrap();
    assert!(policy.allow("shop.example.com&allow=1", CLIENT).await);
    assert_eq!(*seen.lock().unwrap(), "GET /ask?token=t&domain=shop.example.com%26allow%3D1 HTTP/1.1");
}

#[test]
fn ask_urls_are_validated_when_the_policy_is_made() {
    assert!(HttpAskPolicy::new("http://127.0.0.1:8080/internal/ask").is_ok());
    assert!(HttpAskPolicy::new("https://cp.example.com/ask?token=x").is_ok());
    assert!(matches!(HttpAskPolicy::new("ftp://cp.example.com/ask"), Err(AskUrlError::Scheme { .. })));
    assert!(matches!(HttpAskPolicy::new("/internal/ask"), Err(AskUrlError::Scheme { .. })));
    assert!(matches!(HttpAskPolicy::new("http://exa mple.com/"), Err(AskUrlError::Invalid { .. })));
    assert!(HttpAskPolicy::new("http:///ask").is_err());
    let error = HttpAskPolicy::new("ftp://cp.example.com/ask").unwrap_err();
    assert!(error.to_string().contains("ftp://cp.example.com/ask"), "the error names the URL: {error}");
}

/// A writer collecting everything logged, for the assertions on causes.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn an_https_ask_endpoint_is_trusted_through_the_extra_root_only() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    let _logging = tracing::subscriber::set_default(subscriber);

    let ca = TestCa::new();
    let addr = https_endpoint(&ca).await;
    let url = format!("https://{addr}/internal/ask");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("control-plane-ca.pem");
    std::fs::write(&root, ca.root()).unwrap();

    // Trusted through the extra root (a PEM file): allowed, issued.
    let trusted = HttpAskPolicy::new(&url).unwrap().with_extra_root(root.as_path()).unwrap();
    let (obtained, issued) = obtain_with(trusted, "shop.example.com").await;
    assert!(obtained, "logs:\n{}", logs.text());
    assert_eq!(issued, 1);
    // The same root as DER.
    let der = CertificateDer::from_pem_slice(ca.root().as_bytes()).unwrap();
    let trusted = HttpAskPolicy::new(&url).unwrap().with_extra_root(der).unwrap();
    assert!(trusted.allow("shop.example.com", CLIENT).await);

    // Without it: refused, and the cause names the certificate problem.
    let untrusted = HttpAskPolicy::new(&url).unwrap();
    let refusal = untrusted.check("shop.example.com", CLIENT).await.unwrap_err();
    let mut cause = refusal.to_string();
    let mut source = std::error::Error::source(&refusal);
    while let Some(s) = source {
        cause = format!("{cause}: {s}");
        source = s.source();
    }
    assert!(matches!(refusal, AskRefusal::Unreachable { .. }), "{refusal:?}");
    assert!(cause.contains("UnknownIssuer"), "{cause}");
    let (obtained, issued) = obtain_with(untrusted, "shop.example.com").await;
    assert!(!obtained);
    assert_eq!(issued, 0);
    let logged = logs.text();
    let line = logged.lines().find(|l| l.contains("no usable ask answer")).unwrap_or_default();
    assert!(line.contains("invalid peer certificate") && line.contains("UnknownIssuer"), "logs:\n{logged}");

    // Unusable extra roots are typed errors.
    let missing = HttpAskPolicy::new(&url).unwrap().with_extra_root(dir.path().join("none.pem").as_path());
    assert!(matches!(missing, Err(sni_proxy::AskRootError::Read { .. })), "{missing:?}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let empty = HttpAskPolicy::new(&url).unwrap().with_extra_root(empty.as_path());
    assert!(matches!(empty, Err(sni_proxy::AskRootError::Empty { .. })), "{empty:?}");
}

/// Counts reads per name; holds no certificate.
#[derive(Default)]
struct CountingSource(Mutex<HashMap<String, usize>>);

#[async_trait]
impl CertSource for CountingSource {
    async fn certificate(&self, server_name: &str) -> Option<Arc<CertBundle>> {
        *self.0.lock().unwrap().entry(server_name.to_owned()).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(1)).await; // a storage read takes time
        None
    }
}

/// Counts asks per name; refuses every name.
#[derive(Default)]
struct CountingPolicy(Mutex<HashMap<String, usize>>);

#[async_trait]
impl AskPolicy for CountingPolicy {
    async fn allow(&self, name: &str, _client: IpAddr) -> bool {
        *self.0.lock().unwrap().entry(name.to_owned()).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(2)).await; // an HTTP round trip takes time
        false
    }
}

fn totals(counts: &Mutex<HashMap<String, usize>>) -> (usize, usize, usize) {
    let counts = counts.lock().unwrap();
    (counts.len(), counts.values().sum(), counts.values().copied().max().unwrap_or(0))
}

/// A TLS client handshake for `sni`; `Ok` when a certificate was served.
async fn handshake(proxy: SocketAddr, root_pem: &str, sni: &str) -> std::io::Result<()> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(common::client_config(root_pem)));
    let tcp = tokio::net::TcpStream::connect(proxy).await?;
    connector.connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unknown_names_reads_the_store_and_asks_once_per_name() {
    // The defaults an embedder gets: AskLimits::default(), RefusedNames::default().
    let asks = flood(true).await;
    assert!(asks <= sni_proxy::AskLimits::DEFAULT_PER_CLIENT.burst as usize + 5, "{asks}");
    // Without limits every name is asked about, still once.
    assert_eq!(flood(false).await, 1_000);
}

/// 2,000 handshakes for 1,000 unknown names, each twice, against a proxy
/// whose store has none of them and whose policy refuses them all; returns
/// how many asks there were.
async fn flood(default_limits: bool) -> usize {
    const NAMES: usize = 1_000;
    const WORKERS: usize = 32;
    let source = Arc::new(CountingSource::default());
    let policy = Arc::new(CountingPolicy::default());
    let provision = CountingProvision::new();
    let mut on_demand = OnDemand::new(policy.clone(), provision.clone());
    if !default_limits {
        on_demand = on_demand.with_limits(None);
    }
    let refused = Arc::clone(&on_demand.refused);
    let upstream = common::echo_upstream().await;
    let config =
        TlsConfig::from_source(source.clone() as Arc<dyn CertSource>, upstream).with_on_demand(on_demand);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    tokio::spawn(serve_tls(listener, config));

    // Each name twice, the two handshakes next to each other in the queue:
    // often at the same time (shared pass), otherwise one after the other
    // (the refused-names cache).
    let queue: Arc<Vec<String>> =
        Arc::new((0..NAMES * 2).map(|i| format!("u{:x}.flood.example.com", (i / 2) * 7919)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let root_pem = Arc::new(provision.ca.root().to_owned());
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (queue, next, root_pem) = (Arc::clone(&queue), Arc::clone(&next), Arc::clone(&root_pem));
            tokio::spawn(async move {
                let mut served = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(name) = queue.get(i) else { return served };
                    if handshake(proxy, &root_pem, name).await.is_ok() {
                        served += 1;
                    }
                }
            })
        })
        .collect();
    let mut served = 0;
    for w in workers {
        served += w.await.unwrap();
    }
    let took = started.elapsed();
    let (read_names, reads, max_reads) = totals(&source.0);
    let (asked_names, asks, max_asks) = totals(&policy.0);
    println!(
        "{} handshakes for {NAMES} unknown names in {took:?} (ask limits: {}): {reads} storage reads \
         ({read_names} names, at most {max_reads} per name), {asks} asks ({asked_names} names, at most \
         {max_asks} per name), {} issuances, {} names remembered as refused",
        NAMES * 2,
        if default_limits { "default" } else { "none" },
        provision.calls(),
        refused.len(),
    );
    assert_eq!(served, 0);
    assert_eq!(provision.calls(), 0);
    assert!(max_reads <= 1, "the store was read {max_reads} times for one name");
    assert!(reads <= NAMES);
    assert!(max_asks <= 1, "the policy was asked {max_asks} times for one name");
    assert!(asks <= NAMES);
    assert!(refused.len() <= NAMES);
    asks
}

#[tokio::test]
async fn refused_names_are_forgotten_after_their_ttl_and_bounded_in_number() {
    let refused = RefusedNames::new(100, Duration::from_millis(200));
    for i in 0..1_000 {
        refused.insert(&format!("n{i}.example.com"));
    }
    assert_eq!(refused.len(), 100, "oldest entries make room");
    assert!(refused.contains("n999.example.com"));
    assert!(!refused.contains("n0.example.com"));
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(!refused.contains("n999.example.com"), "expired");
    refused.insert("again.example.com");
    assert!(refused.contains("again.example.com"));
    assert_eq!(refused.len(), 1, "expired entries made room");
}

/// Allows every name.
struct AllowAll;

#[async_trait]
impl AskPolicy for AllowAll {
    async fn allow(&self, _name: &str, _client: IpAddr) -> bool {
        true
    }
}

/// Takes `hold` to issue.
struct SlowProvision {
    hold: Duration,
    calls: AtomicUsize,
}

#[async_trait]
impl Provision for SlowProvision {
    async fn provision(&self, name: &str) -> Result<Arc<CertBundle>, ProvisionError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.hold).await;
        Err(ProvisionError::Temporary { name: name.to_owned(), source: "slow CA".into() })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_for_an_issuance_permit_counts_against_the_handshake_deadline() {
    let provision = Arc::new(SlowProvision { hold: Duration::from_secs(10), calls: AtomicUsize::new(0) });
    let on_demand = OnDemand::new(Arc::new(AllowAll), provision.clone())
        .with_max_pending(1)
        .with_timeout(Duration::from_millis(300));
    // A handshake with all the time in the world takes the only permit.
    let first = {
        let on_demand = on_demand.clone().with_timeout(Duration::from_secs(60));
        tokio::spawn(async move { on_demand.obtain("first.example.com", CLIENT).await.is_some() })
    };
    tokio::time::sleep(Duration::from_millis(50)).await; // the first holds the only permit
    let started = Instant::now();
    assert!(on_demand.obtain("second.example.com", CLIENT).await.is_none());
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(2), "waited {waited:?} for a permit, past the 300 ms deadline");
    assert_eq!(provision.calls.load(Ordering::SeqCst), 1, "the second never got a permit");
    first.abort();
}
