//! acme-core behind sni-proxy: the wiring an embedder uses (moved here from
//! sni-proxy's tests, since sni-proxy does not depend on acme-core).
//! Challenge answers through the listeners with pebble, HTTP-01 answers
//! from the shared store, certificates loaded lazily from a `CertManager`,
//! renewals served at once, and the bind → serve → provision order.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use testkit as common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use acme_core::{
    AcmeIssuer, CertManager, CertRequest, ChallengeKind, ChallengeResponses, ErrorClass, Issuer,
    LocalCaIssuer, ManagerConfig, ManualClock,
};
use cert_store::{CertStore, MemoryStorage, Storage};
use rustls_pki_types::ServerName;
use sni_proxy::{Http80Config, Proxy, SniResolver, TlsConfig, serve_http80, serve_tls};
use testkit::{DnsServer, PebbleServer, Zone};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start(config: Http80Config) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(serve_http80(listener, config));
    port
}

use testkit::curl;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_are_answered_and_everything_else_redirected() {
    let storage = Arc::new(MemoryStorage::new());
    // A token another node published in the shared store.
    storage.put(&acme_core::keys::http01("from-store").unwrap(), b"from-store.thumbprint").await.unwrap();
    let answers = ChallengeResponses::default().with_shared_store(storage);
    let mut config = Http80Config::new(Arc::new(answers));
    config.https_port = 8443;
    let port = start(config).await;
    let base = format!("http://127.0.0.1:{port}");
    let r = curl(&["-H", "Host: shop.example.com", &format!("{base}/.well-known/acme-challenge/from-store")]);
    assert_eq!(r, "from-store.thumbprint\n200 ");
    let r = curl(&["-H", "Host: shop.example.com", &format!("{base}/.well-known/acme-challenge/unknown")]);
    assert!(r.ends_with("404 "), "{r}");
    let r = curl(&["-H", "Host: Shop.Example.com:80", &format!("{base}/cart?item=1")]);
    assert!(r.ends_with("308 https://Shop.Example.com:8443/cart?item=1"), "{r}");
    let r = curl(&["-H", "Host: bad host", &format!("{base}/")]);
    assert!(r.ends_with("400 "), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_validates_http01_through_the_listener() {
    let dns = DnsServer::builder()
        .zone(Zone::new("example.test", "web A 127.0.0.1\n"))
        .recursion(true)
        .start()
        .unwrap();
    let pebble = PebbleServer::builder().dns_server(dns.addr()).start().unwrap();
    let store = Arc::new(CertStore::new(Arc::new(MemoryStorage::new())));
    let acme = AcmeIssuer::new(&pebble.directory_url(), store).with_root(pebble.tls_root_path());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", pebble.http_port())).await.unwrap();
    tokio::spawn(serve_http80(listener, Http80Config::new(Arc::new(acme.responses().clone()))));
    let bundle = acme.issue(&CertRequest::new(["web.example.test"])).await.unwrap();
    assert_eq!(bundle.meta().names, ["web.example.test"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_validates_tls_alpn01_through_the_listener() {
    let dns = testkit::DnsServer::builder()
        .zone(testkit::Zone::new("example.test", "alpn A 127.0.0.1\n"))
        .recursion(true)
        .start()
        .unwrap();
    let pebble = testkit::PebbleServer::builder().dns_server(dns.addr()).start().unwrap();
    let store = Arc::new(CertStore::new(Arc::new(MemoryStorage::new())));
    let acme = AcmeIssuer::new(&pebble.directory_url(), store)
        .with_root(pebble.tls_root_path())
        .with_challenge(ChallengeKind::TlsAlpn01);
    let config = TlsConfig::new(Arc::new(SniResolver::new()), common::echo_upstream().await)
        .with_answers(Arc::new(acme.responses().clone()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", pebble.tls_port())).await.unwrap();
    tokio::spawn(serve_tls(listener, config));
    let bundle = acme.issue(&CertRequest::new(["alpn.example.test"])).await.unwrap();
    assert_eq!(bundle.meta().names, ["alpn.example.test"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_certificates_load_lazily_into_a_bounded_resolver() {
    let storage = Arc::new(MemoryStorage::new());
    let store = Arc::new(CertStore::new(storage));
    let ca = Arc::new(LocalCaIssuer::new(Arc::clone(&store)));
    let root = ca.root_pem().await.unwrap();
    let manager = Arc::new(CertManager::new(store, ca, ManagerConfig::default()));
    let names: Vec<String> = (0..300).map(|i| format!("s{i}.example.com")).collect();
    for n in &names {
        manager.ensure(&CertRequest::new([n.as_str()])).await.unwrap();
    }
    let upstream_addr = common::echo_upstream().await;
    // A fresh proxy: nothing loaded at start, at most ~256 names kept.
    let resolver = Arc::new(SniResolver::with_capacity(256));
    let config = TlsConfig::from_source_with(Arc::clone(&resolver), manager, upstream_addr);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_tls(listener, config));
    assert_eq!(resolver.len(), 0);

    let client = Arc::new(common::client_config(&root));
    for round in 0..2 {
        for n in &names {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let mut tls = tokio_rustls::TlsConnector::from(Arc::clone(&client))
                .connect(ServerName::try_from(n.clone()).unwrap(), tcp)
                .await
                .unwrap_or_else(|e| panic!("round {round}, {n}: {e}"));
            tls.write_all(b"k").await.unwrap();
            let mut b = [0u8; 1];
            tls.read_exact(&mut b).await.unwrap();
        }
        assert!(resolver.len() <= 256, "bounded: {}", resolver.len());
    }
}

async fn order_is_init_listening_provisioning(kind: ChallengeKind) {
    let dns = testkit::DnsServer::builder()
        .zone(testkit::Zone::new("example.test", "early A 127.0.0.1\nready A 127.0.0.1\n"))
        .recursion(true)
        .start()
        .unwrap();
    let pebble = testkit::PebbleServer::builder().dns_server(dns.addr()).start().unwrap();
    let store = Arc::new(CertStore::new(Arc::new(MemoryStorage::new())));
    let acme = AcmeIssuer::new(&pebble.directory_url(), Arc::clone(&store))
        .with_root(pebble.tls_root_path())
        .with_challenge(kind);
    let responses = Arc::new(acme.responses().clone());
    let manager = Arc::new(CertManager::new(store, Arc::new(acme), ManagerConfig::default()));

    // Provisioning before the listeners exist: the CA finds nobody to answer.
    let early = manager.ensure(&CertRequest::new(["early.example.test"])).await.unwrap_err();
    assert_eq!(early.class(), ErrorClass::ValidationFailed, "{early}");

    let order = Arc::new(Mutex::new(Vec::new()));
    order.lock().unwrap().push("init");
    let tls = TlsConfig::from_source(manager.clone(), common::echo_upstream().await)
        .with_answers(responses.clone());
    let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
    let bound = Proxy::new(local(pebble.tls_port()), tls)
        .with_http(local(pebble.http_port()), Http80Config::new(responses))
        .bind()
        .await
        .unwrap();
    order.lock().unwrap().push("listening");
    let (done, result) = tokio::sync::oneshot::channel();
    let provisioning = {
        let (order, manager) = (Arc::clone(&order), Arc::clone(&manager));
        async move {
            order.lock().unwrap().push("provisioning");
            manager.start_background();
            let _ = done.send(manager.ensure(&CertRequest::new(["ready.example.test"])).await);
        }
    };
    let running = bound.serve_then(provisioning);
    let bundle = result.await.unwrap().unwrap();
    assert_eq!(bundle.meta().names, ["ready.example.test"]);
    assert_eq!(*order.lock().unwrap(), ["init", "listening", "provisioning"]);
    assert_eq!(running.shutdown().await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_provisioning_waits_for_the_bound_listeners() {
    order_is_init_listening_provisioning(ChallengeKind::Http01).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_provisioning_waits_for_the_bound_listeners() {
    order_is_init_listening_provisioning(ChallengeKind::TlsAlpn01).await;
}

/// The one call that connects a `CertManager` to the proxy: certificates
/// load at their first handshake, a renewal is served from the next
/// handshake on, a forgotten name is no longer served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manager_connected_with_from_source_serves_renewals_and_forgets() {
    let store = Arc::new(CertStore::new(Arc::new(MemoryStorage::new())));
    let ca = Arc::new(LocalCaIssuer::new(Arc::clone(&store)));
    let root = ca.root_pem().await.unwrap();
    let clock = Arc::new(ManualClock::starting_now());
    let manager = Arc::new(CertManager::builder(Arc::clone(&store), ca).clock(clock.clone()).build());
    let first = manager.ensure(&CertRequest::new(["renew.example.com"])).await.unwrap();

    let config = TlsConfig::from_source(manager.clone(), common::echo_upstream().await);
    let resolver = Arc::clone(&config.resolver);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_tls(listener, config));
    assert_eq!(served_serial(addr, &root, "renew.example.com").await.unwrap(), first.meta().serial);

    clock.advance(time::Duration::days(61));
    manager.maintain().await;
    let renewed = manager.get("renew.example.com").await.unwrap();
    assert_ne!(renewed.meta().serial, first.meta().serial);
    assert_eq!(served_serial(addr, &root, "renew.example.com").await.unwrap(), renewed.meta().serial);

    store.delete("renew.example.com").await.unwrap();
    manager.forget("renew.example.com");
    assert!(resolver.lookup("renew.example.com").is_none());
    let err = served_serial(addr, &root, "renew.example.com").await.unwrap_err();
    let alert = err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()).cloned();
    assert_eq!(
        alert,
        Some(rustls::Error::AlertReceived(rustls::AlertDescription::UnrecognisedName)),
        "{err:?}"
    );
}

/// The serial (hex) of the certificate served for `sni`.
async fn served_serial(addr: SocketAddr, root_pem: &str, sni: &str) -> std::io::Result<String> {
    let client = common::client_config(root_pem);
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
        .await?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    Ok(cert.raw_serial().iter().map(|b| format!("{b:02x}")).collect())
}
