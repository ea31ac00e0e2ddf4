//! `coco-verify`: re-verifies a PCIe device's signed SPDM measurements from the evidence the
//! kernel exports in sysfs, without trusting the kernel.
//!
//! # Usage
//!
//! ```text
//! coco-verify --device /sys/bus/pci/devices/0000:01:00.0 [--reference FILE]
//!             [--trust-anchor root.der] [--allow-stale] [--verbose]
//! ```
//!
//! Exit status: 0 when everything verified, 1 on a verification failure or mismatch (one
//! `coco-verify: DEV: FAIL: reason` line each), 2 on a usage error or an unreadable file.
//!
//! # What is checked
//!
//! 1. The certificate chain of the reading's slot (`D/certificates/slot<N>`): every certificate
//!    parses, is signed by the previous one (which must be a CA), a self-issued first
//!    certificate carries a valid self-signature, and with `--trust-anchor` (DER or PEM) the
//!    first certificate is the anchor or is signed by it.
//! 2. The MEASUREMENTS signature (`signature`) with the leaf's key: over Hash(transcript) for
//!    SPDM 1.0/1.1, over Hash(combined prefix "dmtf-spdm-v1.X.*" x4 + "responder-measurements
//!    signing" || Hash(transcript)) for 1.2+ (built by coco-spdm's
//!    `measurements_signed_message`). ECDSA P-256/P-384/P-521 (r || s) and RSASSA (PKCS#1
//!    v1.5; RSAPSS too) with SHA-256/384/512.
//! 3. The transcript, split and validated message by message with coco-spdm: for 1.2+ the VCA
//!    (whose ALGORITHMS must select the named hash and signature algorithms and whose
//!    CAPABILITIES must announce signed measurements), then GET_MEASUREMENTS / MEASUREMENTS
//!    pairs, each response matching its request; only the last request is signed, its nonce
//!    is `nonce`, its slot (1.1+) is `slot`; no response reports a content change (1.2+). The
//!    signed blocks are those of every MEASUREMENTS in the transcript (all covered by the
//!    signature; an index read twice must read the same). They must equal the block files
//!    exactly: same indices, `<index>_type`, `<index>_format`, `<index>_value`.
//! 4. With `--reference`, the signed blocks equal the reference file's, index by index.
//!    Format: one block per line, `INDEX TYPE digest|raw HEX`; TYPE a name (`immutable_rom`,
//!    `mutable_firmware`, ..., `type_N`) or a number 0-127; `#` starts a comment. `--verbose`
//!    prints the verified blocks in this format.
//!
//! `status` must be `ok`; `stale` must be `0` unless `--allow-stale` (which also accepts a
//! failed last reading when the previous one is still shown, `stale` 1).
//!
//! # Files read (in D)
//!
//! `certificates/slot<N>` (concatenated DER, root side first), and in `measurements/`:
//! `transcript`, `signature` (binary); `spdm_version` (`1.0`..`1.3`), `hash_algorithm`,
//! `signature_algorithm`, `slot`, `nonce` (64 lowercase hex), `timestamp`, `status`, `stale`
//! (text, one trailing newline); three files per block, named by its decimal index (1 to 254,
//! no leading zeros): `<index>_type`, `<index>_format` (`digest`/`raw`), `<index>_value`
//! (lowercase hex). A block with only some of its three files is an error (exit 2, naming the
//! missing file). `measurements/` is an attribute group, a plain directory of files: a
//! directory in it, a block file name with another index (`07_type`, `255_value`) or an unknown
//! file is a failure ("unexpected"); files it may also hold: `fresh_capable`, `refresh`. D may
//! be a copy of the device directory with these files.
//!
//! # A binary for a minimal guest
//!
//! A normal build links glibc dynamically (`libc.so.6`, `libgcc_s.so.1`, the loader). For a
//! busybox guest build a static-pie binary with no run-time dependency:
//!
//! ```text
//! RUSTFLAGS="-C target-feature=+crt-static" cargo build --release -p coco-verify \
//!     --target x86_64-unknown-linux-gnu
//! ```
//!
//! (`--target` keeps the flag away from build scripts and proc macros.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use coco_spdm::meas::{
    measurements_signed_message, MeasurementTypeName, SPDM_MEAS_CONTENT_CHANGED,
};
use coco_spdm::SpdmVersion;

