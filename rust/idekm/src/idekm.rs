//! IDE_KM message codec (PCIe r6.x sec 6.33.3) and a view of the IDE extended capability
//! registers a QUERY_RESP carries (PCIe r6.x sec 7.9.26).
//!
//! Every IDE_KM message starts with its object ID; the layouts after it (all multi-byte fields
//! little-endian, reserved fields written as zero and ignored when read):
//!
//! ```text
//! QUERY         00 | rsvd | port_index                                             3 bytes
//! QUERY_RESP    01 | rsvd | port_index | dev_func | bus | segment | max_port_index
//!                  | IDE registers from the IDE Capability register on, as dwords  7 + 4n
//! KEY_PROG      02 | rsvd[2] | stream_id | rsvd | key_sub_stream | port_index
//!                  | key (8 DW, 32 bytes) | IFV (2 DW, 8 bytes)                      47 bytes
//! KP_ACK        03 | rsvd[2] | stream_id | status | key_sub_stream | port_index     7 bytes
//! K_SET_GO      04 | rsvd[2] | stream_id | rsvd | key_sub_stream | port_index       7 bytes
//! K_SET_STOP    05 | (as K_SET_GO)                                                 7 bytes
//! K_GOSTOP_ACK  06 | (as K_SET_GO)                                                 7 bytes
//! ```
//!
//! `key_sub_stream`: bit 0 the key set (K0 = 0, K1 = 1), bit 1 the direction (RX = 0, TX = 1,
//! i.e. the value 2), bits 3:2 reserved (must be zero), bits 7:4 the sub-stream (PR 0, NPR 1,
//! CPL 2; other values are reserved). Direction is the IDE_KM responder's own: RX is what the
//! responder's port receives.
//!
//! The messages travel in the payload of a vendor-defined message whose length is explicit, so
//! the parsers require the exact size (no transport padding).
//!
//! This file is compiled both as the body of the `coco-idekm` crate and directly into the
//! kernel module. It uses only `core`, has no `unsafe`, never allocates and has no code path
//! that can panic.

/// Object ID of QUERY.
pub const IDE_KM_QUERY: u8 = 0x00;
/// Object ID of QUERY_RESP.
pub const IDE_KM_QUERY_RESP: u8 = 0x01;
/// Object ID of KEY_PROG.
pub const IDE_KM_KEY_PROG: u8 = 0x02;
/// Object ID of KP_ACK.
pub const IDE_KM_KP_ACK: u8 = 0x03;
/// Object ID of K_SET_GO.
pub const IDE_KM_K_SET_GO: u8 = 0x04;
/// Object ID of K_SET_STOP.
pub const IDE_KM_K_SET_STOP: u8 = 0x05;
/// Object ID of K_GOSTOP_ACK.
pub const IDE_KM_K_GOSTOP_ACK: u8 = 0x06;

/// Size of QUERY.
pub const IDE_KM_QUERY_SIZE: usize = 3;
/// Size of QUERY_RESP without its register dump.
pub const IDE_KM_QUERY_RESP_FIXED_SIZE: usize = 7;
/// Size of KEY_PROG.
pub const IDE_KM_KEY_PROG_SIZE: usize = 47;
/// Size of KP_ACK, K_SET_GO, K_SET_STOP and K_GOSTOP_ACK.
pub const IDE_KM_ACK_SIZE: usize = 7;
/// Size of a key (AES-GCM-256: 8 dwords).
pub const IDE_KM_KEY_SIZE: usize = 32;
/// Size of an initial IV field (2 dwords).
pub const IDE_KM_IFV_SIZE: usize = 8;

/// KP_ACK status: success.
pub const IDE_KM_KP_ACK_SUCCESS: u8 = 0;
/// KP_ACK status: incorrect length.
pub const IDE_KM_KP_ACK_INCORRECT_LENGTH: u8 = 1;
/// KP_ACK status: unsupported port index.
pub const IDE_KM_KP_ACK_UNSUPPORTED_PORT: u8 = 2;
/// KP_ACK status: unsupported value in another field.
pub const IDE_KM_KP_ACK_UNSUPPORTED_VALUE: u8 = 3;
/// KP_ACK status: unspecified failure.
pub const IDE_KM_KP_ACK_UNSPECIFIED: u8 = 4;

/// key_sub_stream bit 0: key set K1 (clear: K0).
pub const IDE_KM_KEY_SET_MASK: u8 = 0x01;
/// key_sub_stream bit 1: direction TX (clear: RX).
pub const IDE_KM_DIRECTION_TX: u8 = 0x02;
/// key_sub_stream bits 3:2: reserved.
pub const IDE_KM_KEY_SUB_STREAM_RESERVED: u8 = 0x0C;
/// key_sub_stream bits 7:4: sub-stream shift.
pub const IDE_KM_SUB_STREAM_SHIFT: u32 = 4;

/// Number of (direction, sub-stream) pairs of a stream: RX/TX × PR/NPR/CPL.
pub const IDE_KM_PAIRS: usize = 6;

