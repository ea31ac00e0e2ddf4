// SPDX-License-Identifier: GPL-2.0

//! SPDM authentication of a device over its CMA/SPDM DOE mailbox (requester side).
//!
//! Runs after GET_VERSION: GET_CAPABILITIES, NEGOTIATE_ALGORITHMS, GET_DIGESTS, then
//! GET_CERTIFICATE for every populated slot (skipped for a slot whose digest matches the chain
//! read before), chain validation, CHALLENGE on the chosen slot and the verification of the
//! CHALLENGE_AUTH signature over the transcript (see `auth.rs` for the transcript rules).
//!
//! A chain is valid when it matches its DIGESTS digest, every certificate parses with the
//! kernel's X.509 parser, is within its validity period, not blacklisted, signed by the previous
//! one (names and signature), CA certificates have cA and keyCertSign, the leaf has
//! digitalSignature and a key that fits the negotiated algorithm, and the first certificate is
//! signed by a key in the `.coco` keyring (`trust.rs`). The leaf's CMA identity (PCIe r6.1 sec
//! 6.31.3) is compared with the function's IDs; a mismatch fails only with `strict_identity`.
//!
//! The slot tried first is the administrator's choice, else the lowest populated one. When its
//! chain is invalid the next populated slot is tried; when its CHALLENGE_AUTH signature does
//! not verify, the next one is tried on a new connection (GET_VERSION onwards).

use crate::{
    auth::{self, Capabilities, GetCertificate, NegotiateAlgorithms},
    cert,
    channel::{
        self, add, fail, proto, CertRef, Conn, Failure, Transport, OOM, REQ_DATA_TRANSFER_SIZE,
    },
    cma::{self, FunctionIds, Identity},
    crypto::{self, HashAlg, SigAlg, X509Cert},
    meas,
    spdm::{self, SpdmVersion},
    trust::Keyring,
};
use kernel::{
    bindings,
    prelude::*,
    time::{Instant, Monotonic},
};

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

/// The DHE groups and AEADs offered for secure sessions: every one the kernel can do (the
/// session code implements exactly these).
pub(crate) const OFFERED_DHE: u16 = auth::SPDM_DHE_SECP256R1 | auth::SPDM_DHE_SECP384R1;
pub(crate) const OFFERED_AEAD: u16 =
    auth::SPDM_AEAD_AES_128_GCM | auth::SPDM_AEAD_AES_256_GCM | auth::SPDM_AEAD_CHACHA20_POLY1305;

/// Hash algorithms offered.
const OFFERED_HASH: u32 = auth::SPDM_HASH_SHA256 | auth::SPDM_HASH_SHA384 | auth::SPDM_HASH_SHA512;

/// Largest CTExponent CMA allows (PCIe r6.1 sec 6.31.3: CT at most 2^23 us).
const CMA_MAX_CT_EXPONENT: u8 = 23;

/// Most GET_CERTIFICATE requests for one chain (a 64 KiB chain in 1 KiB portions).
const MAX_CERT_REQUESTS: usize = 64;

/// Smallest portion a device may return while more of the chain remains.
const MIN_CERT_PORTION: usize = 512;

/// Number of certificate slots.
pub(crate) const SLOTS: usize = 8;

/// What the leaf certificate's CMA identity says about the function.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum IdentityStatus {
    /// Not looked at (no chain validated).
    #[default]
    Unknown,
    /// The leaf has no CMA identity.
    Missing,
    /// The identity matches the function's IDs.
    Match,
    /// The identity is malformed or names another function.
    Mismatch(&'static str),
}

/// What an authentication run established; filled in as the steps succeed.
#[derive(Default)]
pub(crate) struct AuthInfo {
    /// Negotiated version and algorithms, once ALGORITHMS was accepted.
    pub(crate) negotiated: Option<(SpdmVersion, u32, u32)>,
    /// Populated slots according to DIGESTS.
    pub(crate) slot_mask: u8,
    /// Each populated slot's chain as the device sent it (SPDM header and root hash included),
    /// once it matched its DIGESTS digest; empty otherwise.
    pub(crate) chains: [KVec<u8>; SLOTS],
    /// Size of the header in front of the DER certificates in `chains` (4 + hash size).
    pub(crate) certs_offset: usize,
    /// Slot that was challenged: the authenticated one on success.
    pub(crate) slot: Option<u8>,
    /// That slot's chain passed validation (`validate_chain`): only then is it shown as the
    /// authentication's chain.
    pub(crate) chain_valid: bool,
    /// The CMA identity string of that slot's leaf certificate, if it has one.
    pub(crate) identity: KVec<u8>,
    pub(crate) identity_status: IdentityStatus,
    /// CHALLENGE was sent (on the last connection), and its signature verified.
    pub(crate) challenge_sent: bool,
    pub(crate) challenge_ok: bool,
    /// This authentication reads the measurements (its policy says so).
    measure: bool,
    /// The MeasurementSummaryHash (type "all") of the verified CHALLENGE_AUTH, if asked for.
    pub(crate) summary: Option<([u8; crypto::MAX_DIGEST_SIZE], usize)>,
    /// SPDM requests sent after VERSION (Busy/ResponseNotReady retries not counted), and bytes
    /// sent and received, for the log and `make bench`.
    pub(crate) exchanges: usize,
    pub(crate) tx_bytes: usize,
    pub(crate) rx_bytes: usize,
    /// Chains taken from the previous run because their digest was unchanged, and chains read.
    pub(crate) chains_cached: u8,
    pub(crate) chains_fetched: u8,
    /// Connections made (one, plus one per slot retried after a failed CHALLENGE).
    pub(crate) connections: usize,
    /// Wall time of the authentication (after GET_VERSION), in microseconds.
    pub(crate) elapsed_us: u64,
    /// Why no session can be had with this device although it supports them (no common DHE
    /// group or AEAD): the connection was negotiated again without the session capabilities.
    pub(crate) session_unavailable: Option<&'static str>,
}

