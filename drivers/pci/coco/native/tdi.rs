// SPDX-License-Identifier: GPL-2.0

//! The native backend's device interfaces (TDISP): coco.ko locks, reads, starts and stops a
//! device's TDI itself, over its own session, on a link its IDE stream secures.
//!
//! [`bind`] checks that the stream is Secure on both ends, learns the device's TDISP version
//! and capabilities, locks the interface (LOCK_INTERFACE with the flags the device supports
//! among those the host wants, the stream as its default stream, no MMIO reporting offset),
//! reads the interface report and checks it against the function's memory BARs before
//! believing it; a report that does not fit fails the bind, and the interface is stopped
//! again. [`Tdi::start`] runs START_INTERFACE with the lock's nonce (kept only until then, and
//! zeroed) and reads the state back; [`Tdi::stop`] runs STOP_INTERFACE.

use super::{EndState, IdeLink};
use crate::{
    channel::{Failure, Transport},
    requester::{session::Session, tdisp},
    tdisp::{
        parse_interface_report, Bar, InterfaceId, InterfaceReport, LockInterface, TdiState,
        TDISP_LOCK_NO_FW_UPDATE, TDISP_NONCE_SIZE,
    },
};
use kernel::{pci, prelude::*};

/// The LOCK_INTERFACE flags the host asks for when the device supports them: no firmware
/// update while locked.
pub(crate) const WANTED_LOCK_FLAGS: u16 = TDISP_LOCK_NO_FW_UPDATE;

/// The start interface nonce of a lock, zeroed on drop.
struct Nonce([u8; TDISP_NONCE_SIZE]);

impl Drop for Nonce {
    fn drop(&mut self) {
        self.0.fill(0);
        core::hint::black_box(&mut self.0);
    }
}

/// A locked device interface.
pub(crate) struct Tdi {
    iface: InterfaceId,
    /// Until START_INTERFACE.
    nonce: Option<Nonce>,
    /// The LOCK_INTERFACE flags used.
    lock_flags: u16,
    /// The interface report read after the lock (checked).
    report: KVec<u8>,
}

/// The TDI of function `ep`: its Requester ID (segment not given: the rig, like most hosts,
/// has one PCI segment).
pub(crate) fn interface_of(ep: &pci::Device) -> InterfaceId {
    InterfaceId::from_rid(ep.dev_id())
}

/// The function's assigned memory BARs (I/O BARs and unassigned ones left out).
fn memory_bars(ep: &pci::Device) -> Result<KVec<Bar>, Failure> {
    let mut bars = KVec::new();
    for i in 0u8..6 {
        let (Ok(base), Ok(size)) = (ep.resource_start(i.into()), ep.resource_len(i.into())) else {
            continue;
        };
        if size == 0 {
            continue;
        }
        // Bit 0 of a BAR register: I/O space.
        let reg = ep.read_config_dword(0x10 + 4 * u16::from(i)).unwrap_or(1);
        if reg & 1 != 0 {
            continue;
        }
        bars.push(
            Bar {
                index: i,
                base,
                size,
            },
            GFP_KERNEL,
        )
        .map_err(|_| Failure::new("no memory for the function's BARs", ENOMEM))?;
    }
    Ok(bars)
}

/// Locks the TDI of `ep`, whose link `link` secures, and reads and checks its report.
pub(crate) fn bind(
    ep: &pci::Device,
    link: &IdeLink,
    s: &mut Session,
    t: &dyn Transport,
) -> Result<Tdi, Failure> {
    let st = link.state(true);
    if st.endpoint != EndState::Secure || st.root_port != EndState::Secure {
        return Err(Failure::new(
            "the IDE stream is not Secure on both ends: IDE keys come before LOCK_INTERFACE",
            ENOLINK,
        ));
    }
    let iface = interface_of(ep);
    tdisp::version(s, t, iface)?;
    let caps = tdisp::capabilities(s, t, iface)?;
    let lock_flags = caps.lock_flags_supported & WANTED_LOCK_FLAGS;
    let nonce = Nonce(tdisp::lock(
        s,
        t,
        iface,
        LockInterface {
            flags: lock_flags,
            default_stream_id: st.stream_id,
            mmio_reporting_offset: 0,
            bind_p2p_addr_mask: 0,
        },
    )?);
    let mut tdi = Tdi {
        iface,
        nonce: Some(nonce),
        lock_flags,
        report: KVec::new(),
    };
    let checked = tdisp::report(s, t, iface, &mut tdi.report).and_then(|()| {
        let report =
            parse_interface_report(&tdi.report).map_err(|e| Failure::new(e.as_str(), EPROTO))?;
        let bars = memory_bars(ep)?;
        report
            .check(&bars, 0)
            .map_err(|e| Failure::new(e.as_str(), EPROTO))
    });
    if let Err(f) = checked {
        // A lying or unreadable report: the interface goes back to CONFIG_UNLOCKED.
        let _ = tdi.stop(s, t);
        return Err(f);
    }
    Ok(tdi)
}

