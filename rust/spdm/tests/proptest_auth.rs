//! Property tests for the authentication messages: round trips for every message, and no byte
//! string makes a parser panic (arbitrary bytes, and bytes behind a valid header, which random
//! bytes rarely produce).

use coco_spdm::auth::*;
use coco_spdm::*;
use proptest::prelude::*;

const VERSIONS: [SpdmVersion; 4] = [
    SpdmVersion::V1_0,
    SpdmVersion::V1_1,
    SpdmVersion::V1_2,
    SpdmVersion::V1_3,
];

fn version() -> impl Strategy<Value = SpdmVersion> {
    (0usize..4).prop_map(|i| VERSIONS[i])
}

fn hash_len() -> impl Strategy<Value = usize> {
    prop_oneof![Just(32usize), Just(48), Just(64), 0usize..80]
}

fn sig_len() -> impl Strategy<Value = usize> {
    prop_oneof![Just(64usize), Just(96), Just(384), Just(512), 0usize..600]
}

fn opt_u16() -> impl Strategy<Value = Option<u16>> {
    proptest::option::of(any::<u16>())
}

fn structs() -> impl Strategy<Value = AlgStructs> {
    (opt_u16(), opt_u16(), opt_u16(), opt_u16()).prop_map(
        |(dhe, aead, req_base_asym, key_schedule)| AlgStructs {
            dhe,
            aead,
            req_base_asym,
            key_schedule,
        },
    )
}

fn one_bit_u16() -> impl Strategy<Value = Option<u16>> {
    proptest::option::of(prop_oneof![Just(0u16), (0u32..16).prop_map(|b| 1u16 << b)])
}

fn one_bit_u32() -> impl Strategy<Value = u32> {
    prop_oneof![Just(0u32), (0u32..32).prop_map(|b| 1u32 << b)]
}

