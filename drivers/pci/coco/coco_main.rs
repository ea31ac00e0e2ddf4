// SPDX-License-Identifier: GPL-2.0

//! coco: PCIe device security core.
//!
//! Keeps per-device state for every PCI function whose DOE mailbox supports CMA/SPDM (PCI-SIG
//! vendor 1, type 1), probes it asynchronously (DOE discovery, SPDM GET_VERSION, then SPDM
//! authentication: certificate chain and CHALLENGE, see `requester/auth.rs`) and follows
//! hotplug through a PCI bus notifier. A reset or resume (PCI restore notifier) withdraws the
//! results and authenticates the device again. Trust anchors live in the `.coco` keyring
//! (`trust.rs`). Results are exposed in sysfs: `authenticated` and `certificates/` in the device's
//! directory, the details under `coco/` (Documentation/ABI/testing/sysfs-bus-pci-coco).
//!
//! Protocol encoding and parsing live in the project's `no_std` crates under `rust/`, compiled
//! into this module unchanged.

use core::{
    ptr::{null_mut, NonNull},
    sync::atomic::{AtomicBool, AtomicPtr, Ordering},
};
use kernel::{
    bindings, faux,
    ffi::{c_int, c_uint, c_ulong, c_void},
    pci::{self, tsm},
    prelude::*,
    sync::{new_mutex, Arc, Mutex},
    types::Opaque,
    workqueue::{OwnedQueue, Queue},
};

// Layers, each using only those below it: channel (transport, error type) → requester steps
// (auth, meas, session, idekm) → connect and the native IDE backend (native/) → device
// (per-device state; device/sysfs.rs formats it) → this module (registry, notifiers, sysfs
// callbacks).
mod backend;
mod channel;
mod connect;
mod device;
mod guest;
mod native;
mod requester;
// Kernel crypto glue for SPDM authentication; some accessors are only used by the KUnit tests.
#[allow(dead_code)]
mod crypto;
// Crypto for SPDM secure sessions (HMAC/HKDF, ECDH, AEAD), checked by its KUnit suite.
#[allow(dead_code)]
mod session_crypto;
mod trust;

use device::CocoDev;

// The protocol crates are shared with the userspace tools: their parsers are exercised by cargo
// tests and proptest on the host. Items used by later features are not dead code there.
#[allow(dead_code, unreachable_pub)]
#[path = "../../../rust/spdm/src/auth.rs"]
mod auth;
#[allow(dead_code, unreachable_pub)]
#[path = "../../../rust/spdm/src/cert.rs"]
mod cert;
#[allow(dead_code, unreachable_pub)]
#[path = "../../../rust/spdm/src/cma.rs"]
mod cma;
#[allow(dead_code, unreachable_pub)]
#[path = "../../../rust/doe/src/doe.rs"]
mod doe;
#[allow(dead_code, unreachable_pub)]
#[path = "../../../rust/idekm/src/idekm.rs"]
mod idekm;
#[allow(dead_code, unreachable_pub)]
#[path = "../../../rust/spdm/src/meas.rs"]
mod meas;
#[allow(dead_code, unreachable_pub)]
#[path = "../../../rust/spdm/src/session.rs"]
mod session;
#[allow(dead_code, unreachable_pub)]
#[path = "../../../rust/spdm/src/spdm.rs"]
mod spdm;
#[allow(dead_code, unreachable_pub)]
#[path = "../../../rust/tdisp/src/tdisp.rs"]
mod tdisp;
#[allow(dead_code, unreachable_pub)]
#[path = "../../../rust/spdm/src/vendor.rs"]
mod vendor;

#[allow(dead_code, unreachable_pub)]
#[path = "../../../rust/sevtio/src/guest.rs"]
mod sevtio_guest;

module! {
    type: Coco,
    name: "coco",
    authors: ["The coco developers"],
    description: "PCIe device security: CMA/SPDM over DOE",
    license: "GPL",
    params: {
        strict_identity: bool {
            default: false,
            description: "Fail authentication when the leaf certificate's CMA identity is missing or does not match the function's IDs (default: report it only)",
        },
        session_rekey_messages: u32 {
            default: 1000000,
            description: "Secured messages sent with one session key before coco updates both keys (KEY_UPDATE UpdateAllKeys); 0: only when asked (default: 1000000)",
        },
        ide_policy: u32 {
            default: 0,
            description: "What a failed native IDE connect or reconnect after a reset does: 0 warn (log it), 1 block (no driver may bind to the function until it is connected), 2 panic (default: 0)",
        },
        guest_accept: u32 {
            default: 0,
            description: "In a confidential guest (pci=tee_accept): 0 auto (accept a TDI whose evidence verifies), 1 user (hold it until userspace writes accept to tdisp) (default: 0)",
        },
        ide_refresh_secs: u32 {
            default: 0,
            description: "Refresh a connected IDE stream's keys every this many seconds (0: only when root writes \"refresh\" to coco/ide; default: 0)",
        },
    },
}

