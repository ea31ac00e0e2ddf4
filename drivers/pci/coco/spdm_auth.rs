// SPDX-License-Identifier: GPL-2.0

//! SPDM authentication of a device over its CMA/SPDM DOE mailbox (requester side).
//!
//! Runs after GET_VERSION: GET_CAPABILITIES, NEGOTIATE_ALGORITHMS, GET_DIGESTS,
//! GET_CERTIFICATE (lowest populated slot), certificate chain validation, CHALLENGE and the
//! verification of the CHALLENGE_AUTH signature over the transcript (see `auth.rs` for the
//! transcript rules).
//!
//! The chain is checked for internal consistency only: DIGESTS digest, DER structure, each
//! certificate signed by the previous one, names, validity periods and the CA flag on every
//! certificate but the leaf. Its root is NOT checked against a trusted keyring yet.

use crate::{
    auth::{self, Capabilities, GetCertificate, NegotiateAlgorithms},
    cocodev::Failure,
    crypto::{self, HashAlg, SigAlg, X509Cert},
    spdm::{self, SpdmVersion},
};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{bindings, ffi::c_ulong, pci::doe as pcidoe, prelude::*};

/// Largest SPDM message coco.ko receives (its DataTransferSize and MaxSPDMmsgSize): QEMU's DOE
/// emulation limits a reply to 4608 bytes including the 8-byte DOE header.
pub(crate) const REQ_DATA_TRANSFER_SIZE: u32 = 4600;

/// Receive buffer: the largest message plus one dword, so that an oversized (truncated)
/// response is detected.
const RX_SIZE: usize = REQ_DATA_TRANSFER_SIZE as usize + 4;

/// Versions coco.ko speaks; the highest one the device also lists is used.
const OUR_VERSIONS: [SpdmVersion; 4] = [
    SpdmVersion::V1_0,
    SpdmVersion::V1_1,
    SpdmVersion::V1_2,
    SpdmVersion::V1_3,
];

/// Signature algorithms offered: those the kernel can verify (no RSAPSS).
const OFFERED_ASYM: u32 = auth::SPDM_ASYM_ECDSA_P256
    | auth::SPDM_ASYM_ECDSA_P384
    | auth::SPDM_ASYM_ECDSA_P521
    | auth::SPDM_ASYM_RSASSA_2048
    | auth::SPDM_ASYM_RSASSA_3072
    | auth::SPDM_ASYM_RSASSA_4096;

/// Hash algorithms offered.
const OFFERED_HASH: u32 = auth::SPDM_HASH_SHA256 | auth::SPDM_HASH_SHA384 | auth::SPDM_HASH_SHA512;

/// How often a request answered with ERROR Busy or ResponseNotReady is retried.
const MAX_RETRIES: usize = 8;

/// Pause before resending a request answered with ERROR Busy, in milliseconds.
const BUSY_DELAY_MS: u32 = 20;

/// Longest ResponseNotReady wait (RDT) accepted, in microseconds.
const MAX_RDT_US: u64 = 1_000_000;

/// Most GET_CERTIFICATE requests for one chain (a 64 KiB chain in 1 KiB portions).
const MAX_CERT_REQUESTS: usize = 64;

/// Smallest portion a device may return while more of the chain remains.
const MIN_CERT_PORTION: usize = 512;

/// What an authentication run established; filled in as the steps succeed.
#[derive(Default)]
pub(crate) struct AuthInfo {
    /// Negotiated version and algorithms, once ALGORITHMS was accepted.
    pub(crate) negotiated: Option<(SpdmVersion, u32, u32)>,
    /// Slot whose chain was validated, and that chain as the device sent it (SPDM header and
    /// root hash included); empty until the chain was validated.
    pub(crate) slot: Option<u8>,
    pub(crate) chain: KVec<u8>,
    /// Offset of the first DER certificate in `chain`.
    pub(crate) certs_offset: usize,
    /// CHALLENGE was sent: a failure from then on is a challenge failure.
    pub(crate) challenge_sent: bool,
    /// SPDM requests this run sent after VERSION (Busy/ResponseNotReady retries not counted),
    /// for the log and `make bench`.
    pub(crate) exchanges: usize,
    /// The slot's digest matched the chain of the previous run: GET_CERTIFICATE was skipped.
    pub(crate) chain_cached: bool,
}

