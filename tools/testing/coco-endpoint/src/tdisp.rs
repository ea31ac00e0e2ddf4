//! The endpoint's TDISP responder (PCIe r6.x chapter 11): one TDI, the NVMe function.
//!
//! States CONFIG_UNLOCKED → CONFIG_LOCKED (LOCK_INTERFACE_REQUEST) → RUN
//! (START_INTERFACE_REQUEST) → CONFIG_UNLOCKED (STOP_INTERFACE_REQUEST, from any state; STOP in
//! CONFIG_UNLOCKED is answered too and changes nothing), and ERROR (a forbidden config write, a
//! BAR change, the default stream losing its keys (a pair left without any key set in go; a
//! refresh that stops the old key set while the new one is in go keeps them) or its block
//! disabled while CONFIG_LOCKED or RUN; only STOP leaves it). Every request must carry
//! TDISPVersion 0x10 (else ERROR VERSION_MISMATCH) and a function ID without reserved bits
//! 31:25 (else INVALID_INTERFACE); while locked, requests for another function ID than the one
//! locked get INVALID_INTERFACE.
//!
//! * GET_VERSION → VERSION [1.0]. GET_CAPABILITIES → dsm_caps 0, requests 0x81-0x87 supported
//!   (req_msg_supported[0] = 0xFE), lock flags NO_FW_UPDATE, SYSTEM_CACHE_LINE_SIZE and
//!   LOCK_MSIX, 52-bit addresses, one outstanding request.
//! * LOCK_INTERFACE_REQUEST, only in CONFIG_UNLOCKED (else INVALID_INTERFACE_STATE): flags
//!   outside 0x1F → INVALID_REQUEST, BIND_P2P or ALL_REQUEST_REDIRECT → UNSUPPORTED_REQUEST, an
//!   MMIO_REPORTING_OFFSET that is not 4 KiB aligned → INVALID_REQUEST. The device is TEE-IO:
//!   its default stream (DEFAULT_STREAM_ID) must hold a key set in go for all six (direction,
//!   sub-stream) pairs, and, when QEMU pushed the IDE registers, a selective stream block with
//!   that stream ID must be enabled; else INVALID_DEVICE_CONFIGURATION (error data 0). Then a
//!   fresh random nonce, the report frozen (from the BARs of the moment) and CONFIG_LOCKED.
//! * GET_DEVICE_INTERFACE_REPORT in CONFIG_LOCKED or RUN: up to [`MAX_PORTION`] bytes at the
//!   offset; length 0 or an offset beyond the report → INVALID_REQUEST.
//! * GET_DEVICE_INTERFACE_STATE: always.
//! * START_INTERFACE_REQUEST in CONFIG_LOCKED with the lock's nonce (constant-time compare;
//!   else INVALID_NONCE, state unchanged) → RUN; the nonce is then used up.
//! * BIND_P2P_STREAM, UNBIND_P2P_STREAM, SET_MMIO_ATTRIBUTE, VDM → UNSUPPORTED_REQUEST; other
//!   message types → INVALID_REQUEST (also for a malformed request).
//!
//! The report: interface_info NO_UPDATE_AFTER_LOCK (when locked with NO_FW_UPDATE) and
//! DMA_WITHOUT_PASID; MSI-X, LNR and TPH controls 0; one MMIO range per assigned memory BAR
//! (whole BAR, first_page = (base + MMIO_REPORTING_OFFSET) / 4096, range ID = BAR index,
//! attributes 0); [`DEVICE_SPECIFIC_INFO`] as device-specific information.
//!
//! Faults: `report-outside-bars` (the first range starts right after its BAR's end),
//! `report-bad-length` (mmio_range_count one more than the ranges present), `start-wrong-nonce`
//! (START accepts any nonce), `stuck-locked` (START and STOP are acknowledged but the TDI stays
//! CONFIG_LOCKED), `tdisp-error:CODE` (LOCK_INTERFACE_REQUEST answered ERROR CODE).

