//! KEY_EXCHANGE_RSP parser (version, H, S, D, summary and verify-data presence picked by the
//! first two input bytes) and the secured-message opaque data inside it (format 1 and the
//! layout of the negotiated version).
#![no_main]

use coco_spdm::session::{
    parse_key_exchange_rsp, parse_sm_versions, parse_sm_versions_for, select_sm_version,
    KeyExchangeRspParams,
};
use coco_spdm::SpdmVersion;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[a, b], msg)) = data.split_first_chunk::<2>() else {
        return;
    };
    let params = KeyExchangeRspParams {
        version: [SpdmVersion::V1_1, SpdmVersion::V1_2, SpdmVersion::V1_3, SpdmVersion::V1_0]
            [usize::from(a & 3)],
        hash_size: [32usize, 48, 64, 0][usize::from((a >> 2) & 3)],
        signature_size: [64usize, 96, 132, 256, 384, 512, 0, 600][usize::from(b & 7)],
        exchange_size: [64usize, 96, 132, 256, 384, 512, 0, 600][usize::from((b >> 3) & 7)],
        measurement_summary: a & 0x10 != 0,
        verify_data: a & 0x20 != 0,
    };
    if let Ok(r) = parse_key_exchange_rsp(msg, &params) {
        assert_eq!(r.signature_offset + params.signature_size, r.verify_data_offset);
        assert!(msg.len() >= r.len && msg.len() <= r.len + 3);
        if let Ok(sm) = parse_sm_versions(r.opaque) {
            let _ = select_sm_version(&sm, &[0x1000, 0x1100]);
        }
        // The layout of the negotiated version (DSP0277 1.0 header at 1.1).
        if let Ok(sm) = parse_sm_versions_for(params.version, r.opaque) {
            assert!(params.version >= SpdmVersion::V1_1);
            let _ = select_sm_version(&sm, &[0x1000, 0x1100]);
        }
    }
});
