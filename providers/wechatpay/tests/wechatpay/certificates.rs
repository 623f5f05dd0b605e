//! Platform certificate mode: decrypting `/v3/certificates` and the self-signed certificates the
//! sandbox lists.

use paygate_wechatpay::model::{AEAD_AES_256_GCM, EncryptedResource, PlatformCertificate};
use paygate_wechatpay::{
    ApiV3Key, CertificateError, CertificatesResponse, DecryptError, KeyError, Signer,
    certificate_serial_hex, decrypt_certificates, self_signed_certificate,
};

use crate::fixtures::{GO_SDK_CERT, MERCHANT_KEY, platform_signer, str_of, vector};

const APIV3_KEY: &[u8] = b"0123456789abcdefABCDEF0123456789";
const SERIAL: &str = "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC";
/// 2026-11-29T09:20:32Z and five years later.
const NOT_BEFORE: i64 = 1_795_944_032;
const NOT_AFTER: i64 = NOT_BEFORE + 5 * 365 * 86_400;

fn certificate(signer: &Signer, serial: &str) -> String {
    self_signed_certificate(signer, serial, "test platform", NOT_BEFORE, NOT_AFTER).unwrap()
}

fn listing(entries: &[(&str, &str, &str)], key: &ApiV3Key) -> CertificatesResponse {
    CertificatesResponse {
        data: entries
            .iter()
            .enumerate()
            .map(|(i, (serial, pem, aad))| {
                let nonce = format!("nonce{i:07}");
                PlatformCertificate {
                    serial_no: (*serial).to_owned(),
                    effective_time: "2026-11-29T17:20:32+08:00".to_owned(),
                    expire_time: "2031-11-28T17:20:32+08:00".to_owned(),
                    encrypt_certificate: EncryptedResource {
                        algorithm: AEAD_AES_256_GCM.to_owned(),
                        ciphertext: key.encrypt(&nonce, aad, pem.as_bytes()),
                        associated_data: Some("certificate".to_owned()),
                        nonce,
                        original_type: None,
                    },
                }
            })
            .collect(),
    }
}

#[test]
fn a_self_signed_certificate_carries_its_serial_and_the_signers_public_key() {
    let pem = certificate(platform_signer(), SERIAL);
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert_eq!(certificate_serial_hex(&pem).unwrap(), SERIAL);
    let verifier = paygate_wechatpay::Verifier::from_pem(&pem).unwrap();
    assert_eq!(
        verifier.public_key_pem(),
        platform_signer().public_key_pem()
    );
    let signature = platform_signer().sign_base64(b"message");
    assert!(verifier.verify_base64(b"message", &signature));
}

#[test]
fn a_serial_with_the_top_bit_set_round_trips_through_the_der_sign_byte() {
    let serial = "D7CE59D1F522D701";
    assert_eq!(
        certificate_serial_hex(&certificate(platform_signer(), serial)).unwrap(),
        serial
    );
}

#[test]
fn bad_serials_and_validity_are_refused() {
    for serial in ["", "ABC", "00AB", "+F", "GG", &"AB".repeat(21)] {
        let made = self_signed_certificate(platform_signer(), serial, "x", NOT_BEFORE, NOT_AFTER);
        assert!(
            matches!(made, Err(KeyError::Malformed(_))),
            "{serial:?}: {made:?}"
        );
    }
    let made = self_signed_certificate(platform_signer(), SERIAL, "x", NOT_AFTER, NOT_BEFORE);
    assert!(matches!(made, Err(KeyError::Malformed(_))));
}