use coco_spdm::SPDM_ERROR_INVALID_REQUEST;
use coco_tdisp::{
    encode_interface_report, encode_response, error_name, message_name, nonce_eq, parse_request,
    Bar, Capabilities, ErrorRsp, InterfaceId, LockInterface, MmioRange, ReportInfo, ReportPortion,
    TdiState, TdispHeader, TdispRequest, TdispResponse, TDISP_ERROR_INVALID_DEVICE_CONFIGURATION,
    TDISP_ERROR_INVALID_INTERFACE, TDISP_ERROR_INVALID_INTERFACE_STATE, TDISP_ERROR_INVALID_NONCE,
    TDISP_ERROR_INVALID_REQUEST, TDISP_ERROR_UNSUPPORTED_REQUEST, TDISP_ERROR_VERSION_MISMATCH,
    TDISP_HEADER_SIZE, TDISP_INFO_DMA_WITHOUT_PASID, TDISP_INFO_NO_UPDATE_AFTER_LOCK,
    TDISP_LOCK_ALL_REQUEST_REDIRECT, TDISP_LOCK_BIND_P2P, TDISP_LOCK_FLAGS_DEFINED,
    TDISP_LOCK_MSIX, TDISP_LOCK_NO_FW_UPDATE, TDISP_LOCK_SYSTEM_CACHE_LINE_SIZE, TDISP_NONCE_SIZE,
    TDISP_PAGE_SIZE, TDISP_VERSION_1_0,
};
use rand::RngExt;
use zeroize::Zeroizing;

use crate::idekm::{IdeKm, SpdmFailure};
use crate::Fault;

/// Largest report portion sent in one DEVICE_INTERFACE_REPORT.
pub const MAX_PORTION: usize = 0x400;

/// LOCK_INTERFACE flags the device supports.
pub const LOCK_FLAGS_SUPPORTED: u16 =
    TDISP_LOCK_NO_FW_UPDATE | TDISP_LOCK_SYSTEM_CACHE_LINE_SIZE | TDISP_LOCK_MSIX;

/// The device-specific information at the end of the report.
pub const DEVICE_SPECIFIC_INFO: &[u8] = b"coco-endpoint emulated NVMe TDI, TDISP 1.0";

/// The TDI.
#[derive(Debug, Clone)]
pub struct Tdisp {
    state: TdiState,
    /// The interface locked, its lock parameters, nonce (until START) and frozen report.
    locked: Option<Locked>,
}

#[derive(Clone)]
struct Locked {
    interface: InterfaceId,
    params: LockInterface,
    nonce: Option<Zeroizing<[u8; TDISP_NONCE_SIZE]>>,
    report: Vec<u8>,
    bars: Vec<Bar>,
}

impl std::fmt::Debug for Locked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locked")
            .field("interface", &self.interface)
            .field("params", &self.params)
            .field("report_len", &self.report.len())
            .finish_non_exhaustive()
    }
}

impl Default for Tdisp {
    fn default() -> Self {
        Tdisp {
            state: TdiState::ConfigUnlocked,
            locked: None,
        }
    }
}

/// What the TDISP responder needs from the rest of the device.
pub struct DeviceView<'a> {
    /// The IDE keys (the TEE-IO check of LOCK_INTERFACE).
    pub ide: &'a IdeKm,
    /// The memory BARs now.
    pub bars: &'a [Bar],
    /// The endpoint's fault.
    pub fault: Fault,
}

