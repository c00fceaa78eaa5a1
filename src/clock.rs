//! The time and the randomness that triggers, the scheduler and the delivery
//! worker act on, handed in from the edge: the system's in production
//! ([`System`]), one that stands still until moved, with a seeded random
//! source, in tests ([`Manual`]).

use chrono::{DateTime, TimeDelta, Utc};
use rand::{RngExt as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use std::sync::{Mutex, PoisonError};

pub trait Clock: Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
    /// A random number (the suffix that tells apart manual runs started in
    /// the same microsecond).
    fn random(&self) -> u16;

    /// A random fraction in [0, 1) from the same source (the spread of a
    /// delivery's retry delay).
    fn fraction(&self) -> f64 {
        f64::from(self.random()) / 65_536.0
    }
}

/// The system's wall clock and random source.
pub struct System;

impl Clock for System {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn random(&self) -> u16 {
        rand::random()
    }
}

/// A clock that stands still until it is set or advanced, and a seeded random
/// source: the same steps give the same instants and the same numbers.
pub struct Manual(Mutex<(DateTime<Utc>, ChaCha8Rng)>);

impl Manual {
    pub fn new(at: DateTime<Utc>, seed: u64) -> Self {
        Self(Mutex::new((at, ChaCha8Rng::seed_from_u64(seed))))
    }

    fn with<T>(&self, f: impl FnOnce(&mut (DateTime<Utc>, ChaCha8Rng)) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        self.with(|s| s.0 = at);
    }

    pub fn advance(&self, by: TimeDelta) {
        self.with(|s| s.0 += by);
    }
}

impl Clock for Manual {
    fn now(&self) -> DateTime<Utc> {
        self.with(|s| s.0)
    }

    fn random(&self) -> u16 {
        self.with(|s| s.1.random())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_repeats_its_numbers() {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let (a, b) = (Manual::new(at, 7), Manual::new(at, 7));
        assert_eq!(a.now(), at);
        a.advance(TimeDelta::seconds(90));
        assert_eq!(a.now(), at + TimeDelta::seconds(90));
        a.set(at);
        assert_eq!(a.now(), at);
        let drawn: Vec<u16> = (0..4).map(|_| a.random()).collect();
        assert_eq!(drawn, (0..4).map(|_| b.random()).collect::<Vec<_>>());
        let other = Manual::new(at, 8);
        assert_ne!(drawn, (0..4).map(|_| other.random()).collect::<Vec<_>>());
    }
}
