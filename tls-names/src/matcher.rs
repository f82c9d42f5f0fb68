//! The one matcher: the exact name first, then the single-level wildcard.
//!
//! `*.example.com` matches `a.example.com`, never `a.b.example.com` nor
//! `example.com`; a wildcard needs at least two labels after `*`, so no name
//! is ever looked up as `*.com`. Names are compared in canonical form:
//! lowercase ASCII without a trailing dot.

use crate::MAX_NAME_LEN;

/// Lowercases `name` (without one trailing dot) into `buf`; `None` when it
/// is empty, ends with a dot still, is longer than [`MAX_NAME_LEN`] or is not
/// ASCII.
fn normalize<'b>(name: &str, buf: &'b mut [u8; MAX_NAME_LEN]) -> Option<&'b str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_NAME_LEN || !name.is_ascii() || name.ends_with('.') {
        return None;
    }
    let out = &mut buf[..bytes.len()];
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = b.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}

/// Where the first label of a canonical `name` ends, when a single-level
/// wildcard can cover it: a first label that is not `*` and is not empty, and
/// a parent of at least two labels.
fn wildcard_split(name: &str) -> Option<usize> {
    let dot = name.find('.')?;
    let (first, parent) = (&name[..dot], &name[dot + 1..]);
    let parent_ok = parent.split('.').count() >= 2 && !parent.split('.').any(str::is_empty);
    (dot > 0 && first != "*" && parent_ok).then_some(dot)
}

/// The single-level wildcard that would cover `name`: `a.example.com` →
/// `*.example.com`. `None` for a name with fewer than three labels, for a
/// wildcard, and for a name that is empty, too long or not ASCII. The name is
/// lowercased and one trailing dot dropped first; it is not otherwise
/// validated.
///
/// ```
/// use tls_names::wildcard_of;
/// assert_eq!(wildcard_of("Shop.Example.com.").as_deref(), Some("*.example.com"));
/// assert_eq!(wildcard_of("a.b.example.com").as_deref(), Some("*.b.example.com"));
/// assert_eq!(wildcard_of("example.com"), None);
/// assert_eq!(wildcard_of("*.example.com"), None);
/// ```
#[must_use]
pub fn wildcard_of(name: &str) -> Option<String> {
    let mut buf = [0u8; MAX_NAME_LEN];
    let name = normalize(name, &mut buf)?;
    let dot = wildcard_split(name)?;
    Some(format!("*{}", &name[dot..]))
}

/// Looks `server_name` up with `get`: first the canonical name itself, then
/// the single-level wildcard over it ([`wildcard_of`]). Returns the first
/// hit. Allocates nothing: the candidates are built in a stack buffer, so this
/// fits the TLS handshake path. A name that is empty, longer than 253 bytes or
/// not ASCII is never looked up.
///
/// ```
/// use std::collections::HashMap;
/// use tls_names::lookup_exact_then_wildcard;
/// let table = HashMap::from([("*.example.com", "wild"), ("shop.example.com", "shop")]);
/// let get = |name: &str| table.get(name).copied();
/// assert_eq!(lookup_exact_then_wildcard("SHOP.example.com.", get), Some("shop"));
/// assert_eq!(lookup_exact_then_wildcard("blog.example.com", get), Some("wild"));
/// assert_eq!(lookup_exact_then_wildcard("a.blog.example.com", get), None);
/// assert_eq!(lookup_exact_then_wildcard("example.com", get), None);
/// ```
pub fn lookup_exact_then_wildcard<T>(server_name: &str, mut get: impl FnMut(&str) -> Option<T>) -> Option<T> {
    let mut buf = [0u8; MAX_NAME_LEN];
    let (len, dot) = {
        let name = normalize(server_name, &mut buf)?;
        if let Some(found) = get(name) {
            return Some(found);
        }
        (name.len(), wildcard_split(name)?)
    };
    // Written over the first label's last byte: `shop.example.com` → `*.example.com`.
    buf[dot - 1] = b'*';
    get(std::str::from_utf8(&buf[dot - 1..len]).ok()?)
}

/// The names to look `server_name` up under, in order: the canonical name,
/// then the single-level wildcard over it. For lookups that cannot take a
/// synchronous closure (a cache in front of an async store); otherwise use
/// [`lookup_exact_then_wildcard`], which does not allocate. Empty for a name
/// that is empty, longer than 253 bytes or not ASCII.
///
/// ```
/// let names: Vec<String> = tls_names::candidates("Shop.Example.com.").collect();
/// assert_eq!(names, ["shop.example.com", "*.example.com"]);
/// assert_eq!(tls_names::candidates("example.com").collect::<Vec<_>>(), ["example.com"]);
/// assert_eq!(tls_names::candidates("bücher.example").count(), 0);
/// ```
#[must_use]
pub fn candidates(server_name: &str) -> Candidates {
    let mut buf = [0u8; MAX_NAME_LEN];
    let Some(name) = normalize(server_name, &mut buf) else {
        return Candidates { exact: None, wildcard: None };
    };
    let wildcard = wildcard_split(name).map(|dot| format!("*{}", &name[dot..]));
    Candidates { exact: Some(name.to_owned()), wildcard }
}

