#![no_main]
//! libFuzzer entry point; the target itself is `quicpro_fuzz::header_protection`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| quicpro_fuzz::header_protection::run(data));
