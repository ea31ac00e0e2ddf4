// SPDX-License-Identifier: GPL-2.0

//! A TDI assigned to a confidential guest (Documentation/coco/sev-tio-guest.rst): held from
//! drivers since enumeration (`pci=tee_accept`), bound through the guest-to-TSM channel,
//! verified (the blobs against the TSM's digests, the chain against `.coco`, the measurements
//! against the reference, the report against the BARs), and accepted (RUN, MMIO_VALIDATE,
//! SDTE_WRITE, then its driver probes) or rejected with the reason in `tdi/error` and a
//! uevent. Its evidence is shown in the same files as on the host, from the TSM
//! (`coco/evidence_source` "tsm sev-tio-guest").
//!
//! The TDI itself is handled by [`super::tdi`] as a firmware TSM's: bind, the report check,
//! the gate, the periodic state check.

use super::{tdi::Gate, CocoDev, IdeOwner, Owner, TsmName};
use crate::{
    auth,
    channel::Failure,
    crypto::{self, HashAlg},
    guest::{
        channel::{self, Channel, Emulated, Transport},
        reference,
    },
    requester::auth::{self as spdm_auth, AuthInfo},
    sevtio_guest as g,
    tdisp::TdiState,
};
use core::sync::atomic::Ordering;
use kernel::{
    bindings,
    prelude::*,
    sync::Arc,
    time::{Instant, Monotonic},
};

/// The TSM name the guest's evidence is shown with.
pub(crate) const GUEST_TSM: &[u8] = b"sev-tio-guest";

/// What the guest side keeps of its TDI.
#[derive(Default)]
pub(crate) struct GuestTdi {
    /// The TDI ID TIO_OP BIND returned.
    tdi_id: Option<u64>,
    /// The certificate chain read at bind (checked against its digest).
    chain: KVec<u8>,
    /// TDI_INFO's algorithms at bind.
    algos: u64,
    /// Accepted: RUN, its MMIO validated, its driver allowed.
    pub(super) accepted: bool,
    /// Verified and waiting for userspace to accept it (`guest_accept=1`).
    verified: bool,
    /// Why the last step failed.
    reason: Option<&'static str>,
    /// The TDI was in RUN when bound: accepted by an earlier instance of coco.ko.
    running_at_bind: bool,
}

fn transport() -> Result<&'static dyn Transport, Failure> {
    Emulated::find()
        .map(|t| t as &dyn Transport)
        .ok_or(Failure::new("no guest-to-TSM channel", ENODEV))
}

/// The SPDM BaseAsymAlgo and BaseHashAlgo of TDI_INFO's `spdm_algos`.
fn spdm_algos(algos: u64) -> Option<(u32, u32)> {
    let asym = match (algos >> 16) & 0xff {
        0 => auth::SPDM_ASYM_RSASSA_3072,
        1 => auth::SPDM_ASYM_ECDSA_P256,
        2 => auth::SPDM_ASYM_ECDSA_P384,
        _ => return None,
    };
    let hash = match (algos >> 24) & 0xff {
        0 => auth::SPDM_HASH_SHA256,
        1 => auth::SPDM_HASH_SHA384,
        _ => return None,
    };
    Some((asym, hash))
}

/// Checks that `blob` hashes (SHA-384) to `digest`, the TSM's.
fn check_digest(
    blob: Option<&[u8]>,
    digest: &[u8; g::DIGEST_SIZE],
    what: &'static str,
) -> Result<(), Failure> {
    let blob = blob.ok_or(Failure::new(what, EPROTO))?;
    let mut d = [0u8; g::DIGEST_SIZE];
    crypto::digest(HashAlg::Sha384, blob, &mut d).map_err(|e| Failure::new("cannot hash", e))?;
    if d != *digest {
        return Err(Failure::new(what, EKEYREJECTED));
    }
    Ok(())
}

