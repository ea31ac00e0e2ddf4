// SPDX-License-Identifier: GPL-2.0

//! Evidence a firmware TSM returned for a device it owns (see `backend.rs`): its certificate
//! chain and its signed measurements, shown in the same `certificates/` and `measurements/`
//! files as coco.ko's own, with `coco/evidence_source` naming the TSM.
//!
//! The TSM (its firmware) verified the signatures; coco.ko checks the structure of what it is
//! given (lengths, the SPDM chain and MEASUREMENTS formats) before it shows any of it, and
//! replaces the shown evidence as a whole or not at all.

use super::{AuthStatus, CocoDev, MeasState, MeasStatus, Owner, TsmName};
use crate::{
    meas,
    requester::{
        auth::{AuthInfo, SLOTS},
        meas::{Block, MeasInfo},
    },
    spdm::{self, SpdmVersion},
};
use core::sync::atomic::Ordering;
use kernel::{bindings, prelude::*, sync::Arc};

/// Size of the header in front of measurement evidence: `u32 transcript_len, u32
/// signature_len, u32 response_offset, u32 reserved` (Documentation/coco/sev-tio-platform.rst).
const MEAS_EVIDENCE_HEADER: usize = 16;

fn le32(buf: &[u8], at: usize) -> Option<usize> {
    let b = buf.get(at..at.checked_add(4)?)?;
    usize::try_from(u32::from_le_bytes(b.try_into().ok()?)).ok()
}

/// The first `len` bytes of `buf`, if what follows is the zero padding (up to 31 bytes) a
/// firmware buffer's 32-byte payload alignment adds.
fn unpad(buf: &[u8], len: usize) -> Option<&[u8]> {
    let (data, pad) = (buf.get(..len)?, buf.get(len..)?);
    (pad.len() < 32 && pad.iter().all(|&b| b == 0)).then_some(data)
}

fn copy(src: &[u8]) -> Result<KVec<u8>> {
    let mut v = KVec::with_capacity(src.len(), GFP_KERNEL)?;
    v.extend_from_slice(src, GFP_KERNEL)?;
    Ok(v)
}

impl CocoDev {
    /// Checks that `tsm` owns the mailbox; logs and fails with `EPERM` otherwise.
    fn check_owner(&self, tsm: TsmName) -> Result {
        if self.state.lock().owner != Owner::Tsm(tsm) {
            dev_err!(
                self.dev(),
                "coco: {} gave evidence for a device whose mailbox it does not own\n",
                tsm
            );
            return Err(EPERM);
        }
        Ok(())
    }

    /// Shows the certificate chain of `slot` the TSM `tsm` read (`chain` as SPDM
    /// GET_CERTIFICATE returns it, its root hash of the size `base_hash` gives). Fails with
    /// `EINVAL` (and logs why) for a malformed chain; the shown evidence is then unchanged.
    pub(crate) fn tsm_certificates(
        self: &Arc<Self>,
        tsm: TsmName,
        slot: u8,
        base_hash: u32,
        chain: &[u8],
    ) -> Result {
        let mut op = self.op.lock();
        if self.removed.load(Ordering::Acquire) {
            return Err(ENODEV);
        }
        self.check_owner(tsm)?;
        let bad = |why: &str| {
            dev_err!(self.dev(), "coco: {}'s certificate chain: {}\n", tsm, why);
            EINVAL
        };
        let hsize = spdm_auth_hash_size(base_hash).ok_or_else(|| bad("unknown hash algorithm"))?;
        if usize::from(slot) >= SLOTS {
            return Err(bad("slot out of range"));
        }
        let length = chain
            .get(..2)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(|b| usize::from(u16::from_le_bytes(b)))
            .ok_or_else(|| bad("shorter than an SPDM chain header"))?;
        let chain =
            unpad(chain, length).ok_or_else(|| bad("its Length disagrees with its size"))?;
        let parsed =
            crate::auth::parse_cert_chain(chain, hsize).map_err(|_| bad("not an SPDM chain"))?;
        let count = parsed.count();
        let mut auth = AuthInfo::default();
        auth.slot_mask = 1 << slot;
        auth.certs_offset = 4 + hsize;
        auth.slot = Some(slot);
        if let Some(c) = auth.chains.get_mut(usize::from(slot)) {
            *c = copy(chain)?;
        }
        {
            let mut state = self.state.lock();
            // Measurements shown from coco.ko's own reading would now sit beside a TSM's
            // chain: replace them too (empty until the TSM gives its own).
            if state.evidence != Some(tsm) {
                state.meas = MeasState::new();
            }
            state.auth = auth;
            state.auth_status = AuthStatus::Ok;
            state.evidence = Some(tsm);
        }
        dev_info!(
            self.dev(),
            "coco: certificates of slot {} from {}: {} certificates, {} bytes\n",
            slot,
            tsm,
            count,
            chain.len()
        );
        self.publish(&mut op);
        Ok(())
    }

