//! SPDM (DSP0274 1.0 to 1.3) authentication messages: GET_CAPABILITIES / CAPABILITIES,
//! NEGOTIATE_ALGORITHMS / ALGORITHMS, GET_DIGESTS / DIGESTS, GET_CERTIFICATE / CERTIFICATE,
//! CHALLENGE / CHALLENGE_AUTH, the certificate chain format, the transcript and the 1.2+
//! signing prefix.
//!
//! Every message has both directions: the requester encodes the request and parses the
//! response, the responder parses the request and encodes the response. Encoders write into a
//! caller-provided `&mut [u8]` and return the message length; parsers borrow from the input and
//! never allocate. Like `spdm.rs`, this file is compiled directly into the kernel module (as the
//! crate-root module `auth`, next to `spdm`), so it uses only `core`, has no `unsafe` and no
//! code path that can panic.
//!
//! # Message lengths and transport padding
//!
//! Over DOE a message may be followed by up to 3 zero bytes of DWORD padding. Parsers of
//! messages whose length follows from their fields accept exactly that much zero padding and
//! reject anything else with [`SpdmError::TrailingBytes`]. Each parsed response carries `len`,
//! the length of the SPDM message without padding: that is what goes into the transcript.
//!
//! # Transcript (M1/M2 for CHALLENGE_AUTH)
//!
//! The CHALLENGE_AUTH signature covers the hash of M1 = A || B || C (DSP0274 "CHALLENGE_AUTH
//! signature generation"), each message taken exactly as sent or received, SPDM header
//! included, DOE header and DOE padding excluded:
//!
//! * A (the "VCA"): GET_VERSION, VERSION, GET_CAPABILITIES, CAPABILITIES,
//!   NEGOTIATE_ALGORITHMS, ALGORITHMS of the current connection (since the last GET_VERSION).
//! * B: GET_DIGESTS, DIGESTS, then every GET_CERTIFICATE and CERTIFICATE pair, in the order
//!   exchanged, since the VCA or since the previous CHALLENGE_AUTH (empty if none was sent).
//! * C: CHALLENGE, then CHALLENGE_AUTH up to but excluding the Signature field
//!   (`buf[..ChallengeAuth::signature_offset]`).
//!
//! Only successful request/response pairs enter the transcript: an ERROR response and the
//! request it answers do not (a Busy request is simply resent). After ResponseNotReady, the
//! original request and the response that finally arrives to RESPOND_IF_READY enter the
//! transcript; RESPOND_IF_READY itself and the ERROR do not.
//!
//! The hash algorithm is only known once ALGORITHMS arrives, so a requester buffers A in a
//! [`VcaBuffer`] and replays it into its hash ([`VcaBuffer::replay`]) before feeding B and C.
//! The hash is then:
//!
//! * SPDM 1.0 and 1.1: the signature is over Hash(M1) directly: an ECDSA signature verifies
//!   against the digest Hash(M1), an RSA signature has Hash(M1) as its message digest.
//! * SPDM 1.2 and later: the signed message is `combined_spdm_prefix || Hash(M1)`
//!   ([`signing_prefix`], context [`SPDM_CHALLENGE_AUTH_SIGN_CONTEXT`]), so the digest that
//!   ECDSA / RSA verify is Hash(prefix || Hash(M1)) ([`signed_message`] builds the bytes).
//!
//! In both cases the hash is the negotiated BaseHashAlgo; ECDSA signatures are the raw r || s
//! (each the curve's size, big-endian); RSASSA is PKCS#1 v1.5, RSAPSS uses a salt as long as
//! the hash.

use crate::spdm::{
    check_padding, SpdmError, SpdmHeader, SpdmVersion, SPDM_ALGORITHMS, SPDM_CAPABILITIES,
    SPDM_CERTIFICATE, SPDM_CHALLENGE, SPDM_CHALLENGE_AUTH, SPDM_DIGESTS, SPDM_GET_CAPABILITIES,
    SPDM_GET_CERTIFICATE, SPDM_GET_DIGESTS, SPDM_HEADER_SIZE, SPDM_MAX_SLOTS,
    SPDM_NEGOTIATE_ALGORITHMS, SPDM_NONCE_SIZE,
};

// --- Capability flags (CAPABILITIES / GET_CAPABILITIES Flags) --------------------------------

/// CACHE_CAP (response only): the responder can cache the negotiated state across resets.
pub const SPDM_CAP_CACHE: u32 = 1 << 0;
/// CERT_CAP: supports GET_DIGESTS and GET_CERTIFICATE.
pub const SPDM_CAP_CERT: u32 = 1 << 1;
/// CHAL_CAP: supports CHALLENGE.
pub const SPDM_CAP_CHAL: u32 = 1 << 2;
/// MEAS_CAP mask (response only, bits 3-4): 0 none, 1 without signature, 2 with signature.
pub const SPDM_CAP_MEAS_MASK: u32 = 3 << 3;
/// MEAS_CAP = 1: measurements without signature.
pub const SPDM_CAP_MEAS_NO_SIG: u32 = 1 << 3;
/// MEAS_CAP = 2: measurements with signature.
pub const SPDM_CAP_MEAS_SIG: u32 = 2 << 3;
/// MEAS_FRESH_CAP (response only).
pub const SPDM_CAP_MEAS_FRESH: u32 = 1 << 5;
/// ENCRYPT_CAP (1.1).
pub const SPDM_CAP_ENCRYPT: u32 = 1 << 6;
/// MAC_CAP (1.1).
pub const SPDM_CAP_MAC: u32 = 1 << 7;
/// MUT_AUTH_CAP (1.1).
pub const SPDM_CAP_MUT_AUTH: u32 = 1 << 8;
/// KEY_EX_CAP (1.1).
pub const SPDM_CAP_KEY_EX: u32 = 1 << 9;
/// PSK_CAP mask (1.1, bits 10-11): requester 1 = supported; responder 1 = without context,
/// 2 = with context; 3 is reserved.
pub const SPDM_CAP_PSK_MASK: u32 = 3 << 10;
/// PSK_CAP = 1.
pub const SPDM_CAP_PSK: u32 = 1 << 10;
/// PSK_CAP = 2 (responder: PSK with context).
pub const SPDM_CAP_PSK_WITH_CONTEXT: u32 = 2 << 10;
/// ENCAP_CAP (1.1).
pub const SPDM_CAP_ENCAP: u32 = 1 << 12;
/// HBEAT_CAP (1.1).
pub const SPDM_CAP_HBEAT: u32 = 1 << 13;
/// KEY_UPD_CAP (1.1).
pub const SPDM_CAP_KEY_UPD: u32 = 1 << 14;
/// HANDSHAKE_IN_THE_CLEAR_CAP (1.1).
pub const SPDM_CAP_HANDSHAKE_IN_THE_CLEAR: u32 = 1 << 15;
/// PUB_KEY_ID_CAP (1.1).
pub const SPDM_CAP_PUB_KEY_ID: u32 = 1 << 16;
/// CHUNK_CAP (1.2): supports CHUNK_SEND / CHUNK_GET.
pub const SPDM_CAP_CHUNK: u32 = 1 << 17;
/// ALIAS_CERT_CAP (1.2, response only).
pub const SPDM_CAP_ALIAS_CERT: u32 = 1 << 18;
/// SET_CERT_CAP (1.2, response only).
pub const SPDM_CAP_SET_CERT: u32 = 1 << 19;
/// CSR_CAP (1.2, response only).
pub const SPDM_CAP_CSR: u32 = 1 << 20;
/// CERT_INSTALL_RESET_CAP (1.2, response only).
pub const SPDM_CAP_CERT_INSTALL_RESET: u32 = 1 << 21;
/// EP_INFO_CAP mask (1.3, bits 22-23): 1 without signature, 2 with signature, 3 reserved.
pub const SPDM_CAP_EP_INFO_MASK: u32 = 3 << 22;
/// MEL_CAP (1.3, response only).
pub const SPDM_CAP_MEL: u32 = 1 << 24;
/// EVENT_CAP (1.3).
pub const SPDM_CAP_EVENT: u32 = 1 << 25;
/// MULTI_KEY_CAP mask (1.3, bits 26-27): 1 only multi-key, 2 negotiated, 3 reserved.
pub const SPDM_CAP_MULTI_KEY_MASK: u32 = 3 << 26;
/// GET_KEY_PAIR_INFO_CAP (1.3, response only).
pub const SPDM_CAP_GET_KEY_PAIR_INFO: u32 = 1 << 28;
/// SET_KEY_PAIR_INFO_CAP (1.3, response only).
pub const SPDM_CAP_SET_KEY_PAIR_INFO: u32 = 1 << 29;

/// Minimum DataTransferSize (1.2): the largest fixed-size request must fit.
pub const SPDM_MIN_DATA_TRANSFER_SIZE: u32 = 42;

/// Size of GET_CAPABILITIES for SPDM 1.0 (header only).
pub const SPDM_GET_CAPABILITIES_1_0_SIZE: usize = 4;
/// Size of GET_CAPABILITIES for SPDM 1.1, and of CAPABILITIES for 1.0 and 1.1.
pub const SPDM_CAPABILITIES_1_1_SIZE: usize = 12;
/// Size of GET_CAPABILITIES and CAPABILITIES for SPDM 1.2 and 1.3.
pub const SPDM_CAPABILITIES_1_2_SIZE: usize = 20;

// --- Algorithms -----------------------------------------------------------------------------

/// MeasurementSpecification bit 0: DMTF.
pub const SPDM_MEAS_SPEC_DMTF: u8 = 1 << 0;
/// OtherParamsSupport bits 0-3: opaque data format mask (1.2).
pub const SPDM_OPAQUE_DATA_FMT_MASK: u8 = 0x0F;
/// OtherParamsSupport: OpaqueDataFmt0 (1.2).
pub const SPDM_OPAQUE_DATA_FMT0: u8 = 1 << 0;
/// OtherParamsSupport: OpaqueDataFmt1, the general opaque data format (1.2).
pub const SPDM_OPAQUE_DATA_FMT1: u8 = 1 << 1;
/// OtherParamsSupport: MULTI_KEY_CONN (1.3).
pub const SPDM_MULTI_KEY_CONN: u8 = 1 << 4;

/// BaseAsymAlgo: TPM_ALG_RSASSA_2048.
pub const SPDM_ASYM_RSASSA_2048: u32 = 1 << 0;
/// BaseAsymAlgo: TPM_ALG_RSAPSS_2048.
pub const SPDM_ASYM_RSAPSS_2048: u32 = 1 << 1;
/// BaseAsymAlgo: TPM_ALG_RSASSA_3072.
pub const SPDM_ASYM_RSASSA_3072: u32 = 1 << 2;
/// BaseAsymAlgo: TPM_ALG_RSAPSS_3072.
pub const SPDM_ASYM_RSAPSS_3072: u32 = 1 << 3;
/// BaseAsymAlgo: TPM_ALG_ECDSA_ECC_NIST_P256.
pub const SPDM_ASYM_ECDSA_P256: u32 = 1 << 4;
/// BaseAsymAlgo: TPM_ALG_RSASSA_4096.
pub const SPDM_ASYM_RSASSA_4096: u32 = 1 << 5;
/// BaseAsymAlgo: TPM_ALG_RSAPSS_4096.
pub const SPDM_ASYM_RSAPSS_4096: u32 = 1 << 6;
/// BaseAsymAlgo: TPM_ALG_ECDSA_ECC_NIST_P384.
pub const SPDM_ASYM_ECDSA_P384: u32 = 1 << 7;
/// BaseAsymAlgo: TPM_ALG_ECDSA_ECC_NIST_P521.
pub const SPDM_ASYM_ECDSA_P521: u32 = 1 << 8;
/// BaseAsymAlgo: TPM_ALG_SM2_ECC_SM2_P256 (1.2).
pub const SPDM_ASYM_SM2_P256: u32 = 1 << 9;
/// BaseAsymAlgo: EdDSA ed25519 (1.2).
pub const SPDM_ASYM_EDDSA_ED25519: u32 = 1 << 10;
/// BaseAsymAlgo: EdDSA ed448 (1.2).
pub const SPDM_ASYM_EDDSA_ED448: u32 = 1 << 11;

/// BaseHashAlgo: TPM_ALG_SHA_256.
pub const SPDM_HASH_SHA256: u32 = 1 << 0;
/// BaseHashAlgo: TPM_ALG_SHA_384.
pub const SPDM_HASH_SHA384: u32 = 1 << 1;
/// BaseHashAlgo: TPM_ALG_SHA_512.
pub const SPDM_HASH_SHA512: u32 = 1 << 2;
/// BaseHashAlgo: TPM_ALG_SHA3_256.
pub const SPDM_HASH_SHA3_256: u32 = 1 << 3;
/// BaseHashAlgo: TPM_ALG_SHA3_384.
pub const SPDM_HASH_SHA3_384: u32 = 1 << 4;
/// BaseHashAlgo: TPM_ALG_SHA3_512.
pub const SPDM_HASH_SHA3_512: u32 = 1 << 5;
/// BaseHashAlgo: TPM_ALG_SM3_256 (1.2).
pub const SPDM_HASH_SM3_256: u32 = 1 << 6;

/// MeasurementHashAlgo: raw bit stream only.
pub const SPDM_MEAS_HASH_RAW: u32 = 1 << 0;
/// MeasurementHashAlgo: SHA-256.
pub const SPDM_MEAS_HASH_SHA256: u32 = 1 << 1;
/// MeasurementHashAlgo: SHA-384.
pub const SPDM_MEAS_HASH_SHA384: u32 = 1 << 2;
/// MeasurementHashAlgo: SHA-512.
pub const SPDM_MEAS_HASH_SHA512: u32 = 1 << 3;
/// MeasurementHashAlgo: SHA3-256.
pub const SPDM_MEAS_HASH_SHA3_256: u32 = 1 << 4;
/// MeasurementHashAlgo: SHA3-384.
pub const SPDM_MEAS_HASH_SHA3_384: u32 = 1 << 5;
/// MeasurementHashAlgo: SHA3-512.
pub const SPDM_MEAS_HASH_SHA3_512: u32 = 1 << 6;
/// MeasurementHashAlgo: SM3-256 (1.2).
pub const SPDM_MEAS_HASH_SM3_256: u32 = 1 << 7;

/// AlgType of the DHE structure table.
pub const SPDM_ALG_TYPE_DHE: u8 = 2;
/// AlgType of the AEAD structure table.
pub const SPDM_ALG_TYPE_AEAD: u8 = 3;
/// AlgType of the ReqBaseAsymAlg structure table.
pub const SPDM_ALG_TYPE_REQ_BASE_ASYM: u8 = 4;
/// AlgType of the KeySchedule structure table.
pub const SPDM_ALG_TYPE_KEY_SCHEDULE: u8 = 5;

/// DHE: ffdhe2048.
pub const SPDM_DHE_FFDHE2048: u16 = 1 << 0;
/// DHE: ffdhe3072.
pub const SPDM_DHE_FFDHE3072: u16 = 1 << 1;
/// DHE: ffdhe4096.
pub const SPDM_DHE_FFDHE4096: u16 = 1 << 2;
/// DHE: secp256r1.
pub const SPDM_DHE_SECP256R1: u16 = 1 << 3;
/// DHE: secp384r1.
pub const SPDM_DHE_SECP384R1: u16 = 1 << 4;
/// DHE: secp521r1.
pub const SPDM_DHE_SECP521R1: u16 = 1 << 5;
/// DHE: SM2_P256 (1.2).
pub const SPDM_DHE_SM2_P256: u16 = 1 << 6;
/// AEAD: AES-128-GCM.
pub const SPDM_AEAD_AES_128_GCM: u16 = 1 << 0;
/// AEAD: AES-256-GCM.
pub const SPDM_AEAD_AES_256_GCM: u16 = 1 << 1;
/// AEAD: CHACHA20_POLY1305.
pub const SPDM_AEAD_CHACHA20_POLY1305: u16 = 1 << 2;
/// AEAD: AEAD_SM4_GCM (1.2).
pub const SPDM_AEAD_SM4_GCM: u16 = 1 << 3;
/// KeySchedule: the SPDM key schedule.
pub const SPDM_KEY_SCHEDULE_SPDM: u16 = 1 << 0;

