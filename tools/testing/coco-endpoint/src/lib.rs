//! Emulated PCIe CMA/SPDM endpoint for QEMU's `spdm_port` socket.
//!
//! QEMU (`-device nvme,...,spdm_port=N`) connects as a TCP client to 127.0.0.1:N when the
//! device is created and forwards every CMA (DOE type 1) and secured CMA (type 2) data object
//! the guest writes into the device's DOE mailbox; the reply is what the guest reads back.
//! This crate implements the server side:
//!
//! * [`socket`]: the socket framing (12-byte big-endian header + payload).
//! * [`responder`]: [`Responder`] maps one request DOE object to one reply DOE object.
//! * [`session`]: [`serve`] runs one connection: framing, responder, SHUTDOWN, errors.
//!
//! The binary (`src/main.rs`) adds the command line, one listener thread per endpoint, the
//! port file and logging.

use std::fmt;
use std::io::Write;
use std::str::FromStr;
use std::sync::Mutex;

use coco_spdm::VersionEntry;

pub mod responder;
pub mod session;
pub mod socket;

pub use responder::{Reply, Responder};
pub use session::{serve, SessionEnd};

/// Fault injected by an endpoint (inside the DOE payload or by withholding replies; the socket
/// framing is always correct, because QEMU cannot cope with a broken frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Behave correctly.
    #[default]
    None,
    /// Read requests but never answer them: what a dead endpoint looks like (QEMU blocks).
    NoAnswer,
    /// Answer every request with a well-formed DOE object carrying random bytes.
    Garbage,
}

impl Fault {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::NoAnswer => "no-answer",
            Fault::Garbage => "garbage",
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Fault::None),
            "no-answer" => Ok(Fault::NoAnswer),
            "garbage" => Ok(Fault::Garbage),
            _ => Err(format!(
                "unknown fault '{s}' (known: none, no-answer, garbage)"
            )),
        }
    }
}

/// A `--fault` argument: `KIND` for every endpoint or `INDEX:KIND` for one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultSpec {
    /// Endpoint index (0-based, in `--port`/`--count` order), or `None` for all endpoints.
    pub index: Option<usize>,
    /// The fault.
    pub fault: Fault,
}

impl FromStr for FaultSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some((index, kind)) => {
                let index = index
                    .parse::<usize>()
                    .map_err(|_| format!("bad endpoint index '{index}' in fault '{s}'"))?;
                Ok(FaultSpec {
                    index: Some(index),
                    fault: kind.parse()?,
                })
            }
            None => Ok(FaultSpec {
                index: None,
                fault: s.parse()?,
            }),
        }
    }
}

/// The fault of endpoint `index`: the last `INDEX:KIND` for it, else the last global `KIND`,
/// else [`Fault::None`].
pub fn fault_for(specs: &[FaultSpec], index: usize) -> Fault {
    specs
        .iter()
        .rev()
        .find(|s| s.index == Some(index))
        .or_else(|| specs.iter().rev().find(|s| s.index.is_none()))
        .map_or(Fault::None, |s| s.fault)
}

/// Parses a comma-separated version list such as `1.0,1.1,1.2,1.3` (each `MAJOR.MINOR`, or
/// `MAJOR.MINOR.UPDATE`, every number 0 to 15) into VERSION entries, keeping the order.
pub fn parse_version_list(s: &str) -> Result<Vec<VersionEntry>, String> {
    let mut out = Vec::new();
    for item in s.split(',') {
        let item = item.trim();
        let nums: Vec<&str> = item.split('.').collect();
        if !(2..=3).contains(&nums.len()) {
            return Err(format!(
                "bad version '{item}': expected MAJOR.MINOR[.UPDATE]"
            ));
        }
        let mut fields = [0u8; 3];
        for (slot, n) in fields.iter_mut().zip(&nums) {
            *slot = n
                .parse::<u8>()
                .ok()
                .filter(|v| *v <= 15)
                .ok_or_else(|| format!("bad version '{item}': each number must be 0 to 15"))?;
        }
        let entry = VersionEntry::new(fields[0], fields[1], fields[2], 0)
            .ok_or_else(|| format!("bad version '{item}'"))?;
        out.push(entry);
    }
    if out.len() > 255 {
        return Err("at most 255 versions".to_string());
    }
    Ok(out)
}

/// Shared line logger: every line is `coco-endpoint[<index>:<port>]: <message>`, written with
/// one `write_all` under a lock so lines from different endpoints never interleave.
pub struct Logger {
    sink: Mutex<Box<dyn Write + Send>>,
}

impl Logger {
    /// A logger writing to `sink`.
    pub fn new(sink: Box<dyn Write + Send>) -> Self {
        Logger {
            sink: Mutex::new(sink),
        }
    }

    /// Logs one line for endpoint `index` listening on `port`. Write errors are ignored.
    pub fn line(&self, index: &dyn fmt::Display, port: &dyn fmt::Display, message: &str) {
        let text = format!("coco-endpoint[{index}:{port}]: {message}\n");
        let mut sink = match self.sink.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let _ = sink.write_all(text.as_bytes());
        let _ = sink.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn fault_specs() {
        assert_eq!(
            "no-answer".parse::<FaultSpec>(),
            Ok(FaultSpec {
                index: None,
                fault: Fault::NoAnswer
            })
        );
        assert_eq!(
            "1:garbage".parse::<FaultSpec>(),
            Ok(FaultSpec {
                index: Some(1),
                fault: Fault::Garbage
            })
        );
        assert!("x:garbage".parse::<FaultSpec>().is_err());
        assert!("1:explode".parse::<FaultSpec>().is_err());
        assert!("".parse::<FaultSpec>().is_err());
        let specs = [
            "garbage".parse().unwrap(),
            "1:no-answer".parse().unwrap(),
            "2:none".parse().unwrap(),
        ];
        assert_eq!(fault_for(&specs, 0), Fault::Garbage);
        assert_eq!(fault_for(&specs, 1), Fault::NoAnswer);
        assert_eq!(fault_for(&specs, 2), Fault::None);
        assert_eq!(fault_for(&[], 0), Fault::None);
        for f in [Fault::None, Fault::NoAnswer, Fault::Garbage] {
            assert_eq!(f.to_string().parse::<Fault>(), Ok(f));
        }
    }

    #[test]
    fn version_lists() {
        let v = parse_version_list("1.0,1.1,1.2,1.3").unwrap();
        assert_eq!(
            v.iter().map(|e| e.raw()).collect::<Vec<_>>(),
            [0x1000, 0x1100, 0x1200, 0x1300]
        );
        assert_eq!(parse_version_list(" 1.2 , 1.3.1").unwrap()[1].raw(), 0x1310);
        for bad in ["", "1", "1.", "1.16", "a.b", "1.2.3.4", "1.2,,1.3", "-1.0"] {
            assert!(parse_version_list(bad).is_err(), "{bad}");
        }
        let many = vec!["1.0"; 256].join(",");
        assert!(parse_version_list(&many).is_err());
        assert_eq!(parse_version_list(&many[4..]).unwrap().len(), 255);
    }

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn logger_prefix() {
        let buf = Shared::default();
        let logger = Logger::new(Box::new(buf.clone()));
        logger.line(&1, &4242, "hello");
        logger.line(&"*", &"*", "bye");
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text,
            "coco-endpoint[1:4242]: hello\ncoco-endpoint[*:*]: bye\n"
        );
    }
}
