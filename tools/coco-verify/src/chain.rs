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

/// Checks the chain: each certificate is signed by the one before it, which must be a CA; a
/// self-issued first certificate must carry a valid self-signature.
pub fn check_chain(chain: &[Cert<'_>]) -> Result<(), String> {
    if let Some(first) = chain.first() {
        if first.cert.issuer().as_raw() == first.cert.subject().as_raw() {
            check_signed_by(first, first)
                .map_err(|e| format!("certificate 0 (self-signed): {e}"))?;
        }
    }
    for (i, pair) in chain.windows(2).enumerate() {
        let (issuer, child) = (&pair[0], &pair[1]);
        if !issuer.cert.is_ca() {
            return Err(format!(
                "certificate {i} ('{}') issues certificate {} but is not a CA",
                issuer.cert.subject(),
                i + 1
            ));
        }
        check_signed_by(child, issuer)
            .map_err(|e| format!("certificate {} not signed by certificate {i}: {e}", i + 1))?;
    }
    Ok(())
}

/// Checks the chain's first certificate against the trust anchor: identical, or issued and
/// signed by it (the anchor must then be a CA).
pub fn check_anchor(first: &Cert<'_>, anchor: &Cert<'_>) -> Result<(), String> {
    if first.der == anchor.der {
        return Ok(());
    }
    if !anchor.cert.is_ca() {
        return Err("the chain's first certificate is not the trust anchor, which is no CA".into());
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
