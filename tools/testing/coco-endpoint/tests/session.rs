//! Secure sessions against the emulated endpoint, with an in-process requester: the project's
//! codec (`coco_spdm::session`) for messages, records and the key schedule, RustCrypto for
//! ECDHE, HMAC, AEAD, hashes and signature verification. The leaf key and chain come from the
//! in-process PKI.
//!
//! The requester negotiates SPDM 1.1/1.2/1.3 with DHE, AEAD and the SPDM key schedule, runs
//! KEY_EXCHANGE (verifying the signature and ResponderVerifyData), FINISH inside the session,
//! then application messages (GET_MEASUREMENTS), HEARTBEAT, KEY_UPDATE (UpdateKey and
//! UpdateAllKeys, each followed by VerifyNewKey) and END_SESSION. Each session fault must be
//! detected.
//!
//! With HANDSHAKE_IN_THE_CLEAR_CAP on both sides (`--handshake-in-clear`) the requester expects
//! KEY_EXCHANGE_RSP without ResponderVerifyData, sends FINISH in the clear and verifies the
//! ResponderVerifyData of FINISH_RSP itself. The HeartbeatPeriod (`--heartbeat-period`) tests
//! advance the responder's clock instead of sleeping.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use coco_doe::{
    decode_object, encode_object, object_size, DOE_TYPE_CMA, DOE_TYPE_SECURED_CMA,
    PCI_SIG_VENDOR_ID,
};
use coco_endpoint::crypto::{key_schedule, Direction, Ecdhe, RustHmac};
use coco_endpoint::measurements::MeasConfig;
use coco_endpoint::pki::{
    build_identity, spdm_hash, ChainFault, Identity, KeyKind, PkiOptions, PrivateKey,
    DEFAULT_CMA_ID,
};
use coco_endpoint::{Fault, Responder, SessionOptions};
use coco_spdm::auth::*;
use coco_spdm::meas::{
    encode_get_measurements, encode_measurement_block, parse_measurements, GetMeasurements,
    MeasurementsParams, SPDM_MEAS_OP_ALL, SPDM_MEAS_TYPE_IMMUTABLE_ROM,
};
use coco_spdm::session::*;
use coco_spdm::*;
use rand::RngExt;
use signature::hazmat::PrehashVerifier;

fn identity(key: KeyKind) -> Arc<Identity> {
    static P256: OnceLock<Arc<Identity>> = OnceLock::new();
    static P384: OnceLock<Arc<Identity>> = OnceLock::new();
    let cell = if key == KeyKind::P256 { &P256 } else { &P384 };
    Arc::clone(cell.get_or_init(|| {
        Arc::new(
            build_identity(&PkiOptions {
                dir: None,
                key,
                slots: vec![0, 1],
                cma_id: DEFAULT_CMA_ID.to_string(),
                fault: ChainFault::None,
            })
            .unwrap(),
        )
    }))
}

fn verify(key: &PrivateKey, digest: &[u8], sig: &[u8]) -> Result<(), String> {
    let e = |e: signature::Error| e.to_string();
    match key {
        PrivateKey::P256(sk) => sk
            .verifying_key()
            .verify_prehash(digest, &p256::ecdsa::Signature::from_slice(sig).map_err(e)?)
            .map_err(e),
        PrivateKey::P384(sk) => sk
            .verifying_key()
            .verify_prehash(digest, &p384::ecdsa::Signature::from_slice(sig).map_err(e)?)
            .map_err(e),
        _ => Err("only P-256 and P-384 leaf keys are used here".into()),
    }
}

fn object(ty: u8, msg: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; object_size(msg.len()).unwrap()];
    encode_object(PCI_SIG_VENDOR_ID, ty, msg, &mut out).unwrap();
    out
}

struct ReqSession {
    id: u32,
    ks: KeySchedule<RustHmac>,
    hs: Secret,
    req_finished: Secret,
    rsp_finished: Secret,
    /// The handshake is in the clear (both sides set HANDSHAKE_IN_THE_CLEAR_CAP).
    in_clear: bool,
    /// HeartbeatPeriod of KEY_EXCHANGE_RSP.
    heartbeat_period: u8,
    req: Direction,
    rsp: Direction,
    transcript: Vec<u8>,
}

struct Requester {
    responder: Responder,
    id: Arc<Identity>,
    v: SpdmVersion,
    hash: u32,
    asym: u32,
    dhe: u16,
    aead: u16,
    vca: Vec<u8>,
    s: Option<ReqSession>,
    /// Whether the requester sets HANDSHAKE_IN_THE_CLEAR_CAP.
    clear_cap: bool,
    /// Whether the responder announced it.
    rsp_clear_cap: bool,
    /// Every log line of the responder.
    log: Vec<String>,
    /// MeasurementSummaryHashType of the next KEY_EXCHANGE.
    summary_type: u8,
    /// The MeasurementSummaryHash of the last KEY_EXCHANGE_RSP.
    last_summary: Vec<u8>,
}

/// The requester's capabilities by default: authentication and sessions.
const REQ_FLAGS: u32 = SPDM_CAP_CERT
    | SPDM_CAP_CHAL
    | SPDM_CAP_KEY_EX
    | SPDM_CAP_ENCRYPT
    | SPDM_CAP_MAC
    | SPDM_CAP_HBEAT
    | SPDM_CAP_KEY_UPD;

/// The SPDM error code of `msg` if it is an ERROR.
fn error_of(msg: &[u8]) -> Option<String> {
    parse_error_response(msg)
        .ok()
        .map(|e| error_code_name(e.code).to_string())
}

impl Requester {
    /// Sends one DOE object, returns the reply object (keeping the responder's log).
    fn send(&mut self, object: &[u8]) -> Vec<u8> {
        let reply = self.responder.respond(object);
        self.log.extend(reply.log);
        reply.object.unwrap()
    }

    fn clear(&mut self, msg: &[u8]) -> Vec<u8> {
        let reply = self.send(&object(DOE_TYPE_CMA, msg));
        let obj = decode_object(&reply).unwrap();
        assert!(obj.header.is(PCI_SIG_VENDOR_ID, DOE_TYPE_CMA));
        obj.payload.to_vec()
    }

    /// Whether the log has a line containing `text`.
    fn logged(&self, text: &str) -> bool {
        self.log.iter().any(|l| l.contains(text))
    }

    fn open(key: KeyKind, fault: Fault, v: SpdmVersion, dhe: u16, aead: u16) -> Requester {
        Requester::open_with(key, fault, v, dhe, aead, SessionOptions::default(), false)
    }

    /// A P-256 endpoint without faults, every DHE group and AEAD offered, with `options`;
    /// the requester sets HANDSHAKE_IN_THE_CLEAR_CAP if `clear_cap`.
    fn p256(v: SpdmVersion, options: SessionOptions, clear_cap: bool) -> Requester {
        Requester::open_with(
            KeyKind::P256,
            Fault::None,
            v,
            ALL_DHE,
            ALL_AEAD,
            options,
            clear_cap,
        )
    }

    /// Connects to a responder with `options`; the requester sets HANDSHAKE_IN_THE_CLEAR_CAP
    /// if `clear_cap`.
    fn open_with(
        key: KeyKind,
        fault: Fault,
        v: SpdmVersion,
        dhe: u16,
        aead: u16,
        options: SessionOptions,
        clear_cap: bool,
    ) -> Requester {
        Requester::connect(key, fault, v, dhe, aead, options, clear_cap, REQ_FLAGS).unwrap()
    }

