//! Device authentication against the emulated endpoint, with an independent userspace
//! requester: the project's SPDM codec for the messages, RustCrypto for hashes and signature
//! verification, x509-parser for the certificates.
//!
//! The requester runs the whole flow (GET_VERSION .. CHALLENGE), validates each certificate
//! chain (root equal to the trust anchor, every link's signature, validity, basic constraints,
//! key usage, CMA subjectAltName), checks each chain against DIGESTS and verifies the
//! CHALLENGE_AUTH signature over the transcript. Most tests talk to the responder library in
//! process; the last ones run the binary over TCP with socket timeouts.

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use coco_doe::{decode_object, encode_object, object_size, DOE_TYPE_CMA, PCI_SIG_VENDOR_ID};
use coco_endpoint::pki::{
    build_identity, spdm_hash, ChainFault, Identity, KeyKind, PkiOptions, CMA_OTHER_NAME_OID,
    DEFAULT_CMA_ID,
};
use coco_endpoint::socket::{
    encode_frame, read_frame, SOCKET_COMMAND_NORMAL, SOCKET_COMMAND_SHUTDOWN,
    SOCKET_TRANSPORT_PCI_DOE,
};
use coco_endpoint::{Fault, Responder};
use coco_spdm::auth::*;
use coco_spdm::*;
use rand::RngExt;
use signature::hazmat::PrehashVerifier;
use x509_parser::prelude::*;

// --- Transports ------------------------------------------------------------------------------

/// Carries one SPDM request to the endpoint and returns the SPDM response (the DOE payload,
/// DWORD padding included).
trait Transport {
    fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>, String>;
}

fn cma(msg: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; object_size(msg.len()).unwrap()];
    encode_object(PCI_SIG_VENDOR_ID, DOE_TYPE_CMA, msg, &mut out).unwrap();
    out
}

fn doe_payload(object: &[u8]) -> Result<Vec<u8>, String> {
    let obj = decode_object(object).map_err(|e| format!("bad DOE reply: {}", e.as_str()))?;
    if !obj.header.is(PCI_SIG_VENDOR_ID, DOE_TYPE_CMA) {
        return Err("DOE reply is not a CMA object".to_string());
    }
    Ok(obj.payload.to_vec())
}

struct InProcess {
    responder: Responder,
    exchanges: usize,
}

impl Transport for InProcess {
    fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>, String> {
        self.exchanges += 1;
        let reply = self.responder.respond(&cma(request));
        let object = reply.object.ok_or("no answer (DOE timeout)")?;
        assert!(object.len() <= 4608, "reply larger than QEMU accepts");
        doe_payload(&object)
    }
}

struct Tcp(TcpStream);

impl Transport for Tcp {
    fn exchange(&mut self, request: &[u8]) -> Result<Vec<u8>, String> {
        self.0
            .write_all(&encode_frame(
                SOCKET_COMMAND_NORMAL,
                SOCKET_TRANSPORT_PCI_DOE,
                &cma(request),
            ))
            .map_err(|e| e.to_string())?;
        let frame = read_frame(&mut self.0, 4608).map_err(|e| format!("{e}"))?;
        doe_payload(&frame.payload)
    }
}

// --- Requester -------------------------------------------------------------------------------

/// What the requester offers and wants.
#[derive(Clone)]
struct Config {
    versions: Vec<SpdmVersion>,
    asym: u32,
    hash: u32,
    /// GET_CERTIFICATE Length.
    chunk: u16,
    /// Slot to challenge (default: the lowest populated one).
    slot: Option<u8>,
    trusted_root: Vec<u8>,
    /// Offer the four algorithm structure tables (all zero) in NEGOTIATE_ALGORITHMS.
    structs: bool,
    /// Most ERROR Busy answers accepted for one request.
    busy_retries: u32,
}

impl Config {
    fn new(trusted_root: &[u8]) -> Self {
        Config {
            versions: vec![
                SpdmVersion::V1_0,
                SpdmVersion::V1_1,
                SpdmVersion::V1_2,
                SpdmVersion::V1_3,
            ],
            asym: SPDM_ASYM_ECDSA_P256
                | SPDM_ASYM_ECDSA_P384
                | SPDM_ASYM_RSASSA_2048
                | SPDM_ASYM_RSAPSS_2048
                | SPDM_ASYM_RSASSA_3072
                | SPDM_ASYM_RSAPSS_3072
                | SPDM_ASYM_RSASSA_4096
                | SPDM_ASYM_RSAPSS_4096,
            hash: SPDM_HASH_SHA256 | SPDM_HASH_SHA384 | SPDM_HASH_SHA512,
            chunk: 0xFFFF,
            slot: None,
            trusted_root: trusted_root.to_vec(),
            structs: false,
            busy_retries: 3,
        }
    }
}

/// The result of a successful authentication.
#[derive(Debug)]
struct Authenticated {
    version: SpdmVersion,
    asym: u32,
    hash: u32,
    slot: u8,
    slot_mask: u8,
    chains: Vec<(u8, Vec<u8>)>,
    cma_id: String,
    /// Bytes of the VCA, kept for a later CHALLENGE without certificates.
    vca: Vec<u8>,
    busy_seen: u32,
    not_ready_seen: u32,
}

/// A transcript sink collecting bytes (hashed once the whole M1 is known).
#[derive(Default)]
struct Bytes(Vec<u8>);

impl TranscriptSink for Bytes {
    fn update(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
    }
}

struct Requester<'a, T: Transport> {
    t: &'a mut T,
    busy_seen: u32,
    not_ready_seen: u32,
    busy_retries: u32,
}

