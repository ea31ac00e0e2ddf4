//! The firmware model against an in-process host, QEMU and coco-endpoint.

mod common;

use coco_endpoint::pki::{spdm_hash, KeyKind};
use coco_endpoint::platform::PLATFORM_TDI_STATE;
use coco_endpoint::Fault as EpFault;
use coco_psp::psp::status_page;
use coco_psp::wire::{RP_DIR_RX, RP_DIR_TX, RP_OP_GO, RP_OP_PROGRAM, RP_OP_STOP};
use coco_psp::Fault;
use coco_sevtio::*;
use coco_spdm::meas::{parse_measurements, MeasurementsParams};
use coco_spdm::SpdmVersion;
use common::*;

#[test]
fn status_and_init_order() {
    let mut r = Rig::default();
    let st = Command::TioStatus {
        status_paddr: STATUS,
    };
    assert_eq!(r.issue(&st), SEV_RET_SUCCESS);
    let page = TioStatusPage::parse(&r.host.get(STATUS, 64)).unwrap();
    assert_eq!(page, status_page(false));
    assert!(page.tio_en && !page.tio_init_done);
    assert_eq!(page.spdm_out_size_max, 0x10000);
    assert_eq!(page.tio_crypto_alg, 1);
    // Everything but TIO_STATUS and TIO_INIT needs TIO_INIT.
    let create = Command::DevCreate {
        dev_ctx: sla(DEV_CTX),
        device_id: RID,
        root_port_id: 1,
        segment: 0,
    };
    assert_eq!(r.issue(&create), SEV_RET_INVALID_PLATFORM_STATE);
    assert_eq!(r.psp.device_count(), 0);
    r.init();
    assert_eq!(r.issue(&Command::TioInit), SEV_RET_INVALID_PLATFORM_STATE);
    assert_eq!(r.issue(&st), SEV_RET_SUCCESS);
    assert!(
        TioStatusPage::parse(&r.host.get(STATUS, 64))
            .unwrap()
            .tio_init_done
    );
    // A refused DMA write is INVALID_ADDRESS.
    assert_eq!(
        r.issue(&Command::TioStatus {
            status_paddr: MEM as u64 - 8
        }),
        SEV_RET_INVALID_ADDRESS
    );
    // The TDI commands the model leaves out, and unknown commands.
    for cmd in [
        SEV_CMD_TIO_GUEST_REQUEST,
        SEV_CMD_TIO_ASID_FENCE_CLEAR,
        SEV_CMD_TIO_ASID_FENCE_STATUS,
        SEV_CMD_TIO_TDI_INFO,
        SEV_CMD_TIO_ROLL_KEY,
    ] {
        assert_eq!(r.issue_raw(cmd), SEV_RET_INVALID_COMMAND, "{cmd:#x}");
    }
    assert_eq!(r.issue_raw(0x123), SEV_RET_INVALID_COMMAND);
    assert!(
        r.logged("TIO_INIT (0xd1) at 0x1000 -> INVALID_PLATFORM_STATE (0x1): TIO_INIT already ran")
    );
}

#[test]
fn create_and_reclaim() {
    let mut r = Rig::default();
    r.init();
    r.create();
    assert_eq!(&r.host.get(DEV_CTX, 8), b"cocopsp\0");
    // Same RID again, or the same page for another RID: IN_USE.
    let again = Command::DevCreate {
        dev_ctx: sla(DEV_CTX2),
        device_id: RID,
        root_port_id: 1,
        segment: 0,
    };
    assert_eq!(r.issue(&again), SEV_RET_IN_USE);
    let same_page = Command::DevCreate {
        dev_ctx: sla(DEV_CTX),
        device_id: RID + 8,
        root_port_id: 1,
        segment: 0,
    };
    assert_eq!(r.issue(&same_page), SEV_RET_IN_USE);
    assert_eq!(r.psp.device_count(), 1);
    assert!(!r.dev_status().connected);
    // An unknown context.
    let other = Command::DevReclaim {
        dev_ctx: sla(DEV_CTX2),
    };
    assert_eq!(r.issue(&other), SEV_RET_INVALID_DEV_CTX);
    let reclaim = Command::DevReclaim {
        dev_ctx: sla(DEV_CTX),
    };
    assert_eq!(r.issue(&reclaim), SEV_RET_SUCCESS);
    assert_eq!(r.psp.device_count(), 0);
    assert_eq!(r.issue(&reclaim), SEV_RET_INVALID_DEV_CTX);
    // A scatter SLA is no device context page.
    let scatter = Command::DevCreate {
        dev_ctx: Sla::scatter_4k(DEV_CTX >> 12).unwrap(),
        device_id: RID,
        root_port_id: 1,
        segment: 0,
    };
    assert_eq!(r.issue(&scatter), SEV_RET_INVALID_PARAM);
    r.create();
}

/// Checks the keys of both ends after a connect: for each sub-stream, endpoint RX = root port
/// TX and endpoint TX = root port RX, all six pairs in go on both ends.
fn check_keys(r: &mut Rig, stream: u8, expect_match: bool) {
    let k = r.host.ep_keys(stream);
    for pair in 0..6 {
        let e = &k[2 + pair * 66..2 + (pair + 1) * 66];
        assert_eq!(e[0], 1, "endpoint pair {pair}: K0 in go");
        let ep_digest = &e[2..34];
        let ss = (pair % 3) as u8;
        let rp_dir = if pair < 3 { RP_DIR_TX } else { RP_DIR_RX };
        let rp = r
            .host
            .rp_digest(stream, rp_dir, ss, 0)
            .expect("root port key");
        let matches = ep_digest == rp;
        if expect_match || !(rp_dir == RP_DIR_RX && ss == 0) {
            assert!(matches, "pair {pair}: keys differ");
        } else {
            assert!(!matches, "pair {pair}: bad-rp-key did not flip the key");
        }
        assert_eq!(
            r.host.rp.get(&(stream, rp_dir, ss)).unwrap().go,
            vec![0],
            "root port pair in go"
        );
    }
}

