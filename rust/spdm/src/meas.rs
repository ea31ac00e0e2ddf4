//! SPDM (DSP0274 1.0 to 1.3) device measurements: GET_MEASUREMENTS / MEASUREMENTS, the
//! measurement record and its DMTF measurement blocks, and the L1/L2 transcript rules.
//!
//! Like `auth.rs`, this file is compiled both into the `coco-spdm` crate and directly into the
//! kernel module (as the crate-root module `meas`, next to `spdm` and `auth`); it refers to the
//! rest of the codec only as `crate::spdm` and `crate::auth`, uses only `core`, has no
//! `unsafe`, never allocates and has no code path that can panic.
//!
//! # GET_MEASUREMENTS
//!
//! Header: Param1 = request attributes (bit 0 SignatureRequested, bit 1 RawBitStreamRequested
//! from 1.2), Param2 = MeasurementOperation (0 = report the number of indices, 1 to 0xFE = that
//! index, 0xFF = all blocks). Then, only when a signature is requested, Nonce (32 bytes) and,
//! from 1.1, SlotIDParam (slot in bits 3:0); from 1.3 an 8-byte RequesterContext always
//! follows (signed or not). Sizes: 1.0 4 / 36, 1.1 and 1.2 4 / 37, 1.3 12 / 45 bytes
//! (unsigned / signed).
//!
//! # MEASUREMENTS
//!
//! Header (Param1 = number of indices for operation 0, else reserved; Param2 = from 1.1 the
//! slot in bits 3:0, from 1.2 the content-changed field in bits 5:4, both meaningful only for
//! a signed response), NumberOfBlocks (u8), MeasurementRecordLength (u24 LE), the record,
//! Nonce (32, the responder's), OpaqueDataLength (u16, at most 1024), OpaqueData,
//! RequesterContext (8, 1.3 only, echoing the request), then the Signature (S bytes) only if
//! one was requested. The nonce and the opaque data length are present in every version
//! whether or not the response is signed (as the DMTF reference implementation lays it out).
//!
//! # Measurement record
//!
//! NumberOfBlocks measurement blocks back to back: Index (u8, 1 to 0xFE), MeasurementSpecification
//! (u8, exactly bit 0 = DMTF), MeasurementSize (u16 LE), then the DMTF measurement:
//! DMTFSpecMeasurementValueType (u8: bits 6:0 the type, bit 7 set for a raw bit stream, clear
//! for a digest), DMTFSpecMeasurementValueSize (u16 LE), the value. MeasurementSize is 3 + the
//! value size. [`parse_record`] checks all of that, that the blocks exactly fill the record,
//! that their number is NumberOfBlocks, that no index repeats and, when the negotiated
//! measurement hash size is known, that every digest has that size.
//!
//! # L1/L2 transcript and signature
//!
//! The MEASUREMENTS signature covers Hash(L1/L2) where L1/L2 is, for SPDM 1.2 and later, the
//! VCA (GET_VERSION .. ALGORITHMS, as for CHALLENGE_AUTH) followed by every GET_MEASUREMENTS
//! request and MEASUREMENTS response since the last signed MEASUREMENTS (or since the VCA),
//! the last response without its signature (`buf[..signature_offset]`). For 1.0 and 1.1, L1/L2
//! is only the measurement messages (no VCA). Requests and responses enter exactly as sent and
//! received, without DOE header or padding (`len` of the parsed response; the request's
//! [`GetMeasurements::size`]). After a signed response, L1/L2 starts afresh (empty, then VCA
//! again for 1.2+); GET_VERSION resets it too. As for CHALLENGE_AUTH, 1.0/1.1 sign Hash(L1/L2)
//! directly and 1.2+ sign `combined_spdm_prefix || Hash(L1/L2)` with the context
//! `crate::auth::SPDM_MEASUREMENTS_SIGN_CONTEXT` ("responder-measurements signing"); see
//! [`measurements_signed_message`].

use crate::auth::{
    append, measurement_hash_size, signed_message, Algorithms, Reader, Writer, SPDM_MAX_HASH_SIZE,
    SPDM_MAX_OPAQUE_DATA_SIZE, SPDM_MAX_SIGNATURE_SIZE, SPDM_MEASUREMENTS_SIGN_CONTEXT,
    SPDM_MEAS_SPEC_DMTF, SPDM_REQ_CONTEXT_SIZE,
};
use crate::spdm::{
    check_padding, SpdmError, SpdmHeader, SpdmVersion, SPDM_GET_MEASUREMENTS, SPDM_HEADER_SIZE,
    SPDM_MEASUREMENTS, SPDM_NONCE_SIZE,
};

// --- Constants ---------------------------------------------------------------------------------

/// GET_MEASUREMENTS Param1 bit 0: SignatureRequested.
pub const SPDM_MEAS_ATTR_SIGNATURE: u8 = 1 << 0;
/// GET_MEASUREMENTS Param1 bit 1 (1.2): RawBitStreamRequested.
pub const SPDM_MEAS_ATTR_RAW_BIT_STREAM: u8 = 1 << 1;
/// MeasurementOperation 0: report the total number of measurement indices (in Param1).
pub const SPDM_MEAS_OP_TOTAL: u8 = 0;
/// MeasurementOperation 0xFF: all measurement blocks.
pub const SPDM_MEAS_OP_ALL: u8 = 0xFF;
/// SlotIDParam / MEASUREMENTS Param2 bits 3:0: the slot.
pub const SPDM_MEAS_SLOT_MASK: u8 = 0x0F;
/// MEASUREMENTS Param2 bits 5:4 (1.2): content changed field.
pub const SPDM_MEAS_CONTENT_CHANGE_MASK: u8 = 0x30;
/// Content changed field: the responder detected a change since the last signed response.
pub const SPDM_MEAS_CONTENT_CHANGED: u8 = 0x10;
/// Content changed field: the responder detected no change.
pub const SPDM_MEAS_CONTENT_UNCHANGED: u8 = 0x20;

/// Size of GET_MEASUREMENTS without signature request (1.0 to 1.2).
pub const SPDM_GET_MEASUREMENTS_SIZE: usize = SPDM_HEADER_SIZE;
/// Size of a signed GET_MEASUREMENTS for 1.0 (header and nonce).
pub const SPDM_GET_MEASUREMENTS_SIGNED_1_0_SIZE: usize = SPDM_HEADER_SIZE + SPDM_NONCE_SIZE;
/// Size of a signed GET_MEASUREMENTS for 1.1 and 1.2 (header, nonce, SlotIDParam).
pub const SPDM_GET_MEASUREMENTS_SIGNED_SIZE: usize = SPDM_GET_MEASUREMENTS_SIGNED_1_0_SIZE + 1;
/// Largest GET_MEASUREMENTS (signed, 1.3 with RequesterContext).
pub const SPDM_GET_MEASUREMENTS_MAX_SIZE: usize =
    SPDM_GET_MEASUREMENTS_SIGNED_SIZE + SPDM_REQ_CONTEXT_SIZE;

