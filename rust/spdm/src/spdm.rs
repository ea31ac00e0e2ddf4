//! DMTF SPDM (DSP0274, versions 1.0 to 1.3) message codec.
//!
//! Every SPDM message starts with a 4-byte header: SPDMVersion (major in bits [7:4], minor in
//! bits [3:0], e.g. 0x12 for 1.2), RequestResponseCode, Param1, Param2. Request codes have
//! bit 7 set; the matching response code is the request code with bit 7 clear; ERROR is 0x7F.
//!
//! This file holds the header, all request/response/error code constants, GET_VERSION and
//! VERSION (both directions) with version negotiation, ERROR (both directions) and
//! RESPOND_IF_READY (both directions). The authentication messages (GET_CAPABILITIES to
//! CHALLENGE_AUTH), the certificate chain format, the transcript and the signing prefix live in
//! the sibling module `auth` (`auth.rs`), which builds on this one as `crate::spdm`.
//!
//! # Transport padding
//!
//! Over PCIe DOE an SPDM message travels in a data object whose payload is a whole number of
//! DWORDs, so a message may arrive followed by up to 3 bytes of zero padding and the transport
//! cannot say where the message really ends. Parsers of fixed-layout messages (GET_VERSION,
//! VERSION) therefore accept at most [`SPDM_MAX_TRANSPORT_PADDING`] trailing bytes after the
//! message, and only if they are all zero; anything else is [`SpdmError::TrailingBytes`].
//! Parsers of messages that end in variable-length data (ERROR's extended data) return that
//! data with the padding included.
//!
//! This file is compiled both as the body of the `coco-spdm` crate and directly into the kernel
//! module. It therefore uses only `core`, has no `unsafe`, never allocates, depends on no other
//! crate (not even the DOE framing) and has no code path that can panic.

/// Size of the SPDM message header in bytes.
pub const SPDM_HEADER_SIZE: usize = 4;

/// Maximum number of zero bytes accepted after a fixed-layout message (DOE DWORD padding).
pub const SPDM_MAX_TRANSPORT_PADDING: usize = 3;

/// Size of a GET_VERSION request in bytes.
pub const SPDM_GET_VERSION_SIZE: usize = 4;

/// Size of the fixed part of a VERSION response (header, reserved byte, entry count).
pub const SPDM_VERSION_RESPONSE_FIXED_SIZE: usize = 6;

/// Offset of VersionNumberEntryCount in a VERSION response.
const VERSION_COUNT_OFFSET: usize = 5;

/// Size of one version number entry in a VERSION response.
pub const SPDM_VERSION_ENTRY_SIZE: usize = 2;

/// Maximum size of a VERSION response (255 entries).
pub const SPDM_VERSION_RESPONSE_MAX_SIZE: usize =
    SPDM_VERSION_RESPONSE_FIXED_SIZE + 255 * SPDM_VERSION_ENTRY_SIZE;

/// Size of the nonces used by CHALLENGE, GET_MEASUREMENTS and key exchange.
pub const SPDM_NONCE_SIZE: usize = 32;

/// Number of certificate slots.
pub const SPDM_MAX_SLOTS: usize = 8;

/// Bit set in every request code and clear in every response code.
pub const SPDM_REQUEST_BIT: u8 = 0x80;

// --- SPDMVersion header byte values ---------------------------------------------------------

/// SPDMVersion header byte of SPDM 1.0; GET_VERSION and VERSION always carry it.
pub const SPDM_VERSION_1_0: u8 = 0x10;
/// SPDMVersion header byte of SPDM 1.1.
pub const SPDM_VERSION_1_1: u8 = 0x11;
/// SPDMVersion header byte of SPDM 1.2.
pub const SPDM_VERSION_1_2: u8 = 0x12;
/// SPDMVersion header byte of SPDM 1.3.
pub const SPDM_VERSION_1_3: u8 = 0x13;

// --- Request codes ---------------------------------------------------------------------------

/// GET_DIGESTS request code (1.0).
pub const SPDM_GET_DIGESTS: u8 = 0x81;
/// GET_CERTIFICATE request code (1.0).
pub const SPDM_GET_CERTIFICATE: u8 = 0x82;
/// CHALLENGE request code (1.0).
pub const SPDM_CHALLENGE: u8 = 0x83;
/// GET_VERSION request code (1.0).
pub const SPDM_GET_VERSION: u8 = 0x84;
/// CHUNK_SEND request code (1.2).
pub const SPDM_CHUNK_SEND: u8 = 0x85;
/// CHUNK_GET request code (1.2).
pub const SPDM_CHUNK_GET: u8 = 0x86;
/// GET_MEASUREMENTS request code (1.0).
pub const SPDM_GET_MEASUREMENTS: u8 = 0xE0;
/// GET_CAPABILITIES request code (1.0).
pub const SPDM_GET_CAPABILITIES: u8 = 0xE1;
/// NEGOTIATE_ALGORITHMS request code (1.0).
pub const SPDM_NEGOTIATE_ALGORITHMS: u8 = 0xE3;
/// KEY_EXCHANGE request code (1.1).
pub const SPDM_KEY_EXCHANGE: u8 = 0xE4;
/// FINISH request code (1.1).
pub const SPDM_FINISH: u8 = 0xE5;
/// PSK_EXCHANGE request code (1.1).
pub const SPDM_PSK_EXCHANGE: u8 = 0xE6;
/// PSK_FINISH request code (1.1).
pub const SPDM_PSK_FINISH: u8 = 0xE7;
/// HEARTBEAT request code (1.1).
pub const SPDM_HEARTBEAT: u8 = 0xE8;
/// KEY_UPDATE request code (1.1).
pub const SPDM_KEY_UPDATE: u8 = 0xE9;
/// GET_ENCAPSULATED_REQUEST request code (1.1).
pub const SPDM_GET_ENCAPSULATED_REQUEST: u8 = 0xEA;
/// DELIVER_ENCAPSULATED_RESPONSE request code (1.1).
pub const SPDM_DELIVER_ENCAPSULATED_RESPONSE: u8 = 0xEB;
/// END_SESSION request code (1.1).
pub const SPDM_END_SESSION: u8 = 0xEC;
/// GET_CSR request code (1.2).
pub const SPDM_GET_CSR: u8 = 0xED;
/// SET_CERTIFICATE request code (1.2).
pub const SPDM_SET_CERTIFICATE: u8 = 0xEE;
/// VENDOR_DEFINED_REQUEST request code (1.0).
pub const SPDM_VENDOR_DEFINED_REQUEST: u8 = 0xFE;
/// RESPOND_IF_READY request code (1.0).
pub const SPDM_RESPOND_IF_READY: u8 = 0xFF;

// --- Response codes --------------------------------------------------------------------------

