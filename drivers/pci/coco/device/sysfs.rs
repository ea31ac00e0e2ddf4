// SPDX-License-Identifier: GPL-2.0

//! What coco.ko shows in sysfs: the formatting of every attribute from the per-device state
//! (`coco/`, `certificates/`, `measurements/`). Reads take the state lock briefly and never
//! exchange anything with the device. The file names, formats and permissions are documented
//! in Documentation/ABI/testing/sysfs-bus-pci-coco; the attribute groups are in coco_sysfs.c.

use super::{AuthStatus, CocoDev, IdeStatus, MeasStatus, Owner, SessionStatus, Status, SLOT_AUTO};
use crate::{
    channel::{FeatureList, VersionList},
    meas::MeasurementTypeName,
    native::EndState,
    requester::{
        auth::{self as spdm_auth, IdentityStatus},
        session::{self as spdm_session, handshake_name},
    },
    spdm,
};
use core::{fmt::Write, sync::atomic::Ordering};
use kernel::{ffi::c_uint, prelude::*};

/// sysfs attributes, matching `enum coco_attr` in coco.h.
const ATTR_SPDM_VERSIONS: c_uint = 0;
const ATTR_DOE_FEATURES: c_uint = 1;
const ATTR_STATUS: c_uint = 2;
const ATTR_AUTH_STATUS: c_uint = 3;
const ATTR_SPDM_VERSION: c_uint = 4;
const ATTR_ALGORITHMS: c_uint = 5;
const ATTR_CERT_SLOT: c_uint = 6;
const ATTR_CHALLENGE: c_uint = 7;
const ATTR_PREFERRED_SLOT: c_uint = 9;
const ATTR_CMA_IDENTITY: c_uint = 10;
const ATTR_CMA_IDENTITY_STATUS: c_uint = 11;
const ATTR_SESSION: c_uint = 12;
const ATTR_SESSION_ALGORITHMS: c_uint = 13;
const ATTR_SESSION_HANDSHAKE: c_uint = 14;
const ATTR_SESSION_HEARTBEAT_PERIOD: c_uint = 15;
const ATTR_SESSION_MESSAGES: c_uint = 16;
const ATTR_SESSION_KEY_UPDATES: c_uint = 17;
const ATTR_SESSION_HEARTBEATS: c_uint = 18;
const ATTR_SESSION_VERSION: c_uint = 19;
const ATTR_MAILBOX_OWNER: c_uint = 20;
const ATTR_IDE: c_uint = 21;
const ATTR_IDE_STREAM_ID: c_uint = 22;
const ATTR_IDE_STATE: c_uint = 23;
const ATTR_IDE_KEY_SET: c_uint = 24;
const ATTR_IDE_ALGORITHM: c_uint = 25;
const ATTR_IDE_REFRESHES: c_uint = 26;
const ATTR_TDISP: c_uint = 27;
const ATTR_TDI_INTERFACE_INFO: c_uint = 28;
const ATTR_TDI_LOCK_FLAGS: c_uint = 29;
const ATTR_TDI_MMIO_RANGES: c_uint = 30;
const ATTR_TDI_ERROR: c_uint = 31;
const ATTR_EVIDENCE_SOURCE: c_uint = 32;

/// Attributes of `measurements/` (`enum coco_meas_attr` in coco.h).
const MEAS_STATUS: c_uint = 0;
const MEAS_STALE: c_uint = 1;
const MEAS_TIMESTAMP: c_uint = 2;
const MEAS_FRESH_CAPABLE: c_uint = 3;
const MEAS_SPDM_VERSION: c_uint = 4;
const MEAS_HASH_ALGORITHM: c_uint = 5;
const MEAS_SIGNATURE_ALGORITHM: c_uint = 6;
const MEAS_SLOT: c_uint = 7;
const MEAS_NONCE: c_uint = 8;
const MEAS_TRANSCRIPT: c_uint = 9;
const MEAS_SIGNATURE: c_uint = 10;

