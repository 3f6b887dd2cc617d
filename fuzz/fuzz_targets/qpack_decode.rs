#![no_main]
//! libFuzzer entry point; the target itself is `quicpro_fuzz::qpack_decode`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| quicpro_fuzz::qpack_decode::run(data));
