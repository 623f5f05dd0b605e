//! The key directory shared with the gateway. `paygate keys generate DIR` writes the merchant
//! side (`DIR/wechatpay/…`); the sandbox keeps its own platform key pair in `DIR/sandbox/`,
//! made on first start and reused after, so a gateway configured once keeps verifying.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use paygate_wechatpay::{Signer, generate_key_pair};
use rand::Rng as _;

use crate::wechat::WechatSandboxConfig;

/// `DIR/sandbox/wechatpay_platform_key.pem`: the simulated WeChat Pay platform private key.
pub const PLATFORM_PRIVATE_KEY_FILE: &str = "sandbox/wechatpay_platform_key.pem";
/// `DIR/sandbox/wechatpay_pub_key.pem`: its public key, what the gateway's
/// `platform_public_keys` entry points at.
pub const PLATFORM_PUBLIC_KEY_FILE: &str = "sandbox/wechatpay_pub_key.pem";
/// `DIR/sandbox/wechatpay_pub_key_id.txt`: its `PUB_KEY_ID_…`.
pub const PLATFORM_KEY_ID_FILE: &str = "sandbox/wechatpay_pub_key_id.txt";

/// The simulated platform key, as loaded or generated.
pub struct PlatformKeyFiles {
    pub private_key_pem: String,
    pub public_key_pem: String,
    pub key_id: String,
    pub public_key_path: PathBuf,
}

impl std::fmt::Debug for PlatformKeyFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlatformKeyFiles")
            .field("key_id", &self.key_id)
            .field("public_key_path", &self.public_key_path)
            .finish_non_exhaustive()
    }
}

/// Reads the merchant side from `DIR/wechatpay/{apiclient_pub.pem, merchant_serial.txt,
/// apiv3.key, mchid.txt, appid.txt}` and loads (or first creates) the platform key.
pub fn wechat_config_from_keys_dir(dir: &Path) -> anyhow::Result<WechatSandboxConfig> {
    let merchant_public = dir.join("wechatpay/apiclient_pub.pem");
    if !merchant_public.exists() {
        anyhow::bail!(
            "{} not found: run `paygate keys generate {}` first to create the merchant keys",
            merchant_public.display(),
            dir.display()
        );
    }
    let read = |name: &str| -> anyhow::Result<String> {
        let path = dir.join("wechatpay").join(name);
        let text =
            fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        Ok(text.trim().to_owned())
    };
    let platform = load_or_create_platform_key(dir)?;
    Ok(WechatSandboxConfig {
        mchid: read("mchid.txt")?,
        appid: read("appid.txt")?,
        merchant_serial: read("merchant_serial.txt")?,
        merchant_public_key_pem: read("apiclient_pub.pem")?,
        apiv3_key: read("apiv3.key")?,
        platform_private_key_pem: platform.private_key_pem,
        platform_key_id: platform.key_id,
    })
}

/// Loads `DIR/sandbox/wechatpay_platform_key.pem` (+ public key and id), creating what is
/// missing. The private key file is written owner-only.
pub fn load_or_create_platform_key(dir: &Path) -> anyhow::Result<PlatformKeyFiles> {
    let private_path = dir.join(PLATFORM_PRIVATE_KEY_FILE);
    let public_path = dir.join(PLATFORM_PUBLIC_KEY_FILE);
    let id_path = dir.join(PLATFORM_KEY_ID_FILE);
    fs::create_dir_all(dir.join("sandbox"))
        .with_context(|| format!("creating {}", dir.join("sandbox").display()))?;

    let private_key_pem = if private_path.exists() {
        fs::read_to_string(&private_path)
            .with_context(|| format!("reading {}", private_path.display()))?
    } else {
        let (private_pem, _) =
            generate_key_pair().map_err(|e| anyhow::anyhow!("generating platform key: {e}"))?;
        write_private(&private_path, &private_pem)?;
        private_pem
    };
    let signer = Signer::from_pem(&private_key_pem)
        .map_err(|e| anyhow::anyhow!("{}: {e}", private_path.display()))?;
    let public_key_pem = signer.public_key_pem();
    // Always rewritten from the private key, so the two can never disagree.
    fs::write(&public_path, &public_key_pem)
        .with_context(|| format!("writing {}", public_path.display()))?;

    let key_id = match fs::read_to_string(&id_path) {
        Ok(id) if id.trim().starts_with("PUB_KEY_ID_") => id.trim().to_owned(),
        _ => {
            let id = new_platform_key_id();
            fs::write(&id_path, format!("{id}\n"))
                .with_context(|| format!("writing {}", id_path.display()))?;
            id
        }
    };
    Ok(PlatformKeyFiles {
        private_key_pem,
        public_key_pem,
        key_id,
        public_key_path: public_path,
    })
}

/// `PUB_KEY_ID_` and 28 digits, like `PUB_KEY_ID_0114232134912410000000000000`.
pub fn new_platform_key_id() -> String {
    let mut rng = rand::rng();
    let digits: String = (0..26)
        .map(|_| char::from(b'0' + rng.random_range(0..10u8)))
        .collect();
    format!("PUB_KEY_ID_01{digits}")
}

fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        file.write_all(pem.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    #[cfg(not(unix))]
    fs::write(path, pem).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
