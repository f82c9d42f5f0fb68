//! A process killed in the middle of an order: the next process on the same
//! store finishes it, with the same ACME account.
//!
//! The test binary re-executes itself as the victim (`victim`, ignored unless
//! `ACME_VICTIM_DIR` is set), waits until it has started the order, kills it
//! with SIGKILL, and restarts the work in-process.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use acme_core::{AcmeIssuer, CertManager, CertRequest, ChallengeResponses, ManagerConfig};
use cert_store::{CertStore, FileStorage};
use testkit::{DnsServer, PebbleServer, Zone};

const NAME: &str = "restart.example.test";

fn config() -> ManagerConfig {
    ManagerConfig { lease_ttl: Duration::from_secs(2), ..ManagerConfig::default() }
}

async fn manager(dir: &str, directory: &str, root: &str, http_port: u16) -> CertManager<FileStorage> {
    let store = Arc::new(
        CertStore::new(Arc::new(FileStorage::new(dir).unwrap())).with_index_lease_ttl(Duration::from_secs(2)),
    );
    let responses = ChallengeResponses::default();
    // The responder lives as long as the runtime.
    common::serve_http01(SocketAddr::from(([127, 0, 0, 1], http_port)), responses.clone()).await;
    let acme = AcmeIssuer::new(directory, Arc::clone(&store)).with_root(root).with_responses(responses);
    CertManager::new(store, Arc::new(acme), config())
}

#[tokio::test]
#[ignore = "run by killed_mid_order_the_next_process_finishes as a child"]
async fn victim() {
    let Ok(dir) = std::env::var("ACME_VICTIM_DIR") else { return };
    let directory = std::env::var("ACME_VICTIM_DIRECTORY").unwrap();
    let root = std::env::var("ACME_VICTIM_ROOT").unwrap();
    let port: u16 = std::env::var("ACME_VICTIM_HTTP_PORT").unwrap().parse().unwrap();
    let m = manager(&dir, &directory, &root, port).await;
    println!("VICTIM-STARTED");
    let _ = m.ensure(&CertRequest::new([NAME])).await;
    println!("VICTIM-DONE");
    std::future::pending::<()>().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_order_the_next_process_finishes() {
    let dns = DnsServer::builder()
        .zone(Zone::new("example.test", "restart A 127.0.0.1\n"))
        .recursion(true)
        .start()
        .unwrap();
    let pebble = PebbleServer::builder().dns_server(dns.addr()).start().unwrap();
    let dir = tempfile_dir();
    let pending = std::path::Path::new(&dir).join(acme_core::keys::pending(NAME).unwrap().as_str());

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["victim", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env("ACME_VICTIM_DIR", &dir)
        .env("ACME_VICTIM_DIRECTORY", pebble.directory_url())
        .env("ACME_VICTIM_ROOT", pebble.tls_root_path())
        .env("ACME_VICTIM_HTTP_PORT", pebble.http_port().to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.is_ok_and(|l| l.contains("VICTIM-STARTED"))));
    // Kill it once the order is under way (its pending record exists).
    for _ in 0..400 {
        if pending.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(pending.exists(), "the victim never started its order");
    child.kill().unwrap();
    child.wait().unwrap();
    let account_before = std::fs::read_dir(accounts_dir(&dir)).map(|d| d.count()).unwrap_or(0);

    // The next process: its background task finds the unfinished order.
    let m =
        manager(&dir, &pebble.directory_url(), pebble.tls_root_path().to_str().unwrap(), pebble.http_port())
            .await;
    m.start_background();
    let mut bundle = None;
    // Up to 60 s: a lease the victim held (account creation: 15 s ttl) must expire first.
    for _ in 0..1200 {
        if let Some(b) = m.get(NAME).await {
            bundle = Some(b);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bundle = bundle.unwrap_or_else(|| panic!("not finished: {:?}\n{}", m.status(NAME), pebble.log()));
    common::verify(&bundle, &pebble.issuing_root_pem().unwrap(), NAME).unwrap();
    let accounts = std::fs::read_dir(accounts_dir(&dir)).unwrap().count();
    assert_eq!(accounts, 1, "one account for the directory");
    assert!(account_before <= 1);
    assert!(!pending.exists(), "the pending record is cleared");
    let _ = std::fs::remove_dir_all(dir);
}

/// Where cert-store keeps account credentials (`tls/accounts`, formerly `accounts`).
fn accounts_dir(dir: &str) -> std::path::PathBuf {
    let base = std::path::Path::new(dir);
    let current = base.join("tls").join("accounts");
    if current.exists() { current } else { base.join("accounts") }
}

fn tempfile_dir() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("restart-{nanos}"));
    std::fs::create_dir_all(&dir).unwrap();
    dir.to_str().unwrap().to_owned()
}