#[test]
fn connect_programs_matching_keys_receivers_first() {
    let mut r = Rig::default();
    assert_eq!(r.connected(3), SEV_RET_SUCCESS, "{}", r.log_text());
    assert!(r.relays > 20);
    check_keys(&mut r, 3, true);
    // Order: six PROGRAMs, then root port RX GO with the endpoint's RX in go (not its TX),
    // then root port TX GO with every endpoint pair in go.
    let ops = r.host.rp_ops.clone();
    assert_eq!(ops.len(), 12);
    for o in &ops {
        assert_eq!((o.stream_id, o.key_set, o.requester_id), (3, 0, RID));
    }
    assert!(ops[..6].iter().all(|o| o.op == RP_OP_PROGRAM));
    assert!(
        ops[..6].iter().all(|o| o.ep_go == [0; 6]),
        "endpoint went before programming"
    );
    for o in &ops[6..9] {
        assert_eq!((o.op, o.direction), (RP_OP_GO, RP_DIR_RX));
        assert_eq!(o.ep_go, [1, 1, 1, 0, 0, 0]);
    }
    for o in &ops[9..12] {
        assert_eq!((o.op, o.direction), (RP_OP_GO, RP_DIR_TX));
        assert_eq!(o.ep_go, [1; 6]);
    }
    let st = r.dev_status();
    assert!(st.connected);
    assert_eq!((st.cert_slot, st.stream_id, st.spdm_version), (0, 3, 0x13));
    assert_eq!(st.base_asym_algo, coco_spdm::auth::SPDM_ASYM_ECDSA_P256);
    assert_ne!(st.base_hash_algo, 0);
    // Connected twice: INVALID_DEV_STATE; reclaim while connected too.
    assert_eq!(r.run(&Rig::connect_cmd(3)), SEV_RET_INVALID_DEV_STATE);
    assert_eq!(
        r.issue(&Command::DevReclaim {
            dev_ctx: sla(DEV_CTX)
        }),
        SEV_RET_INVALID_DEV_STATE
    );
    assert!(r.logged("connected: SPDM 0x13, slot 0, stream 3"));
    // No key ever reaches the log.
    assert!(!r.log_text().to_lowercase().contains("key:"));
}

#[test]
fn connect_rejects_bad_parameters() {
    let mut r = Rig::default();
    r.init();
    r.create();
    let mut c = Rig::connect_cmd(1);
    if let Command::DevConnect { tc_mask, .. } = &mut c {
        *tc_mask = 3;
    }
    assert_eq!(r.run(&c), SEV_RET_INVALID_PARAM);
    let mut c = Rig::connect_cmd(1);
    if let Command::DevConnect { spdm, .. } = &mut c {
        spdm.req = Sla::NULL;
    }
    assert_eq!(r.run(&c), SEV_RET_INVALID_PARAM);
    let mut c = Rig::connect_cmd(1);
    if let Command::DevConnect { dev_ctx, .. } = &mut c {
        *dev_ctx = sla(DEV_CTX2);
    }
    assert_eq!(r.run(&c), SEV_RET_INVALID_DEV_CTX);
    // An empty slot: SPDM_ERROR naming DIGESTS.
    let mut c = Rig::connect_cmd(1);
    if let Command::DevConnect { cert_slot, .. } = &mut c {
        *cert_slot = 5;
    }
    assert_eq!(r.run(&c), SEV_RET_SPDM_ERROR);
    assert!(
        r.logged("DIGESTS: slot 5 is not populated"),
        "{}",
        r.log_text()
    );
    assert!(r.host.rp_ops.is_empty());
    assert!(!r.psp.relay_pending());
}

#[test]
fn connect_with_p384_and_slot_1() {
    let mut r = Rig::new(Vec::<Fault>::new(), endpoint(KeyKind::P384, EpFault::None));
    r.init();
    r.create();
    let mut c = Rig::connect_cmd(2);
    if let Command::DevConnect { cert_slot, .. } = &mut c {
        *cert_slot = 1;
    }
    assert_eq!(r.run(&c), SEV_RET_SUCCESS, "{}", r.log_text());
    check_keys(&mut r, 2, true);
    let cc = Command::DevCertificates {
        spdm: Rig::spdm(),
        dev_ctx: sla(DEV_CTX),
    };
    assert_eq!(r.run(&cc), SEV_RET_SUCCESS);
    let hash = r.dev_status().base_hash_algo;
    let chain = identity(KeyKind::P384)
        .slot(1)
        .unwrap()
        .spdm_chain(hash)
        .unwrap();
    assert_eq!(r.output(), pad32(&chain));
}

fn pad32(b: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    v.resize(b.len().div_ceil(32) * 32, 0);
    v
}

#[test]
fn certificates_equal_the_endpoint_chain() {
    let mut r = Rig::default();
    let cc = Command::DevCertificates {
        spdm: Rig::spdm(),
        dev_ctx: sla(DEV_CTX),
    };
    r.init();
    r.create();
    assert_eq!(r.run(&cc), SEV_RET_INVALID_DEV_STATE);
    assert_eq!(r.run(&Rig::connect_cmd(1)), SEV_RET_SUCCESS);
    let relays = r.relays;
    assert_eq!(r.run(&cc), SEV_RET_SUCCESS);
    assert_eq!(r.relays, relays, "no SPDM for the certificates");
    let st = r.dev_status();
    let chain = identity(KeyKind::P256)
        .slot(0)
        .unwrap()
        .spdm_chain(st.base_hash_algo)
        .unwrap();
    let h = BufferHeader::parse(&r.host.get(OUT, 0x40)).unwrap();
    assert_eq!(h.capacity_sz, 0x1000);
    assert_eq!(h.payload_sz as usize, chain.len().div_ceil(32) * 32);
    assert_eq!(&r.output()[..chain.len()], &chain[..]);
}

/// Points the output SLA at a scatter list of `pages` pages with capacity_sz `cap`.
fn big_output(r: &mut Rig, pages: u64, cap: u32) -> SpdmCtrl {
    let list: Vec<Sla> = (0..pages).map(|i| sla(OUT_PAGES + i * 0x1000)).collect();
    let mut page = [0u8; 0x1000];
    encode_scatter_list(&list, &mut page).unwrap();
    r.host.put(OUT_LIST, &page);
    r.host.put(OUT_PAGES, &cap.to_le_bytes());
    SpdmCtrl {
        output: Sla::scatter_4k(OUT_LIST >> 12).unwrap(),
        ..Rig::spdm()
    }
}

