//! TEE-IO against the emulated endpoint: IDE_KM and TDISP over a secure session with an
//! in-process requester (the project's codecs: `coco_spdm::vendor`, `coco_idekm`,
//! `coco_tdisp`), the QEMU side channel (PLATFORM_IDE_KEYS, PLATFORM_EVENT,
//! PLATFORM_TDI_STATE), the `--ide-test-keys` fixture and every TEE-IO fault.

use std::io::{self, Cursor, Read, Write};
use std::sync::{Arc, OnceLock};

use coco_doe::{
    decode_object, encode_object, object_size, DOE_TYPE_CMA, DOE_TYPE_SECURED_CMA,
    PCI_SIG_VENDOR_ID,
};
use coco_endpoint::crypto::{key_schedule, Direction as AeadDir, Ecdhe, RustHmac};
use coco_endpoint::pki::{
    build_identity, spdm_hash, ChainFault, Identity, KeyKind, PkiOptions, DEFAULT_CMA_ID,
};
use coco_endpoint::platform::{
    EVENT_BARS, EVENT_CONFIG_WRITE, EVENT_FLR, EVENT_IDE_REGISTERS, EVENT_RESET,
    EVENT_STREAM_DISABLED, PLATFORM_EVENT, PLATFORM_IDE_KEYS, PLATFORM_TDI_STATE,
};
use coco_endpoint::socket::{encode_frame, read_frame, SOCKET_COMMAND_UNKNOWN};
use coco_endpoint::{serve, Fault, Responder};
use coco_idekm::*;
use coco_spdm::auth::*;
use coco_spdm::session::*;
use coco_spdm::vendor::*;
use coco_spdm::*;
use coco_tdisp::*;
use rand::RngExt;
use sha2::{Digest, Sha256};

fn identity() -> Arc<Identity> {
    static ID: OnceLock<Arc<Identity>> = OnceLock::new();
    Arc::clone(ID.get_or_init(|| {
        Arc::new(
            build_identity(&PkiOptions {
                dir: None,
                key: KeyKind::P256,
                slots: vec![0],
                cma_id: DEFAULT_CMA_ID.to_string(),
                fault: ChainFault::None,
            })
            .unwrap(),
        )
    }))
}

fn object(ty: u8, msg: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; object_size(msg.len()).unwrap()];
    encode_object(PCI_SIG_VENDOR_ID, ty, msg, &mut out).unwrap();
    out
}

struct Sess {
    id: u32,
    req: AeadDir,
    rsp: AeadDir,
}

/// A minimal SPDM requester: negotiates P-256/SHA-256 with a DHE group and AEAD, opens a
/// session (encrypted handshake) and exchanges secured messages. Signatures are not checked
/// here (tests/session.rs does that); the transcript is, through the verify data.
struct Requester {
    responder: Responder,
    v: SpdmVersion,
    hash: u32,
    aead: u16,
    dhe: u16,
    vca: Vec<u8>,
    s: Option<Sess>,
    log: Vec<String>,
}

impl Requester {
    fn new(fault: Fault, v: SpdmVersion) -> Requester {
        let responder = Responder::with_identity(
            [SpdmVersion::V1_1, SpdmVersion::V1_2, SpdmVersion::V1_3]
                .map(SpdmVersion::to_entry)
                .to_vec(),
            fault,
            identity(),
        );
        let mut r = Requester {
            responder,
            v,
            hash: 0,
            aead: 0,
            dhe: 0,
            vca: Vec::new(),
            s: None,
            log: Vec::new(),
        };
        r.negotiate();
        r
    }

    /// A requester with an established session at SPDM 1.2.
    fn session(fault: Fault) -> Requester {
        let mut r = Requester::new(fault, SpdmVersion::V1_2);
        r.establish();
        r
    }

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

    fn logged(&self, text: &str) -> bool {
        self.log.iter().any(|l| l.contains(text))
    }

    fn negotiate(&mut self) {
        let v = self.v;
        let gv = [0x10, SPDM_GET_VERSION, 0, 0];
        let rsp = self.clear(&gv);
        let vr = parse_version_response(&rsp).unwrap();
        self.vca.extend_from_slice(&gv);
        self.vca
            .extend_from_slice(&rsp[..6 + 2 * usize::from(vr.count())]);
        let mut caps = coco_spdm::auth::Capabilities::new(v);
        caps.ct_exponent = 12;
        caps.flags =
            SPDM_CAP_CERT | SPDM_CAP_CHAL | SPDM_CAP_KEY_EX | SPDM_CAP_ENCRYPT | SPDM_CAP_MAC;
        caps.data_transfer_size = 4096;
        caps.max_spdm_msg_size = 4096;
        let mut buf = [0u8; 64];
        let n = encode_get_capabilities(&caps, &mut buf).unwrap();
        let rsp = self.clear(&buf[..n]);
        parse_capabilities(&rsp, v).unwrap();
        self.vca.extend_from_slice(&buf[..n]);
        self.vca.extend_from_slice(&rsp[..capabilities_size(v)]);
        let mut na = NegotiateAlgorithms::new(v);
        na.measurement_specification = SPDM_MEAS_SPEC_DMTF;
        na.other_params = SPDM_OPAQUE_DATA_FMT1;
        na.base_asym = SPDM_ASYM_ECDSA_P256;
        na.base_hash = SPDM_HASH_SHA256;
        na.structs = AlgStructs {
            dhe: Some(SPDM_DHE_SECP256R1),
            aead: Some(SPDM_AEAD_AES_256_GCM),
            req_base_asym: None,
            key_schedule: Some(SPDM_KEY_SCHEDULE_SPDM),
        };
        let mut buf = [0u8; 128];
        let n = encode_negotiate_algorithms(&na, &mut buf).unwrap();
        let rsp = self.clear(&buf[..n]);
        let alg = parse_algorithms(&rsp, v).unwrap();
        self.vca.extend_from_slice(&buf[..n]);
        self.vca.extend_from_slice(&rsp[..alg.len]);
        self.hash = alg.base_hash;
        self.dhe = alg.structs.dhe.unwrap();
        self.aead = alg.structs.aead.unwrap();
    }

    /// KEY_EXCHANGE and FINISH (inside the session with the handshake keys).
    fn establish(&mut self) {
        let v = self.v;
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
        let ke = KeyExchange {
            version: v,
            meas_summary_type: 0,
            slot: 0,
            req_session_id: 0x4242,
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
            signature_size: signature_size(SPDM_ASYM_ECDSA_P256).unwrap(),
            exchange_size: dhe_exchange_size(self.dhe).unwrap(),
            measurement_summary: false,
            verify_data: true,
        };
        let kr = parse_key_exchange_rsp(&rsp, &params).unwrap();
        let chain = identity().slot(0).unwrap().spdm_chain(self.hash).unwrap();
        let mut t = self.vca.clone();
        t.extend_from_slice(&spdm_hash(self.hash, &chain).unwrap());
        t.extend_from_slice(&ke_bytes);
        t.extend_from_slice(&rsp[..kr.signature_offset]);
        t.extend_from_slice(kr.signature);
        let th1 = spdm_hash(self.hash, &t).unwrap();
        let shared = ecdhe.shared_secret(kr.exchange).unwrap();
        let mut ks: KeySchedule<RustHmac> = key_schedule(v, self.hash).unwrap();
        let hs = ks.handshake_secret(&shared).unwrap();
        let (req_hs, rsp_hs) = ks.handshake_traffic_secrets(&hs, &th1).unwrap();
        let rsp_finished = ks.finished_key(&rsp_hs).unwrap();
        let req_finished = ks.finished_key(&req_hs).unwrap();
        assert_eq!(
            ks.verify_data(&rsp_finished, &th1).unwrap().as_bytes(),
            kr.verify_data
        );
        t.extend_from_slice(kr.verify_data);
        self.s = Some(Sess {
            id: session_id(0x4242, kr.rsp_session_id),
            req: AeadDir::new(&mut ks, self.aead, req_hs).unwrap(),
            rsp: AeadDir::new(&mut ks, self.aead, rsp_hs).unwrap(),
        });
        // FINISH with the handshake keys.
        let mut fin = t.clone();
        fin.extend_from_slice(&[v.as_byte(), SPDM_FINISH, 0, 0]);
        let th = spdm_hash(self.hash, &fin).unwrap();
        let vd = ks
            .verify_data(&req_finished, &th)
            .unwrap()
            .as_bytes()
            .to_vec();
        let mut b = [0u8; 80];
        let n = encode_finish(v, 0, &[], &vd, &mut b).unwrap();
        let fin_msg = b[..n].to_vec();
        let rsp = self.secured(&fin_msg).unwrap();
        let (_, len) = parse_finish_rsp(&rsp, v, 0).unwrap();
        t.extend_from_slice(&fin_msg);
        t.extend_from_slice(&rsp[..len]);
        let th2 = spdm_hash(self.hash, &t).unwrap();
        let ms = ks.master_secret(&hs).unwrap();
        let (ra, rs) = ks.app_traffic_secrets(&ms, &th2).unwrap();
        let s = self.s.as_mut().unwrap();
        s.req = AeadDir::new(&mut ks, self.aead, ra).unwrap();
        s.rsp = AeadDir::new(&mut ks, self.aead, rs).unwrap();
    }

