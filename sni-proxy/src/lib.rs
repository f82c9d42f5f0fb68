//! TLS termination and passthrough by SNI.
//!
//! Not implemented yet: this crate is reserved for the `sni-proxy` part of the
//! design (SNI resolver, proxy listeners, on-demand TLS). It exports nothing so far.
