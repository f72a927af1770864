//! Just enough DER to read the common name (CN) of a certificate's subject, for
//! `auth_type = cert`, without an X.509 crate. The input comes from a peer: every length is
//! checked and nothing panics; anything unexpected gives `None`.

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OBJECT_IDENTIFIER: u8 = 0x06;
/// `[0] EXPLICIT Version`, optional at the start of a TBSCertificate.
const VERSION_TAG: u8 = 0xa0;
/// 2.5.4.3, id-at-commonName.
const COMMON_NAME_OID: &[u8] = &[0x55, 0x04, 0x03];

const UTF8_STRING: u8 = 0x0c;
const PRINTABLE_STRING: u8 = 0x13;
const T61_STRING: u8 = 0x14;
const IA5_STRING: u8 = 0x16;
const BMP_STRING: u8 = 0x1e;

/// One tag-length-value: `(tag, contents, rest)`. Definite lengths up to 4 bytes only.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(n)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    let (body, rest) = rest.split_at_checked(len)?;
    Some((tag, body, rest))
}

fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, body, rest) = tlv(input)?;
    (found == tag).then_some((body, rest))
}

/// The first CN of the subject of the DER certificate `der` (the one OpenSSL's
/// `X509_NAME_get_text_by_NID`, and so PostgreSQL, uses). `None` when there is none, or it holds
/// a NUL (PostgreSQL refuses those too).
pub(super) fn subject_common_name(der: &[u8]) -> Option<String> {
    let (certificate, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(certificate, SEQUENCE)?;
    let mut rest = tbs;
    if rest.first() == Some(&VERSION_TAG) {
        rest = tlv(rest)?.2;
    }
    // serialNumber, signature, issuer, validity; then the subject.
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (subject, _) = expect(rest, SEQUENCE)?;
    common_name(subject).filter(|cn| !cn.contains('\0'))
}

/// Walks `Name ::= SEQUENCE OF SET OF AttributeTypeAndValue` for the first CN.
fn common_name(name: &[u8]) -> Option<String> {
    let mut rdns = name;
    while !rdns.is_empty() {
        let (set, next) = expect(rdns, SET)?;
        rdns = next;
        let mut attributes = set;
        while !attributes.is_empty() {
            let (attribute, next) = expect(attributes, SEQUENCE)?;
            attributes = next;
            let (oid, value) = expect(attribute, OBJECT_IDENTIFIER)?;
            if oid == COMMON_NAME_OID {
                let (tag, body, _) = tlv(value)?;
                return directory_string(tag, body);
            }
        }
    }
    None
}

fn directory_string(tag: u8, body: &[u8]) -> Option<String> {
    match tag {
        UTF8_STRING | PRINTABLE_STRING | IA5_STRING => String::from_utf8(body.to_vec()).ok(),
        // Treated as Latin-1, as OpenSSL does.
        T61_STRING => Some(body.iter().map(|&b| char::from(b)).collect()),
        BMP_STRING => {
            let units: Vec<u16> = body
                .chunks_exact(2)
                .map(|pair| match pair {
                    [hi, lo] => u16::from_be_bytes([*hi, *lo]),
                    _ => 0,
                })
                .collect();
            (body.len() % 2 == 0)
                .then(|| String::from_utf16(&units).ok())
                .flatten()
        }
        _ => None,
    }
}
