//! A tiny seeded PRNG (splitmix64) for the simulated workers. Every decision is drawn from a
//! stream keyed by (seed, what it is for), so a run's outcome depends on `--seed` only, never
//! on the order in which concurrent jobs happen to finish.

/// splitmix64: small, fast, and good enough to simulate coin flips and costs.
#[derive(Debug, Clone)]
pub struct Prng(u64);

impl Prng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The stream for `key` under `seed` (FNV-1a of the key, mixed with the seed).
    pub fn keyed(seed: u64, key: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let mut p = Self(seed ^ h.rotate_left(17));
        p.next_u64();
        p
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in [lo, hi] (`lo <= hi`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// Lower-case hex, `len` digits.
    pub fn hex(&mut self, len: usize) -> String {
        let mut s = String::with_capacity(len + 16);
        while s.len() < len {
            s.push_str(&format!("{:016x}", self.next_u64()));
        }
        s.truncate(len);
        s
    }

    /// A UUID-shaped id, like a Batch job id.
    pub fn uuid(&mut self) -> String {
        let h = self.hex(32);
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Prng::keyed(7, "t1/0").next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Prng::keyed(7, "t1/0").next_u64(), Prng::keyed(7, "t1/1").next_u64());
        assert_ne!(Prng::keyed(7, "t1/0").next_u64(), Prng::keyed(8, "t1/0").next_u64());
    }

    #[test]
    fn draws_stay_in_range_and_chance_tracks_p() {
        let mut p = Prng::new(42);
        for _ in 0..1000 {
            let r = p.range(3, 9);
            assert!((3..=9).contains(&r));
            let u = p.unit();
            assert!((0.0..1.0).contains(&u));
        }
        let hits = (0..10_000).filter(|_| p.chance(0.2)).count();
        assert!((1_700..2_300).contains(&hits), "{hits}");
        assert!(!Prng::new(1).chance(0.0));
        assert!(Prng::new(1).chance(1.0));
        let id = p.uuid();
        assert_eq!(id.len(), 36);
        assert_eq!(id.matches('-').count(), 4);
    }
}
