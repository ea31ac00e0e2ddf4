//! TDISP message codec (PCIe r6.x chapter 11, TDISP 1.0), the device interface report and its
//! validation against the function's BARs.
//!
//! Every TDISP message starts with a 16-byte header (all fields little-endian):
//!
//! ```text
//! u8  TDISPVersion (0x10) | u8 MessageType | u8 reserved[2]
//! INTERFACE_ID: u32 function_id (bits 15:0 RID, 23:16 segment, 24 segment valid) | u64 reserved
//! ```
//!
//! Bodies after the header:
//!
//! ```text
//! GET_VERSION 0x81                  -
//! VERSION 0x01                      u8 count, u8 versions[count]
//! GET_CAPABILITIES 0x82             u32 tsm_caps
//! CAPABILITIES 0x02                 u32 dsm_caps, u8 req_msg_supported[16] (bit = code - 0x80),
//!                                   u16 lock_interface_flags_supported, u8 rsvd[3],
//!                                   u8 dev_addr_width, u8 num_req_this, u8 num_req_all
//! LOCK_INTERFACE_REQ 0x83           u16 flags, u8 default_stream_id, u8 rsvd,
//!                                   u64 mmio_reporting_offset, u64 bind_p2p_addr_mask
//! LOCK_INTERFACE_RSP 0x03           u8 start_interface_nonce[32]
//! GET_DEVICE_INTERFACE_REPORT 0x84  u16 offset, u16 length
//! DEVICE_INTERFACE_REPORT 0x04      u16 portion_length, u16 remainder_length, u8 portion[]
//! GET_DEVICE_INTERFACE_STATE 0x85   -
//! DEVICE_INTERFACE_STATE 0x05       u8 tdi_state
//! START_INTERFACE_REQ 0x86          u8 start_interface_nonce[32]
//! START_INTERFACE_RSP 0x06          -
//! STOP_INTERFACE_REQ 0x87           -
//! STOP_INTERFACE_RSP 0x07           -
//! TDISP_ERROR 0x7F                  u32 error_code, u32 error_data, extended data
//! ```
//!
//! The device interface report (the concatenated portions):
//!
//! ```text
//! u16 interface_info | u16 rsvd | u16 msi_x_message_control | u16 lnr_control
//! u32 tph_control | u32 mmio_range_count
//! MMIO_RANGE[mmio_range_count]: u64 first_page (4 KiB page number, MMIO_REPORTING_OFFSET
//!     added), u32 number_of_pages, u16 range_attributes, u16 range_id
//! u32 device_specific_info_len | u8 device_specific_info[len]
//! ```
//!
//! Messages travel in the payload of a vendor-defined message whose length is explicit, so the
//! parsers require exact sizes (no transport padding).
//!
//! This file is compiled both as the body of the `coco-tdisp` crate and directly into the
//! kernel module. It uses only `core`, has no `unsafe`, never allocates and has no code path
//! that can panic.

/// TDISPVersion 1.0.
pub const TDISP_VERSION_1_0: u8 = 0x10;

/// Size of the TDISP header.
pub const TDISP_HEADER_SIZE: usize = 16;
/// Size of the start interface nonce.
pub const TDISP_NONCE_SIZE: usize = 32;

/// GET_TDISP_VERSION.
pub const TDISP_GET_VERSION: u8 = 0x81;
/// GET_TDISP_CAPABILITIES.
pub const TDISP_GET_CAPABILITIES: u8 = 0x82;
/// LOCK_INTERFACE_REQUEST.
pub const TDISP_LOCK_INTERFACE_REQ: u8 = 0x83;
/// GET_DEVICE_INTERFACE_REPORT.
pub const TDISP_GET_DEVICE_INTERFACE_REPORT: u8 = 0x84;
/// GET_DEVICE_INTERFACE_STATE.
pub const TDISP_GET_DEVICE_INTERFACE_STATE: u8 = 0x85;
/// START_INTERFACE_REQUEST.
pub const TDISP_START_INTERFACE_REQ: u8 = 0x86;
/// STOP_INTERFACE_REQUEST.
pub const TDISP_STOP_INTERFACE_REQ: u8 = 0x87;
/// BIND_P2P_STREAM_REQUEST.
pub const TDISP_BIND_P2P_STREAM_REQ: u8 = 0x88;
/// UNBIND_P2P_STREAM_REQUEST.
pub const TDISP_UNBIND_P2P_STREAM_REQ: u8 = 0x89;
/// SET_MMIO_ATTRIBUTE_REQUEST.
pub const TDISP_SET_MMIO_ATTRIBUTE_REQ: u8 = 0x8A;
/// VDM_REQUEST.
pub const TDISP_VDM_REQ: u8 = 0x8B;

/// TDISP_VERSION.
pub const TDISP_VERSION: u8 = 0x01;
/// TDISP_CAPABILITIES.
pub const TDISP_CAPABILITIES: u8 = 0x02;
/// LOCK_INTERFACE_RESPONSE.
pub const TDISP_LOCK_INTERFACE_RSP: u8 = 0x03;
/// DEVICE_INTERFACE_REPORT.
pub const TDISP_DEVICE_INTERFACE_REPORT: u8 = 0x04;
/// DEVICE_INTERFACE_STATE.
pub const TDISP_DEVICE_INTERFACE_STATE: u8 = 0x05;
/// START_INTERFACE_RESPONSE.
pub const TDISP_START_INTERFACE_RSP: u8 = 0x06;
/// STOP_INTERFACE_RESPONSE.
pub const TDISP_STOP_INTERFACE_RSP: u8 = 0x07;
/// TDISP_ERROR.
pub const TDISP_ERROR: u8 = 0x7F;