impl<T: Transport> Requester<'_, T> {
    /// Sends a request and returns the (non-ERROR) response, retrying on Busy and following
    /// ResponseNotReady with RESPOND_IF_READY.
    fn request(&mut self, version: SpdmVersion, req: &[u8]) -> Result<Vec<u8>, String> {
        let name = code_name(req[1]);
        let mut busy = 0;
        let mut msg = req.to_vec();
        loop {
            let rsp = self.t.exchange(&msg)?;
            let header = SpdmHeader::parse(&rsp).map_err(|e| format!("{name}: {}", e.as_str()))?;
            if header.code != SPDM_ERROR {
                return Ok(rsp);
            }
            let e = parse_error_response(&rsp).unwrap();
            match e.code {
                SPDM_ERROR_BUSY if busy < self.busy_retries => {
                    busy += 1;
                    self.busy_seen += 1;
                    thread::sleep(Duration::from_millis(1));
                }
                SPDM_ERROR_RESPONSE_NOT_READY => {
                    let nr = e
                        .response_not_ready()
                        .ok_or(format!("{name}: ResponseNotReady without data"))?;
                    if nr.request_code != req[1] {
                        return Err(format!("{name}: ResponseNotReady for another request"));
                    }
                    self.not_ready_seen += 1;
                    thread::sleep(Duration::from_micros(nr.wait_us().min(200_000)));
                    let mut out = [0u8; 4];
                    encode_respond_if_ready(&RespondIfReady::for_error(version, &nr), &mut out)
                        .unwrap();
                    msg = out.to_vec();
                }
                code => {
                    return Err(format!(
                        "{name}: device answered ERROR {} (data {:#x})",
                        error_code_name(code),
                        e.data
                    ))
                }
            }
        }
    }
}

fn err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Runs the whole flow.
fn authenticate<T: Transport>(t: &mut T, cfg: &Config) -> Result<Authenticated, String> {
    let mut r = Requester {
        t,
        busy_seen: 0,
        not_ready_seen: 0,
        busy_retries: cfg.busy_retries,
    };
    let mut vca = VcaBuffer::new();
    let mut out = vec![0u8; 256];

    // GET_VERSION / VERSION
    let n = encode_get_version(&mut out).unwrap();
    let rsp = r.request(SpdmVersion::V1_0, &out[..n])?;
    let vr = parse_version_response(&rsp).map_err(err("VERSION"))?;
    let v = highest_common(&cfg.versions, vr.entries()).ok_or("no common SPDM version")?;
    vca.update(&out[..n]);
    vca.update(&rsp[..6 + 2 * usize::from(vr.count())]);

    // GET_CAPABILITIES / CAPABILITIES
    let mut caps = Capabilities::new(v);
    caps.ct_exponent = 12;
    caps.flags = SPDM_CAP_CERT | SPDM_CAP_CHAL;
    caps.data_transfer_size = 4600;
    caps.max_spdm_msg_size = 4600;
    let n = encode_get_capabilities(&caps, &mut out).unwrap();
    let rsp = r.request(v, &out[..n])?;
    let rcaps = parse_capabilities(&rsp, v).map_err(err("CAPABILITIES"))?;
    if !rcaps.has(SPDM_CAP_CERT | SPDM_CAP_CHAL) {
        return Err("device lacks CERT_CAP or CHAL_CAP".to_string());
    }
    vca.update(&out[..n]);
    vca.update(&rsp[..capabilities_size(v)]);

    // NEGOTIATE_ALGORITHMS / ALGORITHMS
    let mut na = NegotiateAlgorithms::new(v);
    na.measurement_specification = SPDM_MEAS_SPEC_DMTF;
    na.base_asym = cfg.asym;
    na.base_hash = cfg.hash;
    if cfg.structs && v >= SpdmVersion::V1_1 {
        na.structs = AlgStructs {
            dhe: Some(0),
            aead: Some(0),
            req_base_asym: Some(0),
            key_schedule: Some(0),
        };
    }
    let n = encode_negotiate_algorithms(&na, &mut out).unwrap();
    let rsp = r.request(v, &out[..n])?;
    let alg = parse_algorithms(&rsp, v).map_err(err("ALGORITHMS"))?;
    alg.check_against(&na, true).map_err(err("ALGORITHMS"))?;
    let h = alg.hash_size().ok_or("unknown hash")?;
    let s = alg.signature_size().ok_or("unknown signature algorithm")?;
    vca.update(&out[..n]);
    vca.update(&rsp[..alg.len]);

    let mut transcript = Bytes::default();
    vca.replay(&mut transcript).unwrap();
    let vca_bytes = vca.bytes().unwrap().to_vec();

    // GET_DIGESTS / DIGESTS
    let n = encode_get_digests(v, &mut out).unwrap();
    let rsp = r.request(v, &out[..n])?;
    let digests = parse_digests(&rsp, v, h).map_err(err("DIGESTS"))?;
    transcript.update(&out[..n]);
    transcript.update(&rsp[..digests.len]);
    let slot_mask = digests.slot_mask;
    let digest_list: Vec<(u8, Vec<u8>)> = digests.iter().map(|(s, d)| (s, d.to_vec())).collect();

    // GET_CERTIFICATE / CERTIFICATE, every populated slot
    let mut chains = Vec::new();
    let mut cma_id = String::new();
    for (slot, digest) in &digest_list {
        let mut chain = Vec::new();
        loop {
            let req = GetCertificate {
                version: v,
                slot: *slot,
                attributes: 0,
                offset: u16::try_from(chain.len()).map_err(|_| "chain too long")?,
                length: cfg.chunk,
            };
            let n = encode_get_certificate(&req, &mut out).unwrap();
            let rsp = r.request(v, &out[..n])?;
            let c = parse_certificate(&rsp, v).map_err(err("CERTIFICATE"))?;
            c.check(&req).map_err(err("CERTIFICATE"))?;
            transcript.update(&out[..n]);
            transcript.update(&rsp[..c.len]);
            chain.extend_from_slice(c.portion);
            if c.remainder_length == 0 {
                break;
            }
            if c.portion.is_empty() {
                return Err("CERTIFICATE without progress".to_string());
            }
        }
        if spdm_hash(alg.base_hash, &chain).as_deref() != Some(&digest[..]) {
            return Err(format!(
                "slot {slot}: certificate chain digest does not match DIGESTS"
            ));
        }
        let parsed = parse_cert_chain(&chain, h).map_err(err("certificate chain"))?;
        let first = parsed.first().ok_or("empty chain")?;
        if spdm_hash(alg.base_hash, first).as_deref() != Some(parsed.root_hash) {
            return Err(format!(
                "slot {slot}: root hash does not match the first certificate"
            ));
        }
        let certs: Vec<&[u8]> = parsed.certificates().map(|c| c.unwrap()).collect();
        cma_id =
            validate_chain(&certs, &cfg.trusted_root).map_err(|e| format!("slot {slot}: {e}"))?;
        chains.push((*slot, chain));
    }

    // CHALLENGE / CHALLENGE_AUTH
    let slot = cfg
        .slot
        .or(digests.first_slot())
        .ok_or("no populated slot")?;
    let leaf = chains
        .iter()
        .find(|(s, _)| *s == slot)
        .map(|(_, c)| c.clone())
        .ok_or("challenged slot has no chain")?;
    challenge(
        &mut r,
        v,
        alg.base_asym,
        alg.base_hash,
        h,
        s,
        slot,
        &leaf,
        &mut transcript,
    )?;

    Ok(Authenticated {
        version: v,
        asym: alg.base_asym,
        hash: alg.base_hash,
        slot,
        slot_mask,
        chains,
        cma_id,
        vca: vca_bytes,
        busy_seen: r.busy_seen,
        not_ready_seen: r.not_ready_seen,
    })
}

