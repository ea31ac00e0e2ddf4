// SPDX-License-Identifier: GPL-2.0

//! Connecting to a device: authenticate → measure → secure session, on one SPDM connection.
//!
//! The protocol steps (`requester::{auth, meas, session}`) each do one thing over a [`Conn`];
//! this module runs them in order and checks what ties them together: the measurement summary
//! hash that CHALLENGE_AUTH and KEY_EXCHANGE_RSP sign must match the blocks read on the same
//! connection. It knows nothing of the per-device state that calls it (`device.rs`).

use crate::{
    channel::{Conn, Failure, Transport},
    requester::{
        auth::{self, AuthInfo, Negotiated, SLOTS},
        meas::{self, MeasInfo},
        session::{self, Session},
    },
    spdm::{self, SpdmVersion},
};
use kernel::{
    prelude::*,
    time::{Instant, Monotonic},
};

/// What a connection is asked to do.
pub(crate) struct Policy<'a> {
    /// How the device is authenticated.
    pub(crate) auth: auth::Policy<'a>,
    /// Read the measurements after the authentication, with this nonce if given (else a random
    /// one).
    pub(crate) measure: Option<Option<[u8; spdm::SPDM_NONCE_SIZE]>>,
}

/// Requests, bytes and time of one step, for the log and `make bench`.
#[derive(Clone, Copy, Default)]
pub(crate) struct Stats {
    pub(crate) exchanges: usize,
    pub(crate) tx_bytes: usize,
    pub(crate) rx_bytes: usize,
    pub(crate) elapsed_us: u64,
}

/// What a connection established, step by step.
#[derive(Default)]
pub(crate) struct Outcome {
    /// The authentication (its details in `auth`, also on failure).
    pub(crate) auth: AuthInfo,
    /// The measurements, or why they could not be read; `None` if not asked for or not reached.
    pub(crate) meas: Option<Result<MeasInfo, Failure>>,
    pub(crate) meas_stats: Stats,
    /// The secure session, or why it failed; `None` if not attempted.
    pub(crate) session: Option<Result<Session, Failure>>,
    /// Why no session can be had although the device supports sessions.
    pub(crate) session_unavailable: Option<&'static str>,
    /// SPDM exchanges (in the clear and secured) and time of the session setup.
    pub(crate) session_stats: Stats,
}

/// Connects to the device over `t`, whose GET_VERSION and VERSION (as exchanged) are `vca` and
/// whose VERSION entries are `versions`: authenticates it (with the chains of `cache` where
/// their digests are unchanged), then reads its measurements and establishes a secure session
/// as `policy` and the device allow. Returns the authentication's result and what each step
/// established.
pub(crate) fn connect(
    t: &dyn Transport,
    vca: &[u8],
    versions: &[u16],
    cache: [KVec<u8>; SLOTS],
    policy: &Policy<'_>,
) -> (Result<(), Failure>, Outcome) {
    let mut out = Outcome::default();
    let a = match auth::authenticate(t, vca, versions, cache, &policy.auth, &mut out.auth) {
        Ok(a) => a,
        Err(f) => return (Err(f), out),
    };
    let auth::Authenticated {
        mut conn,
        neg,
        slot,
        verifier,
    } = a;
    if let Some(nonce) = policy.measure {
        let (m, stats) = step(&mut conn, |c| {
            meas::measure(c, &neg, slot, &verifier, nonce).and_then(|m| {
                match out.auth.summary {
                    Some((s, n)) => meas::check_summary(
                        s.get(..n).unwrap_or(&[]),
                        &m,
                        &neg,
                        "measurement summary hash of CHALLENGE_AUTH does not match the measurements read",
                    )
                    .map(|()| m),
                    None => Ok(m),
                }
            })
        });
        out.meas = Some(m);
        out.meas_stats = stats;
    }
    out.session_unavailable = out.auth.session_unavailable;
    if policy.auth.session && neg.key_ex {
        if neg.dhe == 0 || neg.aead == 0 || !neg.key_schedule_spdm {
            out.session_unavailable =
                Some("device selected no DHE group, AEAD or SPDM key schedule");
        } else if neg.version >= SpdmVersion::V1_1 {
            let chain = out
                .auth
                .chains
                .get(usize::from(slot))
                .map(|c| &c[..])
                .unwrap_or(&[]);
            let summary = session::Summary {
                want: auth::want_summary(&neg, &out.auth),
                meas: out.meas.as_ref().and_then(|m| m.as_ref().ok()),
            };
            let mut secured = 0;
            let (s, mut stats) = step(&mut conn, |c| {
                prove_session(c, &neg, slot, chain, &verifier, summary, &mut secured)
            });
            stats.exchanges = stats.exchanges.saturating_add(secured);
            out.session = Some(s);
            out.session_stats = stats;
        }
    }
    (Ok(()), out)
}

/// Runs `f` on `c` and counts what it exchanged in the clear and how long it took.
fn step<'t, R>(c: &mut Conn<'t>, f: impl FnOnce(&mut Conn<'t>) -> R) -> (R, Stats) {
    let (n, tx, rx) = (c.count, c.tx, c.rx_bytes);
    let start = Instant::<Monotonic>::now();
    let r = f(c);
    let stats = Stats {
        exchanges: c.count.saturating_sub(n),
        tx_bytes: c.tx.saturating_sub(tx),
        rx_bytes: c.rx_bytes.saturating_sub(rx),
        elapsed_us: u64::try_from(start.elapsed().as_micros_ceil()).unwrap_or(0),
    };
    (r, stats)
}

/// Establishes a session with the authenticated `slot` and proves it: one application request
/// (GET_DIGESTS), a KEY_UPDATE of the request key, one of both keys and a HEARTBEAT inside it.
/// `secured` receives the number of secured messages sent.
fn prove_session(
    c: &mut Conn<'_>,
    neg: &Negotiated,
    slot: u8,
    chain: &[u8],
    verifier: &crate::crypto::Verifier,
    summary: session::Summary<'_>,
    secured: &mut usize,
) -> Result<Session, Failure> {
    let mut s = session::establish(c, neg, slot, chain, verifier, summary, secured)?;
    let t = c.transport();
    let r = s
        .probe_app(t)
        .and_then(|()| s.key_update(t, false))
        .and_then(|()| s.key_update(t, true))
        .and_then(|()| s.heartbeat(t));
    *secured = s.info().messages;
    r.map(|()| s)
}
