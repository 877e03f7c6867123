//! API keys and random ids: public keys (`pk_…`) for the SDK, secret keys (`sk_…`) for
//! integrations and REST (stored only as a SHA-256 hash, `auth::hash_secret`), and the
//! ids of integration agents.

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
            secret_key: format!("sk_{}", crate::auth::random_secret(32)),
        }
    }
}

/// `bytes` random bytes from the OS-seeded thread RNG, as lowercase hex: for ids that
/// name things, not for secrets (`auth::random_secret`).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// A stable id (`ea_…`) for an integration's agent: from the account and the
/// integration's own id for it (`external_id`), never from a free-text name.
pub fn agent_id(account_id: i64, external_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(account_id.to_le_bytes());
    h.update(b"ext:");
    h.update(external_id.as_bytes());
    // A SHA-256 digest is 64 hex characters, so the slice is always in range.
    format!("ea_{}", &hex::encode(h.finalize())[..16])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_prefixes_and_agent_ids_are_stable_per_account() {
        let pair = KeyPair::generate();
        assert!(pair.public_key.starts_with("pk_") && pair.secret_key.starts_with("sk_"));
        assert_eq!(agent_id(1, "crm-7"), agent_id(1, "crm-7"));
        assert_ne!(agent_id(1, "crm-7"), agent_id(2, "crm-7"));
        assert_ne!(agent_id(1, "crm-7"), agent_id(1, "crm-8"));
    }
}
