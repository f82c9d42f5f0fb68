//! DNS-01 through a per-tenant delegation target, against a real pebble with
//! BIND as its DNS (TXT values written with RFC 2136): every SAN of one
//! tenant delegates `_acme-challenge` to the one name
//! `<tenant-label>.<delegation zone>`, so the TXT values of concurrent orders
//! (and of a wildcard with its apex) sit side by side there. Each order adds
//! its own values and removes only its own.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use acme_core::{AcmeIssuer, CertRequest, ChallengeKind, Dns01Solver, Issuer, TenantOf};
use cert_store::{CertStore, MemoryStorage};
use dns_verify::{
    Authorities, Checker, DelegationTarget, DnsProvider, DnsRecord, Hostname, ProviderError, RecordData,
    Requirements, Rfc2136Provider,
};
use testkit::{DnsServer, PebbleServer, TSIG_KEY_NAME, Zone};

const ZONE: &str = "acme.edge.test";
const TENANT: &str = "org-1";
/// The two domains of the tenant, each ordered as apex + wildcard.
const DOMAINS: [&str; 2] = ["one.test", "two.test"];

fn requirements() -> Requirements {
    Requirements::delegating_to(ZONE).delegation(DelegationTarget::PerTenant)
}

fn shared_target() -> String {
    requirements().tenant_target(TENANT).unwrap()
}

fn checker(dns: &DnsServer) -> Checker {
    Checker::builder()
        .authorities(Authorities::fixed([dns.addr()]))
        .timeout(Duration::from_millis(700))
        .build()
}

/// The RFC 2136 provider, watched: the first `hold` TXT writes wait for
/// each other (so every value of both orders is at the shared name at
/// once), and after each delete the values still expected there must
/// still be served by BIND.
struct Watched {
    inner: Rfc2136Provider,
    checker: Checker,
    hold: usize,
    arrived: AtomicUsize,
    all_arrived: tokio::sync::Barrier,
    live: Mutex<HashSet<(String, String)>>,
    /// One delete (and its check) at a time: a check sees only its own delete.
    deleting: tokio::sync::Mutex<()>,
    most_served_at_once: AtomicUsize,
    lost: Mutex<Vec<String>>,
}

impl Watched {
    async fn served(&self, name: &str) -> Vec<String> {
        self.checker.txt_values(name).await.unwrap().into_iter().flat_map(|(_, values)| values).collect()
    }
}

#[async_trait::async_trait]
impl DnsProvider for Watched {
    async fn create(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        self.inner.create(record).await?;
        if let RecordData::Txt(value) = &record.data {
            self.live.lock().unwrap().insert((record.name.clone(), value.clone()));
            if self.arrived.fetch_add(1, Ordering::SeqCst) < self.hold {
                let waited = tokio::time::timeout(Duration::from_secs(60), self.all_arrived.wait()).await;
                assert!(waited.is_ok(), "the orders did not write their TXT values concurrently");
            }
            let served = self.served(&record.name).await.len();
            self.most_served_at_once.fetch_max(served, Ordering::SeqCst);
        }
        Ok(())
    }

