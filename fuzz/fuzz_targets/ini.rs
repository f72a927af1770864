//! Fuzz target: arbitrary bytes as a whole pgbouncer.ini (tokenizer, sections, checks).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bouncectl::config::ini::fuzz_entry(data));
