//! 100 hostnames issued from pebble through testkit's fault-injecting proxy
//! (dropped connections before and after pebble saw the request, 500, 503,
//! 429, slow answers) while pebble itself rejects half the nonces.
//!
//! After every round each hostname is issued, or failed with the class of a
//! fault it met and a retry record scheduled by the [`RetryPolicy`]; every
//! attempt left exactly its events; an order the client learned of is never
//! placed twice (a retry resumes it) and no hostname is finalized twice.
//! Rounds go on (the manager's own retries, on a manual clock) until all
//! 100 are issued.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use acme_core::{
    AcmeIssuer, CertManager, CertRequest, CertStatus, Clock, ErrorClass, Event, EventKind, EventSink,
    IssueError, Issuer, ManagerConfig, ManualClock,
};
use cert_store::{CertBundle, CertStore, MemoryStorage, Storage};
use futures_util::StreamExt;
use testkit::{DnsServer, Exchange, Fault, FaultPlan, FaultProxy, PebbleServer, Zone};

const HOSTS: usize = 100;

fn host(i: usize) -> String {
    format!("f{i}.example.test")
}

fn faulty(seed: u64) -> FaultPlan {
    FaultPlan {
        drop_before: 0.02,
        drop_after: 0.02,
        server_error: 0.015,
        unavailable: 0.015,
        rate_limited: 0.01,
        slow: 0.05,
        slow_by: Duration::from_millis(300),
        seed,
        ..FaultPlan::none()
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

#[async_trait::async_trait]
impl EventSink for Recorder {
    async fn publish(&self, event: &Event) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    fn of(&self, hostname: &str) -> Vec<EventKind> {
        self.0.lock().unwrap().iter().filter(|e| e.hostname == hostname).map(|e| e.kind.clone()).collect()
    }
}

/// The class an injected fault must surface as, if it surfaces.
fn class_of(fault: Fault) -> Option<ErrorClass> {
    match fault {
        Fault::DropBefore
        | Fault::DropAfter
        | Fault::ServerError
        | Fault::Unavailable
        | Fault::UpstreamFailed => Some(ErrorClass::CaUnavailable),
        Fault::RateLimited => Some(ErrorClass::RateLimited),
        Fault::None | Fault::Slow | Fault::Stall => None,
    }
}

/// Which hostname each exchange was about, from the URLs pebble handed out
/// (orders, authorizations, challenges, finalize and certificate URLs);
/// `None` for the directory, nonces and the account.
/// The path of an absolute URL (`https://host:port/a/b` → `/a/b`).
fn path(url: &str) -> String {
    url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap_or_default()
}

fn attribute(journal: &[Exchange]) -> Vec<Option<String>> {
    let mut owner: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for e in journal {
        let name = if e.path.ends_with("order-plz") {
            e.payload.as_ref().and_then(|p| p["identifiers"][0]["value"].as_str()).map(str::to_owned)
        } else {
            owner.get(&e.path).cloned()
        };
        if let (Some(name), Some(body)) = (&name, &e.body) {
            let mut urls: Vec<String> = e.location.iter().cloned().collect();
            for field in ["finalize", "certificate"] {
                urls.extend(body[field].as_str().map(str::to_owned));
            }
            for list in ["authorizations", "challenges"] {
                for item in body[list].as_array().into_iter().flatten() {
                    urls.extend(item.as_str().or_else(|| item["url"].as_str()).map(str::to_owned));
                }
            }
            for url in urls {
                owner.insert(path(&url), name.clone());
            }
        }
        out.push(name);
    }
    out
}

struct Round {
    started: Instant,
    outcomes: HashMap<String, Result<Arc<CertBundle>, IssueError>>,
}

/// Checks one round: outcome, status, retry record, events, fault classes.
async fn check_round(
    round: &Round,
    journal: &[Exchange],
    owners: &[Option<String>],
    m: &CertManager<MemoryStorage>,
    clock: &ManualClock,
    events: &Recorder,
    root: &str,
) {
    // The faults each hostname met in this round, and those nobody owns.
    let mut met: HashMap<&str, HashSet<ErrorClass>> = HashMap::new();
    let mut anyone: HashSet<ErrorClass> = HashSet::new();
    for (e, owner) in journal.iter().zip(owners) {
        // instant-acme reports any failed newNonce answer without its status
        // ("error response from newNonce resource"): a 429 there can only
        // be told as the CA being unavailable.
        let class = if e.path.contains("nonce") {
            e.fault.is_failure().then_some(ErrorClass::CaUnavailable)
        } else {
            class_of(e.fault)
        };
        let Some(class) = class else { continue };
        if e.started < round.started {
            continue;
        }
        match owner {
            Some(name) => met.entry(name.as_str()).or_default().insert(class),
            None => anyone.insert(class),
        };
    }
    for (name, outcome) in &round.outcomes {
        let kinds = events.of(name);
        let attempt = &kinds[kinds.iter().rposition(|k| *k == EventKind::IssuanceStarted).unwrap()..];
        match outcome {
            Ok(bundle) => {
                common::verify(bundle, root, name).unwrap();
                assert_eq!(m.status(name), CertStatus::Valid);
                assert_eq!(m.retry_state(name).await.unwrap(), None, "{name}: retry record cleared");
                let serial = bundle.meta().serial.clone();
                assert_eq!(attempt, [EventKind::IssuanceStarted, EventKind::Issued { serial }], "{name}");
            }
            Err(error) => {
                let class = error.class();
                let possible: HashSet<ErrorClass> =
                    met.get(name.as_str()).into_iter().flatten().chain(&anyone).copied().collect();
                assert!(
                    possible.contains(&class),
                    "{name}: {class:?} without such a fault ({possible:?}): {:?}",
                    attempt.last()
                );
                assert_eq!(m.status(name), CertStatus::Failed { class }, "{name}");
                let state = m.retry_state(name).await.unwrap().unwrap();
                assert_eq!(state.class, class);
                let wait = state.next_at.unwrap() - clock.now();
                match class {
                    // instant-acme does not pass the CA's Retry-After on: the policy's hour.
                    ErrorClass::RateLimited => assert_eq!(wait, time::Duration::HOUR, "{name}"),
                    ErrorClass::CaUnavailable => assert!(
                        wait >= time::Duration::seconds(50) && wait <= time::Duration::hours(7),
                        "{name}: backoff {wait}"
                    ),
                    other => panic!("{name}: class {other:?} from a transport fault"),
                }
                let mut expected = vec![EventKind::IssuanceStarted];
                if class == ErrorClass::RateLimited {
                    expected.push(EventKind::RateLimited);
                }
                assert_eq!(attempt.len(), expected.len() + 1, "{name}: {attempt:?}");
                assert_eq!(attempt[..expected.len()], expected, "{name}");
                assert!(
                    matches!(attempt.last(), Some(EventKind::Failed { class: c, .. }) if *c == class),
                    "{name}: {attempt:?}"
                );
            }
        }
    }
}

/// No order the client learned of was placed twice for its hostname, and
/// no hostname was finalized twice. Returns (orders placed, answers to
/// new-order lost on the way back).
fn check_orders(journal: &[Exchange], owners: &[Option<String>]) -> (usize, usize) {
    let mut known: HashMap<&str, usize> = HashMap::new();
    let mut finalized: HashMap<&str, usize> = HashMap::new();
    let (mut placed, mut lost) = (0, 0);
    for (e, owner) in journal.iter().zip(owners) {
        let Some(name) = owner.as_deref() else { continue };
        let created = e.upstream_status == Some(201);
        if e.path.ends_with("order-plz") && created {
            placed += 1;
            if e.fault == Fault::DropAfter {
                lost += 1;
            } else {
                *known.entry(name).or_default() += 1;
            }
        }
        if e.path.contains("finalize") && e.upstream_status == Some(200) {
            *finalized.entry(name).or_default() += 1;
        }
    }
    for (name, n) in &known {
        assert_eq!(*n, 1, "{name}: {n} orders placed although the client knew the first");
    }
    for (name, n) in &finalized {
        assert_eq!(*n, 1, "{name}: finalized {n} times");
    }
    (placed, lost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_hostnames_through_a_faulty_ca_all_end_issued() {
    let records: String = (0..HOSTS).map(|i| format!("f{i} A 127.0.0.1\n")).collect();
    let dns = DnsServer::builder().zone(Zone::new("example.test", &records)).recursion(true).start().unwrap();
    let pebble = PebbleServer::builder().dns_server(dns.addr()).nonce_reject_percent(50).start().unwrap();
    let proxy = FaultProxy::in_front_of(&pebble, faulty(9)).await.unwrap();
    let root = pebble.issuing_root_pem().unwrap();

    let store = Arc::new(CertStore::new(Arc::new(MemoryStorage::new())));
    let acme = AcmeIssuer::new(&proxy.directory_url(), Arc::clone(&store))
        .with_root(pebble.tls_root_path())
        .with_poll_timeout(Duration::from_secs(30));
    let _responder = common::serve_http01(
        SocketAddr::from(([127, 0, 0, 1], pebble.http_port())),
        acme.responses().clone(),
    )
    .await;
    let clock = Arc::new(ManualClock::starting_now());
    let events = Arc::new(Recorder::default());
    let config = ManagerConfig { concurrency: 10, ..ManagerConfig::default() };
    let m = CertManager::builder(Arc::clone(&store), Arc::new(acme))
        .config(config)
        .clock(clock.clone())
        .sink(events.clone())
        .build();

    // Round 1: every hostname asked for once, ten at a time (as a worker would).
    let started = Instant::now();
    let outcomes = futures_util::stream::iter(0..HOSTS)
        .map(|i| {
            let m = &m;
            async move {
                let name = host(i);
                let outcome = m.ensure(&CertRequest::new([name.clone()])).await;
                (name, outcome)
            }
        })
        .buffer_unordered(10)
        .collect::<HashMap<_, _>>()
        .await;
    let mut failed: Vec<String> =
        outcomes.iter().filter(|(_, o)| o.is_err()).map(|(n, _)| n.clone()).collect();
    let journal = proxy.journal();
    let owners = attribute(&journal);
    check_round(&Round { started, outcomes }, &journal, &owners, &m, &clock, &events, &root).await;
    let mut failed_per_round = vec![failed.len()];
    assert!(failed_per_round[0] > 0, "the faults must bite (else the test proves nothing)");

    // Later rounds: the manager's own retries once they are due, faults still on.
    let mut rounds = 1;
    while !failed.is_empty() && rounds < 12 {
        rounds += 1;
        if rounds == 6 {
            proxy.set_plan(FaultPlan::none());
        }
        clock.advance(time::Duration::hours(7));
        let started = Instant::now();
        m.maintain().await;
        let mut outcomes = HashMap::new();
        for name in &failed {
            let outcome = match m.status(name) {
                CertStatus::Valid => Ok(m.get(name).await.unwrap()),
                CertStatus::Failed { class } => Err(failure_of(class)),
                other => panic!("{name}: {other:?} after a maintenance round"),
            };
            outcomes.insert(name.clone(), outcome);
        }
        failed = outcomes.iter().filter(|(_, o)| o.is_err()).map(|(n, _)| n.clone()).collect();
        failed_per_round.push(failed.len());
        let journal = proxy.journal();
        let owners = attribute(&journal);
        check_round(&Round { started, outcomes }, &journal, &owners, &m, &clock, &events, &root).await;
    }
    assert!(failed.is_empty(), "still failing after {rounds} rounds: {failed:?}");

    let journal = proxy.journal();
    let owners = attribute(&journal);
    let (placed, lost) = check_orders(&journal, &owners);
    for i in 0..HOSTS {
        let kinds = events.of(&host(i));
        let issued = kinds.iter().filter(|k| matches!(k, EventKind::Issued { .. })).count();
        assert_eq!(issued, 1, "{}: {kinds:?}", host(i));
    }
    // Nothing left behind: no published answer, no unfinished order.
    for prefix in [
        acme_core::keys::challenges(),
        acme_core::keys::acme_orders(),
        acme_core::keys::pending_prefix(),
        acme_core::keys::retry_prefix(),
    ] {
        let prefix = prefix.unwrap();
        let left = store.storage().list(&prefix).await.unwrap();
        assert!(left.is_empty(), "{prefix:?}: {left:?}");
    }
    let faults = journal.iter().filter(|e| e.fault.is_failure()).count();
    println!(
        "{HOSTS} hostnames, failing after each round: {failed_per_round:?} (faults off from round 6); \
         {} requests, {faults} faults injected, {placed} orders placed ({lost} answers to new-order lost)",
        journal.len()
    );
}

/// An error of `class` (the round's outcome as the status reports it).
fn failure_of(class: ErrorClass) -> IssueError {
    match class {
        ErrorClass::RateLimited => IssueError::RateLimited { retry_after: None },
        ErrorClass::CaUnavailable => IssueError::ca_unavailable(""),
        other => panic!("class {other:?} from a transport fault"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_down_when_the_account_is_restored_is_temporary() {
    let pebble = PebbleServer::builder().start().unwrap();
    let proxy = FaultProxy::in_front_of(&pebble, FaultPlan::none()).await.unwrap();
    let store = Arc::new(CertStore::new(Arc::new(MemoryStorage::new())));
    let issuer =
        || AcmeIssuer::new(&proxy.directory_url(), Arc::clone(&store)).with_root(pebble.tls_root_path());
    // The account is created (the order itself fails: nobody answers HTTP-01).
    let first = issuer().with_poll_timeout(Duration::from_secs(5));
    let _ = first.issue(&CertRequest::new(["restore.example.test"])).await;
    assert!(store.load_account(&proxy.directory_url()).await.unwrap().is_some());
    // A restarted process restores it while the CA answers 503 to everything.
    proxy.set_plan(FaultPlan { unavailable: 1.0, ..FaultPlan::none() });
    let err = issuer().issue(&CertRequest::new(["restore.example.test"])).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::CaUnavailable, "{err}");
    proxy.set_plan(FaultPlan { rate_limited: 1.0, ..FaultPlan::none() });
    let err = issuer().issue(&CertRequest::new(["restore.example.test"])).await.unwrap_err();
    assert!(
        [ErrorClass::CaUnavailable, ErrorClass::RateLimited].contains(&err.class()),
        "temporary, not an account problem: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_the_ca_stalls_on_is_given_up_and_a_new_one_succeeds() {
    let records = "stall A 127.0.0.1\n";
    let dns = DnsServer::builder().zone(Zone::new("example.test", records)).recursion(true).start().unwrap();
    let pebble = PebbleServer::builder().dns_server(dns.addr()).start().unwrap();
    let proxy = FaultProxy::in_front_of(
        &pebble,
        FaultPlan { stall: 1.0, only_path: Some("/my-order/".into()), ..FaultPlan::none() },
    )
    .await
    .unwrap();
    let store = Arc::new(CertStore::new(Arc::new(MemoryStorage::new())));
    let acme = AcmeIssuer::new(&proxy.directory_url(), Arc::clone(&store))
        .with_root(pebble.tls_root_path())
        .with_order_timeout(Duration::from_secs(3));
    let _responder = common::serve_http01(
        SocketAddr::from(([127, 0, 0, 1], pebble.http_port())),
        acme.responses().clone(),
    )
    .await;
    let request = CertRequest::new(["stall.example.test"]);
    // The CA stops answering about the order once it is placed.
    let err = acme.issue(&request).await.unwrap_err();
    assert_eq!(err.class(), ErrorClass::CaUnavailable, "{err}");
    let wedged =
        proxy.journal().iter().find(|e| e.path.ends_with("order-plz")).unwrap().location.clone().unwrap();
    // That order stays wedged; the next attempt places a new one instead of resuming it.
    proxy.set_plan(FaultPlan { stall: 1.0, only_path: Some(path(&wedged)), ..FaultPlan::none() });
    let bundle = acme.issue(&request).await.unwrap();
    common::verify(&bundle, &pebble.issuing_root_pem().unwrap(), "stall.example.test").unwrap();
    let placed = proxy
        .journal()
        .iter()
        .filter(|e| e.path.ends_with("order-plz") && e.upstream_status == Some(201))
        .count();
    assert_eq!(placed, 2);
    let left = store.storage().list(&acme_core::keys::challenges().unwrap()).await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}
