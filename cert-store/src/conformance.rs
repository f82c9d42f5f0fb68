//! The conformance suite every [`Storage`] backend must pass (feature `testing`).
//!
//! Each check takes a shared storage, works under a fresh random namespace (so
//! one database or directory can serve many runs) and panics with a message
//! on the first violation. Three ways to run them:
//!
//! - [`storage_conformance_tests!`](crate::storage_conformance_tests): one
//!   `#[tokio::test]` per check, in a module you name (so several backends can
//!   be tested in one file). The fixture returns the storage, or
//!   `(storage, keep_alive)` where `keep_alive` (a `TempDir`, a server handle,
//!   any `Send + 'static` value) lives until the check ends:
//!
//!   ```ignore
//!   cert_store::storage_conformance_tests!(mod sqlite_suite, || async {
//!       let dir = tempfile::tempdir().unwrap();
//!       (Arc::new(SqliteStorage::open(dir.path().join("store.db")).unwrap()), dir)
//!   });
//!   ```
//! - [`run_all`]: every check in order, returning the first
//!   [`ConformanceFailure`] instead of panicking (a check's panic, or one that
//!   does not finish within [`CHECK_TIMEOUT`], becomes the failure).
//! - [`run_check`]: one check the same way, e.g.
//!   `run_check("round_trip", round_trip(storage)).await`.
//!
//! The [`Storage`] docs state the contract the checks enforce; the
//! `broken_backends` test of this crate keeps four deliberately broken
//! backends that the suite must reject.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime},
};

use rand::Rng;

use crate::{Key, Leases, Prefix, Storage};

/// How long one check may take in [`run_all`] / [`run_check`] before it
/// counts as failed (a lease that is never freed makes `lock` wait forever).
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// The names of every check, in the order [`run_all`] runs them.
pub const CHECKS: &[&str] = &[
    "round_trip",
    "binary_values",
    "listing",
    "overwrite",
    "delete",
    "stat_follows_puts",
    "stat_changes_on_put",
    "concurrent_writers",
    "lease_exclusion",
    "lease_takeover_after_expiry",
    "lease_refresh_keeps_long_job",
    "lease_release_frees",
    "lease_reacquire_by_same_holder",
    "lease_release_by_stale_holder_keeps_new_lease",
];

/// A check that failed: its name and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage conformance check `{check}` failed: {message}")]
pub struct ConformanceFailure {
    /// The check's name (one of [`CHECKS`]).
    pub check: &'static str,
    /// The panic message or timeout.
    pub message: String,
}

/// What a conformance fixture returns: the storage, or the storage and a
/// value kept alive while the checks run (a temporary directory, a database
/// server). Implemented for `Arc<S>` and `(Arc<S>, K)`.
pub trait Fixture {
    /// The backend under test.
    type Storage: Storage + ?Sized;
    /// Kept alive until the checks are done.
    type KeepAlive: Send + 'static;
    /// Splits the fixture into the storage and what to keep alive.
    fn into_parts(self) -> (Arc<Self::Storage>, Self::KeepAlive);
}

impl<S: Storage + ?Sized> Fixture for Arc<S> {
    type Storage = S;
    type KeepAlive = ();
    fn into_parts(self) -> (Arc<S>, ()) {
        (self, ())
    }
}

impl<S: Storage + ?Sized, K: Send + 'static> Fixture for (Arc<S>, K) {
    type Storage = S;
    type KeepAlive = K;
    fn into_parts(self) -> (Arc<S>, K) {
        self
    }
}

fn namespace() -> String {
    format!("conformance-{}", hex::encode(rand::rng().random::<[u8; 6]>()))
}

fn key(ns: &str, rest: &str) -> Key {
    Key::new(format!("{ns}/{rest}")).expect("conformance keys are valid")
}

/// Runs one check (any future that panics on a violation) on its own task:
/// a panic, or not finishing within [`CHECK_TIMEOUT`], is returned as a
/// [`ConformanceFailure`] named `check`.
///
/// # Errors
/// The failure, with the panic message.
pub async fn run_check(
    check: &'static str,
    future: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ConformanceFailure> {
    let failure = |message: String| ConformanceFailure { check, message };
    match tokio::time::timeout(CHECK_TIMEOUT, tokio::spawn(future)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(join)) if join.is_panic() => {
            let payload = join.into_panic();
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "panicked".to_owned());
            Err(failure(message))
        }
        Ok(Err(join)) => Err(failure(format!("the check's task ended: {join}"))),
        Err(_) => Err(failure(format!("did not finish within {CHECK_TIMEOUT:?}"))),
    }
}

