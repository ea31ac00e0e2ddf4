// SPDX-License-Identifier: GPL-2.0

//! coco.ko's API for firmware TSM backends (drivers/pci/coco/coco_backend.h), as this module
//! uses it: a [`Claim`] on a device's DOE mailbox (coco.ko ends its own session and relays the
//! firmware's data objects), the evidence handed back, and the TDI operations given to coco.ko.

use crate::firmware::{Failure, Relay};
use core::ptr::NonNull;
use kernel::{
    bindings,
    ffi::{c_char, c_int, c_void},
    pci,
    prelude::*,
};

/// The name coco.ko shows for this TSM (`mailbox_owner`, `evidence_source`).
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
}

/// `struct coco_backend_tdi_ops`: the TDI operations coco.ko's `tdisp` calls.
#[repr(C)]
pub(crate) struct CocoBackendTdiOps {
    pub(crate) bind:
        Option<unsafe extern "C" fn(*mut bindings::pci_dev, u16, *mut c_void, usize) -> isize>,
    pub(crate) unbind: Option<unsafe extern "C" fn(*mut bindings::pci_dev) -> c_int>,
    pub(crate) state: Option<unsafe extern "C" fn(*mut bindings::pci_dev) -> c_int>,
}

/// The function as the C side knows it.
pub(crate) fn raw_pci(pdev: &pci::Device) -> *mut bindings::pci_dev {
    // `pci::Device` wraps `struct pci_dev` transparently.
    core::ptr::from_ref(pdev)
        .cast_mut()
        .cast::<bindings::pci_dev>()
}

/// coco.ko's hand-over of a device's DOE mailbox; dropping it hands the mailbox back (and
/// coco.ko forgets the TDI operations first).
pub(crate) struct Claim(NonNull<c_void>);

// SAFETY: The claim is only passed to coco.ko's backend API, which may be called from any
// thread; it is used under the PSP lock.
unsafe impl Send for Claim {}

impl Claim {
    pub(crate) fn new(pdev: &pci::Device) -> Result<Self, Failure> {
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

    pub(crate) fn certificates(&self, slot: u8, base_hash: u32, chain: &[u8]) -> Result {
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
    pub(crate) fn measurements(
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

impl Claim {
    /// Gives coco.ko the TDI operations for this device.
    pub(crate) fn set_tdi_ops(&self, ops: &'static CocoBackendTdiOps) {
        // SAFETY: The claim is live; the table is static.
        unsafe { coco_backend_set_tdi_ops(self.0.as_ptr(), ops) };
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
