//! A wrapper for values that identify a person (IP addresses, emails, typed text), so
//! that `Debug` output and logs print them redacted while serde still carries them.

use std::fmt;

/// A value that identifies a person. `Debug` and `Display` print `Pii(..)`; only
/// serialization and [`Pii::expose`] reach the value.
#[derive(Clone, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Pii<T>(T);

impl<T> Pii<T> {
    pub fn new(value: T) -> Self {
        Pii(value)
    }

    /// The real value: call it only where the value is meant to go (the wire, storage).
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pii(..)")
    }
}

impl<T> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pii(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value_and_serde_keeps_it() {
        let email = Pii::new("ada@example.com".to_string());
        assert_eq!(format!("{email:?} {email}"), "Pii(..) Pii(..)");
        assert_eq!(
            serde_json::to_string(&email).unwrap(),
            "\"ada@example.com\""
        );
    }
}
