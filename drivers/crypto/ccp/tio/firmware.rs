// SPDX-License-Identifier: GPL-2.0

//! The SEV-TIO commands, over any [`Mailbox`]: the command buffer, the SLA buffers, and the
//! SPDM proxy loop (Documentation/coco/sev-tio-platform.rst).
//!
//! An SPDM-aware command is issued again and again until the firmware is done: on
//! SPDM_REQUEST the request object in the request buffer is relayed to the device (through
//! coco.ko, [`Relay`]) and its answer written to the response buffer as a RESP object; on
//! EXPAND_BUFFER_LENGTH_REQUEST the output buffer grows to what the firmware asks. Both loops
//! are bounded ([`MAX_RELAYS`], [`MAX_EXPANSIONS`]).

use crate::mailbox::{DmaBuf, Mailbox, MailboxError, PAGE};
use crate::sevtio::{
    self, encode_scatter_list, encode_spdm_buffer, parse_spdm_buffer, status_name, BufferHeader,
    Command, DataObjectId, DevStatusPage, Sla, SpdmCtrl, TioStatusPage, SEV_TIO_MAX_COMMAND_LENGTH,
    SLA_BUFFER_HEADER_SIZE,
};
use kernel::prelude::*;

/// Relays per command at most: a connect takes about 25 (VCA, certificates, the key
/// exchange, IDE_KM for six key pairs).
pub(crate) const MAX_RELAYS: usize = 64;
/// Output buffer expansions per command at most.
pub(crate) const MAX_EXPANSIONS: usize = 4;
/// The largest output buffer the host allocates.
pub(crate) const MAX_OUTPUT: usize = 64 * 1024;
/// Request, response and scratch buffers: one page each.
const SPDM_BUF: usize = PAGE;

/// Why a command failed: the reason for the log and sysfs, the errno, and the firmware's
/// status when it gave one.
#[derive(Clone, Copy)]
pub(crate) struct Failure {
    pub(crate) reason: &'static str,
    pub(crate) err: Error,
    pub(crate) status: Option<u16>,
}

impl Failure {
    pub(crate) const fn new(reason: &'static str, err: Error) -> Self {
        Self {
            reason,
            err,
            status: None,
        }
    }

    fn mailbox(e: MailboxError) -> Self {
        Self::new(e.reason(), e.errno())
    }

    /// A firmware status other than success, with the errno it maps to.
    fn status(status: u16) -> Self {
        let err = match status {
            sevtio::SEV_RET_INVALID_PLATFORM_STATE
            | sevtio::SEV_RET_INVALID_DEV_STATE
            | sevtio::SEV_RET_INVALID_TDI_STATE => EBUSY,
            sevtio::SEV_RET_IN_USE => EBUSY,
            sevtio::SEV_RET_SPDM_ERROR | sevtio::SEV_RET_BAD_SIGNATURE => EIO,
            sevtio::SEV_RET_INVALID_LEN
            | sevtio::SEV_RET_INVALID_PARAM
            | sevtio::SEV_RET_INCORRECT_BUFFER_LENGTH => EINVAL,
            sevtio::SEV_RET_INVALID_COMMAND | sevtio::SEV_RET_UNSUPPORTED => EOPNOTSUPP,
            sevtio::SEV_RET_RESOURCE_LIMIT => ENOSPC,
            _ => EIO,
        };
        Self {
            reason: "the PSP failed the command",
            err,
            status: Some(status),
        }
    }
}

impl kernel::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.status {
            Some(s) => write!(f, "{} (status {:#06x} {})", self.reason, s, status_name(s)),
            None => f.write_str(self.reason),
        }
    }
}

/// Relays the firmware's SPDM messages to the device (coco.ko's DOE relay).
pub(crate) trait Relay {
    /// Sends `req` as a data object of `object_type` (1 SPDM, 2 secured SPDM) and receives the
    /// answer into `rsp`; returns its length.
    fn exchange(&self, object_type: u8, req: &[u8], rsp: &mut [u8]) -> Result<usize>;
}

/// What an SPDM-aware command cost.
#[derive(Clone, Copy, Default)]
pub(crate) struct Stats {
    /// Messages relayed to the device.
    pub(crate) relays: usize,
    /// Times the command was issued.
    pub(crate) issues: usize,
}

/// The output buffer, with its scatter list when it spans more than one page.
struct Output {
    buf: DmaBuf,
    list: Option<DmaBuf>,
}

