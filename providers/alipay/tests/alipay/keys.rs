//! Reading keys in every form Alipay hands out, and signing and verifying with them.

use paygate_alipay::{KeyError, Signer, Verifier, generate_key_pair};
use secrecy::ExposeSecret;

use crate::fixtures::{ALIPAY_KEY, APP_KEY, APP_PUBLIC_KEY, fixture};

const MESSAGE: &[u8] = b"app_id=2021000000000000&method=alipay.trade.query&sign_type=RSA2";

/// The Base64 body of a PEM, with the header, footer and line breaks removed.
fn pem_body(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

#[test]
fn pkcs1_and_pkcs8_forms_of_one_private_key_sign_identically() {
    let pkcs1 = Signer::from_pem_or_base64(&fixture("test_app_private_key_pkcs1.pem")).unwrap();
    assert_eq!(pkcs1.sign(MESSAGE).unwrap(), APP_KEY.sign(MESSAGE).unwrap());
    assert_eq!(pkcs1.public_key_pem(), APP_KEY.public_key_pem());
}

#[test]
fn a_private_key_as_bare_base64_of_pkcs8_or_pkcs1_der_is_read() {
    for file in [
        "test_app_private_key_pkcs8.pem",
        "test_app_private_key_pkcs1.pem",
    ] {
        let bare = Signer::from_pem_or_base64(&pem_body(&fixture(file))).unwrap();
        assert_eq!(
            bare.sign(MESSAGE).unwrap(),
            APP_KEY.sign(MESSAGE).unwrap(),
            "{file}"
        );
    }
}

#[test]
fn a_public_key_as_bare_base64_or_as_one_unwrapped_pem_line_is_read() {
    let signature = APP_KEY.sign(MESSAGE).unwrap();
    let body = pem_body(&fixture("test_app_public_key.pem"));
    assert_eq!(body.len(), 392);
    let bare = Verifier::from_pem_or_base64(&body).unwrap();
    let one_line = Verifier::from_pem_or_base64(&format!(
        "-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"
    ))
    .unwrap();
    let crlf_indented = Verifier::from_pem_or_base64(
        &fixture("test_app_public_key.pem")
            .lines()
            .map(|l| format!("  {l}\r\n"))
            .collect::<String>(),
    )
    .unwrap();
    for key in [&bare, &one_line, &crlf_indented] {
        assert!(key.verify(MESSAGE, &signature).is_ok());
    }
}

#[test]
fn the_public_key_pem_of_a_signer_is_the_configured_public_key() {
    assert_eq!(APP_KEY.public_key_pem(), APP_PUBLIC_KEY.public_key_pem());
    assert_eq!(APP_KEY.public_key_pem(), fixture("test_app_public_key.pem"));
}

#[test]
fn a_signature_verifies_only_for_the_same_message_and_key() {
    let signature = APP_KEY.sign(MESSAGE).unwrap();
    assert!(APP_PUBLIC_KEY.verify(MESSAGE, &signature).is_ok());
    assert!(
        APP_PUBLIC_KEY
            .verify(b"app_id=2021000000000001", &signature)
            .is_err()
    );
    let other = ALIPAY_KEY.sign(MESSAGE).unwrap();
    assert!(APP_PUBLIC_KEY.verify(MESSAGE, &other).is_err());
    assert!(APP_PUBLIC_KEY.verify(MESSAGE, "not base64!").is_err());
    assert!(APP_PUBLIC_KEY.verify(MESSAGE, "").is_err());
}

#[test]
fn text_that_is_not_a_usable_key_is_refused() {
    assert!(matches!(
        Signer::from_pem_or_base64("hello"),
        Err(KeyError::NotPemOrBase64)
    ));
    assert!(matches!(
        Signer::from_pem_or_base64(""),
        Err(KeyError::NotPemOrBase64)
    ));
    // A public key is not a private key, and the other way round.
    assert!(Signer::from_pem_or_base64(&fixture("test_app_public_key.pem")).is_err());
    assert!(Verifier::from_pem_or_base64(&fixture("test_app_private_key_pkcs8.pem")).is_err());
    let encrypted =
        fixture("test_app_private_key_pkcs8.pem").replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY");
    assert!(matches!(
        Signer::from_pem_or_base64(&encrypted),
        Err(KeyError::UnsupportedPem(_))
    ));
    let truncated = &fixture("test_app_private_key_pkcs8.pem")[..600];
    assert!(Signer::from_pem_or_base64(truncated).is_err());
}

#[test]
fn debug_output_of_keys_is_redacted() {
    assert_eq!(format!("{:?}", *APP_KEY), "Signer([redacted])");
    assert_eq!(format!("{:?}", *APP_PUBLIC_KEY), "Verifier([redacted])");
}

#[test]
fn a_generated_key_pair_is_pkcs8_and_spki_pem_that_sign_and_verify() {
    let (private_pem, public_pem) = generate_key_pair().unwrap();
    assert!(
        private_pem
            .expose_secret()
            .starts_with("-----BEGIN PRIVATE KEY-----\n")
    );
    assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    assert!(!format!("{private_pem:?}").contains("BEGIN"));
    let signer = Signer::from_pem_or_base64(private_pem.expose_secret()).unwrap();
    let verifier = Verifier::from_pem_or_base64(&public_pem).unwrap();
    let signature = signer.sign(MESSAGE).unwrap();
    assert_eq!(
        signature.len(),
        344,
        "a 2048-bit signature is 344 Base64 characters"
    );
    assert!(verifier.verify(MESSAGE, &signature).is_ok());
}

#[test]
fn the_pure_rust_feature_swaps_the_backend() {
    let expected = if cfg!(feature = "pure-rust") {
        "rsa"
    } else {
        "aws-lc-rs"
    };
    assert_eq!(paygate_alipay::keys::BACKEND, expected);
}
