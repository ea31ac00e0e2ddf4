//! SEV-TIO command buffer parser (the bytes the host hands the PSP), and the SPDM buffer,
//! data object, scatter list and status page parsers. The first byte picks the command ID.
#![no_main]

use coco_sevtio::{
    parse_scatter_list, parse_spdm_buffer, BufferHeader, Command, DataObjectHeader, TdiStatusPage,
    TioStatusPage, TIO_COMMANDS,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    // Mostly the commands the codec knows, sometimes a neighbouring (unknown) ID.
    let id = match TIO_COMMANDS.get(usize::from(sel % 20)) {
        Some(&id) => id,
        None => 0x0D0 + u16::from(sel),
    };
    let mut out = [0u8; 128];
    if let Ok(cmd) = Command::parse(id, rest) {
        assert_eq!(cmd.id(), id);
        let n = cmd.encode(&mut out).expect("a parsed command encodes");
        assert_eq!(&out[..n], rest);
    }
    if let Ok(b) = parse_spdm_buffer(rest) {
        assert!(b.body.len() + 16 <= b.header.payload_sz as usize);
    }
    let _ = BufferHeader::parse(rest);
    if let Ok((h, body)) = DataObjectHeader::parse(rest) {
        assert_eq!(body.len() + 16, h.length as usize);
    }
    if let Ok(l) = parse_scatter_list(rest) {
        assert_eq!(l.iter().count(), l.len());
    }
    if let Ok(p) = TioStatusPage::parse(rest) {
        let mut page = [0u8; 64];
        assert_eq!(p.encode(&mut page), Ok(64));
        assert_eq!(TioStatusPage::parse(&page), Ok(p));
    }
    let _ = TdiStatusPage::parse(rest);
});