/// CHALLENGE on `slot` and verification of CHALLENGE_AUTH; `transcript` holds VCA and B.
#[allow(clippy::too_many_arguments)]
fn challenge<T: Transport>(
    r: &mut Requester<'_, T>,
    v: SpdmVersion,
    asym: u32,
    hash: u32,
    h: usize,
    s: usize,
    slot: u8,
    chain: &[u8],
    transcript: &mut Bytes,
) -> Result<(), String> {
    let mut rng = rand::rng();
    let req = Challenge {
        version: v,
        slot,
        meas_summary_type: SPDM_MEAS_SUMMARY_NONE,
        nonce: rng.random(),
        requester_context: if v >= SpdmVersion::V1_3 {
            rng.random()
        } else {
            [0; 8]
        },
    };
    let mut out = [0u8; 64];
    let n = encode_challenge(&req, &mut out).unwrap();
    let rsp = r.request(v, &out[..n])?;
    let params = ChallengeAuthParams {
        version: v,
        hash_size: h,
        signature_size: s,
        measurement_summary: false,
    };
    let ca = parse_challenge_auth(&rsp, &params).map_err(err("CHALLENGE_AUTH"))?;
    ca.check(&req).map_err(err("CHALLENGE_AUTH"))?;
    if spdm_hash(hash, chain).as_deref() != Some(ca.cert_chain_hash) {
        return Err("CHALLENGE_AUTH CertChainHash does not match the chain".to_string());
    }
    transcript.update(&out[..n]);
    transcript.update(&rsp[..ca.signature_offset]);
    let m1_hash = spdm_hash(hash, &transcript.0).unwrap();
    let mut msg = [0u8; 200];
    let mn = signed_message(v, SPDM_CHALLENGE_AUTH_SIGN_CONTEXT, &m1_hash, &mut msg).unwrap();
    let digest = if v >= SpdmVersion::V1_2 {
        spdm_hash(hash, &msg[..mn]).unwrap()
    } else {
        m1_hash
    };
    let parsed = parse_cert_chain(chain, h).unwrap();
    let (_, leaf) = X509Certificate::from_der(parsed.leaf().unwrap()).map_err(err("leaf"))?;
    verify_spdm_signature(&leaf, asym, hash, &digest, ca.signature)
        .map_err(|e| format!("CHALLENGE_AUTH signature verification failed: {e}"))
}