/// ERROR code: InvalidRequest.
pub const TDISP_ERROR_INVALID_REQUEST: u32 = 0x0001;
/// ERROR code: Busy.
pub const TDISP_ERROR_BUSY: u32 = 0x0003;
/// ERROR code: InvalidInterfaceState.
pub const TDISP_ERROR_INVALID_INTERFACE_STATE: u32 = 0x0004;
/// ERROR code: Unspecified.
pub const TDISP_ERROR_UNSPECIFIED: u32 = 0x0005;
/// ERROR code: UnsupportedRequest.
pub const TDISP_ERROR_UNSUPPORTED_REQUEST: u32 = 0x0007;
/// ERROR code: VersionMismatch.
pub const TDISP_ERROR_VERSION_MISMATCH: u32 = 0x0041;
/// ERROR code: VendorSpecificError.
pub const TDISP_ERROR_VENDOR_SPECIFIC: u32 = 0x00FF;
/// ERROR code: InvalidInterface.
pub const TDISP_ERROR_INVALID_INTERFACE: u32 = 0x0101;
/// ERROR code: InvalidNonce.
pub const TDISP_ERROR_INVALID_NONCE: u32 = 0x0102;
/// ERROR code: InsufficientEntropy.
pub const TDISP_ERROR_INSUFFICIENT_ENTROPY: u32 = 0x0103;
/// ERROR code: InvalidDeviceConfiguration.
pub const TDISP_ERROR_INVALID_DEVICE_CONFIGURATION: u32 = 0x0104;

/// Every TDISP ERROR code with its name (as in the specification).
pub const TDISP_ERROR_CODES: [(u32, &str); 11] = [
    (TDISP_ERROR_INVALID_REQUEST, "INVALID_REQUEST"),
    (TDISP_ERROR_BUSY, "BUSY"),
    (
        TDISP_ERROR_INVALID_INTERFACE_STATE,
        "INVALID_INTERFACE_STATE",
    ),
    (TDISP_ERROR_UNSPECIFIED, "UNSPECIFIED"),
    (TDISP_ERROR_UNSUPPORTED_REQUEST, "UNSUPPORTED_REQUEST"),
    (TDISP_ERROR_VERSION_MISMATCH, "VERSION_MISMATCH"),
    (TDISP_ERROR_VENDOR_SPECIFIC, "VENDOR_SPECIFIC_ERROR"),
    (TDISP_ERROR_INVALID_INTERFACE, "INVALID_INTERFACE"),
    (TDISP_ERROR_INVALID_NONCE, "INVALID_NONCE"),
    (TDISP_ERROR_INSUFFICIENT_ENTROPY, "INSUFFICIENT_ENTROPY"),
    (
        TDISP_ERROR_INVALID_DEVICE_CONFIGURATION,
        "INVALID_DEVICE_CONFIGURATION",
    ),
];

/// LOCK_INTERFACE flags: NO_FW_UPDATE.
pub const TDISP_LOCK_NO_FW_UPDATE: u16 = 0x0001;
/// LOCK_INTERFACE flags: SYSTEM_CACHE_LINE_SIZE.
pub const TDISP_LOCK_SYSTEM_CACHE_LINE_SIZE: u16 = 0x0002;
/// LOCK_INTERFACE flags: LOCK_MSIX.
pub const TDISP_LOCK_MSIX: u16 = 0x0004;
/// LOCK_INTERFACE flags: BIND_P2P.
pub const TDISP_LOCK_BIND_P2P: u16 = 0x0008;
/// LOCK_INTERFACE flags: ALL_REQUEST_REDIRECT.
pub const TDISP_LOCK_ALL_REQUEST_REDIRECT: u16 = 0x0010;
/// LOCK_INTERFACE flags defined by TDISP 1.0 (others are reserved).
pub const TDISP_LOCK_FLAGS_DEFINED: u16 = 0x001F;

/// interface_info: NO_UPDATE_AFTER_LOCK (firmware updates not permitted while locked).
pub const TDISP_INFO_NO_UPDATE_AFTER_LOCK: u16 = 0x0001;
/// interface_info: DMA requests without PASID.
pub const TDISP_INFO_DMA_WITHOUT_PASID: u16 = 0x0002;
/// interface_info: DMA requests with PASID.
pub const TDISP_INFO_DMA_WITH_PASID: u16 = 0x0004;
/// interface_info: ATS supported and enabled.
pub const TDISP_INFO_ATS: u16 = 0x0008;
/// interface_info: PRS supported and enabled.
pub const TDISP_INFO_PRS: u16 = 0x0010;
/// interface_info: XT mode (TDISP 1.1).
pub const TDISP_INFO_XT: u16 = 0x0020;
/// interface_info bits defined (others reserved).
pub const TDISP_INFO_DEFINED: u16 = 0x003F;

/// MMIO range attribute: MSI-X table.
pub const TDISP_MMIO_MSIX_TABLE: u16 = 0x0001;
/// MMIO range attribute: MSI-X PBA.
pub const TDISP_MMIO_MSIX_PBA: u16 = 0x0002;
/// MMIO range attribute: IS_NON_TEE_MEM.
pub const TDISP_MMIO_IS_NON_TEE: u16 = 0x0004;
/// MMIO range attribute: IS_MEM_ATTR_UPDATABLE.
pub const TDISP_MMIO_IS_MEM_ATTR_UPDATABLE: u16 = 0x0008;
/// MMIO range attributes defined (others reserved).
pub const TDISP_MMIO_ATTR_DEFINED: u16 = 0x000F;

