//! Cold start: a proxy process over a filesystem store holding 100,000
//! certificates, from `exec` to the first served handshake for a stored name
//! (the top complaint against Caddy at that scale is a ten-minute start).
//! Certificates load lazily at their first handshake, so the start does not
//! depend on how many there are. Five starts; median and spread. Target ≤ 1 s.
//!
//! `cargo run --release -p benches --bin cold-start [-- --quick]` (10,000 with `--quick`).

use std::{
    net::SocketAddr,
    path::Path,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use acme_core::{CertManager, CertRequest, Issuer, LocalCaIssuer, ManagerConfig};
use cert_store::{CertStore, FileStorage};
use rustls_pki_types::ServerName;
use sni_proxy::{Proxy, SniResolver, TlsConfig};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    if args.get(1).map(String::as_str) == Some("serve") {
        return rt.block_on(serve(Path::new(&args[2]), args[3].parse()?));
    }
    let count = if args.iter().any(|a| a == "--quick") { 10_000 } else { 100_000 };
    rt.block_on(drive(count))
}

/// The proxy as an embedding application starts it: open the store, bind,
/// serve; certificates come from the store at their first handshake.
async fn serve(dir: &Path, port: u16) -> Result<(), Error> {
    let storage = Arc::new(FileStorage::new(dir)?);
    let store = Arc::new(CertStore::new(Arc::clone(&storage)));
    let issuer = Arc::new(LocalCaIssuer::new(Arc::clone(&store)));
    let manager = Arc::new(CertManager::new(store, issuer, ManagerConfig::default()));
    let discard = SocketAddr::from(([127, 0, 0, 1], 9));
    let tls = TlsConfig::from_source_with(Arc::new(SniResolver::with_capacity(100_000)), manager, discard);
    let _running = Proxy::new(SocketAddr::from(([127, 0, 0, 1], port)), tls).bind().await?.serve();
    std::future::pending::<()>().await;
    Ok(())
}

fn name(i: usize) -> String {
    format!("h{i}.cold.test")
}

async fn drive(count: usize) -> Result<(), Error> {
    let dir = std::env::temp_dir().join(format!("cold-start-{}", std::process::id()));
    let storage = Arc::new(FileStorage::new(&dir)?);
    let store = Arc::new(CertStore::new(storage));
    let ca = LocalCaIssuer::new(Arc::clone(&store));
    let root_pem = ca.root_pem().await?;
    println!("storing {count} certificates in {}", dir.display());
    let started = Instant::now();
    let ca = Arc::new(ca);
    let mut writers = tokio::task::JoinSet::new();
    let per_task = count.div_ceil(32);
    for t in 0..32 {
        let (ca, store) = (Arc::clone(&ca), Arc::clone(&store));
        writers.spawn(async move {
            let mut bundles = Vec::with_capacity(per_task);
            for i in (t * per_task..((t + 1) * per_task).min(count)).collect::<Vec<_>>() {
                bundles.push(ca.issue(&CertRequest::new([name(i)])).await?);
            }
            store.save_many(&bundles).await?;
            Ok::<_, Error>(())
        });
    }
    while let Some(done) = writers.join_next().await {
        done??;
    }
    println!("stored in {:.1} s", started.elapsed().as_secs_f64());

    let connector = benches::connector_trusting(&root_pem)?;
    let me = std::env::current_exe()?;
    let mut starts = Vec::new();
    for round in 0..5 {
        let port = testkit::free_port()?;
        let target = name((round * 7_919 + 13) % count);
        let begun = Instant::now();
        let mut child = Command::new(&me)
            .arg("serve")
            .arg(&dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let served = loop {
            if begun.elapsed() > Duration::from_secs(600) {
                break None;
            }
            if let Ok(tcp) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await
                && connector.connect(ServerName::try_from(target.clone())?, tcp).await.is_ok()
            {
                break Some(begun.elapsed().as_secs_f64() * 1000.0);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let _ = child.kill();
        let _ = child.wait();
        let ms = served.ok_or("no handshake within 10 minutes")?;
        println!("start {}: first handshake for {target} after {ms:.1} ms", round + 1);
        starts.push(ms);
    }
    benches::at_most(
        &format!("cold start to first served handshake, {count} stored certificates"),
        "ms",
        &starts,
        1000.0,
    )
    .record();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
