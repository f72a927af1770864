//! cargo-fuzz shim for `bouncectl::admin::fuzz_entry`; seeds in `fuzz/seeds/admin_command/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bouncectl::admin::fuzz_entry(data));
