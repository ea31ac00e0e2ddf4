//! Emulated PCIe CMA/SPDM endpoint for QEMU's `spdm_port` socket.
//!
//! QEMU (`-device nvme,...,spdm_port=N`) connects as a TCP client to 127.0.0.1:N when the
//! device is created and forwards every CMA (DOE type 1) and secured CMA (type 2) data object
//! the guest writes into the device's DOE mailbox; the reply is what the guest reads back.
//! This crate implements the server side:
//!
//! * [`socket`]: the socket framing (12-byte big-endian header + payload).
//! * [`pki`]: keys and certificates (root CA, intermediate CA, one leaf per slot).
//! * [`responder`]: [`Responder`] maps one request DOE object to one reply DOE object: an SPDM
//!   1.0-1.3 responder for device authentication, measurements and secure sessions, with
//!   fault injection ([`Fault`]) and session options ([`SessionOptions`]).
//! * [`session`]: [`serve`] runs one connection: framing, responder, SHUTDOWN, errors.
//! * [`measurements`]: the measurement blocks (defaults, `--measurements` file format, the
//!   `--fw-update-file` firmware update switch).
//! * [`platform`]: the TEE-IO device: the PCI-SIG vendor-defined message dispatch to the
//!   IDE_KM ([`idekm`]) and TDISP ([`tdisp`]) responders, and the side channel with QEMU
//!   (Documentation/coco/tee-io-platform.rst).
//!
//! The binary (`src/main.rs`) adds the command line, one listener thread per endpoint, the
//! port file and logging.

use std::fmt;
use std::io::Write;
use std::str::FromStr;
use std::sync::Mutex;

use coco_spdm::VersionEntry;

pub mod crypto;
pub mod idekm;
pub mod measurements;
pub mod pki;
pub mod platform;
pub mod responder;
pub mod session;
pub mod socket;
pub mod tdisp;

pub use responder::{Reply, Responder, SessionOptions};
pub use session::{serve, SessionEnd};

