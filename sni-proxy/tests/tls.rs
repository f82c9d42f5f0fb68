//! The TLS listener with real clients: rustls, openssl s_client, silent
//! connections (pebble validating TLS-ALPN-01 through it is in acme-core's
//! `serving` tests: sni-proxy does not depend on an issuer).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::{net::SocketAddr, process::Command, sync::Arc, time::Duration};

use common::{CertRequest, TestCa};
use rustls_pki_types::ServerName;
use sni_proxy::{Route, SniResolver, TlsConfig, serve_tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Target {
    addr: SocketAddr,
    root_pem: String,
}

async fn proxy(handshake_timeout: Duration) -> Target {
    let ca = TestCa::new();
    let resolver = Arc::new(SniResolver::new());
    for names in [vec!["shop.example.com"], vec!["*.wild.example.com"]] {
        resolver.insert_bundle(&ca.issue(&CertRequest::new(names)).await.unwrap()).unwrap();
    }
    let mut config = TlsConfig::new(resolver, common::echo_upstream().await);
    config.handshake_timeout = handshake_timeout;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_tls(listener, config));
    Target { addr, root_pem: ca.root_pem().await.unwrap() }
}

async fn rustls_echo(p: &Target, sni: &str) -> std::io::Result<Vec<u8>> {
    let config = common::client_config(&p.root_pem);
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(p.addr).await?;
    let mut tls = connector.connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp).await?;
    tls.write_all(b"ping through the proxy").await?;
    let mut buf = vec![0u8; 22];
    tls.read_exact(&mut buf).await?;
    Ok(buf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminates_by_sni_and_forwards_bytes_both_ways() {
    let p = proxy(Duration::from_secs(10)).await;
    assert_eq!(rustls_echo(&p, "shop.example.com").await.unwrap(), b"ping through the proxy");
    assert_eq!(rustls_echo(&p, "a.wild.example.com").await.unwrap(), b"ping through the proxy");
    assert!(rustls_echo(&p, "a.b.wild.example.com").await.is_err(), "one wildcard level only");
    assert!(rustls_echo(&p, "unknown.example.com").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_s_client_verifies_the_chain() {
    let p = proxy(Duration::from_secs(10)).await;
    let dir = std::env::temp_dir().join(format!("sni-root-{}.pem", std::process::id()));
    std::fs::write(&dir, &p.root_pem).unwrap();
    let addr = p.addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &addr,
                "-servername",
                "shop.example.com",
                "-verify_return_error",
                "-CAfile",
            ])
            .arg(&dir)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_are_closed_by_the_handshake_timeout() {
    let p = proxy(Duration::from_millis(300)).await;
    let mut silent = Vec::new();
    for _ in 0..1000 {
        silent.push(tokio::net::TcpStream::connect(p.addr).await.unwrap());
    }
    // A well-behaved client is still served while they hang around.
    assert_eq!(rustls_echo(&p, "shop.example.com").await.unwrap(), b"ping through the proxy");
    for mut s in silent {
        let mut buf = [0u8; 1];
        // The proxy closes them: EOF (or a reset), not a hang.
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
            .await
            .expect("closed by the proxy");
        assert!(matches!(n, Ok(0) | Err(_)));
    }
}

/// A TLS echo server with its own CA: what a passthrough backend looks like.
async fn tls_backend(name: &str) -> (SocketAddr, String) {
    let ca = TestCa::new();
    let bundle = ca.issue(&CertRequest::new([name])).await.unwrap();
    let key = sni_proxy::certified_key(&bundle).unwrap();
    #[derive(Debug)]
    struct One(Arc<rustls::sign::CertifiedKey>);
    impl rustls::server::ResolvesServerCert for One {
        fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
            Some(Arc::clone(&self.0))
        }
    }
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(One(key)));
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { continue };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    let (mut r, mut w) = tokio::io::split(tls);
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            });
        }
    });
    (addr, ca.root_pem().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_reaches_the_backend_whose_certificate_the_client_sees() {
    let (backend, backend_root) = tls_backend("pass.example.com").await;
    let ca = TestCa::new();
    let resolver = Arc::new(SniResolver::new());
    resolver.insert_bundle(&ca.issue(&CertRequest::new(["shop.example.com"])).await.unwrap()).unwrap();
    let config = TlsConfig::new(resolver, common::echo_upstream().await);
    config.routes.set("pass.example.com", Route::Passthrough(backend));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_tls(listener, config));
    // Trusting only the backend's root: the proxy's certificate would fail.
    let through = Target { addr, root_pem: backend_root };
    assert_eq!(rustls_echo(&through, "pass.example.com").await.unwrap(), b"ping through the proxy");
    assert!(
        rustls_echo(&through, "shop.example.com").await.is_err(),
        "terminated names use the proxy's own CA"
    );
    let terminated = Target { addr, root_pem: ca.root_pem().await.unwrap() };
    assert_eq!(rustls_echo(&terminated, "shop.example.com").await.unwrap(), b"ping through the proxy");
}

