//! IDE_KM message parser (what an IDE_KM responder sends back: QUERY_RESP, KP_ACK,
//! K_GOSTOP_ACK) and the IDE register view of QUERY_RESP.
#![no_main]

use coco_idekm::{parse_message, IdeKmMessage, IdeRegs};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = parse_message(data) {
        let mut out = [0u8; 1024];
        if data.len() <= out.len() {
            assert_eq!(msg.encode(&mut out), Ok(data.len()));
        }
        if let IdeKmMessage::QueryResp(r) = msg {
            if let Ok(regs) = r.ide_regs() {
                for i in 0..=regs.num_selective() {
                    if let Some(b) = regs.selective(i) {
                        for j in 0..=b.addr_assoc_count() {
                            let _ = b.addr(j);
                        }
                    }
                    let _ = regs.link(i);
                }
            }
        }
    }
    let _ = IdeRegs::parse(data);
});
