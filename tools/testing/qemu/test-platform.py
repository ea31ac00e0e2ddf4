#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Host-side test of the project's QEMU (no guest): QEMU runs with the qtest accelerator, this
script reads and writes config space through ECAM like a guest would, and the device's
firmware is tools/testing/qemu/fake-endpoint.py. Prints KTAP; exit status 1 on a failure.

  tools/testing/qemu/test-platform.py [--qemu BIN]   (default: scripts/build-qemu.sh's binary)
"""

import argparse
import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
spec = importlib.util.spec_from_file_location("fake_endpoint", os.path.join(HERE, "fake-endpoint.py"))
fake = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fake)

ECAM = 0xB0000000
RP = (0, 4, 0)
EP = (1, 0, 0)
IDE = 0x200          # IDE capability on both
VSEC = 0x280         # root port key programming
AER = 0x100          # root port AER
EP_SEL = [IDE + 0x0C + i * 0x20 for i in range(2)]   # 1 address association block
RP_SEL = [IDE + 0x0C + i * 0x2C for i in range(2)]   # 2 address association blocks
CTL, STS = 4, 8
EN = 1
SECURE, FAIL = 2, 0x80000000


class Qtest:
    def __init__(self, qemu, port, props, rp_props):
        self.dir = tempfile.mkdtemp(prefix="coco-qtest.")
        path = os.path.join(self.dir, "qtest.sock")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        cmd = [qemu, "-machine", "q35", "-accel", "qtest", "-qtest", f"unix:{path}",
               "-display", "none", "-nodefaults", "-nic", "none",
               "-L", "/usr/share/seabios", "-L", "/usr/share/qemu",
               "-device", f"pcie-root-port,id=rp0,bus=pcie.0,addr=4.0,chassis=1,slot=1{rp_props}",
               "-device", f"nvme,id=nvme0,bus=rp0,serial=coco0,spdm_port={port}{props}"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "qemu.log"), "w"))
        srv.settimeout(20)
        self.sock, _ = srv.accept()
        srv.close()
        self.f = self.sock.makefile("rw")
        # ECAM at 0xb0000000 (256 MiB), then bus 1 below the root port.
        self.outl(0xCF8, 0x80000060)
        self.outl(0xCFC, ECAM | 1)
        self.outl(0xCF8, 0x80000064)
        self.outl(0xCFC, 0)
        self.wr(RP, 0x18, 0x00010100)

    def cmd(self, line):
        self.f.write(line + "\n")
        self.f.flush()
        while True:
            r = self.f.readline().strip()
            if r.startswith("OK"):
                return r
            if r.startswith("FAIL") or not r:
                raise RuntimeError(f"qtest {line!r}: {r!r}")

    def outl(self, port, val):
        self.cmd(f"outl 0x{port:x} 0x{val:x}")

    def addr(self, bdf, off):
        b, d, f = bdf
        return ECAM | (b << 20) | (d << 15) | (f << 12) | off

    def rd(self, bdf, off):
        return int(self.cmd(f"readl 0x{self.addr(bdf, off):x}").split()[1], 16)

    def wr(self, bdf, off, val):
        self.cmd(f"writel 0x{self.addr(bdf, off):x} 0x{val:x}")

    def wrw(self, bdf, off, val):
        self.cmd(f"writew 0x{self.addr(bdf, off):x} 0x{val:x}")

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class T:
    def __init__(self):
        self.n = 0
        self.failed = 0

    def ok(self, cond, name, detail=""):
        self.n += 1
        print(f"{'ok' if cond else 'not ok'} {self.n} {name}" + ("" if cond else f" # {detail}"), flush=True)
        if not cond:
            self.failed += 1


def ext_caps(q, bdf):
    caps, off = {}, 0x100
    while off:
        hdr = q.rd(bdf, off)
        if hdr in (0, 0xFFFFFFFF):
            break
        caps.setdefault(hdr & 0xFFFF, off)
        off = hdr >> 20
    return caps


def pcie_cap(q, bdf):
    off = q.rd(bdf, 0x34) & 0xFF
    while off:
        v = q.rd(bdf, off)
        if v & 0xFF == 0x10:
            return off
        off = (v >> 8) & 0xFF
    return 0


def rp_program(q, stream, mode):
    """Root-port keys for `stream`: "match" (the endpoint fixture's keys in the other
    direction), "same" (the fixture's own directions: a mismatch)."""
    for d in (0, 1):
        for s in (0, 1, 2):
            ep_dir = 1 - d if mode == "match" else d
            key, ifv = fake.test_key(stream, ep_dir, s)
            for i in range(8):
                q.wr(RP, VSEC + 0x10 + 4 * i, int.from_bytes(key[4 * i:4 * i + 4], "little"))
            for i in range(2):
                q.wr(RP, VSEC + 0x30 + 4 * i, int.from_bytes(ifv[4 * i:4 * i + 4], "little"))
            sel = stream | (d << 8) | (s << 9)
            q.wr(RP, VSEC + 8, sel | (1 << 12))
            q.wr(RP, VSEC + 8, sel | (2 << 12))


def wait_event(ep, name, since, timeout=5):
    deadline = time.monotonic() + timeout
    with ep.events_cv:
        while time.monotonic() < deadline:
            for e in ep.events[since:]:
                if e["event"] == name:
                    return e
            ep.events_cv.wait(0.1)
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--qemu")
    a = p.parse_args()
    qemu = a.qemu or subprocess.check_output([os.path.join(ROOT, "scripts/build-qemu.sh")], text=True).split()[-1]
    t = T()
    print("TAP version 13", flush=True)

    ep = fake.FakeEndpoint().start()
    q = Qtest(qemu, ep.port, ",x-ide=on,x-tee-io=on", ",x-ide=on")
    try:
        rpc, epc = ext_caps(q, RP), ext_caps(q, EP)
        t.ok(rpc.get(0x30) == IDE and rpc.get(0x0B) == VSEC, "root port: IDE and key-programming capabilities",
             str({hex(k): hex(v) for k, v in rpc.items()}))
        t.ok(q.rd(RP, VSEC + 4) == 0x040 << 20 | 1 << 16 | 0xC0C0, "root port: VSEC header", hex(q.rd(RP, VSEC + 4)))
        t.ok(epc.get(0x30) == IDE, "endpoint: IDE capability", str(epc))
        t.ok(q.rd(EP, IDE + 4) == 0x01010042, "endpoint: IDE capability register", hex(q.rd(EP, IDE + 4)))
        t.ok(q.rd(EP, EP_SEL[0]) == 1 and q.rd(RP, RP_SEL[1]) == 2, "address association blocks: endpoint 1, root port 2")
        exp = pcie_cap(q, EP)
        t.ok(q.rd(EP, exp + 4) & 0x40000000, "endpoint: DevCap TEE-IO supported")
        t.ok(wait_event(ep, "IDE_REGISTERS", 0) is not None and wait_event(ep, "RESET", 0, 0.5) is None,
             "events at start: IDE_REGISTERS, no RESET (the connection is the power-on)")

        # Writable bits: a write of all ones reads back the writable mask.
        q.wr(EP, EP_SEL[1] + CTL, 0xFFFFFFFF)
        t.ok(q.rd(EP, EP_SEL[1] + CTL) == 0xFFFFC001, "selective control writable bits", hex(q.rd(EP, EP_SEL[1] + CTL)))
        q.wr(EP, EP_SEL[1] + CTL, 0)
        q.wr(EP, EP_SEL[1] + 0x0C, 0xFFFFFFFF)
        q.wr(EP, EP_SEL[1] + 0x10, 0xFFFFFFFF)
        t.ok(q.rd(EP, EP_SEL[1] + 0x0C) == 0x00FFFF00 and q.rd(EP, EP_SEL[1] + 0x10) == 0xFFFFFF01,
             "RID association writable bits")
        q.wr(EP, EP_SEL[1] + 0x0C, 0)
        q.wr(EP, EP_SEL[1] + 0x10, 0)

        n = len(ep.events)
        q.wr(EP, EP_SEL[0] + CTL, 5 << 24 | EN)
        t.ok(q.rd(EP, EP_SEL[0] + STS) == 0, "endpoint: enabled without keys reads Insecure")
        e = wait_event(ep, "IDE_REGISTERS", n)
        t.ok(e and e["offset"] == IDE and e["regs"][(EP_SEL[0] + CTL - IDE) // 4] == 5 << 24 | EN,
             "endpoint: IDE_REGISTERS after a write carries the new control")
        ep.keys.set(5, "partial")
        t.ok(q.rd(EP, EP_SEL[0] + STS) == 0, "endpoint: five pairs in go reads Insecure")
        ep.keys.set(5, "test")
        t.ok(q.rd(EP, EP_SEL[0] + STS) == SECURE, "endpoint: keys for all six pairs read Secure")

        q.wr(RP, RP_SEL[0] + CTL, 5 << 24 | EN)
        t.ok(q.rd(RP, RP_SEL[0] + STS) == 0, "root port: enabled without keys reads Insecure")
        q.wr(RP, RP_SEL[0] + CTL, 0)
        rp_program(q, 5, "match")
        q.wr(RP, VSEC + 8, 5)
        t.ok(q.rd(RP, VSEC + 0x38) == 0x3F and q.rd(RP, VSEC + 0xC) == 5 << 8 | 1,
             "root port: GO_STATE and STATUS after programming", f"{q.rd(RP, VSEC + 0x38):#x} {q.rd(RP, VSEC + 0xC):#x}")
        t.ok(all(q.rd(RP, VSEC + o) == 0 for o in range(0x10, 0x38, 4)), "root port: key registers read 0")
        q.wr(RP, RP_SEL[0] + CTL, 5 << 24 | EN)
        t.ok(q.rd(RP, RP_SEL[0] + STS) == SECURE and q.rd(EP, EP_SEL[0] + STS) == SECURE,
             "matching keys: both ends Secure")

        # A disabled root-port block forgets its stream's keys.
        q.wr(RP, RP_SEL[0] + CTL, 0)
        q.wr(RP, VSEC + 8, 5)
        t.ok(q.rd(RP, VSEC + 0x38) == 0, "root port: disabling the block forgets the keys")

        # Mismatch: both ends fail once both are enabled; AER logs an internal error.
        rp_program(q, 5, "same")
        q.wr(RP, RP_SEL[0] + CTL, 5 << 24 | EN)
        rs, es = q.rd(RP, RP_SEL[0] + STS), q.rd(EP, EP_SEL[0] + STS)
        t.ok(rs == FAIL and es == FAIL, "mismatched keys: both ends Insecure with the integrity failure",
             f"rp {rs:#x} ep {es:#x}")
        t.ok(q.rd(RP, AER + 4) & (1 << 22), "root port: AER uncorrectable internal error logged", hex(q.rd(RP, AER + 4)))

        n = len(ep.events)
        q.wr(EP, EP_SEL[0] + CTL, 0)
        e = wait_event(ep, "STREAM_DISABLED", n)
        t.ok(e and e["stream"] == 5 and 5 not in ep.keys.streams, "endpoint: disable sends STREAM_DISABLED")
        t.ok(q.rd(EP, EP_SEL[0] + STS) == 0 and q.rd(RP, RP_SEL[0] + STS) == FAIL,
             "disable clears the endpoint's failure; the root port keeps its own")
        q.wr(RP, RP_SEL[0] + CTL, 0)
        t.ok(q.rd(RP, RP_SEL[0] + STS) == 0, "root port: disable clears its failure")

        # BARs: memory enable sends BARS with the mapped BAR0.
        n = len(ep.events)
        q.wr(EP, 0x10, 0xFE000000)
        q.wr(EP, 0x14, 0)
        q.wrw(EP, 0x04, 0x0002)
        e = wait_event(ep, "BARS", n)
        t.ok(e and e["bars"] and e["bars"][0]["bar"] == 0 and e["bars"][0]["base"] == 0xFE000000
             and e["bars"][0]["flags"] & 1, "BARS on memory enable", str(e))
        cw = [x for x in ep.events[n:] if x["event"] == "CONFIG_WRITE"]
        t.ok(len(cw) == 3 and cw[0]["offset"] == 0x10 and cw[2]["offset"] == 4 and cw[2]["size"] == 2,
             "CONFIG_WRITE for header writes", str(cw))

        # FLR: CONFIG_WRITE (Device Control) then FLR; keys erased; IDE registers kept.
        ep.keys.set(5, "test")
        q.wr(EP, EP_SEL[0] + CTL, 5 << 24 | EN)
        n = len(ep.events)
        devctl = q.rd(EP, exp + 8) & 0xFFFF
        q.wrw(EP, exp + 8, devctl | 0x8000)
        names = [x["event"] for x in ep.events[n:] if x["event"] != "IDE_KEYS"]
        t.ok(names[:2] == ["CONFIG_WRITE", "FLR"], "FLR: CONFIG_WRITE then FLR", str(names))
        t.ok(q.rd(EP, EP_SEL[0] + CTL) == 5 << 24 | EN and q.rd(EP, EP_SEL[0] + STS) == 0,
             "after FLR: registers kept, no keys, Insecure")
    finally:
        q.close()

    # An endpoint that does not know the side channel: no keys, no more events.
    ep2 = fake.FakeEndpoint(side_channel=False).start()
    q = Qtest(qemu, ep2.port, ",x-ide=on,x-tee-io=on", ",x-ide=on")
    try:
        q.wr(EP, EP_SEL[0] + CTL, 7 << 24 | EN)
        t.ok(q.rd(EP, EP_SEL[0] + STS) == 0, "endpoint without side channel: Insecure")
    finally:
        q.close()

    # Properties off: no capabilities.
    q = Qtest(qemu, ep.port, "", "")
    try:
        t.ok(0x30 not in ext_caps(q, RP) and 0x30 not in ext_caps(q, EP)
             and not q.rd(EP, pcie_cap(q, EP) + 4) & 0x40000000, "x-ide/x-tee-io off: no IDE, no TEE-IO bit")
    finally:
        q.close()

    print(f"1..{t.n}")
    print(f"# {t.n - t.failed} passed, {t.failed} failed", flush=True)
    return 1 if t.failed else 0


if __name__ == "__main__":
    sys.exit(main())
