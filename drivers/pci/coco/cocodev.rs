// SPDX-License-Identifier: GPL-2.0

//! Per-device state of coco.ko and the probe exchanges over the CMA/SPDM DOE mailbox.

use crate::{
    cma::FunctionIds,
    doe,
    meas::MeasurementTypeName,
    spdm,
    spdm_auth::{self, AuthInfo, IdentityStatus, Policy, SLOTS},
    spdm_meas::MeasInfo,
    spdm_session::{self, Session, SessionInfo},
};
use core::{
    fmt::Write,
    ptr::NonNull,
    sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering},
};
use kernel::{
    bindings, device,
    ffi::c_uint,
    pci::{self, doe as pcidoe},
    prelude::*,
    sync::{aref::ARef, new_mutex, Arc, Mutex},
    time::msecs_to_jiffies,
    workqueue::{
        self, impl_has_delayed_work, impl_has_work, new_delayed_work, new_work, DelayedWork, Work,
        WorkItem,
    },
};

/// Most DOE features a mailbox may report before discovery is considered broken (the index is a
/// byte, so a well-behaved mailbox cannot report more than 256).
const MAX_FEATURES: usize = 64;

/// Response buffer for GET_VERSION: header, reserved, count and up to 255 version entries, plus
/// one dword so that an oversized (truncated) response is detected.
const VERSION_RSP_SIZE: usize = 4 + 2 + 2 * 255 + 4 + 4;

/// sysfs attributes, matching `enum coco_attr` in coco.h.
const ATTR_SPDM_VERSIONS: c_uint = 0;
const ATTR_DOE_FEATURES: c_uint = 1;
const ATTR_STATUS: c_uint = 2;
const ATTR_AUTH_STATUS: c_uint = 3;
const ATTR_SPDM_VERSION: c_uint = 4;
const ATTR_ALGORITHMS: c_uint = 5;
const ATTR_CERT_SLOT: c_uint = 6;
const ATTR_CHALLENGE: c_uint = 7;
const ATTR_AUTHENTICATED: c_uint = 8;
const ATTR_PREFERRED_SLOT: c_uint = 9;
const ATTR_CMA_IDENTITY: c_uint = 10;
const ATTR_CMA_IDENTITY_STATUS: c_uint = 11;
const ATTR_SESSION: c_uint = 12;
const ATTR_SESSION_ALGORITHMS: c_uint = 13;
const ATTR_SESSION_HANDSHAKE: c_uint = 14;
const ATTR_SESSION_HEARTBEAT_PERIOD: c_uint = 15;
const ATTR_SESSION_MESSAGES: c_uint = 16;
const ATTR_SESSION_KEY_UPDATES: c_uint = 17;
const ATTR_SESSION_HEARTBEATS: c_uint = 18;
const ATTR_SESSION_VERSION: c_uint = 19;

/// A request root writes to `coco/session` (`enum coco_session_op` in coco.h).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionOp {
    /// One HEARTBEAT.
    Heartbeat,
    /// KEY_UPDATE of both keys (UpdateAllKeys, then VerifyNewKey).
    KeyUpdate,
    /// END_SESSION.
    End,
}

impl SessionOp {
    pub(crate) fn from_raw(op: c_uint) -> Option<Self> {
        match op {
            0 => Some(Self::Heartbeat),
            1 => Some(Self::KeyUpdate),
            2 => Some(Self::End),
            _ => None,
        }
    }
}

/// Attributes of `measurements/` (`enum coco_meas_attr` in coco.h).
const MEAS_STATUS: c_uint = 0;
const MEAS_STALE: c_uint = 1;
const MEAS_TIMESTAMP: c_uint = 2;
const MEAS_FRESH_CAPABLE: c_uint = 3;
const MEAS_SPDM_VERSION: c_uint = 4;
const MEAS_HASH_ALGORITHM: c_uint = 5;
const MEAS_SIGNATURE_ALGORITHM: c_uint = 6;
const MEAS_SLOT: c_uint = 7;
const MEAS_NONCE: c_uint = 8;
const MEAS_TRANSCRIPT: c_uint = 9;
const MEAS_SIGNATURE: c_uint = 10;

/// Attributes of `measurements/<index>/` (`enum coco_block_attr` in coco.h).
const BLOCK_TYPE: c_uint = 0;
const BLOCK_FORMAT: c_uint = 1;
const BLOCK_VALUE: c_uint = 2;

/// `preferred_slot` value meaning "the lowest populated slot".
const SLOT_AUTO: u8 = u8::MAX;

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
            *o = if b.is_ascii_graphic() || b == b' ' { b } else { b'?' };
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
        core::str::from_utf8(self.subject.get(..usize::from(self.len)).unwrap_or(&[]))
            .unwrap_or("")
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

/// One part of the outcome shown to userspace.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OutcomeKind {
    Pending,
    Ok,
    Error(&'static str),
}

impl OutcomeKind {
    fn env(
        self,
        ok: &'static CStr,
        error: &'static CStr,
        pending: &'static CStr,
    ) -> *mut kernel::ffi::c_char {
        let s = match self {
            Self::Ok => ok,
            Self::Error(_) => error,
            Self::Pending => pending,
        };
        // The callee never writes through the pointer.
        s.as_char_ptr().cast_mut()
    }
}

/// The outcome of discovery/GET_VERSION and of the authentication, as userspace sees it.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Outcome {
    status: OutcomeKind,
    auth: OutcomeKind,
}

/// Outcome of the last probe.
enum Status {
    /// Not probed yet.
    Pending,
    /// The device answered discovery and GET_VERSION.
    Ready,
    /// The last probe failed; nothing it produced is shown.
    Failed(Failure),
}

/// Outcome of the last authentication.
enum AuthStatus {
    /// Not run yet, or running.
    Pending,
    /// Chain valid, its root trusted and CHALLENGE_AUTH signature verified.
    Ok,
    /// The last authentication failed.
    Failed(Failure),
}

/// What the last probe found. Replaced as a whole when discovery and GET_VERSION finish; the
/// authentication fields are then replaced as a whole when the authentication finishes.
struct State {
    status: Status,
    features: KVec<Feature>,
    /// VERSION entries as the device sent them (major [15:12], minor [11:8], update, alpha).
    versions: KVec<u16>,
    auth_status: AuthStatus,
    /// What the last authentication established (also when it failed later).
    auth: AuthInfo,
    /// The measurements; kept across probes (a failed reading marks them stale).
    meas: MeasState,
    /// The secure session, as userspace sees it.
    session: SessionStatus,
}