/// Size of the fixed part of NEGOTIATE_ALGORITHMS.
pub const SPDM_NEGOTIATE_ALGORITHMS_FIXED_SIZE: usize = 32;
/// Size of the fixed part of ALGORITHMS.
pub const SPDM_ALGORITHMS_FIXED_SIZE: usize = 36;
/// Largest NEGOTIATE_ALGORITHMS for SPDM 1.0.
pub const SPDM_NEGOTIATE_ALGORITHMS_MAX_SIZE_1_0: usize = 64;
/// Largest NEGOTIATE_ALGORITHMS for SPDM 1.1 and later.
pub const SPDM_NEGOTIATE_ALGORITHMS_MAX_SIZE: usize = 128;
/// Most extended algorithms (ExtAsym + ExtHash + all ExtAlg of the tables) in a 1.0 request.
pub const SPDM_MAX_EXT_ALGS_1_0: usize = 8;
/// Most extended algorithms in a 1.1+ request.
pub const SPDM_MAX_EXT_ALGS: usize = 20;
/// Size of an extended algorithm entry.
pub const SPDM_EXT_ALG_SIZE: usize = 4;
/// Size of a structure table without extended algorithms (AlgType, AlgCount, AlgSupported).
pub const SPDM_ALG_STRUCT_SIZE: usize = 4;
/// Largest ALGORITHMS this parser accepts: fixed part, one ExtAsymSel, one ExtHashSel, four
/// tables each with at most one extended algorithm.
pub const SPDM_ALGORITHMS_MAX_SIZE: usize = SPDM_ALGORITHMS_FIXED_SIZE
    + 2 * SPDM_EXT_ALG_SIZE
    + 4 * (SPDM_ALG_STRUCT_SIZE + SPDM_EXT_ALG_SIZE);

// --- Digests, certificates, challenge --------------------------------------------------------

/// Size of GET_DIGESTS.
pub const SPDM_GET_DIGESTS_SIZE: usize = 4;
/// Size of GET_CERTIFICATE.
pub const SPDM_GET_CERTIFICATE_SIZE: usize = 8;
/// Size of the fixed part of CERTIFICATE (header, PortionLength, RemainderLength).
pub const SPDM_CERTIFICATE_FIXED_SIZE: usize = 8;
/// GET_CERTIFICATE Param2 bit 0 (1.3): SlotSizeRequested, only the chain size is wanted.
pub const SPDM_GET_CERTIFICATE_SLOT_SIZE_REQUESTED: u8 = 1 << 0;
/// Size of the certificate chain header (Length u16, Reserved u16); the root hash follows.
pub const SPDM_CERT_CHAIN_HEADER_SIZE: usize = 4;
/// Largest certificate chain (its Length field is 16 bits).
pub const SPDM_MAX_CERT_CHAIN_SIZE: usize = 0xFFFF;

/// Size of the RequesterContext of CHALLENGE / CHALLENGE_AUTH (1.3).
pub const SPDM_REQ_CONTEXT_SIZE: usize = 8;
/// Size of CHALLENGE for SPDM 1.0 to 1.2.
pub const SPDM_CHALLENGE_SIZE: usize = SPDM_HEADER_SIZE + SPDM_NONCE_SIZE;
/// Size of CHALLENGE for SPDM 1.3.
pub const SPDM_CHALLENGE_1_3_SIZE: usize = SPDM_CHALLENGE_SIZE + SPDM_REQ_CONTEXT_SIZE;
/// CHALLENGE Param2: no measurement summary hash.
pub const SPDM_MEAS_SUMMARY_NONE: u8 = 0;
/// CHALLENGE Param2: summary hash of the TCB measurements.
pub const SPDM_MEAS_SUMMARY_TCB: u8 = 1;
/// CHALLENGE Param2: summary hash of all measurements.
pub const SPDM_MEAS_SUMMARY_ALL: u8 = 0xFF;
/// CHALLENGE Param1 value for a provisioned public key instead of a certificate slot.
pub const SPDM_SLOT_PUBLIC_KEY: u8 = 0xFF;
/// CHALLENGE_AUTH Param1 bits 0-3: the slot.
pub const SPDM_CHALLENGE_AUTH_SLOT_MASK: u8 = 0x0F;
/// CHALLENGE_AUTH Param1 bit 7: BasicMutAuthReq (1.1 only; deprecated in 1.2).
pub const SPDM_CHALLENGE_AUTH_BASIC_MUT_AUTH_REQ: u8 = 1 << 7;
/// Largest OpaqueDataLength.
pub const SPDM_MAX_OPAQUE_DATA_SIZE: usize = 1024;

// --- Signing (1.2+) --------------------------------------------------------------------------

/// Size of `combined_spdm_prefix` (the 64-byte version prefix, zero padding, the context).
pub const SPDM_SIGNING_CONTEXT_SIZE: usize = 100;
/// Size of the repeated version prefix part ("dmtf-spdm-v1.X.*" four times).
pub const SPDM_SIGNING_PREFIX_SIZE: usize = 64;
/// Largest signing context string (the rest of the 100 bytes).
pub const SPDM_MAX_SIGNING_CONTEXT_STR: usize =
    SPDM_SIGNING_CONTEXT_SIZE - SPDM_SIGNING_PREFIX_SIZE;
/// Context of the responder's CHALLENGE_AUTH signature.
pub const SPDM_CHALLENGE_AUTH_SIGN_CONTEXT: &str = "responder-challenge_auth signing";
/// Context of the requester's CHALLENGE_AUTH signature (mutual authentication).
pub const SPDM_MUT_CHALLENGE_AUTH_SIGN_CONTEXT: &str = "requester-challenge_auth signing";
/// Context of the MEASUREMENTS signature.
pub const SPDM_MEASUREMENTS_SIGN_CONTEXT: &str = "responder-measurements signing";
/// Context of the KEY_EXCHANGE_RSP signature.
pub const SPDM_KEY_EXCHANGE_RSP_SIGN_CONTEXT: &str = "responder-key_exchange_rsp signing";
/// Context of the FINISH signature.
pub const SPDM_FINISH_SIGN_CONTEXT: &str = "requester-finish signing";

/// Largest hash this codec knows (SHA-512).
pub const SPDM_MAX_HASH_SIZE: usize = 64;
/// Largest signature this codec knows (RSA 4096).
pub const SPDM_MAX_SIGNATURE_SIZE: usize = 512;
/// Capacity of a [`VcaBuffer`]: enough for the largest VCA this codec produces or accepts with
/// a VERSION response of up to 255 entries.
pub const SPDM_VCA_MAX_SIZE: usize = 1024;

// --- Reader / writer (shared with meas.rs and session.rs) ------------------------------------

/// Sequential little-endian reader; every read is bounds-checked.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], pos: usize) -> Self {
        Reader { buf, pos }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], SpdmError> {
        let end = self.pos.checked_add(n).ok_or(SpdmError::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(SpdmError::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], SpdmError> {
        self.take(N)?.try_into().map_err(|_| SpdmError::Truncated)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, SpdmError> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, SpdmError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, SpdmError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u24(&mut self) -> Result<usize, SpdmError> {
        let [a, b, c] = self.array::<3>()?;
        Ok(usize::from(a) | usize::from(b) << 8 | usize::from(c) << 16)
    }

    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// Accepts the end of the message: at most 3 zero bytes of transport padding may follow.
    pub(crate) fn finish(&self) -> Result<usize, SpdmError> {
        check_padding(self.rest())?;
        Ok(self.pos)
    }
}

/// Sequential little-endian writer into a caller buffer.
pub(crate) struct Writer<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(out: &'a mut [u8]) -> Self {
        Writer { out, pos: 0 }
    }

    pub(crate) fn bytes(&mut self, src: &[u8]) -> Result<(), SpdmError> {
        let end = self
            .pos
            .checked_add(src.len())
            .ok_or(SpdmError::BufferTooSmall)?;
        let dst = self
            .out
            .get_mut(self.pos..end)
            .ok_or(SpdmError::BufferTooSmall)?;
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
        self.pos = end;
        Ok(())
    }

    pub(crate) fn zeros(&mut self, n: usize) -> Result<(), SpdmError> {
        let end = self.pos.checked_add(n).ok_or(SpdmError::BufferTooSmall)?;
        let dst = self
            .out
            .get_mut(self.pos..end)
            .ok_or(SpdmError::BufferTooSmall)?;
        dst.fill(0);
        self.pos = end;
        Ok(())
    }

    pub(crate) fn u8(&mut self, v: u8) -> Result<(), SpdmError> {
        self.bytes(&[v])
    }

    pub(crate) fn u16(&mut self, v: u16) -> Result<(), SpdmError> {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn u32(&mut self, v: u32) -> Result<(), SpdmError> {
        self.bytes(&v.to_le_bytes())
    }

    pub(crate) fn u24(&mut self, v: usize) -> Result<(), SpdmError> {
        let v = u32::try_from(v).map_err(|_| SpdmError::InvalidLength)?;
        match v.to_le_bytes() {
            [a, b, c, 0] => self.bytes(&[a, b, c]),
            _ => Err(SpdmError::InvalidLength),
        }
    }

    pub(crate) fn header(
        &mut self,
        version: SpdmVersion,
        code: u8,
        p1: u8,
        p2: u8,
    ) -> Result<(), SpdmError> {
        self.bytes(&[version.as_byte(), code, p1, p2])
    }

    pub(crate) fn len(&self) -> usize {
        self.pos
    }
}

/// Writes `parts` into `out` after its first `n` bytes (a message body already encoded there)
/// and returns the size of the whole: how signatures and verify data follow a body.
pub(crate) fn append(out: &mut [u8], n: usize, parts: &[&[u8]]) -> Result<usize, SpdmError> {
    let mut w = Writer::new(out.get_mut(n..).ok_or(SpdmError::BufferTooSmall)?);
    for p in parts {
        w.bytes(p)?;
    }
    n.checked_add(w.len()).ok_or(SpdmError::BufferTooSmall)
}

/// Checks code and version of a response header.
pub(crate) fn response_header(
    buf: &[u8],
    code: u8,
    version: SpdmVersion,
) -> Result<SpdmHeader, SpdmError> {
    let header = SpdmHeader::parse(buf)?;
    if header.code != code {
        return Err(SpdmError::UnexpectedCode);
    }
    if header.version != version.as_byte() {
        return Err(SpdmError::UnexpectedVersion);
    }
    Ok(header)
}

/// Checks the code of a request header (the responder checks the version against its state).
fn request_header(buf: &[u8], code: u8) -> Result<SpdmHeader, SpdmError> {
    let header = SpdmHeader::parse(buf)?;
    if header.code != code {
        return Err(SpdmError::UnexpectedCode);
    }
    Ok(header)
}

/// Whether at most one bit of `v` is set.
const fn at_most_one_bit(v: u32) -> bool {
    v.count_ones() <= 1
}

// --- GET_CAPABILITIES / CAPABILITIES ---------------------------------------------------------

/// The fields of GET_CAPABILITIES and of CAPABILITIES (both have the same layout).
///
/// * SPDM 1.0: GET_CAPABILITIES is the header only; CAPABILITIES has CTExponent and Flags.
/// * SPDM 1.1: both have Reserved, CTExponent, Reserved (2), Flags (12 bytes).
/// * SPDM 1.2 and 1.3: both add DataTransferSize and MaxSPDMmsgSize (20 bytes).
///
/// Fields a version does not carry are written as nothing and parsed as 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capabilities {
    /// SPDMVersion of the message.
    pub version: SpdmVersion,
    /// Param1. 1.3 GET_CAPABILITIES bit 0 asks for the supported-algorithms block in
    /// CAPABILITIES, which this codec does not parse: send 0.
    pub param1: u8,
    /// CTExponent: cryptographic timeout 2^CTExponent microseconds (1.1+ in requests).
    pub ct_exponent: u8,
    /// Capability flags (`SPDM_CAP_*`).
    pub flags: u32,
    /// DataTransferSize (1.2+): the largest SPDM message the sender can receive in one
    /// transfer.
    pub data_transfer_size: u32,
    /// MaxSPDMmsgSize (1.2+): the largest SPDM message the sender can handle (after chunk
    /// reassembly).
    pub max_spdm_msg_size: u32,
}

impl Capabilities {
    /// Capabilities with all fields zero except the version.
    pub const fn new(version: SpdmVersion) -> Self {
        Capabilities {
            version,
            param1: 0,
            ct_exponent: 0,
            flags: 0,
            data_transfer_size: 0,
            max_spdm_msg_size: 0,
        }
    }

    /// Whether every flag in `flags` is set.
    pub const fn has(&self, flags: u32) -> bool {
        self.flags & flags == flags
    }

    /// The MEAS_CAP field (0 none, 1 without signature, 2 with signature).
    pub fn meas_cap(&self) -> u8 {
        u8::try_from((self.flags & SPDM_CAP_MEAS_MASK) >> 3).unwrap_or(0)
    }

    /// The cryptographic timeout CT in microseconds (2^CTExponent, saturating).
    pub fn ct_us(&self) -> u64 {
        crate::spdm::exponent_us(self.ct_exponent)
    }

    /// Checks the field rules DSP0274 sets for the message's version: reserved two-bit
    /// encodings (MEAS_CAP, PSK_CAP, EP_INFO_CAP, MULTI_KEY_CAP = 3) and, from 1.2,
    /// DataTransferSize >= 42, MaxSPDMmsgSize >= DataTransferSize, and equal unless CHUNK_CAP.
    pub fn validate(&self) -> Result<(), SpdmError> {
        let reserved = [
            SPDM_CAP_MEAS_MASK,
            SPDM_CAP_PSK_MASK,
            SPDM_CAP_EP_INFO_MASK,
            SPDM_CAP_MULTI_KEY_MASK,
        ];
        for mask in reserved {
            if self.flags & mask == mask {
                return Err(SpdmError::InvalidField);
            }
        }
        if self.version >= SpdmVersion::V1_2 {
            if self.data_transfer_size < SPDM_MIN_DATA_TRANSFER_SIZE
                || self.max_spdm_msg_size < self.data_transfer_size
            {
                return Err(SpdmError::InvalidField);
            }
            if !self.has(SPDM_CAP_CHUNK) && self.max_spdm_msg_size != self.data_transfer_size {
                return Err(SpdmError::InvalidField);
            }
        }
        Ok(())
    }
}

/// Size of GET_CAPABILITIES for `version`.
pub fn get_capabilities_size(version: SpdmVersion) -> usize {
    if version >= SpdmVersion::V1_2 {
        SPDM_CAPABILITIES_1_2_SIZE
    } else if version >= SpdmVersion::V1_1 {
        SPDM_CAPABILITIES_1_1_SIZE
    } else {
        SPDM_GET_CAPABILITIES_1_0_SIZE
    }
}

/// Size of CAPABILITIES for `version`.
pub fn capabilities_size(version: SpdmVersion) -> usize {
    if version >= SpdmVersion::V1_2 {
        SPDM_CAPABILITIES_1_2_SIZE
    } else {
        SPDM_CAPABILITIES_1_1_SIZE
    }
}

fn encode_caps(
    caps: &Capabilities,
    code: u8,
    size: usize,
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    let mut w = Writer::new(out);
    w.header(caps.version, code, caps.param1, 0)?;
    if size > SPDM_HEADER_SIZE {
        w.u8(0)?;
        w.u8(caps.ct_exponent)?;
        w.u16(0)?;
        w.u32(caps.flags)?;
    }
    if size > SPDM_CAPABILITIES_1_1_SIZE {
        w.u32(caps.data_transfer_size)?;
        w.u32(caps.max_spdm_msg_size)?;
    }
    Ok(w.len())
}

fn parse_caps(buf: &[u8], header: SpdmHeader, size: usize) -> Result<Capabilities, SpdmError> {
    if buf.len() < size {
        return Err(SpdmError::TooShort);
    }
    let mut caps = Capabilities::new(header.spdm_version());
    caps.param1 = header.param1;
    let mut r = Reader::new(buf, SPDM_HEADER_SIZE);
    if size > SPDM_HEADER_SIZE {
        r.u8()?;
        caps.ct_exponent = r.u8()?;
        r.u16()?;
        caps.flags = r.u32()?;
    }
    if size > SPDM_CAPABILITIES_1_1_SIZE {
        caps.data_transfer_size = r.u32()?;
        caps.max_spdm_msg_size = r.u32()?;
    }
    r.finish()?;
    Ok(caps)
}

/// Writes GET_CAPABILITIES for `caps.version` (4, 12 or 20 bytes) and returns its size.
pub fn encode_get_capabilities(caps: &Capabilities, out: &mut [u8]) -> Result<usize, SpdmError> {
    encode_caps(
        caps,
        SPDM_GET_CAPABILITIES,
        get_capabilities_size(caps.version),
        out,
    )
}

/// Parses GET_CAPABILITIES (responder side); the layout follows the header's version (a
/// version above 1.3 is parsed as 1.3). Reserved fields are ignored; call
/// [`Capabilities::validate`] for the field rules.
pub fn parse_get_capabilities(buf: &[u8]) -> Result<Capabilities, SpdmError> {
    let header = request_header(buf, SPDM_GET_CAPABILITIES)?;
    parse_caps(buf, header, get_capabilities_size(header.spdm_version()))
}

/// Writes CAPABILITIES for `caps.version` (12 or 20 bytes) and returns its size.
pub fn encode_capabilities(caps: &Capabilities, out: &mut [u8]) -> Result<usize, SpdmError> {
    encode_caps(
        caps,
        SPDM_CAPABILITIES,
        capabilities_size(caps.version),
        out,
    )
}

/// Parses CAPABILITIES (requester side): the header must carry `version` (the version sent in
/// GET_CAPABILITIES), the message must have exactly the size of that version, and
/// [`Capabilities::validate`] must pass. The message length is
/// [`capabilities_size`]`(version)`.
pub fn parse_capabilities(buf: &[u8], version: SpdmVersion) -> Result<Capabilities, SpdmError> {
    let header = response_header(buf, SPDM_CAPABILITIES, version)?;
    let caps = parse_caps(buf, header, capabilities_size(version))?;
    caps.validate()?;
    Ok(caps)
}

// --- NEGOTIATE_ALGORITHMS / ALGORITHMS --------------------------------------------------------

/// The algorithm structure tables of NEGOTIATE_ALGORITHMS / ALGORITHMS (1.1+), one optional
/// 16-bit AlgSupported / AlgSelected field per AlgType. Extended algorithms in the tables are
/// skipped when parsing and never encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AlgStructs {
    /// DHE (AlgType 2).
    pub dhe: Option<u16>,
    /// AEAD (AlgType 3).
    pub aead: Option<u16>,
    /// ReqBaseAsymAlg (AlgType 4).
    pub req_base_asym: Option<u16>,
    /// KeySchedule (AlgType 5).
    pub key_schedule: Option<u16>,
}

