// SPDX-License-Identifier: GPL-2.0

//! The native IDE backend: coco.ko secures a device's link itself, over its own SPDM session.
//!
//! [`connect`] learns the endpoint's IDE through IDE_KM QUERY, lets the PCI core allocate a
//! Selective IDE Stream (register blocks on both ends, a slot of the host bridge's pool whose
//! index is also the Stream ID), writes both ends' stream registers, programs fresh keys from
//! the kernel's RNG into the endpoint (IDE_KM KEY_PROG) and the root port ([`RootPortKeys`]),
//! starts them in the order of [`KEY_STEPS`] and enables the endpoint, then the root port;
//! each must read Secure right after (`pci_ide_stream_enable()`). Keys live on the stack of
//! [`connect`] only and are zeroed before it returns; they never reach a log, sysfs or a
//! uevent. [`IdeLink::refresh`] replaces the keys without taking the stream down, and
//! [`IdeLink::disconnect`] undoes it all.

pub(crate) mod rootport;
pub(crate) mod tdi;

use crate::{
    channel::{Failure, Transport},
    idekm::{Direction, KeySubStream, SubStream, IDE_KM_IFV_SIZE, IDE_KM_KEY_SIZE},
    requester::{idekm, session::Session},
};
use kernel::{
    bindings,
    pci::{
        self,
        ide::{Partner, Stream, STATE_SECURE, STATUS_FAIL},
    },
    prelude::*,
};
use rootport::{CocoVsec, KeySlot, RootPortKeys};

/// One step of putting a key set into use on both ends of a stream. Directions are each
/// end's own: the endpoint's RX key is the root port's TX key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyStep {
    /// KEY_PROG to the endpoint.
    EndpointProgram(Direction, SubStream),
    /// The root port's key interface: program.
    RootPortProgram(Direction, SubStream),
    /// K_SET_GO to the endpoint.
    EndpointGo(Direction, SubStream),
    /// The root port's key interface: go.
    RootPortGo(Direction, SubStream),
}

/// The order in which a key set is put into use: every key programmed on both ends first, then
/// the receivers put in go before the transmitters (so that no packet arrives under a key its
/// receiver does not hold yet), the endpoint before the root port within each group. A refresh
/// runs the same steps with the other key set (a receiver holds both sets in go; each TLP says
/// which one it was sent with) and stops the old set once every transmitter has switched.
pub(crate) const KEY_STEPS: [KeyStep; 24] = {
    use Direction::{Rx, Tx};
    use KeyStep::*;
    use SubStream::{Cpl, Npr, Pr};
    [
        EndpointProgram(Rx, Pr),
        EndpointProgram(Rx, Npr),
        EndpointProgram(Rx, Cpl),
        EndpointProgram(Tx, Pr),
        EndpointProgram(Tx, Npr),
        EndpointProgram(Tx, Cpl),
        RootPortProgram(Rx, Pr),
        RootPortProgram(Rx, Npr),
        RootPortProgram(Rx, Cpl),
        RootPortProgram(Tx, Pr),
        RootPortProgram(Tx, Npr),
        RootPortProgram(Tx, Cpl),
        EndpointGo(Rx, Pr),
        EndpointGo(Rx, Npr),
        EndpointGo(Rx, Cpl),
        RootPortGo(Rx, Pr),
        RootPortGo(Rx, Npr),
        RootPortGo(Rx, Cpl),
        EndpointGo(Tx, Pr),
        EndpointGo(Tx, Npr),
        EndpointGo(Tx, Cpl),
        RootPortGo(Tx, Pr),
        RootPortGo(Tx, Npr),
        RootPortGo(Tx, Cpl),
    ]
};

impl KeyStep {
    /// Whether the step puts a transmitter's key set in go (from then on the link depends on
    /// the new set).
    fn is_transmitter_go(self) -> bool {
        matches!(
            self,
            KeyStep::EndpointGo(Direction::Tx, _) | KeyStep::RootPortGo(Direction::Tx, _)
        )
    }
}

/// One key and its IFV, zeroed on drop.
struct KeyMaterial {
    key: [u8; IDE_KM_KEY_SIZE],
    ifv: [u8; IDE_KM_IFV_SIZE],
}

