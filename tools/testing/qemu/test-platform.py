#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Host-side test of the project's QEMU (no guest): QEMU runs with the qtest accelerator, this
script reads and writes config space through ECAM like a guest would, and the device's
firmware is tools/testing/qemu/fake-endpoint.py, then the real coco-endpoint (the TDISP
effects of config writes and resets, end to end, with its --tdi-test-lock fixture). Prints
KTAP; exit status 1 on a failure.

Then the emulated PSP (coco-psp) with a fake firmware model in this script that speaks the
firmware socket of Documentation/coco/sev-tio-platform.rst, and TIO_STATUS against the real
firmware model when it is built (skipped with a message otherwise).

Then the guest channel (coco-tio-guest) with the same fake model speaking the guest requests
of Documentation/coco/sev-tio-guest.rst (GUEST, DEVICE_SPDM to the fake endpoint,
GUEST_DONE), and nvme x-doe-hidden.

  tools/testing/qemu/test-platform.py [--qemu BIN] [--endpoint BIN] [--psp BIN]
      (defaults: scripts/build-qemu.sh's binary; target/release/coco-endpoint, built;
      target/release/coco-psp if it exists)
"""

import argparse
import importlib.util
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
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
    def __init__(self, qemu, port, props, rp_props, devices=None, traces=()):
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
               "-d", "guest_errors", "-trace", "pci_nvme_tdi_state", "-trace", "pci_nvme_platform_*"]
        for t in traces:
            cmd += ["-trace", t]
        if devices is None:
            devices = [f"pcie-root-port,id=rp0,bus=pcie.0,addr=4.0,chassis=1,slot=1{rp_props}",
                       f"nvme,id=nvme0,bus=rp0,serial=coco0,spdm_port={port}{props}"]
        for dev in devices:
            cmd += ["-device", dev]
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

    def mem_read(self, addr, size):
        return bytes.fromhex(self.cmd(f"read 0x{addr:x} 0x{size:x}").split()[1][2:])

    def mem_write(self, addr, data):
        self.cmd(f"write 0x{addr:x} 0x{len(data):x} 0x{data.hex()}")

    def mmio_rd(self, addr):
        return int(self.cmd(f"readl 0x{addr:x}").split()[1], 16)

    def mmio_wr(self, addr, val):
        self.cmd(f"writel 0x{addr:x} 0x{val:x}")

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


def unused_port():
    """A localhost port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


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


# ---- The emulated PSP (coco-psp, Documentation/coco/sev-tio-platform.rst) -----------------

PSP = (0, 6, 0)
PSP_BAR = 0xC0000000
CMDRESP, CMDBUFF_LO, CMDBUFF_HI = 0x10980, 0x109E0, 0x109E4
RESP, RECOVERY = 1 << 31, 1 << 30
OP_COMMAND, OP_DMA_READ, OP_DATA, OP_DMA_WRITE, OP_RESULT, OP_ROOT_PORT_KEY, OP_DONE = \
    0x01, 0x10, 0x11, 0x12, 0x13, 0x14, 0x1F
KEY_PROGRAM, KEY_GO, KEY_STOP = 1, 2, 3
OP_GUEST, OP_DEVICE_SPDM, OP_GUEST_DONE = 0x02, 0x15, 0x1E
RP1 = (0, 5, 0)      # a root port without x-ide, bus 2 below it
RID_EP, RID_EP2 = 0x0100, 0x0200
CMD_BUF, PAGE = 0x100000, 0x101000      # guest RAM for the tests' buffers
SEV_CMD_TIO_STATUS = 0xD0