impl AlgStructs {
    /// The tables in wire order (increasing AlgType) as (AlgType, value).
    fn entries(&self) -> [(u8, Option<u16>); 4] {
        [
            (SPDM_ALG_TYPE_DHE, self.dhe),
            (SPDM_ALG_TYPE_AEAD, self.aead),
            (SPDM_ALG_TYPE_REQ_BASE_ASYM, self.req_base_asym),
            (SPDM_ALG_TYPE_KEY_SCHEDULE, self.key_schedule),
        ]
    }

    /// Number of tables present.
    pub fn count(&self) -> u8 {
        let mut n = 0u8;
        for (_, v) in self.entries() {
            if v.is_some() {
                n = n.saturating_add(1);
            }
        }
        n
    }

    fn slot(&mut self, alg_type: u8) -> Option<&mut Option<u16>> {
        match alg_type {
            SPDM_ALG_TYPE_DHE => Some(&mut self.dhe),
            SPDM_ALG_TYPE_AEAD => Some(&mut self.aead),
            SPDM_ALG_TYPE_REQ_BASE_ASYM => Some(&mut self.req_base_asym),
            SPDM_ALG_TYPE_KEY_SCHEDULE => Some(&mut self.key_schedule),
            _ => None,
        }
    }

    fn encoded_size(&self) -> usize {
        usize::from(self.count()).saturating_mul(SPDM_ALG_STRUCT_SIZE)
    }

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), SpdmError> {
        for (alg_type, v) in self.entries() {
            if let Some(v) = v {
                w.u8(alg_type)?;
                w.u8(0x20)?; // FixedAlgCount 2, ExtAlgCount 0
                w.u16(v)?;
            }
        }
        Ok(())
    }

    /// Parses `count` tables; returns the tables and the number of extended algorithms seen.
    fn parse(r: &mut Reader<'_>, count: u8, max_ext_each: u8) -> Result<(Self, usize), SpdmError> {
        let mut structs = AlgStructs::default();
        let mut ext_total: usize = 0;
        let mut previous: u8 = 0;
        for _ in 0..count {
            let alg_type = r.u8()?;
            let alg_count = r.u8()?;
            let fixed = alg_count >> 4;
            let ext = alg_count & 0x0F;
            if fixed != 2 || ext > max_ext_each || alg_type <= previous {
                return Err(SpdmError::InvalidAlgStruct);
            }
            previous = alg_type;
            let value = r.u16()?;
            r.take(usize::from(ext).saturating_mul(SPDM_EXT_ALG_SIZE))?;
            ext_total = ext_total.saturating_add(usize::from(ext));
            let slot = structs.slot(alg_type).ok_or(SpdmError::InvalidAlgStruct)?;
            *slot = Some(value);
        }
        Ok((structs, ext_total))
    }
}

/// A NEGOTIATE_ALGORITHMS request.
///
/// Layout: header (Param1 = number of structure tables, 1.1+), Length u16,
/// MeasurementSpecification, OtherParamsSupport (1.2+), BaseAsymAlgo u32, BaseHashAlgo u32,
/// 12 reserved bytes, ExtAsymCount, ExtHashCount, reserved, MELspecification (1.3), ExtAsym
/// (4 bytes each), ExtHash (4 bytes each), then the structure tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NegotiateAlgorithms {
    /// SPDMVersion of the message.
    pub version: SpdmVersion,
    /// MeasurementSpecification bit mask (`SPDM_MEAS_SPEC_DMTF`).
    pub measurement_specification: u8,
    /// OtherParamsSupport (1.2+): opaque data formats, MULTI_KEY_CONN (1.3).
    pub other_params: u8,
    /// BaseAsymAlgo bit mask (`SPDM_ASYM_*`).
    pub base_asym: u32,
    /// BaseHashAlgo bit mask (`SPDM_HASH_*`).
    pub base_hash: u32,
    /// MELspecification (1.3).
    pub mel_specification: u8,
    /// ExtAsymCount: extended asymmetric algorithms listed (skipped; never encoded).
    pub ext_asym_count: u8,
    /// ExtHashCount: extended hash algorithms listed (skipped; never encoded).
    pub ext_hash_count: u8,
    /// The structure tables (1.1+).
    pub structs: AlgStructs,
    /// Length of the message in bytes (the Length field); set by the parser and by
    /// [`encode_negotiate_algorithms`]'s return value.
    pub len: usize,
}

impl NegotiateAlgorithms {
    /// A request offering nothing, for `version`.
    pub const fn new(version: SpdmVersion) -> Self {
        NegotiateAlgorithms {
            version,
            measurement_specification: 0,
            other_params: 0,
            base_asym: 0,
            base_hash: 0,
            mel_specification: 0,
            ext_asym_count: 0,
            ext_hash_count: 0,
            structs: AlgStructs {
                dhe: None,
                aead: None,
                req_base_asym: None,
                key_schedule: None,
            },
            len: 0,
        }
    }
}

/// Writes NEGOTIATE_ALGORITHMS and returns its size. No extended algorithms are written
/// (`ext_*_count` and `len` are ignored); structure tables only for 1.1 and later (for 1.0
/// they must be empty, else [`SpdmError::InvalidAlgStruct`]). OtherParamsSupport is written
/// as 0 below 1.2, MELspecification as 0 below 1.3.
pub fn encode_negotiate_algorithms(
    req: &NegotiateAlgorithms,
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    let v11 = req.version >= SpdmVersion::V1_1;
    if !v11 && req.structs.count() != 0 {
        return Err(SpdmError::InvalidAlgStruct);
    }
    let len = SPDM_NEGOTIATE_ALGORITHMS_FIXED_SIZE.saturating_add(req.structs.encoded_size());
    let len16 = u16::try_from(len).map_err(|_| SpdmError::InvalidLength)?;
    let mut w = Writer::new(out);
    w.header(
        req.version,
        SPDM_NEGOTIATE_ALGORITHMS,
        req.structs.count(),
        0,
    )?;
    w.u16(len16)?;
    w.u8(req.measurement_specification)?;
    w.u8(if req.version >= SpdmVersion::V1_2 {
        req.other_params
    } else {
        0
    })?;
    w.u32(req.base_asym)?;
    w.u32(req.base_hash)?;
    w.zeros(12)?;
    w.u8(0)?;
    w.u8(0)?;
    w.u8(0)?;
    w.u8(if req.version >= SpdmVersion::V1_3 {
        req.mel_specification
    } else {
        0
    })?;
    req.structs.encode(&mut w)?;
    Ok(w.len())
}

/// Parses NEGOTIATE_ALGORITHMS (responder side; the layout follows the header's version).
///
/// Checks: the Length field equals the message size (up to 3 bytes of zero padding may follow)
/// and is at most 64 bytes (1.0) or 128 bytes (1.1+); extended algorithm counts within the
/// limits (8 in 1.0, 20 in 1.1+); structure tables (1.1+) with FixedAlgCount 2, known AlgType,
/// strictly increasing AlgType. A 1.0 request must have Param1 = 0.
pub fn parse_negotiate_algorithms(buf: &[u8]) -> Result<NegotiateAlgorithms, SpdmError> {
    let header = request_header(buf, SPDM_NEGOTIATE_ALGORITHMS)?;
    if buf.len() < SPDM_NEGOTIATE_ALGORITHMS_FIXED_SIZE {
        return Err(SpdmError::TooShort);
    }
    let version = header.spdm_version();
    let v11 = version >= SpdmVersion::V1_1;
    let mut req = NegotiateAlgorithms::new(version);
    let mut r = Reader::new(buf, SPDM_HEADER_SIZE);
    let len = usize::from(r.u16()?);
    let max = if v11 {
        SPDM_NEGOTIATE_ALGORITHMS_MAX_SIZE
    } else {
        SPDM_NEGOTIATE_ALGORITHMS_MAX_SIZE_1_0
    };
    if !(SPDM_NEGOTIATE_ALGORITHMS_FIXED_SIZE..=max).contains(&len) {
        return Err(SpdmError::InvalidLength);
    }
    req.measurement_specification = r.u8()?;
    let other = r.u8()?;
    req.other_params = if version >= SpdmVersion::V1_2 {
        other
    } else {
        0
    };
    req.base_asym = r.u32()?;
    req.base_hash = r.u32()?;
    r.take(12)?;
    req.ext_asym_count = r.u8()?;
    req.ext_hash_count = r.u8()?;
    r.u8()?;
    let mel = r.u8()?;
    req.mel_specification = if version >= SpdmVersion::V1_3 { mel } else { 0 };
    let msg = buf.get(..len).ok_or(SpdmError::InvalidLength)?;
    let mut r = Reader::new(msg, r.pos());
    let ext = usize::from(req.ext_asym_count).saturating_add(usize::from(req.ext_hash_count));
    r.take(ext.saturating_mul(SPDM_EXT_ALG_SIZE))
        .map_err(|_| SpdmError::InvalidLength)?;
    let count = if v11 { header.param1 } else { 0 };
    if !v11 && header.param1 != 0 {
        return Err(SpdmError::InvalidAlgStruct);
    }
    let (structs, struct_ext) = AlgStructs::parse(&mut r, count, 0x0F).map_err(|e| match e {
        SpdmError::Truncated => SpdmError::InvalidLength,
        e => e,
    })?;
    let max_ext = if v11 {
        SPDM_MAX_EXT_ALGS
    } else {
        SPDM_MAX_EXT_ALGS_1_0
    };
    if ext.saturating_add(struct_ext) > max_ext {
        return Err(SpdmError::InvalidAlgStruct);
    }
    if r.pos() != len {
        return Err(SpdmError::InvalidLength);
    }
    check_padding(buf.get(len..).unwrap_or(&[]))?;
    req.structs = structs;
    req.len = len;
    Ok(req)
}

/// An ALGORITHMS response.
///
/// Layout: header (Param1 = number of structure tables, 1.1+), Length u16,
/// MeasurementSpecificationSel, OtherParamsSelection (1.2+), MeasurementHashAlgo u32,
/// BaseAsymSel u32, BaseHashSel u32, 11 reserved bytes, MELspecificationSel (1.3),
/// ExtAsymSelCount, ExtHashSelCount, 2 reserved bytes, ExtAsymSel, ExtHashSel, tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Algorithms {
    /// SPDMVersion of the message.
    pub version: SpdmVersion,
    /// MeasurementSpecificationSel.
    pub measurement_specification: u8,
    /// OtherParamsSelection (1.2+).
    pub other_params: u8,
    /// MeasurementHashAlgo (`SPDM_MEAS_HASH_*`; 0 if the responder has no MEAS_CAP).
    pub measurement_hash: u32,
    /// BaseAsymSel (`SPDM_ASYM_*`).
    pub base_asym: u32,
    /// BaseHashSel (`SPDM_HASH_*`).
    pub base_hash: u32,
    /// MELspecificationSel (1.3).
    pub mel_specification: u8,
    /// ExtAsymSelCount (0 or 1; the entry is skipped and never encoded).
    pub ext_asym_count: u8,
    /// ExtHashSelCount (0 or 1; the entry is skipped and never encoded).
    pub ext_hash_count: u8,
    /// The selected structure tables (1.1+).
    pub structs: AlgStructs,
    /// Length of the message (the Length field).
    pub len: usize,
}

impl Algorithms {
    /// A response selecting nothing, for `version`.
    pub const fn new(version: SpdmVersion) -> Self {
        Algorithms {
            version,
            measurement_specification: 0,
            other_params: 0,
            measurement_hash: 0,
            base_asym: 0,
            base_hash: 0,
            mel_specification: 0,
            ext_asym_count: 0,
            ext_hash_count: 0,
            structs: AlgStructs {
                dhe: None,
                aead: None,
                req_base_asym: None,
                key_schedule: None,
            },
            len: 0,
        }
    }

