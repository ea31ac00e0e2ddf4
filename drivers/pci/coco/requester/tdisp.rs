// SPDX-License-Identifier: GPL-2.0

//! TDISP requester steps (PCIe r6.x chapter 11) inside a device's secure session:
//! GET_TDISP_VERSION, GET_TDISP_CAPABILITIES, LOCK_INTERFACE, GET_DEVICE_INTERFACE_REPORT (read
//! in portions), GET_DEVICE_INTERFACE_STATE, START_INTERFACE and STOP_INTERFACE for one device
//! interface (TDI), each carried in an SPDM VENDOR_DEFINED_REQUEST of the PCI-SIG (protocol 1)
//! through [`Session::send`].
//!
//! Every answer is checked before it is believed: a PCI-SIG vendor-defined response of the
//! TDISP protocol, TDISP 1.0, the TDI's interface ID echoed, and the response that belongs to
//! the request (a TDISP ERROR is a failure naming its code).

use super::{session::Session, vdm};
use crate::{
    channel::{Failure, Transport},
    tdisp::{
        self as td, Capabilities, InterfaceId, LockInterface, TdiState, TdispRequest,
        TdispResponse, TDISP_NONCE_SIZE, TDISP_VERSION_1_0,
    },
    vendor,
};
use kernel::prelude::*;

/// Bytes asked for in one GET_DEVICE_INTERFACE_REPORT.
const PORTION: u16 = 0x400;
/// Largest response read: a portion with its headers.
const MAX_RESPONSE: usize = PORTION as usize + 64 + crate::vendor::PCI_SIG_VDM_OVERHEAD;

/// The reason shown for a TDISP ERROR response with `code`.
fn error_reason(code: u32) -> &'static str {
    match code {
        td::TDISP_ERROR_INVALID_REQUEST => "TDISP: ERROR INVALID_REQUEST",
        td::TDISP_ERROR_BUSY => "TDISP: ERROR BUSY",
        td::TDISP_ERROR_INVALID_INTERFACE_STATE => "TDISP: ERROR INVALID_INTERFACE_STATE",
        td::TDISP_ERROR_UNSPECIFIED => "TDISP: ERROR UNSPECIFIED",
        td::TDISP_ERROR_UNSUPPORTED_REQUEST => "TDISP: ERROR UNSUPPORTED_REQUEST",
        td::TDISP_ERROR_VERSION_MISMATCH => "TDISP: ERROR VERSION_MISMATCH",
        td::TDISP_ERROR_VENDOR_SPECIFIC => "TDISP: ERROR VENDOR_SPECIFIC_ERROR",
        td::TDISP_ERROR_INVALID_INTERFACE => "TDISP: ERROR INVALID_INTERFACE",
        td::TDISP_ERROR_INVALID_NONCE => "TDISP: ERROR INVALID_NONCE",
        td::TDISP_ERROR_INSUFFICIENT_ENTROPY => "TDISP: ERROR INSUFFICIENT_ENTROPY",
        td::TDISP_ERROR_INVALID_DEVICE_CONFIGURATION => "TDISP: ERROR INVALID_DEVICE_CONFIGURATION",
        _ => "TDISP: ERROR with a reserved code",
    }
}

/// The errno for a TDISP ERROR `code`.
fn error_errno(code: u32) -> Error {
    match code {
        td::TDISP_ERROR_BUSY => EBUSY,
        td::TDISP_ERROR_UNSUPPORTED_REQUEST | td::TDISP_ERROR_VERSION_MISMATCH => EOPNOTSUPP,
        td::TDISP_ERROR_INVALID_NONCE => EACCES,
        _ => EIO,
    }
}

/// Sends `req` for the TDI `iface`; returns the response (of the type `expect`, checked) with
/// its bytes in `rsp`.
fn exchange<'r>(
    s: &mut Session,
    t: &dyn Transport,
    iface: InterfaceId,
    req: &TdispRequest,
    expect: u8,
    rsp: &'r mut [u8],
) -> Result<TdispResponse<'r>, Failure> {
    let mut inner = [0u8; vdm::MAX_MESSAGE];
    let r = match td::encode_request(TDISP_VERSION_1_0, iface, req, &mut inner) {
        Ok(n) => vdm::exchange(
            s,
            t,
            vendor::PCI_PROTOCOL_TDISP,
            inner.get(..n).unwrap_or(&[]),
            rsp,
        ),
        Err(_) => Err(Failure::new("cannot encode a TDISP request", EINVAL)),
    };
    // A START_INTERFACE request carries the lock's nonce: wipe it.
    inner.fill(0);
    core::hint::black_box(&mut inner);
    let message = r?;
    let (hdr, r) = td::parse_response(message)
        .map_err(|_| Failure::new("TDISP: malformed response", EPROTO))?;
    if hdr.version != TDISP_VERSION_1_0 {
        return Err(Failure::new("TDISP: the response is not TDISP 1.0", EPROTO));
    }
    if hdr.interface_id != iface {
        return Err(Failure::new(
            "TDISP: the response is for another interface",
            EPROTO,
        ));
    }
    if let TdispResponse::Error(e) = r {
        return Err(Failure::new(error_reason(e.code), error_errno(e.code)));
    }
    if r.code() != expect {
        return Err(Failure::new(
            "TDISP: the response does not answer the request",
            EPROTO,
        ));
    }
    Ok(r)
}

