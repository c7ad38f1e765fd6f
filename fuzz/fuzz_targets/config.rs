//! libFuzzer target `config`: the checks of `fpmlb_fuzz::config` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fpmlb_fuzz::config(data));