    /// Checks the selection against the request it answers:
    ///
    /// * every selected bit (measurement specification, opaque data format, base asym, base
    ///   hash, each structure table) was offered, and no extended algorithm is selected unless
    ///   one was offered ([`SpdmError::AlgorithmNotOffered`]);
    /// * every table the response carries was in the request ([`SpdmError::InvalidAlgStruct`]);
    /// * if `need_asym_hash` (CERT_CAP, CHAL_CAP or MEAS_CAP with signatures is going to be
    ///   used), exactly one base asym and one base hash algorithm are selected
    ///   ([`SpdmError::NoCommonAlgorithm`]).
    ///
    /// Single-bit selections are already enforced by [`parse_algorithms`].
    pub fn check_against(
        &self,
        req: &NegotiateAlgorithms,
        need_asym_hash: bool,
    ) -> Result<(), SpdmError> {
        let subset = |sel: u32, offered: u32| sel & !offered == 0;
        if !subset(
            u32::from(self.measurement_specification),
            u32::from(req.measurement_specification),
        ) || !subset(
            u32::from(self.other_params & SPDM_OPAQUE_DATA_FMT_MASK),
            u32::from(req.other_params & SPDM_OPAQUE_DATA_FMT_MASK),
        ) || !subset(self.base_asym, req.base_asym)
            || !subset(self.base_hash, req.base_hash)
            || (self.ext_asym_count > 0 && req.ext_asym_count == 0)
            || (self.ext_hash_count > 0 && req.ext_hash_count == 0)
        {
            return Err(SpdmError::AlgorithmNotOffered);
        }
        let ours = req.structs.entries();
        for ((_, sel), (_, offered)) in self.structs.entries().iter().zip(ours.iter()) {
            match (sel, offered) {
                (Some(_), None) => return Err(SpdmError::InvalidAlgStruct),
                (Some(s), Some(o)) if s & !o != 0 => return Err(SpdmError::AlgorithmNotOffered),
                _ => {}
            }
        }
        if need_asym_hash && (self.base_asym == 0 || self.base_hash == 0) {
            return Err(SpdmError::NoCommonAlgorithm);
        }
        Ok(())
    }

    /// Hash size H of the selected BaseHashSel.
    pub fn hash_size(&self) -> Option<usize> {
        hash_size(self.base_hash)
    }

    /// Signature size S of the selected BaseAsymSel.
    pub fn signature_size(&self) -> Option<usize> {
        signature_size(self.base_asym)
    }
}

/// Writes ALGORITHMS and returns its size (no extended algorithms; `ext_*_count` and `len` are
/// ignored; tables only for 1.1+).
pub fn encode_algorithms(rsp: &Algorithms, out: &mut [u8]) -> Result<usize, SpdmError> {
    let v11 = rsp.version >= SpdmVersion::V1_1;
    if !v11 && rsp.structs.count() != 0 {
        return Err(SpdmError::InvalidAlgStruct);
    }
    let len = SPDM_ALGORITHMS_FIXED_SIZE.saturating_add(rsp.structs.encoded_size());
    let len16 = u16::try_from(len).map_err(|_| SpdmError::InvalidLength)?;
    let mut w = Writer::new(out);
    w.header(rsp.version, SPDM_ALGORITHMS, rsp.structs.count(), 0)?;
    w.u16(len16)?;
    w.u8(rsp.measurement_specification)?;
    w.u8(if rsp.version >= SpdmVersion::V1_2 {
        rsp.other_params
    } else {
        0
    })?;
    w.u32(rsp.measurement_hash)?;
    w.u32(rsp.base_asym)?;
    w.u32(rsp.base_hash)?;
    w.zeros(11)?;
    w.u8(if rsp.version >= SpdmVersion::V1_3 {
        rsp.mel_specification
    } else {
        0
    })?;
    w.u8(0)?;
    w.u8(0)?;
    w.u16(0)?;
    rsp.structs.encode(&mut w)?;
    Ok(w.len())
}

/// Parses ALGORITHMS (requester side).
///
/// Checks: code and `version`; the Length field equals the message size (up to 3 zero bytes
/// of padding may follow) and is at most [`SPDM_ALGORITHMS_MAX_SIZE`]; at most one bit set in
/// MeasurementSpecificationSel, MeasurementHashAlgo, BaseAsymSel, BaseHashSel and each table's
/// AlgSelected, and ExtAsymSelCount, ExtHashSelCount and each table's ExtAlgCount at most 1
/// ([`SpdmError::MultipleAlgorithms`]); well-formed tables (1.1+; 1.0 must have Param1 = 0).
/// Then call [`Algorithms::check_against`] with the request.
pub fn parse_algorithms(buf: &[u8], version: SpdmVersion) -> Result<Algorithms, SpdmError> {
    let header = response_header(buf, SPDM_ALGORITHMS, version)?;
    if buf.len() < SPDM_ALGORITHMS_FIXED_SIZE {
        return Err(SpdmError::TooShort);
    }
    let v11 = version >= SpdmVersion::V1_1;
    let mut rsp = Algorithms::new(version);
    let mut r = Reader::new(buf, SPDM_HEADER_SIZE);
    let len = usize::from(r.u16()?);
    if !(SPDM_ALGORITHMS_FIXED_SIZE..=SPDM_ALGORITHMS_MAX_SIZE).contains(&len) {
        return Err(SpdmError::InvalidLength);
    }
    rsp.measurement_specification = r.u8()?;
    let other = r.u8()?;
    rsp.other_params = if version >= SpdmVersion::V1_2 {
        other
    } else {
        0
    };
    rsp.measurement_hash = r.u32()?;
    rsp.base_asym = r.u32()?;
    rsp.base_hash = r.u32()?;
    r.take(11)?;
    let mel = r.u8()?;
    rsp.mel_specification = if version >= SpdmVersion::V1_3 { mel } else { 0 };
    rsp.ext_asym_count = r.u8()?;
    rsp.ext_hash_count = r.u8()?;
    r.u16()?;
    if !at_most_one_bit(u32::from(rsp.measurement_specification))
        || !at_most_one_bit(rsp.measurement_hash)
        || !at_most_one_bit(rsp.base_asym)
        || !at_most_one_bit(rsp.base_hash)
        || !at_most_one_bit(u32::from(rsp.other_params & SPDM_OPAQUE_DATA_FMT_MASK))
        || rsp.ext_asym_count > 1
        || rsp.ext_hash_count > 1
    {
        return Err(SpdmError::MultipleAlgorithms);
    }
    let msg = buf.get(..len).ok_or(SpdmError::InvalidLength)?;
    let mut r = Reader::new(msg, r.pos());
    let ext = usize::from(rsp.ext_asym_count).saturating_add(usize::from(rsp.ext_hash_count));
    r.take(ext.saturating_mul(SPDM_EXT_ALG_SIZE))
        .map_err(|_| SpdmError::InvalidLength)?;
    if !v11 && header.param1 != 0 {
        return Err(SpdmError::InvalidAlgStruct);
    }
    let count = if v11 { header.param1 } else { 0 };
    let (structs, _) = AlgStructs::parse(&mut r, count, 1).map_err(|e| match e {
        SpdmError::Truncated => SpdmError::InvalidLength,
        e => e,
    })?;
    for (_, v) in structs.entries() {
        if let Some(v) = v {
            if !at_most_one_bit(u32::from(v)) {
                return Err(SpdmError::MultipleAlgorithms);
            }
        }
    }
    if r.pos() != len {
        return Err(SpdmError::InvalidLength);
    }
    check_padding(buf.get(len..).unwrap_or(&[]))?;
    rsp.structs = structs;
    rsp.len = len;
    Ok(rsp)
}

// --- Algorithm helpers ------------------------------------------------------------------------

/// Hash size H in bytes of a single BaseHashAlgo bit, or `None` for zero, several bits or an
/// unknown bit.
pub const fn hash_size(base_hash: u32) -> Option<usize> {
    match base_hash {
        SPDM_HASH_SHA256 | SPDM_HASH_SHA3_256 | SPDM_HASH_SM3_256 => Some(32),
        SPDM_HASH_SHA384 | SPDM_HASH_SHA3_384 => Some(48),
        SPDM_HASH_SHA512 | SPDM_HASH_SHA3_512 => Some(64),
        _ => None,
    }
}

/// Size in bytes of a measurement hash for a single MeasurementHashAlgo bit: `Some(0)` for
/// raw bit streams, `None` for zero, several bits or an unknown bit.
pub const fn measurement_hash_size(measurement_hash: u32) -> Option<usize> {
    match measurement_hash {
        SPDM_MEAS_HASH_RAW => Some(0),
        SPDM_MEAS_HASH_SHA256 | SPDM_MEAS_HASH_SHA3_256 | SPDM_MEAS_HASH_SM3_256 => Some(32),
        SPDM_MEAS_HASH_SHA384 | SPDM_MEAS_HASH_SHA3_384 => Some(48),
        SPDM_MEAS_HASH_SHA512 | SPDM_MEAS_HASH_SHA3_512 => Some(64),
        _ => None,
    }
}

/// Signature size S in bytes of a single BaseAsymAlgo bit, or `None` for zero, several bits or
/// an unknown bit. RSA: the modulus size; ECDSA: r || s; EdDSA: per RFC 8032.
pub const fn signature_size(base_asym: u32) -> Option<usize> {
    match base_asym {
        SPDM_ASYM_RSASSA_2048 | SPDM_ASYM_RSAPSS_2048 => Some(256),
        SPDM_ASYM_RSASSA_3072 | SPDM_ASYM_RSAPSS_3072 => Some(384),
        SPDM_ASYM_RSASSA_4096 | SPDM_ASYM_RSAPSS_4096 => Some(512),
        SPDM_ASYM_ECDSA_P256 | SPDM_ASYM_SM2_P256 | SPDM_ASYM_EDDSA_ED25519 => Some(64),
        SPDM_ASYM_ECDSA_P384 => Some(96),
        SPDM_ASYM_ECDSA_P521 => Some(132),
        SPDM_ASYM_EDDSA_ED448 => Some(114),
        _ => None,
    }
}

/// DSP0274 name of a single BaseAsymAlgo bit, or `"unknown"`.
pub fn asym_name(base_asym: u32) -> &'static str {
    match base_asym {
        SPDM_ASYM_RSASSA_2048 => "RSASSA_2048",
        SPDM_ASYM_RSAPSS_2048 => "RSAPSS_2048",
        SPDM_ASYM_RSASSA_3072 => "RSASSA_3072",
        SPDM_ASYM_RSAPSS_3072 => "RSAPSS_3072",
        SPDM_ASYM_ECDSA_P256 => "ECDSA_ECC_NIST_P256",
        SPDM_ASYM_RSASSA_4096 => "RSASSA_4096",
        SPDM_ASYM_RSAPSS_4096 => "RSAPSS_4096",
        SPDM_ASYM_ECDSA_P384 => "ECDSA_ECC_NIST_P384",
        SPDM_ASYM_ECDSA_P521 => "ECDSA_ECC_NIST_P521",
        SPDM_ASYM_SM2_P256 => "SM2_ECC_SM2_P256",
        SPDM_ASYM_EDDSA_ED25519 => "EdDSA_ed25519",
        SPDM_ASYM_EDDSA_ED448 => "EdDSA_ed448",
        _ => "unknown",
    }
}

/// DSP0274 name of a single BaseHashAlgo bit, or `"unknown"`.
pub fn hash_name(base_hash: u32) -> &'static str {
    match base_hash {
        SPDM_HASH_SHA256 => "SHA_256",
        SPDM_HASH_SHA384 => "SHA_384",
        SPDM_HASH_SHA512 => "SHA_512",
        SPDM_HASH_SHA3_256 => "SHA3_256",
        SPDM_HASH_SHA3_384 => "SHA3_384",
        SPDM_HASH_SHA3_512 => "SHA3_512",
        SPDM_HASH_SM3_256 => "SM3_256",
        _ => "unknown",
    }
}

/// Asymmetric algorithms from strongest to weakest, by security strength (P-521 256 bits,
/// P-384 192, RSA-4096 ~150, P-256 and RSA-3072 128 with ECDSA first as the cheaper one,
/// RSA-2048 112); PSS before PKCS#1 v1.5 at equal size. SM2 and EdDSA are not ranked.
pub const SPDM_ASYM_PREFERENCE: [u32; 9] = [
    SPDM_ASYM_ECDSA_P521,
    SPDM_ASYM_ECDSA_P384,
    SPDM_ASYM_RSAPSS_4096,
    SPDM_ASYM_RSASSA_4096,
    SPDM_ASYM_ECDSA_P256,
    SPDM_ASYM_RSAPSS_3072,
    SPDM_ASYM_RSASSA_3072,
    SPDM_ASYM_RSAPSS_2048,
    SPDM_ASYM_RSASSA_2048,
];

/// Hash algorithms from strongest to weakest (SHA-2 before SHA3 at equal size; SM3 not ranked).
pub const SPDM_HASH_PREFERENCE: [u32; 6] = [
    SPDM_HASH_SHA512,
    SPDM_HASH_SHA3_512,
    SPDM_HASH_SHA384,
    SPDM_HASH_SHA3_384,
    SPDM_HASH_SHA256,
    SPDM_HASH_SHA3_256,
];

/// The first entry of `preference` whose bit is set in `mask`.
pub fn strongest(mask: u32, preference: &[u32]) -> Option<u32> {
    preference.iter().copied().find(|&bit| mask & bit != 0)
}

/// The strongest asymmetric algorithm in `mask` (see [`SPDM_ASYM_PREFERENCE`]); for the common
/// set pass `ours & theirs`.
pub fn strongest_asym(mask: u32) -> Option<u32> {
    strongest(mask, &SPDM_ASYM_PREFERENCE)
}

/// The strongest hash algorithm in `mask` (see [`SPDM_HASH_PREFERENCE`]).
pub fn strongest_hash(mask: u32) -> Option<u32> {
    strongest(mask, &SPDM_HASH_PREFERENCE)
}

// --- GET_DIGESTS / DIGESTS ---------------------------------------------------------------------

/// Writes GET_DIGESTS (header only) and returns its size, 4.
pub fn encode_get_digests(version: SpdmVersion, out: &mut [u8]) -> Result<usize, SpdmError> {
    let mut w = Writer::new(out);
    w.header(version, SPDM_GET_DIGESTS, 0, 0)?;
    Ok(w.len())
}

/// Parses GET_DIGESTS (responder side) and returns its header; up to 3 zero bytes of padding
/// may follow.
pub fn parse_get_digests(buf: &[u8]) -> Result<SpdmHeader, SpdmError> {
    let header = request_header(buf, SPDM_GET_DIGESTS)?;
    check_padding(buf.get(SPDM_GET_DIGESTS_SIZE..).unwrap_or(&[]))?;
    Ok(header)
}

/// A parsed DIGESTS response: one H-byte digest per populated slot, in slot order.
///
/// With 1.3 MULTI_KEY_CONN the response carries further per-slot fields, which this parser
/// does not accept (the requester does not negotiate multi-key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Digests<'a> {
    /// SPDMVersion of the message.
    pub version: SpdmVersion,
    /// Param1 (1.3): SupportedSlotMask; 0 (reserved) before 1.3.
    pub supported_slot_mask: u8,
    /// Param2: the slots holding a certificate chain (ProvisionedSlotMask in 1.3).
    pub slot_mask: u8,
    /// Concatenated digests.
    digests: &'a [u8],
    hash_size: usize,
    /// Length of the message without padding.
    pub len: usize,
}