#[test]
fn expand_for_a_small_output_buffer() {
    let mut r = Rig::default();
    assert_eq!(r.connected(1), SEV_RET_SUCCESS);
    // A 0x100-byte capacity: the model asks for what it needs.
    r.host.put(OUT, &0x100u32.to_le_bytes());
    let cc = Command::DevCertificates {
        spdm: Rig::spdm(),
        dev_ctx: sla(DEV_CTX),
    };
    assert_eq!(r.run(&cc), SEV_RET_EXPAND_BUFFER_LENGTH_REQUEST);
    let need = u32::from_le_bytes(r.host.get(OUT, 4).try_into().unwrap());
    assert!(need > 0x100 && need <= 0x1000, "{need:#x}");
    r.host.put(OUT, &need.to_le_bytes());
    assert_eq!(r.run(&cc), SEV_RET_SUCCESS);
    // A capacity beyond the buffer's pages is refused.
    r.host.put(OUT, &0x2000u32.to_le_bytes());
    assert_eq!(r.run(&cc), SEV_RET_INVALID_LEN);
    // Measurements into a 2-page scatter output after an expansion from 0x80.
    let spdm = big_output(&mut r, 2, 0x80);
    let mc = Command::DevMeasurements {
        raw_bitstream: false,
        spdm,
        dev_ctx: sla(DEV_CTX),
        nonce: [7; 32],
    };
    assert_eq!(r.run(&mc), SEV_RET_EXPAND_BUFFER_LENGTH_REQUEST);
    let need = u32::from_le_bytes(r.host.get(OUT_PAGES, 4).try_into().unwrap());
    assert!(need > 0x80 && need <= 0x2000, "{need:#x}");
    r.host.put(OUT_PAGES, &0x2000u32.to_le_bytes());
    assert_eq!(r.run(&mc), SEV_RET_SUCCESS, "{}", r.log_text());
}

fn le32(b: &[u8], off: usize) -> usize {
    u32::from_le_bytes(b[off..off + 4].try_into().unwrap()) as usize
}

#[test]
fn measurements_verify() {
    let mut r = Rig::default();
    assert_eq!(r.connected(1), SEV_RET_SUCCESS);
    let nonce = [0x5Au8; 32];
    let mc = Command::DevMeasurements {
        raw_bitstream: false,
        spdm: Rig::spdm(),
        dev_ctx: sla(DEV_CTX),
        nonce,
    };
    assert_eq!(r.run(&mc), SEV_RET_SUCCESS, "{}", r.log_text());
    let out = r.output();
    let (tl, sl, off) = (le32(&out, 0), le32(&out, 4), le32(&out, 8));
    assert_eq!(le32(&out, 12), 0);
    let transcript = &out[16..16 + tl];
    let sig = &out[16 + tl..16 + tl + sl];
    assert_eq!(sl, 64);
    // The response: transcript[off..] || signature parses as MEASUREMENTS.
    let mut rsp = transcript[off..].to_vec();
    rsp.extend_from_slice(sig);
    let st = r.dev_status();
    let v = SpdmVersion::V1_3;
    let req = &transcript[..off];
    // The request ends the VCA part: GET_MEASUREMENTS with the nonce.
    assert_eq!(req[off - 32 - 1 - 8..off - 1 - 8], nonce);
    let params = MeasurementsParams {
        version: v,
        signed: true,
        signature_size: 64,
        measurement_hash_size: None,
    };
    let m = parse_measurements(&rsp, &params).unwrap();
    assert!(m.number_of_blocks >= 1);
    assert_eq!(m.signature, Some(sig));
    assert_eq!(m.signature_offset, tl - off);
    // Verify the signature with the leaf key over VCA || request || response.
    let hash = st.base_hash_algo;
    let l = spdm_hash(hash, transcript).unwrap();
    let mut signed = [0u8; 256];
    let n = coco_spdm::meas::measurements_signed_message(v, &l, &mut signed).unwrap();
    let digest = spdm_hash(hash, &signed[..n]).unwrap();
    let leaf = identity(KeyKind::P256)
        .slot(0)
        .unwrap()
        .certs
        .last()
        .unwrap()
        .clone();
    let key = coco_psp::requester::LeafKey::from_certificate(&leaf, st.base_asym_algo).unwrap();
    key.verify(st.base_asym_algo, hash, &digest, sig).unwrap();
    // Not connected: INVALID_DEV_STATE.
    assert_eq!(r.run(&Rig::disconnect_cmd(false)), SEV_RET_SUCCESS);
    assert_eq!(r.run(&mc), SEV_RET_INVALID_DEV_STATE);
}

#[test]
fn disconnect_clears_keys_on_both_ends() {
    let mut r = Rig::default();
    assert_eq!(
        r.run(&Rig::disconnect_cmd(false)),
        SEV_RET_INVALID_PLATFORM_STATE
    );
    assert_eq!(r.connected(4), SEV_RET_SUCCESS);
    let ops = r.host.rp_ops.len();
    assert_eq!(
        r.run(&Rig::disconnect_cmd(false)),
        SEV_RET_SUCCESS,
        "{}",
        r.log_text()
    );
    let k = r.host.ep_keys(4);
    for pair in 0..6 {
        assert_eq!(k[2 + pair * 66], 0, "endpoint pair {pair} still in go");
    }
    let stops: Vec<_> = r.host.rp_ops[ops..].to_vec();
    assert_eq!(stops.len(), 6);
    assert!(stops.iter().all(|o| o.op == RP_OP_STOP));
    assert!(
        stops.iter().all(|o| o.ep_go == [0; 6]),
        "endpoint stopped first"
    );
    for ((_, _, _), p) in r.host.rp.iter() {
        assert!(p.keys[0].is_none() && p.go.is_empty());
    }
    assert!(!r.dev_status().connected);
    assert_eq!(
        r.run(&Rig::disconnect_cmd(false)),
        SEV_RET_INVALID_DEV_STATE
    );
    // The session ended: connect again works, then FORCE disconnects without SPDM.
    assert_eq!(
        r.run(&Rig::connect_cmd(4)),
        SEV_RET_SUCCESS,
        "{}",
        r.log_text()
    );
    let relays = r.relays;
    assert_eq!(r.run(&Rig::disconnect_cmd(true)), SEV_RET_SUCCESS);
    assert_eq!(r.relays, relays);
    for p in r.host.rp.values() {
        assert!(p.keys[0].is_none());
    }
    assert!(!r.dev_status().connected);
    assert_eq!(
        r.issue(&Command::DevReclaim {
            dev_ctx: sla(DEV_CTX)
        }),
        SEV_RET_SUCCESS
    );
}

