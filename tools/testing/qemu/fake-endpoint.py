#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""A fake TEE-IO endpoint for testing the project's QEMU without coco-endpoint.

Speaks QEMU's spdm_port socket framing (u32 command | u32 transport | u32 size, big endian,
then the payload) and the side channel of Documentation/coco/tee-io-platform.rst:

  PLATFORM_IDE_KEYS (0xC0C00001)  the key state this fake is configured with (--keys, or
                                  Keys.program/go/stop from a test)
  PLATFORM_EVENT    (0xC0C00002)  logged (--event-log, one JSON object a line); FLR and RESET
                                  erase every key, STREAM_DISABLED the stream's keys
  PLATFORM_TDI_STATE (0xC0C00003) always CONFIG_UNLOCKED (0)

DOE objects (command NORMAL) are forwarded to --upstream PORT (a real SPDM responder, e.g.
coco-endpoint) when given, else answered with an SPDM ERROR UnsupportedRequest. With
--no-side-channel every platform command gets --unknown-reply (0xFFFF, UNKNOWN, as spdm-emu
answers; 0xDEAD as older servers do), as from an endpoint that knows none.

Keys: --keys STREAM:MODE (repeatable). MODE is "test" (the coco-endpoint --ide-test-keys
fixture: K0 in go for the six pairs), "partial" (the fixture without TX-CPL) or "other"
(K0 in go for the six pairs with keys that match no fixture). These keys are provisioned:
a conventional reset (RESET; QEMU sends none at power-on, the connection is) erases every
key and then programs them again; FLR and STREAM_DISABLED erase them for good.

The key model is IDE_KM's, as coco-endpoint implements it: per stream, pair and key set
(K0, K1) a programmed key; GO on an RX pair adds the key set to those in go (a receiver
takes the key set each TLP names), on a TX pair makes it the only one (a transmitter uses
one); STOP erases the key set and takes it out of go; GO of a key set without a key fails.
"""

import argparse
import hashlib
import json
import os
import socket
import struct
import sys
import threading

NORMAL = 0x0001
SHUTDOWN = 0xFFFE
UNKNOWN = 0xFFFF
PLATFORM_IDE_KEYS = 0xC0C00001
PLATFORM_EVENT = 0xC0C00002
PLATFORM_TDI_STATE = 0xC0C00003
EVENT_NAMES = {1: "FLR", 2: "RESET", 3: "CONFIG_WRITE", 4: "BARS", 5: "IDE_REGISTERS",
               6: "STREAM_DISABLED"}
# (direction, sub-stream) pairs in the contract's order: RX-PR .. TX-CPL.
PAIRS = [(d, s) for d in (0, 1) for s in (0, 1, 2)]


def test_key(stream, direction, sub, kset=0):
    """coco-endpoint's --ide-test-keys fixture: (key, ifv) of the endpoint's pair. Key set 1
    (which no fixture has) gets keys of this fake's own derivation, for refresh tests."""
    seed = b"coco-ide-test" + bytes([stream, direction, sub])
    if kset:
        seed += b"k1"
    return hashlib.sha256(seed).digest(), hashlib.sha256(seed + b"ifv").digest()[:8]


def key_digest(key, ifv):
    return hashlib.sha256(key + ifv).digest()


class Keys:
    """Per stream: per pair, {"keys": {key set: digest}, "go": bit k = key set k in go}."""

    def __init__(self):
        self.streams = {}
        self.lock = threading.Lock()

    def _pairs(self, stream):
        return self.streams.setdefault(stream, [{"keys": {}, "go": 0} for _ in PAIRS])

    def set(self, stream, mode):
        """The stream's keys are K0 of MODE (see --keys), in go."""
        pairs = [{"keys": {}, "go": 0} for _ in PAIRS]
        for n, (d, s) in enumerate(PAIRS):
            if mode == "partial" and n == 5:
                continue
            key, ifv = test_key(stream, d, s)
            if mode == "other":
                key = hashlib.sha256(b"other" + key).digest()
            pairs[n] = {"keys": {0: key_digest(key, ifv)}, "go": 1}
        with self.lock:
            self.streams[stream] = pairs

    def program(self, stream, pair, kset, key, ifv):
        """KEY_PROG: only the digest is kept; a key set in go stays in go."""
        with self.lock:
            self._pairs(stream)[pair]["keys"][kset] = key_digest(key, ifv)

    def go(self, stream, pair, kset):
        """K_SET_GO; False (refused) when the key set holds no key."""
        with self.lock:
            p = self._pairs(stream)[pair]
            if kset not in p["keys"]:
                return False
            p["go"] = 1 << kset if PAIRS[pair][0] == 1 else p["go"] | 1 << kset
            return True

    def stop(self, stream, pair, kset):
        """K_SET_STOP: the key set's key is erased and it leaves the go state."""
        with self.lock:
            p = self._pairs(stream)[pair]
            p["keys"].pop(kset, None)
            p["go"] &= ~(1 << kset)

    def go_mask(self, stream, pair):
        with self.lock:
            return self.streams[stream][pair]["go"] if stream in self.streams else 0

    def clear(self, stream=None):
        with self.lock:
            if stream is None:
                self.streams.clear()
            else:
                self.streams.pop(stream, None)

    def reply(self, stream):
        """PLATFORM_IDE_KEYS: stream, flags, then per pair go, reserved, digest[2][32]."""
        with self.lock:
            pairs = [dict(p, keys=dict(p["keys"])) for p in self.streams.get(stream, [])]
        entries = b""
        for p in pairs or [{"keys": {}, "go": 0}] * len(PAIRS):
            entries += bytes([p["go"], 0])
            for k in (0, 1):
                entries += p["keys"][k] if p["go"] & 1 << k else bytes(32)
        keyed = bool(pairs) and all(p["go"] for p in pairs)
        return bytes([stream, 1 if keyed else 0]) + entries


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_frame(sock):
    hdr = read_exact(sock, 12)
    if hdr is None:
        return None
    command, transport, size = struct.unpack(">III", hdr)
    payload = read_exact(sock, size) if size else b""
    if payload is None:
        return None
    return command, transport, payload