impl KeyMaterial {
    fn random() -> Self {
        let mut k = KeyMaterial {
            key: [0; IDE_KM_KEY_SIZE],
            ifv: [0; IDE_KM_IFV_SIZE],
        };
        // SAFETY: Both buffers are valid for writes of their length.
        unsafe {
            bindings::get_random_bytes(k.key.as_mut_ptr().cast(), k.key.len());
            bindings::get_random_bytes(k.ifv.as_mut_ptr().cast(), k.ifv.len());
        }
        k
    }
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        self.key.fill(0);
        self.ifv.fill(0);
        core::hint::black_box(&mut self.key);
        core::hint::black_box(&mut self.ifv);
    }
}

/// The keys of one key set: per sub-stream, the downstream key (root port TX, endpoint RX) and
/// the upstream key (endpoint TX, root port RX).
struct KeySet {
    down: [KeyMaterial; 3],
    up: [KeyMaterial; 3],
}

impl KeySet {
    fn random() -> Self {
        KeySet {
            down: [
                KeyMaterial::random(),
                KeyMaterial::random(),
                KeyMaterial::random(),
            ],
            up: [
                KeyMaterial::random(),
                KeyMaterial::random(),
                KeyMaterial::random(),
            ],
        }
    }

    /// The key the endpoint uses in its direction `dir` for `sub`.
    fn endpoint(&self, dir: Direction, sub: SubStream) -> &KeyMaterial {
        let i = usize::from(sub.index()).min(2);
        match dir {
            Direction::Rx => &self.down[i],
            Direction::Tx => &self.up[i],
        }
    }

    /// The key the root port uses in its direction `dir` for `sub`: the endpoint's opposite.
    fn root_port(&self, dir: Direction, sub: SubStream) -> &KeyMaterial {
        self.endpoint(dir.opposite(), sub)
    }
}

/// A Selective IDE Stream this backend set up, with the root port's key interface.
pub(crate) struct IdeLink {
    stream: Stream,
    rp: CocoVsec,
    /// The key set every transmitter uses.
    key_set: u8,
    /// Key refreshes completed on this stream.
    refreshes: u32,
}

/// Why a key refresh failed, and what it left.
pub(crate) struct RefreshFailure {
    pub(crate) failure: Failure,
    /// The link is still secured by the old key set (the failure came before any transmitter
    /// switched, and the new set was stopped again); otherwise the caller takes it down.
    pub(crate) link_kept: bool,
}

/// What a link's ends read now (status registers, not remembered state).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinkState {
    pub(crate) stream_id: u8,
    pub(crate) key_set: u8,
    pub(crate) refreshes: u32,
    pub(crate) endpoint: EndState,
    pub(crate) root_port: EndState,
}

/// One end's Selective IDE Stream Status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EndState {
    Secure,
    Insecure,
    /// Insecure with the integrity-check failure ("IDE Fail Message") latched.
    IntegrityFailure,
    /// The register could not be read (the function is gone).
    Unknown,
}

impl EndState {
    fn from_status(sts: Result<u32>) -> Self {
        match sts {
            Ok(v) if v & STATUS_FAIL != 0 => EndState::IntegrityFailure,
            Ok(v) if v & 0xF == STATE_SECURE => EndState::Secure,
            Ok(_) => EndState::Insecure,
            Err(_) => EndState::Unknown,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            EndState::Secure => "secure",
            EndState::Insecure => "insecure",
            EndState::IntegrityFailure => "integrity-failure",
            EndState::Unknown => "unknown",
        }
    }
}

/// The root port's key slot for (`stream_id`, `dir`, `sub`, `key_set`).
fn slot(stream_id: u8, dir: Direction, sub: SubStream, key_set: u8) -> KeySlot {
    KeySlot {
        stream_id,
        dir,
        sub,
        key_set,
    }
}

