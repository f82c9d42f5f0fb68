//! CertManager with the local CA: single flight in and across processes,
//! renewal on an injected clock, self-managed warnings, retries, resumption.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::{
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use acme_core::{
    CertManager, CertRequest, CertStatus, Clock, ErrorClass, EventKind, EventLog, IssueError, Issuer,
    LocalCaIssuer, ManagerConfig, ManualClock,
};
use async_trait::async_trait;
use cert_store::{
    CertBundle, CertListener, CertSource, CertStore, FileStorage, MemoryStorage, PostgresStorage, Provision,
    ProvisionError, Storage,
};
use common::Counting;

/// A manager with an in-memory [`EventLog`] that [`Logged::activity`] reads.
struct Logged<S: Storage + ?Sized> {
    m: CertManager<S>,
    log: Arc<EventLog>,
}

impl<S: Storage + ?Sized> std::ops::Deref for Logged<S> {
    type Target = CertManager<S>;

    fn deref(&self) -> &CertManager<S> {
        &self.m
    }
}

impl<S: Storage + ?Sized> Logged<S> {
    fn of(m: CertManager<S>) -> Self {
        let log = Arc::new(EventLog::default());
        Self { m: m.with_sink(log.clone()), log }
    }

    /// The events of `name`, newest first.
    async fn activity(&self, name: &str) -> Result<Vec<acme_core::Event>, std::convert::Infallible> {
        Ok(self.log.events(name))
    }
}

fn manager<S: Storage + ?Sized>(store: Arc<CertStore<S>>, issuer: Arc<dyn Issuer>) -> Logged<S> {
    Logged::of(CertManager::new(store, issuer, ManagerConfig::default()))
}

/// A manager on a manual clock (starting now), with an event log.
fn clocked(
    store: Arc<CertStore<MemoryStorage>>,
    issuer: Arc<dyn Issuer>,
) -> (Logged<MemoryStorage>, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_now());
    (Logged::of(CertManager::builder(store, issuer).clock(clock.clone()).build()), clock)
}