impl Output {
    fn new(mb: &dyn Mailbox, size: usize) -> Result<Self> {
        let size = size.div_ceil(PAGE) * PAGE;
        let mut buf = mb.alloc(size)?;
        init_header(&mut buf)?;
        let list = if size > PAGE {
            let mut slas = KVec::new();
            for i in 0..size / PAGE {
                let pfn = (buf.addr() + (i * PAGE) as u64) >> 12;
                slas.push(Sla::data_4k(pfn).ok_or(EINVAL)?, GFP_KERNEL)?;
            }
            let mut page = [0u8; PAGE];
            encode_scatter_list(&slas, &mut page).map_err(|_| EINVAL)?;
            let mut list = mb.alloc(PAGE)?;
            list.write(0, &page)?;
            Some(list)
        } else {
            None
        };
        Ok(Self { buf, list })
    }

    fn sla(&self) -> Result<Sla> {
        match &self.list {
            Some(l) => Sla::scatter_4k(l.addr() >> 12).ok_or(EINVAL),
            None => sla_of(&self.buf),
        }
    }
}

fn sla_of(buf: &DmaBuf) -> Result<Sla> {
    Sla::data_4k(buf.addr() >> 12).ok_or(EINVAL)
}

/// Writes an empty buffer header: capacity the buffer's size, no payload.
fn init_header(buf: &mut DmaBuf) -> Result {
    let size = u32::try_from(buf.size()).map_err(|_| EINVAL)?;
    let mut h = [0u8; SLA_BUFFER_HEADER_SIZE];
    BufferHeader::new(size, 0)
        .encode(&mut h)
        .map_err(|_| EINVAL)?;
    buf.write(0, &h)
}

/// The four buffers of an SPDM-aware command.
pub(crate) struct SpdmBufs {
    req: DmaBuf,
    resp: DmaBuf,
    scratch: DmaBuf,
    output: Output,
}

impl SpdmBufs {
    /// Fresh buffers: one page each, the output buffer `output` bytes.
    pub(crate) fn new(mb: &dyn Mailbox, output: usize) -> Result<Self> {
        let mut b = Self {
            req: mb.alloc(SPDM_BUF)?,
            resp: mb.alloc(SPDM_BUF)?,
            scratch: mb.alloc(SPDM_BUF)?,
            output: Output::new(mb, output)?,
        };
        init_header(&mut b.req)?;
        init_header(&mut b.resp)?;
        init_header(&mut b.scratch)?;
        Ok(b)
    }

    fn ctrl(&self) -> Result<SpdmCtrl> {
        Ok(SpdmCtrl {
            req: sla_of(&self.req)?,
            resp: sla_of(&self.resp)?,
            scratch: sla_of(&self.scratch)?,
            output: self.output.sla()?,
        })
    }

    /// The output buffer's payload, as the firmware's header sizes it.
    pub(crate) fn output(&self) -> Result<KVec<u8>, Failure> {
        let bad = Failure::new("the PSP's output buffer is malformed", EPROTO);
        let all = self
            .output
            .buf
            .to_vec()
            .map_err(|e| Failure::new("no memory", e))?;
        let h = BufferHeader::parse(&all).map_err(|_| bad)?;
        let payload = h.payload(&all).map_err(|_| bad)?;
        let mut v = KVec::new();
        v.extend_from_slice(payload, GFP_KERNEL)
            .map_err(|_| Failure::new("no memory", ENOMEM))?;
        Ok(v)
    }
}

/// The SEV-TIO firmware behind a mailbox, with one command buffer. The caller serialises
/// (one command, and one SPDM loop, at a time: the firmware keeps one pending command).
pub(crate) struct Firmware<'a> {
    mb: &'a dyn Mailbox,
    cmdbuf: &'a mut DmaBuf,
}

impl<'a> Firmware<'a> {
    pub(crate) fn new(mb: &'a dyn Mailbox, cmdbuf: &'a mut DmaBuf) -> Self {
        Self { mb, cmdbuf }
    }

    /// Issues `cmd` once; returns the firmware's status.
    fn issue(&mut self, cmd: &Command) -> Result<u16, Failure> {
        let mut bytes = [0u8; SEV_TIO_MAX_COMMAND_LENGTH];
        let n = cmd
            .encode(&mut bytes)
            .map_err(|_| Failure::new("cannot encode the command", EINVAL))?;
        self.cmdbuf.clear();
        self.cmdbuf
            .write(0, bytes.get(..n).unwrap_or(&[]))
            .map_err(|e| Failure::new("cannot write the command buffer", e))?;
        self.mb.run(cmd.id(), self.cmdbuf).map_err(Failure::mailbox)
    }

    /// Issues `cmd`, which must succeed.
    fn simple(&mut self, cmd: &Command) -> Result<(), Failure> {
        match self.issue(cmd)? {
            sevtio::SEV_RET_SUCCESS => Ok(()),
            s => Err(Failure::status(s)),
        }
    }

