//! The TEE-IO device behind the SPDM responder: its IDE keys ([`crate::idekm`]), its TDI
//! ([`crate::tdisp`]), the PCI-SIG vendor-defined message dispatch that reaches them, and the
//! side channel QEMU uses to share platform state with the device
//! (Documentation/coco/tee-io-platform.rst, the contract with the project's QEMU).
//!
//! Vendor-defined messages: a VENDOR_DEFINED_REQUEST inside the secure session with StandardID
//! 3 (PCI-SIG), Len 2, VendorID 0x0001 goes to IDE_KM (protocol 0) or TDISP (protocol 1); the
//! answer is a VENDOR_DEFINED_RESPONSE with the same protocol ID. A malformed wrapper gets SPDM
//! ERROR InvalidRequest, another standard, vendor or protocol SPDM ERROR UnsupportedRequest
//! (Param2 0xFE). Outside a session the responder answers SessionRequired (UnexpectedRequest at
//! 1.1).
//!
//! Side channel (socket commands, QEMU always the client, every request answered at once,
//! little-endian payloads):
//!
//! * `0xC0C00001` PLATFORM_IDE_KEYS `u8 stream` → the stream's key state: per (direction,
//!   sub-stream) pair, the key sets in go (both may be on an RX pair) and their SHA-256
//!   digests of key || IFV, never keys.
//! * `0xC0C00002` PLATFORM_EVENT `u8 event` + data → empty reply: FLR (1) and RESET (2) erase
//!   every key and return the TDI to CONFIG_UNLOCKED; CONFIG_WRITE (3) moves a CONFIG_LOCKED or
//!   RUN TDI to ERROR for a write to a BAR (0x10-0x27), the expansion ROM BAR (0x30-0x33) or a
//!   Command register value with Memory Space or Bus Master Enable clear; BARS (4) replaces the
//!   memory BARs the report is built from (a change of an assigned BAR while CONFIG_LOCKED or
//!   RUN moves the TDI to ERROR); IDE_REGISTERS (5) replaces the IDE capability QUERY_RESP
//!   returns; STREAM_DISABLED (6) erases that stream's keys.
//! * `0xC0C00003` PLATFORM_TDI_STATE → `u8 state`.
//!
//! A malformed side-channel request (wrong length, unknown event) is answered with UNKNOWN
//! (0xFFFF) and an empty payload, like an unknown command. After every IDE_KM message and
//! every event the device re-checks its TEE-IO invariant: a CONFIG_LOCKED or RUN TDI whose
//! default stream lost its keys (a pair left without any key set in go by K_SET_STOP, or
//! STREAM_DISABLED) or whose stream block QEMU reports disabled goes to ERROR. Stopping the old
//! key set of a refresh, while the new one is in go, keeps the TDI where it is.

use coco_spdm::vendor::{
    encode_pci_sig_vdm, parse_vendor_defined, PCI_PROTOCOL_IDE_KM, PCI_PROTOCOL_TDISP,
};
use coco_spdm::{
    SpdmVersion, SPDM_ERROR_INVALID_REQUEST, SPDM_ERROR_UNSPECIFIED,
    SPDM_ERROR_UNSUPPORTED_REQUEST, SPDM_VENDOR_DEFINED_REQUEST, SPDM_VENDOR_DEFINED_RESPONSE,
};
use coco_tdisp::Bar;

use crate::idekm::{IdeKm, SpdmFailure};
use crate::tdisp::{DeviceView, Tdisp};
use crate::Fault;

pub use crate::socket::{
    is_platform_command, PLATFORM_EVENT, PLATFORM_IDE_KEYS, PLATFORM_TDI_STATE,
};

/// PLATFORM_EVENT: function-level reset.
pub const EVENT_FLR: u8 = 1;
/// PLATFORM_EVENT: conventional reset.
pub const EVENT_RESET: u8 = 2;
/// PLATFORM_EVENT: a config write (`u16 offset, u8 size, u8 reserved, u32 value`).
pub const EVENT_CONFIG_WRITE: u8 = 3;
/// PLATFORM_EVENT: the memory BARs (`u8 count`, then `u8 bar, u8 flags, u16 rsvd, u64 base,
/// u64 size` each).
pub const EVENT_BARS: u8 = 4;
/// PLATFORM_EVENT: the IDE capability (`u16 cap_offset`, then dwords from its header on).
pub const EVENT_IDE_REGISTERS: u8 = 5;
/// PLATFORM_EVENT: a selective stream block was disabled (`u8 stream_id`).
pub const EVENT_STREAM_DISABLED: u8 = 6;

