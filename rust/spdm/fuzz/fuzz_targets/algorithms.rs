//! ALGORITHMS response parser and the selection check against a fixed request.
#![no_main]

use coco_spdm::auth::*;
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
    if let Ok(a) = parse_algorithms(msg, v) {
        assert!(a.len <= msg.len() && msg.len() <= a.len + 3);
        let mut req = NegotiateAlgorithms::new(v);
        req.base_asym = SPDM_ASYM_ECDSA_P256 | SPDM_ASYM_ECDSA_P384 | SPDM_ASYM_RSASSA_3072;
        req.base_hash = SPDM_HASH_SHA256 | SPDM_HASH_SHA384;
        if v >= SpdmVersion::V1_1 {
            req.structs.dhe = Some(0);
            req.structs.aead = Some(0);
            req.structs.req_base_asym = Some(0);
            req.structs.key_schedule = Some(0);
        }
        if a.check_against(&req, true).is_ok() {
            assert!(a.hash_size().is_some());
            assert!(a.signature_size().is_some());
        }
    }
});
