//! PCIe TDISP (TEE Device Interface Security Protocol, PCIe r6.x chapter 11) codec.
//!
//! This crate root is deliberately thin: all code lives in `tdisp.rs`, which the kernel module
//! also compiles directly (`#[path = ".../rust/tdisp/src/tdisp.rs"] mod tdisp;`) with only
//! `core` available. TDISP messages travel inside SPDM VENDOR_DEFINED_REQUEST/RESPONSE
//! messages (PCI-SIG, protocol ID 1) in a secure session; the wrapper is `coco_spdm::vendor`.
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

mod tdisp;
pub use tdisp::*;
