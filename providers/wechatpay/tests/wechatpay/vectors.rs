//! The published vectors (fixtures/vectors.json; sources in fixtures/README.md). Run under both
//! backends: `cargo test -p paygate-wechatpay` and `… --features pure-rust`.

use paygate_wechatpay::{
    ApiV3Key, Authorization, CertificatesResponse, MerchantCredentials, PlatformKeys,
    SignatureHeaders, Signer, Verifier, VerifyError, certificate_serial_hex, decrypt_resource,
    request_message, response_message, verify_signed,
};
use serde_json::Value;

use crate::fixtures::{
    DOC_MERCHANT_KEY, DOC_WECHATPAY_PUBLIC_KEY, GO_SDK_CERT, GO_SDK_KEY, str_of, vector,
};

fn doc_credentials(mchid: &str) -> MerchantCredentials {
    MerchantCredentials {
        mchid: mchid.to_owned(),
        serial_no: "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB".to_owned(),
        signer: Signer::from_pem(DOC_MERCHANT_KEY).expect("doc merchant key"),
    }
}

/// Checks a request-signature vector: message bytes, signature, and returns the credentials.
fn check_request_vector(id: &str) -> (MerchantCredentials, &'static Value) {
    let v = vector(id);
    let (inputs, expected) = (&v["inputs"], &v["expected"]);
    let timestamp: i64 = str_of(inputs, "timestamp").parse().unwrap();
    let message = request_message(
        str_of(inputs, "method"),
        str_of(inputs, "canonical_url"),
        timestamp,
        str_of(inputs, "nonce_str"),
        str_of(inputs, "body").as_bytes(),
    );
    assert_eq!(message, str_of(expected, "sign_message").as_bytes(), "{id}");
    let creds = doc_credentials(str_of(inputs, "mchid"));
    assert_eq!(
        creds.signer.sign_base64(&message),
        str_of(expected, "signature"),
        "{id}"
    );
    (creds, v)
}

#[test]
fn v1_request_signature_and_authorization_in_both_attribute_orders() {
    let (creds, v) = check_request_vector("V1");
    let (inputs, expected) = (&v["inputs"], &v["expected"]);
    let header = creds.authorization(
        str_of(inputs, "method"),
        str_of(inputs, "canonical_url"),
        1554208460,
        str_of(inputs, "nonce_str"),
        str_of(inputs, "body").as_bytes(),
    );
    assert_eq!(header, str_of(expected, "authorization_go_order"));

    let go = Authorization::parse(str_of(expected, "authorization_go_order")).unwrap();
    let doc = Authorization::parse(str_of(expected, "authorization_doc_order")).unwrap();
    assert_eq!(go, doc);
    assert_eq!(go.mchid, "1900007291");
    assert_eq!(go.nonce_str, "593BEC0C930BF1AFEB40B4A08C8FB242");
    assert_eq!(go.timestamp, 1554208460);
    assert_eq!(go.serial_no, "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB");
    assert_eq!(go.signature, str_of(expected, "signature"));

    // The sandbox's side: the parsed header verifies with the merchant's public key.
    let verifier = creds.signer.verifier().unwrap();
    let message = doc.message(
        "POST",
        "/v3/pay/transactions/jsapi",
        str_of(inputs, "body").as_bytes(),
    );
    assert!(verifier.verify_base64(&message, &doc.signature));
}

#[test]
fn v1b_get_with_empty_body_signs_a_lone_newline() {
    check_request_vector("V1b");
}

#[test]
fn v1c_query_string_is_signed_byte_for_byte() {
    check_request_vector("V1c");
}

#[test]
fn v1d_one_changed_body_byte_changes_the_signature() {
    let (_, v1d) = check_request_vector("V1d");
    assert_ne!(
        str_of(&v1d["expected"], "signature"),
        str_of(&vector("V1")["expected"], "signature")
    );
}

#[test]
fn v1e_whitespace_in_json_is_signed_as_is() {
    check_request_vector("V1e");
}

