// SPDX-License-Identifier: GPL-2.0

//! A device's interface (TDI) under TDISP, as root drives it through `tdisp` (see
//! [`crate::native::tdi`] for the protocol side): `bind` locks it and reads its report, `start`
//! puts it in RUN, `unbind` stops it. While it is locked or running no host driver may bind to
//! the function (the PCI core's probe refusal), and its state is read from the
//! device at every use and every [`CHECK_PERIOD_MS`] while bound: a TDI the device moved to
//! ERROR is shown as `error` with a `COCO_TDISP=error` uevent, until root stops it.
//!
//! The TDI lives with the IDE link, under the IDE lock: it needs the stream Secure to be
//! locked, and the stream cannot be disconnected while a TDI is bound.

use super::{CocoDev, IdeOwner, IdeState};
use crate::{
    native::tdi::{self, Tdi},
    tdisp::TdiState,
};
use core::{ptr::NonNull, sync::atomic::Ordering};
use kernel::{
    bindings,
    ffi::{c_int, c_uint, c_void},
    prelude::*,
    sync::Arc,
    time::{msecs_to_jiffies, Instant, Monotonic},
};

/// The largest interface report taken from a firmware TSM.
const FW_REPORT_MAX: usize = 32 * 1024;

/// `struct coco_backend_tdi_ops` (coco_backend.h): a firmware TSM's TDI operations.
#[repr(C)]
pub(crate) struct CocoBackendTdiOps {
    bind: Option<unsafe extern "C" fn(*mut bindings::pci_dev, u16, *mut c_void, usize) -> isize>,
    unbind: Option<unsafe extern "C" fn(*mut bindings::pci_dev) -> c_int>,
    state: Option<unsafe extern "C" fn(*mut bindings::pci_dev) -> c_int>,
}

/// The TDI operations of the firmware TSM that owns a device's mailbox, or of a confidential
/// guest's TSM (through the guest-to-TSM channel, `device/guest.rs`).
///
/// # Invariants
///
/// A `Backend` table is valid while the TSM's claim lives; coco.ko forgets it before the
/// claim is released, and calls it only under the device's IDE lock, which the release takes.
#[derive(Clone, Copy)]
pub(crate) enum FwTdiOps {
    /// A firmware TSM in another module (`coco_backend_set_tdi_ops()`).
    Backend(NonNull<CocoBackendTdiOps>),
    /// The confidential guest's TSM.
    Guest,
}

// SAFETY: The table is immutable and its functions may be called from any thread.
unsafe impl Send for FwTdiOps {}
// SAFETY: See `Send`.
unsafe impl Sync for FwTdiOps {}

fn errno(rc: isize) -> Error {
    Error::from_errno(c_int::try_from(rc).unwrap_or(-(EIO.to_errno())))
}

impl FwTdiOps {
    /// The table at `ops`, if it has every operation.
    ///
    /// # Safety
    ///
    /// `ops` is null or valid for as long as the claim it is given with.
    pub(crate) unsafe fn new(ops: *const CocoBackendTdiOps) -> Option<Self> {
        let p = NonNull::new(ops.cast_mut())?;
        // SAFETY: Valid (the caller's guarantee).
        let t = unsafe { p.as_ref() };
        (t.bind.is_some() && t.unbind.is_some() && t.state.is_some()).then_some(Self::Backend(p))
    }

    /// The confidential guest's TSM.
    pub(crate) fn guest() -> Self {
        Self::Guest
    }

    fn table(p: &NonNull<CocoBackendTdiOps>) -> &CocoBackendTdiOps {
        // SAFETY: Valid while the claim lives (the type invariant).
        unsafe { p.as_ref() }
    }

    /// Locks the TDI with `lock_flags`; its interface report into `buf`; the report's length.
    fn bind(&self, dev: &CocoDev, lock_flags: u16, buf: &mut [u8]) -> Result<usize> {
        let p = match self {
            Self::Guest => return dev.guest_bind(buf),
            Self::Backend(p) => p,
        };
        let f = Self::table(p).bind.ok_or(EOPNOTSUPP)?;
        // SAFETY: `pdev` is the live function; `buf` is writable for its length.
        let n = unsafe {
            f(
                dev.raw_pci(),
                lock_flags,
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(errno(n));
        }
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= buf.len())
            .ok_or(EPROTO)
    }

