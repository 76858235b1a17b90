//! Fuzz target: `shoal_connectors::fuzz::csv_lines`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_connectors::fuzz::csv_lines(data));
