//! The SEV-TIO guest messages (Documentation/coco/sev-tio-guest.rst): the SNP guest message
//! header, the TIO_GUEST_REQUEST payloads (TDI_INFO, MMIO_VALIDATE, SDTE_WRITE), the TIO_OP
//! actions, the guest channel's RESULT codes and the blob table of the shared data pages.
//!
//! All integers little-endian, structures packed. Parsing of the fixed-size payloads requires
//! the exact size and ignores reserved bytes; encoding writes them zero. The blob table of the
//! data pages is untrusted input (the pages are shared with the host): every offset and length
//! is checked.
//!
//! This file is self-contained: it is compiled both as a module of the `coco-sevtio` crate and
//! directly into the kernel (`#[path = ".../rust/sevtio/src/guest.rs"] mod guest;`) with only
//! `core` available. It uses nothing of its crate, has no `unsafe`, never allocates and has no
//! code path that can panic.

use core::fmt;

// --- Message types and versions ----------------------------------------------------------

/// TDI_INFO request.
pub const MSG_TDI_INFO_REQ: u8 = 0x81;
/// TDI_INFO response.
pub const MSG_TDI_INFO_RSP: u8 = 0x01;
/// MMIO_VALIDATE request.
pub const MSG_MMIO_VALIDATE_REQ: u8 = 0x82;
/// MMIO_VALIDATE response.
pub const MSG_MMIO_VALIDATE_RSP: u8 = 0x02;
/// MMIO_CONFIG request (named only: no layout, not modelled).
pub const MSG_MMIO_CONFIG_REQ: u8 = 0x83;
/// MMIO_CONFIG response (named only).
pub const MSG_MMIO_CONFIG_RSP: u8 = 0x03;
/// SDTE_WRITE request.
pub const MSG_SDTE_WRITE_REQ: u8 = 0x84;
/// SDTE_WRITE response.
pub const MSG_SDTE_WRITE_RSP: u8 = 0x04;
/// What a request's type and its response's type differ by (response = request - 0x80).
pub const MSG_RSP_OFFSET: u8 = 0x80;

/// `msg_version` of every message.
pub const MSG_VERSION: u8 = 2;
/// `hdr_version` of the header.
pub const HDR_VERSION: u8 = 1;
/// `hdr_sz`: the header's size; the payload starts there.
pub const HDR_SIZE: usize = 0x60;
/// `algo` of the emulated transport: no encryption.
pub const ALGO_NONE: u8 = 0;
/// Size of the request and response pages.
pub const MSG_PAGE_SIZE: usize = 0x1000;

/// The response type of a request type (`None` for a type that is not a request).
pub fn response_type(req_type: u8) -> Option<u8> {
    if req_type & MSG_RSP_OFFSET == 0 {
        return None;
    }
    req_type.checked_sub(MSG_RSP_OFFSET)
}

/// A name for a message type, for logs.
pub fn msg_type_name(t: u8) -> &'static str {
    match t {
        MSG_TDI_INFO_REQ => "TDI_INFO_REQ",
        MSG_TDI_INFO_RSP => "TDI_INFO_RSP",
        MSG_MMIO_VALIDATE_REQ => "MMIO_VALIDATE_REQ",
        MSG_MMIO_VALIDATE_RSP => "MMIO_VALIDATE_RSP",
        MSG_MMIO_CONFIG_REQ => "MMIO_CONFIG_REQ",
        MSG_MMIO_CONFIG_RSP => "MMIO_CONFIG_RSP",
        MSG_SDTE_WRITE_REQ => "SDTE_WRITE_REQ",
        MSG_SDTE_WRITE_RSP => "SDTE_WRITE_RSP",
        _ => "unknown message type",
    }
}

// --- Exit codes and TIO_OP ---------------------------------------------------------------

/// `EXIT_CODE` of a TIO_GUEST_REQUEST.
pub const EXIT_GUEST_REQUEST: u32 = 0x8000_0020;
/// `EXIT_CODE` of a TIO_OP.
pub const EXIT_TIO_OP: u32 = 0x8000_0021;

/// TIO_OP action BIND.
pub const TIO_OP_BIND: u64 = 0;
/// TIO_OP action UNBIND.
pub const TIO_OP_UNBIND: u64 = 1;
/// TIO_OP action RUN.
pub const TIO_OP_RUN: u64 = 2;
/// TIO_OP action STOP.
pub const TIO_OP_STOP: u64 = 3;

/// A name for a TIO_OP action, for logs.
pub fn tio_op_name(action: u64) -> &'static str {
    match action {
        TIO_OP_BIND => "BIND",
        TIO_OP_UNBIND => "UNBIND",
        TIO_OP_RUN => "RUN",
        TIO_OP_STOP => "STOP",
        _ => "unknown action",
    }
}

/// The tdi_id of the TDI of the function with Requester ID `rid`: `0x1000 | rid`.
pub fn tdi_id_for(rid: u16) -> u64 {
    0x1000 | u64::from(rid)
}

// --- TDI_INFO ----------------------------------------------------------------------------

/// TDI_INFO `PARAM` flag: the TDI's TDISP state into `PARAM`.
pub const INFO_STATE: u64 = 1;
/// TDI_INFO `PARAM` flag: the certificate chain into the data pages.
pub const INFO_CERTS: u64 = 2;
/// TDI_INFO `PARAM` flag: fresh measurements into the data pages.
pub const INFO_MEAS: u64 = 4;
/// TDI_INFO `PARAM` flag: the interface report into the data pages.
pub const INFO_REPORT: u64 = 8;

/// TDI_INFO status: the TDI is bound to this guest.
pub const TDI_STATUS_BOUND: u16 = 0;
/// TDI_INFO status: the tdi_id names no TDI.
pub const TDI_STATUS_INVALID: u16 = 1;
/// TDI_INFO status: the TDI is not bound.
pub const TDI_STATUS_UNBOUND: u16 = 2;

/// A name for a TDI_INFO status.
pub fn tdi_status_name(s: u16) -> &'static str {
    match s {
        TDI_STATUS_BOUND => "BOUND",
        TDI_STATUS_INVALID => "INVALID",
        TDI_STATUS_UNBOUND => "UNBOUND",
        _ => "unknown status",
    }
}