pub mod chain;
pub mod crypto;
pub mod evidence;
pub mod transcript;

use crypto::{HashAlg, SigAlg};
use evidence::{hex, short_hex, ReadError, RefBlock};

/// Exit status: everything verified.
pub const EXIT_OK: i32 = 0;
/// Exit status: verification failure or mismatch.
pub const EXIT_FAIL: i32 = 1;
/// Exit status: usage error or unreadable file.
pub const EXIT_USAGE: i32 = 2;

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The PCI device directory.
    pub device: PathBuf,
    /// Reference measurements file.
    pub reference: Option<PathBuf>,
    /// Trust anchor certificate (DER or PEM).
    pub trust_anchor: Option<PathBuf>,
    /// Accept a reading marked stale.
    pub allow_stale: bool,
    /// Print the verified blocks.
    pub verbose: bool,
}

/// The result: exit status and the lines to print (stdout), or an error for stderr.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Exit status ([`EXIT_OK`], [`EXIT_FAIL`], [`EXIT_USAGE`]).
    pub code: i32,
    /// Output lines.
    pub lines: Vec<String>,
}

impl Outcome {
    /// All lines joined, for tests.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }
}

/// A signed measurement block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// DMTFSpecMeasurementValueType as sent.
    pub value_type: u8,
    /// The value.
    pub value: Vec<u8>,
}

impl Block {
    fn raw(&self) -> bool {
        self.value_type & coco_spdm::meas::SPDM_MEAS_VALUE_RAW != 0
    }

    fn kind(&self) -> u8 {
        self.value_type & coco_spdm::meas::SPDM_MEAS_VALUE_TYPE_MASK
    }

    fn format(&self) -> &'static str {
        if self.raw() {
            "raw"
        } else {
            "digest"
        }
    }

    fn describe(&self) -> String {
        format!("{} {}", MeasurementTypeName(self.kind()), self.format())
    }
}

/// The device name for messages: the last component of the device path.
fn device_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// Runs the whole verification.
pub fn run(opts: &Options) -> Outcome {
    let name = device_name(&opts.device);
    let mut v = Verifier {
        fails: Vec::new(),
        notes: Vec::new(),
    };
    match v.verify(opts) {
        Ok(summary) => {
            let mut lines: Vec<String> = v
                .notes
                .iter()
                .map(|n| format!("coco-verify: {name}: {n}"))
                .collect();
            if v.fails.is_empty() {
                lines.push(format!("coco-verify: {name}: OK: {}", summary.text));
                lines.extend(summary.blocks);
                Outcome {
                    code: EXIT_OK,
                    lines,
                }
            } else {
                lines.extend(
                    v.fails
                        .iter()
                        .map(|f| format!("coco-verify: {name}: FAIL: {f}")),
                );
                Outcome {
                    code: EXIT_FAIL,
                    lines,
                }
            }
        }
        Err(ReadError::Io(e)) => Outcome {
            code: EXIT_USAGE,
            lines: vec![format!("coco-verify: {name}: error: {e}")],
        },
        Err(ReadError::Bad(e)) => {
            v.fails.push(e);
            Outcome {
                code: EXIT_FAIL,
                lines: v
                    .fails
                    .iter()
                    .map(|f| format!("coco-verify: {name}: FAIL: {f}"))
                    .collect(),
            }
        }
    }
}

struct Summary {
    text: String,
    blocks: Vec<String>,
}

struct Verifier {
    fails: Vec<String>,
    notes: Vec<String>,
}

fn bad(m: String) -> ReadError {
    ReadError::Bad(m)
}

impl Verifier {
    fn fail(&mut self, m: impl Into<String>) {
        self.fails.push(m.into());
    }

