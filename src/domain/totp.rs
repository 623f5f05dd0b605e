//! Time-based one-time passwords (RFC 6238 over RFC 4226's HOTP): HMAC-SHA1, 30-second steps,
//! 6 digits — what every authenticator app reads from an `otpauth://totp/…` address. The
//! console's second factor (DESIGN.md §7 console).

use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretBox};

/// RFC 6238's default step.
pub const STEP_SECONDS: i64 = 30;
const DIGITS: u32 = 6;
/// RFC 4226 §4 asks for at least 128 bits; 160 is what most authenticators expect for SHA-1.
const SECRET_BYTES: usize = 20;

/// A user's shared secret; `Debug` never shows it.
pub struct TotpSecret(SecretBox<Vec<u8>>);

impl TotpSecret {
    pub fn generate() -> TotpSecret {
        let mut bytes = vec![0u8; SECRET_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        TotpSecret(SecretBox::new(Box::new(bytes)))
    }

    /// The stored (base32) form read back.
    pub fn from_base32(text: &str) -> Option<TotpSecret> {
        let bytes = base32_decode(text)?;
        (bytes.len() >= 16).then(|| TotpSecret(SecretBox::new(Box::new(bytes))))
    }

    /// RFC 4648 base32 without padding: how authenticator apps take it.
    pub fn to_base32(&self) -> String {
        base32_encode(self.0.expose_secret())
    }

    /// The `otpauth://` address an authenticator app reads (as a QR code or typed in).
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> String {
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
            enc(issuer),
            enc(account),
            self.to_base32(),
            enc(issuer)
        )
    }

    /// The code of time step `step` (RFC 6238: `floor(unix seconds / 30)`).
    pub fn code_at_step(&self, step: i64) -> u32 {
        hotp(self.0.expose_secret(), step as u64)
    }

    /// The step of `code` within one step either side of `unix_seconds` (RFC 6238 §5.2's
    /// allowance for clock drift and typing time), newest first; `None` when it matches none.
    /// The caller refuses a step at or before the last one it accepted, so a code is used once.
    pub fn matching_step(&self, code: &str, unix_seconds: i64) -> Option<i64> {
        if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let wanted: u32 = code.parse().ok()?;
        let now = unix_seconds.div_euclid(STEP_SECONDS);
        [now + 1, now, now - 1].into_iter().find(|&step| {
            use subtle::ConstantTimeEq;
            bool::from(self.code_at_step(step).ct_eq(&wanted))
        })
    }
}

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret([redacted])")
    }
}

/// The step of a time given in unix seconds.
pub fn step_of(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// RFC 4226 §5.3: HMAC-SHA1 of the 8-byte big-endian counter, dynamically truncated.
fn hotp(key: &[u8], counter: u64) -> u32 {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = (digest[digest.len() - 1] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    bin % 10u32.pow(DIGITS)
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(BASE32[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(BASE32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Upper or lower case, padding and spaces ignored (as people type it from a screen).
fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|&c| c != b'=' && c != b' ') {
        let value = BASE32.iter().position(|&a| a == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_secret() -> TotpSecret {
        TotpSecret(SecretBox::new(Box::new(b"12345678901234567890".to_vec())))
    }

    /// RFC 6238 Appendix B, SHA-1 rows (8 digits there; the last 6 are the 6-digit code, as
    /// both truncate the same 31-bit value).
    #[test]
    fn the_rfc_6238_vectors() {
        let secret = rfc_secret();
        for (time, code8) in [
            (59i64, 94287082u32),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ] {
            assert_eq!(
                secret.code_at_step(step_of(time)),
                code8 % 1_000_000,
                "T={time}"
            );
        }
    }

    /// RFC 4648 §10.
    #[test]
    fn base32_as_rfc_4648_writes_it() {
        for (plain, coded) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32_encode(plain.as_bytes()), coded);
            assert_eq!(base32_decode(coded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base32_decode("mzxw 6ytb oi======").unwrap(), b"foobar");
        assert!(base32_decode("MZ1").is_none());
    }

    #[test]
    fn a_code_matches_its_step_and_the_neighbours_only() {
        let secret = TotpSecret::generate();
        let back = TotpSecret::from_base32(&secret.to_base32()).unwrap();
        let t = 1_800_000_000;
        let code = format!("{:06}", secret.code_at_step(step_of(t)));
        assert_eq!(back.matching_step(&code, t), Some(step_of(t)));
        assert_eq!(back.matching_step(&code, t + 30), Some(step_of(t)));
        assert_eq!(back.matching_step(&code, t - 30), Some(step_of(t)));
        assert_eq!(back.matching_step(&code, t + 90), None);
        for bad in ["", "12345", "1234567", "12a456"] {
            assert_eq!(back.matching_step(bad, t), None);
        }
    }

    #[test]
    fn the_secret_never_shows_in_debug() {
        let secret = TotpSecret::generate();
        assert!(!format!("{secret:?}").contains(&secret.to_base32()));
    }
}
