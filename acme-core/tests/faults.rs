//! A CA that answers 429 or 503: typed errors, the right retry decisions,
//! and the manager's events.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::{sync::Arc, time::Duration};

use acme_core::{
    AcmeIssuer, CertManager, CertRequest, ErrorClass, EventKind, IssueError, Issuer, ManagerConfig,
    RetryDecision, RetryPolicy,
};
use cert_store::{CertStore, MemoryStorage};
use testkit::PebbleServer;

async fn issue_against_fault(status: u16, problem: &'static str) -> (IssueError, PebbleServer) {
    // pebble only lends its TLS certificate (trusted by the client) to the injector.
    let pebble = PebbleServer::builder().start().unwrap();
    let addr = common::serve_fault(pebble.tls_root_path(), &pebble.tls_key_path(), status, problem).await;
    let store = Arc::new(CertStore::new(Arc::new(MemoryStorage::new())));
    let acme = AcmeIssuer::new(&format!("https://127.0.0.1:{}/dir", addr.port()), store)
        .with_root(pebble.tls_root_path());
    (acme.issue(&CertRequest::new(["shop.example.test"])).await.unwrap_err(), pebble)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_waits_for_the_ca() {
    let (err, _pebble) = issue_against_fault(429, "urn:ietf:params:acme:error:rateLimited").await;
    assert_eq!(err.class(), ErrorClass::RateLimited, "{err:?}");
    // instant-acme does not surface Retry-After on errors: the default hour applies.
    let decision = RetryPolicy::default().decide(&err, 0, Duration::ZERO);
    assert_eq!(decision, RetryDecision::RetryAfter(Duration::from_secs(3600)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_ca_backs_off() {
    let (err, _pebble) = issue_against_fault(503, "about:blank").await;
    assert_eq!(err.class(), ErrorClass::CaUnavailable, "{err:?}");
    let RetryDecision::RetryAfter(wait) = RetryPolicy::default().decide(&err, 0, Duration::ZERO) else {
        panic!()
    };
    assert!((54..=66).contains(&wait.as_secs()), "{wait:?}");
    let (err, _pebble) = issue_against_fault(500, "urn:ietf:params:acme:error:serverInternal").await;
    assert_eq!(err.class(), ErrorClass::CaUnavailable, "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manager_records_rate_limits_as_events() {
    let pebble = PebbleServer::builder().start().unwrap();
    let addr = common::serve_fault(
        pebble.tls_root_path(),
        &pebble.tls_key_path(),
        429,
        "urn:ietf:params:acme:error:rateLimited",
    )
    .await;
    let store = Arc::new(CertStore::new(Arc::new(MemoryStorage::new())));
    let acme = Arc::new(
        AcmeIssuer::new(&format!("https://127.0.0.1:{}/dir", addr.port()), Arc::clone(&store))
            .with_root(pebble.tls_root_path()),
    );
    let events = Arc::new(acme_core::EventLog::default());
    let m = CertManager::new(store, acme, ManagerConfig::default()).with_sink(events.clone());
    assert!(m.ensure(&CertRequest::new(["limited.example.test"])).await.is_err());
    let log = events.events("limited.example.test");
    assert!(log.iter().any(|e| e.kind == EventKind::RateLimited), "{log:?}");
    assert!(log.iter().any(|e| matches!(e.kind, EventKind::Failed { class: ErrorClass::RateLimited, .. })));
}
