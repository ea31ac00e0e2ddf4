//! An in-process "host + QEMU" for the firmware model: fake physical memory, a fake root port
//! key store recording every ROOT_PORT_KEY, and a host driver that relays SPDM to an
//! in-process coco-endpoint responder.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use coco_doe::{decode_object, encode_object, object_size, PCI_SIG_VENDOR_ID};
use coco_endpoint::pki::{
    build_identity, ChainFault, Identity, KeyKind, PkiOptions, DEFAULT_CMA_ID,
};
use coco_endpoint::platform::PLATFORM_IDE_KEYS;
use coco_endpoint::{Fault as EpFault, Responder};
use coco_psp::psp::Psp;
use coco_psp::wire::{Fatal, Platform, RootPortKey, RP_OP_GO, RP_OP_PROGRAM, RP_OP_STOP};
use coco_psp::{Fault, Logger};
use coco_sevtio::*;
use coco_spdm::SpdmVersion;
use sha2::{Digest, Sha256};

/// Size of the fake physical memory.
pub const MEM: usize = 0x20_0000;
pub const CMD: u64 = 0x1000;
pub const STATUS: u64 = 0x2000;
pub const DEV_CTX: u64 = 0x3000;
pub const DEV_CTX2: u64 = 0x4000;
pub const REQ: u64 = 0x10000;
/// The response buffer: a scatter list at RESP_LIST of 4 pages at RESP.
pub const RESP_LIST: u64 = 0x11000;
pub const RESP: u64 = 0x12000;
/// The output buffer: one 4 KiB page, or a scatter list of pages after OUT_PAGES.
pub const OUT: u64 = 0x20000;
pub const OUT_LIST: u64 = 0x21000;
pub const OUT_PAGES: u64 = 0x30000;
pub const RID: u16 = 0x0100;

pub fn identity(key: KeyKind) -> Arc<Identity> {
    static IDS: OnceLock<Mutex<HashMap<String, Arc<Identity>>>> = OnceLock::new();
    let ids = IDS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut ids = ids.lock().unwrap();
    Arc::clone(ids.entry(key.name().to_string()).or_insert_with(|| {
        Arc::new(
            build_identity(&PkiOptions {
                dir: None,
                key,
                slots: vec![0, 1],
                cma_id: DEFAULT_CMA_ID.to_string(),
                fault: ChainFault::None,
            })
            .unwrap(),
        )
    }))
}

pub fn endpoint(key: KeyKind, fault: EpFault) -> Responder {
    Responder::with_identity(
        [SpdmVersion::V1_1, SpdmVersion::V1_2, SpdmVersion::V1_3]
            .map(SpdmVersion::to_entry)
            .to_vec(),
        fault,
        identity(key),
    )
}

/// A root port pair's key sets: key set -> (key, ifv) and the sets in go.
#[derive(Debug, Default, Clone)]
pub struct RpPair {
    pub keys: [Option<([u8; 32], [u8; 8])>; 2],
    pub go: Vec<u8>,
}

/// One ROOT_PORT_KEY seen, without its key; with the endpoint's go masks at that moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpOp {
    pub op: u8,
    pub direction: u8,
    pub sub_stream: u8,
    pub stream_id: u8,
    pub key_set: u8,
    pub requester_id: u16,
    /// The endpoint's go mask for each of its six pairs when the op ran.
    pub ep_go: [u8; 6],
}

/// QEMU and the machine: memory, root port, and the device behind the root port.
pub struct Host {
    pub mem: Vec<u8>,
    pub ep: Responder,
    /// (stream, direction, sub_stream) -> pair.
    pub rp: HashMap<(u8, u8, u8), RpPair>,
    pub rp_ops: Vec<RpOp>,
    pub rid: u16,
    pub dma_reads: usize,
    /// Addresses at or above this are refused.
    pub dma_limit: u64,
    /// DEVICE_SPDM answers this result instead of reaching the endpoint.
    pub spdm_result: Option<u32>,
    /// DEVICE_SPDM exchanges seen.
    pub device_spdm: usize,
}

impl Host {
    pub fn new(ep: Responder) -> Host {
        Host {
            mem: vec![0; MEM],
            ep,
            rp: HashMap::new(),
            rp_ops: Vec::new(),
            rid: RID,
            dma_reads: 0,
            dma_limit: MEM as u64,
            spdm_result: None,
            device_spdm: 0,
        }
    }

    fn range(&self, addr: u64, len: usize) -> Option<std::ops::Range<usize>> {
        let end = addr.checked_add(len as u64)?;
        if end > self.dma_limit {
            return None;
        }
        Some(addr as usize..end as usize)
    }

    pub fn put(&mut self, addr: u64, data: &[u8]) {
        self.mem[addr as usize..addr as usize + data.len()].copy_from_slice(data);
    }