/// Fault injected by an endpoint (inside the DOE payload or by withholding replies; the socket
/// framing is always correct, because QEMU cannot cope with a broken frame). See
/// [`FAULT_HELP`] for what each does and what a requester sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Behave correctly.
    #[default]
    None,
    /// Read requests but never answer them: what a dead endpoint looks like (QEMU blocks).
    NoAnswer,
    /// Answer every request with a well-formed DOE object carrying random bytes.
    Garbage,
    /// CHALLENGE_AUTH carries a corrupted signature.
    BadSignature,
    /// CHALLENGE_AUTH is signed over a transcript with another CHALLENGE nonce (a replay).
    WrongNonce,
    /// CHALLENGE_AUTH is cut short (half of the signature is missing).
    Truncated,
    /// CHALLENGE_AUTH is followed by 64 bytes that do not belong to it.
    Oversized,
    /// VERSION offers only versions no requester supports (0.9 and 2.0).
    WrongVersion,
    /// Every response after VERSION carries an SPDMVersion other than the negotiated one.
    WrongHeaderVersion,
    /// ALGORITHMS selects a BaseAsymAlgo the request did not offer.
    UnsupportedAlgorithm,
    /// DIGESTS does not match the certificate chains.
    DigestMismatch,
    /// The chains end in a freshly generated root, not the one written to the PKI directory.
    UntrustedRoot,
    /// The leaf certificates expired in 2001.
    ExpiredLeaf,
    /// The intermediate certificate is not signed by the root it names.
    BrokenChain,
    /// Every request is answered ERROR Busy this many times before it is served.
    Busy(u32),
    /// GET_DIGESTS, GET_CERTIFICATE and CHALLENGE get ERROR ResponseNotReady; the response
    /// comes with RESPOND_IF_READY.
    NotReady,
    /// Signed MEASUREMENTS carry a corrupted signature.
    BadMeasSignature,
    /// A measurement block's DMTFSpecMeasurementValueSize disagrees with its MeasurementSize.
    MalformedBlock,
    /// MEASUREMENTS carry the first block twice (same index).
    DuplicateIndex,
    /// MEASUREMENTS declare a MeasurementRecordLength beyond the end of the message.
    OversizedRecord,
    /// CAPABILITIES announce MEAS_CAP = 1 (no signatures); signed requests get ERROR
    /// InvalidRequest.
    NoMeasSig,
    /// GET_MEASUREMENTS for all blocks (0xFF) gets ERROR UnsupportedRequest; per-index requests
    /// and the count query work.
    RefuseAllBlocks,
    /// KEY_EXCHANGE_RSP carries a corrupted signature.
    BadKexSignature,
    /// KEY_EXCHANGE_RSP (FINISH_RSP when the handshake is in the clear) carries a wrong
    /// ResponderVerifyData.
    WrongVerifyData,
    /// Application-phase secured responses have a MAC byte flipped.
    TamperedMac,
    /// Application-phase secured responses reuse the previous sequence number.
    ReplayedSequence,
    /// Application-phase secured responses advance the sequence number by 2.
    SkippedSequence,
    /// Application-phase secured responses carry another SessionID.
    WrongSessionId,
    /// KEY_UPDATE is answered with ERROR Unspecified.
    RefuseKeyUpdate,
    /// The MeasurementSummaryHash of CHALLENGE_AUTH and KEY_EXCHANGE_RSP has a bit flipped
    /// (the signature covers what is sent).
    BadSummary,
    /// KEY_PROG is answered KP_ACK with status 4 (unspecified failure); the key is not stored.
    KpAckFail,
    /// K_SET_GO is answered SPDM ERROR Unspecified; no key set goes.
    GoRefused,
    /// KP_ACK and K_GOSTOP_ACK echo the stream ID plus one.
    WrongStreamId,
    /// KEY_PROG is acknowledged, but the key stored has its first byte flipped (a device that
    /// corrupts keys): the link's keys do not match once both ends are enabled.
    IdeKeyMismatch,
    /// KEY_PROG for key set 1 (a key refresh) is answered KP_ACK with status 4; key set 0 works.
    RefreshKpFail,
    /// K_SET_GO of key set 1 for the TX NPR sub-stream (a key refresh, after TX PR switched) is
    /// answered SPDM ERROR Unspecified; key set 0 works.
    RefreshGoRefused,
    /// Every IDE_KM answer comes after ERROR ResponseNotReady (RDT 262 ms) and the host's
    /// RESPOND_IF_READY: a connect takes seconds, so the host can unload or unplug mid-connect.
    SlowIdeKm,
    /// The interface report's first MMIO range starts right after its BAR's end.
    ReportOutsideBars,
    /// The interface report's mmio_range_count is one more than the ranges present.
    ReportBadLength,
    /// START_INTERFACE accepts a nonce other than LOCK_INTERFACE_RSP's.
    StartWrongNonce,
    /// START_INTERFACE and STOP_INTERFACE are acknowledged but the TDI stays CONFIG_LOCKED.
    StuckLocked,
    /// LOCK_INTERFACE is answered TDISP ERROR with this code.
    TdispError(u32),
}

/// The `--fault` kinds, one per line: name and what it does. Shown by `--help`.
pub const FAULT_HELP: &str = "\
none                  behave correctly
no-answer             read requests, never reply (the DOE exchange times out)
garbage               reply to every request with a well-formed DOE object of random bytes
bad-signature         CHALLENGE_AUTH signature corrupted (signature verification fails)
wrong-nonce           CHALLENGE_AUTH signed over a transcript whose CHALLENGE carried another nonce, as a
                      replayed response would be (signature verification fails). The Nonce field of
                      CHALLENGE_AUTH is always the responder's own random value, as DSP0274 specifies
