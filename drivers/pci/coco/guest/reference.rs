// SPDX-License-Identifier: GPL-2.0

//! The measurement reference a confidential guest compares a TDI's measurements with:
//! `coco/measurements.ref` from the firmware loader (in the initramfs or /lib/firmware), in
//! coco-verify's reference format: one block per line, `INDEX TYPE digest|raw HEX`, `#`
//! comments. Every listed block must be measured with that type, form and value, and no other
//! block may be.

use crate::{channel::Failure, meas, requester::meas::Block};
use kernel::{bindings, device::Device, prelude::*};

/// The reference file's name for the firmware loader.
const NAME: &CStr = c"coco/measurements.ref";
/// The largest reference file taken.
const MAX: usize = 64 * 1024;

/// One line of the reference.
struct RefBlock {
    index: u8,
    value_type: u8,
    value: KVec<u8>,
}

fn hex_nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn parse_type(s: &[u8]) -> Option<u8> {
    let s = core::str::from_utf8(s).ok()?;
    let n = s.strip_prefix("type_").unwrap_or(s);
    if let Ok(n) = n.parse::<u8>() {
        return (n <= 0x7f).then_some(n);
    }
    (0..=0x7fu8).find(|&t| meas::type_name(t) == Some(s))
}

/// Parses the reference; the line number of the first bad line otherwise.
fn parse(text: &[u8]) -> Result<KVec<RefBlock>, usize> {
    let mut out = KVec::new();
    for (n, line) in text.split(|&c| c == b'\n').enumerate() {
        let line = line.split(|&c| c == b'#').next().unwrap_or(&[]);
        let mut f = line
            .split(|c| c.is_ascii_whitespace())
            .filter(|w| !w.is_empty());
        let Some(index) = f.next() else {
            continue;
        };
        let bad = n.saturating_add(1);
        let (Some(kind), Some(form), Some(value), None) = (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(bad);
        };
        let index = core::str::from_utf8(index)
            .ok()
            .and_then(|s| s.parse::<u8>().ok())
            .filter(|i| (1..=254).contains(i))
            .ok_or(bad)?;
        let kind = parse_type(kind).ok_or(bad)?;
        let raw = match form {
            b"raw" => meas::SPDM_MEAS_VALUE_RAW,
            b"digest" => 0,
            _ => return Err(bad),
        };
        if value.len() % 2 != 0 {
            return Err(bad);
        }
        let mut v = KVec::with_capacity(value.len() / 2, GFP_KERNEL).map_err(|_| bad)?;
        for pair in value.chunks(2) {
            let (Some(&h), Some(&l)) = (pair.first(), pair.get(1)) else {
                return Err(bad);
            };
            let b = hex_nibble(h).zip(hex_nibble(l)).ok_or(bad)?;
            v.push((b.0 << 4) | b.1, GFP_KERNEL).map_err(|_| bad)?;
        }
        if out.iter().any(|r: &RefBlock| r.index == index) {
            return Err(bad);
        }
        out.push(
            RefBlock {
                index,
                value_type: kind | raw,
                value: v,
            },
            GFP_KERNEL,
        )
        .map_err(|_| bad)?;
    }
    Ok(out)
}

/// Loads the reference for `dev` (the firmware loader logs nothing when it is missing).
fn load(dev: &Device) -> Result<KVec<RefBlock>, Failure> {
    let mut fw: *const bindings::firmware = core::ptr::null();
    // `Device` wraps `struct device` transparently.
    let raw = core::ptr::from_ref(dev)
        .cast_mut()
        .cast::<bindings::device>();
    // SAFETY: `fw` is a valid out pointer, `NAME` a NUL-terminated string, `raw` the live
    // device.
    let rc = unsafe { bindings::request_firmware_direct(&mut fw, NAME.as_char_ptr(), raw) };
    if rc != 0 || fw.is_null() {
        return Err(Failure::new(
            "no measurement reference (coco/measurements.ref)",
            ENOENT,
        ));
    }
    // SAFETY: `fw` is the loaded firmware until `release_firmware()`; its data is valid for
    // its size.
    let data = unsafe { core::slice::from_raw_parts((*fw).data, (*fw).size) };
    let r = if data.len() > MAX {
        Err(usize::MAX)
    } else {
        parse(data)
    };
    // SAFETY: Loaded above; `data` is not used after this.
    unsafe { bindings::release_firmware(fw) };
    r.map_err(|line| {
        dev_err!(dev, "coco: measurements.ref: bad line {}\n", line);
        Failure::new("the measurement reference is malformed", EINVAL)
    })
}

