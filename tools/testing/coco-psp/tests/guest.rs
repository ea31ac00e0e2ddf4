//! The guest side (sev-tio-guest.rst): TIO_OP and TIO_GUEST_REQUEST against an in-process
//! coco-endpoint reached through DEVICE_SPDM, the faults, and random requests that must never
//! panic the model.

mod common;

use coco_endpoint::pki::KeyKind;
use coco_endpoint::Fault as EpFault;
use coco_psp::guest::FW_INVALID_TDI_STATE;
use coco_psp::wire::{GuestDone, GuestReq};
use coco_psp::{Fault, FaultSpec};
use coco_sevtio::guest::*;
use common::*;
use proptest::prelude::*;
use sha2::{Digest, Sha384};

const REQ_PAGE: u64 = 0x40000;
const RSP_PAGE: u64 = 0x41000;
const DATA: u64 = 0x50000;
const TDI: u64 = 0x1000 | RID as u64;

struct G {
    rig: Rig,
    seq: u64,
}

impl G {
    fn new(faults: Vec<FaultSpec>) -> G {
        let mut rig = Rig::new(faults, endpoint(KeyKind::P256, EpFault::None));
        rig.psp.set_guest_tdis(&[RID]);
        G { rig, seq: 1 }
    }

    fn default() -> G {
        G::new(Vec::new())
    }

    fn guest(&mut self, req: GuestReq) -> GuestDone {
        self.rig.psp.guest(&mut self.rig.host, &req).unwrap()
    }

    fn op(&mut self, action: u64) -> GuestDone {
        self.op_on(u32::from(RID), action)
    }

    fn op_on(&mut self, sbdf: u32, action: u64) -> GuestDone {
        self.guest(GuestReq {
            exit_code: EXIT_TIO_OP,
            sbdf,
            param: action,
            ..GuestReq::default()
        })
    }

    /// Sends a request message; returns GUEST_DONE and the response payload (if any).
    fn request(
        &mut self,
        msg_type: u8,
        payload: &[u8],
        param: u64,
        npages: u32,
    ) -> (GuestDone, Option<Vec<u8>>) {
        let mut page = vec![0u8; 0x1000];
        encode_msg(&mut page, self.seq, msg_type, payload).unwrap();
        self.rig.host.put(REQ_PAGE, &page);
        self.rig.host.put(RSP_PAGE, &[0xEE; 0x1000]);
        let d = self.guest(GuestReq {
            exit_code: EXIT_GUEST_REQUEST,
            sbdf: u32::from(RID),
            req_gpa: REQ_PAGE,
            rsp_gpa: RSP_PAGE,
            data_gpa: DATA,
            data_npages: npages,
            param,
        });
        let seq = self.seq;
        self.seq += 2;
        let rsp = self.rig.host.get(RSP_PAGE, 0x1000);
        if rsp == vec![0xEE; 0x1000] {
            return (d, None);
        }
        let (h, p) = MsgHeader::parse(&rsp).unwrap();
        assert_eq!(h.seqno, seq + 1);
        assert_eq!(h.msg_type, msg_type - 0x80);
        (d, Some(p.to_vec()))
    }

    fn info(&mut self, flags: u64, npages: u32) -> (GuestDone, Option<TdiInfoRsp>) {
        let (d, p) = self.request(
            MSG_TDI_INFO_REQ,
            &TdiInfoReq { tdi_id: TDI }.encode(),
            flags,
            npages,
        );
        (d, p.map(|p| TdiInfoRsp::parse(&p).unwrap()))
    }

    fn mmio(&mut self, tdi_id: u64, range_id: u16, base: u64, count: u32, off: u32) -> (u16, u16) {
        let q = MmioValidateReq {
            tdi_id,
            subrange_base: base,
            subrange_page_count: count,
            range_offset: off,
            flags: MMIO_FLAG_VALIDATED,
            range_id,
        };
        let (d, p) = self.request(MSG_MMIO_VALIDATE_REQ, &q.encode(), 0, 0);
        assert_eq!(d.result, RESULT_DONE);
        let r = MmioValidateRsp::parse(&p.unwrap()).unwrap();
        assert_eq!(r.subrange_base, base);
        (r.status, r.flags)
    }

    fn bind(&mut self) {
        let d = self.op(TIO_OP_BIND);
        assert_eq!(d.result, RESULT_DONE, "{}", self.rig.log_text());
        assert_eq!(d.param, TDI);
    }

    fn data(&self, len: usize) -> Vec<u8> {
        self.rig.host.get(DATA, len)
    }
}

