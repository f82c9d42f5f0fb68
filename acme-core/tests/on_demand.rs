//! On-demand TLS through sni-proxy's listener with acme-core's `CertManager`
//! as the `Provision` hook (moved from sni-proxy, which does not depend on
//! acme-core): allowed names are issued at their first handshake, refused
//! ones never reach the issuer.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use testkit as common;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use acme_core::{CertManager, CertRequest, IssueError, Issuer, LocalCaIssuer, ManagerConfig};
use async_trait::async_trait;
use cert_store::{CertBundle, CertStore, MemoryStorage, Prefix, Storage};

/// The tests of this file run one at a time: the memory test measures the
/// whole process, and the others' allocations would count as its growth.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The names of the certificates stored (wherever cert-store keeps them).
async fn stored_names(storage: &Arc<MemoryStorage>) -> Vec<String> {
    CertStore::new(Arc::clone(storage)).names().await.unwrap()
}
use rustls_pki_types::ServerName;
use sni_proxy::{HttpAskPolicy, OnDemand, TlsConfig, plausible_public_name, serve_tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An ask endpoint: 200 `{"allow":true}` for names starting with "ok", 403
/// `{"allow":false}` otherwise; counts requests.
async fn ask_endpoint(asked: Arc<AtomicUsize>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else { continue };
            let asked = Arc::clone(&asked);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                let n = s.read(&mut buf).await.unwrap_or(0);
                asked.fetch_add(1, Ordering::SeqCst);
                let head = String::from_utf8_lossy(&buf[..n]).into_owned();
                let allowed = head.contains("domain=ok")
                    && head.to_ascii_lowercase().contains("x-client-ip: 127.0.0.1");
                let (status, body) = if allowed {
                    ("200 OK", r#"{"allow":true}"#)
                } else {
                    ("403 Forbidden", r#"{"allow":false}"#)
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nCache-Control: max-age=60\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

struct Counting(Arc<dyn Issuer>, AtomicUsize);

#[async_trait]
impl Issuer for Counting {
    async fn issue(&self, request: &CertRequest) -> Result<CertBundle, IssueError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.0.issue(request).await
    }
    fn name(&self) -> String {
        "counting".into()
    }
}

struct Setup {
    proxy: SocketAddr,
    root_pem: String,
    issued: Arc<Counting>,
    asked: Arc<AtomicUsize>,
    storage: Arc<MemoryStorage>,
}

async fn setup(ask_url: Option<String>, limits: Option<Arc<sni_proxy::AskLimits>>) -> Setup {
    let storage = Arc::new(MemoryStorage::new());
    let ca = Arc::new(LocalCaIssuer::new(Arc::new(CertStore::new(Arc::clone(&storage)))));
    let root_pem = ca.root_pem().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ca_side = CaSide { storage, issuer: ca, root_pem, responses: Default::default() };
    serve(ca_side, listener, ask_url, limits).await
}

/// The issuing side of a setup: where certificates come from.
struct CaSide {
    storage: Arc<MemoryStorage>,
    issuer: Arc<dyn Issuer>,
    root_pem: String,
    responses: acme_core::ChallengeResponses,
}

/// Serves on-demand TLS on `listener` with a `CertManager` over `ca`.
async fn serve(
    ca: CaSide,
    listener: tokio::net::TcpListener,
    ask_url: Option<String>,
    limits: Option<Arc<sni_proxy::AskLimits>>,
) -> Setup {
    let CaSide { storage, issuer, root_pem, responses } = ca;
    let issued = Arc::new(Counting(issuer, AtomicUsize::new(0)));
    let manager = Arc::new(CertManager::new(
        Arc::new(CertStore::new(Arc::clone(&storage))),
        issued.clone(),
        ManagerConfig::default(),
    ));
    let asked = Arc::new(AtomicUsize::new(0));
    let url = match ask_url {
        Some(u) => u,
        None => format!("http://{}/internal/ask", ask_endpoint(Arc::clone(&asked)).await),
    };
    let upstream = common::echo_upstream().await;
    let mut on_demand = OnDemand::new(Arc::new(HttpAskPolicy::new(&url).unwrap()), manager.clone());
    on_demand.limits = limits;
    let config =
        TlsConfig::from_source(manager, upstream).with_answers(Arc::new(responses)).with_on_demand(on_demand);
    let proxy = listener.local_addr().unwrap();
    tokio::spawn(serve_tls(listener, config));
    Setup { proxy, root_pem, issued, asked, storage }
}

async fn handshake(s: &Setup, sni: &str) -> std::io::Result<()> {
    let config = common::client_config(&s.root_pem);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(s.proxy).await?;
    let mut tls = connector.connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp).await?;
    tls.write_all(b"hi").await?;
    let mut buf = [0u8; 2];
    tls.read_exact(&mut buf).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_name_is_issued_at_its_first_handshake() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let s = setup(None, None).await;
    handshake(&s, "ok-shop.example.com").await.unwrap();
    handshake(&s, "ok-shop.example.com").await.unwrap();
    assert_eq!(s.issued.1.load(Ordering::SeqCst), 1);
    assert_eq!(s.asked.load(Ordering::SeqCst), 1, "the second handshake needs no ask: the name is loaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_names_never_reach_the_issuer_nor_the_store() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let s = setup(None, None).await;
    assert!(handshake(&s, "evil.example.com").await.is_err());
    assert!(handshake(&s, "evil.example.com").await.is_err());
    assert_eq!(s.asked.load(Ordering::SeqCst), 1, "the refusal is cached per max-age");
    // Names that are not public hostnames are refused before asking.
    for name in ["localhost", "intranet", "printer.local", "ok.internal", "192.0.2.1", "::1", "[::1]"] {
        assert!(!plausible_public_name(name), "{name}");
    }
    // An IP address as the server name: clients send no SNI at all.
    for name in ["localhost", "intranet", "printer.local", "ok.internal", "127.0.0.1"] {
        assert!(handshake(&s, name).await.is_err(), "{name}");
    }
    assert_eq!(s.asked.load(Ordering::SeqCst), 1, "none of them reached the ask policy");
    assert_eq!(s.issued.1.load(Ordering::SeqCst), 0);
    assert!(stored_names(&s.storage).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_endpoint_down_refuses() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let s = setup(Some(format!("http://{closed}/ask")), None).await;
    assert!(handshake(&s, "ok-anything.example.com").await.is_err());
    assert_eq!(s.issued.1.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_handshakes_one_issuance() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let s = Arc::new(setup(None, None).await);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let s = Arc::clone(&s);
            tokio::spawn(async move { handshake(&s, "ok-busy.example.com").await.is_ok() })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() {
            ok += 1;
        }
    }
    assert_eq!(ok, 200);
    assert_eq!(s.issued.1.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asks_are_rate_limited_per_client() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    use sni_proxy::{AskLimits, Rate};
    let limits = AskLimits::new(Rate { burst: 100, per_minute: 100 }, Rate { burst: 2, per_minute: 1 });
    let s = setup(None, Some(Arc::new(limits))).await;
    handshake(&s, "ok-a.example.com").await.unwrap();
    handshake(&s, "ok-b.example.com").await.unwrap();
    // The third new name from the same address is refused before asking.
    assert!(handshake(&s, "ok-c.example.com").await.is_err());
    assert_eq!(s.asked.load(Ordering::SeqCst), 2);
    assert_eq!(s.issued.1.load(Ordering::SeqCst), 2);
    // Names already loaded are served without asking.
    handshake(&s, "ok-a.example.com").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_with_pebble_answers_tls_alpn01_on_the_same_listener() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let dns = testkit::DnsServer::builder()
        .zone(testkit::Zone::new("example.test", "ok-shop A 127.0.0.1\nevil A 127.0.0.1\n"))
        .recursion(true)
        .start()
        .unwrap();
    let pebble = testkit::PebbleServer::builder().dns_server(dns.addr()).start().unwrap();
    let storage = Arc::new(MemoryStorage::new());
    let acme =
        acme_core::AcmeIssuer::new(&pebble.directory_url(), Arc::new(CertStore::new(Arc::clone(&storage))))
            .with_root(pebble.tls_root_path())
            .with_challenge(acme_core::ChallengeKind::TlsAlpn01);
    let responses = acme.responses().clone();
    let root_pem = pebble.issuing_root_pem().unwrap();
    // The CA validates TLS-ALPN-01 on the very listener whose handshake waits.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", pebble.tls_port())).await.unwrap();
    let ca = CaSide { storage, issuer: Arc::new(acme), root_pem, responses };
    let s = serve(ca, listener, None, None).await;
    handshake(&s, "ok-shop.example.test").await.unwrap();
    handshake(&s, "ok-shop.example.test").await.unwrap();
    assert_eq!(s.issued.1.load(Ordering::SeqCst), 1);
    assert!(handshake(&s, "evil.example.test").await.is_err());
    assert_eq!(s.issued.1.load(Ordering::SeqCst), 1, "a refused name never reaches the CA");
    let stored = stored_names(&s.storage).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
}

/// Resident memory of this process, in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refused_names_reaches_neither_ca_nor_store_and_memory_stays_flat() {
    let _one_at_a_time = ONE_AT_A_TIME.lock().await;
    let s = Arc::new(setup(None, None).await);
    let stored_before = s.storage.list(&Prefix::new("").unwrap()).await.unwrap();
    let flood = |from: usize, to: usize| {
        let s = Arc::clone(&s);
        async move {
            let tasks: Vec<_> = (0..50)
                .map(|worker| {
                    let s = Arc::clone(&s);
                    tokio::spawn(async move {
                        for i in (from + worker..to).step_by(50) {
                            // Random-looking names the ask endpoint refuses (no "ok" prefix).
                            let name = format!(
                                "x{:x}.flood.example.com",
                                (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
                            );
                            assert!(handshake(&s, &name).await.is_err());
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    flood(0, 1_000).await; // warm-up: allocator pools, caches
    let before = rss();
    flood(1_000, 10_000).await;
    let grown = rss().saturating_sub(before);
    assert_eq!(s.asked.load(Ordering::SeqCst), 10_000, "each new name asked once");
    assert_eq!(s.issued.1.load(Ordering::SeqCst), 0, "zero requests to the CA");
    assert!(stored_names(&s.storage).await.is_empty(), "zero storage writes");
    assert_eq!(
        s.storage.list(&Prefix::new("").unwrap()).await.unwrap(),
        stored_before,
        "nothing stored at all"
    );
    // 9,000 refused names: bounded growth (the ask cache), not per-connection state.
    eprintln!("9,000 refused unknown names (after 1,000 warm-up): resident memory grew by {grown} bytes");
    assert!(grown < 32 << 20, "resident memory grew by {grown} bytes");
}
