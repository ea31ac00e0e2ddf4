//! DMTF SPDM (DSP0274) message codec.
//!
//! This crate root is deliberately thin: all code lives in `spdm.rs` (header, codes,
//! GET_VERSION/VERSION, ERROR, RESPOND_IF_READY) and `auth.rs` (the authentication messages,
//! certificate chains, transcript and signing prefix) and `meas.rs` (GET_MEASUREMENTS /
//! MEASUREMENTS and the measurement record) and `session.rs` (secure sessions: KEY_EXCHANGE to
//! END_SESSION, the DSP0277 secured-message record, the key schedule), which the kernel module also compiles
//! directly, as sibling modules of its crate root with the same names:
//!
//! ```text
//! #[path = ".../rust/spdm/src/spdm.rs"] mod spdm;
//! #[path = ".../rust/spdm/src/auth.rs"] mod auth;
//! #[path = ".../rust/spdm/src/meas.rs"] mod meas;
//! #[path = ".../rust/spdm/src/session.rs"] mod session;
//! ```
//!
//! `cma.rs` (the CMA identity in a leaf certificate's subjectAltName, and the DER walker) and
//! `cert.rs` (the RFC 5280 path checks the kernel's X.509 parser leaves to its callers:
//! keyUsage, basicConstraints, pathLenConstraint) stand apart from the codec.
//!
//! `auth.rs` and `meas.rs` refer to the codec as `crate::spdm` (and `meas.rs` to `crate::auth`),
//! which resolves identically in both builds.
//! Only `core` is available to either file. The items of `spdm.rs` are re-exported at the root
//! of this crate; those of `auth.rs` live in [`auth`], those of `meas.rs` in [`meas`].
//!
//! The lints below enforce, in the cargo build, the rules the kernel build relies on:
//! no `unsafe`, no allocation, and no code path that can panic (no indexing, no
//! `unwrap`/`expect`, no unchecked arithmetic, no lossy `as` casts).
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(
        missing_docs,
        unreachable_pub,
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented,
        clippy::arithmetic_side_effects,
        clippy::cast_possible_truncation,
        clippy::cast_lossless,
        clippy::missing_panics_doc,
    )
)]

mod spdm;
pub use spdm::*;

pub mod auth;

pub mod cma;

pub mod cert;

pub mod meas;

pub mod session;

pub mod vendor;
