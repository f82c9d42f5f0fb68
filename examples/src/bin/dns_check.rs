//! `dns-check`: are a customer's DNS records right? Asks the authoritative
//! servers and prints, per hostname and SAN, what is expected, what is there,
//! and what to do.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use clap::Parser;
use dns_verify::{Authorities, Checker, Hostname, RecordStatus, Requirements, SanReport, SanStatus};

const STATUSES: &str = "\
Record statuses:
  VALID          every authoritative server returns the expected value
  MISSING        the name does not exist (NXDOMAIN) or has no record of that type (NODATA)
  WRONG          a different value is there; the observed value is shown
  DUPLICATE      TXT records sit at _acme-challenge.<host> where the CNAME delegation must be;
                 a CNAME cannot coexist with them, so delete them
  PROXIED        the hostname answers with CDN proxy addresses (e.g. Cloudflare's orange cloud)
                 instead of pointing at the edge; switch the record to DNS only
  LOOKUP_FAILED  timeout, SERVFAIL, REFUSED or a network error: temporary, check again later

A SAN is VALID when all its records are; otherwise DNS_DUPLICATE, DNS_WRONG, DNS_MISSING or
PENDING (a lookup failed), in that order of precedence.

Exit status: 0 when every record is VALID, 1 otherwise, 2 on bad input.";

/// Check the DNS records a custom hostname needs, against its authoritative servers.
#[derive(Debug, Parser)]
#[command(name = "dns-check", version, after_long_help = STATUSES, after_help = "See --help for what each status means.")]
struct Args {
    /// Hostnames (SANs) to check; wildcards (`*.example.com`) and IDNs are accepted.
    #[arg(required = true)]
    hostnames: Vec<String>,

    /// Zone that `_acme-challenge.<host>` must be a CNAME into (e.g. acme.edge.example.net).
    #[arg(long, env = "DNS_CHECK_DELEGATE_TO")]
    delegate_to: String,

    /// Token expected in the TXT record `_customdomain-challenge.<host>`.
    #[arg(long, env = "DNS_CHECK_OWNERSHIP_TOKEN")]
    ownership_token: Option<String>,

    /// CNAME target the hostname must route to (e.g. edge.example.net).
    #[arg(long, env = "DNS_CHECK_ROUTING_CNAME")]
    routing_cname: Option<String>,

    /// Edge address accepted for A/AAAA routing (flattened apex); repeatable.
    #[arg(long = "edge-ip")]
    edge_ips: Vec<std::net::IpAddr>,

    /// Ask these authoritative servers (IP:PORT) instead of discovering them; repeatable.
    #[arg(long = "nameserver")]
    nameservers: Vec<SocketAddr>,

    /// Recursive resolver used only to discover the authoritative servers.
    #[arg(long, default_value = "127.0.0.53:53", env = "DNS_CHECK_RESOLVER")]
    resolver: SocketAddr,

    /// Per-query timeout in milliseconds.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,

    /// Print JSON (one array of SAN reports) for programs instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut hosts = Vec::new();
    for h in &args.hostnames {
        match Hostname::parse(h) {
            Ok(host) => hosts.push((host, args.ownership_token.clone())),
            Err(e) => {
                eprintln!("dns-check: {h:?} is not a valid hostname: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let mut requirements =
        Requirements::delegating_to(&args.delegate_to).routing_addresses(args.edge_ips.clone());
    if let Some(cname) = &args.routing_cname {
        requirements = requirements.routing_cname(cname);
    }
    let authorities = if args.nameservers.is_empty() {
        Authorities::Discover { resolver: args.resolver, port: 53 }
    } else {
        Authorities::fixed(args.nameservers.iter().copied())
    };
    let checker =
        Checker::builder().authorities(authorities).timeout(Duration::from_millis(args.timeout_ms)).build();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("dns-check: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let reports = runtime.block_on(checker.check_hosts(&requirements, &hosts));
    if args.json {
        match serde_json::to_string_pretty(&reports) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("dns-check: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print_table(&reports);
    }
    let all_valid = reports.iter().all(|s| s.status == SanStatus::Valid)
        && reports.iter().flat_map(|s| &s.records).all(|r| r.status == RecordStatus::Valid);
    if all_valid { ExitCode::SUCCESS } else { ExitCode::from(1) }
}

fn print_table(reports: &[SanReport]) {
    for san in reports {
        let status = serde_json::to_value(san.status).ok().and_then(|v| v.as_str().map(str::to_uppercase));
        println!("{}  [{}]", san.host, status.unwrap_or_default());
        println!("  {:<48} {:<6} {:<44} {:<32} STATUS", "RECORD", "TYPE", "EXPECTED", "OBSERVED");
        for r in &san.records {
            let observed = if r.observed.is_empty() { "-".to_owned() } else { r.observed.join(", ") };
            println!(
                "  {:<48} {:<6} {:<44} {:<32} {}",
                r.name,
                r.record_type,
                r.expected,
                observed,
                r.status.label()
            );
            if r.status != RecordStatus::Valid {
                println!("    fix: {}", r.fix);
            }
        }
        println!();
    }
}
