#![no_main]
//! libFuzzer entry point; the target itself is `quicpro_fuzz::transport_params`.
libfuzzer_sys::fuzz_target!(|data: &[u8]| quicpro_fuzz::transport_params::run(data));
