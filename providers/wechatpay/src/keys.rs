//! RSA keys: the merchant API private key that signs our requests ([`Signer`]) and the WeChat Pay
//! platform public key or certificate that verifies what WeChat sends back ([`Verifier`]).
//!
//! Keys are parsed once, with `rsa` 0.10. Signing and verifying then run on aws-lc-rs, or on
//! `rsa`'s own PKCS#1 v1.5 with the `pure-rust` feature; both give the same bytes, RSA PKCS#1 v1.5
//! being deterministic.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
};
use rsa::traits::PublicKeyParts;
use rsa::{PrivateKey, PublicKey};

use crate::der;

/// WeChat Pay keys are RSA-2048; aws-lc-rs verifies 2048 to 8192, and both backends must accept
/// the same keys.
const MIN_BITS: usize = 2048;
const MAX_BITS: usize = 8192;

/// What went wrong reading or making a key. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key text is not PEM")]
    NotPem,
    #[error("unsupported PEM label `{0}`")]
    UnsupportedPem(String),
    #[error("not a valid {0}")]
    Malformed(&'static str),
    #[error("RSA key of {0} bits is outside the accepted 2048-8192")]
    Size(usize),
    #[error("the crypto backend rejected the key")]
    Backend,
    #[error("could not generate a key pair")]
    Generate,
}

/// The merchant API private key (`apiclient_key.pem`), or in the sandbox the platform's own
/// private key: signs with SHA256withRSA (PKCS#1 v1.5).
pub struct Signer {
    key: backend::SigningKey,
    public: PublicKey,
}

impl Signer {
    /// Reads a PKCS#8 (`PRIVATE KEY`) or PKCS#1 (`RSA PRIVATE KEY`) PEM private key.
    pub fn from_pem(text: &str) -> Result<Signer, KeyError> {
        let (label, der) = decode_pem(text)?;
        let key = match label.as_str() {
            "PRIVATE KEY" => PrivateKey::from_pkcs8_der(&der)
                .map_err(|_| KeyError::Malformed("PKCS#8 RSA private key"))?,
            "RSA PRIVATE KEY" => PrivateKey::from_pkcs1_der(&der)
                .map_err(|_| KeyError::Malformed("PKCS#1 RSA private key"))?,
            _ => return Err(KeyError::UnsupportedPem(label)),
        };
        check_size(key.size())?;
        let public = key.to_public_key();
        Ok(Signer {
            key: backend::SigningKey::new(key)?,
            public,
        })
    }

    /// SHA256withRSA over `message`, standard Base64: the `signature` WeChat expects.
    pub fn sign_base64(&self, message: &[u8]) -> String {
        BASE64.encode(self.key.sign(message))
    }

    /// The matching public key as SPKI PEM: what the other side configures to verify us.
    pub fn public_key_pem(&self) -> String {
        spki_pem(&self.public)
    }

    /// A verifier for this key's own signatures.
    pub fn verifier(&self) -> Result<Verifier, KeyError> {
        Verifier::from_public_key(self.public.clone())
    }

    /// The raw SHA256withRSA signature bytes (certificate signatures are DER, not Base64).
    pub(crate) fn sign_raw(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message)
    }

    /// The public key's SubjectPublicKeyInfo DER, as a certificate embeds it.
    pub(crate) fn public_key_der(&self) -> Result<Vec<u8>, KeyError> {
        self.public
            .to_public_key_der()
            .map(|der| der.as_bytes().to_vec())
            .map_err(|_| KeyError::Backend)
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer([redacted])")
    }
}

/// An RSA public key: the WeChat Pay public key (`pub_key.pem`), a platform certificate's key, or
/// in the sandbox the merchant's key. Verifies SHA256withRSA signatures.
pub struct Verifier {
    key: backend::VerifyingKey,
    public: PublicKey,
}