class FakePsp:
    """A fake PSP firmware: listens on localhost, serves the one connection QEMU's coco-psp
    makes at realize, and runs each COMMAND through `handler(fw, cmd, addr)`, which may call
    dma_read/dma_write/rp_key/send (in this thread, while QEMU waits in the guest's write)
    and returns the DONE status, or None to close the socket instead."""

    def __init__(self):
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(1)
        self.port = self.srv.getsockname()[1]
        self.handler = lambda fw, cmd, addr: 0
        # GUEST (coco-tio-guest): guest_handler(fw, fields) returns GUEST_DONE's
        # (result, data_npages, param, fw_err), or None to close the socket instead.
        self.guest_handler = lambda fw, g: (0, 0, 0, 0)
        self.guests = []
        self.commands = []
        self.errors = []
        self.conn = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _recv(self, n):
        data = b""
        while len(data) < n:
            chunk = self.conn.recv(n - len(data))
            if not chunk:
                raise EOFError("QEMU closed the socket")
            data += chunk
        return data

    def recv(self):
        op, length = struct.unpack("<II", self._recv(8))
        return op, self._recv(length)

    def send(self, op, payload):
        self.conn.sendall(struct.pack("<II", op, len(payload)) + payload)

    def _serve(self):
        self.srv.settimeout(30)
        try:
            self.conn, _ = self.srv.accept()
            while True:
                op, payload = self.recv()
                if op == OP_GUEST and len(payload) == 48:
                    g = dict(zip(("exit_code", "sbdf", "req", "rsp", "data", "npages", "reserved", "param"),
                                 struct.unpack("<IIQQQIIQ", payload)))
                    self.guests.append(g)
                    done = self.guest_handler(self, g)
                    if done is None:
                        self.conn.close()
                        return
                    self.send(OP_GUEST_DONE, struct.pack("<IIQQ", *done))
                    continue
                if op != OP_COMMAND or len(payload) != 16:
                    raise RuntimeError(f"QEMU sent op {op:#x} with {len(payload)} bytes")
                cmd, _, _, addr = struct.unpack("<HHIQ", payload)
                self.commands.append((cmd, addr))
                status = self.handler(self, cmd, addr)
                if status is None:
                    self.conn.close()
                    return
                self.send(OP_DONE, struct.pack("<I", status))
        except (OSError, EOFError, RuntimeError, struct.error) as e:
            if not isinstance(e, EOFError):
                self.errors.append(str(e))
        finally:
            self.srv.close()

    def dma_read(self, addr, n):
        """DMA_READ; returns (result, data)."""
        self.send(OP_DMA_READ, struct.pack("<QI", addr, n))
        op, payload = self.recv()
        assert op == OP_DATA, f"DMA_READ answered with op {op:#x}"
        return struct.unpack_from("<I", payload)[0], payload[4:]

    def dma_write(self, addr, data):
        self.send(OP_DMA_WRITE, struct.pack("<Q", addr) + data)
        return self.result()

    def rp_key(self, rid, stream, d, s, kset, op, key=bytes(32), ifv=bytes(8), segment=0):
        self.send(OP_ROOT_PORT_KEY, struct.pack("<HBBBBBB", rid, segment, stream, d, s, kset, op) + key + ifv)
        return self.result()

    def device_spdm(self, rid, obj, segment=0):
        """DEVICE_SPDM; returns (result, the DOE object that came back)."""
        self.send(OP_DEVICE_SPDM, struct.pack("<HBB", rid, segment, 0) + obj)
        op, payload = self.recv()
        assert op == OP_DATA, f"DEVICE_SPDM answered with op {op:#x}"
        return struct.unpack_from("<I", payload)[0], payload[4:]

    def result(self):
        op, payload = self.recv()
        assert op == OP_RESULT and len(payload) == 4, f"answered with op {op:#x}, {len(payload)} bytes"
        return struct.unpack("<I", payload)[0]


def psp_qtest(qemu, fw_port, ep_port):
    """q35 with the PSP at 00:06.0 (BAR 2 at PSP_BAR, memory and bus mastering on), a root port
    with x-ide at 00:04.0 above an endpoint with IDE (bus 1, its firmware the fake endpoint on
    ep_port) and a root port without x-ide at 00:05.0 above a plain NVMe function (bus 2)."""
    q = Qtest(qemu, 0, "", "", devices=[
        "pcie-root-port,id=rp0,bus=pcie.0,addr=4.0,chassis=1,slot=1,x-ide=on",
        f"nvme,id=nvme0,bus=rp0,serial=coco0,spdm_port={ep_port},x-ide=on,x-tee-io=on",
        "pcie-root-port,id=rp1,bus=pcie.0,addr=5.0,chassis=2,slot=2",
        "nvme,id=nvme1,bus=rp1,serial=coco1",
        f"coco-psp,id=psp,bus=pcie.0,addr=6.0,fw_port={fw_port}"], traces=["coco_psp_*"])
    q.wr(RP1, 0x18, 0x00020200)
    q.wr(PSP, 0x18, PSP_BAR)
    q.wrw(PSP, 0x04, 0x0006)
    return q


def psp_command(q, cmd, addr=CMD_BUF):
    """Issues `cmd` with the command buffer at `addr`; returns cmdresp after the write."""
    q.mmio_wr(PSP_BAR + CMDBUFF_LO, addr & 0xFFFFFFFF)
    q.mmio_wr(PSP_BAR + CMDBUFF_HI, addr >> 32)
    q.mmio_wr(PSP_BAR + CMDRESP, cmd << 16)
    return q.mmio_rd(PSP_BAR + CMDRESP)


def psp_keys(fw, stream, mode="match", kset=0):
    """ROOT_PORT_KEY PROGRAM then GO of the root port's six pairs above RID_EP, with the keys that
    match the endpoint fixture's (test_key of the other direction); returns the results."""
    results = []
    for d in (0, 1):
        for s in (0, 1, 2):
            key, ifv = fake.test_key(stream, 1 - d if mode == "match" else d, s, kset)
            results.append(fw.rp_key(RID_EP, stream, d, s, kset, KEY_PROGRAM, key, ifv))
    for d in (0, 1):
        for s in (0, 1, 2):
            results.append(fw.rp_key(RID_EP, stream, d, s, kset, KEY_GO))
    return results


