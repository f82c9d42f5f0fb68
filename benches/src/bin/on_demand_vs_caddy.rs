//! On-demand TLS against Caddy, the closest peer: 100 clients at once, each
//! with a hostname nobody has seen, against the same pebble (the CA), the
//! same BIND (resolving every name to 127.0.0.1) and the same ask endpoint
//! (nginx `return 200`). Reports, for both: handshakes served on the first
//! attempt, first-handshake latency p50/max, and the total time. Target for
//! ours: 100 of 100 on the first attempt, all within 10 s.
//!
//! Ours runs as this binary's `serve` mode (a `Proxy` with `OnDemand` over a
//! `CertManager` and an `AcmeIssuer`, HTTP-01 on pebble's validation port);
//! Caddy as Debian's `caddy` with `on_demand_tls { ask … }`. They take
//! pebble's validation ports in turn, alternating, one round each (three
//! without `--quick`).
//!
//! `cargo run --release -p benches --bin on-demand-vs-caddy [-- --quick] [--rounds N] [--ours-only]`
//! (needs Debian's `caddy`, `nginx`, `pebble`, `bind9`).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use acme_core::{AcmeIssuer, CertManager, ManagerConfig};
use cert_store::{CertStore, FileStorage};
use rustls_pki_types::ServerName;
use sni_proxy::{Http80Config, HttpAskPolicy, OnDemand, Proxy, SniResolver, TlsConfig};

type Error = Box<dyn std::error::Error + Send + Sync>;

const CLIENTS: usize = 100;

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("serve") {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        return rt.block_on(serve(&args[2..]));
    }
    let quick = args.iter().any(|a| a == "--quick");
    let ours_only = args.iter().any(|a| a == "--ours-only");
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .map(|n| n.parse::<usize>())
        .transpose()?
        .unwrap_or(if quick { 1 } else { 3 });
    drive(rounds, ours_only)
}

