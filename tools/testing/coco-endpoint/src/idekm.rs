//! The endpoint's IDE_KM responder (PCIe r6.x sec 6.33.3): the device's IDE key storage.
//!
//! Keys are kept per stream ID × key set (K0/K1) × (direction, sub-stream) pair, with the key
//! sets in the go state per stream and pair. As in IDE, where each TLP's prefix names its key
//! set, a receiving (RX) pair may have both key sets in go at once (a key refresh puts the new
//! set in go on the receivers before the transmitters switch to it), while a transmitting (TX)
//! pair uses exactly one. Everything arrives inside the SPDM session (see [`crate::platform`]
//! for the dispatch):
//!
//! * QUERY (port 0 only; another port gets SPDM ERROR InvalidRequest) → QUERY_RESP with the IDE
//!   registers QEMU last pushed (PLATFORM_EVENT IDE_REGISTERS), else
//!   [`default_ide_capability`]; bus, device/function and segment are 0 (the device does not
//!   know its RID), max port index 0.
//! * KEY_PROG → KP_ACK: port other than 0 → status 2 (unsupported port index); a key for a new
//!   stream ID when as many stream IDs as the capability has selective streams already hold
//!   keys → status 3 (unsupported value); otherwise the key and IFV are stored, status 0.
//!   Reprogramming the key set in go replaces its key (it stays in go).
//! * K_SET_GO → K_GOSTOP_ACK: on an RX pair the key set joins the ones in go (both may be); on
//!   a TX pair it becomes the only one in go (the other one stays programmed, out of go). A
//!   key set that holds no key gets SPDM ERROR UnexpectedRequest, a port other than 0 SPDM
//!   ERROR InvalidRequest.
//! * K_SET_STOP → K_GOSTOP_ACK: that key set's key is erased (zeroised) and it leaves the go
//!   state; the other key set of the pair is untouched (still in go if it was).
//!
//! Keys are zeroised when erased, on FLR/reset and when the state is dropped; they are never
//! logged (logs show the first bytes of SHA-256(key || IFV)).
//!
//! Faults: `kp-ack-fail` (KP_ACK status 4, key not stored), `go-refused` (K_SET_GO answered
//! SPDM ERROR Unspecified, nothing goes), `wrong-stream-id` (KP_ACK and K_GOSTOP_ACK echo the
//! stream ID plus one; the keys are handled correctly), `ide-key-mismatch` (the key stored has
//! its first byte flipped), and for a key refresh: `refresh-kp-fail` (KEY_PROG of key set 1
//! refused with KP_ACK status 4) and `refresh-go-refused` (K_SET_GO of key set 1 for TX NPR
//! answered SPDM ERROR Unspecified); key set 0 works with both.

use std::collections::BTreeMap;
use std::fmt;

use coco_idekm::{
    encode_key_set_cmd, encode_kp_ack, encode_query_resp, kp_ack_status_name, object_name,
    pair_from_index, parse_message, Direction, IdeKmMessage, IdeRegs, KeySetCmd, KeySubStream,
    KpAck, PortInfo, SubStream, IDE_CAP_IDE_KM, IDE_CAP_SELECTIVE, IDE_CAP_SEL_NUM_SHIFT,
    IDE_CAP_TEE_LIMITED, IDE_KM_IFV_SIZE, IDE_KM_KEY_SIZE, IDE_KM_KP_ACK_SUCCESS,
    IDE_KM_KP_ACK_UNSPECIFIED, IDE_KM_KP_ACK_UNSUPPORTED_PORT, IDE_KM_KP_ACK_UNSUPPORTED_VALUE,
    IDE_KM_K_GOSTOP_ACK, IDE_KM_PAIRS, PCI_EXT_CAP_ID_IDE,
};
use coco_spdm::{
    SPDM_ERROR_INVALID_REQUEST, SPDM_ERROR_UNEXPECTED_REQUEST, SPDM_ERROR_UNSPECIFIED,
};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::Fault;

/// An SPDM ERROR to answer instead of an IDE_KM response: code, data, reason for the log.
pub type SpdmFailure = (u8, u8, String);

/// Number of selective streams of the default capability.
pub const DEFAULT_SELECTIVE_STREAMS: u32 = 2;

