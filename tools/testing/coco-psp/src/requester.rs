//! The firmware's SPDM requester: VCA, GET_DIGESTS, GET_CERTIFICATE, KEY_EXCHANGE (signature
//! verified with the key of the leaf certificate it read) and FINISH inside the session, then
//! IDE_KM over secured messages, TDISP (bind, state, stop), GET_MEASUREMENTS and END_SESSION. Every message goes through
//! a [`Link`]: the PSP model runs these functions on a worker thread whose link hands each
//! message to the host (SPDM_REQUEST) and waits for the answer.
//!
//! Every failure is a [`Fail`] naming the message and the reason.

use coco_endpoint::crypto::{key_schedule, Direction as AeadDir, Ecdhe};
use coco_endpoint::pki::spdm_hash;
use coco_idekm::{
    check_ack, pair_from_index, parse_key_set_cmd, parse_kp_ack, parse_query_resp, Direction,
    IdeKmMessage, KeyProg, KeySetCmd, KeySubStream, Query, SubStream, IDE_KM_KP_ACK_SUCCESS,
    IDE_KM_K_GOSTOP_ACK,
};
use coco_sevtio::SpdmDataType;
use coco_spdm::auth::*;
use coco_spdm::meas::{
    encode_get_measurements, measurements_signed_message, negotiated_measurement_hash,
    parse_measurements, GetMeasurements, MeasurementsParams, SPDM_MEAS_ATTR_RAW_BIT_STREAM,
    SPDM_MEAS_ATTR_SIGNATURE, SPDM_MEAS_OP_ALL,
};
use coco_spdm::session::*;
use coco_spdm::vendor::{
    encode_pci_sig_vdm, parse_pci_sig_vdm, PCI_PROTOCOL_IDE_KM, PCI_PROTOCOL_TDISP,
};
use coco_spdm::*;
use coco_tdisp::{
    encode_request, error_name, message_name, parse_response, InterfaceId, LockInterface, TdiState,
    TdispRequest, TdispResponse, TDISP_NONCE_SIZE, TDISP_VERSION_1_0,
};
use rand::RngExt;
use signature::hazmat::PrehashVerifier;
use zeroize::Zeroizing;

use crate::wire::{
    rp_result_name, RootPortKey, RP_DIR_RX, RP_DIR_TX, RP_OP_GO, RP_OP_PROGRAM, RP_OP_STOP,
    RP_RESULT_DONE,
};

/// Why a requester operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail {
    /// The host abandoned the command (or the connection ended): no reason to log here.
    Abandoned,
    /// The device failed: SPDM_ERROR, with the message and the reason.
    Device(String),
    /// The root port refused a key operation: ERR_IN_DEV_CONN.
    RootPort(String),
}

fn dev(what: &str, why: impl std::fmt::Display) -> Fail {
    Fail::Device(format!("{what}: {why}"))
}

/// The transport of the requester: one SPDM message out, the device's answer back; and the
/// platform's root port key path.
pub trait Link {
    /// Sends `msg` as `ty` and returns the answer's type and bytes (which may carry up to 31
    /// bytes of zero padding).
    fn exchange(
        &mut self,
        what: &str,
        ty: SpdmDataType,
        msg: &[u8],
    ) -> Result<(SpdmDataType, Vec<u8>), Fail>;
    /// Runs a root port key operation; returns QEMU's RESULT.
    fn root_port_key(&mut self, req: RootPortKey) -> Result<u32, Fail>;
}

/// SPDM versions the model speaks (sessions need 1.1).
pub const VERSIONS: [SpdmVersion; 3] = [SpdmVersion::V1_1, SpdmVersion::V1_2, SpdmVersion::V1_3];
/// The requester's DataTransferSize and MaxSPDMmsgSize: a message and its secured-message
/// overhead fit the smallest response buffer (4 KiB less the buffer and object headers).
pub const DATA_TRANSFER_SIZE: u32 = 3968;
/// GET_CERTIFICATE portion length.
pub const CERT_PORTION: u16 = 1024;
/// The requester's half of the SessionID.
pub const REQ_SESSION_ID: u16 = 0xC0C0;

/// The public key of the leaf certificate.
#[derive(Debug, Clone)]
pub enum LeafKey {
    /// ECDSA P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// ECDSA P-384.
    P384(p384::ecdsa::VerifyingKey),
    /// ECDSA P-521.
    P521(p521::ecdsa::VerifyingKey),
    /// RSA (PKCS#1 v1.5 or PSS).
    Rsa(rsa::PublicKey),
}

impl LeafKey {
    /// The public key of the DER certificate `der` for BaseAsymAlgo `asym`.
    pub fn from_certificate(der: &[u8], asym: u32) -> Result<LeafKey, String> {
        use rsa::pkcs8::DecodePublicKey;
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("leaf certificate does not parse: {e}"))?;
        let spki = cert.tbs_certificate.subject_pki.raw;
        let e = |e: rsa::pkcs8::spki::Error| format!("leaf key is not {}: {e}", asym_name(asym));
        Ok(match asym {
            SPDM_ASYM_ECDSA_P256 => {
                LeafKey::P256(p256::ecdsa::VerifyingKey::from_public_key_der(spki).map_err(e)?)
            }
            SPDM_ASYM_ECDSA_P384 => {
                LeafKey::P384(p384::ecdsa::VerifyingKey::from_public_key_der(spki).map_err(e)?)
            }
            SPDM_ASYM_ECDSA_P521 => {
                LeafKey::P521(p521::ecdsa::VerifyingKey::from_public_key_der(spki).map_err(e)?)
            }
            SPDM_ASYM_RSASSA_2048
            | SPDM_ASYM_RSAPSS_2048
            | SPDM_ASYM_RSASSA_3072
            | SPDM_ASYM_RSAPSS_3072
            | SPDM_ASYM_RSASSA_4096
            | SPDM_ASYM_RSAPSS_4096 => {
                LeafKey::Rsa(rsa::PublicKey::from_public_key_der(spki).map_err(e)?)
            }
            other => return Err(format!("unsupported BaseAsymAlgo {other:#x}")),
        })
    }

    /// Verifies the SPDM signature `sig` (BaseAsymAlgo `asym`) over `digest` (BaseHashAlgo
    /// `hash`).
    pub fn verify(&self, asym: u32, hash: u32, digest: &[u8], sig: &[u8]) -> Result<(), String> {
        let e = |e: signature::Error| format!("signature does not verify: {e}");
        match self {
            LeafKey::P256(k) => k
                .verify_prehash(digest, &p256::ecdsa::Signature::from_slice(sig).map_err(e)?)
                .map_err(e),
            LeafKey::P384(k) => k
                .verify_prehash(digest, &p384::ecdsa::Signature::from_slice(sig).map_err(e)?)
                .map_err(e),
            LeafKey::P521(k) => k
                .verify_prehash(digest, &p521::ecdsa::Signature::from_slice(sig).map_err(e)?)
                .map_err(e),
            LeafKey::Rsa(k) => {
                let pss = matches!(
                    asym,
                    SPDM_ASYM_RSAPSS_2048 | SPDM_ASYM_RSAPSS_3072 | SPDM_ASYM_RSAPSS_4096
                );
                let k = k.clone();
                macro_rules! rsa_verify {
                    ($h:ty) => {
                        if pss {
                            rsa::pss::VerifyingKey::<$h>::new(k).verify_prehash(
                                digest,
                                &rsa::pss::Signature::try_from(sig).map_err(e)?,
                            )
                        } else {
                            rsa::pkcs1v15::VerifyingKey::<$h>::new(k).verify_prehash(
                                digest,
                                &rsa::pkcs1v15::Signature::try_from(sig).map_err(e)?,
                            )
                        }
                    };
                }
                match hash {
                    SPDM_HASH_SHA256 => rsa_verify!(sha2::Sha256),
                    SPDM_HASH_SHA384 => rsa_verify!(sha2::Sha384),
                    SPDM_HASH_SHA512 => rsa_verify!(sha2::Sha512),
                    _ => return Err("unsupported hash for RSA".into()),
                }
                .map_err(e)
            }
        }
    }
}

