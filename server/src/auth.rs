//! The trust model's rules, one definition each: roles and what each may do, the
//! password policy and hashing (argon2id), random secrets and their stored hashes,
//! the sign-in cookie, allowed page origins, and the failed-sign-in limiter. Nothing
//! here does I/O; the REST handlers (`rest_admin`), the sockets (`ws`) and the hub use it.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// What a console user is. Each role can do what the one below it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Co-browses: requests sessions, acts in the sessions it is part of.
    Agent,
    /// Also joins any live session of the account and reads the audit log.
    Supervisor,
    /// Also manages users, keys, origins and settings.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "agent" => Some(Role::Agent),
            "supervisor" => Some(Role::Supervisor),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

/// Who is asking, proven: a signed-in user (cookie), or an integration holding the
/// account's secret key (`Authorization: Bearer sk_…`).
#[derive(Debug, Clone)]
pub enum Principal {
    User {
        account_id: i64,
        user_id: String,
        role: Role,
        /// The sign-in session (its token's hash): sign-out closes its sockets.
        session: String,
        csrf_token: String,
    },
    Integration {
        account_id: i64,
    },
}

/// A privileged act, checked against the principal in one place ([`Principal::may`]).
/// The role matrix test (`server/tests/trust.rs`) holds every endpoint to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// Read visitors, sessions, journeys; request sessions; act in one's own sessions.
    CoBrowse,
    /// Join a live session one is not part of.
    JoinAnySession,
    /// End a session or add a note to one the principal is not part of.
    ManageAnySession,
    /// Erase a visitor's personal data.
    EraseVisitor,
    /// Read the analytics export (every conversation of an interval).
    ReadExport,
    ReadAudit,
    /// Users, keys, origins, account settings.
    Administer,
}

impl Principal {
    pub fn account_id(&self) -> i64 {
        match self {
            Principal::User { account_id, .. } | Principal::Integration { account_id } => {
                *account_id
            }
        }
    }

    /// The audit log's actor: the user's id, or `api` for the account's secret key.
    pub fn actor(&self) -> String {
        match self {
            Principal::User { user_id, .. } => user_id.clone(),
            Principal::Integration { .. } => "api".to_string(),
        }
    }

    pub fn may(&self, act: Act) -> bool {
        let role = match self {
            // The secret key is the account's integration credential: every act of the
            // REST API except managing people and keys, which needs a person.
            Principal::Integration { .. } => return act != Act::Administer,
            Principal::User { role, .. } => *role,
        };
        match act {
            Act::CoBrowse => true,
            Act::JoinAnySession | Act::ManageAnySession | Act::ReadAudit | Act::ReadExport => {
                role >= Role::Supervisor
            }
            Act::EraseVisitor | Act::Administer => role == Role::Admin,
        }
    }
}

// ----- secrets -------------------------------------------------------------------------

/// `bytes` random bytes from the operating system, as lowercase hex.
pub fn random_secret(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    hex::encode(buf)
}

/// The stored form of a random secret (session token, one-time link, visitor secret):
/// they are 256 random bits, so a plain hash is as strong as a slow one.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Compares two hashes in time independent of where they differ.
pub fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

// ----- signed links --------------------------------------------------------------------

/// Why a signed link is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    /// The signature is not this server's for this link (forged, altered, malformed).
    BadSignature,
    /// The signature is right but the link's time is over.
    Expired,
}

/// The signature of a link for `purpose` and `subject` (e.g. a recording's session id)
/// valid until `expires` (seconds since the epoch): HMAC-SHA-256 with the server's key,
/// as hex. Each part is length-prefixed, so no two links share a signed text.
pub fn sign_link(key: &[u8], purpose: &str, subject: &str, expires: u64) -> String {
    use hmac::{Hmac, Mac};
    // HMAC takes a key of any length: `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    for part in [purpose, subject, &expires.to_string()] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part.as_bytes());
    }
    hex::encode(mac.finalize().into_bytes())
}

/// Checks a signed link at `now` (seconds since the epoch). The signature is compared
/// in constant time, and before the expiry, so that an expired link says `Expired` only
/// when it was genuine.
pub fn verify_link(
    key: &[u8],
    purpose: &str,
    subject: &str,
    expires: u64,
    signature: &str,
    now: u64,
) -> Result<(), LinkRefusal> {
    let expected = sign_link(key, purpose, subject, expires);
    if !same_hash(&expected, &signature.to_ascii_lowercase()) {
        return Err(LinkRefusal::BadSignature);
    }
    if now >= expires {
        return Err(LinkRefusal::Expired);
    }
    Ok(())
}

