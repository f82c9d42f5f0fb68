#![no_main]
//! libFuzzer entry for `fuzz::storage_key`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::storage_key(data));
