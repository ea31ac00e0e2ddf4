//! SPDM secure sessions (DSP0274 1.1 to 1.3 session messages, DSP0277 secured messages) for
//! the PCIe DOE binding: message codecs, the secured-message record, the key schedule and
//! sequence numbers. No cryptography lives here: the AEAD and the HMAC come from the caller
//! through the [`Aead`] and [`Hmac`] traits (kernel crypto in the kernel, RustCrypto in
//! userspace).
//!
//! Like `auth.rs`, this file is compiled directly into the kernel module (as the crate-root
//! module `session`, next to `spdm` and `auth`), so it uses only `core`, has no `unsafe`, never
//! allocates and has no code path that can panic.
//!
//! # Messages
//!
//! * KEY_EXCHANGE: header (Param1 MeasurementSummaryHashType, Param2 SlotID), ReqSessionID
//!   u16, SessionPolicy (1.2+; reserved in 1.1), reserved, RandomData (32), ExchangeData (D),
//!   OpaqueDataLength u16, OpaqueData.
//! * KEY_EXCHANGE_RSP: header (Param1 HeartbeatPeriod), RspSessionID u16, MutAuthRequested,
//!   ReqSlotIDParam, RandomData (32), ExchangeData (D), MeasurementSummaryHash (H, only if
//!   requested), OpaqueDataLength u16, OpaqueData, Signature (S), ResponderVerifyData (H,
//!   absent when both sides set HANDSHAKE_IN_THE_CLEAR_CAP).
//! * FINISH: header (Param1 bit 0 signature present, Param2 ReqSlotID), Signature (S, mutual
//!   authentication only), RequesterVerifyData (H). FINISH_RSP: header, ResponderVerifyData (H,
//!   only when the handshake is in the clear).
//! * HEARTBEAT / HEARTBEAT_ACK, END_SESSION (Param1 bit 0: clear the negotiated state) /
//!   END_SESSION_ACK: header only. KEY_UPDATE / KEY_UPDATE_ACK: header with Param1
//!   KeyOperation and Param2 Tag.
//!
//! ExchangeData of an ECDHE group is the public point X || Y, each coordinate big-endian and as
//! long as the field (64 bytes for secp256r1, 96 for secp384r1); the shared secret is the X
//! coordinate of the product. The SessionID of the session is ReqSessionID in the low and
//! RspSessionID in the high 16 bits ([`session_id`]); on the wire it is little-endian.
//!
//! # Secured-message version negotiation (OpaqueData)
//!
//! KEY_EXCHANGE carries the requester's supported secured-message (DSP0277) versions and
//! KEY_EXCHANGE_RSP the responder's selection in OpaqueData, whose layout depends on the SPDM
//! version ([`encode_sm_supported_versions_for`], [`encode_sm_version_selection_for`],
//! [`parse_sm_versions_for`]): at 1.1 DSP0277 1.0's format (SpecID u32 0x444D5446 "DMTF",
//! OpaqueVersion 1, TotalElements, reserved u16, elements), from 1.2 DSP0274's general opaque
//! data format 1 (TotalElements, 3 reserved bytes, elements; [`encode_sm_supported_versions`],
//! [`encode_sm_version_selection`], [`parse_sm_versions`]). The DMTF element itself is the
//! same in both. At 1.1 KEY_EXCHANGE has no SessionPolicy (reserved) and the KEY_EXCHANGE_RSP
//! signature covers the transcript hash itself (no 1.2 signing prefix).
//!
//! # Secured messages over PCI DOE
//!
//! A secured message travels as the payload of a DOE data object of type 2 (secured CMA/SPDM):
//!
//! ```text
//! SessionID (4, LE) | [sequence number: 0 bytes for PCI DOE] | Length (2, LE) |
//!     AEAD( ApplicationDataLength (2, LE) | SPDM message | random padding ) | MAC (16)
//! ```
//!
//! Length counts everything after itself (ciphertext and MAC). The AAD is the header
//! (SessionID, the sequence number field if any, Length). The per-message nonce is the
//! 12-byte IV of the direction XORed with the 64-bit sequence number in little-endian order in
//! bytes 0 to 7 ([`record_nonce`]; DSP0277 1.2 makes little-endian unconditional, and it is
//! libspdm's default for 1.0/1.1). The PCI DOE binding carries no sequence number in the record
//! and no random padding; both sides count messages per direction, from 0 for the handshake
//! keys, again from 0 for the application keys and after each key update of that direction.
//! Since DOE delivers in order, a receiver accepts only the next number; a replayed or skipped
//! record simply fails the MAC. The DOE object itself is padded to whole DWORDs: up to 3 zero
//! bytes may follow the record, and Length says where it really ends.
//!
//! # Key schedule (DSP0274 "Key schedule")
//!
//! With H the negotiated hash size, `BinConcat(L, label, ctx) = L (u16 LE) || "spdm1.x " ||
//! label || ctx` (x the negotiated minor version):
//!
//! ```text
//! HandshakeSecret = HKDF-Extract(salt = 0^H, DHE secret)
//! {req,rsp}HandshakeSecret = HKDF-Expand(HandshakeSecret, BinConcat(H, "{req,rsp} hs data", TH1), H)
//! Salt1 = HKDF-Expand(HandshakeSecret, BinConcat(H, "derived", ""), H)
//! MasterSecret = HKDF-Extract(Salt1, 0^H)
//! {req,rsp}AppSecret = HKDF-Expand(MasterSecret, BinConcat(H, "{req,rsp} app data", TH2), H)
//! finished_key = HKDF-Expand(xHandshakeSecret, BinConcat(H, "finished", ""), H)
//! key = HKDF-Expand(secret, BinConcat(key size, "key", ""), key size)
//! iv  = HKDF-Expand(secret, BinConcat(12, "iv", ""), 12)
//! updated secret = HKDF-Expand(secret, BinConcat(H, "traffic upd", ""), H)
//! ```
//!
//! TH1 is the hash of VCA || Hash(certificate chain of the slot, as in DIGESTS) ||
//! KEY_EXCHANGE || KEY_EXCHANGE_RSP up to and including the Signature; the KEY_EXCHANGE_RSP
//! signature covers the same bytes without the Signature (with the 1.2+ prefix and context
//! [`crate::auth::SPDM_KEY_EXCHANGE_RSP_SIGN_CONTEXT`]), and ResponderVerifyData is
//! HMAC(response finished_key, TH1). RequesterVerifyData is HMAC(request finished_key,
//! Hash(... || whole KEY_EXCHANGE_RSP || FINISH up to RequesterVerifyData)). TH2 is the hash of
//! everything through the whole FINISH and FINISH_RSP.

use crate::auth::{append, response_header, Reader, Writer, SPDM_MAX_HASH_SIZE};
use crate::auth::{
    SPDM_AEAD_AES_128_GCM, SPDM_AEAD_AES_256_GCM, SPDM_AEAD_CHACHA20_POLY1305, SPDM_AEAD_SM4_GCM,
    SPDM_DHE_FFDHE2048, SPDM_DHE_FFDHE3072, SPDM_DHE_FFDHE4096, SPDM_DHE_SECP256R1,
    SPDM_DHE_SECP384R1, SPDM_DHE_SECP521R1, SPDM_DHE_SM2_P256, SPDM_MAX_OPAQUE_DATA_SIZE,
    SPDM_MAX_SIGNATURE_SIZE,
};
use crate::spdm::{
    check_padding, SpdmError, SpdmHeader, SpdmVersion, SPDM_END_SESSION, SPDM_END_SESSION_ACK,
    SPDM_FINISH, SPDM_FINISH_RSP, SPDM_HEADER_SIZE, SPDM_HEARTBEAT, SPDM_HEARTBEAT_ACK,
    SPDM_KEY_EXCHANGE, SPDM_KEY_EXCHANGE_RSP, SPDM_KEY_UPDATE, SPDM_KEY_UPDATE_ACK,
};

// --- Constants -------------------------------------------------------------------------------

/// Size of RandomData in KEY_EXCHANGE and KEY_EXCHANGE_RSP.
pub const SPDM_RANDOM_DATA_SIZE: usize = 32;
/// Largest DHE ExchangeData (ffdhe4096).
pub const SPDM_MAX_DHE_EXCHANGE_SIZE: usize = 512;
/// Size of the fixed part of KEY_EXCHANGE before ExchangeData.
pub const SPDM_KEY_EXCHANGE_FIXED_SIZE: usize = 40;
/// Size of the fixed part of KEY_EXCHANGE_RSP before ExchangeData.
pub const SPDM_KEY_EXCHANGE_RSP_FIXED_SIZE: usize = 40;
/// KEY_EXCHANGE Param1: no measurement summary hash.
pub const SPDM_KEY_EXCHANGE_MEAS_SUMMARY_NONE: u8 = 0;
/// SessionPolicy bit 0: TerminationPolicy (end the session on a device reset... see DSP0274).
pub const SPDM_SESSION_POLICY_TERMINATION: u8 = 1 << 0;
/// MutAuthRequested bit 0: the responder asks for mutual authentication.
pub const SPDM_MUT_AUTH_REQUESTED: u8 = 1 << 0;
/// MutAuthRequested bit 1: mutual authentication with an encapsulated request.
pub const SPDM_MUT_AUTH_REQUESTED_WITH_ENCAP: u8 = 1 << 1;
/// MutAuthRequested bit 2: mutual authentication with GET_DIGESTS.
pub const SPDM_MUT_AUTH_REQUESTED_WITH_GET_DIGESTS: u8 = 1 << 2;
/// FINISH Param1 bit 0: a signature is present (mutual authentication).
pub const SPDM_FINISH_SIGNATURE_INCLUDED: u8 = 1 << 0;
/// KEY_UPDATE operation UpdateKey: the requester updates its request-direction key.
pub const SPDM_KEY_UPDATE_OP_UPDATE_KEY: u8 = 1;
/// KEY_UPDATE operation UpdateAllKeys: both directions.
pub const SPDM_KEY_UPDATE_OP_UPDATE_ALL_KEYS: u8 = 2;
/// KEY_UPDATE operation VerifyNewKey: the first message protected with the new key.
pub const SPDM_KEY_UPDATE_OP_VERIFY_NEW_KEY: u8 = 3;
/// END_SESSION Param1 bit 0: NegotiatedStateClearingIndicator.
pub const SPDM_END_SESSION_CLEAR_NEGOTIATED_STATE: u8 = 1 << 0;