    pub fn get(&self, addr: u64, len: usize) -> Vec<u8> {
        self.mem[addr as usize..addr as usize + len].to_vec()
    }

    pub fn ep_keys(&mut self, stream: u8) -> Vec<u8> {
        let (c, p, _) = self.ep.platform(PLATFORM_IDE_KEYS, &[stream]);
        assert_eq!(c, PLATFORM_IDE_KEYS);
        assert_eq!(p.len(), 398);
        p
    }

    pub fn ep_go(&mut self, stream: u8) -> [u8; 6] {
        let k = self.ep_keys(stream);
        std::array::from_fn(|i| k[2 + i * 66])
    }

    /// SHA-256(key || ifv) of the root port's key set `set` for (direction, sub_stream).
    pub fn rp_digest(&self, stream: u8, dir: u8, ss: u8, set: usize) -> Option<[u8; 32]> {
        let (k, i) = self.rp.get(&(stream, dir, ss))?.keys[set]?;
        let mut h = Sha256::new();
        h.update(k);
        h.update(i);
        Some(h.finalize().into())
    }
}

impl Platform for Host {
    fn dma_read(&mut self, addr: u64, len: usize) -> Result<Option<Vec<u8>>, Fatal> {
        self.dma_reads += 1;
        Ok(self.range(addr, len).map(|r| self.mem[r].to_vec()))
    }