impl Verifier {
    /// Reads an SPKI (`PUBLIC KEY`) or PKCS#1 (`RSA PUBLIC KEY`) PEM public key, or an X.509
    /// `CERTIFICATE` (platform certificate mode), of which the subject public key is taken.
    pub fn from_pem(text: &str) -> Result<Verifier, KeyError> {
        let (label, der) = decode_pem(text)?;
        let key = match label.as_str() {
            "PUBLIC KEY" => PublicKey::from_public_key_der(&der)
                .map_err(|_| KeyError::Malformed("SPKI public key"))?,
            "RSA PUBLIC KEY" => PublicKey::from_pkcs1_der(&der)
                .map_err(|_| KeyError::Malformed("PKCS#1 public key"))?,
            "CERTIFICATE" => {
                let cert = der::Certificate::parse(&der)
                    .ok_or(KeyError::Malformed("X.509 certificate"))?;
                PublicKey::from_public_key_der(cert.spki)
                    .map_err(|_| KeyError::Malformed("certificate public key"))?
            }
            _ => return Err(KeyError::UnsupportedPem(label)),
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

    /// True when `signature_base64` is a valid SHA256withRSA signature of `message`. Anything
    /// that is not Base64 (such as a `WECHATPAY/SIGNTEST/` probe) is simply false.
    pub fn verify_base64(&self, message: &[u8], signature_base64: &str) -> bool {
        match BASE64.decode(signature_base64.as_bytes()) {
            Ok(signature) => self.key.verify(message, &signature),
            Err(_) => false,
        }
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

/// The serial number of a PEM X.509 certificate as upper-case hex, the form WeChat uses in
/// `Wechatpay-Serial` and `/v3/certificates` (`5DEA10EF…`).
pub fn certificate_serial_hex(pem: &str) -> Result<String, KeyError> {
    let (label, der) = decode_pem(pem)?;
    if label != "CERTIFICATE" {
        return Err(KeyError::UnsupportedPem(label));
    }
    let cert = der::Certificate::parse(&der).ok_or(KeyError::Malformed("X.509 certificate"))?;
    // DER integers carry a leading 0x00 when the top bit is set; serials are printed without it.
    let serial = match cert.serial {
        [0, rest @ ..] if !rest.is_empty() => rest,
        all => all,
    };
    Ok(serial.iter().map(|b| format!("{b:02X}")).collect())
}

/// A new RSA-2048 key pair: (PKCS#8 private key PEM, SPKI public key PEM), for
/// `paygate keys generate` and the sandbox. Write the private half to a file; never log it.
pub fn generate_key_pair() -> Result<(String, String), KeyError> {
    let key = PrivateKey::new(&mut getrandom::SysRng, MIN_BITS).map_err(|_| KeyError::Generate)?;
    let private_pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|_| KeyError::Generate)?;
    let public_pem = spki_pem(&key.to_public_key());
    Ok((private_pem.as_str().to_owned(), public_pem))
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

/// PEM with any line layout (wrapped at 64, one long line, CRLF). Returns the label and DER.
fn decode_pem(text: &str) -> Result<(String, Vec<u8>), KeyError> {
    let after_begin = text
        .trim()
        .strip_prefix("-----BEGIN ")
        .ok_or(KeyError::NotPem)?;
    let (label, rest) = after_begin.split_once("-----").ok_or(KeyError::NotPem)?;
    let end_marker = format!("-----END {label}-----");
    let (body, _) = rest.split_once(&end_marker).ok_or(KeyError::NotPem)?;
    // Encrypted legacy PEM carries "Proc-Type:" headers; only unencrypted keys are taken.
    if body.contains(':') {
        return Err(KeyError::UnsupportedPem(format!("{label} with headers")));
    }
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = BASE64
        .decode(compact.as_bytes())
        .map_err(|_| KeyError::NotPem)?;
    Ok((label.to_owned(), der))
}

#[cfg(not(feature = "pure-rust"))]
mod backend {
    //! aws-lc-rs: about ten times faster than `rsa` for signing (see the design's measurements).

    use aws_lc_rs::rsa::KeyPair;
    use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256};
    use rsa::pkcs1::EncodeRsaPublicKey;
    use rsa::pkcs8::EncodePrivateKey;
    use rsa::{PrivateKey, PublicKey};

    use super::KeyError;

    pub(super) struct SigningKey(KeyPair);

    impl SigningKey {
        pub(super) fn new(key: PrivateKey) -> Result<Self, KeyError> {
            // Hand aws-lc-rs the key already parsed by `rsa`, re-encoded as PKCS#8 DER, once.
            let der = key.to_pkcs8_der().map_err(|_| KeyError::Backend)?;
            let pair = KeyPair::from_pkcs8(der.as_bytes()).map_err(|_| KeyError::Backend)?;
            Ok(SigningKey(pair))
        }

        pub(super) fn sign(&self, message: &[u8]) -> Vec<u8> {
            let mut signature = vec![0; self.0.public_modulus_len()];
            // aws-lc-rs ignores the RNG for PKCS#1 v1.5; it is there for ring's API.
            let rng = aws_lc_rs::rand::SystemRandom::new();
            self.0
                .sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
                .expect("PKCS#1 v1.5 signing with a validated 2048-8192-bit key cannot fail");
            signature
        }
    }

    /// Parsed once (not `UnparsedPublicKey`, which re-parses the key on every verify).
    pub(super) struct VerifyingKey(ParsedPublicKey);

    impl VerifyingKey {
        pub(super) fn new(key: &PublicKey) -> Result<Self, KeyError> {
            // aws-lc-rs's RSA verification algorithms take the PKCS#1 RSAPublicKey DER.
            let der = key.to_pkcs1_der().map_err(|_| KeyError::Backend)?;
            let parsed = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, der.as_bytes())
                .map_err(|_| KeyError::Backend)?;
            Ok(VerifyingKey(parsed))
        }

        pub(super) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
            self.0.verify_sig(message, signature).is_ok()
        }
    }
}

#[cfg(feature = "pure-rust")]
mod backend {
    //! The `rsa` crate's own PKCS#1 v1.5, for builds that want no C code in the crypto path.

    use rsa::{PrivateKey, PublicKey};
    use sha2::Sha256;

    use super::KeyError;

    pub(super) struct SigningKey(PrivateKey);

    impl SigningKey {
        pub(super) fn new(key: PrivateKey) -> Result<Self, KeyError> {
            Ok(SigningKey(key))
        }

        pub(super) fn sign(&self, message: &[u8]) -> Vec<u8> {
            self.0
                .pkcs1v15_sign::<Sha256>(message)
                .expect("PKCS#1 v1.5 signing with a validated 2048-8192-bit key cannot fail")
        }
    }

    pub(super) struct VerifyingKey(PublicKey);

    impl VerifyingKey {
        pub(super) fn new(key: &PublicKey) -> Result<Self, KeyError> {
            Ok(VerifyingKey(key.clone()))
        }

        pub(super) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
            self.0.pkcs1v15_verify::<Sha256>(message, signature).is_ok()
        }
    }
}
