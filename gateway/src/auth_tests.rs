use super::*;
use axum::http::{HeaderValue, StatusCode};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
/// 2025-06-01T12:00:00Z in ms.
const NOW_MS: i64 = 1_748_779_200_000;

fn claims(role: Role, sub: &str, mer: Option<&str>) -> TokenClaims {
    TokenClaims {
        role,
        sub: sub.into(),
        mer: mer.map(Into::into),
        exp: NOW_MS / 1_000 + 60,
    }
}

#[test]
fn mint_then_verify_roundtrips() {
    for c in [
        claims(Role::Manager, "ops", None),
        claims(Role::Resident, "r-1", None),
        claims(Role::Terminal, "t-1", Some("m-1")),
    ] {
        let token = mint(KEY, &c);
        assert!(!token.contains('='), "no padding: {token}");
        assert_eq!(token.matches('.').count(), 1);
        assert_eq!(verify(KEY, &token, NOW_MS), Ok(c));
    }
}

#[test]
fn wire_format_matches_the_contract() {
    let token = mint(KEY, &claims(Role::Terminal, "t-1", Some("m-1")));
    let (payload, signature) = token.split_once('.').unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&BASE64URL_NOPAD.decode(payload.as_bytes()).unwrap()).unwrap();
    assert_eq!(json["role"], "terminal");
    assert_eq!(json["sub"], "t-1");
    assert_eq!(json["mer"], "m-1");
    assert_eq!(json["exp"], NOW_MS / 1_000 + 60);
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).unwrap();
    mac.update(payload.as_bytes());
    assert_eq!(
        BASE64URL_NOPAD.decode(signature.as_bytes()).unwrap(),
        mac.finalize().into_bytes().to_vec()
    );
    let manager = mint(KEY, &claims(Role::Manager, "ops", None));
    let payload = BASE64URL_NOPAD
        .decode(manager.split_once('.').unwrap().0.as_bytes())
        .unwrap();
    assert!(
        !String::from_utf8(payload).unwrap().contains("mer"),
        "no mer outside terminals"
    );
}

#[test]
fn expired_tokens_are_refused_from_exp_on() {
    let c = claims(Role::Manager, "ops", None);
    let token = mint(KEY, &c);
    assert!(verify(KEY, &token, c.exp * 1_000 - 1).is_ok());
    assert_eq!(verify(KEY, &token, c.exp * 1_000), Err(AuthError::Expired));
}

#[test]
fn forged_tokens_are_refused() {
    let token = mint(KEY, &claims(Role::Resident, "r-1", None));
    assert_eq!(
        verify(b"another key", &token, NOW_MS),
        Err(AuthError::Forged)
    );
    // A payload promoted to manager keeps the old signature: refused.
    let (_, signature) = token.split_once('.').unwrap();
    let promoted =
        BASE64URL_NOPAD.encode(&serde_json::to_vec(&claims(Role::Manager, "r-1", None)).unwrap());
    assert_eq!(
        verify(KEY, &format!("{promoted}.{signature}"), NOW_MS),
        Err(AuthError::Forged)
    );
    // A truncated signature.
    let (payload, signature) = token.split_once('.').unwrap();
    let short =
        BASE64URL_NOPAD.encode(&BASE64URL_NOPAD.decode(signature.as_bytes()).unwrap()[..16]);
    assert_eq!(
        verify(KEY, &format!("{payload}.{short}"), NOW_MS),
        Err(AuthError::Forged)
    );
}

#[test]
fn malformed_tokens_are_refused() {
    for bad in [
        "",
        "abc",
        "a.b.c",
        "!!!.???",
        &"x".repeat(TOKEN_BYTES_MAX + 1),
    ] {
        assert!(verify(KEY, bad, NOW_MS).is_err(), "{bad:?}");
    }
    // Correctly signed but not claims (a terminal without its merchant).
    let raw = BASE64URL_NOPAD.encode(br#"{"role":"terminal","sub":"t-1","exp":9999999999}"#);
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).unwrap();
    mac.update(raw.as_bytes());
    let token = format!(
        "{raw}.{}",
        BASE64URL_NOPAD.encode(&mac.finalize().into_bytes())
    );
    assert_eq!(verify(KEY, &token, NOW_MS), Err(AuthError::Malformed));
}

#[test]
fn bearer_header_parsing() {
    let mut h = HeaderMap::new();
    assert_eq!(bearer(&h), Err(AuthError::Missing));
    h.insert(
        AUTHORIZATION,
        HeaderValue::from_static("Basic dXNlcjpwYXNz"),
    );
    assert_eq!(bearer(&h), Err(AuthError::Missing));
    h.insert(AUTHORIZATION, HeaderValue::from_static("bearer abc.def"));
    assert_eq!(bearer(&h), Ok("abc.def"));
    let e: AppError = AuthError::Expired.into();
    assert_eq!(
        (e.status(), e.reason()),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
}

fn role(c: TokenClaims, resident: bool, bound: bool) -> Result<AnyRole, AppError> {
    AnyRole::from_claims(c, |_| resident, |_, _| bound)
}

fn forbidden<T: std::fmt::Debug>(r: Result<T, AppError>) -> bool {
    r.is_err_and(|e| e.status() == StatusCode::FORBIDDEN && e.reason() == "forbidden")
}

#[test]
fn roles_are_checked_against_the_registry() {
    let resident = claims(Role::Resident, "r-1", None);
    assert_eq!(
        role(resident.clone(), true, false).unwrap(),
        AnyRole::Resident("r-1".into())
    );
    assert!(
        forbidden(role(resident, false, true)),
        "unregistered resident"
    );
    let terminal = claims(Role::Terminal, "t-1", Some("m-1"));
    let bound = AnyRole::Terminal(Terminal {
        merchant: "m-1".into(),
        terminal: "t-1".into(),
    });
    assert_eq!(role(terminal.clone(), false, true).unwrap(), bound);
    assert!(
        forbidden(role(terminal, true, false)),
        "terminal not bound to its merchant"
    );
}

#[test]
fn wrong_role_is_forbidden() {
    let manager = role(claims(Role::Manager, "ops", None), false, false).unwrap();
    let resident = role(claims(Role::Resident, "r-1", None), true, true).unwrap();
    let terminal = role(claims(Role::Terminal, "t-1", Some("m-1")), true, true).unwrap();
    assert!(Manager::try_from(manager.clone()).is_ok());
    assert!(forbidden(Manager::try_from(resident.clone())));
    assert!(forbidden(Manager::try_from(terminal.clone())));
    assert!(forbidden(Resident::try_from(manager.clone())));
    assert!(forbidden(Resident::try_from(terminal.clone())));
    assert!(forbidden(Terminal::try_from(resident.clone())));
    assert!(Terminal::try_from(terminal.clone()).is_ok());
    // Merchant-scoped routes: managers, and only that merchant's terminals.
    assert!(manager.may_act_for_merchant("m-2").is_ok());
    assert!(terminal.may_act_for_merchant("m-1").is_ok());
    assert!(forbidden(terminal.may_act_for_merchant("m-2")));
    assert!(forbidden(resident.may_act_for_merchant("m-1")));
}