/// Attributes of `measurements/<index>/` (`enum coco_block_attr` in coco.h).
const BLOCK_TYPE: c_uint = 0;
const BLOCK_FORMAT: c_uint = 1;
const BLOCK_VALUE: c_uint = 2;

impl CocoDev {
    /// Formats attribute `attr` of `measurements/` into `out`; returns the length written.
    pub(crate) fn meas_show(&self, attr: c_uint, out: &mut [u8]) -> Result<usize> {
        let state = self.state.lock();
        let m = &state.meas;
        let r = m.reading.as_ref();
        let mut w = SliceWriter { buf: out, len: 0 };
        let res = match attr {
            MEAS_STATUS => match m.status {
                MeasStatus::Pending => writeln!(w, "pending"),
                MeasStatus::Ok => writeln!(w, "ok"),
                MeasStatus::Failed(f) => writeln!(w, "error: {}", f.reason),
            },
            MEAS_STALE => writeln!(w, "{}", u8::from(m.stale)),
            MEAS_TIMESTAMP => match r {
                Some(r) => writeln!(w, "{}", r.timestamp),
                None => writeln!(w),
            },
            MEAS_FRESH_CAPABLE => match r {
                Some(r) => writeln!(w, "{}", u8::from(r.fresh_capable)),
                None => writeln!(w),
            },
            MEAS_SPDM_VERSION => match r {
                Some(r) => writeln!(w, "{}.{}", r.version.major(), r.version.minor()),
                None => writeln!(w),
            },
            MEAS_HASH_ALGORITHM => match r {
                Some(r) => writeln!(w, "{}", spdm_auth::hash_short_name(r.hash)),
                None => writeln!(w),
            },
            MEAS_SIGNATURE_ALGORITHM => match r {
                Some(r) => writeln!(w, "{}", spdm_auth::asym_short_name(r.asym)),
                None => writeln!(w),
            },
            MEAS_SLOT => match r {
                Some(r) => writeln!(w, "{}", r.slot),
                None => writeln!(w),
            },
            MEAS_NONCE => match r {
                Some(r) => writeln!(w, "{}", Hex(&r.nonce)),
                None => writeln!(w),
            },
            _ => return Err(EINVAL),
        };
        res.map_err(|_| EOVERFLOW)?;
        Ok(w.len)
    }

    /// Copies up to `out.len()` bytes of the binary `measurements/` attribute `attr` from
    /// `offset`; returns the count.
    pub(crate) fn meas_read(&self, attr: c_uint, offset: usize, out: &mut [u8]) -> Result<usize> {
        let state = self.state.lock();
        let Some(r) = state.meas.reading.as_ref() else {
            return Ok(0);
        };
        match attr {
            MEAS_TRANSCRIPT => Ok(copy_from(&r.transcript, offset, out)),
            MEAS_SIGNATURE => Ok(copy_from(&r.signature, offset, out)),
            _ => Err(EINVAL),
        }
    }

    /// Formats attribute `attr` of the block directory `measurements/<index>/`.
    pub(crate) fn block_show(&self, index: u8, attr: c_uint, out: &mut [u8]) -> Result<usize> {
        let state = self.state.lock();
        let b = state
            .meas
            .reading
            .as_ref()
            .and_then(|r| r.blocks.iter().find(|b| b.index == index))
            .ok_or(ENOENT)?;
        let mut w = SliceWriter { buf: out, len: 0 };
        let res = match attr {
            BLOCK_TYPE => writeln!(
                w,
                "{}",
                MeasurementTypeName(b.value_type & crate::meas::SPDM_MEAS_VALUE_TYPE_MASK)
            ),
            BLOCK_FORMAT => writeln!(w, "{}", if b.is_raw() { "raw" } else { "digest" }),
            // A value too long for a page as hex: EFBIG (the transcript has it).
            BLOCK_VALUE => writeln!(w, "{}", Hex(&b.value)).map_err(|_| core::fmt::Error),
            _ => return Err(EINVAL),
        };
        res.map_err(|_| {
            if attr == BLOCK_VALUE {
                EFBIG
            } else {
                EOVERFLOW
            }
        })?;
        Ok(w.len)
    }

