//! Values derived from others (SPEC.md section 5): a visitor's `name`, `nickname` and
//! `email` from its identities, `formatted_length`, lookup codes, watch and viewer URLs.
//! Pure functions; randomness comes in as an argument.

/// True when `text` looks like an email address: one `@`, a non-empty local part, a
/// dotted domain, no spaces.
pub fn looks_like_email(text: &str) -> bool {
    let Some((local, domain)) = text.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && !text.chars().any(char::is_whitespace)
        && domain.split('.').count() >= 2
        && domain.split('.').all(|label| !label.is_empty())
}

/// True when `text` looks like a person's name: one to five words of letters (with
/// `-`, `'` and `.` inside words), no digits, no `@`, at most 80 characters.
pub fn looks_like_name(text: &str) -> bool {
    let text = text.trim();
    let words: Vec<&str> = text.split_whitespace().collect();
    !text.is_empty()
        && text.chars().count() <= 80
        && (1..=5).contains(&words.len())
        && words.iter().all(|w| {
            w.chars().next().is_some_and(char::is_alphabetic)
                && w.chars()
                    .all(|c| c.is_alphabetic() || matches!(c, '-' | '\'' | '.'))
        })
}

/// The seed's `name`: the first identity that looks like a name.
pub fn name_from_identities(identities: &[String]) -> Option<String> {
    identities
        .iter()
        .find(|i| looks_like_name(i))
        .map(|i| i.trim().to_string())
}

/// The seed's `email`: the explicit one, else the first identity that looks like one.
fn email_from(explicit: Option<&str>, identities: &[String]) -> Option<String> {
    explicit
        .map(str::to_string)
        .or_else(|| identities.iter().find(|i| looks_like_email(i)).cloned())
}

/// The seed's `nickname`: the name, else the email's local part, else the short id.
fn nickname(name: Option<&str>, email: Option<&str>, short_id: &str) -> String {
    name.map(str::to_string)
        .or_else(|| {
            email
                .and_then(|e| e.split_once('@'))
                .map(|(local, _)| local.to_string())
        })
        .unwrap_or_else(|| short_id.to_string())
}

/// A visitor's names as SPEC.md section 5 derives them from its identity fields: the one
/// rule behind the SDK's `state().visitor` and the server's Visitor, so both show the
/// same `name`, `email` and `nickname` for the same `updateVisitor` calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// The first identity that looks like a person's name.
    pub name: Option<String>,
    /// The email set explicitly (`updateVisitor({email})`), else the first identity
    /// that looks like one.
    pub email: Option<String>,
}

impl Names {
    /// `explicit_email` is what the page set as `email` (kept apart from the derived one,
    /// so that clearing an identity can clear the email it gave).
    pub fn of(explicit_email: Option<&str>, identities: &[String]) -> Names {
        Names {
            name: name_from_identities(identities),
            email: email_from(explicit_email, identities),
        }
    }

    /// The seed's `nickname`: the name, else the email's local part, else the short id.
    pub fn nickname(&self, short_id: &str) -> String {
        nickname(self.name.as_deref(), self.email.as_deref(), short_id)
    }
}

/// The explicit email a stored Visitor's `email` stands for, where only the derived one
/// was kept (the server's store): none when its identities give that email anyway. So a
/// visitor read back from storage whose email came from an identity loses it with that
/// identity, as it would have before; one set explicitly to its first email identity
/// reads as derived, the one case the stored fields cannot tell apart.
pub fn explicit_email(stored_email: Option<&str>, identities: &[String]) -> Option<String> {
    stored_email
        .filter(|e| email_from(None, identities).as_deref() != Some(e))
        .map(str::to_string)
}