    /// GET_VERSION, GET_CAPABILITIES (with `flags`, plus HANDSHAKE_IN_THE_CLEAR_CAP if
    /// `clear_cap`) and NEGOTIATE_ALGORITHMS offering `dhe` and `aead`; an ERROR answer to
    /// NEGOTIATE_ALGORITHMS is an `Err` naming it.
    #[allow(clippy::too_many_arguments)]
    fn connect(
        key: KeyKind,
        fault: Fault,
        v: SpdmVersion,
        dhe: u16,
        aead: u16,
        options: SessionOptions,
        clear_cap: bool,
        flags: u32,
    ) -> Result<Requester, String> {
        let id = identity(key);
        let mut responder = Responder::with_identity(
            [SpdmVersion::V1_1, SpdmVersion::V1_2, SpdmVersion::V1_3]
                .map(SpdmVersion::to_entry)
                .to_vec(),
            fault,
            Arc::clone(&id),
        );
        responder.set_session_options(options);
        let mut r = Requester {
            responder,
            id,
            v,
            hash: 0,
            asym: 0,
            dhe: 0,
            aead: 0,
            vca: Vec::new(),
            s: None,
            clear_cap,
            rsp_clear_cap: false,
            log: Vec::new(),
            summary_type: 0,
            last_summary: Vec::new(),
        };
        let gv = [0x10, SPDM_GET_VERSION, 0, 0];
        let rsp = r.clear(&gv);
        let vr = parse_version_response(&rsp).unwrap();
        r.vca.extend_from_slice(&gv);
        r.vca
            .extend_from_slice(&rsp[..6 + 2 * usize::from(vr.count())]);
        let mut caps = Capabilities::new(v);
        caps.ct_exponent = 12;
        caps.flags = flags;
        if clear_cap {
            caps.flags |= SPDM_CAP_HANDSHAKE_IN_THE_CLEAR;
        }
        caps.data_transfer_size = 4096;
        caps.max_spdm_msg_size = 4096;
        let mut buf = [0u8; 64];
        let n = encode_get_capabilities(&caps, &mut buf).unwrap();
        let rsp = r.clear(&buf[..n]);
        let rc = parse_capabilities(&rsp, v).unwrap();
        for f in [
            SPDM_CAP_KEY_EX,
            SPDM_CAP_ENCRYPT,
            SPDM_CAP_MAC,
            SPDM_CAP_HBEAT,
            SPDM_CAP_KEY_UPD,
        ] {
            assert_eq!(
                rc.has(f),
                v >= SpdmVersion::V1_1,
                "capability {f:#x} at {v:?}"
            );
        }
        assert_eq!(
            rc.has(SPDM_CAP_HANDSHAKE_IN_THE_CLEAR),
            options.handshake_in_clear && v >= SpdmVersion::V1_1
        );
        r.rsp_clear_cap = rc.has(SPDM_CAP_HANDSHAKE_IN_THE_CLEAR);
        r.vca.extend_from_slice(&buf[..n]);
        r.vca.extend_from_slice(&rsp[..capabilities_size(v)]);
        let mut na = NegotiateAlgorithms::new(v);
        na.measurement_specification = SPDM_MEAS_SPEC_DMTF;
        na.other_params = SPDM_OPAQUE_DATA_FMT1;
        na.base_asym = SPDM_ASYM_ECDSA_P256 | SPDM_ASYM_ECDSA_P384;
        na.base_hash = SPDM_HASH_SHA256 | SPDM_HASH_SHA384;
        na.structs = AlgStructs {
            dhe: Some(dhe),
            aead: Some(aead),
            req_base_asym: None,
            key_schedule: Some(SPDM_KEY_SCHEDULE_SPDM),
        };
        let mut buf = [0u8; 128];
        let n = encode_negotiate_algorithms(&na, &mut buf).unwrap();
        let rsp = r.clear(&buf[..n]);
        if let Some(code) = error_of(&rsp) {
            return Err(format!("NEGOTIATE_ALGORITHMS answered ERROR {code}"));
        }
        let alg = parse_algorithms(&rsp, v).unwrap();
        alg.check_against(&na, true).unwrap();
        r.vca.extend_from_slice(&buf[..n]);
        r.vca.extend_from_slice(&rsp[..alg.len]);
        r.hash = alg.base_hash;
        r.asym = alg.base_asym;
        r.dhe = alg.structs.dhe.unwrap();
        r.aead = alg.structs.aead.unwrap();
        if flags & SPDM_CAP_KEY_EX != 0 {
            assert_eq!(alg.structs.key_schedule, Some(SPDM_KEY_SCHEDULE_SPDM));
            assert!(r.dhe & dhe != 0 && r.dhe.count_ones() == 1);
            if flags & (SPDM_CAP_ENCRYPT | SPDM_CAP_MAC) != 0 {
                assert!(r.aead & aead != 0 && r.aead.count_ones() == 1);
            } else {
                assert_eq!(r.aead, 0);
            }
        } else {
            assert_eq!(alg.structs.key_schedule, Some(0));
            assert_eq!((r.dhe, r.aead), (0, 0));
        }
        Ok(r)
    }

    /// KEY_EXCHANGE then FINISH; returns the SessionID.
    fn establish(&mut self, slot: u8) -> Result<u32, String> {
        let sid = self.key_exchange(slot)?;
        self.finish(false)?;
        Ok(sid)
    }

