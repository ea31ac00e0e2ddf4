//! SPDM VENDOR_DEFINED_REQUEST / VENDOR_DEFINED_RESPONSE (DSP0274 sec 10.19) and the PCI-SIG
//! protocols that ride in them (IDE_KM, TDISP).
//!
//! Layout of both messages (SPDM 1.0 to 1.3, the non-"large" form):
//!
//! ```text
//! SPDM header {version, 0xFE / 0x7E, param1 = 0, param2 = 0}
//! u16 StandardID        3 = PCI-SIG (DMTF registry)
//! u8  Len               length of VendorID: 2 for PCI-SIG
//! u8  VendorID[Len]     0x0001 (little-endian) for PCI-SIG
//! u16 ReqLength / RespLength   length of what follows
//! payload[ReqLength]    PCI-SIG: u8 protocol ID (0 IDE_KM, 1 TDISP), then the message
//! ```
//!
//! This file is compiled both as a module of the `coco-spdm` crate and directly into the kernel
//! module (as a sibling of `spdm.rs`, referring to it as `crate::spdm`). It uses only `core`,
//! has no `unsafe`, never allocates and has no code path that can panic.

use crate::spdm::{
    check_padding, write_all, SpdmError, SpdmHeader, SpdmVersion, SPDM_HEADER_SIZE,
    SPDM_VENDOR_DEFINED_REQUEST, SPDM_VENDOR_DEFINED_RESPONSE,
};

/// StandardID of the PCI-SIG in the DMTF registry (DSP0274 table "Registry or standards body
/// ID").
pub const SPDM_REGISTRY_ID_PCISIG: u16 = 3;

/// PCI-SIG vendor ID (VendorID of a PCI-SIG vendor-defined message, 2 bytes).
pub const PCI_SIG_VENDOR_ID: u16 = 0x0001;

/// Len (size of VendorID) of a PCI-SIG vendor-defined message.
pub const PCI_SIG_VENDOR_ID_LEN: u8 = 2;

/// PCI-SIG protocol ID of IDE_KM (PCIe r6.x sec 6.33.3).
pub const PCI_PROTOCOL_IDE_KM: u8 = 0;

/// PCI-SIG protocol ID of TDISP (PCIe r6.x sec 11).
pub const PCI_PROTOCOL_TDISP: u8 = 1;

/// Size of a PCI-SIG vendor-defined message before the protocol's own message: SPDM header (4),
/// StandardID (2), Len (1), VendorID (2), length (2), protocol ID (1).
pub const PCI_SIG_VDM_OVERHEAD: usize = 12;

/// Largest payload (protocol ID included) a vendor-defined message can carry: the length field
/// is 16 bits.
pub const VDM_MAX_PAYLOAD: usize = 0xFFFF;

/// A parsed vendor-defined request or response, borrowing from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VendorDefined<'a> {
    /// The SPDM header (code 0xFE or 0x7E).
    pub header: SpdmHeader,
    /// StandardID.
    pub standard_id: u16,
    /// VendorID (Len bytes; may be empty).
    pub vendor_id: &'a [u8],
    /// The payload (exactly ReqLength / RespLength bytes).
    pub payload: &'a [u8],
}

impl<'a> VendorDefined<'a> {
    /// Whether this is a PCI-SIG message (StandardID 3, VendorID 0x0001 in 2 bytes).
    pub fn is_pci_sig(&self) -> bool {
        self.standard_id == SPDM_REGISTRY_ID_PCISIG
            && self.vendor_id == PCI_SIG_VENDOR_ID.to_le_bytes()
    }

    /// For a PCI-SIG message: the protocol ID and the protocol's message. Fails with
    /// [`SpdmError::Mismatch`] for another standard or vendor and with [`SpdmError::TooShort`]
    /// for an empty payload (no protocol ID).
    pub fn pci_sig_protocol(&self) -> Result<(u8, &'a [u8]), SpdmError> {
        if !self.is_pci_sig() {
            return Err(SpdmError::Mismatch);
        }
        let (&protocol, msg) = self.payload.split_first().ok_or(SpdmError::TooShort)?;
        Ok((protocol, msg))
    }
}

/// Parses a vendor-defined message with the given code ([`SPDM_VENDOR_DEFINED_REQUEST`] or
/// [`SPDM_VENDOR_DEFINED_RESPONSE`]). Any SPDMVersion is accepted (check it against the
/// negotiated one). Param1 and Param2 are reserved and ignored. The payload must be complete;
/// at most 3 zero bytes may follow it (DOE padding).
pub fn parse_vendor_defined(buf: &[u8], code: u8) -> Result<VendorDefined<'_>, SpdmError> {
    let header = SpdmHeader::parse(buf)?;
    if header.code != code {
        return Err(SpdmError::UnexpectedCode);
    }
    let rest = buf.get(SPDM_HEADER_SIZE..).unwrap_or(&[]);
    let (standard_id, rest) = take_u16(rest)?;
    let (&len, rest) = rest.split_first().ok_or(SpdmError::TooShort)?;
    let vendor_id = rest.get(..usize::from(len)).ok_or(SpdmError::TooShort)?;
    let rest = rest.get(usize::from(len)..).unwrap_or(&[]);
    let (payload_len, rest) = take_u16(rest)?;
    let payload = rest
        .get(..usize::from(payload_len))
        .ok_or(SpdmError::Truncated)?;
    check_padding(rest.get(usize::from(payload_len)..).unwrap_or(&[]))?;
    Ok(VendorDefined {
        header,
        standard_id,
        vendor_id,
        payload,
    })
}