    /// Shows the measurements the TSM `tsm` read with `nonce` (`evidence` as
    /// TIO_DEV_MEASUREMENTS returns it: the transcript the device signed, the signature, and
    /// where MEASUREMENTS starts in the transcript), signed with `slot`'s key under SPDM
    /// `version` and the algorithms `base_asym`, `base_hash`. Fails with `EINVAL` (logged) for
    /// malformed evidence; the shown measurements are then unchanged.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn tsm_measurements(
        self: &Arc<Self>,
        tsm: TsmName,
        slot: u8,
        version: u8,
        base_asym: u32,
        base_hash: u32,
        nonce: &[u8; spdm::SPDM_NONCE_SIZE],
        evidence: &[u8],
    ) -> Result {
        let mut op = self.op.lock();
        if self.removed.load(Ordering::Acquire) {
            return Err(ENODEV);
        }
        self.check_owner(tsm)?;
        let bad = |why: &str| {
            dev_err!(self.dev(), "coco: {}'s measurements: {}\n", tsm, why);
            EINVAL
        };
        let (tlen, slen, roff) = match (le32(evidence, 0), le32(evidence, 4), le32(evidence, 8)) {
            (Some(t), Some(s), Some(r)) => (t, s, r),
            _ => return Err(bad("shorter than its header")),
        };
        let end = tlen
            .checked_add(slen)
            .ok_or_else(|| bad("lengths overflow"))?;
        let body = evidence
            .get(MEAS_EVIDENCE_HEADER..)
            .and_then(|b| unpad(b, end))
            .ok_or_else(|| bad("lengths do not add up to its size"))?;
        let (transcript, signature) = body.split_at(tlen);
        let response_part = transcript
            .get(roff..)
            .filter(|r| !r.is_empty())
            .ok_or_else(|| bad("response offset outside the transcript"))?;
        let sig_size = spdm_auth_signature_size(base_asym)
            .ok_or_else(|| bad("unknown signature algorithm"))?;
        if sig_size != slen {
            return Err(bad("signature size does not match the algorithm"));
        }
        let mut response = KVec::with_capacity(response_part.len() + slen, GFP_KERNEL)?;
        response.extend_from_slice(response_part, GFP_KERNEL)?;
        response.extend_from_slice(signature, GFP_KERNEL)?;
        let version = SpdmVersion::from_byte(version);
        let params = meas::MeasurementsParams {
            version,
            signed: true,
            signature_size: slen,
            measurement_hash_size: None,
        };
        let parsed = meas::parse_measurements(&response, &params)
            .map_err(|_| bad("MEASUREMENTS is malformed"))?;
        if parsed.slot_id != slot {
            return Err(bad("signed by another slot than the session's"));
        }
        let mut blocks = KVec::new();
        for b in parsed.blocks() {
            blocks.push(
                Block {
                    index: b.index,
                    value_type: b.value_type,
                    value: copy(b.value)?,
                },
                GFP_KERNEL,
            )?;
        }
        blocks.sort_unstable_by_key(|b| b.index);
        let info = MeasInfo {
            blocks,
            transcript: copy(transcript)?,
            signature: copy(signature)?,
            nonce: *nonce,
            verifier_nonce: true,
            slot,
            version,
            asym: base_asym,
            hash: base_hash,
            fresh_capable: false,
            // SAFETY: No requirement; reads the wall clock.
            timestamp: unsafe { bindings::ktime_get_real_seconds() },
            exchanges: 1,
            per_index: false,
        };
        let count = info.blocks.len();
        {
            let mut state = self.state.lock();
            if state.evidence != Some(tsm) {
                state.auth = AuthInfo::default();
                state.auth_status = AuthStatus::Pending;
            }
            state.meas.reading = Some(info);
            state.meas.status = MeasStatus::Ok;
            state.meas.stale = false;
            state.evidence = Some(tsm);
        }
        dev_info!(
            self.dev(),
            "coco: measurements from {}: {} blocks signed by slot {}\n",
            tsm,
            count,
            slot
        );
        self.publish(&mut op);
        Ok(())
    }
}

fn spdm_auth_hash_size(base_hash: u32) -> Option<usize> {
    crate::auth::hash_size(base_hash)
}

fn spdm_auth_signature_size(base_asym: u32) -> Option<usize> {
    crate::auth::signature_size(base_asym)
}

#[kunit_tests(coco_evidence)]
mod tests {
    use super::*;

    /// A firmware buffer's padding: up to 31 zero bytes after the data, nothing else.
    #[test]
    fn unpad_takes_only_zero_padding() {
        let mut buf = [0u8; 64];
        buf[..3].copy_from_slice(&[1, 2, 3]);
        assert_eq!(unpad(&buf[..32], 3), Some(&[1u8, 2, 3][..]));
        assert_eq!(unpad(&buf[..3], 3), Some(&[1u8, 2, 3][..]));
        // 32 bytes of padding or more: not a 32-byte alignment's.
        assert_eq!(unpad(&buf[..35], 3), None);
        // A non-zero byte after the data.
        buf[10] = 1;
        assert_eq!(unpad(&buf[..32], 3), None);
        // Data longer than the buffer.
        assert_eq!(unpad(&buf[..2], 3), None);
    }

    #[test]
    fn le32_reads_in_bounds_only() {
        let b = [1u8, 0, 0, 0, 0xff];
        assert_eq!(le32(&b, 0), Some(1));
        assert_eq!(le32(&b, 2), None);
        assert_eq!(le32(&b, usize::MAX), None);
    }
}
