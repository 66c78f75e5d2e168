"""`bloo phone` against real terminators: calls with tones checked by ToneDetector,
DTMF, resume after a broken connection, UDP blocked in the phone's namespace, and the
nearest of three appliances behind a userspace delay relay, with fail-over."""
import re
import subprocess
import time
import wave
import math

import pytest

from tunnel_fixtures import SECRETS, pki, serve  # noqa: F401  (fixtures)
from delay_relay import DelayRelay

CREDENTIALS = ["--alias", "alice", "--secret", SECRETS["alice"].decode()]


def phone(bloo, *args, timeout=60, netns=None):
    argv = [str(bloo), "phone", *args]
    if netns is not None:
        argv = ["ip", "netns", "exec", netns.name, *argv]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return result


def summary(stdout):
    lines = [l for l in stdout.splitlines() if l.startswith("summary: ")]
    return "\n".join(lines)


def tone_presence(stdout, hz):
    match = re.search(rf"tone {hz} Hz: present in (\d+)% of (\d+) received frames", stdout)
    assert match, stdout
    return int(match.group(1)), int(match.group(2))


def goertzel_share(samples, hz, rate=8000):
    n = len(samples)
    k = round(n * hz / rate)
    coefficient = 2 * math.cos(2 * math.pi * k / n)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coefficient * s1 - s2, s1
    power = (s1 * s1 + s2 * s2 - coefficient * s1 * s2) / n
    energy = sum(x * x for x in samples)
    return 2 * power / energy if energy else 0


