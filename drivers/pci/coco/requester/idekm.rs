// SPDX-License-Identifier: GPL-2.0

//! IDE_KM requester steps (PCIe r6.x sec 6.33.3) inside a device's secure session: QUERY,
//! KEY_PROG, K_SET_GO and K_SET_STOP for the endpoint's own port (port index 0), each carried
//! in an SPDM VENDOR_DEFINED_REQUEST of the PCI-SIG (protocol 0) through [`Session::send`].
//!
//! Every answer is checked before it is believed: a PCI-SIG vendor-defined response of the
//! IDE_KM protocol, the expected object, and the stream ID, key_sub_stream and port index
//! echoed. Keys are the caller's; this file copies them into the request only, and wipes the
//! copy before returning.

use super::{session::Session, vdm};
use crate::{
    channel::{Failure, Transport},
    idekm::{self as km, IdeKmMessage, KeySetCmd, KeySubStream},
    vendor,
};
use kernel::prelude::*;

/// Largest IDE_KM response read (QUERY_RESP with the biggest IDE capability: 255 selective
/// blocks of 8 dwords is more than any device has; 1 KiB holds 30 of them). A larger one fails
/// in the session layer.
const MAX_RESPONSE: usize = 1024 + vendor::PCI_SIG_VDM_OVERHEAD;

/// What QUERY_RESP tells about the endpoint's port.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PortIde {
    /// Number of Selective IDE Stream register blocks.
    pub(crate) selective_streams: usize,
}

/// Sends the IDE_KM message `msg` and returns the IDE_KM response in `rsp`.
fn exchange<'r>(
    s: &mut Session,
    t: &dyn Transport,
    msg: &IdeKmMessage<'_>,
    rsp: &'r mut [u8],
) -> Result<IdeKmMessage<'r>, Failure> {
    let mut inner = [0u8; km::IDE_KM_KEY_PROG_SIZE];
    let r = match msg.encode(&mut inner) {
        Ok(n) => vdm::exchange(
            s,
            t,
            vendor::PCI_PROTOCOL_IDE_KM,
            inner.get(..n).unwrap_or(&[]),
            rsp,
        ),
        Err(_) => Err(Failure::new("cannot encode an IDE_KM request", EINVAL)),
    };
    // The request held a key for KEY_PROG: wipe it whatever happened.
    inner.fill(0);
    core::hint::black_box(&mut inner);
    km::parse_message(r?).map_err(|_| Failure::new("IDE_KM: malformed response object", EPROTO))
}

/// QUERY for port 0: the endpoint's IDE capability as the device reports it.
pub(crate) fn query(s: &mut Session, t: &dyn Transport) -> Result<PortIde, Failure> {
    let mut rsp = KVec::from_elem(0u8, MAX_RESPONSE, GFP_KERNEL)
        .map_err(|_| Failure::new("out of memory", ENOMEM))?;
    let msg = IdeKmMessage::Query(km::Query { port_index: 0 });
    let IdeKmMessage::QueryResp(r) = exchange(s, t, &msg, &mut rsp[..])? else {
        return Err(Failure::new(
            "IDE_KM: QUERY not answered with QUERY_RESP",
            EPROTO,
        ));
    };
    if r.info.port_index != 0 {
        return Err(Failure::new("IDE_KM: QUERY_RESP for another port", EPROTO));
    }
    let regs = r
        .ide_regs()
        .map_err(|_| Failure::new("IDE_KM: QUERY_RESP's IDE registers are malformed", EPROTO))?;
    let cap = r.reg(0).unwrap_or(0);
    if cap & km::IDE_CAP_IDE_KM == 0 || cap & km::IDE_CAP_SELECTIVE == 0 {
        return Err(Failure::new(
            "IDE_KM: the device reports no Selective IDE with IDE_KM",
            EOPNOTSUPP,
        ));
    }
    Ok(PortIde {
        selective_streams: regs.num_selective(),
    })
}

/// KEY_PROG of `key`/`ifv` for (`stream_id`, `sub`) on port 0; the KP_ACK must echo the request
/// and report success.
pub(crate) fn key_prog(
    s: &mut Session,
    t: &dyn Transport,
    stream_id: u8,
    sub: KeySubStream,
    key: &[u8; km::IDE_KM_KEY_SIZE],
    ifv: &[u8; km::IDE_KM_IFV_SIZE],
) -> Result<(), Failure> {
    let mut msg = IdeKmMessage::KeyProg(km::KeyProg {
        stream_id,
        sub,
        port_index: 0,
        key: *key,
        ifv: *ifv,
    });
    let mut rsp = [0u8; 64];
    let r = exchange(s, t, &msg, &mut rsp);
    if let IdeKmMessage::KeyProg(k) = &mut msg {
        k.wipe();
    }
    let IdeKmMessage::KpAck(ack) = r? else {
        return Err(Failure::new(
            "IDE_KM: KEY_PROG not answered with KP_ACK",
            EPROTO,
        ));
    };
    if ack.stream_id != stream_id || ack.sub != sub || ack.port_index != 0 {
        return Err(Failure::new(
            "IDE_KM: KP_ACK does not echo the stream, key sub-stream and port of KEY_PROG",
            EPROTO,
        ));
    }
    if ack.status != km::IDE_KM_KP_ACK_SUCCESS {
        return Err(Failure::new(kp_ack_reason(ack.status), EIO));
    }
    Ok(())
}

fn kp_ack_reason(status: u8) -> &'static str {
    match status {
        km::IDE_KM_KP_ACK_INCORRECT_LENGTH => "IDE_KM: KP_ACK status: incorrect length",
        km::IDE_KM_KP_ACK_UNSUPPORTED_PORT => "IDE_KM: KP_ACK status: unsupported port index",
        km::IDE_KM_KP_ACK_UNSUPPORTED_VALUE => "IDE_KM: KP_ACK status: unsupported value",
        km::IDE_KM_KP_ACK_UNSPECIFIED => "IDE_KM: KP_ACK status: unspecified failure",
        _ => "IDE_KM: KP_ACK status: reserved failure code",
    }
}

/// K_SET_GO (`go`) or K_SET_STOP for (`stream_id`, `sub`) on port 0; the K_GOSTOP_ACK must echo
/// the request.
pub(crate) fn key_set(
    s: &mut Session,
    t: &dyn Transport,
    go: bool,
    stream_id: u8,
    sub: KeySubStream,
) -> Result<(), Failure> {
    let cmd = KeySetCmd {
        stream_id,
        sub,
        port_index: 0,
    };
    let msg = if go {
        IdeKmMessage::KSetGo(cmd)
    } else {
        IdeKmMessage::KSetStop(cmd)
    };
    let mut rsp = [0u8; 64];
    let IdeKmMessage::GoStopAck(ack) = exchange(s, t, &msg, &mut rsp)? else {
        return Err(Failure::new(
            "IDE_KM: K_SET_GO/K_SET_STOP not answered with K_GOSTOP_ACK",
            EPROTO,
        ));
    };
    if ack != cmd {
        return Err(Failure::new(
            "IDE_KM: K_GOSTOP_ACK does not echo the stream, key sub-stream and port",
            EPROTO,
        ));
    }
    Ok(())
}
