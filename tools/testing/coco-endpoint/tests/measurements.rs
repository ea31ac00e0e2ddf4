//! Device measurements against the emulated endpoint, with an independent userspace requester:
//! the project's codec (`coco_spdm::meas`) for the messages, RustCrypto for hashes and
//! signature verification over the L1/L2 transcript, x509-parser for the leaf key.
//!
//! The requester negotiates (VCA only; certificates are not needed, the leaf key comes from the
//! in-process PKI), then reads all blocks signed, or the count and each index one by one with
//! the last request signed, and verifies the signature over VCA (1.2+) || every
//! GET_MEASUREMENTS / MEASUREMENTS since the last signed response. Each measurement fault must
//! produce the expected decoder error, verification failure or ERROR.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use coco_doe::{decode_object, encode_object, object_size, DOE_TYPE_CMA, PCI_SIG_VENDOR_ID};
use coco_endpoint::measurements::MeasConfig;
use coco_endpoint::pki::{
    build_identity, spdm_hash, ChainFault, Identity, KeyKind, PkiOptions, DEFAULT_CMA_ID,
};
use coco_endpoint::{Fault, Responder};
use coco_spdm::auth::*;
use coco_spdm::meas::*;
use coco_spdm::*;
use rand::RngExt;
use signature::hazmat::PrehashVerifier;
use x509_parser::prelude::*;

fn identity(key: KeyKind) -> Arc<Identity> {
    type Cache = Mutex<HashMap<KeyKind, Arc<Identity>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache.lock().unwrap();
    let id = cache.entry(key).or_insert_with(|| {
        Arc::new(
            build_identity(&PkiOptions {
                dir: None,
                key,
                slots: vec![0, 1],
                cma_id: DEFAULT_CMA_ID.to_string(),
                fault: ChainFault::None,
            })
            .unwrap(),
        )
    });
    Arc::clone(id)
}

/// Verifies an SPDM signature (raw r||s for ECDSA, PKCS#1 v1.5 or PSS for RSA) over `digest`
/// with the public key of the DER certificate `leaf`.
fn verify(leaf: &[u8], asym: u32, hash: u32, digest: &[u8], sig: &[u8]) -> Result<(), String> {
    let (_, cert) = X509Certificate::from_der(leaf).map_err(|e| e.to_string())?;
    let key = &cert.public_key().subject_public_key.data;
    let e = |e: signature::Error| e.to_string();
    match asym {
        SPDM_ASYM_ECDSA_P256 => {
            let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(|e| e.to_string())?;
            let s = p256::ecdsa::Signature::from_slice(sig).map_err(e)?;
            vk.verify_prehash(digest, &s).map_err(e)
        }
        SPDM_ASYM_ECDSA_P384 => {
            let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(|e| e.to_string())?;
            let s = p384::ecdsa::Signature::from_slice(sig).map_err(e)?;
            vk.verify_prehash(digest, &s).map_err(e)
        }
        _ => {
            use rsa::pkcs1::DecodeRsaPublicKey;
            let pk = rsa::PublicKey::from_pkcs1_der(key).map_err(|e| e.to_string())?;
            let pss = matches!(
                asym,
                SPDM_ASYM_RSAPSS_2048 | SPDM_ASYM_RSAPSS_3072 | SPDM_ASYM_RSAPSS_4096
            );
            macro_rules! rsa_verify {
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
                SPDM_HASH_SHA256 => rsa_verify!(sha2::Sha256),
                SPDM_HASH_SHA384 => rsa_verify!(sha2::Sha384),
                SPDM_HASH_SHA512 => rsa_verify!(sha2::Sha512),
                _ => Err("hash".to_string()),
            }
        }
    }
}

/// One parsed, checked (and, if signed, verified) MEASUREMENTS.
#[derive(Debug)]
struct Measured {
    total: u8,
    content_changed: u8,
    blocks: Vec<(u8, u8, Vec<u8>)>,
}