    /// Stops the TDI (CONFIG_UNLOCKED).
    fn unbind(&self, dev: &CocoDev) -> Result {
        let p = match self {
            Self::Guest => return dev.guest_unbind(),
            Self::Backend(p) => p,
        };
        let f = Self::table(p).unbind.ok_or(EOPNOTSUPP)?;
        // SAFETY: `pdev` is the live function.
        kernel::error::to_result(unsafe { f(dev.raw_pci()) })
    }

    /// The TDI's state, asked from the device now.
    fn state(&self, dev: &CocoDev) -> Result<TdiState> {
        let p = match self {
            Self::Guest => return dev.guest_state(),
            Self::Backend(p) => p,
        };
        let f = Self::table(p).state.ok_or(EOPNOTSUPP)?;
        // SAFETY: `pdev` is the live function.
        let rc = unsafe { f(dev.raw_pci()) };
        if rc < 0 {
            return Err(Error::from_errno(rc));
        }
        u8::try_from(rc)
            .ok()
            .and_then(TdiState::from_u8)
            .ok_or(EPROTO)
    }
}

/// How often a bound TDI's state is read from the device.
pub(crate) const CHECK_PERIOD_MS: u32 = 1000;

/// What root writes to `tdisp`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TdispOp {
    /// LOCK_INTERFACE and the report.
    Bind,
    /// START_INTERFACE.
    Start,
    /// STOP_INTERFACE.
    Unbind,
    /// A confidential guest accepts its verified TDI.
    Accept,
}

impl TdispOp {
    /// The operation with the C value `op` (`enum coco_tdisp_op`).
    pub(crate) fn from_raw(op: u32) -> Option<Self> {
        match op {
            0 => Some(TdispOp::Bind),
            1 => Some(TdispOp::Start),
            2 => Some(TdispOp::Unbind),
            3 => Some(TdispOp::Accept),
            _ => None,
        }
    }
}

/// The device's TDI as coco.ko knows it.
#[derive(Default)]
pub(crate) struct TdiSlot {
    /// The locked (or running) interface.
    pub(crate) bound: Option<Tdi>,
    /// The state the device reported last (CONFIG_UNLOCKED when none is bound).
    pub(crate) state: Option<TdiState>,
    /// Why the last `tdisp` operation failed.
    pub(crate) failure: Option<&'static str>,
    /// The ERROR state was reported (logged and sent as a uevent) once.
    error_reported: bool,
    /// The reset generation the TDI was locked in (a reset since unlocked it).
    generation: u64,
    /// Who bound it (only they unbind it): root through `tdisp`, or the kernel's TSM core
    /// (`pci_tsm_bind()`, the VMM's path).
    owner: Option<IdeOwner>,
    /// The firmware TSM that locked it, when not coco.ko itself.
    pub(super) fw: Option<FwTdiOps>,
}

impl TdiSlot {
    /// The state as `tdisp` shows it.
    pub(crate) fn state_name(&self) -> &'static str {
        match self.state {
            None | Some(TdiState::ConfigUnlocked) => "unlocked",
            Some(TdiState::ConfigLocked) => "locked",
            Some(TdiState::Run) => "run",
            Some(TdiState::Error) => "error",
        }
    }
}

/// What `coco_tdi_gate()` does (`enum coco_tdi_gate`).
#[derive(Clone, Copy)]
#[repr(u32)]
pub(super) enum Gate {
    /// No driver may bind from now on; fails with `EBUSY` when one is bound.
    Hold = 0,
    /// No other driver may bind from now on; the bound one (the VMM's, which asked through
    /// the TSM core) stays.
    HoldBound = 1,
    /// Drivers may bind again.
    Lift = 2,
    /// Drivers may bind again, and the driver core attaches one.
    LiftAttach = 3,
    /// Confidential guest: back to "not accepted yet" (`pci=tee_accept`).
    Unaccepted = 4,
    /// Confidential guest: accepted; the driver core attaches a driver.
    Accept = 5,
}

