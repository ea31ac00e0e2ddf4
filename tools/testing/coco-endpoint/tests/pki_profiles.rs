//! The PKI profiles (`--pki-profile`) and the P-521 leaf (`--key p521`): every chain is parsed
//! with x509-parser and checked for the property its profile promises, every certificate's
//! signature is verified with its issuer's key, and a small in-process requester authenticates
//! against the endpoint (GET_VERSION .. CHALLENGE) with every profile and leaf key, verifying
//! the CHALLENGE_AUTH signature with the leaf's key from the chain it fetched.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use coco_doe::{decode_object, encode_object, object_size, DOE_TYPE_CMA, PCI_SIG_VENDOR_ID};
use coco_endpoint::pki::{
    build_profile_identity, profile_for, spdm_hash, ChainFault, Identity, KeyKind, PkiOptions,
    PkiProfile, ProfileSpec, DEFAULT_CMA_ID, DMTF_EKU_RESPONDER_AUTH,
};
use coco_endpoint::{Fault, Responder};
use coco_spdm::auth::*;
use coco_spdm::*;
use p384::pkcs8::DecodePublicKey;
use rand::RngExt;
use signature::hazmat::PrehashVerifier;
use x509_parser::prelude::*;

// --- Fixtures --------------------------------------------------------------------------------

/// One PKI directory for the whole test binary (under cargo's target directory, emptied at the
/// start): the root and the leaf keys (RSA-4096 takes a while) are made once and shared by
/// every profile, as with `--pki-dir`.
fn pki_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pki-profiles");
        let _ = std::fs::remove_dir_all(&d);
        d
    })
    .clone()
}

/// The identity of (`key`, `profile`, `fault`), built once; builds are serialized (they share
/// the directory).
fn identity(key: KeyKind, profile: PkiProfile, fault: ChainFault) -> Arc<Identity> {
    type Cache = Mutex<HashMap<(KeyKind, PkiProfile, ChainFault), Arc<Identity>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let mut cache = CACHE
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    Arc::clone(cache.entry((key, profile, fault)).or_insert_with(|| {
        let opts = PkiOptions {
            dir: Some(pki_dir()),
            key,
            slots: vec![0, 1],
            cma_id: DEFAULT_CMA_ID.to_string(),
            fault,
        };
        Arc::new(build_profile_identity(&opts, profile).expect("PKI"))
    }))
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = X509Certificate::from_der(der).expect("certificate parses");
    assert!(rest.is_empty(), "bytes after the certificate");
    cert
}

fn is_ca(c: &X509Certificate<'_>) -> bool {
    c.basic_constraints()
        .expect("basicConstraints parses")
        .is_some_and(|b| b.value.ca)
}

fn path_len(c: &X509Certificate<'_>) -> Option<u32> {
    c.basic_constraints()
        .expect("basicConstraints parses")
        .and_then(|b| b.value.path_len_constraint)
}

fn key_usage(c: &X509Certificate<'_>) -> Option<KeyUsage> {
    c.key_usage().expect("keyUsage parses").map(|k| *k.value)
}

/// Verifies `cert`'s signature with `issuer`'s key (the CAs are ECDSA P-384, SHA-384).
fn verify_signed_by(
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
) -> Result<(), String> {
    use signature::Verifier;
    if cert.issuer().as_raw() != issuer.subject().as_raw() {
        return Err(format!(
            "issuer '{}' is not '{}'",
            cert.issuer(),
            issuer.subject()
        ));
    }
    let alg = cert.signature_algorithm.algorithm.to_id_string();
    if alg != "1.2.840.10045.4.3.3" {
        return Err(format!("signature algorithm {alg}, not ecdsa-with-SHA384"));
    }
    let vk = p384::ecdsa::VerifyingKey::from_public_key_der(issuer.public_key().raw)
        .map_err(|e| format!("issuer key is not P-384: {e}"))?;
    let sig =
        p384::ecdsa::Signature::from_der(&cert.signature_value.data).map_err(|e| e.to_string())?;
    vk.verify(cert.tbs_certificate.as_ref(), &sig)
        .map_err(|e| e.to_string())
}

