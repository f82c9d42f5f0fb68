//! SNI lookup among 1,000,000 names: exact hits, wildcard hits, misses
//! (target ≤ 200 ns). `cargo bench -p benches --bench sni_lookup`

use std::{hint::black_box, sync::Arc};

use criterion::{Criterion, criterion_group, criterion_main};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sni_proxy::SniResolver;

const NAMES: usize = 1_000_000;

fn key() -> Arc<CertifiedKey> {
    let key = rcgen::KeyPair::generate().expect("keygen");
    let cert = rcgen::CertificateParams::new(vec!["bench.example.com".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("sign");
    Arc::new(
        CertifiedKey::from_der(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            &rustls::crypto::ring::default_provider(),
        )
        .expect("certified key"),
    )
}

fn lookups(c: &mut Criterion) {
    let resolver = SniResolver::new();
    let k = key();
    // 900k exact names, 100k wildcards.
    resolver.insert_many((0..NAMES).map(|i| {
        let name =
            if i % 10 == 0 { format!("*.w{i}.customer.example") } else { format!("h{i}.customer.example") };
        (name, Arc::clone(&k))
    }));
    assert_eq!(resolver.len(), NAMES);
    let mut group = c.benchmark_group("sni_lookup_1m");
    let mut i = 0usize;
    group.bench_function("exact_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % NAMES;
            let name = EXACT[i % EXACT.len()];
            black_box(resolver.lookup(black_box(name)))
        });
    });
    group.bench_function("wildcard_hit", |b| {
        b.iter(|| black_box(resolver.lookup(black_box("shop.w500000.customer.example"))));
    });
    group.bench_function("miss", |b| {
        b.iter(|| black_box(resolver.lookup(black_box("nobody.unknown.example"))))
    });
    group.finish();
}

const EXACT: [&str; 4] = [
    "h1.customer.example",
    "h123457.customer.example",
    "h999999.customer.example",
    "H55555.Customer.Example",
];

criterion_group!(benches, lookups);
criterion_main!(benches);