/// Size of the AEAD IV / nonce of every SPDM AEAD.
pub const SPDM_AEAD_IV_SIZE: usize = 12;
/// Size of the AEAD tag (MAC) of every SPDM AEAD.
pub const SPDM_AEAD_TAG_SIZE: usize = 16;
/// Largest AEAD key (AES-256, ChaCha20).
pub const SPDM_MAX_AEAD_KEY_SIZE: usize = 32;

/// Size of the SessionID field of a secured message.
pub const SPDM_SESSION_ID_SIZE: usize = 4;
/// Size of the sequence number field of a secured message over PCI DOE (none: implicit).
pub const SPDM_PCI_DOE_SEQ_NUM_SIZE: usize = 0;
/// Largest sequence number field any binding uses.
pub const SPDM_MAX_SEQ_NUM_SIZE: usize = 8;
/// Size of the Length and ApplicationDataLength fields.
pub const SPDM_SECURED_LENGTH_SIZE: usize = 2;
/// Size of the record header over PCI DOE (SessionID, Length).
pub const SPDM_PCI_DOE_RECORD_HEADER_SIZE: usize = 6;
/// Bytes a PCI DOE record adds around the SPDM message (header, ApplicationDataLength, MAC).
pub const SPDM_PCI_DOE_RECORD_OVERHEAD: usize = 24;

/// Secured Messages using SPDM version 1.0, as a 16-bit version entry.
pub const SPDM_SECURED_VERSION_1_0: u16 = 0x1000;
/// Secured Messages using SPDM version 1.1.
pub const SPDM_SECURED_VERSION_1_1: u16 = 0x1100;
/// Secured Messages using SPDM version 1.2.
pub const SPDM_SECURED_VERSION_1_2: u16 = 0x1200;
/// Registry ID of DMTF opaque elements.
pub const SPDM_REGISTRY_ID_DMTF: u8 = 0;
/// SMDataVersion of the secured-message opaque element.
pub const SPDM_SM_DATA_VERSION: u8 = 1;
/// SMDataID: version selection (in KEY_EXCHANGE_RSP).
pub const SPDM_SM_DATA_ID_VERSION_SELECTION: u8 = 0;
/// SMDataID: supported version list (in KEY_EXCHANGE).
pub const SPDM_SM_DATA_ID_SUPPORTED_VERSIONS: u8 = 1;
/// Most versions the codec reads from a supported version list.
pub const SPDM_MAX_SM_VERSIONS: usize = 16;
/// SpecID of the DSP0277 1.0 secured-message opaque data header (SPDM 1.1): "DMTF" as the
/// little-endian u32 0x444D5446 (bytes 0x46 0x54 0x4D 0x44 on the wire).
pub const SPDM_SM_OPAQUE_SPEC_ID: u32 = 0x444D_5446;
/// OpaqueVersion of the DSP0277 1.0 secured-message opaque data header.
pub const SPDM_SM_OPAQUE_VERSION: u8 = 1;
/// Size of the DSP0277 1.0 opaque data header (SpecID, OpaqueVersion, TotalElements, reserved).
pub const SPDM_SM_OPAQUE_HEADER_SIZE_1_1: usize = 8;
/// Size of the DSP0274 1.2 general opaque data header (TotalElements, 3 reserved bytes).
pub const SPDM_GENERAL_OPAQUE_HEADER_SIZE: usize = 4;

/// Key schedule label: "derived".
pub const LABEL_DERIVED: &str = "derived";
/// Key schedule label: "req hs data".
pub const LABEL_REQ_HS_DATA: &str = "req hs data";
/// Key schedule label: "rsp hs data".
pub const LABEL_RSP_HS_DATA: &str = "rsp hs data";
/// Key schedule label: "req app data".
pub const LABEL_REQ_APP_DATA: &str = "req app data";
/// Key schedule label: "rsp app data".
pub const LABEL_RSP_APP_DATA: &str = "rsp app data";
/// Key schedule label: "key".
pub const LABEL_KEY: &str = "key";
/// Key schedule label: "iv".
pub const LABEL_IV: &str = "iv";
/// Key schedule label: "finished".
pub const LABEL_FINISHED: &str = "finished";
/// Key schedule label: "exp master".
pub const LABEL_EXP_MASTER: &str = "exp master";
/// Key schedule label: "traffic upd".
pub const LABEL_TRAFFIC_UPD: &str = "traffic upd";

/// DHE groups in order of preference (strongest first) among those this codec knows sizes of.
pub const SPDM_DHE_PREFERENCE: [u16; 2] = [SPDM_DHE_SECP384R1, SPDM_DHE_SECP256R1];
/// AEADs in order of preference.
pub const SPDM_AEAD_PREFERENCE: [u16; 2] = [SPDM_AEAD_AES_256_GCM, SPDM_AEAD_CHACHA20_POLY1305];

// --- Algorithm sizes -------------------------------------------------------------------------

/// ExchangeData size D of a DHE group (one bit), or `None` if unknown or not one bit.
pub const fn dhe_exchange_size(dhe: u16) -> Option<usize> {
    match dhe {
        SPDM_DHE_FFDHE2048 => Some(256),
        SPDM_DHE_FFDHE3072 => Some(384),
        SPDM_DHE_FFDHE4096 => Some(512),
        SPDM_DHE_SECP256R1 | SPDM_DHE_SM2_P256 => Some(64),
        SPDM_DHE_SECP384R1 => Some(96),
        SPDM_DHE_SECP521R1 => Some(132),
        _ => None,
    }
}

/// Size of the shared secret of a DHE group (the X coordinate for ECDHE, the modulus size for
/// FFDHE).
pub const fn dhe_secret_size(dhe: u16) -> Option<usize> {
    match dhe {
        SPDM_DHE_FFDHE2048 => Some(256),
        SPDM_DHE_FFDHE3072 => Some(384),
        SPDM_DHE_FFDHE4096 => Some(512),
        SPDM_DHE_SECP256R1 | SPDM_DHE_SM2_P256 => Some(32),
        SPDM_DHE_SECP384R1 => Some(48),
        SPDM_DHE_SECP521R1 => Some(66),
        _ => None,
    }
}

/// Key size of an AEAD (one bit).
pub const fn aead_key_size(aead: u16) -> Option<usize> {
    match aead {
        SPDM_AEAD_AES_128_GCM | SPDM_AEAD_SM4_GCM => Some(16),
        SPDM_AEAD_AES_256_GCM | SPDM_AEAD_CHACHA20_POLY1305 => Some(32),
        _ => None,
    }
}

/// The first of `preference` set in `mask`.
pub fn strongest_u16(mask: u16, preference: &[u16]) -> Option<u16> {
    preference.iter().copied().find(|&b| mask & b != 0)
}

/// The SessionID of a session: ReqSessionID in bits 0-15, RspSessionID in bits 16-31.
pub fn session_id(req_session_id: u16, rsp_session_id: u16) -> u32 {
    (u32::from(rsp_session_id) << 16) | u32::from(req_session_id)
}

// --- Private helpers -------------------------------------------------------------------------

fn request_header(buf: &[u8], code: u8) -> Result<SpdmHeader, SpdmError> {
    let header = SpdmHeader::parse(buf)?;
    if header.code != code {
        return Err(SpdmError::UnexpectedCode);
    }
    if header.spdm_version() < SpdmVersion::V1_1 {
        return Err(SpdmError::UnexpectedVersion);
    }
    Ok(header)
}

fn opaque_len(opaque: &[u8]) -> Result<u16, SpdmError> {
    if opaque.len() > SPDM_MAX_OPAQUE_DATA_SIZE {
        return Err(SpdmError::InvalidField);
    }
    u16::try_from(opaque.len()).map_err(|_| SpdmError::InvalidField)
}

fn header_only(
    version: SpdmVersion,
    code: u8,
    p1: u8,
    p2: u8,
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    let mut w = Writer::new(out);
    w.header(version, code, p1, p2)?;
    Ok(w.len())
}

// --- KEY_EXCHANGE ----------------------------------------------------------------------------

/// A KEY_EXCHANGE request (both directions), borrowing its variable parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyExchange<'a> {
    /// SPDMVersion (1.1 or later).
    pub version: SpdmVersion,
    /// Param1: MeasurementSummaryHashType (0 none, 1 TCB, 0xFF all).
    pub meas_summary_type: u8,
    /// Param2: SlotID of the responder's certificate chain (0xFF: provisioned public key).
    pub slot: u8,
    /// ReqSessionID.
    pub req_session_id: u16,
    /// SessionPolicy (1.2+; written as 0 and parsed as 0 in 1.1).
    pub session_policy: u8,
    /// RandomData (32 bytes).
    pub random_data: &'a [u8],
    /// ExchangeData: the requester's DHE public value (D bytes).
    pub exchange: &'a [u8],
    /// OpaqueData (at most 1024 bytes).
    pub opaque: &'a [u8],
    /// Length of the message without padding (set by the parser; ignored by the encoder).
    pub len: usize,
}

