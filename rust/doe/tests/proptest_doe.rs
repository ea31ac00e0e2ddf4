//! Property tests for the DOE framing: round trips, and no input makes a decoder panic.

use coco_doe::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// encode_object followed by decode_object gives back the header fields and the payload
    /// followed by zero padding to a DWORD boundary.
    #[test]
    fn object_roundtrip(vendor: u16, object_type: u8, payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut out = vec![0xa5u8; payload.len() + 16];
        let n = encode_object(vendor, object_type, &payload, &mut out).unwrap();
        prop_assert_eq!(n % 4, 0);
        prop_assert_eq!(n, object_size(payload.len()).unwrap());
        prop_assert!(n >= payload.len() + DOE_HEADER_SIZE && n < payload.len() + DOE_HEADER_SIZE + 4);
        let obj = decode_object(&out[..n]).unwrap();
        prop_assert!(obj.header.is(vendor, object_type));
        prop_assert_eq!(obj.header.size_bytes(), Some(n));
        prop_assert_eq!(&obj.payload[..payload.len()], &payload[..]);
        prop_assert!(obj.payload[payload.len()..].iter().all(|&b| b == 0));
        // Bytes after the object are untouched.
        prop_assert!(out[n..].iter().all(|&b| b == 0xa5));
        // The prefix decoder agrees, also with trailing garbage.
        let (pobj, psize) = decode_object_prefix(&out).unwrap();
        prop_assert_eq!(psize, n);
        prop_assert_eq!(pobj, obj);
    }

    /// Header encode/decode are inverse for every valid length.
    #[test]
    fn header_roundtrip(vendor: u16, object_type: u8, length_dw in DOE_HEADER_DW..=DOE_MAX_LENGTH_DW) {
        let h = DoeHeader { vendor, object_type, length_dw };
        let bytes = h.encode().unwrap();
        prop_assert_eq!(bytes[3], 0);
        prop_assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()) & !DOE_LENGTH_MASK, 0);
        prop_assert_eq!(DoeHeader::decode(&bytes).unwrap(), h);
    }

    /// Reserved bits never change what decode returns.
    #[test]
    fn header_reserved_bits_ignored(bytes: [u8; 8], rsvd0: u8, rsvd1 in 0u32..(1 << 14)) {
        let mut noisy = bytes;
        noisy[3] = rsvd0;
        let dw1 = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) & DOE_LENGTH_MASK | (rsvd1 << 18);
        noisy[4..8].copy_from_slice(&dw1.to_le_bytes());
        prop_assert_eq!(DoeHeader::decode(&bytes), DoeHeader::decode(&noisy));
    }

    /// Decoders never panic on arbitrary bytes, and whatever they accept is consistent.
    #[test]
    fn decoders_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(obj) = decode_object(&buf) {
            prop_assert_eq!(obj.header.size_bytes(), Some(buf.len()));
            prop_assert_eq!(obj.payload.len() + DOE_HEADER_SIZE, buf.len());
            // Re-encoding an accepted object reproduces it, up to reserved bits.
            let mut out = vec![0u8; buf.len()];
            let n = encode_object(obj.header.vendor, obj.header.object_type, obj.payload, &mut out).unwrap();
            prop_assert_eq!(n, buf.len());
            prop_assert_eq!(&out[..3], &buf[..3]);
            prop_assert_eq!(&out[8..], &buf[8..]);
        }
        if let Ok((obj, size)) = decode_object_prefix(&buf) {
            prop_assert!(size <= buf.len());
            prop_assert_eq!(obj.payload.len() + DOE_HEADER_SIZE, size);
        }
        let _ = DoeHeader::decode(&buf);
        let _ = decode_discovery_request(&buf);
        let _ = decode_discovery_response(&buf);
    }

    /// Objects whose length field is corrupted are rejected by the strict decoder.
    #[test]
    fn wrong_length_rejected(payload in proptest::collection::vec(any::<u8>(), 0..64), delta in 1u32..16, up: bool) {
        let mut out = vec![0u8; payload.len() + 16];
        let n = encode_object(1, 1, &payload, &mut out).unwrap();
        let obj = &mut out[..n];
        let len = u32::from_le_bytes(obj[4..8].try_into().unwrap());
        let bad = if up { len + delta } else { len.saturating_sub(delta) };
        prop_assume!(bad != len);
        obj[4..8].copy_from_slice(&bad.to_le_bytes());
        prop_assert!(decode_object(obj).is_err());
    }

    /// encode_object never panics for any output buffer size and fails only when too small.
    #[test]
    fn encode_never_panics(payload_len in 0usize..128, out_len in 0usize..160) {
        let payload = vec![0x5a; payload_len];
        let mut out = vec![0u8; out_len];
        let need = object_size(payload_len).unwrap();
        match encode_object(1, 2, &payload, &mut out) {
            Ok(n) => { prop_assert_eq!(n, need); prop_assert!(out_len >= need); }
            Err(e) => { prop_assert_eq!(e, DoeError::BufferTooSmall); prop_assert!(out_len < need); }
        }
    }

    /// Discovery payloads round trip.
    #[test]
    fn discovery_roundtrip(index: u8, vendor: u16, object_type: u8, next_index: u8) {
        prop_assert_eq!(decode_discovery_request(&encode_discovery_request(index)), Ok(index));
        let rsp = DiscoveryResponse { vendor, object_type, next_index };
        prop_assert_eq!(decode_discovery_response(&encode_discovery_response(&rsp)), Ok(rsp));
    }
}
