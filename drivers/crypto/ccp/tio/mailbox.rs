// SPDX-License-Identifier: GPL-2.0

//! The PSP's SEV mailbox, behind one trait with two implementations:
//!
//! - [`Registers`]: the mailbox registers of a PSP this module drives itself (the rig's
//!   emulated PSP, `tio_psp.c`): the command buffer's address in `cmdbuff_addr_lo/hi`, the
//!   command in `cmdresp` bits 26:16, completion in bit 31, the status in bits 15:0.
//! - [`SevDoCmd`]: the ccp driver's `sev_do_cmd()`, on hardware (it owns the PSP there).
//!
//! Everything above ([`crate::firmware`]) is shared. Buffers the firmware reads or writes
//! by address ([`DmaBuf`]) come from the mailbox, which knows how its PSP addresses memory.

use crate::sevtio::{self, PSP_CMDRESP_RECOVERY, PSP_CMDRESP_STS_MASK};
use core::ptr::NonNull;
use kernel::{ffi::c_void, prelude::*};

/// The C part (`tio.h`): an opaque PSP handle.
#[repr(C)]
pub(crate) struct TioPsp {
    _private: [u8; 0],
}

extern "C" {
    fn tio_psp_cmd(psp: *mut TioPsp, cmd: u16, buf: u64, reg: *mut u32) -> c_int;
    fn tio_buf_alloc(psp: *mut TioPsp, size: usize, addr: *mut u64) -> *mut c_void;
    fn tio_buf_free(psp: *mut TioPsp, size: usize, cpu: *mut c_void, addr: u64);
    fn tio_sev_do_cmd(cmd: u16, data: *mut c_void, psp_ret: *mut c_int) -> c_int;
}

use kernel::ffi::c_int;

/// Page size of the firmware's buffers (4 KiB SLAs).
pub(crate) const PAGE: usize = 4096;

/// Zeroed memory the PSP reaches by address, freed on drop. The PSP touches it only while a
/// command runs, and commands run under the firmware lock ([`crate::firmware::Firmware`]),
/// which every access from the CPU also holds.
pub(crate) struct DmaBuf {
    psp: *mut TioPsp,
    cpu: NonNull<u8>,
    addr: u64,
    size: usize,
}

// SAFETY: The memory is owned by the buffer; the PSP handle is only passed back to C, which
// may be called from any thread.
unsafe impl Send for DmaBuf {}
// SAFETY: See `Send`; shared access only reads (`read`), and writes take `&mut self`.
unsafe impl Sync for DmaBuf {}

impl DmaBuf {
    /// `size` zeroed bytes (a multiple of [`PAGE`]) for `psp` (null: pages for `sev_do_cmd()`).
    fn new(psp: *mut TioPsp, size: usize) -> Result<Self> {
        if size == 0 || size % PAGE != 0 {
            return Err(EINVAL);
        }
        let mut addr = 0u64;
        // SAFETY: `psp` is null or a live PSP (the caller's mailbox); `addr` is writable.
        let cpu = unsafe { tio_buf_alloc(psp, size, &mut addr) };
        let cpu = NonNull::new(cpu.cast::<u8>()).ok_or(ENOMEM)?;
        // SAFETY: `cpu` points to `size` bytes just allocated.
        unsafe { core::ptr::write_bytes(cpu.as_ptr(), 0, size) };
        Ok(Self {
            psp,
            cpu,
            addr,
            size,
        })
    }

    /// The address the PSP uses.
    pub(crate) fn addr(&self) -> u64 {
        self.addr
    }

    /// The size in bytes.
    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// The CPU's pointer (for `sev_do_cmd()`, which copies the command buffer).
    fn cpu(&self) -> *mut c_void {
        self.cpu.as_ptr().cast()
    }

    /// Copies `out.len()` bytes from `offset`; `EINVAL` past the end.
    pub(crate) fn read(&self, offset: usize, out: &mut [u8]) -> Result {
        let end = offset.checked_add(out.len()).ok_or(EINVAL)?;
        if end > self.size {
            return Err(EINVAL);
        }
        // SAFETY: `offset..end` lies in the buffer; no command runs (the firmware lock).
        unsafe {
            core::ptr::copy_nonoverlapping(
                self.cpu.as_ptr().add(offset),
                out.as_mut_ptr(),
                out.len(),
            )
        };
        Ok(())
    }

    /// Copies `data` to `offset`; `EINVAL` past the end.
    pub(crate) fn write(&mut self, offset: usize, data: &[u8]) -> Result {
        let end = offset.checked_add(data.len()).ok_or(EINVAL)?;
        if end > self.size {
            return Err(EINVAL);
        }
        // SAFETY: `offset..end` lies in the buffer; no command runs (the firmware lock).
        unsafe {
            core::ptr::copy_nonoverlapping(data.as_ptr(), self.cpu.as_ptr().add(offset), data.len())
        };
        Ok(())
    }

    /// Zeroes the buffer.
    pub(crate) fn clear(&mut self) {
        // SAFETY: The whole buffer is ours; no command runs (the firmware lock).
        unsafe { core::ptr::write_bytes(self.cpu.as_ptr(), 0, self.size) };
    }