/// Size of the fixed part of MEASUREMENTS (header, NumberOfBlocks, MeasurementRecordLength).
pub const SPDM_MEASUREMENTS_FIXED_SIZE: usize = 8;
/// Largest MeasurementRecordLength (a 24-bit field).
pub const SPDM_MAX_MEAS_RECORD_SIZE: usize = 0xFF_FFFF;
/// Size of a measurement block header (Index, MeasurementSpecification, MeasurementSize).
pub const SPDM_MEAS_BLOCK_HEADER_SIZE: usize = 4;
/// Size of the DMTF measurement header (value type, value size).
pub const SPDM_MEAS_DMTF_HEADER_SIZE: usize = 3;
/// Largest DMTF measurement value (MeasurementSize is a u16 and includes the 3-byte header).
pub const SPDM_MAX_MEAS_VALUE_SIZE: usize = 0xFFFF - SPDM_MEAS_DMTF_HEADER_SIZE;
/// Lowest valid measurement block index.
pub const SPDM_MEAS_INDEX_MIN: u8 = 1;
/// Highest valid measurement block index.
pub const SPDM_MEAS_INDEX_MAX: u8 = 0xFE;

/// DMTFSpecMeasurementValueType bit 7: the value is a raw bit stream (clear: a digest).
pub const SPDM_MEAS_VALUE_RAW: u8 = 0x80;
/// DMTFSpecMeasurementValueType bits 6:0: the measurement type.
pub const SPDM_MEAS_VALUE_TYPE_MASK: u8 = 0x7F;
/// Type 0: immutable ROM.
pub const SPDM_MEAS_TYPE_IMMUTABLE_ROM: u8 = 0x00;
/// Type 1: mutable firmware.
pub const SPDM_MEAS_TYPE_MUTABLE_FIRMWARE: u8 = 0x01;
/// Type 2: hardware configuration (e.g. fuses).
pub const SPDM_MEAS_TYPE_HARDWARE_CONFIG: u8 = 0x02;
/// Type 3: firmware configuration (e.g. configurable firmware policy).
pub const SPDM_MEAS_TYPE_FIRMWARE_CONFIG: u8 = 0x03;
/// Type 4: freeform measurement manifest.
pub const SPDM_MEAS_TYPE_MANIFEST: u8 = 0x04;
/// Type 5 (1.2): structured representation of debug and device mode.
pub const SPDM_MEAS_TYPE_DEVICE_MODE: u8 = 0x05;
/// Type 6 (1.2): mutable firmware's version number.
pub const SPDM_MEAS_TYPE_VERSION: u8 = 0x06;
/// Type 7 (1.2): mutable firmware's security version number.
pub const SPDM_MEAS_TYPE_SVN: u8 = 0x07;
/// Type 8 (1.3): hash-extended measurement.
pub const SPDM_MEAS_TYPE_HEM: u8 = 0x08;
/// Type 9 (1.3): informational.
pub const SPDM_MEAS_TYPE_INFORMATIONAL: u8 = 0x09;
/// Type 0x0A (1.3): structured measurement manifest.
pub const SPDM_MEAS_TYPE_STRUCTURED_MANIFEST: u8 = 0x0A;

/// The stable lowercase name of a measurement type (bits 6:0 of DMTFSpecMeasurementValueType;
/// bit 7 is ignored), or `None` for a type DSP0274 1.3 does not define. See
/// [`MeasurementTypeName`] for a name that is always printable (`type_N` when unknown).
pub fn type_name(value_type: u8) -> Option<&'static str> {
    match value_type & SPDM_MEAS_VALUE_TYPE_MASK {
        SPDM_MEAS_TYPE_IMMUTABLE_ROM => Some("immutable_rom"),
        SPDM_MEAS_TYPE_MUTABLE_FIRMWARE => Some("mutable_firmware"),
        SPDM_MEAS_TYPE_HARDWARE_CONFIG => Some("hardware_config"),
        SPDM_MEAS_TYPE_FIRMWARE_CONFIG => Some("firmware_config"),
        SPDM_MEAS_TYPE_MANIFEST => Some("manifest"),
        SPDM_MEAS_TYPE_DEVICE_MODE => Some("device_mode"),
        SPDM_MEAS_TYPE_VERSION => Some("version"),
        SPDM_MEAS_TYPE_SVN => Some("svn"),
        SPDM_MEAS_TYPE_HEM => Some("hem"),
        SPDM_MEAS_TYPE_INFORMATIONAL => Some("informational"),
        SPDM_MEAS_TYPE_STRUCTURED_MANIFEST => Some("structured_manifest"),
        _ => None,
    }
}

/// Displays a measurement type as its [`type_name`], or `type_N` (N decimal) when unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MeasurementTypeName(pub u8);

impl core::fmt::Display for MeasurementTypeName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match type_name(self.0) {
            Some(name) => f.write_str(name),
            None => write!(f, "type_{}", self.0 & SPDM_MEAS_VALUE_TYPE_MASK),
        }
    }
}

// --- Errors ------------------------------------------------------------------------------------

/// Reasons a measurement message or record is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MeasError {
    /// A message-level error shared with the rest of the codec (too short, wrong code or
    /// version, truncated, trailing bytes, buffer too small, opaque data too long, ...).
    Spdm(SpdmError),
    /// MeasurementRecordLength runs past the end of the message.
    RecordOverrun,
    /// A measurement block does not fit in the rest of the record (header or value cut off).
    BlockTruncated,
    /// A block's MeasurementSpecification is not exactly DMTF (bit 0).
    BadSpecification,
    /// A block's MeasurementSize is not 3 + its DMTFSpecMeasurementValueSize.
    BlockSizeMismatch,
    /// A block index is 0 or 0xFF.
    InvalidIndex,
    /// Two blocks carry the same index.
    DuplicateIndex,
    /// The number of blocks in the record is not NumberOfBlocks.
    BlockCountMismatch,
    /// A digest-form value does not have the negotiated measurement hash size.
    DigestSizeMismatch,
    /// The response does not fit the request: block count or index for the operation,
    /// count-query fields, slot, RequesterContext, content-changed bits without signature.
    Mismatch,
    /// A value to encode is out of range (index, value size, operation, slot, record length).
    InvalidField,
}

impl MeasError {
    /// A short, human-readable reason, suitable for logs.
    pub fn reason(&self) -> &'static str {
        match self {
            MeasError::Spdm(e) => e.as_str(),
            MeasError::RecordOverrun => "measurement record length exceeds the message",
            MeasError::BlockTruncated => "measurement block runs past the record",
            MeasError::BadSpecification => "measurement block specification is not DMTF",
            MeasError::BlockSizeMismatch => "measurement block size inconsistent with its value",
            MeasError::InvalidIndex => "measurement block index 0 or 0xFF",
            MeasError::DuplicateIndex => "duplicate measurement block index",
            MeasError::BlockCountMismatch => "measurement block count differs from NumberOfBlocks",
            MeasError::DigestSizeMismatch => "measurement digest size differs from the hash size",
            MeasError::Mismatch => "MEASUREMENTS does not match GET_MEASUREMENTS",
            MeasError::InvalidField => "invalid value in a measurement field",
        }
    }
}

impl From<SpdmError> for MeasError {
    fn from(e: SpdmError) -> Self {
        MeasError::Spdm(e)
    }
}

impl core::fmt::Display for MeasError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.reason())
    }
}

// --- GET_MEASUREMENTS ------------------------------------------------------------------------

/// A GET_MEASUREMENTS request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GetMeasurements {
    /// SPDMVersion of the message.
    pub version: SpdmVersion,
    /// Param1: request attributes (`SPDM_MEAS_ATTR_*`).
    pub attributes: u8,
    /// Param2: MeasurementOperation (`SPDM_MEAS_OP_TOTAL`, an index, `SPDM_MEAS_OP_ALL`).
    pub operation: u8,
    /// The requester's nonce (sent only when a signature is requested; zeros otherwise).
    pub nonce: [u8; SPDM_NONCE_SIZE],
    /// SlotIDParam bits 3:0 (1.1+, sent only when a signature is requested): the slot whose
    /// key signs (0-7, or 0xF for a provisioned public key).
    pub slot_id: u8,
    /// RequesterContext (1.3; always sent; zeros and not sent before 1.3).
    pub requester_context: [u8; SPDM_REQ_CONTEXT_SIZE],
}

