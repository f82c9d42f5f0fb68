//! SNI lookup among 1,000,000 names: exact hits, wildcard hits, misses
//! (target ≤ 200 ns), twice: cycling over a few hot names (`sni_lookup_1m`,
//! cache-resident: the best case) and walking shuffled lists of 1,000,000
//! distinct names each (`sni_lookup_1m_shuffled`: every lookup a different
//! name, as a fleet's handshakes are). `cargo bench -p benches --bench sni_lookup`

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

    // Shuffled lists of distinct names: 1,000,000 exact hits (the table's
    // exact names plus 100,000 added), 1,000,000 wildcard hits (10 names
    // under each of the 100,000 wildcards), 1,000,000 misses.
    resolver
        .insert_many((0..NAMES / 10).map(|i| (format!("h{}.customer.example", NAMES + i), Arc::clone(&k))));
    let mut exact: Vec<String> = (0..NAMES + NAMES / 10)
        .filter(|i| i % 10 != 0 || *i >= NAMES)
        .map(|i| format!("h{i}.customer.example"))
        .collect();
    let mut wildcard: Vec<String> =
        (0..NAMES).map(|j| format!("s{}.w{}.customer.example", j % 10, (j / 10) * 10)).collect();
    let mut miss: Vec<String> = (0..NAMES).map(|i| format!("m{i}.nowhere.example")).collect();
    for (seed, list) in [(1u64, &mut exact), (2, &mut wildcard), (3, &mut miss)] {
        shuffle(list, seed);
        assert!(list.len() >= NAMES);
    }
    assert!(resolver.lookup(&exact[0]).is_some() && resolver.lookup(&wildcard[0]).is_some());
    assert!(resolver.lookup(&miss[0]).is_none());
    let mut group = c.benchmark_group("sni_lookup_1m_shuffled");
    for (id, list) in [("exact_hit", &exact), ("wildcard_hit", &wildcard), ("miss", &miss)] {
        // The names packed one after another, read in order: a handshake's
        // name sits in the ClientHello just received (in cache), so the
        // list's own memory should not add a cache miss per lookup; the
        // table's do.
        let packed = Packed::new(list);
        let mut i = 0usize;
        group.bench_function(id, |b| {
            b.iter(|| {
                i += 1;
                if i == packed.len() {
                    i = 0;
                }
                black_box(resolver.lookup(black_box(packed.get(i))))
            });
        });
    }
    group.finish();
}

/// Names in one buffer, with their end offsets.
struct Packed {
    text: String,
    ends: Vec<usize>,
}

impl Packed {
    fn new(names: &[String]) -> Self {
        let mut text = String::with_capacity(names.iter().map(String::len).sum());
        let mut ends = Vec::with_capacity(names.len());
        for n in names {
            text.push_str(n);
            ends.push(text.len());
        }
        Self { text, ends }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, i: usize) -> &str {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.text[start..self.ends[i]]
    }
}

/// Fisher–Yates with a fixed-seed xorshift (the same order every run).
fn shuffle(list: &mut [String], seed: u64) {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64 ^ seed;
    for i in (1..list.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        #[allow(clippy::cast_possible_truncation)]
        let j = (state % (i as u64 + 1)) as usize;
        list.swap(i, j);
    }
}

const EXACT: [&str; 4] = [
    "h1.customer.example",
    "h123457.customer.example",
    "h999999.customer.example",
    "H55555.Customer.Example",
];

criterion_group!(benches, lookups);
criterion_main!(benches);
