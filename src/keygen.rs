//! Key material for a new deployment: `paygate keys generate DIR` and `paygate api-key create`.
//!
//! [`generate_keys`] writes the merchant side of both providers into a key directory, in the
//! layout the sandbox reads (`paygate_sandbox::keys_dir`):
//!
//! ```text
//! DIR/wechatpay/apiclient_key.pem     merchant API private key, PKCS#8, 0600
//! DIR/wechatpay/apiclient_pub.pem     its public key (SPKI)
//! DIR/wechatpay/merchant_serial.txt   40 upper-case hex characters
//! DIR/wechatpay/apiv3.key             the APIv3 key: 32 characters [0-9A-Za-z], 0600
//! DIR/wechatpay/mchid.txt, appid.txt
//! DIR/alipay/app_private_key.pem      app private key, PKCS#8, 0600
//! DIR/alipay/app_public_key.pem       its public key (SPKI), to upload to Alipay
//! DIR/alipay/app_id.txt
//! DIR/privacy/pseudonym.key          the erasure pseudonym HMAC key: 64 hex characters, 0600
//! ```
//!
//! Nothing is ever overwritten: if any of these files exists, nothing is generated or written.
//! Private keys go to files only; they are never logged or printed.
//!
//! [`create_api_key`] makes a client API key: the secret is shown once, and only its SHA-256
//! ([`hash_secret`], what the gateway's auth compares) goes into the configuration.

use std::borrow::Borrow;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rand::Rng as _;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};

/// The scopes an API key may carry (design §4).
pub const API_KEY_SCOPES: [&str; 4] = ["checkout", "entitlements", "finance", "privacy"];

/// What [`generate_keys`] wrote, and the configuration that uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedKeys {
    /// `DIR/wechatpay/apiclient_key.pem` (mode 0600).
    pub wechatpay_private_key_file: PathBuf,
    /// `DIR/wechatpay/apiclient_pub.pem`.
    pub wechatpay_public_key_file: PathBuf,
    /// `DIR/wechatpay/merchant_serial.txt`.
    pub merchant_serial_file: PathBuf,
    /// The serial written there: 40 upper-case hex characters.
    pub merchant_serial: String,
    /// `DIR/wechatpay/apiv3.key` (mode 0600).
    pub apiv3_key_file: PathBuf,
    /// `DIR/wechatpay/mchid.txt`.
    pub mchid_file: PathBuf,
    /// `DIR/wechatpay/appid.txt`.
    pub appid_file: PathBuf,
    /// `DIR/alipay/app_private_key.pem` (mode 0600).
    pub alipay_private_key_file: PathBuf,
    /// `DIR/alipay/app_public_key.pem`: what the merchant uploads to Alipay.
    pub alipay_public_key_file: PathBuf,
    /// `DIR/alipay/app_id.txt`.
    pub alipay_app_id_file: PathBuf,
    /// `DIR/privacy/pseudonym.key` (mode 0600): `[privacy] pseudonym_key_file`.
    pub pseudonym_key_file: PathBuf,
    /// `[wechatpay]` and `[alipay]` sections (design §8) pointing at these files. The WeChat Pay
    /// platform key is a commented placeholder; `alipay_public_key_file` names
    /// `DIR/alipay/alipay_public_key.pem`, which the standalone sandbox writes (in production,
    /// Alipay's public key goes there).
    pub config_snippet: String,
}

/// A new API key from [`create_api_key`]. Its `Debug` does not show the secret.
#[derive(Debug)]
pub struct NewApiKey {
    pub id: String,
    pub scopes: Vec<String>,
    /// `pgk_` and 64 lower-case hex characters. Shown to the operator once, never stored.
    pub secret: SecretString,
    /// Lower-case hex SHA-256 of the secret's UTF-8: what the configuration holds.
    pub secret_sha256: String,
    /// The `[[api_keys]]` entry for the configuration (design §8).
    pub entry_toml: String,
}