/// Verifies an SPDM signature (raw r||s for ECDSA, PKCS#1 v1.5 or PSS for RSA) over `digest`.
fn verify_spdm_signature(
    leaf: &X509Certificate<'_>,
    asym: u32,
    hash: u32,
    digest: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let spki = leaf.public_key();
    let key = &spki.subject_public_key.data;
    match asym {
        SPDM_ASYM_ECDSA_P256 => {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(|e| e.to_string())?;
            let sig = p256::ecdsa::Signature::from_slice(sig).map_err(|e| e.to_string())?;
            vk.verify_prehash(digest, &sig).map_err(|e| e.to_string())
        }
        SPDM_ASYM_ECDSA_P384 => {
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(|e| e.to_string())?;
            let sig = p384::ecdsa::Signature::from_slice(sig).map_err(|e| e.to_string())?;
            vk.verify_prehash(digest, &sig).map_err(|e| e.to_string())
        }
        _ => {
            use rsa::pkcs1::DecodeRsaPublicKey;
            let pk = rsa::PublicKey::from_pkcs1_der(key).map_err(|e| e.to_string())?;
            let pss = matches!(
                asym,
                SPDM_ASYM_RSAPSS_2048 | SPDM_ASYM_RSAPSS_3072 | SPDM_ASYM_RSAPSS_4096
            );
            let e = |e: signature::Error| e.to_string();
            macro_rules! verify {
                ($d:ty) => {
                    if pss {
                        let s = rsa::pss::Signature::try_from(sig).map_err(e)?;
                        rsa::pss::VerifyingKey::<$d>::new(pk)
                            .verify_prehash(digest, &s)
                            .map_err(e)
                    } else {
                        let s = rsa::pkcs1v15::Signature::try_from(sig).map_err(e)?;
                        rsa::pkcs1v15::VerifyingKey::<$d>::new(pk)
                            .verify_prehash(digest, &s)
                            .map_err(e)
                    }
                };
            }
            match hash {
                SPDM_HASH_SHA256 => verify!(sha2::Sha256),
                SPDM_HASH_SHA384 => verify!(sha2::Sha384),
                SPDM_HASH_SHA512 => verify!(sha2::Sha512),
                _ => Err("hash".to_string()),
            }
        }
    }
}

/// Verifies the X.509 signature of `cert` with `issuer`'s key (ECDSA P-256/P-384 CAs).
fn verify_cert_signature(
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
) -> Result<(), String> {
    use signature::Verifier;
    let alg = cert.signature_algorithm.algorithm.to_id_string();
    let key = &issuer.public_key().subject_public_key.data;
    let tbs = cert.tbs_certificate.as_ref();
    let sig = &cert.signature_value.data;
    let e = |e: signature::Error| e.to_string();
    match alg.as_str() {
        "1.2.840.10045.4.3.2" => {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(|x| x.to_string())?;
            let s = p256::ecdsa::Signature::from_der(sig).map_err(e)?;
            vk.verify(tbs, &s).map_err(e)
        }
        "1.2.840.10045.4.3.3" => {
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(|x| x.to_string())?;
            let s = p384::ecdsa::Signature::from_der(sig).map_err(e)?;
            vk.verify(tbs, &s).map_err(e)
        }
        other => Err(format!(
            "unsupported certificate signature algorithm {other}"
        )),
    }
}

/// Validates a chain (root first) against the trust anchor; returns the leaf's CMA identity.
fn validate_chain(certs: &[&[u8]], trusted_root: &[u8]) -> Result<String, String> {
    if certs.first() != Some(&trusted_root) {
        return Err("untrusted root certificate".to_string());
    }
    let parsed: Vec<X509Certificate<'_>> = certs
        .iter()
        .map(|c| X509Certificate::from_der(c).map(|(_, x)| x))
        .collect::<Result<_, _>>()
        .map_err(err("certificate"))?;
    let now = ASN1Time::now();
    for (i, cert) in parsed.iter().enumerate() {
        let issuer = if i == 0 { cert } else { &parsed[i - 1] };
        verify_cert_signature(cert, issuer)
            .map_err(|e| format!("signature of certificate {i} does not verify: {e}"))?;
        if !cert.validity().is_valid_at(now) {
            return Err(format!("certificate {i} expired or not yet valid"));
        }
        let is_leaf = i == parsed.len() - 1;
        let ca = cert
            .basic_constraints()
            .map_err(err("basicConstraints"))?
            .is_some_and(|b| b.value.ca);
        if ca == is_leaf {
            return Err(format!("certificate {i}: wrong basicConstraints"));
        }
    }
    let leaf = parsed.last().unwrap();
    let ku = leaf
        .key_usage()
        .map_err(err("keyUsage"))?
        .ok_or("leaf without keyUsage")?;
    if !ku.value.digital_signature() {
        return Err("leaf keyUsage lacks digitalSignature".to_string());
    }
    let san = leaf
        .subject_alternative_name()
        .map_err(err("subjectAltName"))?
        .ok_or("leaf without subjectAltName")?;
    let want: Vec<u64> = CMA_OTHER_NAME_OID.to_vec();
    for name in &san.value.general_names {
        if let GeneralName::OtherName(oid, value) = name {
            let arcs: Vec<u64> = oid.iter().map(|i| i.collect()).unwrap_or_default();
            if arcs == want {
                // value: [0] EXPLICIT { UTF8String }
                let (_, outer) = der_parser::der::parse_der(value).map_err(err("otherName"))?;
                let inner = outer.as_slice().map_err(err("otherName")).and_then(|b| {
                    der_parser::der::parse_der_utf8string(b).map_err(err("otherName"))
                })?;
                return inner
                    .1
                    .as_str()
                    .map(str::to_string)
                    .map_err(err("otherName"));
            }
        }
    }
    Err("leaf without CMA otherName (2.23.147)".to_string())
}

// --- Fixtures --------------------------------------------------------------------------------

/// PKIs, generated once per (key, chain fault) for the whole test binary.
fn identity(key: KeyKind, fault: ChainFault) -> Arc<Identity> {
    type Cache = Mutex<HashMap<(KeyKind, ChainFault), Arc<Identity>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let k = (key, fault);
    if let Some(id) = cache.lock().unwrap().get(&k) {
        return Arc::clone(id);
    }
    let id = Arc::new(
        build_identity(&PkiOptions {
            dir: None,
            key,
            slots: vec![0, 1],
            cma_id: DEFAULT_CMA_ID.to_string(),
            fault,
        })
        .unwrap(),
    );
    cache.lock().unwrap().insert(k, Arc::clone(&id));
    id
}

