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
    /// How many measurements `ours` is computed from (0: none, which the
    /// writer refuses).
    #[serde(default)]
    pub rounds: usize,
    /// How many measurements `peer_value` is computed from.
    #[serde(default)]
    pub peer_rounds: usize,
    /// Failed attempts during the measurement, by side and reason ("none").
    #[serde(default)]
    pub failures: String,
    /// The commit measured (`git rev-parse --short HEAD`, "+dirty" when the
    /// tree had changes), stamped by [`Row::record`].
    #[serde(default)]
    pub commit: String,
    /// When it was measured (UTC, RFC 3339), stamped by [`Row::record`].
    #[serde(default)]
    pub measured_at: String,
}

/// Why the results writer refuses a row: every figure in RESULTS.md must be
/// measured by the run writing it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RowError {
    /// No measurement behind our value.
    #[error("{0}: no measurement of ours (0 rounds)")]
    NoMeasurement(String),
    /// A value is not a number (NaN or infinite).
    #[error("{0}: value is not a finite number")]
    NotFinite(String),
    /// A peer is named without a measured value.
    #[error("{0}: peer named but not measured")]
    PeerNotMeasured(String),
    /// Measured at another commit than the run's.
    #[error("{metric}: measured at {found:?}, this run is at {expected:?}")]
    OtherCommit {
        /// The row.
        metric: String,
        /// The row's commit.
        found: String,
        /// The run's commit.
        expected: String,
    },
    /// No date of measurement.
    #[error("{0}: no date of measurement")]
    Undated(String),
}

impl Row {
    /// Checks that the row carries its own measurement, made at `commit`.
    ///
    /// # Errors
    /// [`RowError`] naming what is missing.
    pub fn check(&self, commit: &str) -> Result<(), RowError> {
        let metric = || format!("{} ({})", self.metric, self.peer.as_deref().unwrap_or("ours"));
        if self.rounds == 0 {
            return Err(RowError::NoMeasurement(metric()));
        }
        if !self.ours.is_finite() || self.ratio.is_some_and(|r| !r.is_finite()) {
            return Err(RowError::NotFinite(metric()));
        }
        if self.peer.is_some() {
            match self.peer_value {
                Some(v) if self.peer_rounds > 0 && v.is_finite() => {}
                Some(v) if !v.is_finite() => return Err(RowError::NotFinite(metric())),
                _ => return Err(RowError::PeerNotMeasured(metric())),
            }
        }
        if self.commit != commit {
            return Err(RowError::OtherCommit {
                metric: metric(),
                found: self.commit.clone(),
                expected: commit.to_owned(),
            });
        }
        if self.measured_at.is_empty() {
            return Err(RowError::Undated(metric()));
        }
        Ok(())
    }
}

/// Logs of a server the harness runs, at `info` (or `RUST_LOG`), without
/// colours, to stderr, which the driver keeps in a file.
pub fn log_to_stderr() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}

