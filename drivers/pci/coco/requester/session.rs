// SPDX-License-Identifier: GPL-2.0

//! SPDM secure sessions (requester side) over the CMA/SPDM DOE mailbox.
//!
//! After a successful authentication (and measurement reading) on an SPDM 1.2+ connection whose
//! device announced KEY_EX_CAP, [`establish`] runs KEY_EXCHANGE in the clear with the
//! authenticated slot, verifies the KEY_EXCHANGE_RSP signature with the leaf key and
//! ResponderVerifyData, then sends FINISH inside a secured message (DOE object type 2) with the
//! handshake keys and derives the application keys from TH2. The codec, the record format and
//! the key schedule are `session.rs`; this file supplies the kernel's HMAC and AEAD to them.
//!
//! A [`Session`] carries one request at a time ([`Session::send`]); any failure (transport,
//! record, MAC, unexpected answer) ends it: it is then gone and every later request fails with
//! `ENOTCONN`. Secrets live in `session::Secret` / `TrafficKeys` (zeroed on drop) and
//! [`SecretBuf`]; nothing of them is ever logged.

use super::{
    auth::Negotiated,
    meas::{self as spdm_meas, MeasInfo},
};
use crate::{
    auth,
    channel::{self, add, fail, proto, Conn, Failure, Transport, OOM},
    crypto::{self, Verifier},
    session::{self as ss, RecordError, SequenceCounter},
    session_crypto::{self as sc, SecretBuf},
    spdm::{self, SpdmVersion},
};
use kernel::{
    bindings,
    pci::doe as pcidoe,
    prelude::*,
    time::{Instant, Monotonic},
};

/// Secured-message versions offered in KEY_EXCHANGE (the endpoint selects 1.0 or 1.1).
const SM_VERSIONS: [u16; 2] = [ss::SPDM_SECURED_VERSION_1_0, ss::SPDM_SECURED_VERSION_1_1];

/// Largest SPDM message carried inside a session by this driver (request or response).
pub(crate) const MAX_SESSION_MSG: usize = 4096;

/// Short name of a DHE group, for sysfs.
pub(crate) fn dhe_name(dhe: u16) -> &'static str {
    match dhe {
        auth::SPDM_DHE_SECP256R1 => "secp256r1",
        auth::SPDM_DHE_SECP384R1 => "secp384r1",
        _ => "unknown",
    }
}

/// Short name of an AEAD, for sysfs.
pub(crate) fn aead_name(aead: u16) -> &'static str {
    match aead {
        auth::SPDM_AEAD_AES_128_GCM => "aes-128-gcm",
        auth::SPDM_AEAD_AES_256_GCM => "aes-256-gcm",
        auth::SPDM_AEAD_CHACHA20_POLY1305 => "chacha20-poly1305",
        _ => "unknown",
    }
}

fn curve(dhe: u16) -> Option<sc::Curve> {
    match dhe {
        auth::SPDM_DHE_SECP256R1 => Some(sc::Curve::P256),
        auth::SPDM_DHE_SECP384R1 => Some(sc::Curve::P384),
        _ => None,
    }
}

fn aead_alg(aead: u16) -> Option<sc::AeadAlg> {
    match aead {
        auth::SPDM_AEAD_AES_128_GCM => Some(sc::AeadAlg::Aes128Gcm),
        auth::SPDM_AEAD_AES_256_GCM => Some(sc::AeadAlg::Aes256Gcm),
        auth::SPDM_AEAD_CHACHA20_POLY1305 => Some(sc::AeadAlg::ChaCha20Poly1305),
        _ => None,
    }
}

const fn ks_fail(_: ss::KeyScheduleError) -> Failure {
    fail("session key schedule failed", EINVAL)
}

/// `session::Hmac` over the kernel's hmac(shaN).
struct KHmac(sc::Hmac);

impl ss::Hmac for KHmac {
    fn output_size(&self) -> usize {
        self.0.size()
    }

    fn mac(
        &mut self,
        key: &[u8],
        data: &[&[u8]],
        out: &mut [u8],
    ) -> core::result::Result<(), ss::KeyScheduleError> {
        if out.len() != self.0.size() {
            return Err(ss::KeyScheduleError::InvalidSize);
        }
        self.0
            .mac(key, data, out)
            .map(|_| ())
            .map_err(|_| ss::KeyScheduleError::Hmac)
    }
}

/// `session::Aead` over the kernel's gcm(aes) / rfc7539(chacha20,poly1305).
struct KAead(sc::Aead);

/// Copies `src` over the start of `dst` (as much as fits), without a panicking path.
fn copy(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = *s;
    }
}

impl KAead {
    /// AAD || `buf` || `tag`, in a buffer that is zeroed when dropped.
    fn staging(aad: &[u8], buf: &[u8], tag: &[u8]) -> Option<SecretBuf> {
        let total = aad
            .len()
            .checked_add(buf.len())?
            .checked_add(ss::SPDM_AEAD_TAG_SIZE)?;
        let mut t = SecretBuf::zeroed(total).ok()?;
        copy(&mut t.0, aad);
        copy(t.0.get_mut(aad.len()..)?, buf);
        copy(t.0.get_mut(aad.len().checked_add(buf.len())?..)?, tag);
        Some(t)
    }
}

