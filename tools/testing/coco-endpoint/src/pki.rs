//! The endpoint's keys and certificates: a root CA, one or more intermediate CAs and one leaf
//! per certificate slot, built with rcgen and signed through RustCrypto keys.
//!
//! The CA hierarchy always uses ECDSA P-384 with SHA-384 certificate signatures; the leaves use
//! the key type chosen with `--key` (P-256, P-384, P-521, RSA 2048/3072/4096), which is also the
//! key that signs CHALLENGE_AUTH. Every leaf carries the CMA identity (PCIe r6.1 sec 6.31.3) as
//! a subjectAltName otherName with type-id 2.23.147 and a UTF8String value, basicConstraints
//! CA:false and keyUsage digitalSignature.
//!
//! The CAs between the root and the leaves follow a [`PkiProfile`] (`--pki-profile`): the
//! standard single intermediate, or the shapes real devices use (no keyUsage on the CAs, a
//! longer chain) and two that RFC 5280 path validation must refuse (a pathLenConstraint
//! exceeded, a CA whose keyUsage lacks keyCertSign). The root is the same in every profile.
//!
//! With a PKI directory the root (key and certificate) is kept across runs, so a trust anchor
//! loaded into a keyring stays valid; the other CA keys and the leaf keys are kept too (RSA key
//! generation is slow, and a leaf on disk keeps verifying with its CA's certificate on disk),
//! while the CA and leaf certificates are issued anew at every start (so a changed `--cma-id`
//! takes effect). Files in the directory:
//!
//! * `root.der`, `root.pem` (the trust anchor), `root.key.pem`
//! * standard profile: `intermediate.der`, `intermediate.key.pem`, `leaf-<key>-slot<N>.der`
//! * other profiles: `<profile>-ca<N>.der`, `<profile>-ca<N>.key.pem` (N = 1 right below the
//!   root), `<profile>-leaf-<key>-slot<N>.der`
//! * `leaf-<key>-slot<N>.key.pem` (every profile)

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use coco_spdm::auth::{
    SPDM_ASYM_ECDSA_P256, SPDM_ASYM_ECDSA_P384, SPDM_ASYM_ECDSA_P521, SPDM_ASYM_RSAPSS_2048,
    SPDM_ASYM_RSAPSS_3072, SPDM_ASYM_RSAPSS_4096, SPDM_ASYM_RSASSA_2048, SPDM_ASYM_RSASSA_3072,
    SPDM_ASYM_RSASSA_4096, SPDM_HASH_SHA256, SPDM_HASH_SHA384, SPDM_HASH_SHA512,
};
use p256::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rand::RngExt;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyIdMethod, KeyUsagePurpose, OtherNameValue, PublicKeyData, SanType, SerialNumber,
    SignatureAlgorithm, SigningKey,
};
use sha2::{Digest, Sha256, Sha384, Sha512};
use signature::hazmat::{PrehashSigner, RandomizedPrehashSigner};
use signature::SignatureEncoding;

/// OID of the CMA identity otherName (PCIe r6.1 sec 6.31.3): 2.23.147.
pub const CMA_OTHER_NAME_OID: [u64; 3] = [2, 23, 147];

/// OID id-DMTF-eku-responder-auth (DSP0274): 1.3.6.1.4.1.412.274.3.
pub const DMTF_EKU_RESPONDER_AUTH: [u64; 9] = [1, 3, 6, 1, 4, 1, 412, 274, 3];

/// The CMA identity of QEMU's emulated NVMe controller (vendor 1b36 Red Hat, device 0010,
/// class 010802, revision 02, subsystem 1af4:1100), in the format Linux compares it with.
pub const DEFAULT_CMA_ID: &str = "Vendor=1b36:Device=0010:CC=010802:REV=02:SSVID=1af4:SSID=1100";

/// A key type for leaf keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    /// ECDSA NIST P-256.
    P256,
    /// ECDSA NIST P-384.
    P384,
    /// ECDSA NIST P-521.
    P521,
    /// RSA 2048.
    Rsa2048,
    /// RSA 3072.
    Rsa3072,
    /// RSA 4096.
    Rsa4096,
}

impl KeyKind {
    /// All kinds, in command line order.
    pub const ALL: [KeyKind; 6] = [
        KeyKind::P256,
        KeyKind::P384,
        KeyKind::P521,
        KeyKind::Rsa2048,
        KeyKind::Rsa3072,
        KeyKind::Rsa4096,
    ];

    /// The name used on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::P256 => "p256",
            KeyKind::P384 => "p384",
            KeyKind::P521 => "p521",
            KeyKind::Rsa2048 => "rsa2048",
            KeyKind::Rsa3072 => "rsa3072",
            KeyKind::Rsa4096 => "rsa4096",
        }
    }

    /// The SPDM BaseAsymAlgo bits a key of this kind can sign with.
    pub fn asym_mask(self) -> u32 {
        match self {
            KeyKind::P256 => SPDM_ASYM_ECDSA_P256,
            KeyKind::P384 => SPDM_ASYM_ECDSA_P384,
            KeyKind::P521 => SPDM_ASYM_ECDSA_P521,
            KeyKind::Rsa2048 => SPDM_ASYM_RSASSA_2048 | SPDM_ASYM_RSAPSS_2048,
            KeyKind::Rsa3072 => SPDM_ASYM_RSASSA_3072 | SPDM_ASYM_RSAPSS_3072,
            KeyKind::Rsa4096 => SPDM_ASYM_RSASSA_4096 | SPDM_ASYM_RSAPSS_4096,
        }
    }

    fn rsa_bits(self) -> Option<usize> {
        match self {
            KeyKind::Rsa2048 => Some(2048),
            KeyKind::Rsa3072 => Some(3072),
            KeyKind::Rsa4096 => Some(4096),
            _ => None,
        }
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        KeyKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown key type '{s}' (known: p256, p384, p521, rsa2048, rsa3072, rsa4096)"
                )
            })
    }
}

