//! DMTF SPDM (DSP0274) message codec.
//!
//! This crate root is deliberately thin: all code lives in `spdm.rs`, which the
//! kernel module also compiles directly (`#[path = ".../rust/spdm/src/spdm.rs"] mod spdm;`)
//! with only `core` available. See that file for the API and its documentation.
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
