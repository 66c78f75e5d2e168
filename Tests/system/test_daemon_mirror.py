"""`bloo daemon` with the mirror backend against `bloo lab gatekeeper` and `bloo lab
gateway`, all on 127.0.0.1 inside a namespace made here:

- health: the mirror probes the configured gatekeeper with GRQ; `show health` and `show
  system` say reachable (healthy) while it answers, unreachable (not healthy) once it has
  stopped answering through every retry, and reachable again when it is back;
- SIGTERM with two tunnelled clients (`bloo lab client`) in calls, one connected and one
  whose tunnel dropped (in its grace period, its call still up): the gateway receives a
  ReleaseComplete with a cause for each call, the gatekeeper a DRQ and a URQ for each
  (the registrations drop), the connected client's tunnel ends, and the daemon exits 0
  within its stop deadline;
- the call's audio towards the gateway is marked DSCP EF, and a commit of `relay dscp`
  marks the calls that start afterwards (read off the loopback with a packet socket)."""
import os
import random
import re
import subprocess
import sys
import time

import pytest

from bloo_daemon import accounts, base_config, daemons, wait_for  # noqa: F401  (fixtures)

SECRET = "mirror-daemon-secret"
BOB_SECRET = "mirror-daemon-bob-secret"
GATEKEEPER = "127.0.0.1:1719"
GATEWAY = "127.0.0.1:1720"


class Lab:
    """A `bloo lab ...` process in the namespace, its log on stderr."""

    def __init__(self, bloo, ns, directory, name, *argv):
        self.name = name
        self.path = directory / f"{name}.log"
        self.file = open(self.path, "w")
        self.process = ns.popen(str(bloo), "lab", *argv, stdout=subprocess.DEVNULL, stderr=self.file)

    def log(self):
        self.file.flush()
        return self.path.read_text()

    def wait_for(self, pattern, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            match = re.search(pattern, self.log())
            if match:
                return match
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.name}: no '{pattern}' within {timeout}s:\n{self.log()}")

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.file.close()


@pytest.fixture
def lab(bloo, tmp_path):
    started = []

    def start(ns, name, *argv):
        proc = Lab(bloo, ns, tmp_path, name, *argv)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def gatekeeper(lab, ns):
    gk = lab(ns, "gatekeeper", "gatekeeper", "--ras", GATEKEEPER, "--route", f"0={GATEWAY}")
    gk.wait_for("lab gatekeeper started")
    return gk


def mirror_config(service, tcp_port):
    return base_config(service, f"set tunnel tcp 127.0.0.1:{tcp_port}\n"
                                f"set subscriber alice secret {SECRET}\n"
                                f"set subscriber bob secret {BOB_SECRET}\n"
                                f"set gatekeeper address {GATEKEEPER}\n"
                                "set relay public-address 127.0.0.1\n"
                                "set relay ports 42000-42099\n")


def test_gatekeeper_reachability_makes_health(netns, daemons, accounts, lab):
    ns = netns("dmgk")
    gk = gatekeeper(lab, ns)
    daemon = daemons(ns)
    reply = daemon.commit(mirror_config(accounts.service, random.randint(20000, 29999)))
    assert reply.startswith("ok\ncommit 1"), reply
    assert "backend=mirror" in daemon.log(), daemon.log()
    # The first GRQ goes out when the mirror starts: answered, healthy.
    assert wait_for(lambda: daemon.show("health")["gatekeeper"] == "reachable", timeout=5), daemon.show("health")
    health = daemon.show("health")
    assert health["healthy"] == "yes", health
    assert daemon.show("system")["gatekeeper"] == "reachable"
    assert "gatekeeper-reachable" in daemon.log()

    # The gatekeeper stops: unhealthy once a probe (every 5 s) has gone unanswered through
    # its 3 attempts (1 s apart).
    gk.stop()
    stopped = time.monotonic()
    assert wait_for(lambda: daemon.show("health")["gatekeeper"] == "unreachable", timeout=12), daemon.show("health")
    took = time.monotonic() - stopped
    assert took >= 2.5, f"declared unreachable after {took:.1f} s: fewer than 3 attempts?"
    health = daemon.show("health")
    assert health["healthy"] == "no", health
    assert daemon.show("system")["gatekeeper"] == "unreachable"
    assert "gatekeeper-unreachable" in daemon.log()

    # Back again: healthy again at the next probe.
    gatekeeper(lab, ns)
    assert wait_for(lambda: daemon.show("health")["healthy"] == "yes", timeout=8), daemon.show("health")
    assert daemon.stop() == 0