/// TDI_INFO `meas_flags` bit 0: `meas_digest` is valid.
pub const MEAS_FLAG_DIGEST_VALID: u32 = 1;
/// TDI_INFO `meas_flags` bit 1: the measurements were read with the guest's nonce.
pub const MEAS_FLAG_DIGEST_FRESH: u32 = 2;

/// TDISP state CONFIG_UNLOCKED.
pub const TDI_STATE_CONFIG_UNLOCKED: u64 = 0;
/// TDISP state CONFIG_LOCKED.
pub const TDI_STATE_CONFIG_LOCKED: u64 = 1;
/// TDISP state RUN.
pub const TDI_STATE_RUN: u64 = 2;
/// TDISP state ERROR.
pub const TDI_STATE_ERROR: u64 = 3;

/// A name for a TDISP state code.
pub fn tdi_state_name(s: u64) -> &'static str {
    match s {
        TDI_STATE_CONFIG_UNLOCKED => "CONFIG_UNLOCKED",
        TDI_STATE_CONFIG_LOCKED => "CONFIG_LOCKED",
        TDI_STATE_RUN => "RUN",
        TDI_STATE_ERROR => "ERROR",
        _ => "unknown state",
    }
}

// --- MMIO_VALIDATE and SDTE_WRITE statuses -----------------------------------------------

/// MMIO_VALIDATE status SUCCESS.
pub const MMIO_STATUS_SUCCESS: u16 = 0;
/// MMIO_VALIDATE status INVALID_TDI.
pub const MMIO_STATUS_INVALID_TDI: u16 = 1;
/// MMIO_VALIDATE status TDI_UNBOUND.
pub const MMIO_STATUS_TDI_UNBOUND: u16 = 2;
/// MMIO_VALIDATE status NOT_ASSIGNED.
pub const MMIO_STATUS_NOT_ASSIGNED: u16 = 3;
/// MMIO_VALIDATE status NOT_IO.
pub const MMIO_STATUS_NOT_IO: u16 = 4;
/// MMIO_VALIDATE status NOT_UNIFORM.
pub const MMIO_STATUS_NOT_UNIFORM: u16 = 5;
/// MMIO_VALIDATE status NOT_IMMUTABLE.
pub const MMIO_STATUS_NOT_IMMUTABLE: u16 = 6;
/// MMIO_VALIDATE status NOT_MAPPED.
pub const MMIO_STATUS_NOT_MAPPED: u16 = 7;
/// MMIO_VALIDATE status NOT_REPORTED: no such range in the report.
pub const MMIO_STATUS_NOT_REPORTED: u16 = 8;
/// MMIO_VALIDATE status OUT_OF_RANGE: the subrange leaves the reported range.
pub const MMIO_STATUS_OUT_OF_RANGE: u16 = 9;
/// MMIO_VALIDATE status NOT_4K.
pub const MMIO_STATUS_NOT_4K: u16 = 10;

/// A name for an MMIO_VALIDATE status.
pub fn mmio_status_name(s: u16) -> &'static str {
    match s {
        MMIO_STATUS_SUCCESS => "SUCCESS",
        MMIO_STATUS_INVALID_TDI => "INVALID_TDI",
        MMIO_STATUS_TDI_UNBOUND => "TDI_UNBOUND",
        MMIO_STATUS_NOT_ASSIGNED => "NOT_ASSIGNED",
        MMIO_STATUS_NOT_IO => "NOT_IO",
        MMIO_STATUS_NOT_UNIFORM => "NOT_UNIFORM",
        MMIO_STATUS_NOT_IMMUTABLE => "NOT_IMMUTABLE",
        MMIO_STATUS_NOT_MAPPED => "NOT_MAPPED",
        MMIO_STATUS_NOT_REPORTED => "NOT_REPORTED",
        MMIO_STATUS_OUT_OF_RANGE => "OUT_OF_RANGE",
        MMIO_STATUS_NOT_4K => "NOT_4K",
        _ => "unknown status",
    }
}

/// MMIO_VALIDATE request flag: the validated state wanted.
pub const MMIO_FLAG_VALIDATED: u16 = 1;
/// MMIO_VALIDATE request flag: force.
pub const MMIO_FLAG_FORCE: u16 = 2;
/// MMIO_VALIDATE response flag: the validated state changed.
pub const MMIO_FLAG_CHANGED: u16 = 1;

/// SDTE_WRITE status SUCCESS.
pub const SDTE_STATUS_SUCCESS: u16 = 0;
/// SDTE_WRITE status INVALID_TDI.
pub const SDTE_STATUS_INVALID_TDI: u16 = 1;
/// SDTE_WRITE status TDI_NOT_BOUND.
pub const SDTE_STATUS_TDI_NOT_BOUND: u16 = 2;

/// A name for an SDTE_WRITE status.
pub fn sdte_status_name(s: u16) -> &'static str {
    match s {
        SDTE_STATUS_SUCCESS => "SUCCESS",
        SDTE_STATUS_INVALID_TDI => "INVALID_TDI",
        SDTE_STATUS_TDI_NOT_BOUND => "TDI_NOT_BOUND",
        _ => "unknown status",
    }
}

/// Size of the secure device table entry.
pub const SDTE_SIZE: usize = 64;

// --- Channel RESULT codes ----------------------------------------------------------------

/// RESULT: done.
pub const RESULT_DONE: u32 = 0;
/// RESULT: the data pages are too few (`DATA_NPAGES` says how many are needed).
pub const RESULT_MORE_PAGES: u32 = 1;
/// RESULT: the firmware refused (`FW_ERR`).
pub const RESULT_FW_ERR: u32 = 2;
/// RESULT: a malformed request.
pub const RESULT_MALFORMED: u32 = 3;
/// RESULT: the firmware model is unreachable or broke the protocol.
pub const RESULT_UNREACHABLE: u32 = 0xFFFF;

/// A name for a channel RESULT.
pub fn result_name(r: u32) -> &'static str {
    match r {
        RESULT_DONE => "done",
        RESULT_MORE_PAGES => "data pages too few",
        RESULT_FW_ERR => "firmware refused",
        RESULT_MALFORMED => "malformed request",
        RESULT_UNREACHABLE => "firmware unreachable",
        _ => "unknown result",
    }
}