/// An established SPDM session with its device (application keys, transcript pieces, chain).
#[derive(Clone)]
pub struct Session {
    /// Negotiated SPDM version.
    pub version: SpdmVersion,
    /// Certificate slot of the session.
    pub slot: u8,
    /// The certificate chain of the slot, as GET_CERTIFICATE returned it.
    pub chain: Vec<u8>,
    /// BaseHashAlgo.
    pub hash: u32,
    /// BaseAsymAlgo.
    pub asym: u32,
    /// The DHE group ALGORITHMS selected.
    pub dhe: u16,
    /// The AEAD ALGORITHMS selected.
    pub aead: u16,
    /// The measurement hash size (`None`: no measurements).
    pub meas_hash_size: Option<usize>,
    /// MEAS_CAP of the device.
    pub meas_cap: u8,
    /// VCA: GET_VERSION .. ALGORITHMS.
    pub vca: Vec<u8>,
    leaf: LeafKey,
    id: u32,
    req: AeadDir,
    rsp: AeadDir,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Session {{ id: {:#x}, version: {:#x}, slot: {} }}",
            self.id,
            self.version.as_byte(),
            self.slot
        )
    }
}

/// What TIO_DEV_CONNECT asks of the requester.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectParams {
    /// Requester ID of the device (for ROOT_PORT_KEY).
    pub requester_id: u16,
    /// Its segment.
    pub segment: u8,
    /// The IDE stream ID.
    pub stream_id: u8,
    /// The certificate slot.
    pub cert_slot: u8,
    /// Fault bad-rp-key: flip a byte of the root port's RX-PR key.
    pub bad_rp_key: bool,
    /// Fault relay-forever: relay GET_VERSION without end.
    pub relay_forever: bool,
    /// Whether there is a root port to key (ROOT_PORT_KEY); without one only the endpoint's
    /// keys are programmed (the guest side: no root port in its emulation).
    pub root_port: bool,
    /// The BaseHashAlgo the requester offers ([`HASHES_ALL`] on the host side).
    pub base_hash: u32,
}

/// Every BaseHashAlgo the requester supports.
pub const HASHES_ALL: u32 = SPDM_HASH_SHA256 | SPDM_HASH_SHA384 | SPDM_HASH_SHA512;

/// Parses `body` (a message followed by up to 31 zero bytes of padding) with `parse`, which
/// accepts at most 3 bytes of padding: tries the body with its trailing zeros cut, longest
/// first. Returns the first success or the last error.
pub fn unpadded<'a, T, E>(
    body: &'a [u8],
    parse: impl Fn(&'a [u8]) -> Result<T, E>,
) -> Result<T, E> {
    let mut len = body.len();
    loop {
        let r = parse(body.get(..len).unwrap_or(body));
        if r.is_ok() || len == 0 || body.len().saturating_sub(len) >= 31 {
            return r;
        }
        match body.get(len.saturating_sub(1)) {
            Some(0) => len = len.saturating_sub(1),
            _ => return r,
        }
    }
}

/// The SPDM ERROR in `msg`, if it is one, as text.
fn error_text(msg: &[u8]) -> Option<String> {
    let e = parse_error_response(msg).ok()?;
    Some(format!(
        "device answered SPDM ERROR {} ({:#04x}, data {:#04x})",
        error_code_name(e.code),
        e.code,
        e.data
    ))
}

/// Sends `msg` in the clear; returns the (padded) answer, failing on an ERROR.
fn clear(link: &mut dyn Link, what: &str, msg: &[u8]) -> Result<Vec<u8>, Fail> {
    let (ty, rsp) = link.exchange(what, SpdmDataType::Spdm, msg)?;
    if ty != SpdmDataType::Spdm {
        return Err(dev(what, "answer is a secured message"));
    }
    if let Some(e) = error_text(&rsp) {
        return Err(dev(what, e));
    }
    Ok(rsp)
}

impl Session {
    /// Sends `msg` inside the session; returns the decrypted answer, failing on an ERROR.
    pub fn secured(
        &mut self,
        link: &mut dyn Link,
        what: &str,
        msg: &[u8],
    ) -> Result<Vec<u8>, Fail> {
        let seq = self.req.seq.take().map_err(|e| dev(what, e))?;
        let p = RecordParams {
            session_id: self.id,
            iv: &self.req.iv,
            seq,
            seq_size: SPDM_PCI_DOE_SEQ_NUM_SIZE,
        };
        let size = record_size(msg.len(), 0, SPDM_PCI_DOE_SEQ_NUM_SIZE)
            .ok_or_else(|| dev(what, "message too large"))?;
        let mut rec = vec![0u8; size];
        let n =
            encode_record(&mut self.req.aead, &p, msg, &[], &mut rec).map_err(|e| dev(what, e))?;
        let (ty, mut rsp) =
            link.exchange(what, SpdmDataType::SecuredSpdm, rec.get(..n).unwrap_or(&[]))?;
        if ty != SpdmDataType::SecuredSpdm {
            return Err(dev(
                what,
                error_text(&rsp).unwrap_or_else(|| "answer in the clear".into()),
            ));
        }
        // The record's own Length tells where the host's padding starts.
        let hdr = 4usize
            .saturating_add(SPDM_PCI_DOE_SEQ_NUM_SIZE)
            .saturating_add(2);
        let length = rsp
            .get(hdr.saturating_sub(2)..hdr)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(|b| usize::from(u16::from_le_bytes(b)))
            .ok_or_else(|| dev(what, "secured message truncated"))?;
        rsp.truncate(hdr.saturating_add(length));
        let rseq = self.rsp.seq.next();
        let p = RecordParams {
            session_id: self.id,
            iv: &self.rsp.iv,
            seq: rseq,
            seq_size: SPDM_PCI_DOE_SEQ_NUM_SIZE,
        };
        let m = open_record(&mut self.rsp.aead, &p, &mut rsp)
            .map_err(|e| dev(what, format!("secured response: {e}")))?
            .to_vec();
        self.rsp.seq.accept(rseq).map_err(|e| dev(what, e))?;
        if let Some(e) = error_text(&m) {
            return Err(dev(what, e));
        }
        Ok(m)
    }