impl AuthInfo {
    /// The DER certificates of `slot`'s chain (empty if it has none).
    pub(crate) fn slot_certificates(&self, slot: usize) -> &[u8] {
        self.chains
            .get(slot)
            .and_then(|c| c.get(self.certs_offset..))
            .unwrap_or(&[])
    }

    /// The slots with certificates to show (bit N for slot N).
    pub(crate) fn shown_slots(&self) -> u8 {
        (0..SLOTS).fold(0u8, |m, s| {
            if self.slot_certificates(s).is_empty() {
                m
            } else {
                m | (1 << s)
            }
        })
    }

    /// The DER certificates of the authenticated (or last challenged) slot's chain, once it
    /// passed validation; empty otherwise.
    pub(crate) fn certificates(&self) -> &[u8] {
        match self.slot {
            Some(s) if self.chain_valid => self.slot_certificates(usize::from(s)),
            _ => &[],
        }
    }
}

/// How a slot is chosen.
#[derive(Clone, Copy)]
pub(crate) struct Policy<'a> {
    /// Slot to try first; `None` for the lowest populated one.
    pub(crate) preferred_slot: Option<u8>,
    /// A leaf whose CMA identity is missing, malformed or names another function fails.
    pub(crate) strict_identity: bool,
    /// The function's IDs, to compare with the CMA identity.
    pub(crate) ids: FunctionIds,
    /// Trust anchors; `None` trusts nothing.
    pub(crate) keyring: Option<&'a Keyring>,
    /// The measurements will be read on the connection: CHALLENGE asks for their summary.
    pub(crate) measure: bool,
    /// A secure session may follow on the connection (the mailbox supports secured CMA/SPDM):
    /// the session capabilities and algorithms are negotiated.
    pub(crate) session: bool,
}

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

fn update(h: &mut crypto::Hash, bytes: &[u8]) -> Result<(), Failure> {
    h.update(bytes)
        .map_err(|e| fail("transcript hash failed", e))
}

/// Most connections one authentication makes (the first, then one per slot retried).
const MAX_CONNECTIONS: usize = SLOTS;

/// Authenticates the device. `vca` holds GET_VERSION and VERSION exactly as exchanged, and
/// `versions` the VERSION entries. `info` collects what was established, also on failure.
///
/// `cache` holds the chains a previous run read, per slot: a slot whose DIGESTS digest matches
/// its cached chain is not read again (GET_CERTIFICATE is skipped; the transcript then holds
/// only the exchanges that took place, as DSP0274 allows for a requester with a cached chain).
/// The chain is validated again all the same.
///
/// On failure the reason is that of the first slot tried.
pub(crate) fn authenticate<'t>(
    t: &'t dyn Transport,
    vca: &[u8],
    versions: &[u16],
    mut cache: [KVec<u8>; SLOTS],
    policy: &Policy<'_>,
    info: &mut AuthInfo,
) -> Result<Authenticated<'t>, Failure> {
    info.measure = policy.measure;
    let mut c = Conn::new(t);
    let start = Instant::<Monotonic>::now();
    let mut tried = 0u8;
    let mut resynchs = 0;
    let mut first: Option<Failure> = None;
    let mut vca_buf = KVec::new();
    add(&mut vca_buf, vca)?;
    let mut versions_buf = KVec::new();
    versions_buf
        .extend_from_slice(versions, GFP_KERNEL)
        .map_err(|_| OOM)?;
    let mut ret = Err(proto("no certificate slot left to try"));
    for n in 0..MAX_CONNECTIONS {
        if n > 0 {
            // A new connection: the device forgets the failed CHALLENGE's transcript.
            let (v, vca) = channel::get_version(t)?;
            c.count_exchange(
                spdm::SPDM_GET_VERSION_SIZE,
                vca.len().saturating_sub(spdm::SPDM_GET_VERSION_SIZE),
            );
            vca_buf = vca;
            versions_buf = v;
            // The chains just read serve as the cache: their digests will not have changed.
            cache = core::mem::take(&mut info.chains);
            info.challenge_sent = false;
            info.challenge_ok = false;
            info.slot = None;
            info.chain_valid = false;
            info.summary = None;
        }
        info.connections = n.saturating_add(1);
        match run(
            &mut c,
            &vca_buf,
            &versions_buf,
            &mut cache,
            policy,
            &mut tried,
            &mut first,
            info,
        ) {
            Ok((neg, slot, verifier)) => {
                ret = Ok((neg, slot, verifier));
                break;
            }
            Err(Attempt::NextSlot) => continue,
            Err(Attempt::Fail(f)) if f.err == ENOPROTOOPT && info.session_unavailable.is_none() => {
                // Refused with the session algorithms offered: authenticate (and measure)
                // without them, on a new connection; the session is shown unavailable.
                info.session_unavailable = Some(
                    "no common session algorithm (NEGOTIATE_ALGORITHMS refused with DHE groups and AEADs offered)",
                );
                continue;
            }
            Err(Attempt::Fail(f))
                if f.spdm_error == Some(spdm::SPDM_ERROR_REQUEST_RESYNCH) && resynchs < 2 =>
            {
                // The device asks to start over: a new connection, the slot untried.
                resynchs += 1;
                if let Some(s) = info.slot {
                    tried &= !(1u8 << s);
                }
                continue;
            }
            Err(Attempt::Fail(f)) => {
                ret = Err(first.unwrap_or(f));
                break;
            }
            Err(Attempt::NoSlotLeft) => {
                ret = Err(first.unwrap_or(proto("no certificate slot left to try")));
                break;
            }
        }
    }
    info.exchanges = c.count;
    info.tx_bytes = c.tx;
    info.rx_bytes = c.rx_bytes;
    info.elapsed_us = u64::try_from(start.elapsed().as_micros_ceil()).unwrap_or(0);
    let (neg, slot, verifier) = ret?;
    Ok(Authenticated {
        conn: c,
        neg,
        slot,
        verifier,
    })
}