/// Writes KEY_EXCHANGE and returns its size. RandomData must be 32 bytes and ExchangeData at
/// most [`SPDM_MAX_DHE_EXCHANGE_SIZE`] ([`SpdmError::InvalidField`]).
pub fn encode_key_exchange(req: &KeyExchange<'_>, out: &mut [u8]) -> Result<usize, SpdmError> {
    if req.version < SpdmVersion::V1_1 {
        return Err(SpdmError::UnexpectedVersion);
    }
    if req.random_data.len() != SPDM_RANDOM_DATA_SIZE
        || req.exchange.len() > SPDM_MAX_DHE_EXCHANGE_SIZE
    {
        return Err(SpdmError::InvalidField);
    }
    let olen = opaque_len(req.opaque)?;
    let mut w = Writer::new(out);
    w.header(
        req.version,
        SPDM_KEY_EXCHANGE,
        req.meas_summary_type,
        req.slot,
    )?;
    w.u16(req.req_session_id)?;
    w.u8(if req.version >= SpdmVersion::V1_2 {
        req.session_policy
    } else {
        0
    })?;
    w.u8(0)?;
    w.bytes(req.random_data)?;
    w.bytes(req.exchange)?;
    w.u16(olen)?;
    w.bytes(req.opaque)?;
    Ok(w.len())
}

/// Parses KEY_EXCHANGE (responder side) with ExchangeData of `exchange_size` bytes (from the
/// negotiated DHE group, [`dhe_exchange_size`]). Up to 3 zero bytes of padding may follow.
/// Fails with [`SpdmError::UnexpectedVersion`] below 1.1 and [`SpdmError::InvalidField`] for
/// an OpaqueDataLength above 1024 or an unknown MeasurementSummaryHashType.
pub fn parse_key_exchange(buf: &[u8], exchange_size: usize) -> Result<KeyExchange<'_>, SpdmError> {
    let header = request_header(buf, SPDM_KEY_EXCHANGE)?;
    if exchange_size == 0 || exchange_size > SPDM_MAX_DHE_EXCHANGE_SIZE {
        return Err(SpdmError::UnsupportedAlgorithm);
    }
    if !matches!(header.param1, 0 | 1 | 0xFF) {
        return Err(SpdmError::InvalidField);
    }
    let version = header.spdm_version();
    let mut r = Reader::new(buf, SPDM_HEADER_SIZE);
    let req_session_id = r.u16()?;
    let policy = r.u8()?;
    r.u8()?;
    let random_data = r.take(SPDM_RANDOM_DATA_SIZE)?;
    let exchange = r.take(exchange_size)?;
    let olen = usize::from(r.u16()?);
    if olen > SPDM_MAX_OPAQUE_DATA_SIZE {
        return Err(SpdmError::InvalidField);
    }
    let opaque = r.take(olen)?;
    let len = r.finish()?;
    Ok(KeyExchange {
        version,
        meas_summary_type: header.param1,
        slot: header.param2,
        req_session_id,
        session_policy: if version >= SpdmVersion::V1_2 {
            policy
        } else {
            0
        },
        random_data,
        exchange,
        opaque,
        len,
    })
}

// --- KEY_EXCHANGE_RSP ------------------------------------------------------------------------

/// What [`parse_key_exchange_rsp`] needs to split KEY_EXCHANGE_RSP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyExchangeRspParams {
    /// The negotiated version (the response must carry it).
    pub version: SpdmVersion,
    /// H, the negotiated hash size.
    pub hash_size: usize,
    /// S, the negotiated signature size.
    pub signature_size: usize,
    /// D, the ExchangeData size of the negotiated DHE group.
    pub exchange_size: usize,
    /// Whether a MeasurementSummaryHash is present (KEY_EXCHANGE asked for one).
    pub measurement_summary: bool,
    /// Whether ResponderVerifyData is present (false only when both sides set
    /// HANDSHAKE_IN_THE_CLEAR_CAP).
    pub verify_data: bool,
}

/// A parsed KEY_EXCHANGE_RSP, borrowing from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyExchangeRsp<'a> {
    /// SPDMVersion.
    pub version: SpdmVersion,
    /// Param1: HeartbeatPeriod (0: no heartbeat required).
    pub heartbeat_period: u8,
    /// RspSessionID.
    pub rsp_session_id: u16,
    /// MutAuthRequested.
    pub mut_auth_requested: u8,
    /// ReqSlotIDParam.
    pub req_slot_id_param: u8,
    /// RandomData (32 bytes).
    pub random_data: &'a [u8],
    /// ExchangeData: the responder's DHE public value.
    pub exchange: &'a [u8],
    /// MeasurementSummaryHash (empty if absent).
    pub measurement_summary_hash: &'a [u8],
    /// OpaqueData.
    pub opaque: &'a [u8],
    /// Signature.
    pub signature: &'a [u8],
    /// ResponderVerifyData (empty when the handshake is in the clear).
    pub verify_data: &'a [u8],
    /// Offset of Signature: the signature covers the transcript ending with
    /// `buf[..signature_offset]`.
    pub signature_offset: usize,
    /// Offset of ResponderVerifyData: TH1 covers the transcript ending with
    /// `buf[..verify_data_offset]`.
    pub verify_data_offset: usize,
    /// Length of the message without padding.
    pub len: usize,
}

/// Parses KEY_EXCHANGE_RSP (requester side) with the sizes in `params`; up to 3 zero bytes of
/// padding may follow. Fails with [`SpdmError::UnsupportedAlgorithm`] for a zero or too large
/// H, S or D and [`SpdmError::InvalidField`] for an OpaqueDataLength above 1024.
pub fn parse_key_exchange_rsp<'a>(
    buf: &'a [u8],
    params: &KeyExchangeRspParams,
) -> Result<KeyExchangeRsp<'a>, SpdmError> {
    let header = response_header(buf, SPDM_KEY_EXCHANGE_RSP, params.version)?;
    if params.hash_size == 0
        || params.hash_size > SPDM_MAX_HASH_SIZE
        || params.signature_size == 0
        || params.signature_size > SPDM_MAX_SIGNATURE_SIZE
        || params.exchange_size == 0
        || params.exchange_size > SPDM_MAX_DHE_EXCHANGE_SIZE
    {
        return Err(SpdmError::UnsupportedAlgorithm);
    }
    let mut r = Reader::new(buf, SPDM_HEADER_SIZE);
    let rsp_session_id = r.u16()?;
    let mut_auth_requested = r.u8()?;
    let req_slot_id_param = r.u8()?;
    let random_data = r.take(SPDM_RANDOM_DATA_SIZE)?;
    let exchange = r.take(params.exchange_size)?;
    let measurement_summary_hash = if params.measurement_summary {
        r.take(params.hash_size)?
    } else {
        &[]
    };
    let olen = usize::from(r.u16()?);
    if olen > SPDM_MAX_OPAQUE_DATA_SIZE {
        return Err(SpdmError::InvalidField);
    }
    let opaque = r.take(olen)?;
    let signature_offset = r.pos();
    let signature = r.take(params.signature_size)?;
    let verify_data_offset = r.pos();
    let verify_data = if params.verify_data {
        r.take(params.hash_size)?
    } else {
        &[]
    };
    let len = r.finish()?;
    Ok(KeyExchangeRsp {
        version: params.version,
        heartbeat_period: header.param1,
        rsp_session_id,
        mut_auth_requested,
        req_slot_id_param,
        random_data,
        exchange,
        measurement_summary_hash,
        opaque,
        signature,
        verify_data,
        signature_offset,
        verify_data_offset,
        len,
    })
}

/// The fields of KEY_EXCHANGE_RSP before the signature (responder side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyExchangeRspBody<'a> {
    /// SPDMVersion (the negotiated one, 1.1+).
    pub version: SpdmVersion,
    /// HeartbeatPeriod (Param1).
    pub heartbeat_period: u8,
    /// RspSessionID.
    pub rsp_session_id: u16,
    /// MutAuthRequested.
    pub mut_auth_requested: u8,
    /// ReqSlotIDParam.
    pub req_slot_id_param: u8,
    /// RandomData (32 bytes).
    pub random_data: &'a [u8],
    /// ExchangeData.
    pub exchange: &'a [u8],
    /// MeasurementSummaryHash (H bytes, or empty).
    pub measurement_summary_hash: &'a [u8],
    /// OpaqueData (at most 1024 bytes).
    pub opaque: &'a [u8],
}

/// Writes KEY_EXCHANGE_RSP up to the Signature and returns its size (the signature offset).
pub fn encode_key_exchange_rsp_body(
    body: &KeyExchangeRspBody<'_>,
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    if body.version < SpdmVersion::V1_1 {
        return Err(SpdmError::UnexpectedVersion);
    }
    if body.random_data.len() != SPDM_RANDOM_DATA_SIZE
        || body.exchange.len() > SPDM_MAX_DHE_EXCHANGE_SIZE
    {
        return Err(SpdmError::InvalidField);
    }
    let olen = opaque_len(body.opaque)?;
    let mut w = Writer::new(out);
    w.header(
        body.version,
        SPDM_KEY_EXCHANGE_RSP,
        body.heartbeat_period,
        0,
    )?;
    w.u16(body.rsp_session_id)?;
    w.u8(body.mut_auth_requested)?;
    w.u8(body.req_slot_id_param)?;
    w.bytes(body.random_data)?;
    w.bytes(body.exchange)?;
    w.bytes(body.measurement_summary_hash)?;
    w.u16(olen)?;
    w.bytes(body.opaque)?;
    Ok(w.len())
}