    /// An IDE_KM request inside the session; returns the IDE_KM response.
    fn ide_km(
        &mut self,
        link: &mut dyn Link,
        what: &str,
        msg: &IdeKmMessage<'_>,
    ) -> Result<Vec<u8>, Fail> {
        let mut ide = [0u8; 64];
        let n = msg.encode(&mut ide).map_err(|e| dev(what, e.as_str()))?;
        let mut vdm = [0u8; 96];
        let vn = encode_pci_sig_vdm(
            self.version,
            SPDM_VENDOR_DEFINED_REQUEST,
            PCI_PROTOCOL_IDE_KM,
            ide.get(..n).unwrap_or(&[]),
            &mut vdm,
        )
        .map_err(|e| dev(what, e))?;
        let rsp = self.secured(link, what, vdm.get(..vn).unwrap_or(&[]))?;
        let p = parse_pci_sig_vdm(&rsp, SPDM_VENDOR_DEFINED_RESPONSE).map_err(|e| dev(what, e))?;
        if p.protocol_id != PCI_PROTOCOL_IDE_KM {
            return Err(dev(what, format!("answer for protocol {}", p.protocol_id)));
        }
        Ok(p.message.to_vec())
    }

    fn key_set(
        &mut self,
        link: &mut dyn Link,
        go: bool,
        stream_id: u8,
        sub: KeySubStream,
    ) -> Result<(), Fail> {
        let c = KeySetCmd {
            stream_id,
            sub,
            port_index: 0,
        };
        let (what, msg) = if go {
            ("IDE_KM K_SET_GO", IdeKmMessage::KSetGo(c))
        } else {
            ("IDE_KM K_SET_STOP", IdeKmMessage::KSetStop(c))
        };
        let what = format!("{what} {}", sub_name(sub));
        let rsp = self.ide_km(link, &what, &msg)?;
        let ack =
            parse_key_set_cmd(&rsp, IDE_KM_K_GOSTOP_ACK).map_err(|e| dev(&what, e.as_str()))?;
        check_ack(stream_id, sub, 0, (ack.stream_id, ack.sub, ack.port_index))
            .map_err(|_| dev(&what, "K_GOSTOP_ACK does not match the request"))
    }
}

fn sub_name(sub: KeySubStream) -> String {
    format!(
        "K{} {} {}",
        sub.key_set(),
        match sub.direction() {
            Direction::Rx => "RX",
            Direction::Tx => "TX",
        },
        match sub.sub_stream() {
            SubStream::Pr => "PR",
            SubStream::Npr => "NPR",
            SubStream::Cpl => "CPL",
        }
    )
}

fn rp_key(
    link: &mut dyn Link,
    p: &ConnectParams,
    op: u8,
    direction: u8,
    sub_stream: u8,
    key: &[u8; 32],
    ifv: &[u8; 8],
) -> Result<(), Fail> {
    let req = RootPortKey {
        requester_id: p.requester_id,
        segment: p.segment,
        stream_id: p.stream_id,
        direction,
        sub_stream,
        key_set: 0,
        op,
        key: *key,
        ifv: *ifv,
    };
    let what = format!("{req:?}");
    let r = link.root_port_key(req)?;
    if r != RP_RESULT_DONE {
        return Err(Fail::RootPort(format!(
            "ROOT_PORT_KEY {what}: {} ({r})",
            rp_result_name(r)
        )));
    }
    Ok(())
}

fn hash_of(hash: u32, what: &str, data: &[u8]) -> Result<Vec<u8>, Fail> {
    spdm_hash(hash, data).ok_or_else(|| dev(what, "unsupported hash"))
}

/// The digest an SPDM signature is computed over: for 1.2+ the hash of the signing prefix
/// for `context` and `th`, before that `th` itself.
fn signed_digest(v: SpdmVersion, hash: u32, context: &str, th: &[u8]) -> Result<Vec<u8>, Fail> {
    if v < SpdmVersion::V1_2 {
        return Ok(th.to_vec());
    }
    let mut buf = [0u8; 256];
    let n = signed_message(v, context, th, &mut buf).map_err(|e| dev(context, e))?;
    hash_of(hash, context, buf.get(..n).unwrap_or(&[]))
}

/// TIO_DEV_CONNECT: the SPDM session and the IDE keys of both ends. On success the keys are
/// in go on both ends and the session is returned.
pub fn connect(link: &mut dyn Link, p: &ConnectParams) -> Result<Session, Fail> {
    if p.relay_forever {
        loop {
            link.exchange(
                "GET_VERSION",
                SpdmDataType::Spdm,
                &[0x10, SPDM_GET_VERSION, 0, 0],
            )?;
        }
    }
    let mut s = establish(link, p.cert_slot, p.base_hash)?;
    if let Err(f) = program_ide(link, &mut s, p) {
        // Firmware leaves no key behind a failed connect: the endpoint's pairs stopped while
        // the session still carries requests, the root port's always (a STOP of a key set
        // never programmed is refused, and ignored).
        if !matches!(f, Fail::Abandoned) {
            for pair in 0..6 {
                if let Some((dir, ss)) = pair_from_index(pair) {
                    let r = s.key_set(link, false, p.stream_id, KeySubStream::new(0, dir, ss));
                    if matches!(r, Err(Fail::Abandoned)) {
                        return Err(Fail::Abandoned);
                    }
                }
            }
            if p.root_port {
                if let Err(Fail::Abandoned) = stop_root_port(link, p) {
                    return Err(Fail::Abandoned);
                }
            }
        }
        return Err(f);
    }
    Ok(s)
}

