// SPDX-License-Identifier: GPL-2.0

//! A device's native IDE link (see [`crate::native`] for the protocol side): connect and
//! disconnect through `coco/ide` or the kernel's `tsm/connect`, key refresh on request and on
//! a period, reconnection after a reset, and `ide_policy` when a connect fails. The link holds
//! the secure session (its keys were programmed inside it) and lives under the IDE lock, with
//! the TDI that rests on it.

use super::{CocoDev, IdeOwner, IdeState, IdeStatus, Owner};
use crate::native::{self, EndState, IdeLink, RefreshFailure};
use core::sync::atomic::Ordering;
use kernel::{
    prelude::*,
    sync::Arc,
    time::{msecs_to_jiffies, Instant, Monotonic},
};

impl CocoDev {
    /// Queues the next periodic key refresh of the IDE stream, `ide_refresh_secs` from now (none
    /// when it is 0). Like [`Self::arm_heartbeat`], never once teardown has set `removed`.
    pub(super) fn arm_ide_refresh(self: &Arc<Self>) {
        let _guard = self.queueing.lock();
        let secs = crate::ide_refresh_secs();
        if secs == 0 || self.removed.load(Ordering::Acquire) {
            return;
        }
        let delay = msecs_to_jiffies(secs.saturating_mul(1000));
        // Already queued (a reconnect after a reset): that refresh covers the new link too.
        if let Some(q) = crate::queue() {
            let _ = q.enqueue_delayed::<_, 2>(self.clone(), delay);
        }
    }

    /// Connects the device's link with the native IDE backend over coco.ko's session (see
    /// [`native::connect`]). Fails with `EBUSY` when a stream is already up, `ENOTCONN` without
    /// a session, else with the errno of the failure, whose reason `coco/ide` shows.
    pub(crate) fn ide_connect_as(self: &Arc<Self>, owner: IdeOwner) -> Result {
        let mut ide = self.ide.lock();
        if ide.link.is_some() {
            return Err(EBUSY);
        }
        let r = self.ide_connect_locked(&mut ide, owner, false);
        drop(ide);
        self.notify_change(if r.is_ok() {
            c"COCO_IDE=connected"
        } else {
            c"COCO_IDE=error"
        });
        self.ide_policy_after(r.is_ok());
        r
    }

    /// Applies `ide_policy` after a connect attempt, with no lock of this device held (unbinding
    /// a driver runs its remove and the bus notifiers): a success lifts a block this module set
    /// (a driver may bind again); a failure is only logged (warn), keeps every driver from the
    /// function until it is connected (block), or panics.
    fn ide_policy_after(&self, connected: bool) {
        if self.removed.load(Ordering::Acquire) {
            return;
        }
        let raw = self.raw.0.as_ptr();
        if connected {
            // SAFETY: The device is live: called from a sysfs writer or the probe work, which
            // teardown waits for before the device goes.
            let rc = unsafe { crate::coco_block_drivers(raw, false) };
            if rc != 0 {
                dev_warn!(self.dev(), "coco: cannot lift the driver block: {}\n", rc);
            }
            return;
        }
        match crate::ide_policy() {
            crate::IdePolicy::Warn => {}
            crate::IdePolicy::Block => {
                dev_warn!(
                    self.dev(),
                    "coco: ide_policy=block: no driver may bind to the function until it is connected\n"
                );
                // SAFETY: As above.
                let rc = unsafe { crate::coco_block_drivers(raw, true) };
                if rc != 0 {
                    dev_err!(self.dev(), "coco: cannot block drivers: {}\n", rc);
                }
            }
            // SAFETY: As above; does not return.
            crate::IdePolicy::Panic => unsafe { crate::coco_ide_panic(raw) },
        }
    }