    /// KEY_EXCHANGE: checks KEY_EXCHANGE_RSP (signature; ResponderVerifyData unless the
    /// handshake is in the clear, when there must be none) and keeps the handshake state;
    /// returns the SessionID.
    fn key_exchange(&mut self, slot: u8) -> Result<u32, String> {
        let v = self.v;
        let in_clear = self.clear_cap && self.rsp_clear_cap;
        let ecdhe = Ecdhe::generate(self.dhe).unwrap();
        let exchange = ecdhe.exchange_data();
        let random: [u8; 32] = rand::rng().random();
        let mut opaque = [0u8; 32];
        let on = encode_sm_supported_versions_for(
            v,
            &[SPDM_SECURED_VERSION_1_0, SPDM_SECURED_VERSION_1_1],
            &mut opaque,
        )
        .unwrap();
        let req_session_id: u16 = 0x4242;
        let ke = KeyExchange {
            version: v,
            meas_summary_type: self.summary_type,
            slot,
            req_session_id,
            session_policy: 0,
            random_data: &random,
            exchange: &exchange,
            opaque: &opaque[..on],
            len: 0,
        };
        let mut buf = vec![0u8; 512];
        let n = encode_key_exchange(&ke, &mut buf).unwrap();
        let ke_bytes = buf[..n].to_vec();
        let rsp = self.clear(&ke_bytes);
        let h = hash_size(self.hash).unwrap();
        let params = KeyExchangeRspParams {
            version: v,
            hash_size: h,
            signature_size: signature_size(self.asym).unwrap(),
            exchange_size: dhe_exchange_size(self.dhe).unwrap(),
            measurement_summary: self.summary_type != 0,
            verify_data: !in_clear,
        };
        if let Some(code) = error_of(&rsp) {
            return Err(format!("KEY_EXCHANGE_RSP: ERROR {code}"));
        }
        let kr = parse_key_exchange_rsp(&rsp, &params)
            .map_err(|e| format!("KEY_EXCHANGE_RSP: {}", e.as_str()))?;
        self.last_summary = kr.measurement_summary_hash.to_vec();
        // The other layout must not fit: the presence of ResponderVerifyData is exact.
        let other = KeyExchangeRspParams {
            verify_data: in_clear,
            ..params
        };
        if parse_key_exchange_rsp(&rsp, &other).is_ok() {
            return Err(format!(
                "KEY_EXCHANGE_RSP also parses {} ResponderVerifyData",
                if in_clear { "with" } else { "without" }
            ));
        }
        if kr.mut_auth_requested != 0 {
            return Err("mutual authentication requested".into());
        }
        match parse_sm_versions_for(v, kr.opaque).map_err(|e| e.as_str().to_string())? {
            SmVersions::Selected(sv)
                if sv == SPDM_SECURED_VERSION_1_0 || sv == SPDM_SECURED_VERSION_1_1 => {}
            other => return Err(format!("bad secured version selection {other:?}")),
        }
        let slot_id = self.id.slot(slot).unwrap();
        let chain = slot_id.spdm_chain(self.hash).unwrap();
        let mut t = self.vca.clone();
        t.extend_from_slice(&spdm_hash(self.hash, &chain).unwrap());
        t.extend_from_slice(&ke_bytes);
        t.extend_from_slice(&rsp[..kr.signature_offset]);
        let th = spdm_hash(self.hash, &t).unwrap();
        let mut signed = [0u8; 200];
        let sn = signed_message(v, SPDM_KEY_EXCHANGE_RSP_SIGN_CONTEXT, &th, &mut signed).unwrap();
        // 1.1: over the transcript hash itself; 1.2+: over the hash of the prefixed message.
        let digest = if v >= SpdmVersion::V1_2 {
            spdm_hash(self.hash, &signed[..sn]).unwrap()
        } else {
            th.clone()
        };
        verify(&slot_id.key, &digest, kr.signature)
            .map_err(|e| format!("KEY_EXCHANGE_RSP signature: {e}"))?;
        t.extend_from_slice(kr.signature);
        let th1 = spdm_hash(self.hash, &t).unwrap();
        let shared = ecdhe
            .shared_secret(kr.exchange)
            .ok_or("bad responder exchange data")?;
        let mut ks = key_schedule(v, self.hash).unwrap();
        let hs = ks.handshake_secret(&shared).unwrap();
        let (req_hs, rsp_hs) = ks.handshake_traffic_secrets(&hs, &th1).unwrap();
        let rsp_finished = ks.finished_key(&rsp_hs).unwrap();
        let req_finished = ks.finished_key(&req_hs).unwrap();
        if !in_clear {
            let expected = ks.verify_data(&rsp_finished, &th1).unwrap();
            if expected.as_bytes() != kr.verify_data {
                return Err("ResponderVerifyData does not verify".into());
            }
            t.extend_from_slice(kr.verify_data);
        }
        let sid = session_id(req_session_id, kr.rsp_session_id);
        self.s = Some(ReqSession {
            id: sid,
            req: Direction::new(&mut ks, self.aead, req_hs)?,
            rsp: Direction::new(&mut ks, self.aead, rsp_hs)?,
            ks,
            hs,
            req_finished,
            rsp_finished,
            in_clear,
            heartbeat_period: kr.heartbeat_period,
            transcript: t,
        });
        Ok(sid)
    }

    /// FINISH (RequesterVerifyData with a byte flipped if `tamper`).
    fn finish_msg(&mut self, tamper: bool) -> Vec<u8> {
        let v = self.v;
        let s = self.s.as_mut().unwrap();
        let mut fin = s.transcript.clone();
        fin.extend_from_slice(&[v.as_byte(), SPDM_FINISH, 0, 0]);
        let th = spdm_hash(self.hash, &fin).unwrap();
        let mut vd =
            s.ks.verify_data(&s.req_finished, &th)
                .unwrap()
                .as_bytes()
                .to_vec();
        if tamper {
            vd[3] ^= 0x10;
        }
        let mut buf = [0u8; 80];
        let n = encode_finish(v, 0, &[], &vd, &mut buf).unwrap();
        buf[..n].to_vec()
    }

    /// FINISH: inside the session with the handshake keys, or in the clear (then FINISH_RSP's
    /// ResponderVerifyData is verified); then the application keys from TH2.
    fn finish(&mut self, tamper: bool) -> Result<(), String> {
        let v = self.v;
        let h = hash_size(self.hash).unwrap();
        let fin_msg = self.finish_msg(tamper);
        let in_clear = self.s.as_ref().unwrap().in_clear;
        let rsp = if in_clear {
            self.clear(&fin_msg)
        } else {
            self.secured(&fin_msg)?
        };
        if let Some(code) = error_of(&rsp) {
            return Err(format!("FINISH answered ERROR {code}"));
        }
        let (rsp_vd, len) = parse_finish_rsp(&rsp, v, if in_clear { h } else { 0 })
            .map_err(|e| format!("FINISH_RSP: {}", e.as_str()))?;
        let s = self.s.as_mut().unwrap();
        s.transcript.extend_from_slice(&fin_msg);
        if in_clear {
            // ResponderVerifyData = HMAC(rsp finished key, Hash(... || FINISH || FINISH_RSP
            // header)).
            s.transcript.extend_from_slice(&rsp[..SPDM_HEADER_SIZE]);
            let th = spdm_hash(self.hash, &s.transcript).unwrap();
            let expected = s.ks.verify_data(&s.rsp_finished, &th).unwrap();
            if expected.as_bytes() != rsp_vd {
                return Err("FINISH_RSP ResponderVerifyData does not verify".into());
            }
            s.transcript.extend_from_slice(rsp_vd);
        } else {
            s.transcript.extend_from_slice(&rsp[..len]);
        }
        let th2 = spdm_hash(self.hash, &s.transcript).unwrap();
        let ms = s.ks.master_secret(&s.hs).unwrap();
        let (ra, rs) = s.ks.app_traffic_secrets(&ms, &th2).unwrap();
        s.req = Direction::new(&mut s.ks, self.aead, ra)?;
        s.rsp = Direction::new(&mut s.ks, self.aead, rs)?;
        Ok(())
    }

    /// Sends `msg` in a secured message of the session; returns the reply's DOE object type
    /// and payload, not decrypted.
    fn send_record(&mut self, msg: &[u8]) -> Result<(u8, Vec<u8>), String> {
        let s = self.s.as_mut().ok_or("no session")?;
        let seq = s.req.seq.take().map_err(|e| e.to_string())?;
        let p = RecordParams {
            session_id: s.id,
            iv: &s.req.iv,
            seq,
            seq_size: SPDM_PCI_DOE_SEQ_NUM_SIZE,
        };
        let mut rec = vec![0u8; msg.len() + 64];
        let n = encode_record(&mut s.req.aead, &p, msg, &[], &mut rec).unwrap();
        let reply = self.send(&object(DOE_TYPE_SECURED_CMA, &rec[..n]));
        let obj = decode_object(&reply).unwrap();
        Ok((obj.header.object_type, obj.payload.to_vec()))
    }

    /// Sends `msg` in the session, returns the decrypted response.
    fn secured(&mut self, msg: &[u8]) -> Result<Vec<u8>, String> {
        let (ty, mut buf) = self.send_record(msg)?;
        if ty != DOE_TYPE_SECURED_CMA {
            let e = parse_error_response(&buf).map_err(|e| e.as_str().to_string())?;
            return Err(format!("clear ERROR {}", error_code_name(e.code)));
        }
        let s = self.s.as_mut().unwrap();
        let seq = s.rsp.seq.next();
        let p = RecordParams {
            session_id: s.id,
            iv: &s.rsp.iv,
            seq,
            seq_size: SPDM_PCI_DOE_SEQ_NUM_SIZE,
        };
        let m = open_record(&mut s.rsp.aead, &p, &mut buf)
            .map_err(|e| format!("secured response: {e}"))?
            .to_vec();
        s.rsp.seq.accept(seq).unwrap();
        Ok(m)
    }

