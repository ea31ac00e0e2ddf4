//! TDISP request and response parsers.
#![no_main]

use coco_tdisp::{encode_request, encode_response, parse_request, parse_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut out = [0u8; 4096];
    if let Ok((h, req)) = parse_request(data) {
        assert_eq!(
            encode_request(h.version, h.interface_id, &req, &mut out),
            Ok(data.len())
        );
    }
    if let Ok((h, rsp)) = parse_response(data) {
        if data.len() <= out.len() {
            assert_eq!(
                encode_response(h.version, h.interface_id, &rsp, &mut out),
                Ok(data.len())
            );
        }
    }
});