    /// Copies up to `out.len()` bytes of `slot`'s DER certificates from `offset`; returns the
    /// count.
    pub(crate) fn read_slot(&self, slot: usize, offset: usize, out: &mut [u8]) -> usize {
        let state = self.state.lock();
        copy_from(state.auth.slot_certificates(slot), offset, out)
    }

    /// Copies up to `out.len()` bytes of the certificate chain from `offset`; returns the count.
    pub(crate) fn read_cert_chain(&self, offset: usize, out: &mut [u8]) -> usize {
        let state = self.state.lock();
        copy_from(state.auth.certificates(), offset, out)
    }

    /// Whether the last authentication succeeded (the PCI core's `authenticated`).
    pub(crate) fn authenticated(&self) -> bool {
        matches!(self.state.lock().auth_status, AuthStatus::Ok)
    }

    /// Formats the IDE attribute `attr` into `out`, or returns `None` for another attribute.
    /// Takes the IDE lock (outside the state lock, which is never held with it here); for
    /// `ide_state`, reads both ends' stream status registers.
    fn show_ide(&self, attr: c_uint, out: &mut [u8]) -> Option<Result<usize>> {
        if !matches!(
            attr,
            ATTR_IDE
                | ATTR_IDE_STREAM_ID
                | ATTR_IDE_STATE
                | ATTR_IDE_KEY_SET
                | ATTR_IDE_ALGORITHM
                | ATTR_IDE_REFRESHES
        ) {
            return None;
        }
        // Only ide_state reads both ends' status registers.
        let status = self.ide_status(attr == ATTR_IDE_STATE);
        let mut w = SliceWriter { buf: out, len: 0 };
        let link = match &status {
            IdeStatus::Connected(l, _) => Some(l),
            _ => None,
        };
        let r = match attr {
            ATTR_IDE => match status {
                IdeStatus::Disconnected => writeln!(w, "disconnected"),
                IdeStatus::Connected(_, (h, r, e)) => {
                    writeln!(w, "connected stream{}.{}.{}", h, r, e)
                }
                IdeStatus::Failed(why) => writeln!(w, "error: {}", why),
            },
            ATTR_IDE_STREAM_ID => match link {
                Some(l) => writeln!(w, "{}", l.stream_id),
                None => writeln!(w),
            },
            ATTR_IDE_STATE => match link {
                // Both ends, as their status registers read now.
                Some(l) => match (l.endpoint, l.root_port) {
                    (EndState::Secure, EndState::Secure) => writeln!(w, "secure"),
                    (ep, rp) => writeln!(w, "endpoint {}, root port {}", ep.name(), rp.name()),
                },
                None => writeln!(w),
            },
            ATTR_IDE_KEY_SET => match link {
                Some(l) => writeln!(w, "{}", l.key_set),
                None => writeln!(w),
            },
            ATTR_IDE_REFRESHES => match link {
                Some(l) => writeln!(w, "{}", l.refreshes),
                None => writeln!(w),
            },
            // The only algorithm IDE defines (PCIe r6.x sec 6.33.5).
            ATTR_IDE_ALGORITHM => match link {
                Some(_) => writeln!(w, "aes-gcm-256"),
                None => writeln!(w),
            },
            _ => Ok(()),
        };
        Some(r.map(|()| w.len).map_err(|_| EOVERFLOW))
    }

