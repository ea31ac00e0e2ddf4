//! Certification path checks of RFC 5280 sec 6.1 that the kernel's X.509 parser leaves to its
//! callers: keyUsage, basicConstraints and pathLenConstraint.
//!
//! The kernel's parser records keyUsage bits and basicConstraints cA as key flags, but not
//! whether keyUsage is present at all, nor pathLenConstraint. RFC 5280 needs both: a CA
//! certificate must assert keyCertSign only when it carries keyUsage (sec 4.2.1.3, 6.1.4 (n)),
//! and a CA's pathLenConstraint bounds the non-self-issued intermediates below it (sec 6.1.4
//! (l), (m)). Many device PKIs issue CA certificates without keyUsage.
//!
//! [`read_extensions`] reads the two extensions from a DER certificate (without allocating);
//! [`check_path`] applies the rules to the facts of a whole chain, ordered as an SPDM
//! certificate chain is (the certificate closest to the root first, the leaf last). A trust
//! anchor's own extensions are not path-validation inputs (sec 6.1.1 (d)): when the chain starts
//! with the anchor, its certificate is skipped.
//!
//! Signatures, names, validity and the trust anchor itself are checked by the caller with the
//! kernel's X.509 and signature code.

use crate::cma::{self, CmaError, TAG_BIT_STRING, TAG_BOOLEAN, TAG_INTEGER, TAG_SEQUENCE};

/// The DER encoding of OID 2.5.29.15 (keyUsage) without tag and length.
pub const KEY_USAGE_OID: [u8; 3] = [0x55, 0x1d, 0x0f];

/// The DER encoding of OID 2.5.29.19 (basicConstraints) without tag and length.
pub const BASIC_CONSTRAINTS_OID: [u8; 3] = [0x55, 0x1d, 0x13];

/// keyUsage digitalSignature (bit 0), as a bit of [`Extensions::key_usage`].
pub const KU_DIGITAL_SIGNATURE: u16 = 1 << 0;
/// keyUsage keyCertSign (bit 5).
pub const KU_KEY_CERT_SIGN: u16 = 1 << 5;
/// keyUsage cRLSign (bit 6).
pub const KU_CRL_SIGN: u16 = 1 << 6;

/// basicConstraints of a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BasicConstraints {
    /// cA.
    pub ca: bool,
    /// pathLenConstraint, if present (saturated at `u32::MAX`).
    pub path_len: Option<u32>,
}

/// The extensions of a certificate that path validation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Extensions {
    /// keyUsage, if present: bit N is the KeyUsage bit N (digitalSignature 0 ... decipherOnly
    /// 8).
    pub key_usage: Option<u16>,
    /// basicConstraints, if present.
    pub basic_constraints: Option<BasicConstraints>,
}

impl Extensions {
    /// basicConstraints says cA.
    pub fn is_ca(&self) -> bool {
        self.basic_constraints.is_some_and(|b| b.ca)
    }

    /// keyUsage is absent or asserts every bit of `bits`.
    pub fn allows(&self, bits: u16) -> bool {
        match self.key_usage {
            Some(k) => k & bits == bits,
            None => true,
        }
    }
}

/// Reads keyUsage and basicConstraints from the DER certificate `cert`. A certificate with
/// either extension twice, or with malformed contents, is refused ([`CmaError::Duplicate`],
/// [`CmaError::BadDer`]).
pub fn read_extensions(cert: &[u8]) -> Result<Extensions, CmaError> {
    let mut out = Extensions::default();
    cma::for_each_extension(cert, |e| {
        if e.oid == KEY_USAGE_OID {
            if out.key_usage.is_some() {
                return Err(CmaError::Duplicate);
            }
            out.key_usage = Some(parse_key_usage(e.value)?);
        } else if e.oid == BASIC_CONSTRAINTS_OID {
            if out.basic_constraints.is_some() {
                return Err(CmaError::Duplicate);
            }
            out.basic_constraints = Some(parse_basic_constraints(e.value)?);
        }
        Ok(())
    })?;
    Ok(out)
}