/// Lower-case hex SHA-256 of `secret` (UTF-8): the `secret_sha256` of an `[[api_keys]]` entry.
pub fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// `paygate api-key create --scopes …`: a new secret for `id` with `scopes` (each of
/// [`API_KEY_SCOPES`]; duplicates are dropped, order kept).
pub fn create_api_key(id: &str, scopes: &[String]) -> anyhow::Result<NewApiKey> {
    anyhow::ensure!(
        (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'),
        "API key id {id:?} must be 1 to 64 characters of a-z, 0-9, `_` and `-`"
    );
    let mut checked: Vec<String> = Vec::new();
    for scope in scopes {
        let scope = scope.trim();
        anyhow::ensure!(
            API_KEY_SCOPES.contains(&scope),
            "unknown scope {scope:?}: expected one of {}",
            API_KEY_SCOPES.join(", ")
        );
        if !checked.iter().any(|s| s == scope) {
            checked.push(scope.to_owned());
        }
    }
    anyhow::ensure!(
        !checked.is_empty(),
        "an API key needs at least one scope ({})",
        API_KEY_SCOPES.join(", ")
    );

    let bytes: [u8; 32] = rand::rng().random();
    let secret = format!("pgk_{}", hex::encode(bytes));
    let secret_sha256 = hash_secret(&secret);
    let scope_list = checked
        .iter()
        .map(|s| toml_string(s))
        .collect::<Vec<_>>()
        .join(", ");
    let entry_toml = format!(
        "[[api_keys]]\nid = {}\nsecret_sha256 = {}\nscopes = [{scope_list}]\n",
        toml_string(id),
        toml_string(&secret_sha256),
    );
    Ok(NewApiKey {
        id: id.to_owned(),
        scopes: checked,
        secret: SecretString::from(secret),
        secret_sha256,
        entry_toml,
    })
}

/// `paygate keys generate DIR`: a WeChat Pay merchant key pair, merchant serial and APIv3 key,
/// and an Alipay app key pair, written under `dir` (see the module docs). Refuses, before
/// generating anything, when any of the files already exists.
pub fn generate_keys(
    dir: &Path,
    mchid: &str,
    appid: &str,
    alipay_app_id: &str,
) -> anyhow::Result<GeneratedKeys> {
    generate_keys_with(dir, mchid, appid, alipay_app_id, generate_key_pairs)
}

/// The two RSA key pairs; private halves kept secret.
struct KeyPairs {
    wechatpay_private_pem: SecretString,
    wechatpay_public_pem: String,
    alipay_private_pem: SecretString,
    alipay_public_pem: String,
}

/// Two RSA-2048 generations: the slow part.
fn generate_key_pairs() -> anyhow::Result<KeyPairs> {
    let (wechat_private, wechatpay_public_pem) = paygate_wechatpay::generate_key_pair()
        .map_err(|e| anyhow::anyhow!("generating the WeChat Pay merchant key pair: {e}"))?;
    let wechatpay_private_pem = SecretString::from(wechat_private);
    let (alipay_private_pem, alipay_public_pem) = paygate_alipay::generate_key_pair()
        .map_err(|e| anyhow::anyhow!("generating the Alipay app key pair: {e}"))?;
    Ok(KeyPairs {
        wechatpay_private_pem,
        wechatpay_public_pem,
        alipay_private_pem,
        alipay_public_pem,
    })
}

/// [`generate_keys`] with the key pairs from `make_pairs` (tests reuse one generation).
fn generate_keys_with<P: Borrow<KeyPairs>>(
    dir: &Path,
    mchid: &str,
    appid: &str,
    alipay_app_id: &str,
    make_pairs: impl FnOnce() -> anyhow::Result<P>,
) -> anyhow::Result<GeneratedKeys> {
    check_ids(mchid, appid, alipay_app_id)?;
    let keys_without_snippet = layout(dir);
    let k = &keys_without_snippet;
    // Refuse before the slow part, and before touching anything.
    refuse_existing(k)?;
    let config_snippet = config_snippet(k, mchid, appid, alipay_app_id)?;

    let pairs = make_pairs()?;
    write_files(dir, k, pairs.borrow(), mchid, appid, alipay_app_id)?;
    Ok(GeneratedKeys {
        config_snippet,
        ..keys_without_snippet
    })
}

/// The merchant and app ids, checked before anything is generated.
fn check_ids(mchid: &str, appid: &str, alipay_app_id: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=32).contains(&mchid.len()) && mchid.bytes().all(|b| b.is_ascii_digit()),
        "WeChat Pay mchid {mchid:?} must be 1 to 32 digits"
    );
    anyhow::ensure!(
        (1..=32).contains(&appid.len()) && appid.bytes().all(|b| b.is_ascii_alphanumeric()),
        "WeChat appid {appid:?} must be 1 to 32 letters and digits"
    );
    anyhow::ensure!(
        (1..=32).contains(&alipay_app_id.len())
            && alipay_app_id.bytes().all(|b| b.is_ascii_digit()),
        "Alipay app_id {alipay_app_id:?} must be 1 to 32 digits"
    );
    Ok(())
}

