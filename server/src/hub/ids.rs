//! Where the hub's ids and secrets come from: a generator handed in from outside. The
//! server seeds it from the operating system (ChaCha, a cryptographic generator: visitor
//! secrets come from it); tests seed it with a number and get the same ids every run.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

#[derive(Debug)]
pub struct Ids {
    rng: StdRng,
}

impl Ids {
    /// Seeded by the operating system (production).
    pub fn from_entropy() -> Ids {
        Ids {
            rng: StdRng::from_entropy(),
        }
    }

    /// The same sequence every time (tests, the simulation harness).
    #[cfg(test)]
    pub fn seeded(seed: u64) -> Ids {
        Ids {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// `bytes` random bytes as lowercase hex.
    pub fn hex(&mut self, bytes: usize) -> String {
        let mut buf = vec![0u8; bytes];
        self.rng.fill_bytes(&mut buf);
        hex::encode(buf)
    }

    /// A visitor's `short_id` (12 hex digits).
    pub fn short_id(&mut self) -> String {
        self.hex(6)
    }

    /// A 256-bit secret (a visitor's).
    pub fn secret(&mut self) -> String {
        self.hex(32)
    }

    pub fn u32(&mut self) -> u32 {
        self.rng.gen()
    }
}
