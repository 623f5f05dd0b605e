//! RSA2 keys: the app private key that signs our requests and the Alipay public key that
//! verifies what Alipay sends back.
//!
//! Keys are parsed once, with `rsa` 0.10, from any form Alipay hands out: PKCS#8 or PKCS#1 PEM,
//! SPKI PEM, bare Base64 without a header (the usual form in Alipay's console), and PEM whose body
//! is one long unwrapped line. Signing and verifying then run on aws-lc-rs, or on `rsa`'s own
//! PKCS#1 v1.5 with the `pure-rust` feature; both give the same bytes, RSA PKCS#1 v1.5 being
//! deterministic.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::PublicKeyParts;
use rsa::{PrivateKey, PublicKey};
use secrecy::SecretString;

/// Alipay's RSA2 keys are 2048 bits; aws-lc-rs verifies 2048 to 8192, and both backends must
/// accept the same keys.
const MIN_BITS: usize = 2048;
const MAX_BITS: usize = 8192;

/// Which implementation signs and verifies, for the start-up log: `aws-lc-rs`, or `rsa` with
/// the `pure-rust` feature.
pub const BACKEND: &str = if cfg!(feature = "pure-rust") {
    "rsa"
} else {
    "aws-lc-rs"
};

/// What went wrong reading a key. Never carries key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key text is neither PEM nor Base64 DER")]
    NotPemOrBase64,
    #[error("unsupported PEM label `{0}` (expected an unencrypted RSA key)")]
    UnsupportedPem(String),
    #[error("key is not a valid RSA {0}")]
    Malformed(&'static str),
    #[error("RSA key of {0} bits is outside the accepted 2048-8192")]
    Size(usize),
    #[error("the crypto backend rejected the key")]
    Backend,
    #[error("could not generate a key pair")]
    Generate,
}

/// A signature that does not check out, or is not Base64 at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signature does not verify")]
pub struct BadSignature;

/// Signing failed inside the crypto backend (should not happen with a key that parsed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("signing failed")]
pub struct SignFailed;

/// The app private key (or, in the sandbox, Alipay's own private key): signs with SHA256withRSA.
pub struct Signer {
    key: backend::SigningKey,
    public: PublicKey,
}

impl Signer {
    /// Reads a PKCS#8 or PKCS#1 private key, PEM or bare Base64 DER.
    pub fn from_pem_or_base64(text: &str) -> Result<Signer, KeyError> {
        let key = match decode_key_text(text)? {
            KeyText::Pem { label, der } => match label.as_str() {
                "PRIVATE KEY" => PrivateKey::from_pkcs8_der(&der)
                    .map_err(|_| KeyError::Malformed("PKCS#8 private key"))?,
                "RSA PRIVATE KEY" => PrivateKey::from_pkcs1_der(&der)
                    .map_err(|_| KeyError::Malformed("PKCS#1 private key"))?,
                _ => return Err(KeyError::UnsupportedPem(label)),
            },
            KeyText::Bare(der) => PrivateKey::from_pkcs8_der(&der)
                .or_else(|_| PrivateKey::from_pkcs1_der(&der))
                .map_err(|_| KeyError::Malformed("private key (PKCS#8 or PKCS#1)"))?,
        };
        check_size(key.size())?;
        let public = key.to_public_key();
        Ok(Signer {
            key: backend::SigningKey::new(key)?,
            public,
        })
    }

    /// SHA256withRSA (PKCS#1 v1.5) over `message`, Base64 without line breaks: Alipay's `sign`.
    pub fn sign(&self, message: &[u8]) -> Result<String, SignFailed> {
        Ok(BASE64.encode(self.key.sign(message)?))
    }

    /// The matching public key as SPKI PEM: what the other side configures to verify us.
    pub fn public_key_pem(&self) -> String {
        spki_pem(&self.public)
    }

