//! Secure-session codec tests: round trips for every session message and the opaque data,
//! the DSP0277 record against libspdm's published AES-256-GCM vectors, and the key schedule
//! against an independent computation with RustCrypto `hkdf`/`hmac`/`sha2`.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use coco_spdm::auth::*;
use coco_spdm::session::*;
use coco_spdm::*;
use hmac::Mac;
use sha2::{Sha256, Sha384, Sha512};

// --- Caller-side crypto for the traits --------------------------------------------------------

struct RcHmac(usize);

impl Hmac for RcHmac {
    fn output_size(&self) -> usize {
        self.0
    }
    fn mac(&mut self, key: &[u8], data: &[&[u8]], out: &mut [u8]) -> Result<(), KeyScheduleError> {
        macro_rules! run {
            ($h:ty) => {{
                let mut m = <hmac::Hmac<$h> as Mac>::new_from_slice(key).unwrap();
                for d in data {
                    m.update(d);
                }
                out.copy_from_slice(&m.finalize().into_bytes());
            }};
        }
        match self.0 {
            32 => run!(Sha256),
            48 => run!(Sha384),
            64 => run!(Sha512),
            _ => return Err(KeyScheduleError::InvalidSize),
        }
        Ok(())
    }
}

struct Gcm(Aes256Gcm);

impl Aead for Gcm {
    fn seal(
        &mut self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8; 16],
    ) -> Result<(), RecordError> {
        let t = self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf)
            .map_err(|_| RecordError::Encrypt)?;
        tag.copy_from_slice(&t);
        Ok(())
    }
    fn open(
        &mut self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; 16],
    ) -> Result<(), RecordError> {
        self.0
            .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, buf, Tag::from_slice(tag))
            .map_err(|_| RecordError::Decrypt)
    }
}

fn gcm(key: &[u8]) -> Gcm {
    Gcm(Aes256Gcm::new_from_slice(key).unwrap())
}

// --- Messages --------------------------------------------------------------------------------

#[test]
fn key_exchange_round_trip() {
    for v in [SpdmVersion::V1_1, SpdmVersion::V1_2, SpdmVersion::V1_3] {
        let random = [7u8; 32];
        let exchange = [9u8; 96];
        let mut opaque = [0u8; 64];
        let on = encode_sm_supported_versions(
            &[SPDM_SECURED_VERSION_1_0, SPDM_SECURED_VERSION_1_1],
            &mut opaque,
        )
        .unwrap();
        assert_eq!(on, 16);
        let req = KeyExchange {
            version: v,
            meas_summary_type: 0,
            slot: 3,
            req_session_id: 0xABCD,
            session_policy: SPDM_SESSION_POLICY_TERMINATION,
            random_data: &random,
            exchange: &exchange,
            opaque: &opaque[..on],
            len: 0,
        };
        let mut buf = [0u8; 300];
        let n = encode_key_exchange(&req, &mut buf).unwrap();
        assert_eq!(n, SPDM_KEY_EXCHANGE_FIXED_SIZE + 96 + 2 + 16);
        let p = parse_key_exchange(&buf[..n + 3], 96).unwrap();
        let policy = if v >= SpdmVersion::V1_2 { 1 } else { 0 };
        assert_eq!(
            p,
            KeyExchange {
                len: n,
                session_policy: policy,
                ..req
            }
        );
        let sm = parse_sm_versions(p.opaque).unwrap();
        assert_eq!(sm.versions().collect::<Vec<_>>(), [0x1000, 0x1100]);
        assert_eq!(
            select_sm_version(&sm, &[SPDM_SECURED_VERSION_1_1]),
            Some(0x1100)
        );
        assert_eq!(select_sm_version(&sm, &[SPDM_SECURED_VERSION_1_2]), None);
        assert!(parse_key_exchange(&buf[..n - 1], 96).is_err());
        assert!(parse_key_exchange(&buf[..n], 64).is_err());
    }
    let mut buf = [0u8; 300];
    let req = KeyExchange {
        version: SpdmVersion::V1_0,
        meas_summary_type: 0,
        slot: 0,
        req_session_id: 1,
        session_policy: 0,
        random_data: &[0; 32],
        exchange: &[0; 64],
        opaque: &[],
        len: 0,
    };
    assert_eq!(
        encode_key_exchange(&req, &mut buf),
        Err(SpdmError::UnexpectedVersion)
    );
}