/// SPDM hash algorithms the endpoint implements.
pub const SUPPORTED_HASHES: u32 = SPDM_HASH_SHA256 | SPDM_HASH_SHA384 | SPDM_HASH_SHA512;

/// Hash of `data` with the SPDM BaseHashAlgo `algo` (SHA-256/384/512), or `None` for others.
pub fn spdm_hash(algo: u32, data: &[u8]) -> Option<Vec<u8>> {
    match algo {
        SPDM_HASH_SHA256 => Some(Sha256::digest(data).to_vec()),
        SPDM_HASH_SHA384 => Some(Sha384::digest(data).to_vec()),
        SPDM_HASH_SHA512 => Some(Sha512::digest(data).to_vec()),
        _ => None,
    }
}

/// A private key.
#[derive(Clone)]
pub enum PrivateKey {
    /// ECDSA P-256.
    P256(p256::ecdsa::SigningKey),
    /// ECDSA P-384.
    P384(p384::ecdsa::SigningKey),
    /// ECDSA P-521 (leaves only: it signs SPDM messages, never certificates).
    P521(p521::ecdsa::SigningKey),
    /// RSA of the given kind.
    Rsa(Box<rsa::PrivateKey>, KeyKind),
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({})", self.kind())
    }
}

impl PrivateKey {
    /// Generates a new key.
    pub fn generate(kind: KeyKind) -> Result<Self, String> {
        let mut rng = rand::rng();
        Ok(match kind {
            KeyKind::P256 => PrivateKey::P256(
                <p256::ecdsa::SigningKey as rsa::Generate>::generate_from_rng(&mut rng),
            ),
            KeyKind::P384 => PrivateKey::P384(
                <p384::ecdsa::SigningKey as rsa::Generate>::generate_from_rng(&mut rng),
            ),
            KeyKind::P521 => PrivateKey::P521(
                <p521::ecdsa::SigningKey as rsa::Generate>::generate_from_rng(&mut rng),
            ),
            _ => {
                let bits = kind.rsa_bits().unwrap_or(3072);
                let key = rsa::PrivateKey::new(&mut rng, bits)
                    .map_err(|e| format!("RSA-{bits} key generation failed: {e}"))?;
                PrivateKey::Rsa(Box::new(key), kind)
            }
        })
    }

    /// The key's kind.
    pub fn kind(&self) -> KeyKind {
        match self {
            PrivateKey::P256(_) => KeyKind::P256,
            PrivateKey::P384(_) => KeyKind::P384,
            PrivateKey::P521(_) => KeyKind::P521,
            PrivateKey::Rsa(_, kind) => *kind,
        }
    }

    /// PKCS#8 PEM encoding.
    pub fn to_pkcs8_pem(&self) -> Result<String, String> {
        let pem = match self {
            PrivateKey::P256(k) => k.to_pkcs8_pem(LineEnding::LF),
            PrivateKey::P384(k) => k.to_pkcs8_pem(LineEnding::LF),
            PrivateKey::P521(k) => k.to_pkcs8_pem(LineEnding::LF),
            PrivateKey::Rsa(k, _) => k.to_pkcs8_pem(LineEnding::LF),
        }
        .map_err(|e| format!("cannot encode the private key: {e}"))?;
        Ok(pem.to_string())
    }

    /// Decodes a PKCS#8 PEM key, which must be of `kind`.
    pub fn from_pkcs8_pem(kind: KeyKind, pem: &str) -> Result<Self, String> {
        let bad = |e: &dyn fmt::Display| format!("not a PKCS#8 {kind} private key: {e}");
        let key = match kind {
            KeyKind::P256 => {
                PrivateKey::P256(p256::ecdsa::SigningKey::from_pkcs8_pem(pem).map_err(|e| bad(&e))?)
            }
            KeyKind::P384 => {
                PrivateKey::P384(p384::ecdsa::SigningKey::from_pkcs8_pem(pem).map_err(|e| bad(&e))?)
            }
            KeyKind::P521 => {
                PrivateKey::P521(p521::ecdsa::SigningKey::from_pkcs8_pem(pem).map_err(|e| bad(&e))?)
            }
            _ => {
                let k = rsa::PrivateKey::from_pkcs8_pem(pem).map_err(|e| bad(&e))?;
                let bits = rsa::traits::PublicKeyParts::size(&k) * 8;
                if Some(bits) != kind.rsa_bits() {
                    return Err(format!("RSA key has {bits} bits, {kind} wanted"));
                }
                PrivateKey::Rsa(Box::new(k), kind)
            }
        };
        Ok(key)
    }

    /// The public key as rcgen wants it: the SEC1 point for ECDSA, PKCS#1 RSAPublicKey DER for
    /// RSA.
    fn public_key_raw(&self) -> Vec<u8> {
        match self {
            PrivateKey::P256(k) => k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
            PrivateKey::P384(k) => k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
            PrivateKey::P521(k) => k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
            PrivateKey::Rsa(k, _) => {
                use rsa::pkcs1::EncodeRsaPublicKey;
                k.to_public_key()
                    .to_pkcs1_der()
                    .map(|d| d.as_bytes().to_vec())
                    .unwrap_or_default()
            }
        }
    }