/// Page size of MMIO ranges in the report.
pub const TDISP_PAGE_SIZE: u64 = 4096;
/// Size of an MMIO_RANGE.
pub const TDISP_MMIO_RANGE_SIZE: usize = 16;
/// Size of the report before its MMIO ranges.
pub const TDISP_REPORT_FIXED_SIZE: usize = 16;
/// Size of CAPABILITIES' body.
pub const TDISP_CAPABILITIES_BODY_SIZE: usize = 28;
/// Size of LOCK_INTERFACE_REQ's body.
pub const TDISP_LOCK_REQ_BODY_SIZE: usize = 20;

/// Reasons a TDISP message cannot be parsed or encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TdispError {
    /// Shorter than the header or the body's fixed layout.
    TooShort,
    /// The message type is not the one expected.
    UnexpectedCode,
    /// The message type is not one this codec knows.
    UnknownCode,
    /// Bytes follow the message.
    TrailingBytes,
    /// A field holds a value that is not allowed (a TDI state above 3, a VERSION without
    /// entries, a reserved bit).
    InvalidField,
    /// A length field disagrees with the message.
    InvalidLength,
    /// The output buffer is too small.
    BufferTooSmall,
}

impl TdispError {
    /// A short, human-readable reason, suitable for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            TdispError::TooShort => "TDISP message too short",
            TdispError::UnexpectedCode => "unexpected TDISP message type",
            TdispError::UnknownCode => "unknown TDISP message type",
            TdispError::TrailingBytes => "unexpected bytes after the TDISP message",
            TdispError::InvalidField => "invalid value in a TDISP field",
            TdispError::InvalidLength => "TDISP length field inconsistent with the message",
            TdispError::BufferTooSmall => "output buffer too small for the TDISP message",
        }
    }
}

impl core::fmt::Display for TdispError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name for a TDISP message type, for logs.
pub fn message_name(code: u8) -> &'static str {
    match code {
        TDISP_GET_VERSION => "GET_TDISP_VERSION",
        TDISP_GET_CAPABILITIES => "GET_TDISP_CAPABILITIES",
        TDISP_LOCK_INTERFACE_REQ => "LOCK_INTERFACE_REQUEST",
        TDISP_GET_DEVICE_INTERFACE_REPORT => "GET_DEVICE_INTERFACE_REPORT",
        TDISP_GET_DEVICE_INTERFACE_STATE => "GET_DEVICE_INTERFACE_STATE",
        TDISP_START_INTERFACE_REQ => "START_INTERFACE_REQUEST",
        TDISP_STOP_INTERFACE_REQ => "STOP_INTERFACE_REQUEST",
        TDISP_BIND_P2P_STREAM_REQ => "BIND_P2P_STREAM_REQUEST",
        TDISP_UNBIND_P2P_STREAM_REQ => "UNBIND_P2P_STREAM_REQUEST",
        TDISP_SET_MMIO_ATTRIBUTE_REQ => "SET_MMIO_ATTRIBUTE_REQUEST",
        TDISP_VDM_REQ => "VDM_REQUEST",
        TDISP_VERSION => "TDISP_VERSION",
        TDISP_CAPABILITIES => "TDISP_CAPABILITIES",
        TDISP_LOCK_INTERFACE_RSP => "LOCK_INTERFACE_RESPONSE",
        TDISP_DEVICE_INTERFACE_REPORT => "DEVICE_INTERFACE_REPORT",
        TDISP_DEVICE_INTERFACE_STATE => "DEVICE_INTERFACE_STATE",
        TDISP_START_INTERFACE_RSP => "START_INTERFACE_RESPONSE",
        TDISP_STOP_INTERFACE_RSP => "STOP_INTERFACE_RESPONSE",
        TDISP_ERROR => "TDISP_ERROR",
        _ => "unknown TDISP message",
    }
}

/// The name of a TDISP ERROR code, for logs.
pub fn error_name(code: u32) -> &'static str {
    TDISP_ERROR_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or("reserved error code", |(_, n)| n)
}

/// State of a TDI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TdiState {
    /// CONFIG_UNLOCKED (0).
    ConfigUnlocked,
    /// CONFIG_LOCKED (1).
    ConfigLocked,
    /// RUN (2).
    Run,
    /// ERROR (3).
    Error,
}

impl TdiState {
    /// The state with this wire value.
    pub const fn from_u8(v: u8) -> Option<TdiState> {
        match v {
            0 => Some(TdiState::ConfigUnlocked),
            1 => Some(TdiState::ConfigLocked),
            2 => Some(TdiState::Run),
            3 => Some(TdiState::Error),
            _ => None,
        }
    }

    /// The wire value.
    pub const fn as_u8(self) -> u8 {
        match self {
            TdiState::ConfigUnlocked => 0,
            TdiState::ConfigLocked => 1,
            TdiState::Run => 2,
            TdiState::Error => 3,
        }
    }

    /// The specification's name.
    pub const fn name(self) -> &'static str {
        match self {
            TdiState::ConfigUnlocked => "CONFIG_UNLOCKED",
            TdiState::ConfigLocked => "CONFIG_LOCKED",
            TdiState::Run => "RUN",
            TdiState::Error => "ERROR",
        }
    }
}

/// INTERFACE_ID: the function ID (the reserved u64 is written as zero and ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct InterfaceId {
    /// Bits 15:0 Requester ID, 23:16 segment, 24 segment valid, 31:25 reserved.
    pub function_id: u32,
}

impl InterfaceId {
    /// Function ID bits TDISP 1.0 defines.
    pub const FUNCTION_ID_DEFINED: u32 = 0x01FF_FFFF;