/// DIGESTS response code (1.0).
pub const SPDM_DIGESTS: u8 = 0x01;
/// CERTIFICATE response code (1.0).
pub const SPDM_CERTIFICATE: u8 = 0x02;
/// CHALLENGE_AUTH response code (1.0).
pub const SPDM_CHALLENGE_AUTH: u8 = 0x03;
/// VERSION response code (1.0).
pub const SPDM_VERSION: u8 = 0x04;
/// CHUNK_SEND_ACK response code (1.2).
pub const SPDM_CHUNK_SEND_ACK: u8 = 0x05;
/// CHUNK_RESPONSE response code (1.2).
pub const SPDM_CHUNK_RESPONSE: u8 = 0x06;
/// MEASUREMENTS response code (1.0).
pub const SPDM_MEASUREMENTS: u8 = 0x60;
/// CAPABILITIES response code (1.0).
pub const SPDM_CAPABILITIES: u8 = 0x61;
/// ALGORITHMS response code (1.0).
pub const SPDM_ALGORITHMS: u8 = 0x63;
/// KEY_EXCHANGE_RSP response code (1.1).
pub const SPDM_KEY_EXCHANGE_RSP: u8 = 0x64;
/// FINISH_RSP response code (1.1).
pub const SPDM_FINISH_RSP: u8 = 0x65;
/// PSK_EXCHANGE_RSP response code (1.1).
pub const SPDM_PSK_EXCHANGE_RSP: u8 = 0x66;
/// PSK_FINISH_RSP response code (1.1).
pub const SPDM_PSK_FINISH_RSP: u8 = 0x67;
/// HEARTBEAT_ACK response code (1.1).
pub const SPDM_HEARTBEAT_ACK: u8 = 0x68;
/// KEY_UPDATE_ACK response code (1.1).
pub const SPDM_KEY_UPDATE_ACK: u8 = 0x69;
/// ENCAPSULATED_REQUEST response code (1.1).
pub const SPDM_ENCAPSULATED_REQUEST: u8 = 0x6A;
/// ENCAPSULATED_RESPONSE_ACK response code (1.1).
pub const SPDM_ENCAPSULATED_RESPONSE_ACK: u8 = 0x6B;
/// END_SESSION_ACK response code (1.1).
pub const SPDM_END_SESSION_ACK: u8 = 0x6C;
/// CSR response code (1.2).
pub const SPDM_CSR: u8 = 0x6D;
/// SET_CERTIFICATE_RSP response code (1.2).
pub const SPDM_SET_CERTIFICATE_RSP: u8 = 0x6E;
/// VENDOR_DEFINED_RESPONSE response code (1.0).
pub const SPDM_VENDOR_DEFINED_RESPONSE: u8 = 0x7E;
/// ERROR response code (1.0).
pub const SPDM_ERROR: u8 = 0x7F;

// --- ERROR codes (ERROR Param1) --------------------------------------------------------------

/// InvalidRequest: the request is malformed.
pub const SPDM_ERROR_INVALID_REQUEST: u8 = 0x01;
/// Busy: the responder cannot answer now; retry the same request later.
pub const SPDM_ERROR_BUSY: u8 = 0x03;
/// UnexpectedRequest: the request is out of sequence.
pub const SPDM_ERROR_UNEXPECTED_REQUEST: u8 = 0x04;
/// Unspecified error.
pub const SPDM_ERROR_UNSPECIFIED: u8 = 0x05;
/// DecryptError (1.1): a secured message could not be decrypted.
pub const SPDM_ERROR_DECRYPT_ERROR: u8 = 0x06;
/// UnsupportedRequest: the request code is not supported; Param2 holds it.
pub const SPDM_ERROR_UNSUPPORTED_REQUEST: u8 = 0x07;
/// RequestInFlight (1.1).
pub const SPDM_ERROR_REQUEST_IN_FLIGHT: u8 = 0x08;
/// InvalidResponseCode (1.1).
pub const SPDM_ERROR_INVALID_RESPONSE_CODE: u8 = 0x09;
/// SessionLimitExceeded (1.1).
pub const SPDM_ERROR_SESSION_LIMIT_EXCEEDED: u8 = 0x0A;
/// SessionRequired (1.2).
pub const SPDM_ERROR_SESSION_REQUIRED: u8 = 0x0B;
/// ResetRequired (1.2).
pub const SPDM_ERROR_RESET_REQUIRED: u8 = 0x0C;
/// ResponseTooLarge (1.2).
pub const SPDM_ERROR_RESPONSE_TOO_LARGE: u8 = 0x0D;
/// RequestTooLarge (1.2).
pub const SPDM_ERROR_REQUEST_TOO_LARGE: u8 = 0x0E;
/// LargeResponse (1.2): fetch the response with CHUNK_GET; extended data holds a handle.
pub const SPDM_ERROR_LARGE_RESPONSE: u8 = 0x0F;
/// MessageLost (1.2).
pub const SPDM_ERROR_MESSAGE_LOST: u8 = 0x10;
/// InvalidPolicy (1.3).
pub const SPDM_ERROR_INVALID_POLICY: u8 = 0x11;
/// VersionMismatch: the request's SPDMVersion is not supported.
pub const SPDM_ERROR_VERSION_MISMATCH: u8 = 0x41;
/// ResponseNotReady: send RESPOND_IF_READY after the time in the extended data.
pub const SPDM_ERROR_RESPONSE_NOT_READY: u8 = 0x42;
/// RequestResynch: restart the connection at GET_VERSION.
pub const SPDM_ERROR_REQUEST_RESYNCH: u8 = 0x43;
/// OperationFailed (1.3).
pub const SPDM_ERROR_OPERATION_FAILED: u8 = 0x44;
/// NoPendingRequests (1.3).
pub const SPDM_ERROR_NO_PENDING_REQUESTS: u8 = 0x45;
/// Vendor- or other-standards-defined error; the extended data identifies the vendor.
pub const SPDM_ERROR_VENDOR_DEFINED: u8 = 0xFF;

/// Size of the ResponseNotReady extended error data.
pub const SPDM_RESPONSE_NOT_READY_DATA_SIZE: usize = 4;

