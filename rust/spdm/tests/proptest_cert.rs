//! Property tests for the certificate path checks: the extension reader returns exactly the
//! keyUsage and basicConstraints a certificate carries and never panics on other bytes, and the
//! path rules treat the trust anchor, missing keyUsage and pathLenConstraint as RFC 5280 does.

use coco_spdm::cert::{
    check_path, read_extensions, BasicConstraints, CertFacts, Extensions, PathError,
};
use proptest::prelude::*;

/// DER TLV with a definite length.
fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = value.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(value);
    out
}

fn extension(oid: &[u8], critical: bool, value: &[u8]) -> Vec<u8> {
    let mut body = tlv(0x06, oid);
    if critical {
        body.extend_from_slice(&[0x01, 0x01, 0xff]);
    }
    body.extend(tlv(0x04, value));
    tlv(0x30, &body)
}

fn key_usage_der(bits: u16) -> Vec<u8> {
    let bytes = [
        (bits as u8).reverse_bits(),
        ((bits >> 8) as u8).reverse_bits(),
    ];
    let used = if bytes[1] != 0 { 2 } else { 1 };
    let last = bytes[used - 1];
    let unused = if last == 0 {
        0
    } else {
        last.trailing_zeros() as u8
    };
    let mut v = vec![unused];
    v.extend_from_slice(&bytes[..used]);
    tlv(0x03, &v)
}

fn basic_constraints_der(b: BasicConstraints) -> Vec<u8> {
    let mut body = Vec::new();
    if b.ca {
        body.extend_from_slice(&[0x01, 0x01, 0xff]);
    }
    if let Some(p) = b.path_len {
        let mut bytes: Vec<u8> = p
            .to_be_bytes()
            .into_iter()
            .skip_while(|&x| x == 0)
            .collect();
        if bytes.first().map_or(true, |&x| x & 0x80 != 0) {
            bytes.insert(0, 0);
        }
        body.extend(tlv(0x02, &bytes));
    }
    tlv(0x30, &body)
}

/// A certificate skeleton: the walker only counts the TBSCertificate's fields.
fn certificate(ext: &Extensions, other: &[Vec<u8>]) -> Vec<u8> {
    let mut exts = Vec::new();
    for e in other {
        exts.extend_from_slice(e);
    }
    if let Some(k) = ext.key_usage {
        exts.extend(extension(&[0x55, 0x1d, 0x0f], true, &key_usage_der(k)));
    }
    if let Some(b) = ext.basic_constraints {
        exts.extend(extension(
            &[0x55, 0x1d, 0x13],
            true,
            &basic_constraints_der(b),
        ));
    }
    let mut tbs = tlv(0xa0, &tlv(0x02, &[2]));
    for _ in 0..6 {
        tbs.extend(tlv(0x30, &[0x05, 0x00]));
    }
    tbs.extend(tlv(0xa3, &tlv(0x30, &exts)));
    let mut cert = tlv(0x30, &tbs);
    cert.extend(tlv(0x30, &[0x05, 0x00]));
    cert.extend(tlv(0x03, &[0x00]));
    tlv(0x30, &cert)
}

fn arb_ext() -> impl Strategy<Value = Extensions> {
    (
        proptest::option::of(0u16..0x200),
        proptest::option::of((any::<bool>(), proptest::option::of(0u32..1000))),
    )
        .prop_map(|(key_usage, bc)| Extensions {
            key_usage,
            basic_constraints: bc.map(|(ca, path_len)| BasicConstraints { ca, path_len }),
        })
}

fn arb_facts() -> impl Strategy<Value = CertFacts> {
    (arb_ext(), any::<bool>()).prop_map(|(ext, self_issued)| CertFacts { ext, self_issued })
}

proptest! {
    #[test]
    fn extensions_round_trip(ext in arb_ext()) {
        let other = vec![extension(&[0x55, 0x1d, 0x11], false, &tlv(0x30, &[]))];
        prop_assert_eq!(read_extensions(&certificate(&ext, &other)), Ok(ext));
    }

    #[test]
    fn reader_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = read_extensions(&data);
        let mut der = vec![0x30, 0x82, (data.len() >> 8) as u8, data.len() as u8];
        der.extend_from_slice(&data);
        let _ = read_extensions(&der);
    }

    #[test]
    fn reader_survives_corruption(ext in arb_ext(), pos in any::<usize>(), byte in any::<u8>()) {
        let mut der = certificate(&ext, &[]);
        let i = pos % der.len();
        der[i] = byte;
        let _ = read_extensions(&der);
    }

    #[test]
    fn anchor_is_not_an_input(anchor in arb_facts(), rest in proptest::collection::vec(arb_facts(), 1..6)) {
        let mut chain = vec![anchor];
        chain.extend_from_slice(&rest);
        let with_anchor = check_path(&chain, true);
        let without = check_path(&rest, false).map_err(|(i, e)| (i + 1, e));
        prop_assert_eq!(with_anchor, without);
    }

    #[test]
    fn dropping_key_usage_from_cas_never_breaks_a_chain(chain in proptest::collection::vec(arb_facts(), 1..6),
                                                        anchor in any::<bool>()) {
        if check_path(&chain, anchor).is_ok() {
            let mut relaxed = chain.clone();
            let last = relaxed.len() - 1;
            for c in &mut relaxed[..last] {
                c.ext.key_usage = None;
            }
            prop_assert_eq!(check_path(&relaxed, anchor), Ok(()));
        }
    }

    #[test]
    fn path_len_counts_non_self_issued_cas(depth in 1usize..6, limit in 0u32..6) {
        // anchor, a CA with pathLenConstraint `limit`, then `depth` more CAs, then a leaf.
        let ca = |p| CertFacts {
            ext: Extensions { key_usage: None,
                              basic_constraints: Some(BasicConstraints { ca: true, path_len: p }) },
            self_issued: false,
        };
        let mut chain = vec![ca(None), ca(Some(limit))];
        chain.extend(std::iter::repeat_n(ca(None), depth));
        chain.push(CertFacts::default());
        let r = check_path(&chain, true);
        if depth as u32 <= limit {
            prop_assert_eq!(r, Ok(()));
        } else {
            prop_assert_eq!(r, Err((2 + limit as usize, PathError::PathLenExceeded)));
        }
    }
}
