//! Splits the L1/L2 transcript into its messages with the coco-spdm codec.
//!
//! For SPDM 1.2 and later the transcript starts with the VCA: GET_VERSION, VERSION,
//! GET_CAPABILITIES, CAPABILITIES, NEGOTIATE_ALGORITHMS, ALGORITHMS; for 1.0 and 1.1 it has
//! only measurement messages. Then come GET_MEASUREMENTS / MEASUREMENTS pairs, the last
//! response without its signature. Each message's length follows from its own fields (fixed
//! sizes per version, the Length field of the algorithm messages, the VERSION entry count, the
//! record and opaque data lengths of MEASUREMENTS); the message is then parsed and validated by
//! the codec on exactly those bytes, so no padding or stray byte can hide between messages.

use coco_spdm::auth::{
    capabilities_size, get_capabilities_size, parse_algorithms, parse_capabilities,
    parse_get_capabilities, parse_negotiate_algorithms, Algorithms,
};
use coco_spdm::meas::{
    get_measurements_size, measurements_overhead, negotiated_measurement_hash,
    parse_get_measurements, parse_measurements, GetMeasurements, Measurements, MeasurementsParams,
    SPDM_MEAS_ATTR_SIGNATURE,
};
use coco_spdm::{
    parse_get_version, parse_version_response, SpdmHeader, SpdmVersion, SPDM_GET_MEASUREMENTS,
    SPDM_GET_VERSION_SIZE, SPDM_NONCE_SIZE, SPDM_VERSION_ENTRY_SIZE,
    SPDM_VERSION_RESPONSE_FIXED_SIZE,
};

/// One GET_MEASUREMENTS / MEASUREMENTS pair of the transcript.
#[derive(Debug)]
pub struct Exchange<'a> {
    /// Offset of the request in the transcript.
    pub offset: usize,
    /// The request.
    pub request: GetMeasurements,
    /// The response (for the last one, without its signature).
    pub response: Measurements<'a>,
}

/// The parsed transcript.
#[derive(Debug)]
pub struct Transcript<'a> {
    /// ALGORITHMS of the VCA (1.2+).
    pub algorithms: Option<Algorithms>,
    /// The measurement exchanges, in order; the last is the signed one.
    pub exchanges: Vec<Exchange<'a>>,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Takes the next message of `len` bytes (`what` names it in errors).
    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], String> {
        if self.rest().len() < len {
            let needed = if len == usize::MAX {
                "its length field is cut off".to_string()
            } else {
                format!("{len} bytes needed")
            };
            return Err(format!(
                "transcript ends inside {what} at offset {} ({needed}, {} left)",
                self.pos,
                self.rest().len()
            ));
        }
        let m = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(m)
    }

    /// Byte `i` of the rest, if present.
    fn peek(&self, i: usize) -> Option<u8> {
        self.rest().get(i).copied()
    }

    /// The little-endian u16 at `i` of the rest.
    fn peek_u16(&self, i: usize) -> Option<usize> {
        Some(usize::from(u16::from_le_bytes([
            self.peek(i)?,
            self.peek(i + 1)?,
        ])))
    }
}

fn codec<E: std::fmt::Display>(what: &'static str, at: usize) -> impl Fn(E) -> String {
    move |e| format!("transcript: {what} at offset {at}: {e}")
}

fn check_version(msg: &[u8], v: SpdmVersion, what: &str, at: usize) -> Result<(), String> {
    match msg.first() {
        Some(b) if *b == v.as_byte() => Ok(()),
        Some(b) => Err(format!(
            "transcript: {what} at offset {at} has SPDM version {}.{}, the reading says {}.{}",
            b >> 4,
            b & 0xF,
            v.major(),
            v.minor()
        )),
        None => Err(format!("transcript: empty {what} at offset {at}")),
    }
}

/// Length of the MEASUREMENTS (without signature) at the start of `rest`.
fn measurements_len(rest: &[u8], v: SpdmVersion) -> Option<usize> {
    let rec = usize::from(*rest.get(5)?)
        | usize::from(*rest.get(6)?) << 8
        | usize::from(*rest.get(7)?) << 16;
    let opaque_at = 8usize.checked_add(rec)?.checked_add(SPDM_NONCE_SIZE)?;
    let opaque = usize::from(u16::from_le_bytes([
        *rest.get(opaque_at)?,
        *rest.get(opaque_at + 1)?,
    ]));
    rec.checked_add(measurements_overhead(v, opaque, 0))
}

