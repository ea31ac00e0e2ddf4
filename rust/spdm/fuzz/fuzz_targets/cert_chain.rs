//! Certificate chain parser and the DER certificate splitter.
#![no_main]

use coco_spdm::auth::{parse_cert_chain, DerCertificates};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, chain)) = data.split_first() else {
        return;
    };
    let h = [32usize, 48, 64, 0][usize::from(sel & 3)];
    if let Ok(c) = parse_cert_chain(chain, h) {
        assert_eq!(usize::from(c.length), chain.len());
        let total: usize = c.certificates().map(|x| x.unwrap().len()).sum();
        assert_eq!(total + 4 + h, chain.len());
        assert!(c.leaf().is_some());
    }
    let mut total = 0;
    for cert in DerCertificates::new(chain) {
        match cert {
            Ok(c) => total += c.len(),
            Err(_) => break,
        }
    }
    assert!(total <= chain.len());
});
