//! cargo-fuzz shim for `bouncectl::protocol::fuzz_backend`; seeds in `fuzz/seeds/backend/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bouncectl::protocol::fuzz_backend(data));