truncated             CHALLENGE_AUTH cut short: half of the signature missing
oversized             CHALLENGE_AUTH followed by 64 extra bytes
wrong-version         VERSION lists only 0.9 and 2.0 (no common version)
wrong-header-version  responses after VERSION carry a wrong SPDMVersion (negotiated + 1)
unsupported-algorithm ALGORITHMS selects a BaseAsymAlgo the requester did not offer
digest-mismatch       DIGESTS do not match the certificate chains GET_CERTIFICATE returns
untrusted-root        chains end in a fresh root CA, not the one written to --pki-dir
expired-leaf          leaf certificates valid 2000-01-01 to 2001-01-01 only
broken-chain          intermediate certificate names the root as issuer but another key signed it
busy[:N]              answer each request ERROR Busy N times (default 1), then serve it
not-ready             GET_DIGESTS, GET_CERTIFICATE and CHALLENGE answered ERROR ResponseNotReady
                      (RDTExponent 14 = 16 ms, RDTM 2); RESPOND_IF_READY then returns the response
bad-meas-signature    signed MEASUREMENTS carry a corrupted signature (verification fails)
malformed-block       the first measurement block's value size is one less than its MeasurementSize
                      implies (the record is malformed)
duplicate-index       MEASUREMENTS repeat the first block (two blocks with the same index,
                      NumberOfBlocks counts both)
oversized-record      MEASUREMENTS declare a MeasurementRecordLength 4096 bytes longer than the record
                      (beyond the end of the message)
no-meas-sig           CAPABILITIES announce MEAS_CAP = 1 (measurements without signature); signed
                      GET_MEASUREMENTS get ERROR InvalidRequest, unsigned ones work
refuse-all-blocks     GET_MEASUREMENTS for all blocks (0xFF) get ERROR UnsupportedRequest (param2
                      0xE0); per-index requests and the count query (0) work
bad-kex-signature     KEY_EXCHANGE_RSP signature corrupted (signature verification fails)
wrong-verify-data     KEY_EXCHANGE_RSP ResponderVerifyData wrong (HMAC check fails); with the handshake
                      in the clear, FINISH_RSP's ResponderVerifyData instead
tampered-mac          every application-phase secured response has a MAC byte flipped (decryption
                      fails)
replayed-sequence     application-phase secured responses after the first reuse the previous
                      sequence number (decryption with the expected number fails)
skipped-sequence      application-phase secured responses advance the sequence number by 2
                      (decryption with the expected number fails)
wrong-session-id      application-phase secured responses carry another SessionID (RspSessionID
                      bits inverted)
refuse-key-update     KEY_UPDATE answered with ERROR Unspecified (inside the session)
bad-summary           the MeasurementSummaryHash of CHALLENGE_AUTH and KEY_EXCHANGE_RSP (requested
                      with type 1 TCB or 0xFF all) has a bit flipped; the signature is valid over
                      what is sent, so only the requester's comparison with the measurements fails
kp-ack-fail           IDE_KM KEY_PROG answered KP_ACK status 4 (unspecified failure); key not stored
go-refused            IDE_KM K_SET_GO answered SPDM ERROR Unspecified (inside the session); no key
                      set goes
wrong-stream-id       IDE_KM KP_ACK and K_GOSTOP_ACK echo the stream ID plus one (keys are handled
                      correctly)
ide-key-mismatch      IDE_KM KEY_PROG is acknowledged but the key stored has its first byte
                      flipped: once both ends of the stream are enabled, the link's keys differ
refresh-kp-fail       IDE_KM KEY_PROG of key set 1 (a key refresh) answered KP_ACK status 4; key
                      set 0 is handled correctly
refresh-go-refused    IDE_KM K_SET_GO of key set 1 for TX NPR (a key refresh, after TX PR switched)
                      answered SPDM ERROR Unspecified; key set 0 is handled correctly
slow-idekm            every IDE_KM request answered ERROR ResponseNotReady (RDT 262 ms) inside the
                      session, the answer served by RESPOND_IF_READY (a native IDE connect takes
                      about 4 s)
report-outside-bars   the TDISP interface report's first MMIO range starts right after its BAR's end
report-bad-length     the TDISP interface report's mmio_range_count is one more than the ranges it
                      holds (its lengths are inconsistent)
start-wrong-nonce     TDISP START_INTERFACE accepts any nonce, not only LOCK_INTERFACE_RSP's
stuck-locked          TDISP START_INTERFACE and STOP_INTERFACE are acknowledged but the TDI stays
                      CONFIG_LOCKED
