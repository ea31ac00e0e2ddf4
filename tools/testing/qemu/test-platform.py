#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Host-side test of the project's QEMU (no guest): QEMU runs with the qtest accelerator, this
script reads and writes config space through ECAM like a guest would, and the device's
firmware is tools/testing/qemu/fake-endpoint.py, then the real coco-endpoint (the TDISP
effects of config writes and resets, end to end, with its --tdi-test-lock fixture). Prints
KTAP; exit status 1 on a failure.

  tools/testing/qemu/test-platform.py [--qemu BIN] [--endpoint BIN]
      (defaults: scripts/build-qemu.sh's binary; target/release/coco-endpoint, built)
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
        self.log = os.path.join(self.dir, "qemu.log")
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(path)
        srv.listen(1)
        # Guest errors and the TDI state trace go to the log, with QEMU's own warnings.
        cmd = [qemu, "-machine", "q35", "-accel", "qtest", "-qtest", f"unix:{path}",
               "-display", "none", "-nodefaults", "-nic", "none",
               "-L", "/usr/share/seabios", "-L", "/usr/share/qemu",
               "-d", "guest_errors", "-trace", "pci_nvme_tdi_state", "-trace", "pci_nvme_platform_*",
               "-device", f"pcie-root-port,id=rp0,bus=pcie.0,addr=4.0,chassis=1,slot=1{rp_props}",
               "-device", f"nvme,id=nvme0,bus=rp0,serial=coco0,spdm_port={port}{props}"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stderr=open(self.log, "w"))
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

    def logged(self, text):
        with open(self.log) as f:
            return text in f.read()


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


def rp_program(q, stream, mode, kset=0, go=True):
    """Root-port keys for `stream`: "match" (the endpoint fixture's keys in the other
    direction), "same" (the fixture's own directions: a mismatch); key set `kset` (K1: the
    fake's refresh keys), PROGRAM then GO unless `go` is False."""
    for d in (0, 1):
        for s in (0, 1, 2):
            ep_dir = 1 - d if mode == "match" else d
            key, ifv = fake.test_key(stream, ep_dir, s, kset)
            for i in range(8):
                q.wr(RP, VSEC + 0x10 + 4 * i, int.from_bytes(key[4 * i:4 * i + 4], "little"))
            for i in range(2):
                q.wr(RP, VSEC + 0x30 + 4 * i, int.from_bytes(ifv[4 * i:4 * i + 4], "little"))
            sel = stream | (d << 8) | (s << 9) | (kset << 11)
            q.wr(RP, VSEC + 8, sel | (1 << 12))
            if go:
                q.wr(RP, VSEC + 8, sel | (2 << 12))


def rp_cmd(q, stream, d, s, kset, cmd):
    """Runs VSEC command `cmd` (2 GO, 3 STOP) for one pair of the root port; returns STATUS."""
    q.wr(RP, VSEC + 8, stream | (d << 8) | (s << 9) | (kset << 11) | (cmd << 12))
    return q.rd(RP, VSEC + 0xC)


def rp_dir(q, stream, d, kset, cmd):
    """GO (2) or STOP (3) of key set `kset` for the three sub-streams of direction `d`."""
    return [rp_cmd(q, stream, d, s, kset, cmd) for s in (0, 1, 2)]


def go_state(q, stream):
    q.wr(RP, VSEC + 8, stream)
    return q.rd(RP, VSEC + 0x38)


def ep_program(ep, stream, kset):
    """The fake endpoint's KEY_PROG of key set `kset` (the fake's keys) for the six pairs."""
    for n, (d, s) in enumerate(fake.PAIRS):
        ep.keys.program(stream, n, kset, *fake.test_key(stream, d, s, kset))


def ep_dir(ep, stream, d, kset, op):
    """The fake endpoint's K_SET_GO ("go") or K_SET_STOP ("stop") for direction `d`."""
    for n, (pd, _) in enumerate(fake.PAIRS):
        if pd == d:
            getattr(ep.keys, op)(stream, n, kset)


def link_status(q):
    """Stream 5's status on both ends (block 0 of each)."""
    return q.rd(RP, RP_SEL[0] + STS), q.rd(EP, EP_SEL[0] + STS)


def wait_event(ep, name, since, timeout=5):
    deadline = time.monotonic() + timeout
    with ep.events_cv:
        while time.monotonic() < deadline:
            for e in ep.events[since:]:
                if e["event"] == name:
                    return e
            ep.events_cv.wait(0.1)
    return None


def wait_logged(path, text, timeout=5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path) as f:
            if text in f.read():
                return True
        time.sleep(0.05)
    return False


def tdisp_end_to_end(t, qemu, endpoint):
    """QEMU and the real coco-endpoint: the TDI locks itself (--tdi-test-lock 1) once stream 1's
    block is enabled; config writes and an FLR then act on it through QEMU's events, and both
    sides log what happened."""
    d = tempfile.mkdtemp(prefix="coco-tdisp.")
    port_file, log = os.path.join(d, "port"), os.path.join(d, "endpoint.log")
    proc = subprocess.Popen([endpoint, "--count", "1", "--port-file", port_file, "--log", log,
                             "--tdi-test-lock", "1"], stdin=subprocess.DEVNULL)
    q = None
    try:
        for _ in range(200):
            if os.path.exists(port_file):
                break
            time.sleep(0.05)
        with open(port_file) as f:
            port = int(f.read().split()[0])
        q = Qtest(qemu, port, ",x-ide=on,x-tee-io=on", ",x-ide=on")
        # Size and place BAR0 (64-bit memory), then enable memory space and bus mastering.
        q.wr(EP, 0x10, 0xFFFFFFFF)
        size = (~(q.rd(EP, 0x10) & ~0xF) & 0xFFFFFFFF) + 1
        base = 0xC0000000
        q.wr(EP, 0x10, base)
        q.wr(EP, 0x14, 0)
        q.wrw(EP, 0x04, 0x0006)
        pages = f"BAR0 pages {base // 4096:#x}+{size // 4096}"
        t.ok(wait_logged(log, f"PLATFORM_EVENT BARS: BAR0 {base:#x}+{size:#x}"),
             "coco-endpoint: BARS carries the BAR0 QEMU mapped")
        t.ok(not wait_logged(log, "CONFIG_LOCKED", 0.2), "TDI not locked before its stream is enabled")
        q.wr(EP, EP_SEL[0] + CTL, 1 << 24 | EN)
        t.ok(wait_logged(log, f"CONFIG_UNLOCKED -> CONFIG_LOCKED, report of") and wait_logged(log, pages),
             "enabling stream 1 locks the TDI; the report's range is the mapped BAR0", pages)
        t.ok(q.rd(EP, EP_SEL[0] + STS) == SECURE, "endpoint with the fixture's keys reads Secure")
        t.ok(wait_logged(q.log, "TDI CONFIG_UNLOCKED -> CONFIG_LOCKED"), "QEMU reads the TDI state back (trace)")
        # Allowed writes leave it locked: Device Control, the interrupt line, Command with MSE|BME.
        q.wrw(EP, 0x04, 0x0006)
        q.cmd(f"writeb 0x{q.addr(EP, 0x3C):x} 0xb")
        t.ok(not wait_logged(log, "-> ERROR", 0.2), "allowed config writes keep the TDI locked")
        q.wr(EP, 0x10, base + 0x100000)
        t.ok(wait_logged(log, "TDI CONFIG_LOCKED -> ERROR: config write to a BAR (0x10)"),
             "a BAR write while locked moves the TDI to ERROR (coco-endpoint)")
        t.ok(wait_logged(q.log, "config write of 4 bytes at 0x10 moved the TDI from CONFIG_LOCKED to ERROR"),
             "QEMU logs the forbidden write as a guest error")
        exp = pcie_cap(q, EP)
        q.wrw(EP, exp + 8, (q.rd(EP, exp + 8) & 0xFFFF) | 0x8000)
        t.ok(wait_logged(log, "PLATFORM_EVENT FLR: keys of streams [1] erased, TDI ERROR -> CONFIG_UNLOCKED")
             and wait_logged(q.log, "TDI ERROR -> CONFIG_UNLOCKED after event 1"),
             "FLR: keys erased, TDI back to CONFIG_UNLOCKED on both sides")
        t.ok(q.rd(EP, EP_SEL[0] + STS) == 0, "after FLR the endpoint's stream reads Insecure")
    except (OSError, ValueError, RuntimeError) as e:
        t.ok(False, "TDISP end to end", str(e))
    finally:
        if q:
            q.close()
        proc.terminate()
        proc.wait(timeout=10)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--qemu")
    p.add_argument("--endpoint")
    a = p.parse_args()
    qemu = a.qemu or subprocess.check_output([os.path.join(ROOT, "scripts/build-qemu.sh")], text=True).split()[-1]
    if not a.endpoint:
        subprocess.check_call(["cargo", "build", "--release", "--quiet", "-p", "coco-endpoint"], cwd=ROOT)
        a.endpoint = os.path.join(ROOT, "target/release/coco-endpoint")
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
        ep.keys_reply_len = 397
        t.ok(q.rd(EP, EP_SEL[0] + STS) == 0, "endpoint: a PLATFORM_IDE_KEYS reply shorter than 398 bytes is no keys")
        ep.keys_reply_len = None

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

        # Key refresh in IDE's order (K1 programmed on both ends, in go on the receivers, then
        # on the transmitters, then K0 stopped): Secure all along. GO_STATE: bits 5:0 a key set
        # in go, 13:8 the one used (RX: put in go last), 21:16 both in go (RX only).
        ep_program(ep, 5, 1)
        rp_program(q, 5, "match", kset=1, go=False)
        st, g = link_status(q), go_state(q, 5)
        t.ok(st == (SECURE, SECURE) and g == 0x3F, "refresh: K1 programmed on both ends, K0 in use",
             f"{st[0]:#x} {st[1]:#x} GO_STATE {g:#x}")
        ep_dir(ep, 5, 0, 1, "go")
        rp_dir(q, 5, 0, 1, 2)
        st, g = link_status(q), go_state(q, 5)
        t.ok(st == (SECURE, SECURE) and g == 0x07073F
             and all(ep.keys.go_mask(5, n) == 3 for n in range(3)),
             "refresh: K1 in go on both receivers: Secure; GO_STATE bits 18:16 (RX holds K0 and K1)",
             f"{st[0]:#x} {st[1]:#x} GO_STATE {g:#x}")
        ep_dir(ep, 5, 1, 1, "go")
        rp_dir(q, 5, 1, 1, 2)
        st, g = link_status(q), go_state(q, 5)
        t.ok(st == (SECURE, SECURE) and g == 0x073F3F,
             "refresh: transmitters switched to K1: Secure; GO_STATE bits 13:11 (TX uses K1)",
             f"{st[0]:#x} {st[1]:#x} GO_STATE {g:#x}")
        ep_dir(ep, 5, 0, 0, "stop")
        ep_dir(ep, 5, 1, 0, "stop")
        stop = rp_dir(q, 5, 0, 0, 3) + rp_dir(q, 5, 1, 0, 3)
        st, g = link_status(q), go_state(q, 5)
        t.ok(st == (SECURE, SECURE) and g == 0x3F3F and stop == [5 << 8 | 1] * 6,
             "refresh: K0 stopped on both ends: Secure on K1 alone; GO_STATE bits 21:16 clear",
             f"{st[0]:#x} {st[1]:#x} GO_STATE {g:#x} STATUS {stop}")
        t.ok(rp_cmd(q, 5, 1, 0, 0, 2) == 5 << 8 | 3 and go_state(q, 5) == 0x3F3F,
             "root port: GO of the stopped K0 fails and changes nothing")
        t.ok(not q.rd(RP, AER + 4) & (1 << 22), "refresh: no AER error logged", hex(q.rd(RP, AER + 4)))

        # Wrong order: the root port's TX-PR switched to a new K0 that the endpoint's RX-PR
        # does not have in go yet: both ends latch the integrity failure.
        ep_program(ep, 5, 0)
        rp_program(q, 5, "match", kset=0, go=False)
        before = link_status(q)
        rp_cmd(q, 5, 1, 0, 0, 2)
        st, g = link_status(q), go_state(q, 5)
        t.ok(before == (SECURE, SECURE) and st == (FAIL, FAIL) and g == 0x373F,
             "wrong order: root port TX on K0 before the endpoint's RX: integrity failure on both ends",
             f"before {before} after {st[0]:#x} {st[1]:#x} GO_STATE {g:#x}")
        t.ok(q.rd(RP, AER + 4) & (1 << 22), "wrong order: AER uncorrectable internal error logged")
        # Start over: clear the AER status, disable both blocks (failures and keys forgotten),
        # key both ends with K0 again.
        q.wr(RP, AER + 4, 1 << 22)
        q.wr(EP, EP_SEL[0] + CTL, 0)
        q.wr(RP, RP_SEL[0] + CTL, 0)
        ep.keys.set(5, "test")
        rp_program(q, 5, "match")
        q.wr(EP, EP_SEL[0] + CTL, 5 << 24 | EN)
        q.wr(RP, RP_SEL[0] + CTL, 5 << 24 | EN)
        st = link_status(q)
        t.ok(st == (SECURE, SECURE) and not q.rd(RP, AER + 4) & (1 << 22),
             "after the failure: disabled, keyed again, enabled: both ends Secure", f"{st[0]:#x} {st[1]:#x}")

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

    # An endpoint that does not know the side channel (spdm-emu answers UNKNOWN, 0xFFFF;
    # older servers TEST, 0xDEAD): asked once, logged, no keys, never asked again.
    for reply in (0xFFFF, 0xDEAD):
        ep2 = fake.FakeEndpoint(side_channel=False, unknown_reply=reply).start()
        q = Qtest(qemu, ep2.port, ",x-ide=on,x-tee-io=on", ",x-ide=on")
        try:
            q.wr(EP, EP_SEL[0] + CTL, 7 << 24 | EN)
            q.wrw(EP, 0x04, 0x0006)
            t.ok(q.rd(EP, EP_SEL[0] + STS) == 0 and ep2.platform_requests == 1
                 and q.logged(f"with 0x{reply:x}: no IDE keys and no TDISP"),
                 f"endpoint answering 0x{reply:X}: Insecure, asked once, logged",
                 f"{ep2.platform_requests} platform requests")
        finally:
            q.close()

    tdisp_end_to_end(t, qemu, a.endpoint)

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