/// Runs one key step for `stream_id` and key set `set` with `keys`.
fn run_step(
    step: KeyStep,
    s: &mut Session,
    t: &dyn Transport,
    rp: &dyn RootPortKeys,
    stream_id: u8,
    set: u8,
    keys: &KeySet,
) -> Result<(), Failure> {
    match step {
        KeyStep::EndpointProgram(d, ss) => {
            let k = keys.endpoint(d, ss);
            idekm::key_prog(
                s,
                t,
                stream_id,
                KeySubStream::new(set, d, ss),
                &k.key,
                &k.ifv,
            )
        }
        KeyStep::RootPortProgram(d, ss) => {
            let k = keys.root_port(d, ss);
            rp.program(slot(stream_id, d, ss, set), &k.key, &k.ifv)
        }
        KeyStep::EndpointGo(d, ss) => {
            idekm::key_set(s, t, true, stream_id, KeySubStream::new(set, d, ss))
        }
        KeyStep::RootPortGo(d, ss) => rp.go(slot(stream_id, d, ss, set)),
    }
}

/// Takes key set `set` of `stream_id` out of use on both ends, best effort (the endpoint only
/// with a session): K_SET_STOP and the root port's stop for all six pairs.
fn stop_keys(
    session: Option<(&mut Session, &dyn Transport)>,
    rp: &dyn RootPortKeys,
    stream_id: u8,
    set: u8,
) {
    if let Some((s, t)) = session {
        for d in Direction::ALL {
            for ss in SubStream::ALL {
                if !s.is_open() {
                    break;
                }
                let _ = idekm::key_set(s, t, false, stream_id, KeySubStream::new(set, d, ss));
            }
        }
    }
    for d in Direction::ALL {
        for ss in SubStream::ALL {
            let _ = rp.stop(slot(stream_id, d, ss, set));
        }
    }
}

/// Secures the link of the endpoint `ep` with a new Selective IDE Stream (see the module
/// documentation), over the session `s`.
pub(crate) fn connect(
    ep: &pci::Device,
    s: &mut Session,
    t: &dyn Transport,
) -> Result<IdeLink, Failure> {
    if !ep.has_ide() {
        return Err(Failure::new(
            "no IDE: the PCI core found no usable IDE capability (none on the function, or none on its root port)",
            EOPNOTSUPP,
        ));
    }
    let port = idekm::query(s, t)?;
    if port.selective_streams == 0 {
        return Err(Failure::new(
            "IDE_KM: QUERY_RESP reports no Selective IDE stream",
            EOPNOTSUPP,
        ));
    }
    let rp_dev = ep
        .root_port()
        .ok_or(Failure::new("no root port above the function", ENODEV))?;
    let rp = CocoVsec::find(&rp_dev).ok_or(Failure::new(
        "root port: no key-programming interface the native backend knows",
        EOPNOTSUPP,
    ))?;
    let mut stream = Stream::alloc(ep).map_err(|_| {
        Failure::new(
            "no free Selective IDE stream (endpoint, root port or host bridge)",
            ENOSPC,
        )
    })?;
    // The platform owns Stream IDs; the host bridge slot's index is unique under it. 255 is
    // the PCI core's "never enabled" placeholder.
    let stream_id = stream.host_bridge_stream();
    if stream_id == u8::MAX {
        return Err(Failure::new(
            "no Stream ID left under the host bridge",
            ENOSPC,
        ));
    }
    stream
        .register(stream_id)
        .map_err(|e| Failure::new("cannot register the IDE stream (Stream ID in use?)", e))?;
    for p in [Partner::Endpoint, Partner::RootPort] {
        stream
            .setup(p)
            .map_err(|e| Failure::new("cannot set the IDE stream's registers up", e))?;
    }
    let link = IdeLink {
        stream,
        rp,
        key_set: 0,
        refreshes: 0,
    };
    // On any failure from here, the keys programmed so far are stopped and dropping `link`
    // releases the stream (disable, teardown, unregister, free).
    let keys = KeySet::random();
    for step in KEY_STEPS {
        if let Err(f) = run_step(step, s, t, &link.rp, stream_id, 0, &keys) {
            drop(keys);
            stop_keys(Some((&mut *s, t)), &link.rp, stream_id, 0);
            return Err(f);
        }
    }
    drop(keys);
    let mut link = link;
    for (p, why) in [
        (
            Partner::Endpoint,
            "the endpoint's IDE stream is not Secure after enable",
        ),
        (
            Partner::RootPort,
            "the root port's IDE stream is not Secure after enable",
        ),
    ] {
        if link.stream.enable(p).is_err() {
            // Once both ends are enabled the link is checked: a failure latched on the (still
            // enabled) endpoint means the two ends' keys differ.
            let why = match link.stream.status(Partner::Endpoint) {
                Ok(sts) if p == Partner::RootPort && sts & STATUS_FAIL != 0 => {
                    "IDE integrity check failure once both ends were enabled: the link's keys differ"
                }
                _ => why,
            };
            link.stream.disable(Partner::Endpoint);
            stop_keys(Some((&mut *s, t)), &link.rp, stream_id, 0);
            return Err(Failure::new(why, ENXIO));
        }
    }
    Ok(link)
}

