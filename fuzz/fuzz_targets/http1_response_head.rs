#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pingora_fuzz::http1_response_head(data));