impl CocoDev {
    fn guest_channel(&self) -> Result<Channel<'_>, Failure> {
        Ok(Channel::new(
            transport()?,
            channel::sbdf(&self.pdev),
            &self.guest_requests,
        ))
    }

    /// Whether a driver is bound to the function now.
    fn has_driver(&self) -> bool {
        // SAFETY: The device is live; `driver` is read once (it may change right after, which
        // the gate's own check under the device lock covers).
        !unsafe { core::ptr::read_volatile(&raw const (*self.raw.0.as_ptr()).driver) }.is_null()
    }

    fn guest_tsm() -> TsmName {
        TsmName::new(GUEST_TSM)
    }

    /// Records why the guest side failed and logs it; the TDI stays held.
    fn guest_reject(&self, f: &Failure) {
        dev_err!(
            self.dev(),
            "coco: TDI rejected, no driver will bind: {} ({:?})\n",
            f.reason,
            f.err
        );
        self.guest.lock().reason = Some(f.reason);
        self.ide.lock().tdi.failure = Some(f.reason);
        {
            let mut state = self.state.lock();
            if matches!(state.auth_status, super::AuthStatus::Pending) {
                state.auth_status = super::AuthStatus::Failed(Failure::new(f.reason, f.err));
            }
        }
        self.notify_change(c"COCO_TDISP=rejected");
    }

    /// The guest's work when the function is found: bind, verify, accept (or wait for
    /// userspace, or reject).
    pub(super) fn guest_start(self: &Arc<Self>) {
        let _serial = self.guest_serial.lock();
        {
            let mut state = self.state.lock();
            state.owner = Owner::Tsm(Self::guest_tsm());
            // No mailbox to discover: the TSM is the only way to the device.
            state.status = super::Status::Ready;
        }
        self.set_fw_tdi(Some(super::FwTdiOps::guest()));
        if !self.guest.lock().accepted {
            self.guest_run();
        }
    }

    /// Verifies a TDI that is not accepted again (root wrote `authenticated` or `coco/rescan`,
    /// e.g. once the trust anchors are loaded); an accepted one is left alone.
    pub(crate) fn guest_retry(self: &Arc<Self>) -> Result {
        let _serial = self.guest_serial.lock();
        if !self.guest.lock().accepted {
            self.guest_run();
        }
        let gt = self.guest.lock();
        if gt.accepted || gt.verified {
            Ok(())
        } else {
            Err(EKEYREJECTED)
        }
    }

    /// Binds the TDI unless it is bound, verifies it, accepts it with `guest_accept=auto`.
    /// Called with `guest_serial` held.
    fn guest_run(self: &Arc<Self>) {
        let start = Instant::<Monotonic>::now();
        let sent_before = self.guest_requests.load(Ordering::Relaxed);
        {
            let mut gt = self.guest.lock();
            gt.verified = false;
            gt.reason = None;
        }
        let bound = self.ide.lock().tdi.bound.is_some();
        // A driver bound already: the TDI was accepted by an earlier instance of coco.ko (a
        // module reload); the gate keeps it until the TDI is verified again.
        let owner = if self.has_driver() {
            IdeOwner::Tsm
        } else {
            IdeOwner::Sysfs
        };
        if !bound && self.tdi_bind(owner).is_err() {
            // The guest lock is innermost: never held while another is taken.
            let ours = self.guest.lock().reason;
            let theirs = self.ide.lock().tdi.failure;
            let reason = ours.or(theirs).unwrap_or("the TDI could not be bound");
            let f = Failure::new(reason, EIO);
            self.guest_reject(&f);
            return;
        }
        let adopted = self.guest.lock().running_at_bind;
        if let Err(f) = self.guest_verify() {
            if adopted {
                // Accepted before, no longer verifies: its driver goes.
                self.guest.lock().accepted = true;
                self.guest_drop(f.reason, TdiState::ConfigUnlocked);
            }
            self.guest_reject(&f);
            return;
        }
        self.guest.lock().verified = true;
        self.ide.lock().tdi.failure = None;
        if adopted {
            // Accepted by an earlier instance and verified again: it stays accepted.
            self.guest.lock().accepted = true;
            self.ide.lock().tdi.state = Some(TdiState::Run);
            if let Err(e) = self.tdi_gate(Gate::Accept) {
                dev_warn!(self.dev(), "coco: cannot open the driver gate: {:?}\n", e);
            }
            dev_info!(
                self.dev(),
                "coco: TDI in RUN verified again: it stays accepted\n"
            );
            self.arm_tdi_check();
            return;
        }
        if crate::guest_accept_auto() {
            if self.guest_accept_locked().is_ok() {
                let sent = self.guest_requests.load(Ordering::Relaxed);
                dev_info!(
                    self.dev(),
                    "coco: TDI bound, verified and accepted in {} us, {} guest requests ({} since the function was found)\n",
                    u64::try_from(start.elapsed().as_micros_ceil()).unwrap_or(0),
                    sent.wrapping_sub(sent_before),
                    sent
                );
            }
        } else {
            dev_info!(
                self.dev(),
                "coco: TDI verified; write accept to tdisp to let its driver bind\n"
            );
            self.notify_change(c"COCO_TDISP=verified");
        }
    }

    /// TIO_OP BIND and TDI_INFO with the chain and the report, each checked against the TSM's
    /// digest; the report into `buf` (for [`super::tdi`]'s check against the BARs).
    pub(super) fn guest_bind(&self, buf: &mut [u8]) -> Result<usize> {
        let r = (|| -> Result<usize, Failure> {
            let ch = self.guest_channel()?;
            let tdi_id = ch.bind()?;
            let info = ch.tdi_info(tdi_id, g::INFO_STATE | g::INFO_CERTS | g::INFO_REPORT, None)?;
            if info.rsp.status != g::TDI_STATUS_BOUND {
                return Err(Failure::new("the TSM says the TDI is not bound", ENXIO));
            }
            // RUN: accepted by an earlier instance of coco.ko (a module reload), its driver
            // may be bound; verified again below before it is believed.
            let running = match info.state {
                Some(1) => false,
                Some(2) => true,
                _ => {
                    return Err(Failure::new(
                        "the TDI is neither CONFIG_LOCKED nor RUN after bind",
                        EPROTO,
                    ))
                }
            };
            let blobs = g::parse_blobs(&info.data)
                .map_err(|_| Failure::new("the shared data pages are malformed", EPROTO))?;
            check_digest(
                blobs.report,
                &info.rsp.report_digest,
                "the interface report does not match the TSM's digest (changed by the host?)",
            )?;
            check_digest(
                blobs.certificates,
                &info.rsp.certs_digest,
                "the certificate chain does not match the TSM's digest (changed by the host?)",
            )?;
            let report = blobs.report.unwrap_or(&[]);
            let dst = buf
                .get_mut(..report.len())
                .ok_or(Failure::new("the interface report is too large", EOVERFLOW))?;
            dst.copy_from_slice(report);
            let mut chain = KVec::new();
            chain
                .extend_from_slice(blobs.certificates.unwrap_or(&[]), GFP_KERNEL)
                .map_err(|_| Failure::new("out of memory", ENOMEM))?;
            let mut gt = self.guest.lock();
            gt.tdi_id = Some(tdi_id);
            gt.chain = chain;
            gt.algos = info.rsp.spdm_algos;
            gt.running_at_bind = running;
            dev_info!(
                self.dev(),
                "coco: TDI {:#x} bound by the TSM (CONFIG_LOCKED), report and chain match its digests\n",
                tdi_id
            );
            Ok(report.len())
        })();
        r.map_err(|f| {
            dev_err!(
                self.dev(),
                "coco: TDI bind through the TSM failed: {}\n",
                f.reason
            );
            self.guest.lock().reason = Some(f.reason);
            f.err
        })
    }

    /// TIO_OP STOP and UNBIND.
    pub(super) fn guest_unbind(&self) -> Result {
        let ch = self.guest_channel().map_err(|f| f.err)?;
        let stop = ch.stop();
        let unbind = ch.unbind();
        let mut gt = self.guest.lock();
        gt.tdi_id = None;
        gt.accepted = false;
        gt.verified = false;
        stop.and(unbind).map_err(|f| {
            dev_warn!(self.dev(), "coco: {}\n", f.reason);
            f.err
        })
    }

    /// TDI_INFO with INFO_STATE: the TDI's state; ERROR when the TSM no longer has it bound.
    pub(super) fn guest_state(&self) -> Result<TdiState> {
        let tdi_id = self.guest.lock().tdi_id.ok_or(ENOTCONN)?;
        let ch = self.guest_channel().map_err(|f| f.err)?;
        let info = ch
            .tdi_info(tdi_id, g::INFO_STATE, None)
            .map_err(|f| f.err)?;
        if info.rsp.status != g::TDI_STATUS_BOUND {
            return Ok(TdiState::Error);
        }
        info.state.and_then(TdiState::from_u8).ok_or(EPROTO)
    }

    /// The evidence: the measurements read fresh, shown with the chain; the chain verified
    /// against `.coco`, the measurements against the reference.
    fn guest_verify(self: &Arc<Self>) -> Result<(), Failure> {
        let (tdi_id, algos) = {
            let gt = self.guest.lock();
            (gt.tdi_id.ok_or(Failure::new("no TDI", ENOTCONN))?, gt.algos)
        };
        let (asym, hash) = spdm_algos(algos).ok_or(Failure::new(
            "the TSM names unknown SPDM algorithms",
            EPROTO,
        ))?;
        let mut nonce = [0u8; g::NONCE_SIZE];
        // SAFETY: `nonce` is writable for its length.
        unsafe { bindings::get_random_bytes(nonce.as_mut_ptr().cast(), nonce.len()) };
        let ch = self.guest_channel()?;
        let info = ch.tdi_info(tdi_id, g::INFO_MEAS, Some(&nonce))?;
        let blobs = g::parse_blobs(&info.data)
            .map_err(|_| Failure::new("the shared data pages are malformed", EPROTO))?;
        if info.rsp.meas_flags & (g::MEAS_FLAG_DIGEST_VALID | g::MEAS_FLAG_DIGEST_FRESH)
            != (g::MEAS_FLAG_DIGEST_VALID | g::MEAS_FLAG_DIGEST_FRESH)
        {
            return Err(Failure::new(
                "the TSM did not read the measurements fresh",
                EPROTO,
            ));
        }
        check_digest(
            blobs.measurements,
            &info.rsp.meas_digest,
            "the measurements do not match the TSM's digest (changed by the host?)",
        )?;
        let meas = blobs.measurements.unwrap_or(&[]);
        let mut chain = KVec::new();
        chain
            .extend_from_slice(&self.guest.lock().chain, GFP_KERNEL)
            .map_err(|_| Failure::new("out of memory", ENOMEM))?;
        // The chain: the same checks as an authentication's, and a trust anchor in .coco.
        let policy = spdm_auth::Policy {
            preferred_slot: Some(0),
            strict_identity: false,
            ids: self.function_ids(),
            keyring: crate::keyring(),
            measure: false,
            session: false,
        };
        let mut auth_info = AuthInfo::default();
        let trusted = spdm_auth::verify_tsm_chain(&chain, asym, hash, 0, &policy, &mut auth_info);
        // Shown whatever the verdict, for userspace to inspect.
        let tsm = Self::guest_tsm();
        self.tsm_certificates(tsm, 0, hash, &chain)
            .map_err(|e| Failure::new("the certificate chain is malformed", e))?;
        let version = measurements_version(meas)
            .ok_or(Failure::new("the measurements are malformed", EPROTO))?;
        self.tsm_measurements(tsm, 0, version, asym, hash, &nonce, meas)
            .map_err(|e| Failure::new("the measurements are malformed", e))?;
        if let Err(f) = trusted {
            self.state.lock().auth_status =
                super::AuthStatus::Failed(Failure::new(f.reason, f.err));
            return Err(f);
        }
        self.state.lock().auth_status = super::AuthStatus::Ok;
        let state = self.state.lock();
        let blocks = state
            .meas
            .reading
            .as_ref()
            .map(|r| &r.blocks[..])
            .unwrap_or(&[]);
        reference::check(self.dev(), blocks)
    }

    /// Accepts the verified TDI: RUN, MMIO_VALIDATE of every reported range, SDTE_WRITE; then
    /// the gate opens and its driver probes.
    pub(crate) fn guest_accept(self: &Arc<Self>) -> Result {
        if !self.guest_mode {
            return Err(EOPNOTSUPP);
        }
        let _serial = self.guest_serial.lock();
        self.guest_accept_locked()
    }

    /// [`Self::guest_accept`] with `guest_serial` held.
    fn guest_accept_locked(self: &Arc<Self>) -> Result {
        let (tdi_id, verified, accepted) = {
            let gt = self.guest.lock();
            (gt.tdi_id, gt.verified, gt.accepted)
        };
        if accepted {
            return Ok(());
        }
        let Some(tdi_id) = tdi_id.filter(|_| verified) else {
            dev_err!(
                self.dev(),
                "coco: accept refused: the TDI is not verified\n"
            );
            return Err(EPERM);
        };
        let r = (|| -> Result<(), Failure> {
            let ch = self.guest_channel()?;
            ch.run()?;
            let ranges = {
                let ide = self.ide.lock();
                let d = ide
                    .tdi
                    .bound
                    .as_ref()
                    .ok_or(Failure::new("no TDI", ENOTCONN))?;
                let report = d.report().ok_or(Failure::new("no report", ENOTCONN))?;
                let mut v = KVec::new();
                for r in report.ranges() {
                    v.push(r, GFP_KERNEL)
                        .map_err(|_| Failure::new("out of memory", ENOMEM))?;
                }
                v
            };
            for (index, r) in ranges.iter().enumerate() {
                let index =
                    u16::try_from(index).map_err(|_| Failure::new("too many ranges", EINVAL))?;
                let st = ch.mmio_validate(tdi_id, index, r.first_page, r.number_of_pages)?;
                if st != g::MMIO_STATUS_SUCCESS {
                    dev_err!(
                        self.dev(),
                        "coco: MMIO_VALIDATE of range {}: {}\n",
                        r.range_id,
                        g::mmio_status_name(st)
                    );
                    return Err(Failure::new(
                        "the TSM did not validate an MMIO range",
                        EACCES,
                    ));
                }
            }
            let st = ch.sdte_write(tdi_id)?;
            if st != g::SDTE_STATUS_SUCCESS {
                return Err(Failure::new("the TSM did not write the secure DTE", EACCES));
            }
            Ok(())
        })();
        if let Err(f) = r {
            if let Ok(ch) = self.guest_channel() {
                let _ = ch.stop();
            }
            self.guest_reject(&f);
            return Err(f.err);
        }
        {
            let mut ide = self.ide.lock();
            ide.tdi.state = Some(TdiState::Run);
            ide.tdi.failure = None;
        }
        self.guest.lock().accepted = true;
        dev_info!(
            self.dev(),
            "coco: TDI accepted (RUN, MMIO validated, secure DTE written): its driver may bind\n"
        );
        self.notify_change(c"COCO_TDISP=accepted");
        if let Err(e) = self.tdi_gate(Gate::Accept) {
            dev_warn!(self.dev(), "coco: cannot open the driver gate: {:?}\n", e);
        }
        self.arm_tdi_check();
        Ok(())
    }

    /// The TSM reported the accepted TDI out of RUN (ERROR, or no longer bound): its driver is
    /// unbound, the gate closed again, the TDI stopped and unbound. Called from the periodic
    /// check with no lock held.
    pub(super) fn guest_lost(self: &Arc<Self>) {
        let _serial = self.guest_serial.lock();
        if !self.guest.lock().accepted {
            return;
        }
        let reason = "the TDI left RUN (ERROR): its driver was unbound";
        dev_err!(self.dev(), "coco: {}\n", reason);
        self.guest_drop(reason, TdiState::Error);
        self.guest.lock().reason = Some(reason);
        self.notify_change(c"COCO_TDISP=unbound");
    }

    /// Root wrote unbind to `tdisp`: the driver is unbound, the TDI stopped and unbound; it
    /// stays held until it is verified and accepted again.
    pub(crate) fn guest_release(self: &Arc<Self>) -> Result {
        let _serial = self.guest_serial.lock();
        if self.ide.lock().tdi.bound.is_none() {
            return Err(ENOTCONN);
        }
        self.guest_drop("released through tdisp", TdiState::ConfigUnlocked);
        dev_info!(
            self.dev(),
            "coco: TDI released: its driver was unbound, the TDI unbound\n"
        );
        self.notify_change(c"COCO_TDISP=unbound");
        Ok(())
    }

    /// Unbinds the driver of an accepted TDI, closes the gate, stops and unbinds the TDI;
    /// `state` and `reason` are what `tdisp` and `tdi/error` show after. Called with
    /// `guest_serial` held and no other lock.
    fn guest_drop(self: &Arc<Self>, reason: &'static str, state: TdiState) {
        if self.guest.lock().accepted {
            // SAFETY: The device is live (its work and sysfs writers run before teardown
            // completes); no lock of coco.ko is held, and the driver core takes the device
            // lock.
            unsafe { bindings::device_release_driver(self.raw.0.as_ptr()) };
        }
        self.guest.lock().accepted = false;
        if let Err(e) = self.tdi_gate(Gate::Unaccepted) {
            dev_warn!(self.dev(), "coco: cannot close the driver gate: {:?}\n", e);
        }
        if self.tdi_unbind(Gate::Unaccepted).is_err() {
            // The TSM did not answer: forget the TDI anyway, it is not believed any more.
            let _ = self.guest_unbind();
        }
        let mut ide = self.ide.lock();
        ide.tdi.state = Some(state);
        ide.tdi.failure = Some(reason);
        ide.tdi.bound = None;
        ide.tdi.fw = None;
    }
}