impl ss::Aead for KAead {
    fn seal(
        &mut self,
        nonce: &[u8; ss::SPDM_AEAD_IV_SIZE],
        aad: &[u8],
        buf: &mut [u8],
        tag: &mut [u8; ss::SPDM_AEAD_TAG_SIZE],
    ) -> core::result::Result<(), RecordError> {
        let mut t = Self::staging(aad, buf, &[]).ok_or(RecordError::Encrypt)?;
        self.0
            .seal(nonce, aad.len(), &mut t.0)
            .map_err(|_| RecordError::Encrypt)?;
        let c = t.0.get(aad.len()..).ok_or(RecordError::Encrypt)?;
        copy(buf, c);
        copy(tag, c.get(buf.len()..).ok_or(RecordError::Encrypt)?);
        Ok(())
    }

    fn open(
        &mut self,
        nonce: &[u8; ss::SPDM_AEAD_IV_SIZE],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; ss::SPDM_AEAD_TAG_SIZE],
    ) -> core::result::Result<(), RecordError> {
        let mut t = Self::staging(aad, buf, tag).ok_or(RecordError::Decrypt)?;
        self.0
            .open(nonce, aad.len(), &mut t.0)
            .map_err(|_| RecordError::Decrypt)?;
        copy(buf, t.0.get(aad.len()..).ok_or(RecordError::Decrypt)?);
        Ok(())
    }
}

/// One direction of a session: its secret, AEAD, IV and sequence number.
struct Direction {
    secret: ss::Secret,
    aead: KAead,
    iv: [u8; ss::SPDM_AEAD_IV_SIZE],
    seq: SequenceCounter,
}

impl Direction {
    fn new(
        ks: &mut ss::KeySchedule<KHmac>,
        alg: sc::AeadAlg,
        secret: ss::Secret,
    ) -> Result<Self, Failure> {
        let keys = ks.traffic_keys(&secret, alg.key_size()).map_err(ks_fail)?;
        let aead = sc::Aead::new(alg, keys.key())
            .map_err(|e| fail("cannot allocate the session AEAD", e))?;
        Ok(Self {
            secret,
            aead: KAead(aead),
            iv: keys.iv,
            seq: SequenceCounter::new(),
        })
    }

    /// The direction after a key update ("traffic upd"), its sequence number back at 0.
    fn updated(&self, ks: &mut ss::KeySchedule<KHmac>, alg: sc::AeadAlg) -> Result<Self, Failure> {
        let s = ks.update_secret(&self.secret).map_err(ks_fail)?;
        Self::new(ks, alg, s)
    }
}

impl Drop for Direction {
    fn drop(&mut self) {
        sc::zeroize(&mut self.iv);
    }
}

/// What userspace may see of a session: parameters and counters, never key material.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SessionInfo {
    /// The negotiated DHE group and AEAD (SPDM algorithm bits).
    pub(crate) dhe: u16,
    pub(crate) aead: u16,
    /// FINISH / FINISH_RSP travelled in the clear (HANDSHAKE_IN_THE_CLEAR_CAP on both sides).
    pub(crate) handshake_in_clear: bool,
    /// The secured-message (DSP0277) version the device selected: major [15:12], minor [11:8].
    pub(crate) secured_version: u16,
    /// The device's HeartbeatPeriod in seconds (0: none asked for).
    pub(crate) heartbeat_period: u8,
    /// Secured messages sent in the session (FINISH included).
    pub(crate) messages: usize,
    /// KEY_UPDATE operations completed (UpdateKey or UpdateAllKeys, each verified).
    pub(crate) key_updates: u32,
    /// HEARTBEAT requests answered.
    pub(crate) heartbeats: u32,
}

/// An SPDM secure session with a device.
pub(crate) struct Session {
    id: u32,
    version: SpdmVersion,
    alg: sc::AeadAlg,
    ks: ss::KeySchedule<KHmac>,
    req: Direction,
    rsp: Direction,
    /// Why the session can no longer be used (ended, or failed).
    gone: Option<&'static str>,
    /// KEY_UPDATE tag of the next update.
    tag: u8,
    /// Records sent with one request key after which [`Session::send`] and
    /// [`Session::heartbeat`] first update both keys (0: never).
    rekey_after: u64,
    /// When the last secured message was sent.
    last_sent: Instant<Monotonic>,
    info: SessionInfo,
}

impl Session {
    /// Parameters and counters of the session.
    pub(crate) fn info(&self) -> SessionInfo {
        self.info
    }

    /// The SPDM version of the connection the session runs on (for vendor-defined requests).
    pub(crate) fn version(&self) -> SpdmVersion {
        self.version
    }

    /// Milliseconds since the last secured message was sent.
    pub(crate) fn idle_ms(&self) -> u64 {
        u64::try_from(self.last_sent.elapsed().as_millis()).unwrap_or(0)
    }

    /// Whether the session can still carry requests.
    pub(crate) fn is_open(&self) -> bool {
        self.gone.is_none()
    }

    /// Marks the session gone for `f.reason` and returns `f`.
    fn kill(&mut self, f: Failure) -> Failure {
        self.gone.get_or_insert(f.reason);
        f
    }