/// An authenticated connection: what the steps after the authentication (measurements, the
/// secure session) run on.
pub(crate) struct Authenticated<'t> {
    /// The connection, its transcript state as the authentication left it.
    pub(crate) conn: Conn<'t>,
    pub(crate) neg: Negotiated,
    /// The authenticated slot, and the verifier of its leaf key.
    pub(crate) slot: u8,
    pub(crate) verifier: crypto::Verifier,
}

/// How one connection's attempt ended, when it did not authenticate the device.
enum Attempt {
    /// A slot's CHALLENGE_AUTH did not verify and another slot remains: try it on a new
    /// connection.
    NextSlot,
    /// Every populated slot was tried.
    NoSlotLeft,
    /// The device or the transport failed: stop.
    Fail(Failure),
}

impl From<Failure> for Attempt {
    fn from(f: Failure) -> Self {
        Attempt::Fail(f)
    }
}

/// Negotiated parameters of a connection.
pub(crate) struct Negotiated {
    pub(crate) version: SpdmVersion,
    pub(crate) asym: u32,
    pub(crate) hash: u32,
    pub(crate) halg: HashAlg,
    salg: SigAlg,
    key_bits: u32,
    pub(crate) hsize: usize,
    pub(crate) ssize: usize,
    data_transfer_size: u32,
    /// MEAS_CAP of the device's CAPABILITIES (0 none, 1 without signature, 2 signed), and
    /// MEAS_FRESH_CAP.
    pub(crate) meas_cap: u8,
    pub(crate) meas_fresh: bool,
    /// Size of the digests in measurement blocks (`None`: raw bit streams only, or unknown).
    pub(crate) meas_hash_size: Option<usize>,
    /// GET_VERSION through ALGORITHMS as exchanged: the start of L1/L2 from SPDM 1.2 on.
    pub(crate) vca: KVec<u8>,
    /// The device's KEY_EX_CAP, and the selected DHE group and AEAD (0: none; 1.2+ only).
    pub(crate) key_ex: bool,
    pub(crate) dhe: u16,
    pub(crate) aead: u16,
    /// The SPDM key schedule was selected.
    pub(crate) key_schedule_spdm: bool,
    /// The device also announced HANDSHAKE_IN_THE_CLEAR_CAP (coco.ko always does): FINISH
    /// and FINISH_RSP travel in the clear.
    pub(crate) handshake_in_clear: bool,
}

