//! The firmware socket (sev-tio-platform.rst, "The firmware socket"): QEMU connects, sends
//! COMMAND; the model answers with service requests (DMA_READ, DMA_WRITE, ROOT_PORT_KEY), each
//! answered by QEMU before the next, and ends the command with DONE. The guest channel
//! (sev-tio-guest.rst, "The firmware socket, guest requests") sends GUEST on the same
//! connection; the model answers with DMA_READ, DMA_WRITE and DEVICE_SPDM and ends it with
//! GUEST_DONE. Every message is `u32 op | u32 length | payload`, little-endian.

use std::fmt;
use std::io::{self, Read, Write};

use zeroize::Zeroize;

/// COMMAND, QEMU → model: `u16 cmd, u16 reserved, u32 reserved, u64 cmdbuff_addr`.
pub const OP_COMMAND: u32 = 0x01;
/// GUEST, QEMU → model: a guest channel request (48 bytes, [`GuestReq`]).
pub const OP_GUEST: u32 = 0x02;
/// DEVICE_SPDM, model → QEMU: `u16 requester_id, u8 segment, u8 reserved`, a DOE object.
pub const OP_DEVICE_SPDM: u32 = 0x15;
/// GUEST_DONE, model → QEMU: `u32 result, u32 data_npages, u64 param, u64 fw_err`.
pub const OP_GUEST_DONE: u32 = 0x1E;
/// DMA_READ, model → QEMU: `u64 addr, u32 len`.
pub const OP_DMA_READ: u32 = 0x10;
/// DATA, QEMU → model: `u32 result` and, when 0, the bytes.
pub const OP_DATA: u32 = 0x11;
/// DMA_WRITE, model → QEMU: `u64 addr` and the bytes.
pub const OP_DMA_WRITE: u32 = 0x12;
/// RESULT, QEMU → model: `u32 result`.
pub const OP_RESULT: u32 = 0x13;
/// ROOT_PORT_KEY, model → QEMU: 48 bytes.
pub const OP_ROOT_PORT_KEY: u32 = 0x14;
/// DONE, model → QEMU: `u32 status`.
pub const OP_DONE: u32 = 0x1F;

/// Size of COMMAND's payload.
pub const COMMAND_SIZE: usize = 16;
/// Size of GUEST's payload.
pub const GUEST_SIZE: usize = 48;
/// Size of GUEST_DONE's payload.
pub const GUEST_DONE_SIZE: usize = 24;
/// Largest DOE object DEVICE_SPDM carries or QEMU answers with (the DOE maximum, 1 MiB).
pub const DOE_OBJECT_MAX: usize = 1 << 20;

/// DEVICE_SPDM result: done.
pub const SPDM_RESULT_DONE: u32 = 0;
/// DEVICE_SPDM result: no such function.
pub const SPDM_RESULT_NO_FUNCTION: u32 = 1;
/// DEVICE_SPDM result: the function has no SPDM responder.
pub const SPDM_RESULT_NO_RESPONDER: u32 = 2;
/// DEVICE_SPDM result: the exchange failed.
pub const SPDM_RESULT_FAILED: u32 = 3;

/// A name for a DEVICE_SPDM result.
pub fn spdm_result_name(result: u32) -> &'static str {
    match result {
        SPDM_RESULT_DONE => "done",
        SPDM_RESULT_NO_FUNCTION => "no such function",
        SPDM_RESULT_NO_RESPONDER => "the function has no SPDM responder",
        SPDM_RESULT_FAILED => "the exchange failed",
        _ => "unknown result",
    }
}

/// GUEST's payload: the guest channel's registers when the guest rang the doorbell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GuestReq {
    /// `EXIT_CODE`: TIO_GUEST_REQUEST or TIO_OP.
    pub exit_code: u32,
    /// `segment << 16 | bus << 8 | devfn`.
    pub sbdf: u32,
    /// The request page's guest address.
    pub req_gpa: u64,
    /// The response page's guest address.
    pub rsp_gpa: u64,
    /// The data pages' guest address.
    pub data_gpa: u64,
    /// How many 4 KiB data pages there are.
    pub data_npages: u32,
    /// TIO_GUEST_REQUEST's info flags or TIO_OP's action.
    pub param: u64,
}