    /// Sends the SPDM request `req` inside the session and writes the decrypted response to
    /// `rsp`; returns its length. The response is not an SPDM ERROR and carries the session's
    /// version (Busy and ResponseNotReady are handled as in [`Session::request`]). One request
    /// at a time (`&mut self`). Any failure ends the session; a session that is gone fails with
    /// `ENOTCONN`.
    ///
    /// When the request key has protected `session_rekey_messages` records, both keys are
    /// updated first (KEY_UPDATE UpdateAllKeys, verified).
    pub(crate) fn send(
        &mut self,
        t: &dyn Transport,
        req: &[u8],
        rsp: &mut [u8],
    ) -> Result<usize, Failure> {
        self.rekey_if_due(t)?;
        self.request(
            t,
            req,
            rsp,
            None,
            "device answered a request in the session with an SPDM ERROR",
        )
    }

    /// Updates both keys when the request key reached its record budget.
    fn rekey_if_due(&mut self, t: &dyn Transport) -> Result<(), Failure> {
        if self.rekey_after != 0 && self.req.seq.next() >= self.rekey_after {
            self.key_update(t, true)?;
        }
        Ok(())
    }

    /// One secured request and its response, without the key budget check.
    fn send_record(
        &mut self,
        t: &dyn Transport,
        req: &[u8],
        rsp: &mut [u8],
    ) -> Result<usize, Failure> {
        if self.gone.is_some() {
            return Err(fail("no session (it ended or failed)", ENOTCONN));
        }
        self.send_inner(t, req, rsp).map_err(|f| self.kill(f))
    }

    fn send_inner(
        &mut self,
        t: &dyn Transport,
        req: &[u8],
        rsp: &mut [u8],
    ) -> Result<usize, Failure> {
        if req.len() > MAX_SESSION_MSG {
            return Err(fail("session request too large", EINVAL));
        }
        let rec_err = |e: RecordError| proto(e.as_str());
        let seq = self.req.seq.take().map_err(rec_err)?;
        let size = ss::record_size(req.len(), 0, ss::SPDM_PCI_DOE_SEQ_NUM_SIZE)
            .ok_or(fail("session request too large", EINVAL))?;
        let mut rec = KVec::from_elem(0u8, size, GFP_KERNEL).map_err(|_| OOM)?;
        let p = ss::RecordParams {
            session_id: self.id,
            iv: &self.req.iv,
            seq,
            seq_size: ss::SPDM_PCI_DOE_SEQ_NUM_SIZE,
        };
        let n = ss::encode_record(&mut self.req.aead, &p, req, &[], &mut rec).map_err(rec_err)?;
        // The response record: its message, the record overhead and up to 3 bytes of DOE
        // padding; one more dword detects an oversized record.
        let rx_size = MAX_SESSION_MSG
            .saturating_add(ss::SPDM_PCI_DOE_RECORD_OVERHEAD)
            .saturating_add(8);
        let mut rx = SecretBuf::zeroed(rx_size).map_err(|_| OOM)?;
        self.info.messages = self.info.messages.saturating_add(1);
        self.last_sent = Instant::now();
        let got = t
            .exchange(
                pcidoe::FEATURE_SECURED_CMA,
                rec.get(..n).unwrap_or(&[]),
                &mut rx.0,
            )
            .map_err(|e| {
                if e == ENODEV {
                    fail("device removed", e)
                } else if e == ETIMEDOUT {
                    fail("secured message timed out (no answer from the device)", e)
                } else if e == EIO {
                    fail(
                        "device answered the secured message in the clear (SPDM ERROR, session gone)",
                        e,
                    )
                } else {
                    fail("secured message DOE exchange failed", e)
                }
            })?;
        if got >= rx.0.len() {
            return Err(proto("secured response too long"));
        }
        let rseq = self.rsp.seq.next();
        let p = ss::RecordParams {
            session_id: self.id,
            iv: &self.rsp.iv,
            seq: rseq,
            seq_size: ss::SPDM_PCI_DOE_SEQ_NUM_SIZE,
        };
        let buf =
            rx.0.get_mut(..got)
                .ok_or(proto("secured response too long"))?;
        let msg = ss::open_record(&mut self.rsp.aead, &p, buf).map_err(rec_err)?;
        self.rsp.seq.accept(rseq).map_err(rec_err)?;
        let out = rsp
            .get_mut(..msg.len())
            .ok_or(proto("session response larger than the buffer"))?;
        copy(out, msg);
        Ok(msg.len())
    }

