//! Fuzz target: `shoal_log::fuzz::segment`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_log::fuzz::segment(data));