// --- Sizes and GUIDs ---------------------------------------------------------------------

/// Size of the nonce the guest writes at the start of the data pages for INFO_MEAS.
pub const NONCE_SIZE: usize = 32;
/// Size of a SHA-384 digest in TDI_INFO.
pub const DIGEST_SIZE: usize = 48;
/// Size of one blob table entry: `guid[16], u32 offset, u32 length`.
pub const BLOB_ENTRY_SIZE: usize = 24;
/// Most entries in the blob table.
pub const BLOB_ENTRIES_MAX: usize = 3;
/// Size of a data page.
pub const DATA_PAGE_SIZE: usize = 0x1000;

/// Measurements GUID 5caa80c6-12ef-401a-b364-ec59a93abe3f (EFI byte order).
pub const GUID_MEASUREMENTS: [u8; 16] = [
    0xc6, 0x80, 0xaa, 0x5c, 0xef, 0x12, 0x1a, 0x40, 0xb3, 0x64, 0xec, 0x59, 0xa9, 0x3a, 0xbe, 0x3f,
];
/// Certificates GUID 078ccb75-2644-49e8-afe7-5686c5cf72f1 (EFI byte order).
pub const GUID_CERTIFICATES: [u8; 16] = [
    0x75, 0xcb, 0x8c, 0x07, 0x44, 0x26, 0xe8, 0x49, 0xaf, 0xe7, 0x56, 0x86, 0xc5, 0xcf, 0x72, 0xf1,
];
/// Report GUID 70dc5b0e-0cc0-4cd5-97bb-ff0ba25bf320 (EFI byte order).
pub const GUID_REPORT: [u8; 16] = [
    0x0e, 0x5b, 0xdc, 0x70, 0xc0, 0x0c, 0xd5, 0x4c, 0x97, 0xbb, 0xff, 0x0b, 0xa2, 0x5b, 0xf3, 0x20,
];

// --- Errors ------------------------------------------------------------------------------

/// Reasons a guest message or the blob table cannot be parsed or encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GuestError {
    /// The input ends before the structure does.
    TooShort,
    /// The input is not exactly the structure's size.
    WrongSize,
    /// The header's `algo` is not 0.
    BadAlgo,
    /// The header's `hdr_version` is not 1.
    BadHdrVersion,
    /// The header's `hdr_sz` is not 0x60.
    BadHdrSize,
    /// The header's `msg_version` is not 2.
    BadMsgVersion,
    /// A message type without a layout here.
    UnknownMsgType,
    /// `msg_sz` is not the size of that type's payload, or the payload leaves the page.
    BadPayloadSize,
    /// The output buffer is too small for the structure.
    BufferTooSmall,
    /// The blobs need this many bytes of data pages.
    NeedMore(usize),
    /// More than three blobs, or two of one kind, to encode.
    TooManyBlobs,
    /// A blob table entry with a GUID this codec does not know.
    UnknownGuid,
    /// Two blob table entries with the same GUID.
    DuplicateGuid,
    /// A blob's offset and length leave the data, or overflow.
    BlobOutOfBounds,
    /// A blob overlaps the blob table.
    BlobOverlapsTable,
}

impl GuestError {
    /// A short, human-readable reason, suitable for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            GuestError::TooShort => "guest message truncated",
            GuestError::WrongSize => "guest message payload of the wrong size",
            GuestError::BadAlgo => "guest message header: algo is not 0",
            GuestError::BadHdrVersion => "guest message header: hdr_version is not 1",
            GuestError::BadHdrSize => "guest message header: hdr_sz is not 0x60",
            GuestError::BadMsgVersion => "guest message header: msg_version is not 2",
            GuestError::UnknownMsgType => "guest message header: unknown msg_type",
            GuestError::BadPayloadSize => "guest message header: msg_sz does not fit the type",
            GuestError::BufferTooSmall => "output buffer too small for the guest message",
            GuestError::NeedMore(_) => "the blobs do not fit the data pages",
            GuestError::TooManyBlobs => "more than one blob of a kind or more than three",
            GuestError::UnknownGuid => "blob table entry with an unknown GUID",
            GuestError::DuplicateGuid => "blob table entries with the same GUID",
            GuestError::BlobOutOfBounds => "blob outside the data pages",
            GuestError::BlobOverlapsTable => "blob overlaps the blob table",
        }
    }
}

impl fmt::Display for GuestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuestError::NeedMore(n) => write!(f, "{} (need {n} bytes)", self.as_str()),
            _ => f.write_str(self.as_str()),
        }
    }
}

// --- Byte helpers ------------------------------------------------------------------------

/// `N` bytes at `off` (zeros when out of bounds: callers check sizes first).
fn arr<const N: usize>(b: &[u8], off: usize) -> [u8; N] {
    off.checked_add(N)
        .and_then(|end| b.get(off..end))
        .and_then(|s| <[u8; N]>::try_from(s).ok())
        .unwrap_or([0; N])
}

fn u16_at(b: &[u8], off: usize) -> u16 {
    u16::from_le_bytes(arr(b, off))
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes(arr(b, off))
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(arr(b, off))
}

fn byte_at(b: &[u8], off: usize) -> u8 {
    b.get(off).copied().unwrap_or(0)
}

/// Copies `src` to `out` at `off` (nothing when it does not fit: callers size `out`).
fn put(out: &mut [u8], off: usize, src: &[u8]) {
    if let Some(d) = off
        .checked_add(src.len())
        .and_then(|end| out.get_mut(off..end))
    {
        d.copy_from_slice(src);
    }
}

fn exact(b: &[u8], size: usize) -> Result<(), GuestError> {
    if b.len() == size {
        Ok(())
    } else {
        Err(GuestError::WrongSize)
    }
}

// --- Header ------------------------------------------------------------------------------

/// The SNP guest message header (0x60 bytes) as the emulated transport uses it (algo 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgHeader {
    /// `msg_seqno`: a request's is odd and increasing; a response's is the request's + 1.
    pub seqno: u64,
    /// `msg_type`.
    pub msg_type: u8,
    /// `msg_sz`: the payload's size.
    pub msg_sz: u16,
}