/// Writes a whole KEY_EXCHANGE_RSP (body, `signature`, `verify_data` — empty when the
/// handshake is in the clear) and returns its size.
pub fn encode_key_exchange_rsp(
    body: &KeyExchangeRspBody<'_>,
    signature: &[u8],
    verify_data: &[u8],
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    let n = encode_key_exchange_rsp_body(body, out)?;
    append(out, n, &[signature, verify_data])
}

// --- FINISH / FINISH_RSP ---------------------------------------------------------------------

/// A FINISH request (both directions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Finish<'a> {
    /// SPDMVersion.
    pub version: SpdmVersion,
    /// Param1 (bit 0: signature included).
    pub attributes: u8,
    /// Param2: ReqSlotID (mutual authentication).
    pub req_slot_id: u8,
    /// Signature (empty without mutual authentication).
    pub signature: &'a [u8],
    /// RequesterVerifyData (H bytes).
    pub verify_data: &'a [u8],
    /// Offset of RequesterVerifyData: the HMAC covers the transcript ending with
    /// `buf[..verify_data_offset]` (set by the parser and the encoder's caller knows it too).
    pub verify_data_offset: usize,
    /// Length of the message without padding.
    pub len: usize,
}

/// Writes FINISH (`signature` only with mutual authentication: then Param1 bit 0 is set) and
/// returns its size.
pub fn encode_finish(
    version: SpdmVersion,
    req_slot_id: u8,
    signature: &[u8],
    verify_data: &[u8],
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    if version < SpdmVersion::V1_1 {
        return Err(SpdmError::UnexpectedVersion);
    }
    let attributes = if signature.is_empty() {
        0
    } else {
        SPDM_FINISH_SIGNATURE_INCLUDED
    };
    let mut w = Writer::new(out);
    w.header(version, SPDM_FINISH, attributes, req_slot_id)?;
    w.bytes(signature)?;
    w.bytes(verify_data)?;
    Ok(w.len())
}

/// Parses FINISH (responder side): `hash_size` is H; a signature (Param1 bit 0) is
/// `signature_size` bytes, and is refused with [`SpdmError::InvalidField`] when
/// `signature_size` is 0 (no mutual authentication was requested).
pub fn parse_finish(
    buf: &[u8],
    hash_size: usize,
    signature_size: usize,
) -> Result<Finish<'_>, SpdmError> {
    let header = request_header(buf, SPDM_FINISH)?;
    if hash_size == 0 || hash_size > SPDM_MAX_HASH_SIZE || signature_size > SPDM_MAX_SIGNATURE_SIZE
    {
        return Err(SpdmError::UnsupportedAlgorithm);
    }
    let mut r = Reader::new(buf, SPDM_HEADER_SIZE);
    let signature = if header.param1 & SPDM_FINISH_SIGNATURE_INCLUDED != 0 {
        if signature_size == 0 {
            return Err(SpdmError::InvalidField);
        }
        r.take(signature_size)?
    } else {
        &[]
    };
    let verify_data_offset = r.pos();
    let verify_data = r.take(hash_size)?;
    let len = r.finish()?;
    Ok(Finish {
        version: header.spdm_version(),
        attributes: header.param1,
        req_slot_id: header.param2,
        signature,
        verify_data,
        verify_data_offset,
        len,
    })
}

/// Writes FINISH_RSP (`verify_data` only when the handshake is in the clear) and returns its
/// size.
pub fn encode_finish_rsp(
    version: SpdmVersion,
    verify_data: &[u8],
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    let mut w = Writer::new(out);
    w.header(version, SPDM_FINISH_RSP, 0, 0)?;
    w.bytes(verify_data)?;
    Ok(w.len())
}

/// Parses FINISH_RSP (requester side); `verify_data_size` is H when the handshake is in the
/// clear, else 0. Returns ResponderVerifyData (empty if 0) and the message length.
pub fn parse_finish_rsp(
    buf: &[u8],
    version: SpdmVersion,
    verify_data_size: usize,
) -> Result<(&[u8], usize), SpdmError> {
    response_header(buf, SPDM_FINISH_RSP, version)?;
    if verify_data_size > SPDM_MAX_HASH_SIZE {
        return Err(SpdmError::UnsupportedAlgorithm);
    }
    let mut r = Reader::new(buf, SPDM_HEADER_SIZE);
    let verify_data = r.take(verify_data_size)?;
    let len = r.finish()?;
    Ok((verify_data, len))
}

// --- HEARTBEAT, KEY_UPDATE, END_SESSION ------------------------------------------------------

/// Writes HEARTBEAT (4 bytes).
pub fn encode_heartbeat(version: SpdmVersion, out: &mut [u8]) -> Result<usize, SpdmError> {
    header_only(version, SPDM_HEARTBEAT, 0, 0, out)
}

/// Parses HEARTBEAT (responder side); returns the header.
pub fn parse_heartbeat(buf: &[u8]) -> Result<SpdmHeader, SpdmError> {
    let header = request_header(buf, SPDM_HEARTBEAT)?;
    Reader::new(buf, SPDM_HEADER_SIZE).finish()?;
    Ok(header)
}

/// Writes HEARTBEAT_ACK (4 bytes).
pub fn encode_heartbeat_ack(version: SpdmVersion, out: &mut [u8]) -> Result<usize, SpdmError> {
    header_only(version, SPDM_HEARTBEAT_ACK, 0, 0, out)
}

/// Parses HEARTBEAT_ACK (requester side).
pub fn parse_heartbeat_ack(buf: &[u8], version: SpdmVersion) -> Result<(), SpdmError> {
    response_header(buf, SPDM_HEARTBEAT_ACK, version)?;
    Reader::new(buf, SPDM_HEADER_SIZE).finish()?;
    Ok(())
}

/// A KEY_UPDATE request or KEY_UPDATE_ACK response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyUpdate {
    /// SPDMVersion.
    pub version: SpdmVersion,
    /// Param1: KeyOperation (`SPDM_KEY_UPDATE_OP_*`).
    pub operation: u8,
    /// Param2: Tag, echoed in the ACK.
    pub tag: u8,
}

impl KeyUpdate {
    /// Checks that `ack` answers this request: same operation and tag
    /// ([`SpdmError::Mismatch`]).
    pub fn check_ack(&self, ack: &KeyUpdate) -> Result<(), SpdmError> {
        if ack.operation != self.operation || ack.tag != self.tag {
            return Err(SpdmError::Mismatch);
        }
        Ok(())
    }
}

fn key_operation_ok(op: u8) -> bool {
    matches!(
        op,
        SPDM_KEY_UPDATE_OP_UPDATE_KEY
            | SPDM_KEY_UPDATE_OP_UPDATE_ALL_KEYS
            | SPDM_KEY_UPDATE_OP_VERIFY_NEW_KEY
    )
}

/// Writes KEY_UPDATE (4 bytes); an unknown operation is [`SpdmError::InvalidField`].
pub fn encode_key_update(req: &KeyUpdate, out: &mut [u8]) -> Result<usize, SpdmError> {
    if !key_operation_ok(req.operation) {
        return Err(SpdmError::InvalidField);
    }
    header_only(req.version, SPDM_KEY_UPDATE, req.operation, req.tag, out)
}

/// Parses KEY_UPDATE (responder side); an unknown operation is [`SpdmError::InvalidField`].
pub fn parse_key_update(buf: &[u8]) -> Result<KeyUpdate, SpdmError> {
    let header = request_header(buf, SPDM_KEY_UPDATE)?;
    Reader::new(buf, SPDM_HEADER_SIZE).finish()?;
    if !key_operation_ok(header.param1) {
        return Err(SpdmError::InvalidField);
    }
    Ok(KeyUpdate {
        version: header.spdm_version(),
        operation: header.param1,
        tag: header.param2,
    })
}

/// Writes KEY_UPDATE_ACK echoing `req` (4 bytes).
pub fn encode_key_update_ack(req: &KeyUpdate, out: &mut [u8]) -> Result<usize, SpdmError> {
    if !key_operation_ok(req.operation) {
        return Err(SpdmError::InvalidField);
    }
    header_only(
        req.version,
        SPDM_KEY_UPDATE_ACK,
        req.operation,
        req.tag,
        out,
    )
}

/// Parses KEY_UPDATE_ACK (requester side); check it with [`KeyUpdate::check_ack`].
pub fn parse_key_update_ack(buf: &[u8], version: SpdmVersion) -> Result<KeyUpdate, SpdmError> {
    let header = response_header(buf, SPDM_KEY_UPDATE_ACK, version)?;
    Reader::new(buf, SPDM_HEADER_SIZE).finish()?;
    Ok(KeyUpdate {
        version,
        operation: header.param1,
        tag: header.param2,
    })
}

/// Writes END_SESSION (4 bytes) with Param1 `attributes`
/// ([`SPDM_END_SESSION_CLEAR_NEGOTIATED_STATE`]).
pub fn encode_end_session(
    version: SpdmVersion,
    attributes: u8,
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    header_only(version, SPDM_END_SESSION, attributes, 0, out)
}