def psp_tests(t, qemu):
    ep = fake.FakeEndpoint().start()
    fw = FakePsp()
    q = psp_qtest(qemu, fw.port, ep.port)
    try:
        t.ok(q.rd(PSP, 0) == 0xC0C01022 and q.rd(PSP, 8) >> 8 == 0x108000,
             "PSP: vendor 0x1022, device 0xC0C0, class 0x108000", f"{q.rd(PSP, 0):#x} {q.rd(PSP, 8):#x}")
        q.wr(PSP, 0x18, 0xFFFFFFFF)
        bar2 = q.rd(PSP, 0x18)
        q.wr(PSP, 0x18, PSP_BAR)
        others = [q.rd(PSP, 0x10 + 4 * i) for i in (0, 1, 3, 4, 5)]
        t.ok(bar2 == 0xFFF00000 and not any(others),
             "PSP: BAR 2 is 1 MiB of 32-bit memory, no other BAR", f"{bar2:#x} {others}")
        q.mmio_wr(PSP_BAR + CMDBUFF_LO, 0x12345000)
        q.mmio_wr(PSP_BAR + CMDBUFF_HI, 0x9)
        q.mmio_wr(PSP_BAR + 0x10990, 0xFFFFFFFF)
        regs = [q.mmio_rd(PSP_BAR + o) for o in (CMDBUFF_LO, CMDBUFF_HI, CMDRESP, 0x10990, 0)]
        t.ok(regs == [0x12345000, 9, 0, 0, 0] and not fw.commands,
             "PSP: cmdbuff_addr_lo/hi read back; cmdresp 0 before a command; other offsets read 0",
             str([hex(r) for r in regs]))

        # A command: the fake reads the command buffer, writes a page, ends with a status.
        cmd_buf = struct.pack("<IIQ", 16, 0, PAGE)
        q.mem_write(CMD_BUF, cmd_buf)
        q.mem_write(PAGE, bytes(4096))
        page = bytes((i * 7 + 3) & 0xFF for i in range(4096))
        seen = {}

        def round_trip(fw, cmd, addr):
            seen["read"] = fw.dma_read(addr, 16)
            seen["write"] = fw.dma_write(struct.unpack_from("<Q", seen["read"][1], 8)[0], page)
            return 0
        fw.handler = round_trip
        r = psp_command(q, SEV_CMD_TIO_STATUS)
        t.ok(fw.commands[-1:] == [(SEV_CMD_TIO_STATUS, CMD_BUF)] and seen.get("read") == (0, cmd_buf),
             "PSP: COMMAND carries the command and the buffer's address; DMA_READ reads the buffer",
             f"{fw.commands} {seen.get('read')}")
        t.ok(seen.get("write") == 0 and q.mem_read(PAGE, 4096) == page, "PSP: DMA_WRITE writes guest memory")
        t.ok(r == RESP | SEV_CMD_TIO_STATUS << 16, "PSP: DONE status 0: cmdresp RESP | command | 0", hex(r))
        fw.handler = lambda fw, cmd, addr: 0x10031
        r = psp_command(q, 0xD4)
        t.ok(r == RESP | 0xD4 << 16 | 0x31, "PSP: cmdresp carries bits 15:0 of DONE's status", hex(r))
        t.ok(q.logged("coco_psp_command") and q.logged("coco_psp_done"), "PSP: commands and statuses are traced")

        # DMA limits: more than 1 MiB refused, 1 MiB read; bus mastering off refuses DMA.
        def big(fw, cmd, addr):
            seen["big"] = fw.dma_read(CMD_BUF, (1 << 20) + 1)
            seen["max"] = fw.dma_read(CMD_BUF, 1 << 20)
            return 0
        fw.handler = big
        r = psp_command(q, 0xD0)
        t.ok(seen["big"] == (1, b"") and seen["max"][0] == 0 and len(seen["max"][1]) == 1 << 20
             and r == RESP | 0xD0 << 16,
             "PSP: a DMA_READ of more than 1 MiB is refused (result 1), of 1 MiB served",
             f"{seen['big'][0]} {seen['max'][0]} {len(seen['max'][1])} {r:#x}")
        q.wrw(PSP, 0x04, 0x0002)

        def no_bme(fw, cmd, addr):
            seen["nobme"] = (fw.dma_read(CMD_BUF, 16)[0], fw.dma_write(PAGE, b"x"))
            return 0
        fw.handler = no_bme
        r = psp_command(q, 0xD0)
        q.wrw(PSP, 0x04, 0x0006)
        t.ok(seen["nobme"] == (1, 1) and r == RESP | 0xD0 << 16,
             "PSP: with bus mastering off DMA_READ and DMA_WRITE are refused", f"{seen['nobme']} {r:#x}")

        # ROOT_PORT_KEY: the root port's keys, as the VSEC programs them.
        ep.keys.set(5, "test")
        q.wr(EP, EP_SEL[0] + CTL, 5 << 24 | EN)

        def keys(fw, cmd, addr):
            seen["keys"] = psp_keys(fw, 5)
            return 0
        fw.handler = keys
        r = psp_command(q, 0xD4)
        t.ok(seen["keys"] == [0] * 12 and go_state(q, 5) == 0x3F and r == RESP | 0xD4 << 16,
             "PSP: ROOT_PORT_KEY PROGRAM and GO of the six pairs: done, the VSEC's GO_STATE shows them",
             f"{seen['keys']} GO_STATE {go_state(q, 5):#x}")
        q.wr(RP, RP_SEL[0] + CTL, 5 << 24 | EN)
        st = link_status(q)
        t.ok(st == (SECURE, SECURE), "PSP: the keys it programmed match the endpoint's: both ends Secure",
             f"{st[0]:#x} {st[1]:#x}")

        def refusals(fw, cmd, addr):
            key, ifv = fake.test_key(6, 0, 0)
            seen["bad"] = [
                fw.rp_key(0x0900, 6, 0, 0, 0, KEY_PROGRAM, key, ifv),        # no such function
                fw.rp_key(RID_EP, 6, 0, 0, 0, KEY_PROGRAM, key, ifv, segment=1),
                fw.rp_key(RID_EP2, 6, 0, 0, 0, KEY_PROGRAM, key, ifv),       # root port without x-ide
                fw.rp_key(0x0030, 6, 0, 0, 0, KEY_PROGRAM, key, ifv),        # the PSP: no root port
                fw.rp_key(RID_EP, 6, 0, 0, 0, KEY_GO),                       # GO without a key
                fw.rp_key(RID_EP, 6, 0, 3, 0, KEY_PROGRAM, key, ifv),        # sub-stream 3
                fw.rp_key(RID_EP, 6, 2, 0, 0, KEY_PROGRAM, key, ifv),        # direction 2
                fw.rp_key(RID_EP, 6, 0, 0, 2, KEY_PROGRAM, key, ifv),        # key set 2
                fw.rp_key(RID_EP, 6, 0, 0, 0, 4, key, ifv),                  # op 4
            ]
            seen["stop"] = [fw.rp_key(RID_EP, 5, d, s, 0, KEY_STOP) for d in (0, 1) for s in (0, 1, 2)]
            return 0
        fw.handler = refusals
        vsec_status = q.rd(RP, VSEC + 0xC)
        r = psp_command(q, 0xD5)
        bad = seen["bad"]
        t.ok(bad[:2] == [1, 1], "PSP: ROOT_PORT_KEY for an absent Requester ID or segment 1: result 1", str(bad))
        t.ok(bad[2:4] == [2, 2], "PSP: ROOT_PORT_KEY below a root port without x-ide, or on the root bus: result 2",
             str(bad))
        t.ok(bad[4] == 3 and go_state(q, 6) == 0, "PSP: ROOT_PORT_KEY GO of a key set without a key: result 3",
             str(bad))
        t.ok(bad[5:] == [3, 3, 3, 3] and r == RESP | 0xD5 << 16,
             "PSP: ROOT_PORT_KEY with a bad sub-stream, direction, key set or op: result 3", str(bad))
        t.ok(seen["stop"] == [0] * 6 and go_state(q, 5) == 0 and q.rd(RP, VSEC + 0xC) == vsec_status,
             "PSP: ROOT_PORT_KEY STOP takes the pairs out of go; the VSEC's STATUS is its own",
             f"{seen['stop']} GO_STATE {go_state(q, 5):#x}")
        with open(q.log) as f:
            text = f.read()
        leaked = [k.hex() for d, s in fake.PAIRS for k in fake.test_key(5, d, s)
                  if k.hex() in text.replace(" ", "")]
        t.ok(q.logged("coco_psp_root_port_key") and not leaked,
             "PSP: ROOT_PORT_KEY is traced without its keys", str(leaked))
        q.wr(RP, RP_SEL[0] + CTL, 0)
        q.wr(EP, EP_SEL[0] + CTL, 0)

        # The model goes away: RECOVERY now and for every later command, logged once.
        fw.handler = lambda fw, cmd, addr: None
        r1 = psp_command(q, 0xD1)
        r2 = psp_command(q, 0xD2)
        with open(q.log) as f:
            n = f.read().count("complete with RECOVERY")
        t.ok(r1 == RESP | RECOVERY | 0xD1 << 16 and r2 == RESP | RECOVERY | 0xD2 << 16 and n == 1,
             "PSP: a model that closes the socket: RESP | RECOVERY, for later commands too; logged once",
             f"{r1:#x} {r2:#x} logged {n}")
        t.ok(not fw.errors, "PSP: QEMU spoke the protocol to the fake", str(fw.errors))
    except (OSError, ValueError, RuntimeError, AssertionError, KeyError) as e:
        t.ok(False, "PSP with the fake firmware", repr(e))
    finally:
        q.close()

    # Broken models: a payload of the wrong size, an unknown op; none listening.
    for name, reply in (("a DONE of 3 bytes", struct.pack("<II", OP_DONE, 3) + b"\0\0\0"),
                        ("an unknown op", struct.pack("<II", 0x15, 0)),
                        ("a DMA_WRITE of more than 1 MiB", struct.pack("<IIQ", OP_DMA_WRITE, 8 + (1 << 20) + 1, 0))):
        fw = FakePsp()

        def raw(fw, cmd, addr, reply=reply):
            fw.conn.sendall(reply)
            time.sleep(0.2)
            return None
        fw.handler = raw
        q = psp_qtest(qemu, fw.port, ep.port)
        try:
            r = psp_command(q, 0xD0)
            t.ok(r == RESP | RECOVERY | 0xD0 << 16 and q.logged("complete with RECOVERY"),
                 f"PSP: a model that sends {name}: RESP | RECOVERY, logged", hex(r))
        except (OSError, ValueError, RuntimeError) as e:
            t.ok(False, f"PSP: {name}", repr(e))
        finally:
            q.close()
    port = unused_port()
    q = psp_qtest(qemu, port, ep.port)
    try:
        r = psp_command(q, 0xD0)
        t.ok(r == RESP | RECOVERY | 0xD0 << 16 and q.logged("cannot connect to the firmware model"),
             "PSP: no model listening: QEMU starts, warns, commands complete with RECOVERY", hex(r))
    finally:
        q.close()


