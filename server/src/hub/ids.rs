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

    /// A visitor's `short_id` (12 hex digits) that `fits` (on a node of several: in a
    /// slot the node owns). Gives up fitting after many draws (no slot fits).
    pub fn short_id(&mut self, fits: impl Fn(&str) -> bool) -> String {
        self.draw(|ids| ids.hex(6), fits)
    }

    /// A session id in the slot of its visitor (so any node can tell the session's
    /// owner from its id): `s_` and 20 hex digits.
    pub fn session_id(&mut self, visitor_short_id: &str) -> String {
        let slot = crate::store::slot_of(visitor_short_id);
        self.draw(
            |ids| format!("s_{}", ids.hex(10)),
            |id| crate::store::slot_of(id) == slot,
        )
    }

    /// Draws until `fits` (about 256 draws for one slot in 256), at most 100,000 times.
    fn draw(
        &mut self,
        mut make: impl FnMut(&mut Ids) -> String,
        fits: impl Fn(&str) -> bool,
    ) -> String {
        let mut id = make(self);
        for _ in 0..100_000 {
            if fits(&id) {
                break;
            }
            id = make(self);
        }
        id
    }

    /// A 256-bit secret (a visitor's).
    pub fn secret(&mut self) -> String {
        self.hex(32)
    }

    pub fn u32(&mut self) -> u32 {
        self.rng.gen()
    }
}