/// A negotiated connection to an in-process responder.
struct Conn {
    responder: Responder,
    id: Arc<Identity>,
    v: SpdmVersion,
    caps: Capabilities,
    alg: Algorithms,
    vca: Vec<u8>,
    /// L1/L2 without the VCA.
    l: Vec<u8>,
}

impl Conn {
    fn exchange(&mut self, msg: &[u8]) -> Vec<u8> {
        let mut obj = vec![0u8; object_size(msg.len()).unwrap()];
        encode_object(PCI_SIG_VENDOR_ID, DOE_TYPE_CMA, msg, &mut obj).unwrap();
        let reply = self.responder.respond(&obj).object.expect("an answer");
        decode_object(&reply).unwrap().payload.to_vec()
    }

    fn open(key: KeyKind, fault: Fault, v: SpdmVersion) -> Conn {
        Conn::open_with(key, fault, v, None)
    }

    fn open_with(key: KeyKind, fault: Fault, v: SpdmVersion, cfg: Option<Arc<MeasConfig>>) -> Conn {
        let id = identity(key);
        let mut responder = Responder::with_identity(
            [
                SpdmVersion::V1_0,
                SpdmVersion::V1_1,
                SpdmVersion::V1_2,
                SpdmVersion::V1_3,
            ]
            .map(SpdmVersion::to_entry)
            .to_vec(),
            fault,
            Arc::clone(&id),
        );
        if cfg.is_some() {
            responder.set_measurements(cfg);
        }
        let mut c = Conn {
            responder,
            id,
            v,
            caps: Capabilities::new(v),
            alg: Algorithms::new(v),
            vca: Vec::new(),
            l: Vec::new(),
        };
        let mut out = [0u8; 256];
        let n = encode_get_version(&mut out).unwrap();
        let rsp = c.exchange(&out[..n]);
        let vr = parse_version_response(&rsp).unwrap();
        c.vca.extend_from_slice(&out[..n]);
        c.vca.extend_from_slice(vr_bytes(&rsp, vr.count()));

        let mut caps = Capabilities::new(v);
        caps.ct_exponent = 12;
        caps.flags = SPDM_CAP_CERT | SPDM_CAP_CHAL;
        caps.data_transfer_size = 4600;
        caps.max_spdm_msg_size = 4600;
        let n = encode_get_capabilities(&caps, &mut out).unwrap();
        let rsp = c.exchange(&out[..n]);
        c.caps = parse_capabilities(&rsp, v).unwrap();
        c.vca.extend_from_slice(&out[..n]);
        c.vca.extend_from_slice(&rsp[..capabilities_size(v)]);

        let mut na = NegotiateAlgorithms::new(v);
        na.measurement_specification = SPDM_MEAS_SPEC_DMTF;
        na.base_asym = SPDM_ASYM_ECDSA_P256
            | SPDM_ASYM_ECDSA_P384
            | SPDM_ASYM_RSASSA_2048
            | SPDM_ASYM_RSAPSS_2048
            | SPDM_ASYM_RSASSA_3072
            | SPDM_ASYM_RSAPSS_3072;
        na.base_hash = SPDM_HASH_SHA256 | SPDM_HASH_SHA384;
        let n = encode_negotiate_algorithms(&na, &mut out).unwrap();
        let rsp = c.exchange(&out[..n]);
        c.alg = parse_algorithms(&rsp, v).unwrap();
        c.alg.check_against(&na, true).unwrap();
        c.vca.extend_from_slice(&out[..n]);
        c.vca.extend_from_slice(&rsp[..c.alg.len]);
        c
    }

