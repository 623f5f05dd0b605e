//! Fixture keys and vectors, compiled in so that tests read no files at run time.

use std::sync::OnceLock;

use paygate_wechatpay::{Signer, Verifier};
use serde_json::Value;

pub const DOC_MERCHANT_KEY: &str = include_str!("../fixtures/doc_merchant_test_key.pem");
pub const DOC_WECHATPAY_PUBLIC_KEY: &str = include_str!("../fixtures/doc_wechatpay_public_key.pem");
pub const GO_SDK_KEY: &str = include_str!("../fixtures/go_sdk_test_key.pem");
pub const GO_SDK_CERT: &str = include_str!("../fixtures/go_sdk_test_cert.pem");
pub const MERCHANT_KEY: &str = include_str!("../fixtures/test_merchant_key.pem");
pub const MERCHANT_KEY_PKCS1: &str = include_str!("../fixtures/test_merchant_key_pkcs1.pem");
pub const MERCHANT_PUB: &str = include_str!("../fixtures/test_merchant_pub.pem");
pub const MERCHANT_PUB_PKCS1: &str = include_str!("../fixtures/test_merchant_pub_pkcs1.pem");
pub const PLATFORM_KEY: &str = include_str!("../fixtures/test_platform_key.pem");
pub const PLATFORM_PUB: &str = include_str!("../fixtures/test_platform_pub.pem");

pub const PLATFORM_SERIAL: &str = "PUB_KEY_ID_0114232134912410000000000000";

const VECTORS: &str = include_str!("../fixtures/vectors.json");

/// One vector by id.
pub fn vector(id: &str) -> &'static Value {
    static PARSED: OnceLock<Value> = OnceLock::new();
    let all = PARSED.get_or_init(|| serde_json::from_str(VECTORS).expect("vectors.json parses"));
    all["vectors"]
        .as_array()
        .expect("vectors array")
        .iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("vector {id} is in vectors.json"))
}

pub fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is a string"))
}

pub fn platform_signer() -> &'static Signer {
    static SIGNER: OnceLock<Signer> = OnceLock::new();
    SIGNER.get_or_init(|| Signer::from_pem(PLATFORM_KEY).expect("platform fixture key"))
}

pub fn platform_verifier() -> Verifier {
    Verifier::from_pem(PLATFORM_PUB).expect("platform fixture public key")
}
