#![no_main]
//! libFuzzer entry point; the target itself is `quicpro_fuzz::server_endpoint`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| quicpro_fuzz::server_endpoint::run(data));
