//! The conformance suite every [`Storage`] backend must pass (feature `testing`).
//!
//! Each check takes a shared storage, works under a fresh random namespace (so
//! one database or directory can serve many runs) and panics with a message
//! on the first violation. Run them all with [`run_all`], or one test per
//! check with [`storage_conformance_tests!`](crate::storage_conformance_tests):
//!
//! ```ignore
//! cert_store::storage_conformance_tests!(|| async { std::sync::Arc::new(MyStorage::new()) });
//! ```

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use rand::Rng;

use crate::{Key, Leases, Prefix, Storage};

fn namespace() -> String {
    format!("conformance-{}", hex::encode(rand::rng().random::<[u8; 6]>()))
}

fn key(ns: &str, rest: &str) -> Key {
    Key::new(format!("{ns}/{rest}")).expect("conformance keys are valid")
}

/// Every check, in order, printing each name as it passes.
pub async fn run_all<S: Storage + ?Sized>(storage: Arc<S>) {
    macro_rules! check {
        ($($name:ident),*) => {$(
            $name(Arc::clone(&storage)).await;
            println!("conformance: {} ok", stringify!($name));
        )*};
    }
    check!(
        round_trip,
        binary_values,
        listing,
        overwrite,
        delete,
        concurrent_writers,
        lease_exclusion,
        lease_takeover_after_expiry,
        lease_refresh_keeps_long_job,
        lease_release_frees
    );
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

/// Generates one `#[tokio::test]` per conformance check for a backend.
///
/// `$make` is a closure returning a future of `Arc<YourStorage>`; it is called
/// once per test.
///
/// ```ignore
/// cert_store::storage_conformance_tests!(|| async { Arc::new(MemoryStorage::new()) });
/// ```
#[macro_export]
macro_rules! storage_conformance_tests {
    ($make:expr) => {
        $crate::storage_conformance_tests!(@tests $make;
            round_trip, binary_values, listing, overwrite, delete, concurrent_writers,
            lease_exclusion, lease_takeover_after_expiry, lease_refresh_keeps_long_job,
            lease_release_frees);
    };
    (@tests $make:expr; $($check:ident),*) => {
        mod storage_conformance {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $check() {
                    let storage = ($make)().await;
                    $crate::conformance::$check(storage).await;
                }
            )*
        }
    };
}