def psp_real(t, qemu, binary):
    """TIO_STATUS against the real firmware model."""
    if not binary or not os.path.exists(binary):
        print(f"# SKIP PSP with the real coco-psp: no {binary} (cargo build --release -p coco-psp)", flush=True)
        return
    d = tempfile.mkdtemp(prefix="coco-psp.")
    port_file, log = os.path.join(d, "port"), os.path.join(d, "coco-psp.log")
    proc = subprocess.Popen([binary, "--port-file", port_file, "--log", log], stdin=subprocess.DEVNULL)
    ep = fake.FakeEndpoint().start()
    q = None
    try:
        for _ in range(200):
            if os.path.exists(port_file) and open(port_file).read().split():
                break
            time.sleep(0.05)
        with open(port_file) as f:
            port = int(f.read().split()[0])
        q = psp_qtest(qemu, port, ep.port)
        status_page = 0x102000
        q.mem_write(status_page, bytes(64))
        q.mem_write(CMD_BUF, struct.pack("<IIQ", 16, 0, status_page))
        r = psp_command(q, SEV_CMD_TIO_STATUS)
        length, flags = struct.unpack("<II", q.mem_read(status_page, 8))
        t.ok(r == RESP | SEV_CMD_TIO_STATUS << 16 and length == 64,
             "PSP with the real coco-psp: TIO_STATUS succeeds, status page of length 64",
             f"cmdresp {r:#x} length {length} flags {flags:#x}")
    except (OSError, ValueError, RuntimeError) as e:
        t.ok(False, "PSP with the real coco-psp", repr(e))
    finally:
        if q:
            q.close()
        proc.terminate()
        proc.wait(timeout=10)