/// GET_CAPABILITIES and NEGOTIATE_ALGORITHMS; returns the negotiated parameters and the
/// transcript hash started with VCA.
fn negotiate(
    c: &mut Conn<'_>,
    vca: &[u8],
    versions: &[u16],
    session_caps: bool,
    info: &mut AuthInfo,
) -> Result<(Negotiated, crypto::Hash), Failure> {
    let version = spdm::highest_common(
        &OUR_VERSIONS,
        versions.iter().map(|&v| spdm::VersionEntry::from_raw(v)),
    )
    .ok_or(proto("no common SPDM version"))?;
    c.begin(version)?;
    let mut vca_buf = KVec::with_capacity(256, GFP_KERNEL).map_err(|_| OOM)?;
    add(&mut vca_buf, vca)?;

    // GET_CAPABILITIES
    let mut req = [0u8; 64];
    let mut caps = Capabilities::new(version);
    if version >= SpdmVersion::V1_2 {
        caps.data_transfer_size = REQ_DATA_TRANSFER_SIZE;
        caps.max_spdm_msg_size = REQ_DATA_TRANSFER_SIZE;
    }
    // Sessions exist from SPDM 1.1.
    let session_caps = session_caps && version >= SpdmVersion::V1_1;
    if session_caps {
        // What a responder needs from a requester for secure sessions.
        caps.flags = auth::SPDM_CAP_KEY_EX
            | auth::SPDM_CAP_ENCRYPT
            | auth::SPDM_CAP_MAC
            | auth::SPDM_CAP_HBEAT
            | auth::SPDM_CAP_KEY_UPD
            | auth::SPDM_CAP_HANDSHAKE_IN_THE_CLEAR;
    }
    let len = auth::encode_get_capabilities(&caps, &mut req)
        .map_err(|_| fail("cannot encode GET_CAPABILITIES", EINVAL))?;
    let req_b = req.get(..len).unwrap_or(&[]);
    let n = c.exchange(req_b, "device answered GET_CAPABILITIES with an SPDM ERROR")?;
    let rsp_caps = auth::parse_capabilities(c.rsp(n), version).map_err(|e| proto(e.as_str()))?;
    if rsp_caps.ct_exponent > CMA_MAX_CT_EXPONENT {
        return Err(proto("device's CTExponent exceeds CMA's limit (2^23 us)"));
    }
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
    if session_caps {
        neg.structs = auth::AlgStructs {
            dhe: Some(OFFERED_DHE),
            aead: Some(OFFERED_AEAD),
            req_base_asym: None,
            key_schedule: Some(auth::SPDM_KEY_SCHEDULE_SPDM),
        };
    }
    let len = auth::encode_negotiate_algorithms(&neg, &mut req)
        .map_err(|_| fail("cannot encode NEGOTIATE_ALGORITHMS", EINVAL))?;
    let req_b = req.get(..len).unwrap_or(&[]);
    let n = c
        .exchange(
            req_b,
            "device answered NEGOTIATE_ALGORITHMS with an SPDM ERROR",
        )
        .map_err(|f| match f.spdm_error {
            // A responder with no DHE group or AEAD in common refuses the whole negotiation:
            // the caller tries again without the session capabilities.
            Some(code) if session_caps && code != spdm::SPDM_ERROR_REQUEST_RESYNCH => Failure {
                err: ENOPROTOOPT,
                ..f
            },
            _ => f,
        })?;
    let algs = auth::parse_algorithms(c.rsp(n), version).map_err(|e| proto(e.as_str()))?;
    algs.check_against(&neg, true)
        .map_err(|e| proto(e.as_str()))?;
    let halg = hash_alg(algs.base_hash).ok_or(proto("device selected an unknown hash"))?;
    let (salg, key_bits) =
        sig_alg(algs.base_asym, halg).ok_or(proto("device selected an unknown signature"))?;
    let ssize = algs
        .signature_size()
        .ok_or(proto("device selected an unknown signature"))?;
    add(&mut vca_buf, req_b)?;
    add(&mut vca_buf, c.rsp(n).get(..algs.len).unwrap_or(&[]))?;
    info.negotiated = Some((version, algs.base_asym, algs.base_hash));

    let meas_cap = rsp_caps.meas_cap();
    let meas_hash_size =
        meas::negotiated_measurement_hash(&algs, meas_cap).map_err(|e| proto(e.reason()))?;
    let mut th = crypto::Hash::new(halg).map_err(|e| fail("cannot allocate the hash", e))?;
    update(&mut th, &vca_buf)?;
    let mut data_transfer_size = REQ_DATA_TRANSFER_SIZE;
    if version >= SpdmVersion::V1_2 {
        data_transfer_size = data_transfer_size.min(rsp_caps.data_transfer_size);
    }
    Ok((
        Negotiated {
            version,
            asym: algs.base_asym,
            hash: algs.base_hash,
            halg,
            salg,
            key_bits,
            hsize: halg.digest_size(),
            ssize,
            data_transfer_size,
            meas_cap,
            meas_fresh: rsp_caps.has(auth::SPDM_CAP_MEAS_FRESH),
            meas_hash_size,
            vca: vca_buf,
            key_ex: session_caps && rsp_caps.has(auth::SPDM_CAP_KEY_EX),
            dhe: algs.structs.dhe.unwrap_or(0),
            aead: algs.structs.aead.unwrap_or(0),
            key_schedule_spdm: algs.structs.key_schedule == Some(auth::SPDM_KEY_SCHEDULE_SPDM),
            handshake_in_clear: session_caps
                && version >= SpdmVersion::V1_2
                && rsp_caps.has(auth::SPDM_CAP_HANDSHAKE_IN_THE_CLEAR),
        },
        th,
    ))
}

