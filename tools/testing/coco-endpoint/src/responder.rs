//! The emulated endpoint's DOE/SPDM responder: maps one request DOE object to one reply.

use coco_doe::{
    decode_discovery_request, decode_object, encode_discovery_response, encode_object, object_size,
    DiscoveryResponse, DOE_TYPE_CMA, DOE_TYPE_DISCOVERY, DOE_TYPE_SECURED_CMA, PCI_SIG_VENDOR_ID,
};
use coco_spdm::{
    code_name, encode_error_response, encode_version_response, error_code_name, parse_get_version,
    SpdmHeader, SpdmVersion, VersionEntry, SPDM_ERROR_INVALID_REQUEST,
    SPDM_ERROR_UNSUPPORTED_REQUEST, SPDM_ERROR_VERSION_MISMATCH, SPDM_GET_VERSION,
    SPDM_VERSION_1_0, SPDM_VERSION_RESPONSE_MAX_SIZE,
};

use crate::socket::QEMU_MAX_RESPONSE_SIZE;
use crate::Fault;

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The reply DOE object, or `None` if the endpoint must not answer (fault `no-answer`).
    /// When present it is always a well-formed DOE object of at most
    /// [`QEMU_MAX_RESPONSE_SIZE`] bytes.
    pub object: Option<Vec<u8>>,
    /// Log lines describing what was received and answered.
    pub log: Vec<String>,
}

/// One endpoint's SPDM responder state. Create a new one per connection.
#[derive(Debug, Clone)]
pub struct Responder {
    versions: Vec<VersionEntry>,
    fault: Fault,
    /// The version negotiated by NEGOTIATE_ALGORITHMS; always `None` until that is supported,
    /// so ERROR responses carry version 0x10.
    negotiated: Option<SpdmVersion>,
    requests: u64,
    rng: u64,
}

impl Responder {
    /// A responder that offers `versions` (in this order) in VERSION and applies `fault`.
    ///
    /// # Panics
    ///
    /// If `versions` is empty or has more than 255 entries (the CLI rejects both).
    pub fn new(versions: Vec<VersionEntry>, fault: Fault) -> Self {
        assert!(
            (1..=255).contains(&versions.len()),
            "a VERSION response lists 1 to 255 versions"
        );
        Responder {
            versions,
            fault,
            negotiated: None,
            requests: 0,
            rng: 0x9e37_79b9_7f4a_7c15,
        }
    }

    /// Number of requests handled so far.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Handles one request: `request` is the socket payload, which should be one whole DOE
    /// object. Never panics, whatever the input.
    pub fn respond(&mut self, request: &[u8]) -> Reply {
        self.requests += 1;
        let mut log = Vec::new();
        let (object_type, object) = self.answer(request, &mut log);
        let object = match self.fault {
            Fault::None => object,
            Fault::NoAnswer => {
                log.push("fault no-answer: not replying".to_string());
                return Reply { object: None, log };
            }
            Fault::Garbage => {
                let garbage = self.garbage(object_type);
                log.push(format!(
                    "fault garbage: replying a {}-byte DOE object with a random payload",
                    garbage.len()
                ));
                garbage
            }
        };
        // Every reply is built well below the limit; keep QEMU safe even if that changes.
        let object = if object.len() > QEMU_MAX_RESPONSE_SIZE {
            log.push(format!(
                "internal: {}-byte reply exceeds QEMU's {QEMU_MAX_RESPONSE_SIZE}; answering InvalidRequest instead",
                object.len()
            ));
            self.spdm_object(DOE_TYPE_CMA, &self.error(SPDM_ERROR_INVALID_REQUEST, 0))
        } else {
            object
        };
        Reply {
            object: Some(object),
            log,
        }
    }

    /// The SPDMVersion used in ERROR responses: the negotiated one, else 1.0.
    fn error_version(&self) -> SpdmVersion {
        self.negotiated.unwrap_or(SpdmVersion::V1_0)
    }

    /// An SPDM ERROR message.
    fn error(&self, code: u8, data: u8) -> Vec<u8> {
        let mut msg = [0u8; 4];
        let n = encode_error_response(self.error_version(), code, data, &mut msg)
            .expect("4 bytes hold an ERROR without extended data");
        msg[..n].to_vec()
    }