/// The files under `dir` (the module docs' layout) and a new merchant serial; no snippet yet.
fn layout(dir: &Path) -> GeneratedKeys {
    let wechat_dir = dir.join("wechatpay");
    let alipay_dir = dir.join("alipay");
    GeneratedKeys {
        wechatpay_private_key_file: wechat_dir.join("apiclient_key.pem"),
        wechatpay_public_key_file: wechat_dir.join("apiclient_pub.pem"),
        merchant_serial_file: wechat_dir.join("merchant_serial.txt"),
        merchant_serial: random_merchant_serial(),
        apiv3_key_file: wechat_dir.join("apiv3.key"),
        mchid_file: wechat_dir.join("mchid.txt"),
        appid_file: wechat_dir.join("appid.txt"),
        alipay_private_key_file: alipay_dir.join("app_private_key.pem"),
        alipay_public_key_file: alipay_dir.join("app_public_key.pem"),
        alipay_app_id_file: alipay_dir.join("app_id.txt"),
        pseudonym_key_file: dir.join("privacy").join("pseudonym.key"),
        config_snippet: String::new(),
    }
}

/// An error naming every file of `k` that already exists (nothing is ever overwritten).
fn refuse_existing(k: &GeneratedKeys) -> anyhow::Result<()> {
    let all_files = [
        &k.wechatpay_private_key_file,
        &k.wechatpay_public_key_file,
        &k.merchant_serial_file,
        &k.apiv3_key_file,
        &k.mchid_file,
        &k.appid_file,
        &k.alipay_private_key_file,
        &k.alipay_public_key_file,
        &k.alipay_app_id_file,
        &k.pseudonym_key_file,
    ];
    let existing: Vec<String> = all_files
        .iter()
        .filter(|p| p.symlink_metadata().is_ok())
        .map(|p| p.display().to_string())
        .collect();
    anyhow::ensure!(
        existing.is_empty(),
        "refusing to overwrite existing key files: {}; move them away or choose another directory",
        existing.join(", ")
    );
    Ok(())
}

/// Writes every file of `k`: private ones 0600, all of them removed again if one write fails.
fn write_files(
    dir: &Path,
    k: &GeneratedKeys,
    pairs: &KeyPairs,
    mchid: &str,
    appid: &str,
    alipay_app_id: &str,
) -> anyhow::Result<()> {
    let apiv3_key = SecretString::from(random_apiv3_key());
    create_private_dir(&dir.join("wechatpay"))?;
    create_private_dir(&dir.join("alipay"))?;
    create_private_dir(&dir.join("privacy"))?;
    let pseudonym_key = SecretString::from(random_pseudonym_key());
    let mut written = Written::default();
    written.private(
        &k.wechatpay_private_key_file,
        pairs.wechatpay_private_pem.expose_secret(),
    )?;
    written.public(&k.wechatpay_public_key_file, &pairs.wechatpay_public_pem)?;
    written.public(&k.merchant_serial_file, &format!("{}\n", k.merchant_serial))?;
    written.private(&k.apiv3_key_file, apiv3_key.expose_secret())?;
    written.public(&k.mchid_file, &format!("{mchid}\n"))?;
    written.public(&k.appid_file, &format!("{appid}\n"))?;
    written.private(
        &k.alipay_private_key_file,
        pairs.alipay_private_pem.expose_secret(),
    )?;
    written.public(&k.alipay_public_key_file, &pairs.alipay_public_pem)?;
    written.public(&k.alipay_app_id_file, &format!("{alipay_app_id}\n"))?;
    written.private(&k.pseudonym_key_file, pseudonym_key.expose_secret())?;
    written.keep();
    Ok(())
}