/// Every check in order ([`CHECKS`]) on one storage, printing each name as it
/// passes; stops at the first failure. `fixture` is the storage or
/// `(storage, keep_alive)` (see [`Fixture`]).
///
/// # Errors
/// The first [`ConformanceFailure`].
pub async fn run_all<F: Fixture>(fixture: F) -> Result<(), ConformanceFailure> {
    let (storage, keep_alive) = fixture.into_parts();
    macro_rules! check {
        ($($name:ident),*) => {$(
            run_check(stringify!($name), $name(Arc::clone(&storage))).await?;
            println!("conformance: {} ok", stringify!($name));
        )*};
    }
    check!(
        round_trip,
        binary_values,
        listing,
        overwrite,
        delete,
        stat_follows_puts,
        stat_changes_on_put,
        concurrent_writers,
        lease_exclusion,
        lease_takeover_after_expiry,
        lease_refresh_keeps_long_job,
        lease_release_frees,
        lease_reacquire_by_same_holder,
        lease_release_by_stale_holder_keeps_new_lease
    );
    drop(keep_alive);
    Ok(())
}

/// put → get → stat; a missing key reads as `None`.
pub async fn round_trip<S: Storage + ?Sized>(storage: Arc<S>) {
    let ns = namespace();
    let k = key(&ns, "certs/shop.example.com");
    assert_eq!(storage.get(&k).await.expect("get"), None, "missing key must read as None");
    assert_eq!(storage.stat(&k).await.expect("stat"), None, "missing key must stat as None");
    storage.put(&k, b"hello").await.expect("put");
    assert_eq!(storage.get(&k).await.expect("get").as_deref(), Some(&b"hello"[..]));
    let info = storage.stat(&k).await.expect("stat").expect("stat after put");
    assert_eq!(info.size, 5, "stat size");
    let wildcard = key(&ns, "certs/*.example.com");
    storage.put(&wildcard, b"w").await.expect("put wildcard key");
    assert_eq!(storage.get(&wildcard).await.expect("get").as_deref(), Some(&b"w"[..]));
}

/// Arbitrary bytes survive unchanged: every byte value, empty, 1 MiB.
pub async fn binary_values<S: Storage + ?Sized>(storage: Arc<S>) {
    let ns = namespace();
    let all: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for (name, value) in [("all", all), ("empty", Vec::new()), ("big", big)] {
        let k = key(&ns, name);
        storage.put(&k, &value).await.expect("put");
        let back = storage.get(&k).await.expect("get").expect("value present");
        assert!(back == value, "{name}: value changed in storage ({} → {} bytes)", value.len(), back.len());
    }
}