#[test]
fn key_exchange_rsp_round_trip() {
    let random = [1u8; 32];
    let exchange = [2u8; 64];
    let mut opaque = [0u8; 16];
    let on = encode_sm_version_selection(SPDM_SECURED_VERSION_1_1, &mut opaque).unwrap();
    assert_eq!(on, 12);
    assert_eq!(
        parse_sm_versions(&opaque[..on]),
        Ok(SmVersions::Selected(0x1100))
    );
    for (summary, verify) in [(false, true), (true, true), (false, false)] {
        let msh = [3u8; 48];
        let body = KeyExchangeRspBody {
            version: SpdmVersion::V1_2,
            heartbeat_period: 5,
            rsp_session_id: 0x1234,
            mut_auth_requested: 0,
            req_slot_id_param: 0,
            random_data: &random,
            exchange: &exchange,
            measurement_summary_hash: if summary { &msh } else { &[] },
            opaque: &opaque[..on],
        };
        let sig = [4u8; 96];
        let vd = [5u8; 48];
        let vd: &[u8] = if verify { &vd } else { &[] };
        let mut buf = [0u8; 512];
        let body_len = encode_key_exchange_rsp_body(&body, &mut buf).unwrap();
        let n = encode_key_exchange_rsp(&body, &sig, vd, &mut buf).unwrap();
        let params = KeyExchangeRspParams {
            version: SpdmVersion::V1_2,
            hash_size: 48,
            signature_size: 96,
            exchange_size: 64,
            measurement_summary: summary,
            verify_data: verify,
        };
        let p = parse_key_exchange_rsp(&buf[..n], &params).unwrap();
        assert_eq!(p.signature_offset, body_len);
        assert_eq!(p.verify_data_offset, body_len + 96);
        assert_eq!(p.len, n);
        assert_eq!(p.heartbeat_period, 5);
        assert_eq!(p.rsp_session_id, 0x1234);
        assert_eq!(p.random_data, random);
        assert_eq!(p.exchange, exchange);
        assert_eq!(p.measurement_summary_hash, body.measurement_summary_hash);
        assert_eq!(p.opaque, &opaque[..on]);
        assert_eq!(p.signature, sig);
        assert_eq!(p.verify_data, vd);
        assert!(parse_key_exchange_rsp(&buf[..n - 1], &params).is_err());
        let wrong = KeyExchangeRspParams {
            version: SpdmVersion::V1_3,
            ..params
        };
        assert_eq!(
            parse_key_exchange_rsp(&buf[..n], &wrong),
            Err(SpdmError::UnexpectedVersion)
        );
    }
    assert_eq!(session_id(0x1111, 0x2222), 0x2222_1111);
}