/// The iterator of [`candidates`]: the exact name, then its wildcard.
///
/// ```
/// let mut names = tls_names::candidates("a.example.com");
/// assert_eq!(names.next().as_deref(), Some("a.example.com"));
/// assert_eq!(names.next().as_deref(), Some("*.example.com"));
/// assert_eq!(names.next(), None);
/// ```
#[derive(Debug, Clone)]
pub struct Candidates {
    exact: Option<String>,
    wildcard: Option<String>,
}

impl Iterator for Candidates {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        self.exact.take().or_else(|| self.wildcard.take())
    }
}

/// Whether the certificate name `pattern` covers the server name `name`: the
/// same name, or `pattern` is `*.<parent>` and `name` is one label followed by
/// `<parent>` (`*.example.com` covers `a.example.com`, not `a.b.example.com`
/// nor `example.com`). Both are compared in canonical form (case and one
/// trailing dot ignored).
///
/// ```
/// use tls_names::name_matches;
/// assert!(name_matches("shop.example.com", "Shop.Example.com."));
/// assert!(name_matches("*.example.com", "shop.example.com"));
/// assert!(!name_matches("*.example.com", "a.shop.example.com"));
/// assert!(!name_matches("*.example.com", "example.com"));
/// assert!(!name_matches("shop.example.com", "*.example.com"));
/// ```
#[must_use]
pub fn name_matches(pattern: &str, name: &str) -> bool {
    let (mut pattern_buf, mut name_buf) = ([0u8; MAX_NAME_LEN], [0u8; MAX_NAME_LEN]);
    let (Some(pattern), Some(name)) = (normalize(pattern, &mut pattern_buf), normalize(name, &mut name_buf))
    else {
        return false;
    };
    lookup_exact_then_wildcard(name, |candidate| (candidate == pattern).then_some(())).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Moved from sni-proxy's `names` module (its matcher is this one now).
    #[test]
    fn exact_first_then_one_level_wildcard() {
        let table = ["shop.example.com", "*.example.com", "*.pass.example"];
        let get = |n: &str| table.iter().position(|t| *t == n);
        assert_eq!(lookup_exact_then_wildcard("shop.example.com", get), Some(0));
        assert_eq!(lookup_exact_then_wildcard("SHOP.EXAMPLE.COM.", get), Some(0));
        assert_eq!(lookup_exact_then_wildcard("blog.example.com", get), Some(1));
        assert_eq!(lookup_exact_then_wildcard("a.pass.example", get), Some(2));
        assert_eq!(lookup_exact_then_wildcard("a.blog.example.com", get), None);
        assert_eq!(lookup_exact_then_wildcard("example.com", get), None);
        assert_eq!(lookup_exact_then_wildcard("", get), None);
        assert_eq!(lookup_exact_then_wildcard(".example.com", get), None);
        assert_eq!(lookup_exact_then_wildcard(&"a".repeat(254), get), None);
        assert_eq!(lookup_exact_then_wildcard("bücher.example.com", get), None);
        assert_eq!(lookup_exact_then_wildcard("shop.example.com..", get), None);
    }

    #[test]
    fn never_asks_for_a_wildcard_over_one_label() {
        let mut asked = Vec::new();
        let _ = lookup_exact_then_wildcard("example.com", |n| {
            asked.push(n.to_owned());
            None::<()>
        });
        assert_eq!(asked, ["example.com"]);
        assert_eq!(wildcard_of("a..com"), None);
        assert_eq!(wildcard_of("a.com."), None);
    }

    #[test]
    fn the_three_forms_agree() {
        for name in ["shop.example.com", "a.b.example.com", "example.com", "x.pass.example", "*.example.com"]
        {
            let via_candidates: Vec<String> = candidates(name).collect();
            let mut via_lookup = Vec::new();
            let _ = lookup_exact_then_wildcard(name, |n| {
                via_lookup.push(n.to_owned());
                None::<()>
            });
            assert_eq!(via_candidates, via_lookup, "{name}");
            assert_eq!(via_candidates.get(1), wildcard_of(name).as_ref(), "{name}");
            for pattern in &via_candidates {
                assert!(name_matches(pattern, name), "{pattern} covers {name}");
            }
        }
    }
}