/// The IDE extended capability the endpoint reports when QEMU never pushed its registers,
/// and the one the project's QEMU models for the NVMe endpoint, as dwords from the extended
/// capability header on (header: ID 0x30, version 1, next 0): Selective IDE, IDE_KM,
/// TEE-limited streams, algorithm 0 (AES-GCM-256, 96-bit MAC), no Link IDE, 2 selective
/// streams with 1 address association block each, every control/status/association register
/// 0 (disabled, Insecure).
pub fn default_ide_capability() -> Vec<u32> {
    let header = u32::from(PCI_EXT_CAP_ID_IDE) | (1 << 16);
    let cap = IDE_CAP_SELECTIVE
        | IDE_CAP_IDE_KM
        | IDE_CAP_TEE_LIMITED
        | ((DEFAULT_SELECTIVE_STREAMS - 1) << IDE_CAP_SEL_NUM_SHIFT);
    let mut regs = vec![header, cap, 0];
    for _ in 0..DEFAULT_SELECTIVE_STREAMS {
        // Capability (1 address association block), control, status, RID 1, RID 2, address
        // association 1-3.
        regs.extend([1, 0, 0, 0, 0, 0, 0, 0]);
    }
    regs
}

/// The deterministic key of the `--ide-test-keys` fixture for a stream, direction (the
/// endpoint's) and sub-stream: key = SHA-256("coco-ide-test" || stream || dir || substream),
/// IFV = the first 8 bytes of SHA-256("coco-ide-test" || stream || dir || substream || "ifv"),
/// where stream, dir (0 RX, 1 TX) and substream (0 PR, 1 NPR, 2 CPL) are one byte each.
pub fn test_key(
    stream_id: u8,
    direction: Direction,
    sub_stream: SubStream,
) -> (
    Zeroizing<[u8; IDE_KM_KEY_SIZE]>,
    Zeroizing<[u8; IDE_KM_IFV_SIZE]>,
) {
    let mut seed = b"coco-ide-test".to_vec();
    seed.extend([stream_id, direction.index(), sub_stream.index()]);
    let key: [u8; 32] = Sha256::digest(&seed).into();
    seed.extend_from_slice(b"ifv");
    let ifv_full: [u8; 32] = Sha256::digest(&seed).into();
    let mut ifv = [0u8; IDE_KM_IFV_SIZE];
    ifv.copy_from_slice(&ifv_full[..IDE_KM_IFV_SIZE]);
    (Zeroizing::new(key), Zeroizing::new(ifv))
}

/// One programmed key set of one (direction, sub-stream) pair: zeroised on drop.
#[derive(Clone)]
pub struct KeySlot {
    key: Zeroizing<[u8; IDE_KM_KEY_SIZE]>,
    ifv: Zeroizing<[u8; IDE_KM_IFV_SIZE]>,
}

impl KeySlot {
    /// SHA-256 over key || IFV (what PLATFORM_IDE_KEYS reports).
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(&self.key[..]);
        h.update(&self.ifv[..]);
        h.finalize().into()
    }
}

impl fmt::Debug for KeySlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeySlot(digest {})", short(&self.digest()))
    }
}

