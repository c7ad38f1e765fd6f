//! libFuzzer target `save_path`: the checks of `fpmlb_fuzz::save_path` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fpmlb_fuzz::save_path(data));
