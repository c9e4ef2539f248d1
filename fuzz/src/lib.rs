//! Shared pieces of the fuzz targets: the strict reference parser used by the
//! differential check, and small helpers for readable failure messages.

pub mod reference;

/// Bytes as an escaped string (`\r`, `\n`, `\xNN`), for assertion messages
/// that can be pasted into a Rust byte-string literal.
pub fn escaped(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// A small deterministic generator seeded from the input, so a crash
/// reproduces from the artifact alone.
pub struct XorShift(u64);

impl XorShift {
    pub fn from_bytes(data: &[u8]) -> XorShift {
        // FNV-1a over the input; never zero.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in data {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        XorShift(h | 1)
    }

    pub fn with_seed(seed: u64) -> XorShift {
        XorShift(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `1..=max` (max >= 1).
    pub fn step(&mut self, max: usize) -> usize {
        1 + (self.next() % max as u64) as usize
    }
}