tdisp-error:CODE      TDISP LOCK_INTERFACE answered TDISP ERROR CODE: invalid-request, busy,
                      invalid-interface-state, unspecified, unsupported-request, version-mismatch,
                      vendor-specific-error, invalid-interface, invalid-nonce, insufficient-entropy,
                      invalid-device-configuration, or a number (0x104)";

impl Fault {
    /// The name used on the command line (without the count of `busy:N`).
    pub fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::NoAnswer => "no-answer",
            Fault::Garbage => "garbage",
            Fault::BadSignature => "bad-signature",
            Fault::WrongNonce => "wrong-nonce",
            Fault::Truncated => "truncated",
            Fault::Oversized => "oversized",
            Fault::WrongVersion => "wrong-version",
            Fault::WrongHeaderVersion => "wrong-header-version",
            Fault::UnsupportedAlgorithm => "unsupported-algorithm",
            Fault::DigestMismatch => "digest-mismatch",
            Fault::UntrustedRoot => "untrusted-root",
            Fault::ExpiredLeaf => "expired-leaf",
            Fault::BrokenChain => "broken-chain",
            Fault::Busy(_) => "busy",
            Fault::NotReady => "not-ready",
            Fault::BadMeasSignature => "bad-meas-signature",
            Fault::MalformedBlock => "malformed-block",
            Fault::DuplicateIndex => "duplicate-index",
            Fault::OversizedRecord => "oversized-record",
            Fault::NoMeasSig => "no-meas-sig",
            Fault::RefuseAllBlocks => "refuse-all-blocks",
            Fault::BadKexSignature => "bad-kex-signature",
            Fault::WrongVerifyData => "wrong-verify-data",
            Fault::TamperedMac => "tampered-mac",
            Fault::ReplayedSequence => "replayed-sequence",
            Fault::SkippedSequence => "skipped-sequence",
            Fault::WrongSessionId => "wrong-session-id",
            Fault::RefuseKeyUpdate => "refuse-key-update",
            Fault::BadSummary => "bad-summary",
            Fault::KpAckFail => "kp-ack-fail",
            Fault::GoRefused => "go-refused",
            Fault::WrongStreamId => "wrong-stream-id",
            Fault::IdeKeyMismatch => "ide-key-mismatch",
            Fault::RefreshKpFail => "refresh-kp-fail",
            Fault::RefreshGoRefused => "refresh-go-refused",
            Fault::SlowIdeKm => "slow-idekm",
            Fault::ReportOutsideBars => "report-outside-bars",
            Fault::ReportBadLength => "report-bad-length",
            Fault::StartWrongNonce => "start-wrong-nonce",
            Fault::StuckLocked => "stuck-locked",
            Fault::TdispError(_) => "tdisp-error",
        }
    }

    /// Every fault kind (with `busy:1` and `tdisp-error:unspecified`), for tests and help.
    pub const ALL: [Fault; 42] = [
        Fault::None,
        Fault::NoAnswer,
        Fault::Garbage,
        Fault::BadSignature,
        Fault::WrongNonce,
        Fault::Truncated,
        Fault::Oversized,
        Fault::WrongVersion,
        Fault::WrongHeaderVersion,
        Fault::UnsupportedAlgorithm,
        Fault::DigestMismatch,
        Fault::UntrustedRoot,
        Fault::ExpiredLeaf,
        Fault::BrokenChain,
        Fault::Busy(1),
        Fault::NotReady,
        Fault::BadMeasSignature,
        Fault::MalformedBlock,
        Fault::DuplicateIndex,
        Fault::OversizedRecord,
        Fault::NoMeasSig,
        Fault::RefuseAllBlocks,
        Fault::BadKexSignature,
        Fault::WrongVerifyData,
        Fault::TamperedMac,
        Fault::ReplayedSequence,
        Fault::SkippedSequence,
        Fault::WrongSessionId,
        Fault::RefuseKeyUpdate,
        Fault::BadSummary,
        Fault::KpAckFail,
        Fault::GoRefused,
        Fault::WrongStreamId,
        Fault::IdeKeyMismatch,
        Fault::RefreshKpFail,
        Fault::RefreshGoRefused,
        Fault::SlowIdeKm,
        Fault::ReportOutsideBars,
        Fault::ReportBadLength,
        Fault::StartWrongNonce,
        Fault::StuckLocked,
        Fault::TdispError(coco_tdisp::TDISP_ERROR_UNSPECIFIED),
    ];

    /// The TEE-IO faults (IDE_KM and TDISP, inside the secure session).
    pub const TEE_IO: [Fault; 11] = [
        Fault::KpAckFail,
        Fault::GoRefused,
        Fault::WrongStreamId,
        Fault::IdeKeyMismatch,
        Fault::RefreshKpFail,
        Fault::RefreshGoRefused,
        Fault::ReportOutsideBars,
        Fault::ReportBadLength,
        Fault::StartWrongNonce,
        Fault::StuckLocked,
        Fault::TdispError(coco_tdisp::TDISP_ERROR_UNSPECIFIED),
    ];

    /// The secure-session faults (they only affect KEY_EXCHANGE_RSP and secured messages).
    pub const SESSION: [Fault; 7] = [
        Fault::BadKexSignature,
        Fault::WrongVerifyData,
        Fault::TamperedMac,
        Fault::ReplayedSequence,
        Fault::SkippedSequence,
        Fault::WrongSessionId,
        Fault::RefuseKeyUpdate,
    ];

    /// The measurement faults (they only affect GET_MEASUREMENTS / MEASUREMENTS and
    /// CAPABILITIES' MEAS_CAP).
    pub const MEASUREMENT: [Fault; 6] = [
        Fault::BadMeasSignature,
        Fault::MalformedBlock,
        Fault::DuplicateIndex,
        Fault::OversizedRecord,
        Fault::NoMeasSig,
        Fault::RefuseAllBlocks,
    ];

    /// The broken certificate chain this fault asks for.
    pub fn chain_fault(self) -> pki::ChainFault {
        match self {
            Fault::UntrustedRoot => pki::ChainFault::UntrustedRoot,
            Fault::ExpiredLeaf => pki::ChainFault::ExpiredLeaf,
            Fault::BrokenChain => pki::ChainFault::BrokenChain,
            _ => pki::ChainFault::None,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Busy(n) => write!(f, "busy:{n}"),
            Fault::TdispError(code) => write!(f, "tdisp-error:{}", tdisp::error_fault_name(*code)),
            other => f.write_str(other.name()),
        }
    }
}

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(n) = s.strip_prefix("busy:") {
            return n
                .parse::<u32>()
                .map(Fault::Busy)
                .map_err(|_| format!("bad count in fault '{s}' (busy:N, N a number)"));
        }
        if s == "busy" {
            return Ok(Fault::Busy(1));
        }
        if let Some(code) = s.strip_prefix("tdisp-error:") {
            let parsed = tdisp::error_code_by_name(code).or_else(|| {
                code.strip_prefix("0x")
                    .map_or_else(|| code.parse().ok(), |h| u32::from_str_radix(h, 16).ok())
            });
            return parsed.map(Fault::TdispError).ok_or_else(|| {
                format!(
                    "bad TDISP error code in fault '{s}' (tdisp-error:NAME or tdisp-error:NUMBER)"
                )
            });
        }
        Fault::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Fault::ALL.iter().map(|f| f.name()).collect();
                format!("unknown fault '{s}' (known: {})", names.join(", "))
            })
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
        let (index, kind) = split_index(s)?;
        Ok(FaultSpec {
            index,
            fault: kind.parse()?,
        })
    }
}