impl GetMeasurements {
    /// A request for `operation`, signed or not, with zero nonce, slot 0 and zero context.
    pub const fn new(version: SpdmVersion, operation: u8, signed: bool) -> Self {
        GetMeasurements {
            version,
            attributes: if signed { SPDM_MEAS_ATTR_SIGNATURE } else { 0 },
            operation,
            nonce: [0; SPDM_NONCE_SIZE],
            slot_id: 0,
            requester_context: [0; SPDM_REQ_CONTEXT_SIZE],
        }
    }

    /// Whether the request asks for a signature (Param1 bit 0).
    pub const fn signature_requested(&self) -> bool {
        self.attributes & SPDM_MEAS_ATTR_SIGNATURE != 0
    }

    /// Size of the request for its version and attributes.
    pub fn size(&self) -> usize {
        get_measurements_size(self.version, self.signature_requested())
    }
}

/// Size of GET_MEASUREMENTS: 4 (unsigned) or 36 (signed) for 1.0, 4 or 37 for 1.1 and 1.2,
/// 12 or 45 for 1.3.
pub fn get_measurements_size(version: SpdmVersion, signed: bool) -> usize {
    let mut n = SPDM_HEADER_SIZE;
    if signed {
        n = if version >= SpdmVersion::V1_1 {
            SPDM_GET_MEASUREMENTS_SIGNED_SIZE
        } else {
            SPDM_GET_MEASUREMENTS_SIGNED_1_0_SIZE
        };
    }
    if version >= SpdmVersion::V1_3 {
        n = n.saturating_add(SPDM_REQ_CONTEXT_SIZE);
    }
    n
}

/// Whether `slot` is a valid SlotIDParam slot (0-7 or 0xF).
fn valid_slot(slot: u8) -> bool {
    slot < 8 || slot == SPDM_MEAS_SLOT_MASK
}

/// Writes GET_MEASUREMENTS and returns its size. A slot other than 0-7 or 0xF is
/// [`MeasError::InvalidField`] when a signature is requested. Attribute bits a version does
/// not define are written as given (the caller decides).
pub fn encode_get_measurements(req: &GetMeasurements, out: &mut [u8]) -> Result<usize, MeasError> {
    let signed = req.signature_requested();
    if signed && !valid_slot(req.slot_id) {
        return Err(MeasError::InvalidField);
    }
    let mut w = Writer::new(out);
    w.bytes(&[
        req.version.as_byte(),
        SPDM_GET_MEASUREMENTS,
        req.attributes,
        req.operation,
    ])?;
    if signed {
        w.bytes(&req.nonce)?;
        if req.version >= SpdmVersion::V1_1 {
            w.u8(req.slot_id)?;
        }
    }
    if req.version >= SpdmVersion::V1_3 {
        w.bytes(&req.requester_context)?;
    }
    Ok(w.len())
}

/// Parses GET_MEASUREMENTS (responder side); the layout follows the header's version and
/// Param1 bit 0. SlotIDParam bits 7:4 are reserved and ignored; a slot other than 0-7 or 0xF
/// is [`MeasError::InvalidField`]. Up to 3 zero bytes of padding may follow.
pub fn parse_get_measurements(buf: &[u8]) -> Result<GetMeasurements, MeasError> {
    let header = SpdmHeader::parse(buf)?;
    if header.code != SPDM_GET_MEASUREMENTS {
        return Err(SpdmError::UnexpectedCode.into());
    }
    let version = header.spdm_version();
    let mut req = GetMeasurements::new(version, header.param2, false);
    req.attributes = header.param1;
    if buf.len() < req.size() {
        return Err(SpdmError::TooShort.into());
    }
    let mut r = Reader::new(buf, SPDM_HEADER_SIZE);
    if req.signature_requested() {
        req.nonce = r.array()?;
        if version >= SpdmVersion::V1_1 {
            req.slot_id = r.u8()? & SPDM_MEAS_SLOT_MASK;
            if !valid_slot(req.slot_id) {
                return Err(MeasError::InvalidField);
            }
        }
    }
    if version >= SpdmVersion::V1_3 {
        req.requester_context = r.array()?;
    }
    check_padding(r.rest())?;
    Ok(req)
}

// --- Measurement blocks and record ---------------------------------------------------------------

/// One DMTF measurement block, borrowing its value from the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MeasurementBlock<'a> {
    /// Index (1 to 0xFE).
    pub index: u8,
    /// DMTFSpecMeasurementValueType as sent (bit 7 raw, bits 6:0 type).
    pub value_type: u8,
    /// The measurement value: a digest, or a raw bit stream.
    pub value: &'a [u8],
}

impl MeasurementBlock<'_> {
    /// The measurement type (bits 6:0 of the value type).
    pub const fn kind(&self) -> u8 {
        self.value_type & SPDM_MEAS_VALUE_TYPE_MASK
    }

    /// Whether the value is a raw bit stream (else a digest).
    pub const fn is_raw(&self) -> bool {
        self.value_type & SPDM_MEAS_VALUE_RAW != 0
    }

    /// The type's printable name ([`MeasurementTypeName`]).
    pub const fn type_name(&self) -> MeasurementTypeName {
        MeasurementTypeName(self.kind())
    }

    /// Size of the encoded block (4 + 3 + value).
    pub fn encoded_size(&self) -> usize {
        SPDM_MEAS_BLOCK_HEADER_SIZE
            .saturating_add(SPDM_MEAS_DMTF_HEADER_SIZE)
            .saturating_add(self.value.len())
    }
}

/// Parses the block at the start of `buf`; returns it and its encoded size. Checks the
/// specification, the sizes and the index range, not uniqueness or digest sizes.
fn parse_block(buf: &[u8]) -> Result<(MeasurementBlock<'_>, usize), MeasError> {
    let mut r = Reader::new(buf, 0);
    let trunc = |_| MeasError::BlockTruncated;
    let index = r.u8().map_err(trunc)?;
    let spec = r.u8().map_err(trunc)?;
    let size = usize::from(r.u16().map_err(trunc)?);
    let body = r.take(size).map_err(trunc)?;
    if spec != SPDM_MEAS_SPEC_DMTF {
        return Err(MeasError::BadSpecification);
    }
    let mut b = Reader::new(body, 0);
    let value_type = b.u8().map_err(|_| MeasError::BlockSizeMismatch)?;
    let value_size = usize::from(b.u16().map_err(|_| MeasError::BlockSizeMismatch)?);
    if b.rest().len() != value_size {
        return Err(MeasError::BlockSizeMismatch);
    }
    if !(SPDM_MEAS_INDEX_MIN..=SPDM_MEAS_INDEX_MAX).contains(&index) {
        return Err(MeasError::InvalidIndex);
    }
    Ok((
        MeasurementBlock {
            index,
            value_type,
            value: b.rest(),
        },
        r.pos(),
    ))
}

/// Iterator over the blocks of a measurement record. Yields `Err` once for a malformed block
/// and then stops; does not check uniqueness, count or digest sizes ([`parse_record`] does).
#[derive(Debug, Clone)]
pub struct MeasurementBlocks<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> MeasurementBlocks<'a> {
    /// Iterates over the blocks in `record`.
    pub fn new(record: &'a [u8]) -> Self {
        MeasurementBlocks {
            rest: record,
            failed: false,
        }
    }
}