impl CocoDev {
    /// Runs a `tdisp` write. A TDI the TSM core bound is left to it (`EBUSY`).
    pub(crate) fn tdisp_op(self: &Arc<Self>, op: TdispOp) -> Result {
        if self.removed.load(Ordering::Acquire) {
            return Err(ENODEV);
        }
        if self.guest_mode {
            // A confidential guest's TDI is bound and started by the TSM: root accepts or
            // releases it.
            return match op {
                TdispOp::Accept => self.guest_accept(),
                TdispOp::Unbind => self.guest_release(),
                TdispOp::Bind | TdispOp::Start => {
                    dev_err!(
                        self.dev(),
                        "coco: TDISP bind and start are the TSM's in a confidential guest: write accept or unbind\n"
                    );
                    Err(EOPNOTSUPP)
                }
            };
        }
        if op == TdispOp::Accept {
            dev_err!(
                self.dev(),
                "coco: accept is for a confidential guest's TDI\n"
            );
            return Err(EOPNOTSUPP);
        }
        if op != TdispOp::Bind && self.ide.lock().tdi.owner == Some(IdeOwner::Tsm) {
            let verb = if op == TdispOp::Start {
                "start"
            } else {
                "unbind"
            };
            dev_err!(
                self.dev(),
                "coco: TDISP {} refused: the TDI was bound through the TSM core (pci_tsm_bind)\n",
                verb
            );
            return Err(EBUSY);
        }
        match op {
            TdispOp::Bind => self.tdi_bind(IdeOwner::Sysfs),
            TdispOp::Start => self.tdi_start(),
            TdispOp::Unbind => self.tdi_unbind(Gate::LiftAttach),
            TdispOp::Accept => Err(EOPNOTSUPP),
        }
    }

    /// The TSM core's `bind` (`pci_tsm_bind()`, the VMM's path) and `unbind`: the same as
    /// `tdisp` "bind" and "unbind", except that the driver bound to the function (the VMM's,
    /// e.g. vfio-pci) stays bound.
    pub(crate) fn tsm_tdi(self: &Arc<Self>, bind: bool) -> Result {
        if self.removed.load(Ordering::Acquire) {
            return Err(ENODEV);
        }
        if bind {
            return self.tdi_bind(IdeOwner::Tsm);
        }
        if self.ide.lock().tdi.owner != Some(IdeOwner::Tsm) {
            return Err(ENOTCONN);
        }
        // The VMM's driver is bound (and its unbind may hold the device lock): nothing to attach.
        let r = self.tdi_unbind(Gate::Lift);
        if r.is_err() {
            // The PCI core forgets the TDI whatever happens: root may retry through `tdisp`.
            self.ide.lock().tdi.owner = Some(IdeOwner::Sysfs);
        }
        r
    }

    /// Sets or lifts the driver gate of the function (see [`Gate`]). Must be called with no
    /// lock of this device held (attaching probes a driver).
    pub(super) fn tdi_gate(&self, op: Gate) -> Result {
        // A confidential guest's TDI that is not accepted never gets a driver: lifting the
        // TDISP lock puts it back to "not accepted".
        let op = match op {
            Gate::Lift | Gate::LiftAttach if self.guest_mode && !self.guest.lock().accepted => {
                Gate::Unaccepted
            }
            op => op,
        };
        let raw = self.raw.0.as_ptr();
        // SAFETY: The device is live: called from a sysfs writer, a TSM operation, the probe
        // work or teardown, which all run before the device goes.
        let rc = unsafe { crate::coco_tdi_gate(raw, op as c_uint) };
        if rc != 0 {
            return Err(Error::from_errno(rc));
        }
        Ok(())
    }

    /// Records a failed operation and logs it.
    fn tdi_failed(&self, slot: &mut TdiSlot, what: &str, f: crate::channel::Failure) -> Error {
        dev_err!(self.dev(), "coco: TDISP {} failed: {}\n", what, f);
        slot.failure = Some(f.reason);
        f.err
    }

    pub(super) fn tdi_bind(self: &Arc<Self>, owner: IdeOwner) -> Result {
        // The gate first, so that no driver binds between the check and the lock.
        let gate = match owner {
            IdeOwner::Sysfs => Gate::Hold,
            IdeOwner::Tsm => Gate::HoldBound,
        };
        if let Err(e) = self.tdi_gate(gate) {
            let why = "a host driver is bound to the function: unbind it first";
            dev_err!(self.dev(), "coco: TDISP bind refused: {}\n", why);
            self.ide.lock().tdi.failure = Some(why);
            return Err(e);
        }
        let r = self.tdi_bind_locked(&mut self.ide.lock(), owner);
        match r {
            Ok(()) => {
                self.notify_change(c"COCO_TDISP=locked");
                // A confidential guest's TDI is watched once accepted.
                if !self.guest_mode {
                    self.arm_tdi_check();
                }
            }
            Err(_) => {
                let _ = self.tdi_gate(match owner {
                    IdeOwner::Sysfs => Gate::LiftAttach,
                    IdeOwner::Tsm => Gate::Lift,
                });
            }
        }
        r
    }

