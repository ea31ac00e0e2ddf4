//! The guest side of the firmware (sev-tio-guest.rst, "TIO_GUEST_REQUEST messages", "TIO_OP",
//! "The firmware model (guest side)"): the functions assigned to the guest (`--guest-tdi`),
//! TIO_OP (BIND, UNBIND, RUN, STOP) and TIO_GUEST_REQUEST (TDI_INFO, MMIO_VALIDATE,
//! SDTE_WRITE).
//!
//! The model plays the host and the TSM at once: it talks SPDM to the device itself, each
//! message one whole DOE data object sent through QEMU (DEVICE_SPDM), with the same requester
//! as the host side ([`crate::requester`]); there is no root port in the guest's emulation, so
//! only the endpoint's IDE keys are programmed. Every request runs to completion inside its
//! GUEST exchange: no worker thread, no relay through a host kernel.

use std::collections::HashSet;

use coco_doe::{decode_object, encode_object, object_size, PCI_SIG_VENDOR_ID};
use coco_sevtio::guest::*;
use coco_sevtio::SpdmDataType;
use coco_spdm::auth::{SPDM_HASH_SHA256, SPDM_HASH_SHA384};
use coco_tdisp::{parse_interface_report, InterfaceId, TdiState, TDISP_LOCK_NO_FW_UPDATE};
use sha2::{Digest, Sha384};

use crate::requester::{self, BindParams, ConnectParams, Fail, Link, Session};
use crate::wire::{
    spdm_result_name, Fatal, GuestDone, GuestReq, Platform, RootPortKey, DMA_MAX,
    SPDM_RESULT_NO_FUNCTION, SPDM_RESULT_NO_RESPONDER,
};
use crate::{Fault, FaultSpec, Logger};

/// FW_ERR INVALID_PARAM: a function not assigned to the guest, or one QEMU cannot reach.
pub const FW_INVALID_PARAM: u64 = 0x16;
/// FW_ERR SPDM_ERROR: an SPDM or TDISP failure.
pub const FW_SPDM_ERROR: u64 = 0x33;
/// FW_ERR INVALID_TDI_STATE (SEV status 0x3C).
pub const FW_INVALID_TDI_STATE: u64 = 0x3C;
/// FW_ERR INVALID_ADDRESS (SEV status 0x09): a DMA QEMU refused.
pub const FW_INVALID_ADDRESS: u64 = 0x09;

/// The IDE stream the guest side keys on the endpoint.
const STREAM_ID: u8 = 0;
/// The certificate slot of the guest side's session.
const CERT_SLOT: u8 = 0;

/// A device the guest side connected.
struct Conn {
    /// `None` once lost (a failed exchange left the session unusable).
    session: Option<Session>,
    /// The slot's chain as GET_CERTIFICATE returned it.
    chain: Vec<u8>,
    /// TDI_INFO's `spdm_algos`.
    algos: u64,
    /// The endpoint's keys were stopped (fault tdi-error-after): the next BIND programs
    /// fresh ones.
    keys_stopped: bool,
}

/// Where a bound TDI is, as the model drove it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// CONFIG_LOCKED after BIND.
    Locked,
    /// RUN after RUN.
    Run,
    /// CONFIG_UNLOCKED after STOP (still bound to the guest until UNBIND).
    Stopped,
}

/// A TDI bound to the guest.
struct Binding {
    report: Vec<u8>,
    nonce: [u8; 32],
    phase: Phase,
    /// TDI_INFOs since RUN (fault tdi-error-after).
    infos_after_run: u32,
    sdte: Option<[u8; SDTE_SIZE]>,
    /// Validated subranges: (range index, first page, pages).
    validated: HashSet<(u16, u64, u32)>,
}

/// One function assigned to the guest.
struct GuestTdi {
    rid: u16,
    conn: Option<Conn>,
    bound: Option<Binding>,
}

/// The guest side's state.
#[derive(Default)]
pub struct Guest {
    tdis: Vec<GuestTdi>,
}

impl std::fmt::Debug for Guest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rids: Vec<String> = self.tdis.iter().map(|t| crate::bdf(0, t.rid)).collect();
        write!(f, "Guest {{ tdis: {rids:?} }}")
    }
}

