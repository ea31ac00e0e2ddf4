//! Algorithms named in sysfs, hashing, and signature verification with RustCrypto: the SPDM
//! MEASUREMENTS signature (raw r || s for ECDSA, PKCS#1 v1.5 or PSS for RSA, over a digest the
//! caller computed) and X.509 certificate signatures (DER ECDSA or PKCS#1 v1.5 over the
//! TBSCertificate).

use coco_spdm::auth::{
    SPDM_ASYM_ECDSA_P256, SPDM_ASYM_ECDSA_P384, SPDM_ASYM_ECDSA_P521, SPDM_ASYM_RSAPSS_2048,
    SPDM_ASYM_RSAPSS_3072, SPDM_ASYM_RSAPSS_4096, SPDM_ASYM_RSASSA_2048, SPDM_ASYM_RSASSA_3072,
    SPDM_ASYM_RSASSA_4096, SPDM_HASH_SHA256, SPDM_HASH_SHA384, SPDM_HASH_SHA512,
};
use rsa::pkcs8::DecodePublicKey as _;
use rsa::traits::PublicKeyParts as _;
use sha2::{Digest, Sha256, Sha384, Sha512};
use signature::hazmat::PrehashVerifier;
use signature::Verifier;

/// A hash algorithm (`hash_algorithm` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// Parses the sysfs name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "sha256" => Some(HashAlg::Sha256),
            "sha384" => Some(HashAlg::Sha384),
            "sha512" => Some(HashAlg::Sha512),
            _ => None,
        }
    }

    /// The sysfs name.
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        }
    }

    /// The SPDM BaseHashAlgo bit.
    pub fn spdm_bit(self) -> u32 {
        match self {
            HashAlg::Sha256 => SPDM_HASH_SHA256,
            HashAlg::Sha384 => SPDM_HASH_SHA384,
            HashAlg::Sha512 => SPDM_HASH_SHA512,
        }
    }

    /// Hash of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha256 => Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => Sha512::digest(data).to_vec(),
        }
    }
}

/// A signature algorithm (`signature_algorithm` file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigAlg {
    /// ECDSA with NIST P-256, r || s.
    EcdsaP256,
    /// ECDSA with NIST P-384, r || s.
    EcdsaP384,
    /// ECDSA with NIST P-521, r || s.
    EcdsaP521,
    /// RSASSA-PKCS1-v1_5 with a key of this many bits.
    Rsassa(usize),
    /// RSASSA-PSS (salt as long as the hash) with a key of this many bits.
    Rsapss(usize),
}

impl SigAlg {
    /// Parses the sysfs name (`ecdsa-p256`, `rsassa-3072`, ...; `rsapss-N` is accepted too).
    pub fn from_name(s: &str) -> Option<Self> {
        let rsa_bits = |b: &str| match b {
            "2048" => Some(2048),
            "3072" => Some(3072),
            "4096" => Some(4096),
            _ => None,
        };
        match s {
            "ecdsa-p256" => Some(SigAlg::EcdsaP256),
            "ecdsa-p384" => Some(SigAlg::EcdsaP384),
            "ecdsa-p521" => Some(SigAlg::EcdsaP521),
            _ => {
                if let Some(b) = s.strip_prefix("rsassa-") {
                    rsa_bits(b).map(SigAlg::Rsassa)
                } else if let Some(b) = s.strip_prefix("rsapss-") {
                    rsa_bits(b).map(SigAlg::Rsapss)
                } else {
                    None
                }
            }
        }
    }

    /// The sysfs name.
    pub fn name(self) -> String {
        match self {
            SigAlg::EcdsaP256 => "ecdsa-p256".to_string(),
            SigAlg::EcdsaP384 => "ecdsa-p384".to_string(),
            SigAlg::EcdsaP521 => "ecdsa-p521".to_string(),
            SigAlg::Rsassa(b) => format!("rsassa-{b}"),
            SigAlg::Rsapss(b) => format!("rsapss-{b}"),
        }
    }

    /// The SPDM BaseAsymAlgo bit.
    pub fn spdm_bit(self) -> u32 {
        match self {
            SigAlg::EcdsaP256 => SPDM_ASYM_ECDSA_P256,
            SigAlg::EcdsaP384 => SPDM_ASYM_ECDSA_P384,
            SigAlg::EcdsaP521 => SPDM_ASYM_ECDSA_P521,
            SigAlg::Rsassa(2048) => SPDM_ASYM_RSASSA_2048,
            SigAlg::Rsassa(3072) => SPDM_ASYM_RSASSA_3072,
            SigAlg::Rsassa(_) => SPDM_ASYM_RSASSA_4096,
            SigAlg::Rsapss(2048) => SPDM_ASYM_RSAPSS_2048,
            SigAlg::Rsapss(3072) => SPDM_ASYM_RSAPSS_3072,
            SigAlg::Rsapss(_) => SPDM_ASYM_RSAPSS_4096,
        }
    }
}

fn err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

