// SPDX-License-Identifier: GPL-2.0

//! The guest-to-TSM channel of a confidential guest (Documentation/coco/sev-tio-guest.rst):
//! SEV-TIO guest messages (TIO_GUEST_REQUEST: TDI_INFO, MMIO_VALIDATE, SDTE_WRITE) and TIO_OP
//! requests (BIND, UNBIND, RUN, STOP) for one function.
//!
//! How a message reaches the TSM is a [`Transport`]: on hardware the SNP guest request path
//! (which encrypts the message with the VM's VMPCK); in the rig the emulated channel device
//! ([`Emulated`], `coco_guest_chan.c`). Above the transport everything is the same: the
//! message is built and its answer checked with `rust/sevtio`'s guest codec. The response is
//! trusted (it comes from the TSM); the shared data pages are not, and are only believed
//! through the digests of the response.

use crate::{channel::Failure, sevtio_guest as g};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use kernel::{
    ffi::{c_int, c_void},
    prelude::*,
};

/// A page: the request and the response messages each fit one.
const PAGE: usize = 4096;
/// The most data pages a TDI_INFO may ask for (the C side's limit).
const DATA_MAX_PAGES: u32 = 64;
/// Data pages offered at first (the chain, the measurements and the report fit in the rig).
const DATA_FIRST_PAGES: u32 = 8;

/// `struct coco_guest_call` (coco.h).
#[repr(C)]
struct CocoGuestCall {
    exit_code: u32,
    sbdf: u32,
    param: u64,
    req: *const c_void,
    req_len: usize,
    rsp: *mut c_void,
    rsp_len: usize,
    data: *mut c_void,
    data_in_len: usize,
    data_npages: u32,
    data_npages_out: u32,
    result: u32,
    fw_err: u64,
}

impl CocoGuestCall {
    /// A request without message or data pages.
    fn new(exit_code: u32, sbdf: u32, param: u64) -> Self {
        Self {
            exit_code,
            sbdf,
            param,
            req: core::ptr::null(),
            req_len: 0,
            rsp: core::ptr::null_mut(),
            rsp_len: 0,
            data: core::ptr::null_mut(),
            data_in_len: 0,
            data_npages: 0,
            data_npages_out: 0,
            result: 0,
            fw_err: 0,
        }
    }
}

extern "C" {
    fn coco_guest_chan_present() -> bool;
    fn coco_guest_chan_call(call: *mut CocoGuestCall) -> c_int;
}

/// What the TSM answered to one request, below the message.
#[derive(Clone, Copy, Default)]
pub(crate) struct Reply {
    /// 0 done, 1 data pages too few, 2 the firmware refused, 3 malformed, 0xffff no firmware.
    pub(crate) result: u32,
    /// TIO_OP BIND: the TDI ID; TDI_INFO with INFO_STATE: the TDISP state.
    pub(crate) param: u64,
    /// The firmware's error with result 2.
    pub(crate) fw_err: u64,
    /// With result 1: how many data pages are needed.
    pub(crate) pages_needed: u32,
}

/// How guest requests reach the TSM.
pub(crate) trait Transport: Sync {
    /// One TIO_GUEST_REQUEST for function `sbdf`: the message `req` (header and payload) and
    /// the response message into `rsp`; `data` is lent to the host as the shared data pages
    /// (its first `data_in` bytes are sent, all of it comes back as the host left it);
    /// `param` the info flags.
    fn guest_request(
        &self,
        sbdf: u32,
        req: &[u8],
        rsp: &mut [u8],
        data: &mut [u8],
        data_in: usize,
        param: u64,
    ) -> Result<Reply>;

    /// One TIO_OP `action` for function `sbdf`.
    fn tio_op(&self, sbdf: u32, action: u64) -> Result<Reply>;
}

/// The rig's emulated channel device (`coco_guest_chan.c`).
pub(crate) struct Emulated;