    fn verify(&mut self, opts: &Options) -> Result<Summary, ReadError> {
        let dev = &opts.device;
        // Inputs given on the command line are read first: a bad one is a usage error.
        let reference = match &opts.reference {
            Some(p) => {
                let text = evidence::read_text(p).map_err(|e| match e {
                    ReadError::Io(m) | ReadError::Bad(m) => ReadError::Io(m),
                })?;
                Some(
                    evidence::parse_reference(&text)
                        .map_err(|e| ReadError::Io(format!("reference {}: {e}", p.display())))?,
                )
            }
            None => None,
        };
        let anchor = match &opts.trust_anchor {
            Some(p) => Some(
                chain::anchor_der(&evidence::read_bin(p)?)
                    .map_err(|e| ReadError::Io(format!("trust anchor {}: {e}", p.display())))?,
            ),
            None => None,
        };
        let anchor = match &anchor {
            Some(der) => Some(chain::parse_cert(der).map_err(|e| {
                ReadError::Io(format!(
                    "trust anchor {}: {e}",
                    opts.trust_anchor
                        .as_deref()
                        .unwrap_or(Path::new(""))
                        .display()
                ))
            })?),
            None => None,
        };

        let status = evidence::read_status(dev)?;
        // A failed reading leaves the previous one in place, marked stale: with
        // --allow-stale that previous reading is still checked.
        let stale_file =
            std::fs::read_to_string(dev.join("measurements/stale")).unwrap_or_default();
        if status != "ok" && !(opts.allow_stale && stale_file.trim_end() == "1") {
            return Err(bad(format!(
                "the kernel reports the reading failed: {status}"
            )));
        }
        if status != "ok" {
            self.notes.push(format!(
                "warning: the last reading failed ({status}); checking the previous one"
            ));
        }
        let ev = evidence::read_evidence(dev)?;
        let stale = match ev.stale.as_str() {
            "0" => false,
            "1" => true,
            s => return Err(bad(format!("stale is '{s}', not 0 or 1"))),
        };
        if stale {
            if opts.allow_stale {
                self.notes
                    .push("warning: the reading is stale (accepted: --allow-stale)".into());
            } else {
                self.fail("the reading is stale (the device may have changed since; --allow-stale accepts it)");
            }
        }
        let version = parse_version(&ev.spdm_version)
            .ok_or_else(|| bad(format!("unsupported spdm_version '{}'", ev.spdm_version)))?;
        let hash = HashAlg::from_name(&ev.hash_algorithm).ok_or_else(|| {
            bad(format!(
                "unsupported hash_algorithm '{}'",
                ev.hash_algorithm
            ))
        })?;
        let sig_alg = SigAlg::from_name(&ev.signature_algorithm).ok_or_else(|| {
            bad(format!(
                "unsupported signature_algorithm '{}'",
                ev.signature_algorithm
            ))
        })?;
        let slot: u8 = ev
            .slot
            .parse::<u8>()
            .ok()
            .filter(|s| *s < 8 && s.to_string() == ev.slot)
            .ok_or_else(|| bad(format!("slot is '{}', not 0 to 7", ev.slot)))?;
        let nonce = evidence::parse_hex(&ev.nonce, true)
            .filter(|n| n.len() == 32)
            .ok_or_else(|| {
                bad(format!(
                    "nonce '{}' is not 64 lowercase hex digits",
                    ev.nonce
                ))
            })?;
        let chain_bytes = evidence::read_bin(&dev.join(format!("certificates/slot{slot}")))?;

        // 1. Certificate chain.
        let mut leaf_spki = None;
        match chain::parse_chain(&chain_bytes) {
            Err(e) => self.fail(format!("certificates/slot{slot}: {e}")),
            Ok(certs) => {
                if let Err(e) = chain::check_chain(&certs, anchor.as_ref()) {
                    self.fail(format!("certificates/slot{slot}: {e}"));
                }
                if let (Some(a), Some(first)) = (&anchor, certs.first()) {
                    if let Err(e) = chain::check_anchor(first, a) {
                        self.fail(format!("certificates/slot{slot}: trust anchor: {e}"));
                    }
                }
                leaf_spki = certs.last().map(|c| c.cert.public_key().raw.to_vec());
            }
        }

        // 2. Signature.
        if let Some(spki) = &leaf_spki {
            let h = hash.digest(&ev.transcript);
            let mut msg = [0u8; 256];
            match measurements_signed_message(version, &h, &mut msg) {
                Err(e) => self.fail(format!("cannot build the signed message: {e}")),
                Ok(n) => {
                    let digest = if version >= SpdmVersion::V1_2 {
                        hash.digest(&msg[..n])
                    } else {
                        h
                    };
                    if let Err(e) = crypto::verify_spdm(spki, sig_alg, hash, &digest, &ev.signature)
                    {
                        self.fail(format!(
                            "signature ({} {}) with the slot {slot} leaf key: {e}",
                            sig_alg.name(),
                            hash.name()
                        ));
                    }
                }
            }
        }

        // 3. Transcript.
        let mut signed: Option<BTreeMap<u8, Block>> = None;
        match transcript::parse(&ev.transcript, version) {
            Err(e) => self.fail(e),
            Ok(t) => {
                if let Some(alg) = &t.algorithms {
                    if alg.base_hash != hash.spdm_bit() {
                        self.fail(format!(
                            "hash_algorithm is {}, ALGORITHMS in the transcript selected {}",
                            hash.name(),
                            coco_spdm::auth::hash_name(alg.base_hash)
                        ));
                    }
                    if alg.base_asym != sig_alg.spdm_bit() {
                        self.fail(format!(
                            "signature_algorithm is {}, ALGORITHMS in the transcript selected {}",
                            sig_alg.name(),
                            coco_spdm::auth::asym_name(alg.base_asym)
                        ));
                    }
                }
                signed = Some(self.check_exchanges(&t, version, slot, &nonce));
            }
        }

        let Some(signed) = signed else {
            return Ok(Summary {
                text: String::new(),
                blocks: Vec::new(),
            });
        };
        self.compare_sysfs(&signed, &ev);
        let mut matched = String::new();
        if let Some(r) = &reference {
            if self.compare_reference(&signed, r) {
                matched = ", matches reference".to_string();
            }
        }
        let anchored = if anchor.is_some() {
            ", chain anchored in the trust anchor"
        } else {
            ""
        };
        Ok(Summary {
            text: format!(
                "{} measurements signed by slot {slot} ({} {}), SPDM {}.{}, nonce {}, timestamp {}{anchored}{matched}",
                signed.len(),
                sig_alg.name(),
                hash.name(),
                version.major(),
                version.minor(),
                hex(&nonce),
                ev.timestamp,
            ),
            blocks: if opts.verbose {
                signed
                    .iter()
                    .map(|(i, b)| format!("{i} {} {}", b.describe(), hex(&b.value)))
                    .collect()
            } else {
                Vec::new()
            },
        })
    }

