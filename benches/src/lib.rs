//! Benchmarks of the workspace: criterion micro-benchmarks under `benches/`
//! (`cargo bench -p benches`), comparison programs in `src/bin`, and the
//! harness (`benches/run`, or `cargo run --release -p benches --bin run`)
//! that runs them all and writes `benches/RESULTS.md`.
//!
//! Each comparison program prints its figures and, when the environment
//! variable `BENCH_RESULTS` names a file, appends one JSON [`Row`] per metric
//! to it for the harness.

use std::io::Write as _;

use serde::{Deserialize, Serialize};

/// One measured metric, ours against a peer (or against an absolute target).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    /// What is measured, e.g. "handshakes/s, 10,000 certificates".
    pub metric: String,
    /// Unit of `ours` and `peer_value`.
    pub unit: String,
    /// Our median.
    pub ours: f64,
    /// The peer's name, when compared.
    pub peer: Option<String>,
    /// The peer's median.
    pub peer_value: Option<f64>,
    /// ours / peer (or peer / ours where lower is better), median of rounds.
    pub ratio: Option<f64>,
    /// The target, in words ("ratio >= 1.3", "<= 200 ns").
    pub target: String,
    /// Whether the target is met.
    pub met: bool,
    /// Spread of the rounds, in words ("ratio 1.21..1.46 over 5 rounds").
    pub spread: String,
}

impl Row {
    /// Prints the row and appends it to `$BENCH_RESULTS` when set.
    pub fn record(&self) {
        println!(
            "RESULT {}: ours {:.1} {}{}  target {} ({})",
            self.metric,
            self.ours,
            self.unit,
            match (&self.peer, self.peer_value, self.ratio) {
                (Some(p), Some(v), Some(r)) => format!(", {p} {v:.1} {}, ratio {r:.2}", self.unit),
                (Some(p), Some(v), None) => format!(", {p} {v:.1} {}", self.unit),
                _ => String::new(),
            },
            self.target,
            if self.met { "met" } else { "NOT met" }
        );
        if let Ok(path) = std::env::var("BENCH_RESULTS")
            && let Ok(line) = serde_json::to_string(self)
            && let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

/// A TLS connector trusting only `root_pem` (ring provider, no client auth).
///
/// # Errors
/// When the PEM holds no usable certificate.
pub fn connector_trusting(
    root_pem: &str,
) -> Result<tokio_rustls::TlsConnector, Box<dyn std::error::Error + Send + Sync>> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(root_pem.as_bytes())?)?;
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)))
}

/// The median (upper median for even counts); 0 for no values.
#[must_use]
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// "lo..hi over n rounds".
#[must_use]
pub fn spread(values: &[f64]) -> String {
    let (lo, hi) = values.iter().fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    format!("{lo:.2}..{hi:.2} over {} rounds", values.len())
}

/// A comparison where higher is better: row with ratio = ours / peer per round.
#[must_use]
pub fn higher_is_better(
    metric: &str,
    unit: &str,
    peer: &str,
    ours: &[f64],
    theirs: &[f64],
    target: f64,
) -> Row {
    let ratios: Vec<f64> = ours.iter().zip(theirs).map(|(o, t)| o / t).collect();
    let ratio = median(&ratios);
    Row {
        metric: metric.to_owned(),
        unit: unit.to_owned(),
        ours: median(ours),
        peer: Some(peer.to_owned()),
        peer_value: Some(median(theirs)),
        ratio: Some(ratio),
        target: format!("ratio >= {target}"),
        met: ratio >= target,
        spread: format!("ratio {}", spread(&ratios)),
    }
}

/// An absolute target where lower is better (latency, memory).
#[must_use]
pub fn at_most(metric: &str, unit: &str, values: &[f64], limit: f64) -> Row {
    let ours = median(values);
    Row {
        metric: metric.to_owned(),
        unit: unit.to_owned(),
        ours,
        peer: None,
        peer_value: None,
        ratio: None,
        target: format!("<= {limit} {unit}"),
        met: ours <= limit,
        spread: spread(values),
    }
}
