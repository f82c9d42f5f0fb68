//! An embedder of the custom-domain TLS toolkit, outside its workspace: its
//! own `Storage`, `DnsProvider` and `AskPolicy`, combined into a
//! `ControlPlane`, a `CertManager` and an SNI proxy through the public API
//! only. Run, it takes one hostname from `create` to `live` offline (an
//! in-process DNS zone, the local CA) and exits non-zero if anything fails.

use std::{
    error::Error,
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use acme_core::{CertManager, LocalCaIssuer, ManagerConfig};
use cert_store::{CertStore, Key, KeyInfo, MemoryStorage, Prefix, Storage, StorageError};
use control_plane::{ControlPlane, DomainState};
use dns_verify::{Authorities, Checker, DnsProvider, DnsRecord, LocalZone, ProviderError, Requirements};
use sni_proxy::{AskPolicy, OnDemand, Proxy, TlsConfig, async_trait};

/// The embedder's storage: counts writes, keeps values in memory.
#[derive(Default)]
struct CountingStorage {
    inner: MemoryStorage,
    writes: AtomicUsize,
}

#[async_trait]
impl Storage for CountingStorage {
    async fn get(&self, key: &Key) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.get(key).await
    }
    async fn put(&self, key: &Key, value: &[u8]) -> Result<(), StorageError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.put(key, value).await
    }
    async fn delete(&self, key: &Key) -> Result<(), StorageError> {
        self.inner.delete(key).await
    }
    async fn list(&self, prefix: &Prefix) -> Result<Vec<Key>, StorageError> {
        self.inner.list(prefix).await
    }
    async fn stat(&self, key: &Key) -> Result<Option<KeyInfo>, StorageError> {
        self.inner.stat(key).await
    }
    async fn try_acquire_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        self.inner.try_acquire_lease(name, holder, ttl).await
    }
    async fn renew_lease(&self, name: &Key, holder: &str, ttl: Duration) -> Result<bool, StorageError> {
        self.inner.renew_lease(name, holder, ttl).await
    }
    async fn release_lease(&self, name: &Key, holder: &str) -> Result<(), StorageError> {
        self.inner.release_lease(name, holder).await
    }
}

/// The embedder's DNS provider: logs, then writes into the zone.
struct LoggingProvider(Arc<LocalZone>);

#[dns_verify::async_trait]
impl DnsProvider for LoggingProvider {
    async fn create(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        println!("dns: create {} {:?}", record.name, record.data);
        self.0.create(record).await
    }
    async fn delete(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        println!("dns: delete {} {:?}", record.name, record.data);
        self.0.delete(record).await
    }
}

/// The embedder's ask policy: only hostnames the control plane has verified.
struct VerifiedOnly(Arc<ControlPlane>);

#[async_trait]
impl AskPolicy for VerifiedOnly {
    async fn allow(&self, name: &str, _client: IpAddr) -> bool {
        self.0.ask(name).await.unwrap_or(false)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let storage = Arc::new(CountingStorage::default());
    let shared: Arc<dyn Storage> = storage.clone();
    let store = Arc::new(CertStore::new(shared));
    let issuer = Arc::new(LocalCaIssuer::new(Arc::clone(&store)));
    let manager = Arc::new(CertManager::new(Arc::clone(&store), issuer, ManagerConfig::default()));

    let zone = Arc::new(LocalZone::start("127.0.0.1:0".parse()?).await?);
    zone.create(&DnsRecord::a("edge.example.net", std::net::Ipv4Addr::LOCALHOST)).await?;
    let checker = Checker::builder().authorities(Authorities::fixed([zone.addr()])).build();
    let requirements = Requirements::delegating_to("acme.example.net").routing_cname("edge.example.net");
    let control = Arc::new(
        ControlPlane::builder(Arc::clone(&store), manager.clone(), checker, requirements)
            .apply_records_with(Arc::new(LoggingProvider(zone)))
            .build(),
    );

    let on_demand = OnDemand::new(Arc::new(VerifiedOnly(control.clone())), manager.clone());
    let tls = TlsConfig::from_source(manager.clone(), "127.0.0.1:3000".parse()?).with_on_demand(on_demand);
    let bound = Proxy::new("127.0.0.1:0".parse()?, tls).bind().await?;
    let running = bound.serve_then({
        let manager = manager.clone();
        async move { manager.start_background() }
    });

    let connection = control.create(control_plane::DEFAULT_TENANT, "shop.customer.example").await?;
    let live = control.advance(&connection.id, true, 10).await?.ok_or("connection not advanced")?;
    println!("{}: {:?}", live.hostname, live.state);
    if live.state != DomainState::Live || manager.get("shop.customer.example").await.is_none() {
        return Err(format!("expected live with a certificate, got {live:?}").into());
    }
    if !control.ask("shop.customer.example").await? || control.ask("other.customer.example").await? {
        return Err("the ask answers are wrong".into());
    }
    running.shutdown().await;
    println!("embedder: ok ({} storage writes)", storage.writes.load(Ordering::Relaxed));
    Ok(())
}
