//! The emulated endpoint's measurement blocks: built-in defaults that look like a real device,
//! a simple text file format (`--measurements FILE`), and a "firmware update" switch.
//!
//! # Default blocks
//!
//! | index | type                  | form   | value                                         |
//! |-------|-----------------------|--------|-----------------------------------------------|
//! | 1     | immutable_rom (0)     | digest | hash of "coco-endpoint immutable ROM v1"      |
//! | 2     | mutable_firmware (1)  | digest | hash of "coco-endpoint firmware image 1.4.2"  |
//! | 3     | hardware_config (2)   | digest | hash of "coco-endpoint hardware config: fuses=0x5a" |
//! | 4     | firmware_config (3)   | digest | hash of "coco-endpoint firmware config: secure-boot=on" |
//! | 5     | version (6)           | raw    | "1.4.2" (UTF-8)                               |
//! | 6     | svn (7)               | raw    | 3 as an 8-byte little-endian integer          |
//!
//! Digests use the negotiated measurement hash (the endpoint selects MeasurementHashAlgo equal
//! to its BaseHashAlgo). When the requester sets RawBitStreamRequested (1.2+), blocks given as
//! data to hash are sent as that raw data instead (raw bit set).
//!
//! # Measurements file (`--measurements FILE`)
//!
//! One block per line, `INDEX TYPE FORM VALUE`; blank lines and lines starting with `#` are
//! ignored.
//!
//! * `INDEX`: 1 to 254, each at most once.
//! * `TYPE`: a number 0 to 127 or a name: immutable_rom, mutable_firmware, hardware_config,
//!   firmware_config, manifest, device_mode, version, svn, hem, informational,
//!   structured_manifest.
//! * `FORM`: `raw` (the value is sent as is, raw bit set) or `digest` (sent as a digest).
//! * `VALUE`: `text:STRING` (the rest of the line, UTF-8), `hex:HEX` or plain `HEX` (bytes).
//!   For `digest`, `text:` and plain hex are data that the endpoint hashes with the negotiated
//!   measurement hash; `hex:` is the exact digest sent (its size is not checked against the
//!   hash).
//!
//! Example: `2 mutable_firmware digest text:my firmware 2.0` or `6 svn raw 0400000000000000`.
//!
//! # Firmware update switch (`--fw-update-file PATH`)
//!
//! While PATH exists (checked at every GET_MEASUREMENTS) the endpoint reports "updated"
//! firmware: every `mutable_firmware` block given as data is computed from the file's content
//! (or, if the file is empty, from "coco-endpoint firmware image 1.5.0"), and every raw
//! `version` block reads "1.5.0". Removing the file reverts. Tests can flip the same switch in
//! process with [`MeasConfig::set_updated`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use coco_spdm::meas::{
    type_name, SPDM_MEAS_INDEX_MAX, SPDM_MEAS_INDEX_MIN, SPDM_MEAS_TYPE_FIRMWARE_CONFIG,
    SPDM_MEAS_TYPE_HARDWARE_CONFIG, SPDM_MEAS_TYPE_IMMUTABLE_ROM, SPDM_MEAS_TYPE_MUTABLE_FIRMWARE,
    SPDM_MEAS_TYPE_SVN, SPDM_MEAS_TYPE_VERSION, SPDM_MEAS_VALUE_RAW, SPDM_MEAS_VALUE_TYPE_MASK,
};

use crate::pki::spdm_hash;

/// Firmware version reported before an update.
pub const FW_VERSION: &str = "1.4.2";
/// Firmware version reported after an update.
pub const FW_VERSION_UPDATED: &str = "1.5.0";
/// The data whose hash is the mutable firmware measurement after an update (empty file).
pub const FW_IMAGE_UPDATED: &str = "coco-endpoint firmware image 1.5.0";

/// How a block's value is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockValue {
    /// Sent as is, as a raw bit stream.
    Raw(Vec<u8>),
    /// Data hashed with the negotiated measurement hash; sent as a digest.
    DigestOf(Vec<u8>),
    /// An exact digest, sent as is.
    Digest(Vec<u8>),
}

/// One configured measurement block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSpec {
    /// Index, 1 to 254.
    pub index: u8,
    /// Measurement type, 0 to 127 (without the raw bit).
    pub kind: u8,
    /// The value.
    pub value: BlockValue,
}

impl BlockSpec {
    /// DMTFSpecMeasurementValueType and value bytes for measurement hash `hash` (a BaseHashAlgo
    /// bit; see [`crate::pki::spdm_hash`]), `raw_requested` asking for raw data where the
    /// endpoint has it. `None` if the hash is not supported.
    pub fn render(&self, hash: u32, raw_requested: bool) -> Option<(u8, Vec<u8>)> {
        match &self.value {
            BlockValue::Raw(v) => Some((self.kind | SPDM_MEAS_VALUE_RAW, v.clone())),
            BlockValue::DigestOf(data) if raw_requested => {
                Some((self.kind | SPDM_MEAS_VALUE_RAW, data.clone()))
            }
            BlockValue::DigestOf(data) => Some((self.kind, spdm_hash(hash, data)?)),
            BlockValue::Digest(d) => Some((self.kind, d.clone())),
        }
    }
}

