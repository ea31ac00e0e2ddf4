//! Property tests for the TDISP codec and the interface report: round trips, validation, and
//! no byte string makes a parser panic.

use coco_tdisp::*;
use proptest::prelude::*;

fn request() -> impl Strategy<Value = TdispRequest> {
    prop_oneof![
        Just(TdispRequest::GetVersion),
        any::<u32>().prop_map(|tsm_caps| TdispRequest::GetCapabilities { tsm_caps }),
        (any::<u16>(), any::<u8>(), any::<u64>(), any::<u64>()).prop_map(|(f, s, o, m)| {
            TdispRequest::LockInterface(LockInterface {
                flags: f,
                default_stream_id: s,
                mmio_reporting_offset: o,
                bind_p2p_addr_mask: m,
            })
        }),
        (any::<u16>(), any::<u16>())
            .prop_map(|(offset, length)| TdispRequest::GetReport { offset, length }),
        Just(TdispRequest::GetState),
        any::<[u8; 32]>().prop_map(|nonce| TdispRequest::Start { nonce }),
        Just(TdispRequest::Stop),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Every request round trips; one byte less or more is rejected.
    #[test]
    fn request_roundtrip(req in request(), version: u8, function_id: u32) {
        let id = InterfaceId { function_id };
        let mut out = [0u8; 128];
        let n = encode_request(version, id, &req, &mut out).unwrap();
        let (h, parsed) = parse_request(&out[..n]).unwrap();
        prop_assert_eq!(parsed, req);
        prop_assert_eq!(h, TdispHeader { version, message_type: req.code(), interface_id: id });
        prop_assert!(parse_request(&out[..n - 1]).is_err());
        prop_assert_eq!(parse_request(&out[..n + 1]), Err(TdispError::TrailingBytes));
        prop_assert_eq!(encode_request(version, id, &req, &mut out[..n - 1]), Err(TdispError::BufferTooSmall));
    }

    /// Every response round trips.
    #[test]
    fn response_roundtrip(which in 0usize..8, function_id: u32, bytes in proptest::collection::vec(any::<u8>(), 1..200),
                          nonce: [u8; 32], a: u32, b: u32, c: u16, d: [u8; 16], e: [u8; 3], state in 0u8..4) {
        let id = InterfaceId { function_id };
        let rsp = match which {
            0 => TdispResponse::Version { versions: &bytes[..bytes.len().min(255)] },
            1 => TdispResponse::Capabilities(Capabilities { dsm_caps: a, req_msg_supported: d, lock_flags_supported: c,
                  dev_addr_width: e[0], num_req_this: e[1], num_req_all: e[2] }),
            2 => TdispResponse::LockInterface { nonce },
            3 => TdispResponse::Report(ReportPortion { portion: &bytes, remainder_length: c }),
            4 => TdispResponse::State(TdiState::from_u8(state).unwrap()),
            5 => TdispResponse::Start,
            6 => TdispResponse::Stop,
            _ => TdispResponse::Error(ErrorRsp { code: a, data: b, ext: &bytes }),
        };
        let mut out = [0u8; 512];
        let n = encode_response(TDISP_VERSION_1_0, id, &rsp, &mut out).unwrap();
        let (h, parsed) = parse_response(&out[..n]).unwrap();
        prop_assert_eq!(parsed, rsp);
        prop_assert_eq!(h.interface_id, id);
        prop_assert_eq!(h.message_type, rsp.code());
        if which != 7 {
            prop_assert!(parse_response(&out[..n + 1]).is_err());
        }
    }

    /// No input makes the parsers panic, and what parses re-encodes to the same size.
    #[test]
    fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok((h, req)) = parse_request(&data) {
            let mut out = vec![0u8; data.len()];
            prop_assert_eq!(encode_request(h.version, h.interface_id, &req, &mut out), Ok(data.len()));
        }
        if let Ok((h, rsp)) = parse_response(&data) {
            let mut out = vec![0u8; data.len()];
            prop_assert_eq!(encode_response(h.version, h.interface_id, &rsp, &mut out), Ok(data.len()));
        }
        if let Ok(r) = parse_interface_report(&data) {
            let ranges: Vec<MmioRange> = r.ranges().collect();
            prop_assert_eq!(ranges.len(), r.range_count());
            let mut out = vec![0u8; data.len()];
            prop_assert_eq!(encode_interface_report(&r.info, &ranges, r.device_specific, &mut out), Ok(data.len()));
            let _ = r.check(&[Bar { index: 0, base: 0x1000, size: 0x10000 }], 0);
        }
    }

    /// Reports round trip; a report whose count or lengths disagree with its size is rejected.
    #[test]
    fn report_roundtrip(ranges in proptest::collection::vec((any::<u64>(), any::<u32>(), 0u16..16, any::<u16>()), 0..8),
                        dev in proptest::collection::vec(any::<u8>(), 0..64), info in 0u16..0x40, m: u16, l: u16, t: u32) {
        let ranges: Vec<MmioRange> = ranges.into_iter().map(|(p, n, a, id)| MmioRange { first_page: p, number_of_pages: n, attributes: a, range_id: id }).collect();
        let ri = ReportInfo { interface_info: info, msix_msg_ctrl: m, lnr_control: l, tph_control: t };
        let size = interface_report_size(ranges.len(), dev.len()).unwrap();
        let mut out = vec![0u8; size + 8];
        let n = encode_interface_report(&ri, &ranges, &dev, &mut out).unwrap();
        prop_assert_eq!(n, size);
        let r = parse_interface_report(&out[..n]).unwrap();
        prop_assert_eq!(r.info, ri);
        prop_assert_eq!(r.ranges().collect::<Vec<_>>(), ranges.clone());
        prop_assert_eq!(r.device_specific, &dev[..]);
        prop_assert_eq!(parse_interface_report(&out[..n - 1]).map(|_| ()), Err(ReportError::Truncated));
        prop_assert_eq!(parse_interface_report(&out[..n + 1]).map(|_| ()), Err(ReportError::TrailingBytes));
        // mmio_range_count one too high.
        let mut bad = out[..n].to_vec();
        bad[12..16].copy_from_slice(&(ranges.len() as u32 + 1).to_le_bytes());
        prop_assert!(parse_interface_report(&bad).is_err());
        prop_assert_eq!(encode_interface_report(&ri, &ranges, &dev, &mut out[..n - 1]), Err(ReportError::BufferTooSmall));
    }

    /// check(): ranges inside a BAR (after the reporting offset) pass, anything reaching past the
    /// BAR's end or starting before it fails.
    #[test]
    fn report_check_bars(bar_page in 1u64..0x1000_0000, bar_pages in 1u64..64, start in 0u64..64, len in 1u32..64,
                         offset_pages in 0u64..0x1000) {
        let base = bar_page * 4096;
        let bars = [Bar { index: 2, base, size: bar_pages * 4096 }];
        let offset = offset_pages * 4096;
        let range = MmioRange { first_page: bar_page + start + offset_pages, number_of_pages: len, attributes: 0, range_id: 2 };
        let mut out = [0u8; 64];
        let n = encode_interface_report(&ReportInfo::default(), &[range], &[], &mut out).unwrap();
        let r = parse_interface_report(&out[..n]).unwrap();
        let fits = start + u64::from(len) <= bar_pages;
        prop_assert_eq!(r.check(&bars, offset).is_ok(), fits);
        if !fits { prop_assert_eq!(r.check(&bars, offset), Err(ReportError::OutsideBars(0))); }
        // Without the offset the addresses are off (unless it is 0).
        if offset_pages > 0 && fits {
            prop_assert!(r.check(&bars, 0).is_err() || offset_pages + start + u64::from(len) <= bar_pages);
        }
        // An unassigned BAR holds nothing.
        let unassigned = [Bar { index: 2, base: 0, size: bar_pages * 4096 }];
        let res = r.check(&unassigned, offset);
        prop_assert!(res.is_err());
    }
}