// ----- passwords -----------------------------------------------------------------------

pub const MIN_PASSWORD_CHARS: usize = 12;
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Passwords people choose most often that are 12 characters or longer (from public
/// breach-frequency lists), compared case-insensitively.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// Why a password is refused, said to the person choosing it.
pub fn password_problem(password: &str, email: &str) -> Option<&'static str> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Some("a password needs at least 12 characters");
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Some("a password can have at most 1024 bytes");
    }
    let lower = password.to_lowercase();
    if COMMON_PASSWORDS
        .lines()
        .map(str::trim)
        .any(|common| !common.is_empty() && common == lower)
    {
        return Some("this password is one of the most common ones; choose another");
    }
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    if local.len() >= 4 && lower.contains(&local) {
        return Some("a password must not contain your email address");
    }
    let first = lower.chars().next();
    if lower.chars().all(|c| Some(c) == first) {
        return Some("a password must not repeat one character");
    }
    None
}

/// argon2id with the crate's recommended parameters (19 MiB, 2 passes, 1 lane), as a
/// PHC string with its own random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to verify against when the email is unknown, so that a wrong email takes as
/// long to refuse as a wrong password (no account enumeration by timing).
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password that no one has").unwrap_or_default())
}

/// An email address as stored and compared: trimmed, lowercase; None when it is not one.
pub fn normalize_email(email: &str) -> Option<String> {
    let e = email.trim().to_lowercase();
    let (local, domain) = e.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    ok.then_some(e)
}

/// A username for personal links (`/call/{username}`): 2–32 of `a-z 0-9 . _ -`.
pub fn valid_username(u: &str) -> bool {
    (2..=32).contains(&u.len())
        && u.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'_' || b == b'-'
        })
}

// ----- the sign-in cookie ----------------------------------------------------------------

pub const SESSION_COOKIE: &str = "covisit_session";
/// A sign-in session ends after this long without a request.
pub const SESSION_IDLE_SECONDS: u64 = 12 * 3600;
/// Invites are valid this long; password-reset links and personal-link confirmations
/// are shorter-lived.
pub const INVITE_SECONDS: u64 = 7 * 24 * 3600;
pub const RESET_SECONDS: u64 = 24 * 3600;
pub const CALL_TOKEN_SECONDS: u64 = 10 * 60;

/// `Set-Cookie` for a new sign-in session: HttpOnly, SameSite=Strict, Secure over https.
pub fn session_cookie(token: &str, secure: bool) -> String {
    cookie::Cookie::build((SESSION_COOKIE, token.to_string()))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure)
        .build()
        .to_string()
}

/// `Set-Cookie` that removes the session cookie.
pub fn cleared_cookie(secure: bool) -> String {
    cookie::Cookie::build((SESSION_COOKIE, ""))
        .path("/")
        .http_only(true)
        .same_site(cookie::SameSite::Strict)
        .secure(secure)
        .max_age(cookie::time::Duration::ZERO)
        .build()
        .to_string()
}

/// The session token from a `Cookie` header.
pub fn session_token(cookie_header: &str) -> Option<String> {
    cookie::Cookie::split_parse(cookie_header)
        .flatten()
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

// ----- origins ---------------------------------------------------------------------------

/// An allowed page origin: `https://shop.example` (exactly) or `https://*.shop.example`
/// (any subdomain of it, at any depth, not the domain itself). Ports are part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginPattern {
    scheme: String,
    /// Lowercase, without the `*.` of a wildcard.
    host: String,
    wildcard: bool,
    port: u16,
}