    fn heartbeat(&mut self) -> Result<(), String> {
        let mut b = [0u8; 4];
        encode_heartbeat(self.v, &mut b).unwrap();
        let rsp = self.secured(&b)?;
        parse_heartbeat_ack(&rsp, self.v).map_err(|e| format!("HEARTBEAT_ACK: {}", e.as_str()))
    }

    fn measurements(&mut self) -> Result<u8, String> {
        let req = GetMeasurements {
            version: self.v,
            attributes: 0,
            operation: SPDM_MEAS_OP_ALL,
            nonce: [0; 32],
            slot_id: 0,
            requester_context: [0; 8],
        };
        let mut b = [0u8; 64];
        let n = encode_get_measurements(&req, &mut b).map_err(|e| e.reason().to_string())?;
        let rsp = self.secured(&b[..n])?;
        let h = SpdmHeader::parse(&rsp).map_err(|e| e.as_str().to_string())?;
        if h.code != SPDM_MEASUREMENTS {
            return Err(format!(
                "in-session GET_MEASUREMENTS answered {}",
                code_name(h.code)
            ));
        }
        Ok(rsp[4])
    }

    fn key_update(&mut self, all: bool, tag: u8) -> Result<(), String> {
        let v = self.v;
        let op = if all {
            SPDM_KEY_UPDATE_OP_UPDATE_ALL_KEYS
        } else {
            SPDM_KEY_UPDATE_OP_UPDATE_KEY
        };
        let ku = KeyUpdate {
            version: v,
            operation: op,
            tag,
        };
        let mut b = [0u8; 4];
        encode_key_update(&ku, &mut b).unwrap();
        // UpdateAllKeys: the ACK already comes with the new response key.
        let aead = self.aead;
        if all {
            let s = self.s.as_mut().unwrap();
            s.rsp = s.rsp.updated(&mut s.ks, aead)?;
        }
        let rsp = self.secured(&b)?;
        let ack =
            parse_key_update_ack(&rsp, v).map_err(|e| format!("KEY_UPDATE_ACK: {}", e.as_str()))?;
        ku.check_ack(&ack).map_err(|e| e.as_str().to_string())?;
        let s = self.s.as_mut().unwrap();
        s.req = s.req.updated(&mut s.ks, aead)?;
        let verify = KeyUpdate {
            version: v,
            operation: SPDM_KEY_UPDATE_OP_VERIFY_NEW_KEY,
            tag: tag.wrapping_add(1),
        };
        encode_key_update(&verify, &mut b).unwrap();
        let rsp = self.secured(&b)?;
        let ack =
            parse_key_update_ack(&rsp, v).map_err(|e| format!("KEY_UPDATE_ACK: {}", e.as_str()))?;
        verify.check_ack(&ack).map_err(|e| e.as_str().to_string())
    }

    /// CHALLENGE in the clear on slot 0 with `summary_type`: checks the signature of
    /// CHALLENGE_AUTH (over VCA || CHALLENGE || CHALLENGE_AUTH; no GET_DIGESTS before) and
    /// returns its MeasurementSummaryHash.
    fn challenge(&mut self, summary_type: u8) -> Result<Vec<u8>, String> {
        let v = self.v;
        let req = Challenge {
            version: v,
            slot: 0,
            meas_summary_type: summary_type,
            nonce: rand::rng().random(),
            requester_context: [0; 8],
        };
        let mut b = [0u8; 64];
        let n = encode_challenge(&req, &mut b).unwrap();
        let rsp = self.clear(&b[..n]);
        if let Some(code) = error_of(&rsp) {
            return Err(format!("CHALLENGE answered ERROR {code}"));
        }
        let params = ChallengeAuthParams {
            version: v,
            hash_size: hash_size(self.hash).unwrap(),
            signature_size: signature_size(self.asym).unwrap(),
            measurement_summary: summary_type != 0,
        };
        let ca = parse_challenge_auth(&rsp, &params).map_err(|e| e.as_str().to_string())?;
        let mut t = self.vca.clone();
        t.extend_from_slice(&b[..n]);
        t.extend_from_slice(&rsp[..ca.signature_offset]);
        let m1 = spdm_hash(self.hash, &t).unwrap();
        let mut signed = [0u8; 200];
        let sn = signed_message(v, SPDM_CHALLENGE_AUTH_SIGN_CONTEXT, &m1, &mut signed).unwrap();
        let digest = if v >= SpdmVersion::V1_2 {
            spdm_hash(self.hash, &signed[..sn]).unwrap()
        } else {
            m1
        };
        let key = &self.id.slot(0).unwrap().key;
        verify(key, &digest, ca.signature).map_err(|e| format!("CHALLENGE_AUTH signature: {e}"))?;
        Ok(ca.measurement_summary_hash.to_vec())
    }

    /// The summary hash a requester computes from an unsigned, non-raw GET_MEASUREMENTS of all
    /// blocks (in the clear): the hash of the concatenated blocks, only the immutable ROM ones
    /// if `tcb`.
    fn expected_summary(&mut self, tcb: bool) -> Vec<u8> {
        let req = GetMeasurements {
            version: self.v,
            attributes: 0,
            operation: SPDM_MEAS_OP_ALL,
            nonce: [0; 32],
            slot_id: 0,
            requester_context: [0; 8],
        };
        let mut b = [0u8; 64];
        let n = encode_get_measurements(&req, &mut b).unwrap();
        let rsp = self.clear(&b[..n]);
        let params = MeasurementsParams::for_request(&req, 0, None);
        let m = parse_measurements(&rsp, &params).unwrap();
        let mut data = Vec::new();
        for blk in m.blocks() {
            if tcb && blk.kind() != SPDM_MEAS_TYPE_IMMUTABLE_ROM {
                continue;
            }
            let mut out = vec![0u8; blk.encoded_size()];
            let k =
                encode_measurement_block(blk.index, blk.value_type, blk.value, &mut out).unwrap();
            data.extend_from_slice(&out[..k]);
        }
        spdm_hash(self.hash, &data).unwrap()
    }

    fn end(&mut self) -> Result<(), String> {
        let mut b = [0u8; 4];
        encode_end_session(self.v, 0, &mut b).unwrap();
        let rsp = self.secured(&b)?;
        parse_end_session_ack(&rsp, self.v).map_err(|e| e.as_str().to_string())?;
        self.s = None;
        Ok(())
    }
}

const ALL_DHE: u16 = SPDM_DHE_SECP256R1 | SPDM_DHE_SECP384R1;
const ALL_AEAD: u16 = SPDM_AEAD_AES_256_GCM | SPDM_AEAD_CHACHA20_POLY1305;

fn full_session(key: KeyKind, v: SpdmVersion, dhe: u16, aead: u16) {
    let mut r = Requester::open(key, Fault::None, v, dhe, aead);
    let sid = r.establish(0).unwrap();
    assert_eq!(r.responder.session_id(), Some(sid));
    assert!(r.measurements().unwrap() > 0);
    r.heartbeat().unwrap();
    r.key_update(false, 1).unwrap();
    assert!(r.measurements().unwrap() > 0);
    r.key_update(true, 7).unwrap();
    r.heartbeat().unwrap();
    assert!(r.measurements().unwrap() > 0);
    r.key_update(false, 9).unwrap();
    r.heartbeat().unwrap();
    r.end().unwrap();
    assert_eq!(r.responder.session_id(), None);
    // A secured message after END_SESSION is refused in the clear.
    let reply = r
        .responder
        .respond(&object(DOE_TYPE_SECURED_CMA, &[0u8; 32]))
        .object
        .unwrap();
    assert_eq!(
        decode_object(&reply).unwrap().header.object_type,
        DOE_TYPE_CMA
    );
    // A new session on the same connection, with slot 1.
    r.establish(1).unwrap();
    r.heartbeat().unwrap();
    r.end().unwrap();
}

