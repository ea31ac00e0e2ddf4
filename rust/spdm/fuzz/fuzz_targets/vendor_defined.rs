//! SPDM VENDOR_DEFINED_REQUEST / RESPONSE wrapper parser (PCI-SIG protocols).
#![no_main]

use coco_spdm::vendor::{parse_pci_sig_vdm, parse_vendor_defined};
use coco_spdm::{SPDM_VENDOR_DEFINED_REQUEST, SPDM_VENDOR_DEFINED_RESPONSE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for code in [SPDM_VENDOR_DEFINED_REQUEST, SPDM_VENDOR_DEFINED_RESPONSE] {
        if let Ok(vd) = parse_vendor_defined(data, code) {
            assert!(vd.payload.len() + vd.vendor_id.len() + 9 <= data.len());
            let _ = vd.pci_sig_protocol();
        }
        if let Ok(p) = parse_pci_sig_vdm(data, code) {
            assert!(p.message.len() + 12 <= data.len());
        }
    }
});
