//! DNS checks vs dnsperf: the same 30,000 queries (10,000 hostnames × 3
//! records) against the same local BIND, ours and dnsperf alternating, five
//! rounds each; prints queries/s for both and the median of the per-round
//! ratios (target ≥ 0.5). Both clients run on one thread (dnsperf's default
//! `-T 1`; our checker on a current-thread runtime) with at most 100 queries
//! outstanding, so that BIND keeps the other core of a 2-core machine.
//!
//! `cargo run --release -p benches --bin dns-vs-dnsperf [-- HOSTNAMES]`
//! (needs Debian's `bind9` and `dnsperf`).

use std::{fmt::Write as _, process::Command, time::Instant};

use dns_verify::{Authorities, Checker, Hostname, RecordStatus, Requirements};
use testkit::{DnsServer, Zone};

use benches::median;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: usize = std::env::args().nth(1).map_or(Ok(10_000), |a| a.parse())?;
    let requirements = Requirements::delegating_to("acme.edge.test").routing_cname("edge.edge.test");
    let hosts: Vec<Hostname> =
        (0..count).map(|i| Hostname::parse(&format!("h{i}.example.test"))).collect::<Result<_, _>>()?;

    let mut zone = String::with_capacity(count * 160);
    let mut queries = String::with_capacity(count * 100);
    for (i, host) in hosts.iter().enumerate() {
        let target = requirements.delegation_target(host);
        let _ = writeln!(zone, "_acme-challenge.h{i} CNAME {target}.");
        let _ = writeln!(zone, "_customdomain-challenge.h{i} TXT \"tok\"");
        let _ = writeln!(zone, "h{i} CNAME edge.edge.test.");
        let _ = writeln!(queries, "_acme-challenge.{host} TXT\n_customdomain-challenge.{host} TXT\n{host} A");
    }
    let dns = DnsServer::builder().zone(Zone::new("example.test", &zone)).start()?;
    let query_file = tempfile_path("dnsperf-queries");
    std::fs::write(&query_file, queries)?;
    let total_queries = (count * 3) as f64;

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let checker =
        Checker::builder().authorities(Authorities::fixed([dns.addr()])).max_concurrency(100).build();
    let pairs: Vec<(Hostname, Option<String>)> =
        hosts.iter().map(|h| (h.clone(), Some("tok".to_owned()))).collect();

    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=5 {
        let start = Instant::now();
        let reports = runtime.block_on(checker.check_hosts(&requirements, &pairs));
        let secs = start.elapsed().as_secs_f64();
        let valid =
            reports.iter().flat_map(|s| &s.records).filter(|r| r.status == RecordStatus::Valid).count();
        assert_eq!(valid, count * 3, "every record must check valid");
        ours.push(total_queries / secs);

        let out = Command::new("dnsperf")
            .args(["-s", "127.0.0.1", "-p", &dns.port().to_string(), "-n", "1", "-q", "100", "-d"])
            .arg(&query_file)
            .output()
            .map_err(|e| format!("dnsperf (Debian package `dnsperf`): {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let qps = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("Queries per second:").map(|v| v.trim().parse::<f64>()))
            .ok_or_else(|| format!("no 'Queries per second' in dnsperf output:\n{text}"))??;
        theirs.push(qps);
        println!("round {round}: ours {:.0} q/s, dnsperf {qps:.0} q/s", ours[ours.len() - 1]);
    }
    let ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(o, t)| o / t).collect();
    let (lo, hi) = ratios.iter().fold((f64::MAX, f64::MIN), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    let ratio = median(&ratios);
    let (o, t) = (median(&ours), median(&theirs));
    println!("\n{count} hostnames x 3 records, median of 5 alternating rounds");
    println!("ours:    {o:.0} queries/s (checking + judging every answer)");
    println!("dnsperf: {t:.0} queries/s");
    println!("ratio:   {ratio:.2} (per-round range {lo:.2}..{hi:.2}; target >= 0.5)");
    benches::higher_is_better(
        &format!("DNS record checks, {count} hostnames x 3 records"),
        "q/s",
        "dnsperf",
        &ours,
        &theirs,
        0.5,
    )
    .record();
    let _ = std::fs::remove_file(query_file);
    Ok(())
}

fn tempfile_path(stem: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("{stem}-{}.txt", std::process::id()))
}