/// Parses END_SESSION (responder side); returns the header (Param1: attributes).
pub fn parse_end_session(buf: &[u8]) -> Result<SpdmHeader, SpdmError> {
    let header = request_header(buf, SPDM_END_SESSION)?;
    Reader::new(buf, SPDM_HEADER_SIZE).finish()?;
    Ok(header)
}

/// Writes END_SESSION_ACK (4 bytes).
pub fn encode_end_session_ack(version: SpdmVersion, out: &mut [u8]) -> Result<usize, SpdmError> {
    header_only(version, SPDM_END_SESSION_ACK, 0, 0, out)
}

/// Parses END_SESSION_ACK (requester side).
pub fn parse_end_session_ack(buf: &[u8], version: SpdmVersion) -> Result<(), SpdmError> {
    response_header(buf, SPDM_END_SESSION_ACK, version)?;
    Reader::new(buf, SPDM_HEADER_SIZE).finish()?;
    Ok(())
}

// --- Opaque data: secured message versions (1.1: DSP0277 1.0 format; 1.2+: format 1) ---------

/// Writes OpaqueData in the general format 1 (DSP0274 1.2 "General opaque data format":
/// TotalElements, 3 reserved bytes, then elements of RegistryID, VendorIDLen,
/// OpaqueElementDataLen u16, data, padding to 4 bytes) holding one DMTF secured-message
/// element: SMDataVersion 1, SMDataID 1 (supported version list), NumberOfVersions, then
/// 16-bit version entries (e.g. [`SPDM_SECURED_VERSION_1_1`]). Returns the size.
pub fn encode_sm_supported_versions(versions: &[u16], out: &mut [u8]) -> Result<usize, SpdmError> {
    encode_sm_supported(OpaqueFormat::General, versions, out)
}

/// Writes OpaqueData (format 1) holding the secured-message version selection element
/// (SMDataID 0, SelectedVersion). Returns the size (12).
pub fn encode_sm_version_selection(version: u16, out: &mut [u8]) -> Result<usize, SpdmError> {
    encode_sm_selection(OpaqueFormat::General, version, out)
}

/// The layout of the OpaqueData that carries the secured-message element: it depends on the
/// negotiated SPDM version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum OpaqueFormat {
    /// SPDM 1.1: DSP0277 1.0's header (SpecID "DMTF", OpaqueVersion 1, TotalElements, reserved
    /// u16).
    Dsp0277V10,
    /// SPDM 1.2+: DSP0274's general opaque data format 1 (TotalElements, 3 reserved bytes).
    General,
}

impl OpaqueFormat {
    fn for_version(version: SpdmVersion) -> Result<Self, SpdmError> {
        if version < SpdmVersion::V1_1 {
            Err(SpdmError::UnexpectedVersion)
        } else if version < SpdmVersion::V1_2 {
            Ok(OpaqueFormat::Dsp0277V10)
        } else {
            Ok(OpaqueFormat::General)
        }
    }
}

/// Writes the secured-message supported version list as OpaqueData in the format of SPDM
/// `version` (KEY_EXCHANGE, requester side):
///
/// * 1.1 (DSP0277 1.0 "Secured message opaque data"): SpecID u32 = 0x444D5446 ("DMTF",
///   [`SPDM_SM_OPAQUE_SPEC_ID`]), OpaqueVersion u8 = 1, TotalElements u8 = 1, reserved u16,
///   then the element;
/// * 1.2 and later: exactly [`encode_sm_supported_versions`] (general opaque data format 1:
///   TotalElements u8 = 1, 3 reserved bytes, then the element).
///
/// The element is the same in both: RegistryID 0 (DMTF), VendorIDLen 0,
/// OpaqueElementDataLen u16, SMDataVersion 1, SMDataID 1, NumberOfVersions, the 16-bit
/// version entries (e.g. [`SPDM_SECURED_VERSION_1_1`]), zero padding to a multiple of 4.
/// Returns the size. Fails with [`SpdmError::UnexpectedVersion`] below 1.1 and
/// [`SpdmError::InvalidField`] for 0 or more than 16 versions.
pub fn encode_sm_supported_versions_for(
    version: SpdmVersion,
    versions: &[u16],
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    encode_sm_supported(OpaqueFormat::for_version(version)?, versions, out)
}

/// Writes the secured-message version selection (`selected`, KEY_EXCHANGE_RSP, responder
/// side) as OpaqueData in the format of SPDM `version` (see
/// [`encode_sm_supported_versions_for`]): 16 bytes at 1.1, 12 bytes (exactly
/// [`encode_sm_version_selection`]) at 1.2 and later. Returns the size.
pub fn encode_sm_version_selection_for(
    version: SpdmVersion,
    selected: u16,
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    encode_sm_selection(OpaqueFormat::for_version(version)?, selected, out)
}

/// Finds the DMTF secured-message element in OpaqueData in the format of SPDM `version` (see
/// [`encode_sm_supported_versions_for`]): at 1.2 and later exactly [`parse_sm_versions`]; at
/// 1.1 the DSP0277 1.0 header must carry SpecID 0x444D5446 and OpaqueVersion 1 (else
/// [`SpdmError::InvalidField`]) and its reserved field is ignored. The elements are checked as
/// [`parse_sm_versions`] does. Below 1.1: [`SpdmError::UnexpectedVersion`].
pub fn parse_sm_versions_for(
    version: SpdmVersion,
    opaque: &[u8],
) -> Result<SmVersions<'_>, SpdmError> {
    parse_sm(OpaqueFormat::for_version(version)?, opaque)
}

fn encode_sm_supported(
    format: OpaqueFormat,
    versions: &[u16],
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    if versions.is_empty() || versions.len() > SPDM_MAX_SM_VERSIONS {
        return Err(SpdmError::InvalidField);
    }
    let count = u8::try_from(versions.len()).map_err(|_| SpdmError::InvalidField)?;
    let data_len = versions.len().saturating_mul(2).saturating_add(3);
    let mut w = Writer::new(out);
    sm_element_start(&mut w, format, data_len, SPDM_SM_DATA_ID_SUPPORTED_VERSIONS)?;
    w.u8(count)?;
    for v in versions {
        w.u16(*v)?;
    }
    sm_element_pad(&mut w, data_len)?;
    Ok(w.len())
}

fn encode_sm_selection(
    format: OpaqueFormat,
    version: u16,
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    let data_len = 4;
    let mut w = Writer::new(out);
    sm_element_start(&mut w, format, data_len, SPDM_SM_DATA_ID_VERSION_SELECTION)?;
    w.u16(version)?;
    sm_element_pad(&mut w, data_len)?;
    Ok(w.len())
}

fn sm_element_start(
    w: &mut Writer<'_>,
    format: OpaqueFormat,
    data_len: usize,
    id: u8,
) -> Result<(), SpdmError> {
    let data_len16 = u16::try_from(data_len).map_err(|_| SpdmError::InvalidField)?;
    match format {
        OpaqueFormat::Dsp0277V10 => {
            w.u32(SPDM_SM_OPAQUE_SPEC_ID)?;
            w.u8(SPDM_SM_OPAQUE_VERSION)?;
            w.u8(1)?; // TotalElements
            w.u16(0)?;
        }
        OpaqueFormat::General => {
            w.u8(1)?; // TotalElements
            w.bytes(&[0, 0, 0])?;
        }
    }
    w.u8(SPDM_REGISTRY_ID_DMTF)?;
    w.u8(0)?; // VendorIDLen
    w.u16(data_len16)?;
    w.u8(SPDM_SM_DATA_VERSION)?;
    w.u8(id)
}

fn sm_element_pad(w: &mut Writer<'_>, data_len: usize) -> Result<(), SpdmError> {
    // The element is 4 (header) + data_len bytes: pad it to a multiple of 4.
    let pad = data_len.wrapping_neg() & 3;
    for _ in 0..pad {
        w.u8(0)?;
    }
    Ok(())
}

/// The secured-message element found in OpaqueData.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmVersions<'a> {
    /// A supported version list (KEY_EXCHANGE): `count * 2` bytes of LE version entries.
    Supported(&'a [u8]),
    /// A version selection (KEY_EXCHANGE_RSP).
    Selected(u16),
}

impl<'a> SmVersions<'a> {
    /// The versions of a supported list (none for a selection), in the order listed.
    pub fn versions(&self) -> impl Iterator<Item = u16> + 'a {
        let list: &'a [u8] = match self {
            SmVersions::Supported(l) => l,
            SmVersions::Selected(_) => &[],
        };
        list.chunks_exact(2).map(|c| {
            u16::from_le_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
    }
}

/// Finds the DMTF secured-message element in format-1 OpaqueData (other elements are
/// skipped). Fails with [`SpdmError::InvalidField`] if the opaque data is malformed, holds no
/// such element or more than one, or the element is malformed (SMDataVersion not 1, unknown
/// SMDataID, a list of 0 or more than 16 versions, lengths that disagree).
pub fn parse_sm_versions(opaque: &[u8]) -> Result<SmVersions<'_>, SpdmError> {
    parse_sm(OpaqueFormat::General, opaque)
}