/// The requester's transport on the guest side: DEVICE_SPDM through QEMU.
struct DoeLink<'a> {
    plat: &'a mut dyn Platform,
    rid: u16,
    /// The platform connection broke.
    fatal: Option<Fatal>,
    /// QEMU answered 1 or 2: the function cannot be reached.
    unreachable: bool,
}

impl Link for DoeLink<'_> {
    fn exchange(
        &mut self,
        what: &str,
        ty: SpdmDataType,
        msg: &[u8],
    ) -> Result<(SpdmDataType, Vec<u8>), Fail> {
        let bad = |why: String| Fail::Device(format!("{what}: {why}"));
        let size = object_size(msg.len()).map_err(|e| bad(format!("DOE object: {e:?}")))?;
        let mut obj = vec![0u8; size];
        encode_object(PCI_SIG_VENDOR_ID, ty.doe_type(), msg, &mut obj)
            .map_err(|e| bad(format!("DOE object: {e:?}")))?;
        let rsp = match self.plat.device_spdm(self.rid, 0, &obj) {
            Err(f) => {
                self.fatal = Some(f);
                return Err(Fail::Abandoned);
            }
            Ok(Err(code)) => {
                if code == SPDM_RESULT_NO_FUNCTION || code == SPDM_RESULT_NO_RESPONDER {
                    self.unreachable = true;
                }
                return Err(bad(format!(
                    "DEVICE_SPDM: {} ({code})",
                    spdm_result_name(code)
                )));
            }
            Ok(Ok(r)) => r,
        };
        let o = decode_object(&rsp).map_err(|e| bad(format!("answer's DOE object: {e:?}")))?;
        let rty = SpdmDataType::from_u8(o.header.object_type)
            .filter(|_| o.header.is(PCI_SIG_VENDOR_ID, o.header.object_type))
            .ok_or_else(|| {
                bad(format!(
                    "answer is DOE type {:#x}, not SPDM",
                    o.header.object_type
                ))
            })?;
        Ok((rty, o.payload.to_vec()))
    }

    fn root_port_key(&mut self, _req: RootPortKey) -> Result<u32, Fail> {
        Err(Fail::RootPort(
            "no root port in the guest's emulation".into(),
        ))
    }
}

/// How a request ended, before GUEST_DONE.
fn result(result: u32) -> GuestDone {
    GuestDone {
        result,
        ..GuestDone::default()
    }
}

fn fw_err(code: u64) -> GuestDone {
    GuestDone {
        result: RESULT_FW_ERR,
        fw_err: code,
        ..GuestDone::default()
    }
}

/// A response payload to write, and what GUEST_DONE says.
struct Answer {
    msg_type: u8,
    payload: Vec<u8>,
    done: GuestDone,
}

/// Either a response to write or an early end (no response).
type Handled = Result<Result<Answer, (GuestDone, String)>, Fatal>;

fn answer(msg_type: u8, payload: &[u8], param: u64) -> Handled {
    Ok(Ok(Answer {
        msg_type,
        payload: payload.to_vec(),
        done: GuestDone {
            param,
            ..GuestDone::default()
        },
    }))
}

fn early(done: GuestDone, why: impl Into<String>) -> Handled {
    Ok(Err((done, why.into())))
}

fn sha384(b: &[u8]) -> [u8; DIGEST_SIZE] {
    Sha384::digest(b).into()
}

fn spdm_algos(s: &Session) -> u64 {
    SpdmAlgos::from_spdm(s.dhe, s.aead, s.asym, s.hash).encode()
}

impl Guest {
    /// The guest side with the functions (Requester IDs, segment 0) assigned to the guest.
    pub fn new(rids: &[u16]) -> Guest {
        let mut tdis: Vec<GuestTdi> = Vec::new();
        for &rid in rids {
            if !tdis.iter().any(|t| t.rid == rid) {
                tdis.push(GuestTdi {
                    rid,
                    conn: None,
                    bound: None,
                });
            }
        }
        Guest { tdis }
    }

    /// Whether the function `rid`'s TDI is bound to the guest (tests).
    pub fn is_bound(&self, rid: u16) -> bool {
        self.tdis.iter().any(|t| t.rid == rid && t.bound.is_some())
    }