impl<'a> Iterator for MeasurementBlocks<'a> {
    type Item = Result<MeasurementBlock<'a>, MeasError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.rest.is_empty() {
            return None;
        }
        match parse_block(self.rest) {
            Ok((block, n)) => {
                self.rest = self.rest.get(n..).unwrap_or(&[]);
                Some(Ok(block))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl core::iter::FusedIterator for MeasurementBlocks<'_> {}

/// A set of measurement indices (256 bits), for duplicate checks without allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct IndexSet([u64; 4]);

impl IndexSet {
    /// An empty set.
    pub const fn new() -> Self {
        IndexSet([0; 4])
    }

    fn word_bit(index: u8) -> (usize, u64) {
        (usize::from(index >> 6), 1u64 << (index & 63))
    }

    /// Adds `index`; returns false if it was already present.
    pub fn insert(&mut self, index: u8) -> bool {
        let (word, bit) = Self::word_bit(index);
        match self.0.get_mut(word) {
            Some(w) if *w & bit == 0 => {
                *w |= bit;
                true
            }
            _ => false,
        }
    }

    /// Removes `index`; returns false if it was not present.
    pub fn remove(&mut self, index: u8) -> bool {
        let (word, bit) = Self::word_bit(index);
        match self.0.get_mut(word) {
            Some(w) if *w & bit != 0 => {
                *w &= !bit;
                true
            }
            _ => false,
        }
    }

    /// Whether `index` is present.
    pub fn contains(&self, index: u8) -> bool {
        let (word, bit) = Self::word_bit(index);
        self.0.get(word).is_some_and(|w| w & bit != 0)
    }

    /// Number of indices present.
    pub fn len(&self) -> usize {
        self.0
            .iter()
            .map(|w| usize::try_from(w.count_ones()).unwrap_or(0))
            .sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }
}

/// A validated measurement record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MeasurementRecord<'a> {
    /// The record bytes.
    pub bytes: &'a [u8],
    /// Number of blocks.
    pub count: u8,
    /// The indices present.
    pub indices: IndexSet,
}

impl<'a> MeasurementRecord<'a> {
    /// The blocks, in record order (all well-formed: [`parse_record`] checked them).
    pub fn blocks(&self) -> impl Iterator<Item = MeasurementBlock<'a>> + 'a {
        MeasurementBlocks::new(self.bytes).filter_map(|b| b.ok())
    }

    /// The block with `index`, if present.
    pub fn block(&self, index: u8) -> Option<MeasurementBlock<'a>> {
        self.blocks().find(|b| b.index == index)
    }
}

/// Validates a measurement record of `number_of_blocks` blocks.
///
/// Checks every block (DMTF specification, MeasurementSize = 3 + value size, within the
/// record, index 1 to 0xFE), that the blocks exactly fill the record, that their number is
/// `number_of_blocks` ([`MeasError::BlockCountMismatch`]), that no index repeats
/// ([`MeasError::DuplicateIndex`]) and, if `measurement_hash_size` is given (the negotiated
/// MeasurementHashAlgo's size, see `crate::auth::measurement_hash_size`: 0 for raw bit
/// streams only), that every digest-form value has that size
/// ([`MeasError::DigestSizeMismatch`]; raw values may have any size).
pub fn parse_record(
    record: &[u8],
    number_of_blocks: u8,
    measurement_hash_size: Option<usize>,
) -> Result<MeasurementRecord<'_>, MeasError> {
    let mut indices = IndexSet::new();
    let mut count: usize = 0;
    for block in MeasurementBlocks::new(record) {
        let block = block?;
        if !indices.insert(block.index) {
            return Err(MeasError::DuplicateIndex);
        }
        if let Some(h) = measurement_hash_size {
            if !block.is_raw() && block.value.len() != h {
                return Err(MeasError::DigestSizeMismatch);
            }
        }
        count = count.saturating_add(1);
    }
    if count != usize::from(number_of_blocks) {
        return Err(MeasError::BlockCountMismatch);
    }
    Ok(MeasurementRecord {
        bytes: record,
        count: number_of_blocks,
        indices,
    })
}

/// Writes one DMTF measurement block (Index, 0x01, MeasurementSize, value type, value size,
/// value) and returns its size. An index outside 1 to 0xFE or a value longer than
/// [`SPDM_MAX_MEAS_VALUE_SIZE`] is [`MeasError::InvalidField`].
pub fn encode_measurement_block(
    index: u8,
    value_type: u8,
    value: &[u8],
    out: &mut [u8],
) -> Result<usize, MeasError> {
    if !(SPDM_MEAS_INDEX_MIN..=SPDM_MEAS_INDEX_MAX).contains(&index)
        || value.len() > SPDM_MAX_MEAS_VALUE_SIZE
    {
        return Err(MeasError::InvalidField);
    }
    let value_size = u16::try_from(value.len()).map_err(|_| MeasError::InvalidField)?;
    let size = value_size.checked_add(3).ok_or(MeasError::InvalidField)?;
    let mut w = Writer::new(out);
    w.u8(index)?;
    w.u8(SPDM_MEAS_SPEC_DMTF)?;
    w.u16(size)?;
    w.u8(value_type)?;
    w.u16(value_size)?;
    w.bytes(value)?;
    Ok(w.len())
}

// --- MEASUREMENTS ------------------------------------------------------------------------------

/// What [`parse_measurements`] needs to know to split MEASUREMENTS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MeasurementsParams {
    /// The negotiated version (the response must carry it; 1.3 adds the RequesterContext).
    pub version: SpdmVersion,
    /// Whether the request asked for a signature (then `signature_size` bytes end the
    /// message).
    pub signed: bool,
    /// S, the negotiated signature size (used only when `signed`).
    pub signature_size: usize,
    /// The negotiated measurement hash size to check digests against (`None`: not checked).
    pub measurement_hash_size: Option<usize>,
}

impl MeasurementsParams {
    /// Parameters matching `req`.
    pub const fn for_request(
        req: &GetMeasurements,
        signature_size: usize,
        measurement_hash_size: Option<usize>,
    ) -> Self {
        MeasurementsParams {
            version: req.version,
            signed: req.signature_requested(),
            signature_size,
            measurement_hash_size,
        }
    }
}

/// A parsed MEASUREMENTS response, borrowing from the input; its record is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Measurements<'a> {
    /// SPDMVersion of the message.
    pub version: SpdmVersion,
    /// Param1: the number of measurement indices for operation 0 (reserved otherwise).
    pub param1: u8,
    /// Param2 as received.
    pub param2: u8,
    /// Param2 bits 3:0 (1.1+): the slot whose key signed; 0 before 1.1.
    pub slot_id: u8,
    /// Param2 bits 5:4 (1.2+): content changed ([`SPDM_MEAS_CONTENT_CHANGED`],
    /// [`SPDM_MEAS_CONTENT_UNCHANGED`], 0 = not supported); 0 before 1.2.
    pub content_changed: u8,
    /// NumberOfBlocks.
    pub number_of_blocks: u8,
    /// The validated measurement record.
    pub record: MeasurementRecord<'a>,
    /// The responder's nonce.
    pub nonce: &'a [u8],
    /// OpaqueData.
    pub opaque: &'a [u8],
    /// RequesterContext (1.3; empty before).
    pub requester_context: &'a [u8],
    /// Signature, if one was requested.
    pub signature: Option<&'a [u8]>,
    /// Offset of the signature (= `len` when unsigned): L1/L2 takes `buf[..signature_offset]`.
    pub signature_offset: usize,
    /// Length of the message without padding.
    pub len: usize,
}

