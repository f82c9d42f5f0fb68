#![no_main]
//! libFuzzer entry for `fuzz::client_hello_sni`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::client_hello_sni(data));