#[test]
fn report_check_rejects_bad_reports() {
    let bars = [
        Bar {
            index: 0,
            base: 0xFE00_0000,
            size: 0x4000,
        },
        Bar {
            index: 2,
            base: 0xFD00_0000,
            size: 0x1000,
        },
    ];
    let ok = [
        MmioRange {
            first_page: 0xFE000,
            number_of_pages: 4,
            attributes: 0,
            range_id: 0,
        },
        MmioRange {
            first_page: 0xFD000,
            number_of_pages: 1,
            attributes: TDISP_MMIO_MSIX_TABLE,
            range_id: 2,
        },
    ];
    let mut out = [0u8; 128];
    let check = |ranges: &[MmioRange], out: &mut [u8]| {
        let n = encode_interface_report(&ReportInfo::default(), ranges, b"dev", out).unwrap();
        parse_interface_report(&out[..n]).and_then(|r| r.check(&bars, 0))
    };
    assert_eq!(check(&ok, &mut out), Ok(()));
    let mut empty = ok;
    empty[1].number_of_pages = 0;
    assert_eq!(check(&empty, &mut out), Err(ReportError::EmptyRange(1)));
    let mut overlap = ok;
    overlap[1] = MmioRange {
        first_page: 0xFE003,
        number_of_pages: 1,
        attributes: 0,
        range_id: 0,
    };
    assert_eq!(check(&overlap, &mut out), Err(ReportError::Overlap(0, 1)));
    let mut outside = ok;
    outside[0].number_of_pages = 5;
    assert_eq!(check(&outside, &mut out), Err(ReportError::OutsideBars(0)));
    let mut overflow = ok;
    overflow[0].first_page = u64::MAX;
    assert_eq!(check(&overflow, &mut out), Err(ReportError::BadAddress(0)));
    let mut reserved = ok;
    reserved[0].attributes = 0x10;
    assert_eq!(
        check(&reserved, &mut out),
        Err(ReportError::ReservedAttributes(0))
    );
    let n = encode_interface_report(
        &ReportInfo {
            interface_info: 0x40,
            ..Default::default()
        },
        &ok,
        &[],
        &mut out,
    )
    .unwrap();
    assert_eq!(
        parse_interface_report(&out[..n]).map(|_| ()),
        Err(ReportError::ReservedInfoBits)
    );
}