    /// The interface of the function with Requester ID `rid` (segment not given).
    pub const fn from_rid(rid: u16) -> InterfaceId {
        InterfaceId {
            function_id: rid as u32,
        }
    }

    /// The Requester ID (bus/device/function).
    pub const fn rid(self) -> u16 {
        (self.function_id & 0xFFFF) as u16
    }
}

/// The 16-byte TDISP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TdispHeader {
    /// TDISPVersion (0x10).
    pub version: u8,
    /// Message type.
    pub message_type: u8,
    /// The TDI the message is about.
    pub interface_id: InterfaceId,
}

impl TdispHeader {
    /// A header of version 1.0.
    pub const fn new(message_type: u8, interface_id: InterfaceId) -> Self {
        TdispHeader {
            version: TDISP_VERSION_1_0,
            message_type,
            interface_id,
        }
    }

    /// Parses the header; returns it and the body after it. Any version is accepted (the
    /// responder answers a wrong one with VERSION_MISMATCH).
    pub fn parse(buf: &[u8]) -> Result<(TdispHeader, &[u8]), TdispError> {
        let mut r = Reader::new(buf);
        let version = r.u8()?;
        let message_type = r.u8()?;
        r.skip(2)?;
        let function_id = r.u32()?;
        r.skip(8)?;
        Ok((
            TdispHeader {
                version,
                message_type,
                interface_id: InterfaceId { function_id },
            },
            r.rest(),
        ))
    }

    /// The header in wire order.
    pub fn to_bytes(self) -> [u8; TDISP_HEADER_SIZE] {
        let f = self.interface_id.function_id.to_le_bytes();
        let [f0, f1, f2, f3] = f;
        [
            self.version,
            self.message_type,
            0,
            0,
            f0,
            f1,
            f2,
            f3,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
        ]
    }
}

/// GET_TDISP_CAPABILITIES / TDISP_CAPABILITIES fields of the device (DSM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities {
    /// DSM capabilities.
    pub dsm_caps: u32,
    /// Bit (code - 0x80) set for each request code supported.
    pub req_msg_supported: [u8; 16],
    /// LOCK_INTERFACE flags supported.
    pub lock_flags_supported: u16,
    /// Device address width in bits.
    pub dev_addr_width: u8,
    /// Number of outstanding requests this TDI supports.
    pub num_req_this: u8,
    /// Number of outstanding requests all TDIs support.
    pub num_req_all: u8,
}

impl Capabilities {
    /// Whether request `code` (0x80 to 0xFF) is marked supported.
    pub fn supports(&self, code: u8) -> bool {
        let Some(bit) = code.checked_sub(0x80) else {
            return false;
        };
        self.req_msg_supported
            .get(usize::from(bit / 8))
            .is_some_and(|b| b & (1u8 << (bit % 8)) != 0)
    }

    /// Marks request `code` (0x80 to 0xFF) supported.
    pub fn set_supported(&mut self, code: u8) {
        if let Some(bit) = code.checked_sub(0x80) {
            if let Some(b) = self.req_msg_supported.get_mut(usize::from(bit / 8)) {
                *b |= 1u8 << (bit % 8);
            }
        }
    }
}

/// LOCK_INTERFACE_REQUEST parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LockInterface {
    /// Flags (`TDISP_LOCK_*`).
    pub flags: u16,
    /// Stream ID of the IDE stream for the TDI's default traffic.
    pub default_stream_id: u8,
    /// Offset the device adds to MMIO addresses in the report.
    pub mmio_reporting_offset: u64,
    /// Address mask for P2P (with BIND_P2P).
    pub bind_p2p_addr_mask: u64,
}

/// A TDISP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TdispRequest {
    /// GET_TDISP_VERSION.
    GetVersion,
    /// GET_TDISP_CAPABILITIES with the TSM's capabilities.
    GetCapabilities {
        /// TSM capabilities.
        tsm_caps: u32,
    },
    /// LOCK_INTERFACE_REQUEST.
    LockInterface(LockInterface),
    /// GET_DEVICE_INTERFACE_REPORT for `length` bytes at `offset`.
    GetReport {
        /// Offset in the report.
        offset: u16,
        /// Bytes asked for.
        length: u16,
    },
    /// GET_DEVICE_INTERFACE_STATE.
    GetState,
    /// START_INTERFACE_REQUEST with the nonce of LOCK_INTERFACE_RESPONSE.
    Start {
        /// The start interface nonce.
        nonce: [u8; TDISP_NONCE_SIZE],
    },
    /// STOP_INTERFACE_REQUEST.
    Stop,
}

impl TdispRequest {
    /// The message type.
    pub fn code(&self) -> u8 {
        match self {
            TdispRequest::GetVersion => TDISP_GET_VERSION,
            TdispRequest::GetCapabilities { .. } => TDISP_GET_CAPABILITIES,
            TdispRequest::LockInterface(_) => TDISP_LOCK_INTERFACE_REQ,
            TdispRequest::GetReport { .. } => TDISP_GET_DEVICE_INTERFACE_REPORT,
            TdispRequest::GetState => TDISP_GET_DEVICE_INTERFACE_STATE,
            TdispRequest::Start { .. } => TDISP_START_INTERFACE_REQ,
            TdispRequest::Stop => TDISP_STOP_INTERFACE_REQ,
        }
    }
}

/// A DEVICE_INTERFACE_REPORT portion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReportPortion<'a> {
    /// The bytes of this portion (portion_length of them).
    pub portion: &'a [u8],
    /// Bytes of the report after this portion.
    pub remainder_length: u16,
}

