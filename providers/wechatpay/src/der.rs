//! Just enough DER to take the serial number and the public key out of an X.509 certificate
//! (platform certificate mode). Not a validator: WeChat's certificates are trusted because they
//! come AES-GCM-encrypted under the APIv3 key from a signed `/v3/certificates` answer.

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const VERSION_TAG: u8 = 0xA0;

pub(crate) struct Certificate<'a> {
    /// The serial's INTEGER content bytes (may start with a 0x00 sign byte).
    pub(crate) serial: &'a [u8],
    /// The complete SubjectPublicKeyInfo TLV.
    pub(crate) spki: &'a [u8],
}

impl<'a> Certificate<'a> {
    /// Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
    /// TBSCertificate ::= SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
    ///                               validity, subject, subjectPublicKeyInfo, ... }
    pub(crate) fn parse(der: &'a [u8]) -> Option<Certificate<'a>> {
        let (tag, certificate, _) = read_tlv(der)?;
        if tag != SEQUENCE {
            return None;
        }
        let (tag, tbs, _) = read_tlv(certificate)?;
        if tag != SEQUENCE {
            return None;
        }
        let mut rest = tbs;
        let (mut tag, mut value, mut after) = read_tlv(rest)?;
        if tag == VERSION_TAG {
            rest = after;
            (tag, value, after) = read_tlv(rest)?;
        }
        if tag != INTEGER || value.is_empty() {
            return None;
        }
        let serial = value;
        rest = after;
        // signature algorithm, issuer, validity, subject
        for _ in 0..4 {
            let (_, _, next) = read_tlv(rest)?;
            rest = next;
        }
        let (tag, _, after) = read_tlv(rest)?;
        if tag != SEQUENCE {
            return None;
        }
        let spki = &rest[..rest.len() - after.len()];
        Some(Certificate { serial, spki })
    }
}

/// One tag-length-value: (tag, value, the bytes after it). Definite lengths only, as DER requires.
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7F);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        rest = &rest[count..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// Writing, for [`crate::certificates::self_signed_certificate`]: the sandbox's platform
/// certificates and the tests'. Only the handful of DER types an X.509 v3 certificate needs.
pub(crate) mod write {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const INTEGER: u8 = 0x02;
    const BIT_STRING: u8 = 0x03;
    const NULL: u8 = 0x05;
    const OID: u8 = 0x06;
    const UTF8_STRING: u8 = 0x0C;
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;
    const VERSION_TAG: u8 = 0xA0;

    /// 1.2.840.113549.1.1.11, sha256WithRSAEncryption.
    const SHA256_WITH_RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x0B];
    /// 2.5.4.3, commonName.
    const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

    pub(crate) fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        let len = content.len();
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes: Vec<u8> = len
                .to_be_bytes()
                .into_iter()
                .skip_while(|&b| b == 0)
                .collect();
            out.push(0x80 | bytes.len() as u8);
            out.extend(bytes);
        }
        out.extend_from_slice(content);
        out
    }

    fn sequence(parts: &[&[u8]]) -> Vec<u8> {
        tlv(SEQUENCE, &parts.concat())
    }

    /// `AlgorithmIdentifier { sha256WithRSAEncryption, NULL }`.
    pub(crate) fn sha256_with_rsa() -> Vec<u8> {
        sequence(&[&tlv(OID, SHA256_WITH_RSA), &tlv(NULL, &[])])
    }

    /// `Name` with one RDN, `CN=<common_name>`.
    fn name(common_name: &str) -> Vec<u8> {
        let attribute = sequence(&[
            &tlv(OID, COMMON_NAME),
            &tlv(UTF8_STRING, common_name.as_bytes()),
        ]);
        sequence(&[&tlv(SET, &attribute)])
    }

    /// RFC 5280 §4.1.2.5: UTCTime for 1950–2049, GeneralizedTime otherwise, always in UTC.
    fn time(unix: i64) -> Vec<u8> {
        let (year, month, day) = civil_from_days(unix.div_euclid(86_400));
        let seconds = unix.rem_euclid(86_400);
        let clock = format!(
            "{month:02}{day:02}{:02}{:02}{:02}Z",
            seconds / 3600,
            seconds % 3600 / 60,
            seconds % 60
        );
        if (1950..2050).contains(&year) {
            tlv(UTC_TIME, format!("{:02}{clock}", year % 100).as_bytes())
        } else {
            tlv(GENERALIZED_TIME, format!("{year:04}{clock}").as_bytes())
        }
    }

    /// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
    /// `civil_from_days`), so that the crate needs no date library.
    fn civil_from_days(days: i64) -> (i64, u32, u32) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        (year, month, day)
    }

    /// The `TBSCertificate` of a v3 certificate whose issuer and subject are both `CN=name`.
    pub(crate) fn tbs_certificate(
        serial: &[u8],
        common_name: &str,
        not_before_unix: i64,
        not_after_unix: i64,
        spki: &[u8],
    ) -> Vec<u8> {
        let name = name(common_name);
        sequence(&[
            &tlv(VERSION_TAG, &tlv(INTEGER, &[2])),
            &tlv(INTEGER, serial),
            &sha256_with_rsa(),
            &name,
            &sequence(&[&time(not_before_unix), &time(not_after_unix)]),
            &name,
            spki,
        ])
    }

    /// `Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }`.
    pub(crate) fn certificate(tbs: &[u8], signature: &[u8]) -> Vec<u8> {
        let mut bits = vec![0u8];
        bits.extend_from_slice(signature);
        sequence(&[tbs, &sha256_with_rsa(), &tlv(BIT_STRING, &bits)])
    }

    #[cfg(test)]
    mod tests {
        use super::{civil_from_days, time};

        #[test]
        fn days_become_calendar_dates() {
            assert_eq!(civil_from_days(0), (1970, 1, 1));
            assert_eq!(civil_from_days(11_016), (2000, 2, 29));
            assert_eq!(civil_from_days(20_819), (2027, 1, 1));
            assert_eq!(civil_from_days(-1), (1969, 12, 31));
        }

        #[test]
        fn validity_uses_utc_time_before_2050_and_generalized_time_after() {
            // 2026-11-29T09:20:32Z
            assert_eq!(&time(1_795_944_032)[2..], b"261129092032Z");
            assert_eq!(time(1_795_944_032)[0], 0x17);
            // 2050-01-01T00:00:00Z
            assert_eq!(&time(2_524_608_000)[2..], b"20500101000000Z");
            assert_eq!(time(2_524_608_000)[0], 0x18);
        }
    }
}