fn sha384(b: &[u8]) -> [u8; 48] {
    Sha384::digest(b).into()
}

const BAR0_PFN: u64 = 0xFE00_0000 / 4096;

#[test]
fn bind_info_run_validate_sdte_stop_unbind() {
    let mut g = G::default();
    // Not bound yet.
    let (d, r) = g.info(INFO_STATE, 0);
    assert_eq!(d.result, RESULT_DONE);
    assert_eq!(r.unwrap().status, TDI_STATUS_UNBOUND);
    assert_eq!(g.op(TIO_OP_RUN).fw_err, FW_INVALID_TDI_STATE);
    g.bind();
    assert!(
        g.rig.host.rp_ops.is_empty(),
        "no root port on the guest side"
    );
    assert!(g.rig.host.device_spdm > 10);
    // The endpoint's six pairs are keyed, in go.
    assert_eq!(g.rig.host.ep_go(0), [1; 6]);
    // Binding again: the same tdi_id, no SPDM.
    let n = g.rig.host.device_spdm;
    g.bind();
    assert_eq!(g.rig.host.device_spdm, n);

    // TDI_INFO with everything.
    let nonce = [0x5Au8; 32];
    g.rig.host.put(DATA, &nonce);
    let (d, r) = g.info(INFO_STATE | INFO_CERTS | INFO_MEAS | INFO_REPORT, 16);
    assert_eq!(d.result, RESULT_DONE, "{}", g.rig.log_text());
    assert_eq!(d.param, TDI_STATE_CONFIG_LOCKED);
    let r = r.unwrap();
    assert_eq!(r.tdi_id, TDI);
    assert_eq!(r.status, TDI_STATUS_BOUND);
    assert_eq!(
        r.meas_flags,
        MEAS_FLAG_DIGEST_VALID | MEAS_FLAG_DIGEST_FRESH
    );
    assert_eq!(r.lock_flags, 1);
    assert_eq!(r.report_count, 1);
    let algos = SpdmAlgos::decode(r.spdm_algos);
    assert_eq!(algos.asym, ALGO_ASYM_P256);
    let data = g.data(16 * 4096);
    let b = parse_blobs(&data).unwrap();
    let certs = b.certificates.unwrap();
    let meas = b.measurements.unwrap();
    let report = b.report.unwrap();
    assert_eq!(sha384(certs), r.certs_digest);
    assert_eq!(sha384(meas), r.meas_digest);
    assert_eq!(sha384(report), r.report_digest);
    assert_eq!(algos.hash, ALGO_HASH_SHA384, "{algos:?}");
    let hash = 2;
    let chain = identity(KeyKind::P256)
        .slot(0)
        .unwrap()
        .spdm_chain(hash)
        .unwrap();
    assert_eq!(certs, &chain[..]);
    // The measurement evidence: header, transcript (the GET_MEASUREMENTS carries the nonce).
    let tlen = u32::from_le_bytes(meas[..4].try_into().unwrap()) as usize;
    let slen = u32::from_le_bytes(meas[4..8].try_into().unwrap()) as usize;
    assert_eq!(meas.len(), 16 + tlen + slen);
    assert!(meas[16..16 + tlen].windows(32).any(|w| w == nonce));
    let rep = coco_tdisp::parse_interface_report(report).unwrap();
    let range = rep.range(0).unwrap();
    assert_eq!(range.first_page, BAR0_PFN);

    // Not RUN: MMIO_VALIDATE says TDI_UNBOUND.
    assert_eq!(g.mmio(TDI, 0, BAR0_PFN, 1, 0).0, MMIO_STATUS_TDI_UNBOUND);
    // RUN.
    let d = g.op(TIO_OP_RUN);
    assert_eq!(d.result, RESULT_DONE, "{}", g.rig.log_text());
    assert_eq!(g.info(INFO_STATE, 0).0.param, TDI_STATE_RUN);
    assert_eq!(
        g.op(TIO_OP_RUN).fw_err,
        FW_INVALID_TDI_STATE,
        "RUN needs CONFIG_LOCKED"
    );
    // MMIO_VALIDATE.
    let pages = range.number_of_pages;
    assert_eq!(
        g.mmio(TDI, 0, BAR0_PFN, pages, 0),
        (MMIO_STATUS_SUCCESS, MMIO_FLAG_CHANGED)
    );
    assert_eq!(g.mmio(TDI, 0, BAR0_PFN, pages, 0), (MMIO_STATUS_SUCCESS, 0));
    assert_eq!(g.mmio(TDI, 0, BAR0_PFN + 1, 1, 1).0, MMIO_STATUS_SUCCESS);
    assert_eq!(g.mmio(TDI, 1, BAR0_PFN, 1, 0).0, MMIO_STATUS_NOT_REPORTED);
    assert_eq!(
        g.mmio(TDI, 0, BAR0_PFN, pages + 1, 0).0,
        MMIO_STATUS_OUT_OF_RANGE
    );
    assert_eq!(
        g.mmio(TDI, 0, BAR0_PFN - 1, 1, 0).0,
        MMIO_STATUS_OUT_OF_RANGE
    );
    assert_eq!(
        g.mmio(TDI + 1, 0, BAR0_PFN, 1, 0).0,
        MMIO_STATUS_INVALID_TDI
    );
    // SDTE_WRITE.
    let mut sdte = [0u8; 64];
    sdte[0] = 1;
    sdte[8] = 0x42;
    let (d, p) = g.request(
        MSG_SDTE_WRITE_REQ,
        &SdteWriteReq { tdi_id: TDI, sdte }.encode(),
        0,
        0,
    );
    assert_eq!(d.result, RESULT_DONE);
    assert_eq!(
        SdteWriteRsp::parse(&p.unwrap()).unwrap().status,
        SDTE_STATUS_SUCCESS
    );
    assert_eq!(g.rig.psp.guest_state().sdte(RID), Some(sdte));
    let (_, p) = g.request(
        MSG_SDTE_WRITE_REQ,
        &SdteWriteReq { tdi_id: 5, sdte }.encode(),
        0,
        0,
    );
    assert_eq!(
        SdteWriteRsp::parse(&p.unwrap()).unwrap().status,
        SDTE_STATUS_INVALID_TDI
    );
    // STOP: CONFIG_UNLOCKED, still bound.
    assert_eq!(
        g.op(TIO_OP_STOP).result,
        RESULT_DONE,
        "{}",
        g.rig.log_text()
    );
    let (d, r) = g.info(INFO_STATE, 0);
    assert_eq!(d.param, TDI_STATE_CONFIG_UNLOCKED);
    assert_eq!(r.unwrap().status, TDI_STATUS_BOUND);
    assert_eq!(g.mmio(TDI, 0, BAR0_PFN, 1, 0).0, MMIO_STATUS_TDI_UNBOUND);
    // UNBIND.
    assert_eq!(g.op(TIO_OP_UNBIND).result, RESULT_DONE);
    assert!(!g.rig.psp.guest_state().is_bound(RID));
    assert_eq!(g.info(0, 0).1.unwrap().status, TDI_STATUS_UNBOUND);
    let (_, p) = g.request(
        MSG_SDTE_WRITE_REQ,
        &SdteWriteReq { tdi_id: TDI, sdte }.encode(),
        0,
        0,
    );
    assert_eq!(
        SdteWriteRsp::parse(&p.unwrap()).unwrap().status,
        SDTE_STATUS_TDI_NOT_BOUND
    );
    // Bind again over the same session, then RUN.
    g.bind();
    assert_eq!(g.op(TIO_OP_RUN).result, RESULT_DONE, "{}", g.rig.log_text());
    // UNBIND from RUN stops the interface.
    assert_eq!(g.op(TIO_OP_UNBIND).result, RESULT_DONE);
    assert!(g.rig.logged("unbound"));
}

