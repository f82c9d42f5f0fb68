//! ACME issuance vs lego: the same N names (default 100) from the same
//! pebble, one certificate per name, HTTP-01. Ours: `CertManager` with up to
//! 10 orders at once. lego as users run it at scale: 10 processes at once,
//! each issuing its share one `lego run` at a time (`--http.webroot`, served
//! by one nginx on pebble's validation port); target ≥ 5× faster. Also lego
//! strictly one name after another over M names (default 10): seconds per
//! certificate.
//!
//! `cargo run --release -p benches --bin acme-vs-lego [-- N [M]]`
//! (needs Debian's `pebble`, `bind9` and `lego`).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Instant,
};

use acme_core::{AcmeIssuer, CertManager, CertRequest, ChallengeResponses, ManagerConfig};
use cert_store::{CertStore, MemoryStorage};
use testkit::{DnsServer, PebbleServer, Zone};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args().nth(1).map_or(Ok(100), |a| a.parse())?;
    let sequential_count: usize = std::env::args().nth(2).map_or(Ok(10), |a| a.parse())?;
    let records: String = (0..count.max(sequential_count))
        .flat_map(|i| {
            [
                format!("ours{i} A 127.0.0.1\n"),
                format!("lego{i} A 127.0.0.1\n"),
                format!("legoseq{i} A 127.0.0.1\n"),
            ]
        })
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

    // lego as users run it at scale: 10 processes at once, each working through
    // its share of the names one `lego run` at a time, answering HTTP-01 through
    // `--http.webroot` served by one nginx on pebble's validation port.
    let work = std::env::var_os("BENCH_LOG_DIR").map_or_else(
        || std::env::temp_dir().join(format!("lego-bench-{}", std::process::id())),
        PathBuf::from,
    );
    let webroot = work.join("webroot");
    std::fs::create_dir_all(webroot.join(".well-known/acme-challenge"))?;
    let _nginx = nginx_webroot(&work, &webroot, http.port())?;
    // The command each lego process runs per name, for the results' appendix.
    std::fs::write(
        work.join("lego-command.txt"),
        format!(
            "LEGO_CA_CERTIFICATES={} lego --server {} --email bench@example.test --accept-tos --path <one per process> \\\n  --domains <name> --http --http.webroot {} run\n",
            pebble.tls_root_path().display(),
            pebble.directory_url(),
            webroot.display()
        ),
    )?;
    let lego = |names: &[String], path: &Path| -> Vec<Result<(), String>> {
        names
            .iter()
            .map(|name| {
                let out = Command::new("lego")
                    .env("LEGO_CA_CERTIFICATES", pebble.tls_root_path())
                    .args([
                        "--server",
                        &pebble.directory_url(),
                        "--email",
                        "bench@example.test",
                        "--accept-tos",
                    ])
                    .arg("--path")
                    .arg(path)
                    .args(["--domains", name, "--http", "--http.webroot"])
                    .arg(&webroot)
                    .arg("run")
                    .output();
                match out {
                    Ok(o) if o.status.success() => Ok(()),
                    Ok(o) => Err(String::from_utf8_lossy(&o.stderr)
                        .lines()
                        .last()
                        .unwrap_or("failed")
                        .chars()
                        .skip_while(|c| !c.is_alphabetic())
                        .take(60)
                        .collect()),
                    Err(e) => Err(format!("lego (Debian package `lego`): {e}")),
                }
            })
            .collect()
    };
    let parallel = 10;
    let start = Instant::now();
    let outcomes: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..parallel)
            .map(|p| {
                let names: Vec<String> = (0..count)
                    .filter(|i| i % parallel == p)
                    .map(|i| format!("lego{i}.example.test"))
                    .collect();
                let path = work.join(format!("lego-parallel-{p}"));
                let lego = &lego;
                scope.spawn(move || lego(&names, &path))
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    });
    let lego_parallel = start.elapsed().as_secs_f64();
    let parallel_failures = tally(&outcomes);
    println!(
        "lego, {parallel} processes: {count} certificates in {lego_parallel:.2} s (failures: {parallel_failures})"
    );

    // lego one name after another, as its CLI is documented (a sample of the names).
    let sequential: Vec<String> = (0..sequential_count).map(|i| format!("legoseq{i}.example.test")).collect();
    let start = Instant::now();
    let outcomes = lego(&sequential, &work.join("lego-sequential"));
    let lego_sequential = start.elapsed().as_secs_f64() / sequential_count.max(1) as f64;
    let sequential_failures = tally(&outcomes);
    println!(
        "lego, sequential: {lego_sequential:.2} s per certificate over {sequential_count} (failures: {sequential_failures})"
    );

    let ours_secs = ours.0.as_secs_f64();
    let ratio = lego_parallel / ours_secs.max(f64::EPSILON);
    println!("ratio: {ratio:.1}x faster than {parallel} parallel lego processes (target >= 5x)");
    let ours_failures = if ours.1 == 0 { "none".to_owned() } else { format!("{} failed", ours.1) };
    let mut row = benches::reported(
        &format!("{count} certificates from pebble (HTTP-01), total time"),
        "s",
        &[ours_secs],
    );
    row.peer = Some(format!("lego, {parallel} parallel processes"));
    row.peer_value = Some(lego_parallel);
    row.peer_rounds = 1;
    row.ratio = Some(ratio);
    row.target = "lego time / ours >= 5".into();
    row.met = ratio >= 5.0 && ours.1 == 0;
    row.spread = "one run each; ours 10 orders in flight".to_owned();
    row.failures = format!("ours: {ours_failures}; lego: {parallel_failures}");
    row.record();
    let per_cert = ours_secs / count.max(1) as f64;
    let mut row = benches::reported(
        "time per certificate (ours: 10 in flight; lego: one run after another)",
        "s",
        &[per_cert],
    );
    row.peer = Some("lego, sequential".into());
    row.peer_value = Some(lego_sequential);
    row.peer_rounds = 1;
    row.ratio = Some(lego_sequential / per_cert.max(f64::EPSILON));
    row.spread = format!("ours over {count} names, lego over {sequential_count}");
    row.failures = format!("ours: {ours_failures}; lego: {sequential_failures}");
    row.record();
    if std::env::var_os("BENCH_LOG_DIR").is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}

