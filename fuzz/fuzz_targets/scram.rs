//! SCRAM client-first/client-final/server-first/server-final and stored-secret parsers.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| bouncectl::auth::scram::fuzz_entry(data));