    /// The SDTE the guest wrote for `rid`'s TDI (tests).
    pub fn sdte(&self, rid: u16) -> Option<[u8; SDTE_SIZE]> {
        self.tdis
            .iter()
            .find(|t| t.rid == rid)
            .and_then(|t| t.bound.as_ref())
            .and_then(|b| b.sdte)
    }

    /// Runs one guest channel request; the GUEST_DONE to send. `Err`: the platform connection
    /// broke.
    pub fn handle(
        &mut self,
        plat: &mut dyn Platform,
        req: &GuestReq,
        faults: &[FaultSpec],
        log: &Logger,
    ) -> Result<GuestDone, Fatal> {
        let (done, what, note) = match req.exit_code {
            EXIT_TIO_OP => {
                let what = format!("TIO_OP {} of {:x}", tio_op_name(req.param), req.sbdf);
                let (d, n) = self.tio_op(plat, req, log)?;
                (d, what, n)
            }
            EXIT_GUEST_REQUEST => self.guest_request(plat, req, faults, log)?,
            other => (
                result(RESULT_MALFORMED),
                format!("guest exit {other:#x}"),
                "unknown exit code".to_string(),
            ),
        };
        let sep = if note.is_empty() { "" } else { ": " };
        log.line(&format!(
            "guest {what} -> RESULT {} ({}){}{sep}{note}",
            done.result,
            result_name(done.result),
            if done.result == RESULT_FW_ERR {
                format!(", FW_ERR {:#x}", done.fw_err)
            } else {
                String::new()
            }
        ));
        Ok(done)
    }

    fn tdi_index(&self, tdi_id: u64) -> Option<usize> {
        self.tdis.iter().position(|t| tdi_id_for(t.rid) == tdi_id)
    }

