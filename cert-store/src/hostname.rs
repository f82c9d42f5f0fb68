//! Hostname rules for certificate names.

/// Why a name is not a valid certificate hostname.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HostnameError {
    /// The name is empty.
    #[error("empty name")]
    Empty,
    /// Longer than 253 characters.
    #[error("longer than 253 characters")]
    TooLong,
    /// Two dots in a row, or a leading dot.
    #[error("empty label")]
    EmptyLabel,
    /// A label longer than 63 characters.
    #[error("label longer than 63 characters")]
    LabelTooLong,
    /// A character outside letters, digits and `-`.
    #[error("invalid character {0:?}")]
    InvalidChar(char),
    /// A label that starts or ends with `-`.
    #[error("label starts or ends with '-'")]
    HyphenAtEdge,
    /// `*` anywhere but as the whole first label, or a bare `*`.
    #[error("'*' is allowed only as the whole first label of a name with at least two more labels")]
    MisplacedWildcard,
    /// The name is an IP address, not a hostname.
    #[error("an IP address, not a hostname")]
    IpAddress,
}

/// Checks that `name` is a DNS hostname fit for a certificate SAN and
/// returns it in canonical form (lowercase, no trailing dot).
///
/// Letters, digits and `-` only (IDNs must already be in punycode, `xn--…`);
/// labels 1–63 characters, not starting or ending with `-`; at most 253
/// characters; a wildcard only as the whole first label (`*.example.com`,
/// never `*.com`, `a*.example.com` or `a.*.example.com`).
///
/// ```
/// use cert_store::hostname::{canonical_hostname, HostnameError};
/// assert_eq!(canonical_hostname("Shop.Example.COM.").unwrap(), "shop.example.com");
/// assert_eq!(canonical_hostname("*.example.com").unwrap(), "*.example.com");
/// assert_eq!(canonical_hostname("a.*.example.com"), Err(HostnameError::MisplacedWildcard));
/// assert_eq!(canonical_hostname("under_score.example.com"), Err(HostnameError::InvalidChar('_')));
/// ```
///
/// # Errors
/// The first rule the name breaks, as a [`HostnameError`].
pub fn canonical_hostname(name: &str) -> Result<String, HostnameError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(HostnameError::Empty);
    }
    if name.len() > 253 {
        return Err(HostnameError::TooLong);
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err(HostnameError::IpAddress);
    }
    let labels: Vec<&str> = name.split('.').collect();
    for (i, label) in labels.iter().enumerate() {
        if label.is_empty() {
            return Err(HostnameError::EmptyLabel);
        }
        if *label == "*" {
            if i != 0 || labels.len() < 3 {
                return Err(HostnameError::MisplacedWildcard);
            }
            continue;
        }
        if label.len() > 63 {
            return Err(HostnameError::LabelTooLong);
        }
        if let Some(c) = label.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '-')) {
            return Err(if c == '*' {
                HostnameError::MisplacedWildcard
            } else {
                HostnameError::InvalidChar(c)
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(HostnameError::HyphenAtEdge);
        }
    }
    Ok(name.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(canonical_hostname(""), Err(HostnameError::Empty));
        assert_eq!(canonical_hostname("."), Err(HostnameError::Empty));
        assert_eq!(canonical_hostname("a..b"), Err(HostnameError::EmptyLabel));
        assert_eq!(canonical_hostname(&format!("{}.com", "a".repeat(64))), Err(HostnameError::LabelTooLong));
        assert_eq!(canonical_hostname(&"a.".repeat(128)), Err(HostnameError::TooLong));
        assert_eq!(canonical_hostname("-a.com"), Err(HostnameError::HyphenAtEdge));
        assert_eq!(canonical_hostname("*.com"), Err(HostnameError::MisplacedWildcard));
        assert_eq!(canonical_hostname("*"), Err(HostnameError::MisplacedWildcard));
        assert_eq!(canonical_hostname("a*.b.com"), Err(HostnameError::MisplacedWildcard));
        assert_eq!(canonical_hostname("10.0.0.1"), Err(HostnameError::IpAddress));
        assert_eq!(canonical_hostname("xn--bcher-kva.example").as_deref(), Ok("xn--bcher-kva.example"));
        assert_eq!(canonical_hostname("bücher.example"), Err(HostnameError::InvalidChar('ü')));
    }
}