/// KeyUsage ::= BIT STRING; the first content byte counts the unused bits of the last one.
fn parse_key_usage(v: &[u8]) -> Result<u16, CmaError> {
    let bits = cma::expect(v, TAG_BIT_STRING)?;
    if !bits.rest.is_empty() {
        return Err(CmaError::BadDer);
    }
    let (&unused, bytes) = bits.value.split_first().ok_or(CmaError::BadDer)?;
    if unused > 7 || (bytes.is_empty() && unused != 0) {
        return Err(CmaError::BadDer);
    }
    let mut out = 0u16;
    for (i, &b) in bytes.iter().enumerate() {
        for j in 0..8usize {
            if b & (0x80u8 >> j) == 0 {
                continue;
            }
            // Bits past decipherOnly (8) are not defined: ignored.
            let n = i.saturating_mul(8).saturating_add(j);
            if n < 16 {
                out |= 1u16 << n;
            }
        }
    }
    Ok(out)
}

/// BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, pathLenConstraint INTEGER
/// (0..MAX) OPTIONAL }.
fn parse_basic_constraints(v: &[u8]) -> Result<BasicConstraints, CmaError> {
    let seq = cma::expect(v, TAG_SEQUENCE)?;
    if !seq.rest.is_empty() {
        return Err(CmaError::BadDer);
    }
    let mut out = BasicConstraints::default();
    let mut t = seq.value;
    if !t.is_empty() {
        let f = cma::tlv(t)?;
        if f.tag == TAG_BOOLEAN {
            if f.value.len() != 1 {
                return Err(CmaError::BadDer);
            }
            out.ca = f.value.first().is_some_and(|&b| b != 0);
            t = f.rest;
        }
    }
    if !t.is_empty() {
        let i = cma::expect(t, TAG_INTEGER)?;
        if !i.rest.is_empty() {
            return Err(CmaError::BadDer);
        }
        out.path_len = Some(parse_unsigned(i.value)?);
    }
    Ok(out)
}

/// A non-negative DER INTEGER, saturated at `u32::MAX`.
fn parse_unsigned(v: &[u8]) -> Result<u32, CmaError> {
    let (&first, _) = v.split_first().ok_or(CmaError::BadDer)?;
    if first & 0x80 != 0 {
        return Err(CmaError::BadDer);
    }
    let mut n = 0u32;
    for &b in v {
        n = n
            .checked_mul(256)
            .and_then(|n| n.checked_add(u32::from(b)))
            .unwrap_or(u32::MAX);
    }
    Ok(n)
}

/// What path validation needs of one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CertFacts {
    /// Its keyUsage and basicConstraints.
    pub ext: Extensions,
    /// Subject and issuer are the same name (RFC 5280 "self-issued").
    pub self_issued: bool,
}

/// Why a chain fails [`check_path`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// A certificate that issues another one is not a CA (no basicConstraints cA).
    NotCa,
    /// A CA certificate carries keyUsage without keyCertSign.
    NoKeyCertSign,
    /// More intermediate CAs follow a CA than its pathLenConstraint allows.
    PathLenExceeded,
    /// The leaf carries keyUsage without digitalSignature.
    LeafCannotSign,
}

impl PathError {
    /// A short description, for logs and sysfs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotCa => "issuing certificate is not a CA (basicConstraints cA)",
            Self::NoKeyCertSign => "CA certificate's keyUsage lacks keyCertSign",
            Self::PathLenExceeded => "certificate exceeds a CA's pathLenConstraint",
            Self::LeafCannotSign => "leaf certificate's keyUsage lacks digitalSignature",
        }
    }
}

