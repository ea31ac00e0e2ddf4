//! Reading the kernel's sysfs evidence of one PCI device directory, and the reference file.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use coco_spdm::meas::{
    type_name, SPDM_MEAS_INDEX_MAX, SPDM_MEAS_INDEX_MIN, SPDM_MEAS_VALUE_TYPE_MASK,
};

/// A problem reading the evidence: `Io` (missing or unreadable file: exit 2) or `Bad`
/// (a file that does not have the documented format: a verification failure, exit 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The file could not be read.
    Io(String),
    /// The file's content is malformed.
    Bad(String),
}

/// One measurement block as sysfs shows it (`<index>_type`, `<index>_format`, `<index>_value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysfsBlock {
    /// The `<index>_type` file (a type name or `type_N`).
    pub kind: String,
    /// The `<index>_format` file (`digest` or `raw`).
    pub format: String,
    /// The `<index>_value` file, decoded from hex (`None`: not valid lowercase hex).
    pub value: Option<Vec<u8>>,
    /// The `<index>_value` file as read.
    pub value_text: String,
}

/// Reads a whole binary file.
pub fn read_bin(path: &Path) -> Result<Vec<u8>, ReadError> {
    fs::read(path).map_err(|e| ReadError::Io(format!("cannot read {}: {e}", path.display())))
}

/// Reads a sysfs text file: its content without the one trailing newline.
pub fn read_text(path: &Path) -> Result<String, ReadError> {
    let bytes = read_bin(path)?;
    let s = String::from_utf8(bytes)
        .map_err(|_| ReadError::Bad(format!("{} is not UTF-8 text", path.display())))?;
    Ok(s.strip_suffix('\n').unwrap_or(&s).to_string())
}

/// Decodes lowercase hex (no separators); `None` if malformed. Uppercase is accepted only when
/// `strict` is false.
pub fn parse_hex(s: &str, strict: bool) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let ok = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
    if s.bytes().any(|c| {
        if strict {
            !ok(c)
        } else {
            !c.is_ascii_hexdigit()
        }
    }) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Lowercase hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Lowercase hex of `b`, shortened to 32 bytes with "..." for messages.
pub fn short_hex(b: &[u8]) -> String {
    if b.len() > 32 {
        format!("{}... ({} bytes)", hex(&b[..32]), b.len())
    } else {
        hex(b)
    }
}

/// Whether `name` is a canonical decimal block index 1 to 254.
pub fn block_index(name: &str) -> Option<u8> {
    let i: u8 = name.parse().ok()?;
    (i.to_string() == name && (SPDM_MEAS_INDEX_MIN..=SPDM_MEAS_INDEX_MAX).contains(&i)).then_some(i)
}

/// The files of `measurements/` other than the block files (a copy may lack some, e.g. the
/// write-only `refresh`).
pub const MEAS_FILES: [&str; 12] = [
    "status",
    "stale",
    "timestamp",
    "fresh_capable",
    "spdm_version",
    "hash_algorithm",
    "signature_algorithm",
    "slot",
    "nonce",
    "refresh",
    "transcript",
    "signature",
];

/// The three files of a block, `<index>_<field>`, in this order.
pub const BLOCK_FIELDS: [&str; 3] = ["type", "format", "value"];

/// An entry of `measurements/` that is neither a block file nor one of [`MEAS_FILES`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unexpected {
    /// A directory (`measurements/` has none).
    Dir(String),
    /// A block file name (`<digits>_type`, `_format`, `_value`) whose index is not a canonical
    /// decimal 1 to 254, e.g. `07_type`, `0_value`, `255_format`.
    BadIndex(String),
    /// Any other file.
    File(String),
}

impl Unexpected {
    /// The entry's name in `measurements/`.
    pub fn name(&self) -> &str {
        match self {
            Unexpected::Dir(n) | Unexpected::BadIndex(n) | Unexpected::File(n) => n,
        }
    }

    /// The failure message: `measurements/NAME: unexpected ...`.
    pub fn describe(&self) -> String {
        match self {
            Unexpected::Dir(n) => format!("measurements/{n}: unexpected directory"),
            Unexpected::BadIndex(n) => {
                format!("measurements/{n}: unexpected file (not a block index 1 to 254)")
            }
            Unexpected::File(n) => format!("measurements/{n}: unexpected file"),
        }
    }
}