impl MsgHeader {
    /// Writes the header (algo 0, hdr_version 1, hdr_sz 0x60, msg_version 2, vmpck 0, the rest
    /// zero) into `out[..0x60]`; returns 0x60.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, GuestError> {
        let h = out.get_mut(..HDR_SIZE).ok_or(GuestError::BufferTooSmall)?;
        h.fill(0);
        put(h, 0x20, &self.seqno.to_le_bytes());
        put(h, 0x30, &[ALGO_NONE, HDR_VERSION]);
        put(h, 0x32, &0x60u16.to_le_bytes());
        put(h, 0x34, &[self.msg_type, MSG_VERSION]);
        put(h, 0x36, &self.msg_sz.to_le_bytes());
        Ok(HDR_SIZE)
    }

    /// Parses a message page: checks algo 0, hdr_version 1, hdr_sz 0x60, msg_version 2, a
    /// message type with a layout here and `msg_sz` equal to its payload size, and the
    /// payload inside `page`. Returns the header and the payload.
    pub fn parse(page: &[u8]) -> Result<(MsgHeader, &[u8]), GuestError> {
        if page.len() < HDR_SIZE {
            return Err(GuestError::TooShort);
        }
        if byte_at(page, 0x30) != ALGO_NONE {
            return Err(GuestError::BadAlgo);
        }
        if byte_at(page, 0x31) != HDR_VERSION {
            return Err(GuestError::BadHdrVersion);
        }
        if usize::from(u16_at(page, 0x32)) != HDR_SIZE {
            return Err(GuestError::BadHdrSize);
        }
        if byte_at(page, 0x35) != MSG_VERSION {
            return Err(GuestError::BadMsgVersion);
        }
        let h = MsgHeader {
            seqno: u64_at(page, 0x20),
            msg_type: byte_at(page, 0x34),
            msg_sz: u16_at(page, 0x36),
        };
        let want = expected_payload_size(h.msg_type).ok_or(GuestError::UnknownMsgType)?;
        if usize::from(h.msg_sz) != want {
            return Err(GuestError::BadPayloadSize);
        }
        let payload = HDR_SIZE
            .checked_add(want)
            .and_then(|end| page.get(HDR_SIZE..end))
            .ok_or(GuestError::BadPayloadSize)?;
        Ok((h, payload))
    }
}

/// The payload size of a message type (requests and responses); `None` for a type without
/// a layout here (MMIO_CONFIG, unknown types).
pub fn expected_payload_size(msg_type: u8) -> Option<usize> {
    match msg_type {
        MSG_TDI_INFO_REQ => Some(TdiInfoReq::SIZE),
        MSG_TDI_INFO_RSP => Some(TdiInfoRsp::SIZE),
        MSG_MMIO_VALIDATE_REQ => Some(MmioValidateReq::SIZE),
        MSG_MMIO_VALIDATE_RSP => Some(MmioValidateRsp::SIZE),
        MSG_SDTE_WRITE_REQ => Some(SdteWriteReq::SIZE),
        MSG_SDTE_WRITE_RSP => Some(SdteWriteRsp::SIZE),
        _ => None,
    }
}

/// Writes a whole message (header and payload) into `out`; returns its size.
pub fn encode_msg(
    out: &mut [u8],
    seqno: u64,
    msg_type: u8,
    payload: &[u8],
) -> Result<usize, GuestError> {
    let msg_sz = u16::try_from(payload.len()).map_err(|_| GuestError::WrongSize)?;
    let total = HDR_SIZE
        .checked_add(payload.len())
        .ok_or(GuestError::BufferTooSmall)?;
    if out.len() < total {
        return Err(GuestError::BufferTooSmall);
    }
    MsgHeader {
        seqno,
        msg_type,
        msg_sz,
    }
    .encode(out)?;
    put(out, HDR_SIZE, payload);
    Ok(total)
}

// --- TDI_INFO ----------------------------------------------------------------------------

/// TDI_INFO request (16 bytes): `u64 tdi_id, u8 reserved[8]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdiInfoReq {
    /// The TDI.
    pub tdi_id: u64,
}

impl TdiInfoReq {
    /// Payload size.
    pub const SIZE: usize = 16;

    /// The payload.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut o = [0u8; Self::SIZE];
        put(&mut o, 0, &self.tdi_id.to_le_bytes());
        o
    }

    /// Parses the payload (exactly [`Self::SIZE`] bytes).
    pub fn parse(b: &[u8]) -> Result<Self, GuestError> {
        exact(b, Self::SIZE)?;
        Ok(TdiInfoReq {
            tdi_id: u64_at(b, 0),
        })
    }
}

/// TDI_INFO response (192 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TdiInfoRsp {
    /// The TDI.
    pub tdi_id: u64,
    /// [`TDI_STATUS_BOUND`], [`TDI_STATUS_INVALID`] or [`TDI_STATUS_UNBOUND`].
    pub status: u16,
    /// [`MEAS_FLAG_DIGEST_VALID`], [`MEAS_FLAG_DIGEST_FRESH`].
    pub meas_flags: u32,
    /// The TDISP LOCK_INTERFACE flags of the bind.
    pub lock_flags: u32,
    /// The session's SPDM algorithms ([`SpdmAlgos`]).
    pub spdm_algos: u64,
    /// SHA-384 of the certificates blob (zero when not asked).
    pub certs_digest: [u8; DIGEST_SIZE],
    /// SHA-384 of the measurements blob (zero when not asked).
    pub meas_digest: [u8; DIGEST_SIZE],
    /// SHA-384 of the report blob (zero when not asked).
    pub report_digest: [u8; DIGEST_SIZE],
    /// The reports the TDI produced since it was bound.
    pub report_count: u64,
}

impl Default for TdiInfoRsp {
    fn default() -> Self {
        TdiInfoRsp {
            tdi_id: 0,
            status: 0,
            meas_flags: 0,
            lock_flags: 0,
            spdm_algos: 0,
            certs_digest: [0; DIGEST_SIZE],
            meas_digest: [0; DIGEST_SIZE],
            report_digest: [0; DIGEST_SIZE],
            report_count: 0,
        }
    }
}

