//! The dns-check binary against a real BIND: table, JSON, exit codes, help.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::process::Command;

use testkit::{DnsServer, Zone};

fn dns_check() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dns-check"))
}

#[test]
fn json_output_and_exit_codes() {
    // The delegation target label is derived from the hostname: ask the tool
    // what it expects first, then create exactly that.
    let empty = DnsServer::builder().zone(Zone::new("example.test", "")).start().unwrap();
    let out = dns_check()
        .args(["ok.example.test", "--delegate-to", "acme.edge.test", "--json", "--nameserver"])
        .arg(empty.addr().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "missing records must fail");
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reports[0]["status"], "dns_missing");
    let target = reports[0]["records"][0]["expected"].as_str().unwrap().to_owned();

    let dns = DnsServer::builder()
        .zone(Zone::new(
            "example.test",
            &format!("_acme-challenge.ok CNAME {target}.\n_customdomain-challenge.ok TXT \"tok\"\nok CNAME edge.edge.test.\n"),
        ))
        .start()
        .unwrap();
    let out = dns_check()
        .args(["OK.example.test.", "--delegate-to", "acme.edge.test", "--ownership-token", "tok"])
        .args(["--routing-cname", "edge.edge.test", "--json", "--nameserver"])
        .arg(dns.addr().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reports[0]["host"], "ok.example.test");
    assert_eq!(reports[0]["status"], "valid");
    assert_eq!(reports[0]["records"].as_array().unwrap().len(), 3);

    // The human table names the fix for what is wrong.
    let out = dns_check()
        .args([
            "ok.example.test",
            "--delegate-to",
            "acme.edge.test",
            "--ownership-token",
            "other",
            "--nameserver",
        ])
        .arg(dns.addr().to_string())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("WRONG"), "{table}");
    assert!(
        table.contains(
            "fix: Change the TXT record at _customdomain-challenge.ok.example.test from tok to other"
        ),
        "{table}"
    );
}

#[test]
fn bad_hostname_is_exit_2_and_help_explains_statuses() {
    let out = dns_check().args(["bad_name.example.com", "--delegate-to", "acme.edge.test"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a valid hostname"));
    let help = dns_check().arg("--help").output().unwrap();
    let text = String::from_utf8(help.stdout).unwrap();
    for status in ["VALID", "MISSING", "WRONG", "DUPLICATE", "PROXIED", "LOOKUP_FAILED", "--json"] {
        assert!(text.contains(status), "--help lacks {status}");
    }
}
