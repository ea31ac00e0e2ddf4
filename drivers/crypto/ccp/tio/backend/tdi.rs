// SPDX-License-Identifier: GPL-2.0

//! The device's TDI through the PSP, for coco.ko's `tdisp`: bind (TIO_TDI_CREATE once,
//! TIO_TDI_BIND: the PSP locks the TDI over its session; TIO_TDI_REPORT: the report, which
//! coco.ko checks against the BARs), unbind (TIO_TDI_UNBIND) and the state (TIO_TDI_STATUS).
//! coco.ko calls these with its per-device IDE lock held; they take the PSP's lock.

use super::{psp, raw_dev, tio_pci_rid, Inner, Psp, TioDev};
use crate::claim::{raw_pci, CocoBackendTdiOps};
use crate::firmware::{Failure, Firmware, SpdmBufs};
use crate::mailbox::{DmaBuf, PAGE};
use crate::sevtio::{self, Command};
use kernel::{
    bindings, device,
    ffi::{c_int, c_void},
    pci,
    prelude::*,
};

/// A TDI context the firmware keeps.
pub(super) struct TioTdi {
    ctx: DmaBuf,
    /// The guest context page (no guest on the host's own binds: recorded only).
    gctx: DmaBuf,
    /// TIO_TDI_BIND succeeded and no TIO_TDI_UNBIND followed.
    bound: bool,
}

/// The TDI operations coco.ko's `tdisp` uses on a device this TSM connected.
pub(super) static TDI_OPS: CocoBackendTdiOps = CocoBackendTdiOps {
    bind: Some(tdi_bind_callback),
    unbind: Some(tdi_unbind_callback),
    state: Some(tdi_state_callback),
};

/// Logs a TDI operation's failure on the function `pdev`.
fn tdi_failed(pdev: *mut bindings::pci_dev, what: &str, f: Failure) -> Error {
    // SAFETY: coco.ko passes the live function whose claim it holds.
    let dev = unsafe { device::Device::from_raw(core::ptr::addr_of_mut!((*pdev).dev)) };
    let dev: &device::Device = dev;
    dev_err!(dev, "sev-tio: TDI {} failed: {}\n", what, f);
    f.err
}

/// # Safety
///
/// `pdev` is a live function; `report` is writable for `len` bytes.
unsafe extern "C" fn tdi_bind_callback(
    pdev: *mut bindings::pci_dev,
    lock_flags: u16,
    report: *mut c_void,
    len: usize,
) -> isize {
    let Some(psp) = psp() else {
        return ENODEV.to_errno() as isize;
    };
    if report.is_null() {
        return EINVAL.to_errno() as isize;
    }
    // SAFETY: Writable for `len` bytes (the caller's guarantee).
    let out = unsafe { core::slice::from_raw_parts_mut(report.cast::<u8>(), len) };
    match psp.tdi_bind(pdev, lock_flags, out) {
        Ok(n) => isize::try_from(n).unwrap_or(isize::MAX),
        Err(f) => tdi_failed(pdev, "bind", f).to_errno() as isize,
    }
}

/// # Safety
///
/// `pdev` is a live function.
unsafe extern "C" fn tdi_unbind_callback(pdev: *mut bindings::pci_dev) -> c_int {
    let Some(psp) = psp() else {
        return ENODEV.to_errno();
    };
    match psp.tdi_unbind(pdev) {
        Ok(()) => 0,
        Err(f) => tdi_failed(pdev, "unbind", f).to_errno(),
    }
}

/// # Safety
///
/// `pdev` is a live function.
unsafe extern "C" fn tdi_state_callback(pdev: *mut bindings::pci_dev) -> c_int {
    let Some(psp) = psp() else {
        return ENODEV.to_errno();
    };
    match psp.tdi_state(pdev) {
        Ok(s) => c_int::from(s),
        Err(f) => tdi_failed(pdev, "state check", f).to_errno(),
    }
}