impl<'a> Digests<'a> {
    /// The digest of `slot`, if that slot is populated.
    pub fn digest(&self, slot: u8) -> Option<&'a [u8]> {
        self.iter().find(|(s, _)| *s == slot).map(|(_, d)| d)
    }

    /// (slot, digest) for every populated slot, in increasing slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &'a [u8])> + 'a {
        let mask = self.slot_mask;
        let slots =
            (0u8..8).filter(move |&s| mask & 1u8.checked_shl(u32::from(s)).unwrap_or(0) != 0);
        slots.zip(self.digests.chunks_exact(self.hash_size.max(1)))
    }

    /// The lowest populated slot.
    pub fn first_slot(&self) -> Option<u8> {
        lowest_slot(self.slot_mask)
    }
}

/// The lowest slot set in a slot mask.
pub fn lowest_slot(mask: u8) -> Option<u8> {
    if mask == 0 {
        None
    } else {
        u8::try_from(mask.trailing_zeros()).ok()
    }
}

/// Parses DIGESTS (requester side): code and `version`, then one `hash_size`-byte digest per
/// bit of Param2 (up to 3 zero bytes of padding may follow). In 1.3 the provisioned slots must
/// be a subset of SupportedSlotMask ([`SpdmError::InvalidSlot`]).
pub fn parse_digests(
    buf: &[u8],
    version: SpdmVersion,
    hash_size: usize,
) -> Result<Digests<'_>, SpdmError> {
    let header = response_header(buf, SPDM_DIGESTS, version)?;
    if hash_size == 0 || hash_size > SPDM_MAX_HASH_SIZE {
        return Err(SpdmError::UnsupportedAlgorithm);
    }
    let supported_slot_mask = if version >= SpdmVersion::V1_3 {
        if header.param2 & !header.param1 != 0 {
            return Err(SpdmError::InvalidSlot);
        }
        header.param1
    } else {
        0
    };
    let n = usize::try_from(header.param2.count_ones()).map_err(|_| SpdmError::Truncated)?;
    let mut r = Reader::new(buf, SPDM_HEADER_SIZE);
    let digests = r.take(n.saturating_mul(hash_size))?;
    let len = r.finish()?;
    Ok(Digests {
        version,
        supported_slot_mask,
        slot_mask: header.param2,
        digests,
        hash_size,
        len,
    })
}

/// Writes DIGESTS: `digests` holds one digest per bit of `slot_mask`, in slot order, each
/// `hash_size` bytes ([`SpdmError::Mismatch`] otherwise). `supported_slot_mask` goes into
/// Param1 for 1.3 and is ignored before.
pub fn encode_digests(
    version: SpdmVersion,
    supported_slot_mask: u8,
    slot_mask: u8,
    digests: &[&[u8]],
    hash_size: usize,
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    let n = usize::try_from(slot_mask.count_ones()).map_err(|_| SpdmError::Mismatch)?;
    if digests.len() != n || digests.iter().any(|d| d.len() != hash_size) {
        return Err(SpdmError::Mismatch);
    }
    let p1 = if version >= SpdmVersion::V1_3 {
        supported_slot_mask
    } else {
        0
    };
    let mut w = Writer::new(out);
    w.header(version, SPDM_DIGESTS, p1, slot_mask)?;
    for d in digests {
        w.bytes(d)?;
    }
    Ok(w.len())
}

// --- GET_CERTIFICATE / CERTIFICATE -------------------------------------------------------------

/// A GET_CERTIFICATE request: Param1 bits 0-3 slot, Param2 (1.3) bit 0 SlotSizeRequested,
/// Offset u16, Length u16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GetCertificate {
    /// SPDMVersion of the message.
    pub version: SpdmVersion,
    /// Certificate slot, 0 to 7.
    pub slot: u8,
    /// Param2: 1.3 [`SPDM_GET_CERTIFICATE_SLOT_SIZE_REQUESTED`]; must be 0 before 1.3.
    pub attributes: u8,
    /// Offset into the certificate chain.
    pub offset: u16,
    /// Bytes wanted (the responder may send fewer).
    pub length: u16,
}

/// Writes GET_CERTIFICATE and returns its size, 8. A slot above 7 is
/// [`SpdmError::InvalidSlot`].
pub fn encode_get_certificate(req: &GetCertificate, out: &mut [u8]) -> Result<usize, SpdmError> {
    if usize::from(req.slot) >= SPDM_MAX_SLOTS {
        return Err(SpdmError::InvalidSlot);
    }
    let p2 = if req.version >= SpdmVersion::V1_3 {
        req.attributes
    } else {
        0
    };
    let mut w = Writer::new(out);
    w.header(req.version, SPDM_GET_CERTIFICATE, req.slot, p2)?;
    w.u16(req.offset)?;
    w.u16(req.length)?;
    Ok(w.len())
}

/// Parses GET_CERTIFICATE (responder side). The slot is Param1 bits 0-3 (bits 4-7 are
/// reserved and ignored); a slot above 7 is [`SpdmError::InvalidSlot`]. Param2 is returned as
/// `attributes` for 1.3 and ignored before.
pub fn parse_get_certificate(buf: &[u8]) -> Result<GetCertificate, SpdmError> {
    let header = request_header(buf, SPDM_GET_CERTIFICATE)?;
    if buf.len() < SPDM_GET_CERTIFICATE_SIZE {
        return Err(SpdmError::TooShort);
    }
    let version = header.spdm_version();
    let slot = header.param1 & 0x0F;
    if usize::from(slot) >= SPDM_MAX_SLOTS {
        return Err(SpdmError::InvalidSlot);
    }
    let mut r = Reader::new(buf, SPDM_HEADER_SIZE);
    let offset = r.u16()?;
    let length = r.u16()?;
    r.finish()?;
    Ok(GetCertificate {
        version,
        slot,
        attributes: if version >= SpdmVersion::V1_3 {
            header.param2
        } else {
            0
        },
        offset,
        length,
    })
}

/// A parsed CERTIFICATE response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Certificate<'a> {
    /// SPDMVersion of the message.
    pub version: SpdmVersion,
    /// Param1 bits 0-3: the slot.
    pub slot: u8,
    /// Param2 (1.3: CertificateInfo, the certificate model in bits 0-2; reserved before).
    pub cert_info: u8,
    /// The PortionLength bytes of the chain.
    pub portion: &'a [u8],
    /// RemainderLength: chain bytes after this portion.
    pub remainder_length: u16,
    /// Length of the message without padding (8 + PortionLength).
    pub len: usize,
}

impl Certificate<'_> {
    /// Checks the response against its request: same slot, a portion no longer than asked
    /// for, and a chain of at most 65535 bytes (offset + portion + remainder). A portion of 0
    /// bytes with a remainder is only accepted for a 1.3 SlotSizeRequested request. Errors are
    /// [`SpdmError::Mismatch`] (slot or length) and [`SpdmError::InvalidLength`] (total).
    pub fn check(&self, req: &GetCertificate) -> Result<(), SpdmError> {
        if self.slot != req.slot || self.portion.len() > usize::from(req.length) {
            return Err(SpdmError::Mismatch);
        }
        let size_only = req.attributes & SPDM_GET_CERTIFICATE_SLOT_SIZE_REQUESTED != 0
            && req.version >= SpdmVersion::V1_3;
        if self.portion.is_empty() && self.remainder_length != 0 && !size_only {
            return Err(SpdmError::Mismatch);
        }
        let total = usize::from(req.offset)
            .checked_add(self.portion.len())
            .and_then(|n| n.checked_add(usize::from(self.remainder_length)))
            .ok_or(SpdmError::InvalidLength)?;
        if total > SPDM_MAX_CERT_CHAIN_SIZE {
            return Err(SpdmError::InvalidLength);
        }
        Ok(())
    }
}

/// Parses CERTIFICATE (requester side): code and `version`, PortionLength bytes present (up to
/// 3 zero bytes of padding may follow). Call [`Certificate::check`] with the request.
pub fn parse_certificate(buf: &[u8], version: SpdmVersion) -> Result<Certificate<'_>, SpdmError> {
    let header = response_header(buf, SPDM_CERTIFICATE, version)?;
    if buf.len() < SPDM_CERTIFICATE_FIXED_SIZE {
        return Err(SpdmError::TooShort);
    }
    let mut r = Reader::new(buf, SPDM_HEADER_SIZE);
    let portion_length = r.u16()?;
    let remainder_length = r.u16()?;
    let portion = r.take(usize::from(portion_length))?;
    let len = r.finish()?;
    Ok(Certificate {
        version,
        slot: header.param1 & SPDM_CHALLENGE_AUTH_SLOT_MASK,
        cert_info: header.param2,
        portion,
        remainder_length,
        len,
    })
}

/// Writes CERTIFICATE with `portion` (at most 65535 bytes) and returns its size.
pub fn encode_certificate(
    version: SpdmVersion,
    slot: u8,
    cert_info: u8,
    portion: &[u8],
    remainder_length: u16,
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    if usize::from(slot) >= SPDM_MAX_SLOTS {
        return Err(SpdmError::InvalidSlot);
    }
    let portion_length = u16::try_from(portion.len()).map_err(|_| SpdmError::InvalidLength)?;
    let p2 = if version >= SpdmVersion::V1_3 {
        cert_info
    } else {
        0
    };
    let mut w = Writer::new(out);
    w.header(version, SPDM_CERTIFICATE, slot, p2)?;
    w.u16(portion_length)?;
    w.u16(remainder_length)?;
    w.bytes(portion)?;
    Ok(w.len())
}

// --- Certificate chain ---------------------------------------------------------------------------

/// A parsed SPDM certificate chain: Length u16 (the whole chain, header included), Reserved
/// u16, RootHash (H bytes: the hash of the first certificate's DER), then one or more DER
/// certificates, root (or a certificate signed by the root) first, leaf last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertChain<'a> {
    /// The Length field (equal to the chain's size).
    pub length: u16,
    /// RootHash.
    pub root_hash: &'a [u8],
    /// The concatenated DER certificates.
    pub certs: &'a [u8],
}

impl<'a> CertChain<'a> {
    /// The certificates, first (root side) to last (leaf).
    pub fn certificates(&self) -> DerCertificates<'a> {
        DerCertificates {
            rest: self.certs,
            failed: false,
        }
    }

    /// Number of certificates (all are well-formed: [`parse_cert_chain`] checked them).
    pub fn count(&self) -> usize {
        self.certificates().filter(|c| c.is_ok()).count()
    }

    /// The first certificate (the root certificate, or one signed by it).
    pub fn first(&self) -> Option<&'a [u8]> {
        self.certificates().next().and_then(|c| c.ok())
    }

    /// The leaf certificate (the last one), whose key signs CHALLENGE_AUTH.
    pub fn leaf(&self) -> Option<&'a [u8]> {
        self.certificates().filter_map(|c| c.ok()).last()
    }
}

/// Parses a complete certificate chain (as reassembled from CERTIFICATE portions).
///
/// Checks ([`SpdmError::BadCertChain`] unless noted): the Length field equals `buf.len()`; the
/// chain holds the header, a `hash_size`-byte root hash and at least one certificate; the
/// certificates are back-to-back definite-length DER SEQUENCEs that exactly fill the rest
/// ([`SpdmError::BadDer`]). The certificates' contents are not parsed.
pub fn parse_cert_chain(buf: &[u8], hash_size: usize) -> Result<CertChain<'_>, SpdmError> {
    if hash_size == 0 || hash_size > SPDM_MAX_HASH_SIZE {
        return Err(SpdmError::UnsupportedAlgorithm);
    }
    let mut r = Reader::new(buf, 0);
    let length = r.u16().map_err(|_| SpdmError::BadCertChain)?;
    r.u16().map_err(|_| SpdmError::BadCertChain)?;
    if usize::from(length) != buf.len() {
        return Err(SpdmError::BadCertChain);
    }
    let root_hash = r.take(hash_size).map_err(|_| SpdmError::BadCertChain)?;
    let certs = r.rest();
    if certs.is_empty() {
        return Err(SpdmError::BadCertChain);
    }
    let chain = CertChain {
        length,
        root_hash,
        certs,
    };
    for cert in chain.certificates() {
        cert?;
    }
    Ok(chain)
}

/// Writes the certificate chain header (Length = 4 + root hash + `certs_len`, Reserved 0,
/// RootHash) and returns its size; the DER certificates follow it. Fails with
/// [`SpdmError::InvalidLength`] if the chain would exceed 65535 bytes.
pub fn encode_cert_chain_header(
    root_hash: &[u8],
    certs_len: usize,
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    let total = SPDM_CERT_CHAIN_HEADER_SIZE
        .checked_add(root_hash.len())
        .and_then(|n| n.checked_add(certs_len))
        .ok_or(SpdmError::InvalidLength)?;
    let length = u16::try_from(total).map_err(|_| SpdmError::InvalidLength)?;
    let mut w = Writer::new(out);
    w.u16(length)?;
    w.u16(0)?;
    w.bytes(root_hash)?;
    Ok(w.len())
}

/// Total size (tag, length and contents) of the DER SEQUENCE at the start of `buf`.
///
/// Accepts only tag 0x30 with a definite length in minimal DER form: short form (0 to 127) or
/// long form with 1 to 4 length bytes, no leading zero byte, and a value that needs the long
/// form. The whole element must be present in `buf`. Anything else is [`SpdmError::BadDer`].
pub fn der_sequence_size(buf: &[u8]) -> Result<usize, SpdmError> {
    let mut r = Reader::new(buf, 0);
    let tag = r.u8().map_err(|_| SpdmError::BadDer)?;
    if tag != 0x30 {
        return Err(SpdmError::BadDer);
    }
    let first = r.u8().map_err(|_| SpdmError::BadDer)?;
    let content_len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return Err(SpdmError::BadDer);
        }
        let bytes = r.take(n).map_err(|_| SpdmError::BadDer)?;
        if bytes.first() == Some(&0) {
            return Err(SpdmError::BadDer);
        }
        let mut v: usize = 0;
        for &b in bytes {
            v = v
                .checked_mul(256)
                .and_then(|v| v.checked_add(usize::from(b)))
                .ok_or(SpdmError::BadDer)?;
        }
        if v < 0x80 {
            return Err(SpdmError::BadDer);
        }
        v
    };
    let total = r.pos().checked_add(content_len).ok_or(SpdmError::BadDer)?;
    if total > buf.len() {
        return Err(SpdmError::BadDer);
    }
    Ok(total)
}

/// Iterator over back-to-back DER certificates. Yields `Err(BadDer)` once for a malformed
/// element and then stops.
#[derive(Debug, Clone)]
pub struct DerCertificates<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> DerCertificates<'a> {
    /// Iterates over the DER certificates concatenated in `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        DerCertificates {
            rest: buf,
            failed: false,
        }
    }
}