/// Builds the interface report for `bars` and a lock with `params` (faults applied).
pub fn build_report(bars: &[Bar], params: &LockInterface, fault: Fault) -> Vec<u8> {
    let mut ranges: Vec<MmioRange> = bars
        .iter()
        .filter(|b| b.base != 0 && b.size != 0)
        .map(|b| MmioRange {
            first_page: b.base.wrapping_add(params.mmio_reporting_offset) / TDISP_PAGE_SIZE,
            number_of_pages: u32::try_from(b.size.div_ceil(TDISP_PAGE_SIZE)).unwrap_or(u32::MAX),
            attributes: 0,
            range_id: u16::from(b.index),
        })
        .collect();
    if fault == Fault::ReportOutsideBars {
        if let Some(r) = ranges.first_mut() {
            r.first_page = r.first_page.wrapping_add(u64::from(r.number_of_pages));
        }
    }
    let mut interface_info = TDISP_INFO_DMA_WITHOUT_PASID;
    if params.flags & TDISP_LOCK_NO_FW_UPDATE != 0 {
        interface_info |= TDISP_INFO_NO_UPDATE_AFTER_LOCK;
    }
    let info = ReportInfo {
        interface_info,
        ..Default::default()
    };
    let mut out = vec![0u8; 64 + 16 * ranges.len() + DEVICE_SPECIFIC_INFO.len()];
    let n = encode_interface_report(&info, &ranges, DEVICE_SPECIFIC_INFO, &mut out)
        .expect("the buffer holds the report");
    out.truncate(n);
    if fault == Fault::ReportBadLength {
        let count = u32::try_from(ranges.len() + 1).unwrap_or(u32::MAX);
        out[12..16].copy_from_slice(&count.to_le_bytes());
    }
    out
}

/// The MMIO ranges a report for `bars` and `params` has, for logs: "BAR0 pages 0xfe000+4".
fn describe_ranges(bars: &[Bar], params: &LockInterface) -> String {
    let ranges: Vec<String> = bars
        .iter()
        .filter(|b| b.base != 0 && b.size != 0)
        .map(|b| {
            format!(
                "BAR{} pages {:#x}+{}",
                b.index,
                b.base.wrapping_add(params.mmio_reporting_offset) / TDISP_PAGE_SIZE,
                b.size.div_ceil(TDISP_PAGE_SIZE)
            )
        })
        .collect();
    if ranges.is_empty() {
        "no MMIO range".into()
    } else {
        ranges.join(", ")
    }
}

impl Tdisp {
    /// The TDI state (PLATFORM_TDI_STATE).
    pub fn state(&self) -> TdiState {
        self.state
    }

    /// The default stream ID of the lock, while CONFIG_LOCKED or RUN.
    pub fn locked_stream(&self) -> Option<u8> {
        match self.state {
            TdiState::ConfigLocked | TdiState::Run => {
                self.locked.as_ref().map(|l| l.params.default_stream_id)
            }
            _ => None,
        }
    }

    /// The BARs frozen at LOCK, while CONFIG_LOCKED or RUN.
    pub fn locked_bars(&self) -> Option<&[Bar]> {
        match self.state {
            TdiState::ConfigLocked | TdiState::Run => self.locked.as_ref().map(|l| &l.bars[..]),
            _ => None,
        }
    }

    /// FLR / reset: back to CONFIG_UNLOCKED, the lock forgotten.
    pub fn reset(&mut self) {
        self.state = TdiState::ConfigUnlocked;
        self.locked = None;
    }

    /// Moves a CONFIG_LOCKED or RUN TDI to ERROR (logging why); returns whether it did.
    pub fn to_error(&mut self, reason: &str, log: &mut Vec<String>) -> bool {
        if matches!(self.state, TdiState::ConfigLocked | TdiState::Run) {
            log.push(format!("TDI {} -> ERROR: {reason}", self.state.name()));
            self.state = TdiState::Error;
            if let Some(l) = &mut self.locked {
                l.nonce = None;
            }
            true
        } else {
            false
        }
    }

