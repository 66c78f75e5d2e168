"""System tests of `bloo relay` (the static binary): real UDP on 127.0.0.0/8 only,
random free port ranges so that parallel runs do not collide."""
import queue
import random
import re
import threading
import select
import socket
import struct
import subprocess
import time

import pytest


def rtp(seq, ssrc=0x1234, payload=160):
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160 & 0xFFFFFFFF, ssrc) + b"\xd5" * payload


def peer(address="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((address, 0))
    return s


def receive(sock, count=1, timeout=1.0):
    got = []
    deadline = time.time() + timeout
    while len(got) < count:
        left = deadline - time.time()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            break
        got.append(sock.recvfrom(2048))
    return got


class RelayProcess:
    def __init__(self, bloo, *flags, pairs=20):
        base = random.randrange(20000, 59000) & ~1
        self.range = (base, base + 2 * pairs - 1)
        self.proc = subprocess.Popen(
            [str(bloo), "relay", "--address", "127.0.0.1", "--ports", f"{self.range[0]}-{self.range[1]}",
             "--cpus", "none", *flags],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.line().startswith("ready")

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def line(self, timeout=5.0):
        try:
            return self.lines.get(timeout=max(timeout, 0.01))
        except queue.Empty:
            raise AssertionError("bloo relay: no output") from None

    def request(self, text):
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        while True:
            line = self.line()
            if not line.startswith("event"):
                return line

    def event(self, kind, timeout=5.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.line(deadline - time.time())
            if line.startswith(f"event {kind}"):
                return dict(re.findall(r"(\w+)=(\S+)", line))
        raise AssertionError(f"no {kind} event")

    def create(self, *args):
        reply = self.request("create " + " ".join(args))
        assert reply.startswith("ok"), reply
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", reply)}

    def stats(self, session):
        assert self.request(f"stats {session}") == "ok"
        return self.event("stats")

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def relay(bloo):
    started = []

    def start(*flags, **kwargs):
        r = RelayProcess(bloo, *flags, **kwargs)
        started.append(r)
        return r

    yield start
    for r in started:
        r.close()


def test_forwards_both_ways_latches_and_counts(relay):
    r = relay()
    gateway, client, stranger = peer(), peer(), peer("127.0.0.2")
    s = r.create(f"gateway=127.0.0.1", f"client=127.0.0.1:{client.getsockname()[1]}")
    gw_port, cl_port = s["gateway_port"], s["client_port"]
    assert gw_port % 2 == 0 and r.range[0] <= gw_port <= r.range[1]
    for seq in range(1, 11):
        gateway.sendto(rtp(seq), ("127.0.0.1", gw_port))
    got = receive(client, 10)
    assert [struct.unpack("!H", d[2:4])[0] for d, _ in got] == list(range(1, 11))
    assert all(src == ("127.0.0.1", cl_port) for _, src in got)
    event = r.event("first-packet")
    assert event["side"] == "gateway" and event["from"] == f"127.0.0.1:{gateway.getsockname()[1]}"
    stranger.sendto(rtp(99), ("127.0.0.1", gw_port))
    client.sendto(rtp(500, ssrc=7), ("127.0.0.1", cl_port))
    back = receive(gateway, 1)
    assert back and back[0][1] == ("127.0.0.1", gw_port)
    assert not receive(client, 1, timeout=0.2)
    stats = r.stats(s["id"])
    assert stats["g_packets"] == "10" and stats["g_forwarded"] == "10"
    assert stats["g_drop_wrong_source"] == "1"
    assert stats["c_packets"] == "1" and stats["c_forwarded"] == "1"
    assert stats["gateway_remote"] == f"127.0.0.1:{gateway.getsockname()[1]}"


def test_counts_loss_reorder_and_malformed(relay):
    r = relay()
    gateway, client = peer(), peer()
    s = r.create("gateway=127.0.0.1", f"client=127.0.0.1:{client.getsockname()[1]}")
    order = [n for n in range(1, 51) if n not in (7, 8, 30)]
    i = order.index(20)
    order[i], order[i + 1] = order[i + 1], order[i]
    for seq in order:
        gateway.sendto(rtp(seq), ("127.0.0.1", s["gateway_port"]))
        time.sleep(0.0005)
    gateway.sendto(b"\x40" + b"\x00" * 171, ("127.0.0.1", s["gateway_port"]))  # version 1
    gateway.sendto(b"\x80\x00\x00", ("127.0.0.1", s["gateway_port"]))          # truncated
    assert len(receive(client, len(order))) == len(order)
    stats = r.stats(s["id"])
    assert stats["g_expected"] == "50"
    assert stats["g_lost"] == "3"
    assert stats["g_reorder"] == "1"
    assert stats["g_drop_bad_version"] == "1"
    assert stats["g_drop_truncated"] == "1"


def test_idle_timeout_event(relay):
    r = relay("--idle-timeout-ms", "300", "--scan-ms", "50")
    s = r.create("gateway=127.0.0.1")
    start = time.time()
    event = r.event("timeout", timeout=3)
    assert event["id"] == str(s["id"])
    assert int(event["idle_ms"]) >= 300
    assert time.time() - start >= 0.25


def test_port_exhaustion_is_a_clear_error(relay):
    r = relay(pairs=3)
    r.create()
    reply = r.request("create")
    assert reply.startswith("error no free RTP/RTCP port pair on 127.0.0.1")
    assert f"{r.range[0]}-{r.range[1]}" in reply


def test_dscp_ef_marking(relay):
    r = relay()
    gateway, client = peer(), peer()
    client.setsockopt(socket.IPPROTO_IP, socket.IP_RECVTOS, 1)
    s = r.create("gateway=127.0.0.1", f"client=127.0.0.1:{client.getsockname()[1]}")
    gateway.sendto(rtp(1), ("127.0.0.1", s["gateway_port"]))
    assert select.select([client], [], [], 2)[0]
    _, ancillary, _, _ = client.recvmsg(2048, socket.CMSG_SPACE(4))
    tos = [data[0] for level, kind, data in ancillary if level == socket.IPPROTO_IP and kind == socket.IP_TOS]
    assert tos == [46 << 2]


def test_rejects_bad_requests_and_flags(bloo, relay):
    r = relay()
    assert r.request("create gateway=999.1.1.1").startswith("error")
    assert r.request("destroy 12345").startswith("error no relay session 12345")
    assert r.request("frobnicate").startswith("error unknown request")
    assert r.close() == 0
    bad = subprocess.run([str(bloo), "relay", "--no-such-flag"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2
    bad = subprocess.run([str(bloo), "relay", "--ports", "5-3"], capture_output=True, text=True, timeout=10)
    assert bad.returncode == 2