    fn tdi_bind_locked(&self, ide: &mut IdeState, owner: IdeOwner) -> Result {
        if ide.tdi.bound.is_some() {
            return Err(EBUSY);
        }
        let fw = *self.fw_tdi.lock();
        if let Some(fw) = fw {
            return self.tdi_bind_firmware(ide, owner, fw);
        }
        let Some((link, _, _)) = ide.link.as_ref() else {
            let why = "no IDE stream: connect the link first (coco/ide or tsm/connect)";
            dev_err!(self.dev(), "coco: TDISP bind refused: {}\n", why);
            ide.tdi.failure = Some(why);
            return Err(ENOTCONN);
        };
        let start = Instant::<Monotonic>::now();
        let r = self.with_session(|s, t| {
            let before = s.info().messages;
            tdi::bind(&self.pdev, link, s, t).map(|d| (d, s.info().messages.saturating_sub(before)))
        });
        let us = u64::try_from(start.elapsed().as_micros_ceil()).unwrap_or(0);
        match r {
            Ok((d, messages)) => {
                dev_info!(
                    self.dev(),
                    "coco: TDI locked on IDE stream {} (lock flags {:#x}), report {} bytes checked against the BARs; {} secured messages, {} us\n",
                    link.stream_id(),
                    d.lock_flags(),
                    d.report_bytes().len(),
                    messages,
                    us
                );
                ide.tdi.bound = Some(d);
                ide.tdi.state = Some(TdiState::ConfigLocked);
                ide.tdi.failure = None;
                ide.tdi.error_reported = false;
                ide.tdi.generation = self.generation.load(Ordering::Acquire);
                ide.tdi.owner = Some(owner);
                Ok(())
            }
            Err(f) => Err(self.tdi_failed(&mut ide.tdi, "bind", f)),
        }
    }

    /// Binds through the firmware TSM that owns the mailbox: it locks the TDI over its own
    /// session and returns the report, which is checked here as coco.ko's own is.
    fn tdi_bind_firmware(&self, ide: &mut IdeState, owner: IdeOwner, fw: FwTdiOps) -> Result {
        let flags = tdi::WANTED_LOCK_FLAGS;
        let mut report = KVec::from_elem(0u8, FW_REPORT_MAX, GFP_KERNEL)?;
        let start = Instant::<Monotonic>::now();
        let n = match fw.bind(self, flags, &mut report) {
            Ok(n) => n,
            Err(e) => {
                let why = "the firmware TSM did not lock the TDI (its reason is in the log)";
                dev_err!(self.dev(), "coco: TDISP bind failed: {} ({:?})\n", why, e);
                ide.tdi.failure = Some(why);
                return Err(e);
            }
        };
        let us = u64::try_from(start.elapsed().as_micros_ceil()).unwrap_or(0);
        match tdi::from_firmware(&self.pdev, report.get(..n).unwrap_or(&[]), flags) {
            Ok(d) => {
                dev_info!(
                    self.dev(),
                    "coco: TDI locked by the firmware TSM (lock flags {:#x}), report {} bytes checked against the BARs; {} us\n",
                    flags,
                    n,
                    us
                );
                ide.tdi.bound = Some(d);
                ide.tdi.state = Some(TdiState::ConfigLocked);
                ide.tdi.failure = None;
                ide.tdi.error_reported = false;
                ide.tdi.generation = self.generation.load(Ordering::Acquire);
                ide.tdi.owner = Some(owner);
                ide.tdi.fw = Some(fw);
                Ok(())
            }
            Err(f) => {
                // A report that does not fit the function: the interface is stopped again.
                let _ = fw.unbind(self);
                Err(self.tdi_failed(&mut ide.tdi, "bind", f))
            }
        }
    }

    /// The function as the C side knows it.
    pub(super) fn raw_pci(&self) -> *mut bindings::pci_dev {
        // `pci::Device` wraps `struct pci_dev` transparently.
        core::ptr::from_ref::<kernel::pci::Device>(&self.pdev)
            .cast_mut()
            .cast::<bindings::pci_dev>()
    }

