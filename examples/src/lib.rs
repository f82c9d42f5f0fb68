//! Runnable programs built on the workspace crates.
//!
//! Not implemented yet: the `edge` server and the `dns-check` CLI come with
//! their issues. Until then, `cargo run -p cert-store --example store_and_list`
//! is the runnable demo.