#[test]
fn finish_and_small_messages_round_trip() {
    let v = SpdmVersion::V1_2;
    let mut buf = [0u8; 256];
    let vd = [0xAAu8; 32];
    let n = encode_finish(v, 0, &[], &vd, &mut buf).unwrap();
    assert_eq!(n, 36);
    let f = parse_finish(&buf[..n], 32, 0).unwrap();
    assert_eq!(
        (f.verify_data, f.verify_data_offset, f.len),
        (&vd[..], 4, 36)
    );
    assert!(f.signature.is_empty());
    // A signature without mutual authentication is refused.
    let n = encode_finish(v, 1, &[1; 64], &vd, &mut buf).unwrap();
    assert_eq!(parse_finish(&buf[..n], 32, 0), Err(SpdmError::InvalidField));
    let f = parse_finish(&buf[..n], 32, 64).unwrap();
    assert_eq!((f.signature.len(), f.verify_data_offset), (64, 68));

    let n = encode_finish_rsp(v, &[], &mut buf).unwrap();
    assert_eq!(parse_finish_rsp(&buf[..n], v, 0).unwrap(), (&[][..], 4));
    let n = encode_finish_rsp(v, &vd, &mut buf).unwrap();
    assert_eq!(parse_finish_rsp(&buf[..n], v, 32).unwrap(), (&vd[..], 36));
    assert!(parse_finish_rsp(&buf[..n], v, 0).is_err());

    let n = encode_heartbeat(v, &mut buf).unwrap();
    assert_eq!(parse_heartbeat(&buf[..n]).unwrap().code, SPDM_HEARTBEAT);
    let n = encode_heartbeat_ack(v, &mut buf).unwrap();
    parse_heartbeat_ack(&buf[..n], v).unwrap();
    assert!(parse_heartbeat_ack(&buf[..n], SpdmVersion::V1_1).is_err());

    for op in [1u8, 2, 3] {
        let ku = KeyUpdate {
            version: v,
            operation: op,
            tag: 0x5A,
        };
        let n = encode_key_update(&ku, &mut buf).unwrap();
        assert_eq!(parse_key_update(&buf[..n]).unwrap(), ku);
        let n = encode_key_update_ack(&ku, &mut buf).unwrap();
        let ack = parse_key_update_ack(&buf[..n], v).unwrap();
        ku.check_ack(&ack).unwrap();
        let other = KeyUpdate { tag: 1, ..ku };
        assert_eq!(other.check_ack(&ack), Err(SpdmError::Mismatch));
    }
    assert_eq!(
        parse_key_update(&[0x12, SPDM_KEY_UPDATE, 4, 0]),
        Err(SpdmError::InvalidField)
    );
    let n = encode_end_session(v, SPDM_END_SESSION_CLEAR_NEGOTIATED_STATE, &mut buf).unwrap();
    assert_eq!(parse_end_session(&buf[..n]).unwrap().param1, 1);
    let n = encode_end_session_ack(v, &mut buf).unwrap();
    parse_end_session_ack(&buf[..n], v).unwrap();
    // Session requests need 1.1 or later.
    assert_eq!(
        parse_heartbeat(&[0x10, SPDM_HEARTBEAT, 0, 0]),
        Err(SpdmError::UnexpectedVersion)
    );
}

#[test]
fn opaque_data_rejects_malformed() {
    let mut good = [0u8; 24];
    let n = encode_sm_supported_versions(&[0x1100], &mut good).unwrap();
    // Header, element header, 5 data bytes (0x1100 LE), 3 bytes of padding.
    assert_eq!(n, 16);
    assert_eq!(
        &good[..n],
        &[1, 0, 0, 0, 0, 0, 5, 0, 1, 1, 1, 0x00, 0x11, 0, 0, 0]
    );
    let mut two = [0u8; 32];
    let n2 = encode_sm_supported_versions(&[0x1000, 0x1100], &mut two).unwrap();
    assert_eq!(
        &two[..n2],
        &[1, 0, 0, 0, 0, 0, 7, 0, 1, 1, 2, 0x00, 0x10, 0x00, 0x11, 0]
    );
    let mut bad = good;
    bad[8] = 2; // SMDataVersion
    assert!(parse_sm_versions(&bad[..n]).is_err());
    let mut bad = good;
    bad[15] = 1; // non-zero padding
    assert!(parse_sm_versions(&bad[..n]).is_err());
    assert!(parse_sm_versions(&good[..n - 1]).is_err());
    assert!(parse_sm_versions(&[0, 0, 0, 0]).is_err());
    assert!(parse_sm_versions(&[]).is_err());
    // A vendor element before the DMTF one is skipped.
    let mut v = vec![2u8, 0, 0, 0, 7, 2, 0xAA, 0xBB, 1, 0, 0x42, 0];
    v.extend_from_slice(&good[4..n]);
    assert_eq!(
        parse_sm_versions(&v)
            .unwrap()
            .versions()
            .collect::<Vec<_>>(),
        [0x1100]
    );
    assert!(encode_sm_supported_versions(&[], &mut good).is_err());
}

// --- Record ----------------------------------------------------------------------------------

