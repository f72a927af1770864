//! cargo-fuzz shim for `bouncectl::protocol::fuzz_frame_decoder`; seeds in `fuzz/seeds/frame_decoder/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bouncectl::protocol::fuzz_frame_decoder(data));