impl OriginPattern {
    /// Parses what an admin types; the error says what is wrong.
    pub fn parse(text: &str) -> Result<OriginPattern, String> {
        let t = text.trim();
        let bad = |why: &str| format!("`{t}` is not an origin: {why}");
        let (scheme, rest) = t
            .split_once("://")
            .ok_or_else(|| bad("it needs a scheme, e.g. https://shop.example"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return Err(bad("the scheme must be https or http"));
        }
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) {
            return Err(bad("an origin has no path, query, fragment or user"));
        }
        let (wildcard, hostport) = match rest.strip_prefix("*.") {
            Some(h) => (true, h),
            None => (false, rest),
        };
        // Let the URL parser check the host (IDNA, IPv6 brackets) and the port.
        let url =
            url::Url::parse(&format!("{scheme}://{hostport}/")).map_err(|e| bad(&e.to_string()))?;
        let host = url
            .host_str()
            .ok_or_else(|| bad("no host"))?
            .to_ascii_lowercase();
        if host.contains('*') || host.is_empty() {
            return Err(bad(
                "a wildcard may only be the first label (`https://*.shop.example`)",
            ));
        }
        if wildcard && !host.contains('.') {
            return Err(bad("a wildcard needs a domain of at least two labels"));
        }
        let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
        Ok(OriginPattern {
            scheme,
            host,
            wildcard,
            port,
        })
    }

    /// Whether a page of `origin` (an `Origin` header's value) is allowed.
    pub fn matches(&self, origin: &Origin) -> bool {
        if origin.scheme != self.scheme || origin.port != self.port {
            return false;
        }
        if self.wildcard {
            origin.host.len() > self.host.len() + 1
                && origin.host.ends_with(&self.host)
                && origin.host.as_bytes()[origin.host.len() - self.host.len() - 1] == b'.'
        } else {
            origin.host == self.host
        }
    }

    /// How it is shown and stored.
    pub fn canonical(&self) -> String {
        let default = if self.scheme == "https" { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let star = if self.wildcard { "*." } else { "" };
        if self.port == default {
            format!("{}://{star}{host}", self.scheme)
        } else {
            format!("{}://{star}{host}:{}", self.scheme, self.port)
        }
    }
}

/// A browser's `Origin` header, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// None for `null`, an opaque origin, or anything that is not `scheme://host[:port]`.
    pub fn parse(header: &str) -> Option<Origin> {
        let url = url::Url::parse(header.trim()).ok()?;
        if url.path() != "/" && !url.path().is_empty()
            || url.query().is_some()
            || !url.username().is_empty()
        {
            return None;
        }
        let scheme = url.scheme().to_ascii_lowercase();
        if scheme != "https" && scheme != "http" {
            return None;
        }
        Some(Origin {
            host: url
                .host_str()?
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_ascii_lowercase(),
            port: url.port_or_known_default()?,
            scheme,
        })
    }

    /// A page on this machine (`localhost`, 127.0.0.0/8, ::1): what `--dev` allows.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// Whether a key with these allowed origins takes a page of `origin`. `origins` None:
/// a key from before origins existed (any origin).
pub fn origin_allowed(
    origins: Option<&[String]>,
    allow_loopback: bool,
    origin: Option<&str>,
) -> bool {
    let Some(origins) = origins else {
        return true;
    };
    let Some(origin) = origin.and_then(Origin::parse) else {
        return false;
    };
    (allow_loopback && origin.is_loopback())
        || origins
            .iter()
            .filter_map(|p| OriginPattern::parse(p).ok())
            .any(|p| p.matches(&origin))
}

// ----- failed sign-ins ---------------------------------------------------------------------

/// Failed sign-ins per email and per IP address: a burst of a few, then one more per
/// period; past that, every attempt (even with the right password) is refused until
/// the limiter allows again. Only failures count.
pub struct SignInLimiter {
    by_email: DefaultKeyedRateLimiter<String>,
    by_ip: DefaultKeyedRateLimiter<String>,
    /// Until when a key is locked: governor has no look without taking a cell.
    locked: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// Five failures per email, then one every three minutes.
pub const EMAIL_BURST: u32 = 5;
pub const EMAIL_PERIOD: Duration = Duration::from_secs(180);
/// Twenty failures per IP address, then one a minute.
pub const IP_BURST: u32 = 20;
pub const IP_PERIOD: Duration = Duration::from_secs(60);

impl Default for SignInLimiter {
    fn default() -> Self {
        let quota = |period: Duration, burst: u32| {
            Quota::with_period(period)
                .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
                .allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
        };
        SignInLimiter {
            by_email: RateLimiter::keyed(quota(EMAIL_PERIOD, EMAIL_BURST)),
            by_ip: RateLimiter::keyed(quota(IP_PERIOD, IP_BURST)),
            locked: Default::default(),
        }
    }
}

impl SignInLimiter {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, std::time::Instant>> {
        self.locked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether attempts for this email or from this address are refused right now.
    pub fn is_locked(&self, email: &str, ip: &str) -> bool {
        let now = std::time::Instant::now();
        let mut locked = self.lock();
        locked.retain(|_, until| *until > now);
        locked.contains_key(&format!("e:{email}")) || locked.contains_key(&format!("i:{ip}"))
    }