    /// Checks the measurement exchanges and returns the signed blocks.
    fn check_exchanges(
        &mut self,
        t: &transcript::Transcript<'_>,
        version: SpdmVersion,
        slot: u8,
        nonce: &[u8],
    ) -> BTreeMap<u8, Block> {
        let mut blocks: BTreeMap<u8, Block> = BTreeMap::new();
        let Some(last) = t.exchanges.last() else {
            return blocks;
        };
        if last.request.nonce[..] != *nonce {
            self.fail(format!(
                "nonce mismatch: the nonce file says {}, the signed GET_MEASUREMENTS carried {}",
                hex(nonce),
                hex(&last.request.nonce)
            ));
        }
        if version >= SpdmVersion::V1_1 && last.response.slot_id != slot {
            self.fail(format!(
                "slot mismatch: the slot file says {slot}, the signed MEASUREMENTS came from slot {}",
                last.response.slot_id
            ));
        }
        for e in &t.exchanges {
            if e.response.content_changed == SPDM_MEAS_CONTENT_CHANGED {
                self.fail(format!(
                    "the device reports that its measurements changed during the reading \
                     (MEASUREMENTS answering the request at transcript offset {})",
                    e.offset
                ));
            }
            for b in e.response.blocks() {
                let block = Block {
                    value_type: b.value_type,
                    value: b.value.to_vec(),
                };
                if let Some(old) = blocks.insert(b.index, block.clone()) {
                    if old != block {
                        self.fail(format!(
                            "measurement {} read twice in one signed transcript with different \
                             results ({} {}, then {} {})",
                            b.index,
                            old.describe(),
                            short_hex(&old.value),
                            block.describe(),
                            short_hex(&block.value)
                        ));
                    }
                }
            }
        }
        if blocks.is_empty() {
            self.fail("the signed transcript contains no measurement block");
        }
        blocks
    }

