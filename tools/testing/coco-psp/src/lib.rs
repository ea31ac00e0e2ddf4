//! Emulated AMD PSP firmware for SEV-TIO: the firmware model behind QEMU's `coco-psp` device
//! (Documentation/coco/sev-tio-platform.rst is the contract).
//!
//! QEMU forwards every command the host writes into the emulated SEV mailbox to this model
//! over a socket; the model reads and writes host memory only through QEMU (DMA_READ,
//! DMA_WRITE) and reaches the root ports' IDE keys only through ROOT_PORT_KEY. It is the SPDM
//! requester of SEV-TIO: TIO_DEV_CONNECT authenticates the device, opens an SPDM session and
//! programs the IDE keys of both ends, every SPDM message being relayed by the host
//! (SPDM_REQUEST). The TDI commands lock, start, query and stop the device's TDI with TDISP
//! messages inside that session.
//!
//! * [`wire`]: the socket protocol, the [`wire::Platform`] trait (what QEMU offers the
//!   firmware) and its socket implementation.
//! * [`memory`]: host buffers named by SLAs, read and written through the platform.
//! * [`requester`]: the SPDM requester (VCA, certificates, KEY_EXCHANGE/FINISH, secured
//!   messages, IDE_KM, TDISP, measurements) over a [`requester::Link`].
//! * [`psp`]: the firmware state and the SEV-TIO commands ([`psp::Psp`]), and
//!   [`psp::serve`], the loop over one QEMU connection.
//! * [`guest`]: the guest side (sev-tio-guest.rst): TIO_OP and TIO_GUEST_REQUEST for the
//!   functions assigned to the guest, the requester talking to the device through QEMU
//!   (DEVICE_SPDM).
//!
//! Every buffer goes through `coco-sevtio`; every SPDM, IDE_KM and TDISP message through
//! `coco-spdm`, `coco-idekm` and `coco-tdisp`.

use std::fmt;
use std::io::Write;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

pub mod guest;
pub mod memory;
pub mod psp;
pub mod requester;
pub mod wire;

/// `seg:bb:dd.f` of a Requester ID.
pub fn bdf(segment: u8, rid: u16) -> String {
    let [devfn, bus] = rid.to_le_bytes();
    format!("{segment:04x}:{bus:02x}:{:02x}.{}", devfn >> 3, devfn & 7)
}

/// Parses `BB:DD.F` (hex, with or without the `0000:` segment) into a Requester ID
/// (`--guest-tdi`).
pub fn parse_rid(s: &str) -> Result<u16, String> {
    parse_bdf(s)
}

/// A fault the model injects (`--fault`, repeatable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Command `cmd` completes with `status` and does nothing.
    Status {
        /// The command ID.
        cmd: u16,
        /// The status it completes with.
        status: u16,
    },
    /// TIO_DEV_CONNECT asks the host to relay GET_VERSION without end.
    RelayForever,
    /// Every output command asks for 4 KiB more output buffer each time.
    ExpandForever,
    /// The root port's RX-PR key gets one byte flipped.
    BadRpKey,
    /// After the N-th TDI_INFO that follows RUN, K_SET_STOP of every pair of the endpoint.
    TdiErrorAfter(u32),
    /// A byte of that blob flipped in the data pages after its digest was computed.
    Tamper(coco_sevtio::guest::BlobKind),
}

/// The `--fault` kinds, for `--help`.
pub const FAULT_HELP: &str = "\
status:CMD=CODE   command CMD (hex, e.g. 0xd4) completes with status CODE (hex) and does nothing
relay-forever     TIO_DEV_CONNECT asks the host to relay GET_VERSION without end
expand-forever    every output command asks for 4 KiB more output buffer each time
bad-rp-key        the root port's key for RX-PR gets one byte flipped (the link check fails)
tdi-error-after:N guest side: after the N-th TDI_INFO that follows RUN, K_SET_STOP of every
                  pair on the endpoint (the TDI goes to ERROR)
tamper:certs|meas|report
                  guest side: a byte of that blob flipped in the data pages after its digest
Each may be limited to one device: F@BB:DD.F (its Requester ID, segment 0).";

fn parse_hex_u16(s: &str) -> Result<u16, String> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u16::from_str_radix(digits, 16).map_err(|_| format!("'{s}' is not a 16-bit hex number"))
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "relay-forever" => Ok(Fault::RelayForever),
            "expand-forever" => Ok(Fault::ExpandForever),
            "bad-rp-key" => Ok(Fault::BadRpKey),
            "tamper:certs" => Ok(Fault::Tamper(coco_sevtio::guest::BlobKind::Certificates)),
            "tamper:meas" => Ok(Fault::Tamper(coco_sevtio::guest::BlobKind::Measurements)),
            "tamper:report" => Ok(Fault::Tamper(coco_sevtio::guest::BlobKind::Report)),
            _ if s.starts_with("tdi-error-after:") => s
                .strip_prefix("tdi-error-after:")
                .and_then(|n| n.parse::<u32>().ok())
                .filter(|n| *n > 0)
                .map(Fault::TdiErrorAfter)
                .ok_or_else(|| format!("fault '{s}': expected tdi-error-after:N (N >= 1)")),
            _ => {
                let spec = s
                    .strip_prefix("status:")
                    .ok_or_else(|| format!("unknown fault '{s}'\n{FAULT_HELP}"))?;
                let (cmd, code) = spec
                    .split_once('=')
                    .ok_or_else(|| format!("fault '{s}': expected status:CMD=CODE"))?;
                Ok(Fault::Status {
                    cmd: parse_hex_u16(cmd)?,
                    status: parse_hex_u16(code)?,
                })
            }
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Status { cmd, status } => write!(f, "status:{cmd:#x}={status:#x}"),
            Fault::RelayForever => f.write_str("relay-forever"),
            Fault::ExpandForever => f.write_str("expand-forever"),
            Fault::BadRpKey => f.write_str("bad-rp-key"),
            Fault::TdiErrorAfter(n) => write!(f, "tdi-error-after:{n}"),
            Fault::Tamper(k) => write!(
                f,
                "tamper:{}",
                match k {
                    coco_sevtio::guest::BlobKind::Certificates => "certs",
                    coco_sevtio::guest::BlobKind::Measurements => "meas",
                    coco_sevtio::guest::BlobKind::Report => "report",
                }
            ),
        }
    }
}