/// `list` is segment-wise, sorted, and sees only what is below the prefix.
pub async fn listing<S: Storage + ?Sized>(storage: Arc<S>) {
    let ns = namespace();
    for k in ["a/x", "a/y/z", "ab/x", "b"] {
        storage.put(&key(&ns, k), b"v").await.expect("put");
    }
    let list = |p: String| {
        let storage = Arc::clone(&storage);
        async move {
            let keys = storage.list(&Prefix::new(p).expect("prefix")).await.expect("list");
            keys.iter().map(|k| k.as_str().to_owned()).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(format!("{ns}/a")).await, [format!("{ns}/a/x"), format!("{ns}/a/y/z")], "prefix a");
    assert_eq!(list(format!("{ns}/ab")).await, [format!("{ns}/ab/x")], "prefix ab");
    assert_eq!(list(format!("{ns}/b")).await, [format!("{ns}/b")], "prefix = key");
    assert_eq!(list(format!("{ns}/none")).await, Vec::<String>::new(), "no match");
    assert_eq!(list(ns.clone()).await.len(), 4, "whole namespace");
    let everything = storage.list(&Prefix::default()).await.expect("list all");
    assert!(everything.iter().filter(|k| k.as_str().starts_with(&ns)).count() == 4, "empty prefix lists all");
}

/// A second put replaces the first entirely (shorter value, no leftovers).
pub async fn overwrite<S: Storage + ?Sized>(storage: Arc<S>) {
    let ns = namespace();
    let k = key(&ns, "k");
    storage.put(&k, b"a much longer first value").await.expect("put");
    storage.put(&k, b"short").await.expect("put");
    assert_eq!(storage.get(&k).await.expect("get").as_deref(), Some(&b"short"[..]));
    assert_eq!(storage.stat(&k).await.expect("stat").map(|i| i.size), Some(5));
}

/// Delete removes; deleting a missing key succeeds.
pub async fn delete<S: Storage + ?Sized>(storage: Arc<S>) {
    let ns = namespace();
    let k = key(&ns, "gone");
    storage.delete(&k).await.expect("delete of a missing key must succeed");
    storage.put(&k, b"v").await.expect("put");
    storage.delete(&k).await.expect("delete");
    assert_eq!(storage.get(&k).await.expect("get"), None);
    assert_eq!(storage.stat(&k).await.expect("stat"), None);
    assert!(storage.list(&Prefix::new(ns).expect("prefix")).await.expect("list").is_empty());
    storage.delete(&k).await.expect("second delete");
}

/// 16 tasks write their own keys and one shared key at once: every value
/// read back is one that was written, whole.
pub async fn concurrent_writers<S: Storage + ?Sized>(storage: Arc<S>) {
    let ns = namespace();
    let shared = key(&ns, "shared");
    let mut tasks = Vec::new();
    for w in 0..16u32 {
        let storage = Arc::clone(&storage);
        let (own, shared) = (key(&ns, &format!("w/{w}")), shared.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..20u32 {
                let value = format!("writer {w} round {i} ").repeat(200);
                storage.put(&own, value.as_bytes()).await.expect("put own");
                storage.put(&shared, value.as_bytes()).await.expect("put shared");
            }
        }));
    }
    for t in tasks {
        t.await.expect("writer task");
    }
    for w in 0..16u32 {
        let v = storage.get(&key(&ns, &format!("w/{w}"))).await.expect("get").expect("own key");
        assert_eq!(v, format!("writer {w} round 19 ").repeat(200).into_bytes(), "writer {w}'s last value");
    }
    let v = String::from_utf8(storage.get(&shared).await.expect("get").expect("shared")).expect("utf8");
    let first = v.split(' ').take(4).collect::<Vec<_>>().join(" ") + " ";
    assert!(v == first.repeat(200), "shared value is torn: {}…", &v[..v.len().min(80)]);
    assert_eq!(storage.list(&Prefix::new(format!("{ns}/w")).expect("prefix")).await.expect("list").len(), 16);
}

/// At most one holder at any instant: 8 tasks × 10 rounds around a counter.
pub async fn lease_exclusion<S: Storage + ?Sized>(storage: Arc<S>) {
    let ns = namespace();
    let name = key(&ns, "lease");
    let inside = Arc::new(AtomicUsize::new(0));
    let rounds = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (storage, name, inside, rounds) =
            (Arc::clone(&storage), name.clone(), Arc::clone(&inside), Arc::clone(&rounds));
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                let guard = storage.lock(&name, Duration::from_secs(10)).await.expect("lock");
                let now_inside = inside.fetch_add(1, Ordering::SeqCst) + 1;
                assert_eq!(now_inside, 1, "two holders of one lease at once");
                tokio::time::sleep(Duration::from_millis(2)).await;
                inside.fetch_sub(1, Ordering::SeqCst);
                rounds.fetch_add(1, Ordering::SeqCst);
                guard.release().await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("lease task");
    }
    assert_eq!(rounds.load(Ordering::SeqCst), 80);
}

/// A holder that stops renewing (crashed) loses the lease after its ttl.
pub async fn lease_takeover_after_expiry<S: Storage + ?Sized>(storage: Arc<S>) {
    let ns = namespace();
    let name = key(&ns, "lease");
    let ttl = Duration::from_millis(400);
    assert!(storage.try_acquire_lease(&name, "crashed-holder", ttl).await.expect("acquire"));
    assert!(
        storage.try_lock(&name, ttl).await.expect("try_lock").is_none(),
        "a fresh lease must exclude others"
    );
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let guard = storage.try_lock(&name, ttl).await.expect("try_lock").expect("expired lease must be free");
    assert!(
        !storage.renew_lease(&name, "crashed-holder", ttl).await.expect("renew"),
        "the old holder must not renew a lease another took"
    );
    guard.release().await;
}