impl Psp {
    /// Unbinds (forced if the device does not answer) and reclaims a TDI.
    pub(super) fn tdi_release(
        &self,
        fw: &mut Firmware<'_>,
        pdev: &pci::Device,
        d: &TioDev,
        t: TioTdi,
    ) {
        let (Some(dev_ctx), Some(tdi_ctx)) = (
            crate::sevtio::Sla::data_4k(d.ctx.addr() >> 12),
            crate::sevtio::Sla::data_4k(t.ctx.addr() >> 12),
        ) else {
            return;
        };
        let gctx_paddr = t.gctx.addr();
        if t.bound {
            if let Ok(mut bufs) = SpdmBufs::new(self.mb.get(), PAGE) {
                let r = fw.spdm(&mut bufs, &d.claim, |spdm| Command::TdiUnbind {
                    force: false,
                    spdm,
                    dev_ctx,
                    tdi_ctx,
                    gctx_paddr,
                });
                if let Err(f) = r {
                    dev_warn!(
                        pdev.as_ref(),
                        "sev-tio: TIO_TDI_UNBIND failed ({}); forcing it\n",
                        f
                    );
                    let _ = fw.spdm(&mut bufs, &d.claim, |spdm| Command::TdiUnbind {
                        force: true,
                        spdm,
                        dev_ctx,
                        tdi_ctx,
                        gctx_paddr,
                    });
                }
            }
        }
        if let Err(f) = fw.tdi_reclaim(&d.ctx, &t.ctx) {
            dev_err!(
                pdev.as_ref(),
                "sev-tio: TIO_TDI_RECLAIM failed ({}): the TDI context page is left to the firmware\n",
                f
            );
            core::mem::forget(t.ctx);
        }
    }

    /// Finds the connected device `pdev` (the C side's pointer).
    fn find(devs: &mut KVec<TioDev>, pdev: *mut bindings::pci_dev) -> Result<&mut TioDev, Failure> {
        devs.iter_mut()
            .find(|d| raw_pci(&d.pdev) == pdev)
            .ok_or(Failure::new(
                "the PSP has not connected the function",
                ENOTCONN,
            ))
    }

    /// coco.ko's `tdisp` bind: TIO_TDI_CREATE (once), TIO_TDI_BIND (the PSP locks the TDI over
    /// its session), TIO_TDI_REPORT (the report, into `out`); returns the report's length.
    fn tdi_bind(
        &self,
        pdev: *mut bindings::pci_dev,
        lock_flags: u16,
        out: &mut [u8],
    ) -> Result<usize, Failure> {
        let mut inner = self.inner.lock();
        let Inner { cmdbuf, devs } = &mut *inner;
        let d = Self::find(devs, pdev)?;
        if d.tdi.as_ref().is_some_and(|t| t.bound) {
            return Err(Failure::new("the TDI is bound already", EBUSY));
        }
        let start = kernel::time::Instant::<kernel::time::Monotonic>::now();
        let mut fw = Firmware::new(self.mb.get(), cmdbuf);
        let mb = self.mb.get();
        let nomem = |e| Failure::new("no memory for the TDI's buffers", e);
        if d.tdi.is_none() {
            let t = TioTdi {
                ctx: mb.alloc(PAGE).map_err(nomem)?,
                gctx: mb.alloc(PAGE).map_err(nomem)?,
                bound: false,
            };
            // SAFETY: `d.pdev` is the live function.
            let rid = unsafe { tio_pci_rid(raw_dev(&d.pdev)) };
            fw.tdi_create(&d.ctx, &t.ctx, sevtio::InterfaceId::new(rid, None))?;
            d.tdi = Some(t);
        }
        let t = d
            .tdi
            .as_mut()
            .ok_or(Failure::new("no TDI context", EINVAL))?;
        let bad = |e| Failure::new("bad context address", e);
        let dev_ctx = crate::sevtio::Sla::data_4k(d.ctx.addr() >> 12).ok_or(bad(EINVAL))?;
        let tdi_ctx = crate::sevtio::Sla::data_4k(t.ctx.addr() >> 12).ok_or(bad(EINVAL))?;
        let gctx_paddr = t.gctx.addr();
        // SAFETY: `d.pdev` is the live function.
        let guest_device_id = unsafe { tio_pci_rid(raw_dev(&d.pdev)) };
        let out_min = (self.limits.spdm_out_size_min as usize).max(PAGE);
        let mut bufs = SpdmBufs::new(mb, out_min).map_err(nomem)?;
        let mut stats = fw.spdm(&mut bufs, &d.claim, |spdm| Command::TdiBind {
            spdm,
            dev_ctx,
            tdi_ctx,
            gctx_paddr,
            guest_device_id,
            lock_flags,
            run_flags: 0,
        })?;
        t.bound = true;
        let mut bufs = SpdmBufs::new(mb, out_min).map_err(nomem)?;
        let report = fw
            .spdm(&mut bufs, &d.claim, |spdm| Command::TdiReport {
                spdm,
                dev_ctx,
                tdi_ctx,
                gctx_paddr,
            })
            .and_then(|s| {
                stats.relays += s.relays;
                stats.issues += s.issues;
                bufs.output()
            });
        let report = match report {
            Ok(r) if r.len() <= out.len() => r,
            Ok(_) => {
                return Err(Failure::new(
                    "the interface report is larger than coco.ko takes",
                    EMSGSIZE,
                ))
            }
            Err(f) => return Err(f),
        };
        let n = report.len();
        out.get_mut(..n)
            .ok_or(Failure::new("no room for the report", EMSGSIZE))?
            .copy_from_slice(&report);
        dev_info!(
            d.pdev.as_ref(),
            "sev-tio: TDI locked by the PSP: report {} bytes, {} SPDM messages relayed, {} PSP commands, {} us\n",
            n,
            stats.relays,
            stats.issues,
            start.elapsed().as_micros_ceil()
        );
        Ok(n)
    }