/// The TOML for design §8's `[wechatpay]` and `[alipay]`, paths as given to `generate_keys`.
fn config_snippet(
    k: &GeneratedKeys,
    mchid: &str,
    appid: &str,
    alipay_app_id: &str,
) -> anyhow::Result<String> {
    let path = |p: &Path| -> anyhow::Result<String> {
        let text = p
            .to_str()
            .with_context(|| format!("key path {} is not UTF-8", p.display()))?;
        Ok(toml_string(text))
    };
    let wechat_dir = k
        .wechatpay_private_key_file
        .parent()
        .unwrap_or(Path::new(""));
    let keys_dir = wechat_dir.parent().unwrap_or(Path::new(""));
    Ok(format!(
        "\
[wechatpay]
api_base = \"https://api.mch.weixin.qq.com\"
mchid = {mchid}
appid = {appid}
merchant_serial = {serial}
merchant_private_key_file = {merchant_key}
apiv3_key_file = {apiv3}
# The WeChat Pay public key and its PUB_KEY_ID_… come from the merchant platform (with the
# sandbox: {sandbox_pub} and the id in {sandbox_id}).
# platform_public_keys = [{{ id = \"PUB_KEY_ID_…\", file = {platform_pub} }}]

[alipay]
gateway_url = \"https://openapi.alipay.com/gateway.do\"
app_id = {app_id}
app_private_key_file = {app_key}
# The standalone sandbox (paygate-sandbox --keys-dir) writes its Alipay public key here. In
# production, upload {app_pub} to the Alipay open platform and save the Alipay public key it
# shows you here instead.
alipay_public_key_file = {alipay_pub}
# Your PID (2088…), checked on notifications; the standalone sandbox's is this one.
# seller_id = {seller_id}

[privacy]
# The HMAC key that turns an erased employer id into its pseudonym. Keep it secret and backed
# up: destroying it makes every pseudonym irreversible even for paygate.
pseudonym_key_file = {pseudonym}
",
        mchid = toml_string(mchid),
        appid = toml_string(appid),
        serial = toml_string(&k.merchant_serial),
        merchant_key = path(&k.wechatpay_private_key_file)?,
        apiv3 = path(&k.apiv3_key_file)?,
        sandbox_pub = path(&keys_dir.join(sandbox_layout::PLATFORM_PUBLIC_KEY_FILE))?,
        sandbox_id = path(&keys_dir.join(sandbox_layout::PLATFORM_KEY_ID_FILE))?,
        platform_pub = path(&wechat_dir.join("pub_key.pem"))?,
        app_id = toml_string(alipay_app_id),
        app_key = path(&k.alipay_private_key_file)?,
        app_pub = path(&k.alipay_public_key_file)?,
        alipay_pub = path(&keys_dir.join(sandbox_layout::ALIPAY_PUBLIC_KEY_FILE))?,
        seller_id = toml_string(crate::embedded::SANDBOX_ALIPAY_SELLER_ID),
        pseudonym = path(&k.pseudonym_key_file)?,
    ))
}

/// Where the standalone sandbox (`paygate-sandbox --keys-dir`) writes what the config points at.
/// Written here, not imported, so a gateway built without the simulator still prints them; a
/// test keeps them equal to the sandbox's own.
mod sandbox_layout {
    pub const PLATFORM_PUBLIC_KEY_FILE: &str = "sandbox/wechatpay_pub_key.pem";
    pub const PLATFORM_KEY_ID_FILE: &str = "sandbox/wechatpay_pub_key_id.txt";
    pub const ALIPAY_PUBLIC_KEY_FILE: &str = "alipay/alipay_public_key.pem";
}

/// A TOML basic string, quoted and escaped.
fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// What a merchant API certificate serial looks like: 20 bytes, upper-case hex.
fn random_merchant_serial() -> String {
    let bytes: [u8; 20] = rand::rng().random();
    hex::encode_upper(bytes)
}

/// The pseudonym key: 32 random bytes as 64 lower-case hex characters.
fn random_pseudonym_key() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    hex::encode(bytes)
}

