//! Property tests for the SEV-TIO guest message codec: round trips of every payload and the
//! header, the blob table, and no byte string makes a parser panic or return a slice outside
//! its input.

use coco_sevtio::guest::*;
use proptest::prelude::*;

fn digest() -> impl Strategy<Value = [u8; DIGEST_SIZE]> {
    prop::collection::vec(any::<u8>(), DIGEST_SIZE).prop_map(|v| v.try_into().unwrap())
}

fn within(outer: &[u8], inner: &[u8]) -> bool {
    let o = outer.as_ptr() as usize;
    let i = inner.as_ptr() as usize;
    i >= o && i + inner.len() <= o + outer.len()
}

proptest! {
    #[test]
    fn tdi_info_req_roundtrip(tdi_id in any::<u64>()) {
        let r = TdiInfoReq { tdi_id };
        prop_assert_eq!(TdiInfoReq::parse(&r.encode()), Ok(r));
    }

    #[test]
    fn tdi_info_rsp_roundtrip(
        tdi_id in any::<u64>(), status in any::<u16>(), meas_flags in any::<u32>(),
        lock_flags in any::<u32>(), spdm_algos in any::<u64>(), c in digest(), m in digest(),
        r in digest(), report_count in any::<u64>(),
    ) {
        let x = TdiInfoRsp {
            tdi_id, status, meas_flags, lock_flags, spdm_algos,
            certs_digest: c, meas_digest: m, report_digest: r, report_count,
        };
        prop_assert_eq!(TdiInfoRsp::parse(&x.encode()), Ok(x));
    }

    #[test]
    fn mmio_roundtrip(
        tdi_id in any::<u64>(), status in any::<u16>(), base in any::<u64>(),
        count in any::<u32>(), off in any::<u32>(), flags in any::<u16>(), id in any::<u16>(),
    ) {
        let q = MmioValidateReq {
            tdi_id, subrange_base: base, subrange_page_count: count, range_offset: off,
            flags, range_id: id,
        };
        prop_assert_eq!(MmioValidateReq::parse(&q.encode()), Ok(q));
        let r = MmioValidateRsp {
            tdi_id, status, subrange_base: base, subrange_page_count: count,
            range_offset: off, flags, range_id: id,
        };
        prop_assert_eq!(MmioValidateRsp::parse(&r.encode()), Ok(r));
    }

    #[test]
    fn sdte_roundtrip(tdi_id in any::<u64>(), status in any::<u16>(),
                      sdte in prop::collection::vec(any::<u8>(), SDTE_SIZE)) {
        let q = SdteWriteReq { tdi_id, sdte: sdte.try_into().unwrap() };
        prop_assert_eq!(SdteWriteReq::parse(&q.encode()), Ok(q));
        let r = SdteWriteRsp { tdi_id, status };
        prop_assert_eq!(SdteWriteRsp::parse(&r.encode()), Ok(r));
    }

    #[test]
    fn header_roundtrip(seqno in any::<u64>(),
                        t in prop::sample::select(vec![0x81u8, 0x01, 0x82, 0x02, 0x84, 0x04]),
                        fill in any::<u8>()) {
        let size = expected_payload_size(t).unwrap();
        let payload = vec![fill; size];
        let mut page = vec![0u8; MSG_PAGE_SIZE];
        let n = encode_msg(&mut page, seqno, t, &payload).unwrap();
        prop_assert_eq!(n, HDR_SIZE + size);
        let (h, p) = MsgHeader::parse(&page).unwrap();
        prop_assert_eq!(h, MsgHeader { seqno, msg_type: t, msg_sz: size as u16 });
        prop_assert_eq!(p, &payload[..]);
    }

    #[test]
    fn parsers_never_panic(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = TdiInfoReq::parse(&data);
        let _ = TdiInfoRsp::parse(&data);
        let _ = MmioValidateReq::parse(&data);
        let _ = MmioValidateRsp::parse(&data);
        let _ = SdteWriteReq::parse(&data);
        let _ = SdteWriteRsp::parse(&data);
        if let Ok((h, p)) = MsgHeader::parse(&data) {
            prop_assert!(within(&data, p));
            prop_assert_eq!(Some(p.len()), expected_payload_size(h.msg_type));
        }
    }

    #[test]
    fn header_on_random_pages(mut data in prop::collection::vec(any::<u8>(), 0x60..0x200),
                              fix in any::<bool>()) {
        if fix {
            data[0x30] = 0;
            data[0x31] = 1;
            data[0x32] = 0x60;
            data[0x33] = 0;
            data[0x35] = 2;
        }
        if let Ok((_, p)) = MsgHeader::parse(&data) {
            prop_assert!(within(&data, p));
        }
    }

    #[test]
    fn blob_table_never_panics(data in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(b) = parse_blobs(&data) {
            for s in [b.certificates, b.measurements, b.report].into_iter().flatten() {
                prop_assert!(within(&data, s));
                prop_assert!(s.as_ptr() as usize >= data.as_ptr() as usize + BLOB_ENTRY_SIZE);
            }
        }
    }

    /// A plausible table (known GUIDs, small offsets) with random values: same properties.
    #[test]
    fn blob_table_plausible(
        entries in prop::collection::vec((0usize..4, 0u32..300, 0u32..300), 0..4),
        len in 0usize..400,
    ) {
        let mut data = vec![0u8; len.max(72)];
        for (i, (g, o, l)) in entries.iter().enumerate() {
            let guid = [GUID_CERTIFICATES, GUID_MEASUREMENTS, GUID_REPORT, [0; 16]][*g];
            let e = &mut data[i * 24..i * 24 + 24];
            e[..16].copy_from_slice(&guid);
            e[16..20].copy_from_slice(&o.to_le_bytes());
            e[20..24].copy_from_slice(&l.to_le_bytes());
        }
        data.truncate(len);
        if let Ok(b) = parse_blobs(&data) {
            for s in [b.certificates, b.measurements, b.report].into_iter().flatten() {
                prop_assert!(within(&data, s));
            }
        }
    }

    #[test]
    fn blobs_roundtrip(
        kinds in prop::sample::subsequence(
            vec![BlobKind::Certificates, BlobKind::Measurements, BlobKind::Report], 0..=3),
        sizes in prop::collection::vec(0usize..200, 3),
        space in 0usize..800,
    ) {
        let bodies: Vec<Vec<u8>> = sizes.iter().enumerate()
            .map(|(i, n)| vec![i as u8 + 1; *n]).collect();
        let blobs: Vec<(BlobKind, &[u8])> = kinds.iter().enumerate()
            .map(|(i, k)| (*k, &bodies[i][..])).collect();
        let need = blobs_size(&blobs).unwrap();
        let mut out = vec![0u8; space];
        match encode_blobs(&mut out, &blobs) {
            Ok(n) => {
                prop_assert_eq!(n, need);
                let b = parse_blobs(&out).unwrap();
                for (k, body) in &blobs {
                    prop_assert_eq!(b.get(*k), Some(*body));
                }
                let present = [b.certificates, b.measurements, b.report]
                    .iter().filter(|x| x.is_some()).count();
                prop_assert_eq!(present, blobs.len());
            }
            Err(e) => {
                prop_assert!(space < need);
                prop_assert_eq!(e, GuestError::NeedMore(need));
            }
        }
    }

    #[test]
    fn algos_roundtrip(dhe in any::<u8>(), aead in any::<u8>(), asym in any::<u8>(),
                       hash in any::<u8>(), hi in any::<u32>()) {
        let a = SpdmAlgos { dhe, aead, asym, hash };
        prop_assert_eq!(SpdmAlgos::decode(a.encode() | (u64::from(hi) << 32)), a);
    }
}