impl AuthInfo {
    /// The DER certificates of the validated chain.
    pub(crate) fn certificates(&self) -> &[u8] {
        self.chain.get(self.certs_offset..).unwrap_or(&[])
    }
}

const fn fail(reason: &'static str, err: Error) -> Failure {
    Failure {
        reason,
        err,
        spdm_error: None,
    }
}

const fn proto(reason: &'static str) -> Failure {
    fail(reason, EPROTO)
}

const OOM: Failure = fail("out of memory", ENOMEM);

/// Short name of a negotiated asymmetric algorithm, for sysfs.
pub(crate) fn asym_short_name(asym: u32) -> &'static str {
    match asym {
        auth::SPDM_ASYM_ECDSA_P256 => "ecdsa-p256",
        auth::SPDM_ASYM_ECDSA_P384 => "ecdsa-p384",
        auth::SPDM_ASYM_ECDSA_P521 => "ecdsa-p521",
        auth::SPDM_ASYM_RSASSA_2048 => "rsassa-2048",
        auth::SPDM_ASYM_RSASSA_3072 => "rsassa-3072",
        auth::SPDM_ASYM_RSASSA_4096 => "rsassa-4096",
        _ => "unknown",
    }
}

/// Short name of a negotiated hash algorithm, for sysfs.
pub(crate) fn hash_short_name(hash: u32) -> &'static str {
    match hash {
        auth::SPDM_HASH_SHA256 => "sha256",
        auth::SPDM_HASH_SHA384 => "sha384",
        auth::SPDM_HASH_SHA512 => "sha512",
        _ => "unknown",
    }
}

fn hash_alg(hash: u32) -> Option<HashAlg> {
    match hash {
        auth::SPDM_HASH_SHA256 => Some(HashAlg::Sha256),
        auth::SPDM_HASH_SHA384 => Some(HashAlg::Sha384),
        auth::SPDM_HASH_SHA512 => Some(HashAlg::Sha512),
        _ => None,
    }
}

/// The kernel signature algorithm and, for RSA, the modulus size a negotiated BaseAsymAlgo needs.
fn sig_alg(asym: u32, hash: HashAlg) -> Option<(SigAlg, u32)> {
    match asym {
        auth::SPDM_ASYM_ECDSA_P256 => Some((SigAlg::EcdsaP256, 256)),
        auth::SPDM_ASYM_ECDSA_P384 => Some((SigAlg::EcdsaP384, 384)),
        auth::SPDM_ASYM_ECDSA_P521 => Some((SigAlg::EcdsaP521, 521)),
        auth::SPDM_ASYM_RSASSA_2048 => Some((SigAlg::RsaPkcs1(hash), 2048)),
        auth::SPDM_ASYM_RSASSA_3072 => Some((SigAlg::RsaPkcs1(hash), 3072)),
        auth::SPDM_ASYM_RSASSA_4096 => Some((SigAlg::RsaPkcs1(hash), 4096)),
        _ => None,
    }
}

/// The requester's side of one connection: mailbox, receive buffer, negotiated version.
struct Conn<'a, 'b> {
    /// Requests sent so far.
    count: usize,
    mb: &'a pcidoe::Mailbox<'b>,
    removed: &'a AtomicBool,
    rx: KVec<u8>,
    version: SpdmVersion,
}

