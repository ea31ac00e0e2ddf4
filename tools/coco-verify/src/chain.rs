//! The certificate chain of a slot: splitting (coco-spdm's DER walker), parsing (x509-parser),
//! and checking every signature link and the trust anchor (RustCrypto, see [`crate::crypto`]).

use coco_spdm::auth::DerCertificates;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::crypto::verify_x509;

/// A parsed certificate and its DER bytes.
pub struct Cert<'a> {
    /// The DER encoding.
    pub der: &'a [u8],
    /// The parsed certificate.
    pub cert: X509Certificate<'a>,
}

/// Parses one DER certificate that must fill `der` exactly.
pub fn parse_cert(der: &[u8]) -> Result<Cert<'_>, String> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the certificate", rest.len()));
    }
    Ok(Cert { der, cert })
}

/// Splits and parses concatenated DER certificates (root side first, leaf last).
pub fn parse_chain(bytes: &[u8]) -> Result<Vec<Cert<'_>>, String> {
    let mut out = Vec::new();
    for (i, der) in DerCertificates::new(bytes).enumerate() {
        let der = der.map_err(|e| format!("certificate {i}: malformed DER: {}", e.as_str()))?;
        out.push(parse_cert(der).map_err(|e| format!("certificate {i}: {e}"))?);
    }
    if out.is_empty() {
        return Err("no certificate".to_string());
    }
    Ok(out)
}

/// Checks that `child` names `issuer` as its issuer and carries `issuer`'s signature.
pub fn check_signed_by(child: &Cert<'_>, issuer: &Cert<'_>) -> Result<(), String> {
    if child.cert.issuer().as_raw() != issuer.cert.subject().as_raw() {
        return Err(format!(
            "issuer '{}' is not the subject '{}'",
            child.cert.issuer(),
            issuer.cert.subject()
        ));
    }
    verify_x509(
        issuer.cert.public_key().raw,
        &child.cert.signature_algorithm.algorithm.to_id_string(),
        child.cert.tbs_certificate.as_ref(),
        &child.cert.signature_value.data,
    )
}

fn self_issued(c: &Cert<'_>) -> bool {
    c.cert.issuer().as_raw() == c.cert.subject().as_raw()
}

