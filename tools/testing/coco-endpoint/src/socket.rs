//! The framing of QEMU's SPDM socket (`backends/spdm-socket.c`, `include/system/spdm-socket.h`).
//!
//! QEMU is the TCP client. Every message in either direction is a 12-byte header of three
//! big-endian `u32` — command, transport type, payload size — followed by `size` payload bytes.
//! With transport [`SOCKET_TRANSPORT_PCI_DOE`] the payload of a [`SOCKET_COMMAND_NORMAL`]
//! message is one whole DOE data object (8-byte DOE header included), and so is the reply.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
#[cfg(target_os = "linux")]
use std::os::linux::net::TcpStreamExt;

/// A normal request/response exchange carrying one transport message.
pub const SOCKET_COMMAND_NORMAL: u32 = 0x0001;
/// SPDM-over-storage "IF_SEND" (not used with the PCI DOE transport).
pub const SOCKET_COMMAND_STORAGE_IF_SEND: u32 = 0x0002;
/// SPDM-over-storage "IF_RECV" (not used with the PCI DOE transport).
pub const SOCKET_COMMAND_STORAGE_IF_RECV: u32 = 0x0003;
/// SPDM-over-storage "ACK_STATUS" (not used with the PCI DOE transport).
pub const SOCKET_COMMAND_STORAGE_ACK_STATUS: u32 = 0x0004;
/// Out-of-band encapsulated KEY_UPDATE trigger (spdm-emu extension).
pub const SOCKET_COMMAND_OOB_ENCAP_KEY_UPDATE: u32 = 0x8001;
/// "Continue" (spdm-emu extension).
pub const SOCKET_COMMAND_CONTINUE: u32 = 0xFFFD;
/// Sent by QEMU when the device is destroyed; QEMU does not read a reply.
pub const SOCKET_COMMAND_SHUTDOWN: u32 = 0xFFFE;
/// Reply to a command the server does not know (spdm-emu convention).
pub const SOCKET_COMMAND_UNKNOWN: u32 = 0xFFFF;

/// Socket command: QEMU asks a stream's key state.
pub const PLATFORM_IDE_KEYS: u32 = 0xC0C0_0001;
/// Socket command: QEMU reports an event of the function.
pub const PLATFORM_EVENT: u32 = 0xC0C0_0002;
/// Socket command: QEMU asks the TDI state.
pub const PLATFORM_TDI_STATE: u32 = 0xC0C0_0003;

/// Whether `command` is one of the TEE-IO platform side-channel commands
/// (Documentation/coco/tee-io-platform.rst; served by [`crate::platform`]).
pub fn is_platform_command(command: u32) -> bool {
    matches!(
        command,
        PLATFORM_IDE_KEYS | PLATFORM_EVENT | PLATFORM_TDI_STATE
    )
}
/// Liveness test; the reply echoes the payload.
pub const SOCKET_COMMAND_TEST: u32 = 0xDEAD;

/// Transport type MCTP.
pub const SOCKET_TRANSPORT_MCTP: u32 = 0x01;
/// Transport type PCI DOE: payloads are whole DOE data objects.
pub const SOCKET_TRANSPORT_PCI_DOE: u32 = 0x02;

/// Size of the socket message header.
pub const FRAME_HEADER_SIZE: usize = 12;

/// Largest reply payload QEMU accepts (`SPDM_SOCKET_MAX_MESSAGE_BUFFER_SIZE`, 0x1200). A
/// larger size makes QEMU fail the exchange without reading the payload, which also leaves
/// the stream out of sync, so a reply must never exceed it.
pub const QEMU_MAX_RESPONSE_SIZE: usize = 0x1200;

/// Largest request payload accepted: one maximal DOE object (2^18 DW = 1 MiB), the most QEMU's
/// DOE mailbox can hold. A larger size cannot come from QEMU.
pub const MAX_REQUEST_SIZE: usize = coco_doe::DOE_MAX_OBJECT_SIZE;

/// The 12-byte header of a socket message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Command (`SOCKET_COMMAND_*`).
    pub command: u32,
    /// Transport type (`SOCKET_TRANSPORT_*`).
    pub transport: u32,
    /// Payload size in bytes.
    pub size: u32,
}

impl FrameHeader {
    /// Big-endian wire form.
    pub fn to_bytes(self) -> [u8; FRAME_HEADER_SIZE] {
        let mut out = [0u8; FRAME_HEADER_SIZE];
        out[0..4].copy_from_slice(&self.command.to_be_bytes());
        out[4..8].copy_from_slice(&self.transport.to_be_bytes());
        out[8..12].copy_from_slice(&self.size.to_be_bytes());
        out
    }

    /// Parses the big-endian wire form.
    pub fn from_bytes(bytes: [u8; FRAME_HEADER_SIZE]) -> Self {
        let word =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        FrameHeader {
            command: word(0),
            transport: word(4),
            size: word(8),
        }
    }
}

