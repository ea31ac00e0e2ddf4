//! The socket protocol as QEMU speaks it, and random input that must never panic the model.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use coco_psp::psp::{serve, Psp};
use coco_psp::wire::{
    read_msg, write_msg, RootPortKey, OP_COMMAND, OP_DATA, OP_DMA_READ, OP_DMA_WRITE, OP_DONE,
    OP_RESULT, OP_ROOT_PORT_KEY, ROOT_PORT_KEY_SIZE,
};
use coco_psp::Logger;
use coco_sevtio::*;
use common::*;
use proptest::prelude::*;

/// QEMU's side: sends COMMAND, serves DMA from `mem`, returns DONE's status.
fn qemu_command(s: &mut TcpStream, mem: &mut [u8], cmd: u16, addr: u64) -> u32 {
    let mut p = Vec::new();
    p.extend_from_slice(&cmd.to_le_bytes());
    p.extend_from_slice(&[0; 6]);
    p.extend_from_slice(&addr.to_le_bytes());
    write_msg(s, OP_COMMAND, &p).unwrap();
    loop {
        let (op, p) = read_msg(s, 1 << 21).unwrap().unwrap();
        match op {
            OP_DMA_READ => {
                assert_eq!(p.len(), 12);
                let a = u64::from_le_bytes(p[..8].try_into().unwrap()) as usize;
                let l = u32::from_le_bytes(p[8..].try_into().unwrap()) as usize;
                let mut d = Vec::new();
                match mem.get(a..a + l) {
                    Some(b) => {
                        d.extend_from_slice(&0u32.to_le_bytes());
                        d.extend_from_slice(b);
                    }
                    None => d.extend_from_slice(&1u32.to_le_bytes()),
                }
                write_msg(s, OP_DATA, &d).unwrap();
            }
            OP_DMA_WRITE => {
                let a = u64::from_le_bytes(p[..8].try_into().unwrap()) as usize;
                let data = &p[8..];
                let r: u32 = match mem.get_mut(a..a + data.len()) {
                    Some(b) => {
                        b.copy_from_slice(data);
                        0
                    }
                    None => 1,
                };
                write_msg(s, OP_RESULT, &r.to_le_bytes()).unwrap();
            }
            OP_ROOT_PORT_KEY => {
                assert_eq!(p.len(), ROOT_PORT_KEY_SIZE);
                RootPortKey::parse(&p).unwrap();
                write_msg(s, OP_RESULT, &1u32.to_le_bytes()).unwrap();
            }
            OP_DONE => {
                assert_eq!(p.len(), 4);
                return u32::from_le_bytes(p[..4].try_into().unwrap());
            }
            other => panic!("unexpected op {other:#x}"),
        }
    }
}

fn put_cmd(mem: &mut [u8], c: &Command) {
    let mut b = [0u8; 128];
    let n = c.encode(&mut b).unwrap();
    mem[CMD as usize..CMD as usize + n].copy_from_slice(&b[..n]);
}