impl ReportPortion<'_> {
    /// Total size of the report given that this portion was asked for at `offset`
    /// (offset + portion + remainder), or `None` beyond 64 KiB.
    pub fn total_len(&self, offset: u16) -> Option<u16> {
        let p = u16::try_from(self.portion.len()).ok()?;
        offset.checked_add(p)?.checked_add(self.remainder_length)
    }
}

/// A TDISP_ERROR response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorRsp<'a> {
    /// Error code (`TDISP_ERROR_*`).
    pub code: u32,
    /// Error data.
    pub data: u32,
    /// Extended error data.
    pub ext: &'a [u8],
}

/// A TDISP response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TdispResponse<'a> {
    /// TDISP_VERSION: the version bytes (at least one).
    Version {
        /// The versions (0x10 = 1.0).
        versions: &'a [u8],
    },
    /// TDISP_CAPABILITIES.
    Capabilities(Capabilities),
    /// LOCK_INTERFACE_RESPONSE.
    LockInterface {
        /// The start interface nonce.
        nonce: [u8; TDISP_NONCE_SIZE],
    },
    /// DEVICE_INTERFACE_REPORT.
    Report(ReportPortion<'a>),
    /// DEVICE_INTERFACE_STATE.
    State(TdiState),
    /// START_INTERFACE_RESPONSE.
    Start,
    /// STOP_INTERFACE_RESPONSE.
    Stop,
    /// TDISP_ERROR.
    Error(ErrorRsp<'a>),
}

impl TdispResponse<'_> {
    /// The message type.
    pub fn code(&self) -> u8 {
        match self {
            TdispResponse::Version { .. } => TDISP_VERSION,
            TdispResponse::Capabilities(_) => TDISP_CAPABILITIES,
            TdispResponse::LockInterface { .. } => TDISP_LOCK_INTERFACE_RSP,
            TdispResponse::Report(_) => TDISP_DEVICE_INTERFACE_REPORT,
            TdispResponse::State(_) => TDISP_DEVICE_INTERFACE_STATE,
            TdispResponse::Start => TDISP_START_INTERFACE_RSP,
            TdispResponse::Stop => TDISP_STOP_INTERFACE_RSP,
            TdispResponse::Error(_) => TDISP_ERROR,
        }
    }
}

/// Little-endian reader over a byte slice; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], TdispError> {
        let b = self.buf.get(..n).ok_or(TdispError::TooShort)?;
        self.buf = self.buf.get(n..).unwrap_or(&[]);
        Ok(b)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TdispError> {
        self.bytes(N)?.try_into().map_err(|_| TdispError::TooShort)
    }

    fn skip(&mut self, n: usize) -> Result<(), TdispError> {
        self.bytes(n).map(|_| ())
    }

    fn u8(&mut self) -> Result<u8, TdispError> {
        let [b] = self.array::<1>()?;
        Ok(b)
    }

    fn u16(&mut self) -> Result<u16, TdispError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, TdispError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, TdispError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn rest(&self) -> &'a [u8] {
        self.buf
    }

    fn finish(&self) -> Result<(), TdispError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(TdispError::TrailingBytes)
        }
    }
}

/// Writer into an output buffer; every write is bounds-checked.
struct Writer<'a> {
    out: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    fn new(out: &'a mut [u8]) -> Self {
        Writer { out, pos: 0 }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), TdispError> {
        let end = self
            .pos
            .checked_add(bytes.len())
            .ok_or(TdispError::BufferTooSmall)?;
        self.out
            .get_mut(self.pos..end)
            .ok_or(TdispError::BufferTooSmall)?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    fn len(&self) -> usize {
        self.pos
    }
}

/// Parses a TDISP request: the header, then the body of its message type, which must be
/// exactly as long as the layout says. A message type that is not a request this codec knows
/// is [`TdispError::UnknownCode`] (parse the header alone with [`TdispHeader::parse`] to answer
/// it).
pub fn parse_request(buf: &[u8]) -> Result<(TdispHeader, TdispRequest), TdispError> {
    let (header, body) = TdispHeader::parse(buf)?;
    let mut r = Reader::new(body);
    let req = match header.message_type {
        TDISP_GET_VERSION => TdispRequest::GetVersion,
        TDISP_GET_CAPABILITIES => TdispRequest::GetCapabilities { tsm_caps: r.u32()? },
        TDISP_LOCK_INTERFACE_REQ => {
            let flags = r.u16()?;
            let default_stream_id = r.u8()?;
            r.skip(1)?;
            TdispRequest::LockInterface(LockInterface {
                flags,
                default_stream_id,
                mmio_reporting_offset: r.u64()?,
                bind_p2p_addr_mask: r.u64()?,
            })
        }
        TDISP_GET_DEVICE_INTERFACE_REPORT => TdispRequest::GetReport {
            offset: r.u16()?,
            length: r.u16()?,
        },
        TDISP_GET_DEVICE_INTERFACE_STATE => TdispRequest::GetState,
        TDISP_START_INTERFACE_REQ => TdispRequest::Start { nonce: r.array()? },
        TDISP_STOP_INTERFACE_REQ => TdispRequest::Stop,
        _ => return Err(TdispError::UnknownCode),
    };
    r.finish()?;
    Ok((header, req))
}

