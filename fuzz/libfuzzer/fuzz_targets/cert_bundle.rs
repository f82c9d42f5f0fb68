#![no_main]
//! libFuzzer entry for `fuzz::cert_bundle`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::cert_bundle(data));