/// Parses a PCI-SIG vendor-defined message with `code`: returns its SPDM version, protocol ID
/// and the protocol's message. Another standard or vendor is [`SpdmError::Mismatch`].
pub fn parse_pci_sig_vdm(buf: &[u8], code: u8) -> Result<PciSigVdm<'_>, SpdmError> {
    let vd = parse_vendor_defined(buf, code)?;
    let (protocol_id, message) = vd.pci_sig_protocol()?;
    Ok(PciSigVdm {
        version: vd.header.spdm_version(),
        protocol_id,
        message,
    })
}

/// A PCI-SIG vendor-defined message, as [`parse_pci_sig_vdm`] returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PciSigVdm<'a> {
    /// SPDMVersion of the message.
    pub version: SpdmVersion,
    /// Protocol ID ([`PCI_PROTOCOL_IDE_KM`], [`PCI_PROTOCOL_TDISP`], ...).
    pub protocol_id: u8,
    /// The protocol's message (after the protocol ID byte).
    pub message: &'a [u8],
}

/// Writes a vendor-defined message (`code` 0xFE or 0x7E, Param1/Param2 zero) and returns its
/// size. Fails with [`SpdmError::InvalidField`] for a code that is neither, or a VendorID longer
/// than 255 bytes, with [`SpdmError::InvalidLength`] for a payload of 64 KiB or more and with
/// [`SpdmError::BufferTooSmall`] if `out` is too short.
pub fn encode_vendor_defined(
    version: SpdmVersion,
    code: u8,
    standard_id: u16,
    vendor_id: &[u8],
    payload: &[u8],
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    if code != SPDM_VENDOR_DEFINED_REQUEST && code != SPDM_VENDOR_DEFINED_RESPONSE {
        return Err(SpdmError::InvalidField);
    }
    let len = u8::try_from(vendor_id.len()).map_err(|_| SpdmError::InvalidField)?;
    let payload_len = u16::try_from(payload.len()).map_err(|_| SpdmError::InvalidLength)?;
    let total = SPDM_HEADER_SIZE
        .checked_add(5)
        .and_then(|n| n.checked_add(vendor_id.len()))
        .and_then(|n| n.checked_add(payload.len()))
        .ok_or(SpdmError::InvalidLength)?;
    let header = SpdmHeader::new(version.as_byte(), code);
    let bytes = header
        .to_bytes()
        .into_iter()
        .chain(standard_id.to_le_bytes())
        .chain([len])
        .chain(vendor_id.iter().copied())
        .chain(payload_len.to_le_bytes())
        .chain(payload.iter().copied());
    write_all(out, total, bytes)
}

/// Writes a PCI-SIG vendor-defined message (StandardID 3, VendorID 0x0001) carrying
/// `protocol_id` and `message` and returns its size, `12 + message.len()`.
///
/// `code` is [`SPDM_VENDOR_DEFINED_REQUEST`] or [`SPDM_VENDOR_DEFINED_RESPONSE`].
pub fn encode_pci_sig_vdm(
    version: SpdmVersion,
    code: u8,
    protocol_id: u8,
    message: &[u8],
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    if code != SPDM_VENDOR_DEFINED_REQUEST && code != SPDM_VENDOR_DEFINED_RESPONSE {
        return Err(SpdmError::InvalidField);
    }
    let payload_len = message
        .len()
        .checked_add(1)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or(SpdmError::InvalidLength)?;
    let total = message
        .len()
        .checked_add(PCI_SIG_VDM_OVERHEAD)
        .ok_or(SpdmError::InvalidLength)?;
    let header = SpdmHeader::new(version.as_byte(), code);
    let bytes = header
        .to_bytes()
        .into_iter()
        .chain(SPDM_REGISTRY_ID_PCISIG.to_le_bytes())
        .chain([PCI_SIG_VENDOR_ID_LEN])
        .chain(PCI_SIG_VENDOR_ID.to_le_bytes())
        .chain(payload_len.to_le_bytes())
        .chain([protocol_id])
        .chain(message.iter().copied());
    write_all(out, total, bytes)
}

/// Splits a little-endian u16 off the front of `buf`.
fn take_u16(buf: &[u8]) -> Result<(u16, &[u8]), SpdmError> {
    let bytes: [u8; 2] = buf
        .get(..2)
        .and_then(|b| b.try_into().ok())
        .ok_or(SpdmError::TooShort)?;
    Ok((u16::from_le_bytes(bytes), buf.get(2..).unwrap_or(&[])))
}
