//! PCIe Data Object Exchange (DOE) data-object framing (PCIe Base Specification r6.x, 6.30).
//!
//! A DOE data object is a sequence of little-endian DWORDs (32-bit words):
//!
//! ```text
//! DW0: [15:0] vendor ID, [23:16] data object type, [31:24] reserved
//! DW1: [17:0] length in DW including this 2-DW header (0 encodes 2^18 DW), [31:18] reserved
//! DW2..: payload, always a whole number of DWORDs
//! ```
//!
//! Because the payload is a whole number of DWORDs, a protocol carried inside a DOE object
//! (CMA/SPDM) receives its message followed by up to 3 bytes of zero padding and must tolerate
//! them. [`encode_object`] writes that padding as zeros.
//!
//! Reserved header bits are written as zero by [`DoeHeader::encode`] and are *ignored* by
//! [`DoeHeader::decode`]: PCIe treats reserved fields as "must be ignored by the receiver" so
//! that later revisions can use them, and the Linux DOE core (`drivers/pci/doe.c`) masks them
//! the same way.
//!
//! This file is compiled both as the body of the `coco-doe` crate and directly into the kernel
//! module. It therefore uses only `core`, has no `unsafe`, never allocates and has no code path
//! that can panic: every access is bounds-checked with `get`, every size computation is checked.

/// PCI-SIG vendor ID, used for the standard DOE data object types.
pub const PCI_SIG_VENDOR_ID: u16 = 0x0001;

/// Data object type of DOE Discovery (vendor [`PCI_SIG_VENDOR_ID`]).
pub const DOE_TYPE_DISCOVERY: u8 = 0;

/// Data object type of CMA/SPDM (vendor [`PCI_SIG_VENDOR_ID`]).
pub const DOE_TYPE_CMA: u8 = 1;

/// Data object type of secured CMA/SPDM (DSP0277 secured messages, vendor [`PCI_SIG_VENDOR_ID`]).
pub const DOE_TYPE_SECURED_CMA: u8 = 2;

/// Size of a DOE data object header in bytes (2 DW).
pub const DOE_HEADER_SIZE: usize = 8;

/// Size of a DOE data object header in DWORDs.
pub const DOE_HEADER_DW: u32 = 2;

/// Mask of the length field in header DW1 (bits [17:0]).
pub const DOE_LENGTH_MASK: u32 = 0x0003_ffff;

/// Maximum length of a data object in DWORDs (2^18), encoded as 0 in the length field.
pub const DOE_MAX_LENGTH_DW: u32 = 1 << 18;

/// Maximum size of a data object in bytes, header included (2^18 DW = 1 MiB).
pub const DOE_MAX_OBJECT_SIZE: usize = 1 << 20;

/// Maximum payload size of a data object in bytes (1 MiB minus the header).
pub const DOE_MAX_PAYLOAD_SIZE: usize = DOE_MAX_OBJECT_SIZE - DOE_HEADER_SIZE;

/// Size of the DOE Discovery request and response payloads in bytes (1 DW).
pub const DOE_DISCOVERY_PAYLOAD_SIZE: usize = 4;

/// Size in bytes of a DOE Discovery request or response object, header included.
pub const DOE_DISCOVERY_OBJECT_SIZE: usize = DOE_HEADER_SIZE + DOE_DISCOVERY_PAYLOAD_SIZE;

/// Reasons a DOE data object cannot be decoded or encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DoeError {
    /// The buffer is shorter than the 8-byte header.
    TooShort,
    /// The buffer length is not a multiple of 4 bytes.
    NotDwordAligned,
    /// The length field does not match the number of DWORDs in the buffer.
    LengthMismatch,
    /// The length field is smaller than the 2-DW header itself.
    LengthTooSmall,
    /// The buffer holds fewer bytes than the length field announces (prefix decoding).
    Truncated,
    /// The output buffer is too small for the encoded object.
    BufferTooSmall,
    /// The object would exceed 2^18 DW (1 MiB), or a length does not fit the length field.
    TooLarge,
    /// A DOE Discovery payload is shorter than one DWORD.
    PayloadTooShort,
}

