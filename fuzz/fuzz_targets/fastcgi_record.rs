//! libFuzzer target `fastcgi_record`: the checks of `fpmlb_fuzz::fastcgi_record` (fuzz/src/lib.rs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fpmlb_fuzz::fastcgi_record(data));
