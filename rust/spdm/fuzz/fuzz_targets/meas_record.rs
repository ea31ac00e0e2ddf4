//! Measurement record parser and block iterator (NumberOfBlocks and digest size picked by the
//! first two input bytes); type names of every accepted block.
#![no_main]

use coco_spdm::meas::{parse_record, MeasurementBlocks, MeasurementTypeName};
use libfuzzer_sys::fuzz_target;
use std::fmt::Write;

fuzz_target!(|data: &[u8]| {
    let Some((&[count, h], record)) = data.split_first_chunk::<2>() else {
        return;
    };
    let hash = match h & 7 {
        0 => None,
        1 => Some(0),
        2 => Some(32),
        3 => Some(48),
        4 => Some(64),
        _ => Some(usize::from(h >> 3)),
    };
    let mut seen = 0usize;
    for block in MeasurementBlocks::new(record) {
        match block {
            Ok(b) => {
                seen += 1;
                let mut s = String::new();
                let _ = write!(s, "{}", MeasurementTypeName(b.value_type));
                assert!(!s.is_empty());
                assert!((1..=0xFE).contains(&b.index));
            }
            Err(_) => break,
        }
    }
    if let Ok(r) = parse_record(record, count, hash) {
        assert_eq!(r.count, count);
        assert_eq!(seen, usize::from(count));
        assert_eq!(r.blocks().count(), usize::from(count));
        assert_eq!(r.indices.len(), usize::from(count));
    }
});
