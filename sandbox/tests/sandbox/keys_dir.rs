//! The key directory shared with `paygate keys generate`.

use std::path::PathBuf;

use paygate_sandbox::{Sandbox, SandboxConfig, wechat_config_from_keys_dir};

use crate::harness::{APIV3_KEY, MERCHANT_PUB};

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

#[test]
fn platform_key_is_created_once_and_reused() {
    let dir = temp_dir("full");
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
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(dir.join("sandbox/wechatpay_platform_key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "private key readable by others");
    }
    std::fs::remove_dir_all(dir).unwrap();
}
