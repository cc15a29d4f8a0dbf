//! Input generation: a small deterministic PRNG and byte-level mutations of seed inputs, with a
//! few JSON- and TOML-aware ones (numbers, nesting, strings) so text parsers get past their
//! first syntax error.

/// xorshift64*: deterministic for a given seed, so a run can be repeated (`--seed`).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n` (`n` > 0; 0 gives 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Values that break parsers more often than random bytes do.
const TOKENS: &[&[u8]] = &[
    b"0",
    b"-1",
    b"18446744073709551616",
    b"1e999",
    b"-0.0",
    b"null",
    b"true",
    b"\"\"",
    b"[]",
    b"{}",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"\"../../etc/passwd\"",
    b"\xff\xfe",
    b"\x00",
    b"9999-12-31T23:59:59Z",
    b"0000-00-00T00:00:00Z",
    b"\"sha256\"",
    b"\"keyid\"",
    b"\"version\"",
    b"\"expires\"",
    b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    b"=",
    b"[[ecus]]\n",
    b"\n[limits]\nmax_target_size = 0\n",
];

/// One to eight mutations of `seed` (and, at times, a splice with `other`), at most `max` bytes.
pub fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8], max: usize) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        let len = b.len();
        match rng.below(11) {
            0 if len > 0 => {
                let i = rng.below(len);
                b[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                b[i] = rng.next_u64() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                b.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                b.drain(i..i + n);
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                let chunk = b[i..i + n].to_vec();
                let at = rng.below(len + 1);
                b.splice(at..at, chunk);
            }
            5 if len > 0 => b.truncate(rng.below(len)),
            6 if !other.is_empty() => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                b.truncate(cut);
                b.extend_from_slice(&other[from..]);
            }
            7 | 8 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let i = rng.below(len + 1);
                if rng.chance(50) {
                    // Replace the run of digits or letters at i, as a value would be.
                    let end = (i..len)
                        .find(|&j| !b[j].is_ascii_alphanumeric())
                        .unwrap_or(len);
                    b.splice(i..end, t.iter().copied());
                } else {
                    b.splice(i..i, t.iter().copied());
                }
            }
            9 if len > 0 => {
                // An interesting integer in place, little or big endian.
                let i = rng.below(len);
                let v: u32 = [0, 1, 0x7f, 0x80, 0xff, 0xffff, u32::MAX][rng.below(7)];
                let bytes = if rng.chance(50) {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                };
                for (k, x) in bytes.iter().enumerate().take(len - i) {
                    b[i + k] = *x;
                }
            }
            _ => {}
        }
        b.truncate(max);
    }
    b
}
