//! Property tests for the session codec: no byte string makes a parser panic (arbitrary bytes,
//! and bytes behind a valid header), and round trips with arbitrary field values.

use coco_spdm::session::*;
use coco_spdm::*;
use proptest::prelude::*;

struct Xor(u8);

impl Aead for Xor {
    fn seal(
        &mut self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8; 16],
    ) -> Result<(), RecordError> {
        for b in buf.iter_mut() {
            *b ^= self.0;
        }
        *tag = [nonce[0] ^ aad.len() as u8; 16];
        Ok(())
    }
    fn open(
        &mut self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), RecordError> {
        if *tag != [nonce[0] ^ aad.len() as u8; 16] {
            return Err(RecordError::Decrypt);
        }
        for b in buf.iter_mut() {
            *b ^= self.0;
        }
        Ok(())
    }
}

const CODES: [u8; 12] = [
    SPDM_KEY_EXCHANGE,
    SPDM_KEY_EXCHANGE_RSP,
    SPDM_FINISH,
    SPDM_FINISH_RSP,
    SPDM_HEARTBEAT,
    SPDM_HEARTBEAT_ACK,
    SPDM_KEY_UPDATE,
    SPDM_KEY_UPDATE_ACK,
    SPDM_END_SESSION,
    SPDM_END_SESSION_ACK,
    0x12,
    0xFF,
];

fn all_parsers(buf: &[u8], a: u8, b: u8) {
    let v = [SpdmVersion::V1_1, SpdmVersion::V1_2, SpdmVersion::V1_3][usize::from(a % 3)];
    let h = [32usize, 48, 64, 0, 65][usize::from(a % 5)];
    let d = [64usize, 96, 512, 0, 513][usize::from(b % 5)];
    let s = [64usize, 96, 512, 0, 513][usize::from((b >> 3) % 5)];
    let _ = parse_key_exchange(buf, d);
    let params = KeyExchangeRspParams {
        version: v,
        hash_size: h,
        signature_size: s,
        exchange_size: d,
        measurement_summary: a & 0x40 != 0,
        verify_data: a & 0x80 != 0,
    };
    if let Ok(r) = parse_key_exchange_rsp(buf, &params) {
        assert!(r.signature_offset <= r.verify_data_offset && r.verify_data_offset <= r.len);
        assert!(r.len <= buf.len() && buf.len() <= r.len + 3);
    }
    let _ = parse_finish(buf, h, s);
    let _ = parse_finish_rsp(buf, v, h);
    let _ = parse_heartbeat(buf);
    let _ = parse_heartbeat_ack(buf, v);
    let _ = parse_key_update(buf);
    let _ = parse_key_update_ack(buf, v);
    let _ = parse_end_session(buf);
    let _ = parse_end_session_ack(buf, v);
    for sv in [SpdmVersion::V1_0, SpdmVersion::V1_1, v] {
        if let Ok(sm) = parse_sm_versions_for(sv, buf) {
            assert!(sv >= SpdmVersion::V1_1);
            assert!(sm.versions().count() <= SPDM_MAX_SM_VERSIONS);
        }
    }
    if let Ok(sm) = parse_sm_versions(buf) {
        let _ = select_sm_version(&sm, &[SPDM_SECURED_VERSION_1_1]);
        assert!(sm.versions().count() <= SPDM_MAX_SM_VERSIONS);
    }
    for seq_size in [0usize, 2, 8, 9] {
        if let Ok(hdr) = parse_record_header(buf, seq_size) {
            assert!(hdr.size <= buf.len());
        }
        let iv = [a; 12];
        let p = RecordParams {
            session_id: u32::from(b),
            iv: &iv,
            seq: u64::from(a),
            seq_size,
        };
        let mut copy = buf.to_vec();
        if let Ok(m) = open_record(&mut Xor(b), &p, &mut copy) {
            assert!(m.len() <= buf.len());
        }
    }
}

