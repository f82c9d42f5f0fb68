#![no_main]
//! libFuzzer entry for `fuzz::dns_answer`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz::dns_answer(data));