/// The `strict_identity` module parameter.
pub(crate) fn strict_identity() -> bool {
    module_parameters::strict_identity.value()
}

/// The `session_rekey_messages` module parameter.
pub(crate) fn session_rekey_messages() -> u32 {
    module_parameters::session_rekey_messages.value()
}

/// What a failed IDE connect does (the `ide_policy` module parameter).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdePolicy {
    /// Log it.
    Warn,
    /// No driver may bind to the function until it is connected.
    Block,
    /// Panic.
    Panic,
}

/// The `ide_policy` module parameter (an unknown value acts as `block`: the safe side).
pub(crate) fn ide_policy() -> IdePolicy {
    match module_parameters::ide_policy.value() {
        0 => IdePolicy::Warn,
        2 => IdePolicy::Panic,
        _ => IdePolicy::Block,
    }
}

/// The `ide_refresh_secs` module parameter.
pub(crate) fn ide_refresh_secs() -> u32 {
    module_parameters::ide_refresh_secs.value()
}

/// The `guest_accept` module parameter: accept a verified TDI without asking userspace.
pub(crate) fn guest_accept_auto() -> bool {
    module_parameters::guest_accept.value() == 0
}

/// Whether this kernel is a confidential guest whose TEE-I/O functions wait for acceptance
/// (`pci=tee_accept`).
pub(crate) fn guest_mode() -> bool {
    // SAFETY: No requirement; reads a boot parameter.
    unsafe { coco_tee_accept_required() }
}

/// The trust anchors, while the module is loaded.
pub(crate) fn keyring() -> Option<&'static trust::Keyring> {
    registry().and_then(|r| r.keyring.as_ref())
}

// C part of the module (coco_sysfs.c, prototypes in coco.h). `struct device` is only passed by
// pointer; rustc's FFI-safety lint trips over a zero-sized field deep inside it, as it does for the
// generated bindings.
#[allow(improper_ctypes)]
extern "C" {
    fn coco_sysfs_add(dev: *mut bindings::device) -> c_int;
    fn coco_sysfs_remove(dev: *mut bindings::device);
    fn coco_sysfs_update_certificates(dev: *mut bindings::device);
    fn coco_sysfs_init() -> c_int;
    fn coco_sysfs_exit();
    fn coco_sysfs_block_files(dev: *mut bindings::device, index: c_uint, add: bool) -> c_int;
    fn coco_debugfs_init();
    fn coco_tsm_init();
    fn coco_tsm_exit();
    pub(crate) fn coco_block_drivers(dev: *mut bindings::device, block: bool) -> c_int;
    pub(crate) fn coco_ide_panic(dev: *mut bindings::device);
    pub(crate) fn coco_tdi_gate(dev: *mut bindings::device, op: c_uint) -> c_int;
    fn coco_debugfs_exit();
    fn coco_tee_accept_required() -> bool;
    fn coco_guest_chan_register() -> c_int;
    fn coco_guest_chan_unregister();
    fn coco_debugfs_add(dev: *mut bindings::device) -> *mut bindings::dentry;
    fn coco_debugfs_remove(dir: *mut bindings::dentry);
}

/// The module instance, reachable from sysfs callbacks while the module is loaded.
static REGISTRY: AtomicPtr<Coco> = AtomicPtr::new(null_mut());

/// The module: the registry of tracked devices and the bus notifier that keeps it current.
#[pin_data(PinnedDrop)]
pub(crate) struct Coco {
    #[pin]
    nb: Opaque<bindings::notifier_block>,
    /// PCI restore notifier: resets and resumes.
    #[pin]
    restore_nb: Opaque<bindings::notifier_block>,
    restore_registered: AtomicBool,
    /// The `.coco` keyring; `None` if it could not be created (nothing is then trusted).
    keyring: Option<trust::Keyring>,
    /// Tracked devices. Never held across sysfs group removal or a protocol run: sysfs callbacks
    /// take it to look a device up.
    #[pin]
    devices: Mutex<KVec<Arc<CocoDev>>>,
    notifier_registered: AtomicBool,
    /// The guest channel's PCI driver is registered (confidential guest only).
    guest_chan_registered: AtomicBool,
    /// The module's work queue: probes and heartbeat checks run only here, so once it is
    /// destroyed (drained) at unload none of them can outlive the module. Freezable: no
    /// exchange reaches a device while the system suspends.
    wq: OwnedQueue,
    /// The native backend registered as the kernel's link TSM, once the devices are tracked;
    /// unregistered first on unload.
    #[pin]
    tsm: Mutex<Option<TsmRegistration>>,
}

/// The native backend as the kernel's link TSM: `/sys/class/tsm/tsmN` under the faux device
/// "coco". Fields drop in order: the TSM (which disconnects what it connected) before its
/// parent.
struct TsmRegistration {
    _tsm: tsm::Registration<NativeTsm>,
    _parent: faux::Registration,
}

