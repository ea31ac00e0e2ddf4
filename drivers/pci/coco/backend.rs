// SPDX-License-Identifier: GPL-2.0

//! What coco.ko offers firmware TSM backends in other modules (`coco_backend.h`): a TSM that
//! runs SPDM itself (AMD's PSP, for one) claims a device's DOE mailbox, has coco.ko relay its
//! data objects, and hands back the evidence it read, which coco.ko shows in the device's
//! `certificates/` and `measurements/` with `coco/evidence_source` naming the TSM. Releasing the claim gives
//! the mailbox back: coco.ko authenticates the device again.
//!
//! The functions are called from C (`coco_tsm.c` exports them); a claim is an opaque
//! `struct coco_backend *`.

use crate::{
    device::{tdi_ops::CocoBackendTdiOps, CocoDev, FwTdiOps, Relay, TsmName},
    registry, spdm,
};
use kernel::{
    bindings,
    ffi::{c_char, c_int, c_void},
    prelude::*,
    sync::Arc,
};

/// A firmware TSM's claim on a device: `struct coco_backend`.
struct Backend {
    dev: Arc<CocoDev>,
    tsm: TsmName,
    relay: Relay,
}

impl Drop for Backend {
    fn drop(&mut self) {
        // The TSM's TDI operations go before the mailbox (`relay`, dropped next) goes back.
        self.dev.set_fw_tdi(None);
    }
}

/// The tracked device of the PCI function `pdev`.
///
/// # Safety
///
/// `pdev` is a live PCI function.
unsafe fn device_of(pdev: *mut bindings::pci_dev) -> Option<Arc<CocoDev>> {
    // SAFETY: `pdev` is live (the caller's guarantee); its `struct device` is embedded.
    let raw = unsafe { core::ptr::addr_of_mut!((*pdev).dev) };
    registry().and_then(|r| r.find(raw))
}

/// Claims the DOE mailbox of `pdev` for the TSM `tsm` (see `CocoDev::claim_mailbox`); stores
/// the claim in `*out`. 0 or a negative errno: `ENODEV` if coco.ko does not track `pdev` (no
/// CMA/SPDM mailbox), `EBUSY` if another TSM owns it or coco.ko's session is in use.
///
/// # Safety
///
/// `pdev` is a live PCI function, `tsm` a NUL-terminated string, `out` writable.
#[no_mangle]
unsafe extern "C" fn coco_rs_backend_claim(
    pdev: *mut bindings::pci_dev,
    tsm: *const c_char,
    out: *mut *mut c_void,
) -> c_int {
    // SAFETY: `tsm` is a NUL-terminated string (the caller's guarantee).
    let name = TsmName::new(unsafe { CStr::from_char_ptr(tsm) }.to_bytes());
    // SAFETY: `pdev` is live (the caller's guarantee).
    let Some(dev) = (unsafe { device_of(pdev) }) else {
        return ENODEV.to_errno();
    };
    let relay = match dev.claim_mailbox(name) {
        Ok(r) => r,
        Err(e) => return e.to_errno(),
    };
    match KBox::new(
        Backend {
            dev,
            tsm: name,
            relay,
        },
        GFP_KERNEL,
    ) {
        Ok(b) => {
            // SAFETY: `out` is writable (the caller's guarantee).
            unsafe { *out = KBox::into_raw(b).cast() };
            0
        }
        // The relay drops here: the mailbox goes back.
        Err(_) => ENOMEM.to_errno(),
    }
}

/// Gives the mailbox back and frees the claim; coco.ko authenticates the device again.
///
/// # Safety
///
/// `b` came from [`coco_rs_backend_claim`] and is not used afterwards.
#[no_mangle]
unsafe extern "C" fn coco_rs_backend_release(b: *mut c_void) {
    if b.is_null() {
        return;
    }
    // SAFETY: `b` is a claim from `coco_rs_backend_claim()`, released once.
    drop(unsafe { KBox::from_raw(b.cast::<Backend>()) });
}

/// # Safety
///
/// `b` is a live claim.
unsafe fn backend<'a>(b: *mut c_void) -> &'a Backend {
    // SAFETY: `b` is a live claim (the caller's guarantee).
    unsafe { &*b.cast::<Backend>() }
}

