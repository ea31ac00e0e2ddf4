// SPDX-License-Identifier: GPL-2.0

//! Signed SPDM measurements (GET_MEASUREMENTS), read right after a successful authentication
//! on the same connection, with the slot that authenticated the device.
//!
//! Fewest exchanges first: one signed request for all blocks (operation 0xFF). If the device
//! refuses it (ERROR UnsupportedRequest, ResponseTooLarge, LargeResponse or InvalidRequest), the
//! number of blocks is asked for (operation 0) and the blocks are read one index at a time, the
//! last request signed; the indices the device has are found by asking (they may be sparse). The signature covers L1/L2: for SPDM 1.2+ the VCA messages, then every
//! GET_MEASUREMENTS and MEASUREMENTS since the last signed one (the signed response without its
//! signature); for 1.0 and 1.1 only the measurement messages. An ERROR starts L1/L2 afresh.
//!
//! Everything a verifier needs to re-check the reading without trusting the kernel is kept:
//! L1/L2 as hashed, the signature, the nonce, the algorithms and the slot.

use super::auth::Negotiated;
use crate::{
    channel::{add, fail, proto, Conn, Failure, OOM},
    crypto::{self, Verifier},
    meas::{self, GetMeasurements, IndexSet, MeasurementsParams},
    spdm::{self, SpdmVersion},
};
use kernel::{bindings, prelude::*};

/// One measurement block as the device reported it.
pub(crate) struct Block {
    /// Index (1 to 254).
    pub(crate) index: u8,
    /// DMTFSpecMeasurementValueType: bit 7 raw bit stream, bits 6:0 the type.
    pub(crate) value_type: u8,
    pub(crate) value: KVec<u8>,
}

impl Block {
    /// Whether the value is a raw bit stream (else a digest).
    pub(crate) fn is_raw(&self) -> bool {
        self.value_type & meas::SPDM_MEAS_VALUE_RAW != 0
    }
}

/// A verified reading of the device's measurements.
pub(crate) struct MeasInfo {
    /// The blocks, by increasing index.
    pub(crate) blocks: KVec<Block>,
    /// L1/L2 exactly as hashed for the signature.
    pub(crate) transcript: KVec<u8>,
    pub(crate) signature: KVec<u8>,
    /// The nonce of the signed request, and whether root supplied it.
    pub(crate) nonce: [u8; spdm::SPDM_NONCE_SIZE],
    pub(crate) verifier_nonce: bool,
    /// The slot whose key signed, version and algorithms (BaseAsymAlgo, BaseHashAlgo bits).
    pub(crate) slot: u8,
    pub(crate) version: SpdmVersion,
    pub(crate) asym: u32,
    pub(crate) hash: u32,
    /// MEAS_FRESH_CAP: the device measures afresh on every request.
    pub(crate) fresh_capable: bool,
    /// Wall-clock time of the reading (seconds since the epoch).
    pub(crate) timestamp: i64,
    /// Requests sent, and whether the per-index fallback was used.
    pub(crate) exchanges: usize,
    pub(crate) per_index: bool,
}

impl MeasInfo {
    /// Bytes of kernel memory this reading holds (heap buffers and the structure).
    pub(crate) fn memory(&self) -> usize {
        let blocks: usize = self.blocks.iter().map(|b| b.value.capacity()).sum();
        core::mem::size_of::<Self>()
            + self.blocks.capacity() * core::mem::size_of::<Block>()
            + blocks
            + self.transcript.capacity()
            + self.signature.capacity()
    }
}

/// Errors a device may answer the all-blocks request with when it can only serve indices one
/// at a time.
fn wants_per_index(code: u8) -> bool {
    matches!(
        code,
        spdm::SPDM_ERROR_UNSUPPORTED_REQUEST
            | spdm::SPDM_ERROR_RESPONSE_TOO_LARGE
            | spdm::SPDM_ERROR_LARGE_RESPONSE
            | spdm::SPDM_ERROR_INVALID_REQUEST
    )
}

fn random(buf: &mut [u8]) {
    // SAFETY: `buf` is valid for writes of its length.
    unsafe { bindings::get_random_bytes(buf.as_mut_ptr().cast(), buf.len()) };
}

/// L1/L2 and what one exchange adds to it.
struct Transcript {
    bytes: KVec<u8>,
    /// Length of the VCA prefix (0 before SPDM 1.2): an ERROR truncates to it.
    base: usize,
}