impl TsmRegistration {
    /// Registers the native TSM; a failure leaves coco.ko working without it (logged).
    fn new() -> Option<Self> {
        let parent = faux::Registration::new(c"coco", None)
            .inspect_err(|e| {
                pr_warn!(
                    "cannot create the faux device of the native TSM ({:?}); tsm/connect will not offer it\n",
                    e
                )
            })
            .ok()?;
        let tsm = tsm::Registration::<NativeTsm>::new(parent.as_ref().as_ref())
            .inspect_err(|e| {
                pr_warn!(
                    "cannot register the native TSM ({:?}); tsm/connect will not offer it\n",
                    e
                )
            })
            .ok()?;
        pr_info!("native IDE backend registered as tsm{}\n", tsm.id());
        Some(Self {
            _tsm: tsm,
            _parent: parent,
        })
    }
}

/// coco.ko's native backend behind the PCI/TSM core's link operations: `tsm/connect` and
/// `tsm/disconnect` connect the function's link as `coco/ide` does, `pci_tsm_bind()` and
/// `pci_tsm_unbind()` lock and stop its TDI as `tdisp` does (the VMM's driver stays bound).
struct NativeTsm;

/// Runs `f` on the tracked device of `pdev`.
fn with_pci(pdev: &pci::Device, f: impl FnOnce(&Arc<CocoDev>) -> Result) -> Result {
    let dev: &kernel::device::Device = pdev.as_ref();
    // `Device` wraps `struct device` transparently; the registry compares the address only.
    let raw = core::ptr::from_ref(dev)
        .cast_mut()
        .cast::<bindings::device>();
    let cd = registry().and_then(|r| r.find(raw)).ok_or(ENODEV)?;
    f(&cd)
}

impl tsm::LinkTsm for NativeTsm {
    fn connect(pdev: &pci::Device) -> Result {
        with_pci(pdev, |cd| cd.ide_connect_as(device::IdeOwner::Tsm))
    }

    fn disconnect(pdev: &pci::Device) {
        let _ = with_pci(pdev, |cd| cd.ide_disconnect_as(device::IdeOwner::Tsm));
    }

    fn bind(pdev: &pci::Device, _tdi_id: u32) -> Result {
        with_pci(pdev, |cd| cd.tsm_tdi(true))
    }

    fn unbind(pdev: &pci::Device) {
        let _ = with_pci(pdev, |cd| cd.tsm_tdi(false));
    }

    /// `PCI_TSM_REQ_INFO`: the TDI's report with the certificates and measurements it rests on
    /// (see `CocoDev::tdi_info`). State changes come from the guest side (not yet).
    fn guest_req(
        pdev: &pci::Device,
        scope: tsm::ReqScope,
        _input: &tsm::ReqBuf,
        output: &mut tsm::ReqBuf,
    ) -> Result<usize> {
        if scope != tsm::ReqScope::Info {
            return Err(EOPNOTSUPP);
        }
        let mut info = KVec::new();
        with_pci(pdev, |cd| cd.tdi_info(&mut info))?;
        output.write(&info)
    }
}

// SAFETY: `nb` is only touched by the notifier chain, which serialises (un)registration and
// calls internally; everything else is behind `devices`' mutex or immutable after init.
unsafe impl Send for Coco {}
// SAFETY: See `Send`.
unsafe impl Sync for Coco {}

