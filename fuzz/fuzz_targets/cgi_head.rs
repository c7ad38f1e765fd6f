//! libFuzzer target `cgi_head`: the checks of `fpmlb_fuzz::cgi_head` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fpmlb_fuzz::cgi_head(data));
