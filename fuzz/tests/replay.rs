//! Replays every corpus file through its target, then runs each target on
//! deterministic mutations of the corpus (bit flips, byte changes, cuts,
//! splices): a brief fuzzing pass on every `scripts/test`.

use std::path::PathBuf;

/// Mutations per target (a few seconds in all).
const MUTATIONS: usize = 200_000;

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let mut inputs: Vec<Vec<u8>> = files.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    inputs.push(Vec::new());
    inputs.extend(generated_seeds(target));
    inputs
}

/// Seeds that hold private keys are made at run time, never committed.
fn generated_seeds(target: &str) -> Vec<Vec<u8>> {
    if target != "cert_bundle" {
        return Vec::new();
    }
    let key = rcgen::KeyPair::generate().expect("key");
    let params =
        rcgen::CertificateParams::new(vec!["shop.example.com".to_owned(), "*.example.com".to_owned()])
            .expect("params");
    let cert = params.self_signed(&key).expect("certificate");
    vec![format!("{}\0{}", cert.pem(), key.serialize_pem()).into_bytes()]
}

fn mutate(rng: &mut XorShift, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(4) {
        match rng.below(5) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = rng.next() as u8;
            }
            2 if !data.is_empty() => {
                let cut = rng.below(data.len());
                data.truncate(cut);
            }
            3 => {
                let other = &seeds[rng.below(seeds.len())];
                let at = rng.below(data.len() + 1);
                let from = rng.below(other.len() + 1);
                data.splice(at..at, other[from..].iter().take(64).copied());
            }
            _ => {
                let at = rng.below(data.len() + 1);
                let byte = [0u8, 0xff, b'.', b'*', b'-', b'\n', b'"', b'/'][rng.below(8)];
                data.insert(at, byte);
            }
        }
    }
    data
}

#[test]
fn every_target_survives_its_corpus_and_mutations() {
    for (name, target) in fuzz::TARGETS {
        let seeds = corpus(name);
        assert!(seeds.len() > 1, "fuzz/corpus/{name} has no seed files");
        for seed in &seeds {
            target(seed);
        }
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
        for _ in 0..MUTATIONS {
            target(&mutate(&mut rng, &seeds));
        }
    }
}