    /// Formats the TDI attribute `attr` (`tdisp` and `tdi/`) into `out`, or returns `None` for
    /// another attribute. What the device reported last, under the IDE lock: no device traffic.
    fn show_tdi(&self, attr: c_uint, out: &mut [u8]) -> Option<Result<usize>> {
        if !matches!(
            attr,
            ATTR_TDISP
                | ATTR_TDI_INTERFACE_INFO
                | ATTR_TDI_LOCK_FLAGS
                | ATTR_TDI_MMIO_RANGES
                | ATTR_TDI_ERROR
        ) {
            return None;
        }
        let ide = self.ide.lock();
        let slot = &ide.tdi;
        let report = slot.bound.as_ref().and_then(|d| d.report());
        let mut w = SliceWriter { buf: out, len: 0 };
        let r = match attr {
            ATTR_TDISP => writeln!(w, "{}", slot.state_name()),
            ATTR_TDI_INTERFACE_INFO => match report {
                Some(r) => writeln!(w, "{:#06x}", r.info.interface_info),
                None => writeln!(w),
            },
            ATTR_TDI_LOCK_FLAGS => match &slot.bound {
                Some(d) => writeln!(w, "{:#06x}", d.lock_flags()),
                None => writeln!(w),
            },
            // One line per range, as reported: first address, last address, attributes, range
            // ID (the layout of the PCI core's `resource`).
            ATTR_TDI_MMIO_RANGES => report.map_or(Ok(()), |r| {
                r.ranges().try_for_each(|m| {
                    let (start, end) = m.reported_span().unwrap_or((0, 0));
                    writeln!(
                        w,
                        "{:#018x} {:#018x} {:#06x} {}",
                        start,
                        end.saturating_sub(1),
                        m.attributes,
                        m.range_id
                    )
                })
            }),
            ATTR_TDI_ERROR => match slot.failure {
                Some(why) => writeln!(w, "{}", why),
                None => writeln!(w),
            },
            _ => Ok(()),
        };
        Some(r.map(|()| w.len).map_err(|_| EOVERFLOW))
    }

    /// Copies up to `out.len()` bytes of the bound TDI's interface report from `offset`;
    /// returns the count (0 when none is bound).
    pub(crate) fn read_tdi_report(&self, offset: usize, out: &mut [u8]) -> usize {
        let ide = self.ide.lock();
        ide.tdi
            .bound
            .as_ref()
            .map_or(0, |d| copy_from(d.report_bytes(), offset, out))
    }

