//! TDISP device interface report parser and its check against BARs.
#![no_main]

use coco_tdisp::{parse_interface_report, Bar};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first 8 bytes choose the MMIO reporting offset, the rest is the report.
    let (offset, report) = match data.split_first_chunk::<8>() {
        Some((o, r)) => (u64::from_le_bytes(*o), r),
        None => (0, data),
    };
    if let Ok(r) = parse_interface_report(report) {
        assert_eq!(r.ranges().count(), r.range_count());
        let bars = [
            Bar { index: 0, base: 0xFE00_0000, size: 0x4000 },
            Bar { index: 2, base: 0x8_0000_0000, size: 0x10_0000 },
        ];
        let _ = r.check(&bars, offset);
    }
});