/// The key kinds, cheapest first.
const KEYS: [KeyKind; 6] = [
    KeyKind::P256,
    KeyKind::P384,
    KeyKind::P521,
    KeyKind::Rsa2048,
    KeyKind::Rsa3072,
    KeyKind::Rsa4096,
];

// --- Profiles ----------------------------------------------------------------------------------

#[test]
fn profiles_parse_and_per_endpoint_specs_win() {
    for p in PkiProfile::ALL {
        assert_eq!(p.name().parse::<PkiProfile>(), Ok(p));
        assert_eq!(p.to_string(), p.name());
    }
    assert!("long".parse::<PkiProfile>().is_err());
    assert!("1:".parse::<ProfileSpec>().is_err());
    let specs: Vec<ProfileSpec> = ["no-keyusage", "1:long-chain", "2:ca-no-keycertsign"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(profile_for(&specs, 0), PkiProfile::NoKeyUsage);
    assert_eq!(profile_for(&specs, 1), PkiProfile::LongChain);
    assert_eq!(profile_for(&specs, 2), PkiProfile::CaNoKeyCertSign);
    assert_eq!(profile_for(&[], 0), PkiProfile::Standard);
    assert_eq!(PkiProfile::default(), PkiProfile::Standard);
}

/// The properties every chain has, whatever its profile.
fn check_common(id: &Identity, key: KeyKind, profile: PkiProfile) {
    assert_eq!(id.profile, profile);
    assert_eq!(id.key_kind(), Some(key));
    for slot in &id.slots {
        let certs = &slot.certs;
        assert_eq!(
            certs.len(),
            2 + profile.intermediates(),
            "{profile}: chain depth"
        );
        assert_eq!(certs[0], id.trusted_root, "{profile}: the shared root");
        let parsed: Vec<_> = certs.iter().map(|c| parse(c)).collect();
        // Every link verifies, the root with its own key.
        verify_signed_by(&parsed[0], &parsed[0]).expect("root self-signature");
        for (i, pair) in parsed.windows(2).enumerate() {
            verify_signed_by(&pair[1], &pair[0])
                .unwrap_or_else(|e| panic!("{profile}/{key}: certificate {} : {e}", i + 1));
        }
        // Every certificate but the leaf is a CA.
        for (i, c) in parsed.iter().enumerate() {
            assert_eq!(is_ca(c), i + 1 < parsed.len(), "{profile}: CA flag of {i}");
        }
        // The leaf is the same in every profile.
        let leaf = parsed.last().unwrap();
        let ku = key_usage(leaf).expect("leaf keyUsage");
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        let eku = leaf.extended_key_usage().unwrap().expect("leaf EKU").value;
        let want: Vec<u64> = DMTF_EKU_RESPONDER_AUTH.to_vec();
        assert!(eku
            .other
            .iter()
            .any(|o| o.iter().map(|i| i.collect::<Vec<u64>>()) == Some(want.clone())));
        assert_eq!(
            coco_spdm::cma::find_identity(certs.last().unwrap()),
            Ok(Some(DEFAULT_CMA_ID.as_bytes()))
        );
        // The SPDM chain fits its u16 Length with the largest hash.
        let chain = slot.spdm_chain(SPDM_HASH_SHA512).expect("SPDM chain");
        assert!(chain.len() <= usize::from(u16::MAX));
    }
}

fn chain_of(key: KeyKind, profile: PkiProfile) -> Arc<Identity> {
    let id = identity(key, profile, ChainFault::None);
    check_common(&id, key, profile);
    id
}

#[test]
fn standard_profile_is_unchanged() {
    let id = chain_of(KeyKind::P384, PkiProfile::Standard);
    let inter = parse(&id.slots[0].certs[1]);
    assert_eq!(path_len(&inter), Some(0));
    let ku = key_usage(&inter).expect("keyUsage");
    assert!(ku.key_cert_sign() && ku.crl_sign() && ku.digital_signature());
    // The files of the standard chain keep their names (each build issues the intermediate
    // anew, with the same key).
    let file = std::fs::read(pki_dir().join("intermediate.der")).unwrap();
    let written = parse(&file);
    assert_eq!(written.subject().as_raw(), inter.subject().as_raw());
    assert_eq!(written.public_key().raw, inter.public_key().raw);
}

#[test]
fn no_keyusage_profile_has_cas_without_keyusage() {
    for key in [KeyKind::P384, KeyKind::Rsa2048] {
        let id = chain_of(key, PkiProfile::NoKeyUsage);
        for slot in &id.slots {
            let certs = &slot.certs;
            for der in &certs[1..certs.len() - 1] {
                let c = parse(der);
                assert!(is_ca(&c));
                assert!(key_usage(&c).is_none(), "an intermediate has keyUsage");
                assert!(
                    !c.extensions()
                        .iter()
                        .any(|e| e.oid.to_id_string() == "2.5.29.15"),
                    "keyUsage extension present"
                );
            }
        }
        assert!(pki_dir().join("no-keyusage-ca1.der").exists());
        assert!(pki_dir()
            .join(format!("no-keyusage-leaf-{key}-slot1.der"))
            .exists());
    }
}

#[test]
fn long_chain_profile_has_four_intermediates() {
    let id = chain_of(KeyKind::P384, PkiProfile::LongChain);
    let certs = &id.slots[0].certs;
    assert_eq!(certs.len(), 6);
    let lens: Vec<Option<u32>> = certs[1..5].iter().map(|c| path_len(&parse(c))).collect();
    assert_eq!(lens, [Some(3), Some(2), Some(1), Some(0)]);
    for der in &certs[1..5] {
        assert!(key_usage(&parse(der)).expect("keyUsage").key_cert_sign());
    }
    // Every pathLenConstraint leaves room for the CAs below it.
    for (i, der) in certs[1..5].iter().enumerate() {
        let below = 3 - i as u32;
        assert!(path_len(&parse(der)).is_none_or(|n| n >= below));
    }
}

#[test]
fn pathlen_exceeded_profile_has_a_ca_below_pathlen_zero() {
    let id = chain_of(KeyKind::P384, PkiProfile::PathlenExceeded);
    let certs = &id.slots[0].certs;
    assert_eq!(certs.len(), 4);
    let (inter, sub, leaf) = (parse(&certs[1]), parse(&certs[2]), parse(&certs[3]));
    assert_eq!(path_len(&inter), Some(0));
    assert!(key_usage(&inter).unwrap().key_cert_sign());
    assert!(is_ca(&sub) && key_usage(&sub).unwrap().key_cert_sign());
    assert_eq!(sub.issuer().as_raw(), inter.subject().as_raw());
    assert_eq!(leaf.issuer().as_raw(), sub.subject().as_raw());
    assert!(!PkiProfile::PathlenExceeded.rfc5280_valid());
}

#[test]
fn ca_no_keycertsign_profile_has_keyusage_without_keycertsign() {
    let id = chain_of(KeyKind::P384, PkiProfile::CaNoKeyCertSign);
    let certs = &id.slots[0].certs;
    assert_eq!(certs.len(), 3);
    let inter = parse(&certs[1]);
    assert!(is_ca(&inter));
    let ku = key_usage(&inter).expect("keyUsage present");
    assert!(ku.digital_signature() && !ku.key_cert_sign());
    assert_eq!(parse(&certs[2]).issuer().as_raw(), inter.subject().as_raw());
    assert!(!PkiProfile::CaNoKeyCertSign.rfc5280_valid());
}

#[test]
fn every_key_with_every_profile() {
    for key in KEYS {
        for profile in PkiProfile::ALL {
            chain_of(key, profile);
        }
    }
}

#[test]
fn chain_faults_apply_to_the_profile_chain() {
    let id = identity(
        KeyKind::P256,
        PkiProfile::LongChain,
        ChainFault::UntrustedRoot,
    );
    assert_eq!(id.slots[0].certs.len(), 6);
    assert_ne!(id.slots[0].certs[0], id.trusted_root);
    let id = identity(
        KeyKind::P256,
        PkiProfile::NoKeyUsage,
        ChainFault::BrokenChain,
    );
    let c: Vec<_> = id.slots[0].certs.iter().map(|c| parse(c)).collect();
    assert!(verify_signed_by(&c[1], &c[0]).is_err());
    assert!(verify_signed_by(&c[2], &c[1]).is_ok());
}

#[test]
fn p521_leaf_has_a_secp521r1_key() {
    let id = chain_of(KeyKind::P521, PkiProfile::Standard);
    let leaf = parse(id.slots[0].certs.last().unwrap());
    let spki = leaf.public_key();
    assert_eq!(spki.algorithm.algorithm.to_id_string(), "1.2.840.10045.2.1");
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    assert_eq!(curve.as_deref(), Some("1.3.132.0.35"));
    assert!(p521::ecdsa::VerifyingKey::from_public_key_der(spki.raw).is_ok());
    assert_eq!(spki.subject_public_key.data.len(), 133);
}

// --- End to end --------------------------------------------------------------------------------

fn cma(msg: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; object_size(msg.len()).unwrap()];
    encode_object(PCI_SIG_VENDOR_ID, DOE_TYPE_CMA, msg, &mut out).unwrap();
    out
}

