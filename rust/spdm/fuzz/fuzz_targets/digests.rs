//! DIGESTS response parser (version and hash size picked by the first input byte).
#![no_main]

use coco_spdm::auth::parse_digests;
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
    let h = [32usize, 48, 64, 0][usize::from((sel >> 2) & 3)];
    if let Ok(d) = parse_digests(msg, v, h) {
        assert_eq!(d.iter().count() as u32, d.slot_mask.count_ones());
        for (slot, digest) in d.iter() {
            assert_eq!(digest.len(), h);
            assert_eq!(d.digest(slot), Some(digest));
        }
    }
});