fn parse_sm(format: OpaqueFormat, opaque: &[u8]) -> Result<SmVersions<'_>, SpdmError> {
    let bad = |_| SpdmError::InvalidField;
    let mut r = Reader::new(opaque, 0);
    let total = match format {
        OpaqueFormat::Dsp0277V10 => {
            if r.u32().map_err(bad)? != SPDM_SM_OPAQUE_SPEC_ID
                || r.u8().map_err(bad)? != SPDM_SM_OPAQUE_VERSION
            {
                return Err(SpdmError::InvalidField);
            }
            let total = r.u8().map_err(bad)?;
            r.u16().map_err(bad)?;
            total
        }
        OpaqueFormat::General => {
            let total = r.u8().map_err(bad)?;
            r.take(3).map_err(bad)?;
            total
        }
    };
    let mut found = None;
    for _ in 0..total {
        let start = r.pos();
        let registry = r.u8().map_err(bad)?;
        let vendor_len = r.u8().map_err(bad)?;
        r.take(usize::from(vendor_len)).map_err(bad)?;
        let data_len = usize::from(r.u16().map_err(bad)?);
        let data = r.take(data_len).map_err(bad)?;
        let elem_len = r.pos().saturating_sub(start);
        let pad = elem_len.wrapping_neg() & 3;
        let padding = r.take(pad).map_err(bad)?;
        if padding.iter().any(|&b| b != 0) {
            return Err(SpdmError::InvalidField);
        }
        if registry != SPDM_REGISTRY_ID_DMTF || vendor_len != 0 {
            continue;
        }
        let mut d = Reader::new(data, 0);
        if d.u8().map_err(bad)? != SPDM_SM_DATA_VERSION {
            return Err(SpdmError::InvalidField);
        }
        let versions = match d.u8().map_err(bad)? {
            SPDM_SM_DATA_ID_VERSION_SELECTION => SmVersions::Selected(d.u16().map_err(bad)?),
            SPDM_SM_DATA_ID_SUPPORTED_VERSIONS => {
                let n = usize::from(d.u8().map_err(bad)?);
                if n == 0 || n > SPDM_MAX_SM_VERSIONS {
                    return Err(SpdmError::InvalidField);
                }
                SmVersions::Supported(d.take(n.saturating_mul(2)).map_err(bad)?)
            }
            _ => return Err(SpdmError::InvalidField),
        };
        if d.pos() != data.len() || found.is_some() {
            return Err(SpdmError::InvalidField);
        }
        found = Some(versions);
    }
    if r.pos() != opaque.len() {
        return Err(SpdmError::InvalidField);
    }
    found.ok_or(SpdmError::InvalidField)
}

/// The highest version of `offered` (a supported list) that is in `supported`, comparing
/// major.minor only.
pub fn select_sm_version(offered: &SmVersions<'_>, supported: &[u16]) -> Option<u16> {
    offered
        .versions()
        .filter(|v| supported.iter().any(|s| s >> 8 == v >> 8))
        .map(|v| v & 0xFF00)
        .max()
}

// --- Secured message record (DSP0277) ----------------------------------------------------------

/// Why a secured message cannot be built or accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordError {
    /// The record is shorter than its header, or than its Length field says.
    Truncated,
    /// Length is smaller than the MAC plus ApplicationDataLength, or ApplicationDataLength
    /// exceeds the plaintext.
    InvalidLength,
    /// More than 3 bytes, or non-zero bytes, follow the record.
    TrailingBytes,
    /// The output buffer is too small, or the message too large for the 16-bit lengths.
    BufferTooSmall,
    /// The SessionID is not the session's.
    WrongSessionId,
    /// An explicit sequence number field is not the expected number.
    WrongSequence,
    /// The MAC does not verify (tampered, replayed or skipped record, or wrong key).
    Decrypt,
    /// The AEAD failed to encrypt.
    Encrypt,
    /// The sequence number space of the direction is used up; the session must end.
    SequenceExhausted,
    /// A sequence number field size above 8.
    InvalidSeqSize,
}

impl RecordError {
    /// A short, human-readable reason, suitable for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            RecordError::Truncated => "secured message shorter than its length field",
            RecordError::InvalidLength => "secured message length fields inconsistent",
            RecordError::TrailingBytes => "unexpected bytes after the secured message",
            RecordError::BufferTooSmall => "buffer too small for the secured message",
            RecordError::WrongSessionId => "secured message for another session",
            RecordError::WrongSequence => "secured message with an unexpected sequence number",
            RecordError::Decrypt => "secured message MAC does not verify",
            RecordError::Encrypt => "secured message encryption failed",
            RecordError::SequenceExhausted => "secured message sequence numbers exhausted",
            RecordError::InvalidSeqSize => "invalid sequence number field size",
        }
    }
}

impl core::fmt::Display for RecordError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An AEAD with its key (one direction of a session), supplied by the caller.
pub trait Aead {
    /// Encrypts `buf` in place with `nonce` and `aad` and writes the 16-byte tag.
    fn seal(
        &mut self,
        nonce: &[u8; SPDM_AEAD_IV_SIZE],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8; SPDM_AEAD_TAG_SIZE],
    ) -> Result<(), RecordError>;

    /// Checks `tag` and decrypts `buf` in place; fails with [`RecordError::Decrypt`] (leaving
    /// `buf` unspecified) if the tag does not verify.
    fn open(
        &mut self,
        nonce: &[u8; SPDM_AEAD_IV_SIZE],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; SPDM_AEAD_TAG_SIZE],
    ) -> Result<(), RecordError>;
}

impl<T: Aead + ?Sized> Aead for &mut T {
    fn seal(
        &mut self,
        nonce: &[u8; SPDM_AEAD_IV_SIZE],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8; SPDM_AEAD_TAG_SIZE],
    ) -> Result<(), RecordError> {
        (**self).seal(nonce, aad, buf, tag)
    }

    fn open(
        &mut self,
        nonce: &[u8; SPDM_AEAD_IV_SIZE],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; SPDM_AEAD_TAG_SIZE],
    ) -> Result<(), RecordError> {
        (**self).open(nonce, aad, buf, tag)
    }
}

/// The per-message nonce: `iv` with bytes 0 to 7 XORed with `seq` in little-endian order.
pub fn record_nonce(iv: &[u8; SPDM_AEAD_IV_SIZE], seq: u64) -> [u8; SPDM_AEAD_IV_SIZE] {
    let mut nonce = *iv;
    for (n, s) in nonce.iter_mut().zip(seq.to_le_bytes()) {
        *n ^= s;
    }
    nonce
}

/// Size of a record carrying `msg_len` bytes of SPDM message and `padding` bytes of random
/// padding with a `seq_size`-byte sequence number field.
pub fn record_size(msg_len: usize, padding: usize, seq_size: usize) -> Option<usize> {
    SPDM_SESSION_ID_SIZE
        .checked_add(seq_size)?
        .checked_add(SPDM_SECURED_LENGTH_SIZE)?
        .checked_add(SPDM_SECURED_LENGTH_SIZE)?
        .checked_add(msg_len)?
        .checked_add(padding)?
        .checked_add(SPDM_AEAD_TAG_SIZE)
}

/// One direction's record parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordParams<'a> {
    /// The SessionID.
    pub session_id: u32,
    /// The 12-byte IV of the direction (from the key schedule).
    pub iv: &'a [u8; SPDM_AEAD_IV_SIZE],
    /// The sequence number of this record.
    pub seq: u64,
    /// Size of the sequence number field in the record ([`SPDM_PCI_DOE_SEQ_NUM_SIZE`] for DOE).
    pub seq_size: usize,
}

fn write_header(out: &mut [u8], p: &RecordParams<'_>, length: u16) -> Result<usize, RecordError> {
    if p.seq_size > SPDM_MAX_SEQ_NUM_SIZE {
        return Err(RecordError::InvalidSeqSize);
    }
    let mut w = Writer::new(out);
    let seq = p.seq.to_le_bytes();
    w.bytes(&p.session_id.to_le_bytes())
        .and_then(|()| w.bytes(seq.get(..p.seq_size).unwrap_or(&[])))
        .and_then(|()| w.u16(length))
        .map_err(|_| RecordError::BufferTooSmall)?;
    Ok(w.len())
}

/// Builds a secured message in `out` around `msg` (an SPDM message) with `padding` as the
/// random padding (empty over DOE), encrypting with `aead`. Returns the record size. The
/// caller takes `p.seq` from its [`SequenceCounter`].
pub fn encode_record<A: Aead + ?Sized>(
    aead: &mut A,
    p: &RecordParams<'_>,
    msg: &[u8],
    padding: &[u8],
    out: &mut [u8],
) -> Result<usize, RecordError> {
    let total =
        record_size(msg.len(), padding.len(), p.seq_size).ok_or(RecordError::BufferTooSmall)?;
    let app_len = u16::try_from(msg.len()).map_err(|_| RecordError::BufferTooSmall)?;
    let hdr = SPDM_SESSION_ID_SIZE
        .saturating_add(p.seq_size)
        .saturating_add(SPDM_SECURED_LENGTH_SIZE);
    let length =
        u16::try_from(total.saturating_sub(hdr)).map_err(|_| RecordError::BufferTooSmall)?;
    let out = out.get_mut(..total).ok_or(RecordError::BufferTooSmall)?;
    let hdr = write_header(out, p, length)?;
    let (aad, rest) = out.split_at_mut(hdr);
    let plain_len = rest.len().saturating_sub(SPDM_AEAD_TAG_SIZE);
    let (plain, tag_out) = rest.split_at_mut(plain_len);
    let mut w = Writer::new(plain);
    w.u16(app_len)
        .and_then(|()| w.bytes(msg))
        .and_then(|()| w.bytes(padding))
        .map_err(|_| RecordError::BufferTooSmall)?;
    let mut tag = [0u8; SPDM_AEAD_TAG_SIZE];
    aead.seal(&record_nonce(p.iv, p.seq), aad, plain, &mut tag)?;
    tag_out.copy_from_slice(&tag);
    Ok(total)
}