/// Splits an optional leading `INDEX:` (a decimal endpoint number) off a command line value.
pub fn split_index(s: &str) -> Result<(Option<usize>, &str), String> {
    match s.split_once(':') {
        Some((index, rest)) if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) => {
            let index = index
                .parse::<usize>()
                .map_err(|_| format!("bad endpoint index '{index}' in '{s}'"))?;
            Ok((Some(index), rest))
        }
        _ => Ok((None, s)),
    }
}

/// A `--key` argument: `KIND` for every endpoint or `INDEX:KIND` for one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    /// Endpoint index, or `None` for all endpoints.
    pub index: Option<usize>,
    /// The key type.
    pub key: pki::KeyKind,
}

impl FromStr for KeySpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (index, kind) = split_index(s)?;
        Ok(KeySpec {
            index,
            key: kind.parse()?,
        })
    }
}

/// The key type of endpoint `index`: the last `INDEX:KIND` for it, else the last global
/// `KIND`, else `default`.
pub fn key_for(specs: &[KeySpec], index: usize, default: pki::KeyKind) -> pki::KeyKind {
    specs
        .iter()
        .rev()
        .find(|s| s.index == Some(index))
        .or_else(|| specs.iter().rev().find(|s| s.index.is_none()))
        .map_or(default, |s| s.key)
}