impl IdeLink {
    /// The Stream ID.
    pub(crate) fn stream_id(&self) -> u8 {
        self.stream.stream_id().unwrap_or(u8::MAX)
    }

    /// The stream's name under the host bridge, `stream<H>.<R>.<E>`: (H, R, E).
    pub(crate) fn name(&self) -> (u8, u8, u8) {
        (
            self.stream.host_bridge_stream(),
            self.stream.block(Partner::RootPort),
            self.stream.block(Partner::Endpoint),
        )
    }

    /// The link's state; with `read_ends`, both ends' as their status registers read now
    /// (otherwise [`EndState::Unknown`]).
    pub(crate) fn state(&self, read_ends: bool) -> LinkState {
        let end = |p| {
            if read_ends {
                EndState::from_status(self.stream.status(p))
            } else {
                EndState::Unknown
            }
        };
        LinkState {
            stream_id: self.stream_id(),
            key_set: self.key_set,
            refreshes: self.refreshes,
            endpoint: end(Partner::Endpoint),
            root_port: end(Partner::RootPort),
        }
    }

    /// Replaces the stream's keys while it stays Secure: fresh keys in the other key set,
    /// through [`KEY_STEPS`] (programmed on both ends, in go on the receivers, then on the
    /// transmitters), then the old set stopped on both ends. A failure before any transmitter
    /// switched stops the new set again and leaves the link on the old one; a later failure
    /// leaves a link the caller must take down (see [`RefreshFailure`]).
    pub(crate) fn refresh(
        &mut self,
        s: &mut Session,
        t: &dyn Transport,
    ) -> Result<(), RefreshFailure> {
        let id = self.stream_id();
        let old = self.key_set;
        let new = old ^ 1;
        let keys = KeySet::random();
        for step in KEY_STEPS {
            if let Err(failure) = run_step(step, s, t, &self.rp, id, new, &keys) {
                drop(keys);
                // Until a transmitter switches, the old set secures the link alone.
                let link_kept = !step.is_transmitter_go();
                if link_kept {
                    stop_keys(Some((&mut *s, t)), &self.rp, id, new);
                }
                return Err(RefreshFailure { failure, link_kept });
            }
        }
        drop(keys);
        self.key_set = new;
        stop_keys(Some((&mut *s, t)), &self.rp, id, old);
        let st = self.state(true);
        if st.endpoint != EndState::Secure || st.root_port != EndState::Secure {
            return Err(RefreshFailure {
                failure: Failure::new(
                    "the IDE stream is not Secure on both ends after the key refresh",
                    ENXIO,
                ),
                link_kept: false,
            });
        }
        self.refreshes = self.refreshes.saturating_add(1);
        Ok(())
    }

    /// Takes the stream down: both ends disabled (root port first, the reverse of enabling),
    /// the keys stopped (the endpoint's only with its `session`), the registers cleared and the
    /// stream released.
    pub(crate) fn disconnect(mut self, session: Option<(&mut Session, &dyn Transport)>) {
        let id = self.stream_id();
        self.stream.disable(Partner::RootPort);
        self.stream.disable(Partner::Endpoint);
        stop_keys(session, &self.rp, id, self.key_set);
        drop(self);
    }
}

#[kunit_tests(coco_native)]
mod tests {
    use super::*;

