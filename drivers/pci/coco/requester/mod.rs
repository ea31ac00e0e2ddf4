// SPDX-License-Identifier: GPL-2.0

//! The SPDM requester steps, each over a [`crate::channel::Conn`] and reporting a
//! [`crate::channel::Failure`]: authentication (`auth`), signed measurements (`meas`, which uses
//! what `auth` negotiated), the secure session (`session`, which uses both) and IDE_KM inside
//! that session (`idekm`), and TDISP inside it too (`tdisp`), both in the vendor-defined
//! envelope of `vdm`. None of them
//! knows about the per-device state; `connect.rs` runs them in order.

pub(crate) mod auth;
pub(crate) mod idekm;
pub(crate) mod meas;
pub(crate) mod session;
pub(crate) mod tdisp;
mod vdm;
