//! cert-store benchmarks: load by name among 100,000 stored bundles (memory and
//! filesystem), due-for-renewal queries over a 1,000,000-entry expiry index,
//! and PostgreSQL lease round trips against a local server.
//!
//! `cargo bench -p benches --bench cert_store`

use std::{hint::black_box, sync::Arc, time::Duration};

use cert_store::{
    CertBundle, CertStore, ExpiryIndex, FileStorage, Key, Leases, MemoryStorage, PostgresStorage, Provenance,
    Storage,
};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use time::OffsetDateTime;

const STORED: usize = 100_000;
const INDEXED: usize = 1_000_000;

fn name(i: usize) -> String {
    format!("host{i}.customer{}.example.com", i % 997)
}

/// One serialized bundle record, reused under every name (the load path reads
/// and decodes it the same way whatever the name).
fn bundle_record() -> Vec<u8> {
    let key = rcgen::KeyPair::generate().expect("keygen");
    let cert = rcgen::CertificateParams::new(vec!["host0.customer0.example.com".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("sign");
    let bundle =
        CertBundle::from_pem(&cert.pem(), &key.serialize_pem(), Provenance::LocalCa).expect("bundle");
    serde_json::to_vec(&bundle).expect("json")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

/// Loads names spread over the whole store, one per iteration.
fn bench_load<S: Storage>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &tokio::runtime::Runtime,
    label: &str,
    store: &CertStore<S>,
) {
    let mut i = 0;
    group.bench_function(label, |b| {
        b.to_async(rt).iter(|| {
            i = (i + 7919) % STORED;
            let n = name(i);
            async move { black_box(store.load(&n).await.expect("load").expect("present")) }
        });
    });
}

fn load_by_name(c: &mut Criterion) {
    let rt = runtime();
    let record = bundle_record();
    let mut group = c.benchmark_group("load_one_of_100k");

    let memory = Arc::new(MemoryStorage::new());
    rt.block_on(async {
        for i in 0..STORED {
            memory.put(&cert_store::keys::certificate(&name(i)).expect("key"), &record).await.expect("put");
        }
    });
    bench_load(&mut group, &rt, "memory", &CertStore::new(Arc::clone(&memory)));

    // The filesystem layout written directly (setup speed), read through FileStorage.
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("tls/certs");
    std::fs::create_dir_all(&certs).expect("mkdir");
    for i in 0..STORED {
        std::fs::write(certs.join(name(i)), &record).expect("write");
    }
    let store = CertStore::new(Arc::new(FileStorage::new(dir.path()).expect("file storage")));
    bench_load(&mut group, &rt, "filesystem", &store);
    group.finish();
}

fn due_for_renewal(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let mut index = ExpiryIndex::default();
    // Attention times spread evenly over the next 1,000 days.
    for i in 0..INDEXED {
        let at = now + time::Duration::seconds(i64::try_from(i).expect("fits") * 86_400 / 1_000);
        index.upsert(&name(i), at, at + time::Duration::days(30));
    }
    let mut group = c.benchmark_group("due_before_1m_index");
    for (label, days) in [("0.1%_due", 1), ("1%_due", 10)] {
        let t = now + time::Duration::days(days);
        group.bench_with_input(BenchmarkId::from_parameter(label), &t, |b, t| {
            b.iter(|| black_box(index.due_before(*t).count()));
        });
    }
    group.sample_size(10);
    let encoded = index.encode();
    group.bench_function("decode_stored_index", |b| {
        b.iter(|| black_box(ExpiryIndex::decode(&encoded).expect("decode").len()));
    });
    group.finish();
}

fn postgres_leases(c: &mut Criterion) {
    let pg = match testkit::PostgresServer::start() {
        Ok(pg) => pg,
        Err(e) => {
            eprintln!("skipping PostgreSQL lease benchmark: {e}");
            return;
        }
    };
    let rt = runtime();
    let storage = Arc::new(rt.block_on(PostgresStorage::connect(&pg.connection_string())).expect("connect"));
    let name = Key::new("bench/lease").expect("key");
    let ttl = Duration::from_secs(30);
    let mut group = c.benchmark_group("postgres_lease");
    group.bench_function("acquire_release_round_trip", |b| {
        b.to_async(&rt).iter(|| {
            let (storage, name) = (&storage, &name);
            async move {
                assert!(storage.try_acquire_lease(name, "bench", ttl).await.expect("acquire"));
                storage.release_lease(name, "bench").await.expect("release");
            }
        });
    });
    group.bench_function("guard_lock_release", |b| {
        b.to_async(&rt).iter(|| {
            let (storage, name) = (&storage, &name);
            async move { storage.lock(name, ttl).await.expect("lock").release().await }
        });
    });
    group.finish();
}

criterion_group!(benches, load_by_name, due_for_renewal, postgres_leases);
criterion_main!(benches);