    /// The certificate signature algorithm used when this key signs a certificate, which also
    /// names the key's type in the SubjectPublicKeyInfo rcgen writes. rcgen knows P-521 only
    /// with its aws-lc-rs backend: a P-521 key poses as P-384 here, and [`leaf_cert`] rewrites
    /// the curve in the SubjectPublicKeyInfo and signs the certificate again.
    fn cert_algorithm(&self) -> &'static SignatureAlgorithm {
        match self {
            PrivateKey::P256(_) => &rcgen::PKCS_ECDSA_P256_SHA256,
            PrivateKey::P384(_) | PrivateKey::P521(_) => &rcgen::PKCS_ECDSA_P384_SHA384,
            PrivateKey::Rsa(..) => &rcgen::PKCS_RSA_SHA256,
        }
    }

    /// Signs `msg` for an X.509 certificate (ECDSA: DER signature with the curve's hash; RSA:
    /// PKCS#1 v1.5 with SHA-256).
    fn sign_cert(&self, msg: &[u8]) -> Result<Vec<u8>, String> {
        use signature::Signer;
        Ok(match self {
            PrivateKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.try_sign(msg).map_err(|e| e.to_string())?;
                sig.to_der().as_bytes().to_vec()
            }
            PrivateKey::P384(k) => {
                let sig: p384::ecdsa::Signature = k.try_sign(msg).map_err(|e| e.to_string())?;
                sig.to_der().as_bytes().to_vec()
            }
            PrivateKey::P521(_) => return Err("P-521 keys sign no certificates".to_string()),
            PrivateKey::Rsa(k, _) => {
                let key = rsa::pkcs1v15::SigningKey::<Sha256>::new((**k).clone());
                let sig = key.try_sign(msg).map_err(|e| e.to_string())?;
                sig.to_vec()
            }
        })
    }

    /// Produces an SPDM signature with BaseAsymAlgo `asym` over the digest `digest` (already
    /// computed with BaseHashAlgo `hash`): ECDSA r || s, RSASSA-PKCS1-v1_5 with `hash`'s
    /// DigestInfo, or RSASSA-PSS with MGF1(`hash`) and a salt as long as the hash.
    pub fn sign_spdm(&self, asym: u32, hash: u32, digest: &[u8]) -> Result<Vec<u8>, String> {
        if self.kind().asym_mask() & asym == 0 {
            return Err(format!(
                "a {} key cannot sign {}",
                self.kind(),
                coco_spdm::auth::asym_name(asym)
            ));
        }
        let err = |e: signature::Error| format!("signing failed: {e}");
        match self {
            PrivateKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign_prehash(digest).map_err(err)?;
                Ok(sig.to_bytes().to_vec())
            }
            PrivateKey::P384(k) => {
                let sig: p384::ecdsa::Signature = k.sign_prehash(digest).map_err(err)?;
                Ok(sig.to_bytes().to_vec())
            }
            PrivateKey::P521(k) => {
                let sig: p521::ecdsa::Signature = k.sign_prehash(digest).map_err(err)?;
                Ok(sig.to_bytes().to_vec())
            }
            PrivateKey::Rsa(k, _) => {
                let pss = matches!(
                    asym,
                    SPDM_ASYM_RSAPSS_2048 | SPDM_ASYM_RSAPSS_3072 | SPDM_ASYM_RSAPSS_4096
                );
                let key = (**k).clone();
                let mut rng = rand::rng();
                let sig = match (hash, pss) {
                    (SPDM_HASH_SHA256, false) => rsa::pkcs1v15::SigningKey::<Sha256>::new(key)
                        .sign_prehash(digest)
                        .map(|s| s.to_vec())
                        .map_err(err)?,
                    (SPDM_HASH_SHA384, false) => rsa::pkcs1v15::SigningKey::<Sha384>::new(key)
                        .sign_prehash(digest)
                        .map(|s| s.to_vec())
                        .map_err(err)?,
                    (SPDM_HASH_SHA512, false) => rsa::pkcs1v15::SigningKey::<Sha512>::new(key)
                        .sign_prehash(digest)
                        .map(|s| s.to_vec())
                        .map_err(err)?,
                    (SPDM_HASH_SHA256, true) => rsa::pss::SigningKey::<Sha256>::new(key)
                        .sign_prehash_with_rng(&mut rng, digest)
                        .map(|s| s.to_vec())
                        .map_err(err)?,
                    (SPDM_HASH_SHA384, true) => rsa::pss::SigningKey::<Sha384>::new(key)
                        .sign_prehash_with_rng(&mut rng, digest)
                        .map(|s| s.to_vec())
                        .map_err(err)?,
                    (SPDM_HASH_SHA512, true) => rsa::pss::SigningKey::<Sha512>::new(key)
                        .sign_prehash_with_rng(&mut rng, digest)
                        .map(|s| s.to_vec())
                        .map_err(err)?,
                    _ => return Err(format!("unsupported hash {hash:#x}")),
                };
                Ok(sig)
            }
        }
    }
}

/// A [`PrivateKey`] with its public key bytes, as rcgen's signer.
struct CertSigner<'a> {
    key: &'a PrivateKey,
    public: Vec<u8>,
}

impl<'a> CertSigner<'a> {
    fn new(key: &'a PrivateKey) -> Self {
        CertSigner {
            key,
            public: key.public_key_raw(),
        }
    }
}