/// The memory BAR the report uses when QEMU never sent PLATFORM_EVENT BARS: BAR0, 64-bit,
/// 16 KiB at 0xFE00_0000 (QEMU's NVMe register BAR size).
pub const DEFAULT_BAR0: Bar = Bar {
    index: 0,
    base: 0xFE00_0000,
    size: 0x4000,
};

/// The TEE-IO side of the device (one per connection, like the SPDM state: QEMU's connection
/// lives as long as the device).
#[derive(Debug, Clone, Default)]
pub struct TeeIo {
    /// IDE keys and registers.
    pub ide: IdeKm,
    /// The TDI.
    pub tdisp: Tdisp,
    /// The memory BARs QEMU pushed (None: never).
    bars: Option<Vec<Bar>>,
    /// The `--tdi-test-lock` fixture's stream: lock the TDI as soon as that stream is ready.
    test_lock: Option<u8>,
}

impl TeeIo {
    /// The memory BARs: as QEMU pushed them, else [`DEFAULT_BAR0`].
    pub fn bars(&self) -> Vec<Bar> {
        self.bars.clone().unwrap_or_else(|| vec![DEFAULT_BAR0])
    }

    /// Enables the `--tdi-test-lock STREAM` fixture: `STREAM` gets the `--ide-test-keys`
    /// keys now, and after every platform event a CONFIG_UNLOCKED TDI is locked (as
    /// [`Tdisp::test_lock`] describes) once that stream's block is enabled. A test can then
    /// drive the TDISP effects of config writes, BAR moves and resets from the platform side
    /// alone, without a TDISP requester.
    pub fn set_test_lock(&mut self, stream: u8) {
        self.ide.program_test_keys(stream);
        self.test_lock = Some(stream);
    }

    /// Whether `msg` is a well-formed PCI-SIG VENDOR_DEFINED_REQUEST of the IDE_KM protocol.
    pub fn is_idekm_request(msg: &[u8]) -> bool {
        parse_vendor_defined(msg, SPDM_VENDOR_DEFINED_REQUEST)
            .ok()
            .and_then(|vd| vd.pci_sig_protocol().ok())
            .is_some_and(|(protocol, _)| protocol == PCI_PROTOCOL_IDE_KM)
    }

    /// Handles a VENDOR_DEFINED_REQUEST `msg` inside the session of version `version`;
    /// returns the VENDOR_DEFINED_RESPONSE, or the SPDM ERROR to answer.
    pub fn vendor_defined(
        &mut self,
        msg: &[u8],
        version: SpdmVersion,
        fault: Fault,
        log: &mut Vec<String>,
    ) -> Result<Vec<u8>, SpdmFailure> {
        let vd = parse_vendor_defined(msg, SPDM_VENDOR_DEFINED_REQUEST).map_err(|e| {
            (
                SPDM_ERROR_INVALID_REQUEST,
                0,
                format!("malformed VENDOR_DEFINED_REQUEST: {e}"),
            )
        })?;
        let (protocol, inner) = vd.pci_sig_protocol().map_err(|_| {
            (
                SPDM_ERROR_UNSUPPORTED_REQUEST,
                SPDM_VENDOR_DEFINED_REQUEST,
                format!(
                    "VENDOR_DEFINED_REQUEST for standard {} vendor {:02x?} with {} payload bytes",
                    vd.standard_id,
                    vd.vendor_id,
                    vd.payload.len()
                ),
            )
        })?;
        let rsp = match protocol {
            PCI_PROTOCOL_IDE_KM => {
                let r = self.ide.handle(inner, fault, log);
                self.enforce(log);
                r?
            }
            PCI_PROTOCOL_TDISP => {
                let bars = self.bars();
                let view = DeviceView {
                    ide: &self.ide,
                    bars: &bars,
                    fault,
                };
                self.tdisp.handle(inner, &view, log)?
            }
            other => {
                return Err((
                    SPDM_ERROR_UNSUPPORTED_REQUEST,
                    SPDM_VENDOR_DEFINED_REQUEST,
                    format!("PCI-SIG protocol {other} is not supported"),
                ))
            }
        };
        let mut out = vec![0u8; rsp.len() + 16];
        let n = encode_pci_sig_vdm(
            version,
            SPDM_VENDOR_DEFINED_RESPONSE,
            protocol,
            &rsp,
            &mut out,
        )
        .map_err(|e| (SPDM_ERROR_UNSPECIFIED, 0, format!("cannot encode: {e}")))?;
        out.truncate(n);
        Ok(out)
    }