/// A guard keeps its lease fresh through a job three times longer than the ttl.
pub async fn lease_refresh_keeps_long_job<S: Storage + ?Sized>(storage: Arc<S>) {
    let ns = namespace();
    let name = key(&ns, "lease");
    let ttl = Duration::from_millis(300);
    let guard = storage.lock(&name, ttl).await.expect("lock");
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            storage.try_lock(&name, ttl).await.expect("try_lock").is_none(),
            "lease lost during a long job"
        );
    }
    assert!(guard.is_held());
    guard.release().await;
}

/// A released lease is free at once.
pub async fn lease_release_frees<S: Storage + ?Sized>(storage: Arc<S>) {
    let ns = namespace();
    let name = key(&ns, "lease");
    let guard = storage.lock(&name, Duration::from_secs(30)).await.expect("lock");
    guard.release().await;
    let again = storage.try_lock(&name, Duration::from_secs(30)).await.expect("try_lock");
    assert!(again.is_some(), "released lease must be free immediately");
    // Other names are independent.
    let other = storage.try_lock(&key(&ns, "other"), Duration::from_secs(30)).await.expect("try_lock");
    assert!(other.is_some());
}

/// `stat` follows `put`s back to back (no pause between them): after each of
/// 40 puts of changing lengths, at once, `size` is the new length and
/// `modified` did not go back; after `delete`, `None`. Catches attribute
/// caches that lag behind the data.
pub async fn stat_follows_puts<S: Storage + ?Sized>(storage: Arc<S>) {
    let ns = namespace();
    let k = key(&ns, "rapid");
    let mut previous: Option<SystemTime> = None;
    for i in 0..40usize {
        let value = vec![b'x'; (i * 37) % 101 + 1];
        storage.put(&k, &value).await.expect("put");
        let info = storage.stat(&k).await.expect("stat").expect("stat right after put");
        assert_eq!(
            info.size,
            value.len() as u64,
            "stat right after put {i} must report the new length (a stat cache lagging behind?)"
        );
        assert_eq!(
            storage.get(&k).await.expect("get").map(|v| v.len()),
            Some(value.len()),
            "get after put {i}"
        );
        if let Some(previous) = previous {
            assert!(info.modified >= previous, "stat().modified went back at put {i}");
        }
        previous = Some(info.modified);
    }
    storage.delete(&k).await.expect("delete");
    assert_eq!(storage.stat(&k).await.expect("stat"), None, "stat right after delete must be None");
}