/// Reasons an SPDM message cannot be parsed or encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpdmError {
    /// The message is shorter than its fixed part (the header, or the VERSION prefix).
    TooShort,
    /// The RequestResponseCode is not the one the parser expects.
    UnexpectedCode,
    /// The SPDMVersion is not the one the message requires (0x10 for GET_VERSION/VERSION).
    UnexpectedVersion,
    /// A VERSION response announces zero version entries, or none were given to encode.
    NoVersionEntries,
    /// The message ends before the announced number of entries.
    Truncated,
    /// More than 3 bytes, or non-zero bytes, follow the message.
    TrailingBytes,
    /// More than 255 version entries were given to encode.
    TooManyEntries,
    /// The output buffer is too small for the encoded message.
    BufferTooSmall,
    /// A Length field (NEGOTIATE_ALGORITHMS, ALGORITHMS, certificate chain) does not match the
    /// message, or exceeds the limit the specification sets.
    InvalidLength,
    /// A field holds a value the specification does not allow (a reserved capability encoding,
    /// a DataTransferSize below the minimum, an opaque data length above 1024, ...).
    InvalidField,
    /// An algorithm structure table is malformed: unknown or repeated AlgType, types not in
    /// increasing order, a FixedAlgCount other than 2, or too many extended algorithms.
    InvalidAlgStruct,
    /// A response selects more than one algorithm in a field that must hold at most one.
    MultipleAlgorithms,
    /// A response selects an algorithm the request did not offer.
    AlgorithmNotOffered,
    /// No algorithm was selected where one is required, or the two sides have none in common.
    NoCommonAlgorithm,
    /// The algorithm is not one this implementation knows the sizes of.
    UnsupportedAlgorithm,
    /// A certificate slot number above 7 (or a slot that the message says is not populated).
    InvalidSlot,
    /// A certificate chain is malformed (Length field, root hash, or no certificate).
    BadCertChain,
    /// A certificate is not a well-formed definite-length DER SEQUENCE.
    BadDer,
    /// A response does not match its request (slot, requested length, requester context, ...).
    Mismatch,
}

impl SpdmError {
    /// A short, human-readable reason, suitable for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            SpdmError::TooShort => "SPDM message too short",
            SpdmError::UnexpectedCode => "unexpected SPDM request/response code",
            SpdmError::UnexpectedVersion => "unexpected SPDM version in header",
            SpdmError::NoVersionEntries => "VERSION response without version entries",
            SpdmError::Truncated => "SPDM message shorter than its entry count announces",
            SpdmError::TrailingBytes => "unexpected bytes after the SPDM message",
            SpdmError::TooManyEntries => "more than 255 version entries",
            SpdmError::BufferTooSmall => "output buffer too small for the SPDM message",
            SpdmError::InvalidLength => "SPDM length field inconsistent with the message",
            SpdmError::InvalidField => "invalid value in an SPDM message field",
            SpdmError::InvalidAlgStruct => "malformed SPDM algorithm structure table",
            SpdmError::MultipleAlgorithms => "SPDM response selects more than one algorithm",
            SpdmError::AlgorithmNotOffered => "SPDM response selects an algorithm not offered",
            SpdmError::NoCommonAlgorithm => "no common SPDM algorithm",
            SpdmError::UnsupportedAlgorithm => "unsupported SPDM algorithm",
            SpdmError::InvalidSlot => "invalid SPDM certificate slot",
            SpdmError::BadCertChain => "malformed SPDM certificate chain",
            SpdmError::BadDer => "malformed DER certificate",
            SpdmError::Mismatch => "SPDM response does not match the request",
        }
    }
}

impl core::fmt::Display for SpdmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The 4-byte header that starts every SPDM message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpdmHeader {
    /// SPDMVersion byte (e.g. 0x12 for 1.2); see [`SpdmVersion`].
    pub version: u8,
    /// RequestResponseCode.
    pub code: u8,
    /// Param1 (message specific; the error code in ERROR).
    pub param1: u8,
    /// Param2 (message specific; the error data in ERROR).
    pub param2: u8,
}

impl SpdmHeader {
    /// Builds a header with both parameters zero.
    pub const fn new(version: u8, code: u8) -> Self {
        SpdmHeader {
            version,
            code,
            param1: 0,
            param2: 0,
        }
    }

    /// Parses the header from the first 4 bytes of `buf`; further bytes are not looked at.
    pub fn parse(buf: &[u8]) -> Result<Self, SpdmError> {
        let bytes: [u8; SPDM_HEADER_SIZE] = buf
            .get(..SPDM_HEADER_SIZE)
            .and_then(|b| b.try_into().ok())
            .ok_or(SpdmError::TooShort)?;
        let [version, code, param1, param2] = bytes;
        Ok(SpdmHeader {
            version,
            code,
            param1,
            param2,
        })
    }

    /// The header in wire order.
    pub const fn to_bytes(self) -> [u8; SPDM_HEADER_SIZE] {
        [self.version, self.code, self.param1, self.param2]
    }

    /// Whether the code is a request code (bit 7 set).
    pub const fn is_request(&self) -> bool {
        self.code & SPDM_REQUEST_BIT != 0
    }

    /// The SPDMVersion byte as a [`SpdmVersion`].
    pub const fn spdm_version(&self) -> SpdmVersion {
        SpdmVersion::from_byte(self.version)
    }
}

/// An SPDM version as carried in the SPDMVersion header byte: major in bits [7:4], minor in
/// bits [3:0]. Ordering follows the version number (1.0 < 1.1 < ... < 2.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpdmVersion(u8);

impl SpdmVersion {
    /// SPDM 1.0.
    pub const V1_0: SpdmVersion = SpdmVersion(SPDM_VERSION_1_0);
    /// SPDM 1.1.
    pub const V1_1: SpdmVersion = SpdmVersion(SPDM_VERSION_1_1);
    /// SPDM 1.2.
    pub const V1_2: SpdmVersion = SpdmVersion(SPDM_VERSION_1_2);
    /// SPDM 1.3.
    pub const V1_3: SpdmVersion = SpdmVersion(SPDM_VERSION_1_3);

    /// The version `major.minor`, or `None` if either does not fit in 4 bits.
    pub const fn new(major: u8, minor: u8) -> Option<Self> {
        if major > 0xF || minor > 0xF {
            return None;
        }
        Some(SpdmVersion((major << 4) | minor))
    }

    /// The version carried by an SPDMVersion header byte.
    pub const fn from_byte(byte: u8) -> Self {
        SpdmVersion(byte)
    }

    /// The SPDMVersion header byte (e.g. 0x12 for 1.2).
    pub const fn as_byte(self) -> u8 {
        self.0
    }

    /// Major version number.
    pub const fn major(self) -> u8 {
        self.0 >> 4
    }

    /// Minor version number.
    pub const fn minor(self) -> u8 {
        self.0 & 0xF
    }

    /// The version as a VERSION entry with update and alpha 0.
    pub const fn to_entry(self) -> VersionEntry {
        VersionEntry(u16::from_le_bytes([0, self.0]))
    }
}

/// One VersionNumberEntry of a VERSION response (16 bits, little-endian on the wire):
/// major [15:12], minor [11:8], update [7:4], alpha [3:0].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionEntry(u16);

