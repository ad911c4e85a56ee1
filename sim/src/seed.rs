//! Stable episode seeds and the host-side random sampler.
//!
//! # The episode seed
//!
//! `episode_seed(suite_seed, family, split, index, attempt)` is the first 8 bytes,
//! little-endian, of
//!
//! ```text
//! SHA-256( "physworld-episode-seed-v1" 0x00
//!          suite_seed as u64 LE
//!          family as UTF-8 0x00
//!          split name as UTF-8 0x00
//!          index as u64 LE
//!          attempt as u32 LE )
//! ```
//!
//! It depends on nothing else (not on thread count, order or time), so a rejected episode
//! retried with `attempt + 1` never shifts another episode, and any worker can compute any
//! episode's seed. The version tag changes if this formula ever does.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};

use crate::split::Split;

/// The documented stable hash described in the module docs.
pub fn episode_seed(suite_seed: u64, family: &str, split: Split, index: u64, attempt: u32) -> u64 {
    let mut h = Sha256::new();
    h.update(b"physworld-episode-seed-v1\0");
    h.update(suite_seed.to_le_bytes());
    h.update(family.as_bytes());
    h.update([0]);
    h.update(split.as_str().as_bytes());
    h.update([0]);
    h.update(index.to_le_bytes());
    h.update(attempt.to_le_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

/// A seeded ChaCha8 sampler with value-stable draws (built on `next_u32`/`next_u64` only,
/// so results do not depend on `rand`'s distribution code).
#[derive(Debug, Clone)]
pub struct Sampler {
    rng: ChaCha8Rng,
}

impl Sampler {
    /// A sampler seeded from `seed` (ChaCha8 via `seed_from_u64`).
    pub fn new(seed: u64) -> Self {
        Sampler { rng: ChaCha8Rng::seed_from_u64(seed) }
    }

    /// Uniform in `[0, 1)` with 24 bits.
    pub fn unit(&mut self) -> f32 {
        (self.rng.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0)
    }

    /// Uniform in `[lo, hi)` (returns `lo` when `hi <= lo`).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = self.unit();
        if hi > lo { lo + (hi - lo) * u } else { lo }
    }

    /// Uniform in a [`Range`](crate::families::Range).
    pub fn range(&mut self, r: crate::families::Range) -> f32 {
        self.uniform(r.min, r.max)
    }

    /// Uniform integer in `lo..=hi`.
    pub fn int(&mut self, lo: u32, hi: u32) -> u32 {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo) as u64 + 1;
        lo + (self.rng.next_u64() % span) as u32
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f32) -> bool {
        self.unit() < p
    }

    /// A uniformly chosen element.
    pub fn choose<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.int(0, items.len() as u32 - 1) as usize]
    }

    /// A fresh 64-bit value (for sub-seeds).
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }
}