    /// LOCK_INTERFACE: checks the request and the device's readiness for TEE-IO, then freezes
    /// the report and moves to CONFIG_LOCKED. Returns the nonce for START, or the TDISP error
    /// code and the reason.
    fn lock(
        &mut self,
        id: InterfaceId,
        params: LockInterface,
        dev: &DeviceView<'_>,
        log: &mut Vec<String>,
    ) -> Result<Zeroizing<[u8; TDISP_NONCE_SIZE]>, (u32, String)> {
        if self.state != TdiState::ConfigUnlocked {
            return Err((
                TDISP_ERROR_INVALID_INTERFACE_STATE,
                format!("TDI is {}", self.state.name()),
            ));
        }
        if params.flags & !TDISP_LOCK_FLAGS_DEFINED != 0 {
            return Err((
                TDISP_ERROR_INVALID_REQUEST,
                format!("reserved lock flags {:#06x}", params.flags),
            ));
        }
        if params.flags & (TDISP_LOCK_BIND_P2P | TDISP_LOCK_ALL_REQUEST_REDIRECT) != 0 {
            return Err((
                TDISP_ERROR_UNSUPPORTED_REQUEST,
                format!("lock flags {:#06x} not supported", params.flags),
            ));
        }
        if !params.mmio_reporting_offset.is_multiple_of(TDISP_PAGE_SIZE) {
            return Err((
                TDISP_ERROR_INVALID_REQUEST,
                format!(
                    "MMIO_REPORTING_OFFSET {:#x} not 4 KiB aligned",
                    params.mmio_reporting_offset
                ),
            ));
        }
        let stream = params.default_stream_id;
        if !dev.ide.keyed(stream) {
            return Err((
                TDISP_ERROR_INVALID_DEVICE_CONFIGURATION,
                format!(
                    "default stream {stream} has no key set in go for every sub-stream and direction (IDE keys must be programmed and started before LOCK_INTERFACE)"
                ),
            ));
        }
        if dev.ide.stream_enabled(stream) == Some(false) {
            return Err((
                TDISP_ERROR_INVALID_DEVICE_CONFIGURATION,
                format!("no enabled selective IDE stream block has stream ID {stream}"),
            ));
        }
        let nonce = Zeroizing::new(rand::rng().random::<[u8; TDISP_NONCE_SIZE]>());
        let report = build_report(dev.bars, &params, dev.fault);
        log.push(format!(
            "TDISP LOCK_INTERFACE flags {:#x} stream {stream} offset {:#x} -> LOCK_INTERFACE_RSP: CONFIG_UNLOCKED -> CONFIG_LOCKED, report of {} bytes frozen ({})",
            params.flags,
            params.mmio_reporting_offset,
            report.len(),
            describe_ranges(dev.bars, &params)
        ));
        self.locked = Some(Locked {
            interface: id,
            params,
            nonce: Some(nonce.clone()),
            report,
            bars: dev.bars.to_vec(),
        });
        self.state = TdiState::ConfigLocked;
        Ok(nonce)
    }

    /// The `--tdi-test-lock STREAM` fixture: locks the TDI (function ID 0, flags NO_FW_UPDATE,
    /// MMIO_REPORTING_OFFSET 0, default stream `stream`) when it is CONFIG_UNLOCKED and the
    /// device is ready for it: `stream` holds keys in go and, per the registers QEMU pushed, a
    /// selective IDE block with that stream ID is enabled. Returns whether it locked.
    pub fn test_lock(&mut self, stream: u8, dev: &DeviceView<'_>, log: &mut Vec<String>) -> bool {
        if self.state != TdiState::ConfigUnlocked
            || !dev.ide.keyed(stream)
            || dev.ide.stream_enabled(stream) != Some(true)
        {
            return false;
        }
        let params = LockInterface {
            flags: TDISP_LOCK_NO_FW_UPDATE,
            default_stream_id: stream,
            mmio_reporting_offset: 0,
            bind_p2p_addr_mask: 0,
        };
        log.push(format!(
            "--tdi-test-lock: stream {stream} is ready, locking"
        ));
        self.lock(InterfaceId::default(), params, dev, log).is_ok()
    }

