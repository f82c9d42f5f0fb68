//! The control plane as an embedder uses it, with no HTTP: a real
//! authoritative DNS server in process (`dns_verify::LocalZone`, written
//! through `DnsProvider`), the local CA, a memory store.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use acme_core::{CertManager, LocalCaIssuer, ManagerConfig};
use cert_store::{CertBundle, CertListener, CertSource, CertStore, MemoryStorage, Storage};
use control_plane::{
    CertificateSource, ClaimHolder, ControlPlane, DEFAULT_TENANT, DomainState, Error, ErrorCode, ProblemCode,
    Quotas, Settings,
};
use dns_verify::{Authorities, Checker, DnsProvider, DnsRecord, LocalZone, Requirements};

/// What a TLS server subscribed to the manager is told (what `sni-proxy`'s
/// resolver gets through `TlsConfig::from_source`).
#[derive(Default)]
struct Changes {
    updated: Mutex<Vec<String>>,
    removed: Mutex<Vec<String>>,
}

impl CertListener for Changes {
    fn updated(&self, bundle: &CertBundle) {
        self.updated.lock().unwrap().push(bundle.meta().primary_name().to_owned());
    }

    fn removed(&self, name: &str) {
        self.removed.lock().unwrap().push(name.to_owned());
    }
}

struct Fixture {
    cp: Arc<ControlPlane>,
    zone: Arc<LocalZone>,
    changes: Arc<Changes>,
}

async fn fixture(write_records: bool) -> Fixture {
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::new());
    let store = Arc::new(CertStore::new(Arc::clone(&storage)));
    let issuer = Arc::new(LocalCaIssuer::new(Arc::clone(&store)));
    let manager = Arc::new(CertManager::new(Arc::clone(&store), issuer, ManagerConfig::default()));
    let changes = Arc::new(Changes::default());
    manager.subscribe(Arc::clone(&changes) as Arc<dyn CertListener>);
    let zone = Arc::new(LocalZone::start("127.0.0.1:0".parse().unwrap()).await.unwrap());
    zone.create(&DnsRecord::a("edge.example", std::net::Ipv4Addr::LOCALHOST)).await.unwrap();
    let checker = Checker::builder()
        .authorities(Authorities::fixed(vec![zone.addr()]))
        .timeout(Duration::from_secs(2))
        .build();
    let requirements = Requirements::delegating_to("acme.edge.example").routing_cname("edge.example");
    let mut settings = Settings::default();
    settings.quotas = Quotas::new([("free".to_owned(), 2)]);
    let mut builder = ControlPlane::builder(store, manager, checker, requirements).settings(settings);
    if write_records {
        builder = builder.apply_records_with(Arc::clone(&zone) as Arc<dyn DnsProvider>);
    }
    Fixture { cp: Arc::new(builder.build()), zone, changes }
}

#[tokio::test]
async fn a_connection_goes_live_once_its_records_are_in_dns() {
    let f = fixture(false).await;
    let c = f.cp.create(DEFAULT_TENANT, "Shop.Customer.example").await.unwrap();
    assert_eq!((c.state, c.hostname.as_str()), (DomainState::PendingOwnership, "shop.customer.example"));

    // No records yet: stays pending, with a problem a program can match.
    let c = f.cp.advance(&c.id, true, 4).await.unwrap().unwrap();
    assert_eq!(c.state, DomainState::PendingOwnership);
    let problem = c.last_error.clone().unwrap();
    assert_eq!(problem.code, ProblemCode::DnsMissing, "{problem:?}");
    assert!(problem.retry_at.is_some());
    let check = f.cp.check_records(&c.id).await.unwrap();
    assert!(check.records.iter().any(|r| r.required && r.status == dns_verify::RecordStatus::Missing));

    // The customer creates what the connection lists: check, verify, issue.
    for r in &c.records {
        let record = match r.record_type.as_str() {
            "TXT" => DnsRecord::txt(&r.name, &r.value),
            _ => DnsRecord::cname(&r.name, &r.value),
        };
        f.zone.create(&record).await.unwrap();
    }
    let live = f.cp.advance(&c.id, true, 4).await.unwrap().unwrap();
    assert_eq!(live.state, DomainState::Live, "{live:?}");
    assert_eq!(live.certificate.unwrap().source, CertificateSource::LocalCa);
    assert!(live.last_error.is_none());
    assert_eq!(
        *f.changes.updated.lock().unwrap(),
        ["shop.customer.example"],
        "the server got the new certificate"
    );
    assert!(f.cp.ask("shop.customer.example").await.unwrap(), "verified names may be issued on demand");
    assert!(!f.cp.ask("other.customer.example").await.unwrap());

    // Archived: the claim is released, the certificate no longer served.
    let archived = f.cp.archive(&live.id).await.unwrap();
    assert_eq!(archived.state, DomainState::Archived);
    assert!(!f.cp.ask("shop.customer.example").await.unwrap());
    assert_eq!(*f.changes.removed.lock().unwrap(), ["shop.customer.example"], "no longer served, at once");
}

