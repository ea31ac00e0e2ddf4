// SPDX-License-Identifier: GPL-2.0

//! Root-port IDE keys: how the native backend programs the keys of the host's end of a stream.
//!
//! IDE_KM programs the endpoint's keys through its SPDM session; the root port's keys are the
//! platform's business, through an interface of the root complex's vendor. [`RootPortKeys`] is
//! that interface as the native backend needs it; [`CocoVsec`] implements it for the emulated
//! TEE-IO platform's key-programming VSEC (Documentation/coco/tee-io-platform.rst); a real
//! platform's would be another implementation.

use crate::{
    channel::Failure,
    idekm::{Direction, SubStream, IDE_KM_IFV_SIZE, IDE_KM_KEY_SIZE},
};
use kernel::{pci, prelude::*, sync::aref::ARef};

/// One key slot of a root port: a stream's key set for one direction and sub-stream.
/// Directions are the root port's own (its TX key is its endpoint's RX key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeySlot {
    pub(crate) stream_id: u8,
    pub(crate) dir: Direction,
    pub(crate) sub: SubStream,
    pub(crate) key_set: u8,
}

/// A root port's key programming, one [`KeySlot`] at a time.
pub(crate) trait RootPortKeys: Send + Sync {
    /// Stores `key` and `ifv` in the slot; the key set is not used until [`Self::go`].
    fn program(
        &self,
        slot: KeySlot,
        key: &[u8; IDE_KM_KEY_SIZE],
        ifv: &[u8; IDE_KM_IFV_SIZE],
    ) -> Result<(), Failure>;
    /// Puts the slot's programmed key set in the go state (a receiver may hold both key sets
    /// in go; a transmitter switches to it).
    fn go(&self, slot: KeySlot) -> Result<(), Failure>;
    /// Takes the slot's key set out of the go state and forgets it.
    fn stop(&self, slot: KeySlot) -> Result<(), Failure>;
}

/// Extended capability ID of a vendor-specific extended capability.
const PCI_EXT_CAP_ID_VNDR: u16 = 0x0B;
/// The VSEC ID of the emulated platform's key interface, and its revision.
const COCO_VSEC_ID: u32 = 0xC0C0;
const COCO_VSEC_REV: u32 = 1;

const CTRL: u16 = 0x08;
const STATUS: u16 = 0x0C;
const KEY: u16 = 0x10;
const IFV: u16 = 0x30;

const CMD_PROGRAM: u32 = 1;
const CMD_GO: u32 = 2;
const CMD_STOP: u32 = 3;
const STATUS_DONE: u32 = 1 << 0;
const STATUS_ERROR: u32 = 1 << 1;

/// The emulated TEE-IO platform's root-port key interface (VSEC ID 0xC0C0, revision 1).
pub(crate) struct CocoVsec {
    rp: ARef<pci::Device>,
    pos: u16,
}

impl CocoVsec {
    /// Finds the interface on the root port `rp`.
    pub(crate) fn find(rp: &pci::Device) -> Option<Self> {
        let mut pos = 0u16;
        loop {
            pos = rp.find_next_ext_capability(pos, PCI_EXT_CAP_ID_VNDR)?;
            let hdr = rp.read_config_dword(pos.checked_add(4)?).ok()?;
            if hdr & 0xFFFF == COCO_VSEC_ID && (hdr >> 16) & 0xF == COCO_VSEC_REV {
                return Some(CocoVsec { rp: rp.into(), pos });
            }
        }
    }

    fn reg(&self, off: u16) -> u16 {
        self.pos.saturating_add(off)
    }

    fn failed(&self) -> Failure {
        Failure::new("root port: the key interface did not accept a command", EIO)
    }

    /// Writes `bytes` as little-endian dwords from the register at `base` on; the copies made on
    /// the way are zeroed.
    fn write_secret(&self, base: u16, bytes: &[u8]) -> Result<(), Failure> {
        for (i, c) in bytes.chunks_exact(4).enumerate() {
            let mut w = [0u8; 4];
            w.copy_from_slice(c);
            let off = base.saturating_add(u16::try_from(4 * i).unwrap_or(u16::MAX));
            let r = self
                .rp
                .write_config_dword(self.reg(off), u32::from_le_bytes(w));
            w.fill(0);
            core::hint::black_box(&mut w);
            r.map_err(|_| self.failed())?;
        }
        Ok(())
    }

    /// Runs `cmd` on the slot and checks STATUS (done, no error, the stream echoed).
    fn command(&self, cmd: u32, slot: KeySlot) -> Result<(), Failure> {
        let ctrl = u32::from(slot.stream_id)
            | (u32::from(slot.dir.index()) << 8)
            | (u32::from(slot.sub.index()) << 9)
            | (u32::from(slot.key_set & 1) << 11)
            | (cmd << 12);
        self.rp
            .write_config_dword(self.reg(CTRL), ctrl)
            .map_err(|_| self.failed())?;
        let sts = self
            .rp
            .read_config_dword(self.reg(STATUS))
            .map_err(|_| self.failed())?;
        if sts & STATUS_DONE == 0
            || sts & STATUS_ERROR != 0
            || (sts >> 8) & 0xFF != slot.stream_id.into()
        {
            return Err(self.failed());
        }
        Ok(())
    }
}

impl RootPortKeys for CocoVsec {
    fn program(
        &self,
        slot: KeySlot,
        key: &[u8; IDE_KM_KEY_SIZE],
        ifv: &[u8; IDE_KM_IFV_SIZE],
    ) -> Result<(), Failure> {
        // KEY[n] / IFV[n]: bytes 4n..4n+3 as a little-endian dword (write-only registers).
        self.write_secret(KEY, key)?;
        self.write_secret(IFV, ifv)?;
        self.command(CMD_PROGRAM, slot)
    }

    fn go(&self, slot: KeySlot) -> Result<(), Failure> {
        self.command(CMD_GO, slot)
    }

    fn stop(&self, slot: KeySlot) -> Result<(), Failure> {
        self.command(CMD_STOP, slot)
    }
}
