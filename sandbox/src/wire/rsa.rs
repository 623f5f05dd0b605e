//! SHA256withRSA (RSASSA-PKCS1-v1_5 over SHA-256), the one signature both providers use
//! (WeChat's `WECHATPAY2-SHA256-RSA2048`, Alipay's `RSA2`), on aws-lc-rs. Keys come as PEM
//! (`PRIVATE KEY` = PKCS#8, `RSA PRIVATE KEY` = PKCS#1, `PUBLIC KEY` = SPKI, `RSA PUBLIC KEY` =
//! PKCS#1) or, as Alipay hands them out, as bare Base64 with no PEM lines (alipay.md §2.1).

use std::fmt;

use aws_lc_rs::encoding::{AsDer as _, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::{
    KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Why a key was not taken. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key is neither PEM nor bare Base64")]
    NotPem,
    #[error("PEM label `{0}` is not a key this reads")]
    Label(String),
    #[error("not an RSA key of 2048 to 8192 bits")]
    Rejected,
    #[error("could not generate an RSA key")]
    Generate,
}

/// An RSA private key that signs: the simulator's WeChat Pay platform key and its Alipay key.
pub struct PrivateKey {
    pair: KeyPair,
    /// The public half, SubjectPublicKeyInfo DER.
    spki: Vec<u8>,
}

impl PrivateKey {
    /// PKCS#8 or PKCS#1, as PEM or bare Base64.
    pub fn from_pem(text: &str) -> Result<PrivateKey, KeyError> {
        let (label, der) = decode(text)?;
        let pair = match label.as_deref() {
            Some("PRIVATE KEY") => KeyPair::from_pkcs8(&der),
            Some("RSA PRIVATE KEY") => KeyPair::from_der(&der),
            Some(other) => return Err(KeyError::Label(other.to_owned())),
            None => KeyPair::from_pkcs8(&der).or_else(|_| KeyPair::from_der(&der)),
        }
        .map_err(|_| KeyError::Rejected)?;
        if !(256..=1024).contains(&pair.public_modulus_len()) {
            return Err(KeyError::Rejected);
        }
        let spki: PublicKeyX509Der<'static> =
            pair.public_key().as_der().map_err(|_| KeyError::Rejected)?;
        Ok(PrivateKey {
            spki: spki.as_ref().to_vec(),
            pair,
        })
    }

    /// The raw signature over `message` (a certificate carries it as bits, not Base64).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let mut signature = vec![0; self.pair.public_modulus_len()];
        // PKCS#1 v1.5 is deterministic; aws-lc-rs takes an RNG for the API's sake.
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair
            .sign(&RSA_PKCS1_SHA256, &rng, message, &mut signature)
            .expect("signing with a 2048-8192-bit key into a modulus-sized buffer cannot fail");
        signature
    }

    /// The signature over `message` in standard Base64, one line: what both providers send.
    pub fn sign_base64(&self, message: &[u8]) -> String {
        BASE64.encode(self.sign(message))
    }

    /// The public half as SubjectPublicKeyInfo DER.
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    /// The public half as SPKI PEM, for the other side's configuration.
    pub fn public_key_pem(&self) -> String {
        pem("PUBLIC KEY", &self.spki)
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey([redacted])")
    }
}

/// An RSA public key that verifies: the merchant's API key (WeChat) or app key (Alipay).
pub struct PublicKey {
    key: ParsedPublicKey,
    spki: Vec<u8>,
}

impl PublicKey {
    /// SPKI or PKCS#1, as PEM or bare Base64.
    pub fn from_pem(text: &str) -> Result<PublicKey, KeyError> {
        let (label, der) = decode(text)?;
        if let Some(label) = label
            && label != "PUBLIC KEY"
            && label != "RSA PUBLIC KEY"
        {
            return Err(KeyError::Label(label));
        }
        // Either encoding in, SPKI out: one form to compare and to parse from.
        let spki: PublicKeyX509Der<'static> = aws_lc_rs::rsa::PublicKey::from_der(&der)
            .map_err(|_| KeyError::Rejected)?
            .as_der()
            .map_err(|_| KeyError::Rejected)?;
        let spki = spki.as_ref().to_vec();
        let key = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &spki)
            .map_err(|_| KeyError::Rejected)?;
        Ok(PublicKey { key, spki })
    }

    /// Whether `signature` is valid over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }

    /// Whether `signature_base64` (standard Base64) is valid over `message`. Anything that is
    /// not Base64, a `WECHATPAY/SIGNTEST/` probe say, is simply false.
    pub fn verify_base64(&self, message: &[u8], signature_base64: &str) -> bool {
        BASE64
            .decode(signature_base64.as_bytes())
            .is_ok_and(|signature| self.verify(message, &signature))
    }

    /// SubjectPublicKeyInfo DER: two keys are the same key when these bytes are.
    pub fn der(&self) -> &[u8] {
        &self.spki
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PublicKey(..)")
    }
}

/// A new RSA-2048 private key as PKCS#8 PEM.
pub fn generate_private_key_pem() -> Result<String, KeyError> {
    let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
    let der: Pkcs8V1Der<'static> = pair.as_der().map_err(|_| KeyError::Generate)?;
    Ok(pem("PRIVATE KEY", der.as_ref()))
}

/// PEM: the label lines around the Base64 of `der` in lines of 64 characters, LF line ends.
pub fn pem(label: &str, der: &[u8]) -> String {
    let base64 = BASE64.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in base64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// `(Some(label), der)` for PEM with any line layout, `(None, der)` for bare Base64.
fn decode(text: &str) -> Result<(Option<String>, Vec<u8>), KeyError> {
    let text = text.trim();
    let (label, body) = match text.strip_prefix("-----BEGIN ") {
        Some(rest) => {
            let (label, rest) = rest.split_once("-----").ok_or(KeyError::NotPem)?;
            let end = format!("-----END {label}-----");
            let (body, _) = rest.split_once(&end).ok_or(KeyError::NotPem)?;
            (Some(label.to_owned()), body)
        }
        None => (None, text),
    };
    let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = BASE64.decode(compact).map_err(|_| KeyError::NotPem)?;
    Ok((label, der))
}
