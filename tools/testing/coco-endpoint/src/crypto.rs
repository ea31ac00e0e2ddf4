//! RustCrypto implementations of the session codec's traits ([`coco_spdm::session::Hmac`],
//! [`coco_spdm::session::Aead`]: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305) and ephemeral
//! ECDHE for secp256r1/secp384r1/secp521r1, shared by the responder and the tests' requester.

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::{AeadInOut, Aes128Gcm, Aes256Gcm, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use coco_spdm::auth::{
    SPDM_AEAD_AES_128_GCM, SPDM_AEAD_AES_256_GCM, SPDM_AEAD_CHACHA20_POLY1305, SPDM_DHE_SECP256R1,
    SPDM_DHE_SECP384R1, SPDM_DHE_SECP521R1, SPDM_HASH_SHA256, SPDM_HASH_SHA384, SPDM_HASH_SHA512,
};
use coco_spdm::session::{
    self, aead_key_size, Aead, KeySchedule, KeyScheduleError, RecordError, TrafficKeys,
};
use coco_spdm::SpdmVersion;
use hmac::Mac;
use p256::elliptic_curve::sec1::ToSec1Point;

/// The DHE groups the endpoint can do (`--dhe` restricts them).
pub const SUPPORTED_DHE: u16 = SPDM_DHE_SECP256R1 | SPDM_DHE_SECP384R1 | SPDM_DHE_SECP521R1;
/// The DHE groups an endpoint offers without `--dhe`: secp256r1 and secp384r1 (secp521r1 only
/// on request, a group the kernel requester cannot do).
pub const DEFAULT_DHE: u16 = SPDM_DHE_SECP256R1 | SPDM_DHE_SECP384R1;
/// The AEADs the endpoint can do, and offers without `--aead`.
pub const SUPPORTED_AEAD: u16 =
    SPDM_AEAD_AES_128_GCM | SPDM_AEAD_AES_256_GCM | SPDM_AEAD_CHACHA20_POLY1305;
/// The AEADs an endpoint offers without `--aead`: all three.
pub const DEFAULT_AEAD: u16 = SUPPORTED_AEAD;
/// Which DHE group the endpoint selects when several are common: the first of this list
/// (strongest first).
pub const DHE_PREFERENCE: [u16; 3] = [SPDM_DHE_SECP521R1, SPDM_DHE_SECP384R1, SPDM_DHE_SECP256R1];
/// Which AEAD the endpoint selects when several are common: the first of this list.
pub const AEAD_PREFERENCE: [u16; 3] = [
    SPDM_AEAD_AES_256_GCM,
    SPDM_AEAD_CHACHA20_POLY1305,
    SPDM_AEAD_AES_128_GCM,
];

/// Command-line names of the DHE groups (`--dhe`).
pub const DHE_NAMES: [(&str, u16); 3] = [
    ("secp256r1", SPDM_DHE_SECP256R1),
    ("secp384r1", SPDM_DHE_SECP384R1),
    ("secp521r1", SPDM_DHE_SECP521R1),
];
/// Command-line names of the AEADs (`--aead`).
pub const AEAD_NAMES: [(&str, u16); 3] = [
    ("aes128-gcm", SPDM_AEAD_AES_128_GCM),
    ("aes256-gcm", SPDM_AEAD_AES_256_GCM),
    ("chacha20-poly1305", SPDM_AEAD_CHACHA20_POLY1305),
];

/// Parses a comma-separated list of names from `table` (e.g. `secp256r1,secp384r1`) into a
/// bit mask; `what` names the option in errors. Duplicates are allowed, an empty list is not.
pub fn parse_alg_list(s: &str, table: &[(&str, u16)], what: &str) -> Result<u16, String> {
    let mut mask = 0;
    for item in s.split(',') {
        let item = item.trim();
        let bit = table
            .iter()
            .find(|(n, _)| *n == item)
            .map(|(_, b)| *b)
            .ok_or_else(|| {
                let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
                format!("unknown {what} '{item}' (known: {})", names.join(", "))
            })?;
        mask |= bit;
    }
    Ok(mask)
}

/// The names of the bits of `mask` in `table`, comma-separated (for logs).
pub fn alg_names(mask: u16, table: &[(&str, u16)]) -> String {
    let names: Vec<&str> = table
        .iter()
        .filter(|(_, b)| mask & b != 0)
        .map(|(n, _)| *n)
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(",")
    }
}

