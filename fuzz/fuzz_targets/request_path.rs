//! libFuzzer target `request_path`: the checks of `fpmlb_fuzz::request_path` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fpmlb_fuzz::request_path(data));