impl DoeError {
    /// A short, human-readable reason, suitable for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            DoeError::TooShort => "buffer shorter than the 8-byte DOE header",
            DoeError::NotDwordAligned => "buffer length is not a multiple of 4 bytes",
            DoeError::LengthMismatch => "DOE length field does not match the object size",
            DoeError::LengthTooSmall => "DOE length field is smaller than the 2-DW header",
            DoeError::Truncated => "buffer holds less than the DOE length field announces",
            DoeError::BufferTooSmall => "output buffer too small for the DOE object",
            DoeError::TooLarge => "DOE object larger than 2^18 DW (1 MiB)",
            DoeError::PayloadTooShort => "DOE discovery payload shorter than 1 DW",
        }
    }
}

impl core::fmt::Display for DoeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoded DOE data object header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DoeHeader {
    /// Vendor ID (DW0 bits [15:0]).
    pub vendor: u16,
    /// Data object type (DW0 bits [23:16]).
    pub object_type: u8,
    /// Object length in DWORDs including the 2-DW header, `2..=2^18` for a valid header.
    /// The on-the-wire value 0 is decoded as 2^18 and 2^18 is encoded as 0.
    pub length_dw: u32,
}

impl DoeHeader {
    /// Builds a header for a payload of `payload_len` bytes; the length covers the payload
    /// rounded up to whole DWORDs plus the header.
    ///
    /// Fails with [`DoeError::TooLarge`] if the object would exceed 2^18 DW.
    pub fn for_payload(vendor: u16, object_type: u8, payload_len: usize) -> Result<Self, DoeError> {
        let total = object_size(payload_len)?;
        let length_dw = u32::try_from(total / 4).map_err(|_| DoeError::TooLarge)?;
        Ok(DoeHeader {
            vendor,
            object_type,
            length_dw,
        })
    }

    /// Encodes the header into its 8-byte wire form, reserved bits zero.
    ///
    /// Fails with [`DoeError::LengthTooSmall`] if `length_dw < 2` and with
    /// [`DoeError::TooLarge`] if `length_dw > 2^18`.
    pub fn encode(&self) -> Result<[u8; DOE_HEADER_SIZE], DoeError> {
        if self.length_dw < DOE_HEADER_DW {
            return Err(DoeError::LengthTooSmall);
        }
        if self.length_dw > DOE_MAX_LENGTH_DW {
            return Err(DoeError::TooLarge);
        }
        // 2^18 & mask == 0, which is exactly the encoding of the maximum length.
        let length_field = self.length_dw & DOE_LENGTH_MASK;
        let [v0, v1] = self.vendor.to_le_bytes();
        let [l0, l1, l2, l3] = length_field.to_le_bytes();
        Ok([v0, v1, self.object_type, 0, l0, l1, l2, l3])
    }

    /// Decodes the header from the first 8 bytes of `buf`; further bytes are not looked at.
    ///
    /// Reserved bits (DW0 [31:24], DW1 [31:18]) are ignored. Fails with
    /// [`DoeError::TooShort`] if `buf` has fewer than 8 bytes and with
    /// [`DoeError::LengthTooSmall`] if the length field is 1 (0 means 2^18 and is valid).
    pub fn decode(buf: &[u8]) -> Result<Self, DoeError> {
        let bytes: [u8; DOE_HEADER_SIZE] = buf
            .get(..DOE_HEADER_SIZE)
            .and_then(|b| b.try_into().ok())
            .ok_or(DoeError::TooShort)?;
        let [v0, v1, object_type, _reserved, l0, l1, l2, l3] = bytes;
        let length_field = u32::from_le_bytes([l0, l1, l2, l3]) & DOE_LENGTH_MASK;
        let length_dw = if length_field == 0 {
            DOE_MAX_LENGTH_DW
        } else {
            length_field
        };
        if length_dw < DOE_HEADER_DW {
            return Err(DoeError::LengthTooSmall);
        }
        Ok(DoeHeader {
            vendor: u16::from_le_bytes([v0, v1]),
            object_type,
            length_dw,
        })
    }

    /// Total object size in bytes (header included) announced by the length field, or `None`
    /// if it does not fit in `usize`.
    pub fn size_bytes(&self) -> Option<usize> {
        usize::try_from(self.length_dw).ok()?.checked_mul(4)
    }