/// VCA, certificates, KEY_EXCHANGE and FINISH, offering the hashes `base_hash`.
pub fn establish(link: &mut dyn Link, slot: u8, base_hash: u32) -> Result<Session, Fail> {
    // GET_VERSION / VERSION.
    let gv = [0x10, SPDM_GET_VERSION, 0, 0];
    let rsp = clear(link, "GET_VERSION", &gv)?;
    let vr = unpadded(&rsp, parse_version_response).map_err(|e| dev("VERSION", e))?;
    let vlen = 6usize.saturating_add(2usize.saturating_mul(usize::from(vr.count())));
    let v = highest_common(&VERSIONS, vr.entries())
        .ok_or_else(|| dev("VERSION", "no common SPDM version (1.1 to 1.3 needed)"))?;
    let mut vca = gv.to_vec();
    vca.extend_from_slice(rsp.get(..vlen).unwrap_or(&[]));

    // GET_CAPABILITIES / CAPABILITIES.
    let mut caps = Capabilities::new(v);
    caps.ct_exponent = 12;
    caps.flags = SPDM_CAP_CERT | SPDM_CAP_CHAL | SPDM_CAP_KEY_EX | SPDM_CAP_ENCRYPT | SPDM_CAP_MAC;
    caps.data_transfer_size = DATA_TRANSFER_SIZE;
    caps.max_spdm_msg_size = DATA_TRANSFER_SIZE;
    let mut buf = [0u8; 64];
    let n = encode_get_capabilities(&caps, &mut buf).map_err(|e| dev("GET_CAPABILITIES", e))?;
    let req = buf.get(..n).unwrap_or(&[]).to_vec();
    let rsp = clear(link, "GET_CAPABILITIES", &req)?;
    let rc = unpadded(&rsp, |b| parse_capabilities(b, v)).map_err(|e| dev("CAPABILITIES", e))?;
    for (flag, name) in [
        (SPDM_CAP_CERT, "CERT_CAP"),
        (SPDM_CAP_KEY_EX, "KEY_EX_CAP"),
        (SPDM_CAP_ENCRYPT, "ENCRYPT_CAP"),
        (SPDM_CAP_MAC, "MAC_CAP"),
    ] {
        if !rc.has(flag) {
            return Err(dev("CAPABILITIES", format!("device lacks {name}")));
        }
    }
    vca.extend_from_slice(&req);
    vca.extend_from_slice(rsp.get(..capabilities_size(v)).unwrap_or(&[]));

    // NEGOTIATE_ALGORITHMS / ALGORITHMS.
    let mut na = NegotiateAlgorithms::new(v);
    na.measurement_specification = SPDM_MEAS_SPEC_DMTF;
    na.other_params = SPDM_OPAQUE_DATA_FMT1;
    na.base_asym = SPDM_ASYM_ECDSA_P256
        | SPDM_ASYM_ECDSA_P384
        | SPDM_ASYM_ECDSA_P521
        | SPDM_ASYM_RSASSA_2048
        | SPDM_ASYM_RSAPSS_2048
        | SPDM_ASYM_RSASSA_3072
        | SPDM_ASYM_RSAPSS_3072
        | SPDM_ASYM_RSASSA_4096
        | SPDM_ASYM_RSAPSS_4096;
    na.base_hash = base_hash;
    na.structs = AlgStructs {
        dhe: Some(SPDM_DHE_SECP256R1 | SPDM_DHE_SECP384R1 | SPDM_DHE_SECP521R1),
        aead: Some(SPDM_AEAD_AES_256_GCM | SPDM_AEAD_AES_128_GCM | SPDM_AEAD_CHACHA20_POLY1305),
        req_base_asym: None,
        key_schedule: Some(SPDM_KEY_SCHEDULE_SPDM),
    };
    let mut buf = [0u8; 128];
    let n =
        encode_negotiate_algorithms(&na, &mut buf).map_err(|e| dev("NEGOTIATE_ALGORITHMS", e))?;
    let req = buf.get(..n).unwrap_or(&[]).to_vec();
    let rsp = clear(link, "NEGOTIATE_ALGORITHMS", &req)?;
    let alg = unpadded(&rsp, |b| parse_algorithms(b, v)).map_err(|e| dev("ALGORITHMS", e))?;
    alg.check_against(&na, true)
        .map_err(|e| dev("ALGORITHMS", e))?;
    let hash = alg.base_hash;
    let asym = alg.base_asym;
    let dhe = alg
        .structs
        .dhe
        .filter(|d| d.count_ones() == 1)
        .ok_or_else(|| dev("ALGORITHMS", "no DHE group selected"))?;
    let aead = alg
        .structs
        .aead
        .filter(|a| a.count_ones() == 1)
        .ok_or_else(|| dev("ALGORITHMS", "no AEAD selected"))?;
    if alg.structs.key_schedule != Some(SPDM_KEY_SCHEDULE_SPDM) {
        return Err(dev("ALGORITHMS", "SPDM key schedule not selected"));
    }
    let meas_cap = rc.meas_cap();
    let meas_hash_size =
        negotiated_measurement_hash(&alg, meas_cap).map_err(|e| dev("ALGORITHMS", e))?;
    let h = hash_size(hash).ok_or_else(|| dev("ALGORITHMS", "unsupported hash"))?;
    let sig_size = signature_size(asym).ok_or_else(|| dev("ALGORITHMS", "unsupported asym"))?;
    vca.extend_from_slice(&req);
    vca.extend_from_slice(rsp.get(..alg.len).unwrap_or(&[]));

    // GET_DIGESTS / DIGESTS.
    let mut buf = [0u8; 8];
    let n = encode_get_digests(v, &mut buf).map_err(|e| dev("GET_DIGESTS", e))?;
    let rsp = clear(link, "GET_DIGESTS", buf.get(..n).unwrap_or(&[]))?;
    let digests = unpadded(&rsp, |b| parse_digests(b, v, h)).map_err(|e| dev("DIGESTS", e))?;
    let digest = digests
        .digest(slot)
        .ok_or_else(|| dev("DIGESTS", format!("slot {slot} is not populated")))?
        .to_vec();

    // GET_CERTIFICATE / CERTIFICATE, portion by portion.
    let mut chain: Vec<u8> = Vec::new();
    loop {
        let offset =
            u16::try_from(chain.len()).map_err(|_| dev("CERTIFICATE", "chain too long"))?;
        let req = GetCertificate {
            version: v,
            slot,
            attributes: 0,
            offset,
            length: CERT_PORTION,
        };
        let mut buf = [0u8; 16];
        let n = encode_get_certificate(&req, &mut buf).map_err(|e| dev("GET_CERTIFICATE", e))?;
        let rsp = clear(link, "GET_CERTIFICATE", buf.get(..n).unwrap_or(&[]))?;
        let c = unpadded(&rsp, |b| parse_certificate(b, v)).map_err(|e| dev("CERTIFICATE", e))?;
        c.check(&req).map_err(|e| dev("CERTIFICATE", e))?;
        if c.portion.is_empty() {
            return Err(dev("CERTIFICATE", "empty portion"));
        }
        chain.extend_from_slice(c.portion);
        if c.remainder_length == 0 {
            break;
        }
    }
    let chain_hash = hash_of(hash, "CERTIFICATE", &chain)?;
    if chain_hash != digest {
        return Err(dev(
            "CERTIFICATE",
            format!("chain of slot {slot} does not match its digest"),
        ));
    }
    let parsed = parse_cert_chain(&chain, h).map_err(|e| dev("CERTIFICATE", e))?;
    let root = parsed
        .first()
        .ok_or_else(|| dev("CERTIFICATE", "chain holds no certificate"))?;
    if hash_of(hash, "CERTIFICATE", root)? != parsed.root_hash {
        return Err(dev(
            "CERTIFICATE",
            "root hash does not match the root certificate",
        ));
    }
    let leaf_der = parsed
        .leaf()
        .ok_or_else(|| dev("CERTIFICATE", "chain holds no leaf"))?;
    let leaf = LeafKey::from_certificate(leaf_der, asym).map_err(|e| dev("CERTIFICATE", e))?;

    // KEY_EXCHANGE / KEY_EXCHANGE_RSP.
    let ecdhe = Ecdhe::generate(dhe).ok_or_else(|| dev("KEY_EXCHANGE", "unsupported DHE group"))?;
    let exchange = ecdhe.exchange_data();
    let random: [u8; 32] = rand::rng().random();
    let mut opaque = [0u8; 32];
    let on = encode_sm_supported_versions_for(
        v,
        &[SPDM_SECURED_VERSION_1_0, SPDM_SECURED_VERSION_1_1],
        &mut opaque,
    )
    .map_err(|e| dev("KEY_EXCHANGE", e))?;
    let ke = KeyExchange {
        version: v,
        meas_summary_type: 0,
        slot,
        req_session_id: REQ_SESSION_ID,
        session_policy: 0,
        random_data: &random,
        exchange: &exchange,
        opaque: opaque.get(..on).unwrap_or(&[]),
        len: 0,
    };
    let mut buf = vec![0u8; 512];
    let n = encode_key_exchange(&ke, &mut buf).map_err(|e| dev("KEY_EXCHANGE", e))?;
    let ke_bytes = buf.get(..n).unwrap_or(&[]).to_vec();
    let rsp = clear(link, "KEY_EXCHANGE", &ke_bytes)?;
    let params = KeyExchangeRspParams {
        version: v,
        hash_size: h,
        signature_size: sig_size,
        exchange_size: dhe_exchange_size(dhe).ok_or_else(|| dev("KEY_EXCHANGE", "bad DHE"))?,
        measurement_summary: false,
        verify_data: true,
    };
    let kr = unpadded(&rsp, |b| parse_key_exchange_rsp(b, &params))
        .map_err(|e| dev("KEY_EXCHANGE_RSP", e))?;
    if kr.mut_auth_requested != 0 {
        return Err(dev("KEY_EXCHANGE_RSP", "mutual authentication requested"));
    }
    match parse_sm_versions_for(v, kr.opaque).map_err(|e| dev("KEY_EXCHANGE_RSP", e))? {
        SmVersions::Selected(sv)
            if sv == SPDM_SECURED_VERSION_1_0 || sv == SPDM_SECURED_VERSION_1_1 => {}
        _ => {
            return Err(dev(
                "KEY_EXCHANGE_RSP",
                "no secured message version selected",
            ))
        }
    }
    let mut t = vca.clone();
    t.extend_from_slice(&chain_hash);
    t.extend_from_slice(&ke_bytes);
    t.extend_from_slice(rsp.get(..kr.signature_offset).unwrap_or(&[]));
    let th = hash_of(hash, "KEY_EXCHANGE_RSP", &t)?;
    let digest = signed_digest(v, hash, SPDM_KEY_EXCHANGE_RSP_SIGN_CONTEXT, &th)?;
    leaf.verify(asym, hash, &digest, kr.signature)
        .map_err(|e| dev("KEY_EXCHANGE_RSP", e))?;
    t.extend_from_slice(kr.signature);
    let th1 = hash_of(hash, "KEY_EXCHANGE_RSP", &t)?;
    let shared = Zeroizing::new(
        ecdhe
            .shared_secret(kr.exchange)
            .ok_or_else(|| dev("KEY_EXCHANGE_RSP", "responder exchange data is not a point"))?,
    );
    let ks_err = |e: KeyScheduleError| dev("key schedule", e);
    let mut ks = key_schedule(v, hash).map_err(ks_err)?;
    let hs = ks.handshake_secret(&shared).map_err(ks_err)?;
    let (req_hs, rsp_hs) = ks.handshake_traffic_secrets(&hs, &th1).map_err(ks_err)?;
    let rsp_finished = ks.finished_key(&rsp_hs).map_err(ks_err)?;
    let req_finished = ks.finished_key(&req_hs).map_err(ks_err)?;
    let expected = ks.verify_data(&rsp_finished, &th1).map_err(ks_err)?;
    if expected.as_bytes() != kr.verify_data {
        return Err(dev(
            "KEY_EXCHANGE_RSP",
            "ResponderVerifyData does not verify",
        ));
    }
    t.extend_from_slice(kr.verify_data);
    let dir_err = |e: String| dev("session keys", e);
    let mut s = Session {
        version: v,
        slot,
        chain,
        hash,
        asym,
        dhe,
        aead,
        meas_hash_size,
        meas_cap,
        vca,
        leaf,
        id: session_id(REQ_SESSION_ID, kr.rsp_session_id),
        req: AeadDir::new(&mut ks, aead, req_hs).map_err(dir_err)?,
        rsp: AeadDir::new(&mut ks, aead, rsp_hs).map_err(dir_err)?,
    };

    // FINISH / FINISH_RSP inside the session with the handshake keys.
    let mut fin = t.clone();
    fin.extend_from_slice(&[v.as_byte(), SPDM_FINISH, 0, 0]);
    let th = hash_of(hash, "FINISH", &fin)?;
    let vd = ks.verify_data(&req_finished, &th).map_err(ks_err)?;
    let mut buf = [0u8; 80];
    let n = encode_finish(v, 0, &[], vd.as_bytes(), &mut buf).map_err(|e| dev("FINISH", e))?;
    let fin_msg = buf.get(..n).unwrap_or(&[]).to_vec();
    let rsp = s.secured(link, "FINISH", &fin_msg)?;
    let (_, len) = parse_finish_rsp(&rsp, v, 0).map_err(|e| dev("FINISH_RSP", e))?;
    t.extend_from_slice(&fin_msg);
    t.extend_from_slice(rsp.get(..len).unwrap_or(&[]));
    let th2 = hash_of(hash, "FINISH_RSP", &t)?;
    let ms = ks.master_secret(&hs).map_err(ks_err)?;
    let (ra, rs) = ks.app_traffic_secrets(&ms, &th2).map_err(ks_err)?;
    s.req = AeadDir::new(&mut ks, aead, ra).map_err(dir_err)?;
    s.rsp = AeadDir::new(&mut ks, aead, rs).map_err(dir_err)?;
    Ok(s)
}