#[test]
fn v2_jsapi_pay_sign() {
    let v = vector("V2");
    let (inputs, expected) = (&v["inputs"], &v["expected"]);
    let prepay_id = str_of(inputs, "package")
        .strip_prefix("prepay_id=")
        .unwrap();
    let params = doc_credentials("1900007291").jsapi_pay_params(
        str_of(inputs, "appId"),
        prepay_id,
        str_of(inputs, "timeStamp").parse().unwrap(),
        str_of(inputs, "nonceStr"),
    );
    assert_eq!(params.package, str_of(inputs, "package"));
    assert_eq!(params.sign_type, "RSA");
    assert_eq!(params.pay_sign, str_of(expected, "signature"));
    let json = serde_json::to_value(&params).unwrap();
    for key in [
        "appId",
        "timeStamp",
        "nonceStr",
        "package",
        "signType",
        "paySign",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
}

#[test]
fn v3_app_sign_over_the_bare_prepay_id() {
    let v = vector("V3");
    let (inputs, expected) = (&v["inputs"], &v["expected"]);
    let params = doc_credentials("1900007291").app_pay_params(
        str_of(inputs, "appid"),
        str_of(inputs, "prepayid"),
        str_of(inputs, "timestamp").parse().unwrap(),
        str_of(inputs, "noncestr"),
    );
    assert_eq!(params.sign, str_of(expected, "signature"));
    assert_eq!(params.package, "Sign=WXPay");
    assert_eq!(params.partnerid, "1900007291");
}

fn v4_keys() -> PlatformKeys {
    let mut keys = PlatformKeys::new();
    keys.insert(
        "PUB_KEY_ID_0000000000000024101100397200000006",
        Verifier::from_pem(DOC_WECHATPAY_PUBLIC_KEY).unwrap(),
    );
    keys
}

fn header_lookup<'a>(headers: &'a Value) -> impl Fn(&str) -> Option<&'a str> + 'a {
    move |name| headers[name].as_str()
}

#[test]
fn v4_response_verifies_in_public_key_mode() {
    let v = vector("V4");
    let inputs = &v["inputs"];
    let body = str_of(inputs, "body").as_bytes();
    let headers = SignatureHeaders::from_lookup(header_lookup(&inputs["headers"])).unwrap();
    assert_eq!(
        response_message(headers.timestamp, headers.nonce, body),
        str_of(&v["expected"], "verify_message").as_bytes()
    );
    // The vector is dated 2024: the clock is set to its timestamp.
    assert_eq!(
        verify_signed(&v4_keys(), &headers, body, 1722850421),
        Ok(())
    );
}