fn memory_setup() -> (Arc<CertStore<MemoryStorage>>, Arc<Counting>) {
    let storage = Arc::new(MemoryStorage::new());
    let store = Arc::new(CertStore::new(storage));
    let ca: Arc<dyn Issuer> = Arc::new(LocalCaIssuer::new(Arc::clone(&store)));
    (store, Counting::new(ca))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_issues_once_and_get_serves_exact_and_wildcard() {
    let (store, issuer) = memory_setup();
    let m = manager(Arc::clone(&store), issuer.clone());
    let b = m.ensure(&CertRequest::new(["shop.example.com", "*.shop.example.com"])).await.unwrap();
    assert_eq!(b.meta().names, ["shop.example.com", "*.shop.example.com"]);
    m.ensure(&CertRequest::new(["shop.example.com"])).await.unwrap();
    assert_eq!(issuer.count(), 1, "an existing, fresh certificate is reused");
    assert_eq!(m.status("shop.example.com"), CertStatus::Valid);
    assert!(m.get("SHOP.example.com.").await.is_some());
    let w = m.ensure(&CertRequest::new(["*.wild.example.com"])).await.unwrap();
    assert_eq!(m.get("a.wild.example.com").await.unwrap().meta().serial, w.meta().serial);
    assert!(m.get("a.b.wild.example.com").await.is_none());
    assert!(m.get("unknown.example.com").await.is_none());
    let log = m.activity("shop.example.com").await.unwrap();
    assert!(matches!(log[0].kind, EventKind::Issued { .. }), "{log:?}");
    assert_eq!(log[1].kind, EventKind::IssuanceStarted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_callers_one_issuance() {
    let (store, issuer) = memory_setup();
    let m = Arc::new(manager(store, issuer.clone()));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let m = Arc::clone(&m);
            tokio::spawn(async move {
                m.ensure(&CertRequest::new(["busy.example.com"])).await.unwrap().meta().serial.clone()
            })
        })
        .collect();
    let mut serials = Vec::new();
    for t in tasks {
        serials.push(t.await.unwrap());
    }
    serials.dedup();
    assert_eq!(serials.len(), 1);
    assert_eq!(issuer.count(), 1);
}

async fn two_managers_twenty_names<S: Storage + ?Sized>(a: Arc<S>, b: Arc<S>) {
    let ca: Arc<dyn Issuer> = Arc::new(LocalCaIssuer::new(Arc::new(CertStore::new(Arc::clone(&a)))));
    let issuer = Counting::new(ca);
    let ma = Arc::new(manager(Arc::new(CertStore::new(a)), issuer.clone()));
    let mb = Arc::new(manager(Arc::new(CertStore::new(b)), issuer.clone()));
    let mut tasks = Vec::new();
    for i in 0..20 {
        for m in [&ma, &mb] {
            let m = Arc::clone(m);
            tasks.push(tokio::spawn(async move {
                m.ensure(&CertRequest::new([format!("n{i}.example.com")])).await.unwrap()
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(issuer.count(), 20, "exactly one order per name across both managers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_managers_on_one_directory_place_twenty_orders_for_twenty_names() {
    let dir = tempfile_dir();
    // Two FileStorage values on one directory: nothing shared but the files.
    two_managers_twenty_names(
        Arc::new(FileStorage::new(&dir).unwrap()),
        Arc::new(FileStorage::new(&dir).unwrap()),
    )
    .await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_managers_on_one_postgres_place_twenty_orders_for_twenty_names() {
    let pg = testkit::PostgresServer::start().unwrap();
    let a = Arc::new(PostgresStorage::connect(&pg.connection_string()).await.unwrap());
    let b = Arc::new(PostgresStorage::connect(&pg.connection_string()).await.unwrap());
    two_managers_twenty_names(a, b).await;
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("manager-{}", rand_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renews_when_due_on_the_injected_clock() {
    let (store, issuer) = memory_setup();
    let (m, clock) = clocked(Arc::clone(&store), issuer.clone());
    let first = m.ensure(&CertRequest::new(["renew.example.com"])).await.unwrap();
    m.maintain().await;
    assert_eq!(issuer.count(), 1, "not due yet");
    clock.advance(time::Duration::days(61)); // 90-day certificate: due at day 60
    m.maintain().await;
    assert_eq!(issuer.count(), 2, "{:#?}", m.activity("renew.example.com").await.unwrap());
    let renewed = m.get("renew.example.com").await.unwrap();
    assert_ne!(renewed.meta().serial, first.meta().serial);
    let log = m.activity("renew.example.com").await.unwrap();
    assert!(matches!(log[0].kind, EventKind::Renewed { .. }), "{log:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_keeps_the_key_algorithm() {
    let (store, issuer) = memory_setup();
    let (m, clock) = clocked(Arc::clone(&store), issuer.clone());
    let mut request = CertRequest::new(["p384.example.com"]);
    request.key = acme_core::KeyAlgorithm::EcdsaP384;
    m.ensure(&request).await.unwrap();
    clock.advance(time::Duration::days(61));
    m.maintain().await;
    assert_eq!(issuer.count(), 2);
    let renewed = m.get("p384.example.com").await.unwrap();
    assert_eq!(renewed.meta().key_type, cert_store::KeyType::EcdsaP384);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_managed_certificates_are_warned_about_never_renewed() {
    let (store, issuer) = memory_setup();
    let (m, clock) = clocked(Arc::clone(&store), issuer.clone());
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["own.example.com".to_owned()]).unwrap();
    params.not_before = time::OffsetDateTime::now_utc();
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(100);
    let cert = params.self_signed(&key).unwrap();
    m.import_self_managed(&cert.pem(), &key.serialize_pem()).await.unwrap();
    assert!(m.import_self_managed(&cert.pem(), "garbage").await.is_err());

    let expiring = |m: &Logged<MemoryStorage>| {
        let log = futures_block(m.activity("own.example.com")).unwrap();
        log.iter().filter(|e| matches!(e.kind, EventKind::Expiring { .. })).count()
    };
    clock.advance(time::Duration::days(75)); // 25 days left: the 30-day warning
    m.maintain().await;
    m.maintain().await;
    assert_eq!(expiring(&m), 1, "each threshold is announced once");
    clock.advance(time::Duration::days(20)); // 5 days left: the 7-day warning
    m.maintain().await;
    assert_eq!(expiring(&m), 2);
    clock.advance(time::Duration::days(10)); // expired
    m.maintain().await;
    assert_eq!(expiring(&m), 3);
    assert_eq!(m.status("own.example.com"), CertStatus::Expired);
    assert_eq!(issuer.count(), 0, "never renewed");
}

fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_recorded_and_retried_when_due() {
    let (store, issuer) = memory_setup();
    issuer.fail_first.store(1, Ordering::SeqCst);
    let (m, clock) = clocked(Arc::clone(&store), issuer.clone());
    let err = m.ensure(&CertRequest::new(["flaky.example.com"])).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::CaUnavailable);
    assert_eq!(m.status("flaky.example.com"), CertStatus::Failed { class: ErrorClass::CaUnavailable });
    m.maintain().await;
    assert_eq!(issuer.count(), 0, "not retried before the backoff");
    clock.advance(time::Duration::minutes(2)); // first backoff: 1 min ± 10 %
    m.maintain().await;
    assert_eq!(issuer.count(), 1);
    assert_eq!(m.status("flaky.example.com"), CertStatus::Valid);
    assert!(
        store.storage().get(&acme_core::keys::retry("flaky.example.com").unwrap()).await.unwrap().is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_orders_resume_when_a_manager_starts() {
    let (store, issuer) = memory_setup();
    // A crashed process left its pending record.
    let request = serde_json::to_vec(&CertRequest::new(["resume.example.com"])).unwrap();
    store.storage().put(&acme_core::keys::pending("resume.example.com").unwrap(), &request).await.unwrap();
    let m = manager(Arc::clone(&store), issuer.clone());
    // Nothing runs before the embedder says so (its listeners may not be bound yet).
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        store.load("resume.example.com").await.unwrap().is_none(),
        "no provisioning before start_background"
    );
    assert_eq!(issuer.count(), 0);
    m.start_background();
    for _ in 0..200 {
        if store.load("resume.example.com").await.unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        store.load("resume.example.com").await.unwrap().is_some(),
        "the background task finished the order"
    );
    assert_eq!(issuer.count(), 1);
    drop(m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_record_whose_certificate_was_stored_is_cleared_without_an_order() {
    let (store, issuer) = memory_setup();
    let m = CertManager::new(Arc::clone(&store), issuer.clone(), ManagerConfig::default());
    m.ensure(&CertRequest::new(["stored.example.com"])).await.unwrap();
    // The process crashed after saving the certificate, before clearing its record.
    let key = acme_core::keys::pending("stored.example.com").unwrap();
    let request = serde_json::to_vec(&CertRequest::new(["stored.example.com"])).unwrap();
    store.storage().put(&key, &request).await.unwrap();
    m.maintain().await;
    assert!(store.storage().get(&key).await.unwrap().is_none(), "the record is cleared");
    assert_eq!(issuer.count(), 1, "no second order");
}

/// The local CA, with a renewal window (as an ACME CA's ARI) set by the test.
struct WithWindow {
    inner: Arc<Counting>,
    window: std::sync::Mutex<Option<time::OffsetDateTime>>,
}

#[async_trait]
impl Issuer for WithWindow {
    async fn issue(&self, request: &CertRequest) -> Result<CertBundle, IssueError> {
        self.inner.issue(request).await
    }
    fn name(&self) -> String {
        "with-window".into()
    }
    async fn renewal_window(&self, _bundle: &CertBundle) -> Option<time::OffsetDateTime> {
        *self.window.lock().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cas_renewal_window_wins_over_the_default_schedule() {
    let (store, counting) = memory_setup();
    let issuer = Arc::new(WithWindow { inner: counting.clone(), window: std::sync::Mutex::new(None) });
    let (m, clock) = clocked(Arc::clone(&store), issuer.clone());
    m.ensure(&CertRequest::new(["ari.example.com"])).await.unwrap();
    clock.advance(time::Duration::days(35)); // default renewal at day 60
    m.maintain().await;
    assert_eq!(counting.count(), 1);
    *issuer.window.lock().unwrap() = Some(clock.now() - time::Duration::hours(1)); // e.g. revocation ahead
    m.maintain().await;
    assert_eq!(counting.count(), 2, "renewed inside the CA's window");
}

#[test]
fn construction_needs_no_runtime_and_starts_nothing() {
    let (store, issuer) = memory_setup();
    let m = CertManager::new(Arc::clone(&store), issuer.clone(), ManagerConfig::default())
        .with_sink(Arc::new(Recorded::default()));
    // Outside a runtime: logged, not a panic.
    m.start_background();
    let built = CertManager::builder(store, issuer).sink(Arc::new(Recorded::default())).build();
    drop((m, built));
}

/// Records events and what the manager tells its listeners.
#[derive(Default)]
struct Recorded {
    events: std::sync::Mutex<Vec<EventKind>>,
    updated: std::sync::Mutex<Vec<String>>,
    removed: std::sync::Mutex<Vec<String>>,
}

#[async_trait]
impl acme_core::EventSink for Recorded {
    async fn publish(&self, event: &acme_core::Event) {
        self.events.lock().unwrap().push(event.kind.clone());
    }
}

impl CertListener for Recorded {
    fn updated(&self, bundle: &CertBundle) {
        self.updated.lock().unwrap().push(bundle.meta().serial.clone());
    }
    fn removed(&self, name: &str) {
        self.removed.lock().unwrap().push(name.to_owned());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_hear_of_issuance_renewal_and_forget_and_sinks_need_no_clock() {
    let (store, issuer) = memory_setup();
    let sink = Arc::new(Recorded::default());
    let clock = Arc::new(ManualClock::starting_now());
    let m = CertManager::builder(Arc::clone(&store), issuer.clone()).clock(clock.clone()).build();
    m.add_sink(sink.clone());
    let listener = Arc::new(Recorded::default());
    m.subscribe(listener.clone());

    let first = m.ensure(&CertRequest::new(["shop.example.com"])).await.unwrap();
    assert_eq!(*listener.updated.lock().unwrap(), [first.meta().serial.clone()]);
    // The same certificate again: nothing new to tell.
    m.ensure(&CertRequest::new(["shop.example.com"])).await.unwrap();
    assert_eq!(listener.updated.lock().unwrap().len(), 1);
    assert!(sink.events.lock().unwrap().iter().any(|k| matches!(k, EventKind::Issued { .. })));

    clock.advance(time::Duration::days(61));
    m.maintain().await;
    let renewed = m.certificate("shop.example.com").await.unwrap();
    assert_ne!(renewed.meta().serial, first.meta().serial);
    assert_eq!(
        *listener.updated.lock().unwrap(),
        [first.meta().serial.clone(), renewed.meta().serial.clone()]
    );
    assert!(sink.events.lock().unwrap().iter().any(|k| matches!(k, EventKind::Renewed { .. })));

    m.forget("Shop.Example.com.");
    assert_eq!(*listener.removed.lock().unwrap(), ["shop.example.com"]);
    assert_eq!(m.status("shop.example.com"), CertStatus::Pending);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_errors_are_typed_and_keep_the_issue_error() {
    let (store, issuer) = memory_setup();
    let m = manager(store, issuer.clone());
    let bundle = m.provision("od.example.com").await.unwrap();
    assert_eq!(bundle.meta().names, ["od.example.com"]);
    issuer.fail_first.store(1, Ordering::SeqCst);
    let err = m.provision("down.example.com").await.unwrap_err();
    assert!(matches!(err, ProvisionError::Temporary { .. }), "{err:?}");
    let source = std::error::Error::source(&err).unwrap().downcast_ref::<IssueError>().unwrap();
    assert_eq!(source.class(), ErrorClass::CaUnavailable);
    let err = m.provision("bad_name.example.com").await.unwrap_err();
    assert_eq!(err.name(), "bad_name.example.com");
}