impl GuestReq {
    /// The 48-byte payload.
    pub fn encode(&self) -> [u8; GUEST_SIZE] {
        let mut o = [0u8; GUEST_SIZE];
        let parts: [&[u8]; 7] = [
            &self.exit_code.to_le_bytes(),
            &self.sbdf.to_le_bytes(),
            &self.req_gpa.to_le_bytes(),
            &self.rsp_gpa.to_le_bytes(),
            &self.data_gpa.to_le_bytes(),
            &self.data_npages.to_le_bytes(),
            &[0; 4],
        ];
        let tail = self.param.to_le_bytes();
        for (d, s) in o
            .iter_mut()
            .zip(parts.iter().flat_map(|p| p.iter()).chain(tail.iter()))
        {
            *d = *s;
        }
        o
    }

    /// Parses the 48-byte payload.
    pub fn parse(p: &[u8]) -> Option<GuestReq> {
        if p.len() != GUEST_SIZE {
            return None;
        }
        let u32_at = |o: usize| le_u32(p.get(o..)?);
        let u64_at = |o: usize| Some(u64::from_le_bytes(p.get(o..o + 8)?.try_into().ok()?));
        Some(GuestReq {
            exit_code: u32_at(0)?,
            sbdf: u32_at(4)?,
            req_gpa: u64_at(8)?,
            rsp_gpa: u64_at(16)?,
            data_gpa: u64_at(24)?,
            data_npages: u32_at(32)?,
            param: u64_at(40)?,
        })
    }
}

/// GUEST_DONE's payload: the guest channel's `RESULT`, `DATA_NPAGES`, `PARAM` and `FW_ERR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GuestDone {
    /// `RESULT`.
    pub result: u32,
    /// `DATA_NPAGES` (after RESULT 1: how many are needed).
    pub data_npages: u32,
    /// `PARAM` out.
    pub param: u64,
    /// `FW_ERR` (with RESULT 2).
    pub fw_err: u64,
}

impl GuestDone {
    /// The 24-byte payload.
    pub fn encode(&self) -> [u8; GUEST_DONE_SIZE] {
        let mut o = [0u8; GUEST_DONE_SIZE];
        let (a, b) = o.split_at_mut(8);
        a.copy_from_slice(
            &(u64::from(self.result) | u64::from(self.data_npages) << 32).to_le_bytes(),
        );
        let (c, d) = b.split_at_mut(8);
        c.copy_from_slice(&self.param.to_le_bytes());
        d.copy_from_slice(&self.fw_err.to_le_bytes());
        o
    }

    /// Parses the 24-byte payload (QEMU's side, and tests).
    pub fn parse(p: &[u8]) -> Option<GuestDone> {
        if p.len() != GUEST_DONE_SIZE {
            return None;
        }
        let u64_at = |o: usize| Some(u64::from_le_bytes(p.get(o..o + 8)?.try_into().ok()?));
        Some(GuestDone {
            result: le_u32(p)?,
            data_npages: le_u32(p.get(4..)?)?,
            param: u64_at(8)?,
            fw_err: u64_at(16)?,
        })
    }
}

/// Size of ROOT_PORT_KEY's payload.
pub const ROOT_PORT_KEY_SIZE: usize = 48;
/// Largest DMA transfer.
pub const DMA_MAX: usize = 1 << 20;

/// ROOT_PORT_KEY op: program key and IFV.
pub const RP_OP_PROGRAM: u8 = 1;
/// ROOT_PORT_KEY op: key set go.
pub const RP_OP_GO: u8 = 2;
/// ROOT_PORT_KEY op: key set stop.
pub const RP_OP_STOP: u8 = 3;
/// ROOT_PORT_KEY direction: the root port receives.
pub const RP_DIR_RX: u8 = 0;
/// ROOT_PORT_KEY direction: the root port transmits.
pub const RP_DIR_TX: u8 = 1;

