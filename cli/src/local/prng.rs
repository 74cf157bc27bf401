//! The seeded random draws of the simulated workers: ChaCha8 streams (`rand_chacha`) read through
//! `rand`. Every decision is drawn from a stream keyed by (seed, what it is for), so a run's
//! outcome depends on `--seed` only, never on the order in which concurrent jobs happen to
//! finish; ChaCha8's output for a seed is the same on every platform and `rand` keeps its draws
//! the same within a release series (pinned to 0.9).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sha2::{Digest, Sha256};

/// The stream for `key` under `seed`: ChaCha8 seeded with sha256(seed, key).
pub fn stream(seed: u64, key: &str) -> ChaCha8Rng {
    let digest = Sha256::new().chain_update(seed.to_le_bytes()).chain_update(key.as_bytes()).finalize();
    ChaCha8Rng::from_seed(digest.into())
}

/// True with probability `p` (never for `p <= 0`, always for `p >= 1`).
pub fn chance(rng: &mut impl Rng, p: f64) -> bool {
    rng.random::<f64>() < p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| stream(7, "t1/0").random()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(stream(7, "t1/0").random::<u64>(), stream(7, "t1/1").random::<u64>());
        assert_ne!(stream(7, "t1/0").random::<u64>(), stream(8, "t1/0").random::<u64>());
    }

    #[test]
    fn chance_tracks_p() {
        let mut rng = stream(42, "chance");
        let hits = (0..10_000).filter(|_| chance(&mut rng, 0.2)).count();
        assert!((1_700..2_300).contains(&hits), "{hits}");
        assert!(!chance(&mut rng, 0.0));
        assert!(chance(&mut rng, 1.0));
        assert!(!chance(&mut rng, -1.0) && chance(&mut rng, 2.0));
    }
}