impl Emulated {
    /// The emulated channel, if its device was found.
    pub(crate) fn find() -> Option<&'static Emulated> {
        // SAFETY: No requirement; takes the C side's lock.
        unsafe { coco_guest_chan_present() }.then_some(&Emulated)
    }

    fn call(&self, call: &mut CocoGuestCall) -> Result<Reply> {
        // SAFETY: `call` is valid; its buffers are valid for their lengths (the callers'
        // slices) and the C side only uses them during the call.
        kernel::error::to_result(unsafe { coco_guest_chan_call(call) })?;
        Ok(Reply {
            result: call.result,
            param: call.param,
            fw_err: call.fw_err,
            pages_needed: call.data_npages_out,
        })
    }
}

impl Transport for Emulated {
    fn guest_request(
        &self,
        sbdf: u32,
        req: &[u8],
        rsp: &mut [u8],
        data: &mut [u8],
        data_in: usize,
        param: u64,
    ) -> Result<Reply> {
        let npages = u32::try_from(data.len() / PAGE).map_err(|_| EINVAL)?;
        let mut call = CocoGuestCall {
            req: req.as_ptr().cast(),
            req_len: req.len(),
            rsp: rsp.as_mut_ptr().cast(),
            rsp_len: rsp.len(),
            data: data.as_mut_ptr().cast(),
            data_in_len: data_in.min(data.len()),
            data_npages: npages,
            ..CocoGuestCall::new(g::EXIT_GUEST_REQUEST, sbdf, param)
        };
        self.call(&mut call)
    }

    fn tio_op(&self, sbdf: u32, action: u64) -> Result<Reply> {
        self.call(&mut CocoGuestCall::new(g::EXIT_TIO_OP, sbdf, action))
    }
}

/// The message sequence number: odd for requests, the response's is the request's + 1.
static SEQNO: AtomicU64 = AtomicU64::new(1);

fn refused(reply: &Reply, what: &'static str) -> Failure {
    pr_warn!(
        "guest channel: {}: {} (firmware error {:#x})\n",
        what,
        g::result_name(reply.result),
        reply.fw_err
    );
    match reply.result {
        g::RESULT_MORE_PAGES => Failure::new(what, ENOSPC),
        g::RESULT_FW_ERR => Failure::new(what, EACCES),
        g::RESULT_MALFORMED => Failure::new(what, EINVAL),
        _ => Failure::new(what, ENODEV),
    }
}

/// The TSM's answer to TDI_INFO, with the shared data pages as the host left them.
pub(crate) struct TdiInfo {
    /// The response (trusted: it came from the TSM).
    pub(crate) rsp: g::TdiInfoRsp,
    /// The TDI's TDISP state, when asked (INFO_STATE).
    pub(crate) state: Option<u8>,
    /// The shared data pages (untrusted), when blobs were asked.
    pub(crate) data: KVec<u8>,
}

/// Requests for one function over a transport.
pub(crate) struct Channel<'t> {
    t: &'t dyn Transport,
    sbdf: u32,
    /// Counts the requests sent (TIO_OP and TIO_GUEST_REQUEST alike).
    sent: &'t AtomicU32,
}

impl<'t> Channel<'t> {
    /// Requests for the function `sbdf` (segment << 16 | requester ID), counted in `sent`.
    pub(crate) fn new(t: &'t dyn Transport, sbdf: u32, sent: &'t AtomicU32) -> Self {
        Self { t, sbdf, sent }
    }

    /// Runs TIO_OP `action`; the reply's `param`.
    fn op(&self, action: u64, what: &'static str) -> Result<u64, Failure> {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let r = self
            .t
            .tio_op(self.sbdf, action)
            .map_err(|e| Failure::new("the guest channel failed", e))?;
        if r.result != g::RESULT_DONE {
            return Err(refused(&r, what));
        }
        Ok(r.param)
    }

    /// TIO_OP BIND: the host binds the TDI (CONFIG_LOCKED); its TDI ID.
    pub(crate) fn bind(&self) -> Result<u64, Failure> {
        self.op(g::TIO_OP_BIND, "the TSM did not bind the TDI (TIO_OP BIND)")
    }

    /// TIO_OP RUN: START_INTERFACE.
    pub(crate) fn run(&self) -> Result<(), Failure> {
        self.op(g::TIO_OP_RUN, "the TSM did not start the TDI (TIO_OP RUN)")
            .map(|_| ())
    }

