//! `coco-endpoint`: emulated CMA/SPDM endpoints for QEMU's `spdm_port` socket.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use clap::{ArgGroup, CommandFactory, FromArgMatches, Parser};
use coco_endpoint::crypto;
use coco_endpoint::measurements::{parse_blocks, MeasConfig};
use coco_endpoint::pki::{
    build_profile_identity, profile_for, Identity, KeyKind, PkiOptions, PkiProfile, ProfileSpec,
    DEFAULT_CMA_ID,
};
use coco_endpoint::socket::QuickAckStream;
use coco_endpoint::{
    fault_for, key_for, parse_slot_list, parse_version_list, serve, Fault, FaultSpec, KeySpec,
    Logger, Responder, SessionEnd, SessionOptions, FAULT_HELP,
};
use coco_spdm::VersionEntry;

const ABOUT: &str = "Emulated PCIe CMA/SPDM endpoint(s) serving QEMU's spdm_port socket";

const LONG_ABOUT: &str = "\
Emulated PCIe CMA/SPDM endpoint(s) serving QEMU's spdm_port socket.

QEMU's device option spdm_port=N (e.g. -device nvme,...,spdm_port=N) makes QEMU connect as a TCP \
client to 127.0.0.1:N when the device is created (QEMU fails to start if nothing listens) and \
forward every CMA/SPDM data object the guest writes to the device's DOE mailbox. Each message, in \
both directions, is a 12-byte header of three big-endian u32 - command, transport type, payload \
size - followed by the payload. Commands: NORMAL=0x1 (one exchange), TEST=0xDEAD, \
SHUTDOWN=0xFFFE (sent by QEMU when the device goes away; no reply is read). Transport PCI_DOE=2: \
the payload is one whole DOE data object, its 8-byte DOE header included, and so is the reply, \
which QEMU accepts up to 4608 bytes. QEMU waits for the reply with the VM's device emulation \
blocked, so an endpoint always answers with a well-formed frame; faults are injected inside the \
DOE payload (or, with no-answer, by deliberately never answering).