// --- IDE extended capability (ID 0x30) registers ----------------------------------------

/// Extended capability ID of IDE.
pub const PCI_EXT_CAP_ID_IDE: u16 = 0x30;
/// IDE Capability: Link IDE Stream supported.
pub const IDE_CAP_LINK: u32 = 1 << 0;
/// IDE Capability: Selective IDE Streams supported.
pub const IDE_CAP_SELECTIVE: u32 = 1 << 1;
/// IDE Capability: Flow-through IDE Stream supported.
pub const IDE_CAP_FLOW_THROUGH: u32 = 1 << 2;
/// IDE Capability: Partial Header Encryption supported.
pub const IDE_CAP_PARTIAL_HEADER: u32 = 1 << 3;
/// IDE Capability: Aggregation supported.
pub const IDE_CAP_AGGREGATION: u32 = 1 << 4;
/// IDE Capability: PCRC supported.
pub const IDE_CAP_PCRC: u32 = 1 << 5;
/// IDE Capability: IDE_KM protocol supported.
pub const IDE_CAP_IDE_KM: u32 = 1 << 6;
/// IDE Capability: Selective IDE for Configuration Requests supported.
pub const IDE_CAP_SEL_CFG: u32 = 1 << 7;
/// IDE Capability: supported algorithms, bits 12:8 (0 = AES-GCM-256 with a 96-bit MAC).
pub const IDE_CAP_ALG_SHIFT: u32 = 8;
/// IDE Capability: number of TCs supported for Link IDE minus one, bits 15:13.
pub const IDE_CAP_LINK_TC_SHIFT: u32 = 13;
/// IDE Capability: number of Selective IDE Streams supported minus one, bits 23:16.
pub const IDE_CAP_SEL_NUM_SHIFT: u32 = 16;
/// IDE Capability: TEE-Limited Stream supported.
pub const IDE_CAP_TEE_LIMITED: u32 = 1 << 24;
/// Stream control: enable.
pub const IDE_CTL_ENABLE: u32 = 1 << 0;
/// Stream control: stream ID, bits 31:24.
pub const IDE_CTL_STREAM_ID_SHIFT: u32 = 24;
/// Stream status: state, bits 3:0.
pub const IDE_STS_STATE_MASK: u32 = 0xF;
/// Stream status state: Insecure.
pub const IDE_STATE_INSECURE: u32 = 0;
/// Stream status state: Secure.
pub const IDE_STATE_SECURE: u32 = 2;
/// Stream status: received an integrity check fail message.
pub const IDE_STS_RECVD_INTEGRITY_CHECK: u32 = 1 << 31;
/// Selective stream capability: number of address association register blocks, bits 3:0.
pub const IDE_SEL_CAP_ASSOC_MASK: u32 = 0xF;
/// Dwords of a Link IDE stream register block.
pub const IDE_LINK_BLOCK_DWORDS: usize = 2;
/// Dwords of a selective stream register block without its address association blocks.
pub const IDE_SEL_BLOCK_FIXED_DWORDS: usize = 5;
/// Dwords of one address association register block.
pub const IDE_ADDR_BLOCK_DWORDS: usize = 3;

/// Reasons an IDE_KM message cannot be parsed or encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdeKmError {
    /// The message is shorter than its fixed layout.
    TooShort,
    /// The object ID is not the one expected (or not an IDE_KM object).
    UnexpectedObject,
    /// Bytes follow the message.
    TrailingBytes,
    /// A field holds a reserved value (key_sub_stream reserved bits or sub-stream).
    InvalidField,
    /// A length is inconsistent (a register dump that is not whole dwords, or whose layout
    /// does not match its capability register).
    InvalidLength,
    /// The output buffer is too small.
    BufferTooSmall,
}

impl IdeKmError {
    /// A short, human-readable reason, suitable for logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            IdeKmError::TooShort => "IDE_KM message too short",
            IdeKmError::UnexpectedObject => "unexpected IDE_KM object ID",
            IdeKmError::TrailingBytes => "unexpected bytes after the IDE_KM message",
            IdeKmError::InvalidField => "reserved value in an IDE_KM field",
            IdeKmError::InvalidLength => "IDE register dump length inconsistent",
            IdeKmError::BufferTooSmall => "output buffer too small for the IDE_KM message",
        }
    }
}

impl core::fmt::Display for IdeKmError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name for an IDE_KM object ID, for logs.
pub fn object_name(object_id: u8) -> &'static str {
    match object_id {
        IDE_KM_QUERY => "QUERY",
        IDE_KM_QUERY_RESP => "QUERY_RESP",
        IDE_KM_KEY_PROG => "KEY_PROG",
        IDE_KM_KP_ACK => "KP_ACK",
        IDE_KM_K_SET_GO => "K_SET_GO",
        IDE_KM_K_SET_STOP => "K_SET_STOP",
        IDE_KM_K_GOSTOP_ACK => "K_GOSTOP_ACK",
        _ => "unknown IDE_KM object",
    }
}