/// The header of a received secured message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordHeader {
    /// SessionID.
    pub session_id: u32,
    /// The sequence number field as a little-endian number (0 when the field is absent).
    pub seq_field: u64,
    /// The Length field.
    pub length: u16,
    /// Size of the header (the AAD).
    pub header_size: usize,
    /// Size of the whole record (header plus Length).
    pub size: usize,
}

/// Parses the header of a secured message with a `seq_size`-byte sequence number field and
/// checks the lengths: Length covers at least ApplicationDataLength and the MAC, the record
/// fits in `buf`, and at most 3 zero bytes (DOE padding) follow it.
pub fn parse_record_header(buf: &[u8], seq_size: usize) -> Result<RecordHeader, RecordError> {
    if seq_size > SPDM_MAX_SEQ_NUM_SIZE {
        return Err(RecordError::InvalidSeqSize);
    }
    let mut r = Reader::new(buf, 0);
    let t = |_| RecordError::Truncated;
    let sid: [u8; 4] = r
        .take(4)
        .map_err(t)?
        .try_into()
        .map_err(|_| RecordError::Truncated)?;
    let mut seq = [0u8; 8];
    for (d, s) in seq.iter_mut().zip(r.take(seq_size).map_err(t)?) {
        *d = *s;
    }
    let length = r.u16().map_err(t)?;
    let header_size = r.pos();
    if usize::from(length) < SPDM_SECURED_LENGTH_SIZE.saturating_add(SPDM_AEAD_TAG_SIZE) {
        return Err(RecordError::InvalidLength);
    }
    r.take(usize::from(length)).map_err(t)?;
    let size = r.pos();
    check_padding(buf.get(size..).unwrap_or(&[])).map_err(|_| RecordError::TrailingBytes)?;
    Ok(RecordHeader {
        session_id: u32::from_le_bytes(sid),
        seq_field: u64::from_le_bytes(seq),
        length,
        header_size,
        size,
    })
}

/// Checks and decrypts a received secured message in place and returns the SPDM message
/// inside it (a sub-slice of `buf`). Checks, in order: the header ([`parse_record_header`]),
/// the SessionID, an explicit sequence number field (its bytes must equal the low bytes of
/// `p.seq`), the MAC, and that ApplicationDataLength fits the plaintext. Random padding is
/// dropped. On success the caller advances its receive [`SequenceCounter`].
pub fn open_record<'b, A: Aead + ?Sized>(
    aead: &mut A,
    p: &RecordParams<'_>,
    buf: &'b mut [u8],
) -> Result<&'b [u8], RecordError> {
    let h = parse_record_header(buf, p.seq_size)?;
    if h.session_id != p.session_id {
        return Err(RecordError::WrongSessionId);
    }
    let mask = match p.seq_size {
        0 => 0,
        8 => u64::MAX,
        n => 1u64
            .checked_shl(u32::try_from(n.saturating_mul(8)).unwrap_or(64))
            .unwrap_or(0)
            .wrapping_sub(1),
    };
    if h.seq_field != p.seq & mask {
        return Err(RecordError::WrongSequence);
    }
    let record = buf.get_mut(..h.size).ok_or(RecordError::Truncated)?;
    let (aad, rest) = record.split_at_mut(h.header_size);
    let plain_len = rest.len().saturating_sub(SPDM_AEAD_TAG_SIZE);
    let (cipher, tag) = rest.split_at_mut(plain_len);
    let tag: [u8; SPDM_AEAD_TAG_SIZE] = (&*tag).try_into().map_err(|_| RecordError::Truncated)?;
    aead.open(&record_nonce(p.iv, p.seq), aad, cipher, &tag)?;
    let cipher: &'b [u8] = cipher;
    let mut r = Reader::new(cipher, 0);
    let app_len = usize::from(r.u16().map_err(|_| RecordError::InvalidLength)?);
    r.take(app_len).map_err(|_| RecordError::InvalidLength)
}

// --- Sequence numbers ------------------------------------------------------------------------

/// The sequence number of one direction of a session (one per direction and key).
///
/// The sender takes the number of each record with [`SequenceCounter::take`]; the receiver
/// decrypts with [`SequenceCounter::next`] and, once the record verified, calls
/// [`SequenceCounter::accept`]. The counter never wraps: after 2^64 - 1 records the direction
/// is exhausted ([`RecordError::SequenceExhausted`]) and the session must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SequenceCounter {
    next: u64,
}

impl SequenceCounter {
    /// A counter at 0.
    pub const fn new() -> Self {
        SequenceCounter { next: 0 }
    }

    /// A counter whose next number is `next` (for tests and resumed state).
    pub const fn at(next: u64) -> Self {
        SequenceCounter { next }
    }

    /// The number the next record carries.
    pub const fn next(&self) -> u64 {
        self.next
    }

    /// Returns the number for the next record to send and advances.
    pub fn take(&mut self) -> Result<u64, RecordError> {
        let n = self.next;
        self.next = n.checked_add(1).ok_or(RecordError::SequenceExhausted)?;
        Ok(n)
    }

    /// Accepts a received record numbered `seq`: only the next number is allowed (DOE is in
    /// order), anything else is [`RecordError::WrongSequence`].
    pub fn accept(&mut self, seq: u64) -> Result<(), RecordError> {
        if seq != self.next {
            return Err(RecordError::WrongSequence);
        }
        self.take().map(|_| ())
    }

    /// Back to 0 (new keys for the direction).
    pub fn reset(&mut self) {
        self.next = 0;
    }
}

// --- Key schedule ----------------------------------------------------------------------------

/// Why a key schedule step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyScheduleError {
    /// The hash size is 0 or above 64, or an input has the wrong size.
    InvalidSize,
    /// The version has no "spdm1.x " label (below 1.1 or a digit above 9).
    UnsupportedVersion,
    /// The HMAC implementation failed.
    Hmac,
}

impl KeyScheduleError {
    /// A short, human-readable reason, suitable for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            KeyScheduleError::InvalidSize => "key schedule input of an invalid size",
            KeyScheduleError::UnsupportedVersion => "no key schedule for this SPDM version",
            KeyScheduleError::Hmac => "HMAC failed",
        }
    }
}

impl core::fmt::Display for KeyScheduleError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// HMAC with the negotiated hash, supplied by the caller.
pub trait Hmac {
    /// The hash (and HMAC) output size H (32, 48 or 64).
    fn output_size(&self) -> usize;

    /// Writes HMAC(`key`, concatenation of `data`) to `out` (exactly H bytes).
    fn mac(&mut self, key: &[u8], data: &[&[u8]], out: &mut [u8]) -> Result<(), KeyScheduleError>;
}

impl<T: Hmac + ?Sized> Hmac for &mut T {
    fn output_size(&self) -> usize {
        (**self).output_size()
    }

    fn mac(&mut self, key: &[u8], data: &[&[u8]], out: &mut [u8]) -> Result<(), KeyScheduleError> {
        (**self).mac(key, data, out)
    }
}

/// A secret of up to 64 bytes (H of the negotiated hash). Zeroed when dropped (best effort).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    bytes: [u8; SPDM_MAX_HASH_SIZE],
    len: usize,
}

impl Secret {
    /// A secret holding a copy of `bytes` (at most 64).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, KeyScheduleError> {
        let mut s = Secret {
            bytes: [0; SPDM_MAX_HASH_SIZE],
            len: bytes.len(),
        };
        s.bytes
            .get_mut(..bytes.len())
            .ok_or(KeyScheduleError::InvalidSize)?
            .copy_from_slice(bytes);
        Ok(s)
    }

    /// The secret's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or(&[])
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.bytes.fill(0);
    }
}

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Secret({} bytes)", self.len)
    }
}

/// An AEAD key and IV derived from a traffic secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TrafficKeys {
    key: [u8; SPDM_MAX_AEAD_KEY_SIZE],
    key_len: usize,
    /// The IV of the direction (XOR the sequence number into it with [`record_nonce`]).
    pub iv: [u8; SPDM_AEAD_IV_SIZE],
}

impl TrafficKeys {
    /// The AEAD key (16 or 32 bytes).
    pub fn key(&self) -> &[u8] {
        self.key.get(..self.key_len).unwrap_or(&[])
    }
}

impl Drop for TrafficKeys {
    fn drop(&mut self) {
        self.key.fill(0);
        self.iv.fill(0);
    }
}

impl core::fmt::Debug for TrafficKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "TrafficKeys({}-byte key)", self.key_len)
    }
}

/// Largest BinConcat this codec builds: length, "spdm1.x ", the longest label, H.
pub const SPDM_MAX_BIN_CONCAT_SIZE: usize = 2 + 8 + 12 + SPDM_MAX_HASH_SIZE;

/// Writes `BinConcat(length, version label, label, context)`: `length` (u16 LE), "spdmM.m "
/// for the SPDM version, `label`, `context`. Returns the size.
pub fn bin_concat(
    version: SpdmVersion,
    length: u16,
    label: &str,
    context: &[u8],
    out: &mut [u8],
) -> Result<usize, KeyScheduleError> {
    if version < SpdmVersion::V1_1 || version.major() > 9 || version.minor() > 9 {
        return Err(KeyScheduleError::UnsupportedVersion);
    }
    let major = b'0'.saturating_add(version.major());
    let minor = b'0'.saturating_add(version.minor());
    let mut w = Writer::new(out);
    w.u16(length)
        .and_then(|()| w.bytes(&[b's', b'p', b'd', b'm', major, b'.', minor, b' ']))
        .and_then(|()| w.bytes(label.as_bytes()))
        .and_then(|()| w.bytes(context))
        .map_err(|_| KeyScheduleError::InvalidSize)?;
    Ok(w.len())
}