#[test]
fn too_few_data_pages() {
    let mut g = G::default();
    g.bind();
    g.rig.host.put(DATA, &[0x77; 0x1000]);
    let (d, r) = g.info(INFO_CERTS | INFO_REPORT, 0);
    assert!(r.is_none(), "no response written");
    assert_eq!(d.result, RESULT_MORE_PAGES);
    assert!(d.data_npages >= 1);
    let need = d.data_npages;
    if need > 1 {
        let (d, r) = g.info(INFO_CERTS | INFO_REPORT, need - 1);
        assert_eq!(d.result, RESULT_MORE_PAGES);
        assert_eq!(d.data_npages, need);
        assert!(r.is_none());
        assert_eq!(g.data(0x1000), vec![0x77; 0x1000], "nothing written");
    }
    let (d, r) = g.info(INFO_CERTS | INFO_REPORT, need);
    assert_eq!(d.result, RESULT_DONE);
    let r = r.unwrap();
    let data = g.data(need as usize * 4096);
    let b = parse_blobs(&data).unwrap();
    assert_eq!(sha384(b.certificates.unwrap()), r.certs_digest);
    assert_eq!(r.meas_digest, [0; 48]);
    assert_eq!(r.meas_flags, 0);
    // Measurements with no data pages: the needed count, no nonce read.
    let (d, _) = g.info(INFO_MEAS, 0);
    assert_eq!(d.result, RESULT_MORE_PAGES);
    assert!(d.data_npages >= 1);
}

