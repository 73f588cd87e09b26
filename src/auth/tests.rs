//! Tests of room tokens and the signing secret.

use super::*;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const T0: u64 = 1_764_400_000;
const SKEW: Duration = Duration::from_secs(30);

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn room(s: &str) -> RoomId {
    RoomId::new(s).expect("valid room id")
}

fn request() -> MintRequest {
    MintRequest {
        room: room("math-101"),
        role: Role::Classroom,
        name: "Dongshan Primary 3-2".to_owned(),
        classroom: Some(ClassroomId::new("ds-3-2").expect("valid classroom id")),
        mode: Some(ketang_sfu::LessonMode::Dedicated),
        not_before: None,
        ttl: Duration::from_secs(7200),
    }
}

fn mint_at(auth: &TokenAuthority, req: &MintRequest, now: u64) -> String {
    auth.mint(req, at(now)).expect("mint")
}

#[test]
fn minted_tokens_verify_with_all_claims() {
    let auth = TokenAuthority::new(SECRET, SKEW);
    let token = mint_at(&auth, &request(), T0);
    let c = auth
        .verify(&token, Some(&room("math-101")), at(T0 + 60))
        .expect("valid");
    assert_eq!(c.room, room("math-101"));
    assert_eq!(c.role, Role::Classroom);
    assert_eq!(c.name, "Dongshan Primary 3-2");
    assert_eq!(
        c.classroom.as_ref().map(ClassroomId::as_str),
        Some("ds-3-2")
    );
    assert_eq!(c.mode, Some(ketang_sfu::LessonMode::Dedicated));
    assert_eq!((c.iat, c.nbf, c.exp), (T0, T0, T0 + 7200));
    assert_eq!(c.jti.len(), 32);
    assert!(c.jti.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(
        c.jti,
        auth.verify(&mint_at(&auth, &request(), T0), None, at(T0))
            .expect("valid")
            .jti
    );
}

#[test]
fn a_token_without_classroom_omits_the_claim() {
    let auth = TokenAuthority::new(SECRET, SKEW);
    let req = MintRequest {
        classroom: None,
        role: Role::Teacher,
        ..request()
    };
    let token = mint_at(&auth, &req, T0);
    let payload = token
        .split('.')
        .nth(1)
        .and_then(base64url_decode)
        .expect("payload");
    let json: serde_json::Value = serde_json::from_slice(&payload).expect("json");
    assert!(json.get("classroom").is_none(), "{json}");
    assert_eq!(json["role"], "teacher");
    assert_eq!(
        auth.verify(&token, None, at(T0)).expect("valid").classroom,
        None
    );
}

#[test]
fn expiry_and_not_before_allow_the_clock_skew_and_no_more() {
    let auth = TokenAuthority::new(SECRET, SKEW);
    let req = MintRequest {
        not_before: Some(at(T0 + 1000)),
        ..request()
    };
    let token = mint_at(&auth, &req, T0);
    let exp = T0 + 1000 + 7200;
    assert_eq!(
        auth.verify(&token, None, at(T0 + 1000 - 31)),
        Err(TokenError::NotYetValid {
            valid_from: T0 + 1000
        })
    );
    assert!(auth.verify(&token, None, at(T0 + 1000 - 30)).is_ok());
    assert!(auth.verify(&token, None, at(exp + 30)).is_ok());
    let err = auth.verify(&token, None, at(exp + 31)).unwrap_err();
    assert_eq!(err, TokenError::Expired { expired_at: exp });
    assert_eq!(err.code(), "tokenExpired");
    assert_eq!(
        err.to_string(),
        "the room link expired at 2025-11-29 09:23:20 UTC"
    );
}

#[test]
fn a_token_signed_with_another_secret_is_invalid() {
    let other = TokenAuthority::new(b"another-secret-another-secret-xx", SKEW);
    let token = mint_at(&other, &request(), T0);
    let err = TokenAuthority::new(SECRET, SKEW)
        .verify(&token, None, at(T0))
        .unwrap_err();
    assert_eq!(err, TokenError::Invalid);
    assert_eq!(err.code(), "tokenInvalid");
}

#[test]
fn a_tampered_payload_is_invalid() {
    let auth = TokenAuthority::new(SECRET, SKEW);
    let classroom = mint_at(&auth, &request(), T0);
    let teacher = mint_at(
        &auth,
        &MintRequest {
            role: Role::Teacher,
            ..request()
        },
        T0,
    );
    // A classroom promoting itself: the teacher payload under the classroom signature.
    let c: Vec<&str> = classroom.split('.').collect();
    let t: Vec<&str> = teacher.split('.').collect();
    let forged = format!("{}.{}.{}", c[0], t[1], c[2]);
    assert_eq!(auth.verify(&forged, None, at(T0)), Err(TokenError::Invalid));
}

#[test]
fn only_hs256_is_accepted() {
    let auth = TokenAuthority::new(SECRET, SKEW);
    let token = mint_at(&auth, &request(), T0);
    let payload = token.split('.').nth(1).expect("payload");
    // base64url of {"alg":"none","typ":"JWT"}
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    assert_eq!(auth.verify(&none, None, at(T0)), Err(TokenError::Invalid));
    let key = EncodingKey::from_secret(SECRET).expect("key");
    let claims = auth.verify(&token, None, at(T0)).expect("valid");
    let hs512 = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &key);
    let hs512 = hs512.expect("sign");
    assert_eq!(auth.verify(&hs512, None, at(T0)), Err(TokenError::Invalid));
}