def test_sigterm_releases_calls_unregisters_and_exits_0(netns, daemons, accounts, lab):
    ns = netns("dmterm")
    gk = gatekeeper(lab, ns)
    gw = lab(ns, "gateway", "gateway", "--signalling", GATEWAY, "--tone", "2000")
    gw.wait_for("lab gateway started")
    daemon = daemons(ns, extra_args=["--stop-deadline", "5"])
    tcp_port = random.randint(20000, 29999)
    assert daemon.commit(mirror_config(accounts.service, tcp_port)).startswith("ok\ncommit 1")
    client = lab(ns, "client", "client", "--server", f"127.0.0.1:{tcp_port}", "--alias", "alice",
                 "--secret", SECRET, "--call", "0123", "--tone", "1000", "--duration", "60")
    dropped = lab(ns, "dropped", "client", "--server", f"127.0.0.1:{tcp_port}", "--alias", "bob",
                  "--secret", BOB_SECRET, "--call", "0124", "--drop-after", "300", "--duration", "60")
    gk.wait_for(r"registered endpoint=\S+ from=127\.0\.0\.1:\d+ aliases=alice")
    gk.wait_for(r"registered endpoint=\S+ from=127\.0\.0\.1:\d+ aliases=bob")
    client.wait_for("call connected channel=1")
    dropped.wait_for("dropping the tunnel without BYE")
    assert wait_for(lambda: "tunnel-detached alias=bob" in daemon.log(), timeout=5), daemon.log()
    assert wait_for(lambda: len(re.findall("call connected", gw.log())) == 2, timeout=5), gw.log()
    assert "call released" not in gw.log()

    started = time.monotonic()
    status = daemon.stop(timeout=15)
    took = time.monotonic() - started
    assert status == 0, daemon.log()
    assert took < 5 + 2, f"the daemon took {took:.1f} s to stop"

    # The gateway saw both calls released by the appliance with a cause (16: normal call
    # clearing, the appliance ends its calls deliberately).
    assert wait_for(lambda: len(re.findall(r"call released cause=\d+ by=\w+", gw.log())) == 2, timeout=5), gw.log()
    assert re.findall(r"call released cause=(\d+) by=(\w+)", gw.log()) == [("16", "remote")] * 2, gw.log()
    # The gatekeeper: both calls disengaged, both endpoints unregistered.
    assert wait_for(lambda: gk.log().count("disengaged") == 2, timeout=5), gk.log()
    assert wait_for(lambda: len(re.findall(r"unregistered from=127\.0\.0\.1", gk.log())) == 2, timeout=5), gk.log()
    # The connected client's tunnel ended.
    client.wait_for("tunnel closed by the appliance", timeout=5)
    log = daemon.log()
    assert "tunnel-stopped" in log and "daemon stopped" in log, log
    print(f"SIGTERM to exit 0: {took:.2f} s")


CAROL_SECRET = "carol-daemon-gk-secret"


def test_gatekeeper_verifies_unknown_subscribers_through_the_daemon(netns, daemons, accounts, lab, bloo, tmp_path):
    """`set gatekeeper verifies-unknown-subscribers`: carol is not in the appliance's
    subscriber table; the operator's gatekeeper checks her H.235 password token in the
    mirror's RRQ. The right secret registers and calls; a wrong one is refused with the
    gatekeeper's reason; alice (a local subscriber) still authenticates locally, without
    deferral."""
    ns = netns("dmh235")
    passwords = tmp_path / "gk-passwords"
    passwords.write_text(f"carol {CAROL_SECRET}\n")
    gk = lab(ns, "gatekeeper", "gatekeeper", "--ras", GATEKEEPER, "--route", f"0={GATEWAY}",
             "--h235-passwords", str(passwords))
    gk.wait_for("lab gatekeeper started")
    gw = lab(ns, "gateway", "gateway", "--signalling", GATEWAY, "--tone", "2000", "--expect-tone", "1000")
    gw.wait_for("lab gateway started")
    daemon = daemons(ns)
    tcp_port = random.randint(20000, 29999)
    reply = daemon.commit(mirror_config(accounts.service, tcp_port) + "set gatekeeper verifies-unknown-subscribers\n")
    assert reply.startswith("ok\ncommit 1"), reply
    assert wait_for(lambda: daemon.show("health")["gatekeeper"] == "reachable", timeout=5), daemon.show("health")

    def phone(alias, secret, *extra):
        return ns.run(str(bloo), "phone", "call", "0123456", "--alias", alias, "--secret", secret,
                      "--appliances", f"tcp:127.0.0.1:{tcp_port}", "--duration", "3", *extra,
                      check=False, timeout=60)

    good = phone("carol", CAROL_SECRET, "--gatekeeper-auth", "--tone", "1000", "--expect-tone", "2000")
    assert good.returncode == 0, good.stdout + good.stderr
    assert "leaves the credentials to the operator's gatekeeper (H.235)" in good.stdout, good.stdout
    assert re.search(r"connected \(call 1\), codec PCM[AU]", good.stdout), good.stdout
    gk.wait_for(r"registered endpoint=\S+ from=127\.0\.0\.1:\d+ aliases=carol h235=verified")

    bad = phone("carol", "carol-wrong-secret", "--gatekeeper-auth")
    assert bad.returncode != 0, bad.stdout
    assert "the gatekeeper refused the credentials (securityDenial)" in bad.stdout, bad.stdout
    assert "connected" not in bad.stdout

    # alice is in the appliance's own table: the tunnel authenticates her locally, with
    # no deferral. (This gatekeeper demands an H.235 token from every endpoint, so it
    # then refuses her registration; that is the gatekeeper's policy, not the tunnel's.)
    local = phone("alice", SECRET)
    assert "authenticated as alice" in local.stdout, local.stdout + local.stderr
    assert "leaves the credentials to the operator's gatekeeper" not in local.stdout, local.stdout
    gk.wait_for(r"registration rejected from=127\.0\.0\.1:\d+ reason=securityDenial")
    assert daemon.stop() == 0


