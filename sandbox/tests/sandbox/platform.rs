//! Platform certificate mode: `/v3/certificates`, the client's verification of it, and key
//! rotation with an overlap.

use std::sync::{Arc, RwLock};

use paygate_sandbox::PlatformMode;
use paygate_wechatpay::{
    ApiV3Key, Client, ClientError, PlatformKeys, SignatureHeaders, Verifier, VerifyError,
    decrypt_certificates,
};
use serde_json::Value;

use crate::harness::{
    APIV3_KEY, Harness, PLATFORM_KEY_ID, PLATFORM_PUB, Receiver, credentials, eventually, now,
    order, order_no, platform_keys, start,
};

fn apiv3_key() -> ApiV3Key {
    ApiV3Key::new(APIV3_KEY.as_bytes()).unwrap()
}

/// A client that trusts exactly `keys`.
fn client(h: &Harness, keys: PlatformKeys) -> (Client, Arc<RwLock<PlatformKeys>>) {
    let shared = Arc::new(RwLock::new(keys));
    let client = Client::new(
        reqwest::Client::new(),
        &format!("{}/sandbox/wechatpay", h.base),
        credentials(),
        shared.clone(),
        Arc::new(now),
    );
    (client, shared)
}

#[tokio::test]
async fn certificates_lists_the_platform_key_as_a_certificate_encrypted_under_the_apiv3_key() {
    let h = start().await;
    assert_eq!(h.sandbox.wechat_platform_mode(), PlatformMode::PublicKey);
    assert_eq!(h.sandbox.wechat_signing_serial(), PLATFORM_KEY_ID);

    let listing = h.client.certificates().await.unwrap();
    assert_eq!(listing.data.len(), 1);
    let entry = &listing.data[0];
    assert_eq!(
        entry.encrypt_certificate.associated_data.as_deref(),
        Some("certificate")
    );
    assert_eq!(entry.encrypt_certificate.nonce.len(), 12);
    assert!(entry.effective_time.ends_with("+08:00") && entry.expire_time.ends_with("+08:00"));
    assert_eq!(entry.serial_no.len(), 40);
    assert_eq!(
        h.sandbox.wechat_platform_serials(),
        [entry.serial_no.as_str()]
    );

    let decrypted = decrypt_certificates(&listing, &apiv3_key()).unwrap();
    let (serial, verifier, _) = &decrypted[0];
    assert_eq!(serial, &entry.serial_no);
    // Before any rotation the certificate wraps the public-key-mode key itself.
    assert_eq!(verifier.public_key_pem(), PLATFORM_PUB);
}

#[tokio::test]
async fn in_certificate_mode_a_first_download_verifies_with_the_certificate_it_lists() {
    let h = start().await;
    h.sandbox.use_wechat_platform_certificates();
    let serial = h.sandbox.wechat_signing_serial();
    assert_eq!(h.sandbox.wechat_platform_serials(), [serial.as_str()]);

    // Trusting nothing yet and without the APIv3 key, nothing can be checked: refused.
    let (bare, _) = client(&h, PlatformKeys::new());
    match bare.certificates().await {
        Err(ClientError::Verify(VerifyError::UnknownSerial(s))) => assert_eq!(s, serial),
        other => panic!("expected UnknownSerial, got {other:?}"),
    }
    // With the APIv3 key the listed certificate authenticates, and verifies the answer.
    let (bootstrapping, keys) = client(&h, PlatformKeys::new());
    let bootstrapping = bootstrapping.with_apiv3_key(apiv3_key());
    let listing = bootstrapping.certificates().await.unwrap();
    for (serial, verifier, _) in decrypt_certificates(&listing, &apiv3_key()).unwrap() {
        keys.write().unwrap().insert(serial, verifier);
    }
    // Now ordinary answers, signed under the certificate serial, verify.
    let out_trade_no = order_no("CM");
    bootstrapping
        .native_order(&order(&out_trade_no, 100, "http://127.0.0.1:9/n"))
        .await
        .unwrap();

    // A wrong APIv3 key: the certificates do not authenticate, so neither does the answer.
    let (wrong, _) = client(&h, PlatformKeys::new());
    let wrong = wrong.with_apiv3_key(ApiV3Key::new(b"ABCDEF0123456789abcdef0123456789").unwrap());
    assert!(matches!(
        wrong.certificates().await,
        Err(ClientError::Certificates(_))
    ));
    // A known-key answer never needs the listing path: the PUB_KEY_ID client still verifies
    // an ordinary answer only if it trusts the serial, which it does not.
    assert!(matches!(
        h.client.query_by_out_trade_no(&out_trade_no).await,
        Err(ClientError::Verify(VerifyError::UnknownSerial(_)))
    ));
}

