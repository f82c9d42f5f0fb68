//! TLS termination and passthrough by SNI.
//!
//! Work in progress (issue #6). Available now:
//! - [`SniResolver`], the lock-free certificate table that rustls asks
//!   during each handshake;
//! - [`serve_http80`], the plain-HTTP listener that answers HTTP-01
//!   challenges (from this process or, through the store, any node) and
//!   redirects everything else to HTTPS with 308.
//!
//! Still to come: the TLS listeners (terminate / passthrough, `acme-tls/1`),
//! on-demand issuance behind an ask policy, graceful shutdown.

mod http80;
mod resolver;

pub use http80::{Http80Config, serve_http80};
pub use resolver::SniResolver;
