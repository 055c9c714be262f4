#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medgen::fuzz::deid(data));