    /// A verifier for this key's own signatures (the sandbox checks round trips with it).
    pub fn verifier(&self) -> Result<Verifier, KeyError> {
        Verifier::from_public_key(self.public.clone())
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer([redacted])")
    }
}

/// An RSA public key (Alipay's, or an app's in the sandbox): verifies SHA256withRSA signatures.
pub struct Verifier {
    key: backend::VerifyingKey,
    public: PublicKey,
}

impl Verifier {
    /// Reads an SPKI or PKCS#1 public key: PEM (wrapped or one long line) or bare Base64 DER.
    pub fn from_pem_or_base64(text: &str) -> Result<Verifier, KeyError> {
        let key = match decode_key_text(text)? {
            KeyText::Pem { label, der } => match label.as_str() {
                "PUBLIC KEY" => PublicKey::from_public_key_der(&der)
                    .map_err(|_| KeyError::Malformed("SPKI public key"))?,
                "RSA PUBLIC KEY" => PublicKey::from_pkcs1_der(&der)
                    .map_err(|_| KeyError::Malformed("PKCS#1 public key"))?,
                _ => return Err(KeyError::UnsupportedPem(label)),
            },
            KeyText::Bare(der) => PublicKey::from_public_key_der(&der)
                .or_else(|_| PublicKey::from_pkcs1_der(&der))
                .map_err(|_| KeyError::Malformed("public key (SPKI or PKCS#1)"))?,
        };
        Verifier::from_public_key(key)
    }

    fn from_public_key(public: PublicKey) -> Result<Verifier, KeyError> {
        check_size(public.size())?;
        Ok(Verifier {
            key: backend::VerifyingKey::new(&public)?,
            public,
        })
    }

    /// Checks a Base64 `sign` over `message` (SHA256withRSA, PKCS#1 v1.5).
    pub fn verify(&self, message: &[u8], signature_base64: &str) -> Result<(), BadSignature> {
        let signature = BASE64
            .decode(signature_base64.as_bytes())
            .map_err(|_| BadSignature)?;
        self.key.verify(message, &signature)
    }

    /// The key as SPKI PEM.
    pub fn public_key_pem(&self) -> String {
        spki_pem(&self.public)
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Verifier([redacted])")
    }
}

/// A new 2048-bit key pair: (PKCS#8 private key PEM, SPKI public key PEM), for
/// `paygate keys generate` and the sandbox. The private half stays secret: write it to a file,
/// never log it.
pub fn generate_key_pair() -> Result<(SecretString, String), KeyError> {
    let key = PrivateKey::new(&mut getrandom::SysRng, MIN_BITS).map_err(|_| KeyError::Generate)?;
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|_| KeyError::Generate)?;
    let public_pem = spki_pem(&key.to_public_key());
    Ok((SecretString::from(private_pem.as_str()), public_pem))
}

fn spki_pem(public: &PublicKey) -> String {
    // Encoding a key that parsed cannot fail; an empty string would show up at once in use.
    public.to_public_key_pem(LineEnding::LF).unwrap_or_default()
}

fn check_size(bytes: usize) -> Result<(), KeyError> {
    let bits = bytes * 8;
    if (MIN_BITS..=MAX_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(KeyError::Size(bits))
    }
}

enum KeyText {
    Pem { label: String, der: Vec<u8> },
    Bare(Vec<u8>),
}

/// PEM with any line layout (wrapped at 64, one long line, CRLF, all on one line), or bare
/// Base64. Written by hand because strict RFC 7468 readers refuse Alipay's unwrapped lines.
fn decode_key_text(text: &str) -> Result<KeyText, KeyError> {
    let text = text.trim();
    let Some(after_begin) = text.strip_prefix("-----BEGIN ") else {
        let der = decode_base64_ignoring_whitespace(text)?;
        return Ok(KeyText::Bare(der));
    };
    let (label, rest) = after_begin
        .split_once("-----")
        .ok_or(KeyError::NotPemOrBase64)?;
    let end_marker = format!("-----END {label}-----");
    let (body, _) = rest
        .split_once(&end_marker)
        .ok_or(KeyError::NotPemOrBase64)?;
    // Encrypted legacy PEM carries "Proc-Type:" headers; we take unencrypted keys only.
    if body.contains(':') {
        return Err(KeyError::UnsupportedPem(format!("{label} with headers")));
    }
    let der = decode_base64_ignoring_whitespace(body)?;
    Ok(KeyText::Pem {
        label: label.to_owned(),
        der,
    })
}