#[test]
fn abandoned_relay_leaves_nothing_behind() {
    let mut r = Rig::default();
    r.init();
    r.create();
    let c = Rig::connect_cmd(1);
    assert_eq!(r.run_max(&c, 5), SEV_RET_SPDM_REQUEST);
    assert!(r.psp.relay_pending());
    // Another command abandons the relay.
    assert_eq!(
        r.issue(&Command::TioStatus {
            status_paddr: STATUS
        }),
        SEV_RET_SUCCESS
    );
    assert!(!r.psp.relay_pending());
    assert!(r.logged("abandoned"));
    // The device is not connected; a fresh connect (the endpoint restarts at GET_VERSION).
    assert!(!r.dev_status().connected);
    assert_eq!(r.run(&c), SEV_RET_SUCCESS, "{}", r.log_text());
    // Abandoning a measurement loses the session: MEASUREMENTS and DISCONNECT then need FORCE.
    let mc = Command::DevMeasurements {
        raw_bitstream: false,
        spdm: Rig::spdm(),
        dev_ctx: sla(DEV_CTX),
        nonce: [1; 32],
    };
    assert_eq!(r.run_max(&mc, 0), SEV_RET_SPDM_REQUEST);
    assert!(r.dev_status().connected);
    assert_eq!(r.run(&mc), SEV_RET_SPDM_ERROR);
    assert_eq!(r.run(&Rig::disconnect_cmd(false)), SEV_RET_SPDM_ERROR);
    assert_eq!(r.run(&Rig::disconnect_cmd(true)), SEV_RET_SUCCESS);
    // The same command reissued with nothing pending starts over.
    assert_eq!(r.run(&c), SEV_RET_SUCCESS);
}

#[test]
fn malformed_command_buffers_change_nothing() {
    let mut r = Rig::default();
    r.init();
    r.create();
    let c = Rig::connect_cmd(1);
    let mut good = [0u8; 128];
    let n = c.encode(&mut good).unwrap();
    // Wrong length field.
    let mut b = good;
    b[0] = 79;
    r.host.put(CMD, &b[..n]);
    assert_eq!(r.issue_raw(SEV_CMD_TIO_DEV_CONNECT), SEV_RET_INVALID_LEN);
    // A reserved byte.
    let mut b = good;
    b[5] = 1;
    r.host.put(CMD, &b[..n]);
    assert_eq!(r.issue_raw(SEV_CMD_TIO_DEV_CONNECT), SEV_RET_INVALID_PARAM);
    // A NULL device context.
    let mut b = good;
    b[48..56].fill(0);
    r.host.put(CMD, &b[..n]);
    assert_eq!(r.issue_raw(SEV_CMD_TIO_DEV_CONNECT), SEV_RET_INVALID_PARAM);
    assert_eq!(r.relays, 0);
    assert!(!r.psp.relay_pending());
    assert!(r.host.rp_ops.is_empty());
    assert!(!r.dev_status().connected);
    // A command buffer DMA cannot reach.
    assert_eq!(
        r.psp
            .command(&mut r.host, SEV_CMD_TIO_INIT, MEM as u64 - 4)
            .unwrap(),
        SEV_RET_INVALID_ADDRESS
    );
    assert_eq!(r.psp.device_count(), 1);
}

#[test]
fn fault_status() {
    let f = Fault::Status {
        cmd: SEV_CMD_TIO_DEV_CONNECT,
        status: 0x35,
    };
    let mut r = Rig::new(vec![f], endpoint(KeyKind::P256, EpFault::None));
    assert_eq!(r.connected(1), 0x35);
    assert_eq!(r.relays, 0);
    assert!(!r.dev_status().connected);
    assert!(r.logged("fault status:0xd4=0x35"));
}

#[test]
fn fault_relay_forever() {
    let mut r = Rig::new(
        vec![Fault::RelayForever],
        endpoint(KeyKind::P256, EpFault::None),
    );
    r.init();
    r.create();
    let c = Rig::connect_cmd(1);
    assert_eq!(r.run_max(&c, 64), SEV_RET_SPDM_REQUEST);
    assert_eq!(r.relays, 64);
    let req = r.host.get(REQ, 0x100);
    let b = parse_spdm_buffer(&req).unwrap();
    assert_eq!(&b.body[..4], &[0x10, 0x84, 0, 0]);
    // The host gives up and moves on: the worker ends.
    assert!(!r.dev_status().connected);
    assert!(!r.psp.relay_pending());
}

#[test]
fn fault_expand_forever() {
    let mut r = Rig::new(
        vec![Fault::ExpandForever],
        endpoint(KeyKind::P256, EpFault::None),
    );
    assert_eq!(r.connected(1), SEV_RET_SUCCESS);
    let spdm = big_output(&mut r, 8, 0x1000);
    let cc = Command::DevCertificates {
        spdm,
        dev_ctx: sla(DEV_CTX),
    };
    for i in 1..=4u32 {
        assert_eq!(r.run(&cc), SEV_RET_EXPAND_BUFFER_LENGTH_REQUEST);
        let cap = u32::from_le_bytes(r.host.get(OUT_PAGES, 4).try_into().unwrap());
        assert_eq!(cap, 0x1000 + 0x1000 * i);
    }
    let relays = r.relays;
    let mc = Command::DevMeasurements {
        raw_bitstream: false,
        spdm,
        dev_ctx: sla(DEV_CTX),
        nonce: [0; 32],
    };
    assert_eq!(r.run(&mc), SEV_RET_EXPAND_BUFFER_LENGTH_REQUEST);
    assert_eq!(r.relays, relays, "no SPDM before the expansion");
}

