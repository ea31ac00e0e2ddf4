#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Host side of the coco QEMU rig.

Starts the emulated endpoints (or uses external responders) and, with --psp, the PSP's
firmware model (coco-psp) for the emulated PSP device, boots the guest
under TCG, serves the guest's requests to the host (hot-unplug, re-plug, kill
an endpoint), enforces a watchdog, and turns what the guest prints into a
verdict: KTAP results of the kselftests and of KUnit, plus a check that the
kernel log holds no oops, KASAN, lockdep or kmemleak report.

Called by scripts/qemu-run.sh; not meant to be run by hand.
"""

import argparse
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SPLATS = [
    re.compile(p)
    for p in (
        r"BUG: KASAN",
        r"UBSAN: ",
        r"BUG: kernel NULL pointer",
        r"BUG: unable to handle",
        r"BUG: sleeping function called from invalid context",
        r"Oops:",
        r"kernel BUG at",
        r"WARNING: possible (circular|recursive) locking",
        r"WARNING: (inconsistent lock state|suspicious RCU usage)",
        r"WARNING: CPU: \d+ PID",
        r"INFO: task .* blocked for more than",
        r"Kernel panic",
        r"rust_panic|panicked at",
        r"unreferenced object 0x",
        r"list_(add|del) corruption",
    )
]

# Reports of known Linux 7.3 issues that do not involve coco (see
# tools/testing/selftests/coco/README): lockdep's pci_rescan_remove_lock vs
# pciehp ctrl->reset_lock report on every pciehp hot-unplug.
KNOWN_UPSTREAM = (("pci_rescan_remove_lock", "ctrl->reset_lock", "pciehp_unconfigure_device"),)


def drop_known_upstream(lines):
    """Returns `lines` without the blocks of known upstream reports (never one naming coco)."""
    out, block = [], None
    for line in lines:
        if "WARNING: possible circular locking dependency detected" in line:
            block = []
        if block is None:
            out.append(line)
            continue
        block.append(line)
        if "</TASK>" in line:
            text = "\n".join(block)
            known = "coco" not in text and any(all(k in text for k in keys) for keys in KNOWN_UPSTREAM)
            if known:
                log("ignoring a known upstream report (pciehp lockdep, not coco): " + block[0].strip())
            else:
                out.extend(block)
            block = None
    if block:
        out.extend(block)
    return out


# KUnit suites of the project; each must report its results in a test run.
KUNIT_SUITES = ("coco", "coco_channel", "coco_crypto", "coco_auth", "coco_meas", "coco_session_crypto", "coco_session", "coco_native",
               "coco_evidence", "coco_guest", "coco_guest_tdi",
               "coco_guest_channel")

# Written to the kernel log by the guest's /init before coco.ko is loaded.
INIT_MARK = "coco-rig: /init started"

# A request of the guest to the host, anywhere in a console line (a kernel
# message may share the line): "@@coco-host <request> <argument>".
HOST_REQUEST = re.compile(r"@@coco-host ([a-z_]+) ([A-Za-z0-9_-]+)")

KTAP_RESULT = re.compile(r"^(\s*)(not ok|ok) (\d+)\s*(.*)$")


def log(msg):
    print(f"rig: {msg}", file=sys.stderr, flush=True)


# The repository (this file is scripts/rig.py).
COCO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Endpoint variants (--variant): what the endpoint process is started with.
VARIANT_OPTIONS = {"fault": "--fault", "key": "--key", "versions": "--versions", "slots": "--slots", "cma-id": "--cma-id",
                   "heartbeat": "--heartbeat-period", "pki": "--pki-profile", "aead": "--aead", "dhe": "--dhe",
                   "ide-keys": "--ide-test-keys"}
# Variants that are a flag: KIND:VALUE -> options.
VARIANT_FLAGS = {"handshake:clear": ["--handshake-in-clear"], "handshake:encrypted": []}
# Variants of the emulated platform (--platform tee-io), not of the endpoint process: the
# function without IDE or without TEE-IO, its root port without IDE.
PLATFORM_VARIANTS = ("platform:no-ide", "platform:no-tee-io", "platform:rp-no-ide")


def variant_parts(variant):
    """The "+"-joined parts of a variant."""
    return variant.split("+") if variant else []


def variant_args(variant):
    """coco-endpoint options for a variant "KIND:VALUE" (e.g. "fault:bad-signature"), or
    several joined by "+" (e.g. "handshake:clear+fault:wrong-verify-data")."""
    if not variant:
        return []
    if "+" in variant:
        return [a for v in variant.split("+") for a in variant_args(v)]
    if variant in VARIANT_FLAGS:
        return list(VARIANT_FLAGS[variant])
    if variant in PLATFORM_VARIANTS:
        return []
    kind, _, value = variant.partition(":")
    if kind == "measurements":
        # measurements:NAME is tools/testing/selftests/coco/NAME-measurements.txt.
        path = os.path.join(COCO_ROOT, "tools/testing/selftests/coco", f"{value}-measurements.txt")
        if not os.path.isfile(path):
            raise RuntimeError(f"bad endpoint variant {variant!r}: no {path}")
        return ["--measurements", path]
    if kind not in VARIANT_OPTIONS or not value:
        raise RuntimeError(f"bad endpoint variant {variant!r} (want fault:K, key:K, versions:L, slots:L, "
                           "cma-id:S, heartbeat:SECS, pki:P, aead:L, dhe:L, ide-keys:STREAM, "
                           "measurements:NAME, platform:no-ide|no-tee-io|rp-no-ide or handshake:clear)")
    return [VARIANT_OPTIONS[kind], value]


class Helper:
    """A process the rig starts beside QEMU (an endpoint, the firmware model) that writes the
    port it listens on to a file; `what` names it in errors."""

    def __init__(self, what, cmd, port_file, log_path):
        self.what = what
        self.port_file = port_file
        self.log_path = log_path
        self.killed = False
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log_path + ".stderr", "w"),
            start_new_session=True,
        )
        self.port = self._wait_port()

    def _wait_port(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.what} exited at start (status {self.proc.returncode}); see {self.log_path}")
            try:
                with open(self.port_file) as f:
                    text = f.read().split()
                if text:
                    return int(text[0])
            except FileNotFoundError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.what} did not report its port within 10 s")

    def kill(self):
        self.killed = True
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Endpoint(Helper):
    """One emulated endpoint process (one per device, so that one can be killed alone)."""

    def __init__(self, binary, index, workdir, variant=None, pki_dir=None):
        self.index = index
        self.variant = variant
        port_file = os.path.join(workdir, f"endpoint{index}.port")
        # While this file exists the endpoint reports updated firmware (measurements).
        self.fw_update_file = os.path.join(workdir, f"endpoint{index}.fwupdate")
        log_path = os.path.join(workdir, f"endpoint{index}.log")
        cmd = ([binary, "--count", "1", "--persist", "--port-file", port_file, "--log", log_path]
               + (["--pki-dir", pki_dir] if pki_dir else [])
               + ["--fw-update-file", self.fw_update_file]
               + variant_args(variant))
        super().__init__(f"endpoint {index}", cmd, port_file, log_path)


class Psp(Helper):
    """The PSP's firmware model (coco-psp, Documentation/coco/sev-tio-platform.rst): one process
    whose port the machine's coco-psp device (or the guest's coco-tio-guest) connects to."""

    def __init__(self, binary, workdir, faults=(), guest_tdis=()):
        port_file = os.path.join(workdir, "coco-psp.port")
        log_path = os.path.join(workdir, "coco-psp.log")
        cmd = [binary, "--port-file", port_file, "--log", log_path]
        for f in faults:
            cmd += ["--fault", f]
        for t in guest_tdis:
            cmd += ["--guest-tdi", t]
        super().__init__("coco-psp", cmd, port_file, log_path)


class Rig:
    def __init__(self, args):
        self.args = args
        self.workdir = tempfile.mkdtemp(prefix="coco-rig.")
        self.endpoints = []
        self.ports = []
        self.psp = None
        self.qemu = None
        self.monitor_path = os.path.join(self.workdir, "monitor.sock")
        self.failures = []
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.console = []
        self.cmd_status = None
        self.saw_end = False
        self.saw_boot = False
        self.t_start = None
        self.t_boot = None
        self.t_probe = None
        self.dmesg = []
        self.in_dmesg = False
        self.in_kmemleak = False
        self.kmemleak = []
        self.current = None  # test program (or "kunit <suite>") whose KTAP is being read
        self.kunit_suites = []  # KUnit suites whose section was read
        self.current_results = 0
        self.current_failed = 0

    # ---- endpoints -------------------------------------------------------
    def start_endpoints(self):
        if self.args.external_port:
            self.ports = list(self.args.external_port)
            log(f"using external responder(s) on port(s) {', '.join(map(str, self.ports))}")
            return
        variants = [None] * self.args.endpoints + list(self.args.variant or [])
        for i, variant in enumerate(variants):
            ep = Endpoint(self.args.endpoint_bin, i, self.workdir, variant, self.args.pki_dir)
            self.endpoints.append(ep)
            self.ports.append(ep.port)
        log(f"started {len(self.endpoints)} endpoint(s) on port(s) {', '.join(map(str, self.ports))}")

    def start_psp(self):
        """The PSP's firmware model, when --psp asks for the coco-psp device, or --guest for
        the guest channel (the model then plays the host and the TSM for the functions
        assigned to the guest, Documentation/coco/sev-tio-guest.rst)."""
        if not self.args.psp and not self.args.guest:
            return
        if self.args.platform != "tee-io":
            raise RuntimeError("--psp and --guest need the project's QEMU (--platform tee-io)")
        binary = self.args.psp_bin
        if not binary or not os.path.exists(binary):
            raise RuntimeError(f"no firmware model binary {binary!r} (cargo build --release -p coco-psp)")
        # Endpoint i is the function on bus i + 1 (see qemu_cmd).
        tdis = [f"{i + 1:02x}:00.0" for i in range(len(self.ports))] if self.args.guest else []
        self.psp = Psp(binary, self.workdir, self.args.psp_fault or [], tdis)
        faults = "".join(f" --fault {f}" for f in self.args.psp_fault or [])
        role = f" for the guest's {len(tdis)} TDI(s)" if tdis else ""
        log(f"started coco-psp on port {self.psp.port}{role}{faults}")

    # ---- qemu ------------------------------------------------------------
    def platform_props(self, i):
        """(NVMe function properties, root port properties) of endpoint i on the platform, as
        booleans (QMP wants them so; the command line gets on/off)."""
        if self.args.platform != "tee-io":
            return {}, {}
        parts = variant_parts(self.variant_of(i))
        if self.args.guest:
            # An assigned TDI as a confidential guest sees it: TEE-IO, no DOE mailbox (the
            # host's, reached by the firmware model through QEMU), no IDE (the host's link).
            return {"x-ide": False, "x-tee-io": True, "x-doe-hidden": True}, {"x-ide": False}
        ep = {"x-ide": "platform:no-ide" not in parts, "x-tee-io": "platform:no-tee-io" not in parts}
        rp = {"x-ide": "platform:rp-no-ide" not in parts}
        return ep, rp

    @staticmethod
    def props_arg(props):
        return "".join(f",{k}={'on' if v else 'off'}" for k, v in props.items())

    def variant_of(self, i):
        variants = [None] * self.args.endpoints + list(self.args.variant or [])
        return variants[i] if i < len(variants) else None

    def disk_path(self, i):
        return os.path.join(self.workdir, f"disk{i}.img")

    def device_args(self, i):
        ep, _ = self.platform_props(i)
        drive = f",drive=coco-disk{i}" if self.args.guest else ""
        return (f"nvme,id=coco-nvme{i},bus=coco-rp{i},serial=coco{i},spdm_port={self.ports[i]}"
                f"{drive}{self.props_arg(ep)}")

    def make_disk(self, i):
        """A 1 MiB namespace for endpoint i whose first sector names it: the guest's test
        reads it once the driver is bound."""
        with open(self.disk_path(i), "wb") as f:
            f.write(f"coco-guest-disk-{i}\n".encode().ljust(512, b"\0"))
            f.truncate(1 << 20)

    def qemu_cmd(self, interactive):
        a = self.args
        cmdline = "console=ttyS0 panic=-1 oops=panic loglevel=4 log_buf_len=4M " + a.append
        if a.guest:
            # A confidential guest: TEE-I/O functions wait for acceptance.
            cmdline += " pci=tee_accept"
        cmd = [
            a.qemu or "qemu-system-x86_64",
            "-machine", "q35",
            "-accel", "tcg",
            "-cpu", "max",
            "-smp", str(a.smp),
            "-m", a.memory,
            "-display", "none",
            "-no-reboot",
            # Native PCIe hotplug (pciehp) on the root ports instead of ACPI hotplug.
            "-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
            "-kernel", a.kernel,
            "-initrd", a.initrd,
            "-append", cmdline,
            "-qmp", f"unix:{self.monitor_path},server=on,wait=off",
        ]
        if a.platform == "tee-io":
            # The project's QEMU runs from its build folder with Debian's firmware; its +ds
            # source has no NIC option ROMs.
            cmd += ["-L", "/usr/share/seabios", "-L", "/usr/share/qemu", "-nic", "none"]
        cmd += ["-serial", "mon:stdio" if interactive else "stdio"]
        for i in range(len(self.ports)):
            # Eight root ports per slot of pcie.0 (functions 0-7, from slot 4 on): a plain
            # slot each would run out of pcie.0's 32 slots with the fault matrix. Their order,
            # hence bus i + 1 for endpoint i, stays that of i.
            fn0 = ",multifunction=on" if i % 8 == 0 else ""
            _, rp = self.platform_props(i)
            rprops = self.props_arg(rp)
            cmd += ["-device", f"pcie-root-port,id=coco-rp{i},bus=pcie.0,addr={4 + i // 8:x}.{i % 8}{fn0},"
                    f"chassis={i + 1},slot={i + 1}{rprops}"]
            if a.guest:
                self.make_disk(i)
                cmd += ["-drive", f"file={self.disk_path(i)},if=none,id=coco-disk{i},format=raw"]
            cmd += ["-device", self.device_args(i)]
        if self.psp and a.guest:
            # The guest-to-TSM channel on pcie.0, after the root ports' slots.
            cmd += ["-device", f"coco-tio-guest,id=coco-guest,bus=pcie.0,fw_port={self.psp.port}"]
        elif self.psp:
            # The emulated PSP on pcie.0, after the root ports' slots.
            cmd += ["-device", f"coco-psp,id=coco-psp,bus=pcie.0,fw_port={self.psp.port}"]
        return cmd

    def qmp(self, command, arguments=None):
        """Runs one QMP command on QEMU's monitor socket; returns (ok, reply-or-error)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        try:
            s.connect(self.monitor_path)
            f = s.makefile("rw")
            f.readline()  # greeting
            for cmd in ({"execute": "qmp_capabilities"}, {"execute": command, "arguments": arguments or {}}):
                f.write(json.dumps(cmd) + "\n")
                f.flush()
                while True:
                    line = f.readline()
                    if not line:
                        return False, "monitor closed the connection"
                    msg = json.loads(line)
                    if "return" in msg:
                        break
                    if "error" in msg:
                        return False, msg["error"].get("desc", str(msg["error"]))
            return True, msg["return"]
        finally:
            s.close()

    def device_add_args(self, i):
        ep, _ = self.platform_props(i)
        return {
            "driver": "nvme",
            "id": f"coco-nvme{i}",
            "bus": f"coco-rp{i}",
            "serial": f"coco{i}",
            "spdm_port": self.ports[i],
            **ep,
        }

    def host_request(self, req, arg):
        argv = [arg]
        line = f"{req} {arg}"
        try:
            if req == "device_del" and argv:
                log(f"guest asks: device_del {argv[0]}")
                ok, reply = self.qmp("device_del", {"id": argv[0]})
                if not ok:
                    log(f"device_del failed: {reply}")
            elif req == "device_add" and argv:
                i = int(argv[0])
                log(f"guest asks: device_add endpoint {i}")
                # QEMU frees the id once the guest has powered the slot off: retry a while.
                for _ in range(40):
                    ok, reply = self.qmp("device_add", self.device_add_args(i))
                    if ok:
                        break
                    time.sleep(0.5)
                else:
                    log(f"device_add failed: {reply}")
            elif req == "kill_endpoint" and argv:
                i = int(argv[0])
                if i < len(self.endpoints):
                    log(f"guest asks: kill endpoint {i} (port {self.endpoints[i].port})")
                    self.endpoints[i].kill()
                else:
                    log(f"cannot kill endpoint {i}: not started by the rig")
            elif req in ("fw_update", "fw_revert") and argv:
                i = int(argv[0])
                if i >= len(self.endpoints):
                    log(f"cannot {req} endpoint {i}: not started by the rig")
                elif req == "fw_update":
                    log(f"guest asks: firmware update of endpoint {i}")
                    open(self.endpoints[i].fw_update_file, "w").close()
                else:
                    log(f"guest asks: firmware revert of endpoint {i}")
                    try:
                        os.unlink(self.endpoints[i].fw_update_file)
                    except FileNotFoundError:
                        pass
            else:
                log(f"unknown host request: {line!r}")
        except (OSError, ValueError, KeyError) as e:
            log(f"host request {line!r} failed: {e}")

    def check_endpoints(self):
        for ep in self.endpoints:
            if not ep.killed and ep.proc.poll() is not None:
                ep.killed = True
                self.fail(
                    f"endpoint {ep.index} (port {ep.port}) exited unexpectedly with status "
                    f"{ep.proc.returncode}: the guest's DOE exchanges with it will fail (log: {ep.log_path})"
                )
        # The model exits with status 0 when QEMU closes its connection (QEMU exiting); any
        # other exit is its own failure (a broken protocol, a crash).
        if self.psp and not self.psp.killed and self.psp.proc.poll() not in (None, 0):
            self.psp.killed = True
            self.fail(f"coco-psp (port {self.psp.port}) exited unexpectedly with status "
                      f"{self.psp.proc.returncode}: PSP commands complete with RECOVERY (log: {self.psp.log_path})")

    def fail(self, msg):
        self.failures.append(msg)
        log(f"FAIL: {msg}")

    def run(self):
        interactive = self.args.mode == "shell"
        cmd = self.qemu_cmd(interactive)
        if self.args.verbose:
            log("qemu: " + " ".join(cmd))
        if interactive:
            self.qemu = subprocess.Popen(cmd)
            return self.qemu.wait()
        self.qemu = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        start = self.t_start = time.monotonic()
        buf = b""
        last_line = ""
        fd = self.qemu.stdout.fileno()
        console_log = open(os.path.join(self.args.log_dir, "console.log"), "w") if self.args.log_dir else None
        last_output = start
        while True:
            now = time.monotonic()
            why = None
            if now - start > self.args.timeout:
                why = f"the guest did not finish within {self.args.timeout} s"
            elif not self.saw_boot and now - start > self.args.boot_timeout:
                why = f"the guest did not reach /init within {self.args.boot_timeout} s"
            elif now - last_output > self.args.idle_timeout:
                why = f"the guest printed nothing for {self.args.idle_timeout} s"
            if why:
                self.fail(f"watchdog: {why}; stopping QEMU. Last console lines:\n    " + "\n    ".join(self.console[-25:]))
                self.qemu.kill()
                break
            r, _, _ = select.select([fd], [], [], 0.5)
            self.check_endpoints()
            if not r:
                if self.qemu.poll() is not None:
                    break
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            last_output = time.monotonic()
            buf += chunk
            while b"\n" in buf:
                raw, buf = buf.split(b"\n", 1)
                line = raw.decode(errors="replace").rstrip("\r")
                last_line = line
                self.console.append(line)
                if console_log:
                    console_log.write(line + "\n")
                self.on_line(line)
        self.qemu.wait()
        self.timing(time.monotonic())
        if console_log:
            console_log.close()
        if not self.saw_end:
            self.fail(f"the guest stopped before finishing (qemu status {self.qemu.returncode}, last line: {last_line!r})")
        return 0

    # ---- guest output ----------------------------------------------------
    def on_line(self, line):
        m = HOST_REQUEST.search(line)
        if m:
            self.host_request(m.group(1), m.group(2))
            return
        if line.startswith("@@coco-end"):
            self.saw_end = True
        if line.startswith("@@coco-boot"):
            self.saw_boot = True
            self.t_boot = time.monotonic()
        if line.startswith("@@coco-summary") and self.t_probe is None:
            self.t_probe = time.monotonic()
        m = re.match(r"@@coco-cmd-exit (\d+)", line)
        if m:
            self.cmd_status = int(m.group(1))
            return
        if line.startswith("@@coco-"):
            self.marker(line)
            return
        if self.in_dmesg:
            self.dmesg.append(line)
            return
        if self.in_kmemleak:
            self.kmemleak.append(line)
            return
        if self.args.mode in ("cmd", "summary") or self.args.verbose:
            print(line, flush=True)
        elif self.current is not None:
            print(line, flush=True)
            self.ktap(line)
        else:
            # Kernel messages at warning level and above reach the console live.
            if any(p.search(line) for p in SPLATS):
                print(line, flush=True)

    def marker(self, line):
        word = line.split()[0]
        if word == "@@coco-test-begin":
            self.current = line.split()[1] if len(line.split()) > 1 else "?"
            self.current_results = 0
            self.current_failed = 0
            print(f"# {self.current}", flush=True)
        elif word == "@@coco-test-end":
            parts = line.split()
            rc = parts[2] if len(parts) > 2 else "?"
            if self.current and self.current_results == 0:
                self.failed += 1
                self.fail(f"{self.current}: reported no KTAP result (exit status {rc})")
            elif rc not in ("0", "4"):
                # kselftest: 0 pass, 4 skip; a failing check already counted itself.
                if self.current_failed == 0:
                    self.failed += 1
                    self.fail(f"{self.current}: exited with status {rc} without a failing check")
            self.current = None
            self.current_failed = 0
        elif word == "@@coco-kmemleak-begin":
            self.in_kmemleak = True
            self.kmemleak = []
        elif word == "@@coco-kmemleak-end":
            self.in_kmemleak = False
            leaks = [line for line in self.kmemleak if "unreferenced object" in line]
            if leaks:
                self.failed += 1
                self.fail("kmemleak at the end of the run: " + f"{len(leaks)} unreferenced object(s):\n    " + "\n    ".join(self.kmemleak[:40]))
            else:
                self.passed += 1
                print("ok - kmemleak: no unreferenced object at the end of the run", flush=True)
        elif word == "@@coco-dmesg-begin":
            self.in_dmesg = True
        elif word == "@@coco-dmesg-end":
            self.in_dmesg = False
        elif word in ("@@coco-summary", "@@coco-boot", "@@coco-kunit-begin", "@@coco-kunit-end"):
            if word == "@@coco-kunit-begin":
                suite = line.split()[1] if len(line.split()) > 1 else "coco"
                self.kunit_suites.append(suite)
                self.current = f"kunit {suite}"
                self.current_results = 0
                self.current_failed = 0
            elif word == "@@coco-kunit-end":
                if self.current_results == 0:
                    self.failed += 1
                    self.fail(f"{self.current}: the suite reported no results (did KUnit run at module load?)")
                self.current = None

    def ktap(self, line):
        if self.current != "kunit" and re.match(r"^1\.\.0\s*#\s*SKIP", line):
            # kselftest "skip all": one skipped result for the program.
            self.current_results += 1
            self.skipped += 1
            return
        m = KTAP_RESULT.match(line)
        if not m:
            return
        indent, verdict, _num, rest = m.groups()
        if self.current is not None and self.current.startswith("kunit "):
            # Count test cases (nested results) and not the suite line.
            if len(indent) == 0:
                return
        elif len(indent) != 0:
            return
        self.current_results += 1
        if "# SKIP" in rest:
            self.skipped += 1
        elif verdict == "ok":
            self.passed += 1
        else:
            self.failed += 1
            self.current_failed += 1
            self.fail(f"{self.current}: {rest.strip()}")

    def timing(self, end):
        def rel(t):
            return f"{t - self.t_start:.1f} s" if t is not None else "n/a"

        log(f"timing: /init at {rel(self.t_boot)}, coco probed at {rel(self.t_probe)}, QEMU exited at {rel(end)}")

    def check_kunit_suites(self):
        """Every project suite printed a section (an empty one already failed)."""
        for suite in KUNIT_SUITES:
            if suite not in self.kunit_suites:
                self.failed += 1
                self.fail(f"kunit {suite}: no results in debugfs (suite not built or module not loaded?)")

    def check_kernel_log(self):
        """Checks the kernel log of the run: no crash or debug report once /init started.

        Reports from early boot (before /init, when no coco code has run) are shown
        and counted as skipped: they are the kernel's or QEMU's, not the module's.
        """
        text = drop_known_upstream(self.dmesg if self.dmesg else self.console)
        mark = next((i for i, line in enumerate(text) if INIT_MARK in line), None)
        if mark is not None:
            early = [line for line in text[:mark] if any(p.search(line) for p in SPLATS)]
            if early:
                self.skipped += 1
                print("ok - early boot, before /init: # SKIP report not caused by coco (coco.ko not loaded yet):", flush=True)
                for line in text[:mark]:
                    if any(p.search(line) for p in SPLATS) or "Call Trace" in line:
                        print(f"#   {line}", flush=True)
            text = text[mark:]
        hits = [line for line in text if any(p.search(line) for p in SPLATS)]
        if hits:
            self.failed += 1
            self.fail("kernel log has crash/debug reports:\n    " + "\n    ".join(hits[:20]))
        else:
            self.passed += 1
            print("ok - kernel log: no oops, KASAN, UBSAN, lockdep, kmemleak or WARN report", flush=True)

    def cleanup(self):
        if self.qemu and self.qemu.poll() is None:
            self.qemu.kill()
            self.qemu.wait()
        for ep in self.endpoints:
            ep.stop()
        if self.psp:
            self.psp.stop()
        if self.args.log_dir:
            logs = [ep.log_path for ep in self.endpoints] + ([self.psp.log_path] if self.psp else [])
            for path in logs:
                for p in (path, path + ".stderr"):
                    if os.path.exists(p):
                        shutil.copy(p, self.args.log_dir)
        shutil.rmtree(self.workdir, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--kernel", required=True)
    p.add_argument("--initrd", required=True)
    p.add_argument("--mode", choices=("summary", "cmd", "shell", "test"), default="summary")
    p.add_argument("--endpoints", type=int, default=1)
    p.add_argument("--endpoint-bin")
    p.add_argument("--pki-dir", help="PKI directory shared by the endpoints (its root is the guest's trust anchor)")
    p.add_argument("--external-port", type=int, action="append")
    p.add_argument("--variant", action="append", help="one more endpoint, started with KIND:VALUE")
    p.add_argument("--timeout", type=int, default=900, help="whole run")
    p.add_argument("--boot-timeout", type=int, default=180, help="until /init prints")
    p.add_argument("--idle-timeout", type=int, default=300, help="longest silence")
    p.add_argument("--smp", type=int, default=2)
    p.add_argument("--memory", default="2G")
    p.add_argument("--append", default="")
    p.add_argument("--log-dir")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("--qemu", help="QEMU binary (default: qemu-system-x86_64 from PATH)")
    p.add_argument("--platform", choices=("stock", "tee-io"), default="stock",
                   help="tee-io: the project's QEMU with IDE on the endpoints and root ports, TEE-IO")
    p.add_argument("--psp", action="store_true",
                   help="the emulated PSP (-device coco-psp) and its firmware model coco-psp")
    p.add_argument("--psp-bin", help="the firmware model (default: target/release/coco-psp)")
    p.add_argument("--psp-fault", action="append", metavar="F", help="coco-psp --fault F (repeatable)")
    p.add_argument("--guest", action="store_true",
                   help="boot as a confidential guest (pci=tee_accept): the functions are assigned TDIs "
                        "without DOE, the guest channel (-device coco-tio-guest) and coco-psp as host and TSM")
    args = p.parse_args()
    if args.psp_fault and not (args.psp or args.guest):
        p.error("--psp-fault needs --psp or --guest")
    if args.psp and args.guest:
        p.error("--psp and --guest exclude each other (the host's PSP, or the guest's channel)")
    if (args.psp or args.guest) and not args.psp_bin:
        args.psp_bin = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "target/release/coco-psp")

    rig = Rig(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    status = 0
    try:
        rig.start_endpoints()
        rig.start_psp()
        rig.run()
        if args.mode == "shell":
            return 0
        if args.mode == "test":
            rig.check_kunit_suites()
            rig.check_kernel_log()
            for f in rig.failures:
                print(f"# failure: {f}", flush=True)
            print(f"rig: {rig.passed} passed, {rig.failed} failed, {rig.skipped} skipped", flush=True)
            status = 1 if rig.failed or rig.failures else 0
        else:
            if rig.failures:
                for f in rig.failures:
                    print(f"rig: {f}", file=sys.stderr)
                status = 1
            if args.mode == "cmd":
                status = rig.cmd_status if rig.cmd_status is not None else 1
    except RuntimeError as e:
        log(f"error: {e}")
        status = 1
    except KeyboardInterrupt:
        status = 130
    finally:
        rig.cleanup()
    return status


if __name__ == "__main__":
    sys.exit(main())