    /// One request inside the session and its response, which must be `code` (any response
    /// but an ERROR if `None`) with the session's version. ERROR Busy resends the request and
    /// ERROR ResponseNotReady waits and asks with RESPOND_IF_READY, inside the session, as in
    /// the clear (at most `MAX_RETRIES` times); any other SPDM ERROR fails with `on_error` and
    /// the error code, and ends the session. No key budget check (key updates use it too).
    fn request(
        &mut self,
        t: &dyn Transport,
        req: &[u8],
        rsp: &mut [u8],
        code: Option<u8>,
        on_error: &'static str,
    ) -> Result<usize, Failure> {
        let mut riy = [0u8; spdm::SPDM_RESPOND_IF_READY_SIZE];
        let mut use_riy = false;
        for _ in 0..=channel::MAX_RETRIES {
            let r = if use_riy { &riy[..] } else { req };
            let n = self.send_record(t, r, rsp)?;
            let msg = rsp.get(..n).unwrap_or(&[]);
            let Ok(e) = spdm::parse_error_response(msg) else {
                return match spdm::SpdmHeader::parse(msg) {
                    Ok(h)
                        if code.is_none_or(|c| c == h.code)
                            && h.version == self.version.as_byte() =>
                    {
                        Ok(n)
                    }
                    _ => Err(self.kill(proto("unexpected response inside the session"))),
                };
            };
            match e.code {
                spdm::SPDM_ERROR_BUSY => {
                    channel::pause(t, channel::BUSY_DELAY_US).map_err(|f| self.kill(f))?
                }
                spdm::SPDM_ERROR_RESPONSE_NOT_READY => {
                    let rnr = e
                        .response_not_ready()
                        .ok_or(proto("malformed ResponseNotReady error"))
                        .and_then(|rnr| {
                            if rnr.request_code != req.get(1).copied().unwrap_or(0) {
                                Err(proto("ResponseNotReady names another request"))
                            } else if rnr.wait_us() > channel::MAX_RDT_US {
                                Err(fail(
                                    "device asks to wait too long (ResponseNotReady)",
                                    ETIMEDOUT,
                                ))
                            } else {
                                Ok(rnr)
                            }
                        })
                        .map_err(|f| self.kill(f))?;
                    let riy_req = spdm::RespondIfReady::for_error(self.version, &rnr);
                    spdm::encode_respond_if_ready(&riy_req, &mut riy)
                        .map_err(|_| self.kill(fail("cannot encode RESPOND_IF_READY", EINVAL)))?;
                    use_riy = true;
                    channel::pause(t, rnr.wait_us()).map_err(|f| self.kill(f))?;
                }
                c => {
                    return Err(self.kill(Failure {
                        spdm_error: Some(c),
                        ..proto(on_error)
                    }))
                }
            }
        }
        Err(self.kill(fail(
            "device stayed busy or not ready in the session (retries exhausted)",
            EBUSY,
        )))
    }

    /// HEARTBEAT / HEARTBEAT_ACK (after a key update if the request key's budget is spent).
    pub(crate) fn heartbeat(&mut self, t: &dyn Transport) -> Result<(), Failure> {
        self.rekey_if_due(t)?;
        let mut b = [0u8; 4];
        let n = ss::encode_heartbeat(self.version, &mut b)
            .map_err(|_| fail("cannot encode HEARTBEAT", EINVAL))?;
        let mut r = [0u8; 16];
        let m = self.request(
            t,
            b.get(..n).unwrap_or(&[]),
            &mut r,
            Some(spdm::SPDM_HEARTBEAT_ACK),
            "device answered HEARTBEAT with an SPDM ERROR",
        )?;
        ss::parse_heartbeat_ack(r.get(..m).unwrap_or(&[]), self.version)
            .map_err(|e| self.kill(proto(e.as_str())))?;
        self.info.heartbeats = self.info.heartbeats.saturating_add(1);
        Ok(())
    }

    /// KEY_UPDATE: UpdateAllKeys when `all` (both directions), else UpdateKey (the request
    /// direction), each followed by VerifyNewKey with the new request key.
    pub(crate) fn key_update(&mut self, t: &dyn Transport, all: bool) -> Result<(), Failure> {
        if self.gone.is_some() {
            return Err(fail("no session (it ended or failed)", ENOTCONN));
        }
        self.key_update_inner(t, all).map_err(|f| self.kill(f))?;
        self.info.key_updates = self.info.key_updates.saturating_add(1);
        Ok(())
    }

    fn key_update_inner(&mut self, t: &dyn Transport, all: bool) -> Result<(), Failure> {
        let v = self.version;
        let tag = self.tag;
        self.tag = self.tag.wrapping_add(2);
        let ku = ss::KeyUpdate {
            version: v,
            operation: if all {
                ss::SPDM_KEY_UPDATE_OP_UPDATE_ALL_KEYS
            } else {
                ss::SPDM_KEY_UPDATE_OP_UPDATE_KEY
            },
            tag,
        };
        let mut b = [0u8; 4];
        let mut r = [0u8; 16];
        let n = ss::encode_key_update(&ku, &mut b)
            .map_err(|_| fail("cannot encode KEY_UPDATE", EINVAL))?;
        if all {
            // The ACK of UpdateAllKeys already comes with the new response key.
            self.rsp = self.rsp.updated(&mut self.ks, self.alg)?;
        }
        let m = self.request(
            t,
            b.get(..n).unwrap_or(&[]),
            &mut r,
            Some(spdm::SPDM_KEY_UPDATE_ACK),
            "device refused KEY_UPDATE (SPDM ERROR)",
        )?;
        let ack = ss::parse_key_update_ack(r.get(..m).unwrap_or(&[]), v)
            .map_err(|e| proto(e.as_str()))?;
        ku.check_ack(&ack).map_err(|e| proto(e.as_str()))?;
        self.req = self.req.updated(&mut self.ks, self.alg)?;
        let verify = ss::KeyUpdate {
            version: v,
            operation: ss::SPDM_KEY_UPDATE_OP_VERIFY_NEW_KEY,
            tag: tag.wrapping_add(1),
        };
        let n = ss::encode_key_update(&verify, &mut b)
            .map_err(|_| fail("cannot encode KEY_UPDATE", EINVAL))?;
        let m = self.request(
            t,
            b.get(..n).unwrap_or(&[]),
            &mut r,
            Some(spdm::SPDM_KEY_UPDATE_ACK),
            "device refused KEY_UPDATE VerifyNewKey (SPDM ERROR)",
        )?;
        let ack = ss::parse_key_update_ack(r.get(..m).unwrap_or(&[]), v)
            .map_err(|e| proto(e.as_str()))?;
        verify.check_ack(&ack).map_err(|e| proto(e.as_str()))
    }