#[test]
fn session_p256_aes_1_2() {
    full_session(
        KeyKind::P256,
        SpdmVersion::V1_2,
        SPDM_DHE_SECP256R1,
        SPDM_AEAD_AES_256_GCM,
    );
}

#[test]
fn session_p384_chacha_1_3() {
    full_session(
        KeyKind::P384,
        SpdmVersion::V1_3,
        SPDM_DHE_SECP384R1,
        SPDM_AEAD_CHACHA20_POLY1305,
    );
}

#[test]
fn session_prefers_strongest() {
    let r = Requester::open(
        KeyKind::P256,
        Fault::None,
        SpdmVersion::V1_2,
        ALL_DHE,
        ALL_AEAD,
    );
    assert_eq!((r.dhe, r.aead), (SPDM_DHE_SECP384R1, SPDM_AEAD_AES_256_GCM));
}

#[test]
fn tampered_finish_and_record_end_the_session() {
    let mut r = Requester::open(
        KeyKind::P256,
        Fault::None,
        SpdmVersion::V1_2,
        ALL_DHE,
        ALL_AEAD,
    );
    r.establish(0).unwrap();
    // Skip a request sequence number: the responder cannot decrypt and ends the session.
    r.s.as_mut().unwrap().req.seq.take().unwrap();
    let e = r.heartbeat().unwrap_err();
    assert!(e.contains("DecryptError"), "{e}");
    assert_eq!(r.responder.session_id(), None);
}

#[test]
fn sessions_at_1_1() {
    // DSP0274 1.1 sessions: no SessionPolicy, signature without prefix, DSP0277 1.0 opaque
    // data, "spdm1.1 " key schedule labels; every AEAD.
    full_session(
        KeyKind::P256,
        SpdmVersion::V1_1,
        SPDM_DHE_SECP256R1,
        SPDM_AEAD_AES_256_GCM,
    );
    full_session(
        KeyKind::P384,
        SpdmVersion::V1_1,
        SPDM_DHE_SECP384R1,
        SPDM_AEAD_CHACHA20_POLY1305,
    );
    full_session(
        KeyKind::P256,
        SpdmVersion::V1_1,
        SPDM_DHE_SECP384R1,
        SPDM_AEAD_AES_128_GCM,
    );
    let mut r = Requester::open(
        KeyKind::P256,
        Fault::None,
        SpdmVersion::V1_1,
        ALL_DHE,
        ALL_AEAD,
    );
    r.establish(0).unwrap();
    assert!(r.logged("KEY_EXCHANGE 1.1 slot 0"));
    assert!(r.logged("secured messages 1.1"));
    // The 1.2 opaque data layout is refused at 1.1.
    let mut opaque = [0u8; 32];
    let on = encode_sm_supported_versions(&[SPDM_SECURED_VERSION_1_1], &mut opaque).unwrap();
    let exchange = Ecdhe::generate(r.dhe).unwrap().exchange_data();
    let ke = KeyExchange {
        version: SpdmVersion::V1_1,
        meas_summary_type: 0,
        slot: 0,
        req_session_id: 7,
        session_policy: 0,
        random_data: &[0; 32],
        exchange: &exchange,
        opaque: &opaque[..on],
        len: 0,
    };
    let mut buf = vec![0u8; 512];
    let n = encode_key_exchange(&ke, &mut buf).unwrap();
    assert_eq!(
        error_of(&r.clear(&buf[..n])).as_deref(),
        Some("InvalidRequest")
    );
}

#[test]
fn session_aes128_gcm() {
    full_session(
        KeyKind::P384,
        SpdmVersion::V1_2,
        SPDM_DHE_SECP256R1,
        SPDM_AEAD_AES_128_GCM,
    );
    full_session(
        KeyKind::P256,
        SpdmVersion::V1_3,
        SPDM_DHE_SECP384R1,
        SPDM_AEAD_AES_128_GCM,
    );
}

fn with_algs(dhe: u16, aead: u16) -> SessionOptions {
    SessionOptions {
        dhe,
        aead,
        ..SessionOptions::default()
    }
}

const DHE_ALL3: u16 = SPDM_DHE_SECP256R1 | SPDM_DHE_SECP384R1 | SPDM_DHE_SECP521R1;

#[test]
fn session_secp521r1() {
    for v in [SpdmVersion::V1_1, SpdmVersion::V1_2, SpdmVersion::V1_3] {
        let mut r = Requester::open_with(
            KeyKind::P384,
            Fault::None,
            v,
            SPDM_DHE_SECP521R1,
            ALL_AEAD,
            with_algs(DHE_ALL3, SPDM_AEAD_AES_128_GCM | SPDM_AEAD_AES_256_GCM),
            false,
        );
        assert_eq!((r.dhe, r.aead), (SPDM_DHE_SECP521R1, SPDM_AEAD_AES_256_GCM));
        r.establish(0).unwrap();
        assert!(r.measurements().unwrap() > 0);
        r.key_update(true, 2).unwrap();
        r.heartbeat().unwrap();
        r.end().unwrap();
    }
}

#[test]
fn selection_priority() {
    let pick = |options: SessionOptions, dhe: u16, aead: u16| {
        let r = Requester::open_with(
            KeyKind::P256,
            Fault::None,
            SpdmVersion::V1_2,
            dhe,
            aead,
            options,
            false,
        );
        (r.dhe, r.aead)
    };
    let all_aead = ALL_AEAD | SPDM_AEAD_AES_128_GCM;
    // Default: secp256r1 and secp384r1, all three AEADs.
    assert_eq!(
        pick(SessionOptions::default(), DHE_ALL3, all_aead),
        (SPDM_DHE_SECP384R1, SPDM_AEAD_AES_256_GCM)
    );
    assert_eq!(
        pick(with_algs(DHE_ALL3, all_aead), DHE_ALL3, all_aead),
        (SPDM_DHE_SECP521R1, SPDM_AEAD_AES_256_GCM)
    );
    assert_eq!(
        pick(
            SessionOptions::default(),
            SPDM_DHE_SECP256R1,
            SPDM_AEAD_CHACHA20_POLY1305 | SPDM_AEAD_AES_128_GCM
        ),
        (SPDM_DHE_SECP256R1, SPDM_AEAD_CHACHA20_POLY1305)
    );
    assert_eq!(
        pick(
            with_algs(
                DHE_ALL3,
                SPDM_AEAD_AES_128_GCM | SPDM_AEAD_CHACHA20_POLY1305
            ),
            SPDM_DHE_SECP256R1 | SPDM_DHE_SECP521R1,
            all_aead
        ),
        (SPDM_DHE_SECP521R1, SPDM_AEAD_CHACHA20_POLY1305)
    );
}