/// A complete socket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Command (`SOCKET_COMMAND_*`).
    pub command: u32,
    /// Transport type (`SOCKET_TRANSPORT_*`).
    pub transport: u32,
    /// Payload.
    pub payload: Vec<u8>,
}

/// Why [`read_frame`] returned no frame.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection cleanly, between two messages.
    Eof,
    /// The peer closed the connection in the middle of a message.
    Truncated {
        /// Bytes of the message received before the end.
        received: usize,
    },
    /// The header announces a payload larger than allowed; the payload was not read, so the
    /// stream cannot be resynchronised.
    TooLarge(FrameHeader),
    /// A socket error (including a read timeout).
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Eof => write!(f, "connection closed by peer"),
            ReadError::Truncated { received } => {
                write!(f, "connection closed in the middle of a message ({received} bytes received)")
            }
            ReadError::TooLarge(h) => write!(
                f,
                "message announces {} payload bytes (command {:#x}, transport {:#x}), more than the {} allowed",
                h.size, h.command, h.transport, MAX_REQUEST_SIZE
            ),
            ReadError::Io(e) => write!(f, "socket error: {e}"),
        }
    }
}

/// Fills `buf` from `r`. Returns the number of bytes read before EOF (`buf.len()` if full).
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match r.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Reads one message whose payload may be at most `max_payload` bytes.
pub fn read_frame<R: Read>(r: &mut R, max_payload: usize) -> Result<Frame, ReadError> {
    let mut hdr = [0u8; FRAME_HEADER_SIZE];
    match read_full(r, &mut hdr).map_err(ReadError::Io)? {
        0 => return Err(ReadError::Eof),
        FRAME_HEADER_SIZE => {}
        received => return Err(ReadError::Truncated { received }),
    }
    let header = FrameHeader::from_bytes(hdr);
    let size = usize::try_from(header.size).unwrap_or(usize::MAX);
    if size > max_payload {
        return Err(ReadError::TooLarge(header));
    }
    let mut payload = vec![0u8; size];
    let got = read_full(r, &mut payload).map_err(ReadError::Io)?;
    if got != size {
        return Err(ReadError::Truncated {
            received: FRAME_HEADER_SIZE + got,
        });
    }
    Ok(Frame {
        command: header.command,
        transport: header.transport,
        payload,
    })
}

/// Encodes one message.
///
/// # Panics
///
/// If `payload` is 4 GiB or larger (the size field is 32 bits).
pub fn encode_frame(command: u32, transport: u32, payload: &[u8]) -> Vec<u8> {
    let size = u32::try_from(payload.len()).expect("socket payload larger than 4 GiB");
    let header = FrameHeader {
        command,
        transport,
        size,
    };
    let mut out = Vec::with_capacity(FRAME_HEADER_SIZE + payload.len());
    out.extend_from_slice(&header.to_bytes());
    out.extend_from_slice(payload);
    out
}

/// Writes one message with a single `write_all` (so a message is never interleaved) and flushes.
pub fn write_frame<W: Write>(
    w: &mut W,
    command: u32,
    transport: u32,
    payload: &[u8],
) -> io::Result<()> {
    w.write_all(&encode_frame(command, transport, payload))?;
    w.flush()
}

/// A name for a socket command, for logs.
pub fn command_name(command: u32) -> &'static str {
    match command {
        SOCKET_COMMAND_NORMAL => "NORMAL",
        SOCKET_COMMAND_STORAGE_IF_SEND => "STORAGE_IF_SEND",
        SOCKET_COMMAND_STORAGE_IF_RECV => "STORAGE_IF_RECV",
        SOCKET_COMMAND_STORAGE_ACK_STATUS => "STORAGE_ACK_STATUS",
        SOCKET_COMMAND_OOB_ENCAP_KEY_UPDATE => "OOB_ENCAP_KEY_UPDATE",
        SOCKET_COMMAND_CONTINUE => "CONTINUE",
        SOCKET_COMMAND_SHUTDOWN => "SHUTDOWN",
        SOCKET_COMMAND_UNKNOWN => "UNKNOWN",
        SOCKET_COMMAND_TEST => "TEST",
        PLATFORM_IDE_KEYS => "PLATFORM_IDE_KEYS",
        PLATFORM_EVENT => "PLATFORM_EVENT",
        PLATFORM_TDI_STATE => "PLATFORM_TDI_STATE",
        _ => "unknown",
    }
}

/// QEMU's side of the connection, acknowledged at once.
///
/// QEMU writes each message with four `send()` calls (command, transport, size, payload) on a
/// socket with Nagle's algorithm on: everything after the first four bytes waits until they
/// are acknowledged. With the receiver's delayed ACK that is up to 40 ms per DOE exchange, so
/// every read re-arms TCP_QUICKACK (Linux clears it on its own). The endpoint's own replies are
/// one write each on a TCP_NODELAY socket.
pub struct QuickAckStream(TcpStream);

