#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pingora_fuzz::h2_h1_headers(data));
