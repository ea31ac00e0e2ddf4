//! The firmware: SEV-TIO state and commands (sev-tio-platform.rst, "The firmware model").
//!
//! A command that talks to the device runs the requester ([`crate::requester`]) on a worker
//! thread. The worker's [`Link`] sends each SPDM message to the main loop, which writes it to
//! the host's request buffer and completes the command with SPDM_REQUEST; when the host issues
//! the same command buffer again, the main loop reads the RESP object and hands it to the
//! worker, which goes on. Root port key operations go the same way but are served at once.
//! The worker holds the command's whole SPDM state: a command the host abandons (by issuing
//! a different one) drops the channels, the worker sees [`Fail::Abandoned`] and ends, and it
//! is joined before the new command runs. Nothing else is shared, so every run is the same
//! sequence of exchanges.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

use coco_sevtio::*;

use crate::bdf;
use crate::guest::Guest;
use crate::memory::{buf_err, read, write, MemError, Region};
use crate::requester::{self, BindParams, Bound, ConnectParams, Evidence, Fail, Link, Session};
use crate::wire::{
    parse_command, read_msg, write_msg, Fatal, GuestDone, GuestReq, Platform, RootPortKey,
    SocketPlatform, COMMAND_SIZE, GUEST_SIZE, OP_COMMAND, OP_DONE, OP_GUEST, OP_GUEST_DONE,
};
use crate::{Fault, FaultSpec, Logger};
use std::net::TcpStream;

/// Request, response and scratch buffers: smallest and largest, bytes.
pub const SPDM_BUF_MIN: u32 = 0x1000;
/// Largest request, response and scratch buffer.
pub const SPDM_BUF_MAX: u32 = 0x4000;
/// Smallest output buffer.
pub const OUTPUT_MIN: u32 = 0x1000;
/// Largest output buffer.
pub const OUTPUT_MAX: u32 = 0x10000;
/// Device and TDI context size.
pub const CTX_SIZE: u32 = 0x1000;
/// `tio_crypto_alg`: AES-GCM-256.
pub const TIO_CRYPTO_ALG: u32 = 1;
/// What the model writes at the start of a device context page (then `u16 rid, u8 segment`).
pub const DEV_CTX_MAGIC: &[u8; 8] = b"cocopsp\0";
/// What the model writes at the start of a TDI context page (then `u32 function_id`).
pub const TDI_CTX_MAGIC: &[u8; 8] = b"cocotdi\0";

const PAGE: usize = 0x1000;

/// The TIO_STATUS page the model reports.
pub fn status_page(init_done: bool) -> TioStatusPage {
    TioStatusPage {
        tio_en: true,
        tio_init_done: init_done,
        spdm_req_size_min: SPDM_BUF_MIN,
        spdm_req_size_max: SPDM_BUF_MAX,
        spdm_scratch_size_min: SPDM_BUF_MIN,
        spdm_scratch_size_max: SPDM_BUF_MAX,
        spdm_out_size_min: OUTPUT_MIN,
        spdm_out_size_max: OUTPUT_MAX,
        spdm_rsp_size_min: SPDM_BUF_MIN,
        spdm_rsp_size_max: SPDM_BUF_MAX,
        devctx_size: CTX_SIZE,
        tdictx_size: CTX_SIZE,
        tio_crypto_alg: TIO_CRYPTO_ALG,
    }
}

/// A connected device's state.
#[derive(Debug)]
struct Conn {
    params: ConnectParams,
    version: u8,
    asym: u32,
    hash: u32,
    chain: Vec<u8>,
    /// `None` while a command runs with it, or once lost (an abandoned command).
    session: Option<Session>,
}

/// A bound TDI.
#[derive(Debug)]
struct TdiBound {
    report: Vec<u8>,
    /// TIO_TDI_BIND's guest fields: recorded only (the model has no guest).
    #[allow(dead_code)]
    guest_device_id: u16,
    #[allow(dead_code)]
    gctx_paddr: u64,
}

/// A TDI context.
#[derive(Debug)]
struct Tdi {
    ctx: u64,
    /// The INTERFACE_ID of the TDISP messages (function_id = the device's Requester ID).
    iface: coco_tdisp::InterfaceId,
    bound: Option<TdiBound>,
}

/// A device context.
#[derive(Debug)]
struct Device {
    ctx: u64,
    rid: u16,
    segment: u8,
    conn: Option<Conn>,
    tdi: Option<Tdi>,
}

/// Work for the worker thread.
enum Job {
    Connect(ConnectParams),
    Disconnect(ConnectParams, Session),
    Measurements(Session, [u8; 32], bool),
    TdiBind(Session, BindParams, u16, u64),
    TdiStatus(Session, coco_tdisp::InterfaceId, u64),
    TdiUnbind(Session, coco_tdisp::InterfaceId),
}

/// What a worker returns.
enum JobDone {
    Connect(Result<Session, Fail>),
    Disconnect(Result<(), Fail>, Option<Session>),
    Measurements(Result<Evidence, Fail>, Option<Session>),
    TdiBind(Result<Bound, Fail>, Option<Session>, u16, u64),
    TdiStatus(Result<coco_tdisp::TdiState, Fail>, Option<Session>, u64),
    TdiUnbind(Result<(), Fail>, Option<Session>),
}

enum ToHost {
    Spdm(SpdmDataType, Vec<u8>, String),
    RootPortKey(RootPortKey),
    Done(Box<JobDone>),
}

enum FromHost {
    Spdm(SpdmDataType, Vec<u8>),
    RootPortKey(u32),
}

/// The worker's end of the channels.
struct ChannelLink {
    tx: Sender<ToHost>,
    rx: Receiver<FromHost>,
}

impl Link for ChannelLink {
    fn exchange(
        &mut self,
        what: &str,
        ty: SpdmDataType,
        msg: &[u8],
    ) -> Result<(SpdmDataType, Vec<u8>), Fail> {
        self.tx
            .send(ToHost::Spdm(ty, msg.to_vec(), what.to_string()))
            .map_err(|_| Fail::Abandoned)?;
        match self.rx.recv() {
            Ok(FromHost::Spdm(t, m)) => Ok((t, m)),
            _ => Err(Fail::Abandoned),
        }
    }

