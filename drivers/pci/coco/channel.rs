// SPDX-License-Identifier: GPL-2.0

//! The channel to a device: the bottom layer of coco.ko.
//!
//! Every protocol step (DOE discovery, SPDM authentication, measurements, secure sessions, and
//! later IDE_KM and TDISP) runs over a [`Transport`] and reports a [`Failure`]; neither knows
//! about the per-device state above it. [`DoeTransport`] is the kernel's DOE mailbox;
//! a relayed channel or a test fake implement the same trait. [`Conn`] is one SPDM connection
//! over a transport, with the rules every request follows: ERROR Busy is retried, ERROR
//! ResponseNotReady waited for and asked again with RESPOND_IF_READY, and both stop at once
//! when the device is being removed.

use crate::{
    doe,
    spdm::{self, SpdmVersion},
};
use core::sync::atomic::{AtomicBool, Ordering};
use kernel::{
    pci::doe as pcidoe,
    prelude::*,
    time::{delay::fsleep, Delta},
};

/// Most DOE features a mailbox may report before discovery is considered broken (the index is a
/// byte, so a well-behaved mailbox cannot report more than 256).
const MAX_FEATURES: usize = 64;

/// Response buffer for GET_VERSION: header, reserved, count and up to 255 version entries, plus
/// one dword so that an oversized (truncated) response is detected.
const VERSION_RSP_SIZE: usize = 4 + 2 + 2 * 255 + 4 + 4;

/// Largest SPDM message coco.ko receives (its DataTransferSize and MaxSPDMmsgSize): QEMU's DOE
/// emulation limits a reply to 4608 bytes including the 8-byte DOE header.
pub(crate) const REQ_DATA_TRANSFER_SIZE: u32 = 4600;

/// Receive buffer: the largest message plus one dword, so that an oversized (truncated)
/// response is detected.
const RX_SIZE: usize = REQ_DATA_TRANSFER_SIZE as usize + 4;

/// How often a request answered with ERROR Busy or ResponseNotReady is retried.
pub(crate) const MAX_RETRIES: usize = 8;

/// Pause before resending a request answered with ERROR Busy, in microseconds.
pub(crate) const BUSY_DELAY_US: u64 = 20_000;

/// Longest ResponseNotReady wait (RDT) accepted, in microseconds.
pub(crate) const MAX_RDT_US: u64 = 1_000_000;

/// A (vendor, type) DOE feature reported by discovery.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Feature {
    pub(crate) vendor: u16,
    pub(crate) object_type: u8,
}

/// Why a probe failed: a reason for the log and the status file, and the errno for writers.
#[derive(Clone, Copy)]
pub(crate) struct Failure {
    pub(crate) reason: &'static str,
    pub(crate) err: Error,
    /// SPDM error code, when the device answered with an SPDM ERROR.
    pub(crate) spdm_error: Option<u8>,
    /// The certificate a chain failure is about.
    pub(crate) cert: Option<CertRef>,
}

impl Failure {
    pub(crate) const fn new(reason: &'static str, err: Error) -> Self {
        Self {
            reason,
            err,
            spdm_error: None,
            cert: None,
        }
    }

    /// This failure, about `cert`.
    pub(crate) fn about(self, cert: CertRef) -> Self {
        Self {
            cert: Some(cert),
            ..self
        }
    }
}

/// The reason, then the certificate it is about: "<reason> (slot 0, depth 1, subject '...')".
impl core::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.reason)?;
        if let Some(c) = &self.cert {
            write!(f, " ({c})")?;
        }
        Ok(())
    }
}

impl kernel::fmt::Display for Failure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Display::fmt(self, f)
    }
}

/// Longest subject kept in a [`CertRef`]; longer ones are cut and end in "...".
const CERT_REF_SUBJECT: usize = 64;

/// A certificate of a device's chain, as failure reasons name it: its slot, its depth (0 is the
/// leaf, as OpenSSL counts) and its subject as the kernel's X.509 parser names it (printable
/// ASCII only: anything else, the device's choice, is shown as '?').
#[derive(Clone, Copy)]
pub(crate) struct CertRef {
    pub(crate) slot: u8,
    pub(crate) depth: u8,
    subject: [u8; CERT_REF_SUBJECT],
    len: u8,
    cut: bool,
}