# ---- The guest channel (coco-tio-guest, Documentation/coco/sev-tio-guest.rst) -------------

TG = (0, 7, 0)
TG_BAR = 0xC0000000
TG_EXIT_CODE, TG_REQ, TG_RSP, TG_DATA, TG_NPAGES, TG_SBDF, TG_PARAM = 0x00, 0x08, 0x10, 0x18, 0x20, 0x24, 0x28
TG_DOORBELL, TG_RESULT, TG_FW_ERR = 0x30, 0x34, 0x38
TIO_GUEST_REQUEST, TIO_OP = 0x80000020, 0x80000021
REQ_PAGE, RSP_PAGE, DATA_PAGES = 0x100000, 0x101000, 0x102000
DOE_CAP_ID = 0x2E
# A DOE object (vendor PCI-SIG, type 1 CMA/SPDM, 3 dwords) holding SPDM GET_VERSION, and the
# fake endpoint's answer to it (SPDM ERROR UnsupportedRequest naming the request code 0x84).
GET_VERSION = struct.pack("<HBBI", 1, 1, 0, 3) + bytes([0x10, 0x84, 0, 0])
GET_VERSION_ANSWER = struct.pack("<HBBI", 1, 1, 0, 3) + bytes([0x10, 0x7F, 0x07, 0x84])