/// The default blocks (see the module documentation), before or after a firmware update.
pub fn default_blocks() -> Vec<BlockSpec> {
    let digest = |index, kind, text: &str| BlockSpec {
        index,
        kind,
        value: BlockValue::DigestOf(text.as_bytes().to_vec()),
    };
    vec![
        digest(
            1,
            SPDM_MEAS_TYPE_IMMUTABLE_ROM,
            "coco-endpoint immutable ROM v1",
        ),
        digest(
            2,
            SPDM_MEAS_TYPE_MUTABLE_FIRMWARE,
            "coco-endpoint firmware image 1.4.2",
        ),
        digest(
            3,
            SPDM_MEAS_TYPE_HARDWARE_CONFIG,
            "coco-endpoint hardware config: fuses=0x5a",
        ),
        digest(
            4,
            SPDM_MEAS_TYPE_FIRMWARE_CONFIG,
            "coco-endpoint firmware config: secure-boot=on",
        ),
        BlockSpec {
            index: 5,
            kind: SPDM_MEAS_TYPE_VERSION,
            value: BlockValue::Raw(FW_VERSION.as_bytes().to_vec()),
        },
        BlockSpec {
            index: 6,
            kind: SPDM_MEAS_TYPE_SVN,
            value: BlockValue::Raw(3u64.to_le_bytes().to_vec()),
        },
    ]
}

fn parse_hex(s: &str) -> Result<Vec<u8>, String> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!("bad hex '{s}'"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| e.to_string()))
        .collect()
}

/// Parses a measurement type: a number 0 to 127 or a name.
pub fn parse_type(s: &str) -> Result<u8, String> {
    if let Ok(n) = s.parse::<u8>() {
        if n <= SPDM_MEAS_VALUE_TYPE_MASK {
            return Ok(n);
        }
        return Err(format!("measurement type {n} above 127"));
    }
    (0..=SPDM_MEAS_VALUE_TYPE_MASK)
        .find(|t| type_name(*t) == Some(s))
        .ok_or_else(|| format!("unknown measurement type '{s}'"))
}

/// Parses the `--measurements` file format (see the module documentation).
pub fn parse_blocks(text: &str) -> Result<Vec<BlockSpec>, String> {
    let mut out: Vec<BlockSpec> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let err = |m: String| format!("line {line_no}: {m}");
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.splitn(4, char::is_whitespace);
        let (Some(index), Some(kind), Some(form), Some(value)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err("expected INDEX TYPE raw|digest VALUE".to_string()));
        };
        let index = index
            .parse::<u8>()
            .ok()
            .filter(|i| (SPDM_MEAS_INDEX_MIN..=SPDM_MEAS_INDEX_MAX).contains(i))
            .ok_or_else(|| err(format!("bad index '{index}' (1 to 254)")))?;
        if out.iter().any(|b| b.index == index) {
            return Err(err(format!("index {index} listed twice")));
        }
        let kind = parse_type(kind).map_err(err)?;
        let value = value.trim_start();
        let (tag, bytes) = if let Some(t) = value.strip_prefix("text:") {
            ("text", t.as_bytes().to_vec())
        } else if let Some(h) = value.strip_prefix("hex:") {
            ("hex", parse_hex(h).map_err(err)?)
        } else {
            ("plain", parse_hex(value).map_err(err)?)
        };
        let value = match (form, tag) {
            ("raw", _) => BlockValue::Raw(bytes),
            ("digest", "hex") => BlockValue::Digest(bytes),
            ("digest", _) => BlockValue::DigestOf(bytes),
            _ => return Err(err(format!("bad form '{form}' (raw or digest)"))),
        };
        out.push(BlockSpec { index, kind, value });
    }
    if out.is_empty() {
        return Err("no measurement blocks".to_string());
    }
    Ok(out)
}

/// An endpoint's measurement configuration, shared by its connections.
#[derive(Debug, Default)]
pub struct MeasConfig {
    /// The blocks before any firmware update.
    pub blocks: Vec<BlockSpec>,
    /// `--fw-update-file`: while it exists the firmware is "updated".
    pub fw_update_file: Option<PathBuf>,
    updated: AtomicBool,
}

impl MeasConfig {
    /// A configuration with `blocks` and an optional update file.
    pub fn new(blocks: Vec<BlockSpec>, fw_update_file: Option<PathBuf>) -> Self {
        MeasConfig {
            blocks,
            fw_update_file,
            updated: AtomicBool::new(false),
        }
    }

    /// The default blocks, no update file.
    pub fn default_device() -> Self {
        MeasConfig::new(default_blocks(), None)
    }