impl CertRef {
    pub(crate) fn new(slot: u8, depth: usize, subject: &[u8]) -> Self {
        let mut out = [0u8; CERT_REF_SUBJECT];
        let mut len = 0u8;
        for (o, &b) in out.iter_mut().zip(subject) {
            *o = if b.is_ascii_graphic() || b == b' ' {
                b
            } else {
                b'?'
            };
            len += 1;
        }
        Self {
            slot,
            depth: u8::try_from(depth).unwrap_or(u8::MAX),
            subject: out,
            len,
            cut: subject.len() > CERT_REF_SUBJECT,
        }
    }

    fn subject(&self) -> &str {
        // Printable ASCII only (see `new`): always UTF-8.
        core::str::from_utf8(self.subject.get(..usize::from(self.len)).unwrap_or(&[])).unwrap_or("")
    }
}

impl core::fmt::Display for CertRef {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "slot {}, depth {}, subject '{}{}'",
            self.slot,
            self.depth,
            self.subject(),
            if self.cut { "..." } else { "" }
        )
    }
}

pub(crate) const fn fail(reason: &'static str, err: Error) -> Failure {
    Failure::new(reason, err)
}

pub(crate) const fn proto(reason: &'static str) -> Failure {
    fail(reason, EPROTO)
}

pub(crate) const OOM: Failure = fail("out of memory", ENOMEM);

/// A way to exchange DOE data objects with one device's CMA/SPDM mailbox.
pub(crate) trait Transport {
    /// Sends the data object `req` of `object_type` (PCI-SIG discovery, CMA/SPDM or secured
    /// CMA/SPDM) and receives the response object into `rsp`; returns its length. Fails with the
    /// DOE core's errno (`ETIMEDOUT`, `EIO`, ...), or `ENODEV` once the device is being removed.
    fn exchange(&self, object_type: u8, req: &[u8], rsp: &mut [u8]) -> Result<usize>;

    /// The device is being removed (or the module unloaded): no exchange or wait may start.
    fn removed(&self) -> bool;
}

/// The kernel's DOE mailbox of a device as a [`Transport`].
pub(crate) struct DoeTransport<'a, 'b> {
    mb: &'a pcidoe::Mailbox<'b>,
    removed: &'a AtomicBool,
}

impl<'a, 'b> DoeTransport<'a, 'b> {
    /// The mailbox `mb`, stopping once `removed` is set.
    pub(crate) fn new(mb: &'a pcidoe::Mailbox<'b>, removed: &'a AtomicBool) -> Self {
        Self { mb, removed }
    }
}

impl Transport for DoeTransport<'_, '_> {
    fn exchange(&self, object_type: u8, req: &[u8], rsp: &mut [u8]) -> Result<usize> {
        if self.removed() {
            return Err(ENODEV);
        }
        self.mb
            .exchange(pcidoe::VENDOR_PCI_SIG, object_type, req, rsp)
    }

    fn removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }
}

/// Longest single sleep of [`pause`]: a removal is noticed within this time.
const PAUSE_SLICE_US: u64 = 10_000;

/// Waits `us` microseconds before retrying a request, in slices, and fails with "device
/// removed" (`ENODEV`) as soon as `t` is being removed.
pub(crate) fn pause(t: &dyn Transport, us: u64) -> Result<(), Failure> {
    let mut left = us;
    loop {
        if t.removed() {
            return Err(Failure::new("device removed", ENODEV));
        }
        if left == 0 {
            return Ok(());
        }
        let slice = left.min(PAUSE_SLICE_US);
        fsleep(Delta::from_micros(i64::try_from(slice).unwrap_or(i64::MAX)));
        left -= slice;
    }
}

/// The requester's side of one SPDM connection: its transport, receive buffer, negotiated
/// version and counters.
pub(crate) struct Conn<'a> {
    /// Requests sent so far, and bytes sent and received (SPDM messages, without DOE headers).
    pub(crate) count: usize,
    pub(crate) tx: usize,
    pub(crate) rx_bytes: usize,
    t: &'a dyn Transport,
    rx: KVec<u8>,
    version: SpdmVersion,
}

impl<'a> Conn<'a> {
    /// A connection over `t`; requests carry SPDM 1.0 until [`Conn::begin`].
    pub(crate) fn new(t: &'a dyn Transport) -> Self {
        Self {
            count: 0,
            tx: 0,
            rx_bytes: 0,
            t,
            rx: KVec::new(),
            version: SpdmVersion::V1_0,
        }
    }

