//! Property tests for the SPDM vendor-defined message wrapper.

use coco_spdm::vendor::*;
use coco_spdm::*;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// PCI-SIG messages round trip, with up to 3 bytes of zero padding.
    #[test]
    fn pci_sig_roundtrip(v: u8, req: bool, protocol: u8, msg in proptest::collection::vec(any::<u8>(), 0..300), pad in 0usize..4) {
        let code = if req { SPDM_VENDOR_DEFINED_REQUEST } else { SPDM_VENDOR_DEFINED_RESPONSE };
        let mut out = vec![0u8; msg.len() + 16];
        let n = encode_pci_sig_vdm(SpdmVersion::from_byte(v), code, protocol, &msg, &mut out).unwrap();
        prop_assert_eq!(n, msg.len() + PCI_SIG_VDM_OVERHEAD);
        prop_assert_eq!(&out[4..9], &[3, 0, 2, 1, 0]);
        let p = parse_pci_sig_vdm(&out[..n + pad], code).unwrap();
        prop_assert_eq!(p.version.as_byte(), v);
        prop_assert_eq!(p.protocol_id, protocol);
        prop_assert_eq!(p.message, &msg[..]);
        prop_assert!(parse_pci_sig_vdm(&out[..n - 1], code).is_err());
        prop_assert_eq!(parse_pci_sig_vdm(&out[..n], code ^ 0x80), Err(SpdmError::UnexpectedCode));
        // The generic encoder produces the same bytes.
        let mut payload = vec![protocol];
        payload.extend_from_slice(&msg);
        let mut again = vec![0u8; n];
        prop_assert_eq!(encode_vendor_defined(SpdmVersion::from_byte(v), code, 3, &[1, 0], &payload, &mut again), Ok(n));
        prop_assert_eq!(&again[..], &out[..n]);
    }

    /// Other standards and vendors parse generically and are refused as PCI-SIG.
    #[test]
    fn other_vendor(std_id: u16, vendor in proptest::collection::vec(any::<u8>(), 0..8), payload in proptest::collection::vec(any::<u8>(), 0..32)) {
        prop_assume!(std_id != 3 || vendor != [1, 0]);
        let mut out = vec![0u8; 64];
        let n = encode_vendor_defined(SpdmVersion::V1_2, SPDM_VENDOR_DEFINED_REQUEST, std_id, &vendor, &payload, &mut out).unwrap();
        let vd = parse_vendor_defined(&out[..n], SPDM_VENDOR_DEFINED_REQUEST).unwrap();
        prop_assert_eq!(vd.standard_id, std_id);
        prop_assert_eq!(vd.vendor_id, &vendor[..]);
        prop_assert_eq!(vd.payload, &payload[..]);
        prop_assert!(!vd.is_pci_sig());
        prop_assert_eq!(parse_pci_sig_vdm(&out[..n], SPDM_VENDOR_DEFINED_REQUEST), Err(SpdmError::Mismatch));
    }

    /// No input makes the parsers panic.
    #[test]
    fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = parse_vendor_defined(&data, SPDM_VENDOR_DEFINED_REQUEST);
        let _ = parse_pci_sig_vdm(&data, SPDM_VENDOR_DEFINED_RESPONSE);
    }
}

#[test]
fn empty_pci_sig_payload_has_no_protocol() {
    let mut out = [0u8; 16];
    let n = encode_vendor_defined(
        SpdmVersion::V1_2,
        SPDM_VENDOR_DEFINED_REQUEST,
        3,
        &[1, 0],
        &[],
        &mut out,
    )
    .unwrap();
    assert_eq!(
        parse_pci_sig_vdm(&out[..n], SPDM_VENDOR_DEFINED_REQUEST),
        Err(SpdmError::TooShort)
    );
    assert_eq!(
        encode_vendor_defined(SpdmVersion::V1_2, 0x7F, 3, &[1, 0], &[], &mut out),
        Err(SpdmError::InvalidField)
    );
    // Non-zero padding is refused.
    let n = encode_pci_sig_vdm(
        SpdmVersion::V1_2,
        SPDM_VENDOR_DEFINED_REQUEST,
        0,
        &[0, 0, 0],
        &mut out,
    )
    .unwrap();
    out[n] = 1;
    assert_eq!(
        parse_pci_sig_vdm(&out[..n + 1], SPDM_VENDOR_DEFINED_REQUEST),
        Err(SpdmError::TrailingBytes)
    );
}