impl QuickAckStream {
    /// Wraps an accepted connection and sets TCP_NODELAY on it.
    pub fn new(stream: TcpStream) -> Self {
        let _ = stream.set_nodelay(true);
        QuickAckStream(stream)
    }

    /// The connection.
    pub fn get_ref(&self) -> &TcpStream {
        &self.0
    }
}

impl Read for QuickAckStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(target_os = "linux")]
        let _ = self.0.set_quickack(true);
        self.0.read(buf)
    }
}

impl Write for QuickAckStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn header_is_big_endian() {
        let h = FrameHeader {
            command: SOCKET_COMMAND_NORMAL,
            transport: SOCKET_TRANSPORT_PCI_DOE,
            size: 0x0102_0304,
        };
        assert_eq!(h.to_bytes(), [0, 0, 0, 1, 0, 0, 0, 2, 1, 2, 3, 4]);
        assert_eq!(FrameHeader::from_bytes(h.to_bytes()), h);
    }

    #[test]
    fn frame_roundtrip() {
        let bytes = encode_frame(SOCKET_COMMAND_TEST, SOCKET_TRANSPORT_PCI_DOE, b"abc");
        assert_eq!(bytes.len(), 15);
        let mut c = Cursor::new(bytes);
        let f = read_frame(&mut c, 16).unwrap();
        assert_eq!(f.command, SOCKET_COMMAND_TEST);
        assert_eq!(f.transport, SOCKET_TRANSPORT_PCI_DOE);
        assert_eq!(f.payload, b"abc");
        assert!(matches!(read_frame(&mut c, 16), Err(ReadError::Eof)));
    }

    #[test]
    fn empty_payload() {
        let mut c = Cursor::new(encode_frame(
            SOCKET_COMMAND_SHUTDOWN,
            SOCKET_TRANSPORT_PCI_DOE,
            &[],
        ));
        let f = read_frame(&mut c, 0).unwrap();
        assert_eq!(f.command, SOCKET_COMMAND_SHUTDOWN);
        assert!(f.payload.is_empty());
    }

    #[test]
    fn truncated_header_and_payload() {
        let mut c = Cursor::new(vec![0, 0, 0, 1, 0]);
        assert!(matches!(
            read_frame(&mut c, 16),
            Err(ReadError::Truncated { received: 5 })
        ));
        let mut bytes = encode_frame(
            SOCKET_COMMAND_NORMAL,
            SOCKET_TRANSPORT_PCI_DOE,
            &[1, 2, 3, 4],
        );
        bytes.pop();
        let mut c = Cursor::new(bytes);
        assert!(matches!(
            read_frame(&mut c, 16),
            Err(ReadError::Truncated { received: 15 })
        ));
    }

    #[test]
    fn too_large_is_rejected_before_reading_payload() {
        let h = FrameHeader {
            command: SOCKET_COMMAND_NORMAL,
            transport: SOCKET_TRANSPORT_PCI_DOE,
            size: u32::MAX,
        };
        let mut c = Cursor::new(h.to_bytes().to_vec());
        match read_frame(&mut c, MAX_REQUEST_SIZE) {
            Err(ReadError::TooLarge(got)) => assert_eq!(got, h),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn write_frame_writes_everything() {
        let mut out = Vec::new();
        write_frame(
            &mut out,
            SOCKET_COMMAND_NORMAL,
            SOCKET_TRANSPORT_PCI_DOE,
            &[9; 8],
        )
        .unwrap();
        assert_eq!(
            out,
            encode_frame(SOCKET_COMMAND_NORMAL, SOCKET_TRANSPORT_PCI_DOE, &[9; 8])
        );
        assert_eq!(command_name(SOCKET_COMMAND_SHUTDOWN), "SHUTDOWN");
        assert_eq!(command_name(7), "unknown");
    }

    #[test]
    fn quickack_stream_carries_frames_both_ways() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut server = QuickAckStream::new(listener.accept().unwrap().0);
        assert!(server.get_ref().nodelay().unwrap());
        // As QEMU sends it: the header fields and the payload in separate writes.
        let frame = encode_frame(
            SOCKET_COMMAND_NORMAL,
            SOCKET_TRANSPORT_PCI_DOE,
            &[1, 2, 3, 4],
        );
        for part in [&frame[..4], &frame[4..8], &frame[8..12], &frame[12..]] {
            client.write_all(part).unwrap();
        }
        let f = read_frame(&mut server, 16).unwrap();
        assert_eq!(f.payload, vec![1, 2, 3, 4]);
        write_frame(
            &mut server,
            SOCKET_COMMAND_NORMAL,
            SOCKET_TRANSPORT_PCI_DOE,
            &[9],
        )
        .unwrap();
        let back = read_frame(&mut client, 16).unwrap();
        assert_eq!(
            (back.command, back.payload),
            (SOCKET_COMMAND_NORMAL, vec![9])
        );
    }
}
