//! Fuzz target: `shoal_connectors::fuzz::json_lines`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_connectors::fuzz::json_lines(data));