impl VersionEntry {
    /// Builds an entry, or `None` if a field does not fit in 4 bits.
    pub const fn new(major: u8, minor: u8, update: u8, alpha: u8) -> Option<Self> {
        if major > 0xF || minor > 0xF || update > 0xF || alpha > 0xF {
            return None;
        }
        Some(VersionEntry(u16::from_le_bytes([
            (update << 4) | alpha,
            (major << 4) | minor,
        ])))
    }

    /// The entry with this 16-bit value.
    pub const fn from_raw(raw: u16) -> Self {
        VersionEntry(raw)
    }

    /// The 16-bit value.
    pub const fn raw(self) -> u16 {
        self.0
    }

    /// Major version number (bits [15:12]).
    pub const fn major(self) -> u8 {
        self.version().major()
    }

    /// Minor version number (bits [11:8]).
    pub const fn minor(self) -> u8 {
        self.version().minor()
    }

    /// Update version number (bits [7:4]).
    pub const fn update(self) -> u8 {
        self.low_byte() >> 4
    }

    /// Alpha (pre-release) number (bits [3:0]); 0 for released versions.
    pub const fn alpha(self) -> u8 {
        self.low_byte() & 0xF
    }

    /// The major.minor version of this entry (update and alpha dropped).
    pub const fn version(self) -> SpdmVersion {
        let [_, high] = self.0.to_le_bytes();
        SpdmVersion(high)
    }

    const fn low_byte(self) -> u8 {
        let [low, _] = self.0.to_le_bytes();
        low
    }
}

/// Iterator over the version entries of a [`VersionResponse`].
#[derive(Debug, Clone)]
pub struct VersionEntries<'a> {
    rest: &'a [u8],
}

impl Iterator for VersionEntries<'_> {
    type Item = VersionEntry;

    fn next(&mut self) -> Option<VersionEntry> {
        let bytes: [u8; SPDM_VERSION_ENTRY_SIZE] = self
            .rest
            .get(..SPDM_VERSION_ENTRY_SIZE)
            .and_then(|b| b.try_into().ok())?;
        self.rest = self.rest.get(SPDM_VERSION_ENTRY_SIZE..).unwrap_or(&[]);
        Some(VersionEntry(u16::from_le_bytes(bytes)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.rest.len() / SPDM_VERSION_ENTRY_SIZE;
        (n, Some(n))
    }
}

impl ExactSizeIterator for VersionEntries<'_> {}

impl core::iter::FusedIterator for VersionEntries<'_> {}

/// A parsed VERSION response, borrowing its entries from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VersionResponse<'a> {
    /// The message header (version 0x10, code VERSION; Param1/Param2 reserved).
    pub header: SpdmHeader,
    /// Exactly `count * 2` bytes of entries.
    entries: &'a [u8],
    count: u8,
}

impl<'a> VersionResponse<'a> {
    /// Number of version entries (at least 1).
    pub fn count(&self) -> u8 {
        self.count
    }

    /// The version entries, in the order the responder listed them.
    pub fn entries(&self) -> VersionEntries<'a> {
        VersionEntries { rest: self.entries }
    }

    /// The raw bytes of the entries (`count * 2` bytes, little-endian u16 each).
    pub fn entry_bytes(&self) -> &'a [u8] {
        self.entries
    }
}

/// Accepts `rest` only if it is at most [`SPDM_MAX_TRANSPORT_PADDING`] zero bytes.
pub(crate) fn check_padding(rest: &[u8]) -> Result<(), SpdmError> {
    if rest.len() > SPDM_MAX_TRANSPORT_PADDING || rest.iter().any(|&b| b != 0) {
        return Err(SpdmError::TrailingBytes);
    }
    Ok(())
}

/// Writes `bytes` to the start of `out` and returns how many were written.
pub(crate) fn write_all<I: IntoIterator<Item = u8>>(
    out: &mut [u8],
    len: usize,
    bytes: I,
) -> Result<usize, SpdmError> {
    let dst = out.get_mut(..len).ok_or(SpdmError::BufferTooSmall)?;
    let mut written: usize = 0;
    for (d, s) in dst.iter_mut().zip(bytes) {
        *d = s;
        written = written.checked_add(1).ok_or(SpdmError::BufferTooSmall)?;
    }
    if written != len {
        // The source was shorter than announced; never report bytes that were not written.
        return Err(SpdmError::BufferTooSmall);
    }
    Ok(len)
}

/// Writes a GET_VERSION request (`10 84 00 00`; GET_VERSION always uses version 0x10) and
/// returns its size, 4.
pub fn encode_get_version(out: &mut [u8]) -> Result<usize, SpdmError> {
    let header = SpdmHeader::new(SPDM_VERSION_1_0, SPDM_GET_VERSION);
    write_all(out, SPDM_GET_VERSION_SIZE, header.to_bytes())
}

/// Parses a GET_VERSION request (responder side) and returns its header.
///
/// Checks the code only; the caller answers a version other than 0x10 with ERROR
/// VersionMismatch. Param1/Param2 are reserved and ignored. Up to 3 trailing zero bytes are
/// tolerated (see the module documentation).
pub fn parse_get_version(buf: &[u8]) -> Result<SpdmHeader, SpdmError> {
    let header = SpdmHeader::parse(buf)?;
    if header.code != SPDM_GET_VERSION {
        return Err(SpdmError::UnexpectedCode);
    }
    check_padding(buf.get(SPDM_GET_VERSION_SIZE..).unwrap_or(&[]))?;
    Ok(header)
}

/// Parses a VERSION response (requester side).
///
/// Checks: code VERSION (0x04; an ERROR response gives [`SpdmError::UnexpectedCode`], parse it
/// with [`parse_error_response`]), SPDMVersion 0x10, an entry count of at least 1, that the
/// buffer holds all entries, and that at most 3 zero bytes follow them (DOE padding). The
/// reserved Param1, Param2 and byte 4 are ignored.
pub fn parse_version_response(buf: &[u8]) -> Result<VersionResponse<'_>, SpdmError> {
    let header = SpdmHeader::parse(buf)?;
    if header.code != SPDM_VERSION {
        return Err(SpdmError::UnexpectedCode);
    }
    if header.version != SPDM_VERSION_1_0 {
        return Err(SpdmError::UnexpectedVersion);
    }
    let count = *buf.get(VERSION_COUNT_OFFSET).ok_or(SpdmError::TooShort)?;
    if count == 0 {
        return Err(SpdmError::NoVersionEntries);
    }
    let end = usize::from(count)
        .checked_mul(SPDM_VERSION_ENTRY_SIZE)
        .and_then(|n| n.checked_add(SPDM_VERSION_RESPONSE_FIXED_SIZE))
        .ok_or(SpdmError::Truncated)?;
    let entries = buf
        .get(SPDM_VERSION_RESPONSE_FIXED_SIZE..end)
        .ok_or(SpdmError::Truncated)?;
    check_padding(buf.get(end..).unwrap_or(&[]))?;
    Ok(VersionResponse {
        header,
        entries,
        count,
    })
}