    /// END_SESSION / END_SESSION_ACK; the session is gone afterwards whatever the outcome.
    pub(crate) fn end(&mut self, t: &dyn Transport) -> Result<(), Failure> {
        let mut b = [0u8; 4];
        let n = ss::encode_end_session(self.version, 0, &mut b)
            .map_err(|_| fail("cannot encode END_SESSION", EINVAL))?;
        let mut r = [0u8; 16];
        let ret = self
            .request(
                t,
                b.get(..n).unwrap_or(&[]),
                &mut r,
                Some(spdm::SPDM_END_SESSION_ACK),
                "device answered END_SESSION with an SPDM ERROR",
            )
            .and_then(|m| {
                ss::parse_end_session_ack(r.get(..m).unwrap_or(&[]), self.version)
                    .map_err(|e| proto(e.as_str()))
            });
        self.gone.get_or_insert("session ended");
        ret
    }

    /// One application request inside the session (GET_DIGESTS), to prove the channel.
    pub(crate) fn probe_app(&mut self, t: &dyn Transport) -> Result<(), Failure> {
        let mut b = [0u8; 8];
        let n = auth::encode_get_digests(self.version, &mut b)
            .map_err(|_| fail("cannot encode GET_DIGESTS", EINVAL))?;
        let mut r = KVec::from_elem(0u8, MAX_SESSION_MSG, GFP_KERNEL).map_err(|_| OOM)?;
        let m = self.send(t, b.get(..n).unwrap_or(&[]), &mut r)?;
        match spdm::SpdmHeader::parse(r.get(..m).unwrap_or(&[])) {
            Ok(h) if h.code == spdm::SPDM_DIGESTS => Ok(()),
            _ => Err(self.kill(proto("GET_DIGESTS in the session got another response"))),
        }
    }
}

fn digest(
    neg: &Negotiated,
    data: &[u8],
    out: &mut [u8; crypto::MAX_DIGEST_SIZE],
) -> Result<(), Failure> {
    crypto::digest(neg.halg, data, out)
        .map(|_| ())
        .map_err(|e| fail("transcript hash failed", e))
}

/// Whether the version number `raw` has the major and minor version of `v`.
fn same_major_minor(v: spdm::VersionEntry, raw: u16) -> bool {
    let r = spdm::VersionEntry::from_raw(raw);
    (v.major(), v.minor()) == (r.major(), r.minor())
}

/// Constant-time comparison of two byte strings of equal length.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random(buf: &mut [u8]) {
    // SAFETY: `buf` is valid for writes of its length.
    unsafe { bindings::get_random_bytes(buf.as_mut_ptr().cast(), buf.len()) };
}

/// A fresh ECDH key pair and its public key (X || Y) in `public`; returns the public key's
/// size. The private key is drawn here with get_random_bytes() (rejection sampling: the
/// kernel refuses a value outside [2, n-3]) rather than by the KPP's own generation, which
/// depends on the kernel's stdrng; a failure is retried a few times with a new key.
fn ephemeral(curve: sc::Curve, public: &mut [u8]) -> Result<(sc::Ecdh, usize), Failure> {
    let mut err = EINVAL;
    for _ in 0..8 {
        let mut private = SecretBuf::zeroed(curve.size()).map_err(|_| OOM)?;
        random(&mut private.0);
        match sc::Ecdh::with_private(curve, &private.0).and_then(|k| {
            let n = k.public_key(public)?;
            Ok((k, n))
        }) {
            Ok(k) => return Ok(k),
            Err(e) => err = e,
        }
    }
    Err(fail("cannot generate the ECDH key", err))
}

/// The measurement summary KEY_EXCHANGE asks for, and the measurements to check it against.
#[derive(Clone, Copy)]
pub(crate) struct Summary<'a> {
    /// Ask for the summary of all measurements.
    pub(crate) want: bool,
    /// The measurements read on this connection (none: the summary is not checked).
    pub(crate) meas: Option<&'a MeasInfo>,
}

