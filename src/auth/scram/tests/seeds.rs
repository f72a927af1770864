//! Replays every committed seed of `fuzz/seeds/scram/` through [`fuzz_entry`], so CI runs them
//! on stable without cargo-fuzz.

use super::*;

#[test]
fn fuzz_seeds_replay_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/scram");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        fuzz_entry(&std::fs::read(&path).unwrap());
        count += 1;
    }
    assert!(count >= 3, "expected seeds in {}", dir.display());
}