    /// TIO_OP STOP: STOP_INTERFACE.
    pub(crate) fn stop(&self) -> Result<(), Failure> {
        self.op(g::TIO_OP_STOP, "the TSM did not stop the TDI (TIO_OP STOP)")
            .map(|_| ())
    }

    /// TIO_OP UNBIND.
    pub(crate) fn unbind(&self) -> Result<(), Failure> {
        self.op(
            g::TIO_OP_UNBIND,
            "the TSM did not unbind the TDI (TIO_OP UNBIND)",
        )
        .map(|_| ())
    }

    /// One TIO_GUEST_REQUEST: `payload` of type `msg_type`; the response's payload into
    /// `out`, checked to be of the matching type and exactly `out`'s size.
    fn message(
        &self,
        msg_type: u8,
        payload: &[u8],
        out: &mut [u8],
        data: &mut [u8],
        data_in: usize,
        param: u64,
    ) -> Result<Reply, Failure> {
        let bad = |why| Failure::new(why, EPROTO);
        self.sent.fetch_add(1, Ordering::Relaxed);
        let seqno = SEQNO.fetch_add(2, Ordering::Relaxed);
        let mut req = KVec::from_elem(0u8, PAGE, GFP_KERNEL)
            .map_err(|_| Failure::new("out of memory", ENOMEM))?;
        let end = g::encode_msg(&mut req, seqno, msg_type, payload)
            .map_err(|_| bad("message too large"))?;
        let mut rsp = KVec::from_elem(0u8, PAGE, GFP_KERNEL)
            .map_err(|_| Failure::new("out of memory", ENOMEM))?;
        let r = self
            .t
            .guest_request(
                self.sbdf,
                req.get(..end).unwrap_or(&[]),
                &mut rsp,
                data,
                data_in,
                param,
            )
            .map_err(|e| Failure::new("the guest channel failed", e))?;
        if r.result != 0 {
            return Ok(r);
        }
        let (h, body) =
            g::MsgHeader::parse(&rsp).map_err(|_| bad("the TSM's response is malformed"))?;
        if h.msg_type != msg_type.wrapping_sub(0x80)
            || h.seqno != seqno.wrapping_add(1)
            || body.len() != out.len()
        {
            return Err(bad("the TSM's response does not answer the request"));
        }
        out.copy_from_slice(body);
        Ok(r)
    }

    /// TDI_INFO of `tdi_id` with the info `flags`; with INFO_MEAS, `nonce` goes first in the
    /// data pages. Offers more data pages when the TSM asks for them.
    pub(crate) fn tdi_info(
        &self,
        tdi_id: u64,
        flags: u64,
        nonce: Option<&[u8; g::NONCE_SIZE]>,
    ) -> Result<TdiInfo, Failure> {
        let req = g::TdiInfoReq { tdi_id }.encode();
        let mut out = [0u8; g::TdiInfoRsp::SIZE];
        let blobs = flags & (g::INFO_CERTS | g::INFO_MEAS | g::INFO_REPORT) != 0;
        let mut pages = if blobs { DATA_FIRST_PAGES } else { 0 };
        loop {
            let size = usize::try_from(pages).unwrap_or(0).saturating_mul(PAGE);
            let mut data = KVec::from_elem(0u8, size, GFP_KERNEL)
                .map_err(|_| Failure::new("out of memory", ENOMEM))?;
            let mut data_in = 0;
            if let (Some(n), Some(d)) = (nonce, data.get_mut(..g::NONCE_SIZE)) {
                d.copy_from_slice(n);
                data_in = g::NONCE_SIZE;
            }
            let r = self.message(
                g::MSG_TDI_INFO_REQ,
                &req,
                &mut out,
                &mut data,
                data_in,
                flags,
            )?;
            match r.result {
                g::RESULT_DONE => {
                    let rsp = g::TdiInfoRsp::parse(&out)
                        .map_err(|_| Failure::new("TDI_INFO response is malformed", EPROTO))?;
                    if rsp.tdi_id != tdi_id {
                        return Err(Failure::new("TDI_INFO answers for another TDI", EPROTO));
                    }
                    let state = (flags & g::INFO_STATE != 0)
                        .then(|| u8::try_from(r.param).unwrap_or(u8::MAX));
                    return Ok(TdiInfo { rsp, state, data });
                }
                g::RESULT_MORE_PAGES
                    if r.pages_needed > pages && r.pages_needed <= DATA_MAX_PAGES =>
                {
                    pages = r.pages_needed;
                }
                _ => return Err(refused(&r, "the TSM refused TDI_INFO")),
            }
        }
    }