    /// The connection's transport (for secured messages).
    pub(crate) fn transport(&self) -> &'a dyn Transport {
        self.t
    }

    /// Starts the negotiated part of the connection at `version` (GET_CAPABILITIES onwards).
    pub(crate) fn begin(&mut self, version: SpdmVersion) -> Result<(), Failure> {
        if self.rx.is_empty() {
            self.rx = KVec::from_elem(0u8, RX_SIZE, GFP_KERNEL).map_err(|_| OOM)?;
        }
        self.version = version;
        Ok(())
    }

    /// Counts an exchange made outside [`Conn::exchange`] (GET_VERSION of a new connection).
    pub(crate) fn count_exchange(&mut self, tx: usize, rx: usize) {
        self.count = self.count.saturating_add(1);
        self.tx = self.tx.saturating_add(tx);
        self.rx_bytes = self.rx_bytes.saturating_add(rx);
    }
}

/// Sends the SPDM request `req` (negotiated `version`) and returns the length of the response
/// in `rx`, which is not an ERROR.
///
/// ERROR Busy resends the request; ERROR ResponseNotReady waits the stated time and asks
/// with RESPOND_IF_READY (both at most [`MAX_RETRIES`] times). Any other ERROR fails with
/// `on_error` and the SPDM error code.
pub(crate) fn exchange(
    t: &dyn Transport,
    version: SpdmVersion,
    req: &[u8],
    rx: &mut [u8],
    on_error: &'static str,
) -> Result<usize, Failure> {
    let code = req.get(1).copied().unwrap_or(0);
    let mut riy = [0u8; spdm::SPDM_RESPOND_IF_READY_SIZE];
    let mut use_riy = false;
    for _ in 0..=MAX_RETRIES {
        let r = if use_riy { &riy[..] } else { req };
        let n = t
            .exchange(pcidoe::FEATURE_CMA, r, rx)
            .map_err(doe_failure)?;
        if n >= rx.len() {
            return Err(proto("SPDM response too long"));
        }
        let rsp = rx.get(..n).unwrap_or(&[]);
        let Ok(e) = spdm::parse_error_response(rsp) else {
            return Ok(n);
        };
        match e.code {
            spdm::SPDM_ERROR_BUSY => pause(t, BUSY_DELAY_US)?,
            spdm::SPDM_ERROR_RESPONSE_NOT_READY => {
                let rnr = e
                    .response_not_ready()
                    .ok_or(proto("malformed ResponseNotReady error"))?;
                if rnr.request_code != code {
                    return Err(proto("ResponseNotReady names another request"));
                }
                let wait = rnr.wait_us();
                if wait > MAX_RDT_US {
                    return Err(fail(
                        "device asks to wait too long (ResponseNotReady)",
                        ETIMEDOUT,
                    ));
                }
                let riy_req = spdm::RespondIfReady::for_error(version, &rnr);
                spdm::encode_respond_if_ready(&riy_req, &mut riy)
                    .map_err(|_| fail("cannot encode RESPOND_IF_READY", EINVAL))?;
                use_riy = true;
                pause(t, wait)?;
            }
            c => {
                return Err(Failure {
                    spdm_error: Some(c),
                    ..proto(on_error)
                })
            }
        }
    }
    Err(fail(
        "device stayed busy or not ready (retries exhausted)",
        EBUSY,
    ))
}

impl Conn<'_> {
    /// [`exchange`] on this connection, into its receive buffer.
    pub(crate) fn exchange(
        &mut self,
        req: &[u8],
        on_error: &'static str,
    ) -> Result<usize, Failure> {
        self.count = self.count.saturating_add(1);
        self.tx = self.tx.saturating_add(req.len());
        let n = exchange(self.t, self.version, req, &mut self.rx, on_error)?;
        self.rx_bytes = self.rx_bytes.saturating_add(n);
        Ok(n)
    }

    pub(crate) fn rsp(&self, n: usize) -> &[u8] {
        self.rx.get(..n).unwrap_or(&[])
    }
}

pub(crate) fn add(v: &mut KVec<u8>, bytes: &[u8]) -> Result<(), Failure> {
    v.extend_from_slice(bytes, GFP_KERNEL).map_err(|_| OOM)
}

/// The failure of a DOE exchange that returned `e`.
pub(crate) fn doe_failure(e: Error) -> Failure {
    if e == ETIMEDOUT {
        Failure::new("DOE exchange timed out (no answer from the device)", e)
    } else if e == ENODEV {
        Failure::new("device removed", e)
    } else {
        Failure::new("DOE exchange failed", e)
    }
}

