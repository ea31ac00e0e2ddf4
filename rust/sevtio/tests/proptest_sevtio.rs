//! Property tests for the SEV-TIO codec: round trips of every command, the SPDM buffer and data
//! object headers, SLAs, scatter lists, status pages and the mailbox register; truncated,
//! oversized and altered inputs are rejected; no byte string makes a parser panic.

use coco_sevtio::*;
use proptest::prelude::*;

fn any_sla() -> impl Strategy<Value = Sla> {
    (any::<bool>(), any::<bool>(), 0..=Sla::PFN_MAX).prop_map(|(scatter, big, pfn)| {
        let t = if scatter {
            SlaPageType::Scatter
        } else {
            SlaPageType::Data
        };
        let s = if big {
            SlaPageSize::Size2M
        } else {
            SlaPageSize::Size4K
        };
        Sla::new(t, s, pfn).unwrap()
    })
}

/// A context SLA: neither NULL nor EOL.
fn ctx_sla() -> impl Strategy<Value = Sla> {
    any_sla().prop_filter("context SLA", |s| !s.is_null() && !s.is_eol())
}

/// An SPDM buffer SLA: anything but EOL (NULL means no buffer), NULL often.
fn buf_sla() -> impl Strategy<Value = Sla> {
    prop_oneof![
        1 => Just(Sla::NULL),
        4 => any_sla().prop_filter("buffer SLA", |s| !s.is_eol()),
    ]
}

fn spdm_ctrl() -> impl Strategy<Value = SpdmCtrl> {
    (buf_sla(), buf_sla(), buf_sla(), buf_sla()).prop_map(|(req, resp, scratch, output)| SpdmCtrl {
        req,
        resp,
        scratch,
        output,
    })
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        any::<u64>().prop_map(|status_paddr| Command::TioStatus { status_paddr }),
        Just(Command::TioInit),
        (ctx_sla(), any::<u16>(), any::<u16>(), any::<u8>()).prop_map(
            |(dev_ctx, device_id, root_port_id, segment)| Command::DevCreate {
                dev_ctx,
                device_id,
                root_port_id,
                segment
            }
        ),
        ctx_sla().prop_map(|dev_ctx| Command::DevReclaim { dev_ctx }),
        (
            spdm_ctrl(),
            ctx_sla(),
            any::<u8>(),
            0..=CERT_SLOT_MAX,
            any::<[u8; 8]>()
        )
            .prop_map(|(spdm, dev_ctx, tc, cert_slot, ide_stream_id)| {
                Command::DevConnect {
                    spdm,
                    dev_ctx,
                    tc_mask: tc | 1,
                    cert_slot,
                    ide_stream_id,
                }
            }),
        (any::<bool>(), spdm_ctrl(), ctx_sla()).prop_map(|(force, spdm, dev_ctx)| {
            Command::DevDisconnect {
                force,
                spdm,
                dev_ctx,
            }
        }),
        (ctx_sla(), any::<u64>()).prop_map(|(dev_ctx, status_paddr)| Command::DevStatus {
            dev_ctx,
            status_paddr
        }),
        (any::<bool>(), spdm_ctrl(), ctx_sla(), any::<[u8; 32]>()).prop_map(
            |(raw_bitstream, spdm, dev_ctx, nonce)| Command::DevMeasurements {
                raw_bitstream,
                spdm,
                dev_ctx,
                nonce
            }
        ),
        (spdm_ctrl(), ctx_sla())
            .prop_map(|(spdm, dev_ctx)| Command::DevCertificates { spdm, dev_ctx }),
        (
            ctx_sla(),
            ctx_sla(),
            0u32..=InterfaceId::FUNCTION_ID_DEFINED
        )
            .prop_map(|(dev_ctx, tdi_ctx, function_id)| Command::TdiCreate {
                dev_ctx,
                tdi_ctx,
                interface_id: InterfaceId { function_id },
            }),
        (ctx_sla(), ctx_sla())
            .prop_map(|(dev_ctx, tdi_ctx)| Command::TdiReclaim { dev_ctx, tdi_ctx }),
        (
            spdm_ctrl(),
            ctx_sla(),
            ctx_sla(),
            any::<u64>(),
            any::<u16>(),
            0u16..=TIO_TDI_BIND_LOCK_FLAGS_DEFINED,
            0u16..=TIO_TDI_BIND_RUN_FORCE
        )
            .prop_map(
                |(spdm, dev_ctx, tdi_ctx, gctx_paddr, guest_device_id, lock_flags, run_flags)| {
                    Command::TdiBind {
                        spdm,
                        dev_ctx,
                        tdi_ctx,
                        gctx_paddr,
                        guest_device_id,
                        lock_flags,
                        run_flags,
                    }
                }
            ),
        (
            any::<bool>(),
            spdm_ctrl(),
            ctx_sla(),
            ctx_sla(),
            any::<u64>()
        )
            .prop_map(
                |(force, spdm, dev_ctx, tdi_ctx, gctx_paddr)| Command::TdiUnbind {
                    force,
                    spdm,
                    dev_ctx,
                    tdi_ctx,
                    gctx_paddr
                }
            ),
        (spdm_ctrl(), ctx_sla(), ctx_sla(), any::<u64>()).prop_map(
            |(spdm, dev_ctx, tdi_ctx, gctx_paddr)| Command::TdiReport {
                spdm,
                dev_ctx,
                tdi_ctx,
                gctx_paddr
            }
        ),
        (spdm_ctrl(), ctx_sla(), ctx_sla(), any::<u64>()).prop_map(
            |(spdm, dev_ctx, tdi_ctx, status_paddr)| Command::TdiStatus {
                spdm,
                dev_ctx,
                tdi_ctx,
                status_paddr
            }
        ),
        (ctx_sla(), ctx_sla(), any::<u64>()).prop_map(|(dev_ctx, tdi_ctx, status_paddr)| {
            Command::TdiInfo {
                dev_ctx,
                tdi_ctx,
                status_paddr,
            }
        }),
    ]
}

