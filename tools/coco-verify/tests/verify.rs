//! coco-verify against real signed exchanges: an in-process coco-endpoint responder is driven
//! like the kernel drives a device (VCA, then signed GET_MEASUREMENTS for all blocks, or the
//! count and each index with only the last request signed), the evidence is written as the
//! kernel's sysfs files into a temporary directory, and the verifier must accept it, and reject
//! every tampered variant with a specific message.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use coco_doe::{decode_object, encode_object, object_size, DOE_TYPE_CMA, PCI_SIG_VENDOR_ID};
use coco_endpoint::pki::{
    build_identity, ChainFault, Identity, KeyKind, PkiOptions, DEFAULT_CMA_ID,
};
use coco_endpoint::{Fault, Responder};
use coco_spdm::auth::*;
use coco_spdm::meas::*;
use coco_spdm::*;
use coco_verify::{run, Options, EXIT_FAIL, EXIT_OK, EXIT_USAGE};
use rand::RngExt;

fn identity(key: KeyKind, fault: ChainFault) -> Arc<Identity> {
    type Cache = Mutex<HashMap<(KeyKind, ChainFault), Arc<Identity>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(HashMap::new()));
    let mut cache = cache.lock().unwrap();
    let id = cache.entry((key, fault)).or_insert_with(|| {
        Arc::new(
            build_identity(&PkiOptions {
                dir: None,
                key,
                slots: vec![0, 1],
                cma_id: DEFAULT_CMA_ID.to_string(),
                fault,
            })
            .unwrap(),
        )
    });
    Arc::clone(id)
}

/// How the requester reads the measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seq {
    /// One signed GET_MEASUREMENTS for all blocks.
    AllSigned,
    /// The count, then each index, only the last signed.
    CountThenEach,
    /// All blocks unsigned, the count, then each index, only the last signed.
    AllThenEach,
}

/// What the kernel would export after one reading.
struct Reading {
    id: Arc<Identity>,
    version: SpdmVersion,
    transcript: Vec<u8>,
    signature: Vec<u8>,
    nonce: [u8; 32],
    slot: u8,
    hash: String,
    asym: String,
    /// Signed blocks, by index: (value type, value).
    blocks: BTreeMap<u8, (u8, Vec<u8>)>,
    exchanges: usize,
    /// Length of the VCA at the start of the transcript (0 before 1.2).
    vca_len: usize,
}

struct Requester {
    responder: Responder,
    v: SpdmVersion,
    caps: Capabilities,
    alg: Algorithms,
    vca: Vec<u8>,
    l: Vec<u8>,
}

impl Requester {
    fn exchange(&mut self, msg: &[u8]) -> Vec<u8> {
        let mut obj = vec![0u8; object_size(msg.len()).unwrap()];
        encode_object(PCI_SIG_VENDOR_ID, DOE_TYPE_CMA, msg, &mut obj).unwrap();
        let reply = self.responder.respond(&obj).object.expect("an answer");
        decode_object(&reply).unwrap().payload.to_vec()
    }

