#![no_main]
//! libFuzzer entry for `fuzz::hostname`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::hostname(data));