    /// Runs `f` with the TDI's session and a DEVICE_SPDM link; maps its failure to FW_ERR
    /// (0x16 when QEMU cannot reach the function, 0x33 otherwise). The session is kept
    /// unless the platform broke.
    fn with_session<T>(
        plat: &mut dyn Platform,
        tdi: &mut GuestTdi,
        f: impl FnOnce(&mut DoeLink<'_>, &mut Session) -> Result<T, Fail>,
    ) -> Result<Result<T, (GuestDone, String)>, Fatal> {
        let Some(conn) = tdi.conn.as_mut() else {
            return Ok(Err((fw_err(FW_SPDM_ERROR), "device not connected".into())));
        };
        let Some(mut s) = conn.session.take() else {
            return Ok(Err((fw_err(FW_SPDM_ERROR), "the session is lost".into())));
        };
        let mut link = DoeLink {
            plat,
            rid: tdi.rid,
            fatal: None,
            unreachable: false,
        };
        let r = f(&mut link, &mut s);
        if let Some(fatal) = link.fatal.take() {
            return Err(fatal);
        }
        conn.session = Some(s);
        Ok(r.map_err(|e| fail_done(&e, link.unreachable)))
    }

    fn tio_op(
        &mut self,
        plat: &mut dyn Platform,
        req: &GuestReq,
        log: &Logger,
    ) -> Result<(GuestDone, String), Fatal> {
        let rid = u16::try_from(req.sbdf & 0xFFFF).unwrap_or(0);
        let Some(tdi) = self
            .tdis
            .iter_mut()
            .find(|t| req.sbdf >> 16 == 0 && t.rid == rid)
        else {
            return Ok((
                fw_err(FW_INVALID_PARAM),
                "function not assigned to the guest (--guest-tdi)".into(),
            ));
        };
        let tdi_id = tdi_id_for(rid);
        let iface = InterfaceId::from_rid(rid);
        let r = match req.param {
            TIO_OP_BIND => {
                if tdi.bound.is_some() {
                    return Ok((
                        GuestDone {
                            param: tdi_id,
                            ..GuestDone::default()
                        },
                        "already bound".into(),
                    ));
                }
                if let Err(e) = connect(plat, tdi, log)? {
                    return Ok(e);
                }
                let p = BindParams {
                    iface,
                    lock_flags: TDISP_LOCK_NO_FW_UPDATE,
                    stream_id: STREAM_ID,
                    run: false,
                };
                match Self::with_session(plat, tdi, |l, s| requester::bind_tdi(l, s, &p))? {
                    Ok(b) => {
                        let note = format!(
                            "TDI {tdi_id:#x} bound: {}, interface report of {} bytes",
                            b.state.name(),
                            b.report.len()
                        );
                        tdi.bound = Some(Binding {
                            report: b.report,
                            nonce: b.nonce,
                            phase: Phase::Locked,
                            infos_after_run: 0,
                            sdte: None,
                            validated: HashSet::new(),
                        });
                        Ok((
                            GuestDone {
                                param: tdi_id,
                                ..GuestDone::default()
                            },
                            note,
                        ))
                    }
                    Err(e) => Err(e),
                }
            }
            TIO_OP_RUN => {
                let Some(nonce) = tdi
                    .bound
                    .as_ref()
                    .filter(|b| b.phase == Phase::Locked)
                    .map(|b| b.nonce)
                else {
                    return Ok((
                        fw_err(FW_INVALID_TDI_STATE),
                        "TDI not bound and CONFIG_LOCKED".into(),
                    ));
                };
                Self::with_session(plat, tdi, |l, s| s.tdi_start(l, iface, &nonce))?.map(|()| {
                    if let Some(b) = tdi.bound.as_mut() {
                        b.phase = Phase::Run;
                        b.infos_after_run = 0;
                    }
                    (GuestDone::default(), "RUN".into())
                })
            }
            TIO_OP_STOP => {
                if !tdi
                    .bound
                    .as_ref()
                    .is_some_and(|b| b.phase != Phase::Stopped)
                {
                    return Ok((
                        fw_err(FW_INVALID_TDI_STATE),
                        "TDI not bound or already stopped".into(),
                    ));
                }
                Self::with_session(plat, tdi, |l, s| s.tdi_stop(l, iface))?.map(|()| {
                    if let Some(b) = tdi.bound.as_mut() {
                        b.phase = Phase::Stopped;
                        b.validated.clear();
                    }
                    (GuestDone::default(), "CONFIG_UNLOCKED, still bound".into())
                })
            }
            TIO_OP_UNBIND => {
                let Some(b) = tdi.bound.take() else {
                    return Ok((GuestDone::default(), "not bound".into()));
                };
                let mut note = format!("TDI {tdi_id:#x} unbound");
                if b.phase != Phase::Stopped {
                    if let Err((_, why)) =
                        Self::with_session(plat, tdi, |l, s| s.tdi_stop(l, iface))?
                    {
                        note.push_str(&format!(" (STOP_INTERFACE failed: {why})"));
                    }
                }
                Ok((GuestDone::default(), note))
            }
            other => Err((
                result(RESULT_MALFORMED),
                format!("unknown TIO_OP action {other}"),
            )),
        };
        Ok(r.unwrap_or_else(|e| e))
    }

    fn guest_request(
        &mut self,
        plat: &mut dyn Platform,
        req: &GuestReq,
        faults: &[FaultSpec],
        log: &Logger,
    ) -> Result<(GuestDone, String, String), Fatal> {
        let Some(page) = plat.dma_read(req.req_gpa, MSG_PAGE_SIZE)? else {
            return Ok((
                result(RESULT_MALFORMED),
                "TIO_GUEST_REQUEST".into(),
                "request page unreadable".into(),
            ));
        };
        let (h, payload) = match MsgHeader::parse(&page) {
            Ok(x) => x,
            Err(e) => {
                return Ok((
                    result(RESULT_MALFORMED),
                    "TIO_GUEST_REQUEST".into(),
                    format!("request: {e}"),
                ))
            }
        };
        let what = format!(
            "TIO_GUEST_REQUEST {} seqno {}",
            msg_type_name(h.msg_type),
            h.seqno
        );
        let handled = match h.msg_type {
            MSG_TDI_INFO_REQ => self.tdi_info(plat, req, payload, faults, log)?,
            MSG_MMIO_VALIDATE_REQ => self.mmio_validate(payload)?,
            MSG_SDTE_WRITE_REQ => self.sdte_write(payload)?,
            _ => early(result(RESULT_MALFORMED), "not a request the model serves")?,
        };
        let a = match handled {
            Ok(a) => a,
            Err((done, why)) => return Ok((done, what, why)),
        };
        let mut rsp = vec![0u8; MSG_PAGE_SIZE];
        if let Err(e) = encode_msg(&mut rsp, h.seqno.wrapping_add(1), a.msg_type, &a.payload) {
            return Ok((fw_err(FW_INVALID_PARAM), what, format!("response: {e}")));
        }
        if !plat.dma_write(req.rsp_gpa, &rsp)? {
            return Ok((
                fw_err(FW_INVALID_ADDRESS),
                what,
                "response page refused".into(),
            ));
        }
        Ok((a.done, what, String::new()))
    }

    fn tdi_info(
        &mut self,
        plat: &mut dyn Platform,
        req: &GuestReq,
        payload: &[u8],
        faults: &[FaultSpec],
        log: &Logger,
    ) -> Handled {
        let Ok(q) = TdiInfoReq::parse(payload) else {
            return early(result(RESULT_MALFORMED), "TDI_INFO payload");
        };
        let mut rsp = TdiInfoRsp {
            tdi_id: q.tdi_id,
            ..TdiInfoRsp::default()
        };
        let Some(i) = self.tdi_index(q.tdi_id) else {
            rsp.status = TDI_STATUS_INVALID;
            rsp.tdi_id = 0;
            return answer(MSG_TDI_INFO_RSP, &rsp.encode(), 0);
        };
        let Some(tdi) = self.tdis.get_mut(i) else {
            return early(result(RESULT_MALFORMED), "TDI vanished");
        };
        if tdi.bound.is_none() {
            rsp.status = TDI_STATUS_UNBOUND;
            return answer(MSG_TDI_INFO_RSP, &rsp.encode(), TDI_STATE_CONFIG_UNLOCKED);
        }
        let rid = tdi.rid;
        let iface = InterfaceId::from_rid(rid);
        let flags = req.param;
        let mut param = 0;
        if flags & INFO_STATE != 0 {
            match Self::with_session(plat, tdi, |l, s| s.tdi_state(l, iface))? {
                Ok(st) => param = u64::from(st.as_u8()),
                Err(e) => return Ok(Err(e)),
            }
        }
        let mut meas = None;
        if flags & INFO_MEAS != 0 {
            let mut nonce = [0u8; NONCE_SIZE];
            if req.data_npages > 0 {
                match plat.dma_read(req.data_gpa, NONCE_SIZE)? {
                    Some(n) => nonce.copy_from_slice(n.get(..NONCE_SIZE).unwrap_or(&[0; 32])),
                    None => return early(fw_err(FW_INVALID_ADDRESS), "nonce unreadable"),
                }
            }
            match Self::with_session(plat, tdi, |l, s| {
                requester::measurements(l, s, nonce, false)
            })? {
                Ok(ev) => meas = Some(ev.encode()),
                Err(e) => return Ok(Err(e)),
            }
        }
        let (Some(conn), Some(b)) = (tdi.conn.as_mut(), tdi.bound.as_mut()) else {
            return early(fw_err(FW_SPDM_ERROR), "device not connected");
        };
        let mut blobs: Vec<(BlobKind, &[u8])> = Vec::new();
        if flags & INFO_CERTS != 0 {
            blobs.push((BlobKind::Certificates, &conn.chain));
        }
        if let Some(m) = &meas {
            blobs.push((BlobKind::Measurements, m));
        }
        if flags & INFO_REPORT != 0 {
            blobs.push((BlobKind::Report, &b.report));
        }
        if !blobs.is_empty() {
            let need = blobs_size(&blobs).unwrap_or(usize::MAX);
            let pages = pages_for(need);
            let have = usize::try_from(req.data_npages).unwrap_or(0);
            if pages > have {
                return early(
                    GuestDone {
                        result: RESULT_MORE_PAGES,
                        data_npages: u32::try_from(pages).unwrap_or(u32::MAX),
                        ..GuestDone::default()
                    },
                    format!("the blobs need {need} bytes: {pages} pages, not {have}"),
                );
            }
            let mut out = vec![0u8; need];
            if let Err(e) = encode_blobs(&mut out, &blobs) {
                return early(fw_err(FW_INVALID_PARAM), format!("blobs: {e}"));
            }
            let mut off = blob_table_size(blobs.len());
            for (k, blob) in &blobs {
                let d = sha384(blob);
                match k {
                    BlobKind::Certificates => rsp.certs_digest = d,
                    BlobKind::Measurements => rsp.meas_digest = d,
                    BlobKind::Report => rsp.report_digest = d,
                }
                if has(faults, Fault::Tamper(*k), rid) && !blob.is_empty() {
                    if let Some(x) = out.get_mut(off) {
                        *x ^= 0xFF;
                        log.line(&format!("fault tamper:{}: a byte flipped", k.name()));
                    }
                }
                off = off.saturating_add(blob.len());
            }
            for (i, chunk) in out.chunks(DMA_MAX).enumerate() {
                let at = req
                    .data_gpa
                    .saturating_add(u64::try_from(i.saturating_mul(DMA_MAX)).unwrap_or(u64::MAX));
                if !plat.dma_write(at, chunk)? {
                    return early(fw_err(FW_INVALID_ADDRESS), "data pages refused");
                }
            }
        }
        if meas.is_some() {
            rsp.meas_flags = MEAS_FLAG_DIGEST_VALID | MEAS_FLAG_DIGEST_FRESH;
        }
        rsp.status = TDI_STATUS_BOUND;
        rsp.lock_flags = u32::from(TDISP_LOCK_NO_FW_UPDATE);
        rsp.spdm_algos = conn.algos;
        rsp.report_count = 1;
        if b.phase == Phase::Run {
            b.infos_after_run = b.infos_after_run.saturating_add(1);
            let n = b.infos_after_run;
            let trip = faults
                .iter()
                .any(|s| s.fault == Fault::TdiErrorAfter(n) && s.device.is_none_or(|d| d == rid));
            if trip {
                match Self::with_session(plat, tdi, |l, s| {
                    requester::stop_endpoint_keys(l, s, STREAM_ID)
                })? {
                    Ok(()) => {
                        log.line(&format!(
                            "fault tdi-error-after:{n}: the endpoint's IDE keys stopped"
                        ));
                        if let Some(c) = tdi.conn.as_mut() {
                            c.keys_stopped = true;
                        }
                    }
                    Err((_, why)) => log.line(&format!(
                        "fault tdi-error-after:{n}: K_SET_STOP failed: {why}"
                    )),
                }
            }
        }
        answer(MSG_TDI_INFO_RSP, &rsp.encode(), param)
    }

    fn mmio_validate(&mut self, payload: &[u8]) -> Handled {
        let Ok(q) = MmioValidateReq::parse(payload) else {
            return early(result(RESULT_MALFORMED), "MMIO_VALIDATE payload");
        };
        let mut rsp = MmioValidateRsp {
            tdi_id: q.tdi_id,
            status: MMIO_STATUS_SUCCESS,
            subrange_base: q.subrange_base,
            subrange_page_count: q.subrange_page_count,
            range_offset: q.range_offset,
            flags: 0,
            range_id: q.range_id,
        };
        rsp.status = match self.tdi_index(q.tdi_id).and_then(|i| self.tdis.get_mut(i)) {
            None => MMIO_STATUS_INVALID_TDI,
            Some(t) => match t.bound.as_mut() {
                Some(b) if b.phase == Phase::Run => {
                    let status = check_subrange(&b.report, &q);
                    if status == MMIO_STATUS_SUCCESS {
                        let key = (q.range_id, q.subrange_base, q.subrange_page_count);
                        let want = q.flags & MMIO_FLAG_VALIDATED != 0;
                        let was = if want {
                            !b.validated.insert(key)
                        } else {
                            b.validated.remove(&key)
                        };
                        if was != want {
                            rsp.flags = MMIO_FLAG_CHANGED;
                        }
                    }
                    status
                }
                _ => MMIO_STATUS_TDI_UNBOUND,
            },
        };
        answer(MSG_MMIO_VALIDATE_RSP, &rsp.encode(), 0)
    }

    fn sdte_write(&mut self, payload: &[u8]) -> Handled {
        let Ok(q) = SdteWriteReq::parse(payload) else {
            return early(result(RESULT_MALFORMED), "SDTE_WRITE payload");
        };
        if !q.valid() {
            return early(result(RESULT_MALFORMED), "SDTE without V (bit 0)");
        }
        let mut rsp = SdteWriteRsp {
            tdi_id: q.tdi_id,
            status: SDTE_STATUS_SUCCESS,
        };
        rsp.status = match self.tdi_index(q.tdi_id).and_then(|i| self.tdis.get_mut(i)) {
            None => SDTE_STATUS_INVALID_TDI,
            Some(t) => match t.bound.as_mut() {
                Some(b) => {
                    b.sdte = Some(q.sdte);
                    SDTE_STATUS_SUCCESS
                }
                None => SDTE_STATUS_TDI_NOT_BOUND,
            },
        };
        answer(MSG_SDTE_WRITE_RSP, &rsp.encode(), 0)
    }
}

/// Whether fault `f` applies to the function `rid`.
fn has(faults: &[FaultSpec], f: Fault, rid: u16) -> bool {
    faults
        .iter()
        .any(|s| s.fault == f && s.device.is_none_or(|d| d == rid))
}

/// The MMIO_VALIDATE status of a subrange against the report's range `range_id` (an index
/// into the report's MMIO ranges; single level: guest page = reported page).
fn check_subrange(report: &[u8], q: &MmioValidateReq) -> u16 {
    let Some(r) = parse_interface_report(report)
        .ok()
        .and_then(|rep| rep.range(usize::from(q.range_id)))
    else {
        return MMIO_STATUS_NOT_REPORTED;
    };
    let pages = u64::from(r.number_of_pages);
    let count = u64::from(q.subrange_page_count);
    let range_end = r.first_page.checked_add(pages);
    let sub_end = q.subrange_base.checked_add(count);
    let offset_end = u64::from(q.range_offset).checked_add(count);
    let inside = matches!((range_end, sub_end, offset_end),
        (Some(re), Some(se), Some(oe))
            if count > 0 && q.subrange_base >= r.first_page && se <= re && oe <= pages);
    if inside {
        MMIO_STATUS_SUCCESS
    } else {
        MMIO_STATUS_OUT_OF_RANGE
    }
}

fn fail_done(f: &Fail, unreachable: bool) -> (GuestDone, String) {
    let why = match f {
        Fail::Device(r) | Fail::RootPort(r) => r.clone(),
        Fail::Abandoned => "abandoned".into(),
    };
    let code = if unreachable {
        FW_INVALID_PARAM
    } else {
        FW_SPDM_ERROR
    };
    (fw_err(code), why)
}

/// Connects the function if it is not (SPDM session, the endpoint's IDE keys of stream 0), or
/// programs fresh keys if a fault stopped them.
fn connect(
    plat: &mut dyn Platform,
    tdi: &mut GuestTdi,
    log: &Logger,
) -> Result<Result<(), (GuestDone, String)>, Fatal> {
    let params = ConnectParams {
        requester_id: tdi.rid,
        segment: 0,
        stream_id: STREAM_ID,
        cert_slot: CERT_SLOT,
        bad_rp_key: false,
        relay_forever: false,
        root_port: false,
        // TDI_INFO's spdm_algos has codes for SHA-256 and SHA-384 only.
        base_hash: SPDM_HASH_SHA256 | SPDM_HASH_SHA384,
    };
    if let Some(c) = tdi.conn.as_ref() {
        if c.session.is_some() && !c.keys_stopped {
            return Ok(Ok(()));
        }
        if c.session.is_some() {
            let r = Guest::with_session(plat, tdi, |l, s| requester::program_ide(l, s, &params))?;
            if r.is_ok() {
                if let Some(c) = tdi.conn.as_mut() {
                    c.keys_stopped = false;
                }
            }
            return Ok(r);
        }
    }
    let mut link = DoeLink {
        plat,
        rid: tdi.rid,
        fatal: None,
        unreachable: false,
    };
    let r = requester::connect(&mut link, &params);
    if let Some(f) = link.fatal.take() {
        return Err(f);
    }
    match r {
        Ok(s) => {
            log.line(&format!(
                "guest: device {} connected: SPDM {:#x}, slot {}, stream {STREAM_ID}",
                crate::bdf(0, tdi.rid),
                s.version.as_byte(),
                s.slot
            ));
            tdi.conn = Some(Conn {
                chain: s.chain.clone(),
                algos: spdm_algos(&s),
                session: Some(s),
                keys_stopped: false,
            });
            Ok(Ok(()))
        }
        Err(e) => Ok(Err(fail_done(&e, link.unreachable))),
    }
}

/// TDISP state code of a [`TdiState`] (for logs and tests).
pub fn state_code(s: TdiState) -> u64 {
    u64::from(s.as_u8())
}