/// A key and its IFV, wiped when dropped.
type KeyIfv = (Zeroizing<[u8; 32]>, Zeroizing<[u8; 8]>);

/// The root port's sub-stream number of `ss` for ROOT_PORT_KEY.
fn rp_sub(ss: SubStream) -> u8 {
    match ss {
        SubStream::Pr => 0,
        SubStream::Npr => 1,
        SubStream::Cpl => 2,
    }
}

/// IDE_KM QUERY, KEY_PROG of fresh keys for the six pairs on the endpoint, PROGRAM of the root
/// port's six (its RX keys are the endpoint's TX keys and vice versa), then GO: endpoint RX,
/// root port RX, endpoint TX, root port TX.
pub fn program_ide(link: &mut dyn Link, s: &mut Session, p: &ConnectParams) -> Result<(), Fail> {
    let rsp = s.ide_km(
        link,
        "IDE_KM QUERY",
        &IdeKmMessage::Query(Query { port_index: 0 }),
    )?;
    let qr = parse_query_resp(&rsp).map_err(|e| dev("IDE_KM QUERY_RESP", e.as_str()))?;
    if qr.info.port_index != 0 {
        return Err(dev("IDE_KM QUERY_RESP", "answer for another port"));
    }
    // One key and IFV per sub-stream and direction of the link: `down` travels from the root
    // port to the endpoint (root port TX, endpoint RX), `up` the other way.
    let mut rng = rand::rng();
    let mut down: Vec<KeyIfv> = Vec::new();
    let mut up: Vec<KeyIfv> = Vec::new();
    for _ in 0..3 {
        down.push((Zeroizing::new(rng.random()), Zeroizing::new(rng.random())));
        up.push((Zeroizing::new(rng.random()), Zeroizing::new(rng.random())));
    }
    let pick = |set: &[KeyIfv], ss: SubStream| {
        set.get(usize::from(rp_sub(ss)))
            .map(|(k, i)| (**k, **i))
            .unwrap_or(([0; 32], [0; 8]))
    };
    // The endpoint: its RX keys are `down`, its TX keys `up`.
    for pair in 0..6 {
        let Some((dir, ss)) = pair_from_index(pair) else {
            continue;
        };
        let sub = KeySubStream::new(0, dir, ss);
        let (key, ifv) = match dir {
            Direction::Rx => pick(&down, ss),
            Direction::Tx => pick(&up, ss),
        };
        let mut kp = KeyProg {
            stream_id: p.stream_id,
            sub,
            port_index: 0,
            key,
            ifv,
        };
        let what = format!("IDE_KM KEY_PROG {}", sub_name(sub));
        let r = s.ide_km(link, &what, &IdeKmMessage::KeyProg(kp.clone()));
        kp.wipe();
        let ack = parse_kp_ack(&r?).map_err(|e| dev(&what, e.as_str()))?;
        check_ack(
            p.stream_id,
            sub,
            0,
            (ack.stream_id, ack.sub, ack.port_index),
        )
        .map_err(|_| dev(&what, "KP_ACK does not match the request"))?;
        if ack.status != IDE_KM_KP_ACK_SUCCESS {
            return Err(dev(
                &what,
                format!(
                    "KP_ACK status {} ({})",
                    ack.status,
                    coco_idekm::kp_ack_status_name(ack.status)
                ),
            ));
        }
    }
    // The root port: its RX keys are `up`, its TX keys `down`.
    let rp_sets: &[(u8, &Vec<KeyIfv>)] = if p.root_port {
        &[(RP_DIR_RX, &up), (RP_DIR_TX, &down)]
    } else {
        &[]
    };
    for &(dir, set) in rp_sets {
        for ss in [SubStream::Pr, SubStream::Npr, SubStream::Cpl] {
            let (mut key, ifv) = pick(set, ss);
            if p.bad_rp_key && dir == RP_DIR_RX && ss == SubStream::Pr {
                if let Some(b) = key.first_mut() {
                    *b ^= 0x5A;
                }
            }
            let key = Zeroizing::new(key);
            let ifv = Zeroizing::new(ifv);
            rp_key(link, p, RP_OP_PROGRAM, dir, rp_sub(ss), &key, &ifv)?;
        }
    }
    drop(down);
    drop(up);
    // GO: receivers before transmitters.
    for dir in [Direction::Rx, Direction::Tx] {
        for ss in [SubStream::Pr, SubStream::Npr, SubStream::Cpl] {
            s.key_set(link, true, p.stream_id, KeySubStream::new(0, dir, ss))?;
        }
        let rp_dir = match dir {
            Direction::Rx => RP_DIR_RX,
            Direction::Tx => RP_DIR_TX,
        };
        if !p.root_port {
            continue;
        }
        for ss in [SubStream::Pr, SubStream::Npr, SubStream::Cpl] {
            rp_key(link, p, RP_OP_GO, rp_dir, rp_sub(ss), &[0; 32], &[0; 8])?;
        }
    }
    Ok(())
}