/// RESULT of ROOT_PORT_KEY: done.
pub const RP_RESULT_DONE: u32 = 0;
/// RESULT of ROOT_PORT_KEY: no function with that Requester ID.
pub const RP_RESULT_NO_FUNCTION: u32 = 1;
/// RESULT of ROOT_PORT_KEY: the root port has no IDE.
pub const RP_RESULT_NO_IDE: u32 = 2;
/// RESULT of ROOT_PORT_KEY: refused (a bad field, GO without a key).
pub const RP_RESULT_REFUSED: u32 = 3;

/// A broken socket protocol or connection: the model stops serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal(pub String);

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<io::Error> for Fatal {
    fn from(e: io::Error) -> Self {
        Fatal(format!("socket: {e}"))
    }
}

/// One ROOT_PORT_KEY request. The key and IFV are wiped when it is dropped; `Debug` never
/// shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct RootPortKey {
    /// Requester ID of the device below the root port.
    pub requester_id: u16,
    /// PCI segment.
    pub segment: u8,
    /// IDE stream ID.
    pub stream_id: u8,
    /// The root port's direction ([`RP_DIR_RX`], [`RP_DIR_TX`]).
    pub direction: u8,
    /// 0 PR, 1 NPR, 2 CPL.
    pub sub_stream: u8,
    /// Key set 0 or 1.
    pub key_set: u8,
    /// [`RP_OP_PROGRAM`], [`RP_OP_GO`] or [`RP_OP_STOP`].
    pub op: u8,
    /// The key (PROGRAM only; zero otherwise).
    pub key: [u8; 32],
    /// The IFV (PROGRAM only; zero otherwise).
    pub ifv: [u8; 8],
}

impl Drop for RootPortKey {
    fn drop(&mut self) {
        self.key.zeroize();
        self.ifv.zeroize();
    }
}

impl fmt::Debug for RootPortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rid {:04x} seg {} stream {} {} {} K{}",
            rp_op_name(self.op),
            self.requester_id,
            self.segment,
            self.stream_id,
            if self.direction == RP_DIR_TX {
                "TX"
            } else {
                "RX"
            },
            match self.sub_stream {
                0 => "PR",
                1 => "NPR",
                2 => "CPL",
                _ => "?",
            },
            self.key_set
        )
    }
}

/// A name for a ROOT_PORT_KEY op.
pub fn rp_op_name(op: u8) -> &'static str {
    match op {
        RP_OP_PROGRAM => "PROGRAM",
        RP_OP_GO => "GO",
        RP_OP_STOP => "STOP",
        _ => "unknown op",
    }
}

/// A name for a ROOT_PORT_KEY result.
pub fn rp_result_name(result: u32) -> &'static str {
    match result {
        RP_RESULT_DONE => "done",
        RP_RESULT_NO_FUNCTION => "no function with that Requester ID",
        RP_RESULT_NO_IDE => "the root port has no IDE",
        RP_RESULT_REFUSED => "refused",
        _ => "unknown result",
    }
}

impl RootPortKey {
    /// The 48-byte payload.
    pub fn encode(&self) -> [u8; ROOT_PORT_KEY_SIZE] {
        let mut out = [0u8; ROOT_PORT_KEY_SIZE];
        let [r0, r1] = self.requester_id.to_le_bytes();
        let head = [
            r0,
            r1,
            self.segment,
            self.stream_id,
            self.direction,
            self.sub_stream,
            self.key_set,
            self.op,
        ];
        for (d, s) in out
            .iter_mut()
            .zip(head.iter().chain(self.key.iter()).chain(self.ifv.iter()))
        {
            *d = *s;
        }
        out
    }