    /// coco.ko's `tdisp` unbind: TIO_TDI_UNBIND (STOP_INTERFACE through the PSP).
    fn tdi_unbind(&self, pdev: *mut bindings::pci_dev) -> Result<(), Failure> {
        let mut inner = self.inner.lock();
        let Inner { cmdbuf, devs } = &mut *inner;
        let d = Self::find(devs, pdev)?;
        let t = d
            .tdi
            .as_mut()
            .filter(|t| t.bound)
            .ok_or(Failure::new("no TDI is bound", ENOTCONN))?;
        let bad = |e| Failure::new("bad context address", e);
        let dev_ctx = crate::sevtio::Sla::data_4k(d.ctx.addr() >> 12).ok_or(bad(EINVAL))?;
        let tdi_ctx = crate::sevtio::Sla::data_4k(t.ctx.addr() >> 12).ok_or(bad(EINVAL))?;
        let gctx_paddr = t.gctx.addr();
        let mut fw = Firmware::new(self.mb.get(), cmdbuf);
        let mut bufs =
            SpdmBufs::new(self.mb.get(), PAGE).map_err(|e| Failure::new("no memory", e))?;
        fw.spdm(&mut bufs, &d.claim, |spdm| Command::TdiUnbind {
            force: false,
            spdm,
            dev_ctx,
            tdi_ctx,
            gctx_paddr,
        })?;
        t.bound = false;
        dev_info!(d.pdev.as_ref(), "sev-tio: TDI stopped by the PSP\n");
        Ok(())
    }

    /// coco.ko's state check: TIO_TDI_STATUS (the PSP asks the device).
    fn tdi_state(&self, pdev: *mut bindings::pci_dev) -> Result<u8, Failure> {
        let mut inner = self.inner.lock();
        let Inner { cmdbuf, devs } = &mut *inner;
        let d = Self::find(devs, pdev)?;
        let t = d
            .tdi
            .as_ref()
            .ok_or(Failure::new("no TDI context", ENOTCONN))?;
        let mut fw = Firmware::new(self.mb.get(), cmdbuf);
        let mut bufs =
            SpdmBufs::new(self.mb.get(), PAGE).map_err(|e| Failure::new("no memory", e))?;
        let (st, _) = fw.tdi_status(&mut bufs, &d.claim, &d.ctx, &t.ctx)?;
        Ok(st.as_u8())
    }
}