fn exchange(r: &mut Responder, req: &[u8]) -> Vec<u8> {
    let object = r.respond(&cma(req)).object.expect("an answer");
    let obj = decode_object(&object).expect("a DOE object");
    let rsp = obj.payload.to_vec();
    let header = SpdmHeader::parse(&rsp).expect("an SPDM message");
    assert_ne!(
        header.code,
        SPDM_ERROR,
        "ERROR answer to {}",
        code_name(req[1])
    );
    rsp
}

/// What a CHALLENGE run negotiated.
struct Run {
    asym: u32,
}

/// GET_VERSION .. CHALLENGE against `id` at `v`, offering `asym` and `hash`; checks the chain
/// digests and the CHALLENGE_AUTH signature with the fetched leaf's key.
fn authenticate(id: &Arc<Identity>, v: SpdmVersion, asym: u32, hash: u32) -> Run {
    let mut r = Responder::with_identity(vec![v.to_entry()], Fault::None, Arc::clone(id));
    let mut transcript = Vec::new();
    let mut out = vec![0u8; 256];

    let n = encode_get_version(&mut out).unwrap();
    let rsp = exchange(&mut r, &out[..n]);
    let vr = parse_version_response(&rsp).unwrap();
    transcript.extend_from_slice(&out[..n]);
    transcript.extend_from_slice(&rsp[..6 + 2 * usize::from(vr.count())]);

    let mut caps = Capabilities::new(v);
    caps.ct_exponent = 12;
    caps.flags = SPDM_CAP_CERT | SPDM_CAP_CHAL;
    caps.data_transfer_size = 4600;
    caps.max_spdm_msg_size = 4600;
    let n = encode_get_capabilities(&caps, &mut out).unwrap();
    let rsp = exchange(&mut r, &out[..n]);
    parse_capabilities(&rsp, v).unwrap();
    transcript.extend_from_slice(&out[..n]);
    transcript.extend_from_slice(&rsp[..capabilities_size(v)]);

    let mut na = NegotiateAlgorithms::new(v);
    na.base_asym = asym;
    na.base_hash = hash;
    let n = encode_negotiate_algorithms(&na, &mut out).unwrap();
    let rsp = exchange(&mut r, &out[..n]);
    let alg = parse_algorithms(&rsp, v).unwrap();
    alg.check_against(&na, true)
        .expect("ALGORITHMS fit the request");
    let h = alg.hash_size().unwrap();
    let s = alg.signature_size().unwrap();
    transcript.extend_from_slice(&out[..n]);
    transcript.extend_from_slice(&rsp[..alg.len]);

    let n = encode_get_digests(v, &mut out).unwrap();
    let rsp = exchange(&mut r, &out[..n]);
    let digests = parse_digests(&rsp, v, h).unwrap();
    transcript.extend_from_slice(&out[..n]);
    transcript.extend_from_slice(&rsp[..digests.len]);
    let digest0 = digests.iter().next().map(|(_, d)| d.to_vec()).unwrap();

    let mut chain = Vec::new();
    loop {
        let req = GetCertificate {
            version: v,
            slot: 0,
            attributes: 0,
            offset: u16::try_from(chain.len()).unwrap(),
            length: 0x400,
        };
        let n = encode_get_certificate(&req, &mut out).unwrap();
        let rsp = exchange(&mut r, &out[..n]);
        let c = parse_certificate(&rsp, v).unwrap();
        c.check(&req).unwrap();
        transcript.extend_from_slice(&out[..n]);
        transcript.extend_from_slice(&rsp[..c.len]);
        chain.extend_from_slice(c.portion);
        if c.remainder_length == 0 {
            break;
        }
    }
    assert_eq!(spdm_hash(alg.base_hash, &chain), Some(digest0));
    assert_eq!(Some(chain.clone()), id.slots[0].spdm_chain(alg.base_hash));

    let mut rng = rand::rng();
    let req = Challenge {
        version: v,
        slot: 0,
        meas_summary_type: SPDM_MEAS_SUMMARY_NONE,
        nonce: rng.random(),
        requester_context: if v >= SpdmVersion::V1_3 {
            rng.random()
        } else {
            [0; 8]
        },
    };
    let n = encode_challenge(&req, &mut out).unwrap();
    let rsp = exchange(&mut r, &out[..n]);
    let params = ChallengeAuthParams {
        version: v,
        hash_size: h,
        signature_size: s,
        measurement_summary: false,
    };
    let ca = parse_challenge_auth(&rsp, &params).unwrap();
    ca.check(&req).unwrap();
    transcript.extend_from_slice(&out[..n]);
    transcript.extend_from_slice(&rsp[..ca.signature_offset]);
    let m1 = spdm_hash(alg.base_hash, &transcript).unwrap();
    let mut msg = [0u8; 200];
    let mn = signed_message(v, SPDM_CHALLENGE_AUTH_SIGN_CONTEXT, &m1, &mut msg).unwrap();
    let digest = if v >= SpdmVersion::V1_2 {
        spdm_hash(alg.base_hash, &msg[..mn]).unwrap()
    } else {
        m1
    };
    let parsed = parse_cert_chain(&chain, h).unwrap();
    let leaf = parse(parsed.leaf().unwrap());
    verify_spdm(&leaf, alg.base_asym, alg.base_hash, &digest, ca.signature)
        .expect("CHALLENGE_AUTH signature verifies with the leaf's key");
    Run {
        asym: alg.base_asym,
    }
}