/// A TCP upstream that answers each read with the bytes uppercased.
async fn shouting_upstream() -> SocketAddr {
    testkit::tcp_server(|mut s| async move {
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = s.read(&mut buf).await {
            buf[..n].make_ascii_uppercase();
            if s.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_pick_the_upstream_by_sni_and_change_while_serving() {
    let (backend, backend_root) = tls_backend("a.pass.example.com").await;
    let ca = TestCa::new();
    let resolver = Arc::new(SniResolver::new());
    let bundle = ca.issue(&CertRequest::new(["shop.example.com", "api.example.com"])).await.unwrap();
    resolver.insert_bundle(&bundle).unwrap();
    let config = TlsConfig::new(resolver, common::echo_upstream().await);
    let routes = Arc::clone(&config.routes);
    routes.set("api.example.com", Route::Terminate(shouting_upstream().await));
    routes.set("*.pass.example.com", Route::Passthrough(backend));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_tls(listener, config));
    let ours = Target { addr, root_pem: ca.root_pem().await.unwrap() };
    assert_eq!(rustls_echo(&ours, "shop.example.com").await.unwrap(), b"ping through the proxy");
    assert_eq!(rustls_echo(&ours, "api.example.com").await.unwrap(), b"PING THROUGH THE PROXY");
    let passed = Target { addr, root_pem: backend_root };
    assert_eq!(rustls_echo(&passed, "a.pass.example.com").await.unwrap(), b"ping through the proxy");
    // Routes change under a running listener.
    routes.remove("api.example.com");
    assert_eq!(rustls_echo(&ours, "api.example.com").await.unwrap(), b"ping through the proxy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_stops_accepting_and_drains() {
    let ca = TestCa::new();
    let resolver = Arc::new(SniResolver::new());
    resolver.insert_bundle(&ca.issue(&CertRequest::new(["shop.example.com"])).await.unwrap()).unwrap();
    let config = TlsConfig::new(resolver, common::echo_upstream().await);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(sni_proxy::serve_tls_until(
        listener,
        config,
        async move {
            let _ = stopped.await;
        },
        Duration::from_secs(30),
    ));
    let p = Target { addr, root_pem: ca.root_pem().await.unwrap() };

    // A long connection in flight.
    let client = common::client_config(&p.root_pem);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut long = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(ServerName::try_from("shop.example.com").unwrap(), tcp)
        .await
        .unwrap();
    long.write_all(b"1").await.unwrap();
    let mut one = [0u8; 1];
    long.read_exact(&mut one).await.unwrap();

    stop.send(()).unwrap();
    // No new connections once the listener is closed…
    let mut refused = false;
    for _ in 0..100 {
        if rustls_echo(&p, "shop.example.com").await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "new connections are refused after shutdown");
    // …while the one in flight keeps working until it ends.
    long.write_all(b"2").await.unwrap();
    long.read_exact(&mut one).await.unwrap();
    assert_eq!(&one, b"2");
    assert!(!server.is_finished(), "draining waits for the open connection");
    drop(long);
    assert_eq!(server.await.unwrap(), 0, "drained with nothing left open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let ca = TestCa::new();
    let resolver = Arc::new(SniResolver::new());
    resolver.insert_bundle(&ca.issue(&CertRequest::new(["shop.example.com"])).await.unwrap()).unwrap();
    let mut config = TlsConfig::new(resolver, common::echo_upstream().await);
    config.idle_timeout = Duration::from_millis(200);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_tls(listener, config));
    let client = common::client_config(ca.root_pem().await.unwrap());
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(ServerName::try_from("shop.example.com").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(b"x").await.unwrap();
    let mut buf = [0u8; 1];
    tls.read_exact(&mut buf).await.unwrap();
    // Then silence: the proxy hangs up.
    let closed =
        tokio::time::timeout(Duration::from_secs(30), tls.read(&mut buf)).await.expect("closed by the proxy");
    assert!(matches!(closed, Ok(0) | Err(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_resolve_gets_the_upstream_http_answer_over_verified_tls() {
    let ca = TestCa::new();
    let resolver = Arc::new(SniResolver::new());
    resolver.insert_bundle(&ca.issue(&CertRequest::new(["shop.example.com"])).await.unwrap()).unwrap();
    // An HTTP upstream: testkit's HTTP-01 responder answers 200 for this token.
    let upstream = SocketAddr::from(([127, 0, 0, 1], testkit::free_port().unwrap()));
    testkit::serve_http01(
        upstream,
        Arc::new(|t: String| Box::pin(async move { (t == "hello").then(|| "world".to_owned()) })),
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(serve_tls(listener, TlsConfig::new(resolver, upstream)));
    let root = std::env::temp_dir().join(format!("curl-root-{}.pem", std::process::id()));
    std::fs::write(&root, ca.root_pem().await.unwrap()).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args([
                "-sS",
                "--http1.1",
                "--resolve",
                &format!("shop.example.com:{port}:127.0.0.1"),
                "--cacert",
            ])
            .arg(&root)
            .arg(format!("https://shop.example.com:{port}/.well-known/acme-challenge/hello"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "world");
}

/// The serial of the certificate a fresh connection for `sni` is shown.
async fn served_serial(addr: SocketAddr, root_pem: &str, sni: &str) -> String {
    let client = common::client_config(root_pem);
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
        .await
        .unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    hex_serial(cert.raw_serial())
}

fn hex_serial(raw: &[u8]) -> String {
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_a_certificate_keeps_long_connections_and_serves_the_new_one() {
    let ca = TestCa::new();
    let root = ca.root_pem().await.unwrap();
    let resolver = Arc::new(SniResolver::new());
    let first = ca.issue(&CertRequest::new(["swap.example.com"])).await.unwrap();
    resolver.insert_bundle(&first).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = TlsConfig::new(Arc::clone(&resolver), common::echo_upstream().await);
    tokio::spawn(serve_tls(listener, config));
    assert_eq!(served_serial(addr, &root, "swap.example.com").await, first.meta().serial);

    // A long connection on the first certificate.
    let p = Target { addr, root_pem: root.clone() };
    let client = common::client_config(&root);
    let tcp = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let mut long = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(ServerName::try_from("swap.example.com").unwrap(), tcp)
        .await
        .unwrap();

    let second = ca.issue(&CertRequest::new(["swap.example.com"])).await.unwrap();
    resolver.insert_bundle(&second).unwrap();
    assert_eq!(served_serial(addr, &root, "swap.example.com").await, second.meta().serial);
    long.write_all(b"still here").await.unwrap();
    let mut buf = [0u8; 10];
    long.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_full_new_connections_wait_and_open_ones_are_unaffected() {
    let ca = TestCa::new();
    let resolver = Arc::new(SniResolver::new());
    resolver.insert_bundle(&ca.issue(&CertRequest::new(["shop.example.com"])).await.unwrap()).unwrap();
    let mut config = TlsConfig::new(resolver, common::echo_upstream().await);
    config.max_connections = 2;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_tls(listener, config));
    let connector =
        tokio_rustls::TlsConnector::from(Arc::new(common::client_config(ca.root_pem().await.unwrap())));
    let open = |connector: tokio_rustls::TlsConnector| async move {
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        connector.connect(ServerName::try_from("shop.example.com").unwrap(), tcp).await
    };
    let mut first = open(connector.clone()).await.unwrap();
    let mut second = open(connector.clone()).await.unwrap();
    // Full: the third waits in the accept queue (its handshake does not finish)…
    let third = tokio::spawn(open(connector.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!third.is_finished(), "a third connection was served while two were open");
    // …while the open ones keep working.
    for tls in [&mut first, &mut second] {
        tls.write_all(b"still here").await.unwrap();
        let mut buf = [0u8; 10];
        tls.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"still here");
    }
    // A slot frees up: the waiting one is served.
    drop(first);
    let mut third = tokio::time::timeout(Duration::from_secs(30), third).await.unwrap().unwrap().unwrap();
    third.write_all(b"in").await.unwrap();
    let mut buf = [0u8; 2];
    third.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"in");
}

/// The alert a rustls client received, if the handshake ended with one.
fn received_alert(e: &std::io::Error) -> Option<rustls::AlertDescription> {
    match e.get_ref()?.downcast_ref::<rustls::Error>()? {
        rustls::Error::AlertReceived(alert) => Some(*alert),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_we_do_not_serve_get_unrecognized_name() {
    let p = proxy(Duration::from_secs(5)).await;
    let err = rustls_echo(&p, "unknown.example.com").await.unwrap_err();
    assert_eq!(received_alert(&err), Some(rustls::AlertDescription::UnrecognisedName), "{err:?}");
    // Not a single-level wildcard match either.
    let err = rustls_echo(&p, "a.b.wild.example.com").await.unwrap_err();
    assert_eq!(received_alert(&err), Some(rustls::AlertDescription::UnrecognisedName), "{err:?}");
    // The served names still work on the same listener.
    assert_eq!(rustls_echo(&p, "shop.example.com").await.unwrap(), b"ping through the proxy");

    // An empty table and no certificate source: refused the same way (and logged at start).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = TlsConfig::new(Arc::new(SniResolver::new()), common::echo_upstream().await);
    tokio::spawn(serve_tls(listener, config));
    let empty = Target { addr, root_pem: p.root_pem.clone() };
    let err = rustls_echo(&empty, "shop.example.com").await.unwrap_err();
    assert_eq!(received_alert(&err), Some(rustls::AlertDescription::UnrecognisedName), "{err:?}");
}

/// A source that has one certificate and tells its listeners when it changes.
struct OneSource {
    bundle: std::sync::Mutex<Option<Arc<cert_store::CertBundle>>>,
    listeners: std::sync::Mutex<Vec<Arc<dyn sni_proxy::CertListener>>>,
}

#[async_trait::async_trait]
impl sni_proxy::CertSource for OneSource {
    async fn certificate(&self, server_name: &str) -> Option<Arc<cert_store::CertBundle>> {
        let bundle = self.bundle.lock().unwrap().clone()?;
        bundle.meta().names.iter().any(|n| n == server_name).then_some(bundle)
    }
    fn subscribe(&self, listener: Arc<dyn sni_proxy::CertListener>) {
        self.listeners.lock().unwrap().push(listener);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_source_loads_lazily_and_serves_what_the_source_pushes() {
    let ca = TestCa::new();
    let first = Arc::new(ca.issue(&CertRequest::new(["shop.example.com"])).await.unwrap());
    let source = Arc::new(OneSource {
        bundle: std::sync::Mutex::new(Some(Arc::clone(&first))),
        listeners: std::sync::Mutex::default(),
    });
    let config = TlsConfig::from_source(source.clone(), common::echo_upstream().await);
    let resolver = Arc::clone(&config.resolver);
    assert!(resolver.is_empty(), "nothing loaded before a handshake");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_tls(listener, config));
    let root_pem = ca.root_pem().await.unwrap();
    assert_eq!(served_serial(addr, &root_pem, "shop.example.com").await, first.meta().serial);

    // A renewal pushed by the source is served from the next handshake on.
    let second = ca.issue(&CertRequest::new(["shop.example.com"])).await.unwrap();
    for listener in source.listeners.lock().unwrap().iter() {
        listener.updated(&second);
    }
    assert_eq!(served_serial(addr, &root_pem, "shop.example.com").await, second.meta().serial);
    // A removal: gone from the table, and the source no longer has it either.
    *source.bundle.lock().unwrap() = None;
    for listener in source.listeners.lock().unwrap().iter() {
        listener.removed("shop.example.com");
    }
    assert!(resolver.lookup("shop.example.com").is_none());
    let err = rustls_echo(&Target { addr, root_pem }, "shop.example.com").await.unwrap_err();
    assert_eq!(received_alert(&err), Some(rustls::AlertDescription::UnrecognisedName), "{err:?}");
}

/// An echo upstream that counts the connections it accepted.
async fn counting_echo_upstream() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let addr = testkit::tcp_server(move |mut s| {
        counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move {
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        }
    })
    .await;
    (addr, accepted)
}

async fn connect_with_alpn(
    addr: SocketAddr,
    root_pem: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut config = common::client_config(root_pem);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    connector.connect(ServerName::try_from("shop.example.com").unwrap(), tcp).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_clients_reach_the_upstream_only_once_they_speak() {
    use std::sync::atomic::Ordering::SeqCst;
    let ca = TestCa::new();
    let resolver = Arc::new(SniResolver::new());
    resolver.insert_bundle(&ca.issue(&CertRequest::new(["shop.example.com"])).await.unwrap()).unwrap();
    let (upstream, accepted) = counting_echo_upstream().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_tls(listener, TlsConfig::new(resolver, upstream)));
    let root = ca.root_pem().await.unwrap();
    // HTTP clients that only handshake cost the upstream nothing.
    for _ in 0..5 {
        let tls = connect_with_alpn(addr, &root, &[b"http/1.1"]).await;
        drop(tls);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(accepted.load(SeqCst), 0, "no upstream connection for handshake-only HTTP clients");
    // Their first bytes open it, and reach it.
    let mut tls = connect_with_alpn(addr, &root, &[b"h2", b"http/1.1"]).await;
    tls.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 18];
    tls.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf, b"GET / HTTP/1.1\r\n\r\n");
    assert_eq!(accepted.load(SeqCst), 1);
    // Without ALPN the protocol may have the server speak first: connected at once.
    let _silent = connect_with_alpn(addr, &root, &[]).await;
    let start = std::time::Instant::now();
    while accepted.load(SeqCst) < 2 && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(accepted.load(SeqCst), 2, "a client without ALPN gets its upstream before it speaks");
}

/// Connects twice with one resumption-capable client; returns how the second
/// handshake went and the first's cipher suite.
async fn second_handshake(
    addr: SocketAddr,
    root_pem: &str,
) -> (Option<rustls::HandshakeKind>, Option<rustls::CipherSuite>) {
    let config = Arc::new(common::client_config(root_pem));
    let mut kinds = Vec::new();
    let mut suite = None;
    for _ in 0..2 {
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&config));
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut tls =
            connector.connect(ServerName::try_from("shop.example.com").unwrap(), tcp).await.unwrap();
        // An echo round trip: the session tickets arrive before the answer.
        tls.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.unwrap();
        kinds.push(tls.get_ref().1.handshake_kind());
        suite = suite.or_else(|| tls.get_ref().1.negotiated_cipher_suite().map(|s| s.suite()));
    }
    (kinds[1], suite)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stateless_ticket_by_default_none_when_off_and_aes_128_chosen() {
    let ca = TestCa::new();
    let resolver = Arc::new(SniResolver::new());
    resolver.insert_bundle(&ca.issue(&CertRequest::new(["shop.example.com"])).await.unwrap()).unwrap();
    let root = ca.root_pem().await.unwrap();
    let upstream = common::echo_upstream().await;
    let serve = |tickets: usize| {
        let mut config = TlsConfig::new(Arc::clone(&resolver), upstream);
        config.session_tickets = tickets;
        async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(serve_tls(listener, config));
            addr
        }
    };
    assert_eq!(TlsConfig::new(Arc::clone(&resolver), upstream).session_tickets, 1);
    let (kind, suite) = second_handshake(serve(1).await, &root).await;
    assert_eq!(kind, Some(rustls::HandshakeKind::Resumed), "the default ticket resumes");
    // rustls's client lists AES-256-GCM first; the server picks AES-128-GCM.
    assert_eq!(suite, Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256));
    let (kind, _) = second_handshake(serve(0).await, &root).await;
    assert_eq!(kind, Some(rustls::HandshakeKind::Full), "no ticket, no resumption");
}