/// Parses `t` as the L1/L2 transcript of an SPDM `v` connection.
pub fn parse(t: &[u8], v: SpdmVersion) -> Result<Transcript<'_>, String> {
    let mut c = Cursor { buf: t, pos: 0 };
    let mut algorithms = None;
    let mut meas_hash = None;
    if v >= SpdmVersion::V1_2 {
        let at = c.pos;
        let m = c.take(SPDM_GET_VERSION_SIZE, "GET_VERSION")?;
        parse_get_version(m).map_err(codec("GET_VERSION", at))?;

        let at = c.pos;
        let count = c.peek(5).map(usize::from).unwrap_or(0);
        let len = SPDM_VERSION_RESPONSE_FIXED_SIZE + SPDM_VERSION_ENTRY_SIZE * count;
        let m = c.take(len, "VERSION")?;
        let vr = parse_version_response(m).map_err(codec("VERSION", at))?;
        if !vr.entries().any(|e| e.version() == v) {
            return Err(format!(
                "transcript: VERSION at offset {at} does not offer SPDM {}.{}",
                v.major(),
                v.minor()
            ));
        }

        let at = c.pos;
        let m = c.take(get_capabilities_size(v), "GET_CAPABILITIES")?;
        check_version(m, v, "GET_CAPABILITIES", at)?;
        parse_get_capabilities(m).map_err(codec("GET_CAPABILITIES", at))?;

        let at = c.pos;
        let m = c.take(capabilities_size(v), "CAPABILITIES")?;
        let caps = parse_capabilities(m, v).map_err(codec("CAPABILITIES", at))?;
        // MEAS_CAP 2: measurements with signature.
        if caps.meas_cap() != 2 {
            return Err(format!(
                "transcript: CAPABILITIES at offset {at} announce MEAS_CAP {}, not signed measurements",
                caps.meas_cap()
            ));
        }

        let at = c.pos;
        let len = c.peek_u16(4).unwrap_or(usize::MAX);
        let m = c.take(len, "NEGOTIATE_ALGORITHMS")?;
        check_version(m, v, "NEGOTIATE_ALGORITHMS", at)?;
        let na = parse_negotiate_algorithms(m).map_err(codec("NEGOTIATE_ALGORITHMS", at))?;

        let at = c.pos;
        let len = c.peek_u16(4).unwrap_or(usize::MAX);
        let m = c.take(len, "ALGORITHMS")?;
        let alg = parse_algorithms(m, v).map_err(codec("ALGORITHMS", at))?;
        alg.check_against(&na, true)
            .map_err(codec("ALGORITHMS (against NEGOTIATE_ALGORITHMS)", at))?;
        meas_hash = negotiated_measurement_hash(&alg, caps.meas_cap())
            .map_err(codec("ALGORITHMS (measurement part)", at))?;
        algorithms = Some(alg);
    }

    let mut exchanges = Vec::new();
    while !c.rest().is_empty() {
        let at = c.pos;
        let header = SpdmHeader::parse(c.rest()).map_err(codec("message", at))?;
        if header.code != SPDM_GET_MEASUREMENTS {
            return Err(format!(
                "transcript: expected GET_MEASUREMENTS at offset {at}, found request code {:#04x}",
                header.code
            ));
        }
        let signed = header.param1 & SPDM_MEAS_ATTR_SIGNATURE != 0;
        let m = c.take(get_measurements_size(v, signed), "GET_MEASUREMENTS")?;
        check_version(m, v, "GET_MEASUREMENTS", at)?;
        let request = parse_get_measurements(m).map_err(codec("GET_MEASUREMENTS", at))?;

        let rat = c.pos;
        if c.rest().is_empty() {
            return Err(format!(
                "transcript: GET_MEASUREMENTS at offset {at} has no MEASUREMENTS"
            ));
        }
        let len = measurements_len(c.rest(), v).unwrap_or(usize::MAX);
        let m = c.take(len, "MEASUREMENTS")?;
        let params = MeasurementsParams {
            version: v,
            signed: false,
            signature_size: 0,
            measurement_hash_size: meas_hash,
        };
        let response = parse_measurements(m, &params).map_err(codec("MEASUREMENTS", rat))?;
        response
            .check(&request)
            .map_err(codec("MEASUREMENTS", rat))?;
        exchanges.push(Exchange {
            offset: at,
            request,
            response,
        });
    }
    let Some(last) = exchanges.last() else {
        return Err("transcript: no GET_MEASUREMENTS".to_string());
    };
    if !last.request.signature_requested() {
        return Err(format!(
            "transcript: the last GET_MEASUREMENTS (offset {}) did not ask for a signature",
            last.offset
        ));
    }
    if let Some(e) = exchanges[..exchanges.len() - 1]
        .iter()
        .find(|e| e.request.signature_requested())
    {
        return Err(format!(
            "transcript: GET_MEASUREMENTS at offset {} asked for a signature, but L1/L2 must \
             restart after every signed response",
            e.offset
        ));
    }
    Ok(Transcript {
        algorithms,
        exchanges,
    })
}