/// The APIv3 key: 32 characters of [0-9A-Za-z] (it is used as its 32 bytes).
fn random_apiv3_key() -> String {
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(path)
        .with_context(|| format!("creating {}", path.display()))
}

/// Files written so far; removed again if a later write fails, so a failed run can be retried.
#[derive(Default)]
struct Written {
    paths: Vec<PathBuf>,
    kept: bool,
}

impl Written {
    /// Owner read/write only.
    fn private(&mut self, path: &Path, contents: &str) -> anyhow::Result<()> {
        self.create(path, contents, 0o600)
    }

    fn public(&mut self, path: &Path, contents: &str) -> anyhow::Result<()> {
        self.create(path, contents, 0o644)
    }

    fn create(&mut self, path: &Path, contents: &str, mode: u32) -> anyhow::Result<()> {
        let mut options = fs::OpenOptions::new();
        // create_new: never overwrite, even a file that appeared since the check.
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
        #[cfg(not(unix))]
        let _ = mode;
        let mut file = options
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        self.paths.push(path.to_owned());
        file.write_all(contents.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", path.display()))
    }

    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        if !self.kept {
            for path in &self.paths {
                let _ = fs::remove_file(path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use super::*;

    const MCHID: &str = "1900000001";
    const APPID: &str = "wx8888888888888888";
    const ALIPAY_APP_ID: &str = "2021000000000000";

    /// One RSA generation pair for the whole module (it is slow), made by the real generator.
    fn key_pairs() -> &'static KeyPairs {
        static PAIRS: OnceLock<KeyPairs> = OnceLock::new();
        PAIRS.get_or_init(|| generate_key_pairs().expect("generating key pairs"))
    }

    /// `generate_keys` into a fresh temporary directory, with the shared key pairs.
    fn generated() -> (tempfile::TempDir, GeneratedKeys) {
        let dir = tempfile::tempdir().unwrap();
        let keys = generate_keys_with(dir.path(), MCHID, APPID, ALIPAY_APP_ID, || Ok(key_pairs()))
            .unwrap();
        (dir, keys)
    }

    fn read(path: &Path) -> String {
        fs::read_to_string(path).unwrap()
    }

    #[test]
    fn generated_keys_load_back_with_the_provider_key_parsers() {
        let (_dir, keys) = generated();
        let private = read(&keys.wechatpay_private_key_file);
        // The PKCS#8 PEM label (spelled in two parts so this file holds no key-looking line).
        let pkcs8_header = format!("-----BEGIN {}-----", "PRIVATE KEY");
        assert!(private.starts_with(&pkcs8_header), "PKCS#8");
        paygate_wechatpay::Signer::from_pem(&private).unwrap();
        paygate_wechatpay::Verifier::from_pem(&read(&keys.wechatpay_public_key_file)).unwrap();
        let app_private = read(&keys.alipay_private_key_file);
        assert!(app_private.starts_with(&pkcs8_header), "PKCS#8");
        paygate_alipay::Signer::from_pem_or_base64(&app_private).unwrap();
        paygate_alipay::Verifier::from_pem_or_base64(&read(&keys.alipay_public_key_file)).unwrap();
    }

    #[test]
    fn a_signature_made_with_each_private_key_verifies_with_its_public_key() {
        let (_dir, keys) = generated();
        let message = b"GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n";

        let signer =
            paygate_wechatpay::Signer::from_pem(&read(&keys.wechatpay_private_key_file)).unwrap();
        let verifier =
            paygate_wechatpay::Verifier::from_pem(&read(&keys.wechatpay_public_key_file)).unwrap();
        let signature = signer.sign_base64(message);
        assert!(verifier.verify_base64(message, &signature));
        assert!(!verifier.verify_base64(b"tampered", &signature));

        let signer =
            paygate_alipay::Signer::from_pem_or_base64(&read(&keys.alipay_private_key_file))
                .unwrap();
        let verifier =
            paygate_alipay::Verifier::from_pem_or_base64(&read(&keys.alipay_public_key_file))
                .unwrap();
        let signature = signer.sign(message).unwrap();
        assert_eq!(verifier.verify(message, &signature), Ok(()));
        assert!(verifier.verify(b"tampered", &signature).is_err());

        // Two distinct key pairs, not one key used twice.
        assert_ne!(
            read(&keys.wechatpay_public_key_file),
            read(&keys.alipay_public_key_file)
        );
    }

    #[cfg(feature = "sandbox")]
    #[test]
    fn the_printed_layout_is_the_sandboxs() {
        use paygate_sandbox::keys_dir as sandbox;
        assert_eq!(
            super::sandbox_layout::PLATFORM_PUBLIC_KEY_FILE,
            sandbox::PLATFORM_PUBLIC_KEY_FILE
        );
        assert_eq!(
            super::sandbox_layout::PLATFORM_KEY_ID_FILE,
            sandbox::PLATFORM_KEY_ID_FILE
        );
        assert_eq!(
            super::sandbox_layout::ALIPAY_PUBLIC_KEY_FILE,
            sandbox::ALIPAY_PUBLIC_KEY_FILE
        );
        assert_eq!(
            crate::embedded::SANDBOX_ALIPAY_SELLER_ID,
            sandbox::SANDBOX_SELLER_ID
        );
    }

    #[cfg(feature = "sandbox")]
    #[test]
    fn the_sandbox_accepts_the_generated_keys_dir() {
        let (dir, keys) = generated();
        // Give the sandbox a platform key already, so it does not generate a third RSA key:
        // any valid RSA-2048 PKCS#8 key will do.
        fs::create_dir_all(dir.path().join("sandbox")).unwrap();
        fs::copy(
            &keys.alipay_private_key_file,
            dir.path()
                .join(paygate_sandbox::keys_dir::PLATFORM_PRIVATE_KEY_FILE),
        )
        .unwrap();

        let config = paygate_sandbox::wechat_config_from_keys_dir(dir.path()).unwrap();
        assert_eq!(config.mchid, MCHID);
        assert_eq!(config.appid, APPID);
        assert_eq!(config.merchant_serial, keys.merchant_serial);
        assert_eq!(
            config.merchant_public_key_pem,
            read(&keys.wechatpay_public_key_file).trim()
        );
        // Likewise an Alipay key, then the Alipay half reads the app side.
        fs::copy(
            &keys.wechatpay_private_key_file,
            dir.path()
                .join(paygate_sandbox::keys_dir::ALIPAY_PRIVATE_KEY_FILE),
        )
        .unwrap();
        let alipay = paygate_sandbox::alipay_config_from_keys_dir(dir.path())
            .unwrap()
            .expect("keys generate writes the Alipay app key");
        assert_eq!(alipay.app_id, ALIPAY_APP_ID);
        assert_eq!(
            alipay.app_public_key_pem,
            read(&keys.alipay_public_key_file).trim()
        );
        // The public key lands where the snippet's alipay_public_key_file points.
        let table: toml::Table = toml::from_str(&keys.config_snippet).unwrap();
        let snippet_path = table["alipay"]["alipay_public_key_file"].as_str().unwrap();
        paygate_alipay::Verifier::from_pem_or_base64(&read(Path::new(snippet_path))).unwrap();

        // The simulator itself takes it: merchant key parses, APIv3 key is 32 bytes.
        paygate_sandbox::Sandbox::new(paygate_sandbox::SandboxConfig {
            wechatpay: config,
            time_divisor: 1,
            clock: paygate_sandbox::system_clock(),
        })
        .unwrap()
        .with_alipay(alipay)
        .unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn private_key_files_are_readable_by_the_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let (_dir, keys) = generated();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for private in [
            &keys.wechatpay_private_key_file,
            &keys.apiv3_key_file,
            &keys.alipay_private_key_file,
            &keys.pseudonym_key_file,
        ] {
            assert_eq!(mode(private), 0o600, "{}", private.display());
        }
        for public in [
            &keys.wechatpay_public_key_file,
            &keys.alipay_public_key_file,
        ] {
            assert_eq!(mode(public) & 0o077 & !0o044, 0, "{}", public.display());
        }
    }

    #[test]
    fn the_serial_apiv3_key_and_ids_are_written_in_the_documented_form() {
        let (_dir, keys) = generated();
        let serial = read(&keys.merchant_serial_file);
        let serial = serial.trim();
        assert_eq!(serial, keys.merchant_serial);
        assert_eq!(serial.len(), 40);
        assert!(
            serial
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
        );
        let apiv3 = read(&keys.apiv3_key_file);
        assert_eq!(apiv3.len(), 32);
        assert!(apiv3.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_eq!(read(&keys.mchid_file).trim(), MCHID);
        assert_eq!(read(&keys.appid_file).trim(), APPID);
        assert_eq!(read(&keys.alipay_app_id_file).trim(), ALIPAY_APP_ID);
        // Random per run.
        let (_other_dir, other) = generated();
        assert_ne!(other.merchant_serial, keys.merchant_serial);
        assert_ne!(read(&other.apiv3_key_file), apiv3);
    }

    #[test]
    fn a_second_run_refuses_to_overwrite_and_leaves_the_keys_untouched() {
        let (dir, keys) = generated();
        let before = read(&keys.wechatpay_private_key_file);
        // The public function: it refuses before generating anything, so this is cheap.
        let err = generate_keys(dir.path(), MCHID, APPID, ALIPAY_APP_ID).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("refusing to overwrite"), "{message}");
        assert!(message.contains("apiclient_key.pem"), "{message}");
        assert_eq!(read(&keys.wechatpay_private_key_file), before);
    }

    #[test]
    fn a_single_existing_key_file_is_enough_to_refuse() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("alipay")).unwrap();
        fs::write(dir.path().join("alipay/app_private_key.pem"), "mine").unwrap();
        let err = generate_keys_with(dir.path(), MCHID, APPID, ALIPAY_APP_ID, || Ok(key_pairs()))
            .unwrap_err();
        assert!(err.to_string().contains("app_private_key.pem"), "{err}");
        assert!(!dir.path().join("wechatpay/apiclient_key.pem").exists());
        assert_eq!(read(&dir.path().join("alipay/app_private_key.pem")), "mine");
    }

    #[test]
    fn malformed_merchant_ids_are_rejected_before_any_key_is_made() {
        let dir = tempfile::tempdir().unwrap();
        let never = || -> anyhow::Result<&'static KeyPairs> { panic!("must not generate") };
        assert!(generate_keys_with(dir.path(), "19x", APPID, ALIPAY_APP_ID, never).is_err());
        assert!(generate_keys_with(dir.path(), MCHID, "wx\n", ALIPAY_APP_ID, never).is_err());
        assert!(generate_keys_with(dir.path(), MCHID, APPID, "", never).is_err());
        assert!(!dir.path().join("wechatpay").exists());
    }

    #[test]
    fn the_config_snippet_parses_as_toml_with_the_documented_key_names() {
        let (_dir, keys) = generated();
        let table: toml::Table = toml::from_str(&keys.config_snippet).unwrap();
        let mut sections: Vec<&String> = table.keys().collect();
        sections.sort();
        assert_eq!(sections, ["alipay", "privacy", "wechatpay"]);
        assert_eq!(
            table["privacy"]["pseudonym_key_file"]
                .as_str()
                .map(PathBuf::from),
            Some(keys.pseudonym_key_file.clone())
        );
        let pseudonym_key = read(&keys.pseudonym_key_file);
        assert_eq!(pseudonym_key.len(), 64);
        assert!(pseudonym_key.bytes().all(|b| b.is_ascii_hexdigit()));

        let wechat = table["wechatpay"].as_table().unwrap();
        let mut names: Vec<&str> = wechat.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "api_base",
                "apiv3_key_file",
                "appid",
                "mchid",
                "merchant_private_key_file",
                "merchant_serial",
            ]
        );
        assert_eq!(wechat["mchid"].as_str(), Some(MCHID));
        assert_eq!(
            wechat["merchant_serial"].as_str(),
            Some(&*keys.merchant_serial)
        );
        assert_eq!(
            wechat["merchant_private_key_file"]
                .as_str()
                .map(PathBuf::from),
            Some(keys.wechatpay_private_key_file.clone())
        );
        assert_eq!(
            wechat["apiv3_key_file"].as_str().map(PathBuf::from),
            Some(keys.apiv3_key_file.clone())
        );

