//! The :80 listener with real clients: curl for challenges and redirects,
//! and pebble validating a real HTTP-01 order through it.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::{process::Command, sync::Arc};

use acme_core::{AcmeIssuer, CertRequest, ChallengeResponses, Issuer};
use cert_store::{CertStore, MemoryStorage, Storage};
use sni_proxy::{Http80Config, serve_http80};
use testkit::{DnsServer, PebbleServer, Zone};

async fn start(config: Http80Config) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(serve_http80(listener, config));
    port
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-S", "-o", "-", "-w", "\n%{http_code} %{redirect_url}"])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_are_answered_and_everything_else_redirected() {
    let storage = Arc::new(MemoryStorage::new());
    // A token another node published in the shared store.
    storage
        .put(&cert_store::Key::new("challenges/http-01/from-store").unwrap(), b"from-store.thumbprint")
        .await
        .unwrap();
    let mut config = Http80Config::new(ChallengeResponses::default());
    config.store = Some(storage);
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
    tokio::spawn(serve_http80(listener, Http80Config::new(acme.responses().clone())));
    let bundle = acme.issue(&CertRequest::new(["web.example.test"])).await.unwrap();
    assert_eq!(bundle.meta().names, ["web.example.test"]);
}