impl PublicKeyData for CertSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.public
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.key.cert_algorithm()
    }
}

impl SigningKey for CertSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        self.key
            .sign_cert(msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

/// Key identifier (RFC 7093 method 1): the leftmost 160 bits of SHA-256 of the public key.
fn key_id(key: &PrivateKey) -> Vec<u8> {
    Sha256::digest(key.public_key_raw())[..20].to_vec()
}

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::rng().random();
    bytes[0] &= 0x7F;
    bytes[0] |= 0x01;
    SerialNumber::from(bytes.to_vec())
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "coco emulated endpoint");
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Validity of the certificates: generous, inside the UTCTime range.
fn valid_params(params: &mut CertificateParams) {
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2049, 12, 31);
}

/// The keyUsage of a CA certificate in the standard chain.
const CA_KEY_USAGES: [KeyUsagePurpose; 3] = [
    KeyUsagePurpose::KeyCertSign,
    KeyUsagePurpose::CrlSign,
    KeyUsagePurpose::DigitalSignature,
];

fn ca_params(common_name: &str, key: &PrivateKey, path_len: Option<u8>) -> CertificateParams {
    ca_params_with(common_name, key, path_len, &CA_KEY_USAGES)
}

/// CA certificate parameters; an empty `key_usages` leaves the keyUsage extension out.
fn ca_params_with(
    common_name: &str,
    key: &PrivateKey,
    path_len: Option<u8>,
    key_usages: &[KeyUsagePurpose],
) -> CertificateParams {
    let mut p = CertificateParams::default();
    valid_params(&mut p);
    p.distinguished_name = dn(common_name);
    p.serial_number = Some(random_serial());
    p.is_ca = match path_len {
        Some(n) => IsCa::Ca(BasicConstraints::Constrained(n)),
        None => IsCa::Ca(BasicConstraints::Unconstrained),
    };
    p.key_usages = key_usages.to_vec();
    p.key_identifier_method = KeyIdMethod::PreSpecified(key_id(key));
    p.use_authority_key_identifier_extension = true;
    p
}

const ROOT_CN: &str = "coco test root CA";
const INTERMEDIATE_CN: &str = "coco test intermediate CA";

/// The shape of the CA hierarchy between the shared root and the leaves (`--pki-profile`).
/// Every CA below the root is an ECDSA P-384 key with basicConstraints CA:TRUE; the leaves are
/// the same in every profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PkiProfile {
    /// root → intermediate (pathLen 0, keyUsage keyCertSign, cRLSign, digitalSignature) → leaf.
    #[default]
    Standard,
    /// root → intermediate (no keyUsage extension, no pathLenConstraint) → leaf: valid
    /// (RFC 5280 sec 6.1.4 (n) checks keyCertSign only when keyUsage is present).
    NoKeyUsage,
    /// root → 4 intermediates (pathLen 3, 2, 1, 0, keyUsage as in the standard chain) → leaf:
    /// valid, six certificates.
    LongChain,
    /// root → intermediate (pathLen 0) → sub-CA (pathLen 0) → leaf: invalid, the sub-CA is a
    /// CA below a CA whose pathLenConstraint allows none (RFC 5280 sec 6.1.4 (l)).
    PathlenExceeded,
    /// root → intermediate (keyUsage digitalSignature only, no keyCertSign, no
    /// pathLenConstraint) → leaf: invalid (RFC 5280 sec 6.1.4 (n)).
    CaNoKeyCertSign,
}

/// One CA below the root, as a profile wants it.
struct CaSpec {
    name: String,
    path_len: Option<u8>,
    /// Empty: no keyUsage extension.
    key_usages: Vec<KeyUsagePurpose>,
}

impl PkiProfile {
    /// All profiles, in command line order.
    pub const ALL: [PkiProfile; 5] = [
        PkiProfile::Standard,
        PkiProfile::NoKeyUsage,
        PkiProfile::LongChain,
        PkiProfile::PathlenExceeded,
        PkiProfile::CaNoKeyCertSign,
    ];

    /// The name used on the command line and in file names.
    pub fn name(self) -> &'static str {
        match self {
            PkiProfile::Standard => "standard",
            PkiProfile::NoKeyUsage => "no-keyusage",
            PkiProfile::LongChain => "long-chain",
            PkiProfile::PathlenExceeded => "pathlen-exceeded",
            PkiProfile::CaNoKeyCertSign => "ca-no-keycertsign",
        }
    }

    /// Whether RFC 5280 path validation accepts the chain (with the root as trust anchor).
    pub fn rfc5280_valid(self) -> bool {
        !matches!(
            self,
            PkiProfile::PathlenExceeded | PkiProfile::CaNoKeyCertSign
        )
    }

    /// The number of CA certificates between the root and the leaf.
    pub fn intermediates(self) -> usize {
        self.cas().len()
    }

    fn cas(self) -> Vec<CaSpec> {
        let ca = |name: &str, path_len: Option<u8>, key_usages: &[KeyUsagePurpose]| CaSpec {
            name: name.to_string(),
            path_len,
            key_usages: key_usages.to_vec(),
        };
        match self {
            PkiProfile::Standard => vec![ca(INTERMEDIATE_CN, Some(0), &CA_KEY_USAGES)],
            // No pathLenConstraint either: RFC 5280 sec 4.2.1.9 allows one only with keyUsage
            // keyCertSign, and the missing keyUsage is to be the chain's only peculiarity.
            PkiProfile::NoKeyUsage => {
                vec![ca("coco test intermediate CA without keyUsage", None, &[])]
            }
            PkiProfile::LongChain => (1..=4u8)
                .map(|n| {
                    ca(
                        &format!("coco test intermediate CA {n} of 4"),
                        Some(4 - n),
                        &CA_KEY_USAGES,
                    )
                })
                .collect(),
            PkiProfile::PathlenExceeded => vec![
                ca(
                    "coco test intermediate CA with pathLen 0",
                    Some(0),
                    &CA_KEY_USAGES,
                ),
                ca("coco test sub-CA beyond pathLen 0", Some(0), &CA_KEY_USAGES),
            ],
            PkiProfile::CaNoKeyCertSign => vec![ca(
                "coco test intermediate CA without keyCertSign",
                None,
                &[KeyUsagePurpose::DigitalSignature],
            )],
        }
    }
}

