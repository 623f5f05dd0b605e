//! The key directory shared with `paygate keys generate`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use paygate_sandbox::keys_dir::{
    ALIPAY_PRIVATE_KEY_FILE, ALIPAY_PUBLIC_KEY_FILE, SANDBOX_SELLER_ID,
};
use paygate_sandbox::{
    Sandbox, SandboxConfig, alipay_config_from_keys_dir, wechat_config_from_keys_dir,
};

use crate::harness::{APIV3_KEY, MERCHANT_PUB, order_no, serve};

const ALIPAY_APP_KEY: &str = include_str!("../fixtures/test_app_private_key_pkcs8.pem");
const ALIPAY_APP_PUB: &str = include_str!("../fixtures/test_app_public_key.pem");
const ALIPAY_APP_ID: &str = "2021000122671080";

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "paygate-sandbox-test-{name}-{}",
        paygate_wechatpay::new_nonce()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_keys_dir_without_merchant_keys_says_to_run_keys_generate() {
    let dir = temp_dir("empty");
    let error = wechat_config_from_keys_dir(&dir).unwrap_err().to_string();
    assert!(error.contains("paygate keys generate"), "{error}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The WeChat Pay files `paygate keys generate` writes, with the fixture merchant key.
fn write_wechat_files(dir: &Path) {
    let wechat = dir.join("wechatpay");
    std::fs::create_dir_all(&wechat).unwrap();
    std::fs::write(wechat.join("apiclient_pub.pem"), MERCHANT_PUB).unwrap();
    std::fs::write(
        wechat.join("merchant_serial.txt"),
        "408B07E79B8269FEC3D5D3E6AB8ED163A6A380DB\n",
    )
    .unwrap();
    std::fs::write(wechat.join("apiv3.key"), format!("{APIV3_KEY}\n")).unwrap();
    std::fs::write(wechat.join("mchid.txt"), "1900000001\n").unwrap();
    std::fs::write(wechat.join("appid.txt"), "wx8888888888888888\n").unwrap();
}

/// The Alipay files `paygate keys generate` writes, with the fixture app key.
fn write_alipay_files(dir: &Path) {
    let alipay = dir.join("alipay");
    std::fs::create_dir_all(&alipay).unwrap();
    std::fs::write(alipay.join("app_private_key.pem"), ALIPAY_APP_KEY).unwrap();
    std::fs::write(alipay.join("app_public_key.pem"), ALIPAY_APP_PUB).unwrap();
    std::fs::write(alipay.join("app_id.txt"), format!("{ALIPAY_APP_ID}\n")).unwrap();
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn platform_key_is_created_once_and_reused() {
    let dir = temp_dir("full");
    write_wechat_files(&dir);

    let first = wechat_config_from_keys_dir(&dir).unwrap();
    assert_eq!(first.mchid, "1900000001");
    assert_eq!(first.apiv3_key, APIV3_KEY);
    assert!(first.platform_key_id.starts_with("PUB_KEY_ID_"));
    assert_eq!(first.platform_key_id.len(), "PUB_KEY_ID_".len() + 28);
    let second = wechat_config_from_keys_dir(&dir).unwrap();
    assert_eq!(second.platform_key_id, first.platform_key_id);
    assert_eq!(
        second.platform_private_key_pem,
        first.platform_private_key_pem
    );
    assert!(!format!("{second:?}").contains("PRIVATE KEY"));

    let public = std::fs::read_to_string(dir.join("sandbox/wechatpay_pub_key.pem")).unwrap();
    let sandbox = Sandbox::new(SandboxConfig {
        wechatpay: second,
        time_divisor: 1,
        clock: paygate_sandbox::system_clock(),
    })
    .unwrap();
    assert_eq!(sandbox.wechat_platform_public_key_pem(), public);
    #[cfg(unix)]
    assert_eq!(
        mode(&dir.join("sandbox/wechatpay_platform_key.pem")) & 0o077,
        0,
        "private key readable by others"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_keys_dir_without_alipay_files_serves_wechat_only() {
    let dir = temp_dir("wechat-only");
    write_wechat_files(&dir);
    assert!(alipay_config_from_keys_dir(&dir).unwrap().is_none());
    assert!(!dir.join(ALIPAY_PRIVATE_KEY_FILE).exists(), "no key made");
    assert!(!dir.join("alipay").exists(), "nothing written");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_alipay_key_is_created_once_owner_only_and_its_public_key_written_for_the_gateway() {
    let dir = temp_dir("alipay");
    write_alipay_files(&dir);

    let first = alipay_config_from_keys_dir(&dir).unwrap().unwrap();
    assert_eq!(first.app_id, ALIPAY_APP_ID);
    assert_eq!(first.app_public_key_pem, ALIPAY_APP_PUB.trim());
    assert_eq!(first.seller_id, SANDBOX_SELLER_ID);
    assert!(!format!("{first:?}").contains("PRIVATE KEY"));
    #[cfg(unix)]
    assert_eq!(mode(&dir.join(ALIPAY_PRIVATE_KEY_FILE)), 0o600);

    // The file the gateway's alipay_public_key_file names verifies what the sandbox signs.
    let public = std::fs::read_to_string(dir.join(ALIPAY_PUBLIC_KEY_FILE)).unwrap();
    let signer = paygate_alipay::Signer::from_pem_or_base64(&first.alipay_private_key_pem).unwrap();
    assert_eq!(public, signer.public_key_pem());
    let signature = signer.sign(b"trade_status=TRADE_SUCCESS").unwrap();
    let verifier = paygate_alipay::Verifier::from_pem_or_base64(&public).unwrap();
    assert_eq!(
        verifier.verify(b"trade_status=TRADE_SUCCESS", &signature),
        Ok(())
    );

    let second = alipay_config_from_keys_dir(&dir).unwrap().unwrap();
    assert_eq!(second.alipay_private_key_pem, first.alipay_private_key_pem);
    assert_eq!(
        std::fs::read_to_string(dir.join(ALIPAY_PUBLIC_KEY_FILE)).unwrap(),
        public
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn an_alipay_public_key_the_sandbox_did_not_write_is_never_overwritten() {
    let dir = temp_dir("alipay-real-key");
    write_alipay_files(&dir);
    // Alipay's own public key, as a production keys dir holds it (any other key will do).
    let real = include_str!("../fixtures/test_alipay_public_key.pem");
    std::fs::write(dir.join(ALIPAY_PUBLIC_KEY_FILE), real).unwrap();

    let error = alipay_config_from_keys_dir(&dir).unwrap_err().to_string();
    assert!(error.contains("alipay_public_key.pem"), "{error}");
    assert!(error.contains("move it away"), "{error}");
    assert_eq!(
        std::fs::read_to_string(dir.join(ALIPAY_PUBLIC_KEY_FILE)).unwrap(),
        real
    );
    assert!(!dir.join(ALIPAY_PRIVATE_KEY_FILE).exists(), "no key made");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_seller_id_file_overrides_the_sandbox_pid() {
    let dir = temp_dir("alipay-seller");
    write_alipay_files(&dir);
    // A sandbox key already there, so no RSA key is generated.
    std::fs::create_dir_all(dir.join("sandbox")).unwrap();
    std::fs::write(
        dir.join(ALIPAY_PRIVATE_KEY_FILE),
        include_str!("../fixtures/test_alipay_private_key.pem"),
    )
    .unwrap();

    std::fs::write(dir.join("alipay/seller_id.txt"), "2088102177846880\n").unwrap();
    let config = alipay_config_from_keys_dir(&dir).unwrap().unwrap();
    assert_eq!(config.seller_id, "2088102177846880");

    std::fs::write(dir.join("alipay/seller_id.txt"), "1900000001\n").unwrap();
    let error = alipay_config_from_keys_dir(&dir).unwrap_err().to_string();
    assert!(error.contains("seller_id.txt"), "{error}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn a_sandbox_built_from_the_keys_dir_answers_a_signed_precreate() {
    let dir = temp_dir("alipay-e2e");
    write_wechat_files(&dir);
    write_alipay_files(&dir);
    std::fs::create_dir_all(dir.join("sandbox")).unwrap();
    // Fixture keys for the sandbox's own, so the test generates no RSA key.
    std::fs::write(
        dir.join("sandbox/wechatpay_platform_key.pem"),
        crate::harness::PLATFORM_KEY,
    )
    .unwrap();
    std::fs::write(
        dir.join(ALIPAY_PRIVATE_KEY_FILE),
        include_str!("../fixtures/test_alipay_private_key.pem"),
    )
    .unwrap();

    // What the binary does.
    let sandbox = Sandbox::new(SandboxConfig {
        wechatpay: wechat_config_from_keys_dir(&dir).unwrap(),
        time_divisor: 1000,
        clock: paygate_sandbox::system_clock(),
    })
    .unwrap()
    .with_alipay(alipay_config_from_keys_dir(&dir).unwrap().unwrap())
    .unwrap();
    let base = serve(sandbox.router()).await;

    // And what the gateway does with the snippet's files.
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let client = paygate_alipay::Client::new(
        reqwest::Client::new(),
        format!("{base}/sandbox/alipay/gateway.do"),
        read("alipay/app_id.txt").trim(),
        Arc::new(
            paygate_alipay::Signer::from_pem_or_base64(&read("alipay/app_private_key.pem"))
                .unwrap(),
        ),
        Arc::new(
            paygate_alipay::Verifier::from_pem_or_base64(&read(ALIPAY_PUBLIC_KEY_FILE)).unwrap(),
        ),
        Arc::new(chrono::Utc::now),
    )
    .with_retry(paygate_alipay::RetryPolicy {
        max_attempts: 1,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
    });
    let no = order_no("KD");
    let created = client
        .precreate(&paygate_alipay::OrderRequest {
            out_trade_no: no.clone(),
            total_fen: 19900,
            subject: "职前通服务".to_owned(),
            time_expire: chrono::Utc::now() + chrono::Duration::hours(2),
            notify_url: "http://127.0.0.1:9/webhooks/alipay".to_owned(),
            return_url: None,
        })
        .await
        .unwrap();
    assert_eq!(created.out_trade_no, no);
    assert!(created.qr_code.starts_with("https://qr.alipay.com/"));
    std::fs::remove_dir_all(dir).unwrap();
}
