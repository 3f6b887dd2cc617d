#![no_main]
//! libFuzzer entry point; the target itself is `quicpro_fuzz::handshake_hostile`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| quicpro_fuzz::handshake_hostile::run(data));