#[test]
fn no_common_dhe_or_aead_is_invalid_request() {
    for v in [SpdmVersion::V1_1, SpdmVersion::V1_2, SpdmVersion::V1_3] {
        let connect = |options: SessionOptions, dhe: u16, aead: u16, flags: u32| {
            Requester::connect(
                KeyKind::P256,
                Fault::None,
                v,
                dhe,
                aead,
                options,
                false,
                flags,
            )
            .map(|r| (r.dhe, r.aead))
        };
        let invalid = Err("NEGOTIATE_ALGORITHMS answered ERROR InvalidRequest".to_string());
        // --aead aes128-gcm against a requester with AES-256-GCM and ChaCha20-Poly1305 only
        // (what the kernel requester offers).
        assert_eq!(
            connect(
                with_algs(
                    SPDM_DHE_SECP256R1 | SPDM_DHE_SECP384R1,
                    SPDM_AEAD_AES_128_GCM
                ),
                ALL_DHE,
                ALL_AEAD,
                REQ_FLAGS
            ),
            invalid
        );
        // --dhe secp521r1 against secp256r1 and secp384r1.
        assert_eq!(
            connect(
                with_algs(SPDM_DHE_SECP521R1, ALL_AEAD),
                ALL_DHE,
                ALL_AEAD,
                REQ_FLAGS
            ),
            invalid
        );
        // The same requester without session capabilities: nothing is selected, nothing is
        // required.
        assert_eq!(
            connect(
                with_algs(SPDM_DHE_SECP521R1, SPDM_AEAD_AES_128_GCM),
                ALL_DHE,
                ALL_AEAD,
                SPDM_CAP_CERT | SPDM_CAP_CHAL
            ),
            Ok((0, 0))
        );
        // KEY_EX_CAP without ENCRYPT_CAP and MAC_CAP: a DHE group but no AEAD needed.
        let (dhe, aead) = connect(
            with_algs(ALL_DHE, SPDM_AEAD_AES_128_GCM),
            ALL_DHE,
            ALL_AEAD,
            SPDM_CAP_CERT | SPDM_CAP_CHAL | SPDM_CAP_KEY_EX,
        )
        .unwrap();
        assert_eq!((dhe, aead), (SPDM_DHE_SECP384R1, 0));
    }
}

#[test]
fn requester_without_session_caps_authenticates_and_measures() {
    for v in [SpdmVersion::V1_1, SpdmVersion::V1_2, SpdmVersion::V1_3] {
        let mut r = Requester::connect(
            KeyKind::P256,
            Fault::None,
            v,
            ALL_DHE,
            ALL_AEAD,
            SessionOptions::default(),
            false,
            SPDM_CAP_CERT | SPDM_CAP_CHAL,
        )
        .unwrap();
        assert_eq!((r.dhe, r.aead), (0, 0));
        r.challenge(0).unwrap();
        r.challenge(SPDM_MEAS_SUMMARY_ALL).unwrap();
        assert!(!r.expected_summary(false).is_empty());
        // KEY_EXCHANGE is refused (no KEY_EX_CAP from the requester, nothing negotiated).
        r.dhe = SPDM_DHE_SECP256R1;
        r.aead = SPDM_AEAD_AES_256_GCM;
        let e = r.key_exchange(0).unwrap_err();
        assert_eq!(e, "KEY_EXCHANGE_RSP: ERROR UnexpectedRequest", "{v:?}");
        assert_eq!(r.responder.session_id(), None);
    }
}

#[test]
fn session_requests_outside_a_session() {
    for v in [SpdmVersion::V1_1, SpdmVersion::V1_2, SpdmVersion::V1_3] {
        let want = if v >= SpdmVersion::V1_2 {
            "SessionRequired"
        } else {
            "UnexpectedRequest"
        };
        let mut r = Requester::open(KeyKind::P256, Fault::None, v, ALL_DHE, ALL_AEAD);
        let b = v.as_byte();
        for msg in [
            vec![b, SPDM_HEARTBEAT, 0, 0],
            vec![b, SPDM_KEY_UPDATE, SPDM_KEY_UPDATE_OP_UPDATE_KEY, 1],
            vec![b, SPDM_END_SESSION, 0, 0],
        ] {
            assert_eq!(
                error_of(&r.clear(&msg)).as_deref(),
                Some(want),
                "{v:?} {msg:?}"
            );
        }
        // FINISH in the clear: without a session, and for a session whose handshake is
        // encrypted (it must come inside the session).
        r.key_exchange(0).unwrap();
        let fin = r.finish_msg(false);
        assert_eq!(error_of(&r.clear(&fin)).as_deref(), Some(want));
        r.finish(false).unwrap();
        // Inside the session they work; outside, still refused.
        r.heartbeat().unwrap();
        assert_eq!(
            error_of(&r.clear(&[b, SPDM_HEARTBEAT, 0, 0])).as_deref(),
            Some(want)
        );
        r.end().unwrap();
        assert_eq!(error_of(&r.clear(&fin)).as_deref(), Some(want));
        // With another version than the negotiated one: VersionMismatch first.
        assert_eq!(
            error_of(&r.clear(&[b.wrapping_add(1), SPDM_HEARTBEAT, 0, 0])).as_deref(),
            Some("VersionMismatch")
        );
    }
}

// --- Measurement summary hash ------------------------------------------------------------------

fn summary_requester(v: SpdmVersion, fault: Fault) -> (Requester, Arc<MeasConfig>) {
    let mut r = Requester::open(KeyKind::P384, fault, v, ALL_DHE, ALL_AEAD);
    let cfg = Arc::new(MeasConfig::default_device());
    r.responder.set_measurements(Some(Arc::clone(&cfg)));
    (r, cfg)
}

#[test]
fn measurement_summary_in_challenge_and_key_exchange() {
    for v in [SpdmVersion::V1_1, SpdmVersion::V1_2, SpdmVersion::V1_3] {
        let (mut r, cfg) = summary_requester(v, Fault::None);
        let all = r.expected_summary(false);
        let tcb = r.expected_summary(true);
        let h = hash_size(r.hash).unwrap();
        assert_eq!((all.len(), tcb.len()), (h, h));
        assert_ne!(all, tcb);
        assert_eq!(r.challenge(SPDM_MEAS_SUMMARY_ALL).unwrap(), all, "{v:?}");
        assert_eq!(r.challenge(SPDM_MEAS_SUMMARY_TCB).unwrap(), tcb, "{v:?}");
        assert!(r.challenge(0).unwrap().is_empty());
        for (t, want) in [(SPDM_MEAS_SUMMARY_ALL, &all), (SPDM_MEAS_SUMMARY_TCB, &tcb)] {
            r.summary_type = t;
            r.establish(0).unwrap();
            assert_eq!(&r.last_summary, want, "{v:?} type {t:#x}");
            r.heartbeat().unwrap();
            r.end().unwrap();
        }
        assert!(r.logged("MeasurementSummaryHash over 6 block(s) (all blocks)"));
        assert!(r.logged("MeasurementSummaryHash over 1 block(s) (TCB: immutable ROM blocks)"));
        // A firmware update changes the all-measurements summary, not the TCB one (the
        // immutable ROM does not change).
        cfg.set_updated(true);
        let all2 = r.expected_summary(false);
        assert_ne!(all2, all);
        assert_eq!(r.expected_summary(true), tcb);
        assert_eq!(r.challenge(SPDM_MEAS_SUMMARY_ALL).unwrap(), all2);
        assert_eq!(r.challenge(SPDM_MEAS_SUMMARY_TCB).unwrap(), tcb);
        r.summary_type = SPDM_MEAS_SUMMARY_ALL;
        r.establish(0).unwrap();
        assert_eq!(r.last_summary, all2);
        // An unknown type is refused (the codec does not even encode it: patch Param2/1).
        let ch = Challenge {
            version: v,
            slot: 0,
            meas_summary_type: 0,
            nonce: [0; 32],
            requester_context: [0; 8],
        };
        let mut b = [0u8; 64];
        let n = encode_challenge(&ch, &mut b).unwrap();
        b[3] = 2;
        assert_eq!(
            error_of(&r.clear(&b[..n])).as_deref(),
            Some("InvalidRequest")
        );
    }
}