#[test]
fn v4n_reserialised_body_does_not_verify() {
    let v = vector("V4n");
    let inputs = &v["inputs"];
    let headers = SignatureHeaders::from_lookup(header_lookup(&inputs["headers"])).unwrap();
    assert_eq!(
        verify_signed(
            &v4_keys(),
            &headers,
            str_of(inputs, "body").as_bytes(),
            1722850421
        ),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn v5_sha256_with_rsa_signer() {
    let v = vector("V5");
    let signer = Signer::from_pem(GO_SDK_KEY).unwrap();
    assert_eq!(
        signer.sign_base64(str_of(&v["inputs"], "message").as_bytes()),
        str_of(&v["expected"], "signature")
    );
}

#[test]
fn v6_aes_256_gcm_both_ways() {
    let v = vector("V6");
    let (inputs, expected) = (&v["inputs"], &v["expected"]);
    let key = ApiV3Key::new(str_of(inputs, "key").as_bytes()).unwrap();
    let (nonce, aad) = (str_of(inputs, "nonce"), str_of(inputs, "associated_data"));
    assert_eq!(
        key.encrypt(nonce, aad, str_of(expected, "plaintext").as_bytes()),
        str_of(expected, "ciphertext")
    );
    assert_eq!(
        key.decrypt(nonce, aad, str_of(expected, "ciphertext"))
            .unwrap(),
        str_of(expected, "plaintext").as_bytes()
    );
}

#[test]
fn v6b_certificate_download_decrypts_to_a_usable_platform_certificate() {
    let v = vector("V6b");
    let (inputs, expected) = (&v["inputs"], &v["expected"]);
    let key = ApiV3Key::new(str_of(inputs, "apiv3_key").as_bytes()).unwrap();
    let response: CertificatesResponse =
        serde_json::from_str(str_of(inputs, "response_body")).unwrap();
    let entry = &response.data[0];
    assert_eq!(entry.serial_no, str_of(expected, "serial_no"));
    assert_eq!(entry.expire_time, str_of(expected, "expire_time"));

    let pem =
        String::from_utf8(decrypt_resource(&key, &entry.encrypt_certificate).unwrap()).unwrap();
    assert_eq!(pem, str_of(expected, "plaintext_pem"));
    assert_eq!(certificate_serial_hex(&pem).unwrap(), entry.serial_no);
    Verifier::from_pem(&pem).expect("the certificate's public key loads");
}

#[test]
fn v7_a_16_byte_key_is_rejected() {
    let v = vector("V7");
    let key = str_of(&v["inputs"], "key");
    assert_eq!(key.len(), 16);
    assert_eq!(
        ApiV3Key::new(key.as_bytes()).unwrap_err(),
        paygate_wechatpay::ApiV3KeyLength(16)
    );
}

fn v8_keys() -> PlatformKeys {
    let serial = certificate_serial_hex(GO_SDK_CERT).unwrap();
    assert_eq!(serial, "D7CE59D1F522D701");
    let mut keys = PlatformKeys::new();
    keys.insert(serial, Verifier::from_pem(GO_SDK_CERT).unwrap());
    keys
}

#[test]
fn v8_callback_signature_verifies_with_a_platform_certificate() {
    let v = vector("V8");
    let inputs = &v["inputs"];
    let headers = SignatureHeaders::from_lookup(header_lookup(&inputs["headers"])).unwrap();
    let body = str_of(inputs, "body").as_bytes();
    assert_eq!(
        verify_signed(&v8_keys(), &headers, body, 1624523846),
        Ok(())
    );
    // Its resource is AES-128 (a 16-byte "APIv3 key"): refused, never silently downgraded.
    assert!(ApiV3Key::new(str_of(inputs, "apiv3_key").as_bytes()).is_err());
}

#[test]
fn v8n_timestamp_changed_by_one_second_does_not_verify() {
    let v = vector("V8n");
    let inputs = &v["inputs"];
    let headers = SignatureHeaders::from_lookup(header_lookup(&inputs["headers"])).unwrap();
    assert_eq!(
        verify_signed(
            &v8_keys(),
            &headers,
            str_of(inputs, "body").as_bytes(),
            1624523847
        ),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn v10_authorization_header_layout() {
    let v = vector("V10");
    let inputs = &v["inputs"];
    for (case, expected) in inputs["cases"]
        .as_array()
        .unwrap()
        .iter()
        .zip(v["expected"]["authorizations"].as_array().unwrap())
    {
        let message = request_message(
            str_of(case, "method"),
            str_of(case, "canonical_url"),
            str_of(inputs, "timestamp").parse().unwrap(),
            str_of(inputs, "nonce_str"),
            str_of(case, "body").as_bytes(),
        );
        let header = Authorization {
            mchid: str_of(inputs, "mchid").to_owned(),
            nonce_str: str_of(inputs, "nonce_str").to_owned(),
            timestamp: str_of(inputs, "timestamp").parse().unwrap(),
            serial_no: str_of(inputs, "serial_no").to_owned(),
            signature: format!("Sign:{}", String::from_utf8(message).unwrap()),
        }
        .to_header();
        // The mock signer's scheme differs; the attribute layout is what is checked.
        let expected =
            expected
                .as_str()
                .unwrap()
                .replacen("WECHATPAY2-Mock", "WECHATPAY2-SHA256-RSA2048", 1);
        assert_eq!(header, expected);
    }
}
