#![no_main]
//! libFuzzer entry point; the target itself is `quicpro_fuzz::pair_sequence`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| quicpro_fuzz::pair_sequence::run(data));