/// State of the secure session.
#[derive(Clone, Copy)]
enum SessionStatus {
    /// None (not supported, not attempted, or ended).
    None,
    /// Established; its parameters and counters as of its last use.
    Established(SessionInfo),
    /// Failed (and torn down).
    Failed(&'static str),
    /// The device supports sessions but none can be had with it (no common algorithm); the
    /// authentication and measurements went ahead without.
    Unavailable(&'static str),
}

impl State {
    fn empty(status: Status, meas: MeasState) -> Self {
        Self {
            status,
            features: KVec::new(),
            versions: KVec::new(),
            auth_status: AuthStatus::Pending,
            auth: AuthInfo::default(),
            meas,
            session: SessionStatus::None,
        }
    }
}

/// Outcome of the last measurement reading.
#[derive(Clone, Copy)]
enum MeasStatus {
    /// Not read yet, or being read.
    Pending,
    Ok,
    Failed(Failure),
}

/// The measurements of a device.
struct MeasState {
    status: MeasStatus,
    /// The last verified reading; `stale` once a later reading failed, or the device was reset
    /// or resumed since.
    reading: Option<MeasInfo>,
    stale: bool,
    /// Nonce root supplied for the next signed request.
    pending_nonce: Option<[u8; spdm::SPDM_NONCE_SIZE]>,
}

impl MeasState {
    const fn new() -> Self {
        Self {
            status: MeasStatus::Pending,
            reading: None,
            stale: false,
            pending_nonce: None,
        }
    }

    /// Records the outcome of a probe: a new reading replaces the old one whole; a failure
    /// keeps the old one, marked stale.
    fn update(&mut self, outcome: Option<Result<MeasInfo, Failure>>, auth: &Result<(), Failure>) {
        match (outcome, auth) {
            (Some(Ok(m)), _) => {
                self.reading = Some(m);
                self.status = MeasStatus::Ok;
                self.stale = false;
            }
            (Some(Err(f)), _) => {
                self.status = MeasStatus::Failed(f);
                self.stale = self.reading.is_some();
            }
            (None, Err(f)) => {
                self.status = MeasStatus::Failed(Failure::new(
                    "not read: the device is not authenticated",
                    f.err,
                ));
                self.stale = self.reading.is_some();
            }
            (None, Ok(())) => {}
        }
    }
}

/// The C part's `struct coco_meas_dir`: the `measurements/` directory of a device.
struct MeasDir(NonNull<crate::CocoMeasDir>);

// SAFETY: The directory is only used under the device's `op` lock (updates, destruction); the
// C functions may be called from any thread.
unsafe impl Send for MeasDir {}

/// The `struct device` of a tracked function, used for sysfs group add/remove.
struct RawDev(NonNull<bindings::device>);

// SAFETY: The pointer is only passed to sysfs functions, which may be called from any thread; the
// device stays allocated because `CocoDev::pdev` holds a reference.
unsafe impl Send for RawDev {}
// SAFETY: See `Send`; the pointer itself is never mutated.
unsafe impl Sync for RawDev {}

/// Per-device state of a PCI function with a CMA/SPDM DOE mailbox.
#[pin_data]
pub(crate) struct CocoDev {
    pdev: ARef<pci::Device>,
    raw: RawDev,
    /// The mailbox also supports secured CMA/SPDM (type 2).
    secured_cma: bool,
    /// Set before teardown; no exchange starts afterwards.
    removed: AtomicBool,
    sysfs_added: AtomicBool,
    /// Slot the administrator wants authenticated first, or [`SLOT_AUTO`].
    preferred_slot: AtomicU8,
    /// Slots whose `certificates/slot<N>` file is shown (bit N).
    shown_slots: AtomicU8,
    /// Bumped when the device may have changed under us (reset, resume): a protocol run that
    /// started before does not store its results.
    generation: AtomicU64,
    /// Serialises protocol runs on the device, and guards the `measurements/` directory.
    #[pin]
    op: Mutex<Option<MeasDir>>,
    /// Results of the last probe; held only briefly (sysfs reads).
    #[pin]
    state: Mutex<State>,
    /// The secure session and the `generation` it was established in; only locked with `op`
    /// held (protocol runs, teardown).
    #[pin]
    session: Mutex<Option<(Session, u64)>>,
    #[pin]
    work: Work<CocoDev>,
    /// Keeps the session alive when the device set a HeartbeatPeriod.
    #[pin]
    heartbeat: DelayedWork<CocoDev, 1>,
}

impl_has_work! {
    impl HasWork<Self> for CocoDev { self.work }
}

impl_has_delayed_work! {
    impl HasDelayedWork<Self, 1> for CocoDev { self.heartbeat }
}

impl WorkItem<1> for CocoDev {
    type Pointer = Arc<CocoDev>;

    fn run(this: Arc<CocoDev>) {
        this.keep_alive();
    }
}

impl WorkItem for CocoDev {
    type Pointer = Arc<CocoDev>;

    fn run(this: Arc<CocoDev>) {
        // The outcome is logged and stored by `probe()`.
        let _ = this.probe();
    }
}

impl CocoDev {
    /// Creates the state for the function whose `struct device` is `raw`, or returns `None` if it
    /// has no CMA/SPDM DOE mailbox.
    ///
    /// # Safety
    ///
    /// `raw` must be the `struct device` of a live PCI function whose `BUS_NOTIFY_DEL_DEVICE`
    /// notification has not been delivered.
    pub(crate) unsafe fn new(raw: *mut bindings::device) -> Result<Option<Arc<Self>>> {
        let nn = NonNull::new(raw).ok_or(EINVAL)?;
        // SAFETY: `raw` is a valid device by the safety requirements.
        let dev: &device::Device = unsafe { device::Device::from_raw(raw) };
        let pdev = <&pci::Device>::try_from(dev)?;
        // SAFETY: The mailbox is only used within this function, and the function is live.
        let cma = unsafe { pdev.doe_mailbox_unbound(pcidoe::VENDOR_PCI_SIG, pcidoe::FEATURE_CMA) };
        if cma.is_none() {
            return Ok(None);
        }
        // SAFETY: As above.
        let secured_cma = unsafe {
            pdev.doe_mailbox_unbound(pcidoe::VENDOR_PCI_SIG, pcidoe::FEATURE_SECURED_CMA)
        }
        .is_some();
        let cd = Arc::pin_init(
            pin_init!(CocoDev {
                pdev: pdev.into(),
                raw: RawDev(nn),
                secured_cma,
                removed: AtomicBool::new(false),
                sysfs_added: AtomicBool::new(false),
                preferred_slot: AtomicU8::new(SLOT_AUTO),
                shown_slots: AtomicU8::new(0),
                generation: AtomicU64::new(0),
                op <- new_mutex!(None),
                state <- new_mutex!(State::empty(Status::Pending, MeasState::new())),
                session <- new_mutex!(None),
                work <- new_work!("CocoDev::work"),
                heartbeat <- new_delayed_work!("CocoDev::heartbeat"),
            }),
            GFP_KERNEL,
        )?;
        Ok(Some(cd))
    }

    /// Whether this is the state of the device `raw`.
    pub(crate) fn is(&self, raw: *mut bindings::device) -> bool {
        self.raw.0.as_ptr() == raw
    }

    /// The generic device, for logging.
    pub(crate) fn dev(&self) -> &device::Device {
        self.pdev.as_ref()
    }

    pub(crate) fn set_sysfs_added(&self) {
        self.sysfs_added.store(true, Ordering::Release);
    }

    /// Queues an asynchronous probe: device discovery never blocks enumeration. A probe that is
    /// already queued covers this request.
    pub(crate) fn start_probe(self: &Arc<Self>) {
        let _ = workqueue::system_unbound().enqueue::<_, 0>(self.clone());
    }

    /// Queues the next heartbeat check of a session whose device set a HeartbeatPeriod of
    /// `period` seconds, half a period from now. Called with `op` held, so that `teardown()`,
    /// which sets `removed` before it takes `op` and flushes the work after, never leaves one
    /// queued.
    fn arm_heartbeat(self: &Arc<Self>, period: u8) {
        if period == 0 || self.removed.load(Ordering::Acquire) {
            return;
        }
        let delay = msecs_to_jiffies(u32::from(period) * 500);
        // Freezable: no HEARTBEAT reaches a device while the system suspends (the resume
        // re-authenticates it and opens a new session). Already queued: that check covers this
        // session too.
        let _ = workqueue::system_freezable_power_efficient()
            .enqueue_delayed::<_, 1>(self.clone(), delay);
    }

    /// The heartbeat check: DSP0274 lets a device end a session that carried no request for
    /// twice its HeartbeatPeriod, so a HEARTBEAT is sent when nothing was sent for a quarter
    /// of it (checks run every half period: the longest silence is three quarters of one).
    fn keep_alive(self: &Arc<Self>) {
        let _ = self.with_session(|s, mb| {
            let period = s.info().heartbeat_period;
            if period == 0 {
                return Ok(());
            }
            if s.idle_ms() >= u64::from(period) * 250 {
                s.heartbeat(mb)?;
            }
            self.arm_heartbeat(period);
            Ok(())
        });
    }

    /// Runs a request root wrote to `coco/session`.
    pub(crate) fn session_op(self: &Arc<Self>, op: SessionOp) -> Result {
        let r = self.with_session(|s, mb| match op {
            SessionOp::Heartbeat => s.heartbeat(mb),
            SessionOp::KeyUpdate => s.key_update(mb, true),
            SessionOp::End => s.end(mb),
        });
        match r {
            Ok(()) if op == SessionOp::End => {
                dev_info!(self.dev(), "coco: session ended (END_SESSION)\n");
                Ok(())
            }
            Ok(()) => Ok(()),
            Err(f) => Err(f.err),
        }
    }

    /// The device was reset or resumed: what it answered before may no longer hold (new
    /// firmware, another device). The results are withdrawn now (`authenticated` reads 0 until
    /// the new run finishes), a run in progress will not store its stale results, and a new
    /// probe is queued.
    pub(crate) fn invalidate(self: &Arc<Self>, why: &'static str) {
        if self.removed.load(Ordering::Acquire) {
            return;
        }
        {
            // Bumped under the state lock, which `store_auth()` checks it under.
            let mut state = self.state.lock();
            self.generation.fetch_add(1, Ordering::AcqRel);
            if matches!(state.auth_status, AuthStatus::Ok) {
                dev_info!(self.dev(), "coco: {}: re-authenticating\n", why);
            }
            state.auth_status = AuthStatus::Pending;
            state.auth.slot = None;
            state.meas.stale = state.meas.reading.is_some();
            state.meas.status = MeasStatus::Pending;
        }
        self.start_probe();
    }

    /// Sets the slot tried first at the next authentication (`None`: the lowest populated one).
    pub(crate) fn set_preferred_slot(&self, slot: Option<u8>) -> Result {
        match slot {
            Some(s) if usize::from(s) >= SLOTS => Err(EINVAL),
            Some(s) => {
                self.preferred_slot.store(s, Ordering::Relaxed);
                Ok(())
            }
            None => {
                self.preferred_slot.store(SLOT_AUTO, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    /// Re-runs the probe and the authentication synchronously (root wrote `authenticated`);
    /// returns the authentication's errno if it failed.
    pub(crate) fn reauthenticate(self: &Arc<Self>) -> Result {
        self.probe_with(false)?;
        match self.state.lock().auth_status {
            AuthStatus::Ok => Ok(()),
            AuthStatus::Failed(f) => Err(f.err),
            AuthStatus::Pending => Err(EAGAIN),
        }
    }

    /// Whether certificate slot `slot` holds a chain to show.
    pub(crate) fn slot_populated(&self, slot: usize) -> bool {
        !self.state.lock().auth.slot_certificates(slot).is_empty()
    }

    /// The function's IDs from its config space, for the CMA identity check.
    fn function_ids(&self) -> FunctionIds {
        // SAFETY: `raw` is the `struct device` embedded in the live `struct pci_dev` that
        // `pdev` holds a reference to.
        let class =
            unsafe { (*kernel::container_of!(self.raw.0.as_ptr(), bindings::pci_dev, dev)).class };
        FunctionIds {
            vendor: self.pdev.vendor_id().as_raw(),
            device: self.pdev.device_id(),
            class,
            revision: self.pdev.revision_id(),
            subsystem_vendor: self.pdev.subsystem_vendor_id(),
            subsystem: self.pdev.subsystem_device_id(),
        }
    }

    /// Stops all use of the device: called when it is removed or the module unloads.
    ///
    /// On return no exchange is running or will start, and the sysfs files are gone.
    pub(crate) fn teardown(&self) {
        self.removed.store(true, Ordering::Release);
        if self.sysfs_added.swap(false, Ordering::AcqRel) {
            // SAFETY: The group was added to this live device; removal waits for running
            // callbacks, which see `removed` from now on.
            unsafe { crate::coco_sysfs_remove(self.raw.0.as_ptr()) };
        }
        // SAFETY: `self.work` was initialised by `new_work!`; flushing waits for a queued or
        // running probe, which returns early once `removed` is set.
        unsafe { bindings::flush_work(Work::raw_get(&self.work)) };
        // Taking the lock waits for a probe that holds `op` (a `measurements/refresh` writer);
        // later ones see `removed` and leave the device alone. The session ends under `op`; the
        // directory is destroyed without it: removing its files waits for their writers, which
        // may be waiting for `op`.
        let dir = {
            let mut op = self.op.lock();
            self.end_session(true);
            op.take()
        };
        // A heartbeat check queued before `removed` was seen under `op` runs now and finds the
        // device removed; none is queued after (see `arm_heartbeat()`).
        let dwork = core::ptr::addr_of!(self.heartbeat)
            .cast::<bindings::delayed_work>()
            .cast_mut();
        // SAFETY: `DelayedWork` is a transparent wrapper of the `struct delayed_work` that
        // `new_delayed_work!` initialised; flushing runs a queued check at once and waits.
        unsafe { bindings::flush_delayed_work(dwork) };
        if let Some(dir) = dir {
            // SAFETY: Created by `coco_meas_dir_create()` for this device; no probe uses it any
            // more (see above).
            unsafe { crate::coco_meas_dir_destroy(dir.0.as_ptr()) };
        }
    }

    /// Ends the secure session, if any, with END_SESSION when the device is still there (a
    /// surprise-removed device is not asked: the session is just dropped). Called with `op`
    /// held; `teardown` allows it after `removed` is set.
    fn end_session(&self, teardown: bool) {
        let Some((mut s, generation)) = self.session.lock().take() else {
            return;
        };
        self.state.lock().session = SessionStatus::None;
        // After a reset or resume (a new generation) the device no longer has the session.
        if !s.is_open()
            || (!teardown && self.removed.load(Ordering::Acquire))
            || self.generation.load(Ordering::Acquire) != generation
        {
            return;
        }
        // SAFETY: `pdev` holds a reference to the `struct pci_dev` embedding `raw`.
        let present = unsafe {
            bindings::pci_device_is_present(kernel::container_of!(
                self.raw.0.as_ptr(),
                bindings::pci_dev,
                dev
            ))
        };
        if !present {
            return;
        }
        // SAFETY: Called with `op` held, before `teardown()` returns or from a probe that it
        // waits for; the function is live (its DEL notification has not returned).
        let Some(mb) = (unsafe {
            self.pdev
                .doe_mailbox_unbound(pcidoe::VENDOR_PCI_SIG, pcidoe::FEATURE_CMA)
        }) else {
            return;
        };
        match s.end(&mb) {
            Ok(()) => dev_info!(self.dev(), "coco: session ended (END_SESSION)\n"),
            Err(f) => dev_warn!(
                self.dev(),
                "coco: END_SESSION failed: {} ({:?})\n",
                f.reason,
                f.err
            ),
        }
    }

    /// Runs `f` on the device's secure session (for the session's users: IDE_KM, TDISP), with
    /// protocol runs serialised (`op`). Fails with `ENOTCONN` when there is no usable session and
    /// `ENODEV` once the device is being removed. A failure of `f` that ends the session (any
    /// [`Session`] failure does) is shown in `session` as "error: <reason>" and the session is
    /// dropped.
    pub(crate) fn with_session<R>(
        &self,
        f: impl FnOnce(&mut Session, &pcidoe::Mailbox<'_>) -> Result<R, Failure>,
    ) -> Result<R, Failure> {
        let _op = self.op.lock();
        if self.removed.load(Ordering::Acquire) {
            return Err(Failure::new("device removed", ENODEV));
        }
        // SAFETY: `op` is held and `removed` was clear under it: `teardown()` waits for `op`
        // before the function goes away.
        let mb = unsafe {
            self.pdev
                .doe_mailbox_unbound(pcidoe::VENDOR_PCI_SIG, pcidoe::FEATURE_CMA)
        }
        .ok_or(Failure::new("device removed", ENODEV))?;
        let mut guard = self.session.lock();
        let current = self.generation.load(Ordering::Acquire);
        // A reset or resume since the session was established (a new generation) ended it.
        let s = Option::as_mut(&mut *guard)
            .filter(|(s, g)| s.is_open() && *g == current)
            .map(|(s, _)| s)
            .ok_or(Failure::new("no session (it ended or failed)", ENOTCONN))?;
        let r = f(s, &mb);
        let info = s.is_open().then(|| s.info());
        if info.is_none() {
            *guard = None;
        }
        drop(guard);
        let status = match (info, &r) {
            (Some(i), _) => SessionStatus::Established(i),
            // Ended on request (END_SESSION).
            (None, Ok(_)) => SessionStatus::None,
            (None, Err(e)) => {
                dev_err!(
                    self.dev(),
                    "coco: session failed: {} ({:?})\n",
                    e.reason,
                    e.err
                );
                SessionStatus::Failed(e.reason)
            }
        };
        self.state.lock().session = status;
        r
    }

    /// Creates the `measurements/` directory (called once, after the sysfs groups).
    pub(crate) fn create_meas_dir(&self) {
        let mut op = self.op.lock();
        if op.is_some() || self.removed.load(Ordering::Acquire) {
            return;
        }
        // SAFETY: The device is live; the directory is destroyed in `teardown()`.
        let dir = unsafe { crate::coco_meas_dir_create(self.raw.0.as_ptr()) };
        match NonNull::new(dir) {
            Some(d) => *op = Some(MeasDir(d)),
            None => dev_warn!(self.dev(), "coco: cannot create measurements/\n"),
        }
    }

    /// Runs the probe exchanges (DOE discovery, SPDM GET_VERSION, then the authentication) and
    /// stores the outcome. Fails only if discovery or GET_VERSION fail: the authentication's
    /// outcome is stored in `auth_status`.
    pub(crate) fn probe(self: &Arc<Self>) -> Result {
        self.probe_with(true)
    }

    /// [`CocoDev::probe`], with DOE discovery only if `discover` or if the last probe failed.
    fn probe_with(self: &Arc<Self>, discover: bool) -> Result {
        let op = self.op.lock();
        if self.removed.load(Ordering::Acquire) {
            return Err(ENODEV);
        }
        let before = self.outcome();
        let ret = self.run_probe(discover);
        let after = self.outcome();
        let period = match &*self.session.lock() {
            Some((s, _)) if s.is_open() => s.info().heartbeat_period,
            _ => 0,
        };
        self.arm_heartbeat(period);
        if !self.removed.load(Ordering::Acquire) {
            let mask = self.state.lock().auth.shown_slots();
            if self.sysfs_added.load(Ordering::Acquire)
                && self.shown_slots.swap(mask, Ordering::AcqRel) != mask
            {
                // SAFETY: The device is live and its groups exist (`removed` is clear, and
                // teardown waits for this run before the device goes away).
                unsafe { crate::coco_sysfs_update_certificates(self.raw.0.as_ptr()) };
            }
            if let Some(dir) = op.as_ref() {
                let mut indices = [0u8; 256];
                let mut n = 0usize;
                if let Some(m) = &self.state.lock().meas.reading {
                    for (slot, b) in indices.iter_mut().zip(m.blocks.iter()) {
                        *slot = b.index;
                        n += 1;
                    }
                }
                // SAFETY: `dir` is live (destroyed only under `op`, which is held); `indices`
                // holds `n` valid indices.
                unsafe {
                    crate::coco_meas_dir_set_blocks(dir.0.as_ptr(), indices.as_ptr(), n as c_uint)
                };
            }
            if after != before {
                self.notify(after);
            }
        }
        ret
    }

    /// What userspace sees of the last probe, for change notification.
    fn outcome(&self) -> Outcome {
        let state = self.state.lock();
        let status = match state.status {
            Status::Pending => OutcomeKind::Pending,
            Status::Ready => OutcomeKind::Ok,
            Status::Failed(f) => OutcomeKind::Error(f.reason),
        };
        let auth = match state.auth_status {
            AuthStatus::Pending => OutcomeKind::Pending,
            AuthStatus::Ok => OutcomeKind::Ok,
            AuthStatus::Failed(f) => OutcomeKind::Error(f.reason),
        };
        Outcome { status, auth }
    }

    /// Sends a `KOBJ_CHANGE` uevent for the device with `COCO_STATUS` and `COCO_AUTH`, so that
    /// udev rules can react to a changed result.
    fn notify(&self, o: Outcome) {
        let mut envp: [*mut kernel::ffi::c_char; 3] = [
            o.status.env(
                c"COCO_STATUS=ok",
                c"COCO_STATUS=error",
                c"COCO_STATUS=pending",
            ),
            o.auth
                .env(c"COCO_AUTH=ok", c"COCO_AUTH=error", c"COCO_AUTH=pending"),
            core::ptr::null_mut(),
        ];
        // SAFETY: The device is live (`removed` is clear and teardown waits for the probe);
        // `envp` is a NULL-terminated array of NUL-terminated strings that the callee only reads
        // during the call.
        let ret = unsafe {
            bindings::kobject_uevent_env(
                &raw mut (*self.raw.0.as_ptr()).kobj,
                bindings::kobject_action_KOBJ_CHANGE,
                envp.as_mut_ptr(),
            )
        };
        if ret != 0 {
            dev_warn!(self.dev(), "coco: cannot send the change uevent: {}\n", ret);
        }
    }

    /// The probe exchanges and their outcome; called with `op` held.
    fn run_probe(&self, discover_again: bool) -> Result {
        // SAFETY: `teardown()` sets `removed` before the device's DEL notification returns and
        // then waits for this function (sysfs drain, work flush); `removed` was clear above with
        // `op` held, so the mailbox outlives this call.
        let mb = unsafe {
            self.pdev
                .doe_mailbox_unbound(pcidoe::VENDOR_PCI_SIG, pcidoe::FEATURE_CMA)
        }
        .ok_or(ENODEV)?;

        // A new authentication first ends the old session.
        self.end_session(false);

        // A re-authentication of a device that answered before skips DOE discovery.
        let discover_again = discover_again || !matches!(self.state.lock().status, Status::Ready);
        let result = if discover_again {
            discover(&mb).and_then(|f| Ok((Some(f), get_version(&mb, &self.removed)?)))
        } else {
            get_version(&mb, &self.removed).map(|v| (None, v))
        };
        let mut state = self.state.lock();
        match result {
            Ok((features, (versions, vca))) => {
                let features = match features {
                    Some(f) => {
                        dev_info!(
                            self.dev(),
                            "coco: DOE features {}; SPDM versions {}; secured CMA {}\n",
                            FeatureList(&f),
                            VersionList(&versions),
                            if self.secured_cma { "yes" } else { "no" }
                        );
                        f
                    }
                    None => core::mem::take(&mut state.features),
                };
                // The chains the last run read: GET_CERTIFICATE is skipped for a slot whose
                // digest still matches.
                let cache = core::mem::take(&mut state.auth.chains);
                let generation = self.generation.load(Ordering::Acquire);
                let meas = core::mem::replace(&mut state.meas, MeasState::new());
                *state = State {
                    status: Status::Ready,
                    features,
                    versions,
                    auth_status: AuthStatus::Pending,
                    auth: AuthInfo::default(),
                    meas,
                    session: SessionStatus::None,
                };
                let nonce = state.meas.pending_nonce.take();
                // Copy the versions: the state lock is not held during the exchanges.
                let mut versions = KVec::new();
                let copied = versions.extend_from_slice(&state.versions, GFP_KERNEL);
                drop(state);
                let mut info = AuthInfo::default();
                let preferred = self.preferred_slot.load(Ordering::Relaxed);
                let policy = Policy {
                    preferred_slot: (preferred != SLOT_AUTO).then_some(preferred),
                    strict_identity: crate::strict_identity(),
                    ids: self.function_ids(),
                    keyring: crate::keyring(),
                    measure: Some(nonce),
                    session: self.secured_cma,
                };
                let result = match copied {
                    Ok(()) => spdm_auth::authenticate(
                        &mb,
                        &self.removed,
                        &vca,
                        &versions,
                        cache,
                        &policy,
                        &mut info,
                    ),
                    Err(_) => Err(Failure::new("out of memory", ENOMEM)),
                };
                self.store_auth(result, info, generation);
                Ok(())
            }
            Err(f) => {
                match f.spdm_error {
                    Some(code) => dev_err!(
                        self.dev(),
                        "coco: probe failed: {}: {} ({:?})\n",
                        f.reason,
                        spdm::error_code_name(code),
                        f.err
                    ),
                    None => dev_err!(
                        self.dev(),
                        "coco: probe failed: {} ({:?})\n",
                        f.reason,
                        f.err
                    ),
                }
                // A failed run shows nothing of an earlier success; earlier measurements stay,
                // marked stale.
                let mut meas = core::mem::replace(&mut state.meas, MeasState::new());
                meas.update(None, &Err(f));
                *state = State::empty(Status::Failed(f), meas);
                state.auth_status = AuthStatus::Failed(Failure::new(
                    "not attempted: discovery or GET_VERSION failed",
                    f.err,
                ));
                Err(f.err)
            }
        }
    }

    /// Logs and stores the outcome of an authentication.
    fn store_auth(&self, result: Result<(), Failure>, info: AuthInfo, generation: u64) {
        // A run cut short by removal or module unload is not a device failure, and the results
        // of a run that overlapped a reset or resume are stale: the queued probe replaces them.
        let removed = self.removed.load(Ordering::Acquire)
            || self.generation.load(Ordering::Acquire) != generation;
        match (&result, info.negotiated) {
            (Err(_), _) if removed => {}
            (Ok(()), Some((v, asym, hash))) => dev_info!(
                self.dev(),
                "coco: authenticated: SPDM {}.{}, {} {}, slot {}, trusted root; {} SPDM exchanges, {} bytes sent, {} received, {} connection(s), {} us; chains: {} read, {} cached\n",
                v.major(),
                v.minor(),
                spdm_auth::asym_short_name(asym),
                spdm_auth::hash_short_name(hash),
                info.slot.unwrap_or(0),
                info.exchanges,
                info.tx_bytes,
                info.rx_bytes,
                info.connections,
                info.elapsed_us,
                info.chains_fetched,
                info.chains_cached
            ),
            (Ok(()), None) => {}
            // No trust anchor for the chain: a policy outcome (root may not have loaded it
            // yet), not a device fault.
            (Err(f), _) if f.err == ENOKEY => dev_warn!(
                self.dev(),
                "coco: not authenticated: {} ({:?}); {} SPDM exchanges, {} bytes sent, {} received, {} connection(s), {} us; chains: {} read, {} cached\n",
                f,
                f.err,
                info.exchanges,
                info.tx_bytes,
                info.rx_bytes,
                info.connections,
                info.elapsed_us,
                info.chains_fetched,
                info.chains_cached
            ),
            (Err(f), _) => match f.spdm_error {
                Some(code) => dev_err!(
                    self.dev(),
                    "coco: authentication failed: {}: {} ({:?}); {} SPDM exchanges\n",
                    f,
                    spdm::error_code_name(code),
                    f.err,
                    info.exchanges
                ),
                None => dev_err!(
                    self.dev(),
                    "coco: authentication failed: {} ({:?}); {} SPDM exchanges\n",
                    f,
                    f.err,
                    info.exchanges
                ),
            },
        }
        if !removed {
            match info.identity_status {
                IdentityStatus::Mismatch(r) => dev_warn!(
                    self.dev(),
                    "coco: {} (certificate slot {})\n",
                    r,
                    info.slot.unwrap_or(0)
                ),
                IdentityStatus::Missing if result.is_ok() => dev_warn!(
                    self.dev(),
                    "coco: leaf certificate has no CMA identity (subjectAltName 2.23.147)\n"
                ),
                _ => {}
            }
        }
        let mut info = info;
        let meas = info.meas.take();
        if !removed {
            match &meas {
                Some(Ok(m)) => dev_info!(
                    self.dev(),
                    "coco: measurements: {} blocks signed by slot {} over a {} nonce; {} SPDM exchanges ({}), {} bytes sent, {} received, {} us; {} bytes held\n",
                    m.blocks.len(),
                    m.slot,
                    if m.verifier_nonce { "root-supplied" } else { "random" },
                    m.exchanges,
                    if m.per_index { "per index" } else { "all at once" },
                    info.meas_tx_bytes,
                    info.meas_rx_bytes,
                    info.meas_elapsed_us,
                    m.memory()
                ),
                Some(Err(f)) => match f.spdm_error {
                    Some(code) => dev_err!(
                        self.dev(),
                        "coco: measurements failed: {}: {} ({:?})\n",
                        f.reason,
                        spdm::error_code_name(code),
                        f.err
                    ),
                    None => dev_err!(
                        self.dev(),
                        "coco: measurements failed: {} ({:?})\n",
                        f.reason,
                        f.err
                    ),
                },
                None => {}
            }
        }
        let session = match info.session.take() {
            None => match info.session_unavailable.filter(|_| result.is_ok()) {
                Some(r) => {
                    if !removed {
                        dev_warn!(self.dev(), "coco: session unavailable: {}\n", r);
                    }
                    SessionStatus::Unavailable(r)
                }
                None => SessionStatus::None,
            },
            Some(Ok(s)) => {
                let i = s.info();
                if !removed {
                    dev_info!(
                        self.dev(),
                        "coco: session established: {} {}, slot {}, handshake {}, heartbeat period {} s; {} SPDM exchanges, {} us\n",
                        spdm_session::dhe_name(i.dhe),
                        spdm_session::aead_name(i.aead),
                        info.slot.unwrap_or(0),
                        handshake_name(i.handshake_in_clear),
                        i.heartbeat_period,
                        info.session_exchanges,
                        info.session_elapsed_us
                    );
                }
                *self.session.lock() = Some((s, generation));
                SessionStatus::Established(i)
            }
            Some(Err(f)) => {
                if !removed {
                    match f.spdm_error {
                        Some(code) => dev_err!(
                            self.dev(),
                            "coco: session failed: {}: {} ({:?}); {} SPDM exchanges\n",
                            f.reason,
                            spdm::error_code_name(code),
                            f.err,
                            info.session_exchanges
                        ),
                        None => dev_err!(
                            self.dev(),
                            "coco: session failed: {} ({:?}); {} SPDM exchanges\n",
                            f.reason,
                            f.err,
                            info.session_exchanges
                        ),
                    }
                }
                SessionStatus::Failed(f.reason)
            }
        };
        let mut state = self.state.lock();
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        state.session = session;
        state.meas.update(meas, &result);
        state.auth_status = match result {
            Ok(()) => AuthStatus::Ok,
            Err(f) => AuthStatus::Failed(f),
        };
        state.auth = info;
    }

    /// Sets the nonce of the next signed GET_MEASUREMENTS.
    pub(crate) fn set_meas_nonce(&self, nonce: [u8; spdm::SPDM_NONCE_SIZE]) {
        self.state.lock().meas.pending_nonce = Some(nonce);
    }

    /// Reads the measurements again (with a re-authentication on a new connection); returns
    /// the reading's errno if it failed.
    pub(crate) fn refresh_measurements(self: &Arc<Self>) -> Result {
        self.probe_with(false)?;
        match self.state.lock().meas.status {
            MeasStatus::Ok => Ok(()),
            MeasStatus::Failed(f) => Err(f.err),
            MeasStatus::Pending => Err(EAGAIN),
        }
    }

    /// Formats attribute `attr` of `measurements/` into `out`; returns the length written.
    pub(crate) fn meas_show(&self, attr: c_uint, out: &mut [u8]) -> Result<usize> {
        let state = self.state.lock();
        let m = &state.meas;
        let r = m.reading.as_ref();
        let mut w = SliceWriter { buf: out, len: 0 };
        let res = match attr {
            MEAS_STATUS => match m.status {
                MeasStatus::Pending => writeln!(w, "pending"),
                MeasStatus::Ok => writeln!(w, "ok"),
                MeasStatus::Failed(f) => writeln!(w, "error: {}", f.reason),
            },
            MEAS_STALE => writeln!(w, "{}", u8::from(m.stale)),
            MEAS_TIMESTAMP => match r {
                Some(r) => writeln!(w, "{}", r.timestamp),
                None => writeln!(w),
            },
            MEAS_FRESH_CAPABLE => match r {
                Some(r) => writeln!(w, "{}", u8::from(r.fresh_capable)),
                None => writeln!(w),
            },
            MEAS_SPDM_VERSION => match r {
                Some(r) => writeln!(w, "{}.{}", r.version.major(), r.version.minor()),
                None => writeln!(w),
            },
            MEAS_HASH_ALGORITHM => match r {
                Some(r) => writeln!(w, "{}", spdm_auth::hash_short_name(r.hash)),
                None => writeln!(w),
            },
            MEAS_SIGNATURE_ALGORITHM => match r {
                Some(r) => writeln!(w, "{}", spdm_auth::asym_short_name(r.asym)),
                None => writeln!(w),
            },
            MEAS_SLOT => match r {
                Some(r) => writeln!(w, "{}", r.slot),
                None => writeln!(w),
            },
            MEAS_NONCE => match r {
                Some(r) => writeln!(w, "{}", Hex(&r.nonce)),
                None => writeln!(w),
            },
            _ => return Err(EINVAL),
        };
        res.map_err(|_| EOVERFLOW)?;
        Ok(w.len)
    }

    /// Copies up to `out.len()` bytes of the binary `measurements/` attribute `attr` from
    /// `offset`; returns the count.
    pub(crate) fn meas_read(&self, attr: c_uint, offset: usize, out: &mut [u8]) -> Result<usize> {
        let state = self.state.lock();
        let Some(r) = state.meas.reading.as_ref() else {
            return Ok(0);
        };
        match attr {
            MEAS_TRANSCRIPT => Ok(copy_from(&r.transcript, offset, out)),
            MEAS_SIGNATURE => Ok(copy_from(&r.signature, offset, out)),
            _ => Err(EINVAL),
        }
    }

    /// Formats attribute `attr` of the block directory `measurements/<index>/`.
    pub(crate) fn block_show(&self, index: u8, attr: c_uint, out: &mut [u8]) -> Result<usize> {
        let state = self.state.lock();
        let b = state
            .meas
            .reading
            .as_ref()
            .and_then(|r| r.blocks.iter().find(|b| b.index == index))
            .ok_or(ENOENT)?;
        let mut w = SliceWriter { buf: out, len: 0 };
        let res = match attr {
            BLOCK_TYPE => writeln!(
                w,
                "{}",
                MeasurementTypeName(b.value_type & crate::meas::SPDM_MEAS_VALUE_TYPE_MASK)
            ),
            BLOCK_FORMAT => writeln!(w, "{}", if b.is_raw() { "raw" } else { "digest" }),
            // A value too long for a page as hex: EFBIG (the transcript has it).
            BLOCK_VALUE => writeln!(w, "{}", Hex(&b.value)).map_err(|_| core::fmt::Error),
            _ => return Err(EINVAL),
        };
        res.map_err(|_| {
            if attr == BLOCK_VALUE {
                EFBIG
            } else {
                EOVERFLOW
            }
        })?;
        Ok(w.len)
    }

    /// Copies up to `out.len()` bytes of `slot`'s DER certificates from `offset`; returns the
    /// count.
    pub(crate) fn read_slot(&self, slot: usize, offset: usize, out: &mut [u8]) -> usize {
        let state = self.state.lock();
        copy_from(state.auth.slot_certificates(slot), offset, out)
    }

    /// Copies up to `out.len()` bytes of the certificate chain from `offset`; returns the count.
    pub(crate) fn read_cert_chain(&self, offset: usize, out: &mut [u8]) -> usize {
        let state = self.state.lock();
        copy_from(state.auth.certificates(), offset, out)
    }

    /// Formats attribute `attr` into `out`; returns the length written.
    pub(crate) fn show(&self, attr: c_uint, out: &mut [u8]) -> Result<usize> {
        let state = self.state.lock();
        let mut w = SliceWriter { buf: out, len: 0 };
        let r = match attr {
            ATTR_SPDM_VERSIONS => writeln!(w, "{}", VersionList(&state.versions)),
            ATTR_DOE_FEATURES => writeln!(w, "{}", FeatureList(&state.features)),
            ATTR_STATUS => match state.status {
                Status::Pending => writeln!(w, "pending"),
                Status::Ready => writeln!(w, "ok"),
                Status::Failed(f) => writeln!(w, "error: {}", f.reason),
            },
            ATTR_AUTH_STATUS => match state.auth_status {
                AuthStatus::Pending => writeln!(w, "pending"),
                AuthStatus::Ok => writeln!(w, "ok"),
                AuthStatus::Failed(f) => writeln!(w, "error: {}", f),
            },
            ATTR_SPDM_VERSION => match state.auth.negotiated {
                Some((v, _, _)) => writeln!(w, "{}.{}", v.major(), v.minor()),
                None => writeln!(w),
            },
            ATTR_ALGORITHMS => match state.auth.negotiated {
                Some((_, asym, hash)) => writeln!(
                    w,
                    "{} {}",
                    spdm_auth::asym_short_name(asym),
                    spdm_auth::hash_short_name(hash)
                ),
                None => writeln!(w),
            },
            ATTR_CERT_SLOT => match state.auth.slot {
                Some(s) => writeln!(w, "{}", s),
                None => writeln!(w),
            },
            ATTR_CHALLENGE => match (&state.auth_status, state.auth.challenge_sent) {
                (AuthStatus::Pending, _) => writeln!(w, "pending"),
                (AuthStatus::Ok, _) => writeln!(w, "ok"),
                // The device proved it holds the key; the chain's root is not trusted.
                (AuthStatus::Failed(_), true) if state.auth.challenge_ok => writeln!(w, "ok"),
                (AuthStatus::Failed(f), true) => writeln!(w, "error: {}", f.reason),
                (AuthStatus::Failed(_), false) => writeln!(w, "not attempted"),
            },
            ATTR_AUTHENTICATED => writeln!(
                w,
                "{}",
                u8::from(matches!(state.auth_status, AuthStatus::Ok))
            ),
            ATTR_PREFERRED_SLOT => match self.preferred_slot.load(Ordering::Relaxed) {
                SLOT_AUTO => writeln!(w, "auto"),
                s => writeln!(w, "{}", s),
            },
            ATTR_CMA_IDENTITY => match core::str::from_utf8(&state.auth.identity) {
                Ok(id) => writeln!(w, "{}", id),
                Err(_) => writeln!(w, "(not UTF-8)"),
            },
            ATTR_CMA_IDENTITY_STATUS => match state.auth.identity_status {
                IdentityStatus::Unknown => writeln!(w),
                IdentityStatus::Missing => writeln!(w, "missing"),
                IdentityStatus::Match => writeln!(w, "match"),
                IdentityStatus::Mismatch(r) => writeln!(w, "mismatch: {}", r),
            },
            ATTR_SESSION => match state.session {
                SessionStatus::None => writeln!(w, "none"),
                SessionStatus::Established(..) => writeln!(w, "established"),
                SessionStatus::Failed(r) => writeln!(w, "error: {}", r),
                SessionStatus::Unavailable(r) => writeln!(w, "unavailable: {}", r),
            },
            ATTR_SESSION_ALGORITHMS => match state.session {
                SessionStatus::Established(i) => writeln!(
                    w,
                    "{} {}",
                    spdm_session::dhe_name(i.dhe),
                    spdm_session::aead_name(i.aead)
                ),
                _ => writeln!(w),
            },
            ATTR_SESSION_VERSION
            | ATTR_SESSION_HANDSHAKE
            | ATTR_SESSION_HEARTBEAT_PERIOD
            | ATTR_SESSION_MESSAGES
            | ATTR_SESSION_KEY_UPDATES
            | ATTR_SESSION_HEARTBEATS => match state.session {
                SessionStatus::Established(i) => match attr {
                    ATTR_SESSION_VERSION => {
                        let v = spdm::VersionEntry::from_raw(i.secured_version);
                        writeln!(w, "{}.{}", v.major(), v.minor())
                    }
                    ATTR_SESSION_HANDSHAKE => {
                        writeln!(w, "{}", handshake_name(i.handshake_in_clear))
                    }
                    ATTR_SESSION_HEARTBEAT_PERIOD => writeln!(w, "{}", i.heartbeat_period),
                    ATTR_SESSION_MESSAGES => writeln!(w, "{}", i.messages),
                    ATTR_SESSION_KEY_UPDATES => writeln!(w, "{}", i.key_updates),
                    _ => writeln!(w, "{}", i.heartbeats),
                },
                _ => writeln!(w),
            },
            _ => return Err(EINVAL),
        };
        r.map_err(|_| EOVERFLOW)?;
        Ok(w.len)
    }
}

/// How the session's handshake travelled, for sysfs and the log.
fn handshake_name(in_clear: bool) -> &'static str {
    if in_clear {
        "clear"
    } else {
        "encrypted"
    }
}

/// Lowercase hexadecimal, no separators.
struct Hex<'a>(&'a [u8]);

impl core::fmt::Display for Hex<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for b in self.0 {
            write!(f, "{:02x}", b)?;
        }
        Ok(())
    }
}

/// Copies up to `out.len()` bytes of `src` from `offset`; returns the count.
fn copy_from(src: &[u8], offset: usize, out: &mut [u8]) -> usize {
    let Some(src) = src.get(offset..) else {
        return 0;
    };
    let n = src.len().min(out.len());
    if let (Some(d), Some(s)) = (out.get_mut(..n), src.get(..n)) {
        d.copy_from_slice(s);
        n
    } else {
        0
    }
}

/// Exchanges one DOE object on the CMA mailbox's `ty` feature.
fn exchange(
    mb: &pcidoe::Mailbox<'_>,
    ty: u8,
    req: &[u8],
    rsp: &mut [u8],
) -> Result<usize, Failure> {
    mb.exchange(pcidoe::VENDOR_PCI_SIG, ty, req, rsp)
        .map_err(|e| {
            if e == ETIMEDOUT {
                Failure::new("DOE exchange timed out (no answer from the device)", e)
            } else {
                Failure::new("DOE exchange failed", e)
            }
        })
}

/// Lists the mailbox's features with DOE discovery.
fn discover(mb: &pcidoe::Mailbox<'_>) -> Result<KVec<Feature>, Failure> {
    let mut features = KVec::new();
    let mut index = 0u8;
    for _ in 0..MAX_FEATURES {
        let req = doe::encode_discovery_request(index);
        let mut rsp = Aligned([0u8; 8]);
        let n = exchange(mb, pcidoe::FEATURE_DISCOVERY, &req, &mut rsp.0)?;
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
/// ERROR Busy and ResponseNotReady are retried like every SPDM request ([`spdm_auth::exchange`]).
pub(crate) fn get_version(
    mb: &pcidoe::Mailbox<'_>,
    removed: &AtomicBool,
) -> Result<(KVec<u16>, KVec<u8>), Failure> {
    let mut req = [0u8; 4];
    let len = spdm::encode_get_version(&mut req)
        .map_err(|_| Failure::new("cannot encode GET_VERSION", EINVAL))?;
    let mut rsp = KVec::from_elem(0u8, VERSION_RSP_SIZE, GFP_KERNEL)
        .map_err(|_| Failure::new("out of memory", ENOMEM))?;
    let n = spdm_auth::exchange(
        mb,
        removed,
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
struct VersionList<'a>(&'a [u16]);

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
struct FeatureList<'a>(&'a [Feature]);

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

/// `core::fmt::Write` into a byte slice; fails instead of truncating.
struct SliceWriter<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(core::fmt::Error)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[kunit_tests(coco)]
mod tests {
    use super::*;

    fn render(attr: impl core::fmt::Display) -> Result<KVec<u8>> {
        let mut buf = KVec::from_elem(0u8, 64, GFP_KERNEL)?;
        let mut w = SliceWriter {
            buf: &mut buf,
            len: 0,
        };
        write!(w, "{}", attr).map_err(|_| EOVERFLOW)?;
        let len = w.len;
        buf.truncate(len);
        Ok(buf)
    }

    #[test]
    fn failure_names_the_certificate() -> Result {
        let f = Failure::new("certificate exceeds a CA's pathLenConstraint", EKEYREJECTED);
        assert_eq!(
            &render(f)?[..],
            b"certificate exceeds a CA's pathLenConstraint"
        );
        let mut buf = KVec::from_elem(0u8, 160, GFP_KERNEL)?;
        let mut w = SliceWriter {
            buf: &mut buf,
            len: 0,
        };
        let at = CertRef::new(3, 1, b"CA\n2\x1b");
        write!(w, "{}", f.about(at)).map_err(|_| EOVERFLOW)?;
        let len = w.len;
        assert_eq!(
            &buf[..len],
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

    #[test]
    fn version_list_format() -> Result {
        assert_eq!(
            &render(VersionList(&[0x1000, 0x1100, 0x1200, 0x1300]))?[..],
            b"1.0 1.1 1.2 1.3"
        );
        assert_eq!(&render(VersionList(&[]))?[..], b"");
        Ok(())
    }

    #[test]
    fn feature_list_format() -> Result {
        let f = [
            Feature {
                vendor: 1,
                object_type: 0,
            },
            Feature {
                vendor: 1,
                object_type: 2,
            },
        ];
        assert_eq!(&render(FeatureList(&f))?[..], b"0001:00 0001:02");
        Ok(())
    }

    #[test]
    fn slice_writer_refuses_overflow() {
        let mut buf = [0u8; 4];
        let mut w = SliceWriter {
            buf: &mut buf,
            len: 0,
        };
        assert!(write!(w, "abcd").is_ok());
        assert!(write!(w, "e").is_err());
        assert_eq!(w.len, 4);
    }

    #[test]
    fn spdm_codec_in_kernel() {
        // The shared codec behaves the same when built with the kernel's flags.
        let mut req = [0u8; 4];
        assert_eq!(spdm::encode_get_version(&mut req).ok(), Some(4));
        assert_eq!(req, [0x10, 0x84, 0, 0]);
        let rsp = [0x10u8, 0x04, 0, 0, 0, 2, 0x00, 0x12, 0x00, 0x13];
        let v = spdm::parse_version_response(&rsp);
        assert!(v.is_ok());
        if let Ok(v) = v {
            let mut it = v.entries();
            assert_eq!(it.next().map(|e| e.raw()), Some(0x1200));
            assert_eq!(it.next().map(|e| e.raw()), Some(0x1300));
            assert!(it.next().is_none());
        }
        // A count larger than the entries present is refused.
        assert!(spdm::parse_version_response(&rsp[..8]).is_err());
    }

    #[test]
    fn doe_discovery_in_kernel() {
        let d = doe::decode_discovery_response(&[0x01, 0x00, 0x02, 0x00]);
        assert!(matches!(
            d,
            Ok(doe::DiscoveryResponse {
                vendor: 1,
                object_type: 2,
                next_index: 0
            })
        ));
        assert!(doe::decode_discovery_response(&[0x01, 0x00]).is_err());
    }
}
