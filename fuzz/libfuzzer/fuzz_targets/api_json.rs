#![no_main]
//! libFuzzer entry for `fuzz::api_json`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::api_json(data));