        let alipay = table["alipay"].as_table().unwrap();
        let mut names: Vec<&str> = alipay.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "alipay_public_key_file",
                "app_id",
                "app_private_key_file",
                "gateway_url"
            ]
        );
        assert_eq!(alipay["app_id"].as_str(), Some(ALIPAY_APP_ID));
        assert_eq!(
            alipay["app_private_key_file"].as_str().map(PathBuf::from),
            Some(keys.alipay_private_key_file.clone())
        );
        // Where the standalone sandbox writes its Alipay public key.
        assert_eq!(
            alipay["alipay_public_key_file"].as_str().map(PathBuf::from),
            Some(
                keys.alipay_private_key_file
                    .with_file_name("alipay_public_key.pem")
            )
        );

        // The placeholders are there, and once uncommented they are valid TOML too.
        assert!(
            keys.config_snippet
                .contains("# platform_public_keys = [{ id = ")
        );
        assert!(keys.config_snippet.contains("# seller_id = "));
        let uncommented = keys
            .config_snippet
            .replace("# platform_public_keys", "platform_public_keys")
            .replace("# seller_id", "seller_id");
        let table: toml::Table = toml::from_str(&uncommented).unwrap();
        let platform = &table["wechatpay"]["platform_public_keys"]
            .as_array()
            .unwrap()[0];
        assert!(platform["id"].as_str().unwrap().starts_with("PUB_KEY_ID_"));
        assert!(platform["file"].is_str());
        assert_eq!(
            table["alipay"]["seller_id"].as_str(),
            Some(crate::embedded::SANDBOX_ALIPAY_SELLER_ID)
        );
    }

    #[test]
    fn the_api_key_hash_is_the_sha256_of_the_printed_secret() {
        let key = create_api_key(
            "checkout-service",
            &["checkout".into(), "entitlements".into()],
        )
        .unwrap();
        let secret = key.secret.expose_secret();
        assert!(secret.starts_with("pgk_"));
        let hex_part = &secret["pgk_".len()..];
        assert_eq!(hex_part.len(), 64);
        assert!(
            hex_part
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(
            key.secret_sha256,
            hex::encode(Sha256::digest(secret.as_bytes()))
        );
        assert_eq!(key.secret_sha256, hash_secret(secret));
        assert!(
            !key.entry_toml.contains(secret),
            "the entry must not carry the secret"
        );
        assert!(
            !format!("{key:?}").contains(secret),
            "Debug must not show the secret"
        );

        let other = create_api_key("checkout-service", &["checkout".into()]).unwrap();
        assert_ne!(other.secret.expose_secret(), secret);
    }

    #[test]
    fn hash_secret_is_lower_hex_sha256() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn the_api_key_entry_parses_as_an_api_keys_table() {
        let key = create_api_key(
            "finance_job-1",
            &["finance".into(), " checkout".into(), "finance".into()],
        )
        .unwrap();
        let table: toml::Table = toml::from_str(&key.entry_toml).unwrap();
        let entries = table["api_keys"].as_array().unwrap();
        assert_eq!(entries.len(), 1);
        let entry = entries[0].as_table().unwrap();
        let mut names: Vec<&str> = entry.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["id", "scopes", "secret_sha256"]);
        assert_eq!(entry["id"].as_str(), Some("finance_job-1"));
        assert_eq!(entry["secret_sha256"].as_str(), Some(&*key.secret_sha256));
        let scopes: Vec<&str> = entry["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(scopes, ["finance", "checkout"]);
        assert_eq!(key.scopes, ["finance", "checkout"]);
    }

    #[test]
    fn an_unknown_scope_is_rejected() {
        let err = create_api_key("svc", &["checkout".into(), "admin".into()]).unwrap_err();
        assert!(err.to_string().contains("unknown scope \"admin\""), "{err}");
        assert!(create_api_key("svc", &[]).is_err(), "no scope at all");
    }

    #[test]
    fn a_malformed_api_key_id_is_rejected() {
        let scopes = ["checkout".to_owned()];
        for id in ["", "Checkout", "a b", "svc.1", "é", &"a".repeat(65)] {
            assert!(create_api_key(id, &scopes).is_err(), "{id:?}");
        }
        assert!(create_api_key(&"a".repeat(64), &scopes).is_ok());
    }
}