    /// MMIO_VALIDATE of `pages` pages from the page frame `pfn`, in the report's range
    /// `range_id`; the TSM's status (0 SUCCESS).
    pub(crate) fn mmio_validate(
        &self,
        tdi_id: u64,
        range_id: u16,
        pfn: u64,
        pages: u32,
    ) -> Result<u16, Failure> {
        let req = g::MmioValidateReq {
            tdi_id,
            subrange_base: pfn,
            subrange_page_count: pages,
            range_offset: 0,
            flags: g::MMIO_FLAG_VALIDATED,
            range_id,
        }
        .encode();
        let mut out = [0u8; g::MmioValidateRsp::SIZE];
        let r = self.message(g::MSG_MMIO_VALIDATE_REQ, &req, &mut out, &mut [], 0, 0)?;
        if r.result != 0 {
            return Err(refused(&r, "the TSM refused MMIO_VALIDATE"));
        }
        let rsp = g::MmioValidateRsp::parse(&out)
            .map_err(|_| Failure::new("MMIO_VALIDATE response is malformed", EPROTO))?;
        if rsp.tdi_id != tdi_id || rsp.range_id != range_id {
            return Err(Failure::new(
                "MMIO_VALIDATE answers for another range",
                EPROTO,
            ));
        }
        Ok(rsp.status)
    }

    /// SDTE_WRITE of a valid secure device table entry (DMA to private memory, the guest's
    /// VMPL 0); the TSM's status (0 SUCCESS).
    pub(crate) fn sdte_write(&self, tdi_id: u64) -> Result<u16, Failure> {
        let mut sdte = [0u8; 64];
        // V, and IR/IW (bits 61 and 62 of the first quadword): reads and writes allowed.
        let q0: u64 = 1 | (1 << 61) | (1 << 62);
        if let Some(d) = sdte.get_mut(..8) {
            d.copy_from_slice(&q0.to_le_bytes());
        }
        let req = g::SdteWriteReq { tdi_id, sdte }.encode();
        let mut out = [0u8; g::SdteWriteRsp::SIZE];
        let r = self.message(g::MSG_SDTE_WRITE_REQ, &req, &mut out, &mut [], 0, 0)?;
        if r.result != 0 {
            return Err(refused(&r, "the TSM refused SDTE_WRITE"));
        }
        let rsp = g::SdteWriteRsp::parse(&out)
            .map_err(|_| Failure::new("SDTE_WRITE response is malformed", EPROTO))?;
        if rsp.tdi_id != tdi_id {
            return Err(Failure::new("SDTE_WRITE answers for another TDI", EPROTO));
        }
        Ok(rsp.status)
    }
}

/// The function `pdev`'s `segment << 16 | requester ID` (segment 0: the guest's functions
/// sit in one segment).
pub(crate) fn sbdf(pdev: &kernel::pci::Device) -> u32 {
    u32::from(pdev.dev_id())
}

#[kunit_tests(coco_guest_channel)]
mod tests {
    use super::*;
    use core::sync::atomic::AtomicU32;

    /// How the fake TSM answers TDI_INFO.
    #[derive(Clone, Copy)]
    enum Mode {
        /// A response with the request's seqno + `seq`, its type - 0x80 + `ty`, for `tdi_id`.
        Answer { seq: u64, ty: u8, tdi_id: u64 },
        /// Always one more data page than offered.
        MorePagesForever,
        /// The firmware refuses.
        FwErr,
    }

    struct Fake {
        mode: Mode,
        calls: AtomicU32,
    }

    impl Fake {
        fn new(mode: Mode) -> Self {
            Self {
                mode,
                calls: AtomicU32::new(0),
            }
        }
    }

