// SPDX-License-Identifier: GPL-2.0

//! Per-device state of coco.ko and the probe exchanges over the CMA/SPDM DOE mailbox.

mod evidence;
mod guest;
mod ide;
mod sysfs;
mod tdi;

pub(crate) use tdi::{FwTdiOps, TdispOp};

/// The C layout of a firmware TSM's TDI operations (for `backend.rs`).
pub(crate) mod tdi_ops {
    pub(crate) use super::tdi::CocoBackendTdiOps;
}

use crate::{
    channel::{self, DoeTransport, Failure, Feature, FeatureList, Transport, VersionList},
    cma::FunctionIds,
    connect::{self, Outcome as ConnectOutcome},
    meas::{self, IndexSet},
    native::{self, IdeLink, LinkState},
    requester::{
        auth::{self as spdm_auth, AuthInfo, IdentityStatus, SLOTS},
        meas::MeasInfo,
        session::{self as spdm_session, Session, SessionInfo},
    },
    spdm,
};
use core::{
    ptr::NonNull,
    sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering},
};
use kernel::{
    bindings, device,
    ffi::c_uint,
    pci::{self, doe as pcidoe},
    prelude::*,
    sync::{aref::ARef, new_mutex, new_spinlock, Arc, Mutex, MutexGuard, SpinLock},
    time::msecs_to_jiffies,
    workqueue::{
        impl_has_delayed_work, impl_has_work, new_delayed_work, new_work, DelayedWork, Work,
        WorkItem,
    },
};

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

/// `preferred_slot` value meaning "the lowest populated slot".
const SLOT_AUTO: u8 = u8::MAX;

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
    /// Who may send on the DOE mailbox.
    owner: Owner,
    /// The TSM whose evidence `auth` and `meas` hold (certificates and measurements it
    /// returned), or `None` for coco.ko's own.
    evidence: Option<TsmName>,
}

/// Who may send on a device's DOE mailbox: one owner at a time.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// coco.ko's own requester (authentication, measurements, its session).
    Coco,
    /// A TSM (named), for which coco.ko only relays data objects ([`Relay`]): coco.ko sends
    /// nothing of its own meanwhile.
    Tsm(TsmName),
}

/// A TSM's name as coco.ko shows it: a copy (the name may live in another module), at most
/// [`TsmName::MAX`] bytes of printable ASCII (others become `?`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct TsmName {
    buf: [u8; TsmName::MAX],
    len: usize,
}

impl TsmName {
    /// The longest name kept.
    pub(crate) const MAX: usize = 16;

    /// The name `s`, truncated to [`TsmName::MAX`] bytes.
    pub(crate) fn new(s: &[u8]) -> Self {
        let mut name = Self {
            buf: [0; Self::MAX],
            len: 0,
        };
        for (d, &c) in name.buf.iter_mut().zip(s) {
            *d = if c.is_ascii_graphic() { c } else { b'?' };
            name.len += 1;
        }
        name
    }

    pub(crate) fn as_str(&self) -> &str {
        // Only ASCII is stored.
        core::str::from_utf8(self.buf.get(..self.len).unwrap_or(&[])).unwrap_or("?")
    }
}

impl kernel::fmt::Display for TsmName {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
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
            owner: Owner::Coco,
            evidence: None,
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
    /// A TDI assigned to this confidential guest (see `device/guest.rs`), not a function
    /// coco.ko authenticates over its own mailbox.
    guest_mode: bool,
    /// The guest side of the TDI (only with `guest_mode`).
    #[pin]
    guest: Mutex<guest::GuestTdi>,
    /// Serialises the guest's bind, verification, acceptance and loss handling (held across
    /// the channel's requests and the driver's attach and release).
    #[pin]
    guest_serial: Mutex<()>,
    /// Guest requests sent for this function (TIO_OP and TIO_GUEST_REQUEST).
    guest_requests: AtomicU32,
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
    /// Serialises protocol runs on the device; holds the blocks whose files `measurements/`
    /// shows.
    #[pin]
    op: Mutex<IndexSet>,
    /// Results of the last probe; held only briefly (sysfs reads).
    #[pin]
    state: Mutex<State>,
    /// The secure session and the `generation` it was established in; only locked with `op`
    /// held (protocol runs, teardown).
    #[pin]
    session: Mutex<Option<(Session, u64)>>,
    /// Users of the secure session (IDE streams, TDIs): while there is one, nothing coco.ko
    /// does on its own initiative ends the session (re-authentication, `measurements/refresh`
    /// and `rescan` are refused with `EBUSY`).
    session_users: AtomicUsize,
    /// Test hooks (debugfs): a relay and a session hold taken from userspace, and the
    /// device's debugfs directory.
    #[pin]
    debug: Mutex<DebugHooks>,
    /// The native IDE link (a session user) and why the last connect failed.
    #[pin]
    ide: Mutex<IdeState>,
    /// The TDI operations of the firmware TSM that owns the mailbox, if it gave any
    /// (`coco_backend_set_tdi_ops()`). Innermost: never held across a call.
    #[pin]
    fw_tdi: Mutex<Option<tdi::FwTdiOps>>,
    /// Held while work is queued and while `removed` is set: no work is queued once teardown
    /// has set `removed`, so its flushes are final.
    #[pin]
    queueing: SpinLock<()>,
    #[pin]
    work: Work<CocoDev>,
    /// Keeps the session alive when the device set a HeartbeatPeriod.
    #[pin]
    heartbeat: DelayedWork<CocoDev, 1>,
    /// Refreshes the IDE stream's keys every `ide_refresh_secs` seconds.
    #[pin]
    ide_refresh: DelayedWork<CocoDev, 2>,
    /// Reads a bound TDI's state from the device periodically.
    #[pin]
    tdi_check: DelayedWork<CocoDev, 3>,
}

