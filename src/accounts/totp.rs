//! TOTP second factor (RFC 6238): HMAC-SHA-1 over 30-second steps, six digits, one step of
//! drift either way. A code is accepted once: the caller stores the step it matched and passes
//! it back as `last_step`, so a code seen over a shoulder cannot be replayed.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Seconds per step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: u32 = 6;
/// Bytes of a new secret (160 bits, as RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;

/// A new random secret, base32 without padding (what authenticator apps read).
pub fn generate_secret() -> String {
    let bytes: [u8; SECRET_BYTES] = rand::random();
    data_encoding::BASE32_NOPAD.encode(&bytes)
}

/// The code for `secret` at time step `step` (RFC 4226 dynamic truncation).
pub fn code_at(secret: &[u8], step: u64) -> u32 {
    // HMAC accepts keys of any length, so this cannot fail.
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(secret) else {
        return u32::MAX;
    };
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    bin % 10u32.pow(DIGITS)
}

/// If `code` is right for `secret_b32` at `now_secs` (±1 step) and newer than `last_step`,
/// the step it matched.
pub fn check(secret_b32: &str, code: &str, now_secs: u64, last_step: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let wanted: u32 = code.parse().ok()?;
    let secret = data_encoding::BASE32_NOPAD
        .decode(secret_b32.as_bytes())
        .ok()?;
    let now = now_secs / STEP_SECS;
    let mut matched = None;
    // Every candidate is computed, so the time taken does not tell which one matched.
    for step in [now.saturating_sub(1), now, now + 1] {
        if code_at(&secret, step) == wanted && step > last_step {
            matched = Some(step);
        }
    }
    matched
}

/// The `otpauth://` URI authenticator apps import (the QR code's content).
pub fn uri(issuer: &str, account: &str, secret_b32: &str) -> String {
    let label = format!("{}:{}", encode(issuer), encode(account));
    format!(
        "otpauth://totp/{label}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
        encode(issuer)
    )
}

fn encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The URI as an SVG QR code, or `None` if it is too long for one (it never is).
pub fn qr_svg(uri: &str) -> Option<String> {
    let code = qrcode::QrCode::new(uri.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_vectors_truncated_to_six_digits() {
        // RFC 6238 appendix B, SHA-1 seed; the 8-digit codes' last six digits.
        let seed = b"12345678901234567890";
        for (t, code) in [
            (59u64, 287_082u32),
            (1_111_111_109, 81_804),
            (1_111_111_111, 50_471),
            (1_234_567_890, 5_924),
            (2_000_000_000, 279_037),
        ] {
            assert_eq!(code_at(seed, t / STEP_SECS), code, "t={t}");
        }
    }

    #[test]
    fn one_step_of_drift_and_no_replay() {
        let secret = data_encoding::BASE32_NOPAD.encode(b"12345678901234567890");
        let code = |t: u64| format!("{:06}", code_at(b"12345678901234567890", t / STEP_SECS));
        let now = 1_111_111_111;
        let step = now / STEP_SECS;
        assert_eq!(check(&secret, &code(now), now, 0), Some(step));
        assert_eq!(check(&secret, &code(now - 30), now, 0), Some(step - 1));
        assert_eq!(check(&secret, &code(now + 30), now, 0), Some(step + 1));
        assert_eq!(check(&secret, &code(now - 90), now, 0), None);
        assert_eq!(check(&secret, &code(now), now, step), None, "replayed");
        assert_eq!(check(&secret, "12345", now, 0), None);
        assert_eq!(check(&secret, "abcdef", now, 0), None);
    }

    #[test]
    fn uri_and_qr() {
        let u = uri("Ketang", "王 admin", "JBSWY3DPEHPK3PXP");
        assert!(
            u.starts_with("otpauth://totp/Ketang:%E7%8E%8B%20admin?secret=JBSWY3DPEHPK3PXP"),
            "{u}"
        );
        let svg = qr_svg(&u).expect("svg");
        assert!(svg.contains("<svg") && svg.contains("</svg>"));
    }
}
