//! cargo-fuzz shim for `bouncectl::protocol::fuzz_frontend`; seeds in `fuzz/seeds/frontend/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bouncectl::protocol::fuzz_frontend(data));