/// Establishes a session with `slot` (authenticated with `verifier`, whose SPDM chain as the
/// device sent it is `chain`) on the connection `c`: KEY_EXCHANGE, FINISH in the session.
/// `secured` receives the number of secured messages sent (also on failure).
pub(crate) fn establish(
    c: &mut Conn<'_>,
    neg: &Negotiated,
    slot: u8,
    chain: &[u8],
    verifier: &Verifier,
    summary: Summary<'_>,
    secured: &mut usize,
) -> Result<Session, Failure> {
    let v = neg.version;
    let h = neg.hsize;
    let curve = curve(neg.dhe).ok_or(proto("no DHE group negotiated"))?;
    let alg = aead_alg(neg.aead).ok_or(proto("no AEAD negotiated"))?;
    let exchange_size = ss::dhe_exchange_size(neg.dhe).ok_or(proto("unknown DHE group"))?;
    let clear = neg.handshake_in_clear;

    // KEY_EXCHANGE
    let mut pubkey = [0u8; 2 * 48];
    let (ecdh, pn) = ephemeral(curve, &mut pubkey)?;
    let mut rnd = [0u8; ss::SPDM_RANDOM_DATA_SIZE];
    random(&mut rnd);
    let mut sid = [0u8; 2];
    random(&mut sid);
    let req_session_id = u16::from_le_bytes(sid) | 1;
    let mut opaque = [0u8; 32];
    // SPDM 1.1 uses DSP0277 1.0's opaque data format, 1.2+ the general format 1.
    let on = ss::encode_sm_supported_versions_for(v, &SM_VERSIONS, &mut opaque)
        .map_err(|_| fail("cannot encode the opaque data", EINVAL))?;
    let ke = ss::KeyExchange {
        version: v,
        meas_summary_type: if summary.want {
            auth::SPDM_MEAS_SUMMARY_ALL
        } else {
            ss::SPDM_KEY_EXCHANGE_MEAS_SUMMARY_NONE
        },
        slot,
        req_session_id,
        session_policy: 0,
        random_data: &rnd,
        exchange: pubkey.get(..pn).unwrap_or(&[]),
        opaque: opaque.get(..on).unwrap_or(&[]),
        len: 0,
    };
    let mut req = [0u8; 256];
    let kn = ss::encode_key_exchange(&ke, &mut req)
        .map_err(|_| fail("cannot encode KEY_EXCHANGE", EINVAL))?;
    let ke_b = req.get(..kn).unwrap_or(&[]);
    let n = c.exchange(ke_b, "device answered KEY_EXCHANGE with an SPDM ERROR")?;
    let params = ss::KeyExchangeRspParams {
        version: v,
        hash_size: h,
        signature_size: neg.ssize,
        exchange_size,
        measurement_summary: summary.want,
        // In the clear, ResponderVerifyData comes in FINISH_RSP instead.
        verify_data: !clear,
    };
    let kr = ss::parse_key_exchange_rsp(c.rsp(n), &params).map_err(|e| proto(e.as_str()))?;
    if kr.mut_auth_requested != 0 {
        return Err(fail(
            "device asks for mutual authentication (not supported)",
            EOPNOTSUPP,
        ));
    }
    let secured_version =
        match ss::parse_sm_versions_for(v, kr.opaque).map_err(|e| proto(e.as_str()))? {
            // Major and minor decide; update and alpha numbers may be anything.
            ss::SmVersions::Selected(sv)
                if SM_VERSIONS
                    .iter()
                    .any(|&o| same_major_minor(spdm::VersionEntry::from_raw(o), sv)) =>
            {
                sv
            }
            _ => return Err(proto("device selected no offered secured message version")),
        };

    // TH for the signature: VCA || Hash(chain) || KEY_EXCHANGE || KEY_EXCHANGE_RSP up to the
    // signature.
    let mut d = [0u8; crypto::MAX_DIGEST_SIZE];
    let mut t = KVec::with_capacity(1024, GFP_KERNEL).map_err(|_| OOM)?;
    add(&mut t, &neg.vca)?;
    digest(neg, chain, &mut d)?;
    add(&mut t, d.get(..h).unwrap_or(&[]))?;
    add(&mut t, ke_b)?;
    add(&mut t, c.rsp(n).get(..kr.signature_offset).unwrap_or(&[]))?;
    digest(neg, &t, &mut d)?;
    let mut sd = [0u8; crypto::MAX_DIGEST_SIZE];
    let signed: &[u8] = if v >= SpdmVersion::V1_2 {
        let mut msg = [0u8; auth::SPDM_SIGNING_CONTEXT_SIZE + auth::SPDM_MAX_HASH_SIZE];
        let len = auth::signed_message(
            v,
            auth::SPDM_KEY_EXCHANGE_RSP_SIGN_CONTEXT,
            d.get(..h).unwrap_or(&[]),
            &mut msg,
        )
        .map_err(|_| fail("cannot build the signed message", EINVAL))?;
        digest(neg, msg.get(..len).unwrap_or(&[]), &mut sd)?;
        sd.get(..h).unwrap_or(&[])
    } else {
        // SPDM 1.1 signs the transcript hash itself (no signing prefix).
        d.get(..h).unwrap_or(&[])
    };
    verifier.verify(signed, kr.signature).map_err(|_| {
        fail(
            "KEY_EXCHANGE_RSP signature does not verify with the leaf key",
            EKEYREJECTED,
        )
    })?;
    if let Some(m) = summary.meas {
        spdm_meas::check_summary(
            kr.measurement_summary_hash,
            m,
            neg,
            "measurement summary hash of KEY_EXCHANGE_RSP does not match the measurements read",
        )?;
    }
    add(&mut t, kr.signature)?;
    let mut th1 = [0u8; crypto::MAX_DIGEST_SIZE];
    digest(neg, &t, &mut th1)?;
    let th1 = th1.get(..h).unwrap_or(&[]);

    // Handshake secrets and ResponderVerifyData.
    let mut shared = SecretBuf::zeroed(curve.size()).map_err(|_| OOM)?;
    ecdh.shared_secret(kr.exchange, &mut shared.0)
        .map_err(|_| proto("device's ExchangeData is not a point of the group"))?;
    drop(ecdh);
    let hmac = sc::Hmac::new(neg.halg).map_err(|e| fail("cannot allocate the HMAC", e))?;
    let mut ks = ss::KeySchedule::new(KHmac(hmac), v).map_err(ks_fail)?;
    let hs = ks.handshake_secret(&shared.0).map_err(ks_fail)?;
    drop(shared);
    let (req_hs, rsp_hs) = ks.handshake_traffic_secrets(&hs, th1).map_err(ks_fail)?;
    let rsp_fk = ks.finished_key(&rsp_hs).map_err(ks_fail)?;
    let req_fk = ks.finished_key(&req_hs).map_err(ks_fail)?;
    if !clear {
        let expected = ks.verify_data(&rsp_fk, th1).map_err(ks_fail)?;
        if !ct_eq(expected.as_bytes(), kr.verify_data) {
            return Err(fail("ResponderVerifyData does not verify", EKEYREJECTED));
        }
        add(&mut t, kr.verify_data)?;
    }
    let rsp_session_id = kr.rsp_session_id;
    let heartbeat_period = kr.heartbeat_period;
    let mut s = Session {
        id: ss::session_id(req_session_id, rsp_session_id),
        version: v,
        alg,
        req: Direction::new(&mut ks, alg, req_hs)?,
        rsp: Direction::new(&mut ks, alg, rsp_hs)?,
        ks,
        gone: None,
        tag: 1,
        rekey_after: u64::from(crate::session_rekey_messages()),
        last_sent: Instant::now(),
        info: SessionInfo {
            dhe: neg.dhe,
            aead: neg.aead,
            handshake_in_clear: clear,
            secured_version,
            heartbeat_period,
            ..SessionInfo::default()
        },
    };

    // FINISH with RequesterVerifyData over the transcript through FINISH's header: inside the
    // session (handshake keys), or in the clear.
    let mut fin_hdr = [0u8; 4];
    let fh = ss::encode_finish(v, 0, &[], &[], &mut fin_hdr)
        .map_err(|_| fail("cannot encode FINISH", EINVAL))?;
    add(&mut t, fin_hdr.get(..fh).unwrap_or(&[]))?;
    digest(neg, &t, &mut d)?;
    let vd =
        s.ks.verify_data(&req_fk, d.get(..h).unwrap_or(&[]))
            .map_err(ks_fail)?;
    let mut fin = [0u8; 4 + auth::SPDM_MAX_HASH_SIZE];
    let fnn = ss::encode_finish(v, 0, &[], vd.as_bytes(), &mut fin)
        .map_err(|_| fail("cannot encode FINISH", EINVAL))?;
    add(&mut t, vd.as_bytes())?;
    let fin_b = fin.get(..fnn).unwrap_or(&[]);
    let mut r = [0u8; 4 + auth::SPDM_MAX_HASH_SIZE];
    let m = if clear {
        c.exchange(fin_b, "device answered FINISH with an SPDM ERROR")
            .and_then(|n| {
                copy(
                    r.get_mut(..n).ok_or(proto("FINISH_RSP too long"))?,
                    c.rsp(n),
                );
                Ok(n)
            })
    } else {
        s.request(
            c.transport(),
            fin_b,
            &mut r,
            Some(spdm::SPDM_FINISH_RSP),
            "device answered FINISH with an SPDM ERROR",
        )
    };
    *secured = s.info().messages;
    let m = m?;
    let (rvd, flen) = ss::parse_finish_rsp(r.get(..m).unwrap_or(&[]), v, if clear { h } else { 0 })
        .map_err(|e| proto(e.as_str()))?;
    if clear {
        // ResponderVerifyData over the transcript through FINISH_RSP's header.
        add(&mut t, r.get(..flen.saturating_sub(h)).unwrap_or(&[]))?;
        digest(neg, &t, &mut d)?;
        let expected =
            s.ks.verify_data(&rsp_fk, d.get(..h).unwrap_or(&[]))
                .map_err(ks_fail)?;
        if !ct_eq(expected.as_bytes(), rvd) {
            return Err(fail(
                "FINISH_RSP ResponderVerifyData does not verify",
                EKEYREJECTED,
            ));
        }
        add(&mut t, rvd)?;
    } else {
        add(&mut t, r.get(..flen).unwrap_or(&[]))?;
    }
    let mut th2 = [0u8; crypto::MAX_DIGEST_SIZE];
    digest(neg, &t, &mut th2)?;
    let ms = s.ks.master_secret(&hs).map_err(ks_fail)?;
    let (ra, rs) =
        s.ks.app_traffic_secrets(&ms, th2.get(..h).unwrap_or(&[]))
            .map_err(ks_fail)?;
    s.req = Direction::new(&mut s.ks, alg, ra)?;
    s.rsp = Direction::new(&mut s.ks, alg, rs)?;
    s.last_sent = Instant::now();
    Ok(s)
}

