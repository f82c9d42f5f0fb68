//! CDN proxy address ranges: an answer inside one means "proxied", not "ours".

use std::net::IpAddr;

use ipnet::IpNet;

/// Cloudflare's published proxy ranges (<https://www.cloudflare.com/ips/>), as
/// shipped with this crate.
pub const CLOUDFLARE_RANGES: &[&str] = &[
    "173.245.48.0/20",
    "103.21.244.0/22",
    "103.22.200.0/22",
    "103.31.4.0/22",
    "141.101.64.0/18",
    "108.162.192.0/18",
    "190.93.240.0/20",
    "188.114.96.0/20",
    "197.234.240.0/22",
    "198.41.128.0/17",
    "162.158.0.0/15",
    "104.16.0.0/13",
    "104.24.0.0/14",
    "172.64.0.0/13",
    "131.0.72.0/22",
    "2400:cb00::/32",
    "2606:4700::/32",
    "2803:f800::/32",
    "2405:b500::/32",
    "2405:8100::/32",
    "2a06:98c0::/29",
    "2c0f:f248::/32",
];

/// The date [`CLOUDFLARE_RANGES`] was copied from the published list. The list
/// changes rarely; override it with [`ProxyRanges::new`] when it does.
pub const CLOUDFLARE_RANGES_SOURCE_DATE: &str = "2026-11-23";

/// A string given to [`ProxyRanges::new`] or [`ProxyRanges::add`] that is not
/// a CIDR range.
///
/// ```
/// let err = dns_verify::ProxyRanges::new("CDN", &["10.0.0.0/33"]).unwrap_err();
/// assert_eq!(err.to_string(), "not a CIDR range: \"10.0.0.0/33\"");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a CIDR range: {range:?}")]
pub struct InvalidRange {
    /// The string as given.
    pub range: String,
    #[source]
    source: ipnet::AddrParseError,
}

/// A set of CDN proxy ranges, named for messages.
///
/// ```
/// use dns_verify::ProxyRanges;
/// let ranges = ProxyRanges::cloudflare();
/// assert_eq!(ranges.provider_of("104.16.1.1".parse().unwrap()), Some("Cloudflare"));
/// assert_eq!(ranges.provider_of("192.0.2.1".parse().unwrap()), None);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ProxyRanges {
    ranges: Vec<(String, IpNet)>,
}

impl ProxyRanges {
    /// Cloudflare's ranges as shipped ([`CLOUDFLARE_RANGES`]).
    #[must_use]
    pub fn cloudflare() -> Self {
        let mut this = Self::default();
        for r in CLOUDFLARE_RANGES {
            if let Ok(net) = r.parse() {
                this.ranges.push(("Cloudflare".to_owned(), net));
            }
        }
        this
    }

    /// Custom ranges for `provider` (CIDR strings).
    ///
    /// ```
    /// use dns_verify::ProxyRanges;
    /// let ranges = ProxyRanges::new("Fastly", &["151.101.0.0/16"]).unwrap();
    /// assert_eq!(ranges.provider_of("151.101.1.1".parse().unwrap()), Some("Fastly"));
    /// let err = ProxyRanges::new("Fastly", &["151.101.0.0"]).unwrap_err();
    /// assert_eq!(err.range, "151.101.0.0");
    /// ```
    ///
    /// # Errors
    /// [`InvalidRange`] for the first string that is not a CIDR range.
    pub fn new(provider: &str, cidrs: &[&str]) -> Result<Self, InvalidRange> {
        let mut this = Self::default();
        this.add(provider, cidrs)?;
        Ok(this)
    }

    /// Adds ranges for `provider`. Nothing is added when one of them is invalid.
    ///
    /// ```
    /// use dns_verify::ProxyRanges;
    /// let mut ranges = ProxyRanges::cloudflare();
    /// ranges.add("Fastly", &["2a04:4e40::/32"]).unwrap();
    /// assert!(ranges.add("Fastly", &["not a range"]).is_err());
    /// ```
    ///
    /// # Errors
    /// [`InvalidRange`] for the first string that is not a CIDR range.
    pub fn add(&mut self, provider: &str, cidrs: &[&str]) -> Result<(), InvalidRange> {
        let nets = cidrs
            .iter()
            .map(|c| c.parse::<IpNet>().map_err(|source| InvalidRange { range: (*c).to_owned(), source }))
            .collect::<Result<Vec<_>, _>>()?;
        for net in nets {
            self.ranges.push((provider.to_owned(), net));
        }
        Ok(())
    }

    /// The provider whose range holds `ip`.
    #[must_use]
    pub fn provider_of(&self, ip: IpAddr) -> Option<&str> {
        self.ranges.iter().find(|(_, net)| net.contains(&ip)).map(|(p, _)| p.as_str())
    }
}