    /// Connects with `ide` (the IDE lock) held and no link; `again` after a reset.
    fn ide_connect_locked(
        self: &Arc<Self>,
        ide: &mut IdeState,
        owner: IdeOwner,
        again: bool,
    ) -> Result {
        if let Owner::Tsm(tsm) = self.state.lock().owner {
            ide.failure = Some("the DOE mailbox is owned by a TSM that runs SPDM itself");
            dev_warn!(
                self.dev(),
                "coco: IDE connect refused: the DOE mailbox is owned by {} (EBUSY)\n",
                tsm
            );
            return Err(EBUSY);
        }
        let hold = match self.hold_session() {
            Ok(h) => h,
            Err(e) => {
                ide.failure = Some("no secure session: IDE keys are programmed inside one");
                dev_err!(
                    self.dev(),
                    "coco: IDE connect failed: no secure session ({:?})\n",
                    e
                );
                return Err(e);
            }
        };
        let pdev = &self.pdev;
        let start = Instant::<Monotonic>::now();
        let result = self.with_session(|s, t| {
            let before = s.info().messages;
            native::connect(pdev, s, t).map(|l| (l, s.info().messages.saturating_sub(before)))
        });
        let us = u64::try_from(start.elapsed().as_micros_ceil()).unwrap_or(0);
        match result {
            Ok((link, messages)) => {
                let (h, r, e) = link.name();
                dev_info!(
                    self.dev(),
                    "coco: IDE stream {} secure (stream{}.{}.{}){}, keys from the kernel RNG through IDE_KM and the root port's key interface; {} secured messages, {} us\n",
                    link.stream_id(),
                    h,
                    r,
                    e,
                    if again { " again after a reset" } else { "" },
                    messages,
                    us
                );
                ide.link = Some((link, hold, owner));
                ide.failure = None;
                self.arm_ide_refresh();
                Ok(())
            }
            Err(f) => {
                dev_err!(
                    self.dev(),
                    "coco: IDE {}connect failed: {}\n",
                    if again { "re" } else { "" },
                    f
                );
                ide.failure = Some(f.reason);
                Err(f.err)
            }
        }
    }

    /// After a probe: a connected stream whose ends no longer read Secure lost its keys (a
    /// reset or a power loss did; the probe opened a new session): it is taken down and
    /// connected again, with a uevent either way (`COCO_IDE=reconnected` or `COCO_IDE=error`,
    /// the reason in `coco/ide`).
    pub(super) fn ide_recover(self: &Arc<Self>) {
        let mut ide = self.ide.lock();
        let Some((link, _, owner)) = &ide.link else {
            return;
        };
        let owner = *owner;
        let st = link.state(true);
        if st.endpoint == EndState::Secure && st.root_port == EndState::Secure {
            return;
        }
        dev_warn!(
            self.dev(),
            "coco: IDE stream {} lost its keys (endpoint {}, root port {}): connecting again\n",
            st.stream_id,
            st.endpoint.name(),
            st.root_port.name()
        );
        if let Some((link, hold, _)) = ide.link.take() {
            // The device lost the old session's keys with the reset: nothing to stop there.
            link.disconnect(None);
            drop(hold);
        }
        let r = self.ide_connect_locked(&mut ide, owner, true);
        drop(ide);
        self.notify_change(if r.is_ok() {
            c"COCO_IDE=reconnected"
        } else {
            c"COCO_IDE=error"
        });
        self.ide_policy_after(r.is_ok());
    }

    /// Takes the native IDE stream down (see [`IdeLink::disconnect`]). Fails with `ENOTCONN`
    /// when there is none, `EBUSY` when `owner` did not connect it (a stream connected through
    /// `tsm/connect` is disconnected through `tsm/disconnect`).
    pub(crate) fn ide_disconnect_as(self: &Arc<Self>, owner: IdeOwner) -> Result {
        let mut ide = self.ide.lock();
        match &ide.link {
            None => return Err(ENOTCONN),
            Some((_, _, o)) if *o != owner => return Err(EBUSY),
            Some(_) => {}
        }
        if ide.tdi.bound.is_some() {
            dev_err!(
                self.dev(),
                "coco: IDE disconnect refused: the TDI is bound (write unbind to tdisp first)\n"
            );
            return Err(EBUSY);
        }
        let (link, hold, _) = ide.link.take().ok_or(ENOTCONN)?;
        let id = link.stream_id();
        self.disconnect_link(link);
        drop(hold);
        drop(ide);
        dev_info!(self.dev(), "coco: IDE stream {} disconnected\n", id);
        self.notify_change(c"COCO_IDE=disconnected");
        Ok(())
    }