#[test]
fn fault_bad_rp_key() {
    let mut r = Rig::new(
        vec![Fault::BadRpKey],
        endpoint(KeyKind::P256, EpFault::None),
    );
    assert_eq!(r.connected(1), SEV_RET_SUCCESS);
    check_keys(&mut r, 1, false);
}

/// Endpoint faults that end DEV_CONNECT or DEV_MEASUREMENTS with SPDM_ERROR, and the message
/// the log names.
#[test]
fn endpoint_faults_are_spdm_errors() {
    for (fault, what) in [
        (
            EpFault::BadKexSignature,
            "KEY_EXCHANGE_RSP: signature does not verify",
        ),
        (
            EpFault::WrongVerifyData,
            "ResponderVerifyData does not verify",
        ),
        (EpFault::DigestMismatch, "does not match its digest"),
        (EpFault::TamperedMac, "secured response"),
        (EpFault::KpAckFail, "KP_ACK status 4"),
        (
            EpFault::GoRefused,
            "IDE_KM K_SET_GO K0 RX PR: device answered SPDM ERROR",
        ),
        (EpFault::WrongStreamId, "does not match the request"),
        (EpFault::WrongVersion, "VERSION: no common SPDM version"),
        (EpFault::UnsupportedAlgorithm, "ALGORITHMS"),
        (EpFault::Garbage, "GET_VERSION"),
    ] {
        let mut r = Rig::new(Vec::<Fault>::new(), endpoint(KeyKind::P256, fault));
        assert_eq!(
            r.connected(1),
            SEV_RET_SPDM_ERROR,
            "{fault:?}: {}",
            r.log_text()
        );
        assert!(r.logged(what), "{fault:?}: {}", r.log_text());
        assert!(!r.dev_status().connected, "{fault:?}");
        assert!(!r.psp.relay_pending());
    }
    // The CHALLENGE fault (bad-signature) does not touch KEY_EXCHANGE: the connect works.
    let mut r = Rig::new(
        Vec::<Fault>::new(),
        endpoint(KeyKind::P256, EpFault::BadSignature),
    );
    assert_eq!(r.connected(1), SEV_RET_SUCCESS);
    // Measurement faults.
    for (fault, what) in [
        (
            EpFault::BadMeasSignature,
            "MEASUREMENTS: signature does not verify",
        ),
        (EpFault::NoMeasSig, "MEAS_CAP 1"),
        (
            EpFault::RefuseAllBlocks,
            "GET_MEASUREMENTS: device answered SPDM ERROR",
        ),
        (EpFault::MalformedBlock, "MEASUREMENTS"),
    ] {
        let mut r = Rig::new(Vec::<Fault>::new(), endpoint(KeyKind::P256, fault));
        assert_eq!(r.connected(1), SEV_RET_SUCCESS, "{fault:?}");
        let mc = Command::DevMeasurements {
            raw_bitstream: false,
            spdm: Rig::spdm(),
            dev_ctx: sla(DEV_CTX),
            nonce: [0; 32],
        };
        assert_eq!(r.run(&mc), SEV_RET_SPDM_ERROR, "{fault:?}");
        assert!(r.logged(what), "{fault:?}: {}", r.log_text());
    }
}

#[test]
fn garbage_response_buffer_is_an_spdm_error() {
    let mut r = Rig::default();
    r.init();
    r.create();
    let c = Rig::connect_cmd(1);
    assert_eq!(r.issue(&c), SEV_RET_SPDM_REQUEST);
    r.host.put(RESP, &[0xFF; 0x40]);
    assert_eq!(r.issue(&c), SEV_RET_SPDM_ERROR);
    assert!(r.logged("response buffer of relay 1"));
    assert!(!r.psp.relay_pending());
    // A truncated VERSION.
    r.tamper = Some(Box::new(|n, p| {
        if n == 0 {
            p.truncate(5)
        }
    }));
    assert_eq!(r.run(&c), SEV_RET_SPDM_ERROR);
    assert!(r.logged("VERSION:"), "{}", r.log_text());
}

#[test]
fn rsa_leaf_connects() {
    let mut r = Rig::new(
        Vec::<Fault>::new(),
        endpoint(KeyKind::Rsa2048, EpFault::None),
    );
    assert_eq!(r.connected(1), SEV_RET_SUCCESS, "{}", r.log_text());
    check_keys(&mut r, 1, true);
    let mc = Command::DevMeasurements {
        raw_bitstream: false,
        spdm: Rig::spdm(),
        dev_ctx: sla(DEV_CTX),
        nonce: [3; 32],
    };
    assert_eq!(r.run(&mc), SEV_RET_SUCCESS, "{}", r.log_text());
}

/// A fault limited to one device (`F@BB:DD.F`) applies to that device only.
#[test]
fn fault_on_one_device() {
    use coco_psp::FaultSpec;
    let spec: FaultSpec = "status:0xd4=0x35@0000:03:00.0".parse().unwrap();
    assert_eq!(spec.device, Some(0x0300));
    assert_eq!(spec.to_string(), "status:0xd4=0x35@03:00.0");
    let spec: FaultSpec = "relay-forever@1f:1f.7".parse().unwrap();
    assert_eq!(spec.device, Some(0x1fff));
    assert!("bad-rp-key@3:0".parse::<FaultSpec>().is_err());
    assert!("bad-rp-key@100:00.0".parse::<FaultSpec>().is_err());
    let plain: FaultSpec = "expand-forever".parse().unwrap();
    assert_eq!(plain.device, None);

    // On another device the fault does nothing; on this one it does.
    let other = FaultSpec {
        fault: Fault::Status {
            cmd: SEV_CMD_TIO_DEV_CONNECT,
            status: 0x35,
        },
        device: Some(RID + 8),
    };
    let mut r = Rig::new(vec![other], endpoint(KeyKind::P256, EpFault::None));
    assert_eq!(r.connected(1), SEV_RET_SUCCESS);
    let mine = FaultSpec {
        device: Some(RID),
        ..other
    };
    let mut r = Rig::new(vec![mine], endpoint(KeyKind::P256, EpFault::None));
    assert_eq!(r.connected(1), 0x35);
    assert!(r.logged("fault status:0xd4=0x35 on this device"));
    let relay = FaultSpec {
        fault: Fault::RelayForever,
        device: Some(RID + 8),
    };
    let mut r = Rig::new(vec![relay], endpoint(KeyKind::P256, EpFault::None));
    assert_eq!(r.connected(1), SEV_RET_SUCCESS);
}