    /// Payload size in bytes (object size minus the header), or `None` if the header is invalid.
    pub fn payload_bytes(&self) -> Option<usize> {
        self.size_bytes()?.checked_sub(DOE_HEADER_SIZE)
    }

    /// Whether the header carries this vendor ID and data object type.
    pub fn is(&self, vendor: u16, object_type: u8) -> bool {
        self.vendor == vendor && self.object_type == object_type
    }
}

/// A decoded DOE data object borrowing its payload from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DoeObject<'a> {
    /// The object header.
    pub header: DoeHeader,
    /// The payload: everything after the header up to the announced length. Always a whole
    /// number of DWORDs, so it may end with padding added by the sender.
    pub payload: &'a [u8],
}

/// Size in bytes of the object that carries a payload of `payload_len` bytes: the header plus
/// the payload rounded up to whole DWORDs.
///
/// Fails with [`DoeError::TooLarge`] if that exceeds 2^18 DW (1 MiB).
pub fn object_size(payload_len: usize) -> Result<usize, DoeError> {
    if payload_len > DOE_MAX_PAYLOAD_SIZE {
        return Err(DoeError::TooLarge);
    }
    // Cannot overflow: payload_len <= 1 MiB - 8.
    let padded = payload_len
        .checked_add(3)
        .map(|n| n & !3)
        .ok_or(DoeError::TooLarge)?;
    padded
        .checked_add(DOE_HEADER_SIZE)
        .ok_or(DoeError::TooLarge)
}

/// Writes a complete data object into `out`: header, `payload`, then zero padding up to a
/// whole number of DWORDs. Returns the number of bytes written (the object size).
///
/// Bytes of `out` past the object are left untouched. Fails with [`DoeError::TooLarge`] if the
/// object would exceed 1 MiB and with [`DoeError::BufferTooSmall`] if `out` is too short.
pub fn encode_object(
    vendor: u16,
    object_type: u8,
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, DoeError> {
    let header = DoeHeader::for_payload(vendor, object_type, payload.len())?;
    let total = object_size(payload.len())?;
    let header_bytes = header.encode()?;
    let object = out.get_mut(..total).ok_or(DoeError::BufferTooSmall)?;
    // `object` is exactly header + padded payload long: the chain supplies the header, the
    // payload, then zeros for the padding. Zipping never indexes, so it cannot panic.
    let source = header_bytes
        .iter()
        .chain(payload.iter())
        .chain(core::iter::repeat(&0u8));
    for (dst, src) in object.iter_mut().zip(source) {
        *dst = *src;
    }
    Ok(total)
}

/// Decodes a buffer that holds exactly one data object.
///
/// Validates that the buffer has at least the 8-byte header, that its length is a multiple
/// of 4, that it is at most 1 MiB, that the length field is at least 2 DW (0 meaning 2^18) and
/// that the length field equals the buffer length in DWORDs. Reserved header bits are ignored.
/// Vendor and type are not checked; compare them with [`DoeHeader::is`].
pub fn decode_object(buf: &[u8]) -> Result<DoeObject<'_>, DoeError> {
    if buf.len() < DOE_HEADER_SIZE {
        return Err(DoeError::TooShort);
    }
    if buf.len() & 3 != 0 {
        return Err(DoeError::NotDwordAligned);
    }
    if buf.len() > DOE_MAX_OBJECT_SIZE {
        return Err(DoeError::TooLarge);
    }
    let header = DoeHeader::decode(buf)?;
    if header.size_bytes() != Some(buf.len()) {
        return Err(DoeError::LengthMismatch);
    }
    let payload = buf.get(DOE_HEADER_SIZE..).ok_or(DoeError::TooShort)?;
    Ok(DoeObject { header, payload })
}

