// SPDX-License-Identifier: GPL-2.0

//! The SEV-TIO link TSM: `tsm/connect` with this TSM has the PSP connect the device.
//!
//! Connect: coco.ko hands over the device's DOE mailbox (its own session ends); the host
//! allocates a Selective IDE Stream and writes both ends' stream registers; TIO_DEV_CREATE
//! and TIO_DEV_CONNECT have the PSP authenticate the device, run the SPDM session and IDE_KM
//! and program the root port's keys itself, the host relaying its SPDM; the host enables the
//! endpoint, then the root port, each of which must read Secure. The PSP's certificates and
//! measurements (TIO_DEV_CERTIFICATES, TIO_DEV_MEASUREMENTS) go to coco.ko, which shows them
//! in the device's `certificates/` and `measurements/` with `source` "tsm sev-tio".
//!
//! Disconnect undoes it in reverse: streams disabled, TIO_DEV_DISCONNECT (forced if the device
//! does not answer), the stream released, TIO_DEV_RECLAIM, the mailbox back to coco.ko, which
//! authenticates the device again.

use crate::firmware::{Failure, Firmware, Relay, SpdmBufs, Stats};
use crate::mailbox::{DmaBuf, Mailbox, PAGE};
use crate::sevtio::{self, Command, TioStatusPage};
use core::ptr::NonNull;
use kernel::{
    bindings, device,
    ffi::{c_char, c_int, c_void},
    pci::{
        self,
        ide::{Partner, Stream},
        tsm,
    },
    prelude::*,
    sync::{aref::ARef, Arc, ArcBorrow, Mutex},
};

/// The name coco.ko shows for this TSM (`mailbox_owner`, `source`).
const TSM_NAME: &CStr = c"sev-tio";

// `struct pci_dev` and `struct device` are only passed by pointer.
#[allow(improper_ctypes)]
extern "C" {
    fn coco_backend_claim(
        pdev: *mut bindings::pci_dev,
        tsm: *const c_char,
        out: *mut *mut c_void,
    ) -> c_int;
    fn coco_backend_release(b: *mut c_void);
    fn coco_backend_set_tdi_ops(b: *mut c_void, ops: *const CocoBackendTdiOps);
    fn coco_backend_relay(
        b: *mut c_void,
        object_type: u8,
        req: *const c_void,
        req_len: usize,
        rsp: *mut c_void,
        rsp_len: usize,
    ) -> isize;
    fn coco_backend_certificates(
        b: *mut c_void,
        slot: u8,
        base_hash: u32,
        chain: *const c_void,
        len: usize,
    ) -> c_int;
    fn coco_backend_measurements(
        b: *mut c_void,
        slot: u8,
        version: u8,
        base_asym: u32,
        base_hash: u32,
        nonce: *const u8,
        evidence: *const c_void,
        len: usize,
    ) -> c_int;
    fn tio_pci_rid(dev: *mut bindings::device) -> u16;
    fn tio_pci_segment(dev: *mut bindings::device) -> u16;
    fn tio_root_port_number(dev: *mut bindings::device) -> c_int;
}

fn raw_dev(pdev: &pci::Device) -> *mut bindings::device {
    let dev: &device::Device = pdev.as_ref();
    // `Device` wraps `struct device` transparently.
    core::ptr::from_ref(dev)
        .cast_mut()
        .cast::<bindings::device>()
}

fn raw_pci(pdev: &pci::Device) -> *mut bindings::pci_dev {
    // `pci::Device` wraps `struct pci_dev` transparently.
    core::ptr::from_ref(pdev)
        .cast_mut()
        .cast::<bindings::pci_dev>()
}

/// coco.ko's hand-over of a device's DOE mailbox; dropping it hands the mailbox back.
struct Claim(NonNull<c_void>);

// SAFETY: The claim is only passed to coco.ko's backend API, which may be called from any
// thread; it is used under the PSP lock.
unsafe impl Send for Claim {}