    /// Counts a failure; true when it locked the email or the address.
    pub fn failed(&self, email: &str, ip: &str) -> bool {
        let clock = DefaultClock::default();
        let mut locks = Vec::new();
        if let Err(not_until) = self.by_email.check_key(&email.to_string()) {
            locks.push((format!("e:{email}"), not_until.wait_time_from(clock.now())));
        }
        if let Err(not_until) = self.by_ip.check_key(&ip.to_string()) {
            locks.push((format!("i:{ip}"), not_until.wait_time_from(clock.now())));
        }
        let now = std::time::Instant::now();
        let mut locked = self.lock();
        for (key, wait) in &locks {
            locked.insert(key.clone(), now + *wait);
        }
        // Bounded memory under a flood of distinct keys.
        if locked.len() > 100_000 {
            locked.retain(|_, until| *until > now);
        }
        self.by_email.retain_recent();
        self.by_ip.retain_recent();
        !locks.is_empty()
    }
}

/// Lookup-code searches per account (REST `q=` and the console's `search` alike): a
/// guessed code reaches a stranger's visitor, so guessing is slowed down.
pub struct LookupLimiter {
    by_account: DefaultKeyedRateLimiter<i64>,
    /// The budget a minute (a cluster's shared counter uses it too).
    pub per_minute: u32,
}

impl LookupLimiter {
    /// `per_minute` searches a minute, all of them usable at once.
    pub fn new(per_minute: u32) -> LookupLimiter {
        let budget = NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN);
        LookupLimiter {
            by_account: RateLimiter::keyed(Quota::per_minute(budget)),
            per_minute: budget.get(),
        }
    }

    /// Takes one search from the account's budget; false when it is spent.
    pub fn allow(&self, account_id: i64) -> bool {
        let ok = self.by_account.check_key(&account_id).is_ok();
        self.by_account.retain_recent();
        ok
    }
}

/// Whether `q` looks like a lookup code (four digits): such searches are rate-limited.
pub fn is_lookup_code(q: &str) -> bool {
    q.len() == 4 && q.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_searches_are_limited_per_account() {
        let limiter = LookupLimiter::new(3);
        assert!((0..3).all(|_| limiter.allow(1)));
        assert!(!limiter.allow(1), "the fourth in a minute is refused");
        assert!(limiter.allow(2), "another account has its own budget");
        assert!(is_lookup_code("0042") && !is_lookup_code("042") && !is_lookup_code("a042"));
    }

    #[test]
    fn roles_nest() {
        let user = |role| Principal::User {
            account_id: 1,
            user_id: "u_1".into(),
            role,
            session: String::new(),
            csrf_token: String::new(),
        };
        assert!(user(Role::Agent).may(Act::CoBrowse));
        assert!(!user(Role::Agent).may(Act::JoinAnySession));
        assert!(!user(Role::Agent).may(Act::ReadAudit));
        assert!(user(Role::Supervisor).may(Act::ReadAudit));
        assert!(!user(Role::Supervisor).may(Act::Administer));
        assert!(user(Role::Admin).may(Act::Administer));
        let api = Principal::Integration { account_id: 1 };
        assert!(api.may(Act::ReadAudit) && api.may(Act::EraseVisitor));
        assert!(!api.may(Act::Administer));
    }

    #[test]
    fn origins_match_exactly_or_by_subdomain() {
        let o = |s: &str| Origin::parse(s).expect("an origin");
        let exact = OriginPattern::parse("https://shop.example").expect("pattern");
        assert!(exact.matches(&o("https://shop.example")));
        assert!(exact.matches(&o("https://SHOP.example:443")));
        assert!(!exact.matches(&o("http://shop.example")));
        assert!(!exact.matches(&o("https://shop.example:8443")));
        assert!(!exact.matches(&o("https://shop.example.evil.test")));
        assert!(!exact.matches(&o("https://www.shop.example")));
        let wild = OriginPattern::parse("https://*.shop.example").expect("pattern");
        assert!(wild.matches(&o("https://www.shop.example")));
        assert!(wild.matches(&o("https://a.b.shop.example")));
        assert!(!wild.matches(&o("https://shop.example")));
        assert!(!wild.matches(&o("https://evilshop.example")));
        assert!(!wild.matches(&o("https://www.shop.example.evil.test")));
        assert_eq!(wild.canonical(), "https://*.shop.example");
        for bad in [
            "shop.example",
            "ftp://x.example",
            "https://x.example/path",
            "https://*",
            "https://a.*.example",
            "https://*.com",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad} must be refused");
        }
        assert!(Origin::parse("null").is_none());
        assert!(o("http://127.0.0.1:9000").is_loopback());
        assert!(o("http://[::1]:9000").is_loopback());
        assert!(!o("http://127.example").is_loopback());
        let allowed = vec!["https://shop.example".to_string()];
        assert!(origin_allowed(
            Some(&allowed),
            false,
            Some("https://shop.example")
        ));
        assert!(!origin_allowed(Some(&allowed), false, None));
        assert!(!origin_allowed(
            Some(&allowed),
            false,
            Some("http://127.0.0.1:8080")
        ));
        assert!(origin_allowed(
            Some(&allowed),
            true,
            Some("http://127.0.0.1:8080")
        ));
        assert!(origin_allowed(None, false, None));
    }