#[test]
fn decrypt_certificates_round_trips_every_listed_certificate() {
    let key = ApiV3Key::new(APIV3_KEY).unwrap();
    let other = Signer::from_pem(MERCHANT_KEY).unwrap();
    let first = certificate(platform_signer(), SERIAL);
    let second = certificate(&other, "1A2B3C4D");
    let response = listing(
        &[
            (SERIAL, &first, "certificate"),
            ("1A2B3C4D", &second, "certificate"),
        ],
        &key,
    );
    let decrypted = decrypt_certificates(&response, &key).unwrap();
    assert_eq!(decrypted.len(), 2);
    let (serial, verifier, expire_time) = &decrypted[1];
    assert_eq!(serial, "1A2B3C4D");
    assert_eq!(expire_time, "2031-11-28T17:20:32+08:00");
    assert!(verifier.verify_base64(b"m", &other.sign_base64(b"m")));
    assert!(
        !verifier.verify_base64(b"m", &platform_signer().sign_base64(b"m")),
        "each serial gets its own key"
    );
}

#[test]
fn v6b_published_certificate_download_decrypts_through_decrypt_certificates() {
    let v = vector("V6b");
    let key = ApiV3Key::new(str_of(&v["inputs"], "apiv3_key").as_bytes()).unwrap();
    let response: CertificatesResponse =
        serde_json::from_str(str_of(&v["inputs"], "response_body")).unwrap();
    let decrypted = decrypt_certificates(&response, &key).unwrap();
    assert_eq!(decrypted.len(), 1);
    assert_eq!(decrypted[0].0, str_of(&v["expected"], "serial_no"));
    assert_eq!(decrypted[0].2, str_of(&v["expected"], "expire_time"));
}

#[test]
fn a_certificate_encrypted_under_another_aad_or_key_is_refused() {
    let key = ApiV3Key::new(APIV3_KEY).unwrap();
    let pem = certificate(platform_signer(), SERIAL);

    // Encrypted with the AAD "transaction" but labelled "certificate": authentication fails.
    let wrong_aad = listing(&[(SERIAL, &pem, "transaction")], &key);
    assert!(matches!(
        decrypt_certificates(&wrong_aad, &key),
        Err(CertificateError::Decrypt {
            source: DecryptError::Authentication,
            ..
        })
    ));

    // Labelled with another AAD: refused before decrypting.
    let mut relabelled = listing(&[(SERIAL, &pem, "certificate")], &key);
    relabelled.data[0].encrypt_certificate.associated_data = Some("transaction".to_owned());
    assert_eq!(
        decrypt_certificates(&relabelled, &key).unwrap_err(),
        CertificateError::AssociatedData(SERIAL.to_owned())
    );

    let other_key = ApiV3Key::new(b"ABCDEF0123456789abcdef0123456789").unwrap();
    let response = listing(&[(SERIAL, &pem, "certificate")], &key);
    assert!(matches!(
        decrypt_certificates(&response, &other_key),
        Err(CertificateError::Decrypt { .. })
    ));
}

#[test]
fn a_certificate_listed_under_another_serial_is_refused() {
    let key = ApiV3Key::new(APIV3_KEY).unwrap();
    let pem = certificate(platform_signer(), SERIAL);
    let good = certificate(platform_signer(), "1A2B3C4D");
    // One good entry does not save the answer: a single mismatch fails it all.
    let response = listing(
        &[
            ("1A2B3C4D", &good, "certificate"),
            ("0102030405", &pem, "certificate"),
        ],
        &key,
    );
    assert_eq!(
        decrypt_certificates(&response, &key).unwrap_err(),
        CertificateError::SerialMismatch {
            listed: "0102030405".to_owned(),
            actual: SERIAL.to_owned(),
        }
    );
}

#[test]
fn a_published_certificate_under_a_foreign_serial_is_refused_too() {
    let key = ApiV3Key::new(APIV3_KEY).unwrap();
    let response = listing(&[(SERIAL, GO_SDK_CERT, "certificate")], &key);
    assert!(matches!(
        decrypt_certificates(&response, &key),
        Err(CertificateError::SerialMismatch { .. })
    ));
}

#[test]
fn plaintext_that_is_not_a_certificate_is_refused() {
    let key = ApiV3Key::new(APIV3_KEY).unwrap();
    let response = listing(&[(SERIAL, "not a certificate", "certificate")], &key);
    assert!(matches!(
        decrypt_certificates(&response, &key),
        Err(CertificateError::Certificate { .. })
    ));
}