impl TdiInfoRsp {
    /// Payload size.
    pub const SIZE: usize = 192;

    /// The payload.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut o = [0u8; Self::SIZE];
        put(&mut o, 0, &self.tdi_id.to_le_bytes());
        put(&mut o, 8, &self.status.to_le_bytes());
        put(&mut o, 16, &self.meas_flags.to_le_bytes());
        put(&mut o, 20, &self.lock_flags.to_le_bytes());
        put(&mut o, 24, &self.spdm_algos.to_le_bytes());
        put(&mut o, 32, &self.certs_digest);
        put(&mut o, 80, &self.meas_digest);
        put(&mut o, 128, &self.report_digest);
        put(&mut o, 176, &self.report_count.to_le_bytes());
        o
    }

    /// Parses the payload (exactly [`Self::SIZE`] bytes).
    pub fn parse(b: &[u8]) -> Result<Self, GuestError> {
        exact(b, Self::SIZE)?;
        Ok(TdiInfoRsp {
            tdi_id: u64_at(b, 0),
            status: u16_at(b, 8),
            meas_flags: u32_at(b, 16),
            lock_flags: u32_at(b, 20),
            spdm_algos: u64_at(b, 24),
            certs_digest: arr(b, 32),
            meas_digest: arr(b, 80),
            report_digest: arr(b, 128),
            report_count: u64_at(b, 176),
        })
    }
}

// --- MMIO_VALIDATE -----------------------------------------------------------------------

/// MMIO_VALIDATE request (48 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MmioValidateReq {
    /// The TDI.
    pub tdi_id: u64,
    /// The subrange's first guest page frame.
    pub subrange_base: u64,
    /// The subrange's size in pages.
    pub subrange_page_count: u32,
    /// Pages into the reported range where the subrange starts.
    pub range_offset: u32,
    /// [`MMIO_FLAG_VALIDATED`], [`MMIO_FLAG_FORCE`].
    pub flags: u16,
    /// The report's MMIO range index.
    pub range_id: u16,
}

impl MmioValidateReq {
    /// Payload size.
    pub const SIZE: usize = 48;

    /// The payload.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut o = [0u8; Self::SIZE];
        put(&mut o, 0, &self.tdi_id.to_le_bytes());
        put(&mut o, 16, &self.subrange_base.to_le_bytes());
        put(&mut o, 24, &self.subrange_page_count.to_le_bytes());
        put(&mut o, 28, &self.range_offset.to_le_bytes());
        put(&mut o, 32, &self.flags.to_le_bytes());
        put(&mut o, 34, &self.range_id.to_le_bytes());
        o
    }

    /// Parses the payload (exactly [`Self::SIZE`] bytes).
    pub fn parse(b: &[u8]) -> Result<Self, GuestError> {
        exact(b, Self::SIZE)?;
        Ok(MmioValidateReq {
            tdi_id: u64_at(b, 0),
            subrange_base: u64_at(b, 16),
            subrange_page_count: u32_at(b, 24),
            range_offset: u32_at(b, 28),
            flags: u16_at(b, 32),
            range_id: u16_at(b, 34),
        })
    }
}

/// MMIO_VALIDATE response (48 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MmioValidateRsp {
    /// The TDI.
    pub tdi_id: u64,
    /// One of the `MMIO_STATUS_*` values.
    pub status: u16,
    /// The request's subrange base.
    pub subrange_base: u64,
    /// The request's page count.
    pub subrange_page_count: u32,
    /// The request's range offset.
    pub range_offset: u32,
    /// [`MMIO_FLAG_CHANGED`].
    pub flags: u16,
    /// The request's range index.
    pub range_id: u16,
}

impl MmioValidateRsp {
    /// Payload size.
    pub const SIZE: usize = 48;

    /// The payload.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut o = [0u8; Self::SIZE];
        put(&mut o, 0, &self.tdi_id.to_le_bytes());
        put(&mut o, 8, &self.status.to_le_bytes());
        put(&mut o, 16, &self.subrange_base.to_le_bytes());
        put(&mut o, 24, &self.subrange_page_count.to_le_bytes());
        put(&mut o, 28, &self.range_offset.to_le_bytes());
        put(&mut o, 32, &self.flags.to_le_bytes());
        put(&mut o, 34, &self.range_id.to_le_bytes());
        o
    }

    /// Parses the payload (exactly [`Self::SIZE`] bytes).
    pub fn parse(b: &[u8]) -> Result<Self, GuestError> {
        exact(b, Self::SIZE)?;
        Ok(MmioValidateRsp {
            tdi_id: u64_at(b, 0),
            status: u16_at(b, 8),
            subrange_base: u64_at(b, 16),
            subrange_page_count: u32_at(b, 24),
            range_offset: u32_at(b, 28),
            flags: u16_at(b, 32),
            range_id: u16_at(b, 34),
        })
    }
}

// --- SDTE_WRITE --------------------------------------------------------------------------

/// SDTE_WRITE request (80 bytes): `u64 tdi_id, u8 reserved[8], u8 sdte[64]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdteWriteReq {
    /// The TDI.
    pub tdi_id: u64,
    /// The secure device table entry (bit 0: V).
    pub sdte: [u8; SDTE_SIZE],
}

impl SdteWriteReq {
    /// Payload size.
    pub const SIZE: usize = 80;

    /// The payload.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut o = [0u8; Self::SIZE];
        put(&mut o, 0, &self.tdi_id.to_le_bytes());
        put(&mut o, 16, &self.sdte);
        o
    }

    /// Parses the payload (exactly [`Self::SIZE`] bytes).
    pub fn parse(b: &[u8]) -> Result<Self, GuestError> {
        exact(b, Self::SIZE)?;
        Ok(SdteWriteReq {
            tdi_id: u64_at(b, 0),
            sdte: arr(b, 16),
        })
    }

    /// The SDTE's V bit (bit 0).
    pub fn valid(&self) -> bool {
        self.sdte.first().is_some_and(|b| b & 1 != 0)
    }
}

/// SDTE_WRITE response (16 bytes): `u64 tdi_id, u16 status, u8 reserved[6]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SdteWriteRsp {
    /// The TDI.
    pub tdi_id: u64,
    /// One of the `SDTE_STATUS_*` values.
    pub status: u16,
}

