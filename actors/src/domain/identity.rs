//! Natural-person identity: an identity number (ID card, passport, ...) normalised so
//! that every way of typing it maps to one person, then kept only as a keyed hash.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Longest identity number accepted after normalisation, in characters.
pub const IDENTITY_CHARS_MAX: usize = 32;
/// Shortest identity number accepted after normalisation, in characters.
pub const IDENTITY_CHARS_MIN: usize = 6;

/// An identity number in canonical form: ASCII upper-case letters and digits only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityNumber(String);

/// Why a string is not an identity number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// Too short or too long once separators are removed.
    #[error("identity number must have {IDENTITY_CHARS_MIN} to {IDENTITY_CHARS_MAX} letters or digits, got {0}")]
    Length(usize),
    /// Anything but letters, digits and separators.
    #[error("identity number may contain only letters, digits, spaces and '-', found {0:?}")]
    Character(char),
}

impl IdentityNumber {
    /// Trims, case-folds and strips separators (spaces, '-', '_', '.', '/') so that
    /// "52010119900101123x" and " 520101 19900101 123X " are the same person.
    pub fn parse(raw: &str) -> Result<Self, IdentityError> {
        let mut out = String::with_capacity(raw.len());
        for c in raw.chars() {
            match c {
                ' ' | '\t' | '-' | '_' | '.' | '/' | '\u{3000}' => {}
                c if c.is_ascii_alphanumeric() => out.push(c.to_ascii_uppercase()),
                c => return Err(IdentityError::Character(c)),
            }
        }
        let n = out.len();
        if !(IDENTITY_CHARS_MIN..=IDENTITY_CHARS_MAX).contains(&n) {
            return Err(IdentityError::Length(n));
        }
        Ok(IdentityNumber(out))
    }

    /// The canonical form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A natural person as the platform knows them: a keyed hash of their identity number.
/// `route` (the first 8 bytes) places the person on a shard and inside coupon codes;
/// `check` (the next 8) tells two persons apart if their routes ever collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct PersonKey {
    /// Routing key: selects the shard; carried in coupon codes.
    pub route: u64,
    /// Second half of the 128-bit hash, stored to detect route collisions.
    pub check: u64,
}

impl PersonKey {
    /// HMAC-SHA256 of the canonical identity under the deployment's identity key.
    pub fn derive(identity_key: &[u8], id: &IdentityNumber) -> PersonKey {
        // new_from_slice accepts any key length for HMAC; the fallback keeps this total.
        let digest = match Hmac::<Sha256>::new_from_slice(identity_key) {
            Ok(mut mac) => {
                mac.update(id.0.as_bytes());
                mac.finalize().into_bytes()
            }
            Err(_) => Default::default(),
        };
        let mut r = [0u8; 8];
        let mut c = [0u8; 8];
        r.copy_from_slice(&digest[0..8]);
        c.copy_from_slice(&digest[8..16]);
        PersonKey {
            route: u64::from_be_bytes(r),
            check: u64::from_be_bytes(c),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn f7_lowercase_and_spaces_are_the_same_person() {
        let a = IdentityNumber::parse("52010119900101123X").unwrap();
        let b = IdentityNumber::parse(" 520101 1990-0101 123x ").unwrap();
        assert_eq!(a, b);
        assert_eq!(PersonKey::derive(b"k", &a), PersonKey::derive(b"k", &b));
    }

    #[test]
    fn keyed_hash_depends_on_key() {
        let a = IdentityNumber::parse("52010119900101123X").unwrap();
        assert_ne!(PersonKey::derive(b"k1", &a), PersonKey::derive(b"k2", &a));
    }

    #[test]
    fn refuses_bad_input() {
        assert_eq!(IdentityNumber::parse("12"), Err(IdentityError::Length(2)));
        assert_eq!(
            IdentityNumber::parse("1234567é"),
            Err(IdentityError::Character('é'))
        );
        assert!(IdentityNumber::parse(&"1".repeat(33)).is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_is_idempotent(s in "\\PC{0,40}") {
            if let Ok(id) = IdentityNumber::parse(&s) {
                let again = IdentityNumber::parse(id.as_str()).unwrap();
                prop_assert_eq!(again, id);
            }
        }
    }
}