    #[test]
    fn signed_links_hold_only_for_their_subject_and_time() {
        let key = [7u8; 32];
        let sig = sign_link(&key, "recording", "s_1", 1000);
        assert_eq!(sig.len(), 64);
        assert_eq!(
            verify_link(&key, "recording", "s_1", 1000, &sig, 999),
            Ok(())
        );
        assert_eq!(
            verify_link(&key, "recording", "s_1", 1000, &sig.to_uppercase(), 999),
            Ok(())
        );
        // Its time is over; a later expiry, another subject, purpose or key: not ours.
        assert_eq!(
            verify_link(&key, "recording", "s_1", 1000, &sig, 1000),
            Err(LinkRefusal::Expired)
        );
        for (purpose, subject, expires, k) in [
            ("recording", "s_1", 2000, key),
            ("recording", "s_2", 1000, key),
            ("invite", "s_1", 1000, key),
            ("recording", "s_1", 1000, [8u8; 32]),
        ] {
            assert_eq!(
                verify_link(&k, purpose, subject, expires, &sig, 0),
                Err(LinkRefusal::BadSignature)
            );
        }
        assert_eq!(
            verify_link(&key, "recording", "s_1", 1000, "", 0),
            Err(LinkRefusal::BadSignature)
        );
        assert_eq!(
            verify_link(&key, "recording", "s_1", 1000, &sig[..63], 0),
            Err(LinkRefusal::BadSignature)
        );
    }

    #[test]
    fn password_policy() {
        assert!(password_problem("short", "a@b.test").is_some());
        assert!(password_problem("passwordpassword", "a@b.test").is_some());
        assert!(password_problem("aaaaaaaaaaaaaa", "a@b.test").is_some());
        assert!(password_problem("dana.smith-2026!", "dana.smith@b.test").is_some());
        assert!(password_problem("correct horse battery", "a@b.test").is_none());
        let h = hash_password("correct horse battery").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse batterz", &h));
    }

    #[test]
    fn cookie_flags_and_parsing() {
        let c = session_cookie("abc", true);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Secure"));
        assert!(!session_cookie("abc", false).contains("Secure"));
        assert_eq!(
            session_token("a=1; covisit_session=xyz; b=2").as_deref(),
            Some("xyz")
        );
        assert_eq!(session_token("a=1"), None);
    }

    #[test]
    fn limiter_locks_after_the_burst() {
        let l = SignInLimiter::default();
        for _ in 0..EMAIL_BURST {
            assert!(!l.is_locked("a@b.test", "1.2.3.4"));
            l.failed("a@b.test", "1.2.3.4");
        }
        assert!(l.failed("a@b.test", "1.2.3.4"));
        assert!(l.is_locked("a@b.test", "5.6.7.8"));
        assert!(!l.is_locked("c@b.test", "5.6.7.8"));
    }
}