Each endpoint listens on its own 127.0.0.1 port and serves one connection at a time, as an SPDM \
1.0-1.3 responder for device authentication: GET_VERSION (VERSION lists --versions), \
GET_CAPABILITIES (CERT_CAP and CHAL_CAP, CTExponent 20, DataTransferSize = MaxSPDMmsgSize = 4600 \
so that every response fits QEMU's 4608-byte DOE reply), NEGOTIATE_ALGORITHMS (the strongest \
offered asymmetric algorithm the leaf key can sign with - ECDSA P-256/P-384/P-521, RSASSA or RSAPSS \
2048/3072/4096, PSS preferred - and the strongest offered of SHA-512/384/256), GET_DIGESTS, \
GET_CERTIFICATE (chunked by offset and length), CHALLENGE (CHALLENGE_AUTH signed over the \
transcript, with the SPDM 1.2+ signing prefix) and GET_MEASUREMENTS (CAPABILITIES announce \
MEAS_CAP = 2, signed, and MEAS_FRESH_CAP; ALGORITHMS select the DMTF measurement specification and \
a MeasurementHashAlgo equal to the BaseHashAlgo; signed MEASUREMENTS cover VCA || L1/L2 for 1.2+, \
L1/L2 alone for 1.0/1.1, L1/L2 being every GET_MEASUREMENTS/MEASUREMENTS since the last signed \
one, with the leaf key of the requested slot). Requests out of order get ERROR UnexpectedRequest, \
requests with another version than the negotiated one ERROR VersionMismatch, GET_VERSION resets \
the connection, other SPDM requests get ERROR UnsupportedRequest (param2 = the request code). A \
malformed DOE object (bad length, wrong vendor, unknown type, SPDM message too short) gets ERROR \
InvalidRequest in a CMA object; DOE discovery objects get the discovery response (QEMU answers \
discovery itself). TEST is echoed; an unknown \
socket command gets an UNKNOWN (0xFFFF) reply with an empty payload; a message announcing more than \
1 MiB closes the connection. SHUTDOWN is answered with an empty SHUTDOWN message.

Without --persist an endpoint finishes when its first connection ends (SHUTDOWN, EOF or error) \
and the process exits 0 once every endpoint has finished. With --persist endpoints accept new \
connections forever. Log lines start with coco-endpoint[<index>:<port>]: (index = 0-based \
endpoint number; process-wide lines use coco-endpoint[*:*]:). Exit status: 0 when all endpoints \
finished, 1 on a runtime error (cannot listen, cannot write the port file or the PKI), 2 on bad \
usage.

PKI: a root CA, the CA certificates below it that --pki-profile asks for (all ECDSA P-384 with \
SHA-384 signatures and basicConstraints CA:TRUE) and, for each slot in --slots, a leaf with its \
own key of the --key type (p256, p384, p521, rsa2048, rsa3072, rsa4096: the key that signs \
CHALLENGE_AUTH, MEASUREMENTS and KEY_EXCHANGE_RSP), basicConstraints CA:false, keyUsage \
digitalSignature, extendedKeyUsage id-DMTF-eku-responder-auth and the CMA identity (--cma-id) as \
a subjectAltName otherName of type 2.23.147 (UTF8String). Each slot's SPDM certificate chain is \
the 4-byte header, the hash of the root certificate, then root, CAs and leaf in DER. PKI \
profiles (--pki-profile [INDEX:]PROFILE; the root is the same in every profile, so one trust \
anchor serves all endpoints): standard (default; root, one intermediate with pathLenConstraint 0 \
and keyUsage keyCertSign, cRLSign, digitalSignature, leaf: 3 certificates); no-keyusage (root, an \
intermediate with no keyUsage extension at all and no pathLenConstraint, leaf: valid, RFC 5280 \
checks keyCertSign only when keyUsage is present); long-chain (root, four intermediates with \
pathLenConstraint 3, 2, 1, 0 and the standard keyUsage, leaf: 6 certificates, valid); \
pathlen-exceeded (root, an intermediate with pathLenConstraint 0, a sub-CA it issued anyway, \
leaf: 4 certificates, invalid, a requester must refuse it); ca-no-keycertsign (root, an \
intermediate whose keyUsage is digitalSignature only, no pathLenConstraint, leaf: invalid, a \
requester must refuse it). Chain faults (--fault untrusted-root, expired-leaf, broken-chain) \
apply to the profile's chain. With --pki-dir the root (root.der, root.pem, root.key.pem) is \
created once and reused, so it can be loaded into a kernel keyring as the trust anchor; the other \
CA keys and the leaf keys are kept there too (*.key.pem), the certificates are issued at every \
start (intermediate.der, leaf-<key>-slot<N>.der; other profiles: <profile>-ca<N>.der, N = 1 right \
below the root, and <profile>-leaf-<key>-slot<N>.der). Without --pki-dir everything is generated \
in memory. The port file is written after the PKI is ready.

Measurement blocks, by default: 1 immutable_rom, 2 mutable_firmware, 3 hardware_config, 4 \
firmware_config (digests of fixed strings, with the negotiated hash), 5 version (raw \"1.4.2\"), 6 \
svn (raw, 3 as an 8-byte little-endian integer). --measurements FILE replaces them: one block per \
line, INDEX TYPE FORM VALUE, '#' comments and blank lines ignored. INDEX 1-254; TYPE a number \
0-127 or immutable_rom, mutable_firmware, hardware_config, firmware_config, manifest, \
device_mode, version, svn, hem, informational, structured_manifest; FORM raw or digest; VALUE \
text:STRING (rest of the line), hex:HEX or plain HEX. A digest given as text: or plain hex is data \
hashed with the negotiated hash; hex: is the exact digest sent. --fw-update-file PATH simulates a \
firmware update: while PATH exists (checked at every GET_MEASUREMENTS), mutable_firmware digests \
are computed from PATH's content (\"coco-endpoint firmware image 1.5.0\" if empty) and raw version \
blocks read \"1.5.0\"; deleting PATH reverts.

Secure sessions (SPDM 1.1+, secured messages DSP0277 1.0/1.1): CAPABILITIES also announce \
KEY_EX_CAP, ENCRYPT_CAP, MAC_CAP, HBEAT_CAP and KEY_UPD_CAP. Only when the requester's \
GET_CAPABILITIES sets KEY_EX_CAP too do ALGORITHMS select a DHE group (of --dhe, preference \
secp521r1 > secp384r1 > secp256r1), an AEAD (of --aead, when the requester also sets ENCRYPT_CAP \
or MAC_CAP; preference AES-256-GCM > ChaCha20-Poly1305 > AES-128-GCM) and the SPDM key schedule; \
no common group, AEAD or key schedule (or, 1.2+, no opaque data format 1) is then ERROR \
InvalidRequest, as libspdm answers. A requester without KEY_EX_CAP gets none of them selected and \
can still authenticate and read measurements; its KEY_EXCHANGE gets ERROR UnexpectedRequest. \
KEY_EXCHANGE (ECDHE, KEY_EXCHANGE_RSP signed with the slot's leaf key: over the transcript hash \
at 1.1, with the signing prefix from 1.2; secured-message versions in DSP0277 1.0's opaque data \
format at 1.1, in format 1 from 1.2; key schedule labels \"spdm1.N \") opens a session; then \
HEARTBEAT, KEY_UPDATE, END_SESSION and any other request (GET_MEASUREMENTS, ...) are served inside \
it, as secured CMA objects (DOE type 2, no sequence number field, no padding). FINISH, HEARTBEAT, \
KEY_UPDATE and END_SESSION outside a session get ERROR SessionRequired (1.2+; UnexpectedRequest \
at 1.1, which has no such code). One session at a time; GET_VERSION or a new KEY_EXCHANGE ends \
it; a secured object without a session gets ERROR InvalidRequest in a CMA object. \
CHALLENGE and KEY_EXCHANGE may ask for a MeasurementSummaryHash: type 0xFF (all) is the \
negotiated hash of every measurement block (Index, MeasurementSpecification, MeasurementSize, \
Measurement) as a non-raw GET_MEASUREMENTS for all blocks would return them at that moment, type \
1 (TCB) the same over the immutable_rom blocks only. --heartbeat-period SECS (0-255, default 0) \
is the HeartbeatPeriod in KEY_EXCHANGE_RSP (Param1): a session that receives no request within \
it (secured message or FINISH) for more than twice that long is terminated, noticed when the next \
request arrives, and a secured message for it is then answered like one without a session; 0 \
means no heartbeat and no expiry. By default the handshake is encrypted: KEY_EXCHANGE_RSP carries \
ResponderVerifyData and FINISH / FINISH_RSP are secured messages with the handshake keys. \
--handshake-in-clear makes CAPABILITIES announce HANDSHAKE_IN_THE_CLEAR_CAP too; when the \
requester's GET_CAPABILITIES sets it as well, the handshake is in the clear: KEY_EXCHANGE_RSP \
carries no ResponderVerifyData, FINISH and FINISH_RSP are CMA objects (DOE type 1) and FINISH_RSP \
carries ResponderVerifyData. A FINISH in the clear for a session whose handshake is encrypted \
gets ERROR SessionRequired, a secured FINISH for one in the clear ERROR UnexpectedRequest, a \
RequesterVerifyData that does not verify ERROR DecryptError and ends the session. ERRORs carry \
the negotiated version, before GET_CAPABILITIES succeeded the request's (1.0 for GET_VERSION). \
--heartbeat-period, --handshake-in-clear, --dhe and --aead apply to every endpoint of the \
process.

TEE-IO (Documentation/coco/tee-io-platform.rst): inside a secure session, VENDOR_DEFINED_REQUEST \
with StandardID 3 (PCI-SIG), VendorID 0x0001 reaches the IDE_KM responder (protocol 0: QUERY \
answered with the IDE registers QEMU pushed, else a default capability with 2 selective streams; \
KEY_PROG for key sets K0/K1 x RX/TX x PR/NPR/CPL per stream ID; K_SET_GO; K_SET_STOP erases the \
key) and the TDISP responder (protocol 1: one TDI; LOCK_INTERFACE needs the default stream's six \
keys in go, returns a random nonce and freezes the interface report built from the BARs QEMU \
pushed, else BAR0 16 KiB at 0xfe000000; the report in portions of up to 1024 bytes; \
START_INTERFACE with the lock's nonce; STOP_INTERFACE; TDISP ERRORs). Outside a session it gets \
ERROR SessionRequired. QEMU's side channel on the same socket: PLATFORM_IDE_KEYS (0xC0C00001, \
SHA-256 digests of the keys in go, never keys), PLATFORM_EVENT (0xC0C00002: FLR and RESET erase \
the keys and unlock the TDI, CONFIG_WRITE to a BAR or clearing memory/bus-master enable moves a \
locked TDI to ERROR, BARS, IDE_REGISTERS, STREAM_DISABLED) and PLATFORM_TDI_STATE (0xC0C00003). \
--ide-test-keys STREAM pre-programs, at every connection, K0 keys in go for the six \
(direction, sub-stream) pairs of STREAM: key = SHA-256(\"coco-ide-test\" || stream || dir || \
substream), IFV = the first 8 bytes of SHA-256(\"coco-ide-test\" || stream || dir || substream || \
\"ifv\"), one byte each for stream, dir (0 RX, 1 TX, the endpoint's directions) and substream (0 \
PR, 1 NPR, 2 CPL), so a guest test can program matching (or mismatched) root-port keys without \
an IDE_KM requester.";

const AFTER_HELP: &str = "\
Examples:
  coco-endpoint --port 2323
  coco-endpoint --count 2 --port-file /tmp/ports --log /tmp/endpoint.log
  coco-endpoint --count 3 --versions 1.2,1.3 --fault 2:no-answer
  coco-endpoint --count 2 --pki-dir /tmp/pki --key rsa3072 --key 1:p256 --slots 0,1 --fault 1:busy:2
  coco-endpoint --count 2 --pki-dir /tmp/pki --key p521 --pki-profile 1:no-keyusage
  coco-endpoint --port 0 --port-file /tmp/port --measurements blocks.txt --fw-update-file /tmp/fw0
  coco-endpoint --count 2 --heartbeat-period 5 --handshake-in-clear
  coco-endpoint --dhe secp521r1 --aead aes128-gcm --fault bad-summary
  coco-endpoint --count 2 --ide-test-keys 1 --fault 1:tdisp-error:invalid-device-configuration

Measurements file example:
  # INDEX TYPE FORM VALUE
  1 immutable_rom digest text:boot ROM v1
  2 mutable_firmware digest hex:5f1d...(exactly the hash size)
  5 version raw text:2.0.1
  6 svn raw 0400000000000000";

#[derive(Debug, Parser)]
#[command(name = "coco-endpoint", version, about = ABOUT, long_about = LONG_ABOUT)]
#[command(group(ArgGroup::new("endpoints").required(true).args(["ports", "count"])))]
struct Args {
    /// Listen on 127.0.0.1:PORT for one endpoint; repeat for more endpoints (0 = any free port)
    #[arg(long = "port", value_name = "PORT")]
    ports: Vec<u16>,

    /// Open N endpoints on free ephemeral ports (see --port-file)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    count: Option<u16>,

    /// After all listeners are bound, write their ports to PATH, one per line in endpoint order
    /// (written to a temporary file and renamed, so readers never see a partial file)
    #[arg(long, value_name = "PATH")]
    port_file: Option<PathBuf>,

    /// SPDM versions offered in VERSION, in this order (MAJOR.MINOR[.UPDATE], comma-separated)
    #[arg(long, value_name = "LIST", default_value = "1.0,1.1,1.2,1.3", value_parser = versions_parser)]
    versions: Versions,

    /// Append log lines to PATH instead of standard error
    #[arg(long, value_name = "PATH")]
    log: Option<PathBuf>,

    /// Keep accepting new connections after a connection ends (the process then runs until killed)
    #[arg(long)]
    persist: bool,

    /// Inject a fault: KIND for all endpoints or INDEX:KIND for endpoint INDEX (0-based); repeatable,
    /// per-endpoint specs win. The kinds are listed below
    #[arg(long = "fault", value_name = "[INDEX:]KIND")]
    faults: Vec<FaultSpec>,

    /// Leaf key type: KIND for all endpoints or INDEX:KIND for one (repeatable, per-endpoint specs
    /// win). KIND: p256, p384, p521, rsa2048, rsa3072, rsa4096
    #[arg(long = "key", value_name = "[INDEX:]KIND", default_value = "p384")]
    keys: Vec<KeySpec>,

    /// Shape of the CA chain between the shared root and the leaves: PROFILE for all endpoints or
    /// INDEX:PROFILE for one (repeatable, per-endpoint specs win). standard: one intermediate
    /// (default); no-keyusage: the intermediate has no keyUsage extension (valid); long-chain:
    /// four intermediates (valid); pathlen-exceeded: an intermediate with pathLenConstraint 0
    /// issues a sub-CA that issues the leaf (invalid); ca-no-keycertsign: the intermediate's
    /// keyUsage lacks keyCertSign (invalid)
    #[arg(long = "pki-profile", value_name = "[INDEX:]PROFILE")]
    pki_profiles: Vec<ProfileSpec>,

    /// Populated certificate slots, each with its own leaf under the same root (comma-separated, 0-7)
    #[arg(long, value_name = "LIST", default_value = "0", value_parser = parse_slot_list)]
    slots: SlotList,

    /// Directory for the PKI: the root certificate (root.der, root.pem) is written there for the
    /// trust keyring, and reused by later runs; created if missing
    #[arg(long, value_name = "DIR")]
    pki_dir: Option<PathBuf>,

    /// CMA identity in the leaf certificates' subjectAltName (PCIe r6.1 sec 6.31.3)
    #[arg(long, value_name = "STRING", default_value = DEFAULT_CMA_ID)]
    cma_id: String,

    /// Only create the PKI in --pki-dir (the root a test rig loads into the trust keyring before
    /// the endpoints start), then exit
    #[arg(long, requires = "pki_dir")]
    pki_only: bool,

    /// Print the measurement blocks as a verifier should see them when HASH (sha256, sha384,
    /// sha512) is the negotiated measurement hash, in coco-verify's reference format
    /// ("INDEX TYPE digest|raw HEX"), with the firmware update applied if --fw-update-file
    /// exists, then exit
    #[arg(long, value_name = "HASH")]
    measurements_reference: Option<String>,

    /// Measurement blocks for every endpoint, from FILE (format below) instead of the defaults
    #[arg(long, value_name = "FILE")]
    measurements: Option<PathBuf>,

    /// Firmware update switch: while PATH exists, the mutable firmware measurement and the
    /// version report an updated firmware (see below)
    #[arg(long, value_name = "PATH")]
    fw_update_file: Option<PathBuf>,

    /// HeartbeatPeriod in seconds (0-255) sent in KEY_EXCHANGE_RSP, for every endpoint: a session
    /// without a request for more than twice that long is terminated (0: no heartbeat, sessions
    /// never expire)
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    heartbeat_period: u8,

    /// Announce HANDSHAKE_IN_THE_CLEAR_CAP (every endpoint): with a requester that sets it too,
    /// KEY_EXCHANGE_RSP has no ResponderVerifyData and FINISH / FINISH_RSP travel in the clear
    #[arg(long)]
    handshake_in_clear: bool,

    /// DHE groups every endpoint supports for KEY_EXCHANGE, comma-separated: secp256r1,
    /// secp384r1, secp521r1 (the kernel requester cannot do secp521r1)
    #[arg(long, value_name = "LIST", default_value = "secp256r1,secp384r1", value_parser = dhe_parser)]
    dhe: u16,

    /// AEADs every endpoint supports for secure sessions, comma-separated: aes128-gcm,
    /// aes256-gcm, chacha20-poly1305
    #[arg(
        long,
        value_name = "LIST",
        default_value = "aes128-gcm,aes256-gcm,chacha20-poly1305",
        value_parser = aead_parser
    )]
    aead: u16,

    /// Pre-program, at every connection of every endpoint, K0 keys in go for the six
    /// (direction, sub-stream) pairs of IDE stream STREAM (keys derived as described above)
    #[arg(long, value_name = "STREAM")]
    ide_test_keys: Option<u8>,

    /// Test fixture: the --ide-test-keys keys of STREAM, and the TDI locks itself (default
    /// stream STREAM, report offset 0) once QEMU reports that stream's IDE block enabled, so
    /// that the TDISP effects of config writes, BAR moves and resets can be tested without a
    /// TDISP requester
    #[arg(long, value_name = "STREAM", conflicts_with = "ide_test_keys")]
    tdi_test_lock: Option<u8>,
}