#[test]
fn wire_layouts() {
    let mut out = [0u8; 64];
    let lock = TdispRequest::LockInterface(LockInterface {
        flags: TDISP_LOCK_NO_FW_UPDATE | TDISP_LOCK_MSIX,
        default_stream_id: 3,
        mmio_reporting_offset: 0xD000_0000,
        bind_p2p_addr_mask: 0,
    });
    let n = encode_request(
        TDISP_VERSION_1_0,
        InterfaceId::from_rid(0x0100),
        &lock,
        &mut out,
    )
    .unwrap();
    assert_eq!(n, 36);
    assert_eq!(
        &out[..16],
        &[0x10, 0x83, 0, 0, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(&out[16..24], &[5, 0, 3, 0, 0, 0, 0, 0xD0]);
    let mut caps = Capabilities::default();
    for code in 0x81..=0x87 {
        caps.set_supported(code);
    }
    assert_eq!(caps.req_msg_supported[0], 0xFE);
    assert!(caps.supports(0x87) && !caps.supports(0x88) && !caps.supports(0x7F));
    let n = encode_response(
        TDISP_VERSION_1_0,
        InterfaceId::default(),
        &TdispResponse::Capabilities(caps),
        &mut out,
    )
    .unwrap();
    assert_eq!(n, 16 + TDISP_CAPABILITIES_BODY_SIZE);
    assert!(nonce_eq(&[7; 32], &[7; 32]));
    assert!(!nonce_eq(
        &[7; 32],
        &[[7; 31].as_slice(), &[8]].concat().try_into().unwrap()
    ));
    assert_eq!(error_name(TDISP_ERROR_INVALID_NONCE), "INVALID_NONCE");
    assert_eq!(TdiState::from_u8(4), None);
    let (h, rest) =
        TdispHeader::parse(&[0x10, 0x85, 9, 9, 1, 2, 3, 4, 9, 9, 9, 9, 9, 9, 9, 9, 0xAA]).unwrap();
    assert_eq!(h.interface_id.function_id, 0x0403_0201);
    assert_eq!(rest, &[0xAA]);
    assert_eq!(
        parse_request(&[0x10, 0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
        Err(TdispError::UnknownCode)
    );
    let p = ReportPortion {
        portion: &[0; 10],
        remainder_length: 20,
    };
    assert_eq!(p.total_len(5), Some(35));
}