/// The commit the benchmarks measure: `$BENCH_COMMIT` (set by the harness
/// for every program it runs), else `git rev-parse --short HEAD` plus
/// "+dirty" when tracked files differ from it.
#[must_use]
pub fn current_commit() -> String {
    if let Ok(c) = std::env::var("BENCH_COMMIT")
        && !c.is_empty()
    {
        return c;
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let head = git(&["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    if dirty { format!("{head}+dirty") } else { head }
}

/// Now, UTC, RFC 3339 to the second.
#[must_use]
pub fn now_utc() -> String {
    let now =
        time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

impl Row {
    /// Stamps the row with the commit and time, prints it and appends it to
    /// `$BENCH_RESULTS` when set.
    pub fn record(&self) {
        let mut row = self.clone();
        if row.commit.is_empty() {
            row.commit = current_commit();
        }
        if row.measured_at.is_empty() {
            row.measured_at = now_utc();
        }
        row.print_and_append();
    }

    fn print_and_append(&self) {
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

/// [`connector_trusting`] offering `http/1.1` by ALPN, as browsers do (so a
/// terminating proxy knows the client speaks first).
///
/// # Errors
/// When the PEM holds no usable certificate.
pub fn http_connector_trusting(
    root_pem: &str,
) -> Result<tokio_rustls::TlsConnector, Box<dyn std::error::Error + Send + Sync>> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(root_pem.as_bytes())?)?;
    let mut config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
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
    compared(metric, unit, peer, ours, theirs, Bound::AtLeast(target))
}

/// A comparison where lower is better (CPU per handshake): ratio = ours /
/// peer per round, target ratio ≤ `target`.
#[must_use]
pub fn lower_is_better(
    metric: &str,
    unit: &str,
    peer: &str,
    ours: &[f64],
    theirs: &[f64],
    target: f64,
) -> Row {
    compared(metric, unit, peer, ours, theirs, Bound::AtMost(target))
}

/// The bound a comparison's ratio is held to.
enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

/// The row of a comparison: the median of the per-round ratios ours / peer,
/// held to `bound`.
fn compared(metric: &str, unit: &str, peer: &str, ours: &[f64], theirs: &[f64], bound: Bound) -> Row {
    let ratios: Vec<f64> = ours.iter().zip(theirs).map(|(o, t)| o / t).collect();
    let ratio = median(&ratios);
    let (relation, target, met) = match bound {
        Bound::AtLeast(target) => (">=", target, ratio >= target),
        Bound::AtMost(target) => ("<=", target, ratio <= target),
    };
    Row {
        metric: metric.to_owned(),
        unit: unit.to_owned(),
        ours: median(ours),
        peer: Some(peer.to_owned()),
        peer_value: Some(median(theirs)),
        ratio: Some(ratio),
        target: format!("ratio {relation} {target}"),
        met,
        spread: format!("ratio {}", spread(&ratios)),
        rounds: ours.len(),
        peer_rounds: theirs.len(),
        failures: String::new(),
        commit: String::new(),
        measured_at: String::new(),
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
        rounds: values.len(),
        peer_rounds: 0,
        failures: String::new(),
        commit: String::new(),
        measured_at: String::new(),
    }
}

/// A figure reported without a target.
#[must_use]
pub fn reported(metric: &str, unit: &str, values: &[f64]) -> Row {
    Row { target: "reported".into(), met: true, ..at_most(metric, unit, values, f64::INFINITY) }
}

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux).
#[must_use]
pub fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime (clock ticks) of one `/proc/.../stat` file, and its parent pid.
fn stat_times(path: &std::path::Path) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    // The command name may hold spaces: fields start after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// CPU time (user + system, clock ticks) used so far by process `root` and
/// all its descendants (nginx's workers, HAProxy's threads, …), from
/// `/proc/<pid>/stat`: sample before and after a run, divide the difference
/// by the work served.
#[must_use]
pub fn tree_cpu_ticks(root: u32) -> u64 {
    let mut procs: Vec<(u32, u32, u64)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
            if let Some((ppid, ticks)) = stat_times(&entry.path().join("stat")) {
                procs.push((pid, ppid, ticks));
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(procs.iter().filter(|p| p.1 == parent).map(|p| p.0));
        i += 1;
    }
    procs.iter().filter(|p| tree.contains(&p.0)).map(|p| p.2).sum()
}

/// CPU time (clock ticks) used so far by the calling thread.
fn thread_cpu_ticks() -> u64 {
    stat_times(std::path::Path::new("/proc/thread-self/stat")).map_or(0, |t| t.1)
}

/// The physical floor of a full TLS 1.3 handshake on the server: one ECDSA
/// P-256 signature and one X25519 key generation + agreement with ring,
/// measured on the calling thread (one core).
#[derive(Debug, Clone, Copy)]
pub struct CryptoFloor {
    /// CPU µs per ECDSA P-256 (SHA-256) signature.
    pub sign_us: f64,
    /// CPU µs per X25519 key generation + public key + agreement.
    pub x25519_us: f64,
}

impl CryptoFloor {
    /// CPU µs of one signature plus one key exchange.
    #[must_use]
    pub fn total_us(&self) -> f64 {
        self.sign_us + self.x25519_us
    }
}

/// Measures [`CryptoFloor`] for about `duration` (half per primitive) in CPU
/// time of this thread, so that other processes on the core do not inflate it.
///
/// # Panics
/// Never on a working ring (key generation from the system RNG).
#[must_use]
pub fn measure_crypto_floor(duration: std::time::Duration) -> CryptoFloor {
    use ring::{agreement, rand::SystemRandom, signature};
    let rng = SystemRandom::new();
    let alg = &signature::ECDSA_P256_SHA256_ASN1_SIGNING;
    let pkcs8 = signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("P-256 key generation");
    let key = signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).expect("P-256 key");
    // What TLS 1.3 signs: 64 spaces, the context string, a 0, the transcript hash.
    let message = [0x20u8; 130];
    let peer = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng).expect("X25519 key");
    let peer_public = peer.compute_public_key().expect("X25519 public key");
    let peer_public = agreement::UnparsedPublicKey::new(&agreement::X25519, peer_public.as_ref().to_vec());
    let ticks = clock_ticks_per_second();
    let per_op = |f: &mut dyn FnMut()| {
        for _ in 0..50 {
            f(); // warm-up
        }
        let (wall, cpu) = (std::time::Instant::now(), thread_cpu_ticks());
        let mut n = 0u64;
        while wall.elapsed() < duration / 2 {
            for _ in 0..100 {
                f();
            }
            n += 100;
        }
        let cpu_s = (thread_cpu_ticks() - cpu) as f64 / ticks;
        // Clock ticks are coarse (10 ms): never below the wall-clock figure's lower bound of 0.
        let secs = if cpu_s > 0.0 { cpu_s } else { wall.elapsed().as_secs_f64() };
        secs * 1e6 / n as f64
    };
    let sign_us = per_op(&mut || {
        std::hint::black_box(key.sign(&rng, std::hint::black_box(&message)).expect("sign"));
    });
    let x25519_us = per_op(&mut || {
        let mine = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng).expect("X25519 key");
        std::hint::black_box(mine.compute_public_key().expect("public key"));
        agreement::agree_ephemeral(mine, &peer_public, |secret| {
            std::hint::black_box(secret.len());
        })
        .expect("agreement");
    });
    CryptoFloor { sign_us, x25519_us }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured() -> Row {
        let mut row = higher_is_better("handshakes/s", "/s", "nginx", &[2.0, 3.0], &[1.0, 1.0], 1.3);
        row.commit = "abc1234".into();
        row.measured_at = now_utc();
        row
    }

    #[test]
    fn a_measured_row_is_accepted() {
        assert_eq!(measured().check("abc1234"), Ok(()));
    }

    #[test]
    fn the_writer_refuses_a_row_without_a_measurement() {
        let mut row = measured();
        row.rounds = 0;
        assert!(matches!(row.check("abc1234"), Err(RowError::NoMeasurement(_))));
        let empty = at_most("cold start", "ms", &[], 1000.0);
        let mut empty = Row { commit: "abc1234".into(), measured_at: now_utc(), ..empty };
        assert!(matches!(empty.check("abc1234"), Err(RowError::NoMeasurement(_))));
        empty.rounds = 1;
        empty.ours = f64::NAN;
        assert!(matches!(empty.check("abc1234"), Err(RowError::NotFinite(_))));
    }

    #[test]
    fn the_writer_refuses_a_peer_without_its_measurement() {
        let mut row = measured();
        row.peer_value = None;
        assert!(matches!(row.check("abc1234"), Err(RowError::PeerNotMeasured(_))));
        let mut row = measured();
        row.peer_rounds = 0;
        assert!(matches!(row.check("abc1234"), Err(RowError::PeerNotMeasured(_))));
    }

    #[test]
    fn the_writer_refuses_rows_of_another_commit_or_undated() {
        assert!(matches!(measured().check("def5678"), Err(RowError::OtherCommit { .. })));
        let mut row = measured();
        row.measured_at.clear();
        assert!(matches!(row.check("abc1234"), Err(RowError::Undated(_))));
    }
}