    /// The TEE-IO invariant: a CONFIG_LOCKED or RUN TDI needs its default stream keyed (a key
    /// set in go on each of the six pairs; which one does not matter, so a key refresh keeps
    /// it) and (when QEMU reports the registers) its stream block enabled.
    fn enforce(&mut self, log: &mut Vec<String>) {
        let Some(stream) = self.tdisp.locked_stream() else {
            return;
        };
        if !self.ide.keyed(stream) {
            self.tdisp.to_error(
                &format!("default stream {stream} lost its keys (a pair has no key set in go)"),
                log,
            );
        } else if self.ide.stream_enabled(stream) == Some(false) {
            self.tdisp.to_error(
                &format!("default stream {stream}'s selective IDE block is disabled"),
                log,
            );
        }
    }

    /// Handles one side-channel command; returns the reply command and payload.
    pub fn platform_command(
        &mut self,
        command: u32,
        payload: &[u8],
        log: &mut Vec<String>,
    ) -> (u32, Vec<u8>) {
        let result = match command {
            PLATFORM_IDE_KEYS => match payload {
                [stream] => {
                    let reply = self.ide.platform_keys(*stream);
                    log.push(format!(
                        "PLATFORM_IDE_KEYS stream {stream}: {}",
                        if reply[1] & 1 != 0 {
                            "every pair has a key set in go"
                        } else {
                            "not every pair has a key set in go"
                        }
                    ));
                    Ok(reply)
                }
                _ => Err(format!(
                    "PLATFORM_IDE_KEYS with {} payload bytes, expected 1",
                    payload.len()
                )),
            },
            PLATFORM_EVENT => self.event(payload, log).map(|()| Vec::new()),
            PLATFORM_TDI_STATE => {
                let state = self.tdisp.state();
                log.push(format!("PLATFORM_TDI_STATE -> {}", state.name()));
                Ok(vec![state.as_u8()])
            }
            other => Err(format!("unknown side-channel command {other:#x}")),
        };
        match result {
            Ok(reply) => (command, reply),
            Err(reason) => {
                log.push(format!("{reason}: replying UNKNOWN"));
                (crate::socket::SOCKET_COMMAND_UNKNOWN, Vec::new())
            }
        }
    }

