//! Fuzz targets: each takes arbitrary bytes and must neither panic, hang nor
//! allocate without bound, whatever the bytes.
//!
//! - `tests/replay.rs` (part of `scripts/test`) replays the corpus under
//!   `fuzz/corpus/<target>/` and runs each target on a few hundred thousand
//!   deterministic mutations of it;
//! - `fuzz/libfuzzer` runs them for long with libFuzzer:
//!   `cd fuzz/libfuzzer && RUSTC_BOOTSTRAP=1 cargo fuzz run client_hello_sni -- -runs=10000000`.

/// A fuzz target: arbitrary bytes in, no panic out.
pub type Target = fn(&[u8]);

/// The targets, by name (the corpus directory and the libFuzzer target).
pub const TARGETS: &[(&str, Target)] = &[
    ("client_hello_sni", client_hello_sni),
    ("cert_bundle", cert_bundle),
    ("storage_key", storage_key),
    ("hostname", hostname),
    ("api_json", api_json),
    ("dns_answer", dns_answer),
];

/// The ClientHello peek used for SNI routing and passthrough.
pub fn client_hello_sni(data: &[u8]) {
    if let sni_proxy::ClientHelloSni::Complete(Some(name)) = sni_proxy::sni_from_client_hello(data) {
        assert!(!name.is_empty());
    }
}

/// PEM bundle import: chain and key split at the first NUL byte.
pub fn cert_bundle(data: &[u8]) {
    let (chain, key) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let (chain, key) = (String::from_utf8_lossy(chain), String::from_utf8_lossy(key));
    if let Ok(bundle) = cert_store::CertBundle::from_pem(&chain, &key, cert_store::Provenance::SelfManaged) {
        // A bundle that validated must load into the proxy.
        if let Err(e) = sni_proxy::certified_key(&bundle) {
            panic!("validated bundle not servable: {e}\n{chain}\n{key}");
        }
    }
}

/// Storage key and prefix validation.
pub fn storage_key(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(key) = cert_store::Key::new(text.as_ref()) {
        assert_eq!(key.as_str(), text);
        assert!(!key.as_str().split('/').any(|s| s.is_empty() || s == ".." || s == "."));
    }
    let _ = cert_store::Prefix::new(text.as_ref());
}

/// Hostnames (`tls_names`): what parses is normalized, and normalizing again
/// changes nothing; both validators agree; the exact-then-wildcard matcher
/// agrees with `wildcard_of` and `name_matches`, whatever the input.
pub fn hostname(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(host) = tls_names::Hostname::parse(&text) {
        let again = tls_names::Hostname::parse(host.as_str()).expect("a normalized name parses");
        assert_eq!(again, host);
        assert!(host.as_str().len() <= tls_names::MAX_NAME_LEN);
        assert_eq!(tls_names::canonical_hostname(host.as_str()).as_deref(), Ok(host.as_str()));
        assert!(host.matches(host.as_str()) || host.is_wildcard());
        if let Some(wildcard) = host.wildcard() {
            assert!(wildcard.matches(host.as_str()), "{wildcard} covers {host}");
        }
    }
    if let Ok(name) = tls_names::canonical_hostname(&text) {
        assert_eq!(tls_names::canonical_hostname(&name).as_deref(), Ok(name.as_str()));
    }
    let candidates: Vec<String> = tls_names::candidates(&text).collect();
    assert!(candidates.len() <= 2);
    let mut asked = Vec::new();
    let _ = tls_names::lookup_exact_then_wildcard(&text, |n| {
        asked.push(n.to_owned());
        None::<()>
    });
    assert_eq!(asked, candidates);
    assert_eq!(candidates.get(1), tls_names::wildcard_of(&text).as_ref());
    for pattern in &candidates {
        assert!(tls_names::name_matches(pattern, &text));
    }
}

/// The edge API's JSON bodies, then the validation a create runs.
pub fn api_json(data: &[u8]) {
    if let Ok(create) = serde_json::from_slice::<examples::edge::api::CreateConnection>(data) {
        let _ = tls_names::Hostname::parse(&create.hostname);
    }
    let _ = serde_json::from_slice::<examples::edge::api::UploadCertificate>(data);
}

/// A DNS response as dns-verify reads it (answers, CNAME chains, NXDOMAIN,
/// NODATA), for a TXT question about `_acme-challenge.shop.example.com`.
pub fn dns_answer(data: &[u8]) {
    let _ = dns_verify::interpret_response(data, "_acme-challenge.shop.example.com", "TXT");
    let _ = dns_verify::interpret_response(data, "shop.example.com", "A");
}
