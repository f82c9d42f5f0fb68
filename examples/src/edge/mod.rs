//! The custom-domain edge: control plane API + worker + TLS proxy in one
//! process — wiring only; the rules live in the `control-plane` crate.
//!
//! - [`config`]: flags and environment variables, validated at start;
//! - [`api`]: the HTTP API (authentication layers, one error mapping) and
//!   its OpenAPI document;
//! - [`dns_credentials`]: customers' DNS provider credentials (routes, settings, the apply pass);
//! - [`webhook_client`]: hyper as the control plane's webhook transport;
//! - [`metrics`](mod@metrics): `/metrics`, `/healthz`, `/readyz` on their own listener;
//! - [`widget`]: the customer's DNS setup page (`/widget`);
//! - [`run`](mod@run): wiring it all together.

pub mod api;
pub mod config;
pub mod dns_credentials;
pub mod metrics;
pub mod run;
pub mod webhook_client;
pub mod widget;