/// The counters of an authentication, as the log shows them.
struct AuthCounters<'a>(&'a AuthInfo);

impl kernel::fmt::Display for AuthCounters<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let i = self.0;
        write!(
            f,
            "{} SPDM exchanges, {} bytes sent, {} received, {} connection(s), {} us; chains: {} read, {} cached",
            i.exchanges,
            i.tx_bytes,
            i.rx_bytes,
            i.connections,
            i.elapsed_us,
            i.chains_fetched,
            i.chains_cached
        )
    }
}

/// Who asked for a probe.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Trigger {
    /// Queued work: module load, hotplug, reset, resume, the mailbox handed back.
    Work,
    /// Root, through sysfs (rescan, authenticated, measurements/refresh).
    Root,
}

/// A hold on a device's secure session (see [`CocoDev::hold_session`]); released on drop.
pub(crate) struct SessionHold {
    dev: Arc<CocoDev>,
}

impl Drop for SessionHold {
    fn drop(&mut self) {
        self.dev.session_users.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A TSM's ownership of a device's DOE mailbox (see [`CocoDev::claim_mailbox`]): coco.ko
/// relays its data objects and sends nothing of its own. Dropping it hands the mailbox back.
pub(crate) struct Relay {
    dev: Arc<CocoDev>,
}

impl Relay {
    /// Sends the CMA/SPDM (`FEATURE_CMA`) or secured CMA/SPDM (`FEATURE_SECURED_CMA`) data object
    /// payload `req` and receives the response payload into `rsp`, one exchange at a time, with
    /// the DOE core's timeouts; returns its length. Fails with `EINVAL` for another object
    /// type, `ENODEV` once the device is being removed, else the DOE core's errno.
    pub(crate) fn exchange(
        &self,
        object_type: u8,
        req: &[u8],
        rsp: &mut [u8],
    ) -> Result<usize, Failure> {
        self.dev.relay(object_type, req, rsp)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.dev.release_mailbox();
    }
}

/// Who asked for a device's native IDE stream.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdeOwner {
    /// Root, through `coco/ide`.
    Sysfs,
    /// The PCI core's `tsm/connect` (coco.ko's native TSM).
    Tsm,
}

/// The native IDE backend's link of a device.
#[derive(Default)]
struct IdeState {
    /// The stream, with its hold on the session (its keys are programmed through it), and who
    /// connected it (only they disconnect it).
    link: Option<(IdeLink, SessionHold, IdeOwner)>,
    /// Why the last connect failed (cleared by a successful one).
    failure: Option<&'static str>,
    /// The device's interface (TDISP), which needs the link.
    tdi: tdi::TdiSlot,
}

/// What `coco/ide` shows.
pub(crate) enum IdeStatus {
    Disconnected,
    Connected(LinkState, (u8, u8, u8)),
    Failed(&'static str),
}

/// What the debugfs test hooks hold (`coco/<device>/relay` and `session_hold`).
#[derive(Default)]
struct DebugHooks {
    relay: Option<Relay>,
    hold: Option<SessionHold>,
    /// The last relayed response.
    last: KVec<u8>,
    /// The device's debugfs directory.
    dir: Option<DebugDir>,
}

/// A device's debugfs directory (`coco_debugfs_add()`).
struct DebugDir(NonNull<bindings::dentry>);

// SAFETY: Only passed to `debugfs_remove()`, which may be called from any thread.
unsafe impl Send for DebugDir {}

impl_has_work! {
    impl HasWork<Self> for CocoDev { self.work }
}

impl_has_delayed_work! {
    impl HasDelayedWork<Self, 1> for CocoDev { self.heartbeat }
}

impl_has_delayed_work! {
    impl HasDelayedWork<Self, 2> for CocoDev { self.ide_refresh }
}

impl_has_delayed_work! {
    impl HasDelayedWork<Self, 3> for CocoDev { self.tdi_check }
}

impl WorkItem<3> for CocoDev {
    type Pointer = Arc<CocoDev>;