/// A name for a KP_ACK status, for logs.
pub fn kp_ack_status_name(status: u8) -> &'static str {
    match status {
        IDE_KM_KP_ACK_SUCCESS => "success",
        IDE_KM_KP_ACK_INCORRECT_LENGTH => "incorrect length",
        IDE_KM_KP_ACK_UNSUPPORTED_PORT => "unsupported port index",
        IDE_KM_KP_ACK_UNSUPPORTED_VALUE => "unsupported value",
        IDE_KM_KP_ACK_UNSPECIFIED => "unspecified failure",
        _ => "reserved status",
    }
}

/// Direction of a key, from the IDE_KM responder's port's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// Receive.
    Rx,
    /// Transmit.
    Tx,
}

impl Direction {
    /// Both directions, RX first.
    pub const ALL: [Direction; 2] = [Direction::Rx, Direction::Tx];

    /// The other direction (what the partner port uses this key for).
    pub const fn opposite(self) -> Direction {
        match self {
            Direction::Rx => Direction::Tx,
            Direction::Tx => Direction::Rx,
        }
    }

    /// 0 for RX, 1 for TX.
    pub const fn index(self) -> u8 {
        match self {
            Direction::Rx => 0,
            Direction::Tx => 1,
        }
    }

    /// "RX" or "TX".
    pub const fn name(self) -> &'static str {
        match self {
            Direction::Rx => "RX",
            Direction::Tx => "TX",
        }
    }
}

/// IDE sub-stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SubStream {
    /// Posted requests.
    Pr,
    /// Non-posted requests.
    Npr,
    /// Completions.
    Cpl,
}

impl SubStream {
    /// The three sub-streams in order PR, NPR, CPL.
    pub const ALL: [SubStream; 3] = [SubStream::Pr, SubStream::Npr, SubStream::Cpl];

    /// The sub-stream with this number (0 PR, 1 NPR, 2 CPL).
    pub const fn from_index(index: u8) -> Option<SubStream> {
        match index {
            0 => Some(SubStream::Pr),
            1 => Some(SubStream::Npr),
            2 => Some(SubStream::Cpl),
            _ => None,
        }
    }

    /// 0 PR, 1 NPR, 2 CPL.
    pub const fn index(self) -> u8 {
        match self {
            SubStream::Pr => 0,
            SubStream::Npr => 1,
            SubStream::Cpl => 2,
        }
    }

    /// "PR", "NPR" or "CPL".
    pub const fn name(self) -> &'static str {
        match self {
            SubStream::Pr => "PR",
            SubStream::Npr => "NPR",
            SubStream::Cpl => "CPL",
        }
    }
}

/// The key_sub_stream byte: key set, direction and sub-stream. Always valid (reserved bits
/// clear, sub-stream 0 to 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeySubStream(u8);

impl KeySubStream {
    /// The byte for key set `key_set` (only bit 0 is used: 0 = K0, 1 = K1), `direction` and
    /// `sub_stream`.
    pub const fn new(key_set: u8, direction: Direction, sub_stream: SubStream) -> Self {
        let dir = match direction {
            Direction::Rx => 0,
            Direction::Tx => IDE_KM_DIRECTION_TX,
        };
        KeySubStream((sub_stream.index() << IDE_KM_SUB_STREAM_SHIFT) | dir | (key_set & 1))
    }

    /// Validates a wire byte: reserved bits 3:2 clear and a sub-stream of 0 to 2.
    pub fn from_raw(raw: u8) -> Result<Self, IdeKmError> {
        if raw & IDE_KM_KEY_SUB_STREAM_RESERVED != 0
            || SubStream::from_index(raw >> IDE_KM_SUB_STREAM_SHIFT).is_none()
        {
            return Err(IdeKmError::InvalidField);
        }
        Ok(KeySubStream(raw))
    }

    /// The wire byte.
    pub const fn raw(self) -> u8 {
        self.0
    }

    /// The key set: 0 (K0) or 1 (K1).
    pub const fn key_set(self) -> u8 {
        self.0 & IDE_KM_KEY_SET_MASK
    }

    /// The direction.
    pub const fn direction(self) -> Direction {
        if self.0 & IDE_KM_DIRECTION_TX != 0 {
            Direction::Tx
        } else {
            Direction::Rx
        }
    }

    /// The sub-stream.
    pub const fn sub_stream(self) -> SubStream {
        match SubStream::from_index(self.0 >> IDE_KM_SUB_STREAM_SHIFT) {
            Some(s) => s,
            // Never reached: construction validates the field.
            None => SubStream::Pr,
        }
    }

    /// Index of the (direction, sub-stream) pair, 0 to 5, in the order RX-PR, RX-NPR, RX-CPL,
    /// TX-PR, TX-NPR, TX-CPL.
    pub const fn pair_index(self) -> usize {
        pair_index(self.direction(), self.sub_stream())
    }
}