impl kernel::InPlaceModule for Coco {
    fn init(_module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            nb <- Opaque::new(bindings::notifier_block {
                notifier_call: Some(coco_bus_notify),
                next: null_mut(),
                priority: 0,
            }),
            restore_nb <- Opaque::new(bindings::notifier_block {
                notifier_call: Some(coco_restore_notify),
                next: null_mut(),
                priority: 0,
            }),
            restore_registered: AtomicBool::new(false),
            keyring: match trust::Keyring::new() {
                Ok(k) => {
                    pr_info!(
                        "trust anchors: keyring {} ({:08x})\n",
                        trust::KEYRING_NAME,
                        k.serial()
                    );
                    Some(k)
                }
                Err(e) => {
                    pr_err!("cannot create the {} keyring: {:?}; no device will be trusted\n", trust::KEYRING_NAME, e);
                    None
                }
            },
            devices <- new_mutex!(KVec::new()),
            notifier_registered: AtomicBool::new(false),
            guest_chan_registered: AtomicBool::new(false),
            wq: OwnedQueue::new(
                c"coco",
                bindings::wq_flags_WQ_UNBOUND | bindings::wq_flags_WQ_FREEZABLE,
                0,
            )?,
            tsm <- new_mutex!(None),
        })
        .pin_chain(|this| {
            // Only shared references from here on: once published in `REGISTRY` (and once the
            // notifiers are registered) other threads use the module through `&Coco` too.
            let this: &Self = &this;
            // SAFETY: No requirement; builds the measurement block attributes (freed in
            // `PinnedDrop`, after every device's groups are gone).
            let ret = unsafe { coco_sysfs_init() };
            if ret != 0 {
                return Err(Error::from_errno(ret));
            }
            // SAFETY: No requirement; creates the debugfs root (removed in `PinnedDrop`).
            unsafe { coco_debugfs_init() };
            REGISTRY.store(core::ptr::from_ref(this).cast_mut(), Ordering::Release);
            // SAFETY: `this.nb` is a valid notifier block that stays at this address until
            // `PinnedDrop` unregisters it; `pci_bus_type` is a static of the PCI core.
            let ret = unsafe {
                bindings::bus_register_notifier(&raw const bindings::pci_bus_type, this.nb.get())
            };
            if ret != 0 {
                pr_err!("cannot register the PCI bus notifier: {}\n", ret);
                return Err(Error::from_errno(ret));
            }
            this.notifier_registered.store(true, Ordering::Release);
            // SAFETY: As above, for the restore notifier block.
            let ret = unsafe { bindings::pci_register_restore_notifier(this.restore_nb.get()) };
            if ret != 0 {
                pr_warn!("cannot register the PCI restore notifier: {}; resets and resumes will not re-authenticate\n", ret);
            } else {
                this.restore_registered.store(true, Ordering::Release);
            }
            if guest_mode() {
                // The channel first: the held functions found by the scan below use it.
                // SAFETY: No requirement; unregistered in `PinnedDrop`.
                let ret = unsafe { coco_guest_chan_register() };
                if ret != 0 {
                    pr_err!("confidential guest: cannot register the guest channel's driver: {}\n", ret);
                } else {
                    this.guest_chan_registered.store(true, Ordering::Release);
                }
                pr_info!("confidential guest: TEE-I/O functions are held until verified and accepted\n");
            }
            this.scan();
            // SAFETY: No requirement; the callbacks find the devices through `REGISTRY` (set
            // above); `coco_tsm_exit()` in `PinnedDrop` undoes it before anything else.
            unsafe { coco_tsm_init() };
            // Likewise, the native TSM (unregistered first in `PinnedDrop`).
            *this.tsm.lock() = TsmRegistration::new();
            Ok(())
        })
    }
}

impl Coco {
    /// Adds every PCI function present now; later ones arrive through the notifier.
    fn scan(&self) {
        // SAFETY: Serialises the walk against hot-removal, so that each function found is live
        // (its DEL notification cannot run before we have added it).
        unsafe { bindings::pci_lock_rescan_remove() };
        let mut pdev: *mut bindings::pci_dev = null_mut();
        loop {
            // SAFETY: `pci_get_device()` drops the reference on `pdev` (or accepts NULL) and
            // returns the next function with a reference held, or NULL at the end.
            pdev = unsafe { bindings::pci_get_device(c_uint::MAX, c_uint::MAX, pdev) };
            let Some(p) = NonNull::new(pdev) else {
                break;
            };
            // SAFETY: `p` is a live function (rescan/remove lock held) with a reference held.
            unsafe { self.add(p) };
        }
        // SAFETY: Taken above.
        unsafe { bindings::pci_unlock_rescan_remove() };
    }

    /// Starts tracking `pdev` if it has a CMA/SPDM DOE mailbox and is not tracked yet.
    ///
    /// # Safety
    ///
    /// `pdev` must be a live PCI function whose `BUS_NOTIFY_DEL_DEVICE` notification has not been
    /// delivered.
    unsafe fn add(&self, pdev: NonNull<bindings::pci_dev>) {
        // SAFETY: `pdev` is valid by the safety requirements; `dev` is embedded in it.
        let raw = unsafe { &raw mut (*pdev.as_ptr()).dev };
        let mut devices = self.devices.lock();
        if devices.iter().any(|d| d.is(raw)) {
            return;
        }
        // SAFETY: `raw` is a valid `struct device` embedded in a live `struct pci_dev`.
        let cd = match unsafe { CocoDev::new(raw, guest_mode()) } {
            Ok(Some(cd)) => cd,
            Ok(None) => return,
            Err(e) => {
                // SAFETY: As above.
                let dev: &kernel::device::Device = unsafe { kernel::device::Device::from_raw(raw) };
                dev_err!(dev, "coco: cannot track device: {:?}\n", e);
                return;
            }
        };
        if let Err(e) = devices.push(cd.clone(), GFP_KERNEL) {
            dev_err!(cd.dev(), "coco: cannot track device: {:?}\n", e);
            return;
        }
        drop(devices);
        // SAFETY: `raw` is live; the group is removed in `CocoDev::teardown()`.
        let ret = unsafe { coco_sysfs_add(raw) };
        if ret != 0 {
            dev_warn!(cd.dev(), "coco: cannot create sysfs files: {}\n", ret);
        } else {
            cd.set_sysfs_added();
        }
        cd.create_debugfs();
        cd.start_probe();
    }

