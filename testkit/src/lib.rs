//! Real peers for tests, started on 127.0.0.1 with free ports and stopped on drop:
//! PostgreSQL ([`PostgresServer`]), BIND ([`DnsServer`]), pebble ([`PebbleServer`])
//! and chromedriver with headless Chromium ([`ChromeDriver`]); PowerDNS ([`PowerDnsServer`]),
//! moto's Route 53 ([`MotoServer`]), and documented-API doubles of Cloudflare,
//! GoDaddy and Namecheap ([`ApiDouble`]).
//!
//! Every server runs in its own temporary directory. A missing binary is a
//! [`TestkitError::MissingBinary`] that names the Debian package to install
//! (`scripts/test` installs them all).

mod api_doubles;
mod chromedriver;
mod clients;
mod dns;
mod error;
mod fault_proxy;
mod http01;
mod moto;
mod pebble;
mod ports;
mod postgres;
mod powerdns;
mod process;
mod tcp;

pub use api_doubles::{ApiDouble, Gate, StubRecord};
pub use chromedriver::ChromeDriver;
pub use clients::{client_config, curl, echo_upstream};
pub use dns::{DnsServer, DnsServerBuilder, TSIG_KEY_NAME, Zone};
pub use error::TestkitError;
pub use fault_proxy::{Exchange, Fault, FaultPlan, FaultProxy};
pub use http01::{TokenLookup, serve_http01};
pub use moto::MotoServer;
pub use pebble::{PebbleBuilder, PebbleServer};
pub use ports::free_port;
pub use postgres::{PostgresBuilder, PostgresServer};
pub use powerdns::PowerDnsServer;
pub use tcp::tcp_server;