def test_call_over_tls_carries_tone_both_ways_with_dtmf_and_summary(bloo, serve, pki, tmp_path):
    server = serve()
    recording = tmp_path / "heard.wav"
    host, port = server.tls
    result = phone(bloo, "call", "echo", *CREDENTIALS, "--ca", str(pki["ca"]),
                   "--appliances", f"tls:{host}:{port}/localhost", "--tone", "1000", "--expect-tone", "1000",
                   "--record", str(recording), "--duration", "3", "--dtmf", "159#",
                   "--no-udp-audio")  # the audio stays in the TLS tunnel (test_phone_udp.py covers UDP audio)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "registered alice" in out
    assert "connected (call 1), codec PCMA" in out
    for digit in "159#":
        assert f"dtmf received {digit}" in out
    s = summary(out)
    assert "summary: codec PCMA (G.711 A-law)" in s
    assert "summary: path tunnel over TCP" in s
    sent = int(re.search(r"summary: sent packets (\d+)", s).group(1))
    received = int(re.search(r"summary: received packets (\d+), lost (\d+)", s).group(1))
    lost = int(re.search(r"summary: received packets \d+, lost (\d+)", s).group(1))
    assert sent >= 120 and sent - 5 <= received + lost <= sent, s
    assert re.search(r"summary: rtt \d+\.\d ms", s), s
    mos = float(re.search(r"summary: estimated MOS (\d\.\d+)", s).group(1))
    assert 3.0 < mos <= 4.5, s
    presence, frames = tone_presence(out, 1000)
    assert presence >= 90 and frames >= 120
    # The recording holds the tone that went out and came back through the appliance.
    with wave.open(str(recording)) as w:
        assert w.getframerate() == 8000 and w.getnchannels() == 1
        data = w.readframes(w.getnframes())
    samples = [int.from_bytes(data[i:i + 2], "little", signed=True) for i in range(0, len(data), 2)]
    assert len(samples) >= 120 * 160
    middle = samples[len(samples) // 2: len(samples) // 2 + 1600]
    assert goertzel_share(middle, 1000) > 0.6
    assert goertzel_share(middle, 1400) < 0.1


def test_wrong_ca_is_refused_in_plain_words(bloo, serve, pki):
    server = serve()
    host, port = server.tls
    result = phone(bloo, "register", *CREDENTIALS, "--ca", str(pki["other_ca"]),
                   "--appliances", f"tls:{host}:{port}/localhost", "--duration", "4", "--rounds", "1")
    assert result.returncode != 0
    assert "certificate verify failed" in result.stdout, result.stdout


def test_unknown_number_ends_with_the_cause(bloo, serve):
    server = serve(tls=False)
    host, port = server.tcp
    result = phone(bloo, "call", "nobody", *CREDENTIALS, "--appliances", f"tcp:{host}:{port}", "--duration", "2")
    assert result.returncode == 1
    assert "the far end hung up (unallocated number)" in result.stdout


def test_broken_connection_resumes_and_the_call_continues(bloo, serve):
    server = serve(tls=False)
    relay = DelayRelay(server.tcp, 0)
    try:
        process = subprocess.Popen([str(bloo), "phone", "call", "echo", *CREDENTIALS,
                                    "--appliances", f"tcp:127.0.0.1:{relay.port}", "--tone", "700",
                                    "--expect-tone", "700", "--duration", "6", "--no-udp-audio"],
                                   stdout=subprocess.PIPE, text=True)
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("connected"):
                break
        time.sleep(1.5)
        relay.break_connections()
        rest, _ = process.communicate(timeout=30)
        out = "".join(lines) + rest
        assert process.returncode == 0, out
        assert "tunnel lost" in out
        assert "tunnel resumed" in out and "calls continue" in out
        assert "call ended (call 1): hung up here" in out
        presence, frames = tone_presence(out, 700)
        assert presence >= 90, out
    finally:
        relay.close()


def test_udp_blocked_in_the_phones_namespace_audio_rides_the_tunnel(bloo, pki, netns, tmp_path):
    appliance_ns, phone_ns = netns("appl"), netns("phone")
    subprocess.run(["ip", "link", "add", "vph0", "netns", phone_ns.name, "type", "veth", "peer", "name", "vap0",
                    "netns", appliance_ns.name], check=True)
    appliance_ns.run("ip", "addr", "add", "10.231.0.1/24", "dev", "vap0")
    appliance_ns.run("ip", "link", "set", "vap0", "up")
    phone_ns.run("ip", "addr", "add", "10.231.0.2/24", "dev", "vph0")
    phone_ns.run("ip", "link", "set", "vph0", "up")
    phone_ns.run("iptables", "-A", "OUTPUT", "-p", "udp", "-j", "DROP")
    server = appliance_ns.popen(str(bloo), "tunnel-serve", "--tls", "10.231.0.1:4433", "--cert", str(pki["cert"]),
                                "--key", str(pki["key"]), "--subscribers", str(pki["subscribers"]),
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert server.stdout.readline().startswith("ready tls=10.231.0.1:4433")
        result = phone(bloo, "call", "echo", *CREDENTIALS, "--ca", str(pki["ca"]),
                       "--appliances", "tls:10.231.0.1:4433/localhost", "--tone", "1000",
                       "--expect-tone", "1000", "--duration", "3", netns=phone_ns)
        out = result.stdout
        assert result.returncode == 0, out + result.stderr
        assert "no UDP probe answer, measuring with tunnel PING" in out
        assert "(tunnel ping)" in out or "tunnel ping median" in out
        assert "summary: path tunnel over TCP" in out
        presence, frames = tone_presence(out, 1000)
        assert presence >= 90 and frames >= 120
        # UDP really was blocked: the drop rule counted the probes.
        counters = phone_ns.run("iptables", "-L", "OUTPUT", "-v", "-n", "-x").stdout
        dropped = int(next(l.split()[0] for l in counters.splitlines() if "DROP" in l))
        assert dropped >= 1
    finally:
        server.terminate()
        server.wait(10)


def test_nearest_of_three_appliances_and_failover_when_it_stops(bloo, serve):
    servers = [serve(tls=False) for _ in range(3)]
    relays = [DelayRelay(s.tcp, delay) for s, delay in zip(servers, (50, 5, 20))]
    listed = ",".join(f"tcp:127.0.0.1:{r.port}" for r in relays)
    near, middle = relays[1].port, relays[2].port
    try:
        scan = phone(bloo, "scan", *CREDENTIALS, "--appliances", listed)
        assert scan.returncode == 0, scan.stdout
        assert f"best tcp:127.0.0.1:{near}" in scan.stdout, scan.stdout
        ranks = re.findall(r"rank \d: tcp:127.0.0.1:(\d+) median (\S+) ms", scan.stdout)
        assert [int(p) for p, _ in ranks] == [near, middle, relays[0].port], scan.stdout
        medians = [float(m) for _, m in ranks]
        assert medians[0] >= 5 and medians[1] >= 20 and medians[2] >= 50

        process = subprocess.Popen([str(bloo), "phone", "register", *CREDENTIALS, "--appliances", listed,
                                    "--duration", "25"], stdout=subprocess.PIPE, text=True)
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("registered"):
                break
        assert any(f"appliance tcp:127.0.0.1:{near}" in l for l in lines), lines
        servers[1].stop()
        for line in process.stdout:
            lines.append(line)
            if line.startswith("registered"):
                break
        process.terminate()
        process.wait(10)
        out = "".join(lines)
        assert "failing over" in out, out
        assert f"appliance tcp:127.0.0.1:{middle}" in out, out
        assert out.count("registered alice") == 2, out
    finally:
        for relay in relays:
            relay.close()