    /// Sets or clears the in-process "firmware updated" switch (tests).
    pub fn set_updated(&self, updated: bool) {
        self.updated.store(updated, Ordering::SeqCst);
    }

    /// The update data if the firmware is updated now: the update file's content (or the
    /// built-in image name if it is empty or unreadable, or for the in-process switch).
    pub fn update(&self) -> Option<Vec<u8>> {
        if let Some(path) = &self.fw_update_file {
            if path.exists() {
                let data = std::fs::read(path).unwrap_or_default();
                return Some(if data.is_empty() {
                    FW_IMAGE_UPDATED.as_bytes().to_vec()
                } else {
                    data
                });
            }
        }
        self.updated
            .load(Ordering::SeqCst)
            .then(|| FW_IMAGE_UPDATED.as_bytes().to_vec())
    }

    /// The blocks as of now (with the firmware update applied if it is active), sorted by
    /// index, and whether the update is active.
    pub fn current(&self) -> (Vec<BlockSpec>, bool) {
        let mut blocks = self.blocks.clone();
        let update = self.update();
        if let Some(image) = &update {
            for b in &mut blocks {
                match (b.kind, &mut b.value) {
                    (SPDM_MEAS_TYPE_MUTABLE_FIRMWARE, BlockValue::DigestOf(data)) => {
                        *data = image.clone()
                    }
                    (SPDM_MEAS_TYPE_VERSION, BlockValue::Raw(v)) => {
                        *v = FW_VERSION_UPDATED.as_bytes().to_vec()
                    }
                    _ => {}
                }
            }
        }
        blocks.sort_by_key(|b| b.index);
        (blocks, update.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coco_spdm::auth::SPDM_HASH_SHA384;

    #[test]
    fn file_format() {
        let text = "\
# comment
1 immutable_rom digest text:rom v1
2 1 digest hex:00112233
 3 mutable_firmware digest 414243

5 version raw text:1.4.2 beta
6 svn raw hex:0300000000000000
7 127 raw 00
";
        let b = parse_blocks(text).unwrap();
        assert_eq!(b.len(), 6);
        assert_eq!(b[0].value, BlockValue::DigestOf(b"rom v1".to_vec()));
        assert_eq!(b[1].value, BlockValue::Digest(vec![0, 0x11, 0x22, 0x33]));
        assert_eq!(b[1].kind, 1);
        assert_eq!(b[2].value, BlockValue::DigestOf(b"ABC".to_vec()));
        assert_eq!(b[3].value, BlockValue::Raw(b"1.4.2 beta".to_vec()));
        assert_eq!(b[5].kind, 127);
        for bad in [
            "",
            "0 svn raw 00",
            "255 svn raw 00",
            "1 svn raw",
            "1 nosuch raw 00",
            "1 128 raw 00",
            "1 svn cooked 00",
            "1 svn raw 0",
            "1 svn raw zz",
            "1 svn raw 00\n1 svn raw 00",
        ] {
            assert!(parse_blocks(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn render_and_update() {
        let cfg = MeasConfig::default_device();
        let (blocks, updated) = cfg.current();
        assert!(!updated);
        assert_eq!(blocks.len(), 6);
        let (t, v) = blocks[1].render(SPDM_HASH_SHA384, false).unwrap();
        assert_eq!((t, v.len()), (SPDM_MEAS_TYPE_MUTABLE_FIRMWARE, 48));
        let (t, v) = blocks[1].render(SPDM_HASH_SHA384, true).unwrap();
        assert_eq!(t, SPDM_MEAS_TYPE_MUTABLE_FIRMWARE | SPDM_MEAS_VALUE_RAW);
        assert_eq!(v, b"coco-endpoint firmware image 1.4.2");
        assert_eq!(blocks[4].render(0, false).unwrap().1, b"1.4.2");
        assert_eq!(blocks[0].render(0, false), None);
        cfg.set_updated(true);
        let (after, updated) = cfg.current();
        assert!(updated);
        assert_ne!(after[1], blocks[1]);
        assert_eq!(after[4].value, BlockValue::Raw(b"1.5.0".to_vec()));
        assert_eq!(after[0], blocks[0]);
        cfg.set_updated(false);
        assert_eq!(cfg.current().0, blocks);

        let dir = std::env::temp_dir().join(format!("coco-meas-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("fw");
        let cfg = MeasConfig::new(default_blocks(), Some(path.clone()));
        assert_eq!(cfg.update(), None);
        std::fs::write(&path, b"").unwrap();
        assert_eq!(cfg.update(), Some(FW_IMAGE_UPDATED.as_bytes().to_vec()));
        std::fs::write(&path, b"custom image").unwrap();
        let (b, _) = cfg.current();
        assert_eq!(b[1].value, BlockValue::DigestOf(b"custom image".to_vec()));
        std::fs::remove_file(&path).unwrap();
        assert!(!cfg.current().1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