#[test]
fn socket_protocol() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (logger, lines) = Logger::capture();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut psp = Psp::new(Vec::<coco_psp::Fault>::new(), logger.clone());
        serve(stream, &mut psp, &logger)
    });
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut mem = vec![0u8; 0x40000];
    put_cmd(
        &mut mem,
        &Command::TioStatus {
            status_paddr: STATUS,
        },
    );
    assert_eq!(qemu_command(&mut s, &mut mem, SEV_CMD_TIO_STATUS, CMD), 0);
    let page = TioStatusPage::parse(&mem[STATUS as usize..STATUS as usize + 64]).unwrap();
    assert!(page.tio_en && !page.tio_init_done);
    put_cmd(&mut mem, &Command::TioInit);
    assert_eq!(qemu_command(&mut s, &mut mem, SEV_CMD_TIO_INIT, CMD), 0);
    put_cmd(
        &mut mem,
        &Command::DevCreate {
            dev_ctx: sla(DEV_CTX),
            device_id: RID,
            root_port_id: 1,
            segment: 0,
        },
    );
    assert_eq!(
        qemu_command(&mut s, &mut mem, SEV_CMD_TIO_DEV_CREATE, CMD),
        0
    );
    assert_eq!(&mem[DEV_CTX as usize..DEV_CTX as usize + 8], b"cocopsp\0");
    // A command buffer outside memory: DMA refused.
    assert_eq!(
        qemu_command(&mut s, &mut mem, SEV_CMD_TIO_INIT, 0x100_0000),
        u32::from(SEV_RET_INVALID_ADDRESS)
    );
    // DEV_CONNECT asks for a relay: GET_VERSION in the request buffer.
    put_cmd(&mut mem, &Rig::connect_cmd(1));
    assert_eq!(
        qemu_command(&mut s, &mut mem, SEV_CMD_TIO_DEV_CONNECT, CMD),
        u32::from(SEV_RET_SPDM_REQUEST)
    );
    let b = parse_spdm_buffer(&mem[REQ as usize..REQ as usize + 0x100]).unwrap();
    assert_eq!(b.object.data_type, SpdmDataType::Spdm);
    assert_eq!(b.body, &[0x10, 0x84, 0, 0]);
    // A protocol violation: an unknown op ends the connection.
    write_msg(&mut s, 0x77, &[]).unwrap();
    let r = server.join().unwrap();
    assert!(r.is_err());
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(lines.lock().unwrap().iter().any(|l| l.contains(
        "TIO_DEV_CONNECT (0xd4) at 0x1000 -> SPDM_REQUEST (0x32): relay 1: GET_VERSION"
    )));
    // A clean close ends serve() with Ok.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let (logger, _) = Logger::capture();
        let mut psp = Psp::new(Vec::<coco_psp::Fault>::new(), logger.clone());
        serve(stream, &mut psp, &logger)
    });
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // A COMMAND of the wrong size breaks the protocol.
    write_msg(&mut s, OP_COMMAND, &[0; 8]).unwrap();
    assert!(server.join().unwrap().is_err());
    s.flush().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let (logger, _) = Logger::capture();
        let mut psp = Psp::new(Vec::<coco_psp::Fault>::new(), logger.clone());
        serve(stream, &mut psp, &logger)
    });
    drop(TcpStream::connect(("127.0.0.1", port)).unwrap());
    assert!(server.join().unwrap().is_ok());
}