/// HMAC with an SPDM BaseHashAlgo.
#[derive(Debug, Clone, Copy)]
pub struct RustHmac {
    /// `SPDM_HASH_SHA256`, `_SHA384` or `_SHA512`.
    pub hash: u32,
}

impl session::Hmac for RustHmac {
    fn output_size(&self) -> usize {
        coco_spdm::auth::hash_size(self.hash).unwrap_or(0)
    }

    fn mac(&mut self, key: &[u8], data: &[&[u8]], out: &mut [u8]) -> Result<(), KeyScheduleError> {
        macro_rules! run {
            ($h:ty) => {{
                let mut m = <hmac::Hmac<$h> as hmac::KeyInit>::new_from_slice(key)
                    .map_err(|_| KeyScheduleError::Hmac)?;
                for d in data {
                    m.update(d);
                }
                let tag = m.finalize().into_bytes();
                if out.len() != tag.len() {
                    return Err(KeyScheduleError::InvalidSize);
                }
                out.copy_from_slice(&tag);
            }};
        }
        match self.hash {
            SPDM_HASH_SHA256 => run!(sha2::Sha256),
            SPDM_HASH_SHA384 => run!(sha2::Sha384),
            SPDM_HASH_SHA512 => run!(sha2::Sha512),
            _ => return Err(KeyScheduleError::Hmac),
        }
        Ok(())
    }
}

/// HMAC(`key`, `data`) with an SPDM hash, as a vector.
pub fn hmac(hash: u32, key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut h = RustHmac { hash };
    let mut out = vec![0u8; session::Hmac::output_size(&h)];
    session::Hmac::mac(&mut h, key, &[data], &mut out).expect("supported hash");
    out
}

/// The key schedule with RustCrypto HMAC.
pub fn key_schedule(
    version: SpdmVersion,
    hash: u32,
) -> Result<KeySchedule<RustHmac>, KeyScheduleError> {
    KeySchedule::new(RustHmac { hash }, version)
}

/// An AEAD with its key.
#[derive(Clone)]
pub enum RustAead {
    /// AES-128-GCM.
    Aes128Gcm(Box<Aes128Gcm>),
    /// AES-256-GCM.
    Aes256Gcm(Box<Aes256Gcm>),
    /// ChaCha20-Poly1305.
    ChaCha20Poly1305(Box<ChaCha20Poly1305>),
}

impl RustAead {
    /// The AEAD `aead` (`SPDM_AEAD_*`) keyed with `keys`.
    pub fn new(aead: u16, keys: &TrafficKeys) -> Option<Self> {
        match aead {
            SPDM_AEAD_AES_128_GCM => Some(RustAead::Aes128Gcm(Box::new(
                Aes128Gcm::new_from_slice(keys.key()).ok()?,
            ))),
            SPDM_AEAD_AES_256_GCM => Some(RustAead::Aes256Gcm(Box::new(
                Aes256Gcm::new_from_slice(keys.key()).ok()?,
            ))),
            SPDM_AEAD_CHACHA20_POLY1305 => Some(RustAead::ChaCha20Poly1305(Box::new(
                ChaCha20Poly1305::new_from_slice(keys.key()).ok()?,
            ))),
            _ => None,
        }
    }
}