/// Reads `slot`'s certificate chain with GET_CERTIFICATE, portion by portion, adding the
/// exchanges to the transcript.
fn read_chain(
    c: &mut Conn<'_>,
    neg: &Negotiated,
    slot: u8,
    th: &mut crypto::Hash,
) -> Result<KVec<u8>, Failure> {
    let chunk = u16::try_from(
        (neg.data_transfer_size as usize).saturating_sub(auth::SPDM_CERTIFICATE_FIXED_SIZE),
    )
    .unwrap_or(u16::MAX);
    let mut req = [0u8; 16];
    let mut chain = KVec::new();
    let mut total: Option<usize> = None;
    for _ in 0..MAX_CERT_REQUESTS {
        let offset = u16::try_from(chain.len()).map_err(|_| proto("certificate chain too long"))?;
        let gc = GetCertificate {
            version: neg.version,
            slot,
            attributes: 0,
            offset,
            length: chunk,
        };
        let len = auth::encode_get_certificate(&gc, &mut req)
            .map_err(|_| fail("cannot encode GET_CERTIFICATE", EINVAL))?;
        let req_b = req.get(..len).unwrap_or(&[]);
        let n = c.exchange(req_b, "device answered GET_CERTIFICATE with an SPDM ERROR")?;
        let cert = auth::parse_certificate(c.rsp(n), neg.version).map_err(|e| proto(e.as_str()))?;
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
        update(th, req_b)?;
        update(th, c.rsp(n).get(..cert.len).unwrap_or(&[]))?;
        if remainder == 0 {
            return Ok(chain);
        }
    }
    Err(proto(
        "certificate chain needs too many GET_CERTIFICATE requests",
    ))
}

/// Validates `slot`'s chain, which matched its digest (see the module documentation); returns
/// the verifier of the leaf's key and the first certificate. A failure names the certificate at
/// fault.
fn validate_chain(
    chain: &[u8],
    neg: &Negotiated,
    policy: &Policy<'_>,
    slot: u8,
    info: &mut AuthInfo,
) -> Result<(crypto::Verifier, X509Cert, CertRef), Failure> {
    let hsize = neg.hsize;
    let mut d = [0u8; crypto::MAX_DIGEST_SIZE];
    let parsed = auth::parse_cert_chain(chain, hsize).map_err(|e| proto(e.as_str()))?;
    let root_hash = parsed.root_hash;
    let count = parsed.certificates().count();
    let mut certs: KVec<X509Cert> = KVec::with_capacity(count, GFP_KERNEL).map_err(|_| OOM)?;
    let mut facts: KVec<cert::CertFacts> =
        KVec::with_capacity(count, GFP_KERNEL).map_err(|_| OOM)?;
    for (i, der) in parsed.certificates().enumerate() {
        let depth = count.saturating_sub(i).saturating_sub(1);
        let der = der.map_err(|e| proto(e.as_str()))?;
        let x = X509Cert::parse(der).map_err(|e| {
            fail("device certificate cannot be parsed (X.509)", e)
                .about(CertRef::new(slot, depth, b""))
        })?;
        let at = CertRef::new(slot, depth, x.subject().to_bytes());
        let ext = cert::read_extensions(der).map_err(|e| proto(e.as_str()).about(at))?;
        facts
            .push(
                cert::CertFacts {
                    ext,
                    self_issued: x.raw_subject() == x.raw_issuer(),
                },
                GFP_KERNEL,
            )
            .map_err(|_| OOM)?;
        certs.push(x, GFP_KERNEL).map_err(|_| OOM)?;
    }
    let at = |i: usize| {
        let depth = count.saturating_sub(i).saturating_sub(1);
        let subject = certs.get(i).map(|c| c.subject().to_bytes()).unwrap_or(b"");
        CertRef::new(slot, depth, subject)
    };
    let first = certs.first().ok_or(proto("empty certificate chain"))?;
    let anchor_first = first.is_self_signed();
    if anchor_first {
        crypto::digest(neg.halg, first.der(), &mut d)
            .map_err(|e| fail("cannot hash the root", e))?;
        if d.get(..hsize) != Some(root_hash) {
            return Err(
                proto("chain's root hash does not match its root certificate").about(at(0)),
            );
        }
    }
    // SAFETY: No requirement; reads the wall clock.
    let now = unsafe { bindings::ktime_get_real_seconds() };
    for (i, x) in certs.iter().enumerate() {
        if x.is_blacklisted() {
            return Err(fail("device certificate is blacklisted", EKEYREJECTED).about(at(i)));
        }
        if now < x.valid_from() || now > x.valid_to() {
            return Err(fail(
                "device certificate is not valid now (expired or not yet valid)",
                EKEYEXPIRED,
            )
            .about(at(i)));
        }
        if i > 0 {
            let issuer = certs.get(i - 1).ok_or(proto("empty certificate chain"))?;
            if !x.names_issuer(issuer) {
                return Err(fail(
                    "certificate issuer does not match the previous certificate's subject",
                    EKEYREJECTED,
                )
                .about(at(i)));
            }
            x.verify_signed_by(issuer).map_err(|e| {
                fail(
                    "certificate signature does not verify with its issuer's key",
                    e,
                )
                .about(at(i))
            })?;
        }
    }
    // keyUsage, basicConstraints and pathLenConstraint (RFC 5280 sec 6.1.4); a self-signed
    // first certificate is the trust anchor (checked in `trust()`), whose own extensions are
    // not inputs.
    cert::check_path(&facts, anchor_first)
        .map_err(|(i, e)| fail(e.as_str(), EKEYREJECTED).about(at(i)))?;
    let leaf_at = at(count.saturating_sub(1));
    let leaf = certs.last().ok_or(proto("empty certificate chain"))?;
    let verifier = crypto::Verifier::new(neg.salg, leaf.public_key())
        .map_err(|e| fail("leaf key does not fit the negotiated algorithm", e).about(leaf_at))?;
    if leaf.sig_alg(neg.halg).ok() != Some(neg.salg) || verifier.key_bits() != neg.key_bits {
        return Err(fail(
            "leaf key does not fit the negotiated algorithm",
            EKEYREJECTED,
        )
        .about(leaf_at));
    }

    // The CMA identity: recorded, compared, and only fatal with `strict_identity`.
    info.identity.clear();
    info.identity_status = match cma::find_identity(leaf.der()) {
        Ok(Some(id)) => {
            add(&mut info.identity, id)?;
            match Identity::parse(id).and_then(|i| i.check(&policy.ids)) {
                Ok(()) => IdentityStatus::Match,
                Err(e) => IdentityStatus::Mismatch(e.as_str()),
            }
        }
        Ok(None) => IdentityStatus::Missing,
        Err(e) => IdentityStatus::Mismatch(e.as_str()),
    };
    if policy.strict_identity {
        match info.identity_status {
            IdentityStatus::Match => {}
            IdentityStatus::Mismatch(r) => return Err(fail(r, EKEYREJECTED).about(leaf_at)),
            _ => {
                return Err(fail(
                    "leaf certificate has no CMA identity (strict_identity)",
                    EKEYREJECTED,
                )
                .about(leaf_at))
            }
        }
    }

    // The first certificate, whose signer must be a trust anchor (checked after the
    // CHALLENGE, see `trust()`).
    let first_at = at(0);
    let first = certs
        .remove(0)
        .map_err(|_| proto("empty certificate chain"))?;
    Ok((verifier, first, first_at))
}

