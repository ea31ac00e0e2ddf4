//! RustCrypto implementations of the session codec's traits ([`coco_spdm::session::Hmac`],
//! [`coco_spdm::session::Aead`]) and ephemeral ECDHE for secp256r1/secp384r1, shared by the
//! responder and the tests' requester.

use aes_gcm::aead::inout::InOutBuf;
use aes_gcm::{AeadInOut, Aes256Gcm, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;
use coco_spdm::auth::{
    SPDM_AEAD_AES_256_GCM, SPDM_AEAD_CHACHA20_POLY1305, SPDM_DHE_SECP256R1, SPDM_DHE_SECP384R1,
    SPDM_HASH_SHA256, SPDM_HASH_SHA384, SPDM_HASH_SHA512,
};
use coco_spdm::session::{
    self, aead_key_size, Aead, KeySchedule, KeyScheduleError, RecordError, TrafficKeys,
};
use coco_spdm::SpdmVersion;
use hmac::Mac;
use p256::elliptic_curve::sec1::ToSec1Point;

/// The DHE groups the endpoint supports.
pub const SUPPORTED_DHE: u16 = SPDM_DHE_SECP256R1 | SPDM_DHE_SECP384R1;
/// The AEADs the endpoint supports.
pub const SUPPORTED_AEAD: u16 = SPDM_AEAD_AES_256_GCM | SPDM_AEAD_CHACHA20_POLY1305;

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
    /// AES-256-GCM.
    Aes256Gcm(Box<Aes256Gcm>),
    /// ChaCha20-Poly1305.
    ChaCha20Poly1305(Box<ChaCha20Poly1305>),
}

impl RustAead {
    /// The AEAD `aead` (`SPDM_AEAD_*`) keyed with `keys`.
    pub fn new(aead: u16, keys: &TrafficKeys) -> Option<Self> {
        match aead {
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
}

impl Ecdhe {
    /// A fresh key for the group `dhe` (`SPDM_DHE_SECP256R1` or `_SECP384R1`).
    pub fn generate(dhe: u16) -> Option<Self> {
        let mut rng = rand::rng();
        match dhe {
            SPDM_DHE_SECP256R1 => Some(Ecdhe::P256(
                <p256::ecdh::EphemeralSecret as rsa::Generate>::generate_from_rng(&mut rng),
            )),
            SPDM_DHE_SECP384R1 => Some(Ecdhe::P384(
                <p384::ecdh::EphemeralSecret as rsa::Generate>::generate_from_rng(&mut rng),
            )),
            _ => None,
        }
    }

    /// The ExchangeData: X || Y, big-endian.
    pub fn exchange_data(&self) -> Vec<u8> {
        let point = match self {
            Ecdhe::P256(s) => s.public_key().to_sec1_point(false).as_bytes().to_vec(),
            Ecdhe::P384(s) => s.public_key().to_sec1_point(false).as_bytes().to_vec(),
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
        }
    }
}
