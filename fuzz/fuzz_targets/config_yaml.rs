#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| pingora_fuzz::config_yaml(data));
