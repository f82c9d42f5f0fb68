//! Runnable programs built on the workspace crates.
//!
//! - `dns-check`: prints, per hostname and SAN, each expected DNS record,
//!   what the authoritative servers answer, the status and the fix
//!   (`cargo run -p examples --bin dns-check -- --help`).
//!
//! - `edge`: the custom-domain edge server — control plane API, worker and
//!   TLS proxy in one process ([`edge`]; `cargo run -p examples --bin edge -- --help`).

pub mod edge;
