//! Secure sessions against the emulated endpoint, with an in-process requester: the project's
//! codec (`coco_spdm::session`) for messages, records and the key schedule, RustCrypto for
//! ECDHE, HMAC, AEAD, hashes and signature verification. The leaf key and chain come from the
//! in-process PKI.
//!
//! The requester negotiates SPDM 1.2/1.3 with DHE, AEAD and the SPDM key schedule, runs
//! KEY_EXCHANGE (verifying the signature and ResponderVerifyData), FINISH inside the session,
//! then application messages (GET_MEASUREMENTS), HEARTBEAT, KEY_UPDATE (UpdateKey and
//! UpdateAllKeys, each followed by VerifyNewKey) and END_SESSION. Each session fault must be
//! detected.

use std::sync::{Arc, OnceLock};

use coco_doe::{
    decode_object, encode_object, object_size, DOE_TYPE_CMA, DOE_TYPE_SECURED_CMA,
    PCI_SIG_VENDOR_ID,
};
use coco_endpoint::crypto::{key_schedule, Direction, Ecdhe, RustHmac};
use coco_endpoint::pki::{
    build_identity, spdm_hash, ChainFault, Identity, KeyKind, PkiOptions, PrivateKey,
    DEFAULT_CMA_ID,
};
use coco_endpoint::{Fault, Responder};
use coco_spdm::auth::*;
use coco_spdm::meas::{encode_get_measurements, GetMeasurements, SPDM_MEAS_OP_ALL};
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
        PrivateKey::Rsa(..) => Err("RSA not used here".into()),
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
}

impl Requester {
    fn clear(&mut self, msg: &[u8]) -> Vec<u8> {
        let reply = self
            .responder
            .respond(&object(DOE_TYPE_CMA, msg))
            .object
            .unwrap();
        let obj = decode_object(&reply).unwrap();
        assert!(obj.header.is(PCI_SIG_VENDOR_ID, DOE_TYPE_CMA));
        obj.payload.to_vec()
    }