    /// TIO_STATUS.
    pub(crate) fn status(&mut self) -> Result<TioStatusPage, Failure> {
        let page = self
            .mb
            .alloc(PAGE)
            .map_err(|e| Failure::new("no memory for the status page", e))?;
        self.simple(&Command::TioStatus {
            status_paddr: page.addr(),
        })?;
        let mut b = [0u8; sevtio::TIO_STATUS_PAGE_SIZE];
        page.read(0, &mut b)
            .map_err(|e| Failure::new("cannot read the status page", e))?;
        TioStatusPage::parse(&b).map_err(|_| Failure::new("malformed TIO_STATUS page", EPROTO))
    }

    /// TIO_INIT.
    pub(crate) fn init(&mut self) -> Result<(), Failure> {
        self.simple(&Command::TioInit)
    }

    /// TIO_DEV_CREATE.
    pub(crate) fn dev_create(
        &mut self,
        ctx: &DmaBuf,
        device_id: u16,
        root_port_id: u16,
        segment: u8,
    ) -> Result<(), Failure> {
        let dev_ctx = sla_of(ctx).map_err(|e| Failure::new("bad context address", e))?;
        self.simple(&Command::DevCreate {
            dev_ctx,
            device_id,
            root_port_id,
            segment,
        })
    }

    /// TIO_DEV_RECLAIM.
    pub(crate) fn dev_reclaim(&mut self, ctx: &DmaBuf) -> Result<(), Failure> {
        let dev_ctx = sla_of(ctx).map_err(|e| Failure::new("bad context address", e))?;
        self.simple(&Command::DevReclaim { dev_ctx })
    }

    /// TIO_DEV_STATUS.
    pub(crate) fn dev_status(&mut self, ctx: &DmaBuf) -> Result<DevStatusPage, Failure> {
        let dev_ctx = sla_of(ctx).map_err(|e| Failure::new("bad context address", e))?;
        let page = self
            .mb
            .alloc(PAGE)
            .map_err(|e| Failure::new("no memory for the status page", e))?;
        self.simple(&Command::DevStatus {
            dev_ctx,
            status_paddr: page.addr(),
        })?;
        let mut b = [0u8; sevtio::DEV_STATUS_PAGE_SIZE];
        page.read(0, &mut b)
            .map_err(|e| Failure::new("cannot read the status page", e))?;
        DevStatusPage::parse(&b).map_err(|_| Failure::new("malformed TIO_DEV_STATUS page", EPROTO))
    }

    /// TIO_TDI_CREATE: a TDI context for `interface_id` on a connected device.
    pub(crate) fn tdi_create(
        &mut self,
        ctx: &DmaBuf,
        tdi: &DmaBuf,
        interface_id: sevtio::InterfaceId,
    ) -> Result<(), Failure> {
        let bad = |e| Failure::new("bad context address", e);
        self.simple(&Command::TdiCreate {
            dev_ctx: sla_of(ctx).map_err(bad)?,
            tdi_ctx: sla_of(tdi).map_err(bad)?,
            interface_id,
        })
    }

    /// TIO_TDI_RECLAIM.
    pub(crate) fn tdi_reclaim(&mut self, ctx: &DmaBuf, tdi: &DmaBuf) -> Result<(), Failure> {
        let bad = |e| Failure::new("bad context address", e);
        self.simple(&Command::TdiReclaim {
            dev_ctx: sla_of(ctx).map_err(bad)?,
            tdi_ctx: sla_of(tdi).map_err(bad)?,
        })
    }

    /// TIO_TDI_STATUS: the TDI's TDISP state, which the firmware asks the device (relayed).
    pub(crate) fn tdi_status(
        &mut self,
        bufs: &mut SpdmBufs,
        relay: &dyn Relay,
        ctx: &DmaBuf,
        tdi: &DmaBuf,
    ) -> Result<(sevtio::TdiState, Stats), Failure> {
        let bad = |e| Failure::new("bad context address", e);
        let (dev_ctx, tdi_ctx) = (sla_of(ctx).map_err(bad)?, sla_of(tdi).map_err(bad)?);
        let page = self
            .mb
            .alloc(PAGE)
            .map_err(|e| Failure::new("no memory for the status page", e))?;
        let status_paddr = page.addr();
        let stats = self.spdm(bufs, relay, |spdm| Command::TdiStatus {
            spdm,
            dev_ctx,
            tdi_ctx,
            status_paddr,
        })?;
        let mut b = [0u8; sevtio::TDI_STATUS_PAGE_SIZE];
        page.read(0, &mut b)
            .map_err(|e| Failure::new("cannot read the status page", e))?;
        let st = sevtio::TdiStatusPage::parse(&b)
            .map_err(|_| Failure::new("malformed TIO_TDI_STATUS page", EPROTO))?;
        Ok((st.state, stats))
    }

