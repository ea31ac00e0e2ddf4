//! The emulated endpoint's DOE/SPDM responder: maps one request DOE object to one reply.
//!
//! A real SPDM 1.0-1.3 responder for the authentication flow (GET_VERSION, GET_CAPABILITIES,
//! NEGOTIATE_ALGORITHMS, GET_DIGESTS, GET_CERTIFICATE, CHALLENGE, RESPOND_IF_READY) and device
//! measurements (GET_MEASUREMENTS), built on the project's codec (`coco_spdm`), with fault
//! injection ([`Fault`]).
//!
//! Protocol state follows DSP0274: GET_VERSION (always accepted) resets the connection;
//! GET_CAPABILITIES must follow VERSION, NEGOTIATE_ALGORITHMS must follow CAPABILITIES, and
//! GET_DIGESTS, GET_CERTIFICATE and CHALLENGE need negotiated algorithms; anything out of order
//! gets ERROR UnexpectedRequest. After GET_CAPABILITIES every request must carry the negotiated
//! version (else ERROR VersionMismatch). An ERROR carries the negotiated version; before
//! GET_CAPABILITIES succeeded, the version of the request if the endpoint offers it, else (and
//! for GET_VERSION) 1.0. The responder keeps the transcript (VCA, then
//! GET_DIGESTS/GET_CERTIFICATE exchanges, then CHALLENGE) and signs CHALLENGE_AUTH over it, with
//! the 1.2+ signing prefix; after a CHALLENGE the digest/certificate part starts afresh.
//!
//! Measurements: with an identity and a [`MeasConfig`], CAPABILITIES announce MEAS_CAP = 2
//! (signed; 1 with fault `no-meas-sig`) and MEAS_FRESH_CAP, and ALGORITHMS select the DMTF
//! measurement specification (if offered) and a MeasurementHashAlgo equal to the selected
//! BaseHashAlgo. The responder keeps L1/L2: every GET_MEASUREMENTS / MEASUREMENTS pair since
//! the last signed MEASUREMENTS; a signed response is signed over VCA || L1/L2 (1.2+; L1/L2
//! alone for 1.0 and 1.1) with the 1.2+ prefix and context "responder-measurements signing",
//! with the leaf key of the requested slot, and empties L1/L2. Any other request (GET_VERSION
//! included, RESPOND_IF_READY excepted) also empties it, and so does any ERROR answer. For a
//! signed 1.2+ response Param2 reports
//! the content-changed field: changed if the firmware update switch flipped since the first
//! GET_MEASUREMENTS of the current L1/L2, else unchanged.
//!
//! Measurement summary: CHALLENGE and KEY_EXCHANGE with MeasurementSummaryHashType 0xFF (all)
//! or 1 (TCB) get the MeasurementSummaryHash (H bytes) in CHALLENGE_AUTH / KEY_EXCHANGE_RSP:
//! the negotiated hash of the concatenated measurement blocks (Index, MeasurementSpecification,
//! MeasurementSize, Measurement) as a non-raw GET_MEASUREMENTS for all blocks would return them
//! at that moment; TCB takes only the immutable ROM blocks (value type 0), as libspdm does.
//! Without MEAS_CAP (no measurements) the request gets ERROR InvalidRequest.
//!
//! Secure sessions (SPDM 1.1+, with an identity): CAPABILITIES add KEY_EX_CAP, ENCRYPT_CAP,
//! MAC_CAP, HBEAT_CAP and KEY_UPD_CAP, and HANDSHAKE_IN_THE_CLEAR_CAP only when configured
//! ([`SessionOptions::handshake_in_clear`], `--handshake-in-clear`). When the requester sets
//! KEY_EX_CAP too, ALGORITHMS select a DHE group of [`SessionOptions::dhe`] (preference
//! [`crate::crypto::DHE_PREFERENCE`]: secp521r1 > secp384r1 > secp256r1), an AEAD of
//! [`SessionOptions::aead`] when it also sets ENCRYPT_CAP or MAC_CAP
//! ([`crate::crypto::AEAD_PREFERENCE`]: AES-256-GCM > ChaCha20-Poly1305 > AES-128-GCM) and the
//! SPDM key schedule; nothing in common (or, 1.2+, no opaque data format 1) is ERROR
//! InvalidRequest, as in libspdm. Without the requester's KEY_EX_CAP none is selected (the
//! requester can still authenticate and read measurements). KEY_EXCHANGE (in the clear, DOE
//! type 1) needs the requester's KEY_EX_CAP, ENCRYPT_CAP and MAC_CAP (else ERROR
//! UnexpectedRequest) and a secured-message version list containing 1.0 or 1.1 in the opaque
//! data format of the version (1.1: DSP0277 1.0's, SpecID "DMTF"; 1.2+: format 1); the answer
//! carries HeartbeatPeriod ([`SessionOptions::heartbeat_period`]) in Param1 and is signed with
//! the slot's leaf key over VCA || Hash(chain) || KEY_EXCHANGE || KEY_EXCHANGE_RSP (1.2+: with
//! the signing prefix; 1.1: the transcript hash itself). FINISH, HEARTBEAT, KEY_UPDATE and
//! END_SESSION outside a session (in a CMA object; FINISH in the clear for a session whose
//! handshake is encrypted included) get ERROR SessionRequired (UnexpectedRequest at 1.1, which
//! has no SessionRequired).
//!
//! The handshake is encrypted unless both sides set HANDSHAKE_IN_THE_CLEAR_CAP. Encrypted:
//! KEY_EXCHANGE_RSP carries ResponderVerifyData = HMAC(response finished key, TH1), and FINISH
//! comes as a secured message with the handshake keys; FINISH_RSP (no verify data) is sent
//! with them too. In the clear (DSP0274 1.2/1.3): KEY_EXCHANGE_RSP has no ResponderVerifyData
//! (TH1 ends with its signature), FINISH and FINISH_RSP are CMA objects (DOE type 1), and
//! FINISH_RSP carries ResponderVerifyData = HMAC(response finished key, Hash(transcript through
//! FINISH and the FINISH_RSP header)). The finished keys come from the handshake secrets
//! (TH1) in both modes; RequesterVerifyData covers the transcript through the FINISH header,
//! and TH2 (application secrets) everything through the whole FINISH_RSP. A FINISH in the
//! clear for an encrypted handshake gets ERROR SessionRequired (see above); a secured FINISH,
//! or any secured message before FINISH, when the handshake is in the clear gets ERROR
//! UnexpectedRequest (answered in the clear, the
//! session is kept); a RequesterVerifyData that does not verify gets ERROR DecryptError and
//! ends the session.
//!
//! After FINISH, everything of the session travels in DOE type 2 objects (PCI DOE binding: no
//! sequence number field, no random padding): HEARTBEAT, KEY_UPDATE (UpdateKey /
//! UpdateAllKeys, then VerifyNewKey; UpdateAllKeys is acknowledged with the new response key),
//! END_SESSION, and any other request the endpoint serves (GET_MEASUREMENTS is the application
//! message; also GET_DIGESTS, GET_CERTIFICATE, ...), answered inside the session. A record that
//! does not decrypt ends the session with ERROR DecryptError in the clear. GET_VERSION ends the
//! session; one session at a time (a new KEY_EXCHANGE replaces it).
//!
//! Heartbeat: with a HeartbeatPeriod P > 0, a session that receives no request (a secured
//! message that decrypts, or FINISH in the clear) for more than 2 × P seconds since the last
//! one (or since KEY_EXCHANGE_RSP) is terminated, lazily: the next DOE object that arrives
//! finds it expired and drops it first. A secured message for it then gets what any secured
//! message without a session gets: ERROR InvalidRequest in a CMA object (DOE type 1). P = 0:
//! sessions never expire. The clock can be advanced for tests ([`Responder::advance_clock`]).
//!
//! TEE-IO: VENDOR_DEFINED_REQUEST (PCI-SIG IDE_KM and TDISP) is served only inside an
//! established session, by [`crate::platform::TeeIo`]; in a CMA object it gets ERROR
//! SessionRequired (UnexpectedRequest at 1.1).

use std::sync::Arc;
use std::time::{Duration, Instant};

use coco_doe::{
    decode_discovery_request, decode_object, encode_discovery_response, encode_object, object_size,
    DiscoveryResponse, DOE_HEADER_SIZE, DOE_TYPE_CMA, DOE_TYPE_DISCOVERY, DOE_TYPE_SECURED_CMA,
    PCI_SIG_VENDOR_ID,
};
use coco_spdm::auth::{
    asym_name, capabilities_size, challenge_size, encode_algorithms, encode_capabilities,
    encode_certificate, encode_challenge_auth, encode_challenge_auth_body, encode_digests,
    get_capabilities_size, hash_name, parse_challenge, parse_get_capabilities,
    parse_get_certificate, parse_get_digests, parse_negotiate_algorithms, signature_size,
    signed_message, strongest_asym, strongest_hash, AlgStructs, Algorithms, Capabilities,
    ChallengeAuthBody, SPDM_CAP_CERT, SPDM_CAP_CHAL, SPDM_CERTIFICATE_FIXED_SIZE,
    SPDM_CHALLENGE_AUTH_SIGN_CONTEXT, SPDM_GET_CERTIFICATE_SLOT_SIZE_REQUESTED,
    SPDM_MEAS_SUMMARY_ALL, SPDM_MEAS_SUMMARY_NONE, SPDM_MEAS_SUMMARY_TCB, SPDM_OPAQUE_DATA_FMT1,
};
use coco_spdm::auth::{
    SPDM_CAP_ENCRYPT, SPDM_CAP_HANDSHAKE_IN_THE_CLEAR, SPDM_CAP_HBEAT, SPDM_CAP_KEY_EX,
    SPDM_CAP_KEY_UPD, SPDM_CAP_MAC, SPDM_KEY_EXCHANGE_RSP_SIGN_CONTEXT, SPDM_KEY_SCHEDULE_SPDM,
};
use coco_spdm::auth::{
    SPDM_CAP_MEAS_FRESH, SPDM_CAP_MEAS_NO_SIG, SPDM_CAP_MEAS_SIG, SPDM_HASH_SHA256,
    SPDM_HASH_SHA384, SPDM_HASH_SHA512, SPDM_MEAS_HASH_RAW, SPDM_MEAS_HASH_SHA256,
    SPDM_MEAS_HASH_SHA384, SPDM_MEAS_HASH_SHA512, SPDM_MEAS_SPEC_DMTF, SPDM_SLOT_PUBLIC_KEY,
};
use coco_spdm::meas::{
    encode_measurement_block, encode_measurements_body, measurements_signed_message,
    parse_get_measurements, MeasurementsBody, SPDM_MEAS_ATTR_RAW_BIT_STREAM,
    SPDM_MEAS_CONTENT_CHANGED, SPDM_MEAS_CONTENT_UNCHANGED, SPDM_MEAS_OP_ALL, SPDM_MEAS_OP_TOTAL,
    SPDM_MEAS_SLOT_MASK, SPDM_MEAS_TYPE_IMMUTABLE_ROM, SPDM_MEAS_VALUE_TYPE_MASK,
};
use coco_spdm::session::{
    dhe_exchange_size, encode_end_session_ack, encode_finish_rsp, encode_heartbeat_ack,
    encode_key_exchange_rsp, encode_key_exchange_rsp_body, encode_key_update_ack, encode_record,
    encode_sm_version_selection_for, open_record, parse_end_session, parse_finish, parse_heartbeat,
    parse_key_exchange, parse_key_update, parse_record_header, parse_sm_versions_for,
    select_sm_version, session_id, strongest_u16, KeyExchangeRspBody, KeySchedule, RecordParams,
    Secret, SmVersions, SPDM_KEY_UPDATE_OP_UPDATE_ALL_KEYS, SPDM_KEY_UPDATE_OP_UPDATE_KEY,
    SPDM_KEY_UPDATE_OP_VERIFY_NEW_KEY, SPDM_PCI_DOE_SEQ_NUM_SIZE, SPDM_SECURED_VERSION_1_0,
    SPDM_SECURED_VERSION_1_1,
};
use coco_spdm::{
    code_name, encode_error_response, encode_response_not_ready, encode_version_response,
    error_code_name, parse_get_version, parse_respond_if_ready, ResponseNotReady, SpdmHeader,
    SpdmVersion, VersionEntry, SPDM_CHALLENGE, SPDM_ERROR_BUSY, SPDM_ERROR_INVALID_REQUEST,
    SPDM_ERROR_UNEXPECTED_REQUEST, SPDM_ERROR_UNSPECIFIED, SPDM_ERROR_UNSUPPORTED_REQUEST,
    SPDM_ERROR_VERSION_MISMATCH, SPDM_GET_CAPABILITIES, SPDM_GET_CERTIFICATE, SPDM_GET_DIGESTS,
    SPDM_GET_MEASUREMENTS, SPDM_GET_VERSION, SPDM_NEGOTIATE_ALGORITHMS, SPDM_RESPOND_IF_READY,
    SPDM_VERSION_1_0, SPDM_VERSION_RESPONSE_MAX_SIZE,
};
use coco_spdm::{
    SPDM_END_SESSION, SPDM_ERROR_DECRYPT_ERROR, SPDM_ERROR_SESSION_REQUIRED, SPDM_FINISH,
    SPDM_HEARTBEAT, SPDM_KEY_EXCHANGE, SPDM_KEY_UPDATE, SPDM_VENDOR_DEFINED_REQUEST,
};
use rand::RngExt;

use crate::crypto::{
    alg_names, key_schedule, Direction, Ecdhe, RustHmac, AEAD_NAMES, AEAD_PREFERENCE, DEFAULT_AEAD,
    DEFAULT_DHE, DHE_NAMES, DHE_PREFERENCE, SUPPORTED_AEAD, SUPPORTED_DHE,
};
use crate::measurements::MeasConfig;
use crate::pki::{spdm_hash, Identity, SUPPORTED_HASHES};
use crate::platform::TeeIo;
use crate::socket::QEMU_MAX_RESPONSE_SIZE;
use crate::Fault;

