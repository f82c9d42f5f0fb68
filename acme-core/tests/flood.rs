//! A flood of unknown names against the proxy wired as the edge wires it
//! (`TlsConfig::from_source(CertManager)` + `OnDemand` with the defaults):
//! what each distinct name costs in storage operations, asks and CA
//! requests. Every name is sent twice.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use acme_core::{CertManager, CertRequest, IssueError, Issuer, LocalCaIssuer, ManagerConfig};
use async_trait::async_trait;
use cert_store::{CertBundle, CertStore, Key, KeyInfo, MemoryStorage, Prefix, Storage, StorageError};
use rustls_pki_types::ServerName;
use sni_proxy::{AskPolicy, CertSource, OnDemand, Provision, TlsConfig, serve_tls};

/// A `MemoryStorage` counting every operation by kind.
#[derive(Default)]
struct CountingStorage {
    inner: MemoryStorage,
    ops: Mutex<HashMap<&'static str, usize>>,
}

impl CountingStorage {
    fn count(&self, op: &'static str) {
        *self.ops.lock().unwrap().entry(op).or_default() += 1;
    }

    fn ops(&self) -> HashMap<&'static str, usize> {
        self.ops.lock().unwrap().clone()
    }
}

#[async_trait]
impl Storage for CountingStorage {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StorageError> {
        self.count("get");
        self.inner.get(key).await
    }
    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StorageError> {
        self.count("put");
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        self.count("delete");
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &Prefix) -> Result<Vec<Key>, StorageError> {
        self.count("list");
        self.inner.list(prefix).await
    }
    async fn stat(&self, key: &Key) -> Result<Option<KeyInfo>, StorageError> {
        self.count("stat");
        self.inner.stat(key).await
    }
    async fn try_acquire_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        self.count("lease");
        self.inner.try_acquire_lease(name, holder, ttl).await
    }
    async fn renew_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        self.count("lease");
        self.inner.renew_lease(name, holder, ttl).await
    }
    async fn release_lease(&self, name: &Key, holder: &str) -> Result<(), StorageError> {
        self.count("lease");
        self.inner.release_lease(name, holder).await
    }
}

/// Counts the issuer's calls (requests towards the CA).
struct CountingIssuer(Arc<dyn Issuer>, AtomicUsize);

#[async_trait]
impl Issuer for CountingIssuer {
    async fn issue(&self, request: &CertRequest) -> Result<CertBundle, IssueError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0.issue(request).await
    }
    fn name(&self) -> String {
        "counting".into()
    }
}

/// Refuses every name; counts asks.
#[derive(Default)]
struct RefuseAll(AtomicUsize);

#[async_trait]
impl AskPolicy for RefuseAll {
    async fn allow(&self, _name: &str, _client: IpAddr) -> bool {
        self.0.fetch_add(1, Ordering::SeqCst);
        false
    }
}

async fn refused_handshake(proxy: SocketAddr, root_pem: &str, sni: &str) -> bool {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(testkit::client_config(root_pem)));
    let Ok(tcp) = tokio::net::TcpStream::connect(proxy).await else { return false };
    connector.connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp).await.is_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_cost_one_source_lookup_and_no_ca_request_each() {
    const NAMES: usize = 5_000;
    const WORKERS: usize = 50;
    let storage = Arc::new(CountingStorage::default());
    let ca = Arc::new(LocalCaIssuer::new(Arc::new(CertStore::new(Arc::clone(&storage)))));
    let root_pem = Arc::new(ca.root_pem().await.unwrap());
    let issuer = Arc::new(CountingIssuer(ca, AtomicUsize::new(0)));
    let manager = Arc::new(CertManager::new(
        Arc::new(CertStore::new(Arc::clone(&storage))),
        issuer.clone(),
        ManagerConfig::default(),
    ));
    let policy = Arc::new(RefuseAll::default());
    let on_demand = OnDemand::new(policy.clone(), Arc::clone(&manager) as Arc<dyn Provision>);
    let upstream = testkit::echo_upstream().await;
    let config = TlsConfig::from_source(manager as Arc<dyn CertSource>, upstream).with_on_demand(on_demand);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    tokio::spawn(serve_tls(listener, config));
    let before = storage.ops();

    let queue: Arc<Vec<String>> = Arc::new(
        (0..NAMES * 2)
            .map(|i| format!("x{:x}.flood.example.com", ((i / 2) as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|_| {
            let (queue, next, root_pem) = (Arc::clone(&queue), Arc::clone(&next), Arc::clone(&root_pem));
            tokio::spawn(async move {
                let mut refused = 0;
                while let Some(name) = queue.get(next.fetch_add(1, Ordering::SeqCst)) {
                    refused += usize::from(refused_handshake(proxy, &root_pem, name).await);
                }
                refused
            })
        })
        .collect();
    let mut refused = 0;
    for w in workers {
        refused += w.await.unwrap();
    }
    let took = started.elapsed();
    let after = storage.ops();
    let delta = |op: &str| after.get(op).copied().unwrap_or(0) - before.get(op).copied().unwrap_or(0);
    let (gets, lists, stats, writes) =
        (delta("get"), delta("list"), delta("stat"), delta("put") + delta("delete"));
    let asks = policy.0.load(Ordering::SeqCst);
    println!(
        "{} handshakes for {NAMES} unknown names in {took:?}: {gets} storage gets ({:.2} per name), {lists} lists, \
         {stats} stats, {writes} writes, {} leases; {asks} asks (default AskLimits); {} CA requests",
        NAMES * 2,
        gets as f64 / NAMES as f64,
        delta("lease"),
        issuer.1.load(Ordering::SeqCst),
    );
    assert_eq!(refused, NAMES * 2);
    assert_eq!(issuer.1.load(Ordering::SeqCst), 0, "no CA request");
    assert_eq!(writes, 0, "no storage write");
    assert_eq!(delta("lease"), 0, "no lease");
    assert!(asks <= NAMES);
    // One certificate-source lookup per distinct name (the second handshake
    // finds the name refused, or shares the first one's lookup), and that
    // lookup reads only the index generation: `CertManager::get` loads only
    // names the expiry index lists. Before: the name and its wildcard, each
    // at the current and the legacy key — 4 gets (8 per name sent twice
    // without the refused-names cache).
    assert!(gets <= NAMES + 10, "{gets} storage gets for {NAMES} names: at most one per distinct name");
}