    impl Transport for Fake {
        fn guest_request(
            &self,
            _sbdf: u32,
            req: &[u8],
            rsp: &mut [u8],
            data: &mut [u8],
            _data_in: usize,
            param: u64,
        ) -> Result<Reply> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let (h, _) = g::MsgHeader::parse(req).map_err(|_| EINVAL)?;
            match self.mode {
                Mode::MorePagesForever => Ok(Reply {
                    result: g::RESULT_MORE_PAGES,
                    pages_needed: u32::try_from(data.len() / PAGE + 1).unwrap_or(u32::MAX),
                    ..Reply::default()
                }),
                Mode::FwErr => Ok(Reply {
                    result: g::RESULT_FW_ERR,
                    fw_err: 0x3c,
                    ..Reply::default()
                }),
                Mode::Answer { seq, ty, tdi_id } => {
                    let body = g::TdiInfoRsp {
                        tdi_id,
                        ..g::TdiInfoRsp::default()
                    }
                    .encode();
                    let t = h.msg_type.wrapping_sub(0x80).wrapping_add(ty);
                    g::encode_msg(rsp, h.seqno.wrapping_add(seq), t, &body).map_err(|_| EINVAL)?;
                    Ok(Reply {
                        param: param & g::INFO_STATE,
                        ..Reply::default()
                    })
                }
            }
        }

        fn tio_op(&self, sbdf: u32, _action: u64) -> Result<Reply> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            Ok(Reply {
                param: 0x1000 | u64::from(sbdf),
                ..Reply::default()
            })
        }
    }

    fn info(mode: Mode) -> (Result<TdiInfo, Failure>, u32) {
        let fake = Fake::new(mode);
        let sent = AtomicU32::new(0);
        let r = Channel::new(&fake, 0x100, &sent).tdi_info(0x1100, g::INFO_STATE, None);
        assert_eq!(
            sent.load(Ordering::Relaxed),
            fake.calls.load(Ordering::Relaxed)
        );
        (r, fake.calls.load(Ordering::Relaxed))
    }

    /// A well-formed answer is taken, with the state from PARAM.
    #[test]
    fn answer_taken() {
        let (r, calls) = info(Mode::Answer {
            seq: 1,
            ty: 0,
            tdi_id: 0x1100,
        });
        assert_eq!(calls, 1);
        assert_eq!(
            r.map(|i| (i.rsp.tdi_id, i.state)).ok(),
            Some((0x1100, Some(1)))
        );
    }

    /// An answer to another request (seqno, type) or for another TDI is refused.
    #[test]
    fn foreign_answers_refused() {
        for mode in [
            Mode::Answer {
                seq: 3,
                ty: 0,
                tdi_id: 0x1100,
            },
            Mode::Answer {
                seq: 1,
                ty: 1,
                tdi_id: 0x1100,
            },
            Mode::Answer {
                seq: 1,
                ty: 0,
                tdi_id: 0x1101,
            },
        ] {
            let (r, _) = info(mode);
            assert_eq!(r.err().map(|f| f.err), Some(EPROTO));
        }
    }

    /// A TSM that always wants more data pages is given up on, after a bounded number of tries.
    #[test]
    fn more_pages_bounded() {
        let fake = Fake::new(Mode::MorePagesForever);
        let sent = AtomicU32::new(0);
        let r = Channel::new(&fake, 0x100, &sent).tdi_info(0x1100, g::INFO_CERTS, None);
        assert_eq!(r.err().map(|f| f.err), Some(ENOSPC));
        let calls = fake.calls.load(Ordering::Relaxed);
        assert!(calls > 1 && calls <= DATA_MAX_PAGES);
    }

    /// A firmware refusal is an error, and TIO_OP BIND returns the TDI ID.
    #[test]
    fn refusals_and_ops() {
        let (r, _) = info(Mode::FwErr);
        assert_eq!(r.err().map(|f| f.err), Some(EACCES));
        let fake = Fake::new(Mode::FwErr);
        let sent = AtomicU32::new(0);
        assert_eq!(Channel::new(&fake, 0x100, &sent).bind().ok(), Some(0x1100));
        assert_eq!(sent.load(Ordering::Relaxed), 1);
    }
}