/// Writes a TDISP request with `version` and `interface_id`; returns its size.
pub fn encode_request(
    version: u8,
    interface_id: InterfaceId,
    req: &TdispRequest,
    out: &mut [u8],
) -> Result<usize, TdispError> {
    let mut w = Writer::new(out);
    let header = TdispHeader {
        version,
        message_type: req.code(),
        interface_id,
    };
    w.put(&header.to_bytes())?;
    match req {
        TdispRequest::GetVersion | TdispRequest::GetState | TdispRequest::Stop => {}
        TdispRequest::GetCapabilities { tsm_caps } => w.put(&tsm_caps.to_le_bytes())?,
        TdispRequest::LockInterface(l) => {
            w.put(&l.flags.to_le_bytes())?;
            w.put(&[l.default_stream_id, 0])?;
            w.put(&l.mmio_reporting_offset.to_le_bytes())?;
            w.put(&l.bind_p2p_addr_mask.to_le_bytes())?;
        }
        TdispRequest::GetReport { offset, length } => {
            w.put(&offset.to_le_bytes())?;
            w.put(&length.to_le_bytes())?;
        }
        TdispRequest::Start { nonce } => w.put(nonce)?,
    }
    Ok(w.len())
}

/// Parses a TDISP response: the header, then the body of its message type (exact size;
/// VERSION needs at least one entry, DEVICE_INTERFACE_STATE a state of 0 to 3,
/// DEVICE_INTERFACE_REPORT a portion_length equal to the bytes that follow).
pub fn parse_response(buf: &[u8]) -> Result<(TdispHeader, TdispResponse<'_>), TdispError> {
    let (header, body) = TdispHeader::parse(buf)?;
    let mut r = Reader::new(body);
    let rsp = match header.message_type {
        TDISP_VERSION => {
            let count = r.u8()?;
            if count == 0 {
                return Err(TdispError::InvalidField);
            }
            TdispResponse::Version {
                versions: r.bytes(usize::from(count))?,
            }
        }
        TDISP_CAPABILITIES => {
            let dsm_caps = r.u32()?;
            let req_msg_supported = r.array()?;
            let lock_flags_supported = r.u16()?;
            r.skip(3)?;
            TdispResponse::Capabilities(Capabilities {
                dsm_caps,
                req_msg_supported,
                lock_flags_supported,
                dev_addr_width: r.u8()?,
                num_req_this: r.u8()?,
                num_req_all: r.u8()?,
            })
        }
        TDISP_LOCK_INTERFACE_RSP => TdispResponse::LockInterface { nonce: r.array()? },
        TDISP_DEVICE_INTERFACE_REPORT => {
            let portion_length = r.u16()?;
            let remainder_length = r.u16()?;
            let rest = r.rest();
            if rest.len() < usize::from(portion_length) {
                return Err(TdispError::InvalidLength);
            }
            if rest.len() > usize::from(portion_length) {
                return Err(TdispError::TrailingBytes);
            }
            return Ok((
                header,
                TdispResponse::Report(ReportPortion {
                    portion: rest,
                    remainder_length,
                }),
            ));
        }
        TDISP_DEVICE_INTERFACE_STATE => {
            TdispResponse::State(TdiState::from_u8(r.u8()?).ok_or(TdispError::InvalidField)?)
        }
        TDISP_START_INTERFACE_RSP => TdispResponse::Start,
        TDISP_STOP_INTERFACE_RSP => TdispResponse::Stop,
        TDISP_ERROR => {
            let code = r.u32()?;
            let data = r.u32()?;
            return Ok((
                header,
                TdispResponse::Error(ErrorRsp {
                    code,
                    data,
                    ext: r.rest(),
                }),
            ));
        }
        _ => return Err(TdispError::UnknownCode),
    };
    r.finish()?;
    Ok((header, rsp))
}

/// Writes a TDISP response with `version` and `interface_id`; returns its size.
pub fn encode_response(
    version: u8,
    interface_id: InterfaceId,
    rsp: &TdispResponse<'_>,
    out: &mut [u8],
) -> Result<usize, TdispError> {
    let mut w = Writer::new(out);
    let header = TdispHeader {
        version,
        message_type: rsp.code(),
        interface_id,
    };
    w.put(&header.to_bytes())?;
    match rsp {
        TdispResponse::Version { versions } => {
            let count = u8::try_from(versions.len()).map_err(|_| TdispError::InvalidLength)?;
            if count == 0 {
                return Err(TdispError::InvalidField);
            }
            w.put(&[count])?;
            w.put(versions)?;
        }
        TdispResponse::Capabilities(c) => {
            w.put(&c.dsm_caps.to_le_bytes())?;
            w.put(&c.req_msg_supported)?;
            w.put(&c.lock_flags_supported.to_le_bytes())?;
            w.put(&[0, 0, 0, c.dev_addr_width, c.num_req_this, c.num_req_all])?;
        }
        TdispResponse::LockInterface { nonce } => w.put(nonce)?,
        TdispResponse::Report(p) => {
            let len = u16::try_from(p.portion.len()).map_err(|_| TdispError::InvalidLength)?;
            w.put(&len.to_le_bytes())?;
            w.put(&p.remainder_length.to_le_bytes())?;
            w.put(p.portion)?;
        }
        TdispResponse::State(s) => w.put(&[s.as_u8()])?,
        TdispResponse::Start | TdispResponse::Stop => {}
        TdispResponse::Error(e) => {
            w.put(&e.code.to_le_bytes())?;
            w.put(&e.data.to_le_bytes())?;
            w.put(e.ext)?;
        }
    }
    Ok(w.len())
}

/// Compares two nonces in constant time (no early exit).
pub fn nonce_eq(a: &[u8; TDISP_NONCE_SIZE], b: &[u8; TDISP_NONCE_SIZE]) -> bool {
    let diff = a
        .iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y));
    core::hint::black_box(diff) == 0
}

// --- The device interface report -------------------------------------------------------