/// The length of the interface report at the start of `r`, from its MMIO range count (offset
/// 12, 16-byte ranges from offset 16) and the device-specific information's length after the
/// ranges; `None` if `r` is too short to hold it.
pub(super) fn report_len(r: &[u8]) -> Option<usize> {
    let le32 = |at: usize| {
        r.get(at..at.checked_add(4)?)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .and_then(|b| usize::try_from(u32::from_le_bytes(b)).ok())
    };
    let info_at = le32(12)?.checked_mul(16)?.checked_add(16)?;
    let len = info_at.checked_add(4)?.checked_add(le32(info_at)?)?;
    (len <= r.len()).then_some(len)
}

/// A TDI a firmware TSM locked (LOCK_INTERFACE with `lock_flags`) and whose interface report
/// it returned: the report is checked against the function's memory BARs as coco.ko checks
/// its own before it is believed.
pub(crate) fn from_firmware(
    ep: &pci::Device,
    report: &[u8],
    lock_flags: u16,
) -> Result<Tdi, Failure> {
    // A firmware buffer's payload is padded to 32 bytes: the report's own fields give its
    // length, and only zero bytes may follow.
    let len = report_len(report).ok_or(Failure::new(
        "the firmware's interface report is shorter than its fields say",
        EPROTO,
    ))?;
    let (report, pad) = report.split_at(len);
    if pad.len() >= 32 || pad.iter().any(|&b| b != 0) {
        return Err(Failure::new(
            "the firmware's interface report has bytes after its end",
            EPROTO,
        ));
    }
    let parsed = parse_interface_report(report).map_err(|e| Failure::new(e.as_str(), EPROTO))?;
    parsed
        .check(&memory_bars(ep)?, 0)
        .map_err(|e| Failure::new(e.as_str(), EPROTO))?;
    let mut copy = KVec::new();
    copy.extend_from_slice(report, GFP_KERNEL)
        .map_err(|_| Failure::new("no memory for the interface report", ENOMEM))?;
    Ok(Tdi {
        iface: interface_of(ep),
        nonce: None,
        lock_flags,
        report: copy,
    })
}

impl Tdi {
    /// START_INTERFACE with the lock's nonce (used up), only from CONFIG_LOCKED as the device
    /// reports it now, then the state read back: RUN.
    pub(crate) fn start(&mut self, s: &mut Session, t: &dyn Transport) -> Result<(), Failure> {
        if self.nonce.is_none() {
            return Err(Failure::new(
                "the interface was started already (the lock's nonce is used up)",
                EALREADY,
            ));
        }
        if tdisp::state(s, t, self.iface)? != TdiState::ConfigLocked {
            return Err(Failure::new(
                "the interface is not CONFIG_LOCKED: START_INTERFACE only follows a lock",
                EINVAL,
            ));
        }
        let nonce = self.nonce.take().ok_or(Failure::new(
            "the interface was started already (the lock's nonce is used up)",
            EALREADY,
        ))?;
        tdisp::start(s, t, self.iface, &nonce.0)?;
        drop(nonce);
        match tdisp::state(s, t, self.iface)? {
            TdiState::Run => Ok(()),
            _ => Err(Failure::new(
                "START_INTERFACE was acknowledged but the interface is not in RUN",
                EIO,
            )),
        }
    }

    /// STOP_INTERFACE, then the state read back: CONFIG_UNLOCKED.
    pub(crate) fn stop(&mut self, s: &mut Session, t: &dyn Transport) -> Result<(), Failure> {
        self.nonce = None;
        tdisp::stop(s, t, self.iface)?;
        match tdisp::state(s, t, self.iface)? {
            TdiState::ConfigUnlocked => Ok(()),
            _ => Err(Failure::new(
                "STOP_INTERFACE was acknowledged but the interface is not CONFIG_UNLOCKED",
                EIO,
            )),
        }
    }

    /// The interface's state, asked from the device now.
    pub(crate) fn state(&self, s: &mut Session, t: &dyn Transport) -> Result<TdiState, Failure> {
        tdisp::state(s, t, self.iface)
    }

    /// The interface report (checked when it was read).
    pub(crate) fn report(&self) -> Option<InterfaceReport<'_>> {
        parse_interface_report(&self.report).ok()
    }

    /// The raw interface report.
    pub(crate) fn report_bytes(&self) -> &[u8] {
        &self.report
    }

    /// The LOCK_INTERFACE flags used.
    pub(crate) fn lock_flags(&self) -> u16 {
        self.lock_flags
    }
}