/// Compares `blocks` (the TDI's measurements) with the reference.
pub(crate) fn check(dev: &Device, blocks: &[Block]) -> Result<(), Failure> {
    let reference = load(dev)?;
    for r in reference.iter() {
        let Some(b) = blocks.iter().find(|b| b.index == r.index) else {
            dev_err!(dev, "coco: measurement block {} is missing\n", r.index);
            return Err(Failure::new(
                "the measurements differ from the reference (a block is missing)",
                EKEYREJECTED,
            ));
        };
        if b.value_type != r.value_type || b.value[..] != r.value[..] {
            dev_err!(
                dev,
                "coco: measurement block {} differs from the reference\n",
                r.index
            );
            return Err(Failure::new(
                "the measurements differ from the reference",
                EKEYREJECTED,
            ));
        }
    }
    if let Some(b) = blocks
        .iter()
        .find(|b| !reference.iter().any(|r| r.index == b.index))
    {
        dev_err!(
            dev,
            "coco: measurement block {} is not in the reference\n",
            b.index
        );
        return Err(Failure::new(
            "the measurements differ from the reference (an unexpected block)",
            EKEYREJECTED,
        ));
    }
    dev_info!(
        dev,
        "coco: measurements match the reference ({} blocks)\n",
        reference.len()
    );
    Ok(())
}

#[kunit_tests(coco_guest)]
mod tests {
    use super::*;

    fn one(text: &[u8]) -> Option<(u8, u8, usize)> {
        let r = parse(text).ok()?;
        let b = r.first()?;
        Some((b.index, b.value_type, b.value.len()))
    }

    /// coco-verify's format: names or numbers, digest or raw, comments and blank lines.
    #[test]
    fn reference_lines() {
        assert_eq!(one(b"1 immutable_rom digest 00ff\n"), Some((1, 0, 2)));
        assert_eq!(
            one(b"# c\n\n5 version raw 312e30 # trailing\n"),
            Some((5, 0x86, 3))
        );
        assert_eq!(one(b"254 type_4 digest AB"), Some((254, 4, 1)));
        assert_eq!(parse(b"").map(|r| r.len()), Ok(0));
    }

    /// Every malformed line is refused with its number.
    #[test]
    fn reference_refuses_bad_lines() {
        assert_eq!(parse(b"0 immutable_rom digest 00").err(), Some(1));
        assert_eq!(parse(b"255 immutable_rom digest 00").err(), Some(1));
        assert_eq!(parse(b"1 no_such_type digest 00").err(), Some(1));
        assert_eq!(parse(b"1 type_128 digest 00").err(), Some(1));
        assert_eq!(parse(b"1 immutable_rom hashed 00").err(), Some(1));
        assert_eq!(parse(b"1 immutable_rom digest 0").err(), Some(1));
        assert_eq!(parse(b"1 immutable_rom digest 0g").err(), Some(1));
        assert_eq!(parse(b"1 immutable_rom digest").err(), Some(1));
        assert_eq!(parse(b"1 immutable_rom digest 00 extra").err(), Some(1));
        assert_eq!(
            parse(b"1 immutable_rom digest 00\n1 version raw 01").err(),
            Some(2)
        );
    }
}