fn all_versions() -> Vec<VersionEntry> {
    [
        SpdmVersion::V1_0,
        SpdmVersion::V1_1,
        SpdmVersion::V1_2,
        SpdmVersion::V1_3,
    ]
    .map(SpdmVersion::to_entry)
    .to_vec()
}

fn endpoint(key: KeyKind, fault: Fault) -> (InProcess, Arc<Identity>) {
    let id = identity(key, fault.chain_fault());
    let responder = Responder::with_identity(all_versions(), fault, Arc::clone(&id));
    (
        InProcess {
            responder,
            exchanges: 0,
        },
        id,
    )
}

fn run(key: KeyKind, fault: Fault, cfg: impl FnOnce(&mut Config)) -> Result<Authenticated, String> {
    let (mut t, id) = endpoint(key, fault);
    let mut c = Config::new(&id.trusted_root);
    cfg(&mut c);
    authenticate(&mut t, &c)
}

// --- Happy paths -----------------------------------------------------------------------------

fn assert_ok(a: &Authenticated, key: KeyKind) {
    assert_eq!(a.slot_mask, 0b11);
    assert_eq!(a.chains.len(), 2);
    assert_eq!(a.slot, 0);
    assert_eq!(a.cma_id, DEFAULT_CMA_ID);
    assert_ne!(
        key.asym_mask() & a.asym,
        0,
        "selected algorithm matches the key"
    );
}

#[test]
fn happy_path_p256_all_versions() {
    for v in [
        SpdmVersion::V1_0,
        SpdmVersion::V1_1,
        SpdmVersion::V1_2,
        SpdmVersion::V1_3,
    ] {
        let a = run(KeyKind::P256, Fault::None, |c| c.versions = vec![v]).unwrap();
        assert_eq!(a.version, v);
        assert_eq!(a.asym, SPDM_ASYM_ECDSA_P256);
        assert_eq!(a.hash, SPDM_HASH_SHA512, "strongest common hash");
        assert_ok(&a, KeyKind::P256);
    }
}

#[test]
fn happy_path_p384_highest_version_and_hashes() {
    let a = run(KeyKind::P384, Fault::None, |_| {}).unwrap();
    assert_eq!(a.version, SpdmVersion::V1_3);
    assert_eq!(a.asym, SPDM_ASYM_ECDSA_P384);
    assert_ok(&a, KeyKind::P384);
    for hash in [SPDM_HASH_SHA256, SPDM_HASH_SHA384] {
        let a = run(KeyKind::P384, Fault::None, |c| {
            c.hash = hash;
            c.versions = vec![SpdmVersion::V1_2];
            c.structs = true;
        })
        .unwrap();
        assert_eq!(a.hash, hash);
    }
}

#[test]
fn happy_path_rsa3072_pss_and_pkcs1() {
    let a = run(KeyKind::Rsa3072, Fault::None, |_| {}).unwrap();
    assert_eq!(a.asym, SPDM_ASYM_RSAPSS_3072, "PSS preferred when offered");
    assert_ok(&a, KeyKind::Rsa3072);
    for v in [SpdmVersion::V1_1, SpdmVersion::V1_2] {
        let a = run(KeyKind::Rsa3072, Fault::None, |c| {
            c.asym = SPDM_ASYM_RSASSA_3072 | SPDM_ASYM_ECDSA_P256;
            c.hash = SPDM_HASH_SHA256;
            c.versions = vec![v];
        })
        .unwrap();
        assert_eq!(a.asym, SPDM_ASYM_RSASSA_3072);
        assert_eq!(a.hash, SPDM_HASH_SHA256);
    }
}

#[test]
fn happy_path_rsa2048() {
    let a = run(KeyKind::Rsa2048, Fault::None, |c| c.hash = SPDM_HASH_SHA384).unwrap();
    assert_eq!(a.asym, SPDM_ASYM_RSAPSS_2048);
    assert_ok(&a, KeyKind::Rsa2048);
}

#[test]
fn small_certificate_chunks_and_other_slot() {
    let (mut t, id) = endpoint(KeyKind::P256, Fault::None);
    let mut c = Config::new(&id.trusted_root);
    c.chunk = 100;
    c.slot = Some(1);
    let a = authenticate(&mut t, &c).unwrap();
    assert_eq!(a.slot, 1);
    let chain_len = a.chains[0].1.len();
    // GET_VERSION, GET_CAPABILITIES, NEGOTIATE_ALGORITHMS, GET_DIGESTS, 2 chains in 100-byte
    // chunks, CHALLENGE.
    let expect = 4 + 2 * chain_len.div_ceil(100) + 1;
    assert!(
        t.exchanges >= expect - 1 && t.exchanges <= expect + 1,
        "{} exchanges for {chain_len}-byte chains",
        t.exchanges
    );
    // The chain is what the identity says, for the negotiated hash.
    assert_eq!(a.chains[1].1, id.slots[1].spdm_chain(a.hash).unwrap());
}