/// Index of a (direction, sub-stream) pair, 0 to 5: RX-PR, RX-NPR, RX-CPL, TX-PR, TX-NPR,
/// TX-CPL.
pub const fn pair_index(direction: Direction, sub_stream: SubStream) -> usize {
    let d: usize = match direction {
        Direction::Rx => 0,
        Direction::Tx => 3,
    };
    let s: usize = match sub_stream {
        SubStream::Pr => 0,
        SubStream::Npr => 1,
        SubStream::Cpl => 2,
    };
    // At most 3 + 2.
    d.wrapping_add(s)
}

/// The (direction, sub-stream) pair with index 0 to 5 (see [`pair_index`]).
pub const fn pair_from_index(index: usize) -> Option<(Direction, SubStream)> {
    match index {
        0 => Some((Direction::Rx, SubStream::Pr)),
        1 => Some((Direction::Rx, SubStream::Npr)),
        2 => Some((Direction::Rx, SubStream::Cpl)),
        3 => Some((Direction::Tx, SubStream::Pr)),
        4 => Some((Direction::Tx, SubStream::Npr)),
        5 => Some((Direction::Tx, SubStream::Cpl)),
        _ => None,
    }
}

/// QUERY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Query {
    /// The port the query is about (0 for an endpoint's own port).
    pub port_index: u8,
}

/// Identification of the queried port in QUERY_RESP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PortInfo {
    /// PortIndex echoed from QUERY.
    pub port_index: u8,
    /// Device and function number of the function holding the IDE capability.
    pub dev_func: u8,
    /// Bus number.
    pub bus: u8,
    /// Segment.
    pub segment: u8,
    /// Largest port index the responder supports (0 for an endpoint).
    pub max_port_index: u8,
}

/// QUERY_RESP, borrowing the register dump from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueryResp<'a> {
    /// The port.
    pub info: PortInfo,
    /// The IDE registers from the IDE Capability register on, 4 bytes each, little-endian.
    regs: &'a [u8],
}

impl<'a> QueryResp<'a> {
    /// A QUERY_RESP over a register dump given as little-endian bytes (a whole number of
    /// dwords, else [`IdeKmError::InvalidLength`]).
    pub fn new(info: PortInfo, reg_bytes: &'a [u8]) -> Result<Self, IdeKmError> {
        if reg_bytes.len() % 4 != 0 {
            return Err(IdeKmError::InvalidLength);
        }
        Ok(QueryResp {
            info,
            regs: reg_bytes,
        })
    }

    /// Number of dwords in the register dump.
    pub fn reg_count(&self) -> usize {
        self.regs.len() / 4
    }

    /// Dword `index` of the register dump (0 = IDE Capability, 1 = IDE Control, ...).
    pub fn reg(&self, index: usize) -> Option<u32> {
        dword(self.regs, index)
    }

    /// The register dump as little-endian bytes.
    pub fn reg_bytes(&self) -> &'a [u8] {
        self.regs
    }

    /// The register dump as an [`IdeRegs`] view (validating its layout).
    pub fn ide_regs(&self) -> Result<IdeRegs<'a>, IdeKmError> {
        IdeRegs::parse(self.regs)
    }

    /// Size of the encoded message.
    pub fn encoded_size(&self) -> usize {
        IDE_KM_QUERY_RESP_FIXED_SIZE.saturating_add(self.regs.len())
    }
}

/// KEY_PROG. The key and IFV are secrets: the `Debug` output omits them; call
/// [`KeyProg::wipe`] when done with one.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyProg {
    /// Stream ID.
    pub stream_id: u8,
    /// Key set, direction and sub-stream.
    pub sub: KeySubStream,
    /// Port index (0 for an endpoint's own port).
    pub port_index: u8,
    /// The key (8 dwords as on the wire).
    pub key: [u8; IDE_KM_KEY_SIZE],
    /// The initial IV field (2 dwords as on the wire).
    pub ifv: [u8; IDE_KM_IFV_SIZE],
}

impl core::fmt::Debug for KeyProg {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyProg")
            .field("stream_id", &self.stream_id)
            .field("sub", &self.sub)
            .field("port_index", &self.port_index)
            .finish_non_exhaustive()
    }
}

impl KeyProg {
    /// Overwrites the key and IFV with zeros.
    pub fn wipe(&mut self) {
        for b in self.key.iter_mut().chain(self.ifv.iter_mut()) {
            *b = 0;
        }
        // Keep the stores: the compiler must assume the buffer is still read.
        core::hint::black_box(&mut self.key);
        core::hint::black_box(&mut self.ifv);
    }
}

/// KP_ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KpAck {
    /// Stream ID (echoed).
    pub stream_id: u8,
    /// Status (`IDE_KM_KP_ACK_*`; 0 is success).
    pub status: u8,
    /// key_sub_stream (echoed).
    pub sub: KeySubStream,
    /// Port index (echoed).
    pub port_index: u8,
}

/// K_SET_GO, K_SET_STOP and K_GOSTOP_ACK (same layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySetCmd {
    /// Stream ID.
    pub stream_id: u8,
    /// Key set, direction and sub-stream.
    pub sub: KeySubStream,
    /// Port index.
    pub port_index: u8,
}

