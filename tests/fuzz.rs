//! Property tests on untrusted input (issue 13, fuzzing on stable): the signaling message
//! decoder and the room-token parser. A short budget each in the normal test run;
//! `KETANG_FUZZ_SECS=3600 cargo test -p ketang --test fuzz` runs each for that long.

use std::time::{Duration, SystemTime};

use arbtest::arbitrary::{self, Unstructured};
use ketang::auth::{MintRequest, TokenAuthority};
use ketang::signaling::protocol::{ClientMsg, message_type};
use ketang_sfu::{Role, RoomId};

fn budget_ms() -> u64 {
    std::env::var("KETANG_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(300, |s| s * 1000)
}

/// JSON-shaped text: known message types and fields in odd combinations, plus noise.
fn message_like(u: &mut Unstructured) -> arbitrary::Result<String> {
    const TYPES: &[&str] = &[
        "offer",
        "answer",
        "leave",
        "ping",
        "getStats",
        "raiseHand",
        "callOn",
        "mute",
        "chat",
        "ask",
        "settleQuestion",
        "remove",
        "readmit",
        "note",
        "startRecording",
        "x",
    ];
    const FIELDS: &[&str] = &[
        "\"sdp\":\"v=0\"",
        "\"peerId\":1",
        "\"peerId\":-1",
        "\"peerId\":1e99",
        "\"text\":\"hi\"",
        "\"tracks\":[]",
        "\"tracks\":[{\"mid\":\"0\",\"source\":\"screen\"}]",
        "\"mic\":true",
        "\"id\":18446744073709551615",
        "\"answered\":null",
        "\"fresh\":1",
        "\"replace\":false",
    ];
    if u.ratio(1, 4)? {
        return u.arbitrary();
    }
    let mut s = format!("{{\"type\":\"{}\"", u.choose(TYPES)?);
    for _ in 0..u.int_in_range(0..=4)? {
        s.push(',');
        s.push_str(u.choose(FIELDS)?);
    }
    if u.arbitrary()? {
        s.push('}');
    }
    Ok(s)
}

#[test]
fn fuzz_the_signaling_decoder_never_panics() {
    let cases = std::cell::Cell::new(0u64);
    arbtest::arbtest(|u| {
        cases.set(cases.get() + 1);
        let text = message_like(u)?;
        let decoded = serde_json::from_str::<ClientMsg>(&text);
        let typ = message_type(&text);
        if decoded.is_ok() {
            assert!(typ.is_some(), "a valid message has a type: {text}");
        }
        Ok(())
    })
    .budget_ms(budget_ms());
    eprintln!("{} cases in {} ms", cases.get(), budget_ms());
}

#[test]
fn fuzz_the_token_parser_refuses_every_altered_token() {
    let secret = [7u8; 32];
    let auth = TokenAuthority::new(&secret, Duration::from_secs(30));
    let now = SystemTime::now();
    let req = MintRequest {
        room: RoomId::new("math").unwrap(),
        role: Role::Classroom,
        name: "Class 1".into(),
        classroom: None,
        mode: None,
        not_before: Some(now),
        ttl: Duration::from_secs(3600),
    };
    let token = auth.mint(&req, now).unwrap();
    let cases = std::cell::Cell::new(0u64);
    arbtest::arbtest(|u| {
        cases.set(cases.get() + 1);
        // Noise, or the real token with a few bytes changed, cut or extended.
        let candidate = if u.ratio(1, 3)? {
            u.arbitrary::<String>()?
        } else {
            let mut bytes = token.clone().into_bytes();
            for _ in 0..u.int_in_range(1..=4)? {
                let i = u.choose_index(bytes.len())?;
                match u.int_in_range(0..=2)? {
                    0 => bytes[i] = u.arbitrary()?,
                    1 => bytes.truncate(i),
                    _ => bytes.insert(i, u.arbitrary()?),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let verdict = auth.verify(&candidate, None, now);
        if candidate != token {
            // The JWT's base64url may decode the same after an edit of trailing bits; anything
            // accepted must then carry exactly the minted claims.
            if let Ok(c) = verdict {
                assert_eq!(c.name, "Class 1");
                assert_eq!(c.room.as_str(), "math");
            }
        } else {
            assert!(verdict.is_ok());
        }
        Ok(())
    })
    .budget_ms(budget_ms());
    eprintln!("{} cases in {} ms", cases.get(), budget_ms());
}