/// `MM:SS` below one hour, `HH:MM:SS` from one hour on (`formatted_length`).
pub fn formatted_length(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    if h == 0 {
        format!("{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

/// How long a lookup code stays valid, in seconds.
pub const LOOKUP_CODE_TTL_SECONDS: u64 = 3600;

/// A 4-digit lookup code that `is_taken` says is free, from the random source `random`
/// (any `u32`s). Tries random codes first, then walks from a random start so it always
/// finds a free one when any exists; `None` only when all 10,000 are taken.
pub fn lookup_code(
    mut random: impl FnMut() -> u32,
    is_taken: impl Fn(&str) -> bool,
) -> Option<String> {
    for _ in 0..16 {
        let code = format!("{:04}", random() % 10_000);
        if !is_taken(&code) {
            return Some(code);
        }
    }
    let start = random() % 10_000;
    (0..10_000)
        .map(|i| format!("{:04}", (start + i) % 10_000))
        .find(|c| !is_taken(c))
}

/// The console URL that opens a visitor (`watch_link`).
pub fn watch_link(public_url: &str, short_id: &str) -> String {
    format!(
        "{}/agent/#/visitors/{short_id}",
        public_url.trim_end_matches('/')
    )
}

/// The console URL that opens a session (`viewerUrl`).
pub fn viewer_url(public_url: &str, session_id: &str) -> String {
    format!(
        "{}/agent/#/sessions/{session_id}",
        public_url.trim_end_matches('/')
    )
}

/// The longest search `q` (bytes, trimmed), REST's and the console socket's alike.
pub const MAX_SEARCH_QUERY: usize = 256;

/// Whether a visitor matches an agent's search `q` (the one rule for the REST search
/// and the console's): its lookup code, `short_id` or `unique_id` exactly (the last
/// case-insensitively), or part of an identity, tag, name, nickname, email or call name.
pub fn visitor_matches(v: &crate::core::model::Visitor, q: &str) -> bool {
    let q = q.trim().to_lowercase();
    if q.is_empty() {
        return true;
    }
    let has = |s: &str| s.to_lowercase().contains(&q);
    v.lookup_code.as_deref() == Some(q.as_str())
        || v.unique_id
            .as_deref()
            .is_some_and(|u| u.to_lowercase() == q)
        || v.short_id == q
        || v.identities.iter().any(|i| has(i))
        || v.tags.iter().any(|t| has(t))
        || v.name.as_deref().is_some_and(has)
        || (v.nickname != v.short_id && has(&v.nickname))
        || v.email.as_deref().is_some_and(has)
        || v.call_name.as_deref().is_some_and(has)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn name_is_the_first_name_like_identity() {
        let identities = ids(&[
            "cust-4432",
            "ada@example.com",
            "Ada Lovelace",
            "Grace Hopper",
        ]);
        assert_eq!(
            name_from_identities(&identities).as_deref(),
            Some("Ada Lovelace")
        );
        assert_eq!(name_from_identities(&ids(&["12345", "x_y"])), None);
        assert!(looks_like_name("Jean-Luc O'Neil"));
        assert!(!looks_like_name("R2D2"));
    }

    #[test]
    fn email_prefers_the_explicit_one() {
        let identities = ids(&["Ada", "ada@example.com"]);
        assert_eq!(
            email_from(None, &identities).as_deref(),
            Some("ada@example.com")
        );
        assert_eq!(
            email_from(Some("a@b.co"), &identities).as_deref(),
            Some("a@b.co")
        );
        assert!(
            !looks_like_email("a@b") && !looks_like_email("a b@c.d") && !looks_like_email("@c.d")
        );
    }

    #[test]
    fn nickname_falls_back_in_order() {
        assert_eq!(nickname(Some("Ada"), Some("x@y.z"), "v1"), "Ada");
        assert_eq!(nickname(None, Some("ada.l@y.z"), "v1"), "ada.l");
        assert_eq!(nickname(None, None, "v1"), "v1");
    }

    #[test]
    fn names_come_from_the_identities_unless_an_email_was_set() {
        let names = Names::of(None, &ids(&["Ada Lovelace", "ada@example.com"]));
        assert_eq!(names.name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(names.email.as_deref(), Some("ada@example.com"));
        assert_eq!(names.nickname("v1"), "Ada Lovelace");
        let names = Names::of(Some("a.l@b.co"), &ids(&["12345"]));
        assert_eq!(
            (names.name, names.email.as_deref()),
            (None, Some("a.l@b.co"))
        );
        assert_eq!(Names::of(None, &[]).nickname("v1"), "v1");
    }

    #[test]
    fn a_stored_email_that_the_identities_give_is_not_explicit() {
        let identities = ids(&["Ada", "ada@example.com"]);
        assert_eq!(explicit_email(Some("ada@example.com"), &identities), None);
        assert_eq!(
            explicit_email(Some("a.l@work.example"), &identities).as_deref(),
            Some("a.l@work.example")
        );
        assert_eq!(explicit_email(None, &identities), None);
    }

    #[test]
    fn formatted_length_switches_at_one_hour() {
        assert_eq!(formatted_length(0), "00:00");
        assert_eq!(formatted_length(70), "01:10");
        assert_eq!(formatted_length(3599), "59:59");
        assert_eq!(formatted_length(3600), "01:00:00");
        assert_eq!(formatted_length(90_061), "25:01:01");
    }

    #[test]
    fn lookup_codes_are_four_digits_and_avoid_taken_ones() {
        let mut n = 0u32;
        let code = lookup_code(
            || {
                n += 1;
                42
            },
            |c| c == "0042",
        )
        .unwrap();
        assert_eq!(code.len(), 4);
        assert_ne!(code, "0042");
        assert_eq!(lookup_code(|| 7, |_| true), None);
    }
}
