//! Property tests for the measurement messages: round trips for GET_MEASUREMENTS, MEASUREMENTS
//! and measurement records, and no byte string makes a parser panic (arbitrary bytes, bytes
//! behind a valid header, and records built from arbitrary block fields).

use coco_spdm::meas::*;
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

/// Runs every measurement parser on `buf` with a range of parameters; checks invariants of
/// what is accepted.
fn run_all_parsers(buf: &[u8]) {
    if let Ok(req) = parse_get_measurements(buf) {
        assert!(req.size() <= buf.len() && buf.len() <= req.size() + 3);
    }
    for v in VERSIONS {
        for signed in [false, true] {
            for (s, h) in [
                (64usize, Some(32usize)),
                (96, Some(48)),
                (512, None),
                (0, Some(0)),
            ] {
                let params = MeasurementsParams {
                    version: v,
                    signed,
                    signature_size: s,
                    measurement_hash_size: h,
                };
                if let Ok(m) = parse_measurements(buf, &params) {
                    assert!(m.len <= buf.len() && buf.len() <= m.len + 3);
                    assert_eq!(
                        m.signature_offset + m.signature.map_or(0, <[u8]>::len),
                        m.len
                    );
                    assert_eq!(m.blocks().count(), usize::from(m.number_of_blocks));
                    let _ = m.check(&GetMeasurements::new(v, SPDM_MEAS_OP_ALL, signed));
                }
            }
        }
    }
    for n in [0u8, 1, 2, 255] {
        for h in [None, Some(32), Some(48)] {
            if let Ok(r) = parse_record(buf, n, h) {
                assert_eq!(r.blocks().count(), usize::from(n));
                assert_eq!(r.indices.len(), usize::from(n));
            }
        }
    }
    for b in MeasurementBlocks::new(buf).flatten() {
        let _ = MeasurementTypeName(b.value_type).to_string();
    }
}

/// Block fields: index, value type, value.
fn block_fields() -> impl Strategy<Value = (u8, u8, Vec<u8>)> {
    (
        1u8..=0xFE,
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..80),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
        run_all_parsers(&buf);
    }

    #[test]
    fn parsers_never_panic_behind_valid_headers(v in version(), code in prop::sample::select(vec![SPDM_MEASUREMENTS, SPDM_GET_MEASUREMENTS]),
        p1: u8, p2: u8, count: u8, len in prop_oneof![0usize..400, Just(0xFF_FFFF)], body in proptest::collection::vec(any::<u8>(), 0..500)) {
        let mut buf = vec![v.as_byte(), code, p1, p2, count];
        buf.extend_from_slice(&(len as u32).to_le_bytes()[..3]);
        buf.extend_from_slice(&body);
        run_all_parsers(&buf);
    }

    #[test]
    fn records_of_arbitrary_blocks_never_panic(blocks in proptest::collection::vec((any::<u8>(), any::<u8>(), any::<u16>(), any::<u8>(), any::<u16>(), proptest::collection::vec(any::<u8>(), 0..40)), 0..6)) {
        let mut rec = Vec::new();
        for (index, spec, size, t, vsize, value) in blocks {
            rec.push(index);
            rec.push(spec);
            rec.extend_from_slice(&size.to_le_bytes());
            rec.push(t);
            rec.extend_from_slice(&vsize.to_le_bytes());
            rec.extend_from_slice(&value);
        }
        run_all_parsers(&rec);
    }

    #[test]
    fn get_measurements_roundtrip(v in version(), signed: bool, raw: bool, op: u8, nonce: [u8; 32], slot in prop_oneof![0u8..8, Just(0xFu8)], ctx: [u8; 8], pad in 0usize..=3) {
        let mut req = GetMeasurements::new(v, op, signed);
        if raw {
            req.attributes |= SPDM_MEAS_ATTR_RAW_BIT_STREAM;
        }
        if signed {
            req.nonce = nonce;
            if v >= SpdmVersion::V1_1 {
                req.slot_id = slot;
            }
        }
        if v >= SpdmVersion::V1_3 {
            req.requester_context = ctx;
        }
        let mut out = [0u8; 64];
        let n = encode_get_measurements(&req, &mut out).unwrap();
        prop_assert_eq!(n, get_measurements_size(v, signed));
        prop_assert_eq!(parse_get_measurements(&out[..n + pad]), Ok(req));
    }

    #[test]
    fn measurements_roundtrip(v in version(), signed: bool, blocks in proptest::collection::vec(block_fields(), 1..8),
        nonce: [u8; 32], opaque in proptest::collection::vec(any::<u8>(), 0..40), ctx: [u8; 8], slot in 0u8..8, sig_len in 1usize..=512, pad in 0usize..=3) {
        let mut rec = Vec::new();
        let mut seen = IndexSet::new();
        let mut count = 0u8;
        for (index, t, value) in &blocks {
            if !seen.insert(*index) {
                continue;
            }
            let mut b = vec![0u8; 7 + value.len()];
            encode_measurement_block(*index, *t, value, &mut b).unwrap();
            rec.extend_from_slice(&b);
            count += 1;
        }
        let mut req = GetMeasurements::new(v, SPDM_MEAS_OP_ALL, signed);
        req.requester_context = if v >= SpdmVersion::V1_3 { ctx } else { [0; 8] };
        let mut param2 = 0;
        if signed && v >= SpdmVersion::V1_1 {
            req.slot_id = slot;
            param2 = slot;
        }
        let body = MeasurementsBody {
            version: v,
            param1: 0,
            param2,
            number_of_blocks: count,
            record: &rec,
            nonce: &nonce,
            opaque: &opaque,
            requester_context: &ctx,
        };
        let sig = vec![0x5A; sig_len];
        let sig_bytes: &[u8] = if signed { &sig } else { &[] };
        let mut out = vec![0u8; 4096];
        let n = encode_measurements(&body, sig_bytes, &mut out).unwrap();
        prop_assert_eq!(n, rec.len() + measurements_overhead(v, opaque.len(), sig_bytes.len()));
        let params = MeasurementsParams::for_request(&req, sig_len, None);
        let m = parse_measurements(&out[..n + pad], &params).unwrap();
        prop_assert_eq!(m.len, n);
        prop_assert_eq!(m.signature_offset, n - sig_bytes.len());
        prop_assert_eq!(m.number_of_blocks, count);
        prop_assert_eq!(m.opaque, &opaque[..]);
        prop_assert_eq!(m.nonce, &nonce[..]);
        prop_assert_eq!(m.check(&req), Ok(()));
        let parsed: Vec<(u8, u8, Vec<u8>)> = m.blocks().map(|b| (b.index, b.value_type, b.value.to_vec())).collect();
        prop_assert_eq!(parsed.len(), usize::from(count));
        for (index, t, value) in parsed {
            let orig = blocks.iter().find(|b| b.0 == index).unwrap();
            prop_assert_eq!((orig.1, &orig.2), (t, &value));
        }
    }
}
