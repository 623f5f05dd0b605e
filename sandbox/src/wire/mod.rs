//! The sandbox's own reading of the two providers' wire protocols, written from their published
//! documentation (`wechatpay-v3.md`, `alipay.md` of the shared design docs) and checked against
//! the published vectors (`tests/vectors.rs`), never taken from the gateway's provider crates.
//!
//! Why a second reading: if the simulator signed, verified and wrote bills with the gateway's own
//! code, a misunderstanding of a provider made once would pass every test. Here the gateway's
//! `paygate-wechatpay` and `paygate-alipay` meet code that reads the same documents on its own,
//! so a canonicalisation mistake on either side shows up as a refused signature or an unreadable
//! bill. Keep it that way: nothing in `sandbox/src` may use the provider crates (they are only the
//! sandbox tests' clients), and this module stays the simplest code that is correct.
//!
//! - [`rsa`]: SHA256withRSA (PKCS#1 v1.5) keys on aws-lc-rs, PEM or bare Base64, key generation.
//! - [`wechat`]: WeChat Pay APIv3's 5-line request message and `Authorization` header, the
//!   3-line answer message and `Wechatpay-*` headers, AEAD_AES_256_GCM resources.
//! - [`x509`]: the self-signed platform certificates `/v3/certificates` lists.
//! - [`alipay`]: form encoding, the sorted parameter string, request checks, the signed
//!   `*_response` node, V1-rule notifications, yuan amounts and Beijing times.
//! - [`wechat_bill`], [`alipay_bill`]: the trade bill files.

pub mod alipay;
pub mod alipay_bill;
pub mod rsa;
pub mod wechat;
pub mod wechat_bill;
pub mod x509;