    fn root_port_key(&mut self, req: RootPortKey) -> Result<u32, Fail> {
        self.tx
            .send(ToHost::RootPortKey(req))
            .map_err(|_| Fail::Abandoned)?;
        match self.rx.recv() {
            Ok(FromHost::RootPortKey(r)) => Ok(r),
            _ => Err(Fail::Abandoned),
        }
    }
}

/// A link for commands without SPDM (FORCE): root port keys straight to the platform.
struct DirectLink<'a> {
    plat: &'a mut dyn Platform,
    fatal: Option<Fatal>,
}

impl Link for DirectLink<'_> {
    fn exchange(
        &mut self,
        what: &str,
        _ty: SpdmDataType,
        _msg: &[u8],
    ) -> Result<(SpdmDataType, Vec<u8>), Fail> {
        Err(Fail::Device(format!("{what}: no SPDM in this command")))
    }

    fn root_port_key(&mut self, req: RootPortKey) -> Result<u32, Fail> {
        self.plat.root_port_key(&req).map_err(|f| {
            self.fatal = Some(f);
            Fail::Abandoned
        })
    }
}

/// A running worker. Dropping it closes the channels and joins the thread.
struct Worker {
    tx: Option<Sender<FromHost>>,
    rx: Receiver<ToHost>,
    handle: Option<JoinHandle<()>>,
}