impl<'a> Measurements<'a> {
    /// The blocks of the record.
    pub fn blocks(&self) -> impl Iterator<Item = MeasurementBlock<'a>> + 'a {
        self.record.blocks()
    }

    /// The number of measurement indices the device has (Param1 of a response to
    /// operation 0).
    pub const fn total_indices(&self) -> u8 {
        self.param1
    }

    /// Checks the response against its request ([`MeasError::Mismatch`]):
    ///
    /// * operation 0: no blocks, an empty record and 1 to 0xFE indices in Param1;
    /// * operation 0xFF: at least one block;
    /// * an index: exactly one block, with that index;
    /// * signed, 1.1+: the slot in Param2 is the requested one;
    /// * unsigned, 1.2+: the content-changed bits are 0;
    /// * 1.3: the RequesterContext is echoed.
    pub fn check(&self, req: &GetMeasurements) -> Result<(), MeasError> {
        let ok = match req.operation {
            SPDM_MEAS_OP_TOTAL => {
                self.number_of_blocks == 0
                    && self.record.bytes.is_empty()
                    && (SPDM_MEAS_INDEX_MIN..=SPDM_MEAS_INDEX_MAX).contains(&self.param1)
            }
            SPDM_MEAS_OP_ALL => self.number_of_blocks >= 1,
            index => self.number_of_blocks == 1 && self.blocks().all(|b| b.index == index),
        };
        if !ok {
            return Err(MeasError::Mismatch);
        }
        if req.signature_requested() {
            if self.version >= SpdmVersion::V1_1 && self.slot_id != req.slot_id {
                return Err(MeasError::Mismatch);
            }
        } else if self.content_changed != 0 {
            return Err(MeasError::Mismatch);
        }
        if self.version >= SpdmVersion::V1_3 && self.requester_context != req.requester_context {
            return Err(MeasError::Mismatch);
        }
        Ok(())
    }
}

/// Parses MEASUREMENTS (requester side) with the sizes in `params`; up to 3 zero bytes of
/// padding may follow. The record is validated with [`parse_record`]. Errors: a record
/// length beyond the message is [`MeasError::RecordOverrun`], an OpaqueDataLength above 1024
/// is `Spdm(InvalidField)`, a zero or too large S for a signed response
/// `Spdm(UnsupportedAlgorithm)`. Call [`Measurements::check`] with the request, then (if
/// signed) verify the signature over L1/L2 ending with `buf[..signature_offset]`.
pub fn parse_measurements<'a>(
    buf: &'a [u8],
    params: &MeasurementsParams,
) -> Result<Measurements<'a>, MeasError> {
    let header = SpdmHeader::parse(buf)?;
    if header.code != SPDM_MEASUREMENTS {
        return Err(SpdmError::UnexpectedCode.into());
    }
    if header.version != params.version.as_byte() {
        return Err(SpdmError::UnexpectedVersion.into());
    }
    if params.signed
        && (params.signature_size == 0 || params.signature_size > SPDM_MAX_SIGNATURE_SIZE)
    {
        return Err(SpdmError::UnsupportedAlgorithm.into());
    }
    if let Some(h) = params.measurement_hash_size {
        if h > SPDM_MAX_HASH_SIZE {
            return Err(SpdmError::UnsupportedAlgorithm.into());
        }
    }
    if buf.len() < SPDM_MEASUREMENTS_FIXED_SIZE {
        return Err(SpdmError::TooShort.into());
    }
    let mut r = Reader::new(buf, SPDM_HEADER_SIZE);
    let number_of_blocks = r.u8()?;
    let record_len = r.u24()?;
    let record = r.take(record_len).map_err(|_| MeasError::RecordOverrun)?;
    let record = parse_record(record, number_of_blocks, params.measurement_hash_size)?;
    let nonce = r.take(SPDM_NONCE_SIZE)?;
    let opaque_len = usize::from(r.u16()?);
    if opaque_len > SPDM_MAX_OPAQUE_DATA_SIZE {
        return Err(SpdmError::InvalidField.into());
    }
    let opaque = r.take(opaque_len)?;
    let requester_context = if params.version >= SpdmVersion::V1_3 {
        r.take(SPDM_REQ_CONTEXT_SIZE)?
    } else {
        &[]
    };
    let signature_offset = r.pos();
    let signature = if params.signed {
        Some(r.take(params.signature_size)?)
    } else {
        None
    };
    check_padding(r.rest())?;
    let len = r.pos();
    let v11 = params.version >= SpdmVersion::V1_1;
    let v12 = params.version >= SpdmVersion::V1_2;
    Ok(Measurements {
        version: params.version,
        param1: header.param1,
        param2: header.param2,
        slot_id: if v11 {
            header.param2 & SPDM_MEAS_SLOT_MASK
        } else {
            0
        },
        content_changed: if v12 {
            header.param2 & SPDM_MEAS_CONTENT_CHANGE_MASK
        } else {
            0
        },
        number_of_blocks,
        record,
        nonce,
        opaque,
        requester_context,
        signature,
        signature_offset,
        len,
    })
}

/// The fields of a MEASUREMENTS response before the signature (responder side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MeasurementsBody<'a> {
    /// SPDMVersion (the negotiated version).
    pub version: SpdmVersion,
    /// Param1: the number of indices for operation 0, else 0.
    pub param1: u8,
    /// Param2: slot (1.1+) and content-changed bits (1.2+) for a signed response, else 0.
    pub param2: u8,
    /// NumberOfBlocks.
    pub number_of_blocks: u8,
    /// The measurement record (encoded blocks, see [`encode_measurement_block`]).
    pub record: &'a [u8],
    /// The responder's nonce.
    pub nonce: &'a [u8; SPDM_NONCE_SIZE],
    /// OpaqueData (at most 1024 bytes).
    pub opaque: &'a [u8],
    /// RequesterContext to echo (1.3; ignored before).
    pub requester_context: &'a [u8; SPDM_REQ_CONTEXT_SIZE],
}

/// Writes MEASUREMENTS up to the signature and returns its size (where the signature goes).
/// A record longer than [`SPDM_MAX_MEAS_RECORD_SIZE`] or opaque data longer than 1024 bytes
/// is [`MeasError::InvalidField`]. The record is written as given, not validated.
pub fn encode_measurements_body(
    body: &MeasurementsBody<'_>,
    out: &mut [u8],
) -> Result<usize, MeasError> {
    if body.record.len() > SPDM_MAX_MEAS_RECORD_SIZE
        || body.opaque.len() > SPDM_MAX_OPAQUE_DATA_SIZE
    {
        return Err(MeasError::InvalidField);
    }
    let opaque_len = u16::try_from(body.opaque.len()).map_err(|_| MeasError::InvalidField)?;
    let mut w = Writer::new(out);
    w.bytes(&[
        body.version.as_byte(),
        SPDM_MEASUREMENTS,
        body.param1,
        body.param2,
    ])?;
    w.u8(body.number_of_blocks)?;
    w.u24(body.record.len())?;
    w.bytes(body.record)?;
    w.bytes(body.nonce)?;
    w.u16(opaque_len)?;
    w.bytes(body.opaque)?;
    if body.version >= SpdmVersion::V1_3 {
        w.bytes(body.requester_context)?;
    }
    Ok(w.len())
}

