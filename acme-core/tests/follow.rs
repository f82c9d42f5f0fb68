//! Two managers sharing one store, as two edges of a fleet: what one
//! issues, replaces or deletes reaches the other's listeners (its proxy)
//! through the store's change feed within the follow interval.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use acme_core::{CertManager, CertRequest, LocalCaIssuer, ManagerConfig};
use cert_store::{CertBundle, CertListener, CertSource, CertStore, MemoryStorage};

/// What a proxy subscribed to a manager is told.
#[derive(Default)]
struct Served {
    serials: Mutex<Vec<(String, String)>>,
    removed: Mutex<Vec<String>>,
}

impl CertListener for Served {
    fn updated(&self, bundle: &CertBundle) {
        let meta = bundle.meta();
        self.serials.lock().unwrap().push((meta.primary_name().to_owned(), meta.serial.clone()));
    }

    fn removed(&self, name: &str) {
        self.removed.lock().unwrap().push(name.to_owned());
    }
}

async fn within(limit: Duration, what: &str, done: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what} not seen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_or_deletion_on_one_node_reaches_the_others_within_the_follow_interval() {
    let storage = Arc::new(MemoryStorage::new());
    let store = Arc::new(CertStore::new(Arc::clone(&storage)));
    let issuer = Arc::new(LocalCaIssuer::new(Arc::clone(&store)));
    let config = ManagerConfig { follow_interval: Duration::from_millis(200), ..ManagerConfig::default() };
    let a = CertManager::new(Arc::new(CertStore::new(Arc::clone(&storage))), issuer.clone(), config.clone());
    let b = CertManager::new(Arc::new(CertStore::new(Arc::clone(&storage))), issuer, config);
    let served_b = Arc::new(Served::default());
    b.subscribe(served_b.clone());
    b.start_background();

    // A issues; B serves it (a first handshake loads it from the store).
    let first = a.ensure(&CertRequest::new(["shop.example.com"])).await.unwrap();
    assert_eq!(b.get("shop.example.com").await.unwrap().meta().serial, first.meta().serial);

    // A replaces it (an upload, a renewal): B's proxy gets the new one.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["shop.example.com".to_owned()]).unwrap();
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    let own = params.self_signed(&key).unwrap();
    let replaced = a.import_self_managed(&own.pem(), &key.serialize_pem()).await.unwrap();
    let serial = replaced.meta().serial.clone();
    let took = within(Duration::from_secs(5), "the replacement on B", || {
        served_b.serials.lock().unwrap().iter().any(|(n, s)| n == "shop.example.com" && *s == serial)
    })
    .await;
    assert_eq!(b.get("shop.example.com").await.unwrap().meta().serial, serial);
    eprintln!("replacement reached B in {took:?}");

    // A deletes it (an archive): B drops it.
    store.delete("shop.example.com").await.unwrap();
    a.forget("shop.example.com");
    within(Duration::from_secs(5), "the deletion on B", || {
        served_b.removed.lock().unwrap().iter().any(|n| n == "shop.example.com")
    })
    .await;
    assert!(b.get("shop.example.com").await.is_none(), "no longer served by B");
}