/// Writes a VERSION response (responder side) listing `entries` in the given order and returns
/// its size, `6 + 2 * entries.len()`.
///
/// Fails with [`SpdmError::NoVersionEntries`] for an empty list, with
/// [`SpdmError::TooManyEntries`] for more than 255 entries and with
/// [`SpdmError::BufferTooSmall`] if `out` is too short.
pub fn encode_version_response(
    entries: &[VersionEntry],
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    let count = u8::try_from(entries.len()).map_err(|_| SpdmError::TooManyEntries)?;
    if count == 0 {
        return Err(SpdmError::NoVersionEntries);
    }
    let len = usize::from(count)
        .checked_mul(SPDM_VERSION_ENTRY_SIZE)
        .and_then(|n| n.checked_add(SPDM_VERSION_RESPONSE_FIXED_SIZE))
        .ok_or(SpdmError::TooManyEntries)?;
    let header = SpdmHeader::new(SPDM_VERSION_1_0, SPDM_VERSION);
    let fixed = header.to_bytes().into_iter().chain([0, count]);
    let body = entries.iter().flat_map(|e| e.raw().to_le_bytes());
    write_all(out, len, fixed.chain(body))
}

/// The highest version that appears both in `ours` and in `theirs` (compared as major.minor;
/// the update and alpha fields of `theirs` are ignored), or `None` if there is none.
///
/// `theirs` is typically [`VersionResponse::entries`].
pub fn highest_common<I>(ours: &[SpdmVersion], theirs: I) -> Option<SpdmVersion>
where
    I: IntoIterator<Item = VersionEntry>,
{
    theirs
        .into_iter()
        .map(VersionEntry::version)
        .filter(|v| ours.contains(v))
        .max()
}

/// A parsed ERROR response, borrowing its extended data from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorResponse<'a> {
    /// SPDMVersion byte of the response.
    pub version: u8,
    /// Error code (Param1), one of the `SPDM_ERROR_*` constants.
    pub code: u8,
    /// Error data (Param2), meaning depends on the error code.
    pub data: u8,
    /// Everything after the header: the extended error data, possibly followed by transport
    /// padding (the transport does not tell where it ends).
    pub extended: &'a [u8],
}

/// The extended error data of a ResponseNotReady ERROR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResponseNotReady {
    /// RDTExponent: wait 2^RDTExponent microseconds before RESPOND_IF_READY.
    pub rdt_exponent: u8,
    /// The request code the response is for.
    pub request_code: u8,
    /// Token to echo in RESPOND_IF_READY.
    pub token: u8,
    /// RDTM: multiplier for the time after which the responder may drop the response.
    pub rdtm: u8,
}

impl ErrorResponse<'_> {
    /// The ResponseNotReady extended data, if this is such an error and the data is present.
    pub fn response_not_ready(&self) -> Option<ResponseNotReady> {
        if self.code != SPDM_ERROR_RESPONSE_NOT_READY {
            return None;
        }
        let bytes: [u8; SPDM_RESPONSE_NOT_READY_DATA_SIZE] = self
            .extended
            .get(..SPDM_RESPONSE_NOT_READY_DATA_SIZE)
            .and_then(|b| b.try_into().ok())?;
        let [rdt_exponent, request_code, token, rdtm] = bytes;
        Some(ResponseNotReady {
            rdt_exponent,
            request_code,
            token,
            rdtm,
        })
    }

    /// The handle of a LargeResponse error (first extended data byte), if present.
    pub fn large_response_handle(&self) -> Option<u8> {
        if self.code != SPDM_ERROR_LARGE_RESPONSE {
            return None;
        }
        self.extended.first().copied()
    }
}

/// Parses an ERROR response (code 0x7F). Any SPDMVersion is accepted; check it against the
/// negotiated version if one is expected.
pub fn parse_error_response(buf: &[u8]) -> Result<ErrorResponse<'_>, SpdmError> {
    let header = SpdmHeader::parse(buf)?;
    if header.code != SPDM_ERROR {
        return Err(SpdmError::UnexpectedCode);
    }
    Ok(ErrorResponse {
        version: header.version,
        code: header.param1,
        data: header.param2,
        extended: buf.get(SPDM_HEADER_SIZE..).unwrap_or(&[]),
    })
}

/// Writes an ERROR response without extended data and returns its size, 4.
pub fn encode_error_response(
    version: SpdmVersion,
    code: u8,
    data: u8,
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    encode_error_response_ext(version, code, data, &[], out)
}

/// Writes an ERROR response followed by `extended` error data and returns its size.
pub fn encode_error_response_ext(
    version: SpdmVersion,
    code: u8,
    data: u8,
    extended: &[u8],
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    let len = extended
        .len()
        .checked_add(SPDM_HEADER_SIZE)
        .ok_or(SpdmError::BufferTooSmall)?;
    let header = SpdmHeader {
        version: version.as_byte(),
        code: SPDM_ERROR,
        param1: code,
        param2: data,
    };
    write_all(
        out,
        len,
        header
            .to_bytes()
            .into_iter()
            .chain(extended.iter().copied()),
    )
}

impl ResponseNotReady {
    /// The extended error data in wire order.
    pub const fn to_bytes(self) -> [u8; SPDM_RESPONSE_NOT_READY_DATA_SIZE] {
        [self.rdt_exponent, self.request_code, self.token, self.rdtm]
    }

    /// RDT, the time to wait before RESPOND_IF_READY: 2^RDTExponent microseconds (saturating at
    /// `u64::MAX` for exponents of 64 and more).
    pub fn wait_us(&self) -> u64 {
        exponent_us(self.rdt_exponent)
    }

    /// WT_Max, the time after which the responder may drop the response:
    /// RDT * RDTM microseconds (saturating).
    pub fn max_wait_us(&self) -> u64 {
        self.wait_us().saturating_mul(u64::from(self.rdtm))
    }
}

/// 2^`exponent` microseconds, saturating at `u64::MAX`: the meaning of CTExponent and
/// RDTExponent.
pub fn exponent_us(exponent: u8) -> u64 {
    1u64.checked_shl(u32::from(exponent)).unwrap_or(u64::MAX)
}

/// Writes an ERROR ResponseNotReady response with its 4 bytes of extended data and returns its
/// size, 8.
pub fn encode_response_not_ready(
    version: SpdmVersion,
    data: &ResponseNotReady,
    out: &mut [u8],
) -> Result<usize, SpdmError> {
    encode_error_response_ext(
        version,
        SPDM_ERROR_RESPONSE_NOT_READY,
        0,
        &data.to_bytes(),
        out,
    )
}

