//! Self-routing, tamper-evident coupon codes.
//!
//! A code carries its owner's routing key (which selects the shard), the coupon's
//! number inside that person's wallet, and a MAC over both. A POS request therefore
//! goes straight to the owning shard, and a forged or mistyped code is refused in the
//! gateway before any lookup.

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// Bytes of MAC in a code: a random guess is accepted with probability 2^-40.
const MAC_BYTES: usize = 5;
/// Raw length: 8 bytes route + 4 bytes serial + MAC.
const RAW_BYTES: usize = 8 + 4 + MAC_BYTES;
/// Length of the canonical text form (base32 without padding).
pub const CODE_CHARS: usize = (RAW_BYTES * 8).div_ceil(5);

/// A verified coupon code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CouponCode {
    /// Owner's routing key ([`crate::domain::PersonKey::route`]).
    pub route: u64,
    /// The coupon's serial inside the owner's wallet (1-based).
    pub serial: u32,
}

/// Why a string is not a valid coupon code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    /// Not base32 of the right length: most likely mistyped.
    #[error("coupon code must be {CODE_CHARS} characters of A-Z and 2-7")]
    Malformed,
    /// Well-formed but the MAC does not match: forged or altered.
    #[error("coupon code failed its integrity check")]
    Forged,
}

fn mac(key: &[u8], body: &[u8]) -> [u8; MAC_BYTES] {
    let mut out = [0u8; MAC_BYTES];
    if let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) {
        m.update(body);
        out.copy_from_slice(&m.finalize().into_bytes()[..MAC_BYTES]);
    }
    out
}

impl CouponCode {
    /// The canonical text of this code under `key`.
    pub fn encode(&self, key: &[u8]) -> String {
        let mut raw = [0u8; RAW_BYTES];
        raw[..8].copy_from_slice(&self.route.to_be_bytes());
        raw[8..12].copy_from_slice(&self.serial.to_be_bytes());
        let tag = mac(key, &raw[..12]);
        raw[12..].copy_from_slice(&tag);
        BASE32_NOPAD.encode(&raw)
    }

    /// Parses and verifies a code typed or scanned at a till: case and separators
    /// (spaces, '-') are forgiven, anything else is refused.
    pub fn parse(text: &str, key: &[u8]) -> Result<CouponCode, CodeError> {
        if text.len() > CODE_CHARS * 2 {
            return Err(CodeError::Malformed);
        }
        let canon: String = text
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if canon.len() != CODE_CHARS {
            return Err(CodeError::Malformed);
        }
        let raw = BASE32_NOPAD
            .decode(canon.as_bytes())
            .map_err(|_| CodeError::Malformed)?;
        if raw.len() != RAW_BYTES {
            return Err(CodeError::Malformed);
        }
        let expected = mac(key, &raw[..12]);
        // Constant-time enough for a 5-byte tag: compare all bytes regardless.
        let diff = expected
            .iter()
            .zip(&raw[12..])
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(CodeError::Forged);
        }
        let mut r = [0u8; 8];
        r.copy_from_slice(&raw[..8]);
        let mut s = [0u8; 4];
        s.copy_from_slice(&raw[8..12]);
        Ok(CouponCode {
            route: u64::from_be_bytes(r),
            serial: u32::from_be_bytes(s),
        })
    }
}

impl fmt::Display for CouponCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}/{}", self.route, self.serial)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn roundtrip_and_forgiving_input() {
        let c = CouponCode {
            route: 0xdead_beef_0102_0304,
            serial: 7,
        };
        let text = c.encode(b"secret");
        assert_eq!(text.len(), CODE_CHARS);
        assert_eq!(CouponCode::parse(&text, b"secret"), Ok(c));
        let spaced = format!("{} {}", &text[..5], text[5..].to_lowercase());
        assert_eq!(CouponCode::parse(&spaced, b"secret"), Ok(c));
    }

    #[test]
    fn other_key_or_flipped_char_is_refused() {
        let text = CouponCode {
            route: 42,
            serial: 1,
        }
        .encode(b"secret");
        assert_eq!(CouponCode::parse(&text, b"other"), Err(CodeError::Forged));
        let mut chars: Vec<char> = text.chars().collect();
        chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
        let flipped: String = chars.into_iter().collect();
        assert!(CouponCode::parse(&flipped, b"secret").is_err());
        assert_eq!(
            CouponCode::parse("short", b"secret"),
            Err(CodeError::Malformed)
        );
    }

    proptest! {
        #[test]
        fn any_text_parses_or_errors_without_panic(s in "\\PC{0,80}") {
            let _ = CouponCode::parse(&s, b"k");
        }

        #[test]
        fn every_code_roundtrips(route in any::<u64>(), serial in any::<u32>()) {
            let c = CouponCode { route, serial };
            prop_assert_eq!(CouponCode::parse(&c.encode(b"k"), b"k"), Ok(c));
        }
    }
}