#[test]
fn garbage_and_bad_claims_are_malformed() {
    let auth = TokenAuthority::new(SECRET, SKEW);
    for garbage in ["hello", "a.b.c", "a.b", "a.b.c.d", "eyJ.eyJ.x"] {
        let err = auth.verify(garbage, None, at(T0)).unwrap_err();
        assert_eq!(err.code(), "tokenMalformed", "{garbage}: {err}");
    }
    assert_eq!(auth.verify("  ", None, at(T0)), Err(TokenError::Missing));
    // Correctly signed but with a room id outside the allowed alphabet.
    let key = EncodingKey::from_secret(SECRET).expect("key");
    let claims = serde_json::json!({"room":"../etc","role":"teacher","name":"x",
        "nbf":T0,"exp":T0+10,"iat":T0,"jti":"a"});
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("sign");
    let err = auth.verify(&token, None, at(T0)).unwrap_err();
    assert_eq!(err.code(), "tokenMalformed", "{err}");
}

#[test]
fn a_token_for_another_room_is_refused() {
    let auth = TokenAuthority::new(SECRET, SKEW);
    let token = mint_at(&auth, &request(), T0);
    let err = auth
        .verify(&token, Some(&room("art-5")), at(T0))
        .unwrap_err();
    assert_eq!(
        err,
        TokenError::WrongRoom {
            token_room: room("math-101")
        }
    );
    assert_eq!(err.code(), "tokenWrongRoom");
}

#[test]
fn bad_names_and_ttls_are_refused_at_mint() {
    let auth = TokenAuthority::new(SECRET, SKEW);
    for name in [
        "",
        "   ",
        "tab\there",
        &"x".repeat(65),
        "evil\u{202E}gnp.exe",
        "Li\u{200B}Wei",
    ] {
        let req = MintRequest {
            name: name.to_owned(),
            ..request()
        };
        assert!(
            matches!(auth.mint(&req, at(T0)), Err(MintError::InvalidName(_))),
            "{name:?}"
        );
    }
    let req = MintRequest {
        name: "数".repeat(64),
        ..request()
    };
    assert!(
        auth.mint(&req, at(T0)).is_ok(),
        "64 characters is the limit, not 64 bytes"
    );
    let req = MintRequest {
        ttl: Duration::ZERO,
        ..request()
    };
    assert_eq!(auth.mint(&req, at(T0)), Err(MintError::ZeroTtl));
    let empty = TokenAuthority::new(b"", SKEW);
    assert!(matches!(
        empty.mint(&request(), at(T0)),
        Err(MintError::Signing(_))
    ));
}

#[test]
fn secret_file_is_created_once_private_and_reused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("nested/data");
    let first = load_or_create_secret(None, &data).expect("create");
    assert_eq!(first.len(), 32);
    let path = secret_path(&data);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(load_or_create_secret(None, &data).expect("reuse"), first);
    let leftovers = std::fs::read_dir(&data).expect("list").count();
    assert_eq!(leftovers, 1, "temporary files must be cleaned up");
    // Pasting the file into the config yields the same key.
    let text = std::fs::read_to_string(&path).expect("read");
    assert_eq!(
        load_or_create_secret(Some(&text), dir.path()).expect("cfg"),
        first
    );
}

#[test]
fn concurrent_first_starts_agree_on_one_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_owned();
    let secrets: Vec<Vec<u8>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| load_or_create_secret(None, &data)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread").expect("secret"))
            .collect()
    });
    assert!(secrets.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn short_secrets_are_refused_with_their_origin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = load_or_create_secret(Some("short"), dir.path()).unwrap_err();
    assert!(err.to_string().starts_with("auth.secret:"), "{err}");
    std::fs::write(secret_path(dir.path()), "abcd\n").expect("write");
    let err = load_or_create_secret(None, dir.path()).unwrap_err();
    assert!(err.to_string().contains(SECRET_FILE), "{err}");
    let raw = "a raw secret that is long enough!";
    assert_eq!(
        load_or_create_secret(Some(raw), dir.path()).expect("raw"),
        raw.as_bytes()
    );
}