/// Size of a RESPOND_IF_READY request.
pub const SPDM_RESPOND_IF_READY_SIZE: usize = 4;

/// A RESPOND_IF_READY request (header only): Param1 is the code of the request that got
/// ResponseNotReady, Param2 the token from that error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RespondIfReady {
    /// SPDMVersion of the request (the negotiated version).
    pub version: SpdmVersion,
    /// The original request code (ResponseNotReady's RequestCode).
    pub request_code: u8,
    /// The token from ResponseNotReady.
    pub token: u8,
}

impl RespondIfReady {
    /// The RESPOND_IF_READY that answers a ResponseNotReady error.
    pub const fn for_error(version: SpdmVersion, not_ready: &ResponseNotReady) -> Self {
        RespondIfReady {
            version,
            request_code: not_ready.request_code,
            token: not_ready.token,
        }
    }
}

/// Writes a RESPOND_IF_READY request and returns its size, 4.
pub fn encode_respond_if_ready(req: &RespondIfReady, out: &mut [u8]) -> Result<usize, SpdmError> {
    let header = SpdmHeader {
        version: req.version.as_byte(),
        code: SPDM_RESPOND_IF_READY,
        param1: req.request_code,
        param2: req.token,
    };
    write_all(out, SPDM_RESPOND_IF_READY_SIZE, header.to_bytes())
}

/// Parses a RESPOND_IF_READY request (responder side). Any SPDMVersion is accepted (compare it
/// with the negotiated one); up to 3 trailing zero bytes are tolerated.
pub fn parse_respond_if_ready(buf: &[u8]) -> Result<RespondIfReady, SpdmError> {
    let header = SpdmHeader::parse(buf)?;
    if header.code != SPDM_RESPOND_IF_READY {
        return Err(SpdmError::UnexpectedCode);
    }
    check_padding(buf.get(SPDM_RESPOND_IF_READY_SIZE..).unwrap_or(&[]))?;
    Ok(RespondIfReady {
        version: header.spdm_version(),
        request_code: header.param1,
        token: header.param2,
    })
}

/// The response code that answers `request_code` (bit 7 cleared).
pub const fn response_code_for(request_code: u8) -> u8 {
    request_code & !SPDM_REQUEST_BIT
}

/// The name of a request or response code as written in DSP0274, or `"unknown"`.
pub fn code_name(code: u8) -> &'static str {
    match code {
        SPDM_GET_DIGESTS => "GET_DIGESTS",
        SPDM_GET_CERTIFICATE => "GET_CERTIFICATE",
        SPDM_CHALLENGE => "CHALLENGE",
        SPDM_GET_VERSION => "GET_VERSION",
        SPDM_CHUNK_SEND => "CHUNK_SEND",
        SPDM_CHUNK_GET => "CHUNK_GET",
        SPDM_GET_MEASUREMENTS => "GET_MEASUREMENTS",
        SPDM_GET_CAPABILITIES => "GET_CAPABILITIES",
        SPDM_NEGOTIATE_ALGORITHMS => "NEGOTIATE_ALGORITHMS",
        SPDM_KEY_EXCHANGE => "KEY_EXCHANGE",
        SPDM_FINISH => "FINISH",
        SPDM_PSK_EXCHANGE => "PSK_EXCHANGE",
        SPDM_PSK_FINISH => "PSK_FINISH",
        SPDM_HEARTBEAT => "HEARTBEAT",
        SPDM_KEY_UPDATE => "KEY_UPDATE",
        SPDM_GET_ENCAPSULATED_REQUEST => "GET_ENCAPSULATED_REQUEST",
        SPDM_DELIVER_ENCAPSULATED_RESPONSE => "DELIVER_ENCAPSULATED_RESPONSE",
        SPDM_END_SESSION => "END_SESSION",
        SPDM_GET_CSR => "GET_CSR",
        SPDM_SET_CERTIFICATE => "SET_CERTIFICATE",
        SPDM_VENDOR_DEFINED_REQUEST => "VENDOR_DEFINED_REQUEST",
        SPDM_RESPOND_IF_READY => "RESPOND_IF_READY",
        SPDM_DIGESTS => "DIGESTS",
        SPDM_CERTIFICATE => "CERTIFICATE",
        SPDM_CHALLENGE_AUTH => "CHALLENGE_AUTH",
        SPDM_VERSION => "VERSION",
        SPDM_CHUNK_SEND_ACK => "CHUNK_SEND_ACK",
        SPDM_CHUNK_RESPONSE => "CHUNK_RESPONSE",
        SPDM_MEASUREMENTS => "MEASUREMENTS",
        SPDM_CAPABILITIES => "CAPABILITIES",
        SPDM_ALGORITHMS => "ALGORITHMS",
        SPDM_KEY_EXCHANGE_RSP => "KEY_EXCHANGE_RSP",
        SPDM_FINISH_RSP => "FINISH_RSP",
        SPDM_PSK_EXCHANGE_RSP => "PSK_EXCHANGE_RSP",
        SPDM_PSK_FINISH_RSP => "PSK_FINISH_RSP",
        SPDM_HEARTBEAT_ACK => "HEARTBEAT_ACK",
        SPDM_KEY_UPDATE_ACK => "KEY_UPDATE_ACK",
        SPDM_ENCAPSULATED_REQUEST => "ENCAPSULATED_REQUEST",
        SPDM_ENCAPSULATED_RESPONSE_ACK => "ENCAPSULATED_RESPONSE_ACK",
        SPDM_END_SESSION_ACK => "END_SESSION_ACK",
        SPDM_CSR => "CSR",
        SPDM_SET_CERTIFICATE_RSP => "SET_CERTIFICATE_RSP",
        SPDM_VENDOR_DEFINED_RESPONSE => "VENDOR_DEFINED_RESPONSE",
        SPDM_ERROR => "ERROR",
        _ => "unknown",
    }
}

