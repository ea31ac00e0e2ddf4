// SPDX-License-Identifier: GPL-2.0

//! Trust anchors of coco.ko: the `.coco` keyring.
//!
//! A device certificate chain is trusted when its first certificate is signed by a key in the
//! `.coco` keyring (usually the chain's own root, added by the administrator). The keyring is
//! created when the module loads and belongs to root, who adds certificates with
//!
//! ```text
//! keyctl padd asymmetric <description> %:.coco < root.der
//! ```
//!
//! and may link other keyrings into it (for example `%:.builtin_trusted_keys`): the search
//! follows links. `keyctl unlink <key> %:.coco` withdraws a trust anchor. Keys added after a device was authenticated take effect at its next
//! authentication (`echo 1 > authenticated`). The keyring, and the keys in it, go away with the
//! module.

use crate::crypto::X509Cert;
use core::ptr::NonNull;
use kernel::{bindings, error::from_err_ptr, prelude::*};

/// Description of the keyring, as `keyctl` names it (`%:.coco`).
pub(crate) const KEYRING_NAME: &CStr = c".coco";

/// The `.coco` keyring; the module owns one reference.
pub(crate) struct Keyring(NonNull<bindings::key>);

// SAFETY: A `struct key` is reference counted and internally locked; the pointer is only passed to
// the keys API, which may be called from any thread.
unsafe impl Send for Keyring {}
// SAFETY: See `Send`.
unsafe impl Sync for Keyring {}

impl Keyring {
    /// Creates the keyring: owned by root, who may view, read, search, add and remove keys;
    /// nobody else has access. Not `KEY_ALLOC_SET_KEEP`: keys added to such a keyring inherit
    /// the flag, and root could no longer withdraw a trust anchor.
    pub(crate) fn new() -> Result<Self> {
        let perm = (bindings::KEY_POS_ALL & !bindings::KEY_POS_SETATTR)
            | bindings::KEY_USR_VIEW
            | bindings::KEY_USR_READ
            | bindings::KEY_USR_WRITE
            | bindings::KEY_USR_SEARCH;
        let flags = bindings::KEY_ALLOC_NOT_IN_QUOTA;
        // SAFETY: The name is a NUL-terminated static string; `current_cred()` is valid in the
        // module's init (process context); no restriction and no destination keyring.
        let key = from_err_ptr(unsafe {
            bindings::keyring_alloc(
                KEYRING_NAME.as_char_ptr(),
                bindings::kuid_t { val: 0 },
                bindings::kgid_t { val: 0 },
                bindings::current_cred(),
                perm,
                flags as kernel::ffi::c_ulong,
                core::ptr::null_mut(),
                core::ptr::null_mut(),
            )
        })?;
        NonNull::new(key).map(Self).ok_or(ENOMEM)
    }

    /// The keyring's serial number, as `keyctl` shows it.
    pub(crate) fn serial(&self) -> i32 {
        // SAFETY: The keyring is live while `self` holds its reference.
        unsafe { (*self.0.as_ptr()).serial }
    }

    /// Checks that `cert`, the first certificate of a device's chain, is signed by a key in the
    /// keyring (directly, or through a linked keyring).
    ///
    /// Fails with `ENOKEY` if no key matches the certificate's authority key identifier (for a
    /// self-signed certificate without one: its own issuer and serial number), and with
    /// `EKEYREJECTED` if the key found does not verify the signature.
    pub(crate) fn verify_anchor(&self, cert: &X509Cert) -> Result {
        let (id0, id1, id2) = cert.authority_ids();
        let (id0, id1, id2) = if id0.is_null() && id1.is_null() && id2.is_null() {
            if !cert.is_self_signed() {
                return Err(ENOKEY);
            }
            (cert.own_id(), core::ptr::null(), core::ptr::null())
        } else {
            (id0, id1, id2)
        };
        // SAFETY: The keyring is live; the IDs are NULL or point into `cert`, which outlives the
        // call. An exact (not partial) match is asked for.
        let key = from_err_ptr(unsafe {
            bindings::find_asymmetric_key(self.0.as_ptr(), id0, id1, id2, false)
        })
        .map_err(|_| ENOKEY)?;
        // SAFETY: `key` is a live asymmetric key with a reference held until `key_put()` below.
        let pkey = unsafe { bindings::asymmetric_key_public_key(key) };
        let ret = if pkey.is_null() {
            EKEYREJECTED.to_errno()
        } else {
            // SAFETY: `pkey` belongs to `key`, which is held; the signature belongs to `cert`.
            unsafe { bindings::public_key_verify_signature(pkey, cert.signature()) }
        };
        // SAFETY: Drops the reference `find_asymmetric_key()` returned.
        unsafe { bindings::key_put(key) };
        if ret == 0 {
            Ok(())
        } else {
            Err(EKEYREJECTED)
        }
    }
}

impl Drop for Keyring {
    fn drop(&mut self) {
        // SAFETY: Drops the reference `keyring_alloc()` returned; the keys go with the keyring
        // unless userspace holds references to them.
        unsafe { bindings::key_put(self.0.as_ptr()) };
    }
}
