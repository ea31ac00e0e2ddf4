//! CERTIFICATE response parser and its check against a request.
#![no_main]

use coco_spdm::auth::{parse_certificate, GetCertificate};
use coco_spdm::SpdmVersion;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, msg)) = data.split_first() else {
        return;
    };
    let v = [
        SpdmVersion::V1_0,
        SpdmVersion::V1_1,
        SpdmVersion::V1_2,
        SpdmVersion::V1_3,
    ][usize::from(sel & 3)];
    if let Ok(c) = parse_certificate(msg, v) {
        assert_eq!(c.len, 8 + c.portion.len());
        let req = GetCertificate {
            version: v,
            slot: sel >> 5,
            attributes: 0,
            offset: 0x100,
            length: 0x400,
        };
        if c.check(&req).is_ok() {
            assert!(c.portion.len() <= 0x400);
        }
    }
});