/// Checks the chain (root side first) as RFC 5280 sec 6.1 path validation does, for what a
/// device chain needs: each certificate is signed by the one before it, a self-issued first
/// certificate carries a valid self-signature, and every CA certificate of the path that
/// issues another one has basicConstraints cA (6.1.4 (k)), keyUsage keyCertSign when it has a
/// keyUsage extension at all (6.1.4 (n)), and stays within the pathLenConstraints above it
/// (6.1.4 (l), (m); self-issued CAs do not count).
///
/// The trust anchor is not part of the path and its extensions are no inputs: it is `anchor`
/// when the chain starts with it (the chain's first certificate being signed by `anchor`
/// otherwise, see [`check_anchor`], which makes that first certificate part of the path), and
/// without an anchor the chain's first certificate. Validity periods, policies and name
/// constraints are not checked.
pub fn check_chain(chain: &[Cert<'_>], anchor: Option<&Cert<'_>>) -> Result<(), String> {
    let Some(first) = chain.first() else {
        return Err("no certificate".to_string());
    };
    if self_issued(first) {
        check_signed_by(first, first).map_err(|e| format!("certificate 0 (self-signed): {e}"))?;
    }
    // Index of the path's first certificate in `chain`.
    let path_start = match anchor {
        Some(a) if a.der != first.der => 0,
        _ => 1,
    };
    // max_path_length of RFC 5280 sec 6.1.2 (k), and the certificate that last lowered it.
    let mut max_path_length = chain.len().saturating_sub(path_start);
    let mut limited_by: Option<(usize, usize)> = None;
    for (i, pair) in chain.windows(2).enumerate() {
        let (issuer, child) = (&pair[0], &pair[1]);
        let name = issuer.cert.subject();
        if i >= path_start {
            if !issuer.cert.is_ca() {
                return Err(format!(
                    "certificate {i} ('{name}') issues certificate {} but is not a CA",
                    i + 1
                ));
            }
            let key_usage = issuer
                .cert
                .key_usage()
                .map_err(|e| format!("certificate {i} ('{name}'): bad keyUsage: {e}"))?;
            if key_usage.is_some_and(|k| !k.value.key_cert_sign()) {
                return Err(format!(
                    "certificate {i} ('{name}') issues certificate {} but its keyUsage lacks \
                     keyCertSign",
                    i + 1
                ));
            }
            if !self_issued(issuer) {
                if max_path_length == 0 {
                    let (by, len) = limited_by.unwrap_or((i, 0));
                    return Err(format!(
                        "certificate {i} ('{name}') is a CA below certificate {by}, whose \
                         pathLenConstraint {len} allows no further CA"
                    ));
                }
                max_path_length -= 1;
            }
            let path_len = issuer
                .cert
                .basic_constraints()
                .map_err(|e| format!("certificate {i} ('{name}'): bad basicConstraints: {e}"))?
                .and_then(|b| b.value.path_len_constraint);
            if let Some(len) = path_len.and_then(|l| usize::try_from(l).ok()) {
                if len < max_path_length {
                    max_path_length = len;
                    limited_by = Some((i, len));
                }
            }
        }
        check_signed_by(child, issuer)
            .map_err(|e| format!("certificate {} not signed by certificate {i}: {e}", i + 1))?;
    }
    Ok(())
}

/// Checks the chain's first certificate against the trust anchor: identical, or issued and
/// signed by it. The anchor's own extensions (basicConstraints, keyUsage) are not checked
/// (RFC 5280 sec 6.1.1 (d): a trust anchor is a name and a key).
pub fn check_anchor(first: &Cert<'_>, anchor: &Cert<'_>) -> Result<(), String> {
    if first.der == anchor.der {
        return Ok(());
    }
    check_signed_by(first, anchor).map_err(|e| {
        format!("the chain's first certificate is neither the trust anchor nor signed by it: {e}")
    })
}

/// Reads a trust anchor file: DER, or PEM (the first CERTIFICATE block).
pub fn anchor_der(file: &[u8]) -> Result<Vec<u8>, String> {
    if file.starts_with(b"-----BEGIN") {
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(file).map_err(|e| format!("bad PEM: {e}"))?;
        return Ok(pem.contents);
    }
    Ok(file.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use coco_endpoint::pki::{
        build_profile_identity, ChainFault, Identity, KeyKind, PkiOptions, PkiProfile,
        DEFAULT_CMA_ID,
    };

    fn identity(profile: PkiProfile) -> Identity {
        let opts = PkiOptions {
            dir: None,
            key: KeyKind::P256,
            slots: vec![0],
            cma_id: DEFAULT_CMA_ID.to_string(),
            fault: ChainFault::None,
        };
        build_profile_identity(&opts, profile).unwrap()
    }

    fn parsed(ders: &[Vec<u8>]) -> Vec<Cert<'_>> {
        ders.iter().map(|d| parse_cert(d).unwrap()).collect()
    }

    /// Validates `chain` against `anchor` as coco-verify does.
    fn validate(chain: &[Cert<'_>], anchor: Option<&Cert<'_>>) -> Result<(), String> {
        check_chain(chain, anchor)?;
        match anchor {
            Some(a) => check_anchor(&chain[0], a),
            None => Ok(()),
        }
    }

    #[test]
    fn profiles_validate_as_rfc5280_says() {
        for profile in PkiProfile::ALL {
            let id = identity(profile);
            let certs = parsed(&id.slots[0].certs);
            let root = parse_cert(&id.trusted_root).unwrap();
            // With the root in the chain or not, with or without the anchor.
            let results = [
                validate(&certs, Some(&root)),
                validate(&certs[1..], Some(&root)),
                validate(&certs, None),
            ];
            for r in results {
                match profile {
                    PkiProfile::PathlenExceeded => {
                        let e = r.unwrap_err();
                        assert!(
                            e.contains("pathLenConstraint 0 allows no further CA"),
                            "{e}"
                        );
                        assert!(e.contains("sub-CA beyond pathLen 0"), "{e}");
                    }
                    PkiProfile::CaNoKeyCertSign => {
                        let e = r.unwrap_err();
                        assert!(e.contains("keyUsage lacks keyCertSign"), "{e}");
                    }
                    _ => r.unwrap_or_else(|e| panic!("{profile}: {e}")),
                }
                assert_eq!(
                    profile.rfc5280_valid(),
                    validate(&certs, Some(&root)).is_ok()
                );
            }
        }
    }

    #[test]
    fn the_anchors_own_extensions_are_no_inputs() {
        // An intermediate with pathLenConstraint 0 as the trust anchor: the sub-CA below it is
        // the path's first certificate, not a CA beyond the anchor's constraint.
        let id = identity(PkiProfile::PathlenExceeded);
        let certs = parsed(&id.slots[0].certs);
        validate(&certs[1..], Some(&certs[1])).unwrap();
        validate(&certs[2..], Some(&certs[1])).unwrap();
        // An anchor whose keyUsage lacks keyCertSign.
        let id = identity(PkiProfile::CaNoKeyCertSign);
        let certs = parsed(&id.slots[0].certs);
        validate(&certs[1..], Some(&certs[1])).unwrap();
        validate(&certs[2..], Some(&certs[1])).unwrap();
        // The same certificate inside the path is refused.
        let root = parse_cert(&id.trusted_root).unwrap();
        assert!(validate(&certs[1..], Some(&root)).is_err());
    }

    #[test]
    fn descending_path_lengths_are_enough() {
        // root → CAs with pathLenConstraint 3, 2, 1, 0 → leaf, anchored at every level.
        let id = identity(PkiProfile::LongChain);
        let certs = parsed(&id.slots[0].certs);
        assert_eq!(certs.len(), 6);
        let root = parse_cert(&id.trusted_root).unwrap();
        validate(&certs, Some(&root)).unwrap();
        for start in 1..certs.len() - 1 {
            validate(&certs[start..], Some(&certs[start])).unwrap();
        }
    }

    #[test]
    fn a_leaf_that_issues_is_no_ca() {
        let id = identity(PkiProfile::Standard);
        let mut ders = id.slots[0].certs.clone();
        ders.push(ders[2].clone());
        let certs = parsed(&ders);
        let e = check_chain(&certs, None).unwrap_err();
        assert!(
            e.contains("certificate 2") && e.contains("is not a CA"),
            "{e}"
        );
    }
}