    /// A firmware TSM's interface report: its length from its own fields (range count at
    /// 12, 16-byte ranges from 16, then the device-specific length), never past the buffer.
    #[test]
    fn report_length_from_its_fields() {
        let mut r = [0u8; 64];
        // One range, 2 bytes of device-specific information: 16 + 16 + 4 + 2.
        r[12] = 1;
        r[32] = 2;
        assert_eq!(tdi::report_len(&r), Some(38));
        assert_eq!(tdi::report_len(&r[..38]), Some(38));
        assert_eq!(tdi::report_len(&r[..37]), None);
        // A range count that runs past the buffer, or overflows.
        r[12] = 0xff;
        assert_eq!(tdi::report_len(&r), None);
        r[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(tdi::report_len(&r), None);
        assert_eq!(tdi::report_len(&[]), None);
    }

    fn position(step: KeyStep) -> usize {
        KEY_STEPS
            .iter()
            .position(|s| *s == step)
            .unwrap_or(usize::MAX)
    }

    /// Every (end, direction, sub-stream) is programmed once and put in go once.
    #[test]
    fn every_pair_once() {
        for d in Direction::ALL {
            for ss in SubStream::ALL {
                for step in [
                    KeyStep::EndpointProgram(d, ss),
                    KeyStep::RootPortProgram(d, ss),
                    KeyStep::EndpointGo(d, ss),
                    KeyStep::RootPortGo(d, ss),
                ] {
                    assert_eq!(KEY_STEPS.iter().filter(|s| **s == step).count(), 1);
                }
            }
        }
    }

    /// No key is put in go before every key of the set is programmed on both ends.
    #[test]
    fn programmed_before_any_go() {
        let last_program = KEY_STEPS
            .iter()
            .rposition(|s| {
                matches!(
                    s,
                    KeyStep::EndpointProgram(..) | KeyStep::RootPortProgram(..)
                )
            })
            .unwrap_or(usize::MAX);
        let first_go = KEY_STEPS
            .iter()
            .position(|s| matches!(s, KeyStep::EndpointGo(..) | KeyStep::RootPortGo(..)))
            .unwrap_or(0);
        assert!(last_program < first_go);
    }

    /// For each link direction and sub-stream, the receiver goes before the transmitter:
    /// downstream the endpoint's RX before the root port's TX, upstream the root port's RX
    /// before the endpoint's TX.
    #[test]
    fn receivers_before_transmitters() {
        for ss in SubStream::ALL {
            assert!(
                position(KeyStep::EndpointGo(Direction::Rx, ss))
                    < position(KeyStep::RootPortGo(Direction::Tx, ss))
            );
            assert!(
                position(KeyStep::RootPortGo(Direction::Rx, ss))
                    < position(KeyStep::EndpointGo(Direction::Tx, ss))
            );
        }
    }

    /// Every receiver holds the new key set in go before any transmitter switches to it, so a
    /// refresh never sends a packet its receiver cannot check.
    #[test]
    fn every_receiver_before_any_transmitter() {
        let last_rx = KEY_STEPS
            .iter()
            .rposition(|s| {
                matches!(
                    s,
                    KeyStep::EndpointGo(Direction::Rx, _) | KeyStep::RootPortGo(Direction::Rx, _)
                )
            })
            .unwrap_or(usize::MAX);
        let first_tx = KEY_STEPS
            .iter()
            .position(|s| s.is_transmitter_go())
            .unwrap_or(0);
        assert!(last_rx < first_tx);
        assert_eq!(
            KEY_STEPS.iter().filter(|s| s.is_transmitter_go()).count(),
            6
        );
    }

    /// The root port's key for a direction is the endpoint's key for the other one.
    #[test]
    fn root_port_keys_mirror_the_endpoint() {
        let keys = KeySet::random();
        for d in Direction::ALL {
            for ss in SubStream::ALL {
                assert_eq!(
                    keys.root_port(d, ss).key,
                    keys.endpoint(d.opposite(), ss).key
                );
                assert_ne!(
                    keys.endpoint(d, ss).key,
                    keys.endpoint(d.opposite(), ss).key
                );
            }
        }
    }
}
