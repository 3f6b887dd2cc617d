#![no_main]
//! libFuzzer entry point; the target itself is `quicpro_fuzz::h3_frames`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| quicpro_fuzz::h3_frames::run(data));