#[test]
fn measurement_summary_without_measurements_is_invalid() {
    let mut r = Requester::open(
        KeyKind::P256,
        Fault::None,
        SpdmVersion::V1_2,
        ALL_DHE,
        ALL_AEAD,
    );
    r.responder.set_measurements(None);
    // (CAPABILITIES were already sent with MEAS_CAP; the summary needs measurements now.)
    assert_eq!(
        r.challenge(SPDM_MEAS_SUMMARY_TCB).unwrap_err(),
        "CHALLENGE answered ERROR InvalidRequest"
    );
    r.summary_type = SPDM_MEAS_SUMMARY_ALL;
    assert_eq!(
        r.key_exchange(0).unwrap_err(),
        "KEY_EXCHANGE_RSP: ERROR InvalidRequest"
    );
}

#[test]
fn fault_bad_summary() {
    for v in [SpdmVersion::V1_1, SpdmVersion::V1_2, SpdmVersion::V1_3] {
        let (mut r, _) = summary_requester(v, Fault::BadSummary);
        for t in [SPDM_MEAS_SUMMARY_ALL, SPDM_MEAS_SUMMARY_TCB] {
            let want = r.expected_summary(t == SPDM_MEAS_SUMMARY_TCB);
            // The signature verifies (challenge() checks it); the summary does not match.
            let got = r.challenge(t).unwrap();
            assert_eq!(got.len(), want.len());
            assert_ne!(got, want, "{v:?}");
            r.summary_type = t;
            r.establish(0).unwrap();
            assert_eq!(r.last_summary.len(), want.len());
            assert_ne!(r.last_summary, want, "{v:?}");
            r.end().unwrap();
        }
        // Without a summary nothing is corrupted.
        r.summary_type = 0;
        r.establish(0).unwrap();
        assert!(r.last_summary.is_empty());
        assert!(r.challenge(0).unwrap().is_empty());
        assert!(r.logged("fault bad-summary: CHALLENGE_AUTH MeasurementSummaryHash"));
        assert!(r.logged("fault bad-summary: KEY_EXCHANGE_RSP MeasurementSummaryHash"));
    }
}

fn faulty(fault: Fault) -> Requester {
    let mut r = Requester::open(KeyKind::P256, fault, SpdmVersion::V1_2, ALL_DHE, ALL_AEAD);
    if !matches!(fault, Fault::BadKexSignature | Fault::WrongVerifyData) {
        r.establish(0).unwrap();
    }
    r
}

#[test]
fn fault_bad_kex_signature() {
    let e = faulty(Fault::BadKexSignature).establish(0).unwrap_err();
    assert!(e.contains("KEY_EXCHANGE_RSP signature"), "{e}");
}

#[test]
fn fault_wrong_verify_data() {
    let e = faulty(Fault::WrongVerifyData).establish(0).unwrap_err();
    assert!(e.contains("ResponderVerifyData"), "{e}");
}

#[test]
fn fault_tampered_mac() {
    let e = faulty(Fault::TamperedMac).heartbeat().unwrap_err();
    assert!(e.contains("MAC does not verify"), "{e}");
}

#[test]
fn fault_replayed_sequence() {
    let mut r = faulty(Fault::ReplayedSequence);
    r.heartbeat().unwrap();
    let e = r.heartbeat().unwrap_err();
    assert!(e.contains("MAC does not verify"), "{e}");
}

#[test]
fn fault_skipped_sequence() {
    let e = faulty(Fault::SkippedSequence).heartbeat().unwrap_err();
    assert!(e.contains("MAC does not verify"), "{e}");
}

#[test]
fn fault_wrong_session_id() {
    let e = faulty(Fault::WrongSessionId).heartbeat().unwrap_err();
    assert!(e.contains("another session"), "{e}");
}

#[test]
fn fault_refuse_key_update() {
    let mut r = faulty(Fault::RefuseKeyUpdate);
    r.heartbeat().unwrap();
    let e = r.key_update(false, 1).unwrap_err();
    assert!(e.contains("KEY_UPDATE_ACK"), "{e}");
}

#[test]
fn every_session_fault_is_tested() {
    assert_eq!(Fault::SESSION.len(), 7);
    for f in Fault::SESSION {
        assert!(Fault::ALL.contains(&f));
    }
}

// --- Handshake in the clear ------------------------------------------------------------------

fn clear_options() -> SessionOptions {
    SessionOptions {
        heartbeat_period: 0,
        handshake_in_clear: true,
        ..SessionOptions::default()
    }
}

#[test]
fn handshake_in_the_clear_full_session() {
    for (key, v, dhe, aead) in [
        (
            KeyKind::P384,
            SpdmVersion::V1_3,
            SPDM_DHE_SECP384R1,
            SPDM_AEAD_AES_256_GCM,
        ),
        (
            KeyKind::P256,
            SpdmVersion::V1_2,
            SPDM_DHE_SECP256R1,
            SPDM_AEAD_CHACHA20_POLY1305,
        ),
        (
            KeyKind::P256,
            SpdmVersion::V1_1,
            SPDM_DHE_SECP384R1,
            SPDM_AEAD_AES_128_GCM,
        ),
    ] {
        let mut r = Requester::open_with(key, Fault::None, v, dhe, aead, clear_options(), true);
        assert!(r.rsp_clear_cap);
        // key_exchange() checks that there is no ResponderVerifyData, finish() that FINISH_RSP
        // comes in a CMA object (clear()) with a ResponderVerifyData that verifies.
        let sid = r.establish(0).unwrap();
        assert!(r.s.as_ref().unwrap().in_clear);
        assert_eq!(r.s.as_ref().unwrap().heartbeat_period, 0);
        assert_eq!(r.responder.session_id(), Some(sid));
        assert!(r.logged("handshake in the clear, no ResponderVerifyData"));
        assert!(r.logged(
            "FINISH (in the clear, RequesterVerifyData verified) -> FINISH_RSP (ResponderVerifyData)"
        ));
        assert!(r.logged(&format!(
            "session {sid:#010x} established (application keys)"
        )));
        // The application keys come from TH2 over the whole FINISH_RSP: the session works.
        r.heartbeat().unwrap();
        assert!(r.measurements().unwrap() > 0);
        r.key_update(false, 3).unwrap();
        r.heartbeat().unwrap();
        r.key_update(true, 5).unwrap();
        assert!(r.measurements().unwrap() > 0);
        r.end().unwrap();
        assert_eq!(r.responder.session_id(), None);
        // Again on the same connection, with slot 1.
        r.establish(1).unwrap();
        r.heartbeat().unwrap();
        r.end().unwrap();
    }
}

#[test]
fn handshake_stays_encrypted_without_the_requesters_cap() {
    let mut r = Requester::p256(SpdmVersion::V1_2, clear_options(), false);
    // The endpoint offers it, the requester does not: KEY_EXCHANGE_RSP has
    // ResponderVerifyData, FINISH goes inside the session.
    assert!(r.rsp_clear_cap);
    r.establish(0).unwrap();
    assert!(!r.s.as_ref().unwrap().in_clear);
    assert!(r.logged("encrypted handshake"));
    assert!(r.logged("FINISH (encrypted, RequesterVerifyData verified) -> FINISH_RSP"));
    r.heartbeat().unwrap();
    assert!(r.measurements().unwrap() > 0);
    r.key_update(true, 1).unwrap();
    r.end().unwrap();
}

#[test]
fn requester_cap_alone_does_not_clear_the_handshake() {
    // The requester asks, the endpoint does not announce it: encrypted as always.
    let mut r = Requester::p256(SpdmVersion::V1_3, SessionOptions::default(), true);
    assert!(!r.rsp_clear_cap);
    r.establish(0).unwrap();
    assert!(!r.s.as_ref().unwrap().in_clear);
    r.heartbeat().unwrap();
    r.end().unwrap();
}

