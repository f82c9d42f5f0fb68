//! Slowloris: a well-behaved client's handshake latency (p99 of 500
//! sequential handshakes) with no load, then while 10,000 connections sit
//! idle or trickle one byte of a ClientHello; target: p99 within 2× the
//! unloaded value. Then checks that the idle connections were closed by the
//! handshake timeout (5 s here).
//!
//! The proxy runs as this binary's `serve` mode in its own process.
//! `cargo run --release -p benches --bin slowloris [-- --quick]` (2,000 with `--quick`).

use std::{
    net::SocketAddr,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use acme_core::{CertRequest, Issuer, LocalCaIssuer};
use cert_store::MemoryStorage;
use rustls_pki_types::ServerName;
use sni_proxy::{SniResolver, TlsConfig, serve_tls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

type Error = Box<dyn std::error::Error + Send + Sync>;

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    if args.get(1).map(String::as_str) == Some("serve") {
        return rt.block_on(serve(args[2].parse()?, &args[3]));
    }
    let idle = if args.iter().any(|a| a == "--quick") { 2_000 } else { 10_000 };
    rt.block_on(drive(idle))
}

/// The proxy: one certificate (chain and key PEM in `dir`), 5 s handshake timeout.
async fn serve(port: u16, dir: &str) -> Result<(), Error> {
    let chain = std::fs::read_to_string(format!("{dir}/chain.pem"))?;
    let key = std::fs::read_to_string(format!("{dir}/key.pem"))?;
    let bundle = cert_store::CertBundle::from_pem(&chain, &key, cert_store::Provenance::LocalCa)?;
    let resolver = Arc::new(SniResolver::new());
    resolver.insert_bundle(&bundle)?;
    let discard = SocketAddr::from(([127, 0, 0, 1], 9));
    let mut config = TlsConfig::new(resolver, discard);
    config.handshake_timeout = HANDSHAKE_TIMEOUT;
    config.max_connections = 15_000;
    serve_tls(tokio::net::TcpListener::bind(("127.0.0.1", port)).await?, config).await;
    Ok(())
}

async fn p99(connector: &tokio_rustls::TlsConnector, addr: SocketAddr) -> Result<f64, Error> {
    let mut times = Vec::with_capacity(500);
    for _ in 0..500 {
        let start = Instant::now();
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        connector.connect(ServerName::try_from("shop.slow.test")?, tcp).await?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() * 99 / 100])
}

async fn drive(idle: usize) -> Result<(), Error> {
    let dir = std::env::temp_dir().join(format!("slowloris-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ca = LocalCaIssuer::new(Arc::new(cert_store::CertStore::new(Arc::new(MemoryStorage::new()))));
    let bundle = ca.issue(&CertRequest::new(["shop.slow.test"])).await?;
    std::fs::write(dir.join("chain.pem"), bundle.chain_pem())?;
    std::fs::write(dir.join("key.pem"), bundle.key_pem())?;
    let connector = benches::connector_trusting(&ca.root_pem().await?)?;
    let port = testkit::free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut child = Command::new(std::env::current_exe()?)
        .args(["serve", &port.to_string(), &dir.to_string_lossy()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let result = async {
        let unloaded = p99(&connector, addr).await?;
        // Half silent, half trickling the first byte of a ClientHello.
        let mut sockets = Vec::with_capacity(idle);
        for i in 0..idle {
            let mut s = tokio::net::TcpStream::connect(addr).await?;
            if i % 2 == 1 {
                s.write_all(&[0x16]).await?;
            }
            sockets.push(s);
        }
        let loaded = p99(&connector, addr).await?;
        println!("p99 handshake: {unloaded:.2} ms unloaded, {loaded:.2} ms with {idle} idle connections");
        // The idle ones are closed by the handshake timeout.
        tokio::time::sleep(HANDSHAKE_TIMEOUT + Duration::from_secs(2)).await;
        let mut closed = 0;
        for s in &mut sockets {
            let mut buf = [0u8; 1];
            if matches!(
                tokio::time::timeout(Duration::from_millis(50), s.read(&mut buf)).await,
                Ok(Ok(0) | Err(_))
            ) {
                closed += 1;
            }
        }
        println!("closed by the handshake timeout: {closed} of {idle}");
        let mut row = benches::at_most(
            &format!("handshake p99 with {idle} slowloris connections, x unloaded p99"),
            "x",
            &[loaded / unloaded],
            2.0,
        );
        row.met &= closed == idle;
        row.spread =
            format!("p99 {unloaded:.2} ms unloaded, {loaded:.2} ms loaded; {closed}/{idle} idle closed");
        row.record();
        Ok::<_, Error>(())
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    result
}