/// Any IDE_KM message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdeKmMessage<'a> {
    /// QUERY.
    Query(Query),
    /// QUERY_RESP.
    QueryResp(QueryResp<'a>),
    /// KEY_PROG.
    KeyProg(KeyProg),
    /// KP_ACK.
    KpAck(KpAck),
    /// K_SET_GO.
    KSetGo(KeySetCmd),
    /// K_SET_STOP.
    KSetStop(KeySetCmd),
    /// K_GOSTOP_ACK.
    GoStopAck(KeySetCmd),
}

impl IdeKmMessage<'_> {
    /// The object ID.
    pub fn object_id(&self) -> u8 {
        match self {
            IdeKmMessage::Query(_) => IDE_KM_QUERY,
            IdeKmMessage::QueryResp(_) => IDE_KM_QUERY_RESP,
            IdeKmMessage::KeyProg(_) => IDE_KM_KEY_PROG,
            IdeKmMessage::KpAck(_) => IDE_KM_KP_ACK,
            IdeKmMessage::KSetGo(_) => IDE_KM_K_SET_GO,
            IdeKmMessage::KSetStop(_) => IDE_KM_K_SET_STOP,
            IdeKmMessage::GoStopAck(_) => IDE_KM_K_GOSTOP_ACK,
        }
    }

    /// Writes the message and returns its size.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, IdeKmError> {
        match self {
            IdeKmMessage::Query(q) => encode_query(q.port_index, out),
            IdeKmMessage::QueryResp(r) => encode_query_resp_bytes(&r.info, r.regs, out),
            IdeKmMessage::KeyProg(k) => encode_key_prog(k, out),
            IdeKmMessage::KpAck(a) => encode_kp_ack(a, out),
            IdeKmMessage::KSetGo(c) => encode_key_set_cmd(IDE_KM_K_SET_GO, c, out),
            IdeKmMessage::KSetStop(c) => encode_key_set_cmd(IDE_KM_K_SET_STOP, c, out),
            IdeKmMessage::GoStopAck(c) => encode_key_set_cmd(IDE_KM_K_GOSTOP_ACK, c, out),
        }
    }
}

/// Dword `index` of little-endian bytes.
fn dword(bytes: &[u8], index: usize) -> Option<u32> {
    let start = index.checked_mul(4)?;
    let end = start.checked_add(4)?;
    let b: [u8; 4] = bytes.get(start..end)?.try_into().ok()?;
    Some(u32::from_le_bytes(b))
}

/// Writes `bytes` (exactly `len` of them) to the start of `out`; returns `len`.
fn write_exact<I: IntoIterator<Item = u8>>(
    out: &mut [u8],
    len: usize,
    bytes: I,
) -> Result<usize, IdeKmError> {
    let dst = out.get_mut(..len).ok_or(IdeKmError::BufferTooSmall)?;
    let mut written: usize = 0;
    for (d, s) in dst.iter_mut().zip(bytes) {
        *d = s;
        written = written.saturating_add(1);
    }
    if written != len {
        return Err(IdeKmError::BufferTooSmall);
    }
    Ok(len)
}

/// Checks the object ID and the exact size of a fixed-size message; returns its bytes.
fn fixed<const N: usize>(buf: &[u8], object_id: u8) -> Result<[u8; N], IdeKmError> {
    let first = *buf.first().ok_or(IdeKmError::TooShort)?;
    if first != object_id {
        return Err(IdeKmError::UnexpectedObject);
    }
    if buf.len() < N {
        return Err(IdeKmError::TooShort);
    }
    if buf.len() > N {
        return Err(IdeKmError::TrailingBytes);
    }
    buf.try_into().map_err(|_| IdeKmError::TooShort)
}

/// Writes QUERY for `port_index`; returns 3.
pub fn encode_query(port_index: u8, out: &mut [u8]) -> Result<usize, IdeKmError> {
    write_exact(out, IDE_KM_QUERY_SIZE, [IDE_KM_QUERY, 0, port_index])
}

/// Parses QUERY.
pub fn parse_query(buf: &[u8]) -> Result<Query, IdeKmError> {
    let [_, _, port_index] = fixed::<IDE_KM_QUERY_SIZE>(buf, IDE_KM_QUERY)?;
    Ok(Query { port_index })
}

/// Writes QUERY_RESP with the register dump `regs` (dwords from the IDE Capability register
/// on); returns `7 + 4 * regs.len()`.
pub fn encode_query_resp(
    info: &PortInfo,
    regs: &[u32],
    out: &mut [u8],
) -> Result<usize, IdeKmError> {
    let len = regs
        .len()
        .checked_mul(4)
        .and_then(|n| n.checked_add(IDE_KM_QUERY_RESP_FIXED_SIZE))
        .ok_or(IdeKmError::BufferTooSmall)?;
    let fixed = query_resp_fixed(info);
    write_exact(
        out,
        len,
        fixed
            .into_iter()
            .chain(regs.iter().flat_map(|r| r.to_le_bytes())),
    )
}