impl Claim {
    fn new(pdev: &pci::Device) -> Result<Self, Failure> {
        let mut out = core::ptr::null_mut();
        // SAFETY: `pdev` is live (the PCI/TSM core's caller holds it); the name is static.
        let rc = unsafe { coco_backend_claim(raw_pci(pdev), TSM_NAME.as_char_ptr(), &mut out) };
        match (rc, NonNull::new(out)) {
            (0, Some(p)) => Ok(Self(p)),
            (rc, _) if rc == ENODEV.to_errno() => Err(Failure::new(
                "coco.ko does not manage the function (no CMA/SPDM mailbox)",
                ENODEV,
            )),
            (rc, _) if rc == EBUSY.to_errno() => Err(Failure::new(
                "coco.ko cannot hand the mailbox over: another TSM owns it, or its session is in use",
                EBUSY,
            )),
            _ => Err(Failure::new("coco.ko refused the mailbox", EIO)),
        }
    }

    fn certificates(&self, slot: u8, base_hash: u32, chain: &[u8]) -> Result {
        // SAFETY: The claim is live; `chain` is readable for its length.
        kernel::error::to_result(unsafe {
            coco_backend_certificates(
                self.0.as_ptr(),
                slot,
                base_hash,
                chain.as_ptr().cast(),
                chain.len(),
            )
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn measurements(
        &self,
        slot: u8,
        version: u8,
        base_asym: u32,
        base_hash: u32,
        nonce: &[u8; 32],
        evidence: &[u8],
    ) -> Result {
        // SAFETY: The claim is live; `nonce` holds 32 bytes, `evidence` its length.
        kernel::error::to_result(unsafe {
            coco_backend_measurements(
                self.0.as_ptr(),
                slot,
                version,
                base_asym,
                base_hash,
                nonce.as_ptr(),
                evidence.as_ptr().cast(),
                evidence.len(),
            )
        })
    }
}

impl Relay for Claim {
    fn exchange(&self, object_type: u8, req: &[u8], rsp: &mut [u8]) -> Result<usize> {
        // SAFETY: The claim is live; the buffers are valid for their lengths.
        let n = unsafe {
            coco_backend_relay(
                self.0.as_ptr(),
                object_type,
                req.as_ptr().cast(),
                req.len(),
                rsp.as_mut_ptr().cast(),
                rsp.len(),
            )
        };
        if n < 0 {
            return Err(Error::from_errno(
                c_int::try_from(n).unwrap_or(-EIO.to_errno()),
            ));
        }
        usize::try_from(n).map_err(|_| EIO)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        // SAFETY: The claim came from `coco_backend_claim()` and is released once.
        unsafe { coco_backend_release(self.0.as_ptr()) };
    }
}

/// A device the PSP connected.
struct TioDev {
    pdev: ARef<pci::Device>,
    /// The device context the firmware keeps (firmware-owned).
    ctx: DmaBuf,
    stream: Stream,
    /// The device's TDI, once coco.ko's `tdisp` asked for it.
    tdi: Option<TioTdi>,
    claim: Claim,
}

/// A TDI context the firmware keeps.
struct TioTdi {
    ctx: DmaBuf,
    /// The guest context page (no guest on the host's own binds: recorded only).
    gctx: DmaBuf,
    /// TIO_TDI_BIND succeeded and no TIO_TDI_UNBIND followed.
    bound: bool,
}

/// `struct coco_backend_tdi_ops` (drivers/pci/coco/coco_backend.h).
#[repr(C)]
struct CocoBackendTdiOps {
    bind: Option<unsafe extern "C" fn(*mut bindings::pci_dev, u16, *mut c_void, usize) -> isize>,
    unbind: Option<unsafe extern "C" fn(*mut bindings::pci_dev) -> c_int>,
    state: Option<unsafe extern "C" fn(*mut bindings::pci_dev) -> c_int>,
}

/// The TDI operations coco.ko's `tdisp` uses on a device this TSM connected.
static TDI_OPS: CocoBackendTdiOps = CocoBackendTdiOps {
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

/// Any of the mailboxes (see `mailbox.rs`).
pub(crate) enum AnyMailbox {
    Registers(crate::mailbox::Registers),
    SevDoCmd(crate::mailbox::SevDoCmd),
}

impl AnyMailbox {
    fn get(&self) -> &dyn Mailbox {
        match self {
            Self::Registers(m) => m,
            Self::SevDoCmd(m) => m,
        }
    }
}

/// What the PSP lock holds: the command buffer and the connected devices.
struct Inner {
    cmdbuf: DmaBuf,
    devs: KVec<TioDev>,
}

/// A PSP with SEV-TIO, initialised.
#[pin_data]
pub(crate) struct Psp {
    mb: AnyMailbox,
    limits: TioStatusPage,
    /// One firmware command (with its SPDM relays) at a time.
    #[pin]
    inner: Mutex<Inner>,
}

/// The PSP the TSM operations use; set while its TSM is registered (see [`attach`]).
static PSP: core::sync::atomic::AtomicPtr<Psp> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

fn psp() -> Option<Arc<Psp>> {
    let p = PSP.load(core::sync::atomic::Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` came from `Arc::into_raw()` in `attach()` and is released in `detach()` only
    // after the TSM is unregistered, which waits for every operation (the only callers).
    Some(unsafe { ArcBorrow::from_raw(p) }.into())
}

/// The SEV-TIO TSM, registered for the PSP's device.
pub(crate) struct Attached {
    tsm: Option<tsm::Registration<SevTioTsm>>,
}

/// Checks the firmware (TIO_STATUS, TIO_INIT when needed) and registers the TSM under
/// `parent`.
pub(crate) fn attach(mb: AnyMailbox, parent: &device::Device) -> Result<Attached> {
    if !PSP.load(core::sync::atomic::Ordering::Acquire).is_null() {
        dev_err!(parent, "sev-tio: a PSP is already in use\n");
        return Err(EBUSY);
    }
    let mut cmdbuf = mb.get().alloc(PAGE)?;
    let mut fw = Firmware::new(mb.get(), &mut cmdbuf);
    let limits = fw.status().inspect_err(|f| {
        if f.err == ENODEV {
            // No PSP behind this mailbox (e.g. no SEV hardware): not an error.
            dev_info!(parent, "sev-tio: {}\n", f);
        } else {
            dev_err!(parent, "sev-tio: TIO_STATUS failed: {}\n", f);
        }
    });
    let mut limits = limits.map_err(|f| f.err)?;
    if !limits.tio_en {
        dev_err!(parent, "sev-tio: the firmware has SEV-TIO disabled\n");
        return Err(ENODEV);
    }
    if !limits.tio_init_done {
        fw.init().map_err(|f| {
            dev_err!(parent, "sev-tio: TIO_INIT failed: {}\n", f);
            f.err
        })?;
        limits.tio_init_done = true;
    }
    if (limits.devctx_size as usize) > PAGE || (limits.spdm_req_size_min as usize) > PAGE {
        dev_err!(
            parent,
            "sev-tio: the firmware wants buffers larger than a page (context {} bytes)\n",
            limits.devctx_size
        );
        return Err(ENODEV);
    }
    let name = mb.get().name();
    let p = Arc::pin_init(
        pin_init!(Psp {
            mb,
            limits,
            inner <- kernel::new_mutex!(Inner { cmdbuf, devs: KVec::new() }),
        }),
        GFP_KERNEL,
    )?;
    PSP.store(
        Arc::into_raw(p).cast_mut(),
        core::sync::atomic::Ordering::Release,
    );
    match tsm::Registration::<SevTioTsm>::new(parent) {
        Ok(t) => {
            dev_info!(
                parent,
                "sev-tio: SEV-TIO firmware ready (mailbox: {}), registered as tsm{}\n",
                name,
                t.id()
            );
            Ok(Attached { tsm: Some(t) })
        }
        Err(e) => {
            dev_err!(parent, "sev-tio: cannot register the TSM ({:?})\n", e);
            release_psp();
            Err(e)
        }
    }
}

fn release_psp() {
    let p = PSP.swap(core::ptr::null_mut(), core::sync::atomic::Ordering::AcqRel);
    if !p.is_null() {
        // SAFETY: `p` came from `Arc::into_raw()` in `attach()`; no operation uses it any more.
        drop(unsafe { Arc::from_raw(p) });
    }
}

impl Drop for Attached {
    fn drop(&mut self) {
        // Unregistering disconnects every device this TSM connected and waits for running
        // operations; only then does the PSP go.
        drop(self.tsm.take());
        release_psp();
    }
}

/// The link TSM operations.
pub(crate) struct SevTioTsm;

impl tsm::LinkTsm for SevTioTsm {
    fn connect(pdev: &pci::Device) -> Result {
        let psp = psp().ok_or(ENODEV)?;
        psp.connect(pdev).map_err(|f| {
            dev_err!(pdev.as_ref(), "sev-tio: connect failed: {}\n", f);
            f.err
        })
    }

    fn disconnect(pdev: &pci::Device) {
        if let Some(psp) = psp() {
            psp.disconnect(pdev);
        }
    }
}

fn random_nonce() -> [u8; 32] {
    let mut n = [0u8; 32];
    // SAFETY: `n` is writable for its length.
    unsafe { bindings::get_random_bytes(n.as_mut_ptr().cast(), n.len()) };
    n
}

impl Psp {
    fn connect(&self, pdev: &pci::Device) -> Result<(), Failure> {
        let raw = raw_dev(pdev);
        if !pdev.has_ide() {
            return Err(Failure::new(
                "no IDE: the PCI core found no usable IDE capability on the function and its root port",
                EOPNOTSUPP,
            ));
        }
        // SAFETY: `raw` is the live function's device.
        let (rid, segment, port) = unsafe {
            (
                tio_pci_rid(raw),
                tio_pci_segment(raw),
                tio_root_port_number(raw),
            )
        };
        let root_port_id = u16::try_from(port)
            .map_err(|_| Failure::new("no root port above the function", ENODEV))?;
        let segment =
            u8::try_from(segment).map_err(|_| Failure::new("PCI segment above 255", EINVAL))?;
        let start = kernel::time::Instant::<kernel::time::Monotonic>::now();
        // From here every step is undone by dropping what it made: the claim (the mailbox back
        // to coco.ko), the stream (disable, teardown, free), the context (reclaimed below).
        // The claim is taken, and given back, outside the PSP's lock: its release takes the
        // device's locks in coco.ko, which its TDI operations hold when they take the PSP's.
        let claim = Claim::new(pdev)?;
        let mut inner = self.inner.lock();
        if inner.devs.iter().any(|d| raw_dev(&d.pdev) == raw) {
            return Err(Failure::new("already connected", EBUSY));
        }
        let mut stream = Stream::alloc(pdev).map_err(|_| {
            Failure::new(
                "no free Selective IDE stream (endpoint, root port or host bridge)",
                ENOSPC,
            )
        })?;
        let stream_id = stream.host_bridge_stream();
        if stream_id == u8::MAX {
            return Err(Failure::new(
                "no Stream ID left under the host bridge",
                ENOSPC,
            ));
        }
        stream
            .register(stream_id)
            .map_err(|e| Failure::new("cannot register the IDE stream", e))?;
        for p in [Partner::Endpoint, Partner::RootPort] {
            stream
                .setup(p)
                .map_err(|e| Failure::new("cannot set the IDE stream's registers up", e))?;
        }
        let ctx = self
            .mb
            .get()
            .alloc(PAGE)
            .map_err(|e| Failure::new("no memory for the device context", e))?;
        let Inner { cmdbuf, devs } = &mut *inner;
        let mut fw = Firmware::new(self.mb.get(), cmdbuf);
        fw.dev_create(&ctx, rid, root_port_id, segment)?;
        let connected = self.connect_created(&mut fw, pdev, &ctx, &claim, &mut stream, stream_id);
        let stats = match connected {
            Ok(s) => s,
            Err(f) => {
                let _ = fw.dev_reclaim(&ctx);
                return Err(f);
            }
        };
        let us = start.elapsed().as_micros_ceil();
        dev_info!(
            pdev.as_ref(),
            "sev-tio: connected by the PSP: IDE stream {} Secure, {} SPDM messages relayed, {} PSP commands, {} us\n",
            stream_id,
            stats.relays,
            stats.issues,
            us
        );
        // SAFETY: The claim is live; the table is a static.
        unsafe { coco_backend_set_tdi_ops(claim.0.as_ptr(), &TDI_OPS) };
        devs.push(
            TioDev {
                pdev: pdev.into(),
                ctx,
                stream,
                tdi: None,
                claim,
            },
            GFP_KERNEL,
        )
        .map_err(|_| Failure::new("no memory", ENOMEM))
    }

    /// TIO_DEV_CONNECT on a created context, the streams enabled, the evidence read; on
    /// failure the PSP's connection is undone (the caller reclaims the context).
    fn connect_created(
        &self,
        fw: &mut Firmware<'_>,
        pdev: &pci::Device,
        ctx: &DmaBuf,
        claim: &Claim,
        stream: &mut Stream,
        stream_id: u8,
    ) -> Result<Stats, Failure> {
        let dev_ctx = crate::sevtio::Sla::data_4k(ctx.addr() >> 12)
            .ok_or(Failure::new("bad context address", EINVAL))?;
        let out = (self.limits.spdm_out_size_min as usize).max(PAGE);
        let mut bufs =
            SpdmBufs::new(self.mb.get(), out).map_err(|e| Failure::new("no memory", e))?;
        let mut ids = [0u8; 8];
        ids[0] = stream_id;
        let mut stats = fw.spdm(&mut bufs, claim, |spdm| Command::DevConnect {
            spdm,
            dev_ctx,
            tc_mask: 1,
            cert_slot: 0,
            ide_stream_id: ids,
        })?;
        for (p, why) in [
            (
                Partner::Endpoint,
                "the endpoint's IDE stream is not Secure after enable",
            ),
            (
                Partner::RootPort,
                "the root port's IDE stream is not Secure after enable",
            ),
        ] {
            if stream.enable(p).is_err() {
                let why = match stream.status(Partner::Endpoint) {
                    Ok(s) if p == Partner::RootPort && s & pci::ide::STATUS_FAIL != 0 => {
                        "IDE integrity check failure once both ends were enabled: the keys the PSP programmed differ"
                    }
                    _ => why,
                };
                stream.disable(Partner::Endpoint);
                stream.disable(Partner::RootPort);
                // The firmware's keys and session go; the caller reclaims the context.
                let _ = fw.spdm(&mut bufs, claim, |spdm| Command::DevDisconnect {
                    force: true,
                    spdm,
                    dev_ctx,
                });
                return Err(Failure::new(why, ENXIO));
            }
        }
        // The evidence: its failure is logged and leaves the link up (coco.ko then shows no
        // evidence from the PSP rather than a wrong one).
        match self.evidence(fw, pdev, dev_ctx, ctx, claim) {
            Ok(s) => {
                stats.relays += s.relays;
                stats.issues += s.issues;
            }
            Err(f) => dev_warn!(
                pdev.as_ref(),
                "sev-tio: connected, but the PSP's evidence is not shown: {}\n",
                f
            ),
        }
        Ok(stats)
    }

    /// Reads the certificates and measurements through the PSP and hands them to coco.ko.
    fn evidence(
        &self,
        fw: &mut Firmware<'_>,
        pdev: &pci::Device,
        dev_ctx: crate::sevtio::Sla,
        ctx: &DmaBuf,
        claim: &Claim,
    ) -> Result<Stats, Failure> {
        let st = fw.dev_status(ctx)?;
        if !st.connected {
            return Err(Failure::new(
                "the PSP reports the device not connected",
                EIO,
            ));
        }
        let out = (self.limits.spdm_out_size_min as usize).max(PAGE);
        let mut bufs =
            SpdmBufs::new(self.mb.get(), out).map_err(|e| Failure::new("no memory", e))?;
        let mut stats = fw.spdm(&mut bufs, claim, |spdm| Command::DevCertificates {
            spdm,
            dev_ctx,
        })?;
        let chain = bufs.output()?;
        claim
            .certificates(st.cert_slot, st.base_hash_algo, &chain)
            .map_err(|e| Failure::new("coco.ko refused the PSP's certificate chain", e))?;
        let nonce = random_nonce();
        let mut bufs =
            SpdmBufs::new(self.mb.get(), out).map_err(|e| Failure::new("no memory", e))?;
        let s = fw.spdm(&mut bufs, claim, |spdm| Command::DevMeasurements {
            raw_bitstream: false,
            spdm,
            dev_ctx,
            nonce,
        })?;
        stats.relays += s.relays;
        stats.issues += s.issues;
        let evidence = bufs.output()?;
        claim
            .measurements(
                st.cert_slot,
                st.spdm_version,
                st.base_asym_algo,
                st.base_hash_algo,
                &nonce,
                &evidence,
            )
            .map_err(|e| Failure::new("coco.ko refused the PSP's measurements", e))?;
        let _ = pdev;
        Ok(stats)
    }

    fn disconnect(&self, pdev: &pci::Device) {
        // The claim goes back to coco.ko after the PSP's lock is dropped (see `connect`).
        let Some((claim, result)) = self.disconnect_locked(pdev) else {
            return;
        };
        drop(claim);
        match result {
            Ok(()) => dev_info!(pdev.as_ref(), "sev-tio: disconnected\n"),
            Err(_) => dev_info!(pdev.as_ref(), "sev-tio: disconnected (forced)\n"),
        }
    }

    /// Unbinds the TDI, TIO_DEV_DISCONNECT (forced if the device does not answer), releases
    /// the stream and reclaims the context; returns the claim and whether the firmware
    /// disconnected cleanly.
    fn disconnect_locked(&self, pdev: &pci::Device) -> Option<(Claim, Result<(), Failure>)> {
        let mut inner = self.inner.lock();
        let raw = raw_dev(pdev);
        let i = inner.devs.iter().position(|d| raw_dev(&d.pdev) == raw)?;
        let mut d = inner.devs.remove(i).ok()?;
        let Inner { cmdbuf, .. } = &mut *inner;
        let mut fw = Firmware::new(self.mb.get(), cmdbuf);
        if let Some(t) = d.tdi.take() {
            self.tdi_release(&mut fw, pdev, &d, t);
        }
        d.stream.disable(Partner::Endpoint);
        d.stream.disable(Partner::RootPort);
        let dev_ctx = crate::sevtio::Sla::data_4k(d.ctx.addr() >> 12);
        let result = match (dev_ctx, SpdmBufs::new(self.mb.get(), PAGE)) {
            (Some(dev_ctx), Ok(mut bufs)) => {
                let r = fw.spdm(&mut bufs, &d.claim, |spdm| Command::DevDisconnect {
                    force: false,
                    spdm,
                    dev_ctx,
                });
                if let Err(f) = &r {
                    dev_warn!(
                        pdev.as_ref(),
                        "sev-tio: TIO_DEV_DISCONNECT failed ({}); forcing it\n",
                        f
                    );
                    let _ = fw.spdm(&mut bufs, &d.claim, |spdm| Command::DevDisconnect {
                        force: true,
                        spdm,
                        dev_ctx,
                    });
                }
                r.map(|_| ())
            }
            _ => Err(Failure::new("no memory", ENOMEM)),
        };
        if let Err(f) = fw.dev_reclaim(&d.ctx) {
            // The firmware keeps the context; the page stays with it (leaked, not reused).
            dev_err!(
                pdev.as_ref(),
                "sev-tio: TIO_DEV_RECLAIM failed ({}): the context page is left to the firmware\n",
                f
            );
            core::mem::forget(d.ctx);
        }
        let TioDev { stream, claim, .. } = d;
        drop(stream);
        Some((claim, result))
    }

    /// Unbinds (forced if the device does not answer) and reclaims a TDI.
    fn tdi_release(&self, fw: &mut Firmware<'_>, pdev: &pci::Device, d: &TioDev, t: TioTdi) {
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
    fn find(devs: &mut KVec<TioDev>, pdev: *mut bindings::pci_dev) -> Option<&mut TioDev> {
        devs.iter_mut().find(|d| raw_pci(&d.pdev) == pdev)
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
        let d = Self::find(devs, pdev).ok_or(Failure::new(
            "the PSP has not connected the function",
            ENOTCONN,
        ))?;
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
        let d = Self::find(devs, pdev).ok_or(Failure::new(
            "the PSP has not connected the function",
            ENOTCONN,
        ))?;
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
        let d = Self::find(devs, pdev).ok_or(Failure::new(
            "the PSP has not connected the function",
            ENOTCONN,
        ))?;
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