#[test]
fn rechallenge_without_certificates_uses_vca_only() {
    let (mut t, id) = endpoint(KeyKind::P384, Fault::None);
    let c = Config::new(&id.trusted_root);
    let a = authenticate(&mut t, &c).unwrap();
    // A second CHALLENGE in the same connection: the transcript is VCA + CHALLENGE/AUTH.
    let mut transcript = Bytes(a.vca.clone());
    let mut r = Requester {
        t: &mut t,
        busy_seen: 0,
        not_ready_seen: 0,
        busy_retries: 0,
    };
    let chain = a.chains[0].1.clone();
    let h = hash_size(a.hash).unwrap();
    let s = signature_size(a.asym).unwrap();
    challenge(
        &mut r,
        a.version,
        a.asym,
        a.hash,
        h,
        s,
        0,
        &chain,
        &mut transcript,
    )
    .unwrap();
    // GET_DIGESTS then CHALLENGE again: B holds only the digests.
    let mut out = [0u8; 4];
    encode_get_digests(a.version, &mut out).unwrap();
    let rsp = r.request(a.version, &out).unwrap();
    let d = parse_digests(&rsp, a.version, h).unwrap();
    let mut transcript = Bytes(a.vca.clone());
    transcript.update(&out);
    transcript.update(&rsp[..d.len]);
    challenge(
        &mut r,
        a.version,
        a.asym,
        a.hash,
        h,
        s,
        1,
        &a.chains[1].1,
        &mut transcript,
    )
    .unwrap();
    // A transcript without the VCA does not verify.
    let mut wrong = Bytes::default();
    let e = challenge(
        &mut r, a.version, a.asym, a.hash, h, s, 0, &chain, &mut wrong,
    )
    .unwrap_err();
    assert!(e.contains("signature verification failed"), "{e}");
}

// --- Faults the requester detects ---------------------------------------------------------------

fn expect_failure(key: KeyKind, fault: Fault, needle: &str) {
    let e = run(key, fault, |_| {}).expect_err(&format!("{fault} must fail"));
    assert!(
        e.contains(needle),
        "{fault}: {e:?} does not mention {needle:?}"
    );
}

#[test]
fn bad_signature_is_detected() {
    expect_failure(
        KeyKind::P256,
        Fault::BadSignature,
        "signature verification failed",
    );
    expect_failure(
        KeyKind::Rsa3072,
        Fault::BadSignature,
        "signature verification failed",
    );
}

#[test]
fn wrong_nonce_is_detected() {
    expect_failure(
        KeyKind::P384,
        Fault::WrongNonce,
        "signature verification failed",
    );
}

#[test]
fn truncated_and_oversized_are_detected() {
    expect_failure(
        KeyKind::P256,
        Fault::Truncated,
        "CHALLENGE_AUTH: SPDM message shorter",
    );
    expect_failure(
        KeyKind::P256,
        Fault::Oversized,
        "CHALLENGE_AUTH: unexpected bytes after",
    );
}

#[test]
fn garbage_and_no_answer_are_detected() {
    let e = run(KeyKind::P256, Fault::Garbage, |_| {}).unwrap_err();
    assert!(
        e.starts_with("VERSION") || e.starts_with("GET_VERSION"),
        "{e}"
    );
    expect_failure(KeyKind::P256, Fault::NoAnswer, "no answer");
}

#[test]
fn version_faults_are_detected() {
    expect_failure(KeyKind::P256, Fault::WrongVersion, "no common SPDM version");
    expect_failure(
        KeyKind::P256,
        Fault::WrongHeaderVersion,
        "CAPABILITIES: unexpected SPDM version",
    );
}

#[test]
fn unsupported_algorithm_is_detected() {
    expect_failure(
        KeyKind::P256,
        Fault::UnsupportedAlgorithm,
        "selects an algorithm not offered",
    );
    // Also when the requester offers a single algorithm.
    let e = run(KeyKind::P256, Fault::UnsupportedAlgorithm, |c| {
        c.asym = SPDM_ASYM_ECDSA_P256
    })
    .unwrap_err();
    assert!(e.contains("not offered"), "{e}");
}

#[test]
fn no_common_algorithm_is_detected() {
    let e = run(KeyKind::P256, Fault::None, |c| {
        c.asym = SPDM_ASYM_ECDSA_P384
    })
    .unwrap_err();
    assert!(e.contains("no common SPDM algorithm"), "{e}");
}

#[test]
fn digest_mismatch_is_detected() {
    expect_failure(
        KeyKind::P256,
        Fault::DigestMismatch,
        "digest does not match DIGESTS",
    );
}

#[test]
fn chain_faults_are_detected() {
    expect_failure(KeyKind::P256, Fault::UntrustedRoot, "untrusted root");
    expect_failure(KeyKind::P256, Fault::ExpiredLeaf, "certificate 2 expired");
    expect_failure(
        KeyKind::P256,
        Fault::BrokenChain,
        "signature of certificate 1 does not verify",
    );
}

#[test]
fn busy_is_retried_within_bounds() {
    let a = run(KeyKind::P256, Fault::Busy(2), |_| {}).unwrap();
    // 6 kinds of requests, 2 Busy each (2 slots' certificates: 2 GET_CERTIFICATE).
    assert_eq!(a.busy_seen, 2 * 7);
    let e = run(KeyKind::P256, Fault::Busy(4), |c| c.busy_retries = 3).unwrap_err();
    assert!(e.contains("ERROR Busy"), "{e}");
}

#[test]
fn not_ready_is_followed_by_respond_if_ready() {
    let a = run(KeyKind::P384, Fault::NotReady, |_| {}).unwrap();
    // GET_DIGESTS, 2 x GET_CERTIFICATE, CHALLENGE.
    assert_eq!(a.not_ready_seen, 4);
    let a = run(KeyKind::P384, Fault::NotReady, |c| {
        c.versions = vec![SpdmVersion::V1_2]
    })
    .unwrap();
    assert_eq!(a.version, SpdmVersion::V1_2);
}