#[test]
fn malformed_requests() {
    let mut g = G::default();
    g.bind();
    // A bad header field: RESULT 3, no response.
    for (off, v) in [
        (0x30usize, 1u8),
        (0x31, 2),
        (0x32, 0x40),
        (0x35, 1),
        (0x36, 15),
    ] {
        let mut page = vec![0u8; 0x1000];
        encode_msg(
            &mut page,
            1,
            MSG_TDI_INFO_REQ,
            &TdiInfoReq { tdi_id: TDI }.encode(),
        )
        .unwrap();
        page[off] = v;
        g.rig.host.put(REQ_PAGE, &page);
        g.rig.host.put(RSP_PAGE, &[0xEE; 0x1000]);
        let d = g.guest(GuestReq {
            exit_code: EXIT_GUEST_REQUEST,
            req_gpa: REQ_PAGE,
            rsp_gpa: RSP_PAGE,
            ..GuestReq::default()
        });
        assert_eq!(d.result, RESULT_MALFORMED, "offset {off:#x}");
        assert_eq!(g.rig.host.get(RSP_PAGE, 0x1000), vec![0xEE; 0x1000]);
    }
    // MMIO_CONFIG is not modelled; a response type is not a request.
    let (d, p) = g.request(MSG_MMIO_CONFIG_REQ, &[0; 16], 0, 0);
    assert_eq!((d.result, p), (RESULT_MALFORMED, None));
    let (d, p) = g.request(MSG_TDI_INFO_RSP, &[0; 192], 0, 0);
    assert_eq!((d.result, p), (RESULT_MALFORMED, None));
    // SDTE without V.
    let (d, _) = g.request(
        MSG_SDTE_WRITE_REQ,
        &SdteWriteReq {
            tdi_id: TDI,
            sdte: [0; 64],
        }
        .encode(),
        0,
        0,
    );
    assert_eq!(d.result, RESULT_MALFORMED);
    // An unreadable request page, an unknown exit code, an unknown action.
    let d = g.guest(GuestReq {
        exit_code: EXIT_GUEST_REQUEST,
        req_gpa: MEM as u64,
        ..GuestReq::default()
    });
    assert_eq!(d.result, RESULT_MALFORMED);
    let d = g.guest(GuestReq {
        exit_code: 0x8000_0022,
        ..GuestReq::default()
    });
    assert_eq!(d.result, RESULT_MALFORMED);
    assert_eq!(g.op(7).result, RESULT_MALFORMED);
    // A tdi_id that names no TDI: INVALID, the rest zero.
    let (d, p) = g.request(
        MSG_TDI_INFO_REQ,
        &TdiInfoReq { tdi_id: 0x1234 }.encode(),
        INFO_CERTS,
        4,
    );
    assert_eq!(d.result, RESULT_DONE);
    let r = TdiInfoRsp::parse(&p.unwrap()).unwrap();
    assert_eq!(
        r,
        TdiInfoRsp {
            status: TDI_STATUS_INVALID,
            ..TdiInfoRsp::default()
        }
    );
}

#[test]
fn unknown_or_unreachable_function() {
    let mut g = G::default();
    for sbdf in [u32::from(RID) + 1, 1 << 16 | u32::from(RID)] {
        let d = g.op_on(sbdf, TIO_OP_BIND);
        assert_eq!((d.result, d.fw_err), (RESULT_FW_ERR, 0x16));
    }
    assert_eq!(g.rig.host.device_spdm, 0);
    // Assigned, but QEMU cannot reach its responder.
    g.rig.host.spdm_result = Some(2);
    let d = g.op(TIO_OP_BIND);
    assert_eq!((d.result, d.fw_err), (RESULT_FW_ERR, 0x16));
    // The exchange failed: SPDM_ERROR.
    g.rig.host.spdm_result = Some(3);
    let d = g.op(TIO_OP_BIND);
    assert_eq!((d.result, d.fw_err), (RESULT_FW_ERR, 0x33));
    g.rig.host.spdm_result = None;
    g.bind();
}

