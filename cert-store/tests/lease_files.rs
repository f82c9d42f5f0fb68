//! `FileStorage` deletes the file of a released lease: a store that took
//! 10,000 distinct leases (one per outbox event, say) holds no more lease
//! files than leases held at that moment.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use cert_store::{FileStorage, Key, Leases, Storage};

/// Files (not directories) below `dir`.
fn files_below(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() { files_below(&e.path()) } else { 1 }
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn released_leases_leave_no_files() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Arc::new(FileStorage::new(dir.path()).unwrap());
    let leases = dir.path().join(".leases");
    let ttl = Duration::from_secs(30);
    // Three leases held throughout.
    let mut held = Vec::new();
    for i in 0..3 {
        held.push(storage.lock(&Key::new(format!("edge/leases/work/{i}")).unwrap(), ttl).await.unwrap());
    }
    // 10,000 distinct leases, each taken and released, 8 at a time.
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (storage, next) = (Arc::clone(&storage), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= 10_000 {
                    break;
                }
                let name = Key::new(format!("edge/leases/outbox/{i:05}")).unwrap();
                let guard = storage.lock(&name, ttl).await.unwrap();
                guard.release().await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(files_below(&leases), 3, "lease files left after 10,000 acquire + release with 3 held");
    for guard in held {
        guard.release().await;
    }
    assert_eq!(files_below(&leases), 0, "lease files left with no lease held");

    // Renewing or releasing a lease nobody holds creates no file.
    let name = Key::new("edge/leases/outbox/none").unwrap();
    assert!(!storage.renew_lease(&name, "nobody", ttl).await.unwrap());
    storage.release_lease(&name, "nobody").await.unwrap();
    assert_eq!(files_below(&leases), 0);
    // A lease held by another keeps its file when a stranger releases it.
    assert!(storage.try_acquire_lease(&name, "a", ttl).await.unwrap());
    storage.release_lease(&name, "b").await.unwrap();
    assert_eq!(files_below(&leases), 1);
    assert!(!storage.try_acquire_lease(&name, "b", ttl).await.unwrap());
}

/// Release deletes the file while other processes wait for its lock: two
/// `FileStorage`s on one directory (nothing shared but the files) hammer a
/// few lease names; at no moment do two holders hold one lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_released_lease_files_keeps_leases_exclusive() {
    let dir = tempfile::tempdir().unwrap();
    let stores =
        [Arc::new(FileStorage::new(dir.path()).unwrap()), Arc::new(FileStorage::new(dir.path()).unwrap())];
    let inside: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    let mut tasks = Vec::new();
    for t in 0..12usize {
        let storage = Arc::clone(&stores[t % 2]);
        let inside = Arc::clone(&inside);
        tasks.push(tokio::spawn(async move {
            for round in 0..150usize {
                let n = (t + round) % 3;
                let name = Key::new(format!("hot/{n}")).unwrap();
                let holder = format!("holder-{t}");
                if storage.try_acquire_lease(&name, &holder, Duration::from_secs(30)).await.unwrap() {
                    assert_eq!(inside[n].fetch_add(1, Ordering::SeqCst), 0, "two holders of hot/{n}");
                    tokio::task::yield_now().await;
                    inside[n].fetch_sub(1, Ordering::SeqCst);
                    storage.release_lease(&name, &holder).await.unwrap();
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(files_below(&dir.path().join(".leases")), 0);
}