/// The name of an ERROR error code as written in DSP0274, or `"unknown"`.
pub fn error_code_name(code: u8) -> &'static str {
    match code {
        SPDM_ERROR_INVALID_REQUEST => "InvalidRequest",
        SPDM_ERROR_BUSY => "Busy",
        SPDM_ERROR_UNEXPECTED_REQUEST => "UnexpectedRequest",
        SPDM_ERROR_UNSPECIFIED => "Unspecified",
        SPDM_ERROR_DECRYPT_ERROR => "DecryptError",
        SPDM_ERROR_UNSUPPORTED_REQUEST => "UnsupportedRequest",
        SPDM_ERROR_REQUEST_IN_FLIGHT => "RequestInFlight",
        SPDM_ERROR_INVALID_RESPONSE_CODE => "InvalidResponseCode",
        SPDM_ERROR_SESSION_LIMIT_EXCEEDED => "SessionLimitExceeded",
        SPDM_ERROR_SESSION_REQUIRED => "SessionRequired",
        SPDM_ERROR_RESET_REQUIRED => "ResetRequired",
        SPDM_ERROR_RESPONSE_TOO_LARGE => "ResponseTooLarge",
        SPDM_ERROR_REQUEST_TOO_LARGE => "RequestTooLarge",
        SPDM_ERROR_LARGE_RESPONSE => "LargeResponse",
        SPDM_ERROR_MESSAGE_LOST => "MessageLost",
        SPDM_ERROR_INVALID_POLICY => "InvalidPolicy",
        SPDM_ERROR_VERSION_MISMATCH => "VersionMismatch",
        SPDM_ERROR_RESPONSE_NOT_READY => "ResponseNotReady",
        SPDM_ERROR_REQUEST_RESYNCH => "RequestResynch",
        SPDM_ERROR_OPERATION_FAILED => "OperationFailed",
        SPDM_ERROR_NO_PENDING_REQUESTS => "NoPendingRequests",
        SPDM_ERROR_VENDOR_DEFINED => "VendorDefined",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [SpdmVersion; 4] = [
        SpdmVersion::V1_0,
        SpdmVersion::V1_1,
        SpdmVersion::V1_2,
        SpdmVersion::V1_3,
    ];

    #[test]
    fn get_version_bytes() {
        let mut out = [0xff; 8];
        assert_eq!(encode_get_version(&mut out), Ok(4));
        assert_eq!(&out[..4], &[0x10, 0x84, 0, 0]);
        assert_eq!(out[4], 0xff);
        assert_eq!(
            encode_get_version(&mut [0; 3]),
            Err(SpdmError::BufferTooSmall)
        );
        let h = parse_get_version(&out[..4]).unwrap();
        assert_eq!(h, SpdmHeader::new(0x10, 0x84));
        assert!(h.is_request());
    }

    #[test]
    fn parse_get_version_padding() {
        assert!(parse_get_version(&[0x10, 0x84, 0, 0, 0, 0, 0]).is_ok());
        assert_eq!(
            parse_get_version(&[0x10, 0x84, 0, 0, 0, 0, 0, 0]),
            Err(SpdmError::TrailingBytes)
        );
        assert_eq!(
            parse_get_version(&[0x10, 0x84, 0, 0, 1]),
            Err(SpdmError::TrailingBytes)
        );
        assert_eq!(
            parse_get_version(&[0x10, 0x81, 0, 0]),
            Err(SpdmError::UnexpectedCode)
        );
        assert_eq!(parse_get_version(&[0x10, 0x84]), Err(SpdmError::TooShort));
        // A wrong version is the caller's business (VersionMismatch).
        assert_eq!(
            parse_get_version(&[0x12, 0x84, 0, 0]).unwrap().version,
            0x12
        );
    }

    #[test]
    fn version_response_roundtrip() {
        let entries: [VersionEntry; 4] = ALL.map(SpdmVersion::to_entry);
        let mut out = [0u8; 16];
        let n = encode_version_response(&entries, &mut out).unwrap();
        assert_eq!(n, 14);
        assert_eq!(
            &out[..n],
            &[0x10, 0x04, 0, 0, 0, 4, 0x00, 0x10, 0x00, 0x11, 0x00, 0x12, 0x00, 0x13]
        );
        let rsp = parse_version_response(&out[..n]).unwrap();
        assert_eq!(rsp.count(), 4);
        assert_eq!(rsp.entries().len(), 4);
        assert!(rsp.entries().eq(entries));
        // With DOE padding (14 bytes -> 16).
        let rsp2 = parse_version_response(&out).unwrap();
        assert_eq!(rsp2, rsp);
    }

    #[test]
    fn version_response_errors() {
        let good = [0x10, 0x04, 0, 0, 0, 1, 0x00, 0x12];
        assert!(parse_version_response(&good).is_ok());
        assert_eq!(parse_version_response(&good[..5]), Err(SpdmError::TooShort));
        assert_eq!(
            parse_version_response(&good[..7]),
            Err(SpdmError::Truncated)
        );
        let mut bad = good;
        bad[0] = 0x12;
        assert_eq!(
            parse_version_response(&bad),
            Err(SpdmError::UnexpectedVersion)
        );
        let mut bad = good;
        bad[1] = SPDM_ERROR;
        assert_eq!(parse_version_response(&bad), Err(SpdmError::UnexpectedCode));
        let mut bad = good;
        bad[5] = 0;
        assert_eq!(
            parse_version_response(&bad),
            Err(SpdmError::NoVersionEntries)
        );
        let mut bad = good;
        bad[5] = 2;
        assert_eq!(parse_version_response(&bad), Err(SpdmError::Truncated));
        assert_eq!(
            parse_version_response(&[0x10, 0x04, 0, 0, 0, 1, 0x00, 0x12, 0, 0, 0, 0]),
            Err(SpdmError::TrailingBytes)
        );
        assert_eq!(
            parse_version_response(&[0x10, 0x04, 0, 0, 0, 1, 0x00, 0x12, 0, 7]),
            Err(SpdmError::TrailingBytes)
        );
        // Reserved fields are ignored.
        assert!(parse_version_response(&[0x10, 0x04, 0xff, 0xff, 0xff, 1, 0x00, 0x12]).is_ok());
    }

    #[test]
    fn encode_version_response_errors() {
        let mut out = [0u8; 1024];
        assert_eq!(
            encode_version_response(&[], &mut out),
            Err(SpdmError::NoVersionEntries)
        );
        let many = [SpdmVersion::V1_2.to_entry(); 256];
        assert_eq!(
            encode_version_response(&many, &mut out),
            Err(SpdmError::TooManyEntries)
        );
        assert_eq!(
            encode_version_response(&many[..255], &mut out),
            Ok(SPDM_VERSION_RESPONSE_MAX_SIZE)
        );
        assert_eq!(
            encode_version_response(&many[..2], &mut out[..9]),
            Err(SpdmError::BufferTooSmall)
        );
    }

    #[test]
    fn version_fields() {
        let v = SpdmVersion::new(1, 2).unwrap();
        assert_eq!(v, SpdmVersion::V1_2);
        assert_eq!(v.as_byte(), 0x12);
        assert_eq!((v.major(), v.minor()), (1, 2));
        assert_eq!(SpdmVersion::new(16, 0), None);
        assert!(SpdmVersion::V1_0 < SpdmVersion::V1_3);
        assert!(SpdmVersion::V1_3 < SpdmVersion::new(2, 0).unwrap());
        let e = VersionEntry::new(1, 3, 2, 1).unwrap();
        assert_eq!(e.raw(), 0x1321);
        assert_eq!((e.major(), e.minor(), e.update(), e.alpha()), (1, 3, 2, 1));
        assert_eq!(e.version(), SpdmVersion::V1_3);
        assert_eq!(VersionEntry::new(1, 0, 16, 0), None);
        assert_eq!(SpdmVersion::V1_1.to_entry().raw(), 0x1100);
    }

    #[test]
    fn highest_common_version() {
        let theirs = [
            VersionEntry::new(1, 0, 0, 0).unwrap(),
            VersionEntry::new(1, 2, 1, 0).unwrap(),
            VersionEntry::new(1, 1, 0, 0).unwrap(),
        ];
        assert_eq!(highest_common(&ALL, theirs), Some(SpdmVersion::V1_2));
        assert_eq!(highest_common(&[SpdmVersion::V1_3], theirs), None);
        assert_eq!(highest_common(&[], theirs), None);
        assert_eq!(highest_common(&ALL, []), None);
    }

    #[test]
    fn error_response_roundtrip() {
        let mut out = [0u8; 16];
        let n = encode_error_response(
            SpdmVersion::V1_0,
            SPDM_ERROR_UNSUPPORTED_REQUEST,
            0xE1,
            &mut out,
        )
        .unwrap();
        assert_eq!(&out[..n], &[0x10, 0x7F, 0x07, 0xE1]);
        let e = parse_error_response(&out[..n]).unwrap();
        assert_eq!(e.code, SPDM_ERROR_UNSUPPORTED_REQUEST);
        assert_eq!(e.data, 0xE1);
        assert!(e.extended.is_empty());
        assert_eq!(e.response_not_ready(), None);

        let n = encode_error_response_ext(
            SpdmVersion::V1_2,
            SPDM_ERROR_RESPONSE_NOT_READY,
            0,
            &[10, SPDM_GET_MEASUREMENTS, 7, 3],
            &mut out,
        )
        .unwrap();
        assert_eq!(n, 8);
        let e = parse_error_response(&out[..n]).unwrap();
        assert_eq!(e.version, 0x12);
        assert_eq!(
            e.response_not_ready(),
            Some(ResponseNotReady {
                rdt_exponent: 10,
                request_code: SPDM_GET_MEASUREMENTS,
                token: 7,
                rdtm: 3
            })
        );
        assert_eq!(
            encode_error_response(SpdmVersion::V1_0, 1, 0, &mut [0; 3]),
            Err(SpdmError::BufferTooSmall)
        );
        assert_eq!(
            parse_error_response(&[0x10, 0x04, 0, 0]),
            Err(SpdmError::UnexpectedCode)
        );
        assert_eq!(parse_error_response(&[0x10]), Err(SpdmError::TooShort));
        let e = parse_error_response(&[0x12, 0x7F, SPDM_ERROR_LARGE_RESPONSE, 0, 9]).unwrap();
        assert_eq!(e.large_response_handle(), Some(9));
    }

    #[test]
    fn respond_if_ready_roundtrip() {
        let nr = ResponseNotReady {
            rdt_exponent: 14,
            request_code: SPDM_CHALLENGE,
            token: 0x5a,
            rdtm: 3,
        };
        assert_eq!(nr.wait_us(), 16384);
        assert_eq!(nr.max_wait_us(), 3 * 16384);
        assert_eq!(exponent_us(64), u64::MAX);
        assert_eq!(exponent_us(0), 1);
        let mut out = [0u8; 8];
        let n = encode_response_not_ready(SpdmVersion::V1_2, &nr, &mut out).unwrap();
        assert_eq!(&out[..n], &[0x12, 0x7F, 0x42, 0, 14, 0x83, 0x5a, 3]);
        let e = parse_error_response(&out[..n]).unwrap();
        assert_eq!(e.response_not_ready(), Some(nr));

        let req = RespondIfReady::for_error(SpdmVersion::V1_2, &nr);
        let n = encode_respond_if_ready(&req, &mut out).unwrap();
        assert_eq!(&out[..n], &[0x12, 0xFF, 0x83, 0x5a]);
        assert_eq!(parse_respond_if_ready(&out[..n]), Ok(req));
        assert_eq!(
            parse_respond_if_ready(&[0x12, 0xFF, 0x83, 0x5a, 0, 0]),
            Ok(req)
        );
        assert_eq!(
            parse_respond_if_ready(&[0x12, 0xFF, 0x83, 0x5a, 1]),
            Err(SpdmError::TrailingBytes)
        );
        assert_eq!(
            parse_respond_if_ready(&[0x12, 0xFE, 0x83, 0x5a]),
            Err(SpdmError::UnexpectedCode)
        );
        assert_eq!(parse_respond_if_ready(&[0x12]), Err(SpdmError::TooShort));
        assert_eq!(
            encode_respond_if_ready(&req, &mut out[..3]),
            Err(SpdmError::BufferTooSmall)
        );
    }

    #[test]
    fn error_strings_are_distinct() {
        let all = [
            SpdmError::TooShort,
            SpdmError::UnexpectedCode,
            SpdmError::UnexpectedVersion,
            SpdmError::NoVersionEntries,
            SpdmError::Truncated,
            SpdmError::TrailingBytes,
            SpdmError::TooManyEntries,
            SpdmError::BufferTooSmall,
            SpdmError::InvalidLength,
            SpdmError::InvalidField,
            SpdmError::InvalidAlgStruct,
            SpdmError::MultipleAlgorithms,
            SpdmError::AlgorithmNotOffered,
            SpdmError::NoCommonAlgorithm,
            SpdmError::UnsupportedAlgorithm,
            SpdmError::InvalidSlot,
            SpdmError::BadCertChain,
            SpdmError::BadDer,
            SpdmError::Mismatch,
        ];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.as_str(), b.as_str());
            }
        }
    }

    #[test]
    fn codes() {
        assert_eq!(response_code_for(SPDM_GET_VERSION), SPDM_VERSION);
        assert_eq!(response_code_for(SPDM_GET_CAPABILITIES), SPDM_CAPABILITIES);
        assert_eq!(response_code_for(SPDM_KEY_EXCHANGE), SPDM_KEY_EXCHANGE_RSP);
        assert_eq!(response_code_for(SPDM_CHUNK_GET), SPDM_CHUNK_RESPONSE);
        assert_eq!(code_name(SPDM_GET_VERSION), "GET_VERSION");
        assert_eq!(code_name(0x00), "unknown");
        assert_eq!(
            error_code_name(SPDM_ERROR_REQUEST_RESYNCH),
            "RequestResynch"
        );
        assert_eq!(error_code_name(0x00), "unknown");
        // Every named request code answers with a named response code.
        for code in 0x80..=0xFFu8 {
            if code_name(code) != "unknown" {
                assert_ne!(code_name(response_code_for(code)), "unknown", "{code:#x}");
            }
        }
    }
}