fn decode_base64_ignoring_whitespace(text: &str) -> Result<Vec<u8>, KeyError> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    if compact.is_empty() {
        return Err(KeyError::NotPemOrBase64);
    }
    BASE64
        .decode(compact.as_bytes())
        .map_err(|_| KeyError::NotPemOrBase64)
}

#[cfg(not(feature = "pure-rust"))]
mod backend {
    //! aws-lc-rs: about ten times faster than `rsa` for signing (see the design's measurements).

    use aws_lc_rs::rsa::KeyPair;
    use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256};
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
    use rsa::{PrivateKey, PublicKey};

    use super::{BadSignature, KeyError, SignFailed};

    pub(super) struct SigningKey(KeyPair);

    impl SigningKey {
        pub(super) fn new(key: PrivateKey) -> Result<Self, KeyError> {
            // Hand aws-lc-rs the key already parsed by `rsa`, re-encoded as PKCS#8 DER, once.
            let der = key.to_pkcs8_der().map_err(|_| KeyError::Backend)?;
            let pair = KeyPair::from_pkcs8(der.as_bytes()).map_err(|_| KeyError::Backend)?;
            Ok(SigningKey(pair))
        }

        pub(super) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignFailed> {
            let mut signature = vec![0; self.0.public_modulus_len()];
            // aws-lc-rs ignores the RNG argument for PKCS#1 v1.5; it is there for ring's API.
            let rng = aws_lc_rs::rand::SystemRandom::new();
            self.0
                .sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                .map_err(|_| SignFailed)?;
            Ok(signature)
        }
    }

    pub(super) struct VerifyingKey(ParsedPublicKey);

    impl VerifyingKey {
        pub(super) fn new(key: &PublicKey) -> Result<Self, KeyError> {
            let der = key.to_public_key_der().map_err(|_| KeyError::Backend)?;
            let parsed = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der.as_bytes())
                .map_err(|_| KeyError::Backend)?;
            Ok(VerifyingKey(parsed))
        }

        pub(super) fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), BadSignature> {
            self.0
                .verify_sig(message, signature)
                .map_err(|_| BadSignature)
        }
    }
}

#[cfg(feature = "pure-rust")]
mod backend {
    //! The `rsa` crate's own PKCS#1 v1.5, for builds that want no C code in the crypto path.

    use rsa::{PrivateKey, PublicKey};
    use sha2::Sha256;

    use super::{BadSignature, KeyError, SignFailed};

    pub(super) struct SigningKey(PrivateKey);

    impl SigningKey {
        pub(super) fn new(key: PrivateKey) -> Result<Self, KeyError> {
            Ok(SigningKey(key))
        }

        pub(super) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignFailed> {
            // Blinded with the OS RNG; blinding does not change the (deterministic) signature.
            self.0
                .pkcs1v15_sign::<Sha256>(message)
                .map_err(|_| SignFailed)
        }
    }

    pub(super) struct VerifyingKey(PublicKey);

    impl VerifyingKey {
        pub(super) fn new(key: &PublicKey) -> Result<Self, KeyError> {
            Ok(VerifyingKey(key.clone()))
        }

        pub(super) fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), BadSignature> {
            self.0
                .pkcs1v15_verify::<Sha256>(message, signature)
                .map_err(|_| BadSignature)
        }
    }
}
