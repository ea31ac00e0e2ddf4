//! ERROR response parser and its extended data accessors.
#![no_main]

use coco_spdm::parse_error_response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = parse_error_response(data) {
        assert_eq!(e.extended.len() + 4, data.len());
        if let Some(nr) = e.response_not_ready() {
            let _ = nr.wait_us();
            let _ = nr.max_wait_us();
        }
        let _ = e.large_response_handle();
    }
});
