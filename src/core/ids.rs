//! The one validity rule for every id a peer names: a visitor's `short_id` and its
//! secret, a tab's `uniqueConnectionId`, session, agent, communication and journey ids.
//! The SDK filters what it reads back from storage with it, the server checks what
//! sockets and REST paths name with it. Ids the server makes (`s_…`, `c_…`, `cm_…`,
//! 12 hex digits, 64-hex secrets, UUIDs) all pass it.

/// The longest id, in bytes.
pub const MAX_ID_LEN: usize = 64;

/// True for 1 to [`MAX_ID_LEN`] bytes of `A-Z a-z 0-9 _ -`: nothing that needs escaping
/// in a URL path, a log line or an HTML attribute.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ids_the_server_makes_pass_and_odd_ones_do_not() {
        for ok in [
            "3f9a2c0b1d4e",
            "c_1a2b3c4d5e6f7a8b",
            "s_00112233445566778899",
            "ea_0123456789abcdef",
            "6f1c1b0e-0f3a-4c1e-9a59-0d5b8b2f9c11",
            &"a".repeat(64),
        ] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", "a.b", &"a".repeat(65)] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }
}
