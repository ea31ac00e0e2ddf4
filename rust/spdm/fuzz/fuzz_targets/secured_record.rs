//! Secured-message record parser (DSP0277 over PCI DOE and other sequence number sizes) and
//! the in-place open with a toy AEAD: no input may panic, and an accepted record stays within
//! the input.
#![no_main]

use coco_spdm::session::{open_record, parse_record_header, Aead, RecordError, RecordParams};
use libfuzzer_sys::fuzz_target;

struct Toy;

impl Aead for Toy {
    fn seal(&mut self, _: &[u8; 12], _: &[u8], _: &mut [u8], _: &mut [u8; 16]) -> Result<(), RecordError> {
        Ok(())
    }
    fn open(&mut self, n: &[u8; 12], _: &[u8], buf: &mut [u8], tag: &[u8; 16]) -> Result<(), RecordError> {
        if tag[0] != n[0] {
            return Err(RecordError::Decrypt);
        }
        for b in buf.iter_mut() {
            *b ^= 0x5A;
        }
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&[a], msg)) = data.split_first_chunk::<1>() else {
        return;
    };
    let seq_size = [0usize, 2, 8, 9][usize::from(a & 3)];
    if let Ok(h) = parse_record_header(msg, seq_size) {
        assert!(h.size <= msg.len() && msg.len() <= h.size + 3);
        assert_eq!(h.size, h.header_size + usize::from(h.length));
    }
    let iv = [a; 12];
    let p = RecordParams {
        session_id: u32::from_le_bytes([msg.first().copied().unwrap_or(0), 0, 0, 0]),
        iv: &iv,
        seq: u64::from(a >> 2),
        seq_size,
    };
    let mut copy = msg.to_vec();
    if let Ok(m) = open_record(&mut Toy, &p, &mut copy) {
        assert!(m.len() + 24 <= msg.len() + seq_size);
    }
});