/// Verifies an SPDM signature with the leaf's key.
fn verify_spdm(
    leaf: &X509Certificate<'_>,
    asym: u32,
    hash: u32,
    digest: &[u8],
    sig: &[u8],
) -> Result<(), String> {
    let spki = leaf.public_key().raw;
    let e = |e: signature::Error| e.to_string();
    macro_rules! ecdsa {
        ($c:ident) => {{
            let vk =
                $c::ecdsa::VerifyingKey::from_public_key_der(spki).map_err(|e| e.to_string())?;
            let s = $c::ecdsa::Signature::from_slice(sig).map_err(e)?;
            vk.verify_prehash(digest, &s).map_err(e)
        }};
    }
    match asym {
        SPDM_ASYM_ECDSA_P256 => ecdsa!(p256),
        SPDM_ASYM_ECDSA_P384 => ecdsa!(p384),
        SPDM_ASYM_ECDSA_P521 => ecdsa!(p521),
        _ => {
            use rsa::pkcs8::DecodePublicKey as _;
            let pk = rsa::PublicKey::from_public_key_der(spki).map_err(|e| e.to_string())?;
            let pss = matches!(
                asym,
                SPDM_ASYM_RSAPSS_2048 | SPDM_ASYM_RSAPSS_3072 | SPDM_ASYM_RSAPSS_4096
            );
            macro_rules! rsa {
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
                SPDM_HASH_SHA256 => rsa!(sha2::Sha256),
                SPDM_HASH_SHA384 => rsa!(sha2::Sha384),
                SPDM_HASH_SHA512 => rsa!(sha2::Sha512),
                _ => Err("hash".to_string()),
            }
        }
    }
}