/// Checks the chain `certs` (closest to the root first, the leaf last) as RFC 5280 sec 6.1.4
/// does for keyUsage, basicConstraints and pathLenConstraint. `anchor_first`: the first
/// certificate is the trust anchor (a self-signed root whose key is trusted), whose extensions
/// are not inputs. On failure returns the index in `certs` of the certificate at fault.
pub fn check_path(certs: &[CertFacts], anchor_first: bool) -> Result<(), (usize, PathError)> {
    let Some(last) = certs.len().checked_sub(1) else {
        return Ok(());
    };
    let start = usize::from(anchor_first && last > 0);
    // max_path_length: how many more non-self-issued intermediates may follow.
    let mut max_path: Option<u32> = None;
    for (i, c) in certs.iter().enumerate().skip(start) {
        if i == last {
            if !c.ext.allows(KU_DIGITAL_SIGNATURE) {
                return Err((i, PathError::LeafCannotSign));
            }
            break;
        }
        // (k) the certificate issues the next one: it must be a CA.
        if !c.ext.is_ca() {
            return Err((i, PathError::NotCa));
        }
        // (n) keyCertSign only when keyUsage is present.
        if !c.ext.allows(KU_KEY_CERT_SIGN) {
            return Err((i, PathError::NoKeyCertSign));
        }
        // (l) a non-self-issued intermediate uses up one step of the path length.
        if !c.self_issued {
            match max_path {
                Some(0) => return Err((i, PathError::PathLenExceeded)),
                Some(n) => max_path = Some(n.saturating_sub(1)),
                None => {}
            }
        }
        // (m) its own constraint may shorten it.
        if let Some(p) = c.ext.basic_constraints.and_then(|b| b.path_len) {
            max_path = Some(max_path.map_or(p, |m| m.min(p)));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca(key_usage: Option<u16>, path_len: Option<u32>) -> CertFacts {
        CertFacts {
            ext: Extensions {
                key_usage,
                basic_constraints: Some(BasicConstraints { ca: true, path_len }),
            },
            self_issued: false,
        }
    }

    fn leaf(key_usage: Option<u16>) -> CertFacts {
        CertFacts {
            ext: Extensions {
                key_usage,
                basic_constraints: None,
            },
            self_issued: false,
        }
    }

    const CA_KU: Option<u16> = Some(KU_KEY_CERT_SIGN | KU_CRL_SIGN);
    const LEAF_KU: Option<u16> = Some(KU_DIGITAL_SIGNATURE);

    #[test]
    fn ca_without_key_usage_is_accepted() {
        let chain = [
            ca(CA_KU, None),
            ca(None, None),
            ca(None, None),
            leaf(LEAF_KU),
        ];
        assert_eq!(check_path(&chain, true), Ok(()));
        assert_eq!(check_path(&chain, false), Ok(()));
    }

    #[test]
    fn key_usage_without_key_cert_sign_is_refused() {
        let chain = [
            ca(CA_KU, None),
            ca(Some(KU_DIGITAL_SIGNATURE), None),
            leaf(LEAF_KU),
        ];
        assert_eq!(check_path(&chain, true), Err((1, PathError::NoKeyCertSign)));
    }

    #[test]
    fn anchor_extensions_are_not_inputs() {
        // An anchor that is no CA by its own extensions still anchors the path.
        let chain = [leaf(None), ca(CA_KU, None), leaf(LEAF_KU)];
        assert_eq!(check_path(&chain, true), Ok(()));
        assert_eq!(check_path(&chain, false), Err((0, PathError::NotCa)));
        // Nor does its pathLenConstraint count.
        let chain = [
            ca(CA_KU, Some(0)),
            ca(CA_KU, None),
            ca(CA_KU, None),
            leaf(LEAF_KU),
        ];
        assert_eq!(check_path(&chain, true), Ok(()));
        assert_eq!(
            check_path(&chain, false),
            Err((1, PathError::PathLenExceeded))
        );
    }

    #[test]
    fn path_len_bounds_intermediates() {
        let ok = [ca(CA_KU, None), ca(CA_KU, Some(0)), leaf(LEAF_KU)];
        assert_eq!(check_path(&ok, true), Ok(()));
        let bad = [
            ca(CA_KU, None),
            ca(CA_KU, Some(0)),
            ca(CA_KU, None),
            leaf(LEAF_KU),
        ];
        assert_eq!(check_path(&bad, true), Err((2, PathError::PathLenExceeded)));
        let one = [
            ca(CA_KU, None),
            ca(CA_KU, Some(1)),
            ca(CA_KU, None),
            leaf(LEAF_KU),
        ];
        assert_eq!(check_path(&one, true), Ok(()));
        // A deeper constraint cannot lengthen a shorter one above it.
        let longer = [
            ca(CA_KU, None),
            ca(CA_KU, Some(1)),
            ca(CA_KU, Some(5)),
            ca(CA_KU, None),
            leaf(LEAF_KU),
        ];
        assert_eq!(
            check_path(&longer, true),
            Err((3, PathError::PathLenExceeded))
        );
        // Self-issued intermediates (key rollover) do not count.
        let mut rollover = ca(CA_KU, None);
        rollover.self_issued = true;
        let chain = [ca(CA_KU, None), ca(CA_KU, Some(0)), rollover, leaf(LEAF_KU)];
        assert_eq!(check_path(&chain, true), Ok(()));
    }

    #[test]
    fn non_ca_issuer_and_leaf_usage() {
        assert_eq!(
            check_path(&[ca(CA_KU, None), leaf(None), leaf(LEAF_KU)], true),
            Err((1, PathError::NotCa))
        );
        assert_eq!(check_path(&[ca(CA_KU, None), leaf(None)], true), Ok(()));
        assert_eq!(
            check_path(&[ca(CA_KU, None), leaf(Some(KU_KEY_CERT_SIGN))], true),
            Err((1, PathError::LeafCannotSign))
        );
        assert_eq!(check_path(&[], true), Ok(()));
        assert_eq!(check_path(&[leaf(LEAF_KU)], true), Ok(()));
    }

    #[test]
    fn key_usage_bits() {
        // digitalSignature only: 03 02 07 80
        assert_eq!(
            parse_key_usage(&[0x03, 0x02, 0x07, 0x80]),
            Ok(KU_DIGITAL_SIGNATURE)
        );
        // keyCertSign | cRLSign: 03 02 01 06
        assert_eq!(
            parse_key_usage(&[0x03, 0x02, 0x01, 0x06]),
            Ok(KU_KEY_CERT_SIGN | KU_CRL_SIGN)
        );
        // decipherOnly (bit 8): 03 03 07 00 80
        assert_eq!(parse_key_usage(&[0x03, 0x03, 0x07, 0x00, 0x80]), Ok(1 << 8));
        assert!(parse_key_usage(&[0x03, 0x01, 0x08]).is_err());
        assert!(parse_key_usage(&[0x04, 0x02, 0x07, 0x80]).is_err());
    }

    #[test]
    fn basic_constraints_forms() {
        // SEQUENCE {} : not a CA
        assert_eq!(
            parse_basic_constraints(&[0x30, 0x00]),
            Ok(BasicConstraints::default())
        );
        // SEQUENCE { TRUE, 0 }
        assert_eq!(
            parse_basic_constraints(&[0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0x00]),
            Ok(BasicConstraints {
                ca: true,
                path_len: Some(0)
            })
        );
        // SEQUENCE { TRUE, 300 }
        assert_eq!(
            parse_basic_constraints(&[0x30, 0x07, 0x01, 0x01, 0xff, 0x02, 0x02, 0x01, 0x2c]),
            Ok(BasicConstraints {
                ca: true,
                path_len: Some(300)
            })
        );
        // negative pathLenConstraint
        assert!(
            parse_basic_constraints(&[0x30, 0x06, 0x01, 0x01, 0xff, 0x02, 0x01, 0x80]).is_err()
        );
        // trailing bytes
        assert!(parse_basic_constraints(&[0x30, 0x03, 0x01, 0x01, 0xff, 0x00]).is_err());
    }
}