#[test]
fn lesson_tokens_carry_the_occurrence_and_link_version() {
    let auth = TokenAuthority::new(SECRET, SKEW);
    let binding = LessonBinding {
        occurrence: "occ_01jd8x0000000000000000000a".to_owned(),
        link_version: 3,
    };
    let token = auth
        .mint_lesson(&request(), &binding, at(T0))
        .expect("mint");
    let payload = token
        .split('.')
        .nth(1)
        .and_then(base64url_decode)
        .expect("payload");
    let json: serde_json::Value = serde_json::from_slice(&payload).expect("json");
    assert_eq!(json["lesson"], "occ_01jd8x0000000000000000000a");
    assert_eq!(json["lv"], 3);
    let c = auth.verify(&token, None, at(T0)).expect("valid");
    assert_eq!(c.lesson.as_deref(), Some("occ_01jd8x0000000000000000000a"));
    assert_eq!(c.lv, Some(3));
}

#[test]
fn plain_tokens_have_no_lesson_claims_and_old_tokens_still_verify() {
    let auth = TokenAuthority::new(SECRET, SKEW);
    let token = mint_at(&auth, &request(), T0);
    let payload = token
        .split('.')
        .nth(1)
        .and_then(base64url_decode)
        .expect("payload");
    let json: serde_json::Value = serde_json::from_slice(&payload).expect("json");
    assert!(
        json.get("lesson").is_none() && json.get("lv").is_none(),
        "{json}"
    );
    // A token minted before these claims existed (no lesson, no lv) still verifies.
    let key = EncodingKey::from_secret(SECRET).expect("key");
    let claims = serde_json::json!({"room":"math-101","role":"viewer","name":"x",
        "nbf":T0,"exp":T0+10,"iat":T0,"jti":"a"});
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("sign");
    let c = auth.verify(&token, None, at(T0)).expect("valid");
    assert_eq!((c.lesson, c.lv), (None, None));
    // A mistyped link version is a malformed token, not a silently ignored claim.
    let claims = serde_json::json!({"room":"math-101","role":"viewer","name":"x",
        "nbf":T0,"exp":T0+10,"iat":T0,"jti":"a","lesson":"occ_x","lv":"two"});
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).expect("sign");
    assert_eq!(
        auth.verify(&token, None, at(T0)).unwrap_err().code(),
        "tokenMalformed"
    );
}

#[test]
fn schedule_refusals_have_their_protocol_codes() {
    assert_eq!(TokenError::Revoked.code(), "tokenRevoked");
    assert_eq!(TokenError::LessonEnded.code(), "lessonEnded");
    assert_eq!(TokenError::LessonCancelled.code(), "lessonCancelled");
    assert_eq!(TokenError::Unavailable.code(), "scheduleUnavailable");
    assert!(TokenError::Revoked.to_string().contains("newer"));
}

fn signed(claims: &serde_json::Value) -> String {
    let key = EncodingKey::from_secret(SECRET).expect("key");
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key).expect("sign")
}

#[test]
fn a_token_longer_than_the_maximum_lifetime_is_refused_at_mint_and_at_entry() {
    let auth = TokenAuthority::new(SECRET, SKEW);
    let week = MAX_TOKEN_LIFETIME;
    let long = MintRequest {
        ttl: week + Duration::from_secs(1),
        ..request()
    };
    assert_eq!(auth.mint(&long, at(T0)), Err(MintError::TooLong));
    let longest = MintRequest {
        ttl: week,
        ..request()
    };
    assert!(auth.mint(&longest, at(T0)).is_ok());
    // A token signed with the secret but valid for ten years (as one minted before the cap,
    // or by a tool that ignored it) opens nothing.
    let ten_years = signed(
        &serde_json::json!({"room":"math-101","role":"teacher","name":"x",
        "nbf":T0,"exp":T0 + 10 * 365 * 86_400,"iat":T0,"jti":"a","aud":ROOM_AUDIENCE}),
    );
    let e = auth.verify(&ten_years, None, at(T0)).unwrap_err();
    assert_eq!(e.code(), "tokenMalformed", "{e}");
    assert!(e.to_string().contains("7 days"), "{e}");
}

#[test]
fn room_tokens_carry_their_audience_and_others_are_refused() {
    let auth = TokenAuthority::new(SECRET, SKEW);
    let c = auth
        .verify(&mint_at(&auth, &request(), T0), None, at(T0))
        .expect("valid");
    assert_eq!(c.aud.as_deref(), Some(ROOM_AUDIENCE));
    let base = serde_json::json!({"room":"math-101","role":"teacher","name":"x",
        "nbf":T0,"exp":T0 + 60,"iat":T0,"jti":"a"});
    for aud in [
        serde_json::json!("ketang-library"),
        serde_json::json!("some-other-service"),
        serde_json::json!(["ketang-library"]),
    ] {
        let mut claims = base.clone();
        claims["aud"] = aud.clone();
        let e = auth.verify(&signed(&claims), None, at(T0)).unwrap_err();
        assert!(
            matches!(e.code(), "tokenInvalid" | "tokenMalformed"),
            "aud {aud}: {e}"
        );
    }
    // Tokens minted before `aud` existed still open their room within their validity.
    assert!(auth.verify(&signed(&base), None, at(T0)).is_ok());
}