/// STOP of key set 0 of the root port's six pairs (every one is tried; the first refusal is
/// returned).
pub fn stop_root_port(link: &mut dyn Link, p: &ConnectParams) -> Result<(), Fail> {
    let mut first = Ok(());
    for dir in [RP_DIR_RX, RP_DIR_TX] {
        for ss in 0..3 {
            let r = rp_key(link, p, RP_OP_STOP, dir, ss, &[0; 32], &[0; 8]);
            if first.is_ok() {
                first = r;
            } else if let Err(Fail::Abandoned) = r {
                return r;
            }
        }
    }
    first
}

/// TIO_DEV_DISCONNECT without FORCE: K_SET_STOP of every pair on the endpoint and END_SESSION
/// inside the session, then STOP of the root port's keys.
pub fn disconnect(link: &mut dyn Link, s: &mut Session, p: &ConnectParams) -> Result<(), Fail> {
    stop_endpoint_keys(link, s, p.stream_id)?;
    let mut buf = [0u8; 4];
    let n = encode_end_session(s.version, 0, &mut buf).map_err(|e| dev("END_SESSION", e))?;
    let rsp = s.secured(link, "END_SESSION", buf.get(..n).unwrap_or(&[]))?;
    unpadded(&rsp, |b| parse_end_session_ack(b, s.version))
        .map_err(|e| dev("END_SESSION_ACK", e))?;
    stop_root_port(link, p)
}

/// K_SET_STOP of key set 0 of the endpoint's six pairs of stream `stream_id`, inside the
/// session.
pub fn stop_endpoint_keys(link: &mut dyn Link, s: &mut Session, stream_id: u8) -> Result<(), Fail> {
    for pair in 0..6 {
        if let Some((dir, ss)) = pair_from_index(pair) {
            s.key_set(link, false, stream_id, KeySubStream::new(0, dir, ss))?;
        }
    }
    Ok(())
}