#[test]
fn tampered_requester_verify_data_ends_the_session() {
    for clear in [true, false] {
        let mut r = Requester::p256(SpdmVersion::V1_2, clear_options(), clear);
        r.key_exchange(0).unwrap();
        assert_eq!(r.s.as_ref().unwrap().in_clear, clear);
        let e = r.finish(true).unwrap_err();
        assert_eq!(e, "FINISH answered ERROR DecryptError", "clear {clear}");
        assert_eq!(r.responder.session_id(), None, "clear {clear}");
        assert!(r.logged("FINISH RequesterVerifyData does not verify"));
        // The session is gone: a correct FINISH in the clear gets SessionRequired, a secured
        // message ERROR InvalidRequest in the clear.
        let fin = r.finish_msg(false);
        assert_eq!(error_of(&r.clear(&fin)).as_deref(), Some("SessionRequired"));
        let (ty, rsp) = r.send_record(&fin).unwrap();
        assert_eq!(ty, DOE_TYPE_CMA);
        assert_eq!(error_of(&rsp).as_deref(), Some("InvalidRequest"));
        // A new session works.
        r.establish(0).unwrap();
        r.heartbeat().unwrap();
    }
}

#[test]
fn finish_in_the_wrong_form_is_unexpected() {
    // Handshake in the clear: FINISH as a secured message (handshake keys) is refused in the
    // clear, the session is kept and FINISH in the clear then works.
    let mut r = Requester::p256(SpdmVersion::V1_2, clear_options(), true);
    let sid = r.key_exchange(0).unwrap();
    let fin = r.finish_msg(false);
    let (ty, rsp) = r.send_record(&fin).unwrap();
    assert_eq!(ty, DOE_TYPE_CMA);
    assert_eq!(error_of(&rsp).as_deref(), Some("UnexpectedRequest"));
    assert_eq!(r.responder.session_id(), Some(sid));
    r.finish(false).unwrap();
    r.heartbeat().unwrap();
    // Once established, another FINISH in the clear is unexpected too.
    let fin = r.finish_msg(false);
    assert_eq!(
        error_of(&r.clear(&fin)).as_deref(),
        Some("UnexpectedRequest")
    );
    r.heartbeat().unwrap();

    // Encrypted handshake: FINISH in the clear is refused, the session is kept and the secured
    // FINISH then works.
    let mut r = Requester::open(
        KeyKind::P256,
        Fault::None,
        SpdmVersion::V1_3,
        ALL_DHE,
        ALL_AEAD,
    );
    let sid = r.key_exchange(0).unwrap();
    let fin = r.finish_msg(false);
    assert_eq!(error_of(&r.clear(&fin)).as_deref(), Some("SessionRequired"));
    assert!(r.logged("whose handshake is encrypted"));
    assert_eq!(r.responder.session_id(), Some(sid));
    r.finish(false).unwrap();
    r.heartbeat().unwrap();
    r.end().unwrap();
    // Without any session, FINISH in the clear needs a session.
    assert_eq!(error_of(&r.clear(&fin)).as_deref(), Some("SessionRequired"));
}

#[test]
fn fault_wrong_verify_data_in_the_clear() {
    let mut r = Requester::open_with(
        KeyKind::P256,
        Fault::WrongVerifyData,
        SpdmVersion::V1_2,
        ALL_DHE,
        ALL_AEAD,
        clear_options(),
        true,
    );
    // KEY_EXCHANGE_RSP has no verify data to corrupt: FINISH_RSP's is wrong.
    r.key_exchange(0).unwrap();
    let e = r.finish(false).unwrap_err();
    assert_eq!(e, "FINISH_RSP ResponderVerifyData does not verify");
}

// --- HeartbeatPeriod -------------------------------------------------------------------------

fn heartbeat_requester(period: u8, clear: bool) -> Requester {
    Requester::p256(
        SpdmVersion::V1_2,
        SessionOptions {
            heartbeat_period: period,
            handshake_in_clear: clear,
            ..SessionOptions::default()
        },
        clear,
    )
}

#[test]
fn heartbeat_period_is_sent_in_key_exchange_rsp() {
    for period in [0u8, 1, 5, 255] {
        let mut r = heartbeat_requester(period, false);
        r.establish(0).unwrap();
        assert_eq!(r.s.as_ref().unwrap().heartbeat_period, period);
        assert!(r.logged(&format!("HeartbeatPeriod {period} s, encrypted handshake")));
    }
}

#[test]
fn session_expires_after_twice_the_heartbeat_period() {
    for clear in [false, true] {
        let mut r = heartbeat_requester(5, clear);
        let sid = r.key_exchange(0).unwrap();
        // FINISH 9 s after KEY_EXCHANGE_RSP: in time.
        r.responder.advance_clock(Duration::from_secs(9));
        r.finish(false).unwrap();
        // Each request within 2 x 5 s of the previous one keeps the session.
        for _ in 0..3 {
            r.responder.advance_clock(Duration::from_secs(9));
            r.heartbeat().unwrap();
        }
        r.responder.advance_clock(Duration::from_millis(9900));
        assert!(r.measurements().unwrap() > 0);
        // Requests in the clear do not count.
        r.responder.advance_clock(Duration::from_secs(9));
        let rsp = r.clear(&[r.v.as_byte(), SPDM_GET_DIGESTS, 0, 0]);
        assert_eq!(rsp[1], SPDM_DIGESTS);
        assert_eq!(r.responder.session_id(), Some(sid));
        r.responder.advance_clock(Duration::from_millis(1500));
        // 10.5 s without a request: the next secured message finds the session expired and
        // gets ERROR InvalidRequest in the clear, like any secured message without a session.
        let e = r.heartbeat().unwrap_err();
        assert_eq!(e, "clear ERROR InvalidRequest", "clear {clear}");
        assert_eq!(r.responder.session_id(), None);
        let line = r
            .log
            .iter()
            .find(|l| l.contains("expired"))
            .expect("an expiry log line");
        assert!(
            line.starts_with(&format!("session {sid:#010x} expired: no request for 10."))
                && line.ends_with(" s (HeartbeatPeriod 5 s)"),
            "{line}"
        );
        assert!(r.logged("secured CMA object (type 2) without a session"));
        // Still nothing for a later secured message; a new session works.
        assert_eq!(r.heartbeat().unwrap_err(), "clear ERROR InvalidRequest");
        r.establish(0).unwrap();
        r.heartbeat().unwrap();
        r.end().unwrap();
    }
}

#[test]
fn session_expires_before_finish() {
    for clear in [false, true] {
        let mut r = heartbeat_requester(1, clear);
        r.key_exchange(0).unwrap();
        r.responder.advance_clock(Duration::from_millis(2100));
        let e = r.finish(false).unwrap_err();
        let want = if clear {
            // FINISH in the clear without a session.
            "FINISH answered ERROR SessionRequired"
        } else {
            "clear ERROR InvalidRequest"
        };
        assert_eq!(e, want);
        assert_eq!(r.responder.session_id(), None);
        assert!(r.logged("(HeartbeatPeriod 1 s)"));
    }
}

#[test]
fn heartbeat_period_0_never_expires() {
    let mut r = heartbeat_requester(0, false);
    let sid = r.establish(0).unwrap();
    r.responder
        .advance_clock(Duration::from_secs(10 * 365 * 24 * 3600));
    r.heartbeat().unwrap();
    r.responder.advance_clock(Duration::from_secs(1000));
    assert!(r.measurements().unwrap() > 0);
    assert_eq!(r.responder.session_id(), Some(sid));
    assert!(!r.logged("expired"));
    r.end().unwrap();
}
