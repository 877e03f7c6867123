//! Text without `core::fmt`: the SDK's error messages and times are built with these
//! instead of `format!`/`write!`, which keeps the formatting machinery (about 2 KB
//! gzipped) out of the wasm bundle. `Display` impls of the core's types call them too,
//! so the server's logs and the SDK's thrown messages read the same.

/// `n` in decimal, at least `width` digits (zero-padded).
pub fn decimal(mut n: u64, width: usize) -> String {
    let mut digits = [b'0'; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let at = at.min(digits.len().saturating_sub(width));
    digits[at..].iter().map(|&b| b as char).collect()
}

/// Implements `Display` and `Error` for an error type with a `message()`.
macro_rules! message_display {
    ($t:ty) => {
        impl ::core::fmt::Display for $t {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(&self.message())
            }
        }
        impl ::std::error::Error for $t {}
    };
}
pub(crate) use message_display;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_pads_and_writes_every_digit() {
        assert_eq!(decimal(0, 0), "0");
        assert_eq!(decimal(7, 3), "007");
        assert_eq!(decimal(1234, 2), "1234");
        assert_eq!(decimal(u64::MAX, 4), u64::MAX.to_string());
        for n in [1, 9, 10, 99, 100, 65_536, 1_000_000_007] {
            assert_eq!(decimal(n, 5), format!("{n:05}"));
        }
    }
}