// --- TDI commands --------------------------------------------------------------------------

const TDI_CTX: u64 = 0x5000;
const TDI_CTX2: u64 = 0x6000;

fn tdi_create_cmd() -> Command {
    Command::TdiCreate {
        dev_ctx: sla(DEV_CTX),
        tdi_ctx: sla(TDI_CTX),
        interface_id: InterfaceId::new(RID, None),
    }
}

fn bind_cmd(lock_flags: u16, run_flags: u16) -> Command {
    Command::TdiBind {
        spdm: Rig::spdm(),
        dev_ctx: sla(DEV_CTX),
        tdi_ctx: sla(TDI_CTX),
        gctx_paddr: 0x7000,
        guest_device_id: 0x0008,
        lock_flags,
        run_flags,
    }
}

fn unbind_cmd(force: bool) -> Command {
    Command::TdiUnbind {
        force,
        spdm: Rig::spdm(),
        dev_ctx: sla(DEV_CTX),
        tdi_ctx: sla(TDI_CTX),
        gctx_paddr: 0x7000,
    }
}

fn report_cmd() -> Command {
    Command::TdiReport {
        spdm: Rig::spdm(),
        dev_ctx: sla(DEV_CTX),
        tdi_ctx: sla(TDI_CTX),
        gctx_paddr: 0x7000,
    }
}

fn reclaim_tdi_cmd() -> Command {
    Command::TdiReclaim {
        dev_ctx: sla(DEV_CTX),
        tdi_ctx: sla(TDI_CTX),
    }
}

/// The endpoint's TDI state, through its platform side channel.
fn ep_tdi_state(r: &mut Rig) -> coco_tdisp::TdiState {
    let (c, p, _) = r.host.ep.platform(PLATFORM_TDI_STATE, &[]);
    assert_eq!(c, PLATFORM_TDI_STATE);
    coco_tdisp::TdiState::from_u8(p[0]).unwrap()
}

/// TIO_TDI_STATUS: the state the page reads.
fn tdi_status(r: &mut Rig) -> TdiState {
    r.host.put(STATUS, &[0xEE; 16]);
    let c = Command::TdiStatus {
        spdm: Rig::spdm(),
        dev_ctx: sla(DEV_CTX),
        tdi_ctx: sla(TDI_CTX),
        status_paddr: STATUS,
    };
    assert_eq!(r.run(&c), SEV_RET_SUCCESS, "{}", r.log_text());
    let b = r.host.get(STATUS, 16);
    assert_eq!(&b[..4], &16u32.to_le_bytes());
    TdiStatusPage::parse(&b).unwrap().state
}

/// Connected on stream `stream` with a TDI context.
fn with_tdi(r: &mut Rig, stream: u8) {
    assert_eq!(r.connected(stream), SEV_RET_SUCCESS, "{}", r.log_text());
    assert_eq!(
        r.issue(&tdi_create_cmd()),
        SEV_RET_SUCCESS,
        "{}",
        r.log_text()
    );
}

#[test]
fn tdi_bind_report_status_unbind_reclaim() {
    let mut r = Rig::default();
    with_tdi(&mut r, 3);
    assert_eq!(&r.host.get(TDI_CTX, 8), b"cocotdi\0");
    assert_eq!(&r.host.get(TDI_CTX + 8, 4), &u32::from(RID).to_le_bytes());
    // Never bound: CONFIG_UNLOCKED without SPDM.
    let relays = r.relays;
    assert_eq!(tdi_status(&mut r), TdiState::ConfigUnlocked);
    assert_eq!(r.relays, relays);
    assert_eq!(ep_tdi_state(&mut r), coco_tdisp::TdiState::ConfigUnlocked);
    // Bind: the endpoint's TDI is CONFIG_LOCKED on the connection's stream.
    assert_eq!(r.run(&bind_cmd(1, 0)), SEV_RET_SUCCESS, "{}", r.log_text());
    assert_eq!(ep_tdi_state(&mut r), coco_tdisp::TdiState::ConfigLocked);
    assert!(r.relays > relays + 4);
    assert!(r.logged("TDISP LOCK_INTERFACE_REQUEST"), "{}", r.log_text());
    assert!(r.logged("bound: CONFIG_LOCKED"), "{}", r.log_text());
    // The report: what the device froze, one MMIO range (BAR0), parsed by the codec.
    let relays = r.relays;
    assert_eq!(r.run(&report_cmd()), SEV_RET_SUCCESS, "{}", r.log_text());
    assert_eq!(r.relays, relays, "no SPDM for the report");
    let out = r.output();
    let rep = coco_tdisp::parse_interface_report(&out[..expected_report_len()]).unwrap();
    assert_eq!(rep.ranges().count(), 1);
    let range = rep.ranges().next().unwrap();
    assert_eq!(range.first_page, 0xFE00_0000 / 4096);
    assert_ne!(
        rep.info.interface_info & coco_tdisp::TDISP_INFO_NO_UPDATE_AFTER_LOCK,
        0
    );
    let bars = [coco_endpoint::platform::DEFAULT_BAR0];
    let expected = coco_endpoint::tdisp::build_report(
        &bars,
        &coco_tdisp::LockInterface {
            flags: 1,
            default_stream_id: 3,
            mmio_reporting_offset: 0,
            bind_p2p_addr_mask: 0,
        },
        EpFault::None,
    );
    assert_eq!(out, pad32(&expected));
    // The status page, relayed.
    let relays = r.relays;
    assert_eq!(tdi_status(&mut r), TdiState::ConfigLocked);
    assert_eq!(r.relays, relays + 1);
    // Bound: bind again, reclaim, and a plain disconnect are refused.
    assert_eq!(r.run(&bind_cmd(1, 0)), SEV_RET_INVALID_TDI_STATE);
    assert_eq!(r.issue(&reclaim_tdi_cmd()), SEV_RET_INVALID_TDI_STATE);
    assert_eq!(
        r.run(&Rig::disconnect_cmd(false)),
        SEV_RET_INVALID_TDI_STATE
    );
    assert!(r.dev_status().connected);
    // Unbind: STOP, CONFIG_UNLOCKED.
    assert_eq!(
        r.run(&unbind_cmd(false)),
        SEV_RET_SUCCESS,
        "{}",
        r.log_text()
    );
    assert_eq!(ep_tdi_state(&mut r), coco_tdisp::TdiState::ConfigUnlocked);
    assert_eq!(tdi_status(&mut r), TdiState::ConfigUnlocked);
    // Not bound: report and unbind are refused.
    assert_eq!(r.run(&report_cmd()), SEV_RET_INVALID_TDI_STATE);
    assert_eq!(r.run(&unbind_cmd(false)), SEV_RET_INVALID_TDI_STATE);
    assert_eq!(r.run(&unbind_cmd(true)), SEV_RET_INVALID_TDI_STATE);
    // Bind again with RUN, unbind with FORCE (no SPDM: the endpoint stays in RUN).
    assert_eq!(r.run(&bind_cmd(0, 1)), SEV_RET_SUCCESS, "{}", r.log_text());
    assert_eq!(ep_tdi_state(&mut r), coco_tdisp::TdiState::Run);
    assert_eq!(tdi_status(&mut r), TdiState::Run);
    assert!(r.logged("bound: RUN"));
    let relays = r.relays;
    assert_eq!(r.run(&unbind_cmd(true)), SEV_RET_SUCCESS);
    assert_eq!(r.relays, relays);
    assert_eq!(ep_tdi_state(&mut r), coco_tdisp::TdiState::Run);
    // Reclaim, then the context is gone.
    assert_eq!(r.issue(&reclaim_tdi_cmd()), SEV_RET_SUCCESS);
    assert_eq!(r.issue(&reclaim_tdi_cmd()), SEV_RET_INVALID_TDI_CTX);
    assert_eq!(r.run(&report_cmd()), SEV_RET_INVALID_TDI_CTX);
    // Disconnect works again.
    assert_eq!(
        r.run(&Rig::disconnect_cmd(false)),
        SEV_RET_SUCCESS,
        "{}",
        r.log_text()
    );
}