# Reads the loopback of the namespace with a packet socket for `seconds`: the TOS byte of
# every UDP datagram sent from ports LOW-HIGH (the mirror's media ports), with counts.
CAPTURE = r"""
import socket, struct, sys, time
low, high, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
s.bind(("lo", 0))
s.settimeout(0.2)
print("capturing", flush=True)
end = time.time() + seconds
seen = {}
while time.time() < end:
    try:
        data = s.recv(65535)
    except socket.timeout:
        continue
    if len(data) < 28 or data[0] >> 4 != 4 or data[9] != 17:
        continue
    source_port = struct.unpack("!H", data[(data[0] & 15) * 4:][:2])[0]
    if low <= source_port <= high:
        seen[data[1]] = seen.get(data[1], 0) + 1
print(" ".join(f"{tos}:{count}" for tos, count in sorted(seen.items())), flush=True)
"""


def media_marks(ns, call, seconds=10):
    """{TOS byte: datagrams} of the media the mirror sent while `call()` ran."""
    capture = ns.popen(sys.executable, "-c", CAPTURE, "24000", "24099", str(seconds),
                       stdout=subprocess.PIPE, text=True)
    assert capture.stdout.readline().strip() == "capturing"
    call()
    out, _ = capture.communicate(timeout=seconds + 10)
    return {int(tos): int(count) for tos, count in (item.split(":") for item in out.split())}


def test_call_audio_towards_the_gateway_is_marked_and_a_commit_changes_the_mark(netns, daemons, accounts, lab, bloo):
    ns = netns("dmdscp")
    gatekeeper(lab, ns)
    gw = lab(ns, "gateway", "gateway", "--signalling", GATEWAY, "--tone", "2000", "--expect-tone", "1000")
    gw.wait_for("lab gateway started")
    daemon = daemons(ns)
    tcp_port = random.randint(20000, 23999)
    # Media ports below the kernel's ephemeral range (32768 up) and the mirror's RAS pool
    # (30000 up), so that no other UDP socket of the call can send from them.
    config = mirror_config(accounts.service, tcp_port).replace("set relay ports 42000-42099", "set relay ports 24000-24099")
    assert "24000-24099" in config
    config += f"set subscriber carol secret {CAROL_SECRET}\n"
    assert daemon.commit(config).startswith("ok\ncommit 1")
    assert wait_for(lambda: daemon.show("health")["gatekeeper"] == "reachable", timeout=5), daemon.show("health")

    def call(alias, secret):
        # One subscriber per call: the previous one's unregistration may still be under way.
        def run():
            done = ns.run(str(bloo), "phone", "call", "0123456", "--alias", alias, "--secret", secret,
                          "--appliances", f"tcp:127.0.0.1:{tcp_port}", "--duration", "2", "--tone", "1000",
                          check=False, timeout=60)
            assert done.returncode == 0, done.stdout + done.stderr
            assert re.search(r"connected \(call 1\), codec PCM[AU]", done.stdout), done.stdout
        return run

    # The default: EF (46). 2 s of 20 ms audio is 100 RTP datagrams towards the gateway.
    marks = media_marks(ns, call("alice", SECRET))
    assert set(marks) == {46 << 2} and sum(marks.values()) >= 50, marks
    # AF41 (34) from the next call on, without a restart.
    assert daemon.commit(config + "set relay dscp 34\n").startswith("ok\ncommit 2")
    marks = media_marks(ns, call("bob", BOB_SECRET))
    assert set(marks) == {34 << 2} and sum(marks.values()) >= 50, marks
    # 0: unmarked.
    assert daemon.commit(config + "set relay dscp 0\n").startswith("ok\ncommit 3")
    marks = media_marks(ns, call("carol", CAROL_SECRET))
    assert set(marks) == {0} and sum(marks.values()) >= 50, marks
    # The three calls' records: in the CDR file beside the configuration store (owned by the
    # service user, who writes it after the privilege drop), and through `show cdr`.
    cdr_file = os.path.join(os.path.dirname(daemon.config_dir), "cdr.log")
    assert os.stat(cdr_file).st_uid == accounts.service_uid
    records = [kv_line(line) for line in open(cdr_file).read().splitlines()]
    assert [r["subscriber"] for r in records] == ["alice", "bob", "carol"], records
    for record in records:
        assert record["callee"] == "0123456" and record["codec"] in ("PCMU", "PCMA"), record
        assert int(record["pkts_to_net"]) >= 50 and int(record["pkts_from_net"]) >= 50, record
        assert record["lost_from_net"] == "0" and record["hangup_by"] == "client", record
    shown = daemon.show("cdr")
    assert [shown[f"cdr.{i}"] for i in range(3)] == open(cdr_file).read().splitlines(), shown
    assert daemon.stop() == 0