    /// Sends `msg` in the session, returns the decrypted response.
    fn secured(&mut self, msg: &[u8]) -> Result<Vec<u8>, String> {
        let s = self.s.as_mut().ok_or("no session")?;
        let seq = s.req.seq.take().unwrap();
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
        if obj.header.object_type != DOE_TYPE_SECURED_CMA {
            return Err("answer in the clear".into());
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
            .map_err(|e| e.to_string())?
            .to_vec();
        s.rsp.seq.accept(seq).unwrap();
        Ok(m)
    }

    /// Sends a PCI-SIG vendor-defined request for `protocol` in the session; returns the
    /// protocol's response, or the SPDM ERROR code.
    fn vdm(&mut self, protocol: u8, msg: &[u8]) -> Result<Vec<u8>, u8> {
        let mut out = vec![0u8; msg.len() + 16];
        let n = encode_pci_sig_vdm(self.v, SPDM_VENDOR_DEFINED_REQUEST, protocol, msg, &mut out)
            .unwrap();
        let rsp = self.secured(&out[..n]).unwrap();
        if let Ok(e) = parse_error_response(&rsp) {
            return Err(e.code);
        }
        let p = parse_pci_sig_vdm(&rsp, SPDM_VENDOR_DEFINED_RESPONSE).unwrap();
        assert_eq!(p.protocol_id, protocol);
        assert_eq!(p.version, self.v);
        Ok(p.message.to_vec())
    }

    fn ide(&mut self, msg: &IdeKmMessage<'_>) -> Result<Vec<u8>, u8> {
        let mut out = [0u8; 64];
        let n = msg.encode(&mut out).unwrap();
        self.vdm(PCI_PROTOCOL_IDE_KM, &out[..n])
    }

    fn key_prog(&mut self, stream_id: u8, sub: KeySubStream, key: [u8; 32], ifv: [u8; 8]) -> KpAck {
        let k = KeyProg {
            stream_id,
            sub,
            port_index: 0,
            key,
            ifv,
        };
        parse_kp_ack(&self.ide(&IdeKmMessage::KeyProg(k)).unwrap()).unwrap()
    }

    fn go(&mut self, stream_id: u8, sub: KeySubStream) -> Result<KeySetCmd, u8> {
        let c = KeySetCmd {
            stream_id,
            sub,
            port_index: 0,
        };
        self.ide(&IdeKmMessage::KSetGo(c))
            .map(|r| parse_key_set_cmd(&r, IDE_KM_K_GOSTOP_ACK).unwrap())
    }

    fn stop(&mut self, stream_id: u8, sub: KeySubStream) -> KeySetCmd {
        let c = KeySetCmd {
            stream_id,
            sub,
            port_index: 0,
        };
        parse_key_set_cmd(
            &self.ide(&IdeKmMessage::KSetStop(c)).unwrap(),
            IDE_KM_K_GOSTOP_ACK,
        )
        .unwrap()
    }

    /// Programs K0 keys for the six pairs of `stream` and sets them go; returns the digests
    /// SHA-256(key || IFV) in pair order.
    fn program_stream(&mut self, stream: u8) -> Vec<[u8; 32]> {
        let digests = self.program_set(stream, 0);
        for pair in 0..6 {
            let (dir, ss) = pair_from_index(pair).unwrap();
            let sub = KeySubStream::new(0, dir, ss);
            let ack = self.go(stream, sub).unwrap();
            assert_eq!((ack.stream_id, ack.sub), (stream, sub));
        }
        digests
    }

    /// Programs random keys in key set `set` for the six pairs of `stream` (no GO); returns
    /// the digests SHA-256(key || IFV) in pair order.
    fn program_set(&mut self, stream: u8, set: u8) -> Vec<[u8; 32]> {
        let mut digests = Vec::new();
        for pair in 0..6 {
            let (dir, ss) = pair_from_index(pair).unwrap();
            let sub = KeySubStream::new(set, dir, ss);
            let key: [u8; 32] = rand::rng().random();
            let ifv: [u8; 8] = rand::rng().random();
            let ack = self.key_prog(stream, sub, key, ifv);
            assert_eq!(
                (ack.stream_id, ack.status, ack.sub, ack.port_index),
                (stream, 0, sub, 0)
            );
            let mut h = Sha256::new();
            h.update(key);
            h.update(ifv);
            digests.push(h.finalize().into());
        }
        digests
    }

    /// K_SET_GO of key set `set` for the three sub-streams of `dir`.
    fn go_dir(&mut self, stream: u8, set: u8, dir: Direction) {
        for ss in [SubStream::Pr, SubStream::Npr, SubStream::Cpl] {
            let ack = self.go(stream, sub(set, dir, ss)).unwrap();
            assert_eq!(ack.sub, sub(set, dir, ss));
        }
    }

    /// K_SET_STOP of key set `set` for the three sub-streams of `dir`.
    fn stop_dir(&mut self, stream: u8, set: u8, dir: Direction) {
        for ss in [SubStream::Pr, SubStream::Npr, SubStream::Cpl] {
            self.stop(stream, sub(set, dir, ss));
        }
    }

    fn tdisp(&mut self, req: &TdispRequest) -> Vec<u8> {
        let mut out = [0u8; 64];
        let n = encode_request(TDISP_VERSION_1_0, IFACE, req, &mut out).unwrap();
        self.vdm(PCI_PROTOCOL_TDISP, &out[..n]).unwrap()
    }

    /// Sends a TDISP request; returns the response type and bytes.
    fn tdisp_rsp(&mut self, req: &TdispRequest) -> (u8, Vec<u8>) {
        let bytes = self.tdisp(req);
        let (h, _) = parse_response(&bytes).unwrap();
        assert_eq!(h.interface_id, IFACE);
        (h.message_type, bytes)
    }

    /// The TDISP ERROR code of a request's answer, if it is one.
    fn tdisp_error(&mut self, req: &TdispRequest) -> Option<u32> {
        let bytes = self.tdisp(req);
        match parse_response(&bytes).unwrap().1 {
            TdispResponse::Error(e) => Some(e.code),
            _ => None,
        }
    }

    fn state(&mut self) -> TdiState {
        let bytes = self.tdisp(&TdispRequest::GetState);
        match parse_response(&bytes).unwrap().1 {
            TdispResponse::State(s) => {
                // The side channel agrees.
                let (c, p, _) = self.responder.platform(PLATFORM_TDI_STATE, &[]);
                assert_eq!((c, p), (PLATFORM_TDI_STATE, vec![s.as_u8()]));
                s
            }
            other => panic!("GET_DEVICE_INTERFACE_STATE answered {other:?}"),
        }
    }

    fn lock(&mut self, stream: u8, offset: u64) -> Result<[u8; 32], u32> {
        let req = TdispRequest::LockInterface(LockInterface {
            flags: TDISP_LOCK_NO_FW_UPDATE,
            default_stream_id: stream,
            mmio_reporting_offset: offset,
            bind_p2p_addr_mask: 0,
        });
        let bytes = self.tdisp(&req);
        match parse_response(&bytes).unwrap().1 {
            TdispResponse::LockInterface { nonce } => Ok(nonce),
            TdispResponse::Error(e) => Err(e.code),
            other => panic!("LOCK_INTERFACE answered {other:?}"),
        }
    }

    /// Reads the whole report in portions of `chunk` bytes.
    fn report(&mut self, chunk: u16) -> Vec<u8> {
        let mut report = Vec::new();
        let mut total = None;
        loop {
            let offset = u16::try_from(report.len()).unwrap();
            let bytes = self.tdisp(&TdispRequest::GetReport {
                offset,
                length: chunk,
            });
            let TdispResponse::Report(p) = parse_response(&bytes).unwrap().1 else {
                panic!("GET_DEVICE_INTERFACE_REPORT failed");
            };
            assert!(p.portion.len() <= usize::from(chunk));
            let t = p.total_len(offset).unwrap();
            assert_eq!(
                *total.get_or_insert(t),
                t,
                "total length changes between portions"
            );
            report.extend_from_slice(p.portion);
            if p.remainder_length == 0 {
                break;
            }
        }
        assert_eq!(Some(report.len()), total.map(usize::from));
        report
    }

    fn event(&mut self, payload: &[u8]) -> u32 {
        let (c, p, log) = self.responder.platform(PLATFORM_EVENT, payload);
        self.log.extend(log);
        assert!(p.is_empty());
        c
    }

    /// The PLATFORM_IDE_KEYS reply for `stream`, checked for what holds in any state: 398
    /// bytes, the stream ID echoed, reserved bytes 0, no TX pair with both key sets in go, a
    /// zero digest for every key set not in go, and flags bit 0 = every pair has one in go.
    fn keys(&mut self, stream: u8) -> Vec<u8> {
        let (c, p, _) = self.responder.platform(PLATFORM_IDE_KEYS, &[stream]);
        assert_eq!(c, PLATFORM_IDE_KEYS);
        assert_eq!(p.len(), 398);
        assert_eq!(p[0], stream);
        assert_eq!(p[1] & !1, 0);
        for pair in 0..6 {
            let e = &p[2 + pair * 66..2 + (pair + 1) * 66];
            assert_eq!(e[0] & !3, 0, "pair {pair}: go bits");
            assert_eq!(e[1], 0, "pair {pair}: reserved");
            if pair >= 3 {
                assert_ne!(e[0], 3, "TX pair {pair} with both key sets in go");
            }
            for set in 0..2 {
                if e[0] & (1 << set) == 0 {
                    assert_eq!(&e[2 + 32 * set..34 + 32 * set], &[0u8; 32]);
                }
            }
        }
        assert_eq!(
            p[1] & 1 != 0,
            (0..6).all(|pair| go_mask(&p, pair) != 0),
            "flags bit 0"
        );
        p
    }
}

/// Pair `pair`'s go mask in a PLATFORM_IDE_KEYS reply.
fn go_mask(k: &[u8], pair: usize) -> u8 {
    k[2 + pair * 66]
}

/// Pair `pair`'s digest of key set `set` in a PLATFORM_IDE_KEYS reply.
fn digest(k: &[u8], pair: usize, set: usize) -> &[u8] {
    let e = 2 + pair * 66 + 2 + set * 32;
    &k[e..e + 32]
}

const IFACE: InterfaceId = InterfaceId {
    function_id: 0x0100,
};

fn sub(set: u8, dir: Direction, ss: SubStream) -> KeySubStream {
    KeySubStream::new(set, dir, ss)
}

fn bars_event(bars: &[(u8, u64, u64)]) -> Vec<u8> {
    let mut p = vec![EVENT_BARS, bars.len() as u8];
    for &(i, base, size) in bars {
        p.extend([i, 1, 0, 0]);
        p.extend(base.to_le_bytes());
        p.extend(size.to_le_bytes());
    }
    p
}

fn config_write(offset: u16, size: u8, value: u32) -> Vec<u8> {
    let mut p = vec![EVENT_CONFIG_WRITE];
    p.extend(offset.to_le_bytes());
    p.extend([size, 0]);
    p.extend(value.to_le_bytes());
    p
}

/// IDE_REGISTERS with the default layout (2 selective streams, 1 address block) and stream
/// block `block` enabled for `stream`.
fn ide_registers(block: Option<(usize, u8)>) -> Vec<u8> {
    let mut regs = coco_endpoint::idekm::default_ide_capability();
    if let Some((i, stream)) = block {
        regs[3 + 8 * i + 1] = (u32::from(stream) << 24) | 1;
    }
    let mut p = vec![EVENT_IDE_REGISTERS];
    p.extend(0x300u16.to_le_bytes());
    for r in regs {
        p.extend(r.to_le_bytes());
    }
    p
}

#[test]
fn vendor_defined_outside_a_session() {
    for (v, code) in [
        (SpdmVersion::V1_2, SPDM_ERROR_SESSION_REQUIRED),
        (SpdmVersion::V1_3, SPDM_ERROR_SESSION_REQUIRED),
        (SpdmVersion::V1_1, SPDM_ERROR_UNEXPECTED_REQUEST),
    ] {
        let mut r = Requester::new(Fault::None, v);
        let mut out = [0u8; 32];
        let n = encode_pci_sig_vdm(
            v,
            SPDM_VENDOR_DEFINED_REQUEST,
            PCI_PROTOCOL_IDE_KM,
            &[0, 0, 0],
            &mut out,
        )
        .unwrap();
        let rsp = r.clear(&out[..n]);
        assert_eq!(parse_error_response(&rsp).unwrap().code, code, "{v:?}");
        // Even with a session open, in the clear it stays refused.
        r.establish();
        let rsp = r.clear(&out[..n]);
        assert_eq!(parse_error_response(&rsp).unwrap().code, code, "{v:?}");
        // Inside the session it is served.
        let q = r.vdm(PCI_PROTOCOL_IDE_KM, &[0, 0, 0]).unwrap();
        assert_eq!(parse_query_resp(&q).unwrap().info.max_port_index, 0);
    }
}

#[test]
fn vendor_defined_dispatch_errors() {
    let mut r = Requester::session(Fault::None);
    // Unknown protocol, unknown vendor, malformed wrapper.
    assert_eq!(r.vdm(7, &[1, 2]), Err(SPDM_ERROR_UNSUPPORTED_REQUEST));
    let mut out = [0u8; 32];
    let n = encode_vendor_defined(
        r.v,
        SPDM_VENDOR_DEFINED_REQUEST,
        4,
        &[1, 0],
        &[0, 0, 0, 0],
        &mut out,
    )
    .unwrap();
    let rsp = r.secured(&out[..n]).unwrap();
    assert_eq!(
        parse_error_response(&rsp).unwrap().code,
        SPDM_ERROR_UNSUPPORTED_REQUEST
    );
    let rsp = r.secured(&out[..7]).unwrap();
    assert_eq!(
        parse_error_response(&rsp).unwrap().code,
        SPDM_ERROR_INVALID_REQUEST
    );
    // Malformed IDE_KM and TDISP messages.
    assert_eq!(
        r.vdm(PCI_PROTOCOL_IDE_KM, &[0, 0]),
        Err(SPDM_ERROR_INVALID_REQUEST)
    );
    assert_eq!(
        r.vdm(PCI_PROTOCOL_IDE_KM, &[3, 0, 0, 0, 0, 0, 0]),
        Err(SPDM_ERROR_INVALID_REQUEST)
    );
    assert_eq!(
        r.vdm(PCI_PROTOCOL_TDISP, &[0x10, 0x81]),
        Err(SPDM_ERROR_INVALID_REQUEST)
    );
    // The session survives all of it.
    assert_eq!(r.state(), TdiState::ConfigUnlocked);
}

#[test]
fn idekm_query_keys_go_stop_and_platform_digests() {
    let mut r = Requester::session(Fault::None);
    // QUERY with the built-in default capability.
    let q = r
        .ide(&IdeKmMessage::Query(Query { port_index: 0 }))
        .unwrap();
    let q = parse_query_resp(&q).unwrap();
    assert_eq!(q.info, PortInfo::default());
    let regs = q.ide_regs().unwrap();
    assert_eq!(regs.num_selective(), 2);
    assert_eq!(regs.num_link(), 0);
    assert!(regs.ide_km() && regs.tee_limited());
    assert_eq!(regs.algorithms(), 0);
    assert_eq!(regs.selective(0).unwrap().addr_assoc_count(), 1);
    assert_eq!(regs.selective(1).unwrap().addr_assoc_count(), 1);
    assert_eq!(
        r.ide(&IdeKmMessage::Query(Query { port_index: 1 })),
        Err(SPDM_ERROR_INVALID_REQUEST)
    );

    // Nothing programmed.
    let k = r.keys(3);
    assert_eq!(k[1], 0);
    assert!((0..6).all(|pair| go_mask(&k, pair) == 0));
    // K_SET_GO without a key is refused.
    assert_eq!(
        r.go(3, sub(0, Direction::Rx, SubStream::Pr)),
        Err(SPDM_ERROR_UNEXPECTED_REQUEST)
    );

    // Program and start all six pairs.
    let digests = r.program_stream(3);
    let k = r.keys(3);
    assert_eq!(k[1], 1, "all six pairs in go");
    for (pair, d) in digests.iter().enumerate() {
        assert_eq!(go_mask(&k, pair), 1, "pair {pair} uses K0");
        assert_eq!(digest(&k, pair, 0), d, "pair {pair} digest");
    }
    // Stream 4 is another stream.
    assert_eq!(r.keys(4)[1], 0);

    // Program K1 for TX-NPR and switch to it.
    let txnpr = sub(1, Direction::Tx, SubStream::Npr);
    let ack = r.key_prog(3, txnpr, [9; 32], [8; 8]);
    assert_eq!(ack.status, 0);
    assert_eq!(go_mask(&r.keys(3), 4), 1, "K0 still in go before GO");
    r.go(3, txnpr).unwrap();
    let k = r.keys(3);
    // A transmitter switches: K1 replaces K0.
    assert_eq!(go_mask(&k, 4), 2);
    let mut h = Sha256::new();
    h.update([9u8; 32]);
    h.update([8u8; 8]);
    assert_eq!(digest(&k, 4, 1), h.finalize().as_slice());
    assert_eq!(digest(&k, 4, 0), &[0u8; 32]);
    assert_eq!(k[1], 1);

    // Stopping K1 TX-NPR: that pair has no key set in go any more (K0 is programmed, not in
    // go), the stream is not keyed.
    let ack = r.stop(3, txnpr);
    assert_eq!((ack.stream_id, ack.sub), (3, txnpr));
    let k = r.keys(3);
    assert_eq!(k[1], 0);
    assert_eq!(go_mask(&k, 4), 0);
    // Stopping K0 of another pair: gone too; GO of the stopped key set is refused.
    let rxpr = sub(0, Direction::Rx, SubStream::Pr);
    r.stop(3, rxpr);
    assert_eq!(go_mask(&r.keys(3), 0), 0);
    assert_eq!(r.go(3, rxpr), Err(SPDM_ERROR_UNEXPECTED_REQUEST));

    // A wrong port index gets KP_ACK status 2; a third stream ID status 3 (two streams).
    let k = KeyProg {
        stream_id: 3,
        sub: rxpr,
        port_index: 1,
        key: [1; 32],
        ifv: [1; 8],
    };
    let ack = parse_kp_ack(&r.ide(&IdeKmMessage::KeyProg(k)).unwrap()).unwrap();
    assert_eq!(ack.status, IDE_KM_KP_ACK_UNSUPPORTED_PORT);
    assert_eq!(r.key_prog(5, rxpr, [1; 32], [1; 8]).status, 0);
    assert_eq!(
        r.key_prog(6, rxpr, [1; 32], [1; 8]).status,
        IDE_KM_KP_ACK_UNSUPPORTED_VALUE
    );
    // Keys never appear in the log.
    let key_hex: String = [9u8; 32].iter().map(|b| format!("{b:02x}")).collect();
    assert!(!r
        .log
        .iter()
        .any(|l| l.contains(&key_hex) || l.contains("[9, 9, 9")));
}

/// A key refresh in the order IDE prescribes: the new key set (K1) programmed, put in go on the
/// receivers (an RX pair then has both key sets in go), then on the transmitters (a TX pair
/// switches), then the old one stopped. The stream stays keyed throughout.
#[test]
fn idekm_key_refresh_rx_holds_both_tx_switches() {
    let mut r = Requester::session(Fault::None);
    let k0 = r.program_stream(3);
    let k1 = r.program_set(3, 1);
    // Programmed, not in go: nothing changes.
    let k = r.keys(3);
    assert!((0..6).all(|pair| go_mask(&k, pair) == 1));
    assert_eq!(digest(&k, 0, 1), &[0u8; 32], "K1 not reported before GO");

    // RX: K1 joins K0; both digests are reported.
    r.go_dir(3, 1, Direction::Rx);
    let k = r.keys(3);
    assert_eq!(k[1], 1, "keyed");
    for pair in 0..3 {
        assert_eq!(go_mask(&k, pair), 3, "RX pair {pair}: K0 and K1 in go");
        assert_eq!(digest(&k, pair, 0), &k0[pair], "RX pair {pair}: K0 digest");
        assert_eq!(digest(&k, pair, 1), &k1[pair], "RX pair {pair}: K1 digest");
    }
    for pair in 3..6 {
        assert_eq!(go_mask(&k, pair), 1, "TX pair {pair} still on K0");
    }
    assert_eq!(
        r.responder
            .tee()
            .ide
            .go_sets(3, Direction::Rx, SubStream::Npr),
        3
    );
    assert!(r.logged("K1 RX NPR -> K_GOSTOP_ACK (in go: K0+K1)"));

    // TX: K1 replaces K0 (which stays programmed: GO K0 would switch back).
    r.go_dir(3, 1, Direction::Tx);
    let k = r.keys(3);
    assert_eq!(k[1], 1);
    for (pair, d) in k1.iter().enumerate().skip(3) {
        assert_eq!(go_mask(&k, pair), 2, "TX pair {pair} on K1 only");
        assert_eq!(digest(&k, pair, 0), &[0u8; 32]);
        assert_eq!(digest(&k, pair, 1), d);
    }
    assert!((0..3).all(|pair| go_mask(&k, pair) == 3));
    let txpr0 = sub(0, Direction::Tx, SubStream::Pr);
    r.go(3, txpr0).unwrap();
    assert_eq!(go_mask(&r.keys(3), 3), 1, "TX PR back on K0");
    r.go(3, sub(1, Direction::Tx, SubStream::Pr)).unwrap();
    assert_eq!(go_mask(&r.keys(3), 3), 2);

    // STOP K0 everywhere: each pair keeps K1, the stream stays keyed.
    r.stop_dir(3, 0, Direction::Rx);
    r.stop_dir(3, 0, Direction::Tx);
    let k = r.keys(3);
    assert_eq!(k[1], 1, "keyed on K1 alone");
    for (pair, d) in k1.iter().enumerate() {
        assert_eq!(go_mask(&k, pair), 2, "pair {pair}: K1 only");
        assert_eq!(digest(&k, pair, 0), &[0u8; 32]);
        assert_eq!(digest(&k, pair, 1), d);
    }
    let ide = &r.responder.tee().ide;
    assert_eq!(ide.go_digest(3, Direction::Tx, SubStream::Cpl, 0), None);
    assert_eq!(
        ide.go_digest(3, Direction::Tx, SubStream::Cpl, 1),
        Some(k1[5])
    );
    // K0 was erased: GO of it is refused.
    assert_eq!(r.go(3, txpr0), Err(SPDM_ERROR_UNEXPECTED_REQUEST));

    // The next refresh goes the other way round (K0 new, K1 old).
    let k0b = r.program_set(3, 0);
    r.go_dir(3, 0, Direction::Rx);
    r.go_dir(3, 0, Direction::Tx);
    r.stop_dir(3, 1, Direction::Rx);
    r.stop_dir(3, 1, Direction::Tx);
    let k = r.keys(3);
    assert_eq!(k[1], 1);
    for (pair, d) in k0b.iter().enumerate() {
        assert_eq!(go_mask(&k, pair), 1);
        assert_eq!(digest(&k, pair, 0), d);
    }

    // Stopping the last key set of an RX pair unkeys the stream.
    r.stop(3, sub(0, Direction::Rx, SubStream::Cpl));
    let k = r.keys(3);
    assert_eq!((k[1], go_mask(&k, 2)), (0, 0));
}

#[test]
fn idekm_query_returns_the_pushed_registers() {
    let mut r = Requester::session(Fault::None);
    assert_eq!(r.event(&ide_registers(Some((1, 7)))), PLATFORM_EVENT);
    let q = r
        .ide(&IdeKmMessage::Query(Query { port_index: 0 }))
        .unwrap();
    let q = parse_query_resp(&q).unwrap();
    let regs = q.ide_regs().unwrap();
    let b = regs.selective(1).unwrap();
    assert!(b.enabled());
    assert_eq!(b.stream_id(), 7);
    // The dump starts at the IDE Capability register (the header dword is not sent).
    assert_eq!(
        q.reg_count(),
        coco_endpoint::idekm::default_ide_capability().len() - 1
    );
    // Malformed pushes are answered UNKNOWN and change nothing.
    let (c, _, _) = r
        .responder
        .platform(PLATFORM_EVENT, &[EVENT_IDE_REGISTERS, 0, 3, 1]);
    assert_eq!(c, SOCKET_COMMAND_UNKNOWN);
}

#[test]
fn tdisp_full_walk() {
    let mut r = Requester::session(Fault::None);
    r.program_stream(1);
    let (code, bytes) = r.tdisp_rsp(&TdispRequest::GetVersion);
    assert_eq!(code, TDISP_VERSION);
    assert!(matches!(
        parse_response(&bytes).unwrap().1,
        TdispResponse::Version { versions: [0x10] }
    ));
    let (_, bytes) = r.tdisp_rsp(&TdispRequest::GetCapabilities { tsm_caps: 0 });
    let TdispResponse::Capabilities(caps) = parse_response(&bytes).unwrap().1 else {
        panic!()
    };
    assert_eq!(caps.req_msg_supported[0], 0xFE);
    assert!(!caps.supports(TDISP_BIND_P2P_STREAM_REQ));
    assert_eq!(
        caps.lock_flags_supported & TDISP_LOCK_NO_FW_UPDATE,
        TDISP_LOCK_NO_FW_UPDATE
    );
    assert_eq!(r.state(), TdiState::ConfigUnlocked);
    // Not locked: no report, no START.
    assert_eq!(
        r.tdisp_error(&TdispRequest::GetReport {
            offset: 0,
            length: 64
        }),
        Some(TDISP_ERROR_INVALID_INTERFACE_STATE)
    );
    assert_eq!(
        r.tdisp_error(&TdispRequest::Start { nonce: [0; 32] }),
        Some(TDISP_ERROR_INVALID_INTERFACE_STATE)
    );

    let offset = 0xD000_0000u64;
    let nonce = r.lock(1, offset).unwrap();
    assert_eq!(r.state(), TdiState::ConfigLocked);
    assert_eq!(r.lock(1, offset), Err(TDISP_ERROR_INVALID_INTERFACE_STATE));
    // The report, in small portions and in one.
    let small = r.report(16);
    let whole = r.report(4096);
    assert_eq!(small, whole);
    let rep = parse_interface_report(&whole).unwrap();
    assert_eq!(rep.range_count(), 1);
    let range = rep.range(0).unwrap();
    assert_eq!(range.first_page, (0xFE00_0000 + offset) / 4096);
    assert_eq!(range.number_of_pages, 4);
    assert_eq!(range.range_id, 0);
    assert_ne!(rep.info.interface_info & TDISP_INFO_NO_UPDATE_AFTER_LOCK, 0);
    rep.check(
        &[Bar {
            index: 0,
            base: 0xFE00_0000,
            size: 0x4000,
        }],
        offset,
    )
    .unwrap();
    assert!(rep
        .check(
            &[Bar {
                index: 0,
                base: 0xFE00_0000,
                size: 0x4000
            }],
            0
        )
        .is_err());
    assert_eq!(
        r.tdisp_error(&TdispRequest::GetReport {
            offset: 4000,
            length: 1
        }),
        Some(TDISP_ERROR_INVALID_REQUEST)
    );
    assert_eq!(
        r.tdisp_error(&TdispRequest::GetReport {
            offset: 0,
            length: 0
        }),
        Some(TDISP_ERROR_INVALID_REQUEST)
    );

    // START with a wrong nonce is refused and changes nothing; with the right one: RUN.
    let mut wrong = nonce;
    wrong[31] ^= 1;
    assert_eq!(
        r.tdisp_error(&TdispRequest::Start { nonce: wrong }),
        Some(TDISP_ERROR_INVALID_NONCE)
    );
    assert_eq!(r.state(), TdiState::ConfigLocked);
    let (code, _) = r.tdisp_rsp(&TdispRequest::Start { nonce });
    assert_eq!(code, TDISP_START_INTERFACE_RSP);
    assert_eq!(r.state(), TdiState::Run);
    assert_eq!(
        r.tdisp_error(&TdispRequest::Start { nonce }),
        Some(TDISP_ERROR_INVALID_INTERFACE_STATE)
    );
    // The report is still served in RUN.
    assert_eq!(r.report(64), whole);
    // Another interface is refused while locked.
    let mut out = [0u8; 32];
    let n = encode_request(
        TDISP_VERSION_1_0,
        InterfaceId {
            function_id: 0x0200,
        },
        &TdispRequest::GetState,
        &mut out,
    )
    .unwrap();
    let rsp = r.vdm(PCI_PROTOCOL_TDISP, &out[..n]).unwrap();
    assert!(matches!(
        parse_response(&rsp).unwrap().1,
        TdispResponse::Error(ErrorRsp {
            code: TDISP_ERROR_INVALID_INTERFACE,
            ..
        })
    ));
    // STOP: back to CONFIG_UNLOCKED; a new LOCK gives a new nonce.
    let (code, _) = r.tdisp_rsp(&TdispRequest::Stop);
    assert_eq!(code, TDISP_STOP_INTERFACE_RSP);
    assert_eq!(r.state(), TdiState::ConfigUnlocked);
    let nonce2 = r.lock(1, 0).unwrap();
    assert_ne!(nonce, nonce2);
    assert_eq!(
        r.tdisp_error(&TdispRequest::Start { nonce }),
        Some(TDISP_ERROR_INVALID_NONCE)
    );
    r.tdisp_rsp(&TdispRequest::Start { nonce: nonce2 });
    assert_eq!(r.state(), TdiState::Run);
}

#[test]
fn tdisp_request_checks() {
    let mut r = Requester::session(Fault::None);
    r.program_stream(1);
    // Version mismatch, reserved function ID bits, unsupported and unknown requests.
    let mut out = [0u8; 64];
    let n = encode_request(0x11, IFACE, &TdispRequest::GetVersion, &mut out).unwrap();
    let rsp = r.vdm(PCI_PROTOCOL_TDISP, &out[..n]).unwrap();
    assert!(matches!(
        parse_response(&rsp).unwrap().1,
        TdispResponse::Error(ErrorRsp {
            code: TDISP_ERROR_VERSION_MISMATCH,
            ..
        })
    ));
    let n = encode_request(
        0x10,
        InterfaceId {
            function_id: 1 << 30,
        },
        &TdispRequest::GetVersion,
        &mut out,
    )
    .unwrap();
    let rsp = r.vdm(PCI_PROTOCOL_TDISP, &out[..n]).unwrap();
    assert!(matches!(
        parse_response(&rsp).unwrap().1,
        TdispResponse::Error(ErrorRsp {
            code: TDISP_ERROR_INVALID_INTERFACE,
            ..
        })
    ));
    for (code, expect) in [
        (0x88u8, TDISP_ERROR_UNSUPPORTED_REQUEST),
        (0x8B, TDISP_ERROR_UNSUPPORTED_REQUEST),
        (0x90, TDISP_ERROR_INVALID_REQUEST),
    ] {
        let mut m = TdispHeader::new(code, IFACE).to_bytes().to_vec();
        m.push(0);
        let rsp = r.vdm(PCI_PROTOCOL_TDISP, &m).unwrap();
        match parse_response(&rsp).unwrap().1 {
            TdispResponse::Error(e) => assert_eq!(e.code, expect, "{code:#x}"),
            other => panic!("{other:?}"),
        }
    }
    // Lock flags: reserved → INVALID_REQUEST, BIND_P2P → UNSUPPORTED_REQUEST, unaligned offset.
    for (flags, offset, expect) in [
        (0x20u16, 0u64, TDISP_ERROR_INVALID_REQUEST),
        (TDISP_LOCK_BIND_P2P, 0, TDISP_ERROR_UNSUPPORTED_REQUEST),
        (0, 0x800, TDISP_ERROR_INVALID_REQUEST),
    ] {
        let req = TdispRequest::LockInterface(LockInterface {
            flags,
            default_stream_id: 1,
            mmio_reporting_offset: offset,
            bind_p2p_addr_mask: 0,
        });
        assert_eq!(
            r.tdisp_error(&req),
            Some(expect),
            "flags {flags:#x} offset {offset:#x}"
        );
    }
    // Trailing bytes in a request.
    let n = encode_request(0x10, IFACE, &TdispRequest::GetState, &mut out).unwrap();
    let rsp = r.vdm(PCI_PROTOCOL_TDISP, &out[..n + 1]).unwrap();
    assert!(matches!(
        parse_response(&rsp).unwrap().1,
        TdispResponse::Error(ErrorRsp {
            code: TDISP_ERROR_INVALID_REQUEST,
            ..
        })
    ));
    assert_eq!(r.state(), TdiState::ConfigUnlocked);
}

#[test]
fn lock_needs_the_default_streams_keys_in_go() {
    let mut r = Requester::session(Fault::None);
    assert_eq!(r.lock(1, 0), Err(TDISP_ERROR_INVALID_DEVICE_CONFIGURATION));
    // Five of six pairs in go is not enough.
    r.program_stream(1);
    r.stop(1, sub(0, Direction::Tx, SubStream::Cpl));
    assert_eq!(r.lock(1, 0), Err(TDISP_ERROR_INVALID_DEVICE_CONFIGURATION));
    // Keys for stream 2 do not help a lock on stream 1.
    r.program_stream(2);
    assert_eq!(r.lock(1, 0), Err(TDISP_ERROR_INVALID_DEVICE_CONFIGURATION));
    assert_eq!(r.state(), TdiState::ConfigUnlocked);
    // When QEMU reports the registers, the stream's block must be enabled too.
    r.event(&ide_registers(None));
    assert_eq!(r.lock(2, 0), Err(TDISP_ERROR_INVALID_DEVICE_CONFIGURATION));
    r.event(&ide_registers(Some((0, 2))));
    r.lock(2, 0).unwrap();
    assert_eq!(r.state(), TdiState::ConfigLocked);
    // The block disabled while locked (QEMU pushes the registers after the write): ERROR.
    r.event(&ide_registers(None));
    assert_eq!(r.state(), TdiState::Error);
    // Only STOP leaves ERROR.
    assert_eq!(
        r.tdisp_error(&TdispRequest::GetReport {
            offset: 0,
            length: 16
        }),
        Some(TDISP_ERROR_INVALID_INTERFACE_STATE)
    );
    assert_eq!(r.lock(2, 0), Err(TDISP_ERROR_INVALID_INTERFACE_STATE));
    r.tdisp_rsp(&TdispRequest::Stop);
    assert_eq!(r.state(), TdiState::ConfigUnlocked);
}

#[test]
fn key_stop_or_stream_disable_while_locked_is_error() {
    let mut r = Requester::session(Fault::None);
    r.program_stream(1);
    let nonce = r.lock(1, 0).unwrap();
    r.tdisp_rsp(&TdispRequest::Start { nonce });
    r.stop(1, sub(0, Direction::Rx, SubStream::Npr));
    assert_eq!(r.state(), TdiState::Error);
    assert!(r.logged("RUN -> ERROR"));
    r.tdisp_rsp(&TdispRequest::Stop);
    r.program_stream(1);
    r.lock(1, 0).unwrap();
    r.event(&[EVENT_STREAM_DISABLED, 1]);
    assert_eq!(r.state(), TdiState::Error);
    assert_eq!(r.keys(1)[1], 0);
}

/// A key refresh does not disturb a locked TDI: stopping the old key set once the new one is
/// in go leaves every pair keyed. A pair losing its last key set does move it to ERROR.
#[test]
fn key_refresh_keeps_a_locked_tdi() {
    let mut r = Requester::session(Fault::None);
    r.program_stream(1);
    let nonce = r.lock(1, 0).unwrap();
    r.tdisp_rsp(&TdispRequest::Start { nonce });
    r.program_set(1, 1);
    r.go_dir(1, 1, Direction::Rx);
    r.go_dir(1, 1, Direction::Tx);
    assert_eq!(r.state(), TdiState::Run);
    r.stop_dir(1, 0, Direction::Rx);
    r.stop_dir(1, 0, Direction::Tx);
    assert_eq!(
        r.state(),
        TdiState::Run,
        "old key set stopped after the switch"
    );
    assert!(!r.logged("-> ERROR"));
    // K1 stopped on one pair: that pair has no key set in go any more.
    r.stop(1, sub(1, Direction::Tx, SubStream::Npr));
    assert_eq!(r.state(), TdiState::Error);
    assert!(r.logged("default stream 1 lost its keys"));

    // Locked (not started): the same for an RX pair, during a refresh whose new key set is
    // stopped again before the old one: RX keeps K0, then loses it.
    let mut r = Requester::session(Fault::None);
    r.program_stream(1);
    r.lock(1, 0).unwrap();
    r.program_set(1, 1);
    r.go_dir(1, 1, Direction::Rx);
    r.stop(1, sub(1, Direction::Rx, SubStream::Pr));
    assert_eq!(
        r.state(),
        TdiState::ConfigLocked,
        "RX PR still has K0 in go"
    );
    r.stop(1, sub(0, Direction::Rx, SubStream::Pr));
    assert_eq!(r.state(), TdiState::Error);

    // A TX pair switched to K1: stopping the old K0 there keeps it keyed, stopping K1 not.
    let mut r = Requester::session(Fault::None);
    r.program_stream(1);
    r.lock(1, 0).unwrap();
    r.program_set(1, 1);
    r.go(1, sub(1, Direction::Tx, SubStream::Cpl)).unwrap();
    r.stop(1, sub(0, Direction::Tx, SubStream::Cpl));
    assert_eq!(r.state(), TdiState::ConfigLocked);
    r.stop(1, sub(1, Direction::Tx, SubStream::Cpl));
    assert_eq!(r.state(), TdiState::Error);
}

#[test]
fn flr_and_reset_clear_keys_and_unlock() {
    for event in [EVENT_FLR, EVENT_RESET] {
        let mut r = Requester::session(Fault::None);
        r.program_stream(1);
        r.program_stream(2);
        let nonce = r.lock(1, 0).unwrap();
        r.tdisp_rsp(&TdispRequest::Start { nonce });
        assert_eq!(r.event(&[event]), PLATFORM_EVENT);
        assert_eq!(r.state(), TdiState::ConfigUnlocked);
        for s in [1, 2] {
            let k = r.keys(s);
            assert_eq!(k[1], 0);
            assert!(k[2..].iter().all(|&b| b == 0));
        }
        // Keys are gone: LOCK needs them again.
        assert_eq!(r.lock(1, 0), Err(TDISP_ERROR_INVALID_DEVICE_CONFIGURATION));
        // The old nonce is worthless.
        r.program_stream(1);
        let n2 = r.lock(1, 0).unwrap();
        assert_eq!(
            r.tdisp_error(&TdispRequest::Start { nonce }),
            Some(TDISP_ERROR_INVALID_NONCE)
        );
        r.tdisp_rsp(&TdispRequest::Start { nonce: n2 });
        assert_eq!(r.state(), TdiState::Run);
    }
}

#[test]
fn config_writes_while_locked() {
    // (offset, size, value, forbidden)
    let cases = [
        (0x10u16, 4u8, 0xFE00_0000u32, true),
        (0x24, 4, 0, true),
        (0x14, 2, 0, true),
        (0x30, 4, 0, true),
        (0x04, 2, 0x0006, false),
        (0x04, 2, 0x0004, true),
        (0x04, 2, 0x0002, true),
        (0x04, 1, 0x06, false),
        (0x05, 1, 0x00, false),
        (0x04, 4, 0x0010_0006, false),
        (0x0C, 1, 0x10, false),
        (0x3C, 1, 0x0B, false),
        (0x80, 2, 0x8000, false),
    ];
    for (offset, size, value, forbidden) in cases {
        let mut r = Requester::session(Fault::None);
        // Unlocked: never an effect.
        r.event(&config_write(offset, size, value));
        assert_eq!(r.state(), TdiState::ConfigUnlocked);
        r.program_stream(1);
        r.lock(1, 0).unwrap();
        r.event(&config_write(offset, size, value));
        let expect = if forbidden {
            TdiState::Error
        } else {
            TdiState::ConfigLocked
        };
        assert_eq!(r.state(), expect, "write {offset:#x}/{size} = {value:#x}");
    }
    // Malformed: wrong size, wrong length.
    let mut r = Requester::session(Fault::None);
    let (c, _, _) = r
        .responder
        .platform(PLATFORM_EVENT, &config_write(0x10, 3, 0));
    assert_eq!(c, SOCKET_COMMAND_UNKNOWN);
    let (c, _, _) = r
        .responder
        .platform(PLATFORM_EVENT, &config_write(0x10, 4, 0)[..6]);
    assert_eq!(c, SOCKET_COMMAND_UNKNOWN);
    let (c, _, _) = r.responder.platform(PLATFORM_EVENT, &[9]);
    assert_eq!(c, SOCKET_COMMAND_UNKNOWN);
    let (c, _, _) = r.responder.platform(PLATFORM_EVENT, &[]);
    assert_eq!(c, SOCKET_COMMAND_UNKNOWN);
    let (c, _, _) = r.responder.platform(PLATFORM_IDE_KEYS, &[1, 2]);
    assert_eq!(c, SOCKET_COMMAND_UNKNOWN);
}

#[test]
fn bars_change_the_report() {
    let mut r = Requester::session(Fault::None);
    r.program_stream(1);
    let bars = [
        (0u8, 0x8_0000_0000u64, 0x10_0000u64),
        (2, 0xFD00_0000, 0x2000),
        (4, 0, 0x1000),
    ];
    r.event(&bars_event(&bars));
    r.lock(1, 0x1000).unwrap();
    let rep = r.report(1024);
    let rep = parse_interface_report(&rep).unwrap();
    // The unassigned BAR4 is not reported.
    assert_eq!(rep.range_count(), 2);
    let r0 = rep.range(0).unwrap();
    assert_eq!(
        (r0.first_page, r0.number_of_pages, r0.range_id),
        ((0x8_0000_0000 + 0x1000) / 4096, 0x100, 0)
    );
    let r1 = rep.range(1).unwrap();
    assert_eq!(
        (r1.first_page, r1.number_of_pages, r1.range_id),
        ((0xFD00_0000 + 0x1000) / 4096, 2, 2)
    );
    let check_bars: Vec<Bar> = bars
        .iter()
        .map(|&(index, base, size)| Bar { index, base, size })
        .collect();
    rep.check(&check_bars, 0x1000).unwrap();
    // The same BARs again: no effect; a moved BAR while locked: ERROR.
    r.event(&bars_event(&bars));
    assert_eq!(r.state(), TdiState::ConfigLocked);
    r.event(&bars_event(&[
        (0, 0x9_0000_0000, 0x10_0000),
        (2, 0xFD00_0000, 0x2000),
    ]));
    assert_eq!(r.state(), TdiState::Error);
    // After STOP, the new BARs make the new report.
    r.tdisp_rsp(&TdispRequest::Stop);
    r.lock(1, 0).unwrap();
    let rep = r.report(1024);
    let rep = parse_interface_report(&rep).unwrap();
    assert_eq!(rep.range(0).unwrap().first_page, 0x9_0000_0000 / 4096);
}

#[test]
fn ide_test_keys_fixture() {
    let mut r = Requester::session(Fault::None);
    r.responder.tee_mut().ide.program_test_keys(3);
    let k = r.keys(3);
    assert_eq!(k[1], 1);
    // Independently derived: SHA-256("coco-ide-test" || stream || dir || substream) and the
    // first 8 bytes of the same with "ifv" appended.
    for pair in 0..6 {
        let (dir, ss) = ((pair / 3) as u8, (pair % 3) as u8);
        let mut seed = b"coco-ide-test".to_vec();
        seed.extend([3, dir, ss]);
        let key = Sha256::digest(&seed);
        seed.extend(b"ifv");
        let ifv = Sha256::digest(&seed);
        let mut h = Sha256::new();
        h.update(key);
        h.update(&ifv[..8]);
        assert_eq!(go_mask(&k, pair), 1);
        assert_eq!(digest(&k, pair, 0), h.finalize().as_slice(), "pair {pair}");
    }
    // A TDI can be locked on that stream without any IDE_KM.
    let nonce = r.lock(3, 0).unwrap();
    r.tdisp_rsp(&TdispRequest::Start { nonce });
    assert_eq!(r.state(), TdiState::Run);
}

#[test]
fn tdi_test_lock_fixture() {
    let mut r = Requester::session(Fault::None);
    r.responder.tee_mut().set_test_lock(2);
    assert_eq!(r.keys(2)[1], 1, "the fixture's keys are in go");
    // Not ready: no registers pushed yet, then a block enabled for another stream.
    r.event(&bars_event(&[(0, 0xC000_0000, 0x4000)]));
    assert_eq!(tdi_state(&mut r), TdiState::ConfigUnlocked);
    r.event(&ide_registers(Some((0, 5))));
    assert_eq!(tdi_state(&mut r), TdiState::ConfigUnlocked);
    // The block of stream 2 enabled: locked (for function ID 0: the fixture has no requester
    // to name one), with the report of the BARs pushed.
    r.event(&ide_registers(Some((1, 2))));
    assert_eq!(tdi_state(&mut r), TdiState::ConfigLocked);
    assert!(r.logged("BAR0 pages 0xc0000+4"), "{:?}", r.log);
    // A forbidden write: ERROR, and no relock while in ERROR.
    r.event(&config_write(0x10, 4, 0xD000_0000));
    assert_eq!(tdi_state(&mut r), TdiState::Error);
    r.event(&ide_registers(Some((1, 2))));
    assert_eq!(tdi_state(&mut r), TdiState::Error);
    // FLR: unlocked, the keys gone, so it stays unlocked.
    r.event(&[EVENT_FLR]);
    r.event(&ide_registers(Some((1, 2))));
    assert_eq!(tdi_state(&mut r), TdiState::ConfigUnlocked);
    assert_eq!(r.keys(2)[1], 0);
}

/// The TDI state through the side channel (PLATFORM_TDI_STATE), for any interface ID.
fn tdi_state(r: &mut Requester) -> TdiState {
    let (c, p, _) = r.responder.platform(PLATFORM_TDI_STATE, &[]);
    assert_eq!(c, PLATFORM_TDI_STATE);
    match p[..] {
        [v] => TdiState::from_u8(v).unwrap(),
        _ => panic!("PLATFORM_TDI_STATE answered {p:?}"),
    }
}

#[test]
fn fault_kp_ack_fail() {
    let mut r = Requester::session(Fault::KpAckFail);
    let s = sub(0, Direction::Rx, SubStream::Pr);
    let ack = r.key_prog(1, s, [1; 32], [2; 8]);
    assert_eq!(ack.status, IDE_KM_KP_ACK_UNSPECIFIED);
    assert_eq!(r.go(1, s), Err(SPDM_ERROR_UNEXPECTED_REQUEST));
    assert_eq!(go_mask(&r.keys(1), 0), 0);
}

#[test]
fn fault_ide_key_mismatch() {
    // Acknowledged and in go, but the digests QEMU compares are not those of the keys sent.
    let mut r = Requester::session(Fault::IdeKeyMismatch);
    let sent = r.program_stream(1);
    let k = r.keys(1);
    assert_eq!(k[1], 1, "every pair is in go");
    for (pair, d) in sent.iter().enumerate() {
        assert_eq!(go_mask(&k, pair), 1, "pair {pair}: key set 0 in go");
        assert_ne!(
            digest(&k, pair, 0),
            d,
            "pair {pair}: the stored key differs"
        );
    }
    // Without the fault the digests are those of the keys sent.
    let mut r = Requester::session(Fault::None);
    let sent = r.program_stream(1);
    let k = r.keys(1);
    for (pair, d) in sent.iter().enumerate() {
        assert_eq!(digest(&k, pair, 0), d, "pair {pair}");
    }
}

#[test]
fn fault_go_refused() {
    let mut r = Requester::session(Fault::GoRefused);
    let s = sub(0, Direction::Rx, SubStream::Pr);
    assert_eq!(r.key_prog(1, s, [1; 32], [2; 8]).status, 0);
    assert_eq!(r.go(1, s), Err(SPDM_ERROR_UNSPECIFIED));
    assert_eq!(go_mask(&r.keys(1), 0), 0);
}

#[test]
fn fault_refresh_kp_fail() {
    // Key set 0 works; KEY_PROG of key set 1 (a refresh) is refused and nothing is stored.
    let mut r = Requester::session(Fault::RefreshKpFail);
    r.program_stream(1);
    let s = sub(1, Direction::Rx, SubStream::Pr);
    assert_eq!(
        r.key_prog(1, s, [1; 32], [2; 8]).status,
        IDE_KM_KP_ACK_UNSPECIFIED
    );
    assert_eq!(r.go(1, s), Err(SPDM_ERROR_UNEXPECTED_REQUEST));
    let k = r.keys(1);
    assert_eq!(k[1], 1, "still keyed on key set 0");
    assert!((0..6).all(|pair| go_mask(&k, pair) == 1));
}

#[test]
fn fault_refresh_go_refused() {
    // Key set 0 and the receivers' key set 1 go; TX PR switches to key set 1, TX NPR is refused.
    let mut r = Requester::session(Fault::RefreshGoRefused);
    r.program_stream(1);
    r.program_set(1, 1);
    r.go_dir(1, 1, Direction::Rx);
    r.go(1, sub(1, Direction::Tx, SubStream::Pr)).unwrap();
    assert_eq!(
        r.go(1, sub(1, Direction::Tx, SubStream::Npr)),
        Err(SPDM_ERROR_UNSPECIFIED)
    );
    let k = r.keys(1);
    assert_eq!(go_mask(&k, 3), 2, "TX PR on key set 1");
    assert_eq!(go_mask(&k, 4), 1, "TX NPR still on key set 0");
}

#[test]
fn fault_slow_idekm() {
    // An IDE_KM request is answered ResponseNotReady (RDT 2^18 us) inside the session; the
    // answer comes with RESPOND_IF_READY. TDISP is not slowed.
    let mut r = Requester::session(Fault::SlowIdeKm);
    let mut q = [0u8; 64];
    let n = IdeKmMessage::Query(Query { port_index: 0 })
        .encode(&mut q)
        .unwrap();
    let mut out = vec![0u8; n + 16];
    let m = encode_pci_sig_vdm(
        r.v,
        SPDM_VENDOR_DEFINED_REQUEST,
        PCI_PROTOCOL_IDE_KM,
        &q[..n],
        &mut out,
    )
    .unwrap();
    let rsp = r.secured(&out[..m]).unwrap();
    let rnr = parse_error_response(&rsp)
        .unwrap()
        .response_not_ready()
        .expect("ResponseNotReady");
    assert_eq!(rnr.request_code, SPDM_VENDOR_DEFINED_REQUEST);
    assert_eq!(rnr.rdt_exponent, 18);
    let mut rir = [0u8; 8];
    let k = encode_respond_if_ready(
        &RespondIfReady {
            version: r.v,
            request_code: rnr.request_code,
            token: rnr.token,
        },
        &mut rir,
    )
    .unwrap();
    let rsp = r.secured(&rir[..k]).unwrap();
    let p = parse_pci_sig_vdm(&rsp, SPDM_VENDOR_DEFINED_RESPONSE).unwrap();
    assert_eq!(p.protocol_id, PCI_PROTOCOL_IDE_KM);
    assert!(matches!(
        parse_message(p.message).unwrap(),
        IdeKmMessage::QueryResp(_)
    ));
    let (c, _) = r.tdisp_rsp(&TdispRequest::GetVersion);
    assert_eq!(c, TDISP_VERSION);
}

#[test]
fn fault_wrong_stream_id() {
    let mut r = Requester::session(Fault::WrongStreamId);
    let s = sub(1, Direction::Tx, SubStream::Cpl);
    let ack = r.key_prog(4, s, [1; 32], [2; 8]);
    assert_eq!((ack.stream_id, ack.status), (5, 0));
    assert!(check_ack(4, s, 0, (ack.stream_id, ack.sub, ack.port_index)).is_err());
    assert_eq!(r.go(4, s).unwrap().stream_id, 5);
    // The key itself was handled for stream 4.
    assert_eq!(go_mask(&r.keys(4), 5), 2);
    assert_eq!(r.stop(4, s).stream_id, 5);
}

/// Locks stream 1 (keys programmed) with BAR0 at 0xFE000000/16K, offset 0; returns the
/// report bytes and the nonce.
fn locked_report(fault: Fault) -> (Requester, Vec<u8>, [u8; 32]) {
    let mut r = Requester::session(fault);
    r.program_stream(1);
    let nonce = r.lock(1, 0).unwrap();
    let rep = r.report(1024);
    (r, rep, nonce)
}

const DEFAULT_BARS: [Bar; 1] = [Bar {
    index: 0,
    base: 0xFE00_0000,
    size: 0x4000,
}];

#[test]
fn fault_report_outside_bars() {
    let (_, good, _) = locked_report(Fault::None);
    parse_interface_report(&good)
        .unwrap()
        .check(&DEFAULT_BARS, 0)
        .unwrap();
    let (_, bad, _) = locked_report(Fault::ReportOutsideBars);
    let rep = parse_interface_report(&bad).unwrap();
    assert_eq!(
        rep.check(&DEFAULT_BARS, 0),
        Err(ReportError::OutsideBars(0))
    );
    assert_eq!(rep.range(0).unwrap().first_page, 0xFE004);
}

#[test]
fn fault_report_bad_length() {
    let (_, bad, _) = locked_report(Fault::ReportBadLength);
    assert!(parse_interface_report(&bad).is_err());
}

#[test]
fn fault_start_wrong_nonce() {
    let (mut r, _, nonce) = locked_report(Fault::StartWrongNonce);
    let mut wrong = nonce;
    wrong[0] ^= 0xFF;
    let (code, _) = r.tdisp_rsp(&TdispRequest::Start { nonce: wrong });
    assert_eq!(code, TDISP_START_INTERFACE_RSP);
    assert_eq!(r.state(), TdiState::Run);
}

#[test]
fn fault_stuck_locked() {
    let (mut r, _, nonce) = locked_report(Fault::StuckLocked);
    let (code, _) = r.tdisp_rsp(&TdispRequest::Start { nonce });
    assert_eq!(code, TDISP_START_INTERFACE_RSP);
    assert_eq!(r.state(), TdiState::ConfigLocked);
    let (code, _) = r.tdisp_rsp(&TdispRequest::Stop);
    assert_eq!(code, TDISP_STOP_INTERFACE_RSP);
    assert_eq!(r.state(), TdiState::ConfigLocked);
    // A reset still unlocks (it is not a TDISP message).
    r.event(&[EVENT_FLR]);
    assert_eq!(r.state(), TdiState::ConfigUnlocked);
}

#[test]
fn fault_tdisp_error_each_code() {
    for (code, name) in TDISP_ERROR_CODES {
        let fault: Fault = format!(
            "tdisp-error:{}",
            name.to_ascii_lowercase().replace('_', "-")
        )
        .parse()
        .unwrap();
        assert_eq!(fault, Fault::TdispError(code));
        let mut r = Requester::session(fault);
        r.program_stream(1);
        assert_eq!(r.lock(1, 0), Err(code), "{name}");
        assert_eq!(r.state(), TdiState::ConfigUnlocked);
        // Other requests are served.
        let (c, _) = r.tdisp_rsp(&TdispRequest::GetVersion);
        assert_eq!(c, TDISP_VERSION);
    }
}

/// The faults of the TEE-IO list leave the rest of the endpoint alone.
#[test]
fn teeio_faults_do_not_break_sessions() {
    for fault in Fault::TEE_IO {
        let mut r = Requester::session(fault);
        assert_eq!(r.state(), TdiState::ConfigUnlocked, "{fault}");
        assert!(r.responder.session_id().is_some());
    }
}

/// An in-memory duplex stream for `serve`.
struct Duplex {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn side_channel_over_the_socket() {
    let mut input = Vec::new();
    input.extend(encode_frame(PLATFORM_IDE_KEYS, 2, &[3]));
    input.extend(encode_frame(
        PLATFORM_EVENT,
        2,
        &bars_event(&[(0, 0xFE00_0000, 0x4000)]),
    ));
    input.extend(encode_frame(PLATFORM_EVENT, 2, &[EVENT_FLR]));
    input.extend(encode_frame(PLATFORM_TDI_STATE, 2, &[]));
    input.extend(encode_frame(PLATFORM_EVENT, 2, &[42]));
    input.extend(encode_frame(0xC0C0_0004, 2, &[]));
    let mut stream = Duplex {
        input: Cursor::new(input),
        output: Vec::new(),
    };
    let mut responder =
        Responder::with_identity(vec![SpdmVersion::V1_2.to_entry()], Fault::None, identity());
    responder.tee_mut().ide.program_test_keys(3);
    let mut lines = Vec::new();
    serve(&mut stream, &mut responder, &mut |l: &str| {
        lines.push(l.to_string())
    });
    let mut out = Cursor::new(stream.output);
    let mut frames = Vec::new();
    while let Ok(f) = read_frame(&mut out, usize::MAX) {
        frames.push(f);
    }
    assert_eq!(frames.len(), 6);
    assert_eq!(frames[0].command, PLATFORM_IDE_KEYS);
    assert_eq!(frames[0].payload.len(), 398);
    assert_eq!(frames[0].payload[1], 1);
    assert_eq!(
        (frames[1].command, frames[1].payload.len()),
        (PLATFORM_EVENT, 0)
    );
    assert_eq!(
        (frames[2].command, frames[2].payload.len()),
        (PLATFORM_EVENT, 0)
    );
    assert_eq!(
        (frames[3].command, frames[3].payload.clone()),
        (PLATFORM_TDI_STATE, vec![0])
    );
    assert_eq!(frames[4].command, SOCKET_COMMAND_UNKNOWN);
    assert_eq!(frames[5].command, SOCKET_COMMAND_UNKNOWN);
    assert!(frames.iter().all(|f| f.transport == 2));
    assert_eq!(
        responder.tee().ide.streams(),
        Vec::<u8>::new(),
        "FLR erased the fixture keys"
    );
    assert!(
        lines.iter().any(|l| l.contains("PLATFORM_EVENT FLR")),
        "{lines:?}"
    );
}