/// Lists the mailbox's features with DOE discovery.
pub(crate) fn discover(t: &dyn Transport) -> Result<KVec<Feature>, Failure> {
    let mut features = KVec::new();
    let mut index = 0u8;
    for _ in 0..MAX_FEATURES {
        let req = doe::encode_discovery_request(index);
        let mut rsp = Aligned([0u8; 8]);
        let n = t
            .exchange(pcidoe::FEATURE_DISCOVERY, &req, &mut rsp.0)
            .map_err(doe_failure)?;
        let payload = rsp.0.get(..n).unwrap_or(&[]);
        let d = doe::decode_discovery_response(payload)
            .map_err(|e| Failure::new(e.as_str(), EPROTO))?;
        features
            .push(
                Feature {
                    vendor: d.vendor,
                    object_type: d.object_type,
                },
                GFP_KERNEL,
            )
            .map_err(|_| Failure::new("out of memory", ENOMEM))?;
        if d.next_index == 0 {
            return Ok(features);
        }
        if d.next_index <= index {
            return Err(Failure::new("DOE discovery index does not advance", EPROTO));
        }
        index = d.next_index;
    }
    Err(Failure::new(
        "DOE discovery reports too many features",
        EPROTO,
    ))
}

/// Asks the device for its SPDM versions (GET_VERSION) and returns the VERSION entries, and
/// GET_VERSION followed by VERSION exactly as exchanged (without DOE padding), the start of the
/// authentication transcript.
///
/// ERROR Busy and ResponseNotReady are retried like every SPDM request ([`exchange`]).
pub(crate) fn get_version(t: &dyn Transport) -> Result<(KVec<u16>, KVec<u8>), Failure> {
    let mut req = [0u8; 4];
    let len = spdm::encode_get_version(&mut req)
        .map_err(|_| Failure::new("cannot encode GET_VERSION", EINVAL))?;
    let mut rsp = KVec::from_elem(0u8, VERSION_RSP_SIZE, GFP_KERNEL)
        .map_err(|_| Failure::new("out of memory", ENOMEM))?;
    let n = exchange(
        t,
        spdm::SpdmVersion::V1_0,
        req.get(..len).unwrap_or(&[]),
        &mut rsp,
        "device answered GET_VERSION with an SPDM ERROR",
    )?;
    let rsp = rsp.get(..n).unwrap_or(&[]);
    let v = spdm::parse_version_response(rsp).map_err(|e| Failure::new(e.as_str(), EPROTO))?;
    let mut versions = KVec::new();
    for e in v.entries() {
        versions
            .push(e.raw(), GFP_KERNEL)
            .map_err(|_| Failure::new("out of memory", ENOMEM))?;
    }
    let rsp_len = spdm::SPDM_VERSION_RESPONSE_FIXED_SIZE
        + spdm::SPDM_VERSION_ENTRY_SIZE * usize::from(v.count());
    let mut vca = KVec::new();
    vca.extend_from_slice(req.get(..len).unwrap_or(&[]), GFP_KERNEL)
        .and_then(|()| vca.extend_from_slice(rsp.get(..rsp_len).unwrap_or(&[]), GFP_KERNEL))
        .map_err(|_| Failure::new("out of memory", ENOMEM))?;
    Ok((versions, vca))
}

/// A DOE payload buffer aligned for the DOE core's dword accesses.
#[repr(C, align(4))]
struct Aligned<const N: usize>([u8; N]);

/// Formats VERSION entries as "major.minor" separated by spaces.
pub(crate) struct VersionList<'a>(pub(crate) &'a [u16]);

impl kernel::fmt::Display for VersionList<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, v) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}.{}", v >> 12, (v >> 8) & 0xf)?;
        }
        Ok(())
    }
}

impl core::fmt::Display for VersionList<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        kernel::fmt::Display::fmt(self, f)
    }
}

/// Formats DOE features as "vvvv:tt" separated by spaces.
pub(crate) struct FeatureList<'a>(pub(crate) &'a [Feature]);

impl kernel::fmt::Display for FeatureList<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, x) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{:04x}:{:02x}", x.vendor, x.object_type)?;
        }
        Ok(())
    }
}

impl core::fmt::Display for FeatureList<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        kernel::fmt::Display::fmt(self, f)
    }
}

#[kunit_tests(coco_channel)]
mod tests {
    use super::*;
    use core::cell::Cell;

