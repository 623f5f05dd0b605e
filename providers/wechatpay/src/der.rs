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