fn expected_report_len() -> usize {
    coco_endpoint::tdisp::build_report(
        &[coco_endpoint::platform::DEFAULT_BAR0],
        &coco_tdisp::LockInterface::default(),
        EpFault::None,
    )
    .len()
}

#[test]
fn tdi_create_errors() {
    let mut r = Rig::default();
    r.init();
    r.create();
    // Not connected.
    assert_eq!(r.issue(&tdi_create_cmd()), SEV_RET_INVALID_DEV_STATE);
    assert_eq!(r.run(&Rig::connect_cmd(1)), SEV_RET_SUCCESS);
    // Another function's interface.
    let mut c = tdi_create_cmd();
    if let Command::TdiCreate { interface_id, .. } = &mut c {
        *interface_id = InterfaceId::new(RID + 1, None);
    }
    assert_eq!(r.issue(&c), SEV_RET_INVALID_PARAM);
    // Another segment.
    if let Command::TdiCreate { interface_id, .. } = &mut c {
        *interface_id = InterfaceId::new(RID, Some(1));
    }
    assert_eq!(r.issue(&c), SEV_RET_INVALID_PARAM);
    // The device context page, or a scatter SLA.
    if let Command::TdiCreate {
        interface_id,
        tdi_ctx,
        ..
    } = &mut c
    {
        *interface_id = InterfaceId::new(RID, Some(0));
        *tdi_ctx = sla(DEV_CTX);
    }
    assert_eq!(r.issue(&c), SEV_RET_IN_USE);
    if let Command::TdiCreate { tdi_ctx, .. } = &mut c {
        *tdi_ctx = Sla::scatter_4k(TDI_CTX >> 12).unwrap();
    }
    assert_eq!(r.issue(&c), SEV_RET_INVALID_PARAM);
    // An unknown device context.
    let mut c2 = tdi_create_cmd();
    if let Command::TdiCreate { dev_ctx, .. } = &mut c2 {
        *dev_ctx = sla(DEV_CTX2);
    }
    assert_eq!(r.issue(&c2), SEV_RET_INVALID_DEV_CTX);
    // Once; a second context for the device is IN_USE.
    assert_eq!(r.issue(&tdi_create_cmd()), SEV_RET_SUCCESS);
    let mut c3 = tdi_create_cmd();
    if let Command::TdiCreate { tdi_ctx, .. } = &mut c3 {
        *tdi_ctx = sla(TDI_CTX2);
    }
    assert_eq!(r.issue(&c3), SEV_RET_IN_USE);
    // A TDI context that is not this device's.
    let mut b = bind_cmd(0, 0);
    if let Command::TdiBind { tdi_ctx, .. } = &mut b {
        *tdi_ctx = sla(TDI_CTX2);
    }
    assert_eq!(r.run(&b), SEV_RET_INVALID_TDI_CTX);
    // A disconnected device keeps its (unbound) TDI context; bind needs the connection.
    assert_eq!(r.run(&Rig::disconnect_cmd(false)), SEV_RET_SUCCESS);
    assert_eq!(r.run(&bind_cmd(0, 0)), SEV_RET_INVALID_DEV_STATE);
    assert_eq!(tdi_status(&mut r), TdiState::ConfigUnlocked);
    // DEV_RECLAIM forgets it too.
    assert_eq!(
        r.issue(&Command::DevReclaim {
            dev_ctx: sla(DEV_CTX)
        }),
        SEV_RET_SUCCESS
    );
    assert_eq!(r.psp.device_count(), 0);
}