def tg_qtest(qemu, fw_port, ep_port, nvme_props=",x-ide=on,x-tee-io=on"):
    """q35 with the guest channel at 00:07.0 (BAR 0 at TG_BAR, memory and bus mastering on), a
    root port with x-ide at 00:04.0 above an NVMe function whose firmware is the fake endpoint
    (bus 1, `nvme_props` added) and a root port at 00:05.0 above an NVMe function without
    spdm_port (bus 2)."""
    q = Qtest(qemu, 0, "", "", devices=[
        "pcie-root-port,id=rp0,bus=pcie.0,addr=4.0,chassis=1,slot=1,x-ide=on",
        f"nvme,id=nvme0,bus=rp0,serial=coco0,spdm_port={ep_port}{nvme_props}",
        "pcie-root-port,id=rp1,bus=pcie.0,addr=5.0,chassis=2,slot=2",
        "nvme,id=nvme1,bus=rp1,serial=coco1",
        f"coco-tio-guest,id=tg,bus=pcie.0,addr=7.0,fw_port={fw_port}"], traces=["coco_tio_guest_*"])
    q.wr(RP1, 0x18, 0x00020200)
    q.wr(TG, 0x10, TG_BAR)
    q.wrw(TG, 0x04, 0x0006)
    return q


def tg_set64(q, off, val):
    q.mmio_wr(TG_BAR + off, val & 0xFFFFFFFF)
    q.mmio_wr(TG_BAR + off + 4, val >> 32)


def tg_get64(q, off):
    return q.mmio_rd(TG_BAR + off) | q.mmio_rd(TG_BAR + off + 4) << 32


def tg_request(q, exit_code=TIO_GUEST_REQUEST, sbdf=0x0100, npages=1, param=0):
    """Fills the registers and rings DOORBELL; returns RESULT."""
    q.mmio_wr(TG_BAR + TG_EXIT_CODE, exit_code)
    tg_set64(q, TG_REQ, REQ_PAGE)
    tg_set64(q, TG_RSP, RSP_PAGE)
    tg_set64(q, TG_DATA, DATA_PAGES)
    q.mmio_wr(TG_BAR + TG_NPAGES, npages)
    q.mmio_wr(TG_BAR + TG_SBDF, sbdf)
    tg_set64(q, TG_PARAM, param)
    q.mmio_wr(TG_BAR + TG_DOORBELL, 1)
    return q.mmio_rd(TG_BAR + TG_RESULT)


