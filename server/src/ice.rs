//! ICE servers for calls (issue 17): the STUN and TURN URLs the server was started with
//! (`--ice-server`, repeatable) and, for TURN, credentials in the standard time-limited
//! scheme of the "REST API for access to TURN services" draft, which coturn implements
//! (`use-auth-secret` + `static-auth-secret`): username `<expiry unix time>:<user>`,
//! password base64(HMAC-SHA1(secret, username)). The secret never leaves the server;
//! only credentials that expire do. Pure: time is passed in.

use base64::Engine as _;
use covisit::core::protocol::IceServer;
use covisit::core::Millis;
use hmac::{Hmac, Mac};

/// How long TURN credentials handed to a call are valid.
pub const DEFAULT_TTL_SECONDS: u64 = 6 * 3600;

/// The ICE configuration (`--ice-server`, `--turn-secret`).
#[derive(Clone, Default)]
pub struct IceConfig {
    /// `stun:host:port`, `turn:host:port?transport=udp`, `turns:…`.
    pub urls: Vec<String>,
    /// coturn's `static-auth-secret`: TURN URLs get credentials derived from it.
    pub turn_secret: Option<String>,
    /// Lifetime of the credentials (0: [`DEFAULT_TTL_SECONDS`]).
    pub ttl_seconds: u64,
}

// The secret is never printed, not even in a debug log of the config.
impl std::fmt::Debug for IceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceConfig")
            .field("urls", &self.urls)
            .field(
                "turn_secret",
                &self.turn_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("ttl_seconds", &self.ttl_seconds)
            .finish()
    }
}

/// Checks an `--ice-server` URL (RFC 7064 / 7065): `stun:` or `stuns:` `host[:port]`,
/// `turn:` or `turns:` `host[:port][?transport=udp|tcp]`; the host a name or an
/// address (IPv6 in brackets), the port a number. A typo stops the start-up rather than
/// reaching every call as a server the browser rejects.
pub fn parse_url(url: &str) -> Result<String, String> {
    let url = url.trim();
    let bad = |why: &str| Err(format!("`{url}` is not a STUN or TURN URL: {why}"));
    let Some((scheme, rest)) = url.split_once(':') else {
        return bad("expected stun:, stuns:, turn: or turns: then host[:port]");
    };
    let turn = match scheme {
        "stun" | "stuns" => false,
        "turn" | "turns" => true,
        _ => return bad("the scheme must be stun, stuns, turn or turns"),
    };
    let (hostport, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    match query {
        None => {}
        Some("transport=udp" | "transport=tcp") if turn => {}
        Some(_) if turn => return bad("the only parameter is transport=udp or transport=tcp"),
        Some(_) => return bad("a STUN URL takes no parameters"),
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return bad("an IPv6 address needs its closing ]");
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return bad("not an IPv6 address in the brackets");
        }
        (addr, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if !host_ok {
        return bad("no host, or a host with characters a host name cannot have");
    }
    if let Some(p) = port {
        if !p.parse::<u16>().is_ok_and(|p| p > 0) {
            return bad("the port must be a number from 1 to 65535");
        }
    }
    Ok(url.to_string())
}

/// The servers for one end of a call, valid from `now`; `user` names it in the TURN
/// username (an id, never a person's name). Empty without `--ice-server`: on loopback
/// and on one network, host candidates suffice.
pub fn servers(config: &IceConfig, now: Millis, user: &str) -> Vec<IceServer> {
    let ttl = if config.ttl_seconds == 0 {
        DEFAULT_TTL_SECONDS
    } else {
        config.ttl_seconds
    };
    config
        .urls
        .iter()
        .map(|url| {
            let turn = url.starts_with("turn:") || url.starts_with("turns:");
            match config.turn_secret.as_deref().filter(|_| turn) {
                Some(secret) => {
                    let username = format!("{}:{}", now.0 / 1000 + ttl, user);
                    IceServer {
                        urls: url.clone(),
                        credential: Some(credential(secret, &username)),
                        username: Some(username),
                    }
                }
                None => IceServer {
                    urls: url.clone(),
                    username: None,
                    credential: None,
                },
            }
        })
        .collect()
}

/// base64(HMAC-SHA1(secret, username)): the TURN password coturn expects.
pub fn credential(secret: &str, username: &str) -> String {
    // An HMAC takes a key of any length: new_from_slice cannot fail.
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ice_urls_are_checked() {
        for good in [
            "stun:stun.example.com",
            "stun:127.0.0.1:3478",
            "stuns:stun.example.com:5349",
            "turn:turn.example.com:3478?transport=udp",
            "turns:[2001:db8::1]:5349?transport=tcp",
            "turn:[::1]",
        ] {
            assert_eq!(parse_url(good).as_deref(), Ok(good), "{good}");
        }
        for bad in [
            "notaurl",
            "http://turn.example.com",
            "stun:",
            "stun:host:0",
            "stun:host:99999",
            "stun:host?transport=udp",
            "turn:host?foo=bar",
            "turn:bad host",
            "turn:[notv6]:3478",
            "turn:<script>",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    use super::*;

    #[test]
    fn turn_credentials_follow_the_rest_api_scheme() {
        // RFC 2202 test case 2 for HMAC-SHA1: key "Jefe".
        let mac = credential("Jefe", "what do ya want for nothing?");
        assert_eq!(mac, "7/zfauXrL6LSdBbV8YTfnCWafHk=");
        let config = IceConfig {
            urls: vec![
                "stun:stun.example.com:3478".into(),
                "turn:turn.example.com:3478?transport=udp".into(),
            ],
            turn_secret: Some("s3cret".into()),
            ttl_seconds: 3600,
        };
        let list = servers(&config, Millis(1_000_000_000_000), "v_1");
        assert_eq!(list[0].username, None, "STUN needs no credentials");
        assert_eq!(list[1].username.as_deref(), Some("1000003600:v_1"));
        assert_eq!(
            list[1].credential.as_deref(),
            Some(credential("s3cret", "1000003600:v_1").as_str())
        );
        assert!(!format!("{config:?}").contains("s3cret"));
    }
}