/// Sends the SPDM request `req` (negotiated `version`) and returns the length of the response
/// in `rx`, which is not an ERROR.
///
/// ERROR Busy resends the request; ERROR ResponseNotReady waits the stated time and asks
/// with RESPOND_IF_READY (both at most [`MAX_RETRIES`] times). Any other ERROR fails with
/// `on_error` and the SPDM error code.
pub(crate) fn exchange(
    mb: &pcidoe::Mailbox<'_>,
    removed: &AtomicBool,
    version: SpdmVersion,
    req: &[u8],
    rx: &mut [u8],
    on_error: &'static str,
) -> Result<usize, Failure> {
    let code = req.get(1).copied().unwrap_or(0);
    let mut riy = [0u8; spdm::SPDM_RESPOND_IF_READY_SIZE];
    let mut use_riy = false;
    for _ in 0..=MAX_RETRIES {
        if removed.load(Ordering::Acquire) {
            return Err(fail("device removed", ENODEV));
        }
        let r = if use_riy { &riy[..] } else { req };
        let n = mb
            .exchange(pcidoe::VENDOR_PCI_SIG, pcidoe::FEATURE_CMA, r, rx)
            .map_err(|e| {
                if e == ETIMEDOUT {
                    fail("DOE exchange timed out (no answer from the device)", e)
                } else {
                    fail("DOE exchange failed", e)
                }
            })?;
        if n >= rx.len() {
            return Err(proto("SPDM response too long"));
        }
        let rsp = rx.get(..n).unwrap_or(&[]);
        let Ok(e) = spdm::parse_error_response(rsp) else {
            return Ok(n);
        };
        match e.code {
            spdm::SPDM_ERROR_BUSY => {
                // SAFETY: Sleeping is allowed: the probe runs in process context.
                unsafe { bindings::msleep(BUSY_DELAY_MS) };
            }
            spdm::SPDM_ERROR_RESPONSE_NOT_READY => {
                let rnr = e
                    .response_not_ready()
                    .ok_or(proto("malformed ResponseNotReady error"))?;
                if rnr.request_code != code {
                    return Err(proto("ResponseNotReady names another request"));
                }
                let wait = rnr.wait_us();
                if wait > MAX_RDT_US {
                    return Err(fail(
                        "device asks to wait too long (ResponseNotReady)",
                        ETIMEDOUT,
                    ));
                }
                let riy_req = spdm::RespondIfReady::for_error(version, &rnr);
                spdm::encode_respond_if_ready(&riy_req, &mut riy)
                    .map_err(|_| fail("cannot encode RESPOND_IF_READY", EINVAL))?;
                use_riy = true;
                // SAFETY: Sleeping is allowed: the probe runs in process context.
                unsafe { bindings::fsleep(c_ulong::try_from(wait).unwrap_or(c_ulong::MAX)) };
            }
            c => {
                return Err(Failure {
                    spdm_error: Some(c),
                    ..proto(on_error)
                })
            }
        }
    }
    Err(fail(
        "device stayed busy or not ready (retries exhausted)",
        EBUSY,
    ))
}

impl Conn<'_, '_> {
    /// [`exchange`] on this connection, into its receive buffer.
    fn exchange(&mut self, req: &[u8], on_error: &'static str) -> Result<usize, Failure> {
        self.count = self.count.saturating_add(1);
        exchange(
            self.mb,
            self.removed,
            self.version,
            req,
            &mut self.rx,
            on_error,
        )
    }

    fn rsp(&self, n: usize) -> &[u8] {
        self.rx.get(..n).unwrap_or(&[])
    }
}

fn add(v: &mut KVec<u8>, bytes: &[u8]) -> Result<(), Failure> {
    v.extend_from_slice(bytes, GFP_KERNEL).map_err(|_| OOM)
}

fn update(h: &mut crypto::Hash, bytes: &[u8]) -> Result<(), Failure> {
    h.update(bytes)
        .map_err(|e| fail("transcript hash failed", e))
}

