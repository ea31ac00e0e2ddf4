//! Property tests for the CMA identity walker and parser: no byte string makes them panic, and
//! every well-formed identity string round-trips through its fields.

use coco_spdm::cma::{find_identity, FunctionIds, Identity};
use proptest::prelude::*;

proptest! {
    #[test]
    fn walker_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = find_identity(&data);
    }

    #[test]
    fn walker_never_panics_behind_a_sequence(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        // Random bytes rarely start with a SEQUENCE of the right length: wrap them in one.
        let mut der = vec![0x30, 0x82, (data.len() >> 8) as u8, data.len() as u8];
        der.extend_from_slice(&data);
        let _ = find_identity(&der);
    }

    #[test]
    fn identity_parser_never_panics(data in proptest::collection::vec(any::<u8>(), 0..100)) {
        let _ = Identity::parse(&data);
    }

    #[test]
    fn identity_round_trip(v in any::<u16>(), d in any::<u16>(), cc in 0u32..0x100_0000,
                           rev in any::<u8>(), ssv in any::<u16>(), ss in any::<u16>()) {
        let s = format!("Vendor={v:04x}:Device={d:04X}:CC={cc:06x}:REV={rev:02x}:SSVID={ssv:04x}:SSID={ss:04x}");
        let id = Identity::parse(s.as_bytes()).unwrap();
        let ids = FunctionIds { vendor: v, device: d, class: cc, revision: rev,
                                subsystem_vendor: ssv, subsystem: ss };
        prop_assert_eq!(id.check(&ids), Ok(()));
        let other = FunctionIds { device: d.wrapping_add(1), ..ids };
        prop_assert!(id.check(&other).is_err());
    }
}