const ALL_ASYM: u32 = SPDM_ASYM_ECDSA_P256
    | SPDM_ASYM_ECDSA_P384
    | SPDM_ASYM_ECDSA_P521
    | SPDM_ASYM_RSASSA_2048
    | SPDM_ASYM_RSAPSS_2048
    | SPDM_ASYM_RSASSA_3072
    | SPDM_ASYM_RSAPSS_3072
    | SPDM_ASYM_RSASSA_4096
    | SPDM_ASYM_RSAPSS_4096;

#[test]
fn p521_leaf_negotiates_and_signs_with_every_version_and_hash() {
    let id = chain_of(KeyKind::P521, PkiProfile::Standard);
    for v in [
        SpdmVersion::V1_0,
        SpdmVersion::V1_1,
        SpdmVersion::V1_2,
        SpdmVersion::V1_3,
    ] {
        for hash in [SPDM_HASH_SHA256, SPDM_HASH_SHA384, SPDM_HASH_SHA512] {
            let run = authenticate(&id, v, ALL_ASYM, hash);
            assert_eq!(run.asym, SPDM_ASYM_ECDSA_P521);
        }
    }
}

#[test]
fn every_key_authenticates_with_every_profile() {
    for key in KEYS {
        for profile in PkiProfile::ALL {
            let id = chain_of(key, profile);
            let run = authenticate(&id, SpdmVersion::V1_3, ALL_ASYM, SPDM_HASH_SHA384);
            assert_ne!(run.asym & key.asym_mask(), 0, "{key}/{profile}");
        }
    }
}