/// Ours: `serve DIR DIRECTORY_URL CA_ROOT HTTP_PORT TLS_PORT ASK_URL`.
async fn serve(args: &[String]) -> Result<(), Error> {
    let [dir, directory, root, http_port, tls_port, ask] = args else {
        return Err("usage: serve DIR DIRECTORY_URL CA_ROOT HTTP_PORT TLS_PORT ASK_URL".into());
    };
    // Our log goes to stderr, which the driver keeps in DIR/serve.log.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let store = Arc::new(CertStore::new(Arc::new(FileStorage::new(dir)?)));
    let mut acme = AcmeIssuer::new(directory, Arc::clone(&store)).with_root(root);
    // Orders in flight at the CA: BENCH_MAX_IN_FLIGHT, else 10. Debian's
    // pebble 2.4 deadlocks now and then under a burst of new orders (its log
    // stops mid-request and it never answers again): measured here in 3 of 10
    // rounds of 100 names at 20 in flight, 2 of 10 at 15, none in 20 rounds
    // at 10. A real CA does not; the edge's default stays 20.
    let max_in_flight = std::env::var("BENCH_MAX_IN_FLIGHT").ok().and_then(|n| n.parse().ok()).unwrap_or(10);
    acme = acme.with_max_in_flight(max_in_flight);
    let responses = acme.responses().clone();
    let responses = Arc::new(responses);
    let manager = Arc::new(CertManager::new(store, Arc::new(acme), ManagerConfig::default()));
    let discard = SocketAddr::from(([127, 0, 0, 1], 9));
    let mut tls = TlsConfig::new(Arc::new(SniResolver::new()), discard).with_answers(responses.clone());
    // nginx answers `return 200;` with no body, as Caddy's ask expects.
    let policy = HttpAskPolicy::new(ask)?.allow_bodiless_2xx(true);
    let mut on_demand = OnDemand::new(Arc::new(policy), manager);
    on_demand.pending = Arc::new(tokio::sync::Semaphore::new(256));
    tls.on_demand = Some(on_demand);
    let local = |port: &String| -> Result<SocketAddr, Error> {
        Ok(SocketAddr::from(([127, 0, 0, 1], port.parse()?)))
    };
    let _running = Proxy::new(local(tls_port)?, tls)
        .with_http(local(http_port)?, Http80Config::new(responses))
        .bind()
        .await?
        .serve();
    std::future::pending::<()>().await;
    Ok(())
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(port: u16, what: &str) -> Result<(), Error> {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!("{what} did not listen on {port}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn start(cmd: &mut Command, what: &str) -> Result<Server, Error> {
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{what} (is its Debian package installed?): {e}"))?;
    Ok(Server(child))
}

/// Starts `cmd` with its stderr kept in `log` (counted and read after a round).
fn start_logged(cmd: &mut Command, what: &str, log: &Path) -> Result<Server, Error> {
    let file = std::fs::File::create(log)?;
    let child = cmd
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .map_err(|e| format!("{what} (is its Debian package installed?): {e}"))?;
    Ok(Server(child))
}

/// What 100 simultaneous first handshakes saw.
struct Outcome {
    served: usize,
    latencies: Vec<f64>,
    total: f64,
}

async fn hundred_new_names(port: u16, prefix: &str, root_pem: &str) -> Result<Outcome, Error> {
    let connector = benches::connector_trusting(root_pem)?;
    let start = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let connector = connector.clone();
            let name = format!("{prefix}{i}.ondemand.test");
            tokio::spawn(async move {
                let attempt = async {
                    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                    let server_name = ServerName::try_from(name)?;
                    connector.connect(server_name, tcp).await?;
                    Ok::<_, Error>(())
                };
                let ok = matches!(tokio::time::timeout(Duration::from_secs(120), attempt).await, Ok(Ok(())));
                (ok, start.elapsed().as_secs_f64())
            })
        })
        .collect();
    let mut outcome = Outcome { served: 0, latencies: Vec::new(), total: 0.0 };
    for t in tasks {
        let (ok, secs) = t.await?;
        if ok {
            outcome.served += 1;
            outcome.latencies.push(secs);
        }
        outcome.total = outcome.total.max(secs);
    }
    Ok(outcome)
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        // Nothing served: the latency is at least the client's timeout.
        return 120.0;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn nginx_ask(dir: &Path, port: u16) -> Result<Server, Error> {
    let d = dir.display();
    std::fs::create_dir_all(dir.join("nginx-tmp"))?;
    let conf = format!(
        "daemon off; worker_processes 1; user root; pid {d}/nginx.pid; error_log {d}/nginx-error.log;\n\
         events {{ worker_connections 1024; }}\n\
         http {{ access_log off; client_body_temp_path {d}/nginx-tmp/b; proxy_temp_path {d}/nginx-tmp/p;\n\
         fastcgi_temp_path {d}/nginx-tmp/f; uwsgi_temp_path {d}/nginx-tmp/u; scgi_temp_path {d}/nginx-tmp/s;\n\
         server {{ listen 127.0.0.1:{port}; location / {{ return 200; }} }} }}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf)?;
    let server =
        start(Command::new("nginx").arg("-c").arg(dir.join("nginx.conf")).arg("-p").arg(dir), "nginx")?;
    wait_listening(port, "nginx (ask endpoint)")?;
    Ok(server)
}

fn caddyfile(pebble: &testkit::PebbleServer, dir: &Path, ask_port: u16) -> String {
    format!(
        "{{\n  admin off\n  http_port {}\n  https_port {}\n  acme_ca {}\n  acme_ca_root {}\n  email bench@example.test\n  \
         on_demand_tls {{\n    ask http://127.0.0.1:{ask_port}/\n  }}\n  storage file_system {{\n    root {}\n  }}\n}}\n\
         https:// {{\n  tls {{\n    on_demand\n  }}\n  respond \"ok\"\n}}\n",
        pebble.http_port(),
        pebble.tls_port(),
        pebble.directory_url(),
        pebble.tls_root_path().display(),
        dir.join("caddy-data").display()
    )
}

fn drive(rounds: usize, ours_only: bool) -> Result<(), Error> {
    let dns = testkit::DnsServer::builder()
        .zone(testkit::Zone::new("ondemand.test", "* A 127.0.0.1\n"))
        .recursion(true)
        .start()?;
    // A fresh pebble for every side and round: Debian's pebble 2.4 stalls new
    // accounts after a round that left many failed orders behind.
    let fresh_pebble = || -> Result<(testkit::PebbleServer, String), Error> {
        let pebble = testkit::PebbleServer::builder().dns_server(dns.addr()).start()?;
        let root = pebble.issuing_root_pem()?;
        Ok((pebble, root))
    };
    let base: PathBuf = std::env::temp_dir().join(format!("on-demand-vs-caddy-{}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    let ask_port = testkit::free_port()?;
    let _ask = nginx_ask(&base, ask_port)?;
    let ask_url = format!("http://127.0.0.1:{ask_port}/");
    let me = std::env::current_exe()?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (mut ours, mut caddy) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let dir = base.join(format!("ours-{round}"));
        std::fs::create_dir_all(&dir)?;
        let (pebble, root_pem) = fresh_pebble()?;
        let server = start_logged(
            Command::new(&me)
                .arg("serve")
                .arg(&dir)
                .arg(pebble.directory_url())
                .arg(pebble.tls_root_path())
                .args([pebble.http_port().to_string(), pebble.tls_port().to_string(), ask_url.clone()]),
            "our proxy",
            &dir.join("serve.log"),
        )?;
        wait_listening(pebble.tls_port(), "our proxy")?;
        ours.push(rt.block_on(hundred_new_names(pebble.tls_port(), &format!("ours{round}-"), &root_pem))?);
        drop(server);
        // The CA's side of the round, beside ours, to tell a CA stall from ours.
        std::fs::write(dir.join("pebble.log"), pebble.log())?;
        if ours_only {
            let o = &ours[ours.len() - 1];
            println!(
                "round {round}: ours {}/{CLIENTS} served on the first attempt, p50 {:.2} s, p99 {:.2} s, max {:.2} s, total {:.2} s",
                o.served,
                percentile(&o.latencies, 0.5),
                percentile(&o.latencies, 0.99),
                percentile(&o.latencies, 1.0),
                o.total
            );
            continue;
        }

        let dir = base.join(format!("caddy-{round}"));
        std::fs::create_dir_all(&dir)?;
        let (pebble, root_pem) = fresh_pebble()?;
        std::fs::write(dir.join("Caddyfile"), caddyfile(&pebble, &dir, ask_port))?;
        let server = start(
            Command::new("caddy")
                .args(["run", "--adapter", "caddyfile", "--config"])
                .arg(dir.join("Caddyfile"))
                .env("HOME", &dir)
                .env("XDG_DATA_HOME", dir.join("data"))
                .env("XDG_CONFIG_HOME", dir.join("config")),
            "caddy",
        )?;
        wait_listening(pebble.tls_port(), "caddy")?;
        caddy.push(rt.block_on(hundred_new_names(
            pebble.tls_port(),
            &format!("caddy{round}-"),
            &root_pem,
        ))?);
        drop(server);
        let show = |o: &Outcome| {
            format!(
                "{}/{CLIENTS} served, p50 {:.2} s, max {:.2} s, total {:.2} s",
                o.served,
                percentile(&o.latencies, 0.5),
                percentile(&o.latencies, 1.0),
                o.total
            )
        };
        println!(
            "round {round}: ours {} · caddy {}",
            show(&ours[ours.len() - 1]),
            show(&caddy[caddy.len() - 1])
        );
    }
    if ours_only {
        // Rounds of ours alone (issue #17's check on a fresh pebble each):
        // printed, not recorded as a comparison row; logs kept in `base`.
        println!("logs: {}", base.display());
        return Ok(());
    }
    let served = |v: &[Outcome]| v.iter().map(|o| o.served as f64).collect::<Vec<_>>();
    let p50 = |v: &[Outcome]| v.iter().map(|o| percentile(&o.latencies, 0.5)).collect::<Vec<_>>();
    let max = |v: &[Outcome]| v.iter().map(|o| percentile(&o.latencies, 1.0)).collect::<Vec<_>>();
    let total = |v: &[Outcome]| v.iter().map(|o| o.total).collect::<Vec<_>>();
    let row = |metric: &str, unit: &str, o: Vec<f64>, c: Vec<f64>, target: String, met: bool| benches::Row {
        metric: metric.to_owned(),
        unit: unit.to_owned(),
        ours: benches::median(&o),
        peer: Some("caddy".into()),
        peer_value: Some(benches::median(&c)),
        ratio: None,
        target,
        met,
        spread: format!("ours {}; caddy {}", benches::spread(&o), benches::spread(&c)),
    };
    let all_served = ours.iter().all(|o| o.served == CLIENTS);
    let within = ours.iter().all(|o| o.served == CLIENTS && o.total <= 10.0);
    row(
        "on-demand: 100 new names, served on the first attempt",
        "of 100",
        served(&ours),
        served(&caddy),
        "100".into(),
        all_served,
    )
    .record();
    row("on-demand: first-handshake latency p50", "s", p50(&ours), p50(&caddy), "-".into(), true).record();
    row("on-demand: first-handshake latency max", "s", max(&ours), max(&caddy), "<= 10 s".into(), within)
        .record();
    row("on-demand: 100 new names, total time", "s", total(&ours), total(&caddy), "<= 10 s".into(), within)
        .record();
    let _ = std::fs::remove_dir_all(&base);
    Ok(())
}