fn dhe_parser(s: &str) -> Result<u16, String> {
    crypto::parse_alg_list(s, &crypto::DHE_NAMES, "DHE group")
}

fn aead_parser(s: &str) -> Result<u16, String> {
    crypto::parse_alg_list(s, &crypto::AEAD_NAMES, "AEAD")
}

/// The parsed `--slots` list.
type SlotList = Vec<u8>;

/// The parsed `--versions` list.
#[derive(Debug, Clone)]
struct Versions(Vec<VersionEntry>);

fn versions_parser(s: &str) -> Result<Versions, String> {
    parse_version_list(s).map(Versions)
}

/// Writes `ports` to `path` atomically: a temporary file in the same directory, then rename.
fn write_port_file(path: &Path, ports: &[u16]) -> io::Result<()> {
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let mut text = String::new();
    for port in ports {
        text.push_str(&format!("{port}\n"));
    }
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// What the TEE-IO side of every connection starts with (test fixtures).
#[derive(Debug, Clone, Copy)]
enum TeeIoFixture {
    None,
    /// `--ide-test-keys STREAM`.
    IdeTestKeys(u8),
    /// `--tdi-test-lock STREAM`.
    TdiTestLock(u8),
}

/// Runs one endpoint: accept a connection, serve it, repeat if `persist`.
#[allow(clippy::too_many_arguments)]
fn run_endpoint(
    index: usize,
    port: u16,
    listener: TcpListener,
    versions: Vec<VersionEntry>,
    fault: Fault,
    identity: Arc<Identity>,
    measurements: Arc<MeasConfig>,
    session_options: SessionOptions,
    fixture: TeeIoFixture,
    persist: bool,
    logger: Arc<Logger>,
) {
    let log = |msg: &str| logger.line(&index, &port, msg);
    log(&format!(
        "listening on 127.0.0.1:{port}, fault {fault}{}",
        if persist { ", persistent" } else { "" }
    ));
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(conn) => conn,
            Err(e) => {
                log(&format!("accept failed: {e}; retrying"));
                thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let mut stream = QuickAckStream::new(stream);
        log(&format!("connection from {peer}"));
        let mut responder =
            Responder::with_identity(versions.clone(), fault, Arc::clone(&identity));
        responder.set_measurements(Some(Arc::clone(&measurements)));
        responder.set_session_options(session_options);
        match fixture {
            TeeIoFixture::None => {}
            TeeIoFixture::IdeTestKeys(stream) => {
                responder.tee_mut().ide.program_test_keys(stream);
                log(&format!(
                    "--ide-test-keys: K0 keys in go for the six pairs of IDE stream {stream}"
                ));
            }
            TeeIoFixture::TdiTestLock(stream) => {
                responder.tee_mut().set_test_lock(stream);
                log(&format!(
                    "--tdi-test-lock: K0 keys in go for IDE stream {stream}; the TDI locks once its block is enabled"
                ));
            }
        }
        let end = serve(&mut stream, &mut responder, &mut |msg: &str| log(msg));
        let how = match end {
            SessionEnd::Shutdown => "shutdown",
            SessionEnd::Closed => "closed",
            SessionEnd::Failed => "failed",
        };
        log(&format!(
            "connection {how} after {} requests",
            responder.requests()
        ));
        if !persist {
            log("endpoint finished");
            return;
        }
    }
}

/// SHA-256 fingerprint of a certificate, for logs.
fn fingerprint(der: &[u8]) -> String {
    coco_endpoint::pki::spdm_hash(coco_spdm::auth::SPDM_HASH_SHA256, der)
        .unwrap_or_default()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn main() -> ExitCode {
    let after_help = format!(
        "{AFTER_HELP}\n\nFaults (--fault [INDEX:]KIND):\n{}",
        indent(FAULT_HELP)
    );
    let matches = Args::command().after_help(after_help).get_matches();
    let args = match Args::from_arg_matches(&matches) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };

    let logger = Arc::new(match &args.log {
        None => Logger::new(Box::new(io::stderr())),
        Some(path) => match OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => Logger::new(Box::new(f)),
            Err(e) => {
                eprintln!(
                    "coco-endpoint[*:*]: cannot open log file {}: {e}",
                    path.display()
                );
                return ExitCode::from(1);
            }
        },
    });

    let requested: Vec<u16> = match args.count {
        Some(n) => vec![0; usize::from(n)],
        None => args.ports.clone(),
    };
    if let Some(bad) = args
        .faults
        .iter()
        .filter_map(|f| f.index)
        .find(|&i| i >= requested.len())
    {
        eprintln!(
            "coco-endpoint[*:*]: --fault names endpoint {bad}, but there are only {} endpoints",
            requested.len()
        );
        return ExitCode::from(2);
    }

    if let Some(bad) = args
        .keys
        .iter()
        .filter_map(|k| k.index)
        .find(|&i| i >= requested.len())
    {
        eprintln!(
            "coco-endpoint[*:*]: --key names endpoint {bad}, but there are only {} endpoints",
            requested.len()
        );
        return ExitCode::from(2);
    }
    if let Some(bad) = args
        .pki_profiles
        .iter()
        .filter_map(|p| p.index)
        .find(|&i| i >= requested.len())
    {
        eprintln!(
            "coco-endpoint[*:*]: --pki-profile names endpoint {bad}, but there are only {} endpoints",
            requested.len()
        );
        return ExitCode::from(2);
    }

    let blocks = match &args.measurements {
        None => coco_endpoint::measurements::default_blocks(),
        Some(path) => match fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| parse_blocks(&text))
        {
            Ok(blocks) => blocks,
            Err(e) => {
                eprintln!(
                    "coco-endpoint[*:*]: bad --measurements file {}: {e}",
                    path.display()
                );
                return ExitCode::from(2);
            }
        },
    };
    let measurements = Arc::new(MeasConfig::new(blocks, args.fw_update_file.clone()));
    if let Some(hash) = &args.measurements_reference {
        let bit = match hash.as_str() {
            "sha256" => coco_spdm::auth::SPDM_HASH_SHA256,
            "sha384" => coco_spdm::auth::SPDM_HASH_SHA384,
            "sha512" => coco_spdm::auth::SPDM_HASH_SHA512,
            _ => {
                eprintln!("coco-endpoint[*:*]: --measurements-reference: unknown hash {hash}");
                return ExitCode::from(2);
            }
        };
        let (blocks, _) = measurements.current();
        for b in &blocks {
            let Some((value_type, value)) = b.render(bit, false) else {
                return ExitCode::from(2);
            };
            let raw = value_type & coco_spdm::meas::SPDM_MEAS_VALUE_RAW != 0;
            let hex: String = value.iter().map(|x| format!("{x:02x}")).collect();
            println!(
                "{} {} {} {hex}",
                b.index,
                coco_spdm::meas::MeasurementTypeName(b.kind),
                if raw { "raw" } else { "digest" }
            );
        }
        return ExitCode::SUCCESS;
    }

    // The PKI first, so that the port file only appears once the root is on disk.
    type PkiKey = (KeyKind, coco_endpoint::pki::ChainFault, PkiProfile);
    let mut identities: Vec<(PkiKey, Arc<Identity>)> = Vec::new();
    let mut endpoint_identities = Vec::new();
    for index in 0..requested.len() {
        let key = key_for(&args.keys, index, KeyKind::P384);
        let chain_fault = fault_for(&args.faults, index).chain_fault();
        let profile = profile_for(&args.pki_profiles, index);
        if profile != PkiProfile::Standard {
            logger.line(&index, &"*", &format!("PKI profile {profile}"));
        }
        let id = match identities
            .iter()
            .find(|(k, _)| *k == (key, chain_fault, profile))
        {
            Some((_, id)) => Arc::clone(id),
            None => {
                let opts = PkiOptions {
                    dir: args.pki_dir.clone(),
                    key,
                    slots: args.slots.clone(),
                    cma_id: args.cma_id.clone(),
                    fault: chain_fault,
                };
                match build_profile_identity(&opts, profile) {
                    Ok(id) => {
                        let id = Arc::new(id);
                        identities.push(((key, chain_fault, profile), Arc::clone(&id)));
                        id
                    }
                    Err(e) => {
                        logger.line(&index, &"*", &format!("cannot build the PKI: {e}"));
                        return ExitCode::from(1);
                    }
                }
            }
        };
        endpoint_identities.push(id);
    }
    if let Some(id) = endpoint_identities.first() {
        let place = match &args.pki_dir {
            Some(d) => format!("written to {}", d.join("root.der").display()),
            None => "in memory only (no --pki-dir)".to_string(),
        };
        logger.line(
            &"*",
            &"*",
            &format!(
                "trust anchor: root CA sha256 {} {place}",
                fingerprint(&id.trusted_root)
            ),
        );
    }

    if args.pki_only {
        return ExitCode::SUCCESS;
    }

    let mut listeners = Vec::new();
    for (index, &want) in requested.iter().enumerate() {
        match TcpListener::bind((Ipv4Addr::LOCALHOST, want)) {
            Ok(l) => match l.local_addr() {
                Ok(addr) => listeners.push((l, addr.port())),
                Err(e) => {
                    logger.line(
                        &index,
                        &want,
                        &format!("cannot read the bound address: {e}"),
                    );
                    return ExitCode::from(1);
                }
            },
            Err(e) => {
                logger.line(
                    &index,
                    &want,
                    &format!("cannot listen on 127.0.0.1:{want}: {e}"),
                );
                return ExitCode::from(1);
            }
        }
    }
    let ports: Vec<u16> = listeners.iter().map(|(_, p)| *p).collect();

    if let Some(path) = &args.port_file {
        if let Err(e) = write_port_file(path, &ports) {
            logger.line(
                &"*",
                &"*",
                &format!("cannot write port file {}: {e}", path.display()),
            );
            return ExitCode::from(1);
        }
    }

    let session_options = SessionOptions {
        heartbeat_period: args.heartbeat_period,
        handshake_in_clear: args.handshake_in_clear,
        dhe: args.dhe,
        aead: args.aead,
    };
    let mut handles = Vec::new();
    for (index, (listener, port)) in listeners.into_iter().enumerate() {
        let versions = args.versions.0.clone();
        let fault = fault_for(&args.faults, index);
        let identity = Arc::clone(&endpoint_identities[index]);
        logger.line(
            &index,
            &port,
            &format!(
                "key {}, slots {:?}, fault {fault}, HeartbeatPeriod {} s, handshake {}, DHE {}, AEAD {}",
                identity.key_kind().map_or("none", |k| k.name()),
                identity.slots.iter().map(|s| s.slot).collect::<Vec<_>>(),
                session_options.heartbeat_period,
                if session_options.handshake_in_clear {
                    "in the clear if the requester agrees"
                } else {
                    "encrypted"
                },
                crypto::alg_names(session_options.dhe, &crypto::DHE_NAMES),
                crypto::alg_names(session_options.aead, &crypto::AEAD_NAMES),
            ),
        );
        let logger_for_thread = Arc::clone(&logger);
        let persist = args.persist;
        let fixture = match (args.ide_test_keys, args.tdi_test_lock) {
            (_, Some(stream)) => TeeIoFixture::TdiTestLock(stream),
            (Some(stream), None) => TeeIoFixture::IdeTestKeys(stream),
            (None, None) => TeeIoFixture::None,
        };
        let measurements = Arc::clone(&measurements);
        let spawned = thread::Builder::new()
            .name(format!("endpoint-{index}"))
            .spawn(move || {
                run_endpoint(
                    index,
                    port,
                    listener,
                    versions,
                    fault,
                    identity,
                    measurements,
                    session_options,
                    fixture,
                    persist,
                    logger_for_thread,
                )
            });
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                // A bound listener nobody accepts on would hang QEMU: give up entirely.
                logger.line(
                    &index,
                    &port,
                    &format!("cannot start the endpoint thread: {e}"),
                );
                return ExitCode::from(1);
            }
        }
    }

    let mut ok = true;
    for handle in handles {
        if handle.join().is_err() {
            logger.line(&"*", &"*", "an endpoint thread panicked");
            ok = false;
        }
    }
    if !ok {
        return ExitCode::from(1);
    }
    logger.line(&"*", &"*", "all endpoints finished");
    ExitCode::SUCCESS
}

/// Indents every line of `text` by two spaces (for the help text).
fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