    /// A device that answers from a script: each exchange takes the next response (an SPDM
    /// message); `removed` flips after `remove_after` exchanges.
    struct Fake<'a> {
        responses: &'a [&'a [u8]],
        next: Cell<usize>,
        remove_after: usize,
    }

    impl Transport for Fake<'_> {
        fn exchange(&self, object_type: u8, _req: &[u8], rsp: &mut [u8]) -> Result<usize> {
            if self.removed() {
                return Err(ENODEV);
            }
            if object_type != pcidoe::FEATURE_CMA {
                return Err(EINVAL);
            }
            let i = self.next.get();
            self.next.set(i + 1);
            let r = self.responses.get(i).ok_or(EIO)?;
            rsp.get_mut(..r.len()).ok_or(EOVERFLOW)?.copy_from_slice(r);
            Ok(r.len())
        }

        fn removed(&self) -> bool {
            self.next.get() >= self.remove_after
        }
    }

    const BUSY: [u8; 4] = [0x12, 0x7f, spdm::SPDM_ERROR_BUSY, 0];
    const VERSION: [u8; 8] = [0x10, 0x04, 0, 0, 0, 1, 0x00, 0x12];
    // ERROR ResponseNotReady for GET_VERSION (0x84): RDTExponent 19 (about 0.5 s), token 1, RDTM 1.
    const NOT_READY: [u8; 8] = [
        0x12,
        0x7f,
        spdm::SPDM_ERROR_RESPONSE_NOT_READY,
        0,
        19,
        0x84,
        1,
        1,
    ];

    #[test]
    fn busy_is_retried() -> Result {
        let script: [&[u8]; 3] = [&BUSY, &BUSY, &VERSION];
        let t = Fake {
            responses: &script,
            next: Cell::new(0),
            remove_after: usize::MAX,
        };
        let mut rx = [0u8; 64];
        let n = exchange(&t, SpdmVersion::V1_0, &[0x10, 0x84, 0, 0], &mut rx, "x")
            .map_err(|f| f.err)?;
        assert_eq!(&rx[..n], &VERSION);
        assert_eq!(t.next.get(), 3);
        Ok(())
    }

    #[test]
    fn removal_stops_a_wait_at_once() {
        // The device asks for a wait of about a second, then is removed: the wait ends in
        // its first slice, without asking again.
        let script: [&[u8]; 2] = [&NOT_READY, &VERSION];
        let t = Fake {
            responses: &script,
            next: Cell::new(0),
            remove_after: 1,
        };
        let mut rx = [0u8; 64];
        let r = exchange(&t, SpdmVersion::V1_2, &[0x12, 0x84, 0, 0], &mut rx, "x");
        assert_eq!(r.err().map(|f| f.err), Some(ENODEV));
        assert_eq!(t.next.get(), 1);
    }

    #[test]
    fn other_errors_fail_with_their_code() {
        let err: [u8; 4] = [0x12, 0x7f, spdm::SPDM_ERROR_INVALID_REQUEST, 0];
        let script: [&[u8]; 1] = [&err];
        let t = Fake {
            responses: &script,
            next: Cell::new(0),
            remove_after: usize::MAX,
        };
        let mut rx = [0u8; 64];
        let f = exchange(
            &t,
            SpdmVersion::V1_2,
            &[0x12, 0xe1, 0, 0],
            &mut rx,
            "refused",
        );
        let f = f.err();
        assert_eq!(f.map(|f| f.reason), Some("refused"));
        assert_eq!(
            f.and_then(|f| f.spdm_error),
            Some(spdm::SPDM_ERROR_INVALID_REQUEST)
        );
    }

    fn render(attr: impl kernel::fmt::Display) -> Result<KVec<u8>> {
        let s = kernel::str::CString::try_from_fmt(fmt!("{attr}"))?;
        let mut out = KVec::new();
        out.extend_from_slice(s.to_bytes(), GFP_KERNEL)?;
        Ok(out)
    }

    #[test]
    fn failure_names_the_certificate() -> Result {
        let f = Failure::new("certificate exceeds a CA's pathLenConstraint", EKEYREJECTED);
        assert_eq!(
            &render(f)?[..],
            b"certificate exceeds a CA's pathLenConstraint"
        );
        let at = CertRef::new(3, 1, b"CA\n2\x1b");
        assert_eq!(
            &render(f.about(at))?[..],
            b"certificate exceeds a CA's pathLenConstraint (slot 3, depth 1, subject 'CA?2?')"
        );
        // A long subject is cut, and says so.
        let long = [b'x'; 100];
        let c = CertRef::new(0, 300, &long);
        assert_eq!(c.depth, u8::MAX);
        let r = render(c.subject())?;
        assert_eq!(r.len(), CERT_REF_SUBJECT);
        assert!(c.cut);
        Ok(())
    }
}