    /// Handles one TDISP request (the message after the protocol ID byte); returns the TDISP
    /// response, or the SPDM ERROR to answer instead (a message too short for a TDISP header).
    pub fn handle(
        &mut self,
        msg: &[u8],
        dev: &DeviceView<'_>,
        log: &mut Vec<String>,
    ) -> Result<Vec<u8>, SpdmFailure> {
        let (header, _) = TdispHeader::parse(msg).map_err(|e| {
            (
                SPDM_ERROR_INVALID_REQUEST,
                0,
                format!("TDISP message of {} bytes: {e}", msg.len()),
            )
        })?;
        let id = header.interface_id;
        let name = message_name(header.message_type);
        let reply = |rsp: TdispResponse<'_>| {
            let mut out = vec![0u8; TDISP_HEADER_SIZE + MAX_PORTION + 64];
            let n = encode_response(TDISP_VERSION_1_0, id, &rsp, &mut out)
                .expect("TDISP responses fit the buffer");
            out.truncate(n);
            out
        };
        let error = |code: u32, reason: String, log: &mut Vec<String>| {
            log.push(format!(
                "TDISP {name}: {reason}: answering TDISP ERROR {}",
                error_name(code)
            ));
            reply(TdispResponse::Error(ErrorRsp {
                code,
                data: 0,
                ext: &[],
            }))
        };
        if header.version != TDISP_VERSION_1_0 {
            return Ok(error(
                TDISP_ERROR_VERSION_MISMATCH,
                format!("TDISPVersion {:#04x}", header.version),
                log,
            ));
        }
        if id.function_id & !InterfaceId::FUNCTION_ID_DEFINED != 0 {
            return Ok(error(
                TDISP_ERROR_INVALID_INTERFACE,
                format!("function ID {:#010x} has reserved bits set", id.function_id),
                log,
            ));
        }
        let req = match parse_request(msg) {
            Ok((_, req)) => req,
            Err(coco_tdisp::TdispError::UnknownCode)
                if (0x88..=0x8C).contains(&header.message_type) =>
            {
                return Ok(error(
                    TDISP_ERROR_UNSUPPORTED_REQUEST,
                    "not supported".into(),
                    log,
                ))
            }
            Err(e) => {
                return Ok(error(
                    TDISP_ERROR_INVALID_REQUEST,
                    format!("{e} ({} bytes)", msg.len()),
                    log,
                ))
            }
        };
        if let Some(l) = &self.locked {
            if self.state != TdiState::ConfigUnlocked && l.interface != id {
                return Ok(error(
                    TDISP_ERROR_INVALID_INTERFACE,
                    format!(
                        "function ID {:#010x}, the TDI is locked for {:#010x}",
                        id.function_id, l.interface.function_id
                    ),
                    log,
                ));
            }
        }
        let fault = dev.fault;
        Ok(match req {
            TdispRequest::GetVersion => {
                log.push("TDISP GET_VERSION -> VERSION 1.0".into());
                reply(TdispResponse::Version {
                    versions: &[TDISP_VERSION_1_0],
                })
            }
            TdispRequest::GetCapabilities { tsm_caps } => {
                let mut caps = Capabilities {
                    lock_flags_supported: LOCK_FLAGS_SUPPORTED,
                    dev_addr_width: 52,
                    num_req_this: 1,
                    num_req_all: 1,
                    ..Default::default()
                };
                for code in 0x81..=0x87 {
                    caps.set_supported(code);
                }
                log.push(format!(
                    "TDISP GET_CAPABILITIES (TSM caps {tsm_caps:#x}) -> CAPABILITIES"
                ));
                reply(TdispResponse::Capabilities(caps))
            }
            TdispRequest::LockInterface(params) => {
                if let Fault::TdispError(code) = fault {
                    return Ok(error(code, format!("fault {fault}"), log));
                }
                match self.lock(id, params, dev, log) {
                    Ok(nonce) => reply(TdispResponse::LockInterface { nonce: *nonce }),
                    Err((code, reason)) => error(code, reason, log),
                }
            }
            TdispRequest::GetReport { offset, length } => {
                let report = match (&self.locked, self.state) {
                    (Some(l), TdiState::ConfigLocked | TdiState::Run) => &l.report,
                    _ => {
                        return Ok(error(
                            TDISP_ERROR_INVALID_INTERFACE_STATE,
                            format!("TDI is {}", self.state.name()),
                            log,
                        ))
                    }
                };
                let offset = usize::from(offset);
                if length == 0 || offset > report.len() {
                    return Ok(error(
                        TDISP_ERROR_INVALID_REQUEST,
                        format!(
                            "offset {offset} length {length}, report of {} bytes",
                            report.len()
                        ),
                        log,
                    ));
                }
                let n = usize::from(length)
                    .min(report.len() - offset)
                    .min(MAX_PORTION);
                let remainder = report.len() - offset - n;
                log.push(format!(
                    "TDISP GET_DEVICE_INTERFACE_REPORT offset {offset} length {length} -> {n} bytes, {remainder} remaining"
                ));
                reply(TdispResponse::Report(ReportPortion {
                    portion: &report[offset..offset + n],
                    remainder_length: u16::try_from(remainder).unwrap_or(u16::MAX),
                }))
            }
            TdispRequest::GetState => {
                log.push(format!(
                    "TDISP GET_DEVICE_INTERFACE_STATE -> {}",
                    self.state.name()
                ));
                reply(TdispResponse::State(self.state))
            }
            TdispRequest::Start { nonce } => {
                if self.state != TdiState::ConfigLocked {
                    return Ok(error(
                        TDISP_ERROR_INVALID_INTERFACE_STATE,
                        format!("TDI is {}", self.state.name()),
                        log,
                    ));
                }
                let expected = self.locked.as_ref().and_then(|l| l.nonce.clone());
                let matches = expected.as_ref().is_some_and(|e| nonce_eq(e, &nonce));
                if !matches {
                    if fault != Fault::StartWrongNonce {
                        return Ok(error(
                            TDISP_ERROR_INVALID_NONCE,
                            "nonce differs from LOCK_INTERFACE_RSP's".into(),
                            log,
                        ));
                    }
                    log.push("fault start-wrong-nonce: wrong nonce accepted".into());
                }
                if fault == Fault::StuckLocked {
                    log.push(
                        "fault stuck-locked: START_INTERFACE acknowledged, TDI stays CONFIG_LOCKED"
                            .into(),
                    );
                } else {
                    if let Some(l) = &mut self.locked {
                        l.nonce = None;
                    }
                    self.state = TdiState::Run;
                    log.push(
                        "TDISP START_INTERFACE -> START_INTERFACE_RSP: CONFIG_LOCKED -> RUN".into(),
                    );
                }
                reply(TdispResponse::Start)
            }
            TdispRequest::Stop => {
                if fault == Fault::StuckLocked
                    && matches!(self.state, TdiState::ConfigLocked | TdiState::Run)
                {
                    self.state = TdiState::ConfigLocked;
                    log.push(
                        "fault stuck-locked: STOP_INTERFACE acknowledged, TDI stays CONFIG_LOCKED"
                            .into(),
                    );
                } else {
                    log.push(format!(
                        "TDISP STOP_INTERFACE -> STOP_INTERFACE_RSP: {} -> CONFIG_UNLOCKED",
                        self.state.name()
                    ));
                    self.reset();
                }
                reply(TdispResponse::Stop)
            }
        })
    }
}

/// The TDISP ERROR codes by fault name (`tdisp-error:NAME`), lowercase with hyphens.
pub fn error_code_by_name(name: &str) -> Option<u32> {
    coco_tdisp::TDISP_ERROR_CODES
        .iter()
        .find(|(_, n)| n.to_ascii_lowercase().replace('_', "-") == name)
        .map(|(c, _)| *c)
}

/// The fault name of a TDISP ERROR code: the lowercase name, or the number in hex.
pub fn error_fault_name(code: u32) -> String {
    coco_tdisp::TDISP_ERROR_CODES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or_else(
            || format!("{code:#x}"),
            |(_, n)| n.to_ascii_lowercase().replace('_', "-"),
        )
}