/// HKDF-Extract (RFC 5869): PRK = HMAC(salt, ikm); an empty salt means H zero bytes.
pub fn hkdf_extract<H: Hmac + ?Sized>(
    hmac: &mut H,
    salt: &[u8],
    ikm: &[u8],
) -> Result<Secret, KeyScheduleError> {
    let h = checked_hash_size(hmac.output_size())?;
    let zeros = [0u8; SPDM_MAX_HASH_SIZE];
    let salt = if salt.is_empty() {
        zeros.get(..h).ok_or(KeyScheduleError::InvalidSize)?
    } else {
        salt
    };
    let mut out = [0u8; SPDM_MAX_HASH_SIZE];
    let prk = out.get_mut(..h).ok_or(KeyScheduleError::InvalidSize)?;
    hmac.mac(salt, &[ikm], prk)?;
    let s = Secret::from_slice(prk);
    out.fill(0);
    s
}

/// HKDF-Expand (RFC 5869): fills `out` (at most 255 * H bytes) from `prk` and `info`.
pub fn hkdf_expand<H: Hmac + ?Sized>(
    hmac: &mut H,
    prk: &[u8],
    info: &[u8],
    out: &mut [u8],
) -> Result<(), KeyScheduleError> {
    let h = checked_hash_size(hmac.output_size())?;
    if out.len() > h.saturating_mul(255) {
        return Err(KeyScheduleError::InvalidSize);
    }
    let mut t = [0u8; SPDM_MAX_HASH_SIZE];
    let mut t_len = 0usize;
    let mut counter: u8 = 1;
    for chunk in out.chunks_mut(h) {
        let prev = t.get(..t_len).ok_or(KeyScheduleError::InvalidSize)?;
        let mut next = [0u8; SPDM_MAX_HASH_SIZE];
        let block = next.get_mut(..h).ok_or(KeyScheduleError::InvalidSize)?;
        hmac.mac(prk, &[prev, info, &[counter]], block)?;
        let n = chunk.len();
        chunk.copy_from_slice(block.get(..n).ok_or(KeyScheduleError::InvalidSize)?);
        t = next;
        t_len = h;
        counter = counter.wrapping_add(1);
    }
    t.fill(0);
    Ok(())
}

fn checked_hash_size(h: usize) -> Result<usize, KeyScheduleError> {
    if h == 0 || h > SPDM_MAX_HASH_SIZE {
        return Err(KeyScheduleError::InvalidSize);
    }
    Ok(h)
}

/// The SPDM key schedule over a caller-supplied HMAC, for one negotiated version and hash.
#[derive(Debug)]
pub struct KeySchedule<H: Hmac> {
    hmac: H,
    version: SpdmVersion,
    hash_size: usize,
}

impl<H: Hmac> KeySchedule<H> {
    /// A key schedule for `version` (1.1+) with `hmac`'s hash.
    pub fn new(hmac: H, version: SpdmVersion) -> Result<Self, KeyScheduleError> {
        let hash_size = checked_hash_size(hmac.output_size())?;
        let mut probe = [0u8; SPDM_MAX_BIN_CONCAT_SIZE];
        bin_concat(version, 0, "", &[], &mut probe)?;
        Ok(KeySchedule {
            hmac,
            version,
            hash_size,
        })
    }

    /// H.
    pub fn hash_size(&self) -> usize {
        self.hash_size
    }

    /// HKDF-Expand(`secret`, BinConcat(`length`, `label`, `context`), `length`) into `out`.
    pub fn expand_label(
        &mut self,
        secret: &[u8],
        label: &str,
        context: &[u8],
        out: &mut [u8],
    ) -> Result<(), KeyScheduleError> {
        let length = u16::try_from(out.len()).map_err(|_| KeyScheduleError::InvalidSize)?;
        let mut info = [0u8; SPDM_MAX_BIN_CONCAT_SIZE];
        let n = bin_concat(self.version, length, label, context, &mut info)?;
        let info = info.get(..n).ok_or(KeyScheduleError::InvalidSize)?;
        hkdf_expand(&mut self.hmac, secret, info, out)
    }

    fn expand_secret(
        &mut self,
        secret: &Secret,
        label: &str,
        context: &[u8],
    ) -> Result<Secret, KeyScheduleError> {
        if !context.is_empty() && context.len() != self.hash_size {
            return Err(KeyScheduleError::InvalidSize);
        }
        let mut out = [0u8; SPDM_MAX_HASH_SIZE];
        let h = self.hash_size;
        let dst = out.get_mut(..h).ok_or(KeyScheduleError::InvalidSize)?;
        self.expand_label(secret.as_bytes(), label, context, dst)?;
        let s = Secret::from_slice(dst);
        out.fill(0);
        s
    }

    /// HandshakeSecret = HKDF-Extract(0^H, `dhe_secret`).
    pub fn handshake_secret(&mut self, dhe_secret: &[u8]) -> Result<Secret, KeyScheduleError> {
        hkdf_extract(&mut self.hmac, &[], dhe_secret)
    }

    /// The request and response handshake secrets from TH1 (H bytes).
    pub fn handshake_traffic_secrets(
        &mut self,
        handshake_secret: &Secret,
        th1: &[u8],
    ) -> Result<(Secret, Secret), KeyScheduleError> {
        if th1.len() != self.hash_size {
            return Err(KeyScheduleError::InvalidSize);
        }
        let req = self.expand_secret(handshake_secret, LABEL_REQ_HS_DATA, th1)?;
        let rsp = self.expand_secret(handshake_secret, LABEL_RSP_HS_DATA, th1)?;
        Ok((req, rsp))
    }

    /// finished_key of a handshake traffic secret.
    pub fn finished_key(&mut self, traffic_secret: &Secret) -> Result<Secret, KeyScheduleError> {
        self.expand_secret(traffic_secret, LABEL_FINISHED, &[])
    }

    /// VerifyData = HMAC(`finished_key`, `transcript_hash`).
    pub fn verify_data(
        &mut self,
        finished_key: &Secret,
        transcript_hash: &[u8],
    ) -> Result<Secret, KeyScheduleError> {
        if transcript_hash.len() != self.hash_size {
            return Err(KeyScheduleError::InvalidSize);
        }
        let mut out = [0u8; SPDM_MAX_HASH_SIZE];
        let h = self.hash_size;
        let dst = out.get_mut(..h).ok_or(KeyScheduleError::InvalidSize)?;
        self.hmac
            .mac(finished_key.as_bytes(), &[transcript_hash], dst)?;
        Secret::from_slice(dst)
    }

    /// MasterSecret = HKDF-Extract(HKDF-Expand(HandshakeSecret, "derived"), 0^H).
    pub fn master_secret(&mut self, handshake_secret: &Secret) -> Result<Secret, KeyScheduleError> {
        let salt1 = self.expand_secret(handshake_secret, LABEL_DERIVED, &[])?;
        let zeros = [0u8; SPDM_MAX_HASH_SIZE];
        let ikm = zeros
            .get(..self.hash_size)
            .ok_or(KeyScheduleError::InvalidSize)?;
        hkdf_extract(&mut self.hmac, salt1.as_bytes(), ikm)
    }

    /// The request and response application (data) secrets from TH2 (H bytes).
    pub fn app_traffic_secrets(
        &mut self,
        master_secret: &Secret,
        th2: &[u8],
    ) -> Result<(Secret, Secret), KeyScheduleError> {
        if th2.len() != self.hash_size {
            return Err(KeyScheduleError::InvalidSize);
        }
        let req = self.expand_secret(master_secret, LABEL_REQ_APP_DATA, th2)?;
        let rsp = self.expand_secret(master_secret, LABEL_RSP_APP_DATA, th2)?;
        Ok((req, rsp))
    }

    /// The export master secret ("exp master", TH2).
    pub fn export_master_secret(
        &mut self,
        master_secret: &Secret,
        th2: &[u8],
    ) -> Result<Secret, KeyScheduleError> {
        if th2.len() != self.hash_size {
            return Err(KeyScheduleError::InvalidSize);
        }
        self.expand_secret(master_secret, LABEL_EXP_MASTER, th2)
    }

    /// The AEAD key (`key_size` bytes, [`aead_key_size`]) and 12-byte IV of a traffic secret.
    pub fn traffic_keys(
        &mut self,
        secret: &Secret,
        key_size: usize,
    ) -> Result<TrafficKeys, KeyScheduleError> {
        let mut keys = TrafficKeys {
            key: [0; SPDM_MAX_AEAD_KEY_SIZE],
            key_len: key_size,
            iv: [0; SPDM_AEAD_IV_SIZE],
        };
        let key = keys
            .key
            .get_mut(..key_size)
            .ok_or(KeyScheduleError::InvalidSize)?;
        if key_size == 0 {
            return Err(KeyScheduleError::InvalidSize);
        }
        self.expand_label(secret.as_bytes(), LABEL_KEY, &[], key)?;
        let mut iv = [0u8; SPDM_AEAD_IV_SIZE];
        self.expand_label(secret.as_bytes(), LABEL_IV, &[], &mut iv)?;
        keys.iv = iv;
        Ok(keys)
    }

    /// The key update rule: HKDF-Expand(`secret`, "traffic upd", H).
    pub fn update_secret(&mut self, secret: &Secret) -> Result<Secret, KeyScheduleError> {
        self.expand_secret(secret, LABEL_TRAFFIC_UPD, &[])
    }
}