fn query_resp_fixed(info: &PortInfo) -> [u8; IDE_KM_QUERY_RESP_FIXED_SIZE] {
    [
        IDE_KM_QUERY_RESP,
        0,
        info.port_index,
        info.dev_func,
        info.bus,
        info.segment,
        info.max_port_index,
    ]
}

fn encode_query_resp_bytes(
    info: &PortInfo,
    reg_bytes: &[u8],
    out: &mut [u8],
) -> Result<usize, IdeKmError> {
    if reg_bytes.len() % 4 != 0 {
        return Err(IdeKmError::InvalidLength);
    }
    let len = reg_bytes
        .len()
        .checked_add(IDE_KM_QUERY_RESP_FIXED_SIZE)
        .ok_or(IdeKmError::BufferTooSmall)?;
    write_exact(
        out,
        len,
        query_resp_fixed(info)
            .into_iter()
            .chain(reg_bytes.iter().copied()),
    )
}

/// Parses QUERY_RESP. The register dump must be a whole number of dwords; its layout is only
/// checked by [`QueryResp::ide_regs`].
pub fn parse_query_resp(buf: &[u8]) -> Result<QueryResp<'_>, IdeKmError> {
    let first = *buf.first().ok_or(IdeKmError::TooShort)?;
    if first != IDE_KM_QUERY_RESP {
        return Err(IdeKmError::UnexpectedObject);
    }
    let head: [u8; IDE_KM_QUERY_RESP_FIXED_SIZE] = buf
        .get(..IDE_KM_QUERY_RESP_FIXED_SIZE)
        .and_then(|b| b.try_into().ok())
        .ok_or(IdeKmError::TooShort)?;
    let [_, _, port_index, dev_func, bus, segment, max_port_index] = head;
    let regs = buf.get(IDE_KM_QUERY_RESP_FIXED_SIZE..).unwrap_or(&[]);
    QueryResp::new(
        PortInfo {
            port_index,
            dev_func,
            bus,
            segment,
            max_port_index,
        },
        regs,
    )
}

/// Writes KEY_PROG; returns 47.
pub fn encode_key_prog(k: &KeyProg, out: &mut [u8]) -> Result<usize, IdeKmError> {
    let head = [
        IDE_KM_KEY_PROG,
        0,
        0,
        k.stream_id,
        0,
        k.sub.raw(),
        k.port_index,
    ];
    write_exact(
        out,
        IDE_KM_KEY_PROG_SIZE,
        head.into_iter()
            .chain(k.key.iter().copied())
            .chain(k.ifv.iter().copied()),
    )
}

/// Parses KEY_PROG. The result holds the key: wipe it ([`KeyProg::wipe`]) when done.
pub fn parse_key_prog(buf: &[u8]) -> Result<KeyProg, IdeKmError> {
    let first = *buf.first().ok_or(IdeKmError::TooShort)?;
    if first != IDE_KM_KEY_PROG {
        return Err(IdeKmError::UnexpectedObject);
    }
    if buf.len() < IDE_KM_KEY_PROG_SIZE {
        return Err(IdeKmError::TooShort);
    }
    if buf.len() > IDE_KM_KEY_PROG_SIZE {
        return Err(IdeKmError::TrailingBytes);
    }
    let b = |i: usize| buf.get(i).copied().ok_or(IdeKmError::TooShort);
    let key_end = IDE_KM_ACK_SIZE.saturating_add(IDE_KM_KEY_SIZE);
    let key: [u8; IDE_KM_KEY_SIZE] = buf
        .get(IDE_KM_ACK_SIZE..key_end)
        .and_then(|s| s.try_into().ok())
        .ok_or(IdeKmError::TooShort)?;
    let ifv: [u8; IDE_KM_IFV_SIZE] = buf
        .get(key_end..IDE_KM_KEY_PROG_SIZE)
        .and_then(|s| s.try_into().ok())
        .ok_or(IdeKmError::TooShort)?;
    Ok(KeyProg {
        stream_id: b(3)?,
        sub: KeySubStream::from_raw(b(5)?)?,
        port_index: b(6)?,
        key,
        ifv,
    })
}

/// Writes KP_ACK; returns 7.
pub fn encode_kp_ack(a: &KpAck, out: &mut [u8]) -> Result<usize, IdeKmError> {
    write_exact(
        out,
        IDE_KM_ACK_SIZE,
        [
            IDE_KM_KP_ACK,
            0,
            0,
            a.stream_id,
            a.status,
            a.sub.raw(),
            a.port_index,
        ],
    )
}

/// Parses KP_ACK (any status value is accepted: a requester treats non-zero as failure).
pub fn parse_kp_ack(buf: &[u8]) -> Result<KpAck, IdeKmError> {
    let [_, _, _, stream_id, status, sub, port_index] =
        fixed::<IDE_KM_ACK_SIZE>(buf, IDE_KM_KP_ACK)?;
    Ok(KpAck {
        stream_id,
        status,
        sub: KeySubStream::from_raw(sub)?,
        port_index,
    })
}