/// One GET_MEASUREMENTS exchange: sends `req`, parses and checks the response, adds both to
/// L1/L2 (the response up to its signature) and collects its blocks. Returns the response's
/// Param1 (the number of indices, for operation 0) and, when signed, the signature.
fn request(
    c: &mut Conn<'_>,
    neg: &Negotiated,
    req: &GetMeasurements,
    l: &mut Transcript,
    seen: &mut IndexSet,
    blocks: &mut KVec<Block>,
    signature: &mut KVec<u8>,
) -> Result<u8, Failure> {
    let mut buf = [0u8; meas::SPDM_GET_MEASUREMENTS_MAX_SIZE];
    let len = meas::encode_get_measurements(req, &mut buf)
        .map_err(|_| fail("cannot encode GET_MEASUREMENTS", EINVAL))?;
    let req_b = buf.get(..len).unwrap_or(&[]);
    let n = c.exchange(req_b, "device answered GET_MEASUREMENTS with an SPDM ERROR")?;
    let params = MeasurementsParams::for_request(req, neg.ssize, neg.meas_hash_size);
    let m = meas::parse_measurements(c.rsp(n), &params).map_err(|e| proto(e.reason()))?;
    m.check(req).map_err(|e| proto(e.reason()))?;
    add(&mut l.bytes, req_b)?;
    add(
        &mut l.bytes,
        c.rsp(n).get(..m.signature_offset).unwrap_or(&[]),
    )?;
    for b in m.blocks() {
        if !seen.insert(b.index) {
            return Err(proto("measurement index reported twice"));
        }
        let mut value = KVec::new();
        add(&mut value, b.value)?;
        blocks
            .push(
                Block {
                    index: b.index,
                    value_type: b.value_type,
                    value,
                },
                GFP_KERNEL,
            )
            .map_err(|_| OOM)?;
    }
    if let Some(sig) = m.signature {
        signature.clear();
        add(signature, sig)?;
    }
    Ok(m.param1)
}

/// The measurement summary hash of `blocks` for the summary type "all" (0xFF): the
/// negotiated hash of every block, in index order, as MEASUREMENTS carries it (Index,
/// MeasurementSpecification, MeasurementSize, then the DMTF value type, size and value). Early
/// DSP0274 1.0/1.1 texts hashed the measurement values alone; 1.1.2 and later, and libspdm at
/// every version, hash whole blocks, as here. Returns the digest size written into `out`.
pub(crate) fn summary_hash(
    blocks: &[Block],
    halg: crypto::HashAlg,
    out: &mut [u8; crypto::MAX_DIGEST_SIZE],
) -> Result<usize, Failure> {
    let mut h = crypto::Hash::new(halg).map_err(|e| fail("cannot allocate the hash", e))?;
    for b in blocks {
        let mut buf =
            KVec::from_elem(0u8, b.value.len().saturating_add(7), GFP_KERNEL).map_err(|_| OOM)?;
        let n = meas::encode_measurement_block(b.index, b.value_type, &b.value, &mut buf)
            .map_err(|_| fail("cannot encode a measurement block", EINVAL))?;
        h.update(buf.get(..n).unwrap_or(&[]))
            .map_err(|e| fail("measurement summary hash failed", e))?;
    }
    h.finalize(out)
        .map_err(|e| fail("measurement summary hash failed", e))?;
    Ok(halg.digest_size())
}