/// Checks that `first`, the first certificate of a chain whose leaf key passed the CHALLENGE,
/// is signed by a trust anchor. Done last, so that an untrusted device still shows that it
/// holds the key of its chain ("challenge" reads ok), and a cold authentication makes the same
/// exchanges whether the root is trusted or not.
fn trust(first: &X509Cert, at: CertRef, policy: &Policy<'_>) -> Result<(), Failure> {
    let keyring = policy
        .keyring
        .ok_or(fail("root certificate is not trusted (no .coco keyring)", ENOKEY).about(at))?;
    keyring.verify_anchor(first).map_err(|e| {
        if e == ENOKEY {
            fail(
                "root certificate is not trusted (no matching key in the .coco keyring)",
                e,
            )
            .about(at)
        } else {
            fail(
                "certificate chain does not verify with its trust anchor in .coco",
                EKEYREJECTED,
            )
            .about(at)
        }
    })
}

/// Verifies the certificate chain of `slot` that a TSM read from a device it authenticated
/// (a confidential guest's TSM, which also proved the leaf key's possession): the checks
/// [`authenticate`] makes of a chain under the algorithms `asym` and `hash`, then its trust
/// anchor in `.coco`. Records the leaf's CMA identity in `info`.
pub(crate) fn verify_tsm_chain(
    chain: &[u8],
    asym: u32,
    hash: u32,
    slot: u8,
    policy: &Policy<'_>,
    info: &mut AuthInfo,
) -> Result<(), Failure> {
    let halg = hash_alg(hash).ok_or(proto("unknown hash algorithm"))?;
    let (salg, key_bits) = sig_alg(asym, halg).ok_or(proto("unknown asymmetric algorithm"))?;
    let neg = Negotiated {
        version: SpdmVersion::V1_2,
        asym,
        hash,
        halg,
        salg,
        key_bits,
        hsize: halg.digest_size(),
        ssize: 0,
        data_transfer_size: 0,
        meas_cap: 0,
        meas_fresh: false,
        meas_hash_size: None,
        vca: KVec::new(),
        key_ex: false,
        dhe: 0,
        aead: 0,
        key_schedule_spdm: false,
        handshake_in_clear: false,
    };
    let (_leaf, first, at) = validate_chain(chain, &neg, policy, slot, info)?;
    trust(&first, at, policy)
}

/// The slots to try, in order: the preferred one, then the others populated, lowest first.
fn slot_order(mask: u8, preferred: Option<u8>) -> impl Iterator<Item = u8> {
    let first = preferred.filter(|&p| p < 8 && mask & (1 << p) != 0);
    Iterator::chain(
        first.into_iter(),
        (0..8u8).filter(move |&s| mask & (1 << s) != 0 && Some(s) != first),
    )
}

