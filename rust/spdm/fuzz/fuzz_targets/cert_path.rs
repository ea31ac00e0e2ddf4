//! Certificate path checks: the keyUsage/basicConstraints reader on arbitrary DER, and the
//! path rules on chains built from what it read.
#![no_main]

use coco_spdm::cert::{check_path, read_extensions, CertFacts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut facts = [CertFacts::default(); 4];
    let mut n = 0;
    for (i, part) in data.split(|&b| b == 0xA5).take(4).enumerate() {
        if let Ok(ext) = read_extensions(part) {
            facts[i] = CertFacts {
                ext,
                self_issued: part.len() % 2 == 0,
            };
            n = i + 1;
        }
    }
    if let Err((i, _)) = check_path(&facts[..n], data.first().is_some_and(|b| b & 1 != 0)) {
        assert!(i < n);
    }
});
