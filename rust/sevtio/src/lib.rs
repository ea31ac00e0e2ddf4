//! AMD SEV-TIO firmware (PSP) command interface codec: the TIO command buffers, the SEV mailbox
//! register encoding, scatter list addresses (SLAs), the SPDM buffers and data objects the
//! PSP and the host exchange while the PSP talks SPDM to a device through the host.
//!
//! This crate root is deliberately thin: all code lives in `sevtio.rs`, which the kernel module
//! also compiles directly (`#[path = ".../rust/sevtio/src/sevtio.rs"] mod sevtio;`) with only
//! `core` available. The userspace firmware model (an emulated PSP) uses the same code.
//!
//! The `guest` module (`guest.rs`, the SEV-TIO guest messages of
//! Documentation/coco/sev-tio-guest.rst) is self-contained the same way and compiled into the
//! kernel on its own.
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

pub mod guest;
mod sevtio;
pub use sevtio::*;
