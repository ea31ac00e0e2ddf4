//! CAPABILITIES response parser, for every version (the first input byte picks it).
#![no_main]

use coco_spdm::auth::{capabilities_size, parse_capabilities};
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
    if let Ok(c) = parse_capabilities(msg, v) {
        assert!(msg.len() >= capabilities_size(v) && msg.len() <= capabilities_size(v) + 3);
        assert_eq!(c.validate(), Ok(()));
        let _ = c.ct_us();
    }
});