    /// Stops tracking the device whose `struct device` is `raw`, if it is tracked.
    fn remove(&self, raw: *mut bindings::device) {
        let cd = {
            let mut devices = self.devices.lock();
            let Some(pos) = devices.iter().position(|d| d.is(raw)) else {
                return;
            };
            devices.remove(pos)
        };
        if let Ok(cd) = cd {
            cd.teardown();
        }
    }

    /// Looks up the tracked device whose `struct device` is `raw`.
    pub(crate) fn find(&self, raw: *mut bindings::device) -> Option<Arc<CocoDev>> {
        self.devices.lock().iter().find(|d| d.is(raw)).cloned()
    }
}

#[pinned_drop]
impl PinnedDrop for Coco {
    fn drop(self: Pin<&mut Self>) {
        // First, while the devices are still tracked: the native TSM unbinds and disconnects
        // what it connected, and no PCI core callback (`authenticated`, `tsm/connect`) runs
        // after.
        let tsm = self.tsm.lock().take();
        drop(tsm);
        // SAFETY: No requirement; a no-op for what `coco_tsm_init()` did not register.
        unsafe { coco_tsm_exit() };
        if self.notifier_registered.load(Ordering::Acquire) {
            // SAFETY: Registered in `init` with the same bus and block.
            unsafe {
                bindings::bus_unregister_notifier(&raw const bindings::pci_bus_type, self.nb.get())
            };
        }
        if self.restore_registered.load(Ordering::Acquire) {
            // SAFETY: Registered in `init` with the same block.
            unsafe { bindings::pci_unregister_restore_notifier(self.restore_nb.get()) };
        }
        // No notification runs any more; tear the devices down outside the registry lock,
        // because removing their sysfs files waits for callbacks that take it.
        let devices = core::mem::take(&mut *self.devices.lock());
        for cd in devices.into_iter() {
            cd.teardown();
        }
        if self.guest_chan_registered.load(Ordering::Acquire) {
            // SAFETY: Registered in `init`; no device uses the channel any more.
            unsafe { coco_guest_chan_unregister() };
        }
        // SAFETY: Every device's directory was removed by its teardown.
        unsafe { coco_debugfs_exit() };
        // SAFETY: Every device's groups were removed by its teardown.
        unsafe { coco_sysfs_exit() };
        REGISTRY.store(null_mut(), Ordering::Release);
    }
}

/// The module's work queue; `None` once the module is being unloaded.
pub(crate) fn queue() -> Option<&'static Queue> {
    registry().map(|c| &*c.wq)
}

/// Returns the module instance.
pub(crate) fn registry() -> Option<&'static Coco> {
    let p = REGISTRY.load(Ordering::Acquire);
    // SAFETY: `REGISTRY` points to the pinned module instance from its initialisation until its
    // drop, which removes every sysfs file (draining their callbacks) and unregisters the notifier
    // before clearing it.
    unsafe { p.as_ref() }
}

/// PCI bus notifier: follows functions as they are added and removed.
///
/// # Safety
///
/// Called by the driver core with `data` pointing to the `struct device` concerned.
unsafe extern "C" fn coco_bus_notify(
    _nb: *mut bindings::notifier_block,
    action: c_ulong,
    data: *mut c_void,
) -> c_int {
    let Some(coco) = registry() else {
        return bindings::NOTIFY_DONE as c_int;
    };
    let raw = data.cast::<bindings::device>();
    match u32::try_from(action) {
        Ok(bindings::bus_notifier_event_BUS_NOTIFY_ADD_DEVICE) => {
            // SAFETY: This is the PCI bus, so `raw` is embedded in a `struct pci_dev`, which is
            // being added and cannot be deleted before this notification returns.
            let pdev = unsafe { kernel::container_of!(raw, bindings::pci_dev, dev) };
            if let Some(pdev) = NonNull::new(pdev) {
                // SAFETY: See above.
                unsafe { coco.add(pdev) };
            }
        }
        Ok(bindings::bus_notifier_event_BUS_NOTIFY_DEL_DEVICE) => coco.remove(raw),
        _ => {}
    }
    bindings::NOTIFY_DONE as c_int
}

/// PCI restore notifier: a device was reset or resumed; its results are withdrawn and it is
/// authenticated again.
///
/// # Safety
///
/// Called by the PCI core with `data` pointing to the `struct pci_dev` concerned.
unsafe extern "C" fn coco_restore_notify(
    _nb: *mut bindings::notifier_block,
    action: c_ulong,
    data: *mut c_void,
) -> c_int {
    let Some(coco) = registry() else {
        return bindings::NOTIFY_DONE as c_int;
    };
    let pdev = data.cast::<bindings::pci_dev>();
    if pdev.is_null() {
        return bindings::NOTIFY_DONE as c_int;
    }
    // SAFETY: `pdev` is a live PCI function (the PCI core is restoring it); `dev` is embedded.
    let raw = unsafe { &raw mut (*pdev).dev };
    if let Some(cd) = coco.find(raw) {
        let why = if u32::try_from(action) == Ok(bindings::pci_restore_event_PCI_RESTORE_RESUME) {
            "device resumed"
        } else {
            "device reset"
        };
        cd.invalidate(why);
    }
    bindings::NOTIFY_DONE as c_int
}