    async fn delete(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        let _one_at_a_time = self.deleting.lock().await;
        // A value in `live` was served before it went in and its delete has
        // not started: it must still be served after this delete.
        if let RecordData::Txt(value) = &record.data {
            self.live.lock().unwrap().remove(&(record.name.clone(), value.clone()));
        }
        self.inner.delete(record).await?;
        if let RecordData::Txt(value) = &record.data {
            let others: Vec<String> = {
                let live = self.live.lock().unwrap();
                live.iter().filter(|(n, _)| *n == record.name).map(|(_, v)| v.clone()).collect()
            };
            let served = self.served(&record.name).await;
            if served.contains(value) {
                self.lost.lock().unwrap().push(format!("{value} still served after its delete"));
            }
            for other in others.iter().filter(|v| !served.contains(v)) {
                self.lost.lock().unwrap().push(format!("deleting {value} also removed {other}"));
            }
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_domains_of_one_tenant_issue_concurrently_through_one_shared_target() {
    let target = shared_target();
    assert_eq!(target, "org-1.acme.edge.test");
    let mut dns = DnsServer::builder().zone(Zone::new(ZONE, "")).recursion(true);
    for domain in DOMAINS {
        dns = dns.zone(Zone::new(domain, &format!("@ A 127.0.0.1\n_acme-challenge CNAME {target}.\n")));
    }
    let dns = dns.start().unwrap();
    let pebble = PebbleServer::builder().dns_server(dns.addr()).nonce_reject_percent(0).start().unwrap();

    use base64::Engine;
    let secret = base64::engine::general_purpose::STANDARD.decode(dns.tsig_secret_base64()).unwrap();
    let hold = 2 * DOMAINS.len(); // apex + wildcard per domain
    let provider = Arc::new(Watched {
        inner: Rfc2136Provider::new(dns.addr(), ZONE, TSIG_KEY_NAME, secret).unwrap(),
        checker: checker(&dns),
        hold,
        arrived: AtomicUsize::new(0),
        all_arrived: tokio::sync::Barrier::new(hold),
        live: Mutex::default(),
        deleting: tokio::sync::Mutex::default(),
        most_served_at_once: AtomicUsize::new(0),
        lost: Mutex::default(),
    });
    let tenants: Arc<dyn TenantOf> =
        Arc::new(|san: &Hostname| DOMAINS.contains(&san.base()).then(|| TENANT.to_owned()));
    let solver =
        Dns01Solver::new(Arc::clone(&provider) as Arc<dyn DnsProvider>, checker(&dns), requirements())
            .with_tenants(tenants)
            .with_propagation_timeout(Duration::from_secs(20));
    for domain in DOMAINS {
        assert_eq!(solver.txt_name(domain).await.unwrap(), target);
        assert_eq!(solver.txt_name(&format!("*.{domain}")).await.unwrap(), target);
    }

    let store = Arc::new(CertStore::new(Arc::new(MemoryStorage::new())));
    let acme = AcmeIssuer::new(&pebble.directory_url(), store)
        .with_root(pebble.tls_root_path())
        .with_challenge(ChallengeKind::Dns01)
        .with_dns01(solver);
    let requests: Vec<CertRequest> =
        DOMAINS.iter().map(|d| CertRequest::new([d.to_string(), format!("*.{d}")])).collect();
    let results = futures_util::future::join_all(requests.iter().map(|r| acme.issue(r))).await;

    let root = pebble.issuing_root_pem().unwrap();
    for (domain, result) in DOMAINS.iter().zip(results) {
        let bundle = result.unwrap_or_else(|e| panic!("{domain}: {e}\npebble log:\n{}", pebble.log()));
        common::verify(&bundle, &root, domain).unwrap();
        common::verify(&bundle, &root, &format!("a.{domain}")).unwrap();
    }
    // Both orders' four values were at the shared name at once …
    assert_eq!(provider.most_served_at_once.load(Ordering::SeqCst), hold);
    // … no delete took another order's value with it …
    assert!(provider.lost.lock().unwrap().is_empty(), "{:?}", provider.lost.lock().unwrap());
    // … and nothing is left there.
    let left = checker(&dns).txt_values(&target).await.unwrap();
    assert!(left.iter().all(|(_, values)| values.is_empty()), "TXT left at {target}: {left:?}");
}

/// Before any order, the delegation is checked against the tenant's target:
/// a CNAME to the per-hostname target is not it; a SAN the lookup knows no
/// tenant for keeps its per-hostname target.
#[tokio::test]
async fn preflight_checks_the_tenant_target() {
    let target = shared_target();
    let per_host = requirements().delegation_target(&Hostname::parse("three.test").unwrap());
    let dns = DnsServer::builder()
        .zone(Zone::new(ZONE, ""))
        .zone(Zone::new("one.test", &format!("_acme-challenge CNAME {target}.\n")))
        .zone(Zone::new("three.test", &format!("_acme-challenge CNAME {per_host}.\n")))
        .start()
        .unwrap();
    let solver = |tenants: Arc<dyn TenantOf>| {
        Dns01Solver::new(Arc::new(dns_verify::MemoryProvider::new()), checker(&dns), requirements())
            .with_tenants(tenants)
    };
    let everyone_in_org: Arc<dyn TenantOf> = Arc::new(|_: &Hostname| Some(TENANT.to_owned()));
    let s = solver(everyone_in_org);
    s.preflight(&["one.test".into(), "*.one.test".into()]).await.unwrap();
    let err = s.preflight(&["three.test".into()]).await.unwrap_err();
    assert!(matches!(&err, acme_core::IssueError::CnameNotFound { name } if name == "three.test"), "{err:?}");

    let only_one: Arc<dyn TenantOf> =
        Arc::new(|san: &Hostname| (san.base() == "one.test").then(|| TENANT.to_owned()));
    let s = solver(only_one);
    assert_eq!(s.txt_name("three.test").await.unwrap(), per_host);
    s.preflight(&["one.test".into(), "three.test".into()]).await.unwrap();

    // A tenant label that is not a DNS label is refused, naming it.
    let bad: Arc<dyn TenantOf> = Arc::new(|_: &Hostname| Some("org_1".to_owned()));
    let err = solver(bad).txt_name("one.test").await.unwrap_err();
    assert!(err.to_string().contains("org_1"), "{err}");
}