/// One connection's attempt: negotiation, DIGESTS, the chains, then the first untried slot
/// whose chain is valid is challenged. `tried` collects the slots tried (across connections),
/// `first` the failure of the first one.
#[allow(clippy::too_many_arguments)]
fn run(
    c: &mut Conn<'_>,
    vca: &[u8],
    versions: &[u16],
    cache: &mut [KVec<u8>; SLOTS],
    policy: &Policy<'_>,
    tried: &mut u8,
    first: &mut Option<Failure>,
    info: &mut AuthInfo,
) -> Result<(Negotiated, u8, crypto::Verifier), Attempt> {
    let (neg, mut th) = negotiate(
        c,
        vca,
        versions,
        policy.session && info.session_unavailable.is_none(),
        info,
    )?;
    let version = neg.version;
    let hsize = neg.hsize;
    info.certs_offset = auth::SPDM_CERT_CHAIN_HEADER_SIZE + hsize;

    // GET_DIGESTS
    let mut req = [0u8; 64];
    let len = auth::encode_get_digests(version, &mut req)
        .map_err(|_| fail("cannot encode GET_DIGESTS", EINVAL))?;
    let req_b = req.get(..len).unwrap_or(&[]);
    let n = c.exchange(req_b, "device answered GET_DIGESTS with an SPDM ERROR")?;
    let mut digests = [[0u8; auth::SPDM_MAX_HASH_SIZE]; SLOTS];
    let mask = {
        let d = auth::parse_digests(c.rsp(n), version, hsize).map_err(|e| proto(e.as_str()))?;
        for (slot, digest) in d.iter() {
            digests
                .get_mut(usize::from(slot))
                .and_then(|x| x.get_mut(..hsize))
                .ok_or(proto("DIGESTS lacks a slot's digest"))?
                .copy_from_slice(digest);
        }
        update(&mut th, req_b)?;
        update(&mut th, c.rsp(n).get(..d.len).unwrap_or(&[]))?;
        d.slot_mask
    };
    if mask == 0 {
        return Err(proto("device has no certificate chain (empty slot mask)").into());
    }
    info.slot_mask = mask;

    // Every populated slot's chain: cached when its digest is unchanged, else read.
    let mut d = [0u8; crypto::MAX_DIGEST_SIZE];
    let mut digest_failure: [Option<Failure>; SLOTS] = [None; SLOTS];
    for slot in 0..8u8 {
        let i = usize::from(slot);
        let (Some(digest), Some(cached), Some(out)) = (
            digests.get(i).and_then(|x| x.get(..hsize)),
            cache.get_mut(i),
            info.chains.get_mut(i),
        ) else {
            continue;
        };
        out.clear();
        if mask & (1 << slot) == 0 {
            continue;
        }
        let mut chain = core::mem::take(cached);
        let mut hit = false;
        if !chain.is_empty() {
            crypto::digest(neg.halg, &chain, &mut d)
                .map_err(|e| fail("cannot hash the chain", e))?;
            hit = d.get(..hsize) == Some(digest);
        }
        if hit {
            info.chains_cached = info.chains_cached.saturating_add(1);
        } else {
            chain = read_chain(c, &neg, slot, &mut th)?;
            info.chains_fetched = info.chains_fetched.saturating_add(1);
            crypto::digest(neg.halg, &chain, &mut d)
                .map_err(|e| fail("cannot hash the chain", e))?;
            if d.get(..hsize) != Some(digest) {
                if let Some(f) = digest_failure.get_mut(i) {
                    *f = Some(proto("certificate chain does not match its DIGESTS digest"));
                }
                continue;
            }
        }
        *out = chain;
    }

    // The first untried slot with a valid chain is challenged.
    for slot in slot_order(mask, policy.preferred_slot) {
        if *tried & (1 << slot) != 0 {
            continue;
        }
        *tried |= 1 << slot;
        info.slot = Some(slot);
        info.chain_valid = false;
        let i = usize::from(slot);
        if let Some(Some(f)) = digest_failure.get(i) {
            first.get_or_insert(*f);
            continue;
        }
        let chain = info
            .chains
            .get_mut(i)
            .map(core::mem::take)
            .unwrap_or_default();
        let validated = validate_chain(&chain, &neg, policy, slot, info);
        if let Some(c) = info.chains.get_mut(i) {
            *c = chain;
        }
        let (verifier, root, root_at) = match validated {
            Ok(v) => {
                info.chain_valid = true;
                v
            }
            Err(f) => {
                first.get_or_insert(f);
                continue;
            }
        };
        let digest = digests.get(i).and_then(|x| x.get(..hsize)).unwrap_or(&[]);
        let verdict = challenge(c, &neg, slot, digest, &verifier, th, info)
            .and_then(|()| trust(&root, root_at, policy));
        return match verdict {
            Ok(()) => Ok((neg, slot, verifier)),
            Err(f) if f.err == EKEYREJECTED || f.err == ENOKEY => {
                // Only this slot's key or root failed: another slot may still authenticate the
                // device (on a new connection: this one's transcript is spent).
                first.get_or_insert(f);
                if slot_order(mask, None).any(|s| *tried & (1 << s) == 0) {
                    Err(Attempt::NextSlot)
                } else {
                    Err(Attempt::NoSlotLeft)
                }
            }
            Err(f) => Err(Attempt::Fail(f)),
        };
    }
    Err(Attempt::NoSlotLeft)
}