/// "none" or the failures by reason.
fn tally(outcomes: &[Result<(), String>]) -> String {
    let mut by: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for e in outcomes.iter().filter_map(|o| o.as_ref().err()) {
        *by.entry(e.as_str()).or_default() += 1;
    }
    if by.is_empty() {
        return "none".into();
    }
    by.iter().map(|(k, v)| format!("{k} ×{v}")).collect::<Vec<_>>().join(", ")
}

/// nginx serving `webroot` on `port` (HTTP-01 files lego writes).
fn nginx_webroot(dir: &Path, webroot: &Path, port: u16) -> Result<Nginx, Box<dyn std::error::Error>> {
    let d = dir.display();
    std::fs::create_dir_all(dir.join("nginx-tmp"))?;
    let conf = format!(
        "daemon off; worker_processes 1; user root; pid {d}/nginx.pid; error_log {d}/nginx-error.log;\n\
         events {{ worker_connections 1024; }}\n\
         http {{ access_log {d}/nginx-access.log; client_body_temp_path {d}/nginx-tmp/b; proxy_temp_path {d}/nginx-tmp/p;\n\
         fastcgi_temp_path {d}/nginx-tmp/f; uwsgi_temp_path {d}/nginx-tmp/u; scgi_temp_path {d}/nginx-tmp/s;\n\
         server {{ listen 127.0.0.1:{port}; root {}; }} }}\n",
        webroot.display()
    );
    std::fs::write(dir.join("nginx.conf"), conf)?;
    let child = Command::new("nginx").arg("-c").arg(dir.join("nginx.conf")).arg("-p").arg(dir).spawn()?;
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed().as_secs() > 30 {
            return Err("nginx (webroot) did not listen".into());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(Nginx(child))
}

/// Stops nginx when dropped.
struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        std::thread::sleep(std::time::Duration::from_millis(300));
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