/// CTExponent announced in CAPABILITIES: 2^20 us (about 1 s), within CMA's 2^23 us limit.
pub const CT_EXPONENT: u8 = 20;

/// DataTransferSize and MaxSPDMmsgSize announced in CAPABILITIES (1.2+): the largest SPDM
/// message that fits QEMU's 4608-byte reply with its 8-byte DOE header. No CHUNK_CAP.
pub const DATA_TRANSFER_SIZE: u32 = (QEMU_MAX_RESPONSE_SIZE - DOE_HEADER_SIZE) as u32;

/// RDTExponent of ResponseNotReady (fault `not-ready`): 2^14 us = 16 ms.
pub const RDT_EXPONENT: u8 = 14;

/// RDTExponent of ResponseNotReady for IDE_KM (fault `slow-idekm`): 2^18 us = 262 ms, so that
/// a native IDE connect takes seconds while the host keeps running.
pub const SLOW_RDT_EXPONENT: u8 = 18;

/// RDTM of ResponseNotReady (fault `not-ready`).
pub const RDTM: u8 = 2;

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply DOE object, or `None` if the endpoint must not answer (fault `no-answer`).
    /// When present it is always a well-formed DOE object of at most
    /// [`QEMU_MAX_RESPONSE_SIZE`] bytes.
    pub object: Option<Vec<u8>>,
    /// Log lines describing what was received and answered.
    pub log: Vec<String>,
}

/// Where the connection is in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum State {
    /// Nothing yet (or the last GET_VERSION failed).
    Start,
    /// VERSION sent.
    Version,
    /// CAPABILITIES sent.
    Capabilities,
    /// ALGORITHMS sent: authentication requests are allowed.
    Negotiated,
}

/// Secure-session options of an endpoint (the command line's `--heartbeat-period`,
/// `--handshake-in-clear`, `--dhe` and `--aead`, the same for every endpoint of the process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOptions {
    /// HeartbeatPeriod in seconds, sent in KEY_EXCHANGE_RSP Param1. A session that receives no
    /// request for more than twice this long is terminated; 0: no heartbeat, never expires.
    pub heartbeat_period: u8,
    /// Announce HANDSHAKE_IN_THE_CLEAR_CAP: the handshake (KEY_EXCHANGE_RSP without
    /// ResponderVerifyData, FINISH / FINISH_RSP in the clear) is in the clear with a requester
    /// that sets it too, encrypted otherwise.
    pub handshake_in_clear: bool,
    /// The DHE groups the endpoint supports (`SPDM_DHE_*` bits, within
    /// [`crate::crypto::SUPPORTED_DHE`]; default [`crate::crypto::DEFAULT_DHE`]).
    pub dhe: u16,
    /// The AEADs the endpoint supports (`SPDM_AEAD_*` bits, within
    /// [`crate::crypto::SUPPORTED_AEAD`]; default all three).
    pub aead: u16,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            heartbeat_period: 0,
            handshake_in_clear: false,
            dhe: DEFAULT_DHE,
            aead: DEFAULT_AEAD,
        }
    }
}

/// A response held back by ResponseNotReady.
#[derive(Debug, Clone)]
struct Pending {
    request_code: u8,
    token: u8,
    response: Vec<u8>,
}

/// One endpoint's SPDM responder state. Create a new one per connection.
#[derive(Debug, Clone)]
pub struct Responder {
    versions: Vec<VersionEntry>,
    fault: Fault,
    identity: Option<Arc<Identity>>,
    state: State,
    /// The version of the connection, from GET_CAPABILITIES on; ERRORs use it.
    negotiated: Option<SpdmVersion>,
    /// The SPDMVersion of the request being answered, if the endpoint offers it (not for
    /// GET_VERSION): ERRORs carry it until a version is negotiated.
    request_version: Option<SpdmVersion>,
    requester_caps: Capabilities,
    asym: u32,
    hash: u32,
    /// SPDM certificate chains for the negotiated hash, per slot.
    chains: Vec<(u8, Vec<u8>)>,
    /// VCA, then the GET_DIGESTS/GET_CERTIFICATE exchanges since the VCA or the last CHALLENGE.
    transcript: Vec<u8>,
    vca_len: usize,
    pending: Option<Pending>,
    next_token: u8,
    /// Fault busy:N: the request being refused and how often it was.
    busy: (Vec<u8>, u32),
    requests: u64,
    rng: u64,
    /// Measurement blocks (with an identity: GET_MEASUREMENTS is served).
    measurements: Option<Arc<MeasConfig>>,
    /// MeasurementSpecificationSel (0 if DMTF was not offered).
    meas_spec: u8,
    /// L1/L2 without the VCA: GET_MEASUREMENTS / MEASUREMENTS since the last signed one.
    meas_l: Vec<u8>,
    /// Whether the firmware update was active at the first GET_MEASUREMENTS of `meas_l`.
    meas_l_updated: Option<bool>,
    /// Selected DHE group, AEAD and key schedule (0: none).
    dhe: u16,
    aead: u16,
    key_schedule: u16,
    /// The secure session (one at a time).
    session: Option<Session>,
    /// RspSessionID of the next session.
    next_rsp_session_id: u16,
    /// HeartbeatPeriod and HANDSHAKE_IN_THE_CLEAR_CAP.
    session_options: SessionOptions,
    /// Added to the real clock ([`Responder::advance_clock`], for tests).
    clock_skew: Duration,
    /// The TEE-IO device: IDE keys, TDI, platform state (IDE_KM and TDISP in the session).
    tee: TeeIo,
}

/// Secured message versions the endpoint accepts (DSP0277 1.0 and 1.1).
pub const SECURED_VERSIONS: [u16; 2] = [SPDM_SECURED_VERSION_1_0, SPDM_SECURED_VERSION_1_1];

/// A secure session: its keys and transcript.
struct Session {
    id: u32,
    version: SpdmVersion,
    hash: u32,
    aead: u16,
    established: bool,
    /// Both sides set HANDSHAKE_IN_THE_CLEAR_CAP: FINISH / FINISH_RSP travel in the clear.
    handshake_in_clear: bool,
    /// HeartbeatPeriod sent in KEY_EXCHANGE_RSP (seconds; 0: never expires).
    heartbeat_period: u8,
    /// When the last request of the session was accepted (KEY_EXCHANGE at first).
    last_request: Instant,
    ks: KeySchedule<RustHmac>,
    handshake_secret: Secret,
    req_finished: Secret,
    /// Response finished key (ResponderVerifyData of FINISH_RSP in the clear).
    rsp_finished: Secret,
    /// Request direction (handshake keys, then application keys).
    req: Direction,
    /// Response direction.
    rsp: Direction,
    /// VCA || Hash(chain) || KEY_EXCHANGE || KEY_EXCHANGE_RSP (|| FINISH || FINISH_RSP), each
    /// message as sent (KEY_EXCHANGE_RSP with ResponderVerifyData only if encrypted, FINISH_RSP
    /// with it only in the clear).
    transcript: Vec<u8>,
    /// A KEY_UPDATE (UpdateKey or UpdateAllKeys) awaiting VerifyNewKey.
    pending_update: Option<u8>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &format_args!("{:#010x}", self.id))
            .field("established", &self.established)
            .field("handshake_in_clear", &self.handshake_in_clear)
            .field("heartbeat_period", &self.heartbeat_period)
            .finish()
    }
}

impl Clone for Session {
    fn clone(&self) -> Self {
        Session {
            id: self.id,
            version: self.version,
            hash: self.hash,
            aead: self.aead,
            established: self.established,
            handshake_in_clear: self.handshake_in_clear,
            heartbeat_period: self.heartbeat_period,
            last_request: self.last_request,
            ks: key_schedule(self.version, self.hash).expect("schedule was built before"),
            handshake_secret: self.handshake_secret.clone(),
            req_finished: self.req_finished.clone(),
            rsp_finished: self.rsp_finished.clone(),
            req: self.req.clone(),
            rsp: self.rsp.clone(),
            transcript: self.transcript.clone(),
            pending_update: self.pending_update,
        }
    }
}

/// FINISH accepted: FINISH_RSP and the application directions (request, response).
type Finished = (Vec<u8>, (Direction, Direction));

/// FINISH refused: the ERROR code, the reason and whether the session ends.
type FinishError = (u8, String, bool);

impl Session {
    /// FINISH in either mode: checks RequesterVerifyData = HMAC(request finished key,
    /// Hash(transcript || FINISH through its header)), builds FINISH_RSP (with
    /// ResponderVerifyData = HMAC(response finished key, Hash(transcript || FINISH ||
    /// FINISH_RSP header)) when the handshake is in the clear), extends the transcript through
    /// the whole FINISH_RSP and derives the application directions (request, response) from
    /// TH2.
    fn finish(
        &mut self,
        msg: &[u8],
        fault: Fault,
        log: &mut Vec<String>,
    ) -> Result<Finished, FinishError> {
        let v = self.version;
        let fin = match parse_finish(msg, self.ks.hash_size(), 0) {
            Ok(f) if f.version == v => f,
            Ok(_) => {
                return Err((
                    SPDM_ERROR_VERSION_MISMATCH,
                    "FINISH with another version".into(),
                    false,
                ))
            }
            Err(e) => {
                return Err((
                    SPDM_ERROR_INVALID_REQUEST,
                    format!("malformed FINISH: {}", e.as_str()),
                    false,
                ))
            }
        };
        let mut t = self.transcript.clone();
        t.extend_from_slice(&msg[..fin.verify_data_offset]);
        let th = spdm_hash(self.hash, &t).unwrap_or_default();
        let expected = self
            .ks
            .verify_data(&self.req_finished, &th)
            .map(|x| x.as_bytes().to_vec())
            .unwrap_or_default();
        if expected.is_empty() || expected != fin.verify_data {
            return Err((
                SPDM_ERROR_DECRYPT_ERROR,
                "FINISH RequesterVerifyData does not verify".to_string(),
                true,
            ));
        }
        let schedule = |e: &dyn std::fmt::Display| {
            (SPDM_ERROR_UNSPECIFIED, format!("key schedule: {e}"), true)
        };
        self.transcript.extend_from_slice(&msg[..fin.len]);
        let mut header = [0u8; 4];
        let n = encode_finish_rsp(v, &[], &mut header).expect("4 bytes");
        self.transcript.extend_from_slice(&header[..n]);
        let mut verify = Vec::new();
        if self.handshake_in_clear {
            let th = spdm_hash(self.hash, &self.transcript).unwrap_or_default();
            verify = self
                .ks
                .verify_data(&self.rsp_finished, &th)
                .map_err(|e| schedule(&e))?
                .as_bytes()
                .to_vec();
            if fault == Fault::WrongVerifyData {
                verify[0] ^= 0xFF;
                log.push(
                    "fault wrong-verify-data: FINISH_RSP ResponderVerifyData corrupted".to_string(),
                );
            }
            self.transcript.extend_from_slice(&verify);
        }
        let mut rsp = vec![0u8; n + verify.len()];
        let n = encode_finish_rsp(v, &verify, &mut rsp).map_err(|e| schedule(&e))?;
        rsp.truncate(n);
        let th2 = spdm_hash(self.hash, &self.transcript).unwrap_or_default();
        let (rq, rs) = self
            .ks
            .master_secret(&self.handshake_secret)
            .and_then(|m| self.ks.app_traffic_secrets(&m, &th2))
            .map_err(|e| schedule(&e))?;
        let req = Direction::new(&mut self.ks, self.aead, rq).map_err(|e| schedule(&e))?;
        let rsp_dir = Direction::new(&mut self.ks, self.aead, rs).map_err(|e| schedule(&e))?;
        Ok((rsp, (req, rsp_dir)))
    }
}

/// What to do after a secured response is sent.
enum After {
    Nothing,
    /// FINISH done: switch both directions to these application directions.
    Established(Box<(Direction, Direction)>),
    /// END_SESSION acknowledged.
    End,
}

/// An SPDM-level outcome: the response message, or an ERROR (code, data) with a reason.
type Outcome = Result<Vec<u8>, (u8, u8, String)>;

fn invalid(reason: impl Into<String>) -> (u8, u8, String) {
    (SPDM_ERROR_INVALID_REQUEST, 0, reason.into())
}

fn unexpected(reason: impl Into<String>) -> (u8, u8, String) {
    (SPDM_ERROR_UNEXPECTED_REQUEST, 0, reason.into())
}

fn internal(reason: impl Into<String>) -> (u8, u8, String) {
    (SPDM_ERROR_UNSPECIFIED, 0, reason.into())
}

/// ", with the TCB / all measurement summary" for logs (empty for none).
fn summary_name(summary_type: u8) -> &'static str {
    match summary_type {
        SPDM_MEAS_SUMMARY_TCB => ", TCB measurement summary",
        SPDM_MEAS_SUMMARY_ALL => ", all-measurements summary",
        _ => "",
    }
}

impl Responder {
    /// A responder that offers `versions` (in this order) in VERSION and applies `fault`,
    /// without certificates: it negotiates but answers GET_DIGESTS, GET_CERTIFICATE and
    /// CHALLENGE with ERROR UnsupportedRequest and announces no CERT_CAP / CHAL_CAP.
    ///
    /// # Panics
    ///
    /// If `versions` is empty or has more than 255 entries (the CLI rejects both).
    pub fn new(versions: Vec<VersionEntry>, fault: Fault) -> Self {
        assert!(
            (1..=255).contains(&versions.len()),
            "a VERSION response lists 1 to 255 versions"
        );
        Responder {
            versions,
            fault,
            identity: None,
            state: State::Start,
            negotiated: None,
            request_version: None,
            requester_caps: Capabilities::new(SpdmVersion::V1_0),
            asym: 0,
            hash: 0,
            chains: Vec::new(),
            transcript: Vec::new(),
            vca_len: 0,
            pending: None,
            next_token: 1,
            busy: (Vec::new(), 0),
            requests: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
            measurements: None,
            meas_spec: 0,
            meas_l: Vec::new(),
            meas_l_updated: None,
            dhe: 0,
            aead: 0,
            key_schedule: 0,
            session: None,
            next_rsp_session_id: 0x8001,
            session_options: SessionOptions::default(),
            clock_skew: Duration::ZERO,
            tee: TeeIo::default(),
        }
    }