/// Decodes the data object at the start of `buf`, allowing further bytes after it (for example
/// a receive buffer larger than the object). Returns the object and its size in bytes, which
/// is where the next object, if any, starts.
///
/// Fails with [`DoeError::TooShort`] if `buf` has fewer than 8 bytes, with
/// [`DoeError::LengthTooSmall`] for a length field of 1, and with [`DoeError::Truncated`] if
/// `buf` holds less than the announced length.
pub fn decode_object_prefix(buf: &[u8]) -> Result<(DoeObject<'_>, usize), DoeError> {
    let header = DoeHeader::decode(buf)?;
    let size = header.size_bytes().ok_or(DoeError::TooLarge)?;
    let object = buf.get(..size).ok_or(DoeError::Truncated)?;
    let payload = object.get(DOE_HEADER_SIZE..).ok_or(DoeError::TooShort)?;
    Ok((DoeObject { header, payload }, size))
}

/// Payload of a DOE Discovery request: DW bits [7:0] hold the index of the protocol asked
/// about, the other bits are zero. Send it with [`encode_object`] as
/// ([`PCI_SIG_VENDOR_ID`], [`DOE_TYPE_DISCOVERY`]).
pub fn encode_discovery_request(index: u8) -> [u8; DOE_DISCOVERY_PAYLOAD_SIZE] {
    [index, 0, 0, 0]
}

/// Decodes the payload of a DOE Discovery request and returns the index (bits [7:0]).
///
/// Bits [31:8] of the DWORD and any further payload DWORDs are ignored. Fails with
/// [`DoeError::PayloadTooShort`] if the payload is shorter than one DWORD.
pub fn decode_discovery_request(payload: &[u8]) -> Result<u8, DoeError> {
    payload.first().copied().ok_or(DoeError::PayloadTooShort)
}

/// A DOE Discovery response: one supported (vendor, type) pair and the index to ask next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DiscoveryResponse {
    /// Vendor ID of the protocol at the requested index (bits [15:0]).
    pub vendor: u16,
    /// Data object type of the protocol at the requested index (bits [23:16]).
    pub object_type: u8,
    /// Index to request next (bits [31:24]); 0 means this was the last entry.
    pub next_index: u8,
}

/// Encodes the payload of a DOE Discovery response.
pub fn encode_discovery_response(response: &DiscoveryResponse) -> [u8; DOE_DISCOVERY_PAYLOAD_SIZE] {
    let [v0, v1] = response.vendor.to_le_bytes();
    [v0, v1, response.object_type, response.next_index]
}