/// Measurement evidence: what the device signed, its signature, and where MEASUREMENTS
/// starts in the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// VCA (1.2+), GET_MEASUREMENTS and MEASUREMENTS without its signature.
    pub transcript: Vec<u8>,
    /// The signature.
    pub signature: Vec<u8>,
    /// Offset of MEASUREMENTS in `transcript`.
    pub response_offset: usize,
}

impl Evidence {
    /// The output payload: `u32 transcript_len | u32 signature_len | u32 response_offset |
    /// u32 reserved`, the transcript, the signature.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for n in [
            self.transcript.len(),
            self.signature.len(),
            self.response_offset,
            0,
        ] {
            out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
        }
        out.extend_from_slice(&self.transcript);
        out.extend_from_slice(&self.signature);
        out
    }
}

/// GET_MEASUREMENTS of all blocks, signed, with `nonce`, inside the session; the signature
/// is verified.
pub fn measurements(
    link: &mut dyn Link,
    s: &mut Session,
    nonce: [u8; 32],
    raw: bool,
) -> Result<Evidence, Fail> {
    if s.meas_cap != 2 {
        return Err(dev(
            "GET_MEASUREMENTS",
            format!(
                "device announces MEAS_CAP {} (signed measurements need 2)",
                s.meas_cap
            ),
        ));
    }
    let v = s.version;
    let mut req = GetMeasurements::new(v, SPDM_MEAS_OP_ALL, true);
    req.attributes = SPDM_MEAS_ATTR_SIGNATURE
        | if raw && v >= SpdmVersion::V1_2 {
            SPDM_MEAS_ATTR_RAW_BIT_STREAM
        } else {
            0
        };
    req.nonce = nonce;
    req.slot_id = s.slot;
    let mut buf = [0u8; 64];
    let n = encode_get_measurements(&req, &mut buf).map_err(|e| dev("GET_MEASUREMENTS", e))?;
    let req_bytes = buf.get(..n).unwrap_or(&[]).to_vec();
    let rsp = s.secured(link, "GET_MEASUREMENTS", &req_bytes)?;
    let sig_size = signature_size(s.asym).ok_or_else(|| dev("MEASUREMENTS", "bad asym"))?;
    let params = MeasurementsParams::for_request(&req, sig_size, s.meas_hash_size);
    let m = parse_measurements(&rsp, &params).map_err(|e| dev("MEASUREMENTS", e))?;
    m.check(&req).map_err(|e| dev("MEASUREMENTS", e))?;
    let sig = m
        .signature
        .ok_or_else(|| dev("MEASUREMENTS", "no signature"))?
        .to_vec();
    let mut transcript = Vec::new();
    if v >= SpdmVersion::V1_2 {
        transcript.extend_from_slice(&s.vca);
    }
    transcript.extend_from_slice(&req_bytes);
    let response_offset = transcript.len();
    transcript.extend_from_slice(rsp.get(..m.signature_offset).unwrap_or(&[]));
    let l_hash = hash_of(s.hash, "MEASUREMENTS", &transcript)?;
    let digest = if v >= SpdmVersion::V1_2 {
        let mut b = [0u8; 256];
        let sn =
            measurements_signed_message(v, &l_hash, &mut b).map_err(|e| dev("MEASUREMENTS", e))?;
        hash_of(s.hash, "MEASUREMENTS", b.get(..sn).unwrap_or(&[]))?
    } else {
        l_hash
    };
    s.leaf
        .verify(s.asym, s.hash, &digest, &sig)
        .map_err(|e| dev("MEASUREMENTS", e))?;
    Ok(Evidence {
        transcript,
        signature: sig,
        response_offset,
    })
}

/// Largest DEVICE_INTERFACE_REPORT portion the model asks for.
pub const REPORT_PORTION: u16 = 1024;

impl Session {
    /// A TDISP request for `iface` inside the session; returns the TDISP response after
    /// checking its version (1.0), its INTERFACE_ID (echoed) and its type (the request's
    /// answer; a TDISP ERROR fails with the error's name).
    fn tdisp(
        &mut self,
        link: &mut dyn Link,
        iface: InterfaceId,
        req: &TdispRequest,
    ) -> Result<Vec<u8>, Fail> {
        let what = format!("TDISP {}", message_name(req.code()));
        let mut msg = [0u8; 64];
        let n =
            encode_request(TDISP_VERSION_1_0, iface, req, &mut msg).map_err(|e| dev(&what, e))?;
        let mut vdm = [0u8; 96];
        let vn = encode_pci_sig_vdm(
            self.version,
            SPDM_VENDOR_DEFINED_REQUEST,
            PCI_PROTOCOL_TDISP,
            msg.get(..n).unwrap_or(&[]),
            &mut vdm,
        )
        .map_err(|e| dev(&what, e))?;
        let rsp = self.secured(link, &what, vdm.get(..vn).unwrap_or(&[]))?;
        let p = parse_pci_sig_vdm(&rsp, SPDM_VENDOR_DEFINED_RESPONSE).map_err(|e| dev(&what, e))?;
        if p.protocol_id != PCI_PROTOCOL_TDISP {
            return Err(dev(&what, format!("answer for protocol {}", p.protocol_id)));
        }
        let m = p.message.to_vec();
        let (h, r) = parse_response(&m).map_err(|e| dev(&what, e))?;
        if h.version != TDISP_VERSION_1_0 {
            return Err(dev(
                &what,
                format!("answer has TDISPVersion {:#04x}, not 1.0", h.version),
            ));
        }
        if h.interface_id != iface {
            return Err(dev(
                &what,
                format!(
                    "answer for INTERFACE_ID {:#010x}, not {:#010x}",
                    h.interface_id.function_id, iface.function_id
                ),
            ));
        }
        if let TdispResponse::Error(e) = r {
            return Err(dev(
                &what,
                format!(
                    "device answered TDISP ERROR {} ({:#06x}, data {:#x})",
                    error_name(e.code),
                    e.code,
                    e.data
                ),
            ));
        }
        let expected = req.code() & 0x7F;
        if r.code() != expected {
            return Err(dev(
                &what,
                format!(
                    "answered {}, not {}",
                    message_name(r.code()),
                    message_name(expected)
                ),
            ));
        }
        Ok(m)
    }

    /// GET_DEVICE_INTERFACE_STATE.
    pub fn tdi_state(&mut self, link: &mut dyn Link, iface: InterfaceId) -> Result<TdiState, Fail> {
        let m = self.tdisp(link, iface, &TdispRequest::GetState)?;
        match parse_response(&m) {
            Ok((_, TdispResponse::State(s))) => Ok(s),
            _ => Err(dev("TDISP DEVICE_INTERFACE_STATE", "no state")),
        }
    }