    /// Runs the SPDM-aware command `make(ctrl)` to completion, relaying its SPDM messages
    /// through `relay`.
    pub(crate) fn spdm(
        &mut self,
        bufs: &mut SpdmBufs,
        relay: &dyn Relay,
        make: impl Fn(SpdmCtrl) -> Command,
    ) -> Result<Stats, Failure> {
        let mut stats = Stats::default();
        let mut expansions = 0;
        let mut rsp = KVec::from_elem(0u8, SPDM_BUF, GFP_KERNEL)
            .map_err(|_| Failure::new("no memory", ENOMEM))?;
        loop {
            let ctrl = bufs
                .ctrl()
                .map_err(|e| Failure::new("bad buffer address", e))?;
            let cmd = make(ctrl);
            stats.issues += 1;
            match self.issue(&cmd)? {
                sevtio::SEV_RET_SUCCESS => return Ok(stats),
                sevtio::SEV_RET_SPDM_REQUEST => {
                    stats.relays += 1;
                    if stats.relays > MAX_RELAYS {
                        return Err(Failure::new(
                            "the PSP asked for more SPDM relays than a command may take",
                            ELOOP,
                        ));
                    }
                    relay_one(bufs, relay, &mut rsp)?;
                }
                sevtio::SEV_RET_EXPAND_BUFFER_LENGTH_REQUEST => {
                    expansions += 1;
                    if expansions > MAX_EXPANSIONS {
                        return Err(Failure::new(
                            "the PSP asked to expand the output buffer too many times",
                            ELOOP,
                        ));
                    }
                    let mut h = [0u8; SLA_BUFFER_HEADER_SIZE];
                    bufs.output
                        .buf
                        .read(0, &mut h)
                        .map_err(|e| Failure::new("cannot read the output buffer", e))?;
                    let want = BufferHeader::parse(&h)
                        .ok()
                        .and_then(|h| usize::try_from(h.capacity_sz).ok())
                        .ok_or(Failure::new(
                            "the PSP's expansion request is malformed",
                            EPROTO,
                        ))?;
                    if want <= bufs.output.buf.size() || want > MAX_OUTPUT {
                        return Err(Failure::new(
                            "the PSP asked for an output buffer smaller than it has, or too large",
                            EPROTO,
                        ));
                    }
                    bufs.output = Output::new(self.mb, want)
                        .map_err(|e| Failure::new("no memory for the output buffer", e))?;
                }
                s => return Err(Failure::status(s)),
            }
        }
    }
}

/// Relays the request in `bufs.req` and writes the answer to `bufs.resp`.
fn relay_one(bufs: &mut SpdmBufs, relay: &dyn Relay, rsp: &mut [u8]) -> Result<(), Failure> {
    let bad = Failure::new("the PSP's SPDM request is malformed", EPROTO);
    let req = bufs
        .req
        .to_vec()
        .map_err(|e| Failure::new("no memory", e))?;
    let parsed = parse_spdm_buffer(&req).map_err(|_| bad)?;
    if parsed.object.id != DataObjectId::Request {
        return Err(bad);
    }
    let data_type = parsed.object.data_type;
    let max = sevtio::max_message_len(bufs.resp.size()).ok_or(bad)?;
    let room = rsp.get_mut(..max.min(SPDM_BUF)).ok_or(bad)?;
    let n = relay
        .exchange(data_type.doe_type(), parsed.body, room)
        .map_err(|e| Failure::new("the device did not answer the relayed SPDM message", e))?;
    let answer = room.get(..n).ok_or(bad)?;
    let mut out = KVec::from_elem(0u8, bufs.resp.size(), GFP_KERNEL)
        .map_err(|_| Failure::new("no memory", ENOMEM))?;
    let capacity = u32::try_from(bufs.resp.size()).map_err(|_| bad)?;
    let len = encode_spdm_buffer(
        capacity,
        DataObjectId::Response,
        data_type,
        answer,
        &mut out,
    )
    .map_err(|_| {
        Failure::new(
            "the device's SPDM answer does not fit the response buffer",
            EMSGSIZE,
        )
    })?;
    bufs.resp.clear();
    bufs.resp
        .write(0, out.get(..len).unwrap_or(&[]))
        .map_err(|e| Failure::new("cannot write the response buffer", e))
}