/// Writes K_SET_GO, K_SET_STOP or K_GOSTOP_ACK (`object_id`); returns 7.
pub fn encode_key_set_cmd(
    object_id: u8,
    c: &KeySetCmd,
    out: &mut [u8],
) -> Result<usize, IdeKmError> {
    if !matches!(
        object_id,
        IDE_KM_K_SET_GO | IDE_KM_K_SET_STOP | IDE_KM_K_GOSTOP_ACK
    ) {
        return Err(IdeKmError::UnexpectedObject);
    }
    write_exact(
        out,
        IDE_KM_ACK_SIZE,
        [object_id, 0, 0, c.stream_id, 0, c.sub.raw(), c.port_index],
    )
}

/// Parses K_SET_GO, K_SET_STOP or K_GOSTOP_ACK, whichever `object_id` names.
pub fn parse_key_set_cmd(buf: &[u8], object_id: u8) -> Result<KeySetCmd, IdeKmError> {
    if !matches!(
        object_id,
        IDE_KM_K_SET_GO | IDE_KM_K_SET_STOP | IDE_KM_K_GOSTOP_ACK
    ) {
        return Err(IdeKmError::UnexpectedObject);
    }
    let [_, _, _, stream_id, _, sub, port_index] = fixed::<IDE_KM_ACK_SIZE>(buf, object_id)?;
    Ok(KeySetCmd {
        stream_id,
        sub: KeySubStream::from_raw(sub)?,
        port_index,
    })
}

/// Parses any IDE_KM message, by its object ID.
pub fn parse_message(buf: &[u8]) -> Result<IdeKmMessage<'_>, IdeKmError> {
    let object_id = *buf.first().ok_or(IdeKmError::TooShort)?;
    Ok(match object_id {
        IDE_KM_QUERY => IdeKmMessage::Query(parse_query(buf)?),
        IDE_KM_QUERY_RESP => IdeKmMessage::QueryResp(parse_query_resp(buf)?),
        IDE_KM_KEY_PROG => IdeKmMessage::KeyProg(parse_key_prog(buf)?),
        IDE_KM_KP_ACK => IdeKmMessage::KpAck(parse_kp_ack(buf)?),
        IDE_KM_K_SET_GO => IdeKmMessage::KSetGo(parse_key_set_cmd(buf, object_id)?),
        IDE_KM_K_SET_STOP => IdeKmMessage::KSetStop(parse_key_set_cmd(buf, object_id)?),
        IDE_KM_K_GOSTOP_ACK => IdeKmMessage::GoStopAck(parse_key_set_cmd(buf, object_id)?),
        _ => return Err(IdeKmError::UnexpectedObject),
    })
}

/// Checks an acknowledgement against the request it answers: same stream ID, key_sub_stream
/// and port index. `Err(IdeKmError::InvalidField)` on a mismatch.
pub fn check_ack(
    stream_id: u8,
    sub: KeySubStream,
    port_index: u8,
    ack: (u8, KeySubStream, u8),
) -> Result<(), IdeKmError> {
    if ack != (stream_id, sub, port_index) {
        return Err(IdeKmError::InvalidField);
    }
    Ok(())
}

// --- IDE register view ------------------------------------------------------------------

/// The IDE extended capability's registers from the IDE Capability register on (what
/// QUERY_RESP carries): IDE Capability, IDE Control, the Link IDE stream blocks (2 dwords per
/// TC when Link IDE is supported), then the selective stream blocks (5 dwords plus 3 per
/// address association block each). [`IdeRegs::parse`] checks that the dump is exactly that
/// long.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdeRegs<'a> {
    bytes: &'a [u8],
}

/// One selective IDE stream register block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SelectiveBlock<'a> {
    /// Selective IDE Stream Capability register.
    pub cap: u32,
    /// Selective IDE Stream Control register.
    pub ctl: u32,
    /// Selective IDE Stream Status register.
    pub sts: u32,
    /// IDE RID Association register 1.
    pub rid1: u32,
    /// IDE RID Association register 2.
    pub rid2: u32,
    /// Address association blocks, 12 bytes each.
    addr: &'a [u8],
}

impl SelectiveBlock<'_> {
    /// Number of address association register blocks.
    pub fn addr_assoc_count(&self) -> usize {
        addr_count(self.cap)
    }

    /// The stream ID (Control bits 31:24).
    pub fn stream_id(&self) -> u8 {
        self.ctl.to_le_bytes().get(3).copied().unwrap_or(0)
    }

    /// Whether the stream is enabled (Control bit 0).
    pub fn enabled(&self) -> bool {
        self.ctl & IDE_CTL_ENABLE != 0
    }

    /// The stream state (Status bits 3:0; 2 = Secure).
    pub fn state(&self) -> u32 {
        self.sts & IDE_STS_STATE_MASK
    }

    /// Address association block `index`: registers 1, 2 and 3.
    pub fn addr(&self, index: usize) -> Option<(u32, u32, u32)> {
        let base = index.checked_mul(IDE_ADDR_BLOCK_DWORDS)?;
        Some((
            dword(self.addr, base)?,
            dword(self.addr, base.checked_add(1)?)?,
            dword(self.addr, base.checked_add(2)?)?,
        ))
    }
}

