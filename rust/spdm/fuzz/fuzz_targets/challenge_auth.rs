//! CHALLENGE_AUTH response parser (version, H, S and summary presence picked by the first two
//! input bytes) and its check against a request.
#![no_main]

use coco_spdm::auth::{parse_challenge_auth, Challenge, ChallengeAuthParams};
use coco_spdm::SpdmVersion;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[a, b], msg)) = data.split_first_chunk::<2>() else {
        return;
    };
    let version = [
        SpdmVersion::V1_0,
        SpdmVersion::V1_1,
        SpdmVersion::V1_2,
        SpdmVersion::V1_3,
    ][usize::from(a & 3)];
    let params = ChallengeAuthParams {
        version,
        hash_size: [32usize, 48, 64, 0][usize::from((a >> 2) & 3)],
        signature_size: [64usize, 96, 132, 256, 384, 512, 0, 600][usize::from(b & 7)],
        measurement_summary: a & 0x10 != 0,
    };
    if let Ok(c) = parse_challenge_auth(msg, &params) {
        assert_eq!(c.signature_offset + params.signature_size, c.len);
        assert!(msg.len() >= c.len && msg.len() <= c.len + 3);
        let req = Challenge {
            version,
            slot: b >> 5,
            meas_summary_type: 0,
            nonce: [0; 32],
            requester_context: [0; 8],
        };
        let _ = c.check(&req);
    }
});