impl Aead for RustAead {
    fn seal(
        &mut self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8; 16],
    ) -> Result<(), RecordError> {
        let t = match self {
            RustAead::Aes128Gcm(c) => c
                .encrypt_inout_detached(nonce.into(), aad, InOutBuf::from(buf))
                .map(|t| t.to_vec()),
            RustAead::Aes256Gcm(c) => c
                .encrypt_inout_detached(nonce.into(), aad, InOutBuf::from(buf))
                .map(|t| t.to_vec()),
            RustAead::ChaCha20Poly1305(c) => c
                .encrypt_inout_detached(nonce.into(), aad, InOutBuf::from(buf))
                .map(|t| t.to_vec()),
        }
        .map_err(|_| RecordError::Encrypt)?;
        tag.copy_from_slice(&t);
        Ok(())
    }

    fn open(
        &mut self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), RecordError> {
        match self {
            RustAead::Aes128Gcm(c) => {
                c.decrypt_inout_detached(nonce.into(), aad, InOutBuf::from(buf), tag.into())
            }
            RustAead::Aes256Gcm(c) => {
                c.decrypt_inout_detached(nonce.into(), aad, InOutBuf::from(buf), tag.into())
            }
            RustAead::ChaCha20Poly1305(c) => {
                c.decrypt_inout_detached(nonce.into(), aad, InOutBuf::from(buf), tag.into())
            }
        }
        .map_err(|_| RecordError::Decrypt)
    }
}

/// One direction of a session: its secret, AEAD and IV, and its sequence number.
#[derive(Clone)]
pub struct Direction {
    /// The traffic secret (kept for key updates).
    pub secret: session::Secret,
    /// The AEAD with the current key.
    pub aead: RustAead,
    /// The IV.
    pub iv: [u8; 12],
    /// The sequence number of the next record.
    pub seq: session::SequenceCounter,
}

impl Direction {
    /// Keys `secret` for `aead` with the key schedule `ks`.
    pub fn new(
        ks: &mut KeySchedule<RustHmac>,
        aead: u16,
        secret: session::Secret,
    ) -> Result<Self, String> {
        let size = aead_key_size(aead).ok_or("unsupported AEAD")?;
        let keys = ks.traffic_keys(&secret, size).map_err(|e| e.to_string())?;
        Ok(Direction {
            aead: RustAead::new(aead, &keys).ok_or("unsupported AEAD")?,
            iv: keys.iv,
            secret,
            seq: session::SequenceCounter::new(),
        })
    }

    /// The next generation of this direction (key update): new secret, key and IV, sequence 0.
    pub fn updated(&self, ks: &mut KeySchedule<RustHmac>, aead: u16) -> Result<Self, String> {
        let secret = ks.update_secret(&self.secret).map_err(|e| e.to_string())?;
        Direction::new(ks, aead, secret)
    }
}

/// An ephemeral ECDHE key.
pub enum Ecdhe {
    /// secp256r1.
    P256(p256::ecdh::EphemeralSecret),
    /// secp384r1.
    P384(p384::ecdh::EphemeralSecret),
    /// secp521r1.
    P521(p521::ecdh::EphemeralSecret),
}

impl Ecdhe {
    /// A fresh key for the group `dhe` (`SPDM_DHE_SECP256R1`, `_SECP384R1` or `_SECP521R1`).
    pub fn generate(dhe: u16) -> Option<Self> {
        let mut rng = rand::rng();
        match dhe {
            SPDM_DHE_SECP256R1 => Some(Ecdhe::P256(
                <p256::ecdh::EphemeralSecret as rsa::Generate>::generate_from_rng(&mut rng),
            )),
            SPDM_DHE_SECP384R1 => Some(Ecdhe::P384(
                <p384::ecdh::EphemeralSecret as rsa::Generate>::generate_from_rng(&mut rng),
            )),
            SPDM_DHE_SECP521R1 => Some(Ecdhe::P521(
                <p521::ecdh::EphemeralSecret as rsa::Generate>::generate_from_rng(&mut rng),
            )),
            _ => None,
        }
    }