/// Writes a complete MEASUREMENTS (body, then `signature`, empty when unsigned) and returns
/// its size.
pub fn encode_measurements(
    body: &MeasurementsBody<'_>,
    signature: &[u8],
    out: &mut [u8],
) -> Result<usize, MeasError> {
    let n = encode_measurements_body(body, out)?;
    Ok(append(out, n, &[signature])?)
}

/// Size of MEASUREMENTS around the record: fixed part, nonce, opaque length field, `opaque`
/// bytes, RequesterContext (1.3) and `signature_size` (0 when unsigned). The largest record a
/// requester can accept in a message of at most M bytes is M minus this.
pub fn measurements_overhead(version: SpdmVersion, opaque: usize, signature_size: usize) -> usize {
    let mut n = SPDM_MEASUREMENTS_FIXED_SIZE
        .saturating_add(SPDM_NONCE_SIZE)
        .saturating_add(2)
        .saturating_add(opaque)
        .saturating_add(signature_size);
    if version >= SpdmVersion::V1_3 {
        n = n.saturating_add(SPDM_REQ_CONTEXT_SIZE);
    }
    n
}

/// Writes the message the MEASUREMENTS signature is computed over, given Hash(L1/L2): for
/// 1.2+ `combined_spdm_prefix` (context "responder-measurements signing") `|| hash`, for 1.0
/// and 1.1 just `hash`. Returns the length written (see `crate::auth::signed_message`).
pub fn measurements_signed_message(
    version: SpdmVersion,
    transcript_hash: &[u8],
    out: &mut [u8],
) -> Result<usize, MeasError> {
    Ok(signed_message(
        version,
        SPDM_MEASUREMENTS_SIGN_CONTEXT,
        transcript_hash,
        out,
    )?)
}

