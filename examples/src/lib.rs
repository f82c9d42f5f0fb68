//! Runnable programs built on the workspace crates.
//!
//! - `dns-check`: prints, per hostname and SAN, each expected DNS record,
//!   what the authoritative servers answer, the status and the fix
//!   (`cargo run -p examples --bin dns-check -- --help`).
//!
//! The `edge` server comes with its issue; until then
//! `cargo run -p cert-store --example store_and_list` is the runnable demo.
