//! Time as the core sees it: milliseconds since the Unix epoch, passed in by the caller,
//! and their ISO-8601 UTC rendering. Nothing here reads a clock.

use std::fmt;

/// Milliseconds since 1970-01-01T00:00:00Z. The only notion of time the core has.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Millis(pub u64);

impl Millis {
    /// `self + seconds`, saturating instead of overflowing on absurd inputs.
    pub fn plus_seconds(self, seconds: u64) -> Millis {
        Millis(self.0.saturating_add(seconds.saturating_mul(1000)))
    }

    /// Whole seconds from `earlier` to `self`, zero when `earlier` is later.
    pub fn seconds_since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0) / 1000
    }

    /// ISO-8601 UTC with milliseconds, e.g. `2026-11-21T10:04:05.123Z`.
    pub fn to_iso8601(self) -> String {
        use crate::core::text::decimal;
        let ms = self.0 % 1000;
        let secs = self.0 / 1000;
        let days = (secs / 86_400) as i64;
        let rem = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        // From 1970 on, so every part is non-negative.
        let part = |n: i64, width| decimal(n.max(0) as u64, width);
        [
            &part(y, 4),
            "-",
            &part(m, 2),
            "-",
            &part(d, 2),
            "T",
            &decimal(rem / 3600, 2),
            ":",
            &decimal((rem % 3600) / 60, 2),
            ":",
            &decimal(rem % 60, 2),
            ".",
            &decimal(ms, 3),
            "Z",
        ]
        .concat()
    }

    /// Parses the form [`Millis::to_iso8601`] writes (milliseconds optional).
    pub fn parse_iso8601(text: &str) -> Option<Millis> {
        let b = text.as_bytes();
        if b.len() < 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
        {
            return None;
        }
        let num = |range: std::ops::Range<usize>| -> Option<i64> {
            let s = text.get(range)?;
            if !s.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
        let millis = match &text[19..] {
            "Z" => 0,
            rest if rest.len() == 5 && rest.starts_with('.') && rest.ends_with('Z') => num(20..23)?,
            _ => return None,
        };
        // Days the month has: the 30th of February is no day (nor the 31st of April).
        let month_days = match month {
            2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        if !(1..=12).contains(&month)
            || !(1..=month_days).contains(&day)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let total = ((days * 24 + hour) * 60 + minute) * 60 + second;
        u64::try_from(total * 1000 + millis).ok().map(Millis)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_iso8601())
    }
}

// Howard Hinnant's civil calendar algorithms (public domain): exact for every day in
// the proleptic Gregorian calendar, no tables.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

// proptest needs OS randomness, so these run natively only.
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(Millis(0).to_iso8601(), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            Millis(1_795_255_445_123).to_iso8601(),
            "2026-11-21T10:04:05.123Z"
        );
        assert_eq!(
            Millis(951_782_400_000).to_iso8601(),
            "2000-02-29T00:00:00.000Z"
        );
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in [
            "",
            "2026-11-21",
            "2026-13-01T00:00:00Z",
            "2026-11-21T10:04:05.12Z",
            "2026-11-21T10:04:05+01:00",
            "abcd-11-21T10:04:05Z",
            "2026-02-30T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "1900-02-29T00:00:00Z",
        ] {
            assert_eq!(Millis::parse_iso8601(bad), None, "{bad}");
        }
        for leap in ["2024-02-29T00:00:00Z", "2000-02-29T23:59:59.999Z"] {
            assert!(Millis::parse_iso8601(leap).is_some(), "{leap}");
        }
        assert_eq!(
            Millis::parse_iso8601("1970-01-01T00:00:01Z"),
            Some(Millis(1000))
        );
    }

    proptest! {
        #[test]
        fn iso8601_round_trips(ms in 0u64..253_402_300_799_999) {
            let text = Millis(ms).to_iso8601();
            prop_assert_eq!(text.len(), 24);
            prop_assert_eq!(Millis::parse_iso8601(&text), Some(Millis(ms)));
        }
    }
}