/// Authenticates the device. `vca` holds GET_VERSION and VERSION exactly as exchanged, and
/// `versions` the VERSION entries. `info` collects what was established, also on failure.
///
/// `cached` is the chain a previous run validated (empty if none): when the slot's digest in
/// DIGESTS matches it, GET_CERTIFICATE is skipped and the cached chain is validated again
/// (validity, signatures) and used for the CHALLENGE. The transcript then holds only the
/// exchanges that took place, as DSP0274 allows for a requester with a cached chain.
pub(crate) fn authenticate(
    mb: &pcidoe::Mailbox<'_>,
    removed: &AtomicBool,
    vca: &[u8],
    versions: &[u16],
    cached: &[u8],
    info: &mut AuthInfo,
) -> Result<(), Failure> {
    let mut c = Conn {
        count: 0,
        mb,
        removed,
        rx: KVec::new(),
        version: SpdmVersion::V1_0,
    };
    let ret = run(&mut c, vca, versions, cached, info);
    info.exchanges = c.count;
    ret
}

fn run(
    c: &mut Conn<'_, '_>,
    vca: &[u8],
    versions: &[u16],
    cached: &[u8],
    info: &mut AuthInfo,
) -> Result<(), Failure> {
    let version = spdm::highest_common(
        &OUR_VERSIONS,
        versions.iter().map(|&v| spdm::VersionEntry::from_raw(v)),
    )
    .ok_or(proto("no common SPDM version"))?;
    c.rx = KVec::from_elem(0u8, RX_SIZE, GFP_KERNEL).map_err(|_| OOM)?;
    c.version = version;
    let mut vca_buf = KVec::with_capacity(256, GFP_KERNEL).map_err(|_| OOM)?;
    add(&mut vca_buf, vca)?;

    // GET_CAPABILITIES
    let mut req = [0u8; 64];
    let mut caps = Capabilities::new(version);
    if version >= SpdmVersion::V1_2 {
        caps.data_transfer_size = REQ_DATA_TRANSFER_SIZE;
        caps.max_spdm_msg_size = REQ_DATA_TRANSFER_SIZE;
    }
    let len = auth::encode_get_capabilities(&caps, &mut req)
        .map_err(|_| fail("cannot encode GET_CAPABILITIES", EINVAL))?;
    let req_b = req.get(..len).unwrap_or(&[]);
    let n = c.exchange(req_b, "device answered GET_CAPABILITIES with an SPDM ERROR")?;
    let rsp_caps = auth::parse_capabilities(c.rsp(n), version).map_err(|e| proto(e.as_str()))?;
    if !rsp_caps.has(auth::SPDM_CAP_CERT | auth::SPDM_CAP_CHAL) {
        return Err(fail(
            "device supports no certificates or CHALLENGE (CERT_CAP, CHAL_CAP)",
            EOPNOTSUPP,
        ));
    }
    add(&mut vca_buf, req_b)?;
    add(
        &mut vca_buf,
        c.rsp(n)
            .get(..auth::capabilities_size(version))
            .unwrap_or(&[]),
    )?;

    // NEGOTIATE_ALGORITHMS
    let mut neg = NegotiateAlgorithms::new(version);
    neg.measurement_specification = auth::SPDM_MEAS_SPEC_DMTF;
    neg.other_params = auth::SPDM_OPAQUE_DATA_FMT1;
    neg.base_asym = OFFERED_ASYM;
    neg.base_hash = OFFERED_HASH;
    let len = auth::encode_negotiate_algorithms(&neg, &mut req)
        .map_err(|_| fail("cannot encode NEGOTIATE_ALGORITHMS", EINVAL))?;
    let req_b = req.get(..len).unwrap_or(&[]);
    let n = c.exchange(
        req_b,
        "device answered NEGOTIATE_ALGORITHMS with an SPDM ERROR",
    )?;
    let algs = auth::parse_algorithms(c.rsp(n), version).map_err(|e| proto(e.as_str()))?;
    algs.check_against(&neg, true)
        .map_err(|e| proto(e.as_str()))?;
    let halg = hash_alg(algs.base_hash).ok_or(proto("device selected an unknown hash"))?;
    let (salg, key_bits) =
        sig_alg(algs.base_asym, halg).ok_or(proto("device selected an unknown signature"))?;
    let hsize = halg.digest_size();
    let ssize = algs
        .signature_size()
        .ok_or(proto("device selected an unknown signature"))?;
    add(&mut vca_buf, req_b)?;
    add(&mut vca_buf, c.rsp(n).get(..algs.len).unwrap_or(&[]))?;
    info.negotiated = Some((version, algs.base_asym, algs.base_hash));

    let mut th = crypto::Hash::new(halg).map_err(|e| fail("cannot allocate the hash", e))?;
    update(&mut th, &vca_buf)?;

    // GET_DIGESTS
    let len = auth::encode_get_digests(version, &mut req)
        .map_err(|_| fail("cannot encode GET_DIGESTS", EINVAL))?;
    let req_b = req.get(..len).unwrap_or(&[]);
    let n = c.exchange(req_b, "device answered GET_DIGESTS with an SPDM ERROR")?;
    let mut slot_digest = [0u8; auth::SPDM_MAX_HASH_SIZE];
    let slot = {
        let d = auth::parse_digests(c.rsp(n), version, hsize).map_err(|e| proto(e.as_str()))?;
        let slot = d
            .first_slot()
            .ok_or(proto("device has no certificate chain (empty slot mask)"))?;
        let digest = d
            .digest(slot)
            .ok_or(proto("DIGESTS lacks the slot's digest"))?;
        slot_digest
            .get_mut(..hsize)
            .ok_or(proto("hash too large"))?
            .copy_from_slice(digest);
        update(&mut th, req_b)?;
        update(&mut th, c.rsp(n).get(..d.len).unwrap_or(&[]))?;
        slot
    };
    let slot_digest = slot_digest.get(..hsize).unwrap_or(&[]);

    // GET_CERTIFICATE, portion by portion
    let mut chunk = REQ_DATA_TRANSFER_SIZE;
    if version >= SpdmVersion::V1_2 {
        chunk = chunk.min(rsp_caps.data_transfer_size);
    }
    let chunk = u16::try_from((chunk as usize).saturating_sub(auth::SPDM_CERTIFICATE_FIXED_SIZE))
        .unwrap_or(u16::MAX);
    let mut chain = KVec::new();
    let mut d = [0u8; crypto::MAX_DIGEST_SIZE];
    if !cached.is_empty() {
        crypto::digest(halg, cached, &mut d).map_err(|e| fail("cannot hash the chain", e))?;
        if d.get(..hsize) == Some(slot_digest) {
            add(&mut chain, cached)?;
            info.chain_cached = true;
        }
    }
    let mut total: Option<usize> = None;
    for i in 0..=MAX_CERT_REQUESTS {
        if info.chain_cached {
            break;
        }
        if i == MAX_CERT_REQUESTS {
            return Err(proto(
                "certificate chain needs too many GET_CERTIFICATE requests",
            ));
        }
        let offset = u16::try_from(chain.len()).map_err(|_| proto("certificate chain too long"))?;
        let gc = GetCertificate {
            version,
            slot,
            attributes: 0,
            offset,
            length: chunk,
        };
        let len = auth::encode_get_certificate(&gc, &mut req)
            .map_err(|_| fail("cannot encode GET_CERTIFICATE", EINVAL))?;
        let req_b = req.get(..len).unwrap_or(&[]);
        let n = c.exchange(req_b, "device answered GET_CERTIFICATE with an SPDM ERROR")?;
        let cert = auth::parse_certificate(c.rsp(n), version).map_err(|e| proto(e.as_str()))?;
        cert.check(&gc).map_err(|e| proto(e.as_str()))?;
        let remainder = usize::from(cert.remainder_length);
        let this_total = chain
            .len()
            .checked_add(cert.portion.len())
            .and_then(|t| t.checked_add(remainder))
            .ok_or(proto("certificate chain too long"))?;
        if *total.get_or_insert(this_total) != this_total {
            return Err(proto("CERTIFICATE lengths are inconsistent"));
        }
        if cert.portion.is_empty()
            || (remainder != 0 && cert.portion.len() < MIN_CERT_PORTION.min(usize::from(chunk)))
        {
            return Err(proto("CERTIFICATE portion too short"));
        }
        add(&mut chain, cert.portion)?;
        update(&mut th, req_b)?;
        update(&mut th, c.rsp(n).get(..cert.len).unwrap_or(&[]))?;
        if remainder == 0 {
            break;
        }
    }

    // The chain: digest, structure, certificates.
    crypto::digest(halg, &chain, &mut d).map_err(|e| fail("cannot hash the chain", e))?;
    if d.get(..hsize) != Some(slot_digest) {
        return Err(proto("certificate chain does not match its DIGESTS digest"));
    }
    let parsed = auth::parse_cert_chain(&chain, hsize).map_err(|e| proto(e.as_str()))?;
    let root_hash = parsed.root_hash;
    let mut certs: KVec<X509Cert> = KVec::new();
    for der in parsed.certificates() {
        let der = der.map_err(|e| proto(e.as_str()))?;
        let x = X509Cert::parse(der)
            .map_err(|e| fail("device certificate cannot be parsed (X.509)", e))?;
        certs.push(x, GFP_KERNEL).map_err(|_| OOM)?;
    }
    let first = certs.first().ok_or(proto("empty certificate chain"))?;
    if first.is_self_signed() {
        crypto::digest(halg, first.der(), &mut d).map_err(|e| fail("cannot hash the root", e))?;
        if d.get(..hsize) != Some(root_hash) {
            return Err(proto(
                "chain's root hash does not match its root certificate",
            ));
        }
    }
    // SAFETY: No requirement; reads the wall clock.
    let now = unsafe { bindings::ktime_get_real_seconds() };
    let count = certs.len();
    for (i, x) in certs.iter().enumerate() {
        if x.is_blacklisted() {
            return Err(fail("device certificate is blacklisted", EKEYREJECTED));
        }
        if now < x.valid_from() || now > x.valid_to() {
            return Err(fail(
                "device certificate is not valid now (expired or not yet valid)",
                EKEYEXPIRED,
            ));
        }
        if i + 1 < count && !x.is_ca() {
            return Err(fail(
                "non-leaf certificate is not a CA (basicConstraints)",
                EKEYREJECTED,
            ));
        }
        if i > 0 {
            let issuer = certs.get(i - 1).ok_or(proto("empty certificate chain"))?;
            if !x.names_issuer(issuer) {
                return Err(fail(
                    "certificate issuer does not match the previous certificate's subject",
                    EKEYREJECTED,
                ));
            }
            x.verify_signed_by(issuer).map_err(|e| {
                fail(
                    "certificate signature does not verify with its issuer's key",
                    e,
                )
            })?;
        }
    }
    let leaf = certs.last().ok_or(proto("empty certificate chain"))?;
    let verifier = crypto::Verifier::new(salg, leaf.public_key())
        .map_err(|e| fail("leaf key does not fit the negotiated algorithm", e))?;
    if leaf.sig_alg(halg).ok() != Some(salg) || verifier.key_bits() != key_bits {
        return Err(fail(
            "leaf key does not fit the negotiated algorithm",
            EKEYREJECTED,
        ));
    }
    info.certs_offset = auth::SPDM_CERT_CHAIN_HEADER_SIZE + hsize;
    info.slot = Some(slot);

    // CHALLENGE
    let mut ch = auth::Challenge {
        version,
        slot,
        meas_summary_type: auth::SPDM_MEAS_SUMMARY_NONE,
        nonce: [0; spdm::SPDM_NONCE_SIZE],
        requester_context: [0; auth::SPDM_REQ_CONTEXT_SIZE],
    };
    // SAFETY: `nonce` is valid for writes of its size.
    unsafe { bindings::get_random_bytes(ch.nonce.as_mut_ptr().cast(), ch.nonce.len()) };
    // SAFETY: `requester_context` is valid for writes of its size.
    unsafe {
        bindings::get_random_bytes(
            ch.requester_context.as_mut_ptr().cast(),
            ch.requester_context.len(),
        )
    };
    info.chain = chain;
    info.challenge_sent = true;
    let len = auth::encode_challenge(&ch, &mut req)
        .map_err(|_| fail("cannot encode CHALLENGE", EINVAL))?;
    let req_b = req.get(..len).unwrap_or(&[]);
    let n = c.exchange(req_b, "device answered CHALLENGE with an SPDM ERROR")?;
    let params = auth::ChallengeAuthParams {
        version,
        hash_size: hsize,
        signature_size: ssize,
        measurement_summary: false,
    };
    let ca = auth::parse_challenge_auth(c.rsp(n), &params).map_err(|e| proto(e.as_str()))?;
    ca.check(&ch).map_err(|e| proto(e.as_str()))?;
    if ca.cert_chain_hash != slot_digest {
        return Err(proto("CHALLENGE_AUTH names another certificate chain"));
    }
    update(&mut th, req_b)?;
    update(&mut th, c.rsp(n).get(..ca.signature_offset).unwrap_or(&[]))?;
    let mut m1 = [0u8; crypto::MAX_DIGEST_SIZE];
    th.finalize(&mut m1)
        .map_err(|e| fail("transcript hash failed", e))?;
    let m1 = m1.get(..hsize).unwrap_or(&[]);
    let digest: &[u8] = if version >= SpdmVersion::V1_2 {
        let mut msg = [0u8; auth::SPDM_SIGNING_CONTEXT_SIZE + auth::SPDM_MAX_HASH_SIZE];
        let len = auth::signed_message(
            version,
            auth::SPDM_CHALLENGE_AUTH_SIGN_CONTEXT,
            m1,
            &mut msg,
        )
        .map_err(|_| fail("cannot build the signed message", EINVAL))?;
        crypto::digest(halg, msg.get(..len).unwrap_or(&[]), &mut d)
            .map_err(|e| fail("transcript hash failed", e))?;
        d.get(..hsize).unwrap_or(&[])
    } else {
        m1
    };
    verifier.verify(digest, ca.signature).map_err(|e| {
        fail(
            "CHALLENGE_AUTH signature does not verify with the leaf key",
            e,
        )
    })?;
    Ok(())
}