impl fmt::Display for PkiProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PkiProfile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        PkiProfile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = PkiProfile::ALL.iter().map(|p| p.name()).collect();
                format!("unknown PKI profile '{s}' (known: {})", known.join(", "))
            })
    }
}

/// A `--pki-profile` argument: `PROFILE` for every endpoint or `INDEX:PROFILE` for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProfileSpec {
    /// Endpoint index, or `None` for all endpoints.
    pub index: Option<usize>,
    /// The profile.
    pub profile: PkiProfile,
}

impl FromStr for ProfileSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (index, profile) = crate::split_index(s)?;
        Ok(ProfileSpec {
            index,
            profile: profile.parse()?,
        })
    }
}

/// The PKI profile of endpoint `index`: the last `INDEX:PROFILE` for it, else the last global
/// `PROFILE`, else the standard one.
pub fn profile_for(specs: &[ProfileSpec], index: usize) -> PkiProfile {
    specs
        .iter()
        .rev()
        .find(|s| s.index == Some(index))
        .or_else(|| specs.iter().rev().find(|s| s.index.is_none()))
        .map_or(PkiProfile::Standard, |s| s.profile)
}

/// Which deliberately broken chain to build (fault injection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChainFault {
    /// A correct chain.
    #[default]
    None,
    /// The chain ends in a freshly generated root, not the one in the PKI directory.
    UntrustedRoot,
    /// The leaf's notAfter is in the past (2001-01-01).
    ExpiredLeaf,
    /// The intermediate claims the root as issuer but is signed by another key.
    BrokenChain,
}

/// The certificate chain and key of one slot.
#[derive(Debug, Clone)]
pub struct SlotIdentity {
    /// Slot number, 0 to 7.
    pub slot: u8,
    /// DER certificates, root first, leaf last.
    pub certs: Vec<Vec<u8>>,
    /// The leaf's private key.
    pub key: PrivateKey,
}

impl SlotIdentity {
    /// The SPDM certificate chain for hash algorithm `hash`: Length, Reserved, Hash(root DER),
    /// the DER certificates.
    pub fn spdm_chain(&self, hash: u32) -> Option<Vec<u8>> {
        let root_hash = spdm_hash(hash, self.certs.first()?)?;
        let certs_len: usize = self.certs.iter().map(Vec::len).sum();
        let mut out = vec![0u8; 4 + root_hash.len()];
        coco_spdm::auth::encode_cert_chain_header(&root_hash, certs_len, &mut out).ok()?;
        for c in &self.certs {
            out.extend_from_slice(c);
        }
        Some(out)
    }
}

/// Everything an endpoint needs to authenticate: its populated slots.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The populated slots, in increasing slot order.
    pub slots: Vec<SlotIdentity>,
    /// The root certificate that is written to the PKI directory (the trust anchor).
    pub trusted_root: Vec<u8>,
    /// The shape of the chains.
    pub profile: PkiProfile,
}

impl Identity {
    /// The slot mask of the populated slots.
    pub fn slot_mask(&self) -> u8 {
        self.slots.iter().fold(0u8, |m, s| m | (1 << s.slot))
    }

    /// The identity of `slot`.
    pub fn slot(&self, slot: u8) -> Option<&SlotIdentity> {
        self.slots.iter().find(|s| s.slot == slot)
    }

    /// The key kind of the leaves.
    pub fn key_kind(&self) -> Option<KeyKind> {
        self.slots.first().map(|s| s.key.kind())
    }
}

/// A CA: certificate parameters, key, DER.
struct Ca {
    params: CertificateParams,
    key: PrivateKey,
    der: Vec<u8>,
}

/// Reads the PEM key `name` of `kind` from `dir`, or generates one and writes it there.
fn load_or_generate_key(
    dir: Option<&Path>,
    name: &str,
    kind: KeyKind,
) -> Result<PrivateKey, String> {
    let Some(dir) = dir else {
        return PrivateKey::generate(kind);
    };
    let path = dir.join(name);
    if let Ok(pem) = fs::read_to_string(&path) {
        if let Ok(key) = PrivateKey::from_pkcs8_pem(kind, &pem) {
            return Ok(key);
        }
    }
    let key = PrivateKey::generate(kind)?;
    write_file(&path, key.to_pkcs8_pem()?.as_bytes())?;
    Ok(key)
}

/// Writes `data` to `path` atomically (temporary file + rename); private keys (`*.key.pem`)
/// get mode 0600.
fn write_file(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let private = path.to_string_lossy().ends_with(".key.pem");
    fs::write(&tmp, data)
        .and_then(|()| {
            if private {
                fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))?;
            }
            Ok(())
        })
        .and_then(|()| fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = fs::remove_file(&tmp);
            format!("cannot write {}: {e}", path.display())
        })
}

