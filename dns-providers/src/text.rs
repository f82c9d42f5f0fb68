//! Record values in zone-file presentation format (PowerDNS and Route 53
//! take and return TXT data as quoted character-strings) and names.

use dns_verify::{DnsRecord, ProviderError, RecordData};

/// A TXT value as quoted character-strings of at most 255 bytes each:
/// `"part one" "part two"`, with `"` and `\` escaped.
pub(crate) fn quote_txt(value: &str) -> String {
    dns_verify::txt_strings(value)
        .iter()
        .map(|s| {
            let mut out = String::with_capacity(s.len() + 2);
            out.push('"');
            for ch in s.chars() {
                if ch == '"' || ch == '\\' {
                    out.push('\\');
                }
                out.push(ch);
            }
            out.push('"');
            out
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The value of presentation-format TXT data: quoted strings joined, escapes
/// (`\"`, `\\`, `\DDD`) undone; unquoted text is taken as it is.
pub(crate) fn unquote_txt(data: &str) -> String {
    let data = data.trim();
    if !data.starts_with('"') {
        return data.to_owned();
    }
    let mut out = Vec::new();
    let mut chars = data.bytes().peekable();
    let mut inside = false;
    while let Some(b) = chars.next() {
        match (inside, b) {
            (false, b'"') => inside = true,
            (false, _) => {}
            (true, b'"') => inside = false,
            (true, b'\\') => {
                let digits: Vec<u8> = (0..3).map_while(|_| chars.next_if(u8::is_ascii_digit)).collect();
                if digits.len() == 3 {
                    let n = digits.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
                    out.push(u8::try_from(n).unwrap_or(b'?'));
                } else if let Some(next) = chars.next() {
                    out.extend_from_slice(&digits);
                    out.push(next);
                }
            }
            (true, b) => out.push(b),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A lowercase name without its trailing dot.
pub(crate) fn bare(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A lowercase name with its trailing dot.
pub(crate) fn dotted(name: &str) -> String {
    format!("{}.", bare(name))
}

/// `name` relative to `zone` (`@` for the apex), or an
/// [`InvalidName`](ProviderError::InvalidName) error when it is outside.
pub(crate) fn relative(name: &str, zone: &str) -> Result<String, ProviderError> {
    let (name, zone) = (bare(name), bare(zone));
    if name == zone {
        return Ok("@".to_owned());
    }
    name.strip_suffix(&format!(".{zone}"))
        .map(str::to_owned)
        .ok_or_else(|| ProviderError::invalid_name(format!("{name} is outside the zone {zone}")))
}

/// The record data from a type name and its value in the provider's API
/// (`txt` tells how TXT data is written); `None` for types we do not handle.
pub(crate) fn data_of(rtype: &str, value: &str, quoted_txt: bool) -> Option<RecordData> {
    Some(match rtype.to_ascii_uppercase().as_str() {
        "TXT" if quoted_txt => RecordData::Txt(unquote_txt(value)),
        "TXT" => RecordData::Txt(value.to_owned()),
        "CNAME" => RecordData::Cname(bare(value)),
        "A" => RecordData::A(value.trim().parse().ok()?),
        "AAAA" => RecordData::Aaaa(value.trim().parse().ok()?),
        _ => return None,
    })
}

/// The value in the provider's API (`quoted_txt`: presentation format;
/// `dotted_cname`: absolute target with its dot).
pub(crate) fn value_of(data: &RecordData, quoted_txt: bool, dotted_cname: bool) -> String {
    match data {
        RecordData::Txt(v) if quoted_txt => quote_txt(v),
        RecordData::Cname(t) if dotted_cname => dotted(t),
        other => other.value(),
    }
}

/// Whether `records` hold `record` (same name, same data).
pub(crate) fn holds(records: &[DnsRecord], record: &DnsRecord) -> bool {
    records.iter().any(|r| bare(&r.name) == bare(&record.name) && r.data == record.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn txt_quoting_round_trips_long_and_escaped_values() {
        let long: String = "x".repeat(300);
        assert_eq!(quote_txt(&long).matches('"').count(), 4);
        assert_eq!(unquote_txt(&quote_txt(&long)), long);
        assert_eq!(unquote_txt(&quote_txt(r#"a "b" \c"#)), r#"a "b" \c"#);
        assert_eq!(unquote_txt("\"a\\032b\""), "a b");
        assert_eq!(unquote_txt("plain"), "plain");
    }

    #[test]
    fn relative_names() {
        assert_eq!(relative("_x.shop.example.com.", "example.com").unwrap(), "_x.shop");
        assert_eq!(relative("example.com", "example.com.").unwrap(), "@");
        assert!(relative("other.net", "example.com").is_err());
        assert!(relative("badexample.com", "example.com").is_err());
    }
}