/// GET_TDISP_VERSION: the device must speak TDISP 1.0.
pub(crate) fn version(
    s: &mut Session,
    t: &dyn Transport,
    iface: InterfaceId,
) -> Result<(), Failure> {
    let mut rsp = [0u8; 96];
    let TdispResponse::Version { versions } = exchange(
        s,
        t,
        iface,
        &TdispRequest::GetVersion,
        td::TDISP_VERSION,
        &mut rsp,
    )?
    else {
        return Err(Failure::new("TDISP: no VERSION response", EPROTO));
    };
    if !versions.contains(&TDISP_VERSION_1_0) {
        return Err(Failure::new(
            "TDISP: the device does not support TDISP 1.0",
            EOPNOTSUPP,
        ));
    }
    Ok(())
}

/// GET_TDISP_CAPABILITIES (the host's TSM capabilities: none).
pub(crate) fn capabilities(
    s: &mut Session,
    t: &dyn Transport,
    iface: InterfaceId,
) -> Result<Capabilities, Failure> {
    let mut rsp = [0u8; 128];
    match exchange(
        s,
        t,
        iface,
        &TdispRequest::GetCapabilities { tsm_caps: 0 },
        td::TDISP_CAPABILITIES,
        &mut rsp,
    )? {
        TdispResponse::Capabilities(c) => Ok(c),
        _ => Err(Failure::new("TDISP: no CAPABILITIES response", EPROTO)),
    }
}

/// LOCK_INTERFACE with `params`; returns the start interface nonce.
pub(crate) fn lock(
    s: &mut Session,
    t: &dyn Transport,
    iface: InterfaceId,
    params: LockInterface,
) -> Result<[u8; TDISP_NONCE_SIZE], Failure> {
    let mut rsp = [0u8; 128];
    let r = exchange(
        s,
        t,
        iface,
        &TdispRequest::LockInterface(params),
        td::TDISP_LOCK_INTERFACE_RSP,
        &mut rsp,
    );
    let nonce = match r {
        Ok(TdispResponse::LockInterface { nonce }) => Ok(nonce),
        Ok(_) => Err(Failure::new("TDISP: no LOCK_INTERFACE response", EPROTO)),
        Err(f) => Err(f),
    };
    rsp.fill(0);
    core::hint::black_box(&mut rsp);
    nonce
}

/// Reads the whole device interface report into `out` (cleared first), in portions: the first
/// portion tells the total, every later one must agree with it, and no portion may be empty
/// before the end.
pub(crate) fn report(
    s: &mut Session,
    t: &dyn Transport,
    iface: InterfaceId,
    out: &mut KVec<u8>,
) -> Result<(), Failure> {
    let mut rsp = KVec::from_elem(0u8, MAX_RESPONSE, GFP_KERNEL)
        .map_err(|_| Failure::new("out of memory", ENOMEM))?;
    out.clear();
    let mut total: Option<u16> = None;
    loop {
        let offset = u16::try_from(out.len())
            .map_err(|_| Failure::new("TDISP: the interface report exceeds 64 KiB", EPROTO))?;
        let length = match total {
            Some(total) => total.saturating_sub(offset).min(PORTION),
            None => PORTION,
        };
        let TdispResponse::Report(p) = exchange(
            s,
            t,
            iface,
            &TdispRequest::GetReport { offset, length },
            td::TDISP_DEVICE_INTERFACE_REPORT,
            &mut rsp[..],
        )?
        else {
            return Err(Failure::new(
                "TDISP: no DEVICE_INTERFACE_REPORT response",
                EPROTO,
            ));
        };
        let this_total = p.total_len(offset).ok_or(Failure::new(
            "TDISP: the interface report exceeds 64 KiB",
            EPROTO,
        ))?;
        if total.is_some_and(|t| t != this_total) {
            return Err(Failure::new(
                "TDISP: the report portions disagree on the report's length",
                EPROTO,
            ));
        }
        if p.portion.len() > usize::from(length) {
            return Err(Failure::new(
                "TDISP: a report portion is longer than asked for",
                EPROTO,
            ));
        }
        if p.portion.is_empty() && p.remainder_length != 0 {
            return Err(Failure::new(
                "TDISP: an empty report portion before the end",
                EPROTO,
            ));
        }
        total = Some(this_total);
        out.extend_from_slice(p.portion, GFP_KERNEL)
            .map_err(|_| Failure::new("out of memory", ENOMEM))?;
        if p.remainder_length == 0 {
            return Ok(());
        }
    }
}

/// GET_DEVICE_INTERFACE_STATE.
pub(crate) fn state(
    s: &mut Session,
    t: &dyn Transport,
    iface: InterfaceId,
) -> Result<TdiState, Failure> {
    let mut rsp = [0u8; 96];
    match exchange(
        s,
        t,
        iface,
        &TdispRequest::GetState,
        td::TDISP_DEVICE_INTERFACE_STATE,
        &mut rsp,
    )? {
        TdispResponse::State(st) => Ok(st),
        _ => Err(Failure::new(
            "TDISP: no DEVICE_INTERFACE_STATE response",
            EPROTO,
        )),
    }
}

/// START_INTERFACE with the lock's `nonce`.
pub(crate) fn start(
    s: &mut Session,
    t: &dyn Transport,
    iface: InterfaceId,
    nonce: &[u8; TDISP_NONCE_SIZE],
) -> Result<(), Failure> {
    let mut rsp = [0u8; 96];
    exchange(
        s,
        t,
        iface,
        &TdispRequest::Start { nonce: *nonce },
        td::TDISP_START_INTERFACE_RSP,
        &mut rsp,
    )
    .map(|_| ())
}

/// STOP_INTERFACE.
pub(crate) fn stop(s: &mut Session, t: &dyn Transport, iface: InterfaceId) -> Result<(), Failure> {
    let mut rsp = [0u8; 96];
    exchange(
        s,
        t,
        iface,
        &TdispRequest::Stop,
        td::TDISP_STOP_INTERFACE_RSP,
        &mut rsp,
    )
    .map(|_| ())
}
