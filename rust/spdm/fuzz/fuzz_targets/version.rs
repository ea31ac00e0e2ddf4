//! VERSION response parser.
#![no_main]

use coco_spdm::{highest_common, parse_version_response, SpdmVersion};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(rsp) = parse_version_response(data) {
        assert_eq!(rsp.entries().len(), usize::from(rsp.count()));
        let ours = [SpdmVersion::V1_2, SpdmVersion::V1_3];
        if let Some(v) = highest_common(&ours, rsp.entries()) {
            assert!(ours.contains(&v));
        }
    }
});