    /// Parses the 48-byte payload (QEMU's side, and tests).
    pub fn parse(buf: &[u8]) -> Option<RootPortKey> {
        if buf.len() != ROOT_PORT_KEY_SIZE {
            return None;
        }
        let mut key = [0u8; 32];
        key.copy_from_slice(buf.get(8..40)?);
        let mut ifv = [0u8; 8];
        ifv.copy_from_slice(buf.get(40..48)?);
        let b = |i: usize| buf.get(i).copied().unwrap_or(0);
        Some(RootPortKey {
            requester_id: u16::from_le_bytes([b(0), b(1)]),
            segment: b(2),
            stream_id: b(3),
            direction: b(4),
            sub_stream: b(5),
            key_set: b(6),
            op: b(7),
            key,
            ifv,
        })
    }
}

/// What QEMU offers the firmware: host memory by DMA, the root ports' IDE keys and (for the
/// guest side) the devices' SPDM responders.
pub trait Platform {
    /// Reads `len` bytes at `addr`; `Ok(None)` when QEMU refuses (a DMA error).
    fn dma_read(&mut self, addr: u64, len: usize) -> Result<Option<Vec<u8>>, Fatal>;
    /// Writes `data` at `addr`; `Ok(false)` when QEMU refuses.
    fn dma_write(&mut self, addr: u64, data: &[u8]) -> Result<bool, Fatal>;
    /// Runs a root port key operation; returns QEMU's RESULT.
    fn root_port_key(&mut self, req: &RootPortKey) -> Result<u32, Fatal>;
    /// Sends one whole DOE data object to the SPDM responder of the function `rid` on
    /// `segment` (DEVICE_SPDM); returns the DOE object that came back, or QEMU's result
    /// code when it is not 0.
    fn device_spdm(
        &mut self,
        rid: u16,
        segment: u8,
        doe_object: &[u8],
    ) -> Result<Result<Vec<u8>, u32>, Fatal>;
}

/// Writes one message.
pub fn write_msg(w: &mut dyn Write, op: u32, payload: &[u8]) -> Result<(), Fatal> {
    let len = u32::try_from(payload.len()).map_err(|_| Fatal("message too large".into()))?;
    let mut buf = Vec::with_capacity(payload.len().saturating_add(8));
    buf.extend_from_slice(&op.to_le_bytes());
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(payload);
    w.write_all(&buf)?;
    w.flush()?;
    Ok(())
}

/// Reads one message (`None` on a clean end of stream before its header); a payload above
/// `max` bytes breaks the protocol.
pub fn read_msg(r: &mut dyn Read, max: usize) -> Result<Option<(u32, Vec<u8>)>, Fatal> {
    let mut hdr = [0u8; 8];
    let mut got = 0;
    while got < hdr.len() {
        let n = r.read(hdr.get_mut(got..).unwrap_or(&mut []))?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(Fatal("connection closed inside a message header".into()));
        }
        got = got.saturating_add(n);
    }
    let [o0, o1, o2, o3, l0, l1, l2, l3] = hdr;
    let op = u32::from_le_bytes([o0, o1, o2, o3]);
    let len = usize::try_from(u32::from_le_bytes([l0, l1, l2, l3]))
        .map_err(|_| Fatal("bad length".into()))?;
    if len > max {
        return Err(Fatal(format!(
            "message {op:#x} of {len} bytes exceeds {max}"
        )));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok(Some((op, payload)))
}

fn le_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(..4)?.try_into().ok()?))
}

/// The platform over the QEMU socket.
pub struct SocketPlatform<S: Read + Write> {
    stream: S,
}

impl<S: Read + Write> SocketPlatform<S> {
    /// The platform behind `stream`.
    pub fn new(stream: S) -> Self {
        SocketPlatform { stream }
    }

    /// The connection, for the messages outside a command's service requests.
    pub fn stream(&mut self) -> &mut S {
        &mut self.stream
    }

