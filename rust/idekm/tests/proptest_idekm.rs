//! Property tests for the IDE_KM codec: round trips of every message, and no byte string makes
//! a parser panic.

use coco_idekm::*;
use proptest::prelude::*;

fn sub() -> impl Strategy<Value = KeySubStream> {
    (0u8..2, any::<bool>(), 0u8..3).prop_map(|(ks, tx, s)| {
        let dir = if tx { Direction::Tx } else { Direction::Rx };
        KeySubStream::new(ks, dir, SubStream::from_index(s).unwrap())
    })
}

fn message() -> impl Strategy<Value = (u8, Vec<u8>)> {
    // (object id, encoded bytes) built through the encoders.
    prop_oneof![
        any::<u8>().prop_map(|p| {
            let mut b = [0u8; 3];
            encode_query(p, &mut b).unwrap();
            (IDE_KM_QUERY, b.to_vec())
        }),
        (
            any::<u8>(),
            sub(),
            any::<u8>(),
            any::<[u8; 32]>(),
            any::<[u8; 8]>()
        )
            .prop_map(|(stream_id, sub, port_index, key, ifv)| {
                let k = KeyProg {
                    stream_id,
                    sub,
                    port_index,
                    key,
                    ifv,
                };
                let mut b = [0u8; IDE_KM_KEY_PROG_SIZE];
                encode_key_prog(&k, &mut b).unwrap();
                (IDE_KM_KEY_PROG, b.to_vec())
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// The key_sub_stream byte round trips and its fields come back.
    #[test]
    fn key_sub_stream_fields(ks in 0u8..2, tx: bool, s in 0u8..3) {
        let dir = if tx { Direction::Tx } else { Direction::Rx };
        let ss = SubStream::from_index(s).unwrap();
        let k = KeySubStream::new(ks, dir, ss);
        prop_assert_eq!(KeySubStream::from_raw(k.raw()), Ok(k));
        prop_assert_eq!(k.key_set(), ks);
        prop_assert_eq!(k.direction(), dir);
        prop_assert_eq!(k.sub_stream(), ss);
        prop_assert_eq!(k.raw() & 2 != 0, tx);
        prop_assert_eq!(k.raw() >> 4, s);
        prop_assert_eq!(pair_from_index(k.pair_index()), Some((dir, ss)));
    }

    /// Reserved key_sub_stream values are rejected.
    #[test]
    fn key_sub_stream_reserved(raw: u8) {
        let ok = raw & 0x0C == 0 && (raw >> 4) <= 2;
        prop_assert_eq!(KeySubStream::from_raw(raw).is_ok(), ok);
    }

    /// QUERY, KEY_PROG, KP_ACK and the key set commands round trip through parse_message and
    /// IdeKmMessage::encode; one byte more or less is rejected.
    #[test]
    fn fixed_messages_roundtrip(stream_id: u8, sub in sub(), port_index: u8, status: u8,
                                key: [u8; 32], ifv: [u8; 8], which in 0usize..6) {
        let msg = match which {
            0 => IdeKmMessage::Query(Query { port_index }),
            1 => IdeKmMessage::KeyProg(KeyProg { stream_id, sub, port_index, key, ifv }),
            2 => IdeKmMessage::KpAck(KpAck { stream_id, status, sub, port_index }),
            3 => IdeKmMessage::KSetGo(KeySetCmd { stream_id, sub, port_index }),
            4 => IdeKmMessage::KSetStop(KeySetCmd { stream_id, sub, port_index }),
            _ => IdeKmMessage::GoStopAck(KeySetCmd { stream_id, sub, port_index }),
        };
        let mut out = [0u8; 64];
        let n = msg.encode(&mut out).unwrap();
        prop_assert_eq!(out[0], msg.object_id());
        let parsed = parse_message(&out[..n]).unwrap();
        prop_assert_eq!(&parsed, &msg);
        prop_assert!(parse_message(&out[..n - 1]).is_err());
        prop_assert_eq!(parse_message(&out[..n + 1]), Err(IdeKmError::TrailingBytes));
        prop_assert_eq!(msg.encode(&mut out[..n - 1]), Err(IdeKmError::BufferTooSmall));
    }

    /// QUERY_RESP round trips with any register dump.
    #[test]
    fn query_resp_roundtrip(info in (any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>(), any::<u8>()),
                            regs in proptest::collection::vec(any::<u32>(), 0..64)) {
        let info = PortInfo { port_index: info.0, dev_func: info.1, bus: info.2, segment: info.3, max_port_index: info.4 };
        let mut out = vec![0u8; 7 + 4 * regs.len()];
        let n = encode_query_resp(&info, &regs, &mut out).unwrap();
        prop_assert_eq!(n, out.len());
        let r = parse_query_resp(&out).unwrap();
        prop_assert_eq!(r.info, info);
        prop_assert_eq!(r.reg_count(), regs.len());
        for (i, v) in regs.iter().enumerate() {
            prop_assert_eq!(r.reg(i), Some(*v));
        }
        let mut again = vec![0u8; n];
        prop_assert_eq!(IdeKmMessage::QueryResp(r).encode(&mut again), Ok(n));
        prop_assert_eq!(again, out.clone());
        if !regs.is_empty() {
            prop_assert_eq!(parse_query_resp(&out[..n - 1]).map(|_| ()), Err(IdeKmError::InvalidLength));
        }
    }

    /// A register dump built from a layout parses, and reports that layout; any other length
    /// is rejected.
    #[test]
    fn ide_regs_layout(link in proptest::option::of(0u32..8), sel in proptest::collection::vec(0u32..16, 0..6),
                       stream_ids in proptest::collection::vec(any::<u8>(), 6), extra in 1usize..3) {
        let mut cap = IDE_CAP_IDE_KM;
        if let Some(tcs) = link { cap |= IDE_CAP_LINK | (tcs << IDE_CAP_LINK_TC_SHIFT); }
        if !sel.is_empty() { cap |= IDE_CAP_SELECTIVE | ((sel.len() as u32 - 1) << IDE_CAP_SEL_NUM_SHIFT); }
        let mut regs = vec![cap, 0];
        for _ in 0..link.map_or(0, |t| t + 1) { regs.extend([0, 0]); }
        for (i, &n) in sel.iter().enumerate() {
            regs.extend([n, (u32::from(stream_ids[i]) << 24) | 1, 2, 0, 0]);
            for _ in 0..n { regs.extend([1, 2, 3]); }
        }
        let bytes: Vec<u8> = regs.iter().flat_map(|r| r.to_le_bytes()).collect();
        let v = IdeRegs::parse(&bytes).unwrap();
        prop_assert_eq!(v.num_link(), link.map_or(0, |t| t as usize + 1));
        prop_assert_eq!(v.num_selective(), sel.len());
        for (i, &n) in sel.iter().enumerate() {
            let b = v.selective(i).unwrap();
            prop_assert_eq!(b.addr_assoc_count(), n as usize);
            prop_assert_eq!(b.stream_id(), stream_ids[i]);
            prop_assert!(b.enabled());
            prop_assert_eq!(b.state(), IDE_STATE_SECURE);
            if n > 0 { prop_assert_eq!(b.addr(n as usize - 1), Some((1, 2, 3))); }
            prop_assert_eq!(b.addr(n as usize), None);
        }
        prop_assert!(v.selective(sel.len()).is_none());
        let mut longer = bytes.clone();
        longer.extend(std::iter::repeat_n(0u8, 4 * extra));
        prop_assert_eq!(IdeRegs::parse(&longer), Err(IdeKmError::InvalidLength));
        prop_assert!(IdeRegs::parse(&bytes[..bytes.len() - 4]).is_err());
    }

    /// No input makes a parser panic.
    #[test]
    fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..128)) {
        if let Ok(m) = parse_message(&data) {
            let mut out = vec![0u8; data.len()];
            // Reserved bytes are written as zero, so the encoding has the same size.
            prop_assert_eq!(m.encode(&mut out), Ok(data.len()));
            prop_assert_eq!(parse_message(&out), Ok(m));
        }
        if let Ok(v) = IdeRegs::parse(&data) {
            for i in 0..v.num_selective() + 1 {
                if let Some(b) = v.selective(i) { let _ = b.addr(0); let _ = b.stream_id(); }
                let _ = v.link(i);
            }
        }
    }

    /// A valid message with one byte changed never makes a parser panic.
    #[test]
    fn mutated_messages(m in message(), pos: usize, val: u8) {
        let (_, mut bytes) = m;
        let i = pos % bytes.len();
        bytes[i] = val;
        let _ = parse_message(&bytes);
    }
}

#[test]
fn key_prog_debug_hides_the_key() {
    let mut k = KeyProg {
        stream_id: 1,
        sub: KeySubStream::new(0, Direction::Rx, SubStream::Pr),
        port_index: 0,
        key: [0xAB; 32],
        ifv: [0xCD; 8],
    };
    let s = format!("{k:?}");
    assert!(
        !s.contains("171") && !s.to_lowercase().contains("ab, "),
        "{s}"
    );
    k.wipe();
    assert_eq!(k.key, [0; 32]);
    assert_eq!(k.ifv, [0; 8]);
}

#[test]
fn layouts_match_the_specification() {
    // KEY_PROG K1 | TX | CPL for stream 5, port 0.
    let k = KeyProg {
        stream_id: 5,
        sub: KeySubStream::new(1, Direction::Tx, SubStream::Cpl),
        port_index: 0,
        key: core::array::from_fn(|i| i as u8),
        ifv: [0xEE; 8],
    };
    let mut b = [0u8; 47];
    encode_key_prog(&k, &mut b).unwrap();
    assert_eq!(&b[..7], &[2, 0, 0, 5, 0, 0x23, 0]);
    assert_eq!(b[7], 0);
    assert_eq!(b[38], 31);
    assert_eq!(&b[39..], &[0xEE; 8]);
    let mut a = [0u8; 7];
    encode_kp_ack(
        &KpAck {
            stream_id: 5,
            status: 3,
            sub: k.sub,
            port_index: 0,
        },
        &mut a,
    )
    .unwrap();
    assert_eq!(a, [3, 0, 0, 5, 3, 0x23, 0]);
    encode_key_set_cmd(
        IDE_KM_K_SET_GO,
        &KeySetCmd {
            stream_id: 5,
            sub: KeySubStream::new(0, Direction::Rx, SubStream::Npr),
            port_index: 0,
        },
        &mut a,
    )
    .unwrap();
    assert_eq!(a, [4, 0, 0, 5, 0, 0x10, 0]);
    assert_eq!(
        encode_key_set_cmd(
            IDE_KM_KP_ACK,
            &KeySetCmd {
                stream_id: 5,
                sub: k.sub,
                port_index: 0
            },
            &mut a
        ),
        Err(IdeKmError::UnexpectedObject)
    );
    assert_eq!(parse_query(&[0, 0, 0]), Ok(Query { port_index: 0 }));
    assert_eq!(parse_query(&[1, 0, 0]), Err(IdeKmError::UnexpectedObject));
    assert_eq!(parse_message(&[7, 0, 0]), Err(IdeKmError::UnexpectedObject));
    assert_eq!(parse_message(&[]), Err(IdeKmError::TooShort));
}