impl Worker {
    fn spawn(job: Job) -> Worker {
        let (to_host, rx) = channel();
        let (tx, from_host) = channel();
        let handle = std::thread::spawn(move || {
            let mut link = ChannelLink {
                tx: to_host,
                rx: from_host,
            };
            let done = run_job(&mut link, job);
            let _ = link.tx.send(ToHost::Done(Box::new(done)));
        });
        Worker {
            tx: Some(tx),
            rx,
            handle: Some(handle),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn run_job(link: &mut dyn Link, job: Job) -> JobDone {
    match job {
        Job::Connect(p) => JobDone::Connect(requester::connect(link, &p)),
        Job::Disconnect(p, mut s) => {
            let r = requester::disconnect(link, &mut s, &p);
            JobDone::Disconnect(r, Some(s))
        }
        Job::Measurements(mut s, nonce, raw) => {
            let r = requester::measurements(link, &mut s, nonce, raw);
            let keep = !matches!(r, Err(Fail::Abandoned));
            JobDone::Measurements(r, keep.then_some(s))
        }
        Job::TdiBind(mut s, p, guest, gctx) => {
            let r = requester::bind_tdi(link, &mut s, &p);
            let keep = !matches!(r, Err(Fail::Abandoned));
            JobDone::TdiBind(r, keep.then_some(s), guest, gctx)
        }
        Job::TdiStatus(mut s, iface, paddr) => {
            let r = s.tdi_state(link, iface);
            let keep = !matches!(r, Err(Fail::Abandoned));
            JobDone::TdiStatus(r, keep.then_some(s), paddr)
        }
        Job::TdiUnbind(mut s, iface) => {
            let r = s.tdi_stop(link, iface);
            let keep = !matches!(r, Err(Fail::Abandoned));
            JobDone::TdiUnbind(r, keep.then_some(s))
        }
    }
}

/// A command waiting for the host to relay an SPDM message.
struct Pending {
    cmd: u16,
    addr: u64,
    bytes: Vec<u8>,
    spdm: SpdmCtrl,
    dev_ctx: u64,
    relays: u32,
    params: Option<ConnectParams>,
    worker: Worker,
}

/// How a command ended: its status and a note for the log.
struct Outcome {
    status: u16,
    note: String,
}

/// A relayed command as it was issued: what [`Psp::start`] keeps to recognise it reissued.
struct Run {
    cmd: u16,
    addr: u64,
    bytes: Vec<u8>,
    spdm: SpdmCtrl,
    dev_ctx: Sla,
}

fn done(status: u16, note: impl Into<String>) -> Result<Outcome, MemError> {
    Ok(Outcome {
        status,
        note: note.into(),
    })
}

fn parse_status(e: SevTioError) -> u16 {
    match e {
        SevTioError::TooShort
        | SevTioError::TrailingBytes
        | SevTioError::InvalidLength
        | SevTioError::BufferTooSmall => SEV_RET_INVALID_LEN,
        _ => SEV_RET_INVALID_PARAM,
    }
}

/// The firmware state of one QEMU connection.
pub struct Psp {
    log: Logger,
    faults: Vec<FaultSpec>,
    initialized: bool,
    devices: Vec<Device>,
    pending: Option<Pending>,
    guest: Guest,
}

impl Psp {
    /// A fresh PSP (TIO not initialized) with `faults`.
    pub fn new<F: Into<FaultSpec>>(faults: Vec<F>, log: Logger) -> Psp {
        Psp {
            log,
            faults: faults.into_iter().map(Into::into).collect(),
            initialized: false,
            devices: Vec::new(),
            pending: None,
            guest: Guest::default(),
        }
    }

    /// Assigns the functions with Requester IDs `rids` (segment 0) to the guest
    /// (`--guest-tdi`); forgets every earlier guest state.
    pub fn set_guest_tdis(&mut self, rids: &[u16]) {
        self.guest = Guest::new(rids);
    }

    /// The guest side's state (tests).
    pub fn guest_state(&self) -> &Guest {
        &self.guest
    }

    /// Runs one guest channel request (GUEST); returns GUEST_DONE. An `Err` means the socket
    /// protocol broke.
    pub fn guest(&mut self, plat: &mut dyn Platform, req: &GuestReq) -> Result<GuestDone, Fatal> {
        self.guest.handle(plat, req, &self.faults, &self.log)
    }

    /// Whether a command waits for a relay (tests).
    pub fn relay_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// How many device contexts exist (tests).
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// Whether fault `f` applies to the device with Requester ID `rid`.
    fn has(&self, f: Fault, rid: u16) -> bool {
        self.faults
            .iter()
            .any(|s| s.fault == f && s.device.is_none_or(|d| d == rid))
    }

    /// The status a `status:` fault gives command `cmd` on the device `rid` (`None`: a
    /// command before its device is known, where only faults on every device apply).
    fn status_fault(&self, cmd: u16, rid: Option<u16>) -> Option<u16> {
        self.faults.iter().find_map(|s| match s.fault {
            Fault::Status { cmd: c, status }
                if c == cmd && (s.device.is_none() || s.device == rid) =>
            {
                Some(status)
            }
            _ => None,
        })
    }

    /// Runs command `cmd` with the command buffer at `addr`; returns the status for DONE. An
    /// `Err` means the socket protocol broke (the model stops serving).
    pub fn command(&mut self, plat: &mut dyn Platform, cmd: u16, addr: u64) -> Result<u16, Fatal> {
        let name = command_name(cmd);
        let r = self.run(plat, cmd, addr);
        let (status, note) = match r {
            Ok(o) => (o.status, o.note),
            Err(MemError::Buf(b)) => (b.status, b.reason),
            Err(MemError::Fatal(f)) => {
                if self.pending.take().is_some() {
                    self.log
                        .line("relay abandoned: the platform connection broke");
                }
                self.log.line(&format!(
                    "{name} ({cmd:#x}) at {addr:#x}: platform failed: {f}"
                ));
                return Err(f);
            }
        };
        let sep = if note.is_empty() { "" } else { ": " };
        self.log.line(&format!(
            "{name} ({cmd:#x}) at {addr:#x} -> {} ({status:#x}){sep}{note}",
            status_name(status)
        ));
        Ok(status)
    }

    fn abandon(&mut self, why: &str) {
        if let Some(p) = self.pending.take() {
            self.log.line(&format!(
                "{} at {:#x} waiting for relay {} abandoned ({why}): its SPDM state is forgotten",
                command_name(p.cmd),
                p.addr,
                p.relays
            ));
            drop(p);
        }
    }

    fn run(&mut self, plat: &mut dyn Platform, cmd: u16, addr: u64) -> Result<Outcome, MemError> {
        if let Some(status) = self.status_fault(cmd, None) {
            return done(status, format!("fault status:{cmd:#x}={status:#x}"));
        }
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.cmd != cmd || p.addr != addr)
        {
            self.abandon("the host issued another command");
        }
        let size = match command_size(cmd) {
            Some(s) if cmd <= SEV_CMD_TIO_TDI_STATUS => s,
            _ => {
                self.abandon("the host issued another command");
                return done(SEV_RET_INVALID_COMMAND, "command not implemented");
            }
        };
        let bytes = read(plat, addr, size)?;
        if let Some(p) = &self.pending {
            if p.bytes == bytes {
                return self.resume(plat);
            }
            self.abandon("the host issued another command buffer");
        }
        let c = match Command::parse(cmd, &bytes) {
            Ok(c) => c,
            Err(e) => return done(parse_status(e), format!("command buffer: {e}")),
        };
        if !self.initialized && cmd != SEV_CMD_TIO_STATUS && cmd != SEV_CMD_TIO_INIT {
            return done(SEV_RET_INVALID_PLATFORM_STATE, "TIO_INIT has not run");
        }
        // A fault on one device: known from DEV_CREATE's Requester ID or the context.
        let rid = match c {
            Command::DevCreate { device_id, .. } => Some(device_id),
            _ => c
                .dev_ctx()
                .and_then(|ctx| self.device(ctx).ok())
                .map(|d| d.rid),
        };
        if let Some(status) = rid.and_then(|r| self.status_fault(cmd, Some(r))) {
            return done(
                status,
                format!("fault status:{cmd:#x}={status:#x} on this device"),
            );
        }
        match c {
            Command::TioStatus { status_paddr } => {
                let mut page = [0u8; TIO_STATUS_PAGE_SIZE];
                status_page(self.initialized)
                    .encode(&mut page)
                    .map_err(|e| buf_err(SEV_RET_INVALID_LEN, e.to_string()))?;
                write(plat, status_paddr, &page)?;
                done(SEV_RET_SUCCESS, "")
            }
            Command::TioInit => {
                if self.initialized {
                    return done(SEV_RET_INVALID_PLATFORM_STATE, "TIO_INIT already ran");
                }
                self.initialized = true;
                done(SEV_RET_SUCCESS, "")
            }
            Command::DevCreate {
                dev_ctx,
                device_id,
                root_port_id: _,
                segment,
            } => {
                if dev_ctx.page_type() != SlaPageType::Data
                    || dev_ctx.page_size() != SlaPageSize::Size4K
                {
                    return done(SEV_RET_INVALID_PARAM, "dev_ctx is not a 4 KiB data page");
                }
                if self
                    .devices
                    .iter()
                    .any(|d| d.rid == device_id && d.segment == segment)
                {
                    return done(
                        SEV_RET_IN_USE,
                        format!("device {} already has a context", bdf(segment, device_id)),
                    );
                }
                if self.holds_context(dev_ctx.address()) {
                    return done(SEV_RET_IN_USE, "dev_ctx page already holds a context");
                }
                let mut page = vec![0u8; PAGE];
                page.get_mut(..8)
                    .unwrap_or(&mut [])
                    .copy_from_slice(DEV_CTX_MAGIC);
                page.get_mut(8..10)
                    .unwrap_or(&mut [])
                    .copy_from_slice(&device_id.to_le_bytes());
                if let Some(b) = page.get_mut(10) {
                    *b = segment;
                }
                write(plat, dev_ctx.address(), &page)?;
                self.devices.push(Device {
                    ctx: dev_ctx.address(),
                    rid: device_id,
                    segment,
                    conn: None,
                    tdi: None,
                });
                done(
                    SEV_RET_SUCCESS,
                    format!("device {}", bdf(segment, device_id)),
                )
            }
            Command::DevReclaim { dev_ctx } => {
                let i = self.device_index(dev_ctx)?;
                let d = self.devices.get(i).ok_or_else(no_ctx)?;
                if d.conn.is_some() {
                    return done(SEV_RET_INVALID_DEV_STATE, "device is connected");
                }
                let note = format!(
                    "device {}{}",
                    bdf(d.segment, d.rid),
                    if d.tdi.is_some() {
                        " (its TDI context too)"
                    } else {
                        ""
                    }
                );
                self.devices.remove(i);
                done(SEV_RET_SUCCESS, note)
            }
            Command::DevStatus {
                dev_ctx,
                status_paddr,
            } => {
                let d = self.device(dev_ctx)?;
                let page = match &d.conn {
                    Some(c) => DevStatusPage {
                        connected: true,
                        cert_slot: c.params.cert_slot,
                        stream_id: c.params.stream_id,
                        spdm_version: c.version,
                        base_asym_algo: c.asym,
                        base_hash_algo: c.hash,
                    },
                    None => DevStatusPage::default(),
                };
                let mut b = [0u8; DEV_STATUS_PAGE_SIZE];
                page.encode(&mut b)
                    .map_err(|e| buf_err(SEV_RET_INVALID_LEN, e.to_string()))?;
                write(plat, status_paddr, &b)?;
                done(SEV_RET_SUCCESS, "")
            }
            Command::DevConnect {
                spdm,
                dev_ctx,
                tc_mask,
                cert_slot,
                ide_stream_id,
            } => {
                let d = self.device(dev_ctx)?;
                if d.conn.is_some() {
                    return done(SEV_RET_INVALID_DEV_STATE, "device already connected");
                }
                if tc_mask != 1 {
                    return done(
                        SEV_RET_INVALID_PARAM,
                        format!("tc_mask {tc_mask:#x}: only TC0 (1)"),
                    );
                }
                check_relay_buffers(&spdm)?;
                let [stream_id, ..] = ide_stream_id;
                let params = ConnectParams {
                    requester_id: d.rid,
                    segment: d.segment,
                    stream_id,
                    cert_slot,
                    bad_rp_key: self.has(Fault::BadRpKey, d.rid),
                    relay_forever: self.has(Fault::RelayForever, d.rid),
                    root_port: true,
                    base_hash: requester::HASHES_ALL,
                };
                self.start(plat, cmd, addr, bytes, spdm, dev_ctx, Job::Connect(params))
            }
            Command::DevDisconnect {
                force,
                spdm,
                dev_ctx,
            } => {
                let i = self.device_index(dev_ctx)?;
                let d = self.devices.get_mut(i).ok_or_else(no_ctx)?;
                let Some(conn) = d.conn.as_mut() else {
                    return done(SEV_RET_INVALID_DEV_STATE, "device not connected");
                };
                let tdi_bound = d.tdi.as_ref().is_some_and(|t| t.bound.is_some());
                if tdi_bound && !force {
                    return done(
                        SEV_RET_INVALID_TDI_STATE,
                        "the device's TDI is bound: unbind it first (or FORCE)",
                    );
                }
                if force {
                    let params = conn.params;
                    let mut link = DirectLink { plat, fatal: None };
                    let r = requester::stop_root_port(&mut link, &params);
                    if let Some(f) = link.fatal {
                        return Err(MemError::Fatal(f));
                    }
                    d.conn = None;
                    if let Some(t) = d.tdi.as_mut() {
                        t.bound = None;
                    }
                    let unbound = if tdi_bound { ", TDI unbound" } else { "" };
                    let note = match r {
                        Ok(()) => {
                            format!("FORCE: root port keys stopped, session forgotten{unbound}")
                        }
                        Err(Fail::RootPort(e) | Fail::Device(e)) => {
                            format!("FORCE: session forgotten{unbound}; {e}")
                        }
                        Err(Fail::Abandoned) => format!("FORCE: session forgotten{unbound}"),
                    };
                    return done(SEV_RET_SUCCESS, note);
                }
                check_relay_buffers(&spdm)?;
                let params = conn.params;
                let i = self.device_index(dev_ctx)?;
                let run = Run {
                    cmd,
                    addr,
                    bytes,
                    spdm,
                    dev_ctx,
                };
                self.start_in_session(plat, run, i, ": disconnect with FORCE", |s| {
                    Job::Disconnect(params, s)
                })
            }
            Command::DevCertificates { spdm, dev_ctx } => {
                let d = self.device(dev_ctx)?;
                let Some(conn) = &d.conn else {
                    return done(SEV_RET_INVALID_DEV_STATE, "device not connected");
                };
                let chain = conn.chain.clone();
                let rid = d.rid;
                self.write_output(plat, spdm.output, &chain, "certificate chain", rid)
            }
            Command::DevMeasurements {
                raw_bitstream,
                spdm,
                dev_ctx,
                nonce,
            } => {
                let i = self.device_index(dev_ctx)?;
                let d = self.devices.get(i).ok_or_else(no_ctx)?;
                if d.conn.is_none() {
                    return done(SEV_RET_INVALID_DEV_STATE, "device not connected");
                }
                check_relay_buffers(&spdm)?;
                if spdm.output.is_null() {
                    return done(SEV_RET_INVALID_PARAM, "no output buffer");
                }
                if self.has(Fault::ExpandForever, d.rid) {
                    return self.expand_forever(plat, spdm.output);
                }
                let run = Run {
                    cmd,
                    addr,
                    bytes,
                    spdm,
                    dev_ctx,
                };
                self.start_in_session(plat, run, i, "", |s| {
                    Job::Measurements(s, nonce, raw_bitstream)
                })
            }
            Command::TdiCreate {
                dev_ctx,
                tdi_ctx,
                interface_id,
            } => {
                let i = self.device_index(dev_ctx)?;
                if tdi_ctx.page_type() != SlaPageType::Data
                    || tdi_ctx.page_size() != SlaPageSize::Size4K
                {
                    return done(SEV_RET_INVALID_PARAM, "tdi_ctx is not a 4 KiB data page");
                }
                let d = self.devices.get(i).ok_or_else(no_ctx)?;
                if d.conn.is_none() {
                    return done(SEV_RET_INVALID_DEV_STATE, "device not connected");
                }
                if d.tdi.is_some() {
                    return done(SEV_RET_IN_USE, "the device already has a TDI context");
                }
                if interface_id.rid() != d.rid
                    || interface_id.segment().is_some_and(|s| s != d.segment)
                {
                    return done(
                        SEV_RET_INVALID_PARAM,
                        format!(
                            "interface_id {:#010x} is not the device {}",
                            interface_id.function_id,
                            bdf(d.segment, d.rid)
                        ),
                    );
                }
                if self.holds_context(tdi_ctx.address()) {
                    return done(SEV_RET_IN_USE, "tdi_ctx page already holds a context");
                }
                let iface = coco_tdisp::InterfaceId::from_rid(d.rid);
                let note = format!("TDI of {}", bdf(d.segment, d.rid));
                let mut page = vec![0u8; PAGE];
                page.get_mut(..8)
                    .unwrap_or(&mut [])
                    .copy_from_slice(TDI_CTX_MAGIC);
                page.get_mut(8..12)
                    .unwrap_or(&mut [])
                    .copy_from_slice(&iface.function_id.to_le_bytes());
                write(plat, tdi_ctx.address(), &page)?;
                let d = self.devices.get_mut(i).ok_or_else(no_ctx)?;
                d.tdi = Some(Tdi {
                    ctx: tdi_ctx.address(),
                    iface,
                    bound: None,
                });
                done(SEV_RET_SUCCESS, note)
            }
            Command::TdiReclaim { dev_ctx, tdi_ctx } => {
                let i = self.tdi_index(dev_ctx, tdi_ctx)?;
                let d = self.devices.get_mut(i).ok_or_else(no_ctx)?;
                if d.tdi.as_ref().is_some_and(|t| t.bound.is_some()) {
                    return done(SEV_RET_INVALID_TDI_STATE, "TDI is bound");
                }
                d.tdi = None;
                done(SEV_RET_SUCCESS, format!("TDI of {}", bdf(d.segment, d.rid)))
            }
            Command::TdiBind {
                spdm,
                dev_ctx,
                tdi_ctx,
                gctx_paddr,
                guest_device_id,
                lock_flags,
                run_flags,
            } => {
                let i = self.tdi_index(dev_ctx, tdi_ctx)?;
                let d = self.devices.get_mut(i).ok_or_else(no_ctx)?;
                let (Some(conn), Some(tdi)) = (d.conn.as_mut(), d.tdi.as_ref()) else {
                    return done(SEV_RET_INVALID_DEV_STATE, "device not connected");
                };
                if tdi.bound.is_some() {
                    return done(SEV_RET_INVALID_TDI_STATE, "TDI already bound");
                }
                check_relay_buffers(&spdm)?;
                let params = BindParams {
                    iface: tdi.iface,
                    lock_flags,
                    stream_id: conn.params.stream_id,
                    run: run_flags & TIO_TDI_BIND_RUN_FORCE != 0,
                };
                let run = Run {
                    cmd,
                    addr,
                    bytes,
                    spdm,
                    dev_ctx,
                };
                self.start_in_session(plat, run, i, "", |s| {
                    Job::TdiBind(s, params, guest_device_id, gctx_paddr)
                })
            }
            Command::TdiReport {
                spdm,
                dev_ctx,
                tdi_ctx,
                gctx_paddr: _,
            } => {
                let i = self.tdi_index(dev_ctx, tdi_ctx)?;
                let d = self.devices.get(i).ok_or_else(no_ctx)?;
                let Some(b) = d.tdi.as_ref().and_then(|t| t.bound.as_ref()) else {
                    return done(SEV_RET_INVALID_TDI_STATE, "TDI not bound");
                };
                let report = b.report.clone();
                let rid = d.rid;
                self.write_output(plat, spdm.output, &report, "interface report", rid)
            }
            Command::TdiStatus {
                spdm,
                dev_ctx,
                tdi_ctx,
                status_paddr,
            } => {
                let i = self.tdi_index(dev_ctx, tdi_ctx)?;
                let d = self.devices.get_mut(i).ok_or_else(no_ctx)?;
                let Some(tdi) = d.tdi.as_ref().filter(|t| t.bound.is_some()) else {
                    write_tdi_status(plat, status_paddr, TdiState::ConfigUnlocked)?;
                    return done(SEV_RET_SUCCESS, "CONFIG_UNLOCKED (not bound, no SPDM)");
                };
                let iface = tdi.iface;
                check_relay_buffers(&spdm)?;
                let run = Run {
                    cmd,
                    addr,
                    bytes,
                    spdm,
                    dev_ctx,
                };
                self.start_in_session(plat, run, i, "", |s| Job::TdiStatus(s, iface, status_paddr))
            }
            Command::TdiUnbind {
                force,
                spdm,
                dev_ctx,
                tdi_ctx,
                gctx_paddr: _,
            } => {
                let i = self.tdi_index(dev_ctx, tdi_ctx)?;
                let d = self.devices.get_mut(i).ok_or_else(no_ctx)?;
                let Some(tdi) = d.tdi.as_mut().filter(|t| t.bound.is_some()) else {
                    return done(SEV_RET_INVALID_TDI_STATE, "TDI not bound");
                };
                if force {
                    tdi.bound = None;
                    return done(SEV_RET_SUCCESS, "FORCE: TDI unbound without SPDM");
                }
                let iface = tdi.iface;
                check_relay_buffers(&spdm)?;
                let run = Run {
                    cmd,
                    addr,
                    bytes,
                    spdm,
                    dev_ctx,
                };
                self.start_in_session(plat, run, i, ": unbind with FORCE", |s| {
                    Job::TdiUnbind(s, iface)
                })
            }
            _ => done(SEV_RET_INVALID_COMMAND, "command not implemented"),
        }
    }

    /// Starts `job` with device `i`'s SPDM session (the job has it until it gives it back);
    /// SPDM_ERROR, `hint` added to the reason, when an abandoned command lost it.
    fn start_in_session(
        &mut self,
        plat: &mut dyn Platform,
        run: Run,
        i: usize,
        hint: &str,
        job: impl FnOnce(Session) -> Job,
    ) -> Result<Outcome, MemError> {
        let d = self.devices.get_mut(i).ok_or_else(no_ctx)?;
        let Some(session) = d.conn.as_mut().and_then(|c| c.session.take()) else {
            return done(
                SEV_RET_SPDM_ERROR,
                format!("no SPDM session (lost with an abandoned command){hint}"),
            );
        };
        let Run {
            cmd,
            addr,
            bytes,
            spdm,
            dev_ctx,
        } = run;
        self.start(plat, cmd, addr, bytes, spdm, dev_ctx, job(session))
    }

    /// Whether the page at `addr` holds a device or TDI context.
    fn holds_context(&self, addr: u64) -> bool {
        self.devices
            .iter()
            .any(|d| d.ctx == addr || d.tdi.as_ref().is_some_and(|t| t.ctx == addr))
    }

    /// The device whose TDI context is `tdi_ctx` (INVALID_DEV_CTX, INVALID_TDI_CTX).
    fn tdi_index(&self, dev_ctx: Sla, tdi_ctx: Sla) -> Result<usize, MemError> {
        let i = self.device_index(dev_ctx)?;
        let d = self.devices.get(i).ok_or_else(no_ctx)?;
        if d.tdi.as_ref().is_some_and(|t| t.ctx == tdi_ctx.address()) {
            Ok(i)
        } else {
            Err(buf_err(
                SEV_RET_INVALID_TDI_CTX,
                "no TDI context of this device at tdi_ctx",
            ))
        }
    }

    fn tdi_mut(&mut self, dev_ctx: u64) -> Option<(&mut Tdi, String)> {
        let d = self.devices.iter_mut().find(|x| x.ctx == dev_ctx)?;
        let name = bdf(d.segment, d.rid);
        d.tdi.as_mut().map(|t| (t, name))
    }

    fn device_index(&self, dev_ctx: Sla) -> Result<usize, MemError> {
        self.devices
            .iter()
            .position(|d| d.ctx == dev_ctx.address() && !dev_ctx.is_null())
            .ok_or_else(no_ctx)
    }

    fn device(&self, dev_ctx: Sla) -> Result<&Device, MemError> {
        let i = self.device_index(dev_ctx)?;
        self.devices.get(i).ok_or_else(no_ctx)
    }

    #[allow(clippy::too_many_arguments)]
    fn start(
        &mut self,
        plat: &mut dyn Platform,
        cmd: u16,
        addr: u64,
        bytes: Vec<u8>,
        spdm: SpdmCtrl,
        dev_ctx: Sla,
        job: Job,
    ) -> Result<Outcome, MemError> {
        let params = match &job {
            Job::Connect(p) => Some(*p),
            _ => None,
        };
        let p = Pending {
            params,
            cmd,
            addr,
            bytes,
            spdm,
            dev_ctx: dev_ctx.address(),
            relays: 0,
            worker: Worker::spawn(job),
        };
        self.drive(plat, p, None)
    }

    /// The host reissued the pending command: read the device's answer and go on.
    fn resume(&mut self, plat: &mut dyn Platform) -> Result<Outcome, MemError> {
        let Some(p) = self.pending.take() else {
            return done(SEV_RET_SPDM_ERROR, "no relay pending");
        };
        match read_response(plat, p.spdm.resp) {
            Ok((ty, msg)) => self.drive(plat, p, Some(FromHost::Spdm(ty, msg))),
            Err(MemError::Buf(b)) => {
                let why = format!(
                    "response buffer of relay {}: {} (SPDM state forgotten)",
                    p.relays, b.reason
                );
                self.give_back_session(p.dev_ctx, None);
                drop(p);
                done(SEV_RET_SPDM_ERROR, why)
            }
            Err(e) => Err(e),
        }
    }

    fn give_back_session(&mut self, dev_ctx: u64, s: Option<Session>) {
        if let Some(c) = self
            .devices
            .iter_mut()
            .find(|d| d.ctx == dev_ctx)
            .and_then(|d| d.conn.as_mut())
        {
            c.session = s;
        }
    }

    /// Runs the worker until it asks for a relay or ends.
    fn drive(
        &mut self,
        plat: &mut dyn Platform,
        mut p: Pending,
        reply: Option<FromHost>,
    ) -> Result<Outcome, MemError> {
        if let Some(r) = reply {
            if let Some(tx) = &p.worker.tx {
                let _ = tx.send(r);
            }
        }
        loop {
            match p.worker.rx.recv() {
                Ok(ToHost::Spdm(ty, msg, what)) => {
                    write_request(plat, p.spdm.req, ty, &msg)?;
                    p.relays = p.relays.saturating_add(1);
                    let note = format!(
                        "relay {}: {what} ({}, {} bytes)",
                        p.relays,
                        if ty == SpdmDataType::SecuredSpdm {
                            "secured"
                        } else {
                            "SPDM"
                        },
                        msg.len()
                    );
                    self.pending = Some(p);
                    return done(SEV_RET_SPDM_REQUEST, note);
                }
                Ok(ToHost::RootPortKey(req)) => {
                    let r = plat.root_port_key(&req)?;
                    if let Some(tx) = &p.worker.tx {
                        let _ = tx.send(FromHost::RootPortKey(r));
                    }
                }
                Ok(ToHost::Done(d)) => return self.finish(plat, p, *d),
                Err(_) => {
                    let dev_ctx = p.dev_ctx;
                    drop(p);
                    self.give_back_session(dev_ctx, None);
                    return done(SEV_RET_SPDM_ERROR, "requester ended without a result");
                }
            }
        }
    }

    fn finish(
        &mut self,
        plat: &mut dyn Platform,
        p: Pending,
        d: JobDone,
    ) -> Result<Outcome, MemError> {
        let dev_ctx = p.dev_ctx;
        let output = p.spdm.output;
        let params = p.params;
        drop(p);
        let fail = |f: Fail| match f {
            Fail::Device(r) => done(SEV_RET_SPDM_ERROR, r),
            Fail::RootPort(r) => done(SEV_RET_ERR_IN_DEV_CONN, r),
            Fail::Abandoned => done(SEV_RET_SPDM_ERROR, "abandoned"),
        };
        match d {
            JobDone::Connect(Ok(s)) => {
                let (Some(dev), Some(params)) =
                    (self.devices.iter_mut().find(|x| x.ctx == dev_ctx), params)
                else {
                    return done(SEV_RET_INVALID_DEV_CTX, "device context vanished");
                };
                let note = format!(
                    "device {} connected: SPDM {:#x}, slot {}, stream {}",
                    bdf(dev.segment, dev.rid),
                    s.version.as_byte(),
                    s.slot,
                    params.stream_id
                );
                dev.conn = Some(Conn {
                    params,
                    version: s.version.as_byte(),
                    asym: s.asym,
                    hash: s.hash,
                    chain: s.chain.clone(),
                    session: Some(s),
                });
                done(SEV_RET_SUCCESS, note)
            }
            JobDone::Connect(Err(f)) => fail(f),
            JobDone::Disconnect(Ok(()), _) => {
                if let Some(dev) = self.devices.iter_mut().find(|x| x.ctx == dev_ctx) {
                    dev.conn = None;
                }
                done(SEV_RET_SUCCESS, "session ended, keys stopped on both ends")
            }
            JobDone::Disconnect(Err(f), s) => {
                self.give_back_session(dev_ctx, s);
                fail(f)
            }
            JobDone::TdiBind(r, s, guest_device_id, gctx_paddr) => {
                self.give_back_session(dev_ctx, s);
                let b = match r {
                    Ok(b) => b,
                    Err(f) => return fail(annotate_unbound(f)),
                };
                let Some((tdi, name)) = self.tdi_mut(dev_ctx) else {
                    return done(SEV_RET_INVALID_TDI_CTX, "TDI context vanished");
                };
                let note = format!(
                    "TDI of {name} bound: {}, interface report of {} bytes, guest device {:#06x}",
                    b.state.name(),
                    b.report.len(),
                    guest_device_id
                );
                tdi.bound = Some(TdiBound {
                    report: b.report,
                    guest_device_id,
                    gctx_paddr,
                });
                done(SEV_RET_SUCCESS, note)
            }
            JobDone::TdiStatus(r, s, status_paddr) => {
                self.give_back_session(dev_ctx, s);
                match r {
                    Ok(state) => {
                        let st = TdiState::from_u8(state.as_u8()).unwrap_or(TdiState::Error);
                        write_tdi_status(plat, status_paddr, st)?;
                        done(SEV_RET_SUCCESS, state.name())
                    }
                    Err(f) => fail(f),
                }
            }
            JobDone::TdiUnbind(r, s) => {
                self.give_back_session(dev_ctx, s);
                match r {
                    Ok(()) => {
                        let Some((tdi, name)) = self.tdi_mut(dev_ctx) else {
                            return done(SEV_RET_INVALID_TDI_CTX, "TDI context vanished");
                        };
                        tdi.bound = None;
                        done(
                            SEV_RET_SUCCESS,
                            format!("TDI of {name} stopped and unbound"),
                        )
                    }
                    Err(f) => fail(f),
                }
            }
            JobDone::Measurements(r, s) => {
                self.give_back_session(dev_ctx, s);
                match r {
                    Ok(ev) => {
                        let rid = self
                            .devices
                            .iter()
                            .find(|x| x.ctx == dev_ctx)
                            .map_or(0, |d| d.rid);
                        self.write_output(plat, output, &ev.encode(), "measurement evidence", rid)
                    }
                    Err(f) => fail(f),
                }
            }
        }
    }

    fn expand_forever(
        &mut self,
        plat: &mut dyn Platform,
        output: Sla,
    ) -> Result<Outcome, MemError> {
        let region = Region::of(plat, output, usize::MAX)?;
        let cap = capacity(plat, &region)?;
        let want = cap.saturating_add(0x1000);
        region.write(plat, &want.to_le_bytes())?;
        done(
            SEV_RET_EXPAND_BUFFER_LENGTH_REQUEST,
            format!("fault expand-forever: output buffer of {cap} bytes, asking for {want}"),
        )
    }

    /// Writes `payload` into the output buffer, or asks the host for a larger one.
    fn write_output(
        &mut self,
        plat: &mut dyn Platform,
        output: Sla,
        payload: &[u8],
        what: &str,
        rid: u16,
    ) -> Result<Outcome, MemError> {
        if output.is_null() {
            return done(SEV_RET_INVALID_PARAM, "no output buffer");
        }
        if self.has(Fault::ExpandForever, rid) {
            return self.expand_forever(plat, output);
        }
        let region = Region::of(plat, output, usize::MAX)?;
        let cap = capacity(plat, &region)?;
        let payload_sz = align32(payload.len()).unwrap_or(usize::MAX);
        let needed = payload_sz.saturating_add(SLA_BUFFER_HEADER_SIZE);
        let needed32 = u32::try_from(needed).unwrap_or(u32::MAX);
        if needed32 > OUTPUT_MAX {
            return done(
                SEV_RET_RESPONSE_TOO_LARGE,
                format!("{what} needs {needed} bytes, above the {OUTPUT_MAX}-byte maximum"),
            );
        }
        if needed32 > cap {
            region.write(plat, &needed32.to_le_bytes())?;
            return done(
                SEV_RET_EXPAND_BUFFER_LENGTH_REQUEST,
                format!("{what} needs an output buffer of {needed} bytes, not {cap}"),
            );
        }
        let mut out = vec![0u8; needed];
        BufferHeader::new(cap, u32::try_from(payload_sz).unwrap_or(u32::MAX))
            .encode(&mut out)
            .map_err(|e| buf_err(SEV_RET_INVALID_LEN, format!("output buffer: {e}")))?;
        if let Some(dst) = out
            .get_mut(SLA_BUFFER_HEADER_SIZE..SLA_BUFFER_HEADER_SIZE.saturating_add(payload.len()))
        {
            dst.copy_from_slice(payload);
        }
        region.write(plat, &out)?;
        done(SEV_RET_SUCCESS, format!("{what}: {} bytes", payload.len()))
    }
}

/// A failed bind leaves the TDI unbound; the log says so.
fn annotate_unbound(f: Fail) -> Fail {
    match f {
        Fail::Device(r) => Fail::Device(format!("{r}; TDI left unbound")),
        other => other,
    }
}

/// Writes the TIO_TDI_STATUS page.
fn write_tdi_status(
    plat: &mut dyn Platform,
    status_paddr: u64,
    state: TdiState,
) -> Result<(), MemError> {
    let mut b = [0u8; TDI_STATUS_PAGE_SIZE];
    TdiStatusPage { state }
        .encode(&mut b)
        .map_err(|e| buf_err(SEV_RET_INVALID_LEN, e.to_string()))?;
    write(plat, status_paddr, &b)
}

fn no_ctx() -> MemError {
    buf_err(SEV_RET_INVALID_DEV_CTX, "no device context at dev_ctx")
}

fn check_relay_buffers(spdm: &SpdmCtrl) -> Result<(), MemError> {
    if spdm.req.is_null() || spdm.resp.is_null() {
        return Err(buf_err(
            SEV_RET_INVALID_PARAM,
            "request or response buffer missing",
        ));
    }
    Ok(())
}

/// The host's `capacity_sz` of the output buffer, checked against the buffer's pages.
fn capacity(plat: &mut dyn Platform, region: &Region) -> Result<u32, MemError> {
    let b = region.read(plat, 4)?;
    let cap = u32::from_le_bytes(b.get(..4).and_then(|s| s.try_into().ok()).unwrap_or([0; 4]));
    let c = usize::try_from(cap).unwrap_or(usize::MAX);
    if c < SLA_BUFFER_HEADER_SIZE || c > region.len() {
        return Err(buf_err(
            SEV_RET_INVALID_LEN,
            format!(
                "output capacity_sz {cap} does not fit its buffer ({} bytes)",
                region.len()
            ),
        ));
    }
    Ok(cap)
}

/// Writes a REQ object carrying `msg` into the request buffer.
fn write_request(
    plat: &mut dyn Platform,
    req: Sla,
    ty: SpdmDataType,
    msg: &[u8],
) -> Result<(), MemError> {
    let region = Region::of(plat, req, usize::try_from(SPDM_BUF_MAX).unwrap_or(PAGE))?;
    let cap = u32::try_from(region.len()).unwrap_or(SPDM_BUF_MAX);
    let total = msg
        .len()
        .saturating_add(DOBJ_HEADER_SIZE)
        .saturating_add(SLA_BUFFER_HEADER_SIZE)
        .saturating_add(SLA_BUFFER_PAYLOAD_ALIGN);
    let mut out = vec![0u8; total];
    let n = encode_spdm_buffer(cap, DataObjectId::Request, ty, msg, &mut out).map_err(|e| {
        buf_err(
            SEV_RET_INVALID_LEN,
            format!("request buffer of {cap} bytes: {e}"),
        )
    })?;
    region.write(plat, out.get(..n).unwrap_or(&[]))
}

/// Reads the RESP object the host wrote into the response buffer.
fn read_response(plat: &mut dyn Platform, resp: Sla) -> Result<(SpdmDataType, Vec<u8>), MemError> {
    let region = Region::of(plat, resp, usize::try_from(SPDM_BUF_MAX).unwrap_or(PAGE))?;
    let hdr = region.read(plat, SLA_BUFFER_HEADER_SIZE)?;
    let h = BufferHeader::parse(&hdr)
        .map_err(|e| buf_err(SEV_RET_INVALID_PARAM, format!("header: {e}")))?;
    let total = usize::try_from(h.payload_sz)
        .unwrap_or(usize::MAX)
        .saturating_add(SLA_BUFFER_HEADER_SIZE);
    let bytes = region.read(plat, total)?;
    let b = parse_spdm_buffer(&bytes).map_err(|e| buf_err(SEV_RET_INVALID_PARAM, e.to_string()))?;
    if b.object.id != DataObjectId::Response {
        return Err(buf_err(SEV_RET_INVALID_PARAM, "object is not RESP"));
    }
    Ok((b.object.data_type, b.body.to_vec()))
}

/// Serves one QEMU connection until it closes: each COMMAND runs on `psp` and ends with DONE,
/// each GUEST runs on `psp`'s guest side and ends with GUEST_DONE. Returns `Ok` on a clean
/// close, the reason otherwise.
pub fn serve(stream: TcpStream, psp: &mut Psp, log: &Logger) -> Result<(), Fatal> {
    let _ = stream.set_nodelay(true);
    let mut plat = SocketPlatform::new(stream);
    loop {
        let Some((op, payload)) = read_msg(plat.stream(), COMMAND_SIZE.max(GUEST_SIZE))? else {
            log.line("QEMU closed the connection");
            return Ok(());
        };
        match op {
            OP_COMMAND => {
                let (cmd, addr) = parse_command(&payload)
                    .ok_or_else(|| Fatal(format!("COMMAND of {} bytes", payload.len())))?;
                let status = psp.command(&mut plat, cmd, addr)?;
                write_msg(plat.stream(), OP_DONE, &u32::from(status).to_le_bytes())?;
            }
            OP_GUEST => {
                let req = GuestReq::parse(&payload)
                    .ok_or_else(|| Fatal(format!("GUEST of {} bytes", payload.len())))?;
                let done = psp.guest(&mut plat, &req)?;
                write_msg(plat.stream(), OP_GUEST_DONE, &done.encode())?;
            }
            _ => {
                return Err(Fatal(format!(
                    "QEMU sent op {op:#x} where COMMAND or GUEST was expected"
                )))
            }
        }
    }
}