    /// Sets the secure-session options (HeartbeatPeriod, HANDSHAKE_IN_THE_CLEAR_CAP) for the
    /// sessions of this connection; takes effect at the next GET_CAPABILITIES / KEY_EXCHANGE.
    pub fn set_session_options(&mut self, options: SessionOptions) {
        self.session_options = options;
    }

    /// Moves this responder's clock `by` forward (for tests: a session expires after twice
    /// its HeartbeatPeriod without a request, and tests should not sleep for that long).
    pub fn advance_clock(&mut self, by: Duration) {
        self.clock_skew = self.clock_skew.saturating_add(by);
    }

    /// The responder's clock: the monotonic clock plus [`Responder::advance_clock`].
    fn now(&self) -> Instant {
        let now = Instant::now();
        now.checked_add(self.clock_skew).unwrap_or(now)
    }

    /// Terminates the session if it received no request for more than twice its
    /// HeartbeatPeriod (checked lazily, when the next DOE object arrives).
    fn expire_idle_session(&mut self, log: &mut Vec<String>) {
        let now = self.now();
        let Some(s) = &self.session else { return };
        if s.heartbeat_period == 0 {
            return;
        }
        let idle = now.saturating_duration_since(s.last_request);
        if idle > Duration::from_secs(2 * u64::from(s.heartbeat_period)) {
            log.push(format!(
                "session {:#010x} expired: no request for {:.1} s (HeartbeatPeriod {} s)",
                s.id,
                idle.as_secs_f64(),
                s.heartbeat_period
            ));
            self.session = None;
        }
    }

    /// Whether secure sessions are offered (KEY_EX_CAP and the other session capabilities are
    /// announced): with an identity, from SPDM 1.1.
    fn sessions_enabled(&self) -> bool {
        self.identity.is_some() && self.negotiated.is_some_and(|v| v >= SpdmVersion::V1_1)
    }

    /// Whether both sides set KEY_EX_CAP: then DHE, AEAD and key schedule are selected (and
    /// required) in ALGORITHMS.
    fn key_exchange_agreed(&self) -> bool {
        self.sessions_enabled() && self.requester_caps.has(SPDM_CAP_KEY_EX)
    }

    /// The ERROR for a session-only request (FINISH, HEARTBEAT, KEY_UPDATE, END_SESSION)
    /// outside a session: SessionRequired (an error code DSP0274 defines from 1.2); at 1.1,
    /// which has no such code, UnexpectedRequest.
    fn session_required(&self, reason: String) -> (u8, u8, String) {
        if self.error_version() >= SpdmVersion::V1_2 {
            (SPDM_ERROR_SESSION_REQUIRED, 0, reason)
        } else {
            (SPDM_ERROR_UNEXPECTED_REQUEST, 0, reason)
        }
    }

    /// The SessionID of the current session, if any.
    pub fn session_id(&self) -> Option<u32> {
        self.session.as_ref().map(|s| s.id)
    }

    /// A responder with certificates and keys: announces CERT_CAP, CHAL_CAP and MEAS_CAP and
    /// serves the whole authentication flow and GET_MEASUREMENTS, with the default measurement
    /// blocks ([`MeasConfig::default_device`]; see [`Responder::set_measurements`]).
    ///
    /// # Panics
    ///
    /// As [`Responder::new`].
    pub fn with_identity(
        versions: Vec<VersionEntry>,
        fault: Fault,
        identity: Arc<Identity>,
    ) -> Self {
        let mut r = Responder::new(versions, fault);
        r.identity = Some(identity);
        r.measurements = Some(Arc::new(MeasConfig::default_device()));
        r
    }

    /// Replaces the measurement configuration (`None`: no MEAS_CAP, GET_MEASUREMENTS is
    /// unsupported). Only effective with an identity.
    pub fn set_measurements(&mut self, measurements: Option<Arc<MeasConfig>>) {
        self.measurements = measurements;
    }

    /// Whether GET_MEASUREMENTS is served.
    fn meas_enabled(&self) -> bool {
        self.identity.is_some() && self.measurements.is_some()
    }

    /// The TEE-IO device (IDE keys, TDI state), for the side channel and tests.
    pub fn tee(&self) -> &TeeIo {
        &self.tee
    }

    /// The TEE-IO device, mutable.
    pub fn tee_mut(&mut self) -> &mut TeeIo {
        &mut self.tee
    }

    /// Handles a side-channel command of QEMU ([`crate::platform`]); returns the reply command
    /// and payload and the log lines.
    pub fn platform(&mut self, command: u32, payload: &[u8]) -> (u32, Vec<u8>, Vec<String>) {
        let mut log = Vec::new();
        let (c, p) = self.tee.platform_command(command, payload, &mut log);
        (c, p, log)
    }

    /// Number of requests handled so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Handles one request: `request` is the socket payload, which should be one whole DOE
    /// object. Never panics, whatever the input.
    pub fn respond(&mut self, request: &[u8]) -> Reply {
        self.requests += 1;
        let mut log = Vec::new();
        let (object_type, object) = self.answer(request, &mut log);
        let object = match self.fault {
            Fault::NoAnswer => {
                log.push("fault no-answer: not replying".to_string());
                return Reply { object: None, log };
            }
            Fault::Garbage => {
                let garbage = self.garbage(object_type);
                log.push(format!(
                    "fault garbage: replying a {}-byte DOE object with a random payload",
                    garbage.len()
                ));
                garbage
            }
            _ => object,
        };
        // Every reply is built below the limit; keep QEMU safe even if that changes.
        let object = if object.len() > QEMU_MAX_RESPONSE_SIZE {
            log.push(format!(
                "internal: {}-byte reply exceeds QEMU's {QEMU_MAX_RESPONSE_SIZE}; answering InvalidRequest instead",
                object.len()
            ));
            self.spdm_object(DOE_TYPE_CMA, &self.error(SPDM_ERROR_INVALID_REQUEST, 0))
        } else {
            object
        };
        Reply {
            object: Some(object),
            log,
        }
    }

    /// The SPDMVersion used in ERROR responses: the negotiated one; before GET_CAPABILITIES
    /// succeeded, the request's version if the endpoint offers it; else (GET_VERSION, a message
    /// too short for a header, a version the endpoint does not offer) 1.0.
    fn error_version(&self) -> SpdmVersion {
        self.negotiated
            .or(self.request_version)
            .unwrap_or(SpdmVersion::V1_0)
    }

    /// An SPDM ERROR message.
    fn error(&self, code: u8, data: u8) -> Vec<u8> {
        let mut msg = [0u8; 4];
        let n = encode_error_response(self.error_version(), code, data, &mut msg)
            .expect("4 bytes hold an ERROR without extended data");
        msg[..n].to_vec()
    }