    fn reply(&mut self, want: u32, max: usize) -> Result<Vec<u8>, Fatal> {
        match read_msg(&mut self.stream, max)? {
            None => Err(Fatal("QEMU closed the connection inside a command".into())),
            Some((op, p)) if op == want => Ok(p),
            Some((op, _)) => Err(Fatal(format!(
                "QEMU answered op {op:#x}, expected {want:#x}"
            ))),
        }
    }

    fn result(&mut self) -> Result<u32, Fatal> {
        let p = self.reply(OP_RESULT, 4)?;
        match le_u32(&p) {
            Some(v) if p.len() == 4 => Ok(v),
            _ => Err(Fatal(format!("RESULT of {} bytes", p.len()))),
        }
    }
}

impl<S: Read + Write> Platform for SocketPlatform<S> {
    fn dma_read(&mut self, addr: u64, len: usize) -> Result<Option<Vec<u8>>, Fatal> {
        let l = u32::try_from(len).map_err(|_| Fatal("DMA read too large".into()))?;
        let mut p = Vec::with_capacity(12);
        p.extend_from_slice(&addr.to_le_bytes());
        p.extend_from_slice(&l.to_le_bytes());
        write_msg(&mut self.stream, OP_DMA_READ, &p)?;
        let d = self.reply(OP_DATA, DMA_MAX.saturating_add(4))?;
        match le_u32(&d) {
            Some(0) if d.len() == len.saturating_add(4) => {
                Ok(Some(d.get(4..).unwrap_or(&[]).to_vec()))
            }
            Some(1) if d.len() == 4 => Ok(None),
            _ => Err(Fatal(format!(
                "DATA of {} bytes for a read of {len}",
                d.len()
            ))),
        }
    }

    fn dma_write(&mut self, addr: u64, data: &[u8]) -> Result<bool, Fatal> {
        let mut p = Vec::with_capacity(data.len().saturating_add(8));
        p.extend_from_slice(&addr.to_le_bytes());
        p.extend_from_slice(data);
        write_msg(&mut self.stream, OP_DMA_WRITE, &p)?;
        match self.result()? {
            0 => Ok(true),
            1 => Ok(false),
            r => Err(Fatal(format!("DMA_WRITE RESULT {r}"))),
        }
    }

    fn root_port_key(&mut self, req: &RootPortKey) -> Result<u32, Fatal> {
        let mut p = req.encode();
        let r = write_msg(&mut self.stream, OP_ROOT_PORT_KEY, &p);
        p.zeroize();
        r?;
        self.result()
    }

    fn device_spdm(
        &mut self,
        rid: u16,
        segment: u8,
        doe_object: &[u8],
    ) -> Result<Result<Vec<u8>, u32>, Fatal> {
        let mut p = Vec::with_capacity(doe_object.len().saturating_add(4));
        p.extend_from_slice(&rid.to_le_bytes());
        p.extend_from_slice(&[segment, 0]);
        p.extend_from_slice(doe_object);
        write_msg(&mut self.stream, OP_DEVICE_SPDM, &p)?;
        let d = self.reply(OP_DATA, DOE_OBJECT_MAX.saturating_add(4))?;
        match le_u32(&d) {
            Some(SPDM_RESULT_DONE) if d.len() > 4 => Ok(Ok(d.get(4..).unwrap_or(&[]).to_vec())),
            Some(r) if r != SPDM_RESULT_DONE && d.len() == 4 => Ok(Err(r)),
            _ => Err(Fatal(format!(
                "DATA of {} bytes answering DEVICE_SPDM",
                d.len()
            ))),
        }
    }
}

/// Parses COMMAND's payload: the command ID and the command buffer's address.
pub fn parse_command(p: &[u8]) -> Option<(u16, u64)> {
    if p.len() != COMMAND_SIZE {
        return None;
    }
    let cmd = u16::from_le_bytes(p.get(..2)?.try_into().ok()?);
    let addr = u64::from_le_bytes(p.get(8..16)?.try_into().ok()?);
    Some((cmd, addr))
}