#[kunit_tests(coco_auth)]
mod tests {
    use super::*;

    #[test]
    fn offers_only_verifiable_algorithms() {
        let pss =
            auth::SPDM_ASYM_RSAPSS_2048 | auth::SPDM_ASYM_RSAPSS_3072 | auth::SPDM_ASYM_RSAPSS_4096;
        assert_eq!(OFFERED_ASYM & pss, 0);
        for bit in 0..32u32 {
            let asym = 1u32 << bit;
            if OFFERED_ASYM & asym != 0 {
                assert!(sig_alg(asym, HashAlg::Sha256).is_some());
                assert_ne!(asym_short_name(asym), "unknown");
            }
            if OFFERED_HASH & asym != 0 {
                assert!(hash_alg(asym).is_some());
                assert_ne!(hash_short_name(asym), "unknown");
            }
        }
    }

    #[test]
    fn algorithm_names() {
        assert_eq!(asym_short_name(auth::SPDM_ASYM_ECDSA_P384), "ecdsa-p384");
        assert_eq!(asym_short_name(auth::SPDM_ASYM_RSASSA_3072), "rsassa-3072");
        assert_eq!(asym_short_name(auth::SPDM_ASYM_RSAPSS_3072), "unknown");
        assert_eq!(hash_short_name(auth::SPDM_HASH_SHA512), "sha512");
        assert!(matches!(
            sig_alg(auth::SPDM_ASYM_RSASSA_2048, HashAlg::Sha384),
            Some((SigAlg::RsaPkcs1(HashAlg::Sha384), 2048))
        ));
    }

    #[test]
    fn certificates_skip_header() -> Result {
        let mut info = AuthInfo::default();
        assert!(info.certificates().is_empty());
        info.chain
            .extend_from_slice(&[1, 2, 3, 4, 0x30, 0x00], GFP_KERNEL)?;
        info.certs_offset = 4;
        assert_eq!(info.certificates(), &[0x30, 0x00]);
        info.certs_offset = 7;
        assert!(info.certificates().is_empty());
        Ok(())
    }
}