/// One MMIO_RANGE of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MmioRange {
    /// First 4 KiB page (address + MMIO_REPORTING_OFFSET, divided by 4096).
    pub first_page: u64,
    /// Number of 4 KiB pages.
    pub number_of_pages: u32,
    /// Attributes (`TDISP_MMIO_*`).
    pub attributes: u16,
    /// Range ID (the BAR, for this project's devices).
    pub range_id: u16,
}

impl MmioRange {
    fn to_bytes(self) -> [u8; TDISP_MMIO_RANGE_SIZE] {
        let mut out = [0u8; TDISP_MMIO_RANGE_SIZE];
        let parts = self
            .first_page
            .to_le_bytes()
            .into_iter()
            .chain(self.number_of_pages.to_le_bytes())
            .chain(self.attributes.to_le_bytes())
            .chain(self.range_id.to_le_bytes());
        for (d, s) in out.iter_mut().zip(parts) {
            *d = s;
        }
        out
    }

    fn parse(bytes: &[u8]) -> Result<MmioRange, TdispError> {
        let mut r = Reader::new(bytes);
        Ok(MmioRange {
            first_page: r.u64()?,
            number_of_pages: r.u32()?,
            attributes: r.u16()?,
            range_id: r.u16()?,
        })
    }

    /// The range's first byte address and its end (exclusive) as reported, i.e. with the
    /// MMIO_REPORTING_OFFSET still added; `None` if they overflow 64 bits.
    pub fn reported_span(&self) -> Option<(u64, u64)> {
        let start = self.first_page.checked_mul(TDISP_PAGE_SIZE)?;
        let len = u64::from(self.number_of_pages).checked_mul(TDISP_PAGE_SIZE)?;
        Some((start, start.checked_add(len)?))
    }
}

/// The fixed fields of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReportInfo {
    /// interface_info (`TDISP_INFO_*`).
    pub interface_info: u16,
    /// MSI-X Message Control register of the TDI.
    pub msix_msg_ctrl: u16,
    /// LNR control register.
    pub lnr_control: u16,
    /// TPH control register.
    pub tph_control: u32,
}

/// A memory BAR of the function, as the requester (or the platform) knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bar {
    /// BAR index (0 to 5).
    pub index: u8,
    /// Base address (0: unassigned).
    pub base: u64,
    /// Size in bytes.
    pub size: u64,
}

/// Reasons a report is malformed or does not fit the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportError {
    /// The report ends before its fixed fields, its MMIO ranges or its device-specific data.
    Truncated,
    /// Bytes follow the device-specific data.
    TrailingBytes,
    /// interface_info has reserved bits set.
    ReservedInfoBits,
    /// MMIO range `n` has reserved attribute bits set.
    ReservedAttributes(usize),
    /// MMIO range `n` has zero pages.
    EmptyRange(usize),
    /// MMIO range `n`'s address overflows, or lies below the MMIO_REPORTING_OFFSET.
    BadAddress(usize),
    /// MMIO range `n` is not inside any assigned memory BAR.
    OutsideBars(usize),
    /// MMIO ranges `a` and `b` overlap.
    Overlap(usize, usize),
    /// The output buffer is too small, or the report would exceed 64 KiB.
    BufferTooSmall,
}

impl ReportError {
    /// A short, human-readable reason, suitable for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            ReportError::Truncated => "interface report truncated",
            ReportError::TrailingBytes => "bytes after the interface report",
            ReportError::ReservedInfoBits => "reserved interface_info bits set",
            ReportError::ReservedAttributes(_) => "reserved MMIO range attribute bits set",
            ReportError::EmptyRange(_) => "MMIO range with zero pages",
            ReportError::BadAddress(_) => "MMIO range address overflows or is below the offset",
            ReportError::OutsideBars(_) => "MMIO range outside the function's BARs",
            ReportError::Overlap(_, _) => "MMIO ranges overlap",
            ReportError::BufferTooSmall => "output buffer too small for the interface report",
        }
    }
}

impl core::fmt::Display for ReportError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())?;
        match self {
            ReportError::ReservedAttributes(n)
            | ReportError::EmptyRange(n)
            | ReportError::BadAddress(n)
            | ReportError::OutsideBars(n) => write!(f, " (range {n})"),
            ReportError::Overlap(a, b) => write!(f, " (ranges {a} and {b})"),
            _ => Ok(()),
        }
    }
}

/// A parsed device interface report, borrowing from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InterfaceReport<'a> {
    /// Fixed fields.
    pub info: ReportInfo,
    /// mmio_range_count × 16 bytes.
    ranges: &'a [u8],
    /// The device-specific information.
    pub device_specific: &'a [u8],
}

/// Size of a report with `ranges` MMIO ranges and `device_specific` bytes of device-specific
/// information, or `None` if it overflows.
pub fn interface_report_size(ranges: usize, device_specific: usize) -> Option<usize> {
    ranges
        .checked_mul(TDISP_MMIO_RANGE_SIZE)?
        .checked_add(TDISP_REPORT_FIXED_SIZE)?
        .checked_add(4)?
        .checked_add(device_specific)
}