    /// Formats attribute `attr` into `out`; returns the length written.
    pub(crate) fn show(&self, attr: c_uint, out: &mut [u8]) -> Result<usize> {
        if let Some(r) = self.show_ide(attr, out) {
            return r;
        }
        if let Some(r) = self.show_tdi(attr, out) {
            return r;
        }
        let state = self.state.lock();
        let mut w = SliceWriter { buf: out, len: 0 };
        let r = match attr {
            ATTR_SPDM_VERSIONS => writeln!(w, "{}", VersionList(&state.versions)),
            ATTR_EVIDENCE_SOURCE => match state.evidence {
                None => writeln!(w, "coco"),
                Some(tsm) => writeln!(w, "tsm {}", tsm.as_str()),
            },
            ATTR_MAILBOX_OWNER => match state.owner {
                Owner::Coco => writeln!(w, "coco"),
                Owner::Tsm(tsm) => writeln!(w, "tsm {}", tsm.as_str()),
            },
            ATTR_DOE_FEATURES => writeln!(w, "{}", FeatureList(&state.features)),
            ATTR_STATUS => match state.status {
                Status::Pending => writeln!(w, "pending"),
                Status::Ready => writeln!(w, "ok"),
                Status::Failed(f) => writeln!(w, "error: {}", f.reason),
            },
            ATTR_AUTH_STATUS => match state.auth_status {
                AuthStatus::Pending => writeln!(w, "pending"),
                AuthStatus::Ok => writeln!(w, "ok"),
                AuthStatus::Failed(f) => writeln!(w, "error: {}", f),
            },
            ATTR_SPDM_VERSION => match state.auth.negotiated {
                Some((v, _, _)) => writeln!(w, "{}.{}", v.major(), v.minor()),
                None => writeln!(w),
            },
            ATTR_ALGORITHMS => match state.auth.negotiated {
                Some((_, asym, hash)) => writeln!(
                    w,
                    "{} {}",
                    spdm_auth::asym_short_name(asym),
                    spdm_auth::hash_short_name(hash)
                ),
                None => writeln!(w),
            },
            ATTR_CERT_SLOT => match state.auth.slot {
                Some(s) => writeln!(w, "{}", s),
                None => writeln!(w),
            },
            ATTR_CHALLENGE => match (&state.auth_status, state.auth.challenge_sent) {
                (AuthStatus::Pending, _) => writeln!(w, "pending"),
                (AuthStatus::Ok, _) => writeln!(w, "ok"),
                // The device proved it holds the key; the chain's root is not trusted.
                (AuthStatus::Failed(_), true) if state.auth.challenge_ok => writeln!(w, "ok"),
                (AuthStatus::Failed(f), true) => writeln!(w, "error: {}", f.reason),
                (AuthStatus::Failed(_), false) => writeln!(w, "not attempted"),
            },
            ATTR_PREFERRED_SLOT => match self.preferred_slot.load(Ordering::Relaxed) {
                SLOT_AUTO => writeln!(w, "auto"),
                s => writeln!(w, "{}", s),
            },
            // The device wrote it, before anything about it was trusted: escaped.
            ATTR_CMA_IDENTITY => writeln!(w, "{}", Escaped(&state.auth.identity)),
            ATTR_CMA_IDENTITY_STATUS => match state.auth.identity_status {
                IdentityStatus::Unknown => writeln!(w),
                IdentityStatus::Missing => writeln!(w, "missing"),
                IdentityStatus::Match => writeln!(w, "match"),
                IdentityStatus::Mismatch(r) => writeln!(w, "mismatch: {}", r),
            },
            ATTR_SESSION => match state.session {
                SessionStatus::None => writeln!(w, "none"),
                SessionStatus::Established(..) => writeln!(w, "established"),
                SessionStatus::Failed(r) => writeln!(w, "error: {}", r),
                SessionStatus::Unavailable(r) => writeln!(w, "unavailable: {}", r),
            },
            ATTR_SESSION_ALGORITHMS => match state.session {
                SessionStatus::Established(i) => writeln!(
                    w,
                    "{} {}",
                    spdm_session::dhe_name(i.dhe),
                    spdm_session::aead_name(i.aead)
                ),
                _ => writeln!(w),
            },
            ATTR_SESSION_VERSION
            | ATTR_SESSION_HANDSHAKE
            | ATTR_SESSION_HEARTBEAT_PERIOD
            | ATTR_SESSION_MESSAGES
            | ATTR_SESSION_KEY_UPDATES
            | ATTR_SESSION_HEARTBEATS => match state.session {
                SessionStatus::Established(i) => match attr {
                    ATTR_SESSION_VERSION => {
                        let v = spdm::VersionEntry::from_raw(i.secured_version);
                        writeln!(w, "{}.{}", v.major(), v.minor())
                    }
                    ATTR_SESSION_HANDSHAKE => {
                        writeln!(w, "{}", handshake_name(i.handshake_in_clear))
                    }
                    ATTR_SESSION_HEARTBEAT_PERIOD => writeln!(w, "{}", i.heartbeat_period),
                    ATTR_SESSION_MESSAGES => writeln!(w, "{}", i.messages),
                    ATTR_SESSION_KEY_UPDATES => writeln!(w, "{}", i.key_updates),
                    _ => writeln!(w, "{}", i.heartbeats),
                },
                _ => writeln!(w),
            },
            _ => return Err(EINVAL),
        };
        r.map_err(|_| EOVERFLOW)?;
        Ok(w.len)
    }
}

/// Bytes from a device as one line of printable ASCII: characters 0x20 to 0x7e as they are,
/// except the backslash (written `\\`); anything else (newlines, control characters,
/// non-ASCII) as `\xHH`.
struct Escaped<'a>(&'a [u8]);

impl core::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for &b in self.0 {
            match b {
                b'\\' => f.write_str("\\\\")?,
                0x20..=0x7e => f.write_char(char::from(b))?,
                _ => write!(f, "\\x{:02x}", b)?,
            }
        }
        Ok(())
    }
}