#[tokio::test]
async fn with_a_record_writer_the_records_are_written_and_removed_by_the_control_plane() {
    let f = fixture(true).await;
    let c = f.cp.create(DEFAULT_TENANT, "shop.customer.example").await.unwrap();
    let live = f.cp.advance(&c.id, true, 4).await.unwrap().unwrap();
    assert_eq!(live.state, DomainState::Live, "{live:?}");
    f.cp.archive(&c.id).await.unwrap();
    let check = f.cp.check_records(&c.id).await.unwrap();
    assert!(
        check.records.iter().all(|r| r.status == dns_verify::RecordStatus::Missing),
        "archiving removed the records: {check:?}"
    );
}

#[tokio::test]
async fn errors_are_typed_with_stable_codes_and_nothing_is_stored_for_bad_input() {
    let f = fixture(true).await;
    for (name, code) in [
        ("not a hostname", ErrorCode::InvalidHostname),
        ("*.customer.example", ErrorCode::InvalidHostname),
        ("127.0.0.1", ErrorCode::InvalidHostname),
    ] {
        let e = f.cp.create(DEFAULT_TENANT, name).await.unwrap_err();
        assert_eq!(e.code(), code, "{name}: {e}");
    }
    let e = f.cp.tenants().create("Gold Inc", "gold", &f.cp.settings().quotas).await.unwrap_err();
    assert!(matches!(&e, Error::UnknownPlan { plan } if plan == "gold"), "{e}");
    assert_eq!(e.code(), ErrorCode::InvalidRequest);
    let e = f.cp.create("0badc0de", "a.customer.example").await.unwrap_err();
    assert!(matches!(e, Error::NotFound), "no such tenant: {e}");
    assert!(f.cp.repo().list().await.unwrap().is_empty(), "nothing stored for refused input");

    // Claimed hostname: conflict; quota: 402-style error with the plan's limit.
    let first = f.cp.create(DEFAULT_TENANT, "a.customer.example").await.unwrap();
    f.cp.advance(&first.id, true, 4).await.unwrap();
    let e = f.cp.create(DEFAULT_TENANT, "a.customer.example").await.unwrap_err();
    assert!(
        matches!(&e, Error::HostnameConflict { hostname, held_by: ClaimHolder::SameTenant { connection } }
            if hostname == "a.customer.example" && *connection == first.id),
        "{e}"
    );
    let other = f.cp.tenants().create("Other", "free", &f.cp.settings().quotas).await.unwrap();
    let e = f.cp.create(&other.id, "a.customer.example").await.unwrap_err();
    assert!(matches!(&e, Error::HostnameConflict { held_by: ClaimHolder::OtherTenant, .. }), "{e}");
    assert!(!e.to_string().contains(&first.id), "another tenant's connection is not named: {e}");
    // The quota counts connections created this period: archiving gives nothing back.
    let b = f.cp.create(DEFAULT_TENANT, "b.customer.example").await.unwrap();
    f.cp.archive(&b.id).await.unwrap();
    let e = f.cp.create(DEFAULT_TENANT, "c.customer.example").await.unwrap_err();
    assert!(matches!(&e, Error::QuotaExceeded { limit: 2, used: 2, plan, .. } if plan == "free"), "{e}");
    assert!(f.cp.create(&other.id, "c.customer.example").await.is_ok(), "another tenant has its own quota");

    for id in ["0123abcd", "../../etc", ""] {
        assert!(matches!(f.cp.get(id).await, Err(Error::NotFound)), "{id}");
    }
    let e = f.cp.upload_certificate(&first.id, "not pem", "not pem").await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidCertificate, "{e}");
    assert!(std::error::Error::source(&e).is_some(), "the cause is kept: {e}");
}