/// Parses a complete device interface report (the concatenated portions): every length and
/// count must agree with the buffer exactly, and interface_info and the range attributes must
/// have no reserved bit set. The ranges are only checked against the BARs by
/// [`InterfaceReport::check`].
pub fn parse_interface_report(buf: &[u8]) -> Result<InterfaceReport<'_>, ReportError> {
    let t = |_| ReportError::Truncated;
    let mut r = Reader::new(buf);
    let interface_info = r.u16().map_err(t)?;
    r.skip(2).map_err(t)?;
    let msix_msg_ctrl = r.u16().map_err(t)?;
    let lnr_control = r.u16().map_err(t)?;
    let tph_control = r.u32().map_err(t)?;
    let count = r.u32().map_err(t)?;
    let ranges_len = usize::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(TDISP_MMIO_RANGE_SIZE))
        .ok_or(ReportError::Truncated)?;
    let ranges = r.bytes(ranges_len).map_err(t)?;
    let dev_len = r.u32().map_err(t)?;
    let dev_len = usize::try_from(dev_len).map_err(|_| ReportError::Truncated)?;
    let device_specific = r.bytes(dev_len).map_err(t)?;
    r.finish().map_err(|_| ReportError::TrailingBytes)?;
    if interface_info & !TDISP_INFO_DEFINED != 0 {
        return Err(ReportError::ReservedInfoBits);
    }
    let report = InterfaceReport {
        info: ReportInfo {
            interface_info,
            msix_msg_ctrl,
            lnr_control,
            tph_control,
        },
        ranges,
        device_specific,
    };
    for (i, range) in report.ranges().enumerate() {
        if range.attributes & !TDISP_MMIO_ATTR_DEFINED != 0 {
            return Err(ReportError::ReservedAttributes(i));
        }
    }
    Ok(report)
}

/// Writes a device interface report; returns its size. Reports are at most 64 KiB (the
/// offset and length of GET_DEVICE_INTERFACE_REPORT are 16 bits).
pub fn encode_interface_report(
    info: &ReportInfo,
    ranges: &[MmioRange],
    device_specific: &[u8],
    out: &mut [u8],
) -> Result<usize, ReportError> {
    let size = interface_report_size(ranges.len(), device_specific.len())
        .filter(|&s| s <= usize::from(u16::MAX))
        .ok_or(ReportError::BufferTooSmall)?;
    let count = u32::try_from(ranges.len()).map_err(|_| ReportError::BufferTooSmall)?;
    let dev_len = u32::try_from(device_specific.len()).map_err(|_| ReportError::BufferTooSmall)?;
    let b = |_| ReportError::BufferTooSmall;
    let mut w = Writer::new(out.get_mut(..size).ok_or(ReportError::BufferTooSmall)?);
    w.put(&info.interface_info.to_le_bytes()).map_err(b)?;
    w.put(&[0, 0]).map_err(b)?;
    w.put(&info.msix_msg_ctrl.to_le_bytes()).map_err(b)?;
    w.put(&info.lnr_control.to_le_bytes()).map_err(b)?;
    w.put(&info.tph_control.to_le_bytes()).map_err(b)?;
    w.put(&count.to_le_bytes()).map_err(b)?;
    for range in ranges {
        w.put(&range.to_bytes()).map_err(b)?;
    }
    w.put(&dev_len.to_le_bytes()).map_err(b)?;
    w.put(device_specific).map_err(b)?;
    Ok(w.len())
}

/// Iterator over the MMIO ranges of a report.
#[derive(Debug, Clone)]
pub struct MmioRanges<'a> {
    rest: &'a [u8],
}

impl Iterator for MmioRanges<'_> {
    type Item = MmioRange;

    fn next(&mut self) -> Option<MmioRange> {
        let bytes = self.rest.get(..TDISP_MMIO_RANGE_SIZE)?;
        self.rest = self.rest.get(TDISP_MMIO_RANGE_SIZE..).unwrap_or(&[]);
        MmioRange::parse(bytes).ok()
    }
}

impl<'a> InterfaceReport<'a> {
    /// Number of MMIO ranges.
    pub fn range_count(&self) -> usize {
        self.ranges.len() / TDISP_MMIO_RANGE_SIZE
    }

    /// The MMIO ranges, in report order.
    pub fn ranges(&self) -> MmioRanges<'a> {
        MmioRanges { rest: self.ranges }
    }

    /// MMIO range `index`.
    pub fn range(&self, index: usize) -> Option<MmioRange> {
        self.ranges().nth(index)
    }

    /// Checks the MMIO ranges against the function's memory BARs, the way a requester must
    /// before it trusts the report: every range has at least one page, its address (reported
    /// address minus `mmio_reporting_offset`, the offset the requester gave in
    /// LOCK_INTERFACE_REQUEST) does not overflow, it lies entirely inside one assigned BAR
    /// (base not 0, size not 0), and no two ranges overlap.
    pub fn check(&self, bars: &[Bar], mmio_reporting_offset: u64) -> Result<(), ReportError> {
        for (i, range) in self.ranges().enumerate() {
            if range.number_of_pages == 0 {
                return Err(ReportError::EmptyRange(i));
            }
            let (start, end) = range
                .reported_span()
                .and_then(|(s, e)| {
                    Some((
                        s.checked_sub(mmio_reporting_offset)?,
                        e.checked_sub(mmio_reporting_offset)?,
                    ))
                })
                .ok_or(ReportError::BadAddress(i))?;
            let inside = bars.iter().any(|bar| {
                bar.base != 0
                    && bar.size != 0
                    && bar
                        .base
                        .checked_add(bar.size)
                        .is_some_and(|bar_end| start >= bar.base && end <= bar_end)
            });
            if !inside {
                return Err(ReportError::OutsideBars(i));
            }
            for (j, other) in self.ranges().enumerate().take(i) {
                if let Some((os, oe)) = other.reported_span() {
                    let (s, e) = range.reported_span().unwrap_or((0, 0));
                    if s < oe && os < e {
                        return Err(ReportError::Overlap(j, i));
                    }
                }
            }
        }
        Ok(())
    }
}
