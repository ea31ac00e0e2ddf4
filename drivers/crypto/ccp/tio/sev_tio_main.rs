// SPDX-License-Identifier: GPL-2.0

//! sev_tio: the AMD SEV-TIO backend of coco.
//!
//! On SEV-TIO the platform firmware, on the PSP, is the SPDM requester: it authenticates the
//! device, runs the session and IDE_KM and programs the root port's IDE keys itself; the host
//! relays its SPDM messages over the device's DOE mailbox (through coco.ko, which owns the
//! mailbox) and enables the IDE streams. This module registers that as a link TSM with the
//! PCI/TSM core, so `tsm/connect` offers it beside coco.ko's native backend.
//!
//! Layers, each using only those below it: the `sevtio` codec (rust/sevtio) → the mailbox
//! (`mailbox.rs`: the PSP's registers, or the ccp driver's `sev_do_cmd()`) → the firmware's
//! commands and the SPDM proxy loop (`firmware.rs`) → coco.ko's backend API (`claim.rs`) → the
//! TSM (`backend.rs`, the TDI in `backend/tdi.rs`) → this module.
//! The PSP is the rig's emulated one (`tio_psp.c`'s PCI driver) or, on hardware, the ccp
//! driver's.

use core::ptr::NonNull;
use kernel::{bindings, device, faux, ffi::c_int, prelude::*};

mod backend;
mod claim;
mod firmware;
mod mailbox;

// The codec is shared with the userspace firmware model; not every item is used here.
#[allow(dead_code, unreachable_pub)]
#[path = "../../../../rust/sevtio/src/sevtio.rs"]
mod sevtio;

module! {
    type: SevTio,
    name: "sev_tio",
    authors: ["The coco developers"],
    description: "AMD SEV-TIO backend of coco: the PSP connects PCIe devices (IDE) through the PCI/TSM core",
    license: "GPL",
}

extern "C" {
    fn tio_psp_register() -> c_int;
    fn tio_psp_unregister();
}

/// The PSP in use: the emulated one this module drives (attached by its PCI driver), or the
/// ccp driver's (attached at load, under a faux device).
struct State {
    attached: Option<backend::Attached>,
    faux: Option<faux::Registration>,
}

kernel::sync::global_lock! {
    // SAFETY: Initialised in `SevTio::init()` before any use.
    unsafe(uninit) static STATE: Mutex<State> = State { attached: None, faux: None };
}

/// Called by `tio_psp.c` when the emulated PSP binds.
///
/// # Safety
///
/// `psp` is the driver's live PSP and `dev` its device, both valid until
/// `tio_rs_psp_detach()`.
#[no_mangle]
unsafe extern "C" fn tio_rs_psp_attach(
    psp: *mut mailbox::TioPsp,
    dev: *mut bindings::device,
) -> c_int {
    let Some(psp) = NonNull::new(psp) else {
        return EINVAL.to_errno();
    };
    // SAFETY: `dev` is the live device of the bound driver (the caller's guarantee).
    let parent: &device::Device = unsafe { device::Device::from_raw(dev) };
    // SAFETY: The PSP stays bound until `tio_rs_psp_detach()`, which drops the mailbox (with
    // the TSM and every buffer) first.
    let mb = backend::AnyMailbox::Registers(unsafe { mailbox::Registers::new(psp) });
    let mut state = STATE.lock();
    if state.attached.is_some() {
        dev_err!(parent, "sev-tio: a PSP is already in use\n");
        return EBUSY.to_errno();
    }
    match backend::attach(mb, parent) {
        Ok(a) => {
            state.attached = Some(a);
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// Called by `tio_psp.c` when the emulated PSP unbinds.
#[no_mangle]
extern "C" fn tio_rs_psp_detach(_psp: *mut mailbox::TioPsp) {
    let attached = STATE.lock().attached.take();
    drop(attached);
}

struct SevTio;

impl kernel::Module for SevTio {
    fn init(_module: &'static ThisModule) -> Result<Self> {
        // SAFETY: Called once, before any use of `STATE`.
        unsafe { STATE.init() };
        // SAFETY: No requirement; the driver is unregistered in `drop`.
        kernel::error::to_result(unsafe { tio_psp_register() })?;
        // No emulated PSP: the ccp driver's, if the kernel has one and its firmware does
        // SEV-TIO.
        let mut state = STATE.lock();
        if state.attached.is_none() {
            match faux::Registration::new(c"sev-tio", None) {
                Ok(f) => {
                    let mb = backend::AnyMailbox::SevDoCmd(mailbox::SevDoCmd);
                    match backend::attach(mb, f.as_ref().as_ref()) {
                        Ok(a) => {
                            state.attached = Some(a);
                            state.faux = Some(f);
                        }
                        Err(e) => pr_info!(
                            "no SEV-TIO firmware through the ccp driver ({:?}); waiting for an emulated PSP\n",
                            e
                        ),
                    }
                }
                Err(e) => pr_warn!("cannot create the faux device for sev_do_cmd() ({:?})\n", e),
            }
        }
        drop(state);
        Ok(SevTio)
    }
}

impl Drop for SevTio {
    fn drop(&mut self) {
        // The emulated PSP's driver first (its remove detaches), then the ccp driver's PSP.
        // SAFETY: Registered in `init()`.
        unsafe { tio_psp_unregister() };
        let mut state = STATE.lock();
        let attached = state.attached.take();
        drop(attached);
        let f = state.faux.take();
        drop(state);
        drop(f);
    }
}
