//! Fuzz target: arbitrary bytes as a userlist.txt (parse, then upsert every entry).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| bouncectl::config::userlist::fuzz_entry(data));