def kv_line(line):
    return dict(field.split("=", 1) for field in line.split(" "))


def test_show_tunnels_registrations_calls_and_relay_during_a_call(netns, daemons, accounts, lab, bloo):
    """What a technician sees with `show tunnels|registrations|calls|relay` while a tunnelled
    client is in a call through the mirror: its tunnel, its registration, the call with
    media counters that grow, and the relay's ports; `bloo cli -c` prints the same."""
    ns = netns("dmshow")
    gatekeeper(lab, ns)
    gw = lab(ns, "gateway", "gateway", "--signalling", GATEWAY, "--tone", "2000")
    gw.wait_for("lab gateway started")
    daemon = daemons(ns)
    tcp_port = random.randint(20000, 29999)
    assert daemon.commit(mirror_config(accounts.service, tcp_port)).startswith("ok\ncommit 1")
    assert daemon.show("calls") == {"calls": "none"}
    client = lab(ns, "client", "client", "--server", f"127.0.0.1:{tcp_port}", "--alias", "alice",
                 "--secret", SECRET, "--call", "0123", "--tone", "1000", "--duration", "60")
    client.wait_for("call connected channel=1")

    def shown(topic, key, timeout=5):  # rows are rebuilt once a second
        assert wait_for(lambda: key in daemon.show(topic), timeout=timeout), daemon.show(topic)
        return daemon.show(topic)

    tunnels = shown("tunnels", "tunnel.alice.state")
    assert tunnels["tunnel.alice.state"] == "attached" and tunnels["tunnel.alice.transport"] == "tcp", tunnels
    assert re.fullmatch(r"127\.0\.0\.1:\d+", tunnels["tunnel.alice.peer"]), tunnels
    registrations = shown("registrations", "registration.alice.state")
    assert registrations["registration.alice.state"] == "registered", registrations
    assert registrations["registration.alice.aliases"] == "alice", registrations
    assert re.fullmatch(r"127\.0\.0\.1:\d+", registrations["registration.alice.ras"]), registrations
    calls = shown("calls", "call.alice.1.from-net")
    assert calls["call.alice.1.direction"] == "out" and calls["call.alice.1.callee"] == "0123", calls
    assert calls["call.alice.1.state"] == "connected" and calls["call.alice.1.codec"] in ("PCMU", "PCMA"), calls
    assert 42000 <= int(calls["call.alice.1.rtp-port"]) <= 42099, calls

    def packets(direction):
        return int(re.match(r"(\d+) packets, \d+ lost, jitter [\d.]+ ms, \d+ dropped", daemon.show("calls")[f"call.alice.1.{direction}"]).group(1))

    first = (packets("from-net"), packets("to-net"))
    assert wait_for(lambda: packets("from-net") > first[0] + 40 and packets("to-net") > first[1] + 40, timeout=5), daemon.show("calls")
    relay = shown("relay", "relay.worker0.sessions")
    assert relay["relay.worker0.sessions"] == "1" and relay["relay.worker0.ports"].startswith("42000-"), relay
    # The same through the CLI a technician types into.
    env = dict(os.environ, BLOO_CONTROL_SOCKET=daemon.socket)
    shown_by_cli = subprocess.run([str(bloo), "cli", "-c", "show calls"], env=env, capture_output=True, text=True, timeout=30)
    assert shown_by_cli.returncode == 0, shown_by_cli.stdout + shown_by_cli.stderr
    assert re.search(r"call\.alice\.1\.state\s+connected", shown_by_cli.stdout), shown_by_cli.stdout
    # The client vanishes without BYE: its tunnel is in the resume grace period, its call
    # stays up meanwhile (media lost), as the tunnel protocol says.
    client.stop()
    assert wait_for(lambda: daemon.show("tunnels")["tunnel.alice.state"].startswith("detached"), timeout=5), daemon.show("tunnels")
    assert daemon.show("calls")["call.alice.1.state"] == "connected"
    assert daemon.stop() == 0