    fn open(id: &Arc<Identity>, v: SpdmVersion) -> Requester {
        let responder = Responder::with_identity(
            [
                SpdmVersion::V1_0,
                SpdmVersion::V1_1,
                SpdmVersion::V1_2,
                SpdmVersion::V1_3,
            ]
            .map(SpdmVersion::to_entry)
            .to_vec(),
            Fault::None,
            Arc::clone(id),
        );
        let mut c = Requester {
            responder,
            v,
            caps: Capabilities::new(v),
            alg: Algorithms::new(v),
            vca: Vec::new(),
            l: Vec::new(),
        };
        let mut out = [0u8; 256];
        let n = encode_get_version(&mut out).unwrap();
        let rsp = c.exchange(&out[..n]);
        let vr = parse_version_response(&rsp).unwrap();
        c.vca.extend_from_slice(&out[..n]);
        c.vca.extend_from_slice(
            &rsp[..SPDM_VERSION_RESPONSE_FIXED_SIZE
                + SPDM_VERSION_ENTRY_SIZE * usize::from(vr.count())],
        );

        let mut caps = Capabilities::new(v);
        caps.ct_exponent = 12;
        caps.flags = SPDM_CAP_CERT | SPDM_CAP_CHAL;
        caps.data_transfer_size = 4600;
        caps.max_spdm_msg_size = 4600;
        let n = encode_get_capabilities(&caps, &mut out).unwrap();
        let rsp = c.exchange(&out[..n]);
        c.caps = parse_capabilities(&rsp, v).unwrap();
        c.vca.extend_from_slice(&out[..n]);
        c.vca.extend_from_slice(&rsp[..capabilities_size(v)]);

        let mut na = NegotiateAlgorithms::new(v);
        na.measurement_specification = SPDM_MEAS_SPEC_DMTF;
        na.base_asym = SPDM_ASYM_ECDSA_P256
            | SPDM_ASYM_ECDSA_P384
            | SPDM_ASYM_RSASSA_2048
            | SPDM_ASYM_RSASSA_3072;
        na.base_hash = SPDM_HASH_SHA256 | SPDM_HASH_SHA384;
        let n = encode_negotiate_algorithms(&na, &mut out).unwrap();
        let rsp = c.exchange(&out[..n]);
        c.alg = parse_algorithms(&rsp, v).unwrap();
        c.vca.extend_from_slice(&out[..n]);
        c.vca.extend_from_slice(&rsp[..c.alg.len]);
        c
    }

    /// One GET_MEASUREMENTS; appends to L1/L2 like the kernel; returns the response, the
    /// request and, if signed, the signature.
    fn get(&mut self, op: u8, signed: bool, slot: u8) -> (GetMeasurements, Vec<u8>, Vec<u8>) {
        let mut req = GetMeasurements::new(self.v, op, signed);
        if signed {
            req.nonce = rand::rng().random();
            req.slot_id = slot;
        }
        if self.v >= SpdmVersion::V1_3 {
            req.requester_context = rand::rng().random();
        }
        let mut out = [0u8; SPDM_GET_MEASUREMENTS_MAX_SIZE];
        let n = encode_get_measurements(&req, &mut out).unwrap();
        let request = out[..n].to_vec();
        let rsp = self.exchange(&request);
        let mh = negotiated_measurement_hash(&self.alg, self.caps.meas_cap()).unwrap();
        let params = MeasurementsParams::for_request(&req, self.alg.signature_size().unwrap(), mh);
        let m = parse_measurements(&rsp, &params).unwrap();
        m.check(&req).unwrap();
        self.l.extend_from_slice(&request);
        self.l.extend_from_slice(&rsp[..m.signature_offset]);
        let sig = m.signature.map(<[u8]>::to_vec).unwrap_or_default();
        (req, rsp[..m.signature_offset].to_vec(), sig)
    }
}

fn asym_sysfs_name(asym: u32) -> String {
    match asym {
        SPDM_ASYM_ECDSA_P256 => "ecdsa-p256",
        SPDM_ASYM_ECDSA_P384 => "ecdsa-p384",
        SPDM_ASYM_RSASSA_2048 => "rsassa-2048",
        SPDM_ASYM_RSASSA_3072 => "rsassa-3072",
        other => panic!("asym {other:#x}"),
    }
    .to_string()
}

fn read_device(key: KeyKind, v: SpdmVersion, slot: u8, seq: Seq) -> Reading {
    let id = identity(key, ChainFault::None);
    read_device_with(id, v, slot, seq)
}