/// Reads the `total` blocks a device reports, index by index, the last request signed: the
/// device's indices need not be 1 to `total` (they may be sparse, e.g. 1, 2, 0xFD, 0xFE), so the
/// indices 1 to 0xFE are asked for in turn until `total` blocks were found; an index the device
/// does not have is answered with ERROR InvalidRequest (which restarts L1/L2) or with no block.
/// Once one was answered with an ERROR, the transcript no longer covers the blocks read before
/// it, so the indices found are read again, without gaps, the last one signed.
fn read_indices(
    c: &mut Conn<'_>,
    neg: &Negotiated,
    total: u8,
    signed_request: &dyn Fn(u8) -> GetMeasurements,
    l: &mut Transcript,
    seen: &mut IndexSet,
    info: &mut MeasInfo,
) -> Result<(), Failure> {
    let version = neg.version;
    let unsigned = |index: u8| {
        let mut r = GetMeasurements::new(version, index, false);
        random(&mut r.requester_context);
        r
    };
    let want = usize::from(total);
    if want > usize::from(meas::SPDM_MEAS_INDEX_MAX) {
        return Err(proto(
            "device reports more measurement blocks than there are indices",
        ));
    }
    let mut found: KVec<u8> = KVec::with_capacity(want, GFP_KERNEL).map_err(|_| OOM)?;
    let mut gap = false;
    for index in meas::SPDM_MEAS_INDEX_MIN..=meas::SPDM_MEAS_INDEX_MAX {
        if found.len() >= want {
            break;
        }
        let req = if found.len() + 1 == want {
            signed_request(index)
        } else {
            unsigned(index)
        };
        let before = info.blocks.len();
        match request(c, neg, &req, l, seen, &mut info.blocks, &mut info.signature) {
            Ok(_) if info.blocks.len() > before => {
                found.push(index, GFP_KERNEL).map_err(|_| OOM)?
            }
            Ok(_) => {}
            Err(f) if f.spdm_error == Some(spdm::SPDM_ERROR_INVALID_REQUEST) => {
                // No block at this index; the ERROR restarted L1/L2.
                gap = true;
                l.bytes.truncate(l.base);
                info.signature.clear();
            }
            Err(f) => return Err(f),
        }
    }
    if found.len() < want {
        return Err(proto("device has fewer measurement blocks than it reports"));
    }
    if gap {
        l.bytes.truncate(l.base);
        *seen = IndexSet::new();
        info.blocks.clear();
        info.signature.clear();
        for (k, &index) in found.iter().enumerate() {
            let req = if k + 1 == found.len() {
                signed_request(index)
            } else {
                unsigned(index)
            };
            request(c, neg, &req, l, seen, &mut info.blocks, &mut info.signature)?;
        }
    }
    Ok(())
}

/// Reads and verifies the measurements on an authenticated connection; `slot` is the slot that
/// authenticated, `verifier` its leaf key, `nonce` root's nonce for the signed request.
pub(crate) fn measure(
    c: &mut Conn<'_>,
    neg: &Negotiated,
    slot: u8,
    verifier: &Verifier,
    nonce: Option<[u8; spdm::SPDM_NONCE_SIZE]>,
) -> Result<MeasInfo, Failure> {
    match neg.meas_cap {
        0 => {
            return Err(fail(
                "device does not support measurements (MEAS_CAP 0)",
                EOPNOTSUPP,
            ))
        }
        1 => {
            return Err(fail(
                "device cannot sign its measurements (MEAS_CAP 1)",
                EOPNOTSUPP,
            ))
        }
        _ => {}
    }
    let start = c.count;
    let version = neg.version;
    let mut l = Transcript {
        bytes: KVec::new(),
        base: 0,
    };
    if version >= SpdmVersion::V1_2 {
        add(&mut l.bytes, &neg.vca)?;
        l.base = l.bytes.len();
    }
    let mut info = MeasInfo {
        blocks: KVec::new(),
        transcript: KVec::new(),
        signature: KVec::new(),
        nonce: [0; spdm::SPDM_NONCE_SIZE],
        verifier_nonce: nonce.is_some(),
        slot,
        version,
        asym: neg.asym,
        hash: neg.hash,
        fresh_capable: neg.meas_fresh,
        timestamp: 0,
        exchanges: 0,
        per_index: false,
    };
    match nonce {
        Some(n) => info.nonce = n,
        None => random(&mut info.nonce),
    }
    let our_nonce = info.nonce;
    let signed_request = |operation: u8| {
        let mut r = GetMeasurements::new(version, operation, true);
        r.nonce = our_nonce;
        r.slot_id = slot;
        random(&mut r.requester_context);
        r
    };

    // All blocks, signed, in one exchange.
    let mut seen = IndexSet::new();
    let all = signed_request(meas::SPDM_MEAS_OP_ALL);
    match request(
        c,
        neg,
        &all,
        &mut l,
        &mut seen,
        &mut info.blocks,
        &mut info.signature,
    ) {
        Ok(_) => {}
        Err(f) if f.spdm_error.is_some_and(wants_per_index) => {
            // The ERROR reset L1/L2; the count and the indices follow, the last one signed.
            info.per_index = true;
            l.bytes.truncate(l.base);
            let mut count_req = GetMeasurements::new(version, meas::SPDM_MEAS_OP_TOTAL, false);
            random(&mut count_req.requester_context);
            let total = request(
                c,
                neg,
                &count_req,
                &mut l,
                &mut seen,
                &mut info.blocks,
                &mut info.signature,
            )?;
            read_indices(c, neg, total, &signed_request, &mut l, &mut seen, &mut info)?;
        }
        Err(f) => return Err(f),
    }
    info.exchanges = c.count.saturating_sub(start);
    if info.signature.is_empty() {
        return Err(proto("MEASUREMENTS carries no signature"));
    }

    // The signature over L1/L2.
    let mut d = [0u8; crypto::MAX_DIGEST_SIZE];
    crypto::digest(neg.halg, &l.bytes, &mut d).map_err(|e| fail("cannot hash L1/L2", e))?;
    let mut m = [0u8; crypto::MAX_DIGEST_SIZE];
    let digest: &[u8] = if version >= SpdmVersion::V1_2 {
        let mut msg =
            [0u8; crate::auth::SPDM_SIGNING_CONTEXT_SIZE + crate::auth::SPDM_MAX_HASH_SIZE];
        let len =
            meas::measurements_signed_message(version, d.get(..neg.hsize).unwrap_or(&[]), &mut msg)
                .map_err(|_| fail("cannot build the signed message", EINVAL))?;
        crypto::digest(neg.halg, msg.get(..len).unwrap_or(&[]), &mut m)
            .map_err(|e| fail("cannot hash the signed message", e))?;
        m.get(..neg.hsize).unwrap_or(&[])
    } else {
        d.get(..neg.hsize).unwrap_or(&[])
    };
    verifier.verify(digest, &info.signature).map_err(|_| {
        fail(
            "MEASUREMENTS signature does not verify with the leaf key",
            EKEYREJECTED,
        )
    })?;
    info.transcript = l.bytes;
    info.blocks.sort_unstable_by_key(|b| b.index);
    // SAFETY: No requirement; reads the wall clock.
    info.timestamp = unsafe { bindings::ktime_get_real_seconds() };
    Ok(info)
}