// --- Protocol state ----------------------------------------------------------------------------

fn error_of(rsp: &[u8]) -> (u8, u8) {
    let e = parse_error_response(rsp).expect("an ERROR response");
    (e.code, e.data)
}

#[test]
fn out_of_order_requests_are_unexpected() {
    let (mut t, _) = endpoint(KeyKind::P256, Fault::None);
    let mut out = [0u8; 64];
    // Before GET_VERSION.
    let n = encode_get_digests(SpdmVersion::V1_2, &mut out).unwrap();
    assert_eq!(
        error_of(&t.exchange(&out[..n]).unwrap()).0,
        SPDM_ERROR_UNEXPECTED_REQUEST
    );
    let mut caps = Capabilities::new(SpdmVersion::V1_2);
    caps.data_transfer_size = 4600;
    caps.max_spdm_msg_size = 4600;
    let cn = encode_get_capabilities(&caps, &mut out).unwrap();
    let caps_req = out[..cn].to_vec();
    assert_eq!(
        error_of(&t.exchange(&caps_req).unwrap()).0,
        SPDM_ERROR_UNEXPECTED_REQUEST
    );
    // After VERSION: NEGOTIATE_ALGORITHMS too early.
    let n = encode_get_version(&mut out).unwrap();
    parse_version_response(&t.exchange(&out[..n]).unwrap()).unwrap();
    let mut na = NegotiateAlgorithms::new(SpdmVersion::V1_2);
    na.base_asym = SPDM_ASYM_ECDSA_P256;
    na.base_hash = SPDM_HASH_SHA256;
    let nn = encode_negotiate_algorithms(&na, &mut out).unwrap();
    let na_req = out[..nn].to_vec();
    assert_eq!(
        error_of(&t.exchange(&na_req).unwrap()).0,
        SPDM_ERROR_UNEXPECTED_REQUEST
    );
    // A version that VERSION did not offer.
    let mut bad = caps_req.clone();
    bad[0] = 0x14;
    assert_eq!(
        error_of(&t.exchange(&bad).unwrap()).0,
        SPDM_ERROR_VERSION_MISMATCH
    );
    // In order it works; then a request with another version is VersionMismatch.
    parse_capabilities(&t.exchange(&caps_req).unwrap(), SpdmVersion::V1_2).unwrap();
    let mut other = na_req.clone();
    other[0] = 0x13;
    assert_eq!(
        error_of(&t.exchange(&other).unwrap()).0,
        SPDM_ERROR_VERSION_MISMATCH
    );
    parse_algorithms(&t.exchange(&na_req).unwrap(), SpdmVersion::V1_2).unwrap();
    // GET_CAPABILITIES again is out of order; GET_VERSION resets.
    assert_eq!(
        error_of(&t.exchange(&caps_req).unwrap()).0,
        SPDM_ERROR_UNEXPECTED_REQUEST
    );
    let n = encode_get_version(&mut out).unwrap();
    parse_version_response(&t.exchange(&out[..n]).unwrap()).unwrap();
    let n = encode_get_digests(SpdmVersion::V1_2, &mut out).unwrap();
    assert_eq!(
        error_of(&t.exchange(&out[..n]).unwrap()).0,
        SPDM_ERROR_UNEXPECTED_REQUEST
    );
    parse_capabilities(&t.exchange(&caps_req).unwrap(), SpdmVersion::V1_2).unwrap();
    // RESPOND_IF_READY with nothing pending.
    let n = encode_respond_if_ready(
        &RespondIfReady {
            version: SpdmVersion::V1_2,
            request_code: SPDM_CHALLENGE,
            token: 1,
        },
        &mut out,
    )
    .unwrap();
    assert_eq!(
        error_of(&t.exchange(&out[..n]).unwrap()).0,
        SPDM_ERROR_UNEXPECTED_REQUEST
    );
}

#[test]
fn bad_requests_get_invalid_request() {
    let (mut t, id) = endpoint(KeyKind::P256, Fault::None);
    let c = Config::new(&id.trusted_root);
    let a = authenticate(&mut t, &c).unwrap();
    let v = a.version;
    let mut out = [0u8; 64];
    // Empty slot, offset beyond the chain, measurement summary without MEAS_CAP.
    let req = GetCertificate {
        version: v,
        slot: 5,
        attributes: 0,
        offset: 0,
        length: 100,
    };
    let n = encode_get_certificate(&req, &mut out).unwrap();
    assert_eq!(
        error_of(&t.exchange(&out[..n]).unwrap()).0,
        SPDM_ERROR_INVALID_REQUEST
    );
    let req = GetCertificate {
        slot: 0,
        offset: 60000,
        ..req
    };
    let n = encode_get_certificate(&req, &mut out).unwrap();
    assert_eq!(
        error_of(&t.exchange(&out[..n]).unwrap()).0,
        SPDM_ERROR_INVALID_REQUEST
    );
    // The endpoint announces MEAS_CAP: a summary is provided (tests/session.rs checks its
    // value); without measurements it is refused.
    let ch = Challenge {
        version: v,
        slot: 0,
        meas_summary_type: SPDM_MEAS_SUMMARY_ALL,
        nonce: [0; 32],
        requester_context: [0; 8],
    };
    let n = encode_challenge(&ch, &mut out).unwrap();
    assert_eq!(t.exchange(&out[..n]).unwrap()[1], SPDM_CHALLENGE_AUTH);
    t.responder.set_measurements(None);
    assert_eq!(
        error_of(&t.exchange(&out[..n]).unwrap()).0,
        SPDM_ERROR_INVALID_REQUEST
    );
    let ch = Challenge {
        slot: 3,
        meas_summary_type: 0,
        ..ch
    };
    let n = encode_challenge(&ch, &mut out).unwrap();
    assert_eq!(
        error_of(&t.exchange(&out[..n]).unwrap()).0,
        SPDM_ERROR_INVALID_REQUEST
    );
    // 1.3 SlotSizeRequested: only the size.
    let req = GetCertificate {
        version: v,
        slot: 0,
        attributes: SPDM_GET_CERTIFICATE_SLOT_SIZE_REQUESTED,
        offset: 0,
        length: 0xFFFF,
    };
    let n = encode_get_certificate(&req, &mut out).unwrap();
    let rsp = t.exchange(&out[..n]).unwrap();
    let c = parse_certificate(&rsp, v).unwrap();
    assert_eq!(c.check(&req), Ok(()));
    assert!(c.portion.is_empty());
    assert_eq!(usize::from(c.remainder_length), a.chains[0].1.len());
}