/// CHALLENGE on `slot` and the verification of CHALLENGE_AUTH's signature over the transcript
/// `th`. A signature that does not verify fails with `EKEYREJECTED`.
fn challenge(
    c: &mut Conn<'_>,
    neg: &Negotiated,
    slot: u8,
    slot_digest: &[u8],
    verifier: &crypto::Verifier,
    mut th: crypto::Hash,
    info: &mut AuthInfo,
) -> Result<(), Failure> {
    let version = neg.version;
    let hsize = neg.hsize;
    let mut req = [0u8; 64];
    // With measurements to read, the summary of all of them comes along (signed) at no cost
    // and is checked against the blocks read next.
    let summary = want_summary(neg, info);
    let mut ch = auth::Challenge {
        version,
        slot,
        meas_summary_type: if summary {
            auth::SPDM_MEAS_SUMMARY_ALL
        } else {
            auth::SPDM_MEAS_SUMMARY_NONE
        },
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
    info.challenge_sent = true;
    let len = auth::encode_challenge(&ch, &mut req)
        .map_err(|_| fail("cannot encode CHALLENGE", EINVAL))?;
    let req_b = req.get(..len).unwrap_or(&[]);
    let n = c.exchange(req_b, "device answered CHALLENGE with an SPDM ERROR")?;
    let params = auth::ChallengeAuthParams {
        version,
        hash_size: hsize,
        signature_size: neg.ssize,
        measurement_summary: summary,
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
    let mut d = [0u8; crypto::MAX_DIGEST_SIZE];
    let digest: &[u8] = if version >= SpdmVersion::V1_2 {
        let mut msg = [0u8; auth::SPDM_SIGNING_CONTEXT_SIZE + auth::SPDM_MAX_HASH_SIZE];
        let len = auth::signed_message(
            version,
            auth::SPDM_CHALLENGE_AUTH_SIGN_CONTEXT,
            m1,
            &mut msg,
        )
        .map_err(|_| fail("cannot build the signed message", EINVAL))?;
        crypto::digest(neg.halg, msg.get(..len).unwrap_or(&[]), &mut d)
            .map_err(|e| fail("transcript hash failed", e))?;
        d.get(..hsize).unwrap_or(&[])
    } else {
        m1
    };
    verifier.verify(digest, ca.signature).map_err(|_| {
        fail(
            "CHALLENGE_AUTH signature does not verify with the leaf key",
            EKEYREJECTED,
        )
    })?;
    info.challenge_ok = true;
    if summary {
        let mut s = [0u8; crypto::MAX_DIGEST_SIZE];
        let n = ca.measurement_summary_hash.len().min(s.len());
        s.get_mut(..n)
            .unwrap_or(&mut [])
            .copy_from_slice(ca.measurement_summary_hash.get(..n).unwrap_or(&[]));
        info.summary = Some((s, n));
    }
    Ok(())
}

/// Whether CHALLENGE (and KEY_EXCHANGE) ask for the summary of all measurements: when the
/// device measures (MEAS_CAP) and this authentication reads its measurements.
pub(crate) fn want_summary(neg: &Negotiated, info: &AuthInfo) -> bool {
    neg.meas_cap != 0 && info.measure
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
        info.chains[2].extend_from_slice(&[1, 2, 3, 4, 0x30, 0x00], GFP_KERNEL)?;
        info.certs_offset = 4;
        assert!(info.certificates().is_empty());
        info.slot = Some(2);
        // Not shown until the chain was validated.
        assert!(info.certificates().is_empty());
        info.chain_valid = true;
        assert_eq!(info.certificates(), &[0x30, 0x00]);
        assert_eq!(info.slot_certificates(2), &[0x30, 0x00]);
        assert!(info.slot_certificates(0).is_empty());
        assert!(info.slot_certificates(8).is_empty());
        info.certs_offset = 7;
        assert!(info.certificates().is_empty());
        Ok(())
    }

    fn order(mask: u8, preferred: Option<u8>) -> [u8; 9] {
        let mut out = [0xffu8; 9];
        for (o, s) in out.iter_mut().zip(slot_order(mask, preferred)) {
            *o = s;
        }
        out
    }

    #[test]
    fn slot_order_prefers_then_ascends() {
        const X: u8 = 0xff;
        assert_eq!(order(0b1011_0010, None), [1, 4, 5, 7, X, X, X, X, X]);
        assert_eq!(order(0b1011_0010, Some(5)), [5, 1, 4, 7, X, X, X, X, X]);
        // An unpopulated or invalid preference is ignored.
        assert_eq!(order(0b1011_0010, Some(0)), [1, 4, 5, 7, X, X, X, X, X]);
        assert_eq!(order(0b1011_0010, Some(9)), [1, 4, 5, 7, X, X, X, X, X]);
        assert_eq!(order(0xff, Some(7)), [7, 0, 1, 2, 3, 4, 5, 6, X]);
        assert_eq!(order(0, Some(3)), [X; 9]);
    }

    #[test]
    fn cma_identity_in_kernel() {
        let ids = FunctionIds {
            vendor: 0x1b36,
            device: 0x0010,
            class: 0x010802,
            revision: 2,
            subsystem_vendor: 0x1af4,
            subsystem: 0x1100,
        };
        let id = Identity::parse(b"Vendor=1b36:Device=0010:CC=010802:REV=02:SSVID=1af4:SSID=1100");
        assert!(matches!(id.map(|i| i.check(&ids)), Ok(Ok(()))));
        let other = Identity::parse(b"Vendor=1b36:Device=0011");
        assert!(matches!(
            other.map(|i| i.check(&ids)),
            Ok(Err(cma::CmaError::DeviceMismatch))
        ));
        assert!(cma::find_identity(&[0x30, 0x03, 0x30, 0x01]).is_err());
    }
}