/// sysfs read of one of the `coco/` attributes (see `enum coco_attr` in coco.h).
///
/// # Safety
///
/// `dev` is the device the attribute belongs to and `buf` is valid for writes of `len` bytes.
#[no_mangle]
unsafe extern "C" fn coco_rs_attr_show(
    dev: *mut bindings::device,
    attr: c_uint,
    buf: *mut u8,
    len: usize,
) -> isize {
    // SAFETY: `buf` is valid for `len` bytes by the safety requirements (sysfs passes a page).
    unsafe { show_with(dev, buf, len, |cd, out| cd.show(attr, out)) }
}

/// sysfs write to `coco/rescan`: re-runs the probe exchanges (and the authentication)
/// synchronously.
///
/// # Safety
///
/// `dev` is the device the attribute belongs to.
#[no_mangle]
unsafe extern "C" fn coco_rs_rescan(dev: *mut bindings::device) -> c_int {
    store_with(dev, |cd| cd.rescan())
}

/// sysfs read of the binary attribute `coco/certificate_chain`: copies at most `count` bytes
/// from `offset` into `buf` and returns the count (0 at the end).
///
/// # Safety
///
/// `dev` is the device the attribute belongs to and `buf` is valid for writes of `count` bytes.
#[no_mangle]
unsafe extern "C" fn coco_rs_cert_chain_read(
    dev: *mut bindings::device,
    buf: *mut u8,
    offset: i64,
    count: usize,
) -> isize {
    // SAFETY: `buf` is valid for `count` bytes by the safety requirements.
    unsafe {
        read_with(dev, buf, offset, count, |cd, off, out| {
            Ok(cd.read_cert_chain(off, out))
        })
    }
}

/// The PCI core's `authenticated` (coco_tsm.c): whether coco.ko authenticated the device.
///
/// # Safety
///
/// `dev` is a PCI function's device.
#[no_mangle]
unsafe extern "C" fn coco_rs_authenticated(dev: *mut bindings::device) -> bool {
    registry()
        .and_then(|r| r.find(dev))
        .is_some_and(|cd| cd.authenticated())
}

/// sysfs write to `authenticated`: authenticates the device again, synchronously.
///
/// # Safety
///
/// `dev` is the device the attribute belongs to.
#[no_mangle]
unsafe extern "C" fn coco_rs_authenticate(dev: *mut bindings::device) -> c_int {
    store_with(dev, |cd| cd.reauthenticate())
}

/// sysfs write to `coco/preferred_slot` (`slot` < 0: automatic).
///
/// # Safety
///
/// `dev` is the device the attribute belongs to.
#[no_mangle]
unsafe extern "C" fn coco_rs_set_preferred_slot(dev: *mut bindings::device, slot: c_int) -> c_int {
    // Negative: automatic.
    let slot = match u8::try_from(slot) {
        Ok(s) => Some(s),
        Err(_) if slot < 0 => None,
        Err(_) => return EINVAL.to_errno(),
    };
    store_with(dev, |cd| cd.set_preferred_slot(slot))
}

/// sysfs write to `coco/session`: one request inside the secure session (`op` is a
/// `enum coco_session_op`).
///
/// # Safety
///
/// `dev` is the device the attribute belongs to.
#[no_mangle]
unsafe extern "C" fn coco_rs_session_op(dev: *mut bindings::device, op: c_uint) -> c_int {
    let Some(op) = device::SessionOp::from_raw(op) else {
        return EINVAL.to_errno();
    };
    store_with(dev, |cd| cd.session_op(op))
}

/// sysfs write of `coco/ide`: `op` 0 disconnects the native IDE stream, 1 connects it, 2
/// refreshes its keys (`enum coco_ide_op`).
///
/// # Safety
///
/// `dev` is the device the attribute belongs to.
#[no_mangle]
unsafe extern "C" fn coco_rs_ide_op(dev: *mut bindings::device, op: c_uint) -> c_int {
    store_with(dev, |cd| match op {
        0 => cd.ide_disconnect_as(device::IdeOwner::Sysfs),
        1 => cd.ide_connect_as(device::IdeOwner::Sysfs),
        2 => cd.ide_refresh_keys(),
        _ => Err(EINVAL),
    })
}

/// sysfs write of `tdisp`: `op` is an `enum coco_tdisp_op` (bind, start, unbind).
///
/// # Safety
///
/// `dev` is the device the attribute belongs to.
#[no_mangle]
unsafe extern "C" fn coco_rs_tdisp_op(dev: *mut bindings::device, op: c_uint) -> c_int {
    let Some(op) = device::TdispOp::from_raw(op) else {
        return EINVAL.to_errno();
    };
    store_with(dev, |cd| cd.tdisp_op(op))
}