/// libspdm's unit test vectors (test_spdm_secured_message/encode_decode): AES-256-GCM, key
/// 00..1f, IV 00 02 04 .. 16, SessionID 0x00112233, an 8-byte sequence number field,
/// application message 00..0f, no random padding.
fn libspdm_vector(seq: u64, cipher: &[u8; 18], mac: &[u8; 16]) {
    let key: Vec<u8> = (0u8..32).collect();
    let iv: [u8; 12] = core::array::from_fn(|i| (i * 2) as u8);
    let msg: Vec<u8> = (0u8..16).collect();
    let p = RecordParams {
        session_id: 0x0011_2233,
        iv: &iv,
        seq,
        seq_size: 8,
    };
    let mut out = [0u8; 64];
    let n = encode_record(&mut gcm(&key), &p, &msg, &[], &mut out).unwrap();
    assert_eq!(n, 4 + 8 + 2 + 18 + 16);
    assert_eq!(&out[..4], &[0x33, 0x22, 0x11, 0x00]);
    assert_eq!(&out[4..12], &seq.to_le_bytes());
    assert_eq!(&out[12..14], &[0x22, 0x00]);
    assert_eq!(&out[14..32], cipher);
    assert_eq!(&out[32..48], mac);
    let mut rx = out;
    let got = open_record(&mut gcm(&key), &p, &mut rx[..n]).unwrap();
    assert_eq!(got, &msg[..]);
}

#[test]
fn record_matches_libspdm_vectors() {
    libspdm_vector(
        0,
        &[
            0x9b, 0xfe, 0xd3, 0xb7, 0x04, 0x3d, 0x32, 0x86, 0x60, 0x3d, 0x86, 0x17, 0x33, 0xd6,
            0x7f, 0x95, 0x9a, 0x20,
        ],
        &[
            0x3d, 0x4f, 0xac, 0x58, 0xcb, 0x70, 0x6c, 0xf5, 0xa0, 0x27, 0x0a, 0xf6, 0x73, 0xf0,
            0xfe, 0x36,
        ],
    );
    // Little-endian sequence number XORed into IV bytes 0..8.
    libspdm_vector(
        0xaa55_aa55_aa55_aa55,
        &[
            0x0d, 0xea, 0x75, 0xea, 0xc6, 0x91, 0x37, 0x49, 0x94, 0x97, 0x52, 0x63, 0xf8, 0xc0,
            0x8f, 0x6c, 0x1a, 0xa4,
        ],
        &[
            0x0d, 0xcd, 0xb4, 0x8a, 0xd6, 0xfa, 0x24, 0x04, 0x79, 0xd5, 0xd8, 0xd2, 0xfe, 0x28,
            0x19, 0x14,
        ],
    );
}

#[test]
fn doe_record_layout_and_failures() {
    let key = [0x42u8; 32];
    let iv = [0x24u8; 12];
    let msg = [0x12u8, 0xE8, 0, 0];
    let p = RecordParams {
        session_id: session_id(1, 2),
        iv: &iv,
        seq: 5,
        seq_size: SPDM_PCI_DOE_SEQ_NUM_SIZE,
    };
    let mut out = [0u8; 64];
    let n = encode_record(&mut gcm(&key), &p, &msg, &[], &mut out).unwrap();
    assert_eq!(n, SPDM_PCI_DOE_RECORD_OVERHEAD + msg.len());
    assert_eq!(&out[..4], &[1, 0, 2, 0]);
    assert_eq!(u16::from_le_bytes([out[4], out[5]]) as usize, n - 6);
    let h = parse_record_header(&out[..n], 0).unwrap();
    assert_eq!((h.header_size, h.size, h.session_id), (6, n, 0x0002_0001));
    // DOE padding: up to 3 zero bytes.
    assert!(parse_record_header(&out[..n + 3], 0).is_ok());
    assert_eq!(
        parse_record_header(&out[..n + 4], 0),
        Err(RecordError::TrailingBytes)
    );

    let open = |buf: &[u8], p: &RecordParams<'_>| {
        let mut b = buf.to_vec();
        open_record(&mut gcm(&key), p, &mut b).map(|m| m.to_vec())
    };
    assert_eq!(open(&out[..n + 2], &p).unwrap(), msg);
    for i in [0usize, 6, n - 1] {
        let mut t = out;
        t[i] ^= 1;
        assert!(open(&t[..n], &p).is_err(), "byte {i}");
    }
    let mut t = out;
    t[n - 1] ^= 1;
    assert_eq!(open(&t[..n], &p), Err(RecordError::Decrypt));
    // Replay (expected 6) or skip (expected 4): the implicit number does not match.
    for seq in [4, 6] {
        assert_eq!(
            open(&out[..n], &RecordParams { seq, ..p }),
            Err(RecordError::Decrypt)
        );
    }
    assert_eq!(
        open(&out[..n], &RecordParams { session_id: 7, ..p }),
        Err(RecordError::WrongSessionId)
    );
    assert_eq!(open(&out[..n - 1], &p), Err(RecordError::Truncated));
    // Padding inside the ciphertext is dropped.
    let n = encode_record(&mut gcm(&key), &p, &msg, &[9, 9, 9], &mut out).unwrap();
    assert_eq!(open(&out[..n], &p).unwrap(), msg);
    assert_eq!(
        encode_record(&mut gcm(&key), &p, &msg, &[], &mut out[..20]),
        Err(RecordError::BufferTooSmall)
    );
}