/// A fault, on every device or on the one with a Requester ID (`F@BB:DD.F`, segment 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpec {
    /// The fault.
    pub fault: Fault,
    /// The device it applies to (its Requester ID), or `None` for every device.
    pub device: Option<u16>,
}

impl From<Fault> for FaultSpec {
    fn from(fault: Fault) -> Self {
        FaultSpec {
            fault,
            device: None,
        }
    }
}

/// Parses a bus:device.function (hex, as lspci prints it, with or without the `0000:`
/// segment) into a Requester ID.
fn parse_bdf(s: &str) -> Result<u16, String> {
    let bad = || format!("'{s}' is not a BB:DD.F address");
    let s = s.strip_prefix("0000:").unwrap_or(s);
    let (bus, rest) = s.split_once(':').ok_or_else(bad)?;
    let (dev, func) = rest.split_once('.').ok_or_else(bad)?;
    let bus = u16::from_str_radix(bus, 16).map_err(|_| bad())?;
    let dev = u16::from_str_radix(dev, 16).map_err(|_| bad())?;
    let func = u16::from_str_radix(func, 16).map_err(|_| bad())?;
    if bus > 0xff || dev > 0x1f || func > 7 {
        return Err(bad());
    }
    Ok(bus << 8 | dev << 3 | func)
}

impl FromStr for FaultSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once('@') {
            Some((f, dev)) => Ok(FaultSpec {
                fault: f.parse()?,
                device: Some(parse_bdf(dev)?),
            }),
            None => Ok(FaultSpec {
                fault: s.parse()?,
                device: None,
            }),
        }
    }
}

impl fmt::Display for FaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.device {
            None => write!(f, "{}", self.fault),
            Some(rid) => write!(
                f,
                "{}@{:02x}:{:02x}.{}",
                self.fault,
                rid >> 8,
                (rid >> 3) & 0x1f,
                rid & 7
            ),
        }
    }
}

/// The model's log: one line per command and the reason of every failure, never a key.
/// Lines go to a sink (stderr or `--log`) and, for tests, may be captured too.
#[derive(Clone)]
pub struct Logger {
    sink: Option<Arc<Mutex<Box<dyn Write + Send>>>>,
    captured: Option<Arc<Mutex<Vec<String>>>>,
}

impl Logger {
    /// A logger writing to `sink`.
    pub fn new(sink: Box<dyn Write + Send>) -> Self {
        Logger {
            sink: Some(Arc::new(Mutex::new(sink))),
            captured: None,
        }
    }

    /// A logger that keeps its lines in memory; returns it and the lines.
    pub fn capture() -> (Self, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (
            Logger {
                sink: None,
                captured: Some(Arc::clone(&lines)),
            },
            lines,
        )
    }

    /// Logs one line (`coco-psp: <message>`). Write errors are ignored.
    pub fn line(&self, message: &str) {
        if let Some(sink) = &self.sink {
            let text = format!("coco-psp: {message}\n");
            let mut sink = match sink.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            let _ = sink.write_all(text.as_bytes());
            let _ = sink.flush();
        }
        if let Some(c) = &self.captured {
            let mut c = match c.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            c.push(message.to_string());
        }
    }
}

impl fmt::Debug for Logger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Logger")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_specs() {
        assert_eq!(
            "status:0xd4=0x15".parse::<Fault>(),
            Ok(Fault::Status {
                cmd: 0xd4,
                status: 0x15
            })
        );
        assert_eq!(
            "status:D1=1".parse::<Fault>(),
            Ok(Fault::Status {
                cmd: 0xd1,
                status: 1
            })
        );
        assert_eq!("relay-forever".parse::<Fault>(), Ok(Fault::RelayForever));
        assert_eq!("expand-forever".parse::<Fault>(), Ok(Fault::ExpandForever));
        assert_eq!("bad-rp-key".parse::<Fault>(), Ok(Fault::BadRpKey));
        for bad in [
            "",
            "status:",
            "status:0xd4",
            "status:xyz=1",
            "status:1=10000",
            "nope",
            "tdi-error-after:",
            "tdi-error-after:0",
            "tamper:x",
        ] {
            assert!(bad.parse::<Fault>().is_err(), "{bad}");
        }
        for f in [
            Fault::Status {
                cmd: 0xd4,
                status: 0x33,
            },
            Fault::RelayForever,
            Fault::ExpandForever,
            Fault::BadRpKey,
            Fault::TdiErrorAfter(3),
            Fault::Tamper(coco_sevtio::guest::BlobKind::Certificates),
            Fault::Tamper(coco_sevtio::guest::BlobKind::Measurements),
            Fault::Tamper(coco_sevtio::guest::BlobKind::Report),
        ] {
            assert_eq!(f.to_string().parse::<Fault>(), Ok(f));
        }
    }
}
