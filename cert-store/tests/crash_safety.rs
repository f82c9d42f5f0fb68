//! A writer process killed with SIGKILL at random moments never leaves a torn
//! or missing bundle behind in a `FileStorage`.
//!
//! The test re-executes its own binary as the writer (`crash_child`, ignored
//! unless `CRASH_CHILD_DIR` is set), waits until it is writing, kills it, and
//! checks the store — twenty times.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;

use std::{
    collections::{HashMap, HashSet},
    io::{BufRead, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use cert_store::{CertBundle, CertStore, FileStorage, Provenance};
use rand::Rng;

const NAMES: usize = 8;
const CHILD_ENV: &str = "CRASH_CHILD_DIR";

fn name(i: usize) -> String {
    format!("crash{i}.example.com")
}

/// The writer: saves alternating versions of every bundle until killed.
#[tokio::test]
#[ignore = "run by crash_safety_under_sigkill as a child process"]
async fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let store = CertStore::new(Arc::new(FileStorage::new(&dir).unwrap()))
        .with_index_lease_ttl(Duration::from_millis(300));
    let versions: Vec<[CertBundle; 2]> = (0..NAMES)
        .map(|i| {
            [0, 1].map(|_| {
                let (c, k) = common::self_signed(&[&name(i)]);
                CertBundle::from_pem(&c, &k, Provenance::LocalCa).unwrap()
            })
        })
        .collect();
    // Publish the serials this run may write before writing any of them.
    let catalog: Vec<String> = versions.iter().flatten().map(|b| b.meta().serial.clone()).collect();
    std::fs::write(
        Path::new(&dir).join("..").join(format!("catalog-{}", std::process::id())),
        catalog.join("\n"),
    )
    .unwrap();
    // Every name exists once before the parent starts killing.
    for v in &versions {
        store.save(&v[0]).await.unwrap();
    }
    println!("CRASH-CHILD-READY");
    for round in 1usize.. {
        for v in &versions {
            store.save(&v[round % 2]).await.unwrap();
        }
    }
}

#[test]
fn crash_safety_under_sigkill() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("store");
    let exe = std::env::current_exe().unwrap();
    let mut allowed: HashSet<String> = HashSet::new();
    let mut rng = rand::rng();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for kill in 0..20 {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let ready = BufReader::new(stdout).lines().any(|l| l.is_ok_and(|l| l.contains("CRASH-CHILD-READY")));
        assert!(ready, "writer {kill} did not start");
        std::thread::sleep(Duration::from_millis(rng.random_range(5..250)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let catalog = std::fs::read_to_string(base.path().join(format!("catalog-{}", child.id()))).unwrap();
        allowed.extend(catalog.lines().map(str::to_owned));

        let store = CertStore::new(Arc::new(FileStorage::new(&dir).unwrap()));
        let found: HashMap<String, CertBundle> = runtime.block_on(async {
            let mut found = HashMap::new();
            for i in 0..NAMES {
                if let Some(b) = store.load(&name(i)).await.unwrap() {
                    found.insert(name(i), b);
                }
            }
            // The index record is never torn either.
            store.index().await.unwrap();
            found
        });
        // A child prints READY only after saving every name once.
        assert_eq!(found.len(), NAMES, "after kill {kill}: a bundle went missing");
        for (n, bundle) in &found {
            let reparsed = CertBundle::from_pem(bundle.chain_pem(), bundle.key_pem(), Provenance::LocalCa)
                .unwrap_or_else(|e| panic!("after kill {kill}: {n} is torn: {e}"));
            assert_eq!(
                reparsed.meta(),
                bundle.meta(),
                "after kill {kill}: {n}'s meta disagrees with its PEM"
            );
            assert!(
                allowed.contains(&bundle.meta().serial),
                "after kill {kill}: {n} holds an unknown version"
            );
        }
    }
}