    fn run(this: Arc<CocoDev>) {
        if this.tdi_check() {
            this.arm_tdi_check();
        }
    }
}

impl WorkItem<2> for CocoDev {
    type Pointer = Arc<CocoDev>;

    fn run(this: Arc<CocoDev>) {
        // Not connected any more, or the device is going: nothing to do, nothing queued again.
        if this.ide_refresh_keys().is_ok() {
            this.arm_ide_refresh();
        }
    }
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
        if this.guest_mode {
            this.guest_start();
            return;
        }
        // The outcome is logged and stored by `probe()`.
        let _ = this.probe();
        if !this.removed.load(Ordering::Acquire) {
            this.tdi_after_probe();
            this.ide_recover();
        }
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
    ///
    /// In a confidential guest (`guest_mode`) the functions are instead those the PCI core
    /// holds from drivers until they are accepted (TEE-IO, `pci=tee_accept`); they have no
    /// mailbox the guest may use.
    pub(crate) unsafe fn new(
        raw: *mut bindings::device,
        guest_mode: bool,
    ) -> Result<Option<Arc<Self>>> {
        let nn = NonNull::new(raw).ok_or(EINVAL)?;
        // SAFETY: `raw` is a valid device by the safety requirements.
        let dev: &device::Device = unsafe { device::Device::from_raw(raw) };
        let pdev = <&pci::Device>::try_from(dev)?;
        if guest_mode {
            let praw = core::ptr::from_ref(pdev)
                .cast_mut()
                .cast::<bindings::pci_dev>();
            // SAFETY: `praw` is the live function; `devcap` is set at enumeration.
            let devcap = unsafe { (*praw).devcap };
            if devcap & bindings::PCI_EXP_DEVCAP_TEE == 0 {
                return Ok(None);
            }
        }
        // SAFETY: The mailbox is only used within this function, and the function is live.
        let cma = unsafe { pdev.doe_mailbox_unbound(pcidoe::VENDOR_PCI_SIG, pcidoe::FEATURE_CMA) };
        if cma.is_none() && !guest_mode {
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
                guest_mode,
                guest <- new_mutex!(guest::GuestTdi::default()),
                guest_serial <- new_mutex!(()),
                guest_requests: AtomicU32::new(0),
                secured_cma,
                removed: AtomicBool::new(false),
                sysfs_added: AtomicBool::new(false),
                preferred_slot: AtomicU8::new(SLOT_AUTO),
                shown_slots: AtomicU8::new(0),
                generation: AtomicU64::new(0),
                op <- new_mutex!(IndexSet::new()),
                state <- new_mutex!(State::empty(Status::Pending, MeasState::new())),
                session <- new_mutex!(None),
                session_users: AtomicUsize::new(0),
                debug <- new_mutex!(DebugHooks::default()),
                ide <- new_mutex!(IdeState::default()),
                fw_tdi <- new_mutex!(None),
                queueing <- new_spinlock!(()),
                work <- new_work!("CocoDev::work"),
                heartbeat <- new_delayed_work!("CocoDev::heartbeat"),
                ide_refresh <- new_delayed_work!("CocoDev::ide_refresh"),
                tdi_check <- new_delayed_work!("CocoDev::tdi_check"),
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
        let _guard = self.queueing.lock();
        if self.removed.load(Ordering::Acquire) {
            return;
        }
        if let Some(q) = crate::queue() {
            let _ = q.enqueue::<_, 0>(self.clone());
        }
    }

    /// Queues the next heartbeat check of a session whose device set a HeartbeatPeriod of
    /// `period` seconds, half a period from now. Called with `op` held, so that `teardown()`,
    /// which sets `removed` before it takes `op` and flushes the work after, never leaves one
    /// queued.
    fn arm_heartbeat(self: &Arc<Self>, period: u8) {
        let _guard = self.queueing.lock();
        if period == 0 || self.removed.load(Ordering::Acquire) {
            return;
        }
        let delay = msecs_to_jiffies(u32::from(period) * 500);
        // The module's queue is freezable: no HEARTBEAT reaches a device while the system
        // suspends (the resume re-authenticates it and opens a new session). Already queued:
        // that check covers this session too.
        if let Some(q) = crate::queue() {
            let _ = q.enqueue_delayed::<_, 1>(self.clone(), delay);
        }
    }

    /// The heartbeat check: DSP0274 lets a device end a session that carried no request for
    /// twice its HeartbeatPeriod, so a HEARTBEAT is sent when nothing was sent for a quarter
    /// of it (checks run every half period: the longest silence is three quarters of one).
    fn keep_alive(self: &Arc<Self>) {
        let _ = self.with_session(|s, t| {
            let period = s.info().heartbeat_period;
            if period == 0 {
                return Ok(());
            }
            if s.idle_ms() >= u64::from(period) * 250 {
                s.heartbeat(t)?;
            }
            self.arm_heartbeat(period);
            Ok(())
        });
    }

    /// Runs a request root wrote to `coco/session`.
    pub(crate) fn session_op(self: &Arc<Self>, op: SessionOp) -> Result {
        let r = self.with_session(|s, t| match op {
            SessionOp::Heartbeat => s.heartbeat(t),
            SessionOp::KeyUpdate => s.key_update(t, true),
            SessionOp::End => s.end(t),
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
        // Checked again, with the queueing lock, by `start_probe()`.
        if self.removed.load(Ordering::Acquire) {
            return;
        }
        {
            // Bumped under the state lock, which `store()` checks it under.
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
        if self.guest_mode {
            return self.guest_retry();
        }
        self.probe_with(false, Trigger::Root)?;
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
        {
            // After this, nothing is queued (see `start_probe()`, `arm_heartbeat()`).
            let _guard = self.queueing.lock();
            self.removed.store(true, Ordering::Release);
        }
        if self.sysfs_added.swap(false, Ordering::AcqRel) {
            // SAFETY: The group was added to this live device; removal waits for running
            // callbacks, which see `removed` from now on.
            unsafe { crate::coco_sysfs_remove(self.raw.0.as_ptr()) };
        }
        let dir = self.debug.lock().dir.take();
        if let Some(dir) = dir {
            // SAFETY: Created by `coco_debugfs_add()` for this device; removal waits for
            // running file operations (which may take `debug` and `op`: not held here).
            unsafe { crate::coco_debugfs_remove(dir.0.as_ptr()) };
        }
        // The test hooks' relay and hold (a relay's hand-back queues nothing now).
        let hooks = core::mem::take(&mut *self.debug.lock());
        drop(hooks);
        // Waits for a queued or running probe, which returns early once `removed` is set.
        self.work.flush();
        // No sysfs writer is left to connect again: the IDE stream goes down first, its keys
        // stopped inside the session while it is still there.
        let mut ide = core::mem::take(&mut *self.ide.lock());
        let tdi = ide.tdi.bound.take();
        // Taking the lock waits for a probe that holds `op` (a `measurements/refresh` writer);
        // later ones see `removed` and leave the device alone. The session ends under `op`,
        // the TDI stopped first, then the IDE stream taken down.
        {
            let _op = self.op.lock();
            self.end_session(true, ide.link, tdi);
        }
        // Whatever happened to the TDI, no refusal of coco.ko's (its reason lives in the
        // module) outlives the device's state.
        self.tdi_teardown_gate();
        // A heartbeat check queued before `removed` was seen under `op` runs now and finds the
        // device removed; none is queued after (see `arm_heartbeat()`). Likewise a key
        // refresh, which finds no link (see `arm_ide_refresh()`).
        self.heartbeat.flush();
        self.ide_refresh.flush();
        self.tdi_check.flush();
    }

    /// Ends the secure session, if any, with END_SESSION when the device is still there (a
    /// surprise-removed device is not asked: the session is just dropped). Called with `op`
    /// held; `teardown` allows it after `removed` is set, with the IDE `link` to take down
    /// first (its endpoint keys stopped inside the session when it can still carry requests).
    fn end_session(
        &self,
        teardown: bool,
        link: Option<(IdeLink, SessionHold, IdeOwner)>,
        tdi: Option<native::tdi::Tdi>,
    ) {
        let mut tdi = tdi;
        let mut link = link.map(|(l, hold, _)| {
            // The hold is a count only: dropping it here takes no lock.
            drop(hold);
            l
        });
        let session = self.session.lock().take();
        let Some((mut s, generation)) = session else {
            if let Some(l) = link.take() {
                l.disconnect(None);
            }
            return;
        };
        self.state.lock().session = SessionStatus::None;
        // After a reset or resume (a new generation) the device no longer has the session.
        if !s.is_open()
            || (!teardown && self.removed.load(Ordering::Acquire))
            || self.generation.load(Ordering::Acquire) != generation
        {
            if let Some(l) = link.take() {
                l.disconnect(None);
            }
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
            if let Some(l) = link.take() {
                l.disconnect(None);
            }
            return;
        }
        // SAFETY: Called with `op` held, before `teardown()` returns or from a probe that it
        // waits for; the function is live (its DEL notification has not returned).
        let Some(mb) = (unsafe {
            self.pdev
                .doe_mailbox_unbound(pcidoe::VENDOR_PCI_SIG, pcidoe::FEATURE_CMA)
        }) else {
            if let Some(l) = link.take() {
                l.disconnect(None);
            }
            return;
        };
        // Teardown ends the session after `removed` was set: these last requests may still go.
        let not_removed = AtomicBool::new(false);
        let t = DoeTransport::new(&mb, &not_removed);
        if let Some(mut d) = tdi.take() {
            match d.stop(&mut s, &t) {
                Ok(()) => dev_info!(self.dev(), "coco: TDI stopped (CONFIG_UNLOCKED)\n"),
                Err(f) => dev_warn!(self.dev(), "coco: TDI stop failed: {}\n", f),
            }
        }
        if let Some(l) = link.take() {
            l.disconnect(Some((&mut s, &t)));
            dev_info!(self.dev(), "coco: IDE stream taken down\n");
        }
        match s.end(&t) {
            Ok(()) => dev_info!(self.dev(), "coco: session ended (END_SESSION)\n"),
            Err(f) => dev_warn!(
                self.dev(),
                "coco: END_SESSION failed: {} ({:?})\n",
                f.reason,
                f.err
            ),
        }
    }

    /// The CMA/SPDM DOE mailbox, for an exchange under `op` (the guard proves it is held);
    /// fails with "device removed" (`ENODEV`) once teardown has begun.
    fn mailbox<'a>(
        &'a self,
        _op: &MutexGuard<'_, IndexSet>,
    ) -> Result<pcidoe::Mailbox<'a>, Failure> {
        if self.removed.load(Ordering::Acquire) {
            return Err(Failure::new("device removed", ENODEV));
        }
        // SAFETY: `op` is held and `removed` was clear under it: `teardown()` sets `removed`
        // and then waits for `op` before the function goes away.
        unsafe {
            self.pdev
                .doe_mailbox_unbound(pcidoe::VENDOR_PCI_SIG, pcidoe::FEATURE_CMA)
        }
        .ok_or(Failure::new("device removed", ENODEV))
    }

    /// Runs `f` on the device's secure session (for the session's users: IDE_KM, TDISP), with
    /// protocol runs serialised (`op`). Fails with `ENOTCONN` when there is no usable session and
    /// `ENODEV` once the device is being removed. A failure of `f` that ends the session (any
    /// [`Session`] failure does) is shown in `session` as "error: <reason>" and the session is
    /// dropped.
    pub(crate) fn with_session<R>(
        &self,
        f: impl FnOnce(&mut Session, &dyn Transport) -> Result<R, Failure>,
    ) -> Result<R, Failure> {
        let op = self.op.lock();
        let mb = self.mailbox(&op)?;
        let mut guard = self.session.lock();
        let current = self.generation.load(Ordering::Acquire);
        // A reset or resume since the session was established (a new generation) ended it.
        let s = Option::as_mut(&mut *guard)
            .filter(|(s, g)| s.is_open() && *g == current)
            .map(|(s, _)| s)
            .ok_or(Failure::new("no session (it ended or failed)", ENOTCONN))?;
        let r = f(s, &DoeTransport::new(&mb, &self.removed));
        let info = s.is_open().then(|| s.info());
        if info.is_none() {
            *guard = None;
        }
        drop(guard);
        let status = match (info, &r) {
            (Some(i), _) => SessionStatus::Established(i),
            // Ended on request (END_SESSION).
            (None, Ok(_)) => SessionStatus::None,
            // Teardown (removal, rmmod) stopped a user's exchange (e.g. a heartbeat): the
            // session goes with the device's state, the device did not fail it.
            (None, Err(e)) if e.err == ENODEV && self.removed.load(Ordering::Acquire) => {
                SessionStatus::None
            }
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

    /// Runs the probe exchanges (DOE discovery, SPDM GET_VERSION, then the authentication) and
    /// stores the outcome. Fails only if discovery or GET_VERSION fail: the authentication's
    /// outcome is stored in `auth_status`.
    pub(crate) fn probe(self: &Arc<Self>) -> Result {
        self.probe_with(true, Trigger::Work)
    }

    /// A probe root asked for (`coco/rescan`).
    pub(crate) fn rescan(self: &Arc<Self>) -> Result {
        if self.guest_mode {
            return self.guest_retry();
        }
        self.probe_with(true, Trigger::Root)
    }

    /// [`CocoDev::probe`], with DOE discovery only if `discover` or if the last probe failed.
    ///
    /// While a TSM owns the mailbox nothing is sent: a request of root fails with `EBUSY`, a
    /// queued probe (reset, resume) does nothing (the hand-back authenticates). While the secure
    /// session has users, a request of root fails with `EBUSY` rather than end it.
    fn probe_with(self: &Arc<Self>, discover: bool, trigger: Trigger) -> Result {
        let mut op = self.op.lock();
        if self.removed.load(Ordering::Acquire) {
            return Err(ENODEV);
        }
        if let Owner::Tsm(tsm) = self.state.lock().owner {
            if trigger == Trigger::Root {
                dev_warn!(
                    self.dev(),
                    "coco: mailbox owned by {}: nothing sent (EBUSY)\n",
                    tsm
                );
                return Err(EBUSY);
            }
            return Ok(());
        }
        if trigger == Trigger::Root && self.session_in_use() {
            dev_warn!(
                self.dev(),
                "coco: the secure session is in use: not ending it (EBUSY)\n"
            );
            return Err(EBUSY);
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
            self.publish(&mut op);
            if after != before {
                self.notify(after);
            }
        }
        ret
    }

    /// Makes `certificates/` and `measurements/` show the files of what `state` holds now.
    /// Called under `op` (`shown`, its guard) while the device is live.
    fn publish(&self, shown: &mut IndexSet) {
        if !self.sysfs_added.load(Ordering::Acquire) {
            return;
        }
        let mask = self.state.lock().auth.shown_slots();
        if self.shown_slots.swap(mask, Ordering::AcqRel) != mask {
            // SAFETY: The device is live (`pdev` holds a reference). Teardown removes the
            // groups before it takes `op`: an update racing with it finds no group and fails
            // without touching anything.
            unsafe { crate::coco_sysfs_update_certificates(self.raw.0.as_ptr()) };
        }
        let mut want = IndexSet::new();
        if let Some(m) = &self.state.lock().meas.reading {
            for b in m.blocks.iter() {
                want.insert(b.index);
            }
        }
        self.show_blocks(shown, want);
    }

    /// Makes `measurements/` show the files of exactly the blocks in `want` (`shown`, the
    /// guard of `op`, holds those it shows now). Called with the device live and its groups
    /// added.
    fn show_blocks(&self, shown: &mut IndexSet, want: IndexSet) {
        for index in meas::SPDM_MEAS_INDEX_MIN..=meas::SPDM_MEAS_INDEX_MAX {
            let (has, wants) = (shown.contains(index), want.contains(index));
            if has == wants {
                continue;
            }
            // SAFETY: The device is live and its groups exist (`removed` is clear under `op`,
            // and teardown waits for `op` before removing them).
            let rc = unsafe {
                crate::coco_sysfs_block_files(self.raw.0.as_ptr(), c_uint::from(index), wants)
            };
            if !wants {
                shown.remove(index);
            } else if rc == 0 {
                shown.insert(index);
            }
        }
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
        self.send_change(
            o.status.env(
                c"COCO_STATUS=ok",
                c"COCO_STATUS=error",
                c"COCO_STATUS=pending",
            ),
            o.auth
                .env(c"COCO_AUTH=ok", c"COCO_AUTH=error", c"COCO_AUTH=pending"),
        );
    }

    /// Sends a `KOBJ_CHANGE` uevent for a change of the IDE link (`COCO_IDE=...`) or of the TDI
    /// (`COCO_TDISP=...`): `env`.
    pub(super) fn notify_change(&self, env: &'static CStr) {
        if self.removed.load(Ordering::Acquire) {
            return;
        }
        self.send_change(env.as_char_ptr().cast_mut(), core::ptr::null_mut());
    }

    /// Sends a `KOBJ_CHANGE` uevent with the variables `a` and `b` (NUL-terminated strings, `b`
    /// may be null). Called while the device is live: by the probe, which teardown waits for,
    /// or by sysfs writers and work items that checked `removed` (teardown removes the files and
    /// flushes the work before the device goes).
    fn send_change(&self, a: *mut kernel::ffi::c_char, b: *mut kernel::ffi::c_char) {
        let mut envp: [*mut kernel::ffi::c_char; 3] = [a, b, core::ptr::null_mut()];
        // SAFETY: The device is live (see above); `envp` is a NULL-terminated array of
        // NUL-terminated strings that the callee only reads during the call.
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
        self.end_session(false, None, None);

        // A re-authentication of a device that answered before skips DOE discovery.
        let discover_again = discover_again || !matches!(self.state.lock().status, Status::Ready);
        let t = DoeTransport::new(&mb, &self.removed);
        let result = if discover_again {
            channel::discover(&t).and_then(|f| Ok((Some(f), channel::get_version(&t)?)))
        } else {
            channel::get_version(&t).map(|v| (None, v))
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
                    owner: state.owner,
                    evidence: None,
                };
                let nonce = state.meas.pending_nonce.take();
                // Copy the versions: the state lock is not held during the exchanges.
                let mut versions = KVec::new();
                let copied = versions.extend_from_slice(&state.versions, GFP_KERNEL);
                drop(state);
                let preferred = self.preferred_slot.load(Ordering::Relaxed);
                let policy = connect::Policy {
                    auth: spdm_auth::Policy {
                        preferred_slot: (preferred != SLOT_AUTO).then_some(preferred),
                        strict_identity: crate::strict_identity(),
                        ids: self.function_ids(),
                        keyring: crate::keyring(),
                        measure: true,
                        session: self.secured_cma,
                    },
                    measure: Some(nonce),
                };
                let (result, outcome) = match copied {
                    Ok(()) => connect::connect(&t, &vca, &versions, cache, &policy),
                    Err(_) => (
                        Err(Failure::new("out of memory", ENOMEM)),
                        ConnectOutcome::default(),
                    ),
                };
                self.store(result, outcome, generation);
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
                let owner = state.owner;
                *state = State::empty(Status::Failed(f), meas);
                state.owner = owner;
                state.auth_status = AuthStatus::Failed(Failure::new(
                    "not attempted: discovery or GET_VERSION failed",
                    f.err,
                ));
                Err(f.err)
            }
        }
    }

    /// Logs and stores the outcome of a connection (authentication, measurements, session).
    fn store(&self, result: Result<(), Failure>, outcome: ConnectOutcome, generation: u64) {
        let ConnectOutcome {
            auth: info,
            meas,
            meas_stats,
            session,
            session_unavailable,
            session_stats,
        } = outcome;
        // A run cut short by removal or module unload is not a device failure, and the results
        // of a run that overlapped a reset or resume are stale: the queued probe replaces them.
        let removed = self.removed.load(Ordering::Acquire)
            || self.generation.load(Ordering::Acquire) != generation;
        match (&result, info.negotiated) {
            (Err(_), _) if removed => {}
            (Ok(()), Some((v, asym, hash))) => dev_info!(
                self.dev(),
                "coco: authenticated: SPDM {}.{}, {} {}, slot {}, trusted root; {}\n",
                v.major(),
                v.minor(),
                spdm_auth::asym_short_name(asym),
                spdm_auth::hash_short_name(hash),
                info.slot.unwrap_or(0),
                AuthCounters(&info)
            ),
            (Ok(()), None) => {}
            // No trust anchor for the chain: a policy outcome (root may not have loaded it
            // yet), not a device fault.
            (Err(f), _) if f.err == ENOKEY => dev_warn!(
                self.dev(),
                "coco: not authenticated: {} ({:?}); {}\n",
                f,
                f.err,
                AuthCounters(&info)
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
                    meas_stats.tx_bytes,
                    meas_stats.rx_bytes,
                    meas_stats.elapsed_us,
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
        let session = match session {
            None => match session_unavailable.filter(|_| result.is_ok()) {
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
                        spdm_session::handshake_name(i.handshake_in_clear),
                        i.heartbeat_period,
                        session_stats.exchanges,
                        session_stats.elapsed_us
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
                            session_stats.exchanges
                        ),
                        None => dev_err!(
                            self.dev(),
                            "coco: session failed: {} ({:?}); {} SPDM exchanges\n",
                            f.reason,
                            f.err,
                            session_stats.exchanges
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

    /// Whether the live secure session has users (with `op` held).
    fn session_in_use(&self) -> bool {
        if self.session_users.load(Ordering::Acquire) == 0 {
            return false;
        }
        let current = self.generation.load(Ordering::Acquire);
        matches!(&*self.session.lock(), Some((s, g)) if s.is_open() && *g == current)
    }

    /// Takes a hold on the secure session for a user (an IDE stream, a TDI): until it is
    /// dropped, re-authentication, `measurements/refresh` and `rescan` are refused rather than
    /// end the session. Fails with `ENOTCONN` without an established session. A reset or resume
    /// ends the session all the same (the device lost it); the holder learns it at its next
    /// request.
    pub(crate) fn hold_session(self: &Arc<Self>) -> Result<SessionHold> {
        let _op = self.op.lock();
        if self.removed.load(Ordering::Acquire) {
            return Err(ENODEV);
        }
        if !matches!(self.state.lock().session, SessionStatus::Established(_)) {
            return Err(ENOTCONN);
        }
        self.session_users.fetch_add(1, Ordering::AcqRel);
        Ok(SessionHold { dev: self.clone() })
    }

    /// Sets (or clears) the TDI operations of the firmware TSM that owns the mailbox.
    pub(crate) fn set_fw_tdi(&self, ops: Option<FwTdiOps>) {
        *self.fw_tdi.lock() = ops;
    }

    /// Hands the DOE mailbox to the TSM `tsm`, which runs SPDM itself: coco.ko ends its own
    /// session (END_SESSION) and sends nothing more of its own (no GET_VERSION on probe, rescan,
    /// reset or resume, no heartbeat, no re-authentication) until the returned [`Relay`] is
    /// dropped, when coco.ko takes the mailbox back and authenticates the device again. Fails
    /// with `EBUSY` if another TSM owns the mailbox or coco.ko's session has users.
    pub(crate) fn claim_mailbox(self: &Arc<Self>, tsm: TsmName) -> Result<Relay> {
        let _op = self.op.lock();
        if self.removed.load(Ordering::Acquire) {
            return Err(ENODEV);
        }
        if self.state.lock().owner != Owner::Coco || self.session_in_use() {
            return Err(EBUSY);
        }
        self.end_session(false, None, None);
        self.state.lock().owner = Owner::Tsm(tsm);
        dev_info!(self.dev(), "coco: DOE mailbox handed to {}\n", tsm);
        Ok(Relay { dev: self.clone() })
    }

    /// Relays one data object of a TSM that owns the mailbox (see [`Relay::exchange`]).
    fn relay(&self, object_type: u8, req: &[u8], rsp: &mut [u8]) -> Result<usize, Failure> {
        if object_type != pcidoe::FEATURE_CMA && object_type != pcidoe::FEATURE_SECURED_CMA {
            return Err(Failure::new(
                "only CMA/SPDM and secured CMA/SPDM objects are relayed",
                EINVAL,
            ));
        }
        // One exchange at a time, like coco.ko's own.
        let op = self.op.lock();
        let mb = self.mailbox(&op)?;
        DoeTransport::new(&mb, &self.removed)
            .exchange(object_type, req, rsp)
            .map_err(channel::doe_failure)
    }

    /// Takes the mailbox back from its TSM and authenticates the device again.
    fn release_mailbox(self: &Arc<Self>) {
        *self.fw_tdi.lock() = None;
        // A TDI the firmware bound went with it (the TSM stops it before it lets go).
        self.tdi_firmware_gone();
        {
            let mut op = self.op.lock();
            let mut state = self.state.lock();
            if let Owner::Tsm(tsm) = state.owner {
                dev_info!(self.dev(), "coco: DOE mailbox back from {}\n", tsm);
            }
            state.owner = Owner::Coco;
            // The TSM's evidence goes with it: coco.ko reads its own.
            let shown = state.evidence.take().is_some();
            if shown {
                state.auth_status = AuthStatus::Pending;
                state.auth = AuthInfo::default();
                state.meas = MeasState::new();
            }
            drop(state);
            if shown && !self.removed.load(Ordering::Acquire) {
                self.publish(&mut op);
            }
        }
        self.start_probe();
    }

    /// Creates the device's debugfs directory (called once, after the sysfs groups).
    pub(crate) fn create_debugfs(&self) {
        let mut debug = self.debug.lock();
        if self.removed.load(Ordering::Acquire) || debug.dir.is_some() {
            return;
        }
        // SAFETY: The device is live; the directory is removed in `teardown()`.
        let dir = unsafe { crate::coco_debugfs_add(self.raw.0.as_ptr()) };
        debug.dir = NonNull::new(dir).map(DebugDir);
    }

    /// debugfs `relay`: "claim" (`true`) hands the mailbox to a test TSM, "release" takes it
    /// back.
    pub(crate) fn debug_claim(self: &Arc<Self>, claim: bool) -> Result {
        if claim {
            if self.debug.lock().relay.is_some() {
                return Err(EBUSY);
            }
            let relay = self.claim_mailbox(TsmName::new(b"debugfs"))?;
            self.debug.lock().relay = Some(relay);
        } else {
            // Dropped outside the lock: the hand-back takes `op`.
            let relay = self.debug.lock().relay.take().ok_or(EINVAL)?;
            drop(relay);
        }
        Ok(())
    }

    /// debugfs `relay`: relays one data object through the test TSM's relay.
    pub(crate) fn debug_relay(&self, object_type: u8, req: &[u8]) -> Result {
        let mut rsp = KVec::from_elem(
            0u8,
            channel::REQ_DATA_TRANSFER_SIZE as usize + 8,
            GFP_KERNEL,
        )?;
        let r = {
            let debug = self.debug.lock();
            let relay = debug.relay.as_ref().ok_or(EPERM)?;
            relay.exchange(object_type, req, &mut rsp)
        };
        let n = r.map_err(|f| {
            dev_warn!(self.dev(), "coco: relayed exchange failed: {}\n", f);
            f.err
        })?;
        rsp.truncate(n);
        self.debug.lock().last = rsp;
        Ok(())
    }

    /// debugfs `relay` (read): copies the last relayed response into `out`.
    pub(crate) fn debug_relay_last(&self, out: &mut [u8]) -> usize {
        let debug = self.debug.lock();
        let n = debug.last.len().min(out.len());
        if let (Some(d), Some(s)) = (out.get_mut(..n), debug.last.get(..n)) {
            d.copy_from_slice(s);
        }
        n
    }

    /// debugfs `session_hold`: takes (`true`) or drops a hold on the secure session.
    pub(crate) fn debug_session_hold(self: &Arc<Self>, hold: bool) -> Result {
        if hold {
            if self.debug.lock().hold.is_some() {
                return Ok(());
            }
            let h = self.hold_session()?;
            self.debug.lock().hold = Some(h);
        } else {
            let h = self.debug.lock().hold.take();
            drop(h);
        }
        Ok(())
    }

    /// debugfs `session_hold` (read): whether the test hook holds the session.
    pub(crate) fn debug_session_held(&self) -> bool {
        self.debug.lock().hold.is_some()
    }

    /// Sets the nonce of the next signed GET_MEASUREMENTS.
    pub(crate) fn set_meas_nonce(&self, nonce: [u8; spdm::SPDM_NONCE_SIZE]) {
        self.state.lock().meas.pending_nonce = Some(nonce);
    }

    /// Reads the measurements again (with a re-authentication on a new connection); returns
    /// the reading's errno if it failed.
    pub(crate) fn refresh_measurements(self: &Arc<Self>) -> Result {
        self.probe_with(false, Trigger::Root)?;
        match self.state.lock().meas.status {
            MeasStatus::Ok => Ok(()),
            MeasStatus::Failed(f) => Err(f.err),
            MeasStatus::Pending => Err(EAGAIN),
        }
    }
}