/// `stat` records when: after a put `modified` is the time of that put
/// (within a day, for skew), and after a second put of the same size more
/// than a second later, it moved forward. (Within one second it may not:
/// see the [`Storage`] contract; nothing should use `stat` as a change
/// detector.)
pub async fn stat_changes_on_put<S: Storage + ?Sized>(storage: Arc<S>) {
    let ns = namespace();
    let k = key(&ns, "versioned");
    let before_put = SystemTime::now();
    storage.put(&k, b"first").await.expect("put");
    let first = storage.stat(&k).await.expect("stat").expect("stat after put");
    let day = Duration::from_secs(86_400);
    assert!(
        first.modified + day > before_put && first.modified < before_put + day,
        "stat().modified must be the time of the last put (got {:?}, now {:?})",
        first.modified,
        before_put
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    storage.put(&k, b"secnd").await.expect("put");
    let second = storage.stat(&k).await.expect("stat").expect("stat after put");
    assert_eq!(second.size, 5, "stat size after the second put");
    assert!(
        second.modified > first.modified,
        "stat().modified must move forward on a put more than a second after the previous one"
    );
}

/// Same-holder re-acquire: `try_acquire_lease` by the holder that already
/// holds a fresh lease succeeds and extends it by the new ttl; others stay
/// excluded.
pub async fn lease_reacquire_by_same_holder<S: Storage + ?Sized>(storage: Arc<S>) {
    let ns = namespace();
    let name = key(&ns, "lease");
    let ttl = Duration::from_millis(600);
    assert!(
        storage.try_acquire_lease(&name, "holder-a", ttl).await.expect("acquire"),
        "a free lease is taken"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(
        storage.try_acquire_lease(&name, "holder-a", ttl).await.expect("re-acquire"),
        "the holder of a fresh lease must be able to acquire it again"
    );
    assert!(
        !storage.try_acquire_lease(&name, "holder-b", ttl).await.expect("acquire"),
        "a re-acquired lease must exclude others"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    // 700 ms after the first acquire, 350 ms after the re-acquire: still held.
    assert!(
        !storage.try_acquire_lease(&name, "holder-b", ttl).await.expect("acquire"),
        "re-acquiring must extend the lease by its ttl"
    );
    storage.release_lease(&name, "holder-a").await.expect("release");
    assert!(
        storage.try_acquire_lease(&name, "holder-b", ttl).await.expect("acquire"),
        "released lease is free"
    );
    storage.release_lease(&name, "holder-b").await.expect("release");
}

/// A holder whose lease expired and was taken by another must not free the
/// new holder's lease: neither by `release_lease` (what a [`LeaseGuard`](crate::LeaseGuard)
/// that lost its lease does when dropped) nor by `renew_lease`.
pub async fn lease_release_by_stale_holder_keeps_new_lease<S: Storage + ?Sized>(storage: Arc<S>) {
    let ns = namespace();
    let name = key(&ns, "lease");
    let ttl = Duration::from_millis(300);
    assert!(storage.try_acquire_lease(&name, "stale-holder", ttl).await.expect("acquire"));
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert!(
        storage.try_acquire_lease(&name, "new-holder", Duration::from_secs(30)).await.expect("acquire"),
        "an expired lease must be free"
    );
    assert!(
        !storage.renew_lease(&name, "stale-holder", ttl).await.expect("renew"),
        "the stale holder must not renew a lease another took"
    );
    storage.release_lease(&name, "stale-holder").await.expect("release by a non-holder must succeed");
    assert!(
        !storage.try_acquire_lease(&name, "third-holder", ttl).await.expect("acquire"),
        "release by a holder that lost the lease freed the new holder's lease"
    );
    assert!(
        storage.renew_lease(&name, "new-holder", Duration::from_secs(30)).await.expect("renew"),
        "the new holder must still hold its lease after a stale release"
    );
    // Through the guard API: a guard whose lease another took is dropped.
    let other = key(&ns, "guarded");
    let guard = storage.try_lock(&other, Duration::from_secs(30)).await.expect("try_lock").expect("free");
    storage.release_lease(&other, "someone-else").await.expect("release by a non-holder");
    assert!(
        storage.try_lock(&other, Duration::from_secs(30)).await.expect("try_lock").is_none(),
        "release by a non-holder freed a guard's lease"
    );
    guard.release().await;
    storage.release_lease(&name, "new-holder").await.expect("release");
}

/// Generates one `#[tokio::test]` per conformance check for a backend, in a
/// module named by the caller (default: `storage_conformance`), so a file can
/// hold the suite for several backends.
///
/// The fixture is a closure returning a future of the storage (`Arc<YourStorage>`)
/// or of `(storage, keep_alive)` (see [`Fixture`](crate::conformance::Fixture));
/// it is called once per test, and `keep_alive` lives until that test ends.
///
/// ```ignore
/// cert_store::storage_conformance_tests!(mod memory_suite, || async { Arc::new(MemoryStorage::new()) });
/// cert_store::storage_conformance_tests!(mod file_suite, || async {
///     let dir = tempfile::tempdir().unwrap();
///     (Arc::new(FileStorage::new(dir.path()).unwrap()), dir)
/// });
/// ```
#[macro_export]
macro_rules! storage_conformance_tests {
    (@tests $module:ident, $make:expr; $($check:ident),*) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let (storage, keep_alive) =
                        $crate::conformance::Fixture::into_parts(($make)().await);
                    $crate::conformance::$check(storage).await;
                    drop(keep_alive);
                }
            )*
        }
    };
    (mod $module:ident, $make:expr $(,)?) => {
        $crate::storage_conformance_tests!(@tests $module, $make;
            round_trip, binary_values, listing, overwrite, delete, stat_follows_puts, stat_changes_on_put,
            concurrent_writers, lease_exclusion, lease_takeover_after_expiry,
            lease_refresh_keeps_long_job, lease_release_frees, lease_reacquire_by_same_holder,
            lease_release_by_stale_holder_keeps_new_lease);
    };
    ($make:expr $(,)?) => {
        $crate::storage_conformance_tests!(mod storage_conformance, $make);
    };
}