#[test]
fn disconnect_force_unbinds_the_tdi() {
    let mut r = Rig::default();
    with_tdi(&mut r, 2);
    assert_eq!(r.run(&bind_cmd(1, 0)), SEV_RET_SUCCESS, "{}", r.log_text());
    assert_eq!(
        r.run(&Rig::disconnect_cmd(false)),
        SEV_RET_INVALID_TDI_STATE
    );
    assert_eq!(r.run(&Rig::disconnect_cmd(true)), SEV_RET_SUCCESS);
    assert!(r.logged("TDI unbound"));
    assert_eq!(r.run(&report_cmd()), SEV_RET_INVALID_TDI_STATE);
    assert_eq!(tdi_status(&mut r), TdiState::ConfigUnlocked);
    assert_eq!(r.issue(&reclaim_tdi_cmd()), SEV_RET_SUCCESS);
}

#[test]
fn tdi_report_expands_a_small_output_buffer() {
    let mut r = Rig::default();
    with_tdi(&mut r, 1);
    assert_eq!(r.run(&bind_cmd(0, 0)), SEV_RET_SUCCESS, "{}", r.log_text());
    r.host.put(OUT, &0x40u32.to_le_bytes());
    assert_eq!(r.run(&report_cmd()), SEV_RET_EXPAND_BUFFER_LENGTH_REQUEST);
    let need = u32::from_le_bytes(r.host.get(OUT, 4).try_into().unwrap());
    assert_eq!(
        need as usize,
        0x40 + expected_report_len().div_ceil(32) * 32
    );
    r.host.put(OUT, &need.to_le_bytes());
    assert_eq!(r.run(&report_cmd()), SEV_RET_SUCCESS);
    // A NULL output buffer.
    let mut c = report_cmd();
    if let Command::TdiReport { spdm, .. } = &mut c {
        spdm.output = Sla::NULL;
    }
    assert_eq!(r.run(&c), SEV_RET_INVALID_PARAM);
}

/// A TDISP ERROR from the device: SPDM_ERROR naming it, the TDI unbound, the session usable.
#[test]
fn tdisp_error_fails_the_bind() {
    let code = coco_tdisp::TDISP_ERROR_INVALID_DEVICE_CONFIGURATION;
    let mut r = Rig::new(
        Vec::<Fault>::new(),
        endpoint(KeyKind::P256, EpFault::TdispError(code)),
    );
    with_tdi(&mut r, 1);
    assert_eq!(r.run(&bind_cmd(1, 0)), SEV_RET_SPDM_ERROR);
    assert!(
        r.logged(
            "TDISP LOCK_INTERFACE_REQUEST: device answered TDISP ERROR INVALID_DEVICE_CONFIGURATION"
        ),
        "{}",
        r.log_text()
    );
    assert!(r.logged("TDI left unbound"));
    assert!(!r.psp.relay_pending());
    assert_eq!(ep_tdi_state(&mut r), coco_tdisp::TdiState::ConfigUnlocked);
    assert_eq!(r.run(&report_cmd()), SEV_RET_INVALID_TDI_STATE);
    assert_eq!(tdi_status(&mut r), TdiState::ConfigUnlocked);
    // The session still works: measurements, then a plain disconnect.
    let mc = Command::DevMeasurements {
        raw_bitstream: false,
        spdm: Rig::spdm(),
        dev_ctx: sla(DEV_CTX),
        nonce: [2; 32],
    };
    assert_eq!(r.run(&mc), SEV_RET_SUCCESS, "{}", r.log_text());
    assert_eq!(r.run(&Rig::disconnect_cmd(false)), SEV_RET_SUCCESS);
}

/// A failure after the lock (the device stays CONFIG_LOCKED on START): the model sends STOP,
/// the TDI is left unbound and the device unlocked.
#[test]
fn failed_check_after_lock_sends_stop() {
    let mut r = Rig::new(
        Vec::<Fault>::new(),
        endpoint(KeyKind::P256, EpFault::StuckLocked),
    );
    with_tdi(&mut r, 1);
    assert_eq!(r.run(&bind_cmd(0, 1)), SEV_RET_SPDM_ERROR);
    assert!(
        r.logged("TDI is CONFIG_LOCKED after START_INTERFACE, not RUN"),
        "{}",
        r.log_text()
    );
    assert!(r.logged("STOP_INTERFACE sent"));
    assert_eq!(r.run(&report_cmd()), SEV_RET_INVALID_TDI_STATE);
    let mut r = Rig::new(Vec::<Fault>::new(), endpoint(KeyKind::P256, EpFault::None));
    with_tdi(&mut r, 1);
    // Lock flags the device refuses (BIND_P2P): UNSUPPORTED_REQUEST, nothing locked; then a
    // bind with flags it takes works.
    assert_eq!(r.run(&bind_cmd(0x8, 0)), SEV_RET_SPDM_ERROR);
    assert!(
        r.logged("TDISP ERROR UNSUPPORTED_REQUEST"),
        "{}",
        r.log_text()
    );
    assert_eq!(ep_tdi_state(&mut r), coco_tdisp::TdiState::ConfigUnlocked);
    assert_eq!(r.run(&bind_cmd(0, 0)), SEV_RET_SUCCESS, "{}", r.log_text());
}

/// A connect that fails once keys are programmed leaves none behind on the root port, and
/// none in go on the endpoint while its session still answers.
#[test]
fn failed_connect_leaves_no_keys() {
    for fault in [EpFault::GoRefused, EpFault::KpAckFail] {
        let mut r = Rig::new(Vec::<Fault>::new(), endpoint(KeyKind::P256, fault));
        assert_eq!(r.connected(1), SEV_RET_SPDM_ERROR, "{fault:?}");
        for dir in [RP_DIR_RX, RP_DIR_TX] {
            for ss in 0..3 {
                assert_eq!(
                    r.host.rp_digest(1, dir, ss, 0),
                    None,
                    "{fault:?}: root port key {dir}/{ss} left"
                );
            }
        }
        let k = r.host.ep_keys(1);
        for pair in 0..6 {
            assert_eq!(k[2 + pair * 66], 0, "{fault:?}: endpoint pair {pair} in go");
        }
        assert!(!r.psp.relay_pending());
    }
}
