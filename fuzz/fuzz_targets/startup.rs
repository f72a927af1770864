//! cargo-fuzz shim for `bouncectl::protocol::fuzz_startup`; seeds in `fuzz/seeds/startup/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bouncectl::protocol::fuzz_startup(data));