#[test]
fn sequence_counter() {
    let mut c = SequenceCounter::new();
    assert_eq!(c.take(), Ok(0));
    assert_eq!(c.take(), Ok(1));
    let mut r = SequenceCounter::new();
    assert_eq!(r.accept(1), Err(RecordError::WrongSequence));
    r.accept(0).unwrap();
    assert_eq!(r.accept(0), Err(RecordError::WrongSequence));
    r.accept(1).unwrap();
    assert_eq!(r.next(), 2);
    r.reset();
    assert_eq!(r.next(), 0);
    // Refuses to wrap.
    let mut c = SequenceCounter::new();
    for _ in 0..3 {
        c.take().unwrap();
    }
    assert_eq!(record_nonce(&[0; 12], 0x0102), {
        let mut n = [0u8; 12];
        n[0] = 2;
        n[1] = 1;
        n
    });
}

#[test]
fn sequence_counter_refuses_wrap() {
    let mut c = SequenceCounter::at(u64::MAX - 1);
    assert_eq!(c.take(), Ok(u64::MAX - 1));
    assert_eq!(c.take(), Err(RecordError::SequenceExhausted));
    assert_eq!(c.take(), Err(RecordError::SequenceExhausted));
    let mut r = SequenceCounter::at(u64::MAX);
    assert_eq!(r.accept(u64::MAX), Err(RecordError::SequenceExhausted));
}

// --- Key schedule ----------------------------------------------------------------------------

fn label(version: &str, len: u16, label: &str, ctx: &[u8]) -> Vec<u8> {
    let mut v = len.to_le_bytes().to_vec();
    v.extend_from_slice(format!("spdm{version} ").as_bytes());
    v.extend_from_slice(label.as_bytes());
    v.extend_from_slice(ctx);
    v
}

macro_rules! independent_schedule {
    ($name:ident, $h:ty, $size:expr) => {
        #[test]
        fn $name() {
            type Hk = hkdf::Hkdf<$h>;
            let h: usize = $size;
            for (version, vstr) in [
                (SpdmVersion::V1_1, "1.1"),
                (SpdmVersion::V1_2, "1.2"),
                (SpdmVersion::V1_3, "1.3"),
            ] {
                let dhe: Vec<u8> = (0..48u8).map(|i| i.wrapping_mul(7)).collect();
                let th1: Vec<u8> = (0..h as u8).collect();
                let th2: Vec<u8> = (0..h as u8).map(|i| 0xFF - i).collect();

                // Independent: RustCrypto hkdf.
                let (hs, hk_hs) = Hk::extract(Some(&vec![0u8; h]), &dhe);
                let expand = |prk: &[u8], info: Vec<u8>, n: usize| {
                    let hk = Hk::from_prk(prk).unwrap();
                    let mut o = vec![0u8; n];
                    hk.expand(&info, &mut o).unwrap();
                    o
                };
                let n16 = h as u16;
                let req_hs = expand(&hs, label(vstr, n16, "req hs data", &th1), h);
                let rsp_hs = expand(&hs, label(vstr, n16, "rsp hs data", &th1), h);
                let _ = hk_hs;
                let fin_req = expand(&req_hs, label(vstr, n16, "finished", &[]), h);
                let salt1 = expand(&hs, label(vstr, n16, "derived", &[]), h);
                let (master, _) = Hk::extract(Some(&salt1), &vec![0u8; h]);
                let req_app = expand(&master, label(vstr, n16, "req app data", &th2), h);
                let rsp_app = expand(&master, label(vstr, n16, "rsp app data", &th2), h);
                let key = expand(&rsp_app, label(vstr, 32, "key", &[]), 32);
                let iv = expand(&rsp_app, label(vstr, 12, "iv", &[]), 12);
                let upd = expand(&req_app, label(vstr, n16, "traffic upd", &[]), h);
                let upd_key = expand(&upd, label(vstr, 16, "key", &[]), 16);
                let mut m = <hmac::Hmac<$h> as Mac>::new_from_slice(&fin_req).unwrap();
                m.update(&th1);
                let vd = m.finalize().into_bytes().to_vec();

                // The codec's schedule.
                let mut ks = KeySchedule::new(RcHmac(h), version).unwrap();
                let hs2 = ks.handshake_secret(&dhe).unwrap();
                assert_eq!(hs2.as_bytes(), &hs[..]);
                let (r, s) = ks.handshake_traffic_secrets(&hs2, &th1).unwrap();
                assert_eq!((r.as_bytes(), s.as_bytes()), (&req_hs[..], &rsp_hs[..]));
                let fk = ks.finished_key(&r).unwrap();
                assert_eq!(fk.as_bytes(), &fin_req[..]);
                assert_eq!(ks.verify_data(&fk, &th1).unwrap().as_bytes(), &vd[..]);
                let ms = ks.master_secret(&hs2).unwrap();
                assert_eq!(ms.as_bytes(), &master[..]);
                let (ra, sa) = ks.app_traffic_secrets(&ms, &th2).unwrap();
                assert_eq!((ra.as_bytes(), sa.as_bytes()), (&req_app[..], &rsp_app[..]));
                let tk = ks.traffic_keys(&sa, 32).unwrap();
                assert_eq!((tk.key(), &tk.iv[..]), (&key[..], &iv[..]));
                let u = ks.update_secret(&ra).unwrap();
                assert_eq!(u.as_bytes(), &upd[..]);
                assert_eq!(ks.traffic_keys(&u, 16).unwrap().key(), &upd_key[..]);
                assert_eq!(
                    ks.handshake_traffic_secrets(&hs2, &th1[1..]).unwrap_err(),
                    KeyScheduleError::InvalidSize
                );
            }
        }
    };
}