/// A command ID: mostly the ones the codec knows, sometimes anything the 11-bit field holds.
fn command_id() -> impl Strategy<Value = u16> {
    prop_oneof![
        4 => proptest::sample::select(TIO_COMMANDS.to_vec()),
        1 => 0u16..=SEV_CMD_MAX,
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Every command round trips; its length field is its size; one byte less or more, a wrong
    /// length field, or a too-small output buffer are rejected.
    #[test]
    fn command_roundtrip(cmd in command()) {
        let mut out = [0u8; 160];
        let n = cmd.encode(&mut out).unwrap();
        prop_assert_eq!(Some(n), command_size(cmd.id()));
        prop_assert_eq!(n, cmd.size());
        prop_assert!(n <= SEV_TIO_MAX_COMMAND_LENGTH);
        prop_assert_eq!(peek_length(&out[..n]), Some(n as u32));
        prop_assert_eq!(Command::parse(cmd.id(), &out[..n]), Ok(cmd));
        prop_assert_eq!(Command::parse(cmd.id(), &out[..n - 1]), Err(SevTioError::TooShort));
        prop_assert_eq!(Command::parse(cmd.id(), &out[..n + 1]), Err(SevTioError::TrailingBytes));
        prop_assert_eq!(Command::parse(cmd.id(), &[]), Err(SevTioError::TooShort));
        prop_assert_eq!(cmd.encode(&mut out[..n - 1]), Err(SevTioError::BufferTooSmall));
        let mut bad = out;
        bad[0..4].copy_from_slice(&(n as u32 + 8).to_le_bytes());
        prop_assert_eq!(Command::parse(cmd.id(), &bad[..n]), Err(SevTioError::InvalidLength));
        // Read under another command's ID, the buffer is rejected unless that command has the
        // same size (and then the bytes decide).
        for other in TIO_COMMANDS {
            if command_size(other) != Some(n) {
                prop_assert!(Command::parse(other, &out[..n]).is_err());
            }
        }
    }

    /// Flipping any bit of an encoded command gives either an error or a different command
    /// that encodes to exactly the altered bytes: no reserved byte or bit is ignored.
    #[test]
    fn command_bit_flips(cmd in command(), byte in 0usize..80, bit in 0u8..8) {
        let mut out = [0u8; 80];
        let n = cmd.encode(&mut out).unwrap();
        let byte = byte % n;
        out[byte] ^= 1 << bit;
        if let Ok(c) = Command::parse(cmd.id(), &out[..n]) {
            prop_assert_ne!(c, cmd);
            let mut again = [0u8; 80];
            prop_assert_eq!(c.encode(&mut again), Ok(n));
            prop_assert_eq!(&again[..n], &out[..n]);
        }
    }

    /// No input makes the command parser panic; what parses re-encodes to the same bytes.
    #[test]
    fn command_parse_never_panics(id in command_id(), data in proptest::collection::vec(any::<u8>(), 0..130)) {
        if let Ok(c) = Command::parse(id, &data) {
            prop_assert_eq!(c.id(), id);
            let mut out = [0u8; 128];
            let n = c.encode(&mut out).unwrap();
            prop_assert_eq!(&out[..n], &data[..]);
        }
    }

    /// Inputs of the right size with a correct length field and random contents: whatever
    /// parses re-encodes byte for byte (this reaches the field checks far more often).
    #[test]
    fn command_parse_right_size(id in proptest::sample::select(TIO_COMMANDS.to_vec()),
                                mut data in proptest::collection::vec(any::<u8>(), 80),
                                zero_rsvd in any::<bool>()) {
        let size = command_size(id).unwrap();
        data.truncate(size);
        data[0..4].copy_from_slice(&(size as u32).to_le_bytes());
        if zero_rsvd {
            // Clear bytes 4..8 (reserved or flags in every command) to get further.
            data[4..8].fill(0);
        }
        if let Ok(c) = Command::parse(id, &data) {
            let mut out = [0u8; 128];
            prop_assert_eq!(c.encode(&mut out), Ok(size));
            prop_assert_eq!(&out[..size], &data[..]);
        }
    }

    /// SLAs round trip through their raw value; a raw value is accepted exactly when no
    /// reserved bit is set.
    #[test]
    fn sla_roundtrip(s in any_sla(), raw: u64, pfn: u64) {
        prop_assert_eq!(Sla::from_u64(s.as_u64()), Ok(s));
        prop_assert_eq!(Sla::new(s.page_type(), s.page_size(), s.pfn()), Some(s));
        prop_assert_eq!(s.address(), s.pfn() << 12);
        match Sla::from_u64(raw) {
            Ok(v) => {
                prop_assert_eq!(raw & Sla::RESERVED_MASK, 0);
                prop_assert_eq!(v.as_u64(), raw);
            }
            Err(e) => {
                prop_assert_eq!(e, SevTioError::InvalidSla);
                prop_assert_ne!(raw & Sla::RESERVED_MASK, 0);
            }
        }
        let d = Sla::data_4k(pfn);
        prop_assert_eq!(d.is_some(), pfn <= Sla::PFN_MAX);
        if let Some(d) = d {
            prop_assert_eq!(d.pfn(), pfn);
            prop_assert_eq!(d.page_type(), SlaPageType::Data);
            prop_assert_eq!(d.page_size(), SlaPageSize::Size4K);
            prop_assert_eq!(d.is_eol(), pfn == Sla::PFN_MAX);
        }
    }

    /// Buffer headers round trip; a header whose payload does not fit its capacity, or is not
    /// a multiple of 32, is rejected; truncated headers are rejected.
    #[test]
    fn buffer_header_roundtrip(capacity_sz: u32, payload_sz: u32, encrypted: bool, iv: [u8; 16], authtag: [u8; 16]) {
        let h = BufferHeader { capacity_sz, payload_sz, encrypted, iv, authtag };
        let mut out = [0u8; 64];
        let valid = payload_sz % 32 == 0 && capacity_sz >= 64 && payload_sz <= capacity_sz - 64;
        match h.encode(&mut out) {
            Ok(n) => {
                prop_assert!(valid);
                prop_assert_eq!(n, SLA_BUFFER_HEADER_SIZE);
                prop_assert_eq!(BufferHeader::parse(&out), Ok(h));
                prop_assert_eq!(BufferHeader::parse(&out[..63]), Err(SevTioError::TooShort));
                prop_assert_eq!(h.encode(&mut out[..63]), Err(SevTioError::BufferTooSmall));
            }
            Err(e) => {
                prop_assert!(!valid);
                prop_assert!(e == SevTioError::Misaligned || e == SevTioError::CapacityExceeded);
            }
        }
    }

    /// Data object headers round trip with their body; a length beyond the input or below the
    /// header is rejected.
    #[test]
    fn data_object_roundtrip(resp: bool, secured: bool, minor: u8, major: u8,
                             body in proptest::collection::vec(any::<u8>(), 0..100)) {
        let id = if resp { DataObjectId::Response } else { DataObjectId::Request };
        let data_type = if secured { SpdmDataType::SecuredSpdm } else { SpdmDataType::Spdm };
        let h = DataObjectHeader { id, length: 16 + body.len() as u32, minor, major, data_type };
        let mut bytes = h.to_bytes().to_vec();
        bytes.extend_from_slice(&body);
        let (p, b) = DataObjectHeader::parse(&bytes).unwrap();
        prop_assert_eq!(p, h);
        prop_assert_eq!(b, &body[..]);
        prop_assert_eq!(DataObjectHeader::parse(&bytes[..bytes.len() - 1]), Err(SevTioError::TooShort));
        let mut short = bytes.clone();
        short[4..8].copy_from_slice(&15u32.to_le_bytes());
        prop_assert_eq!(DataObjectHeader::parse(&short), Err(SevTioError::InvalidLength));
        let mut bad = bytes.clone();
        bad[0] = 3;
        prop_assert_eq!(DataObjectHeader::parse(&bad), Err(SevTioError::UnknownObjectId));
        let mut bad = bytes.clone();
        bad[10] = 0;
        prop_assert_eq!(DataObjectHeader::parse(&bad), Err(SevTioError::UnknownDataType));
        let mut bad = bytes;
        bad[15] = 1;
        prop_assert_eq!(DataObjectHeader::parse(&bad), Err(SevTioError::Reserved));
    }

    /// SPDM buffers round trip; a RESP object is padded to 32 bytes, a REQ object is exact;
    /// the payload size is always a multiple of 32.
    #[test]
    fn spdm_buffer_roundtrip(resp: bool, secured: bool, msg in proptest::collection::vec(any::<u8>(), 0..300),
                             slack in 0u32..4096) {
        let id = if resp { DataObjectId::Response } else { DataObjectId::Request };
        let data_type = if secured { SpdmDataType::SecuredSpdm } else { SpdmDataType::Spdm };
        let object_len = if resp { resp_object_len(msg.len()).unwrap() as usize } else { 16 + msg.len() };
        let payload = align32(object_len).unwrap();
        let capacity = (64 + payload) as u32 + slack;
        let mut out = vec![0xA5u8; 64 + payload + 8];
        let n = encode_spdm_buffer(capacity, id, data_type, &msg, &mut out).unwrap();
        prop_assert_eq!(n, 64 + payload);
        let b = parse_spdm_buffer(&out[..n]).unwrap();
        prop_assert_eq!(b.header.capacity_sz, capacity);
        prop_assert_eq!(b.header.payload_sz as usize, payload);
        prop_assert_eq!(b.header.payload_sz % 32, 0);
        prop_assert_eq!(b.object.id, id);
        prop_assert_eq!(b.object.data_type, data_type);
        prop_assert_eq!(b.object.length as usize, object_len);
        prop_assert_eq!(&b.body[..msg.len()], &msg[..]);
        prop_assert!(b.body[msg.len()..].iter().all(|&x| x == 0));
        prop_assert!(out[64 + object_len..n].iter().all(|&x| x == 0));
        // Truncated: the payload is missing.
        prop_assert_eq!(parse_spdm_buffer(&out[..n - 1]).map(|_| ()), Err(SevTioError::TooShort));
        // Output too small, capacity too small.
        prop_assert_eq!(encode_spdm_buffer(capacity, id, data_type, &msg, &mut out[..n - 1]), Err(SevTioError::BufferTooSmall));
        prop_assert_eq!(encode_spdm_buffer(n as u32 - 1, id, data_type, &msg, &mut out), Err(SevTioError::CapacityExceeded));
        // An object longer than the payload.
        let n = encode_spdm_buffer(capacity, id, data_type, &msg, &mut out).unwrap();
        out[0x44..0x48].copy_from_slice(&(payload as u32 + 1).to_le_bytes());
        prop_assert_eq!(parse_spdm_buffer(&out[..n]).map(|_| ()), Err(SevTioError::InvalidLength));
    }

    /// Scatter lists round trip; the EOL marker is required.
    #[test]
    fn scatter_list_roundtrip(pfns in proptest::collection::vec(1u64..Sla::PFN_MAX, 1..40)) {
        let entries: Vec<Sla> = pfns.iter().map(|&p| Sla::data_4k(p).unwrap()).collect();
        let mut page = vec![0u8; 4096];
        let n = encode_scatter_list(&entries, &mut page).unwrap();
        prop_assert_eq!(n, (entries.len() + 1) * 8);
        let l = parse_scatter_list(&page).unwrap();
        prop_assert_eq!(l.len(), entries.len());
        prop_assert_eq!(l.iter().collect::<Vec<_>>(), entries.clone());
        prop_assert_eq!(parse_scatter_list(&page[..n - 1]).map(|_| ()), Err(SevTioError::InvalidScatterList));
        prop_assert_eq!(encode_scatter_list(&entries, &mut page[..n - 1]), Err(SevTioError::BufferTooSmall));
    }

    /// Status pages round trip.
    #[test]
    fn status_pages_roundtrip(v in proptest::collection::vec(any::<u32>(), 11), en: bool, done: bool, state in 0u8..4) {
        let p = TioStatusPage {
            tio_en: en,
            tio_init_done: done,
            spdm_req_size_min: v[0],
            spdm_req_size_max: v[1],
            spdm_scratch_size_min: v[2],
            spdm_scratch_size_max: v[3],
            spdm_out_size_min: v[4],
            spdm_out_size_max: v[5],
            spdm_rsp_size_min: v[6],
            spdm_rsp_size_max: v[7],
            devctx_size: v[8],
            tdictx_size: v[9],
            tio_crypto_alg: v[10],
        };
        let mut out = [0u8; 64];
        prop_assert_eq!(p.encode(&mut out), Ok(TIO_STATUS_PAGE_SIZE));
        prop_assert_eq!(TioStatusPage::parse(&out), Ok(p));
        prop_assert_eq!(TioStatusPage::parse(&out[..63]), Err(SevTioError::TooShort));
        prop_assert_eq!(p.encode(&mut out[..63]), Err(SevTioError::BufferTooSmall));
        let t = TdiStatusPage { state: TdiState::from_u8(state).unwrap() };
        prop_assert_eq!(t.encode(&mut out), Ok(TDI_STATUS_PAGE_SIZE));
        prop_assert_eq!(TdiStatusPage::parse(&out[..16]), Ok(t));
        prop_assert_eq!(TdiStatusPage::parse(&out[..15]), Err(SevTioError::TooShort));
    }

    /// The mailbox register: requests round trip, completions carry the status.
    #[test]
    fn mailbox_roundtrip(cmd in 0u16..=SEV_CMD_MAX, ioc: bool, status: u16, recovery: bool, pa: u64, reg: u32) {
        let r = cmdresp_request(cmd, ioc).unwrap();
        prop_assert_eq!(parse_cmdresp_request(r), Ok(CmdRespRequest { command: cmd, ioc }));
        prop_assert_eq!(parse_cmdresp_response(r), None);
        let done = cmdresp_response(r, status, recovery);
        prop_assert_eq!(parse_cmdresp_response(done), Some(CmdRespStatus { status, recovery }));
        prop_assert_eq!(done & SEV_CMDRESP_CMD_MASK, r & SEV_CMDRESP_CMD_MASK);
        let (lo, hi) = cmdbuff_addr_split(pa);
        prop_assert_eq!(cmdbuff_addr_join(lo, hi), pa);
        if let Ok(req) = parse_cmdresp_request(reg) {
            prop_assert_eq!(cmdresp_request(req.command, req.ioc), Some(reg));
        }
    }

    /// No input makes the other parsers panic.
    #[test]
    fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = BufferHeader::parse(&data);
        if let Ok(b) = parse_spdm_buffer(&data) {
            prop_assert!(b.body.len() + 16 <= b.header.payload_sz as usize);
        }
        if let Ok((h, body)) = DataObjectHeader::parse(&data) {
            prop_assert_eq!(body.len() + 16, h.length as usize);
        }
        if let Ok(l) = parse_scatter_list(&data) {
            prop_assert!(!l.is_empty());
            prop_assert_eq!(l.iter().count(), l.len());
        }
        if let Ok(p) = TioStatusPage::parse(&data) {
            let mut out = [0u8; 64];
            prop_assert_eq!(p.encode(&mut out), Ok(64));
            prop_assert_eq!(TioStatusPage::parse(&out), Ok(p));
        }
        let _ = TdiStatusPage::parse(&data);
    }
}
