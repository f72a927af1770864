//! Random bytes for salts, nonces and cancel keys: the kernel's, fetched a block at a time.
//!
//! Every login needs a few random bytes (an md5 salt, a cancel key). A `getrandom` call for each
//! is a system call for each; a block per thread serves dozens of logins with one. Every byte
//! still comes from the kernel's CSPRNG, is handed out once, and is wiped from the block as it
//! goes, so the block never holds a value already given to a client.

use std::cell::RefCell;

/// Bytes fetched per `getrandom` call.
const BLOCK: usize = 256;

/// Requests larger than this go to the kernel directly: they are rare (the pooler's own
/// startup), and would use up a block in a few calls.
const LARGEST_BUFFERED: usize = 32;

/// One thread's unused random bytes: `bytes[used..]`.
struct Block {
    bytes: [u8; BLOCK],
    used: usize,
}

thread_local! {
    static BLOCK_OF_THIS_THREAD: RefCell<Block> = const {
        RefCell::new(Block { bytes: [0; BLOCK], used: BLOCK })
    };
}

/// Fills `out` with random bytes from the kernel's CSPRNG.
pub fn fill(out: &mut [u8]) -> Result<(), getrandom::Error> {
    if out.len() > LARGEST_BUFFERED {
        return getrandom::getrandom(out);
    }
    BLOCK_OF_THIS_THREAD.with_borrow_mut(|block| {
        if BLOCK - block.used < out.len() {
            getrandom::getrandom(&mut block.bytes)?;
            block.used = 0;
        }
        let (start, end) = (block.used, block.used + out.len());
        let Some(taken) = block.bytes.get_mut(start..end) else {
            return getrandom::getrandom(out);
        };
        out.copy_from_slice(taken);
        taken.fill(0);
        block.used = end;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn draws_across_many_blocks_never_repeat() {
        // 4,000 draws of 8 bytes use 125 blocks; a repeat among random 64-bit values would
        // mean bytes handed out twice.
        let mut seen = HashSet::new();
        for _ in 0..4000 {
            let mut key = [0u8; 8];
            fill(&mut key).unwrap();
            assert!(seen.insert(key), "a cancel-key-sized draw repeated");
        }
    }

    #[test]
    fn odd_sizes_straddle_block_ends_and_come_back_full() {
        let mut all_zero = 0;
        for len in (1..=LARGEST_BUFFERED).cycle().take(500) {
            let mut out = vec![0u8; len];
            fill(&mut out).unwrap();
            all_zero += usize::from(len >= 8 && out.iter().all(|&b| b == 0));
        }
        // Zeros would show a draw that copied from the already-wiped part of a block.
        assert_eq!(all_zero, 0);
    }

    #[test]
    fn handed_out_bytes_are_wiped_from_the_block() {
        let mut salt = [0u8; 4];
        fill(&mut salt).unwrap();
        BLOCK_OF_THIS_THREAD.with_borrow(|block| {
            assert!(block.used >= 4);
            assert!(block.bytes[..block.used].iter().all(|&b| b == 0));
        });
    }

    #[test]
    fn large_requests_bypass_the_block() {
        let before = BLOCK_OF_THIS_THREAD.with_borrow(|b| b.used);
        let mut big = [0u8; 64];
        fill(&mut big).unwrap();
        assert_ne!(big, [0u8; 64]);
        assert_eq!(BLOCK_OF_THIS_THREAD.with_borrow(|b| b.used), before);
    }
}
