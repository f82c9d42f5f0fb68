//! `Proxy::bind` → `serve_then`: listeners are bound before provisioning
//! starts, proven against pebble (an attempt before binding fails its
//! challenge, the one after succeeds), for HTTP-01 and TLS-ALPN-01.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use acme_core::{AcmeIssuer, CertManager, CertRequest, ChallengeKind, ErrorClass, ManagerConfig};
use cert_store::{CertStore, MemoryStorage};
use sni_proxy::{Http80Config, Proxy, SniResolver, TlsConfig};

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
    let responses = acme.responses().clone();
    let config = ManagerConfig { background_at_start: false, ..ManagerConfig::default() };
    let manager = Arc::new(CertManager::new(store, Arc::new(acme), config));

    // Provisioning before the listeners exist: the CA finds nobody to answer.
    let early = manager.ensure(&CertRequest::new(["early.example.test"])).await.unwrap_err();
    assert_eq!(early.class(), ErrorClass::ValidationFailed, "{early}");

    let order = Arc::new(Mutex::new(Vec::new()));
    order.lock().unwrap().push("init");
    let tls = TlsConfig::new(Arc::new(SniResolver::new()), responses.clone(), common::echo_upstream().await);
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

#[tokio::test]
async fn a_port_in_use_is_a_typed_bind_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let tls = TlsConfig::new(Arc::new(SniResolver::new()), Default::default(), addr);
    let err = Proxy::new(addr, tls).bind().await.unwrap_err();
    assert_eq!(err.addr, addr);
    assert_eq!(err.source.kind(), std::io::ErrorKind::AddrInUse);
}