impl SdteWriteRsp {
    /// Payload size.
    pub const SIZE: usize = 16;

    /// The payload.
    pub fn encode(&self) -> [u8; Self::SIZE] {
        let mut o = [0u8; Self::SIZE];
        put(&mut o, 0, &self.tdi_id.to_le_bytes());
        put(&mut o, 8, &self.status.to_le_bytes());
        o
    }

    /// Parses the payload (exactly [`Self::SIZE`] bytes).
    pub fn parse(b: &[u8]) -> Result<Self, GuestError> {
        exact(b, Self::SIZE)?;
        Ok(SdteWriteRsp {
            tdi_id: u64_at(b, 0),
            status: u16_at(b, 8),
        })
    }
}

// --- The data pages' blob table ----------------------------------------------------------

/// The kind of a blob in the data pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// The certificate chain of the session's slot.
    Certificates,
    /// The measurement evidence.
    Measurements,
    /// The TDISP interface report.
    Report,
}

impl BlobKind {
    /// The kind's GUID (EFI byte order).
    pub fn guid(self) -> [u8; 16] {
        match self {
            BlobKind::Certificates => GUID_CERTIFICATES,
            BlobKind::Measurements => GUID_MEASUREMENTS,
            BlobKind::Report => GUID_REPORT,
        }
    }

    /// The kind of a GUID.
    pub fn from_guid(g: &[u8; 16]) -> Option<BlobKind> {
        match *g {
            GUID_CERTIFICATES => Some(BlobKind::Certificates),
            GUID_MEASUREMENTS => Some(BlobKind::Measurements),
            GUID_REPORT => Some(BlobKind::Report),
            _ => None,
        }
    }

    /// A name, for logs.
    pub fn name(self) -> &'static str {
        match self {
            BlobKind::Certificates => "certificates",
            BlobKind::Measurements => "measurements",
            BlobKind::Report => "report",
        }
    }
}

/// The size of the blob table for `n` blobs: `n` entries and a zero entry when fewer than
/// three.
pub fn blob_table_size(n: usize) -> usize {
    let entries = if n < BLOB_ENTRIES_MAX {
        n.saturating_add(1)
    } else {
        BLOB_ENTRIES_MAX
    };
    entries.saturating_mul(BLOB_ENTRY_SIZE)
}

/// How many bytes of data pages `blobs` need (table and blobs); `None` on overflow.
pub fn blobs_size(blobs: &[(BlobKind, &[u8])]) -> Option<usize> {
    blobs
        .iter()
        .try_fold(blob_table_size(blobs.len()), |acc, (_, b)| {
            acc.checked_add(b.len())
        })
}

/// How many 4 KiB pages hold `bytes` bytes.
pub fn pages_for(bytes: usize) -> usize {
    bytes.div_ceil(DATA_PAGE_SIZE)
}

/// Writes the blob table and the blobs (right after the table, in the order given) into
/// `out`; returns the bytes used. At most three blobs, one per kind ([`GuestError::TooManyBlobs`]);
/// when they do not fit, [`GuestError::NeedMore`] with the bytes needed and `out` untouched.
pub fn encode_blobs(out: &mut [u8], blobs: &[(BlobKind, &[u8])]) -> Result<usize, GuestError> {
    if blobs.len() > BLOB_ENTRIES_MAX {
        return Err(GuestError::TooManyBlobs);
    }
    for (i, (k, _)) in blobs.iter().enumerate() {
        if blobs.iter().skip(i.saturating_add(1)).any(|(o, _)| o == k) {
            return Err(GuestError::TooManyBlobs);
        }
    }
    let total = blobs_size(blobs).ok_or(GuestError::NeedMore(usize::MAX))?;
    if total > out.len() || u32::try_from(total).is_err() {
        return Err(GuestError::NeedMore(total));
    }
    let table = blob_table_size(blobs.len());
    if let Some(t) = out.get_mut(..table) {
        t.fill(0);
    }
    let mut off = table;
    for (i, (k, b)) in blobs.iter().enumerate() {
        let e = i.saturating_mul(BLOB_ENTRY_SIZE);
        let o32 = u32::try_from(off).map_err(|_| GuestError::NeedMore(total))?;
        let l32 = u32::try_from(b.len()).map_err(|_| GuestError::NeedMore(total))?;
        put(out, e, &k.guid());
        put(out, e.saturating_add(16), &o32.to_le_bytes());
        put(out, e.saturating_add(20), &l32.to_le_bytes());
        put(out, off, b);
        off = off.saturating_add(b.len());
    }
    Ok(total)
}

/// The blobs found in the data pages; each slice lies in the data given to [`parse_blobs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Blobs<'a> {
    /// The certificate chain.
    pub certificates: Option<&'a [u8]>,
    /// The measurement evidence.
    pub measurements: Option<&'a [u8]>,
    /// The interface report.
    pub report: Option<&'a [u8]>,
}

impl<'a> Blobs<'a> {
    /// The blob of kind `k`.
    pub fn get(&self, k: BlobKind) -> Option<&'a [u8]> {
        match k {
            BlobKind::Certificates => self.certificates,
            BlobKind::Measurements => self.measurements,
            BlobKind::Report => self.report,
        }
    }

    fn slot(&mut self, k: BlobKind) -> &mut Option<&'a [u8]> {
        match k {
            BlobKind::Certificates => &mut self.certificates,
            BlobKind::Measurements => &mut self.measurements,
            BlobKind::Report => &mut self.report,
        }
    }
}

