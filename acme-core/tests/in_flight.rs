//! `AcmeIssuer::with_max_in_flight`: 30 names asked for at once, at most 5
//! orders with the CA at any moment (counted from what reached pebble
//! through testkit's fault proxy, and from the issuer's own count); every
//! name issued.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use acme_core::{AcmeIssuer, CertRequest, DEFAULT_MAX_IN_FLIGHT, Issuer};
use cert_store::{CertStore, MemoryStorage};
use testkit::{DnsServer, Exchange, FaultPlan, FaultProxy, PebbleServer, Zone};

const NAMES: usize = 30;
const MAX: usize = 5;

/// The path of an absolute URL (`https://host:port/a/b` → `/a/b`).
fn path(url: &str) -> String {
    url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap_or_default()
}

/// The most orders the CA had open at once: an order opens with its
/// new-order request and closes when its certificate has been downloaded.
/// Returns (most at once, orders placed, certificates downloaded).
fn most_open(journal: &[Exchange]) -> (usize, usize, usize) {
    let certificates: HashSet<String> =
        journal.iter().filter_map(|e| e.body.as_ref()?["certificate"].as_str().map(path)).collect();
    let mut changes: Vec<(Instant, i64)> = Vec::new();
    for e in journal {
        if e.path.ends_with("order-plz") && e.upstream_status == Some(201) {
            changes.push((e.started, 1));
        }
        if certificates.contains(&e.path) && e.upstream_status == Some(200) {
            changes.push((e.ended, -1));
        }
    }
    // Closings first at equal instants.
    changes.sort_by_key(|&(at, change)| (at, change));
    let (mut open, mut most) = (0i64, 0i64);
    for (_, change) in &changes {
        open += change;
        most = most.max(open);
    }
    let placed = changes.iter().filter(|(_, c)| *c == 1).count();
    (usize::try_from(most).unwrap(), placed, changes.len() - placed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_names_at_once_never_more_than_five_orders_with_the_ca() {
    let records: String = (0..NAMES).map(|i| format!("q{i} A 127.0.0.1\n")).collect();
    let dns = DnsServer::builder().zone(Zone::new("example.test", &records)).recursion(true).start().unwrap();
    // No nonce rejections: an order placed again after a badNonce would
    // blur the count of orders open.
    let pebble = PebbleServer::builder().dns_server(dns.addr()).nonce_reject_percent(0).start().unwrap();
    let proxy = FaultProxy::in_front_of(&pebble, FaultPlan::none()).await.unwrap();
    let root = pebble.issuing_root_pem().unwrap();

    let store = Arc::new(CertStore::new(Arc::new(MemoryStorage::new())));
    let plain = AcmeIssuer::new(&proxy.directory_url(), Arc::clone(&store));
    assert_eq!(plain.in_flight(), 0);
    assert_eq!(DEFAULT_MAX_IN_FLIGHT, 20);
    let acme = Arc::new(
        AcmeIssuer::new(&proxy.directory_url(), Arc::clone(&store))
            .with_root(pebble.tls_root_path())
            .with_max_in_flight(MAX),
    );
    let _responder = common::serve_http01(
        SocketAddr::from(([127, 0, 0, 1], pebble.http_port())),
        acme.responses().clone(),
    )
    .await;

    // The issuer's own count, sampled while the orders run.
    let done = Arc::new(AtomicBool::new(false));
    let most_counted = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (acme, done, most) = (Arc::clone(&acme), Arc::clone(&done), Arc::clone(&most_counted));
        tokio::spawn(async move {
            while !done.load(Ordering::SeqCst) {
                most.fetch_max(acme.in_flight(), Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    let started = Instant::now();
    let calls: Vec<_> = (0..NAMES)
        .map(|i| {
            let acme = Arc::clone(&acme);
            tokio::spawn(async move {
                let name = format!("q{i}.example.test");
                let bundle = acme.issue(&CertRequest::new([name.clone()])).await;
                (name, bundle)
            })
        })
        .collect();
    let mut issued = 0;
    for call in calls {
        let (name, bundle) = call.await.unwrap();
        let bundle = bundle.unwrap_or_else(|e| panic!("{name}: {e}"));
        common::verify(&bundle, &root, &name).unwrap();
        issued += 1;
    }
    let took = started.elapsed();
    done.store(true, Ordering::SeqCst);
    sampler.await.unwrap();

    let (most, placed, downloaded) = most_open(&proxy.journal());
    let counted = most_counted.load(Ordering::SeqCst);
    println!(
        "{NAMES} issue calls at once with max_in_flight {MAX}: {issued} issued in {took:?}; at most {most} \
         orders open at the CA (journal: {placed} new orders, {downloaded} certificates downloaded), at most \
         {counted} in flight by the issuer's count"
    );
    assert_eq!(issued, NAMES);
    assert_eq!(placed, NAMES, "one order per name");
    assert_eq!(downloaded, NAMES);
    assert!(most <= MAX, "{most} orders open at once at the CA");
    assert!(counted <= MAX, "{counted} in flight by the issuer's count");
    assert!(most >= 2, "the calls ran side by side ({most} at most): the bound was not exercised");
    assert_eq!(acme.in_flight(), 0, "every place given back");
}
