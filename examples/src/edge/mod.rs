//! The custom-domain edge: control plane API + worker + TLS proxy in one
//! process, on the workspace crates.
//!
//! - [`config`]: flags and environment variables;
//! - [`model`]: what the API shows, errors with stable codes;
//! - [`repo`]: connections and hostname claims in the shared storage;
//! - [`service`]: create, check, verify, issue, drift, archive;
//! - [`webhooks`]: signed events from a stored outbox;
//! - [`api`]: the HTTP API and its OpenAPI document;
//! - [`run`](mod@run): wiring it all together.

pub mod api;
pub mod config;
pub mod model;
pub mod repo;
pub mod run;
pub mod schedule;
pub mod service;
pub mod webhooks;
