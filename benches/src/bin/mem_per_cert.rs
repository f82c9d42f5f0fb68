//! Memory per loaded certificate: bytes allocated (and still held) per
//! ECDSA P-256 chain + key loaded into the `SniResolver`, counted by a
//! global allocator, over 10,000 certificates (target ≤ 8 KiB).
//!
//! `cargo run --release -p benches --bin mem-per-cert`

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::{
        Arc,
        atomic::{AtomicIsize, Ordering},
    },
};

use acme_core::{CertRequest, Issuer, LocalCaIssuer};
use cert_store::MemoryStorage;
use sni_proxy::SniResolver;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts bytes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size().cast_signed(), Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size().cast_signed(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CERTS: usize = 10_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let ca = LocalCaIssuer::new(Arc::new(cert_store::CertStore::new(Arc::new(MemoryStorage::new()))));
    // The chains (leaf + CA, as served) and keys, made before counting.
    let bundles = runtime.block_on(async {
        let mut out = Vec::with_capacity(CERTS);
        for i in 0..CERTS {
            out.push(ca.issue(&CertRequest::new([format!("h{i}.customer.example")])).await?);
        }
        Ok::<_, acme_core::IssueError>(out)
    })?;
    let resolver = SniResolver::new();
    let before = LIVE.load(Ordering::SeqCst);
    for b in &bundles {
        resolver.insert_bundle(b)?;
    }
    let after = LIVE.load(Ordering::SeqCst);
    let per = (after - before) as f64 / CERTS as f64;
    println!("{CERTS} ECDSA P-256 certificates (leaf + CA chain, key) loaded into the resolver");
    println!("memory per certificate: {per:.0} bytes ({:.2} KiB; target <= 8 KiB)", per / 1024.0);
    benches::at_most("memory per loaded certificate (P-256 chain + key)", "B", &[per], 8192.0).record();
    Ok(())
}
