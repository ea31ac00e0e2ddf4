//! Serving one QEMU connection: read socket messages, answer them, until the connection ends.

use std::io::{Read, Write};

use crate::responder::Responder;
use crate::socket::{
    command_name, read_frame, write_frame, ReadError, MAX_REQUEST_SIZE, SOCKET_COMMAND_NORMAL,
    SOCKET_COMMAND_SHUTDOWN, SOCKET_COMMAND_TEST, SOCKET_COMMAND_UNKNOWN, SOCKET_TRANSPORT_PCI_DOE,
};

/// Why a session ended.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum SessionEnd {
    /// The peer sent SHUTDOWN.
    Shutdown,
    /// The peer closed the connection between messages.
    Closed,
    /// The connection failed or the stream became unusable (truncated or oversized message,
    /// socket error); details were logged.
    Failed,
}

/// Serves one connection until SHUTDOWN, EOF or an error. Every event is reported through
/// `log`, one line per call.
///
/// * NORMAL: the payload goes to `responder`; its reply DOE object is sent back as NORMAL with
///   the request's transport type (unless the responder withholds it, fault `no-answer`).
/// * TEST: answered with TEST echoing the payload.
/// * PLATFORM_IDE_KEYS, PLATFORM_EVENT, PLATFORM_TDI_STATE (0xC0C00001-3): QEMU's TEE-IO side
///   channel, answered by [`crate::platform::TeeIo::platform_command`].
/// * SHUTDOWN: answered with SHUTDOWN and an empty payload (QEMU does not read it; spdm-emu
///   does the same), then the session ends.
/// * Any other command: answered with UNKNOWN (0xFFFF) and an empty payload, as spdm-emu does;
///   the connection stays open. QEMU never sends such commands over the DOE transport.
/// * A message announcing more than 1 MiB of payload: the connection is closed, because the
///   stream cannot be resynchronised without reading an absurd amount of data.
pub fn serve<S: Read + Write>(
    stream: &mut S,
    responder: &mut Responder,
    log: &mut dyn FnMut(&str),
) -> SessionEnd {
    loop {
        let frame = match read_frame(stream, MAX_REQUEST_SIZE) {
            Ok(frame) => frame,
            Err(ReadError::Eof) => {
                log("connection closed by peer");
                return SessionEnd::Closed;
            }
            Err(e @ ReadError::TooLarge(_)) => {
                log(&format!("{e}: closing the connection"));
                return SessionEnd::Failed;
            }
            Err(e) => {
                log(&format!("{e}"));
                return SessionEnd::Failed;
            }
        };
        let reply = match frame.command {
            SOCKET_COMMAND_NORMAL => {
                if frame.transport != SOCKET_TRANSPORT_PCI_DOE {
                    log(&format!(
                        "NORMAL message with transport {:#x}, expected PCI_DOE ({:#x}); treating the payload as a DOE object",
                        frame.transport, SOCKET_TRANSPORT_PCI_DOE
                    ));
                }
                let reply = responder.respond(&frame.payload);
                for line in &reply.log {
                    log(line);
                }
                reply.object.map(|object| (SOCKET_COMMAND_NORMAL, object))
            }
            command if crate::platform::is_platform_command(command) => {
                // The TEE-IO side channel (Documentation/coco/tee-io-platform.rst).
                let (command, payload, lines) = responder.platform(command, &frame.payload);
                for line in &lines {
                    log(line);
                }
                Some((command, payload))
            }
            SOCKET_COMMAND_TEST => {
                log(&format!(
                    "TEST with {} payload bytes: echoing",
                    frame.payload.len()
                ));
                Some((SOCKET_COMMAND_TEST, frame.payload))
            }
            SOCKET_COMMAND_SHUTDOWN => {
                log("SHUTDOWN received: ending this endpoint's session");
                // QEMU sends SHUTDOWN while tearing the device down and may already be gone.
                let _ = write_frame(stream, SOCKET_COMMAND_SHUTDOWN, frame.transport, &[]);
                return SessionEnd::Shutdown;
            }
            other => {
                log(&format!(
                    "unsupported socket command {other:#x} ({}) with {} payload bytes: replying UNKNOWN",
                    command_name(other),
                    frame.payload.len()
                ));
                Some((SOCKET_COMMAND_UNKNOWN, Vec::new()))
            }
        };
        if let Some((command, payload)) = reply {
            if let Err(e) = write_frame(stream, command, frame.transport, &payload) {
                log(&format!("cannot send the reply: {e}"));
                return SessionEnd::Failed;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::socket::{encode_frame, Frame};
    use crate::Fault;
    use coco_doe::{decode_object, encode_object, DOE_TYPE_CMA, PCI_SIG_VENDOR_ID};
    use coco_spdm::{parse_version_response, SpdmVersion};
    use std::io::{self, Cursor};

    /// An in-memory duplex stream: reads from `input`, collects writes in `output`.
    struct Duplex {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Duplex {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Duplex {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn run(input: Vec<u8>, fault: Fault) -> (SessionEnd, Vec<Frame>, Vec<String>) {
        let mut stream = Duplex {
            input: Cursor::new(input),
            output: Vec::new(),
        };
        let mut responder = Responder::new(vec![SpdmVersion::V1_2.to_entry()], fault);
        let mut lines = Vec::new();
        let end = serve(&mut stream, &mut responder, &mut |l: &str| {
            lines.push(l.to_string())
        });
        let mut out = Cursor::new(stream.output);
        let mut frames = Vec::new();
        while let Ok(f) = read_frame(&mut out, usize::MAX) {
            frames.push(f);
        }
        (end, frames, lines)
    }

    fn get_version_frame() -> Vec<u8> {
        let mut obj = [0u8; 12];
        encode_object(
            PCI_SIG_VENDOR_ID,
            DOE_TYPE_CMA,
            &[0x10, 0x84, 0, 0],
            &mut obj,
        )
        .unwrap();
        encode_frame(SOCKET_COMMAND_NORMAL, SOCKET_TRANSPORT_PCI_DOE, &obj)
    }

    #[test]
    fn normal_then_shutdown() {
        let mut input = get_version_frame();
        input.extend(encode_frame(
            SOCKET_COMMAND_SHUTDOWN,
            SOCKET_TRANSPORT_PCI_DOE,
            &[],
        ));
        input.extend(get_version_frame()); // never read
        let (end, frames, lines) = run(input, Fault::None);
        assert_eq!(end, SessionEnd::Shutdown);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].command, SOCKET_COMMAND_NORMAL);
        assert_eq!(frames[0].transport, SOCKET_TRANSPORT_PCI_DOE);
        let obj = decode_object(&frames[0].payload).unwrap();
        assert_eq!(parse_version_response(obj.payload).unwrap().count(), 1);
        assert_eq!(frames[1].command, SOCKET_COMMAND_SHUTDOWN);
        assert!(frames[1].payload.is_empty());
        assert!(lines.iter().any(|l| l.starts_with("SHUTDOWN")));
    }

    #[test]
    fn eof_ends_cleanly() {
        let (end, frames, lines) = run(get_version_frame(), Fault::None);
        assert_eq!(end, SessionEnd::Closed);
        assert_eq!(frames.len(), 1);
        assert_eq!(lines.last().unwrap(), "connection closed by peer");
    }

    #[test]
    fn test_and_unknown_commands() {
        let mut input = encode_frame(SOCKET_COMMAND_TEST, SOCKET_TRANSPORT_PCI_DOE, b"ping");
        input.extend(encode_frame(0x1234, SOCKET_TRANSPORT_PCI_DOE, b"xyz"));
        let (end, frames, _) = run(input, Fault::None);
        assert_eq!(end, SessionEnd::Closed);
        assert_eq!(frames[0].command, SOCKET_COMMAND_TEST);
        assert_eq!(frames[0].payload, b"ping");
        assert_eq!(frames[1].command, SOCKET_COMMAND_UNKNOWN);
        assert!(frames[1].payload.is_empty());
    }

    #[test]
    fn oversized_message_closes() {
        let mut input = encode_frame(SOCKET_COMMAND_NORMAL, SOCKET_TRANSPORT_PCI_DOE, &[]);
        input[8..12].copy_from_slice(&((MAX_REQUEST_SIZE as u32) + 1).to_be_bytes());
        let (end, frames, lines) = run(input, Fault::None);
        assert_eq!(end, SessionEnd::Failed);
        assert!(frames.is_empty());
        assert!(lines[0].contains("closing the connection"), "{lines:?}");
    }

    #[test]
    fn truncated_message_fails() {
        let mut input = get_version_frame();
        input.truncate(input.len() - 1);
        let (end, frames, _) = run(input, Fault::None);
        assert_eq!(end, SessionEnd::Failed);
        assert!(frames.is_empty());
    }

    #[test]
    fn no_answer_reads_but_does_not_reply() {
        let mut input = get_version_frame();
        input.extend(get_version_frame());
        let (end, frames, lines) = run(input, Fault::NoAnswer);
        assert_eq!(end, SessionEnd::Closed);
        assert!(frames.is_empty());
        assert_eq!(lines.iter().filter(|l| l.contains("no-answer")).count(), 2);
    }

    #[test]
    fn wrong_transport_is_logged_and_answered() {
        let mut obj = [0u8; 12];
        encode_object(
            PCI_SIG_VENDOR_ID,
            DOE_TYPE_CMA,
            &[0x10, 0x84, 0, 0],
            &mut obj,
        )
        .unwrap();
        let input = encode_frame(SOCKET_COMMAND_NORMAL, 1, &obj);
        let (_, frames, lines) = run(input, Fault::None);
        assert_eq!(frames[0].transport, 1);
        assert!(lines[0].contains("expected PCI_DOE"));
    }
}
