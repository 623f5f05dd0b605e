//! The key directory shared with the gateway. `paygate keys generate DIR` writes the merchant
//! side (`DIR/wechatpay/…`, `DIR/alipay/…`); the sandbox keeps its own private keys in
//! `DIR/sandbox/`, made on first start and reused after, so a gateway configured once keeps
//! verifying. Their public halves go where the gateway's configuration names them: the WeChat Pay
//! platform key in `DIR/sandbox/`, the Alipay key at `DIR/alipay/alipay_public_key.pem` (the
//! `alipay_public_key_file` of the snippet `paygate keys generate` prints).

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rand::Rng as _;

use crate::alipay::AlipaySandboxConfig;
use crate::wechat::WechatSandboxConfig;
use crate::wire::rsa::{PrivateKey, PublicKey, generate_private_key_pem};

/// `DIR/sandbox/wechatpay_platform_key.pem`: the simulated WeChat Pay platform private key.
pub const PLATFORM_PRIVATE_KEY_FILE: &str = "sandbox/wechatpay_platform_key.pem";
/// `DIR/sandbox/wechatpay_pub_key.pem`: its public key, what the gateway's
/// `platform_public_keys` entry points at.
pub const PLATFORM_PUBLIC_KEY_FILE: &str = "sandbox/wechatpay_pub_key.pem";
/// `DIR/sandbox/wechatpay_pub_key_id.txt`: its `PUB_KEY_ID_…`.
pub const PLATFORM_KEY_ID_FILE: &str = "sandbox/wechatpay_pub_key_id.txt";

/// `DIR/alipay/app_public_key.pem`: the app public key `paygate keys generate` writes. A keys dir
/// without it (made before the sandbox served Alipay) gets no Alipay half.
pub const ALIPAY_APP_PUBLIC_KEY_FILE: &str = "alipay/app_public_key.pem";
/// `DIR/alipay/app_id.txt`: the app id requests must carry.
pub const ALIPAY_APP_ID_FILE: &str = "alipay/app_id.txt";
/// `DIR/sandbox/alipay_private_key.pem`: the simulated Alipay private key (owner-only).
pub const ALIPAY_PRIVATE_KEY_FILE: &str = "sandbox/alipay_private_key.pem";
/// `DIR/alipay/alipay_public_key.pem`: its public key, where the gateway's
/// `alipay_public_key_file` points. In production Alipay's own public key lives there, so the
/// sandbox only writes it when it is absent or already holds the sandbox's key.
pub const ALIPAY_PUBLIC_KEY_FILE: &str = "alipay/alipay_public_key.pem";
/// `DIR/alipay/seller_id.txt`, optional: the payee PID put in notifications, in place of
/// [`SANDBOX_SELLER_ID`].
pub const ALIPAY_SELLER_ID_FILE: &str = "alipay/seller_id.txt";
/// The payee PID (`seller_id`) the standalone sandbox reports unless `DIR/alipay/seller_id.txt`
/// names another: the shape of a real one (`2088` and 12 digits), owned by nobody.
pub const SANDBOX_SELLER_ID: &str = "2088000000000001";

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
        let private_pem = generate_private_key_pem()
            .map_err(|e| anyhow::anyhow!("generating platform key: {e}"))?;
        write_private(&private_path, &private_pem)?;
        private_pem
    };
    let signer = PrivateKey::from_pem(&private_key_pem)
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

/// The Alipay half for the keys dir: `None` when `DIR/alipay/app_public_key.pem` is absent (the
/// sandbox then serves WeChat Pay only). Otherwise reads the app public key and
/// `DIR/alipay/app_id.txt`, the seller id ([`SANDBOX_SELLER_ID`] unless
/// `DIR/alipay/seller_id.txt` exists), and loads (or first creates) the simulator's Alipay key.
pub fn alipay_config_from_keys_dir(dir: &Path) -> anyhow::Result<Option<AlipaySandboxConfig>> {
    let app_public_path = dir.join(ALIPAY_APP_PUBLIC_KEY_FILE);
    if !app_public_path.exists() {
        return Ok(None);
    }
    let read = |path: &Path| -> anyhow::Result<String> {
        let text =
            fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(text.trim().to_owned())
    };
    let app_public_key_pem = read(&app_public_path)?;
    let app_id = read(&dir.join(ALIPAY_APP_ID_FILE))?;
    let seller_id_path = dir.join(ALIPAY_SELLER_ID_FILE);
    let seller_id = if seller_id_path.exists() {
        read(&seller_id_path)?
    } else {
        SANDBOX_SELLER_ID.to_owned()
    };
    anyhow::ensure!(
        seller_id.len() == 16
            && seller_id.starts_with("2088")
            && seller_id.bytes().all(|b| b.is_ascii_digit()),
        "{}: a seller id is `2088` and 12 digits",
        seller_id_path.display()
    );
    let alipay_private_key_pem = load_or_create_alipay_key(dir)?;
    Ok(Some(AlipaySandboxConfig {
        app_id,
        app_public_key_pem,
        alipay_private_key_pem,
        seller_id,
    }))
}

/// Loads `DIR/sandbox/alipay_private_key.pem`, creating it (owner-only) on first use, and writes
/// its public key to `DIR/alipay/alipay_public_key.pem`. A public key file that holds another
/// key (Alipay's real one, say) is never overwritten: that is an error.
fn load_or_create_alipay_key(dir: &Path) -> anyhow::Result<String> {
    let private_path = dir.join(ALIPAY_PRIVATE_KEY_FILE);
    let public_path = dir.join(ALIPAY_PUBLIC_KEY_FILE);
    let existing_public = match fs::read_to_string(&public_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", public_path.display())),
    };
    let not_ours = || {
        anyhow::anyhow!(
            "{} holds a key the sandbox did not make from {}: it may be Alipay's real public \
             key; move it away (or use another --keys-dir) and start again",
            public_path.display(),
            private_path.display()
        )
    };

    let private_key_pem = if private_path.exists() {
        fs::read_to_string(&private_path)
            .with_context(|| format!("reading {}", private_path.display()))?
    } else {
        // Checked before a key is made: a new key can never match a file already there.
        if existing_public.is_some() {
            return Err(not_ours());
        }
        fs::create_dir_all(dir.join("sandbox"))
            .with_context(|| format!("creating {}", dir.join("sandbox").display()))?;
        // Alipay's RSA2 takes any RSA-2048 key.
        let private_pem = generate_private_key_pem()
            .map_err(|e| anyhow::anyhow!("generating the Alipay key: {e}"))?;
        write_private(&private_path, &private_pem)?;
        private_pem
    };
    let key = PrivateKey::from_pem(&private_key_pem)
        .map_err(|e| anyhow::anyhow!("{}: {e}", private_path.display()))?;
    match existing_public {
        Some(text) if same_public_key(&text, &key) => {}
        Some(_) => return Err(not_ours()),
        None => fs::write(&public_path, key.public_key_pem())
            .with_context(|| format!("writing {}", public_path.display()))?,
    }
    Ok(private_key_pem)
}

/// Whether `text` is `key`'s public key (compared as keys: line endings and PEM label kind may
/// differ).
fn same_public_key(text: &str, key: &PrivateKey) -> bool {
    PublicKey::from_pem(text).is_ok_and(|public| public.der() == key.public_key_der())
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
