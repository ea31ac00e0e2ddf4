//! Property tests for the SPDM codec: round trips, and no input makes a parser panic.

use coco_spdm::*;
use proptest::prelude::*;

fn entry() -> impl Strategy<Value = VersionEntry> {
    any::<u16>().prop_map(VersionEntry::from_raw)
}

fn version() -> impl Strategy<Value = SpdmVersion> {
    any::<u8>().prop_map(SpdmVersion::from_byte)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// encode_version_response then parse_version_response gives back the entries, also with
    /// 0 to 3 bytes of zero padding after the message.
    #[test]
    fn version_response_roundtrip(entries in proptest::collection::vec(entry(), 1..=255), pad in 0usize..=3) {
        let mut out = vec![0u8; SPDM_VERSION_RESPONSE_MAX_SIZE + 3];
        let n = encode_version_response(&entries, &mut out).unwrap();
        prop_assert_eq!(n, 6 + 2 * entries.len());
        let rsp = parse_version_response(&out[..n + pad]).unwrap();
        prop_assert_eq!(usize::from(rsp.count()), entries.len());
        prop_assert_eq!(rsp.entries().len(), entries.len());
        prop_assert!(rsp.entries().eq(entries.iter().copied()));
        prop_assert_eq!(rsp.header.version, SPDM_VERSION_1_0);
        prop_assert_eq!(rsp.header.code, SPDM_VERSION);
    }

    /// More than 3 trailing bytes, or a non-zero trailing byte, is rejected.
    #[test]
    fn version_response_trailing_rejected(entries in proptest::collection::vec(entry(), 1..8), tail in proptest::collection::vec(any::<u8>(), 1..8)) {
        prop_assume!(tail.len() > 3 || tail.iter().any(|&b| b != 0));
        let mut out = vec![0u8; 64];
        let n = encode_version_response(&entries, &mut out).unwrap();
        let mut msg = out[..n].to_vec();
        msg.extend_from_slice(&tail);
        prop_assert_eq!(parse_version_response(&msg), Err(SpdmError::TrailingBytes));
    }

    /// Error responses round trip, extended data included.
    #[test]
    fn error_response_roundtrip(v in version(), code: u8, data: u8, ext in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut out = vec![0u8; 4 + ext.len()];
        let n = encode_error_response_ext(v, code, data, &ext, &mut out).unwrap();
        prop_assert_eq!(n, 4 + ext.len());
        let e = parse_error_response(&out).unwrap();
        prop_assert_eq!(e.version, v.as_byte());
        prop_assert_eq!(e.code, code);
        prop_assert_eq!(e.data, data);
        prop_assert_eq!(e.extended, &ext[..]);
        // Too small an output buffer is an error, not a panic.
        prop_assert_eq!(encode_error_response_ext(v, code, data, &ext, &mut out[..n - 1]), Err(SpdmError::BufferTooSmall));
    }

    /// Header and version helpers are consistent.
    #[test]
    fn header_and_version_roundtrip(bytes: [u8; 4], major in 0u8..16, minor in 0u8..16, update in 0u8..16, alpha in 0u8..16) {
        let h = SpdmHeader::parse(&bytes).unwrap();
        prop_assert_eq!(h.to_bytes(), bytes);
        prop_assert_eq!(h.is_request(), bytes[1] & 0x80 != 0);
        let v = SpdmVersion::new(major, minor).unwrap();
        prop_assert_eq!((v.major(), v.minor()), (major, minor));
        prop_assert_eq!(SpdmVersion::from_byte(v.as_byte()), v);
        let e = VersionEntry::new(major, minor, update, alpha).unwrap();
        prop_assert_eq!((e.major(), e.minor(), e.update(), e.alpha()), (major, minor, update, alpha));
        prop_assert_eq!(e.version(), v);
        prop_assert_eq!(v.to_entry().version(), v);
    }

    /// highest_common returns the maximum of the intersection.
    #[test]
    fn highest_common_is_max_of_intersection(ours in proptest::collection::vec(version(), 0..8), theirs in proptest::collection::vec(entry(), 0..8)) {
        let expect = theirs.iter().map(|e| e.version()).filter(|v| ours.contains(v)).max();
        let got = highest_common(&ours, theirs.iter().copied());
        prop_assert_eq!(got, expect);
        if let Some(v) = got {
            prop_assert!(ours.contains(&v));
            prop_assert!(theirs.iter().any(|e| e.version() == v));
        }
    }

    /// No parser panics on arbitrary input, and accepted VERSION responses are consistent.
    #[test]
    fn parsers_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = SpdmHeader::parse(&buf);
        let _ = parse_get_version(&buf);
        if let Ok(rsp) = parse_version_response(&buf) {
            let n = 6 + 2 * usize::from(rsp.count());
            prop_assert!(rsp.count() >= 1);
            prop_assert!(buf.len() >= n && buf.len() <= n + 3);
            prop_assert_eq!(rsp.entries().count(), usize::from(rsp.count()));
        }
        if let Ok(e) = parse_error_response(&buf) {
            prop_assert_eq!(e.extended.len() + 4, buf.len());
            let _ = e.response_not_ready();
            let _ = e.large_response_handle();
        }
    }

    /// Parsers never panic on inputs that look like VERSION responses (a valid prefix with an
    /// arbitrary count and arbitrary body), which random bytes rarely produce.
    #[test]
    fn version_like_inputs_never_panic(count: u8, body in proptest::collection::vec(any::<u8>(), 0..520)) {
        let mut buf = vec![0x10, SPDM_VERSION, 0, 0, 0, count];
        buf.extend_from_slice(&body);
        match parse_version_response(&buf) {
            Ok(rsp) => prop_assert_eq!(rsp.count(), count),
            Err(e) => prop_assert!(matches!(e, SpdmError::NoVersionEntries | SpdmError::Truncated | SpdmError::TrailingBytes)),
        }
    }
}
