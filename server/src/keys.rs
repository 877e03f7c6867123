//! API keys and random ids: public keys (`pk_…`) for the SDK, secret keys (`sk_…`) for
//! agents and REST, stored only as a SHA-256 hash.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// The demo keys `--dev` creates.
pub const DEMO_PUBLIC_KEY: &str = "pk_demo";
pub const DEMO_SECRET_KEY: &str = "sk_demo";

pub struct KeyPair {
    pub public_key: String,
    pub secret_key: String,
}

impl KeyPair {
    pub fn generate() -> KeyPair {
        KeyPair {
            public_key: format!("pk_{}", random_hex(16)),
            secret_key: format!("sk_{}", random_hex(32)),
        }
    }
}

/// `bytes` random bytes from the OS-seeded thread RNG, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The stored form of a secret key. Secrets are 32 random bytes, so a plain hash is
/// as strong as a slow one here (nothing to guess from a dictionary).
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A stable agent id (`ea_…`) for an agent of an account, from its external id or name.
pub fn agent_id(account_id: i64, name: &str, external_id: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(account_id.to_le_bytes());
    match external_id {
        Some(ext) => {
            h.update(b"ext:");
            h.update(ext.as_bytes());
        }
        None => {
            h.update(b"name:");
            h.update(name.as_bytes());
        }
    }
    // A SHA-256 digest is 64 hex characters, so the slice is always in range.
    format!("ea_{}", &hex::encode(h.finalize())[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_prefixes_and_hash_is_stable() {
        let pair = KeyPair::generate();
        assert!(pair.public_key.starts_with("pk_") && pair.secret_key.starts_with("sk_"));
        assert_eq!(hash_secret("sk_demo"), hash_secret("sk_demo"));
        assert_ne!(hash_secret(&pair.secret_key), pair.secret_key);
        assert_eq!(agent_id(1, "Ann", None), agent_id(1, "Ann", None));
        assert_ne!(agent_id(1, "Ann", None), agent_id(2, "Ann", None));
    }
}
