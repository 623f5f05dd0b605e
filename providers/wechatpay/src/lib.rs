//! WeChat Pay APIv3 (直连商户) for paygate.
//!
//! A pure core (bytes in, bytes out, no I/O, no clock) and a thin reqwest [`Client`] on top:
//!
//! - [`keys`]: the merchant private key ([`Signer`]) and platform public keys or certificates
//!   ([`Verifier`]), parsed once; SHA256withRSA on aws-lc-rs, or on `rsa` with `pure-rust`.
//! - [`sign`]: the 5-line request message, the `Authorization` header and its parser, JSAPI/App
//!   client-side signatures.
//! - [`verify`]: the 3-line response/callback message, [`PlatformKeys`] by serial, the 5-minute
//!   window, signature probes; and signing as WeChat does, for the sandbox.
//! - [`cipher`]: AEAD_AES_256_GCM with the APIv3 key.
//! - [`notify`]: callbacks: verify, then parse, then decrypt.
//! - [`model`]: wire types; requests from an allowlist, responses without payer fields.
//! - [`certificates`]: platform certificate mode: decrypting `/v3/certificates`, and making a
//!   self-signed certificate (the sandbox's side).
//! - [`bill`]: trade bills, streamed: the SHA-1 check ([`verify_bill_hash`]), the parser
//!   ([`TradeBillReader`] → [`BillRow`]s, the summary checked against the rows) and the writer
//!   ([`write_trade_bill`], the provider's side).
//! - [`client`]: native, JSAPI, H5 and App orders, query, close, refund and refund query,
//!   platform certificates, trade bills ([`Client::trade_bill`], [`Client::download_bill`]).
//!
//! Wire facts and their sources: `wechatpay-v3.md` of the shared design docs.

pub mod bill;
pub mod certificates;
pub mod cipher;
pub mod client;
mod der;
pub mod keys;
pub mod model;
pub mod notify;
pub mod sign;
pub mod verify;

pub use bill::{
    BillError, BillRow, BillRowKind, BillRowSpec, BillTotals, RefundSpec, TradeBillReader,
    WriteOptions, bill_hash, verify_bill_hash, write_trade_bill, write_trade_bill_with,
};
pub use certificates::{CertificateError, decrypt_certificates, self_signed_certificate};
pub use cipher::{ApiV3Key, ApiV3KeyLength, DecryptError};
pub use client::{Client, ClientError, Clock, RetryPolicy};
pub use keys::{KeyError, Signer, Verifier, certificate_serial_hex, generate_key_pair};
pub use model::{
    AppOrderRequest, BillDownload, CertificatesResponse, CloseRequest, EncryptedResource,
    ErrorBody, H5Info, H5OrderRequest, H5OrderResponse, H5SceneInfo, JsapiOrderRequest,
    NativeOrderRequest, NativeOrderResponse, Notification, OrderAmount, Payer, PlatformCertificate,
    PrepayResponse, Refund, RefundAmount, RefundAmounts, RefundNotification, RefundRequest,
    RefundStatus, TradeState, Transaction, TransactionAmount, url_encode_component,
};
pub use notify::{NotifyError, VerifiedNotification, decrypt_resource, verify_notification};
pub use sign::{
    AUTHORIZATION_SCHEME, AppPayParams, Authorization, AuthorizationError, JsapiPayParams,
    MerchantCredentials, new_nonce, request_message,
};
pub use verify::{
    PlatformKeys, SIGNATURE_PROBE_PREFIX, SignatureHeaders, VerifyError, response_message,
    sign_message, signed_headers, verify_signed,
};