/// The SPDM version byte of the MEASUREMENTS response inside measurement evidence
/// (`u32 transcript_len, u32 signature_len, u32 response_offset, u32 reserved`, transcript).
fn measurements_version(evidence: &[u8]) -> Option<u8> {
    let roff = evidence.get(8..12)?;
    let roff = usize::try_from(u32::from_le_bytes(roff.try_into().ok()?)).ok()?;
    evidence.get(16usize.checked_add(roff)?).copied()
}

#[kunit_tests(coco_guest_tdi)]
mod tests {
    use super::*;

    /// TDI_INFO's algorithm codes: only those SEV-TIO defines.
    #[test]
    fn spdm_algos_codes() {
        let p384 = (2u64 << 16) | (1u64 << 24);
        assert_eq!(
            spdm_algos(p384),
            Some((auth::SPDM_ASYM_ECDSA_P384, auth::SPDM_HASH_SHA384))
        );
        assert_eq!(
            spdm_algos(0),
            Some((auth::SPDM_ASYM_RSASSA_3072, auth::SPDM_HASH_SHA256))
        );
        assert_eq!(spdm_algos(3u64 << 16), None);
        assert_eq!(spdm_algos(2u64 << 24), None);
    }

    /// The version byte is read inside the evidence only.
    #[test]
    fn measurements_version_in_bounds() {
        let mut e = [0u8; 20];
        e[8] = 2;
        e[18] = 0x13;
        assert_eq!(measurements_version(&e), Some(0x13));
        e[8] = 4;
        assert_eq!(measurements_version(&e), None);
        e[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(measurements_version(&e), None);
        assert_eq!(measurements_version(&e[..10]), None);
    }

    /// A blob matches only the exact digest.
    #[test]
    fn digests_must_match() {
        let mut d = [0u8; g::DIGEST_SIZE];
        assert!(crypto::digest(HashAlg::Sha384, b"report", &mut d).is_ok());
        assert!(check_digest(Some(b"report"), &d, "x").is_ok());
        assert!(check_digest(Some(b"reporT"), &d, "x").is_err());
        assert!(check_digest(None, &d, "x").is_err());
    }
}
