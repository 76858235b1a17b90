//! Fuzz target: `shoal_connectors::fuzz::pipeline_yaml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| shoal_connectors::fuzz::pipeline_yaml(data));
