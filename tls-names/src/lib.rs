//! Hostnames for certificates and TLS server names, shared by every crate of
//! the custom-domain TLS toolkit.
//!
//! - [`Hostname`]: a validated, normalised DNS name (lowercase, IDNs as
//!   punycode, no trailing dot, a wildcard only as the whole first label of a
//!   name with at least two more labels), built from user input by
//!   [`Hostname::parse`].
//! - [`canonical_hostname`]: the same label rules for names that arrive in
//!   ASCII already (certificate SANs, TLS server names), as a `String`.
//! - The one matcher: exact name first, then the single-level wildcard
//!   (`*.example.com` matches `a.example.com`, not `a.b.example.com` nor
//!   `example.com`) — [`lookup_exact_then_wildcard`] for synchronous tables
//!   (no allocation), [`candidates`] for lookups that await, [`name_matches`]
//!   to ask whether a certificate name covers a hostname, and [`wildcard_of`].
//!
//! ```
//! use tls_names::{Hostname, lookup_exact_then_wildcard, name_matches};
//!
//! let host = Hostname::parse("Shop.Example.COM.").unwrap();
//! assert_eq!(host.as_str(), "shop.example.com");
//!
//! let table = std::collections::HashMap::from([("*.example.com", 1)]);
//! assert_eq!(lookup_exact_then_wildcard("shop.example.com", |n| table.get(n).copied()), Some(1));
//! assert!(name_matches("*.example.com", host.as_str()));
//! assert!(!name_matches("*.example.com", "a.b.example.com"));
//! ```

mod hostname;
mod matcher;

pub use hostname::{Hostname, HostnameError, MAX_LABEL_LEN, MAX_NAME_LEN, canonical_hostname};
pub use matcher::{Candidates, candidates, lookup_exact_then_wildcard, name_matches, wildcard_of};

/// The README's example, compiled and run as a doc test so it
/// stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
