//! A FileStorage lease whose holder process was killed is free at once, not
//! only after its ttl: the holder's pid and start time are in the record.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    sync::Arc,
    time::Duration,
};

use cert_store::{FileStorage, Key, Leases};

const CHILD_ENV: &str = "LEASE_CRASH_CHILD_DIR";

#[tokio::test]
#[ignore = "run by a_killed_holders_lease_is_free_at_once as a child process"]
async fn lease_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let storage = Arc::new(FileStorage::new(dir).unwrap());
    let _guard = storage.lock(&Key::new("work").unwrap(), Duration::from_secs(3600)).await.unwrap();
    println!("LEASE-HELD");
    std::future::pending::<()>().await;
}

#[tokio::test]
async fn a_killed_holders_lease_is_free_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["lease_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let held = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .any(|l| l.is_ok_and(|l| l.contains("LEASE-HELD")));
    assert!(held, "the child did not take the lease");
    let storage = Arc::new(FileStorage::new(dir.path()).unwrap());
    let name = Key::new("work").unwrap();
    // Held by a live process: refused, although this is another holder.
    assert!(storage.try_lock(&name, Duration::from_secs(60)).await.unwrap().is_none());
    child.kill().unwrap(); // SIGKILL: no release
    child.wait().unwrap();
    // Its ttl (1 h) is far away, but the process is gone.
    assert!(storage.try_lock(&name, Duration::from_secs(60)).await.unwrap().is_some());
}
