//! End-to-end tests: start the real `coco-endpoint` binary and talk to it the way QEMU does.
//!
//! Every socket has read/write timeouts and every wait has a deadline, so a broken endpoint
//! makes these tests fail, never hang. A child process still running at the end of a test is
//! killed by `Child`'s guard.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use coco_doe::{decode_object, encode_object, object_size, DOE_TYPE_CMA, PCI_SIG_VENDOR_ID};
use coco_endpoint::socket::{
    encode_frame, read_frame, Frame, ReadError, SOCKET_COMMAND_NORMAL, SOCKET_COMMAND_SHUTDOWN,
    SOCKET_COMMAND_TEST, SOCKET_COMMAND_UNKNOWN, SOCKET_TRANSPORT_PCI_DOE,
};
use coco_spdm::{
    parse_error_response, parse_version_response, SpdmVersion, SPDM_ERROR_INVALID_REQUEST,
    SPDM_ERROR_UNSUPPORTED_REQUEST, SPDM_GET_CAPABILITIES, SPDM_GET_CSR,
};

const IO_TIMEOUT: Duration = Duration::from_secs(5);
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Kills the child on drop unless it has already been reaped.
struct Endpoint {
    child: Option<Child>,
    dir: PathBuf,
}

impl Endpoint {
    fn start(args: &[&str], name: &str) -> (Endpoint, Vec<u16>) {
        let dir = std::env::temp_dir().join(format!(
            "coco-endpoint-test-{}-{}-{name}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let port_file = dir.join("ports");
        let log = dir.join("log");
        let child = Command::new(env!("CARGO_BIN_EXE_coco-endpoint"))
            .args(args)
            .arg("--port-file")
            .arg(&port_file)
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start coco-endpoint");
        let mut ep = Endpoint {
            child: Some(child),
            dir,
        };
        let ports = ep.wait_ports(&port_file);
        (ep, ports)
    }

    fn wait_ports(&mut self, path: &Path) -> Vec<u16> {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        loop {
            if let Ok(text) = fs::read_to_string(path) {
                // The file appears complete (renamed into place) or not at all.
                return text
                    .lines()
                    .map(|l| l.parse().expect("port number"))
                    .collect();
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "coco-endpoint exited early with {status}; log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no port file after {EXIT_TIMEOUT:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Waits (bounded) for the process to exit.
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + EXIT_TIMEOUT;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "coco-endpoint did not exit within {EXIT_TIMEOUT:?}; log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

fn cma(msg: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; object_size(msg.len()).unwrap()];
    encode_object(PCI_SIG_VENDOR_ID, DOE_TYPE_CMA, msg, &mut out).unwrap();
    out
}

/// One QEMU-style exchange: NORMAL + PCI_DOE request, then one reply frame.
fn exchange(s: &mut TcpStream, object: &[u8]) -> Frame {
    s.write_all(&encode_frame(
        SOCKET_COMMAND_NORMAL,
        SOCKET_TRANSPORT_PCI_DOE,
        object,
    ))
    .unwrap();
    let f = read_frame(s, 4608).expect("reply frame");
    assert_eq!(f.command, SOCKET_COMMAND_NORMAL);
    assert_eq!(f.transport, SOCKET_TRANSPORT_PCI_DOE);
    f
}

/// Sends GET_VERSION and returns the versions in the reply.
fn get_version(s: &mut TcpStream) -> Vec<SpdmVersion> {
    let f = exchange(s, &cma(&[0x10, 0x84, 0, 0]));
    let obj = decode_object(&f.payload).expect("well-formed DOE reply");
    assert!(obj.header.is(PCI_SIG_VENDOR_ID, DOE_TYPE_CMA));
    let v = parse_version_response(obj.payload).expect("VERSION");
    v.entries().map(|e| e.version()).collect()
}

/// The (code, data) of an ERROR reply, which must carry SPDMVersion `version`.
fn spdm_error(f: &Frame, version: u8) -> (u8, u8) {
    let obj = decode_object(&f.payload).expect("well-formed DOE reply");
    assert!(obj.header.is(PCI_SIG_VENDOR_ID, DOE_TYPE_CMA));
    let e = parse_error_response(obj.payload).expect("ERROR");
    assert_eq!(e.version, version);
    (e.code, e.data)
}

fn shutdown(s: &mut TcpStream) {
    s.write_all(&encode_frame(
        SOCKET_COMMAND_SHUTDOWN,
        SOCKET_TRANSPORT_PCI_DOE,
        &[],
    ))
    .unwrap();
    let f = read_frame(s, 0).expect("SHUTDOWN reply");
    assert_eq!(f.command, SOCKET_COMMAND_SHUTDOWN);
    assert!(f.payload.is_empty());
}

const ALL: [SpdmVersion; 4] = [
    SpdmVersion::V1_0,
    SpdmVersion::V1_1,
    SpdmVersion::V1_2,
    SpdmVersion::V1_3,
];

#[test]
fn two_endpoints_qemu_style() {
    let (mut ep, ports) = Endpoint::start(&["--count", "2"], "two");
    assert_eq!(ports.len(), 2);
    assert_ne!(ports[0], ports[1]);
    let mut a = connect(ports[0]);
    let mut b = connect(ports[1]);

    // GET_VERSION on both, interleaved.
    assert_eq!(get_version(&mut a), ALL);
    assert_eq!(get_version(&mut b), ALL);
    assert_eq!(get_version(&mut a), ALL);

    // A malformed DOE object (length field says 5 DW, 3 DW sent) -> InvalidRequest.
    let mut bad = cma(&[0x10, 0x84, 0, 0]);
    bad[4] = 5;
    assert_eq!(
        spdm_error(&exchange(&mut a, &bad), 0x10),
        (SPDM_ERROR_INVALID_REQUEST, 0)
    );
    // Not even a DOE header.
    assert_eq!(
        spdm_error(&exchange(&mut a, &[1, 2, 3]), 0x10),
        (SPDM_ERROR_INVALID_REQUEST, 0)
    );

    // A GET_CAPABILITIES too short for its version 1.2 -> InvalidRequest, with version 1.2
    // (an ERROR carries the request's version until one is negotiated).
    let f = exchange(&mut b, &cma(&[0x12, SPDM_GET_CAPABILITIES, 0, 0]));
    assert_eq!(spdm_error(&f, 0x12), (SPDM_ERROR_INVALID_REQUEST, 0));

    // An unsupported request -> UnsupportedRequest with the code in param2.
    let f = exchange(&mut b, &cma(&[0x12, SPDM_GET_CSR, 0, 0]));
    assert_eq!(
        spdm_error(&f, 0x12),
        (SPDM_ERROR_UNSUPPORTED_REQUEST, SPDM_GET_CSR)
    );

    // TEST is echoed, unknown commands get UNKNOWN with an empty payload.
    a.write_all(&encode_frame(
        SOCKET_COMMAND_TEST,
        SOCKET_TRANSPORT_PCI_DOE,
        b"hello",
    ))
    .unwrap();
    let f = read_frame(&mut a, 64).unwrap();
    assert_eq!(
        (f.command, f.payload.as_slice()),
        (SOCKET_COMMAND_TEST, &b"hello"[..])
    );
    a.write_all(&encode_frame(0x4242, SOCKET_TRANSPORT_PCI_DOE, b"??"))
        .unwrap();
    let f = read_frame(&mut a, 64).unwrap();
    assert_eq!((f.command, f.payload.len()), (SOCKET_COMMAND_UNKNOWN, 0));

    // The connection still works after all that.
    assert_eq!(get_version(&mut a), ALL);

    shutdown(&mut a);
    shutdown(&mut b);
    let status = ep.wait_exit();
    assert!(status.success(), "exit status {status}; log:\n{}", ep.log());

    let log = ep.log();
    for line in log.lines() {
        assert!(line.starts_with("coco-endpoint["), "bad log line {line:?}");
    }
    assert!(log.contains(&format!(
        "coco-endpoint[0:{}]: GET_VERSION -> VERSION",
        ports[0]
    )));
    assert!(log.contains(&format!("coco-endpoint[1:{}]: SHUTDOWN", ports[1])));
    assert!(log.contains("malformed DOE object (12 bytes)"), "{log}");
    assert!(log.contains("coco-endpoint[*:*]: all endpoints finished"));
}

#[test]
fn faults_versions_and_eof() {
    let (mut ep, ports) = Endpoint::start(
        &[
            "--count",
            "3",
            "--versions",
            "1.2,1.3",
            "--fault",
            "1:no-answer",
            "--fault",
            "2:garbage",
        ],
        "faults",
    );
    let mut a = connect(ports[0]);
    let mut b = connect(ports[1]);
    let mut c = connect(ports[2]);

    assert_eq!(get_version(&mut a), [SpdmVersion::V1_2, SpdmVersion::V1_3]);

    // no-answer: the request is read, the reply never comes.
    b.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    b.write_all(&encode_frame(
        SOCKET_COMMAND_NORMAL,
        SOCKET_TRANSPORT_PCI_DOE,
        &cma(&[0x10, 0x84, 0, 0]),
    ))
    .unwrap();
    match read_frame(&mut b, 4608) {
        Err(ReadError::Io(e)) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
        other => panic!("expected a timeout, got {other:?}"),
    }

    // garbage: a well-formed DOE object whose SPDM payload is not a VERSION response.
    let f = exchange(&mut c, &cma(&[0x10, 0x84, 0, 0]));
    let obj = decode_object(&f.payload).expect("garbage is still a well-formed DOE object");
    assert!(obj.header.is(PCI_SIG_VENDOR_ID, DOE_TYPE_CMA));

    // Closing the connections (QEMU exiting without SHUTDOWN) ends the endpoints too.
    drop(a);
    drop(b);
    drop(c);
    let status = ep.wait_exit();
    assert!(status.success(), "exit status {status}; log:\n{}", ep.log());
    let log = ep.log();
    assert!(
        log.contains(&format!("coco-endpoint[1:{}]: fault no-answer", ports[1])),
        "{log}"
    );
    assert!(
        log.contains(&format!("coco-endpoint[2:{}]: fault garbage", ports[2])),
        "{log}"
    );
}

#[test]
fn oversized_frame_closes_connection_and_persist_accepts_again() {
    let (mut ep, ports) = Endpoint::start(&["--count", "1", "--persist"], "persist");
    let mut a = connect(ports[0]);
    // Header announcing 16 MiB: the endpoint closes the connection instead of reading it.
    let mut frame = encode_frame(SOCKET_COMMAND_NORMAL, SOCKET_TRANSPORT_PCI_DOE, &[]);
    frame[8..12].copy_from_slice(&(16u32 << 20).to_be_bytes());
    a.write_all(&frame).unwrap();
    let mut buf = [0u8; 16];
    let n = a.read(&mut buf).expect("EOF, not a timeout");
    assert_eq!(n, 0, "connection should be closed without a reply");

    // --persist: a new connection is served, and SHUTDOWN does not end the process.
    let mut b = connect(ports[0]);
    assert_eq!(get_version(&mut b), ALL);
    shutdown(&mut b);
    let mut c = connect(ports[0]);
    assert_eq!(get_version(&mut c), ALL);
    assert!(
        ep.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "still running"
    );
    let log = ep.log();
    assert!(log.contains("closing the connection"), "{log}");
    // Dropping `ep` kills the process.
}

#[test]
fn explicit_ports_and_usage_errors() {
    // Pick a free port by binding to 0, release it, and ask the endpoint for it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (mut ep, ports) = Endpoint::start(
        &[
            "--port",
            &port.to_string(),
            "--heartbeat-period",
            "3",
            "--handshake-in-clear",
        ],
        "explicit",
    );
    assert_eq!(ports, [port]);
    let mut a = connect(port);
    assert_eq!(get_version(&mut a), ALL);
    shutdown(&mut a);
    assert!(ep.wait_exit().success());
    let log = ep.log();
    assert!(
        log.contains("HeartbeatPeriod 3 s, handshake in the clear if the requester agrees"),
        "{log}"
    );

    let bin = env!("CARGO_BIN_EXE_coco-endpoint");
    let run = |args: &[&str]| {
        Command::new(bin)
            .args(args)
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .unwrap()
    };
    assert_eq!(run(&[]).code(), Some(2));
    assert_eq!(run(&["--count", "1", "--port", "1"]).code(), Some(2));
    assert_eq!(
        run(&["--count", "1", "--fault", "1:garbage"]).code(),
        Some(2)
    );
    assert_eq!(run(&["--count", "1", "--versions", "1.16"]).code(), Some(2));
    assert_eq!(run(&["--count", "1", "--fault", "explode"]).code(), Some(2));
    for bad in ["256", "-1", "x"] {
        assert_eq!(
            run(&["--count", "1", "--heartbeat-period", bad]).code(),
            Some(2),
            "{bad}"
        );
    }
    assert_eq!(run(&["--help"]).code(), Some(0));
}