    /// The firmware TSM let the mailbox go: a TDI it bound is gone with it (it stopped the
    /// TDI first), and host drivers may bind again. Called with no lock of this device held.
    pub(super) fn tdi_firmware_gone(self: &Arc<Self>) {
        let had = {
            let mut ide = self.ide.lock();
            let had = ide.tdi.fw.take().is_some();
            if had {
                ide.tdi.bound = None;
                ide.tdi.owner = None;
                ide.tdi.state = Some(TdiState::ConfigUnlocked);
            }
            had
        };
        if !had || self.removed.load(Ordering::Acquire) {
            return;
        }
        dev_info!(
            self.dev(),
            "coco: the firmware TSM let go: its TDI is unbound, host drivers may bind again\n"
        );
        if let Err(e) = self.tdi_gate(Gate::LiftAttach) {
            dev_warn!(self.dev(), "coco: cannot lift the driver gate: {:?}\n", e);
        }
        self.notify_change(c"COCO_TDISP=unlocked");
    }

    fn tdi_start(self: &Arc<Self>) -> Result {
        let mut ide = self.ide.lock();
        let slot = &mut ide.tdi;
        if slot.fw.is_some() && slot.bound.is_some() {
            let why = "a TDI a firmware TSM bound is started by its VM, through the firmware";
            dev_err!(self.dev(), "coco: TDISP start refused: {}\n", why);
            slot.failure = Some(why);
            return Err(EOPNOTSUPP);
        }
        let Some(d) = slot.bound.as_mut() else {
            return Err(ENOTCONN);
        };
        let start = Instant::<Monotonic>::now();
        let r = self.with_session(|s, t| {
            let before = s.info().messages;
            d.start(s, t)
                .map(|()| s.info().messages.saturating_sub(before))
        });
        let us = u64::try_from(start.elapsed().as_micros_ceil()).unwrap_or(0);
        match r {
            Ok(messages) => {
                dev_info!(
                    self.dev(),
                    "coco: TDI started (RUN); {} secured messages, {} us\n",
                    messages,
                    us
                );
                slot.state = Some(TdiState::Run);
                slot.failure = None;
                drop(ide);
                self.notify_change(c"COCO_TDISP=run");
                Ok(())
            }
            Err(f) => {
                // What the device says now, for `tdisp`.
                let st = self.with_session(|s, t| d.state(s, t)).ok();
                slot.state = st.or(slot.state);
                Err(self.tdi_failed(slot, "start", f))
            }
        }
    }

    /// STOP_INTERFACE; `lift` is how the driver gate is lifted after.
    pub(super) fn tdi_unbind(self: &Arc<Self>, lift: Gate) -> Result {
        let mut ide = self.ide.lock();
        let slot = &mut ide.tdi;
        let Some(d) = slot.bound.as_mut() else {
            return Err(ENOTCONN);
        };
        let stopped = match slot.fw {
            Some(fw) => fw.unbind(self).map_err(|e| {
                crate::channel::Failure::new(
                    "the firmware TSM did not stop the TDI (its reason is in the log)",
                    e,
                )
            }),
            None => self.with_session(|s, t| d.stop(s, t)),
        };
        match stopped {
            Ok(()) => {
                slot.bound = None;
                slot.owner = None;
                slot.fw = None;
                slot.state = Some(TdiState::ConfigUnlocked);
                slot.failure = None;
                drop(ide);
                dev_info!(
                    self.dev(),
                    "coco: TDI stopped (CONFIG_UNLOCKED): host drivers may bind again\n"
                );
                if let Err(e) = self.tdi_gate(lift) {
                    dev_warn!(self.dev(), "coco: cannot lift the driver gate: {:?}\n", e);
                }
                self.notify_change(c"COCO_TDISP=unlocked");
                Ok(())
            }
            Err(f) => {
                let st = match slot.fw {
                    Some(fw) => fw.state(self).ok(),
                    None => self.with_session(|s, t| d.state(s, t)).ok(),
                };
                slot.state = st.or(slot.state);
                Err(self.tdi_failed(slot, "unbind", f))
            }
        }
    }

    /// The periodic check of a bound TDI: its state read from the device; ERROR is logged and
    /// sent as a uevent once. Returns whether a TDI is still bound.
    pub(super) fn tdi_check(self: &Arc<Self>) -> bool {
        let mut ide = self.ide.lock();
        let slot = &mut ide.tdi;
        let Some(d) = slot.bound.as_ref() else {
            return false;
        };
        let st = match slot.fw {
            Some(fw) => fw.state(self),
            None => self.with_session(|s, t| d.state(s, t)).map_err(|f| f.err),
        };
        let Ok(st) = st else {
            // No session (a reset is being handled): the probe's recovery decides.
            return true;
        };
        slot.state = Some(st);
        if st != TdiState::Error || slot.error_reported {
            return true;
        }
        slot.error_reported = true;
        drop(ide);
        if self.guest_mode {
            self.guest_lost();
            return false;
        }
        dev_warn!(
            self.dev(),
            "coco: the device moved the TDI to ERROR (a forbidden change while it was locked?): write unbind to tdisp to stop it\n"
        );
        self.notify_change(c"COCO_TDISP=error");
        true
    }