    /// Sends GET_MEASUREMENTS and returns the checked (and verified) response, or an error
    /// text: "ERROR <name>", a codec reason, or "signature verification failed".
    fn get(&mut self, operation: u8, signed: bool, slot: u8) -> Result<Measured, String> {
        let mut req = GetMeasurements::new(self.v, operation, signed);
        if signed {
            req.nonce = rand::rng().random();
            req.slot_id = slot;
        }
        if self.v >= SpdmVersion::V1_3 {
            req.requester_context = rand::rng().random();
        }
        let mut out = [0u8; SPDM_GET_MEASUREMENTS_MAX_SIZE];
        let n = encode_get_measurements(&req, &mut out).unwrap();
        let request = out[..n].to_vec();
        let rsp = self.exchange(&request);
        if rsp[1] == SPDM_ERROR {
            self.l.clear();
            let e = parse_error_response(&rsp).unwrap();
            return Err(format!(
                "ERROR {} data {:#x}",
                error_code_name(e.code),
                e.data
            ));
        }
        let mh = negotiated_measurement_hash(&self.alg, self.caps.meas_cap()).unwrap();
        assert!(mh.is_some());
        let params = MeasurementsParams::for_request(&req, self.alg.signature_size().unwrap(), mh);
        let m = parse_measurements(&rsp, &params).map_err(|e| {
            self.l.clear();
            e.reason().to_string()
        })?;
        m.check(&req).map_err(|e| e.reason().to_string())?;
        if let Some(sig) = m.signature {
            let mut l = Vec::new();
            if self.v >= SpdmVersion::V1_2 {
                l.extend_from_slice(&self.vca);
            }
            l.extend_from_slice(&self.l);
            l.extend_from_slice(&request);
            l.extend_from_slice(&rsp[..m.signature_offset]);
            self.l.clear();
            let h = spdm_hash(self.alg.base_hash, &l).unwrap();
            let mut msg = [0u8; 200];
            let sn = measurements_signed_message(self.v, &h, &mut msg).unwrap();
            let digest = if self.v >= SpdmVersion::V1_2 {
                spdm_hash(self.alg.base_hash, &msg[..sn]).unwrap()
            } else {
                h
            };
            let slot = if self.v >= SpdmVersion::V1_1 { slot } else { 0 };
            let leaf = self.id.slot(slot).unwrap().certs.last().unwrap().clone();
            verify(&leaf, self.alg.base_asym, self.alg.base_hash, &digest, sig)
                .map_err(|e| format!("signature verification failed: {e}"))?;
        } else {
            self.l.extend_from_slice(&request);
            self.l.extend_from_slice(&rsp[..m.len]);
        }
        Ok(Measured {
            total: m.total_indices(),
            content_changed: m.content_changed,
            blocks: m
                .blocks()
                .map(|b| (b.index, b.value_type, b.value.to_vec()))
                .collect(),
        })
    }
}

fn vr_bytes(rsp: &[u8], count: u8) -> &[u8] {
    &rsp[..SPDM_VERSION_RESPONSE_FIXED_SIZE + SPDM_VERSION_ENTRY_SIZE * usize::from(count)]
}

const VERSIONS: [SpdmVersion; 4] = [
    SpdmVersion::V1_0,
    SpdmVersion::V1_1,
    SpdmVersion::V1_2,
    SpdmVersion::V1_3,
];

fn assert_default_blocks(blocks: &[(u8, u8, Vec<u8>)], h: usize) {
    let indices: Vec<u8> = blocks.iter().map(|b| b.0).collect();
    assert_eq!(indices, [1, 2, 3, 4, 5, 6]);
    let types: Vec<String> = blocks
        .iter()
        .map(|b| MeasurementTypeName(b.1).to_string())
        .collect();
    assert_eq!(
        types,
        [
            "immutable_rom",
            "mutable_firmware",
            "hardware_config",
            "firmware_config",
            "version",
            "svn"
        ]
    );
    for b in &blocks[..4] {
        assert_eq!(b.1 & SPDM_MEAS_VALUE_RAW, 0);
        assert_eq!(b.2.len(), h);
    }
    assert_eq!(blocks[4].2, b"1.4.2");
    assert_eq!(blocks[5].2, 3u64.to_le_bytes());
}