/// sysfs read of `tdi/report`: copies at most `count` bytes of the interface report from
/// `offset` into `buf` and returns the count (0 at the end).
///
/// # Safety
///
/// `dev` is the device the attribute belongs to and `buf` is valid for writes of `count` bytes.
#[no_mangle]
unsafe extern "C" fn coco_rs_tdi_report_read(
    dev: *mut bindings::device,
    buf: *mut u8,
    offset: i64,
    count: usize,
) -> isize {
    // SAFETY: `buf` is valid for `count` bytes by the safety requirements.
    unsafe {
        read_with(dev, buf, offset, count, |cd, off, out| {
            Ok(cd.read_tdi_report(off, out))
        })
    }
}

/// Visibility of `certificates/slot<slot>`: whether the slot holds a chain.
///
/// # Safety
///
/// `dev` is the device the attribute group belongs to.
#[no_mangle]
unsafe extern "C" fn coco_rs_slot_populated(dev: *mut bindings::device, slot: c_uint) -> bool {
    let Some(cd) = registry().and_then(|r| r.find(dev)) else {
        return false;
    };
    usize::try_from(slot).is_ok_and(|s| cd.slot_populated(s))
}

/// sysfs read of `certificates/slot<slot>`: copies at most `count` bytes from `offset` into
/// `buf` and returns the count (0 at the end).
///
/// # Safety
///
/// `dev` is the device the attribute belongs to and `buf` is valid for writes of `count` bytes.
#[no_mangle]
unsafe extern "C" fn coco_rs_slot_read(
    dev: *mut bindings::device,
    slot: c_uint,
    buf: *mut u8,
    offset: i64,
    count: usize,
) -> isize {
    let Ok(slot) = usize::try_from(slot) else {
        return EINVAL.to_errno() as isize;
    };
    // SAFETY: `buf` is valid for `count` bytes by the safety requirements.
    unsafe {
        read_with(dev, buf, offset, count, |cd, off, out| {
            Ok(cd.read_slot(slot, off, out))
        })
    }
}

/// Looks `dev` up and formats into `buf` (`len` bytes) with `f`; returns the length or an errno.
///
/// # Safety
///
/// `buf` must be valid for writes of `len` bytes.
unsafe fn show_with(
    dev: *mut bindings::device,
    buf: *mut u8,
    len: usize,
    f: impl FnOnce(&CocoDev, &mut [u8]) -> Result<usize>,
) -> isize {
    let Some(cd) = registry().and_then(|r| r.find(dev)) else {
        return ENODEV.to_errno() as isize;
    };
    // SAFETY: `buf` is valid for `len` bytes by the safety requirements.
    let out = unsafe { core::slice::from_raw_parts_mut(buf, len) };
    match f(&cd, out) {
        Ok(n) => isize::try_from(n).unwrap_or(0),
        Err(e) => e.to_errno() as isize,
    }
}

/// Looks `dev` up and copies, with `f`, at most `count` bytes from `offset` of a binary
/// attribute into `buf`; returns the count (0 at the end) or an errno.
///
/// # Safety
///
/// A non-NULL `buf` must be valid for writes of `count` bytes.
unsafe fn read_with(
    dev: *mut bindings::device,
    buf: *mut u8,
    offset: i64,
    count: usize,
    f: impl FnOnce(&CocoDev, usize, &mut [u8]) -> Result<usize>,
) -> isize {
    let Ok(offset) = usize::try_from(offset) else {
        return EINVAL.to_errno() as isize;
    };
    if buf.is_null() || count == 0 {
        return 0;
    }
    // SAFETY: By the safety requirements.
    unsafe { show_with(dev, buf, count, |cd, out| f(cd, offset, out)) }
}