impl<'a> Iterator for DerCertificates<'a> {
    type Item = Result<&'a [u8], SpdmError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match der_sequence_size(self.rest) {
            Ok(n) => {
                let cert = self.rest.get(..n).unwrap_or(&[]);
                self.rest = self.rest.get(n..).unwrap_or(&[]);
                Some(Ok(cert))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl core::iter::FusedIterator for DerCertificates<'_> {}

// --- CHALLENGE / CHALLENGE_AUTH -----------------------------------------------------------------

/// A CHALLENGE request: Param1 slot (0-7, or 0xFF for a provisioned public key), Param2
/// measurement summary hash type, Nonce (32 bytes), RequesterContext (8 bytes, 1.3 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Challenge {
    /// SPDMVersion of the message.
    pub version: SpdmVersion,
    /// Certificate slot, or [`SPDM_SLOT_PUBLIC_KEY`].
    pub slot: u8,
    /// MeasurementSummaryHashType (`SPDM_MEAS_SUMMARY_*`).
    pub meas_summary_type: u8,
    /// The requester's nonce.
    pub nonce: [u8; SPDM_NONCE_SIZE],
    /// RequesterContext (1.3; ignored and parsed as zeros before).
    pub requester_context: [u8; SPDM_REQ_CONTEXT_SIZE],
}

impl Challenge {
    /// Size of the request for its version.
    pub fn size(&self) -> usize {
        challenge_size(self.version)
    }
}

/// Size of CHALLENGE for `version` (36, or 44 from 1.3).
pub fn challenge_size(version: SpdmVersion) -> usize {
    if version >= SpdmVersion::V1_3 {
        SPDM_CHALLENGE_1_3_SIZE
    } else {
        SPDM_CHALLENGE_SIZE
    }
}

/// Whether `slot` is a valid CHALLENGE Param1 (0-7 or 0xFF).
fn valid_challenge_slot(slot: u8) -> bool {
    usize::from(slot) < SPDM_MAX_SLOTS || slot == SPDM_SLOT_PUBLIC_KEY
}

/// Whether `t` is a valid MeasurementSummaryHashType.
fn valid_summary_type(t: u8) -> bool {
    matches!(
        t,
        SPDM_MEAS_SUMMARY_NONE | SPDM_MEAS_SUMMARY_TCB | SPDM_MEAS_SUMMARY_ALL
    )
}

/// Writes CHALLENGE (36 bytes, 44 from 1.3) and returns its size.
pub fn encode_challenge(req: &Challenge, out: &mut [u8]) -> Result<usize, SpdmError> {
    if !valid_challenge_slot(req.slot) {
        return Err(SpdmError::InvalidSlot);
    }
    if !valid_summary_type(req.meas_summary_type) {
        return Err(SpdmError::InvalidField);
    }
    let mut w = Writer::new(out);
    w.header(req.version, SPDM_CHALLENGE, req.slot, req.meas_summary_type)?;
    w.bytes(&req.nonce)?;
    if req.version >= SpdmVersion::V1_3 {
        w.bytes(&req.requester_context)?;
    }
    Ok(w.len())
}

/// Parses CHALLENGE (responder side; the size follows the header's version). Checks the slot
/// (0-7 or 0xFF, [`SpdmError::InvalidSlot`]) and the summary type (0, 1 or 0xFF,
/// [`SpdmError::InvalidField`]).
pub fn parse_challenge(buf: &[u8]) -> Result<Challenge, SpdmError> {
    let header = request_header(buf, SPDM_CHALLENGE)?;
    let version = header.spdm_version();
    if buf.len() < challenge_size(version) {
        return Err(SpdmError::TooShort);
    }
    if !valid_challenge_slot(header.param1) {
        return Err(SpdmError::InvalidSlot);
    }
    if !valid_summary_type(header.param2) {
        return Err(SpdmError::InvalidField);
    }
    let mut r = Reader::new(buf, SPDM_HEADER_SIZE);
    let nonce = r.array()?;
    let requester_context = if version >= SpdmVersion::V1_3 {
        r.array()?
    } else {
        [0; SPDM_REQ_CONTEXT_SIZE]
    };
    r.finish()?;
    Ok(Challenge {
        version,
        slot: header.param1,
        meas_summary_type: header.param2,
        nonce,
        requester_context,
    })
}

/// What [`parse_challenge_auth`] needs to know to split CHALLENGE_AUTH.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChallengeAuthParams {
    /// The negotiated version (CHALLENGE_AUTH must carry it; from 1.3 a RequesterContext is
    /// present).
    pub version: SpdmVersion,
    /// H, the negotiated hash size.
    pub hash_size: usize,
    /// S, the negotiated signature size.
    pub signature_size: usize,
    /// Whether a MeasurementSummaryHash is present: the CHALLENGE asked for one (Param2 not 0)
    /// and the responder supports measurements (MEAS_CAP not 0).
    pub measurement_summary: bool,
}

/// A parsed CHALLENGE_AUTH response, borrowing from the input.
///
/// Layout: header (Param1: slot in bits 0-3, bit 7 BasicMutAuthReq in 1.1; Param2: slot
/// mask), CertChainHash (H), Nonce (32, chosen by the responder), MeasurementSummaryHash (H or
/// absent), OpaqueDataLength u16 (at most 1024), OpaqueData, RequesterContext (8 bytes, 1.3),
/// Signature (S).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChallengeAuth<'a> {
    /// SPDMVersion of the message.
    pub version: SpdmVersion,
    /// Param1 as received (ResponseAttributes).
    pub attributes: u8,
    /// Param1 bits 0-3: the slot whose chain was used (0xF for a provisioned public key).
    pub slot: u8,
    /// Param2: slot mask.
    pub slot_mask: u8,
    /// CertChainHash: hash of the certificate chain of the slot.
    pub cert_chain_hash: &'a [u8],
    /// The responder's nonce.
    pub nonce: &'a [u8],
    /// MeasurementSummaryHash (empty if absent).
    pub measurement_summary_hash: &'a [u8],
    /// OpaqueData.
    pub opaque: &'a [u8],
    /// RequesterContext (1.3; empty before).
    pub requester_context: &'a [u8],
    /// Signature.
    pub signature: &'a [u8],
    /// Offset of the signature: the transcript covers `buf[..signature_offset]`.
    pub signature_offset: usize,
    /// Length of the message without padding.
    pub len: usize,
}

impl ChallengeAuth<'_> {
    /// Checks the response against its request ([`SpdmError::Mismatch`]): the slot (bits 0-3
    /// of Param1) is the challenged one (0xF for slot 0xFF) and, for a certificate slot, its bit
    /// is set in the slot mask; from 1.3 the RequesterContext is echoed.
    pub fn check(&self, req: &Challenge) -> Result<(), SpdmError> {
        let expected_slot = req.slot & SPDM_CHALLENGE_AUTH_SLOT_MASK;
        if self.slot != expected_slot {
            return Err(SpdmError::Mismatch);
        }
        if req.slot != SPDM_SLOT_PUBLIC_KEY {
            let bit = 1u8.checked_shl(u32::from(req.slot)).unwrap_or(0);
            if self.slot_mask & bit == 0 {
                return Err(SpdmError::Mismatch);
            }
        }
        if self.version >= SpdmVersion::V1_3 && self.requester_context != req.requester_context {
            return Err(SpdmError::Mismatch);
        }
        Ok(())
    }
}

/// Parses CHALLENGE_AUTH (requester side) with the sizes in `params`; up to 3 zero bytes of
/// padding may follow the signature. Fails with [`SpdmError::InvalidField`] for an
/// OpaqueDataLength above 1024 and [`SpdmError::UnsupportedAlgorithm`] for a zero or too large
/// H or S. Call [`ChallengeAuth::check`] with the request, then verify the signature over the
/// transcript ending with `buf[..signature_offset]`.
pub fn parse_challenge_auth<'a>(
    buf: &'a [u8],
    params: &ChallengeAuthParams,
) -> Result<ChallengeAuth<'a>, SpdmError> {
    let header = response_header(buf, SPDM_CHALLENGE_AUTH, params.version)?;
    if params.hash_size == 0
        || params.hash_size > SPDM_MAX_HASH_SIZE
        || params.signature_size == 0
        || params.signature_size > SPDM_MAX_SIGNATURE_SIZE
    {
        return Err(SpdmError::UnsupportedAlgorithm);
    }
    let mut r = Reader::new(buf, SPDM_HEADER_SIZE);
    let cert_chain_hash = r.take(params.hash_size)?;
    let nonce = r.take(SPDM_NONCE_SIZE)?;
    let measurement_summary_hash = if params.measurement_summary {
        r.take(params.hash_size)?
    } else {
        &[]
    };
    let opaque_len = usize::from(r.u16()?);
    if opaque_len > SPDM_MAX_OPAQUE_DATA_SIZE {
        return Err(SpdmError::InvalidField);
    }
    let opaque = r.take(opaque_len)?;
    let requester_context = if params.version >= SpdmVersion::V1_3 {
        r.take(SPDM_REQ_CONTEXT_SIZE)?
    } else {
        &[]
    };
    let signature_offset = r.pos();
    let signature = r.take(params.signature_size)?;
    let len = r.finish()?;
    Ok(ChallengeAuth {
        version: params.version,
        attributes: header.param1,
        slot: header.param1 & SPDM_CHALLENGE_AUTH_SLOT_MASK,
        slot_mask: header.param2,
        cert_chain_hash,
        nonce,
        measurement_summary_hash,
        opaque,
        requester_context,
        signature,
        signature_offset,
        len,
    })
}

/// The fields of a CHALLENGE_AUTH response before the signature (responder side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChallengeAuthBody<'a> {
    /// SPDMVersion (the negotiated version).
    pub version: SpdmVersion,
    /// Param1: slot in bits 0-3 (plus BasicMutAuthReq in 1.1).
    pub attributes: u8,
    /// Param2: slot mask.
    pub slot_mask: u8,
    /// CertChainHash (H bytes).
    pub cert_chain_hash: &'a [u8],
    /// The responder's nonce.
    pub nonce: &'a [u8; SPDM_NONCE_SIZE],
    /// MeasurementSummaryHash (H bytes, or empty when not requested or no MEAS_CAP).
    pub measurement_summary_hash: &'a [u8],
    /// OpaqueData (at most 1024 bytes).
    pub opaque: &'a [u8],
    /// RequesterContext to echo (1.3; ignored before).
    pub requester_context: &'a [u8; SPDM_REQ_CONTEXT_SIZE],
}

/// Writes CHALLENGE_AUTH up to the signature and returns its size, which is where the
/// signature goes: the responder adds these bytes to the transcript, signs, and appends the
/// signature (or uses [`encode_challenge_auth`]).
pub fn encode_challenge_auth_body(
    body: &ChallengeAuthBody<'_>,
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    if body.opaque.len() > SPDM_MAX_OPAQUE_DATA_SIZE {
        return Err(SpdmError::InvalidField);
    }
    let opaque_len = u16::try_from(body.opaque.len()).map_err(|_| SpdmError::InvalidField)?;
    let mut w = Writer::new(out);
    w.header(
        body.version,
        SPDM_CHALLENGE_AUTH,
        body.attributes,
        body.slot_mask,
    )?;
    w.bytes(body.cert_chain_hash)?;
    w.bytes(body.nonce)?;
    w.bytes(body.measurement_summary_hash)?;
    w.u16(opaque_len)?;
    w.bytes(body.opaque)?;
    if body.version >= SpdmVersion::V1_3 {
        w.bytes(body.requester_context)?;
    }
    Ok(w.len())
}

/// Writes a complete CHALLENGE_AUTH (body then `signature`) and returns its size.
pub fn encode_challenge_auth(
    body: &ChallengeAuthBody<'_>,
    signature: &[u8],
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    let n = encode_challenge_auth_body(body, out)?;
    append(out, n, &[signature])
}

// --- Signing prefix (1.2+) and transcript -----------------------------------------------------

/// Writes the 100-byte `combined_spdm_prefix` of SPDM 1.2 and later into `out` and returns 100:
/// "dmtf-spdm-v1.X.*" (X the minor version) four times (64 bytes), then 36 - `context.len()`
/// zero bytes, then `context` (e.g. [`SPDM_CHALLENGE_AUTH_SIGN_CONTEXT`], which leaves 4 zero
/// bytes). Fails with [`SpdmError::UnexpectedVersion`] below 1.2 (those versions sign the
/// transcript hash without a prefix) and [`SpdmError::InvalidField`] for a context longer than
/// 36 bytes.
pub fn signing_prefix(
    version: SpdmVersion,
    context: &str,
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    if version < SpdmVersion::V1_2 || version.major() > 9 || version.minor() > 9 {
        return Err(SpdmError::UnexpectedVersion);
    }
    let pad = SPDM_MAX_SIGNING_CONTEXT_STR
        .checked_sub(context.len())
        .ok_or(SpdmError::InvalidField)?;
    let major = b'0'.saturating_add(version.major());
    let minor = b'0'.saturating_add(version.minor());
    let one: [u8; 16] = [
        b'd', b'm', b't', b'f', b'-', b's', b'p', b'd', b'm', b'-', b'v', major, b'.', minor, b'.',
        b'*',
    ];
    let mut w = Writer::new(out);
    for _ in 0..4 {
        w.bytes(&one)?;
    }
    w.zeros(pad)?;
    w.bytes(context.as_bytes())?;
    Ok(w.len())
}

/// Writes the message whose signature the responder sends, given the transcript hash
/// Hash(M1): for 1.2+ `combined_spdm_prefix || hash` (100 + H bytes; its Hash is the digest
/// ECDSA/RSA sign), for 1.0/1.1 just `hash` (which is itself the signed digest). Returns the
/// length written.
pub fn signed_message(
    version: SpdmVersion,
    context: &str,
    transcript_hash: &[u8],
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    let n = if version >= SpdmVersion::V1_2 {
        signing_prefix(version, context, out)?
    } else {
        0
    };
    append(out, n, &[transcript_hash])
}

/// Receives transcript bytes in order; implemented by a hash context (kernel crypto in the
/// kernel, RustCrypto in userspace) or a buffer. See the module documentation for exactly which
/// bytes a requester feeds.
pub trait TranscriptSink {
    /// Appends `bytes` to the transcript.
    fn update(&mut self, bytes: &[u8]);
}

impl<T: TranscriptSink + ?Sized> TranscriptSink for &mut T {
    fn update(&mut self, bytes: &[u8]) {
        (**self).update(bytes);
    }
}

/// A fixed-capacity buffer for the VCA part of the transcript (GET_VERSION to ALGORITHMS),
/// kept until the negotiated hash is known. Overflow is sticky: after bytes did not fit,
/// [`VcaBuffer::bytes`] fails with [`SpdmError::BufferTooSmall`].
#[derive(Clone)]
pub struct VcaBuffer {
    buf: [u8; SPDM_VCA_MAX_SIZE],
    len: usize,
    overflow: bool,
}

impl Default for VcaBuffer {
    fn default() -> Self {
        Self::new()
    }
}

impl core::fmt::Debug for VcaBuffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VcaBuffer")
            .field("len", &self.len)
            .field("overflow", &self.overflow)
            .finish()
    }
}

impl VcaBuffer {
    /// An empty buffer.
    pub const fn new() -> Self {
        VcaBuffer {
            buf: [0; SPDM_VCA_MAX_SIZE],
            len: 0,
            overflow: false,
        }
    }

    /// Empties the buffer (a new GET_VERSION starts a new VCA).
    pub fn clear(&mut self) {
        self.len = 0;
        self.overflow = false;
    }

    /// The buffered bytes, or [`SpdmError::BufferTooSmall`] if something did not fit.
    pub fn bytes(&self) -> Result<&[u8], SpdmError> {
        if self.overflow {
            return Err(SpdmError::BufferTooSmall);
        }
        Ok(self.buf.get(..self.len).unwrap_or(&[]))
    }

    /// Feeds the buffered bytes to `sink`.
    pub fn replay<S: TranscriptSink + ?Sized>(&self, sink: &mut S) -> Result<(), SpdmError> {
        sink.update(self.bytes()?);
        Ok(())
    }
}