#[test]
fn all_blocks_signed_every_version() {
    for v in VERSIONS {
        let mut c = Conn::open(KeyKind::P384, Fault::None, v);
        assert_eq!(c.caps.meas_cap(), 2);
        assert!(c.caps.has(SPDM_CAP_MEAS_FRESH));
        assert_eq!(c.alg.measurement_specification, SPDM_MEAS_SPEC_DMTF);
        assert_eq!(c.alg.measurement_hash, SPDM_MEAS_HASH_SHA384);
        let m = c.get(SPDM_MEAS_OP_ALL, true, 0).unwrap();
        assert_default_blocks(&m.blocks, 48);
        if v >= SpdmVersion::V1_2 {
            assert_eq!(m.content_changed, SPDM_MEAS_CONTENT_UNCHANGED);
        }
        // A second signed request starts a fresh L1/L2; slot 1 signs with its own key.
        let slot = if v >= SpdmVersion::V1_1 { 1 } else { 0 };
        let again = c.get(SPDM_MEAS_OP_ALL, true, slot).unwrap();
        assert_eq!(again.blocks, m.blocks);
    }
}

#[test]
fn other_keys_sign_measurements() {
    for (key, v) in [
        (KeyKind::P256, SpdmVersion::V1_2),
        (KeyKind::Rsa2048, SpdmVersion::V1_3),
        (KeyKind::Rsa2048, SpdmVersion::V1_1),
    ] {
        let mut c = Conn::open(key, Fault::None, v);
        let m = c.get(SPDM_MEAS_OP_ALL, true, 0).unwrap();
        assert_eq!(m.blocks.len(), 6, "{key:?} {v:?}");
    }
}

#[test]
fn count_then_each_index_with_last_signed() {
    for v in VERSIONS {
        let mut c = Conn::open(KeyKind::P256, Fault::None, v);
        let all = c.get(SPDM_MEAS_OP_ALL, false, 0).unwrap();
        let count = c.get(SPDM_MEAS_OP_TOTAL, false, 0).unwrap();
        assert_eq!(count.total, 6);
        assert!(count.blocks.is_empty());
        let mut blocks = Vec::new();
        for index in 1..=count.total {
            let signed = index == count.total;
            let m = c.get(index, signed, 0).unwrap();
            assert_eq!(m.blocks.len(), 1);
            blocks.extend(m.blocks);
        }
        // The signature covered the unsigned all-blocks read, the count and every index.
        assert_eq!(blocks, all.blocks);
        assert_default_blocks(&blocks, c.alg.hash_size().unwrap());
        assert!(c.get(7, false, 0).unwrap_err().contains("InvalidRequest"));
    }
}

#[test]
fn raw_bit_stream_requested() {
    let mut c = Conn::open(KeyKind::P256, Fault::None, SpdmVersion::V1_2);
    let mut req = GetMeasurements::new(SpdmVersion::V1_2, 2, false);
    req.attributes |= SPDM_MEAS_ATTR_RAW_BIT_STREAM;
    let mut out = [0u8; 64];
    let n = encode_get_measurements(&req, &mut out).unwrap();
    let rsp = c.exchange(&out[..n]);
    let m = parse_measurements(&rsp, &MeasurementsParams::for_request(&req, 64, Some(32))).unwrap();
    let b = m.blocks().next().unwrap();
    assert!(b.is_raw());
    assert_eq!(b.value, b"coco-endpoint firmware image 1.4.2");
}

#[test]
fn firmware_update_changes_firmware_and_version() {
    let cfg = Arc::new(MeasConfig::default_device());
    let v = SpdmVersion::V1_2;
    let mut c = Conn::open_with(KeyKind::P256, Fault::None, v, Some(Arc::clone(&cfg)));
    let before = c.get(SPDM_MEAS_OP_ALL, true, 0).unwrap();
    cfg.set_updated(true);
    let after = c.get(SPDM_MEAS_OP_ALL, true, 0).unwrap();
    assert_eq!(after.content_changed, SPDM_MEAS_CONTENT_UNCHANGED);
    assert_eq!(before.blocks[0], after.blocks[0]);
    assert_ne!(before.blocks[1], after.blocks[1]);
    assert_eq!(after.blocks[4].2, b"1.5.0");
    assert_eq!(before.blocks[5], after.blocks[5]);
    // An update in the middle of an L1/L2 accumulation is reported as a content change.
    c.get(1, false, 0).unwrap();
    cfg.set_updated(false);
    let m = c.get(2, true, 0).unwrap();
    assert_eq!(m.content_changed, SPDM_MEAS_CONTENT_CHANGED);
    assert_eq!(m.blocks[0], before.blocks[1]);
}

