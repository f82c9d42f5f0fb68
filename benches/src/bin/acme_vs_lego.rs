//! ACME issuance vs lego: the same N names (default 100) from the same
//! pebble, one certificate per name, HTTP-01. Ours: `CertManager` with up to
//! 10 orders at once. lego: one `lego run` per name, as users script it
//! (sharing one account directory). Prints both totals and the speed ratio
//! (target ≥ 5×).
//!
//! `cargo run --release -p benches --bin acme-vs-lego [-- N]`
//! (needs Debian's `pebble`, `bind9` and `lego`).

use std::{net::SocketAddr, process::Command, sync::Arc, time::Instant};

use acme_core::{AcmeIssuer, CertManager, CertRequest, ChallengeResponses, ManagerConfig};
use cert_store::{CertStore, MemoryStorage};
use testkit::{DnsServer, PebbleServer, Zone};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args().nth(1).map_or(Ok(100), |a| a.parse())?;
    let records: String = (0..count)
        .flat_map(|i| [format!("ours{i} A 127.0.0.1\n"), format!("lego{i} A 127.0.0.1\n")])
        .collect();
    let dns = DnsServer::builder().zone(Zone::new("example.test", &records)).recursion(true).start()?;
    let pebble = PebbleServer::builder().dns_server(dns.addr()).start()?;
    let http = SocketAddr::from(([127, 0, 0, 1], pebble.http_port()));

    // Ours.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let ours = runtime.block_on(async {
        let store = Arc::new(CertStore::new(Arc::new(MemoryStorage::new())));
        let responses = ChallengeResponses::default();
        let lookup = responses.clone();
        let responder = testkit::serve_http01(
            http,
            Arc::new(move |t: String| {
                let answer = lookup.http01(&t);
                Box::pin(async move { answer })
            }),
        )
        .await?;
        let acme = AcmeIssuer::new(&pebble.directory_url(), Arc::clone(&store))
            .with_root(pebble.tls_root_path())
            .with_responses(responses);
        let manager = Arc::new(CertManager::new(store, Arc::new(acme), ManagerConfig::default()));
        let permits = Arc::new(tokio::sync::Semaphore::new(10));
        let start = Instant::now();
        let tasks: Vec<_> = (0..count)
            .map(|i| {
                let (manager, permits) = (Arc::clone(&manager), Arc::clone(&permits));
                tokio::spawn(async move {
                    let _permit = permits.acquire().await;
                    manager.ensure(&CertRequest::new([format!("ours{i}.example.test")])).await.map(|_| ())
                })
            })
            .collect();
        let mut failed = 0;
        for t in tasks {
            if !matches!(t.await, Ok(Ok(()))) {
                failed += 1;
            }
        }
        let elapsed = start.elapsed();
        responder.abort();
        Ok::<_, Box<dyn std::error::Error>>((elapsed, failed))
    })?;
    drop(runtime); // frees the HTTP-01 port for lego
    println!("ours: {count} certificates in {:.2} s ({} failed)", ours.0.as_secs_f64(), ours.1);

    // lego, one run per name.
    let lego_dir = std::env::temp_dir().join(format!("lego-bench-{}", std::process::id()));
    let start = Instant::now();
    let mut lego_failed = 0;
    for i in 0..count {
        let status = Command::new("lego")
            .env("LEGO_CA_CERTIFICATES", pebble.tls_root_path())
            .args([
                "--server",
                &pebble.directory_url(),
                "--email",
                "bench@example.test",
                "--accept-tos",
                "--path",
            ])
            .arg(&lego_dir)
            .args([
                "--domains",
                &format!("lego{i}.example.test"),
                "--http",
                "--http.port",
                &http.to_string(),
                "run",
            ])
            .output()
            .map_err(|e| format!("lego (Debian package `lego`): {e}"))?;
        if !status.status.success() {
            lego_failed += 1;
            if lego_failed == 1 {
                eprintln!("lego failed: {}", String::from_utf8_lossy(&status.stderr));
            }
        }
    }
    let lego = start.elapsed();
    let _ = std::fs::remove_dir_all(&lego_dir);
    println!("lego: {count} certificates in {:.2} s ({lego_failed} failed)", lego.as_secs_f64());
    let ratio = lego.as_secs_f64() / ours.0.as_secs_f64().max(f64::EPSILON);
    println!("ratio: {ratio:.1}x faster (target >= 5x)");
    benches::Row {
        metric: format!("{count} certificates from pebble (HTTP-01), total time"),
        unit: "s".into(),
        ours: ours.0.as_secs_f64(),
        peer: Some("lego".into()),
        peer_value: Some(lego.as_secs_f64()),
        ratio: Some(ratio),
        target: "lego time / ours >= 5".into(),
        met: ratio >= 5.0 && ours.1 == 0,
        spread: format!("one run each; failures: ours {}, lego {lego_failed}", ours.1),
    }
    .record();
    Ok(())
}