    /// Queues the next check of a bound TDI (never once teardown has set `removed`).
    pub(super) fn arm_tdi_check(self: &Arc<Self>) {
        let _guard = self.queueing.lock();
        if self.removed.load(Ordering::Acquire) {
            return;
        }
        if let Some(q) = crate::queue() {
            let _ = q.enqueue_delayed::<_, 3>(self.clone(), msecs_to_jiffies(CHECK_PERIOD_MS));
        }
    }

    /// After a probe: a reset or resume since the TDI was locked returned it to
    /// CONFIG_UNLOCKED (the device lost the session and keys it was locked with); the host's
    /// drivers may bind again. Called with no lock held.
    pub(super) fn tdi_after_probe(self: &Arc<Self>) {
        let had = {
            let mut ide = self.ide.lock();
            let current = self.generation.load(Ordering::Acquire);
            let stale = ide.tdi.bound.is_some() && ide.tdi.generation != current;
            if stale {
                ide.tdi.bound = None;
                ide.tdi.owner = None;
                ide.tdi.state = Some(TdiState::ConfigUnlocked);
            }
            stale
        };
        if !had {
            return;
        }
        dev_warn!(
            self.dev(),
            "coco: the reset returned the TDI to CONFIG_UNLOCKED: host drivers may bind again\n"
        );
        if let Err(e) = self.tdi_gate(Gate::LiftAttach) {
            dev_warn!(self.dev(), "coco: cannot lift the driver gate: {:?}\n", e);
        }
        self.notify_change(c"COCO_TDISP=unlocked");
    }

    /// Lifts the driver gate, if coco.ko set one, at teardown (without attaching a driver: the
    /// function may be going away).
    pub(super) fn tdi_teardown_gate(&self) {
        let _ = self.tdi_gate(Gate::Lift);
    }

    /// The bound TDI's information with the evidence it rests on (the native backend's
    /// `tdi_info`, the answer to a `PCI_TSM_REQ_INFO` guest request), appended to `out` as
    /// entries `u16 type, u16 reserved, u32 length, bytes` (little-endian): 1 the interface
    /// report, 2 the certificate chain coco.ko authenticated the device with, 3 the signed
    /// measurements' transcript, 4 their signature; the same bytes as `tdi/report`,
    /// `coco/certificate_chain`, `measurements/transcript` and `measurements/signature`.
    /// Fails with `ENXIO` when no TDI is bound.
    pub(crate) fn tdi_info(&self, out: &mut KVec<u8>) -> Result {
        let report = {
            let ide = self.ide.lock();
            let d = ide.tdi.bound.as_ref().ok_or(ENXIO)?;
            let mut r = KVec::new();
            r.extend_from_slice(d.report_bytes(), GFP_KERNEL)?;
            r
        };
        put_entry(out, TDI_INFO_REPORT, &report)?;
        let state = self.state.lock();
        put_entry(out, TDI_INFO_CERT_CHAIN, state.auth.certificates())?;
        let (transcript, signature) = state.meas.reading.as_ref().map_or((&[][..], &[][..]), |r| {
            (&r.transcript[..], &r.signature[..])
        });
        put_entry(out, TDI_INFO_MEAS_TRANSCRIPT, transcript)?;
        put_entry(out, TDI_INFO_MEAS_SIGNATURE, signature)
    }
}

/// Entry types of [`CocoDev::tdi_info`].
const TDI_INFO_REPORT: u16 = 1;
const TDI_INFO_CERT_CHAIN: u16 = 2;
const TDI_INFO_MEAS_TRANSCRIPT: u16 = 3;
const TDI_INFO_MEAS_SIGNATURE: u16 = 4;

/// Appends one `tdi_info` entry.
fn put_entry(out: &mut KVec<u8>, kind: u16, data: &[u8]) -> Result {
    let len = u32::try_from(data.len()).map_err(|_| EOVERFLOW)?;
    out.extend_from_slice(&kind.to_le_bytes(), GFP_KERNEL)?;
    out.extend_from_slice(&[0, 0], GFP_KERNEL)?;
    out.extend_from_slice(&len.to_le_bytes(), GFP_KERNEL)?;
    out.extend_from_slice(data, GFP_KERNEL)?;
    Ok(())
}