#[test]
fn faults_are_detected() {
    for v in VERSIONS {
        let expect = |fault: Fault, op: u8, signed: bool, needle: &str| {
            let mut c = Conn::open(KeyKind::P256, fault, v);
            let e = c.get(op, signed, 0).unwrap_err();
            assert!(e.contains(needle), "{fault} {v:?}: {e}");
        };
        expect(
            Fault::BadMeasSignature,
            SPDM_MEAS_OP_ALL,
            true,
            "signature verification failed",
        );
        expect(
            Fault::MalformedBlock,
            SPDM_MEAS_OP_ALL,
            false,
            MeasError::BlockSizeMismatch.reason(),
        );
        expect(
            Fault::MalformedBlock,
            3,
            true,
            MeasError::BlockSizeMismatch.reason(),
        );
        expect(
            Fault::DuplicateIndex,
            SPDM_MEAS_OP_ALL,
            true,
            MeasError::DuplicateIndex.reason(),
        );
        expect(
            Fault::OversizedRecord,
            SPDM_MEAS_OP_ALL,
            true,
            MeasError::RecordOverrun.reason(),
        );
        expect(
            Fault::NoMeasSig,
            SPDM_MEAS_OP_ALL,
            true,
            "ERROR InvalidRequest",
        );
        expect(
            Fault::RefuseAllBlocks,
            SPDM_MEAS_OP_ALL,
            true,
            "ERROR UnsupportedRequest data 0xe0",
        );

        // What still works under no-meas-sig and refuse-all-blocks.
        let mut c = Conn::open(KeyKind::P256, Fault::NoMeasSig, v);
        assert_eq!(c.caps.meas_cap(), 1);
        assert_eq!(c.get(SPDM_MEAS_OP_ALL, false, 0).unwrap().blocks.len(), 6);
        let mut c = Conn::open(KeyKind::P256, Fault::RefuseAllBlocks, v);
        assert_eq!(c.get(SPDM_MEAS_OP_TOTAL, false, 0).unwrap().total, 6);
        assert_eq!(c.get(2, true, 0).unwrap().blocks[0].0, 2);
        // The bad signature fault leaves the blocks themselves intact.
        let mut c = Conn::open(KeyKind::P256, Fault::BadMeasSignature, v);
        assert_eq!(c.get(SPDM_MEAS_OP_ALL, false, 0).unwrap().blocks.len(), 6);
    }
    for f in Fault::MEASUREMENT {
        assert!(Fault::ALL.contains(&f));
    }
}

#[test]
fn measurements_need_negotiation_and_reset_on_other_requests() {
    let mut c = Conn::open(KeyKind::P256, Fault::None, SpdmVersion::V1_2);
    // An unsigned read, then another request: L1/L2 restarts, so a signed read verifies over
    // VCA and itself only.
    c.get(1, false, 0).unwrap();
    let mut out = [0u8; 8];
    let n = encode_get_digests(SpdmVersion::V1_2, &mut out).unwrap();
    c.exchange(&out[..n]);
    c.l.clear();
    c.get(2, true, 0).unwrap();
    // Before ALGORITHMS: UnexpectedRequest.
    let id = identity(KeyKind::P256);
    let mut r = Responder::with_identity(vec![SpdmVersion::V1_2.to_entry()], Fault::None, id);
    let mut obj = vec![0u8; 12];
    encode_object(
        PCI_SIG_VENDOR_ID,
        DOE_TYPE_CMA,
        &[0x12, SPDM_GET_MEASUREMENTS, 0, 0xFF],
        &mut obj,
    )
    .unwrap();
    let reply = r.respond(&obj).object.unwrap();
    let e = parse_error_response(decode_object(&reply).unwrap().payload).unwrap();
    assert_eq!(e.code, SPDM_ERROR_UNEXPECTED_REQUEST);
}
