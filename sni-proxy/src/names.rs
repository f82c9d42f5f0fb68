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
/// no allocation.
pub(crate) fn exact_then_wildcard<T>(server_name: &str, get: impl Fn(&str) -> Option<T>) -> Option<T> {
    let mut buf = [0u8; MAX_NAME];
    let (len, dot) = {
        let name = normalize(server_name, &mut buf)?;
        if let Some(found) = get(name) {
            return Some(found);
        }
        (name.len(), name.find('.')?)
    };
    if dot == 0 || dot + 1 >= len {
        return None;
    }
    // Written over the first label's last byte and its dot.
    buf[dot - 1] = b'*';
    get(std::str::from_utf8(&buf[dot - 1..len]).ok()?)
}
