// SPDX-License-Identifier: GPL-2.0

//! The SEV-TIO link TSM: `tsm/connect` with this TSM has the PSP connect the device.
//!
//! Connect: coco.ko hands over the device's DOE mailbox (its own session ends); the host
//! allocates a Selective IDE Stream and writes both ends' stream registers; TIO_DEV_CREATE
//! and TIO_DEV_CONNECT have the PSP authenticate the device, run the SPDM session and IDE_KM
//! and program the root port's keys itself, the host relaying its SPDM; the host enables the
//! endpoint, then the root port, each of which must read Secure. The PSP's certificates and
//! measurements (TIO_DEV_CERTIFICATES, TIO_DEV_MEASUREMENTS) go to coco.ko, which shows them
//! in the device's `certificates/` and `measurements/` (`coco/evidence_source`: "tsm sev-tio").
//!
//! Disconnect undoes it in reverse: a bound TDI unbound, streams disabled, TIO_DEV_DISCONNECT
//! (forced if the device does not answer), the stream released, TIO_DEV_RECLAIM, the mailbox
//! back to coco.ko, which authenticates the device again. The device's TDI (coco.ko's `tdisp`
//! through the PSP) is in `backend/tdi.rs`.

mod tdi;

use crate::claim::Claim;
use crate::firmware::{Failure, Firmware, SpdmBufs, Stats};
use crate::mailbox::{DmaBuf, Mailbox, PAGE};
use crate::sevtio::{Command, TioStatusPage};
use kernel::{
    bindings, device,
    ffi::c_int,
    pci::{
        self,
        ide::{Partner, Stream},
        tsm,
    },
    prelude::*,
    sync::{aref::ARef, Arc, ArcBorrow, Mutex},
};
use tdi::TioTdi;

// `struct device` is only passed by pointer.
#[allow(improper_ctypes)]
extern "C" {
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
        claim.set_tdi_ops(&tdi::TDI_OPS);
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
}