fn pem_encode(tag: &str, der: &[u8]) -> String {
    let b64 = base64_encode(der);
    let mut out = format!("-----BEGIN {tag}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {tag}-----\n"));
    out
}

fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Builds the root CA: from `dir` when its key and certificate are there, else new (and saved).
fn root_ca(dir: Option<&Path>) -> Result<Ca, String> {
    if let Some(d) = dir {
        let key_pem = fs::read_to_string(d.join("root.key.pem"));
        let der = fs::read(d.join("root.der"));
        if let (Ok(key_pem), Ok(der)) = (key_pem, der) {
            if let Ok(key) = PrivateKey::from_pkcs8_pem(KeyKind::P384, &key_pem) {
                // The issuer parameters only need the name, key id and key usages, which are
                // the ones this module always uses.
                let params = ca_params(ROOT_CN, &key, None);
                return Ok(Ca { params, key, der });
            }
        }
    }
    let key = PrivateKey::generate(KeyKind::P384)?;
    let ca = new_root(key)?;
    if let Some(d) = dir {
        write_file(&d.join("root.key.pem"), ca.key.to_pkcs8_pem()?.as_bytes())?;
        write_file(&d.join("root.der"), &ca.der)?;
        write_file(
            &d.join("root.pem"),
            pem_encode("CERTIFICATE", &ca.der).as_bytes(),
        )?;
    }
    Ok(ca)
}

fn new_root(key: PrivateKey) -> Result<Ca, String> {
    let params = ca_params(ROOT_CN, &key, None);
    let cert = params
        .self_signed(&CertSigner::new(&key))
        .map_err(|e| format!("cannot build the root certificate: {e}"))?;
    Ok(Ca {
        der: cert.der().to_vec(),
        params,
        key,
    })
}

/// Issues the CA certificate `spec` for `key`, signed by `signer` as `issuer_params`.
fn issue_ca(
    key: PrivateKey,
    spec: &CaSpec,
    issuer_params: &CertificateParams,
    signer: &PrivateKey,
) -> Result<Ca, String> {
    let params = ca_params_with(&spec.name, &key, spec.path_len, &spec.key_usages);
    let issuer = Issuer::from_params(issuer_params, CertSigner::new(signer));
    let cert = params
        .signed_by(&CertSigner::new(&key), &issuer)
        .map_err(|e| format!("cannot build the certificate of '{}': {e}", spec.name))?;
    Ok(Ca {
        der: cert.der().to_vec(),
        params,
        key,
    })
}

/// Issues a leaf certificate for `key` with the CMA identity `cma_id`.
fn leaf_cert(
    key: &PrivateKey,
    slot: u8,
    cma_id: &str,
    issuer: &Ca,
    expired: bool,
) -> Result<Vec<u8>, String> {
    let mut p = CertificateParams::default();
    valid_params(&mut p);
    if expired {
        p.not_before = rcgen::date_time_ymd(2000, 1, 1);
        p.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    p.distinguished_name = dn(&format!("coco emulated endpoint slot {slot}"));
    p.serial_number = Some(random_serial());
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::Other(
        DMTF_EKU_RESPONDER_AUTH.to_vec(),
    )];
    p.subject_alt_names = vec![SanType::OtherName((
        CMA_OTHER_NAME_OID.to_vec(),
        OtherNameValue::Utf8String(cma_id.to_string()),
    ))];
    p.key_identifier_method = KeyIdMethod::PreSpecified(key_id(key));
    p.use_authority_key_identifier_extension = true;
    let iss = Issuer::from_params(&issuer.params, CertSigner::new(&issuer.key));
    let cert = p
        .signed_by(&CertSigner::new(key), &iss)
        .map_err(|e| format!("cannot build the leaf certificate: {e}"))?;
    match key {
        PrivateKey::P521(_) => respell_p521_leaf(cert.der(), key, &issuer.key),
        _ => Ok(cert.der().to_vec()),
    }
}

/// Rewrites a certificate that rcgen issued for a P-521 key posing as P-384 (see
/// [`PrivateKey::cert_algorithm`]): the SubjectPublicKeyInfo gets the real one (curve
/// secp521r1) and the TBSCertificate is signed again with the issuer's key.
fn respell_p521_leaf(der: &[u8], key: &PrivateKey, issuer: &PrivateKey) -> Result<Vec<u8>, String> {
    use p521::pkcs8::EncodePublicKey;
    let PrivateKey::P521(k) = key else {
        return Err("not a P-521 key".to_string());
    };
    let bad = || "cannot rewrite the P-521 leaf certificate".to_string();
    let posing = CertSigner::new(key).subject_public_key_info();
    let real = k
        .verifying_key()
        .to_public_key_der()
        .map_err(|e| format!("cannot encode the P-521 public key: {e}"))?;
    // Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signatureValue }
    let (h, len) = der_header(der).ok_or_else(bad)?;
    let body = der.get(h..h + len).ok_or_else(bad)?;
    let (th, tl) = der_header(body).ok_or_else(bad)?;
    let (tbs, rest) = body.split_at(th + tl);
    let (ah, al) = der_header(rest).ok_or_else(bad)?;
    let sig_alg = &rest[..ah + al];
    let mut content = tbs[th..].to_vec();
    let at = content
        .windows(posing.len())
        .position(|w| w == posing.as_slice())
        .ok_or_else(bad)?;
    content.splice(at..at + posing.len(), real.as_bytes().iter().copied());
    let tbs = der_wrap(0x30, &content);
    let mut bits = vec![0u8];
    bits.extend(issuer.sign_cert(&tbs)?);
    let mut cert = tbs;
    cert.extend_from_slice(sig_alg);
    cert.extend(der_wrap(0x03, &bits));
    Ok(der_wrap(0x30, &cert))
}