    /// START_INTERFACE_REQUEST with the lock's nonce.
    pub fn tdi_start(
        &mut self,
        link: &mut dyn Link,
        iface: InterfaceId,
        nonce: &[u8; TDISP_NONCE_SIZE],
    ) -> Result<(), Fail> {
        self.tdisp(link, iface, &TdispRequest::Start { nonce: *nonce })
            .map(|_| ())
    }

    /// STOP_INTERFACE_REQUEST.
    pub fn tdi_stop(&mut self, link: &mut dyn Link, iface: InterfaceId) -> Result<(), Fail> {
        self.tdisp(link, iface, &TdispRequest::Stop).map(|_| ())
    }
}

/// What TIO_TDI_BIND asks of the requester.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindParams {
    /// The TDI.
    pub iface: InterfaceId,
    /// LOCK_INTERFACE flags.
    pub lock_flags: u16,
    /// The default stream (the connection's).
    pub stream_id: u8,
    /// START_INTERFACE after the lock.
    pub run: bool,
}

/// A bound TDI: its interface report and its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// The interface report, as the device sent it.
    pub report: Vec<u8>,
    /// CONFIG_LOCKED, or RUN.
    pub state: TdiState,
    /// The lock's START_INTERFACE nonce (for a later START_INTERFACE).
    pub nonce: [u8; TDISP_NONCE_SIZE],
}

/// TIO_TDI_BIND: GET_VERSION, GET_CAPABILITIES, LOCK_INTERFACE, the report, the state
/// (CONFIG_LOCKED), and with `run` START_INTERFACE and the state again (RUN). When a step after
/// a successful lock fails, STOP_INTERFACE is sent before the failure is returned.
pub fn bind_tdi(link: &mut dyn Link, s: &mut Session, p: &BindParams) -> Result<Bound, Fail> {
    let iface = p.iface;
    let m = s.tdisp(link, iface, &TdispRequest::GetVersion)?;
    match parse_response(&m) {
        Ok((_, TdispResponse::Version { versions })) if versions.contains(&TDISP_VERSION_1_0) => {}
        _ => {
            return Err(dev(
                "TDISP TDISP_VERSION",
                "the device does not offer TDISP 1.0",
            ))
        }
    }
    let m = s.tdisp(link, iface, &TdispRequest::GetCapabilities { tsm_caps: 0 })?;
    let caps = match parse_response(&m) {
        Ok((_, TdispResponse::Capabilities(c))) => c,
        _ => return Err(dev("TDISP TDISP_CAPABILITIES", "no capabilities")),
    };
    let mut needed = vec![
        TdispRequest::LockInterface(LockInterface::default()).code(),
        TdispRequest::GetReport {
            offset: 0,
            length: 0,
        }
        .code(),
        TdispRequest::GetState.code(),
        TdispRequest::Stop.code(),
    ];
    if p.run {
        needed.push(
            TdispRequest::Start {
                nonce: [0; TDISP_NONCE_SIZE],
            }
            .code(),
        );
    }
    if let Some(c) = needed.iter().find(|c| !caps.supports(**c)) {
        return Err(dev(
            "TDISP TDISP_CAPABILITIES",
            format!("the device does not support {}", message_name(*c)),
        ));
    }
    let lock = LockInterface {
        flags: p.lock_flags,
        default_stream_id: p.stream_id,
        mmio_reporting_offset: 0,
        bind_p2p_addr_mask: 0,
    };
    let m = s.tdisp(link, iface, &TdispRequest::LockInterface(lock))?;
    let nonce = match parse_response(&m) {
        Ok((_, TdispResponse::LockInterface { nonce })) => Zeroizing::new(nonce),
        _ => return Err(dev("TDISP LOCK_INTERFACE_RESPONSE", "no nonce")),
    };
    drop(m);
    match locked(link, s, iface, p.run, &nonce) {
        Ok(b) => Ok(b),
        Err(Fail::Abandoned) => Err(Fail::Abandoned),
        Err(f) => match s.tdi_stop(link, iface) {
            Err(Fail::Abandoned) => Err(Fail::Abandoned),
            Ok(()) => Err(annotate(f, "STOP_INTERFACE sent")),
            Err(Fail::Device(e) | Fail::RootPort(e)) => {
                Err(annotate(f, &format!("STOP_INTERFACE failed too: {e}")))
            }
        },
    }
}

fn annotate(f: Fail, note: &str) -> Fail {
    match f {
        Fail::Device(r) => Fail::Device(format!("{r} ({note})")),
        Fail::RootPort(r) => Fail::RootPort(format!("{r} ({note})")),
        Fail::Abandoned => Fail::Abandoned,
    }
}

/// The steps of a bind after the lock.
fn locked(
    link: &mut dyn Link,
    s: &mut Session,
    iface: InterfaceId,
    run: bool,
    nonce: &[u8; TDISP_NONCE_SIZE],
) -> Result<Bound, Fail> {
    let what = "TDISP DEVICE_INTERFACE_REPORT";
    let mut report: Vec<u8> = Vec::new();
    let mut total: Option<usize> = None;
    loop {
        let offset = u16::try_from(report.len()).map_err(|_| dev(what, "report beyond 64 KiB"))?;
        let m = s.tdisp(
            link,
            iface,
            &TdispRequest::GetReport {
                offset,
                length: REPORT_PORTION,
            },
        )?;
        let portion = match parse_response(&m) {
            Ok((_, TdispResponse::Report(r))) => r,
            _ => return Err(dev(what, "no report portion")),
        };
        if portion.portion.is_empty() || portion.portion.len() > usize::from(REPORT_PORTION) {
            return Err(dev(
                what,
                format!(
                    "portion of {} bytes at offset {offset} (asked for {REPORT_PORTION})",
                    portion.portion.len()
                ),
            ));
        }
        let t = portion
            .total_len(offset)
            .map(usize::from)
            .ok_or_else(|| dev(what, "report beyond 64 KiB"))?;
        if total.is_some_and(|x| x != t) {
            return Err(dev(
                what,
                format!("remainder_length at offset {offset} changes the report's size"),
            ));
        }
        total = Some(t);
        report.extend_from_slice(portion.portion);
        if portion.remainder_length == 0 {
            break;
        }
    }
    let state = s.tdi_state(link, iface)?;
    if state != TdiState::ConfigLocked {
        return Err(dev(
            "TDISP DEVICE_INTERFACE_STATE",
            format!("TDI is {} after the lock, not CONFIG_LOCKED", state.name()),
        ));
    }
    if !run {
        return Ok(Bound {
            report,
            state,
            nonce: *nonce,
        });
    }
    s.tdi_start(link, iface, nonce)?;
    let state = s.tdi_state(link, iface)?;
    if state != TdiState::Run {
        return Err(dev(
            "TDISP DEVICE_INTERFACE_STATE",
            format!("TDI is {} after START_INTERFACE, not RUN", state.name()),
        ));
    }
    Ok(Bound {
        report,
        state,
        nonce: *nonce,
    })
}