    /// Wraps an SPDM message in a PCI-SIG DOE object of the given type.
    fn spdm_object(&self, object_type: u8, msg: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; object_size(msg.len()).expect("replies are far below 1 MiB")];
        let n = encode_object(PCI_SIG_VENDOR_ID, object_type, msg, &mut out)
            .expect("buffer sized by object_size");
        out.truncate(n);
        out
    }

    /// Answers a malformed request: ERROR InvalidRequest in a CMA object.
    fn invalid(&self, reason: String, log: &mut Vec<String>) -> (u8, Vec<u8>) {
        log.push(format!("{reason}: answering SPDM ERROR InvalidRequest"));
        (
            DOE_TYPE_CMA,
            self.spdm_object(DOE_TYPE_CMA, &self.error(SPDM_ERROR_INVALID_REQUEST, 0)),
        )
    }

    /// Builds the correct answer; returns the DOE type used and the object.
    fn answer(&mut self, request: &[u8], log: &mut Vec<String>) -> (u8, Vec<u8>) {
        let obj = match decode_object(request) {
            Ok(obj) => obj,
            Err(e) => {
                return self.invalid(
                    format!(
                        "malformed DOE object ({} bytes): {}",
                        request.len(),
                        e.as_str()
                    ),
                    log,
                )
            }
        };
        if obj.header.vendor != PCI_SIG_VENDOR_ID {
            return self.invalid(
                format!(
                    "DOE object with vendor {:#06x}, not PCI-SIG",
                    obj.header.vendor
                ),
                log,
            );
        }
        match obj.header.object_type {
            DOE_TYPE_DISCOVERY => self.discovery(obj.payload, log),
            DOE_TYPE_CMA => (DOE_TYPE_CMA, self.spdm(obj.payload, log)),
            DOE_TYPE_SECURED_CMA => self.invalid(
                "secured CMA object (type 2) but no SPDM session is supported yet".to_string(),
                log,
            ),
            t => self.invalid(format!("unknown DOE object type {t}"), log),
        }
    }

    /// DOE Discovery: index 0 = discovery, 1 = CMA, 2 = secured CMA. QEMU answers discovery
    /// itself, so this only serves other clients.
    fn discovery(&self, payload: &[u8], log: &mut Vec<String>) -> (u8, Vec<u8>) {
        let index = match decode_discovery_request(payload) {
            Ok(i) => i,
            Err(e) => {
                return self.invalid(
                    format!("malformed DOE discovery request: {}", e.as_str()),
                    log,
                )
            }
        };
        let (object_type, next_index) = match index {
            0 => (DOE_TYPE_DISCOVERY, 1),
            1 => (DOE_TYPE_CMA, 2),
            _ => (DOE_TYPE_SECURED_CMA, 0),
        };
        log.push(format!(
            "DOE discovery index {index} -> type {object_type}, next {next_index}"
        ));
        let rsp = DiscoveryResponse {
            vendor: PCI_SIG_VENDOR_ID,
            object_type,
            next_index,
        };
        (
            DOE_TYPE_DISCOVERY,
            self.spdm_object(DOE_TYPE_DISCOVERY, &encode_discovery_response(&rsp)),
        )
    }

    /// An SPDM request in a CMA object; returns the reply object.
    fn spdm(&mut self, payload: &[u8], log: &mut Vec<String>) -> Vec<u8> {
        let header = match SpdmHeader::parse(payload) {
            Ok(h) => h,
            Err(_) => {
                return self
                    .invalid(
                        format!(
                            "SPDM message of {} bytes, shorter than its header",
                            payload.len()
                        ),
                        log,
                    )
                    .1
            }
        };
        if header.code != SPDM_GET_VERSION {
            log.push(format!(
                "{} ({:#04x}, version {:#04x}) -> ERROR UnsupportedRequest",
                code_name(header.code),
                header.code,
                header.version
            ));
            return self.spdm_object(
                DOE_TYPE_CMA,
                &self.error(SPDM_ERROR_UNSUPPORTED_REQUEST, header.code),
            );
        }
        let header = match parse_get_version(payload) {
            Ok(h) => h,
            Err(e) => {
                return self
                    .invalid(format!("malformed GET_VERSION: {}", e.as_str()), log)
                    .1
            }
        };
        if header.version != SPDM_VERSION_1_0 {
            log.push(format!(
                "GET_VERSION with version {:#04x} (must be 0x10) -> ERROR {}",
                header.version,
                error_code_name(SPDM_ERROR_VERSION_MISMATCH)
            ));
            return self.spdm_object(DOE_TYPE_CMA, &self.error(SPDM_ERROR_VERSION_MISMATCH, 0));
        }
        // GET_VERSION restarts the connection: nothing is negotiated any more.
        self.negotiated = None;
        let mut msg = [0u8; SPDM_VERSION_RESPONSE_MAX_SIZE];
        let n = encode_version_response(&self.versions, &mut msg)
            .expect("1 to 255 entries fit the buffer");
        let list: Vec<String> = self
            .versions
            .iter()
            .map(|e| format!("{}.{}", e.major(), e.minor()))
            .collect();
        log.push(format!("GET_VERSION -> VERSION [{}]", list.join(", ")));
        self.spdm_object(DOE_TYPE_CMA, &msg[..n])
    }

    /// A well-formed DOE object of `object_type` whose payload is 4 to 64 pseudo-random bytes
    /// (deterministic per responder, so runs are reproducible).
    fn garbage(&mut self, object_type: u8) -> Vec<u8> {
        let len = 4 + (self.next_random() % 61) as usize;
        let payload: Vec<u8> = (0..len).map(|_| self.next_random() as u8).collect();
        self.spdm_object(object_type, &payload)
    }

    /// xorshift64*.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coco_doe::{decode_discovery_response, DoeHeader};
    use coco_spdm::{parse_error_response, parse_version_response, SPDM_GET_CAPABILITIES};

    fn all_versions() -> Vec<VersionEntry> {
        [
            SpdmVersion::V1_0,
            SpdmVersion::V1_1,
            SpdmVersion::V1_2,
            SpdmVersion::V1_3,
        ]
        .map(SpdmVersion::to_entry)
        .to_vec()
    }

    fn cma(msg: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; object_size(msg.len()).unwrap()];
        encode_object(PCI_SIG_VENDOR_ID, DOE_TYPE_CMA, msg, &mut out).unwrap();
        out
    }

    /// Decodes a reply as a CMA object and returns its SPDM payload.
    fn cma_payload(reply: &Reply) -> Vec<u8> {
        let bytes = reply.object.as_ref().expect("a reply");
        let obj = decode_object(bytes).expect("well-formed DOE object");
        assert!(obj.header.is(PCI_SIG_VENDOR_ID, DOE_TYPE_CMA));
        obj.payload.to_vec()
    }

    fn assert_error(reply: &Reply, code: u8, data: u8) {
        let payload = cma_payload(reply);
        let e = parse_error_response(&payload).unwrap();
        assert_eq!((e.version, e.code, e.data), (0x10, code, data), "{reply:?}");
        assert!(e.extended.iter().all(|&b| b == 0));
    }

    #[test]
    fn get_version_answers_version() {
        let mut r = Responder::new(all_versions(), Fault::None);
        let reply = r.respond(&cma(&[0x10, SPDM_GET_VERSION, 0, 0]));
        let payload = cma_payload(&reply);
        let v = parse_version_response(&payload).unwrap();
        assert!(v.entries().eq(all_versions()));
        assert_eq!(
            reply.log,
            vec!["GET_VERSION -> VERSION [1.0, 1.1, 1.2, 1.3]".to_string()]
        );
        assert_eq!(r.requests(), 1);
    }

    #[test]
    fn configured_versions_are_used() {
        let mut r = Responder::new(vec![SpdmVersion::V1_2.to_entry()], Fault::None);
        let payload = cma_payload(&r.respond(&cma(&[0x10, SPDM_GET_VERSION, 0, 0])));
        // 6 + 2 = 8 bytes: no padding needed.
        assert_eq!(payload, [0x10, 0x04, 0, 0, 0, 1, 0x00, 0x12]);
    }

    #[test]
    fn get_version_with_wrong_version_is_version_mismatch() {
        let mut r = Responder::new(all_versions(), Fault::None);
        let reply = r.respond(&cma(&[0x12, SPDM_GET_VERSION, 0, 0]));
        assert_error(&reply, SPDM_ERROR_VERSION_MISMATCH, 0);
    }

    #[test]
    fn other_requests_are_unsupported() {
        let mut r = Responder::new(all_versions(), Fault::None);
        let reply = r.respond(&cma(&[0x12, SPDM_GET_CAPABILITIES, 0, 0, 0, 0, 0, 0]));
        assert_error(
            &reply,
            SPDM_ERROR_UNSUPPORTED_REQUEST,
            SPDM_GET_CAPABILITIES,
        );
        assert!(
            reply.log[0].starts_with("GET_CAPABILITIES (0xe1"),
            "{:?}",
            reply.log
        );
    }

    #[test]
    fn malformed_objects_get_invalid_request() {
        let mut r = Responder::new(all_versions(), Fault::None);
        let good = cma(&[0x10, SPDM_GET_VERSION, 0, 0]);
        let mut wrong_len = good.clone();
        wrong_len[4] = 5;
        let mut wrong_vendor = good.clone();
        wrong_vendor[0] = 0x86;
        let mut unknown_type = good.clone();
        unknown_type[2] = 0x33;
        let mut secured = good.clone();
        secured[2] = DOE_TYPE_SECURED_CMA;
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![], "malformed DOE object (0 bytes)"),
            (good[..7].to_vec(), "malformed DOE object (7 bytes)"),
            (good[..10].to_vec(), "malformed DOE object (10 bytes)"),
            (
                wrong_len,
                "malformed DOE object (12 bytes): DOE length field",
            ),
            (wrong_vendor, "DOE object with vendor 0x0086"),
            (unknown_type, "unknown DOE object type 51"),
            (secured, "secured CMA object"),
            (cma(&[]), "SPDM message of 0 bytes"),
            (
                cma(&[0x10, SPDM_GET_VERSION, 0, 0, 0, 0, 0, 0]),
                "malformed GET_VERSION",
            ),
        ];
        for (req, reason) in cases {
            let reply = r.respond(&req);
            assert_error(&reply, SPDM_ERROR_INVALID_REQUEST, 0);
            assert!(
                reply.log[0].starts_with(reason),
                "{reason}: {:?}",
                reply.log
            );
            assert!(reply.log[0].ends_with("answering SPDM ERROR InvalidRequest"));
        }
    }

    #[test]
    fn discovery_is_answered() {
        let mut r = Responder::new(all_versions(), Fault::None);
        for (index, ty, next) in [(0u8, 0u8, 1u8), (1, 1, 2), (2, 2, 0), (9, 2, 0)] {
            let mut req = vec![0u8; 12];
            encode_object(
                PCI_SIG_VENDOR_ID,
                DOE_TYPE_DISCOVERY,
                &[index, 0, 0, 0],
                &mut req,
            )
            .unwrap();
            let reply = r.respond(&req);
            let bytes = reply.object.unwrap();
            let obj = decode_object(&bytes).unwrap();
            assert!(obj.header.is(PCI_SIG_VENDOR_ID, DOE_TYPE_DISCOVERY));
            let d = decode_discovery_response(obj.payload).unwrap();
            assert_eq!((d.vendor, d.object_type, d.next_index), (1, ty, next));
        }
    }

    #[test]
    fn fault_no_answer() {
        let mut r = Responder::new(all_versions(), Fault::NoAnswer);
        let reply = r.respond(&cma(&[0x10, SPDM_GET_VERSION, 0, 0]));
        assert_eq!(reply.object, None);
        assert!(reply.log.iter().any(|l| l.contains("no-answer")));
    }

    #[test]
    fn fault_garbage_is_well_formed_doe() {
        let mut r = Responder::new(all_versions(), Fault::Garbage);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let reply = r.respond(&cma(&[0x10, SPDM_GET_VERSION, 0, 0]));
            let bytes = reply.object.unwrap();
            let obj = decode_object(&bytes).unwrap();
            assert!(obj.header.is(PCI_SIG_VENDOR_ID, DOE_TYPE_CMA));
            assert!((4..=64).contains(&obj.payload.len()));
            seen.insert(obj.payload.to_vec());
        }
        assert!(seen.len() > 40, "garbage should vary");
    }

    #[test]
    fn arbitrary_input_always_gets_well_formed_reply() {
        let mut r = Responder::new(all_versions(), Fault::None);
        let mut state = 1u64;
        for len in 0..300usize {
            let req: Vec<u8> = (0..len)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (state >> 56) as u8
                })
                .collect();
            let reply = r.respond(&req);
            let bytes = reply.object.unwrap();
            assert!(bytes.len() <= QEMU_MAX_RESPONSE_SIZE);
            let obj = decode_object(&bytes).unwrap();
            assert_eq!(obj.header.vendor, PCI_SIG_VENDOR_ID);
            assert_eq!(
                DoeHeader::decode(&bytes).unwrap().size_bytes(),
                Some(bytes.len())
            );
        }
    }

    #[test]
    fn largest_version_reply_fits_qemu() {
        let entries = vec![SpdmVersion::V1_2.to_entry(); 255];
        let mut r = Responder::new(entries, Fault::None);
        let reply = r.respond(&cma(&[0x10, SPDM_GET_VERSION, 0, 0]));
        let bytes = reply.object.unwrap();
        assert!(bytes.len() <= QEMU_MAX_RESPONSE_SIZE);
        let obj = decode_object(&bytes).unwrap();
        assert_eq!(parse_version_response(obj.payload).unwrap().count(), 255);
    }
}
