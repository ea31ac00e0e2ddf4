//! CMA identity: the certificate walker, and the identity string parser on what it finds.
#![no_main]

use coco_spdm::cma::{find_identity, Identity};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(id)) = find_identity(data) {
        assert!(id.len() <= coco_spdm::cma::MAX_IDENTITY_LEN);
        let _ = Identity::parse(id);
    }
    let _ = Identity::parse(data);
});
