//! AcmeIssuer against a real pebble, with BIND as its DNS: HTTP-01,
//! TLS-ALPN-01, DNS-01 through CNAME delegation, wildcards, many SANs,
//! nonce rejection, validation failures, account reuse.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use acme_core::{AcmeIssuer, CertRequest, ChallengeKind, Dns01Solver, IssueError, Issuer};
use cert_store::{CertStore, MemoryStorage, Provenance, Storage};
use dns_verify::{Authorities, Checker, Hostname, Requirements, Rfc2136Provider};
use testkit::{DnsServer, PebbleServer, TSIG_KEY_NAME, Zone};

const HOSTS: &[&str] = &[
    "http1", "http2", "alpn1", "dns1", "wild", "five1", "five2", "five3", "five4", "five5", "bad",
    "conflict", "limit1", "limit2", "limit3",
];

fn requirements() -> Requirements {
    Requirements::delegating_to("acme.edge.test")
}

struct Peers {
    dns: DnsServer,
    pebble: PebbleServer,
}

fn peers(nonce_reject: u8) -> Peers {
    let req = requirements();
    let mut records = String::new();
    for h in HOSTS {
        records.push_str(&format!("{h} A 127.0.0.1\n"));
    }
    for h in ["dns1", "wild", "conflict"] {
        let target = req.delegation_target(&Hostname::parse(&format!("{h}.example.test")).unwrap());
        if h == "conflict" {
            records.push_str("_acme-challenge.conflict TXT \"left-over\"\n");
        } else {
            records.push_str(&format!("_acme-challenge.{h} CNAME {target}.\n"));
        }
    }
    let dns = DnsServer::builder()
        .zone(Zone::new("example.test", &records))
        .zone(Zone::new("acme.edge.test", ""))
        .recursion(true)
        .start()
        .unwrap();
    let pebble =
        PebbleServer::builder().dns_server(dns.addr()).nonce_reject_percent(nonce_reject).start().unwrap();
    Peers { dns, pebble }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn issuer(p: &Peers, store: Arc<CertStore<MemoryStorage>>) -> AcmeIssuer<MemoryStorage> {
    AcmeIssuer::new(&p.pebble.directory_url(), store).with_root(p.pebble.tls_root_path())
}

fn dns01(p: &Peers) -> Dns01Solver {
    use base64::Engine;
    let secret = base64::engine::general_purpose::STANDARD.decode(p.dns.tsig_secret_base64()).unwrap();
    let provider = Rfc2136Provider::new(p.dns.addr(), "acme.edge.test", TSIG_KEY_NAME, secret).unwrap();
    let checker = Checker::builder()
        .authorities(Authorities::fixed([p.dns.addr()]))
        .timeout(Duration::from_millis(700))
        .build();
    Dns01Solver::new(Arc::new(provider), checker, requirements())
        .with_propagation_timeout(Duration::from_secs(20))
}

fn new_store() -> Arc<CertStore<MemoryStorage>> {
    Arc::new(CertStore::new(Arc::new(MemoryStorage::new())))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_issues_a_verifiable_chain_and_reuses_the_account() {
    let p = peers(0);
    let store = new_store();
    let responses = acme_core::ChallengeResponses::default();
    let _responder = common::serve_http01(addr(p.pebble.http_port()), responses.clone()).await;
    let acme = issuer(&p, Arc::clone(&store)).with_responses(responses.clone());
    let bundle = acme.issue(&CertRequest::new(["http1.example.test", "http2.example.test"])).await.unwrap();
    assert_eq!(bundle.meta().names, ["http1.example.test", "http2.example.test"]);
    assert_eq!(bundle.meta().provenance, Provenance::Acme { directory: p.pebble.directory_url() });
    let root = p.pebble.issuing_root_pem().unwrap();
    common::verify(&bundle, &root, "http2.example.test").unwrap();
    let credentials = store.load_account(&p.pebble.directory_url()).await.unwrap().unwrap();

    // A new issuer on the same store (a restart) restores the account.
    let again = issuer(&p, Arc::clone(&store)).with_responses(responses);
    again.issue(&CertRequest::new(["http1.example.test"])).await.unwrap();
    assert_eq!(
        store.load_account(&p.pebble.directory_url()).await.unwrap().unwrap(),
        credentials,
        "no second account"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_issues() {
    let p = peers(0);
    let acme = issuer(&p, new_store()).with_challenge(ChallengeKind::TlsAlpn01);
    let _responder = common::serve_tls_alpn01(addr(p.pebble.tls_port()), acme.responses().clone()).await;
    let bundle = acme.issue(&CertRequest::new(["alpn1.example.test"])).await.unwrap();
    common::verify(&bundle, &p.pebble.issuing_root_pem().unwrap(), "alpn1.example.test").unwrap();
    assert!(acme.responses().tls_alpn01("alpn1.example.test").is_none(), "challenge certificate withdrawn");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns01_through_cname_delegation_with_wildcard_and_apex() {
    let p = peers(0);
    let acme = issuer(&p, new_store()).with_challenge(ChallengeKind::Dns01).with_dns01(dns01(&p));
    let bundle = acme.issue(&CertRequest::new(["dns1.example.test"])).await.unwrap();
    let root = p.pebble.issuing_root_pem().unwrap();
    common::verify(&bundle, &root, "dns1.example.test").unwrap();

    // Wildcard + apex: two authorizations for the same base name, both by DNS-01.
    let acme = issuer(&p, new_store()).with_dns01(dns01(&p));
    let _responder = common::serve_http01(addr(p.pebble.http_port()), acme.responses().clone()).await;
    let bundle = acme.issue(&CertRequest::new(["wild.example.test", "*.wild.example.test"])).await.unwrap();
    common::verify(&bundle, &root, "wild.example.test").unwrap();
    common::verify(&bundle, &root, "anything.wild.example.test").unwrap();
    // The TXT values are cleaned up.
    let target = requirements().delegation_target(&Hostname::parse("wild.example.test").unwrap());
    let checker = Checker::builder().authorities(Authorities::fixed([p.dns.addr()])).build();
    let left: Vec<(SocketAddr, Vec<String>)> = checker.txt_values(&target).await.unwrap();
    assert!(left.iter().all(|(_, values)| values.is_empty()), "TXT left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_san_order() {
    let p = peers(0);
    let acme = issuer(&p, new_store());
    let _responder = common::serve_http01(addr(p.pebble.http_port()), acme.responses().clone()).await;
    let names: Vec<String> = (1..=5).map(|i| format!("five{i}.example.test")).collect();
    let bundle = acme.issue(&CertRequest::new(names.clone())).await.unwrap();
    let root = p.pebble.issuing_root_pem().unwrap();
    for n in &names {
        common::verify(&bundle, &root, n).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unserved_challenge_is_validation_failed_with_the_cas_detail() {
    let p = peers(0);
    let acme = issuer(&p, new_store()).with_poll_timeout(Duration::from_secs(30));
    // Nobody listens on pebble's HTTP port.
    let err = acme.issue(&CertRequest::new(["bad.example.test"])).await.unwrap_err();
    match err {
        IssueError::ValidationFailed { detail } => assert!(detail.contains("bad.example.test"), "{detail}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_preflight_fails_fast_without_contacting_the_ca() {
    let p = peers(0);
    let acme = issuer(&p, new_store()).with_challenge(ChallengeKind::Dns01).with_dns01(dns01(&p));
    let err = acme.issue(&CertRequest::new(["conflict.example.test"])).await.unwrap_err();
    assert!(
        matches!(err, IssueError::TxtConflict { ref records, .. } if records == &["left-over"]),
        "{err:?}"
    );
    let err = acme.issue(&CertRequest::new(["http1.example.test"])).await.unwrap_err();
    assert!(matches!(err, IssueError::CnameNotFound { .. }), "{err:?}");
    assert!(!p.pebble.log().contains("new-order") || !p.pebble.log().contains("conflict.example.test"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_the_nonces_rejected_still_twenty_of_twenty() {
    let p = peers(50);
    let acme = Arc::new(issuer(&p, new_store()));
    let _responder = common::serve_http01(addr(p.pebble.http_port()), acme.responses().clone()).await;
    for i in 0..20 {
        let name = if i % 2 == 0 { "http1.example.test" } else { "http2.example.test" };
        acme.issue(&CertRequest::new([name])).await.unwrap_or_else(|e| panic!("order {i}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_node_answers_from_the_shared_store_with_p384_and_rsa_keys() {
    let p = peers(0);
    let storage = Arc::new(MemoryStorage::new());
    let store = Arc::new(CertStore::new(Arc::clone(&storage)));
    // The node that answers is not the one that orders: it only shares the store.
    let answering = Arc::clone(&storage);
    let _responder = testkit::serve_http01(
        addr(p.pebble.http_port()),
        Arc::new(move |token: String| {
            let storage = Arc::clone(&answering);
            Box::pin(async move { acme_core::stored_http01(&*storage, &token).await })
        }),
    )
    .await
    .unwrap();
    let acme = issuer(&p, Arc::clone(&store));
    let mut request = CertRequest::new(["http1.example.test"]);
    request.key = acme_core::KeyAlgorithm::EcdsaP384;
    let bundle = acme.issue(&request).await.unwrap();
    assert_eq!(bundle.meta().key_type, cert_store::KeyType::EcdsaP384);
    common::verify(&bundle, &p.pebble.issuing_root_pem().unwrap(), "http1.example.test").unwrap();
    request.key = acme_core::KeyAlgorithm::Rsa2048;
    let bundle = acme.issue(&request).await.unwrap();
    assert_eq!(bundle.meta().key_type, cert_store::KeyType::Rsa { bits: 2048 });
    let left = storage.list(&acme_core::keys::challenges().unwrap()).await.unwrap();
    assert!(left.is_empty(), "shared answers are withdrawn: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_problems_show_as_san_status_in_the_manager() {
    let p = peers(0);
    let store = new_store();
    let acme = issuer(&p, Arc::clone(&store)).with_challenge(ChallengeKind::Dns01).with_dns01(dns01(&p));
    let m = acme_core::CertManager::new(store, Arc::new(acme), acme_core::ManagerConfig::default());
    assert!(m.ensure(&CertRequest::new(["conflict.example.test"])).await.is_err());
    assert_eq!(
        m.status("conflict.example.test"),
        acme_core::CertStatus::Dns { san: dns_verify::SanStatus::DnsDuplicate }
    );
    assert!(m.ensure(&CertRequest::new(["http1.example.test"])).await.is_err());
    assert_eq!(
        m.status("http1.example.test"),
        acme_core::CertStatus::Dns { san: dns_verify::SanStatus::DnsMissing }
    );
}

/// Two managers ("two processes": separate managers and storage handles,
/// only the store in common) asked for the same 20 names at once.
async fn two_managers_place_twenty_orders<S: Storage + ?Sized>(p: &Peers, a: Arc<S>, b: Arc<S>) {
    let responses = acme_core::ChallengeResponses::default();
    let _responder = common::serve_http01(addr(p.pebble.http_port()), responses.clone()).await;
    let store_a = Arc::new(CertStore::new(a));
    let store_b = Arc::new(CertStore::new(b));
    let issuer_a = common::Counting::new(Arc::new(
        AcmeIssuer::new(&p.pebble.directory_url(), Arc::clone(&store_a))
            .with_root(p.pebble.tls_root_path())
            .with_responses(responses.clone()),
    ));
    let issuer_b = common::Counting::new(Arc::new(
        AcmeIssuer::new(&p.pebble.directory_url(), Arc::clone(&store_b))
            .with_root(p.pebble.tls_root_path())
            .with_responses(responses),
    ));
    let ma =
        Arc::new(acme_core::CertManager::new(store_a, issuer_a.clone(), acme_core::ManagerConfig::default()));
    let mb =
        Arc::new(acme_core::CertManager::new(store_b, issuer_b.clone(), acme_core::ManagerConfig::default()));
    let mut tasks = Vec::new();
    for i in 0..20 {
        for m in [&ma, &mb] {
            let m = Arc::clone(m);
            tasks.push(tokio::spawn(async move {
                m.ensure(&CertRequest::new([format!("pair{i}.example.test")])).await.map(|_| ())
            }));
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(issuer_a.count() + issuer_b.count(), 20, "exactly 20 orders for 20 names");
}

fn pair_peers() -> Peers {
    let records: String = (0..20).map(|i| format!("pair{i} A 127.0.0.1\n")).collect();
    let dns = DnsServer::builder().zone(Zone::new("example.test", &records)).recursion(true).start().unwrap();
    let pebble = PebbleServer::builder().dns_server(dns.addr()).start().unwrap();
    Peers { dns, pebble }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_managers_on_one_directory_place_twenty_orders() {
    let p = pair_peers();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pair-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let a = Arc::new(cert_store::FileStorage::new(&dir).unwrap());
    let b = Arc::new(cert_store::FileStorage::new(&dir).unwrap());
    two_managers_place_twenty_orders(&p, a, b).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_managers_on_one_postgres_place_twenty_orders() {
    let p = pair_peers();
    let pg = testkit::PostgresServer::start().unwrap();
    let a = Arc::new(cert_store::PostgresStorage::connect(&pg.connection_string()).await.unwrap());
    let b = Arc::new(cert_store::PostgresStorage::connect(&pg.connection_string()).await.unwrap());
    two_managers_place_twenty_orders(&p, a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_limit_is_a_token_bucket_checked_before_the_ca() {
    let p = peers(0);
    let responses = acme_core::ChallengeResponses::default();
    let _responder = common::serve_http01(addr(p.pebble.http_port()), responses.clone()).await;
    let limit = Arc::new(acme_core::OrderLimit::new(2, std::time::Duration::from_secs(3600)));
    let acme = issuer(&p, new_store()).with_responses(responses).with_order_limit(limit);
    // The burst goes through at once…
    for name in ["limit1.example.test", "limit2.example.test"] {
        acme.issue(&CertRequest::new([name])).await.unwrap();
    }
    // …then the next order waits for a token, without asking the CA.
    let err = acme.issue(&CertRequest::new(["limit3.example.test"])).await.unwrap_err();
    match err {
        acme_core::IssueError::RateLimited { retry_after: Some(wait) } => {
            assert!(
                wait > std::time::Duration::from_secs(1500) && wait <= std::time::Duration::from_secs(1800)
            );
        }
        other => panic!("expected a local rate limit, got {other:?}"),
    }
    assert!(!p.pebble.log().contains("limit3.example.test"), "the CA never saw the third name");
}
