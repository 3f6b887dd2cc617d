#![no_main]
//! libFuzzer entry point; the target itself is `quicpro_fuzz::packet_header`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| quicpro_fuzz::packet_header::run(data));