    /// Handles a PLATFORM_EVENT payload.
    pub fn event(&mut self, payload: &[u8], log: &mut Vec<String>) -> Result<(), String> {
        let (&event, data) = payload
            .split_first()
            .ok_or("PLATFORM_EVENT without an event byte")?;
        match event {
            EVENT_FLR | EVENT_RESET => {
                if !data.is_empty() {
                    return Err(format!(
                        "PLATFORM_EVENT {event} with {} data bytes",
                        data.len()
                    ));
                }
                let streams = self.ide.streams();
                self.ide.clear_all();
                let was = self.tdisp.state();
                self.tdisp.reset();
                log.push(format!(
                    "PLATFORM_EVENT {}: keys of streams {streams:?} erased, TDI {} -> CONFIG_UNLOCKED",
                    if event == EVENT_FLR { "FLR" } else { "RESET" },
                    was.name()
                ));
            }
            EVENT_CONFIG_WRITE => {
                let d: [u8; 8] = data.try_into().map_err(|_| {
                    format!("CONFIG_WRITE with {} data bytes, expected 8", data.len())
                })?;
                let offset = u16::from_le_bytes([d[0], d[1]]);
                let size = d[2];
                let value = u32::from_le_bytes([d[4], d[5], d[6], d[7]]);
                if !matches!(size, 1 | 2 | 4) {
                    return Err(format!("CONFIG_WRITE of size {size}"));
                }
                match forbidden_write(offset, size, value) {
                    Some(why) => {
                        if !self.tdisp.to_error(&format!("config write {why}"), log) {
                            log.push(format!(
                                "PLATFORM_EVENT CONFIG_WRITE {offset:#x}/{size} = {value:#x} ({why}): TDI {}, no effect",
                                self.tdisp.state().name()
                            ));
                        }
                    }
                    None => log.push(format!(
                        "PLATFORM_EVENT CONFIG_WRITE {offset:#x}/{size} = {value:#x}: allowed"
                    )),
                }
            }
            EVENT_BARS => {
                let (&count, rest) = data.split_first().ok_or("BARS without a count")?;
                if rest.len() != usize::from(count) * 20 {
                    return Err(format!(
                        "BARS with count {count} and {} bytes of entries",
                        rest.len()
                    ));
                }
                let bars: Vec<Bar> = rest
                    .chunks_exact(20)
                    .map(|e| Bar {
                        index: e[0],
                        base: u64::from_le_bytes(e[4..12].try_into().unwrap_or_default()),
                        size: u64::from_le_bytes(e[12..20].try_into().unwrap_or_default()),
                    })
                    .collect();
                log.push(format!(
                    "PLATFORM_EVENT BARS: {}",
                    bars.iter()
                        .map(|b| format!("BAR{} {:#x}+{:#x}", b.index, b.base, b.size))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                if let Some(locked) = self.tdisp.locked_bars() {
                    let assigned = |v: &[Bar]| {
                        let mut a: Vec<Bar> = v
                            .iter()
                            .copied()
                            .filter(|b| b.base != 0 && b.size != 0)
                            .collect();
                        a.sort_by_key(|b| b.index);
                        a
                    };
                    if assigned(locked) != assigned(&bars) {
                        self.tdisp
                            .to_error("BARs changed while the interface is locked", log);
                    }
                }
                self.bars = Some(bars);
            }
            EVENT_IDE_REGISTERS => {
                if data.len() < 2 + 3 * 4 || (data.len() - 2) % 4 != 0 {
                    return Err(format!("IDE_REGISTERS with {} data bytes", data.len()));
                }
                let cap_offset = u16::from_le_bytes([data[0], data[1]]);
                let dwords: Vec<u32> = data[2..]
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                log.push(format!(
                    "PLATFORM_EVENT IDE_REGISTERS at {cap_offset:#x}: {} dwords",
                    dwords.len()
                ));
                self.ide.set_registers(cap_offset, dwords);
            }
            EVENT_STREAM_DISABLED => {
                let [stream] = data else {
                    return Err(format!("STREAM_DISABLED with {} data bytes", data.len()));
                };
                let had = self.ide.clear_stream(*stream);
                log.push(format!(
                    "PLATFORM_EVENT STREAM_DISABLED {stream}: {}",
                    if had { "keys erased" } else { "no keys held" }
                ));
            }
            other => return Err(format!("unknown PLATFORM_EVENT {other}")),
        }
        self.enforce(log);
        if let Some(stream) = self.test_lock {
            let bars = self.bars();
            let view = DeviceView {
                ide: &self.ide,
                bars: &bars,
                fault: Fault::None,
            };
            self.tdisp.test_lock(stream, &view, log);
        }
        Ok(())
    }
}

/// Why a config write of `size` bytes at `offset` with `value` is forbidden while the TDI is
/// CONFIG_LOCKED or RUN, or `None` if it is allowed: any write touching a BAR (0x10-0x27) or the
/// expansion ROM BAR (0x30-0x33), or one that writes the Command register's low byte with
/// Memory Space Enable (bit 1) or Bus Master Enable (bit 2) clear. Writes beyond the type-0
/// header (Device Control, MSI-X) are allowed.
pub fn forbidden_write(offset: u16, size: u8, value: u32) -> Option<String> {
    let start = u32::from(offset);
    let end = start + u32::from(size);
    let touches = |lo: u32, hi: u32| start < hi && lo < end;
    if touches(0x10, 0x28) {
        return Some(format!("to a BAR ({offset:#x})"));
    }
    if touches(0x30, 0x34) {
        return Some("to the expansion ROM BAR".into());
    }
    if touches(0x04, 0x05) {
        let shift = 8 * (0x04 - start);
        let command = (value >> shift) & 0xFF;
        if command & 0x2 == 0 {
            return Some("clearing Memory Space Enable".into());
        }
        if command & 0x4 == 0 {
            return Some("clearing Bus Master Enable".into());
        }
    }
    None
}