/// Splits a block file name `<digits>_<field>` into its index part and field number (an index
/// of `BLOCK_FIELDS`); the index part is not checked beyond being decimal digits.
pub fn block_file(name: &str) -> Option<(&str, usize)> {
    let (index, field) = name.rsplit_once('_')?;
    let field = BLOCK_FIELDS.iter().position(|f| *f == field)?;
    (!index.is_empty() && index.bytes().all(|c| c.is_ascii_digit())).then_some((index, field))
}

/// The measurement blocks of `meas_dir`, from its `<index>_type`, `<index>_format` and
/// `<index>_value` files: index → block. A block with only some of its three files is an
/// error (`Io`, naming the missing file). Directories, block file names with a non-canonical
/// index and unknown files are returned in the second list (sorted by name), to be reported as
/// unexpected.
pub fn read_blocks(
    meas_dir: &Path,
) -> Result<(BTreeMap<u8, SysfsBlock>, Vec<Unexpected>), ReadError> {
    let rd = fs::read_dir(meas_dir)
        .map_err(|e| ReadError::Io(format!("cannot list {}: {e}", meas_dir.display())))?;
    // Index → which of its files are present.
    let mut present: BTreeMap<u8, [bool; 3]> = BTreeMap::new();
    let mut other = Vec::new();
    for entry in rd {
        let entry =
            entry.map_err(|e| ReadError::Io(format!("cannot list {}: {e}", meas_dir.display())))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        // A named attribute group is a plain directory of files: nothing in it is a directory
        // (symlinks followed, for copies).
        if entry.path().is_dir() {
            other.push(Unexpected::Dir(name));
            continue;
        }
        match block_file(&name) {
            Some((index, field)) => match block_index(index) {
                Some(i) => present.entry(i).or_default()[field] = true,
                None => other.push(Unexpected::BadIndex(name)),
            },
            None if MEAS_FILES.contains(&name.as_str()) => {}
            None => other.push(Unexpected::File(name)),
        }
    }
    let mut blocks = BTreeMap::new();
    for (index, have) in present {
        let path = |field: &str| meas_dir.join(format!("{index}_{field}"));
        if let Some(f) = (0..BLOCK_FIELDS.len()).find(|f| !have[*f]) {
            return Err(ReadError::Io(format!(
                "incomplete measurement block {index}: {} is missing",
                path(BLOCK_FIELDS[f]).display()
            )));
        }
        let value_text = read_text(&path("value"))?;
        blocks.insert(
            index,
            SysfsBlock {
                kind: read_text(&path("type"))?,
                format: read_text(&path("format"))?,
                value: parse_hex(&value_text, true),
                value_text,
            },
        );
    }
    other.sort_by(|a, b| a.name().cmp(b.name()));
    Ok((blocks, other))
}

/// The evidence read from a device's `measurements/` directory.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// The device directory.
    pub device: PathBuf,
    /// `transcript`.
    pub transcript: Vec<u8>,
    /// `signature`.
    pub signature: Vec<u8>,
    /// `spdm_version`.
    pub spdm_version: String,
    /// `hash_algorithm`.
    pub hash_algorithm: String,
    /// `signature_algorithm`.
    pub signature_algorithm: String,
    /// `slot`.
    pub slot: String,
    /// `nonce`.
    pub nonce: String,
    /// `timestamp`.
    pub timestamp: String,
    /// `stale`.
    pub stale: String,
    /// The blocks, by index.
    pub blocks: BTreeMap<u8, SysfsBlock>,
    /// Entries of `measurements/` that are neither block files nor known files.
    pub unexpected: Vec<Unexpected>,
}

/// Reads the `status` file (checked first: after a failed reading the other files may be
/// missing).
pub fn read_status(device: &Path) -> Result<String, ReadError> {
    read_text(&device.join("measurements/status"))
}

/// Reads every file of `device/measurements`.
pub fn read_evidence(device: &Path) -> Result<Evidence, ReadError> {
    let m = device.join("measurements");
    let (blocks, unexpected) = read_blocks(&m)?;
    Ok(Evidence {
        device: device.to_path_buf(),
        transcript: read_bin(&m.join("transcript"))?,
        signature: read_bin(&m.join("signature"))?,
        spdm_version: read_text(&m.join("spdm_version"))?,
        hash_algorithm: read_text(&m.join("hash_algorithm"))?,
        signature_algorithm: read_text(&m.join("signature_algorithm"))?,
        slot: read_text(&m.join("slot"))?,
        nonce: read_text(&m.join("nonce"))?,
        timestamp: read_text(&m.join("timestamp"))?,
        stale: read_text(&m.join("stale"))?,
        blocks,
        unexpected,
    })
}