/// Decodes the payload of a DOE Discovery response (vendor [15:0], type [23:16],
/// next index [31:24]).
///
/// Payload DWORDs after the first are ignored. Fails with [`DoeError::PayloadTooShort`] if the
/// payload is shorter than one DWORD.
pub fn decode_discovery_response(payload: &[u8]) -> Result<DiscoveryResponse, DoeError> {
    let bytes: [u8; DOE_DISCOVERY_PAYLOAD_SIZE] = payload
        .get(..DOE_DISCOVERY_PAYLOAD_SIZE)
        .and_then(|b| b.try_into().ok())
        .ok_or(DoeError::PayloadTooShort)?;
    let [v0, v1, object_type, next_index] = bytes;
    Ok(DiscoveryResponse {
        vendor: u16::from_le_bytes([v0, v1]),
        object_type,
        next_index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_encodes_little_endian_dwords() {
        let h = DoeHeader {
            vendor: PCI_SIG_VENDOR_ID,
            object_type: DOE_TYPE_CMA,
            length_dw: 3,
        };
        assert_eq!(h.encode().unwrap(), [0x01, 0x00, 0x01, 0x00, 3, 0, 0, 0]);
        assert_eq!(DoeHeader::decode(&h.encode().unwrap()).unwrap(), h);
    }

    #[test]
    fn max_length_encodes_as_zero() {
        let h = DoeHeader {
            vendor: 0xabcd,
            object_type: 0x7f,
            length_dw: DOE_MAX_LENGTH_DW,
        };
        let bytes = h.encode().unwrap();
        assert_eq!(&bytes[4..], &[0, 0, 0, 0]);
        assert_eq!(DoeHeader::decode(&bytes).unwrap(), h);
        assert_eq!(h.size_bytes(), Some(DOE_MAX_OBJECT_SIZE));
    }

    #[test]
    fn header_encode_rejects_bad_lengths() {
        for (len, err) in [
            (0, DoeError::LengthTooSmall),
            (1, DoeError::LengthTooSmall),
            (DOE_MAX_LENGTH_DW + 1, DoeError::TooLarge),
            (u32::MAX, DoeError::TooLarge),
        ] {
            let h = DoeHeader {
                vendor: 1,
                object_type: 1,
                length_dw: len,
            };
            assert_eq!(h.encode(), Err(err), "length {len}");
        }
    }

    #[test]
    fn header_decode_ignores_reserved_bits() {
        let bytes = [0x01, 0x00, 0x01, 0xff, 0x02, 0x00, 0xfc, 0xff];
        let h = DoeHeader::decode(&bytes).unwrap();
        assert_eq!(
            h,
            DoeHeader {
                vendor: 1,
                object_type: 1,
                length_dw: 2
            }
        );
    }

    #[test]
    fn header_decode_errors() {
        assert_eq!(DoeHeader::decode(&[0; 7]), Err(DoeError::TooShort));
        assert_eq!(
            DoeHeader::decode(&[1, 0, 1, 0, 1, 0, 0, 0]),
            Err(DoeError::LengthTooSmall)
        );
        // Length 0 means 2^18: valid header.
        assert_eq!(
            DoeHeader::decode(&[1, 0, 1, 0, 0, 0, 0, 0])
                .unwrap()
                .length_dw,
            DOE_MAX_LENGTH_DW
        );
    }

    #[test]
    fn encode_object_pads_with_zeros() {
        let mut out = [0xaa_u8; 32];
        let n = encode_object(
            PCI_SIG_VENDOR_ID,
            DOE_TYPE_CMA,
            &[0x10, 0x84, 0, 0, 9],
            &mut out,
        )
        .unwrap();
        assert_eq!(n, 16);
        assert_eq!(
            &out[..16],
            &[1, 0, 1, 0, 4, 0, 0, 0, 0x10, 0x84, 0, 0, 9, 0, 0, 0]
        );
        // Bytes past the object are untouched.
        assert!(out[16..].iter().all(|&b| b == 0xaa));
    }

    #[test]
    fn encode_object_empty_payload() {
        let mut out = [0xaa_u8; 8];
        assert_eq!(encode_object(1, 0, &[], &mut out), Ok(8));
        assert_eq!(out, [1, 0, 0, 0, 2, 0, 0, 0]);
    }

    #[test]
    fn encode_object_buffer_too_small() {
        let mut out = [0u8; 15];
        assert_eq!(
            encode_object(1, 1, &[0; 5], &mut out),
            Err(DoeError::BufferTooSmall)
        );
        let mut empty: [u8; 0] = [];
        assert_eq!(
            encode_object(1, 1, &[], &mut empty),
            Err(DoeError::BufferTooSmall)
        );
    }

    #[test]
    fn object_size_limits() {
        assert_eq!(object_size(0), Ok(8));
        assert_eq!(object_size(1), Ok(12));
        assert_eq!(object_size(4), Ok(12));
        assert_eq!(object_size(DOE_MAX_PAYLOAD_SIZE), Ok(DOE_MAX_OBJECT_SIZE));
        assert_eq!(
            object_size(DOE_MAX_PAYLOAD_SIZE + 1),
            Err(DoeError::TooLarge)
        );
        assert_eq!(object_size(usize::MAX), Err(DoeError::TooLarge));
    }

    #[test]
    fn decode_object_roundtrip() {
        let mut out = [0u8; 64];
        let n = encode_object(0x1234, 0x56, b"hello", &mut out).unwrap();
        let obj = decode_object(&out[..n]).unwrap();
        assert!(obj.header.is(0x1234, 0x56));
        assert_eq!(obj.header.length_dw, 4);
        assert_eq!(obj.payload, b"hello\0\0\0");
    }

    #[test]
    fn decode_object_errors() {
        assert_eq!(decode_object(&[]), Err(DoeError::TooShort));
        assert_eq!(
            decode_object(&[1, 0, 1, 0, 2, 0, 0]),
            Err(DoeError::TooShort)
        );
        assert_eq!(
            decode_object(&[1, 0, 1, 0, 2, 0, 0, 0, 0]),
            Err(DoeError::NotDwordAligned)
        );
        assert_eq!(
            decode_object(&[1, 0, 1, 0, 3, 0, 0, 0]),
            Err(DoeError::LengthMismatch)
        );
        assert_eq!(
            decode_object(&[1, 0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0]),
            Err(DoeError::LengthMismatch)
        );
        assert_eq!(
            decode_object(&[1, 0, 1, 0, 1, 0, 0, 0]),
            Err(DoeError::LengthTooSmall)
        );
        // Length 0 (2^18 DW) in an 8-byte buffer.
        assert_eq!(
            decode_object(&[1, 0, 1, 0, 0, 0, 0, 0]),
            Err(DoeError::LengthMismatch)
        );
    }

    #[test]
    fn decode_object_max_size() {
        extern crate std;
        use std::vec;
        let mut buf = vec![0u8; DOE_MAX_OBJECT_SIZE + 4];
        buf[0] = 1;
        buf[2] = 1;
        // Length field 0 = 2^18 DW = exactly 1 MiB.
        let obj = decode_object(&buf[..DOE_MAX_OBJECT_SIZE]).unwrap();
        assert_eq!(obj.payload.len(), DOE_MAX_PAYLOAD_SIZE);
        assert_eq!(decode_object(&buf), Err(DoeError::TooLarge));
        // encode_object agrees.
        let payload = vec![0u8; DOE_MAX_PAYLOAD_SIZE];
        let mut out = vec![0xffu8; DOE_MAX_OBJECT_SIZE];
        assert_eq!(
            encode_object(1, 1, &payload, &mut out),
            Ok(DOE_MAX_OBJECT_SIZE)
        );
        assert_eq!(&out[..8], &[1, 0, 1, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn decode_object_prefix_allows_trailing_bytes() {
        let buf = [1, 0, 1, 0, 3, 0, 0, 0, 9, 9, 9, 9, 7, 7, 7];
        let (obj, size) = decode_object_prefix(&buf).unwrap();
        assert_eq!(size, 12);
        assert_eq!(obj.payload, &[9, 9, 9, 9]);
        assert_eq!(decode_object_prefix(&buf[..11]), Err(DoeError::Truncated));
        assert_eq!(decode_object_prefix(&buf[..7]), Err(DoeError::TooShort));
    }

    #[test]
    fn discovery_request_and_response() {
        assert_eq!(encode_discovery_request(5), [5, 0, 0, 0]);
        assert_eq!(decode_discovery_request(&[5, 0xff, 0, 0]), Ok(5));
        assert_eq!(
            decode_discovery_request(&[]),
            Err(DoeError::PayloadTooShort)
        );
        let rsp = DiscoveryResponse {
            vendor: PCI_SIG_VENDOR_ID,
            object_type: DOE_TYPE_SECURED_CMA,
            next_index: 0,
        };
        let bytes = encode_discovery_response(&rsp);
        assert_eq!(bytes, [1, 0, 2, 0]);
        assert_eq!(decode_discovery_response(&bytes), Ok(rsp));
        assert_eq!(
            decode_discovery_response(&[1, 0, 2]),
            Err(DoeError::PayloadTooShort)
        );
        let mut obj = [0u8; DOE_DISCOVERY_OBJECT_SIZE];
        assert_eq!(
            encode_object(
                PCI_SIG_VENDOR_ID,
                DOE_TYPE_DISCOVERY,
                &encode_discovery_request(1),
                &mut obj
            ),
            Ok(DOE_DISCOVERY_OBJECT_SIZE)
        );
        assert_eq!(obj, [1, 0, 0, 0, 3, 0, 0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn error_strings_are_distinct() {
        let all = [
            DoeError::TooShort,
            DoeError::NotDwordAligned,
            DoeError::LengthMismatch,
            DoeError::LengthTooSmall,
            DoeError::Truncated,
            DoeError::BufferTooSmall,
            DoeError::TooLarge,
            DoeError::PayloadTooShort,
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(!a.as_str().is_empty());
            for b in &all[i + 1..] {
                assert_ne!(a.as_str(), b.as_str());
            }
        }
    }
}
