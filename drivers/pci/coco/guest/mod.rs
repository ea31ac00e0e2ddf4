// SPDX-License-Identifier: GPL-2.0

//! coco.ko in a confidential guest (Documentation/coco/sev-tio-guest.rst): the channel to the
//! platform's TSM and the measurement reference. The per-device flow is `device/guest.rs`.

pub(crate) mod channel;
pub(crate) mod reference;
