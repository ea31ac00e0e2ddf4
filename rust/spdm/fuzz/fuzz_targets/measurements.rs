//! MEASUREMENTS response parser (version, signed, S and measurement hash size picked by the
//! first two input bytes) and its check against a request.
#![no_main]

use coco_spdm::meas::{parse_measurements, GetMeasurements, MeasurementsParams};
use coco_spdm::SpdmVersion;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&[a, b], msg)) = data.split_first_chunk::<2>() else {
        return;
    };
    let version = [
        SpdmVersion::V1_0,
        SpdmVersion::V1_1,
        SpdmVersion::V1_2,
        SpdmVersion::V1_3,
    ][usize::from(a & 3)];
    let signed = a & 4 != 0;
    let params = MeasurementsParams {
        version,
        signed,
        signature_size: [64usize, 96, 132, 256, 384, 512, 0, 600][usize::from(b & 7)],
        measurement_hash_size: [None, Some(0), Some(32), Some(48), Some(64), Some(80), None, None]
            [usize::from((a >> 3) & 7)],
    };
    if let Ok(m) = parse_measurements(msg, &params) {
        assert!(msg.len() >= m.len && msg.len() <= m.len + 3);
        assert_eq!(
            m.signature_offset + m.signature.map_or(0, <[u8]>::len),
            m.len
        );
        assert_eq!(m.blocks().count(), usize::from(m.number_of_blocks));
        let mut req = GetMeasurements::new(version, b, signed);
        req.slot_id = a >> 6;
        let _ = m.check(&req);
    }
});