#[tokio::test]
async fn rotation_signs_with_the_new_certificate_and_keeps_the_old_one_listed() {
    let h = start().await;
    h.sandbox.use_wechat_platform_certificates();
    let old = h.sandbox.wechat_signing_serial();
    let mut trusted = platform_keys();
    let listing = h
        .client
        .clone()
        .with_apiv3_key(apiv3_key())
        .certificates()
        .await
        .unwrap();
    for (serial, verifier, _) in decrypt_certificates(&listing, &apiv3_key()).unwrap() {
        trusted.insert(serial, verifier);
    }
    let (gateway, keys) = client(&h, trusted);
    let gateway = gateway.with_apiv3_key(apiv3_key());
    let out_trade_no = order_no("RK");
    gateway
        .native_order(&order(&out_trade_no, 100, "http://127.0.0.1:9/n"))
        .await
        .unwrap();

    let rotated: Value = h
        .http
        .post(format!("{}/sandbox/wechatpay/rotate-platform-key", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new = rotated["serial_no"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(
        h.sandbox.wechat_platform_serials(),
        [old.clone(), new.clone()]
    );
    assert_eq!(h.sandbox.wechat_signing_serial(), new);

    // The gateway does not know the new serial yet: answers are refused, not trusted.
    match gateway.query_by_out_trade_no(&out_trade_no).await {
        Err(ClientError::Verify(VerifyError::UnknownSerial(s))) => assert_eq!(s, new),
        other => panic!("expected UnknownSerial, got {other:?}"),
    }
    // It downloads the certificates (signed by the new one, which the answer itself lists)...
    let listing = gateway.certificates().await.unwrap();
    let decrypted = decrypt_certificates(&listing, &apiv3_key()).unwrap();
    let serials: Vec<&str> = decrypted.iter().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(serials, [old.as_str(), new.as_str()]);
    for (serial, verifier, _) in decrypted {
        keys.write().unwrap().insert(serial, verifier);
    }
    // ...and verifies again.
    gateway.query_by_out_trade_no(&out_trade_no).await.unwrap();

    // Notifications carry the new serial and verify with the new certificate.
    let receiver = Receiver::start(&[204]).await;
    let paid_no = order_no("RN");
    gateway
        .native_order(&order(&paid_no, 100, &receiver.url))
        .await
        .unwrap();
    h.sandbox.pay(&paid_no).unwrap();
    let received = eventually("the callback", || receiver.received().into_iter().next()).await;
    let headers = SignatureHeaders::from_header_map(&received.headers).unwrap();
    assert_eq!(headers.serial, new);
    let verified = paygate_wechatpay::verify_notification(
        &keys.read().unwrap(),
        &headers,
        &received.body,
        now(),
        &apiv3_key(),
    );
    assert!(verified.is_ok(), "{verified:?}");
    // The old certificate does not verify what the new key signed.
    let mut old_only = PlatformKeys::new();
    old_only.insert(
        new.clone(),
        Verifier::from_pem(&h.sandbox.wechat_platform_certificates()[0].certificate_pem).unwrap(),
    );
    assert!(paygate_wechatpay::verify_signed(&old_only, &headers, &received.body, now()).is_err());
}

#[tokio::test]
async fn a_second_rotation_retires_the_oldest_certificate() {
    let h = start().await;
    let first = h.sandbox.wechat_platform_serials()[0].clone();
    let second = h.sandbox.rotate_wechat_platform_key().unwrap();
    assert_eq!(h.sandbox.wechat_platform_mode(), PlatformMode::Certificate);
    let third = h.sandbox.rotate_wechat_platform_key().unwrap();
    assert_eq!(
        h.sandbox.wechat_platform_serials(),
        [second.clone(), third.clone()]
    );
    assert!(!h.sandbox.wechat_platform_serials().contains(&first));

    let keys: Value = h
        .http
        .get(format!("{}/sandbox/keys", h.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(keys["wechatpay"]["signing_serial"], third);
    assert_eq!(keys["wechatpay"]["platform_key_id"], PLATFORM_KEY_ID);
    assert_eq!(
        keys["wechatpay"]["certificates"].as_array().unwrap().len(),
        2
    );

    // Back to public-key mode: the PUB_KEY_ID key, which never rotates, signs again.
    let response = h
        .http
        .post(format!("{}/sandbox/wechatpay/platform-mode", h.base))
        .json(&serde_json::json!({"mode": "public_key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(h.sandbox.wechat_signing_serial(), PLATFORM_KEY_ID);
    let out_trade_no = order_no("PK");
    h.client
        .native_order(&order(&out_trade_no, 100, "http://127.0.0.1:9/n"))
        .await
        .unwrap();
}
