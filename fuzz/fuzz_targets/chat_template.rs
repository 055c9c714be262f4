#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| medgen::fuzz::chat_template(data));