proptest! {
    #[test]
    fn parsers_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..700), a: u8, b: u8) {
        all_parsers(&buf, a, b);
    }

    #[test]
    fn parsers_never_panic_behind_header(
        code in 0usize..CODES.len(),
        p1: u8, p2: u8,
        rest in proptest::collection::vec(any::<u8>(), 0..700),
        a: u8, b: u8,
    ) {
        let mut buf = vec![0x12, CODES[code], p1, p2];
        buf.extend(rest);
        all_parsers(&buf, a, b);
    }

    #[test]
    fn record_round_trip(
        msg in proptest::collection::vec(any::<u8>(), 0..300),
        pad in proptest::collection::vec(any::<u8>(), 0..16),
        sid: u32, seq: u64, key: u8, doe_pad in 0usize..4,
        seq_size in prop_oneof![Just(0usize), Just(2), Just(8)],
    ) {
        let iv = [key; 12];
        let p = RecordParams { session_id: sid, iv: &iv, seq, seq_size };
        let mut out = vec![0u8; msg.len() + pad.len() + 40];
        let n = encode_record(&mut Xor(key), &p, &msg, &pad, &mut out).unwrap();
        prop_assert_eq!(Some(n), record_size(msg.len(), pad.len(), seq_size));
        out.truncate(n);
        out.extend(std::iter::repeat(0).take(doe_pad));
        let got = open_record(&mut Xor(key), &p, &mut out).unwrap().to_vec();
        prop_assert_eq!(got, msg);
    }

    #[test]
    fn key_exchange_round_trip(
        v in 0usize..3, slot: u8, sid: u16, policy: u8,
        random in proptest::array::uniform32(any::<u8>()),
        exchange in proptest::collection::vec(any::<u8>(), 1..200),
        opaque in proptest::collection::vec(any::<u8>(), 0..100),
    ) {
        let version = [SpdmVersion::V1_1, SpdmVersion::V1_2, SpdmVersion::V1_3][v];
        let req = KeyExchange {
            version, meas_summary_type: 0, slot, req_session_id: sid,
            session_policy: if version >= SpdmVersion::V1_2 { policy } else { 0 },
            random_data: &random, exchange: &exchange, opaque: &opaque, len: 0,
        };
        let mut buf = vec![0u8; 400];
        let n = encode_key_exchange(&req, &mut buf).unwrap();
        let p = parse_key_exchange(&buf[..n], exchange.len()).unwrap();
        prop_assert_eq!(p, KeyExchange { len: n, ..req });
    }

    #[test]
    fn sm_opaque_round_trip(
        v in 0usize..3,
        versions in proptest::collection::vec(any::<u16>(), 1..=SPDM_MAX_SM_VERSIONS),
        selected: u16,
    ) {
        let version = [SpdmVersion::V1_1, SpdmVersion::V1_2, SpdmVersion::V1_3][v];
        let mut buf = [0u8; 64];
        let n = encode_sm_supported_versions_for(version, &versions, &mut buf).unwrap();
        prop_assert_eq!(n % 4, 0);
        let sm = parse_sm_versions_for(version, &buf[..n]).unwrap();
        prop_assert_eq!(sm.versions().collect::<Vec<_>>(), versions.clone());
        // The other layout never accepts it.
        let other = if version == SpdmVersion::V1_1 { SpdmVersion::V1_2 } else { SpdmVersion::V1_1 };
        prop_assert!(parse_sm_versions_for(other, &buf[..n]).is_err());
        if version >= SpdmVersion::V1_2 {
            let mut g = [0u8; 64];
            let gn = encode_sm_supported_versions(&versions, &mut g).unwrap();
            prop_assert_eq!(&g[..gn], &buf[..n]);
        }
        let n = encode_sm_version_selection_for(version, selected, &mut buf).unwrap();
        prop_assert_eq!(
            parse_sm_versions_for(version, &buf[..n]).unwrap(),
            SmVersions::Selected(selected)
        );
    }
}
