#![no_main]
//! libFuzzer entry point; the target itself is `quicpro_fuzz::client_after_handshake`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| quicpro_fuzz::client_after_handshake::run(data));