/// Parses the blob table of the data pages (untrusted): up to three entries, a zero GUID
/// ending the table early. Every entry's GUID must be known and appear once; every blob must
/// lie inside `data` and after the table.
pub fn parse_blobs(data: &[u8]) -> Result<Blobs<'_>, GuestError> {
    // First the table: its entries and its end.
    let mut entries: [Option<([u8; 16], u32, u32)>; BLOB_ENTRIES_MAX] = [None; BLOB_ENTRIES_MAX];
    let mut table_end = 0usize;
    for (i, slot) in entries.iter_mut().enumerate() {
        let start = i.saturating_mul(BLOB_ENTRY_SIZE);
        let end = start.saturating_add(BLOB_ENTRY_SIZE);
        let e = data.get(start..end).ok_or(GuestError::TooShort)?;
        table_end = end;
        let guid: [u8; 16] = arr(e, 0);
        if guid == [0; 16] {
            break;
        }
        *slot = Some((guid, u32_at(e, 16), u32_at(e, 20)));
    }
    let mut blobs = Blobs::default();
    for (guid, off, len) in entries.iter().flatten() {
        let kind = BlobKind::from_guid(guid).ok_or(GuestError::UnknownGuid)?;
        let off = usize::try_from(*off).map_err(|_| GuestError::BlobOutOfBounds)?;
        let len = usize::try_from(*len).map_err(|_| GuestError::BlobOutOfBounds)?;
        let end = off.checked_add(len).ok_or(GuestError::BlobOutOfBounds)?;
        let b = data.get(off..end).ok_or(GuestError::BlobOutOfBounds)?;
        if off < table_end {
            return Err(GuestError::BlobOverlapsTable);
        }
        let slot = blobs.slot(kind);
        if slot.is_some() {
            return Err(GuestError::DuplicateGuid);
        }
        *slot = Some(b);
    }
    Ok(blobs)
}

// --- spdm_algos --------------------------------------------------------------------------

/// `spdm_algos` DHE code: secp256r1.
pub const ALGO_DHE_SECP256R1: u8 = 0;
/// `spdm_algos` DHE code: secp384r1.
pub const ALGO_DHE_SECP384R1: u8 = 1;
/// `spdm_algos` AEAD code: AES-128-GCM.
pub const ALGO_AEAD_AES_128_GCM: u8 = 0;
/// `spdm_algos` AEAD code: AES-256-GCM.
pub const ALGO_AEAD_AES_256_GCM: u8 = 1;
/// `spdm_algos` asym code: RSA-3072.
pub const ALGO_ASYM_RSA_3072: u8 = 0;
/// `spdm_algos` asym code: ECDSA P-256.
pub const ALGO_ASYM_P256: u8 = 1;
/// `spdm_algos` asym code: ECDSA P-384.
pub const ALGO_ASYM_P384: u8 = 2;
/// `spdm_algos` hash code: SHA-256.
pub const ALGO_HASH_SHA256: u8 = 0;
/// `spdm_algos` hash code: SHA-384.
pub const ALGO_HASH_SHA384: u8 = 1;
/// A code for an algorithm `spdm_algos` has no code for.
pub const ALGO_UNKNOWN: u8 = 0xFF;

/// TDI_INFO's `spdm_algos`: bits 7:0 DHE, 15:8 AEAD, 23:16 asym, 31:24 hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpdmAlgos {
    /// `ALGO_DHE_*`.
    pub dhe: u8,
    /// `ALGO_AEAD_*`.
    pub aead: u8,
    /// `ALGO_ASYM_*`.
    pub asym: u8,
    /// `ALGO_HASH_*`.
    pub hash: u8,
}

impl SpdmAlgos {
    /// The `spdm_algos` value.
    pub fn encode(&self) -> u64 {
        u64::from(u32::from_le_bytes([
            self.dhe, self.aead, self.asym, self.hash,
        ]))
    }

    /// The fields of an `spdm_algos` value (bits 63:32 ignored).
    pub fn decode(v: u64) -> SpdmAlgos {
        let [dhe, aead, asym, hash, ..] = v.to_le_bytes();
        SpdmAlgos {
            dhe,
            aead,
            asym,
            hash,
        }
    }

    /// The codes of the algorithms an SPDM ALGORITHMS response selected (its bit masks:
    /// DHE 0x08 secp256r1 / 0x10 secp384r1, AEAD 0x01 AES-128-GCM / 0x02 AES-256-GCM,
    /// BaseAsymAlgo 0x04 RSASSA-3072 / 0x08 RSAPSS-3072 / 0x10 P-256 / 0x80 P-384,
    /// BaseHashAlgo 0x01 SHA-256 / 0x02 SHA-384). An algorithm without a code:
    /// [`ALGO_UNKNOWN`].
    pub fn from_spdm(dhe: u16, aead: u16, asym: u32, hash: u32) -> SpdmAlgos {
        SpdmAlgos {
            dhe: match dhe {
                0x08 => ALGO_DHE_SECP256R1,
                0x10 => ALGO_DHE_SECP384R1,
                _ => ALGO_UNKNOWN,
            },
            aead: match aead {
                0x01 => ALGO_AEAD_AES_128_GCM,
                0x02 => ALGO_AEAD_AES_256_GCM,
                _ => ALGO_UNKNOWN,
            },
            asym: match asym {
                0x04 | 0x08 => ALGO_ASYM_RSA_3072,
                0x10 => ALGO_ASYM_P256,
                0x80 => ALGO_ASYM_P384,
                _ => ALGO_UNKNOWN,
            },
            hash: match hash {
                0x01 => ALGO_HASH_SHA256,
                0x02 => ALGO_HASH_SHA384,
                _ => ALGO_UNKNOWN,
            },
        }
    }