    fn open(key: KeyKind, fault: Fault, v: SpdmVersion, dhe: u16, aead: u16) -> Requester {
        let id = identity(key);
        let responder = Responder::with_identity(
            [SpdmVersion::V1_1, SpdmVersion::V1_2, SpdmVersion::V1_3]
                .map(SpdmVersion::to_entry)
                .to_vec(),
            fault,
            Arc::clone(&id),
        );
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
        };
        let gv = [0x10, SPDM_GET_VERSION, 0, 0];
        let rsp = r.clear(&gv);
        let vr = parse_version_response(&rsp).unwrap();
        r.vca.extend_from_slice(&gv);
        r.vca
            .extend_from_slice(&rsp[..6 + 2 * usize::from(vr.count())]);
        let mut caps = Capabilities::new(v);
        caps.ct_exponent = 12;
        caps.flags = SPDM_CAP_CERT
            | SPDM_CAP_CHAL
            | SPDM_CAP_KEY_EX
            | SPDM_CAP_ENCRYPT
            | SPDM_CAP_MAC
            | SPDM_CAP_HBEAT
            | SPDM_CAP_KEY_UPD;
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
                v >= SpdmVersion::V1_2,
                "capability {f:#x} at {v:?}"
            );
        }
        assert!(!rc.has(SPDM_CAP_HANDSHAKE_IN_THE_CLEAR));
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
        let alg = parse_algorithms(&rsp, v).unwrap();
        alg.check_against(&na, true).unwrap();
        r.vca.extend_from_slice(&buf[..n]);
        r.vca.extend_from_slice(&rsp[..alg.len]);
        r.hash = alg.base_hash;
        r.asym = alg.base_asym;
        r.dhe = alg.structs.dhe.unwrap();
        r.aead = alg.structs.aead.unwrap();
        if v >= SpdmVersion::V1_2 {
            assert_eq!(alg.structs.key_schedule, Some(SPDM_KEY_SCHEDULE_SPDM));
            assert!(r.dhe & dhe != 0 && r.dhe.count_ones() == 1);
            assert!(r.aead & aead != 0 && r.aead.count_ones() == 1);
        } else {
            assert_eq!(alg.structs.key_schedule, Some(0));
        }
        r
    }

    /// KEY_EXCHANGE then FINISH; returns the SessionID.
    fn establish(&mut self, slot: u8) -> Result<u32, String> {
        let v = self.v;
        let ecdhe = Ecdhe::generate(self.dhe).unwrap();
        let exchange = ecdhe.exchange_data();
        let random: [u8; 32] = rand::rng().random();
        let mut opaque = [0u8; 32];
        let on = encode_sm_supported_versions(
            &[SPDM_SECURED_VERSION_1_0, SPDM_SECURED_VERSION_1_1],
            &mut opaque,
        )
        .unwrap();
        let req_session_id: u16 = 0x4242;
        let ke = KeyExchange {
            version: v,
            meas_summary_type: 0,
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
            measurement_summary: false,
            verify_data: true,
        };
        let kr = parse_key_exchange_rsp(&rsp, &params)
            .map_err(|e| format!("KEY_EXCHANGE_RSP: {}", e.as_str()))?;
        if kr.mut_auth_requested != 0 {
            return Err("mutual authentication requested".into());
        }
        match parse_sm_versions(kr.opaque).map_err(|e| e.as_str().to_string())? {
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
        let digest = spdm_hash(self.hash, &signed[..sn]).unwrap();
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
        let rsp_fk = ks.finished_key(&rsp_hs).unwrap();
        let req_finished = ks.finished_key(&req_hs).unwrap();
        let expected = ks.verify_data(&rsp_fk, &th1).unwrap();
        if expected.as_bytes() != kr.verify_data {
            return Err("ResponderVerifyData does not verify".into());
        }
        t.extend_from_slice(kr.verify_data);
        let sid = session_id(req_session_id, kr.rsp_session_id);
        self.s = Some(ReqSession {
            id: sid,
            req: Direction::new(&mut ks, self.aead, req_hs)?,
            rsp: Direction::new(&mut ks, self.aead, rsp_hs)?,
            ks,
            hs,
            req_finished,
            transcript: t,
        });
        // FINISH inside the session with the handshake keys.
        let s = self.s.as_mut().unwrap();
        let mut fin = s.transcript.clone();
        fin.extend_from_slice(&[v.as_byte(), SPDM_FINISH, 0, 0]);
        let th = spdm_hash(self.hash, &fin).unwrap();
        let vd = s.ks.verify_data(&s.req_finished, &th).unwrap();
        let mut buf = [0u8; 80];
        let n = encode_finish(v, 0, &[], vd.as_bytes(), &mut buf).unwrap();
        let fin_msg = buf[..n].to_vec();
        let rsp = self.secured(&fin_msg)?;
        let (_, len) =
            parse_finish_rsp(&rsp, v, 0).map_err(|e| format!("FINISH_RSP: {}", e.as_str()))?;
        let s = self.s.as_mut().unwrap();
        s.transcript.extend_from_slice(&fin_msg);
        s.transcript.extend_from_slice(&rsp[..len]);
        let th2 = spdm_hash(self.hash, &s.transcript).unwrap();
        let ms = s.ks.master_secret(&s.hs).unwrap();
        let (ra, rs) = s.ks.app_traffic_secrets(&ms, &th2).unwrap();
        s.req = Direction::new(&mut s.ks, self.aead, ra)?;
        s.rsp = Direction::new(&mut s.ks, self.aead, rs)?;
        Ok(sid)
    }

    /// Sends `msg` in the session, returns the decrypted response.
    fn secured(&mut self, msg: &[u8]) -> Result<Vec<u8>, String> {
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
        let reply = self
            .responder
            .respond(&object(DOE_TYPE_SECURED_CMA, &rec[..n]))
            .object
            .unwrap();
        let obj = decode_object(&reply).unwrap();
        if obj.header.object_type != DOE_TYPE_SECURED_CMA {
            let e = parse_error_response(obj.payload).map_err(|e| e.as_str().to_string())?;
            return Err(format!("clear ERROR {}", error_code_name(e.code)));
        }
        let mut buf = obj.payload.to_vec();
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
fn no_sessions_before_1_2() {
    let mut r = Requester::open(
        KeyKind::P256,
        Fault::None,
        SpdmVersion::V1_1,
        ALL_DHE,
        ALL_AEAD,
    );
    assert_eq!((r.dhe, r.aead), (0, 0));
    // KEY_EXCHANGE is unsupported: the responder answers ERROR.
    r.dhe = SPDM_DHE_SECP256R1;
    let e = r.establish(0).unwrap_err();
    assert!(e.contains("KEY_EXCHANGE_RSP"), "{e}");
    assert_eq!(r.responder.session_id(), None);
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
