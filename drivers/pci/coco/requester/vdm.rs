// SPDX-License-Identifier: GPL-2.0

//! The envelope IDE_KM and TDISP travel in: a PCI-SIG SPDM VENDOR_DEFINED_REQUEST inside the
//! device's secure session, and the VENDOR_DEFINED_RESPONSE checked (PCI-SIG, the same
//! protocol) before its message is handed back.

use super::session::Session;
use crate::{
    channel::{Failure, Transport},
    vendor,
};
use kernel::prelude::*;

/// Largest protocol message sent (an IDE_KM KEY_PROG; TDISP requests are smaller).
pub(crate) const MAX_MESSAGE: usize = 64;

/// Sends `message` of PCI-SIG protocol `protocol` and returns the protocol message of the
/// response (in `rsp`). The request's copy of `message` (which may hold a key or a nonce) is
/// wiped before returning.
pub(crate) fn exchange<'r>(
    s: &mut Session,
    t: &dyn Transport,
    protocol: u8,
    message: &[u8],
    rsp: &'r mut [u8],
) -> Result<&'r [u8], Failure> {
    let mut req = [0u8; MAX_MESSAGE + vendor::PCI_SIG_VDM_OVERHEAD];
    let built = vendor::encode_pci_sig_vdm(
        s.version(),
        crate::spdm::SPDM_VENDOR_DEFINED_REQUEST,
        protocol,
        message,
        &mut req,
    );
    let sent = match built {
        Ok(len) => s.send(t, req.get(..len).unwrap_or(&[]), rsp),
        Err(_) => Err(Failure::new(
            "cannot encode a vendor-defined request",
            EINVAL,
        )),
    };
    req.fill(0);
    core::hint::black_box(&mut req);
    let m = sent?;
    let rsp: &'r [u8] = rsp;
    let vdm = vendor::parse_pci_sig_vdm(
        rsp.get(..m).unwrap_or(&[]),
        crate::spdm::SPDM_VENDOR_DEFINED_RESPONSE,
    )
    .map_err(|_| {
        Failure::new(
            "the answer is not a PCI-SIG VENDOR_DEFINED_RESPONSE",
            EPROTO,
        )
    })?;
    if vdm.protocol_id != protocol {
        return Err(Failure::new(
            "the answer is of another PCI-SIG protocol",
            EPROTO,
        ));
    }
    Ok(vdm.message)
}
