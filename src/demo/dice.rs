//! Drawing from one customer's ChaCha8 stream.

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

/// Draws from one customer's stream. Only `next_u64` of the ChaCha8 stream is
/// used (no distribution of `rand`), so the data depends on the stream alone.
pub(super) struct Dice(ChaCha8Rng);

impl Dice {
    /// Stream `stream` of the ChaCha8 generator keyed by `key`.
    pub(super) fn new(key: [u8; 32], stream: u64) -> Self {
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(stream);
        Dice(rng)
    }

    /// Uniform in `0..n` (n > 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.0.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `lo..=hi`.
    pub(super) fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    pub(super) fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    pub(super) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    pub(super) fn weighted_index(&mut self, weights: impl Iterator<Item = u32> + Clone) -> usize {
        let total: u64 = weights.clone().map(u64::from).sum();
        let mut x = self.below(total.max(1));
        let mut last = 0;
        for (i, w) in weights.enumerate() {
            last = i;
            if x < u64::from(w) {
                return i;
            }
            x -= u64::from(w);
        }
        last
    }

    pub(super) fn weighted<T: Copy>(&mut self, items: &[(T, u32)]) -> T {
        items[self.weighted_index(items.iter().map(|(_, w)| *w))].0
    }
}