/// # Safety
///
/// `p` is null with `len` 0, or valid for reads of `len` bytes for `'a`.
unsafe fn bytes<'a>(p: *const c_void, len: usize) -> &'a [u8] {
    if p.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: Valid for `len` bytes (the caller's guarantee).
    unsafe { core::slice::from_raw_parts(p.cast::<u8>(), len) }
}

/// Relays one CMA/SPDM (1) or secured CMA/SPDM (2) data object payload and receives the
/// answer into `rsp`; returns its length or a negative errno (the reason logged).
///
/// # Safety
///
/// `b` is a live claim; `req` readable for `req_len` bytes and `rsp` writable for `rsp_len`.
#[no_mangle]
unsafe extern "C" fn coco_rs_backend_relay(
    b: *mut c_void,
    object_type: u8,
    req: *const c_void,
    req_len: usize,
    rsp: *mut c_void,
    rsp_len: usize,
) -> isize {
    // SAFETY: The caller's guarantees.
    let (b, req) = unsafe { (backend(b), bytes(req, req_len)) };
    let rsp: &mut [u8] = if rsp.is_null() || rsp_len == 0 {
        &mut []
    } else {
        // SAFETY: Writable for `rsp_len` bytes (the caller's guarantee).
        unsafe { core::slice::from_raw_parts_mut(rsp.cast::<u8>(), rsp_len) }
    };
    match b.relay.exchange(object_type, req, rsp) {
        Ok(n) => isize::try_from(n).unwrap_or(isize::MAX),
        Err(f) => {
            dev_warn!(
                b.dev.dev(),
                "coco: relay for {} failed: {} ({:?})\n",
                b.tsm,
                f.reason,
                f.err
            );
            f.err.to_errno() as isize
        }
    }
}

/// Shows the certificate chain of `slot` the TSM read (see `CocoDev::tsm_certificates`).
///
/// # Safety
///
/// `b` is a live claim; `chain` readable for `len` bytes.
#[no_mangle]
unsafe extern "C" fn coco_rs_backend_certificates(
    b: *mut c_void,
    slot: u8,
    base_hash: u32,
    chain: *const c_void,
    len: usize,
) -> c_int {
    // SAFETY: The caller's guarantees.
    let (b, chain) = unsafe { (backend(b), bytes(chain, len)) };
    match b.dev.tsm_certificates(b.tsm, slot, base_hash, chain) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Shows the measurements the TSM read (see `CocoDev::tsm_measurements`).
///
/// # Safety
///
/// `b` is a live claim; `nonce` readable for 32 bytes, `evidence` for `len` bytes.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn coco_rs_backend_measurements(
    b: *mut c_void,
    slot: u8,
    version: u8,
    base_asym: u32,
    base_hash: u32,
    nonce: *const u8,
    evidence: *const c_void,
    len: usize,
) -> c_int {
    // SAFETY: The caller's guarantees.
    let (b, evidence) = unsafe { (backend(b), bytes(evidence, len)) };
    if nonce.is_null() {
        return EINVAL.to_errno();
    }
    // SAFETY: `nonce` is readable for 32 bytes (the caller's guarantee).
    let nonce = unsafe { &*nonce.cast::<[u8; spdm::SPDM_NONCE_SIZE]>() };
    match b
        .dev
        .tsm_measurements(b.tsm, slot, version, base_asym, base_hash, nonce, evidence)
    {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// Gives coco.ko the TSM's TDI operations: `tdisp` bind and unbind, and the periodic state
/// check, then go through them while the claim lives.
///
/// # Safety
///
/// `b` is a live claim; `ops` is null or valid until the claim is released.
#[no_mangle]
unsafe extern "C" fn coco_rs_backend_set_tdi_ops(b: *mut c_void, ops: *const CocoBackendTdiOps) {
    // SAFETY: The caller's guarantees.
    let (b, ops) = unsafe { (backend(b), FwTdiOps::new(ops)) };
    b.dev.set_fw_tdi(ops);
}