fn read_device_with(id: Arc<Identity>, v: SpdmVersion, slot: u8, seq: Seq) -> Reading {
    let mut c = Requester::open(&id, v);
    let mut blocks = BTreeMap::new();
    let mut record = |rsp: &[u8], c: &Requester| {
        let mh = negotiated_measurement_hash(&c.alg, c.caps.meas_cap()).unwrap();
        let params = MeasurementsParams {
            version: c.v,
            signed: false,
            signature_size: 0,
            measurement_hash_size: mh,
        };
        let m = parse_measurements(rsp, &params).unwrap();
        for b in m.blocks() {
            blocks.insert(b.index, (b.value_type, b.value.to_vec()));
        }
    };
    let (req, sig, exchanges) = match seq {
        Seq::AllSigned => {
            let (req, rsp, sig) = c.get(SPDM_MEAS_OP_ALL, true, slot);
            record(&rsp, &c);
            (req, sig, 1)
        }
        Seq::CountThenEach | Seq::AllThenEach => {
            let mut n = 0;
            if seq == Seq::AllThenEach {
                let (_, rsp, _) = c.get(SPDM_MEAS_OP_ALL, false, slot);
                record(&rsp, &c);
                n += 1;
            }
            let (_, rsp, _) = c.get(SPDM_MEAS_OP_TOTAL, false, slot);
            let total = rsp[2];
            n += 1;
            let mut last = None;
            for index in 1..=total {
                let (req, rsp, sig) = c.get(index, index == total, slot);
                record(&rsp, &c);
                last = Some((req, sig));
                n += 1;
            }
            let (req, sig) = last.unwrap();
            (req, sig, n)
        }
    };
    let mut transcript = Vec::new();
    if v >= SpdmVersion::V1_2 {
        transcript.extend_from_slice(&c.vca);
    }
    let vca_len = transcript.len();
    transcript.extend_from_slice(&c.l);
    Reading {
        version: v,
        transcript,
        signature: sig,
        nonce: req.nonce,
        slot,
        hash: match c.alg.base_hash {
            SPDM_HASH_SHA256 => "sha256",
            SPDM_HASH_SHA384 => "sha384",
            h => panic!("hash {h:#x}"),
        }
        .to_string(),
        asym: asym_sysfs_name(c.alg.base_asym),
        blocks,
        exchanges,
        vca_len,
        id,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn write(path: &Path, data: impl AsRef<[u8]>) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

/// A fake device directory written as the kernel would.
struct Device {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Device {
    fn m(&self, name: &str) -> PathBuf {
        self.dir.join("measurements").join(name)
    }

    fn set(&self, name: &str, text: &str) {
        write(&self.m(name), format!("{text}\n"));
    }

    fn opts(&self) -> Options {
        Options {
            device: self.dir.clone(),
            ..Options::default()
        }
    }

    fn verify(&self) -> coco_verify::Outcome {
        run(&self.opts())
    }
}

fn export(r: &Reading) -> Device {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("0000:01:00.0");
    for s in &r.id.slots {
        write(
            &dir.join(format!("certificates/slot{}", s.slot)),
            s.certs.concat(),
        );
    }
    let d = Device { _tmp: tmp, dir };
    write(&d.m("transcript"), &r.transcript);
    write(&d.m("signature"), &r.signature);
    d.set(
        "spdm_version",
        &format!("{}.{}", r.version.major(), r.version.minor()),
    );
    d.set("hash_algorithm", &r.hash);
    d.set("signature_algorithm", &r.asym);
    d.set("slot", &r.slot.to_string());
    d.set("nonce", &hex(&r.nonce));
    d.set("timestamp", "1767225600");
    d.set("status", "ok");
    d.set("stale", "0");
    d.set("fresh_capable", "1");
    // Write-only in sysfs: nothing to read, but present.
    write(&d.m("refresh"), "");
    for (i, (t, value)) in &r.blocks {
        d.set(&format!("{i}_type"), &MeasurementTypeName(*t).to_string());
        d.set(
            &format!("{i}_format"),
            if t & SPDM_MEAS_VALUE_RAW != 0 {
                "raw"
            } else {
                "digest"
            },
        );
        d.set(&format!("{i}_value"), &hex(value));
    }
    d
}

fn assert_ok(out: &coco_verify::Outcome, needle: &str) {
    assert_eq!(out.code, EXIT_OK, "{}", out.text());
    assert!(out.text().contains(needle), "{}", out.text());
}

/// Asserts a verification failure with exactly one FAIL line containing `needle`
/// (`extra` other FAIL lines allowed).
fn assert_fail(out: &coco_verify::Outcome, needle: &str, max_lines: usize) {
    assert_eq!(out.code, EXIT_FAIL, "{}", out.text());
    let fails: Vec<&String> = out
        .lines
        .iter()
        .filter(|l| l.contains(": FAIL: "))
        .collect();
    assert!(
        fails.iter().any(|l| l.contains(needle)),
        "no FAIL line with '{needle}':\n{}",
        out.text()
    );
    assert!(fails.len() <= max_lines, "{}", out.text());
}

const VERSIONS: [SpdmVersion; 4] = [
    SpdmVersion::V1_0,
    SpdmVersion::V1_1,
    SpdmVersion::V1_2,
    SpdmVersion::V1_3,
];

#[test]
fn good_reading_all_blocks_every_version() {
    for v in VERSIONS {
        let r = read_device(KeyKind::P384, v, 0, Seq::AllSigned);
        assert_eq!(r.blocks.len(), 6);
        let d = export(&r);
        let out = d.verify();
        assert_ok(
            &out,
            &format!(
                "coco-verify: 0000:01:00.0: OK: 6 measurements signed by slot 0 (ecdsa-p384 sha384), SPDM {}.{}, nonce {}",
                v.major(),
                v.minor(),
                hex(&r.nonce)
            ),
        );
        assert_eq!(out.lines.len(), 1, "{}", out.text());
    }
}

#[test]
fn good_reading_count_then_each_index_last_signed() {
    for v in VERSIONS {
        for seq in [Seq::CountThenEach, Seq::AllThenEach] {
            let r = read_device(KeyKind::P256, v, 0, seq);
            assert!(r.exchanges >= 7);
            let d = export(&r);
            assert_ok(
                &d.verify(),
                "OK: 6 measurements signed by slot 0 (ecdsa-p256 sha",
            );
        }
    }
}

#[test]
fn good_reading_other_slot_and_rsa() {
    let r = read_device(KeyKind::P384, SpdmVersion::V1_2, 1, Seq::AllSigned);
    assert_ok(&export(&r).verify(), "signed by slot 1 (ecdsa-p384 sha384)");
    for v in [SpdmVersion::V1_1, SpdmVersion::V1_3] {
        let r = read_device(KeyKind::Rsa2048, v, 0, Seq::CountThenEach);
        assert_ok(&export(&r).verify(), "signed by slot 0 (rsassa-2048 ");
    }
}

#[test]
fn flipped_transcript_byte_fails_the_signature() {
    for v in [SpdmVersion::V1_1, SpdmVersion::V1_3] {
        let mut r = read_device(KeyKind::P384, v, 0, Seq::AllSigned);
        // The last byte: responder nonce / opaque / RequesterContext, not a block.
        *r.transcript.last_mut().unwrap() ^= 1;
        assert_fail(&export(&r).verify(), "signature verification failed", 2);
        // A VCA byte (1.3) or a block byte (1.1): caught by the signature at least.
        let mut r = read_device(KeyKind::P384, v, 0, Seq::CountThenEach);
        let mid = r.transcript.len() / 2;
        r.transcript[mid] ^= 0x80;
        assert_fail(&export(&r).verify(), "signature", 4);
    }
}

#[test]
fn flipped_signature_byte_fails() {
    let mut r = read_device(KeyKind::P384, SpdmVersion::V1_3, 0, Seq::AllSigned);
    r.signature[5] ^= 1;
    assert_fail(
        &export(&r).verify(),
        "signature (ecdsa-p384 sha384) with the slot 0 leaf key: signature verification failed",
        1,
    );
    let mut r = read_device(KeyKind::Rsa2048, SpdmVersion::V1_2, 0, Seq::AllSigned);
    r.signature[100] ^= 1;
    assert_fail(&export(&r).verify(), "signature verification failed", 1);
    r.signature.pop();
    assert_fail(&export(&r).verify(), "signature", 1);
}

#[test]
fn changed_value_type_or_format_file_fails() {
    let r = read_device(KeyKind::P384, SpdmVersion::V1_3, 0, Seq::AllSigned);
    let d = export(&r);
    let mut v = r.blocks[&2].1.clone();
    v[0] ^= 1;
    d.set("2_value", &hex(&v));
    assert_fail(
        &d.verify(),
        "measurements/2_value differs from the signed value",
        1,
    );
    d.set("2_value", &hex(&r.blocks[&2].1).to_uppercase());
    assert_fail(&d.verify(), "measurements/2_value is not lowercase hex", 1);
    d.set("2_value", &hex(&r.blocks[&2].1));
    assert_ok(&d.verify(), "OK");
    d.set("5_type", "svn");
    assert_fail(
        &d.verify(),
        "measurements/5_type is 'svn', the signed block's type is version",
        1,
    );
    d.set("5_type", "version");
    d.set("5_format", "digest");
    assert_fail(
        &d.verify(),
        "measurements/5_format is 'digest', the signed block is raw",
        1,
    );
}

/// Removes the three files of block `i`.
fn remove_block(d: &Device, i: u8) {
    for f in ["type", "format", "value"] {
        fs::remove_file(d.m(&format!("{i}_{f}"))).unwrap();
    }
}

#[test]
fn extra_or_missing_block_files_fail() {
    let r = read_device(KeyKind::P256, SpdmVersion::V1_2, 0, Seq::CountThenEach);
    assert!(r.blocks.contains_key(&3) && !r.blocks.contains_key(&7));
    let d = export(&r);
    d.set("7_type", "manifest");
    d.set("7_format", "raw");
    d.set("7_value", "00");
    assert_fail(
        &d.verify(),
        "measurements/7_type, 7_format, 7_value: files of a block that is not in the signed \
         transcript",
        1,
    );
    remove_block(&d, 7);
    assert_ok(&d.verify(), "OK: 6 measurements");
    remove_block(&d, 3);
    assert_fail(
        &d.verify(),
        "measurement 3 (hardware_config digest) is signed but has no measurements/3_type, \
         3_format, 3_value files",
        1,
    );

    // A block needs all three files: the missing one is named (and nothing is verified).
    for (field, other) in [("type", "format"), ("format", "value"), ("value", "type")] {
        let d = export(&r);
        fs::remove_file(d.m(&format!("3_{field}"))).unwrap();
        let out = d.verify();
        assert_eq!(out.code, EXIT_USAGE, "{}", out.text());
        let want = format!(
            "error: incomplete measurement block 3: {} is missing",
            d.m(&format!("3_{field}")).display()
        );
        assert_eq!(out.lines.len(), 1, "{}", out.text());
        assert!(out.lines[0].ends_with(&want), "{}", out.text());
        assert!(
            !out.text().contains(&format!("3_{other}")),
            "{}",
            out.text()
        );
    }
    // Also for a block that is not signed.
    let d = export(&r);
    d.set("9_value", "00");
    let out = d.verify();
    assert_eq!(out.code, EXIT_USAGE, "{}", out.text());
    assert!(
        out.text().contains("incomplete measurement block 9: ")
            && out.text().contains("/measurements/9_type is missing"),
        "{}",
        out.text()
    );
}

#[test]
fn unexpected_entries_in_measurements_fail() {
    let r = read_device(KeyKind::P256, SpdmVersion::V1_2, 0, Seq::AllSigned);
    // Block file names with a non-canonical index are not blocks, even beside a real block
    // of the same number (02_* would be block 2 if leading zeros were accepted, and then
    // verify since it is a copy of it).
    for name in [
        "07_type",
        "0_value",
        "255_type",
        "256_format",
        "02_value",
        "000_type",
    ] {
        let d = export(&r);
        d.set(name, "00");
        assert_fail(
            &d.verify(),
            &format!("measurements/{name}: unexpected file (not a block index 1 to 254)"),
            1,
        );
    }
    let d = export(&r);
    for f in ["type", "format", "value"] {
        fs::copy(d.m(&format!("2_{f}")), d.m(&format!("02_{f}"))).unwrap();
    }
    let out = d.verify();
    for f in ["type", "format", "value"] {
        assert_fail(
            &out,
            &format!("measurements/02_{f}: unexpected file (not a block index 1 to 254)"),
            3,
        );
    }
    // Unknown files, including names close to block files.
    for name in [
        "foo",
        "7_name",
        "x7_type",
        "_value",
        "7_type_old",
        "type",
        "uevent",
    ] {
        let d = export(&r);
        d.set(name, "00");
        let out = d.verify();
        assert_fail(&out, &format!("measurements/{name}: unexpected file"), 1);
        assert!(!out.text().contains("not a block index"), "{}", out.text());
    }
    // measurements/ has no directory: an empty one, one named like a block (the old layout)
    // or like a known file.
    for name in ["power", "7", "3", "status.d"] {
        let d = export(&r);
        fs::create_dir(d.m(name)).unwrap();
        d.set(&format!("{name}/value"), "00");
        assert_fail(
            &d.verify(),
            &format!("measurements/{name}: unexpected directory"),
            1,
        );
    }
    // Several at once: each reported, by name.
    let d = export(&r);
    d.set("07_type", "svn");
    d.set("notes", "");
    fs::create_dir(d.m("1")).unwrap();
    let out = d.verify();
    assert_fail(
        &out,
        "measurements/07_type: unexpected file (not a block index 1 to 254)",
        3,
    );
    assert_fail(&out, "measurements/notes: unexpected file", 3);
    assert_fail(&out, "measurements/1: unexpected directory", 3);
}

#[test]
fn old_block_directories_are_not_blocks() {
    // The layout before the attribute group: measurements/<index>/{type,format,value}.
    let r = read_device(KeyKind::P384, SpdmVersion::V1_3, 0, Seq::AllSigned);
    let d = export(&r);
    for i in r.blocks.keys() {
        for f in ["type", "format", "value"] {
            let flat = d.m(&format!("{i}_{f}"));
            write(&d.m(&format!("{i}/{f}")), fs::read(&flat).unwrap());
            fs::remove_file(flat).unwrap();
        }
    }
    let out = d.verify();
    let n = r.blocks.len();
    for (i, (t, _)) in &r.blocks {
        assert_fail(
            &out,
            &format!("measurements/{i}: unexpected directory"),
            2 * n,
        );
        assert_fail(
            &out,
            &format!(
                "measurement {i} ({} {}) is signed but has no measurements/{i}_type",
                MeasurementTypeName(*t & SPDM_MEAS_VALUE_TYPE_MASK),
                if t & SPDM_MEAS_VALUE_RAW != 0 {
                    "raw"
                } else {
                    "digest"
                }
            ),
            2 * n,
        );
    }
}

#[test]
fn wrong_nonce_file_fails() {
    let r = read_device(KeyKind::P384, SpdmVersion::V1_3, 0, Seq::AllSigned);
    let d = export(&r);
    let mut n = r.nonce;
    n[31] ^= 1;
    d.set("nonce", &hex(&n));
    assert_fail(&d.verify(), "nonce mismatch: the nonce file says", 1);
    d.set("nonce", &hex(&r.nonce[..31]));
    assert_fail(&d.verify(), "is not 64 lowercase hex digits", 1);
}

#[test]
fn wrong_slot_file_fails() {
    let r = read_device(KeyKind::P384, SpdmVersion::V1_2, 0, Seq::AllSigned);
    let d = export(&r);
    d.set("slot", "1");
    // Slot 1's key does not verify either.
    assert_fail(
        &d.verify(),
        "slot mismatch: the slot file says 1, the signed MEASUREMENTS came from slot 0",
        2,
    );
    d.set("slot", "8");
    assert_fail(&d.verify(), "slot is '8', not 0 to 7", 1);
    d.set("slot", "2");
    assert_eq!(d.verify().code, EXIT_USAGE); // certificates/slot2 does not exist
}

#[test]
fn reference_match_and_mismatch() {
    let r = read_device(KeyKind::P384, SpdmVersion::V1_3, 0, Seq::AllSigned);
    let d = export(&r);
    // --verbose prints the blocks in the reference format: use that as the reference.
    let out = run(&Options {
        verbose: true,
        ..d.opts()
    });
    assert_ok(&out, "OK");
    assert_eq!(out.lines.len(), 7);
    let reference = d.dir.parent().unwrap().join("reference");
    write(
        &reference,
        format!("# golden\n{}\n", out.lines[1..].join("\n")),
    );
    let with_ref = Options {
        reference: Some(reference.clone()),
        ..d.opts()
    };
    assert_ok(&run(&with_ref), ", matches reference");

    // Numbers for types, uppercase hex, comments: still a match.
    let mut text = String::new();
    for (i, (t, v)) in &r.blocks {
        let form = if t & SPDM_MEAS_VALUE_RAW != 0 {
            "raw"
        } else {
            "digest"
        };
        text.push_str(&format!(
            "{i} {} {form} {}  # block {i}\n",
            t & 0x7f,
            hex(v).to_uppercase()
        ));
    }
    write(&reference, &text);
    assert_ok(&run(&with_ref), ", matches reference");

    // Value of 2 changed, 6 missing, 9 extra, 5 of another type: each reported.
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines[1] = format!("2 mutable_firmware digest {}", "00".repeat(48));
    lines[4] = "5 svn raw 312e342e32".to_string();
    lines.pop();
    lines.push("9 informational raw 00".to_string());
    write(&reference, lines.join("\n"));
    let out = run(&with_ref);
    assert_fail(
        &out,
        "reference: measurement 2 (mutable_firmware digest) differs: signed ",
        4,
    );
    assert_fail(
        &out,
        "reference: measurement 5 is version raw, the reference says svn raw",
        4,
    );
    assert_fail(
        &out,
        "reference: measurement 6 (svn raw) is signed but not in the reference",
        4,
    );
    assert_fail(
        &out,
        "reference: measurement 9 is in the reference but not signed",
        4,
    );

    // A malformed reference is a usage error.
    write(&reference, "1 immutable_rom sha384 00\n");
    let out = run(&with_ref);
    assert_eq!(out.code, EXIT_USAGE);
    assert!(out.text().contains("line 1: bad form"), "{}", out.text());
}

#[test]
fn trust_anchor_accepts_the_endpoint_root_and_rejects_another() {
    let r = read_device(KeyKind::P384, SpdmVersion::V1_2, 0, Seq::AllSigned);
    let d = export(&r);
    let anchor = d.dir.parent().unwrap().join("root.der");
    write(&anchor, &r.id.trusted_root);
    let opts = Options {
        trust_anchor: Some(anchor.clone()),
        ..d.opts()
    };
    assert_ok(&run(&opts), ", chain anchored in the trust anchor");

    // PEM works too.
    let pem = x509_pem(&r.id.trusted_root);
    write(&anchor, pem);
    assert_ok(&run(&opts), "anchored");

    // A chain without its root: its first certificate must be signed by the anchor.
    let slot = r.id.slot(0).unwrap();
    write(&d.dir.join("certificates/slot0"), slot.certs[1..].concat());
    assert_ok(&run(&opts), "anchored");
    write(&d.dir.join("certificates/slot0"), slot.certs.concat());

    // Another root (another identity's) is rejected.
    let other = identity(KeyKind::P256, ChainFault::None);
    assert_ne!(other.trusted_root, r.id.trusted_root);
    write(&anchor, &other.trusted_root);
    assert_fail(
        &run(&opts),
        "certificates/slot0: trust anchor: the chain's first certificate is neither the trust anchor nor signed by it",
        1,
    );
    // An anchor that is not a certificate is a usage error.
    write(&anchor, b"not a certificate");
    assert_eq!(run(&opts).code, EXIT_USAGE);
}

fn x509_pem(der: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = "-----BEGIN CERTIFICATE-----\n".to_string();
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

#[test]
fn broken_chain_fails() {
    let id = identity(KeyKind::P256, ChainFault::BrokenChain);
    let r = read_device_with(id, SpdmVersion::V1_2, 0, Seq::AllSigned);
    assert_fail(
        &export(&r).verify(),
        "certificates/slot0: certificate 1 not signed by certificate 0: bad certificate signature",
        1,
    );
    let r = read_device(KeyKind::P256, SpdmVersion::V1_2, 0, Seq::AllSigned);
    let d = export(&r);
    let mut chain = r.id.slot(0).unwrap().certs.concat();
    chain.truncate(chain.len() - 1);
    write(&d.dir.join("certificates/slot0"), chain);
    assert_fail(
        &d.verify(),
        "certificates/slot0: certificate 2: malformed DER",
        1,
    );
    // The leaf of slot 1 after slot 0's chain: not signed by slot 0's leaf (not a CA).
    let mut chain = r.id.slot(0).unwrap().certs.concat();
    chain.extend_from_slice(r.id.slot(1).unwrap().certs.last().unwrap());
    write(&d.dir.join("certificates/slot0"), chain);
    assert_fail(&d.verify(), "is not a CA", 2);
}

#[test]
fn transcript_structure_is_checked() {
    let r = read_device(KeyKind::P256, SpdmVersion::V1_3, 0, Seq::CountThenEach);
    // Cut inside the last MEASUREMENTS.
    let mut cut = read_device(KeyKind::P256, SpdmVersion::V1_3, 0, Seq::AllSigned);
    cut.transcript.truncate(cut.transcript.len() - 3);
    assert_fail(
        &export(&cut).verify(),
        "transcript ends inside MEASUREMENTS",
        2,
    );
    // Declared as 1.2 while the messages are 1.3.
    let d = export(&r);
    d.set("spdm_version", "1.2");
    assert_fail(&d.verify(), "transcript:", 3);
    // A 1.2+ transcript must start with the VCA: drop it.
    let d = export(&r);
    write(&d.m("transcript"), &r.transcript[r.vca_len..]);
    assert_fail(&d.verify(), "transcript: GET_VERSION at offset 0", 2);
    // Unsupported version and algorithm names.
    let d = export(&r);
    d.set("spdm_version", "1.4");
    assert_fail(&d.verify(), "unsupported spdm_version '1.4'", 1);
    let d = export(&r);
    d.set("signature_algorithm", "ecdsa-p384");
    assert_fail(
        &d.verify(),
        "signature_algorithm is ecdsa-p384, ALGORITHMS in the transcript selected",
        2,
    );
    let d = export(&r);
    let other = if r.hash == "sha384" {
        "sha256"
    } else {
        "sha384"
    };
    d.set("hash_algorithm", other);
    assert_fail(
        &d.verify(),
        &format!("hash_algorithm is {other}, ALGORITHMS in the transcript selected"),
        2,
    );
}

#[test]
fn status_and_stale() {
    let r = read_device(KeyKind::P384, SpdmVersion::V1_3, 0, Seq::AllSigned);
    let d = export(&r);
    d.set("stale", "1");
    assert_fail(&d.verify(), "the reading is stale", 1);
    let out = run(&Options {
        allow_stale: true,
        ..d.opts()
    });
    assert_ok(&out, "warning: the reading is stale");
    d.set("stale", "0");
    d.set("status", "error: signature verification failed");
    assert_fail(
        &d.verify(),
        "the kernel reports the reading failed: error: signature verification failed",
        1,
    );
    // After a failed reading the other files may be gone: still a clean FAIL.
    fs::remove_file(d.m("transcript")).unwrap();
    assert_eq!(d.verify().code, EXIT_FAIL);
    d.set("status", "ok");
    let out = d.verify();
    assert_eq!(out.code, EXIT_USAGE);
    assert!(out.text().contains("cannot read"), "{}", out.text());
}

#[test]
fn binary_exit_codes() {
    let exe = env!("CARGO_BIN_EXE_coco-verify");
    let r = read_device(KeyKind::P384, SpdmVersion::V1_2, 0, Seq::AllSigned);
    let d = export(&r);
    let out = Command::new(exe)
        .arg("--device")
        .arg(&d.dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("coco-verify: 0000:01:00.0: OK: 6 measurements"),
        "{stdout}"
    );
    d.set("nonce", &"00".repeat(32));
    let out = Command::new(exe).arg("-d").arg(&d.dir).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL: nonce mismatch"));
    let out = Command::new(exe)
        .arg("--device")
        .arg(d.dir.join("nothing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
    let out = Command::new(exe).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(exe).arg("--help").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--trust-anchor"));
}