#[test]
fn fault_tdi_error_after() {
    let mut g = G::new(vec!["tdi-error-after:2".parse().unwrap()]);
    g.bind();
    // Before RUN TDI_INFOs do not count.
    for _ in 0..3 {
        assert_eq!(g.info(INFO_STATE, 0).0.param, TDI_STATE_CONFIG_LOCKED);
    }
    assert_eq!(g.op(TIO_OP_RUN).result, RESULT_DONE);
    assert_eq!(g.info(INFO_STATE, 0).0.param, TDI_STATE_RUN);
    assert_eq!(g.info(INFO_STATE, 0).0.param, TDI_STATE_RUN);
    assert!(
        g.rig.logged("fault tdi-error-after:2"),
        "{}",
        g.rig.log_text()
    );
    let (d, r) = g.info(INFO_STATE, 0);
    assert_eq!(d.param, TDI_STATE_ERROR, "{}", g.rig.log_text());
    assert_eq!(r.unwrap().status, TDI_STATUS_BOUND);
    assert_eq!(g.rig.host.ep_go(0), [0; 6]);
    // STOP and UNBIND recover; a new BIND programs fresh keys.
    assert_eq!(
        g.op(TIO_OP_STOP).result,
        RESULT_DONE,
        "{}",
        g.rig.log_text()
    );
    assert_eq!(g.op(TIO_OP_UNBIND).result, RESULT_DONE);
    g.bind();
    assert_eq!(g.rig.host.ep_go(0), [1; 6]);
}

#[test]
fn fault_tdi_error_after_other_device_is_ignored() {
    let mut g = G::new(vec!["tdi-error-after:1@00:01.0".parse().unwrap()]);
    g.bind();
    assert_eq!(g.op(TIO_OP_RUN).result, RESULT_DONE);
    for _ in 0..3 {
        assert_eq!(g.info(INFO_STATE, 0).0.param, TDI_STATE_RUN);
    }
}

#[test]
fn fault_tamper() {
    for (fault, kind) in [
        ("tamper:certs", BlobKind::Certificates),
        ("tamper:meas", BlobKind::Measurements),
        ("tamper:report", BlobKind::Report),
    ] {
        let mut g = G::new(vec![fault.parse().unwrap()]);
        assert_eq!(
            fault.parse::<FaultSpec>().unwrap().fault,
            Fault::Tamper(kind)
        );
        g.bind();
        let (d, r) = g.info(INFO_CERTS | INFO_MEAS | INFO_REPORT, 16);
        assert_eq!(d.result, RESULT_DONE);
        let r = r.unwrap();
        let data = g.data(16 * 4096);
        let b = parse_blobs(&data).unwrap();
        for (k, digest) in [
            (BlobKind::Certificates, r.certs_digest),
            (BlobKind::Measurements, r.meas_digest),
            (BlobKind::Report, r.report_digest),
        ] {
            let ok = sha384(b.get(k).unwrap()) == digest;
            assert_eq!(ok, k != kind, "{fault}: {k:?}");
        }
    }
}

thread_local! {
    /// One bound, running TDI shared by the random cases (proptest runs them on one thread).
    static SHARED: std::cell::RefCell<Option<G>> = const { std::cell::RefCell::new(None) };
}