    /// The DHE group's name.
    pub fn dhe_name(&self) -> &'static str {
        match self.dhe {
            ALGO_DHE_SECP256R1 => "secp256r1",
            ALGO_DHE_SECP384R1 => "secp384r1",
            _ => "unknown",
        }
    }

    /// The AEAD's name.
    pub fn aead_name(&self) -> &'static str {
        match self.aead {
            ALGO_AEAD_AES_128_GCM => "AES-128-GCM",
            ALGO_AEAD_AES_256_GCM => "AES-256-GCM",
            _ => "unknown",
        }
    }

    /// The signature algorithm's name.
    pub fn asym_name(&self) -> &'static str {
        match self.asym {
            ALGO_ASYM_RSA_3072 => "RSA-3072",
            ALGO_ASYM_P256 => "ECDSA P-256",
            ALGO_ASYM_P384 => "ECDSA P-384",
            _ => "unknown",
        }
    }

    /// The hash's name.
    pub fn hash_name(&self) -> &'static str {
        match self.hash {
            ALGO_HASH_SHA256 => "SHA-256",
            ALGO_HASH_SHA384 => "SHA-384",
            _ => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_roundtrip_and_checks() {
        let mut page = [0u8; MSG_PAGE_SIZE];
        let req = TdiInfoReq { tdi_id: 0x1100 };
        let n = encode_msg(&mut page, 1, MSG_TDI_INFO_REQ, &req.encode()).unwrap();
        assert_eq!(n, HDR_SIZE + 16);
        assert_eq!(page[0x30..0x38], [0, 1, 0x60, 0, 0x81, 2, 16, 0]);
        let (h, p) = MsgHeader::parse(&page).unwrap();
        assert_eq!(
            h,
            MsgHeader {
                seqno: 1,
                msg_type: 0x81,
                msg_sz: 16
            }
        );
        assert_eq!(TdiInfoReq::parse(p).unwrap(), req);
        for (off, v, e) in [
            (0x30, 1, GuestError::BadAlgo),
            (0x31, 2, GuestError::BadHdrVersion),
            (0x32, 0x50, GuestError::BadHdrSize),
            (0x35, 1, GuestError::BadMsgVersion),
            (0x34, 0x83, GuestError::UnknownMsgType),
            (0x36, 17, GuestError::BadPayloadSize),
        ] {
            let mut bad = page;
            bad[off] = v;
            assert_eq!(MsgHeader::parse(&bad).unwrap_err(), e);
        }
        assert_eq!(
            MsgHeader::parse(&page[..0x60]).unwrap_err(),
            GuestError::BadPayloadSize
        );
        assert_eq!(
            MsgHeader::parse(&page[..0x5f]).unwrap_err(),
            GuestError::TooShort
        );
        assert_eq!(response_type(MSG_SDTE_WRITE_REQ), Some(MSG_SDTE_WRITE_RSP));
        assert_eq!(response_type(MSG_SDTE_WRITE_RSP), None);
    }

    #[test]
    fn guids_are_efi_order() {
        assert_eq!(GUID_MEASUREMENTS[..4], 0x5caa80c6u32.to_le_bytes());
        assert_eq!(GUID_CERTIFICATES[4..6], 0x2644u16.to_le_bytes());
        assert_eq!(GUID_REPORT[6..8], 0x4cd5u16.to_le_bytes());
        assert_eq!(
            GUID_REPORT[8..],
            [0x97, 0xbb, 0xff, 0x0b, 0xa2, 0x5b, 0xf3, 0x20]
        );
    }

    #[test]
    fn tdi_info_rsp_layout() {
        let r = TdiInfoRsp {
            tdi_id: 1,
            status: 2,
            meas_flags: 3,
            lock_flags: 4,
            spdm_algos: 5,
            certs_digest: [6; 48],
            meas_digest: [7; 48],
            report_digest: [8; 48],
            report_count: 9,
        };
        let b = r.encode();
        assert_eq!(b[8], 2);
        assert_eq!(b[16], 3);
        assert_eq!(b[20], 4);
        assert_eq!(b[24], 5);
        assert_eq!(b[32], 6);
        assert_eq!(b[80], 7);
        assert_eq!(b[128], 8);
        assert_eq!(b[176], 9);
        assert_eq!(TdiInfoRsp::parse(&b).unwrap(), r);
        assert_eq!(
            TdiInfoRsp::parse(&b[..191]).unwrap_err(),
            GuestError::WrongSize
        );
    }

    #[test]
    fn blobs() {
        let mut out = [0u8; 200];
        let c = [1u8; 10];
        let r = [2u8; 5];
        let n = encode_blobs(
            &mut out,
            &[(BlobKind::Certificates, &c), (BlobKind::Report, &r)],
        )
        .unwrap();
        assert_eq!(n, 72 + 15);
        let b = parse_blobs(&out).unwrap();
        assert_eq!(b.certificates, Some(&c[..]));
        assert_eq!(b.report, Some(&r[..]));
        assert_eq!(b.measurements, None);
        assert_eq!(
            encode_blobs(&mut out[..57], &[(BlobKind::Certificates, &c)]),
            Err(GuestError::NeedMore(58))
        );
        assert_eq!(
            encode_blobs(&mut out, &[(BlobKind::Report, &c), (BlobKind::Report, &r)]),
            Err(GuestError::TooManyBlobs)
        );
        // Duplicate GUID.
        let mut d = out;
        d[24..40].copy_from_slice(&GUID_CERTIFICATES);
        assert_eq!(parse_blobs(&d), Err(GuestError::DuplicateGuid));
        // Unknown GUID.
        let mut u = out;
        u[0] ^= 1;
        assert_eq!(parse_blobs(&u), Err(GuestError::UnknownGuid));
        // Out of bounds.
        let mut o = out;
        o[16..20].copy_from_slice(&195u32.to_le_bytes());
        assert_eq!(parse_blobs(&o), Err(GuestError::BlobOutOfBounds));
        let mut o = out;
        o[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_blobs(&o), Err(GuestError::BlobOutOfBounds));
        // Overlapping the table.
        let mut o = out;
        o[16..20].copy_from_slice(&60u32.to_le_bytes());
        assert_eq!(parse_blobs(&o), Err(GuestError::BlobOverlapsTable));
        // An empty table.
        assert_eq!(parse_blobs(&[0u8; 24]), Ok(Blobs::default()));
        assert_eq!(parse_blobs(&[0u8; 23]), Err(GuestError::TooShort));
        assert_eq!(pages_for(0), 0);
        assert_eq!(pages_for(4097), 2);
    }

    #[test]
    fn algos() {
        let a = SpdmAlgos::from_spdm(0x10, 0x02, 0x80, 0x02);
        assert_eq!(a.encode(), 0x0102_0101);
        assert_eq!(SpdmAlgos::decode(a.encode()), a);
        assert_eq!(a.asym_name(), "ECDSA P-384");
        assert_eq!(a.hash_name(), "SHA-384");
        assert_eq!(SpdmAlgos::from_spdm(0, 0, 0x100, 4).asym, ALGO_UNKNOWN);
        assert_eq!(tdi_id_for(0x0100), 0x1100);
        assert_eq!(tdi_state_name(3), "ERROR");
        assert_eq!(mmio_status_name(9), "OUT_OF_RANGE");
    }
}