#[test]
fn every_response_fits_qemu() {
    // The largest responses: a 4096-bit RSA CHALLENGE_AUTH and a certificate portion as large
    // as the transfer size allows.
    let a = run(KeyKind::Rsa4096, Fault::Oversized, |c| c.chunk = 0xFFFF);
    assert!(a.is_err());
    let a = run(KeyKind::Rsa4096, Fault::None, |_| {}).unwrap();
    assert_eq!(a.asym, SPDM_ASYM_RSAPSS_4096);
}

// --- Over TCP, the real binary ----------------------------------------------------------------

struct Child_(Option<Child>, PathBuf);

impl Drop for Child_ {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

fn start_binary(args: &[&str], name: &str) -> (Child_, Vec<u16>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("coco-auth-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pki = dir.join("pki");
    let child = Command::new(env!("CARGO_BIN_EXE_coco-endpoint"))
        .args(args)
        .arg("--pki-dir")
        .arg(&pki)
        .arg("--port-file")
        .arg(dir.join("ports"))
        .arg("--log")
        .arg(dir.join("log"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let guard = Child_(Some(child), dir.clone());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = std::fs::read_to_string(dir.join("ports")) {
            let ports = text.lines().map(|l| l.parse().unwrap()).collect();
            return (guard, ports, pki);
        }
        assert!(
            Instant::now() < deadline,
            "no port file; log: {:?}",
            std::fs::read_to_string(dir.join("log"))
        );
        thread::sleep(Duration::from_millis(20));
    }
}

fn connect(port: u16) -> Tcp {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    Tcp(s)
}

#[test]
fn binary_over_tcp_with_pki_dir() {
    let (_guard, ports, pki) = start_binary(
        &[
            "--count",
            "3",
            "--key",
            "p256",
            "--key",
            "2:rsa2048",
            "--slots",
            "0,1",
            "--fault",
            "1:bad-signature",
        ],
        "tcp",
    );
    let root = std::fs::read(pki.join("root.der")).expect("root.der written before the port file");
    assert!(std::fs::read_to_string(pki.join("root.pem"))
        .unwrap()
        .contains("BEGIN CERTIFICATE"));
    let cfg = Config::new(&root);

    let mut a = connect(ports[0]);
    let ok = authenticate(&mut a, &cfg).unwrap();
    assert_eq!(ok.asym, SPDM_ASYM_ECDSA_P256);
    assert_eq!(ok.slot_mask, 0b11);

    let mut b = connect(ports[1]);
    let e = authenticate(&mut b, &cfg).unwrap_err();
    assert!(e.contains("signature verification failed"), "{e}");

    let mut c = connect(ports[2]);
    let ok = authenticate(&mut c, &cfg).unwrap();
    assert_eq!(ok.asym, SPDM_ASYM_RSAPSS_2048);

    for t in [&mut a, &mut b, &mut c] {
        t.0.write_all(&encode_frame(
            SOCKET_COMMAND_SHUTDOWN,
            SOCKET_TRANSPORT_PCI_DOE,
            &[],
        ))
        .unwrap();
    }
    // A second run with the same directory keeps the trust anchor.
    drop(_guard);
}

#[test]
fn pki_dir_root_is_stable_across_runs() {
    let dir = std::env::temp_dir().join(format!("coco-auth-stable-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = PkiOptions {
        dir: Some(dir.clone()),
        key: KeyKind::P384,
        slots: vec![0],
        cma_id: "Vendor=8086:Device=1234:CC=010802:REV=01".to_string(),
        fault: ChainFault::None,
    };
    let first = build_identity(&opts).unwrap();
    let second = build_identity(&opts).unwrap();
    assert_eq!(first.trusted_root, second.trusted_root);
    assert_eq!(
        std::fs::read(dir.join("root.der")).unwrap(),
        first.trusted_root
    );
    let mut t = InProcess {
        responder: Responder::with_identity(all_versions(), Fault::None, Arc::new(second)),
        exchanges: 0,
    };
    let a = authenticate(&mut t, &Config::new(&first.trusted_root)).unwrap();
    assert_eq!(a.cma_id, "Vendor=8086:Device=1234:CC=010802:REV=01");
    let _ = std::fs::remove_dir_all(&dir);
}