/// The measurement part of a negotiation, for a responder announcing `meas_cap` (MEAS_CAP,
/// see `crate::auth::Capabilities::meas_cap`): `Ok(None)` when MEAS_CAP is 0; otherwise
/// MeasurementSpecificationSel must be DMTF (`Spdm(NoCommonAlgorithm)`, so the requester must
/// have offered it) and MeasurementHashAlgo a single known algorithm
/// (`Spdm(UnsupportedAlgorithm)`); returns its size for [`parse_record`] (0 for raw bit
/// streams only). Any known measurement hash is accepted: it need not be the BaseHashAlgo.
pub fn negotiated_measurement_hash(
    alg: &Algorithms,
    meas_cap: u8,
) -> Result<Option<usize>, MeasError> {
    if meas_cap == 0 {
        return Ok(None);
    }
    if alg.measurement_specification != SPDM_MEAS_SPEC_DMTF {
        return Err(SpdmError::NoCommonAlgorithm.into());
    }
    measurement_hash_size(alg.measurement_hash)
        .map(Some)
        .ok_or(MeasError::Spdm(SpdmError::UnsupportedAlgorithm))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{format, string::ToString, vec, vec::Vec};

    const V10: SpdmVersion = SpdmVersion::V1_0;
    const V11: SpdmVersion = SpdmVersion::V1_1;
    const V12: SpdmVersion = SpdmVersion::V1_2;
    const V13: SpdmVersion = SpdmVersion::V1_3;
    const ALL: [SpdmVersion; 4] = [V10, V11, V12, V13];

    fn block(index: u8, value_type: u8, value: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 7 + value.len()];
        let n = encode_measurement_block(index, value_type, value, &mut out).unwrap();
        assert_eq!(n, out.len());
        out
    }

    fn sample_record() -> Vec<u8> {
        let mut r = block(1, SPDM_MEAS_TYPE_IMMUTABLE_ROM, &[0x11; 48]);
        r.extend(block(2, SPDM_MEAS_TYPE_MUTABLE_FIRMWARE, &[0x22; 48]));
        r.extend(block(
            5,
            SPDM_MEAS_TYPE_VERSION | SPDM_MEAS_VALUE_RAW,
            b"1.4.2",
        ));
        r
    }

    #[test]
    fn request_sizes_and_roundtrip() {
        let want = [(V10, 4, 36), (V11, 4, 37), (V12, 4, 37), (V13, 12, 45)];
        for (v, unsigned, signed) in want {
            assert_eq!(get_measurements_size(v, false), unsigned);
            assert_eq!(get_measurements_size(v, true), signed);
            for sig in [false, true] {
                let mut req = GetMeasurements::new(v, SPDM_MEAS_OP_ALL, sig);
                req.nonce = [0xAB; 32];
                req.slot_id = if sig && v >= V11 { 3 } else { 0 };
                if v >= V13 {
                    req.requester_context = [0xCD; 8];
                }
                if !sig {
                    req.nonce = [0; 32];
                }
                let mut out = [0u8; 64];
                let n = encode_get_measurements(&req, &mut out).unwrap();
                assert_eq!(n, req.size());
                assert_eq!(&out[..4], &[v.as_byte(), 0xE0, u8::from(sig), 0xFF]);
                assert_eq!(parse_get_measurements(&out[..n]), Ok(req));
                assert_eq!(parse_get_measurements(&out[..n + 3]), Ok(req));
                assert_eq!(
                    parse_get_measurements(&out[..n - 1]),
                    Err(MeasError::Spdm(SpdmError::TooShort))
                );
                out[n] = 1;
                assert_eq!(
                    parse_get_measurements(&out[..n + 1]),
                    Err(MeasError::Spdm(SpdmError::TrailingBytes))
                );
            }
        }
        let mut req = GetMeasurements::new(V12, 1, true);
        req.slot_id = 9;
        assert_eq!(
            encode_get_measurements(&req, &mut [0u8; 64]),
            Err(MeasError::InvalidField)
        );
        req.slot_id = 0xF;
        assert_eq!(encode_get_measurements(&req, &mut [0u8; 64]), Ok(37));
        assert_eq!(
            encode_get_measurements(&req, &mut [0u8; 36]),
            Err(MeasError::Spdm(SpdmError::BufferTooSmall))
        );
        assert_eq!(
            parse_get_measurements(&[0x12, 0xE1, 0, 0]),
            Err(MeasError::Spdm(SpdmError::UnexpectedCode))
        );
        // SlotIDParam bits 7:4 are reserved.
        let mut bytes = [0u8; 37];
        bytes[..4].copy_from_slice(&[0x12, 0xE0, 1, 1]);
        bytes[36] = 0xF2;
        assert_eq!(parse_get_measurements(&bytes).unwrap().slot_id, 2);
        bytes[36] = 0x09;
        assert_eq!(parse_get_measurements(&bytes), Err(MeasError::InvalidField));
    }

    #[test]
    fn record_parse() {
        let rec = sample_record();
        let r = parse_record(&rec, 3, Some(48)).unwrap();
        assert_eq!(r.count, 3);
        assert!(r.indices.contains(5) && !r.indices.contains(3));
        assert_eq!(r.indices.len(), 3);
        let blocks: Vec<_> = r.blocks().collect();
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0].type_name().to_string(), "immutable_rom");
        assert_eq!(blocks[2].value, b"1.4.2");
        assert!(blocks[2].is_raw() && !blocks[0].is_raw());
        assert_eq!(blocks[2].kind(), SPDM_MEAS_TYPE_VERSION);
        assert_eq!(r.block(2).unwrap().value, &[0x22; 48]);
        assert_eq!(r.block(3), None);
        assert_eq!(
            parse_record(&rec, 2, None),
            Err(MeasError::BlockCountMismatch)
        );
        assert_eq!(
            parse_record(&rec, 4, None),
            Err(MeasError::BlockCountMismatch)
        );
        assert_eq!(
            parse_record(&rec, 3, Some(32)),
            Err(MeasError::DigestSizeMismatch)
        );
        assert!(parse_record(&rec, 3, None).is_ok());
        assert_eq!(parse_record(&[], 0, Some(48)).map(|r| r.count), Ok(0));

        // Trailing bytes that do not make a block.
        let mut bad = rec.clone();
        bad.push(7);
        assert_eq!(parse_record(&bad, 3, None), Err(MeasError::BlockTruncated));
        let mut bad = rec.clone();
        bad.truncate(rec.len() - 1);
        assert_eq!(parse_record(&bad, 3, None), Err(MeasError::BlockTruncated));
        // Duplicate index.
        let mut dup = rec.clone();
        dup.extend(block(1, SPDM_MEAS_TYPE_SVN | SPDM_MEAS_VALUE_RAW, &[1; 8]));
        assert_eq!(parse_record(&dup, 4, None), Err(MeasError::DuplicateIndex));
        // Inconsistent MeasurementSize.
        let mut bad = block(1, 0, &[0; 4]);
        bad[2] = 8; // MeasurementSize 8, value size 4 -> 7 expected
        bad.push(0);
        assert_eq!(
            parse_record(&bad, 1, None),
            Err(MeasError::BlockSizeMismatch)
        );
        let bad = [1u8, 1, 2, 0, 0, 0];
        assert_eq!(
            parse_record(&bad, 1, None),
            Err(MeasError::BlockSizeMismatch)
        );
        // Specification.
        let mut bad = block(1, 0, &[0; 4]);
        bad[1] = 3;
        assert_eq!(
            parse_record(&bad, 1, None),
            Err(MeasError::BadSpecification)
        );
        // Index range.
        for index in [0u8, 0xFF] {
            let mut bad = block(1, 0, &[0; 4]);
            bad[0] = index;
            assert_eq!(parse_record(&bad, 1, None), Err(MeasError::InvalidIndex));
        }
        assert_eq!(
            encode_measurement_block(0, 0, &[], &mut [0u8; 8]),
            Err(MeasError::InvalidField)
        );
        assert_eq!(
            encode_measurement_block(1, 0, &[], &mut [0u8; 6]),
            Err(MeasError::Spdm(SpdmError::BufferTooSmall))
        );
        let big = vec![0u8; SPDM_MAX_MEAS_VALUE_SIZE + 1];
        assert_eq!(
            encode_measurement_block(1, 0x80, &big, &mut vec![0u8; 70000]),
            Err(MeasError::InvalidField)
        );
        assert_eq!(
            encode_measurement_block(1, 0x80, &big[1..], &mut vec![0u8; 70000]),
            Ok(0xFFFF + 4)
        );
        let mut it = MeasurementBlocks::new(&[1, 1, 9]);
        assert_eq!(it.next(), Some(Err(MeasError::BlockTruncated)));
        assert_eq!(it.next(), None);
    }

    #[test]
    fn index_set() {
        let mut s = IndexSet::new();
        assert!(s.is_empty());
        for i in 0..=255u8 {
            assert!(s.insert(i));
            assert!(!s.insert(i));
            assert!(s.contains(i));
        }
        assert_eq!(s.len(), 256);
    }

    #[test]
    fn type_names() {
        let names = [
            "immutable_rom",
            "mutable_firmware",
            "hardware_config",
            "firmware_config",
            "manifest",
            "device_mode",
            "version",
            "svn",
            "hem",
            "informational",
            "structured_manifest",
        ];
        for (t, name) in names.iter().enumerate() {
            let t = t as u8;
            assert_eq!(type_name(t), Some(*name));
            assert_eq!(type_name(t | SPDM_MEAS_VALUE_RAW), Some(*name));
            assert_eq!(MeasurementTypeName(t).to_string(), *name);
        }
        assert_eq!(type_name(0x0B), None);
        assert_eq!(MeasurementTypeName(0x0B).to_string(), "type_11");
        assert_eq!(MeasurementTypeName(0xFF).to_string(), "type_127");
    }

    fn body<'a>(
        v: SpdmVersion,
        record: &'a [u8],
        count: u8,
        nonce: &'a [u8; 32],
        ctx: &'a [u8; 8],
    ) -> MeasurementsBody<'a> {
        MeasurementsBody {
            version: v,
            param1: 0,
            param2: 0,
            number_of_blocks: count,
            record,
            nonce,
            opaque: b"opq",
            requester_context: ctx,
        }
    }

    #[test]
    fn measurements_roundtrip() {
        let rec = sample_record();
        let nonce = [0x55; 32];
        let ctx = [0x66; 8];
        for v in ALL {
            for signed in [false, true] {
                let mut req = GetMeasurements::new(v, SPDM_MEAS_OP_ALL, signed);
                if v >= V13 {
                    req.requester_context = ctx;
                }
                if signed && v >= V11 {
                    req.slot_id = 2;
                }
                let mut b = body(v, &rec, 3, &nonce, &ctx);
                if signed && v >= V11 {
                    b.param2 = 2;
                }
                if signed && v >= V12 {
                    b.param2 |= SPDM_MEAS_CONTENT_UNCHANGED;
                }
                let sig = [0x77; 96];
                let sig: &[u8] = if signed { &sig } else { &[] };
                let mut out = vec![0u8; 1024];
                let n = encode_measurements(&b, sig, &mut out).unwrap();
                let body_len = encode_measurements_body(&b, &mut [0u8; 1024]).unwrap();
                assert_eq!(n, body_len + sig.len());
                assert_eq!(
                    n,
                    rec.len() + measurements_overhead(v, 3, sig.len()),
                    "{v:?}"
                );
                let params = MeasurementsParams::for_request(&req, 96, Some(48));
                let m = parse_measurements(&out[..n], &params).unwrap();
                assert_eq!(m.len, n);
                assert_eq!(m.signature_offset, body_len);
                assert_eq!(m.signature, if signed { Some(sig) } else { None });
                assert_eq!(m.number_of_blocks, 3);
                assert_eq!(m.record.bytes, &rec[..]);
                assert_eq!(m.nonce, &nonce);
                assert_eq!(m.opaque, b"opq");
                assert_eq!(m.requester_context.len(), if v >= V13 { 8 } else { 0 });
                assert_eq!(m.blocks().count(), 3);
                assert_eq!(m.check(&req), Ok(()));
                if signed && v >= V12 {
                    assert_eq!(m.content_changed, SPDM_MEAS_CONTENT_UNCHANGED);
                }
                if signed && v >= V11 {
                    assert_eq!(m.slot_id, 2);
                    let other = GetMeasurements { slot_id: 1, ..req };
                    assert_eq!(m.check(&other), Err(MeasError::Mismatch));
                }
                if v >= V13 {
                    let other = GetMeasurements {
                        requester_context: [0; 8],
                        ..req
                    };
                    assert_eq!(m.check(&other), Err(MeasError::Mismatch));
                }
                assert_eq!(
                    m.check(&GetMeasurements {
                        operation: 1,
                        ..req
                    }),
                    Err(MeasError::Mismatch)
                );
                // Padding, truncation, trailing bytes.
                assert!(parse_measurements(&out[..n + 3], &params).is_ok());
                out[n] = 9;
                assert_eq!(
                    parse_measurements(&out[..n + 1], &params),
                    Err(MeasError::Spdm(SpdmError::TrailingBytes))
                );
                assert_eq!(
                    parse_measurements(&out[..n - 1], &params),
                    Err(MeasError::Spdm(SpdmError::Truncated))
                );
                let wrong = MeasurementsParams {
                    version: if v == V13 { V12 } else { V13 },
                    ..params
                };
                assert_eq!(
                    parse_measurements(&out[..n], &wrong),
                    Err(MeasError::Spdm(SpdmError::UnexpectedVersion))
                );
            }
        }
    }

    #[test]
    fn measurements_count_and_index_queries() {
        let nonce = [1; 32];
        let ctx = [2; 8];
        let mut out = [0u8; 256];
        // Operation 0.
        let mut b = body(V12, &[], 0, &nonce, &ctx);
        b.param1 = 6;
        let n = encode_measurements(&b, &[], &mut out).unwrap();
        let req = GetMeasurements::new(V12, SPDM_MEAS_OP_TOTAL, false);
        let params = MeasurementsParams::for_request(&req, 64, None);
        let m = parse_measurements(&out[..n], &params).unwrap();
        assert_eq!(m.total_indices(), 6);
        assert_eq!(m.check(&req), Ok(()));
        b.param1 = 0;
        let n = encode_measurements(&b, &[], &mut out).unwrap();
        let m = parse_measurements(&out[..n], &params).unwrap();
        assert_eq!(m.check(&req), Err(MeasError::Mismatch));
        // Content changed without a signature.
        b.param1 = 6;
        b.param2 = SPDM_MEAS_CONTENT_CHANGED;
        let n = encode_measurements(&b, &[], &mut out).unwrap();
        let m = parse_measurements(&out[..n], &params).unwrap();
        assert_eq!(m.check(&req), Err(MeasError::Mismatch));
        // One index.
        let rec = block(4, SPDM_MEAS_TYPE_FIRMWARE_CONFIG, &[9; 32]);
        let b = body(V12, &rec, 1, &nonce, &ctx);
        let n = encode_measurements(&b, &[], &mut out).unwrap();
        let req = GetMeasurements::new(V12, 4, false);
        let params = MeasurementsParams::for_request(&req, 64, Some(32));
        let m = parse_measurements(&out[..n], &params).unwrap();
        assert_eq!(m.check(&req), Ok(()));
        assert_eq!(
            m.check(&GetMeasurements::new(V12, 5, false)),
            Err(MeasError::Mismatch)
        );
        assert_eq!(
            m.check(&GetMeasurements::new(V12, SPDM_MEAS_OP_TOTAL, false)),
            Err(MeasError::Mismatch)
        );
    }

    #[test]
    fn measurements_errors() {
        let rec = sample_record();
        let nonce = [0x55; 32];
        let ctx = [0; 8];
        let b = body(V12, &rec, 3, &nonce, &ctx);
        let mut out = vec![0u8; 1024];
        let n = encode_measurements(&b, &[], &mut out).unwrap();
        let params = MeasurementsParams {
            version: V12,
            signed: false,
            signature_size: 0,
            measurement_hash_size: Some(48),
        };
        assert!(parse_measurements(&out[..n], &params).is_ok());
        // Record length beyond the message.
        let mut bad = out[..n].to_vec();
        bad[5..8].copy_from_slice(&[0xFF, 0xFF, 0x00]);
        assert_eq!(
            parse_measurements(&bad, &params),
            Err(MeasError::RecordOverrun)
        );
        // Record length one short: the last block is cut.
        let mut bad = out[..n].to_vec();
        bad[5] -= 1;
        assert_eq!(
            parse_measurements(&bad, &params),
            Err(MeasError::BlockTruncated)
        );
        // Wrong count.
        let mut bad = out[..n].to_vec();
        bad[4] = 2;
        assert_eq!(
            parse_measurements(&bad, &params),
            Err(MeasError::BlockCountMismatch)
        );
        assert_eq!(
            parse_measurements(&out[..7], &params),
            Err(MeasError::Spdm(SpdmError::TooShort))
        );
        let mut bad = out[..n].to_vec();
        bad[1] = 0x7F;
        assert_eq!(
            parse_measurements(&bad, &params),
            Err(MeasError::Spdm(SpdmError::UnexpectedCode))
        );
        let signed = MeasurementsParams {
            signed: true,
            signature_size: 0,
            ..params
        };
        assert_eq!(
            parse_measurements(&out[..n], &signed),
            Err(MeasError::Spdm(SpdmError::UnsupportedAlgorithm))
        );
        // Opaque data limit.
        let big = vec![0u8; 1025];
        let b2 = MeasurementsBody { opaque: &big, ..b };
        assert_eq!(
            encode_measurements(&b2, &[], &mut vec![0u8; 4096]),
            Err(MeasError::InvalidField)
        );
        let mut msg = vec![0x12, 0x60, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(&[0; 32]);
        msg.extend_from_slice(&1025u16.to_le_bytes());
        msg.extend_from_slice(&[0; 1025]);
        assert_eq!(
            parse_measurements(&msg, &params),
            Err(MeasError::Spdm(SpdmError::InvalidField))
        );
    }

    #[test]
    fn signed_message_prefix() {
        let mut out = [0u8; 200];
        let n = measurements_signed_message(V12, &[0xAA; 48], &mut out).unwrap();
        assert_eq!(n, 148);
        assert_eq!(&out[..16], b"dmtf-spdm-v1.2.*");
        assert_eq!(&out[64..70], &[0; 6]);
        assert_eq!(&out[70..100], b"responder-measurements signing");
        assert_eq!(&out[100..148], &[0xAA; 48]);
        let n = measurements_signed_message(V11, &[0xAA; 48], &mut out).unwrap();
        assert_eq!(n, 48);
    }

    #[test]
    fn negotiated_hash() {
        use crate::auth::{SPDM_MEAS_HASH_RAW, SPDM_MEAS_HASH_SHA384};
        let mut alg = Algorithms::new(V12);
        assert_eq!(negotiated_measurement_hash(&alg, 0), Ok(None));
        assert_eq!(
            negotiated_measurement_hash(&alg, 2),
            Err(MeasError::Spdm(SpdmError::NoCommonAlgorithm))
        );
        alg.measurement_specification = SPDM_MEAS_SPEC_DMTF;
        assert_eq!(
            negotiated_measurement_hash(&alg, 2),
            Err(MeasError::Spdm(SpdmError::UnsupportedAlgorithm))
        );
        alg.measurement_hash = SPDM_MEAS_HASH_SHA384;
        assert_eq!(negotiated_measurement_hash(&alg, 1), Ok(Some(48)));
        alg.measurement_hash = SPDM_MEAS_HASH_RAW;
        assert_eq!(negotiated_measurement_hash(&alg, 2), Ok(Some(0)));
    }

    #[test]
    fn error_reasons_are_distinct() {
        let all = [
            MeasError::Spdm(SpdmError::TooShort),
            MeasError::RecordOverrun,
            MeasError::BlockTruncated,
            MeasError::BadSpecification,
            MeasError::BlockSizeMismatch,
            MeasError::InvalidIndex,
            MeasError::DuplicateIndex,
            MeasError::BlockCountMismatch,
            MeasError::DigestSizeMismatch,
            MeasError::Mismatch,
            MeasError::InvalidField,
        ];
        for (i, a) in all.iter().enumerate() {
            assert_eq!(format!("{a}"), a.reason());
            for b in &all[i + 1..] {
                assert_ne!(a.reason(), b.reason());
            }
        }
    }
}