    /// Wraps an SPDM message in a PCI-SIG DOE object of the given type.
    fn spdm_object(&self, object_type: u8, msg: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; object_size(msg.len()).expect("replies are far below 1 MiB")];
        let n = encode_object(PCI_SIG_VENDOR_ID, object_type, msg, &mut out)
            .expect("buffer sized by object_size");
        out.truncate(n);
        out
    }

    /// Answers a malformed request: ERROR InvalidRequest in a CMA object.
    fn invalid(&self, reason: String, log: &mut Vec<String>) -> (u8, Vec<u8>) {
        log.push(format!("{reason}: answering SPDM ERROR InvalidRequest"));
        (
            DOE_TYPE_CMA,
            self.spdm_object(DOE_TYPE_CMA, &self.error(SPDM_ERROR_INVALID_REQUEST, 0)),
        )
    }

    /// Builds the correct answer; returns the DOE type used and the object.
    fn answer(&mut self, request: &[u8], log: &mut Vec<String>) -> (u8, Vec<u8>) {
        self.request_version = None;
        self.expire_idle_session(log);
        let obj = match decode_object(request) {
            Ok(obj) => obj,
            Err(e) => {
                return self.invalid(
                    format!(
                        "malformed DOE object ({} bytes): {}",
                        request.len(),
                        e.as_str()
                    ),
                    log,
                )
            }
        };
        if obj.header.vendor != PCI_SIG_VENDOR_ID {
            return self.invalid(
                format!(
                    "DOE object with vendor {:#06x}, not PCI-SIG",
                    obj.header.vendor
                ),
                log,
            );
        }
        match obj.header.object_type {
            DOE_TYPE_DISCOVERY => self.discovery(obj.payload, log),
            DOE_TYPE_CMA => {
                let msg = self.spdm(obj.payload, log);
                (DOE_TYPE_CMA, self.spdm_object(DOE_TYPE_CMA, &msg))
            }
            DOE_TYPE_SECURED_CMA => self.secured(obj.payload, log),
            t => self.invalid(format!("unknown DOE object type {t}"), log),
        }
    }

    /// DOE Discovery: index 0 = discovery, 1 = CMA, 2 = secured CMA. QEMU answers discovery
    /// itself, so this only serves other clients.
    fn discovery(&self, payload: &[u8], log: &mut Vec<String>) -> (u8, Vec<u8>) {
        let index = match decode_discovery_request(payload) {
            Ok(i) => i,
            Err(e) => {
                return self.invalid(
                    format!("malformed DOE discovery request: {}", e.as_str()),
                    log,
                )
            }
        };
        let (object_type, next_index) = match index {
            0 => (DOE_TYPE_DISCOVERY, 1),
            1 => (DOE_TYPE_CMA, 2),
            _ => (DOE_TYPE_SECURED_CMA, 0),
        };
        log.push(format!(
            "DOE discovery index {index} -> type {object_type}, next {next_index}"
        ));
        let rsp = DiscoveryResponse {
            vendor: PCI_SIG_VENDOR_ID,
            object_type,
            next_index,
        };
        (
            DOE_TYPE_DISCOVERY,
            self.spdm_object(DOE_TYPE_DISCOVERY, &encode_discovery_response(&rsp)),
        )
    }

    /// An SPDM request in a CMA object; returns the SPDM response message.
    fn spdm(&mut self, payload: &[u8], log: &mut Vec<String>) -> Vec<u8> {
        let header = match SpdmHeader::parse(payload) {
            Ok(h) => h,
            Err(_) => {
                log.push(format!(
                    "SPDM message of {} bytes, shorter than its header: answering SPDM ERROR InvalidRequest",
                    payload.len()
                ));
                return self.error(SPDM_ERROR_INVALID_REQUEST, 0);
            }
        };
        let name = code_name(header.code);
        // ERRORs before GET_CAPABILITIES carry the request's version (GET_VERSION's: 1.0).
        self.request_version = (header.code != SPDM_GET_VERSION)
            .then(|| header.spdm_version())
            .filter(|v| self.versions.iter().any(|e| e.version() == *v));
        if let Fault::Busy(n) = self.fault {
            if self.busy.0 != payload {
                self.busy = (payload.to_vec(), 0);
            }
            if self.busy.1 < n {
                self.busy.1 += 1;
                log.push(format!(
                    "fault busy: {name} answered ERROR Busy ({} of {n})",
                    self.busy.1
                ));
                return self.error(SPDM_ERROR_BUSY, 0);
            }
            self.busy = (Vec::new(), 0);
        }
        let before = self.state;
        // L1/L2 only spans consecutive GET_MEASUREMENTS exchanges.
        if header.code != SPDM_GET_MEASUREMENTS && header.code != SPDM_RESPOND_IF_READY {
            self.meas_l.clear();
            self.meas_l_updated = None;
        }
        let outcome = match header.code {
            SPDM_GET_VERSION => self.get_version(payload, log),
            SPDM_RESPOND_IF_READY => self.respond_if_ready(payload, log),
            SPDM_GET_CAPABILITIES => self.get_capabilities(payload, header, log),
            SPDM_NEGOTIATE_ALGORITHMS => self.negotiate_algorithms(payload, header, log),
            SPDM_GET_DIGESTS | SPDM_GET_CERTIFICATE | SPDM_CHALLENGE if self.identity.is_some() => {
                let r = match header.code {
                    SPDM_GET_DIGESTS => self.get_digests(payload, header, log),
                    SPDM_GET_CERTIFICATE => self.get_certificate(payload, header, log),
                    _ => self.challenge(payload, header, log),
                };
                match r {
                    Ok(rsp) if self.fault == Fault::NotReady => {
                        Ok(self.not_ready(header.code, rsp, log))
                    }
                    other => other,
                }
            }
            SPDM_GET_MEASUREMENTS if self.meas_enabled() => {
                self.get_measurements(payload, header, log)
            }
            SPDM_KEY_EXCHANGE if self.sessions_enabled() => self.key_exchange(payload, header, log),
            SPDM_FINISH if self.sessions_enabled() => self.finish_in_clear(payload, header, log),
            // IDE_KM and TDISP (PCI-SIG vendor-defined messages) only inside a session.
            SPDM_VENDOR_DEFINED_REQUEST if self.sessions_enabled() => self
                .check_request(header, State::Negotiated)
                .and_then(|_| Err(self.session_required(format!("{name} outside a session")))),
            SPDM_HEARTBEAT | SPDM_KEY_UPDATE | SPDM_END_SESSION if self.sessions_enabled() => self
                .check_request(header, State::Negotiated)
                .and_then(|_| Err(self.session_required(format!("{name} outside a session")))),
            code => Err((
                SPDM_ERROR_UNSUPPORTED_REQUEST,
                code,
                format!(
                    "{name} ({code:#04x}, version {:#04x}) is not supported",
                    header.version
                ),
            )),
        };
        let mut msg = match outcome {
            Ok(msg) => msg,
            Err((code, data, reason)) => {
                // A failed GET_MEASUREMENTS ends the L1/L2 accumulation too.
                self.meas_l.clear();
                self.meas_l_updated = None;
                log.push(format!(
                    "{reason}: answering SPDM ERROR {}",
                    error_code_name(code)
                ));
                self.error(code, data)
            }
        };
        if self.fault == Fault::WrongHeaderVersion
            && before >= State::Version
            && header.code != SPDM_GET_VERSION
        {
            if let (Some(first), Some(v)) = (msg.first_mut(), self.negotiated) {
                *first = v.as_byte().wrapping_add(1);
                log.push(format!(
                    "fault wrong-header-version: response carries version {:#04x}",
                    *first
                ));
            }
        }
        msg
    }

    /// Checks that a request may come now and carries the negotiated version.
    fn check_request(
        &self,
        header: SpdmHeader,
        need: State,
    ) -> Result<SpdmVersion, (u8, u8, String)> {
        let name = code_name(header.code);
        if self.state < need {
            return Err(unexpected(format!(
                "{name} before the connection reached it"
            )));
        }
        let v = self.negotiated.unwrap_or(SpdmVersion::V1_0);
        if header.version != v.as_byte() {
            return Err((
                SPDM_ERROR_VERSION_MISMATCH,
                0,
                format!(
                    "{name} with version {:#04x}, negotiated {:#04x}",
                    header.version,
                    v.as_byte()
                ),
            ));
        }
        Ok(v)
    }

    fn get_version(&mut self, payload: &[u8], log: &mut Vec<String>) -> Outcome {
        let header = parse_get_version(payload)
            .map_err(|e| invalid(format!("malformed GET_VERSION: {}", e.as_str())))?;
        if header.version != SPDM_VERSION_1_0 {
            return Err((
                SPDM_ERROR_VERSION_MISMATCH,
                0,
                format!(
                    "GET_VERSION with version {:#04x} (must be 0x10)",
                    header.version
                ),
            ));
        }
        // GET_VERSION restarts the connection.
        self.state = State::Start;
        self.negotiated = None;
        self.pending = None;
        self.transcript.clear();
        self.vca_len = 0;
        self.chains.clear();
        if let Some(s) = self.session.take() {
            log.push(format!("GET_VERSION ends session {:#010x}", s.id));
        }
        let entries = if self.fault == Fault::WrongVersion {
            vec![
                VersionEntry::new(0, 9, 0, 0).expect("valid entry"),
                VersionEntry::new(2, 0, 0, 0).expect("valid entry"),
            ]
        } else {
            self.versions.clone()
        };
        let mut msg = [0u8; SPDM_VERSION_RESPONSE_MAX_SIZE];
        let n =
            encode_version_response(&entries, &mut msg).expect("1 to 255 entries fit the buffer");
        let list: Vec<String> = entries
            .iter()
            .map(|e| format!("{}.{}", e.major(), e.minor()))
            .collect();
        log.push(format!("GET_VERSION -> VERSION [{}]", list.join(", ")));
        if self.fault == Fault::WrongVersion {
            log.push("fault wrong-version: offering only unsupported versions".to_string());
        }
        self.transcript.extend_from_slice(&payload[..4]);
        self.transcript.extend_from_slice(&msg[..n]);
        self.state = State::Version;
        Ok(msg[..n].to_vec())
    }

    fn get_capabilities(
        &mut self,
        payload: &[u8],
        header: SpdmHeader,
        log: &mut Vec<String>,
    ) -> Outcome {
        if self.state != State::Version {
            return Err(unexpected("GET_CAPABILITIES not right after VERSION"));
        }
        let v = header.spdm_version();
        if !self.versions.iter().any(|e| e.version() == v) || self.fault == Fault::WrongVersion {
            return Err((
                SPDM_ERROR_VERSION_MISMATCH,
                0,
                format!(
                    "GET_CAPABILITIES with version {:#04x}, not offered",
                    header.version
                ),
            ));
        }
        let req = parse_get_capabilities(payload)
            .map_err(|e| invalid(format!("malformed GET_CAPABILITIES: {}", e.as_str())))?;
        if v >= SpdmVersion::V1_2 {
            req.validate()
                .map_err(|e| invalid(format!("GET_CAPABILITIES: {}", e.as_str())))?;
        }
        let mut caps = Capabilities::new(v);
        caps.ct_exponent = CT_EXPONENT;
        if self.identity.is_some() {
            caps.flags = SPDM_CAP_CERT | SPDM_CAP_CHAL;
        }
        if self.meas_enabled() {
            caps.flags |= SPDM_CAP_MEAS_FRESH
                | if self.fault == Fault::NoMeasSig {
                    SPDM_CAP_MEAS_NO_SIG
                } else {
                    SPDM_CAP_MEAS_SIG
                };
        }
        if self.identity.is_some() && v >= SpdmVersion::V1_1 {
            caps.flags |= SPDM_CAP_KEY_EX
                | SPDM_CAP_ENCRYPT
                | SPDM_CAP_MAC
                | SPDM_CAP_HBEAT
                | SPDM_CAP_KEY_UPD;
            if self.session_options.handshake_in_clear {
                caps.flags |= SPDM_CAP_HANDSHAKE_IN_THE_CLEAR;
            }
        }
        if v >= SpdmVersion::V1_2 {
            caps.data_transfer_size = DATA_TRANSFER_SIZE;
            caps.max_spdm_msg_size = DATA_TRANSFER_SIZE;
        }
        let mut msg = [0u8; 32];
        let n = encode_capabilities(&caps, &mut msg).expect("32 bytes hold CAPABILITIES");
        self.negotiated = Some(v);
        self.requester_caps = req;
        self.transcript
            .extend_from_slice(&payload[..get_capabilities_size(v)]);
        self.transcript.extend_from_slice(&msg[..n]);
        debug_assert_eq!(n, capabilities_size(v));
        self.state = State::Capabilities;
        log.push(format!(
            "GET_CAPABILITIES {}.{} (flags {:#x}) -> CAPABILITIES (flags {:#x}, CTExponent {}, DataTransferSize {})",
            v.major(),
            v.minor(),
            req.flags,
            caps.flags,
            caps.ct_exponent,
            caps.data_transfer_size
        ));
        Ok(msg[..n].to_vec())
    }

    fn negotiate_algorithms(
        &mut self,
        payload: &[u8],
        header: SpdmHeader,
        log: &mut Vec<String>,
    ) -> Outcome {
        if self.state != State::Capabilities {
            return Err(unexpected(
                "NEGOTIATE_ALGORITHMS not right after CAPABILITIES",
            ));
        }
        let v = self.check_request(header, State::Capabilities)?;
        let req = parse_negotiate_algorithms(payload)
            .map_err(|e| invalid(format!("malformed NEGOTIATE_ALGORITHMS: {}", e.as_str())))?;
        let ours = self
            .identity
            .as_ref()
            .and_then(|i| i.key_kind())
            .map_or(0, |k| k.asym_mask());
        let mut rsp = Algorithms::new(v);
        rsp.base_asym = strongest_asym(req.base_asym & ours).unwrap_or(0);
        rsp.base_hash = strongest_hash(req.base_hash & SUPPORTED_HASHES).unwrap_or(0);
        if v >= SpdmVersion::V1_2 {
            rsp.other_params = req.other_params & SPDM_OPAQUE_DATA_FMT1;
        }
        if self.meas_enabled() && req.measurement_specification & SPDM_MEAS_SPEC_DMTF != 0 {
            rsp.measurement_specification = SPDM_MEAS_SPEC_DMTF;
            rsp.measurement_hash = match rsp.base_hash {
                SPDM_HASH_SHA256 => SPDM_MEAS_HASH_SHA256,
                SPDM_HASH_SHA384 => SPDM_MEAS_HASH_SHA384,
                SPDM_HASH_SHA512 => SPDM_MEAS_HASH_SHA512,
                _ => SPDM_MEAS_HASH_RAW,
            };
        }
        // DHE, AEAD and key schedule are selected only when both sides set KEY_EX_CAP (the
        // AEAD when both set ENCRYPT_CAP or MAC_CAP too): a requester that retries without
        // session capabilities can still authenticate and read measurements. Then they are
        // required, as libspdm does: no common DHE group, AEAD or key schedule (or, from 1.2, no
        // opaque data format 1) is ERROR InvalidRequest.
        let key_ex = self.key_exchange_agreed();
        let aead_needed = key_ex
            && (self.requester_caps.has(SPDM_CAP_ENCRYPT) || self.requester_caps.has(SPDM_CAP_MAC));
        let pick = |offered: Option<u16>, wanted: bool, ours: u16, preference: &[u16]| {
            offered.map(|o| {
                if wanted {
                    strongest_u16(o & ours, preference).unwrap_or(0)
                } else {
                    0
                }
            })
        };
        let dhe_ours = self.session_options.dhe & SUPPORTED_DHE;
        let aead_ours = self.session_options.aead & SUPPORTED_AEAD;
        rsp.structs = AlgStructs {
            dhe: pick(req.structs.dhe, key_ex, dhe_ours, &DHE_PREFERENCE),
            aead: pick(req.structs.aead, aead_needed, aead_ours, &AEAD_PREFERENCE),
            req_base_asym: req.structs.req_base_asym.map(|_| 0),
            key_schedule: pick(
                req.structs.key_schedule,
                key_ex,
                SPDM_KEY_SCHEDULE_SPDM,
                &[SPDM_KEY_SCHEDULE_SPDM],
            ),
        };
        if key_ex {
            let offered = |o: Option<u16>| o.unwrap_or(0);
            let missing = if rsp.structs.dhe.unwrap_or(0) == 0 {
                Some(format!(
                    "no common DHE group (offered {:#x}, supported {})",
                    offered(req.structs.dhe),
                    alg_names(dhe_ours, &DHE_NAMES)
                ))
            } else if aead_needed && rsp.structs.aead.unwrap_or(0) == 0 {
                Some(format!(
                    "no common AEAD (offered {:#x}, supported {})",
                    offered(req.structs.aead),
                    alg_names(aead_ours, &AEAD_NAMES)
                ))
            } else if rsp.structs.key_schedule.unwrap_or(0) == 0 {
                Some("no SPDM key schedule offered".to_string())
            } else if v >= SpdmVersion::V1_2 && rsp.other_params & SPDM_OPAQUE_DATA_FMT1 == 0 {
                Some("opaque data format 1 not offered".to_string())
            } else {
                None
            };
            if let Some(what) = missing {
                return Err(invalid(format!(
                    "NEGOTIATE_ALGORITHMS: both sides set KEY_EX_CAP but {what}"
                )));
            }
        }
        self.dhe = rsp.structs.dhe.unwrap_or(0);
        self.aead = rsp.structs.aead.unwrap_or(0);
        self.key_schedule = rsp.structs.key_schedule.unwrap_or(0);
        if self.fault == Fault::UnsupportedAlgorithm {
            rsp.base_asym = (0..12)
                .map(|b| 1u32 << b)
                .find(|bit| req.base_asym & bit == 0)
                .unwrap_or(1 << 12);
            log.push(format!(
                "fault unsupported-algorithm: selecting {} ({:#x}), which was not offered",
                asym_name(rsp.base_asym),
                rsp.base_asym
            ));
        }
        let mut msg = [0u8; 128];
        let n = encode_algorithms(&rsp, &mut msg).expect("128 bytes hold ALGORITHMS");
        self.asym = rsp.base_asym;
        self.hash = rsp.base_hash;
        self.meas_spec = rsp.measurement_specification;
        self.chains = self
            .identity
            .as_ref()
            .map(|id| {
                id.slots
                    .iter()
                    .filter_map(|s| Some((s.slot, s.spdm_chain(rsp.base_hash)?)))
                    .collect()
            })
            .unwrap_or_default();
        self.transcript.extend_from_slice(&payload[..req.len]);
        self.transcript.extend_from_slice(&msg[..n]);
        self.vca_len = self.transcript.len();
        self.state = State::Negotiated;
        log.push(format!(
            "NEGOTIATE_ALGORITHMS (asym {:#x}, hash {:#x}) -> ALGORITHMS ({}, {})",
            req.base_asym,
            req.base_hash,
            asym_name(rsp.base_asym),
            hash_name(rsp.base_hash)
        ));
        Ok(msg[..n].to_vec())
    }

    /// The identity; only called when one is present.
    fn identity(&self) -> Result<Arc<Identity>, (u8, u8, String)> {
        self.identity
            .clone()
            .ok_or_else(|| (SPDM_ERROR_UNSPECIFIED, 0, "no identity".to_string()))
    }

    fn chain(&self, slot: u8) -> Option<&Vec<u8>> {
        self.chains.iter().find(|(s, _)| *s == slot).map(|(_, c)| c)
    }

    fn get_digests(
        &mut self,
        payload: &[u8],
        header: SpdmHeader,
        log: &mut Vec<String>,
    ) -> Outcome {
        let v = self.check_request(header, State::Negotiated)?;
        parse_get_digests(payload)
            .map_err(|e| invalid(format!("malformed GET_DIGESTS: {}", e.as_str())))?;
        let id = self.identity()?;
        let mut digests = Vec::new();
        for (_, chain) in &self.chains {
            let mut d = spdm_hash(self.hash, chain)
                .ok_or_else(|| (SPDM_ERROR_UNSPECIFIED, 0, "no hash negotiated".to_string()))?;
            if self.fault == Fault::DigestMismatch {
                d[0] ^= 0xFF;
            }
            digests.push(d);
        }
        let refs: Vec<&[u8]> = digests.iter().map(Vec::as_slice).collect();
        let h = refs.first().map_or(0, |d| d.len());
        let mask = id.slot_mask();
        let mut msg = vec![0u8; 4 + 8 * 64];
        let n = encode_digests(v, mask, mask, &refs, h, &mut msg).map_err(|e| {
            (
                SPDM_ERROR_UNSPECIFIED,
                0,
                format!("cannot encode DIGESTS: {}", e.as_str()),
            )
        })?;
        msg.truncate(n);
        self.transcript.extend_from_slice(&payload[..4]);
        self.transcript.extend_from_slice(&msg);
        log.push(format!("GET_DIGESTS -> DIGESTS (slot mask {mask:#04x})"));
        if self.fault == Fault::DigestMismatch {
            log.push("fault digest-mismatch: digests do not match the chains".to_string());
        }
        Ok(msg)
    }

    fn get_certificate(
        &mut self,
        payload: &[u8],
        header: SpdmHeader,
        log: &mut Vec<String>,
    ) -> Outcome {
        let v = self.check_request(header, State::Negotiated)?;
        let req = parse_get_certificate(payload)
            .map_err(|e| invalid(format!("malformed GET_CERTIFICATE: {}", e.as_str())))?;
        let chain = self
            .chain(req.slot)
            .ok_or_else(|| invalid(format!("GET_CERTIFICATE for empty slot {}", req.slot)))?
            .clone();
        let offset = usize::from(req.offset);
        if offset > chain.len() || (offset == chain.len() && !chain.is_empty()) {
            return Err(invalid(format!(
                "GET_CERTIFICATE offset {offset} beyond the {}-byte chain",
                chain.len()
            )));
        }
        let mut max_msg = DATA_TRANSFER_SIZE as usize;
        if v >= SpdmVersion::V1_2 {
            max_msg = max_msg.min(self.requester_caps.data_transfer_size as usize);
        }
        let max_portion = max_msg.saturating_sub(SPDM_CERTIFICATE_FIXED_SIZE);
        let size_only = v >= SpdmVersion::V1_3
            && req.attributes & SPDM_GET_CERTIFICATE_SLOT_SIZE_REQUESTED != 0;
        let (portion, offset) = if size_only {
            (0, 0)
        } else {
            (
                (chain.len() - offset)
                    .min(usize::from(req.length))
                    .min(max_portion),
                offset,
            )
        };
        let remainder = chain.len() - offset - portion;
        let mut msg = vec![0u8; SPDM_CERTIFICATE_FIXED_SIZE + portion];
        let n = encode_certificate(
            v,
            req.slot,
            0,
            &chain[offset..offset + portion],
            u16::try_from(remainder).unwrap_or(u16::MAX),
            &mut msg,
        )
        .map_err(|e| {
            (
                SPDM_ERROR_UNSPECIFIED,
                0,
                format!("cannot encode CERTIFICATE: {}", e.as_str()),
            )
        })?;
        msg.truncate(n);
        self.transcript.extend_from_slice(&payload[..8]);
        self.transcript.extend_from_slice(&msg);
        log.push(format!(
            "GET_CERTIFICATE slot {} offset {} length {} -> CERTIFICATE {portion} bytes, {remainder} remaining",
            req.slot, req.offset, req.length
        ));
        Ok(msg)
    }

    fn challenge(&mut self, payload: &[u8], header: SpdmHeader, log: &mut Vec<String>) -> Outcome {
        let v = self.check_request(header, State::Negotiated)?;
        let req = parse_challenge(payload)
            .map_err(|e| invalid(format!("malformed CHALLENGE: {}", e.as_str())))?;
        let summary = self.measurement_summary(req.meas_summary_type, "CHALLENGE_AUTH", log)?;
        let id = self.identity()?;
        let slot = id
            .slot(req.slot)
            .ok_or_else(|| invalid(format!("CHALLENGE for empty slot {}", req.slot)))?;
        let chain = self
            .chain(req.slot)
            .ok_or_else(|| invalid(format!("CHALLENGE for slot {} without a chain", req.slot)))?;
        let sig_size = signature_size(self.asym).ok_or_else(|| {
            (
                SPDM_ERROR_UNSPECIFIED,
                0,
                "no signature algorithm negotiated".to_string(),
            )
        })?;
        let chain_hash = spdm_hash(self.hash, chain)
            .ok_or_else(|| (SPDM_ERROR_UNSPECIFIED, 0, "no hash negotiated".to_string()))?;
        let nonce: [u8; 32] = rand::rng().random();
        let body = ChallengeAuthBody {
            version: v,
            attributes: req.slot,
            slot_mask: id.slot_mask(),
            cert_chain_hash: &chain_hash,
            nonce: &nonce,
            measurement_summary_hash: &summary,
            opaque: &[],
            requester_context: &req.requester_context,
        };
        let mut body_bytes = vec![0u8; 2048];
        let n = encode_challenge_auth_body(&body, &mut body_bytes).map_err(|e| {
            (
                SPDM_ERROR_UNSPECIFIED,
                0,
                format!("cannot encode CHALLENGE_AUTH: {}", e.as_str()),
            )
        })?;
        body_bytes.truncate(n);

        // M1 = VCA || B || CHALLENGE || CHALLENGE_AUTH without the signature.
        let req_len = challenge_size(v);
        let mut challenge_req = payload[..req_len].to_vec();
        if self.fault == Fault::WrongNonce {
            let other: [u8; 32] = rand::rng().random();
            challenge_req[4..36].copy_from_slice(&other);
            log.push(
                "fault wrong-nonce: signing a transcript with another CHALLENGE nonce".to_string(),
            );
        }
        let mut m1 = self.transcript.clone();
        m1.extend_from_slice(&challenge_req);
        m1.extend_from_slice(&body_bytes);
        let m1_hash = spdm_hash(self.hash, &m1)
            .ok_or_else(|| (SPDM_ERROR_UNSPECIFIED, 0, "no hash negotiated".to_string()))?;
        let mut signed = [0u8; 200];
        let sn = signed_message(v, SPDM_CHALLENGE_AUTH_SIGN_CONTEXT, &m1_hash, &mut signed)
            .map_err(|e| (SPDM_ERROR_UNSPECIFIED, 0, e.as_str().to_string()))?;
        let digest = if v >= SpdmVersion::V1_2 {
            spdm_hash(self.hash, &signed[..sn]).unwrap_or_default()
        } else {
            m1_hash
        };
        let mut sig = slot
            .key
            .sign_spdm(self.asym, self.hash, &digest)
            .map_err(|e| (SPDM_ERROR_UNSPECIFIED, 0, e))?;
        if sig.len() != sig_size {
            return Err((
                SPDM_ERROR_UNSPECIFIED,
                0,
                format!("signature of {} bytes, expected {sig_size}", sig.len()),
            ));
        }
        if self.fault == Fault::BadSignature {
            let mid = sig.len() / 2;
            sig[mid] ^= 0x5A;
            log.push("fault bad-signature: signature corrupted".to_string());
        }
        let mut msg = vec![0u8; 4096];
        let n = encode_challenge_auth(&body, &sig, &mut msg).map_err(|e| {
            (
                SPDM_ERROR_UNSPECIFIED,
                0,
                format!("cannot encode CHALLENGE_AUTH: {}", e.as_str()),
            )
        })?;
        msg.truncate(n);
        match self.fault {
            Fault::Truncated => {
                msg.truncate(n - sig_size / 2);
                log.push(format!(
                    "fault truncated: CHALLENGE_AUTH cut from {n} to {} bytes",
                    msg.len()
                ));
            }
            Fault::Oversized => {
                msg.extend_from_slice(&[0xA5; 64]);
                log.push(format!(
                    "fault oversized: CHALLENGE_AUTH of {n} bytes followed by 64 more"
                ));
            }
            _ => {}
        }
        // The digest/certificate part of the transcript starts afresh after a CHALLENGE.
        self.transcript.truncate(self.vca_len);
        log.push(format!(
            "CHALLENGE {}.{} slot {} -> CHALLENGE_AUTH ({} over {} transcript bytes, {}{})",
            v.major(),
            v.minor(),
            req.slot,
            asym_name(self.asym),
            m1.len(),
            hash_name(self.hash),
            summary_name(req.meas_summary_type)
        ));
        Ok(msg)
    }

    /// The MeasurementSummaryHash of CHALLENGE_AUTH / KEY_EXCHANGE_RSP (`what`) for the
    /// requested type: empty for 0 (none); for 0xFF (all) and 1 (TCB) the negotiated hash of
    /// the concatenation of measurement blocks (Index, MeasurementSpecification,
    /// MeasurementSize, Measurement) as a MEASUREMENTS response to a non-raw GET_MEASUREMENTS
    /// for all blocks would carry them right now (digest form, firmware update switch
    /// applied), in index order: every block for 0xFF, only the blocks whose
    /// DMTFSpecMeasurementValueType is immutable ROM (0) for TCB (libspdm's rule; the hash of
    /// nothing if there is none). libspdm does the same at every version (DSP0274 1.0.x and
    /// 1.1.0/1.1.1 said the Measurement fields only; 1.1.2 and 1.2+ whole blocks).
    /// Without MEAS_CAP or a negotiated measurement specification, or for another type: ERROR
    /// InvalidRequest. Fault `bad-summary` flips a bit of the hash (the signature still covers
    /// what is sent).
    fn measurement_summary(
        &self,
        summary_type: u8,
        what: &str,
        log: &mut Vec<String>,
    ) -> Result<Vec<u8>, (u8, u8, String)> {
        match summary_type {
            SPDM_MEAS_SUMMARY_NONE => return Ok(Vec::new()),
            SPDM_MEAS_SUMMARY_TCB | SPDM_MEAS_SUMMARY_ALL => {}
            t => {
                return Err(invalid(format!(
                    "{what}: unknown MeasurementSummaryHashType {t:#04x}"
                )))
            }
        }
        let cfg = self.measurements.as_ref().filter(|_| self.meas_enabled());
        let Some(cfg) = cfg else {
            return Err(invalid(format!(
                "{what}: a measurement summary was asked for, but the endpoint has no MEAS_CAP"
            )));
        };
        if self.meas_spec == 0 {
            return Err(invalid(format!(
                "{what}: a measurement summary was asked for without a negotiated measurement specification"
            )));
        }
        let (blocks, _) = cfg.current();
        let mut data = Vec::new();
        let mut count = 0;
        for b in &blocks {
            let (value_type, value) = b
                .render(self.hash, false)
                .ok_or_else(|| internal("no hash negotiated"))?;
            if summary_type == SPDM_MEAS_SUMMARY_TCB
                && value_type & SPDM_MEAS_VALUE_TYPE_MASK != SPDM_MEAS_TYPE_IMMUTABLE_ROM
            {
                continue;
            }
            let mut buf = vec![0u8; 7 + value.len()];
            let n =
                encode_measurement_block(b.index, value_type, &value, &mut buf).map_err(|e| {
                    internal(format!(
                        "cannot encode measurement block {}: {}",
                        b.index,
                        e.reason()
                    ))
                })?;
            data.extend_from_slice(&buf[..n]);
            count += 1;
        }
        let mut hash = spdm_hash(self.hash, &data).ok_or_else(|| internal("no hash negotiated"))?;
        log.push(format!(
            "{what}: MeasurementSummaryHash over {count} block(s) ({})",
            if summary_type == SPDM_MEAS_SUMMARY_TCB {
                "TCB: immutable ROM blocks"
            } else {
                "all blocks"
            }
        ));
        if self.fault == Fault::BadSummary {
            hash[0] ^= 0x01;
            log.push(format!(
                "fault bad-summary: {what} MeasurementSummaryHash has a bit flipped"
            ));
        }
        Ok(hash)
    }

    fn get_measurements(
        &mut self,
        payload: &[u8],
        header: SpdmHeader,
        log: &mut Vec<String>,
    ) -> Outcome {
        let v = self.check_request(header, State::Negotiated)?;
        let req = parse_get_measurements(payload)
            .map_err(|e| invalid(format!("malformed GET_MEASUREMENTS: {}", e.reason())))?;
        if self.meas_spec == 0 {
            return Err(unexpected(
                "GET_MEASUREMENTS without a negotiated measurement specification",
            ));
        }
        let cfg = self
            .measurements
            .clone()
            .ok_or_else(|| (SPDM_ERROR_UNSPECIFIED, 0, "no measurements".to_string()))?;
        let signed = req.signature_requested();
        if signed && self.fault == Fault::NoMeasSig {
            return Err(invalid(
                "fault no-meas-sig: GET_MEASUREMENTS asks for a signature, but MEAS_CAP is 1",
            ));
        }
        if req.operation == SPDM_MEAS_OP_ALL && self.fault == Fault::RefuseAllBlocks {
            return Err((
                SPDM_ERROR_UNSUPPORTED_REQUEST,
                SPDM_GET_MEASUREMENTS,
                "fault refuse-all-blocks: GET_MEASUREMENTS for all blocks refused".to_string(),
            ));
        }
        let (blocks, updated) = cfg.current();
        let raw = v >= SpdmVersion::V1_2 && req.attributes & SPDM_MEAS_ATTR_RAW_BIT_STREAM != 0;
        let selected: Vec<_> = match req.operation {
            SPDM_MEAS_OP_TOTAL => Vec::new(),
            SPDM_MEAS_OP_ALL => blocks.iter().collect(),
            index => vec![blocks
                .iter()
                .find(|b| b.index == index)
                .ok_or_else(|| invalid(format!("GET_MEASUREMENTS for absent index {index}")))?],
        };
        let slot = if signed && v >= SpdmVersion::V1_1 {
            req.slot_id
        } else {
            0
        };
        let key = if signed {
            let id = self.identity()?;
            if slot == SPDM_SLOT_PUBLIC_KEY & SPDM_MEAS_SLOT_MASK {
                return Err(invalid(
                    "GET_MEASUREMENTS for a provisioned public key (slot 0xF)",
                ));
            }
            let s = id
                .slot(slot)
                .ok_or_else(|| invalid(format!("GET_MEASUREMENTS signed by empty slot {slot}")))?;
            Some(s.key.clone())
        } else {
            None
        };

        let mut record = Vec::new();
        let mut first_block = 0..0;
        for b in &selected {
            let (value_type, value) = b
                .render(self.hash, raw)
                .ok_or_else(|| (SPDM_ERROR_UNSPECIFIED, 0, "no hash negotiated".to_string()))?;
            let mut buf = vec![0u8; 7 + value.len()];
            let n =
                encode_measurement_block(b.index, value_type, &value, &mut buf).map_err(|e| {
                    (
                        SPDM_ERROR_UNSPECIFIED,
                        0,
                        format!(
                            "cannot encode measurement block {}: {}",
                            b.index,
                            e.reason()
                        ),
                    )
                })?;
            if record.is_empty() {
                first_block = 0..n;
            }
            record.extend_from_slice(&buf[..n]);
        }
        let mut count = selected.len();
        if !record.is_empty() {
            match self.fault {
                Fault::MalformedBlock => {
                    let size = u16::from_le_bytes([record[5], record[6]]);
                    let bad = if size == 0 { 1 } else { size - 1 };
                    record[5..7].copy_from_slice(&bad.to_le_bytes());
                    log.push(format!(
                        "fault malformed-block: block {} value size {size} -> {bad}",
                        record[0]
                    ));
                }
                Fault::DuplicateIndex => {
                    let copy = record[first_block].to_vec();
                    log.push(format!(
                        "fault duplicate-index: block {} sent twice",
                        copy[0]
                    ));
                    record.extend_from_slice(&copy);
                    count += 1;
                }
                _ => {}
            }
        }
        if self.meas_l.is_empty() {
            self.meas_l_updated = Some(updated);
        }
        let param2 = if signed && v >= SpdmVersion::V1_1 {
            let changed = if v >= SpdmVersion::V1_2 {
                if self.meas_l_updated == Some(updated) {
                    SPDM_MEAS_CONTENT_UNCHANGED
                } else {
                    SPDM_MEAS_CONTENT_CHANGED
                }
            } else {
                0
            };
            slot | changed
        } else {
            0
        };
        let nonce: [u8; 32] = rand::rng().random();
        let body = MeasurementsBody {
            version: v,
            param1: if req.operation == SPDM_MEAS_OP_TOTAL {
                u8::try_from(blocks.len()).unwrap_or(0xFE)
            } else {
                0
            },
            param2,
            number_of_blocks: u8::try_from(count).unwrap_or(0xFF),
            record: &record,
            nonce: &nonce,
            opaque: &[],
            requester_context: &req.requester_context,
        };
        let mut msg = vec![0u8; 64 + record.len()];
        let n = encode_measurements_body(&body, &mut msg).map_err(|e| {
            (
                SPDM_ERROR_UNSPECIFIED,
                0,
                format!("cannot encode MEASUREMENTS: {}", e.reason()),
            )
        })?;
        msg.truncate(n);
        let request = &payload[..req.size()];
        let what = match req.operation {
            SPDM_MEAS_OP_TOTAL => "count".to_string(),
            SPDM_MEAS_OP_ALL => "all".to_string(),
            i => format!("index {i}"),
        };
        if let Some(key) = key {
            // L1/L2 = VCA (1.2+) || earlier exchanges || this request || this response body.
            let mut l = Vec::new();
            if v >= SpdmVersion::V1_2 {
                l.extend_from_slice(&self.transcript[..self.vca_len]);
            }
            l.extend_from_slice(&self.meas_l);
            l.extend_from_slice(request);
            l.extend_from_slice(&msg);
            let l_hash = spdm_hash(self.hash, &l)
                .ok_or_else(|| (SPDM_ERROR_UNSPECIFIED, 0, "no hash negotiated".to_string()))?;
            let mut signed_msg = [0u8; 200];
            let sn = measurements_signed_message(v, &l_hash, &mut signed_msg)
                .map_err(|e| (SPDM_ERROR_UNSPECIFIED, 0, e.reason().to_string()))?;
            let digest = if v >= SpdmVersion::V1_2 {
                spdm_hash(self.hash, &signed_msg[..sn]).unwrap_or_default()
            } else {
                l_hash
            };
            let mut sig = key
                .sign_spdm(self.asym, self.hash, &digest)
                .map_err(|e| (SPDM_ERROR_UNSPECIFIED, 0, e))?;
            if self.fault == Fault::BadMeasSignature {
                let mid = sig.len() / 2;
                sig[mid] ^= 0x5A;
                log.push("fault bad-meas-signature: signature corrupted".to_string());
            }
            msg.extend_from_slice(&sig);
            log.push(format!(
                "GET_MEASUREMENTS {}.{} {what} signed slot {slot} -> MEASUREMENTS {} blocks{} ({} over {} L1/L2 bytes)",
                v.major(),
                v.minor(),
                count,
                if updated { ", firmware updated" } else { "" },
                asym_name(self.asym),
                l.len()
            ));
            self.meas_l.clear();
            self.meas_l_updated = None;
        } else {
            self.meas_l.extend_from_slice(request);
            self.meas_l.extend_from_slice(&msg);
            log.push(format!(
                "GET_MEASUREMENTS {}.{} {what} -> MEASUREMENTS {} blocks{} (unsigned)",
                v.major(),
                v.minor(),
                count,
                if updated { ", firmware updated" } else { "" },
            ));
        }
        if self.fault == Fault::OversizedRecord {
            let declared = record.len() + 4096;
            msg[5..8].copy_from_slice(&(declared as u32).to_le_bytes()[..3]);
            log.push(format!(
                "fault oversized-record: MeasurementRecordLength {declared} for a {}-byte record",
                record.len()
            ));
        }
        Ok(msg)
    }

    // --- Secure sessions ----------------------------------------------------------------------

    /// KEY_EXCHANGE (in the clear): ephemeral ECDHE, KEY_EXCHANGE_RSP with the HeartbeatPeriod,
    /// signed with the slot's leaf key, with ResponderVerifyData unless both sides set
    /// HANDSHAKE_IN_THE_CLEAR_CAP (then the handshake is in the clear).
    fn key_exchange(
        &mut self,
        payload: &[u8],
        header: SpdmHeader,
        log: &mut Vec<String>,
    ) -> Outcome {
        let v = self.check_request(header, State::Negotiated)?;
        if !self.requester_caps.has(SPDM_CAP_KEY_EX)
            || !self.requester_caps.has(SPDM_CAP_ENCRYPT | SPDM_CAP_MAC)
        {
            return Err(unexpected(
                "KEY_EXCHANGE but the requester announced no KEY_EX_CAP with ENCRYPT_CAP and MAC_CAP",
            ));
        }
        if self.dhe == 0 || self.aead == 0 || self.key_schedule != SPDM_KEY_SCHEDULE_SPDM {
            return Err(unexpected(
                "KEY_EXCHANGE without a negotiated DHE group, AEAD and key schedule",
            ));
        }
        let d = dhe_exchange_size(self.dhe).unwrap_or(0);
        let req = parse_key_exchange(payload, d)
            .map_err(|e| invalid(format!("malformed KEY_EXCHANGE: {}", e.as_str())))?;
        let summary = self.measurement_summary(req.meas_summary_type, "KEY_EXCHANGE_RSP", log)?;
        let id = self.identity()?;
        let slot = id
            .slot(req.slot)
            .ok_or_else(|| invalid(format!("KEY_EXCHANGE for empty slot {}", req.slot)))?;
        let chain = self
            .chain(req.slot)
            .ok_or_else(|| {
                invalid(format!(
                    "KEY_EXCHANGE for slot {} without a chain",
                    req.slot
                ))
            })?
            .clone();
        let sm = parse_sm_versions_for(v, req.opaque).map_err(|e| {
            invalid(format!(
                "KEY_EXCHANGE opaque data without a secured message version list: {}",
                e.as_str()
            ))
        })?;
        let sm_version = match sm {
            SmVersions::Supported(_) => select_sm_version(&sm, &SECURED_VERSIONS),
            SmVersions::Selected(_) => None,
        }
        .ok_or_else(|| invalid("KEY_EXCHANGE offers no secured message version 1.0 or 1.1"))?;
        let ecdhe = Ecdhe::generate(self.dhe)
            .ok_or_else(|| (SPDM_ERROR_UNSPECIFIED, 0, "unsupported DHE".to_string()))?;
        let shared = ecdhe
            .shared_secret(req.exchange)
            .ok_or_else(|| invalid("KEY_EXCHANGE ExchangeData is not a point of the group"))?;
        let exchange = ecdhe.exchange_data();
        let rsp_session_id = self.next_rsp_session_id;
        self.next_rsp_session_id = self.next_rsp_session_id.wrapping_add(1).max(1);
        let mut opaque = [0u8; 16];
        let on = encode_sm_version_selection_for(v, sm_version, &mut opaque).expect("16 bytes");
        let random: [u8; 32] = rand::rng().random();
        let heartbeat_period = self.session_options.heartbeat_period;
        let in_clear = self.session_options.handshake_in_clear
            && self.requester_caps.has(SPDM_CAP_HANDSHAKE_IN_THE_CLEAR);
        let body = KeyExchangeRspBody {
            version: v,
            heartbeat_period,
            rsp_session_id,
            mut_auth_requested: 0,
            req_slot_id_param: 0,
            random_data: &random,
            exchange: &exchange,
            measurement_summary_hash: &summary,
            opaque: &opaque[..on],
        };
        let internal = |what: &str, e: &dyn std::fmt::Display| {
            (SPDM_ERROR_UNSPECIFIED, 0, format!("{what}: {e}"))
        };
        let mut body_bytes = vec![0u8; 1024];
        let n = encode_key_exchange_rsp_body(&body, &mut body_bytes)
            .map_err(|e| internal("cannot encode KEY_EXCHANGE_RSP", &e))?;
        body_bytes.truncate(n);
        let chain_hash = spdm_hash(self.hash, &chain)
            .ok_or_else(|| (SPDM_ERROR_UNSPECIFIED, 0, "no hash negotiated".to_string()))?;
        let mut transcript = self.transcript[..self.vca_len].to_vec();
        transcript.extend_from_slice(&chain_hash);
        transcript.extend_from_slice(&payload[..req.len]);
        transcript.extend_from_slice(&body_bytes);
        let th = spdm_hash(self.hash, &transcript).unwrap_or_default();
        let mut signed = [0u8; 200];
        let sn = signed_message(v, SPDM_KEY_EXCHANGE_RSP_SIGN_CONTEXT, &th, &mut signed)
            .map_err(|e| internal("signing prefix", &e))?;
        // 1.1: the signature covers the transcript hash itself (no signing prefix).
        let digest = if v >= SpdmVersion::V1_2 {
            spdm_hash(self.hash, &signed[..sn]).unwrap_or_default()
        } else {
            th
        };
        let mut sig = slot
            .key
            .sign_spdm(self.asym, self.hash, &digest)
            .map_err(|e| (SPDM_ERROR_UNSPECIFIED, 0, e))?;
        if self.fault == Fault::BadKexSignature {
            let mid = sig.len() / 2;
            sig[mid] ^= 0x5A;
            log.push("fault bad-kex-signature: KEY_EXCHANGE_RSP signature corrupted".to_string());
        }
        transcript.extend_from_slice(&sig);
        let th1 = spdm_hash(self.hash, &transcript).unwrap_or_default();
        let mut ks = key_schedule(v, self.hash).map_err(|e| internal("key schedule", &e))?;
        let ke = |e: coco_spdm::session::KeyScheduleError| internal("key schedule", &e);
        let hs = ks.handshake_secret(&shared).map_err(ke)?;
        let (req_hs, rsp_hs) = ks.handshake_traffic_secrets(&hs, &th1).map_err(ke)?;
        let req_finished = ks.finished_key(&req_hs).map_err(ke)?;
        let rsp_finished = ks.finished_key(&rsp_hs).map_err(ke)?;
        // In the clear, ResponderVerifyData comes with FINISH_RSP instead.
        let mut verify = if in_clear {
            Vec::new()
        } else {
            ks.verify_data(&rsp_finished, &th1)
                .map_err(ke)?
                .as_bytes()
                .to_vec()
        };
        if self.fault == Fault::WrongVerifyData && !in_clear {
            verify[0] ^= 0xFF;
            log.push("fault wrong-verify-data: ResponderVerifyData corrupted".to_string());
        }
        transcript.extend_from_slice(&verify);
        let mut msg = vec![0u8; 2048];
        let n = encode_key_exchange_rsp(&body, &sig, &verify, &mut msg)
            .map_err(|e| internal("cannot encode KEY_EXCHANGE_RSP", &e))?;
        msg.truncate(n);
        let req_dir = Direction::new(&mut ks, self.aead, req_hs)
            .map_err(|e| (SPDM_ERROR_UNSPECIFIED, 0, e))?;
        let rsp_dir = Direction::new(&mut ks, self.aead, rsp_hs)
            .map_err(|e| (SPDM_ERROR_UNSPECIFIED, 0, e))?;
        let sid = session_id(req.req_session_id, rsp_session_id);
        if let Some(old) = self.session.take() {
            log.push(format!("session {:#010x} replaced", old.id));
        }
        self.session = Some(Session {
            id: sid,
            version: v,
            hash: self.hash,
            aead: self.aead,
            established: false,
            handshake_in_clear: in_clear,
            heartbeat_period,
            last_request: self.now(),
            ks,
            handshake_secret: hs,
            req_finished,
            rsp_finished,
            req: req_dir,
            rsp: rsp_dir,
            transcript,
            pending_update: None,
        });
        log.push(format!(
            "KEY_EXCHANGE {}.{} slot {} -> KEY_EXCHANGE_RSP session {sid:#010x} (DHE {}, AEAD {}, secured messages {}.{}, {} signature{}, HeartbeatPeriod {heartbeat_period} s, {})",
            v.major(),
            v.minor(),
            req.slot,
            alg_names(self.dhe, &DHE_NAMES),
            alg_names(self.aead, &AEAD_NAMES),
            sm_version >> 12,
            (sm_version >> 8) & 0xF,
            asym_name(self.asym),
            summary_name(req.meas_summary_type),
            if in_clear {
                "handshake in the clear, no ResponderVerifyData"
            } else {
                "encrypted handshake"
            },
        ));
        Ok(msg)
    }

    /// A secured CMA object (DOE type 2): decrypt, handle the SPDM request inside, answer with
    /// a secured CMA object. Failures to decrypt end the session with ERROR DecryptError in
    /// the clear.
    fn secured(&mut self, payload: &[u8], log: &mut Vec<String>) -> (u8, Vec<u8>) {
        let Some(mut s) = self.session.take() else {
            return self.invalid(
                "secured CMA object (type 2) without a session".to_string(),
                log,
            );
        };
        let header = match parse_record_header(payload, SPDM_PCI_DOE_SEQ_NUM_SIZE) {
            Ok(h) => h,
            Err(e) => {
                self.session = Some(s);
                return self.invalid(format!("malformed secured message: {e}"), log);
            }
        };
        if header.session_id != s.id {
            let reason = format!(
                "secured message for session {:#010x}, current {:#010x}",
                header.session_id, s.id
            );
            self.session = Some(s);
            return self.invalid(reason, log);
        }
        if s.handshake_in_clear && !s.established {
            // No handshake keys are in use: FINISH must come in a CMA object.
            log.push(format!(
                "secured message for session {:#010x} before FINISH, whose handshake is in the clear: answering SPDM ERROR UnexpectedRequest",
                s.id
            ));
            self.session = Some(s);
            return (
                DOE_TYPE_CMA,
                self.spdm_object(DOE_TYPE_CMA, &self.error(SPDM_ERROR_UNEXPECTED_REQUEST, 0)),
            );
        }
        let seq = s.req.seq.next();
        let mut buf = payload.to_vec();
        let params = RecordParams {
            session_id: s.id,
            iv: &s.req.iv,
            seq,
            seq_size: SPDM_PCI_DOE_SEQ_NUM_SIZE,
        };
        let msg = match open_record(&mut s.req.aead, &params, &mut buf) {
            Ok(m) => m.to_vec(),
            Err(e) => {
                log.push(format!(
                    "secured message {seq} of session {:#010x}: {e}: session ended, answering SPDM ERROR DecryptError",
                    s.id
                ));
                return (
                    DOE_TYPE_CMA,
                    self.spdm_object(DOE_TYPE_CMA, &self.error(SPDM_ERROR_DECRYPT_ERROR, 0)),
                );
            }
        };
        let _ = s.req.seq.accept(seq);
        s.last_request = self.now();
        let app_phase = s.established;
        let (rsp, after) = self.in_session(&mut s, &msg, log);
        // Encrypt with the response direction as it is now (UpdateAllKeys already moved it).
        let mut seq = match s.rsp.seq.take() {
            Ok(n) => n,
            Err(e) => {
                log.push(format!("session {:#010x}: {e}: ending it", s.id));
                return self.invalid("sequence numbers exhausted".to_string(), log);
            }
        };
        let mut sid = s.id;
        if app_phase {
            match self.fault {
                Fault::ReplayedSequence if seq > 0 => {
                    seq -= 1;
                    s.rsp.seq = coco_spdm::session::SequenceCounter::at(seq + 1);
                    log.push(format!(
                        "fault replayed-sequence: response sent with sequence number {seq} again"
                    ));
                }
                Fault::SkippedSequence => {
                    seq = s.rsp.seq.take().unwrap_or(seq);
                    log.push(format!(
                        "fault skipped-sequence: response sent with sequence number {seq}"
                    ));
                }
                Fault::WrongSessionId => {
                    sid ^= 0xFFFF_0000;
                    log.push(format!(
                        "fault wrong-session-id: response carries SessionID {sid:#010x}"
                    ));
                }
                _ => {}
            }
        }
        let params = RecordParams {
            session_id: sid,
            iv: &s.rsp.iv,
            seq,
            seq_size: SPDM_PCI_DOE_SEQ_NUM_SIZE,
        };
        let mut out = vec![0u8; rsp.len() + 64];
        let n = match encode_record(&mut s.rsp.aead, &params, &rsp, &[], &mut out) {
            Ok(n) => n,
            Err(e) => {
                log.push(format!("cannot encrypt the response: {e}"));
                return self.invalid("encryption failed".to_string(), log);
            }
        };
        out.truncate(n);
        if app_phase && self.fault == Fault::TamperedMac {
            out[n - 1] ^= 0x01;
            log.push("fault tampered-mac: MAC byte flipped".to_string());
        }
        match after {
            After::Nothing => self.session = Some(s),
            After::Established(dirs) => {
                let (req, rsp) = *dirs;
                s.req = req;
                s.rsp = rsp;
                s.established = true;
                log.push(format!(
                    "session {:#010x} established (application keys)",
                    s.id
                ));
                self.session = Some(s);
            }
            After::End => log.push(format!("session {:#010x} ended", s.id)),
        }
        (
            DOE_TYPE_SECURED_CMA,
            self.spdm_object(DOE_TYPE_SECURED_CMA, &out),
        )
    }

    /// FINISH in a CMA object (DOE type 1): only for a session whose handshake is in the clear
    /// and not finished yet; FINISH_RSP in the clear carries ResponderVerifyData. A
    /// RequesterVerifyData that does not verify ends the session (ERROR DecryptError).
    fn finish_in_clear(
        &mut self,
        payload: &[u8],
        header: SpdmHeader,
        log: &mut Vec<String>,
    ) -> Outcome {
        self.check_request(header, State::Negotiated)?;
        let Some(mut s) = self.session.take() else {
            return Err(self.session_required("FINISH in the clear without a session".into()));
        };
        if s.established {
            let reason = format!(
                "FINISH in the clear for session {:#010x}, which is established",
                s.id
            );
            self.session = Some(s);
            return Err(unexpected(reason));
        }
        if !s.handshake_in_clear {
            let reason = format!(
                "FINISH in the clear for session {:#010x}, whose handshake is encrypted (FINISH must be a secured message)",
                s.id
            );
            self.session = Some(s);
            return Err(self.session_required(reason));
        }
        match s.finish(payload, self.fault, log) {
            Ok((rsp, (req, rsp_dir))) => {
                s.req = req;
                s.rsp = rsp_dir;
                s.established = true;
                s.last_request = self.now();
                log.push(
                    "FINISH (in the clear, RequesterVerifyData verified) -> FINISH_RSP (ResponderVerifyData)"
                        .to_string(),
                );
                log.push(format!(
                    "session {:#010x} established (application keys)",
                    s.id
                ));
                self.session = Some(s);
                Ok(rsp)
            }
            Err((code, reason, true)) => {
                Err((code, 0, format!("{reason}: session {:#010x} ended", s.id)))
            }
            Err((code, reason, false)) => {
                self.session = Some(s);
                Err((code, 0, reason))
            }
        }
    }

    /// Handles the SPDM request inside a secured message; returns the response message.
    fn in_session(
        &mut self,
        s: &mut Session,
        msg: &[u8],
        log: &mut Vec<String>,
    ) -> (Vec<u8>, After) {
        let v = s.version;
        let err = |this: &Self, code: u8, data: u8, reason: String, log: &mut Vec<String>| {
            log.push(format!(
                "in session: {reason}: answering SPDM ERROR {}",
                error_code_name(code)
            ));
            this.error(code, data)
        };
        let Ok(header) = SpdmHeader::parse(msg) else {
            return (
                err(
                    self,
                    SPDM_ERROR_INVALID_REQUEST,
                    0,
                    "message shorter than its header".into(),
                    log,
                ),
                After::Nothing,
            );
        };
        if !s.established {
            if header.code != SPDM_FINISH {
                return (
                    err(
                        self,
                        SPDM_ERROR_UNEXPECTED_REQUEST,
                        0,
                        format!("{} before FINISH", code_name(header.code)),
                        log,
                    ),
                    After::Nothing,
                );
            }
            return match s.finish(msg, self.fault, log) {
                Ok((rsp, dirs)) => {
                    log.push(
                        "FINISH (encrypted, RequesterVerifyData verified) -> FINISH_RSP"
                            .to_string(),
                    );
                    (rsp, After::Established(Box::new(dirs)))
                }
                Err((code, reason, end)) => (
                    err(self, code, 0, reason, log),
                    if end { After::End } else { After::Nothing },
                ),
            };
        }
        if header.version != v.as_byte() {
            return (
                err(
                    self,
                    SPDM_ERROR_VERSION_MISMATCH,
                    0,
                    format!(
                        "{} with version {:#04x}",
                        code_name(header.code),
                        header.version
                    ),
                    log,
                ),
                After::Nothing,
            );
        }
        match header.code {
            SPDM_HEARTBEAT => match parse_heartbeat(msg) {
                Ok(_) => {
                    log.push("HEARTBEAT -> HEARTBEAT_ACK".to_string());
                    let mut out = [0u8; 4];
                    let n = encode_heartbeat_ack(v, &mut out).expect("4 bytes");
                    (out[..n].to_vec(), After::Nothing)
                }
                Err(e) => (
                    err(
                        self,
                        SPDM_ERROR_INVALID_REQUEST,
                        0,
                        format!("malformed HEARTBEAT: {}", e.as_str()),
                        log,
                    ),
                    After::Nothing,
                ),
            },
            SPDM_KEY_UPDATE => {
                let ku = match parse_key_update(msg) {
                    Ok(k) => k,
                    Err(e) => {
                        return (
                            err(
                                self,
                                SPDM_ERROR_INVALID_REQUEST,
                                0,
                                format!("malformed KEY_UPDATE: {}", e.as_str()),
                                log,
                            ),
                            After::Nothing,
                        )
                    }
                };
                if self.fault == Fault::RefuseKeyUpdate {
                    return (
                        err(
                            self,
                            SPDM_ERROR_UNSPECIFIED,
                            0,
                            "fault refuse-key-update".into(),
                            log,
                        ),
                        After::Nothing,
                    );
                }
                match (ku.operation, s.pending_update) {
                    (SPDM_KEY_UPDATE_OP_UPDATE_KEY | SPDM_KEY_UPDATE_OP_UPDATE_ALL_KEYS, None) => {
                        let all = ku.operation == SPDM_KEY_UPDATE_OP_UPDATE_ALL_KEYS;
                        let updated = s.req.updated(&mut s.ks, s.aead).and_then(|r| {
                            let rs = if all {
                                Some(s.rsp.updated(&mut s.ks, s.aead)?)
                            } else {
                                None
                            };
                            Ok((r, rs))
                        });
                        match updated {
                            Ok((r, rs)) => {
                                s.req = r;
                                if let Some(rs) = rs {
                                    s.rsp = rs;
                                }
                                s.pending_update = Some(ku.operation);
                            }
                            Err(e) => {
                                return (
                                    err(
                                        self,
                                        SPDM_ERROR_UNSPECIFIED,
                                        0,
                                        format!("key update: {e}"),
                                        log,
                                    ),
                                    After::Nothing,
                                )
                            }
                        }
                        log.push(format!(
                            "KEY_UPDATE {} tag {} -> KEY_UPDATE_ACK ({})",
                            if all { "UpdateAllKeys" } else { "UpdateKey" },
                            ku.tag,
                            if all {
                                "both directions updated"
                            } else {
                                "request direction updated"
                            }
                        ));
                    }
                    (SPDM_KEY_UPDATE_OP_VERIFY_NEW_KEY, Some(_)) => {
                        s.pending_update = None;
                        log.push(format!(
                            "KEY_UPDATE VerifyNewKey tag {} -> KEY_UPDATE_ACK",
                            ku.tag
                        ));
                    }
                    (op, pending) => {
                        return (
                            err(
                                self,
                                SPDM_ERROR_INVALID_REQUEST,
                                0,
                                format!(
                                    "KEY_UPDATE operation {op} with pending update {pending:?}"
                                ),
                                log,
                            ),
                            After::Nothing,
                        );
                    }
                }
                let mut out = [0u8; 4];
                let n = encode_key_update_ack(&ku, &mut out).expect("4 bytes");
                (out[..n].to_vec(), After::Nothing)
            }
            SPDM_END_SESSION => match parse_end_session(msg) {
                Ok(h) => {
                    log.push(format!(
                        "END_SESSION (attributes {:#x}) -> END_SESSION_ACK",
                        h.param1
                    ));
                    let mut out = [0u8; 4];
                    let n = encode_end_session_ack(v, &mut out).expect("4 bytes");
                    (out[..n].to_vec(), After::End)
                }
                Err(e) => (
                    err(
                        self,
                        SPDM_ERROR_INVALID_REQUEST,
                        0,
                        format!("malformed END_SESSION: {}", e.as_str()),
                        log,
                    ),
                    After::Nothing,
                ),
            },
            SPDM_GET_VERSION
            | SPDM_GET_CAPABILITIES
            | SPDM_NEGOTIATE_ALGORITHMS
            | SPDM_KEY_EXCHANGE
            | SPDM_FINISH => (
                err(
                    self,
                    SPDM_ERROR_UNEXPECTED_REQUEST,
                    0,
                    format!("{} inside a session", code_name(header.code)),
                    log,
                ),
                After::Nothing,
            ),
            SPDM_VENDOR_DEFINED_REQUEST => {
                let fault = self.fault;
                let slow = fault == Fault::SlowIdeKm && TeeIo::is_idekm_request(msg);
                match self.tee.vendor_defined(msg, v, fault, log) {
                    // A slow key store: the answer comes after ResponseNotReady.
                    Ok(rsp) if slow => (
                        self.not_ready_after(
                            SPDM_VENDOR_DEFINED_REQUEST,
                            rsp,
                            SLOW_RDT_EXPONENT,
                            log,
                        ),
                        After::Nothing,
                    ),
                    Ok(rsp) => (rsp, After::Nothing),
                    Err((code, data, reason)) => {
                        (err(self, code, data, reason, log), After::Nothing)
                    }
                }
            }
            _ => {
                // Application messages: any other request the endpoint serves (GET_MEASUREMENTS,
                // GET_DIGESTS, GET_CERTIFICATE, ...), answered inside the session.
                let mut inner = Vec::new();
                let rsp = self.spdm(msg, &mut inner);
                log.extend(inner.into_iter().map(|l| format!("in session: {l}")));
                (rsp, After::Nothing)
            }
        }
    }

    /// Fault not-ready: keeps `response` for RESPOND_IF_READY and returns ResponseNotReady.
    fn not_ready(&mut self, request_code: u8, response: Vec<u8>, log: &mut Vec<String>) -> Vec<u8> {
        self.not_ready_after(request_code, response, RDT_EXPONENT, log)
    }

    /// Keeps `response` for RESPOND_IF_READY and returns ResponseNotReady with RDTExponent
    /// `rdt_exponent`.
    fn not_ready_after(
        &mut self,
        request_code: u8,
        response: Vec<u8>,
        rdt_exponent: u8,
        log: &mut Vec<String>,
    ) -> Vec<u8> {
        let token = self.next_token;
        self.next_token = self.next_token.wrapping_add(1).max(1);
        let nr = ResponseNotReady {
            rdt_exponent,
            request_code,
            token,
            rdtm: RDTM,
        };
        self.pending = Some(Pending {
            request_code,
            token,
            response,
        });
        log.push(format!(
            "fault {}: {} answered ERROR ResponseNotReady (token {token})",
            self.fault.name(),
            code_name(request_code)
        ));
        let mut msg = [0u8; 8];
        let n = encode_response_not_ready(self.error_version(), &nr, &mut msg).expect("8 bytes");
        msg[..n].to_vec()
    }

    fn respond_if_ready(&mut self, payload: &[u8], log: &mut Vec<String>) -> Outcome {
        let req = parse_respond_if_ready(payload)
            .map_err(|e| invalid(format!("malformed RESPOND_IF_READY: {}", e.as_str())))?;
        let pending = self
            .pending
            .take()
            .ok_or_else(|| unexpected("RESPOND_IF_READY without a pending response"))?;
        if pending.request_code != req.request_code || pending.token != req.token {
            let reason = format!(
                "RESPOND_IF_READY for {:#04x} token {}, pending {:#04x} token {}",
                req.request_code, req.token, pending.request_code, pending.token
            );
            self.pending = Some(pending);
            return Err(invalid(reason));
        }
        log.push(format!(
            "RESPOND_IF_READY token {} -> the {} response",
            req.token,
            code_name(pending.request_code)
        ));
        Ok(pending.response)
    }

    /// A well-formed DOE object of `object_type` whose payload is 4 to 64 pseudo-random bytes
    /// (deterministic per responder, so runs are reproducible).
    fn garbage(&mut self, object_type: u8) -> Vec<u8> {
        let len = 4 + (self.next_random() % 61) as usize;
        let payload: Vec<u8> = (0..len).map(|_| self.next_random() as u8).collect();
        self.spdm_object(object_type, &payload)
    }

    /// xorshift64*.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coco_doe::{decode_discovery_response, DoeHeader};
    use coco_spdm::{parse_error_response, parse_version_response, SPDM_GET_MEASUREMENTS};

    fn all_versions() -> Vec<VersionEntry> {
        [
            SpdmVersion::V1_0,
            SpdmVersion::V1_1,
            SpdmVersion::V1_2,
            SpdmVersion::V1_3,
        ]
        .map(SpdmVersion::to_entry)
        .to_vec()
    }

    fn cma(msg: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; object_size(msg.len()).unwrap()];
        encode_object(PCI_SIG_VENDOR_ID, DOE_TYPE_CMA, msg, &mut out).unwrap();
        out
    }

    /// Decodes a reply as a CMA object and returns its SPDM payload.
    fn cma_payload(reply: &Reply) -> Vec<u8> {
        let bytes = reply.object.as_ref().expect("a reply");
        let obj = decode_object(bytes).expect("well-formed DOE object");
        assert!(obj.header.is(PCI_SIG_VENDOR_ID, DOE_TYPE_CMA));
        obj.payload.to_vec()
    }

    fn assert_error(reply: &Reply, code: u8, data: u8) {
        let payload = cma_payload(reply);
        let e = parse_error_response(&payload).unwrap();
        assert_eq!((e.version, e.code, e.data), (0x10, code, data), "{reply:?}");
        assert!(e.extended.iter().all(|&b| b == 0));
    }

    #[test]
    fn get_version_answers_version() {
        let mut r = Responder::new(all_versions(), Fault::None);
        let reply = r.respond(&cma(&[0x10, SPDM_GET_VERSION, 0, 0]));
        let payload = cma_payload(&reply);
        let v = parse_version_response(&payload).unwrap();
        assert!(v.entries().eq(all_versions()));
        assert_eq!(
            reply.log,
            vec!["GET_VERSION -> VERSION [1.0, 1.1, 1.2, 1.3]".to_string()]
        );
        assert_eq!(r.requests(), 1);
    }

    #[test]
    fn configured_versions_are_used() {
        let mut r = Responder::new(vec![SpdmVersion::V1_2.to_entry()], Fault::None);
        let payload = cma_payload(&r.respond(&cma(&[0x10, SPDM_GET_VERSION, 0, 0])));
        // 6 + 2 = 8 bytes: no padding needed.
        assert_eq!(payload, [0x10, 0x04, 0, 0, 0, 1, 0x00, 0x12]);
    }

    #[test]
    fn get_version_with_wrong_version_is_version_mismatch() {
        let mut r = Responder::new(all_versions(), Fault::None);
        let reply = r.respond(&cma(&[0x12, SPDM_GET_VERSION, 0, 0]));
        assert_error(&reply, SPDM_ERROR_VERSION_MISMATCH, 0);
    }

    #[test]
    fn other_requests_are_unsupported() {
        let mut r = Responder::new(all_versions(), Fault::None);
        let reply = r.respond(&cma(&[0x12, SPDM_GET_MEASUREMENTS, 0, 0, 0, 0, 0, 0]));
        // Nothing negotiated: the ERROR carries the request's version.
        let payload = cma_payload(&reply);
        let e = parse_error_response(&payload).unwrap();
        assert_eq!(
            (e.version, e.code, e.data),
            (0x12, SPDM_ERROR_UNSUPPORTED_REQUEST, SPDM_GET_MEASUREMENTS)
        );
        assert!(
            reply.log[0].starts_with("GET_MEASUREMENTS (0xe0"),
            "{:?}",
            reply.log
        );
    }

    #[test]
    fn malformed_objects_get_invalid_request() {
        let mut r = Responder::new(all_versions(), Fault::None);
        let good = cma(&[0x10, SPDM_GET_VERSION, 0, 0]);
        let mut wrong_len = good.clone();
        wrong_len[4] = 5;
        let mut wrong_vendor = good.clone();
        wrong_vendor[0] = 0x86;
        let mut unknown_type = good.clone();
        unknown_type[2] = 0x33;
        let mut secured = good.clone();
        secured[2] = DOE_TYPE_SECURED_CMA;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "malformed DOE object (0 bytes)"),
            (good[..7].to_vec(), "malformed DOE object (7 bytes)"),
            (good[..10].to_vec(), "malformed DOE object (10 bytes)"),
            (
                wrong_len,
                "malformed DOE object (12 bytes): DOE length field",
            ),
            (wrong_vendor, "DOE object with vendor 0x0086"),
            (unknown_type, "unknown DOE object type 51"),
            (secured, "secured CMA object"),
            (cma(&[]), "SPDM message of 0 bytes"),
            (
                cma(&[0x10, SPDM_GET_VERSION, 0, 0, 0, 0, 0, 0]),
                "malformed GET_VERSION",
            ),
        ];
        for (req, reason) in cases {
            let reply = r.respond(&req);
            assert_error(&reply, SPDM_ERROR_INVALID_REQUEST, 0);
            assert!(
                reply.log[0].starts_with(reason),
                "{reason}: {:?}",
                reply.log
            );
            assert!(reply.log[0].ends_with("answering SPDM ERROR InvalidRequest"));
        }
    }

    #[test]
    fn discovery_is_answered() {
        let mut r = Responder::new(all_versions(), Fault::None);
        for (index, ty, next) in [(0u8, 0u8, 1u8), (1, 1, 2), (2, 2, 0), (9, 2, 0)] {
            let mut req = vec![0u8; 12];
            encode_object(
                PCI_SIG_VENDOR_ID,
                DOE_TYPE_DISCOVERY,
                &[index, 0, 0, 0],
                &mut req,
            )
            .unwrap();
            let reply = r.respond(&req);
            let bytes = reply.object.unwrap();
            let obj = decode_object(&bytes).unwrap();
            assert!(obj.header.is(PCI_SIG_VENDOR_ID, DOE_TYPE_DISCOVERY));
            let d = decode_discovery_response(obj.payload).unwrap();
            assert_eq!((d.vendor, d.object_type, d.next_index), (1, ty, next));
        }
    }

    #[test]
    fn fault_no_answer() {
        let mut r = Responder::new(all_versions(), Fault::NoAnswer);
        let reply = r.respond(&cma(&[0x10, SPDM_GET_VERSION, 0, 0]));
        assert_eq!(reply.object, None);
        assert!(reply.log.iter().any(|l| l.contains("no-answer")));
    }

    #[test]
    fn fault_garbage_is_well_formed_doe() {
        let mut r = Responder::new(all_versions(), Fault::Garbage);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let reply = r.respond(&cma(&[0x10, SPDM_GET_VERSION, 0, 0]));
            let bytes = reply.object.unwrap();
            let obj = decode_object(&bytes).unwrap();
            assert!(obj.header.is(PCI_SIG_VENDOR_ID, DOE_TYPE_CMA));
            assert!((4..=64).contains(&obj.payload.len()));
            seen.insert(obj.payload.to_vec());
        }
        assert!(seen.len() > 40, "garbage should vary");
    }

    #[test]
    fn arbitrary_input_always_gets_well_formed_reply() {
        let mut r = Responder::new(all_versions(), Fault::None);
        let mut state = 1u64;
        for len in 0..300usize {
            let req: Vec<u8> = (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (state >> 56) as u8
                })
                .collect();
            let reply = r.respond(&req);
            let bytes = reply.object.unwrap();
            assert!(bytes.len() <= QEMU_MAX_RESPONSE_SIZE);
            let obj = decode_object(&bytes).unwrap();
            assert_eq!(obj.header.vendor, PCI_SIG_VENDOR_ID);
            assert_eq!(
                DoeHeader::decode(&bytes).unwrap().size_bytes(),
                Some(bytes.len())
            );
        }
    }

    /// The (version, code) of an ERROR reply.
    fn error_version_code(reply: &Reply) -> (u8, u8) {
        let payload = cma_payload(reply);
        let e = parse_error_response(&payload).unwrap();
        (e.version, e.code)
    }

    #[test]
    fn errors_carry_the_request_version_before_negotiation() {
        let mut r = Responder::new(all_versions(), Fault::None);
        r.respond(&cma(&[0x10, SPDM_GET_VERSION, 0, 0]));
        // Malformed GET_CAPABILITIES at 1.2 (too short): InvalidRequest with version 1.2.
        let reply = r.respond(&cma(&[0x12, SPDM_GET_CAPABILITIES, 0, 0]));
        assert_eq!(
            error_version_code(&reply),
            (0x12, SPDM_ERROR_INVALID_REQUEST)
        );
        // Out of order before CAPABILITIES: UnexpectedRequest with the request's version.
        let reply = r.respond(&cma(&[0x13, SPDM_NEGOTIATE_ALGORITHMS, 0, 0]));
        assert_eq!(
            error_version_code(&reply),
            (0x13, SPDM_ERROR_UNEXPECTED_REQUEST)
        );
        // A version the endpoint does not offer, and GET_VERSION's errors: 1.0.
        let reply = r.respond(&cma(&[0x14, SPDM_GET_CAPABILITIES, 0, 0]));
        assert_eq!(
            error_version_code(&reply),
            (0x10, SPDM_ERROR_VERSION_MISMATCH)
        );
        let reply = r.respond(&cma(&[0x12, SPDM_GET_VERSION, 0, 0]));
        assert_eq!(
            error_version_code(&reply),
            (0x10, SPDM_ERROR_VERSION_MISMATCH)
        );
        // Busy before CAPABILITIES: the request's version too.
        let mut r = Responder::new(all_versions(), Fault::Busy(1));
        r.respond(&cma(&[0x10, SPDM_GET_VERSION, 0, 0]));
        r.respond(&cma(&[0x10, SPDM_GET_VERSION, 0, 0]));
        let mut caps = Capabilities::new(SpdmVersion::V1_1);
        caps.ct_exponent = 10;
        let mut buf = [0u8; 32];
        let n = coco_spdm::auth::encode_get_capabilities(&caps, &mut buf).unwrap();
        let reply = r.respond(&cma(&buf[..n]));
        assert_eq!(error_version_code(&reply), (0x11, SPDM_ERROR_BUSY));
        // Once negotiated, ERRORs carry the negotiated version whatever the request says.
        let reply = r.respond(&cma(&buf[..n]));
        assert_eq!(cma_payload(&reply)[..2], [0x11, 0x61]);
        let mut bad = buf;
        bad[0] = 0x12;
        r.respond(&cma(&bad[..n])); // busy
        let reply = r.respond(&cma(&bad[..n]));
        assert_eq!(
            error_version_code(&reply),
            (0x11, SPDM_ERROR_UNEXPECTED_REQUEST)
        );
    }

    #[test]
    fn largest_version_reply_fits_qemu() {
        let entries = vec![SpdmVersion::V1_2.to_entry(); 255];
        let mut r = Responder::new(entries, Fault::None);
        let reply = r.respond(&cma(&[0x10, SPDM_GET_VERSION, 0, 0]));
        let bytes = reply.object.unwrap();
        assert!(bytes.len() <= QEMU_MAX_RESPONSE_SIZE);
        let obj = decode_object(&bytes).unwrap();
        assert_eq!(parse_version_response(obj.payload).unwrap().count(), 255);
    }
}