def frame(command, transport, payload):
    return struct.pack(">III", command, transport, len(payload)) + payload


class FakeEndpoint:
    def __init__(self, port=0, upstream=None, side_channel=True, event_log=None, unknown_reply=UNKNOWN):
        self.keys = Keys()
        self.keys_reply_len = None  # a test may cut PLATFORM_IDE_KEYS replies to this length
        self.unknown_reply = unknown_reply
        self.platform_requests = 0   # side-channel requests received
        self.provisioned = []     # (stream, mode) programmed again after RESET
        self.events = []
        self.events_cv = threading.Condition()
        self.upstream = upstream
        self.side_channel = side_channel
        self.event_log = open(event_log, "a", buffering=1) if event_log else None
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", port))
        self.srv.listen(4)
        self.port = self.srv.getsockname()[1]

    def serve_forever(self):
        while True:
            conn, _ = self.srv.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def start(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def record(self, name, data):
        ev = {"event": name}
        ev.update(data)
        with self.events_cv:
            self.events.append(ev)
            self.events_cv.notify_all()
        if self.event_log:
            self.event_log.write(json.dumps(ev) + "\n")

    def on_event(self, payload):
        if not payload:
            return
        ev, data = payload[0], payload[1:]
        name = EVENT_NAMES.get(ev, f"unknown-{ev}")
        info = {}
        if ev in (1, 2):
            self.keys.clear()
            if ev == 2:
                for stream, mode in self.provisioned:
                    self.keys.set(stream, mode)
        elif ev == 3 and len(data) >= 8:
            off, size, _, val = struct.unpack("<HBBI", data[:8])
            info = {"offset": off, "size": size, "value": val}
        elif ev == 4 and data:
            bars = []
            for i in range(data[0]):
                bar, flags, _, base, size = struct.unpack("<BBHQQ", data[1 + 20 * i:21 + 20 * i])
                bars.append({"bar": bar, "flags": flags, "base": base, "size": size})
            info = {"bars": bars}
        elif ev == 5 and len(data) >= 2:
            off = struct.unpack("<H", data[:2])[0]
            regs = [struct.unpack("<I", data[2 + i:6 + i])[0] for i in range(0, len(data) - 2, 4)]
            info = {"offset": off, "regs": regs}
        elif ev == 6 and data:
            self.keys.clear(data[0])
            info = {"stream": data[0]}
        self.record(name, info)

    def serve(self, conn):
        up = None
        if self.upstream:
            up = socket.create_connection(("127.0.0.1", self.upstream))
            up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                f = read_frame(conn)
                if f is None:
                    return
                command, transport, payload = f
                if command == SHUTDOWN:
                    if up:
                        up.sendall(frame(command, transport, payload))
                    return
                if command == NORMAL:
                    if up:
                        up.sendall(frame(command, transport, payload))
                        rsp = read_frame(up)
                        if rsp is None:
                            return
                        conn.sendall(frame(*rsp))
                    else:
                        # DOE header (vendor, type, length) + SPDM 1.0 ERROR UnsupportedRequest.
                        spdm = bytes([0x10, 0x7F, 0x07, payload[9] if len(payload) > 9 else 0])
                        doe = payload[:4] + struct.pack("<I", 2 + len(spdm) // 4) + spdm
                        conn.sendall(frame(NORMAL, transport, doe))
                    continue
                self.platform_requests += 1
                if not self.side_channel or command not in (PLATFORM_IDE_KEYS, PLATFORM_EVENT,
                                                            PLATFORM_TDI_STATE):
                    conn.sendall(frame(self.unknown_reply, transport, b""))
                    continue
                if command == PLATFORM_IDE_KEYS and len(payload) == 1:
                    self.record("IDE_KEYS", {"stream": payload[0]})
                    reply = self.keys.reply(payload[0])[:self.keys_reply_len]
                    conn.sendall(frame(command, transport, reply))
                elif command == PLATFORM_EVENT:
                    self.on_event(payload)
                    conn.sendall(frame(command, transport, b""))
                elif command == PLATFORM_TDI_STATE:
                    conn.sendall(frame(command, transport, b"\x00"))
                else:
                    conn.sendall(frame(UNKNOWN, transport, b""))
        finally:
            conn.close()
            if up:
                up.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", help="write the listening port here")
    p.add_argument("--upstream", type=int, help="forward DOE objects to this local port")
    p.add_argument("--keys", action="append", default=[], help="STREAM:MODE (test, partial, other)")
    p.add_argument("--no-side-channel", action="store_true")
    p.add_argument("--unknown-reply", type=lambda v: int(v, 0), default=UNKNOWN,
                   help="the command answering unknown requests (default 0xFFFF)")
    p.add_argument("--event-log", help="append every side-channel request here as JSON lines")
    a = p.parse_args()
    ep = FakeEndpoint(a.port, a.upstream, not a.no_side_channel, a.event_log, a.unknown_reply)
    for k in a.keys:
        stream, _, mode = k.partition(":")
        ep.keys.set(int(stream, 0), mode or "test")
        ep.provisioned.append((int(stream, 0), mode or "test"))
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(f"{ep.port}\n")
        os.rename(a.port_file + ".tmp", a.port_file)
    print(f"fake-endpoint: listening on 127.0.0.1:{ep.port}", file=sys.stderr, flush=True)
    try:
        ep.serve_forever()
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