/// The kernel requester's path rules (`coco_spdm::cert`, compiled into coco.ko) judge every
/// profile as RFC 5280 does, and agree with x509-parser on the extensions they read.
#[test]
fn kernel_path_rules_agree_with_every_profile() {
    use coco_spdm::cert::{check_path, read_extensions, CertFacts, KU_KEY_CERT_SIGN};
    for profile in PkiProfile::ALL {
        let id = identity(KeyKind::P384, profile, ChainFault::None);
        let slot = id.slot(0).expect("slot 0");
        let facts: Vec<CertFacts> = slot
            .certs
            .iter()
            .map(|der| {
                let ext = read_extensions(der).expect("extensions parse");
                let c = parse(der);
                assert_eq!(ext.is_ca(), is_ca(&c), "{profile:?}: cA");
                assert_eq!(
                    ext.basic_constraints.and_then(|b| b.path_len),
                    path_len(&c),
                    "{profile:?}: pathLenConstraint"
                );
                assert_eq!(
                    ext.key_usage.map(|k| k & KU_KEY_CERT_SIGN != 0),
                    key_usage(&c).map(|k| k.key_cert_sign()),
                    "{profile:?}: keyCertSign"
                );
                CertFacts {
                    ext,
                    self_issued: c.subject().as_raw() == c.issuer().as_raw(),
                }
            })
            .collect();
        let verdict = check_path(&facts, true);
        assert_eq!(
            verdict.is_ok(),
            profile.rfc5280_valid(),
            "{profile:?}: {verdict:?}"
        );
    }
}