    fn dma_write(&mut self, addr: u64, data: &[u8]) -> Result<bool, Fatal> {
        match self.range(addr, data.len()) {
            Some(r) => {
                self.mem[r].copy_from_slice(data);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn root_port_key(&mut self, req: &RootPortKey) -> Result<u32, Fatal> {
        let ep_go = self.ep_go(req.stream_id);
        self.rp_ops.push(RpOp {
            op: req.op,
            direction: req.direction,
            sub_stream: req.sub_stream,
            stream_id: req.stream_id,
            key_set: req.key_set,
            requester_id: req.requester_id,
            ep_go,
        });
        if req.requester_id != self.rid || req.segment != 0 {
            return Ok(1);
        }
        if req.direction > 1 || req.sub_stream > 2 || req.key_set > 1 {
            return Ok(3);
        }
        let pair = self
            .rp
            .entry((req.stream_id, req.direction, req.sub_stream))
            .or_default();
        let set = req.key_set as usize;
        match req.op {
            RP_OP_PROGRAM => pair.keys[set] = Some((req.key, req.ifv)),
            RP_OP_GO => {
                if pair.keys[set].is_none() {
                    return Ok(3);
                }
                if req.direction == 1 {
                    pair.go = vec![req.key_set];
                } else if !pair.go.contains(&req.key_set) {
                    pair.go.push(req.key_set);
                }
            }
            RP_OP_STOP => {
                pair.keys[set] = None;
                pair.go.retain(|&s| s != req.key_set);
            }
            _ => return Ok(3),
        }
        Ok(0)
    }

    fn device_spdm(
        &mut self,
        rid: u16,
        segment: u8,
        doe_object: &[u8],
    ) -> Result<Result<Vec<u8>, u32>, Fatal> {
        self.device_spdm += 1;
        if let Some(r) = self.spdm_result {
            return Ok(Err(r));
        }
        if rid != self.rid || segment != 0 {
            return Ok(Err(1));
        }
        // The model sends whole DOE objects of the SPDM types.
        let o = decode_object(doe_object).expect("a DOE object");
        assert!(o.header.is(PCI_SIG_VENDOR_ID, o.header.object_type));
        assert!(matches!(o.header.object_type, 1 | 2));
        Ok(self.ep.respond(doe_object).object.ok_or(3))
    }
}

/// Changes the device's answer to relay N before the host writes it.
pub type Tamper = Box<dyn FnMut(usize, &mut Vec<u8>)>;

/// The host driver and the machine.
pub struct Rig {
    pub psp: Psp,
    pub host: Host,
    pub log: Arc<Mutex<Vec<String>>>,
    pub relays: usize,
    /// Tamper with the device's answer before it is written into the response buffer.
    pub tamper: Option<Tamper>,
}

pub fn sla(addr: u64) -> Sla {
    Sla::data_4k(addr >> 12).unwrap()
}

impl Rig {
    pub fn new<F: Into<coco_psp::FaultSpec>>(faults: Vec<F>, ep: Responder) -> Rig {
        let (logger, log) = Logger::capture();
        let mut r = Rig {
            psp: Psp::new(faults, logger),
            host: Host::new(ep),
            log,
            relays: 0,
            tamper: None,
        };
        r.host.put(OUT, &0x1000u32.to_le_bytes());
        // The response buffer: 4 pages through a scatter list.
        let pages: Vec<Sla> = (0..4).map(|i| sla(RESP + i * 0x1000)).collect();
        let mut list = [0u8; 0x1000];
        encode_scatter_list(&pages, &mut list).unwrap();
        r.host.put(RESP_LIST, &list);
        r
    }

    pub fn default() -> Rig {
        Rig::new(Vec::<Fault>::new(), endpoint(KeyKind::P256, EpFault::None))
    }

    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn spdm() -> SpdmCtrl {
        SpdmCtrl {
            req: sla(REQ),
            resp: Sla::scatter_4k(RESP_LIST >> 12).unwrap(),
            scratch: Sla::NULL,
            output: sla(OUT),
        }
    }

    /// Issues `c` once (written at CMD).
    pub fn issue(&mut self, c: &Command) -> u16 {
        let mut buf = [0u8; 128];
        let n = c.encode(&mut buf).unwrap();
        self.host.put(CMD, &buf[..n]);
        self.issue_raw(c.id())
    }

    /// Issues command `cmd` with whatever is at CMD.
    pub fn issue_raw(&mut self, cmd: u16) -> u16 {
        self.psp.command(&mut self.host, cmd, CMD).unwrap()
    }

    /// Relays the pending SPDM request to the endpoint and writes its answer.
    pub fn relay(&mut self) {
        let req = self.host.get(REQ, 0x1000);
        let b = parse_spdm_buffer(&req).unwrap();
        assert_eq!(b.object.id, DataObjectId::Request);
        let msg = b.body.to_vec();
        let ty = b.object.data_type;
        let mut obj = vec![0u8; object_size(msg.len()).unwrap()];
        encode_object(PCI_SIG_VENDOR_ID, ty.doe_type(), &msg, &mut obj).unwrap();
        let reply = self.host.ep.respond(&obj);
        let reply = reply.object.expect("the endpoint answers");
        let o = decode_object(&reply).unwrap();
        let rty = SpdmDataType::from_u8(o.header.object_type).unwrap();
        let mut payload = o.payload.to_vec();
        if let Some(t) = self.tamper.as_mut() {
            t(self.relays, &mut payload);
        }
        let mut out = vec![0u8; 0x4000];
        let n =
            encode_spdm_buffer(0x4000, DataObjectId::Response, rty, &payload, &mut out).unwrap();
        self.host.put(RESP, &out[..n]);
        self.relays += 1;
    }

    /// Issues `c` and relays until it completes (at most `max` relays); returns the status.
    pub fn run_max(&mut self, c: &Command, max: usize) -> u16 {
        let mut n = 0;
        loop {
            let st = self.issue(c);
            if st != SEV_RET_SPDM_REQUEST || n == max {
                return st;
            }
            self.relay();
            n += 1;
        }
    }

    pub fn run(&mut self, c: &Command) -> u16 {
        self.run_max(c, 200)
    }

    pub fn init(&mut self) {
        assert_eq!(self.issue(&Command::TioInit), SEV_RET_SUCCESS);
    }

    pub fn create(&mut self) {
        let c = Command::DevCreate {
            dev_ctx: sla(DEV_CTX),
            device_id: RID,
            root_port_id: 1,
            segment: 0,
        };
        assert_eq!(self.issue(&c), SEV_RET_SUCCESS);
    }

    pub fn connect_cmd(stream: u8) -> Command {
        Command::DevConnect {
            spdm: Rig::spdm(),
            dev_ctx: sla(DEV_CTX),
            tc_mask: 1,
            cert_slot: 0,
            ide_stream_id: [stream, 0, 0, 0, 0, 0, 0, 0],
        }
    }

    /// TIO_INIT, DEV_CREATE, DEV_CONNECT of stream `stream`; returns DEV_CONNECT's status.
    pub fn connected(&mut self, stream: u8) -> u16 {
        self.init();
        self.create();
        self.run(&Rig::connect_cmd(stream))
    }

    pub fn disconnect_cmd(force: bool) -> Command {
        Command::DevDisconnect {
            force,
            spdm: Rig::spdm(),
            dev_ctx: sla(DEV_CTX),
        }
    }

    /// The payload of the output buffer.
    pub fn output(&self) -> Vec<u8> {
        let h = BufferHeader::parse(&self.host.get(OUT, 0x40)).unwrap();
        self.host.get(OUT + 0x40, h.payload_sz as usize)
    }

    /// The device status page.
    pub fn dev_status(&mut self) -> DevStatusPage {
        let c = Command::DevStatus {
            dev_ctx: sla(DEV_CTX),
            status_paddr: STATUS,
        };
        assert_eq!(self.issue(&c), SEV_RET_SUCCESS);
        DevStatusPage::parse(&self.host.get(STATUS, 16)).unwrap()
    }
}
