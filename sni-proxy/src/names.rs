//! Server names as both tables match them: lowercase ASCII without a
//! trailing dot, exact first, then the single-level wildcard.

/// The longest DNS name.
pub(crate) const MAX_NAME: usize = 253;

/// Lowercases `name` (without a trailing dot) into `buf`; `None` when it is
/// too long or not ASCII.
pub(crate) fn normalize<'b>(name: &str, buf: &'b mut [u8; MAX_NAME]) -> Option<&'b str> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let bytes = name.as_bytes();
    if bytes.len() > MAX_NAME || !name.is_ascii() {
        return None;
    }
    let out = &mut buf[..bytes.len()];
    for (o, b) in out.iter_mut().zip(bytes) {
        *o = b.to_ascii_lowercase();
    }
    std::str::from_utf8(out).ok()
}

/// `get` of the normalized `server_name`, else of `*.<parent>`
/// (`a.example.com` → `*.example.com`, never for `example.com` itself);
/// no allocation. The workspace's one matcher, from `tls-names`.
pub(crate) use cert_store::hostname::lookup_exact_then_wildcard as exact_then_wildcard;