/// One line of a reference file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefBlock {
    /// Measurement type (bits 6:0).
    pub kind: u8,
    /// Raw bit stream (else digest).
    pub raw: bool,
    /// The expected value.
    pub value: Vec<u8>,
}

/// Parses a measurement type: a number 0 to 127 or a name (`type_N` too).
pub fn parse_type(s: &str) -> Option<u8> {
    let n = s.strip_prefix("type_").unwrap_or(s);
    if let Ok(n) = n.parse::<u8>() {
        return (n <= SPDM_MEAS_VALUE_TYPE_MASK).then_some(n);
    }
    (0..=SPDM_MEAS_VALUE_TYPE_MASK).find(|t| type_name(*t) == Some(s))
}

/// Parses a reference file: one block per line, `INDEX TYPE digest|raw HEX`; `#` starts a
/// comment; blank lines are ignored. Errors name the line.
pub fn parse_reference(text: &str) -> Result<BTreeMap<u8, RefBlock>, String> {
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}", n + 1);
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        let [index, kind, form, value] = f[..] else {
            return Err(err("expected INDEX TYPE digest|raw HEX".to_string()));
        };
        let index = index
            .parse::<u8>()
            .ok()
            .filter(|i| (SPDM_MEAS_INDEX_MIN..=SPDM_MEAS_INDEX_MAX).contains(i))
            .ok_or_else(|| err(format!("bad index '{index}' (1 to 254)")))?;
        let kind = parse_type(kind).ok_or_else(|| err(format!("unknown type '{kind}'")))?;
        let raw = match form {
            "raw" => true,
            "digest" => false,
            _ => return Err(err(format!("bad form '{form}' (digest or raw)"))),
        };
        let value = parse_hex(value, false).ok_or_else(|| err(format!("bad hex '{value}'")))?;
        if out.insert(index, RefBlock { kind, raw, value }).is_some() {
            return Err(err(format!("index {index} listed twice")));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_indices() {
        assert_eq!(parse_hex("00ff", true), Some(vec![0, 0xff]));
        assert_eq!(parse_hex("00FF", true), None);
        assert_eq!(parse_hex("00FF", false), Some(vec![0, 0xff]));
        assert_eq!(parse_hex("0", true), None);
        assert_eq!(parse_hex("0g", false), None);
        assert_eq!(parse_hex("", true), Some(vec![]));
        assert_eq!(hex(&[1, 0xab]), "01ab");
        assert_eq!(block_index("1"), Some(1));
        assert_eq!(block_index("254"), Some(254));
        assert_eq!(block_index("0"), None);
        assert_eq!(block_index("255"), None);
        assert_eq!(block_index("01"), None);
        assert_eq!(block_index("+1"), None);
        assert_eq!(block_file("1_type"), Some(("1", 0)));
        assert_eq!(block_file("254_value"), Some(("254", 2)));
        assert_eq!(block_file("07_format"), Some(("07", 1)));
        assert_eq!(block_file("_type"), None);
        assert_eq!(block_file("x1_type"), None);
        assert_eq!(block_file("1_name"), None);
        assert_eq!(block_file("1_type_value"), None);
        assert_eq!(block_file("hash_algorithm"), None);
        assert_eq!(block_file("value"), None);
    }

    #[test]
    fn reference_format() {
        let r = parse_reference(
            "# comment\n\n1 immutable_rom digest AABB\n 6 7 raw 03  # svn\n9 type_12 raw \n",
        );
        assert!(r.unwrap_err().starts_with("line 5:"));
        let r = parse_reference("1 immutable_rom digest AABB\n6 7 raw 03 # svn\n").unwrap();
        assert_eq!(
            r[&1],
            RefBlock {
                kind: 0,
                raw: false,
                value: vec![0xaa, 0xbb]
            }
        );
        assert_eq!(r[&6].kind, 7);
        assert!(r[&6].raw);
        assert!(parse_reference("1 rom digest 00")
            .unwrap_err()
            .contains("unknown type"));
        assert!(parse_reference("1 1 hashed 00")
            .unwrap_err()
            .contains("bad form"));
        assert!(parse_reference("255 1 raw 00")
            .unwrap_err()
            .contains("bad index"));
        assert!(parse_reference("1 1 raw 00\n1 1 raw 00")
            .unwrap_err()
            .contains("twice"));
        assert_eq!(parse_type("type_12"), Some(12));
        assert_eq!(parse_type("128"), None);
    }
}