/// How the session's handshake travelled, for sysfs and the log.
pub(crate) fn handshake_name(in_clear: bool) -> &'static str {
    if in_clear {
        "clear"
    } else {
        "encrypted"
    }
}

#[kunit_tests(coco_session)]
mod tests {
    use super::*;
    use crate::crypto::HashAlg;
    use crate::session::Hmac as _;

    #[test]
    fn khmac_hkdf_rfc5869_case1() -> Result {
        let mut h = KHmac(sc::Hmac::new(HashAlg::Sha256)?);
        assert_eq!(h.output_size(), 32);
        let ikm = [0x0bu8; 22];
        let salt: [u8; 13] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let info: [u8; 10] = [0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9];
        let prk = ss::hkdf_extract(&mut h, &salt, &ikm).map_err(|_| EINVAL)?;
        assert_eq!(
            prk.as_bytes(),
            &[
                0x07, 0x77, 0x09, 0x36, 0x2c, 0x2e, 0x32, 0xdf, 0x0d, 0xdc, 0x3f, 0x0d, 0xc4, 0x7b,
                0xba, 0x63, 0x90, 0xb6, 0xc7, 0x3b, 0xb5, 0x0f, 0x9c, 0x31, 0x22, 0xec, 0x84, 0x4a,
                0xd7, 0xc2, 0xb3, 0xe5
            ][..]
        );
        let mut okm = [0u8; 42];
        ss::hkdf_expand(&mut h, prk.as_bytes(), &info, &mut okm).map_err(|_| EINVAL)?;
        const OKM: [u8; 42] = [
            0x3c, 0xb2, 0x5f, 0x25, 0xfa, 0xac, 0xd5, 0x7a, 0x90, 0x43, 0x4f, 0x64, 0xd0, 0x36,
            0x2f, 0x2a, 0x2d, 0x2d, 0x0a, 0x90, 0xcf, 0x1a, 0x5a, 0x4c, 0x5d, 0xb0, 0x2d, 0x56,
            0xec, 0xc4, 0xc5, 0xbf, 0x34, 0x00, 0x72, 0x08, 0xd5, 0xb8, 0x87, 0x18, 0x58, 0x65,
        ];
        assert_eq!(okm, OKM);
        Ok(())
    }