    /// The ExchangeData: X || Y, big-endian.
    pub fn exchange_data(&self) -> Vec<u8> {
        let point = match self {
            Ecdhe::P256(s) => s.public_key().to_sec1_point(false).as_bytes().to_vec(),
            Ecdhe::P384(s) => s.public_key().to_sec1_point(false).as_bytes().to_vec(),
            Ecdhe::P521(s) => s.public_key().to_sec1_point(false).as_bytes().to_vec(),
        };
        point[1..].to_vec()
    }

    /// The shared secret (X coordinate) with the peer's ExchangeData, or `None` if it is not
    /// a valid point of the group.
    pub fn shared_secret(&self, peer: &[u8]) -> Option<Vec<u8>> {
        let mut sec1 = vec![0x04];
        sec1.extend_from_slice(peer);
        match self {
            Ecdhe::P256(s) => {
                let pk = p256::PublicKey::from_sec1_bytes(&sec1).ok()?;
                Some(s.diffie_hellman(&pk).raw_secret_bytes().to_vec())
            }
            Ecdhe::P384(s) => {
                let pk = p384::PublicKey::from_sec1_bytes(&sec1).ok()?;
                Some(s.diffie_hellman(&pk).raw_secret_bytes().to_vec())
            }
            Ecdhe::P521(s) => {
                let pk = p521::PublicKey::from_sec1_bytes(&sec1).ok()?;
                Some(s.diffie_hellman(&pk).raw_secret_bytes().to_vec())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_lists() {
        assert_eq!(
            parse_alg_list("secp256r1, secp521r1", &DHE_NAMES, "DHE group"),
            Ok(SPDM_DHE_SECP256R1 | SPDM_DHE_SECP521R1)
        );
        assert_eq!(
            parse_alg_list(
                "aes128-gcm,aes256-gcm,chacha20-poly1305",
                &AEAD_NAMES,
                "AEAD"
            ),
            Ok(SUPPORTED_AEAD)
        );
        for bad in ["", "ffdhe2048", "aes128-gcm,", "AES128-GCM"] {
            assert!(parse_alg_list(bad, &AEAD_NAMES, "AEAD").is_err(), "{bad}");
        }
        assert_eq!(alg_names(DEFAULT_DHE, &DHE_NAMES), "secp256r1,secp384r1");
        assert_eq!(alg_names(0, &AEAD_NAMES), "none");
    }

    #[test]
    fn aes128_gcm_and_p521() {
        let keys_for = |size: usize| {
            let mut ks = key_schedule(SpdmVersion::V1_1, SPDM_HASH_SHA256).unwrap();
            let secret = session::Secret::from_slice(&[7u8; 32]).unwrap();
            ks.traffic_keys(&secret, size).unwrap()
        };
        let keys = keys_for(16);
        assert_eq!(keys.key().len(), 16);
        let mut a = RustAead::new(SPDM_AEAD_AES_128_GCM, &keys).unwrap();
        let mut buf = *b"hello";
        let mut tag = [0u8; 16];
        a.seal(&[1; 12], b"aad", &mut buf, &mut tag).unwrap();
        a.open(&[1; 12], b"aad", &mut buf, &tag).unwrap();
        assert_eq!(&buf, b"hello");
        assert!(RustAead::new(SPDM_AEAD_AES_128_GCM, &keys_for(32)).is_none());
        let x = Ecdhe::generate(SPDM_DHE_SECP521R1).unwrap();
        let y = Ecdhe::generate(SPDM_DHE_SECP521R1).unwrap();
        assert_eq!(x.exchange_data().len(), 132);
        let s1 = x.shared_secret(&y.exchange_data()).unwrap();
        assert_eq!(s1.len(), 66);
        assert_eq!(Some(s1), y.shared_secret(&x.exchange_data()));
    }
}