/// Parses a comma-separated slot list such as `0,1` (each 0 to 7, no duplicates).
pub fn parse_slot_list(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for item in s.split(',') {
        let slot = item
            .trim()
            .parse::<u8>()
            .ok()
            .filter(|v| *v <= 7)
            .ok_or_else(|| format!("bad slot '{item}': slots are 0 to 7"))?;
        if out.contains(&slot) {
            return Err(format!("slot {slot} listed twice"));
        }
        out.push(slot);
    }
    Ok(out)
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
        for f in Fault::ALL {
            assert_eq!(f.to_string().parse::<Fault>(), Ok(f));
            assert!(FAULT_HELP.contains(f.name()), "{f} not documented");
        }
        assert_eq!("busy:5".parse::<Fault>(), Ok(Fault::Busy(5)));
        assert_eq!("busy".parse::<Fault>(), Ok(Fault::Busy(1)));
        assert!("busy:x".parse::<Fault>().is_err());
        assert_eq!(
            "tdisp-error:invalid-nonce".parse::<Fault>(),
            Ok(Fault::TdispError(0x102))
        );
        assert_eq!(
            "tdisp-error:0x104".parse::<Fault>(),
            Ok(Fault::TdispError(0x104))
        );
        assert_eq!(
            Fault::TdispError(0x104).to_string(),
            "tdisp-error:invalid-device-configuration"
        );
        assert_eq!(Fault::TdispError(0x9999).to_string(), "tdisp-error:0x9999");
        assert_eq!(
            "tdisp-error:39321".parse::<Fault>(),
            Ok(Fault::TdispError(0x9999))
        );
        assert!("tdisp-error:nope".parse::<Fault>().is_err());
        for (code, _) in coco_tdisp::TDISP_ERROR_CODES {
            let f = Fault::TdispError(code);
            assert_eq!(f.to_string().parse::<Fault>(), Ok(f));
            assert!(
                FAULT_HELP.contains(tdisp::error_fault_name(code).as_str()),
                "{f}"
            );
        }
        assert_eq!(
            "2:busy:3".parse::<FaultSpec>(),
            Ok(FaultSpec {
                index: Some(2),
                fault: Fault::Busy(3)
            })
        );
        assert_eq!(
            "busy:3".parse::<FaultSpec>(),
            Ok(FaultSpec {
                index: None,
                fault: Fault::Busy(3)
            })
        );
    }

    #[test]
    fn key_specs_and_slots() {
        use pki::KeyKind;
        let specs: Vec<KeySpec> = ["rsa3072", "1:p256"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(key_for(&specs, 0, KeyKind::P384), KeyKind::Rsa3072);
        assert_eq!(key_for(&specs, 1, KeyKind::P384), KeyKind::P256);
        assert_eq!(key_for(&[], 1, KeyKind::P384), KeyKind::P384);
        assert!("1:ed448".parse::<KeySpec>().is_err());
        assert_eq!(parse_slot_list("0, 3,7").unwrap(), [0, 3, 7]);
        for bad in ["", "8", "0,0", "a", "-1"] {
            assert!(parse_slot_list(bad).is_err(), "{bad}");
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