/// Checks a MeasurementSummaryHash (`what` sent it) against the blocks read on this connection.
pub(crate) fn check_summary(
    summary: &[u8],
    meas: &MeasInfo,
    neg: &Negotiated,
    what: &'static str,
) -> Result<(), Failure> {
    let mut d = [0u8; crypto::MAX_DIGEST_SIZE];
    let n = summary_hash(&meas.blocks, neg.halg, &mut d)?;
    if d.get(..n) != Some(summary) {
        return Err(fail(what, EKEYREJECTED));
    }
    Ok(())
}

#[kunit_tests(coco_meas)]
mod tests {
    use super::*;
    use crate::crypto::HashAlg;

    fn unhex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (o, c) in out.iter_mut().zip(s.as_bytes().chunks(2)) {
            let d = |x: u8| if x >= b'a' { x - b'a' + 10 } else { x - b'0' };
            *o = d(c[0]) * 16 + d(c[1]);
        }
        out
    }

    #[test]
    fn measurement_summary_hash() -> Result {
        let mut a = KVec::new();
        a.extend_from_slice(&[0xaa; 32], GFP_KERNEL)?;
        let mut b = KVec::new();
        b.extend_from_slice(&[0x55; 16], GFP_KERNEL)?;
        let blocks = [
            Block {
                index: 1,
                value_type: 0x00,
                value: a,
            },
            Block {
                index: 2,
                value_type: 0x81,
                value: b,
            },
        ];
        let mut d = [0u8; crypto::MAX_DIGEST_SIZE];
        // SHA-256 of 01 01 23 00 00 20 00 || aa*32 || 02 01 13 00 81 10 00 || 55*16.
        let n = summary_hash(&blocks, HashAlg::Sha256, &mut d).map_err(|f| f.err)?;
        assert_eq!(
            &d[..n],
            &unhex32("871223bcfd357ec9670cc42dd820e2919c68f96cf887f714e5d3c0b34abb1692")
        );
        // A block changed: another summary.
        let n = summary_hash(&blocks[..1], HashAlg::Sha256, &mut d).map_err(|f| f.err)?;
        assert_ne!(
            &d[..n],
            &unhex32("871223bcfd357ec9670cc42dd820e2919c68f96cf887f714e5d3c0b34abb1692")
        );
        Ok(())
    }
}
