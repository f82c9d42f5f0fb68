//! TLS termination and passthrough by SNI.
//!
//! Work in progress (issue #6). Available now: [`SniResolver`], the
//! lock-free certificate table that rustls asks during each handshake.
//! Still to come: the proxy listeners (terminate / passthrough), HTTP-01 and
//! TLS-ALPN-01 responders, on-demand issuance behind an ask policy, limits.

mod resolver;

pub use resolver::SniResolver;