fn with_shared<T>(f: impl FnOnce(&mut G) -> T) -> T {
    SHARED.with(|c| {
        let mut c = c.borrow_mut();
        let g = c.get_or_insert_with(|| {
            let mut g = G::default();
            g.bind();
            assert_eq!(g.op(TIO_OP_RUN).result, RESULT_DONE);
            g
        });
        f(g)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Random GUEST payloads (request pages of random bytes, sometimes with a valid header):
    /// the model answers, never panics, and the protocol never breaks.
    #[test]
    fn random_guest_requests_never_crash(
        exit in prop::sample::select(vec![EXIT_GUEST_REQUEST, EXIT_TIO_OP, 0, u32::MAX]),
        sbdf in prop_oneof![Just(u32::from(RID)), any::<u32>()],
        param in prop_oneof![0u64..16, any::<u64>()],
        npages in 0u32..4,
        msg_type in prop::sample::select(vec![0x81u8, 0x82, 0x83, 0x84, 0x01, 0x00, 0xFF]),
        fix_header in any::<bool>(),
        tdi_is_ours in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..200),
        gpa_ok in any::<bool>(),
    ) {
        // TIO_OP with a random action could unbind the TDI: only the harmless ones.
        let param = if exit == EXIT_TIO_OP { param % 2 * 2 + 4 } else { param };
        let mut page = vec![0u8; 0x1000];
        page[0x60..0x60 + body.len()].copy_from_slice(&body);
        if fix_header {
            let size = expected_payload_size(msg_type).unwrap_or(body.len());
            MsgHeader { seqno: 1, msg_type, msg_sz: size as u16 }.encode(&mut page).unwrap();
            if tdi_is_ours {
                page[0x60..0x68].copy_from_slice(&TDI.to_le_bytes());
            }
        } else {
            for (d, s) in page.iter_mut().zip(body.iter().cycle()).take(0x60) {
                *d = *s;
            }
        }
        let d = with_shared(|g| {
            g.rig.host.put(REQ_PAGE, &page);
            g.guest(GuestReq {
            exit_code: exit,
            sbdf,
            req_gpa: if gpa_ok { REQ_PAGE } else { MEM as u64 - 8 },
            rsp_gpa: RSP_PAGE,
            data_gpa: DATA,
            data_npages: npages,
            param,
            })
        });
        prop_assert!(matches!(d.result, 0..=3));
    }
}

/// GUEST over the socket: serve() takes it next to COMMAND; DEVICE_SPDM carries a whole DOE
/// object after `u16 requester_id, u8 segment, u8 reserved`; GUEST_DONE ends it.
#[test]
fn guest_over_the_socket() {
    use coco_psp::psp::{serve, Psp};
    use coco_psp::wire::{read_msg, write_msg, OP_DATA, OP_DEVICE_SPDM, OP_GUEST, OP_GUEST_DONE};
    use coco_psp::Logger;
    use std::net::{TcpListener, TcpStream};

    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let (log, _) = Logger::capture();
        let mut psp = Psp::new(Vec::<Fault>::new(), log.clone());
        psp.set_guest_tdis(&[RID]);
        serve(s, &mut psp, &log)
    });
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let bind = |sbdf: u32| {
        GuestReq {
            exit_code: EXIT_TIO_OP,
            sbdf,
            param: TIO_OP_BIND,
            ..GuestReq::default()
        }
        .encode()
    };
    // Not assigned: no service request, FW_ERR 0x16.
    write_msg(&mut s, OP_GUEST, &bind(0x0200)).unwrap();
    let (op, p) = read_msg(&mut s, 1 << 21).unwrap().unwrap();
    assert_eq!(op, OP_GUEST_DONE);
    let d = GuestDone::parse(&p).unwrap();
    assert_eq!((d.result, d.fw_err), (RESULT_FW_ERR, 0x16));
    // Assigned, but QEMU has no responder for it: FW_ERR 0x16.
    write_msg(&mut s, OP_GUEST, &bind(u32::from(RID))).unwrap();
    let (op, p) = read_msg(&mut s, 1 << 21).unwrap().unwrap();
    assert_eq!(op, OP_DEVICE_SPDM);
    assert_eq!(&p[..4], &[0x00, 0x01, 0, 0]);
    let o = coco_doe::decode_object(&p[4..]).unwrap();
    assert!(o.header.is(coco_doe::PCI_SIG_VENDOR_ID, 1));
    assert_eq!(o.payload[1], 0x84, "GET_VERSION");
    write_msg(&mut s, OP_DATA, &2u32.to_le_bytes()).unwrap();
    let (op, p) = read_msg(&mut s, 1 << 21).unwrap().unwrap();
    assert_eq!(op, OP_GUEST_DONE);
    let d = GuestDone::parse(&p).unwrap();
    assert_eq!((d.result, d.fw_err), (RESULT_FW_ERR, 0x16));
    // A GUEST of the wrong size breaks the protocol.
    write_msg(&mut s, OP_GUEST, &[0; 47]).unwrap();
    assert!(t.join().unwrap().is_err());
}

#[test]
fn guest_done_roundtrip() {
    let d = GuestDone {
        result: 1,
        data_npages: 3,
        param: 0x1100,
        fw_err: 0x33,
    };
    assert_eq!(GuestDone::parse(&d.encode()), Some(d));
    let q = GuestReq {
        exit_code: EXIT_GUEST_REQUEST,
        sbdf: 0x100,
        req_gpa: 1,
        rsp_gpa: 2,
        data_gpa: 3,
        data_npages: 4,
        param: 5,
    };
    assert_eq!(GuestReq::parse(&q.encode()), Some(q));
    let b = q.encode();
    assert_eq!(&b[32..36], &4u32.to_le_bytes());
    assert_eq!(&b[40..48], &5u64.to_le_bytes());
}
