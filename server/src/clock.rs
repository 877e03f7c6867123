//! The wall clock, read in one place: the shell passes `now` to the hub and the store
//! (STYLE: the domain never reads a clock). Leaf module: names no other module.

use covisit::core::Millis;

/// The wall clock, as the core's [`Millis`].
pub fn now() -> Millis {
    Millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    )
}