/// Looks `dev` up and runs the write handler `f`; returns 0 or an errno.
fn store_with(dev: *mut bindings::device, f: impl FnOnce(&Arc<CocoDev>) -> Result) -> c_int {
    let Some(cd) = registry().and_then(|r| r.find(dev)) else {
        return ENODEV.to_errno();
    };
    match f(&cd) {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// sysfs read of a text attribute of `measurements/`.
///
/// # Safety
///
/// `dev` is the device whose `measurements/` the attribute belongs to; `buf` is valid for writes
/// of `len` bytes.
#[no_mangle]
unsafe extern "C" fn coco_rs_meas_show(
    dev: *mut bindings::device,
    attr: c_uint,
    buf: *mut u8,
    len: usize,
) -> isize {
    // SAFETY: By the safety requirements.
    unsafe { show_with(dev, buf, len, |cd, out| cd.meas_show(attr, out)) }
}

/// sysfs read of a binary attribute of `measurements/` (transcript, signature).
///
/// # Safety
///
/// As [`coco_rs_meas_show`], with `buf` valid for `count` bytes.
#[no_mangle]
unsafe extern "C" fn coco_rs_meas_read(
    dev: *mut bindings::device,
    attr: c_uint,
    buf: *mut u8,
    offset: i64,
    count: usize,
) -> isize {
    // SAFETY: By the safety requirements.
    unsafe {
        read_with(dev, buf, offset, count, |cd, off, out| {
            cd.meas_read(attr, off, out)
        })
    }
}

/// sysfs read of an attribute of `measurements/<index>/`.
///
/// # Safety
///
/// As [`coco_rs_meas_show`].
#[no_mangle]
unsafe extern "C" fn coco_rs_block_show(
    dev: *mut bindings::device,
    index: c_uint,
    attr: c_uint,
    buf: *mut u8,
    len: usize,
) -> isize {
    let Ok(index) = u8::try_from(index) else {
        return EINVAL.to_errno() as isize;
    };
    // SAFETY: By the safety requirements.
    unsafe { show_with(dev, buf, len, |cd, out| cd.block_show(index, attr, out)) }
}

/// sysfs write to `measurements/refresh`: reads the measurements again, synchronously.
///
/// # Safety
///
/// `dev` is the device whose `measurements/` the attribute belongs to.
#[no_mangle]
unsafe extern "C" fn coco_rs_meas_refresh(dev: *mut bindings::device) -> c_int {
    store_with(dev, |cd| cd.refresh_measurements())
}

/// sysfs write to `measurements/nonce`: the nonce of the next signed GET_MEASUREMENTS.
///
/// # Safety
///
/// `dev` is the device whose `measurements/` the attribute belongs to; `nonce` points to 32
/// readable bytes.
#[no_mangle]
unsafe extern "C" fn coco_rs_meas_set_nonce(dev: *mut bindings::device, nonce: *const u8) -> c_int {
    if nonce.is_null() {
        return EINVAL.to_errno();
    }
    let mut n = [0u8; spdm::SPDM_NONCE_SIZE];
    // SAFETY: `nonce` points to 32 readable bytes by the safety requirements.
    n.copy_from_slice(unsafe { core::slice::from_raw_parts(nonce, spdm::SPDM_NONCE_SIZE) });
    store_with(dev, |cd| {
        cd.set_meas_nonce(n);
        Ok(())
    })
}

/// debugfs `relay`: "claim" (`claim`) or "release" of the DOE mailbox by the test TSM.
///
/// # Safety
///
/// `dev` is the device the debugfs file belongs to.
#[no_mangle]
unsafe extern "C" fn coco_rs_debug_claim(dev: *mut bindings::device, claim: bool) -> c_int {
    store_with(dev, |cd| cd.debug_claim(claim))
}

/// debugfs `relay`: relays the data object payload `req` (`len` bytes) of `object_type`.
///
/// # Safety
///
/// `dev` is the device the debugfs file belongs to; `req` is valid for reads of `len` bytes.
#[no_mangle]
unsafe extern "C" fn coco_rs_debug_relay(
    dev: *mut bindings::device,
    object_type: c_uint,
    req: *const u8,
    len: usize,
) -> c_int {
    let Ok(object_type) = u8::try_from(object_type) else {
        return EINVAL.to_errno();
    };
    // SAFETY: `req` is valid for reads of `len` bytes by the safety requirements.
    let req = unsafe { core::slice::from_raw_parts(req, len) };
    store_with(dev, |cd| cd.debug_relay(object_type, req))
}

/// debugfs `relay` (read): copies the last relayed response into `buf`; returns its length.
///
/// # Safety
///
/// `dev` is the device the debugfs file belongs to; `buf` is valid for writes of `len` bytes.
#[no_mangle]
unsafe extern "C" fn coco_rs_debug_relay_last(
    dev: *mut bindings::device,
    buf: *mut u8,
    len: usize,
) -> isize {
    let Some(cd) = registry().and_then(|r| r.find(dev)) else {
        return ENODEV.to_errno() as isize;
    };
    // SAFETY: `buf` is valid for writes of `len` bytes by the safety requirements.
    let out = unsafe { core::slice::from_raw_parts_mut(buf, len) };
    isize::try_from(cd.debug_relay_last(out)).unwrap_or(0)
}

/// debugfs `session_hold`: takes (`hold`) or drops the test hook's hold on the session.
///
/// # Safety
///
/// `dev` is the device the debugfs file belongs to.
#[no_mangle]
unsafe extern "C" fn coco_rs_debug_session_hold(dev: *mut bindings::device, hold: bool) -> c_int {
    store_with(dev, |cd| cd.debug_session_hold(hold))
}

/// debugfs `session_hold` (read): 1 if the test hook holds the session.
///
/// # Safety
///
/// `dev` is the device the debugfs file belongs to.
#[no_mangle]
unsafe extern "C" fn coco_rs_debug_session_held(dev: *mut bindings::device) -> c_int {
    registry()
        .and_then(|r| r.find(dev))
        .map_or(0, |cd| c_int::from(cd.debug_session_held()))
}