fn addr_count(cap: u32) -> usize {
    usize::try_from(cap & IDE_SEL_CAP_ASSOC_MASK).unwrap_or(0)
}

impl<'a> IdeRegs<'a> {
    /// Validates a register dump given as little-endian bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, IdeKmError> {
        if bytes.len() % 4 != 0 {
            return Err(IdeKmError::InvalidLength);
        }
        let regs = IdeRegs { bytes };
        regs.capability().ok_or(IdeKmError::TooShort)?;
        regs.control().ok_or(IdeKmError::TooShort)?;
        let mut pos = regs.selective_start();
        for _ in 0..regs.num_selective() {
            let c = dword(bytes, pos).ok_or(IdeKmError::InvalidLength)?;
            pos = pos
                .checked_add(IDE_SEL_BLOCK_FIXED_DWORDS)
                .and_then(|p| p.checked_add(addr_count(c).checked_mul(IDE_ADDR_BLOCK_DWORDS)?))
                .ok_or(IdeKmError::InvalidLength)?;
        }
        if pos.checked_mul(4) != Some(bytes.len()) {
            return Err(IdeKmError::InvalidLength);
        }
        Ok(regs)
    }

    /// The bytes of the dump.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// IDE Capability register.
    pub fn capability(&self) -> Option<u32> {
        dword(self.bytes, 0)
    }

    /// IDE Control register.
    pub fn control(&self) -> Option<u32> {
        dword(self.bytes, 1)
    }

    fn cap(&self) -> u32 {
        self.capability().unwrap_or(0)
    }

    /// Number of Link IDE stream blocks (TCs), 0 without Link IDE support.
    pub fn num_link(&self) -> usize {
        let cap = self.cap();
        if cap & IDE_CAP_LINK == 0 {
            return 0;
        }
        usize::try_from((cap >> IDE_CAP_LINK_TC_SHIFT) & 0x7)
            .unwrap_or(0)
            .saturating_add(1)
    }

    /// Number of selective stream blocks, 0 without Selective IDE support.
    pub fn num_selective(&self) -> usize {
        let cap = self.cap();
        if cap & IDE_CAP_SELECTIVE == 0 {
            return 0;
        }
        usize::from(cap.to_le_bytes().get(2).copied().unwrap_or(0)).saturating_add(1)
    }

    /// Whether IDE_KM is supported.
    pub fn ide_km(&self) -> bool {
        self.cap() & IDE_CAP_IDE_KM != 0
    }

    /// Whether TEE-Limited streams are supported.
    pub fn tee_limited(&self) -> bool {
        self.cap() & IDE_CAP_TEE_LIMITED != 0
    }

    /// Supported algorithms field (bits 12:8; 0 = AES-GCM-256, 96-bit MAC).
    pub fn algorithms(&self) -> u32 {
        (self.cap() >> IDE_CAP_ALG_SHIFT) & 0x1F
    }

    fn selective_start(&self) -> usize {
        self.num_link()
            .saturating_mul(IDE_LINK_BLOCK_DWORDS)
            .saturating_add(2)
    }

    /// Link IDE stream block `index`: control and status registers.
    pub fn link(&self, index: usize) -> Option<(u32, u32)> {
        if index >= self.num_link() {
            return None;
        }
        let base = index.checked_mul(IDE_LINK_BLOCK_DWORDS)?.checked_add(2)?;
        Some((
            dword(self.bytes, base)?,
            dword(self.bytes, base.checked_add(1)?)?,
        ))
    }

    /// Selective stream block `index`.
    pub fn selective(&self, index: usize) -> Option<SelectiveBlock<'a>> {
        if index >= self.num_selective() {
            return None;
        }
        let mut pos = self.selective_start();
        let mut i: usize = 0;
        loop {
            let cap = dword(self.bytes, pos)?;
            let n = addr_count(cap).checked_mul(IDE_ADDR_BLOCK_DWORDS)?;
            let next = pos
                .checked_add(IDE_SEL_BLOCK_FIXED_DWORDS)?
                .checked_add(n)?;
            if i == index {
                let a0 = pos
                    .checked_add(IDE_SEL_BLOCK_FIXED_DWORDS)?
                    .checked_mul(4)?;
                return Some(SelectiveBlock {
                    cap,
                    ctl: dword(self.bytes, pos.checked_add(1)?)?,
                    sts: dword(self.bytes, pos.checked_add(2)?)?,
                    rid1: dword(self.bytes, pos.checked_add(3)?)?,
                    rid2: dword(self.bytes, pos.checked_add(4)?)?,
                    addr: self.bytes.get(a0..next.checked_mul(4)?)?,
                });
            }
            pos = next;
            i = i.checked_add(1)?;
        }
    }
}
