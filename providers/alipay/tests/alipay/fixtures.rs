//! Fixture loading and the two test key pairs (read once, never generated per test).

use std::path::PathBuf;
use std::sync::LazyLock;

use chrono::{DateTime, TimeZone, Utc};
use paygate_alipay::{OrderRequest, Params, Signer, Verifier};
use serde_json::Value;

pub fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn fixture_bytes(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

static VECTORS: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(&fixture("vectors.json")).expect("vectors.json"));

/// The published vector `id` (A1, B1, …).
pub fn vector(id: &str) -> &'static Value {
    VECTORS["vectors"]
        .as_array()
        .expect("vectors array")
        .iter()
        .find(|v| v["id"] == id)
        .unwrap_or_else(|| panic!("no vector {id}"))
}

pub fn text(value: &Value) -> &str {
    value.as_str().expect("a JSON string")
}

/// A vector's `form_fields` (or `params`) object as parameters.
pub fn params_of(object: &Value) -> Params {
    object
        .as_object()
        .expect("an object")
        .iter()
        .map(|(k, v)| (k.clone(), text(v).to_owned()))
        .collect()
}

/// The key file a vector names (paths there are relative to the shared testdata folder).
pub fn vector_key_file(path: &Value) -> String {
    fixture(text(path).trim_start_matches("alipay/"))
}

/// Our app key pair.
pub static APP_KEY: LazyLock<Signer> = LazyLock::new(|| {
    Signer::from_pem_or_base64(&fixture("test_app_private_key_pkcs8.pem")).expect("app key")
});
pub static APP_PUBLIC_KEY: LazyLock<Verifier> = LazyLock::new(|| {
    Verifier::from_pem_or_base64(&fixture("test_app_public_key.pem")).expect("app public key")
});

/// The key pair playing Alipay's platform key.
pub static ALIPAY_KEY: LazyLock<Signer> = LazyLock::new(|| {
    Signer::from_pem_or_base64(&fixture("test_alipay_private_key.pem")).expect("alipay key")
});
pub static ALIPAY_PUBLIC_KEY: LazyLock<Verifier> = LazyLock::new(|| {
    Verifier::from_pem_or_base64(&fixture("test_alipay_public_key.pem")).expect("alipay public key")
});

pub const APP_ID: &str = "2021000000000000";
pub const SUBJECT: &str = "职前通服务";

/// 2026-11-28 16:30:00 UTC = 2026-11-29 00:30:00 in Beijing.
pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 16, 30, 0).unwrap()
}

pub fn order(out_trade_no: &str, total_fen: i64) -> OrderRequest {
    OrderRequest {
        out_trade_no: out_trade_no.to_owned(),
        total_fen,
        subject: SUBJECT.to_owned(),
        time_expire: now() + chrono::Duration::minutes(15),
        notify_url: "https://pay.example.cn/webhooks/alipay".to_owned(),
        return_url: None,
    }
}