#[test]
fn root_port_key_layout() {
    let k = RootPortKey {
        requester_id: 0x0102,
        segment: 0,
        stream_id: 3,
        direction: 1,
        sub_stream: 2,
        key_set: 0,
        op: 1,
        key: [0xAB; 32],
        ifv: [0xCD; 8],
    };
    let b = k.encode();
    assert_eq!(&b[..8], &[2, 1, 0, 3, 1, 2, 0, 1]);
    assert_eq!(&b[8..40], &[0xAB; 32]);
    assert_eq!(&b[40..48], &[0xCD; 8]);
    assert_eq!(b.len(), 48);
    assert_eq!(RootPortKey::parse(&b), Some(k.clone()));
    assert!(!format!("{k:?}").contains("171"), "Debug shows no key");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random command buffers for every command ID change nothing they should not and never
    /// panic.
    #[test]
    fn random_command_buffers(cmd in 0xD0u16..0xE5, bytes in proptest::collection::vec(any::<u8>(), 0..128), init in any::<bool>()) {
        let mut r = Rig::default();
        if init {
            r.init();
        }
        r.host.put(CMD, &bytes);
        let st = r.issue_raw(cmd);
        prop_assert!(st <= 0x3F);
        prop_assert!(r.host.rp_ops.is_empty());
    }

    /// Garbage in the response buffer at any relay of DEV_CONNECT never panics and ends the
    /// command with SPDM_ERROR (or an earlier error), leaving nothing pending.
    #[test]
    fn garbage_relay_responses(at in 0usize..30, garbage in proptest::collection::vec(any::<u8>(), 0..200), raw in any::<bool>()) {
        let mut r = Rig::default();
        r.init();
        r.create();
        let c = Rig::connect_cmd(1);
        let mut st = r.issue(&c);
        let mut n = 0;
        while st == SEV_RET_SPDM_REQUEST && n < 200 {
            if n == at {
                if raw {
                    let mut g = garbage.clone();
                    g.resize(0x40, 0);
                    r.host.put(RESP, &g);
                } else {
                    let mut out = vec![0u8; 0x4000];
                    let len = encode_spdm_buffer(0x4000, DataObjectId::Response, SpdmDataType::Spdm, &garbage, &mut out).unwrap();
                    r.host.put(RESP, &out[..len]);
                }
                r.relays += 1;
            } else {
                r.relay();
            }
            st = r.issue(&c);
            n += 1;
        }
        prop_assert!(st == SEV_RET_SPDM_ERROR || st == SEV_RET_SUCCESS || st == SEV_RET_ERR_IN_DEV_CONN, "status {st:#x}");
        prop_assert!(!r.psp.relay_pending());
    }

    /// A valid TDI command buffer with one byte changed, on a connected device whose TDI is
    /// bound or not: never panics, relays end, nothing stays pending, the root port is not
    /// touched, and TIO_TDI_STATUS answers afterwards (SPDM_ERROR when a broken response
    /// buffer lost the session).
    #[test]
    fn mutated_tdi_command_buffers(kind in 0usize..6, at in 0usize..80, value in any::<u8>(), bound in any::<bool>()) {
        let mut r = Rig::default();
        prop_assert_eq!(r.connected(1), SEV_RET_SUCCESS);
        prop_assert_eq!(r.issue(&tdi_cmd(0)), SEV_RET_SUCCESS);
        if bound {
            prop_assert_eq!(r.run(&tdi_cmd(2)), SEV_RET_SUCCESS);
        }
        let ops = r.host.rp_ops.len();
        let c = tdi_cmd(kind);
        let mut buf = [0u8; 128];
        let n = c.encode(&mut buf).unwrap();
        if let Some(b) = buf.get_mut(at % n) {
            *b = value;
        }
        r.host.put(CMD, &buf[..n]);
        let mut st = r.issue_raw(c.id());
        let mut relays = 0;
        while st == SEV_RET_SPDM_REQUEST && relays < 100 {
            r.relay();
            st = r.issue_raw(c.id());
            relays += 1;
        }
        prop_assert!(st <= 0x3F, "status {st:#x}");
        prop_assert!(!r.psp.relay_pending());
        prop_assert_eq!(r.host.rp_ops.len(), ops);
        let st = r.run(&tdi_cmd(5));
        prop_assert!(
            matches!(st, SEV_RET_SUCCESS | SEV_RET_INVALID_TDI_CTX | SEV_RET_SPDM_ERROR),
            "status {st:#x}"
        );
    }

    /// Garbage in the response buffer at any of the five relays of TIO_TDI_BIND (VERSION,
    /// CAPABILITIES, LOCK, the one-portion report, STATE): SPDM_ERROR, the TDI left unbound,
    /// nothing pending.
    #[test]
    fn garbage_tdi_bind_responses(at in 0usize..5, garbage in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut r = Rig::default();
        prop_assert_eq!(r.connected(1), SEV_RET_SUCCESS);
        prop_assert_eq!(r.issue(&tdi_cmd(0)), SEV_RET_SUCCESS);
        let c = tdi_cmd(2);
        let mut st = r.issue(&c);
        let mut n = 0;
        while st == SEV_RET_SPDM_REQUEST && n < 100 {
            if n == at {
                let mut out = vec![0u8; 0x4000];
                let len = encode_spdm_buffer(0x4000, DataObjectId::Response, SpdmDataType::SecuredSpdm, &garbage, &mut out).unwrap();
                r.host.put(RESP, &out[..len]);
                r.relays += 1;
            } else {
                r.relay();
            }
            st = r.issue(&c);
            n += 1;
        }
        prop_assert_eq!(st, SEV_RET_SPDM_ERROR);
        prop_assert!(!r.psp.relay_pending());
        prop_assert_eq!(r.issue(&tdi_cmd(3)), SEV_RET_INVALID_TDI_STATE);
    }
}

const TDI_CTX: u64 = 0x5000;

/// The TDI commands: 0 CREATE, 1 RECLAIM, 2 BIND, 3 REPORT, 4 UNBIND, 5 STATUS.
fn tdi_cmd(kind: usize) -> Command {
    let (dev_ctx, tdi_ctx, spdm) = (sla(DEV_CTX), sla(TDI_CTX), Rig::spdm());
    match kind {
        0 => Command::TdiCreate {
            dev_ctx,
            tdi_ctx,
            interface_id: InterfaceId::new(RID, None),
        },
        1 => Command::TdiReclaim { dev_ctx, tdi_ctx },
        2 => Command::TdiBind {
            spdm,
            dev_ctx,
            tdi_ctx,
            gctx_paddr: 0x7000,
            guest_device_id: 8,
            lock_flags: 1,
            run_flags: 0,
        },
        3 => Command::TdiReport {
            spdm,
            dev_ctx,
            tdi_ctx,
            gctx_paddr: 0x7000,
        },
        4 => Command::TdiUnbind {
            force: false,
            spdm,
            dev_ctx,
            tdi_ctx,
            gctx_paddr: 0x7000,
        },
        _ => Command::TdiStatus {
            spdm,
            dev_ctx,
            tdi_ctx,
            status_paddr: STATUS,
        },
    }
}