    fn record_round_trip(alg: sc::AeadAlg) -> Result {
        let key = [0x42u8; 32];
        let iv = [7u8; ss::SPDM_AEAD_IV_SIZE];
        let key = &key[..alg.key_size()];
        let mut tx = KAead(sc::Aead::new(alg, key)?);
        let mut rx = KAead(sc::Aead::new(alg, key)?);
        let msg = [0x13u8, 0xe8, 0, 0];
        let p = ss::RecordParams {
            session_id: 0x1234_5678,
            iv: &iv,
            seq: 3,
            seq_size: ss::SPDM_PCI_DOE_SEQ_NUM_SIZE,
        };
        let mut rec = [0u8; 64];
        let n = ss::encode_record(&mut tx, &p, &msg, &[], &mut rec).map_err(|_| EINVAL)?;
        assert_eq!(n, msg.len() + ss::SPDM_PCI_DOE_RECORD_OVERHEAD);
        // The plaintext does not appear in the record.
        assert!(rec[8..8 + msg.len()] != msg[..]);
        let mut copy = rec;
        let got = ss::open_record(&mut rx, &p, &mut copy[..n]).map_err(|_| EINVAL)?;
        assert_eq!(got, &msg[..]);
        // Another sequence number, a flipped MAC bit, another session: refused.
        let mut copy = rec;
        let p4 = ss::RecordParams { seq: 4, ..p };
        assert_eq!(
            ss::open_record(&mut rx, &p4, &mut copy[..n]).err(),
            Some(RecordError::Decrypt)
        );
        let mut copy = rec;
        copy[n - 1] ^= 1;
        assert_eq!(
            ss::open_record(&mut rx, &p, &mut copy[..n]).err(),
            Some(RecordError::Decrypt)
        );
        let mut copy = rec;
        let other = ss::RecordParams {
            session_id: 0x1234_5679,
            ..p
        };
        assert_eq!(
            ss::open_record(&mut rx, &other, &mut copy[..n]).err(),
            Some(RecordError::WrongSessionId)
        );
        Ok(())
    }

    #[test]
    fn kaead_record_aes_128_gcm() -> Result {
        record_round_trip(sc::AeadAlg::Aes128Gcm)
    }

    #[test]
    fn kaead_record_aes_256_gcm() -> Result {
        record_round_trip(sc::AeadAlg::Aes256Gcm)
    }

    #[test]
    fn kaead_record_chacha20_poly1305() -> Result {
        record_round_trip(sc::AeadAlg::ChaCha20Poly1305)
    }

    #[test]
    fn ephemeral_keys_agree() -> Result {
        for curve in [sc::Curve::P256, sc::Curve::P384] {
            let (mut pa, mut pb) = ([0u8; 96], [0u8; 96]);
            let (a, na) = ephemeral(curve, &mut pa).map_err(|f| f.err)?;
            let (b, nb) = ephemeral(curve, &mut pb).map_err(|f| f.err)?;
            assert_eq!(na, 2 * curve.size());
            let (mut sa, mut sb) = ([0u8; 48], [0u8; 48]);
            a.shared_secret(&pb[..nb], &mut sa)?;
            b.shared_secret(&pa[..na], &mut sb)?;
            assert_eq!(sa, sb);
        }
        Ok(())
    }

    #[test]
    fn names() {
        assert_eq!(dhe_name(auth::SPDM_DHE_SECP384R1), "secp384r1");
        assert_eq!(
            aead_name(auth::SPDM_AEAD_CHACHA20_POLY1305),
            "chacha20-poly1305"
        );
        assert!(ct_eq(b"abc", b"abc") && !ct_eq(b"abc", b"abd") && !ct_eq(b"ab", b"abc"));
    }

    #[test]
    fn secured_version_major_minor() {
        let v11 = spdm::VersionEntry::from_raw(ss::SPDM_SECURED_VERSION_1_1);
        // Update and alpha numbers do not matter; major and minor do.
        assert!(same_major_minor(v11, 0x1100));
        assert!(same_major_minor(v11, 0x1112));
        assert!(!same_major_minor(v11, 0x1000));
        assert!(!same_major_minor(v11, 0x1200));
        assert!(!same_major_minor(v11, 0x2100));
    }
}