impl TranscriptSink for VcaBuffer {
    fn update(&mut self, bytes: &[u8]) {
        if self.overflow {
            return;
        }
        let end = match self.len.checked_add(bytes.len()) {
            Some(end) => end,
            None => {
                self.overflow = true;
                return;
            }
        };
        match self.buf.get_mut(self.len..end) {
            Some(dst) => {
                for (d, s) in dst.iter_mut().zip(bytes) {
                    *d = *s;
                }
                self.len = end;
            }
            None => self.overflow = true,
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::spdm::SPDM_VERSION_1_0;
    use std::{format, vec, vec::Vec};

    const V10: SpdmVersion = SpdmVersion::V1_0;
    const V11: SpdmVersion = SpdmVersion::V1_1;
    const V12: SpdmVersion = SpdmVersion::V1_2;
    const V13: SpdmVersion = SpdmVersion::V1_3;

    #[test]
    fn capabilities_layouts() {
        let mut caps = Capabilities::new(V12);
        caps.ct_exponent = 20;
        caps.flags = SPDM_CAP_CERT | SPDM_CAP_CHAL;
        caps.data_transfer_size = 4600;
        caps.max_spdm_msg_size = 4600;
        let mut out = [0u8; 32];
        let n = encode_capabilities(&caps, &mut out).unwrap();
        assert_eq!(
            &out[..n],
            &[0x12, 0x61, 0, 0, 0, 20, 0, 0, 0x06, 0, 0, 0, 0xF8, 0x11, 0, 0, 0xF8, 0x11, 0, 0]
        );
        assert_eq!(parse_capabilities(&out[..n], V12), Ok(caps));
        assert_eq!(parse_capabilities(&out[..n + 3], V12), Ok(caps));
        assert_eq!(
            parse_capabilities(&out[..n], V13),
            Err(SpdmError::UnexpectedVersion)
        );
        assert_eq!(
            parse_capabilities(&out[..n - 1], V12),
            Err(SpdmError::TooShort)
        );

        // 1.0 request is the header only; 1.0 response has CTExponent and flags.
        let mut req = Capabilities::new(V10);
        req.flags = 0xFFFF;
        let n = encode_get_capabilities(&req, &mut out).unwrap();
        assert_eq!(&out[..n], &[0x10, 0xE1, 0, 0]);
        assert_eq!(parse_get_capabilities(&out[..n]).unwrap().flags, 0);
        let mut rsp = Capabilities::new(V10);
        rsp.flags = SPDM_CAP_CERT;
        rsp.ct_exponent = 7;
        let n = encode_capabilities(&rsp, &mut out).unwrap();
        assert_eq!(n, 12);
        assert_eq!(parse_capabilities(&out[..n], V10), Ok(rsp));

        let mut req = Capabilities::new(V11);
        req.flags = SPDM_CAP_CERT | SPDM_CAP_CHAL;
        req.ct_exponent = 12;
        let n = encode_get_capabilities(&req, &mut out).unwrap();
        assert_eq!(&out[..n], &[0x11, 0xE1, 0, 0, 0, 12, 0, 0, 6, 0, 0, 0]);
        assert_eq!(parse_get_capabilities(&out[..n]), Ok(req));
    }

    #[test]
    fn capabilities_validation() {
        let mut caps = Capabilities::new(V12);
        caps.data_transfer_size = 41;
        caps.max_spdm_msg_size = 41;
        assert_eq!(caps.validate(), Err(SpdmError::InvalidField));
        caps.data_transfer_size = 100;
        caps.max_spdm_msg_size = 200;
        assert_eq!(caps.validate(), Err(SpdmError::InvalidField));
        caps.flags = SPDM_CAP_CHUNK;
        assert_eq!(caps.validate(), Ok(()));
        caps.max_spdm_msg_size = 50;
        assert_eq!(caps.validate(), Err(SpdmError::InvalidField));
        let mut caps = Capabilities::new(V11);
        caps.flags = SPDM_CAP_MEAS_MASK;
        assert_eq!(caps.validate(), Err(SpdmError::InvalidField));
        caps.flags = SPDM_CAP_MEAS_SIG;
        assert_eq!(caps.meas_cap(), 2);
        assert_eq!(caps.validate(), Ok(()));
        caps.flags = SPDM_CAP_PSK_MASK;
        assert_eq!(caps.validate(), Err(SpdmError::InvalidField));
    }

    fn sample_request(version: SpdmVersion) -> NegotiateAlgorithms {
        let mut req = NegotiateAlgorithms::new(version);
        req.measurement_specification = SPDM_MEAS_SPEC_DMTF;
        req.other_params = SPDM_OPAQUE_DATA_FMT1;
        req.base_asym = SPDM_ASYM_ECDSA_P256 | SPDM_ASYM_ECDSA_P384 | SPDM_ASYM_RSASSA_3072;
        req.base_hash = SPDM_HASH_SHA256 | SPDM_HASH_SHA384;
        if version >= V11 {
            req.structs.dhe = Some(SPDM_DHE_SECP384R1);
            req.structs.aead = Some(SPDM_AEAD_AES_256_GCM);
            req.structs.req_base_asym = Some(0x90);
            req.structs.key_schedule = Some(SPDM_KEY_SCHEDULE_SPDM);
        }
        req
    }

    #[test]
    fn negotiate_algorithms_roundtrip() {
        for v in [V10, V11, V12, V13] {
            let req = sample_request(v);
            let mut out = [0u8; 128];
            let n = encode_negotiate_algorithms(&req, &mut out).unwrap();
            assert_eq!(n, if v >= V11 { 48 } else { 32 });
            let mut got = parse_negotiate_algorithms(&out[..n]).unwrap();
            assert_eq!(got.len, n);
            got.len = 0;
            let mut want = req;
            if v < V12 {
                want.other_params = 0;
            }
            assert_eq!(got, want);
        }
    }

    #[test]
    fn negotiate_algorithms_known_bytes() {
        let req = sample_request(V12);
        let mut out = [0u8; 64];
        let n = encode_negotiate_algorithms(&req, &mut out).unwrap();
        let mut want = vec![0x12, 0xE3, 4, 0, 48, 0, 1, 2, 0x94, 0, 0, 0, 3, 0, 0, 0];
        want.extend_from_slice(&[0; 16]);
        want.extend_from_slice(&[
            2, 0x20, 0x10, 0, 3, 0x20, 2, 0, 4, 0x20, 0x90, 0, 5, 0x20, 1, 0,
        ]);
        assert_eq!(&out[..n], &want[..]);
    }

    #[test]
    fn negotiate_algorithms_errors() {
        let req = sample_request(V12);
        let mut out = [0u8; 160];
        let n = encode_negotiate_algorithms(&req, &mut out).unwrap();
        let good = out[..n].to_vec();
        let mut bad = good.clone();
        bad[4] = 47;
        assert_eq!(
            parse_negotiate_algorithms(&bad),
            Err(SpdmError::InvalidLength)
        );
        let mut bad = good.clone();
        bad[4] = 52;
        bad.extend_from_slice(&[0; 4]);
        assert_eq!(
            parse_negotiate_algorithms(&bad),
            Err(SpdmError::InvalidLength)
        );
        // Tables out of order.
        let mut bad = good.clone();
        bad[32] = 3;
        assert_eq!(
            parse_negotiate_algorithms(&bad),
            Err(SpdmError::InvalidAlgStruct)
        );
        // FixedAlgCount 3.
        let mut bad = good.clone();
        bad[33] = 0x30;
        assert_eq!(
            parse_negotiate_algorithms(&bad),
            Err(SpdmError::InvalidAlgStruct)
        );
        // Unknown AlgType.
        let mut bad = good.clone();
        bad[44] = 6;
        assert_eq!(
            parse_negotiate_algorithms(&bad),
            Err(SpdmError::InvalidAlgStruct)
        );
        // Param1 says 5 tables.
        let mut bad = good.clone();
        bad[2] = 5;
        assert_eq!(
            parse_negotiate_algorithms(&bad),
            Err(SpdmError::InvalidLength)
        );
        // Extended algorithms are skipped and counted.
        let mut ext = good[..32].to_vec();
        ext[2] = 1;
        ext[4] = 32 + 8 + 8;
        ext[28] = 1; // ExtAsymCount
        ext[29] = 1; // ExtHashCount
        ext.extend_from_slice(&[9; 8]);
        ext.extend_from_slice(&[2, 0x21, 0x08, 0, 7, 7, 7, 7]);
        let got = parse_negotiate_algorithms(&ext).unwrap();
        assert_eq!(got.structs.dhe, Some(SPDM_DHE_SECP256R1));
        assert_eq!((got.ext_asym_count, got.ext_hash_count), (1, 1));
        // Too many extended algorithms.
        let mut many = good[..32].to_vec();
        many[2] = 0;
        many[4] = 32 + 84;
        many[28] = 21;
        many.extend_from_slice(&[0; 84]);
        assert_eq!(
            parse_negotiate_algorithms(&many),
            Err(SpdmError::InvalidAlgStruct)
        );
        // 1.0: no tables allowed, and max 64 bytes.
        let mut v10 = good[..32].to_vec();
        v10[0] = SPDM_VERSION_1_0;
        v10[2] = 0;
        v10[4] = 32;
        assert!(parse_negotiate_algorithms(&v10).is_ok());
        v10[2] = 1;
        assert_eq!(
            parse_negotiate_algorithms(&v10),
            Err(SpdmError::InvalidAlgStruct)
        );
        assert_eq!(
            parse_negotiate_algorithms(&good[..31]),
            Err(SpdmError::TooShort)
        );
        let mut padded = good.clone();
        padded.extend_from_slice(&[0, 0, 0]);
        assert!(parse_negotiate_algorithms(&padded).is_ok());
        padded.push(0);
        assert_eq!(
            parse_negotiate_algorithms(&padded),
            Err(SpdmError::TrailingBytes)
        );
    }

    fn sample_response(version: SpdmVersion) -> Algorithms {
        let mut rsp = Algorithms::new(version);
        rsp.base_asym = SPDM_ASYM_ECDSA_P384;
        rsp.base_hash = SPDM_HASH_SHA384;
        if version >= V12 {
            rsp.other_params = SPDM_OPAQUE_DATA_FMT1;
        }
        if version >= V11 {
            rsp.structs.dhe = Some(0);
            rsp.structs.aead = Some(0);
            rsp.structs.req_base_asym = Some(0);
            rsp.structs.key_schedule = Some(0);
        }
        rsp
    }

    #[test]
    fn algorithms_roundtrip_and_check() {
        for v in [V10, V11, V12, V13] {
            let rsp = sample_response(v);
            let mut out = [0u8; 128];
            let n = encode_algorithms(&rsp, &mut out).unwrap();
            assert_eq!(n, if v >= V11 { 52 } else { 36 });
            let got = parse_algorithms(&out[..n], v).unwrap();
            assert_eq!(got.len, n);
            assert_eq!(Algorithms { len: 0, ..got }, rsp);
            assert_eq!(got.hash_size(), Some(48));
            assert_eq!(got.signature_size(), Some(96));
            let req = sample_request(v);
            assert_eq!(got.check_against(&req, true), Ok(()));
            let mut bad = got;
            bad.base_asym = SPDM_ASYM_ECDSA_P521;
            assert_eq!(
                bad.check_against(&req, true),
                Err(SpdmError::AlgorithmNotOffered)
            );
            let mut none = got;
            none.base_hash = 0;
            assert_eq!(
                none.check_against(&req, true),
                Err(SpdmError::NoCommonAlgorithm)
            );
            assert_eq!(none.check_against(&req, false), Ok(()));
            if v >= V11 {
                let mut extra = got;
                extra.structs.dhe = Some(SPDM_DHE_FFDHE2048);
                assert_eq!(
                    extra.check_against(&req, true),
                    Err(SpdmError::AlgorithmNotOffered)
                );
                let mut req2 = req;
                req2.structs.aead = None;
                assert_eq!(
                    got.check_against(&req2, true),
                    Err(SpdmError::InvalidAlgStruct)
                );
            }
        }
    }

    #[test]
    fn algorithms_errors() {
        let rsp = sample_response(V12);
        let mut out = [0u8; 128];
        let n = encode_algorithms(&rsp, &mut out).unwrap();
        let good = out[..n].to_vec();
        let mut two = good.clone();
        two[12] |= 0x10; // BaseAsymSel: P-384 and P-256
        assert_eq!(
            parse_algorithms(&two, V12),
            Err(SpdmError::MultipleAlgorithms)
        );
        let mut two = good.clone();
        two[16] = 3; // BaseHashSel
        assert_eq!(
            parse_algorithms(&two, V12),
            Err(SpdmError::MultipleAlgorithms)
        );
        let mut two = good.clone();
        two[38] = 3; // DHE selection
        assert_eq!(
            parse_algorithms(&two, V12),
            Err(SpdmError::MultipleAlgorithms)
        );
        let mut len = good.clone();
        len[4] = 51;
        assert_eq!(parse_algorithms(&len, V12), Err(SpdmError::InvalidLength));
        let mut ext = good.clone();
        ext[32] = 2;
        assert_eq!(
            parse_algorithms(&ext, V12),
            Err(SpdmError::MultipleAlgorithms)
        );
        assert_eq!(
            parse_algorithms(&good, V13),
            Err(SpdmError::UnexpectedVersion)
        );
        assert_eq!(parse_algorithms(&good[..35], V12), Err(SpdmError::TooShort));
        assert_eq!(
            parse_algorithms(&good[..40], V12),
            Err(SpdmError::InvalidLength)
        );
    }

    #[test]
    fn algorithm_helpers() {
        assert_eq!(hash_size(SPDM_HASH_SHA256), Some(32));
        assert_eq!(hash_size(SPDM_HASH_SHA512), Some(64));
        assert_eq!(hash_size(SPDM_HASH_SHA256 | SPDM_HASH_SHA384), None);
        assert_eq!(hash_size(0), None);
        assert_eq!(signature_size(SPDM_ASYM_RSAPSS_3072), Some(384));
        assert_eq!(signature_size(SPDM_ASYM_ECDSA_P521), Some(132));
        assert_eq!(signature_size(1 << 20), None);
        assert_eq!(measurement_hash_size(SPDM_MEAS_HASH_RAW), Some(0));
        assert_eq!(
            strongest_asym(SPDM_ASYM_ECDSA_P256 | SPDM_ASYM_RSASSA_3072),
            Some(SPDM_ASYM_ECDSA_P256)
        );
        assert_eq!(
            strongest_asym(SPDM_ASYM_RSASSA_4096 | SPDM_ASYM_RSAPSS_4096 | SPDM_ASYM_ECDSA_P256),
            Some(SPDM_ASYM_RSAPSS_4096)
        );
        assert_eq!(strongest_asym(SPDM_ASYM_EDDSA_ED25519), None);
        assert_eq!(strongest_hash(0x7), Some(SPDM_HASH_SHA512));
        assert_eq!(strongest_hash(0), None);
        for bit in SPDM_ASYM_PREFERENCE {
            assert!(signature_size(bit).is_some());
            assert_ne!(asym_name(bit), "unknown");
        }
        for bit in SPDM_HASH_PREFERENCE {
            assert!(hash_size(bit).is_some());
            assert_ne!(hash_name(bit), "unknown");
        }
    }

    #[test]
    fn digests_roundtrip() {
        let d0 = [0xAA; 48];
        let d3 = [0xBB; 48];
        let mut out = [0u8; 128];
        let n = encode_digests(V13, 0x0F, 0x09, &[&d0, &d3], 48, &mut out).unwrap();
        assert_eq!(n, 4 + 96);
        assert_eq!(&out[..4], &[0x13, 0x01, 0x0F, 0x09]);
        let d = parse_digests(&out[..n], V13, 48).unwrap();
        assert_eq!(d.len, n);
        assert_eq!(d.supported_slot_mask, 0x0F);
        assert_eq!(d.digest(0), Some(&d0[..]));
        assert_eq!(d.digest(3), Some(&d3[..]));
        assert_eq!(d.digest(1), None);
        assert_eq!(d.first_slot(), Some(0));
        assert_eq!(d.iter().count(), 2);
        assert_eq!(
            parse_digests(&out[..n - 1], V13, 48),
            Err(SpdmError::Truncated)
        );
        let mut bad = out;
        bad[2] = 0x01; // provisioned not a subset of supported
        assert_eq!(
            parse_digests(&bad[..n], V13, 48),
            Err(SpdmError::InvalidSlot)
        );
        // Before 1.3, Param1 is reserved.
        let n = encode_digests(V12, 0x0F, 0x02, &[&d0], 48, &mut out).unwrap();
        assert_eq!(&out[..4], &[0x12, 0x01, 0x00, 0x02]);
        assert_eq!(
            parse_digests(&out[..n], V12, 48).unwrap().first_slot(),
            Some(1)
        );
        assert_eq!(
            encode_digests(V12, 0, 0x03, &[&d0], 48, &mut out),
            Err(SpdmError::Mismatch)
        );
        assert_eq!(
            parse_digests(&out[..n], V12, 0),
            Err(SpdmError::UnsupportedAlgorithm)
        );
        let n = encode_get_digests(V12, &mut out).unwrap();
        assert_eq!(&out[..n], &[0x12, 0x81, 0, 0]);
        assert!(parse_get_digests(&out[..n]).is_ok());
        assert_eq!(lowest_slot(0), None);
        assert_eq!(lowest_slot(0x80), Some(7));
    }

    #[test]
    fn certificate_roundtrip() {
        let req = GetCertificate {
            version: V13,
            slot: 2,
            attributes: 0,
            offset: 0x100,
            length: 0x200,
        };
        let mut out = [0u8; 64];
        let n = encode_get_certificate(&req, &mut out).unwrap();
        assert_eq!(&out[..n], &[0x13, 0x82, 2, 0, 0, 1, 0, 2]);
        assert_eq!(parse_get_certificate(&out[..n]), Ok(req));
        let mut bad = out;
        bad[2] = 8;
        assert_eq!(
            parse_get_certificate(&bad[..n]),
            Err(SpdmError::InvalidSlot)
        );
        assert_eq!(
            encode_get_certificate(&GetCertificate { slot: 8, ..req }, &mut out),
            Err(SpdmError::InvalidSlot)
        );

        let portion = [1, 2, 3, 4, 5];
        let n = encode_certificate(V13, 2, 1, &portion, 100, &mut out).unwrap();
        assert_eq!(&out[..n], &[0x13, 0x02, 2, 1, 5, 0, 100, 0, 1, 2, 3, 4, 5]);
        let c = parse_certificate(&out[..n], V13).unwrap();
        assert_eq!(
            (c.slot, c.cert_info, c.portion, c.remainder_length),
            (2, 1, &portion[..], 100)
        );
        assert_eq!(c.len, n);
        assert_eq!(c.check(&req), Ok(()));
        assert_eq!(
            c.check(&GetCertificate { slot: 1, ..req }),
            Err(SpdmError::Mismatch)
        );
        assert_eq!(
            c.check(&GetCertificate { length: 4, ..req }),
            Err(SpdmError::Mismatch)
        );
        assert_eq!(
            c.check(&GetCertificate {
                offset: 0xFFF0,
                ..req
            }),
            Err(SpdmError::InvalidLength)
        );
        assert_eq!(
            parse_certificate(&out[..n - 1], V13),
            Err(SpdmError::Truncated)
        );
        assert_eq!(parse_certificate(&out[..7], V13), Err(SpdmError::TooShort));
        // Size-only answer for a 1.3 SlotSizeRequested request.
        let n = encode_certificate(V13, 2, 0, &[], 1000, &mut out).unwrap();
        let c = parse_certificate(&out[..n], V13).unwrap();
        assert_eq!(c.check(&req), Err(SpdmError::Mismatch));
        let size_req = GetCertificate {
            attributes: SPDM_GET_CERTIFICATE_SLOT_SIZE_REQUESTED,
            ..req
        };
        assert_eq!(c.check(&size_req), Ok(()));
    }

    /// A tiny chain: header, 32-byte root hash, two fake certificates.
    fn chain_bytes() -> Vec<u8> {
        let c1 = [0x30, 0x03, 1, 2, 3];
        let mut c2 = vec![0x30, 0x81, 0x80];
        c2.extend_from_slice(&[7; 0x80]);
        let mut out = vec![0u8; 4 + 32];
        let n = encode_cert_chain_header(&[0xCC; 32], c1.len() + c2.len(), &mut out).unwrap();
        assert_eq!(n, 36);
        out.extend_from_slice(&c1);
        out.extend_from_slice(&c2);
        out
    }

    #[test]
    fn cert_chain_parse() {
        let bytes = chain_bytes();
        assert_eq!(&bytes[..2], &(bytes.len() as u16).to_le_bytes());
        let chain = parse_cert_chain(&bytes, 32).unwrap();
        assert_eq!(chain.root_hash, &[0xCC; 32]);
        assert_eq!(chain.count(), 2);
        assert_eq!(chain.first(), Some(&[0x30, 0x03, 1, 2, 3][..]));
        assert_eq!(chain.leaf().unwrap().len(), 3 + 0x80);
        assert_eq!(parse_cert_chain(&bytes, 48), Err(SpdmError::BadDer));
        assert_eq!(
            parse_cert_chain(&bytes[..bytes.len() - 1], 32),
            Err(SpdmError::BadCertChain)
        );
        let mut bad = bytes.clone();
        bad[36] = 0x31;
        assert_eq!(parse_cert_chain(&bad, 32), Err(SpdmError::BadDer));
        let mut only_header = vec![0u8; 36];
        only_header[0] = 36;
        assert_eq!(
            parse_cert_chain(&only_header, 32),
            Err(SpdmError::BadCertChain)
        );
        assert_eq!(parse_cert_chain(&[], 32), Err(SpdmError::BadCertChain));
    }

    #[test]
    fn der_lengths() {
        assert_eq!(der_sequence_size(&[0x30, 0]), Ok(2));
        assert_eq!(der_sequence_size(&[0x30, 1, 0]), Ok(3));
        assert_eq!(der_sequence_size(&[0x30, 1]), Err(SpdmError::BadDer));
        assert_eq!(der_sequence_size(&[0x30, 0x80]), Err(SpdmError::BadDer)); // indefinite
        assert_eq!(
            der_sequence_size(&[0x30, 0x81, 0x7F]),
            Err(SpdmError::BadDer)
        ); // not minimal
        assert_eq!(
            der_sequence_size(&[0x30, 0x82, 0x00, 0x80]),
            Err(SpdmError::BadDer)
        );
        assert_eq!(
            der_sequence_size(&[0x30, 0x85, 1, 0, 0, 0, 0]),
            Err(SpdmError::BadDer)
        );
        assert_eq!(
            der_sequence_size(&[0x30, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]),
            Err(SpdmError::BadDer)
        );
        let mut big = vec![0x30, 0x82, 0x01, 0x00];
        big.extend_from_slice(&[0; 0x100]);
        assert_eq!(der_sequence_size(&big), Ok(0x104));
        big.push(0x30);
        let mut it = DerCertificates::new(&big);
        assert_eq!(it.next().unwrap().unwrap().len(), 0x104);
        assert_eq!(it.next(), Some(Err(SpdmError::BadDer)));
        assert_eq!(it.next(), None);
        assert_eq!(der_sequence_size(&[]), Err(SpdmError::BadDer));
        assert_eq!(der_sequence_size(&[0x02, 0]), Err(SpdmError::BadDer));
    }

    fn sample_challenge(version: SpdmVersion) -> Challenge {
        Challenge {
            version,
            slot: 1,
            meas_summary_type: SPDM_MEAS_SUMMARY_NONE,
            nonce: [0x11; 32],
            requester_context: if version >= V13 { [0x22; 8] } else { [0; 8] },
        }
    }

    #[test]
    fn challenge_roundtrip() {
        for v in [V10, V11, V12, V13] {
            let req = sample_challenge(v);
            let mut out = [0u8; 64];
            let n = encode_challenge(&req, &mut out).unwrap();
            assert_eq!(n, req.size());
            assert_eq!(&out[..4], &[v.as_byte(), 0x83, 1, 0]);
            assert_eq!(parse_challenge(&out[..n]), Ok(req));
            assert_eq!(parse_challenge(&out[..n - 1]), Err(SpdmError::TooShort));
        }
        let mut out = [0u8; 64];
        let bad = Challenge {
            slot: 9,
            ..sample_challenge(V12)
        };
        assert_eq!(
            encode_challenge(&bad, &mut out),
            Err(SpdmError::InvalidSlot)
        );
        let bad = Challenge {
            meas_summary_type: 2,
            ..sample_challenge(V12)
        };
        assert_eq!(
            encode_challenge(&bad, &mut out),
            Err(SpdmError::InvalidField)
        );
        let pk = Challenge {
            slot: SPDM_SLOT_PUBLIC_KEY,
            ..sample_challenge(V12)
        };
        assert!(encode_challenge(&pk, &mut out).is_ok());
    }

    #[test]
    fn challenge_auth_roundtrip() {
        for v in [V10, V11, V12, V13] {
            for meas in [false, true] {
                let req = sample_challenge(v);
                let chain_hash = [0x33; 48];
                let summary = [0x44; 48];
                let nonce = [0x55; 32];
                let opaque = [0x66; 10];
                let body = ChallengeAuthBody {
                    version: v,
                    attributes: 1,
                    slot_mask: 0x03,
                    cert_chain_hash: &chain_hash,
                    nonce: &nonce,
                    measurement_summary_hash: if meas { &summary } else { &[] },
                    opaque: &opaque,
                    requester_context: &req.requester_context,
                };
                let sig = [0x77; 96];
                let mut out = [0u8; 512];
                let n = encode_challenge_auth(&body, &sig, &mut out).unwrap();
                let params = ChallengeAuthParams {
                    version: v,
                    hash_size: 48,
                    signature_size: 96,
                    measurement_summary: meas,
                };
                let rsp = parse_challenge_auth(&out[..n], &params).unwrap();
                assert_eq!(rsp.len, n);
                assert_eq!(rsp.signature_offset, n - 96);
                assert_eq!(
                    encode_challenge_auth_body(&body, &mut [0u8; 512]).unwrap(),
                    rsp.signature_offset
                );
                assert_eq!(rsp.cert_chain_hash, &chain_hash);
                assert_eq!(rsp.nonce, &nonce);
                assert_eq!(
                    rsp.measurement_summary_hash.len(),
                    if meas { 48 } else { 0 }
                );
                assert_eq!(rsp.opaque, &opaque);
                assert_eq!(rsp.requester_context.len(), if v >= V13 { 8 } else { 0 });
                assert_eq!(rsp.signature, &sig);
                assert_eq!(rsp.check(&req), Ok(()));
                assert_eq!(
                    rsp.check(&Challenge { slot: 0, ..req }),
                    Err(SpdmError::Mismatch)
                );
                if v >= V13 {
                    let other = Challenge {
                        requester_context: [9; 8],
                        ..req
                    };
                    assert_eq!(rsp.check(&other), Err(SpdmError::Mismatch));
                }
                assert_eq!(
                    parse_challenge_auth(&out[..n - 1], &params),
                    Err(SpdmError::Truncated)
                );
                let mut longer = out[..n].to_vec();
                longer.extend_from_slice(&[0, 0, 0]);
                assert!(parse_challenge_auth(&longer, &params).is_ok());
                longer.push(0);
                assert_eq!(
                    parse_challenge_auth(&longer, &params),
                    Err(SpdmError::TrailingBytes)
                );
            }
        }
    }

    #[test]
    fn challenge_auth_opaque_limit() {
        let mut msg = vec![0x12, 0x03, 0, 1];
        msg.extend_from_slice(&[0; 32 + 32]);
        msg.extend_from_slice(&1025u16.to_le_bytes());
        msg.extend_from_slice(&[0; 1025 + 64]);
        let params = ChallengeAuthParams {
            version: V12,
            hash_size: 32,
            signature_size: 64,
            measurement_summary: false,
        };
        assert_eq!(
            parse_challenge_auth(&msg, &params),
            Err(SpdmError::InvalidField)
        );
        let zero = ChallengeAuthParams {
            signature_size: 0,
            ..params
        };
        assert_eq!(
            parse_challenge_auth(&msg, &zero),
            Err(SpdmError::UnsupportedAlgorithm)
        );
    }

    #[test]
    fn signing_prefix_known_answer() {
        let mut out = [0xEEu8; 100];
        assert_eq!(
            signing_prefix(V12, SPDM_CHALLENGE_AUTH_SIGN_CONTEXT, &mut out),
            Ok(100)
        );
        let mut want = Vec::new();
        for _ in 0..4 {
            want.extend_from_slice(b"dmtf-spdm-v1.2.*");
        }
        want.extend_from_slice(&[0; 4]);
        want.extend_from_slice(b"responder-challenge_auth signing");
        assert_eq!(&out[..], &want[..]);
        assert_eq!(
            signing_prefix(V13, SPDM_MEASUREMENTS_SIGN_CONTEXT, &mut out),
            Ok(100)
        );
        assert_eq!(&out[..16], b"dmtf-spdm-v1.3.*");
        assert_eq!(&out[64..70], &[0; 6]);
        assert_eq!(&out[70..], b"responder-measurements signing");
        assert_eq!(
            signing_prefix(V11, SPDM_CHALLENGE_AUTH_SIGN_CONTEXT, &mut out),
            Err(SpdmError::UnexpectedVersion)
        );
        assert_eq!(
            signing_prefix(V12, &"x".repeat(37), &mut out),
            Err(SpdmError::InvalidField)
        );
        assert_eq!(signing_prefix(V12, &"x".repeat(36), &mut out), Ok(100));
        assert_eq!(
            signing_prefix(V12, "", &mut [0u8; 99]),
            Err(SpdmError::BufferTooSmall)
        );
        let mut msg = [0u8; 164];
        let n =
            signed_message(V12, SPDM_CHALLENGE_AUTH_SIGN_CONTEXT, &[0xAB; 64], &mut msg).unwrap();
        assert_eq!(n, 164);
        assert_eq!(&msg[100..], &[0xAB; 64]);
        let n =
            signed_message(V11, SPDM_CHALLENGE_AUTH_SIGN_CONTEXT, &[0xAB; 32], &mut msg).unwrap();
        assert_eq!(n, 32);
    }

    #[test]
    fn vca_buffer() {
        let mut vca = VcaBuffer::new();
        vca.update(&[SPDM_VERSION_1_0, 0x84, 0, 0]);
        vca.update(&[0x12]);
        assert_eq!(vca.bytes(), Ok(&[0x10, 0x84, 0, 0, 0x12][..]));
        struct Collect(Vec<u8>);
        impl TranscriptSink for Collect {
            fn update(&mut self, bytes: &[u8]) {
                self.0.extend_from_slice(bytes);
            }
        }
        let mut c = Collect(Vec::new());
        vca.replay(&mut c).unwrap();
        assert_eq!(c.0.len(), 5);
        vca.update(&[0; SPDM_VCA_MAX_SIZE]);
        assert_eq!(vca.bytes(), Err(SpdmError::BufferTooSmall));
        assert_eq!(vca.replay(&mut c), Err(SpdmError::BufferTooSmall));
        vca.clear();
        vca.update(&[0; SPDM_VCA_MAX_SIZE]);
        assert_eq!(vca.bytes().unwrap().len(), SPDM_VCA_MAX_SIZE);
        assert!(format!("{vca:?}").contains("len: 1024"));
    }
}