    /// The buffer's contents.
    pub(crate) fn to_vec(&self) -> Result<KVec<u8>> {
        let mut v = KVec::from_elem(0u8, self.size, GFP_KERNEL)?;
        self.read(0, &mut v)?;
        Ok(v)
    }
}

impl Drop for DmaBuf {
    fn drop(&mut self) {
        // The firmware may have left secrets (SPDM messages, its context) behind.
        self.clear();
        // SAFETY: Allocated by `tio_buf_alloc()` with these arguments, freed once.
        unsafe { tio_buf_free(self.psp, self.size, self.cpu(), self.addr) };
    }
}

/// Why a command did not reach a status.
#[derive(Clone, Copy, Debug)]
pub(crate) enum MailboxError {
    /// No completion within the timeout.
    Timeout,
    /// The PSP flags RECOVERY: its firmware is unusable until a platform reset.
    Recovery,
    /// No PSP (or no driver for it).
    NoDevice,
    /// The mailbox refused the call (errno).
    Other(Error),
}

impl MailboxError {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::Timeout => "the PSP did not complete the command in time",
            Self::Recovery => "the PSP's firmware needs recovery (RECOVERY set)",
            Self::NoDevice => "no PSP",
            Self::Other(_) => "the PSP mailbox refused the command",
        }
    }

    pub(crate) fn errno(self) -> Error {
        match self {
            Self::Timeout => ETIMEDOUT,
            Self::Recovery => EIO,
            Self::NoDevice => ENODEV,
            Self::Other(e) => e,
        }
    }
}

/// A PSP's SEV mailbox: one command at a time (the caller serialises).
pub(crate) trait Mailbox: Send + Sync {
    /// What it is, for the log.
    fn name(&self) -> &'static str;
    /// A zeroed buffer of `size` bytes (a multiple of [`PAGE`]) the PSP can address.
    fn alloc(&self, size: usize) -> Result<DmaBuf>;
    /// Runs command `cmd` on the command buffer `buf`; returns the firmware's status.
    fn run(&self, cmd: u16, buf: &DmaBuf) -> Result<u16, MailboxError>;
}

/// The mailbox registers of a PSP driven directly (`tio_psp.c`).
pub(crate) struct Registers {
    psp: NonNull<TioPsp>,
}

// SAFETY: The handle is only passed to C, which may be called from any thread; the registers
// are used one command at a time (the firmware lock).
unsafe impl Send for Registers {}
// SAFETY: See `Send`.
unsafe impl Sync for Registers {}

impl Registers {
    /// The mailbox of `psp`.
    ///
    /// # Safety
    ///
    /// `psp` stays valid (its PCI driver bound) for as long as the result and every buffer it
    /// allocates live.
    pub(crate) unsafe fn new(psp: NonNull<TioPsp>) -> Self {
        Self { psp }
    }
}

impl Mailbox for Registers {
    fn name(&self) -> &'static str {
        "registers"
    }

    fn alloc(&self, size: usize) -> Result<DmaBuf> {
        DmaBuf::new(self.psp.as_ptr(), size)
    }

    fn run(&self, cmd: u16, buf: &DmaBuf) -> Result<u16, MailboxError> {
        if buf.psp != self.psp.as_ptr() {
            return Err(MailboxError::Other(EINVAL));
        }
        let mut reg = 0u32;
        // SAFETY: `psp` is live (`new()`'s guarantee); `reg` is writable.
        let rc = unsafe { tio_psp_cmd(self.psp.as_ptr(), cmd, buf.addr(), &mut reg) };
        if rc != 0 {
            return Err(MailboxError::Timeout);
        }
        if reg & PSP_CMDRESP_RECOVERY != 0 {
            return Err(MailboxError::Recovery);
        }
        Ok(u16::try_from(reg & PSP_CMDRESP_STS_MASK).unwrap_or(u16::MAX))
    }
}

/// The ccp driver's `sev_do_cmd()`: the mailbox on hardware, where the ccp driver owns the
/// PSP. It copies the command buffer itself; the other buffers are pages given by physical
/// address (on SEV-SNP hardware the firmware-owned ones must also be made firmware pages in
/// the RMP, which this module does not do yet).
pub(crate) struct SevDoCmd;

impl Mailbox for SevDoCmd {
    fn name(&self) -> &'static str {
        "sev_do_cmd"
    }

    fn alloc(&self, size: usize) -> Result<DmaBuf> {
        DmaBuf::new(core::ptr::null_mut(), size)
    }

    fn run(&self, cmd: u16, buf: &DmaBuf) -> Result<u16, MailboxError> {
        if !buf.psp.is_null() {
            return Err(MailboxError::Other(EINVAL));
        }
        let mut status: c_int = 0;
        // SAFETY: `buf` is a live buffer of at least the command's size; `status` is writable.
        let rc = unsafe { tio_sev_do_cmd(cmd, buf.cpu(), &mut status) };
        if status != 0 {
            return Ok(u16::try_from(status).unwrap_or(u16::MAX));
        }
        match rc {
            0 => Ok(sevtio::SEV_RET_SUCCESS),
            e if e == ENODEV.to_errno() => Err(MailboxError::NoDevice),
            e if e == ETIMEDOUT.to_errno() => Err(MailboxError::Timeout),
            e => Err(MailboxError::Other(Error::from_errno(e))),
        }
    }
}