    /// Takes `link` down (see [`IdeLink::disconnect`]), its endpoint keys stopped inside the
    /// session. Without a usable session the endpoint's keys cannot be stopped; the stream is
    /// still disabled and released.
    fn disconnect_link(&self, link: IdeLink) {
        let mut link = Some(link);
        let _ = self.with_session(|s, t| {
            if let Some(l) = link.take() {
                l.disconnect(Some((s, t)));
            }
            Ok(())
        });
        if let Some(l) = link.take() {
            l.disconnect(None);
        }
    }

    /// Refreshes the IDE stream's keys (see [`IdeLink::refresh`]), on root's request (`coco/ide`
    /// "refresh") or every `ide_refresh_secs`. Fails with `ENOTCONN` without a stream. A failed
    /// refresh that leaves the old keys in use keeps the stream; any other failure takes it down
    /// with the reason in `coco/ide`, a `COCO_IDE=error` uevent and `ide_policy` applied.
    pub(crate) fn ide_refresh_keys(self: &Arc<Self>) -> Result {
        if self.removed.load(Ordering::Acquire) {
            return Err(ENODEV);
        }
        let mut ide = self.ide.lock();
        let Some((link, _, _)) = ide.link.as_mut() else {
            return Err(ENOTCONN);
        };
        let id = link.stream_id();
        let start = Instant::<Monotonic>::now();
        let r = self.with_session(|s, t| {
            let before = s.info().messages;
            let r = link.refresh(s, t);
            Ok((r, s.info().messages.saturating_sub(before)))
        });
        let us = u64::try_from(start.elapsed().as_micros_ceil()).unwrap_or(0);
        let failure = match r {
            Ok((Ok(()), messages)) => {
                let st = link.state(false);
                dev_info!(
                    self.dev(),
                    "coco: IDE stream {} keys refreshed: key set {} in use, refresh {}; {} secured messages, {} us\n",
                    id,
                    st.key_set,
                    st.refreshes,
                    messages,
                    us
                );
                drop(ide);
                self.notify_change(c"COCO_IDE=refreshed");
                return Ok(());
            }
            Ok((
                Err(RefreshFailure {
                    failure,
                    link_kept: false,
                }),
                _,
            )) => failure,
            // The old keys still secure the link; without a session (`Err`) none was touched.
            Ok((
                Err(RefreshFailure {
                    failure,
                    link_kept: true,
                }),
                _,
            ))
            | Err(failure) => {
                dev_warn!(
                    self.dev(),
                    "coco: IDE stream {} key refresh failed, the old keys stay in use: {}\n",
                    id,
                    failure
                );
                return Err(failure.err);
            }
        };
        dev_err!(
            self.dev(),
            "coco: IDE stream {} key refresh failed, the stream is taken down: {}\n",
            id,
            failure
        );
        if let Some((link, hold, _)) = ide.link.take() {
            self.disconnect_link(link);
            drop(hold);
        }
        ide.failure = Some(failure.reason);
        drop(ide);
        self.notify_change(c"COCO_IDE=error");
        self.ide_policy_after(false);
        Err(failure.err)
    }

    /// What `coco/ide` shows; with `read_ends`, the stream state is read from both ends'
    /// registers now (otherwise both ends show as unknown).
    pub(crate) fn ide_status(&self, read_ends: bool) -> IdeStatus {
        let ide = self.ide.lock();
        match (&ide.link, ide.failure) {
            (Some((l, _, _)), _) => IdeStatus::Connected(l.state(read_ends), l.name()),
            (None, Some(why)) => IdeStatus::Failed(why),
            (None, None) => IdeStatus::Disconnected,
        }
    }
}
