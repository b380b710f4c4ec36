#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pingora_fuzz::chunked_decoder(data));
