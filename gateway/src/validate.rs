//! Input checks done before the engine sees a request, so that bad input is a 400 or
//! 422 and never costs a shard round trip (or a 5xx).

use crate::error::AppError;
use axum::http::HeaderMap;
use yunquan_actors::api::Refusal;
use yunquan_actors::domain::campaign::NAME_CHARS_MAX;
use yunquan_actors::domain::{
    valid_id, valid_region, CodeError, CouponCode, FieldError, IdentityNumber,
};

/// Longest idempotency key, in bytes.
pub(crate) const IDEMPOTENCY_KEY_BYTES_MAX: usize = 64;
/// Longest redemption id, in bytes: a coupon code plus a suffix, with room to spare.
pub(crate) const REDEMPTION_ID_BYTES_MAX: usize = 128;
/// Longest coupon code as typed, in bytes (separators included); the parser refuses
/// longer ones too, this just keeps error details short.
const CODE_TEXT_BYTES_MAX: usize = 128;

const ID_RULE: &str = "must be 1-64 printable ASCII characters without spaces or '/'";
const REGION_RULE: &str = "must be 1-32 of a-z, 0-9 and '_'";

pub(crate) fn field_error(field: impl Into<String>, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A 400 unless `value` is an opaque id; `what` names it in the detail.
pub(crate) fn path_id(what: &str, value: &str) -> Result<(), AppError> {
    if valid_id(value) {
        Ok(())
    } else {
        Err(AppError::bad_request(format!("{what} id {ID_RULE}")))
    }
}

/// Records a field error unless `value` is an opaque id.
pub(crate) fn id_field(errors: &mut Vec<FieldError>, field: impl Into<String>, value: &str) {
    if !valid_id(value) {
        errors.push(field_error(field, ID_RULE));
    }
}

/// Records a field error unless `value` is a region code.
pub(crate) fn region_field(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    if !valid_region(value) {
        errors.push(field_error(field, REGION_RULE));
    }
}

/// Records field errors for a display name: present, bounded, no control characters.
pub(crate) fn name_field(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    if value.trim().is_empty() {
        errors.push(field_error(field, "must not be empty"));
    } else if value.chars().count() > NAME_CHARS_MAX {
        errors.push(field_error(
            field,
            format!("at most {NAME_CHARS_MAX} characters"),
        ));
    } else if value.chars().any(char::is_control) {
        errors.push(field_error(field, "must not contain control characters"));
    }
}

/// Records a field error unless `value` parses as an identity number.
pub(crate) fn identity_field(errors: &mut Vec<FieldError>, field: &str, value: &str) {
    if let Err(e) = IdentityNumber::parse(value) {
        errors.push(field_error(field, e.to_string()));
    }
}

/// Verifies a coupon code's MAC and returns its canonical text; 422 `invalid_code`
/// (mistyped) or `forged_code` (MAC mismatch) otherwise, naming the `code` field.
pub(crate) fn coupon_code(code_key: &[u8], text: &str) -> Result<String, AppError> {
    let parsed = if text.len() > CODE_TEXT_BYTES_MAX {
        Err(CodeError::Malformed)
    } else {
        CouponCode::parse(text, code_key)
    };
    let refusal = match parsed {
        Ok(code) => return Ok(code.encode(code_key)),
        Err(CodeError::Forged) => Refusal::ForgedCode,
        Err(CodeError::Malformed) => Refusal::InvalidCode,
    };
    let e = AppError::refused(&refusal);
    let errors = vec![field_error("code", e.detail())];
    Err(AppError::unprocessable(e.reason(), e.detail(), errors))
}

/// The `Idempotency-Key` header, if any: 1-64 printable ASCII characters, else 400.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, AppError> {
    let mut values = headers.get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AppError::bad_request(
            "send at most one Idempotency-Key header",
        ));
    }
    let bytes = value.as_bytes();
    let printable = bytes.iter().all(|b| (0x20..=0x7e).contains(b));
    if bytes.is_empty() || bytes.len() > IDEMPOTENCY_KEY_BYTES_MAX || !printable {
        return Err(AppError::bad_request(format!(
            "Idempotency-Key must be 1-{IDEMPOTENCY_KEY_BYTES_MAX} printable ASCII characters"
        )));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// A 400 unless `value` could be a redemption id (the engine decides whether it is one).
pub(crate) fn redemption_id(value: &str) -> Result<(), AppError> {
    let ok = !value.is_empty()
        && value.len() <= REDEMPTION_ID_BYTES_MAX
        && value.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(())
    } else {
        Err(AppError::bad_request(format!(
            "redemption id must be 1-{REDEMPTION_ID_BYTES_MAX} printable ASCII characters without spaces"
        )))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn idempotency_keys() {
        let mut h = HeaderMap::new();
        assert_eq!(idempotency_key(&h).ok(), Some(None));
        h.insert("idempotency-key", HeaderValue::from_static("abc-123 x"));
        assert_eq!(idempotency_key(&h).ok(), Some(Some("abc-123 x".to_owned())));
        h.insert(
            "idempotency-key",
            HeaderValue::from_str(&"k".repeat(65)).unwrap(),
        );
        assert_eq!(
            idempotency_key(&h).map_err(|e| e.reason()).err(),
            Some("bad_request")
        );
        h.insert(
            "idempotency-key",
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        );
        assert!(idempotency_key(&h).is_err());
    }

    #[test]
    fn coupon_codes() {
        let key = b"code-key";
        let text = CouponCode {
            route: 7,
            serial: 3,
        }
        .encode(key);
        assert_eq!(
            coupon_code(key, &text.to_lowercase()).ok(),
            Some(text.clone())
        );
        assert_eq!(
            coupon_code(b"other", &text).err().map(|e| e.reason()),
            Some("forged_code")
        );
        assert_eq!(
            coupon_code(key, "nope").err().map(|e| e.reason()),
            Some("invalid_code")
        );
        assert_eq!(
            coupon_code(key, &"A".repeat(500)).err().map(|e| e.reason()),
            Some("invalid_code")
        );
    }

    #[test]
    fn ids_and_redemption_ids() {
        assert!(path_id("campaign", "c-1").is_ok());
        assert!(path_id("campaign", "a b").is_err());
        assert!(redemption_id("ABC/1").is_ok());
        assert!(redemption_id("").is_err());
        assert!(redemption_id("a\u{7f}").is_err());
    }
}