def tio_guest_tests(t, qemu):
    ep = fake.FakeEndpoint().start()
    fw = FakePsp()
    q = tg_qtest(qemu, fw.port, ep.port)
    try:
        t.ok(q.rd(TG, 0) == 0xC0C11022 and q.rd(TG, 8) >> 8 == 0x088000,
             "guest channel: vendor 0x1022, device 0xC0C1, class 0x088000", f"{q.rd(TG, 0):#x} {q.rd(TG, 8):#x}")
        q.wr(TG, 0x10, 0xFFFFFFFF)
        bar0 = q.rd(TG, 0x10)
        q.wr(TG, 0x10, TG_BAR)
        others = [q.rd(TG, 0x14 + 4 * i) for i in range(5)]
        t.ok(bar0 == 0xFFFFF000 and not any(others), "guest channel: BAR 0 is 4 KiB of 32-bit memory, no other BAR",
             f"{bar0:#x} {others}")

        # Registers: the inputs read back; RESULT and FW_ERR are read-only; DOORBELL other
        # than 1 does nothing.
        vals = {TG_EXIT_CODE: TIO_OP, TG_REQ: 0x11223000, TG_REQ + 4: 0x1, TG_RSP: 0x44556000,
                TG_RSP + 4: 0x2, TG_DATA: 0x77889000, TG_DATA + 4: 0x3, TG_NPAGES: 7, TG_SBDF: 0x10100,
                TG_PARAM: 0xDEADBEEF, TG_PARAM + 4: 0xCAFE}
        for off, v in vals.items():
            q.mmio_wr(TG_BAR + off, v)
        for off in (TG_RESULT, TG_FW_ERR, TG_FW_ERR + 4, 0x04, 0x40, 0xFFC):
            q.mmio_wr(TG_BAR + off, 0x5A5A5A5A)
        q.mmio_wr(TG_BAR + TG_DOORBELL, 2)
        back = {off: q.mmio_rd(TG_BAR + off) for off in vals}
        ro = [q.mmio_rd(TG_BAR + off) for off in (TG_DOORBELL, TG_RESULT, TG_FW_ERR, TG_FW_ERR + 4, 0x04, 0x40, 0xFFC)]
        t.ok(back == vals and ro == [0] * 7 and not fw.guests,
             "guest channel: registers read back; RESULT, FW_ERR, DOORBELL and other offsets read 0; "
             "DOORBELL 2 sends nothing", f"{ {hex(k): hex(v) for k, v in back.items()} } {ro} {fw.guests}")

        # A request end to end: GUEST with the registers, DMA_READ of the request page,
        # DMA_WRITE of the response page, DEVICE_SPDM to the endpoint, GUEST_DONE latched.
        req = bytes((i * 5 + 1) & 0xFF for i in range(4096))
        rsp = bytes((i * 3 + 2) & 0xFF for i in range(4096))
        q.mem_write(REQ_PAGE, req)
        q.mem_write(RSP_PAGE, bytes(4096))
        seen = {}

        def round_trip(fw, g):
            seen["read"] = fw.dma_read(g["req"], 4096)
            seen["write"] = fw.dma_write(g["rsp"], rsp)
            seen["spdm"] = fw.device_spdm(RID_EP, GET_VERSION)
            seen["spdm_bad"] = [
                fw.device_spdm(0x0900, GET_VERSION)[0],                          # no such function
                fw.device_spdm(RID_EP, GET_VERSION, segment=1)[0],               # segment 1
                fw.device_spdm(RID_EP2, GET_VERSION)[0],                         # no spdm_port
                fw.device_spdm(0x0038, GET_VERSION)[0],                          # the channel itself
                fw.device_spdm(RID_EP, struct.pack("<HBBI", 2, 1, 0, 3) + bytes(4))[0],   # vendor 2
                fw.device_spdm(RID_EP, struct.pack("<HBBI", 1, 0, 0, 3) + bytes(4))[0],   # discovery
                fw.device_spdm(RID_EP, struct.pack("<HBBI", 1, 1, 0, 4) + bytes(4))[0],   # length
            ]
            seen["spdm2"] = fw.device_spdm(RID_EP, GET_VERSION)
            return (2, 5, 0x0000123400000002, 0x3A)
        fw.guest_handler = round_trip
        r = tg_request(q, TIO_GUEST_REQUEST, 0x0100, 1, 0x0000000900000001)
        g = fw.guests[-1] if fw.guests else {}
        t.ok(g.get("exit_code") == TIO_GUEST_REQUEST and g.get("sbdf") == 0x0100 and g.get("req") == REQ_PAGE
             and g.get("rsp") == RSP_PAGE and g.get("data") == DATA_PAGES and g.get("npages") == 1
             and g.get("param") == 0x0000000900000001 and g.get("reserved") == 0,
             "guest channel: GUEST carries the registers (48 bytes)", str(g))
        t.ok(seen.get("read") == (0, req) and seen.get("write") == 0 and q.mem_read(RSP_PAGE, 4096) == rsp,
             "guest channel: DMA_READ reads the request page, DMA_WRITE writes the response page",
             f"{seen.get('read', (None,))[0]} {seen.get('write')}")
        t.ok(seen.get("spdm") == (0, GET_VERSION_ANSWER) and seen.get("spdm2") == (0, GET_VERSION_ANSWER),
             "guest channel: DEVICE_SPDM reaches the endpoint's SPDM responder: result 0 and its DOE object",
             str(seen.get("spdm")))
        t.ok(seen.get("spdm_bad", [None] * 4)[:2] == [1, 1],
             "guest channel: DEVICE_SPDM to an unknown Requester ID or segment 1: result 1", str(seen.get("spdm_bad")))
        t.ok(seen.get("spdm_bad", [None] * 4)[2:4] == [2, 2],
             "guest channel: DEVICE_SPDM to a function without an SPDM responder: result 2", str(seen.get("spdm_bad")))
        t.ok(seen.get("spdm_bad", [None] * 7)[4:] == [3, 3, 3],
             "guest channel: DEVICE_SPDM with a DOE object that is not CMA/SPDM of its length: result 3",
             str(seen.get("spdm_bad")))
        out = (r, q.mmio_rd(TG_BAR + TG_NPAGES), tg_get64(q, TG_PARAM), tg_get64(q, TG_FW_ERR))
        t.ok(out == (2, 5, 0x0000123400000002, 0x3A),
             "guest channel: GUEST_DONE latched into RESULT, DATA_NPAGES, PARAM and FW_ERR", str(out))
        fw.guest_handler = lambda fw, g: (0, 0, 7, 0)
        r = tg_request(q, TIO_OP, 0x0100, 0, 0)
        t.ok(r == 0 and tg_get64(q, TG_FW_ERR) == 0 and tg_get64(q, TG_PARAM) == 7
             and fw.guests[-1]["exit_code"] == TIO_OP, "guest channel: a second request (TIO_OP) latches its own")
        t.ok(q.logged("coco_tio_guest_request") and q.logged("coco_tio_guest_done")
             and q.logged("coco_tio_guest_device_spdm"), "guest channel: requests, results and DEVICE_SPDM are traced")

        # Bus mastering off: RESULT 3 and the model never hears of it.
        q.wrw(TG, 0x04, 0x0002)
        n = len(fw.guests)
        r = tg_request(q)
        q.wrw(TG, 0x04, 0x0006)
        t.ok(r == 3 and len(fw.guests) == n and tg_get64(q, TG_FW_ERR) == 0,
             "guest channel: with bus mastering off RESULT 3, nothing sent to the model", f"{r:#x}")

        # The model goes away: 0xFFFF now and for every later request, logged once.
        fw.guest_handler = lambda fw, g: None
        r1 = tg_request(q)
        r2 = tg_request(q)
        with open(q.log) as f:
            n = f.read().count("complete with RESULT 0xffff")
        t.ok(r1 == 0xFFFF and r2 == 0xFFFF and n == 1,
             "guest channel: a model that closes the socket: RESULT 0xFFFF, for later requests too; logged once",
             f"{r1:#x} {r2:#x} logged {n}")
        t.ok(not fw.errors, "guest channel: QEMU spoke the protocol to the fake", str(fw.errors))
    except (OSError, ValueError, RuntimeError, AssertionError, KeyError) as e:
        t.ok(False, "guest channel with the fake firmware", repr(e))
    finally:
        q.close()

    # Broken models: GUEST_DONE of the wrong size, an op the channel does not serve, a
    # DEVICE_SPDM without a DOE header; none listening.
    for name, reply in (("a GUEST_DONE of 20 bytes", struct.pack("<II", OP_GUEST_DONE, 20) + bytes(20)),
                        ("DONE (coco-psp's) during a guest request", struct.pack("<III", OP_DONE, 4, 0)),
                        ("a DEVICE_SPDM of 8 bytes", struct.pack("<IIHBB", OP_DEVICE_SPDM, 8, RID_EP, 0, 0) + bytes(4))):
        fw = FakePsp()

        def raw(fw, g, reply=reply):
            fw.conn.sendall(reply)
            time.sleep(0.2)
            return None
        fw.guest_handler = raw
        q = tg_qtest(qemu, fw.port, ep.port)
        try:
            r = tg_request(q)
            t.ok(r == 0xFFFF and q.logged("complete with RESULT 0xffff"),
                 f"guest channel: a model that sends {name}: RESULT 0xFFFF, logged", hex(r))
        except (OSError, ValueError, RuntimeError) as e:
            t.ok(False, f"guest channel: {name}", repr(e))
        finally:
            q.close()
    port = unused_port()
    q = tg_qtest(qemu, port, ep.port)
    try:
        r = tg_request(q)
        t.ok(r == 0xFFFF and q.logged("coco-tio-guest: cannot connect to the firmware model"),
             "guest channel: no model listening: QEMU starts, warns, requests get RESULT 0xFFFF", hex(r))
    finally:
        q.close()

    # x-doe-hidden: no DOE capability for the guest, the responder still reached (DEVICE_SPDM)
    # and the platform side channel still used; the chain of extended capabilities valid.
    for props, name in ((",x-ide=on,x-tee-io=on", "x-doe-hidden off"),
                        (",x-ide=on,x-tee-io=on,x-doe-hidden=on", "x-doe-hidden with x-ide"),
                        (",x-tee-io=on,x-doe-hidden=on", "x-doe-hidden without x-ide")):
        ep2 = fake.FakeEndpoint().start()
        fw = FakePsp()
        seen = {}

        def spdm(fw, g):
            seen["spdm"] = fw.device_spdm(RID_EP, GET_VERSION)
            return (0, 0, 0, 0)
        fw.guest_handler = spdm
        q = tg_qtest(qemu, fw.port, ep2.port, props)
        try:
            caps = ext_caps(q, EP)
            hdr100 = q.rd(EP, 0x100)
            tee = q.rd(EP, pcie_cap(q, EP) + 4) & 0x40000000
            r = tg_request(q)
            q.wrw(EP, 0x04, 0x0002)
            events = wait_event(ep2, "CONFIG_WRITE", 0) is not None
            hidden = "hidden=on" in props
            ide = "x-ide" in props
            reached = r == 0 and seen.get("spdm") == (0, GET_VERSION_ANSWER) and tee and events
            if not hidden:
                t.ok(caps.get(DOE_CAP_ID) == 0x100 and caps.get(0x30) == IDE and reached,
                     f"{name}: the DOE capability at 0x100, IDE at 0x200; DEVICE_SPDM reaches the endpoint",
                     f"{ {hex(k): hex(v) for k, v in caps.items()} } {seen}")
            elif ide:
                t.ok(DOE_CAP_ID not in caps and hdr100 == IDE << 20 and caps.get(0x30) == IDE and reached,
                     f"{name}: no DOE capability (a null capability at 0x100 leads to IDE at 0x200); TEE-IO "
                     "bit set; DEVICE_SPDM and the side channel still reach the endpoint",
                     f"0x100 {hdr100:#x} { {hex(k): hex(v) for k, v in caps.items()} } tee {tee} events {events} "
                     f"{seen}")
            else:
                t.ok(hdr100 == 0 and not caps and reached,
                     f"{name}: no extended capability at all; TEE-IO bit set; DEVICE_SPDM and the side channel "
                     "still reach the endpoint", f"0x100 {hdr100:#x} tee {tee} events {events} {seen}")
        except (OSError, ValueError, RuntimeError, AssertionError) as e:
            t.ok(False, name, repr(e))
        finally:
            q.close()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--qemu")
    p.add_argument("--endpoint")
    p.add_argument("--psp", help="the PSP's firmware model (default: target/release/coco-psp if built)")
    a = p.parse_args()
    if not a.psp:
        a.psp = os.path.join(ROOT, "target/release/coco-psp")
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
    psp_tests(t, qemu)
    psp_real(t, qemu, a.psp)
    tio_guest_tests(t, qemu)

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