/// Verifies an SPDM signature `sig` over the prehashed `digest` with the public key in the DER
/// SubjectPublicKeyInfo `spki`, which must be of the kind `alg` names.
pub fn verify_spdm(
    spki: &[u8],
    alg: SigAlg,
    hash: HashAlg,
    digest: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    macro_rules! ecdsa {
        ($curve:ident) => {{
            let vk = $curve::ecdsa::VerifyingKey::from_public_key_der(spki)
                .map_err(err("leaf key is not of the signature algorithm's curve"))?;
            let s = $curve::ecdsa::Signature::from_slice(sig)
                .map_err(err("malformed ECDSA signature"))?;
            vk.verify_prehash(digest, &s)
                .map_err(err("signature verification failed"))
        }};
    }
    match alg {
        SigAlg::EcdsaP256 => ecdsa!(p256),
        SigAlg::EcdsaP384 => ecdsa!(p384),
        SigAlg::EcdsaP521 => ecdsa!(p521),
        SigAlg::Rsassa(bits) | SigAlg::Rsapss(bits) => {
            let pk = rsa::PublicKey::from_public_key_der(spki)
                .map_err(err("leaf key is not an RSA key"))?;
            if pk.size() * 8 != bits {
                return Err(format!(
                    "leaf key is RSA-{}, the signature algorithm needs RSA-{bits}",
                    pk.size() * 8
                ));
            }
            let pss = matches!(alg, SigAlg::Rsapss(_));
            macro_rules! rsa_verify {
                ($d:ty) => {
                    if pss {
                        let s = rsa::pss::Signature::try_from(sig)
                            .map_err(err("malformed RSA signature"))?;
                        rsa::pss::VerifyingKey::<$d>::new(pk)
                            .verify_prehash(digest, &s)
                            .map_err(err("signature verification failed"))
                    } else {
                        let s = rsa::pkcs1v15::Signature::try_from(sig)
                            .map_err(err("malformed RSA signature"))?;
                        rsa::pkcs1v15::VerifyingKey::<$d>::new(pk)
                            .verify_prehash(digest, &s)
                            .map_err(err("signature verification failed"))
                    }
                };
            }
            match hash {
                HashAlg::Sha256 => rsa_verify!(Sha256),
                HashAlg::Sha384 => rsa_verify!(Sha384),
                HashAlg::Sha512 => rsa_verify!(Sha512),
            }
        }
    }
}

/// Verifies an X.509 signature: `sig` (the signatureValue bits) over `tbs` (the DER
/// TBSCertificate) with algorithm `oid` (dotted) and the issuer's DER SubjectPublicKeyInfo.
/// Supported: ecdsa-with-SHA256/384/512 with P-256, P-384 or P-521 issuer keys, and
/// sha256/384/512WithRSAEncryption (PKCS#1 v1.5).
pub fn verify_x509(issuer_spki: &[u8], oid: &str, tbs: &[u8], sig: &[u8]) -> Result<(), String> {
    let ecdsa_hash = match oid {
        "1.2.840.10045.4.3.2" => Some(HashAlg::Sha256),
        "1.2.840.10045.4.3.3" => Some(HashAlg::Sha384),
        "1.2.840.10045.4.3.4" => Some(HashAlg::Sha512),
        _ => None,
    };
    if let Some(h) = ecdsa_hash {
        let digest = h.digest(tbs);
        macro_rules! try_curve {
            ($curve:ident) => {
                if let Ok(vk) = $curve::ecdsa::VerifyingKey::from_public_key_der(issuer_spki) {
                    let s = $curve::ecdsa::Signature::from_der(sig)
                        .map_err(err("malformed ECDSA certificate signature"))?;
                    return vk
                        .verify_prehash(&digest, &s)
                        .map_err(err("bad certificate signature"));
                }
            };
        }
        try_curve!(p256);
        try_curve!(p384);
        try_curve!(p521);
        return Err("issuer key is not a P-256, P-384 or P-521 key".to_string());
    }
    let pk =
        || rsa::PublicKey::from_public_key_der(issuer_spki).map_err(err("issuer key is not RSA"));
    let s = || {
        rsa::pkcs1v15::Signature::try_from(sig).map_err(err("malformed RSA certificate signature"))
    };
    let bad = err("bad certificate signature");
    match oid {
        "1.2.840.113549.1.1.11" => rsa::pkcs1v15::VerifyingKey::<Sha256>::new(pk()?)
            .verify(tbs, &s()?)
            .map_err(bad),
        "1.2.840.113549.1.1.12" => rsa::pkcs1v15::VerifyingKey::<Sha384>::new(pk()?)
            .verify(tbs, &s()?)
            .map_err(bad),
        "1.2.840.113549.1.1.13" => rsa::pkcs1v15::VerifyingKey::<Sha512>::new(pk()?)
            .verify(tbs, &s()?)
            .map_err(bad),
        other => Err(format!(
            "unsupported certificate signature algorithm {other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip() {
        for n in ["sha256", "sha384", "sha512"] {
            assert_eq!(HashAlg::from_name(n).unwrap().name(), n);
        }
        for n in [
            "ecdsa-p256",
            "ecdsa-p384",
            "ecdsa-p521",
            "rsassa-2048",
            "rsassa-3072",
            "rsassa-4096",
            "rsapss-3072",
        ] {
            assert_eq!(SigAlg::from_name(n).unwrap().name(), n);
        }
        assert_eq!(SigAlg::from_name("rsassa-1024"), None);
        assert_eq!(HashAlg::from_name("sha3_256"), None);
        assert_eq!(SigAlg::Rsassa(4096).spdm_bit(), SPDM_ASYM_RSASSA_4096);
        assert_eq!(HashAlg::Sha384.digest(b"").len(), 48);
    }
}