/// The first 4 bytes of a digest in hex, for logs.
fn short(digest: &[u8]) -> String {
    digest.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// The keys of one stream ID.
#[derive(Debug, Clone, Default)]
pub struct StreamKeys {
    /// Per pair (RX-PR .. TX-CPL), per key set.
    slots: [[Option<KeySlot>; 2]; IDE_KM_PAIRS],
    /// Per pair, bit k: key set k is in go (an RX pair may have both, a TX pair one at most).
    go: [u8; IDE_KM_PAIRS],
}

impl StreamKeys {
    fn is_empty(&self) -> bool {
        self.slots.iter().flatten().all(Option::is_none)
    }

    /// Every pair has at least one key set in go.
    fn keyed(&self) -> bool {
        self.go.iter().all(|&g| g != 0)
    }

    /// The digest of key set `set` of `pair` if that key set is in go.
    fn go_digest(&self, pair: usize, set: u8) -> Option<[u8; 32]> {
        if self.go[pair] & (1 << set) == 0 {
            return None;
        }
        Some(self.slots[pair][usize::from(set)].as_ref()?.digest())
    }
}

/// "K0+K1", "K1" or "none": the key sets of a go mask, for logs.
fn go_name(go: u8) -> String {
    let sets: Vec<String> = (0..2)
        .filter(|k| go & (1 << k) != 0)
        .map(|k| format!("K{k}"))
        .collect();
    if sets.is_empty() {
        "none".into()
    } else {
        sets.join("+")
    }
}

/// The device's IDE state: keys and the IDE registers QEMU pushed.
#[derive(Debug, Clone, Default)]
pub struct IdeKm {
    streams: BTreeMap<u8, StreamKeys>,
    /// The IDE capability (from its header dword on) and its config-space offset, as QEMU
    /// pushed them.
    registers: Option<(u16, Vec<u32>)>,
}

/// Size of one pair's entry in the PLATFORM_IDE_KEYS reply: go mask, reserved, two digests.
pub const PLATFORM_IDE_KEYS_ENTRY_SIZE: usize = 2 + 2 * 32;
/// Size of the PLATFORM_IDE_KEYS reply.
pub const PLATFORM_IDE_KEYS_REPLY_SIZE: usize = 2 + IDE_KM_PAIRS * PLATFORM_IDE_KEYS_ENTRY_SIZE;

impl IdeKm {
    /// The IDE capability dwords from its header on: pushed by QEMU, else the default.
    pub fn capability(&self) -> Vec<u32> {
        match &self.registers {
            Some((_, regs)) => regs.clone(),
            None => default_ide_capability(),
        }
    }

    /// Whether QEMU pushed the registers.
    pub fn registers_pushed(&self) -> bool {
        self.registers.is_some()
    }

    /// Stores the registers QEMU pushed (PLATFORM_EVENT IDE_REGISTERS).
    pub fn set_registers(&mut self, cap_offset: u16, dwords: Vec<u32>) {
        self.registers = Some((cap_offset, dwords));
    }

    /// The registers from the IDE Capability register on (what QUERY_RESP carries).
    fn query_registers(&self) -> Vec<u32> {
        self.capability().into_iter().skip(1).collect()
    }

    /// Number of selective streams of the capability (at least 1).
    fn selective_streams(&self) -> usize {
        let bytes: Vec<u8> = self
            .query_registers()
            .iter()
            .flat_map(|r| r.to_le_bytes())
            .collect();
        IdeRegs::parse(&bytes)
            .map(|r| r.num_selective())
            .unwrap_or(DEFAULT_SELECTIVE_STREAMS as usize)
            .max(1)
    }

    /// Whether a selective stream block with `stream_id` is enabled, per the registers QEMU
    /// pushed; `None` without pushed registers (or when they do not parse).
    pub fn stream_enabled(&self, stream_id: u8) -> Option<bool> {
        self.registers.as_ref()?;
        let bytes: Vec<u8> = self
            .query_registers()
            .iter()
            .flat_map(|r| r.to_le_bytes())
            .collect();
        let regs = IdeRegs::parse(&bytes).ok()?;
        Some(
            (0..regs.num_selective())
                .filter_map(|i| regs.selective(i))
                .any(|b| b.enabled() && b.stream_id() == stream_id),
        )
    }

    /// Whether `stream_id` is keyed: each of the six (direction, sub-stream) pairs has at least
    /// one key set in go.
    pub fn keyed(&self, stream_id: u8) -> bool {
        self.streams.get(&stream_id).is_some_and(StreamKeys::keyed)
    }

    /// The key sets in go for `stream_id` and a pair: bit k set when key set k is.
    pub fn go_sets(&self, stream_id: u8, direction: Direction, sub: SubStream) -> u8 {
        let pair = coco_idekm::pair_index(direction, sub);
        self.streams.get(&stream_id).map_or(0, |s| s.go[pair])
    }

    /// The stream IDs that hold keys.
    pub fn streams(&self) -> Vec<u8> {
        self.streams.keys().copied().collect()
    }

    /// Erases every key (FLR, reset).
    pub fn clear_all(&mut self) {
        self.streams.clear();
    }

    /// Erases the keys of one stream (its block was disabled). Returns whether it had any.
    pub fn clear_stream(&mut self, stream_id: u8) -> bool {
        self.streams.remove(&stream_id).is_some()
    }

    /// Programs the `--ide-test-keys` fixture: K0 keys ([`test_key`]) for the six pairs of
    /// `stream_id`, in go.
    pub fn program_test_keys(&mut self, stream_id: u8) {
        let s = self.streams.entry(stream_id).or_default();
        for pair in 0..IDE_KM_PAIRS {
            let Some((dir, sub)) = pair_from_index(pair) else {
                continue;
            };
            let (key, ifv) = test_key(stream_id, dir, sub);
            s.slots[pair][0] = Some(KeySlot { key, ifv });
            s.go[pair] = 1;
        }
    }

    /// The PLATFORM_IDE_KEYS reply for `stream_id` (see Documentation/coco/tee-io-platform.rst).
    pub fn platform_keys(&self, stream_id: u8) -> Vec<u8> {
        let mut out = Vec::with_capacity(PLATFORM_IDE_KEYS_REPLY_SIZE);
        out.push(stream_id);
        out.push(u8::from(self.keyed(stream_id)));
        let stream = self.streams.get(&stream_id);
        for pair in 0..IDE_KM_PAIRS {
            // A key set in go always holds a key (GO needs one, STOP takes both away).
            out.extend([stream.map_or(0, |s| s.go[pair]), 0]);
            for set in 0..2 {
                let digest = stream.and_then(|s| s.go_digest(pair, set));
                out.extend_from_slice(&digest.unwrap_or([0; 32]));
            }
        }
        out
    }

    /// The digest of key set `set` for `stream_id` and a pair when that key set is in go (for
    /// logs and tests).
    pub fn go_digest(
        &self,
        stream_id: u8,
        direction: Direction,
        sub: SubStream,
        set: u8,
    ) -> Option<[u8; 32]> {
        let pair = coco_idekm::pair_index(direction, sub);
        self.streams.get(&stream_id)?.go_digest(pair, set)
    }

    /// Handles one IDE_KM request (the message after the protocol ID byte); returns the
    /// IDE_KM response, or the SPDM ERROR to answer instead.
    pub fn handle(
        &mut self,
        msg: &[u8],
        fault: Fault,
        log: &mut Vec<String>,
    ) -> Result<Vec<u8>, SpdmFailure> {
        let parsed = parse_message(msg).map_err(|e| {
            (
                SPDM_ERROR_INVALID_REQUEST,
                0,
                format!(
                    "malformed IDE_KM {} ({} bytes): {e}",
                    msg.first().map_or("message", |&o| object_name(o)),
                    msg.len()
                ),
            )
        })?;
        let echo = |stream_id: u8| {
            if fault == Fault::WrongStreamId {
                stream_id.wrapping_add(1)
            } else {
                stream_id
            }
        };
        let mut out = vec![0u8; 512];
        let n = match parsed {
            IdeKmMessage::Query(q) => {
                if q.port_index != 0 {
                    return Err((
                        SPDM_ERROR_INVALID_REQUEST,
                        0,
                        format!(
                            "IDE_KM QUERY for port {}, the endpoint has port 0 only",
                            q.port_index
                        ),
                    ));
                }
                let regs = self.query_registers();
                log.push(format!(
                    "IDE_KM QUERY port 0 -> QUERY_RESP ({} register dwords, {})",
                    regs.len(),
                    if self.registers.is_some() {
                        "as QEMU pushed them"
                    } else {
                        "built-in default capability"
                    }
                ));
                out.resize(7 + 4 * regs.len(), 0);
                encode_query_resp(&PortInfo::default(), &regs, &mut out)
            }
            IdeKmMessage::KeyProg(mut k) => {
                let status = if k.port_index != 0 {
                    IDE_KM_KP_ACK_UNSUPPORTED_PORT
                } else if fault == Fault::KpAckFail {
                    log.push("fault kp-ack-fail: key not stored".into());
                    IDE_KM_KP_ACK_UNSPECIFIED
                } else if fault == Fault::RefreshKpFail && k.sub.key_set() == 1 {
                    log.push("fault refresh-kp-fail: key set 1 not stored".into());
                    IDE_KM_KP_ACK_UNSPECIFIED
                } else if !self.streams.contains_key(&k.stream_id)
                    && self.streams.len() >= self.selective_streams()
                {
                    IDE_KM_KP_ACK_UNSUPPORTED_VALUE
                } else {
                    let mut key = Zeroizing::new(k.key);
                    if fault == Fault::IdeKeyMismatch {
                        key[0] ^= 0xFF;
                        log.push("fault ide-key-mismatch: the key stored differs".into());
                    }
                    let slot = KeySlot {
                        key,
                        ifv: Zeroizing::new(k.ifv),
                    };
                    let digest = slot.digest();
                    let s = self.streams.entry(k.stream_id).or_default();
                    s.slots[k.sub.pair_index()][usize::from(k.sub.key_set())] = Some(slot);
                    log.push(format!(
                        "IDE_KM KEY_PROG stream {} {} stored (key digest {}...)",
                        k.stream_id,
                        sub_name(k.sub),
                        short(&digest)
                    ));
                    IDE_KM_KP_ACK_SUCCESS
                };
                k.wipe();
                if status != IDE_KM_KP_ACK_SUCCESS {
                    log.push(format!(
                        "IDE_KM KEY_PROG stream {} {} refused: {}",
                        k.stream_id,
                        sub_name(k.sub),
                        kp_ack_status_name(status)
                    ));
                }
                let ack = KpAck {
                    stream_id: echo(k.stream_id),
                    status,
                    sub: k.sub,
                    port_index: k.port_index,
                };
                encode_kp_ack(&ack, &mut out)
            }
            IdeKmMessage::KSetGo(c) => {
                if c.port_index != 0 {
                    return Err((
                        SPDM_ERROR_INVALID_REQUEST,
                        0,
                        format!("IDE_KM K_SET_GO for port {}", c.port_index),
                    ));
                }
                // TX NPR is pair 4 (RX-PR .. TX-CPL).
                if fault == Fault::GoRefused
                    || (fault == Fault::RefreshGoRefused
                        && c.sub.key_set() == 1
                        && c.sub.pair_index() == 4)
                {
                    return Err((
                        SPDM_ERROR_UNSPECIFIED,
                        0,
                        format!(
                            "fault {}: K_SET_GO stream {} {} refused",
                            fault.name(),
                            c.stream_id,
                            sub_name(c.sub)
                        ),
                    ));
                }
                let pair = c.sub.pair_index();
                let set = c.sub.key_set();
                let Some(s) = self
                    .streams
                    .get_mut(&c.stream_id)
                    .filter(|s| s.slots[pair][usize::from(set)].is_some())
                else {
                    return Err((
                        SPDM_ERROR_UNEXPECTED_REQUEST,
                        0,
                        format!(
                            "IDE_KM K_SET_GO stream {} {}: that key set holds no key",
                            c.stream_id,
                            sub_name(c.sub)
                        ),
                    ));
                };
                if c.sub.direction() == Direction::Tx {
                    // A transmitter uses one key set: it switches.
                    s.go[pair] = 1 << set;
                } else {
                    // A receiver takes the key set each TLP names: both may be in go.
                    s.go[pair] |= 1 << set;
                }
                log.push(format!(
                    "IDE_KM K_SET_GO stream {} {} -> K_GOSTOP_ACK (in go: {}){}",
                    c.stream_id,
                    sub_name(c.sub),
                    go_name(s.go[pair]),
                    if s.keyed() { ", every pair keyed" } else { "" }
                ));
                self.ack(c, echo(c.stream_id), &mut out)
            }
            IdeKmMessage::KSetStop(c) => {
                if c.port_index != 0 {
                    return Err((
                        SPDM_ERROR_INVALID_REQUEST,
                        0,
                        format!("IDE_KM K_SET_STOP for port {}", c.port_index),
                    ));
                }
                let pair = c.sub.pair_index();
                let set = c.sub.key_set();
                let mut go = 0;
                if let Some(s) = self.streams.get_mut(&c.stream_id) {
                    s.slots[pair][usize::from(set)] = None;
                    s.go[pair] &= !(1 << set);
                    go = s.go[pair];
                    if s.is_empty() {
                        self.streams.remove(&c.stream_id);
                    }
                }
                log.push(format!(
                    "IDE_KM K_SET_STOP stream {} {} -> K_GOSTOP_ACK (key erased, in go: {})",
                    c.stream_id,
                    sub_name(c.sub),
                    go_name(go)
                ));
                self.ack(c, echo(c.stream_id), &mut out)
            }
            other => {
                return Err((
                    SPDM_ERROR_INVALID_REQUEST,
                    0,
                    format!("IDE_KM {} is not a request", object_name(other.object_id())),
                ))
            }
        }
        .map_err(|e| (SPDM_ERROR_UNSPECIFIED, 0, format!("cannot encode: {e}")))?;
        out.truncate(n);
        Ok(out)
    }

    fn ack(
        &self,
        c: KeySetCmd,
        stream_id: u8,
        out: &mut [u8],
    ) -> Result<usize, coco_idekm::IdeKmError> {
        let ack = KeySetCmd { stream_id, ..c };
        encode_key_set_cmd(IDE_KM_K_GOSTOP_ACK, &ack, out)
    }
}

/// "K0 RX PR" and the like.
pub fn sub_name(sub: KeySubStream) -> String {
    format!(
        "K{} {} {}",
        sub.key_set(),
        sub.direction().name(),
        sub.sub_stream().name()
    )
}