independent_schedule!(key_schedule_sha256, Sha256, 32);
independent_schedule!(key_schedule_sha384, Sha384, 48);
independent_schedule!(key_schedule_sha512, Sha512, 64);

#[test]
fn hkdf_rfc5869_case1() {
    // RFC 5869 A.1 (SHA-256).
    let ikm = [0x0bu8; 22];
    let salt: Vec<u8> = (0u8..=0x0c).collect();
    let info: Vec<u8> = (0xf0u8..=0xf9).collect();
    let mut h = RcHmac(32);
    let prk = hkdf_extract(&mut h, &salt, &ikm).unwrap();
    assert_eq!(
        prk.as_bytes(),
        hex("077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5")
    );
    let mut okm = [0u8; 42];
    hkdf_expand(&mut h, prk.as_bytes(), &info, &mut okm).unwrap();
    assert_eq!(
        okm.to_vec(),
        hex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    );
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn bin_concat_layout() {
    let mut out = [0u8; 128];
    let n = bin_concat(SpdmVersion::V1_2, 32, "key", &[], &mut out).unwrap();
    assert_eq!(&out[..n], b"\x20\x00spdm1.2 key");
    assert_eq!(
        bin_concat(SpdmVersion::V1_0, 32, "key", &[], &mut out),
        Err(KeyScheduleError::UnsupportedVersion)
    );
    assert!(KeySchedule::new(RcHmac(0), SpdmVersion::V1_2).is_err());
    assert_eq!(dhe_exchange_size(SPDM_DHE_SECP384R1), Some(96));
    assert_eq!(dhe_secret_size(SPDM_DHE_SECP256R1), Some(32));
    assert_eq!(aead_key_size(SPDM_AEAD_CHACHA20_POLY1305), Some(32));
    assert_eq!(
        strongest_u16(
            SPDM_DHE_SECP256R1 | SPDM_DHE_SECP384R1,
            &SPDM_DHE_PREFERENCE
        ),
        Some(SPDM_DHE_SECP384R1)
    );
}

#[test]
fn opaque_data_formats_per_version() {
    // SPDM 1.1: DSP0277 1.0 header (SpecID "DMTF" LE, OpaqueVersion 1, TotalElements 1,
    // reserved u16), then the same element as format 1.
    let mut buf = [0u8; 32];
    let n =
        encode_sm_supported_versions_for(SpdmVersion::V1_1, &[0x1000, 0x1100], &mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        &[
            0x46, 0x54, 0x4D, 0x44, 1, 1, 0, 0, // header
            0, 0, 7, 0, 1, 1, 2, 0x00, 0x10, 0x00, 0x11, 0 // element + 1 byte padding
        ]
    );
    let sm = parse_sm_versions_for(SpdmVersion::V1_1, &buf[..n]).unwrap();
    assert_eq!(sm.versions().collect::<Vec<_>>(), [0x1000, 0x1100]);
    assert_eq!(select_sm_version(&sm, &[0x1000, 0x1100]), Some(0x1100));
    // The 1.2 parser does not accept the 1.1 layout, nor the other way round.
    assert!(parse_sm_versions(&buf[..n]).is_err());
    assert!(parse_sm_versions_for(SpdmVersion::V1_2, &buf[..n]).is_err());
    let mut g = [0u8; 32];
    let gn = encode_sm_supported_versions(&[0x1000, 0x1100], &mut g).unwrap();
    assert!(parse_sm_versions_for(SpdmVersion::V1_1, &g[..gn]).is_err());
    // 1.2 and 1.3: identical to the format-1 functions.
    for v in [SpdmVersion::V1_2, SpdmVersion::V1_3] {
        let mut b = [0u8; 32];
        let bn = encode_sm_supported_versions_for(v, &[0x1000, 0x1100], &mut b).unwrap();
        assert_eq!(&b[..bn], &g[..gn]);
        assert_eq!(
            parse_sm_versions_for(v, &b[..bn]),
            parse_sm_versions(&g[..gn])
        );
        let mut s1 = [0u8; 16];
        let mut s2 = [0u8; 16];
        let n1 = encode_sm_version_selection_for(v, 0x1100, &mut s1).unwrap();
        let n2 = encode_sm_version_selection(0x1100, &mut s2).unwrap();
        assert_eq!(&s1[..n1], &s2[..n2]);
    }
    // Selection at 1.1: 16 bytes.
    let mut sel = [0u8; 16];
    let sn = encode_sm_version_selection_for(SpdmVersion::V1_1, 0x1100, &mut sel).unwrap();
    assert_eq!(
        &sel[..sn],
        &[0x46, 0x54, 0x4D, 0x44, 1, 1, 0, 0, 0, 0, 4, 0, 1, 0, 0x00, 0x11]
    );
    assert_eq!(
        parse_sm_versions_for(SpdmVersion::V1_1, &sel[..sn]),
        Ok(SmVersions::Selected(0x1100))
    );
    // A wrong SpecID or OpaqueVersion is refused; the reserved field is ignored.
    let mut bad = sel;
    bad[0] ^= 1;
    assert!(parse_sm_versions_for(SpdmVersion::V1_1, &bad[..sn]).is_err());
    let mut bad = sel;
    bad[4] = 2;
    assert!(parse_sm_versions_for(SpdmVersion::V1_1, &bad[..sn]).is_err());
    let mut reserved = sel;
    reserved[6] = 0xAA;
    assert!(parse_sm_versions_for(SpdmVersion::V1_1, &reserved[..sn]).is_ok());
    assert!(parse_sm_versions_for(SpdmVersion::V1_1, &sel[..sn - 1]).is_err());
    assert!(parse_sm_versions_for(SpdmVersion::V1_1, &[]).is_err());
    // No sessions at 1.0.
    assert_eq!(
        encode_sm_supported_versions_for(SpdmVersion::V1_0, &[0x1100], &mut buf),
        Err(SpdmError::UnexpectedVersion)
    );
    assert_eq!(
        encode_sm_version_selection_for(SpdmVersion::V1_0, 0x1100, &mut buf),
        Err(SpdmError::UnexpectedVersion)
    );
    assert_eq!(
        parse_sm_versions_for(SpdmVersion::V1_0, &sel[..sn]),
        Err(SpdmError::UnexpectedVersion)
    );
    // Too small a buffer is an error, not a panic.
    assert!(
        encode_sm_supported_versions_for(SpdmVersion::V1_1, &[0x1100], &mut buf[..15]).is_err()
    );
    assert!(encode_sm_version_selection_for(SpdmVersion::V1_1, 0x1100, &mut buf[..15]).is_err());
}