/// The header length and content length of the DER TLV at the start of `der` (definite
/// lengths up to 4 bytes), if it fits in `der`.
fn der_header(der: &[u8]) -> Option<(usize, usize)> {
    let first = *der.get(1)?;
    let (h, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return None;
        }
        let len = der
            .get(2..2 + n)?
            .iter()
            .fold(0usize, |l, &b| (l << 8) | usize::from(b));
        (2 + n, len)
    };
    (der.len() >= h + len).then_some((h, len))
}

/// A DER TLV with tag `tag` around `content`.
fn der_wrap(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// What to build.
#[derive(Debug, Clone)]
pub struct PkiOptions {
    /// Where to keep the PKI (`None`: in memory only).
    pub dir: Option<PathBuf>,
    /// Leaf key type.
    pub key: KeyKind,
    /// Populated slots (0 to 7, no duplicates).
    pub slots: Vec<u8>,
    /// The CMA identity string for the leaves' subjectAltName.
    pub cma_id: String,
    /// A deliberately broken chain.
    pub fault: ChainFault,
}

/// Builds (or loads) the PKI with the standard profile and returns the endpoint identity. With
/// a directory, the root, intermediate and leaf certificates of the correct chain are written
/// there as well.
pub fn build_identity(opts: &PkiOptions) -> Result<Identity, String> {
    build_profile_identity(opts, PkiProfile::Standard)
}

/// Builds (or loads) the PKI with the CA hierarchy of `profile` below the root and returns the
/// endpoint identity (see the module documentation for what is written to the directory).
pub fn build_profile_identity(opts: &PkiOptions, profile: PkiProfile) -> Result<Identity, String> {
    if opts.slots.is_empty() {
        return Err("no certificate slot".to_string());
    }
    if let Some(&bad) = opts.slots.iter().find(|&&s| s > 7) {
        return Err(format!("slot {bad} out of range 0-7"));
    }
    let dir = opts.dir.as_deref();
    if let Some(d) = dir {
        fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    }
    let root = root_ca(dir)?;
    let trusted_root = root.der.clone();
    let root = match opts.fault {
        ChainFault::UntrustedRoot => new_root(PrivateKey::generate(KeyKind::P384)?)?,
        _ => root,
    };
    // BrokenChain: the first CA names the real root (name and key identifier) as its issuer,
    // but another key signs it.
    let forger = match opts.fault {
        ChainFault::BrokenChain => Some(PrivateKey::generate(KeyKind::P384)?),
        _ => None,
    };
    let prefix = match profile {
        PkiProfile::Standard => String::new(),
        p => format!("{p}-"),
    };
    // The CA files of a profile: `intermediate` for the standard one, else `<profile>-ca<N>`.
    let ca_file = |i: usize| match profile {
        PkiProfile::Standard => "intermediate".to_string(),
        _ => format!("{prefix}ca{}", i + 1),
    };
    let mut cas: Vec<Ca> = Vec::new();
    for (i, spec) in profile.cas().iter().enumerate() {
        // Kept in the directory, so that a leaf issued by an earlier build still verifies with
        // the CA certificate on disk.
        let key = load_or_generate_key(dir, &format!("{}.key.pem", ca_file(i)), KeyKind::P384)?;
        let issuer = cas.last().unwrap_or(&root);
        let signer = match (&forger, i) {
            (Some(f), 0) => f,
            _ => &issuer.key,
        };
        let ca = issue_ca(key, spec, &issuer.params, signer)?;
        cas.push(ca);
    }
    let write = match (dir, opts.fault) {
        (Some(d), ChainFault::None) => Some(d),
        _ => None,
    };
    if let Some(d) = write {
        for (i, ca) in cas.iter().enumerate() {
            write_file(&d.join(format!("{}.der", ca_file(i))), &ca.der)?;
        }
    }
    let issuer = cas.last().ok_or("a profile without an intermediate CA")?;
    let mut slots = Vec::new();
    let mut sorted = opts.slots.clone();
    sorted.sort_unstable();
    sorted.dedup();
    for slot in sorted {
        let base = format!("leaf-{}-slot{slot}", opts.key);
        let key = load_or_generate_key(dir, &format!("{base}.key.pem"), opts.key)?;
        let leaf = leaf_cert(
            &key,
            slot,
            &opts.cma_id,
            issuer,
            opts.fault == ChainFault::ExpiredLeaf,
        )?;
        if let Some(d) = write {
            write_file(&d.join(format!("{prefix}{base}.der")), &leaf)?;
        }
        let mut certs = vec![root.der.clone()];
        certs.extend(cas.iter().map(|ca| ca.der.clone()));
        certs.push(leaf);
        // The SPDM chain's Length is a u16; the largest hash (SHA-512) makes the longest.
        let size = 4 + 64 + certs.iter().map(Vec::len).sum::<usize>();
        if size > coco_spdm::auth::SPDM_MAX_CERT_CHAIN_SIZE {
            return Err(format!(
                "the {profile} chain of slot {slot} is {size} bytes, more than an SPDM chain holds"
            ));
        }
        slots.push(SlotIdentity { slot, certs, key });
    }
    Ok(Identity {
        slots,
        trusted_root,
        profile,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_kinds_parse() {
        for k in KeyKind::ALL {
            assert_eq!(k.name().parse::<KeyKind>(), Ok(k));
            assert_ne!(k.asym_mask(), 0);
        }
        assert!("ed25519".parse::<KeyKind>().is_err());
    }

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64_encode(b""), "");
        assert_eq!(base64_encode(b"f"), "Zg==");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
        assert_eq!(base64_encode(b"foo"), "Zm9v");
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn pem_roundtrip_p256() {
        let k = PrivateKey::generate(KeyKind::P256).unwrap();
        let pem = k.to_pkcs8_pem().unwrap();
        let k2 = PrivateKey::from_pkcs8_pem(KeyKind::P256, &pem).unwrap();
        assert_eq!(k.public_key_raw(), k2.public_key_raw());
        assert!(PrivateKey::from_pkcs8_pem(KeyKind::P384, &pem).is_err());
    }

    #[test]
    fn p521_signs_spdm_with_every_hash() {
        use signature::hazmat::PrehashVerifier;
        let k = PrivateKey::generate(KeyKind::P521).unwrap();
        let pem = k.to_pkcs8_pem().unwrap();
        let k = PrivateKey::from_pkcs8_pem(KeyKind::P521, &pem).unwrap();
        assert!(PrivateKey::from_pkcs8_pem(KeyKind::P384, &pem).is_err());
        let PrivateKey::P521(sk) = &k else {
            panic!("not P-521")
        };
        for hash in [SPDM_HASH_SHA256, SPDM_HASH_SHA384, SPDM_HASH_SHA512] {
            let digest = spdm_hash(hash, b"transcript").unwrap();
            let sig = k.sign_spdm(SPDM_ASYM_ECDSA_P521, hash, &digest).unwrap();
            assert_eq!(
                Some(sig.len()),
                coco_spdm::auth::signature_size(SPDM_ASYM_ECDSA_P521)
            );
            let sig = p521::ecdsa::Signature::from_slice(&sig).unwrap();
            sk.verifying_key().verify_prehash(&digest, &sig).unwrap();
        }
        assert!(k
            .sign_spdm(SPDM_ASYM_ECDSA_P384, SPDM_HASH_SHA384, &[0; 48])
            .is_err());
        assert!(k.sign_cert(b"tbs").is_err());
    }

    #[test]
    fn der_lengths_roundtrip() {
        for len in [0usize, 1, 127, 128, 255, 256, 300, 65535, 70000] {
            let tlv = der_wrap(0x30, &vec![0xAB; len]);
            let (h, l) = der_header(&tlv).unwrap();
            assert_eq!((h + l, l), (tlv.len(), len));
        }
        assert_eq!(der_header(&[0x30, 0x05, 0]), None);
        assert_eq!(der_header(&[0x30, 0x80]), None);
    }

    #[test]
    fn profiles_have_their_depth() {
        let depths: Vec<usize> = PkiProfile::ALL.iter().map(|p| p.intermediates()).collect();
        assert_eq!(depths, [1, 1, 4, 2, 1]);
        let valid: Vec<bool> = PkiProfile::ALL.iter().map(|p| p.rfc5280_valid()).collect();
        assert_eq!(valid, [true, true, true, false, false]);
    }

    #[test]
    fn leaf_carries_the_cma_identity_the_kernel_reads() {
        let opts = PkiOptions {
            dir: None,
            key: KeyKind::P384,
            slots: vec![0],
            cma_id: DEFAULT_CMA_ID.to_string(),
            fault: ChainFault::None,
        };
        let id = build_identity(&opts).unwrap();
        let leaf = id.slots[0].certs.last().unwrap();
        let found = coco_spdm::cma::find_identity(leaf).unwrap();
        assert_eq!(found, Some(DEFAULT_CMA_ID.as_bytes()));
        // The CA certificates carry none.
        assert_eq!(
            coco_spdm::cma::find_identity(&id.slots[0].certs[0]),
            Ok(None)
        );
        let parsed = coco_spdm::cma::Identity::parse(found.unwrap()).unwrap();
        assert_eq!((parsed.vendor, parsed.device), (0x1b36, 0x0010));
    }

    #[test]
    fn identity_in_directory_keeps_root() {
        let dir = std::env::temp_dir().join(format!("coco-pki-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let opts = PkiOptions {
            dir: Some(dir.clone()),
            key: KeyKind::P256,
            slots: vec![1, 0],
            cma_id: DEFAULT_CMA_ID.to_string(),
            fault: ChainFault::None,
        };
        let a = build_identity(&opts).unwrap();
        assert_eq!(a.slot_mask(), 0b11);
        assert_eq!(a.slots[0].slot, 0);
        assert_eq!(a.slots[0].certs.len(), 3);
        assert_eq!(fs::read(dir.join("root.der")).unwrap(), a.trusted_root);
        let pem = fs::read_to_string(dir.join("root.pem")).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        let b = build_identity(&opts).unwrap();
        assert_eq!(a.trusted_root, b.trusted_root);
        assert_eq!(a.slots[0].certs[0], b.slots[0].certs[0]);
        assert_eq!(
            a.slots[1].key.public_key_raw(),
            b.slots[1].key.public_key_raw()
        );
        let untrusted = build_identity(&PkiOptions {
            fault: ChainFault::UntrustedRoot,
            ..opts.clone()
        })
        .unwrap();
        assert_ne!(untrusted.slots[0].certs[0], a.trusted_root);
        assert_eq!(untrusted.trusted_root, a.trusted_root);
        let _ = fs::remove_dir_all(&dir);
    }
}