/// Lowercase hexadecimal, no separators.
struct Hex<'a>(&'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.0 {
            write!(f, "{:02x}", b)?;
        }
        Ok(())
    }
}

/// Copies up to `out.len()` bytes of `src` from `offset`; returns the count.
fn copy_from(src: &[u8], offset: usize, out: &mut [u8]) -> usize {
    let Some(src) = src.get(offset..) else {
        return 0;
    };
    let n = src.len().min(out.len());
    if let (Some(d), Some(s)) = (out.get_mut(..n), src.get(..n)) {
        d.copy_from_slice(s);
        n
    } else {
        0
    }
}

/// `core::fmt::Write` into a byte slice; fails instead of truncating.
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[kunit_tests(coco)]
mod tests {
    use super::*;
    use crate::{channel::Feature, doe};

    fn render(attr: impl core::fmt::Display) -> Result<KVec<u8>> {
        let mut buf = KVec::from_elem(0u8, 64, GFP_KERNEL)?;
        let mut w = SliceWriter {
            buf: &mut buf,
            len: 0,
        };
        write!(w, "{}", attr).map_err(|_| EOVERFLOW)?;
        let len = w.len;
        buf.truncate(len);
        Ok(buf)
    }

    #[test]
    fn device_strings_are_escaped() -> Result {
        assert_eq!(
            &render(Escaped(b"Vendor=1b36:Device=0010"))?[..],
            b"Vendor=1b36:Device=0010"
        );
        assert_eq!(
            &render(Escaped(b"a\nb\\c\xff\x7f"))?[..],
            b"a\\x0ab\\\\c\\xff\\x7f"
        );
        Ok(())
    }

    #[test]
    fn version_list_format() -> Result {
        assert_eq!(
            &render(VersionList(&[0x1000, 0x1100, 0x1200, 0x1300]))?[..],
            b"1.0 1.1 1.2 1.3"
        );
        assert_eq!(&render(VersionList(&[]))?[..], b"");
        Ok(())
    }

    #[test]
    fn feature_list_format() -> Result {
        let f = [
            Feature {
                vendor: 1,
                object_type: 0,
            },
            Feature {
                vendor: 1,
                object_type: 2,
            },
        ];
        assert_eq!(&render(FeatureList(&f))?[..], b"0001:00 0001:02");
        Ok(())
    }

    #[test]
    fn slice_writer_refuses_overflow() {
        let mut buf = [0u8; 4];
        let mut w = SliceWriter {
            buf: &mut buf,
            len: 0,
        };
        assert!(write!(w, "abcd").is_ok());
        assert!(write!(w, "e").is_err());
        assert_eq!(w.len, 4);
    }

    #[test]
    fn spdm_codec_in_kernel() {
        // The shared codec behaves the same when built with the kernel's flags.
        let mut req = [0u8; 4];
        assert_eq!(spdm::encode_get_version(&mut req).ok(), Some(4));
        assert_eq!(req, [0x10, 0x84, 0, 0]);
        let rsp = [0x10u8, 0x04, 0, 0, 0, 2, 0x00, 0x12, 0x00, 0x13];
        let v = spdm::parse_version_response(&rsp);
        assert!(v.is_ok());
        if let Ok(v) = v {
            let mut it = v.entries();
            assert_eq!(it.next().map(|e| e.raw()), Some(0x1200));
            assert_eq!(it.next().map(|e| e.raw()), Some(0x1300));
            assert!(it.next().is_none());
        }
        // A count larger than the entries present is refused.
        assert!(spdm::parse_version_response(&rsp[..8]).is_err());
    }

    #[test]
    fn doe_discovery_in_kernel() {
        let d = doe::decode_discovery_response(&[0x01, 0x00, 0x02, 0x00]);
        assert!(matches!(
            d,
            Ok(doe::DiscoveryResponse {
                vendor: 1,
                object_type: 2,
                next_index: 0
            })
        ));
        assert!(doe::decode_discovery_response(&[0x01, 0x00]).is_err());
    }
}
