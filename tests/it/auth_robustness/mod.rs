//! SCRAM and authentication under stress (issue 10, item 2): thousands of logins with random
//! passwords and nonces, malformed SCRAM from clients, and the timing of failed logins.

mod logins;
mod malformed;
mod timing;

/// A small deterministic generator (xorshift64*), seeded from the OS and printed, so a failing
/// run can be replayed with `BOUNCECTL_TEST_SEED`.
pub struct Rng(u64);

impl Rng {
    /// Seeded from `BOUNCECTL_TEST_SEED` or the OS; prints the seed.
    pub fn new(label: &str) -> Rng {
        let seed = std::env::var("BOUNCECTL_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                let mut b = [0u8; 8];
                getrandom::getrandom(&mut b).unwrap();
                u64::from_le_bytes(b)
            });
        eprintln!("{label}: BOUNCECTL_TEST_SEED={seed}");
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + usize::try_from(self.next() % (hi - lo + 1) as u64).unwrap()
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.next() % n == 0
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// A character from `set`.
    fn pick(&mut self, set: &[u8]) -> u8 {
        set[self.range(0, set.len() - 1)]
    }

    /// A password of printable ASCII: quotes, commas, `=`, backslashes and spaces included.
    pub fn password(&mut self) -> String {
        let len = self.range(1, 40);
        (0..len)
            .map(|_| char::from(u8::try_from(self.range(0x20, 0x7e)).unwrap()))
            .collect()
    }

    /// A SCRAM nonce (printable ASCII but `,`) salted with the attribute-like pieces that trip
    /// parsers which split on `=` or look for `r=` anywhere: `r=`, `p=`, `==`, `s=`, `i=`...
    pub fn tricky_nonce(&mut self) -> String {
        const PIECES: [&str; 9] = ["r=", "p=", "s=", "i=", "v=", "e=", "==", "=", "c=biws"];
        let printable: Vec<u8> = (0x21..=0x7e_u8).filter(|b| *b != b',').collect();
        let mut nonce = String::new();
        let parts = self.range(1, 8);
        for _ in 0..parts {
            if self.one_in(2) {
                nonce.push_str(PIECES[self.range(0, PIECES.len() - 1)]);
            } else {
                for _ in 0..self.range(1, 12) {
                    nonce.push(char::from(self.pick(&printable)));
                }
            }
        }
        nonce
    }
}