/// Runs every parser on `buf`; returns nothing, only checks invariants of accepted messages.
fn run_all_parsers(buf: &[u8]) {
    let _ = parse_get_capabilities(buf);
    let _ = parse_negotiate_algorithms(buf).map(|r| assert!(r.len <= buf.len()));
    let _ = parse_get_digests(buf);
    let _ = parse_get_certificate(buf);
    let _ = parse_challenge(buf);
    let _ = parse_respond_if_ready(buf);
    for v in VERSIONS {
        if let Ok(c) = parse_capabilities(buf, v) {
            assert_eq!(c.validate(), Ok(()));
        }
        if let Ok(a) = parse_algorithms(buf, v) {
            assert!(a.len <= buf.len() && buf.len() <= a.len + 3);
            assert!(a.base_asym.count_ones() <= 1 && a.base_hash.count_ones() <= 1);
        }
        for h in [32usize, 48, 64] {
            if let Ok(d) = parse_digests(buf, v, h) {
                assert_eq!(d.iter().count(), d.slot_mask.count_ones() as usize);
                assert!(d.len <= buf.len());
            }
            for s in [64usize, 96, 256, 384, 512] {
                for meas in [false, true] {
                    let params = ChallengeAuthParams {
                        version: v,
                        hash_size: h,
                        signature_size: s,
                        measurement_summary: meas,
                    };
                    if let Ok(c) = parse_challenge_auth(buf, &params) {
                        assert_eq!(c.signature.len(), s);
                        assert_eq!(c.signature_offset + s, c.len);
                        assert!(c.len <= buf.len() && buf.len() <= c.len + 3);
                    }
                }
            }
        }
        if let Ok(c) = parse_certificate(buf, v) {
            assert_eq!(c.len, 8 + c.portion.len());
        }
    }
    for h in [32usize, 48, 64] {
        if let Ok(chain) = parse_cert_chain(buf, h) {
            assert_eq!(usize::from(chain.length), buf.len());
            assert!(chain.count() >= 1);
            assert!(chain.leaf().is_some());
        }
    }
    if let Ok(n) = der_sequence_size(buf) {
        assert!(n >= 2 && n <= buf.len());
    }
    let total: usize = DerCertificates::new(buf)
        .take_while(|c| c.is_ok())
        .map(|c| c.unwrap().len())
        .sum();
    assert!(total <= buf.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn parsers_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..700)) {
        run_all_parsers(&buf);
    }

    /// A valid header for each message code followed by random bytes.
    #[test]
    fn parsers_never_panic_behind_valid_headers(
        v in version(),
        code in prop::sample::select(vec![
            SPDM_GET_CAPABILITIES, SPDM_CAPABILITIES, SPDM_NEGOTIATE_ALGORITHMS, SPDM_ALGORITHMS,
            SPDM_GET_DIGESTS, SPDM_DIGESTS, SPDM_GET_CERTIFICATE, SPDM_CERTIFICATE,
            SPDM_CHALLENGE, SPDM_CHALLENGE_AUTH, SPDM_RESPOND_IF_READY,
        ]),
        p1 in prop_oneof![0u8..6, any::<u8>()],
        p2: u8,
        len_field in prop_oneof![32u16..140, any::<u16>()],
        body in proptest::collection::vec(any::<u8>(), 0..700),
    ) {
        let mut buf = vec![v.as_byte(), code, p1, p2];
        buf.extend_from_slice(&len_field.to_le_bytes());
        buf.extend_from_slice(&body);
        run_all_parsers(&buf);
    }

    /// Certificate chains with a consistent Length and random DER-ish content.
    #[test]
    fn cert_chain_like_inputs_never_panic(h in hash_len(), body in proptest::collection::vec(any::<u8>(), 0..400), lens in proptest::collection::vec(0u8..0x86, 0..4)) {
        let mut certs = Vec::new();
        for l in lens {
            certs.push(0x30);
            certs.push(l);
            certs.extend_from_slice(&body[..body.len().min(usize::from(l))]);
        }
        certs.extend_from_slice(&body);
        let total = 4 + h + certs.len();
        let mut buf = (total as u16).to_le_bytes().to_vec();
        buf.extend_from_slice(&[0, 0]);
        buf.extend(std::iter::repeat_n(0xAB, h));
        buf.extend_from_slice(&certs);
        run_all_parsers(&buf);
        let _ = parse_cert_chain(&buf, h);
    }

    #[test]
    fn capabilities_roundtrip(v in version(), ct: u8, flags: u32, dts in 42u32..100_000, extra in 0u32..1000, chunk: bool, pad in 0usize..=3) {
        let flags = (flags & !(SPDM_CAP_MEAS_MASK | SPDM_CAP_PSK_MASK | SPDM_CAP_EP_INFO_MASK | SPDM_CAP_MULTI_KEY_MASK | SPDM_CAP_CHUNK))
            | if chunk { SPDM_CAP_CHUNK } else { 0 };
        let caps = Capabilities {
            version: v,
            param1: 0,
            ct_exponent: ct,
            flags,
            data_transfer_size: if v >= SpdmVersion::V1_2 { dts } else { 0 },
            max_spdm_msg_size: if v >= SpdmVersion::V1_2 { dts + if chunk { extra } else { 0 } } else { 0 },
        };
        let mut out = [0u8; 32];
        let n = encode_capabilities(&caps, &mut out).unwrap();
        prop_assert_eq!(n, capabilities_size(v));
        prop_assert_eq!(parse_capabilities(&out[..n + pad], v), Ok(caps));
        let mut out = [0u8; 32];
        let n = encode_get_capabilities(&caps, &mut out).unwrap();
        prop_assert_eq!(n, get_capabilities_size(v));
        let got = parse_get_capabilities(&out[..n + pad]).unwrap();
        if v >= SpdmVersion::V1_1 {
            prop_assert_eq!(got, caps);
        } else {
            prop_assert_eq!(got, Capabilities::new(v));
        }
        for short in 0..n {
            prop_assert_eq!(encode_get_capabilities(&caps, &mut out[..short]), Err(SpdmError::BufferTooSmall));
        }
    }

    #[test]
    fn negotiate_algorithms_roundtrip(v in version(), meas: u8, other: u8, asym: u32, hash: u32, mel: u8, st in structs(), pad in 0usize..=3) {
        let mut req = NegotiateAlgorithms::new(v);
        req.measurement_specification = meas;
        req.other_params = if v >= SpdmVersion::V1_2 { other } else { 0 };
        req.base_asym = asym;
        req.base_hash = hash;
        req.mel_specification = if v >= SpdmVersion::V1_3 { mel } else { 0 };
        if v >= SpdmVersion::V1_1 {
            req.structs = st;
        }
        let mut out = [0u8; 64];
        let n = encode_negotiate_algorithms(&req, &mut out).unwrap();
        prop_assert_eq!(n, 32 + 4 * usize::from(req.structs.count()));
        let got = parse_negotiate_algorithms(&out[..n + pad]).unwrap();
        prop_assert_eq!(got, NegotiateAlgorithms { len: n, ..req });
        for short in 0..n {
            prop_assert_eq!(encode_negotiate_algorithms(&req, &mut out[..short]), Err(SpdmError::BufferTooSmall));
        }
    }

    #[test]
    fn algorithms_roundtrip(v in version(), asym in one_bit_u32(), hash in one_bit_u32(), mh in one_bit_u32(),
                            ms in prop_oneof![Just(0u8), Just(1u8)], dhe in one_bit_u16(), aead in one_bit_u16(),
                            rba in one_bit_u16(), ks in one_bit_u16(), pad in 0usize..=3) {
        let mut rsp = Algorithms::new(v);
        rsp.base_asym = asym;
        rsp.base_hash = hash;
        rsp.measurement_hash = mh;
        rsp.measurement_specification = ms;
        if v >= SpdmVersion::V1_1 {
            rsp.structs = AlgStructs { dhe, aead, req_base_asym: rba, key_schedule: ks };
        }
        let mut out = [0u8; 64];
        let n = encode_algorithms(&rsp, &mut out).unwrap();
        let got = parse_algorithms(&out[..n + pad], v).unwrap();
        prop_assert_eq!(got, Algorithms { len: n, ..rsp });
        // A request offering exactly the selection accepts it.
        let mut req = NegotiateAlgorithms::new(v);
        req.base_asym = asym;
        req.base_hash = hash;
        req.measurement_specification = ms;
        req.structs = rsp.structs;
        prop_assert_eq!(got.check_against(&req, false), Ok(()));
        // Two bits in BaseAsymSel are always rejected.
        let mut two = out;
        two[12] = 0x11;
        prop_assert_eq!(parse_algorithms(&two[..n], v), Err(SpdmError::MultipleAlgorithms));
    }

    #[test]
    fn strongest_is_in_mask(mask: u32) {
        if let Some(a) = strongest_asym(mask) {
            prop_assert!(mask & a == a && a.count_ones() == 1);
            prop_assert!(signature_size(a).is_some());
        } else {
            prop_assert!(SPDM_ASYM_PREFERENCE.iter().all(|b| mask & b == 0));
        }
        if let Some(h) = strongest_hash(mask) {
            prop_assert!(mask & h == h);
            prop_assert!(hash_size(h).is_some());
        }
    }

    #[test]
    fn digests_roundtrip(v in version(), mask: u8, supported_extra: u8, h in prop_oneof![Just(32usize), Just(48), Just(64)], seed: u8, pad in 0usize..=3) {
        let digests: Vec<Vec<u8>> = (0..mask.count_ones()).map(|i| vec![seed.wrapping_add(i as u8); h]).collect();
        let refs: Vec<&[u8]> = digests.iter().map(|d| d.as_slice()).collect();
        let mut out = vec![0u8; 4 + 8 * 64 + 3];
        let n = encode_digests(v, mask | supported_extra, mask, &refs, h, &mut out).unwrap();
        prop_assert_eq!(n, 4 + refs.len() * h);
        let d = parse_digests(&out[..n + pad], v, h).unwrap();
        prop_assert_eq!(d.len, n);
        prop_assert_eq!(d.slot_mask, mask);
        let got: Vec<&[u8]> = d.iter().map(|(_, x)| x).collect();
        prop_assert_eq!(got, refs);
        for (slot, dig) in d.iter() {
            prop_assert!(mask & (1 << slot) != 0);
            prop_assert_eq!(d.digest(slot), Some(dig));
        }
    }

    #[test]
    fn certificate_roundtrip(v in version(), slot in 0u8..8, info: u8, offset: u16, length: u16, portion in proptest::collection::vec(any::<u8>(), 0..600), rem: u16, pad in 0usize..=3) {
        let req = GetCertificate { version: v, slot, attributes: if v >= SpdmVersion::V1_3 { info & 1 } else { 0 }, offset, length };
        let mut out = vec![0u8; 700];
        let n = encode_get_certificate(&req, &mut out).unwrap();
        prop_assert_eq!(parse_get_certificate(&out[..n + pad]), Ok(req));
        let n = encode_certificate(v, slot, info, &portion, rem, &mut out).unwrap();
        let c = parse_certificate(&out[..n + pad], v).unwrap();
        prop_assert_eq!(c.portion, &portion[..]);
        prop_assert_eq!(c.remainder_length, rem);
        prop_assert_eq!(c.slot, slot);
        prop_assert_eq!(c.cert_info, if v >= SpdmVersion::V1_3 { info } else { 0 });
        prop_assert_eq!(c.len, n);
        let ok = portion.len() <= usize::from(length)
            && usize::from(offset) + portion.len() + usize::from(rem) <= 0xFFFF
            && (!portion.is_empty() || rem == 0 || req.attributes & 1 != 0 && v >= SpdmVersion::V1_3);
        prop_assert_eq!(c.check(&req).is_ok(), ok);
    }

    #[test]
    fn cert_chain_roundtrip(h in prop_oneof![Just(32usize), Just(48), Just(64)], sizes in proptest::collection::vec(0usize..3000, 1..5)) {
        let mut certs = Vec::new();
        let mut expect = Vec::new();
        for (i, s) in sizes.iter().enumerate() {
            let mut c = vec![0x30];
            match *s {
                0..=0x7F => c.push(*s as u8),
                0x80..=0xFF => c.extend_from_slice(&[0x81, *s as u8]),
                _ => c.extend_from_slice(&[0x82, (*s >> 8) as u8, *s as u8]),
            }
            c.extend(std::iter::repeat_n(i as u8, *s));
            expect.push(c.clone());
            certs.extend_from_slice(&c);
        }
        prop_assume!(4 + h + certs.len() <= 0xFFFF);
        let mut chain = vec![0u8; 4 + h];
        encode_cert_chain_header(&vec![0x5A; h], certs.len(), &mut chain).unwrap();
        chain.extend_from_slice(&certs);
        let parsed = parse_cert_chain(&chain, h).unwrap();
        let got: Vec<&[u8]> = parsed.certificates().map(|c| c.unwrap()).collect();
        prop_assert_eq!(got.len(), expect.len());
        for (g, e) in got.iter().zip(&expect) {
            prop_assert_eq!(*g, &e[..]);
        }
        prop_assert_eq!(parsed.leaf(), Some(&expect.last().unwrap()[..]));
        prop_assert_eq!(parsed.first(), Some(&expect[0][..]));
    }

    #[test]
    fn challenge_roundtrip(v in version(), slot in prop_oneof![0u8..8, Just(0xFFu8)], t in prop::sample::select(vec![0u8, 1, 0xFF]), nonce: [u8; 32], ctx: [u8; 8], pad in 0usize..=3) {
        let req = Challenge { version: v, slot, meas_summary_type: t, nonce, requester_context: if v >= SpdmVersion::V1_3 { ctx } else { [0; 8] } };
        let mut out = [0u8; 48];
        let n = encode_challenge(&req, &mut out).unwrap();
        prop_assert_eq!(n, challenge_size(v));
        prop_assert_eq!(parse_challenge(&out[..n + pad]), Ok(req));
    }

    #[test]
    fn challenge_auth_roundtrip(v in version(), h in prop_oneof![Just(32usize), Just(48), Just(64)], s in sig_len().prop_filter("nonzero", |s| *s > 0 && *s <= 512),
                                meas: bool, slot in 0u8..8, opaque in proptest::collection::vec(any::<u8>(), 0..100), nonce: [u8; 32], ctx: [u8; 8], pad in 0usize..=3) {
        let chain_hash = vec![1u8; h];
        let summary = vec![2u8; h];
        let sig = vec![3u8; s];
        let body = ChallengeAuthBody {
            version: v,
            attributes: slot,
            slot_mask: 1 << slot,
            cert_chain_hash: &chain_hash,
            nonce: &nonce,
            measurement_summary_hash: if meas { &summary } else { &[] },
            opaque: &opaque,
            requester_context: &ctx,
        };
        let mut out = vec![0u8; 1200];
        let n = encode_challenge_auth(&body, &sig, &mut out).unwrap();
        let params = ChallengeAuthParams { version: v, hash_size: h, signature_size: s, measurement_summary: meas };
        let c = parse_challenge_auth(&out[..n + pad], &params).unwrap();
        prop_assert_eq!(c.len, n);
        prop_assert_eq!(c.signature_offset, n - s);
        prop_assert_eq!(c.slot, slot);
        prop_assert_eq!(c.nonce, &nonce[..]);
        prop_assert_eq!(c.opaque, &opaque[..]);
        prop_assert_eq!(c.signature, &sig[..]);
        let req = Challenge { version: v, slot, meas_summary_type: 0, nonce: [0; 32], requester_context: ctx };
        prop_assert_eq!(c.check(&req), Ok(()));
        // Every strict prefix is rejected, never accepted or panicking.
        for cut in 0..n.saturating_sub(3) {
            prop_assert!(parse_challenge_auth(&out[..cut], &params).is_err());
        }
    }

    #[test]
    fn signed_message_layout(v in version(), hash in proptest::collection::vec(any::<u8>(), 32..=64)) {
        let mut out = [0u8; 200];
        let n = signed_message(v, SPDM_CHALLENGE_AUTH_SIGN_CONTEXT, &hash, &mut out).unwrap();
        if v >= SpdmVersion::V1_2 {
            prop_assert_eq!(n, 100 + hash.len());
            prop_assert_eq!(&out[100..n], &hash[..]);
            prop_assert_eq!(&out[68..100], SPDM_CHALLENGE_AUTH_SIGN_CONTEXT.as_bytes());
        } else {
            prop_assert_eq!(&out[..n], &hash[..]);
        }
    }

    #[test]
    fn respond_if_ready_roundtrip(v in version(), code: u8, token: u8, pad in 0usize..=3) {
        let req = RespondIfReady { version: v, request_code: code, token };
        let mut out = [0u8; 8];
        let n = encode_respond_if_ready(&req, &mut out).unwrap();
        prop_assert_eq!(parse_respond_if_ready(&out[..n + pad]), Ok(req));
    }
}
