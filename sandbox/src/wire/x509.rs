//! The platform certificates of WeChat Pay's certificate mode (wechatpay-v3.md §2): a
//! self-signed X.509 v3 certificate (RFC 5280) around the platform public key, DER written by
//! hand, only the few types a certificate needs. Real ones are issued by Tenpay's CA; the
//! gateway trusts a certificate because it decrypts under the APIv3 key, not by its issuer.

use chrono::{DateTime, Datelike as _, Utc};

use super::rsa::{PrivateKey, pem};

const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const NULL: u8 = 0x05;
const OID: u8 = 0x06;
const UTF8_STRING: u8 = 0x0C;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// `[0] EXPLICIT`, the version's tag.
const CONTEXT_0: u8 = 0xA0;

/// 1.2.840.113549.1.1.11, sha256WithRSAEncryption.
const SHA256_WITH_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B];
/// 2.5.4.3, commonName.
const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// The PEM certificate of `key`'s public key: serial `serial` (big-endian bytes, first byte
/// 0x01-0x7F so the INTEGER is positive with no padding), issuer = subject = `CN=common_name`,
/// valid from `not_before` to `not_after`, signed by `key` itself.
pub fn self_signed_certificate(
    key: &PrivateKey,
    serial: &[u8],
    common_name: &str,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
) -> String {
    let name = tlv(
        SEQUENCE,
        &tlv(
            SET,
            &tlv(
                SEQUENCE,
                &[
                    tlv(OID, COMMON_NAME),
                    tlv(UTF8_STRING, common_name.as_bytes()),
                ]
                .concat(),
            ),
        ),
    );
    let algorithm = tlv(
        SEQUENCE,
        &[tlv(OID, SHA256_WITH_RSA), tlv(NULL, &[])].concat(),
    );
    let tbs = tlv(
        SEQUENCE,
        &[
            tlv(CONTEXT_0, &tlv(INTEGER, &[2])), // v3
            tlv(INTEGER, serial),
            algorithm.clone(),
            name.clone(),
            tlv(SEQUENCE, &[time(not_before), time(not_after)].concat()),
            name,
            key.public_key_der().to_vec(),
        ]
        .concat(),
    );
    let mut bits = vec![0]; // no unused bits
    bits.extend(key.sign(&tbs));
    let certificate = tlv(SEQUENCE, &[tbs, algorithm, tlv(BIT_STRING, &bits)].concat());
    pem("CERTIFICATE", &certificate)
}

/// Tag, definite length (short form below 128, else long form), content.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

/// RFC 5280 §4.1.2.5: UTCTime `YYMMDDHHMMSSZ` for 1950-2049, GeneralizedTime after.
fn time(at: DateTime<Utc>) -> Vec<u8> {
    if (1950..2050).contains(&at.year()) {
        tlv(UTC_TIME, at.format("%y%m%d%H%M%SZ").to_string().as_bytes())
    } else {
        tlv(
            GENERALIZED_TIME,
            at.format("%Y%m%d%H%M%SZ").to_string().as_bytes(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_take_the_long_form_from_128_bytes() {
        assert_eq!(tlv(0x04, &[7; 3])[..2], [0x04, 3]);
        assert_eq!(tlv(0x04, &[7; 200])[..3], [0x04, 0x81, 200]);
        assert_eq!(tlv(0x04, &[7; 300])[..4], [0x04, 0x82, 0x01, 0x2C]);
    }

    #[test]
    fn times_switch_to_generalized_time_in_2050() {
        let at = |s| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(
            time(at("2026-11-29T09:20:32Z")),
            tlv(UTC_TIME, b"261129092032Z")
        );
        assert_eq!(
            time(at("2050-01-01T00:00:00Z")),
            tlv(GENERALIZED_TIME, b"20500101000000Z")
        );
    }
}