    /// Compares the signed blocks with the sysfs block files.
    fn compare_sysfs(&mut self, signed: &BTreeMap<u8, Block>, ev: &evidence::Evidence) {
        for u in &ev.unexpected {
            self.fail(u.describe());
        }
        for (i, b) in signed {
            let Some(s) = ev.blocks.get(i) else {
                self.fail(format!(
                    "measurement {i} ({}) is signed but has no measurements/{i}_type, \
                     {i}_format, {i}_value files",
                    b.describe()
                ));
                continue;
            };
            let kind = MeasurementTypeName(b.kind()).to_string();
            if s.kind != kind {
                self.fail(format!(
                    "measurements/{i}_type is '{}', the signed block's type is {kind}",
                    s.kind
                ));
            }
            if s.format != b.format() {
                self.fail(format!(
                    "measurements/{i}_format is '{}', the signed block is {}",
                    s.format,
                    b.format()
                ));
            }
            match &s.value {
                None => self.fail(format!(
                    "measurements/{i}_value is not lowercase hex: '{}'",
                    s.value_text
                )),
                Some(v) if *v != b.value => self.fail(format!(
                    "measurements/{i}_value differs from the signed value: sysfs {}, signed {}",
                    short_hex(v),
                    short_hex(&b.value)
                )),
                Some(_) => {}
            }
        }
        for i in ev.blocks.keys().filter(|i| !signed.contains_key(i)) {
            self.fail(format!(
                "measurements/{i}_type, {i}_format, {i}_value: files of a block that is not in \
                 the signed transcript"
            ));
        }
    }

    /// Compares the signed blocks with the reference; true if they match.
    fn compare_reference(
        &mut self,
        signed: &BTreeMap<u8, Block>,
        reference: &BTreeMap<u8, RefBlock>,
    ) -> bool {
        let before = self.fails.len();
        for (i, b) in signed {
            let Some(r) = reference.get(i) else {
                self.fail(format!(
                    "reference: measurement {i} ({}) is signed but not in the reference",
                    b.describe()
                ));
                continue;
            };
            let want = Block {
                value_type: r.kind
                    | if r.raw {
                        coco_spdm::meas::SPDM_MEAS_VALUE_RAW
                    } else {
                        0
                    },
                value: r.value.clone(),
            };
            if want.value_type != b.value_type {
                self.fail(format!(
                    "reference: measurement {i} is {}, the reference says {}",
                    b.describe(),
                    want.describe()
                ));
            } else if want.value != b.value {
                self.fail(format!(
                    "reference: measurement {i} ({}) differs: signed {}, reference {}",
                    b.describe(),
                    short_hex(&b.value),
                    short_hex(&want.value)
                ));
            }
        }
        for i in reference.keys().filter(|i| !signed.contains_key(i)) {
            self.fail(format!(
                "reference: measurement {i} is in the reference but not signed"
            ));
        }
        self.fails.len() == before
    }
}

/// Parses `1.0` to `1.3`.
fn parse_version(s: &str) -> Option<SpdmVersion> {
    match s {
        "1.0" => Some(SpdmVersion::V1_0),
        "1.1" => Some(SpdmVersion::V1_1),
        "1.2" => Some(SpdmVersion::V1_2),
        "1.3" => Some(SpdmVersion::V1_3),
        _ => None,
    }
}
